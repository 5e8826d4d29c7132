"""The banner on every page: facts read from the executed notebooks, and the warning of a smoke build."""

import json

from fashion_lib.banner import banner_html, collect_facts, read_executed

DEFAULTS = {"10_a": {"seeds": [0, 1, 2], "val_images": 200}, "11_b": {"seeds": [0, 1, 2], "val_images": 40},
            "00_c": {"dpi": 100}}


def _meta(profile="cpu", commit="0123456789abcdef", dirty=False, **parameters):
    return {"profile": profile, "commit": commit, "dirty": dirty, "parameters": parameters,
            "device": "cpu: Test CPU (2 cores, 2 torch threads)"}


def test_facts_take_each_pages_parameters_over_its_defaults():
    facts = collect_facts({"10_a": _meta(val_images=100), "11_b": _meta(), "00_c": _meta()}, DEFAULTS, "2026-01-02")
    assert facts.profiles == {"cpu": 3} and facts.commits == {"0123456789": 3}
    assert facts.seeds == {"0, 1, 2": 2}  # notebook 00 has no seeds
    assert facts.val_images == {100: 1, 40: 1}
    html = banner_html(facts)
    for text in ("profile <code>cpu</code>", "commit <code>0123456789</code>", "seeds 0, 1, 2",
                 "validation images 40 to 100, by experiment", "device cpu: Test CPU (2 cores, 2 torch threads)",
                 "built 2026-01-02"):
        assert text in html
    assert "meaningless" not in html and "uncommitted" not in html


def test_a_smoke_build_warns_that_its_numbers_are_meaningless():
    facts = collect_facts({"10_a": _meta("smoke", dirty=True, seeds=[0], val_images=4)}, DEFAULTS, "2026-01-02")
    html = banner_html(facts)
    assert "<strong>smoke build: the numbers are meaningless</strong>" in html
    assert "commit <code>0123456789+dirty</code> (uncommitted changes)" in html
    assert "seeds 0 ·" in html and "validation images 4 ·" in html


def test_pages_from_different_runs_show_every_value_with_its_page_count():
    executed = {"10_a": _meta("cpu"), "11_b": _meta("smoke", commit="fedcba9876543210"), "00_c": _meta("cpu")}
    html = banner_html(collect_facts(executed, DEFAULTS, "2026-01-02"))
    assert "profile <code>cpu</code> (2 pages); <code>smoke</code> (1 page)" in html
    assert "commit <code>0123456789</code> (2 pages); <code>fedcba9876</code> (1 page)" in html
    assert "Pages built with different profiles" in html and "meaningless" in html


def test_values_are_escaped():
    html = banner_html(collect_facts({"00_c": _meta("<b>x</b>")}, DEFAULTS, "2026-01-02"))
    assert "<b>x</b>" not in html and "&lt;b&gt;x&lt;/b&gt;" in html


def test_read_executed_reads_the_pipelines_metadata_of_the_notebooks_that_exist(tmp_path):
    (tmp_path / "10_a.ipynb").write_text(json.dumps({"metadata": {"fashion_lib": _meta()}, "cells": []}))
    assert read_executed(tmp_path, ["10_a", "11_b"]) == {"10_a": _meta()}
