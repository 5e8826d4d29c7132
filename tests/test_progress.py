"""Progress of a running notebook: the cell, the time spent, the time the last run took."""

import io
import json
import os
import time

import pytest

from fashion_lib.progress import CellProgress, expected_wall_time, format_duration, last_heading


@pytest.mark.parametrize("seconds, text", [(0, "0 s"), (42.4, "42 s"), (59.6, "1:00"), (187, "3:07"),
                                           (3723, "1:02:03"), (-3, "0 s")])
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


def test_last_heading():
    assert last_heading("# Title\n\ntext\n## Table 1, FashionAI column\nmore") == "Table 1, FashionAI column"
    assert last_heading("no heading here") is None


def _cached(folder, name, profile, wall, age_s):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(json.dumps({"metadata": {"fashion_lib": {"profile": profile, "wall_time_s": wall}}}))
    stamp = time.time() - age_s
    os.utime(path, (stamp, stamp))


def test_expected_wall_time_is_the_newest_cached_run_of_the_same_profile(tmp_path):
    folder = tmp_path / "10_a"
    _cached(folder, "old.ipynb", "cpu", 300.0, age_s=100)
    _cached(folder, "new.ipynb", "cpu", 240.0, age_s=10)
    _cached(folder, "newest.ipynb", "smoke", 20.0, age_s=1)
    (folder / "10_a.failed.ipynb").write_text("{not json")
    assert expected_wall_time(tmp_path, "10_a", "cpu") == 240.0
    assert expected_wall_time(tmp_path, "10_a", "smoke") == 20.0
    assert expected_wall_time(tmp_path, "10_a", "gpu") is None
    assert expected_wall_time(tmp_path, "11_b", "cpu") is None


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def _cells():
    return [{"cell_type": "markdown", "source": "# Table 1"}, {"cell_type": "code", "source": "x = 1"},
            {"cell_type": "code", "source": "import torch"},
            {"cell_type": "markdown", "source": "## Training, one seed at a time"},
            {"cell_type": "code", "source": "train()"}]


def test_the_line_names_the_cell_its_section_and_the_times():
    clock, stream = Clock(), io.StringIO()
    progress = CellProgress("[2/13] 10_a", _cells(), 400.0, injected=True, stream=stream, clock=clock)
    for cell in _cells()[:3]:
        progress.on_cell_start(cell=cell, cell_index=0)
    progress.on_cell_start(cell={"cell_type": "code", "source": "# Parameters\nx = 2"})  # papermill's cell
    clock.now += 83
    assert progress.line() == "[2/13] 10_a: cell 3 of 4 (Table 1), 1:23 elapsed of about 6:40 (last run)"
    for cell in _cells()[3:]:
        progress.on_cell_start(cell=cell)
    clock.now += 400
    assert progress.line() == ("[2/13] 10_a: cell 4 of 4 (Training, one seed at a time), 8:03 elapsed longer than "
                               "the last run (6:40)")
    first = CellProgress("01_b", _cells(), None, clock=clock, stream=stream)
    first.on_cell_start(cell=_cells()[1])
    assert first.line() == "01_b: cell 1 of 3, 0 s elapsed (no earlier run of this profile to compare with)"


def test_in_a_log_a_line_is_written_per_cell_at_most_every_log_every_s():
    clock, stream = Clock(), io.StringIO()
    progress = CellProgress("10_a", _cells(), None, stream=stream, clock=clock, log_every_s=60)
    with progress:
        progress.on_cell_start(cell=_cells()[1])  # written: the first
        clock.now += 30
        progress.on_cell_start(cell=_cells()[2])  # 30 s later: not written
        clock.now += 31
        progress.on_cell_start(cell=_cells()[3])  # Markdown: never written
        progress.on_cell_start(cell=_cells()[4])  # 61 s after the first line: written
    lines = stream.getvalue().splitlines()
    assert [line.split(",")[0] for line in lines] == ["10_a: cell 1 of 3", "10_a: cell 3 of 3 (Training"]
    assert "\r" not in stream.getvalue()  # not a terminal: no rewritten line


@pytest.mark.slow
def test_a_pipeline_run_shows_the_cells_and_no_kernel_warning(tmp_path, capfd):
    from fashion_lib.execution import execute_notebook
    from fashion_lib.profiles import Notebook, read_parameters

    path = tmp_path / "01_tiny.py"
    path.write_text('# %% [markdown]\n# # Tiny\n\n# %% tags=["parameters"]\nrun_info = {}\nx = 1\n\n'
                    "# %% [markdown]\n# ## Printing\n\n# %%\nprint(x)\n")
    notebook = Notebook(path, read_parameters(path))
    wall = execute_notebook(notebook, {"x": 2}, tmp_path / "out.ipynb", run_info={}, label="[1/1] tiny",
                            expected_s=30.0)
    err = capfd.readouterr().err
    assert wall > 0 and "[1/1] tiny: cell 1 of 3" in err and "of about 30 s (last run)" in err
    assert "without encryption" not in err and "WARNING" not in err
