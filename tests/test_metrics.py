"""Tests for fashion_lib.metrics: NE, FashionAI attribute accuracy and AP, DeepFashion top-k.

Hand-worked cases for every metric and loop oracles of the reference implementations (data-formats.md A.4, B.4, C.3).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from ne_cases import IDX, NAN
from ne_cases import hand_case as _hand_case
from ne_cases import instance as _instance

from fashion_lib.attributes import M, N, Y
from fashion_lib.keypoints import COCO, FASHIONAI
from fashion_lib.metrics import (
    attribute_accuracy,
    attribute_accuracy_weighted,
    attribute_ap,
    attribute_ap_weighted,
    fashionai_attribute_map,
    keypoint_errors,
    normalized_error,
    topk_accuracy,
    topk_recall,
)

# ------------------------------------------------------------------ NE -----------------------------------------


def test_ne_hand_computed_pooled_and_per_image():
    pred, gt, cats = _hand_case()
    res = normalized_error(pred, gt, cats)
    assert res.ne == pytest.approx((0.5 + 0 + 0.1 + 0.5 + 1.0) / 5)
    assert (res.points, res.excluded, res.missing) == (5, 0, 1)
    assert type(res.ne) is float and type(res.points) is int
    per_image = normalized_error(pred, gt, cats, reduce="image")
    assert per_image.ne == pytest.approx(((0.5 + 0 + 0.1) / 3 + (0.5 + 1.0) / 2) / 2)


def test_ne_count_occluded_and_missing_error_options():
    pred, gt, cats = _hand_case()
    res = normalized_error(pred, gt, cats, count_occluded=True)
    # adds the occluded hemline (0.5) and the two occluded armpits (predicted exactly: 0)
    assert res.ne == pytest.approx((0.5 + 0 + 0.1 + 0.5 + 0.5 + 1.0 + 0 + 0) / 8)
    assert res.points == 8
    half = normalized_error(pred, gt, cats, missing_error=0.5)
    assert half.ne == pytest.approx((0.5 + 0 + 0.1 + 0.5 + 0.5) / 5)


def test_keypoint_errors_marks_uncounted_points_nan():
    pred, gt, cats = _hand_case()
    err = keypoint_errors(pred, gt, cats)
    assert err.shape == (2, 24) and err.dtype == torch.float64
    assert err[0, IDX["waistband_left"]] == pytest.approx(0.5)
    assert err[0, IDX["hemline_left"]] == pytest.approx(0.1)
    assert math.isnan(err[0, IDX["hemline_right"]])  # occluded
    assert err[1, IDX["neckline_right"]] == 1.0  # missing
    assert int((~torch.isnan(err)).sum()) == 5


def test_ne_missing_prediction_from_third_column():
    pred, gt, cats = _hand_case()
    pred3 = torch.cat([pred.nan_to_num(0.0), torch.ones(2, 24, 1)], dim=-1)
    pred3[1, IDX["neckline_right"], 2] = 0  # the model says it did not find the point
    pred3[0, IDX["hemline_left"], 2] = 0
    res = normalized_error(pred3, gt, cats)
    assert res.missing == 2
    assert res.ne == pytest.approx((0.5 + 0 + 1.0 + 0.5 + 1.0) / 5)


def test_ne_excludes_and_counts_degenerate_normalisers():
    pred, gt, cats = _hand_case()
    zero = _instance({"waistband_left": (7, 7, 2), "waistband_right": (7, 7, 2), "crotch": (9, 9, 2)})
    absent = _instance({"armpit_left": (0, 0, 2), "neckline_left": (3, 3, 2)})  # armpit_right absent
    pred = torch.cat([pred, torch.full((2, 24, 2), 100.0)])
    gt = torch.cat([gt, torch.stack([zero, absent])])
    res = normalized_error(pred, gt, cats + ["trousers", "dress"])
    assert res.excluded == 2
    assert res.points == 5
    assert res.ne == pytest.approx(2.1 / 5)
    assert torch.isnan(keypoint_errors(pred, gt, cats + ["trousers", "dress"])[2:]).all()


def test_ne_nothing_counted_is_nan_not_crash():
    gt = _instance({"waistband_left": (0, 0, 2), "waistband_right": (0, 0, 2)})[None]
    res = normalized_error(gt[..., :2], gt, ["skirt"])
    assert math.isnan(res.ne) and res.points == 0 and res.excluded == 1


def test_ne_coco_schema_uses_shoulders():
    gt = torch.zeros(1, 17, 3)
    gt[0, COCO.index("left_shoulder")] = torch.tensor([0.0, 0.0, 2])
    gt[0, COCO.index("right_shoulder")] = torch.tensor([40.0, 0.0, 2])
    gt[0, COCO.index("nose")] = torch.tensor([20.0, -30.0, 2])
    pred = gt[..., :2].clone()
    pred[0, 0] += torch.tensor([0.0, 4.0])
    res = normalized_error(pred, gt, ["person"], schema="coco")
    assert res.ne == pytest.approx(4 / 40 / 3)


def _ne_oracle(pred, gt, cats, count_occluded=False, missing_error=1.0):
    """gathierry/hikapok-style loop: pooled sum over counted points of d / s."""
    total, n = 0.0, 0
    for b in range(len(cats)):
        i, j = FASHIONAI.normalizer[cats[b]]
        if gt[b, i, 2] == 0 or gt[b, j, 2] == 0:
            continue
        s = math.dist(gt[b, i, :2].tolist(), gt[b, j, :2].tolist())
        if s == 0:
            continue
        for k in range(24):
            v = int(gt[b, k, 2])
            if v == 2 or (count_occluded and v == 1):
                p = pred[b, k].tolist()
                e = missing_error if any(math.isnan(c) for c in p) else math.dist(p, gt[b, k, :2].tolist()) / s
                total += e
                n += 1
    return total / n


@pytest.mark.parametrize("count_occluded", [False, True])
def test_ne_matches_loop_oracle_on_random_batch(count_occluded):
    g = torch.Generator().manual_seed(0)
    b = 64
    gt = torch.cat([torch.rand(b, 24, 2, generator=g) * 512, torch.randint(0, 3, (b, 24, 1), generator=g)], -1)
    pred = gt[..., :2] + torch.randn(b, 24, 2, generator=g) * 20
    pred[torch.rand(b, 24, generator=g) < 0.05] = NAN
    cats = [list(FASHIONAI.normalizer)[i] for i in torch.randint(0, 5, (b,), generator=g).tolist()]
    res = normalized_error(pred, gt, cats, count_occluded=count_occluded)
    assert res.ne == pytest.approx(_ne_oracle(pred, gt, cats, count_occluded), rel=1e-12)


def test_ne_accepts_numpy():
    pred, gt, cats = _hand_case()
    assert normalized_error(pred.numpy(), gt.numpy(), np.array(cats)).ne == pytest.approx(0.42)


def test_ne_bad_input_names_argument_and_entry():
    pred, gt, cats = _hand_case()
    with pytest.raises(ValueError, match=r"pred must have shape \(2, 24, 2\)"):
        normalized_error(pred[:, :17], gt, cats)
    with pytest.raises(ValueError, match=r"gt must have shape \(B, 24, 3\)"):
        normalized_error(pred, gt[..., :2], cats)
    with pytest.raises(ValueError, match=r"categories\[1\] = 'hat' is not a fashionai category"):
        normalized_error(pred, gt, ["skirt", "hat"])
    with pytest.raises(ValueError, match="categories has 1 names, expected B = 2"):
        normalized_error(pred, gt, ["skirt"])
    bad = gt.clone()
    bad[1, 3, 2] = -1
    with pytest.raises(ValueError, match=r"gt\[1, 3, 2\] = -1.0: visibility must be 0"):
        normalized_error(pred, bad, cats)
    with pytest.raises(ValueError, match="missing_error must be a finite number >= 0, got -1"):
        normalized_error(pred, gt, cats, missing_error=-1)
    with pytest.raises(ValueError, match="reduce must be 'keypoint' or 'image', got 'mean'"):
        normalized_error(pred, gt, cats, reduce="mean")


# ------------------------------------------------------------------ FashionAI attributes -----------------------


def _probs_codes(rows: list[tuple[list[float], str]]) -> tuple[torch.Tensor, torch.Tensor]:
    codes = {"y": Y, "m": M, "n": N}
    probs = torch.tensor([p for p, _ in rows], dtype=torch.float64)
    labels = torch.tensor([[codes[c] for c in s] for _, s in rows])
    return probs, labels


def test_attribute_accuracy_hand_computed_with_maybe_and_ties():
    probs, labels = _probs_codes([
        ([0.7, 0.2, 0.1], "ynn"),  # correct
        ([0.1, 0.3, 0.6], "nym"),  # top-1 on m: wrong, or left out with ignore_maybe
        ([0.2, 0.2, 0.6], "nmy"),  # correct
        ([0.4, 0.4, 0.2], "nyn"),  # tie: first index wins -> n, wrong
        ([0.5, 0.3, 0.2], "nnn"),  # no y: left out
    ])
    assert attribute_accuracy(probs, labels) == pytest.approx(2 / 4)
    assert attribute_accuracy(probs, labels, ignore_maybe=True) == pytest.approx(2 / 3)
    assert attribute_accuracy(torch.log(probs), labels) == pytest.approx(2 / 4)  # logits give the same top-1


def test_attribute_ap_hand_computed_both_variants():
    probs, labels = _probs_codes([
        ([0.9, 0.1], "yn"),  # p 0.9, correct
        ([0.8, 0.2], "ny"),  # p 0.8, wrong
        ([0.3, 0.7], "ym"),  # p 0.7, m: ignored (but a threshold in wangxin's variant)
        ([0.4, 0.6], "ny"),  # p 0.6, correct
    ])
    # wangxin: thresholds 0.9, 0.8, 0.7, 0.6 -> precisions 1, 1/2, 1/2, 2/3
    assert attribute_ap(probs, labels) == pytest.approx((1 + 0.5 + 0.5 + 2 / 3) / 4)
    # antgo: y/n samples only, running precision 1, 1/2, 2/3
    assert attribute_ap(probs, labels, variant="antgo") == pytest.approx((1 + 0.5 + 2 / 3) / 3)


def test_attribute_ap_ties_and_maybe_only_threshold():
    probs, labels = _probs_codes([([0.9, 0.1], "yn"), ([0.8, 0.2], "ny"), ([0.8, 0.2], "yn")])
    # wangxin: t = 0.9 -> 1; t = 0.8 (twice) -> both tied samples pass: 2/3
    assert attribute_ap(probs, labels) == pytest.approx((1 + 2 / 3 + 2 / 3) / 3)
    # antgo: ties keep input order: 1, 1/2, 2/3; swapping the tied rows gives 1, 1, 2/3
    assert attribute_ap(probs, labels, variant="antgo") == pytest.approx((1 + 1 / 2 + 2 / 3) / 3)
    assert attribute_ap(probs[[0, 2, 1]], labels[[0, 2, 1]], variant="antgo") == pytest.approx((1 + 1 + 2 / 3) / 3)
    # the top sample's top-1 is an m: at t = 0.9 nothing is predicted, that threshold drops out
    probs, labels = _probs_codes([([0.9, 0.1], "mn"), ([0.5, 0.5], "yn")])
    assert attribute_ap(probs, labels) == 1.0
    probs, labels = _probs_codes([([0.9, 0.1], "mn")])
    assert math.isnan(attribute_ap(probs, labels))


def _wangxin_oracle(probs: np.ndarray, labels: list[str]) -> float:
    """Loop port of WangXin93 utils/metric.py AP (thresholds with no y/n sample skipped)."""
    outs = []
    for t in probs.max(axis=1):
        n_pred = n_ok = 0
        for p, lab in zip(probs, labels, strict=True):
            if p.max() < t:
                continue
            c = lab[int(np.argmax(p))]
            n_pred += c != "m"
            n_ok += c == "y"
        if n_pred:
            outs.append(n_ok / n_pred)
    return sum(outs) / len(outs)


def test_attribute_ap_matches_wangxin_loop_oracle():
    g = torch.Generator().manual_seed(5)
    probs = torch.softmax(torch.randn(300, 6, generator=g) * 2, dim=1)
    probs = torch.round(probs * 20) / 20  # coarse values: many ties
    labels = torch.full((300, 6), N)
    labels[torch.arange(300), torch.randint(0, 6, (300,), generator=g)] = Y
    labels[torch.rand(300, 6, generator=g) < 0.1] = M
    chars = ["".join("nmy"[c] for c in row) for row in labels.tolist()]
    assert attribute_ap(probs, labels) == pytest.approx(_wangxin_oracle(probs.numpy(), chars), rel=1e-12)


def test_weighted_attribute_metrics_equal_the_reference_on_each_resample():
    g = torch.Generator().manual_seed(7)
    probs = torch.round(torch.softmax(torch.randn(60, 4, generator=g) * 2, dim=1) * 10) / 10  # many ties
    labels = torch.full((60, 4), N)
    labels[torch.arange(60), torch.randint(0, 4, (60,), generator=g)] = Y
    labels[torch.rand(60, 4, generator=g) < 0.15] = M
    labels[:3] = M  # samples without any y: left out of the accuracy
    draws = torch.randint(0, 60, (25, 60), generator=g)
    draws[0] = 0  # one resample that draws only a sample without a y: nan accuracy
    draws[1, :30] = draws[1, 30:]  # duplicates in every threshold
    weights = torch.zeros(25, 60).scatter_add_(1, draws, torch.ones(25, 60))
    ap = attribute_ap_weighted(probs, labels, weights)
    acc = attribute_accuracy_weighted(probs, labels, weights)
    for r in range(25):
        ref_ap, ref_acc = attribute_ap(probs[draws[r]], labels[draws[r]]), attribute_accuracy(probs[draws[r]],
                                                                                              labels[draws[r]])
        assert (math.isnan(ref_ap) and math.isnan(ap[r])) or ap[r].item() == pytest.approx(ref_ap, rel=1e-12)
        assert (math.isnan(ref_acc) and math.isnan(acc[r])) or acc[r].item() == pytest.approx(ref_acc, rel=1e-6)
    assert math.isnan(acc[0]) and not math.isnan(acc[2])
    # a resample whose only sample's top-1 is an m: no threshold counts
    probs1, labels1 = _probs_codes([([0.9, 0.1], "mn"), ([0.5, 0.5], "yn")])
    assert math.isnan(attribute_ap_weighted(probs1, labels1, torch.tensor([[2.0, 0.0]]))[0])
    assert attribute_ap_weighted(probs1, labels1, torch.tensor([[1.0, 1.0]]))[0] == 1.0
    with pytest.raises(ValueError, match=r"weights must be \(R, 2\)"):
        attribute_ap_weighted(probs1, labels1, torch.ones(3))
    with pytest.raises(ValueError, match="weights must be finite and >= 0"):
        attribute_accuracy_weighted(probs1, labels1, torch.tensor([[1.0, -1.0]]))


def test_fashionai_attribute_map_over_tasks():
    p1, l1 = _probs_codes([([0.9] + [0.02] * 5, "ynnnnn"), ([0.05, 0.75] + [0.05] * 4, "nnynnn")])
    p2, l2 = _probs_codes([([0.6, 0.1, 0.1, 0.1, 0.1], "ymnnn"), ([0.2, 0.5, 0.1, 0.1, 0.1], "nmynn")])
    res = fashionai_attribute_map({"skirt_length_labels": p1, "collar_design_labels": p2},
                                  {"skirt_length_labels": l1, "collar_design_labels": l2})
    # skirt: t 0.9 -> 1/1, t 0.75 -> 1/2; collar: t 0.6 -> 1/1, t 0.5 -> m ignored, still 1/1
    assert res.ap == pytest.approx({"skirt_length_labels": 0.75, "collar_design_labels": 1.0})
    assert res.map == pytest.approx(0.875)
    assert res.precision == pytest.approx({"skirt_length_labels": 0.5, "collar_design_labels": 1.0})
    assert res.basic_precision == pytest.approx(0.75)
    assert res.accuracy == pytest.approx({"skirt_length_labels": 0.5, "collar_design_labels": 0.5})
    with pytest.raises(ValueError, match="unknown attribute task 'hat_labels'"):
        fashionai_attribute_map({"hat_labels": p1}, {"hat_labels": l1})
    with pytest.raises(ValueError, match=r"probs_by_task\['collar_design_labels'\] must have shape \(B, 5\)"):
        fashionai_attribute_map({"collar_design_labels": p1}, {"collar_design_labels": l1})
    with pytest.raises(ValueError, match="must have the same tasks"):
        fashionai_attribute_map({"skirt_length_labels": p1}, {"collar_design_labels": l2})


def test_attribute_bad_input():
    probs, labels = _probs_codes([([0.9, 0.1], "yn")])
    with pytest.raises(ValueError, match=r"labels must have the shape of probs \(1, 2\), got \(1, 3\)"):
        attribute_ap(probs, torch.zeros(1, 3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"labels\[0, 1\] = 5: expected a label code"):
        attribute_accuracy(probs, torch.tensor([[2, 5]]))
    with pytest.raises(ValueError, match=r"probs\[0, 0\] = nan: scores must be finite"):
        attribute_ap(torch.tensor([[NAN, 0.1]]), labels)


# ------------------------------------------------------------------ DeepFashion --------------------------------


def test_topk_recall_hand_computed_all_and_groups():
    scores = torch.tensor([[0.9, 0.1, 0.8, 0.7, 0.2, 0.3], [0.1, 0.2, 0.3, 0.9, 0.8, 0.7]])
    labels = torch.tensor([[1, 1, 0, 0, 0, 1], [0, 0, 1, 1, 0, 0]])
    rec = topk_recall(scores, labels, 2, groups={"g1": [0, 1, 2], "g2": torch.tensor([3, 4, 5])})
    assert rec == pytest.approx({"all": 2 / 5, "g1": 2 / 3, "g2": 1.0})
    assert topk_recall(scores, labels, 6)["all"] == 1.0


def test_topk_ties_go_to_lower_index():
    assert topk_recall(torch.full((1, 4), 0.5), torch.tensor([[0, 0, 1, 1]]), 2)["all"] == 0.0
    assert topk_recall(torch.full((1, 4), 0.5), torch.tensor([[1, 0, 0, 1]]), 2)["all"] == 0.5
    assert topk_accuracy(torch.ones(2, 3), torch.tensor([2, 1]), 2) == 0.5


def test_topk_recall_matches_fdjingyuan_style_loop():
    g = torch.Generator().manual_seed(7)
    scores = torch.rand(50, 40, generator=g)
    labels = (torch.rand(50, 40, generator=g) < 0.15).long()
    tp = gt = 0
    for s, y in zip(scores.tolist(), labels.tolist(), strict=True):
        top = sorted(range(40), key=lambda a: -s[a])[:5]
        tp += sum(y[a] for a in top)
        gt += sum(y)
    assert topk_recall(scores, labels, 5)["all"] == pytest.approx(tp / gt)


def test_topk_accuracy_hand_computed():
    logits = torch.tensor([[3.0, 2, 1], [1, 2, 3], [2, 3, 1]])
    target = torch.tensor([1, 0, 0])
    assert [topk_accuracy(logits, target, k) for k in (1, 2, 3)] == pytest.approx([0.0, 2 / 3, 1.0])
    with pytest.raises(ValueError, match=r"target\[1\] = 3 is outside \[0, 3\)"):
        topk_accuracy(logits, torch.tensor([0, 3, 0]), 1)
    with pytest.raises(ValueError, match="k = 4 exceeds the number of classes"):
        topk_accuracy(logits, target, 4)


def test_topk_recall_bad_input():
    with pytest.raises(ValueError, match=r"labels\[0, 1\] = -1: expected 0 or 1"):
        topk_recall(torch.zeros(1, 3), torch.tensor([[1, -1, 0]]), 1)
    with pytest.raises(ValueError, match=r"k = 3 exceeds the number of attributes in groups\['g'\]"):
        topk_recall(torch.zeros(1, 3), torch.tensor([[1, 0, 0]]), 3, groups={"g": [0, 1]})
