"""The one training loop of the study: every detector and attribute network is trained by :func:`train`.

The engine knows nothing of the model it trains. It relies on torchvision detection's convention: in train mode
``model(images, targets)`` takes a list of ``(3, H, W)`` float images and a list of target dicts and returns a
dict of scalar loss terms; the loss that is minimised is their sum.

What a run guarantees (paper-independent engineering, issue 7):

- **Data order.** The global batch of training step ``s`` (1-based) is a fixed function of ``(seed, s)``: the
  items at positions ``(s - 1) * B ... s * B - 1`` of the concatenation of epoch permutations, epoch ``e`` being
  permuted by a generator seeded with ``(seed, e)`` (:func:`batch_indices`). Rank ``r`` of ``W`` processes takes
  the ``r``-th contiguous ``B / W`` slice of that same batch, so the order is independent of resuming and of the
  world size.
- **Randomness.** Randomness inside models (torchvision samples proposals with the global torch RNG) is seeded
  here: a fresh run calls ``torch.manual_seed(seed + rank)`` (and seeds NumPy's and Python's global generators
  alike) just before its first step. This is the one place the library touches the global RNGs. Their states
  are saved in every checkpoint, per rank, and restored on resume.
- **Checkpoints** (``run_dir/checkpoint.pt``) are written atomically by rank 0 every ``checkpoint_every`` steps
  and at the end. A run started again resumes from it; on CPU, a run killed at any point (even ``kill -9``) and
  started again ends with weights bit-identical to an uninterrupted run (same machine, same thread count). A
  finished run is a cache hit: :func:`train` loads and returns the model without training. The checkpoint of a
  finished run keeps the weights and the run's record only (no optimiser, scheduler or RNG state: about a third of
  an AdamW checkpoint) unless ``train(..., keep_resume_state=True)``.
- **Integrity.** Every checkpoint carries a SHA-256 of its content (:func:`checkpoint_digest`), written with it and
  verified before anything of it is unpickled; a flipped byte anywhere (weights, optimiser state, the record) is
  refused naming the file. A corrupt or truncated checkpoint, one without a checksum, one written with different
  training settings or for a different model is refused with a :class:`CheckpointError`; nothing is ever loaded
  silently.
- **Metrics** go to ``run_dir/metrics.csv`` (one row per logged or evaluated step, rewritten atomically); rows
  beyond the checkpoint a run resumes from are dropped, so every step appears once.
- **Stopping early.** An optional ``stop`` hook sees every evaluation so far after each one (those before a resume
  too, read back from ``metrics.csv``) and may end the run there: its final checkpoint is written at that step,
  marked ``stopped``, and a later call returns it as a finished run (the schedule still spans ``config.steps``).
- **A non-finite loss** stops the run with :class:`FloatingPointError` naming the terms, their values and the step,
  before the bad step touches the weights or a checkpoint.
- **Distributed.** Under ``torchrun --nproc_per_node=N`` (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` set) the same
  call initialises the process group (NCCL on CUDA, gloo on CPU), wraps the model in DistributedDataParallel and
  shards each global batch; rank 0 logs, evaluates and checkpoints; every rank loads on resume (``run_dir`` must
  be on a file system all ranks share). Without those variables it runs in one process.
- **Where the hardware has it**: bf16 autocast (``amp``) on CUDA and on CPUs with native bf16 instructions
  (:func:`bf16_native`; 1.3-1.6x faster training of the ``cpu`` Keypoint R-CNN preset on this machine's AMD EPYC);
  ``torch.compile`` (``compile``) on CUDA only. Where not available they are ignored, with a log line.

Usage::

    config = TrainConfig(steps=2000, batch_size=8, lr=1e-3, warmup_steps=100)
    run_dir = run_dir_for("runs", "keypoint_rcnn", model_config, config)
    result = train(model, dataset, config, run_dir, evaluate=lambda m, step: {"NE": ne_of(m)})
"""

from __future__ import annotations

import contextlib
import csv
import functools
import hashlib
import logging
import math
import os
import random
import time
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, fields, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from tqdm import tqdm

from fashion_lib.data.transforms import collate
from fashion_lib.distributed import barrier, broadcast_flag, get_rank, init_distributed
from fashion_lib.io import atomic_write
from fashion_lib.provenance import content_digest, git_state

__all__ = [
    "TrainConfig",
    "TrainResult",
    "CheckpointError",
    "CHECKPOINT_NAME",
    "METRICS_NAME",
    "CHECKPOINT_FORMAT",
    "CHECKSUM_RECORD",
    "RUNTIME_FIELDS",
    "train",
    "load_checkpoint",
    "verify_checkpoint",
    "checkpoint_digest",
    "run_dir_for",
    "lr_at",
    "batch_indices",
    "StepBatchSampler",
    "model_fingerprint",
]

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "checkpoint.pt"
METRICS_NAME = "metrics.csv"
CHECKPOINT_FORMAT = 2
"""Version of the checkpoint layout; a checkpoint of another version is refused. 2: checksummed; the resume state
(``optimizer``, ``scheduler``, ``rng``) is optional in the checkpoint of a finished run."""
CHECKSUM_RECORD = "fashion_lib_sha256"
"""Name of the record, inside the checkpoint's zip archive (beside torch's ``data.pkl``), holding the SHA-256 hex
digest of every other record (:func:`checkpoint_digest`)."""

OPTIMIZERS = ("adamw", "sgd")
DEVICES = ("auto", "cpu", "cuda")
RUNTIME_FIELDS = frozenset({"checkpoint_every", "log_every", "eval_every", "device", "channels_last", "compile",
                            "num_workers"})
"""TrainConfig fields that do not change what is learned; a run may resume with other values of these."""

_FIXED_COLUMNS = ("total", "lr", "images_per_s", "elapsed_s")


# --------------------------------------------------------------------------------------------------- config


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

    Every field except those in :data:`RUNTIME_FIELDS` is *training-relevant*: a checkpoint written with other
    values of it is refused on resume.
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


# ------------------------------------------------------------------------------------------------ data order


@functools.lru_cache(maxsize=8)
def _epoch_permutation(num_items: int, seed: int, epoch: int) -> np.ndarray:
    perm = np.random.default_rng([seed, epoch]).permutation(num_items)
    perm.flags.writeable = False
    return perm


def batch_indices(num_items: int, batch_size: int, seed: int, step: int, *, rank: int = 0,
                  world_size: int = 1) -> list[int]:
    """Dataset indices that rank ``rank`` of ``world_size`` processes trains on at step ``step``.

    Parameters
    ----------
    num_items : int
        Length of the dataset (>= 1).
    batch_size : int
        Global batch size; divisible by ``world_size``.
    seed : int
        Data-order seed (>= 0); epoch ``e`` is the permutation drawn by ``numpy.random.default_rng([seed, e])``.
    step : int
        Training step, 1-based.
    rank, world_size : int
        This process and the number of processes.

    Returns
    -------
    indices : list of ``batch_size // world_size`` ints in ``[0, num_items)``: positions
        ``(step - 1) * batch_size + rank * batch_size // world_size`` onwards of the concatenated epoch
        permutations. The shards of ranks ``0 .. W-1``, concatenated, are the global batch of ``world_size = 1``.
    """
    if num_items < 1:
        raise ValueError(f"num_items must be >= 1, got {num_items}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if step < 1:
        raise ValueError(f"step must be >= 1 (steps are 1-based), got {step}")
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank must be in [0, world_size), got rank={rank}, world_size={world_size}")
    if batch_size % world_size:
        raise ValueError(f"batch_size (global) = {batch_size} is not divisible by the world size {world_size}")
    local = batch_size // world_size
    start = (step - 1) * batch_size + rank * local
    positions = np.arange(start, start + local)
    epochs, offsets = np.divmod(positions, num_items)
    out = np.empty(local, dtype=np.int64)
    for epoch in np.unique(epochs):  # a batch spans one epoch, or a few when batch_size > num_items
        sel = epochs == epoch
        out[sel] = _epoch_permutation(num_items, seed, int(epoch))[offsets[sel]]
    return out.tolist()


class StepBatchSampler(torch.utils.data.Sampler):
    """A DataLoader ``batch_sampler`` yielding :func:`batch_indices` for steps ``start_step + 1 .. steps``."""

    def __init__(self, num_items: int, batch_size: int, seed: int, *, steps: int, start_step: int = 0,
                 rank: int = 0, world_size: int = 1) -> None:
        if not 0 <= start_step <= steps:
            raise ValueError(f"start_step must be in [0, steps={steps}], got {start_step}")
        batch_indices(num_items, batch_size, seed, 1, rank=rank, world_size=world_size)  # validates the arguments
        self.num_items, self.batch_size, self.seed = num_items, batch_size, seed
        self.steps, self.start_step, self.rank, self.world_size = steps, start_step, rank, world_size

    def __len__(self) -> int:
        return self.steps - self.start_step

    def __iter__(self) -> Iterator[list[int]]:
        for step in range(self.start_step + 1, self.steps + 1):
            yield batch_indices(self.num_items, self.batch_size, self.seed, step, rank=self.rank,
                                world_size=self.world_size)


# ----------------------------------------------------------------------------------------------- checkpoints


class CheckpointError(ValueError):
    """A checkpoint that cannot be read, or that belongs to other settings or another model."""


def model_fingerprint(model: nn.Module) -> dict[str, Any]:
    """What a checkpoint must match to be loaded into ``model``: its class name and the names and shapes of
    every entry of its ``state_dict`` (parameters and persistent buffers)."""
    return {
        "class": type(model).__name__,
        "tensors": [[name, list(t.shape)] for name, t in model.state_dict().items()],
    }


def _fingerprint_differences(saved: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    out = []
    if saved.get("class") != current["class"]:
        out.append(f"model class: checkpoint {saved.get('class')!r}, now {current['class']!r}")
    a = {name: tuple(shape) for name, shape in saved.get("tensors", [])}
    b = {name: tuple(shape) for name, shape in current["tensors"]}
    missing, extra = [n for n in a if n not in b], [n for n in b if n not in a]
    reshaped = [f"{n} {list(a[n])} -> {list(b[n])}" for n in a if n in b and a[n] != b[n]]
    for label, items in (("only in the checkpoint", missing), ("only in the model", extra), ("shape", reshaped)):
        if items:
            more = f" (+{len(items) - 5} more)" if len(items) > 5 else ""
            out.append(f"{label}: {', '.join(items[:5])}{more}")
    return out


def _config_differences(saved: Mapping[str, Any], config: TrainConfig) -> list[str]:
    now = asdict(config)
    out = []
    for name in (f.name for f in fields(TrainConfig) if f.name not in RUNTIME_FIELDS):
        if name not in saved:
            out.append(f"{name}: absent from the checkpoint, now {now[name]!r}")
        elif saved[name] != now[name]:
            out.append(f"{name}: checkpoint {saved[name]!r}, now {now[name]!r}")
    return out


_REQUIRED_KEYS = ("format", "step", "model", "config", "fingerprint")
_RESUME_KEYS = ("optimizer", "scheduler", "rng")
"""What a run needs to continue; the checkpoint of a finished run may lack them (``keep_resume_state``)."""
_CHUNK = 1 << 20


def checkpoint_digest(archive: zipfile.ZipFile) -> str:
    """SHA-256 hex digest of a checkpoint archive's content: the name, size and bytes of every record except
    :data:`CHECKSUM_RECORD`, in archive order. Raises ``zipfile.BadZipFile`` when a record fails its own CRC."""
    h = hashlib.sha256()
    for info in archive.infolist():
        if info.filename.rpartition("/")[2] == CHECKSUM_RECORD:
            continue
        h.update(f"{info.filename}\0{info.file_size}\0".encode())
        with archive.open(info) as f:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
    return h.hexdigest()


def _append_checksum(f: Any) -> None:
    """Add the :data:`CHECKSUM_RECORD` of the archive ``torch.save`` just wrote to the open file ``f``."""
    with zipfile.ZipFile(f, "a") as archive:
        folder = archive.namelist()[0].partition("/")[0]  # torch's reader expects every record in one folder
        archive.writestr(f"{folder}/{CHECKSUM_RECORD}", checkpoint_digest(archive))


def verify_checkpoint(path: str | os.PathLike) -> None:
    """Check ``path``'s checksum without unpickling anything; raise :class:`CheckpointError` naming the file when
    it is not a complete checkpoint archive, has no checksum, or its content differs from what was written."""
    try:
        with zipfile.ZipFile(path) as archive:
            stored = [i for i in archive.infolist() if i.filename.rpartition("/")[2] == CHECKSUM_RECORD]
            if not stored:
                raise CheckpointError(f"{path}: the checkpoint has no checksum (written by another program or an "
                                      f"engine older than format {CHECKPOINT_FORMAT}); refusing to load it unverified")
            expected = archive.read(stored[0]).decode("ascii", "replace")
            actual = checkpoint_digest(archive)
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as err:  # CheckpointError is a ValueError
        if isinstance(err, CheckpointError):
            raise
        if "CRC" in str(err):  # a record's own CRC-32 caught the damage first
            raise CheckpointError(f"{path}: checksum mismatch, the content differs from what was written (a corrupt "
                                  f"file: {err}); refusing to load it") from None
        raise CheckpointError(f"{path}: cannot read the checkpoint (corrupt or truncated?): not a complete "
                              f"checkpoint archive ({err})") from None
    if actual != expected:
        raise CheckpointError(f"{path}: checksum mismatch, the content differs from what was written (a corrupt "
                              f"file: SHA-256 {actual[:12]}..., recorded {expected[:12]}...); refusing to load it")


def _torch_load(path: Path) -> Any:
    """``torch.load`` of a verified checkpoint, tensors on the CPU; its errors become a :class:`CheckpointError`
    without torch's advice to retry with ``weights_only=False``, which would run code from the file."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises RuntimeError, EOFError, UnpicklingError... for a damaged file
        text = str(err).strip().splitlines()[0] if str(err).strip() else ""
        if "weights_only" in str(err):
            text = "it holds objects other than tensors and plain containers"
        raise CheckpointError(f"{path}: cannot read the checkpoint (corrupt or truncated?): {type(err).__name__}: "
                              f"{text}"[:600]) from None


def _read_checkpoint(path: Path, model: nn.Module, config: TrainConfig | None) -> dict[str, Any]:
    """Verify ``path``'s checksum, load it on the CPU and check it against ``model`` and ``config``; raise
    :class:`CheckpointError`."""
    verify_checkpoint(path)
    ckpt = _torch_load(path)
    if not isinstance(ckpt, dict) or any(k not in ckpt for k in _REQUIRED_KEYS):
        have = sorted(ckpt) if isinstance(ckpt, dict) else type(ckpt).__name__
        raise CheckpointError(f"{path}: not a fashion_lib.engine checkpoint (expected keys {list(_REQUIRED_KEYS)}, "
                              f"got {have})")
    if ckpt["format"] != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: checkpoint format {ckpt['format']!r}, this engine reads {CHECKPOINT_FORMAT}")
    differences = _fingerprint_differences(ckpt["fingerprint"], model_fingerprint(model))
    if differences:
        raise CheckpointError(f"{path}: model fingerprint differs, the checkpoint is for another model: "
                              + "; ".join(differences))
    if config is not None:
        differences = _config_differences(ckpt["config"], config)
        if differences:
            raise CheckpointError(
                f"{path}: written with different training settings: {'; '.join(differences)}. Use another run "
                "folder (run_dir_for gives one per setting) or delete this one."
            )
    return ckpt


def load_checkpoint(path: str | os.PathLike, model: nn.Module, config: TrainConfig | None = None) -> dict[str, Any]:
    """Load the weights of a :func:`train` checkpoint into ``model`` (for inference code).

    The checkpoint is refused (:class:`CheckpointError` naming the path and what differs) when it cannot be read or
    fails its checksum, when its model fingerprint (class name, state-dict names and shapes) differs from
    ``model``'s, or, when ``config`` is given, when a training-relevant field differs. Returns the checkpoint dict
    (``step``, ``config``, ``git``, ``losses``; ``optimizer``, ``scheduler``, ``rng`` unless it is the weights-only
    checkpoint of a finished run); the model's train/eval mode is left as it was.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    ckpt = _read_checkpoint(path, model, config)
    model.load_state_dict(ckpt["model"])
    return ckpt


def _rng_state(device: torch.device) -> dict[str, Any]:
    # NumPy's legacy global generator is saved on purpose (NPY002): user code may draw from it.
    _, key, pos, has_gauss, gauss = np.random.get_state(legacy=True)  # noqa: NPY002
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"key": torch.from_numpy(key.astype(np.int64)), "pos": int(pos), "has_gauss": int(has_gauss),
                  "gauss": float(gauss)},
        "python": random.getstate(),
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: Mapping[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    key = n["key"].numpy().astype(np.uint32)
    np.random.set_state(("MT19937", key, n["pos"], n["has_gauss"], n["gauss"]))  # noqa: NPY002
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def _seed_global_rngs(seed: int) -> None:
    # The one place the library seeds the global generators: torchvision's samplers draw from them.
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002
    random.seed(seed)


def _git_commit() -> dict[str, Any]:
    return git_state(Path(__file__).resolve().parents[1])


# ------------------------------------------------------------------------------------------------ metrics CSV


def _read_metrics(path: Path, last_step: int) -> tuple[list[str], dict[int, dict[str, str]]]:
    """Columns and rows of an existing ``metrics.csv``, keeping rows with ``step <= last_step``."""
    if last_step == 0 or not path.is_file():
        return [], {}
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        columns = list(reader.fieldnames or [])
        rows = {}
        for row in reader:
            with contextlib.suppress(KeyError, ValueError):
                step = int(row["step"])
                if step <= last_step:
                    rows[step] = {k: v for k, v in row.items() if v not in (None, "")}
    return columns, rows


def _write_metrics(path: Path, columns: list[str], rows: Mapping[int, Mapping[str, Any]]) -> None:
    with atomic_write(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, restval="")
        writer.writeheader()
        for step in sorted(rows):
            writer.writerow(rows[step])


def _history(rows: Mapping[int, Mapping[str, Any]], keys: Mapping[str, float]) -> list[dict[str, float]]:
    """Every evaluation so far, in step order: ``"step"`` and the values of ``keys`` (rows read back from
    ``metrics.csv`` on resume hold strings)."""
    return [{"step": float(s), **{k: float(rows[s][k]) for k in keys}} for s in sorted(rows)
            if all(rows[s].get(k) not in (None, "") for k in keys)]


def _add_columns(columns: list[str], keys: Sequence[str]) -> None:
    if not columns:
        columns.append("step")
    for k in keys:
        if k not in columns:
            columns.append(k)


# ------------------------------------------------------------------------------------------------ the loop


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


def _resolve_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("TrainConfig.device is 'cuda' but no CUDA device is available; use 'auto' or 'cpu'")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


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


def _optimisation_step(net: nn.Module, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
                       images: list[torch.Tensor], targets: list[dict[str, Any]], *, config: TrainConfig, step: int,
                       world: int, use_amp: bool, run_dir: Path) -> tuple[dict[str, float], float]:
    """Forward, check, backward, update. Returns the loss terms and ``"total"`` (averaged over processes) and the
    learning rate the update used. Raises FloatingPointError before anything changes if a term is not finite."""
    device_type = next(model.parameters()).device.type
    with torch.autocast(device_type, dtype=torch.bfloat16) if use_amp else contextlib.nullcontext():
        loss_dict = net(images, targets)
    _check_losses(loss_dict, step)
    names = list(loss_dict)
    values = torch.stack([loss_dict[k].detach().float().reshape(()) for k in names])  # (T,)
    if world > 1:
        dist.all_reduce(values)  # SUM: gloo has no AVG
        values /= world
    values = values.cpu()  # one synchronisation per step, as torchvision's reference loop
    if not torch.isfinite(values).all():
        bad = ", ".join(f"{k}={v:g}" for k, v in zip(names, values.tolist(), strict=True) if not math.isfinite(v))
        raise FloatingPointError(f"non-finite loss at step {step}: {bad}; stopping (the last checkpoint in "
                                 f"{run_dir} is from before this step)")
    total = sum(loss_dict.values())
    optimizer.zero_grad(set_to_none=True)
    total.backward()
    if config.grad_clip is not None:
        norm = float(nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip))
        if not math.isfinite(norm):
            raise FloatingPointError(f"non-finite gradient norm at step {step}: {norm}; stopping")
    lr = optimizer.param_groups[0]["lr"]
    optimizer.step()
    scheduler.step()
    losses = dict(zip(names, values.tolist(), strict=True))
    losses["total"] = float(values.sum())
    return losses, lr


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
    device = _resolve_device(config.device)
    rank, world, local_rank = init_distributed(device)
    if device.type == "cuda":
        device = torch.device("cuda", local_rank if world > 1 else torch.cuda.current_device())
    if config.batch_size % world:
        raise ValueError(f"TrainConfig.batch_size (global) = {config.batch_size} is not divisible by the world "
                         f"size {world}")
    main = rank == 0
    run_dir = Path(run_dir)
    ckpt_path, metrics_path = run_dir / CHECKPOINT_NAME, run_dir / METRICS_NAME
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
    barrier(world)

    model.to(device)
    ckpt = _read_checkpoint(ckpt_path, model, config) if ckpt_path.exists() else None
    if ckpt is not None and ckpt.get("num_items") != len(dataset):
        raise CheckpointError(f"{ckpt_path}: written for a dataset of {ckpt.get('num_items')} items, now "
                              f"{len(dataset)}; the data order would differ. Use another run folder.")
    finished = ckpt is not None and (ckpt["step"] == config.steps or bool(ckpt.get("stopped", False)))
    if ckpt is not None and not finished and any(k not in ckpt for k in _RESUME_KEYS):
        raise CheckpointError(f"{ckpt_path}: step {ckpt['step']} of {config.steps} but no resume state "
                              f"({', '.join(k for k in _RESUME_KEYS if k not in ckpt)} missing); cannot continue "
                              "the run. Use another run folder.")
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
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        start, elapsed_before = int(ckpt["step"]), float(ckpt.get("elapsed_s", 0.0))
        log.info("%s: resuming from step %d of %d", run_dir, start, config.steps)
    columns, rows = _read_metrics(metrics_path, start) if main else ([], {})

    use_amp = config.amp and bf16_native(device)
    if config.amp and not use_amp:
        log.info("TrainConfig.amp ignored: this %s has no native bf16 arithmetic, where autocast would be slower "
                 "than float32", device)
    net: nn.Module = model
    if world > 1:
        net = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if config.compile:
        if device.type == "cuda":
            net = torch.compile(net)
        else:
            log.info("TrainConfig.compile ignored: torch.compile is used on CUDA only (device %s)", device)

    sampler = StepBatchSampler(len(dataset), config.batch_size, config.seed, steps=config.steps, start_step=start,
                               rank=rank, world_size=world)
    loader = torch.utils.data.DataLoader(
        dataset, batch_sampler=sampler, collate_fn=collate_fn, num_workers=config.num_workers,
        pin_memory=device.type == "cuda", generator=torch.Generator().manual_seed(config.seed),
    )
    git = _git_commit() if main else {}
    if ckpt is None:
        _seed_global_rngs(config.seed + rank)
    elif len(ckpt["rng"]) == world:
        _set_rng_state(ckpt["rng"][rank], device)
    else:
        log.warning("%s was written by %d processes, now %d: the models' random draws will not replay exactly",
                    ckpt_path, len(ckpt["rng"]), world)
        _seed_global_rngs(int(np.random.SeedSequence([config.seed, rank, start]).generate_state(1)[0]) % 2**31)
    del ckpt

    model.train()
    show = progress and main
    bar = tqdm(total=config.steps, initial=start, disable=not show, desc=run_dir.name, unit="step",
               dynamic_ncols=True)
    t_start = time.perf_counter()
    step, losses = start, {}
    train_time, window_time, window_steps = 0.0, 0.0, 0
    batches = iter(loader)
    if show:
        # imported only here: tqdm.contrib imports tqdm.auto, which warns inside a notebook without ipywidgets
        from tqdm.contrib.logging import logging_redirect_tqdm
    with logging_redirect_tqdm() if show else contextlib.nullcontext(), bar:
        while step < config.steps:
            t_step = time.perf_counter()
            images, targets = next(batches)
            step += 1
            images, targets = _to_device(images, targets, device)
            losses, lr = _optimisation_step(net, model, optimizer, scheduler, images, targets, config=config,
                                            step=step, world=world, use_amp=use_amp, run_dir=run_dir)
            dt = time.perf_counter() - t_step
            train_time, window_time, window_steps = train_time + dt, window_time + dt, window_steps + 1
            last = step == config.steps
            bar.update(1)
            bar.set_postfix(loss=f"{losses['total']:.4f}", refresh=last,
                            img_s=f"{window_steps * config.batch_size / max(window_time, 1e-9):.1f}")

            changed = False
            if main and (step % config.log_every == 0 or last):
                ips = window_steps * config.batch_size / max(window_time, 1e-9)
                elapsed = elapsed_before + time.perf_counter() - t_start
                row = {"step": step, **losses, "lr": lr, "images_per_s": ips, "elapsed_s": elapsed}
                _add_columns(columns, [*losses, *_FIXED_COLUMNS])
                rows.setdefault(step, {}).update(row)
                window_time, window_steps, changed = 0.0, 0, True
                log.info("step %d/%d  loss %.4f  lr %.3g  %.1f img/s", step, config.steps, losses["total"], lr, ips)
            stopped = False
            if evaluate is not None and ((config.eval_every and step % config.eval_every == 0) or last):
                if main:
                    values_eval = _evaluate(evaluate, model, step, {"step", *losses, *_FIXED_COLUMNS})
                    _add_columns(columns, list(values_eval))
                    rows.setdefault(step, {"step": step}).update(values_eval)
                    changed = True
                    log.info("step %d evaluation: %s", step, values_eval)
                    stopped = not last and stop is not None and bool(stop(_history(rows, values_eval)))
                stopped = broadcast_flag(stopped, world)
                barrier(world)
            if changed:
                _write_metrics(metrics_path, columns, rows)
            if step % config.checkpoint_every == 0 or last or stopped:
                t_ckpt = time.perf_counter()
                _save_checkpoint(ckpt_path, model, optimizer, scheduler, config, step, device, world, git,
                                 elapsed_before + time.perf_counter() - t_start, losses, len(dataset),
                                 resume_state=keep_resume_state or not (last or stopped),
                                 stopped=stopped)
                log.debug("checkpoint at step %d written in %.2f s", step, time.perf_counter() - t_ckpt)
            if stopped:
                log.info("%s: stopped by the stop hook at step %d of %d", run_dir, step, config.steps)
                break
    model.eval()
    done = step - start
    return TrainResult(model, step, run_dir, start or None, time.perf_counter() - t_call,
                       done * config.batch_size / max(train_time, 1e-9), metrics_path, losses)


def _save_checkpoint(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
                     config: TrainConfig, step: int, device: torch.device, world: int, git: Mapping[str, Any],
                     elapsed_s: float, losses: Mapping[str, float], num_items: int, *, resume_state: bool = True,
                     stopped: bool = False) -> None:
    """Rank 0 writes ``path`` atomically with its checksum; every rank contributes its RNG states and waits for the
    write. Without ``resume_state`` the optimiser, scheduler and RNG states are left out (a finished run)."""
    state = _rng_state(device)
    if world > 1:
        gathered: list[Any] = [None] * world
        dist.all_gather_object(gathered, state)
    else:
        gathered = [state]
    if get_rank() == 0:
        checkpoint = {
            "format": CHECKPOINT_FORMAT,
            "step": step,
            "model": model.state_dict(),
            "config": asdict(config),
            "seed": config.seed,
            "git": dict(git),
            "world_size": world,
            "fingerprint": model_fingerprint(model),
            "elapsed_s": float(elapsed_s),
            "losses": dict(losses),
            "num_items": num_items,  # the data order is a function of (seed, step, dataset length)
            "stopped": stopped,  # ended early by the stop hook: finished, though step < config.steps
            "torch_version": str(torch.__version__),
        }
        if resume_state:
            checkpoint.update(optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict(), rng=gathered,
                              scaler=None)  # bf16 autocast needs no GradScaler; kept for the layout's sake
        with atomic_write(path, "w+b") as f:
            torch.save(checkpoint, f)
            _append_checksum(f)
    barrier(world)
