"""Building the book (fashion_lib.book): the failure message, partial tables of contents, the build history, the
provenance page against the budgets, the claims page, and a strict build beside other commands' artefacts."""

import shutil
from pathlib import Path

import pytest

from fashion_lib.book import (
    BUILD_HISTORY,
    CPU_BUDGET_MIN,
    append_build_history,
    build_book,
    build_failure_message,
    page_references,
    partial_toc,
    read_build_history,
    toc_parts,
    write_primary_claims,
    write_provenance_page,
)
from fashion_lib.profiles import Notebook

ROOT = Path(__file__).resolve().parents[1]


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
    html = build_book(clone)
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
    message = build_failure_message(tmp_path, 1, output)
    assert f"- {tmp_path}/.pytest_cache/README.md: not one of the book's sources" in message
    assert "delete it" in message
    assert f"- {tmp_path}/book/results/10_table1_fashionai.ipynb: made by notebooks/10_table1_fashionai.py" in message
    assert f"- {tmp_path}/book/intro.md: a hand-written page" in message
    assert f"- {tmp_path}/book/.scratch/draft.md: not one of the book's sources" in message
    # the warnings themselves follow, without terminal colour codes
    assert "README.md: WARNING: document isn't included in any toctree" in message and "\x1b[" not in message
    assert "only builds the HTML again" in message


def test_the_budgets_name_parts_of_the_shipped_table_of_contents():
    parts = toc_parts(ROOT)
    assert set(CPU_BUDGET_MIN) - {"whole book"} <= set(parts)
    assert "10_table1_fashionai" in parts["Key points: Table 1"]
    assert "20_table2_fashionai_attributes" in parts["Attributes: Tables 2 and 3"]


def test_build_history_keeps_the_newest_records_and_skips_a_broken_line(tmp_path, caplog):
    for i in range(4):
        append_build_history(tmp_path, {"profile": "cpu", "total_s": float(i)}, keep=3)
    with open(tmp_path / BUILD_HISTORY, "a") as f:
        f.write("{not json\n")
    history = read_build_history(tmp_path)
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
    text = write_provenance_page(tmp_path, notebooks, "cpu", [], 1.0, parts=parts, history=history).read_text()
    # no start and end recorded: the sums are judged
    assert "| Key points: Table 1 | 2 | 50.0 min | not one build | none set |" in text  # the halves share the book's
    assert "| Attributes: Tables 2 and 3 | 1 | 5.0 min | not one build | none set |" in text
    assert "| whole book | 3 | 55.0 min | not one build | 90 min: within |" in text
    assert "Reading and reusing" not in text
    assert "| 0 of 3 | 10 s | 20 s | 0.5 min |" in text
    # budgets belong to the cpu profile only
    text = write_provenance_page(tmp_path, notebooks, "gpu", [], 1.0, parts=parts).read_text()
    assert "| whole book | 3 | 55.0 min | not one build | none set |" in text and "this is its first" in text
    # built with --only: a part missing some of the book's notebooks is not judged against its budget
    book = ["10_a", "11_b", "20_c", "21_d"]
    text = write_provenance_page(tmp_path, notebooks, "cpu", [], 1.0, parts=parts,
                                          book_notebooks=book).read_text()
    assert "| whole book | 3 | 55.0 min | not one build | 90 min: not judged, 1 of its 4 notebooks not in this " \
           "book |" in text
    text = write_provenance_page(tmp_path, notebooks, "cpu", [], 1.0, parts=parts,
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
    text = write_provenance_page(tmp_path, notebooks, "cpu", [], 1.0, parts=parts).read_text()
    assert "| whole book | 3 | 95.0 min | 50.0 min | 90 min: within |" in text
    assert "| Attributes: Tables 2 and 3 | 1 | 45.0 min | 45.0 min | none set |" in text
    assert "lane 2, 1 thread(s)" in text
    # a notebook taken from another build's cache: no clock span across builds, the sum is judged
    meta = nbformat.read(tmp_path / "20_c.ipynb", as_version=4)
    meta.metadata["fashion_lib"]["build"] = "b0"
    nbformat.write(meta, tmp_path / "20_c.ipynb")
    text = write_provenance_page(tmp_path, notebooks, "cpu", [], 1.0, parts=parts).read_text()
    assert "| whole book | 3 | 95.0 min | not one build | 90 min: **over** |" in text


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
    assert page_references("{doc}`results/10_c` {glue:text}`results/11_d.ipynb::k:.1f` {doc}`t <12_e>` "
                                    "{doc}`claims` {glue}`key` 13_f") == {"10_c", "11_d", "12_e"}


def test_partial_toc_leaves_out_missing_pages_and_the_pages_that_need_them(tmp_path):
    workdir = _toc_book(tmp_path, {"10_c": '{"cells": ["{doc}`01_b`"]}', "01_b": "{}"})
    toc, left_out = partial_toc(workdir)
    # 00_a never ran: its page is missing, and the front page glues from it; 10_c links to 01_b, which ran
    assert left_out == ["book/intro", "book/results/00_a"]
    assert toc["root"] == "book/results/01_b"
    assert toc["parts"] == [{"caption": "Results", "chapters": [
        {"file": "book/results/10_c"}, {"file": "book/claims"}, {"file": "book/results/provenance"}]}]
    # every notebook ran: the book's own table of contents
    (workdir / "book" / "results" / "00_a.ipynb").write_text("{}")
    assert partial_toc(workdir) == (None, [])


def test_partial_toc_leaves_out_a_page_that_links_to_one_left_out(tmp_path):
    # 01_b ran but links to 10_c, which never ran; the provenance page links to 01_b: both are left out
    workdir = _toc_book(tmp_path, {"00_a": "{}", "01_b": '{"cells": ["{doc}`10_c`"]}'})
    (workdir / "book" / "results" / "provenance.md").write_text("# Provenance\n{doc}`01_b`\n")
    toc, left_out = partial_toc(workdir)
    assert left_out == ["book/results/01_b", "book/results/10_c", "book/claims", "book/results/provenance"]
    assert [ch["file"] for part in toc["parts"] for ch in part["chapters"]] == ["book/results/00_a"]


def test_partial_toc_keeps_the_root_when_it_can_be_built(tmp_path):
    toc, left_out = partial_toc(_toc_book(tmp_path, {"00_a": "{}"}))
    assert toc["root"] == "book/intro" and left_out == ["book/results/01_b", "book/results/10_c", "book/claims"]
    assert [ch["file"] for part in toc["parts"] for ch in part["chapters"]] == ["book/results/00_a",
                                                                              "book/results/provenance"]


def test_write_primary_claims_lists_the_whole_family_even_before_any_page_ran(tmp_path):
    from fashion_lib.primary_claims import PRIMARY_CLAIMS

    target = write_primary_claims(tmp_path)
    lines = target.read_text().splitlines()
    assert target == tmp_path / "primary_claims.md"
    assert len([line for line in lines if "**not measured in this build**" in line]) == len(PRIMARY_CLAIMS)
    assert "0 of the 11 claims are supported at a family-wise error rate of 5 %" in target.read_text()


def test_clean_clone_builds_are_judged_against_the_budget():
    from fashion_lib.book import CleanCloneBuild, _clean_clone_lines

    within = CleanCloneBuild("abc1234", "2026-12-07 02:51", 88.0, 80.0, 87.5, 40.0, "quiet")
    over = CleanCloneBuild("def5678", "2026-12-06 00:27", 95.0, 78.0, 94.0, 30.0)
    lines = _clean_clone_lines([over, within])
    assert "| `def5678` | 2026-12-06 00:27 | 95.0 min | 78.0 min | 94.0 min | **over** | 30 s |  |" in lines
    assert "| `abc1234` | 2026-12-07 02:51 | 88.0 min | 80.0 min | 87.5 min | within | 40 s | quiet |" in lines
    assert _clean_clone_lines([]) == ["No build from a clean clone has been timed yet."]
