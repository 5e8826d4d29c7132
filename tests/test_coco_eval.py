"""COCO key-point evaluation (fashion_lib.coco_eval): AP on the real mmpose sample and on hand-made cases, the
results format, and bad ground truth named before pycocotools sees it.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pytest
import torch

from fashion_lib.coco_eval import (
    coco_ap_on_images,
    coco_area_scale,
    coco_keypoint_ap,
    keypoints_to_coco_results,
    read_coco_results,
    write_coco_results,
)
from fashion_lib.keypoints import FASHIONAI

# ../shared beside the repository (as in CI): the real COCO excerpt
COCO_SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "real-samples" / "coco" / "test_coco.json"
needs_coco_sample = pytest.mark.skipif(not COCO_SAMPLE.exists(), reason="real COCO sample not available")

NAN = math.nan


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
def test_coco_size_ranges_scale_with_the_image_side():
    gt = json.loads(COCO_SAMPLE.read_text())
    assert coco_area_scale(gt) == 1.0  # the sample's images are COCO's own (longer side 640)
    small = [dict(im, width=128, height=96) for im in gt["images"]]
    assert coco_area_scale({**gt, "images": small}) == pytest.approx(0.04)
    # perfect for the persons above 96^2 px ("large"), 40 px off for the others
    results = [dict(r, keypoints=r["keypoints"] if a["area"] > 96**2 else [v + 40.0 for v in r["keypoints"]])
               for r, a in zip(_perfect_results(gt), [a for a in gt["annotations"] if a["num_keypoints"] > 0],
                               strict=True)]
    plain = coco_keypoint_ap(gt, results)
    assert plain.APl > 0.9 and plain.APm < 0.1
    # ranges shrunk 1000-fold (a 20-px image): every person is "large", nobody "medium"
    tiny = coco_keypoint_ap(gt, results, area_scale=1e-3)
    assert tiny.APl == pytest.approx(plain.AP) and math.isnan(tiny.APm)
    # grown 100-fold: nobody reaches medium (32^2 * 100 px)
    assert math.isnan(coco_keypoint_ap(gt, results, area_scale=100.0).APl)
    assert coco_ap_on_images(gt, [[r for r in results if r["image_id"] == im["id"]] for im in gt["images"]],
                             [im["id"] for im in gt["images"]], stat="APl", area_scale=1e-3) == tiny.APl
    with pytest.raises(ValueError, match="area_scale must be a finite number > 0, got 0"):
        coco_keypoint_ap(gt, results, area_scale=0)


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
