"""What the refiner did in Table 1's rows, and its variants: the axis-once analysis.

Paper, Alg. 1 (steps 2-8, the axis applied once). :func:`axis_once_variant` reruns the axis-once row with a
changed refiner setting; :func:`score_axis_once` scores one setting (the RANSAC ablations);
:func:`missing_point_table` and :func:`refiner_activity` report the fill rule and how often the refiner acted;
:func:`second_scale_framing` measures the crops New-key-detection cuts.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import torch

from fashion_lib.experiments.keypoint_errors import fill_errors
from fashion_lib.experiments.keypoint_rows import per_seed_refine
from fashion_lib.experiments.keypoint_scores import finite_mean, ne_metric
from fashion_lib.experiments.keypoints import AXIS_ONCE, KRCNN, NKD, Instances, Table1Row, ValidationSet
from fashion_lib.refine import RefineConfig, RefineSummary, refine_symmetric, summarize_refinement
from fashion_lib.report import format_count

__all__ = [
    "axis_once_variant", "score_axis_once", "second_scale_framing", "missing_point_table", "missing_point_summary",
    "refiner_activity",
]


def axis_once_variant(rows_per_seed: Sequence[dict[Table1Row, Instances]], val: ValidationSet, refine: RefineConfig,
                      seeds: Sequence[int], thresholds: Sequence[float] = (), *, schema: str = "fashionai",
                      **changes: Any) -> list[Instances]:
    """The :data:`AXIS_ONCE` row again with ``changes`` to ``refine`` (e.g. ``alpha=0.0``: the same axes and fills,
    no pull), per seed: the seed's detector row, its fill threshold (``thresholds``, as :func:`rows_for_seeds` set
    them; empty: ``refine``'s own) and its RANSAC seed, as :func:`table1_rows` ran the row, so that the variant
    differs from the row by ``changes`` alone (``schema``: the rows' key-point schema); the refiner only, no detector
    pass."""
    configs = per_seed_refine(dataclasses.replace(refine, **changes), thresholds, len(rows_per_seed))
    if len(seeds) != len(rows_per_seed):
        raise ValueError(f"seeds has {len(seeds)} entries for {len(rows_per_seed)} seeds' rows")
    out = []
    for rows, cfg, seed in zip(rows_per_seed, configs, seeds, strict=True):  # over the few seeds
        inst = rows[KRCNN]
        cats = [val.categories[i] for i in inst.image_index.tolist()] if cfg.pairs == "category" else None
        res = refine_symmetric(inst.keypoints, schema, generator=torch.Generator().manual_seed(seed), config=cfg,
                               categories=cats)
        out.append(Instances(res.keypoints, inst.scores, inst.image_index, refined=res))
    return out


def score_axis_once(instances_per_seed: Sequence[Instances], val: ValidationSet, refine: RefineConfig, *,
                    seed: int = 0, thresholds: Sequence[float] = (), seeds: Sequence[int] = ()
                    ) -> dict[str, float]:
    """FashionAI: refine each seed's detections once (steps 2-8) with ``refine`` and score them: NE (%) of visible
    and occluded points (mean and sd over seeds) and what the refiner did (``"axis share"``: the fraction of
    garments with an axis, not a count; pairs moved and points filled per garment; the NE of the filled points
    before and after the fill; means over seeds).
    The cheap evaluation behind the RANSAC ablations. ``thresholds``: per seed, the fill threshold
    (``refine.fill_threshold``, :func:`calibrated_refine`); empty: ``refine``'s own for every seed. ``seeds``: per
    seed, the RANSAC generator's seed (the training seeds, as :func:`table1_rows` uses them); empty: ``seed`` for
    every one."""
    from fashion_lib.report import mean_sd

    vis, occ, summaries, fills = [], [], [], []
    visible, occluded = ne_metric(), ne_metric(points="occluded")
    cats = val.categories if refine.pairs == "category" else None
    configs = per_seed_refine(refine, thresholds, len(instances_per_seed))
    if seeds and len(seeds) != len(instances_per_seed):
        raise ValueError(f"seeds has {len(seeds)} entries for {len(instances_per_seed)} seeds' detections")
    ransac = list(seeds) or [seed] * len(instances_per_seed)
    for inst, cfg, s in zip(instances_per_seed, configs, ransac, strict=True):  # over the few seeds
        out = refine_symmetric(inst.keypoints, "fashionai", generator=torch.Generator().manual_seed(s),
                               config=cfg, categories=cats)
        vis.append(100 * visible(out.keypoints, val.keypoints, val.categories))
        occ.append(100 * occluded(out.keypoints, val.keypoints, val.categories))
        summaries.append(summarize_refinement(inst.keypoints, out, "fashionai", config=cfg, categories=cats))
        fills.append(fill_errors(inst, out, val))
    (v, v_sd), (o, o_sd) = mean_sd(vis), mean_sd(occ)
    n = len(summaries)
    return {"NE visible (%)": v, "sd visible": v_sd, "NE occluded (%)": o, "sd occluded": o_sd,
            "axis share": sum(s.with_axis_fraction for s in summaries) / n,
            "pairs moved": sum(s.pairs_refined_per_instance for s in summaries) / n,
            "points filled": sum(s.points_filled_per_instance for s in summaries) / n,
            "filled NE before (%)": 100 * finite_mean(torch.tensor([f.ne_before for f in fills])),
            "filled NE after (%)": 100 * finite_mean(torch.tensor([f.ne_after for f in fills]))}


def second_scale_framing(instances: Instances, val: ValidationSet, refine: RefineConfig
                         ) -> tuple[torch.Tensor, torch.Tensor]:
    """How the crops New-key-detection cuts around ``instances`` (its refined first scale, e.g. the
    :data:`AXIS_ONCE` row) frame them, with ``refine``'s margin, squareness and missing-point threshold
    (:func:`fashion_lib.crops.second_scale_boxes`, :func:`fashion_lib.crops.crop_framing`).

    Returns
    -------
    extent : (T,) float, the key-point box's longer side over the crop's; padding : (T,) float, the share of each
    crop outside its image (filled by edge replication).
    """
    from fashion_lib.crops import crop_framing, second_scale_boxes
    from fashion_lib.keypoints import missing_mask

    kp = instances.keypoints
    present = ~missing_mask(kp, refine.score_threshold)
    sizes = torch.tensor([tuple(im.shape[-2:]) for im in val.images], dtype=kp.dtype)[instances.image_index]
    boxes = second_scale_boxes(kp, present, sizes, margin=refine.margin, square=refine.square_crop).boxes
    return crop_framing(kp, present, boxes, sizes)


def missing_point_table(rows_per_seed: Sequence[dict[Table1Row, Instances]], val: ValidationSet, seeds: Sequence[int],
                        refine: RefineConfig, *, calibrations: Sequence[dict] = (), schema: str = "fashionai",
                        ) -> list[dict[str, float]]:
    """Per seed, Keypoint R-CNN's fill rule and what the axis applied once did with it: the fill threshold
    (calibrated, or ``refine.fill_below`` when ``calibrations`` is empty) with its Youden's J, the share of instances
    whose axis was found (every point above ``refine.score_threshold`` votes), the points filled, the
    normalised error (%) of the filled points before and after the fill (:func:`fill_errors`), and how many
    instances the second scale left at their first scale for want of a matching crop detection, of how many."""
    if calibrations and len(calibrations) != len(rows_per_seed):
        raise ValueError(f"calibrations has {len(calibrations)} entries for {len(rows_per_seed)} seeds")
    out = []
    for i, (seed, rows) in enumerate(zip(seeds, rows_per_seed, strict=True)):  # over the few seeds
        cal = calibrations[i][KRCNN] if calibrations else None
        once = rows[AXIS_ONCE].refined
        fills = fill_errors(rows[KRCNN], once, val, schema=schema)
        matched = rows[NKD].matched if NKD in rows else None
        out.append({"seed": seed, "threshold": cal.threshold if cal else refine.fill_below,
                    "Youden's J": cal.youden_j if cal else float("nan"),
                    "axis found (%)": 100 * float(once.has_axis.double().mean()) if len(once.has_axis) else math.nan,
                    "pairs moved by the EMA": int(once.refined.sum()),
                    "points filled": int(once.filled.sum()),
                    # the points a fill could reach: both points of every pair of every instance
                    "symmetric points": 2 * once.refined.numel(),
                    "filled, labelled": fills.scored, "error before fill (%)": 100 * fills.ne_before,
                    "error after fill (%)": 100 * fills.ne_after,
                    "second scale unmatched": int((~matched).sum()) if matched is not None else 0,
                    "second scale instances": len(matched) if matched is not None else 0})
    return out


def missing_point_summary(table: Sequence[dict[str, float]]) -> dict[str, float | int]:
    """The page's figures from :func:`missing_point_table`: the mean threshold and axis-found share (%) over seeds,
    the points filled, the instances the second scale left unmatched and the instances it refined, in all, the
    unmatched share (%, NaN without instances), and the mean error (%) of the filled points before and after the
    fill."""
    def mean(column: str) -> float:
        return finite_mean(torch.tensor([float(r[column]) for r in table], dtype=torch.float64))

    unmatched = sum(int(r["second scale unmatched"]) for r in table)
    instances = sum(int(r["second scale instances"]) for r in table)

    return {"missing_threshold": mean("threshold"), "axis_found": mean("axis found (%)"),
            "pairs_moved": sum(int(r["pairs moved by the EMA"]) for r in table),
            "points_filled": sum(int(r["points filled"]) for r in table),
            "symmetric_points": sum(int(r["symmetric points"]) for r in table),
            "filled_labelled": sum(int(r["filled, labelled"]) for r in table),
            "filled_error_before": mean("error before fill (%)"), "filled_error_after": mean("error after fill (%)"),
            "second_scale_unmatched": unmatched, "second_scale_instances": instances,
            "second_scale_unmatched_share": 100 * unmatched / instances if instances else float("nan")}


def refiner_activity(summaries: Sequence[RefineSummary]) -> dict[str, int | str]:
    """One table row on how often the refiner acted, from one :class:`~fashion_lib.refine.RefineSummary` per seed
    (each seed refines its own detections of the same validation images): counts summed over the seeds, each with
    its denominator, so that garments and persons (whose detections differ in number per seed) read alike."""
    if not summaries:
        raise ValueError("refiner_activity needs one summary per seed, got none")
    total = RefineSummary.pooled(summaries)
    n = total.instances

    def per_instance(count: int) -> str:
        return f"{count} ({count / n:.2f} per instance)" if n else f"{count}"

    return {"seeds": len(summaries), "instances, all seeds (N)": n,
            "with an axis (n/N)": format_count(total.with_axis, n),
            "pairs moved by the EMA": per_instance(total.pairs_refined),
            "points filled": per_instance(total.points_filled)}
