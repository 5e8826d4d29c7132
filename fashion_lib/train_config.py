"""The settings of one training run (:class:`TrainConfig`), checked when one is made: errors name the field and
the range it allows. :func:`fashion_lib.engine.train` runs them (and holds the learning-rate schedule,
:func:`fashion_lib.engine.lr_at`, beside the loop that follows it); :mod:`fashion_lib.checkpoints` names the
fields a run may resume with other values of (``RUNTIME_FIELDS``).

The module imports nothing of the library: configs sit at the bottom of the layers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

__all__ = ["TrainConfig", "OPTIMIZERS", "DEVICES"]

OPTIMIZERS = ("adamw", "sgd")
DEVICES = ("auto", "cpu", "cuda")


def _check_int(name: str, value: Any, lo: int, hi: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < lo or (hi is not None and value > hi):
        bound = f"[{lo}, {hi}]" if hi is not None else f">= {lo}"
        raise ValueError(f"TrainConfig.{name} must be an int {bound}, got {value!r}")


def _check_float(name: str, value: Any, lo: float, hi: float, *, lo_open: bool = False, hi_open: bool = False
                 ) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > lo if lo_open else value >= lo) and (value < hi if hi_open else value <= hi)
    if not ok:
        bound = f"{'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"
        raise ValueError(f"TrainConfig.{name} must be a finite number in {bound}, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one training run; validated at construction (errors name the field and the allowed range).

    Every field except those in :data:`fashion_lib.checkpoints.RUNTIME_FIELDS` is *training-relevant*: a checkpoint
    written with other values of it is refused on resume.
    """

    steps: int = 1000  # optimizer steps of the whole run (>= 1); the LR schedule spans them
    batch_size: int = 8  # GLOBAL batch (images per step over all processes); divisible by the world size
    lr: float = 1e-3  # peak learning rate, reached at the end of the warm-up (> 0)
    weight_decay: float = 1e-4  # decoupled (AdamW) or L2 (SGD) decay, on weights of >= 2 dims only; >= 0
    optimizer: str = "adamw"  # "adamw" or "sgd"
    momentum: float = 0.9  # SGD momentum in [0, 1); unused by AdamW (betas 0.9, 0.999)
    warmup_steps: int = 100  # linear warm-up from lr / warmup_steps to lr over these steps; in [0, steps]
    min_lr_ratio: float = 0.01  # cosine decay after the warm-up ends at lr * min_lr_ratio on the last step; [0, 1]
    grad_clip: float | None = None  # max global gradient L2 norm, or None for no clipping; > 0
    checkpoint_every: int = 100  # steps between checkpoints (one is always written at the end); >= 1
    log_every: int = 10  # steps between rows of metrics.csv / log lines (the last step is always logged); >= 1
    eval_every: int = 0  # steps between calls of the evaluate hook; 0: only at the end; >= 0
    seed: int = 0  # data order and global RNG seed (rank r uses seed + r for the RNGs); in [0, 2**31 - 1]
    device: str = "auto"  # "auto" (CUDA if available), "cpu" or "cuda"
    amp: bool = False  # bf16 autocast of the forward pass (CUDA, or a CPU with native bf16; else ignored, logged)
    channels_last: bool = False  # convert the model's 4-d weights to channels-last memory format
    compile: bool = False  # torch.compile the (wrapped) model; CUDA only, ignored with a log line on CPU
    num_workers: int = 0  # DataLoader worker processes (0: load in the training process); >= 0

    def __post_init__(self) -> None:
        _check_int("steps", self.steps, 1)
        _check_int("batch_size", self.batch_size, 1)
        object.__setattr__(self, "lr", _check_float("lr", self.lr, 0.0, math.inf, lo_open=True, hi_open=True))
        object.__setattr__(self, "weight_decay", _check_float("weight_decay", self.weight_decay, 0.0, math.inf,
                                                              hi_open=True))
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"TrainConfig.optimizer must be one of {list(OPTIMIZERS)}, got {self.optimizer!r}")
        object.__setattr__(self, "momentum", _check_float("momentum", self.momentum, 0.0, 1.0, hi_open=True))
        _check_int("warmup_steps", self.warmup_steps, 0, self.steps)
        object.__setattr__(self, "min_lr_ratio", _check_float("min_lr_ratio", self.min_lr_ratio, 0.0, 1.0))
        if self.grad_clip is not None:
            object.__setattr__(self, "grad_clip", _check_float("grad_clip", self.grad_clip, 0.0, math.inf,
                                                               lo_open=True, hi_open=True))
        _check_int("checkpoint_every", self.checkpoint_every, 1)
        _check_int("log_every", self.log_every, 1)
        _check_int("eval_every", self.eval_every, 0)
        _check_int("seed", self.seed, 0, 2**31 - 1)
        if self.device not in DEVICES:
            raise ValueError(f"TrainConfig.device must be one of {list(DEVICES)}, got {self.device!r}")
        for name in ("amp", "channels_last", "compile"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"TrainConfig.{name} must be a bool, got {getattr(self, name)!r}")
        _check_int("num_workers", self.num_workers, 0)
