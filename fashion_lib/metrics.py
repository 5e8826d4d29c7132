"""Metrics: FashionAI NE, FashionAI attribute accuracy and mAP, DeepFashion top-k.

Paper, section IV: NE on FashionAI (Table 1), per-task accuracy and mAP on FashionAI attributes (Table 2), top-3 /
top-5 recall and top-k category accuracy on DeepFashion (Table 3). Every metric value in the book comes from here or
from :mod:`fashion_lib.coco_eval` (COCO's OKS AP of Table 1, a wrapper of pycocotools), so each function says which
published variant it computes (data-formats.md, A.4, B.4, C.3, D.3) and exposes the disagreements between public
implementations as parameters. Their intervals over seeds and images are built by :mod:`fashion_lib.intervals`.

All functions are pure and take CPU tensors (NumPy arrays are accepted and converted); they return plain Python
``float`` / ``int`` values, never NumPy scalars, except the ``*_weighted`` forms: the bootstrap's fast path, which
score many resamples at once and return one value per resample.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from fashion_lib.attributes import FASHIONAI_TASKS, M, N, Y
from fashion_lib.keypoints import ABSENT, FASHIONAI, OCCLUDED, VISIBLE, KeypointSchema, get_schema

__all__ = [
    "NEResult",
    "keypoint_errors",
    "normalized_error",
    "attribute_accuracy",
    "attribute_ap",
    "attribute_accuracy_weighted",
    "attribute_ap_weighted",
    "AttributeMAP",
    "fashionai_attribute_map",
    "topk_recall",
    "topk_accuracy",
]

logger = logging.getLogger(__name__)


def _as_tensor(x: Any, name: str) -> torch.Tensor:
    try:
        return torch.as_tensor(x)
    except (TypeError, ValueError, RuntimeError) as e:
        raise ValueError(f"{name} must be a tensor or array, got {type(x).__name__} ({e})") from None


# ---------------------------------------------------------------------------------------------------------------
# FashionAI normalised error (NE)
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NEResult:
    """Normalised error of a set of predictions (FashionAI's key-point metric)."""

    ne: float  # NE as a fraction (0.137 is the paper's "13.70 %"); nan when no point was counted
    points: int  # ground-truth points counted (denominator of the pooled NE)
    excluded: int  # instances left out because their normaliser is zero, non-finite or has an absent point
    missing: int  # counted points the model did not predict, each scored ``missing_error``


def _category_index(categories: Sequence[str], schema: KeypointSchema, batch: int) -> torch.Tensor:
    """``(B, 2)`` long: the normaliser point pair of each instance's category."""
    if isinstance(categories, str):
        raise ValueError(f"categories must be a sequence of B = {batch} category names, got the string {categories!r}")
    if len(categories) != batch:
        raise ValueError(f"categories has {len(categories)} names, expected B = {batch} (one per instance)")
    names = tuple(schema.normalizer)
    code = {name: i for i, name in enumerate(names)}
    try:
        # a dict lookup per name is the only per-instance Python step; ints convert to a tensor fastest
        idx = torch.tensor([code[c] for c in categories], dtype=torch.long)
    except (KeyError, TypeError):
        bad = next(i for i, c in enumerate(categories) if not isinstance(c, str) or c not in code)
        raise ValueError(f"categories[{bad}] = {categories[bad]!r} is not a {schema.name} category; "
                         f"valid: {', '.join(names)}") from None
    table = torch.tensor([schema.normalizer[name] for name in names], dtype=torch.long)  # (C, 2)
    return table[idx].reshape(batch, 2)


def _ne_terms(
    pred: Any,
    gt: Any,
    categories: Sequence[str],
    schema: KeypointSchema | str,
    count_occluded: bool,
    missing_error: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-point errors, the excluded-instance mask and the missing-prediction mask (see keypoint_errors)."""
    schema = get_schema(schema)
    pred = _as_tensor(pred, "pred")
    gt = _as_tensor(gt, "gt")
    k = schema.num_keypoints
    if gt.ndim != 3 or gt.shape[1:] != (k, 3):
        raise ValueError(f"gt must have shape (B, {k}, 3) for the {schema.name} schema, got {tuple(gt.shape)}")
    b = gt.shape[0]
    if pred.ndim != 3 or pred.shape[:2] != (b, k) or pred.shape[2] not in (2, 3):
        raise ValueError(f"pred must have shape ({b}, {k}, 2) or ({b}, {k}, 3) to match gt {tuple(gt.shape)}, "
                         f"got {tuple(pred.shape)}")
    if not (isinstance(missing_error, (int, float)) and math.isfinite(missing_error) and missing_error >= 0):
        raise ValueError(f"missing_error must be a finite number >= 0, got {missing_error!r}")
    norm_idx = _category_index(categories, schema, b)  # (B, 2)

    v = gt[..., 2]  # (B, K)
    bad_v = (v != ABSENT) & (v != OCCLUDED) & (v != VISIBLE)
    if bad_v.any():
        i, j = (int(t) for t in torch.nonzero(bad_v)[0])
        raise ValueError(f"gt[{i}, {j}, 2] = {float(v[i, j])}: visibility must be 0 (absent), 1 (occluded) or "
                         "2 (visible) (the library's COCO convention; loaders map FashionAI's -1/0/1 onto it)")
    # float64 throughout, as the reference scorers (NumPy on parsed integers)
    gx, gy = gt[..., 0].double(), gt[..., 1].double()  # (B, K) pixels
    labelled = v > ABSENT
    bad_xy = labelled & ~torch.isfinite(gx + gy)
    if bad_xy.any():
        i, j = (int(t) for t in torch.nonzero(bad_xy)[0])
        raise ValueError(f"gt[{i}, {j}] is labelled (v = {int(v[i, j])}) but has non-finite coordinates")

    rows = torch.arange(b)
    a, c = norm_idx[:, 0], norm_idx[:, 1]
    # the normaliser uses ground truth only, occluded or not (armpits are often occluded: data-formats.md A.4)
    s = torch.hypot(gx[rows, a] - gx[rows, c], gy[rows, a] - gy[rows, c])  # (B,) pixels
    excluded = ~((v[rows, a] > ABSENT) & (v[rows, c] > ABSENT) & torch.isfinite(s) & (s > 0))  # (B,)

    counted = (v >= OCCLUDED) if count_occluded else (v == VISIBLE)  # (B, K)
    counted &= ~excluded[:, None]

    d = torch.hypot(pred[..., 0].double() - gx, pred[..., 1].double() - gy)  # (B, K) pixels
    # where counted, gt is finite, so a non-finite distance means a non-finite prediction
    missing = ~torch.isfinite(d)
    if pred.shape[2] == 3:
        missing |= ~(pred[..., 2] > 0)  # v <= 0 (or NaN): the model did not output the point
    err = torch.where(missing, missing_error, d / torch.where(excluded, 1.0, s)[:, None])
    err = torch.where(counted, err, math.nan)
    return err, excluded, missing & counted


def keypoint_errors(
    pred: torch.Tensor | np.ndarray,
    gt: torch.Tensor | np.ndarray,
    categories: Sequence[str],
    *,
    schema: KeypointSchema | str = FASHIONAI,
    count_occluded: bool = False,
    missing_error: float = 1.0,
) -> torch.Tensor:
    """Normalised error of every counted key point (the terms NE averages).

    Parameters
    ----------
    pred : (B, K, 2) or (B, K, 3) float
        Predicted ``x, y`` in pixels of the same frame as ``gt``; an optional third column is the predicted
        visibility or confidence. A point with a non-finite coordinate, or a third column ``<= 0``, is a *missing*
        prediction: it scores ``missing_error``, never silently dropped.
    gt : (B, K, 3) float or int
        Ground truth ``x, y`` in pixels and ``v`` in the library's convention (0 absent, 1 occluded, 2 visible).
    categories : sequence of B str
        Category of each instance (``blouse``, ``outwear``, ``dress``, ``skirt``, ``trousers``; ``person`` with
        ``schema=COCO``); it selects the normaliser pair from ``schema.normalizer``.
    schema : KeypointSchema or str
        ``FASHIONAI`` (K = 24) or ``COCO`` (K = 17; normaliser = shoulder distance, a study choice, not a COCO
        metric).
    count_occluded : bool
        ``False``: only visible ground-truth points count (FashionAI's ``v == 1``, 5 of 6 public implementations).
        ``True``: occluded points count too (HiKapok/tf.fashionAI's variant).
    missing_error : float
        Error of a missing prediction, in normaliser units (1.0 = 100 % of the normaliser, as antgo and luoyetx).

    Returns
    -------
    errors : (B, K) float64
        ``||pred - gt|| / s`` where ``s`` is the ground-truth distance between the category's two normaliser
        points (armpits for blouse, outwear, dress; waistband for skirt, trousers). ``nan`` where the point is
        not counted: ground truth not visible (or absent, with ``count_occluded``), or the instance is excluded
        (a normaliser point absent, or ``s`` zero or non-finite). Which points exist is decided by the ground
        truth alone, as in every public implementation; the category only picks the normaliser.

    Raises
    ------
    ValueError
        Shapes disagree, a category is unknown (its index is named), ``gt`` has a visibility outside
        {0, 1, 2} or a labelled point with non-finite coordinates, or ``missing_error`` is negative.
    """
    err, _, _ = _ne_terms(pred, gt, categories, schema, count_occluded, missing_error)
    return err


def normalized_error(
    pred: torch.Tensor | np.ndarray,
    gt: torch.Tensor | np.ndarray,
    categories: Sequence[str],
    *,
    reduce: Literal["keypoint", "image"] = "keypoint",
    schema: KeypointSchema | str = FASHIONAI,
    count_occluded: bool = False,
    missing_error: float = 1.0,
) -> NEResult:
    """FashionAI normalised error, NE (data-formats.md, A.4).

    ``NE = sum_ik e_ik delta_ik / sum_ik delta_ik`` with ``e_ik`` from :func:`keypoint_errors` and ``delta_ik``
    marking the counted points.

    Parameters
    ----------
    pred, gt, categories, schema, count_occluded, missing_error
        As in :func:`keypoint_errors`: ``pred (B, K, 2|3)``, ``gt (B, K, 3)``, ``B`` category names.
    reduce : {"keypoint", "image"}
        ``"keypoint"`` pools all counted points of the set (sum, then divide: the challenge's standard, as
        gathierry, hikapok, yuanyuanli85, xiangyu). ``"image"`` averages each instance's counted points, then the
        instances that have any (antgo's variant).

    Returns
    -------
    NEResult
        ``ne`` (a fraction; ``nan`` if no point was counted), ``points`` counted, ``excluded`` instances (their
        points are not counted), ``missing`` predictions among the counted points.
    """
    if reduce not in ("keypoint", "image"):
        raise ValueError(f"reduce must be 'keypoint' or 'image', got {reduce!r}")
    err, excluded, missing = _ne_terms(pred, gt, categories, schema, count_occluded, missing_error)
    counted = ~torch.isnan(err)  # (B, K)
    points = int(counted.sum())
    total = torch.where(counted, err, 0.0)
    if reduce == "keypoint":
        ne = float(total.sum() / points) if points else math.nan
    else:
        per_image_n = counted.sum(1)  # (B,)
        has = per_image_n > 0
        per_image = total.sum(1)[has] / per_image_n[has]
        ne = float(per_image.mean()) if bool(has.any()) else math.nan
    n_excluded = int(excluded.sum())
    if n_excluded:
        logger.debug("normalized_error: %d of %d instances excluded (degenerate normaliser)", n_excluded, len(err))
    return NEResult(ne=ne, points=points, excluded=n_excluded, missing=int(missing.sum()))


# ---------------------------------------------------------------------------------------------------------------
# FashionAI attributes
# ---------------------------------------------------------------------------------------------------------------


def _check_scores_labels(scores: Any, labels: Any, scores_name: str, labels_name: str) -> tuple[torch.Tensor, ...]:
    s = _as_tensor(scores, scores_name)
    y = _as_tensor(labels, labels_name)
    if s.ndim != 2 or not s.is_floating_point():
        raise ValueError(f"{scores_name} must be a (B, C) float tensor, got shape {tuple(s.shape)} dtype {s.dtype}")
    if y.shape != s.shape:
        raise ValueError(f"{labels_name} must have the shape of {scores_name} {tuple(s.shape)}, got {tuple(y.shape)}")
    if not torch.isfinite(s).all():
        i, j = (int(t) for t in torch.nonzero(~torch.isfinite(s))[0])
        raise ValueError(f"{scores_name}[{i}, {j}] = {s[i, j].item()}: scores must be finite")
    return s, y


def _check_codes(labels: torch.Tensor, name: str) -> None:
    bad = (labels != Y) & (labels != M) & (labels != N)
    if bad.any():
        i, j = (int(t) for t in torch.nonzero(bad)[0])
        raise ValueError(f"{name}[{i}, {j}] = {labels[i, j].item()}: expected a label code N={N}, M={M} or Y={Y} "
                         "(fashion_lib.attributes)")


def _top1_codes(probs: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(B,)`` top probability (float64) and ``(B,)`` label code at the arg-max (first index on ties)."""
    p = probs.double()
    # torch.argmax does not promise the first maximal index; the reference (np.argmax) does
    top = p.max(dim=1, keepdim=True).values  # (B, 1)
    first = (p == top).to(torch.uint8).argmax(dim=1)  # (B,) argmax of a 0/1 tensor returns its first 1
    return top[:, 0], labels.gather(1, first[:, None])[:, 0]


def attribute_accuracy(
    logits_or_probs: torch.Tensor | np.ndarray,
    labels: torch.Tensor | np.ndarray,
    *,
    ignore_maybe: bool = False,
) -> float:
    """Per-task top-1 accuracy on FashionAI attribute samples (the paper's Table 2 task columns).

    Parameters
    ----------
    logits_or_probs : (B, C) float
        Scores of one task's ``C`` classes (a monotone transform such as softmax does not change the result).
    labels : (B, C) long
        Codes ``Y``, ``M``, ``N`` from :mod:`fashion_lib.attributes`.
    ignore_maybe : bool
        ``False``: a top-1 on an ``m`` class is wrong. ``True``: such samples are left out, which makes this the
        per-task precision at threshold 0 behind the challenge's BasicPrecision.

    Returns
    -------
    accuracy : float
        Fraction of samples that have a ``y`` whose top-1 class (first index on ties) is a ``y``; samples
        without any ``y`` are left out. ``nan`` if no sample is left.
    """
    s, y = _check_scores_labels(logits_or_probs, labels, "logits_or_probs", "labels")
    _check_codes(y, "labels")
    _, code = _top1_codes(s, y)
    keep = (y == Y).any(dim=1)
    if ignore_maybe:
        keep &= code != M
    n = int(keep.sum())
    return float((code[keep] == Y).sum() / n) if n else math.nan


def attribute_ap(
    probs: torch.Tensor | np.ndarray,
    labels: torch.Tensor | np.ndarray,
    *,
    variant: Literal["wangxin", "antgo"] = "wangxin",
) -> float:
    """FashionAI attribute AP of one task (data-formats.md, B.4; the official page could not be read).

    For a threshold ``t`` a sample whose top probability ``p_max < t`` is skipped; otherwise a top-1 on a ``y``
    class is a correct prediction, on an ``n`` a wrong one, on an ``m`` ignored. ``P(t) = correct / predicted``.

    Parameters
    ----------
    probs : (B, C) float
        Class probabilities of one task (softmax output).
    labels : (B, C) long
        Codes ``Y``, ``M``, ``N``.
    variant : {"wangxin", "antgo"}
        ``"wangxin"`` (WangXin93/tianchi-fashionai-challenge ``utils/metric.py`` ``AP``): the mean of ``P(t)``
        over ``t`` = every sample's ``p_max``, samples whose top-1 is an ``m`` included as thresholds; tied
        ``p_max`` values are one threshold each, with all tied samples counted. A threshold at which no ``y``/``n``
        sample passes is left out of the mean (the reference would divide by zero).
        ``"antgo"`` (jianzfb/antgo ``ali_fashion_attribute_error.py``): only ``y``/``n`` top-1 samples; sort by
        ``p_max`` descending (ties keep input order) and average the running precision.

    Returns
    -------
    ap : float
        In ``[0, 1]``; ``nan`` if no sample's top-1 is a ``y`` or ``n`` class.
    """
    if variant not in ("wangxin", "antgo"):
        raise ValueError(f"variant must be 'wangxin' or 'antgo', got {variant!r}")
    s, y = _check_scores_labels(probs, labels, "probs", "labels")
    _check_codes(y, "labels")
    p, code = _top1_codes(s, y)  # (B,), (B,)
    hit = (code == Y).double()
    scored = ((code == Y) | (code == N)).double()
    if variant == "antgo":
        order = torch.sort(p[scored > 0], descending=True, stable=True).indices
        h = hit[scored > 0][order]
        if h.numel() == 0:
            return math.nan
        running = h.cumsum(0) / torch.arange(1, h.numel() + 1, dtype=torch.float64)
        return float(running.mean())
    # wangxin: counts of samples with p >= t for every threshold t = p_i, through a suffix sum over sorted p
    p_sorted, order = torch.sort(p)  # ascending
    zero = torch.zeros(1, dtype=torch.float64)
    suffix_hit = torch.cat([hit[order].flip(0).cumsum(0).flip(0), zero])  # (B + 1,): sum over sorted[i:]
    suffix_scored = torch.cat([scored[order].flip(0).cumsum(0).flip(0), zero])
    first = torch.searchsorted(p_sorted, p, side="left")  # (B,) first sorted index with p_sorted >= t
    n_pred = suffix_scored[first]
    ok = n_pred > 0
    if not bool(ok.any()):
        return math.nan
    return float((suffix_hit[first][ok] / n_pred[ok]).mean())


def _check_weights(weights: Any, n: int) -> torch.Tensor:
    w = _as_tensor(weights, "weights").double()
    if w.ndim != 2 or w.shape[1] != n:
        raise ValueError(f"weights must be (R, {n}) (one row per resample, one column per sample), got shape "
                         f"{tuple(w.shape)}")
    if not torch.isfinite(w).all() or bool((w < 0).any()):
        raise ValueError("weights must be finite and >= 0 (how often each sample is drawn)")
    return w


def _nan_where_zero(x: torch.Tensor) -> torch.Tensor:
    return x.where(x > 0, torch.tensor(math.nan, dtype=torch.float64))


def attribute_accuracy_weighted(logits_or_probs: Any, labels: Any, weights: Any) -> torch.Tensor:
    """:func:`attribute_accuracy` of ``R`` resamples at once (the bootstrap's fast path): ``weights (R, B)``
    float, how often resample ``r`` draws sample ``i``; returns ``(R,)`` float64, each the reference's value on
    that resample (``nan`` where no drawn sample has a ``y``)."""
    s, y = _check_scores_labels(logits_or_probs, labels, "logits_or_probs", "labels")
    _check_codes(y, "labels")
    w = _check_weights(weights, s.shape[0])
    _, code = _top1_codes(s, y)
    keep = (y == Y).any(dim=1).double()  # (B,)
    return (w @ (keep * (code == Y).double())) / _nan_where_zero(w @ keep)


def attribute_ap_weighted(probs: Any, labels: Any, weights: Any) -> torch.Tensor:
    """:func:`attribute_ap` (``"wangxin"``) of ``R`` resamples at once: ``weights (R, B)`` as in
    :func:`attribute_accuracy_weighted`; returns ``(R,)`` float64 (``nan`` where no threshold counts).

    Sample ``i`` drawn ``w_ri`` times is ``w_ri`` thresholds ``p_i`` and counts ``w_ri`` times at each threshold it
    passes: ``AP_r = sum_i w_ri P_r(p_i) / sum_i w_ri`` over the thresholds that some ``y``/``n`` sample passes,
    ``P_r(t)`` the weighted share of hits among the scored samples with ``p >= t``; one sort for all resamples.
    """
    s, y = _check_scores_labels(probs, labels, "probs", "labels")
    _check_codes(y, "labels")
    w = _check_weights(weights, s.shape[0])
    p, code = _top1_codes(s, y)
    hit, scored = (code == Y).double(), ((code == Y) | (code == N)).double()
    p_sorted, order = torch.sort(p)  # ascending
    zero = torch.zeros(w.shape[0], 1, dtype=torch.float64)
    w_sorted = w[:, order]  # (R, B)
    suffix_hit = torch.cat([(w_sorted * hit[order]).flip(1).cumsum(1).flip(1), zero], dim=1)  # (R, B + 1)
    suffix_scored = torch.cat([(w_sorted * scored[order]).flip(1).cumsum(1).flip(1), zero], dim=1)
    first = torch.searchsorted(p_sorted, p, side="left")  # (B,) first sorted index with p_sorted >= p_i
    n_pred = suffix_scored[:, first]  # (R, B)
    ok = n_pred > 0
    precision = torch.where(ok, suffix_hit[:, first] / n_pred.clamp_min(1e-300), 0.0)
    return (w * precision).sum(1) / _nan_where_zero((w * ok).sum(1))


@dataclass(frozen=True)
class AttributeMAP:
    """FashionAI attribute results over several tasks."""

    ap: dict[str, float]  # AttrKey -> AP (attribute_ap)
    map: float  # mean of ``ap`` over the tasks given (the challenge's mAP uses all 8)
    basic_precision: float  # mean over tasks of the precision at threshold 0 (y correct, n wrong, m ignored)
    precision: dict[str, float]  # AttrKey -> precision at threshold 0
    accuracy: dict[str, float]  # AttrKey -> attribute_accuracy (top-1 on samples with a y; m counts as wrong)
    variant: str  # which AP variant was computed


def fashionai_attribute_map(
    probs_by_task: Mapping[str, torch.Tensor | np.ndarray],
    labels_by_task: Mapping[str, torch.Tensor | np.ndarray],
    *,
    variant: Literal["wangxin", "antgo"] = "wangxin",
) -> AttributeMAP:
    """FashionAI attribute mAP (mean of :func:`attribute_ap` over tasks), BasicPrecision and per-task accuracy.

    Parameters
    ----------
    probs_by_task : mapping AttrKey -> (B_t, C_t) float
        Class probabilities per task; ``C_t`` must equal the task's class count in ``FASHIONAI_TASKS``.
    labels_by_task : mapping AttrKey -> (B_t, C_t) long
        Label codes per task, with the same keys.
    variant : {"wangxin", "antgo"}
        AP variant (see :func:`attribute_ap`).

    Returns
    -------
    AttributeMAP
        mAP over the tasks given; the challenge's number needs all 8. ``BasicPrecision`` is the mean over tasks
        of the precision at ProbThreshold = 0 (data-formats.md B.4, quoting the official page via lexuszhi).
    """
    if set(probs_by_task) != set(labels_by_task):
        raise ValueError(f"probs_by_task and labels_by_task must have the same tasks, got {sorted(probs_by_task)} "
                         f"and {sorted(labels_by_task)}")
    if not probs_by_task:
        raise ValueError("probs_by_task is empty; expected at least one FashionAI attribute task")
    ap, precision, accuracy = {}, {}, {}
    for task in probs_by_task:  # a loop over the 8 tasks, not over samples
        if task not in FASHIONAI_TASKS:
            raise ValueError(f"probs_by_task: unknown attribute task {task!r}; valid: {', '.join(FASHIONAI_TASKS)}")
        probs = _as_tensor(probs_by_task[task], f"probs_by_task[{task!r}]")
        n_cls = len(FASHIONAI_TASKS[task])
        if probs.ndim != 2 or probs.shape[1] != n_cls:
            raise ValueError(f"probs_by_task[{task!r}] must have shape (B, {n_cls}), got {tuple(probs.shape)}")
        labels = labels_by_task[task]
        s, y = _check_scores_labels(probs, labels, f"probs_by_task[{task!r}]", f"labels_by_task[{task!r}]")
        _check_codes(y, f"labels_by_task[{task!r}]")
        ap[task] = attribute_ap(s, y, variant=variant)
        _, code = _top1_codes(s, y)
        n_pred = int(((code == Y) | (code == N)).sum())
        precision[task] = float((code == Y).sum() / n_pred) if n_pred else math.nan
        accuracy[task] = attribute_accuracy(s, y)
    return AttributeMAP(
        ap=ap,
        map=float(np.mean(list(ap.values()))),
        basic_precision=float(np.mean(list(precision.values()))),
        precision=precision,
        accuracy=accuracy,
        variant=variant,
    )


# ---------------------------------------------------------------------------------------------------------------
# DeepFashion (FashionNet protocol)
# ---------------------------------------------------------------------------------------------------------------


def _check_k(k: int, n: int, name: str) -> None:
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k:
        raise ValueError(f"k must be an integer >= 1, got {k!r}")
    if k > n:
        raise ValueError(f"k = {k} exceeds the number of {name} ({n})")


def _topk_mask(scores: torch.Tensor, k: int) -> torch.Tensor:
    """``(B, A)`` bool: the ``k`` highest scores per row; ties go to the lower index (stable sort)."""
    order = torch.sort(scores, dim=1, descending=True, stable=True).indices[:, :k]  # (B, k)
    mask = torch.zeros_like(scores, dtype=torch.bool)
    return mask.scatter_(1, order, True)


def topk_recall(
    scores: torch.Tensor | np.ndarray,
    labels: torch.Tensor | np.ndarray,
    k: int,
    groups: Mapping[str, Sequence[int] | torch.Tensor] | None = None,
) -> dict[str, float]:
    """DeepFashion attribute top-k recall, pooled over images (FashionNet protocol, data-formats.md C.3).

    Follows fdjingyuan/Deep-Fashion-Analysis-ECCV2018 ``Evaluator.attr_count``: per image, the number of positive
    attributes among its ``k`` highest scores is added to TP and its number of positives to GT;
    ``recall = sum TP / sum GT``. A group's recall ranks the image's scores *within that group only*.

    Parameters
    ----------
    scores : (B, A) float
        Attribute scores (any monotone transform of the probabilities).
    labels : (B, A) int or bool
        1 for a positive attribute, 0 otherwise (DeepFashion's -1 mapped to 0 by the loader).
    k : int
        Cut-off (the paper reports 3 and 5). Ties at the cut-off go to the lower attribute index.
    groups : mapping name -> indices, optional
        Attribute indices of each group (DeepFashion's texture, fabric, shape, part, style).

    Returns
    -------
    recall : dict
        ``"all"`` and one entry per group; ``nan`` where the group has no positive label.
    """
    s = _as_tensor(scores, "scores")
    y = _as_tensor(labels, "labels")
    if s.ndim != 2 or not s.is_floating_point():
        raise ValueError(f"scores must be a (B, A) float tensor, got shape {tuple(s.shape)} dtype {s.dtype}")
    if y.shape != s.shape:
        raise ValueError(f"labels must have the shape of scores {tuple(s.shape)}, got {tuple(y.shape)}")
    if not ((y == 0) | (y == 1)).all():
        i, j = (int(t) for t in torch.nonzero((y != 0) & (y != 1))[0])
        raise ValueError(f"labels[{i}, {j}] = {y[i, j].item()}: expected 0 or 1 (map DeepFashion's -1 to 0)")
    _check_k(k, s.shape[1], "attributes")
    y = y.to(torch.int64)
    out = {"all": _recall(s, y, k)}
    for name, idx in (groups or {}).items():
        idx = _as_tensor(idx, f"groups[{name!r}]").long()
        if idx.ndim != 1 or idx.numel() == 0 or idx.min() < 0 or idx.max() >= s.shape[1]:
            raise ValueError(f"groups[{name!r}] must be a non-empty 1-D list of indices in [0, {s.shape[1]})")
        _check_k(k, idx.numel(), f"attributes in groups[{name!r}]")
        out[name] = _recall(s[:, idx], y[:, idx], k)
    return out


def _recall(scores: torch.Tensor, labels: torch.Tensor, k: int) -> float:
    gt = int(labels.sum())
    tp = int((labels * _topk_mask(scores, k)).sum())
    return tp / gt if gt else math.nan


def topk_accuracy(logits: torch.Tensor | np.ndarray, target: torch.Tensor | np.ndarray, k: int) -> float:
    """Top-k category accuracy over all samples (DeepFashion: k = 1, 3, 5 over 50 categories).

    Parameters
    ----------
    logits : (B, C) float
        Class scores.
    target : (B,) long
        True class index in ``[0, C)``.
    k : int
        Cut-off; ties at the cut-off go to the lower class index.

    Returns
    -------
    accuracy : float
        Fraction of samples whose target is among the top ``k``, pooled over all samples (fdjingyuan averages
        per-batch accuracies, which differs when the last batch is smaller). ``nan`` for ``B = 0``.
    """
    s = _as_tensor(logits, "logits")
    t = _as_tensor(target, "target")
    if s.ndim != 2 or not s.is_floating_point():
        raise ValueError(f"logits must be a (B, C) float tensor, got shape {tuple(s.shape)} dtype {s.dtype}")
    if t.shape != s.shape[:1] or t.is_floating_point():
        raise ValueError(f"target must be ({s.shape[0]},) integers, got shape {tuple(t.shape)} dtype {t.dtype}")
    if t.numel() and (t.min() < 0 or t.max() >= s.shape[1]):
        i = int(torch.nonzero((t < 0) | (t >= s.shape[1]))[0])
        raise ValueError(f"target[{i}] = {int(t[i])} is outside [0, {s.shape[1]})")
    _check_k(k, s.shape[1], "classes")
    if s.shape[0] == 0:
        return math.nan
    hit = _topk_mask(s, k).gather(1, t.long()[:, None])  # (B, 1)
    return float(hit.double().mean())
