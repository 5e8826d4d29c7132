"""How far a ``cpu``-preset Keypoint R-CNN gets on the synthetic garments for a given schedule: its learning curve.

Trains the Keypoint R-CNN of :func:`fashion_lib.experiments.keypoints.detector_run` (the book's data, augmentation
and training settings, with ``--steps``, ``--lr`` and ``--amp`` replacing the profile's) and, every ``--eval-every``
steps, scores the top detection of each of the book's validation garments: NE on visible points (the paper's
metric, FashionAI's normaliser) and the share of garments whose detected category is right. The schedule's
cosine decay spans ``--steps``, so a point of the curve before the end is the model in the middle of a longer run,
not a shorter run's end. Prints one row per evaluation and the training images/s.

Run: ``python benchmarks/detector_schedule.py [--steps 600] [--lr 0.001] [--amp] [--eval-every 150]
[--val-images 100] [--seed 0] [--batch-size 8]``. Runs in a temporary folder (nothing is cached).
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import torch

from fashion_lib.engine import train
from fashion_lib.experiments import keypoints as kx
from fashion_lib.keypoints import FASHIONAI
from fashion_lib.metrics import normalized_error
from fashion_lib.models.detector import predict, top_instance
from fashion_lib.synthetic.world import CATEGORIES


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--amp", action="store_true", help="bf16 autocast (where the CPU has native bf16)")
    parser.add_argument("--eval-every", type=int, default=150)
    parser.add_argument("--val-images", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    setup = kx.KeypointSetup(train_steps=args.steps, lr=args.lr, batch_size=args.batch_size,
                             val_images=args.val_images)
    run = kx.detector_run(setup, "keypoint_rcnn", args.seed)
    config = dataclasses.replace(run.train_config, amp=args.amp, eval_every=args.eval_every)
    val = kx.validation_set(setup)
    truth = torch.stack([t["keypoints"][0] for t in val.targets])  # (B, K, 3): one garment per image
    categories = val.categories

    def evaluate(model: torch.nn.Module, step: int) -> dict[str, float]:
        detections = predict(model, val.images, batch_size=16)
        top = top_instance(detections, FASHIONAI.num_keypoints)
        ne = normalized_error(top.keypoints, truth, categories).ne
        # labels are category index + 1; the top detection is the first of each image's score-sorted list
        labels = [int(p["labels"][int(p["scores"].argmax())]) - 1 if len(p["labels"]) else -1 for p in detections]
        right = sum(i >= 0 and CATEGORIES[i] == c for i, c in zip(labels, categories, strict=True))
        row = {"ne_visible": float(ne), "category_right": right / len(categories)}
        print(f"step {step:5d}: NE visible {100 * row['ne_visible']:.1f} %, category right "
              f"{100 * row['category_right']:.0f} %", flush=True)
        return row

    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        result = train(run.build(), kx.training_set(setup, args.seed, args.steps), config, Path(tmp) / "run",
                       evaluate=evaluate, progress=False)
    print(f"steps {args.steps}, lr {args.lr}, amp {args.amp}: {result.images_per_s:.1f} training images/s, "
          f"{time.perf_counter() - start:.0f} s in all")


if __name__ == "__main__":
    main()
