"""Turning measurements into the book's sentences: verdicts from intervals, and numbers formatted for glue.

A claim of the paper is "method B improves on method A". The study's verdict rests on the interval of the
difference B - A over seeds and images (:func:`fashion_lib.intervals.crossed_bootstrap_ci`), never on the sign of a
mean, and asks two questions:

1. **Zero**: does the difference exclude zero? **supports** (on the improving side), **contradicts** (on the
   worsening side) or **cannot decide**; when the interval's half-width (about the smallest effect the study could
   tell from zero) exceeds the paper's own effect, "cannot decide: this profile is too small to see an effect of
   the paper's size".
2. **Size**: is it the paper's effect? **consistent with the paper's size** (the interval holds the paper's value),
   **smaller than the paper reports** (the interval lies on the weak side of it) or **larger**.

The paper's claims that the front page lists, judged together with Holm's correction, are
:mod:`fashion_lib.primary_claims`'s; every other comparison in the book is *exploratory*: judged here by
:func:`verdict`, uncorrected, and labelled so on its page (:data:`EXPLORATORY`). This module imports only
:mod:`fashion_lib.metrics`; :mod:`fashion_lib.primary_claims` imports it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, Literal

import torch

from fashion_lib.intervals import CI, crossed_bootstrap_ci

__all__ = ["SUPPORTS", "CONTRADICTS", "UNDECIDED", "verdict", "format_ci", "format_mean_sd", "mean_sd", "glue_ci",
           "MethodScore", "score_methods", "comparison_table", "verdict_table", "ZeroVerdict", "SizeVerdict",
           "EXPLORATORY", "NOT_TESTED", "TOO_WEAK", "NOT_MOVED", "LEVEL_FLOOR", "too_weak", "format_count",
           "axis_share_sentence", "Row", "display_label"]

class _Labelled(Enum):
    @property
    def label(self) -> str:
        """The words the book prints."""
        return self.value


class Row(str, Enum):
    """A row of a results table (a method, a detector, a refiner variant): the member's value is a short, stable key
    (dictionary keys, glue names, cache keys; ``"krcnn"``), ``label`` the words the book prints for it
    (``"Keypoint R-CNN"``). A ``str`` that equals its value, so a key read back from a file or typed by a user
    finds the member; subclasses list their members as ``NAME = "key", "label"``, in display order."""

    label: str

    def __new__(cls, value: str, label: str) -> Row:
        member = str.__new__(cls, value)
        member._value_ = value
        member.label = label
        return member

    # ``str()`` and f-strings give the key, as ``enum.StrEnum`` (Python 3.11) does, on Python 3.10 too
    __str__ = str.__str__
    __format__ = str.__format__


def display_label(key: Any) -> str:
    """The words the book prints for a table's row key: a :class:`Row`'s ``label``, anything else as ``str``."""
    return key.label if isinstance(key, Row) else str(key)


class ZeroVerdict(_Labelled):
    """Does the difference exclude zero? ``.label`` is the sentence the book prints."""

    SUPPORTS = "supports"
    CONTRADICTS = "contradicts"
    UNDECIDED = "cannot decide"
    TOO_SMALL = "cannot decide: this profile is too small to see an effect of the paper's size"
    NOT_MEASURED = "not measured in this build"
    NOT_TESTED = "not tested at this scale"  # the profile chose not to measure it (NotTested says why)
    TOO_WEAK = "too weak to carry a verdict"  # the baseline's own level is below LEVEL_FLOOR
    NOT_MOVED = "not moved"  # the method left every point compared where it was: no change to judge


class SizeVerdict(_Labelled):
    """How the difference compares with the paper's effect; ``.label`` is the sentence the book prints."""

    CONSISTENT = "consistent with the paper's size"
    SMALLER = "smaller than the paper reports"
    LARGER = "larger than the paper reports"


SUPPORTS = ZeroVerdict.SUPPORTS.label
CONTRADICTS = ZeroVerdict.CONTRADICTS.label
UNDECIDED = ZeroVerdict.UNDECIDED.label
NOT_TESTED = ZeroVerdict.NOT_TESTED.label
TOO_WEAK = ZeroVerdict.TOO_WEAK.label
NOT_MOVED = ZeroVerdict.NOT_MOVED.label
# A higher-is-better score (AP, a fraction) whose baseline lies below this floor carries no verdict: at 7 % AP
# the detector finds almost none of the persons of that size, so a change of it says nothing about the refiner.
LEVEL_FLOOR = 0.10
# the words every page puts beside a comparison outside the primary family
EXPLORATORY = "exploratory: uncorrected for multiple comparisons"


def _check_better(better: str) -> float:
    """+1 where higher is better, -1 where lower is: the sign that turns a difference into an improvement."""
    if better not in ("lower", "higher"):
        raise ValueError(f"better must be 'lower' or 'higher', got {better!r}")
    return 1.0 if better == "higher" else -1.0


def too_weak(level: float, *, floor: float = LEVEL_FLOOR) -> bool:
    """Whether a baseline's own score ``level`` (a fraction, higher is better) is too low to judge a change of it:
    below ``floor`` (:data:`LEVEL_FLOOR`), or not finite (pycocotools' -1 or NaN for an empty size range)."""
    return not (math.isfinite(level) and level >= floor)


def verdict(difference: CI, *, better: Literal["lower", "higher"], level: float | None = None) -> str:
    """The verdict on "B improves on A" from the interval of ``B - A``.

    Parameters
    ----------
    difference : CI
        Estimate and interval of the metric of B minus that of A.
    better : ``"lower"`` (errors such as NE) or ``"higher"`` (AP, accuracy, recall).
    level : float, optional
        A's own score (higher is better, a fraction); when :func:`too_weak`, the verdict is :data:`TOO_WEAK`.

    Returns
    -------
    str
        :data:`SUPPORTS`, :data:`CONTRADICTS` or :data:`UNDECIDED` (also for an interval that is not finite), or
        :data:`TOO_WEAK`: the uncorrected verdict of an exploratory comparison (a primary claim's goes through
        :func:`judge_family`).
    """
    sign = _check_better(better)
    if level is not None and too_weak(level):
        return TOO_WEAK
    low, high = difference.low, difference.high
    if not (math.isfinite(low) and math.isfinite(high)):
        return UNDECIDED
    lo, hi = sorted((sign * low, sign * high))  # the improvement's interval, positive = better
    if lo > 0:
        return SUPPORTS
    if hi < 0:
        return CONTRADICTS
    return UNDECIDED


def axis_share_sentence(axis_share: CI, second: CI, *, better: Literal["lower", "higher"], unit: str,
                        scale: float = 1.0, digits: int = 2) -> str:
    """The page's sentence on what drives the two-scale method: ``axis_share`` is New-key-detection minus the
    detector run twice without the axis (the symmetry prior's own share of the composite), ``second`` the latter
    minus the detector alone (the second detection's share); both in the metric's units before ``scale``."""
    share = verdict(axis_share, better=better)
    words = {SUPPORTS: "adds to", CONTRADICTS: "takes from", UNDECIDED: "cannot be told apart from"}[share]
    text = (f"Against the detector run twice without the axis, New-key-detection changes {unit} by "
            f"{format_ci(axis_share, scale=scale, digits=digits, signed=True)}: the axis {words} what the second "
            f"detection does alone ({format_ci(second, scale=scale, digits=digits, signed=True)} against the "
            f"detector); {EXPLORATORY}.")
    if share == UNDECIDED and verdict(second, better=better) != UNDECIDED:
        # the interval's end on the improving side bounds what the axis can have added
        most = (axis_share.high if better == "higher" else -axis_share.low) * scale
        text += (f" The second detection changes {unit} without the axis; the interval leaves the axis at most "
                 f"{max(most, 0.0):.{digits}f} {unit} of New-key-detection's change.")
    return text


def mean_sd(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (``nan`` for fewer than two values) of per-seed results."""
    vals = [float(v) for v in values]
    if not vals:
        raise ValueError("values: give at least one number")
    mean = sum(vals) / len(vals)
    if len(vals) < 2:
        return mean, math.nan
    var = sum((v - mean) ** 2 for v in vals) / (len(vals) - 1)
    return mean, math.sqrt(var)


def format_ci(ci: CI, *, scale: float = 1.0, digits: int = 2, signed: bool = False) -> str:
    """``"10.96 [10.10, 11.80]"``: the estimate and its interval, times ``scale`` (100 for percent)."""
    sign = "+" if signed else ""
    return (f"{ci.estimate * scale:{sign}.{digits}f} [{ci.low * scale:{sign}.{digits}f}, "
            f"{ci.high * scale:{sign}.{digits}f}]")


def format_count(n: int, total: int) -> str:
    """``n`` of ``total`` as the page prints it: ``"12/40 (30 %)"`` (``"0/0"`` when there is nothing to count)."""
    if not 0 <= n <= total:
        raise ValueError(f"format_count needs 0 <= n <= total, got n={n}, total={total}")
    return f"{n}/{total}" + (f" ({100 * n / total:.0f} %)" if total else "")


def format_mean_sd(values: Sequence[float], *, scale: float = 1.0, digits: int = 2) -> str:
    """``"10.96 ± 0.31"`` over seeds (just the mean with one seed)."""
    mean, sd = mean_sd(values)
    if math.isnan(sd):
        return f"{mean * scale:.{digits}f}"
    return f"{mean * scale:.{digits}f} ± {sd * scale:.{digits}f}"


def glue_ci(key: str, ci: CI, *, scale: float = 1.0) -> None:
    """Glue ``key``, ``key_low`` and ``key_high`` as plain floats (times ``scale``) for the book's prose, and
    ``key_method``, the words naming how the interval was built."""
    from myst_nb import glue

    glue(key, float(ci.estimate * scale), display=False)
    glue(f"{key}_low", float(ci.low * scale), display=False)
    glue(f"{key}_high", float(ci.high * scale), display=False)
    if ci.method is not None:
        glue(f"{key}_method", ci.method.label, display=False)


@dataclass(frozen=True)
class MethodScore:
    """One method's metric over seeds, with its interval over seeds and images."""

    per_seed: tuple[float, ...]  # the metric of each seed
    ci: CI  # mean over seeds and its interval (fashion_lib.intervals.crossed_bootstrap_ci)


def score_methods(
    arrays: Mapping[str, Sequence[Sequence[Any]]],
    metric: Callable[..., float],
    *,
    n_boot: int,
    generator: torch.Generator,
    weighted: bool = False,
) -> dict[str, MethodScore]:
    """``metric`` of every method, per seed and as the mean over seeds with its interval.

    Parameters
    ----------
    arrays : method -> per seed, the arguments of ``metric`` (e.g. ``fashion_lib.experiments.keypoints.ne_arrays``).
    metric : callable on one seed's arguments.
    n_boot, generator, weighted : as in :func:`fashion_lib.intervals.crossed_bootstrap_ci`.
    """
    out = {}
    for name, per_seed in arrays.items():  # over the few methods of a table
        values = tuple(float(metric(*args)) for args in per_seed)
        out[name] = MethodScore(values, crossed_bootstrap_ci(metric, per_seed, n_boot=n_boot, generator=generator,
                                                                   weighted=weighted))
    return out


def comparison_table(
    scores: Mapping[str, MethodScore],
    paper: Mapping[str, float | None],
    *,
    scale: float = 1.0,
    digits: int = 2,
    unit: str = "",
    not_tested: Sequence[str] = (),
):
    """The paper's figure beside ours, one row per method (a pandas DataFrame for the notebook to show).

    ``paper`` maps a method to the paper's number (``None``: the paper has no such row); ours are shown as the mean
    ± sd over seeds and that mean with its 95 % interval over seeds and images, times ``scale``. ``not_tested``:
    methods this profile does not run (absent from ``scores``), listed after the others with :data:`NOT_TESTED`
    in place of ours.
    """
    import pandas as pd

    measured = sorted(set(not_tested) & set(scores))
    if measured:
        raise ValueError(f"not_tested names methods that have scores: {[str(m) for m in measured]}")
    seeds = {len(score.per_seed) for score in scores.values()}
    spread = f"ours{unit}, mean ± sd over {seeds.pop() if len(seeds) == 1 else 'the'} seeds"
    rows = []
    for name in [*scores, *not_tested]:
        fig = paper.get(name)
        score = scores.get(name)
        rows.append({
            "method": display_label(name),
            f"paper{unit}": "—" if fig is None else f"{fig:.{digits}f}",
            spread: NOT_TESTED if score is None else format_mean_sd(score.per_seed, scale=scale, digits=digits),
            "ours, mean [95 % interval]": NOT_TESTED if score is None else format_ci(score.ci, scale=scale,
                                                                                     digits=digits),
        })
    return pd.DataFrame(rows).set_index("method")


def verdict_table(
    differences: Mapping[str, CI],
    *,
    better: Literal["lower", "higher"],
    claim: str,
    scale: float = 1.0,
    digits: int = 2,
    unit: str = "",
    levels: Mapping[str, float] | None = None,
):
    """The verdict on each comparison, one row each (a pandas DataFrame for the notebook to show as its table).

    ``differences`` maps a comparison's label (``"Keypoint R-CNN + New-key-detection − Keypoint R-CNN"``, from
    :func:`fashion_lib.experiments.claims.labelled`) to the interval of the first's metric minus the second's;
    ``claim`` is what "supports" means (``"it lowers NE"``), ``better`` as in :func:`verdict`; ``levels`` maps a
    label to the second's own score (:func:`verdict`'s ``level``: below :data:`LEVEL_FLOOR`, "too weak to carry a
    verdict"). Columns: the difference times ``scale`` with its 95 % interval, and the verdict.
    """
    import pandas as pd

    levels = levels or {}
    rows = [{"comparison": display_label(label),
             f"difference{unit} [95 % interval]": format_ci(ci, scale=scale, digits=digits, signed=True),
             f"verdict on \"{claim}\"": verdict(ci, better=better, level=levels.get(label))}
            for label, ci in differences.items()]
    return pd.DataFrame(rows).set_index("comparison")
