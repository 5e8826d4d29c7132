"""The key-point experiments (fashion_lib.experiments.keypoints): what the notebooks rely on."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from fashion_lib.experiments import keypoints as kx
from fashion_lib.keypoints import FASHIONAI, OCCLUDED, VISIBLE
from fashion_lib.refine import RefineConfig, refine_symmetric


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
    written = sorted((runs / "data").iterdir())
    assert len(written) == 1 and (written[0] / "Annotations" / "val.csv").is_file()
    stamp = (written[0] / "Annotations" / "val.csv").stat().st_mtime_ns
    again = kx.validation_set(setup)
    assert (written[0] / "Annotations" / "val.csv").stat().st_mtime_ns == stamp, "the set was written again"
    assert torch.equal(again.keypoints, val.keypoints) and again.categories == val.categories
    # another world for validation only: another set, another cache key
    other = kx.validation_set(tiny(val_world=dataclasses.replace(setup.world, occlusion_rate=0.5)))
    assert other.key != val.key and len(list((runs / "data").iterdir())) == 2


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
    # cached: a second call reads the file instead of running the detector again
    cache = list(detectors.run_dir.glob("rows-*.pt"))
    assert len(cache) == 1
    stamp = cache[0].stat().st_mtime_ns
    kx.table1_rows(setup, detectors, val, refine, seed=3)
    assert cache[0].stat().st_mtime_ns == stamp
    with pytest.raises(ValueError, match="rows has unknown entries"):
        kx.table1_rows(setup, detectors, val, refine, rows=("Mask R-CNN",))
    # per-seed arrays feed the NE metric; every visible ground-truth point is counted
    (pred, gt, cats), = kx.ne_arrays([rows], val, kx.NKD)
    assert pred.shape == gt.shape and cats == val.categories
    assert math.isfinite(kx.ne_metric()(pred, gt, cats))


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
