"""Tests of fashion_lib.train_config: every field's check names the field and the range it allows."""

from __future__ import annotations

import pytest

from fashion_lib import engine
from fashion_lib.train_config import TrainConfig


@pytest.mark.parametrize("field, value, message", [
    ("steps", 0, r"TrainConfig.steps must be an int >= 1, got 0"),
    ("batch_size", 2.5, r"TrainConfig.batch_size must be an int >= 1"),
    ("lr", 0.0, r"TrainConfig.lr must be a finite number in \(0.0, inf\)"),
    ("optimizer", "adam", r"TrainConfig.optimizer must be one of \['adamw', 'sgd'\], got 'adam'"),
    ("momentum", 1.0, r"TrainConfig.momentum must be a finite number in \[0.0, 1.0\)"),
    ("warmup_steps", 11, r"TrainConfig.warmup_steps must be an int \[0, 10\], got 11"),
    ("min_lr_ratio", 1.5, r"TrainConfig.min_lr_ratio must be a finite number in \[0.0, 1.0\]"),
    ("grad_clip", -1.0, r"TrainConfig.grad_clip must be a finite number in \(0.0, inf\)"),
    ("eval_every", -1, r"TrainConfig.eval_every must be an int >= 0"),
    ("device", "tpu", r"TrainConfig.device must be one of \['auto', 'cpu', 'cuda'\]"),
    ("amp", 1, r"TrainConfig.amp must be a bool"),
    ("seed", -3, r"TrainConfig.seed must be an int \[0, 2147483647\]"),
])
def test_config_names_the_field_and_the_allowed_range(field, value, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**{"steps": 10, "warmup_steps": 2, field: value})


def test_engine_re_exports_the_config():
    assert engine.TrainConfig is TrainConfig and "TrainConfig" in engine.__all__
    config = TrainConfig(steps=10, warmup_steps=2, lr=1)  # an int rate is stored as the float the checks accept
    assert isinstance(config.lr, float) and config.lr == 1.0
