"""Shared experiment helpers (fashion_lib.experiments): cache keys, the cache, seeded builds."""

import pytest
import torch

from fashion_lib.experiments import TRAINING_SOURCES, cached, library_digest, seeded_build


def test_library_digest_covers_the_named_sources_only():
    full, training = library_digest(), library_digest(TRAINING_SOURCES)
    assert full != training and len(training) == 16
    assert library_digest(TRAINING_SOURCES) == training  # stable
    assert library_digest(("refine.py",)) != library_digest(("keypoints.py",))
    with pytest.raises(ValueError, match=r"no such source\(s\) in fashion_lib: \['nope.py'\]"):
        library_digest(("keypoints.py", "nope.py"))


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


def test_seeded_build_is_reproducible_and_leaves_the_global_rng_alone():
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a = seeded_build(lambda _: torch.nn.Linear(3, 2), None, 7)
    b = seeded_build(lambda _: torch.nn.Linear(3, 2), None, 7)
    assert torch.equal(a.weight, b.weight)
    assert torch.equal(torch.get_rng_state(), before)
