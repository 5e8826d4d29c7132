"""Tests of fashion_lib.experiments.table2: the rows and their networks, finished networks loaded, the metric
adapters against the metrics called by hand, and the beta ablation's garments."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from attribute_toys import task_case, tiny

from fashion_lib.attributes import FASHIONAI_TASKS, LENGTH_TASKS, M, N, Y
from fashion_lib.engine import train
from fashion_lib.experiments.attribute_data import attribute_data, crop_keypoints
from fashion_lib.experiments.attribute_training import learning_curves
from fashion_lib.experiments.table2 import (
    BASELINE,
    INGREDIENTS,
    JOINT,
    JOINT_EQUAL_STEPS,
    MAYBE,
    MAYBE_ALONE,
    FashionAIMethod,
    Table2Row,
    TaskPredictions,
    accuracy_half_width,
    accuracy_metric,
    chance_accuracy,
    chance_by_task,
    fashionai_arrays,
    fashionai_configs,
    fashionai_predictions,
    ingredients_sentence,
    map_metric,
    maybe_statistics,
    monitor_rows,
    table2_frame,
    table2_methods,
    table2_scores,
    task_garments,
)
from fashion_lib.intervals import bootstrap_counts, crossed_bootstrap_ci
from fashion_lib.metrics import attribute_accuracy, fashionai_attribute_map


def test_ingredients_sentence_reports_both_rows_or_says_the_profile_skipped_them():
    from fashion_lib.intervals import CI

    both = ingredients_sentence({"maybe_alone": CI(0.01, -0.02, 0.04), "nkd_alone": CI(0.03, 0.01, 0.05)})
    assert "+1.00 points (cannot decide that it helps)" in both and "+3.00 (supports)" in both
    assert "does not train the ingredients alone" in ingredients_sentence({"maybe_alone": None})
    assert list(table2_methods(ingredients=False)) == [m for m in table2_methods() if m not in INGREDIENTS]


def test_monitor_rows_spread_a_fixed_number_per_task_over_each_tasks_rows():
    tasks = ["a", "b"] * 6 + ["c"]  # a: rows 0, 2, ..., 10; b: 1, 3, ..., 11; c: 12
    # the first and last of a's and b's rows; c has fewer than 2 and keeps its one
    assert monitor_rows(tasks, 2) == [0, 1, 10, 11, 12]
    assert monitor_rows(tasks, 0) == list(range(13))


def test_input_size_overrides_the_profiles_input_of_every_fashionai_network():
    joint = table2_methods()[JOINT]
    assert {c.net.input_size for c in fashionai_configs(tiny(), joint).values()} == {80}  # the cpu profile's
    assert {c.net.input_size for c in fashionai_configs(tiny(input_size=48), joint).values()} == {48}
    per_task = fashionai_configs(tiny(input_size=48), table2_methods()[BASELINE])
    assert len(per_task) == 8 and {c.net.input_size for c in per_task.values()} == {48}


def test_bad_fashionai_method_and_metric_arguments_are_named():
    with pytest.raises(ValueError, match="keypoints must be one of"):
        FashionAIMethod(joint=True, beta=0.1, keypoints="truth")
    with pytest.raises(ValueError, match="equal_steps applies to joint networks only"):
        FashionAIMethod(joint=False, beta=None, equal_steps=True)
    with pytest.raises(ValueError, match="task must be None or one of"):
        accuracy_metric("hat_labels")
    with pytest.raises(ValueError, match="tasks must be a non-empty list of FashionAI tasks"):
        task_garments(tiny().world, 4, 0, "train", ["hat_labels"])


@pytest.mark.slow
def test_training_a_method_twice_loads_the_finished_networks(runs, monkeypatch):
    setup = tiny()
    data = attribute_data(setup)
    crops = crop_keypoints(setup, data)
    method = table2_methods()[MAYBE]  # the joint length and design networks
    results = []
    real_train = train

    def spy(*args, **kwargs):
        results.append(real_train(*args, **kwargs))
        return results[-1]

    monkeypatch.setattr("fashion_lib.experiments.attribute_training.train", spy)
    first = fashionai_predictions(setup, method, 0, data, crops)
    assert [r.resumed_from for r in results] == [None, None]  # two fresh runs
    assert len(first) == 8 and first.tasks == data.val.tasks
    # each image's probabilities are its own task's softmax, zeros beyond the task's classes
    sizes = torch.tensor([len(FASHIONAI_TASKS[t]) for t in first.tasks])
    torch.testing.assert_close(first.probs.sum(1), torch.ones(8))
    assert all(float(first.probs[i, c:].abs().sum()) == 0 for i, c in enumerate(sizes.tolist()))
    curves = learning_curves({"joint": [first]})  # one pass each: a monitored row per network
    assert sorted(curves["network"]) == ["design", "length"] and curves["epoch"].tolist() == [1, 1]
    assert curves["val_accuracy"].between(0, 1).all() and np.isfinite(curves["train_loss"]).all()
    second = fashionai_predictions(setup, method, 0, data, crops)
    assert [r.resumed_from for r in results[2:]] == [r.step for r in results[2:]]  # finished runs, loaded
    assert all(math.isnan(r.images_per_s) for r in results[2:])
    torch.testing.assert_close(second.probs, first.probs)
    # 8 images of 4 tasks per joint network, batch 4: 2 steps a pass; at a per-task network's steps (2 images), 1
    assert [r.step for r in results[:2]] == [2, 2]
    fashionai_predictions(setup, table2_methods()[JOINT_EQUAL_STEPS], 0, data, crops)
    assert [r.step for r in results[4:]] == [1, 1]
    with pytest.raises(ValueError, match="needs setup.dataset 'fashionai'"):
        fashionai_predictions(tiny(dataset="deepfashion"), method, 0, data, crops)


def test_task_garments_and_maybe_statistics():
    world = tiny().world
    items = task_garments(world, 9, 0, "train", LENGTH_TASKS)
    tasks = [items[i][1]["task"] for i in range(9)]
    assert tasks == [LENGTH_TASKS[i % 4] for i in range(9)]
    image, target = items[5]
    assert image.shape == (3, 64, 64) and target["keypoints"].shape == (1, 24, 3)
    assert target["labels"].shape == (len(FASHIONAI_TASKS[target["task"]]),)
    torch.testing.assert_close(items[5][1]["labels"], target["labels"])  # deterministic per index
    # hand-built labels: 2 of 4 items have an m, the most m labels of one item is 2
    fake = [(None, {"labels": torch.tensor(c)}) for c in ([Y, N, N], [M, Y, N], [N, N, Y], [M, Y, M])]
    assert maybe_statistics(fake) == (0.5, 2)


def test_fashionai_adapters_equal_the_metrics_called_per_task():
    pred = task_case()
    (args,) = fashionai_arrays([pred])
    # by hand: collar 1 of 2 right, pant 2 of 2, neckline 0 of 1
    assert accuracy_metric("collar_design_labels")(*args) == 0.5
    assert accuracy_metric("pant_length_labels")(*args) == 1.0
    assert accuracy_metric()(*args) == pytest.approx((0.5 + 1.0 + 0.0) / 3)
    assert math.isnan(accuracy_metric("coat_length_labels")(*args))
    by_hand = {"collar_design_labels": [0, 1], "pant_length_labels": [2, 3], "neckline_design_labels": [4]}
    P = {t: pred.probs[r, : len(FASHIONAI_TASKS[t])] for t, r in by_hand.items()}
    L = {t: pred.labels[r, : len(FASHIONAI_TASKS[t])] for t, r in by_hand.items()}
    reference = fashionai_attribute_map(P, L)
    assert map_metric()(*args) == reference.map
    assert map_metric("antgo")(*args) == fashionai_attribute_map(P, L, variant="antgo").map
    for task in by_hand:
        assert accuracy_metric(task)(*args) == attribute_accuracy(P[task], L[task])
    # resampled instances (the bootstrap's view): image 3 twice, image 1 dropped
    idx = np.array([0, 3, 3, 2, 4])
    sub = [a[torch.from_numpy(idx)] if isinstance(a, torch.Tensor) else a[idx] for a in args]
    assert accuracy_metric("collar_design_labels")(*sub) == 1.0
    chance = chance_accuracy(pred)
    # classes occurring as y: collar {1}, pant {5, 1}, neckline {9}; majority shares 1, 1/2, 1
    assert chance == pytest.approx({"uniform": (1 + 0.5 + 1) / 3, "majority": (1 + 0.5 + 1) / 3})
    # collar: p = 1/2 on 2 images; pant and neckline: p = 1 and 0, no spread from the images
    assert accuracy_half_width([pred, pred]) == pytest.approx(
        {"collar_design_labels": 1.96 * math.sqrt(0.25 / 2), "pant_length_labels": 0.0, "neckline_design_labels": 0.0})
    with pytest.raises(ValueError, match="predictions_per_seed is empty"):
        accuracy_half_width([])


def test_weighted_table2_metrics_equal_a_loop_over_resamples():
    pred = task_case()
    (args,) = fashionai_arrays([pred])
    g = torch.Generator().manual_seed(3)
    draws = torch.randint(0, 5, (40, 5), generator=g)
    draws[0] = torch.tensor([0, 1, 0, 1, 0])  # collar only: the other tasks are absent from this resample
    weights = bootstrap_counts(draws, 5)
    for metric in (map_metric(), accuracy_metric(), accuracy_metric("collar_design_labels"),
                   accuracy_metric("coat_length_labels")):
        fast = metric(*args, weights=weights)
        for r in range(40):
            idx = draws[r].numpy()
            ref = metric(*[a[torch.from_numpy(idx)] if isinstance(a, torch.Tensor) else a[idx] for a in args])
            assert (math.isnan(ref) and math.isnan(fast[r])) or fast[r].item() == pytest.approx(ref, rel=1e-6)
    with pytest.raises(ValueError, match="'wangxin' variant only"):
        map_metric("antgo")(*args, weights=weights)
    # the interval: the same plan and values through the weighted path
    per_seed = fashionai_arrays([pred, pred])
    loop = crossed_bootstrap_ci(map_metric(), per_seed, n_boot=30, generator=torch.Generator().manual_seed(1))
    fast = crossed_bootstrap_ci(map_metric(), per_seed, n_boot=30, generator=torch.Generator().manual_seed(1),
                                weighted=True)
    assert fast.estimate == loop.estimate
    assert fast.low == pytest.approx(loop.low, abs=1e-12) and fast.high == pytest.approx(loop.high, abs=1e-12)


def test_chance_by_task_counts_the_classes_that_occur_and_the_majority():
    labels = torch.full((5, 10), N, dtype=torch.long)
    for row, y in enumerate([0, 0, 1, 2, 2]):  # collar rows 0-2 (y classes 0, 0, 1), skirt rows 3-4 (2, 2)
        labels[row, y] = Y
    tasks = ("collar_design_labels",) * 3 + ("skirt_length_labels",) * 2
    predictions = TaskPredictions(tasks, torch.zeros(5, 10), labels)
    chance = chance_by_task(predictions)
    assert chance["collar_design_labels"] == pytest.approx({"uniform": 1 / 2, "majority": 2 / 3})
    assert chance["skirt_length_labels"] == pytest.approx({"uniform": 1.0, "majority": 1.0})
    assert chance_accuracy(predictions) == pytest.approx({"uniform": 0.75, "majority": 5 / 6})


def test_table2_scores_are_keyed_by_row_and_the_page_s_table_prints_labels():
    pred = task_case()
    (args,) = fashionai_arrays([pred])
    ours = table2_scores({BASELINE: [pred, pred], MAYBE_ALONE: [pred]})
    assert list(ours.index) == [BASELINE, MAYBE_ALONE] and ours.loc["baseline", "Collar"] == 50.0
    assert ours.loc[BASELINE, "mAP"] == round(100 * map_metric()(*args), 2)
    assert ours.loc[BASELINE, "mean accuracy"] == round(100 * accuracy_metric()(*args), 2)
    table = table2_frame({BASELINE: [pred], MAYBE_ALONE: [pred]}, scores=ours)
    # the paper's row follows each of ours it reports; the ingredient alone has none
    assert list(table.index) == ["Baseline: a network per task (ours)", "Baseline: a network per task (paper)",
                                 "baseline + maybe loss only (ours)"]
    assert table.loc["Baseline: a network per task (paper)", "mAP"] == 92.52
    assert math.isnan(table.loc["Baseline: a network per task (paper)", "mean accuracy"])
    assert table.loc["baseline + maybe loss only (ours)", "Pant"] == ours.loc[MAYBE_ALONE, "Pant"] == 100.0
    assert list(table2_frame({BASELINE: [pred]}, paper=False).index) == ["Baseline: a network per task (ours)"]
    # every row has its own key and its own words
    assert len({r.value for r in Table2Row}) == len({r.label for r in Table2Row}) == len(Table2Row)
