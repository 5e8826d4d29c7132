# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Table 1, FashionAI: does New-key-detection lower the normalised error?
#
# The paper's first claim (its Table 1 and abstract): on FashionAI, New-key-detection lowers the normalised error
# (NE) of a Mask R-CNN detector from 13.70 % to 10.96 %, and beats a CPN baseline (13.55 %). This page trains
# both detectors from scratch on the study's synthetic garments (several seeds), applies the refiner exactly as
# the study reads the paper (see "Where the paper is ambiguous"), and sets every row beside the paper's. It also
# runs the two controls the paper describes only in prose: the symmetry axis applied once without the second
# scale (its Fig. 1c), and the detector run twice on the crop without the symmetry constraint.

# %% tags=["parameters"]
run_info = {}
seeds = [0, 1, 2]
detector = {"preset": "cpu", "image_size": 128, "train_steps": 900, "coco_train_steps": 300, "cpn_steps": 0,
            "batch_size": 8, "lr": 0.001, "scale_crop": True, "amp": True}
val_images = 200
data_root = ""
train_file = ""
val_file = ""
val_root = ""
alpha = 0.4
k = 10
n = 5
m = 8
d = 1.0
d_unit = "px"
pairs = "all"
score_threshold = 0.0
margin = 0.0
crop_mapping = "resized"
calibration_images = 100
n_boot = 1000
dpi = 100

# %%
import time

import matplotlib.pyplot as plt
import torch
from IPython.display import Markdown, display
from myst_nb import glue

from fashion_lib import provenance
from fashion_lib.experiments import keypoints as kx
from fashion_lib.experiments.claims import comparison_label, judge_claims, labelled
from fashion_lib.experiments.keypoint_refiner import axis_once_variant, missing_point_summary, missing_point_table
from fashion_lib.experiments.keypoint_rows import rows_for_seeds
from fashion_lib.experiments.keypoint_scores import category_accuracy, ne_arrays, ne_metric
from fashion_lib.experiments.keypoint_text import (
    detector_bar_sentence,
    fill_sentence,
    missing_rule_sentence,
    second_scale_sentence,
)
from fashion_lib.intervals import crossed_bootstrap_ci
from fashion_lib.keypoints import OCCLUDED, VISIBLE
from fashion_lib.plotting import draw_paper_beside_ours
from fashion_lib.refine import RefineConfig
from fashion_lib.report import (
    EXPLORATORY,
    NOT_TESTED,
    axis_share_sentence,
    comparison_table,
    format_ci,
    glue_ci,
    score_methods,
    verdict,
    verdict_table,
)

prov = provenance.start(run_info, seeds)
setup = kx.KeypointSetup(schema="fashionai", **detector, val_images=val_images,
                         data_root=data_root, train_file=train_file, val_file=val_file,
                         val_root=val_root, calibration_images=calibration_images)
refine = RefineConfig.for_schema("fashionai", alpha=alpha, k=k, n=n, m=m, d=d, d_unit=d_unit, pairs=pairs,
                                 score_threshold=score_threshold, margin=margin, crop_mapping=crop_mapping)
val = kx.validation_set(setup)
display(Markdown(f"Validation set: {len(val.images)} images ({'synthetic' if setup.synthetic else data_root})."))

# %% [markdown]
# ## Training and refining, one seed at a time
#
# Each seed trains Keypoint R-CNN (torchvision's, the paper's "Mask R-CNN" with a key-point head) and CPN from
# scratch (no CPN where the profile's `cpn_steps` is 0: its rows are then not tested at this scale); a finished run
# is loaded from the study's run folder instead of trained again. The refiner's settings are the paper's FashionAI
# values unless a parameter says otherwise.

# %%
t0 = time.perf_counter()
calibrations = []  # per seed, each detector's missing-point threshold (when calibration_images > 0)
rows_per_seed = rows_for_seeds(setup, val, refine, seeds, calibrations=calibrations)
fill_thresholds = [c[kx.KRCNN].threshold for c in calibrations] or [refine.fill_below]
glue("missing_rule", Markdown(missing_rule_sentence(setup, fill_thresholds, refine.score_threshold)),
     display=False)
display(Markdown(f"{len(seeds)} seeds trained (or loaded) and refined in {time.perf_counter() - t0:.0f} s. "
                 f"Refiner: {refine}, with `fill_threshold` per seed as below. "
                 + missing_rule_sentence(setup, fill_thresholds, refine.score_threshold)))

# %% [markdown]
# ## Is the detector trained well enough to test a refiner?
#
# A refiner's effect means something only on a detector that has learnt its task. Two checks: its normalised error
# on visible points (the study's bar on this profile: at most 8 %, beside the paper's 13.70 % on real garments; its
# interval is in Table 1 further down) and how often its top detection names the right garment category (the bar:
# at least 90 %; a detector that confuses dresses with blouses places a blouse's points on a dress). Per seed, in %:

# %%
import pandas as pd

category_right = 100 * pd.DataFrame({f"seed {seed}": category_accuracy(rows[kx.KRCNN], val)
                                     for seed, rows in zip(seeds, rows_per_seed, strict=True)}).T
glue("category_right", float(category_right["all"].mean()), display=False)
display(category_right.rename(columns={"all": "all garments"}).round(0))
ne_per_seed = [100 * ne_metric()(*arrays) for arrays in ne_arrays(rows_per_seed, val, kx.KRCNN)]
glue("detector_bars", Markdown(detector_bar_sentence(
    ne_per_seed, [category_accuracy(rows[kx.KRCNN], val) for rows in rows_per_seed])), display=False)

# %% [markdown]
# **Against the bars.**
#
# ```{glue:md} detector_bars
# ```

# %% [markdown]
# ## The symmetry prior alone: the first verdict
#
# The paper's idea is the symmetry axis (its Fig. 1c: the axis applied once, at one scale); the second scale adds a
# second detection on a crop, which is another effect. So the first test is the axis applied once against the
# detector alone, on visible points and on the points the ground truth marks occluded (where the prior should
# help), each with its 95 % interval over seeds and images (crossed: every seed scored on the same images).
#
# This test is **exploratory and uncorrected**: it is not in the front page's declared family, and the paper
# gives no number for its Fig. 1c, so there is no effect size to set beside ours.

# %%
axis_gen = torch.Generator().manual_seed(0)
axis_first, axis_first_ci = {}, {}
for points in ("visible", "occluded"):
    metric = ne_metric(points=points)
    ci = crossed_bootstrap_ci(metric, ne_arrays(rows_per_seed, val, kx.AXIS_ONCE),
                              ne_arrays(rows_per_seed, val, kx.KRCNN), n_boot=n_boot, generator=axis_gen)
    axis_first[points] = verdict(ci, better="lower")
    axis_first_ci[points] = ci
    glue_ci(f"axis_first_{points}", ci, scale=100)
    glue(f"verdict_axis_first_{points}", axis_first[points], display=False)
verdict_table({f"axis once − detector, {points} points": ci for points, ci in axis_first_ci.items()}, better="lower",
              claim="it lowers NE", scale=100, unit=" (NE points)")

# what the axis did behind these verdicts, all seeds together (each seed's detections of the same garments)
fill_rows = missing_point_table(rows_per_seed, val, seeds, refine, calibrations=calibrations, schema="fashionai")
fill_summary = missing_point_summary(fill_rows)
codes = val.keypoints[..., 2]
glue("axis_garments", len(seeds) * len(val.images), display=False)
glue("axis_garments_found", sum(int(rows[kx.AXIS_ONCE].refined.has_axis.sum()) for rows in rows_per_seed),
     display=False)
glue("scored_visible", int((codes == VISIBLE).sum()), display=False)  # per seed: the same garments every seed
glue("scored_occluded", int((codes == OCCLUDED).sum()), display=False)

# the occluded change split into the fill (alpha 0: the same axes and fills, no pull) and the pull on top of it
fill_only = axis_once_variant(rows_per_seed, val, refine, seeds, [c[kx.KRCNN].threshold for c in calibrations],
                              alpha=0.0)
fill_arrays = [(inst.keypoints, val.keypoints, val.categories) for inst in fill_only]
occluded_ne = ne_metric(points="occluded")
axis_parts = {
    "fill alone (alpha 0) − detector, occluded points": crossed_bootstrap_ci(
        occluded_ne, fill_arrays, ne_arrays(rows_per_seed, val, kx.KRCNN), n_boot=n_boot, generator=axis_gen),
    "axis once − fill alone (the pull), occluded points": crossed_bootstrap_ci(
        occluded_ne, ne_arrays(rows_per_seed, val, kx.AXIS_ONCE), fill_arrays, n_boot=n_boot, generator=axis_gen),
}
for key, ci in zip(("fill_part_occluded", "pull_part_occluded"), axis_parts.values(), strict=True):
    glue_ci(key, ci, scale=100)
    glue(f"verdict_{key}", verdict(ci, better="lower"), display=False)
verdict_table(axis_parts, better="lower", claim="it lowers NE", scale=100, unit=" (NE points)")

# %% [markdown]
# **Behind the verdict.** The axis was found for {glue:text}`axis_garments_found` of the
# {glue:text}`axis_garments` garments (all seeds; every detected point votes); the pull moved
# {glue:text}`pairs_moved` pairs and the fill replaced {glue:text}`points_filled` points of the
# {glue:text}`symmetric_points` symmetric ones. Each seed is scored on {glue:text}`scored_visible` visible and
# {glue:text}`scored_occluded` occluded labelled points. The occluded change has two parts ({glue:text}`exploratory`,
# like the verdict above): the fill alone (the same axes and fills with alpha = 0, so no pair is pulled) changes
# occluded NE by {glue:text}`fill_part_occluded:+.2f` points ({glue:text}`fill_part_occluded_low:+.2f` to
# {glue:text}`fill_part_occluded_high:+.2f`: {glue:text}`verdict_fill_part_occluded` that it lowers it), and the
# pull on top of the fill by {glue:text}`pull_part_occluded:+.2f` ({glue:text}`pull_part_occluded_low:+.2f` to
# {glue:text}`pull_part_occluded_high:+.2f`: {glue:text}`verdict_pull_part_occluded`).
#
# **Verdict on the symmetry prior.** The axis applied once changes the NE of visible points by
# {glue:text}`axis_first_visible:+.2f` points ({glue:text}`axis_first_visible_low:+.2f` to
# {glue:text}`axis_first_visible_high:+.2f`): **{glue:text}`verdict_axis_first_visible`** that it lowers it; on
# occluded points by {glue:text}`axis_first_occluded:+.2f` ({glue:text}`axis_first_occluded_low:+.2f` to
# {glue:text}`axis_first_occluded_high:+.2f`): **{glue:text}`verdict_axis_first_occluded`**. The full two-scale
# method and the "twice, no symmetry" control follow as the composite.

# %% [markdown]
# ## Table 1, FashionAI column
#
# NE pools the error of every visible ground-truth point, divided by the garment's normaliser (armpit or
# waistband distance), over the whole validation set: the challenge's definition (`reduce="keypoint"`). Ours is
# the mean over seeds; its 95 % interval covers seeds and images, crossed (every seed is scored on the same
# images): {glue:text}`ne_krcnn_method` (`fashion_lib.intervals.crossed_bootstrap_ci`).

# %%
gen = torch.Generator().manual_seed(0)
paper = {kx.KRCNN: 13.70, kx.CPN: 13.55, kx.NKD: 10.96}
rows = kx.tested_rows(setup)  # every row, less CPN's where this profile trains no CPN
untested = [row for row in kx.ROWS if row not in rows]
arrays = {row: ne_arrays(rows_per_seed, val, row) for row in rows}
ne = ne_metric()
scores = score_methods(arrays, ne, n_boot=n_boot, generator=gen)
if untested:
    display(Markdown(f"**{', '.join(row.label for row in untested)}: {NOT_TESTED}.** {kx.CPN_NOT_TESTED_REASON}"))
comparison_table(scores, paper, scale=100, unit=" NE (%)", not_tested=untested)


# %% [markdown]
# The paper's rows are "Mask R-CNN", "CPN" and "New-key-detection"; ours are named after what ran. The paper
# measured real photographs with ImageNet-scale training; ours are synthetic garments and detectors trained from
# scratch in minutes, so the level of NE is not comparable: the claim is about the *difference* the refiner makes.

# %%
def difference(a, b, metric=ne):
    """NE of row a minus NE of row b, with its interval (negative: a is better)."""
    return crossed_bootstrap_ci(metric, arrays[a], arrays[b], n_boot=n_boot, generator=gen)


claims = {
    "nkd": (kx.NKD, kx.KRCNN),  # the paper: 10.96 - 13.70 = -2.74 points
    "cpn": (kx.CPN, kx.KRCNN),  # the paper: 13.55 - 13.70 = -0.15 points
    "cpn_nkd": (kx.CPN_NKD, kx.CPN),  # beyond the paper: the refiner on the other detector
    "nkd_vs_cpn": (kx.NKD, kx.CPN),  # the paper: 10.96 - 13.55 = -2.59 points, its method beats CPN
    "axis_once": (kx.AXIS_ONCE, kx.KRCNN),  # Fig. 1c: the axis without the second scale
    "twice": (kx.TWICE, kx.KRCNN),  # the second scale without the axis
    "axis_share": (kx.NKD, kx.TWICE),  # the axis' own share of the two-scale method
    "second_alone": (kx.SECOND, kx.KRCNN),  # does the detector read its crop as well as the whole image?
}


def claim_interval(key, a, b):
    """The interval of a claim: the axis once was compared above, so the same one, not a second resample of it."""
    return axis_first_ci["visible"] if key == "axis_once" else difference(a, b)


# a claim's level is its baseline's own NE (the primary claims' relative size)
differences, verdicts = judge_claims(claims, claim_interval, page="t1_fashionai", better="lower", untested=untested,
                                     not_tested_reason=kx.CPN_NOT_TESTED_REASON,
                                     level=lambda a, b: scores[b].ci.estimate)
for row in (kx.KRCNN, kx.CPN, kx.NKD, kx.CPN_NKD, kx.AXIS_ONCE, kx.TWICE):
    if row in scores:
        glue_ci(f"ne_{row}", scores[row].ci, scale=100)
glue("exploratory", EXPLORATORY, display=False)
glue("axis_share_sentence", Markdown(axis_share_sentence(
    differences["axis_share"], differences["twice"], better="lower",
    unit="NE (points)", scale=100)), display=False)
# the study's bar for a crop inside the detector's training distribution (issue 17): within 2 NE points; and how
# many instances kept their first scale (fill_summary, from the axis-once cell), unchanged in every two-scale row
glue("second_scale_sentence", Markdown(second_scale_sentence(
    differences["second_alone"], unit="NE points", scale=100, bar=2.0,
    unmatched=fill_summary["second_scale_unmatched"], instances=fill_summary["second_scale_instances"])),
    display=False)


def said(key):
    """A difference and its 95 % interval for the prose, in NE points: ``+0.12 [-0.30, +0.54]``."""
    return format_ci(differences[key], scale=100, signed=True)


if untested:
    cpn_text = kx.CPN_NOT_TESTED_PARAGRAPH
    cpn_nkd_sentence = f"CPN is {NOT_TESTED} (this profile trains no CPN)."
else:
    cpn_text = (f"CPN against Keypoint R-CNN: {said('cpn')} points ({verdicts['cpn']} that CPN is better; the "
                f"paper: −0.15). Both are trained from scratch here, CPN for {setup.cpn_steps} steps and Keypoint "
                f"R-CNN for {setup.train_steps}: a heat-map network without pretrained features learns more slowly "
                f"per step, and at this profile's budget the comparison is with an under-trained CPN, not a verdict "
                f"on the architecture. The refiner on CPN: {said('cpn_nkd')} points ({verdicts['cpn_nkd']} that it "
                f"lowers NE). The paper's method against CPN, which it says it beats: {said('nkd_vs_cpn')} points "
                f"(the paper: −2.59), a result that **{verdicts['nkd_vs_cpn']}** the claim, with the same caveat on "
                f"the under-trained CPN.")
    cpn_nkd_sentence = (f"the refiner on CPN changes NE by {said('cpn_nkd')} points ({verdicts['cpn_nkd']} that "
                        f"it helps).")
glue("cpn_paragraph", Markdown(cpn_text), display=False)
glue("cpn_nkd_sentence", cpn_nkd_sentence, display=False)
verdict_table(labelled(claims, differences), better="lower", claim="it lowers NE", scale=100, unit=" (NE points)")

# %% [markdown]
# **Verdict on the paper's claim.** New-key-detection changes the NE of Keypoint R-CNN by {glue:text}`diff_nkd:+.2f`
# points (95 % interval {glue:text}`diff_nkd_low:+.2f` to {glue:text}`diff_nkd_high:+.2f`; the paper reports −2.74). Our
# result **{glue:text}`verdict_nkd`** the claim that it lowers NE. The interval, not the sign of the mean, decides:
# "cannot decide" means the data of this profile cannot tell the refiner from no refiner. Against the paper's size the
# difference is {glue:text}`t1_fashionai_nkd_size` in NE points (the front page's size verdict), but our NE level is not
# the paper's: {glue:text}`t1_fashionai_nkd_relative` The smallest effect this profile could tell from zero (the
# interval's half-width) is {glue:text}`t1_fashionai_nkd_detectable:.2f` points. This claim and the two against CPN
# below belong to the paper's primary family: the verdicts here are uncorrected, and the front page corrects them for
# the whole family (Holm; a claim not tested at this scale counts as p = 1 there, so the family keeps its eleven
# claims). Every other comparison on this page is {glue:text}`exploratory`.
#
# The two controls separate New-key-detection's parts. The axis applied once changes NE by
# {glue:text}`diff_axis_once:+.2f` points ({glue:text}`verdict_axis_once` that it helps); running the detector
# twice, on the crop, without the axis changes it by {glue:text}`diff_twice:+.2f`
# ({glue:text}`verdict_twice` that it helps). Whatever New-key-detection does to NE here, compare it with the
# second control: the crop and second detection alone account for it when the two are close.
# {glue:md}`axis_share_sentence` {glue:md}`second_scale_sentence` The crop's margin,
# which the paper's "minimum rectangle closure" sets to zero, is the subject of
# {doc}`15_ablation_second_scale`.
#
# ```{glue:md} cpn_paragraph
# ```

# %% [markdown]
# ## Visible and occluded points, and the per-image reduction
#
# The challenge counts only visible points, yet the paper's argument is about occlusion. The same rows scored on
# the points the ground truth marks occluded, and with the per-image reduction (`reduce="image"`) that one
# public scorer uses:

# %%
variants = {"visible, pooled (the challenge)": ne, "visible, per image": ne_metric(reduce="image"),
            "occluded points only": ne_metric(points="occluded")}
table = {}
for label, metric in variants.items():
    table[label] = {row.label: 100 * sum(metric(*a) for a in arrays[row]) / len(arrays[row]) for row in rows}
variant_table = pd.DataFrame(table).round(2)
# the composite on occluded points, split into its parts like the visible points above (exploratory)
occluded = ne_metric(points="occluded")
occluded_parts = {f"{comparison_label(a, b)}, occluded points": difference(a, b, occluded)
                  for a, b in ((kx.NKD, kx.KRCNN), (kx.TWICE, kx.KRCNN), (kx.NKD, kx.TWICE))}
for key, ci in zip(("nkd", "twice", "axis_share"), occluded_parts.values(), strict=True):
    glue_ci(f"diff_{key}_occluded", ci, scale=100)
    glue(f"verdict_{key}_occluded", verdict(ci, better="lower"), display=False)
display(variant_table)
verdict_table(occluded_parts, better="lower", claim="it lowers NE", scale=100, unit=" (NE points)")

# %% [markdown]
# Values in the first table are means over seeds, in percent. On occluded points ({glue:text}`exploratory`, like
# every comparison in this section) New-key-detection changes NE by {glue:text}`diff_nkd_occluded:+.2f` points
# ({glue:text}`diff_nkd_occluded_low:+.2f` to {glue:text}`diff_nkd_occluded_high:+.2f`:
# {glue:text}`verdict_nkd_occluded` that it helps there); the detector run twice without the axis by
# {glue:text}`diff_twice_occluded:+.2f` ({glue:text}`diff_twice_occluded_low:+.2f` to
# {glue:text}`diff_twice_occluded_high:+.2f`), so the axis's own share, New-key-detection against that control, is
# {glue:text}`diff_axis_share_occluded:+.2f` ({glue:text}`diff_axis_share_occluded_low:+.2f` to
# {glue:text}`diff_axis_share_occluded_high:+.2f`: {glue:text}`verdict_axis_share_occluded` that the axis adds to
# it). The axis applied once, without the second detection, is the first verdict above.

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), dpi=dpi, gridspec_kw={"width_ratios": [1, 2]})
draw_paper_beside_ours(axes, paper, {r: scores[r] for r in rows}, xlabel="NE (%)",
                       paper_title="the paper (real FashionAI)", source="synthetic" if setup.synthetic else "real data")
fig.tight_layout()
glue("table1_fashionai_figure", fig, display=False)
plt.close(fig)

# %% [markdown]
# ```{glue:figure} table1_fashionai_figure
# :name: fig-table1-fashionai
#
# NE of every row: the paper's (left) and ours (right). Lower is better.
# ```

# %% [markdown]
# ## Missed points: the calibrated rule and the fills
#
# The paper lets the detected points vote for the axis (its Alg. 2 names no score threshold) and fills a point the
# detector missed with its partner's mirror image (its Fig. 1). Read literally, with one threshold of 0 for both jobs,
# nothing is ever filled: our detectors score every point above 0. The two jobs therefore get two thresholds. Every
# point above the `score_threshold` parameter (0: every detected point) votes. A point is filled when its score is at or
# below the *fill threshold* and its partner's is above it. The fill threshold is not typed in: for each seed it is the
# one that best separates visible from occluded-or-absent ground-truth points (Youden's J, sensitivity + specificity −
# 1) on `calibration_images` held-out images of the training world (another seed; never the validation set; with real
# data, rows of the training split), chosen by `fashion_lib.refine.calibrate_missing_threshold`
# (`RefineConfig.fill_threshold`). With `calibration_images = 0` the fill threshold is the `score_threshold` parameter:
# one threshold for both jobs, the literal reading. On this page: {glue:md}`missing_rule`
#
# A single calibrated threshold for both jobs silenced most points as voters: on the `cpu` book of commit
# `3a30f45` it left 13 % of the garments with an axis, and New-key-detection did worse than at 0. Hence the split.
#
# For Keypoint R-CNN with the axis applied once, the table gives how many points were filled and the NE of the
# filled points the ground truth labels, where the detector put them and after the fill, and how many
# instances the second scale left at their first scale because no detection in the crop matched them.

# %%
for key, value in fill_summary.items():  # fill_summary: from the axis-once cell
    glue(key, value, display=False)
glue("fill_sentence", Markdown(fill_sentence(fill_summary)), display=False)
pd.DataFrame(fill_rows).set_index("seed").round(3)

# %% [markdown]
# Fill threshold (mean over seeds): {glue:text}`missing_threshold:.3f`; points filled: {glue:text}`points_filled` of the
# {glue:text}`symmetric_points` symmetric points (all seeds), with an error of {glue:text}`filled_error_before:.1f` %
# where the detector put them and {glue:text}`filled_error_after:.1f` % after the fill (means over seeds; the table
# gives each seed's). Instances the second scale left at their first scale: {glue:text}`second_scale_unmatched` of
# {glue:text}`second_scale_instances` (all seeds).
#
# ```{glue:md} fill_sentence
# ```
#
# The axis was found for {glue:text}`axis_found:.0f` % of the garments (mean over seeds): every point above 0
# votes, whatever the fill threshold. Pages 12-16 use the same two rules. {doc}`15_ablation_second_scale` sweeps
# the fill threshold, from 0 (the literal reading: nothing filled) up, beside the calibrated one.

# %%
_ = prov.finish()
