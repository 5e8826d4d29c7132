"""Turning measurements into the book's sentences: verdicts from intervals, and numbers formatted for glue.

A claim of the paper is "method B improves on method A". The study's verdict rests on the interval of the
difference B - A (over seeds and images, :func:`fashion_lib.metrics.seed_bootstrap_ci`), never on the sign of a mean:

- **supports**: the whole interval lies on the improving side of zero;
- **contradicts**: the whole interval lies on the worsening side;
- **cannot decide**: the interval holds zero (at our scale, the data cannot tell).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch

from fashion_lib.metrics import CI, seed_bootstrap_ci

__all__ = ["SUPPORTS", "CONTRADICTS", "UNDECIDED", "verdict", "format_ci", "format_mean_sd", "mean_sd", "glue_ci",
           "MethodScore", "score_methods", "comparison_table", "verdict_table"]

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


@dataclass(frozen=True)
class MethodScore:
    """One method's metric over seeds, with the two-level bootstrap interval."""

    per_seed: tuple[float, ...]  # the metric of each seed
    ci: CI  # pooled estimate and interval over seeds and images


def score_methods(
    arrays: Mapping[str, Sequence[Sequence[Any]]],
    metric: Callable[..., float],
    *,
    n_boot: int,
    generator: torch.Generator,
) -> dict[str, MethodScore]:
    """``metric`` of every method, per seed and pooled with its interval.

    Parameters
    ----------
    arrays : method -> per seed, the arguments of ``metric`` (e.g. ``fashion_lib.experiments.keypoints.ne_arrays``).
    metric : callable on one seed's (or a pooled sample's) arguments.
    n_boot, generator : as in :func:`fashion_lib.metrics.seed_bootstrap_ci`.
    """
    out = {}
    for name, per_seed in arrays.items():  # over the few methods of a table
        values = tuple(float(metric(*args)) for args in per_seed)
        out[name] = MethodScore(values, seed_bootstrap_ci(metric, per_seed, n_boot=n_boot, generator=generator))
    return out


def comparison_table(
    scores: Mapping[str, MethodScore],
    paper: Mapping[str, float | None],
    *,
    scale: float = 1.0,
    digits: int = 2,
    unit: str = "",
):
    """The paper's figure beside ours, one row per method (a pandas DataFrame for the notebook to show).

    ``paper`` maps a method to the paper's number (``None``: the paper has no such row); ours are shown as the mean
    ± sd over seeds and the pooled estimate with its 95 % interval, times ``scale``.
    """
    import pandas as pd

    rows = []
    for name, score in scores.items():
        fig = paper.get(name)
        rows.append({
            "method": name,
            f"paper{unit}": "—" if fig is None else f"{fig:.{digits}f}",
            f"ours{unit}, mean ± sd over {len(score.per_seed)} seeds": format_mean_sd(score.per_seed, scale=scale,
                                                                                    digits=digits),
            "ours, pooled [95 % interval]": format_ci(score.ci, scale=scale, digits=digits),
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
):
    """The verdict on each comparison, one row each (a pandas DataFrame for the notebook to show as its table).

    ``differences`` maps a comparison's label (``"New-key-detection − Keypoint R-CNN"``) to the interval of the
    first's metric minus the second's; ``claim`` is what "supports" means (``"it lowers NE"``), ``better`` as in
    :func:`verdict`. Columns: the difference times ``scale`` with its 95 % interval, and the verdict.
    """
    import pandas as pd

    rows = [{"comparison": label,
             f"difference{unit} [95 % interval]": format_ci(ci, scale=scale, digits=digits, signed=True),
             f"verdict on \"{claim}\"": verdict(ci, better=better)} for label, ci in differences.items()]
    return pd.DataFrame(rows).set_index("comparison")
