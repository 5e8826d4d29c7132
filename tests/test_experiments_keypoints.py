"""The key-point experiments (fashion_lib.experiments.keypoints): what the notebooks rely on."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from fashion_lib.data.fashionai import CATEGORIES
from fashion_lib.experiments import keypoints as kx
from fashion_lib.keypoints import FASHIONAI, OCCLUDED, VISIBLE
from fashion_lib.refine import (
    MissingCalibration,
    RefineConfig,
    RefineSummary,
    calibrate_missing_threshold,
    refine_symmetric,
    summarize_refinement,
)


@pytest.fixture
def runs(tmp_path, monkeypatch):
    monkeypatch.setenv("FASHION_LIB_RUNS", str(tmp_path / "runs"))
    return tmp_path / "runs"


def tiny(schema: str = "fashionai", **kw) -> kx.KeypointSetup:
    values = dict(image_size=64, train_steps=2, cpn_steps=2, batch_size=2, val_images=3)
    return kx.KeypointSetup(schema=schema, **{**values, **kw})


@pytest.mark.parametrize("kwargs, message", [
    (dict(preset="tpu"), r"preset must be one of \('cpu', 'gpu'\), got 'tpu'"),
    (dict(train_steps=0), "train_steps must be an integer >= 1, got 0"),
    (dict(cpn_steps=-1), r"cpn_steps must be an integer >= 0 \(0: no CPN\), got -1"),
    (dict(image_size=32), "image_size must be >= 64, got 32: the detectors' ResNet trunks downsample 32 times"),
    (dict(lr=0.0), "lr must be > 0"),
    (dict(data_root="/no/such/folder"), "data_root '/no/such/folder' is not a folder"),
    (dict(schema="mpii"), "schema must be one of"),
])
def test_setup_names_a_bad_value(kwargs, message):
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        kx.KeypointSetup(**kwargs)


def test_validation_set_is_written_once_in_the_real_layout_and_read_back(runs):
    setup = tiny()
    val = kx.validation_set(setup)
    assert len(val.images) == 3 and val.keypoints.shape == (3, 24, 3)
    assert val.images[0].shape == (3, 64, 64), "image_size sets the synthetic world's image size"
    written = sorted(p for p in (runs / "data").iterdir() if not p.name.startswith("."))  # not the lock files
    assert len(written) == 1 and (written[0] / "Annotations" / "val.csv").is_file()
    stamp = (written[0] / "Annotations" / "val.csv").stat().st_mtime_ns
    again = kx.validation_set(setup)
    assert (written[0] / "Annotations" / "val.csv").stat().st_mtime_ns == stamp, "the set was written again"
    assert torch.equal(again.keypoints, val.keypoints) and again.categories == val.categories
    # another world for validation only: another set, another cache key
    other = kx.validation_set(tiny(val_world=dataclasses.replace(setup.world, occlusion_rate=0.5)))
    assert other.key != val.key and len([p for p in (runs / "data").iterdir() if not p.name.startswith(".")]) == 2


@pytest.fixture
def fashionai_folder(tmp_path):
    """A real-layout FashionAI split folder (train.csv and val.csv), written by the synthetic world."""
    from fashion_lib.synthetic import WorldConfig, write_fashionai_keypoints

    root = tmp_path / "fashionAI"
    write_fashionai_keypoints(root, 16, 3, WorldConfig(image_size=64), val_fraction=0.25)
    return root


def test_real_fashionai_without_val_file_validates_on_rows_held_out_of_training(runs, fashionai_folder):
    setup = tiny(data_root=str(fashionai_folder), scale_crop=False)  # images as stored, to compare bytes
    assert setup.holdout
    val = kx.validation_set(setup)
    trained = {image.numpy().tobytes() for image, _ in kx.training_set(setup, seed=0, steps=1)}
    assert len(val.images) == 3 and len(trained) == 12 - 3  # train.csv holds 12 rows, 3 are held out
    assert not trained & {image.numpy().tobytes() for image in val.images}, "a validation image is trained on"
    # the trained models know what they were trained on: another hold-out is another run folder
    assert kx.data_key(setup) != kx.data_key(tiny(data_root=str(fashionai_folder), val_images=4, scale_crop=False))
    # with the augmentation, a real split is repeated so that every step draws new scales of its images
    assert len(kx.training_set(dataclasses.replace(setup, scale_crop=True), seed=0, steps=10)) == 10 * 2


def test_scale_crop_augmentation_is_on_by_default_and_off_gives_the_literal_images(runs):
    from fashion_lib.data.transforms import extent_quantiles
    from fashion_lib.synthetic import SyntheticGarments

    on, off = tiny(train_steps=40), tiny(train_steps=40, scale_crop=False)
    assert on.scale_crop and kx.data_key(on) != kx.data_key(off), "the two must train separate models"
    world = SyntheticGarments(off.world, 80, seed=0, split="train")
    plain, augmented = kx.training_set(off, seed=0, steps=40), kx.training_set(on, seed=0, steps=40)
    for i in (0, 7):
        image, target = plain[i]
        assert torch.equal(image, world[i][0]) and torch.equal(target["keypoints"], world[i][1]["keypoints"])
        assert set(target) == {"boxes", "labels", "keypoints"} == set(augmented[i][1])
        assert not torch.equal(augmented[i][0], image) and torch.equal(augmented[i][1]["labels"], target["labels"])
    q = extent_quantiles([augmented[i][1] for i in range(80)], [(64, 64)] * 80)
    assert q[0.05] < 0.42 and q[0.95] > 0.88
    with pytest.raises(ValueError, match="scale_crop must be true or false, got 'yes'"):
        tiny(scale_crop="yes")


def test_category_accuracy_counts_the_top_detections_category_per_garment():
    val = kx.ValidationSet(images=[torch.zeros(3, 8, 8)] * 4, targets=[{"category": c} for c in
                           ("dress", "dress", "skirt", "blouse")], key="toy")
    labels = torch.tensor([CATEGORIES.index(c) + 1 for c in ("dress", "skirt", "skirt")] + [0])  # last: no detection
    inst = kx.Instances(torch.zeros(4, 24, 3), torch.ones(4), torch.arange(4), labels=labels)
    assert kx.category_accuracy(inst, val) == {"all": 0.5, "dress": 0.5, "skirt": 1.0, "blouse": 0.0}
    with pytest.raises(ValueError, match="carry no labels"):
        kx.category_accuracy(kx.Instances(torch.zeros(4, 24, 3), torch.ones(4), torch.arange(4)), val)


def test_coco_train_steps_give_people_their_own_schedule(runs):
    both = tiny(train_steps=40, coco_train_steps=10)
    people = dataclasses.replace(both, schema="coco")
    assert kx.detector_run(both, "keypoint_rcnn", 0).train_config.steps == 40
    assert kx.detector_run(people, "keypoint_rcnn", 0).train_config.steps == 10
    assert kx.detector_run(dataclasses.replace(people, coco_train_steps=0), "keypoint_rcnn", 0).train_config.steps == 40
    with pytest.raises(ValueError, match="coco_train_steps must be an integer >= 0 \\(0: train_steps\\), got -1"):
        tiny(coco_train_steps=-1)


def test_amp_reaches_the_training_config_and_names_its_own_run(runs):
    on, off = tiny(), tiny(amp=False)
    assert on.amp and kx.train_config(on, 0, 10).amp and not kx.train_config(off, 0, 10).amp
    assert kx.detector_run(on, "keypoint_rcnn", 0).run_dir != kx.detector_run(off, "keypoint_rcnn", 0).run_dir
    with pytest.raises(ValueError, match="amp must be true or false, got 1"):
        tiny(amp=1)


def test_real_fashionai_val_file_in_another_folder_and_bad_files_are_named(runs, fashionai_folder, tmp_path):
    from fashion_lib.synthetic import WorldConfig, write_fashionai_keypoints

    test_a = tmp_path / "test_a"
    write_fashionai_keypoints(test_a, 8, 4, WorldConfig(image_size=64), val_fraction=0.5)
    setup = tiny(data_root=str(fashionai_folder), val_root=str(test_a), val_file="Annotations/val.csv")
    val = kx.validation_set(setup)
    assert not setup.holdout and len(val.images) == 3
    assert len(list(kx.training_set(setup, seed=0, steps=1))) == 12, "a separate split trains on every row"
    with pytest.raises(ValueError, match=r"val_file .*train.csv shares 12 image\(s\) with train_file"):
        kx.validation_set(tiny(data_root=str(fashionai_folder), val_file="Annotations/train.csv"))
    with pytest.raises(FileNotFoundError, match=r"val_file: .*nope.csv does not exist"):
        tiny(data_root=str(fashionai_folder), val_file="Annotations/nope.csv")
    with pytest.raises(ValueError, match="val_root is set but data_root is not"):
        tiny(val_root=str(test_a))


def test_occluded_ne_counts_only_points_the_truth_marks_occluded():
    gt = torch.zeros(1, 24, 3)
    a, b = FASHIONAI.index("armpit_left"), FASHIONAI.index("armpit_right")
    gt[0, a], gt[0, b] = torch.tensor([10.0, 10.0, VISIBLE]), torch.tensor([30.0, 10.0, VISIBLE])  # normaliser 20
    cuff = FASHIONAI.index("cuff_left_in")
    gt[0, cuff] = torch.tensor([5.0, 40.0, OCCLUDED])
    pred = gt.clone()
    pred[..., 2] = 1.0
    pred[0, cuff, 0] += 4.0  # 4 px off on the occluded point: 0.2 of the normaliser
    pred[0, a, 0] += 2.0  # 2 px off on a visible point: 0.1
    assert kx.ne_metric(points="occluded")(pred, gt, ["blouse"]) == pytest.approx(0.2)
    assert kx.ne_metric()(pred, gt, ["blouse"]) == pytest.approx(0.05)  # visible: (0.1 + 0) / 2
    assert kx.ne_metric(points="all")(pred, gt, ["blouse"]) == pytest.approx(0.1)  # (0.1 + 0 + 0.2) / 3
    with pytest.raises(ValueError, match="points must be"):
        kx.ne_metric(points="hidden")


@pytest.mark.slow
def test_rows_of_table1_from_trained_detectors(runs):
    setup = tiny()
    detectors = kx.train_detectors(setup, 0, progress=False)
    again = kx.train_detectors(setup, 0, progress=False)  # a finished run: loaded, same weights
    first = next(iter(detectors.keypoint_rcnn.state_dict().values()))
    assert torch.equal(first, next(iter(again.keypoint_rcnn.state_dict().values())))
    val = kx.validation_set(setup)
    refine = RefineConfig.for_schema("fashionai", d=4.0, m=6)
    rows = kx.table1_rows(setup, detectors, val, refine, seed=3)
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
    kx.table1_rows(setup, detectors, val, refine, seed=3)
    assert cache[0].stat().st_mtime_ns == stamp
    only = kx.table1_rows(setup, detectors, val, refine, rows=(kx.SECOND,), seed=3)  # without asking for "twice"
    assert list(only) == [kx.SECOND] and torch.equal(only[kx.SECOND].keypoints, rows[kx.SECOND].keypoints)
    with pytest.raises(ValueError, match="rows has unknown entries"):
        kx.table1_rows(setup, detectors, val, refine, rows=("Mask R-CNN",))
    assert rows[kx.NKD].matched.shape == (3,) and rows[kx.AXIS_ONCE].refined is not None
    # the missing-point rule calibrated on held-out training images, one threshold per detector
    cal = kx.calibrate_missing(tiny(calibration_images=4), detectors, 0)
    assert set(cal) == {kx.KRCNN, kx.CPN} and all(c.visible + c.hidden > 0 for c in cal.values())
    thresholds = {row: c.threshold for row, c in cal.items()}
    calibrated = kx.table1_rows(setup, detectors, val, refine, rows=(kx.AXIS_ONCE,), seed=3, thresholds=thresholds)
    expected = refine_symmetric(rows[kx.KRCNN].keypoints, FASHIONAI, generator=torch.Generator().manual_seed(3),
                                config=dataclasses.replace(refine, fill_threshold=max(cal[kx.KRCNN].threshold, 0.0)))
    torch.testing.assert_close(calibrated[kx.AXIS_ONCE].keypoints, expected.keypoints, equal_nan=True)
    with pytest.raises(ValueError, match="thresholds has unknown detector rows"):
        kx.table1_rows(setup, detectors, val, refine, thresholds={"Mask R-CNN": 0.1})
    # one rule for every page: the seed's calibrated Keypoint R-CNN threshold, or the config as given without
    assert kx.calibrated_refine(tiny(calibration_images=4), detectors, 0, refine) == dataclasses.replace(
        refine, fill_threshold=max(cal[kx.KRCNN].threshold, 0.0))
    assert kx.calibrated_refine(setup, detectors, 0, refine) is refine
    # per-seed arrays feed the NE metric; every visible ground-truth point is counted
    (pred, gt, cats), = kx.ne_arrays([rows], val, kx.NKD)
    assert pred.shape == gt.shape and cats == val.categories
    assert math.isfinite(kx.ne_metric()(pred, gt, cats))


@pytest.mark.slow
def test_a_setup_with_cpn_steps_0_trains_no_cpn_and_its_rows_are_not_tested(runs):
    from fashion_lib.report import NOT_TESTED, comparison_table, score_methods

    setup = tiny(cpn_steps=0, train_steps=1, calibration_images=2)
    assert not setup.trains_cpn and tiny().trains_cpn
    with pytest.raises(ValueError, match="cpn_steps is 0: this setup trains no CPN"):
        kx.detector_run(setup, "cpn", 0)
    val = kx.validation_set(setup)
    calibrations = []
    rows_per_seed = kx.rows_for_seeds(setup, val, RefineConfig.for_schema("fashionai", d=4.0, m=6), [0],
                                      calibrations=calibrations)
    trained = sorted(p.name.split("-")[0] for p in runs.iterdir() if p.name != "data" and not p.name.startswith("."))
    assert trained == ["keypoint_rcnn"], f"a CPN run folder was made: {trained}"
    assert list(rows_per_seed[0]) == [kx.KRCNN, kx.AXIS_ONCE, kx.SECOND, kx.TWICE, kx.NKD] == list(
        kx.tested_rows(setup))
    assert set(calibrations[0]) == {kx.KRCNN}
    # the axis-once row again: with no change it is the row itself; with alpha 0 the same fills and no pull
    refine = RefineConfig.for_schema("fashionai", d=4.0, m=6)
    thresholds = [calibrations[0][kx.KRCNN].threshold]
    again, = kx.axis_once_variant(rows_per_seed, val, refine, [0], thresholds)
    once = rows_per_seed[0][kx.AXIS_ONCE]
    assert torch.equal(again.keypoints.nan_to_num(-1), once.keypoints.nan_to_num(-1))
    fill_only, = kx.axis_once_variant(rows_per_seed, val, refine, [0], thresholds, alpha=0.0)
    assert torch.equal(fill_only.refined.filled, once.refined.filled)
    kept = ~fill_only.refined.filled  # every point not filled stays where the detector put it
    assert torch.equal(fill_only.keypoints[..., :2][kept], rows_per_seed[0][kx.KRCNN].keypoints[..., :2][kept])
    with pytest.raises(ValueError, match="seeds has 2 entries for 1 seeds' rows"):
        kx.axis_once_variant(rows_per_seed, val, refine, [0, 1], thresholds)
    detectors = kx.train_detectors(setup, 0, progress=False)  # loaded: still no CPN
    assert detectors.cpn is None and detectors.cpn_run_dir is None and detectors.cpn_key == "no-cpn"
    assert set(kx.detected_instances(detectors, val, "fashionai")) == {kx.KRCNN}
    with pytest.raises(ValueError, match="no CPN was trained"):
        _ = detectors.top_down
    with pytest.raises(ValueError, match="cpn and cpn_run_dir are given together"):
        kx.Detectors(detectors.keypoint_rcnn, None, detectors.run_dir, detectors.run_dir)
    # the page's Table 1: the tested rows scored, CPN's shown as not tested at this scale
    arrays = {row: kx.ne_arrays(rows_per_seed, val, row) for row in kx.tested_rows(setup)}
    scores = score_methods(arrays, kx.ne_metric(), n_boot=5, generator=torch.Generator().manual_seed(0))
    missing = [row for row in kx.ROWS if row not in kx.tested_rows(setup)]
    assert missing == list(kx.CPN_ROWS)
    table = comparison_table(scores, {kx.KRCNN: 13.70, kx.CPN: 13.55}, scale=100, not_tested=missing)
    assert list(table.index) == list(kx.ROWS)
    assert (table.loc[list(kx.CPN_ROWS), "ours, mean [95 % interval]"] == NOT_TESTED).all()
    assert "CPN" in kx.CPN_NOT_TESTED_REASON and "gpu" in kx.CPN_NOT_TESTED_REASON


def test_coco_metric_scores_perfect_results_as_one(runs):
    setup = tiny("coco")
    val = kx.validation_set(setup)
    people = [t["keypoints"][t["iscrowd"] == 0] for t in val.targets]
    kps = torch.cat(people)
    kps[..., 2] = (kps[..., 2] > 0).float()  # confidence 1 where labelled
    index = torch.cat([torch.full((len(p),), j) for j, p in enumerate(people)])
    perfect = kx.Instances(kps, torch.ones(len(kps)), index)
    (per_image, ids), = kx.coco_arrays([{kx.KRCNN: perfect}], val, kx.KRCNN)
    assert isinstance(per_image, np.ndarray) and len(per_image) == len(val.images) == len(ids)
    assert kx.coco_metric(val)(per_image, ids) == pytest.approx(1.0)
    shifted = kx.Instances(kps + torch.tensor([15.0, 15.0, 0.0]), perfect.scores, index)
    (worse, _), = kx.coco_arrays([{kx.KRCNN: shifted}], val, kx.KRCNN)
    assert kx.coco_metric(val)(worse, ids) < 0.5


# ------------------------------------------------------------------------------------------------------------------
# The missing-point rule: calibration images, point scores, the fills and their NE
# ------------------------------------------------------------------------------------------------------------------


def test_calibration_images_come_from_the_training_world_with_their_own_seed(runs):
    setup = tiny(calibration_images=3)
    images, targets = kx.calibration_set(setup, seed=0)
    assert len(images) == 3 and all("category" in t for t in targets)
    trained = {im.numpy().tobytes() for im, _ in kx.training_set(setup, seed=0, steps=2)}
    validation = {im.numpy().tobytes() for im in kx.validation_set(setup).images}
    mine = {im.numpy().tobytes() for im in images}
    assert not mine & trained and not mine & validation
    assert {im.numpy().tobytes() for im in kx.calibration_set(setup, seed=1)[0]} != mine  # a seed of its own
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
    scores, visible = kx.point_scores(preds, targets, "fashionai")
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
    scores, visible = kx.point_scores([prediction(det.flip(0), [0.9, 0.95])], [target], "coco")  # person 1 first
    assert len(scores) == 34 and int((~visible).sum()) == 1
    assert float(scores[~visible][0]) == pytest.approx(0.1), "the wrist's score came from the wrong person"
    assert sorted(set(scores[visible].tolist())) == pytest.approx([0.6, 0.9])


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
    fills = kx.fill_errors(inst, out, val)
    assert all(bool(out.filled[b, k]) for b, k in planted if out.has_axis[b])
    assert int(out.filled.sum()) >= fills.scored >= sum(bool(out.has_axis[b]) for b, _ in planted) > 0
    assert fills.ne_before > 2 * fills.ne_after, "the mirror image should beat a 30-px-off guess"
    before, after = kx.filled_point_errors(inst, out, val)
    assert before.shape == after.shape == (int(out.filled.sum()),)
    assert fills.ne_after == pytest.approx(float(after[~after.isnan()].mean()))
    # nothing filled: no error to report
    none = kx.fill_errors(inst, dataclasses.replace(out, filled=torch.zeros_like(out.filled)), val)
    assert none.scored == 0 and math.isnan(none.ne_before) and math.isnan(none.ne_after)


def test_score_axis_once_reports_the_refiners_shares_over_seeds(runs):
    val = kx.validation_set(tiny(val_images=3))
    det = val.keypoints.clone()
    det[..., 2] = torch.where(det[..., 2] > 0, 0.9, 0.0)
    shifted = det.clone()
    shifted[:, FASHIONAI.pairs[::3, 0], 0] += 20.0  # a few left points 20 px right: pairs to move
    seeds = [kx.Instances(d, torch.ones(3), torch.arange(3)) for d in (det, shifted)]
    cfg = RefineConfig.for_schema("fashionai", m=3, d=6.0, score_threshold=0.3)
    row = kx.score_axis_once(seeds, val, cfg, seed=0)
    summaries = [summarize_refinement(i.keypoints, refine_symmetric(i.keypoints, FASHIONAI, config=cfg,
                                                                    generator=torch.Generator().manual_seed(0)),
                                      FASHIONAI, config=cfg) for i in seeds]
    assert row["with axis"] == pytest.approx(sum(s.with_axis / 3 for s in summaries) / 2)
    assert row["pairs moved"] == pytest.approx(sum(s.pairs_refined for s in summaries) / 6)
    assert row["points filled"] == pytest.approx(sum(s.points_filled for s in summaries) / 6)
    assert 0 < row["with axis"] <= 1 and row["pairs moved"] > 0
    # per-seed fill thresholds: the same as a config carrying them (0.95: every point unsure, so no partner to fill
    # from; they all still vote)
    per_seed = kx.score_axis_once(seeds, val, cfg, thresholds=[0.95, 0.95])
    expected = kx.score_axis_once(seeds, val, dataclasses.replace(cfg, fill_threshold=0.95))
    assert per_seed == pytest.approx(expected, nan_ok=True)
    assert per_seed["with axis"] == row["with axis"] and per_seed["points filled"] == 0
    with pytest.raises(ValueError, match="thresholds has 1 entries for 2 seeds"):
        kx.score_axis_once(seeds, val, cfg, thresholds=[0.3])


def test_missing_rule_sentence_names_the_rule_and_each_seeds_threshold():
    assert kx.missing_rule_sentence(tiny(calibration_images=100), [0.1234, 0.2]) == (
        "Every point scoring above 0 votes for the axis (every detected point, as the paper's Alg. 2 lets them); a "
        "point is replaced by its partner's mirror image when its score is at or below the threshold calibrated "
        "(Youden's J) on 100 fresh images of the training world per seed (never the validation set), 0.123, 0.200, "
        "and its partner's is above it.")
    assert kx.missing_rule_sentence(tiny(), [0.0], 0.1) == (
        "Every point scoring above 0.1 votes for the axis; a point is replaced by its partner's "
        "mirror image when its score is at or below the fixed threshold 0.000 (no calibration) and its partner's is "
        "above it.")


def test_with_fill_threshold_sets_the_fill_rule_and_keeps_the_vote():
    paper = RefineConfig.for_schema("fashionai")
    assert kx.with_fill_threshold(paper, 0.14) == dataclasses.replace(paper, fill_threshold=0.14)
    assert kx.with_fill_threshold(paper, 0.14).score_threshold == 0.0
    # a calibration that flags nothing leaves the paper's rule (a fill threshold below the vote's would be refused)
    assert kx.with_fill_threshold(paper, -math.inf).fill_below == 0.0


def test_missing_point_table_and_its_summary_for_the_page(runs):
    val = kx.validation_set(tiny(val_images=3))
    det = val.keypoints.clone()
    det[..., 2] = torch.where(det[..., 2] > 0, 0.9, 0.0)
    base = kx.Instances(det, torch.ones(3), torch.arange(3))
    out = refine_symmetric(det, FASHIONAI, generator=torch.Generator().manual_seed(0), score_threshold=0.5)
    rows = {kx.KRCNN: base, kx.AXIS_ONCE: dataclasses.replace(base, keypoints=out.keypoints, refined=out),
            kx.NKD: dataclasses.replace(base, matched=torch.tensor([True, False, True]))}
    cal = {kx.KRCNN: MissingCalibration(0.25, 0.5, 0.75, 0.75, 10, 4)}
    table = kx.missing_point_table([rows, rows], val, [0, 1], RefineConfig(), calibrations=[cal, cal])
    assert [r["seed"] for r in table] == [0, 1] and table[0]["threshold"] == 0.25
    assert table[0]["points filled"] == int(out.filled.sum()) and table[0]["second scale unmatched"] == 1
    summary = kx.missing_point_summary(table)
    assert summary["points_filled"] == 2 * int(out.filled.sum()) and summary["second_scale_unmatched"] == 2
    assert table[0]["second scale instances"] == 3 and summary["second_scale_instances"] == 2 * 3
    assert summary["second_scale_unmatched_share"] == pytest.approx(100 * 2 / 6)
    without = kx.missing_point_summary(kx.missing_point_table([{k: rows[k] for k in (kx.KRCNN, kx.AXIS_ONCE)}], val,
                                                              [0], RefineConfig()))
    assert without["second_scale_instances"] == 0 and math.isnan(without["second_scale_unmatched_share"])
    assert table[0]["symmetric points"] == 3 * 22 and summary["symmetric_points"] == 2 * 3 * 22
    assert table[0]["pairs moved by the EMA"] == int(out.refined.sum())
    assert summary["missing_threshold"] == pytest.approx(0.25)
    literal = kx.missing_point_table([rows], val, [0], RefineConfig(score_threshold=0.1))
    assert literal[0]["threshold"] == 0.1 and math.isnan(literal[0]["Youden's J"])
    with pytest.raises(ValueError, match="calibrations has 1 entries for 2 seeds"):
        kx.missing_point_table([rows, rows], val, [0, 1], RefineConfig(), calibrations=[cal])


def _two_people() -> tuple[kx.ValidationSet, torch.Tensor]:
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

    val, people = _two_people()
    perfect = people.clone()
    perfect[..., 2] = 1.0
    worse = perfect.clone()
    worse[:, COCO.index("right_wrist"), 0] += 5.0  # half a shoulder distance on both right wrists
    inst = {name: kx.Instances(k, torch.ones(2), torch.zeros(2, dtype=torch.long))
            for name, k in ((kx.AXIS_ONCE, perfect), (kx.KRCNN, worse))}
    out = kx.row_point_changes([inst, inst, inst], val, "coco", kx.AXIS_ONCE)
    wrist = COCO.index("right_wrist")
    assert out.count[0, wrist].item() == 2  # two persons, not six (persons x seeds)
    assert out.mean[0, wrist].item() == pytest.approx(-0.5)


def test_limb_error_changes_pair_the_persons_and_split_visible_from_occluded():
    from fashion_lib.keypoints import COCO

    val, people = _two_people()
    perfect = people.clone()
    perfect[..., 2] = 1.0
    worse = perfect.clone()  # the baseline misses both right wrists by half a shoulder distance (5 px)
    worse[:, COCO.index("right_wrist"), 0] += 5.0
    worse[0, COCO.index("left_wrist"), 1] += 10.0  # ... and person 0's occluded left wrist by one (10 px)
    inst = {name: kx.Instances(k, torch.ones(2), torch.zeros(2, dtype=torch.long))
            for name, k in (("row", perfect), ("base", worse))}
    rows = kx.limb_error_changes([inst, inst], val, "row", "base", n_boot=20, generator=torch.Generator(),
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
    shown = kx.limb_change_table(rows)
    assert shown.loc[("visible", "knee"), "change (points) [95 % interval]"] == "—"
    assert shown.loc[("visible", "knee"), "verdict"] == "not moved" and shown.loc[("visible", "knee"), "moved"] == 0
    assert shown.loc[("occluded", "wrist"), "change (points) [95 % interval]"].startswith("-100.00 [")
    assert shown.loc[("visible", "wrist"), "scored"] == 6
    with pytest.raises(ValueError, match="limb must be one of"):
        kx.limb_change_metric("tail")


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
    own = kx.coco_point_errors(rows[kx.AXIS_ONCE], val)
    detector = kx.coco_point_errors(rows[kx.KRCNN], val)
    assert detector[0, 0].item() == 0.0 and own[0, 0].item() > 0.0
    kept = kx.coco_point_errors(rows[kx.AXIS_ONCE], val, reference=rows[kx.KRCNN])
    assert kept[0, 0].item() == 0.0  # the nose: the same detection, which the refiner left where it was
    assert torch.equal(kept, kx.seed_point_errors(rows, val, kx.AXIS_ONCE))
    changes = kx.row_point_changes([rows, rows], val, "coco", kx.AXIS_ONCE)
    assert changes.on_axis == (0,) and changes.largest_on_axis == 0.0  # the check the pages print
    assert changes.mean[0, 1:].abs().max().item() > 0.0  # the refined points do change
    limbs = {(r["limb"], r["points"]): r for r in kx.limb_error_changes(
        [rows], val, kx.AXIS_ONCE, kx.KRCNN, n_boot=10, generator=torch.Generator())}
    assert limbs[("wrist", "visible")]["baseline"] == pytest.approx(0.0)  # the detector's exact duplicate
    with pytest.raises(ValueError, match="do not line up with reference"):
        kx.coco_point_errors(rows[kx.AXIS_ONCE], val, reference=dataclasses.replace(
            rows[kx.KRCNN], image_index=torch.tensor([0, 1])))
    with pytest.raises(ValueError, match=r"instances \(1 detections\) do not line up with reference \(2\)"):
        one = rows[kx.AXIS_ONCE]
        kx.coco_point_errors(kx.Instances(one.keypoints[:1], one.scores[:1], one.image_index[:1]), val,
                             reference=rows[kx.KRCNN])
    with pytest.raises(ValueError, match="rows has no row 'Keypoint R-CNN'"):
        kx.seed_point_errors({kx.AXIS_ONCE: rows[kx.AXIS_ONCE]}, val, kx.AXIS_ONCE)


def test_second_scale_counts_give_each_share_its_denominator():
    val, people = _two_people()
    kp = people.clone()
    kp[..., 2] = 1.0
    stray = kp[:1].clone()
    stray[..., 0] += 200.0  # a third detection far from both persons: matches nobody
    first = kx.Instances(torch.cat([kp, stray]), torch.ones(3), torch.zeros(3, dtype=torch.long))
    two_scale = dataclasses.replace(first, matched=torch.tensor([True, False, True]))
    counts = kx.second_scale_counts([{kx.KRCNN: first, kx.NKD: two_scale}], val)
    assert counts == [{"detections": 3, "matched to a person": 2, "matched in the crop": 2, "both": 1}]
    with pytest.raises(ValueError, match="has no second-scale matching"):
        kx.second_scale_counts([{kx.KRCNN: first, kx.NKD: first}], val)
    with pytest.raises(ValueError, match="has 2 instances, baseline 'Keypoint R-CNN' 3"):
        short = dataclasses.replace(first, matched=torch.tensor([True, True]))
        kx.second_scale_counts([{kx.KRCNN: first, kx.NKD: short}], val)


@pytest.mark.parametrize("before, after, words", [
    (19.6, 25.4, "The fill raised the error of the filled points from 19.6 % "),
    (25.4, 19.6, "The fill lowered the error of the filled points from 25.4 % "),
    (20.0, 20.0, "The fill left the error"),
    (20.04, 20.01, "The fill left the error of the filled points from 20.0 % (where the detector put them) to 20.0 %"),
    (math.nan, math.nan, "No labelled point was filled (7 filled in all)"),
])
def test_fill_sentence_follows_the_measured_direction(before, after, words):
    sentence = kx.fill_sentence({"filled_error_before": before, "filled_error_after": after, "points_filled": 7,
                                 "filled_labelled": 5})
    assert sentence.startswith(words)
    assert math.isnan(before) or sentence.endswith("on the 5 of the 7 filled points that the ground truth labels.")


def test_second_scale_framing_of_the_crops_new_key_detection_cuts():
    val, people = _two_people()  # an 8 x 8 image is too small: put the two people on a 100 x 120 one
    val = dataclasses.replace(val, images=[torch.zeros(3, 100, 120)])
    kp = people.clone()
    kp[..., 2] = 1.0
    inst = kx.Instances(kp, torch.ones(2), torch.zeros(2, dtype=torch.long))
    refine = RefineConfig.for_schema("coco", margin=0.0)
    extent, padding = kx.second_scale_framing(inst, val, refine)
    torch.testing.assert_close(extent, torch.ones(2, dtype=extent.dtype))  # margin 0: the points fill the square
    assert float(padding[0]) == 0.0
    # 50 px tall, grown by 0.6 x 50 per side: a 110-px square, taller than the 100-px image: 10 of 110 rows padded
    wide = kx.second_scale_framing(inst, val, dataclasses.replace(refine, margin=0.6))
    torch.testing.assert_close(wide[0], torch.full((2,), 50 / 110, dtype=extent.dtype))
    torch.testing.assert_close(wide[1], torch.full((2,), 10 / 110, dtype=extent.dtype))


def test_prior_map_scores_the_axis_once_per_world_with_an_interval(runs):
    from fashion_lib.models.detector import predict

    setup = tiny()
    world = kx.map_world(setup.world, 0.3, 0.0)
    assert (world.asymmetry, world.perspective, world.occluded_label_noise, world.occlusion_rate) == (0, 0, 0, 0.3)
    assert kx.map_world(setup.world, 0.3, 0.5).perspective == setup.world.perspective
    detectors = [kx.train_detectors(setup, 0, progress=False)]
    refine = RefineConfig.for_schema("fashionai", d=4.0, m=6)
    prior = kx.prior_map(setup, detectors, [0], refine, [0.0, 0.5], [0.0, 1.0], images=3, n_boot=20,
                         generator=torch.Generator().manual_seed(0))
    assert prior.change.shape == (2, 2, 2) and prior.points == ("visible", "occluded") and prior.garments == 3
    assert prior.change[1, 0].isnan().all(), "no occluded point at occlusion 0: nothing to score"
    # the oracle for one cell: the axis once on the detector's garments of that world, minus the detector
    cell = dataclasses.replace(setup, val_world=kx.map_world(setup.world, 0.5, 1.0), val_images=3)
    val = kx.validation_set(cell)
    alone = kx._instances(predict(detectors[0].keypoint_rcnn, val.images), "fashionai").keypoints
    axis = refine_symmetric(alone, FASHIONAI, generator=torch.Generator().manual_seed(0), config=refine).keypoints
    ne = kx.ne_metric()
    expected = ne(axis, val.keypoints, val.categories) - ne(alone, val.keypoints, val.categories)
    assert float(prior.change[0, 1, 1]) == pytest.approx(expected, abs=1e-9)
    assert bool((prior.low[0] <= prior.change[0] + 1e-12).all() and (prior.change[0] <= prior.high[0] + 1e-12).all())
    assert torch.equal(prior.decided, (prior.low > 0) | (prior.high < 0))
    # the counts beside the verdicts: the labelled points of each kind, and the refiner's own summary per seed
    from fashion_lib.metrics import keypoint_errors

    counted = ~keypoint_errors(alone, val.keypoints, val.categories, count_occluded=True).isnan()
    assert int(prior.scored[0, 1, 1]) == int((counted & (val.keypoints[..., 2] == VISIBLE)).sum()) > 0
    assert int(prior.scored[1, 1, 1]) == int((counted & (val.keypoints[..., 2] == OCCLUDED)).sum())
    assert int(prior.scored[1, 0].sum()) == 0, "no occluded point at occlusion 0"
    out = refine_symmetric(alone, FASHIONAI, generator=torch.Generator().manual_seed(0), config=refine)
    assert prior.activity[1][1] == (summarize_refinement(alone, out, FASHIONAI, config=refine),)
    assert float(prior.axis_found[1, 1]) == pytest.approx(float(out.has_axis.double().mean()))
    assert int(prior.filled[1, 1]) == int(out.filled.sum())
    with pytest.raises(ValueError, match="prior_map needs a FashionAI setup"):
        kx.prior_map(tiny("coco"), detectors, [0], refine, [0.1], [0.0], images=3, n_boot=5,
                     generator=torch.Generator())
    with pytest.raises(ValueError, match=r"detectors \(1\) and seeds \(2\) must pair up"):
        kx.prior_map(setup, detectors, [0, 1], refine, [0.1], [0.0], images=3, n_boot=5, generator=torch.Generator())


def _summary(instances: int, with_axis: int, filled: int) -> RefineSummary:
    return RefineSummary(instances=instances, with_axis=with_axis, too_few_pairs=0, pairs_refined=1, points_moved=2,
                         points_filled=filled, points_ignored=0)


def _referee_map() -> kx.PriorMap:
    """The 3 x 3 map the page showed (NE points): decided cells get a narrow interval, the others one across 0."""
    occluded = [[-3.86, -2.63, -1.86], [-2.93, -2.53, -0.23], [-1.73, -0.92, -0.18]]
    visible = [[-0.17, 0.28, 0.59], [0.16, 0.27, 0.69], [0.29, 0.20, 0.80]]
    decided = torch.tensor([[[False, False, False], [False, False, True], [False, False, True]],
                            [[True, True, False], [True, True, False], [True, True, False]]])
    change = torch.tensor([visible, occluded], dtype=torch.float64) / 100
    width = torch.where(decided, 0.3 * change.abs(), change.abs() + 0.005)
    scored = torch.tensor([[[500, 501, 502], [400, 401, 402], [300, 301, 302]],
                           [[30, 31, 32], [70, 71, 72], [140, 141, 142]]])
    activity = tuple(tuple((_summary(48, 40, 3), _summary(48, 44, 4 + i + j)) for j in range(3)) for i in range(3))
    return kx.PriorMap((0.085, 0.2, 0.4), (0.0, 0.3, 1.0), ("visible", "occluded"), change, change - width,
                       change + width, 48, scored, activity)


def test_prior_map_sentences_count_the_verdicts_and_state_every_line_with_its_ends():
    prior = _referee_map()
    visible, occluded = kx.prior_map_sentences(prior).split("\n\n**Occluded points.**")
    assert visible.startswith("**Visible points.** Of the 9 measured cells the axis lowers NE (interval below 0) in "
                              "0, raises it (interval above 0) in 2, and the interval includes 0 in 7.")
    assert " The starred cells are scored on 302 to 402 visible points each (fewest at occlusion 0.4, asymmetry 1)." \
        in visible
    assert occluded.startswith(" Of the 9 measured cells the axis lowers NE (interval below 0) in 6, raises it "
                               "(interval above 0) in 0, and the interval includes 0 in 3.")
    assert "on 30 to 141 occluded points each (fewest at occlusion 0.085, asymmetry 0)" in occluded
    # the referee's line: the gain on occluded points shrinks as occlusion rises, at the symmetric end
    assert ("- at asymmetry 0, along occlusion: -3.86 [-5.02, -2.70] (occlusion 0.085) → -2.93 → -1.73 [-2.25, "
            "-1.21] (occlusion 0.4): the change shrinks towards 0; the end intervals do not overlap.") in occluded
    assert "- at occlusion 0.085, along asymmetry: -0.17 [-0.84, +0.50] (asymmetry 0) → +0.28 → +0.59 [-0.50, " \
           "+1.68] (asymmetry 1): the sign changes; the end intervals overlap." in visible
    assert "- at asymmetry 1, along occlusion: +0.59 [-0.50, +1.68] (occlusion 0.085) → +0.69 → +0.80 [+0.56, " \
           "+1.04] (occlusion 0.4): the change grows away from 0; the end intervals overlap." in visible
    assert visible.count("\n- at asymmetry") == 3 and visible.count("\n- at occlusion") == 3


def test_prior_map_sentences_leave_out_unmeasured_cells_and_read_ties_at_the_printed_precision():
    nan = float("nan")
    change = torch.tensor([[[0.010, 0.010], [0.01001, -0.02]], [[nan, nan], [-0.03, -0.01]]], dtype=torch.float64)
    activity = (((_summary(3, 3, 0),),) * 2,) * 2
    prior = kx.PriorMap((0.0, 0.4), (0.0, 1.0), ("visible", "occluded"), change, change - 0.001, change + 0.001, 3,
                        torch.ones(2, 2, 2, dtype=torch.int64), activity)
    text = kx.prior_map_sentences(prior)
    assert "and the interval includes 0 in 0; no occluded point in 2 cells." in text
    assert "- at asymmetry 0, along occlusion: fewer than two measured cells along occlusion." in text
    assert "(occlusion 0.4): the same at the printed precision; the end intervals overlap." in text
    assert "Of the 4 measured cells the axis lowers NE (interval below 0) in 1, raises it (interval above 0) in 3" \
        in text
    one_row = dataclasses.replace(prior, occlusion_values=(0.4,), change=change[:, 1:], low=change[:, 1:] - 1,
                                  high=change[:, 1:] + 1, scored=prior.scored[:, 1:], activity=activity[1:])
    text = kx.prior_map_sentences(one_row)
    assert "along occlusion" not in text and "- at occlusion 0.4, along asymmetry" in text
    assert text.count("No cell is starred.") == 2


def test_prior_map_counts_and_notes_put_the_mechanism_beside_each_verdict():
    prior = _referee_map()
    assert prior.axis_found[0, 0].item() == pytest.approx(84 / 96) and prior.filled[2, 2].item() == 3 + 8
    table = kx.prior_map_counts(prior)
    assert list(table.index)[0] == (0.085, 0.0) and len(table) == 9
    row = table.loc[(0.085, 0.0)]
    assert (row["visible points scored"], row["occluded points scored"]) == (500, 30)
    assert row["garments with an axis (n/N, all seeds)"] == "84/96 (88 %)"
    assert row["points filled (all seeds)"] == "7 (0.07 per instance)"
    assert table["starred on"].tolist() == ["occluded", "occluded", "—", "occluded", "occluded", "visible",
                                            "occluded", "occluded", "visible"]
    notes = kx.prior_map_notes(prior)
    assert notes[1][0][0] == "n=30 f=7" and notes[0][2][1] == "n=301 f=10"
    assert len(notes) == 2 and all(len(rows) == 3 and all(len(r) == 3 for r in rows) for rows in notes)


def test_pooled_summary_sums_every_count_and_refiner_activity_reads_it():
    pooled = kx.pooled_summary([_summary(10, 5, 1), _summary(30, 25, 2)])
    assert pooled == RefineSummary(instances=40, with_axis=30, too_few_pairs=0, pairs_refined=2, points_moved=4,
                                   points_filled=3, points_ignored=0)
    assert pooled.with_axis_fraction == pytest.approx(0.75)
    assert kx.refiner_activity([_summary(10, 5, 1), _summary(30, 25, 2)])["with an axis (n/N)"] == "30/40 (75 %)"
    with pytest.raises(ValueError, match="pooled_summary needs one or more summaries"):
        kx.pooled_summary([])


def test_point_changes_splits_by_visibility_with_means_and_intervals():
    before = torch.zeros(4, 24)
    after = torch.zeros(4, 24)
    after[:, 0] = torch.tensor([0.1, 0.2, 0.3, -0.4])  # point 0: three visible garments and one occluded
    vis = torch.full((4, 24), VISIBLE)
    vis[3, 0] = OCCLUDED
    after[:, 1] = float("nan")  # point 1 never labelled
    out = kx.point_changes(before, after, vis, "fashionai")
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
        kx.point_changes(before, after, vis[:, :17], "fashionai")


def test_training_extents_follow_the_scale_and_crop_augmentation(runs):
    from fashion_lib.keypoints import keypoint_extent

    on, off = tiny(train_steps=40), tiny(train_steps=40, scale_crop=False)
    plain, augmented = kx.training_extents(off, 0, 12), kx.training_extents(on, 0, 12)
    assert plain.shape == augmented.shape == (12,)  # one garment per image
    data = kx.training_set(on, seed=0, steps=40)
    image, target = data[5]
    assert augmented[5].item() == pytest.approx(keypoint_extent(target["keypoints"], 64, 64).item())
    assert image.shape[-2:] == (64, 64) and not torch.allclose(plain, augmented, equal_nan=True)
    with pytest.raises(ValueError, match="items must be >= 1, got 0"):
        kx.training_extents(on, 0, 0)


def test_refiner_activity_sums_seeds_with_their_denominators():
    a = RefineSummary(instances=100, with_axis=40, too_few_pairs=3, pairs_refined=120, points_moved=200,
                      points_filled=10, points_ignored=0)
    b = dataclasses.replace(a, instances=50, with_axis=10, pairs_refined=30, points_filled=5)
    row = kx.refiner_activity([a, b])
    assert row == {"seeds": 2, "instances, all seeds (N)": 150, "with an axis (n/N)": "50/150 (33 %)",
                   "pairs moved by the EMA": "150 (1.00 per instance)", "points filled": "15 (0.10 per instance)"}
    with pytest.raises(ValueError, match="one summary per seed, got none"):
        kx.refiner_activity([])


def test_second_scale_sentence_judges_the_crop_against_the_bar():
    from fashion_lib.metrics import CI

    inside = kx.second_scale_sentence(CI(0.005, -0.01, 0.015), unit="NE points", scale=100, bar=2.0)
    assert inside.startswith("The detector on its crop alone (mapped back to the image; an instance whose crop held "
                             "no matching detection keeps its first scale) against the detector on the whole image: "
                             "+0.50 [-1.00, +1.50] NE points.")
    assert inside.endswith("The whole interval lies within the study's ±2-point bar: the crop is read as well.")
    worse = kx.second_scale_sentence(CI(0.01, -0.01, 0.03), unit="NE", scale=100, bar=2)
    assert worse.endswith("on the side where the crop reads worse: the data cannot rule out a crop the detector "
                          "reads worse.")
    # NE: lower is better, so an interval crossing the bar below zero crosses it on the better side
    better = kx.second_scale_sentence(CI(-0.0092, -0.0289, 0.0106), unit="NE", scale=100, bar=2)
    assert better.endswith("on the side where the crop reads better, so a crop read worse by more than the bar is "
                           "ruled out.")
    ap = kx.second_scale_sentence(CI(-0.01, -0.03, 0.01), unit="AP", scale=100, bar=2, better="higher")
    assert ap.endswith("the data cannot rule out a crop the detector reads worse.")  # AP: lower reads worse
    assert "Outside the study's ±2-point bar" in kx.second_scale_sentence(CI(0.05, 0.03, 0.07), unit="NE",
                                                                         scale=100, bar=2)
    assert kx.second_scale_sentence(CI(0.01, -0.01, 0.03), unit="AP points", scale=100, digits=1).endswith(
        "+1.0 [-1.0, +3.0] AP points.")
    counted = kx.second_scale_sentence(CI(0.01, -0.01, 0.03), unit="AP points", scale=100, digits=1,
                                       unmatched=344, instances=896)
    assert counted == ("The detector on its crop alone (mapped back to the image; an instance whose crop held no "
                       "matching detection keeps its first scale: 344 of 896, 38 %) against the detector on the whole "
                       "image: +1.0 [-1.0, +3.0] AP points.")
    assert "keeps its first scale: 0 of 0)" in kx.second_scale_sentence(CI(0, 0, 0), unit="NE", unmatched=0,
                                                                        instances=0)
    with pytest.raises(ValueError, match="pass unmatched and instances together"):
        kx.second_scale_sentence(CI(0, 0, 0), unit="NE", unmatched=3)
    with pytest.raises(ValueError, match=r"unmatched must be in \[0, instances=2\], got 3"):
        kx.second_scale_sentence(CI(0, 0, 0), unit="NE", unmatched=3, instances=2)


def test_crop_alone_takes_the_mapped_crop_detection_and_the_first_scale_where_nothing_matched():
    from fashion_lib.refine import NewKeyDetectionResult, _identity_result

    first = torch.rand(3, 24, 3, dtype=torch.float64)
    second = torch.rand(3, 24, 3, dtype=torch.float64)
    matched = torch.tensor([True, False, True])
    res = NewKeyDetectionResult(keypoints=(first + second) / 2, detected=first,
                                first=_identity_result(first, FASHIONAI.num_pairs),
                                second=_identity_result(second, FASHIONAI.num_pairs), boxes=torch.zeros(3, 4),
                                whole_image=torch.zeros(3, dtype=torch.bool), matched=matched,
                                match_score=matched.double())
    alone = kx.crop_alone(res)
    assert torch.equal(alone[matched], second[matched]) and torch.equal(alone[~matched], first[~matched])


def test_rows_for_seeds_trains_the_first_seed_last_and_returns_rows_in_seed_order(monkeypatch):
    # the attribute lane trains seeds[0]'s detector at its start (pipeline.LANES): this lane must reach it last
    calls = []
    monkeypatch.setattr(kx, "train_detectors", lambda setup, seed, progress=True: calls.append(seed) or seed)
    monkeypatch.setattr(kx, "table1_rows", lambda setup, detectors, val, refine, **kw: {"seed": detectors})
    setup = tiny(cpn_steps=0, train_steps=1, calibration_images=0)
    rows = kx.rows_for_seeds(setup, None, RefineConfig.for_schema("fashionai"), [0, 1, 2])
    assert calls[:3] == [2, 1, 0], f"training order {calls}"
    assert [r["seed"] for r in rows] == [0, 1, 2]


def test_detector_bar_sentence_counts_seeds_against_both_bars_and_names_the_short_categories():
    category = [{"all": 0.93, "blouse": 1.0, "dress": 0.8}, {"all": 0.91, "blouse": 0.95, "dress": 0.85}]
    text = kx.detector_bar_sentence([6.0, 8.5], category)
    assert "6.00, 8.50 % (per seed): 1 of 2 seeds within the 8 % bar" in text
    assert "Category right 93.0, 91.0 %: 2 of 2 seeds at or above the 90 % bar" in text
    assert "dress 80 %" in text and "blouse" not in text
    assert "every category" in kx.detector_bar_sentence([5.0], [{"all": 1.0, "skirt": 1.0}])
    with pytest.raises(ValueError, match="one NE and one category accuracy per seed, got 1 and 2"):
        kx.detector_bar_sentence([5.0], category)
