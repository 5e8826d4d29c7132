"""Tests of fashion_lib.models.cpn: heat-map targets and decoding, OHKM, jitter, the network (its crop geometry is
fashion_lib.crops', tested in test_crops.py)."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from fashion_lib.crops import aspect_boxes, points_from_crop
from fashion_lib.models.cpn import (
    CPNConfig,
    build_cpn,
    decode_heatmaps,
    gaussian_heatmaps,
    hash_uniform,
    jitter_boxes,
    ohkm_loss,
)
from fashion_lib.synthetic import SyntheticGarments, SyntheticPeople, WorldConfig

TINY = dict(channels=32, refine_channels=16)  # a fast CPN for shape tests


def _batch(schema: str, n: int = 2):
    ds = SyntheticGarments(WorldConfig(), n, seed=3) if schema == "fashionai" else SyntheticPeople(WorldConfig(), n,
                                                                                                 seed=3)
    items = [ds[i] for i in range(n)]
    return [im for im, _ in items], [t for _, t in items]


# ------------------------------------------------------------------------------------------------ config


def test_config_rejects_bad_values_naming_them():
    with pytest.raises(ValueError, match="backbone must be one of resnet18, resnet34"):
        CPNConfig(backbone="vgg16")
    with pytest.raises(ValueError, match="input_size must be"):
        CPNConfig(input_size=(100, 64))
    with pytest.raises(ValueError, match=r"top_m must be in \[1, 17\]"):
        CPNConfig(top_m=18)
    with pytest.raises(ValueError, match="heatmap_stride must be 1, 2 or 4"):
        CPNConfig(heatmap_stride=8)
    with pytest.raises(ValueError, match="frozen_norm=True needs pretrained weights_path"):
        CPNConfig(frozen_norm=True)


def test_presets_follow_the_cpn_paper_and_the_cpu_budget():
    gpu = CPNConfig.gpu("coco")
    assert (gpu.backbone, gpu.input_size, gpu.heatmap_size, gpu.top_m) == ("resnet50", (256, 192), (64, 48), 8)
    cpu = CPNConfig.cpu("fashionai", top_m=6)
    assert cpu.backbone == "resnet18" and max(cpu.input_size) <= 96 and cpu.top_m == 6
    assert cpu.num_keypoints == 24


# ------------------------------------------------------------------------------------------------ jitter


def test_jitter_boxes_extremes():
    boxes = torch.tensor([[0.0, 0.0, 10.0, 20.0]])
    same = jitter_boxes(boxes, torch.full((1, 3), 0.5), 0.1, 0.2)
    assert torch.equal(same, boxes)
    moved = jitter_boxes(boxes, torch.tensor([[1.0, 0.0, 1.0]]), 0.1, 0.2)
    # centre (5, 10) + (+1, -2); size (10, 20) * 1.2
    assert torch.allclose(moved, torch.tensor([[0.0, -4.0, 12.0, 20.0]]))


def test_hash_uniform_is_a_fixed_function_of_its_keys():
    keys = torch.tensor([[0, 5, 7, 1, 2], [0, 5, 7, 1, 2], [0, 5, 7, 2, 2], [1, 5, 7, 1, 2]])
    u = hash_uniform(keys)
    assert u.shape == (4,) and u.dtype == torch.float64
    assert u[0] == u[1] and len({float(x) for x in u[1:]}) == 3
    many = hash_uniform(torch.stack([torch.zeros(20000, dtype=torch.long), torch.arange(20000)], 1))
    assert 0 <= float(many.min()) and float(many.max()) < 1
    assert abs(float(many.mean()) - 0.5) < 0.01 and abs(float(many.var()) - 1 / 12) < 0.003


# ------------------------------------------------------------------------------------------------ heat maps


def test_gaussian_target_peaks_at_the_point():
    xy = torch.tensor([[[7.5, 3.5]]])  # the centre of heat-map pixel (row 3, column 7)
    hm = gaussian_heatmaps(xy, (12, 10), sigma=1.5)
    assert hm.shape == (1, 1, 12, 10)
    assert float(hm[0, 0, 3, 7]) == pytest.approx(1.0)
    assert int(hm[0, 0].argmax()) == 3 * 10 + 7
    # one pixel away: exp(-1 / (2 * 1.5^2))
    assert float(hm[0, 0, 3, 8]) == pytest.approx(math.exp(-1 / 4.5))


@pytest.mark.parametrize("sigma", [1.0, 2.0])
def test_decode_recovers_a_subpixel_point(sigma):
    g = torch.Generator().manual_seed(0)
    xy = torch.rand(5, 3, 2, generator=g) * torch.tensor([20.0, 14.0]) + 2  # away from the border
    hm = gaussian_heatmaps(xy, (18, 24), sigma)
    decoded, peak = decode_heatmaps(hm)
    assert torch.allclose(decoded, xy, atol=1e-3)
    assert bool((peak <= 1).all()) and bool((peak > math.exp(-1 / (4 * sigma**2)) - 1e-6).all())


def test_decode_keeps_the_pixel_centre_on_a_flat_map():
    decoded, peak = decode_heatmaps(torch.zeros(1, 1, 6, 6))
    assert torch.equal(decoded, torch.tensor([[[0.5, 0.5]]])) and float(peak) == 0.0


def test_ohkm_keeps_exactly_the_top_m_points():
    losses = torch.tensor([[0.1, 0.9, 0.5, 0.7, 0.3], [0.2, 0.4, 0.6, 0.8, 1.0]], requires_grad=True)
    valid = torch.tensor([[True, True, True, True, True], [True, True, True, True, False]])
    out = ohkm_loss(losses, valid, top_m=2)
    # instance 0: 0.9 and 0.7; instance 1: 0.8 and 0.6 (1.0 is not supervised)
    assert float(out.detach()) == pytest.approx(((0.9 + 0.7) / 2 + (0.8 + 0.6) / 2) / 2)
    out.backward()
    counted = losses.grad != 0
    assert counted.sum(1).tolist() == [2, 2]
    assert counted.tolist() == [[False, True, False, True, False], [False, False, True, True, False]]


def test_ohkm_with_fewer_supervised_points_than_m_averages_them():
    losses = torch.tensor([[0.5, 0.1, 0.3], [0.2, 0.2, 0.2]])
    valid = torch.tensor([[True, False, False], [False, False, False]])
    assert float(ohkm_loss(losses, valid, top_m=2)) == pytest.approx(0.5)
    assert float(ohkm_loss(losses, torch.zeros_like(valid), top_m=2)) == 0.0


# ------------------------------------------------------------------------------------------------ the network


@pytest.mark.parametrize("schema", ["fashionai", "coco"])
def test_train_and_eval_outputs(schema):
    torch.manual_seed(0)
    model = build_cpn(CPNConfig.cpu(schema, **TINY))
    images, targets = _batch(schema)
    model.train()
    losses = model(images, targets)
    assert set(losses) == {"loss_global", "loss_refine"}
    assert all(v.ndim == 0 and math.isfinite(float(v)) and float(v) > 0 for v in losses.values())
    assert int(model.step) == 1
    model.eval()
    out = model(images, targets)
    k = 24 if schema == "fashionai" else 17
    for o, t in zip(out, targets, strict=True):
        n = len(t["boxes"])
        assert o["keypoints"].shape == (n, k, 3) and o["scores"].shape == (n,) and o["labels"].shape == (n,)
        assert torch.equal(o["boxes"], t["boxes"].float())
        conf = o["keypoints"][..., 2]
        assert bool(((conf >= 0) & (conf <= 1)).all())
        assert torch.allclose(o["scores"], conf.mean(1))


def test_crowd_and_unlabelled_instances_are_skipped():
    torch.manual_seed(0)
    model = build_cpn(CPNConfig.cpu("coco", **TINY)).train()
    image = torch.rand(3, 64, 64)
    kp = torch.zeros(2, 17, 3)
    kp[0] = torch.tensor([20.0, 30.0, 2.0])  # first instance: labelled, but a crowd region
    target = {"boxes": torch.tensor([[4.0, 4.0, 40.0, 60.0], [10.0, 10.0, 30.0, 30.0]]), "keypoints": kp,
              "iscrowd": torch.tensor([1, 0])}  # second instance: no labelled point
    losses = model([image], [target])
    assert float(losses["loss_global"]) == 0.0 and float(losses["loss_refine"]) == 0.0
    sum(losses.values()).backward()  # still connected to the graph
    assert all(p.grad is not None for p in model.parameters())


def test_batch_norm_is_trainable():
    model = build_cpn(CPNConfig.cpu("coco", **TINY))
    norms = [m for m in model.modules() if "Norm" in type(m).__name__]
    assert norms and all(type(m) is nn.BatchNorm2d for m in norms)
    assert all(p.requires_grad for m in norms for p in m.parameters())


def test_jitter_is_reproducible_from_the_state_dict():
    torch.manual_seed(0)
    model = build_cpn(CPNConfig.cpu("fashionai", **TINY)).train()
    images, targets = _batch("fashionai")
    first = model(images, targets)["loss_global"]
    twin = copy.deepcopy(model)  # step = 1, like a run resumed from a checkpoint taken after one step
    second = model(images, targets)["loss_global"]
    resumed = build_cpn(CPNConfig.cpu("fashionai", **TINY)).train()
    resumed.load_state_dict(twin.state_dict())
    assert int(resumed.step) == 1
    # BN statistics are batch statistics in train mode, so equal weights + equal step give equal jitter and loss
    assert float(resumed(images, targets)["loss_global"]) == float(second)
    assert float(second) != float(first)  # the next step draws another jitter


def test_jitter_does_not_depend_on_how_the_batch_is_split():
    config = CPNConfig.cpu("fashionai", **TINY)
    model = build_cpn(config).train()
    images, targets = _batch("fashionai", 2)
    seen = []
    original = model.forward_heatmaps

    def spy(crops):
        seen.append(crops.detach().clone())
        return original(crops)

    model.forward_heatmaps = spy
    model(images, targets)  # both images at step 0
    model.step.zero_()
    model(images[1:], targets[1:])  # the second image alone (another process's shard), step 0
    assert torch.allclose(seen[0][1], seen[1][0])


def test_one_optimisation_step_lowers_the_loss_on_a_fixed_batch():
    torch.manual_seed(0)
    model = build_cpn(CPNConfig.cpu("fashionai", jitter_shift=0.0, jitter_scale=0.0, **TINY)).train()
    images, targets = _batch("fashionai", 4)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    before = sum(model(images, targets).values())
    before.backward()
    optimizer.step()
    after = sum(model(images, targets).values())
    assert float(after) < 0.9 * float(before)


def test_eval_keypoints_land_where_the_heatmaps_peak():
    # plant RefineNet heat maps with a known peak and check the image coordinates
    model = build_cpn(CPNConfig.cpu("coco", **TINY)).eval()
    hm_h, hm_w = model.config.heatmap_size  # 24 x 16 for 96 x 64 crops
    point = torch.tensor([[[10.5, 6.5]]]).expand(1, 17, 2)  # heat-map pixels

    def planted(crops):
        maps = gaussian_heatmaps(point.expand(crops.shape[0], 17, 2), (hm_h, hm_w), 1.0)
        return [maps] * 4, maps

    model.forward_heatmaps = planted
    box = torch.tensor([[20.0, 10.0, 52.0, 58.0]])  # 32 x 48: aspect 64 / 96 already, so crop = box * 1.25
    out = model([torch.zeros(3, 80, 80)], [{"boxes": box}])[0]
    rect = aspect_boxes(box, (96, 64), scale=1.25, min_side=1.0)[0]  # 40 x 60 around (36, 34)
    assert torch.allclose(rect, torch.tensor([16.0, 4.0, 56.0, 64.0]))
    # heat-map (10.5, 6.5) -> crop (42, 26) -> image (16 + 42 * 40 / 64, 4 + 26 * 60 / 96)
    expected = torch.tensor([42.25, 20.25])
    assert torch.allclose(out["keypoints"][0, :, :2], expected.expand(17, 2), atol=1e-3)
    assert torch.allclose(out["keypoints"][0, :, 2], torch.ones(17))
    # the same map as the library's crop geometry (CPN's own formula rounds differently only in the last bit)
    crop_xy = (point * model.config.heatmap_stride).expand(1, 17, 2)
    torch.testing.assert_close(out["keypoints"][..., :2], points_from_crop(crop_xy, rect[None], (96, 64)))


def test_eval_needs_boxes():
    model = build_cpn(CPNConfig.cpu("coco", **TINY)).eval()
    with pytest.raises(ValueError, match="CPN needs targets"):
        model([torch.zeros(3, 32, 32)])
