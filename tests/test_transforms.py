"""Transforms: flips swap left and right through the schema, resizes map continuous pixel coordinates exactly."""

from __future__ import annotations

import pytest
import torch

from fashion_lib.data.transforms import collate, hflip, keypoint_boxes, random_hflip, resize, to_model_input
from fashion_lib.keypoints import COCO, FASHIONAI
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
             for g in [torch.Generator().manual_seed(1)] for _ in range(40)]  # fmt: skip
    assert 5 < sum(flips) < 35
    again = [torch.equal(random_hflip(image, target, COCO, g, 0.5)[0], image)
             for g in [torch.Generator().manual_seed(1)] for _ in range(40)]  # fmt: skip
    assert flips == again
    with pytest.raises(ValueError, match="p must be in"):
        random_hflip(image, target, COCO, torch.Generator(), p=1.5)


def test_to_model_input_and_collate():
    image = torch.full((3, 20, 10), 255, dtype=torch.uint8)
    target = {"boxes": torch.tensor([[1, 2, 3, 4]]), "labels": torch.tensor([3], dtype=torch.int32),
              "keypoints": torch.tensor([[[2, 4, 2]]])}  # fmt: skip
    out_image, out = to_model_input(image, target, size=(40, 20))
    assert out_image.dtype == torch.float32 and out_image.shape == (3, 40, 20)
    assert torch.allclose(out_image, torch.ones(3, 40, 20))
    assert out["labels"].dtype == torch.int64 and out["keypoints"].tolist() == [[[4.0, 8.0, 2.0]]]
    people = SyntheticPeople(WorldConfig(image_size=32), 3, seed=0)
    images, targets = collate([people[i] for i in range(3)])
    assert len(images) == len(targets) == 3 and targets[2]["image_id"] == 2
    assert collate([]) == ([], [])
