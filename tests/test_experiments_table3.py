"""Tests of fashion_lib.experiments.table3: the rows' networks, bad arguments named, and the metric adapters
against the metrics by hand."""

from __future__ import annotations

import pytest
import torch
from attribute_toys import tiny

from fashion_lib.experiments.table3 import (
    T3_BASELINE,
    DeepFashionMethod,
    DeepFashionPredictions,
    category_metric,
    deepfashion_chance,
    deepfashion_configs,
    recall_metric,
    table3_methods,
)
from fashion_lib.metrics import topk_recall


def test_input_size_overrides_the_profiles_input_of_every_deepfashion_network():
    df = deepfashion_configs(tiny(input_size=48), table3_methods()[T3_BASELINE], num_categories=5,
                                num_attributes=7)
    assert {c.net.input_size for c in df.values()} == {48}
    assert (df["category"].attribute_weight, df["attributes"].category_weight) == (0.0, 0.0)


def test_bad_deepfashion_method_and_metric_arguments_are_named():
    with pytest.raises(ValueError, match="crop must be 'full' or 'normal'"):
        DeepFashionMethod(joint=True, crop="neck")
    with pytest.raises(ValueError, match="group must be 'all' or one of"):
        recall_metric(3, "colour", {"texture": torch.tensor([0, 1, 2])})


def test_deepfashion_adapters_equal_the_metrics_by_hand():
    scores = torch.tensor([[0.9, 0.8, 0.1, 0.7], [0.1, 0.2, 0.9, 0.3]])
    labels = torch.tensor([[1, 0, 0, 1], [0, 1, 0, 0]])
    category_probs = torch.tensor([[0.6, 0.3, 0.1], [0.2, 0.3, 0.5]])
    category = torch.tensor([1, 0])
    args = (category_probs, category, scores, labels)
    groups = {"texture": torch.tensor([0, 1]), "shape": torch.tensor([2, 3])}
    # by hand, top-2 over all: image 0 ranks 0, 1 -> 1 of its 2 positives; image 1 ranks 2, 3 -> 0 of 1: 1/3
    assert recall_metric(2)(*args) == pytest.approx(1 / 3)
    assert recall_metric(1, "texture", groups)(*args) == topk_recall(scores, labels, 1, groups)["texture"]
    assert recall_metric(1, "texture", groups)(*args) == 1.0  # top-1 of the pair: attr 0, then attr 1, both yes
    assert category_metric(1)(*args) == 0.0 and category_metric(2)(*args) == 0.5
    pred = DeepFashionPredictions(category_probs, category, scores, labels)
    chance = deepfashion_chance(pred, groups, 1)
    assert chance == {"category": 0.5, "all": 0.25, "texture": 0.5, "shape": 0.5}
