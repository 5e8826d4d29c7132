"""The data order of training (fashion_lib.data.order): batches as a function of seed and step, sharded by rank.

That the engine trains on exactly these batches, across interruptions, is tested in tests/test_engine.py."""

import pytest

from fashion_lib.data.order import StepBatchSampler, batch_indices


def test_global_batch_is_the_union_of_the_shards_and_each_epoch_a_permutation():
    n, b = 20, 8
    for step in range(1, 8):
        whole = batch_indices(n, b, 3, step)
        shards = [batch_indices(n, b, 3, step, rank=r, world_size=2) for r in range(2)]
        assert len(whole) == b and shards[0] + shards[1] == whole
        four = [batch_indices(n, b, 3, step, rank=r, world_size=4) for r in range(4)]
        assert sum(four, []) == whole
    stream = sum((batch_indices(n, 4, 3, s) for s in range(1, 11)), [])  # 40 items: two epochs of 20
    assert sorted(stream[:20]) == list(range(20)) and sorted(stream[20:]) == list(range(20))
    assert stream[:20] != stream[20:] and stream[:20] != list(range(20))
    assert batch_indices(n, b, 3, 1) != batch_indices(n, b, 4, 1)
    assert batch_indices(n, b, 3, 2) == batch_indices(n, b, 3, 2)
    # a sampler started after step k yields exactly the batches k+1 .. steps
    full = list(StepBatchSampler(n, b, 3, steps=9))
    assert list(StepBatchSampler(n, b, 3, steps=9, start_step=5)) == full[5:]
    with pytest.raises(ValueError, match="batch_size .global. = 6 is not divisible by the world size 4"):
        batch_indices(n, 6, 3, 1, rank=0, world_size=4)


def test_the_sampler_names_a_start_step_outside_the_run_and_reports_its_length():
    assert len(StepBatchSampler(10, 4, 0, steps=9, start_step=5)) == 4
    with pytest.raises(ValueError, match=r"start_step must be in \[0, steps=9\], got 10"):
        StepBatchSampler(10, 4, 0, steps=9, start_step=10)
    with pytest.raises(ValueError, match="rank must be in"):
        StepBatchSampler(10, 4, 0, steps=9, rank=2, world_size=2)
