"""Scoring Table 1's rows: NE and COCO AP (fashion_lib.experiments.keypoint_scores)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_experiments_keypoints import tiny

from fashion_lib.data.fashionai import CATEGORIES
from fashion_lib.experiments import keypoint_scores as ks
from fashion_lib.experiments import keypoints as kx
from fashion_lib.keypoints import FASHIONAI, OCCLUDED, VISIBLE


def test_category_accuracy_counts_the_top_detections_category_per_garment():
    val = kx.ValidationSet(images=[torch.zeros(3, 8, 8)] * 4, targets=[{"category": c} for c in
                           ("dress", "dress", "skirt", "blouse")], key="toy")
    labels = torch.tensor([CATEGORIES.index(c) + 1 for c in ("dress", "skirt", "skirt")] + [0])  # last: no detection
    inst = kx.Instances(torch.zeros(4, 24, 3), torch.ones(4), torch.arange(4), labels=labels)
    assert ks.category_accuracy(inst, val) == {"all": 0.5, "dress": 0.5, "skirt": 1.0, "blouse": 0.0}
    with pytest.raises(ValueError, match="carry no labels"):
        ks.category_accuracy(kx.Instances(torch.zeros(4, 24, 3), torch.ones(4), torch.arange(4)), val)


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
    assert ks.ne_metric(points="occluded")(pred, gt, ["blouse"]) == pytest.approx(0.2)
    assert ks.ne_metric()(pred, gt, ["blouse"]) == pytest.approx(0.05)  # visible: (0.1 + 0) / 2
    assert ks.ne_metric(points="all")(pred, gt, ["blouse"]) == pytest.approx(0.1)  # (0.1 + 0 + 0.2) / 3
    with pytest.raises(ValueError, match="points must be"):
        ks.ne_metric(points="hidden")


def test_ne_over_seeds_gives_each_metric_s_mean_and_sd_over_the_seeds():
    gt = torch.zeros(1, 24, 3)
    a, b = FASHIONAI.index("armpit_left"), FASHIONAI.index("armpit_right")
    gt[0, a], gt[0, b] = torch.tensor([10.0, 10.0, VISIBLE]), torch.tensor([30.0, 10.0, VISIBLE])  # normaliser 20
    val = kx.ValidationSet(images=[torch.zeros(3, 8, 8)], targets=[{"category": "blouse", "keypoints": gt}],
                           key="toy")
    seeds = []
    for off in (2.0, 6.0):  # seed 0: 2 px off on one of two visible points (NE 0.05), seed 1: 6 px (0.15)
        pred = gt.clone()
        pred[..., 2] = 1.0
        pred[0, a, 0] += off
        seeds.append({kx.NKD: kx.Instances(pred, torch.ones(1), torch.arange(1))})
    out = ks.ne_over_seeds(seeds, val, kx.NKD, {"visible": ks.ne_metric()})
    assert list(out) == ["visible"] and out["visible"] == pytest.approx((10.0, 2 ** 0.5 * 5.0))  # %: mean, sd
    one = ks.ne_over_seeds(seeds[:1], val, kx.NKD, {"visible": ks.ne_metric()}, scale=1.0)["visible"]
    assert one[0] == pytest.approx(0.05) and one[1] != one[1]  # one seed: no spread (NaN)


def test_coco_metric_scores_perfect_results_as_one(runs):
    setup = tiny("coco")
    val = kx.validation_set(setup)
    people = [t["keypoints"][t["iscrowd"] == 0] for t in val.targets]
    kps = torch.cat(people)
    kps[..., 2] = (kps[..., 2] > 0).float()  # confidence 1 where labelled
    index = torch.cat([torch.full((len(p),), j) for j, p in enumerate(people)])
    perfect = kx.Instances(kps, torch.ones(len(kps)), index)
    (per_image, ids), = ks.coco_arrays([{kx.KRCNN: perfect}], val, kx.KRCNN)
    assert isinstance(per_image, np.ndarray) and len(per_image) == len(val.images) == len(ids)
    assert ks.coco_metric(val)(per_image, ids) == pytest.approx(1.0)
    shifted = kx.Instances(kps + torch.tensor([15.0, 15.0, 0.0]), perfect.scores, index)
    (worse, _), = ks.coco_arrays([{kx.KRCNN: shifted}], val, kx.KRCNN)
    assert ks.coco_metric(val)(worse, ids) < 0.5
