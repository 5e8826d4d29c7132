"""Progress of a notebook while the pipeline executes it: the running cell, the time spent and the time expected.

The expected time is the wall time the pipeline recorded for the same notebook and profile the last time it ran
(kept in the executed-notebook cache, whatever the parameters or sources were then), so a first run has none. On a
terminal the status is one line rewritten every second; in a log (no terminal) it is a line per cell that starts at
least ``log_every_s`` after the previous line, so a long cell still shows that it runs.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

__all__ = ["expected_wall_time", "format_duration", "last_heading", "CellProgress"]


def expected_wall_time(cache_dir: Path, name: str, profile: str) -> float | None:
    """Seconds the newest cached run of notebook ``name`` with ``profile`` took, or None if it never ran so."""
    runs = sorted((cache_dir / name).glob("*.ipynb"), key=lambda p: p.stat().st_mtime, reverse=True)
    for path in runs:
        try:
            meta = json.loads(path.read_text()).get("metadata", {}).get("fashion_lib", {})
        except (OSError, json.JSONDecodeError):
            continue
        if meta.get("profile") == profile and isinstance(meta.get("wall_time_s"), int | float):
            return float(meta["wall_time_s"])
    return None


def format_duration(seconds: float) -> str:
    """``"42 s"``, ``"3:07"`` (minutes:seconds) or ``"1:02:03"``."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s} s"
    h, rest = divmod(s, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


def last_heading(markdown: str) -> str | None:
    """The title of the last Markdown heading in ``markdown`` (``"## Table 1"`` -> ``"Table 1"``), or None."""
    titles = [line.lstrip("#").strip() for line in markdown.splitlines() if line.startswith("#")]
    return titles[-1] if titles else None


class CellProgress:
    """Status of one notebook run; :meth:`on_cell_start` is nbclient's ``on_cell_start`` hook.

    Use as a context manager around the execution: it starts and stops the thread that refreshes the line.
    """

    def __init__(self, prefix: str, cells: Sequence[Any], expected_s: float | None, *, injected: bool = False,
                 stream: TextIO | None = None, clock: Callable[[], float] = time.monotonic, log_every_s: float = 60.0,
                 live: bool | None = None):
        self.prefix = prefix
        self._live = live  # None: rewrite one line in place when the stream is a terminal
        # papermill runs one more code cell than ``cells`` holds when it injects parameters
        self.total = sum(c.get("cell_type") == "code" for c in cells) + int(injected)
        self.expected_s = expected_s
        self.stream = sys.stderr if stream is None else stream
        self.clock = clock
        self.log_every_s = log_every_s
        self.started = clock()
        self.cell = 0  # ordinal of the running code cell, 1-based; 0 before the first
        self.label = ""
        self._last_log = -float("inf")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def live(self) -> bool:
        """Whether one line is rewritten in place: the stream is a terminal, unless ``live`` said otherwise (two
        notebooks running side by side cannot share one line)."""
        if self._live is not None:
            return self._live
        return bool(getattr(self.stream, "isatty", lambda: False)())

    def line(self) -> str:
        """``"[3/13] 10_x: cell 7 of 24 (Table 1), 1:23 elapsed of about 6:40 (last run)"``."""
        elapsed = self.clock() - self.started
        where = f"cell {self.cell} of {self.total}" + (f" ({self.label})" if self.label else "")
        if self.expected_s is None:
            expected = "(no earlier run of this profile to compare with)"
        elif elapsed <= self.expected_s:
            expected = f"of about {format_duration(self.expected_s)} (last run)"
        else:
            expected = f"longer than the last run ({format_duration(self.expected_s)})"
        return f"{self.prefix}: {where}, {format_duration(elapsed)} elapsed {expected}"

    def on_cell_start(self, cell: Any = None, **_: Any) -> None:
        """nbclient hook, called for every cell in order: a Markdown heading names the code cells after it."""
        cell = cell or {}
        with self._lock:
            if cell.get("cell_type") == "markdown":
                self.label = last_heading(cell.get("source", "")) or self.label
                return
            self.cell += 1
        if not self.live and self.clock() - self._last_log >= self.log_every_s:
            self._write(self.line() + "\n")
            self._last_log = self.clock()

    def _write(self, text: str) -> None:
        with self._lock:
            self.stream.write(text)
            self.stream.flush()

    def _tick(self) -> None:
        while not self._stop.wait(1.0):
            self._write("\r\033[K" + self.line())

    def __enter__(self) -> CellProgress:
        if self.live:
            self._thread = threading.Thread(target=self._tick, name="notebook-progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._write("\r\033[K")
