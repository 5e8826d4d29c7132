"""Scoring Table 1's rows: per-seed arrays for the bootstrap and the metrics on them.

FashionAI rows are scored by NE (:func:`ne_arrays`, :func:`ne_metric`), COCO rows by pycocotools' OKS AP
(:func:`coco_arrays`, :func:`coco_metric`); both pairs are the arguments of
:func:`fashion_lib.intervals.crossed_bootstrap_ci`. :func:`ne_over_seeds` gives a row's NE as the ablations' sweeps
plot it (mean and sd over seeds), :func:`per_image_errors` the per-point view behind NE.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch

from fashion_lib.coco_eval import keypoints_to_coco_results
from fashion_lib.data.fashionai import CATEGORIES
from fashion_lib.experiments.keypoints import Instances, Table1Row, ValidationSet
from fashion_lib.report import mean_sd

__all__ = [
    "finite_mean", "coco_results", "ne_arrays", "ne_metric", "ne_over_seeds", "coco_arrays", "coco_metric",
    "per_image_errors", "category_accuracy",
]


def finite_mean(values: torch.Tensor) -> float:
    finite = values[~values.isnan()]
    return float(finite.mean()) if len(finite) else float("nan")


def coco_results(instances: Instances, val: ValidationSet) -> list[dict]:
    """COCO results entries (data-formats.md, D.2) of flattened detections."""
    ids = torch.tensor(val.image_ids, dtype=torch.long)[instances.image_index]
    return keypoints_to_coco_results(ids, instances.keypoints, instances.scores)


def ne_arrays(rows_per_seed: Sequence[dict[Table1Row, Instances]], val: ValidationSet, row: Table1Row) -> list[tuple]:
    """Per seed, ``(pred (B, 24, 3), gt (B, 24, 3), categories)`` of ``row``: the arguments of :func:`ne_metric`."""
    gt, cats = val.keypoints, val.categories
    return [(rows[row].keypoints, gt, cats) for rows in rows_per_seed]


def ne_metric(*, reduce: str = "keypoint", points: str = "visible"):
    """A function ``(pred, gt, categories) -> float`` giving NE (a fraction).

    ``points``: ``"visible"`` (the challenge's rule: ground truth visible), ``"occluded"`` (only points the ground
    truth marks occluded: where the symmetry prior should help) or ``"all"`` (both).
    """
    from fashion_lib.keypoints import OCCLUDED
    from fashion_lib.metrics import keypoint_errors, normalized_error

    if points not in ("visible", "occluded", "all"):
        raise ValueError(f"points must be 'visible', 'occluded' or 'all', got {points!r}")

    def metric(pred: torch.Tensor, gt: torch.Tensor, categories: Sequence[str]) -> float:
        if points != "occluded":
            return normalized_error(pred, gt, categories, reduce=reduce, count_occluded=points == "all").ne
        err = keypoint_errors(pred, gt, categories, count_occluded=True)  # (B, K), nan where not counted
        err = torch.where(torch.as_tensor(gt)[..., 2] == OCCLUDED, err, torch.nan)
        if reduce == "keypoint":
            return float(err.nanmean())
        per_image = err.nanmean(1)
        return float(per_image[~per_image.isnan()].mean())

    return metric


def ne_over_seeds(rows_per_seed: Sequence[dict[Table1Row, Instances]], val: ValidationSet, row: Table1Row,
                  metrics: Mapping[str, Callable[..., float]], *, scale: float = 100.0
                  ) -> dict[str, tuple[float, float]]:
    """Each of ``metrics`` (name -> an :func:`ne_metric`) of ``row`` on every seed: its mean and sd over the seeds,
    times ``scale`` (sd NaN with one seed), the point of a refiner sweep's curve (pages 13 and 15)."""
    arrays = ne_arrays(rows_per_seed, val, row)
    return {name: mean_sd([scale * metric(*a) for a in arrays]) for name, metric in metrics.items()}


def coco_arrays(rows_per_seed: Sequence[dict[Table1Row, Instances]], val: ValidationSet, row: Table1Row) -> list[tuple]:
    """Per seed, ``(results per image (B,) object array, image ids (B,))`` of ``row``: the arguments of
    :func:`coco_metric`."""
    import numpy as np

    ids = np.asarray(val.image_ids, dtype=np.int64)
    out = []
    for rows in rows_per_seed:
        inst = rows[row]
        results = coco_results(inst, val)
        per_image = np.empty(len(ids), dtype=object)
        for j in range(len(ids)):
            per_image[j] = []
        for entry, j in zip(results, inst.image_index.tolist(), strict=True):
            per_image[j].append(entry)
        out.append((per_image, ids))
    return out


def coco_metric(val: ValidationSet, stat: str = "AP"):
    """A function ``(results per image, image ids) -> float``: pycocotools' ``stat`` on those images (repeats
    count as often as drawn, :func:`fashion_lib.coco_eval.coco_ap_on_images`)."""
    from fashion_lib.coco_eval import coco_ap_on_images, load_ground_truth

    if val.annotation_file is None:
        raise ValueError("coco_metric needs a COCO validation set (annotation_file)")
    gt = load_ground_truth(val.annotation_file)

    def metric(per_image, image_ids) -> float:
        return coco_ap_on_images(gt, list(per_image), [int(i) for i in image_ids], stat=stat)

    return metric


def per_image_errors(instances: Instances, val: ValidationSet, *, count_occluded: bool = True) -> torch.Tensor:
    """FashionAI: (B, K) normalised error of every labelled point (visible, and occluded with ``count_occluded``);
    NaN where not counted. The per-point view behind NE, for galleries and per-point gains."""
    from fashion_lib.metrics import keypoint_errors

    return keypoint_errors(instances.keypoints, val.keypoints, val.categories, count_occluded=count_occluded)


def category_accuracy(instances: Instances, val: ValidationSet) -> dict[str, float]:
    """FashionAI: the share of validation garments whose top detection has the right category, overall (key
    ``"all"``) and per category (a detector that has not learnt the task names the wrong garment; an image without
    a detection counts as wrong). ``instances``: a detector's own row (:func:`detected_instances` or
    :func:`table1_rows`), which carries the labels."""
    if instances.labels is None:
        raise ValueError("these instances carry no labels: pass a detector's own row (KRCNN or CPN), not a refined one")
    truth = val.categories
    names = [CATEGORIES[i - 1] if 1 <= i <= len(CATEGORIES) else "" for i in instances.labels.tolist()]
    right = {c: [0, 0] for c in dict.fromkeys(truth)}
    for i, name in zip(instances.image_index.tolist(), names, strict=True):
        right[truth[i]][0] += name == truth[i]
        right[truth[i]][1] += 1
    out = {"all": sum(r for r, _ in right.values()) / max(sum(n for _, n in right.values()), 1)}
    return out | {c: r / n for c, (r, n) in right.items()}
