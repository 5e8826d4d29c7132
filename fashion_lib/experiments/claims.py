"""A results page's comparisons judged and glued in one loop: the claims of pages 10 and 11 (Table 1) and 20 (Table 2).

Each comparison is a claim key naming a row and its baseline (``"nkd": (NKD, KRCNN)``). :func:`judge_claims` gets
each one's interval from the page (the page knows how it resamples), gives it a verdict, and glues it for the prose
(``diff_<key>``, ``verdict_<key>``); a comparison that is one of the paper's primary claims
(:data:`fashion_lib.primary_claims.PRIMARY_CLAIMS`, named ``<page>_<key>``) is also glued for the front page's Holm
step, or glued as not tested where its row or baseline is not trained at this scale. The differences come back keyed
by claim; :func:`labelled` names them for a verdict table by the rows' labels (:class:`fashion_lib.report.Row`).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Literal, TypeVar

from fashion_lib.intervals import CI
from fashion_lib.primary_claims import PRIMARY_CLAIMS, glue_claim, glue_not_tested
from fashion_lib.report import display_label, glue_ci, verdict

__all__ = ["judge_claims", "comparison_label", "labelled"]

V = TypeVar("V")


def comparison_label(row: str, baseline: str) -> str:
    """The words of the comparison "row minus baseline" in a verdict table: ``"<row> − <baseline>"`` by their
    labels (:func:`fashion_lib.report.display_label`)."""
    return f"{display_label(row)} − {display_label(baseline)}"


def labelled(claims: Mapping[str, tuple[str, str]], values: Mapping[str, V]) -> dict[str, V]:
    """``values`` (claim key -> a difference, a level) keyed by :func:`comparison_label` of each claim's rows
    instead, in the order of ``values``: the rows of :func:`fashion_lib.report.verdict_table`. Two claims on the
    same two rows (a page's columns) would share a label: a ValueError, not one silently dropped."""
    out: dict[str, V] = {}
    for key, value in values.items():  # over a page's few claims
        label = comparison_label(*claims[key])
        if label in out:
            raise ValueError(f"claims {key!r} and another compare the same rows ({label}): label them by hand")
        out[label] = value
    return out


def judge_claims(
    claims: Mapping[str, tuple[str, str]],
    interval: Callable[[str, str, str], CI],
    *,
    page: str,
    better: Literal["lower", "higher"],
    untested: Collection[str] = (),
    not_tested_reason: str = "",
    level: Callable[[str, str], float] | Mapping[str, float] | None = None,
    level_in_verdict: bool = False,
    scale: float = 100.0,
    diff_name: str = "diff_{key}",
    verdict_name: str = "verdict_{key}",
) -> tuple[dict[str, CI], dict[str, str]]:
    """Judge and glue every comparison of a page, in the order of ``claims``.

    Parameters
    ----------
    claims : claim key -> (row, baseline), the comparison "row minus baseline".
    interval : ``(key, row, baseline) -> CI`` of row minus baseline; called once per tested claim, in order (a page
        whose bootstrap draws from one generator gets the draws it would get in its own loop).
    page : the primary claims' prefix (``"t1_fashionai"``): ``<page>_<key>`` of :data:`PRIMARY_CLAIMS` are glued
        with :func:`fashion_lib.primary_claims.glue_claim`.
    better : ``"lower"`` (NE) or ``"higher"`` (AP).
    untested : rows this profile does not compute; a claim on one has no interval and no verdict, and a primary
        one is glued as not tested with ``not_tested_reason``.
    level : ``(row, baseline) -> float``, the baseline's own score, for the primary claims' relative size (and,
        with ``level_in_verdict``, for :func:`fashion_lib.report.verdict`'s floor), or a mapping claim key ->
        that score where claims on the same two rows compare different columns; None (or a key not in the
        mapping): no level.
    scale : the factor of the glued ``diff_<key>`` figures (100: points of %).
    diff_name, verdict_name : the glue names of a claim's difference and verdict, format strings of ``key``
        (``"diff_map_{key}"`` where a page glues the differences of two metrics).

    Returns
    -------
    differences : claim key -> CI, verdicts : claim key -> verdict words, for the tested claims (:func:`labelled`
    names the differences for a verdict table).
    """
    from myst_nb import glue

    if untested and not not_tested_reason:
        raise ValueError(f"untested rows {[str(r) for r in untested]} need a not_tested_reason for the claims they "
                         "leave out")
    primary = {c.key for c in PRIMARY_CLAIMS}
    differences: dict[str, CI] = {}
    verdicts: dict[str, str] = {}
    for key, (row, baseline) in claims.items():  # over the page's few comparisons
        name = f"{page}_{key}"
        if row in untested or baseline in untested:  # no such row at this scale: no difference, no verdict
            if name in primary:
                glue_not_tested(name, not_tested_reason)
            continue
        ci = differences[key] = interval(key, row, baseline)
        base = level.get(key) if isinstance(level, Mapping) else level(row, baseline) if level is not None else None
        if name in primary:  # the baseline's own score: the base of the relative size question
            glue_claim(name, ci, level=base)
        verdicts[key] = verdict(ci, better=better, level=base if level_in_verdict else None)
        glue_ci(diff_name.format(key=key), ci, scale=scale)
        glue(verdict_name.format(key=key), verdicts[key], display=False)
    return differences, verdicts
