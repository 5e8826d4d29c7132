"""Per-point errors: COCO persons, limbs, fills, per-point changes (fashion_lib.experiments.keypoint_errors)."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from test_experiments_keypoints import tiny

from fashion_lib.experiments import keypoint_errors as ke
from fashion_lib.experiments import keypoints as kx
from fashion_lib.keypoints import FASHIONAI, OCCLUDED, VISIBLE
from fashion_lib.refine import refine_symmetric


def test_fill_errors_report_the_ne_of_the_fills_before_and_after(runs):
    val = kx.validation_set(tiny(val_images=3))
    gt = val.keypoints
    det = gt.clone()
    det[..., 2] = torch.where(gt[..., 2] > 0, 0.9, 0.0)
    # one labelled point of a complete pair per garment: the detector's guess is 30 px off, with a low score
    planted = []
    for b, category in enumerate(val.categories):
        own = FASHIONAI.category_mask(category)
        pair = next(p for p in FASHIONAI.pairs.tolist() if own[p].all() and (gt[b, p, 2] > 0).all())
        planted.append((b, pair[0]))
        det[b, pair[0], :2] += 30.0
        det[b, pair[0], 2] = 0.1
    inst = kx.Instances(det, torch.ones(3), torch.arange(3))
    out = refine_symmetric(det, FASHIONAI, generator=torch.Generator().manual_seed(0), score_threshold=0.3, m=3,
                           d=6.0, alpha=0.0)
    fills = ke.fill_errors(inst, out, val)
    assert all(bool(out.filled[b, k]) for b, k in planted if out.has_axis[b])
    assert int(out.filled.sum()) >= fills.scored >= sum(bool(out.has_axis[b]) for b, _ in planted) > 0
    assert fills.ne_before > 2 * fills.ne_after, "the mirror image should beat a 30-px-off guess"
    before, after = ke.filled_point_errors(inst, out, val)
    assert before.shape == after.shape == (int(out.filled.sum()),)
    assert fills.ne_after == pytest.approx(float(after[~after.isnan()].mean()))
    # nothing filled: no error to report
    none = ke.fill_errors(inst, dataclasses.replace(out, filled=torch.zeros_like(out.filled)), val)
    assert none.scored == 0 and math.isnan(none.ne_before) and math.isnan(none.ne_after)


def two_people() -> tuple[kx.ValidationSet, torch.Tensor]:
    """One image with two persons side by side (shoulders 10 px apart), person 0's left wrist occluded."""
    from fashion_lib.keypoints import COCO

    people = torch.zeros(2, 17, 3)
    people[..., 0] = torch.linspace(10, 40, 17)
    people[..., 1] = torch.linspace(10, 60, 17)
    people[1, :, 0] += 50.0
    people[:, COCO.index("left_shoulder"), :2] = people[:, COCO.index("right_shoulder"), :2] - torch.tensor([10.0, 0])
    people[..., 2] = VISIBLE
    people[0, COCO.index("left_wrist"), 2] = OCCLUDED
    lo, hi = people[..., :2].min(1).values, people[..., :2].max(1).values
    target = {"keypoints": people, "iscrowd": torch.zeros(2, dtype=torch.long), "boxes": torch.cat([lo, hi], 1),
              "image_id": 1}
    return kx.ValidationSet([torch.zeros(3, 8, 8)], [target], "two-people"), people


def test_row_point_changes_counts_each_person_once_however_many_seeds():
    from fashion_lib.keypoints import COCO

    val, people = two_people()
    perfect = people.clone()
    perfect[..., 2] = 1.0
    worse = perfect.clone()
    worse[:, COCO.index("right_wrist"), 0] += 5.0  # half a shoulder distance on both right wrists
    inst = {name: kx.Instances(k, torch.ones(2), torch.zeros(2, dtype=torch.long))
            for name, k in ((kx.AXIS_ONCE, perfect), (kx.KRCNN, worse))}
    out = ke.row_point_changes([inst, inst, inst], val, "coco", kx.AXIS_ONCE)
    wrist = COCO.index("right_wrist")
    assert out.count[0, wrist].item() == 2  # two persons, not six (persons x seeds)
    assert out.mean[0, wrist].item() == pytest.approx(-0.5)


def test_limb_error_changes_pair_the_persons_and_split_visible_from_occluded():
    from fashion_lib.keypoints import COCO

    val, people = two_people()
    perfect = people.clone()
    perfect[..., 2] = 1.0
    worse = perfect.clone()  # the baseline misses both right wrists by half a shoulder distance (5 px)
    worse[:, COCO.index("right_wrist"), 0] += 5.0
    worse[0, COCO.index("left_wrist"), 1] += 10.0  # ... and person 0's occluded left wrist by one (10 px)
    inst = {name: kx.Instances(k, torch.ones(2), torch.zeros(2, dtype=torch.long))
            for name, k in (("row", perfect), ("base", worse))}
    rows = ke.limb_error_changes([inst, inst], val, "row", "base", n_boot=20, generator=torch.Generator(),
                                 matched_on="base")
    table = {(r["limb"], r["points"]): r for r in rows}
    assert len(rows) == 16
    wrist = table[("wrist", "visible")]
    # visible wrists: 3 per seed (two right ones at 0.5, person 1's left at 0): mean change -1/3, baseline 1/3
    assert wrist["n"] == 6 and wrist["change"] == pytest.approx(-1 / 3) and wrist["baseline"] == pytest.approx(1 / 3)
    occluded = table[("wrist", "occluded")]
    assert occluded["n"] == 2 and occluded["change"] == pytest.approx(-1.0) and occluded["verdict"] == "supports"
    assert wrist["moved"] == 4 and occluded["moved"] == 2  # per seed: the two right wrists; person 0's left one
    knee = table[("knee", "visible")]  # the row left every knee where the baseline put it
    assert knee["n"] == 8 and knee["moved"] == 0 and knee["change"] == 0.0 and knee["verdict"] == "not moved"
    assert math.isnan(knee["low"]) and math.isnan(knee["high"]), "an unmoved limb has no interval"
    assert math.isnan(table[("knee", "occluded")]["change"]) and table[("knee", "occluded")]["n"] == 0
    assert table[("knee", "occluded")]["verdict"] == "cannot decide"  # nothing scored is not "not moved"
    shown = ke.limb_change_table(rows)
    assert shown.loc[("visible", "knee"), "change (points) [95 % interval]"] == "—"
    assert shown.loc[("visible", "knee"), "verdict"] == "not moved" and shown.loc[("visible", "knee"), "moved"] == 0
    assert shown.loc[("occluded", "wrist"), "change (points) [95 % interval]"].startswith("-100.00 [")
    assert shown.loc[("visible", "wrist"), "scored"] == 6
    with pytest.raises(ValueError, match="limb must be one of"):
        ke.limb_change_metric("tail")


def _duplicates_of_one_person() -> tuple[kx.ValidationSet, dict[str, kx.Instances]]:
    """One person and two duplicate detections of it: the detector's 0 is exact, 1 is shifted 8 px right (its nose
    too); the axis once shrinks 0's points (not the nose) so that its box now overlaps the person less than 1's."""
    from fashion_lib.keypoints import COCO

    person = torch.zeros(1, 17, 3)
    person[..., 0] = torch.linspace(10, 50, 17)
    person[..., 1] = torch.linspace(10, 90, 17)
    person[..., 2] = VISIBLE
    target = {"keypoints": person, "iscrowd": torch.zeros(1, dtype=torch.long),
              "boxes": torch.tensor([[10.0, 10.0, 50.0, 90.0]]), "image_id": 1}
    val = kx.ValidationSet([torch.zeros(3, 100, 100)], [target], "duplicates")
    exact = person.clone()
    exact[..., 2] = 1.0
    shifted = exact.clone()
    shifted[..., 0] += 8.0
    shrunk = exact.clone()
    centre = torch.tensor([30.0, 50.0])
    shrunk[:, 1:, :2] = centre + (exact[:, 1:, :2] - centre) / 2  # every point but the nose (index 0, on the axis)
    assert COCO.index("nose") == 0
    image = torch.zeros(2, dtype=torch.long)
    detector = kx.Instances(torch.cat([exact, shifted]), torch.ones(2), image)
    refined = kx.Instances(torch.cat([shrunk, shifted]), torch.ones(2), image)
    return val, {kx.KRCNN: detector, kx.AXIS_ONCE: refined}


def test_coco_errors_keep_the_detector_rows_match_when_refining_moves_the_boxes():
    val, rows = _duplicates_of_one_person()
    # matched on its own boxes, the refined row would score the other duplicate: its nose error jumps by 8 px
    own = ke.coco_point_errors(rows[kx.AXIS_ONCE], val)
    detector = ke.coco_point_errors(rows[kx.KRCNN], val)
    assert detector[0, 0].item() == 0.0 and own[0, 0].item() > 0.0
    kept = ke.coco_point_errors(rows[kx.AXIS_ONCE], val, reference=rows[kx.KRCNN])
    assert kept[0, 0].item() == 0.0  # the nose: the same detection, which the refiner left where it was
    assert torch.equal(kept, ke.seed_point_errors(rows, val, kx.AXIS_ONCE))
    changes = ke.row_point_changes([rows, rows], val, "coco", kx.AXIS_ONCE)
    assert changes.on_axis == (0,) and changes.largest_on_axis == 0.0  # the check the pages print
    assert changes.mean[0, 1:].abs().max().item() > 0.0  # the refined points do change
    limbs = {(r["limb"], r["points"]): r for r in ke.limb_error_changes(
        [rows], val, kx.AXIS_ONCE, kx.KRCNN, n_boot=10, generator=torch.Generator())}
    assert limbs[("wrist", "visible")]["baseline"] == pytest.approx(0.0)  # the detector's exact duplicate
    with pytest.raises(ValueError, match="do not line up with reference"):
        ke.coco_point_errors(rows[kx.AXIS_ONCE], val, reference=dataclasses.replace(
            rows[kx.KRCNN], image_index=torch.tensor([0, 1])))
    with pytest.raises(ValueError, match=r"instances \(1 detections\) do not line up with reference \(2\)"):
        one = rows[kx.AXIS_ONCE]
        ke.coco_point_errors(kx.Instances(one.keypoints[:1], one.scores[:1], one.image_index[:1]), val,
                             reference=rows[kx.KRCNN])
    with pytest.raises(ValueError, match=r"rows has no row 'krcnn' \(matched_on='krcnn'\); it has \['axis_once'\]"):
        ke.seed_point_errors({kx.AXIS_ONCE: rows[kx.AXIS_ONCE]}, val, kx.AXIS_ONCE)


def test_second_scale_counts_give_each_share_its_denominator():
    val, people = two_people()
    kp = people.clone()
    kp[..., 2] = 1.0
    stray = kp[:1].clone()
    stray[..., 0] += 200.0  # a third detection far from both persons: matches nobody
    first = kx.Instances(torch.cat([kp, stray]), torch.ones(3), torch.zeros(3, dtype=torch.long))
    two_scale = dataclasses.replace(first, matched=torch.tensor([True, False, True]))
    counts = ke.second_scale_counts([{kx.KRCNN: first, kx.NKD: two_scale}], val)
    assert counts == [{"detections": 3, "matched to a person": 2, "matched in the crop": 2, "both": 1}]
    with pytest.raises(ValueError, match="has no second-scale matching"):
        ke.second_scale_counts([{kx.KRCNN: first, kx.NKD: first}], val)
    with pytest.raises(ValueError, match="row 'nkd' has 2 instances, baseline 'krcnn' 3"):
        short = dataclasses.replace(first, matched=torch.tensor([True, True]))
        ke.second_scale_counts([{kx.KRCNN: first, kx.NKD: short}], val)


def test_point_changes_splits_by_visibility_with_means_and_intervals():
    before = torch.zeros(4, 24)
    after = torch.zeros(4, 24)
    after[:, 0] = torch.tensor([0.1, 0.2, 0.3, -0.4])  # point 0: three visible garments and one occluded
    vis = torch.full((4, 24), VISIBLE)
    vis[3, 0] = OCCLUDED
    after[:, 1] = float("nan")  # point 1 never labelled
    out = ke.point_changes(before, after, vis, "fashionai")
    assert out.points == ("visible", "occluded")
    assert out.mean[0, 0].item() == pytest.approx(0.2) and out.mean[1, 0].item() == pytest.approx(-0.4)
    half = 4.302653 * 0.1 / math.sqrt(3)  # sd 0.1 over 3 garments, t quantile with 2 degrees of freedom
    assert out.low[0, 0].item() == pytest.approx(0.2 - half) and out.high[0, 0].item() == pytest.approx(0.2 + half)
    assert out.low[1, 0].isnan() and out.high[1, 0].isnan()  # one garment: no interval
    assert out.count[:, 0].tolist() == [3, 1] and out.count[:, 1].tolist() == [0, 0]
    assert out.mean[:, 1].isnan().all() and out.mean[1, 2].isnan()  # nothing to average
    assert out.mean[0, 2].item() == 0.0 and out.low[0, 2].item() == 0.0  # unmoved: exactly 0
    assert [FASHIONAI.names[i] for i in out.on_axis] == ["center_front", "crotch"]
    with pytest.raises(ValueError, match=r"same shape \(N, 24\)"):
        ke.point_changes(before, after, vis[:, :17], "fashionai")
