"""Building the book: ``jupyter-book build`` on the executed notebooks, and the pages the runner writes itself.

The book is built with execution off and warnings as errors (:func:`build_book`), with a banner on every page
naming the profile, commit, seeds, validation sizes and device of its results (:mod:`fashion_lib.banner`), set in a
generated copy of ``_config.yml``; a failed build names each file the warnings point to and what to do about it
(:func:`build_failure_message`). When some notebooks have never run in the work folder (``--only`` on a fresh
clone), only the pages that can be built are (:func:`partial_toc`, :func:`build_what_exists`): those whose
notebooks ran and that neither link to nor glue from a page that is missing. The runner's own pages are the
provenance page (:func:`write_provenance_page`: every result's commit, parameters, device and time, the time per
part against the budgets, the recent builds of :func:`read_build_history`) and the front page's table of the
paper's claims (:func:`write_primary_claims`).
"""

from __future__ import annotations

import json
import logging
import math
import re
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from fashion_lib.io import atomic_write
from fashion_lib.profiles import Notebook

__all__ = [
    "CPU_BUDGET_MIN",
    "CleanCloneBuild",
    "CLEAN_CLONE_BUILDS",
    "BUILD_HISTORY",
    "toc_parts",
    "page_references",
    "partial_toc",
    "read_build_history",
    "append_build_history",
    "write_provenance_page",
    "write_primary_claims",
    "build_failure_message",
    "build_book",
    "build_what_exists",
]

log = logging.getLogger(__name__)


# Time budget in minutes of the main job (the ``cpu`` profile on a 2-core machine from a clean clone): the whole book.
# Its two halves (key points, attributes) share it as the work needs; they run side by side (pipeline.LANES), so
# each part's clock may take most of it. The provenance page sets the measured times beside it.
CPU_BUDGET_MIN = {"whole book": 90.0}


@dataclass(frozen=True)
class CleanCloneBuild:
    """One ``make book`` from a clean clone on the study's 2-core machine (no GPU), timed from outside: a page
    cannot time the build that renders it, nor the virtual environment installed before it."""

    commit: str  # the clone's HEAD
    date: str  # when it started (UTC)
    total_min: float  # `make book`, creating the virtual environment included
    keypoint_lane_min: float  # lane 1 (pipeline.LANES), from the start of `make book` to its last notebook's end
    attribute_lane_min: float  # lane 2 (notebook 20), likewise
    rebuild_s: float  # `make book` again in the same clone, nothing changed
    note: str = ""


# Measured by hand (`/usr/bin/time make book` in a fresh `git clone`, a quiet machine: nothing else running, the
# kernel's autogroups off); newest last. The provenance page shows them beside the budget.
CLEAN_CLONE_BUILDS: tuple[CleanCloneBuild, ...] = (
    CleanCloneBuild("d667ef6", "2026-12-07 02:51", 88.1, 79.6, 88.0, 6.0,
                    "environment 2.1 min; notebook 20 alone 85.9 min, the critical path"),
    CleanCloneBuild("ae84899", "2026-12-07 06:09", 89.7, 81.8, 89.6, 4.6,
                    "environment 2.0 min; notebook 20 alone 87.6 min, the critical path; the same results as "
                    "d667ef6; 0.3 min to spare: more work needs faster code first"),
)


def _clean_clone_lines(builds: Sequence[CleanCloneBuild] = CLEAN_CLONE_BUILDS) -> list[str]:
    budget = CPU_BUDGET_MIN["whole book"]
    if not builds:
        return ["No build from a clean clone has been timed yet."]
    lines = ["| commit | started (UTC) | `make book`, environment included | key-point lane | attribute lane | "
             f"budget ({budget:.0f} min) | rebuild, nothing changed | note |", "|---|---|---|---|---|---|---|---|"]
    for b in builds:
        verdict = "within" if b.total_min <= budget else "**over**"
        lines.append(f"| `{b.commit}` | {b.date} | {b.total_min:.1f} min | {b.keypoint_lane_min:.1f} min | "
                     f"{b.attribute_lane_min:.1f} min | {verdict} | {b.rebuild_s:.0f} s | {b.note} |")
    return lines


# One JSON line per finished build, under the work directory's _build/: the provenance page shows recent builds'
# times (a page cannot show the time of the build that renders it).
BUILD_HISTORY = Path("_build") / "build-history.jsonl"


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
        "notebooks 21-23 in one, notebook 20 in the other), each kernel on its share of the cores, so a part's "
        "notebooks are "
        "timed two ways: their own wall times summed, and the clock from the first one's start to the last one's "
        "end, which is what the budget the study set for the main job is held against (when every notebook of the "
        "part ran in one build; otherwise the sum). Installing the environment and building the HTML come on top; "
        "the builds' own totals are in the last table.",
        "",
        *_budget_lines(walls, parts or {}, profile, times, book_notebooks),
        "",
        "The budget holds for the main job from a clean clone, the `cpu` profile on this study's 2-core machine. "
        "Timed from outside, environment included:",
        "",
        *_clean_clone_lines(),
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
    Glue crosses pages only as text, so the correction that needs every claim's p-value runs here, after the
    notebooks; a claim whose page was not executed shows as not measured and counts as p = 1."""
    from fashion_lib.primary_claims import (
        PRIMARY_CLAIMS,
        claims_table,
        judge_family,
        read_claims,
        read_levels,
    )

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
        return "written by the pipeline itself (fashion_lib/book.py)"
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


def build_what_exists(workdir: Path, banner: str) -> Path | None:
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
