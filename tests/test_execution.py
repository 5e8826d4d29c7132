"""Executing one notebook (fashion_lib.execution): cache keys and the folded code of an executed copy. A real
execution is tested in tests/test_progress.py and by the smoke book (tests/test_pipeline.py)."""

from fashion_lib.execution import cache_key, fold_code
from fashion_lib.profiles import Notebook, read_parameters


def test_cache_key_changes_with_source_parameters_and_library(tmp_path):
    path = tmp_path / "01_a.py"
    path.write_text('# %% tags=["parameters"]\nrun_info = {}\nseed = 0\n\n# %%\nprint(1)\n')
    nb = Notebook(path, read_parameters(path))
    key = cache_key(nb, {"seed": 1}, "lib1")
    assert key == cache_key(nb, {"seed": 1}, "lib1")
    assert key != cache_key(nb, {"seed": 2}, "lib1")
    assert key != cache_key(nb, {"seed": 1}, "lib2")
    nb.path.write_text(nb.path.read_text() + "\n# %%\nprint(2)\n")
    assert key != cache_key(nb, {"seed": 1}, "lib1")


def test_fold_code_hides_sources_and_parameter_cells():
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# t"),
                nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell("x = 2", metadata={"tags": ["injected-parameters"]}),
                nbformat.v4.new_code_cell("print(x)")]
    fold_code(nb)
    fold_code(nb)  # idempotent
    assert "tags" not in nb.cells[0].metadata
    assert nb.cells[1].metadata["tags"] == ["parameters", "hide-cell"]
    assert nb.cells[2].metadata["tags"] == ["injected-parameters", "hide-cell"]
    assert nb.cells[3].metadata["tags"] == ["hide-input"]
