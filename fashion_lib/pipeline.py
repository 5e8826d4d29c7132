"""The notebook -> book pipeline: execute every experiment notebook with a profile's parameters, then build the book.

Each experiment is a jupytext percent ``.py`` file in ``notebooks/`` with one cell tagged ``parameters``; a profile
(``notebooks/profiles/<name>.yaml``) sets their values, checked against the notebooks' defaults
(:mod:`fashion_lib.profiles`). ``-p name value`` on the command line overrides any value
(``-p 01_data_tour.num_samples 8`` for one notebook only).

Execution is incremental and resumable: an executed notebook is cached under a key made of its source, its
parameters and every ``fashion_lib`` source file (:mod:`fashion_lib.execution`), and a notebook whose key is cached
is not run again. Each notebook is cached as soon as it finishes, so an interrupted build resumes at the notebook it
stopped in. Notebooks run in :data:`LANES`, side by side (``--jobs``; by default one lane per two cores, at most as
many as there are lanes), each kernel on its share of the cores; ``--jobs 1`` runs them one after another.
The book is then built by ``jupyter-book build`` with execution off and warnings as errors, with a banner on every
page naming the profile, commit, seeds, validation sizes and device of its results (:mod:`fashion_lib.book`,
:mod:`fashion_lib.banner`). When some notebooks have never run in the work folder (``--only`` on a fresh clone),
only the pages that can be built are: those whose notebooks ran and that neither link to nor glue from a page that
is missing.

This module holds what runs where (:data:`LANES`, :func:`plan_lanes`, each kernel's threads), :func:`run` and the
command line.

Usage::

    python -m fashion_lib.pipeline [--profile cpu] [-p name value ...] [--only NAME ...] [--no-build] [--runs-dir DIR]
                                   [--jobs N]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fashion_lib.banner import banner_html, collect_facts, read_executed
from fashion_lib.book import (
    append_build_history,
    build_what_exists,
    read_build_history,
    toc_parts,
    write_primary_claims,
    write_provenance_page,
)
from fashion_lib.execution import cache_key, execute_notebook
from fashion_lib.io import atomic_write
from fashion_lib.profiles import (
    Notebook,
    ProfileError,
    discover_notebooks,
    load_profile,
    profile_path,
    resolve_parameters,
)
from fashion_lib.progress import expected_wall_time
from fashion_lib.provenance import RUNS_ENV, RUNS_FOLDER, find_repo_root, git_state, library_digest

__all__ = [
    "LANES",
    "THREAD_ENV",
    "cpu_cores",
    "default_jobs",
    "plan_lanes",
    "kernel_threads",
    "kernel_thread_env",
    "RunSummary",
    "run",
    "main",
]

log = logging.getLogger(__name__)


# Files copied into a separate work directory when the book is built somewhere else (tests do that).
BOOK_SOURCES = ("_config.yml", "_toc.yml", "book", "notebooks")


# The notebooks run in these lanes, side by side, one kernel per lane at a time, each kernel on its share of the
# cores (kernel_threads). Measured on the 2-core machine: two one-thread Keypoint R-CNN trainings at once ran at 10.0
# and 9.8 images/s each, one two-thread training alone at 11.2 (benchmarks/train.py --models loop --schemas fashionai
# --threads 1, two processes at once, against --threads 2 alone), so two lanes get about 1.8 times the work through.
# A lane that needs a model the other lane is training waits for it (fashion_lib.experiments.exclusive), so the
# lanes are arranged to need different models at the same time: notebook 20 opens the attribute lane by training the
# FashionAI detector of seed 0 (the one whose key points every attribute crop uses), while notebook 10 trains the
# other seeds first (experiments.keypoints.rows_for_seeds) and loads seed 0 when it gets there. The cpu book of
# a4a283d, with notebook 23 first in the attribute lane, left that lane waiting 10 of its 55 minutes for seed 0.
# Notebooks 21, 22 and 23 follow the key-point notebooks: the attribute lane's Table 2 is the longer half (in the
# cold cpu book of aa57308 the key-point lane ended 14 minutes before notebook 20 stopped). A notebook no lane names
# runs in the first lane, after the named ones.
LANES: tuple[tuple[str, ...], ...] = (
    ("00_keypoint_schemas", "01_data_tour", "10_table1_fashionai", "11_table1_coco", "12_fig1_gallery",
     "13_ablation_alpha", "14_ablation_ransac", "15_ablation_second_scale", "16_beyond_symmetry_prior",
     "23_ablation_beta", "22_table3_deepfashion", "21_fig3_crops"),
    ("20_table2_fashionai_attributes",),
)


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


def _command(profile: str, notebook: str, params: Mapping[str, Any], jobs: int = 1) -> str:
    args = " ".join(f"-p {notebook}.{k} {json.dumps(v)!r}" for k, v in params.items())
    # --jobs: the kernel's share of the cores, on which its CPU results depend (see run)
    lanes = f" --jobs {jobs}" if jobs != 1 else ""
    return f"python -m fashion_lib.pipeline --profile {profile} --only {notebook}{lanes} {args}".rstrip()


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
        html = build_what_exists(workdir, banner_html(facts))
    if html is not None:
        log.info("book built: %s", html / "index.html")
        total_s = time.perf_counter() - started
        append_build_history(workdir, {
            "finished": time.strftime("%Y-%m-%d %H:%M", time.gmtime()), "profile": profile,
            "commit": git.get("commit", "unknown"), "executed": len(executed), "notebooks": len(notebooks),
            "execute_s": round(execute_s, 1), "book_s": round(total_s - execute_s, 1), "total_s": round(total_s, 1),
        })
    return RunSummary(tuple(executed), tuple(cached), html)


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
