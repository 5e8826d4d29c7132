"""The one training loop of the study: every detector and attribute network is trained by :func:`train`.

The engine knows nothing of the model it trains. It relies on torchvision detection's convention: in train mode
``model(images, targets)`` takes a list of ``(3, H, W)`` float images and a list of target dicts and returns a
dict of scalar loss terms; the loss that is minimised is their sum.

What a run guarantees (paper-independent engineering, issue 7):

- **Data order.** The global batch of training step ``s`` (1-based) is a fixed function of ``(seed, s)``
  (:mod:`fashion_lib.data.order`); rank ``r`` of ``W`` processes takes the ``r``-th slice of that same batch, so
  the order is independent of resuming and of the world size.
- **Randomness.** Randomness inside models (torchvision samples proposals with the global torch RNG) is seeded
  here: a fresh run calls ``torch.manual_seed(seed + rank)`` (and seeds NumPy's and Python's global generators
  alike) just before its first step. This is the one place the library seeds the global RNGs. Their states
  are saved in every checkpoint, per rank, and restored on resume.
- **Checkpoints** (``run_dir/checkpoint.pt``) are written atomically by rank 0 every ``checkpoint_every`` steps
  and at the end. A run started again resumes from it; on CPU, a run killed at any point (even ``kill -9``) and
  started again ends with weights bit-identical to an uninterrupted run (same machine, same thread count). A
  finished run is a cache hit: :func:`train` loads and returns the model without training. The checkpoint of a
  finished run keeps the weights and the run's record only (no optimiser, scheduler or RNG state: about a third of
  an AdamW checkpoint) unless ``train(..., keep_resume_state=True)``.
- **Integrity.** Checkpoints are checksummed and checked against the model and the training settings before
  anything of them is loaded (:mod:`fashion_lib.checkpoints`, which writes and reads them); a corrupt or truncated
  checkpoint, or one of other settings, another model or another dataset length, is refused with a
  :class:`~fashion_lib.checkpoints.CheckpointError`; nothing is ever loaded silently.
- **Metrics** go to ``run_dir/metrics.csv`` (one row per logged or evaluated step, rewritten atomically); rows
  beyond the checkpoint a run resumes from are dropped, so every step appears once.
- **Stopping early.** An optional ``stop`` hook sees every evaluation so far after each one (those before a resume
  too, read back from ``metrics.csv``) and may end the run there: its final checkpoint is written at that step,
  marked ``stopped``, and a later call returns it as a finished run (the schedule still spans ``config.steps``).
- **A non-finite loss** stops the run with :class:`FloatingPointError` naming the terms, their values and the step,
  before the bad step touches the weights or a checkpoint.
- **Distributed.** Under ``torchrun --nproc_per_node=N`` (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` set) the same
  call initialises the process group (NCCL on CUDA, gloo on CPU; :mod:`fashion_lib.distributed`), wraps the model
  in DistributedDataParallel and shards each global batch; rank 0 logs, evaluates and checkpoints; every rank
  loads on resume (``run_dir`` must be on a file system all ranks share). Without those variables it runs in one
  process.
- **Where the hardware has it**: bf16 autocast (``amp``) on CUDA and on CPUs with native bf16 instructions
  (:func:`bf16_native`; 1.3-1.6x faster training of the ``cpu`` Keypoint R-CNN preset on this machine's AMD EPYC);
  ``torch.compile`` (``compile``) on CUDA only. Where not available they are ignored, with a log line.

:func:`train` reads as torchvision's reference ``train.py``: set-up (device and process group, the run's
checkpoint, optimiser, wrappers, data, RNGs), then a short loop body (:func:`_optimisation_step`) followed by the
log, evaluation and checkpoint hooks.

A run's settings are a :class:`TrainConfig`, checked where it is defined (:mod:`fashion_lib.train_config`) and
importable from here; the learning-rate schedule it implies (:func:`lr_at`) stays beside the loop that follows it.

Usage::

    config = TrainConfig(steps=2000, batch_size=8, lr=1e-3, warmup_steps=100)
    run_dir = run_dir_for("runs", "keypoint_rcnn", model_config, config)
    result = train(model, dataset, config, run_dir, evaluate=lambda m, step: {"NE": ne_of(m)})
"""

from __future__ import annotations

import contextlib
import csv
import logging
import math
import os
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from fashion_lib.checkpoints import (
    CHECKPOINT_NAME,
    read_run_checkpoint,
    restore_training_state,
    save_checkpoint,
    set_rng_state,
)
from fashion_lib.data.order import StepBatchSampler
from fashion_lib.data.transforms import collate
from fashion_lib.distributed import barrier, broadcast_flag, data_parallel, init_distributed, mean_over_processes
from fashion_lib.io import atomic_write
from fashion_lib.provenance import content_digest, git_state
from fashion_lib.train_config import TrainConfig  # its home; callers import it from here too (__all__)

__all__ = ["TrainConfig", "TrainResult", "METRICS_NAME", "train", "run_dir_for", "lr_at", "bf16_native"]

log = logging.getLogger(__name__)

METRICS_NAME = "metrics.csv"

_FIXED_COLUMNS = ("total", "lr", "images_per_s", "elapsed_s")


# ----------------------------------------------------------------------- hardware, schedule and run folders


def bf16_native(device: torch.device | str) -> bool:
    """True where bf16 autocast is faster than float32: CUDA, and CPUs with native bf16 instructions (AVX512-BF16 or
    AMX; oneDNN emulates bf16 elsewhere, slower than float32)."""
    device = torch.device(device)
    if device.type == "cuda":
        return True
    return device.type == "cpu" and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def lr_at(config: TrainConfig, step: int) -> float:
    """The learning rate used by training step ``step`` (1-based, as in ``metrics.csv``).

    Linear warm-up ``lr * step / warmup_steps`` for ``step <= warmup_steps``, then a cosine from ``lr`` (at the
    end of the warm-up) to ``lr * min_lr_ratio`` (at ``step == steps``)::

        lr * (m + (1 - m) * (1 + cos(pi * (step - warmup_steps) / (steps - warmup_steps))) / 2)
    """
    if isinstance(step, bool) or not isinstance(step, int) or not 1 <= step <= config.steps:
        raise ValueError(f"step must be an int in [1, {config.steps}], got {step!r}")
    return config.lr * _lr_factor(config, step)


def _lr_factor(config: TrainConfig, step: int) -> float:
    if step <= config.warmup_steps:
        return step / config.warmup_steps
    progress = (step - config.warmup_steps) / (config.steps - config.warmup_steps)
    m = config.min_lr_ratio
    return m + (1.0 - m) * 0.5 * (1.0 + math.cos(math.pi * progress))


def run_dir_for(root: str | os.PathLike, name: str, *configs: Any) -> Path:
    """``root/name-<hash>``: one folder per combination of settings, reused by equal settings.

    ``hash`` is the first 12 hex digits of the SHA-256 of the JSON (sorted keys) of each config's class name and
    ``asdict``, in the order given. Pass every config that shapes the result (model, data, training).
    """
    if not isinstance(name, str) or not name or name.startswith(".") or "/" in name or os.sep in name:
        raise ValueError(f"name must be a non-empty folder name without '/' or a leading '.', got {name!r}")
    if not configs:
        raise ValueError("run_dir_for needs at least one config dataclass")
    payload = []
    for i, config in enumerate(configs):
        if not is_dataclass(config) or isinstance(config, type):
            raise TypeError(f"configs[{i}] must be a dataclass instance, got {type(config).__name__}")
        payload.append({"class": type(config).__name__, "fields": asdict(config)})
    return Path(root) / f"{name}-{content_digest(payload)}"


# ------------------------------------------------------------------------------------------------ metrics CSV


class _MetricsLog:
    """``metrics.csv`` of a run: one row per logged or evaluated step, columns in the order first seen. Rows beyond
    ``last_step`` (written after the checkpoint the run resumes from) are dropped, so every step appears once."""

    def __init__(self, path: Path, last_step: int) -> None:
        self.path, self.columns, self.rows = path, [], {}
        if last_step == 0 or not path.is_file():
            return
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            self.columns = list(reader.fieldnames or [])
            for row in reader:
                with contextlib.suppress(KeyError, ValueError):
                    step = int(row["step"])
                    if step <= last_step:
                        self.rows[step] = {k: v for k, v in row.items() if v not in (None, "")}

    def record(self, step: int, values: Mapping[str, Any]) -> None:
        """Add ``values`` to the row of ``step`` (and any new column)."""
        if not self.columns:
            self.columns.append("step")
        self.columns.extend([k for k in values if k not in self.columns])
        self.rows.setdefault(step, {"step": step}).update(values)

    def history(self, keys: Mapping[str, float]) -> list[dict[str, float]]:
        """Every evaluation so far, in step order: ``"step"`` and the values of ``keys`` (rows read back from
        ``metrics.csv`` on resume hold strings)."""
        return [{"step": float(s), **{k: float(self.rows[s][k]) for k in keys}} for s in sorted(self.rows)
                if all(self.rows[s].get(k) not in (None, "") for k in keys)]

    def write(self) -> None:
        with atomic_write(self.path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self.columns, restval="")
            writer.writeheader()
            for step in sorted(self.rows):
                writer.writerow(self.rows[step])


# ------------------------------------------------------------------------------------------------ set-up


@dataclass(frozen=True)
class TrainResult:
    """What :func:`train` returns."""

    model: nn.Module  # the trained model, unwrapped (no DDP / compile wrapper), in eval mode
    step: int  # steps completed (config.steps, or fewer where the stop hook ended the run)
    run_dir: Path  # the run folder: checkpoint.pt and metrics.csv
    resumed_from: int | None  # step of the checkpoint this call started from, None for a fresh run
    wall_time_s: float  # wall time of this call, seconds (near 0 for a cache hit)
    images_per_s: float  # training images per second (all processes) in this call; nan for a cache hit
    metrics: Path  # run_dir / "metrics.csv"
    losses: dict[str, float]  # loss terms and "total" at the last step (averaged over processes)



@dataclass
class _Run:
    """What the loop body and its hooks share: fixed by :func:`train`'s set-up, apart from the clock."""

    model: nn.Module  # unwrapped
    net: nn.Module  # what the forward pass calls: the model, or its DDP / compile wrapper
    optimizer: torch.optim.Optimizer
    scheduler: Any
    config: TrainConfig
    device: torch.device
    rank: int
    world: int
    run_dir: Path
    use_amp: bool
    num_items: int  # dataset length, recorded in checkpoints: it fixes the data order
    start: int  # step this call started from
    elapsed_before: float  # training wall time before this call, seconds (from the checkpoint)
    git: dict[str, Any]
    metrics: _MetricsLog
    t_start: float = 0.0  # perf_counter when the loop started

    @property
    def main(self) -> bool:
        return self.rank == 0

    def elapsed(self) -> float:
        """Training wall time of the whole run so far, seconds."""
        return self.elapsed_before + time.perf_counter() - self.t_start


def _join_job(config: TrainConfig) -> tuple[torch.device, int, int]:
    """The training device, this process's rank and the world size (joining a ``torchrun`` job, if any)."""
    if config.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("TrainConfig.device is 'cuda' but no CUDA device is available; use 'auto' or 'cpu'")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu") if config.device == "auto" else (
        torch.device(config.device))
    rank, world, local_rank = init_distributed(device)
    if device.type == "cuda":
        device = torch.device("cuda", local_rank if world > 1 else torch.cuda.current_device())
    if config.batch_size % world:
        raise ValueError(f"TrainConfig.batch_size (global) = {config.batch_size} is not divisible by the world "
                         f"size {world}")
    return device, rank, world


def _make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameter")
    decay, no_decay = [p for p in params if p.ndim >= 2], [p for p in params if p.ndim < 2]
    groups = [g for g in ({"params": decay, "weight_decay": config.weight_decay},
                          {"params": no_decay, "weight_decay": 0.0}) if g["params"]]
    if config.optimizer == "adamw":
        # one fused kernel over all tensors: for the cpu preset's 14.4 M parameters on the 2-core CPU, 47 ms a step
        # against 325 ms for the default per-tensor loop (measured on a loaded machine); the same update up to rounding
        fused = all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in params)
        return torch.optim.AdamW(groups, lr=config.lr, fused=fused or None)
    return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum)


def _to_device(images: Sequence[torch.Tensor], targets: Sequence[Mapping[str, Any]], device: torch.device
               ) -> tuple[list[torch.Tensor], list[dict[str, Any]]]:
    if device.type == "cpu":
        return list(images), [dict(t) for t in targets]
    images = [im.to(device, non_blocking=True) for im in images]
    targets = [{k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in t.items()}
               for t in targets]
    return images, targets


def _check_losses(losses: Any, step: int) -> None:
    if not isinstance(losses, Mapping) or not losses:
        raise TypeError(f"step {step}: in train mode the model must return a non-empty dict of scalar loss "
                        f"tensors (torchvision detection convention), got {type(losses).__name__}")
    bad = [k for k, v in losses.items() if not (torch.is_tensor(v) and v.numel() == 1)]
    if bad:
        raise TypeError(f"step {step}: loss terms {bad} are not scalar tensors")




def _wrap(model: nn.Module, config: TrainConfig, device: torch.device, world: int) -> tuple[nn.Module, bool]:
    """The module the forward pass calls (DDP with several processes, compiled on CUDA if asked) and whether it runs
    under bf16 autocast; an option the hardware lacks is ignored with a log line."""
    use_amp = config.amp and bf16_native(device)
    if config.amp and not use_amp:
        log.info("TrainConfig.amp ignored: this %s has no native bf16 arithmetic, where autocast would be slower "
                 "than float32", device)
    net = data_parallel(model, device, world)
    if config.compile:
        if device.type == "cuda":
            net = torch.compile(net)
        else:
            log.info("TrainConfig.compile ignored: torch.compile is used on CUDA only (device %s)", device)
    return net, use_amp


def _loader(dataset: torch.utils.data.Dataset, config: TrainConfig, collate_fn: Callable, start: int, rank: int,
            world: int, device: torch.device) -> torch.utils.data.DataLoader:
    """Batches of steps ``start + 1 .. config.steps``, this rank's shard of each (:class:`StepBatchSampler`)."""
    sampler = StepBatchSampler(len(dataset), config.batch_size, config.seed, steps=config.steps, start_step=start,
                               rank=rank, world_size=world)
    return torch.utils.data.DataLoader(
        dataset, batch_sampler=sampler, collate_fn=collate_fn, num_workers=config.num_workers,
        pin_memory=device.type == "cuda", generator=torch.Generator().manual_seed(config.seed),
    )


def _seed_global_rngs(seed: int) -> None:
    # The one place the library seeds the global generators: torchvision's samplers draw from them.
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002
    random.seed(seed)


def _git_commit() -> dict[str, Any]:
    return git_state(Path(__file__).resolve().parents[1])



def _start_rngs(ckpt: Mapping[str, Any] | None, config: TrainConfig, run: _Run, path: Path) -> None:
    """Seed a fresh run's global RNGs, or restore this rank's states from the checkpoint it resumes from."""
    if ckpt is None:
        _seed_global_rngs(config.seed + run.rank)
    elif len(ckpt["rng"]) == run.world:
        set_rng_state(ckpt["rng"][run.rank], run.device)
    else:
        log.warning("%s was written by %d processes, now %d: the models' random draws will not replay exactly",
                    path, len(ckpt["rng"]), run.world)
        _seed_global_rngs(int(np.random.SeedSequence([config.seed, run.rank, run.start]).generate_state(1)[0])
                          % 2**31)


@contextlib.contextmanager
def _progress_bar(config: TrainConfig, start: int, show: bool, name: str) -> Iterator[tqdm]:
    """A tqdm bar over the run's steps (disabled unless ``show``), log lines printed above it."""
    bar = tqdm(total=config.steps, initial=start, disable=not show, desc=name, unit="step", dynamic_ncols=True)
    if show:
        # imported only here: tqdm.contrib imports tqdm.auto, which warns inside a notebook without ipywidgets
        from tqdm.contrib.logging import logging_redirect_tqdm
    with logging_redirect_tqdm() if show else contextlib.nullcontext(), bar:
        yield bar


# ------------------------------------------------------------------------------------------- step and hooks


def _optimisation_step(run: _Run, images: list[torch.Tensor], targets: list[dict[str, Any]], step: int
                       ) -> tuple[dict[str, float], float]:
    """Forward, check, backward, update. Returns the loss terms and ``"total"`` (averaged over processes) and the
    learning rate the update used. Raises FloatingPointError before anything changes if a term is not finite."""
    model, config, optimizer = run.model, run.config, run.optimizer
    device_type = next(model.parameters()).device.type
    with torch.autocast(device_type, dtype=torch.bfloat16) if run.use_amp else contextlib.nullcontext():
        loss_dict = run.net(images, targets)
    _check_losses(loss_dict, step)
    names = list(loss_dict)
    values = torch.stack([loss_dict[k].detach().float().reshape(()) for k in names])  # (T,)
    values = mean_over_processes(values, run.world).cpu()  # one synchronisation per step, as torchvision's loop
    if not torch.isfinite(values).all():
        bad = ", ".join(f"{k}={v:g}" for k, v in zip(names, values.tolist(), strict=True) if not math.isfinite(v))
        raise FloatingPointError(f"non-finite loss at step {step}: {bad}; stopping (the last checkpoint in "
                                 f"{run.run_dir} is from before this step)")
    total = sum(loss_dict.values())
    optimizer.zero_grad(set_to_none=True)
    total.backward()
    if config.grad_clip is not None:
        norm = float(nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip))
        if not math.isfinite(norm):
            raise FloatingPointError(f"non-finite gradient norm at step {step}: {norm}; stopping")
    lr = optimizer.param_groups[0]["lr"]
    optimizer.step()
    run.scheduler.step()
    losses = dict(zip(names, values.tolist(), strict=True))
    losses["total"] = float(values.sum())
    return losses, lr


@dataclass
class _Throughput:
    """Training time of this call, and images per second over the steps since the last logged row."""

    batch_size: int
    train_time: float = 0.0
    window_time: float = 0.0
    window_steps: int = 0

    def add(self, seconds: float) -> None:
        self.train_time, self.window_time, self.window_steps = (self.train_time + seconds,
                                                                self.window_time + seconds, self.window_steps + 1)

    def window_rate(self) -> float:
        return self.window_steps * self.batch_size / max(self.window_time, 1e-9)


def _log_hook(run: _Run, speed: _Throughput, step: int, losses: Mapping[str, float], lr: float) -> None:
    """Rank 0: a row of ``metrics.csv`` and a log line; starts a new throughput window."""
    ips = speed.window_rate()
    run.metrics.record(step, {**losses, "lr": lr, "images_per_s": ips, "elapsed_s": run.elapsed()})
    speed.window_time, speed.window_steps = 0.0, 0
    log.info("step %d/%d  loss %.4f  lr %.3g  %.1f img/s", step, run.config.steps, losses["total"], lr, ips)


def _evaluate(evaluate: Callable[[nn.Module, int], Mapping[str, float]], model: nn.Module, step: int,
              reserved: set[str]) -> dict[str, float]:
    """Run the evaluation hook in eval mode without gradients, leaving the global RNG states untouched."""
    py_state, np_state = random.getstate(), np.random.get_state()  # noqa: NPY002
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() and torch.cuda.is_initialized() else []
    model.eval()
    try:
        with torch.random.fork_rng(devices=devices), torch.no_grad():
            values = evaluate(model, step)
    finally:
        model.train()
        random.setstate(py_state)
        np.random.set_state(np_state)  # noqa: NPY002
    if not isinstance(values, Mapping):
        raise TypeError(f"evaluate must return a dict of str -> float, got {type(values).__name__}")
    clash = sorted(set(values) & reserved)
    if clash:
        raise ValueError(f"evaluate returned {clash}, which are metrics.csv columns of the training loop; rename them")
    return {str(k): float(v) for k, v in values.items()}




def _evaluation_hook(run: _Run, evaluate: Callable[[nn.Module, int], Mapping[str, float]],
                     stop: Callable[[Sequence[Mapping[str, float]]], bool] | None, step: int,
                     losses: Mapping[str, float], last: bool) -> tuple[bool, bool]:
    """Rank 0 evaluates, records the values and asks the stop hook; every rank learns its decision. Returns whether
    a row changed (rank 0) and whether the run stops here."""
    evaluated = stopped = False
    if run.main:
        values = _evaluate(evaluate, run.model, step, {"step", *losses, *_FIXED_COLUMNS})
        run.metrics.record(step, values)
        evaluated = True
        log.info("step %d evaluation: %s", step, values)
        stopped = not last and stop is not None and bool(stop(run.metrics.history(values)))
    stopped = broadcast_flag(stopped, run.world)
    barrier(run.world)
    return evaluated, stopped


def _checkpoint_hook(run: _Run, step: int, losses: Mapping[str, float], *, final: bool, stopped: bool,
                     keep_resume_state: bool) -> None:
    """Every rank: write ``checkpoint.pt`` (:func:`~fashion_lib.checkpoints.save_checkpoint`); a run's final
    checkpoint keeps its weights only, unless ``keep_resume_state``."""
    t_ckpt = time.perf_counter()
    save_checkpoint(run.run_dir / CHECKPOINT_NAME, run.model, run.optimizer, run.scheduler, run.config, step,
                    run.device, run.world, run.git, run.elapsed(), losses, run.num_items,
                    resume_state=keep_resume_state or not final, stopped=stopped)
    log.debug("checkpoint at step %d written in %.2f s", step, time.perf_counter() - t_ckpt)


# ------------------------------------------------------------------------------------------------ the loop


def train(
    model: nn.Module,
    dataset: torch.utils.data.Dataset,
    config: TrainConfig,
    run_dir: str | os.PathLike,
    *,
    collate_fn: Callable[[Sequence[Any]], tuple[list[torch.Tensor], list[dict]]] = collate,
    evaluate: Callable[[nn.Module, int], Mapping[str, float]] | None = None,
    stop: Callable[[Sequence[Mapping[str, float]]], bool] | None = None,
    progress: bool = True,
    keep_resume_state: bool = False,
) -> TrainResult:
    """Train ``model`` on ``dataset`` for ``config.steps`` steps, resuming from ``run_dir/checkpoint.pt`` if any.

    Parameters
    ----------
    model : nn.Module
        In train mode ``model(images, targets)`` returns a dict of scalar loss tensors (torchvision detection
        convention); its parameters are trained in place (it is moved to the training device).
    dataset : map-style Dataset
        Items ``(image (3, H, W) float, target dict)``; it should be deterministic per index (augmentations drawn
        from a generator seeded by the index), so equal batch indices give equal data.
    config : TrainConfig
    run_dir : path
        Folder of the run (``checkpoint.pt``, ``metrics.csv``); :func:`run_dir_for` makes one per setting.
    collate_fn : callable
        Turns a list of items into ``(images list, targets list)``; default
        :func:`fashion_lib.data.transforms.collate`.
    evaluate : callable ``(model, step) -> dict[str, float]``, optional
        Called on rank 0 every ``config.eval_every`` steps and after the last step, with the unwrapped model in
        eval mode under ``torch.no_grad()`` and the global RNG states saved and restored around it; its values
        become columns of ``metrics.csv``.
    stop : callable ``(history) -> bool``, optional
        Called on rank 0 after each evaluation with every evaluation of the run so far, in step order: dicts of
        ``"step"`` and the values ``evaluate`` returned (those before a resume too). True ends the run at this
        step; its checkpoint is marked ``stopped`` and a later call returns it, as a finished run. Needs
        ``evaluate``.
    progress : bool
        Show a tqdm progress bar (rank 0 only).
    keep_resume_state : bool
        Keep the optimiser, scheduler and RNG states in the checkpoint of the finished run (to train further from
        it by hand). By default the final checkpoint holds the weights and the run's record only; a finished run is
        reused (a cache hit) either way, and an interrupted one always resumes (its checkpoints keep the state).

    Returns
    -------
    TrainResult
        A finished run (checkpoint at ``config.steps``) returns at once with the model loaded from it.

    Raises
    ------
    CheckpointError
        ``run_dir/checkpoint.pt`` is unreadable or fails its checksum, or its model fingerprint, training settings
        or dataset length differ.
    FloatingPointError
        A loss term (or, with ``grad_clip``, the gradient norm) is not finite; nothing of that step is saved.
    ValueError
        ``config.batch_size`` is not divisible by the world size; ``device='cuda'`` without CUDA.
    """
    t_call = time.perf_counter()
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    if stop is not None and evaluate is None:
        raise ValueError("stop needs evaluate: it decides from the evaluations")
    device, rank, world = _join_job(config)
    run_dir = Path(run_dir)
    ckpt_path, metrics_path = run_dir / CHECKPOINT_NAME, run_dir / METRICS_NAME
    if rank == 0:
        run_dir.mkdir(parents=True, exist_ok=True)
    barrier(world)

    model.to(device)
    ckpt, finished = read_run_checkpoint(ckpt_path, model, config, len(dataset))
    if finished:
        model.load_state_dict(ckpt["model"])
        model.eval()
        log.info("%s: finished run found (step %d), returning it without training", run_dir, ckpt["step"])
        return TrainResult(model, ckpt["step"], run_dir, ckpt["step"], time.perf_counter() - t_call, math.nan,
                           metrics_path, dict(ckpt.get("losses", {})))
    if config.channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = _make_optimizer(model, config)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda i: _lr_factor(config, min(i + 1, config.steps)))
    start, elapsed_before = 0, 0.0
    if ckpt is not None:
        start, elapsed_before = restore_training_state(ckpt, model, optimizer, scheduler)
        log.info("%s: resuming from step %d of %d", run_dir, start, config.steps)
    metrics = _MetricsLog(metrics_path, start if rank == 0 else 0)
    net, use_amp = _wrap(model, config, device, world)
    loader = _loader(dataset, config, collate_fn, start, rank, world, device)
    run = _Run(model, net, optimizer, scheduler, config, device, rank, world, run_dir, use_amp, len(dataset), start,
               elapsed_before, _git_commit() if rank == 0 else {}, metrics)
    _start_rngs(ckpt, config, run, ckpt_path)
    del ckpt

    model.train()
    speed, step, losses = _Throughput(config.batch_size), start, {}
    with _progress_bar(config, start, progress and run.main, run_dir.name) as bar:
        run.t_start = time.perf_counter()
        batches = iter(loader)
        while step < config.steps:
            t_step = time.perf_counter()
            images, targets = next(batches)
            step += 1
            losses, lr = _optimisation_step(run, *_to_device(images, targets, device), step)
            speed.add(time.perf_counter() - t_step)
            last = step == config.steps
            bar.update(1)
            bar.set_postfix(loss=f"{losses['total']:.4f}", img_s=f"{speed.window_rate():.1f}", refresh=last)

            logged = run.main and (step % config.log_every == 0 or last)
            if logged:
                _log_hook(run, speed, step, losses, lr)
            evaluated = stopped = False
            if evaluate is not None and ((config.eval_every and step % config.eval_every == 0) or last):
                evaluated, stopped = _evaluation_hook(run, evaluate, stop, step, losses, last)
            if logged or evaluated:
                metrics.write()
            if step % config.checkpoint_every == 0 or last or stopped:
                _checkpoint_hook(run, step, losses, final=last or stopped, stopped=stopped,
                                 keep_resume_state=keep_resume_state)
            if stopped:
                log.info("%s: stopped by the stop hook at step %d of %d", run_dir, step, config.steps)
                break
    model.eval()
    return TrainResult(model, step, run_dir, start or None, time.perf_counter() - t_call,
                       (step - start) * config.batch_size / max(speed.train_time, 1e-9), metrics_path, losses)
