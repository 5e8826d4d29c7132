"""Tests of fashion_lib.models.detector: the shared inference interface of both detectors."""

from __future__ import annotations

import math

import pytest
import torch

from fashion_lib.models.cpn import CPNConfig, build_cpn
from fashion_lib.models.detector import (
    TopDownDetector,
    all_instances,
    as_detect_fn,
    keypoint_rcnn_outputs,
    predict,
    top_instance,
)
from fashion_lib.models.keypoint_rcnn import KeypointRCNNConfig, build_keypoint_rcnn
from fashion_lib.synthetic import SyntheticGarments, WorldConfig


def _pred(scores, k=3, offset=0.0):
    n = len(scores)
    kp = torch.arange(n * k * 3, dtype=torch.float32).reshape(n, k, 3) + offset
    return {"boxes": torch.arange(n * 4, dtype=torch.float32).reshape(n, 4) + offset,
            "scores": torch.tensor(scores, dtype=torch.float32), "labels": torch.ones(n, dtype=torch.long),
            "keypoints": kp}


@pytest.fixture(scope="module")
def garments():
    ds = SyntheticGarments(WorldConfig(), 3, seed=11, split="val")
    return [ds[i][0] for i in range(3)]


def test_top_instance_picks_the_highest_score_and_marks_empty_images():
    preds = [_pred([0.2, 0.9, 0.5]), _pred([]), _pred([0.7], offset=100.0), _pred([0.4, 0.4])]
    top = top_instance(preds, 3)
    assert top.keypoints.shape == (4, 3, 3) and top.scores.shape == (4,) and top.boxes.shape == (4, 4)
    assert top.scores.tolist() == pytest.approx([0.9, 0.0, 0.7, 0.4])
    assert torch.equal(top.keypoints[0], preds[0]["keypoints"][1])
    assert torch.equal(top.boxes[0], preds[0]["boxes"][1])
    assert torch.equal(top.keypoints[2], preds[2]["keypoints"][0])
    assert torch.equal(top.keypoints[3], preds[3]["keypoints"][0])  # a tie goes to the first
    assert bool(top.keypoints[1, :, :2].isnan().all()) and bool((top.keypoints[1, :, 2] == 0).all())
    assert bool(top.boxes[1].isnan().all())


def test_top_instance_keeps_the_label_of_the_detection_it_picks():
    preds = [_pred([0.2, 0.9, 0.5]), _pred([]), _pred([0.4, 0.4])]
    preds[0]["labels"] = torch.tensor([1, 4, 2])
    preds[2]["labels"] = torch.tensor([3, 5])
    assert top_instance(preds, 3).labels.tolist() == [4, 0, 3]  # the best box's class; none: 0; a tie: the first


def test_all_instances_ranks_and_pads_every_image():
    preds = [_pred([0.2, 0.9, 0.5]), _pred([]), _pred([0.7], offset=100.0), _pred([0.4, 0.4])]
    every = all_instances(preds, 3)
    assert every.shape == (4, 3, 3, 3)
    torch.testing.assert_close(every[:, 0], top_instance(preds, 3).keypoints, equal_nan=True)
    assert torch.equal(every[0], preds[0]["keypoints"][[1, 2, 0]])  # best first
    assert torch.equal(every[3, :2], preds[3]["keypoints"])  # ties keep the detector's order
    assert bool(every[1, :, :, :2].isnan().all()) and bool((every[2, 1:, :, 2] == 0).all())  # padding: missing
    assert all_instances([_pred([]), _pred([])], 3).shape == (2, 1, 3, 3)


def test_top_instance_without_any_detection():
    top = top_instance([_pred([]), _pred([])], 3)
    assert bool(top.keypoints[..., :2].isnan().all()) and top.scores.tolist() == [0.0, 0.0]


def test_top_instance_checks_the_number_of_keypoints():
    with pytest.raises(ValueError, match=r"predictions\[0\]\['keypoints'\] has shape \(1, 3, 3\), expected"):
        top_instance([_pred([0.5])], 17)


def test_keypoint_rcnn_scores_become_probabilities():
    det = {"boxes": torch.zeros(2, 4), "scores": torch.tensor([0.9, 0.1]), "labels": torch.tensor([1, 1]),
           "keypoints": torch.ones(2, 2, 3),
           "keypoints_scores": torch.tensor([[0.0, math.log(0.25)], [-50.0, 1e-3]])}  # 1e-3: bicubic overshoot
    out = keypoint_rcnn_outputs([det])[0]
    expected = torch.tensor([[1.0, 0.25], [math.exp(-50.0), 1.0]])
    assert torch.allclose(out["keypoints"][..., 2], expected, rtol=1e-6, atol=0)
    assert set(out) == {"boxes", "scores", "labels", "keypoints"}


def test_predict_keypoint_rcnn_format_and_batching(garments):
    torch.manual_seed(0)
    model = build_keypoint_rcnn(KeypointRCNNConfig.cpu("fashionai")).train()
    one = predict(model, garments, batch_size=1)
    assert model.training  # the mode is restored
    three = predict(model, garments, batch_size=3)
    for a, b in zip(one, three, strict=True):
        n = len(a["scores"])
        assert a["keypoints"].shape == (n, 24, 3) and a["boxes"].shape == (n, 4) and a["labels"].dtype == torch.long
        conf = a["keypoints"][..., 2]
        assert bool(((conf >= 0) & (conf <= 1)).all())
        assert torch.allclose(a["keypoints"], b["keypoints"], atol=1e-3)  # batching does not change results


def test_predict_refuses_torchvisions_raw_predictor():
    from torchvision.models.detection.keypoint_rcnn import KeypointRCNNPredictor

    model = build_keypoint_rcnn(KeypointRCNNConfig.cpu("coco"))
    model.roi_heads.keypoint_predictor = KeypointRCNNPredictor(128, 17)
    with pytest.raises(ValueError, match="needs a Keypoint R-CNN from build_keypoint_rcnn"):
        predict(model, [torch.rand(3, 64, 64)])


def test_top_down_detector_uses_the_detectors_boxes(garments):
    torch.manual_seed(0)
    detector = build_keypoint_rcnn(KeypointRCNNConfig.cpu("fashionai"))
    cpn = build_cpn(CPNConfig.cpu("fashionai", channels=32, refine_channels=16))
    boxes = predict(detector, garments)
    out = predict(TopDownDetector(detector, cpn, max_instances=2), garments)
    for b, o in zip(boxes, out, strict=True):
        n = min(2, len(b["scores"]))
        assert o["keypoints"].shape == (n, 24, 3)
        assert torch.equal(o["boxes"], b["boxes"][:n]) and torch.equal(o["scores"], b["scores"][:n])
        assert torch.equal(o["labels"], b["labels"][:n])
        conf = o["keypoints"][..., 2]
        assert bool(((conf >= 0) & (conf <= 1)).all())
    # a bare CPN runs on given boxes
    given = predict(cpn, garments, boxes=[torch.tensor([[10.0, 10.0, 90.0, 110.0]])] * 3)
    assert [g["keypoints"].shape for g in given] == [(1, 24, 3)] * 3
    with pytest.raises(ValueError, match="predict with a CPN needs boxes"):
        predict(cpn, garments)


def test_detect_fn_gives_the_top_instance_of_crops_of_any_size():
    torch.manual_seed(0)
    model = build_keypoint_rcnn(KeypointRCNNConfig.cpu("coco"))
    detect = as_detect_fn(model, 17, batch_size=2)
    crops = [torch.rand(3, 96, 96), torch.rand(3, 128, 128), torch.rand(3, 80, 80)]
    keypoints = detect(crops)
    assert keypoints.shape == (3, 17, 3)
    expected = top_instance(predict(model, crops), 17).keypoints
    assert torch.allclose(keypoints, expected, equal_nan=True)
    with pytest.raises(ValueError, match="a bare CPN needs boxes"):
        as_detect_fn(build_cpn(CPNConfig.cpu("coco", channels=32, refine_channels=16)), 17)
