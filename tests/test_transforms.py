"""Transforms: flips swap left and right through the schema, resizes map continuous pixel coordinates exactly."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from fashion_lib.data.transforms import (
    ScaleCropConfig,
    ScaleCropped,
    collate,
    crop,
    extent_quantiles,
    hflip,
    keypoint_boxes,
    random_hflip,
    random_scale_crop,
    resize,
    to_model_input,
)
from fashion_lib.keypoints import COCO, FASHIONAI, keypoint_extent
from fashion_lib.synthetic import SyntheticGarments, SyntheticPeople, WorldConfig


def _random_target(schema, n: int = 3, width: int = 40, height: int = 30, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, schema.num_keypoints, 2, generator=g) * torch.tensor([width, height])
    v = torch.randint(0, 3, (n, schema.num_keypoints, 1), generator=g).float()
    kp = torch.cat([xy * (v > 0), v], -1)
    return {
        "keypoints": kp,
        "boxes": torch.tensor([[1.0, 2.0, 11.0, 22.0]] * n),
        "occluded": torch.rand(n, schema.num_keypoints, generator=g) < 0.3,
        "axis": torch.tensor([[0.6, 0.8, 12.0]] * (n - 1) + [[0.0, 0.0, 0.0]]),
        "area": torch.full((n,), 50.0),
        "category": "blouse",
    }


@pytest.mark.parametrize("schema", [FASHIONAI, COCO], ids=["fashionai", "coco"])
def test_hflip_twice_is_the_identity(schema):
    image = torch.rand(3, 30, 40)
    target = _random_target(schema)
    once_image, once = hflip(image, target, schema)
    twice_image, twice = hflip(once_image, once, schema)
    assert torch.equal(twice_image, image)
    for key in ("keypoints", "boxes", "occluded", "axis", "area"):
        assert torch.allclose(twice[key], target[key]), key
    assert twice["category"] == "blouse"
    assert not torch.equal(once["keypoints"], target["keypoints"])


@pytest.mark.parametrize("schema", [FASHIONAI, COCO], ids=["fashionai", "coco"])
def test_hflip_mirrors_x_and_swaps_every_pair(schema):
    width = 40
    image = torch.zeros(3, 30, width)
    image[:, 5, 3] = 1.0  # pixel column 3 covers x in [3, 4): it must land on column 36, covering [36, 37)
    target = _random_target(schema, width=width)
    flipped_image, out = hflip(image, target, schema)
    assert flipped_image[:, 5, 36].eq(1).all() and flipped_image.sum() == 3
    kp, new = target["keypoints"], out["keypoints"]
    for left, right in schema.pairs.tolist():
        for a, b in ((left, right), (right, left)):
            labelled = kp[:, a, 2] > 0
            assert torch.equal(new[:, b, 2], kp[:, a, 2])
            assert torch.allclose(new[labelled, b, 0], width - kp[labelled, a, 0])
            assert torch.equal(new[:, b, 1], kp[:, a, 1])
            assert torch.equal(out["occluded"][:, b], target["occluded"][:, a])
    for c in schema.center.tolist():
        labelled = kp[:, c, 2] > 0
        assert torch.allclose(new[labelled, c, 0], width - kp[labelled, c, 0])
    absent = new[..., 2] == 0
    assert new[absent][:, :2].abs().sum() == 0  # absent points keep zero coordinates
    assert out["boxes"][0].tolist() == [width - 11.0, 2.0, width - 1.0, 22.0]


def test_hflip_keeps_a_symmetric_garment_consistent_with_its_axis():
    config = WorldConfig(asymmetry=0.0, perspective=0.0, occlusion_rate=0.0)
    image, target = SyntheticGarments(config, 4, seed=2)[0]
    _, out = hflip(image, target, FASHIONAI)
    n, c = out["axis"][0, :2], out["axis"][0, 2]
    kp = out["keypoints"][0]
    for left, right in FASHIONAI.pairs.tolist():
        if kp[left, 2] > 0 and kp[right, 2] > 0:
            mid = (kp[left, :2] + kp[right, :2]) / 2
            assert abs(float(n @ mid - c)) < 1e-3
            # FashionAI's *_left stays on the side of the smaller x after the swap
            side = torch.sign(n[0]) * (n @ kp[left, :2] - c)
            assert side < 0 and torch.sign(n[0]) * (n @ kp[right, :2] - c) > 0


def test_hflip_rejects_a_schema_of_another_size():
    with pytest.raises(ValueError, match="keypoints have 24 points, schema 'coco' has 17"):
        hflip(torch.zeros(3, 8, 8), {"keypoints": torch.zeros(1, 24, 3)}, COCO)


def test_resize_maps_coordinates_exactly():
    image = torch.rand(3, 30, 40)
    target = _random_target(FASHIONAI)
    out_image, out = resize(image, target, (60, 100))  # sy = 2, sx = 2.5
    assert out_image.shape == (3, 60, 100)
    kp, new = target["keypoints"], out["keypoints"]
    labelled = kp[..., 2] > 0
    assert torch.allclose(new[labelled][:, :2], kp[labelled][:, :2] * torch.tensor([2.5, 2.0]))
    assert torch.equal(new[..., 2], kp[..., 2]) and new[~labelled][:, :2].abs().sum() == 0
    assert out["boxes"][0].tolist() == [2.5, 4.0, 27.5, 44.0]
    assert torch.allclose(out["area"], torch.full((3,), 250.0))
    # a point on the axis stays on the resized axis
    p = torch.tensor([12.0 / 0.6, 0.0])
    q = p * torch.tensor([2.5, 2.0])
    n, c = out["axis"][0, :2], out["axis"][0, 2]
    assert abs(float(n @ q - c)) < 1e-4 and abs(float(n.norm()) - 1) < 1e-6
    assert out["axis"][2].abs().sum() == 0  # no axis stays no axis


def test_resize_follows_the_continuous_pixel_convention():
    # pixel (row 4, column 6) has its centre at (6.5, 4.5); doubling the image puts the blob's centre at (13, 9)
    image = torch.zeros(1, 16, 16)
    image[0, 4, 6] = 1.0
    out, _ = resize(image, {}, 32)
    ys, xs = torch.meshgrid(torch.arange(32) + 0.5, torch.arange(32) + 0.5, indexing="ij")
    w = out[0] / out[0].sum()
    assert float((w * xs).sum()) == pytest.approx(13.0, abs=1e-4)
    assert float((w * ys).sum()) == pytest.approx(9.0, abs=1e-4)


def test_resize_rejects_bad_sizes():
    with pytest.raises(ValueError, match=r"size must be a positive int or \(height, width\), got \(0, 5\)"):
        resize(torch.zeros(3, 4, 4), {}, (0, 5))
    with pytest.raises(ValueError, match=r"image must be a \(C, H, W\) float tensor, got shape \(4, 4\)"):
        resize(torch.zeros(4, 4), {}, 8)


def test_keypoint_boxes_by_hand():
    kp = torch.tensor([[[10.0, 20.0, 2.0], [30.0, 60.0, 1.0], [99.0, 99.0, 0.0]], [[0.0, 0.0, 0.0]] * 3])
    boxes = keypoint_boxes(kp, margin=0.1)
    assert boxes.tolist() == [[8.0, 16.0, 32.0, 64.0], [0.0, 0.0, 0.0, 0.0]]  # absent points ignored
    assert keypoint_boxes(kp, 0.5, width=35, height=70)[0].tolist() == [0.0, 0.0, 35.0, 70.0]
    with pytest.raises(ValueError, match="margin must be >= 0, got -0.1"):
        keypoint_boxes(kp, -0.1)


def test_random_hflip_follows_p_and_the_generator():
    image, target = torch.rand(3, 8, 10), _random_target(COCO, width=10, height=8)
    never = random_hflip(image, target, COCO, torch.Generator().manual_seed(0), p=0.0)
    always = random_hflip(image, target, COCO, torch.Generator().manual_seed(0), p=1.0)
    assert never[0] is image and torch.equal(always[0], image.flip(-1))
    flips = [torch.equal(random_hflip(image, target, COCO, g, 0.5)[0], image)
             for g in [torch.Generator().manual_seed(1)] for _ in range(40)]
    assert 5 < sum(flips) < 35
    again = [torch.equal(random_hflip(image, target, COCO, g, 0.5)[0], image)
             for g in [torch.Generator().manual_seed(1)] for _ in range(40)]
    assert flips == again
    with pytest.raises(ValueError, match="p must be in"):
        random_hflip(image, target, COCO, torch.Generator(), p=1.5)


def test_to_model_input_and_collate():
    image = torch.full((3, 20, 10), 255, dtype=torch.uint8)
    target = {"boxes": torch.tensor([[1, 2, 3, 4]]), "labels": torch.tensor([3], dtype=torch.int32),
              "keypoints": torch.tensor([[[2, 4, 2]]])}
    out_image, out = to_model_input(image, target, size=(40, 20))
    assert out_image.dtype == torch.float32 and out_image.shape == (3, 40, 20)
    assert torch.allclose(out_image, torch.ones(3, 40, 20))
    assert out["labels"].dtype == torch.int64 and out["keypoints"].tolist() == [[[4.0, 8.0, 2.0]]]
    people = SyntheticPeople(WorldConfig(image_size=32), 3, seed=0)
    images, targets = collate([people[i] for i in range(3)])
    assert len(images) == len(targets) == 3 and targets[2]["image_id"] == 2
    assert collate([]) == ([], [])


# ------------------------------------------------------------------------------------ scale and crop augmentation


def _ramp_image(height: int, width: int) -> torch.Tensor:
    """Channel 0: the x of each pixel's centre, channel 1: its y, channel 2: 0 (source pixels)."""
    ys, xs = torch.meshgrid(torch.arange(height) + 0.5, torch.arange(width) + 0.5, indexing="ij")
    return torch.stack([xs, ys, torch.zeros_like(xs)])


def test_extent_quantiles_leave_out_crowds_and_unlabelled_instances():
    one = {"keypoints": torch.tensor([[[0.0, 0.0, 2.0], [10.0, 0.0, 2.0]], [[0.0, 0.0, 2.0], [90.0, 0.0, 2.0]]]),
           "iscrowd": torch.tensor([0, 1])}  # the crowd region (extent 0.9) is not a garment
    two = {"keypoints": torch.tensor([[[0.0, 0.0, 2.0], [30.0, 0.0, 2.0]], [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]])}
    q = extent_quantiles([one, two], [(100, 100), (100, 100)], quantiles=(0.0, 0.5, 1.0))
    assert q == pytest.approx({0.0: 0.1, 0.5: 0.2, 1.0: 0.3})
    assert all(math.isnan(v) for v in extent_quantiles([], [], quantiles=(0.5,)).values())
    with pytest.raises(ValueError, match="sizes has 1 entries for 2 targets"):
        extent_quantiles([one, two], [(100, 100)])


def test_crop_moves_points_drops_what_leaves_and_pads_by_replication():
    image = _ramp_image(20, 30)
    kp = torch.tensor([[[12.0, 8.0, 2.0], [2.0, 3.0, 1.0], [0.0, 0.0, 0.0]],
                       [[1.0, 1.0, 2.0], [3.0, 2.0, 2.0], [2.0, 3.0, 2.0]]])
    target = {"keypoints": kp, "boxes": torch.tensor([[1.0, 2.0, 14.0, 10.0], [0.0, 0.0, 4.0, 4.0]]),
              "labels": torch.tensor([1, 2]), "occluded": torch.tensor([[False, True, False]] * 2),
              "area": torch.tensor([104.0, 16.0]), "axis": torch.tensor([[1.0, 0.0, 7.0], [0.0, 0.0, 0.0]]),
              "category": "blouse"}
    out_image, out = crop(image, target, top=5, left=6, height=20, width=30)
    assert out_image.shape == (3, 20, 30)
    # inside the image the window shows the source pixel (x + 6, y + 5); beyond it the last row/column repeats
    assert out_image[0, 0, 0] == 6.5 and out_image[1, 0, 0] == 5.5
    assert out_image[0, 0, 29] == 29.5 and out_image[1, 19, 0] == 19.5
    # instance 1's box [0, 4] x [0, 4] leaves the window: dropped with its label, points, area and axis
    assert out["labels"].tolist() == [1] and out["keypoints"].shape == (1, 3, 3) and out["area"].shape == (1,)
    assert out["keypoints"][0].tolist() == [[6.0, 3.0, 2.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]  # (2, 3) left
    assert out["occluded"].tolist() == [[False, False, False]]
    assert out["boxes"].tolist() == [[0.0, 0.0, 8.0, 5.0]]
    assert out["area"].tolist() == pytest.approx([104.0 * 40 / 104])
    assert out["axis"].tolist() == [[1.0, 0.0, 1.0]]  # x = 7 becomes x = 1
    assert out["category"] == "blouse"
    with pytest.raises(ValueError, match="pad_mode must be one of"):
        crop(image, target, 0, 0, 4, 4, pad_mode="reflect")
    with pytest.raises(ValueError, match="crop height and width must be >= 1, got 0 x 4"):
        crop(image, target, 0, 0, 0, 4)


@pytest.mark.parametrize("seed", range(6))
def test_random_scale_crop_keeps_every_point_on_its_pixel(seed):
    g = torch.Generator().manual_seed(seed)
    height, width = 48, 64
    xy = torch.rand(1, 6, 2, generator=g) * torch.tensor([width - 24.0, height - 24.0]) + 12.0
    kp = torch.cat([xy, torch.full((1, 6, 1), 2.0)], -1)
    target = {"keypoints": kp, "boxes": keypoint_boxes(kp, 0.05, width, height), "labels": torch.tensor([1])}
    out_image, out = random_scale_crop(_ramp_image(height, width), target, g)
    assert out_image.shape == (3, height, width)
    new = out["keypoints"][0]
    assert (new[:, 2] == 2).all()  # the reference instance keeps every point
    # the ramp image says at each output position which source position it shows: exactly the point's own
    grid = (new[:, :2] / torch.tensor([width, height]) * 2 - 1).view(1, 1, 6, 2)  # continuous pixels -> [-1, 1]
    shown = F.grid_sample(out_image[None, :2], grid, align_corners=False)[0, :, 0].T  # (6, 2) source x, y there
    # within half a pixel of the window's edge (in source or output pixels) resampling clamps: not compared
    scale = float(((new[1:, :2] - new[:1, :2]).norm(dim=1) / (kp[0, 1:, :2] - kp[0, :1, :2]).norm(dim=1)).mean())
    edge = 0.5 * max(1.0, scale) + 0.01
    interior = ((new[:, :2] >= edge) & (new[:, :2] <= torch.tensor([width - edge, height - edge]))).all(1)
    assert interior.sum() >= 3
    assert (shown - kp[0, :, :2])[interior].abs().max() < 0.02


def test_random_scale_crop_keeps_boxes_and_axis_consistent_with_the_points():
    # an exactly symmetric world: no asymmetry, no perspective, no annotator noise on hidden points
    garments = SyntheticGarments(WorldConfig(image_size=64, asymmetry=0.0, perspective=0.0, occluded_label_noise=0.0),
                                 12, seed=3)
    checked = 0
    for i in range(len(garments)):
        image, target = garments[i]
        size = image.shape[1]
        unclipped = torch.allclose(target["boxes"], keypoint_boxes(target["keypoints"], 0.05))
        _, out = random_scale_crop(image, target, torch.Generator().manual_seed(i))
        kp = out["keypoints"][0]
        assert torch.equal(kp[:, 2] > 0, target["keypoints"][0, :, 2] > 0)
        box = out["boxes"][0]
        labelled = kp[kp[:, 2] > 0, :2]
        assert (labelled >= box[:2] - 1e-4).all() and (labelled <= box[2:] + 1e-4).all()
        assert (box >= 0).all() and (box <= size).all()
        if unclipped and torch.allclose(keypoint_boxes(kp[None], 0.05, size, size), keypoint_boxes(kp[None], 0.05)):
            assert torch.allclose(box, keypoint_boxes(kp[None], 0.05)[0], atol=1e-3)
            checked += 1
        n, c = out["axis"][0, :2], out["axis"][0, 2]
        assert abs(float(n.norm()) - 1) < 1e-5
        for left, right in FASHIONAI.pairs.tolist():
            if kp[left, 2] > 0 and kp[right, 2] > 0:  # a symmetric garment: each pair's midpoint on the axis
                assert abs(float(n @ (kp[left, :2] + kp[right, :2]) / 2 - c)) < 1e-2
    assert checked >= 3


def test_random_scale_crop_spreads_the_extent_over_a_third_to_the_whole_frame():
    # a world that frames every garment large, so that the spread below is the augmentation's own
    garments = SyntheticGarments(WorldConfig(image_size=64, scale=(0.75, 0.95)), 60, seed=0)
    augmented = ScaleCropped(garments, ScaleCropConfig(), seed=0, length=240)
    items = [augmented[i] for i in range(len(augmented))]
    extents = torch.cat([keypoint_extent(t["keypoints"], 64, 64) for _, t in items])
    assert extents.min() > 1 / 3 - 0.02 and extents.max() <= 1.0
    q = extent_quantiles([t for _, t in items], [(64, 64)] * len(items))
    assert q[0.05] < 0.4 and 0.6 < q[0.5] < 0.74 and q[0.95] > 0.9  # uniform on [1/3, ~0.97]
    before = extent_quantiles([garments[i][1] for i in range(60)], [(64, 64)] * 60)
    assert before[0.05] > 0.45  # this world alone never frames a garment this small
    # the repeated items are new draws of the same garments
    assert items[0][1]["image_id"] == items[60][1]["image_id"] and not torch.equal(items[0][0], items[60][0])


def test_random_scale_crop_follows_its_generator_and_picks_a_person_not_a_crowd():
    people = SyntheticPeople(WorldConfig(image_size=64), 20, seed=1)
    image, target = next((im, t) for im, t in (people[i] for i in range(20)) if (t["iscrowd"] == 1).any())
    a = random_scale_crop(image, target, torch.Generator().manual_seed(5))
    b = random_scale_crop(image, target, torch.Generator().manual_seed(5))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1]["keypoints"], b[1]["keypoints"])
    for seed in range(10):
        _, out = random_scale_crop(image, target, torch.Generator().manual_seed(seed))
        sizes = out["boxes"][:, 2:] - out["boxes"][:, :2]
        assert (sizes >= 1.0).all()  # detectors reject empty boxes
        person = out["iscrowd"] == 0
        e = keypoint_extent(out["keypoints"][person], 64, 64)
        assert (e > 1 / 3 - 0.02).any()  # a person (the reference), never the crowd region, was framed
        n = len(out["boxes"])
        assert all(len(out[k]) == n for k in ("labels", "keypoints", "iscrowd", "area", "occluded", "axis"))


def test_random_scale_crop_never_frames_a_crowd_region():
    # a crowd region with labelled points spans 0.9 of the frame, the person 0.2: framing the crowd would leave the
    # person below a third of the frame
    kp = torch.tensor([[[5.0, 5.0, 2.0], [95.0, 50.0, 2.0]], [[40.0, 40.0, 2.0], [60.0, 45.0, 2.0]]])
    target = {"keypoints": kp, "boxes": keypoint_boxes(kp, 0.05), "iscrowd": torch.tensor([1, 0])}
    for seed in range(12):
        _, out = random_scale_crop(torch.rand(3, 100, 100), target, torch.Generator().manual_seed(seed))
        person = out["keypoints"][out["iscrowd"] == 0]
        assert 1 / 3 - 0.02 < float(keypoint_extent(person, 100, 100)[0]) <= 1.0


def test_scale_crop_without_instances_is_the_identity_and_config_is_checked():
    image = torch.rand(3, 8, 8)
    empty = {"keypoints": torch.zeros(0, 17, 3), "boxes": torch.zeros(0, 4)}
    out_image, out = random_scale_crop(image, empty, torch.Generator())
    assert out_image is image and out is empty
    with pytest.raises(ValueError, match=r"extent must be \(lo, hi\) with 0 < lo <= hi <= 1, got \(0.5, 1.2\)"):
        ScaleCropConfig(extent=(0.5, 1.2))
    with pytest.raises(ValueError, match="pad_mode must be one of"):
        ScaleCropConfig(pad_mode="wrap")
    with pytest.raises(ValueError, match="length must be >= len"):
        ScaleCropped([(image, empty)] * 3, ScaleCropConfig(), seed=0, length=2)
