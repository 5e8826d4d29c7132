"""Table 1's rows per seed and the fill rule's calibration (fashion_lib.experiments.keypoint_rows)."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from test_experiments_keypoints import tiny

from fashion_lib.experiments import keypoint_refiner as kref
from fashion_lib.experiments import keypoint_rows as kr
from fashion_lib.experiments import keypoint_scores as ks
from fashion_lib.experiments import keypoints as kx
from fashion_lib.keypoints import FASHIONAI, OCCLUDED, VISIBLE
from fashion_lib.refine import RefineConfig, calibrate_missing_threshold, refine_symmetric


@pytest.mark.slow
def test_rows_of_table1_from_trained_detectors(runs):
    setup = tiny()
    detectors = kx.train_detectors(setup, 0, progress=False)
    again = kx.train_detectors(setup, 0, progress=False)  # a finished run: loaded, same weights
    first = next(iter(detectors.keypoint_rcnn.state_dict().values()))
    assert torch.equal(first, next(iter(again.keypoint_rcnn.state_dict().values())))
    val = kx.validation_set(setup)
    refine = RefineConfig.for_schema("fashionai", d=4.0, m=6)
    rows = kr.table1_rows(setup, detectors, val, refine, seed=3)
    assert list(rows) == list(kx.ROWS)
    for inst in rows.values():
        assert inst.keypoints.shape == (3, 24, 3) and torch.equal(inst.image_index, torch.arange(3))
    # the axis once is refine_symmetric on the detector's own key points, same generator seed
    expected = refine_symmetric(rows[kx.KRCNN].keypoints, FASHIONAI, generator=torch.Generator().manual_seed(3),
                                config=refine).keypoints
    torch.testing.assert_close(rows[kx.AXIS_ONCE].keypoints, expected, equal_nan=True)
    # the crop alone: an instance without a matching crop detection keeps its first scale (crop_alone's own test
    # checks the rest: this barely trained detector may match nothing in its crops)
    matched = rows[kx.TWICE].matched
    det, alone = rows[kx.KRCNN].keypoints, rows[kx.SECOND].keypoints
    assert torch.equal(alone[~matched], det[~matched]) and torch.equal(rows[kx.SECOND].matched, matched)
    # cached: a second call reads the file instead of running the detector again
    cache = list(detectors.run_dir.glob("rows-*.pt"))
    assert len(cache) == 1
    stamp = cache[0].stat().st_mtime_ns
    kr.table1_rows(setup, detectors, val, refine, seed=3)
    assert cache[0].stat().st_mtime_ns == stamp
    only = kr.table1_rows(setup, detectors, val, refine, rows=(kx.SECOND,), seed=3)  # without asking for "twice"
    assert list(only) == [kx.SECOND] and torch.equal(only[kx.SECOND].keypoints, rows[kx.SECOND].keypoints)
    with pytest.raises(ValueError, match=r"rows has the unknown row 'Mask R-CNN'; valid: \['krcnn', 'axis_once'"):
        kr.table1_rows(setup, detectors, val, refine, rows=("Mask R-CNN",))
    with pytest.raises(ValueError, match="rows has the unknown row 'Keypoint R-CNN'"):  # a label is not a key
        kr.table1_rows(setup, detectors, val, refine, rows=(kx.KRCNN.label,))
    typed = kr.table1_rows(setup, detectors, val, refine, rows=("second_alone",), seed=3)  # a key typed as text
    assert [type(r) for r in typed] == [kx.Table1Row] and torch.equal(typed[kx.SECOND].keypoints,
                                                                     rows[kx.SECOND].keypoints)
    assert rows[kx.NKD].matched.shape == (3,) and rows[kx.AXIS_ONCE].refined is not None
    # the missing-point rule calibrated on held-out training images, one threshold per detector
    cal = kr.calibrate_missing(tiny(calibration_images=4), detectors, 0)
    assert set(cal) == {kx.KRCNN, kx.CPN} and all(c.visible + c.hidden > 0 for c in cal.values())
    thresholds = {row: c.threshold for row, c in cal.items()}
    calibrated = kr.table1_rows(setup, detectors, val, refine, rows=(kx.AXIS_ONCE,), seed=3, thresholds=thresholds)
    expected = refine_symmetric(rows[kx.KRCNN].keypoints, FASHIONAI, generator=torch.Generator().manual_seed(3),
                                config=dataclasses.replace(refine, fill_threshold=max(cal[kx.KRCNN].threshold, 0.0)))
    torch.testing.assert_close(calibrated[kx.AXIS_ONCE].keypoints, expected.keypoints, equal_nan=True)
    with pytest.raises(ValueError, match=r"thresholds has the unknown row 'nkd'; valid: \['krcnn', 'cpn'\]"):
        kr.table1_rows(setup, detectors, val, refine, thresholds={kx.NKD: 0.1})
    # one rule for every page: the seed's calibrated Keypoint R-CNN threshold, or the config as given without
    assert kr.calibrated_refine(tiny(calibration_images=4), detectors, 0, refine) == dataclasses.replace(
        refine, fill_threshold=max(cal[kx.KRCNN].threshold, 0.0))
    assert kr.calibrated_refine(setup, detectors, 0, refine) is refine
    # per-seed arrays feed the NE metric; every visible ground-truth point is counted
    (pred, gt, cats), = ks.ne_arrays([rows], val, kx.NKD)
    assert pred.shape == gt.shape and cats == val.categories
    assert math.isfinite(ks.ne_metric()(pred, gt, cats))


@pytest.mark.slow
def test_a_setup_with_cpn_steps_0_trains_no_cpn_and_its_rows_are_not_tested(runs):
    from fashion_lib.report import NOT_TESTED, comparison_table, score_methods

    setup = tiny(cpn_steps=0, train_steps=1, calibration_images=2)
    assert not setup.trains_cpn and tiny().trains_cpn
    with pytest.raises(ValueError, match="cpn_steps is 0: this setup trains no CPN"):
        kx.detector_run(setup, "cpn", 0)
    val = kx.validation_set(setup)
    calibrations = []
    rows_per_seed = kr.rows_for_seeds(setup, val, RefineConfig.for_schema("fashionai", d=4.0, m=6), [0],
                                      calibrations=calibrations)
    trained = sorted(p.name.split("-")[0] for p in runs.iterdir() if p.name != "data" and not p.name.startswith("."))
    assert trained == ["keypoint_rcnn"], f"a CPN run folder was made: {trained}"
    assert list(rows_per_seed[0]) == [kx.KRCNN, kx.AXIS_ONCE, kx.SECOND, kx.TWICE, kx.NKD] == list(
        kx.tested_rows(setup))
    assert set(calibrations[0]) == {kx.KRCNN}
    # the axis-once row again: with no change it is the row itself; with alpha 0 the same fills and no pull
    refine = RefineConfig.for_schema("fashionai", d=4.0, m=6)
    thresholds = [calibrations[0][kx.KRCNN].threshold]
    again, = kref.axis_once_variant(rows_per_seed, val, refine, [0], thresholds)
    once = rows_per_seed[0][kx.AXIS_ONCE]
    assert torch.equal(again.keypoints.nan_to_num(-1), once.keypoints.nan_to_num(-1))
    fill_only, = kref.axis_once_variant(rows_per_seed, val, refine, [0], thresholds, alpha=0.0)
    assert torch.equal(fill_only.refined.filled, once.refined.filled)
    kept = ~fill_only.refined.filled  # every point not filled stays where the detector put it
    assert torch.equal(fill_only.keypoints[..., :2][kept], rows_per_seed[0][kx.KRCNN].keypoints[..., :2][kept])
    with pytest.raises(ValueError, match="seeds has 2 entries for 1 seeds' rows"):
        kref.axis_once_variant(rows_per_seed, val, refine, [0, 1], thresholds)
    detectors = kx.train_detectors(setup, 0, progress=False)  # loaded: still no CPN
    assert detectors.cpn is None and detectors.cpn_run_dir is None and detectors.cpn_key == "no-cpn"
    assert set(kx.detected_instances(detectors, val, "fashionai")) == {kx.KRCNN}
    with pytest.raises(ValueError, match="no CPN was trained"):
        _ = detectors.top_down
    with pytest.raises(ValueError, match="cpn and cpn_run_dir are given together"):
        kx.Detectors(detectors.keypoint_rcnn, None, detectors.run_dir, detectors.run_dir)
    # the page's Table 1: the tested rows scored, CPN's shown as not tested at this scale
    arrays = {row: ks.ne_arrays(rows_per_seed, val, row) for row in kx.tested_rows(setup)}
    scores = score_methods(arrays, ks.ne_metric(), n_boot=5, generator=torch.Generator().manual_seed(0))
    missing = [row for row in kx.ROWS if row not in kx.tested_rows(setup)]
    assert missing == list(kx.CPN_ROWS)
    table = comparison_table(scores, {kx.KRCNN: 13.70, kx.CPN: 13.55}, scale=100, not_tested=missing)
    assert list(table.index) == [row.label for row in kx.ROWS]  # the page prints the rows' labels
    assert (table.loc[[row.label for row in kx.CPN_ROWS], "ours, mean [95 % interval]"] == NOT_TESTED).all()
    assert "CPN" in kx.CPN_NOT_TESTED_REASON and "gpu" in kx.CPN_NOT_TESTED_REASON


def test_calibration_images_come_from_the_training_world_with_their_own_seed(runs):
    setup = tiny(calibration_images=3)
    images, targets = kr.calibration_set(setup, seed=0)
    assert len(images) == 3 and all("category" in t for t in targets)
    trained = {im.numpy().tobytes() for im, _ in kx.training_set(setup, seed=0, steps=2)}
    validation = {im.numpy().tobytes() for im in kx.validation_set(setup).images}
    mine = {im.numpy().tobytes() for im in images}
    assert not mine & trained and not mine & validation
    assert {im.numpy().tobytes() for im in kr.calibration_set(setup, seed=1)[0]} != mine  # a seed of its own
    with pytest.raises(ValueError, match="calibration_images must be an integer >= 0"):
        tiny(calibration_images=-1)


def prediction(keypoints: torch.Tensor, scores: list[float]) -> dict:
    n = len(keypoints)
    return {"boxes": torch.zeros(n, 4), "scores": torch.tensor(scores), "labels": torch.ones(n, dtype=torch.long),
            "keypoints": keypoints.float()}


def test_point_scores_read_the_garments_own_points_and_calibrate_a_threshold():
    targets = []
    for i, (category, occluded) in enumerate((("blouse", "cuff_left_in"), ("trousers", "bottom_left_in"))):
        kps = torch.zeros(1, 24, 3)
        own = FASHIONAI.category_mask(category)
        kps[0, own] = torch.tensor([10.0 + i, 20.0, VISIBLE])
        kps[0, FASHIONAI.index(occluded), 2] = OCCLUDED
        targets.append({"keypoints": kps, "category": category})
    preds = []
    for t in targets:  # the detector: sure of visible points (0.9), unsure of occluded ones (0.2); others 0.05
        det = t["keypoints"].clone()
        det[..., 2] = torch.where(t["keypoints"][..., 2] == VISIBLE, 0.9, 0.2)
        det[0, ~FASHIONAI.category_mask(t["category"]), 2] = 0.05
        preds.append(prediction(det, [0.8]))
    scores, visible = kr.point_scores(preds, targets, "fashionai")
    n_own = sum(int(FASHIONAI.category_mask(t["category"]).sum()) for t in targets)
    assert len(scores) == n_own and int((~visible).sum()) == 2, "only the garments' own points, two occluded"
    assert torch.equal(scores[~visible], torch.tensor([0.2, 0.2]))
    cal = calibrate_missing_threshold(scores, visible)
    assert cal.threshold == pytest.approx(0.55) and cal.youden_j == pytest.approx(1.0)


def test_point_scores_match_each_person_to_its_own_detection():
    from fashion_lib.keypoints import COCO

    people = torch.zeros(2, 17, 3)
    people[..., 0] = torch.linspace(10, 40, 17)
    people[..., 1] = torch.linspace(10, 60, 17)
    people[1, :, 0] += 50.0
    people[..., 2] = VISIBLE
    people[0, COCO.index("left_wrist"), 2] = OCCLUDED
    target = {"keypoints": people, "iscrowd": torch.zeros(2, dtype=torch.long)}
    det = people.clone()
    det[..., 2] = torch.tensor([[0.9], [0.6]])  # person 0's points score 0.9, person 1's 0.6 ...
    det[0, COCO.index("left_wrist"), 2] = 0.1  # ... and person 0's occluded wrist 0.1
    scores, visible = kr.point_scores([prediction(det.flip(0), [0.9, 0.95])], [target], "coco")  # person 1 first
    assert len(scores) == 34 and int((~visible).sum()) == 1
    assert float(scores[~visible][0]) == pytest.approx(0.1), "the wrist's score came from the wrong person"
    assert sorted(set(scores[visible].tolist())) == pytest.approx([0.6, 0.9])


def test_with_fill_threshold_sets_the_fill_rule_and_keeps_the_vote():
    paper = RefineConfig.for_schema("fashionai")
    assert kr.with_fill_threshold(paper, 0.14) == dataclasses.replace(paper, fill_threshold=0.14)
    assert kr.with_fill_threshold(paper, 0.14).score_threshold == 0.0
    # a calibration that flags nothing leaves the paper's rule (a fill threshold below the vote's would be refused)
    assert kr.with_fill_threshold(paper, -math.inf).fill_below == 0.0


def test_crop_alone_takes_the_mapped_crop_detection_and_the_first_scale_where_nothing_matched():
    from fashion_lib.refine_scales import NewKeyDetectionResult, _identity_result

    first = torch.rand(3, 24, 3, dtype=torch.float64)
    second = torch.rand(3, 24, 3, dtype=torch.float64)
    matched = torch.tensor([True, False, True])
    res = NewKeyDetectionResult(keypoints=(first + second) / 2, detected=first,
                                first=_identity_result(first, FASHIONAI.num_pairs),
                                second=_identity_result(second, FASHIONAI.num_pairs), boxes=torch.zeros(3, 4),
                                whole_image=torch.zeros(3, dtype=torch.bool), matched=matched,
                                match_score=matched.double())
    alone = kr.crop_alone(res)
    assert torch.equal(alone[matched], second[matched]) and torch.equal(alone[~matched], first[~matched])


def test_rows_for_seeds_trains_the_first_seed_last_and_returns_rows_in_seed_order(monkeypatch):
    # the attribute lane trains seeds[0]'s detector at its start (pipeline.LANES): this lane must reach it last
    calls = []
    monkeypatch.setattr(kr, "train_detectors", lambda setup, seed, progress=True: calls.append(seed) or seed)
    monkeypatch.setattr(kr, "table1_rows", lambda setup, detectors, val, refine, **kw: {"seed": detectors})
    setup = tiny(cpn_steps=0, train_steps=1, calibration_images=0)
    rows = kr.rows_for_seeds(setup, None, RefineConfig.for_schema("fashionai"), [0, 1, 2])
    assert calls[:3] == [2, 1, 0], f"training order {calls}"
    assert [r["seed"] for r in rows] == [0, 1, 2]
