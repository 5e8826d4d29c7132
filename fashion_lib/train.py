"""Command line: train one of the study's key-point detectors, on one process or many (``torchrun``).

The notebooks train through :func:`fashion_lib.experiments.keypoints.train_detectors`; this entry point runs the
same training (same configurations, data and engine) outside a notebook, which is how a user who outgrows one
machine trains on a cluster::

    python -m fashion_lib.train keypoint_rcnn --schema fashionai --preset cpu --steps 400
    torchrun --nproc_per_node=4 -m fashion_lib.train keypoint_rcnn --schema coco --preset gpu --steps 20000 \\
        --batch-size 32 --data-root /data/coco

``--batch-size`` is the global batch (divided over the processes). The run folder defaults to the one the
notebooks use for the same settings, so a notebook afterwards loads the trained model instead of training it again.
A run that is interrupted resumes from its last checkpoint when the same command is given again; a finished run
keeps its weights only (``--keep-resume-state`` keeps the optimiser state too). Errors are reported as one
``error: ...`` line with exit status 2.

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

__all__ = ["main"]

log = logging.getLogger(__name__)

MODELS = ("keypoint_rcnn", "cpn")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m fashion_lib.train", description=__doc__.split("\n\n")[0])
    p.add_argument("model", choices=MODELS, help="which detector to train")
    p.add_argument("--schema", choices=("fashionai", "coco"), default="fashionai", help="key-point schema")
    p.add_argument("--preset", choices=("cpu", "gpu"), default="cpu", help="model configuration (default cpu)")
    p.add_argument("--steps", type=int, default=400, help="optimizer steps (default 400)")
    p.add_argument("--batch-size", type=int, default=8, help="global batch (default 8)")
    p.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (default 1e-3)")
    p.add_argument("--seed", type=int, default=0, help="seed of initialisation and data order (default 0)")
    p.add_argument("--image-size", type=int, default=128, help="synthetic image side and cpu input size")
    p.add_argument("--data-root", default="", help="a real data set's folder ('' = the synthetic world)")
    p.add_argument("--train-file", default="", help="annotation file under --data-root (default: usual name)")
    p.add_argument("--run-dir", type=Path, default=None, help="run folder (default: the notebooks' one)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--keep-resume-state", action="store_true",
                   help="keep the optimiser state in the finished run's checkpoint (default: weights only)")
    p.add_argument("--predict", nargs=2, metavar=("ANNOTATIONS", "IMAGES"), default=None,
                   help="after training, detect on this validation set (see the module help)")
    p.add_argument("--results", type=Path, default=None, help="where --predict writes its COCO results JSON")
    return p


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
    arguments, a data file, a refused checkpoint, a non-finite loss)."""
    from fashion_lib.engine import CheckpointError

    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.predict is not None and (args.results is None or args.model != "keypoint_rcnn"):
        log.error("error: --predict needs --results OUT.json and the keypoint_rcnn model")
        return 2
    try:
        return _run(args)
    except (CheckpointError, ValueError, OSError, FloatingPointError) as err:
        log.error("error: %s", err)
        return 2


def _run(args: argparse.Namespace) -> int:
    from fashion_lib.engine import init_distributed, is_main_process, run_dir_for, train
    from fashion_lib.experiments import keypoints as kx
    from fashion_lib.experiments import runs_dir, seeded_build
    from fashion_lib.models.cpn import build_cpn
    from fashion_lib.models.keypoint_rcnn import build_keypoint_rcnn

    setup = kx.KeypointSetup(schema=args.schema, preset=args.preset, image_size=args.image_size,
                             train_steps=args.steps, cpn_steps=args.steps, batch_size=args.batch_size,
                             lr=args.lr, data_root=args.data_root, train_file=args.train_file)
    init_distributed()
    kcfg, ccfg = kx.detector_configs(setup)
    config, build = (kcfg, build_keypoint_rcnn) if args.model == "keypoint_rcnn" else (ccfg, build_cpn)
    tcfg = kx.train_config(setup, args.seed, args.steps)
    run_dir = args.run_dir or run_dir_for(runs_dir(), f"{args.model}-{args.schema}-s{args.seed}", config, tcfg,
                                          kx.data_key(setup))
    model = seeded_build(build, config, args.seed)
    result = train(model, kx.training_set(setup, args.seed, args.steps), tcfg, run_dir,
                   progress=not args.no_progress, keep_resume_state=args.keep_resume_state)
    if is_main_process():
        log.info("trained %s to step %d in %s (%.0f s, %.1f images/s)", args.model, result.step, run_dir,
                 result.wall_time_s, result.images_per_s)
        if args.predict is not None:
            n = _predict(result.model, args.schema, Path(args.predict[0]), Path(args.predict[1]), args.results)
            log.info("wrote %d detections to %s", n, args.results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
