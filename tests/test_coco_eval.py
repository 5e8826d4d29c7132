"""COCO key-point evaluation (fashion_lib.coco_eval): bad ground truth is named before pycocotools sees it.

The AP values themselves are tested in tests/test_metrics.py (fashion_lib.metrics re-exports this module).
"""

from __future__ import annotations

import pytest

from fashion_lib.coco_eval import coco_keypoint_ap


def _gt() -> dict:
    """One image, two people with 17 COCO key points each."""
    kps = [float(v) for j in range(17) for v in (100 + 5 * j, 50 + 8 * j, 2)]
    anns = [{"id": i + 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "num_keypoints": 17, "keypoints": list(kps),
             "area": 150.0 * 150.0, "bbox": [90.0, 40.0, 150.0, 150.0]} for i in range(2)]
    return {"images": [{"id": 1, "width": 300, "height": 300}], "annotations": anns,
            "categories": [{"id": 1, "name": "person"}]}


def _results(gt: dict) -> list[dict]:
    return [{"image_id": 1, "category_id": 1, "keypoints": list(a["keypoints"]), "score": 0.9}
            for a in gt["annotations"]]


def test_ground_truth_key_points_of_the_wrong_length_are_named_before_pycocotools():
    gt = _gt()
    assert coco_keypoint_ap(gt, _results(gt)).AP == 1.0
    results = _results(gt)
    gt["annotations"][1]["keypoints"] = gt["annotations"][1]["keypoints"][:48]  # 16 points: used to fail inside numpy
    with pytest.raises(ValueError, match=r"gt: annotations\[1\] \(id 2\)\.keypoints: 48 values, expected 3 \* K = 51"):
        coco_keypoint_ap(gt, results)
    with pytest.raises(ValueError, match=r"annotations\[1\] \(id 2\)\.keypoints: 48 values, expected 3 \* K = 51"):
        coco_keypoint_ap(gt, [], sigmas=[0.05] * 17)
    gt = _gt()
    gt["annotations"][0]["keypoints"][4] = float("nan")
    with pytest.raises(ValueError, match=r"annotations\[0\] \(id 1\)\.keypoints\[4\]: nan is not a finite number"):
        coco_keypoint_ap(gt, _results(_gt()))


def test_a_ground_truth_path_that_is_not_json_is_named(tmp_path):
    path = tmp_path / "person_keypoints_val2017.json"
    path.write_text('{"images": [],\n "annotations": [,]}')
    with pytest.raises(ValueError, match=r"person_keypoints_val2017.json: line 2: not valid JSON"):
        coco_keypoint_ap(path, [])
    path.write_bytes(b'{"images": "\xe9"}')
    with pytest.raises(ValueError, match=r"person_keypoints_val2017.json: byte 12 \(line 1\): e9 is not valid UTF-8"):
        coco_keypoint_ap(path, [])
    path.write_text("[1, 2]")
    with pytest.raises(ValueError, match=r"val2017.json: ground truth must be a JSON object .*, got a list"):
        coco_keypoint_ap(path, [])

