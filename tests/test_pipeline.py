"""The notebook -> book pipeline: parameter checking, caching, and a real smoke build of the book."""

import logging
import re
import shlex
import shutil
from pathlib import Path

import nbformat
import pytest

from fashion_lib import pipeline
from fashion_lib.pipeline import Notebook, ProfileError, read_parameters, resolve_parameters
from fashion_lib.provenance import git_state

ROOT = Path(__file__).resolve().parents[1]


def _notebook(tmp_path: Path, name: str, params: str) -> Notebook:
    path = tmp_path / f"{name}.py"
    path.write_text(f'# %% [markdown]\n# # A test notebook\n\n# %% tags=["parameters"]\n{params}\n\n# %%\nprint(1)\n')
    return Notebook(path, read_parameters(path))


def test_read_parameters_takes_literal_assignments_in_order(tmp_path):
    nb = _notebook(tmp_path, "01_x", "run_info = {}\nseeds = [0, 1, 2]\nalpha = 0.4\nname = 'a'")
    assert list(nb.defaults.items()) == [("run_info", {}), ("seeds", [0, 1, 2]), ("alpha", 0.4), ("name", "a")]


@pytest.mark.parametrize("cell, message", [
    ("import os", "line 1: expected 'name = <literal>'"),
    ("x = 1\ny = len([1])", "line 2: the default of 'y' is not a literal"),
    ("x = = 1", "parameters cell does not parse"),
])
def test_read_parameters_rejects_what_it_cannot_override(tmp_path, cell, message):
    with pytest.raises(ProfileError, match=message):
        _notebook(tmp_path, "01_bad", cell)


def test_a_notebook_needs_exactly_one_parameters_cell(tmp_path):
    path = tmp_path / "02_none.py"
    path.write_text("# %%\nx = 1\n")
    with pytest.raises(ProfileError, match="exactly one cell tagged 'parameters', found 0"):
        read_parameters(path)


@pytest.fixture
def two_notebooks(tmp_path):
    return [_notebook(tmp_path, "01_a", "run_info = {}\nseed = 0\nalpha = 0.4"),
            _notebook(tmp_path, "02_b", "seed = 0\nsteps = 10\nseeds = [0]")]


def test_profile_all_section_reaches_only_notebooks_that_declare_the_name(two_notebooks):
    params = resolve_parameters(two_notebooks, {"all": {"seed": 3, "alpha": 1}, "02_b": {"steps": 5}})
    assert params == {"01_a": {"seed": 3, "alpha": 1}, "02_b": {"seed": 3, "steps": 5}}


def test_overrides_parse_yaml_and_can_address_one_notebook(two_notebooks):
    params = resolve_parameters(two_notebooks, {"all": {"seed": 3}},
                                [("seed", "7"), ("02_b.seeds", "[1, 2]"), ("01_a.alpha", "0.5")])
    assert params == {"01_a": {"seed": 7, "alpha": 0.5}, "02_b": {"seed": 7, "seeds": [1, 2]}}


@pytest.mark.parametrize("profile, overrides, message", [
    ({"02_b": {"stepz": 5}}, [], r"cpu.yaml \(02_b\): notebook '02_b' has no parameter 'stepz'; valid: \['seed'"),
    ({"all": {"sead": 1}}, [], "'all' sets 'sead', which no notebook declares"),
    ({"02_b": {"steps": "ten"}}, [], "parameter 'steps' of notebook '02_b' must be a int like its default 10"),
    ({"01_a": {"alpha": True}}, [], "must be a float"),
    ({"01_a": {"run_info": {}}}, [], "'run_info' is set by the runner"),
    ({"99x": {}}, [], "unknown section '99x'"),
    ({}, [("nope", "1")], "-p nope: no notebook declares a parameter 'nope'"),
    ({}, [("03_c.seed", "1")], "-p 03_c.seed: unknown notebook '03_c'"),
    ({}, [("steps", "[1")], r"-p steps \[1: value is not valid YAML"),
])
def test_bad_profiles_stop_with_a_message_naming_the_parameter(two_notebooks, profile, overrides, message):
    with pytest.raises(ProfileError, match=message):
        resolve_parameters(two_notebooks, profile, overrides, profile_name="profiles/cpu.yaml")


def test_the_shipped_profiles_resolve_against_the_shipped_notebooks():
    notebooks = pipeline.discover_notebooks(ROOT)
    assert notebooks, "no notebooks found"
    for name in ("smoke", "cpu", "gpu"):
        profile = pipeline.load_profile(ROOT / "notebooks" / "profiles" / f"{name}.yaml")
        params = resolve_parameters(notebooks, profile, profile_name=name)
        assert set(params) == {nb.name for nb in notebooks}
    for nb in notebooks:
        assert "run_info" in nb.defaults, f"{nb.path} must declare run_info (provenance)"


def test_a_section_for_an_unknown_notebook_is_refused_with_file_and_line(two_notebooks, tmp_path):
    path = tmp_path / "cpu.yaml"
    path.write_text("all:\n  seed: 1\n# a typo of 02_b:\n02_bb:\n  steps: 3\n")
    profile = pipeline.load_profile(path)
    with pytest.raises(ProfileError, match=rf"{path} line 4: section '02_bb' names no notebook .*\['01_a', '02_b'\]"):
        resolve_parameters(two_notebooks, profile, profile_name=str(path))
    # a notebook that exists but is outside --only: its section is skipped, not refused
    path.write_text("all:\n  seed: 1\n02_b:\n  steps: 3\n")
    params = resolve_parameters(two_notebooks[:1], pipeline.load_profile(path), known=["01_a", "02_b"])
    assert params == {"01_a": {"seed": 1}}


@pytest.mark.parametrize("text, message", [
    ("all:\n  seed: 1\n02_b:\n  steps: 3\nall:\n  seed: 2\n",
     r"line 5: key 'all' is written twice \(first on line 1\)"),
    ("02_b:\n  steps: 3\n  seed: 1\n  steps: 4\n", r"line 4: key 'steps' is written twice \(first on line 2\)"),
])
def test_a_key_written_twice_is_refused_with_file_and_line(tmp_path, text, message):
    path = tmp_path / "cpu.yaml"
    path.write_text(text)
    with pytest.raises(ProfileError, match=rf"{path} {message}"):
        pipeline.load_profile(path)


def test_a_profile_that_is_not_utf8_names_the_byte(tmp_path):
    path = tmp_path / "cpu.yaml"
    path.write_bytes(b"all:\n  name: caf\xe9\n")
    with pytest.raises(ProfileError, match=rf"{path}: byte 16 \(line 2\): e9 is not valid UTF-8"):
        pipeline.load_profile(path)


@pytest.fixture
def detector_notebook(tmp_path):
    return [_notebook(tmp_path, "10_t", "seeds = [0, 1]\nalphas = [0, 0.5]\n"
                                        "detector = {'preset': 'cpu', 'image_size': 128, 'lr': 0.001}")]


@pytest.mark.parametrize("profile, overrides, message", [
    ({}, [("seeds", '["a"]')], r"-p seeds: parameter 'seeds' of notebook '10_t' element \[0\] = 'a' \(str\) must be "
                               r"a int like the elements of its default \[0, 1\]"),
    ({"all": {"seeds": [0, 1.5]}}, [], r"element \[1\] = 1.5 \(float\) must be a int"),
    ({"all": {"detector": {"preset": "cpu", "imag_size": 64}}}, [],
     r"parameter 'detector' of notebook '10_t' has no field 'imag_size'; valid: \['preset', 'image_size', 'lr'\]"),
    ({}, [("detector", "{image_size: '64'}")], r"field 'image_size' must be a int like its default 128, got '64'"),
    ({}, [("detector", "[1]")], r"'detector' of notebook '10_t' must be a mapping like its default"),
])
def test_list_elements_and_mapping_fields_are_checked_against_the_defaults(detector_notebook, profile, overrides,
                                                                           message):
    with pytest.raises(ProfileError, match=message):
        resolve_parameters(detector_notebook, profile, overrides)
    ok = resolve_parameters(detector_notebook, {"all": {"alphas": [0, 0.25, 1], "detector": {"image_size": 64}}})
    # int or float, as the default; the fields not given keep the default's values
    assert ok == {"10_t": {"alphas": [0, 0.25, 1], "detector": {"preset": "cpu", "image_size": 64, "lr": 0.001}}}


def test_missing_profile_lists_the_available_ones():
    with pytest.raises(ProfileError, match=r"available profiles: \[.*'smoke'"):
        pipeline.load_profile(ROOT / "notebooks" / "profiles" / "nope.yaml")


def test_cache_key_changes_with_source_parameters_and_library(two_notebooks):
    nb = two_notebooks[0]
    key = pipeline.cache_key(nb, {"seed": 1}, "lib1")
    assert key == pipeline.cache_key(nb, {"seed": 1}, "lib1")
    assert key != pipeline.cache_key(nb, {"seed": 2}, "lib1")
    assert key != pipeline.cache_key(nb, {"seed": 1}, "lib2")
    nb.path.write_text(nb.path.read_text() + "\n# %%\nprint(2)\n")
    assert key != pipeline.cache_key(nb, {"seed": 1}, "lib1")


@pytest.mark.slow
def test_smoke_book_builds_strictly_then_rebuilds_from_cache(smoke_book, tmp_path):
    workdir, cache, runs, first = smoke_book.workdir, smoke_book.cache, smoke_book.runs, smoke_book.summary
    names = [nb.name for nb in pipeline.discover_notebooks(ROOT)]
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
    history = pipeline.read_build_history(workdir)
    assert len(history) == 1 and history[0]["executed"] == len(names) and history[0]["book_s"] > 0
    # the notebooks ran in lanes side by side, each kernel on its share of the cores, and say so
    metas = [nbformat.read(workdir / "book" / "results" / f"{n}.ipynb", as_version=4).metadata["fashion_lib"]
             for n in names]
    lanes = pipeline.plan_lanes(pipeline.discover_notebooks(ROOT), pipeline.default_jobs())
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
        pipeline.build_book(broken)


# What the README's other commands and usual tools leave in a clone beside the book's sources.
OTHER_COMMANDS_ARTEFACTS = {
    ".pytest_cache/README.md": "# pytest cache directory #\n",  # make test
    ".ruff_cache/0.6.0/README.md": "# ruff\n",  # make lint
    ".venv/lib/notes.md": "# venv\n",  # the environment both commands create
    ".hypothesis/examples/README.md": "# hypothesis\n",
    "book/.scratch/draft.md": "# a stray page in a dot-folder of the book\n",
    "book/.ipynb_checkpoints/intro-checkpoint.md": "# checkpoint\n",
    "benchmarks/README.md": "# benchmarks\n",
}


@pytest.mark.slow
def test_the_book_reads_only_its_own_sources_beside_other_commands_artefacts(smoke_book, tmp_path):
    # `make test` then `make book` in one clone: the first leaves .pytest_cache/README.md and friends in the folder
    # the book is built from; the strict build must not read them (it failed on them before the allow-list)
    clone = tmp_path / "clone"
    shutil.copytree(smoke_book.workdir, clone, ignore=shutil.ignore_patterns("_build"))
    shutil.copy(ROOT / "_config.yml", clone / "_config.yml")
    for name, text in OTHER_COMMANDS_ARTEFACTS.items():
        (clone / name).parent.mkdir(parents=True, exist_ok=True)
        (clone / name).write_text(text)
    html = pipeline.build_book(clone)
    assert (html / "book" / "intro.html").is_file()
    assert not list(html.rglob("README.html")) and not list(html.rglob("draft.html"))


def test_a_failed_build_names_each_file_what_made_it_and_what_to_do(tmp_path):
    output = "\n".join([
        "Running Sphinx v7.4.7",
        f"\x1b[91m{tmp_path}/.pytest_cache/README.md: WARNING: document isn't included in any toctree\x1b[39;49;00m",
        f"{tmp_path}/book/results/10_table1_fashionai.ipynb:5: WARNING: glue target not found: 'ne'",
        f"{tmp_path}/book/intro.md:12: ERROR: Unknown directive type",
        f"{tmp_path}/book/.scratch/draft.md: WARNING: document isn't included in any toctree",
        "build finished with problems, 3 warnings.",
    ])
    message = pipeline.build_failure_message(tmp_path, 1, output)
    assert f"- {tmp_path}/.pytest_cache/README.md: not one of the book's sources" in message
    assert "delete it" in message
    assert f"- {tmp_path}/book/results/10_table1_fashionai.ipynb: made by notebooks/10_table1_fashionai.py" in message
    assert f"- {tmp_path}/book/intro.md: a hand-written page" in message
    assert f"- {tmp_path}/book/.scratch/draft.md: not one of the book's sources" in message
    # the warnings themselves follow, without terminal colour codes
    assert "README.md: WARNING: document isn't included in any toctree" in message and "\x1b[" not in message
    assert "only builds the HTML again" in message


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


def test_fold_code_hides_sources_and_parameter_cells():
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# t"),
                nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell("x = 2", metadata={"tags": ["injected-parameters"]}),
                nbformat.v4.new_code_cell("print(x)")]
    pipeline.fold_code(nb)
    pipeline.fold_code(nb)  # idempotent
    assert "tags" not in nb.cells[0].metadata
    assert nb.cells[1].metadata["tags"] == ["parameters", "hide-cell"]
    assert nb.cells[2].metadata["tags"] == ["injected-parameters", "hide-cell"]
    assert nb.cells[3].metadata["tags"] == ["hide-input"]


def test_the_budgets_name_parts_of_the_shipped_table_of_contents():
    parts = pipeline.toc_parts(ROOT)
    assert set(pipeline.CPU_BUDGET_MIN) - {"whole book"} <= set(parts)
    assert "10_table1_fashionai" in parts["Key points: Table 1"]
    assert "20_table2_fashionai_attributes" in parts["Attributes: Tables 2 and 3"]


def test_build_history_keeps_the_newest_records_and_skips_a_broken_line(tmp_path, caplog):
    for i in range(4):
        pipeline.append_build_history(tmp_path, {"profile": "cpu", "total_s": float(i)}, keep=3)
    with open(tmp_path / pipeline.BUILD_HISTORY, "a") as f:
        f.write("{not json\n")
    history = pipeline.read_build_history(tmp_path)
    assert [r["total_s"] for r in history] == [1.0, 2.0, 3.0]
    assert "skipping an unreadable line" in caplog.text


def test_provenance_page_sums_each_part_against_its_budget(tmp_path):
    import nbformat

    notebooks = [Notebook(tmp_path / f"{name}.py", {}) for name in ("10_a", "11_b", "20_c")]
    for nb, minutes in zip(notebooks, (30, 20, 5), strict=True):
        executed = nbformat.v4.new_notebook(metadata={"fashion_lib": {"wall_time_s": minutes * 60.0}})
        nbformat.write(executed, tmp_path / f"{nb.name}.ipynb")
    parts = {"Key points: Table 1": ["10_a", "11_b"], "Attributes: Tables 2 and 3": ["20_c"],
             "Reading and reusing": ["provenance"]}  # a page that is no notebook: no row
    history = [{"finished": "2026-01-01 00:00", "profile": "cpu", "commit": "abc", "executed": 0, "notebooks": 3,
                "execute_s": 10.0, "book_s": 20.0, "total_s": 30.0}]
    text = pipeline.write_provenance_page(tmp_path, notebooks, "cpu", [], 1.0, parts=parts, history=history).read_text()
    # no start and end recorded: the sums are judged
    assert "| Key points: Table 1 | 2 | 50.0 min | not one build | none set |" in text  # the halves share the book's
    assert "| Attributes: Tables 2 and 3 | 1 | 5.0 min | not one build | none set |" in text
    assert "| whole book | 3 | 55.0 min | not one build | 90 min: within |" in text
    assert "Reading and reusing" not in text
    assert "| 0 of 3 | 10 s | 20 s | 0.5 min |" in text
    # budgets belong to the cpu profile only
    text = pipeline.write_provenance_page(tmp_path, notebooks, "gpu", [], 1.0, parts=parts).read_text()
    assert "| whole book | 3 | 55.0 min | not one build | none set |" in text and "this is its first" in text
    # built with --only: a part missing some of the book's notebooks is not judged against its budget
    book = ["10_a", "11_b", "20_c", "21_d"]
    text = pipeline.write_provenance_page(tmp_path, notebooks, "cpu", [], 1.0, parts=parts,
                                          book_notebooks=book).read_text()
    assert "| whole book | 3 | 55.0 min | not one build | 90 min: not judged, 1 of its 4 notebooks not in this " \
           "book |" in text
    text = pipeline.write_provenance_page(tmp_path, notebooks, "cpu", [], 1.0, parts=parts,
                                          book_notebooks=book[:3]).read_text()
    assert "| whole book | 3 | 55.0 min | not one build | 90 min: within |" in text


def test_provenance_page_judges_lanes_side_by_side_by_the_clock(tmp_path):
    import nbformat

    # lane 1: 10_a then 11_b (0-30, 30-50 min); lane 2: 20_c alongside (0-45 min): 95 min summed, 50 by the clock
    spans = {"10_a": (0, 30, 1), "11_b": (30, 50, 1), "20_c": (0, 45, 2)}
    notebooks = [Notebook(tmp_path / f"{name}.py", {}) for name in spans]
    for nb in notebooks:
        start, end, lane = spans[nb.name]
        meta = {"wall_time_s": (end - start) * 60.0, "started_at": 1000.0 + start * 60,
                "finished_at": 1000.0 + end * 60, "build": "b1", "lane": lane, "threads": 1}
        nbformat.write(nbformat.v4.new_notebook(metadata={"fashion_lib": meta}), tmp_path / f"{nb.name}.ipynb")
    parts = {"Key points: Table 1": ["10_a", "11_b"], "Attributes: Tables 2 and 3": ["20_c"]}
    text = pipeline.write_provenance_page(tmp_path, notebooks, "cpu", [], 1.0, parts=parts).read_text()
    assert "| whole book | 3 | 95.0 min | 50.0 min | 90 min: within |" in text
    assert "| Attributes: Tables 2 and 3 | 1 | 45.0 min | 45.0 min | none set |" in text
    assert "lane 2, 1 thread(s)" in text
    # a notebook taken from another build's cache: no clock span across builds, the sum is judged
    meta = nbformat.read(tmp_path / "20_c.ipynb", as_version=4)
    meta.metadata["fashion_lib"]["build"] = "b0"
    nbformat.write(meta, tmp_path / "20_c.ipynb")
    text = pipeline.write_provenance_page(tmp_path, notebooks, "cpu", [], 1.0, parts=parts).read_text()
    assert "| whole book | 3 | 95.0 min | not one build | 90 min: **over** |" in text


def test_every_shipped_notebook_is_in_exactly_one_lane():
    names = [nb.name for nb in pipeline.discover_notebooks(ROOT)]
    laned = [name for lane in pipeline.LANES for name in lane]
    assert sorted(laned) == sorted(names)


def test_lanes_keep_their_order_take_unnamed_notebooks_and_join_when_jobs_are_fewer(tmp_path):
    def nbs(*names):
        return [Notebook(tmp_path / f"{n}.py", {}) for n in names]

    names = [nb.name for nb in pipeline.discover_notebooks(ROOT)] + ["99_extra"]
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


def _toc_book(tmp_path: Path, present: dict[str, str]) -> Path:
    (tmp_path / "book" / "results").mkdir(parents=True)
    (tmp_path / "_toc.yml").write_text(
        "format: jb-book\nroot: book/intro\nparts:\n"
        "  - caption: Tools\n    chapters:\n      - file: book/results/00_a\n      - file: book/results/01_b\n"
        "  - caption: Results\n    chapters:\n      - file: book/results/10_c\n      - file: book/claims\n"
        "      - file: book/results/provenance\n")
    (tmp_path / "book" / "intro.md").write_text("# Intro\n{glue:text}`results/00_a.ipynb::n:d` and {doc}`claims`\n")
    (tmp_path / "book" / "claims.md").write_text("# Claims\nSee {doc}`the table <results/10_c>`.\n")
    (tmp_path / "book" / "results" / "provenance.md").write_text("# Provenance\n")
    for name, text in present.items():
        (tmp_path / "book" / "results" / f"{name}.ipynb").write_text(text)
    return tmp_path


def test_partial_toc_keeps_the_pages_whose_notebooks_ran_and_their_references():
    assert pipeline.page_references("{doc}`results/10_c` {glue:text}`results/11_d.ipynb::k:.1f` {doc}`t <12_e>` "
                                    "{doc}`claims` {glue}`key` 13_f") == {"10_c", "11_d", "12_e"}


def test_partial_toc_leaves_out_missing_pages_and_the_pages_that_need_them(tmp_path):
    workdir = _toc_book(tmp_path, {"10_c": '{"cells": ["{doc}`01_b`"]}', "01_b": "{}"})
    toc, left_out = pipeline.partial_toc(workdir)
    # 00_a never ran: its page is missing, and the front page glues from it; 10_c links to 01_b, which ran
    assert left_out == ["book/intro", "book/results/00_a"]
    assert toc["root"] == "book/results/01_b"
    assert toc["parts"] == [{"caption": "Results", "chapters": [
        {"file": "book/results/10_c"}, {"file": "book/claims"}, {"file": "book/results/provenance"}]}]
    # every notebook ran: the book's own table of contents
    (workdir / "book" / "results" / "00_a.ipynb").write_text("{}")
    assert pipeline.partial_toc(workdir) == (None, [])


def test_partial_toc_leaves_out_a_page_that_links_to_one_left_out(tmp_path):
    # 01_b ran but links to 10_c, which never ran; the provenance page links to 01_b: both are left out
    workdir = _toc_book(tmp_path, {"00_a": "{}", "01_b": '{"cells": ["{doc}`10_c`"]}'})
    (workdir / "book" / "results" / "provenance.md").write_text("# Provenance\n{doc}`01_b`\n")
    toc, left_out = pipeline.partial_toc(workdir)
    assert left_out == ["book/results/01_b", "book/results/10_c", "book/claims", "book/results/provenance"]
    assert [ch["file"] for part in toc["parts"] for ch in part["chapters"]] == ["book/results/00_a"]


def test_partial_toc_keeps_the_root_when_it_can_be_built(tmp_path):
    toc, left_out = pipeline.partial_toc(_toc_book(tmp_path, {"00_a": "{}"}))
    assert toc["root"] == "book/intro" and left_out == ["book/results/01_b", "book/results/10_c", "book/claims"]
    assert [ch["file"] for part in toc["parts"] for ch in part["chapters"]] == ["book/results/00_a",
                                                                              "book/results/provenance"]


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


def test_write_primary_claims_lists_the_whole_family_even_before_any_page_ran(tmp_path):
    from fashion_lib.pipeline import write_primary_claims
    from fashion_lib.primary_claims import PRIMARY_CLAIMS

    target = write_primary_claims(tmp_path)
    lines = target.read_text().splitlines()
    assert target == tmp_path / "primary_claims.md"
    assert len([line for line in lines if "**not measured in this build**" in line]) == len(PRIMARY_CLAIMS)
    assert "0 of the 11 claims are supported at a family-wise error rate of 5 %" in target.read_text()


def test_a_mapping_given_in_part_keeps_the_other_fields_of_the_layer_below():
    notebooks = pipeline.discover_notebooks(ROOT)
    profile = {"all": {"detector": {"preset": "cpu", "image_size": 64, "train_steps": 3, "cpn_steps": 3,
                                    "batch_size": 2, "lr": 0.001}},
               "11_table1_coco": {"detector": {"cpn_steps": 5}}}
    params = resolve_parameters(notebooks, profile, [("detector", "{train_steps: 10, scale_crop: false}")])
    fashionai, coco = params["10_table1_fashionai"]["detector"], params["11_table1_coco"]["detector"]
    # -p over 'all' over the notebook's default: only the named fields change
    assert fashionai == {"preset": "cpu", "image_size": 64, "train_steps": 10, "coco_train_steps": 300, "cpn_steps": 3,
                         "batch_size": 2, "lr": 0.001, "scale_crop": False, "amp": True}
    assert coco == {**fashionai, "cpn_steps": 5}  # the notebook's own section sits between 'all' and -p
    with pytest.raises(ProfileError, match="has no field 'steps'"):
        resolve_parameters(notebooks, {}, [("detector", "{steps: 10}")])


@pytest.mark.parametrize(("profile", "fashionai", "coco"), [("smoke", 3, 3), ("cpu", 900, 300), ("gpu", 20000, 20000)])
def test_each_profile_trains_people_for_the_steps_it_names(profile, fashionai, coco):
    # the notebooks' own default (300 people steps, the cpu profile's) must not leak into a profile that sets only
    # train_steps: the smoke book would train people 100 times longer than garments
    from fashion_lib.experiments.keypoints import KeypointSetup

    detector = pipeline.notebook_parameters(profile)["11_table1_coco"]["detector"]
    steps = [KeypointSetup(schema=schema, **detector).keypoint_rcnn_steps for schema in ("fashionai", "coco")]
    assert steps == [fashionai, coco]
