"""Verdicts and number formatting for the book (fashion_lib.report)."""

import dataclasses
import math

import pytest

from fashion_lib.intervals import CI
from fashion_lib.report import (
    CONTRADICTS,
    PRIMARY_CLAIMS,
    SUPPORTS,
    UNDECIDED,
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


def test_the_verdict_table_has_one_row_per_comparison():
    from fashion_lib.report import verdict_table

    table = verdict_table({"B − A": CI(-0.0274, -0.04, -0.01), "C − A": CI(0.001, -0.01, 0.02)}, better="lower",
                          claim="it lowers NE", scale=100, unit=" (NE points)")
    assert list(table.index) == ["B − A", "C − A"]
    assert table.loc["B − A", "difference (NE points) [95 % interval]"] == "-2.74 [-4.00, -1.00]"
    assert table.loc["B − A", 'verdict on "it lowers NE"'] == SUPPORTS
    assert table.loc["C − A", 'verdict on "it lowers NE"'] == UNDECIDED
    assert verdict_table({"B − A": CI(0.03, 0.01, 0.05)}, better="higher", claim="it helps").iloc[0, 1] == SUPPORTS


# ------------------------------------------------------------------ claims, Holm ---------------------------------

def _ne_claim(paper=-2.74):
    from fashion_lib.report import Claim

    return Claim("ne", "New-key-detection lowers NE", "10_table1_fashionai", "lower", paper, "−2.74", "NE points")


@pytest.mark.parametrize("ci, zero, size", [
    # NE points after scale 100; the paper's improvement is 2.74 (a fall of NE)
    (CI(-0.03, -0.04, -0.02), "SUPPORTS", "CONSISTENT"),  # improvement [2, 4] holds 2.74
    (CI(-0.01, -0.015, -0.005), "SUPPORTS", "SMALLER"),  # [0.5, 1.5]: real, but below the paper's
    (CI(-0.05, -0.06, -0.04), "SUPPORTS", "LARGER"),  # [4, 6]: beyond it
    (CI(0.01, 0.005, 0.015), "CONTRADICTS", "SMALLER"),  # NE rose: on the weak side of the paper's value
    (CI(-0.01, -0.03, 0.01), "UNDECIDED", "CONSISTENT"),  # holds zero, half-width 2 < 2.74: could have seen it
    (CI(0.0, -0.04, 0.04), "TOO_SMALL", "CONSISTENT"),  # half-width 4 > 2.74: too small a study to see it
    # as wide, but wholly short of the paper's 2.74: it saw that the effect is not of the paper's size
    (CI(0.03, -0.01, 0.07), "UNDECIDED", "SMALLER"),
])
def test_judge_answers_the_zero_and_the_size_question(ci, zero, size):
    from fashion_lib.report import SizeVerdict, ZeroVerdict, judge

    v = judge(_ne_claim(), ci)
    assert v.zero is ZeroVerdict[zero] and v.size is SizeVerdict[size]
    assert v.half_width == pytest.approx(100 * (ci.high - ci.low) / 2)
    assert v.estimate == pytest.approx(100 * ci.estimate)


def test_judge_higher_is_better_and_labels():
    from fashion_lib.report import Claim, SizeVerdict, ZeroVerdict, judge

    ap = Claim("ap", "AP rises", "11_table1_coco", "higher", 3.2, "+3.2", "AP points", digits=1)
    assert judge(ap, CI(0.05, 0.04, 0.06)).size is SizeVerdict.LARGER
    assert judge(ap, CI(0.01, 0.005, 0.015)).size is SizeVerdict.SMALLER
    assert judge(ap, CI(-0.01, -0.015, -0.005)).zero is ZeroVerdict.CONTRADICTS
    assert ZeroVerdict.TOO_SMALL.label == ("cannot decide: this profile is too small to see an effect of the "
                                           "paper's size")
    assert SizeVerdict.SMALLER.label == "smaller than the paper reports"
    missing = judge(ap, None)
    assert missing.zero is ZeroVerdict.NOT_MEASURED and missing.size is None and math.isnan(missing.estimate)


def test_judge_with_a_holm_adjusted_p_value():
    from fashion_lib.report import ZeroVerdict, judge

    ci = CI(-0.03, -0.04, -0.02, 0.01)
    assert judge(_ne_claim(), ci).zero is ZeroVerdict.SUPPORTS
    # the interval excludes zero, but after Holm's correction p = 0.06 > 0.05
    adjusted = judge(_ne_claim(), ci, p_adjusted=0.06)
    assert adjusted.zero is ZeroVerdict.UNDECIDED and adjusted.p_adjusted == 0.06 and adjusted.p_value == 0.01
    assert judge(_ne_claim(), ci, p_adjusted=0.04).zero is ZeroVerdict.SUPPORTS
    assert judge(_ne_claim(paper=-0.5), CI(0.0, -0.01, 0.01, 0.9), p_adjusted=1.0).zero is ZeroVerdict.TOO_SMALL


def test_holm_against_hand_computed_examples():
    from fashion_lib.report import holm

    # sorted 0.005, 0.01, 0.03, 0.04 -> x4 = 0.02, x3 = 0.03, x2 = 0.06, x1 = 0.04 -> running max 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])  # capped at 1
    assert holm([0.01, math.nan]) == pytest.approx([0.02, 1.0])  # a missing claim keeps m = 2
    assert holm([0.02]) == [0.02]
    with pytest.raises(ValueError, match=r"p-values must lie in \[0, 1\], got \[1.5\]"):
        holm([1.5])


def test_judge_family_applies_holm_across_the_declared_claims():
    from fashion_lib.report import Claim, ZeroVerdict, judge_family

    a = Claim("a", "A", "nb", "higher", 5.0, "+5", "points")
    b = Claim("b", "B", "nb", "higher", 5.0, "+5", "points")
    c = Claim("c", "C", "nb", "higher", 1.0, "+1", "points")
    # p: a 0.01 (x3 = 0.03), b 0.04 (x2 = 0.08): a is supported, b is not, though its own interval excludes zero
    out = judge_family([a, b, c], {"a": CI(0.02, 0.01, 0.03, 0.01), "b": CI(0.02, 0.001, 0.039, 0.04)})
    assert [v.zero for v in out] == [ZeroVerdict.SUPPORTS, ZeroVerdict.UNDECIDED, ZeroVerdict.NOT_MEASURED]
    assert [v.p_adjusted for v in out[:2]] == pytest.approx([0.03, 0.08])
    with pytest.raises(ValueError, match=r"differences names claims outside the family: \['z'\]"):
        judge_family([a], {"z": CI(0, 0, 0)})
    with pytest.raises(ValueError, match="claim keys must be unique"):
        judge_family([a, a], {})


def test_primary_claims_round_trip_through_glue_and_the_front_page_table(tmp_path, monkeypatch):
    import myst_nb.ext.glue as glue_module
    import nbformat

    from fashion_lib.intervals import IntervalMethod
    from fashion_lib.report import (
        PRIMARY_CLAIMS,
        claims_table,
        glue_claim,
        judge_family,
        primary_claim,
        read_claims,
        read_levels,
    )

    assert len(PRIMARY_CLAIMS) == 11 and primary_claim("t1_fashionai_nkd").paper == -2.74
    with pytest.raises(ValueError, match="no primary claim 'nope'; valid: t1_fashionai_nkd, "):
        primary_claim("nope")
    outputs = []
    monkeypatch.setattr(glue_module, "ipy_display",
                        lambda data, raw, metadata: outputs.append(nbformat.v4.new_output(
                            "display_data", data=data, metadata=metadata)))
    ci = CI(-0.03, -0.04, -0.02, 0.001, IntervalMethod.SEED_T)
    page_verdict = glue_claim("t1_fashionai_nkd", ci, level=0.05)
    assert page_verdict.zero.label == "supports"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("", outputs=outputs)])
    nbformat.write(nb, tmp_path / "10_table1_fashionai.ipynb")
    found = read_claims(tmp_path)
    assert found == {"t1_fashionai_nkd": ci}
    assert read_levels(tmp_path) == {"t1_fashionai_nkd": 0.05}
    verdicts = judge_family(PRIMARY_CLAIMS, found)
    assert verdicts[0].p_adjusted == pytest.approx(0.011)  # 11 claims, the others not measured
    table = claims_table(verdicts, levels=read_levels(tmp_path))
    first = table.splitlines()[2]
    # in proportion: -3 points over our 5 % is -60 % [-80, -40], the paper's -2.74 over 13.70 is -20 %: larger
    assert first.startswith("| New-key-detection lowers FashionAI NE (NE points) | −2.74 (13.70 → 10.96) | "
                            "−3.00 [−4.00, −2.00] | 0.011 | **supports** | consistent with the paper's size | "
                            "−60 [−80, −40] % against −20 %: larger than the paper reports | "
                            "1.00 | t interval from the seed and image variance components | "
                            "{doc}`results/10_table1_fashionai` |")
    assert "| — | 1.00 |" not in first and claims_table(verdicts).splitlines()[2].count("| — |") >= 1
    assert "**not measured in this build**" in table.splitlines()[3]
    assert "1 of the 11 claims are supported" in table


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


def test_a_claim_not_tested_has_no_verdict_and_counts_as_p_one_in_holm():
    from fashion_lib.report import Claim, NotTested, ZeroVerdict, judge, judge_family

    a = Claim("a", "A", "nb", "higher", 5.0, "+5", "points")
    b = Claim("b", "B", "nb", "higher", 5.0, "+5", "points")
    # a strongly "supported" difference would be judged if the marker were ignored: it must not be
    out = judge_family([a, b], {"a": CI(0.02, 0.01, 0.03, 0.01), "b": NotTested("no CPN at this scale.")})
    assert out[1].zero is ZeroVerdict.NOT_TESTED and out[1].size is None and out[1].reason == "no CPN at this scale."
    assert math.isnan(out[1].estimate) and math.isnan(out[1].p_adjusted)
    assert out[0].p_adjusted == pytest.approx(0.02)  # m stays 2: the untested claim counts as p = 1
    assert judge(a, NotTested("why")).zero.label == "not tested at this scale"
    with pytest.raises(ValueError, match="NotTested needs a reason"):
        NotTested("  ")


def test_a_claim_not_tested_round_trips_to_the_front_page_as_not_tested(tmp_path, monkeypatch):
    import myst_nb.ext.glue as glue_module
    import nbformat

    from fashion_lib.intervals import IntervalMethod
    from fashion_lib.report import (
        PRIMARY_CLAIMS,
        NotTested,
        ZeroVerdict,
        claims_table,
        glue_claim,
        glue_not_tested,
        judge_family,
        read_claims,
    )

    outputs = []
    monkeypatch.setattr(glue_module, "ipy_display",
                        lambda data, raw, metadata: outputs.append(nbformat.v4.new_output(
                            "display_data", data=data, metadata=metadata)))
    ci = CI(-0.03, -0.04, -0.02, 0.001, IntervalMethod.SEED_T)
    glue_claim("t1_fashionai_nkd", ci)
    reason = "This profile trains no CPN."
    page = glue_not_tested("t1_fashionai_cpn", reason)
    assert page.zero is ZeroVerdict.NOT_TESTED
    glue_not_tested("t1_fashionai_nkd_vs_cpn", reason)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("", outputs=outputs)])
    nbformat.write(nb, tmp_path / "10_table1_fashionai.ipynb")
    found = read_claims(tmp_path)
    assert found == {"t1_fashionai_nkd": ci, "t1_fashionai_cpn": NotTested(reason),
                     "t1_fashionai_nkd_vs_cpn": NotTested(reason)}
    verdicts = judge_family(PRIMARY_CLAIMS, found)
    assert verdicts[0].p_adjusted == pytest.approx(0.011)  # still 11 claims in Holm's family
    lines = claims_table(verdicts).splitlines()
    cpn = next(line for line in lines if line.startswith("| CPN is better than Mask R-CNN on FashionAI"))
    assert "**not tested at this scale**" in cpn and "supports" not in cpn and "cannot decide" not in cpn
    assert "**not measured in this build**" in next(line for line in lines if "on COCO" in line)
    note = lines[-1]
    assert note.startswith("2 of the claims are **not tested at this scale**: This profile trains no CPN. ")
    assert note.count(reason) == 1 and "p = 1" in note and "11 declared claims" in note


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


def test_relative_size_judges_proportions_when_levels_differ():
    from fashion_lib.report import SizeVerdict, primary_claim, relative_sentence, relative_size

    claim = primary_claim("t1_fashionai_nkd")  # the paper: -2.74 NE points of 13.70, -20 %
    ours = CI(-0.0078, -0.0175, 0.0020)  # -0.78 [-1.75, +0.20] NE points on our 6.48
    rel, size = relative_size(claim, ours, 0.0648)
    assert rel.estimate == pytest.approx(-0.0078 / 0.0648) and rel.low == pytest.approx(-0.0175 / 0.0648)
    assert size is SizeVerdict.CONSISTENT  # absolute: smaller; in proportion the interval holds -20 %
    assert relative_size(claim, CI(-0.005, -0.008, -0.002), 0.0648)[1] is SizeVerdict.SMALLER
    assert relative_size(claim, CI(-0.03, -0.04, -0.02), 0.0648)[1] is SizeVerdict.LARGER
    coco = primary_claim("t1_coco_nkd")  # higher is better: +3.2 of 62.7, +5 %
    assert relative_size(coco, CI(0.036, 0.02, 0.05), 0.38)[1] is SizeVerdict.LARGER
    assert relative_sentence(claim, ours, 0.0648) == (
        "Relative to each baseline's own level (ours 6.48, the paper's 13.7 NE), our change is -12 [-27, +3] % "
        "(our baseline's own spread not in the interval) against the paper's -20 %: consistent with the paper's "
        "size in proportion, though the interval holds no change as well.")
    assert relative_sentence(coco, CI(0.036, 0.015, 0.058), 0.383).endswith("+5 %: consistent with the paper's size "
                                                                            "in proportion.")
    with pytest.raises(ValueError, match="positive baseline level"):
        relative_size(claim, ours, 0.0)
    assert relative_sentence(coco, ours, 0.0) == "Our baseline scores 0.0 AP: no change relative to it can be given."
    with pytest.raises(ValueError, match="has no paper_level"):
        relative_size(dataclasses.replace(primary_claim("t2_joint"), paper_level=math.nan), ours, 0.5)
    # every primary claim has its base: the front page's proportion column has a row for each measured claim
    assert all(math.isfinite(c.paper_level) and c.paper_level > 0 for c in PRIMARY_CLAIMS)
