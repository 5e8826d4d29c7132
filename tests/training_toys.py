"""The toy training problem of the engine and checkpoint tests (and of tests/engine_worker.py's subprocesses).

A tiny conv net regressing two numbers from synthetic images stands in for the detectors; it follows their
convention (train mode: ``model(images, targets) -> dict`` of scalar loss terms).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fashion_lib.engine import TrainConfig


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run fastest on one thread on a shared machine; the SIGKILL test's subprocess uses one too, as
    bit-identical results need equal thread counts."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class ToyDataset(torch.utils.data.Dataset):
    """Item ``i``: a (3, size, size) image, a random colour ``c`` plus noise, drawn from a generator seeded by
    ``(seed, i)``; target ``value`` (2,): ``2 * (c_red - c_green)`` and ``2 * (c_blue - 0.5)``."""

    def __init__(self, length: int = 64, seed: int = 0, size: int = 12) -> None:
        self.length, self.seed, self.size = length, seed, size

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int):
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + index)
        colour = torch.rand(3, generator=g)
        image = colour[:, None, None] + 0.2 * torch.randn(3, self.size, self.size, generator=g)
        return image, {"value": 2 * torch.stack([colour[0] - colour[1], colour[2] - 0.5])}


class ToyRegressor(nn.Module):
    """Two convolutions, global pooling, a linear head; losses ``loss_a``, ``loss_b`` (MSE of each output)."""

    def __init__(self, width: int = 8, batch_norm: bool = False, dropout: float = 0.0) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width) if batch_norm else nn.Identity(), nn.ReLU(),
            nn.Conv2d(width, width, 3, stride=2, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            nn.Dropout(dropout),
        )
        self.head = nn.Linear(width, 2)
        self.train_calls = 0  # forward calls in train mode: counts optimisation steps

    def forward(self, images, targets=None):
        pred = self.head(self.features(torch.stack(images)))  # (B, 2)
        if not self.training:
            return pred
        self.train_calls += 1
        y = torch.stack([t["value"] for t in targets])  # (B, 2)
        return {"loss_a": F.mse_loss(pred[:, 0], y[:, 0]), "loss_b": F.mse_loss(pred[:, 1], y[:, 1])}


@dataclass(frozen=True)
class ToyConfig:
    width: int = 8  # channels of the toy net


def toy_model(seed: int = 0, **kwargs) -> ToyRegressor:
    torch.manual_seed(seed)
    return ToyRegressor(**kwargs)


def toy_config(**kwargs) -> TrainConfig:
    base = dict(steps=10, batch_size=8, lr=1e-2, warmup_steps=2, checkpoint_every=4, log_every=1, device="cpu")
    return TrainConfig(**{**base, **kwargs})


class RecordingDataset(ToyDataset):
    """Records every index asked for; raises (interrupting the run) when asked for item number ``fail_at``."""

    def __init__(self, fail_at: int | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.fail_at, self.seen = fail_at, []

    def __getitem__(self, index):
        if self.fail_at is not None and len(self.seen) + 1 == self.fail_at:
            raise KeyboardInterrupt("interrupted by the test")
        self.seen.append(index)
        return super().__getitem__(index)


def assert_same_state(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for name in sa:
        assert torch.equal(sa[name], sb[name]), name
