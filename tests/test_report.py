"""Verdicts and number formatting for the book (fashion_lib.report)."""

import math

import pytest

from fashion_lib.metrics import CI
from fashion_lib.report import CONTRADICTS, SUPPORTS, UNDECIDED, format_ci, format_mean_sd, mean_sd, verdict


@pytest.mark.parametrize("ci, better, expected", [
    (CI(-0.02, -0.03, -0.01), "lower", SUPPORTS),  # NE fell, whole interval below zero
    (CI(-0.02, -0.03, 0.001), "lower", UNDECIDED),  # holds zero
    (CI(0.02, 0.01, 0.03), "lower", CONTRADICTS),  # NE rose
    (CI(3.2, 1.0, 5.0), "higher", SUPPORTS),  # AP rose
    (CI(-3.2, -5.0, -1.0), "higher", CONTRADICTS),
    (CI(0.0, 0.0, 0.0), "higher", UNDECIDED),  # no difference at all
    (CI(1.0, math.nan, math.nan), "higher", UNDECIDED),
])
def test_verdict_reads_the_interval_not_the_mean(ci, better, expected):
    assert verdict(ci, better=better) == expected


def test_a_positive_mean_with_an_interval_across_zero_cannot_decide():
    assert verdict(CI(0.5, -0.1, 1.1), better="higher") == UNDECIDED
    with pytest.raises(ValueError, match="better must be 'lower' or 'higher', got 'up'"):
        verdict(CI(0, 0, 0), better="up")


def test_formatting():
    assert format_ci(CI(0.1096, 0.101, 0.118), scale=100) == "10.96 [10.10, 11.80]"
    assert format_ci(CI(-0.0274, -0.04, -0.01), scale=100, signed=True) == "-2.74 [-4.00, -1.00]"
    assert format_mean_sd([1.0, 2.0, 3.0]) == "2.00 ± 1.00"
    assert format_mean_sd([0.5], scale=100, digits=1) == "50.0"
    assert mean_sd([2.0, 4.0]) == pytest.approx((3.0, math.sqrt(2.0)))
    with pytest.raises(ValueError, match="at least one number"):
        mean_sd([])


def test_score_methods_and_the_comparison_table():
    import torch

    from fashion_lib.report import comparison_table, score_methods

    def mean(x):
        return float(torch.as_tensor(x, dtype=torch.float64).mean())

    arrays = {"A": [(torch.full((10,), 0.10),), (torch.full((10,), 0.12),)],
              "B": [(torch.full((10,), 0.05),), (torch.full((10,), 0.05),)]}
    scores = score_methods(arrays, mean, n_boot=50, generator=torch.Generator().manual_seed(0))
    assert scores["A"].per_seed == pytest.approx((0.10, 0.12))
    assert scores["A"].ci.estimate == pytest.approx(0.11)
    assert 0.10 - 1e-9 <= scores["A"].ci.low <= scores["A"].ci.high <= 0.12 + 1e-9
    assert scores["B"].ci == pytest.approx((0.05, 0.05, 0.05))
    table = comparison_table(scores, {"A": 13.70, "B": None}, scale=100, unit=" (%)")
    assert table.loc["A", "paper (%)"] == "13.70" and table.loc["B", "paper (%)"] == "—"
    assert table.loc["A", "ours (%), mean ± sd over 2 seeds"] == "11.00 ± 1.41"
    assert table.loc["B", "ours, pooled [95 % interval]"] == "5.00 [5.00, 5.00]"


def test_the_verdict_table_has_one_row_per_comparison():
    from fashion_lib.report import verdict_table

    table = verdict_table({"B − A": CI(-0.0274, -0.04, -0.01), "C − A": CI(0.001, -0.01, 0.02)}, better="lower",
                          claim="it lowers NE", scale=100, unit=" (NE points)")
    assert list(table.index) == ["B − A", "C − A"]
    assert table.loc["B − A", "difference (NE points) [95 % interval]"] == "-2.74 [-4.00, -1.00]"
    assert table.loc["B − A", 'verdict on "it lowers NE"'] == SUPPORTS
    assert table.loc["C − A", 'verdict on "it lowers NE"'] == UNDECIDED
    assert verdict_table({"B − A": CI(0.03, 0.01, 0.05)}, better="higher", claim="it helps").iloc[0, 1] == SUPPORTS
