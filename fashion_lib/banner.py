"""The banner at the top of every page of the book: which profile, commit, seeds, validation sizes and device built
the results it shows, and when; on a ``smoke`` build, a warning that its numbers are meaningless.

The facts are read from the executed notebooks themselves (the metadata the pipeline stores in each), not from the
command that builds the book, so a page taken from the cache is described by the run that computed it; pages built
by different runs show every value they were built with. :func:`banner_html` renders the facts as the theme's
announcement (``html.announcement`` of Jupyter Book's ``_config.yml``, sphinx-book-theme's banner), which the
pipeline sets in a generated copy of the configuration at build time.
"""

from __future__ import annotations

import html
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["BuildFacts", "collect_facts", "read_executed", "banner_html", "MEANINGLESS_PROFILES"]

# Profiles whose numbers say nothing about the paper's claims: the banner warns on every page.
MEANINGLESS_PROFILES = {"smoke": "a few training steps on a few images: it only checks that every page runs"}


@dataclass(frozen=True)
class BuildFacts:
    """What built the result pages of a book; each field counts pages (notebooks) per distinct value."""

    profiles: Mapping[str, int]
    """Profile name -> pages built with it (``none (run by hand)`` for a notebook papermill ran alone)."""
    commits: Mapping[str, int]
    """Short commit, with ``+dirty`` for uncommitted changes -> pages."""
    seeds: Mapping[str, int]
    """Seeds as written (``0, 1, 2``) -> pages that train or sample with seeds."""
    val_images: Mapping[int, int]
    """Validation images per notebook (``val_images``) -> pages that evaluate on a validation set."""
    devices: Mapping[str, int]
    """Device description -> pages."""
    date: str
    """The build's date (UTC, ``YYYY-MM-DD``)."""


def collect_facts(executed: Mapping[str, Mapping[str, Any]], defaults: Mapping[str, Mapping[str, Any]],
                  date: str) -> BuildFacts:
    """Facts of the pages whose notebooks' metadata is ``executed`` (notebook name -> the ``fashion_lib`` metadata
    the pipeline stores: ``profile``, ``commit``, ``dirty``, ``parameters``, ``device``); ``defaults`` gives each
    notebook's declared defaults, for the parameters its run left at their default."""
    profiles, commits, seeds, val_images, devices = Counter(), Counter(), Counter(), Counter(), Counter()
    for name, meta in executed.items():
        params = {**defaults.get(name, {}), **meta.get("parameters", {})}
        profiles[str(meta.get("profile", "unknown"))] += 1
        commits[str(meta.get("commit", "unknown"))[:10] + ("+dirty" if meta.get("dirty") else "")] += 1
        devices[str(meta.get("device", "unknown"))] += 1
        if isinstance(params.get("seeds"), list | tuple):
            seeds[", ".join(map(str, params["seeds"]))] += 1
        if isinstance(params.get("val_images"), int):
            val_images[params["val_images"]] += 1
    return BuildFacts(dict(profiles), dict(commits), dict(seeds), dict(val_images), dict(devices), date)


def read_executed(results: Path, names: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The ``fashion_lib`` metadata of each executed notebook ``results/<name>.ipynb`` that exists."""
    out = {}
    for name in names:
        path = results / f"{name}.ipynb"
        if path.is_file():
            out[name] = json.loads(path.read_text()).get("metadata", {}).get("fashion_lib", {})
    return out


def _pages(n: int) -> str:
    return f"{n} page" if n == 1 else f"{n} pages"


def _values(counts: Mapping[Any, int]) -> str:
    """One value alone; several each with its page count, the most common first."""
    if len(counts) <= 1:
        return str(next(iter(counts), "none"))
    return "; ".join(f"{value} ({_pages(n)})" for value, n in sorted(counts.items(), key=lambda kv: -kv[1]))


def _span(counts: Mapping[int, int]) -> str:
    low, high = min(counts, default=None), max(counts, default=None)
    return "none" if low is None else str(low) if low == high else f"{low} to {high}, by experiment"


def banner_html(facts: BuildFacts) -> str:
    """The banner as one HTML fragment (escaped), with a warning line for a meaningless profile or mixed builds."""
    def tagged(counts: Mapping[str, int], note=lambda value: "") -> str:
        return "; ".join(f"<code>{html.escape(value)}</code>{note(value)}"
                         + (f" ({_pages(n)})" if len(counts) > 1 else "") for value, n in counts.items())

    parts = [
        "profile " + tagged(facts.profiles),
        "commit " + tagged(facts.commits, lambda c: " (uncommitted changes)" if c.endswith("+dirty") else ""),
        "seeds " + html.escape(_values(facts.seeds)),
        "validation images " + html.escape(_span(facts.val_images)),
        "device " + html.escape(_values(facts.devices)),
        "built " + html.escape(facts.date),
    ]
    lines = ['<div class="fashion-lib-banner">', "<p>Results of this book: " + " · ".join(parts) + ".</p>"]
    warnings = [f"<strong>{html.escape(p)} build: the numbers are meaningless</strong> ({html.escape(why)})."
                for p, why in MEANINGLESS_PROFILES.items() if p in facts.profiles]
    if len(facts.profiles) > 1:
        warnings.append("<strong>Pages built with different profiles</strong>: compare them with care.")
    if warnings:
        lines.append('<p class="fashion-lib-banner-warning">' + " ".join(warnings) + "</p>")
    lines.append("</div>")
    return "".join(lines)
