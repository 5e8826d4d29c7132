"""Tests of fashion_lib.experiments.table3: the rows' networks, bad arguments named, and the metric adapters
against the metrics by hand."""

from __future__ import annotations

import pytest
import torch
from attribute_toys import tiny

from fashion_lib.experiments.table3 import (
    T3_BASELINE,
    T3_PLAIN,
    DeepFashionMethod,
    DeepFashionPredictions,
    Table3Row,
    category_metric,
    deepfashion_chance,
    deepfashion_configs,
    recall_metric,
    table3_frame,
    table3_methods,
    table3_scores,
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


def test_table3_scores_are_keyed_by_row_and_the_page_s_table_prints_labels():
    g = torch.Generator().manual_seed(0)
    scores = torch.rand(8, 12, generator=g)  # 8 images, 12 attributes, 6 categories: top-5 is defined
    labels = (torch.rand(8, 12, generator=g) < 0.4).long()
    pred = DeepFashionPredictions(torch.rand(8, 6, generator=g).softmax(1), torch.randint(0, 6, (8,), generator=g),
                                  scores, labels)
    groups = {"texture": torch.arange(0, 6), "shape": torch.arange(6, 12)}
    ours = table3_scores({T3_BASELINE: [pred], T3_PLAIN: [pred, pred]}, groups)
    assert list(ours.index) == [T3_BASELINE, T3_PLAIN]
    args = (pred.category_probs, pred.category, scores, labels)
    assert ours.loc[T3_BASELINE, ("Category", "top3")] == round(100 * category_metric(3)(*args), 2)
    assert ours.loc["plain", ("Texture", "top3")] == round(100 * recall_metric(3, "texture", groups)(*args), 2)
    assert ours[("Fabric", "top3")].isna().all()  # a group this data set does not have
    table = table3_frame({T3_BASELINE: [pred], T3_PLAIN: [pred]}, groups, scores=ours)
    assert list(table.index)[:3] == ["Baseline: separate networks, whole image (ours)",
                                     "Baseline: separate networks, whole image (paper)",
                                     "+ joint learning, crops from the plain detector's key points (ours)"]
    assert table.loc["Baseline: separate networks, whole image (paper)", ("Category", "top3")] == 90.60
    assert "FashionNet [20] (paper's citation, real data)" in table.index
    assert len({r.value for r in Table3Row}) == len({r.label for r in Table3Row}) == len(Table3Row)
