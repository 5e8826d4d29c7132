"""Which unit of ``d`` should the refiner's command line default to? Measured on real COCO persons.

Not a speed benchmark: the measurement behind ``fashion_lib.refine_cli.CLI_D_UNIT`` and ``CLI_RELATIVE_D``.

Input: the real COCO excerpt (``../shared/real-samples/coco/test_coco.json``: 4 val2017 images, 12 persons with key
points). Each seed turns its ground truth into "detections": every labelled point gets Gaussian noise of
``--noise`` x sqrt(area) pixels, a ``--gross`` share of them an extra error of 0.25 x sqrt(area) in a random
direction (a confused part), and a ``--drop`` share is dropped (written 0, 0, 0, which the refiner may fill).
For each setting the refined detections are scored with pycocotools (``fashion_lib.coco_eval.coco_keypoint_ap``);
the table gives the mean AP over the seeds, its change against the unrefined detections (mean and the number of
seeds where it rose / fell), and the instances that got an axis. All settings use the command line's absurd-point
check (100 radii), which flags nothing here.

Run: ``python benchmarks/refine_d_unit.py [--seeds 20]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import numpy as np
import torch

from fashion_lib.coco_eval import coco_keypoint_ap
from fashion_lib.refine import RefineConfig
from fashion_lib.refine_cli import CLI_ABSURD_FACTOR, refine_results

GT = Path(__file__).resolve().parents[2] / "shared" / "real-samples" / "coco" / "test_coco.json"

SETTINGS = {  # label -> overrides of the paper's COCO parameters (k 10, n 4, m 6, d 1, alpha 0.4)
    "paper: d 1 px": {},
    "d 3 px": {"d": 3.0},
    "d 10 px": {"d": 10.0},
    "relative d 0.02": {"d_unit": "relative", "d": 0.02},
    "relative d 0.05": {"d_unit": "relative", "d": 0.05},
    "relative d 0.1": {"d_unit": "relative", "d": 0.1},
    "relative d 0.2": {"d_unit": "relative", "d": 0.2},
    "relative d 0.1, m 4": {"d_unit": "relative", "d": 0.1, "m": 4},
}


def detections(gt: dict, seed: int, noise: float, gross: float, drop: float) -> list[dict]:
    """The ground truth's persons as COCO results, with seeded noise, gross errors and dropped points."""
    rng = np.random.default_rng(seed)
    out = []
    for ann in gt["annotations"]:
        if not ann["num_keypoints"]:
            continue
        kps = np.asarray(ann["keypoints"], dtype=np.float64).reshape(17, 3)
        labelled = kps[:, 2] > 0
        scale = np.sqrt(ann["area"])
        xy = kps[:, :2] + rng.normal(0.0, noise * scale, (17, 2))
        angle = rng.uniform(0, 2 * np.pi, 17)
        confused = rng.random(17) < gross
        xy += confused[:, None] * 0.25 * scale * np.stack([np.cos(angle), np.sin(angle)], -1)
        keep = labelled & (rng.random(17) >= drop)
        det = np.where(keep[:, None], np.concatenate([xy, np.ones((17, 1))], -1), 0.0)
        out.append({"image_id": ann["image_id"], "category_id": 1, "keypoints": det.reshape(-1).tolist(),
                    "score": 1.0})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--noise", type=float, default=0.03, help="Gaussian noise, fraction of sqrt(area)")
    parser.add_argument("--gross", type=float, default=0.1, help="share of points with a 0.25 sqrt(area) error")
    parser.add_argument("--drop", type=float, default=0.1, help="share of labelled points dropped")
    args = parser.parse_args()
    gt = json.loads(GT.read_text())
    base_ap, rows = [], {label: ([], []) for label in SETTINGS}
    for seed in range(args.seeds):
        dets = detections(gt, seed, args.noise, args.gross, args.drop)
        base_ap.append(coco_keypoint_ap(gt, dets).AP)
        for label, overrides in SETTINGS.items():
            cfg = RefineConfig.for_schema("coco", absurd_factor=CLI_ABSURD_FACTOR, **overrides)
            refined, summary = refine_results(dets, "coco", generator=torch.Generator().manual_seed(seed), config=cfg)
            rows[label][0].append(coco_keypoint_ap(gt, refined).AP)
            rows[label][1].append(summary.with_axis)
    n = len(dets)
    print(f"real COCO excerpt, {n} persons x {args.seeds} seeds; noise {args.noise} sqrt(area), gross errors "
          f"{args.gross:.0%}, dropped {args.drop:.0%}; AP of the unrefined detections {statistics.mean(base_ap):.4f}")
    print(f"{'setting':<22} {'mean AP':>8} {'change':>8} {'rose/fell':>10} {'axes (of ' + str(n) + ')':>14}")
    for label, (aps, axes) in rows.items():
        diff = [a - b for a, b in zip(aps, base_ap, strict=True)]
        print(f"{label:<22} {statistics.mean(aps):8.4f} {statistics.mean(diff):+8.4f} "
              f"{sum(d > 1e-12 for d in diff):>5}/{sum(d < -1e-12 for d in diff):<4} {statistics.mean(axes):14.1f}")


if __name__ == "__main__":
    main()
