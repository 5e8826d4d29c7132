"""Checkpoints (fashion_lib.checkpoints): what a run writes, what inference loads, and every file that is refused.

Checkpoints are made by training the toy problem of tests/training_toys.py with :func:`fashion_lib.engine.train`;
resuming from them (bit-identical weights, data order) is tested with the engine in tests/test_engine.py.
"""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from training_toys import RecordingDataset, ToyConfig, ToyDataset, ToyRegressor, one_thread  # noqa: F401
from training_toys import assert_same_state as _assert_same_state
from training_toys import toy_config as _config
from training_toys import toy_model as _model

from fashion_lib.checkpoints import (
    CheckpointError,
    _append_checksum,
    load_checkpoint,
    read_run_checkpoint,
    restore_training_state,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from fashion_lib.engine import train


def test_load_checkpoint_restores_weights_for_inference(tmp_path):
    trained = train(_model(), ToyDataset(), _config(steps=3), tmp_path / "run", progress=False).model
    fresh = _model(seed=7)
    info = load_checkpoint(tmp_path / "run" / "checkpoint.pt", fresh, _config(steps=3))
    _assert_same_state(trained, fresh)
    assert info["step"] == 3 and info["config"]["lr"] == 1e-2 and len(info["git"]["commit"]) in (40, 7)
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "nowhere.pt", fresh)


def test_a_truncated_checkpoint_is_refused(tmp_path):
    run = tmp_path / "run"
    train(_model(), ToyDataset(), _config(steps=4), run, progress=False)
    path = run / "checkpoint.pt"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=r"checkpoint.pt: cannot read the checkpoint \(corrupt or truncated"):
        train(_model(), ToyDataset(), _config(steps=8), run, progress=False)
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_checkpoint(path, _model())


def _flip(path: Path, needle: bytes) -> bytes:
    """Flip 8 bytes in the middle of the one occurrence of ``needle`` in ``path``; returns the original bytes."""
    data = path.read_bytes()
    at = data.find(needle)
    assert at > 0 and data.find(needle, at + 1) == -1, "the tensor's bytes must occur once in the file"
    at += len(needle) // 2
    path.write_bytes(data[:at] + bytes(b ^ 0xFF for b in data[at:at + 8]) + data[at + 8:])
    return data


def test_a_checkpoint_with_flipped_bytes_in_weights_or_optimiser_state_is_refused(tmp_path):
    run, config = tmp_path / "run", _config(steps=8, checkpoint_every=4)
    with pytest.raises(KeyboardInterrupt):  # stopped inside step 6: the checkpoint of step 4 keeps the resume state
        train(_model(), RecordingDataset(fail_at=5 * 8 + 2), config, run, progress=False)
    path = run / "checkpoint.pt"
    ckpt = torch.load(path, weights_only=True)
    weight = ckpt["model"]["features.0.weight"].numpy().tobytes()
    moment = ckpt["optimizer"]["state"][0]["exp_avg"].numpy().tobytes()
    for needle in (weight, moment):
        original = _flip(path, needle)
        with pytest.raises(CheckpointError, match=r"run/checkpoint.pt: checksum mismatch, the content differs"):
            train(_model(), ToyDataset(), config, run, progress=False)
        with pytest.raises(CheckpointError, match="checkpoint.pt: checksum mismatch"):
            load_checkpoint(path, _model())
        path.write_bytes(original)
    resumed = train(_model(), ToyDataset(), config, run, progress=False)  # the untouched file resumes
    assert resumed.resumed_from == 4 and resumed.model.train_calls == 4


def test_files_that_are_not_checksummed_checkpoints_are_refused_without_torch_advice(tmp_path):
    path = tmp_path / "checkpoint.pt"
    path.write_text("just text")
    with pytest.raises(CheckpointError, match=r"checkpoint.pt: cannot read the checkpoint \(corrupt or truncated\?\): "
                                              "not a complete checkpoint archive"):
        load_checkpoint(path, _model())
    torch.save({"model": _model().state_dict()}, path)  # a plain torch file: no checksum
    with pytest.raises(CheckpointError, match="checkpoint.pt: the checkpoint has no checksum"):
        load_checkpoint(path, _model())

    with open(path, "w+b") as f:  # checksummed, but holding a class: torch's safe loader refuses it
        torch.save({"model": ToyConfig()}, f)
        _append_checksum(f)
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(path, _model())
    message = str(caught.value)
    assert "holds objects other than tensors" in message and "weights_only" not in message, message


def test_a_checkpoint_of_other_settings_is_refused_but_runtime_fields_may_change(tmp_path):
    run = tmp_path / "run"
    train(_model(), ToyDataset(), _config(steps=4, checkpoint_every=2), run, progress=False)
    other = _config(steps=4, lr=2e-2, optimizer="sgd")
    with pytest.raises(CheckpointError, match=r"run/checkpoint.pt: written with different training settings: "
                                              r"lr: checkpoint 0.01, now 0.02; optimizer: checkpoint 'adamw', "
                                              r"now 'sgd'"):
        train(_model(), ToyDataset(), other, run, progress=False)
    with pytest.raises(CheckpointError, match="written for a dataset of 64 items, now 50; the data order"):
        train(_model(), ToyDataset(length=50), _config(steps=4), run, progress=False)
    with pytest.raises(CheckpointError, match="steps: checkpoint 4, now 5"):
        load_checkpoint(run / "checkpoint.pt", _model(), _config(steps=5))
    # log_every and checkpoint_every do not change what is learned: accepted, a cache hit
    again = train(_model(), ToyDataset(), _config(steps=4, log_every=2, checkpoint_every=1), run, progress=False)
    assert again.resumed_from == 4 and again.model.train_calls == 0


def test_a_checkpoint_of_another_model_is_refused(tmp_path):
    run = tmp_path / "run"
    train(_model(), ToyDataset(), _config(steps=2), run, progress=False)
    with pytest.raises(CheckpointError, match=r"model fingerprint differs.*shape: features.0.weight \[8, 3, 3, 3\] "
                                              r"-> \[4, 3, 3, 3\]"):
        train(_model(width=4), ToyDataset(), _config(steps=2), run, progress=False)
    with pytest.raises(CheckpointError, match=r"only in the model: features.1.weight, features.1.bias"):
        load_checkpoint(run / "checkpoint.pt", _model(batch_norm=True))

    class Renamed(ToyRegressor):
        pass

    with pytest.raises(CheckpointError, match="model class: checkpoint 'ToyRegressor', now 'Renamed'"):
        load_checkpoint(run / "checkpoint.pt", Renamed())


def _optimiser(model: ToyRegressor) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lambda i: 0.5 ** i)


def _save_after_two_steps(path: Path, config, **kwargs) -> ToyRegressor:
    """Two hand-made AdamW steps of the toy model, saved at step 2 of ``config.steps``; returns the model."""
    model = _model()
    optimizer, scheduler = _optimiser(model)
    images, targets = zip(*(ToyDataset()[i] for i in range(8)), strict=True)
    for _ in range(2):
        optimizer.zero_grad()
        sum(model(list(images), list(targets)).values()).backward()
        optimizer.step()
        scheduler.step()
    save_checkpoint(path, model, optimizer, scheduler, config, 2, torch.device("cpu"), 1, {"commit": "abc"}, 1.5,
                    {"total": 0.25}, 64, **kwargs)
    return model


def test_an_unfinished_run_resumes_its_weights_optimiser_and_schedule(tmp_path):
    path, config = tmp_path / "checkpoint.pt", _config(steps=4)
    assert read_run_checkpoint(path, _model(), config, 64) == (None, False)  # no file: a fresh run
    saved = _save_after_two_steps(path, config)
    fresh = _model(seed=3)
    ckpt, finished = read_run_checkpoint(path, fresh, config, 64)
    assert not finished and ckpt["step"] == 2 and ckpt["git"] == {"commit": "abc"} and ckpt["losses"] == {"total": 0.25}
    optimizer, scheduler = _optimiser(fresh)
    assert restore_training_state(ckpt, fresh, optimizer, scheduler) == (2, 1.5)
    _assert_same_state(saved, fresh)
    assert scheduler.last_epoch == 2 and optimizer.param_groups[0]["lr"] == pytest.approx(1e-2 / 4)
    assert int(optimizer.state_dict()["state"][0]["step"]) == 2
    with pytest.raises(CheckpointError, match="written for a dataset of 64 items, now 50; the data order"):
        read_run_checkpoint(path, fresh, config, 50)


def test_a_finished_run_needs_no_resume_state_but_an_unfinished_one_does(tmp_path):
    path = tmp_path / "checkpoint.pt"
    _save_after_two_steps(path, _config(steps=2), resume_state=False)
    ckpt, finished = read_run_checkpoint(path, _model(), _config(steps=2), 64)
    assert finished and not {"optimizer", "scheduler", "rng"} & set(ckpt)
    _save_after_two_steps(path, _config(steps=4), resume_state=False)
    with pytest.raises(CheckpointError, match=r"checkpoint.pt: step 2 of 4 but no resume state \(optimizer, "
                                              r"scheduler, rng missing\); cannot continue"):
        read_run_checkpoint(path, _model(), _config(steps=4), 64)
    _save_after_two_steps(path, _config(steps=4), resume_state=False, stopped=True)  # the stop hook ended it
    assert read_run_checkpoint(path, _model(), _config(steps=4), 64)[1] is True


def test_runtime_fields_may_differ_from_the_checkpoint(tmp_path):
    path, config = tmp_path / "checkpoint.pt", _config(steps=4)
    _save_after_two_steps(path, config)
    runtime = replace(config, log_every=3, checkpoint_every=1, eval_every=2, num_workers=1)
    assert read_run_checkpoint(path, _model(), runtime, 64)[0]["step"] == 2
    with pytest.raises(CheckpointError, match="warmup_steps: checkpoint 2, now 1"):
        read_run_checkpoint(path, _model(), replace(config, warmup_steps=1), 64)


def test_rng_state_round_trips_torch_numpy_and_python_generators():
    state = rng_state(torch.device("cpu"))
    first = (torch.rand(3), np.random.rand(3), random.random())  # noqa: NPY002
    set_rng_state(state, torch.device("cpu"))
    again = (torch.rand(3), np.random.rand(3), random.random())  # noqa: NPY002
    assert torch.equal(first[0], again[0]) and np.array_equal(first[1], again[1]) and first[2] == again[2]
    assert not torch.equal(torch.rand(3), first[0])  # the generators moved on: the equality above means something
