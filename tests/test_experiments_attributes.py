"""Tests of fashion_lib.experiments.attributes: data written once and read back, crop key points cached, finished
networks loaded, the metric adapters against the metrics called by hand, and bad setups named."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from fashion_lib.attributes import FASHIONAI_TASKS, LENGTH_TASKS, M, N, Y
from fashion_lib.experiments import attributes as ax
from fashion_lib.experiments.keypoints import KeypointSetup
from fashion_lib.keypoints import FASHIONAI
from fashion_lib.metrics import attribute_accuracy, fashionai_attribute_map, topk_recall

# a detector trained for one step on 64-px garments: meaningless, but it runs the whole path in seconds
TINY_DETECTOR = KeypointSetup(image_size=64, train_steps=1, cpn_steps=1, batch_size=1)


def tiny(**overrides) -> ax.AttributeSetup:
    values = {"detector": TINY_DETECTOR, "train_images": 16, "val_images": 8, "epochs": 1, "batch_size": 4}
    return ax.AttributeSetup(**{**values, **overrides})


# ------------------------------------------------------------------------------------------------------ the setup


@pytest.mark.parametrize(("overrides", "error", "match"), [
    ({"dataset": "coco"}, ValueError, "dataset must be one of"),
    ({"epochs": 0}, ValueError, "epochs must be an integer >= 1, got 0"),
    ({"val_images": 2.5}, ValueError, "val_images must be an integer >= 1"),
    ({"lr": 0.0}, ValueError, "lr must be a finite number > 0"),
    ({"profile": "tpu"}, ValueError, "profile must be one of"),
    ({"eval_split": "train"}, ValueError, "eval_split must be 'val' or 'test'"),
    ({"detector_seed": -1}, ValueError, "detector_seed must be an integer >= 0"),
    ({"amp": "yes"}, ValueError, "amp must be true or false, got 'yes'"),
    ({"detect_amp": 1}, ValueError, "detect_amp must be true or false, got 1"),
    ({"monitor_per_task": -1}, ValueError, "monitor_per_task must be an integer >= 0, got -1"),
    ({"input_size": 8}, ValueError, "input_size must be 0 \\(the profile's\\) or an integer >= 16, got 8"),
    ({"detector": KeypointSetup(schema="coco")}, ValueError, "detector.schema must be 'fashionai'"),
    ({"data_root": "/no/such/folder"}, FileNotFoundError, "data_root '/no/such/folder' is not a folder"),
])
def test_bad_setup_values_are_named(overrides, error, match):
    with pytest.raises(error, match=match):
        ax.AttributeSetup(**overrides)


def test_amp_reaches_the_networks_training_config():
    assert ax.train_config(tiny(), 0, 16).amp and not ax.train_config(tiny(amp=False), 0, 16).amp
    assert ax.train_config(tiny(), 0, 16).channels_last


def test_top_detection_only_keeps_each_images_top_instance_and_leaves_the_detector_alone():
    from fashion_lib.experiments.keypoints import train_detectors
    from fashion_lib.models.detector import predict, top_instance

    torch.manual_seed(0)
    detector = train_detectors(TINY_DETECTOR, 0, progress=False).keypoint_rcnn
    detector.roi_heads.score_thresh = 0.0  # an untrained detector: keep every box, so images have several
    top = ax.top_detection_only(detector)
    assert top.roi_heads.detections_per_img == 1 and detector.roi_heads.detections_per_img > 1
    images = [torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(i)) for i in range(4)]
    every, first = predict(detector, images), predict(top, images)
    assert max(len(p["scores"]) for p in every) > 1 and all(len(p["scores"]) <= 1 for p in first)
    a, b = top_instance(every, 24), top_instance(first, 24)
    torch.testing.assert_close(a.keypoints, b.keypoints, equal_nan=True)
    assert a.labels.tolist() == b.labels.tolist()


def test_ingredients_sentence_reports_both_rows_or_says_the_profile_skipped_them():
    from fashion_lib.intervals import CI

    both = ax.ingredients_sentence({"maybe_alone": CI(0.01, -0.02, 0.04), "nkd_alone": CI(0.03, 0.01, 0.05)})
    assert "+1.00 points (cannot decide that it helps)" in both and "+3.00 (supports)" in both
    assert "does not train the ingredients alone" in ax.ingredients_sentence({"maybe_alone": None})
    assert list(ax.table2_methods(ingredients=False)) == [m for m in ax.table2_methods() if m not in ax.INGREDIENTS]


def test_monitor_rows_spread_a_fixed_number_per_task_over_each_tasks_rows():
    tasks = ["a", "b"] * 6 + ["c"]  # a: rows 0, 2, ..., 10; b: 1, 3, ..., 11; c: 12
    # the first and last of a's and b's rows; c has fewer than 2 and keeps its one
    assert ax.monitor_rows(tasks, 2) == [0, 1, 10, 11, 12]
    assert ax.monitor_rows(tasks, 0) == list(range(13))


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

    configs = per_task_configs(ax.AttributeSetup(input_size=32).networks(), beta=None)
    design, length = configs["collar_design_labels"], configs["skirt_length_labels"]
    assert design.crop != length.crop  # Neck-crop and Normal-crop: two kinds of input
    items = _CountingItems(6)
    cache = ax.InputCache(items, batch_size=4)
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


def test_real_fashionai_labels_without_val_file_hold_validation_rows_out_of_training(tmp_path):
    from fashion_lib.synthetic import WorldConfig, write_fashionai_attributes

    root = tmp_path / "base"
    write_fashionai_attributes(root, 16, 5, WorldConfig(image_size=64), val_fraction=0.25)  # label.csv: 12 rows
    with pytest.warns(UserWarning, match="set keypoint_data_root"):  # real attributes, synthetic crop detector
        setup = tiny(data_root=str(root), train_images=100, val_images=3)
    data = ax.attribute_data(setup)
    train, val = data.train.dataset, data.val.dataset
    assert train.dataset is val.dataset and train.dataset.csv.name == "label.csv"
    assert len(val) == 3 and len(train) == 12 - 3 and not set(train.indices) & set(val.indices)
    assert data.train.key != data.val.key
    # a separate validation file is read whole, with no rows held out
    separate = ax.attribute_data(dataclasses.replace(setup, val_file="Annotations/val.csv"))
    assert len(separate.train) == 12 and separate.val.dataset.dataset.csv.name == "val.csv"


def test_the_world_takes_the_detectors_image_size():
    assert tiny().world.image_size == 64
    assert ax.AttributeSetup().world.image_size == KeypointSetup().image_size
    assert tiny(epochs=3, batch_size=4).steps(10) == 3 * 3  # ceil(10 / 4) steps per pass


def test_input_size_overrides_the_profiles_input_of_every_network():
    joint = ax.table2_methods()[ax.JOINT]
    assert {c.net.input_size for c in ax.fashionai_configs(tiny(), joint).values()} == {80}  # the cpu profile's
    assert {c.net.input_size for c in ax.fashionai_configs(tiny(input_size=48), joint).values()} == {48}
    per_task = ax.fashionai_configs(tiny(input_size=48), ax.table2_methods()[ax.BASELINE])
    assert len(per_task) == 8 and {c.net.input_size for c in per_task.values()} == {48}
    df = ax.deepfashion_configs(tiny(input_size=48), ax.table3_methods()[ax.T3_BASELINE], num_categories=5,
                                num_attributes=7)
    assert {c.net.input_size for c in df.values()} == {48}
    assert (df["category"].attribute_weight, df["attributes"].category_weight) == (0.0, 0.0)


def test_bad_method_and_metric_arguments_are_named():
    with pytest.raises(ValueError, match="keypoints must be one of"):
        ax.FashionAIMethod(joint=True, beta=0.1, keypoints="truth")
    with pytest.raises(ValueError, match="equal_steps applies to joint networks only"):
        ax.FashionAIMethod(joint=False, beta=None, equal_steps=True)
    with pytest.raises(ValueError, match="crop must be 'full' or 'normal'"):
        ax.DeepFashionMethod(joint=True, crop="neck")
    with pytest.raises(ValueError, match="task must be None or one of"):
        ax.accuracy_metric("hat_labels")
    with pytest.raises(ValueError, match="group must be 'all' or one of"):
        ax.recall_metric(3, "colour", {"texture": torch.tensor([0, 1, 2])})
    with pytest.raises(ValueError, match="tasks must be a non-empty list of FashionAI tasks"):
        ax.task_garments(tiny().world, 4, 0, "train", ["hat_labels"])


# ------------------------------------------------------------------------------------------ data and crop points


@pytest.mark.slow
def test_data_is_written_once_read_back_and_crop_points_are_cached(runs, monkeypatch):
    setup = tiny()
    data = ax.attribute_data(setup)
    assert (len(data.train), len(data.val)) == (16, 8)
    # the writer cycles through the 8 tasks: 2 training and 1 validation image each
    assert sorted(data.train.tasks) == sorted(list(FASHIONAI_TASKS) * 2)
    assert sorted(data.val.tasks) == sorted(FASHIONAI_TASKS)
    image, target = data.val.dataset[0]
    assert image.shape == (3, 64, 64) and target["task"] == data.val.tasks[0]
    assert target["labels"].shape == (len(FASHIONAI_TASKS[target["task"]]),)
    assert int((target["labels"] == Y).sum()) == 1

    def no_writing(*args, **kwargs):
        raise AssertionError("the data set was written a second time")

    monkeypatch.setattr(ax, "write_fashionai_attributes", no_writing)
    again = ax.attribute_data(setup)
    assert again.train.key == data.train.key and again.val.tasks == data.val.tasks

    crops = ax.crop_keypoints(setup, data)
    assert crops["train"].plain.shape == (16, 24, 3) and crops["val"].nkd.shape == (8, 24, 3)
    for kps in (crops["train"], crops["val"]):  # no crop closes a point the detected category does not have
        for i, category in enumerate(kps.categories):
            allowed = FASHIONAI.category_mask(category) if category else torch.zeros(24, dtype=torch.bool)
            assert (kps.points("plain")[i, ~allowed, 2] == 0).all() and (kps.points("nkd")[i, ~allowed, 2] == 0).all()
        assert kps.detected.tolist() == [bool(c) for c in kps.categories]

    def no_detecting(*args, **kwargs):
        raise AssertionError("the detector ran a second time")

    monkeypatch.setattr(ax, "predict", no_detecting)
    cached = ax.crop_keypoints(setup, data)
    torch.testing.assert_close(cached["train"].nkd, crops["train"].nkd, equal_nan=True)
    assert cached["val"].source == crops["val"].source != ""


@pytest.mark.slow
def test_training_a_method_twice_loads_the_finished_networks(runs, monkeypatch):
    setup = tiny()
    data = ax.attribute_data(setup)
    crops = ax.crop_keypoints(setup, data)
    method = ax.table2_methods()[ax.MAYBE]  # the joint length and design networks
    results = []
    real_train = ax.train

    def spy(*args, **kwargs):
        results.append(real_train(*args, **kwargs))
        return results[-1]

    monkeypatch.setattr(ax, "train", spy)
    first = ax.fashionai_predictions(setup, method, 0, data, crops)
    assert [r.resumed_from for r in results] == [None, None]  # two fresh runs
    assert len(first) == 8 and first.tasks == data.val.tasks
    # each image's probabilities are its own task's softmax, zeros beyond the task's classes
    sizes = torch.tensor([len(FASHIONAI_TASKS[t]) for t in first.tasks])
    torch.testing.assert_close(first.probs.sum(1), torch.ones(8))
    assert all(float(first.probs[i, c:].abs().sum()) == 0 for i, c in enumerate(sizes.tolist()))
    curves = ax.learning_curves({"joint": [first]})  # one pass each: a monitored row per network
    assert sorted(curves["network"]) == ["design", "length"] and curves["epoch"].tolist() == [1, 1]
    assert curves["val_accuracy"].between(0, 1).all() and np.isfinite(curves["train_loss"]).all()
    second = ax.fashionai_predictions(setup, method, 0, data, crops)
    assert [r.resumed_from for r in results[2:]] == [r.step for r in results[2:]]  # finished runs, loaded
    assert all(math.isnan(r.images_per_s) for r in results[2:])
    torch.testing.assert_close(second.probs, first.probs)
    # 8 images of 4 tasks per joint network, batch 4: 2 steps a pass; at a per-task network's steps (2 images), 1
    assert [r.step for r in results[:2]] == [2, 2]
    ax.fashionai_predictions(setup, ax.table2_methods()[ax.JOINT_EQUAL_STEPS], 0, data, crops)
    assert [r.step for r in results[4:]] == [1, 1]
    with pytest.raises(ValueError, match="needs setup.dataset 'fashionai'"):
        ax.fashionai_predictions(tiny(dataset="deepfashion"), method, 0, data, crops)


def test_task_garments_and_maybe_statistics():
    world = tiny().world
    items = ax.task_garments(world, 9, 0, "train", LENGTH_TASKS)
    tasks = [items[i][1]["task"] for i in range(9)]
    assert tasks == [LENGTH_TASKS[i % 4] for i in range(9)]
    image, target = items[5]
    assert image.shape == (3, 64, 64) and target["keypoints"].shape == (1, 24, 3)
    assert target["labels"].shape == (len(FASHIONAI_TASKS[target["task"]]),)
    torch.testing.assert_close(items[5][1]["labels"], target["labels"])  # deterministic per index
    # hand-built labels: 2 of 4 items have an m, the most m labels of one item is 2
    fake = [(None, {"labels": torch.tensor(c)}) for c in ([Y, N, N], [M, Y, N], [N, N, Y], [M, Y, M])]
    assert ax.maybe_statistics(fake) == (0.5, 2)


# ---------------------------------------------------------------------------------------------- metric adapters


def _case() -> ax.TaskPredictions:
    """Five images of three tasks, padded to 10 classes; top-1 correct for images 0, 2, 3 (hand-checked)."""
    rows = {  # task, probabilities, labels
        0: ("collar_design_labels", [0.1, 0.6, 0.1, 0.1, 0.1], [N, Y, N, N, N]),
        1: ("collar_design_labels", [0.5, 0.2, 0.1, 0.1, 0.1], [N, Y, M, N, N]),
        2: ("pant_length_labels", [0.0, 0.1, 0.1, 0.1, 0.2, 0.5], [N, N, N, N, M, Y]),
        3: ("pant_length_labels", [0.0, 0.7, 0.1, 0.1, 0.1, 0.0], [N, Y, N, N, N, N]),
        4: ("neckline_design_labels", [0.0, 0.0, 0.3, 0.0, 0.0, 0.0, 0.0, 0.7, 0.0, 0.0], [N] * 9 + [Y]),
    }
    probs = torch.zeros(5, 10)
    labels = torch.full((5, 10), N)
    for i, (_, p, y) in rows.items():
        probs[i, : len(p)], labels[i, : len(y)] = torch.tensor(p), torch.tensor(y)
    return ax.TaskPredictions(tuple(t for t, _, _ in rows.values()), probs, labels)


def test_fashionai_adapters_equal_the_metrics_called_per_task():
    pred = _case()
    (args,) = ax.fashionai_arrays([pred])
    # by hand: collar 1 of 2 right, pant 2 of 2, neckline 0 of 1
    assert ax.accuracy_metric("collar_design_labels")(*args) == 0.5
    assert ax.accuracy_metric("pant_length_labels")(*args) == 1.0
    assert ax.accuracy_metric()(*args) == pytest.approx((0.5 + 1.0 + 0.0) / 3)
    assert math.isnan(ax.accuracy_metric("coat_length_labels")(*args))
    by_hand = {"collar_design_labels": [0, 1], "pant_length_labels": [2, 3], "neckline_design_labels": [4]}
    P = {t: pred.probs[r, : len(FASHIONAI_TASKS[t])] for t, r in by_hand.items()}
    L = {t: pred.labels[r, : len(FASHIONAI_TASKS[t])] for t, r in by_hand.items()}
    reference = fashionai_attribute_map(P, L)
    assert ax.map_metric()(*args) == reference.map
    assert ax.map_metric("antgo")(*args) == fashionai_attribute_map(P, L, variant="antgo").map
    for task in by_hand:
        assert ax.accuracy_metric(task)(*args) == attribute_accuracy(P[task], L[task])
    # resampled instances (the bootstrap's view): image 3 twice, image 1 dropped
    idx = np.array([0, 3, 3, 2, 4])
    sub = [a[torch.from_numpy(idx)] if isinstance(a, torch.Tensor) else a[idx] for a in args]
    assert ax.accuracy_metric("collar_design_labels")(*sub) == 1.0
    chance = ax.chance_accuracy(pred)
    # classes occurring as y: collar {1}, pant {5, 1}, neckline {9}; majority shares 1, 1/2, 1
    assert chance == pytest.approx({"uniform": (1 + 0.5 + 1) / 3, "majority": (1 + 0.5 + 1) / 3})
    # collar: p = 1/2 on 2 images; pant and neckline: p = 1 and 0, no spread from the images
    assert ax.accuracy_half_width([pred, pred]) == pytest.approx(
        {"collar_design_labels": 1.96 * math.sqrt(0.25 / 2), "pant_length_labels": 0.0, "neckline_design_labels": 0.0})
    with pytest.raises(ValueError, match="predictions_per_seed is empty"):
        ax.accuracy_half_width([])


def test_deepfashion_adapters_equal_the_metrics_by_hand():
    scores = torch.tensor([[0.9, 0.8, 0.1, 0.7], [0.1, 0.2, 0.9, 0.3]])
    labels = torch.tensor([[1, 0, 0, 1], [0, 1, 0, 0]])
    category_probs = torch.tensor([[0.6, 0.3, 0.1], [0.2, 0.3, 0.5]])
    category = torch.tensor([1, 0])
    args = (category_probs, category, scores, labels)
    groups = {"texture": torch.tensor([0, 1]), "shape": torch.tensor([2, 3])}
    # by hand, top-2 over all: image 0 ranks 0, 1 -> 1 of its 2 positives; image 1 ranks 2, 3 -> 0 of 1: 1/3
    assert ax.recall_metric(2)(*args) == pytest.approx(1 / 3)
    assert ax.recall_metric(1, "texture", groups)(*args) == topk_recall(scores, labels, 1, groups)["texture"]
    assert ax.recall_metric(1, "texture", groups)(*args) == 1.0  # top-1 of the pair: attr 0, then attr 1, both yes
    assert ax.category_metric(1)(*args) == 0.0 and ax.category_metric(2)(*args) == 0.5
    pred = ax.DeepFashionPredictions(category_probs, category, scores, labels)
    chance = ax.deepfashion_chance(pred, groups, 1)
    assert chance == {"category": 0.5, "all": 0.25, "texture": 0.5, "shape": 0.5}


def test_learning_curves_average_the_loss_of_each_pass_and_keep_the_monitor(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    # 2 passes of 2 steps: the monitor scored after steps 2 and 4
    (run / "metrics.csv").write_text("step,total,lr,val_accuracy\n1,1.0,0.1,\n2,2.0,0.1,0.25\n3,3.0,0.1,\n"
                                     "4,4.0,0.1,0.5\n")
    pred = dataclasses.replace(_case(), runs=(("collar_design_labels", str(run)),))
    curves = ax.learning_curves({"baseline": [pred, pred]})
    assert curves["epoch"].tolist() == [1, 2, 1, 2] and curves["seed"].tolist() == [0, 0, 1, 1]
    assert curves["train_loss"].tolist() == [1.5, 3.5, 1.5, 3.5]
    assert curves["val_accuracy"].tolist() == [0.25, 0.5, 0.25, 0.5]
    (run / "metrics.csv").write_text("step,total,lr\n1,1.0,0.1\n")
    with pytest.raises(ValueError, match="no val_ column"):
        ax.learning_curves({"baseline": [pred]})
    with pytest.raises(FileNotFoundError, match="no metrics of the network 'x'"):
        ax.learning_curves({"baseline": [dataclasses.replace(pred, runs=(("x", str(tmp_path / "none")),))]})


def test_crops_take_the_category_a_task_fixes_and_count_disagreements():
    points = torch.rand(4, 24, 3) + 0.5  # every confidence > 0
    crops = ax.CropKeypoints(points, points.clone(), torch.tensor([True, True, True, False]),
                             ("blouse", "dress", "outwear", ""), "src")
    tasks = ("lapel_design_labels", "neckline_design_labels", "sleeve_length_labels", "pant_length_labels")
    categories, disagree = crops.task_categories(tasks)
    # lapel fixes outwear (the detector said blouse: disagrees); neckline allows blouse or dress, sleeve three
    # categories: the detected ones stay; nothing detected stays nothing
    assert categories == ("outwear", "dress", "outwear", "")
    assert disagree.tolist() == [True, False, False, False]
    closed = crops.points("plain", categories)[..., 2] > 0
    assert closed[0].tolist() == FASHIONAI.category_mask("outwear").tolist()
    assert crops.points("nkd")[0, :, 2].gt(0).tolist() == FASHIONAI.category_mask("blouse").tolist()
    assert not closed[3].any()  # nothing detected: the crop falls back to the image
    everything = dataclasses.replace(crops, category_points=False)
    torch.testing.assert_close(everything.points("plain", categories), points)
    with pytest.raises(ValueError, match="one task per image"):
        crops.task_categories(tasks[:2])
    with pytest.raises(ValueError, match="are not FashionAI tasks"):
        crops.task_categories(("hat_labels",) * 4)
    with pytest.raises(ValueError, match="one category per image"):
        crops.points("plain", ("blouse",))


# ------------------------------------------------------------------------------------------------ early stopping


def test_stop_now_waits_patience_passes_without_improvement_and_best_pass_is_the_first_minimum():
    assert not ax.stop_now([], 2) and not ax.stop_now([1.0], 2)
    assert not ax.stop_now([1.0, 0.9, 0.95], 2)  # one pass without improvement
    assert ax.stop_now([1.0, 0.9, 0.95, 0.96], 2)  # two
    assert ax.stop_now([1.0, 0.9, 0.95], 1)
    assert not ax.stop_now([1.0, 0.9, 0.95, 0.8], 2)  # the last pass improved: the count starts again
    assert ax.stop_now([1.0, 1.0, 1.0], 2)  # a tie is no improvement
    assert ax.best_pass([1.0, 0.9, 0.95, 0.9]) == 2 and ax.best_pass([3.0]) == 1
    # fed one pass at a time, the rule stops at pass 7 and keeps pass 5
    losses = [3.0, 2.0, 1.5, 1.6, 1.4, 1.45, 1.5, 1.2, 1.1]
    stopped = next(e for e in range(1, len(losses) + 1) if ax.stop_now(losses[:e], 2))
    assert stopped == 7 and ax.best_pass(losses[:stopped]) == 5
    with pytest.raises(ValueError, match="patience must be an integer >= 1, got 0"):
        ax.stop_now([1.0], 0)
    with pytest.raises(ValueError, match="losses must be finite, got nan after pass 2"):
        ax.best_pass([1.0, math.nan])
    with pytest.raises(ValueError, match="losses must be a non-empty sequence"):
        ax.best_pass([])


def test_holdout_split_is_seeded_disjoint_and_sized():
    kept, held = ax.holdout_split(20, 0.15, torch.Generator().manual_seed(3))
    assert len(held) == 3 and len(kept) == 17 and sorted(kept + held) == list(range(20))
    assert (kept, held) == ax.holdout_split(20, 0.15, torch.Generator().manual_seed(3))
    assert held != ax.holdout_split(20, 0.15, torch.Generator().manual_seed(4))[1]
    assert len(ax.holdout_split(3, 0.01, torch.Generator())[1]) == 1  # at least one held out
    assert len(ax.holdout_split(3, 0.99, torch.Generator())[0]) == 1  # and one kept
    with pytest.raises(ValueError, match="n must be >= 2"):
        ax.holdout_split(1, 0.5, torch.Generator())
    with pytest.raises(ValueError, match="fraction must be in \\(0, 1\\), got 1.0"):
        ax.holdout_split(10, 1.0, torch.Generator())
    with pytest.raises(ValueError, match="early_stop applies to per-task networks only"):
        ax.FashionAIMethod(joint=True, beta=None, early_stop=True)
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
    items = ax.task_garments(world, 24, 1, "train", (task,))
    holdout = ax.task_garments(world, 8, 1, "holdout", (task,))
    config = per_task_configs(setup.networks())[task]
    key = ax._DataKey("test", ax.GROUND_TRUTH, "test")
    results = []
    real_train = ax.train
    monkeypatch.setattr(ax, "train", lambda *a, **k: results.append(real_train(*a, **k)) or results[-1])
    model, run_dir = ax._train_network(setup, "attr-stop", config, 0, items, key, monitor=holdout, holdout=holdout)
    curve = ax.learning_curves({"m": [dataclasses.replace(_case(), runs=((task, str(run_dir)),))]})
    losses = curve["holdout_loss"].tolist()
    passes = len(losses)
    # it stopped where the rule says (or at the cap), and kept a pass before the last one
    assert results[0].step == passes * 3 and (passes == 8 or ax.stop_now(losses, 1))
    assert not any(ax.stop_now(losses[:e], 1) for e in range(1, passes))
    chosen = ax.best_pass(losses)
    assert chosen < passes
    # the returned weights score the best pass's held-out loss, not the last pass's
    kept = ax._holdout_scores(model, holdout)["holdout_loss"]
    assert kept == pytest.approx(min(losses), rel=1e-5) and kept != pytest.approx(losses[-1], rel=1e-5)
    table = ax.stopping_passes(curve)
    assert table[["passes", "chosen"]].values.tolist() == [[passes, chosen]]
    assert table["holdout_loss"].iloc[0] == min(losses)
    # a second call loads the stopped run and the same best weights
    again, same_dir = ax._train_network(setup, "attr-stop", config, 0, items, key, monitor=holdout, holdout=holdout)
    assert same_dir == run_dir and results[1].resumed_from == results[0].step
    for name, value in model.state_dict().items():
        torch.testing.assert_close(again.state_dict()[name], value)
