"""Runs one :func:`fashion_lib.engine.train` call on the toy model of ``training_toys.py`` in a separate process.

Used by the engine tests for what cannot happen in the test process: a run killed by SIGKILL, and a run under
``torchrun --nproc_per_node=2`` (gloo on CPU). Usage::

    python tests/engine_worker.py RUN_DIR '{"config": {...}, "model": {...}, "data": {...}, "kill_after_items": 30}'

``config`` are TrainConfig fields, ``model`` ToyRegressor arguments, ``data`` ToyDataset arguments, ``threads``
the torch thread count, ``keep_resume_state`` the train() option; with ``kill_after_items`` the process sends
itself SIGKILL when the dataset is asked for that many items.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's fashion_lib, not an installed one

from training_toys import ToyDataset, ToyRegressor  # noqa: E402

from fashion_lib.engine import TrainConfig, train  # noqa: E402


class KilledDataset(ToyDataset):
    """A ToyDataset whose process is SIGKILLed when item number ``kill_after`` (1-based) is requested."""

    def __init__(self, kill_after: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.kill_after, self.requested = kill_after, 0

    def __getitem__(self, index: int):
        self.requested += 1
        if self.requested == self.kill_after:
            os.kill(os.getpid(), signal.SIGKILL)
        return super().__getitem__(index)


def main(run_dir: str, spec_json: str) -> None:
    spec = json.loads(spec_json)
    logging.basicConfig(level=logging.WARNING)
    if "threads" in spec:
        torch.set_num_threads(spec["threads"])
    torch.manual_seed(spec.get("init_seed", 0))  # the model's initial weights, as the test builds them
    model = ToyRegressor(**spec.get("model", {}))
    data = spec.get("data", {})
    dataset = KilledDataset(spec["kill_after_items"], **data) if "kill_after_items" in spec else ToyDataset(**data)
    train(model, dataset, TrainConfig(**spec["config"]), run_dir, progress=False,
          keep_resume_state=spec.get("keep_resume_state", False))
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
