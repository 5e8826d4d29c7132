"""Per-point errors of Table 1's rows: COCO persons matched to detections, limbs, filled points, per-point changes.

COCO's metric is OKS AP; for per-point analysis each annotated person is matched to one detection
(:func:`coco_point_errors`) and its errors divided by its shoulder distance, with every row of a seed matched on
the same detections (:func:`seed_point_errors`). FashionAI's per-point errors are NE's
(:func:`~fashion_lib.experiments.keypoint_scores.per_image_errors`). On top of both: what the fill was worth
(:func:`fill_errors`), the change per limb with its interval (:func:`limb_error_changes`) and per key point
(:func:`row_point_changes`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from fashion_lib.experiments.keypoint_scores import finite_mean, per_image_errors
from fashion_lib.experiments.keypoints import KRCNN, NKD, Instances, Table1Row, ValidationSet
from fashion_lib.keypoints import OCCLUDED, VISIBLE, KeypointSchema, get_schema
from fashion_lib.refine import RefineResult

__all__ = [
    "FillErrors", "fill_errors", "filled_point_errors", "coco_point_errors", "seed_point_errors",
    "second_scale_counts", "coco_error_arrays", "limb_change_metric", "limb_error_changes", "limb_change_table",
    "PointChanges", "point_changes", "row_point_changes",
]


@dataclass(frozen=True)
class FillErrors:
    """What the points one refiner pass filled were worth (:func:`fill_errors`); how many it filled, and the rest
    of what it did, is its :class:`fashion_lib.refine.RefineSummary`."""

    scored: int  # filled points the ground truth labels (visible or occluded): the ones the NE below is over
    ne_before: float  # NE (fraction) of those points where the detector put them
    ne_after: float  # ... and after the fill (NaN when none was filled)


def fill_errors(detected: Instances, result: RefineResult, val: ValidationSet, *,
                schema: str = "fashionai") -> FillErrors:
    """The mean NE of the points one refiner pass (``result``, for the instances ``detected``) filled, before and
    after the fill, over the filled points the validation set labels (:func:`filled_point_errors`)."""
    before, after = filled_point_errors(detected, result, val, schema=schema)
    scored = ~after.isnan()
    return FillErrors(scored=int(scored.sum()), ne_before=finite_mean(before[scored]),
                      ne_after=finite_mean(after[scored]))


def filled_point_errors(detected: Instances, result: RefineResult, val: ValidationSet, *,
                        schema: str = "fashionai") -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised error of every filled point, where the detector put it and where the fill put it.

    FashionAI: NE's per-point error (the garment's normaliser); COCO: the error against the matched person
    divided by its shoulder distance (:func:`coco_point_errors`). Points the ground truth does not label, or
    whose detection had no coordinates, are NaN.

    Returns
    -------
    before, after : (F,) float each, F = ``result.filled.sum()`` (in the order of ``result.filled.nonzero()``).
    """
    if schema == "fashionai":
        from fashion_lib.metrics import keypoint_errors

        cats = [val.categories[i] for i in detected.image_index.tolist()]
        gt = val.keypoints[detected.image_index]
        before = keypoint_errors(detected.keypoints, gt, cats, count_occluded=True)  # (B, K), NaN where not counted
        after = keypoint_errors(result.keypoints, gt, cats, count_occluded=True)
        return before[result.filled], after[result.filled]
    # persons matched on the detector's own boxes: the fill moves the boxes, and the same detection must be scored
    # before and after it (coco_point_errors)
    gt, person_of = _coco_matches(detected, val)  # (N, 17, 3), (N,) detection of each person (-1: none)
    has = person_of >= 0
    # (T, 17) error of each detection's points against its person (NaN for detections matching nobody)
    before = torch.full(result.filled.shape, float("nan"))
    after = torch.full(result.filled.shape, float("nan"))
    if bool(has.any()):
        from fashion_lib.metrics import keypoint_errors

        idx, people = person_of[has], gt[has]
        names = ["person"] * len(people)
        # keypoint_errors computes in the wider of its inputs' dtypes: store in the table's
        before[idx] = keypoint_errors(detected.keypoints[idx], people, names, schema="coco",
                                      count_occluded=True).to(before.dtype)
        after[idx] = keypoint_errors(result.keypoints[idx], people, names, schema="coco",
                                     count_occluded=True).to(after.dtype)
    return before[result.filled], after[result.filled]


def _coco_matches(instances: Instances, val: ValidationSet, *, min_iou: float = 0.5
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """COCO: the N annotated persons' key points (N, 17, 3) and the index of the detection whose key-point box
    overlaps each person's box most, IoU >= ``min_iou`` (-1: none), (N,) long."""
    from torchvision.ops import box_iou

    from fashion_lib.data.transforms import keypoint_boxes

    gts, picks = [], []
    for j, t in enumerate(val.targets):  # over images: matching is per image
        people = _annotated_people(t)
        gt = t["keypoints"][people]
        if not len(gt):
            continue
        mine = torch.nonzero(instances.image_index == j)[:, 0]
        pick = torch.full((len(gt),), -1, dtype=torch.long)
        if len(mine):
            pred = instances.keypoints[mine]
            finite = torch.nan_to_num(pred)
            pred_boxes = keypoint_boxes(torch.cat([finite[..., :2], (pred[..., 2:] > 0).float()], -1), margin=0.0)
            best_iou, best = box_iou(t["boxes"][people], pred_boxes).max(1)  # (G,)
            pick = torch.where(best_iou >= min_iou, mine[best], pick)
        gts.append(gt)
        picks.append(pick)
    if not gts:
        return torch.zeros(0, 17, 3), torch.zeros(0, dtype=torch.long)
    return torch.cat(gts), torch.cat(picks)


def _annotated_people(target: dict) -> torch.Tensor:
    """(G,) bool: the image's annotations that are persons with at least one labelled point (not crowd regions)."""
    return (target["iscrowd"] == 0) & (target["keypoints"][..., 2] > 0).any(-1)


def coco_point_errors(instances: Instances, val: ValidationSet, *, reference: Instances | None = None,
                      min_iou: float = 0.5) -> torch.Tensor:
    """COCO: (N, 17) error of every labelled point of the N annotated persons, divided by the person's shoulder
    distance, against the detection whose key-point box overlaps the person's box most (IoU >= ``min_iou``; a
    person without such a detection gets NaN). For per-point analysis only: COCO's metric is OKS AP.

    ``reference``: the instances whose key-point boxes pick each person's detection, the same detections as
    ``instances`` in the same order (e.g. the seed's detector row, from which its refined rows derive); None:
    ``instances``' own boxes. Comparing two rows of a seed needs the same ``reference`` for both: refining moves
    the boxes, and matching each row on its own would let a person switch to another (duplicate) detection, so
    the change would mix the refiner's effect with a change of the scored detection.
    """
    from fashion_lib.metrics import keypoint_errors

    if reference is None:
        reference = instances
    elif len(reference.image_index) != len(instances.image_index) or \
            not torch.equal(reference.image_index, instances.image_index):
        raise ValueError(f"instances ({len(instances.image_index)} detections) do not line up with reference "
                         f"({len(reference.image_index)}): a row of one seed must hold its detector row's "
                         "instances in the same order (same image_index)")
    gt, pick = _coco_matches(reference, val, min_iou=min_iou)
    if not len(gt):
        return torch.zeros(0, 17)
    matched = torch.full_like(gt, float("nan"))
    matched[pick >= 0] = instances.keypoints[pick[pick >= 0]].to(gt.dtype)
    return keypoint_errors(matched, gt, ["person"] * len(gt), schema="coco", count_occluded=True)


def seed_point_errors(rows: dict[Table1Row, Instances], val: ValidationSet, row: Table1Row, *,
                      matched_on: Table1Row = KRCNN) -> torch.Tensor:
    """COCO, one seed: :func:`coco_point_errors` of ``rows[row]`` with every person matched on the detections of
    ``rows[matched_on]`` (the seed's detector row, from which ``row`` derives), so that every row of the seed
    scores the same detection for a person. (N, 17) float."""
    for name in (row, matched_on):
        if name not in rows:
            raise ValueError(f"rows has no row {str(name)!r} (matched_on={str(matched_on)!r}); it has "
                             f"{[str(r) for r in rows]}")
    return coco_point_errors(rows[row], val, reference=rows[matched_on])


def second_scale_counts(rows_per_seed: Sequence[dict[Table1Row, Instances]], val: ValidationSet, *,
                        row: Table1Row = NKD, baseline: Table1Row = KRCNN) -> list[dict[str, int]]:
    """COCO, per seed: the denominators of the second scale's matching. ``detections``: the first-scale
    detections ``row`` refined (those of ``baseline``, in the same order); ``matched to a person``: those that are
    some annotated person's best match (:func:`coco_point_errors`' rule, box IoU >= 0.5); ``matched in the
    crop``: those whose crop held a detection matching them (``row``'s ``matched``), the rest keep their first
    scale; ``both``: matched to a person and in the crop."""
    out = []
    for rows in rows_per_seed:  # over the few seeds
        first, second = rows[baseline], rows[row]
        if second.matched is None:
            raise ValueError(f"row {str(row)!r} has no second-scale matching (matched is None): not a two-scale row")
        total = len(first.image_index)
        if len(second.matched) != total:
            raise ValueError(f"row {str(row)!r} has {len(second.matched)} instances, baseline {str(baseline)!r} "
                             f"{total}")
        person = torch.zeros(total, dtype=torch.bool)
        _, pick = _coco_matches(first, val)
        person[pick[pick >= 0]] = True
        out.append({"detections": total, "matched to a person": int(person.sum()),
                    "matched in the crop": int(second.matched.sum()),
                    "both": int((person & second.matched).sum())})
    return out


def coco_error_arrays(rows_per_seed: Sequence[dict[Table1Row, Instances]], val: ValidationSet, row: Table1Row,
                      baseline: Table1Row, *, matched_on: Table1Row = KRCNN
                      ) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """COCO, per seed: ``(errors of row (N, 17), errors of baseline (N, 17), visibility (N, 17))`` over the N
    annotated persons (:func:`seed_point_errors`: the same persons in the same order for both rows, each matched to
    the same detection of ``matched_on``, so the bootstrap resamples persons in pairs): the arguments of
    :func:`limb_change_metric`."""
    people = [t["keypoints"][_annotated_people(t)][..., 2] for t in val.targets]
    vis = torch.cat(people) if people else torch.zeros(0, 17)
    return [(seed_point_errors(rows, val, row, matched_on=matched_on),
             seed_point_errors(rows, val, baseline, matched_on=matched_on), vis) for rows in rows_per_seed]


def limb_change_metric(limb: str, *, points: str = "visible", change: bool = True):
    """A function ``(errors_a (N, 17), errors_b (N, 17), visibility (N, 17)) -> float``: over the two points of the
    COCO pair ``limb`` (``"wrist"``, ...) whose ground truth is ``points`` (``"visible"`` or ``"occluded"``) and
    that both rows matched, the mean of ``errors_a - errors_b`` (``change=True``) or of ``errors_b`` (the
    baseline's level); NaN where there is no such point."""
    from fashion_lib.keypoints import COCO, OCCLUDED, VISIBLE

    if limb not in COCO.pair_names:
        raise ValueError(f"limb must be one of {COCO.pair_names}, got {limb!r}")
    if points not in ("visible", "occluded"):
        raise ValueError(f"points must be 'visible' or 'occluded', got {points!r}")
    columns = COCO.pairs[COCO.pair_names.index(limb)]  # (2,) left, right
    flag = VISIBLE if points == "visible" else OCCLUDED

    def metric(errors_a: torch.Tensor, errors_b: torch.Tensor, visibility: torch.Tensor) -> float:
        a, b = errors_a[:, columns], errors_b[:, columns]  # (N, 2) each
        values = (a - b) if change else b
        keep = (visibility[:, columns] == flag) & ~a.isnan() & ~b.isnan()
        return float(values[keep].mean()) if bool(keep.any()) else float("nan")

    return metric


def limb_error_changes(rows_per_seed: Sequence[dict[Table1Row, Instances]], val: ValidationSet, row: Table1Row,
                       baseline: Table1Row, *, n_boot: int, generator: torch.Generator,
                       matched_on: Table1Row = KRCNN) -> list[dict[str, Any]]:
    """COCO: per limb (left/right pair) and kind of point (visible, occluded), the baseline's mean error and the
    change ``row - baseline`` (errors divided by the person's shoulder distance, fractions) with its 95 % two-level
    bootstrap interval over seeds and persons (:func:`fashion_lib.intervals.crossed_bootstrap_ci`) and its verdict on
    "``row`` lowers the error" (:func:`fashion_lib.report.verdict`). Each person is matched to the same detection of
    ``matched_on`` for both rows (:func:`coco_error_arrays`).

    Returns
    -------
    list of dict, one per limb and kind: ``limb``, ``points``, ``n`` (points scored, all seeds), ``moved``
    (those of them whose error ``row`` changed), ``baseline``, ``change``, ``low``, ``high``, ``verdict``. A limb
    with points scored but none moved has change 0, no interval (NaN) and the verdict
    :data:`fashion_lib.report.NOT_MOVED`: resampling zeros would print "0.00 [0.00, 0.00], cannot decide".
    """
    from fashion_lib.intervals import CI, crossed_bootstrap_ci
    from fashion_lib.keypoints import COCO, OCCLUDED, VISIBLE
    from fashion_lib.report import NOT_MOVED, verdict

    arrays = coco_error_arrays(rows_per_seed, val, row, baseline, matched_on=matched_on)
    out = []
    for points, flag in (("visible", VISIBLE), ("occluded", OCCLUDED)):
        for limb, columns in zip(COCO.pair_names, COCO.pairs, strict=True):  # over the 8 pairs
            scored = [(v[:, columns] == flag) & ~a[:, columns].isnan() & ~b[:, columns].isnan() for a, b, v in arrays]
            n = sum(int(keep.sum()) for keep in scored)
            moved = sum(int((keep & (a[:, columns] != b[:, columns])).sum())
                        for keep, (a, b, _) in zip(scored, arrays, strict=True))
            level = limb_change_metric(limb, points=points, change=False)
            base = finite_mean(torch.tensor([level(*a) for a in arrays], dtype=torch.float64))
            nothing = CI(float("nan"), float("nan"), float("nan"))  # no such point: nothing to resample
            ci = nothing if moved == 0 else crossed_bootstrap_ci(limb_change_metric(limb, points=points), arrays,
                                                              n_boot=n_boot, generator=generator)
            still = n > 0 and moved == 0
            out.append({"limb": limb, "points": points, "n": n, "moved": moved, "baseline": base,
                        "change": 0.0 if still else ci.estimate, "low": ci.low, "high": ci.high,
                        "verdict": NOT_MOVED if still else verdict(ci, better="lower")})
    return out


def limb_change_table(limbs: Sequence[dict[str, Any]]):
    """The page's limb table from :func:`limb_error_changes`: per kind of point and limb, the points scored and
    moved, the detector's error (%) and the change (points of %) with its 95 % interval, "—" for a limb not
    moved (its verdict says so), and the verdict (a pandas DataFrame indexed by points and limb)."""
    import pandas as pd

    from fashion_lib.intervals import CI
    from fashion_lib.report import NOT_MOVED, format_ci

    return pd.DataFrame([{
        "points": r["points"], "limb": r["limb"], "scored": r["n"], "moved": r["moved"],
        "detector's error (%)": round(100 * r["baseline"], 2),
        "change (points) [95 % interval]": "—" if r["verdict"] == NOT_MOVED else
        format_ci(CI(r["change"], r["low"], r["high"]), scale=100, digits=2, signed=True),
        "verdict": r["verdict"]} for r in limbs]).set_index(["points", "limb"])


@dataclass(frozen=True)
class PointChanges:
    """Per key point, one row's normalised error minus a baseline's (negative: the row is better), split by the
    ground truth's visibility: the mean over instances (each first averaged over the seeds, which all score the same
    validation instances) and its 95 % t interval over instances (mean +- t(n - 1) standard errors; the seeds'
    own variance is not in it, so it is an exploratory band, not a verdict; medians say nothing here, since the
    axis leaves most points of most instances where they were)."""

    points: tuple[str, ...]  # ("visible", "occluded")
    mean: torch.Tensor  # (2, K) float64; NaN: no such point
    low: torch.Tensor  # (2, K) float64: the interval's ends (NaN with fewer than 2 instances)
    high: torch.Tensor  # (2, K) float64
    count: torch.Tensor  # (2, K) long: the instances behind each mean
    on_axis: tuple[int, ...]  # the schema's non-symmetric points, which the mirror cannot move

    @property
    def largest_on_axis(self) -> float:
        """The largest absolute mean change (fraction) over the points on the axis, visible and occluded: a check,
        since the mirror cannot move them (0 unless another step did; NaN where none was scored)."""
        values = self.mean[:, list(self.on_axis)].abs()
        values = values[~values.isnan()]
        return float(values.max()) if len(values) else float("nan")


def point_changes(before: torch.Tensor, after: torch.Tensor, visibility: torch.Tensor,
                  schema: KeypointSchema | str) -> PointChanges:
    """:class:`PointChanges` from per-instance errors ``before`` and ``after`` (N, K) float (NaN: not labelled)
    and the ground truth's ``visibility`` (N, K) (the library's convention: 1 occluded, 2 visible)."""
    from scipy import stats

    schema = get_schema(schema)
    k = schema.num_keypoints
    if before.shape != after.shape or tuple(visibility.shape) != tuple(before.shape) or before.ndim != 2 or \
            before.shape[1] != k:
        raise ValueError(f"before, after and visibility must have the same shape (N, {k}) for schema "
                         f"{schema.name!r}, got {tuple(before.shape)}, {tuple(after.shape)}, "
                         f"{tuple(visibility.shape)}")
    delta = (after - before).double()
    means, halves, counts = [], [], []
    for flag in (VISIBLE, OCCLUDED):
        kept = (visibility == flag) & ~delta.isnan()
        n = kept.sum(0)
        d = torch.where(kept, delta, 0.0)
        mean = d.sum(0) / n  # NaN where n == 0
        var = torch.where(kept, (delta - mean) ** 2, 0.0).sum(0) / (n - 1)  # NaN or inf where n < 2
        means.append(mean)
        t = torch.tensor(stats.t.ppf(0.975, (n - 1).clamp(min=1).numpy()), dtype=torch.float64)
        halves.append(torch.where(n > 1, t * (var / n).sqrt(), torch.nan))
        counts.append(n)
    mean, half = torch.stack(means), torch.stack(halves)
    return PointChanges(("visible", "occluded"), mean, mean - half, mean + half, torch.stack(counts),
                        on_axis=tuple(schema.center.tolist()))


def row_point_changes(rows_per_seed: Sequence[dict[Table1Row, Instances]], val: ValidationSet, schema: str,
                      row: Table1Row, baseline: Table1Row = KRCNN, *, matched_on: Table1Row = KRCNN) -> PointChanges:
    """:func:`point_changes` of ``row`` against ``baseline``, each validation instance's errors first averaged over
    the seeds (every seed scores the same instances, so pooling them would count each instance once per seed):
    FashionAI per garment (:func:`per_image_errors`, occluded points counted), COCO per annotated person, matched
    to the same detection of ``matched_on`` for both rows (:func:`seed_point_errors`)."""
    befores, afters = [], []
    for rows in rows_per_seed:  # over the few seeds
        if schema == "coco":
            befores.append(seed_point_errors(rows, val, baseline, matched_on=matched_on))
            afters.append(seed_point_errors(rows, val, row, matched_on=matched_on))
        else:
            befores.append(per_image_errors(rows[baseline], val))
            afters.append(per_image_errors(rows[row], val))
    # the ground truth's visibility is the same for every seed (for COCO, per annotated person)
    if schema == "coco":
        vis = torch.cat([t["keypoints"][_annotated_people(t)][..., 2] for t in val.targets])
    else:
        vis = val.keypoints[..., 2]
    return point_changes(torch.stack(befores).nanmean(0), torch.stack(afters).nanmean(0), vis, schema)
