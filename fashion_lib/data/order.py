"""The data order of training: which dataset items each training step takes, a fixed function of ``(seed, step)``.

The global batch of step ``s`` (1-based) is the items at positions ``(s - 1) * B ... s * B - 1`` of the
concatenation of epoch permutations, epoch ``e`` being permuted by ``numpy.random.default_rng([seed, e])``; rank
``r`` of ``W`` processes takes the ``r``-th contiguous ``B / W`` slice of it (:func:`batch_indices`). The order is
therefore the same whether a run resumes or not and whatever the world size. :class:`StepBatchSampler` feeds it to a
DataLoader; :func:`fashion_lib.engine.train` is its user.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator

import numpy as np
import torch

__all__ = ["batch_indices", "StepBatchSampler"]


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
