"""The project as a package others install, cite and publish: license, citation, the light install, `make publish`."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
# Import names of the `book` extra's distributions and of the notebook machinery they bring (IPython, myst_nb,
# Sphinx, the kernel client): none of them may be needed to import the library.
BOOK_IMPORTS = {
    "jupyter-book": "jupyter_book", "jupytext": "jupytext", "papermill": "papermill", "ipykernel": "ipykernel",
    "nbformat": "nbformat", "seaborn": "seaborn", "pandas": "pandas", "django-static-mathjax": "mathjax",
    "ghp-import": "ghp_import",
}
BOOK_MACHINERY = ("IPython", "myst_nb", "sphinx", "nbclient", "jupyter_client")
# modules that exist to execute notebooks and build the book: they need the extra
BOOK_MODULES = {"fashion_lib.pipeline"}


def _requirement_name(requirement: str) -> str:
    return re.split(r"[<>=!~ ;\[]", requirement, maxsplit=1)[0].lower()


def _pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_license_is_mit_as_pyproject_says():
    assert _pyproject()["project"]["license"] == {"text": "MIT"}
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License") and "WITHOUT WARRANTY OF ANY KIND" in text


def test_citation_cff_has_the_required_fields_and_references_the_paper():
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    # the fields CFF 1.2.0 requires, then what GitHub's "Cite this repository" shows
    for key in ("cff-version", "message", "title", "authors"):
        assert cff.get(key), f"CITATION.cff lacks {key!r}"
    assert cff["cff-version"] == "1.2.0" and cff["license"] == "MIT"
    assert cff["version"] == _pyproject()["project"]["version"]
    (paper,) = cff["references"]
    assert paper["title"] == "Apparel key-points localization by Mask R-CNN and attribute recognition"
    assert [a["family-names"] for a in paper["authors"]] == ["Allaberdiev", "Odol", "Jiang"]
    assert paper["journal"] == "International Journal of Advanced Research in Science, Engineering and Technology"
    assert (paper["volume"], paper["issue"], paper["month"], paper["year"]) == (6, 10, 10, 2019)
    assert paper["issn"] == "2350-0328"


@pytest.mark.parametrize("page", ["README.md", "book/intro.md"])
def test_the_papers_full_reference_matches_citation_cff(page):
    (paper,) = yaml.safe_load((ROOT / "CITATION.cff").read_text())["references"]
    authors = [f"{a['given-names']} {a['family-names']}" for a in paper["authors"]]
    expected = (f"{', '.join(authors[:-1])} and {authors[-1]}, \"{paper['title']}\", *{paper['journal']}*, "
                f"Vol. {paper['volume']}, Issue {paper['issue']}, October {paper['year']}, ISSN {paper['issn']}.")
    # the reference is a block quote wrapped over several lines
    text = " ".join(line.removeprefix("> ").strip() for line in (ROOT / page).read_text().splitlines())
    assert expected in text


def test_the_book_tool_chain_is_an_extra_not_a_dependency_of_the_library():
    project = _pyproject()["project"]
    base = {_requirement_name(r) for r in project["dependencies"]}
    book = {_requirement_name(r) for r in project["optional-dependencies"]["book"]}
    assert set(BOOK_IMPORTS) == book, "map each `book` requirement to its import name in BOOK_IMPORTS"
    assert not base & book
    assert {"torch", "torchvision", "timm", "pycocotools", "numpy", "matplotlib", "pyyaml"} <= base


def test_the_library_imports_without_the_book_extra():
    import fashion_lib

    modules = sorted(
        f"fashion_lib.{p.relative_to(Path(fashion_lib.__file__).parent).with_suffix('').as_posix().replace('/', '.')}"
        .removesuffix(".__init__")
        for p in Path(fashion_lib.__file__).parent.rglob("*.py")
    )
    library = [m for m in modules if m not in BOOK_MODULES]
    assert "fashion_lib.refine" in library and "fashion_lib.experiments.keypoints" in library
    blocked = sorted({*BOOK_IMPORTS.values(), *BOOK_MACHINERY})
    # the path finder is replaced by one that does not see the book's packages, as in an environment without the
    # extra: importing one raises ModuleNotFoundError, and probing for one (importlib.util.find_spec) gives None
    script = f"""
import importlib, importlib.machinery, sys
BLOCKED = {blocked!r}
class WithoutBook(importlib.machinery.PathFinder):
    @classmethod
    def find_spec(cls, name, path=None, target=None):
        return None if name.split(".")[0] in BLOCKED else super().find_spec(name, path, target)
sys.meta_path[:] = [WithoutBook if f is importlib.machinery.PathFinder else f for f in sys.meta_path]
for module in {library!r}:
    importlib.import_module(module)
# the training command line's --profile reads the notebooks' parameters: without the book extra too
from fashion_lib.train import profile_settings
assert profile_settings("smoke", "fashionai")["seeds"] == [0]
loaded = sorted({{m.split(".")[0] for m in sys.modules}} & set(BLOCKED))
assert not loaded, loaded
print("imported", len({library!r}))
"""
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, env=env,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == f"imported {len(library)}"


# The top layer: the book's pipeline, and the training command line that reads its profiles. Nothing else may
# import it, so that the library below works (and is read) without the pipeline.
TOP_LAYER = {"fashion_lib.pipeline", "fashion_lib.train"}


def _imported_modules(path: Path, module: str) -> set[str]:
    """Every module ``path`` (the module ``module``) imports, at the top or inside a function, made absolute."""
    import ast

    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            stem = ".".join([*base, node.module] if node.module else base)
            found.add(stem)
            found.update(f"{stem}.{alias.name}" for alias in node.names)
    return found


def test_no_module_below_the_top_layer_imports_the_pipeline():
    package = ROOT / "fashion_lib"
    offenders = {}
    for path in sorted(package.rglob("*.py")):
        module = ".".join(("fashion_lib", *path.relative_to(package).with_suffix("").parts)).removesuffix(".__init__")
        if module not in TOP_LAYER:
            bad = sorted(m for m in _imported_modules(path, module) if m.startswith("fashion_lib.pipeline"))
            if bad:
                offenders[module] = bad
    assert not offenders, f"modules below the top layer import it: {offenders}"


def test_the_import_scan_sees_relative_and_function_level_imports(tmp_path):
    path = tmp_path / "mod.py"
    path.write_text("def f():\n    from ..pipeline import run\n    from . import pipeline\nimport fashion_lib.io\n")
    found = _imported_modules(path, "fashion_lib.experiments.mod")
    assert {"fashion_lib.pipeline", "fashion_lib.pipeline.run", "fashion_lib.experiments.pipeline",
            "fashion_lib.io"} <= found


@pytest.fixture
def git_env(monkeypatch):
    for var in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{var}_NAME", "test")
        monkeypatch.setenv(f"GIT_{var}_EMAIL", "test@example.org")
    return os.environ


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout


@pytest.mark.skipif(shutil.which("make") is None or shutil.which("git") is None, reason="needs make and git")
@pytest.mark.parametrize("with_remote", [False, True])
def test_make_publish_puts_the_html_on_gh_pages_and_pushes_only_to_an_existing_remote(tmp_path, git_env,
                                                                                       with_remote):
    repo = tmp_path / "study"
    (repo / "_build" / "html").mkdir(parents=True)
    (repo / "_build" / "html" / "index.html").write_text("<html>the book</html>")
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "commit", "-q", "--allow-empty", "-m", "start")
    if with_remote:
        _git(tmp_path, "init", "-q", "--bare", "remote.git")
        _git(repo, "remote", "add", "origin", str(tmp_path / "remote.git"))
    venv = Path(sys.prefix)
    # -o: take the venv's book stamp as made (this interpreter has the extra; no pip install in a test)
    cmd = ["make", "-f", str(ROOT / "Makefile"), "-o", f"{venv}/.installed-book", "publish", f"VENV={venv}"]
    proc = subprocess.run(cmd, cwd=repo, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sorted(_git(repo, "ls-tree", "--name-only", "gh-pages").split()) == [".nojekyll", "index.html"]
    assert _git(repo, "show", "gh-pages:index.html") == "<html>the book</html>"
    assert _git(repo, "branch", "--show-current").strip() == "main"  # the working branch is untouched
    if with_remote:
        assert "pushed to origin" in proc.stdout
        assert "index.html" in _git(tmp_path / "remote.git", "ls-tree", "--name-only", "gh-pages")
    else:
        assert "no remote: not pushed" in proc.stdout


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_publish_without_a_built_book_says_to_build_it(tmp_path):
    venv = Path(sys.prefix)
    cmd = ["make", "-f", str(ROOT / "Makefile"), "-o", f"{venv}/.installed-book", "publish", f"VENV={venv}"]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "no _build/html/index.html; run 'make book' first" in proc.stderr


def test_the_ci_workflow_builds_the_book_and_deploys_it_to_pages():
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "book.yml").read_text())
    steps = [s for job in workflow["jobs"].values() for s in job.get("steps", [])]
    runs = " ".join(s.get("run", "") for s in steps)
    uses = [s.get("uses", "") for s in steps]
    assert "make book" in runs
    assert any(u.startswith("actions/upload-pages-artifact") for u in uses)
    assert any(u.startswith("actions/deploy-pages") for u in uses)
    upload = next(s for s in steps if s.get("uses", "").startswith("actions/upload-pages-artifact"))
    assert upload["with"]["path"] == "_build/html"
