"""Tests for fashion_lib.metrics (and the pycocotools wrapper in fashion_lib.coco_eval).

Hand-worked cases for every metric, loop oracles of the reference implementations (data-formats.md A.4, B.4,
C.3), and COCO AP on the real mmpose sample.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from fashion_lib.attributes import M, N, Y
from fashion_lib.keypoints import COCO, FASHIONAI
from fashion_lib.metrics import (
    CI,
    SEEDS_FOR_PERCENTILE,
    IntervalMethod,
    attribute_accuracy,
    attribute_ap,
    bootstrap_ci,
    coco_ap_on_images,
    coco_keypoint_ap,
    crossed_bootstrap_ci,
    crossed_interval,
    crossed_plan,
    fashionai_attribute_map,
    keypoint_errors,
    keypoints_to_coco_results,
    normalized_error,
    paired_bootstrap_ci,
    read_coco_results,
    seed_values,
    topk_accuracy,
    topk_recall,
    write_coco_results,
)

# ../shared beside the repository (as in CI): the real COCO excerpt
COCO_SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "real-samples" / "coco" / "test_coco.json"
needs_coco_sample = pytest.mark.skipif(not COCO_SAMPLE.exists(), reason="real COCO sample not available")

NAN = math.nan
IDX = {n: i for i, n in enumerate(FASHIONAI.names)}


# ------------------------------------------------------------------ NE -----------------------------------------


def _instance(points: dict[str, tuple[float, float, int]]) -> torch.Tensor:
    """(24, 3) ground truth with the given points, the others absent (0, 0, 0)."""
    gt = torch.zeros(24, 3)
    for name, (x, y, v) in points.items():
        gt[IDX[name]] = torch.tensor([x, y, v], dtype=torch.float32)
    return gt


def _hand_case() -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """A skirt (waistband distance 10) and a blouse (occluded armpits 20 apart), worked out by hand below."""
    skirt_gt = _instance({"waistband_left": (0, 0, 2), "waistband_right": (10, 0, 2), "hemline_left": (0, 20, 2),
                          "hemline_right": (10, 20, 1)})
    skirt_pred = skirt_gt[:, :2].clone()
    skirt_pred[IDX["waistband_left"]] = torch.tensor([3.0, 4.0])  # 5 px / 10 = 0.5
    skirt_pred[IDX["hemline_left"]] = torch.tensor([0.0, 21.0])  # 0.1
    skirt_pred[IDX["hemline_right"]] = torch.tensor([10.0, 25.0])  # 0.5, counted only with count_occluded
    blouse_gt = _instance({"armpit_left": (0, 0, 1), "armpit_right": (0, 20, 1), "neckline_left": (5, 5, 2),
                           "neckline_right": (8, 8, 2)})
    blouse_pred = blouse_gt[:, :2].clone()
    blouse_pred[IDX["neckline_left"]] = torch.tensor([5.0, 15.0])  # 10 / 20 = 0.5
    blouse_pred[IDX["neckline_right"]] = torch.tensor([NAN, NAN])  # missing: scores missing_error
    return torch.stack([skirt_pred, blouse_pred]), torch.stack([skirt_gt, blouse_gt]), ["skirt", "blouse"]


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


# ------------------------------------------------------------------ COCO ---------------------------------------


def _perfect_results(gt: dict) -> list[dict]:
    return [{"image_id": a["image_id"], "category_id": 1, "keypoints": list(map(float, a["keypoints"])),
             "score": 1.0} for a in gt["annotations"] if a["num_keypoints"] > 0]


@needs_coco_sample
def test_coco_ap_perfect_predictions_is_one_and_gt_untouched():
    gt = json.loads(COCO_SAMPLE.read_text())
    before = copy.deepcopy(gt)
    res = coco_keypoint_ap(gt, _perfect_results(gt))
    assert res.as_dict() == {k: 1.0 for k in ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm",
                                              "ARl")}
    assert res.num_results == 12 and res.num_images == 4
    assert type(res.AP) is float
    assert gt == before  # COCOeval marks GT annotations 'ignore'; we must have worked on copies


@needs_coco_sample
def test_coco_ap_falls_monotonically_with_noise_and_matches_pycocotools():
    from pycocotools.coco import COCO as CocoApi
    from pycocotools.cocoeval import COCOeval

    gt = json.loads(COCO_SAMPLE.read_text())
    perfect = _perfect_results(gt)
    eps = torch.randn(len(perfect), 17, 2, generator=torch.Generator().manual_seed(1))
    aps = []
    for scale in (0.0, 2.0, 5.0, 10.0, 20.0, 40.0):
        kps = torch.tensor([r["keypoints"] for r in perfect]).reshape(-1, 17, 3)
        kps[..., :2] += scale * eps
        results = keypoints_to_coco_results([r["image_id"] for r in perfect], kps, [1.0] * len(perfect))
        aps.append(coco_keypoint_ap(COCO_SAMPLE, results).AP)
    assert aps[0] == 1.0
    assert all(a >= b for a, b in zip(aps, aps[1:], strict=False)), aps
    assert aps[-1] < 0.5

    # the wrapper changes no number: compare with a direct pycocotools run on the last results
    api = CocoApi(str(COCO_SAMPLE))
    ev = COCOeval(api, api.loadRes(copy.deepcopy(results)), iouType="keypoints")
    ev.evaluate(), ev.accumulate(), ev.summarize()
    full = coco_keypoint_ap(api, results)
    assert full.AP == float(ev.stats[0])
    # the "all" range alone (what bootstrap replicates use) gives the same overall numbers and no size ones
    quick = coco_keypoint_ap(api, results, size_ranges=False)
    assert (quick.AP, quick.AP50, quick.AP75, quick.AR) == (full.AP, full.AP50, full.AP75, full.AR)
    assert math.isnan(quick.APm) and math.isnan(quick.ARl) and not math.isnan(full.APm)


@needs_coco_sample
def test_coco_ap_on_resampled_images_counts_repeats():
    gt = json.loads(COCO_SAMPLE.read_text())
    perfect = _perfect_results(gt)
    ids = [im["id"] for im in gt["images"]]
    by_image = [[r for r in perfect if r["image_id"] == i] for i in ids]
    # every image once, in order: the plain AP
    assert coco_ap_on_images(gt, by_image, ids) == 1.0
    # spoil one image's detections: AP on a sample that draws it twice is lower than on one that draws it once
    bad = ids[0]
    spoiled = [[dict(r, keypoints=[v + 40.0 for v in r["keypoints"]]) for r in res] if i == bad else res
               for i, res in zip(ids, by_image, strict=True)]
    full = coco_keypoint_ap(gt, [r for res in spoiled for r in res]).AP
    assert coco_ap_on_images(gt, spoiled, ids) == pytest.approx(full)
    once = coco_ap_on_images(gt, spoiled[:2], ids[:2])
    twice = coco_ap_on_images(gt, [spoiled[0], spoiled[0], spoiled[1]], [bad, bad, ids[1]])
    assert twice < once < 1.0
    with pytest.raises(ValueError, match="image_ids\\[1\\] = 5 is not in the ground truth"):
        coco_ap_on_images(gt, [[], []], [ids[0], 5])


@needs_coco_sample
def test_coco_ap_empty_results_give_zero():
    res = coco_keypoint_ap(COCO_SAMPLE, [])
    assert res.AP == 0.0 and res.AR == 0.0 and res.num_results == 0


@needs_coco_sample
def test_coco_ap_result_image_not_in_gt_is_named():
    gt = json.loads(COCO_SAMPLE.read_text())
    results = _perfect_results(gt)
    results[3] = dict(results[3], image_id=999)
    with pytest.raises(ValueError, match="results: entry 3: image_id 999 is not in the ground truth"):
        coco_keypoint_ap(gt, results)
    results[3] = dict(results[3], image_id=785, category_id=7)
    with pytest.raises(ValueError, match="entry 3: category_id 7 is not in the ground truth"):
        coco_keypoint_ap(gt, results)
    with pytest.raises(ValueError, match="key-point counts disagree"):
        coco_keypoint_ap(gt, [dict(results[0], keypoints=[1.0] * 72)])


def _fashionai_gt() -> dict:
    g = torch.Generator().manual_seed(3)
    anns = []
    for i in range(6):
        xy = torch.rand(24, 2, generator=g) * 200 + 50
        kps = torch.cat([xy, torch.full((24, 1), 2.0)], -1).flatten().tolist()
        anns.append({"id": i + 1, "image_id": i // 2 + 1, "category_id": 1, "iscrowd": 0, "num_keypoints": 24,
                     "keypoints": kps, "area": 200.0 * 200.0, "bbox": [50.0, 50.0, 200.0, 200.0]})
    return {"images": [{"id": i, "width": 300, "height": 300} for i in (1, 2, 3)], "annotations": anns,
            "categories": [{"id": 1, "name": "garment", "keypoints": list(FASHIONAI.names)}]}


def test_coco_ap_fashionai_schema_uses_documented_sigmas():
    gt = _fashionai_gt()
    perfect = [{"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"], "score": 0.9}
               for a in gt["annotations"]]
    res = coco_keypoint_ap(gt, perfect)
    assert res.AP == 1.0
    assert res.sigmas == pytest.approx(FASHIONAI.sigmas.tolist(), abs=1e-7)
    assert res.sigmas[FASHIONAI.index("neckline_left")] == 0.035  # exact decimal, not float32's 0.0350000001
    moved = copy.deepcopy(perfect)
    for r in moved:
        r["keypoints"][0::3] = [x + 15.0 for x in r["keypoints"][0::3]]  # every point 15 px to the right
    tight = coco_keypoint_ap(gt, moved).AP
    loose = coco_keypoint_ap(gt, moved, sigmas=[0.5] * 24).AP  # larger sigmas forgive the same error
    assert tight < loose == 1.0


def test_coco_results_round_trip(tmp_path):
    kps = torch.tensor([[[1.5, 2.25, 0.9], [NAN, 3.0, 1.0]], [[4.0, 5.0, 0.0], [6.0, 7.0, 0.3]]])
    results = keypoints_to_coco_results(torch.tensor([42, 43]), kps, torch.tensor([0.75, 0.5]), category_id=1)
    assert results[0] == {"image_id": 42, "category_id": 1, "keypoints": [1.5, 2.25, 1.0, 0.0, 0.0, 0.0],
                          "score": 0.75}
    assert results[1]["keypoints"] == [0.0, 0.0, 0.0, 6.0, 7.0, 1.0]  # v = 0 in the input: not output
    path = write_coco_results(tmp_path / "sub" / "results.json", results)
    assert json.loads(path.read_text()) == results
    back = read_coco_results(path, num_keypoints=2)
    assert back == results
    assert all(type(r["image_id"]) is int and type(r["score"]) is float for r in back)
    assert not list(path.parent.glob(".*.tmp"))  # atomic write leaves no temporary behind


def test_read_coco_results_names_bad_entry(tmp_path):
    good = {"image_id": 1, "category_id": 1, "keypoints": [1.0, 2.0, 1.0], "score": 0.5}
    cases = [
        ([good, {k: v for k, v in good.items() if k != "score"}], r"entry 1 lacks field\(s\) \['score'\]"),
        ([good, good, dict(good, keypoints=[1.0, 2.0])], "entry 2: field 'keypoints' has 2 numbers"),
        ([dict(good, image_id="7")], "entry 0: field 'image_id' = '7', expected an integer"),
        ([dict(good, keypoints=[1.0, True, 1.0])], "entry 0: field 'keypoints' must be a list of numbers"),
        ([dict(good, keypoints=[1.0, "2", 1.0])], "entry 0: field 'keypoints' must be a list of numbers"),
        ([good, dict(good, keypoints=[1.0] * 6)], r"entry 1: field 'keypoints' has 6 numbers, expected 3 \(3 x 1"),
        ({"image_id": 1}, "expected a list of result entries, got dict"),
    ]
    for i, (data, message) in enumerate(cases):
        path = tmp_path / f"bad{i}.json"
        path.write_text(json.dumps(data))
        with pytest.raises(ValueError, match=f"bad{i}.json: {message}"):
            read_coco_results(path)
    (tmp_path / "broken.json").write_text("[{")
    with pytest.raises(ValueError, match="broken.json: line 1: not valid JSON"):
        read_coco_results(tmp_path / "broken.json")
    with pytest.raises(ValueError, match="results: entry 0: field 'score' = nan"):
        write_coco_results(tmp_path / "x.json", [dict(good, score=NAN)])
    with pytest.raises(ValueError, match="entry 0: field 'keypoints' contains a non-finite value"):
        write_coco_results(tmp_path / "x.json", [dict(good, keypoints=[1.0, NAN, 1.0])])
    assert not (tmp_path / "x.json").exists()
    with pytest.raises(ValueError, match=r"keypoints must have shape \(B, K, 2\) or \(B, K, 3\)"):
        keypoints_to_coco_results([1], torch.zeros(1, 6), [1.0])
    with pytest.raises(ValueError, match=r"image_ids must be \(B,\) = \(2,\) integers"):
        keypoints_to_coco_results([1], torch.zeros(2, 3, 3), [1.0, 1.0])


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


# ------------------------------------------------------------------ bootstrap ----------------------------------


def _mean(x):
    return float(torch.as_tensor(x, dtype=torch.float64).mean())


def test_bootstrap_ci_of_mean_has_normal_width():
    x = torch.randn(400, generator=torch.Generator().manual_seed(11), dtype=torch.float64)
    est, low, high, *_ = bootstrap_ci(_mean, x, n_boot=2000, generator=torch.Generator().manual_seed(0))
    assert est == pytest.approx(float(x.mean()))
    half = 1.96 * float(x.std()) / 20  # normal-theory half-width of a 95 % interval, n = 400
    assert low < est < high
    assert (high - low) / 2 == pytest.approx(half, rel=0.1)
    narrow = bootstrap_ci(_mean, x, n_boot=2000, level=0.5, generator=torch.Generator().manual_seed(0))
    assert narrow.high - narrow.low < (high - low) / 2


def test_bootstrap_ci_is_reproducible_and_constant_metric_is_degenerate():
    x = torch.arange(10.0)
    a = bootstrap_ci(_mean, x, n_boot=50, generator=torch.Generator().manual_seed(3))
    b = bootstrap_ci(_mean, x, n_boot=50, generator=torch.Generator().manual_seed(3))
    assert a == b and isinstance(a, CI) and type(a.low) is float
    assert bootstrap_ci(lambda _: 2.5, x, n_boot=20, generator=torch.Generator())[:3] == (2.5, 2.5, 2.5)


def test_bootstrap_ci_resamples_ne_with_category_names():
    pred, gt, cats = _hand_case()
    ci = bootstrap_ci(lambda p, g, c: normalized_error(p, g, c).ne, pred, gt, cats, n_boot=200,
                      generator=torch.Generator().manual_seed(0))
    # two images: every replicate is skirt only (0.2), blouse only (0.75) or a mix
    assert ci.estimate == pytest.approx(0.42)
    assert ci.low == pytest.approx(0.2) and ci.high == pytest.approx(0.75)


def test_paired_bootstrap_ci_of_a_difference():
    g = torch.Generator().manual_seed(2)
    base = torch.randn(200, generator=g, dtype=torch.float64) * 5
    shifted = base + 1.0
    same = paired_bootstrap_ci(_mean, (shifted,), (base,), n_boot=100, generator=g)
    assert same[:3] == pytest.approx((1, 1, 1))
    assert same.p_value == pytest.approx(2 / 101) and same.method is IntervalMethod.IMAGES
    noisy = base + 1.0 + torch.randn(200, generator=g, dtype=torch.float64) * 0.1
    paired = paired_bootstrap_ci(_mean, (noisy,), (base,), n_boot=500, generator=torch.Generator().manual_seed(0))
    # pairing cancels the large shared spread (sd 5): the interval is about 0.1 / sqrt(200) wide, not 5 / ...
    assert paired.low < 1.0 < paired.high or abs(paired.estimate - 1.0) < 0.03
    assert paired.high - paired.low < 0.05


def test_bootstrap_bad_input():
    x = torch.zeros(5)
    gen = torch.Generator()
    with pytest.raises(ValueError, match=r"arrays must share their first dimension \(instances\), got lengths \[5, "):
        bootstrap_ci(lambda a, b: 0.0, x, torch.zeros(4), generator=gen)
    with pytest.raises(ValueError, match="level must be in \\(0, 1\\), got 95"):
        bootstrap_ci(_mean, x, level=95, generator=gen)
    with pytest.raises(ValueError, match="generator must be a torch.Generator, got int"):
        bootstrap_ci(_mean, x, generator=0)
    with pytest.raises(ValueError, match="metric_fn must return a number, got NEResult"):
        pred, gt, cats = _hand_case()
        bootstrap_ci(normalized_error, pred, gt, cats, generator=gen)
    with pytest.raises(ValueError, match="arrays_a and arrays_b must hold the same instances, got 5 and 4"):
        paired_bootstrap_ci(_mean, (x,), (torch.zeros(4),), generator=gen)


def test_crossed_bootstrap_with_one_seed_is_the_paired_image_bootstrap():
    g = torch.Generator().manual_seed(4)
    a, b = torch.randn(150, generator=g, dtype=torch.float64), torch.randn(150, generator=g, dtype=torch.float64)
    one = crossed_bootstrap_ci(_mean, [(a,)], [(b,)], n_boot=300, generator=torch.Generator().manual_seed(1))
    paired = paired_bootstrap_ci(_mean, (a,), (b,), n_boot=300, generator=torch.Generator().manual_seed(1))
    assert one.method is IntervalMethod.IMAGES
    assert one.estimate == pytest.approx(paired.estimate)
    # same construction, other draws: the widths agree to bootstrap noise
    assert one.half_width == pytest.approx(paired.half_width, rel=0.15)


def test_crossed_bootstrap_widens_the_interval_by_the_spread_between_seeds():
    g = torch.Generator().manual_seed(5)
    # three training seeds whose mean improvement is 0.5, 2.0 and 3.5, each measured on the same 300 images
    base = torch.randn(300, generator=g, dtype=torch.float64)
    per_seed_a, per_seed_b = [], []
    for shift in (0.5, 2.0, 3.5):
        per_seed_b.append((base,))
        per_seed_a.append((base + shift + 0.05 * torch.randn(300, generator=g, dtype=torch.float64),))
    ci = crossed_bootstrap_ci(_mean, per_seed_a, per_seed_b, n_boot=400, generator=torch.Generator().manual_seed(0))
    assert ci.method is IntervalMethod.SEED_T
    assert ci.estimate == pytest.approx(2.0, abs=0.01)
    # t interval over three per-seed values (sd 1.5): 2.0 +- 4.30 * 1.5 / sqrt(3); the image part is negligible
    assert ci.half_width == pytest.approx(4.303 * 1.5 / math.sqrt(3), rel=0.01)
    t_p = 2 * 0.0735  # two-sided p of t = 2.0 / (1.5 / sqrt 3) = 2.31 on 2 degrees of freedom
    assert ci.p_value == pytest.approx(t_p, rel=0.05)
    # the crossed percentile interval never leaves the observed seeds' range: too narrow with three seeds
    pct = crossed_bootstrap_ci(_mean, per_seed_a, per_seed_b, n_boot=400, method="crossed",
                               generator=torch.Generator().manual_seed(0))
    assert pct.method is IntervalMethod.CROSSED
    assert pct.low >= 0.5 - 0.05 and pct.high <= 3.5 + 0.05 and pct.half_width < ci.half_width / 2


def test_crossed_plan_shares_one_image_resample_across_seeds_and_methods():
    plan = crossed_plan(3, 7, n_boot=5, generator=torch.Generator().manual_seed(0))
    assert plan.images.shape == (5, 7) and plan.seeds.shape == (5, 3)
    x = torch.arange(7.0, dtype=torch.float64)
    # every seed's arrays are the same image ids: each replicate's per-seed values agree exactly
    vals = seed_values(_mean, [(x,), (x,), (x,)], plan)
    assert torch.equal(vals.replicates[:, 0], vals.replicates[:, 2])
    assert torch.allclose(vals.replicates[:, 0], x[plan.images].mean(1))
    batched = seed_values(lambda v: v.mean(-1), [(x,), (x,), (x,)], plan, batched=True)
    assert torch.allclose(batched.replicates, vals.replicates) and torch.allclose(batched.full, vals.full)
    diff = vals - seed_values(_mean, [(x + 1,), (x + 2,), (x + 3,)], plan)
    assert diff.full.tolist() == pytest.approx([-1.0, -2.0, -3.0])
    assert torch.allclose(diff.replicates, torch.tensor([-1.0, -2.0, -3.0], dtype=torch.float64).expand(5, 3))


def _coverage(ci_fn, *, seeds: int, seed_sd: float, paired: bool, trials: int, images: int = 100,
              seed: int = 0) -> float:
    """Fraction of simulated crossed designs whose 95 % interval holds the true mean (or difference).

    Per-image scores ``mu + a_s + b_i + e_si``: seed effects ``a_s`` (sd ``seed_sd``), image effects ``b_i`` (sd 1)
    shared by every seed, noise ``e_si`` (sd 1). Paired: method A adds ``delta + u_s + g_i`` to the same ``a_s +
    b_i`` (``u_s`` sd ``seed_sd``, ``g_i`` sd 0.5, its own noise), so the difference keeps a seed and an image
    component. ``ci_fn(per_seed_a, per_seed_b or None) -> CI`` on lists of ``((B,) scores,)``.
    """
    g = torch.Generator().manual_seed(seed)

    def randn(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    mu, delta = 0.5, 0.3
    hits = 0
    for _ in range(trials):  # over simulated studies: each draws its own seeds and images
        shared = mu + seed_sd * randn(seeds, 1) + randn(1, images)  # (S, B) a_s + b_i
        b = shared + randn(seeds, images)
        if paired:
            a = shared + delta + seed_sd * randn(seeds, 1) + 0.5 * randn(1, images) + randn(seeds, images)
            ci, truth = ci_fn([(x,) for x in a], [(x,) for x in b]), delta
        else:
            ci, truth = ci_fn([(x,) for x in b], None), mu
        hits += ci.low <= truth <= ci.high
    return hits / trials


@pytest.mark.parametrize("seeds", [3, 5])
@pytest.mark.parametrize("seed_sd", [0.0, 0.3])
@pytest.mark.parametrize("paired", [False, True])
def test_crossed_bootstrap_covers_the_true_value_in_crossed_designs(seeds, seed_sd, paired):
    """Nominal 95 %: at least 90 % of 300 simulated studies (binomial sd 1.3 points at 95 %, 2.3 at 80 %)."""
    gen = torch.Generator().manual_seed(100 + seeds)

    def ci_fn(a, b):
        return crossed_bootstrap_ci(lambda x: x.mean(-1), a, b, n_boot=400, batched=True, generator=gen)

    cover = _coverage(ci_fn, seeds=seeds, seed_sd=seed_sd, paired=paired, trials=300, seed=seeds)
    assert cover >= 0.90, f"coverage {cover:.3f}"


def test_crossed_interval_auto_switches_to_the_percentile_with_many_seeds():
    g = torch.Generator().manual_seed(9)
    per_seed = [(torch.randn(30, generator=g, dtype=torch.float64),) for _ in range(SEEDS_FOR_PERCENTILE)]
    ci = crossed_bootstrap_ci(_mean, per_seed, n_boot=50, generator=torch.Generator().manual_seed(0))
    assert ci.method is IntervalMethod.CROSSED
    fewer = crossed_bootstrap_ci(_mean, per_seed[:-1], n_boot=50, generator=torch.Generator().manual_seed(0))
    assert fewer.method is IntervalMethod.SEED_T
    assert IntervalMethod.SEED_T.label == "t interval from the seed and image variance components"


def test_crossed_interval_of_a_constant_and_of_nan_replicates(caplog):
    plan = crossed_plan(3, 4, n_boot=10, generator=torch.Generator().manual_seed(0))
    const = seed_values(lambda x: 2.0, [(torch.zeros(4),)] * 3, plan)
    assert crossed_interval(const, plan)[:4] == (2.0, 2.0, 2.0, 0.0)
    nan_once = seed_values(_mean, [(torch.tensor([1.0, 2.0, 3.0, math.nan]),)] * 3, plan)
    ci = crossed_interval(nan_once, plan)
    assert "replicates gave a non-finite metric and were dropped" in caplog.text
    assert math.isnan(ci.estimate)


def test_crossed_bootstrap_bad_input():
    gen = torch.Generator()
    with pytest.raises(ValueError, match="per_seed: give the arrays of at least one seed"):
        crossed_bootstrap_ci(_mean, [], generator=gen)
    with pytest.raises(ValueError, match=r"per_seed_b must have one entry per seed \(2\), got 1"):
        crossed_bootstrap_ci(_mean, [(torch.zeros(3),), (torch.zeros(3),)], [(torch.zeros(3),)], generator=gen)
    with pytest.raises(ValueError, match="methods A and B must be scored on the same images, got 3 and 2"):
        crossed_bootstrap_ci(_mean, [(torch.zeros(3),)], [(torch.zeros(2),)], generator=gen)
    with pytest.raises(ValueError, match=r"every seed must be scored on the same images \(a crossed design\), "
                                         r"got \[3, 4\] instances"):
        crossed_bootstrap_ci(_mean, [(torch.zeros(3),), (torch.zeros(4),)], generator=gen)
    with pytest.raises(ValueError, match=r"with batched=True metric_fn must return \(1,\) values"):
        crossed_bootstrap_ci(_mean, [(torch.zeros(3),)], n_boot=5, batched=True, generator=gen)
    with pytest.raises(ValueError, match="method must be 'auto', 'seed-t' or 'crossed', got 't'"):
        crossed_bootstrap_ci(_mean, [(torch.zeros(3),)], n_boot=5, method="t", generator=gen)
    with pytest.raises(ValueError, match="n_images must be an integer >= 1, got 0"):
        crossed_plan(2, 0, generator=gen)
