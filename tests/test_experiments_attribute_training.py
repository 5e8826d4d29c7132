"""Tests of fashion_lib.experiments.attribute_training: the networks' training config, the input cache, learning
curves read from the runs, and early stopping (the rule, the held-out split, the best pass's weights kept)."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from attribute_toys import task_case, tiny

from fashion_lib.engine import train
from fashion_lib.experiments.attribute_data import GROUND_TRUTH, AttributeSetup
from fashion_lib.experiments.attribute_training import (
    InputCache,
    _DataKey,
    _holdout_scores,
    best_pass,
    holdout_split,
    learning_curves,
    stop_now,
    stopping_passes,
    train_config,
    train_network,
)
from fashion_lib.experiments.table2 import FashionAIMethod, task_garments


def test_amp_reaches_the_networks_training_config():
    assert train_config(tiny(), 0, 16).amp and not train_config(tiny(amp=False), 0, 16).amp
    assert train_config(tiny(), 0, 16).channels_last


class _CountingItems(torch.utils.data.Dataset):
    def __init__(self, n: int) -> None:
        self.reads = 0
        g = torch.Generator().manual_seed(0)
        self.images = torch.rand(n, 3, 48, 40, generator=g)
        self.keypoints = torch.cat([torch.rand(n, 24, 2, generator=g) * 36 + 2, torch.ones(n, 24, 1)], -1)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i):
        self.reads += 1
        return self.images[i], {"keypoints": self.keypoints[i][None], "labels": torch.tensor([i])}


def test_input_cache_crops_each_image_once_and_scores_like_predict():
    from fashion_lib.models.attributes import build_recognizer, per_task_configs

    configs = per_task_configs(AttributeSetup(input_size=32).networks(), beta=None)
    design, length = configs["collar_design_labels"], configs["skirt_length_labels"]
    assert design.crop != length.crop  # Neck-crop and Normal-crop: two kinds of input
    items = _CountingItems(6)
    cache = InputCache(items, batch_size=4)
    torch.manual_seed(0)
    model = build_recognizer(design).eval()
    x = cache(model, [0, 2, 4])
    assert x.shape == (3, 3, 32, 32) and items.reads == 3
    want, _ = model.crop_inputs(items.images[[0, 2, 4]], [{"keypoints": items.keypoints[i][None]} for i in (0, 2, 4)])
    torch.testing.assert_close(x, want)
    torch.testing.assert_close(cache(model, [4, 0]), want[[2, 0]])  # cached: no image read again
    assert items.reads == 3 and cache.labels[4].tolist() == [4]
    cache(build_recognizer(length).eval(), [0])  # another crop kind: its own inputs
    assert items.reads == 4
    torch.testing.assert_close(model.predict_inputs(x)["collar_design_labels"],
                               model.predict(items.images[[0, 2, 4]], [{"keypoints": items.keypoints[i][None]}
                                                                       for i in (0, 2, 4)])["collar_design_labels"])


def test_learning_curves_average_the_loss_of_each_pass_and_keep_the_monitor(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    # 2 passes of 2 steps: the monitor scored after steps 2 and 4
    (run / "metrics.csv").write_text("step,total,lr,val_accuracy\n1,1.0,0.1,\n2,2.0,0.1,0.25\n3,3.0,0.1,\n"
                                     "4,4.0,0.1,0.5\n")
    pred = dataclasses.replace(task_case(), runs=(("collar_design_labels", str(run)),))
    curves = learning_curves({"baseline": [pred, pred]})
    assert curves["epoch"].tolist() == [1, 2, 1, 2] and curves["seed"].tolist() == [0, 0, 1, 1]
    assert curves["train_loss"].tolist() == [1.5, 3.5, 1.5, 3.5]
    assert curves["val_accuracy"].tolist() == [0.25, 0.5, 0.25, 0.5]
    (run / "metrics.csv").write_text("step,total,lr\n1,1.0,0.1\n")
    with pytest.raises(ValueError, match="no val_ column"):
        learning_curves({"baseline": [pred]})
    with pytest.raises(FileNotFoundError, match="no metrics of the network 'x'"):
        learning_curves({"baseline": [dataclasses.replace(pred, runs=(("x", str(tmp_path / "none")),))]})


# ------------------------------------------------------------------------------------------------ early stopping


def test_stop_now_waits_patience_passes_without_improvement_and_best_pass_is_the_first_minimum():
    assert not stop_now([], 2) and not stop_now([1.0], 2)
    assert not stop_now([1.0, 0.9, 0.95], 2)  # one pass without improvement
    assert stop_now([1.0, 0.9, 0.95, 0.96], 2)  # two
    assert stop_now([1.0, 0.9, 0.95], 1)
    assert not stop_now([1.0, 0.9, 0.95, 0.8], 2)  # the last pass improved: the count starts again
    assert stop_now([1.0, 1.0, 1.0], 2)  # a tie is no improvement
    assert best_pass([1.0, 0.9, 0.95, 0.9]) == 2 and best_pass([3.0]) == 1
    # fed one pass at a time, the rule stops at pass 7 and keeps pass 5
    losses = [3.0, 2.0, 1.5, 1.6, 1.4, 1.45, 1.5, 1.2, 1.1]
    stopped = next(e for e in range(1, len(losses) + 1) if stop_now(losses[:e], 2))
    assert stopped == 7 and best_pass(losses[:stopped]) == 5
    with pytest.raises(ValueError, match="patience must be an integer >= 1, got 0"):
        stop_now([1.0], 0)
    with pytest.raises(ValueError, match="losses must be finite, got nan after pass 2"):
        best_pass([1.0, math.nan])
    with pytest.raises(ValueError, match="losses must be a non-empty sequence"):
        best_pass([])


def test_holdout_split_is_seeded_disjoint_and_sized():
    kept, held = holdout_split(20, 0.15, torch.Generator().manual_seed(3))
    assert len(held) == 3 and len(kept) == 17 and sorted(kept + held) == list(range(20))
    assert (kept, held) == holdout_split(20, 0.15, torch.Generator().manual_seed(3))
    assert held != holdout_split(20, 0.15, torch.Generator().manual_seed(4))[1]
    assert len(holdout_split(3, 0.01, torch.Generator())[1]) == 1  # at least one held out
    assert len(holdout_split(3, 0.99, torch.Generator())[0]) == 1  # and one kept
    with pytest.raises(ValueError, match="n must be >= 2"):
        holdout_split(1, 0.5, torch.Generator())
    with pytest.raises(ValueError, match="fraction must be in \\(0, 1\\), got 1.0"):
        holdout_split(10, 1.0, torch.Generator())
    with pytest.raises(ValueError, match="early_stop applies to per-task networks only"):
        FashionAIMethod(joint=True, beta=None, early_stop=True)
    with pytest.raises(ValueError, match="holdout_fraction must be a number in \\(0, 1\\), got 0"):
        tiny(holdout_fraction=0)
    with pytest.raises(ValueError, match="patience must be an integer >= 1, got 0"):
        tiny(patience=0)


def test_an_early_stopped_network_keeps_the_weights_of_its_best_held_out_pass(runs, monkeypatch):
    from fashion_lib.models.attributes import per_task_configs
    from fashion_lib.synthetic import WorldConfig

    task = "skirt_length_labels"
    # float32: this high learning rate (to overfit 24 images in a few passes) overflows a bf16 step's gradient
    setup = tiny(input_size=16, max_epochs=8, patience=1, lr=0.05, batch_size=8, amp=False)
    world = WorldConfig(image_size=64)
    items = task_garments(world, 24, 1, "train", (task,))
    holdout = task_garments(world, 8, 1, "holdout", (task,))
    config = per_task_configs(setup.networks())[task]
    key = _DataKey("test", GROUND_TRUTH, "test")
    results = []
    real_train = train
    monkeypatch.setattr("fashion_lib.experiments.attribute_training.train",
                        lambda *a, **k: results.append(real_train(*a, **k)) or results[-1])
    model, run_dir = train_network(setup, "attr-stop", config, 0, items, key, monitor=holdout, holdout=holdout)
    curve = learning_curves({"m": [dataclasses.replace(task_case(), runs=((task, str(run_dir)),))]})
    losses = curve["holdout_loss"].tolist()
    passes = len(losses)
    # it stopped where the rule says (or at the cap), and kept a pass before the last one
    assert results[0].step == passes * 3 and (passes == 8 or stop_now(losses, 1))
    assert not any(stop_now(losses[:e], 1) for e in range(1, passes))
    chosen = best_pass(losses)
    assert chosen < passes
    # the returned weights score the best pass's held-out loss, not the last pass's
    kept = _holdout_scores(model, holdout)["holdout_loss"]
    assert kept == pytest.approx(min(losses), rel=1e-5) and kept != pytest.approx(losses[-1], rel=1e-5)
    table = stopping_passes(curve)
    assert table[["passes", "chosen"]].values.tolist() == [[passes, chosen]]
    assert table["holdout_loss"].iloc[0] == min(losses)
    # a second call loads the stopped run and the same best weights
    again, same_dir = train_network(setup, "attr-stop", config, 0, items, key, monitor=holdout, holdout=holdout)
    assert same_dir == run_dir and results[1].resumed_from == results[0].step
    for name, value in model.state_dict().items():
        torch.testing.assert_close(again.state_dict()[name], value)
