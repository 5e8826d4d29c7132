"""The key-point pages' sentences: verdict and description text computed from the figures, never typed.

Each function turns figures from :mod:`.keypoint_scores`, :mod:`.keypoint_refiner` or the bootstrap into one
paragraph of Markdown: whether the detector clears the study's bars (:func:`detector_bar_sentence`), the point
rules (:func:`missing_rule_sentence`), the second scale's own reading (:func:`second_scale_sentence`) and what the
fill did (:func:`fill_sentence`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from fashion_lib.experiments.keypoints import KeypointSetup
from fashion_lib.intervals import CI
from fashion_lib.report import format_ci

__all__ = [
    "NE_BAR", "CATEGORY_BAR", "detector_bar_sentence", "missing_rule_sentence", "second_scale_sentence",
    "fill_sentence",
]


# The study's bars for a detector trained well enough to test a refiner on (issue 17, the cpu profile): NE of visible
# points at most NE_BAR %, the top detection's garment category right for at least CATEGORY_BAR % of garments.
NE_BAR = 8.0


CATEGORY_BAR = 90.0


def detector_bar_sentence(ne: Sequence[float], category: Sequence[Mapping[str, float]], *, ne_bar: float = NE_BAR,
                          category_bar: float = CATEGORY_BAR) -> str:
    """The page's verdict on whether the detector is trained well enough: per seed, its NE of visible points
    (``ne``, %) against ``ne_bar`` and its category accuracy (``category``: per seed, :func:`category_accuracy`'s
    dict as fractions) against ``category_bar`` overall, naming every category below the bar in some seed."""
    if len(ne) != len(category) or not ne:
        raise ValueError(f"give one NE and one category accuracy per seed, got {len(ne)} and {len(category)}")
    ne_pass = sum(v <= ne_bar for v in ne)
    overall = [100 * c["all"] for c in category]
    cat_pass = sum(v >= category_bar for v in overall)
    low = {name: min(100 * c[name] for c in category) for name in category[0] if name != "all"}
    short = [f"{name} {value:.0f} %" for name, value in low.items() if value < category_bar]
    return (f"NE of visible points {', '.join(f'{v:.2f}' for v in ne)} % (per seed): {ne_pass} of {len(ne)} seeds "
            f"within the {ne_bar:g} % bar. Category right {', '.join(f'{v:.1f}' for v in overall)} %: {cat_pass} of "
            f"{len(ne)} seeds at or above the {category_bar:g} % bar"
            + (f"; below it in at least one seed (each at its lowest seed): {', '.join(short)}." if short else
               "; every category at or above it in every seed."))


def missing_rule_sentence(setup: KeypointSetup, thresholds: Sequence[float], vote_threshold: float = 0.0) -> str:
    """The page's one sentence on its two point rules: the fill threshold each seed used (in seed order), and the
    vote's ``vote_threshold`` (``RefineConfig.score_threshold``, the paper's 0)."""
    values = ", ".join(f"{t:.3f}" for t in thresholds)
    paper = " (every detected point, as the paper's Alg. 2 lets them)" if vote_threshold == 0 else ""
    vote = (f"Every point scoring above {vote_threshold:g} votes for the axis{paper}; a point is replaced by its "
            "partner's mirror image when its score is at or below ")
    if setup.calibration_images:
        # synthetic: fresh images of the training world; real data: rows of the training split the detector saw
        source = "fresh images of the training world" if setup.synthetic else "rows of the training split"
        return (f"{vote}the threshold calibrated (Youden's J) on {setup.calibration_images} {source} per seed "
                f"(never the validation set), {values}, and its partner's is above it.")
    return f"{vote}the fixed threshold {values} (no calibration) and its partner's is above it."


def second_scale_sentence(difference: CI, *, unit: str, scale: float = 1.0, digits: int = 2,
                          bar: float | None = None, better: str = "lower", unmatched: int | None = None,
                          instances: int | None = None) -> str:
    """The page's sentence on the second scale's own reading: ``difference`` is :data:`SECOND` minus the detector on
    the whole image (:data:`KRCNN`), in the metric's units before ``scale``; ``bar`` (after ``scale``): the study's
    bound on how far the two may lie apart for the crop to count as inside the detector's training distribution;
    ``better``: ``"lower"`` (NE) or ``"higher"`` (AP), which side of the bar reads the crop worse; ``unmatched`` of
    ``instances`` (both or neither, summed over seeds, :func:`missing_point_summary`): the instances that kept their
    first scale, which the crop-alone row (and every two-scale row) holds unchanged."""
    if (unmatched is None) != (instances is None):
        raise ValueError(f"pass unmatched and instances together, got unmatched={unmatched}, instances={instances}")
    kept = ""
    if instances is not None:
        if not 0 <= unmatched <= instances:
            raise ValueError(f"unmatched must be in [0, instances={instances}], got {unmatched}")
        kept = f": {unmatched} of {instances}" + (f", {100 * unmatched / instances:.0f} %" if instances else "")
    text = (f"The detector on its crop alone (mapped back to the image; an instance whose crop held no matching "
            f"detection keeps its first scale{kept}) against the detector on the whole image: "
            f"{format_ci(difference, scale=scale, digits=digits, signed=True)} {unit}.")
    if bar is None:
        return text
    low, high, estimate = difference.low * scale, difference.high * scale, difference.estimate * scale
    if -bar <= low and high <= bar:
        return text + f" The whole interval lies within the study's ±{bar:g}-point bar: the crop is read as well."
    if abs(estimate) <= bar:
        worse_end = high if better == "lower" else -low  # how far the interval reaches on the worse side
        side = ("worse" if worse_end > bar else "better")
        return text + (f" The estimate lies within the study's ±{bar:g}-point bar, the interval not wholly: it "
                       f"reaches past the bar on the side where the crop reads {side}"
                       + (", so a crop read worse by more than the bar is ruled out." if side == "better" else
                          ": the data cannot rule out a crop the detector reads worse."))
    return text + (f" Outside the study's ±{bar:g}-point bar: the detector reads its crop differently from the whole "
                   "image, so the two-scale rows also measure that difference.")


def fill_sentence(summary: dict[str, float | int]) -> str:
    """The page's sentence on what the fill did: :func:`missing_point_summary`'s errors (%) of the filled points the
    ground truth labels, before and after, in the direction they measure at the printed precision (one decimal;
    means over seeds, no interval: a description, not a verdict)."""
    before, after = summary["filled_error_before"], summary["filled_error_after"]
    filled, labelled = summary["points_filled"], summary["filled_labelled"]
    if not (math.isfinite(before) and math.isfinite(after)):
        return f"No labelled point was filled ({filled} filled in all): the fill is not measured on this page."
    b, a = round(before, 1), round(after, 1)
    effect = ("The fill raised" if a > b else "The fill lowered" if a < b else "The fill left")
    return (f"{effect} the error of the filled points from {b:.1f} % (where the detector put them) to {a:.1f} % "
            f"(their partners' mirror images; means over seeds, no interval) on the {labelled} of the {filled} "
            "filled points that the ground truth labels.")
