"""The key-point set-up (fashion_lib.experiments.keypoints): data, detector runs, the validation set."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from fashion_lib.experiments import keypoints as kx


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
