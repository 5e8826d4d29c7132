"""Tests of fashion_lib.experiments.attribute_data: bad setups named, data written once and read back, crop key
points cached and closed to the category a task fixes."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from attribute_toys import TINY_DETECTOR, tiny

from fashion_lib.attributes import FASHIONAI_TASKS, Y
from fashion_lib.experiments.attribute_data import (
    AttributeSetup,
    CropKeypoints,
    attribute_data,
    crop_keypoints,
    top_detection_only,
)
from fashion_lib.experiments.keypoints import KeypointSetup
from fashion_lib.keypoints import FASHIONAI

# ------------------------------------------------------------------------------------------------------ the setup


@pytest.mark.parametrize(("overrides", "error", "match"), [
    ({"dataset": "coco"}, ValueError, "dataset must be one of"),
    ({"epochs": 0}, ValueError, "epochs must be an integer >= 1, got 0"),
    ({"val_images": 2.5}, ValueError, "val_images must be an integer >= 1"),
    ({"lr": 0.0}, ValueError, "lr must be a finite number > 0"),
    ({"profile": "tpu"}, ValueError, "profile must be one of"),
    ({"eval_split": "train"}, ValueError, "eval_split must be 'val' or 'test'"),
    ({"detector_seed": -1}, ValueError, "detector_seed must be an integer >= 0"),
    ({"amp": "yes"}, ValueError, "amp must be true or false, got 'yes'"),
    ({"detect_amp": 1}, ValueError, "detect_amp must be true or false, got 1"),
    ({"monitor_per_task": -1}, ValueError, "monitor_per_task must be an integer >= 0, got -1"),
    ({"input_size": 8}, ValueError, "input_size must be 0 \\(the profile's\\) or an integer >= 16, got 8"),
    ({"detector": KeypointSetup(schema="coco")}, ValueError, "detector.schema must be 'fashionai'"),
    ({"data_root": "/no/such/folder"}, FileNotFoundError, "data_root '/no/such/folder' is not a folder"),
])
def test_bad_setup_values_are_named(overrides, error, match):
    with pytest.raises(error, match=match):
        AttributeSetup(**overrides)


def test_top_detection_only_keeps_each_images_top_instance_and_leaves_the_detector_alone():
    from fashion_lib.experiments.keypoints import train_detectors
    from fashion_lib.models.detector import predict, top_instance

    torch.manual_seed(0)
    detector = train_detectors(TINY_DETECTOR, 0, progress=False).keypoint_rcnn
    detector.roi_heads.score_thresh = 0.0  # an untrained detector: keep every box, so images have several
    top = top_detection_only(detector)
    assert top.roi_heads.detections_per_img == 1 and detector.roi_heads.detections_per_img > 1
    images = [torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(i)) for i in range(4)]
    every, first = predict(detector, images), predict(top, images)
    assert max(len(p["scores"]) for p in every) > 1 and all(len(p["scores"]) <= 1 for p in first)
    a, b = top_instance(every, 24), top_instance(first, 24)
    torch.testing.assert_close(a.keypoints, b.keypoints, equal_nan=True)
    assert a.labels.tolist() == b.labels.tolist()


def test_real_fashionai_labels_without_val_file_hold_validation_rows_out_of_training(tmp_path):
    from fashion_lib.synthetic import WorldConfig, write_fashionai_attributes

    root = tmp_path / "base"
    write_fashionai_attributes(root, 16, 5, WorldConfig(image_size=64), val_fraction=0.25)  # label.csv: 12 rows
    with pytest.warns(UserWarning, match="set keypoint_data_root"):  # real attributes, synthetic crop detector
        setup = tiny(data_root=str(root), train_images=100, val_images=3)
    data = attribute_data(setup)
    train, val = data.train.dataset, data.val.dataset
    assert train.dataset is val.dataset and train.dataset.csv.name == "label.csv"
    assert len(val) == 3 and len(train) == 12 - 3 and not set(train.indices) & set(val.indices)
    assert data.train.key != data.val.key
    # a separate validation file is read whole, with no rows held out
    separate = attribute_data(dataclasses.replace(setup, val_file="Annotations/val.csv"))
    assert len(separate.train) == 12 and separate.val.dataset.dataset.csv.name == "val.csv"


def test_the_world_takes_the_detectors_image_size():
    assert tiny().world.image_size == 64
    assert AttributeSetup().world.image_size == KeypointSetup().image_size
    assert tiny(epochs=3, batch_size=4).steps(10) == 3 * 3  # ceil(10 / 4) steps per pass


# ------------------------------------------------------------------------------------------ data and crop points


@pytest.mark.slow
def test_data_is_written_once_read_back_and_crop_points_are_cached(runs, monkeypatch):
    setup = tiny()
    data = attribute_data(setup)
    assert (len(data.train), len(data.val)) == (16, 8)
    # the writer cycles through the 8 tasks: 2 training and 1 validation image each
    assert sorted(data.train.tasks) == sorted(list(FASHIONAI_TASKS) * 2)
    assert sorted(data.val.tasks) == sorted(FASHIONAI_TASKS)
    image, target = data.val.dataset[0]
    assert image.shape == (3, 64, 64) and target["task"] == data.val.tasks[0]
    assert target["labels"].shape == (len(FASHIONAI_TASKS[target["task"]]),)
    assert int((target["labels"] == Y).sum()) == 1

    def no_writing(*args, **kwargs):
        raise AssertionError("the data set was written a second time")

    monkeypatch.setattr("fashion_lib.experiments.attribute_data.write_fashionai_attributes", no_writing)
    again = attribute_data(setup)
    assert again.train.key == data.train.key and again.val.tasks == data.val.tasks

    crops = crop_keypoints(setup, data)
    assert crops["train"].plain.shape == (16, 24, 3) and crops["val"].nkd.shape == (8, 24, 3)
    for kps in (crops["train"], crops["val"]):  # no crop closes a point the detected category does not have
        for i, category in enumerate(kps.categories):
            allowed = FASHIONAI.category_mask(category) if category else torch.zeros(24, dtype=torch.bool)
            assert (kps.points("plain")[i, ~allowed, 2] == 0).all() and (kps.points("nkd")[i, ~allowed, 2] == 0).all()
        assert kps.detected.tolist() == [bool(c) for c in kps.categories]

    def no_detecting(*args, **kwargs):
        raise AssertionError("the detector ran a second time")

    monkeypatch.setattr("fashion_lib.experiments.attribute_data.predict", no_detecting)
    cached = crop_keypoints(setup, data)
    torch.testing.assert_close(cached["train"].nkd, crops["train"].nkd, equal_nan=True)
    assert cached["val"].source == crops["val"].source != ""


def test_crops_take_the_category_a_task_fixes_and_count_disagreements():
    points = torch.rand(4, 24, 3) + 0.5  # every confidence > 0
    crops = CropKeypoints(points, points.clone(), torch.tensor([True, True, True, False]),
                             ("blouse", "dress", "outwear", ""), "src")
    tasks = ("lapel_design_labels", "neckline_design_labels", "sleeve_length_labels", "pant_length_labels")
    categories, disagree = crops.task_categories(tasks)
    # lapel fixes outwear (the detector said blouse: disagrees); neckline allows blouse or dress, sleeve three
    # categories: the detected ones stay; nothing detected stays nothing
    assert categories == ("outwear", "dress", "outwear", "")
    assert disagree.tolist() == [True, False, False, False]
    closed = crops.points("plain", categories)[..., 2] > 0
    assert closed[0].tolist() == FASHIONAI.category_mask("outwear").tolist()
    assert crops.points("nkd")[0, :, 2].gt(0).tolist() == FASHIONAI.category_mask("blouse").tolist()
    assert not closed[3].any()  # nothing detected: the crop falls back to the image
    everything = dataclasses.replace(crops, category_points=False)
    torch.testing.assert_close(everything.points("plain", categories), points)
    with pytest.raises(ValueError, match="one task per image"):
        crops.task_categories(tasks[:2])
    with pytest.raises(ValueError, match="are not FashionAI tasks"):
        crops.task_categories(("hat_labels",) * 4)
    with pytest.raises(ValueError, match="one category per image"):
        crops.points("plain", ("blouse",))
