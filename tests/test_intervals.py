"""Tests for fashion_lib.intervals: the image bootstrap, its paired form, the crossed bootstrap over seeds and
images (with simulated coverage) and their errors."""

from __future__ import annotations

import math

import pytest
import torch
from ne_cases import hand_case as _hand_case

from fashion_lib.intervals import (
    CI,
    SEEDS_FOR_PERCENTILE,
    IntervalMethod,
    bootstrap_ci,
    crossed_bootstrap_ci,
    crossed_interval,
    crossed_plan,
    paired_bootstrap_ci,
    seed_values,
)
from fashion_lib.metrics import normalized_error

# ------------------------------------------------------------------ bootstrap ----------------------------------


def _mean(x):
    return float(torch.as_tensor(x, dtype=torch.float64).mean())


def test_bootstrap_ci_of_mean_has_normal_width():
    x = torch.randn(400, generator=torch.Generator().manual_seed(11), dtype=torch.float64)
    est, low, high, *_ = bootstrap_ci(_mean, x, n_boot=2000, generator=torch.Generator().manual_seed(0))
    assert est == pytest.approx(float(x.mean()))
    half = 1.96 * float(x.std()) / 20  # normal-theory half-width of a 95 % interval, n = 400
    assert low < est < high
    assert (high - low) / 2 == pytest.approx(half, rel=0.1)
    narrow = bootstrap_ci(_mean, x, n_boot=2000, level=0.5, generator=torch.Generator().manual_seed(0))
    assert narrow.high - narrow.low < (high - low) / 2


def test_bootstrap_ci_is_reproducible_and_constant_metric_is_degenerate():
    x = torch.arange(10.0)
    a = bootstrap_ci(_mean, x, n_boot=50, generator=torch.Generator().manual_seed(3))
    b = bootstrap_ci(_mean, x, n_boot=50, generator=torch.Generator().manual_seed(3))
    assert a == b and isinstance(a, CI) and type(a.low) is float
    assert bootstrap_ci(lambda _: 2.5, x, n_boot=20, generator=torch.Generator())[:3] == (2.5, 2.5, 2.5)


def test_bootstrap_ci_resamples_ne_with_category_names():
    pred, gt, cats = _hand_case()
    ci = bootstrap_ci(lambda p, g, c: normalized_error(p, g, c).ne, pred, gt, cats, n_boot=200,
                      generator=torch.Generator().manual_seed(0))
    # two images: every replicate is skirt only (0.2), blouse only (0.75) or a mix
    assert ci.estimate == pytest.approx(0.42)
    assert ci.low == pytest.approx(0.2) and ci.high == pytest.approx(0.75)


def test_paired_bootstrap_ci_of_a_difference():
    g = torch.Generator().manual_seed(2)
    base = torch.randn(200, generator=g, dtype=torch.float64) * 5
    shifted = base + 1.0
    same = paired_bootstrap_ci(_mean, (shifted,), (base,), n_boot=100, generator=g)
    assert same[:3] == pytest.approx((1, 1, 1))
    assert same.p_value == pytest.approx(2 / 101) and same.method is IntervalMethod.IMAGES
    noisy = base + 1.0 + torch.randn(200, generator=g, dtype=torch.float64) * 0.1
    paired = paired_bootstrap_ci(_mean, (noisy,), (base,), n_boot=500, generator=torch.Generator().manual_seed(0))
    # pairing cancels the large shared spread (sd 5): the interval is about 0.1 / sqrt(200) wide, not 5 / ...
    assert paired.low < 1.0 < paired.high or abs(paired.estimate - 1.0) < 0.03
    assert paired.high - paired.low < 0.05


def test_bootstrap_bad_input():
    x = torch.zeros(5)
    gen = torch.Generator()
    with pytest.raises(ValueError, match=r"arrays must share their first dimension \(instances\), got lengths \[5, "):
        bootstrap_ci(lambda a, b: 0.0, x, torch.zeros(4), generator=gen)
    with pytest.raises(ValueError, match="level must be in \\(0, 1\\), got 95"):
        bootstrap_ci(_mean, x, level=95, generator=gen)
    with pytest.raises(ValueError, match="generator must be a torch.Generator, got int"):
        bootstrap_ci(_mean, x, generator=0)
    with pytest.raises(ValueError, match="metric_fn must return a number, got NEResult"):
        pred, gt, cats = _hand_case()
        bootstrap_ci(normalized_error, pred, gt, cats, generator=gen)
    with pytest.raises(ValueError, match="arrays_a and arrays_b must hold the same instances, got 5 and 4"):
        paired_bootstrap_ci(_mean, (x,), (torch.zeros(4),), generator=gen)


def test_crossed_bootstrap_with_one_seed_is_the_paired_image_bootstrap():
    g = torch.Generator().manual_seed(4)
    a, b = torch.randn(150, generator=g, dtype=torch.float64), torch.randn(150, generator=g, dtype=torch.float64)
    one = crossed_bootstrap_ci(_mean, [(a,)], [(b,)], n_boot=300, generator=torch.Generator().manual_seed(1))
    paired = paired_bootstrap_ci(_mean, (a,), (b,), n_boot=300, generator=torch.Generator().manual_seed(1))
    assert one.method is IntervalMethod.IMAGES
    assert one.estimate == pytest.approx(paired.estimate)
    # same construction, other draws: the widths agree to bootstrap noise
    assert one.half_width == pytest.approx(paired.half_width, rel=0.15)


def test_crossed_bootstrap_widens_the_interval_by_the_spread_between_seeds():
    g = torch.Generator().manual_seed(5)
    # three training seeds whose mean improvement is 0.5, 2.0 and 3.5, each measured on the same 300 images
    base = torch.randn(300, generator=g, dtype=torch.float64)
    per_seed_a, per_seed_b = [], []
    for shift in (0.5, 2.0, 3.5):
        per_seed_b.append((base,))
        per_seed_a.append((base + shift + 0.05 * torch.randn(300, generator=g, dtype=torch.float64),))
    ci = crossed_bootstrap_ci(_mean, per_seed_a, per_seed_b, n_boot=400, generator=torch.Generator().manual_seed(0))
    assert ci.method is IntervalMethod.SEED_T
    assert ci.estimate == pytest.approx(2.0, abs=0.01)
    # t interval over three per-seed values (sd 1.5): 2.0 +- 4.30 * 1.5 / sqrt(3); the image part is negligible
    assert ci.half_width == pytest.approx(4.303 * 1.5 / math.sqrt(3), rel=0.01)
    t_p = 2 * 0.0735  # two-sided p of t = 2.0 / (1.5 / sqrt 3) = 2.31 on 2 degrees of freedom
    assert ci.p_value == pytest.approx(t_p, rel=0.05)
    # the crossed percentile interval never leaves the observed seeds' range: too narrow with three seeds
    pct = crossed_bootstrap_ci(_mean, per_seed_a, per_seed_b, n_boot=400, method="crossed",
                               generator=torch.Generator().manual_seed(0))
    assert pct.method is IntervalMethod.CROSSED
    assert pct.low >= 0.5 - 0.05 and pct.high <= 3.5 + 0.05 and pct.half_width < ci.half_width / 2


def test_crossed_plan_shares_one_image_resample_across_seeds_and_methods():
    plan = crossed_plan(3, 7, n_boot=5, generator=torch.Generator().manual_seed(0))
    assert plan.images.shape == (5, 7) and plan.seeds.shape == (5, 3)
    x = torch.arange(7.0, dtype=torch.float64)
    # every seed's arrays are the same image ids: each replicate's per-seed values agree exactly
    vals = seed_values(_mean, [(x,), (x,), (x,)], plan)
    assert torch.equal(vals.replicates[:, 0], vals.replicates[:, 2])
    assert torch.allclose(vals.replicates[:, 0], x[plan.images].mean(1))
    batched = seed_values(lambda v: v.mean(-1), [(x,), (x,), (x,)], plan, batched=True)
    assert torch.allclose(batched.replicates, vals.replicates) and torch.allclose(batched.full, vals.full)
    diff = vals - seed_values(_mean, [(x + 1,), (x + 2,), (x + 3,)], plan)
    assert diff.full.tolist() == pytest.approx([-1.0, -2.0, -3.0])
    assert torch.allclose(diff.replicates, torch.tensor([-1.0, -2.0, -3.0], dtype=torch.float64).expand(5, 3))


def _coverage(ci_fn, *, seeds: int, seed_sd: float, paired: bool, trials: int, images: int = 100,
              seed: int = 0) -> float:
    """Fraction of simulated crossed designs whose 95 % interval holds the true mean (or difference).

    Per-image scores ``mu + a_s + b_i + e_si``: seed effects ``a_s`` (sd ``seed_sd``), image effects ``b_i`` (sd 1)
    shared by every seed, noise ``e_si`` (sd 1). Paired: method A adds ``delta + u_s + g_i`` to the same ``a_s +
    b_i`` (``u_s`` sd ``seed_sd``, ``g_i`` sd 0.5, its own noise), so the difference keeps a seed and an image
    component. ``ci_fn(per_seed_a, per_seed_b or None) -> CI`` on lists of ``((B,) scores,)``.
    """
    g = torch.Generator().manual_seed(seed)

    def randn(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    mu, delta = 0.5, 0.3
    hits = 0
    for _ in range(trials):  # over simulated studies: each draws its own seeds and images
        shared = mu + seed_sd * randn(seeds, 1) + randn(1, images)  # (S, B) a_s + b_i
        b = shared + randn(seeds, images)
        if paired:
            a = shared + delta + seed_sd * randn(seeds, 1) + 0.5 * randn(1, images) + randn(seeds, images)
            ci, truth = ci_fn([(x,) for x in a], [(x,) for x in b]), delta
        else:
            ci, truth = ci_fn([(x,) for x in b], None), mu
        hits += ci.low <= truth <= ci.high
    return hits / trials


@pytest.mark.parametrize("seeds", [3, 5])
@pytest.mark.parametrize("seed_sd", [0.0, 0.3])
@pytest.mark.parametrize("paired", [False, True])
def test_crossed_bootstrap_covers_the_true_value_in_crossed_designs(seeds, seed_sd, paired):
    """Nominal 95 %: at least 90 % of 300 simulated studies (binomial sd 1.3 points at 95 %, 2.3 at 80 %)."""
    gen = torch.Generator().manual_seed(100 + seeds)

    def ci_fn(a, b):
        return crossed_bootstrap_ci(lambda x: x.mean(-1), a, b, n_boot=400, batched=True, generator=gen)

    cover = _coverage(ci_fn, seeds=seeds, seed_sd=seed_sd, paired=paired, trials=300, seed=seeds)
    assert cover >= 0.90, f"coverage {cover:.3f}"


def test_crossed_interval_auto_switches_to_the_percentile_with_many_seeds():
    g = torch.Generator().manual_seed(9)
    per_seed = [(torch.randn(30, generator=g, dtype=torch.float64),) for _ in range(SEEDS_FOR_PERCENTILE)]
    ci = crossed_bootstrap_ci(_mean, per_seed, n_boot=50, generator=torch.Generator().manual_seed(0))
    assert ci.method is IntervalMethod.CROSSED
    fewer = crossed_bootstrap_ci(_mean, per_seed[:-1], n_boot=50, generator=torch.Generator().manual_seed(0))
    assert fewer.method is IntervalMethod.SEED_T
    assert IntervalMethod.SEED_T.label == "t interval from the seed and image variance components"


def test_crossed_interval_of_a_constant_and_of_nan_replicates(caplog):
    plan = crossed_plan(3, 4, n_boot=10, generator=torch.Generator().manual_seed(0))
    const = seed_values(lambda x: 2.0, [(torch.zeros(4),)] * 3, plan)
    assert crossed_interval(const, plan)[:4] == (2.0, 2.0, 2.0, 0.0)
    nan_once = seed_values(_mean, [(torch.tensor([1.0, 2.0, 3.0, math.nan]),)] * 3, plan)
    ci = crossed_interval(nan_once, plan)
    assert "replicates gave a non-finite metric and were dropped" in caplog.text
    assert math.isnan(ci.estimate)


def test_crossed_bootstrap_bad_input():
    gen = torch.Generator()
    with pytest.raises(ValueError, match="per_seed: give the arrays of at least one seed"):
        crossed_bootstrap_ci(_mean, [], generator=gen)
    with pytest.raises(ValueError, match=r"per_seed_b must have one entry per seed \(2\), got 1"):
        crossed_bootstrap_ci(_mean, [(torch.zeros(3),), (torch.zeros(3),)], [(torch.zeros(3),)], generator=gen)
    with pytest.raises(ValueError, match="methods A and B must be scored on the same images, got 3 and 2"):
        crossed_bootstrap_ci(_mean, [(torch.zeros(3),)], [(torch.zeros(2),)], generator=gen)
    with pytest.raises(ValueError, match=r"every seed must be scored on the same images \(a crossed design\), "
                                         r"got \[3, 4\] instances"):
        crossed_bootstrap_ci(_mean, [(torch.zeros(3),), (torch.zeros(4),)], generator=gen)
    with pytest.raises(ValueError, match=r"with batched=True metric_fn must return \(1,\) values"):
        crossed_bootstrap_ci(_mean, [(torch.zeros(3),)], n_boot=5, batched=True, generator=gen)
    with pytest.raises(ValueError, match=r"with weighted=True metric_fn must return \(5,\) values"):
        crossed_bootstrap_ci(lambda x, weights=None: x.mean() if weights is None else weights.sum(),
                             [(torch.zeros(3),)], n_boot=5, weighted=True, generator=gen)
    with pytest.raises(ValueError, match="choose batched or weighted, not both"):
        crossed_bootstrap_ci(_mean, [(torch.zeros(3),)], n_boot=5, batched=True, weighted=True, generator=gen)
    with pytest.raises(ValueError, match="method must be 'auto', 'seed-t' or 'crossed', got 't'"):
        crossed_bootstrap_ci(_mean, [(torch.zeros(3),)], n_boot=5, method="t", generator=gen)
    with pytest.raises(ValueError, match="n_images must be an integer >= 1, got 0"):
        crossed_plan(2, 0, generator=gen)
