"""Distributed helpers (fashion_lib.distributed): a plain one-process run needs no process group.

The multi-process path (torchrun, gloo) is exercised through the engine in tests/test_engine.py."""

import pytest
import torch
from torch import nn

from fashion_lib import distributed


def test_one_process_run_is_rank_zero_of_one_and_the_main_process(monkeypatch):
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    assert distributed.init_distributed("cpu") == distributed.DistInfo(rank=0, world_size=1, local_rank=0)
    assert (distributed.get_rank(), distributed.get_world_size(), distributed.is_main_process()) == (0, 1, True)
    distributed.barrier(1)  # nothing to wait for: returns at once


def test_a_rank_without_a_world_size_is_not_a_job(monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert distributed.init_distributed("cpu") == (0, 1, 0)


def test_a_torch_build_without_distributed_is_named(monkeypatch):
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr(distributed.dist, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match="RANK and WORLD_SIZE are set but this torch build has no torch.distributed"):
        distributed.init_distributed("cpu")


def test_broadcast_flag_gives_every_rank_rank_zeros_value(monkeypatch):
    assert distributed.broadcast_flag(True, 1) is True and distributed.broadcast_flag(False, 1) is False
    sent = []

    def from_rank_zero(box, src):  # what rank 1 sees when rank 0 decided to stop
        sent.append(src)
        box[0] = True

    monkeypatch.setattr(distributed.dist, "broadcast_object_list", from_rank_zero)
    assert distributed.broadcast_flag(False, 2) is True and sent == [0]


def test_gather_objects_lists_every_ranks_object_in_rank_order(monkeypatch):
    assert distributed.gather_objects({"a": 1}, 1) == [{"a": 1}]

    def two_ranks(out, obj):  # rank 1's view: rank 0 sent "zero"
        out[:] = ["zero", obj]

    monkeypatch.setattr(distributed.dist, "all_gather_object", two_ranks)
    assert distributed.gather_objects("one", 2) == ["zero", "one"]


def test_mean_over_processes_divides_the_sum_by_the_world_size(monkeypatch):
    values = torch.tensor([1.0, 3.0])
    assert distributed.mean_over_processes(values, 1) is values and values.tolist() == [1.0, 3.0]

    def sum_with_a_rank_of_zeros_and_one_of_fives(tensor):
        tensor += 5.0

    monkeypatch.setattr(distributed.dist, "all_reduce", sum_with_a_rank_of_zeros_and_one_of_fives)
    assert distributed.mean_over_processes(torch.tensor([1.0, 3.0]), 2).tolist() == [3.0, 4.0]


def test_data_parallel_leaves_a_one_process_model_unwrapped():
    model = nn.Linear(2, 1)
    assert distributed.data_parallel(model, torch.device("cpu"), 1) is model
