"""Intervals of a metric over images and training seeds: the percentile bootstrap, its paired form for a
difference, and the crossed bootstrap over seeds and images with its t interval.

The paper's tables give single numbers, without seeds or intervals; the book sets each beside an interval and a
p-value, built here for any metric of :mod:`fashion_lib.metrics` or :mod:`fashion_lib.coco_eval` given as
``metric_fn(*arrays)``.
:func:`bootstrap_ci` and :func:`paired_bootstrap_ci` resample images (Davison and Hinkley 1997); the crossed design
(:func:`crossed_plan`, :func:`seed_values`, :func:`crossed_interval`, or :func:`crossed_bootstrap_ci` in one call)
resamples seeds and images together (McCullagh 2000). :class:`CI` carries the estimate, the interval, the p-value
and the :class:`IntervalMethod` that built them.

All functions take CPU tensors (NumPy arrays and sequences are accepted for the resampled inputs), draw from an
explicit ``torch.Generator`` and return plain Python ``float`` values.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from enum import Enum
from typing import Any, Literal, NamedTuple

import numpy as np
import torch

__all__ = [
    "CI",
    "IntervalMethod",
    "bootstrap_ci",
    "paired_bootstrap_ci",
    "SEEDS_FOR_PERCENTILE",
    "CrossedPlan",
    "SeedValues",
    "crossed_plan",
    "seed_values",
    "bootstrap_counts",
    "crossed_interval",
    "crossed_bootstrap_ci",
]

logger = logging.getLogger(__name__)


class IntervalMethod(Enum):
    """How an interval (and its p-value) was built; ``.label`` says it in words for the page."""

    IMAGES = "images"  # percentile bootstrap over images; with one seed, seed-to-seed variation is not measured
    CROSSED = "crossed"  # percentile of the crossed bootstrap (seeds and one shared image resample per replicate)
    SEED_T = "seed-t"  # t interval from the seed and image variance components (Satterthwaite's degrees of freedom)

    @property
    def label(self) -> str:
        return _METHOD_LABELS[self]


_METHOD_LABELS = {
    IntervalMethod.IMAGES: "percentile bootstrap over images",
    IntervalMethod.CROSSED: "percentile crossed bootstrap over seeds and images",
    IntervalMethod.SEED_T: "t interval from the seed and image variance components",
}


class CI(NamedTuple):
    """A point estimate with its interval and the p-value of "the quantity is zero" from the same construction."""

    estimate: float  # the metric on the full data (the mean over seeds for a crossed design)
    low: float  # lower end of the interval
    high: float  # upper end
    p_value: float = math.nan  # two-sided p-value of a zero value; nan where not computed
    method: IntervalMethod | None = None  # how the interval was built

    @property
    def half_width(self) -> float:
        """Half the interval's width: about the smallest effect the interval could tell from zero."""
        return (self.high - self.low) / 2


def _resampler(arrays: Sequence[Any], name: str) -> tuple[int, Callable[[torch.Tensor], list[Any]]]:
    """Number of instances and a function that indexes every array's first dimension."""
    if not arrays:
        raise ValueError(f"{name}: give at least one array to resample")
    conv = []
    for i, a in enumerate(arrays):
        if isinstance(a, torch.Tensor):
            conv.append(a)
        elif isinstance(a, np.ndarray):
            conv.append(a)
        elif isinstance(a, Sequence) and not isinstance(a, str):
            conv.append(np.asarray(a))  # e.g. category names: a NumPy array indexes without a Python loop
        else:
            raise ValueError(f"{name}[{i}] must be a tensor, array or sequence, got {type(a).__name__}")
    sizes = [len(a) for a in conv]
    if len(set(sizes)) != 1:
        raise ValueError(f"{name}: arrays must share their first dimension (instances), got lengths {sizes}")
    if sizes[0] == 0:
        raise ValueError(f"{name}: cannot bootstrap zero instances")

    def take(idx: torch.Tensor) -> list[Any]:
        return [a[idx] if isinstance(a, torch.Tensor) else a[idx.numpy()] for a in conv]

    return sizes[0], take


def _metric_value(metric_fn: Callable[..., Any], args: Sequence[Any]) -> float:
    value = metric_fn(*args)
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"metric_fn must return a number, got {type(value).__name__} (wrap it, e.g. "
                         "lambda *a: normalized_error(*a).ne)") from None


def _finite(reps: torch.Tensor, name: str) -> torch.Tensor:
    finite = reps[torch.isfinite(reps)]
    if finite.numel() < reps.numel():
        logger.warning("%s: %d of %d bootstrap replicates gave a non-finite metric and were dropped", name,
                       reps.numel() - finite.numel(), reps.numel())
    return finite


def _interval(
    estimate: float, reps: torch.Tensor, level: float, name: str,
    method: IntervalMethod = IntervalMethod.IMAGES,
) -> CI:
    """Percentile interval of ``reps`` (R,) and the bootstrap p-value ``2 min(P*(rep <= 0), P*(rep >= 0))``, with
    the usual ``(count + 1) / (R + 1)`` so that it is never zero (Davison and Hinkley 1997, chapter 4)."""
    finite = _finite(reps, name)
    if finite.numel() == 0:
        return CI(float(estimate), math.nan, math.nan, math.nan, method)
    alpha = (1.0 - level) / 2
    q = torch.quantile(finite, torch.tensor([alpha, 1.0 - alpha], dtype=torch.float64))  # linear, as numpy
    r = finite.numel()
    tail = min(int((finite <= 0).sum()), int((finite >= 0).sum()))
    p = min(1.0, 2.0 * (tail + 1) / (r + 1))
    return CI(float(estimate), float(q[0]), float(q[1]), p, method)


def _check_boot(n_boot: int, level: float, generator: Any) -> None:
    if not isinstance(n_boot, int) or isinstance(n_boot, bool) or n_boot < 1:
        raise ValueError(f"n_boot must be an integer >= 1, got {n_boot!r}")
    if not isinstance(level, (int, float)) or not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    if not isinstance(generator, torch.Generator):
        raise ValueError(f"generator must be a torch.Generator, got {type(generator).__name__}")


def bootstrap_ci(
    metric_fn: Callable[..., Any],
    *arrays: Any,
    n_boot: int = 1000,
    level: float = 0.95,
    generator: torch.Generator,
) -> CI:
    """Percentile bootstrap interval of a metric, resampling instances (images) with replacement.

    Parameters
    ----------
    metric_fn : callable
        ``metric_fn(*arrays) -> float``; called once on the data and once per replicate.
    *arrays : tensors, arrays or sequences, each (B, ...)
        Per-instance inputs, indexed together along the first dimension (e.g. ``pred, gt, categories``).
    n_boot : int
        Number of replicates.
    level : float
        Coverage of the two-sided interval, in (0, 1).
    generator : torch.Generator
        Source of the resampling indices (CPU).

    Returns
    -------
    CI
        ``(estimate, low, high)``: the metric on all instances and the ``(1 - level) / 2`` and
        ``(1 + level) / 2`` quantiles (linear interpolation) of the replicates. Replicates where the metric is
        not finite (e.g. no counted point) are dropped with a warning.
    """
    _check_boot(n_boot, level, generator)
    b, take = _resampler(arrays, "arrays")
    estimate = _metric_value(metric_fn, arrays)
    reps = torch.empty(n_boot, dtype=torch.float64)
    for r in range(n_boot):  # a loop over replicates; each replicate is evaluated vectorised
        idx = torch.randint(0, b, (b,), generator=generator)
        reps[r] = _metric_value(metric_fn, take(idx))
    return _interval(estimate, reps, level, "bootstrap_ci")


def paired_bootstrap_ci(
    metric_fn: Callable[..., Any],
    arrays_a: Sequence[Any],
    arrays_b: Sequence[Any],
    *,
    n_boot: int = 1000,
    level: float = 0.95,
    generator: torch.Generator,
) -> CI:
    """Bootstrap interval of ``metric_fn(*arrays_a) - metric_fn(*arrays_b)`` on the same resampled instances.

    Parameters
    ----------
    metric_fn : callable
        ``metric_fn(*arrays) -> float``.
    arrays_a, arrays_b : sequences of tensors/arrays, each (B, ...)
        Inputs of method A and method B on the same ``B`` instances (e.g. ``(pred_a, gt, cats)`` and
        ``(pred_b, gt, cats)``); every replicate draws one index set and applies it to both.
    n_boot, level, generator
        As in :func:`bootstrap_ci`.

    Returns
    -------
    CI
        The difference A - B on all instances and its percentile interval.
    """
    _check_boot(n_boot, level, generator)
    b_a, take_a = _resampler(list(arrays_a), "arrays_a")
    b_b, take_b = _resampler(list(arrays_b), "arrays_b")
    if b_a != b_b:
        raise ValueError(f"arrays_a and arrays_b must hold the same instances, got {b_a} and {b_b}")
    estimate = _metric_value(metric_fn, list(arrays_a)) - _metric_value(metric_fn, list(arrays_b))
    reps = torch.empty(n_boot, dtype=torch.float64)
    for r in range(n_boot):
        idx = torch.randint(0, b_a, (b_a,), generator=generator)
        reps[r] = _metric_value(metric_fn, take_a(idx)) - _metric_value(metric_fn, take_b(idx))
    return _interval(estimate, reps, level, "paired_bootstrap_ci")


# Below this many seeds the crossed bootstrap's percentile interval is too narrow when seeds differ (it sees S
# values of the seed effect, under-estimates their variance by (S - 1) / S and uses normal rather than t quantiles:
# coverage about P(|t_(S-1)| < 1.96 sqrt((S - 1) / S)), 0.75 at S = 3, 0.85 at 5, 0.93 at 20), so the t interval of
# the variance components is used instead.
SEEDS_FOR_PERCENTILE = 20


class CrossedPlan(NamedTuple):
    """The random draws of a crossed bootstrap: per replicate, one image resample and one seed resample."""

    images: torch.Tensor  # (R, B) long, image indices drawn with replacement, shared by every seed and method
    seeds: torch.Tensor  # (R, S) long, seed indices drawn with replacement


class SeedValues(NamedTuple):
    """A metric of one method (or a difference of two) per seed, on all images and on each replicate's images."""

    full: torch.Tensor  # (S,) float64, the metric of each seed on all images
    replicates: torch.Tensor  # (R, S) float64, the metric of each seed on each replicate's shared image resample

    def __sub__(self, other: SeedValues) -> SeedValues:  # type: ignore[override]
        """The paired difference, seed by seed and replicate by replicate (both from the same plan)."""
        if self.replicates.shape != other.replicates.shape:
            raise ValueError(f"SeedValues of different plans: replicates {tuple(self.replicates.shape)} and "
                             f"{tuple(other.replicates.shape)}")
        return SeedValues(self.full - other.full, self.replicates - other.replicates)


def crossed_plan(n_seeds: int, n_images: int, *, n_boot: int = 1000, generator: torch.Generator) -> CrossedPlan:
    """Draw the replicates of a crossed bootstrap over ``n_seeds`` seeds and ``n_images`` images.

    Every seed is scored on the same images, so seeds and images are *crossed*: one image resample per replicate
    is applied to every seed (and to both methods of a difference), never one per seed (McCullagh 2000).
    """
    _check_boot(n_boot, 0.95, generator)
    for name, value in (("n_seeds", n_seeds), ("n_images", n_images)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    images = torch.randint(0, n_images, (n_boot, n_images), generator=generator)
    seeds = torch.randint(0, n_seeds, (n_boot, n_seeds), generator=generator)
    return CrossedPlan(images, seeds)


def _seed_takers(per_seed: Sequence[Sequence[Any]], name: str) -> list[Callable[[torch.Tensor], list[Any]]]:
    if not per_seed:
        raise ValueError(f"{name}: give the arrays of at least one seed")
    sized = [_resampler(list(arrays), f"{name}[{s}]") for s, arrays in enumerate(per_seed)]
    sizes = [n for n, _ in sized]
    if len(set(sizes)) != 1:
        raise ValueError(f"{name}: every seed must be scored on the same images (a crossed design), got "
                         f"{sizes} instances")
    return [take for _, take in sized]


def seed_values(
    metric_fn: Callable[..., Any],
    per_seed: Sequence[Sequence[Any]],
    plan: CrossedPlan,
    *,
    batched: bool = False,
    weighted: bool = False,
) -> SeedValues:
    """Evaluate ``metric_fn`` on every seed, on all images and on each replicate's shared image resample.

    Parameters
    ----------
    metric_fn : callable
        ``metric_fn(*arrays) -> float`` on one seed's arrays (any statistic: NE, COCO AP, mAP, top-k recall). With
        ``batched``, ``metric_fn`` receives every array indexed by an ``(R, B)`` index, so with a leading
        replicate dimension ``(R, B, ...)``, and returns ``(R,)`` values: one call per seed instead of ``R``.
        With ``weighted``, ``metric_fn(*arrays, weights=counts)`` receives the arrays whole and ``counts (R, B)``
        float64, how often each replicate draws each image, and returns ``(R,)`` values (for a statistic that
        takes weights, such as ``fashion_lib.experiments.table2.map_metric``: no ``(R, B, ...)`` copies); the
        value on all images is the plain call's.
    per_seed : sequence over S seeds of sequences of arrays, each (B, ...)
        One method's per-image inputs for each seed, on the same ``B`` images, e.g. ``[(pred_0, gt, cats), ...]``.
    plan : CrossedPlan
        From :func:`crossed_plan` with ``n_seeds = S`` and ``n_images = B``; reuse one plan for every method that
        will be compared, so that differences pair the same draws.

    Returns
    -------
    SeedValues
        ``full (S,)`` and ``replicates (R, S)``, float64.
    """
    takers = _seed_takers(per_seed, "per_seed")
    n_rep, n_images = plan.images.shape
    if plan.seeds.shape[1] != len(takers) or _resampler(list(per_seed[0]), "per_seed[0]")[0] != n_images:
        raise ValueError(f"plan draws {plan.seeds.shape[1]} seeds and {n_images} images, but per_seed has "
                         f"{len(takers)} seeds of {_resampler(list(per_seed[0]), 'per_seed[0]')[0]} images")
    if batched and weighted:
        raise ValueError("seed_values: choose batched or weighted, not both")
    everything = torch.arange(n_images)
    full = torch.empty(len(takers), dtype=torch.float64)
    reps = torch.empty(n_rep, len(takers), dtype=torch.float64)
    counts = bootstrap_counts(plan.images, n_images) if weighted else None
    for s, take in enumerate(takers):  # over the few seeds
        if weighted:
            full[s] = _metric_value(metric_fn, take(everything))
            reps[:, s] = _checked_values(metric_fn(*per_seed[s], weights=counts), n_rep, "weighted")
        elif batched:
            full[s] = _batched_value(metric_fn, take(everything[None]), 1)[0]
            reps[:, s] = _batched_value(metric_fn, take(plan.images), n_rep)
        else:
            full[s] = _metric_value(metric_fn, take(everything))
            for r in range(n_rep):  # a loop over replicates; each replicate is evaluated vectorised
                reps[r, s] = _metric_value(metric_fn, take(plan.images[r]))
    return SeedValues(full, reps)


def bootstrap_counts(images: torch.Tensor, n_images: int) -> torch.Tensor:
    """``(R, n_images)`` float64: how many times each replicate of ``images (R, B)`` draws each image."""
    counts = torch.zeros(images.shape[0], n_images, dtype=torch.float64)
    return counts.scatter_add_(1, images, torch.ones(images.shape, dtype=torch.float64))


def _checked_values(values: Any, n: int, mode: str) -> torch.Tensor:
    value = torch.as_tensor(values, dtype=torch.float64)
    if value.shape != (n,):
        raise ValueError(f"with {mode}=True metric_fn must return ({n},) values (one per replicate), got shape "
                         f"{tuple(value.shape)}")
    return value


def _batched_value(metric_fn: Callable[..., Any], args: Sequence[Any], n: int) -> torch.Tensor:
    return _checked_values(metric_fn(*args), n, "batched")


def crossed_interval(
    values: SeedValues,
    plan: CrossedPlan,
    *,
    level: float = 0.95,
    method: Literal["auto", "seed-t", "crossed"] = "auto",
) -> CI:
    """The interval of a method's metric (or of a paired difference) over seeds and images, from a crossed bootstrap.

    Model: the value of seed ``s`` on image ``i`` is ``mu + a_s + b_i + e_si`` (seed effect, image effect, their
    interaction), a two-way crossed random-effects design; the estimate is the mean over seeds of each seed's
    metric on all images, whose variance is ``sigma_a^2 / S + sigma_b^2 / B + sigma_e^2 / (S B)`` (the two-way
    crossed classification with one observation per cell: Searle, Casella and McCulloch 1992, *Variance
    Components*; Brennan 2001, *Generalizability Theory*, the crossed p x i design). Each replicate of ``plan``
    draws ``S`` seeds with replacement and one image resample shared by all of them (McCullagh 2000, "Resampling
    and exchangeable arrays", Bernoulli 6: resampling images within each seed, as if nested, misses the image
    variance shared by the seeds).

    - ``"seed-t"`` (the default below :data:`SEEDS_FOR_PERCENTILE` seeds): ``estimate +- t_(nu) se`` with
      ``se^2 = var_s(full) / S + var_r(mean_s replicates)``: the seed component from the spread of the S per-seed
      estimates (it holds ``sigma_a^2 / S + sigma_e^2 / (S B)``; image effects are shared, so they cancel) and the
      image component from the shared image resamples with every seed (``sigma_b^2 / B + sigma_e^2 / (S B)``).
      The interaction term is counted twice, so the interval errs wide, never narrow (simulated coverage of the
      nominal 95 % in ``tests/test_intervals.py``: 0.93 to 1.00 with 3 and 5 seeds, widest where the interaction
      dominates). ``nu`` is Satterthwaite's
      (1946) ``se^4 / ((var_seed / S)^2 / (S - 1) + var_image^2 / (B - 1))``: about ``S - 1`` (t quantile 4.3 at
      3 seeds) when seeds dominate, large when images do. The p-value is the t test's.
    - ``"crossed"`` (the default from :data:`SEEDS_FOR_PERCENTILE` seeds on): the percentile interval of the
      crossed replicates ``mean_j replicates[r, seeds[r, j]]``, and their bootstrap p-value.
    - One seed: the percentile interval over images only (seed-to-seed variation is not measured; the method
      of the result says so).

    Parameters
    ----------
    values : SeedValues
        ``full (S,)`` and ``replicates (R, S)`` from :func:`seed_values` (a difference: ``values_a - values_b``).
    plan : CrossedPlan
        The plan ``values`` was computed with.
    level : float
        Coverage of the two-sided interval, in (0, 1).
    method : {"auto", "seed-t", "crossed"}

    Returns
    -------
    CI
        ``estimate`` (mean over seeds of the per-seed metric), ``low``, ``high``, ``p_value`` and ``method``.
    """
    from scipy import stats

    if not isinstance(level, (int, float)) or not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    if method not in ("auto", "seed-t", "crossed"):
        raise ValueError(f"method must be 'auto', 'seed-t' or 'crossed', got {method!r}")
    full, reps = values.full.double(), values.replicates.double()
    n_seeds = full.numel()
    if reps.shape != plan.seeds.shape:
        raise ValueError(f"values.replicates has shape {tuple(reps.shape)}, the plan draws {tuple(plan.seeds.shape)}")
    estimate = float(full.mean())
    ok = torch.isfinite(reps).all(1)  # (R,) a replicate with any seed's metric undefined is dropped
    if not bool(ok.all()):
        logger.warning("crossed_interval: %d of %d replicates gave a non-finite metric and were dropped",
                       int((~ok).sum()), len(ok))
    reps, draws = reps[ok], plan.seeds[ok]
    image_reps = reps.mean(1)  # (R,) every seed at the replicate's images
    if n_seeds == 1:
        return _interval(estimate, image_reps, level, "crossed_interval", IntervalMethod.IMAGES)
    if method == "crossed" or (method == "auto" and n_seeds >= SEEDS_FOR_PERCENTILE):
        crossed = reps.gather(1, draws).mean(1)  # (R,) the drawn seeds at the same images
        return _interval(estimate, crossed, level, "crossed_interval", IntervalMethod.CROSSED)
    if not (math.isfinite(estimate) and len(image_reps) > 1):
        return CI(estimate, math.nan, math.nan, math.nan, IntervalMethod.SEED_T)
    n_images = plan.images.shape[1]
    v_seed = float(full.var()) / n_seeds  # unbiased over seeds
    v_image = float(image_reps.var())
    se = math.sqrt(v_seed + v_image)
    if se == 0:
        return CI(estimate, estimate, estimate, 1.0 if estimate == 0 else 0.0, IntervalMethod.SEED_T)
    denom = v_seed ** 2 / (n_seeds - 1) + (v_image ** 2 / (n_images - 1) if n_images > 1 else 0.0)
    df = (v_seed + v_image) ** 2 / denom if denom > 0 else math.inf
    q = float(stats.t.ppf(0.5 + level / 2, df))
    p = float(2 * stats.t.sf(abs(estimate) / se, df))
    return CI(estimate, estimate - q * se, estimate + q * se, p, IntervalMethod.SEED_T)


def crossed_bootstrap_ci(
    metric_fn: Callable[..., Any],
    per_seed: Sequence[Sequence[Any]],
    per_seed_b: Sequence[Sequence[Any]] | None = None,
    *,
    n_boot: int = 1000,
    level: float = 0.95,
    generator: torch.Generator,
    method: Literal["auto", "seed-t", "crossed"] = "auto",
    batched: bool = False,
    weighted: bool = False,
) -> CI:
    """Interval of a method's metric over training seeds and images (or of the paired difference A - B).

    :func:`crossed_plan`, :func:`seed_values` for each method on the same plan, then :func:`crossed_interval`,
    whose docstring gives the construction. With one seed this is the image bootstrap of that seed.

    Parameters
    ----------
    metric_fn : callable
        ``metric_fn(*arrays) -> float`` on one seed's arrays (see :func:`seed_values` for ``batched``).
    per_seed : sequence over S seeds of sequences of arrays, each (B, ...)
        Method A's per-image inputs for each seed, e.g. ``[(pred_0, gt, cats), (pred_1, gt, cats), ...]``; every
        seed on the same ``B`` images.
    per_seed_b : same structure, optional
        Method B on the same images with the same seeds; the interval is then of A - B, seed by seed.
    n_boot, level, generator
        As in :func:`bootstrap_ci`.
    method, batched, weighted
        As in :func:`crossed_interval` and :func:`seed_values`.

    Returns
    -------
    CI
        The mean over seeds of each seed's metric (or difference), its interval, p-value and method.
    """
    _check_boot(n_boot, level, generator)
    if not per_seed:
        raise ValueError("per_seed: give the arrays of at least one seed")
    if per_seed_b is not None and len(per_seed_b) != len(per_seed):
        raise ValueError(f"per_seed_b must have one entry per seed ({len(per_seed)}), got {len(per_seed_b)}")
    n_images = _resampler(list(per_seed[0]), "per_seed[0]")[0]
    if per_seed_b is not None:
        n_b = _resampler(list(per_seed_b[0]), "per_seed_b[0]")[0]
        if n_b != n_images:
            raise ValueError(f"methods A and B must be scored on the same images, got {n_images} and {n_b}")
    plan = crossed_plan(len(per_seed), n_images, n_boot=n_boot, generator=generator)
    values = seed_values(metric_fn, per_seed, plan, batched=batched, weighted=weighted)
    if per_seed_b is not None:
        values = values - seed_values(metric_fn, per_seed_b, plan, batched=batched, weighted=weighted)
    return crossed_interval(values, plan, level=level, method=method)
