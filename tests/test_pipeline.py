"""The notebook -> book pipeline (fashion_lib.pipeline): lanes, the command line, failing notebooks, and a real
smoke build of the book."""

import logging
import re
import shlex
import shutil
from pathlib import Path

import nbformat
import pytest

from fashion_lib import pipeline
from fashion_lib.book import build_book, read_build_history
from fashion_lib.profiles import Notebook, discover_notebooks
from fashion_lib.provenance import git_state

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_smoke_book_builds_strictly_then_rebuilds_from_cache(smoke_book, tmp_path):
    workdir, cache, runs, first = smoke_book.workdir, smoke_book.cache, smoke_book.runs, smoke_book.summary
    names = [nb.name for nb in discover_notebooks(ROOT)]
    assert list(first.executed) == names and first.cached == ()
    intro = (first.html / "book" / "intro.html").read_text()
    # glued from notebook 00 into another page: the schema sizes, not an empty string
    assert '<span class="pasted-text">24</span>' in intro
    assert '<span class="pasted-text">17</span>' in intro
    # the front page judges the primary family from the differences every claim's page glued
    assert "p (Holm)" in intro and "not measured in this build" not in intro
    page = (first.html / "book" / "results" / "00_keypoint_schemas.html").read_text()
    assert "Provenance of this page" in page and "smoke" in page
    assert "Traceback" not in page
    # the provenance page lists every notebook with its command, and this build's own count
    provenance = (first.html / "book" / "results" / "provenance.html").read_text()
    assert f"executed {len(names)} of {len(names)} notebooks" in provenance
    assert all(name in provenance for name in names)
    source = (workdir / "book" / "results" / "provenance.md").read_text()
    # with the share of the cores its kernel had, on which CPU results depend
    jobs = pipeline.default_jobs()
    lanes = f" --jobs {jobs}" if jobs != 1 else ""
    assert f"`python -m fashion_lib.pipeline --profile smoke --only 00_keypoint_schemas{lanes} -p " in source
    # the finished build is recorded; the next build's provenance page shows its times
    history = read_build_history(workdir)
    assert len(history) == 1 and history[0]["executed"] == len(names) and history[0]["book_s"] > 0
    # the notebooks ran in lanes side by side, each kernel on its share of the cores, and say so
    metas = [nbformat.read(workdir / "book" / "results" / f"{n}.ipynb", as_version=4).metadata["fashion_lib"]
             for n in names]
    lanes = pipeline.plan_lanes(discover_notebooks(ROOT), pipeline.default_jobs())
    assert {m["lane"] for m in metas} == set(range(1, len(lanes) + 1))
    threads = pipeline.kernel_threads(min(pipeline.default_jobs(), len(pipeline.LANES)))
    assert all(m["threads"] == threads and m["finished_at"] > m["started_at"] for m in metas)
    assert all(f"{threads} torch threads" in m["device"] for m in metas if m["device"].startswith("cpu"))
    assert len({m["build"] for m in metas}) == 1
    # math renders offline: MathJax comes from the book's own _static folder, never from a CDN
    ambiguities = (first.html / "book" / "ambiguities.html").read_text()
    assert ambiguities.count("_static/mathjax/tex-svg.js") == 1 and "cdn.jsdelivr" not in ambiguities
    assert (first.html / "_static" / "mathjax" / "tex-svg.js").stat().st_size > 1_000_000

    second = pipeline.run("smoke", workdir=workdir, cache_dir=cache, build=False, runs_dir=runs)
    assert second.executed == () and list(second.cached) == names
    source = (workdir / "book" / "results" / "provenance.md").read_text()
    assert f"executed 0 of {len(names)} notebooks" in source
    assert f"| {len(names)} of {len(names)} |" in source  # the first build, from the history

    # a different parameter value is a different result: executed again
    third = pipeline.run("smoke", [("dpi", "61")], only=["00_keypoint_schemas"], workdir=workdir,
                         cache_dir=cache, build=False, runs_dir=runs)
    assert third.executed == ("00_keypoint_schemas",)
    # put the smoke results back for the other tests that read this book
    pipeline.run("smoke", workdir=workdir, cache_dir=cache, build=False, runs_dir=runs)

    # -W: an unresolved glue key fails the build instead of printing an empty number (on a copy of the book)
    broken = tmp_path / "broken"
    shutil.copytree(workdir, broken, ignore=shutil.ignore_patterns("_build"))
    with open(broken / "book" / "intro.md", "a") as f:
        f.write("\nBroken: {glue:text}`results/00_keypoint_schemas.ipynb::no_such_key:d`.\n")
    with pytest.raises(RuntimeError, match="no_such_key"):
        build_book(broken)


def _repo_of(tmp_path: Path, cells: dict[str, str]) -> Path:
    """A checkout holding the library, an empty smoke profile and one notebook per ``cells`` entry (name -> the
    code of its one cell after the parameters cell)."""
    root = tmp_path / "repo"
    (root / "notebooks" / "profiles").mkdir(parents=True)
    shutil.copy(ROOT / "pyproject.toml", root)
    shutil.copytree(ROOT / "fashion_lib", root / "fashion_lib", ignore=shutil.ignore_patterns("__pycache__"))
    (root / "notebooks" / "profiles" / "smoke.yaml").write_text("{}\n")
    for name, cell in cells.items():
        (root / "notebooks" / f"{name}.py").write_text(f'# %% tags=["parameters"]\nrun_info = {{}}\n\n# %%\n{cell}\n')
    return root


@pytest.mark.slow
def test_failing_notebook_is_named_and_not_cached(tmp_path, monkeypatch):
    root = _repo_of(tmp_path, {"01_fails": "1 / 0"})
    with pytest.raises(RuntimeError, match=r"01_fails.py failed in cell .*ZeroDivisionError"):
        pipeline.run("smoke", root=root, cache_dir=tmp_path / "cache", build=False)
    assert not list((tmp_path / "cache").rglob("*.ipynb")) or all(
        "failed" in p.name for p in (tmp_path / "cache").rglob("*.ipynb"))


@pytest.mark.slow
def test_a_failing_lane_stops_the_other_at_its_next_notebook(tmp_path, monkeypatch):
    marker = tmp_path / "failed"
    # the slow notebook runs until the failing one has failed (and a little longer), however slow the machine
    slow = ("import time, torch\nfrom pathlib import Path\nfrom fashion_lib import provenance\n"
            "provenance.start(run_info)\n"
            f"while not Path({str(marker)!r}).exists():\n    time.sleep(0.2)\ntime.sleep(3)\n"
            "assert torch.get_num_threads() == run_info['threads']\n"
            "import os\nassert os.environ['OMP_NUM_THREADS'] == str(run_info['threads'])")
    fails = f"from pathlib import Path\nPath({str(marker)!r}).touch()\n1 / 0"
    root = _repo_of(tmp_path, {"01_fails": fails, "02_slow": slow, "03_after": "1"})
    monkeypatch.setattr(pipeline, "LANES", (("01_fails",), ("02_slow", "03_after")))
    with pytest.raises(RuntimeError, match=r"01_fails.py failed in cell"):
        pipeline.run("smoke", root=root, cache_dir=tmp_path / "cache", build=False, jobs=2)
    done = {p.parent.name for p in (tmp_path / "cache").rglob("*.ipynb") if "failed" not in p.name}
    assert done == {"02_slow"}  # the other lane finished the notebook it was running, then stopped


def test_main_reports_a_bad_parameter_and_exits_2(caplog):
    assert pipeline.main(["--profile", "smoke", "-p", "no_such_parameter", "1", "--no-build"]) == 2
    assert "no notebook declares a parameter 'no_such_parameter'" in caplog.text


def test_only_one_notebook_still_checks_the_profile_against_the_whole_book(caplog):
    # the smoke profile's 'all' section sets training settings that notebook 00 does not declare: valid for the book
    assert pipeline.main(["--profile", "smoke", "--only", "00_keypoint_schemas", "-p", "00_keypoint_schemas.dpy",
                          "1", "--no-build"]) == 2
    assert "which no notebook declares" not in caplog.text
    assert "notebook '00_keypoint_schemas' has no parameter 'dpy'" in caplog.text


def test_every_shipped_notebook_is_in_exactly_one_lane():
    names = [nb.name for nb in discover_notebooks(ROOT)]
    laned = [name for lane in pipeline.LANES for name in lane]
    assert sorted(laned) == sorted(names)


def test_lanes_keep_their_order_take_unnamed_notebooks_and_join_when_jobs_are_fewer(tmp_path):
    def nbs(*names):
        return [Notebook(tmp_path / f"{n}.py", {}) for n in names]

    names = [nb.name for nb in discover_notebooks(ROOT)] + ["99_extra"]
    notebooks = nbs(*names)
    lanes = pipeline.plan_lanes(notebooks, 2)
    assert [[nb.name for nb in lane] for lane in lanes] == [[*pipeline.LANES[0], "99_extra"], list(pipeline.LANES[1])]
    assert [nb.name for nb in pipeline.plan_lanes(notebooks, 1)[0]] == names  # one lane: the given order
    assert len(pipeline.plan_lanes(notebooks, 8)) == len(pipeline.LANES)  # never more lanes than LANES has
    # --only one notebook: one lane, the others are empty and dropped
    assert [[nb.name for nb in lane] for lane in pipeline.plan_lanes(nbs("20_table2_fashionai_attributes"), 2)] == [
        ["20_table2_fashionai_attributes"]]
    with pytest.raises(ValueError, match="--jobs must be at least 1"):
        pipeline.plan_lanes(notebooks, 0)


def test_kernel_thread_env_sets_every_pool_and_restores_the_runners(monkeypatch):
    import os

    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    monkeypatch.delenv("NUMBA_NUM_THREADS", raising=False)
    with pipeline.kernel_thread_env(1):
        assert all(os.environ[name] == "1" for name in pipeline.THREAD_ENV)
    assert os.environ["OMP_NUM_THREADS"] == "7" and "NUMBA_NUM_THREADS" not in os.environ


@pytest.mark.parametrize(("running", "cores", "threads"), [(2, 2, 1), (1, 2, 2), (2, 16, 8), (3, 2, 1), (0, 4, 4)])
def test_each_kernel_gets_its_share_of_the_cores(running, cores, threads):
    assert pipeline.kernel_threads(running, cores) == threads


@pytest.mark.parametrize(("cores", "gpu", "jobs"), [(1, False, 1), (2, False, 2), (16, False, 2), (16, True, 1)])
def test_default_jobs_is_one_lane_per_core_at_most_the_lanes_there_are_and_one_on_a_gpu(cores, gpu, jobs):
    assert pipeline.default_jobs(cores, gpu=gpu) == jobs


def _readme_make_book_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    return [line.strip() for block in re.findall(r"```\n(.*?)```", text, re.S) for line in block.splitlines()
            if line.strip().startswith("make book")]


def _pipeline_argv(command: str) -> list[str]:
    """``make book PROFILE=x PARAMS="..."`` -> the pipeline's arguments, split as the Makefile's shell splits them."""
    assigned = dict(word.split("=", 1) for word in shlex.split(command, comments=True)[2:])
    return ["--profile", assigned.get("PROFILE", "cpu"), *shlex.split(assigned.get("PARAMS", ""))]


def test_the_readmes_make_book_commands_are_found_and_split_like_make_does():
    commands = [_pipeline_argv(c) for c in _readme_make_book_commands()]
    assert ["--profile", "gpu"] in commands
    assert ["--profile", "cpu", "-p", "seeds", "[0, 1]"] in commands
    assert ["--profile", "cpu", "-p", "13_ablation_alpha.alphas", "[0, 0.5, 1]", "--only", "13_ablation_alpha"] in \
        commands


@pytest.mark.slow
def test_the_readmes_make_book_examples_work_on_a_fresh_clone(smoke_book, tmp_path, caplog):
    """Each example runs in a fresh work folder: those for the whole book run notebook 00 only (their parameters are
    still checked against every notebook); the ``--only`` example runs at the smoke profile's scale and builds the
    pages that exist, as on a fresh clone where no other notebook ever ran."""
    caplog.set_level(logging.INFO, logger="fashion_lib.pipeline")
    commands = _readme_make_book_commands()
    for i, command in enumerate(commands):
        argv = _pipeline_argv(command)
        folders = ["--workdir", str(tmp_path / f"{i}" / "book"), "--cache-dir", str(tmp_path / f"{i}" / "cache"),
                   "--runs-dir", str(smoke_book.runs)]
        if "--only" in argv:
            argv[argv.index("--profile") + 1] = "smoke"  # trained in minutes, and already by the smoke book
        else:
            argv += ["--only", "00_keypoint_schemas", "--no-build"]
        caplog.clear()
        assert pipeline.main(argv + folders) == 0, f"{command}: {caplog.text[-3000:]}"
    # the --only example: its page is built, with the pages that need no other notebook, and the log says where
    # the executed notebook is and which pages were left out
    only = next(i for i, c in enumerate(commands) if "--only" in c)
    workdir = tmp_path / f"{only}" / "book"
    executed = workdir / "book" / "results" / "13_ablation_alpha.ipynb"
    assert f"executed notebook: {executed}" in caplog.text
    assert re.search(r"building \d+ of \d+ pages: the others need notebooks that have not run", caplog.text)
    page = (workdir / "_build" / "html" / "book" / "results" / "13_ablation_alpha.html").read_text()
    assert "fashion-lib-banner" in page and "smoke build: the numbers are meaningless" in page
    assert not (workdir / "_build" / "html" / "book" / "intro.html").exists()  # it glues from notebooks not run


@pytest.mark.slow
def test_every_page_of_the_smoke_book_carries_the_banner(smoke_book):
    pages = sorted((smoke_book.summary.html / "book").rglob("*.html"))
    assert len(pages) >= 15
    head = git_state(ROOT)["commit"][:10]
    for page in pages:
        text = page.read_text()
        banner = text[text.index('<div class="fashion-lib-banner">'):]
        banner = banner[:banner.index("</div>")]
        assert "profile <code>smoke</code>" in banner and f"commit <code>{head}" in banner, page
        assert "<strong>smoke build: the numbers are meaningless</strong>" in banner, page
        assert "seeds 0 ·" in banner and re.search(r"validation images 4 to \d+, by experiment", banner), page
