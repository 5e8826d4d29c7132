"""Verdicts and number formatting for the book (fashion_lib.report; the primary claims: test_primary_claims.py)."""

import math

import pytest

from fashion_lib.intervals import CI
from fashion_lib.report import (
    CONTRADICTS,
    SUPPORTS,
    UNDECIDED,
    Row,
    display_label,
    format_ci,
    format_mean_sd,
    mean_sd,
    verdict,
)


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
    # two seeds, no image variation: the t interval on 1 degree of freedom, 0.11 +- 12.71 * 0.0141 / sqrt(2)
    assert scores["A"].ci.half_width == pytest.approx(12.706 * 0.01, rel=1e-3)
    assert scores["B"].ci[:3] == pytest.approx((0.05, 0.05, 0.05))
    table = comparison_table(scores, {"A": 13.70, "B": None}, scale=100, unit=" (%)")
    assert table.loc["A", "paper (%)"] == "13.70" and table.loc["B", "paper (%)"] == "—"
    assert table.loc["A", "ours (%), mean ± sd over 2 seeds"] == "11.00 ± 1.41"
    assert table.loc["B", "ours, mean [95 % interval]"] == "5.00 [5.00, 5.00]"


class Shade(Row):
    """A toy table's rows: key, label."""

    LIGHT = "light", "A light shade"
    DARK = "dark", "A dark shade, the baseline"


def test_a_row_is_keyed_by_its_short_value_and_printed_by_its_label():
    import json

    assert Shade.LIGHT == "light" and Shade("dark") is Shade.DARK and f"{Shade.LIGHT}" == "light"
    assert Shade.DARK.label == "A dark shade, the baseline" and list(Shade) == [Shade.LIGHT, Shade.DARK]
    # a key read back from a file finds the member; JSON (cache keys) writes the short value
    assert {Shade.LIGHT: 1}["light"] == 1 and json.dumps({Shade.LIGHT: [Shade.DARK]}) == '{"light": ["dark"]}'
    assert display_label(Shade.LIGHT) == "A light shade" and display_label("axis once") == "axis once"
    with pytest.raises(ValueError, match="'A light shade' is not a valid Shade"):  # a label is not a key
        Shade("A light shade")


def test_the_comparison_table_prints_rows_by_their_labels():
    from fashion_lib.report import MethodScore, comparison_table

    scores = {Shade.LIGHT: MethodScore((0.10, 0.12), CI(0.11, 0.10, 0.12))}
    table = comparison_table(scores, {Shade.LIGHT: 13.70}, scale=100, not_tested=[Shade.DARK])
    assert list(table.index) == ["A light shade", "A dark shade, the baseline"]
    assert table.loc["A light shade", "paper"] == "13.70"


def test_the_verdict_table_has_one_row_per_comparison():
    from fashion_lib.report import verdict_table

    table = verdict_table({"B − A": CI(-0.0274, -0.04, -0.01), "C − A": CI(0.001, -0.01, 0.02)}, better="lower",
                          claim="it lowers NE", scale=100, unit=" (NE points)")
    assert list(table.index) == ["B − A", "C − A"]
    assert table.loc["B − A", "difference (NE points) [95 % interval]"] == "-2.74 [-4.00, -1.00]"
    assert table.loc["B − A", 'verdict on "it lowers NE"'] == SUPPORTS
    assert table.loc["C − A", 'verdict on "it lowers NE"'] == UNDECIDED
    assert verdict_table({"B − A": CI(0.03, 0.01, 0.05)}, better="higher", claim="it helps").iloc[0, 1] == SUPPORTS


def test_comparison_table_shows_methods_not_tested_at_this_scale():
    from fashion_lib.report import NOT_TESTED, MethodScore, comparison_table

    scores = {"A": MethodScore((0.10, 0.12), CI(0.11, 0.10, 0.12))}
    table = comparison_table(scores, {"A": 13.70, "C": 13.55}, scale=100, unit=" (%)", not_tested=["C"])
    assert list(table.index) == ["A", "C"]
    assert table.loc["C", "paper (%)"] == "13.55"
    assert table.loc["C", "ours (%), mean ± sd over 2 seeds"] == NOT_TESTED == "not tested at this scale"
    assert table.loc["C", "ours, mean [95 % interval]"] == NOT_TESTED
    assert table.loc["A", "ours, mean [95 % interval]"] == "11.00 [10.00, 12.00]"
    with pytest.raises(ValueError, match=r"not_tested names methods that have scores: \['A'\]"):
        comparison_table(scores, {}, not_tested=["A"])


def test_a_baseline_below_the_level_floor_is_too_weak_to_carry_a_verdict():
    from fashion_lib.report import LEVEL_FLOOR, TOO_WEAK, too_weak, verdict_table

    gain = CI(0.05, 0.02, 0.08)  # a clear rise: "supports" on a baseline worth judging
    assert verdict(gain, better="higher", level=0.37) == SUPPORTS
    assert verdict(gain, better="higher", level=0.069) == TOO_WEAK == "too weak to carry a verdict"
    assert verdict(gain, better="higher", level=LEVEL_FLOOR) == SUPPORTS, "the floor itself is enough"
    assert verdict(gain, better="higher", level=math.nan) == TOO_WEAK  # pycocotools' empty size range
    assert too_weak(-1.0) and not too_weak(0.5) and too_weak(0.2, floor=0.3)
    table = verdict_table({"B − A": gain, "D − C": gain}, better="higher", claim="it helps", levels={"D − C": 0.05})
    assert list(table['verdict on "it helps"']) == [SUPPORTS, TOO_WEAK]


def test_format_count_prints_n_of_n_with_the_share():
    from fashion_lib.report import format_count

    assert format_count(12, 40) == "12/40 (30 %)"
    assert format_count(0, 0) == "0/0"
    with pytest.raises(ValueError, match="format_count needs 0 <= n <= total, got n=5, total=4"):
        format_count(5, 4)


def test_axis_share_sentence_says_which_part_drives_the_composite():
    from fashion_lib.report import axis_share_sentence

    second = CI(0.05, 0.02, 0.08)  # the second detection raised AP
    none = axis_share_sentence(CI(0.001, -0.01, 0.012), second, better="higher", unit="AP", scale=100, digits=1)
    assert none.startswith("Against the detector run twice without the axis, New-key-detection changes AP by "
                           "+0.1 [-1.0, +1.2]: the axis cannot be told apart from what the second detection does "
                           "alone (+5.0 [+2.0, +8.0] against the detector)")
    assert none.endswith("The second detection changes AP without the axis; the interval leaves the axis at most "
                         "1.2 AP of New-key-detection's change.")
    helps = axis_share_sentence(CI(-0.5, -0.9, -0.1), CI(0.2, -0.1, 0.5), better="lower", unit="NE",
                                digits=2)
    assert "the axis adds to what" in helps and "at most" not in helps
    hurts = axis_share_sentence(CI(0.5, 0.1, 0.9), second, better="lower", unit="NE")
    assert "the axis takes from" in hurts
    # neither part tells from zero: no bound is drawn
    assert "at most" not in axis_share_sentence(CI(0.0, -1, 1), CI(0.0, -1, 1), better="lower", unit="NE")
    lower = axis_share_sentence(CI(0.1, -0.3, 0.5), CI(-1.0, -1.5, -0.5), better="lower", unit="NE", digits=1)
    assert lower.endswith("leaves the axis at most 0.3 NE of New-key-detection's change.")
