"""Notebook parameters: literal assignments, the cell papermill injects, strings given for typed parameters."""

import pytest

from fashion_lib.parameters import (
    ParameterError,
    coerce_injected,
    injected_parameters,
    literal_assignments,
    parameters_cell,
)

DEFAULTS = {"run_info": {}, "seeds": [0, 1, 2], "alpha": 0.4, "detector": {"steps": 10}, "name": "a",
            "data_root": None, "fast": False}


def test_literal_assignments_in_order_and_errors_name_the_line():
    assert list(literal_assignments("a = 1\nb = [2]\n").items()) == [("a", 1), ("b", [2])]
    with pytest.raises(ParameterError, match="line 2: the default of 'b' is not a literal"):
        literal_assignments("a = 1\nb = len([])")


def test_injected_parameters_are_the_last_papermill_cell_and_the_defaults_the_cell_before_it():
    history = ["", "run_info = {}\nseeds = [0]", '# Parameters\nseeds = "[0, 1]"\n', "import torch"]
    assert injected_parameters(history) == ({"run_info": {}, "seeds": [0]}, {"seeds": "[0, 1]"})
    # run with its defaults (nothing injected), or the cell before is not a parameters cell
    assert injected_parameters(["", "seeds = [0]", "print(1)"]) == (None, {})
    assert injected_parameters(["import os", "# Parameters\nx = 1\n"]) == (None, {"x": 1})


@pytest.mark.parametrize("injected, expected", [
    ({"seeds": "[0, 1]"}, {"seeds": [0, 1]}),
    ({"detector": "{steps: 3}"}, {"detector": {"steps": 3}}),
    ({"alpha": "1"}, {"alpha": 1}),
    ({"fast": "yes"}, {"fast": True}),
    ({"name": "[0]", "data_root": "/data/coco"}, {"name": "[0]", "data_root": "/data/coco"}),  # strings stay
    ({"seeds": [3], "run_info": {"commit": "abc"}}, {"seeds": [3], "run_info": {"commit": "abc"}}),  # typed (-y)
])
def test_strings_given_for_typed_parameters_are_parsed(injected, expected):
    assert coerce_injected(DEFAULTS, injected) == expected


@pytest.mark.parametrize("injected, message", [
    ({"seeds": "0, 1]"}, r"parameter 'seeds' = '0, 1\]': expected a list like its default \[0, 1, 2\]; give it as "
                         r"YAML, e.g. papermill -y 'seeds: \[0, 1, 2\]'"),
    ({"seeds": "abc"}, "parameter 'seeds' = 'abc': expected a list"),
    ({"alpha": "[0.5]"}, "parameter 'alpha' = '\\[0.5\\]': expected a float"),
    ({"detector": "[1]"}, "parameter 'detector' = '\\[1\\]': expected a dict"),
    ({"seed": "[0]"}, r"parameter\(s\) \['seed'\] injected, but the notebook's parameters cell declares only"),
])
def test_strings_that_do_not_fit_are_refused_by_name(injected, message):
    with pytest.raises(ParameterError, match=message):
        coerce_injected(DEFAULTS, injected)


def test_parameters_cell_is_read_as_plain_text_like_jupytext_reads_it():
    from pathlib import Path

    jupytext = pytest.importorskip("jupytext")
    notebooks = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9][0-9]_*.py"))
    assert len(notebooks) >= 13
    for path in notebooks:  # the shipped notebooks: the same cell as jupytext finds
        cells = [c for c in jupytext.read(path, fmt="py:percent").cells
                 if "parameters" in c.get("metadata", {}).get("tags", [])]
        assert parameters_cell(path.read_text()) == cells[0].source, path
    text = '# %% [markdown]\n# # Title\n\n# %% tags=["parameters"]\nseed = 0\nname = "a"\n\n# %%\nprint(seed)\n'
    assert parameters_cell(text) == 'seed = 0\nname = "a"'
    with pytest.raises(ParameterError, match="expected exactly one cell tagged 'parameters', found 0"):
        parameters_cell("# %%\nseed = 0\n")
    with pytest.raises(ParameterError, match="found 2"):
        parameters_cell(text + '# %% tags=["parameters"]\nx = 1\n')
