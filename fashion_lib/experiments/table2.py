"""Table 2 (FashionAI attributes) and the beta ablation of its maybe loss, as library functions.

Paper, sections III.B and IV.B, Table 2. The rows (:class:`Table2Row`, their networks by :func:`table2_methods`)
are the paper's ladder (a network per task, joint learning, the multi-label "maybe" loss, New-key-detection's
crops), each ingredient alone, joint learning at the baseline's optimiser steps and the baseline stopped early on
held-out training images. For one
seed, :func:`fashionai_predictions` trains (or loads) a row's networks on the crops of
:mod:`~fashion_lib.experiments.attribute_data` through :mod:`~fashion_lib.experiments.attribute_training` and
scores every validation image on its own task; :func:`fashionai_arrays` gives per-seed arrays whose instances are
validation images, the arguments of :func:`map_metric` and :func:`accuracy_metric`, ready for
:func:`fashion_lib.intervals.crossed_bootstrap_ci`; :func:`table2_scores` gives our rows' figures by row and
:func:`table2_frame` sets them, by their labels, beside the paper's rows.

The beta ablation trains on garments generated on the fly with their ground-truth key points
(:func:`task_garments`, :func:`beta_predictions`): no detector, so the loss is the only thing that changes.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from fashion_lib.attributes import DESIGN_TASKS, FASHIONAI_TASKS, LENGTH_TASKS, PAPER_TASK_NAMES, M, N, Y
from fashion_lib.experiments import cached, library_digest, spread_rows
from fashion_lib.experiments.attribute_data import (
    DETECTED_KINDS,
    GROUND_TRUTH,
    NKD,
    PLAIN,
    AttributeData,
    AttributeSetup,
    CropKeypoints,
    attribute_data,
    crop_keypoints,
)
from fashion_lib.experiments.attribute_training import (
    NETWORK_SOURCES,
    CropItems,
    InputCache,
    _DataKey,
    holdout_split,
    scoring_autocast,
    train_network,
)
from fashion_lib.intervals import CI
from fashion_lib.metrics import attribute_accuracy, attribute_accuracy_weighted, attribute_ap, attribute_ap_weighted
from fashion_lib.models.attributes import FashionAIRecognizerConfig, joint_configs, per_task_configs
from fashion_lib.provenance import content_digest
from fashion_lib.report import Row, display_label, verdict
from fashion_lib.synthetic import TASK_CATEGORIES, SyntheticGarments, WorldConfig
from fashion_lib.synthetic.knobs import label_rates

__all__ = [
    "FashionAIMethod",
    "Table2Row",
    "BASELINE",
    "JOINT",
    "MAYBE",
    "FULL",
    "MAYBE_ALONE",
    "NKD_ALONE",
    "JOINT_EQUAL_STEPS",
    "BASELINE_EARLY_STOP",
    "LADDER",
    "INGREDIENTS",
    "ingredients_sentence",
    "table2_methods",
    "PAPER_TABLE2",
    "fashionai_configs",
    "TaskPredictions",
    "monitor_rows",
    "fashionai_predictions",
    "fashionai_rows_for_seeds",
    "fashionai_arrays",
    "map_metric",
    "accuracy_metric",
    "accuracy_half_width",
    "chance_accuracy",
    "chance_by_task",
    "table2_scores",
    "table2_frame",
    "task_garments",
    "maybe_statistics",
    "beta_predictions",
]

log = logging.getLogger(__name__)

_C_MAX = max(len(c) for c in FASHIONAI_TASKS.values())  # widest FashionAI task (neckline, 10 classes)


# ------------------------------------------------------------------------------------------------------------------
# Table 2: FashionAI attributes
# ------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FashionAIMethod:
    """A row of Table 2: how the networks are arranged, what they crop from and their loss."""

    joint: bool  # False: one network per task (the baseline); True: the length and the design network (IV.B)
    beta: float | None  # "maybe" loss weight; None: plain cross-entropy on the y class
    keypoints: str = PLAIN  # crops from "plain" detector key points or after New-key-detection ("nkd")
    # joint only: train each network for the optimiser steps of one per-task network (``epochs`` passes over one
    # task's share of its images) instead of ``epochs`` passes over all its images (the paper's protocol)
    equal_steps: bool = False
    # per-task only: train each network up to ``max_epochs`` passes on its task's images less a held-out share and
    # stop once the held-out loss stops falling (``patience``), keeping the best pass
    early_stop: bool = False

    def __post_init__(self) -> None:
        if self.keypoints not in (*DETECTED_KINDS, GROUND_TRUTH):
            raise ValueError(f"keypoints must be one of {(*DETECTED_KINDS, GROUND_TRUTH)}, got {self.keypoints!r}")
        if self.equal_steps and not self.joint:
            raise ValueError("equal_steps applies to joint networks only (a per-task network sets the steps)")
        if self.early_stop and self.joint:
            raise ValueError("early_stop applies to per-task networks only (joint=False)")


class Table2Row(Row):
    """The rows of Table 2 (the paper's ladder), each ingredient alone and the two controls, in display order: each
    member's value is its key (claim keys, glue names), ``label`` the row's name on the page."""

    BASELINE = "baseline", "Baseline: a network per task"
    JOINT = "joint", "+ joint learning"
    MAYBE = "maybe", "+ multi-label (maybe) loss"
    FULL = "full", "+ New-key-detection"
    MAYBE_ALONE = "maybe_alone", "baseline + maybe loss only"
    NKD_ALONE = "nkd_alone", "baseline + New-key-detection only"
    JOINT_EQUAL_STEPS = "joint_steps", "+ joint learning, at the baseline's optimiser steps"
    BASELINE_EARLY_STOP = "stopped", "Baseline, each network stopped early on held-out training images"


# the members by their own names (as :data:`fashion_lib.experiments.keypoints.KRCNN` is Table 1's)
BASELINE, JOINT, MAYBE, FULL, MAYBE_ALONE, NKD_ALONE, JOINT_EQUAL_STEPS, BASELINE_EARLY_STOP = Table2Row
LADDER = (BASELINE, JOINT, MAYBE, FULL)
INGREDIENTS = (MAYBE_ALONE, NKD_ALONE)


def ingredients_sentence(differences: Mapping[str, CI | None]) -> str:
    """Page 20's sentence on the ingredients alone: ``differences`` maps ``"maybe_alone"`` and ``"nkd_alone"`` to
    the mAP difference against the baseline (a fraction) or None where the profile did not train that row."""
    maybe, nkd = differences.get("maybe_alone"), differences.get("nkd_alone")
    if maybe is None or nkd is None:
        return ("This profile does not train the ingredients alone (the parameter `ingredients` is false: its time "
                "goes to more training and validation images); the `gpu` profile trains them.")
    return (f"Alone on the baseline, the \"maybe\" loss changes mAP by {100 * maybe.estimate:+.2f} points "
            f"({verdict(maybe, better='higher')} that it helps) and New-key-detection's crops by "
            f"{100 * nkd.estimate:+.2f} ({verdict(nkd, better='higher')}).")


def table2_methods(beta: float = 0.1, *, ingredients: bool = True) -> dict[Table2Row, FashionAIMethod]:
    """Table 2's ladder, each ingredient alone, joint learning at the baseline's optimiser steps (a joint
    network otherwise takes as many steps as its tasks' per-task networks together) and the baseline trained until
    its held-out loss stops falling; ``beta`` is the maybe loss's weight (the paper's 0.1). Without
    ``ingredients``, the rows of each ingredient alone are left out."""
    methods = {
        BASELINE: FashionAIMethod(joint=False, beta=None, keypoints=PLAIN),
        JOINT: FashionAIMethod(joint=True, beta=None, keypoints=PLAIN),
        MAYBE: FashionAIMethod(joint=True, beta=beta, keypoints=PLAIN),
        FULL: FashionAIMethod(joint=True, beta=beta, keypoints=NKD),
        MAYBE_ALONE: FashionAIMethod(joint=False, beta=beta, keypoints=PLAIN),
        NKD_ALONE: FashionAIMethod(joint=False, beta=None, keypoints=NKD),
        JOINT_EQUAL_STEPS: FashionAIMethod(joint=True, beta=None, keypoints=PLAIN, equal_steps=True),
        BASELINE_EARLY_STOP: FashionAIMethod(joint=False, beta=None, keypoints=PLAIN, early_stop=True),
    }
    return methods if ingredients else {name: m for name, m in methods.items() if name not in INGREDIENTS}


_TABLE2_ORDER = ("collar_design_labels", "neck_design_labels", "neckline_design_labels", "lapel_design_labels",
                 "skirt_length_labels", "pant_length_labels", "sleeve_length_labels", "coat_length_labels")
# The paper's Table 2 (validation accuracy per task and mAP, %), in its column order (_TABLE2_ORDER, then mAP).
PAPER_TABLE2: dict[Table2Row, tuple[float, ...]] = {
    BASELINE: (84.27, 80.82, 84.00, 79.15, 73.49, 78.76, 69.50, 65.46, 92.52),
    JOINT: (86.02, 83.42, 85.11, 81.82, 74.49, 79.57, 69.85, 65.73, 92.86),
    MAYBE: (86.41, 82.52, 85.68, 80.88, 75.46, 80.29, 70.01, 65.81, 92.94),
    FULL: (86.74, 83.67, 85.51, 81.09, 75.56, 80.37, 70.02, 66.31, 92.98),
}


def fashionai_configs(setup: AttributeSetup, method: FashionAIMethod) -> dict[str, FashionAIRecognizerConfig]:
    """The networks of ``method``: AttrKey -> config (one per task) or ``"length"`` / ``"design"`` (joint)."""
    if method.joint:
        return joint_configs(setup.networks(), beta=method.beta)
    return per_task_configs(setup.networks(), beta=method.beta)


@dataclass(frozen=True)
class TaskPredictions:
    """Class probabilities of every validation image for its own task (a FashionAI row labels one task)."""

    tasks: tuple[str, ...]  # (B,) the AttrKey of each image
    probs: torch.Tensor  # (B, 10) float: softmax over the image's task's C_t classes, zeros beyond them
    labels: torch.Tensor  # (B, 10) long: label codes Y / M / N of the image's task, N beyond its classes
    runs: tuple[tuple[str, str], ...] = ()  # (network, run folder) of each network that scored them

    def __len__(self) -> int:
        return len(self.tasks)


def _task_predictions(networks: Mapping[str, tuple[torch.nn.Module, Path]], inputs: InputCache,
                      tasks: Sequence[str], cache_key: str, *, amp: bool = False) -> TaskPredictions:
    """Each image of ``inputs.items`` scored by the network that has its task (cached in that network's run
    folder), under :func:`scoring_autocast`."""
    B = len(tasks)
    probs = torch.zeros(B, _C_MAX)
    labels = torch.full((B, _C_MAX), N, dtype=torch.long)
    done = torch.zeros(B, dtype=torch.bool)
    for model, run_dir in networks.values():  # a loop over the 2 or 8 networks
        mine = [i for i, t in enumerate(tasks) if t in model.net.tasks]
        if not mine:
            continue

        def compute(model=model, mine=mine) -> dict:
            x = inputs(model, mine)  # (len(mine), 3, S, S)
            out = []
            for lo in range(0, len(mine), inputs.batch_size):  # chunks of images
                with scoring_autocast(model, amp):
                    out.append(model.predict_inputs(x[lo:lo + inputs.batch_size].contiguous(
                        memory_format=torch.channels_last)))
            out = {task: torch.cat([o[task] for o in out]).float() for task in out[0]}
            return {"rows": mine, "probs": [out[tasks[i]][j] for j, i in enumerate(mine)],
                    "labels": [inputs.labels[i] for i in mine]}

        got = cached(run_dir / f"predictions-{cache_key}-{library_digest()}.pt", compute)
        for row, p, y in zip(got["rows"], got["probs"], got["labels"], strict=True):  # rows of this network
            probs[row, : len(p)], labels[row, : len(y)], done[row] = p, y, True
    if not bool(done.all()):
        missing = sorted({tasks[i] for i in torch.nonzero(~done)[:, 0].tolist()})
        raise ValueError(f"no network of the method recognises the tasks {missing}")
    runs = tuple((name, str(run_dir)) for name, (_, run_dir) in networks.items())
    return TaskPredictions(tuple(tasks), probs, labels, runs)


def monitor_rows(tasks: Sequence[str], per_task: int) -> list[int]:
    """The validation rows the learning curves score after every pass: ``per_task`` rows of each task spread over
    its rows (:func:`spread_rows`; all rows of a task that has fewer, and every row with ``per_task`` 0), in row
    order."""
    if per_task == 0:
        return list(range(len(tasks)))
    rows: list[int] = []
    for task in dict.fromkeys(tasks):  # over the <= 8 tasks
        mine = [i for i, t in enumerate(tasks) if t == task]
        rows.extend(mine[i] for i in spread_rows(len(mine), min(per_task, len(mine))))
    return sorted(rows)


def fashionai_predictions(setup: AttributeSetup, method: FashionAIMethod, seed: int, data: AttributeData,
                          crops: Mapping[str, CropKeypoints], inputs: Mapping[str, InputCache] | None = None
                          ) -> TaskPredictions:
    """Train (or load) the networks of ``method`` for ``seed`` and score the validation images.

    Each network trains on the training images of its own tasks (a per-task network on its task's images, the
    joint length network on the four length tasks' images), ``setup.epochs`` passes, cropped from
    ``crops[split].points(method.keypoints)``. With ``method.early_stop``, ``setup.holdout_fraction`` of each
    task's training images (a split seeded by ``setup.data_seed``, the same for every seed) are held out and
    decide when it stops (:func:`train_network`); the scored validation images play no part in it. The
    learning curves score :func:`monitor_rows`. ``inputs``: the validation crops by key-point kind, shared by the
    calls of every seed and row (:class:`InputCache`; default a fresh one).
    """
    if setup.dataset != "fashionai":
        raise ValueError(f"fashionai_predictions needs setup.dataset 'fashionai', got {setup.dataset!r}")
    if method.keypoints not in DETECTED_KINDS:
        raise ValueError(f"method.keypoints must be one of {DETECTED_KINDS} here, got {method.keypoints!r}")
    # a FashionAI row's task fixes the garment's category for five of the eight tasks: crop as that category
    train_kps = crops["train"].points(method.keypoints, crops["train"].task_categories(data.train.tasks)[0])
    val_kps = crops["val"].points(method.keypoints, crops["val"].task_categories(data.val.tasks)[0])
    key = _DataKey(data.train.key, f"{method.keypoints}-{crops['train'].source}", library_digest(NETWORK_SOURCES))
    networks = {}
    monitored = monitor_rows(data.val.tasks, setup.monitor_per_task)
    for name, config in fashionai_configs(setup, method).items():  # the 2 or 8 networks
        rows = [i for i, t in enumerate(data.train.tasks) if t in dict(config.net.tasks)]
        val_rows = [i for i in monitored if data.val.tasks[i] in dict(config.net.tasks)]
        # equal steps: one task's share of the images sets the schedule, as it does for a per-task network
        step_images = math.ceil(len(rows) / len(config.net.tasks)) if method.equal_steps else 0
        tag = "-equal-steps" if method.equal_steps else ""
        holdout = None
        if method.early_stop:
            kept, held = holdout_split(len(rows), setup.holdout_fraction,
                                       torch.Generator().manual_seed(setup.data_seed))
            rows, holdout = [rows[i] for i in kept], CropItems(data.train.dataset, [rows[i] for i in held], train_kps)
        networks[name] = train_network(setup, f"attr-fashionai-{name}-{method.keypoints}{tag}", config, seed,
                                       CropItems(data.train.dataset, rows, train_kps), key,
                                       monitor=CropItems(data.val.dataset, val_rows, val_kps),
                                       step_images=step_images, holdout=holdout)
    cache = (inputs or {}).get(method.keypoints) or InputCache(
        CropItems(data.val.dataset, range(len(data.val)), val_kps))
    cache_key = f"{data.val.key}-{method.keypoints}-{crops['val'].source}"
    return _task_predictions(networks, cache, data.val.tasks, cache_key, amp=setup.amp)


def fashionai_rows_for_seeds(setup: AttributeSetup, methods: Mapping[Table2Row, FashionAIMethod],
                             seeds: Sequence[int]
                             ) -> tuple[dict[Table2Row, list[TaskPredictions]], AttributeData,
                                        dict[str, CropKeypoints]]:
    """:func:`fashionai_predictions` of every method and seed (training or loading), logging the time taken.

    Returns the predictions (method -> one per seed), the data and the crop key points."""
    data = attribute_data(setup)
    crops = crop_keypoints(setup, data)
    out: dict[Table2Row, list[TaskPredictions]] = {name: [] for name in methods}
    categories = crops["val"].task_categories(data.val.tasks)[0]
    inputs = {kind: InputCache(CropItems(data.val.dataset, range(len(data.val)), crops["val"].points(kind, categories)))
              for kind in {m.keypoints for m in methods.values()}}
    for seed in seeds:  # over the few training seeds
        for name, method in methods.items():  # over the few rows of the table
            start = time.perf_counter()
            out[name].append(fashionai_predictions(setup, method, seed, data, crops, inputs))
            log.info("seed %d, %s: trained or loaded and scored in %.0f s", seed, name, time.perf_counter() - start)
    return out, data, crops


def fashionai_arrays(predictions_per_seed: Sequence[TaskPredictions]) -> list[tuple]:
    """Per seed, ``(probs (B, 10), labels (B, 10), tasks (B,) str array)``: the arguments of :func:`map_metric`
    and :func:`accuracy_metric` (instances are validation images)."""
    return [(p.probs, p.labels, np.asarray(p.tasks)) for p in predictions_per_seed]


def _by_task(probs: torch.Tensor, labels: torch.Tensor, tasks: np.ndarray) -> tuple[dict, dict, dict]:
    """Split padded per-image arrays into the per-task ``(B_t, C_t)`` arrays the metrics take, and each task's
    rows ``(B_t,)``."""
    P, L, R = {}, {}, {}
    for task in dict.fromkeys(tasks.tolist()):  # a loop over the <= 8 tasks present
        rows = torch.from_numpy(np.flatnonzero(tasks == task))
        c = len(FASHIONAI_TASKS[task])
        # contiguous: a strided slice makes torch's small reductions in the metrics ~1000x slower (thread sync)
        P[task], L[task], R[task] = probs[rows, :c].contiguous(), labels[rows, :c].contiguous(), rows
    return P, L, R


def _mean_over_present(values: dict[str, torch.Tensor], weights: torch.Tensor, rows: dict[str, torch.Tensor]
                       ) -> torch.Tensor:
    """``(R,)`` mean over the tasks each resample draws at least one image of (as the reference averages over the
    tasks present in its arrays) of the per-task ``(R,)`` values."""
    present = torch.stack([weights[:, rows[t]].sum(1) > 0 for t in values], dim=1)  # (R, T)
    stacked = torch.stack(list(values.values()), dim=1)  # (R, T)
    return torch.where(present, stacked, 0.0).sum(1) / present.sum(1)


def map_metric(variant: str = "wangxin") -> Callable[..., float | torch.Tensor]:
    """A function ``(probs, labels, tasks) -> float``: the challenge's mAP (a fraction) over the tasks present, as
    :func:`fashion_lib.metrics.fashionai_attribute_map` computes it (``variant`` as there).

    With ``weights=`` an ``(R, B)`` array of bootstrap counts (how often each resample draws each image; the
    ``weighted`` path of :func:`fashion_lib.intervals.crossed_bootstrap_ci`) it returns the ``(R,)`` mAP of every
    resample at once (:func:`fashion_lib.metrics.attribute_ap_weighted`; ``"wangxin"`` only), equal to the
    reference's on each resample."""

    if variant not in ("wangxin", "antgo"):
        raise ValueError(f"variant must be 'wangxin' or 'antgo', got {variant!r}")

    def metric(probs: torch.Tensor, labels: torch.Tensor, tasks: np.ndarray, *,
               weights: torch.Tensor | None = None) -> float | torch.Tensor:
        P, L, R = _by_task(probs, labels, np.asarray(tasks))
        if weights is None:
            # fashionai_attribute_map's mAP (the mean of attribute_ap over the tasks), without its other outputs
            return float(np.mean([attribute_ap(P[t], L[t], variant=variant) for t in P]))
        if variant != "wangxin":
            raise ValueError("map_metric: weights= is implemented for the 'wangxin' variant only")
        return _mean_over_present({t: attribute_ap_weighted(P[t], L[t], weights[:, R[t]]) for t in P}, weights, R)

    return metric


def accuracy_metric(task: str | None = None) -> Callable[..., float | torch.Tensor]:
    """A function ``(probs, labels, tasks) -> float``: top-1 accuracy (:func:`fashion_lib.metrics.attribute_accuracy`)
    of ``task``, or with ``None`` the mean over the tasks present of their accuracies. With ``weights=`` (as in
    :func:`map_metric`) the ``(R,)`` accuracies of every resample at once."""
    if task is not None and task not in FASHIONAI_TASKS:
        raise ValueError(f"task must be None or one of {', '.join(FASHIONAI_TASKS)}, got {task!r}")

    def metric(probs: torch.Tensor, labels: torch.Tensor, tasks: np.ndarray, *,
               weights: torch.Tensor | None = None) -> float | torch.Tensor:
        P, L, R = _by_task(probs, labels, np.asarray(tasks))
        if weights is not None:
            if task is not None:
                return (attribute_accuracy_weighted(P[task], L[task], weights[:, R[task]]) if task in P
                        else torch.full((len(weights),), math.nan, dtype=torch.float64))
            return _mean_over_present({t: attribute_accuracy_weighted(P[t], L[t], weights[:, R[t]]) for t in P},
                                      weights, R)
        if task is not None:
            return attribute_accuracy(P[task], L[task]) if task in P else math.nan
        return float(np.mean([attribute_accuracy(P[t], L[t]) for t in P]))

    return metric


def accuracy_half_width(predictions_per_seed: Sequence[TaskPredictions], z: float = 1.96) -> dict[str, float]:
    """Half-width (a fraction) of each task's accuracy interval from its validation images alone: the normal
    approximation ``z * sqrt(p (1 - p) / n_t)`` at the accuracy ``p`` averaged over seeds, ``n_t`` the task's
    validation images (the image part of the interval; differences between seeds widen it)."""
    if not predictions_per_seed:
        raise ValueError("predictions_per_seed is empty")
    tasks = np.asarray(predictions_per_seed[0].tasks)
    out = {}
    for task in dict.fromkeys(tasks.tolist()):  # a loop over the <= 8 tasks
        p = float(np.mean([accuracy_metric(task)(*a) for a in fashionai_arrays(predictions_per_seed)]))
        out[task] = z * math.sqrt(p * (1 - p) / int((tasks == task).sum()))
    return out


def chance_by_task(predictions: TaskPredictions) -> dict[str, dict[str, float]]:
    """Accuracy of guessing on these validation images, per task (AttrKey -> figures, fractions): ``"uniform"``
    (one over the number of classes that occur as a ``y``) and ``"majority"`` (always the most frequent ``y``
    class)."""
    probs, labels, tasks = fashionai_arrays([predictions])[0]
    _, L, _ = _by_task(probs, labels, tasks)
    out = {}
    for task, codes in L.items():  # a loop over the <= 8 tasks
        share = (codes == Y).float().mean(0)  # (C_t,) how often each class is the y
        out[task] = {"uniform": 1.0 / max(int((share > 0).sum()), 1), "majority": float(share.max())}
    return out


def chance_accuracy(predictions: TaskPredictions) -> dict[str, float]:
    """:func:`chance_by_task` as the mean over tasks: ``"uniform"`` and ``"majority"``."""
    per_task = chance_by_task(predictions).values()
    return {kind: float(np.mean([c[kind] for c in per_task])) for kind in ("uniform", "majority")}


def table2_scores(predictions: Mapping[Table2Row, Sequence[TaskPredictions]]):
    """Our rows of Table 2 as a DataFrame indexed by row (the keys of ``predictions``): per-task accuracy in the
    paper's columns (Collar ... Coat), mAP and the mean accuracy, %, means over seeds, rounded to 2 decimals as
    :func:`table2_frame` shows them."""
    import pandas as pd

    rows = {}
    for name, per_seed in predictions.items():  # over the few methods
        arrays = fashionai_arrays(per_seed)
        row = {PAPER_TASK_NAMES[t]: 100 * np.mean([accuracy_metric(t)(*a) for a in arrays]) for t in _TABLE2_ORDER}
        row["mAP"] = 100 * np.mean([map_metric()(*a) for a in arrays])
        row["mean accuracy"] = 100 * np.mean([accuracy_metric()(*a) for a in arrays])
        rows[name] = row
    return pd.DataFrame.from_dict(rows, orient="index").round(2)


def table2_frame(predictions: Mapping[Table2Row, Sequence[TaskPredictions]], *, paper: bool = True,
                 scores=None):
    """Table 2 for the page: :func:`table2_scores` (or ``scores``, already computed) under the rows' labels, a row
    ``"<label> (ours)"`` each, followed by ``"<label> (paper)"`` where the paper reports that row."""
    import pandas as pd

    ours = table2_scores(predictions) if scores is None else scores
    columns = [PAPER_TASK_NAMES[t] for t in _TABLE2_ORDER]
    rows = {}
    for name in predictions:  # over the few methods
        rows[f"{display_label(name)} (ours)"] = ours.loc[name]
        if paper and name in PAPER_TABLE2:
            rows[f"{display_label(name)} (paper)"] = pd.Series(PAPER_TABLE2[name], index=[*columns, "mAP"])
    return pd.DataFrame(rows).T[[*columns, "mAP", "mean accuracy"]]


# ------------------------------------------------------------------------------------------------------------------
# The beta ablation: the joint network on garments generated on the fly, cropped from their ground truth
# ------------------------------------------------------------------------------------------------------------------


class _TaskGarments(torch.utils.data.Dataset):
    """Synthetic garments labelled like FashionAI rows: item ``i`` has one task, ``tasks[i % T]``, and a garment of
    a category that task applies to; targets hold ``task``, ``labels`` (C,), the ground-truth ``keypoints``
    (1, 24, 3) and ``image_id``."""

    def __init__(self, world: WorldConfig, n: int, seed: int, split: str, tasks: Sequence[str]) -> None:
        self.tasks = tuple(tasks)
        self.n = n
        counts = [len(range(j, n, len(self.tasks))) for j in range(len(self.tasks))]
        self.sources = [SyntheticGarments(world, c, seed, split=f"{split}-{t}", categories=TASK_CATEGORIES[t])
                        for t, c in zip(self.tasks, counts, strict=True)]

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict]:
        if not 0 <= index < self.n:
            raise IndexError(f"index must be in [0, {self.n}), got {index}")
        j, k = index % len(self.tasks), index // len(self.tasks)
        image, t = self.sources[j][k]
        task = self.tasks[j]
        return image, {"task": task, "labels": t["attributes"][task], "keypoints": t["keypoints"], "image_id": index}


def task_garments(world: WorldConfig, n: int, seed: int, split: str, tasks: Sequence[str] = LENGTH_TASKS
                  ) -> torch.utils.data.Dataset:
    """``n`` synthetic garments labelled like FashionAI rows (one task each, cycling through ``tasks``), with their
    ground-truth key points; generated on the fly, item ``i`` depends only on ``(seed, split, i)``."""
    bad = [t for t in tasks if t not in FASHIONAI_TASKS]
    if bad or not tasks:
        raise ValueError(f"tasks must be a non-empty list of FashionAI tasks, got {list(tasks)!r}")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    return _TaskGarments(world, n, seed, split, tasks)


def maybe_statistics(dataset: torch.utils.data.Dataset) -> tuple[float, int]:
    """The ``m``-label rate (fraction of items with at least one ``m``) and ``t_max`` (the most ``m`` labels of
    one item) of a data set of FashionAI-row items; ``1 / t_max`` bounds the maybe loss's ``beta``."""
    codes = [dataset[i][1]["labels"] for i in range(len(dataset))]  # renders every item once
    rate = float(np.mean([float(label_rates(c[None])[1]) for c in codes])) if codes else math.nan
    t_max = max((int((c == M).sum()) for c in codes), default=0)
    return rate, t_max


def beta_predictions(setup: AttributeSetup, beta: float | None, maybe_width: float, seed: int, *,
                     network: str = "length") -> TaskPredictions:
    """Train (or load) the joint ``network`` ("length" or "design") with maybe-loss weight ``beta`` on synthetic
    garments whose labels get an ``m`` within ``maybe_width`` of a class boundary; crops from the ground-truth key
    points; score ``val_images`` garments of the same world (one task each)."""
    if network not in ("length", "design"):
        raise ValueError(f"network must be 'length' or 'design', got {network!r}")
    tasks = LENGTH_TASKS if network == "length" else DESIGN_TASKS
    world = dataclasses.replace(setup.world, maybe_width=maybe_width)
    train_set = task_garments(world, setup.train_images, setup.data_seed, "train", tasks)
    val_set = task_garments(world, setup.val_images, setup.data_seed, "val", tasks)
    config = joint_configs(setup.networks(), beta=beta)[network]
    train_key = content_digest({"world": dataclasses.asdict(world), "n": setup.train_images, "seed": setup.data_seed})
    key = _DataKey(train_key, GROUND_TRUTH, library_digest(NETWORK_SOURCES))
    net = train_network(setup, f"attr-beta-{network}", config, seed, train_set, key, monitor=val_set)
    val_tasks = [val_set.tasks[i % len(tasks)] for i in range(len(val_set))]
    val_key = content_digest({"world": dataclasses.asdict(world), "n": setup.val_images, "seed": setup.data_seed})
    return _task_predictions({network: net}, InputCache(val_set), val_tasks, f"val-{val_key}", amp=setup.amp)
