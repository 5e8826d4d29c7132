"""Executing one notebook: its cache key, papermill with the profile's parameters and the runner's provenance
record, the progress shown while it runs, and the executed copy with its code folded for the book.

Execution is incremental and resumable: an executed notebook is cached under a key made of its source, its
parameters and every ``fashion_lib`` source file (:func:`cache_key`), and a notebook whose key is cached is not run
again. :mod:`fashion_lib.pipeline` decides which notebooks run, where and in which order.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fashion_lib.io import atomic_write, read_text
from fashion_lib.profiles import Notebook
from fashion_lib.progress import CellProgress
from fashion_lib.provenance import content_digest

__all__ = ["cache_key", "execute_notebook", "fold_code"]


def cache_key(notebook: Notebook, params: Mapping[str, Any], library: str) -> str:
    """Content hash of a notebook's source, its parameters and the library sources (``library``, a
    :func:`~fashion_lib.provenance.library_digest`): equal key, equal result."""
    return content_digest({"notebook": read_text(notebook.path), "parameters": params, "library": library}, 20)


def _read_jupytext(path: Path):
    import jupytext

    return jupytext.read(path, fmt="py:percent")


def _kernel_config(socket_dir: str):
    """nbclient's configuration: the kernel talks to the runner over local IPC sockets, not TCP on localhost, which
    ipykernel warns about on every start (and which another local user could connect to). The sockets are files
    named ``<ip>-<n>``, ``n`` the first free number, so kernels that start at the same moment (two lanes) would
    pick the same files in a shared folder: each kernel gets its own private folder (``socket_dir``)."""
    from traitlets.config import Config

    return Config({"KernelManager": {"transport": "ipc", "ip": os.path.join(socket_dir, "kernel")}})


def execute_notebook(
    notebook: Notebook,
    params: Mapping[str, Any],
    output: Path,
    *,
    run_info: Mapping[str, Any],
    timeout: int | None = None,
    label: str | None = None,
    expected_s: float | None = None,
    live: bool | None = None,
) -> float:
    """Convert ``notebook`` to ``.ipynb``, execute it with papermill and ``params``, write it atomically to
    ``output``. Returns the wall time in seconds. A failing cell raises ``RuntimeError`` naming the notebook; the
    partly executed notebook is kept beside ``output`` as ``<name>.failed.ipynb`` to read the traceback. While it
    runs, the running cell and the time spent are shown (prefixed by ``label``), beside ``expected_s`` if given
    (:class:`fashion_lib.progress.CellProgress`).
    """
    import nbformat
    import papermill

    nb = _read_jupytext(notebook.path)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp_in = output.with_name(f".{notebook.name}.input.ipynb")
    tmp_out = output.with_name(f".{notebook.name}.running.ipynb")
    nbformat.write(nb, tmp_in)
    all_params = dict(params)
    if "run_info" in notebook.defaults:
        all_params["run_info"] = dict(run_info)
    start, started_at = time.perf_counter(), time.time()
    sockets = tempfile.TemporaryDirectory(prefix="fashion-lib-kernel-")  # mode 0700: this user's only
    try:
        with CellProgress(label or notebook.name, nb.cells, expected_s, injected=bool(all_params),
                          live=live) as progress:
            papermill.execute_notebook(
                str(tmp_in),
                str(tmp_out),
                parameters=all_params,
                kernel_name="python3",
                cwd=str(notebook.path.parent),
                progress_bar=False,
                execution_timeout=timeout,
                on_cell_start=progress.on_cell_start,
                config=_kernel_config(sockets.name),
            )
    except papermill.PapermillExecutionError as err:
        failed = output.with_name(f"{notebook.name}.failed.ipynb")
        if tmp_out.exists():
            os.replace(tmp_out, failed)
        raise RuntimeError(
            f"notebook {notebook.path} failed in cell {err.exec_count}: {err.ename}: {err.evalue} (executed copy "
            f"with the traceback: {failed})"
        ) from None
    finally:
        tmp_in.unlink(missing_ok=True)
        sockets.cleanup()
    wall = time.perf_counter() - start
    executed = nbformat.read(tmp_out, as_version=4)
    from fashion_lib.provenance import device_description, library_versions

    executed.metadata["fashion_lib"] = {**run_info, "wall_time_s": round(wall, 3), "started_at": round(started_at, 1),
                                        "finished_at": round(started_at + wall, 1),
                                        "device": device_description(run_info.get("threads")),
                                        "versions": library_versions()}
    executed.metadata.pop("jupytext", None)
    fold_code(executed)
    with atomic_write(output) as f:
        nbformat.write(executed, f)
    tmp_out.unlink(missing_ok=True)
    return wall


def fold_code(nb) -> None:
    """Fold every code cell's source behind a "show" toggle of the book (tag ``hide-input``), and the parameter
    cells whole (``hide-cell``): a reader sees results and prose first, and the code and parameters one click away.
    """
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        tags = cell.setdefault("metadata", {}).setdefault("tags", [])
        wanted = "hide-cell" if {"parameters", "injected-parameters"} & set(tags) else "hide-input"
        if wanted not in tags:
            tags.append(wanted)
