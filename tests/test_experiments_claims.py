"""A page's comparisons judged and glued in one loop (fashion_lib.experiments.claims)."""

from __future__ import annotations

import pytest

from fashion_lib.experiments.claims import comparison_label, judge_claims, labelled
from fashion_lib.experiments.keypoints import CPN, KRCNN, NKD, TWICE
from fashion_lib.intervals import CI
from fashion_lib.report import CONTRADICTS, NOT_TESTED, SUPPORTS, TOO_WEAK, UNDECIDED


@pytest.fixture
def glued(monkeypatch) -> dict:
    """What the cell glues: name -> the plain-text value (myst_nb's display is replaced by a recorder)."""
    import myst_nb.ext.glue as glue_module

    out = {}

    def record(data, raw, metadata):
        # glue names its mime types with a prefix of its own ("application/papermill.record/text/plain")
        out[metadata["scrapbook"]["name"]] = next(v for k, v in data.items() if k.endswith(("text/plain",
                                                                                            "text/markdown")))

    monkeypatch.setattr(glue_module, "ipy_display", record)
    return out


CLAIMS = {"nkd": (NKD, KRCNN), "cpn": (CPN, KRCNN), "twice": (TWICE, KRCNN), "axis_share": (NKD, TWICE)}
INTERVALS = {"nkd": CI(-0.03, -0.04, -0.02), "twice": CI(0.01, -0.01, 0.03), "axis_share": CI(0.02, 0.01, 0.03),
             "cpn": CI(-0.01, -0.02, 0.0)}


def test_judge_claims_glues_each_tested_claim_and_marks_untested_primary_ones(glued):
    calls = []

    def interval(key, row, baseline):
        calls.append((key, row, baseline))
        return INTERVALS[key]

    differences, verdicts = judge_claims(CLAIMS, interval, page="t1_fashionai", better="lower", untested=(CPN,),
                                         not_tested_reason="no CPN here", level=lambda a, b: 0.12)
    # the intervals are asked for in the claims' order, untested claims skipped (a shared generator's draws)
    assert calls == [("nkd", NKD, KRCNN), ("twice", TWICE, KRCNN), ("axis_share", NKD, TWICE)]
    # keyed by claim, never by the words a page prints
    assert differences == {"nkd": INTERVALS["nkd"], "twice": INTERVALS["twice"], "axis_share": INTERVALS["axis_share"]}
    assert verdicts == {"nkd": SUPPORTS, "twice": UNDECIDED, "axis_share": CONTRADICTS}
    assert glued["diff_nkd"] == "-3.0" and glued["diff_nkd_low"] == "-4.0" and glued["verdict_twice"] == repr(UNDECIDED)
    # primary claims (report.PRIMARY_CLAIMS) go to the front page; the others stay on the page
    assert "claim_t1_fashionai_nkd" in glued and "claim_t1_fashionai_twice" not in glued
    assert "no CPN here" in glued["claim_t1_fashionai_cpn"] and glued["t1_fashionai_cpn_size"] == repr(NOT_TESTED)
    assert "diff_cpn" not in glued and "verdict_cpn" not in glued


def test_judge_claims_puts_the_level_in_the_verdict_only_when_asked(glued):
    weak = {"nkd": (NKD, KRCNN)}
    below_floor = lambda a, b: 0.001  # noqa: E731 - a baseline that has learnt nothing
    _, plain = judge_claims(weak, lambda *_: CI(0.03, 0.02, 0.04), page="t1_coco", better="higher",
                            level=below_floor)
    _, floored = judge_claims(weak, lambda *_: CI(0.03, 0.02, 0.04), page="t1_coco", better="higher",
                              level=below_floor, level_in_verdict=True)
    assert plain == {"nkd": SUPPORTS} and floored == {"nkd": TOO_WEAK}


def test_judge_claims_needs_a_reason_for_what_it_leaves_untested():
    with pytest.raises(ValueError, match=r"untested rows \['cpn'\] need a not_tested_reason"):
        judge_claims(CLAIMS, lambda *_: CI(0.0, 0.0, 0.0), page="t1_coco", better="higher", untested=(CPN,))


def test_judge_claims_glues_differences_under_the_page_s_name(glued):
    judge_claims({"nkd": (NKD, KRCNN)}, lambda *_: INTERVALS["nkd"], page="t2", better="lower",
                 diff_name="diff_map_{key}")
    assert glued["diff_map_nkd"] == "-3.0" and glued["diff_map_nkd_high"] == "-2.0" and "diff_nkd" not in glued
    assert glued["verdict_nkd"] == repr(SUPPORTS)


def test_judge_claims_takes_each_claim_s_level_from_a_mapping(glued):
    # two columns of the same two rows: the level (a baseline's own score) differs by column
    two = {"all_top3": (NKD, KRCNN), "all_top5": (NKD, KRCNN)}
    _, verdicts = judge_claims(two, lambda *_: CI(0.03, 0.02, 0.04), page="t3", better="higher",
                               level={"all_top3": 0.001}, level_in_verdict=True, verdict_name="verdict_t3_{key}")
    assert verdicts == {"all_top3": TOO_WEAK, "all_top5": SUPPORTS}
    assert glued["verdict_t3_all_top3"] == repr(TOO_WEAK) and glued["verdict_t3_all_top5"] == repr(SUPPORTS)
    assert "claim_t3_all_top3" in glued  # a primary claim (primary_claims.PRIMARY_CLAIMS)


def test_labelled_names_each_claim_by_its_rows_labels_in_the_order_given():
    values = {"twice": 0.1, "nkd": 0.2}
    assert labelled(CLAIMS, values) == {"Keypoint R-CNN twice, no symmetry − Keypoint R-CNN": 0.1,
                                        "Keypoint R-CNN + New-key-detection − Keypoint R-CNN": 0.2}
    assert list(labelled(CLAIMS, values)) == [comparison_label(TWICE, KRCNN), comparison_label(NKD, KRCNN)]
    # a row that is a plain string (a page's own comparison) is printed as it is
    assert comparison_label("axis once", KRCNN) == "axis once − Keypoint R-CNN"
    with pytest.raises(KeyError):
        labelled(CLAIMS, {"no such claim": 0.0})
    # two claims on the same rows (a page's columns) would print as one row: refused, not one of them dropped
    with pytest.raises(ValueError, match="compare the same rows"):
        labelled({"all_top3": (NKD, KRCNN), "all_top5": (NKD, KRCNN)}, {"all_top3": 0.1, "all_top5": 0.2})
