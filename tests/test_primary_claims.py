"""The paper's primary claims (fashion_lib.primary_claims): both verdicts on a claim, Holm's correction across the
family, the round trip through glue to the front page's table, and the names fashion_lib.report forwards."""

import dataclasses
import math

import pytest

from fashion_lib.intervals import CI
from fashion_lib.primary_claims import (
    PRIMARY_CLAIMS,
    Claim,
    NotTested,
    claims_table,
    glue_claim,
    glue_not_tested,
    holm,
    judge,
    judge_family,
    primary_claim,
    read_claims,
    read_levels,
    relative_sentence,
    relative_size,
)
from fashion_lib.report import SizeVerdict, ZeroVerdict


def _ne_claim(paper=-2.74):
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
    v = judge(_ne_claim(), ci)
    assert v.zero is ZeroVerdict[zero] and v.size is SizeVerdict[size]
    assert v.half_width == pytest.approx(100 * (ci.high - ci.low) / 2)
    assert v.estimate == pytest.approx(100 * ci.estimate)


def test_percent_digits_show_two_significant_figures_up_to_two_decimals():
    from fashion_lib.primary_claims import percent_digits

    assert [percent_digits(x) for x in (-20.0, 5.3, 0.37, 0.086, 0.043, 0.0, math.nan)] == [0, 1, 2, 2, 2, 0, 0]
    assert f"{0.34 / 92.52 * 100:+.{percent_digits(0.34 / 92.52 * 100)}f}" == "+0.37"


def test_judge_higher_is_better_and_labels():
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
    ci = CI(-0.03, -0.04, -0.02, 0.01)
    assert judge(_ne_claim(), ci).zero is ZeroVerdict.SUPPORTS
    # the interval excludes zero, but after Holm's correction p = 0.06 > 0.05
    adjusted = judge(_ne_claim(), ci, p_adjusted=0.06)
    assert adjusted.zero is ZeroVerdict.UNDECIDED and adjusted.p_adjusted == 0.06 and adjusted.p_value == 0.01
    assert judge(_ne_claim(), ci, p_adjusted=0.04).zero is ZeroVerdict.SUPPORTS
    assert judge(_ne_claim(paper=-0.5), CI(0.0, -0.01, 0.01, 0.9), p_adjusted=1.0).zero is ZeroVerdict.TOO_SMALL


def test_holm_against_hand_computed_examples():
    # sorted 0.005, 0.01, 0.03, 0.04 -> x4 = 0.02, x3 = 0.03, x2 = 0.06, x1 = 0.04 -> running max 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])  # capped at 1
    assert holm([0.01, math.nan]) == pytest.approx([0.02, 1.0])  # a missing claim keeps m = 2
    assert holm([0.02]) == [0.02]
    with pytest.raises(ValueError, match=r"p-values must lie in \[0, 1\], got \[1.5\]"):
        holm([1.5])


def test_judge_family_applies_holm_across_the_declared_claims():
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


def test_a_claim_not_tested_has_no_verdict_and_counts_as_p_one_in_holm():
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
    # a p-value that rounds to zero at three digits says so
    tiny = dataclasses.replace(verdicts[0], p_adjusted=0.0001)
    assert "| < 0.001 |" in claims_table([tiny]) and "| 0.011 |" in claims_table(verdicts[:1])


def test_relative_size_judges_proportions_when_levels_differ():
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
    # the paper's +5.1 % to two significant figures, ours with as many decimals
    assert relative_sentence(coco, CI(0.036, 0.015, 0.058), 0.383).endswith(
        "+9.4 [+3.9, +15.1] % (our baseline's own spread not in the interval) against the paper's +5.1 %: consistent "
        "with the paper's size in proportion.")
    with pytest.raises(ValueError, match="positive baseline level"):
        relative_size(claim, ours, 0.0)
    assert relative_sentence(coco, ours, 0.0) == "Our baseline scores 0.0 AP: no change relative to it can be given."
    with pytest.raises(ValueError, match="has no paper_level"):
        relative_size(dataclasses.replace(primary_claim("t2_joint"), paper_level=math.nan), ours, 0.5)
    # every primary claim has its base: the front page's proportion column has a row for each measured claim
    assert all(math.isfinite(c.paper_level) and c.paper_level > 0 for c in PRIMARY_CLAIMS)
