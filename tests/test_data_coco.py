"""COCO person-keypoints loader: the real excerpt, a round trip through the synthetic writer, malformed JSON."""

from __future__ import annotations

import copy
import json
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO as CocoApi

from fashion_lib.data.coco import CocoKeypoints, parse_coco_keypoints
from fashion_lib.synthetic import WorldConfig, item_generator, render_people, write_coco_people
from fashion_lib.synthetic import writers as writers_module

REAL = Path(__file__).resolve().parents[2] / "shared" / "real-samples" / "coco"
REAL_JSON = REAL / "test_coco.json"
needs_real = pytest.mark.skipif(not REAL_JSON.is_file(), reason="real excerpts not found beside the repository")
FAST = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SMALL = WorldConfig(image_size=96, crowd_rate=0.5, people=(1, 3))
# the 1-based skeleton as printed in data-formats.md D.1
SKELETON = [[16, 14], [14, 12], [17, 15], [15, 13], [12, 13], [6, 12], [7, 13], [6, 7], [6, 8], [7, 9], [8, 10],
            [9, 11], [2, 3], [1, 2], [1, 3], [2, 4], [3, 5], [4, 6], [5, 7]]


# ------------------------------------------------------------------------------------------------------------------
# The real excerpt (4 val2017 images, 14 annotations)
# ------------------------------------------------------------------------------------------------------------------


@needs_real
def test_real_excerpt_values():
    ds = CocoKeypoints(REAL_JSON, REAL)
    assert len(ds) == 4
    assert ds.quirks == {"num_keypoints_mismatch": 0, "out_of_bounds_points": 0, "duplicate_annotations": 0}
    assert [im["id"] for im in ds.images] == [785, 40083, 196141, 197388]
    image, target = ds[1]  # 000000040083.jpg, 500 x 333, three annotations
    assert image.shape == (3, 333, 500) and target["image_id"] == 40083
    assert target["annotation_ids"].tolist() == [198196, 230195, 1202706]
    # annotation 198196: bbox [38.08, 110.95, 174.71, 174.71], nose (99, 144, 2), left_ear absent, area 11025.219
    assert torch.allclose(target["boxes"][0], torch.tensor([38.08, 110.95, 38.08 + 174.71, 110.95 + 174.71]))
    assert target["keypoints"][0, 0].tolist() == [99.0, 144.0, 2.0]
    assert target["keypoints"][0, 3].tolist() == [0.0, 0.0, 0.0]
    assert target["keypoints"][0, 11].tolist() == [57.0, 246.0, 1.0]  # left_hip, labelled but occluded
    assert target["area"][0].item() == pytest.approx(11025.219)
    assert target["keypoints"][2].abs().sum() == 0  # annotation 1202706 has num_keypoints 0
    assert target["iscrowd"].tolist() == [0, 0, 0] and target["labels"].tolist() == [1, 1, 1]


@needs_real
def test_real_num_keypoints_counts_labelled_points():
    data = json.loads(REAL_JSON.read_text())
    _, per_image, _, _ = parse_coco_keypoints(REAL_JSON)
    counts = {a["id"]: a["num_keypoints"] for a in data["annotations"]}
    for t in per_image.values():
        for ann_id, kp in zip(t["ids"].tolist(), t["keypoints"], strict=True):
            assert int((kp[:, 2] > 0).sum()) == counts[ann_id]


# ------------------------------------------------------------------------------------------------------------------
# Round trip through the synthetic writer
# ------------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    return write_coco_people(tmp_path_factory.mktemp("coco") / "set", 12, seed=4, config=SMALL, val_fraction=0.25)


@pytest.mark.parametrize("split", ["train", "val"])
def test_round_trip_equals_the_renderer(written, split):
    ds = CocoKeypoints(written / "annotations" / f"person_keypoints_{split}2017.json", written / f"{split}2017")
    assert len(ds) == {"train": 9, "val": 3}[split]
    assert ds.quirks == {"num_keypoints_mismatch": 0, "out_of_bounds_points": 0, "duplicate_annotations": 0}
    for i in range(len(ds)):
        image, target = ds[i]
        true_image, truth = render_people(SMALL, item_generator(4, split, i))
        assert ds.images[i]["file_name"] == f"{target['image_id']:012d}.jpg"
        assert (image - torch.from_numpy(true_image).permute(2, 0, 1) / 255.0).abs().mean() < 0.05
        assert target["iscrowd"].tolist() == truth["iscrowd"].tolist()
        kp, true_kp = target["keypoints"], torch.from_numpy(truth["keypoints"])
        assert torch.equal(kp[..., 2], true_kp[..., 2])
        assert (kp[..., :2] - true_kp[..., :2]).abs().max() <= 0.5
        assert torch.allclose(target["boxes"], torch.from_numpy(truth["boxes"]), atol=0.01)
        assert torch.allclose(target["area"], torch.from_numpy(truth["area"]))


def test_written_json_follows_the_format_and_pycocotools_reads_it(written):
    path = written / "annotations" / "person_keypoints_train2017.json"
    data = json.loads(path.read_text())
    assert list(data) == ["info", "licenses", "images", "annotations", "categories"]
    (category,) = data["categories"]
    assert category["id"] == 1 and category["name"] == "person" and category["skeleton"] == SKELETON
    assert category["keypoints"][:3] == ["nose", "left_eye", "right_eye"] and len(category["keypoints"]) == 17
    for im in data["images"]:
        assert set(im) == {"id", "width", "height", "file_name", "license", "flickr_url", "coco_url", "date_captured"}
        assert im["file_name"] == f"{im['id']:012d}.jpg" and len(im["file_name"]) == 16
    api = CocoApi(str(path))
    crowds = 0
    for ann in data["annotations"]:
        v = ann["keypoints"][2::3]
        assert len(ann["keypoints"]) == 51 and ann["num_keypoints"] == sum(x > 0 for x in v)
        assert all(isinstance(x, int) for x in ann["keypoints"])
        assert all(ann["keypoints"][3 * j] == ann["keypoints"][3 * j + 1] == 0 for j in range(17) if v[j] == 0)
        mask = api.annToMask(ann)
        if ann["iscrowd"]:
            crowds += 1
            assert isinstance(ann["segmentation"]["counts"], list) and ann["num_keypoints"] == 0
            assert int(mask.sum()) == ann["area"]  # the RLE is the crowd region, its area COCO's
            ys, xs = np.nonzero(mask)
            assert ann["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
        else:
            assert isinstance(ann["segmentation"], list) and len(ann["segmentation"][0]) >= 6
            assert mask.sum() >= 0.5 * ann["area"]  # the hull covers most of the silhouette
    assert crowds > 0


def test_crowd_rle_matches_the_rendered_mask():
    config = WorldConfig(image_size=64, crowd_rate=1.0)
    with tempfile.TemporaryDirectory() as tmp:
        root = write_coco_people(Path(tmp) / "c", 3, seed=1, config=config, val_fraction=0.0)
        data = json.loads((root / "annotations" / "person_keypoints_train2017.json").read_text())
    crowd = [a for a in data["annotations"] if a["iscrowd"]]
    assert len(crowd) == 3
    for i, ann in enumerate(crowd):
        _, truth = render_people(config, item_generator(1, "train", i))
        rle = mask_utils.frPyObjects(ann["segmentation"], 64, 64)
        assert np.array_equal(mask_utils.decode(rle).astype(bool), truth["crowd_mask"])


# ------------------------------------------------------------------------------------------------------------------
# Malformed JSON: the error names the file and the JSON path
# ------------------------------------------------------------------------------------------------------------------

_PERSON = {"id": 7, "image_id": 42, "category_id": 1, "iscrowd": 0, "area": 9120.5, "bbox": [300.0, 100.0, 80.0, 200.0],
           "segmentation": [[300, 100, 380, 100, 380, 300, 300, 300]], "num_keypoints": 3,
           "keypoints": [340, 120, 2] + [0, 0, 0] * 4 + [320, 160, 2, 360, 162, 1] + [0, 0, 0] * 10}
_DATA = {"images": [{"id": 42, "file_name": "000000000042.jpg", "width": 640, "height": 480}],
         "annotations": [_PERSON, {**copy.deepcopy(_PERSON), "id": 8}],
         "categories": [{"id": 1, "name": "person", "supercategory": "person"}]}


def _check(data: dict, match: str, error=ValueError) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "person_keypoints_val2017.json"
        path.write_text(json.dumps(data))
        with pytest.raises(error, match=rf"person_keypoints_val2017.json: {match}"):
            CocoKeypoints(path, tmp)


def test_the_spec_example_reads(tmp_path):
    path = tmp_path / "person_keypoints_val2017.json"
    path.write_text(json.dumps(_DATA))
    images, per_image, quirks, _ = parse_coco_keypoints(path)
    assert images[0]["id"] == 42
    assert quirks == {"num_keypoints_mismatch": 0, "out_of_bounds_points": 0, "duplicate_annotations": 0}
    assert per_image[42]["keypoints"][0, 6].tolist() == [360.0, 162.0, 1.0]
    assert per_image[42]["boxes"][0].tolist() == [300.0, 100.0, 380.0, 300.0]


@FAST
@given(st.integers(0, 1), st.integers(0, 16), st.sampled_from([3, -1, 7, 1.5, "2", None]))
def test_visibility_outside_the_format(a, j, v):
    data = copy.deepcopy(_DATA)
    data["annotations"][a]["keypoints"][3 * j + 2] = v
    where = rf"annotations\[{a}\]\.keypoints\[{3 * j + 2}\]"
    _check(data, where + (": visibility" if isinstance(v, int | float) else ": .* is not a finite number"))


@FAST
@given(st.integers(0, 1), st.integers(-50, 10).filter(lambda d: d != 0))
def test_keypoint_list_of_the_wrong_length(a, delta):
    data = copy.deepcopy(_DATA)
    kps = data["annotations"][a]["keypoints"]
    data["annotations"][a]["keypoints"] = kps[: 51 + delta] if delta < 0 else kps + [0] * delta
    _check(data, rf"annotations\[{a}\]\.keypoints: {51 + delta} values, expected 51")


@FAST
@given(st.integers(0, 1), st.sampled_from(["image_id", "category_id", "keypoints", "bbox", "iscrowd", "area"]))
def test_missing_annotation_key(a, key):
    data = copy.deepcopy(_DATA)
    del data["annotations"][a][key]
    _check(data, rf"annotations\[{a}\]: missing key '{key}'")


def test_other_malformed_annotations():
    data = copy.deepcopy(_DATA)
    data["annotations"][1]["image_id"] = 43
    _check(data, r"annotations\[1\]\.image_id: 43 is not the id of any entry of images")
    data = copy.deepcopy(_DATA)
    data["annotations"][0]["keypoints"][3:5] = [5, 6]  # left_eye: v = 0 with coordinates
    _check(data, r"annotations\[0\]\.keypoints\[3\]: 'left_eye' has v = 0 but coordinates")
    data = copy.deepcopy(_DATA)
    data["annotations"][0]["category_id"] = 2
    _check(data, r"annotations\[0\]\.category_id: 2, expected 1")


@pytest.mark.parametrize("field, index, value, match", [
    ("keypoints", 0, float("nan"), r"annotations\[1\]\.keypoints\[0\]: nan is not a finite number"),
    ("keypoints", 19, float("inf"), r"annotations\[1\]\.keypoints\[19\]: inf is not a finite number"),
    ("bbox", 2, float("nan"), r"annotations\[1\]\.bbox: \[300.0, 100.0, nan, 200.0\], expected .* finite numbers"),
    ("area", None, float("nan"), r"annotations\[1\]\.area: expected a finite number, got nan"),
    ("area", None, -5.0, r"annotations\[1\]\.area: -5.0, expected a finite number >= 0"),
])
def test_non_finite_coordinates_boxes_and_areas_are_refused_by_json_path(field, index, value, match):
    data = copy.deepcopy(_DATA)  # Python's json reads the non-standard NaN and Infinity literals
    if index is None:
        data["annotations"][1][field] = value
    else:
        data["annotations"][1][field][index] = value
    _check(data, match)


def test_duplicate_annotation_ids_an_exact_repeat_is_read_once_a_conflict_is_an_error(tmp_path):
    data = copy.deepcopy(_DATA)
    data["annotations"].append(copy.deepcopy(data["annotations"][0]))  # id 7 again, identical
    path = tmp_path / "person_keypoints_val2017.json"
    path.write_text(json.dumps(data))
    images, per_image, quirks, first = parse_coco_keypoints(path)
    assert per_image[42]["ids"].tolist() == [7, 8] and quirks["duplicate_annotations"] == 1
    assert first["duplicate_annotations"] == "annotations[2].id"
    data["annotations"][2]["bbox"] = [301.0, 100.0, 80.0, 200.0]
    _check(data, r"annotations\[2\]\.id: 7 is already the id of annotations\[0\], which differs from this one")


def test_bad_categories_no_images_and_undecodable_bytes_are_named(tmp_path):
    data = copy.deepcopy(_DATA)
    data["categories"][0]["keypoints"] = 17
    _check(data, r"categories\[0\]\.keypoints = 17, expected \('nose'")  # was a bare TypeError
    _check({**copy.deepcopy(_DATA), "images": [], "annotations": []}, "images is empty; a ground-truth file needs")
    path = tmp_path / "person_keypoints_val2017.json"
    text = json.dumps(_DATA).encode()
    at = text.index(b"000000000042")
    path.write_bytes(text[:at] + b"\xc3\x28" + text[at + 2:])  # an invalid two-byte UTF-8 sequence
    with pytest.raises(ValueError, match=rf"val2017.json: byte {at} \(line 1\): c3 is not valid UTF-8"):
        parse_coco_keypoints(path)


def test_an_image_that_does_not_decode_is_named_with_its_entry(tmp_path):
    path = tmp_path / "person_keypoints_val2017.json"
    path.write_text(json.dumps(_DATA))
    (tmp_path / "000000000042.jpg").write_bytes(b"GIF89a truncated")
    with pytest.raises(ValueError, match=r"images\[0\]\.file_name: image file .*042.jpg' is not an image PIL can"):
        CocoKeypoints(path, tmp_path)


def test_missing_image_names_the_entry():
    _check(_DATA, r"images\[0\]\.file_name: image file .*000000000042.jpg' not found", FileNotFoundError)


def test_out_of_bounds_and_num_keypoints_quirks_are_counted_with_their_path(tmp_path):
    data = copy.deepcopy(_DATA)
    data["annotations"][1]["keypoints"][15:17] = [700, 160]  # left_shoulder of the second person, x > width 640
    data["annotations"][1]["num_keypoints"] = 2
    path = tmp_path / "person_keypoints_val2017.json"
    path.write_text(json.dumps(data))
    Image.new("RGB", (640, 480)).save(tmp_path / "000000000042.jpg")
    with pytest.warns(UserWarning) as record:
        ds = CocoKeypoints(path, tmp_path)
    assert ds.quirks == {"num_keypoints_mismatch": 1, "out_of_bounds_points": 1, "duplicate_annotations": 0}
    messages = " | ".join(str(w.message) for w in record)
    assert r"1 labelled key points outside their image (first at annotations[1].keypoints[15])" in messages
    assert "(first at annotations[1].num_keypoints)" in messages


@FAST
@given(st.integers(1, 9), st.integers(1, 9), st.integers(0, 2**31 - 1))
def test_crowd_rle_encoding_decodes_to_the_mask(h, w, seed):
    mask = np.random.default_rng(seed).random((h, w)) < 0.5
    rle = {"counts": writers_module._rle_counts(mask), "size": [h, w]}
    decoded = mask_utils.decode(mask_utils.frPyObjects(rle, h, w)).astype(bool)
    assert np.array_equal(decoded, mask) and sum(rle["counts"]) == h * w
