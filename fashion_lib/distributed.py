"""Distributed training helpers: join the job ``torchrun`` started, or run as one process, and ask where this
process stands (torchvision's ``references/detection/utils.py``, ``init_distributed_mode``, reduced to what
:func:`fashion_lib.engine.train` and ``python -m fashion_lib.train`` need). Every helper answers for a plain
one-process run too, so the callers need no special case.
"""

from __future__ import annotations

import logging
import os
from typing import Any, NamedTuple

import torch
import torch.distributed as dist
from torch import nn

__all__ = ["DistInfo", "init_distributed", "is_main_process", "get_rank", "get_world_size", "barrier", "broadcast_flag",
           "gather_objects", "mean_over_processes", "data_parallel"]

log = logging.getLogger(__name__)


class DistInfo(NamedTuple):
    """Where this process stands in a (possibly one-process) job."""

    rank: int
    world_size: int
    local_rank: int


def get_rank() -> int:
    """This process's rank, 0 without an initialised process group."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def get_world_size() -> int:
    """The number of processes, 1 without an initialised process group."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_main_process() -> bool:
    """True on rank 0 and in a single-process run: the process that logs, evaluates and writes."""
    return get_rank() == 0


def init_distributed(device: str | torch.device | None = None) -> DistInfo:
    """Join the job ``torchrun`` started, if any; a no-op when already initialised or when run as one process.

    Reads ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``. ``device`` picks the backend: NCCL for CUDA (the process is
    bound to ``cuda:LOCAL_RANK``), gloo for CPU; by default CUDA when available.
    """
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank)
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return DistInfo(0, 1, 0)
    if not dist.is_available():
        raise RuntimeError("RANK and WORLD_SIZE are set but this torch build has no torch.distributed")
    rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    dev = torch.device(device) if device is not None else None
    use_cuda = dev.type == "cuda" if dev is not None else torch.cuda.is_available()
    if use_cuda:
        torch.cuda.set_device(local_rank)
    backend = "nccl" if use_cuda else "gloo"
    dist.init_process_group(backend=backend, init_method="env://", rank=rank, world_size=world_size)
    log.info("joined process group: rank %d of %d (local rank %d, %s)", rank, world_size, local_rank, backend)
    return DistInfo(rank, world_size, local_rank)


def barrier(world_size: int) -> None:
    """Wait for every process of a job of ``world_size`` processes (nothing to wait for with one)."""
    if world_size > 1:
        dist.barrier()


def broadcast_flag(flag: bool, world_size: int) -> bool:
    """Rank 0's ``flag`` on every rank of a job of ``world_size`` processes (the flag itself with one)."""
    if world_size == 1:
        return flag
    box = [flag]
    dist.broadcast_object_list(box, src=0)
    return bool(box[0])


def gather_objects(obj: Any, world_size: int) -> list[Any]:
    """Every rank's ``obj`` (picklable), in rank order, on every rank of a job of ``world_size`` processes."""
    if world_size == 1:
        return [obj]
    gathered: list[Any] = [None] * world_size
    dist.all_gather_object(gathered, obj)
    return gathered


def mean_over_processes(values: torch.Tensor, world_size: int) -> torch.Tensor:
    """The mean of ``values`` (any shape) over the ``world_size`` processes, on every rank, in place (the tensor
    itself with one process). Summed then divided: gloo has no AVG."""
    if world_size > 1:
        dist.all_reduce(values)
        values /= world_size
    return values


def data_parallel(model: nn.Module, device: torch.device, world_size: int) -> nn.Module:
    """``model`` wrapped in DistributedDataParallel in a job of several processes (on ``device``'s CUDA index, or
    the CPU), ``model`` itself in one process."""
    if world_size == 1:
        return model
    return nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
