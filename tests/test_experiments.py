"""Shared experiment helpers (fashion_lib.experiments): the cache, seeded builds, row selection."""

import threading
import time

import pytest
import torch

from fashion_lib.experiments import cached, exclusive, holdout_rows, seeded_build, spread_rows


def test_cached_computes_once_and_recovers_from_a_cut_file(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return {"x": torch.arange(3)}

    path = tmp_path / "c.pt"
    assert torch.equal(cached(path, compute)["x"], torch.arange(3))
    assert torch.equal(cached(path, compute)["x"], torch.arange(3))
    assert len(calls) == 1
    path.write_bytes(path.read_bytes()[:10])  # a crash left half a file
    assert torch.equal(cached(path, compute)["x"], torch.arange(3))
    assert len(calls) == 2


def test_exclusive_makes_a_second_holder_wait_for_the_first(tmp_path):
    events = []
    inside = threading.Event()

    def first():
        with exclusive(tmp_path / "run"):
            inside.set()
            time.sleep(0.3)
            events.append("first done")

    t = threading.Thread(target=first)
    t.start()
    inside.wait(5)
    with exclusive(tmp_path / "run"):  # blocks until the first holder leaves
        events.append("second in")
    t.join()
    assert events == ["first done", "second in"]
    assert (tmp_path / ".run.lock").is_file()
    with exclusive(tmp_path / "other"):  # another name is another lock: not blocked by nothing
        pass


def test_cached_computes_once_when_two_ask_at_the_same_time(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        time.sleep(0.3)  # long enough for the other thread to ask while this one computes
        return torch.arange(4)

    got = []
    threads = [threading.Thread(target=lambda: got.append(cached(tmp_path / "v.pt", compute))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len(got) == 2 and all(torch.equal(g, torch.arange(4)) for g in got)


def test_seeded_build_is_reproducible_and_leaves_the_global_rng_alone():
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a = seeded_build(lambda _: torch.nn.Linear(3, 2), None, 7)
    b = seeded_build(lambda _: torch.nn.Linear(3, 2), None, 7)
    assert torch.equal(a.weight, b.weight)
    assert torch.equal(torch.get_rng_state(), before)


def test_spread_rows_cover_a_grouped_file_and_take_all_when_asked_for_more():
    groups = [g for g in "ABCDE" for _ in range(20)]  # a file grouped like FashionAI's: 20 rows per category
    rows = spread_rows(len(groups), 10)
    assert len(rows) == 10 == len(set(rows)) and {groups[i] for i in rows} == set("ABCDE")
    assert spread_rows(7, 10) == list(range(7)) and spread_rows(0, 3) == []


def test_holdout_rows_are_disjoint_cover_the_file_and_leave_rows_to_train():
    train, val = holdout_rows(100, 10)
    assert len(val) == 10 and not set(train) & set(val) and sorted(train + val) == list(range(100))
    assert holdout_rows(100, 10) == (train, val)  # the same file gives the same split
    train, val = holdout_rows(5, 50)  # more validation rows asked than the file has: one still trains
    assert len(train) == 1 and len(val) == 4
    with pytest.raises(ValueError, match="train_file x.csv has 1 row"):
        holdout_rows(1, 1, where="train_file x.csv")
