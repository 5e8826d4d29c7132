"""The README's example commands, read from README.md itself, so that the tests run what the README says (issue 21).

A command is a line of a fenced code block (lines ending in ``\\`` continue it), or an inline code span
(```` `python -m ...` ````), under the README heading the test names; it comes back split as a shell splits it.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def section(heading: str) -> str:
    """The text under the ``## heading`` of README.md, up to the next heading of that level or above."""
    text = README.read_text()
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^#{{1,2}} |\Z)", text, re.M | re.S)
    if match is None:
        raise AssertionError(f"README.md has no section '## {heading}'")
    return match.group(1)


def commands(heading: str, program: str) -> list[list[str]]:
    """The commands of the section's fenced blocks whose first words are ``program`` (e.g. ``"papermill"``)."""
    found = []
    for block in re.findall(r"^```\w*\n(.*?)^```", section(heading), re.M | re.S):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words[:len(program.split())] == program.split():
                found.append(words)
    return found


def inline_commands(heading: str, program: str) -> list[list[str]]:
    """The section's inline code spans that start with ``program``, split."""
    prose = re.sub(r"^```.*?^```", "", section(heading), flags=re.M | re.S)  # fenced blocks are not spans
    spans = re.findall(r"`([^`]+)`", prose.replace("\n", " "))
    return [shlex.split(span) for span in spans if span.startswith(program + " ")]
