"""Checkpoints of a training run: what :func:`fashion_lib.engine.train` writes to ``run_dir/checkpoint.pt`` and
reads back to resume a run or to return a finished one, and what inference code loads (:func:`load_checkpoint`).

A checkpoint is ``torch.save``'s zip archive of a dict (:func:`save_checkpoint`): the weights, the run's record
(step, settings, git commit, losses, the dataset length that fixes the data order) and, while the run is not
finished, the resume state: optimiser, scheduler and every rank's global RNG states (:func:`rng_state`). One more
record, :data:`CHECKSUM_RECORD`, holds a SHA-256 of all the others (:func:`checkpoint_digest`); it is verified
before anything is unpickled, and only tensors and plain containers are unpickled (``weights_only``). A checkpoint
is refused with a :class:`CheckpointError` naming the file when it is unreadable, fails its checksum, is of another
:data:`CHECKPOINT_FORMAT`, another model (:func:`model_fingerprint`) or other training settings (every field of
the config except :data:`RUNTIME_FIELDS`); nothing is loaded silently.

The module knows the training config only as a dataclass, and the process group only through
:mod:`fashion_lib.distributed`; it imports nothing above them.
"""

from __future__ import annotations

import hashlib
import os
import random
import zipfile
from collections.abc import Mapping
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from fashion_lib.distributed import barrier, gather_objects, get_rank
from fashion_lib.io import atomic_write

__all__ = ["CheckpointError", "CHECKPOINT_NAME", "CHECKPOINT_FORMAT", "CHECKSUM_RECORD", "RUNTIME_FIELDS",
           "model_fingerprint", "checkpoint_digest", "verify_checkpoint", "read_checkpoint", "load_checkpoint",
           "read_run_checkpoint", "restore_training_state", "save_checkpoint", "rng_state", "set_rng_state"]

CHECKPOINT_NAME = "checkpoint.pt"
CHECKPOINT_FORMAT = 2
"""Version of the checkpoint layout; a checkpoint of another version is refused. 2: checksummed; the resume state
(``optimizer``, ``scheduler``, ``rng``) is optional in the checkpoint of a finished run."""
CHECKSUM_RECORD = "fashion_lib_sha256"
"""Name of the record, inside the checkpoint's zip archive (beside torch's ``data.pkl``), holding the SHA-256 hex
digest of every other record (:func:`checkpoint_digest`)."""
RUNTIME_FIELDS = frozenset({"checkpoint_every", "log_every", "eval_every", "device", "channels_last", "compile",
                            "num_workers"})
"""TrainConfig fields that do not change what is learned; a run may resume with other values of these."""


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




def _config_differences(saved: Mapping[str, Any], config: Any) -> list[str]:
    now = asdict(config)
    out = []
    for name in (f.name for f in fields(config) if f.name not in RUNTIME_FIELDS):
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


def read_checkpoint(path: Path, model: nn.Module, config: Any = None) -> dict[str, Any]:
    """Verify ``path``'s checksum, load it on the CPU and check it against ``model`` and ``config`` (the run's
    ``TrainConfig``, or None not to check the settings); raise :class:`CheckpointError`. ``model`` is not changed."""
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


def load_checkpoint(path: str | os.PathLike, model: nn.Module, config: Any = None) -> dict[str, Any]:
    """Load the weights of a :func:`~fashion_lib.engine.train` checkpoint into ``model`` (for inference code).

    The checkpoint is refused (:class:`CheckpointError` naming the path and what differs) when it cannot be read or
    fails its checksum, when its model fingerprint (class name, state-dict names and shapes) differs from
    ``model``'s, or, when ``config`` is given, when a training-relevant field differs. Returns the checkpoint dict
    (``step``, ``config``, ``git``, ``losses``; ``optimizer``, ``scheduler``, ``rng`` unless it is the weights-only
    checkpoint of a finished run); the model's train/eval mode is left as it was.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    ckpt = read_checkpoint(path, model, config)
    model.load_state_dict(ckpt["model"])
    return ckpt


def rng_state(device: torch.device) -> dict[str, Any]:
    """This process's global RNG states (torch, NumPy's legacy generator, Python's; CUDA's on a CUDA ``device``) as
    tensors and plain values, which ``weights_only`` loading accepts."""
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


def set_rng_state(state: Mapping[str, Any], device: torch.device) -> None:
    """Restore the global RNG states :func:`rng_state` saved."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    key = n["key"].numpy().astype(np.uint32)
    np.random.set_state(("MT19937", key, n["pos"], n["has_gauss"], n["gauss"]))  # noqa: NPY002
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)




def read_run_checkpoint(path: Path, model: nn.Module, config: Any, num_items: int
                        ) -> tuple[dict[str, Any] | None, bool]:
    """The checkpoint a run continues from, and whether that run is finished: ``(None, False)`` when ``path`` does
    not exist (a fresh run). A finished run reached ``config.steps`` or was stopped by the stop hook.

    Raises :class:`CheckpointError` naming ``path`` when :func:`read_checkpoint` refuses it, when it was written for
    a dataset of another length than ``num_items`` (the data order would differ), or when an unfinished run's
    checkpoint lacks the resume state."""
    if not path.exists():
        return None, False
    ckpt = read_checkpoint(path, model, config)
    if ckpt.get("num_items") != num_items:
        raise CheckpointError(f"{path}: written for a dataset of {ckpt.get('num_items')} items, now "
                              f"{num_items}; the data order would differ. Use another run folder.")
    finished = ckpt["step"] == config.steps or bool(ckpt.get("stopped", False))
    if not finished and any(k not in ckpt for k in _RESUME_KEYS):
        raise CheckpointError(f"{path}: step {ckpt['step']} of {config.steps} but no resume state "
                              f"({', '.join(k for k in _RESUME_KEYS if k not in ckpt)} missing); cannot continue "
                              "the run. Use another run folder.")
    return ckpt, finished


def restore_training_state(ckpt: Mapping[str, Any], model: nn.Module, optimizer: torch.optim.Optimizer,
                           scheduler: Any) -> tuple[int, float]:
    """Load an unfinished run's weights, optimiser and scheduler states from ``ckpt``; returns the step it reached
    and the training wall time before it, seconds. The RNG states are restored apart (:func:`set_rng_state`), once
    the data loader is set up."""
    model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    scheduler.load_state_dict(ckpt["scheduler"])
    return int(ckpt["step"]), float(ckpt.get("elapsed_s", 0.0))


def save_checkpoint(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any, config: Any,
                    step: int, device: torch.device, world: int, git: Mapping[str, Any], elapsed_s: float,
                    losses: Mapping[str, float], num_items: int, *, resume_state: bool = True,
                    stopped: bool = False) -> None:
    """Rank 0 writes ``path`` atomically with its checksum; every rank contributes its RNG states and waits for the
    write. Without ``resume_state`` the optimiser, scheduler and RNG states are left out (a finished run)."""
    gathered = gather_objects(rng_state(device), world)
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
