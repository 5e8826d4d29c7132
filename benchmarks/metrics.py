"""Benchmark the metrics: NE (fashion_lib.metrics) on one million instances and COCO key-point AP
(fashion_lib.coco_eval) on 5,000 images.

Each library call is timed beside a plain per-instance Python baseline in the same run, on the same CPU:
- NE: ``normalized_error`` (vectorised) vs a per-instance loop in the style of the public FashionAI scorers; the
  loop runs on a subset (it would take minutes on the full set) and both are reported as instances/s. The two
  results are checked to agree on that subset.
- COCO: ``keypoints_to_coco_results`` vs building the dicts in a per-instance loop, and ``coco_keypoint_ap`` vs a
  direct pycocotools run on the same data (the reference; the difference is our validation overhead).
- Table 2's crossed bootstrap (page 20: 3 seeds, 19,208 validation images over the 8 tasks, a paired difference of
  two rows): ``crossed_bootstrap_ci`` of the challenge's mAP and of the mean accuracy with a loop over replicates
  (the reference) vs ``weighted=True`` (every replicate at once from its bootstrap counts), the same plan; the two
  intervals are checked to agree. Measured on the 2-core machine (quiet, one thread, 50 replicates): mAP 4.09 s
  against 0.34 s (11.9x), mean accuracy 3.46 s against 0.17 s (19.8x); page 20's two bootstrap cells took 45 s in
  the cold cpu book of d667ef6, about 7 min before.

Run: ``python benchmarks/metrics.py [--instances 1000000] [--images 5000] [--boot-images 19208]
[--boot-replicates 50] [--repeats 3] [--threads 1]``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import platform
import statistics
import time
from collections.abc import Callable

import numpy as np
import pycocotools
import torch
from pycocotools.coco import COCO as CocoApi
from pycocotools.cocoeval import COCOeval

from fashion_lib.attributes import FASHIONAI_TASKS, M, N, Y
from fashion_lib.coco_eval import coco_keypoint_ap, keypoints_to_coco_results
from fashion_lib.experiments.table2 import accuracy_metric, map_metric
from fashion_lib.intervals import crossed_bootstrap_ci
from fashion_lib.keypoints import COCO, FASHIONAI
from fashion_lib.metrics import normalized_error


def timed(fn: Callable[[], object], repeats: int) -> tuple[float, object]:
    """Median wall time of ``repeats`` calls after one warm-up call, and the last result."""
    out = fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def fashionai_batch(b: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Random FashionAI-like ground truth and noisy predictions: ``(B, 24, 2)``, ``(B, 24, 3)``, B categories."""
    cats = list(FASHIONAI.normalizer)
    cat_idx = torch.randint(0, len(cats), (b,), generator=generator)
    has = torch.stack([FASHIONAI.category_mask(c) for c in cats])[cat_idx]  # (B, 24)
    xy = torch.rand(b, 24, 2, generator=generator) * 512
    v = torch.where(has, torch.randint(1, 3, (b, 24), generator=generator), 0).float()
    gt = torch.cat([xy * has[..., None], v[..., None]], dim=-1)
    pred = xy + torch.randn(b, 24, 2, generator=generator) * 15
    pred[torch.rand(b, 24, generator=generator) < 0.02] = math.nan  # a few missing predictions
    return pred, gt, [cats[i] for i in cat_idx.tolist()]


def ne_loop(pred: np.ndarray, gt: np.ndarray, categories: list[str]) -> float:
    """Per-instance reference loop: pooled NE over visible points, missing = 1, degenerate normaliser skipped."""
    total, n = 0.0, 0
    for b, cat in enumerate(categories):
        i, j = FASHIONAI.normalizer[cat]
        if gt[b, i, 2] == 0 or gt[b, j, 2] == 0:
            continue
        s = math.hypot(gt[b, i, 0] - gt[b, j, 0], gt[b, i, 1] - gt[b, j, 1])
        if s == 0:
            continue
        for k in range(24):
            if gt[b, k, 2] == 2:
                px, py = pred[b, k]
                total += 1.0 if (math.isnan(px) or math.isnan(py)) else math.hypot(px - gt[b, k, 0],
                                                                                    py - gt[b, k, 1]) / s
                n += 1
    return total / n


def coco_set(n_images: int, generator: torch.Generator) -> tuple[dict, list[int], torch.Tensor, torch.Tensor]:
    """Synthetic COCO person ground truth (1-3 people per image) and noisy detections of every person."""
    per_image = torch.randint(1, 4, (n_images,), generator=generator)
    image_ids = torch.repeat_interleave(torch.arange(1, n_images + 1), per_image)  # (P,)
    p = int(per_image.sum())
    size = torch.rand(p, 1, 1, generator=generator) * 200 + 30  # person box side, pixels: medium and large
    origin = torch.rand(p, 1, 2, generator=generator) * 300
    xy = origin + torch.rand(p, 17, 2, generator=generator) * size
    v = torch.randint(0, 3, (p, 17), generator=generator)
    xy = torch.where((v > 0)[..., None], xy, 0.0)
    anns = []
    for a in range(p):  # building the fixture, not timed
        side = float(size[a])
        anns.append({"id": a + 1, "image_id": int(image_ids[a]), "category_id": 1, "iscrowd": 0,
                     "keypoints": torch.cat([xy[a], v[a, :, None].float()], -1).flatten().tolist(),
                     "num_keypoints": int((v[a] > 0).sum()), "area": side * side * 0.6,
                     "bbox": [float(origin[a, 0, 0]), float(origin[a, 0, 1]), side, side]})
    gt = {"images": [{"id": i, "width": 640, "height": 480} for i in range(1, n_images + 1)], "annotations": anns,
          "categories": [{"id": 1, "name": "person", "keypoints": list(COCO.names)}]}
    pred = xy + torch.randn(p, 17, 2, generator=generator) * size * 0.05
    pred = torch.cat([pred, torch.ones(p, 17, 1)], -1)
    scores = torch.rand(p, generator=generator)
    return gt, image_ids.tolist(), pred, scores


def results_loop(image_ids: list[int], pred: torch.Tensor, scores: torch.Tensor) -> list[dict]:
    """Per-instance construction of COCO results entries."""
    out = []
    for i in range(len(image_ids)):
        kps = []
        for x, y, _ in pred[i].tolist():
            kps += [x, y, 1.0]
        out.append({"image_id": image_ids[i], "category_id": 1, "keypoints": kps, "score": float(scores[i])})
    return out


def pycocotools_direct(gt: dict, results: list[dict]) -> float:
    """The reference: COCO, loadRes, COCOeval with no validation of ours."""
    with contextlib.redirect_stdout(io.StringIO()):
        api = CocoApi()
        api.dataset = {**gt, "annotations": [dict(a) for a in gt["annotations"]]}
        api.createIndex()
        ev = COCOeval(api, api.loadRes([dict(r) for r in results]), iouType="keypoints")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return float(ev.stats[0])


def table2_arrays(n_images: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """One seed's page-20 arrays: ``probs (B, 10)`` (coarse values: many tied thresholds), ``labels (B, 10)`` with
    one ``y`` and some ``m`` per image, ``tasks (B,)`` spread evenly over the 8 tasks."""
    keys = list(FASHIONAI_TASKS)
    tasks = np.array([keys[i % len(keys)] for i in range(n_images)])
    probs, labels = torch.zeros(n_images, 10), torch.full((n_images, 10), N)
    for task in keys:  # over the 8 tasks
        rows = torch.from_numpy(np.flatnonzero(tasks == task))
        c = len(FASHIONAI_TASKS[task])
        p = torch.round(torch.softmax(2 * torch.randn(len(rows), c, generator=generator), 1) * 50) / 50 + 1e-3
        probs[rows, :c] = p / p.sum(1, keepdim=True)
        codes = torch.full((len(rows), c), N)
        y = torch.randint(0, c, (len(rows),), generator=generator)
        codes[torch.arange(len(rows)), y] = Y
        maybe = torch.rand(len(rows), generator=generator) < 0.2
        codes[maybe, (y[maybe] + 1) % c] = M
        labels[rows, :c] = codes
    return probs, labels, tasks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=1_000_000)
    parser.add_argument("--loop-instances", type=int, default=20_000)
    parser.add_argument("--images", type=int, default=5_000)
    parser.add_argument("--boot-images", type=int, default=19_208, help="Table 2 validation images")
    parser.add_argument("--boot-replicates", type=int, default=50, help="bootstrap replicates of each interval")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (shared machines: 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"device: CPU ({platform.processor() or platform.machine()}), torch threads {torch.get_num_threads()}; "
          f"python {platform.python_version()}, torch {torch.__version__}, numpy {np.__version__}, "
          f"pycocotools {getattr(pycocotools, '__version__', 'n/a')}; median of {args.repeats} after a warm-up")

    g = torch.Generator().manual_seed(0)
    pred, gt, cats = fashionai_batch(args.instances, g)
    t_vec, res = timed(lambda: normalized_error(pred, gt, cats), args.repeats)
    n = args.loop_instances
    pred_np, gt_np = pred[:n].double().numpy(), gt[:n].double().numpy()
    t_loop, ne_l = timed(lambda: ne_loop(pred_np, gt_np, cats[:n]), 1)
    ne_v = normalized_error(pred[:n], gt[:n], cats[:n]).ne
    assert abs(ne_v - ne_l) < 1e-9, (ne_v, ne_l)
    print(f"NE, pred {tuple(pred.shape)} gt {tuple(gt.shape)}: normalized_error {t_vec:.3f} s = "
          f"{args.instances / t_vec:,.0f} instances/s (NE {res.ne:.4f}, {res.points:,} points, {res.missing:,} "
          f"missing, {res.excluded} excluded)")
    print(f"NE, per-instance Python loop on the first {n:,}: {t_loop:.3f} s = {n / t_loop:,.0f} instances/s; "
          f"speed-up {t_loop / n * args.instances / t_vec:.0f}x (agrees with the vectorised NE on that subset)")

    gt_coco, image_ids, kps, scores = coco_set(args.images, g)
    p = len(image_ids)
    t_conv, results = timed(lambda: keypoints_to_coco_results(image_ids, kps, scores), args.repeats)
    t_conv_loop, _ = timed(lambda: results_loop(image_ids, kps, scores), args.repeats)
    print(f"COCO results, {p:,} instances x 17 points: keypoints_to_coco_results {t_conv:.3f} s, per-instance "
          f"loop {t_conv_loop:.3f} s")
    t_ap, ap = timed(lambda: coco_keypoint_ap(gt_coco, results), args.repeats)
    t_ref, ap_ref = timed(lambda: pycocotools_direct(gt_coco, results), args.repeats)
    assert ap.AP == ap_ref, (ap.AP, ap_ref)
    print(f"COCO AP, {args.images:,} images, {p:,} people, {p:,} detections: coco_keypoint_ap {t_ap:.2f} s "
          f"(AP {ap.AP:.4f}); pycocotools called directly {t_ref:.2f} s (AP {ap_ref:.4f}); overhead "
          f"{t_ap / t_ref:.2f}x")

    a = [table2_arrays(args.boot_images, g) for _ in range(3)]
    b = [table2_arrays(args.boot_images, g) for _ in range(3)]
    for name, metric in (("mAP", map_metric()), ("mean accuracy", accuracy_metric())):
        cis, times = {}, {}
        for weighted in (False, True):
            times[weighted], cis[weighted] = timed(lambda w=weighted, m=metric: crossed_bootstrap_ci(
                m, a, b, n_boot=args.boot_replicates, generator=torch.Generator().manual_seed(1), weighted=w), 1)
        loop, fast = cis[False], cis[True]
        assert fast.estimate == loop.estimate and abs(fast.low - loop.low) < 1e-8 and abs(fast.high - loop.high) < 1e-8
        print(f"Table 2 crossed bootstrap, {name} difference, 3 seeds x {args.boot_images:,} images, "
              f"{args.boot_replicates} replicates: loop {times[False]:.2f} s, weighted {times[True]:.2f} s, "
              f"speed-up {times[False] / times[True]:.1f}x (the same interval: {100 * fast.low:+.3f} to "
              f"{100 * fast.high:+.3f} points)")


if __name__ == "__main__":
    main()
