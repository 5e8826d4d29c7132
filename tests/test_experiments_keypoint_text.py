"""The key-point pages' sentences (fashion_lib.experiments.keypoint_text)."""

from __future__ import annotations

import math

import pytest
from test_experiments_keypoints import tiny

from fashion_lib.experiments import keypoint_text as kt


def test_missing_rule_sentence_names_the_rule_and_each_seeds_threshold():
    assert kt.missing_rule_sentence(tiny(calibration_images=100), [0.1234, 0.2]) == (
        "Every point scoring above 0 votes for the axis (every detected point, as the paper's Alg. 2 lets them); a "
        "point is replaced by its partner's mirror image when its score is at or below the threshold calibrated "
        "(Youden's J) on 100 fresh images of the training world per seed (never the validation set), 0.123, 0.200, "
        "and its partner's is above it.")
    assert kt.missing_rule_sentence(tiny(), [0.0], 0.1) == (
        "Every point scoring above 0.1 votes for the axis; a point is replaced by its partner's "
        "mirror image when its score is at or below the fixed threshold 0.000 (no calibration) and its partner's is "
        "above it.")


@pytest.mark.parametrize("before, after, words", [
    (19.6, 25.4, "The fill raised the error of the filled points from 19.6 % "),
    (25.4, 19.6, "The fill lowered the error of the filled points from 25.4 % "),
    (20.0, 20.0, "The fill left the error"),
    (20.04, 20.01, "The fill left the error of the filled points from 20.0 % (where the detector put them) to 20.0 %"),
    (math.nan, math.nan, "No labelled point was filled (7 filled in all)"),
])
def test_fill_sentence_follows_the_measured_direction(before, after, words):
    sentence = kt.fill_sentence({"filled_error_before": before, "filled_error_after": after, "points_filled": 7,
                                 "filled_labelled": 5})
    assert sentence.startswith(words)
    assert math.isnan(before) or sentence.endswith("on the 5 of the 7 filled points that the ground truth labels.")


def test_second_scale_sentence_judges_the_crop_against_the_bar():
    from fashion_lib.intervals import CI

    inside = kt.second_scale_sentence(CI(0.005, -0.01, 0.015), unit="NE points", scale=100, bar=2.0)
    assert inside.startswith("The detector on its crop alone (mapped back to the image; an instance whose crop held "
                             "no matching detection keeps its first scale) against the detector on the whole image: "
                             "+0.50 [-1.00, +1.50] NE points.")
    assert inside.endswith("The whole interval lies within the study's ±2-point bar: the crop is read as well.")
    worse = kt.second_scale_sentence(CI(0.01, -0.01, 0.03), unit="NE", scale=100, bar=2)
    assert worse.endswith("on the side where the crop reads worse: the data cannot rule out a crop the detector "
                          "reads worse.")
    # NE: lower is better, so an interval crossing the bar below zero crosses it on the better side
    better = kt.second_scale_sentence(CI(-0.0092, -0.0289, 0.0106), unit="NE", scale=100, bar=2)
    assert better.endswith("on the side where the crop reads better, so a crop read worse by more than the bar is "
                           "ruled out.")
    ap = kt.second_scale_sentence(CI(-0.01, -0.03, 0.01), unit="AP", scale=100, bar=2, better="higher")
    assert ap.endswith("the data cannot rule out a crop the detector reads worse.")  # AP: lower reads worse
    assert "Outside the study's ±2-point bar" in kt.second_scale_sentence(CI(0.05, 0.03, 0.07), unit="NE",
                                                                         scale=100, bar=2)
    assert kt.second_scale_sentence(CI(0.01, -0.01, 0.03), unit="AP points", scale=100, digits=1).endswith(
        "+1.0 [-1.0, +3.0] AP points.")
    counted = kt.second_scale_sentence(CI(0.01, -0.01, 0.03), unit="AP points", scale=100, digits=1,
                                       unmatched=344, instances=896)
    assert counted == ("The detector on its crop alone (mapped back to the image; an instance whose crop held no "
                       "matching detection keeps its first scale: 344 of 896, 38 %) against the detector on the whole "
                       "image: +1.0 [-1.0, +3.0] AP points.")
    assert "keeps its first scale: 0 of 0)" in kt.second_scale_sentence(CI(0, 0, 0), unit="NE", unmatched=0,
                                                                        instances=0)
    with pytest.raises(ValueError, match="pass unmatched and instances together"):
        kt.second_scale_sentence(CI(0, 0, 0), unit="NE", unmatched=3)
    with pytest.raises(ValueError, match=r"unmatched must be in \[0, instances=2\], got 3"):
        kt.second_scale_sentence(CI(0, 0, 0), unit="NE", unmatched=3, instances=2)


def test_detector_bar_sentence_counts_seeds_against_both_bars_and_names_the_short_categories():
    category = [{"all": 0.93, "blouse": 1.0, "dress": 0.8}, {"all": 0.91, "blouse": 0.95, "dress": 0.85}]
    text = kt.detector_bar_sentence([6.0, 8.5], category)
    assert "6.00, 8.50 % (per seed): 1 of 2 seeds within the 8 % bar" in text
    assert "Category right 93.0, 91.0 %: 2 of 2 seeds at or above the 90 % bar" in text
    assert "dress 80 %" in text and "blouse" not in text
    assert "every category" in kt.detector_bar_sentence([5.0], [{"all": 1.0, "skirt": 1.0}])
    with pytest.raises(ValueError, match="one NE and one category accuracy per seed, got 1 and 2"):
        kt.detector_bar_sentence([5.0], category)
