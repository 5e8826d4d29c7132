"""What the refiner did and its variants (fashion_lib.experiments.keypoint_refiner)."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from test_experiments_keypoint_errors import two_people
from test_experiments_keypoints import tiny

from fashion_lib.experiments import keypoint_refiner as kref
from fashion_lib.experiments import keypoints as kx
from fashion_lib.keypoints import FASHIONAI
from fashion_lib.refine import MissingCalibration, RefineConfig, RefineSummary, refine_symmetric, summarize_refinement


def test_score_axis_once_reports_the_refiners_shares_over_seeds(runs):
    val = kx.validation_set(tiny(val_images=3))
    det = val.keypoints.clone()
    det[..., 2] = torch.where(det[..., 2] > 0, 0.9, 0.0)
    shifted = det.clone()
    shifted[:, FASHIONAI.pairs[::3, 0], 0] += 20.0  # a few left points 20 px right: pairs to move
    seeds = [kx.Instances(d, torch.ones(3), torch.arange(3)) for d in (det, shifted)]
    cfg = RefineConfig.for_schema("fashionai", m=3, d=6.0, score_threshold=0.3)
    row = kref.score_axis_once(seeds, val, cfg, seed=0)
    summaries = [summarize_refinement(i.keypoints, refine_symmetric(i.keypoints, FASHIONAI, config=cfg,
                                                                    generator=torch.Generator().manual_seed(0)),
                                      FASHIONAI, config=cfg) for i in seeds]
    assert row["axis share"] == pytest.approx(sum(s.with_axis / 3 for s in summaries) / 2)
    assert row["pairs moved"] == pytest.approx(sum(s.pairs_refined for s in summaries) / 6)
    assert row["points filled"] == pytest.approx(sum(s.points_filled for s in summaries) / 6)
    assert 0 < row["axis share"] <= 1 and row["pairs moved"] > 0
    # per-seed fill thresholds: the same as a config carrying them (0.95: every point unsure, so no partner to fill
    # from; they all still vote)
    per_seed = kref.score_axis_once(seeds, val, cfg, thresholds=[0.95, 0.95])
    expected = kref.score_axis_once(seeds, val, dataclasses.replace(cfg, fill_threshold=0.95))
    assert per_seed == pytest.approx(expected, nan_ok=True)
    assert per_seed["axis share"] == row["axis share"] and per_seed["points filled"] == 0
    with pytest.raises(ValueError, match="thresholds has 1 entries for 2 seeds"):
        kref.score_axis_once(seeds, val, cfg, thresholds=[0.3])


def test_missing_point_table_and_its_summary_for_the_page(runs):
    val = kx.validation_set(tiny(val_images=3))
    det = val.keypoints.clone()
    det[..., 2] = torch.where(det[..., 2] > 0, 0.9, 0.0)
    base = kx.Instances(det, torch.ones(3), torch.arange(3))
    out = refine_symmetric(det, FASHIONAI, generator=torch.Generator().manual_seed(0), score_threshold=0.5)
    rows = {kx.KRCNN: base, kx.AXIS_ONCE: dataclasses.replace(base, keypoints=out.keypoints, refined=out),
            kx.NKD: dataclasses.replace(base, matched=torch.tensor([True, False, True]))}
    cal = {kx.KRCNN: MissingCalibration(0.25, 0.5, 0.75, 0.75, 10, 4)}
    table = kref.missing_point_table([rows, rows], val, [0, 1], RefineConfig(), calibrations=[cal, cal])
    assert [r["seed"] for r in table] == [0, 1] and table[0]["threshold"] == 0.25
    assert table[0]["points filled"] == int(out.filled.sum()) and table[0]["second scale unmatched"] == 1
    summary = kref.missing_point_summary(table)
    assert summary["points_filled"] == 2 * int(out.filled.sum()) and summary["second_scale_unmatched"] == 2
    assert table[0]["second scale instances"] == 3 and summary["second_scale_instances"] == 2 * 3
    assert summary["second_scale_unmatched_share"] == pytest.approx(100 * 2 / 6)
    without = kref.missing_point_summary(kref.missing_point_table([{k: rows[k] for k in (kx.KRCNN, kx.AXIS_ONCE)}], val,
                                                              [0], RefineConfig()))
    assert without["second_scale_instances"] == 0 and math.isnan(without["second_scale_unmatched_share"])
    assert table[0]["symmetric points"] == 3 * 22 and summary["symmetric_points"] == 2 * 3 * 22
    assert table[0]["pairs moved by the EMA"] == int(out.refined.sum())
    assert summary["missing_threshold"] == pytest.approx(0.25)
    literal = kref.missing_point_table([rows], val, [0], RefineConfig(score_threshold=0.1))
    assert literal[0]["threshold"] == 0.1 and math.isnan(literal[0]["Youden's J"])
    with pytest.raises(ValueError, match="calibrations has 1 entries for 2 seeds"):
        kref.missing_point_table([rows, rows], val, [0, 1], RefineConfig(), calibrations=[cal])


def test_second_scale_framing_of_the_crops_new_key_detection_cuts():
    val, people = two_people()  # an 8 x 8 image is too small: put the two people on a 100 x 120 one
    val = dataclasses.replace(val, images=[torch.zeros(3, 100, 120)])
    kp = people.clone()
    kp[..., 2] = 1.0
    inst = kx.Instances(kp, torch.ones(2), torch.zeros(2, dtype=torch.long))
    refine = RefineConfig.for_schema("coco", margin=0.0)
    extent, padding = kref.second_scale_framing(inst, val, refine)
    torch.testing.assert_close(extent, torch.ones(2, dtype=extent.dtype))  # margin 0: the points fill the square
    assert float(padding[0]) == 0.0
    # 50 px tall, grown by 0.6 x 50 per side: a 110-px square, taller than the 100-px image: 10 of 110 rows padded
    wide = kref.second_scale_framing(inst, val, dataclasses.replace(refine, margin=0.6))
    torch.testing.assert_close(wide[0], torch.full((2,), 50 / 110, dtype=extent.dtype))
    torch.testing.assert_close(wide[1], torch.full((2,), 10 / 110, dtype=extent.dtype))


def summary(instances: int, with_axis: int, filled: int) -> RefineSummary:
    return RefineSummary(instances=instances, with_axis=with_axis, too_few_pairs=0, pairs_refined=1, points_moved=2,
                         points_filled=filled, points_ignored=0)


def test_refine_summary_pooled_sums_every_count_and_refiner_activity_reads_it():
    pooled = RefineSummary.pooled([summary(10, 5, 1), summary(30, 25, 2)])
    assert pooled == RefineSummary(instances=40, with_axis=30, too_few_pairs=0, pairs_refined=2, points_moved=4,
                                   points_filled=3, points_ignored=0)
    assert pooled.with_axis_fraction == pytest.approx(0.75)
    assert kref.refiner_activity([summary(10, 5, 1), summary(30, 25, 2)])["with an axis (n/N)"] == "30/40 (75 %)"
    with pytest.raises(ValueError, match="RefineSummary.pooled needs one or more summaries"):
        RefineSummary.pooled([])


def test_refiner_activity_sums_seeds_with_their_denominators():
    a = RefineSummary(instances=100, with_axis=40, too_few_pairs=3, pairs_refined=120, points_moved=200,
                      points_filled=10, points_ignored=0)
    b = dataclasses.replace(a, instances=50, with_axis=10, pairs_refined=30, points_filled=5)
    row = kref.refiner_activity([a, b])
    assert row == {"seeds": 2, "instances, all seeds (N)": 150, "with an axis (n/N)": "50/150 (33 %)",
                   "pairs moved by the EMA": "150 (1.00 per instance)", "points filled": "15 (0.10 per instance)"}
    with pytest.raises(ValueError, match="one summary per seed, got none"):
        kref.refiner_activity([])
