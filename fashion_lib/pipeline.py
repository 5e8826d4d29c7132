"""The notebook -> book pipeline: execute every experiment notebook with a profile's parameters, then build the book.

Each experiment is a jupytext percent ``.py`` file in ``notebooks/`` with one cell tagged ``parameters`` whose
lines are literal assignments (``seed = 0``). A profile (``notebooks/profiles/<name>.yaml``) sets parameters::

    all:                    # every notebook that declares the name
      seeds: [0, 1, 2]
    01_data_tour:           # one notebook
      num_samples: 16

Names are checked against the notebooks' ``parameters`` cells and values against the defaults' types, so a typo
stops the run with a message naming the profile, the notebook and the parameter. ``-p name value`` on the
command line overrides any value (``-p 01_data_tour.num_samples 8`` for one notebook only).

Execution is incremental and resumable: an executed notebook is cached under a key made of its source, its
parameters and every ``fashion_lib`` source file, and a notebook whose key is cached is not run again. Each
notebook is cached as soon as it finishes, so an interrupted build resumes at the notebook it stopped in.
Notebooks run in :data:`LANES`, side by side (``--jobs``; by default one lane per two cores, at most as many as
there are lanes), each kernel on its share of the cores; ``--jobs 1`` runs them one after another.
The book is built by ``jupyter-book build`` with execution off and warnings as errors, with a banner on every page
naming the profile, commit, seeds, validation sizes and device of its results (:mod:`fashion_lib.banner`). When some
notebooks have never run in the work folder (``--only`` on a fresh clone), only the pages that can be built are:
those whose notebooks ran and that neither link to nor glue from a page that is missing.

Usage::

    python -m fashion_lib.pipeline [--profile cpu] [-p name value ...] [--only NAME ...] [--no-build] [--runs-dir DIR]
                                   [--jobs N]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from fashion_lib.banner import banner_html, collect_facts, read_executed
from fashion_lib.io import atomic_write, read_text
from fashion_lib.parameters import ParameterError, literal_assignments, parameters_cell
from fashion_lib.progress import CellProgress, expected_wall_time
from fashion_lib.provenance import RUNS_ENV, RUNS_FOLDER, content_digest, find_repo_root, git_state, library_digest

__all__ = [
    "ProfileError",
    "Notebook",
    "discover_notebooks",
    "LANES",
    "plan_lanes",
    "default_jobs",
    "kernel_threads",
    "read_parameters",
    "load_profile",
    "Profile",
    "resolve_parameters",
    "profile_path",
    "notebook_parameters",
    "cache_key",
    "execute_notebook",
    "build_book",
    "build_failure_message",
    "toc_parts",
    "read_build_history",
    "append_build_history",
    "fold_code",
    "write_primary_claims",
    "run",
    "main",
]

log = logging.getLogger(__name__)

# Parameters the runner passes to every notebook that declares them; they never come from a profile.
RUNNER_PARAMETERS = ("run_info",)
# Files copied into a separate work directory when the book is built somewhere else (tests do that).
BOOK_SOURCES = ("_config.yml", "_toc.yml", "book", "notebooks")
# Time budget in minutes of the main job (the ``cpu`` profile on a 2-core machine from a clean clone): the whole book.
# Its two halves (key points, attributes) share it as the work needs; they run side by side (LANES), so each part's
# clock may take most of it. The provenance page sets the measured times beside it.
CPU_BUDGET_MIN = {"whole book": 90.0}
# The notebooks run in these lanes, side by side, one kernel per lane at a time, each kernel on its share of the
# cores (kernel_threads). Measured on the 2-core machine: two one-thread Keypoint R-CNN trainings at once ran at 10.0
# and 9.8 images/s each, one two-thread training alone at 11.2 (benchmarks/train.py --models loop --schemas fashionai
# --threads 1, two processes at once, against --threads 2 alone), so two lanes get about 1.8 times the work through.
# A lane that needs a model the other lane is training waits for it (fashion_lib.experiments.exclusive), so the
# lanes are arranged to need different models at the same time: notebook 20 opens the attribute lane by training the
# FashionAI detector of seed 0 (the one whose key points every attribute crop uses), while notebook 10 trains the
# other seeds first (experiments.keypoints.rows_for_seeds) and loads seed 0 when it gets there. The cpu book of
# a4a283d, with notebook 23 first in the attribute lane, left that lane waiting 10 of its 55 minutes for seed 0.
# Notebooks 22 and 23 follow the key-point notebooks: the attribute lane's Table 2 is the longer half. A notebook
# no lane names runs in the first lane, after the named ones.
LANES: tuple[tuple[str, ...], ...] = (
    ("00_keypoint_schemas", "01_data_tour", "10_table1_fashionai", "11_table1_coco", "12_fig1_gallery",
     "13_ablation_alpha", "14_ablation_ransac", "15_ablation_second_scale", "16_beyond_symmetry_prior",
     "23_ablation_beta", "22_table3_deepfashion"),
    ("20_table2_fashionai_attributes", "21_fig3_crops"),
)
# One JSON line per finished build, under the work directory's _build/: the provenance page shows recent builds'
# times (a page cannot show the time of the build that renders it).
BUILD_HISTORY = Path("_build") / "build-history.jsonl"


class ProfileError(ValueError):
    """A profile or a command-line override names an unknown parameter or gives a value of the wrong type."""


@dataclass(frozen=True)
class Notebook:
    """One experiment notebook and the parameters its ``parameters`` cell declares."""

    path: Path
    """The jupytext percent source, ``notebooks/NN_name.py``."""
    defaults: Mapping[str, Any]
    """Parameter name -> default value, in declaration order."""

    @property
    def name(self) -> str:
        """The notebook's stem, e.g. ``"00_keypoint_schemas"``; also its key in profiles."""
        return self.path.stem


def cpu_cores() -> int:
    """The cores this process may run on (its affinity mask where the platform has one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def default_jobs(cores: int | None = None, *, gpu: bool | None = None) -> int:
    """On CPUs, as many lanes as :data:`LANES` has where there are at least as many cores, else one per core: on 2
    cores, two one-thread kernels get more done than one two-thread kernel (see :data:`LANES`). With a CUDA device
    (``gpu`` None: asked of PyTorch), one lane: two notebooks' training runs on one GPU would share its memory
    (``book/gpu.md`` estimates up to 60 GB for one attribute notebook), and each already keeps it busy."""
    if gpu is None:
        import torch

        gpu = torch.cuda.is_available()
    if gpu:
        return 1
    cores = cpu_cores() if cores is None else cores
    return max(1, min(len(LANES), cores))


def plan_lanes(notebooks: Sequence[Notebook], jobs: int) -> list[list[Notebook]]:
    """``notebooks`` split into at most ``jobs`` lanes that run side by side, each in its own order.

    ``jobs`` 1 keeps ``notebooks``' order in one lane. Otherwise each lane of :data:`LANES` keeps the notebooks it
    names (in its order), a notebook no lane names joins the first lane, empty lanes are dropped, and when ``jobs``
    is smaller than the number of lanes they are joined in turn (lane ``k`` into lane ``k % jobs``).
    """
    if jobs < 1:
        raise ValueError(f"--jobs must be at least 1, got {jobs}")
    if jobs == 1:
        return [list(notebooks)]
    by_name = {nb.name: nb for nb in notebooks}
    lanes = [[by_name[name] for name in lane if name in by_name] for lane in LANES]
    named = {nb.name for lane in lanes for nb in lane}
    lanes[0].extend(nb for nb in notebooks if nb.name not in named)
    lanes = [lane for lane in lanes if lane]
    joined: list[list[Notebook]] = [[] for _ in range(min(jobs, len(lanes)))]
    for k, lane in enumerate(lanes):
        joined[k % len(joined)].extend(lane)
    return joined


def kernel_threads(lanes: int, cores: int | None = None) -> int:
    """The CPU threads each kernel gets when ``lanes`` lanes run side by side: an equal share of the cores, at
    least one."""
    cores = cpu_cores() if cores is None else cores
    return max(1, cores // max(1, lanes))


# The thread pools a kernel's libraries size from the environment when they start: OpenMP (PyTorch's and oneDNN's
# kernels), MKL, OpenBLAS and numba.
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS")


@contextlib.contextmanager
def kernel_thread_env(threads: int) -> Iterator[None]:
    """Within the block, kernels start with every library's thread pool at ``threads`` (:data:`THREAD_ENV`); the
    runner's own environment is restored after it.

    ``torch.set_num_threads`` in the kernel (:func:`fashion_lib.provenance.set_threads`) is not enough: once the
    refiner's numba kernel has run (numba and PyTorch share GNU OpenMP here), PyTorch's parallel regions ran two
    OpenMP threads again, and with the other lane busy they shared one core. Measured with two lanes, each kernel
    running the refiner on 2,000 instances and then 60 Keypoint R-CNN training steps (cpu preset, 128 px, bf16):
    3.7 images/s per kernel with only ``torch.set_num_threads(1)``, 9.4-9.8 with these variables set to 1
    (``benchmarks/lanes.py``: 2.6x for the two lanes together); the first
    cpu book with lanes trained its second seed at 3.5 images/s after the first seed's refinement."""
    before = {name: os.environ.get(name) for name in THREAD_ENV}
    os.environ.update({name: str(threads) for name in THREAD_ENV})
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _read_jupytext(path: Path):
    import jupytext

    return jupytext.read(path, fmt="py:percent")


def read_parameters(path: Path) -> dict[str, Any]:
    """Names and default values of the cell tagged ``parameters`` in the jupytext notebook ``path``.

    Every statement of that cell must be ``name = <literal>``; anything else is an error naming the line, because
    the runner could not check or override it.
    """
    try:
        return literal_assignments(parameters_cell(read_text(path)))
    except ParameterError as err:
        raise ProfileError(f"{path}: {err}") from None


def discover_notebooks(root: Path, only: Sequence[str] = ()) -> list[Notebook]:
    """The notebooks of ``root/notebooks`` in name order, or those named in ``only`` (stems)."""
    paths = sorted((root / "notebooks").glob("[0-9][0-9]_*.py"))
    notebooks = [Notebook(p, read_parameters(p)) for p in paths]
    if only:
        known = {nb.name for nb in notebooks}
        unknown = [name for name in only if name not in known]
        if unknown:
            raise ProfileError(f"--only: unknown notebook(s) {unknown}; valid: {sorted(known)}")
        notebooks = [nb for nb in notebooks if nb.name in only]
    return notebooks


class Profile(dict):
    """A profile as read by :func:`load_profile`: section -> {parameter: value}, plus where each key was written."""

    def __init__(self, data: Mapping[str, Mapping[str, Any]], lines: Mapping[tuple[str, ...], int]) -> None:
        super().__init__(data)
        self.lines = dict(lines)
        """``(section,)`` or ``(section, parameter)`` -> 1-based line of the key in the file."""

    def where(self, name: str, *keys: str) -> str:
        """``name``, with `` line N`` when the line of ``keys`` is known."""
        line = self.lines.get(tuple(keys))
        return f"{name} line {line}" if line else name


class _ProfileLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key written twice in one mapping (plain YAML keeps the last silently)."""

    source = "profile"

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise ProfileError(f"{self.source} line {line}: key {key!r} is written twice (first on line "
                                   f"{seen[key]}); YAML would keep only the last silently")
            seen[key] = line
        return super().construct_mapping(node, deep)


def _key_lines(node: yaml.Node | None) -> dict[tuple[str, ...], int]:
    """``(section,)`` and ``(section, parameter)`` -> 1-based line, from the composed YAML tree of a profile."""
    lines: dict[tuple[str, ...], int] = {}
    if not isinstance(node, yaml.MappingNode):
        return lines
    for key, value in node.value:
        lines[(str(key.value),)] = key.start_mark.line + 1
        if isinstance(value, yaml.MappingNode):
            for sub, _ in value.value:
                lines[(str(key.value), str(sub.value))] = sub.start_mark.line + 1
    return lines


def load_profile(path: Path) -> Profile:
    """Read a profile file: a mapping of ``all`` and notebook names to mappings of parameter values.

    Raises :class:`ProfileError` naming the file (and the line) when it is missing, not UTF-8, not YAML, writes a
    key twice, or is not a mapping of mappings. Section names are checked against the notebooks by
    :func:`resolve_parameters`, which names the lines recorded here.
    """
    if not path.is_file():
        available = sorted(p.stem for p in path.parent.glob("*.yaml"))
        raise ProfileError(f"profile file {path} does not exist; available profiles: {available}")
    try:
        text = read_text(path)
    except ValueError as err:
        raise ProfileError(str(err)) from None
    loader = _ProfileLoader(text)
    loader.source = str(path)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else {}
    except yaml.YAMLError as err:
        raise ProfileError(f"{path}: not valid YAML: {err}") from None
    finally:
        loader.dispose()
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ProfileError(f"{path}: expected a mapping of 'all' and notebook names, got {type(data).__name__}")
    lines = _key_lines(node)
    for section, values in data.items():
        if not isinstance(values, dict) and values is not None:
            raise ProfileError(f"{path} line {lines.get((str(section),), '?')}: section {section!r} must be a "
                               "mapping of parameter: value")
    return Profile({str(k): dict(v or {}) for k, v in data.items()}, lines)


def _type_problem(default: Any, value: Any) -> str | None:
    """Why ``value`` cannot replace ``default`` (None when it can): the same type (an int for a float default),
    list elements each of a type among the default's elements, mapping fields among the default's with values
    of their types."""
    if default is None or value is None:
        return None
    if isinstance(default, bool) or isinstance(value, bool):
        ok = isinstance(default, bool) and isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, int | float)
    elif isinstance(default, list | tuple):
        if not isinstance(value, list | tuple):
            return f"must be a list like its default {default!r}, got {value!r} ({type(value).__name__})"
        for i, element in enumerate(value):
            if default and all(_type_problem(d, element) for d in default):
                kinds = sorted({type(d).__name__ for d in default})
                return (f"element [{i}] = {element!r} ({type(element).__name__}) must be a {' or '.join(kinds)} like "
                        f"the elements of its default {default!r}")
        return None
    elif isinstance(default, dict):
        if not isinstance(value, dict):
            return f"must be a mapping like its default {default!r}, got {value!r} ({type(value).__name__})"
        for field, item in value.items():
            if field not in default:
                return f"has no field {field!r}; valid: {list(default)}"
            problem = _type_problem(default[field], item)
            if problem:
                return f"field {field!r} {problem}"
        return None
    else:
        ok = isinstance(value, type(default))
    if ok:
        return None
    return f"must be a {type(default).__name__} like its default {default!r}, got {value!r} ({type(value).__name__})"


def _layered(default: Any, below: Any, value: Any) -> Any:
    """The value a layer gives a parameter: a mapping given in part (``-p detector '{train_steps: 800}'``) keeps
    the fields it does not name from the layer below it (the ``all`` section under a notebook's section, both
    under ``-p``, the notebook's default under all of them); any other value replaces the one below."""
    if isinstance(default, dict) and isinstance(value, dict):
        return {**(below if isinstance(below, dict) else default), **value}
    return value


def _check(where: str, notebook: Notebook, name: str, value: Any) -> None:
    if name in RUNNER_PARAMETERS:
        raise ProfileError(f"{where}: parameter {name!r} is set by the runner, not by a profile")
    if name not in notebook.defaults:
        valid = [n for n in notebook.defaults if n not in RUNNER_PARAMETERS]
        raise ProfileError(f"{where}: notebook {notebook.name!r} has no parameter {name!r}; valid: {valid}")
    problem = _type_problem(notebook.defaults[name], value)
    if problem:
        raise ProfileError(f"{where}: parameter {name!r} of notebook {notebook.name!r} {problem}")


def _is_notebook_name(section: str) -> bool:
    return section[:2].isdigit() and section[2:3] == "_"


def resolve_parameters(
    notebooks: Sequence[Notebook],
    profile: Mapping[str, Mapping[str, Any]],
    overrides: Sequence[tuple[str, str]] = (),
    *,
    profile_name: str = "profile",
    known: Sequence[str] | None = None,
) -> dict[str, dict[str, Any]]:
    """Parameters per notebook: the profile's ``all`` section, its notebook section, then ``overrides``.

    ``overrides`` are ``(name, value)`` string pairs from ``-p``; ``value`` is parsed as YAML (``3``, ``0.5``,
    ``[0, 1]``, ``true``); ``name`` may be ``notebook.name`` to address one notebook. ``known`` names every notebook
    that exists (default: those of ``notebooks``): a section for one of them outside ``notebooks`` (``--only``) is
    skipped, a section for any other name is an error. Values are checked against the notebook's defaults: the
    type, each list element, each field of a mapping. Raises :class:`ProfileError` naming the profile (with the
    line, for a :class:`Profile` read by :func:`load_profile`), notebook and parameter.
    """
    by_name = {nb.name: nb for nb in notebooks}
    exists = set(by_name) | set(known or ())
    at = profile.where if isinstance(profile, Profile) else lambda name, *keys: name
    params: dict[str, dict[str, Any]] = {nb.name: {} for nb in notebooks}
    for section, values in profile.items():
        if section == "all":
            for name, value in values.items():
                takers = [nb for nb in notebooks if name in nb.defaults]
                if not takers:
                    raise ProfileError(f"{at(profile_name, section, name)}: 'all' sets {name!r}, which no notebook "
                                       "declares")
                for nb in takers:
                    _check(f"{at(profile_name, section, name)} (all)", nb, name, value)
                    params[nb.name][name] = _layered(nb.defaults[name], params[nb.name].get(name), value)
        elif section in by_name:
            for name, value in values.items():
                _check(f"{at(profile_name, section, name)} ({section})", by_name[section], name, value)
                params[section][name] = _layered(by_name[section].defaults[name], params[section].get(name), value)
        elif not _is_notebook_name(section):
            raise ProfileError(f"{at(profile_name, section)}: unknown section {section!r}; valid: 'all' or a "
                               "notebook name")
        elif section not in exists:
            raise ProfileError(f"{at(profile_name, section)}: section {section!r} names no notebook (a typo would "
                               f"run the notebook with its own defaults); notebooks: {sorted(exists)}")
        # else: a section for a notebook outside --only, skipped
    for raw_name, raw_value in overrides:
        try:
            value = yaml.safe_load(raw_value)
        except yaml.YAMLError as err:
            raise ProfileError(f"-p {raw_name} {raw_value}: value is not valid YAML: {err}") from None
        target, _, name = raw_name.rpartition(".")
        if target:
            if target not in by_name:
                raise ProfileError(f"-p {raw_name}: unknown notebook {target!r}; valid: {sorted(by_name)}")
            takers = [by_name[target]]
        else:
            takers = [nb for nb in notebooks if name in nb.defaults]
            if not takers:
                raise ProfileError(f"-p {raw_name}: no notebook declares a parameter {name!r}")
        for nb in takers:
            _check(f"-p {raw_name}", nb, name, value)
            params[nb.name][name] = _layered(nb.defaults[name], params[nb.name].get(name), value)
    return params


def profile_path(root: Path, profile: str) -> Path:
    """The file of the profile called ``profile``: ``root/notebooks/profiles/<profile>.yaml``."""
    return root / "notebooks" / "profiles" / f"{profile}.yaml"


def notebook_parameters(profile: str, overrides: Sequence[tuple[str, str]] = (), *, root: Path | None = None
                        ) -> dict[str, dict[str, Any]]:
    """Every parameter each notebook runs with under ``profile``: its defaults, then what :func:`resolve_parameters`
    sets. Lets code outside the book (``python -m fashion_lib.train --profile``) use the values a notebook gets."""
    root = find_repo_root(root)
    path = profile_path(root, profile)
    notebooks = discover_notebooks(root)
    params = resolve_parameters(notebooks, load_profile(path), overrides, profile_name=str(path))
    return {nb.name: {**nb.defaults, **params[nb.name]} for nb in notebooks}


def cache_key(notebook: Notebook, params: Mapping[str, Any], library: str) -> str:
    """Content hash of a notebook's source, its parameters and the library sources (``library``, a
    :func:`~fashion_lib.provenance.library_digest`): equal key, equal result."""
    return content_digest({"notebook": read_text(notebook.path), "parameters": params, "library": library}, 20)


def _command(profile: str, notebook: str, params: Mapping[str, Any], jobs: int = 1) -> str:
    args = " ".join(f"-p {notebook}.{k} {json.dumps(v)!r}" for k, v in params.items())
    # --jobs: the kernel's share of the cores, on which its CPU results depend (see run)
    lanes = f" --jobs {jobs}" if jobs != 1 else ""
    return f"python -m fashion_lib.pipeline --profile {profile} --only {notebook}{lanes} {args}".rstrip()


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


def toc_parts(workdir: Path) -> dict[str, list[str]]:
    """Caption -> notebook names of each part of ``_toc.yml`` that shows executed notebooks (``book/results/``)."""
    toc = yaml.safe_load((workdir / "_toc.yml").read_text())
    parts = {}
    for part in toc.get("parts", []):
        names = [Path(ch["file"]).name for ch in part.get("chapters", []) if "results/" in ch.get("file", "")]
        if names:
            parts[part.get("caption", "")] = names
    return parts


# A cross-page reference to a notebook's page or output: {doc}`results/10_x`, {glue:text}`results/10_x.ipynb::key`,
# {doc}`title <10_x>` (the group is the notebook's stem).
_PAGE_REFERENCE = re.compile(
    r"\{(?:doc|glue(?::\w+)?)\}`(?:[^`<]*<)?(?:[\w./]*/)?(\d\d_\w+?)(?:\.ipynb)?(?:::[^`]*)?>?`")
# The table of contents written for a build that lacks some notebooks' pages (``--only`` on a fresh folder).
PARTIAL_TOC = Path("_build") / "_toc.partial.yml"
# _config.yml with the banner added, written for each build (the banner names the commit and date of the results)
GENERATED_CONFIG = Path("_build") / "_config.generated.yml"


def page_references(text: str) -> set[str]:
    """Stems of the notebooks whose pages or glued outputs ``text`` (a page's source) refers to."""
    return set(_PAGE_REFERENCE.findall(text))


def _page_source(workdir: Path, file: str) -> str:
    for suffix in (".md", ".ipynb"):
        path = workdir / f"{file}{suffix}"
        if path.is_file():
            return path.read_text()
    return ""


def partial_toc(workdir: Path) -> tuple[dict[str, Any] | None, list[str]]:
    """A table of contents of the pages of ``workdir``'s ``_toc.yml`` that can be built, and the files left out.

    A page is left out when its source is missing (a notebook never executed in this folder) or when it refers to
    a page left out or glues its outputs, repeated until nothing changes (the provenance page links to an executed
    notebook that is itself left out for linking to one that never ran). Returns ``(None, [])`` when nothing is
    missing; otherwise the reduced table, rooted at the original root if it can be built, else at the first page
    that can.
    """
    toc = yaml.safe_load((workdir / "_toc.yml").read_text())
    files = [toc["root"], *(ch["file"] for part in toc.get("parts", []) for ch in part.get("chapters", []))]
    missing = {Path(f).name for f in files if not _page_source(workdir, f)}
    if not missing:
        return None, []
    references = {f: page_references(_page_source(workdir, f)) if Path(f).name not in missing else set() for f in files}
    out = set(missing)
    while True:  # over the few pages, until no page refers to one left out
        more = {Path(f).name for f in files if Path(f).name not in out and references[f] & out}
        if not more:
            break
        out |= more
    left_out = [f for f in files if Path(f).name in out]
    kept = [f for f in files if f not in left_out]
    if not kept:
        return {}, left_out
    root = kept[0]
    parts = []
    for part in toc.get("parts", []):
        chapters = [ch for ch in part.get("chapters", []) if ch["file"] in kept and ch["file"] != root]
        if chapters:
            parts.append({**part, "chapters": chapters})
    return {**toc, "root": root, "parts": parts}, left_out


def read_build_history(workdir: Path) -> list[dict[str, Any]]:
    """The records of earlier builds in ``workdir`` (oldest first); an unreadable line is skipped, not fatal."""
    path = workdir / BUILD_HISTORY
    if not path.is_file():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            log.warning("%s: skipping an unreadable line", path)
    return records


def append_build_history(workdir: Path, record: Mapping[str, Any], keep: int = 50) -> None:
    """Add one build's record to the history, keeping the newest ``keep`` (rewritten atomically)."""
    lines = [json.dumps(r, sort_keys=True) for r in [*read_build_history(workdir), dict(record)][-keep:]]
    target = workdir / BUILD_HISTORY
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(target) as f:
        f.write("\n".join(lines) + "\n")


def _span_minutes(names: Sequence[str], times: Mapping[str, tuple[str, float, float]]) -> float | None:
    """Minutes from the first start to the last end of ``names``, when all of them ran in one build (else None)."""
    if not names or any(n not in times for n in names) or len({times[n][0] for n in names}) != 1:
        return None
    return (max(times[n][2] for n in names) - min(times[n][1] for n in names)) / 60


def _budget_lines(walls: Mapping[str, float], parts: Mapping[str, Sequence[str]], profile: str,
                  times: Mapping[str, tuple[str, float, float]] | None = None, book_notebooks: Sequence[str] = ()
                  ) -> list[str]:
    """The provenance page's table of times per part against the budgets; ``book_notebooks``: every notebook of
    the book, so that a part built without some of its notebooks (``--only``) is not judged."""
    budgets = CPU_BUDGET_MIN if profile == "cpu" else {}
    times = times or {}
    # parts as the table of contents has them, counting only executed notebooks (not the provenance page itself)
    groups = {caption: [n for n in names if n in walls] for caption, names in parts.items()}
    groups = {**{caption: names for caption, names in groups.items() if names}, "whole book": list(walls)}
    book = list(book_notebooks)
    wanted = {**{caption: [n for n in names if n in book] for caption, names in parts.items()}, "whole book": book}
    lines = ["| part | notebooks | their wall times, summed | first start to last end | "
             "budget (`cpu` profile, 2 cores) |", "|---|---|---|---|---|"]
    for caption, names in groups.items():
        minutes = sum(walls.get(n, 0.0) for n in names) / 60
        span = _span_minutes(names, times)
        # side by side, the clock from first start to last end is what a reader waits; summed times overstate it
        judged = minutes if span is None else span
        budget = budgets.get(caption)
        # a part built without some of its notebooks (--only) says nothing about the part's budget
        absent = [n for n in wanted.get(caption, ()) if n not in walls]
        verdict = ("" if budget is None else f"{budget:.0f} min: not judged, {len(absent)} of its "
                   f"{len(wanted[caption])} notebooks not in this book" if absent else
                   f"{budget:.0f} min: " + ("within" if judged <= budget else "**over**"))
        clock = "not one build" if span is None else f"{span:.1f} min"
        lines.append(f"| {caption} | {len(names)} | {minutes:.1f} min | {clock} | {verdict or 'none set'} |")
    return lines


def _history_lines(history: Sequence[Mapping[str, Any]], last: int = 8) -> list[str]:
    if not history:
        return ["No earlier build of this book is recorded in this folder: this is its first."]
    lines = ["| finished (UTC) | profile | commit | notebooks executed | executing | building the HTML | total |",
             "|---|---|---|---|---|---|---|"]
    for r in history[-last:]:
        lines.append(f"| {r.get('finished', '?')} | `{r.get('profile', '?')}` | `{str(r.get('commit', '?'))[:10]}` | "
                     f"{r.get('executed', '?')} of {r.get('notebooks', '?')} | {r.get('execute_s', 0):.0f} s | "
                     f"{r.get('book_s', 0):.0f} s | {r.get('total_s', 0) / 60:.1f} min |")
    return lines


def write_provenance_page(
    results: Path, notebooks: Sequence[Notebook], profile: str, executed: Sequence[str], elapsed_s: float,
    *, parts: Mapping[str, Sequence[str]] | None = None, history: Sequence[Mapping[str, Any]] = (),
    book_notebooks: Sequence[str] = (),
) -> Path:
    """Write ``results/provenance.md``: for every result page, where, how and from what it was computed.

    The rows come from the metadata the runner stored in each executed notebook (commit, profile, parameters,
    device, versions, wall time, command). The page also sums the execution times per part of the book against
    the time budgets, states this build's own execution time (so a rebuild with nothing changed shows how long it
    took), and lists the recorded times of earlier builds in the same folder (``history``). ``book_notebooks``:
    the names of every notebook of the book; a part missing some of them gets no budget verdict.
    """
    import nbformat

    rows, walls, versions, times = [], {}, {}, {}
    for nb in notebooks:
        meta = nbformat.read(results / f"{nb.name}.ipynb", as_version=4).metadata.get("fashion_lib", {})
        wall = float(meta.get("wall_time_s", math.nan))
        walls[nb.name] = wall if math.isfinite(wall) else 0.0
        if "started_at" in meta and "finished_at" in meta:
            times[nb.name] = (str(meta.get("build", "")), float(meta["started_at"]), float(meta["finished_at"]))
        versions = meta.get("versions", versions)
        params = ", ".join(f"`{k}={v!r}`" for k, v in meta.get("parameters", {}).items()) or "profile defaults"
        commit = str(meta.get("commit", "unknown"))[:10] + (" (dirty)" if meta.get("dirty") else "")
        lane = f"lane {meta['lane']}, {meta['threads']} thread(s)" if "lane" in meta and "threads" in meta else "?"
        rows.append(f"| {{doc}}`{nb.name}` | `{commit}` | `{meta.get('profile', '?')}` | {params} | "
                    f"{meta.get('device', '?')} | {lane} | {wall:.0f} s | `{meta.get('command', '?')}` |")
    lines = [
        "# Provenance of every result",
        "",
        "Each result page was computed by the notebook of the same name, executed by `python -m fashion_lib.pipeline`"
        " (the `make book` target) with the parameters below. The command in the last column re-runs one notebook "
        "alone with exactly these parameters; `make book PROFILE=<profile>` re-runs them all.",
        "",
        f"This build (profile `{profile}`) executed {len(executed)} of {len(notebooks)} notebooks and spent "
        f"{elapsed_s:.1f} s on them; the others were unchanged (same source, parameters and library) and taken "
        f"from the cache. Executing every notebook of this profile took {sum(walls.values()) / 60:.1f} min in all.",
        "",
        "## Time per part of the book",
        "",
        "The notebooks run in two lanes side by side (`fashion_lib.pipeline.LANES`: the key-point notebooks and "
        "notebooks 22-23 in one, notebooks 20-21 in the other), each kernel on its share of the cores, so a part's "
        "notebooks are "
        "timed two ways: their own wall times summed, and the clock from the first one's start to the last one's "
        "end, which is what the budget the study set for the main job is held against (when every notebook of the "
        "part ran in one build; otherwise the sum). Installing the environment and building the HTML come on top; "
        "the builds' own totals are in the last table.",
        "",
        *_budget_lines(walls, parts or {}, profile, times, book_notebooks),
        "",
        "## Every result",
        "",
        "| page | commit | profile | parameters | device | lane, threads | wall time | reproduce with |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        "Library versions: " + (", ".join(f"{k} {v}" for k, v in versions.items()) or "unknown") + ".",
        "",
        "## Recent builds in this folder",
        "",
        "Times of the builds before this one, as the runner recorded them when each finished (a notebook taken "
        "from the cache costs no execution time, so a rebuild with nothing changed shows 0 of N executed).",
        "",
        *_history_lines(history),
        "",
    ]
    target = results / "provenance.md"
    with atomic_write(target) as f:
        f.write("\n".join(lines))
    return target


def write_primary_claims(results: Path) -> Path:
    """Write ``results/primary_claims.md``, the front page's table of the paper's claims (``book/intro.md``
    includes it): the differences the notebooks glued (:func:`fashion_lib.primary_claims.glue_claim`), judged
    together with Holm's correction across the declared family :data:`fashion_lib.primary_claims.PRIMARY_CLAIMS`.
    Glue crosses pages
    only as text, so the correction that needs every claim's p-value runs here, after the notebooks; a claim whose
    page was not executed shows as not measured and counts as p = 1."""
    from fashion_lib.primary_claims import PRIMARY_CLAIMS, claims_table, judge_family, read_claims, read_levels

    verdicts = judge_family(PRIMARY_CLAIMS, read_claims(results))
    target = results / "primary_claims.md"
    with atomic_write(target) as f:
        f.write(claims_table(verdicts, levels=read_levels(results)))
    return target


def _install_mathjax(workdir: Path) -> None:
    """Copy MathJax (one self-contained file, from the ``django-static-mathjax`` wheel) into ``_mathjax/`` of the
    book, a static folder of its own (``html_static_path`` and ``mathjax_path`` in ``_config.yml``), so that math
    renders without a network. Not ``_static/``: Jupyter Book 1 adds every script found there to every page, which
    would load MathJax twice."""
    from importlib.resources import files

    source = files("mathjax").joinpath("static", "mathjax", "es5", "tex-svg.js")
    target = workdir / "_mathjax" / "mathjax" / "tex-svg.js"
    if not target.is_file() or target.stat().st_size != source.stat().st_size:
        with atomic_write(target, "wb") as f:
            f.write(source.read_bytes())


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


# A Sphinx problem line: "<path>:<line>: WARNING: ..." or "<path>: ERROR: ..." (the line number is optional).
_PROBLEM = re.compile(r"^(?P<path>[^\s:][^:]*?)(?::\d+)?: (?P<kind>WARNING|ERROR|CRITICAL)\b")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _advice(workdir: Path, path: Path) -> str:
    """What to do about a problem in ``path``: which source made it, and where to fix it."""
    try:
        rel = path.resolve().relative_to(workdir.resolve())
    except ValueError:
        return "outside the book's folder: a page refers to it; fix that page"
    if rel.parts[:1] != ("book",) or any(part.startswith(".") for part in rel.parts):
        return ("not one of the book's sources (they are under book/, outside dot-folders): the build must not "
                "read it; delete it, or check `include_patterns` and `exclude_patterns` in _config.yml")
    if rel.parts[:2] == ("book", "results"):
        if rel.suffix == ".ipynb":
            return (f"made by notebooks/{rel.stem}.py: fix that notebook (or the library it calls); `make book` "
                    "executes it again")
        return "written by the pipeline itself (fashion_lib/pipeline.py)"
    return "a hand-written page: fix it there"


def build_failure_message(workdir: Path, returncode: int, output: str) -> str:
    """The error of a failed ``jupyter-book build``: each file the warnings name, what made it and what to do, then
    the warnings themselves (at most 40)."""
    lines = [_ANSI.sub("", line) for line in output.splitlines()]
    problems = [line for line in lines if "WARNING" in line or "ERROR" in line or "CRITICAL" in line]
    files = dict.fromkeys(m["path"] for line in problems if (m := _PROBLEM.match(line.strip())))
    advice = [f"- {path}: {_advice(workdir, Path(path))}" for path in files]
    body = problems[:40] or lines[-40:]
    more = [f"... and {len(problems) - 40} more"] if len(problems) > 40 else []
    return "\n".join([
        f"jupyter-book build of {workdir} failed (exit {returncode}; warnings are errors).",
        *(["Files that caused it:", *advice] if advice else []),
        "The executed notebooks stay cached: after the fix, `make book` only builds the HTML again.",
        "Warnings:", *body, *more,
    ])


def build_book(workdir: Path, *, strict: bool = True, toc: Path | None = None, banner: str | None = None) -> Path:
    """Run ``jupyter-book build`` on ``workdir`` (execution off in ``_config.yml``); returns the HTML folder.

    With ``strict`` warnings are errors (``-W``): an unresolved glue key or a missing figure fails the build.
    ``toc`` replaces ``_toc.yml`` (page paths stay relative to ``workdir``). ``banner`` (HTML) is shown at the top
    of every page, as the theme's announcement set in a generated copy of ``_config.yml``.
    """
    _install_mathjax(workdir)
    exe = Path(sys.executable).parent / "jupyter-book"
    cmd = [str(exe if exe.exists() else "jupyter-book"), "build", str(workdir), "--path-output", str(workdir)]
    if toc is not None:
        cmd += ["--toc", str(toc)]
    if banner is not None:
        config = yaml.safe_load((workdir / "_config.yml").read_text()) or {}
        config.setdefault("html", {})["announcement"] = banner
        path = workdir / GENERATED_CONFIG
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path) as f:
            yaml.safe_dump(config, f, sort_keys=False)
        cmd += ["--config", str(path)]
    if strict:
        cmd += ["-W", "-n", "--keep-going"]
    log.info("building the book: %s", " ".join(cmd))
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(build_failure_message(workdir, proc.returncode, proc.stdout + proc.stderr))
    html = workdir / "_build" / "html"
    if not (html / "index.html").is_file():
        raise RuntimeError(f"jupyter-book build wrote no {html / 'index.html'}:\n{proc.stdout[-2000:]}")
    return html


def _prepare_workdir(root: Path, workdir: Path) -> None:
    if workdir.resolve() == root.resolve():
        return
    workdir.mkdir(parents=True, exist_ok=True)
    for name in BOOK_SOURCES:
        src, dst = root / name, workdir / name
        if src.is_dir():
            shutil.copytree(src, dst, dirs_exist_ok=True, ignore=shutil.ignore_patterns("results", "_build"))
        elif src.is_file():
            shutil.copy2(src, dst)


@dataclass(frozen=True)
class RunSummary:
    """What :func:`run` did."""

    executed: tuple[str, ...]
    """Notebooks executed in this run."""
    cached: tuple[str, ...]
    """Notebooks taken from the cache."""
    html: Path | None
    """The built book's HTML folder, or None with ``build=False``."""


def run(
    profile: str = "cpu",
    overrides: Sequence[tuple[str, str]] = (),
    *,
    only: Sequence[str] = (),
    root: Path | None = None,
    workdir: Path | None = None,
    cache_dir: Path | None = None,
    build: bool = True,
    timeout: int | None = None,
    runs_dir: Path | None = None,
    jobs: int | None = None,
) -> RunSummary:
    """Execute the notebooks that are not cached, then build the book. See the module docstring.

    ``jobs``: how many lanes run side by side (:func:`plan_lanes`; None: :func:`default_jobs`). When one lane's
    notebook fails, the other lanes stop before their next notebook and the first error is raised.

    ``runs_dir`` (default ``_build/runs``) holds trained models and cached predictions shared by the notebooks.
    """
    started = time.perf_counter()
    root = find_repo_root(root)
    workdir = Path(workdir or root).resolve()
    cache_dir = Path(cache_dir or root / "_build" / "notebook-cache").resolve()
    os.environ[RUNS_ENV] = str(Path(runs_dir or root / RUNS_FOLDER).resolve())
    # the kernels inherit this: spinning OpenMP threads slow PyTorch about 5x when other processes share the cores
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    # the kernels import the library of the checkout being built (whose sources make the cache key), not another
    # copy an editable install points to
    paths = [str(root), *os.environ.get("PYTHONPATH", "").split(os.pathsep)]
    os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(p for p in paths if p))
    path = profile_path(root, profile)
    # parameters are checked against every notebook, so that a profile valid for the whole book stays valid with --only
    everything = discover_notebooks(root)
    params = resolve_parameters(everything, load_profile(path), overrides, profile_name=str(path))
    notebooks = discover_notebooks(root, only)
    _prepare_workdir(root, workdir)
    results = workdir / "book" / "results"
    digest = library_digest(package=root / "fashion_lib")
    git = git_state(root)
    jobs = default_jobs() if jobs is None else jobs
    lanes = plan_lanes(notebooks, jobs)
    # every kernel of this build gets the same share of the cores, from the lanes asked for (not the lanes left
    # running): PyTorch's CPU results depend on the thread count, so `--only X --jobs N` reproduces a page exactly
    threads = kernel_threads(min(jobs, len(LANES)))
    order = {nb.name: i for i, nb in enumerate(notebooks, 1)}
    build_id = f"{time.time():.0f}-{os.getpid()}"
    executed, cached = [], []
    guard = threading.Lock()
    failed = threading.Event()  # a lane that fails stops the others at their next notebook
    errors: list[BaseException] = []  # in the order they happened
    if len(lanes) > 1:
        log.info("running %d lanes side by side: %s", len(lanes),
                 "; ".join(", ".join(nb.name for nb in lane) for lane in lanes))

    def run_one(nb: Notebook, lane: int) -> None:
        i = order[nb.name]
        key = cache_key(nb, {**params[nb.name], "__profile__": profile}, digest)
        cached_path = cache_dir / nb.name / f"{key}.ipynb"
        target = results / f"{nb.name}.ipynb"
        if cached_path.is_file():
            log.info("[%d/%d] %s: unchanged (cache %s)", i, len(notebooks), nb.name, key)
            with guard:
                cached.append(nb.name)
        else:
            log.info("[%d/%d] %s: executing with %s", i, len(notebooks), nb.name, params[nb.name] or "defaults")
            run_info = {
                **git,
                "profile": profile,
                "notebook": nb.name,
                "parameters": params[nb.name],
                "cache_key": key,
                "command": _command(profile, nb.name, params[nb.name], jobs),
                "build": build_id,
                "lane": lane,
                "threads": threads,
            }
            wall = execute_notebook(nb, params[nb.name], cached_path, run_info=run_info, timeout=timeout,
                                    label=f"[{i}/{len(notebooks)}] {nb.name}",
                                    expected_s=expected_wall_time(cache_dir, nb.name, profile),
                                    live=None if len(lanes) == 1 else False)
            log.info("[%d/%d] %s: done in %.1f s", i, len(notebooks), nb.name, wall)
            with guard:
                executed.append(nb.name)
        results.mkdir(parents=True, exist_ok=True)
        content = cached_path.read_bytes()
        # an unchanged page keeps its file (and time stamp), so Sphinx does not read it again
        if not target.is_file() or target.read_bytes() != content:
            with atomic_write(target, "wb") as f:
                f.write(content)

    def run_lane(k: int) -> None:
        for nb in lanes[k]:
            if failed.is_set():
                log.warning("lane %d: stopping before %s, another lane failed or was interrupted", k + 1, nb.name)
                return
            try:
                run_one(nb, k + 1)
            except BaseException as err:
                failed.set()
                with guard:
                    errors.append(err)
                if len(lanes) > 1:  # said now, not when the other lanes have finished their notebooks
                    log.error("lane %d: %s failed: %s", k + 1, nb.name, err)
                return

    with kernel_thread_env(threads):
        if len(lanes) == 1:
            run_lane(0)
        else:
            pool = ThreadPoolExecutor(max_workers=len(lanes), thread_name_prefix="lane")
            try:
                for k in range(len(lanes)):
                    pool.submit(run_lane, k)
                pool.shutdown(wait=True)
            except BaseException:  # Ctrl-C: no lane starts another notebook (the kernels got the signal too)
                failed.set()
                log.error("interrupted: each lane stops after its running notebook")
                raise
    if errors:
        for err in errors[1:]:
            log.error("also failed: %s", err)
        raise errors[0]
    executed.sort(key=order.__getitem__)
    cached.sort(key=order.__getitem__)
    execute_s = time.perf_counter() - started
    write_provenance_page(results, notebooks, profile, executed, execute_s, parts=toc_parts(workdir),
                          history=read_build_history(workdir), book_notebooks=[nb.name for nb in everything])
    for name in executed:
        log.info("executed notebook: %s", results / f"{name}.ipynb")
    write_primary_claims(results)
    html = None
    if build:
        executed_meta = read_executed(results, [nb.name for nb in everything])
        facts = collect_facts(executed_meta, {nb.name: nb.defaults for nb in everything},
                              time.strftime("%Y-%m-%d", time.gmtime()))
        html = _build_what_exists(workdir, banner_html(facts))
    if html is not None:
        log.info("book built: %s", html / "index.html")
        total_s = time.perf_counter() - started
        append_build_history(workdir, {
            "finished": time.strftime("%Y-%m-%d %H:%M", time.gmtime()), "profile": profile,
            "commit": git.get("commit", "unknown"), "executed": len(executed), "notebooks": len(notebooks),
            "execute_s": round(execute_s, 1), "book_s": round(total_s - execute_s, 1), "total_s": round(total_s, 1),
        })
    return RunSummary(tuple(executed), tuple(cached), html)


def _build_what_exists(workdir: Path, banner: str) -> Path | None:
    """Build the book, or the pages of it whose notebooks have run in ``workdir`` (``--only`` on a fresh folder)."""
    toc, left_out = partial_toc(workdir)
    if toc is None:
        return build_book(workdir, banner=banner)
    missing = ", ".join(Path(f).name for f in left_out)
    if not toc:
        log.warning("not building the book: no page can be built without the notebooks that have not run in %s "
                    "(left out: %s); the executed notebooks are in %s", workdir, missing, workdir / "book" / "results")
        return None
    kept = 1 + sum(len(part["chapters"]) for part in toc["parts"])
    log.warning("building %d of %d pages: the others need notebooks that have not run in %s (left out: %s)",
                kept, kept + len(left_out), workdir, missing)
    path = workdir / PARTIAL_TOC
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as f:
        yaml.safe_dump(toc, f, sort_keys=False)
    return build_book(workdir, toc=path, banner=banner)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m fashion_lib.pipeline", description=__doc__.split("\n\n")[0])
    p.add_argument("--profile", default="cpu", help="profile name in notebooks/profiles/ (default: cpu)")
    p.add_argument("-p", dest="overrides", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                   help="override a parameter (NAME or NOTEBOOK.NAME; VALUE parsed as YAML); repeatable")
    p.add_argument("--only", nargs="+", default=[], metavar="NOTEBOOK", help="run only these notebooks (stems)")
    p.add_argument("--workdir", type=Path, default=None, help="build the book here instead of the repository")
    p.add_argument("--cache-dir", type=Path, default=None, help="executed-notebook cache (default _build/...)")
    p.add_argument("--runs-dir", type=Path, default=None, help="trained models and cached predictions "
                   "(default _build/runs)")
    p.add_argument("--no-build", action="store_true", help="execute notebooks but do not build the book")
    p.add_argument("--timeout", type=int, default=None, help="per-cell timeout in seconds")
    p.add_argument("--jobs", type=int, default=None, help="notebooks run side by side in this many lanes (default: "
                   "one per core, at most 2; 1 with a CUDA GPU; 1 runs them one after another)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    # papermill logs its input, output and working directory for every notebook; the runner says what matters
    logging.getLogger("papermill").setLevel(logging.WARNING)
    try:
        summary = run(
            args.profile,
            [tuple(o) for o in args.overrides],
            only=args.only,
            workdir=args.workdir,
            cache_dir=args.cache_dir,
            build=not args.no_build,
            timeout=args.timeout,
            runs_dir=args.runs_dir,
            jobs=args.jobs,
        )
    except (ProfileError, RuntimeError, FileNotFoundError) as err:
        log.error("error: %s", err)
        return 2
    except ValueError as err:  # a bad --jobs
        log.error("error: %s", err)
        return 2
    log.info("executed %d notebook(s), %d unchanged", len(summary.executed), len(summary.cached))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
