"""Tests of fashion_lib.crops: Normal-crop, Neck-crop, CPN's aspect boxes and the second scale's boxes (the cutting
and the point maps: test_crop_sampling.py)."""

from __future__ import annotations

import math

import pytest
import torch

from fashion_lib.crops import (
    CropConfig,
    aspect_boxes,
    crop_and_resize,
    crop_boxes,
    crop_framing,
    fit_boxes,
    neck_crop,
    normal_crop,
    second_scale_boxes,
    square_boxes,
)
from fashion_lib.keypoints import FASHIONAI
from fashion_lib.synthetic import SyntheticGarments, WorldConfig

IDX = {n: i for i, n in enumerate(FASHIONAI.names)}


def inside(points: torch.Tensor, boxes: torch.Tensor, tol: float = 1e-4) -> torch.Tensor:
    """(B, K) bool: point k of instance b lies in box b (closed, with a float tolerance)."""
    x, y = points[..., 0], points[..., 1]
    b = boxes[:, None, :]
    return (x >= b[..., 0] - tol) & (x <= b[..., 2] + tol) & (y >= b[..., 1] - tol) & (y <= b[..., 3] + tol)


def random_keypoints(b: int, k: int, size: float, generator: torch.Generator) -> torch.Tensor:
    """(B, K, 3) points in the image with visibility in {0, 1, 2}; absent points at 0, a few NaN coordinates."""
    xy = torch.rand(b, k, 2, generator=generator) * size
    v = torch.randint(0, 3, (b, k), generator=generator).float()
    xy = xy * (v[..., None] > 0)
    kp = torch.cat([xy, v[..., None]], -1)
    kp[torch.rand(b, k, generator=generator) < 0.05, 0] = math.nan  # missing predictions
    return kp


def garment(points: dict[str, tuple[float, float]], v: float = 2.0) -> torch.Tensor:
    """(1, 24, 3) FashionAI key points: the named ones with visibility ``v``, the rest absent."""
    kp = torch.zeros(1, FASHIONAI.num_keypoints, 3)
    for name, (x, y) in points.items():
        kp[0, IDX[name]] = torch.tensor([x, y, v])
    return kp


# ------------------------------------------------------------------------------------------------ Normal-crop


def test_normal_crop_hand_box_ignores_absent_and_nan_points():
    kp = torch.tensor([[[10.0, 20.0, 2.0], [30.0, 60.0, 1.0], [100.0, 5.0, 0.0], [math.nan, 90.0, 2.0]]])
    out = normal_crop(kp, margin=0.1)
    # closure [10, 20, 30, 60]: 20 x 40, so 2 px left/right and 4 px top/bottom
    torch.testing.assert_close(out.boxes, torch.tensor([[8.0, 16.0, 32.0, 64.0]]))
    assert not out.fallback.any() and out.num_fallback == 0


def test_normal_crop_works_with_scores_and_clips_per_image():
    # third channel as detector scores: 0 means "not found"
    kp = torch.tensor([[[2.0, 3.0, 0.9], [50.0, 40.0, 0.2], [70.0, 70.0, 0.0]],
                       [[2.0, 3.0, 0.9], [50.0, 40.0, 0.2], [70.0, 70.0, 0.0]]])
    out = normal_crop(kp, margin=0.5, image_size=torch.tensor([[100.0, 100.0], [35.0, 45.0]]))
    # closure [2, 3, 50, 40] grown by 24 / 18.5 px per side, then clipped to (H, W) = (100, 100) and (35, 45)
    torch.testing.assert_close(out.boxes, torch.tensor([[0.0, 0.0, 74.0, 58.5], [0.0, 0.0, 45.0, 35.0]]))


def test_every_valid_point_lies_in_its_normal_crop():
    g = torch.Generator().manual_seed(0)
    kp = random_keypoints(256, 24, 128.0, g)
    for margin in (0.0, 0.1, 0.5):
        out = normal_crop(kp, margin=margin, image_size=128)
        valid = torch.isfinite(kp[..., :2]).all(-1) & (kp[..., 2] > 0)
        assert inside(kp, out.boxes)[valid].all()
        assert (out.boxes[:, :2] >= 0).all() and (out.boxes[:, 2:] <= 128).all()


def test_every_visible_point_of_synthetic_garments_lies_in_its_normal_crop():
    ds = SyntheticGarments(WorldConfig(image_size=96), 24, seed=3)
    kp = torch.cat([ds[i][1]["keypoints"] for i in range(len(ds))])  # (24, 24, 3)
    out = normal_crop(kp, margin=CropConfig().normal_margin, image_size=96)
    assert inside(kp, out.boxes)[kp[..., 2] == 2].all()
    assert not out.fallback.any()


def test_normal_crop_falls_back_to_whole_image_and_counts():
    kp = torch.zeros(3, 5, 3)
    kp[1, 0] = torch.tensor([10.0, 10.0, 2.0])
    kp[1, 1] = torch.tensor([20.0, 30.0, 2.0])
    kp[2, :, :2] = math.nan  # NaN predictions with a positive score are not valid either
    kp[2, :, 2] = 0.8
    out = normal_crop(kp, margin=0.0, image_size=(60, 80))
    assert out.fallback.tolist() == [True, False, True] and out.num_fallback == 2
    torch.testing.assert_close(out.boxes[[0, 2]], torch.tensor([[0.0, 0.0, 80.0, 60.0]] * 2))
    with pytest.raises(ValueError, match=r"2 of 3 instances have no valid key point.*pass image_size"):
        normal_crop(kp, margin=0.0)


def test_normal_crop_single_point_gets_min_size():
    kp = torch.tensor([[[40.0, 50.0, 2.0]]])
    out = normal_crop(kp, margin=0.3, min_size=6.0)
    torch.testing.assert_close(out.boxes, torch.tensor([[37.0, 47.0, 43.0, 53.0]]))


@pytest.mark.parametrize(
    "kwargs, match",
    [({"margin": -0.1}, "margin must be >= 0"), ({"margin": 0.1, "min_size": 0.0}, "min_size must be > 0"),
     ({"margin": 0.1, "image_size": (0, 10)}, "image_size must be >= 1")],
)
def test_normal_crop_rejects_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        normal_crop(torch.zeros(1, 3, 3), **kwargs)


def test_normal_crop_rejects_bad_shape():
    with pytest.raises(ValueError, match=r"keypoints must be a \(B, K, 3\)"):
        normal_crop(torch.zeros(4, 3), margin=0.1)


# ------------------------------------------------------------------------------------------------ Neck-crop

HEMS = {"hemline_left": (20.0, 120.0), "hemline_right": (100.0, 120.0)}
NECK = {"neckline_left": (52.0, 28.0), "neckline_right": (68.0, 28.0), "center_front": (60.0, 40.0)}
SHOULDERS = {"shoulder_left": (40.0, 30.0), "shoulder_right": (80.0, 30.0)}


def test_neck_crop_hand_box_from_shoulders():
    kp = garment({**NECK, **SHOULDERS, **HEMS})
    out = neck_crop(kp, "fashionai", margin=0.25, image_size=128, normal_margin=0.1, depth=0.6)
    # s = 40, cx = 60: x [40, 80] +- 10; y from 28 - 10 down to max(40, 28 + 24) + 10 = 62; the Normal-crop
    # (closure [20, 28, 100, 120], pads 8 / 9.2, clipped to 128) cuts the top at 18.8
    torch.testing.assert_close(out.boxes, torch.tensor([[30.0, 18.8, 90.0, 62.0]]))
    assert not out.fallback.any()


def test_neck_crop_scale_from_neckline_when_a_shoulder_is_missing():
    kp = garment({**NECK, "shoulder_left": (40.0, 30.0), **HEMS})
    out = neck_crop(kp, "fashionai", margin=0.25, image_size=128, normal_margin=0.1, depth=0.6,
                    neckline_to_shoulder=3.0)
    # s = 3 * 16 = 48, cx = 60: x [min(40, 36), max(68, 84)] +- 12 = [24, 96]; y [28 - 12, max(40, 56.8) + 12]
    torch.testing.assert_close(out.boxes, torch.tensor([[24.0, 18.8, 96.0, 68.8]]))
    assert not out.fallback.any()


def test_neck_crop_without_scale_falls_back_to_top_of_normal_crop():
    kp = garment({"center_front": (60.0, 40.0), "neckline_left": (52.0, 28.0), **HEMS})
    kp[0, IDX["neckline_left"], 2] = 0.0  # only center_front and the hems remain
    out = neck_crop(kp, "fashionai", margin=0.25, image_size=128, normal_margin=0.1, fallback_fraction=0.4)
    # Normal-crop: closure [20, 40, 100, 120], pads 8 -> [12, 32, 108, 128]; top 40 % of its height 96
    torch.testing.assert_close(out.boxes, torch.tensor([[12.0, 32.0, 108.0, 70.4]]))
    assert out.fallback.tolist() == [True]


def test_neck_crop_lies_inside_normal_crop_and_flags_exactly_the_unscaled():
    g = torch.Generator().manual_seed(1)
    ds = SyntheticGarments(WorldConfig(image_size=96), 40, seed=5)
    kp = torch.cat([ds[i][1]["keypoints"] for i in range(len(ds))])  # (40, 24, 3), every category
    drop = torch.rand(kp.shape[:2], generator=g) < 0.3  # hide points at random
    kp[..., 2] = torch.where(drop, torch.zeros_like(kp[..., 2]), kp[..., 2])
    cfg = CropConfig(square=False)
    normal = crop_boxes(kp, "normal", 96, cfg)
    neck = crop_boxes(kp, "neck", 96, cfg)
    n, k = normal.boxes, neck.boxes
    assert ((k[:, :2] >= n[:, :2] - 1e-4) & (k[:, 2:] <= n[:, 2:] + 1e-4)).all()
    assert ((k[:, 2:] - k[:, :2]) <= (n[:, 2:] - n[:, :2]) + 1e-4).all()
    # oracle, per instance: a scale exists iff both shoulders or both neckline points are present
    def has(row: torch.Tensor, a: str, b: str) -> bool:
        return bool(row[IDX[a], 2] > 0 and row[IDX[b], 2] > 0)

    expected = [not (has(r, "shoulder_left", "shoulder_right") or has(r, "neckline_left", "neckline_right"))
                for r in kp]
    assert neck.fallback.tolist() == expected
    assert 0 < sum(expected) < len(expected)  # both branches were exercised
    # the visible neck points of scaled instances are inside their Neck-crop
    names = [IDX[p] for p in ("neckline_left", "neckline_right", "center_front", "shoulder_left", "shoulder_right")]
    pts = kp[:, names]
    assert inside(pts, k)[(pts[..., 2] > 0) & ~neck.fallback[:, None]].all()


def test_neck_crop_of_instance_without_points_is_top_of_whole_image():
    kp = torch.zeros(1, 24, 3)
    out = neck_crop(kp, "fashionai", margin=0.2, image_size=(50, 40), fallback_fraction=0.5)
    torch.testing.assert_close(out.boxes, torch.tensor([[0.0, 0.0, 40.0, 25.0]]))
    assert out.fallback.tolist() == [True]


def test_neck_crop_rejects_schema_without_neck_and_wrong_point_count():
    with pytest.raises(ValueError, match="schema 'coco' has no neck region; valid schemas: fashionai"):
        neck_crop(torch.zeros(1, 17, 3), "coco", margin=0.2, image_size=64)
    with pytest.raises(ValueError, match="keypoints have 17 points, schema 'fashionai' has 24"):
        neck_crop(torch.zeros(1, 17, 3), "fashionai", margin=0.2, image_size=64)
    with pytest.raises(ValueError, match=r"neck_fallback must be in \(0, 1\]"):
        neck_crop(torch.zeros(1, 24, 3), "fashionai", margin=0.2, image_size=64, fallback_fraction=0.0)


def test_square_crop_boxes_keep_the_centre_and_contain_the_rectangle():
    kp = garment({**NECK, **SHOULDERS, **HEMS})
    for kind in ("normal", "neck"):
        rect = crop_boxes(kp, kind, 128, CropConfig(square=False, normal_margin=0.1, neck_margin=0.25))
        sq = crop_boxes(kp, kind, 128, CropConfig(square=True, normal_margin=0.1, neck_margin=0.25))
        (x1, y1, x2, y2), (a1, b1, a2, b2) = rect.boxes[0].tolist(), sq.boxes[0].tolist()
        assert a2 - a1 == pytest.approx(b2 - b1) == pytest.approx(max(x2 - x1, y2 - y1))
        assert (a1 + a2, b1 + b2) == pytest.approx((x1 + x2, y1 + y2))
        assert a1 <= x1 and b1 <= y1 and a2 >= x2 and b2 >= y2
    # the Neck-crop of the hand-worked case, [30, 18.8, 90, 62] (60 x 43.2), becomes a 60-px square
    torch.testing.assert_close(sq.boxes, torch.tensor([[30.0, 10.4, 90.0, 70.4]]))


def test_aspect_boxes_scale_about_the_centre_and_fit_the_aspect_ratio():
    boxes = torch.tensor([[10.0, 20.0, 30.0, 100.0], [0.0, 0.0, 80.0, 20.0]])  # tall, wide
    out = aspect_boxes(boxes, (64, 48), scale=1.25)
    # tall box: height 80 * 1.25 = 100 sets the size, width 100 * 48 / 64 = 75, centre (20, 60)
    torch.testing.assert_close(out[0], torch.tensor([20 - 37.5, 10.0, 20 + 37.5, 110.0]))
    # wide box: width 100 sets it, height 100 * 64 / 48, centre (40, 10)
    h = 100 * 64 / 48
    torch.testing.assert_close(out[1], torch.tensor([-10.0, 10 - h / 2, 90.0, 10 + h / 2]))
    # a degenerate box counts as min_side wide and high before scaling: a 2 x 2 square about its centre
    point = torch.tensor([[5.0, 7.0, 5.0, 7.0]])
    torch.testing.assert_close(aspect_boxes(point, 8, scale=2.0, min_side=1.0), torch.tensor([[4.0, 6.0, 6.0, 8.0]]))
    torch.testing.assert_close(aspect_boxes(point, 8), point)


def test_square_boxes_are_the_square_aspect_boxes():
    boxes = torch.tensor([[10.0, 20.0, 30.0, 100.0], [0.0, 0.0, 80.0, 20.0]])
    # the square of the longer side about the centre: 80 about (20, 60) and (40, 10)
    torch.testing.assert_close(square_boxes(boxes), torch.tensor([[-20.0, 20.0, 60.0, 100.0],
                                                                   [0.0, -30.0, 80.0, 50.0]]))
    torch.testing.assert_close(square_boxes(boxes), aspect_boxes(boxes, (32, 32)), rtol=0, atol=0)


def test_crop_boxes_full_and_bad_kind():
    out = crop_boxes(torch.zeros(2, 24, 3), "full", (30, 40), CropConfig(square=False))
    torch.testing.assert_close(out.boxes, torch.tensor([[0.0, 0.0, 40.0, 30.0]] * 2))
    assert not out.fallback.any()
    # squared about the centre (20, 15): side 40
    out = crop_boxes(torch.zeros(2, 24, 3), "full", (30, 40), CropConfig(square=True))
    torch.testing.assert_close(out.boxes, torch.tensor([[0.0, -5.0, 40.0, 35.0]] * 2))
    with pytest.raises(ValueError, match="kind must be one of"):
        crop_boxes(torch.zeros(2, 24, 3), "head", 64)


# ---------------------------------------------------------------------------------------------- CPU and GPU


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_crops_agree_on_cpu_and_gpu():
    ds = SyntheticGarments(WorldConfig(image_size=96), 16, seed=7)
    items = [ds[i] for i in range(len(ds))]
    kp = torch.cat([t["keypoints"] for _, t in items])
    images = [im for im, _ in items]
    for kind in ("normal", "neck"):
        cpu = crop_boxes(kp, kind, 96)
        gpu = crop_boxes(kp.cuda(), kind, 96)
        torch.testing.assert_close(gpu.boxes.cpu(), cpu.boxes)
        assert gpu.fallback.cpu().tolist() == cpu.fallback.tolist()
        a = crop_and_resize(images, cpu.boxes, 48)
        b = crop_and_resize([im.cuda() for im in images], cpu.boxes.cuda(), 48)
        torch.testing.assert_close(b.images.cpu(), a.images, atol=1e-5, rtol=1e-5)


# ------------------------------------------------------------------------------------------------ the second scale


def outside_extent(boxes: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """(B, 2) length of each box outside the image along x and y (what padding must fill)."""
    extent = torch.tensor([hw[1], hw[0]], dtype=boxes.dtype)
    side = boxes[:, 2:] - boxes[:, :2]
    overlap = (torch.minimum(boxes[:, 2:], extent) - boxes[:, :2].clamp(min=0)).clamp(min=0)
    return side - overlap


def test_fit_boxes_pads_only_where_the_image_cannot_cover_the_box():
    g = torch.Generator().manual_seed(0)
    hw = (60, 90)
    lo = torch.rand(500, 2, generator=g) * 160 - 40  # corners from 40 px before the image to well beyond it
    side = torch.rand(500, 2, generator=g) * 130 + 1  # sides from 1 px to more than either image side
    boxes = torch.cat([lo, lo + side], 1)
    fitted = fit_boxes(boxes, hw)
    torch.testing.assert_close(fitted[:, 2:] - fitted[:, :2], side)  # sizes kept
    least = (side - torch.tensor([hw[1], hw[0]], dtype=side.dtype)).clamp(min=0)  # what no shift can avoid
    torch.testing.assert_close(outside_extent(fitted, hw), least, atol=1e-4, rtol=0)
    assert (outside_extent(boxes, hw) > least + 1).any(), "the random boxes must include some that need a shift"
    inside = (boxes[:, :2] >= 0).all(1) & (boxes[:, 2] <= hw[1]) & (boxes[:, 3] <= hw[0])
    torch.testing.assert_close(fitted[inside], boxes[inside])  # a box already inside does not move


def test_second_scale_square_near_the_border_is_shifted_inside_and_keeps_the_points():
    kps = torch.zeros(1, 24, 3)
    kps[0, :3] = torch.tensor([[2.0, 30.0, 0.9], [20.0, 40.0, 0.9], [10.0, 60.0, 0.9]])  # near the left border
    present = kps[..., 2] > 0
    out = second_scale_boxes(kps, present, (100, 120), margin=0.25)
    # rectangle 2..20 x 30..60 grown by a quarter: -2.5..24.5 x 22.5..67.5, square of side 45 about (11, 45)
    # (-11.5..33.5), shifted right by 11.5 px to start at the image's edge
    torch.testing.assert_close(out.boxes, torch.tensor([[0.0, 22.5, 45.0, 67.5]]))
    assert inside(kps[..., :2], out.boxes)[present].all()
    rect = second_scale_boxes(kps, present, (100, 120), margin=0.0, square=False)
    torch.testing.assert_close(rect.boxes, torch.tensor([[2.0, 30.0, 20.0, 60.0]]))  # the paper's rectangle


def test_crop_framing_by_hand():
    kps = torch.zeros(2, 24, 3)
    kps[0, :3] = torch.tensor([[2.0, 30.0, 0.9], [20.0, 40.0, 0.9], [10.0, 60.0, 0.9]])  # box 18 x 30
    kps[0, 3] = torch.tensor([90.0, 90.0, 0.0])  # not present: not framed
    present = kps[..., 2] > 0
    # a 40-px square inside the image, and one 10 px over the left edge and 20 px over the bottom (100 x 120 image)
    boxes = torch.tensor([[0.0, 25.0, 40.0, 65.0], [-10.0, 80.0, 30.0, 120.0]])
    extent, padding = crop_framing(kps, present, boxes, (100, 120))
    assert float(extent[0]) == pytest.approx(30 / 40) and math.isnan(float(extent[1]))
    assert float(padding[0]) == 0.0
    assert float(padding[1]) == pytest.approx(1 - (30 * 20) / (40 * 40))
    with pytest.raises(ValueError, match=r"boxes must have shape \(2, 4\)"):
        crop_framing(kps, present, boxes[:1], (100, 120))


def test_second_scale_boxes_fall_back_to_the_whole_image():
    kps = torch.zeros(2, 24, 3)
    kps[0, :2] = torch.tensor([[10.0, 20.0, 1.0], [30.0, 28.0, 1.0]])
    present = kps[..., 2] > 0
    out = second_scale_boxes(kps, present, torch.tensor([[60.0, 80.0], [60.0, 80.0]]), margin=0.5)
    assert out.fallback.tolist() == [False, True]
    # rectangle 10..30 x 20..28 grown by half its size: 0..40 x 16..32, square of side 40 about (20, 24)
    torch.testing.assert_close(out.boxes[0], torch.tensor([0.0, 4.0, 40.0, 44.0]))
    # the whole 80 x 60 image's square: 20 px taller than the image, the overhang split evenly
    torch.testing.assert_close(out.boxes[1], torch.tensor([0.0, -10.0, 80.0, 70.0]))
    with pytest.raises(ValueError, match="present must be a"):
        second_scale_boxes(kps, present.float(), 64, margin=0.0)
