"""Table 3 (DeepFashion category and attributes) as library functions.

Paper, section IV.C, Table 3. The rows (:class:`Table3Row`, their networks by :func:`table3_methods`) are the
paper's two (separate networks on the whole image; one joint network on the Normal-crop of New-key-detection's key
points), the full row on the plain detector's crops and each ingredient alone. For one seed,
:func:`deepfashion_predictions` trains (or loads) a row's networks on every training image through
:mod:`~fashion_lib.experiments.attribute_training` and scores the scored split; :func:`deepfashion_arrays` gives
per-seed arrays whose instances are images, the arguments of :func:`recall_metric` and :func:`category_metric`,
ready for :func:`fashion_lib.intervals.crossed_bootstrap_ci`; :func:`table3_scores` gives our rows' figures by row
and :func:`table3_frame` sets them, by their labels, beside the paper's rows and the other methods it quotes.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from fashion_lib.data.deepfashion import ATTRIBUTE_TYPES, DeepFashionAttributes
from fashion_lib.experiments import cached, library_digest
from fashion_lib.experiments.attribute_data import (
    DETECTED_KINDS,
    NKD,
    PLAIN,
    AttributeData,
    AttributeSetup,
    AttributeSplit,
    CropKeypoints,
    attribute_data,
    crop_keypoints,
)
from fashion_lib.experiments.attribute_training import (
    NETWORK_SOURCES,
    CropItems,
    _DataKey,
    batched_predict,
    train_network,
)
from fashion_lib.metrics import topk_accuracy, topk_recall
from fashion_lib.models.attributes import DeepFashionRecognizerConfig, deepfashion_config
from fashion_lib.report import Row, display_label

__all__ = [
    "DeepFashionMethod",
    "Table3Row",
    "T3_BASELINE",
    "T3_FULL",
    "T3_JOINT_ALONE",
    "T3_NKD_ALONE",
    "T3_PLAIN",
    "table3_methods",
    "TABLE3_GROUPS",
    "PAPER_TABLE3",
    "PAPER_TABLE3_OTHERS",
    "deepfashion_configs",
    "DeepFashionPredictions",
    "attribute_groups",
    "deepfashion_predictions",
    "deepfashion_rows_for_seeds",
    "deepfashion_arrays",
    "recall_metric",
    "category_metric",
    "deepfashion_chance",
    "table3_scores",
    "table3_frame",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeepFashionMethod:
    """A row of Table 3: one network with both heads or one per head, and what it sees."""

    joint: bool  # True: one network, category and attribute heads; False: a category and an attribute network
    crop: str  # "full" (the whole image) or "normal" (the Normal-crop of the crop key points)
    keypoints: str = NKD  # with "normal": "plain" or "nkd" crop key points

    def __post_init__(self) -> None:
        if self.crop not in ("full", "normal"):
            raise ValueError(f"crop must be 'full' or 'normal', got {self.crop!r}")
        if self.keypoints not in DETECTED_KINDS:
            raise ValueError(f"keypoints must be one of {DETECTED_KINDS}, got {self.keypoints!r}")


class Table3Row(Row):
    """The rows of Table 3 (ours), in display order: each member's value is its key (claim keys, glue names),
    ``label`` the row's name on the page."""

    BASELINE = "baseline", "Baseline: separate networks, whole image"
    FULL = "full", "+ joint learning and New-key-detection"
    PLAIN = "plain", "+ joint learning, crops from the plain detector's key points"
    JOINT_ALONE = "joint_alone", "baseline + joint learning only"
    NKD_ALONE = "nkd_alone", "baseline + New-key-detection crop only"


# the members by their own names (as :data:`fashion_lib.experiments.keypoints.KRCNN` is Table 1's)
T3_BASELINE, T3_FULL, T3_PLAIN, T3_JOINT_ALONE, T3_NKD_ALONE = Table3Row


def table3_methods() -> dict[Table3Row, DeepFashionMethod]:
    """Table 3's two rows of ours, the full row on the plain detector's crops (New-key-detection's own share is
    the full row minus it) and each ingredient alone."""
    return {
        T3_BASELINE: DeepFashionMethod(joint=False, crop="full"),
        T3_FULL: DeepFashionMethod(joint=True, crop="normal", keypoints=NKD),
        T3_PLAIN: DeepFashionMethod(joint=True, crop="normal", keypoints=PLAIN),
        T3_JOINT_ALONE: DeepFashionMethod(joint=True, crop="full"),
        T3_NKD_ALONE: DeepFashionMethod(joint=False, crop="normal", keypoints=NKD),
    }


TABLE3_GROUPS = ("category", "texture", "fabric", "shape", "part", "style", "all")
"""Column groups of Table 3, each with top-3 and top-5 (category: accuracy; the others: attribute recall)."""
_TABLE3_COLUMNS = [(g.capitalize(), f"top{k}") for g in TABLE3_GROUPS for k in (3, 5)]
# The paper's Table 3 (%), each row top-3, top-5 per group of TABLE3_GROUPS, on the real DeepFashion test set.
PAPER_TABLE3: dict[Table3Row, tuple[float, ...]] = {
    T3_BASELINE: (90.60, 96.45, 60.26, 69.57, 44.82, 54.57, 60.00, 68.47, 45.57, 55.47, 32.58, 41.36, 48.86, 58.12),
    T3_FULL: (92.75, 96.71, 64.52, 73.80, 49.87, 59.89, 64.46, 72.46, 51.73, 60.95, 36.45, 45.00, 53.64, 62.69),
}
# Other methods' published rows as the paper quotes them (real DeepFashion; context, not reproduced here).
PAPER_TABLE3_OTHERS: dict[str, tuple[float, ...]] = {
    "WTBI [2]": (43.73, 66.26, 24.21, 32.65, 25.38, 36.06, 23.39, 31.26, 26.31, 33.24, 49.85, 58.68, 27.46, 35.37),
    "DARN [19]": (59.48, 79.58, 36.15, 48.15, 36.64, 48.52, 35.89, 46.93, 39.17, 50.14, 66.11, 71.36, 42.35, 51.95),
    "FashionNet [20]": (82.58, 90.17, 37.46, 49.52, 39.30, 49.84, 39.47, 48.59, 44.13, 54.02, 66.43, 73.16, 45.52,
                        54.61),
    "Weakly [21]": (86.30, 92.80, 53.60, 63.20, 39.10, 48.80, 50.10, 59.50, 38.80, 48.90, 30.50, 38.30, 23.10, 30.40),
}


def deepfashion_configs(setup: AttributeSetup, method: DeepFashionMethod, *, num_categories: int,
                        num_attributes: int) -> dict[str, DeepFashionRecognizerConfig]:
    """The networks of ``method``: ``{"joint": ...}`` or ``{"category": ..., "attributes": ...}``, each trained
    only on its head's loss (the other head's weight is 0)."""
    base = {"num_categories": num_categories, "num_attributes": num_attributes, "crop": method.crop}
    if method.joint:
        return {"joint": deepfashion_config(setup.networks(), **base)}
    return {"category": deepfashion_config(setup.networks(), attribute_weight=0.0, **base),
            "attributes": deepfashion_config(setup.networks(), category_weight=0.0, **base)}


@dataclass(frozen=True)
class DeepFashionPredictions:
    """Category and attribute scores of every scored image."""

    category_probs: torch.Tensor  # (B, C) float softmax over the categories
    category: torch.Tensor  # (B,) long true category, 0-based
    attribute_scores: torch.Tensor  # (B, A) float sigmoid of each attribute
    attributes: torch.Tensor  # (B, A) long true attributes in {0, 1}
    runs: tuple[tuple[str, str], ...] = ()  # (network, run folder) of each network that scored them

    def __len__(self) -> int:
        return len(self.category)


def _loader(split: AttributeSplit) -> DeepFashionAttributes:
    return split.dataset.dataset  # AttributeSplit wraps the loader in a Subset


def attribute_groups(data: AttributeData) -> dict[str, torch.Tensor]:
    """Attribute indices of each DeepFashion type (texture, fabric, shape, part, style)."""
    types = _loader(data.val).tables.attribute_types
    return {name: torch.nonzero(types == code)[:, 0] for code, name in ATTRIBUTE_TYPES.items()
            if bool((types == code).any())}


def deepfashion_predictions(setup: AttributeSetup, method: DeepFashionMethod, seed: int, data: AttributeData,
                            crops: Mapping[str, CropKeypoints]) -> DeepFashionPredictions:
    """Train (or load) the networks of ``method`` for ``seed`` on every training image and score the scored
    split (``setup.epochs`` passes each)."""
    if setup.dataset != "deepfashion":
        raise ValueError(f"deepfashion_predictions needs setup.dataset 'deepfashion', got {setup.dataset!r}")
    tables = _loader(data.train).tables
    configs = deepfashion_configs(setup, method, num_categories=len(tables.category_names),
                                  num_attributes=len(tables.attribute_names))
    source = method.keypoints if method.crop == "normal" else "none"
    train_kps = crops["train"].points(method.keypoints) if method.crop == "normal" else None
    val_kps = crops["val"].points(method.keypoints) if method.crop == "normal" else None
    key = _DataKey(data.train.key, f"{source}-{crops['train'].source}" if train_kps is not None else source,
                   library_digest(NETWORK_SOURCES))
    scores: dict[str, torch.Tensor] = {}
    runs = []
    val = CropItems(data.val.dataset, range(len(data.val)), val_kps)
    for name, config in configs.items():  # the one or two networks
        model, run_dir = train_network(setup, f"attr-deepfashion-{name}-{method.crop}-{source}", config, seed,
                                       CropItems(data.train.dataset, range(len(data.train)), train_kps), key,
                                       monitor=val)
        runs.append((name, str(run_dir)))
        out = cached(run_dir / f"predictions-{data.val.key}-{key.keypoints}-{library_digest()}.pt",
                     lambda m=model: batched_predict(m, val, amp=setup.amp)[0])
        heads = ("category", "attributes") if name == "joint" else (name,)
        scores.update({h: out[h] for h in heads})
    val_tables, rows = _loader(data.val).tables, _loader(data.val).indices[data.val.dataset.indices]
    return DeepFashionPredictions(scores["category"], val_tables.labels[rows] - 1, scores["attributes"],
                                  val_tables.attributes[rows], tuple(runs))


def deepfashion_rows_for_seeds(setup: AttributeSetup, methods: Mapping[Table3Row, DeepFashionMethod],
                               seeds: Sequence[int]
                               ) -> tuple[dict[Table3Row, list[DeepFashionPredictions]], AttributeData,
                                          dict[str, CropKeypoints]]:
    """:func:`deepfashion_predictions` of every method and seed; returns them with the data and crop key points."""
    data = attribute_data(setup)
    crops = crop_keypoints(setup, data)
    out: dict[Table3Row, list[DeepFashionPredictions]] = {name: [] for name in methods}
    for seed in seeds:  # over the few training seeds
        for name, method in methods.items():  # over the few rows
            start = time.perf_counter()
            out[name].append(deepfashion_predictions(setup, method, seed, data, crops))
            log.info("seed %d, %s: trained or loaded and scored in %.0f s", seed, name, time.perf_counter() - start)
    return out, data, crops


def deepfashion_arrays(predictions_per_seed: Sequence[DeepFashionPredictions]) -> list[tuple]:
    """Per seed, ``(category_probs, category, attribute_scores, attributes)``: the arguments of
    :func:`recall_metric` and :func:`category_metric` (instances are images)."""
    return [(p.category_probs, p.category, p.attribute_scores, p.attributes) for p in predictions_per_seed]


def recall_metric(k: int, group: str = "all", groups: Mapping[str, torch.Tensor] | None = None
                  ) -> Callable[..., float]:
    """A function of :func:`deepfashion_arrays`' arguments: attribute top-``k`` recall (a fraction) over all
    attributes (``group="all"``) or within one group of ``groups`` (:func:`fashion_lib.metrics.topk_recall`)."""
    if group != "all" and (groups is None or group not in groups):
        raise ValueError(f"group must be 'all' or one of {sorted(groups or {})}, got {group!r}")
    chosen = None if group == "all" else {group: groups[group]}

    def metric(category_probs, category, attribute_scores, attributes) -> float:
        return topk_recall(attribute_scores, attributes, k, chosen)[group]

    return metric


def category_metric(k: int) -> Callable[..., float]:
    """A function of :func:`deepfashion_arrays`' arguments: top-``k`` category accuracy (a fraction)."""

    def metric(category_probs, category, attribute_scores, attributes) -> float:
        return topk_accuracy(category_probs, category, k)

    return metric


def deepfashion_chance(predictions: DeepFashionPredictions, groups: Mapping[str, torch.Tensor], k: int
                       ) -> dict[str, float]:
    """Top-``k`` scores of a random ranking: ``"category"``, ``k`` over the categories that occur; each attribute
    group and ``"all"``, ``k`` over the group's size (every positive is equally likely to be ranked in the top k)."""
    present = int(torch.unique(predictions.category).numel())
    out = {"category": min(1.0, k / max(present, 1)), "all": min(1.0, k / predictions.attributes.shape[1])}
    out.update({name: min(1.0, k / len(idx)) for name, idx in groups.items()})
    return out


def table3_scores(predictions: Mapping[Table3Row, Sequence[DeepFashionPredictions]],
                  groups: Mapping[str, torch.Tensor]):
    """Our rows of Table 3 as a DataFrame indexed by row (the keys of ``predictions``), %, means over seeds, rounded
    to 2 decimals: top-3 / top-5 category accuracy and attribute recall per group and over all attributes, under
    two-level columns (``("All", "top3")``); NaN for a group the data set does not have."""
    import pandas as pd

    rows = {}
    for name, per_seed in predictions.items():  # over the few methods
        arrays = deepfashion_arrays(per_seed)
        values = []
        for g in TABLE3_GROUPS:  # over the 7 column groups
            for k in (3, 5):
                if g == "category":
                    metric = category_metric(k)
                elif g == "all" or g in groups:
                    metric = recall_metric(k, g, groups)
                else:  # a group the data set does not have
                    values.append(math.nan)
                    continue
                values.append(100 * float(np.mean([metric(*a) for a in arrays])))
        rows[name] = values
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.columns = pd.MultiIndex.from_tuples(_TABLE3_COLUMNS)
    return frame.round(2)


def table3_frame(predictions: Mapping[Table3Row, Sequence[DeepFashionPredictions]],
                 groups: Mapping[str, torch.Tensor], *, paper: bool = True, scores=None):
    """Table 3 for the page: :func:`table3_scores` (or ``scores``, already computed) under the rows' labels
    (``"<label> (ours)"``), the paper's rows after ours (``"<label> (paper)"``), then the other methods'
    published rows."""
    import pandas as pd

    ours = table3_scores(predictions, groups) if scores is None else scores
    rows = {}
    for name in predictions:  # over the few methods
        rows[f"{display_label(name)} (ours)"] = list(ours.loc[name])
        if paper and name in PAPER_TABLE3:
            rows[f"{display_label(name)} (paper)"] = list(PAPER_TABLE3[name])
    if paper:
        rows.update({f"{name} (paper's citation, real data)": list(v) for name, v in PAPER_TABLE3_OTHERS.items()})
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.columns = pd.MultiIndex.from_tuples(_TABLE3_COLUMNS)
    return frame.round(2)
