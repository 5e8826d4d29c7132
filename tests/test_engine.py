"""The training engine: LR schedule, run folders, data order, learning, resume, metrics, DDP.

The toy problem is tests/training_toys.py's; what a checkpoint file holds and refuses is tests/test_checkpoints.py;
the configuration's checks are tests/test_train_config.py's.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import random
import signal
import socket
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from torch import nn
from training_toys import RecordingDataset, ToyConfig, ToyDataset, ToyRegressor, one_thread  # noqa: F401
from training_toys import assert_same_state as _assert_same_state
from training_toys import toy_config as _config
from training_toys import toy_model as _model

from fashion_lib.checkpoints import CHECKSUM_RECORD, CheckpointError, load_checkpoint
from fashion_lib.data.order import batch_indices
from fashion_lib.engine import TrainConfig, lr_at, run_dir_for, train

ROOT = Path(__file__).resolve().parents[1]
WORKER = Path(__file__).resolve().parent / "engine_worker.py"


def _loss(model: ToyRegressor, dataset, indices) -> float:
    images, targets = zip(*(dataset[i] for i in indices), strict=True)
    was = model.training
    model.train()
    with torch.no_grad():
        out = model(list(images), list(targets))
    model.train(was)
    return float(sum(out.values()))


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# ------------------------------------------------------------------------------------------------ run folders


def test_run_dir_for_separates_settings_and_reuses_equal_ones(tmp_path):
    a = run_dir_for(tmp_path, "toy", _config(), ToyConfig(width=8))
    assert a == run_dir_for(tmp_path, "toy", _config(), ToyConfig(width=8))
    assert a.parent == tmp_path and a.name.startswith("toy-") and len(a.name) == len("toy-") + 12
    others = {run_dir_for(tmp_path, "toy", _config(lr=2e-2), ToyConfig(width=8)),
              run_dir_for(tmp_path, "toy", _config(), ToyConfig(width=16)),
              run_dir_for(tmp_path, "toy", _config()),
              run_dir_for(tmp_path, "other", _config(), ToyConfig(width=8))}
    assert a not in others and len(others) == 4
    with pytest.raises(ValueError, match="name must be a non-empty folder name"):
        run_dir_for(tmp_path, "a/b", _config())
    with pytest.raises(TypeError, match=r"configs\[0\] must be a dataclass instance, got dict"):
        run_dir_for(tmp_path, "toy", {"lr": 1})


# ------------------------------------------------------------------------------------ LR schedule, data order


def test_lr_warms_up_linearly_then_decays_by_cosine_to_the_floor(tmp_path):
    config = _config(steps=10, lr=0.1, warmup_steps=2, min_lr_ratio=0.1)
    # hand-computed: warm-up 0.1 * s / 2; then 0.01 + 0.09 * (1 + cos(pi * (s - 2) / 8)) / 2
    expected = {1: 0.05, 2: 0.1, 4: 0.01 + 0.09 * (1 + math.cos(math.pi / 4)) / 2, 6: 0.055, 10: 0.01}
    for step, lr in expected.items():
        assert lr_at(config, step) == pytest.approx(lr, rel=1e-12)
    # the engine uses exactly this schedule
    result = train(_model(), ToyDataset(), config, tmp_path / "run", progress=False)
    rows = {int(r["step"]): float(r["lr"]) for r in _rows(result.metrics)}
    assert sorted(rows) == list(range(1, 11))
    for step, lr in expected.items():
        assert rows[step] == pytest.approx(lr, rel=1e-9)
    with pytest.raises(ValueError, match=r"step must be an int in \[1, 10\], got 0"):
        lr_at(config, 0)


def test_data_order_is_a_function_of_seed_and_step_whatever_the_interruptions(tmp_path):
    config = _config(steps=8, batch_size=4, checkpoint_every=3, seed=5)
    whole = RecordingDataset(length=10)
    train(_model(), whole, config, tmp_path / "a", progress=False)
    assert whole.seen == sum((batch_indices(10, 4, 5, s) for s in range(1, 9)), [])
    first = RecordingDataset(fail_at=4 * 4 + 2, length=10)  # inside step 5, after the checkpoint of step 3
    with pytest.raises(KeyboardInterrupt):
        train(_model(), first, config, tmp_path / "b", progress=False)
    second = RecordingDataset(length=10)
    result = train(_model(), second, config, tmp_path / "b", progress=False)
    assert result.resumed_from == 3
    assert second.seen == whole.seen[3 * 4:]


# --------------------------------------------------------------------------------------------- learning


def test_one_step_lowers_the_loss_on_its_batch(tmp_path):
    data, config = ToyDataset(), _config(steps=1, warmup_steps=0, lr=1e-2, min_lr_ratio=1.0)
    model = _model()
    batch = batch_indices(len(data), config.batch_size, config.seed, 1)
    before = _loss(model, data, batch)
    calls = model.train_calls
    result = train(model, data, config, tmp_path / "run", progress=False)
    assert result.model is model and not model.training and model.train_calls == calls + 1
    after = _loss(model, data, batch)
    assert after < before - 0.01 * before
    assert result.losses["total"] == pytest.approx(before, rel=1e-5)  # the logged loss is that of the batch


def test_a_short_run_lowers_the_held_out_loss_a_lot(tmp_path):
    train_set, held_out = ToyDataset(length=256, seed=0), ToyDataset(length=64, seed=1)
    model = _model()
    before = _loss(model, held_out, range(64))
    config = _config(steps=100, batch_size=16, lr=2e-2, warmup_steps=10, checkpoint_every=100, log_every=50)
    result = train(model, train_set, config, tmp_path / "run", progress=False)
    after = _loss(result.model, held_out, range(64))
    assert after < 0.05 * before, (before, after)  # measured: 1.01 -> 0.012
    rows = _rows(result.metrics)
    assert [int(r["step"]) for r in rows] == [50, 100]
    assert list(rows[0]) == ["step", "loss_a", "loss_b", "total", "lr", "images_per_s", "elapsed_s"]
    assert float(rows[-1]["total"]) == pytest.approx(float(rows[-1]["loss_a"]) + float(rows[-1]["loss_b"]))
    assert result.images_per_s > 0 and float(rows[-1]["elapsed_s"]) > 0


def test_evaluate_is_called_on_schedule_without_disturbing_the_random_stream(tmp_path):
    calls = []

    def evaluate(model, step):
        assert not model.training and not torch.is_grad_enabled()
        calls.append(step)
        torch.rand(100), random.random()  # draws that must not shift training's dropout masks
        return {"score": float(step) / 10}

    config = _config(steps=7, eval_every=3, log_every=2)
    plain = train(_model(dropout=0.3), ToyDataset(), config, tmp_path / "plain", progress=False)
    hooked = train(_model(dropout=0.3), ToyDataset(), config, tmp_path / "hooked", evaluate=evaluate, progress=False)
    assert calls == [3, 6, 7]
    _assert_same_state(plain.model, hooked.model)
    rows = {int(r["step"]): r for r in _rows(hooked.metrics)}
    assert sorted(rows) == [2, 3, 4, 6, 7]
    assert rows[3]["score"] == "0.3" and rows[3]["total"] == ""  # an evaluation-only row
    assert rows[6]["score"] == "0.6" and rows[6]["total"] != "" and rows[4]["score"] == ""


def test_progress_bar_on_rank_zero_and_silenced_by_progress_false(tmp_path, capsys):
    train(_model(), ToyDataset(), _config(steps=5), tmp_path / "shown", progress=True)
    shown = capsys.readouterr().err
    assert "shown" in shown and "loss=" in shown and "img_s=" in shown and "5/5" in shown
    train(_model(), ToyDataset(), _config(steps=5), tmp_path / "quiet", progress=False)
    assert capsys.readouterr().err == ""


# ------------------------------------------------------------------------------ checkpoints and resume


def _spawn(run_dir: Path, spec: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(WORKER), str(run_dir), json.dumps(spec)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_a_run_killed_with_sigkill_resumes_to_bit_identical_weights(tmp_path):
    # batch norm (running statistics) and dropout (global RNG) both have to resume exactly
    spec = {"config": {"steps": 12, "batch_size": 8, "lr": 1e-2, "warmup_steps": 2, "checkpoint_every": 4,
                       "log_every": 1, "device": "cpu"},
            "model": {"batch_norm": True, "dropout": 0.2}, "data": {"length": 40}, "threads": 1}
    config = TrainConfig(**spec["config"])
    uninterrupted = train(_model(batch_norm=True, dropout=0.2), ToyDataset(length=40), config, tmp_path / "a",
                          progress=False)

    killed = _spawn(tmp_path / "b", {**spec, "kill_after_items": 8 * 9 + 3})  # inside step 10
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    ckpt = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)
    assert ckpt["step"] == 8
    assert [int(r["step"]) for r in _rows(tmp_path / "b" / "metrics.csv")] == list(range(1, 10))  # 9 beyond it

    resumed = train(_model(batch_norm=True, dropout=0.2), ToyDataset(length=40), config, tmp_path / "b",
                    progress=False)
    assert resumed.resumed_from == 8 and resumed.step == 12 and resumed.model.train_calls == 4
    _assert_same_state(uninterrupted.model, resumed.model)
    rows_a, rows_b = _rows(uninterrupted.metrics), _rows(resumed.metrics)
    assert [int(r["step"]) for r in rows_b] == list(range(1, 13))
    for a, b in zip(rows_a, rows_b, strict=True):
        assert (a["loss_a"], a["loss_b"], a["lr"]) == (b["loss_a"], b["loss_b"], b["lr"])


def test_a_finished_run_is_returned_from_the_cache_without_training(tmp_path):
    first = train(_model(), ToyDataset(), _config(steps=6), tmp_path / "run", progress=False)

    class Untouchable(ToyDataset):
        def __getitem__(self, index):
            raise AssertionError("a cache hit must not read data")

    fresh = _model(seed=1)
    again = train(fresh, Untouchable(), _config(steps=6, log_every=3), tmp_path / "run", progress=False)
    assert again.model is fresh and fresh.train_calls == 0 and not fresh.training
    assert again.step == 6 and again.resumed_from == 6 and math.isnan(again.images_per_s)
    assert again.losses == first.losses
    _assert_same_state(first.model, fresh)


def test_the_stop_hook_ends_the_run_and_the_stopped_run_is_a_finished_one(tmp_path):
    histories = []

    def stop(history):
        histories.append([h["step"] for h in history])
        return len(history) == 3  # after the third evaluation

    evaluate = lambda model, step: {"score": step / 10}  # noqa: E731
    config = _config(steps=12, eval_every=2, checkpoint_every=100)
    result = train(_model(), ToyDataset(), config, tmp_path / "run", evaluate=evaluate, stop=stop, progress=False)
    assert result.step == 6 and result.model.train_calls == 6
    assert histories == [[2.0], [2.0, 4.0], [2.0, 4.0, 6.0]]
    assert max(int(r["step"]) for r in _rows(result.metrics)) == 6
    saved = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)
    assert saved["stopped"] is True and saved["step"] == 6 and "optimizer" not in saved
    fresh = _model(seed=1)
    again = train(fresh, ToyDataset(), config, tmp_path / "run", evaluate=evaluate, stop=stop, progress=False)
    assert again.step == 6 and fresh.train_calls == 0 and len(histories) == 3  # a cache hit, no training
    _assert_same_state(result.model, fresh)
    # the same schedule without the hook runs to the end, through the same first 6 steps
    full = train(_model(), ToyDataset(), config, tmp_path / "full", evaluate=evaluate, progress=False)
    assert full.step == 12
    with pytest.raises(ValueError, match="stop needs evaluate"):
        train(_model(), ToyDataset(), config, tmp_path / "x", stop=stop, progress=False)


def test_the_stop_hook_sees_the_evaluations_before_a_resume(tmp_path):
    histories = []

    def stop(history):
        histories.append(history)
        return len(history) == 4

    evaluate = lambda model, step: {"score": step / 10}  # noqa: E731
    config = _config(steps=12, batch_size=4, eval_every=2, checkpoint_every=4)
    with pytest.raises(KeyboardInterrupt):  # inside step 6, after the checkpoint of step 4
        train(_model(), RecordingDataset(fail_at=5 * 4 + 1, length=10), config, tmp_path / "run",
              evaluate=evaluate, stop=stop, progress=False)
    histories.clear()
    result = train(_model(), RecordingDataset(length=10), config, tmp_path / "run", evaluate=evaluate, stop=stop,
                   progress=False)
    assert result.resumed_from == 4 and result.step == 8
    assert histories[0] == [{"step": 2.0, "score": 0.2}, {"step": 4.0, "score": 0.4}, {"step": 6.0, "score": 0.6}]


def test_a_finished_run_keeps_only_its_weights_unless_asked(tmp_path):
    import zipfile

    slim = train(_model(), ToyDataset(), _config(steps=4), tmp_path / "slim", progress=False)
    full = train(_model(), ToyDataset(), _config(steps=4), tmp_path / "full", progress=False, keep_resume_state=True)
    _assert_same_state(slim.model, full.model)
    a = torch.load(tmp_path / "slim" / "checkpoint.pt", weights_only=True)
    b = torch.load(tmp_path / "full" / "checkpoint.pt", weights_only=True)
    assert not {"optimizer", "scheduler", "rng"} & set(a) and {"optimizer", "scheduler", "rng"} <= set(b)
    assert a["step"] == 4 and a["losses"] == b["losses"] and a["fingerprint"] == b["fingerprint"]
    # AdamW keeps two moments per weight: the resume state is about twice the weights
    sizes = [(tmp_path / name / "checkpoint.pt").stat().st_size for name in ("slim", "full")]
    assert sizes[0] < 0.6 * sizes[1], sizes
    with zipfile.ZipFile(tmp_path / "slim" / "checkpoint.pt") as z:  # still checksummed
        assert any(n.endswith("/" + CHECKSUM_RECORD) for n in z.namelist())
    fresh = _model(seed=3)  # the notebooks' reuse: the same call is a cache hit on the weights-only file
    again = train(fresh, ToyDataset(), _config(steps=4), tmp_path / "slim", progress=False)
    assert again.resumed_from == 4 and fresh.train_calls == 0
    _assert_same_state(slim.model, fresh)
    with pytest.raises(CheckpointError, match="steps: checkpoint 4, now 6"):  # cannot be continued, and says so
        train(_model(), ToyDataset(), _config(steps=6), tmp_path / "slim", progress=False)


class Exploding(ToyRegressor):
    """``loss_b`` turns to NaN in train-mode call number ``at``."""

    def __init__(self, at: int) -> None:
        super().__init__()
        self.at = at

    def forward(self, images, targets=None):
        out = super().forward(images, targets)
        if self.training and self.train_calls == self.at:
            out["loss_b"] = out["loss_b"] * math.nan
        return out


def test_a_non_finite_loss_stops_the_run_naming_the_term_and_step(tmp_path):
    torch.manual_seed(0)
    model, run = Exploding(at=3), tmp_path / "run"
    with pytest.raises(FloatingPointError, match=r"non-finite loss at step 3: loss_b=nan;"):
        train(model, ToyDataset(), _config(steps=6, checkpoint_every=1), run, progress=False)
    ckpt = torch.load(run / "checkpoint.pt", weights_only=True)
    assert ckpt["step"] == 2  # nothing of step 3 was saved
    for name, value in model.state_dict().items():
        assert torch.equal(value, ckpt["model"][name]), name  # nor applied to the weights
    assert [int(r["step"]) for r in _rows(run / "metrics.csv")] == [1, 2]


def test_metrics_log_drops_rows_beyond_the_resumed_step_and_keeps_column_order(tmp_path):
    from fashion_lib.engine import _MetricsLog

    path = tmp_path / "metrics.csv"
    log = _MetricsLog(path, 0)
    log.record(1, {"loss": 0.5, "total": 0.5, "lr": 0.1})
    log.record(2, {"loss": 0.4, "total": 0.4, "lr": 0.2})
    log.record(2, {"NE": 0.3})  # an evaluation at a logged step: same row, new column
    log.record(3, {"loss": 0.2, "total": 0.2, "lr": 0.3})
    log.write()
    assert path.read_text().splitlines() == ["step,loss,total,lr,NE", "1,0.5,0.5,0.1,", "2,0.4,0.4,0.2,0.3",
                                             "3,0.2,0.2,0.3,"]
    resumed = _MetricsLog(path, 2)  # the checkpoint is at step 2: row 3 is written again
    assert resumed.columns == ["step", "loss", "total", "lr", "NE"] and sorted(resumed.rows) == [1, 2]
    assert resumed.history({"NE": 0.0}) == [{"step": 2.0, "NE": 0.3}]
    assert _MetricsLog(path, 0).rows == {}  # a fresh run ignores an old file


# ----------------------------------------------------------------------------------------------- DDP


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_gloo_processes_match_one_process_with_the_same_global_batch(tmp_path):
    spec = {"config": {"steps": 6, "batch_size": 8, "lr": 1e-2, "warmup_steps": 2, "checkpoint_every": 3,
                       "log_every": 1, "device": "cpu", "seed": 2},
            "data": {"length": 24}, "keep_resume_state": True}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
               f"--master_port={_free_port()}", str(WORKER), str(tmp_path / "ddp"), json.dumps(spec)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]

    single = train(_model(), ToyDataset(length=24), TrainConfig(**spec["config"]), tmp_path / "one", progress=False)
    ddp = load_checkpoint(tmp_path / "ddp" / "checkpoint.pt", _model(seed=5))
    assert ddp["world_size"] == 2 and len(ddp["rng"]) == 2 and ddp["step"] == 6
    moved = 0.0
    for name, value in single.model.state_dict().items():
        torch.testing.assert_close(ddp["model"][name], value, rtol=0, atol=2e-6)
        moved = max(moved, float((value - _model().state_dict()[name]).abs().max()))
    assert moved > 1e-2  # the weights did move, so the agreement means something
    rows = _rows(tmp_path / "ddp" / "metrics.csv")
    assert [int(r["step"]) for r in rows] == list(range(1, 7))  # written once, by rank 0
    for a, b in zip(rows, _rows(single.metrics), strict=True):
        assert float(a["total"]) == pytest.approx(float(b["total"]), rel=1e-5)  # losses averaged over ranks


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_bf16_channels_last_run_learns_and_resumes(tmp_path):
    data = ToyDataset(length=64)
    config = replace(_config(steps=60, batch_size=16, checkpoint_every=30, log_every=30), device="cuda", amp=True,
                     channels_last=True)
    model = _model()
    before = _loss(model, data, range(64))
    result = train(model, data, config, tmp_path / "run", progress=False, keep_resume_state=True)
    assert next(result.model.parameters()).is_cuda
    after = _loss(result.model.cpu(), data, range(64))
    assert after < 0.5 * before
    assert torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)["rng"][0]["cuda"].numel() > 0


def test_adamw_is_fused_and_updates_as_the_per_tensor_loop():
    from fashion_lib.engine import _make_optimizer

    torch.manual_seed(0)
    models = [nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(64, 2)) for _ in range(2)]
    models[1].load_state_dict(models[0].state_dict())
    config = TrainConfig(steps=5, lr=1e-2, weight_decay=0.1, warmup_steps=0)
    start = models[0][0].weight.detach().clone()
    fused = _make_optimizer(models[0], config)
    assert all(group["fused"] for group in fused.param_groups)
    assert [g["weight_decay"] for g in fused.param_groups] == [0.1, 0.0]  # no decay on biases and norms
    loop = torch.optim.AdamW([{"params": [p for p in models[1].parameters() if p.ndim >= 2], "weight_decay": 0.1},
                              {"params": [p for p in models[1].parameters() if p.ndim < 2], "weight_decay": 0.0}],
                             lr=1e-2, foreach=False)
    x = torch.randn(2, 3, 6, 6)
    for _ in range(5):
        for model, optimizer in zip(models, (fused, loop), strict=True):
            optimizer.zero_grad()
            (model(x) - 1.0).square().mean().backward()
            optimizer.step()
    for a, b in zip(models[0].parameters(), models[1].parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-5)
    assert (models[0][0].weight - start).abs().min() > 1e-3  # every weight moved


class AutocastProbe(ToyRegressor):
    """A toy regressor that records whether each training forward ran under CPU bf16 autocast."""

    def __init__(self) -> None:
        super().__init__()
        self.autocast_seen: list[bool] = []

    def forward(self, images, targets=None):
        if self.training:
            self.autocast_seen.append(torch.is_autocast_enabled("cpu"))
        return super().forward(images, targets)


@pytest.mark.parametrize("native", [True, False])
def test_amp_on_cpu_autocasts_where_bf16_is_native_and_logs_otherwise(tmp_path, monkeypatch, caplog, native):
    import fashion_lib.engine as engine

    monkeypatch.setattr(engine, "bf16_native", lambda device: native)
    torch.manual_seed(0)
    model = AutocastProbe()
    with caplog.at_level(logging.INFO, logger="fashion_lib.engine"):
        train(model, ToyDataset(length=16), _config(steps=3, amp=True), tmp_path / "run", progress=False)
    assert model.autocast_seen == [native] * 3
    assert ("no native bf16" in caplog.text) is not native


def test_bf16_native_is_true_on_cuda_and_follows_onednn_on_cpu():
    from fashion_lib.engine import bf16_native

    assert bf16_native("cuda") is True
    assert bf16_native("cpu") is bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
