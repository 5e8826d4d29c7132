"""Turning measurements into the book's sentences: verdicts from intervals, and numbers formatted for glue.

A claim of the paper is "method B improves on method A". The study's verdict rests on the interval of the
difference B - A (over seeds and images, :func:`fashion_lib.metrics.seed_bootstrap_ci`), never on the sign of a mean:

- **supports**: the whole interval lies on the improving side of zero;
- **contradicts**: the whole interval lies on the worsening side;
- **cannot decide**: the interval holds zero (at our scale, the data cannot tell).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

from fashion_lib.metrics import CI

__all__ = ["SUPPORTS", "CONTRADICTS", "UNDECIDED", "verdict", "format_ci", "format_mean_sd", "mean_sd", "glue_ci"]

SUPPORTS = "supports"
CONTRADICTS = "contradicts"
UNDECIDED = "cannot decide"


def verdict(difference: CI, *, better: Literal["lower", "higher"]) -> str:
    """The verdict on "B improves on A" from the interval of ``B - A``.

    Parameters
    ----------
    difference : CI
        Estimate and interval of the metric of B minus that of A.
    better : ``"lower"`` (errors such as NE) or ``"higher"`` (AP, accuracy, recall).

    Returns
    -------
    str
        :data:`SUPPORTS`, :data:`CONTRADICTS` or :data:`UNDECIDED` (also for an interval that is not finite).
    """
    if better not in ("lower", "higher"):
        raise ValueError(f"better must be 'lower' or 'higher', got {better!r}")
    low, high = difference.low, difference.high
    if not (math.isfinite(low) and math.isfinite(high)):
        return UNDECIDED
    sign = 1.0 if better == "higher" else -1.0
    lo, hi = sorted((sign * low, sign * high))  # the improvement's interval, positive = better
    if lo > 0:
        return SUPPORTS
    if hi < 0:
        return CONTRADICTS
    return UNDECIDED


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


def format_mean_sd(values: Sequence[float], *, scale: float = 1.0, digits: int = 2) -> str:
    """``"10.96 ± 0.31"`` over seeds (just the mean with one seed)."""
    mean, sd = mean_sd(values)
    if math.isnan(sd):
        return f"{mean * scale:.{digits}f}"
    return f"{mean * scale:.{digits}f} ± {sd * scale:.{digits}f}"


def glue_ci(key: str, ci: CI, *, scale: float = 1.0) -> None:
    """Glue ``key``, ``key_low`` and ``key_high`` as plain floats (times ``scale``) for the book's prose."""
    from myst_nb import glue

    glue(key, float(ci.estimate * scale), display=False)
    glue(f"{key}_low", float(ci.low * scale), display=False)
    glue(f"{key}_high", float(ci.high * scale), display=False)
