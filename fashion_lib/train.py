"""Command line: train the study's key-point detectors, on one process or many (``torchrun``).

The notebooks train through :func:`fashion_lib.experiments.keypoints.train_detectors`; this entry point runs the
same training (same configurations, data and engine) outside a notebook, which is how a user who outgrows one
machine trains on a cluster. ``--profile NAME`` takes every setting from ``notebooks/profiles/NAME.yaml`` as the
schema's Table 1 notebook receives it (the ``detector`` parameter, the seeds, the data folders), so the run
folders are exactly the ones that profile's notebooks look for, and ``make book PROFILE=NAME`` afterwards loads
the trained models instead of training them again::

    torchrun --nproc_per_node=4 -m fashion_lib.train keypoint_rcnn cpn --schema fashionai --profile gpu
    torchrun --nproc_per_node=4 -m fashion_lib.train keypoint_rcnn cpn --schema coco --profile gpu
    python -m fashion_lib.train keypoint_rcnn --schema fashionai --preset cpu --steps 400 --seed 0

``-p NAME VALUE`` overrides a parameter as ``make book PARAMS=...`` does (``-p 10_table1_fashionai.data_root
/data/fashionAI/train`` for a real data set): give the pipeline the same ones. The batch size is the global batch,
divided over the processes (the gpu profile's 8 needs 1, 2, 4 or 8 of them). An option given beside ``--profile``
replaces the profile's value, and the notebooks will not find that run (a ``--seed`` among the profile's seeds
excepted). Without ``--profile`` the settings are the options' defaults below, and the run folder is the one a
notebook would use for the same settings. ``--print-run-dir`` prints the run folders and trains nothing. A run that
is interrupted resumes from its last checkpoint when the same command is given again; a finished run is loaded, not
trained again, and keeps its weights only (``--keep-resume-state`` keeps the optimiser state too). A profile whose
``cpn_steps`` is 0 (``cpu``) trains no CPN, and its notebooks look for none: ``cpn`` is then skipped with a warning.
Errors are reported as one ``error: ...`` line with exit status 2.

``--predict ANNOTATIONS IMAGES --results OUT.json`` then detects on a validation set in its real layout (COCO: the
annotation JSON and the image folder; FashionAI: the annotation CSV and the split folder, image ids being the
CSV's data-row numbers from 1) and writes every detection in the COCO results format, which pycocotools, the
metrics and ``python -m fashion_lib.refine`` read. Keypoint R-CNN only (CPN needs a detector's boxes).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["main", "profile_settings", "TABLE1_NOTEBOOKS"]

log = logging.getLogger(__name__)

MODELS = ("keypoint_rcnn", "cpn")
# The notebook whose parameters ``--profile`` reads, per schema: the one that trains that schema's detectors first.
TABLE1_NOTEBOOKS = {"fashionai": "10_table1_fashionai", "coco": "11_table1_coco"}
# Parameters of that notebook that it passes to KeypointSetup beside ``**detector`` (the rest are not training's).
_SETUP_PARAMETERS = ("val_images", "data_root", "train_file", "val_file", "val_root")
# Settings without --profile; an option left out takes its value from here or from the profile.
_DEFAULTS = {"preset": "cpu", "image_size": 128, "steps": 400, "batch_size": 8, "lr": 1e-3, "seeds": [0],
             "data_root": "", "train_file": ""}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m fashion_lib.train", description=__doc__.split("\n\n")[0])
    p.add_argument("models", nargs="+", choices=MODELS, metavar="model",
                   help=f"which detector(s) to train: {', '.join(MODELS)}")
    p.add_argument("--schema", choices=("fashionai", "coco"), default="fashionai", help="key-point schema")
    p.add_argument("--profile", default=None,
                   help="take every setting from notebooks/profiles/PROFILE.yaml, as the notebooks do")
    p.add_argument("-p", dest="overrides", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                   help="with --profile: a parameter override, as given to the pipeline (make book PARAMS=...)")
    p.add_argument("--preset", choices=("cpu", "gpu"), default=None, help="model configuration (default cpu)")
    p.add_argument("--steps", type=int, default=None, help="optimizer steps (default 400)")
    p.add_argument("--batch-size", type=int, default=None, help="global batch (default 8)")
    p.add_argument("--lr", type=float, default=None, help="peak learning rate (default 1e-3)")
    p.add_argument("--seed", dest="seeds", type=int, nargs="+", default=None,
                   help="seed(s) of initialisation and data order (default 0; with --profile, the profile's seeds)")
    p.add_argument("--image-size", type=int, default=None, help="synthetic image side and cpu input size (128)")
    p.add_argument("--data-root", default=None, help="a real data set's folder ('' = the synthetic world)")
    p.add_argument("--train-file", default=None, help="annotation file under --data-root (default: usual name)")
    p.add_argument("--run-dir", type=Path, default=None, help="run folder (default: the notebooks' one)")
    p.add_argument("--print-run-dir", action="store_true", help="print the run folder(s) and train nothing")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--keep-resume-state", action="store_true",
                   help="keep the optimiser state in the finished run's checkpoint (default: weights only)")
    p.add_argument("--predict", nargs=2, metavar=("ANNOTATIONS", "IMAGES"), default=None,
                   help="after training, detect on this validation set (see the module help)")
    p.add_argument("--results", type=Path, default=None, help="where --predict writes its COCO results JSON")
    return p


def profile_settings(profile: str, schema: str, overrides: Sequence[tuple[str, str]] = ()) -> dict[str, Any]:
    """The key-point settings the schema's Table 1 notebook (:data:`TABLE1_NOTEBOOKS`) gets from ``profile`` and
    the pipeline's ``-p`` ``overrides``:
    the fields of its ``detector`` parameter, ``seeds`` and the data parameters it passes to
    :class:`~fashion_lib.experiments.keypoints.KeypointSetup`. Warns when another notebook gets another
    ``detector`` (its detectors are other runs)."""
    from fashion_lib.profiles import notebook_parameters

    params = notebook_parameters(profile, overrides)
    own = params[TABLE1_NOTEBOOKS[schema]]
    others = sorted(name for name, p in params.items() if "detector" in p and p["detector"] != own["detector"])
    if others:
        log.warning("profile %s gives notebook(s) %s another detector than %s: they train their own", profile,
                    others, TABLE1_NOTEBOOKS[schema])
    return {**own["detector"], "seeds": list(own["seeds"]), **{k: own[k] for k in _SETUP_PARAMETERS}}


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    """KeypointSetup fields and ``seeds``: the profile's (or the defaults), then the options given."""
    given = {"preset": args.preset, "image_size": args.image_size, "batch_size": args.batch_size, "lr": args.lr,
             "seeds": args.seeds, "data_root": args.data_root, "train_file": args.train_file}
    if args.steps is not None:
        given.update(train_steps=args.steps, cpn_steps=args.steps)
        if args.schema == "coco":  # the profile may give people their own Keypoint R-CNN schedule
            given["coco_train_steps"] = args.steps
    given = {k: v for k, v in given.items() if v is not None}
    if args.profile is None:
        if args.overrides:
            raise ValueError("-p overrides a profile's parameter: give --profile too")
        steps = _DEFAULTS["steps"]
        base = {**{k: v for k, v in _DEFAULTS.items() if k != "steps"}, "train_steps": steps, "cpn_steps": steps}
        return {**base, **given}
    base = profile_settings(args.profile, args.schema, [tuple(o) for o in args.overrides])
    # a subset of the profile's seeds are runs the notebooks use; any other changed value names other runs
    changed = sorted(k for k, v in given.items() if (set(v) - set(base[k]) if k == "seeds" else base.get(k) != v))
    if changed:
        log.warning("%s replace(s) the profile's value: the notebooks of profile %s will not find these runs",
                    ", ".join(changed), args.profile)
    return {**base, **given}


def _predict(model, schema: str, annotations: Path, images: Path, results: Path) -> int:
    """Detect on a validation set and write the COCO results file; returns the number of detections."""
    from fashion_lib.coco_eval import write_coco_results
    from fashion_lib.data.coco import CocoKeypoints
    from fashion_lib.data.fashionai import FashionAIKeypoints
    from fashion_lib.models.detector import coco_results, predict

    if schema == "coco":
        data = CocoKeypoints(annotations, images)
        ids = [t["image_id"] for _, t in (data[i] for i in range(len(data)))]
    else:
        data = FashionAIKeypoints(images, str(Path(annotations).resolve().relative_to(Path(images).resolve())))
        ids = list(range(1, len(data) + 1))
    pictures = [data[i][0] for i in range(len(data))]
    entries = coco_results(predict(model, pictures), ids, category_id=1 if schema == "coco" else None)
    write_coco_results(results, entries)
    return len(entries)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status: 0, or 2 with an ``error: ...`` line naming what is wrong (bad
    arguments, a profile, a data file, a refused checkpoint, a non-finite loss)."""
    from fashion_lib.checkpoints import CheckpointError
    from fashion_lib.profiles import ProfileError

    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.predict is not None and (args.results is None or args.models != ["keypoint_rcnn"]):
        log.error("error: --predict needs --results OUT.json and the keypoint_rcnn model alone")
        return 2
    try:
        return _run(args)
    except (CheckpointError, ProfileError, ValueError, TypeError, OSError, FloatingPointError) as err:
        log.error("error: %s", err)
        return 2


def _run(args: argparse.Namespace) -> int:
    from fashion_lib.distributed import init_distributed, is_main_process
    from fashion_lib.engine import train
    from fashion_lib.experiments import keypoints as kx

    settings = _settings(args)
    seeds = settings.pop("seeds")
    setup = kx.KeypointSetup(schema=args.schema, **settings)
    models = [m for m in dict.fromkeys(args.models) if m != "cpn" or setup.trains_cpn]
    if len(models) < len(set(args.models)):
        log.warning("cpn_steps is 0: these settings train no CPN (the notebooks show its rows as not tested); "
                    "skipping cpn")
    runs = [kx.detector_run(setup, model, seed) for seed in seeds for model in models]
    if (args.run_dir is not None or args.predict is not None) and len(runs) != 1:
        raise ValueError(f"--run-dir and --predict need one model and one seed, got {len(runs)} runs")
    if args.print_run_dir:
        for run in runs:
            print(args.run_dir or run.run_dir)
        return 0
    init_distributed()
    for run in runs:
        run_dir = args.run_dir or run.run_dir
        result = train(run.build(), kx.training_set(setup, run.train_config.seed, run.train_config.steps),
                       run.train_config, run_dir, progress=not args.no_progress,
                       keep_resume_state=args.keep_resume_state)
        if is_main_process():
            log.info("trained %s to step %d in %s (%.0f s, %.1f images/s)", run.model, result.step, run_dir,
                     result.wall_time_s, result.images_per_s)
    if args.predict is not None and is_main_process():
        n = _predict(result.model, args.schema, Path(args.predict[0]), Path(args.predict[1]), args.results)
        log.info("wrote %d detections to %s", n, args.results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
