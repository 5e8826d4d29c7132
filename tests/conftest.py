"""Shared fixtures: a runs folder of the test's own; the smoke book, built once per test session and read by several
tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from fashion_lib import pipeline


@dataclass(frozen=True)
class SmokeBook:
    """A book built with the ``smoke`` profile in a temporary folder."""

    workdir: Path  # the book's sources and _build/
    cache: Path  # executed-notebook cache
    runs: Path  # trained models and cached predictions
    summary: pipeline.RunSummary  # what the build executed


@pytest.fixture(scope="session")
def smoke_book(tmp_path_factory) -> SmokeBook:
    """Execute every notebook with the smoke profile and build the book strictly (``-W``): done once."""
    base = tmp_path_factory.mktemp("smoke-book")
    workdir, cache, runs = base / "book", base / "cache", base / "runs"
    summary = pipeline.run("smoke", workdir=workdir, cache_dir=cache, runs_dir=runs)
    return SmokeBook(workdir, cache, runs, summary)


@pytest.fixture
def runs(tmp_path, monkeypatch) -> Path:
    """A runs folder of the test's own (``$FASHION_LIB_RUNS``): trained models and caches never leak between tests."""
    monkeypatch.setenv("FASHION_LIB_RUNS", str(tmp_path / "runs"))
    return tmp_path / "runs"
