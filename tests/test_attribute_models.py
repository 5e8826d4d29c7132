"""Tests of fashion_lib.models.attributes: the multi-task network, the recognizers and the configurations."""

from __future__ import annotations

import dataclasses
import math

import pytest
import timm
import torch
import torch.nn.functional as F

from fashion_lib.attributes import DESIGN_TASKS, FASHIONAI_TASKS, LENGTH_TASKS, M, N, Y
from fashion_lib.losses import maybe_weighted_ce
from fashion_lib.metrics import attribute_accuracy
from fashion_lib.models.attributes import (
    PROFILES,
    AttributeNetConfig,
    AttributeProfile,
    DeepFashionRecognizer,
    FashionAIRecognizer,
    FashionAIRecognizerConfig,
    MultiTaskAttributeNet,
    build_recognizer,
    deepfashion_config,
    get_profile,
    joint_configs,
    per_task_configs,
    task_crop,
)
from fashion_lib.synthetic import SyntheticGarments, WorldConfig

TINY = "resnet10t"  # the cpu profile's trunk; 32 px inputs keep these tests fast
TINY_PROFILE = AttributeProfile(TINY, 32, TINY, 32)


def codes(task: str, y: int, m: tuple[int, ...] = ()) -> torch.Tensor:
    """(C,) label codes of ``task`` with ``y`` at class ``y`` and ``m`` at the classes in ``m``."""
    c = torch.full((len(FASHIONAI_TASKS[task]),), N)
    c[list(m)] = M
    c[y] = Y
    return c


def images(b: int, size: int = 40, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(3, size, size, generator=g) for _ in range(b)]


# ------------------------------------------------------------------------------------------------ the network


@pytest.mark.parametrize("backbone", ["resnet10t", "mobilenetv3_small_100"])
def test_network_output_shapes_no_nan_and_gradient_on_every_parameter(backbone):
    torch.manual_seed(0)  # parameter init only (timm draws from the global RNG)
    tasks = (("a", 3), ("b", 7), ("c", 1))
    net = MultiTaskAttributeNet(AttributeNetConfig(backbone, tasks, input_size=32, drop_rate=0.1))
    x = torch.randn(4, 3, 32, 32)
    out = net(x)
    assert list(out) == ["a", "b", "c"] and net.tasks == ("a", "b", "c")
    for name, c in tasks:
        assert out[name].shape == (4, c)
        assert torch.isfinite(out[name]).all()
    sum(o.sum() for o in out.values()).backward()
    no_grad = [n for n, p in net.named_parameters() if p.grad is None]
    assert not no_grad, f"parameters without gradient: {no_grad[:5]}"
    # forward = forward_head(forward_features)
    net.eval()
    feats = net.forward_features(x)
    assert feats.ndim == 4 and feats.shape[0] == 4
    torch.testing.assert_close(net.forward_head(feats)["b"], net(x)["b"])


def test_network_loads_local_backbone_weights(tmp_path):
    torch.manual_seed(0)
    donor = timm.create_model(TINY, pretrained=False, num_classes=10)  # with a classifier, as downloaded weights
    path = tmp_path / "w.pt"
    torch.save(donor.state_dict(), path)
    net = MultiTaskAttributeNet(AttributeNetConfig(TINY, (("a", 2),), 32, weights=str(path)))
    for name, p in net.backbone.state_dict().items():
        torch.testing.assert_close(p, donor.state_dict()[name])
    with pytest.raises(FileNotFoundError, match="never downloaded"):
        MultiTaskAttributeNet(AttributeNetConfig(TINY, (("a", 2),), 32, weights=str(tmp_path / "none.pt")))
    torch.save({"conv1.0.weight": torch.zeros(1)}, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match=r"bad.pt: does not fit the backbone: size mismatch for conv1.0.weight"):
        MultiTaskAttributeNet(AttributeNetConfig(TINY, (("a", 2),), 32, weights=str(tmp_path / "bad.pt")))
    torch.save({"fc.weight": torch.zeros(10, 512)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="other.pt: .* backbone tensors missing"):
        MultiTaskAttributeNet(AttributeNetConfig(TINY, (("a", 2),), 32, weights=str(tmp_path / "other.pt")))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"backbone": "no_such_net"}, r"backbone 'no_such_net' is not a timm model"),
        ({"tasks": ()}, "tasks must be non-empty"),
        ({"tasks": (("a", 2), ("a", 3))}, "unique names"),
        ({"tasks": (("a", 0),)}, "num_classes must be >= 1"),
        ({"input_size": 8}, "input_size must be an int >= 16"),
        ({"drop_rate": 1.0}, r"drop_rate must be in \[0, 1\)"),
    ],
)
def test_net_config_rejects_bad_values(kwargs, match):
    args = {"backbone": TINY, "tasks": (("a", 2),), "input_size": 32, **kwargs}
    with pytest.raises(ValueError, match=match):
        AttributeNetConfig(**args)


# ------------------------------------------------------------------------------------------------ configurations


def test_per_task_configs_one_head_each_on_its_crop():
    configs = per_task_configs(TINY_PROFILE)
    assert set(configs) == set(FASHIONAI_TASKS)
    for task, cfg in configs.items():
        assert cfg.net.tasks == ((task, len(FASHIONAI_TASKS[task])),)
        assert cfg.crop == ("neck" if task in DESIGN_TASKS else "normal") == task_crop(task)
        assert cfg.beta == 0.1
    model = build_recognizer(configs["collar_design_labels"])
    assert list(model.net.heads) == ["collar_design_labels"]
    assert model.net.heads["collar_design_labels"].out_features == 5


def test_joint_configs_two_networks_of_four_heads():
    configs = joint_configs(TINY_PROFILE, beta=None)
    assert set(configs) == {"length", "design"}
    assert configs["length"].crop == "normal" and configs["design"].crop == "neck"
    for name, tasks in (("length", LENGTH_TASKS), ("design", DESIGN_TASKS)):
        model = build_recognizer(configs[name])
        assert isinstance(model, FashionAIRecognizer) and model.config.beta is None
        assert tuple(model.net.heads) == tasks
        assert [h.out_features for h in model.net.heads.values()] == [len(FASHIONAI_TASKS[t]) for t in tasks]


def test_profiles_name_the_papers_backbones():
    gpu = get_profile("gpu")
    assert (gpu.fashionai_backbone, gpu.fashionai_size) == ("nasnetalarge", 399)
    assert (gpu.deepfashion_backbone, gpu.deepfashion_size) == ("inception_resnet_v2", 299)
    for p in PROFILES.values():
        assert timm.is_model(p.fashionai_backbone) and timm.is_model(p.deepfashion_backbone)
    assert joint_configs("gpu")["design"].net.input_size == 399
    with pytest.raises(ValueError, match=r"profile must be one of \['cpu', 'gpu'\]"):
        get_profile("tpu")


@pytest.mark.slow
def test_gpu_profile_backbones_build_and_run():
    torch.manual_seed(0)
    for cfg in (joint_configs("gpu")["length"].net, deepfashion_config("gpu", num_attributes=20).net):
        net = MultiTaskAttributeNet(cfg).eval()
        with torch.no_grad():
            out = net(torch.randn(1, 3, 96, 96))  # far below the paper's sizes: a CPU smoke run
        assert [o.shape for o in out.values()] == [(1, c) for _, c in cfg.tasks]
        assert all(torch.isfinite(o).all() for o in out.values())


def test_recognizer_configs_reject_bad_values():
    net = AttributeNetConfig(TINY, (("sleeve_length_labels", 9),), 32)
    with pytest.raises(ValueError, match="crop must be one of"):
        FashionAIRecognizerConfig(net, crop="head")
    with pytest.raises(ValueError, match="sleeve_length_labels has 9 classes, got 4"):
        FashionAIRecognizerConfig(AttributeNetConfig(TINY, (("sleeve_length_labels", 4),), 32))
    with pytest.raises(ValueError, match="'colour' is not a FashionAI task"):
        FashionAIRecognizerConfig(AttributeNetConfig(TINY, (("colour", 4),), 32))
    with pytest.raises(ValueError, match="beta must be a finite number >= 0 or None"):
        FashionAIRecognizerConfig(net, beta=-1.0)
    with pytest.raises(ValueError, match="DeepFashion has no neck points"):
        deepfashion_config(TINY_PROFILE, crop="neck")


# ------------------------------------------------------------------------------------------------ FashionAI recognizer


def test_train_mode_masks_tasks_without_labels_and_matches_the_loss():
    torch.manual_seed(0)
    model = build_recognizer(joint_configs(TINY_PROFILE, beta=0.1)["length"])
    model.train()
    targets = [
        {"attributes": {"sleeve_length_labels": codes("sleeve_length_labels", 3, (4,)),
                        "coat_length_labels": codes("coat_length_labels", 2)}},  # synthetic: several tasks
        {"task": "sleeve_length_labels", "labels": codes("sleeve_length_labels", 7)},  # a real FashionAI row
        {"task": "skirt_length_labels", "labels": codes("skirt_length_labels", 1, (2,))},
        {},  # no label at all
    ]
    ims = images(4)
    torch.manual_seed(1)  # the training crops' flips
    losses = model(ims, targets)
    assert set(losses) == {f"loss_{t}" for t in LENGTH_TASKS}
    # recompute every term from the network's logits (BN in train mode: same batch, same statistics)
    _, boxes = model.crop_inputs(ims, targets)
    assert boxes.fallback.all()  # no key points: whole images
    torch.manual_seed(1)
    logits = model.net(model.train_inputs(ims, targets))
    sleeve = torch.stack([codes("sleeve_length_labels", 3, (4,)), codes("sleeve_length_labels", 7)])
    torch.testing.assert_close(losses["loss_sleeve_length_labels"],
                               maybe_weighted_ce(logits["sleeve_length_labels"][[0, 1]], sleeve, 0.1))
    torch.testing.assert_close(losses["loss_skirt_length_labels"], maybe_weighted_ce(
        logits["skirt_length_labels"][[2]], codes("skirt_length_labels", 1, (2,))[None], 0.1))
    assert losses["loss_pant_length_labels"].item() == 0.0  # no sample carries it
    sum(losses.values()).backward()
    head = model.net.heads["pant_length_labels"]
    assert head.weight.grad is not None and (head.weight.grad == 0).all()  # in the graph, zero gradient
    assert (model.net.heads["sleeve_length_labels"].weight.grad != 0).any()


def test_training_crops_are_mirrored_with_the_flip_chance():
    cfg = per_task_configs(TINY_PROFILE, tasks=("sleeve_length_labels",))["sleeve_length_labels"]
    targets = [{"task": "sleeve_length_labels", "labels": codes("sleeve_length_labels", 2)}] * 3
    ims = images(3)
    for flip, expect in ((0.0, lambda x: x), (1.0, lambda x: x.flip(-1))):
        model = build_recognizer(dataclasses.replace(cfg, flip=flip))
        torch.testing.assert_close(model.train_inputs(ims, targets), expect(model.crop_inputs(ims, targets)[0]))
    model = build_recognizer(dataclasses.replace(cfg, flip=0.5))  # some crops of 64 mirrored, some not
    torch.manual_seed(0)
    many = [targets[0]] * 64
    x, plain = model.train_inputs(images(64), many), model.crop_inputs(images(64), many)[0]
    mirrored = (x - plain).flatten(1).abs().amax(1) > 0
    assert 10 < int(mirrored.sum()) < 54
    with pytest.raises(ValueError, match=r"flip must be a chance in \[0, 1\], got 2"):
        dataclasses.replace(cfg, flip=2)


def test_plain_ce_config_uses_the_y_class_only():
    torch.manual_seed(0)
    cfg = per_task_configs(TINY_PROFILE, beta=None, tasks=("sleeve_length_labels",))["sleeve_length_labels"]
    model = build_recognizer(cfg).train()
    targets = [{"task": "sleeve_length_labels", "labels": codes("sleeve_length_labels", y, (y + 1,))} for y in (2, 5)]
    ims = images(2)
    torch.manual_seed(1)
    loss = model(ims, targets)["loss_sleeve_length_labels"]
    torch.manual_seed(1)
    logits = model.net(model.train_inputs(ims, targets))["sleeve_length_labels"]
    torch.testing.assert_close(loss, F.cross_entropy(logits, torch.tensor([2, 5])))


def test_recognizer_crops_from_target_keypoints():
    # garments framed with room around them: one that fills the frame clips both crops to the whole image
    ds = SyntheticGarments(WorldConfig(image_size=64, scale=(0.5, 0.7)), 6, seed=0,
                           categories=["blouse", "outwear", "dress"])
    items = [ds[i] for i in range(len(ds))]
    ims, targets = [im for im, _ in items], [t for _, t in items]
    normal = build_recognizer(joint_configs(TINY_PROFILE)["length"])
    neck = build_recognizer(joint_configs(TINY_PROFILE)["design"])
    _, nb = normal.crop_inputs(ims, targets)
    _, kb = neck.crop_inputs(ims, targets)
    assert not nb.fallback.any() and not kb.fallback.any()
    area = lambda b: (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])  # noqa: E731
    assert (area(kb.boxes) < area(nb.boxes)).all()  # the Neck-crop is the smaller box
    kp = torch.cat([t["keypoints"] for t in targets])
    vis = kp[..., 2] > 0
    x, y = kp[..., 0], kp[..., 1]
    b = nb.boxes[:, None]
    assert ((x >= b[..., 0]) & (x <= b[..., 2]) & (y >= b[..., 1]) & (y <= b[..., 3]))[vis].all()


def test_eval_mode_returns_probabilities_per_image():
    torch.manual_seed(0)
    model = build_recognizer(joint_configs(TINY_PROFILE)["design"]).eval()
    with torch.no_grad():
        out = model(images(3))
        batched = model.predict(images(3))
    assert len(out) == 3
    for i, pred in enumerate(out):
        assert tuple(pred["attributes"]) == DESIGN_TASKS
        # no key points: the Neck-crop falls back to the top 40 % of the whole 40 x 40 image, [0, 0, 40, 16],
        # squared about its centre
        assert pred["crop_box"].tolist() == [0.0, -12.0, 40.0, 28.0]
        for task, p in pred["attributes"].items():
            assert p.shape == (len(FASHIONAI_TASKS[task]),)
            assert p.sum().item() == pytest.approx(1.0, abs=1e-5)
            torch.testing.assert_close(p, batched[task][i])


def test_train_mode_rejects_bad_targets():
    model = build_recognizer(per_task_configs(TINY_PROFILE, tasks=("pant_length_labels",))["pant_length_labels"])
    model.train()
    with pytest.raises(ValueError, match=r"targets\[0\]: labels of pant_length_labels must have shape \(6,\)"):
        model(images(1), [{"task": "pant_length_labels", "labels": torch.zeros(5, dtype=torch.long)}])
    with pytest.raises(ValueError, match="targets are required in train mode"):
        model(images(1))
    with pytest.raises(ValueError, match="got 2 images and 1 targets"):
        model(images(2), [{}])
    with pytest.raises(ValueError, match=r"keypoints'\] has 8 points, expected 24"):
        model(images(1), [{"keypoints": torch.zeros(1, 8, 3)}])


# ------------------------------------------------------------------------------------------------ DeepFashion


def test_deepfashion_recognizer_losses_and_scores():
    torch.manual_seed(0)
    model = build_recognizer(deepfashion_config(TINY_PROFILE, num_categories=4, num_attributes=6,
                                                attribute_weight=0.5))
    assert isinstance(model, DeepFashionRecognizer)
    model.train()
    attrs = torch.tensor([[1, 0, 0, 1, 0, 0], [0, 0, 1, 0, 0, 0], [0, 1, 0, 0, 0, 1]])
    kp = torch.tensor([[[5.0, 5.0, 2.0], [30.0, 35.0, 2.0]]])
    cats = (1, 4, 2)
    targets = [{"labels": torch.tensor([c]), "attributes": a, "keypoints": kp}
               for c, a in zip(cats, attrs, strict=True)]
    ims = images(3)
    torch.manual_seed(1)
    losses = model(ims, targets)
    torch.manual_seed(1)
    out = model.net(model.train_inputs(ims, targets))
    torch.testing.assert_close(losses["loss_category"], F.cross_entropy(out["category"], torch.tensor([0, 3, 1])))
    torch.testing.assert_close(losses["loss_attributes"],
                               0.5 * F.binary_cross_entropy_with_logits(out["attributes"], attrs.float()))
    model.eval()
    scores = model.predict(ims, targets)
    assert scores["category"].shape == (3, 4) and scores["attributes"].shape == (3, 6)
    torch.testing.assert_close(scores["category"].sum(1), torch.ones(3))
    assert ((scores["attributes"] > 0) & (scores["attributes"] < 1)).all()
    model.train()
    bad = [dict(t, labels=torch.tensor([0])) for t in targets]
    with pytest.raises(ValueError, match=r"1-based category ids in \[1, 4\]"):
        model(ims, bad)
    bad = [dict(t, attributes=torch.full((6,), -1)) for t in targets]
    with pytest.raises(ValueError, match="attributes must be 0 or 1"):
        model(ims, bad)


def test_deepfashion_head_weights_train_one_head_alone():
    """category_weight 0 (attribute_weight 0) leaves the category (attribute) head without gradient."""
    kp = torch.tensor([[[5.0, 5.0, 2.0], [30.0, 35.0, 2.0]]])
    targets = [{"labels": torch.tensor([c]), "attributes": torch.tensor([1, 0, 0, 1, 0, 0]), "keypoints": kp}
               for c in (1, 3)]
    for weights, silent in (({"category_weight": 0.0}, "category"), ({"attribute_weight": 0.0}, "attributes")):
        torch.manual_seed(0)
        model = build_recognizer(deepfashion_config(TINY_PROFILE, num_categories=4, num_attributes=6, **weights))
        model.train()
        losses = model(images(2), targets)
        assert float(losses[f"loss_{silent}"]) == 0.0
        sum(losses.values()).backward()
        heads = model.net.heads
        assert float(heads[silent].weight.grad.abs().sum()) == 0.0
        other = "attributes" if silent == "category" else "category"
        assert float(heads[other].weight.grad.abs().sum()) > 0.0
    with pytest.raises(ValueError, match="category_weight must be >= 0, got -1"):
        deepfashion_config(TINY_PROFILE, category_weight=-1.0)


# ------------------------------------------------------------------------------------------------ a short run


@pytest.mark.slow
def test_short_seeded_run_lowers_the_loss_and_beats_chance(tmp_path):
    """Trains the cpu profile's trunk through the engine on synthetic trousers (pant length, 5 drawn classes);
    50 steps of 16 at 64 px, about 30 s of CPU time."""
    from fashion_lib.data.transforms import collate
    from fashion_lib.engine import TrainConfig, train

    task = "pant_length_labels"
    world = WorldConfig(image_size=96)
    train_set = SyntheticGarments(world, 480, seed=0, categories=["trousers"])
    data = [train_set[i] for i in range(len(train_set))]  # rendered once, reused by every epoch
    val_set = SyntheticGarments(world, 160, seed=0, split="val", categories=["trousers"])
    vi, vt = collate([val_set[i] for i in range(len(val_set))])
    profile = AttributeProfile(PROFILES["cpu"].fashionai_backbone, 64, TINY, 64)
    torch.manual_seed(0)  # the fresh network's initialisation (timm draws it from the global RNG)
    model = build_recognizer(per_task_configs(profile, tasks=(task,))[task])

    def evaluate(m: FashionAIRecognizer) -> tuple[float, float]:
        m.eval()
        with torch.no_grad():
            z = m.net(m.crop_inputs(vi, vt)[0])[task]
        labels, has = m.task_labels(vt, task, z.device)
        assert has.all()
        return float(maybe_weighted_ce(z, labels, 0.1)), attribute_accuracy(z, labels)

    loss0, _ = evaluate(model)  # the engine seeds its own run
    config = TrainConfig(steps=50, batch_size=16, lr=3e-3, warmup_steps=10, seed=0, checkpoint_every=1000, log_every=25)
    result = train(model, data, config, tmp_path / "run", progress=False)
    loss1, acc1 = evaluate(result.model)
    classes = int((torch.stack([t["attributes"][task] for _, t in data]) == Y).sum(0).gt(0).sum())
    assert classes == 5  # the drawn classes; "Invisible" is never drawn
    print(f"val loss {loss0:.3f} -> {loss1:.3f}, accuracy {acc1:.3f} (chance {1 / classes:.3f})")
    assert loss1 < loss0 - 0.3  # measured: 1.81 -> 1.04
    assert acc1 > 2.0 / classes, f"accuracy {acc1:.3f} vs chance {1 / classes:.3f}"  # measured: 0.54 vs 0.2
    assert not math.isnan(result.losses["total"])
