"""Turning measurements into the book's sentences: verdicts from intervals, and numbers formatted for glue.

A claim of the paper is "method B improves on method A". The study's verdict rests on the interval of the
difference B - A over seeds and images (:func:`fashion_lib.metrics.crossed_bootstrap_ci`), never on the sign of a
mean, and asks two questions:

1. **Zero**: does the difference exclude zero? **supports** (on the improving side), **contradicts** (on the
   worsening side) or **cannot decide**; when the interval's half-width (about the smallest effect the study could
   tell from zero) exceeds the paper's own effect, "cannot decide: this profile is too small to see an effect of
   the paper's size".
2. **Size**: is it the paper's effect? **consistent with the paper's size** (the interval holds the paper's value),
   **smaller than the paper reports** (the interval lies on the weak side of it) or **larger**.

The paper's claims that the front page lists form the *primary family* (:data:`PRIMARY_CLAIMS`, declared here,
before any result): their zero verdicts are corrected for multiplicity with Holm's step-down on the bootstrap
p-values (family-wise error 5 %, :func:`judge_family`). Every other comparison in the book is *exploratory*:
uncorrected, and labelled so on its page. A claim a profile does not test (a baseline it does not train, say
why in a :class:`NotTested`) shows as "not tested at this scale" and counts as p = 1 in the correction, like one
not measured: the family keeps its declared size.
"""

from __future__ import annotations

import ast
import json
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Literal

import torch

from fashion_lib.metrics import CI, IntervalMethod, crossed_bootstrap_ci

__all__ = ["SUPPORTS", "CONTRADICTS", "UNDECIDED", "verdict", "format_ci", "format_mean_sd", "mean_sd", "glue_ci",
           "MethodScore", "score_methods", "comparison_table", "verdict_table", "ZeroVerdict", "SizeVerdict", "Claim",
           "Verdict", "judge", "holm", "judge_family", "PRIMARY_CLAIMS", "primary_claim", "glue_claim", "read_claims",
           "read_levels", "claims_table", "EXPLORATORY", "NOT_TESTED", "NotTested", "glue_not_tested", "TOO_WEAK",
           "NOT_MOVED", "LEVEL_FLOOR", "too_weak", "format_count", "axis_share_sentence", "relative_size",
           "relative_sentence"]


class _Labelled(Enum):
    @property
    def label(self) -> str:
        """The words the book prints."""
        return self.value


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
# family-wise error rate of the primary family
FAMILY_ALPHA = 0.05


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
    ci: CI  # mean over seeds and its interval (fashion_lib.metrics.crossed_bootstrap_ci)


def score_methods(
    arrays: Mapping[str, Sequence[Sequence[Any]]],
    metric: Callable[..., float],
    *,
    n_boot: int,
    generator: torch.Generator,
) -> dict[str, MethodScore]:
    """``metric`` of every method, per seed and as the mean over seeds with its interval.

    Parameters
    ----------
    arrays : method -> per seed, the arguments of ``metric`` (e.g. ``fashion_lib.experiments.keypoints.ne_arrays``).
    metric : callable on one seed's arguments.
    n_boot, generator : as in :func:`fashion_lib.metrics.crossed_bootstrap_ci`.
    """
    out = {}
    for name, per_seed in arrays.items():  # over the few methods of a table
        values = tuple(float(metric(*args)) for args in per_seed)
        out[name] = MethodScore(values, crossed_bootstrap_ci(metric, per_seed, n_boot=n_boot, generator=generator))
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
        raise ValueError(f"not_tested names methods that have scores: {measured}")
    seeds = {len(score.per_seed) for score in scores.values()}
    spread = f"ours{unit}, mean ± sd over {seeds.pop() if len(seeds) == 1 else 'the'} seeds"
    rows = []
    for name in [*scores, *not_tested]:
        fig = paper.get(name)
        score = scores.get(name)
        rows.append({
            "method": name,
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

    ``differences`` maps a comparison's label (``"New-key-detection − Keypoint R-CNN"``) to the interval of the
    first's metric minus the second's; ``claim`` is what "supports" means (``"it lowers NE"``), ``better`` as in
    :func:`verdict`; ``levels`` maps a label to the second's own score (:func:`verdict`'s ``level``: below
    :data:`LEVEL_FLOOR`, "too weak to carry a verdict"). Columns: the difference times ``scale`` with its 95 %
    interval, and the verdict.
    """
    import pandas as pd

    levels = levels or {}
    rows = [{"comparison": label,
             f"difference{unit} [95 % interval]": format_ci(ci, scale=scale, digits=digits, signed=True),
             f"verdict on \"{claim}\"": verdict(ci, better=better, level=levels.get(label))}
            for label, ci in differences.items()]
    return pd.DataFrame(rows).set_index("comparison")


# ---------------------------------------------------------------------------------------------------------------
# Claims: the zero and size verdicts, Holm's correction across the primary family
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    """A claim of the paper, "B improves on A", with the paper's own difference B - A."""

    key: str  # identifier, unique in the family (the glue key is ``claim_<key>``)
    text: str  # the claim in words, as the front page states it
    notebook: str  # the page that measures it (its stem, e.g. "10_table1_fashionai")
    better: Literal["lower", "higher"]  # "lower" for errors (NE), "higher" for AP, accuracy, recall
    paper: float  # the paper's difference B - A, in ``unit``
    paper_text: str  # how the paper reports it, e.g. "−2.74 (13.70 → 10.96)"
    unit: str  # unit of the differences shown, e.g. "NE points"
    scale: float = 100.0  # factor from the metric (a fraction) to ``unit``
    digits: int = 2  # decimals shown
    paper_level: float = math.nan  # the paper's score of A, in ``unit``: the base of its relative change


@dataclass(frozen=True)
class Verdict:
    """A claim judged on one interval: the two questions' answers, in the claim's unit."""

    claim: Claim
    estimate: float  # our difference B - A
    low: float  # its interval (95 %, uncorrected)
    high: float
    p_value: float  # two-sided p-value of "no difference", from the interval's construction
    p_adjusted: float  # after Holm's step-down across the family (``p_value`` for a claim judged alone)
    method: str  # the words naming how the interval was built
    zero: ZeroVerdict
    size: SizeVerdict | None  # None where nothing was measured
    reason: str = ""  # NOT_TESTED: why the profile does not test the claim

    @property
    def half_width(self) -> float:
        """The interval's half-width: about the smallest effect this profile could tell from zero."""
        return (self.high - self.low) / 2


@dataclass(frozen=True)
class NotTested:
    """A claim the profile does not test (e.g. a baseline it does not train), and why: a sentence for the page."""

    reason: str

    def __post_init__(self) -> None:
        if not self.reason.strip():
            raise ValueError("NotTested needs a reason: the sentence the book prints beside the claim")


def judge(claim: Claim, difference: CI | NotTested | None, *, p_adjusted: float | None = None,
          alpha: float = FAMILY_ALPHA) -> Verdict:
    """Both verdicts on ``claim`` from the interval of our difference B - A (a fraction; times ``claim.scale``).

    Zero: with ``p_adjusted`` (Holm's, from :func:`judge_family`), the difference is significant when
    ``p_adjusted <= alpha``; without it (a claim judged alone), when the interval excludes zero. A significant
    difference **supports** or **contradicts** the claim by its sign; otherwise "cannot decide", or, when the
    interval's half-width exceeds ``|claim.paper|`` and the interval holds the paper's value as well as zero,
    :attr:`ZeroVerdict.TOO_SMALL`.
    Size: the interval against the paper's value: wholly on the weak side (less improvement) **smaller**, wholly
    beyond it **larger**, else **consistent**.
    ``difference=None`` (the page was not run): :attr:`ZeroVerdict.NOT_MEASURED`; a :class:`NotTested` (the
    profile does not test it): :attr:`ZeroVerdict.NOT_TESTED`, with its reason.
    """
    sign = _check_better(claim.better)
    if difference is None:
        return Verdict(claim, math.nan, math.nan, math.nan, math.nan, math.nan, "", ZeroVerdict.NOT_MEASURED, None)
    if isinstance(difference, NotTested):
        return Verdict(claim, math.nan, math.nan, math.nan, math.nan, math.nan, "", ZeroVerdict.NOT_TESTED, None,
                       difference.reason)
    est, low, high = (claim.scale * float(v) for v in difference[:3])
    p = float(difference.p_value)
    method = difference.method.label if difference.method is not None else ""
    adjusted = p if p_adjusted is None else float(p_adjusted)
    if not (math.isfinite(low) and math.isfinite(high)):
        return Verdict(claim, est, low, high, p, adjusted, method, ZeroVerdict.UNDECIDED, None)
    lo, hi = sorted((sign * low, sign * high))  # improvement, positive = better
    gain = sign * est
    significant = adjusted <= alpha if p_adjusted is not None else (lo > 0 or hi < 0)
    if significant and gain > 0:
        zero = ZeroVerdict.SUPPORTS
    elif significant and gain < 0:
        zero = ZeroVerdict.CONTRADICTS
    else:
        # "too small to see the paper's effect" only where the interval holds it too: an interval that excludes
        # the paper's value has seen that the effect is not of its size (the size verdict says which way)
        holds_paper = lo <= sign * claim.paper <= hi
        zero = (ZeroVerdict.TOO_SMALL if (high - low) / 2 > abs(claim.paper) and holds_paper
                else ZeroVerdict.UNDECIDED)
    paper_gain = sign * claim.paper
    size = (SizeVerdict.SMALLER if hi < paper_gain else SizeVerdict.LARGER if lo > paper_gain
            else SizeVerdict.CONSISTENT)
    return Verdict(claim, est, low, high, p, adjusted, method, zero, size)


def relative_size(claim: Claim, difference: CI, level: float) -> tuple[CI, SizeVerdict]:
    """Our difference B - A relative to our own A (``level``, a fraction like the difference), against the paper's
    relative change ``claim.paper / claim.paper_level``: for levels that differ (synthetic data, small models), the
    size question in proportions. Returns the relative change with its interval (the interval's ends divided by
    ``level``: our A's own sampling spread is not in it) and the size verdict on it, as :func:`judge` gives on the
    absolute scale."""
    if not (math.isfinite(level) and level > 0):
        raise ValueError(f"relative_size needs a positive baseline level, got {level!r}")
    if not (math.isfinite(claim.paper_level) and claim.paper_level > 0):
        raise ValueError(f"claim {claim.key!r} has no paper_level (the paper's score of A)")
    rel = CI(difference.estimate / level, difference.low / level, difference.high / level, difference.p_value,
             difference.method)
    sign = _check_better(claim.better)
    lo, hi = sorted((sign * rel.low, sign * rel.high))
    paper_gain = sign * claim.paper / claim.paper_level
    size = (SizeVerdict.SMALLER if hi < paper_gain else SizeVerdict.LARGER if lo > paper_gain
            else SizeVerdict.CONSISTENT)
    return rel, size


def percent_digits(percent: float) -> int:
    """Decimals that show ``percent`` % to two significant figures, 0 to 2 (the paper's Table 2 steps are +0.04 to
    +0.37 %, which whole percent would print as +0); an interval takes those of its half-width."""
    if not math.isfinite(percent) or percent == 0:
        return 0
    return int(min(2, max(0, 1 - math.floor(math.log10(abs(percent))))))


def relative_sentence(claim: Claim, difference: CI, level: float) -> str:
    """The page's sentence on :func:`relative_size` (a baseline at or below 0, or not finite, has no relative
    change: the sentence says so)."""
    if not (math.isfinite(level) and level > 0):
        return (f"Our baseline scores {level * claim.scale:.{claim.digits}f} {claim.unit.split()[0]}: no change "
                "relative to it can be given.")
    rel, size = relative_size(claim, difference, level)
    paper = 100 * claim.paper / claim.paper_level
    ours = percent_digits(100 * (rel.high - rel.low) / 2)  # ours to its interval's precision
    return (f"Relative to each baseline's own level (ours {level * claim.scale:.{claim.digits}f}, the paper's "
            f"{claim.paper_level:g} {claim.unit.split()[0]}), our change is "
            f"{format_ci(rel, scale=100, digits=ours, signed=True)} % "
            f"(our baseline's own spread not in the interval) against the paper's "
            f"{paper:+.{percent_digits(paper)}f} %: {size.label} in proportion"
            + (", though the interval holds no change as well." if rel.low <= 0 <= rel.high else "."))


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's (1979) step-down adjusted p-values, in the input order.

    Sorted ascending, ``p_(j)`` becomes ``max_{i <= j} min(1, (m - i + 1) p_(i))``; rejecting every hypothesis with
    an adjusted p-value ``<= alpha`` keeps the family-wise error rate at ``alpha`` under any dependence. A missing
    (nan) p-value counts as 1: the family's size ``m`` stays the declared one.
    """
    m = len(p_values)
    ps = [1.0 if not math.isfinite(float(p)) else float(p) for p in p_values]
    if any(not 0 <= p <= 1 for p in ps):
        raise ValueError(f"p-values must lie in [0, 1], got {list(p_values)}")
    order = sorted(range(m), key=lambda i: ps[i])
    out = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):  # over the few claims of a family
        running = max(running, min(1.0, (m - rank) * ps[i]))
        out[i] = running
    return out


def judge_family(claims: Sequence[Claim], differences: Mapping[str, CI | NotTested | None],
                 *, alpha: float = FAMILY_ALPHA) -> list[Verdict]:
    """Judge every claim of a family with Holm's correction on the p-values of ``differences`` (claim key -> CI;
    a missing key means not measured, a :class:`NotTested` not tested at this scale: both p = 1 in the correction,
    so the family keeps its declared size and the others' correction stays conservative)."""
    keys = [c.key for c in claims]
    if len(set(keys)) != len(keys):
        raise ValueError(f"claim keys must be unique, got {keys}")
    unknown = sorted(set(differences) - set(keys))
    if unknown:
        raise ValueError(f"differences names claims outside the family: {unknown}")
    found = [differences.get(k) for k in keys]
    adjusted = holm([d.p_value if isinstance(d, CI) else math.nan for d in found])
    return [judge(c, d, p_adjusted=p, alpha=alpha) for c, d, p in zip(claims, found, adjusted, strict=True)]


_T1F, _T1C, _T2, _T3 = ("10_table1_fashionai", "11_table1_coco", "20_table2_fashionai_attributes",
                        "22_table3_deepfashion")
# The paper's claims the front page tests, declared before any result: the primary family of Holm's correction.
PRIMARY_CLAIMS: tuple[Claim, ...] = (
    Claim("t1_fashionai_nkd", "New-key-detection lowers FashionAI NE", _T1F, "lower", -2.74,
          "−2.74 (13.70 → 10.96)", "NE points", paper_level=13.70),
    Claim("t1_fashionai_cpn", "CPN is better than Mask R-CNN on FashionAI", _T1F, "lower", -0.15,
          "−0.15 (13.70 → 13.55)", "NE points", paper_level=13.70),
    Claim("t1_fashionai_nkd_vs_cpn", "New-key-detection beats CPN on FashionAI", _T1F, "lower", -2.59,
          "−2.59 (13.55 → 10.96)", "NE points", paper_level=13.55),
    Claim("t1_coco_nkd", "New-key-detection raises COCO key-point AP", _T1C, "higher", 3.2,
          "+3.2 (62.7 → 65.9)", "AP points", digits=1, paper_level=62.7),
    Claim("t1_coco_cpn", "CPN is better than Mask R-CNN on COCO", _T1C, "higher", 2.6,
          "+2.6 (62.7 → 65.3)", "AP points", digits=1, paper_level=62.7),
    Claim("t1_coco_nkd_vs_cpn", "New-key-detection beats CPN on COCO", _T1C, "higher", 0.6,
          "+0.6 (65.3 → 65.9)", "AP points", digits=1, paper_level=65.3),
    Claim("t2_joint", "Joint learning raises FashionAI attribute mAP", _T2, "higher", 0.34,
          "+0.34 (92.52 → 92.86)", "mAP points", paper_level=92.52),
    Claim("t2_maybe", "The \"maybe\" loss raises it further", _T2, "higher", 0.08,
          "+0.08 (92.86 → 92.94)", "mAP points", paper_level=92.86),
    Claim("t2_nkd", "Crops from New-key-detection raise it further", _T2, "higher", 0.04,
          "+0.04 (92.94 → 92.98)", "mAP points", paper_level=92.94),
    Claim("t3_all_top3", "Joint learning and New-key-detection raise DeepFashion top-3 recall, all attributes", _T3,
          "higher", 4.78, "+4.78 (48.86 → 53.64)", "recall points", paper_level=48.86),
    Claim("t3_category_top3", "... and top-3 category accuracy", _T3, "higher", 2.15,
          "+2.15 (90.60 → 92.75)", "accuracy points", paper_level=90.60),
)


def primary_claim(key: str) -> Claim:
    """The declared primary claim ``key``; an unknown key lists the valid ones."""
    for claim in PRIMARY_CLAIMS:
        if claim.key == key:
            return claim
    raise ValueError(f"no primary claim {key!r}; valid: {', '.join(c.key for c in PRIMARY_CLAIMS)}")


def _glue_name(key: str) -> str:
    return f"claim_{key}"


def glue_claim(key: str, difference: CI, *, level: float | None = None) -> Verdict:
    """Glue a primary claim's difference (a fraction) as JSON for the front page's Holm step (``claim_<key>``),
    and for the measuring page's prose ``<key>_size`` (the size verdict), ``<key>_detectable`` (the half-width,
    in the claim's unit) and ``<key>_relative`` (:func:`relative_sentence` with our baseline's ``level``, a
    fraction; empty without one); returns the claim's uncorrected verdict."""
    from myst_nb import glue

    claim = primary_claim(key)
    record = {"estimate": float(difference.estimate), "low": float(difference.low), "high": float(difference.high),
              "p_value": float(difference.p_value),
              "method": None if difference.method is None else difference.method.value,
              "level": None if level is None else float(level)}
    glue(_glue_name(key), json.dumps(record), display=False)
    verdict_ = judge(claim, difference)
    glue(f"{key}_size", "not measured" if verdict_.size is None else verdict_.size.label, display=False)
    glue(f"{key}_detectable", float(verdict_.half_width), display=False)
    relative = ("" if level is None or not math.isfinite(claim.paper_level)
                else relative_sentence(claim, difference, level))
    glue(f"{key}_relative", relative, display=False)
    return verdict_


def glue_not_tested(key: str, reason: str) -> Verdict:
    """Glue that this profile does not test the primary claim ``key``, and ``reason`` why (``claim_<key>``, read by
    :func:`read_claims`), with ``<key>_size`` :data:`NOT_TESTED` and ``<key>_detectable`` NaN for the page's prose;
    returns the claim's verdict (:attr:`ZeroVerdict.NOT_TESTED`)."""
    from myst_nb import glue

    claim = primary_claim(key)
    not_tested = NotTested(reason)
    glue(_glue_name(key), json.dumps({"not_tested": not_tested.reason}), display=False)
    glue(f"{key}_size", NOT_TESTED, display=False)
    glue(f"{key}_detectable", math.nan, display=False)
    return judge(claim, not_tested)


def _claim_records(results: Path, claims: Sequence[Claim]) -> Iterator[tuple[str, dict]]:
    """(claim key, the JSON record :func:`glue_claim` or :func:`glue_not_tested` stored) for every claim glued in the
    executed notebooks of ``results``."""
    import nbformat

    for notebook in sorted({c.notebook for c in claims}):
        path = Path(results) / f"{notebook}.ipynb"
        if not path.is_file():
            continue
        wanted = {_glue_name(c.key): c.key for c in claims if c.notebook == notebook}
        for cell in nbformat.read(path, as_version=4).cells:
            for output in cell.get("outputs", []):
                name = output.get("metadata", {}).get("scrapbook", {}).get("name")
                if name not in wanted:
                    continue
                text = next((v for k, v in output.get("data", {}).items() if k.endswith("text/plain")), None)
                try:
                    record = json.loads(ast.literal_eval(text))
                except (ValueError, SyntaxError, TypeError) as err:
                    raise ValueError(f"{path}: glued {name!r} is not a claim record ({err})") from None
                yield wanted[name], record


def read_claims(results: Path, claims: Sequence[Claim] = PRIMARY_CLAIMS) -> dict[str, CI | NotTested]:
    """The differences that :func:`glue_claim` stored in the executed notebooks of ``results`` (claim key -> CI),
    or the :class:`NotTested` that :func:`glue_not_tested` stored; a claim whose notebook is absent or stored
    nothing is left out."""
    out: dict[str, CI | NotTested] = {}
    for key, record in _claim_records(results, claims):
        if "not_tested" in record:
            out[key] = NotTested(record["not_tested"])
            continue
        method = None if record.get("method") is None else IntervalMethod(record["method"])
        out[key] = CI(record["estimate"], record["low"], record["high"], record["p_value"], method)
    return out


def read_levels(results: Path, claims: Sequence[Claim] = PRIMARY_CLAIMS) -> dict[str, float]:
    """Our baseline's level (a fraction) that :func:`glue_claim` stored beside each claim's difference (claim key ->
    level; claims glued without one are left out): the base of :func:`relative_size` on the front page."""
    return {key: float(record["level"]) for key, record in _claim_records(results, claims)
            if record.get("level") is not None}


def _fmt(value: float, digits: int, signed: bool = True) -> str:
    if not math.isfinite(value):
        return "—"
    text = f"{value:{'+' if signed else ''}.{digits}f}"
    return text.replace("-", "−")


def _proportion_cell(v: Verdict, level: float | None) -> str:
    """The front page's "in proportion" cell: :func:`relative_size` of the claim's difference over our baseline's
    ``level``, beside the paper's relative change ("—" without a level or a paper level)."""
    c = v.claim
    if level is None or not math.isfinite(v.estimate) or not math.isfinite(c.paper_level):
        return "—"
    if not (math.isfinite(level) and level > 0):
        return "— (baseline at 0)"
    # the verdict holds the difference in the claim's unit, relative_size the fraction the notebooks glued
    rel, size = relative_size(c, CI(v.estimate / c.scale, v.low / c.scale, v.high / c.scale), level)
    paper = 100 * c.paper / c.paper_level
    d = percent_digits(100 * (rel.high - rel.low) / 2)  # ours to its interval's precision
    return (f"{_fmt(100 * rel.estimate, d)} [{_fmt(100 * rel.low, d)}, {_fmt(100 * rel.high, d)}] % against "
            f"{_fmt(paper, percent_digits(paper))} %: {size.label}")


def claims_table(verdicts: Sequence[Verdict], *, alpha: float = FAMILY_ALPHA, doc_prefix: str = "results/",
                 levels: Mapping[str, float] | None = None) -> str:
    """The front page's table of the primary family (Markdown): each claim, the paper's difference, ours with its
    95 % interval, the Holm-adjusted p-value, both verdicts, the size question in proportion (with our baseline's
    level from ``levels``, claim key -> fraction, :func:`read_levels`: our change over our baseline against the
    paper's over its own) and the smallest detectable effect (the half-width). ``doc_prefix``: path from the page
    that shows the table to the result pages."""
    levels = levels or {}
    lines = [
        "| claim of the paper | the paper | ours [95 % interval] | p (Holm) | zero verdict | size verdict | "
        "in proportion (ours against the paper's) | smallest detectable | interval | page |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for v in verdicts:
        c = v.claim
        ours = (f"{_fmt(v.estimate, c.digits)} [{_fmt(v.low, c.digits)}, {_fmt(v.high, c.digits)}]"
                if math.isfinite(v.estimate) else "—")
        p = "—" if not math.isfinite(v.p_adjusted) else f"{v.p_adjusted:.3f}"
        size = "—" if v.size is None else v.size.label
        lines.append(f"| {c.text} ({c.unit}) | {c.paper_text} | {ours} | {p} | **{v.zero.label}** | {size} | "
                     f"{_proportion_cell(v, levels.get(c.key))} | "
                     f"{_fmt(v.half_width, c.digits, signed=False)} | {v.method or '—'} | "
                     f"{{doc}}`{doc_prefix}{c.notebook}` |")
    supported = sum(v.zero is ZeroVerdict.SUPPORTS for v in verdicts)
    lines += ["", f"{supported} of the {len(verdicts)} claims are supported at a family-wise error rate of "
              f"{100 * alpha:.0f} % (Holm's step-down on the p-values)."]
    untested = [v for v in verdicts if v.zero is ZeroVerdict.NOT_TESTED]
    if untested:
        reasons = " ".join(dict.fromkeys(v.reason for v in untested))  # one sentence per distinct reason
        lines += ["", f"{len(untested)} of the claims are **{NOT_TESTED}**: {reasons} They have no verdict; in "
                  f"Holm's correction each counts as p = 1, so the family keeps its {len(verdicts)} declared claims "
                  f"and the correction of the others stays conservative."]
    return "\n".join(lines) + "\n"
