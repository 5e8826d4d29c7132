"""Provenance of a result: which code, parameters, seeds and machine produced it, and how long it took.

Every notebook declares ``run_info = {}`` in its ``parameters`` cell (the pipeline fills it with the git commit,
the profile, the parameters and the command that reproduces the run), calls :func:`start` right after the imports,
and :meth:`Provenance.finish` in its last cell, which shows the record on the page and stores it in the notebook.

Run by hand with papermill (``run_info`` left empty), :func:`start` records what the pipeline would have: the
parameters papermill injected (read from the kernel's executed cells) and the git commit of the library's checkout;
and it parses list, mapping and number parameters that papermill's ``-p`` passed as strings, or refuses them by name
(:mod:`fashion_lib.parameters`).

The code a result came from is named two ways: the git commit (:func:`git_state`) and a digest of the library's
sources (:func:`library_digest`), which every cache key includes so that a change of code recomputes; a cache key
itself is a :func:`content_digest` of everything that shapes the cached value. Where the checkout is
(:func:`find_repo_root`) and where runs are kept (:func:`runs_dir`, :data:`RUNS_ENV`) live here too, so that lower
layers need not import the pipeline.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import os
import platform
import subprocess
import time
from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fashion_lib.parameters import ParameterError, coerce_injected, injected_parameters

__all__ = ["Provenance", "start", "device_description", "library_versions", "git_state", "BY_HAND", "RUNS_ENV",
           "RUNS_FOLDER", "find_repo_root", "runs_dir", "library_digest", "content_digest", "set_threads"]

log = logging.getLogger(__name__)
# The profile recorded for a notebook that papermill ran without the pipeline.
BY_HAND = "none (run by hand)"

# Environment variable through which the pipeline tells notebooks where trained models and cached predictions live
# (read by runs_dir); a finished training run found there is reused, not retrained.
RUNS_ENV = "FASHION_LIB_RUNS"
# Where runs go, under the repository root, when RUNS_ENV is not set.
RUNS_FOLDER = Path("_build", "runs")
_PACKAGE = Path(__file__).resolve().parent
_LIBRARIES = ("torch", "torchvision", "timm", "numpy", "pycocotools", "matplotlib", "papermill", "jupyter_book")


def device_description(threads: int | None = None) -> str:
    """A human-readable name of the compute device: the CUDA device name or the CPU model, core count and the torch
    threads (``threads``: those a notebook's kernel ran on, when another process describes it)."""
    import os

    import torch

    if torch.cuda.is_available():
        return f"cuda: {torch.cuda.get_device_name(0)} (x{torch.cuda.device_count()})"
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    threads = torch.get_num_threads() if threads is None else threads
    return f"cpu: {cpu} ({os.cpu_count()} cores, {threads} torch threads)"


def _git(root: Path, *args: str) -> str:
    try:
        out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip()


def git_state(root: Path) -> dict[str, Any]:
    """``{"commit": sha or "unknown", "dirty": bool}`` of the checkout at ``root``."""
    commit = _git(root, "rev-parse", "HEAD") or "unknown"
    dirty = bool(_git(root, "status", "--porcelain", "--untracked-files=no"))
    return {"commit": commit, "dirty": dirty}


def find_repo_root(start: Path | None = None) -> Path:
    """The folder holding ``pyproject.toml`` and ``notebooks/``, searched upwards from ``start`` (default: here)."""
    here = Path(start or _PACKAGE).resolve()
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").is_file() and (folder / "notebooks").is_dir():
            return folder
    raise FileNotFoundError(f"no project root (pyproject.toml beside notebooks/) above {here}")


def runs_dir() -> Path:
    """Where trained models, written data sets and cached predictions go: ``$FASHION_LIB_RUNS`` (the pipeline sets
    it) or :data:`RUNS_FOLDER` of the repository."""
    env = os.environ.get(RUNS_ENV)
    if env:
        return Path(env)
    return find_repo_root() / RUNS_FOLDER


def library_digest(sources: Sequence[str] | None = None, *, package: Path | None = None) -> str:
    """16 hex digits of SHA-256 over ``fashion_lib`` source files (relative path and bytes of each, sorted): part of
    every cache key, so a code change invalidates.

    ``sources``: files or folders relative to the package (e.g. ``"data"``, ``"refine.py"``); default every file.
    ``package``: the package folder to read (default: the one imported; the pipeline passes the checkout it builds).
    """
    root = Path(package or _PACKAGE).resolve()
    if sources is None:
        paths = list(root.rglob("*.py"))
    else:
        missing = [s for s in sources if not (root / s).exists()]
        if missing:
            raise ValueError(f"library_digest: no such source(s) in {root.name}: {missing}")
        paths = [p for s in sources for p in ((root / s).rglob("*.py") if (root / s).is_dir() else [root / s])]
    h = hashlib.sha256()
    for path in sorted(set(paths)):
        h.update(path.relative_to(root).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def content_digest(payload: Any, length: int = 12) -> str:
    """The first ``length`` hex digits of SHA-256 of ``payload`` as JSON (sorted keys; ``str`` of what JSON cannot
    write): the one way cache keys and run folder names are made from the settings that shape a result."""
    if not 1 <= length <= 64:
        raise ValueError(f"content_digest: length must be in [1, 64] hex digits, got {length}")
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def library_versions() -> dict[str, str]:
    """Versions of Python and the libraries a result depends on (``"missing"`` for one not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in _LIBRARIES:
        try:
            out[name] = version(name.replace("_", "-"))
        except PackageNotFoundError:
            out[name] = "missing"
    return out


@dataclass
class Provenance:
    """A running record; :meth:`finish` stops the clock and shows it."""

    run_info: Mapping[str, Any]
    seeds: Sequence[int]
    started: float = field(default_factory=time.perf_counter)
    started_at: str = field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    device: str = field(default_factory=device_description)
    versions: dict[str, str] = field(default_factory=library_versions)
    wall_time_s: float | None = None

    def record(self) -> dict[str, Any]:
        """The record as plain data (what the provenance page of the book lists)."""
        info = dict(self.run_info)
        return {
            "notebook": info.get("notebook", "(run by hand)"),
            "commit": info.get("commit", "unknown"),
            "dirty": info.get("dirty", None),
            "profile": info.get("profile", "(defaults)"),
            "parameters": info.get("parameters", {}),
            "seeds": list(self.seeds),
            "device": self.device,
            "versions": self.versions,
            "started_at": self.started_at,
            "wall_time_s": self.wall_time_s,
            "command": info.get("command", "(run by hand: no pipeline command)"),
        }

    def finish(self, *, display: bool = True) -> dict[str, Any]:
        """Stop the clock, glue ``wall_time_s`` and ``device``, and (in a notebook) show the record as a table."""
        self.wall_time_s = round(time.perf_counter() - self.started, 2)
        rec = self.record()
        if display:
            from IPython.display import Markdown
            from IPython.display import display as show
            from myst_nb import glue

            glue("provenance_wall_time_s", float(self.wall_time_s), display=False)
            glue("provenance_device", self.device, display=False)
            glue("provenance_commit", str(rec["commit"])[:10], display=False)
            show(Markdown(to_markdown(rec)))
        return rec


def to_markdown(rec: Mapping[str, Any]) -> str:
    """A two-column Markdown table of a provenance record."""
    dirty = {True: " (with uncommitted changes)", False: "", None: ""}[rec.get("dirty")]
    params = ", ".join(f"`{k}={v!r}`" for k, v in rec["parameters"].items()) or "profile defaults"
    versions = ", ".join(f"{k} {v}" for k, v in rec["versions"].items())
    rows = [
        ("commit", f"`{rec['commit']}`{dirty}"),
        ("profile", f"`{rec['profile']}`"),
        ("parameters", params),
        ("seeds", ", ".join(map(str, rec["seeds"])) or "none (deterministic)"),
        ("device", rec["device"]),
        ("library versions", versions),
        ("started (UTC)", rec["started_at"]),
        ("wall time", f"{rec['wall_time_s']:.1f} s" if rec["wall_time_s"] is not None else "running"),
        ("reproduce with", f"`{rec['command']}`"),
    ]
    body = "\n".join(f"| {k} | {v} |" for k, v in rows)
    return f"**Provenance of this page**\n\n| | |\n|---|---|\n{body}\n"


def _kernel_namespace() -> MutableMapping[str, Any] | None:
    """The running IPython kernel's user namespace (its ``In`` lists the executed cells), or None outside one."""
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    shell = get_ipython()
    return None if shell is None else shell.user_ns


def start(run_info: Mapping[str, Any] | None = None, seeds: Sequence[int] | str = (),
          *, namespace: MutableMapping[str, Any] | None = None) -> Provenance:
    """Start recording the provenance of a notebook run (call it right after the imports).

    ``namespace`` is the notebook's global namespace (default: the running kernel's). The parameters papermill
    injected are read from its executed cells (``In``); a string it passed for a list, mapping or number parameter
    (``papermill -p seeds '[0]'``) is parsed and the notebook's variable replaced, or refused with a
    :class:`~fashion_lib.parameters.ParameterError` naming the parameter. When ``run_info`` is empty (papermill run
    by hand, not by the pipeline) the record takes the git commit of the library's checkout and the injected
    parameters.
    """
    info = dict(run_info or {})
    namespace = _kernel_namespace() if namespace is None else namespace
    injected: dict[str, Any] = {}
    if namespace is not None:
        defaults, raw = injected_parameters(list(namespace.get("In", [])))
        injected = coerce_injected(defaults, raw) if defaults is not None else raw
        for name, value in injected.items():
            if value is not raw[name]:
                log.warning("parameter %r was given as the string %r (papermill -p): using %r", name, raw[name], value)
                namespace[name] = value
        if isinstance(seeds, str) and not isinstance(injected.get("seeds"), str):
            seeds = injected.get("seeds", seeds)
    if isinstance(seeds, str):
        raise ParameterError(f"parameter 'seeds' = {seeds!r}: expected a list of integers, e.g. "
                             "papermill -y 'seeds: [0]'")
    if not info:
        info = {**git_state(Path(__file__).resolve().parents[1]), "profile": BY_HAND,
                "parameters": {k: v for k, v in injected.items() if k != "run_info"}}
    if info.get("threads"):
        set_threads(int(info["threads"]))
    return Provenance(run_info=info, seeds=list(seeds))


def set_threads(threads: int) -> None:
    """Run this process's PyTorch (and so the refiner's numba kernel, which follows ``torch.get_num_threads()``)
    on ``threads`` CPU threads. The pipeline sets it per kernel when notebooks run side by side (its lanes), so that
    two kernels do not both claim every core."""
    if threads < 1:
        raise ValueError(f"run_info['threads'] must be at least 1, got {threads}")
    import torch

    torch.set_num_threads(threads)
