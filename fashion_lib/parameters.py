"""A notebook's parameters: the literal assignments of its cell tagged ``parameters``, and the values papermill
injected after it.

Papermill (the pipeline's executor, and the tool a user runs by hand) overrides parameters by inserting a cell
``# Parameters\\nname = value`` right after the ``parameters`` cell. Its command line passes ``-p name value`` values
as strings unless they read as a number or a boolean, so ``-p seeds '[0]'`` gives the string ``"[0]"``;
:func:`coerce_injected` parses such a string when the notebook's default is a list, a mapping or a number, and
refuses it by name when it does not parse to that type. ``-y 'seeds: [0]'`` passes typed YAML and needs no parsing.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

__all__ = ["ParameterError", "INJECTED_COMMENT", "parameters_cell", "literal_assignments", "injected_parameters",
           "coerce_injected"]

# The first line of the cell papermill inserts (papermill.translators.PythonTranslator.codify).
INJECTED_COMMENT = "# Parameters"


class ParameterError(ValueError):
    """A parameters cell that cannot be read, or an injected value that does not fit the parameter's default."""


# A cell marker of a jupytext percent script: "# %%", optionally a title, "[markdown]" and metadata ("tags=[...]").
_CELL_MARKER = re.compile(r"^# %%(?!%)(?P<rest>.*)$")
_PARAMETERS_TAG = re.compile(r"""\btags\s*=\s*\[[^\]]*["']parameters["']""")


def parameters_cell(text: str) -> str:
    """The source of the cell tagged ``parameters`` in a jupytext percent script (``# %% tags=["parameters"]``).

    Read as plain text, without jupytext (a book-only dependency), so that code outside the book (the training
    command line's ``--profile``) reads the same defaults the notebooks have. Raises :class:`ParameterError` unless
    exactly one cell carries the tag.
    """
    cells: list[list[str]] = []
    current: list[str] | None = None
    for line in text.splitlines():
        marker = _CELL_MARKER.match(line)
        if marker:
            current = [] if _PARAMETERS_TAG.search(marker["rest"]) else None
            if current is not None:
                cells.append(current)
        elif current is not None:
            current.append(line)
    if len(cells) != 1:
        raise ParameterError(f"expected exactly one cell tagged 'parameters', found {len(cells)}")
    return "\n".join(cells[0]).strip("\n")


def literal_assignments(source: str) -> dict[str, Any]:
    """Names and values of a cell made of ``name = <literal>`` lines, in order.

    Raises :class:`ParameterError` naming the line of a statement that is anything else (the caller adds the file).
    """
    try:
        tree = ast.parse(source)
    except SyntaxError as err:
        raise ParameterError(f"parameters cell does not parse: {err}") from None
    values: dict[str, Any] = {}
    for stmt in tree.body:
        if not (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name)):
            raise ParameterError(f"parameters cell line {stmt.lineno}: expected 'name = <literal>'")
        try:
            values[stmt.targets[0].id] = ast.literal_eval(stmt.value)
        except ValueError:
            raise ParameterError(
                f"parameters cell line {stmt.lineno}: the default of {stmt.targets[0].id!r} is not a literal"
            ) from None
    return values


def injected_parameters(history: Sequence[str]) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """``(defaults, injected)`` read from a kernel's executed cell sources (IPython's ``In``), oldest first.

    ``injected`` holds the values of the last cell papermill inserted (``{}`` when none was: the notebook runs with
    its defaults); ``defaults`` those of the cell executed just before it, the notebook's ``parameters`` cell, or
    None when there is no injected cell or that cell is not made of literal assignments.
    """
    for i in range(len(history) - 1, -1, -1):
        if history[i].lstrip().startswith(INJECTED_COMMENT):
            injected = literal_assignments(history[i])
            try:
                defaults = literal_assignments(history[i - 1]) if i > 0 else None
            except ParameterError:
                defaults = None
            return defaults, injected
    return None, {}


def _fits(default: Any, value: Any) -> bool:
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int | float):
        return isinstance(value, int | float) and not isinstance(value, bool)
    if isinstance(default, list | tuple):
        return isinstance(value, list | tuple)
    return isinstance(value, type(default))


def coerce_injected(defaults: Mapping[str, Any], injected: Mapping[str, Any]) -> dict[str, Any]:
    """``injected`` with each string given for a non-string default parsed as YAML (``"[0, 1]"`` -> ``[0, 1]``).

    Raises :class:`ParameterError` naming the parameter when a name is not among ``defaults`` or a string does not
    parse to the default's type. A default of None takes any value; a string default keeps the string.
    """
    out = dict(injected)
    unknown = [name for name in injected if name not in defaults]
    if unknown:
        raise ParameterError(f"parameter(s) {unknown} injected, but the notebook's parameters cell declares only "
                             f"{list(defaults)}")
    for name, value in injected.items():
        default = defaults[name]
        if not isinstance(value, str) or default is None or isinstance(default, str):
            continue
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError:
            parsed = value
        if not _fits(default, parsed):
            raise ParameterError(
                f"parameter {name!r} = {value!r}: expected a {type(default).__name__} like its default {default!r}; "
                f"give it as YAML, e.g. papermill -y '{name}: {json.dumps(default)}'"
            )
        out[name] = parsed
    return out
