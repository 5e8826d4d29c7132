"""Provenance records: the pipeline's run_info, and a notebook run by hand with papermill."""

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import readme
import yaml

from fashion_lib import provenance
from fashion_lib.parameters import ParameterError, coerce_injected, literal_assignments, parameters_cell

ROOT = Path(__file__).resolve().parents[1]
HEAD = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()


def _kernel(injected: str, **values) -> dict:
    """A notebook namespace as the kernel holds it after papermill's cells ran: the executed sources in ``In``."""
    return {"In": ["", "run_info = {}\nseeds = [0, 1, 2]\ndpi = 100", injected, "from fashion_lib import provenance"],
            "run_info": {}, "seeds": [0, 1, 2], "dpi": 100, **values}


def test_run_by_hand_parses_a_list_given_as_a_string_and_records_commit_and_parameters():
    ns = _kernel('# Parameters\nseeds = "[0, 1]"\ndpi = 50\n', seeds="[0, 1]", dpi=50)
    prov = provenance.start(ns["run_info"], ns["seeds"], namespace=ns)
    assert ns["seeds"] == [0, 1] and prov.seeds == [0, 1]  # the notebook's variable is replaced too
    rec = prov.record()
    assert rec["profile"] == provenance.BY_HAND and rec["commit"] == HEAD and HEAD
    assert rec["parameters"] == {"seeds": [0, 1], "dpi": 50}


def test_a_string_that_is_no_list_is_refused_by_name():
    ns = _kernel('# Parameters\nseeds = "0 1"\n', seeds="0 1")
    with pytest.raises(ParameterError, match="parameter 'seeds' = '0 1': expected a list like its default"):
        provenance.start(ns["run_info"], ns["seeds"], namespace=ns)


def test_the_pipelines_run_info_is_kept_as_given():
    info = {"commit": "abc", "dirty": False, "profile": "smoke", "parameters": {"dpi": 60}, "command": "make"}
    ns = _kernel(f"# Parameters\ndpi = 60\nrun_info = {info!r}\n", dpi=60, run_info=info)
    rec = provenance.start(info, [0], namespace=ns).record()
    assert (rec["commit"], rec["profile"], rec["parameters"], rec["command"]) == ("abc", "smoke", {"dpi": 60}, "make")


def test_outside_a_kernel_with_nothing_injected_the_defaults_are_recorded():
    rec = provenance.start({}, [0], namespace={}).record()
    assert rec["parameters"] == {} and rec["commit"] == HEAD and rec["seeds"] == [0]
    with pytest.raises(ParameterError, match="parameter 'seeds' = '\\[0\\]': expected a list of integers"):
        provenance.start({}, "[0]", namespace={})


def test_git_state_outside_a_checkout_is_unknown(tmp_path):
    assert provenance.git_state(tmp_path) == {"commit": "unknown", "dirty": False}


def test_library_digest_covers_the_named_sources_only():
    full, some = provenance.library_digest(), provenance.library_digest(("data", "refine.py"))
    assert full != some and len(some) == 16 and all(c in "0123456789abcdef" for c in some)
    assert provenance.library_digest(("data", "refine.py")) == some  # stable
    assert provenance.library_digest(("refine.py",)) != provenance.library_digest(("keypoints.py",))
    with pytest.raises(ValueError, match=r"no such source\(s\) in fashion_lib: \['nope.py'\]"):
        provenance.library_digest(("keypoints.py", "nope.py"))


def test_library_digest_of_another_checkout_changes_with_its_sources(tmp_path):
    package = tmp_path / "fashion_lib"
    (package / "sub").mkdir(parents=True)
    (package / "a.py").write_text("x = 1\n")
    (package / "sub" / "b.py").write_text("y = 2\n")
    (package / "notes.txt").write_text("not a source")
    before = provenance.library_digest(package=package)
    assert before != provenance.library_digest()
    (package / "notes.txt").write_text("still not a source")
    assert provenance.library_digest(package=package) == before
    (package / "sub" / "b.py").write_text("y = 3\n")
    assert provenance.library_digest(package=package) != before
    assert provenance.library_digest(("a.py",), package=package) == provenance.library_digest(("a.py",),
                                                                                               package=package)


def test_content_digest_is_the_sha256_of_the_sorted_json():
    import hashlib

    key = provenance.content_digest({"b": [1, 2], "a": Path("/x")})
    assert key == hashlib.sha256(b'{"a": "/x", "b": [1, 2]}').hexdigest()[:12]
    assert key == provenance.content_digest({"a": Path("/x"), "b": [1, 2]})  # key order does not matter
    assert key != provenance.content_digest({"a": Path("/x"), "b": [2, 1]})
    assert len(provenance.content_digest("x", 20)) == 20
    with pytest.raises(ValueError, match=r"length must be in \[1, 64\] hex digits, got 0"):
        provenance.content_digest("x", 0)


def test_find_repo_root_searches_upwards_and_names_where_it_looked(tmp_path):
    assert provenance.find_repo_root() == ROOT
    assert provenance.find_repo_root(ROOT / "fashion_lib" / "models") == ROOT
    with pytest.raises(FileNotFoundError, match=f"no project root .* above {tmp_path}"):
        provenance.find_repo_root(tmp_path)


def test_runs_dir_is_the_environments_folder_or_the_checkouts_build_runs(tmp_path, monkeypatch):
    monkeypatch.setenv(provenance.RUNS_ENV, str(tmp_path / "elsewhere"))
    assert provenance.runs_dir() == tmp_path / "elsewhere"
    monkeypatch.delenv(provenance.RUNS_ENV)
    assert provenance.runs_dir() == ROOT / "_build" / "runs"


PAPERMILL_SECTION = "Running one notebook by hand with papermill"


def _readme_papermill() -> tuple[list[str], list[str]]:
    """The README's jupytext and papermill commands, split."""
    (jupytext,) = readme.commands(PAPERMILL_SECTION, "jupytext")
    (papermill,) = readme.commands(PAPERMILL_SECTION, "papermill")
    return jupytext, papermill


def _papermill_by_hand(tmp_path: Path, notebook: str, *args: str) -> subprocess.CompletedProcess:
    """The README's commands (jupytext to .ipynb, then papermill with its options, from the repository root) on
    ``notebook``, their files in ``tmp_path``, with the parameters ``args`` in place of the README's."""
    jupytext, papermill = _readme_papermill()
    assert papermill[1] == jupytext[jupytext.index("-o") + 1]  # papermill runs what jupytext wrote
    bin_dir = Path(sys.executable).parent
    ipynb = tmp_path / f"{Path(notebook).stem}.ipynb"
    convert = [str(bin_dir / "jupytext"), *jupytext[1:-1], notebook]
    convert[convert.index("-o") + 1] = str(ipynb)
    subprocess.run(convert, cwd=ROOT, check=True, capture_output=True)
    options = papermill[3:]
    options = options[:min(options.index(flag) for flag in ("-p", "-y") if flag in options)]  # --cwd notebooks
    # the kernel imports this checkout's library, whatever an editable install elsewhere points to
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_WAIT_POLICY": "PASSIVE"}
    return subprocess.run([str(bin_dir / "papermill"), str(ipynb), str(tmp_path / "out.ipynb"), *options,
                           "-k", "python3", *args], cwd=ROOT, capture_output=True, text=True, env=env, timeout=600)


def test_the_readmes_papermill_example_names_a_notebook_and_parameters_it_declares():
    """What the README's example injects is what its notebook declares, of the declared types."""
    jupytext, papermill = _readme_papermill()
    notebook = ROOT / jupytext[-1]
    assert notebook.is_file() and (ROOT / papermill[papermill.index("--cwd") + 1]).is_dir()
    injected = {}
    words = iter(papermill[3:])
    for word in words:
        if word == "-p":  # papermill passes a string unless it reads as a number or a boolean
            name = next(words)
            injected[name] = next(words)
        elif word == "-y":
            injected.update(yaml.safe_load(next(words)))
    assert set(injected) == {"seeds", "alphas"}
    defaults = literal_assignments(parameters_cell(notebook.read_text()))
    assert coerce_injected(defaults, injected) == {"seeds": [0], "alphas": [0, 0.5, 1]}


def _provenance_output(path: Path) -> str:
    nb = nbformat.read(path, as_version=4)
    texts = [o.get("data", {}).get("text/markdown", "") for c in nb.cells if c.cell_type == "code"
             for o in c.get("outputs", [])]
    (text,) = [t for t in texts if "Provenance of this page" in t]
    return text


@pytest.mark.slow
def test_papermill_by_hand_on_notebook_00_records_the_commit_and_the_injected_parameters(tmp_path):
    proc = _papermill_by_hand(tmp_path, "notebooks/00_keypoint_schemas.py", "-p", "dpi", "50")
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = _provenance_output(tmp_path / "out.ipynb")
    assert f"`{HEAD}`" in text and "`dpi=50`" in text and provenance.BY_HAND in text


@pytest.mark.slow
def test_papermill_by_hand_parses_or_refuses_a_list_given_with_p(tmp_path):
    notebook = tmp_path / "99_seeds.py"
    header = "# ---\n# jupyter:\n#   kernelspec:\n#     display_name: Python 3\n#     language: python\n" \
             "#     name: python3\n# ---\n\n"
    notebook.write_text(header + '# %% tags=["parameters"]\nrun_info = {}\nseeds = [0, 1, 2]\n\n'
                        "# %%\nfrom fashion_lib import provenance\nprov = provenance.start(run_info, seeds)\n\n"
                        "# %%\nimport json\nprint(json.dumps(seeds))\n_ = prov.finish()\n")
    proc = _papermill_by_hand(tmp_path, str(notebook), "-p", "seeds", "[4, 5]")
    assert proc.returncode == 0, proc.stderr[-3000:]
    nb = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    assert json.loads(nb.cells[-1].outputs[0]["text"]) == [4, 5]
    assert "`seeds=[4, 5]`" in _provenance_output(tmp_path / "out.ipynb")
    proc = _papermill_by_hand(tmp_path, str(notebook), "-p", "seeds", "four")
    assert proc.returncode != 0
    assert "parameter 'seeds' = 'four': expected a list like its default [0, 1, 2]" in proc.stderr


def test_start_runs_the_kernel_on_the_threads_the_pipeline_gave_it():
    import torch

    before = torch.get_num_threads()
    other = 2 if before == 1 else 1  # a change the test can see
    try:
        provenance.start({"profile": "cpu", "threads": other}, [0], namespace={})
        assert torch.get_num_threads() == other
        with pytest.raises(ValueError, match="threads"):
            provenance.start({"profile": "cpu", "threads": -1}, [0], namespace={})
    finally:
        torch.set_num_threads(before)
