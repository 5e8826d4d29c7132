"""Training and scoring the attribute networks, shared by Tables 2 and 3 and the beta ablation.

Paper, sections IV.B and IV.C. Each network trains through :func:`fashion_lib.engine.train` on the images of its
own tasks for ``epochs`` passes, in a run folder named by everything that shapes it (:func:`train_network`), so
notebooks share trained networks; the early-stopped per-task baseline instead trains up to ``max_epochs`` passes on
its task's images less a seeded held-out share, stops once the held-out loss has not improved for ``patience``
passes (:func:`stop_now`) and keeps its best pass's weights (:func:`best_pass`). Validation items scored after every
pass give the learning curves (:func:`learning_curves`, :func:`stopping_passes`); :class:`InputCache` crops each
scored image once for every seed and row.

Imports :mod:`~fashion_lib.experiments.attribute_data` (the set-up); the tables' modules import this one.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fashion_lib.attributes import Y
from fashion_lib.data.transforms import collate
from fashion_lib.engine import METRICS_NAME, TrainConfig, bf16_native, run_dir_for, train
from fashion_lib.experiments import TRAINING_SOURCES, exclusive, runs_dir, seeded_build
from fashion_lib.experiments.attribute_data import AttributeSetup
from fashion_lib.io import atomic_write
from fashion_lib.losses import maybe_weighted_ce
from fashion_lib.metrics import topk_accuracy, topk_recall
from fashion_lib.models.attributes import FashionAIRecognizerConfig, build_recognizer

__all__ = [
    "NETWORK_SOURCES",
    "train_config",
    "CropItems",
    "train_network",
    "stop_now",
    "best_pass",
    "holdout_split",
    "scoring_autocast",
    "batched_predict",
    "InputCache",
    "learning_curves",
    "stopping_passes",
]

log = logging.getLogger(__name__)

_MONITORED = ("val_", "holdout_")  # metrics.csv columns of the figures scored after each pass
# What a trained attribute network depends on besides its settings: the training code, and the code that turns the
# detector's output into crop key points (its weights and the refiner's settings are part of the crops' source).
# A change elsewhere (scoring, reporting) reuses the networks; cached crop key points and predictions are keyed on
# every library source, as the key-point half's predictions are.
NETWORK_SOURCES = (*TRAINING_SOURCES, "refine.py", "refine_config.py", "refine_axis.py", "refine_tensor.py",
                   "refine_pairs.py", "refine_scales.py", "refine_cpu.py", "models/detector.py")


# ------------------------------------------------------------------------------------------------------------------
# Training and predicting: shared by both data sets
# ------------------------------------------------------------------------------------------------------------------


def train_config(setup: AttributeSetup, seed: int, num_images: int, epochs: int = 0) -> TrainConfig:
    """``epochs`` (0: the setup's) passes over ``num_images`` images with the setup's batch size and learning rate;
    the monitor (:func:`learning_curves`) runs after every pass, and the loss is logged 8 times a pass."""
    steps = setup.steps(num_images, epochs)
    per_epoch = math.ceil(num_images / setup.batch_size)
    return TrainConfig(steps=steps, batch_size=setup.batch_size, lr=setup.lr, seed=seed, amp=setup.amp,
                       channels_last=True, warmup_steps=max(1, steps // 10), checkpoint_every=max(50, steps // 2),
                       log_every=max(1, per_epoch // 8), eval_every=per_epoch, grad_clip=10.0)


@dataclass(frozen=True)
class _DataKey:
    """What an attribute network depends on besides its own config (part of its run folder's hash).

    The tables' modules build it too; it keeps its leading underscore because :func:`fashion_lib.engine.run_dir_for`
    hashes the class name, so another name would retrain every network already trained."""

    data: str  # the training split
    keypoints: str  # where the crops' key points come from
    library: str


class CropItems(torch.utils.data.Dataset):
    """Items ``rows`` of ``dataset``, each with ``target["keypoints"]`` set to ``keypoints[row][None]`` (if given)."""

    def __init__(self, dataset: torch.utils.data.Dataset, rows: Sequence[int], keypoints: torch.Tensor | None):
        self.dataset, self.rows, self.keypoints = dataset, list(rows), keypoints

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict]:
        row = self.rows[index]
        image, target = self.dataset[row]
        if self.keypoints is not None:
            target = {**target, "keypoints": self.keypoints[row][None]}
        return image, target


def _monitor_fashionai(model: torch.nn.Module, items: torch.utils.data.Dataset, amp: bool) -> dict[str, float]:
    """``val_accuracy``: top-1 accuracy of ``items`` (FashionAI rows, one task each) on their own task."""
    out, targets = batched_predict(model, items, amp=amp)
    hits = [float(t["labels"][int(out[t["task"]][i].argmax())] == Y) for i, t in enumerate(targets)]
    return {"val_accuracy": float(np.mean(hits)) if hits else math.nan}


def _monitor_deepfashion(model: torch.nn.Module, items: torch.utils.data.Dataset, amp: bool) -> dict[str, float]:
    """``val_category_top3`` (networks with a category loss) and ``val_attribute_top3`` (recall over all
    attributes, networks with an attribute loss) of ``items``."""
    out, targets = batched_predict(model, items, amp=amp)
    metrics = {}
    if model.config.category_weight > 0:
        category = torch.stack([t["labels"].reshape(-1)[0] for t in targets]).long() - 1
        metrics["val_category_top3"] = topk_accuracy(out["category"], category, 3)
    if model.config.attribute_weight > 0:
        attributes = torch.stack([t["attributes"].reshape(-1) for t in targets]).long()
        metrics["val_attribute_top3"] = topk_recall(out["attributes"], attributes, 3)["all"]
    return metrics


def stop_now(losses: Sequence[float], patience: int) -> bool:
    """Early stopping's rule: True once the last ``patience`` passes have not lowered the loss below the best
    before them (a tie is no improvement).

    Parameters
    ----------
    losses : the validation loss after each pass so far, in order (finite).
    patience : passes without improvement that end training (>= 1).
    """
    if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
        raise ValueError(f"patience must be an integer >= 1, got {patience!r}")
    return len(losses) - best_pass(losses) >= patience if len(losses) else False


def best_pass(losses: Sequence[float]) -> int:
    """The 1-based pass of the lowest loss (the first of equal ones): the pass whose weights early stopping keeps."""
    values = np.asarray(losses, dtype=float)
    if values.ndim != 1 or not len(values):
        raise ValueError(f"losses must be a non-empty sequence of numbers, got {losses!r}")
    if not np.isfinite(values).all():
        first = int(np.argmin(np.isfinite(values))) + 1
        raise ValueError(f"losses must be finite, got {values[first - 1]} after pass {first}")
    return int(np.argmin(values)) + 1


def holdout_split(n: int, fraction: float, generator: torch.Generator) -> tuple[list[int], list[int]]:
    """A seeded split of ``n`` items into (kept, held out) positions, ``round(fraction * n)`` held out (at least
    one, and at least one kept), both in increasing order."""
    if n < 2:
        raise ValueError(f"n must be >= 2 to hold some items out and train on the others, got {n}")
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1), got {fraction!r}")
    n_out = min(max(1, round(fraction * n)), n - 1)
    order = torch.randperm(n, generator=generator)
    return sorted(order[n_out:].tolist()), sorted(order[:n_out].tolist())


def _holdout_scores(model: torch.nn.Module, items: torch.utils.data.Dataset) -> dict[str, float]:
    """``holdout_loss`` (the network's own training loss, with its beta, mean over ``items``) and
    ``holdout_accuracy`` of FashionAI rows held out of the training images (early stopping's figures)."""
    out, targets = batched_predict(model, items)
    tasks = np.asarray([t["task"] for t in targets])
    total, hits = 0.0, 0.0
    for task in dict.fromkeys(tasks.tolist()):  # a loop over the network's <= 4 tasks
        rows = np.flatnonzero(tasks == task)
        labels = torch.stack([targets[i]["labels"] for i in rows])  # (B_t, C_t)
        # the log of a softmax is a log-softmax, so the loss of these "logits" is the loss of the network's logits
        logp = out[task][torch.from_numpy(rows)].clamp_min(1e-30).log()
        total += float(maybe_weighted_ce(logp, labels, model.config.beta)) * len(rows)
        hits += float((labels.gather(1, logp.argmax(1, keepdim=True)) == Y).sum())
    return {"holdout_loss": total / len(targets), "holdout_accuracy": hits / len(targets)}


_BEST_NAME = "best.pt"  # the weights of the early-stopped network's best pass, beside checkpoint.pt


def train_network(setup: AttributeSetup, name: str, config: Any, seed: int, items: torch.utils.data.Dataset,
                  key: _DataKey, monitor: torch.utils.data.Dataset | None = None, step_images: int = 0,
                  holdout: torch.utils.data.Dataset | None = None) -> tuple[torch.nn.Module, Path]:
    """Train (or load the finished run of) one network on ``items``; returns the model in eval mode and its run.

    ``monitor``: validation items scored after every pass (their figures become columns of the run's
    ``metrics.csv``, read by :func:`learning_curves`); shown on the page, never used to choose anything.
    ``step_images``: the schedule is ``epochs`` passes over this many images (0: over ``items``).
    ``holdout``: FashionAI rows held out of the training images; early stopping: up to ``max_epochs`` passes
    (the schedule spans them), ended by :func:`stop_now` on their loss after each pass; the weights of the best
    pass (:func:`best_pass`) are returned."""
    epochs = setup.max_epochs if holdout is not None else 0
    tc = train_config(setup, seed, step_images or len(items), epochs)
    tag = f"-stop{setup.patience}-holdout{len(holdout)}" if holdout is not None else ""
    run_dir = run_dir_for(runs_dir(), f"{name}{tag}-s{seed}", config, tc, key)
    model = seeded_build(build_recognizer, config, seed)
    evaluate = stop = None
    if monitor is not None and len(monitor):
        score = _monitor_fashionai if isinstance(config, FashionAIRecognizerConfig) else _monitor_deepfashion
        evaluate = lambda m, step: score(m, monitor, setup.amp)  # noqa: E731
    if holdout is not None:
        evaluate = _keeping_best(run_dir / _BEST_NAME, holdout, evaluate, tc.eval_every)
        stop = lambda history: stop_now([h["holdout_loss"] for h in history], setup.patience)  # noqa: E731
    with exclusive(run_dir):  # another notebook running beside this one may be training the same network
        result = train(model, items, tc, run_dir, evaluate=evaluate, stop=stop, progress=False)
    if result.resumed_from != result.step:
        log.info("%s: %d steps in %.0f s (%.1f img/s)", run_dir.name, result.step, result.wall_time_s,
                 result.images_per_s)
    if holdout is not None:
        best = torch.load(run_dir / _BEST_NAME, map_location="cpu", weights_only=False)
        chosen = best_pass(_read_column(run_dir / METRICS_NAME, "holdout_loss"))
        if best["pass"] != chosen:
            raise ValueError(f"{run_dir / _BEST_NAME}: holds pass {best['pass']}, but the held-out losses of "
                             f"{METRICS_NAME} choose pass {chosen}; delete the run folder and train again")
        result.model.load_state_dict(best["model"])
    # channels-last: the layout the engine trains in (a loaded finished run comes back contiguous)
    return result.model.to(memory_format=torch.channels_last).eval(), run_dir


def _keeping_best(path: Path, holdout: torch.utils.data.Dataset,
                  monitor: Callable[[torch.nn.Module, int], dict[str, float]] | None, per_pass: int
                  ) -> Callable[[torch.nn.Module, int], dict[str, float]]:
    """An evaluate hook: the monitor's figures and :func:`_holdout_scores`, saving the weights to ``path`` with
    their 1-based ``pass`` (``per_pass`` steps each) whenever the held-out loss is the lowest so far."""

    def evaluate(model: torch.nn.Module, step: int) -> dict[str, float]:
        values = {**(monitor(model, step) if monitor is not None else {}), **_holdout_scores(model, holdout)}
        # a file left by an interrupted attempt holds a pass this one replays bit for bit (same seed, same data),
        # so only a strictly lower loss replaces it
        prior = torch.load(path, map_location="cpu", weights_only=False)["holdout_loss"] if path.is_file() else math.inf
        if values["holdout_loss"] < prior:
            with atomic_write(path, "wb") as f:
                torch.save({"pass": math.ceil(step / per_pass), "holdout_loss": values["holdout_loss"],
                            "model": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}}, f)
        return values

    return evaluate


def _read_column(path: Path, column: str) -> list[float]:
    """The non-empty values of ``column`` in a run's ``metrics.csv``, in step order ([] without the file)."""
    import pandas as pd

    if not path.is_file():
        return []
    rows = pd.read_csv(path)
    return rows[column].dropna().tolist() if column in rows.columns else []


def scoring_autocast(model: torch.nn.Module, amp: bool) -> contextlib.AbstractContextManager:
    """The autocast a network is scored under: bf16 with ``amp`` where the hardware has it (as its training forward
    ran: ``AttributeSetup.amp``), else none."""
    device = next(model.parameters()).device
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp and bf16_native(device))


def batched_predict(model: torch.nn.Module, items: torch.utils.data.Dataset, batch_size: int = 64, *,
                    amp: bool = False) -> tuple[dict[str, torch.Tensor], list[dict]]:
    """``model.predict`` over ``items`` in chunks (under :func:`scoring_autocast`): dict output name -> (B, ...)
    concatenated, and the B targets."""
    parts: list[dict] = []
    targets: list[dict] = []
    for lo in range(0, len(items), batch_size):  # chunks of images
        images, chunk = collate([items[i] for i in range(lo, min(lo + batch_size, len(items)))])
        with scoring_autocast(model, amp):
            parts.append(model.predict(images, chunk))
        targets.extend(chunk)
    return ({k: torch.cat([p[k] for p in parts]) for k in parts[0]} if parts else {}), targets


def learning_curves(predictions: Mapping[str, Sequence[Any]]):
    """Per-pass learning curves of every network behind ``predictions`` (method -> one per seed: a table's
    predictions, whose ``runs`` name the (network, run folder) that scored them), read from the runs'
    ``metrics.csv``: a long DataFrame with columns ``method``, ``seed`` (position in the list), ``network``,
    ``epoch`` (1-based pass), ``train_loss`` (mean of the loss rows logged in that pass) and each monitor column
    (``val_accuracy``; DeepFashion ``val_category_top3`` / ``val_attribute_top3``; an early-stopped network's
    ``holdout_loss`` / ``holdout_accuracy``), scored after the pass."""
    import pandas as pd

    frames = []
    for method, per_seed in predictions.items():  # over the few methods
        for seed, pred in enumerate(per_seed):  # over the few seeds
            for network, run in pred.runs:  # over the 1 to 8 networks
                path = Path(run) / METRICS_NAME
                if not path.is_file():
                    raise FileNotFoundError(f"{path}: no metrics of the network {network!r} of {str(method)!r}")
                rows = pd.read_csv(path)
                evaluated = rows.dropna(subset=[c for c in rows.columns if c.startswith(_MONITORED)], how="all")
                if not {c for c in rows.columns if c.startswith("val_")}:
                    raise ValueError(f"{path}: no val_ column (a run trained without a monitor)")
                # pass e spans the steps after the (e-1)-th evaluation up to the e-th (eval_every = one pass)
                bounds = [0, *evaluated["step"].tolist()]
                epoch = np.searchsorted(np.asarray(bounds[1:]), rows["step"].to_numpy(), side="left") + 1
                loss = rows.assign(epoch=epoch).dropna(subset=["total"]).groupby("epoch")["total"].mean()
                curve = evaluated.drop(columns=[c for c in evaluated.columns if not c.startswith(_MONITORED)])
                curve.insert(0, "epoch", np.arange(1, len(curve) + 1))
                curve.insert(1, "train_loss", loss.reindex(curve["epoch"]).to_numpy())
                frames.append(curve.assign(method=method, seed=seed, network=network))
    if not frames:
        raise ValueError("predictions hold no network runs")
    out = pd.concat(frames, ignore_index=True)
    return out[["method", "seed", "network", "epoch", "train_loss",
                *[c for c in out.columns if c.startswith(_MONITORED)]]]


def stopping_passes(curves):
    """The pass early stopping kept for every network with a held-out loss in ``curves`` (:func:`learning_curves`):
    a DataFrame with columns ``method``, ``seed``, ``network``, ``passes`` (trained before it stopped), ``chosen``
    (:func:`best_pass` of its held-out losses) and the ``holdout_loss``, ``holdout_accuracy`` and
    ``val_accuracy`` of the chosen pass."""
    import pandas as pd

    if "holdout_loss" not in curves.columns:
        raise ValueError("curves hold no early-stopped network (no holdout_loss column)")
    rows = []
    stopped = curves.dropna(subset=["holdout_loss"])
    for (method, seed, network), run in stopped.groupby(["method", "seed", "network"], sort=False):  # networks
        run = run.sort_values("epoch")
        chosen = best_pass(run["holdout_loss"].tolist())
        at = run.iloc[chosen - 1]
        rows.append({"method": method, "seed": seed, "network": network, "passes": len(run), "chosen": chosen,
                     "holdout_loss": at["holdout_loss"], "holdout_accuracy": at.get("holdout_accuracy", math.nan),
                     "val_accuracy": at.get("val_accuracy", math.nan)})
    return pd.DataFrame(rows)


class InputCache:
    """The network inputs (crops) of a split's images, each computed once: every seed and every row whose networks
    crop alike (same key points, crop kind, margins and input size) scores the same inputs, and on a large
    validation set decoding and cropping cost more than the small networks' forward.

    Holds ``(B, 3, S, S)`` float per kind of crop (about 0.9 GB for 19,200 images at 64 px)."""

    def __init__(self, items: torch.utils.data.Dataset, batch_size: int = 64) -> None:
        self.items, self.batch_size = items, batch_size
        self._inputs: dict[tuple, torch.Tensor] = {}
        self._done: dict[tuple, torch.Tensor] = {}
        self.labels: dict[int, torch.Tensor] = {}  # row -> its (C,) label codes, read with its image

    def __call__(self, model: torch.nn.Module, rows: Sequence[int]) -> torch.Tensor:
        """``(len(rows), 3, S, S)`` the inputs of ``model`` for items ``rows`` (:meth:`crop_inputs`)."""
        c = model.config
        key = (c.crop, c.crops, c.schema, c.net.input_size, tuple(model.mean.flatten().tolist()),
               tuple(model.std.flatten().tolist()))
        if key not in self._inputs:
            S = c.net.input_size
            self._inputs[key] = torch.empty(len(self.items), 3, S, S)
            self._done[key] = torch.zeros(len(self.items), dtype=torch.bool)
        inputs, done = self._inputs[key], self._done[key]
        missing = [r for r in rows if not done[r]]
        for lo in range(0, len(missing), self.batch_size):  # chunks of images
            chunk = missing[lo:lo + self.batch_size]
            images, targets = collate([self.items[i] for i in chunk])
            with torch.no_grad():
                inputs[chunk] = model.crop_inputs(images, targets)[0].to(inputs.device)
            done[chunk] = True
            self.labels.update({i: t["labels"] for i, t in zip(chunk, targets, strict=True)})
        return inputs[list(rows)]
