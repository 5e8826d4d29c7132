"""Keypoint R-CNN inference in float32 and under bf16 autocast, in one run: images/s and what bf16 changes.

The attribute pages detect every training and validation image twice (plain and New-key-detection crops), so the
detector's inference rate bounds how many validation images the book can afford (issue 22). The detectors already
train under bf16 autocast (``amp``); this measures whether inference gains from it too and what it does to NE.

It loads the ``cpu`` profile's *finished* FashionAI Keypoint R-CNN runs from ``FASHION_LIB_RUNS`` (for example a
built book's ``_build/runs``) and refuses to start where a run is missing, rather than train one for 40 minutes.
Per seed: the same validation garments through :func:`fashion_lib.models.detector.predict` in float32 and under
``torch.autocast("cpu", dtype=torch.bfloat16)``, variants alternating over ``--repeats`` rounds (machine load hits
both alike), the median rate of each and their ratio; then the NE of visible points of both outputs and how far the
points moved.

Measured on this 2-core machine (quiet, one thread, batch 16, 192 garments, 2 rounds, the three seeds of the cpu
book of a4a283d; ``--seeds 0 1 2 --repeats 2``): bf16 against float32 37.3 / 25.8 (1.45x), 39.2 / 28.4 (1.38x),
37.8 / 26.1 (1.45x) images/s. NE of visible points 5.53 -> 5.52, 6.09 -> 6.31, 5.55 -> 5.63 %; the median
coordinate moved 0.3 px, the largest 98-114 px (another detection came out on top). So bf16 inference is faster
but not free: a book that used it would have to use it for every row alike.

The attribute pages' crops run bf16 with only the top detection (``top_detection_only``: the key-point head on one
box). Quiet machine, seed 0 of the cpu book of d667ef6, ``--seeds 0 --repeats 2``: float32 27.1, bf16 39.0 (1.44x),
bf16 with the top detection only 46.5 images/s (1.19x bf16, 1.71x float32), its points identical to bf16's.

Run: ``FASHION_LIB_RUNS=<book>/_build/runs python benchmarks/inference_bf16.py [--seeds 0 1 2] [--images 192]
[--batch-size 16] [--repeats 3] [--threads 1]``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from fashion_lib.experiments import keypoints as kx
from fashion_lib.experiments.attribute_data import top_detection_only
from fashion_lib.experiments.keypoint_scores import ne_metric
from fashion_lib.models.detector import predict, top_instance

# the cpu profile's detector settings (notebooks/profiles/cpu.yaml, `all: detector`)
CPU_DETECTOR = {"preset": "cpu", "image_size": 128, "train_steps": 900, "coco_train_steps": 300, "cpn_steps": 0,
                "batch_size": 8, "lr": 0.001}
VARIANTS = {"float32": lambda: torch.autocast("cpu", enabled=False),
            "bf16 autocast": lambda: torch.autocast("cpu", dtype=torch.bfloat16),
            # what the attribute pages' crops run (experiments.attribute_data.crop_keypoints)
            "bf16, top detection only": lambda: torch.autocast("cpu", dtype=torch.bfloat16)}
TOP_ONLY = "bf16, top detection only"


def _finished(run: kx.DetectorRun) -> bool:
    """Whether ``run`` holds a finished checkpoint (an interrupted one would be trained on by ``train_detectors``)."""
    path = run.run_dir / "checkpoint.pt"
    if not path.is_file():
        return False
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    return ckpt.get("step") == run.train_config.steps or bool(ckpt.get("stopped", False))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--images", type=int, default=192, help="validation garments per seed")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--repeats", type=int, default=3, help="timed rounds per variant (alternating)")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    setup = kx.KeypointSetup(schema="fashionai", **CPU_DETECTOR, val_images=args.images)
    missing = [s for s in args.seeds if not _finished(kx.detector_run(setup, "keypoint_rcnn", s))]
    if missing:
        raise SystemExit(f"no finished cpu-profile Keypoint R-CNN run for seed(s) {missing} under FASHION_LIB_RUNS "
                         f"({kx.runs_dir()}): point it at a built book's _build/runs")
    val = kx.validation_set(setup)
    images, ne = list(val.images), ne_metric()
    print(f"threads {args.threads}, batch {args.batch_size}, {len(images)} garments, {args.repeats} rounds")
    for seed in args.seeds:  # over the few seeds
        model = kx.train_detectors(setup, seed, progress=False).keypoint_rcnn  # loaded: the run is finished
        models = {name: top_detection_only(model) if name == TOP_ONLY else model for name in VARIANTS}
        predict(model, images[:args.batch_size], batch_size=args.batch_size)  # warm-up
        rates = {name: [] for name in VARIANTS}
        points = {}
        for _ in range(args.repeats):
            for name, context in VARIANTS.items():
                start = time.perf_counter()
                with context():
                    preds = predict(models[name], images, batch_size=args.batch_size)
                rates[name].append(len(images) / (time.perf_counter() - start))
                points[name] = top_instance(preds, 24).keypoints.float()
        rate = {name: statistics.median(r) for name, r in rates.items()}
        moved = (points["float32"][..., :2] - points["bf16 autocast"][..., :2]).abs().flatten()
        moved = moved[~moved.isnan()]
        print(f"seed {seed}: float32 {rate['float32']:.1f} images/s, bf16 {rate['bf16 autocast']:.1f} "
              f"({rate['bf16 autocast'] / rate['float32']:.2f}x); NE visible "
              + " -> ".join(f"{100 * ne(points[n], val.keypoints, val.categories):.2f} %" for n in VARIANTS)
              + f"; coordinates moved: median {float(moved.median()):.2f} px, max {float(moved.max()):.1f} px")
        same = torch.equal(points["bf16 autocast"].nan_to_num(-1), points[TOP_ONLY].nan_to_num(-1))
        print(f"seed {seed}: bf16 with the top detection only {rate[TOP_ONLY]:.1f} images/s "
              f"({rate[TOP_ONLY] / rate['bf16 autocast']:.2f}x bf16, {rate[TOP_ONLY] / rate['float32']:.2f}x "
              f"float32); its top detection's points {'identical to' if same else 'differ from'} bf16's")


if __name__ == "__main__":
    main()
