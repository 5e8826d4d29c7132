"""Profiles and the notebooks' parameters: which values every notebook of the book runs with.

Each experiment is a jupytext percent ``.py`` file in ``notebooks/`` with one cell tagged ``parameters`` whose
lines are literal assignments (``seed = 0``). A profile (``notebooks/profiles/<name>.yaml``) sets parameters::

    all:                    # every notebook that declares the name
      seeds: [0, 1, 2]
    01_data_tour:           # one notebook
      num_samples: 16

Names are checked against the notebooks' ``parameters`` cells and values against the defaults' types, so a typo
stops the run with a message naming the profile, the notebook and the parameter. ``-p name value`` on the
command line overrides any value (``-p 01_data_tour.num_samples 8`` for one notebook only).

:mod:`fashion_lib.pipeline` runs the notebooks with these values; ``python -m fashion_lib.train --profile`` reads
them too (:func:`notebook_parameters`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from fashion_lib.io import read_text
from fashion_lib.parameters import ParameterError, literal_assignments, parameters_cell
from fashion_lib.provenance import find_repo_root

__all__ = [
    "ProfileError",
    "Notebook",
    "RUNNER_PARAMETERS",
    "read_parameters",
    "discover_notebooks",
    "Profile",
    "load_profile",
    "resolve_parameters",
    "profile_path",
    "notebook_parameters",
]


# Parameters the runner passes to every notebook that declares them; they never come from a profile.
RUNNER_PARAMETERS = ("run_info",)


class ProfileError(ValueError):
    """A profile or a command-line override names an unknown parameter or gives a value of the wrong type."""


@dataclass(frozen=True)
class Notebook:
    """One experiment notebook and the parameters its ``parameters`` cell declares."""

    path: Path
    """The jupytext percent source, ``notebooks/NN_name.py``."""
    defaults: Mapping[str, Any]
    """Parameter name -> default value, in declaration order."""

    @property
    def name(self) -> str:
        """The notebook's stem, e.g. ``"00_keypoint_schemas"``; also its key in profiles."""
        return self.path.stem


def read_parameters(path: Path) -> dict[str, Any]:
    """Names and default values of the cell tagged ``parameters`` in the jupytext notebook ``path``.

    Every statement of that cell must be ``name = <literal>``; anything else is an error naming the line, because
    the runner could not check or override it.
    """
    try:
        return literal_assignments(parameters_cell(read_text(path)))
    except ParameterError as err:
        raise ProfileError(f"{path}: {err}") from None


def discover_notebooks(root: Path, only: Sequence[str] = ()) -> list[Notebook]:
    """The notebooks of ``root/notebooks`` in name order, or those named in ``only`` (stems)."""
    paths = sorted((root / "notebooks").glob("[0-9][0-9]_*.py"))
    notebooks = [Notebook(p, read_parameters(p)) for p in paths]
    if only:
        known = {nb.name for nb in notebooks}
        unknown = [name for name in only if name not in known]
        if unknown:
            raise ProfileError(f"--only: unknown notebook(s) {unknown}; valid: {sorted(known)}")
        notebooks = [nb for nb in notebooks if nb.name in only]
    return notebooks


class Profile(dict):
    """A profile as read by :func:`load_profile`: section -> {parameter: value}, plus where each key was written."""

    def __init__(self, data: Mapping[str, Mapping[str, Any]], lines: Mapping[tuple[str, ...], int]) -> None:
        super().__init__(data)
        self.lines = dict(lines)
        """``(section,)`` or ``(section, parameter)`` -> 1-based line of the key in the file."""

    def where(self, name: str, *keys: str) -> str:
        """``name``, with `` line N`` when the line of ``keys`` is known."""
        line = self.lines.get(tuple(keys))
        return f"{name} line {line}" if line else name


class _ProfileLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key written twice in one mapping (plain YAML keeps the last silently)."""

    source = "profile"

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise ProfileError(f"{self.source} line {line}: key {key!r} is written twice (first on line "
                                   f"{seen[key]}); YAML would keep only the last silently")
            seen[key] = line
        return super().construct_mapping(node, deep)


def _key_lines(node: yaml.Node | None) -> dict[tuple[str, ...], int]:
    """``(section,)`` and ``(section, parameter)`` -> 1-based line, from the composed YAML tree of a profile."""
    lines: dict[tuple[str, ...], int] = {}
    if not isinstance(node, yaml.MappingNode):
        return lines
    for key, value in node.value:
        lines[(str(key.value),)] = key.start_mark.line + 1
        if isinstance(value, yaml.MappingNode):
            for sub, _ in value.value:
                lines[(str(key.value), str(sub.value))] = sub.start_mark.line + 1
    return lines


def load_profile(path: Path) -> Profile:
    """Read a profile file: a mapping of ``all`` and notebook names to mappings of parameter values.

    Raises :class:`ProfileError` naming the file (and the line) when it is missing, not UTF-8, not YAML, writes a
    key twice, or is not a mapping of mappings. Section names are checked against the notebooks by
    :func:`resolve_parameters`, which names the lines recorded here.
    """
    if not path.is_file():
        available = sorted(p.stem for p in path.parent.glob("*.yaml"))
        raise ProfileError(f"profile file {path} does not exist; available profiles: {available}")
    try:
        text = read_text(path)
    except ValueError as err:
        raise ProfileError(str(err)) from None
    loader = _ProfileLoader(text)
    loader.source = str(path)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else {}
    except yaml.YAMLError as err:
        raise ProfileError(f"{path}: not valid YAML: {err}") from None
    finally:
        loader.dispose()
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ProfileError(f"{path}: expected a mapping of 'all' and notebook names, got {type(data).__name__}")
    lines = _key_lines(node)
    for section, values in data.items():
        if not isinstance(values, dict) and values is not None:
            raise ProfileError(f"{path} line {lines.get((str(section),), '?')}: section {section!r} must be a "
                               "mapping of parameter: value")
    return Profile({str(k): dict(v or {}) for k, v in data.items()}, lines)


def _type_problem(default: Any, value: Any) -> str | None:
    """Why ``value`` cannot replace ``default`` (None when it can): the same type (an int for a float default),
    list elements each of a type among the default's elements, mapping fields among the default's with values
    of their types."""
    if default is None or value is None:
        return None
    if isinstance(default, bool) or isinstance(value, bool):
        ok = isinstance(default, bool) and isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, int | float)
    elif isinstance(default, list | tuple):
        if not isinstance(value, list | tuple):
            return f"must be a list like its default {default!r}, got {value!r} ({type(value).__name__})"
        for i, element in enumerate(value):
            if default and all(_type_problem(d, element) for d in default):
                kinds = sorted({type(d).__name__ for d in default})
                return (f"element [{i}] = {element!r} ({type(element).__name__}) must be a {' or '.join(kinds)} like "
                        f"the elements of its default {default!r}")
        return None
    elif isinstance(default, dict):
        if not isinstance(value, dict):
            return f"must be a mapping like its default {default!r}, got {value!r} ({type(value).__name__})"
        for field, item in value.items():
            if field not in default:
                return f"has no field {field!r}; valid: {list(default)}"
            problem = _type_problem(default[field], item)
            if problem:
                return f"field {field!r} {problem}"
        return None
    else:
        ok = isinstance(value, type(default))
    if ok:
        return None
    return f"must be a {type(default).__name__} like its default {default!r}, got {value!r} ({type(value).__name__})"


def _layered(default: Any, below: Any, value: Any) -> Any:
    """The value a layer gives a parameter: a mapping given in part (``-p detector '{train_steps: 800}'``) keeps
    the fields it does not name from the layer below it (the ``all`` section under a notebook's section, both
    under ``-p``, the notebook's default under all of them); any other value replaces the one below."""
    if isinstance(default, dict) and isinstance(value, dict):
        return {**(below if isinstance(below, dict) else default), **value}
    return value


def _check(where: str, notebook: Notebook, name: str, value: Any) -> None:
    if name in RUNNER_PARAMETERS:
        raise ProfileError(f"{where}: parameter {name!r} is set by the runner, not by a profile")
    if name not in notebook.defaults:
        valid = [n for n in notebook.defaults if n not in RUNNER_PARAMETERS]
        raise ProfileError(f"{where}: notebook {notebook.name!r} has no parameter {name!r}; valid: {valid}")
    problem = _type_problem(notebook.defaults[name], value)
    if problem:
        raise ProfileError(f"{where}: parameter {name!r} of notebook {notebook.name!r} {problem}")


def _is_notebook_name(section: str) -> bool:
    return section[:2].isdigit() and section[2:3] == "_"


def resolve_parameters(
    notebooks: Sequence[Notebook],
    profile: Mapping[str, Mapping[str, Any]],
    overrides: Sequence[tuple[str, str]] = (),
    *,
    profile_name: str = "profile",
    known: Sequence[str] | None = None,
) -> dict[str, dict[str, Any]]:
    """Parameters per notebook: the profile's ``all`` section, its notebook section, then ``overrides``.

    ``overrides`` are ``(name, value)`` string pairs from ``-p``; ``value`` is parsed as YAML (``3``, ``0.5``,
    ``[0, 1]``, ``true``); ``name`` may be ``notebook.name`` to address one notebook. ``known`` names every notebook
    that exists (default: those of ``notebooks``): a section for one of them outside ``notebooks`` (``--only``) is
    skipped, a section for any other name is an error. Values are checked against the notebook's defaults: the
    type, each list element, each field of a mapping. Raises :class:`ProfileError` naming the profile (with the
    line, for a :class:`Profile` read by :func:`load_profile`), notebook and parameter.
    """
    by_name = {nb.name: nb for nb in notebooks}
    exists = set(by_name) | set(known or ())
    at = profile.where if isinstance(profile, Profile) else lambda name, *keys: name
    params: dict[str, dict[str, Any]] = {nb.name: {} for nb in notebooks}
    for section, values in profile.items():
        if section == "all":
            for name, value in values.items():
                takers = [nb for nb in notebooks if name in nb.defaults]
                if not takers:
                    raise ProfileError(f"{at(profile_name, section, name)}: 'all' sets {name!r}, which no notebook "
                                       "declares")
                for nb in takers:
                    _check(f"{at(profile_name, section, name)} (all)", nb, name, value)
                    params[nb.name][name] = _layered(nb.defaults[name], params[nb.name].get(name), value)
        elif section in by_name:
            for name, value in values.items():
                _check(f"{at(profile_name, section, name)} ({section})", by_name[section], name, value)
                params[section][name] = _layered(by_name[section].defaults[name], params[section].get(name), value)
        elif not _is_notebook_name(section):
            raise ProfileError(f"{at(profile_name, section)}: unknown section {section!r}; valid: 'all' or a "
                               "notebook name")
        elif section not in exists:
            raise ProfileError(f"{at(profile_name, section)}: section {section!r} names no notebook (a typo would "
                               f"run the notebook with its own defaults); notebooks: {sorted(exists)}")
        # else: a section for a notebook outside --only, skipped
    for raw_name, raw_value in overrides:
        try:
            value = yaml.safe_load(raw_value)
        except yaml.YAMLError as err:
            raise ProfileError(f"-p {raw_name} {raw_value}: value is not valid YAML: {err}") from None
        target, _, name = raw_name.rpartition(".")
        if target:
            if target not in by_name:
                raise ProfileError(f"-p {raw_name}: unknown notebook {target!r}; valid: {sorted(by_name)}")
            takers = [by_name[target]]
        else:
            takers = [nb for nb in notebooks if name in nb.defaults]
            if not takers:
                raise ProfileError(f"-p {raw_name}: no notebook declares a parameter {name!r}")
        for nb in takers:
            _check(f"-p {raw_name}", nb, name, value)
            params[nb.name][name] = _layered(nb.defaults[name], params[nb.name].get(name), value)
    return params


def profile_path(root: Path, profile: str) -> Path:
    """The file of the profile called ``profile``: ``root/notebooks/profiles/<profile>.yaml``."""
    return root / "notebooks" / "profiles" / f"{profile}.yaml"


def notebook_parameters(profile: str, overrides: Sequence[tuple[str, str]] = (), *, root: Path | None = None
                        ) -> dict[str, dict[str, Any]]:
    """Every parameter each notebook runs with under ``profile``: its defaults, then what :func:`resolve_parameters`
    sets. Lets code outside the book (``python -m fashion_lib.train --profile``) use the values a notebook gets."""
    root = find_repo_root(root)
    path = profile_path(root, profile)
    notebooks = discover_notebooks(root)
    params = resolve_parameters(notebooks, load_profile(path), overrides, profile_name=str(path))
    return {nb.name: {**nb.defaults, **params[nb.name]} for nb in notebooks}
