"""The paper's claims that the front page tests: the *primary family*, declared here before any result
(:data:`PRIMARY_CLAIMS`), each judged on the interval of our difference B - A (:func:`judge`), and all of them
together with Holm's correction (:func:`judge_family`, :func:`claims_table`).

A claim's verdict answers the two questions of :mod:`fashion_lib.report` (zero, in the words of
:class:`~fashion_lib.report.ZeroVerdict`; size, :class:`~fashion_lib.report.SizeVerdict`), with one difference: its
zero verdicts are corrected for multiplicity with Holm's step-down on the bootstrap p-values (family-wise error 5 %,
:data:`FAMILY_ALPHA`). Every other comparison in the book is *exploratory* (:func:`fashion_lib.report.verdict`:
uncorrected, and labelled so on its page). A claim a profile does not test (a baseline it does not train, say why
in a :class:`NotTested`) shows as "not tested at this scale" and counts as p = 1 in the correction, like one not
measured: the family keeps its declared size.

The measuring pages glue each claim's difference (:func:`glue_claim`, :func:`glue_not_tested`); the front page reads
them back from the executed notebooks (:func:`read_claims`, :func:`read_levels`) and shows the family's table. The
module imports :mod:`fashion_lib.metrics` and :mod:`fashion_lib.report`; the names are importable from
:mod:`fashion_lib.report` too.
"""

from __future__ import annotations

import ast
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from fashion_lib.intervals import CI, IntervalMethod
from fashion_lib.report import NOT_TESTED, SizeVerdict, ZeroVerdict, _check_better, format_ci

__all__ = ["Claim", "Verdict", "NotTested", "FAMILY_ALPHA", "judge", "relative_size", "relative_sentence", "holm",
           "judge_family", "PRIMARY_CLAIMS", "primary_claim", "glue_claim", "glue_not_tested", "read_claims",
           "read_levels", "claims_table"]

# family-wise error rate of the primary family
FAMILY_ALPHA = 0.05


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
        p = ("—" if not math.isfinite(v.p_adjusted) else "< 0.001" if v.p_adjusted < 0.0005
             else f"{v.p_adjusted:.3f}")
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
