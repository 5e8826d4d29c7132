"""Benchmark the synthetic world: images per second per core, beside the rate at which training consumes images.

The issue asks that generation never starve training: one core of on-the-fly generation should produce at least
5x the images per second that a training step consumes. This script times, in one process with one torch thread:

- ``SyntheticGarments`` items (one FashionAI garment, the tensors a detector trains on),
- ``SyntheticPeople`` items (several COCO persons and sometimes a crowd),
- ``SyntheticDeepFashion`` items (a garment with its DeepFashion category, attributes and landmarks),

each at ``--size`` px (median of ``--repeats`` runs of ``--items`` items after a warm-up run), and then the training
consumption of the baseline: one training step (forward, backward, AdamW step) of the ``cpu`` configuration of
``fashion_lib.models.keypoint_rcnn`` on a batch of FashionAI garments, with ``--train-threads`` torch threads (the
whole 2-core machine, as training uses it), median of ``--train-steps`` steps after one warm-up step. When that
module cannot be imported, the baseline is the 17 img/s measured on this machine in
``/work/shared/cpu-profile-notes.md``, and the output says so.

The load average is printed too: on a shared machine every rate drops, the training step's (two threads) most.

Run: ``python benchmarks/synthetic.py [--size 128] [--items 60] [--repeats 5] [--train-steps 3] [--batch 8]``.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import statistics
import time
from collections.abc import Callable

import numpy as np
import PIL
import torch

from fashion_lib.provenance import device_description
from fashion_lib.synthetic import SyntheticDeepFashion, SyntheticGarments, SyntheticPeople, WorldConfig

PROFILE_NOTES_RATE = 17.0  # img/s, /work/shared/cpu-profile-notes.md, fastest Keypoint R-CNN row (2 threads)
TARGET_RATIO = 5.0  # generation per core / training consumption, from the issue


def items_per_second(dataset: torch.utils.data.Dataset, items: int, repeats: int) -> float:
    """Median items/s of reading ``items`` consecutive items, over ``repeats`` runs after one warm-up run."""
    rates = []
    for r in range(repeats + 1):
        start = r * items
        t0 = time.perf_counter()
        for i in range(start, start + items):
            dataset[i]
        elapsed = time.perf_counter() - t0
        if r:  # the first run warms caches (pixel grids, allocator)
            rates.append(items / elapsed)
    return statistics.median(rates)


def training_images_per_second(size: int, batch: int, steps: int, threads: int) -> tuple[float, str] | None:
    """Median images/s of a training step of the cpu Keypoint R-CNN on FashionAI garments; None without it."""
    if importlib.util.find_spec("fashion_lib.models.keypoint_rcnn") is None:
        return None
    from fashion_lib.models.keypoint_rcnn import KeypointRCNNConfig, build_keypoint_rcnn, detection_target

    torch.set_num_threads(threads)
    config = KeypointRCNNConfig.cpu("fashionai", min_size=(size,), max_size=size)
    model = build_keypoint_rcnn(config).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    data = SyntheticGarments(WorldConfig(image_size=size), batch * (steps + 1), seed=0, split="bench")
    batches = [[data[b * batch + i] for i in range(batch)] for b in range(steps + 1)]  # pre-rendered
    times = []
    for b, items in enumerate(batches):
        images = [image for image, _ in items]
        targets = [detection_target(t) for _, t in items]
        t0 = time.perf_counter()
        losses = model(images, targets)
        loss = sum(losses.values())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if b:  # step 0 is the warm-up
            times.append(time.perf_counter() - t0)
    what = (f"KeypointRCNNConfig.cpu('fashionai') training step, batch {batch}, {size} px, {threads} threads, "
            f"{sum(p.numel() for p in model.parameters()) / 1e6:.1f} M parameters")
    return batch / statistics.median(times), what


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128, help="image side in pixels")
    parser.add_argument("--items", type=int, default=60, help="items per timed run")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per generator (median)")
    parser.add_argument("--batch", type=int, default=8, help="training batch size")
    parser.add_argument("--train-steps", type=int, default=3, help="timed training steps (median)")
    parser.add_argument("--train-threads", type=int, default=2, help="torch threads of the training step")
    args = parser.parse_args(argv)

    torch.set_num_threads(1)
    print(f"device: {device_description()}; python {platform.python_version()}, torch {torch.__version__}, "
          f"numpy {np.__version__}, pillow {PIL.__version__}; load average {os.getloadavg()[0]:.1f}")
    print(f"generation: one process, torch.set_num_threads(1), {args.size} px, median of {args.repeats} runs of "
          f"{args.items} items")
    config = WorldConfig(image_size=args.size)
    n = args.items * (args.repeats + 1)
    makers: dict[str, Callable[[], torch.utils.data.Dataset]] = {
        "garments (SyntheticGarments)": lambda: SyntheticGarments(config, n, seed=0, split="bench"),
        "people (SyntheticPeople)": lambda: SyntheticPeople(config, n, seed=0, split="bench"),
        "DeepFashion items (SyntheticDeepFashion)": lambda: SyntheticDeepFashion(config, n, seed=0, split="bench"),
    }
    rates = {name: items_per_second(make(), args.items, args.repeats) for name, make in makers.items()}

    measured = training_images_per_second(args.size, args.batch, args.train_steps, args.train_threads)
    if measured is None:
        train_rate, source = PROFILE_NOTES_RATE, ("fashion_lib.models.keypoint_rcnn not found: the 17 img/s measured "
                                                  "in /work/shared/cpu-profile-notes.md (not timed in this run)")
    else:
        train_rate, source = measured[0], f"measured in this run: {measured[1]}"
    print(f"training consumption: {train_rate:.1f} img/s ({source})")
    print(f"{'generator':<42} {'img/s/core':>10} {'ms/img':>8} {'x training':>10}")
    for name, rate in rates.items():
        print(f"{name:<42} {rate:>10.1f} {1000 / rate:>8.2f} {rate / train_rate:>10.1f}")
    worst = min(rates.values()) / train_rate
    verdict = "meets" if worst >= TARGET_RATIO else "MISSES"
    print(f"slowest generator / training = {worst:.1f}x: {verdict} the target of {TARGET_RATIO:.0f}x")
    if measured is not None:
        print(f"for reference, against the {PROFILE_NOTES_RATE:.0f} img/s of cpu-profile-notes.md (quiet machine): "
              f"{min(rates.values()) / PROFILE_NOTES_RATE:.1f}x")


if __name__ == "__main__":
    main()
