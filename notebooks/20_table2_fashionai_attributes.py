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
# # Table 2, FashionAI attributes: do joint learning, the "maybe" loss and New-key-detection each help?
#
# The paper's second claim (its Table 2 and section IV.B): starting from a baseline of one NASNet per attribute
# task, three additions each raise the validation accuracy of most of the eight tasks and the challenge's mAP
# (92.52 → 92.86 → 92.94 → 92.98 %): **joint learning** (two multi-task networks, the four length tasks on the
# Normal-crop and the four design tasks on the Neck-crop), the **multi-label loss** that gives the "maybe" (`m`)
# labels the weight beta = 0.1, and **New-key-detection** (crops from the refined key points). The paper shows the
# three stacked; this page also adds each of the two cheap-to-isolate ingredients alone to the baseline (where the
# profile trains them: `ingredients`).
#
# **The baseline, precisely.** The paper's first row is "NASNet (including Mask R-CNN)": a detector is part of
# the baseline, so its networks already see crops. Ours is one network per task, each on the crop of its task
# (Normal-crop for the length tasks, Neck-crop for the design tasks) computed from the *plain* detector's key
# points, trained with plain cross-entropy on the `y` class. The rungs then change one thing each:
#
# | row | networks | loss | crop key points |
# |---|---|---|---|
# | baseline | one per task (8) | cross-entropy on `y` | plain detector |
# | + joint learning | length and design (2) | cross-entropy on `y` | plain detector |
# | + multi-label loss | length and design (2) | "maybe" loss, beta | plain detector |
# | + New-key-detection | length and design (2) | "maybe" loss, beta | New-key-detection |
# | baseline + maybe loss only (`ingredients`) | one per task (8) | "maybe" loss, beta | plain detector |
# | baseline + New-key-detection only (`ingredients`) | one per task (8) | cross-entropy on `y` | New-key-detection |
# | + joint learning, at the baseline's steps | length and design (2) | cross-entropy on `y` | plain detector |
# | baseline, each network stopped early | one per task (8) | cross-entropy on `y` | plain detector |
#
# Every network trains for the same number of passes over its own training images (a per-task network over its
# task's images, the joint length network over the four length tasks' images), from scratch: our reading of the
# paper's protocol (it states the passes of its joint networks only), which the baseline row keeps. Equal passes may
# leave a per-task network, which sees a quarter of a
# joint network's images, short of training, so the last row trains the baseline's networks as long as they
# improve: each per-task network trains pass after pass, at most `attr_max_epochs` passes (its learning-rate
# schedule spans them), on its task's training images less a held-out share; after each pass its loss on the
# held-out images is measured, training stops once that loss has not fallen for `attr_patience` passes, and the
# network keeps the weights of its best pass (lowest held-out loss). The held-out images are a seeded share of the
# *training* images (the same split for every seed), never the validation images Table 2 reports: choosing the
# pass on the reported images would bias the reported accuracy upwards. That row is an added, named row rather than
# a new baseline, so the ladder's rungs still compare what the paper compared.

# %% tags=["parameters"]
run_info = {}
seeds = [0, 1, 2]
detector = {"preset": "cpu", "image_size": 128, "train_steps": 900, "coco_train_steps": 300, "cpn_steps": 0,
            "batch_size": 8, "lr": 0.001, "scale_crop": True, "amp": True}
keypoint_data_root = ""
keypoint_train_file = ""
profile = "cpu"
input_size = 0
train_images = 1280
val_images = 480
attr_epochs = 3
attr_max_epochs = 12  # the early-stopped baseline: at most this many passes
attr_patience = 2  # ... ended once the held-out loss has not fallen for this many passes
attr_batch_size = 16
attr_lr = 0.003
beta = 0.1
ingredients = True  # also train each ingredient alone on the baseline (two more rows)
monitor_per_task = 0  # validation images per task on the learning curves (0: all)
data_root = ""
train_file = ""
val_file = ""
n_boot = 1000
dpi = 100

# %%
import math
import time
import warnings

import matplotlib.pyplot as plt
import pandas as pd
import torch
from IPython.display import Markdown, display
from myst_nb import glue

# timm's model hub client imports tqdm.auto, which warns in a kernel without ipywidgets
warnings.filterwarnings("ignore", message="IProgress not found")
from fashion_lib import provenance
from fashion_lib.attributes import DESIGN_TASKS, LENGTH_TASKS, PAPER_TASK_NAMES
from fashion_lib.experiments.attribute_data import AttributeSetup
from fashion_lib.experiments.attribute_training import learning_curves, stopping_passes
from fashion_lib.experiments.claims import judge_claims
from fashion_lib.experiments.keypoints import KeypointSetup
from fashion_lib.experiments.table2 import (
    BASELINE,
    BASELINE_EARLY_STOP,
    FULL,
    INGREDIENTS,
    JOINT,
    JOINT_EQUAL_STEPS,
    LADDER,
    MAYBE,
    MAYBE_ALONE,
    NKD_ALONE,
    PAPER_TABLE2,
    accuracy_half_width,
    accuracy_metric,
    chance_accuracy,
    chance_by_task,
    fashionai_arrays,
    fashionai_rows_for_seeds,
    ingredients_sentence,
    map_metric,
    table2_frame,
    table2_methods,
    table2_scores,
)
from fashion_lib.intervals import crossed_bootstrap_ci
from fashion_lib.plotting import draw_learning_curves, draw_paper_beside_ours, draw_stopping_curves
from fashion_lib.primary_claims import PRIMARY_CLAIMS
from fashion_lib.report import EXPLORATORY, format_ci, glue_ci, score_methods, verdict

prov = provenance.start(run_info, seeds)
detector_setup = KeypointSetup(schema="fashionai", **detector, data_root=keypoint_data_root,
                               train_file=keypoint_train_file)
setup = AttributeSetup(dataset="fashionai", detector=detector_setup, detector_seed=seeds[0], profile=profile,
                       input_size=input_size, train_images=train_images, val_images=val_images, epochs=attr_epochs,
                       batch_size=attr_batch_size, lr=attr_lr, data_root=data_root, train_file=train_file,
                       val_file=val_file, max_epochs=attr_max_epochs, patience=attr_patience,
                       monitor_per_task=monitor_per_task)
methods = table2_methods(beta=beta, ingredients=ingredients)
display(Markdown(f"Attribute data: {'synthetic' if setup.synthetic else data_root}; networks: {setup.networks()}, "
                 f"{attr_epochs} passes, batch {attr_batch_size}, peak lr {attr_lr}; beta = {beta}."))

# %% [markdown]
# ## Crops, training and scoring, one seed at a time
#
# The synthetic attribute set is written once in the real FashionAI layout (`Annotations/label.csv`,
# `Annotations/val.csv`, one task per image) and read back through the real loader. Every training and validation
# image then goes through the FashionAI Keypoint R-CNN trained by the key-point pages (the one of seed
# `seeds[0]`, for every attribute seed: the seeds here measure how the recognition networks vary, not the
# detector), once as it is and once with New-key-detection at the paper's FashionAI settings. The detector
# predicts all 24 points of every garment; a crop closes only the points of one category (the one the task implies,
# or the detected one: below). A finished network is loaded from the study's run folder instead of trained again.

# %%
t0 = time.perf_counter()
preds, data, crops = fashionai_rows_for_seeds(setup, methods, seeds)
wall = time.perf_counter() - t0
glue("t2_train_images", len(data.train), display=False)
glue("t2_val_images", len(data.val), display=False)
glue("t2_detected", 100 * float(crops["val"].detected.float().mean()), display=False)  # %
glue("t2_wall_min", wall / 60, display=False)
found = {split: 100 * float(c.detected.float().mean()) for split, c in crops.items()}
display(Markdown(f"{len(data.train)} training and {len(data.val)} validation images; the detector found a garment "
                 f"in {found['train']:.1f} % / {found['val']:.1f} % of them; {len(methods)} methods x {len(seeds)} "
                 f"seeds trained (or loaded) and scored in {wall:.0f} s."))

# %% [markdown]
# ## Learning curves
#
# Every network is scored after each pass over its training images on up to {glue:text}`t2_monitor_per_task`
# validation images of each of its tasks, spread over the validation set (shown here only: nothing is chosen from
# these figures; the tables below score all {glue:text}`t2_val_images`). Left, the mean training loss of each pass;
# right, the validation accuracy; a line per network (8 per-task networks, or the length and design networks), the
# mean over seeds. The row "joint learning, at the baseline's optimiser steps" trains each joint network for as many
# steps as one per-task network takes (the paper's protocol, equal passes, gives a joint network four times the
# steps); the early-stopped baseline's lines end where each network stopped (the next section marks the pass it kept).

# %%
curves = learning_curves(preds)
fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), dpi=dpi)
draw_learning_curves(axes, curves, labels={m: m.label for m in preds})
fig.tight_layout()
glue("table2_curves", fig, display=False)
plt.close(fig)
# has each network of the ladder converged? its training loss at the last pass against the pass before
ladder = curves[curves["method"].isin(LADDER)].sort_values("epoch")
falling = ladder.groupby(["method", "seed", "network"])["train_loss"].agg(
    lambda v: len(v) > 1 and v.iloc[-1] < v.iloc[-2])
glue("t2_still_falling", int(falling.sum()), display=False)
glue("t2_ladder_networks", len(falling), display=False)
half = accuracy_half_width(preds[BASELINE])
glue("t2_half_width_max", 100 * max(half.values()), display=False)  # points
glue("t2_val_per_task", len(data.val) // len(half), display=False)
# the study's goal (issue 22): at most +-2 points; the half-width falls as one over the root of the images
goal = 0.02
per_task = {t: sum(task == t for task in data.val.tasks) for t in half}
needed = {t: math.ceil(per_task[t] * (h / goal) ** 2) for t, h in half.items()}
glue("t2_half_width_goal", 100 * goal, display=False)
glue("t2_val_needed_max", max(needed.values()), display=False)
glue("t2_val_needed_total", sum(needed.values()), display=False)
glue("t2_monitor_per_task", monitor_per_task or "all", display=False)
glue("t2_half_width_status", "this profile reaches it" if max(half.values()) <= goal else
     f"this profile does not reach it: at these accuracies it would take up to {max(needed.values()):,} validation "
     f"images per task ({sum(needed.values()):,} in all), so differences of a few points between rows stay "
     "undecided on this page", display=False)
disagree = crops["val"].task_categories(data.val.tasks)[1]
glue("t2_category_disagree", 100 * float(disagree.float().mean()), display=False)  # % of validation images
print("95 % half-width of the baseline's per-task accuracy from its validation images (points): "
      + ", ".join(f"{PAPER_TASK_NAMES[t]} {100 * h:.1f}" for t, h in half.items()))

# %% [markdown]
# ```{glue:figure} table2_curves
# :name: fig-table2-curves
#
# Training loss and validation accuracy after each pass, per network (mean over seeds), every row of the table.
# ```
#
# With about {glue:text}`t2_val_per_task` validation images per task, the 95 % interval of a task's accuracy is at
# most ±{glue:text}`t2_half_width_max:.1f` points wide from the images alone (normal approximation at the
# baseline's accuracy; differences between seeds widen it, and the tables' intervals include them). The study's
# goal for this images' part is ±{glue:text}`t2_half_width_goal:.0f` points: {glue:text}`t2_half_width_status`. The
# crops take the garment category a row's task
# implies where it fixes one (collar: blouse; lapel, neck and coat length: outwear; pant length: trousers), the
# detected one elsewhere; the detector's category was one the task does not apply to on
# {glue:text}`t2_category_disagree:.1f` % of the validation images. Joint learning at the baseline's optimiser steps
# changes mAP by {glue:text}`diff_map_joint_steps:+.2f` points against the baseline
# ({glue:text}`diff_map_joint_steps_low:+.2f` to {glue:text}`diff_map_joint_steps_high:+.2f`,
# {glue:text}`verdict_joint_steps`; exploratory, uncorrected), against {glue:text}`diff_map_joint:+.2f` at equal
# passes: the difference between the two is what the extra steps buy. At the baseline's steps the joint networks'
# weakest task is {glue:text}`t2_equal_steps_min_ratio:.2f` times chance (the table of the next section):
# {glue:text}`t2_equal_steps_reading`

# %% [markdown]
# ## The baseline trained until its held-out loss stops falling
#
# The row "{glue:text}`t2_stop_row`" holds out {glue:text}`t2_holdout_percent:.0f` % of each task's training images
# (a split seeded by the data seed, the same for every seed) and trains each per-task network on the rest, at most
# {glue:text}`t2_stop_max_epochs` passes, until its loss on the held-out images has not fallen for
# {glue:text}`t2_stop_patience` passes; it keeps the weights of the pass with the lowest held-out loss (a star
# below). Table 2's validation images play no part in the choice.

# %%
stopped_curves = curves[curves["method"] == BASELINE_EARLY_STOP]
kept = stopping_passes(stopped_curves)
fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), dpi=dpi)
draw_stopping_curves(axes, stopped_curves.assign(network=stopped_curves["network"].map(PAPER_TASK_NAMES)),
                     kept.assign(network=kept["network"].map(PAPER_TASK_NAMES)))
fig.tight_layout()
glue("table2_stopping", fig, display=False)
plt.close(fig)
glue("t2_stop_row", BASELINE_EARLY_STOP.label, display=False)
glue("t2_holdout_percent", 100 * setup.holdout_fraction, display=False)
glue("t2_stop_max_epochs", setup.max_epochs, display=False)
glue("t2_stop_patience", setup.patience, display=False)
glue("t2_stop_mean_pass", float(kept["chosen"].mean()), display=False)
glue("t2_stop_at_cap", int((kept["passes"] == setup.max_epochs).sum()), display=False)
glue("t2_stop_networks", len(kept), display=False)
glue("t2_stop_kept_last", int((kept["chosen"] == kept["passes"]).sum()), display=False)
per_task = kept.groupby("network", sort=False).agg(
    passes=("passes", lambda v: ", ".join(map(str, v))), kept_pass=("chosen", lambda v: ", ".join(map(str, v))),
    holdout_loss=("holdout_loss", "mean"), holdout_accuracy=("holdout_accuracy", "mean"),
    val_accuracy=("val_accuracy", "mean"))
per_task["holdout_accuracy"] *= 100
per_task["val_accuracy"] *= 100
per_task.index = per_task.index.map(PAPER_TASK_NAMES)
per_task.columns = ["passes trained (per seed)", "pass kept (per seed)", "held-out loss, kept pass",
                    "held-out accuracy (%), kept pass", "validation accuracy (%), kept pass"]
per_task.round(3)

# %% [markdown]
# ```{glue:figure} table2_stopping
# :name: fig-table2-stopping
#
# The early-stopped baseline: held-out loss (left) and accuracy (right) after each pass, a colour per task and a
# line per seed; the star marks the pass whose weights the network keeps.
# ```
#
# On average a network kept pass {glue:text}`t2_stop_mean_pass:.1f`; {glue:text}`t2_stop_at_cap` of the
# {glue:text}`t2_stop_networks` networks (tasks x seeds) ran to the cap of {glue:text}`t2_stop_max_epochs` passes
# before their patience ran out (their held-out loss had reached a new low within the last
# {glue:text}`t2_stop_patience` passes), and {glue:text}`t2_stop_kept_last` kept their last pass. So this row trains
# the baseline until its held-out loss stops falling only for the networks that stopped on patience; the others
# were cut by the cap, which the budget sets. The table gives per task the passes trained and the pass kept (one figure
# per seed) and the held-out and validation figures of the kept pass (means over seeds; the validation accuracy
# is shown, not used). Against the baseline at the paper's fixed passes, the early-stopped baseline changes mAP by
# {glue:text}`diff_map_stopped:+.2f` points ({glue:text}`diff_map_stopped_low:+.2f` to
# {glue:text}`diff_map_stopped_high:+.2f`, {glue:text}`verdict_stopped`), and joint learning against it by
# {glue:text}`diff_map_joint_vs_stopped:+.2f` points ({glue:text}`diff_map_joint_vs_stopped_low:+.2f` to
# {glue:text}`diff_map_joint_vs_stopped_high:+.2f`, {glue:text}`verdict_joint_vs_stopped`); both exploratory and
# uncorrected. It trains on {glue:text}`t2_holdout_percent:.0f` % fewer images than the baseline row.

# %% [markdown]
# ## Table 2 beside the paper's
#
# Accuracy is the top-1 accuracy of each task on its validation images (a top-1 on an `m` class counts as wrong);
# mAP is the challenge's, as reconstructed from public code (`data-formats.md`, B.4): per task the mean precision
# over the thresholds set at every image's top probability, then the mean over the 8 tasks. Ours are means over
# seeds, in percent.

# %%
gen = torch.Generator().manual_seed(0)
arrays = {name: fashionai_arrays(per_seed) for name, per_seed in preds.items()}
mAP, accuracy = map_metric(), accuracy_metric()
# weighted: every replicate at once from its bootstrap counts (the same values as a loop over replicates)
scores = score_methods(arrays, mAP, n_boot=n_boot, generator=gen, weighted=True)
chance = chance_accuracy(preds[BASELINE][0])
glue("chance_uniform", 100 * chance["uniform"], display=False)
glue("chance_majority", 100 * chance["majority"], display=False)
glue("map_baseline", 100 * scores[BASELINE].ci.estimate, display=False)
glue("map_full", 100 * scores[FULL].ci.estimate, display=False)
ours = table2_scores(preds)  # our rows, by row
table2 = table2_frame(preds, scores=ours)
glue("acc_baseline", float(ours.loc[BASELINE, "mean accuracy"]), display=False)
glue("acc_full", float(ours.loc[FULL, "mean accuracy"]), display=False)
table2

# %% [markdown]
# **Have the networks learnt their tasks?** A comparison of networks means something only if they learnt: per task,
# guessing among the classes that occur scores one over their number; the study asks every per-task baseline and
# every joint network for at least twice that (its mean accuracy over seeds, below).

# %%
task_chance = {PAPER_TASK_NAMES[t]: 100 * c["uniform"]  # %
               for t, c in chance_by_task(preds[BASELINE][0]).items()}
learnt_rows = [m for m in (BASELINE, BASELINE_EARLY_STOP, JOINT, MAYBE, FULL, JOINT_EQUAL_STEPS)
               if m in preds]
chance_percent = pd.Series(task_chance)
ratio = {m: ours.loc[m, list(task_chance)] / chance_percent for m in learnt_rows}  # row -> per task, x chance
ratios = pd.DataFrame({m: ratio[m] for m in (BASELINE, JOINT)})
glue("t2_twice_chance_short", int((ratios < 2).sum().sum()), display=False)
glue("t2_twice_chance_cells", int(ratios.size), display=False)
glue("t2_weakest_task", str(ratios.min(axis=1).idxmin()), display=False)
glue("t2_weakest_ratio", float(ratios.min().min()), display=False)
equal_steps_ratio = float(ratio[JOINT_EQUAL_STEPS].min())
glue("t2_equal_steps_min_ratio", equal_steps_ratio, display=False)
glue("t2_equal_steps_reading", "they have not learnt every task, so that comparison says the baseline's steps are too "
     "few for a joint network, not that joint learning hurts." if equal_steps_ratio < 2 else
     "they have learnt every task (at least twice chance), so the comparison is one of learnt networks.",
     display=False)
pd.DataFrame({"chance (%)": chance_percent, **{f"{m.label}: x chance": ratio[m] for m in learnt_rows}}).round(2)

# %% [markdown]
# Of the {glue:text}`t2_twice_chance_cells` task accuracies of the baseline and the joint networks,
# {glue:text}`t2_twice_chance_short` fall short of twice chance; the weakest is {glue:text}`t2_weakest_task` at
# {glue:text}`t2_weakest_ratio:.2f` times chance.

# %% [markdown]
# The detector found a garment in {glue:text}`t2_detected:.1f` % of the validation images (the others are
# recognised on the whole image). The paper's networks start from ImageNet weights and see about 200,000 real
# photographs; ours are trained from scratch on {glue:text}`t2_train_images` synthetic garments, a few minutes per
# network, so the
# levels differ by design and the claims are about *differences*. Guessing would score
# {glue:text}`chance_uniform:.1f` % on average over the tasks (uniform over the classes that occur) or
# {glue:text}`chance_majority:.1f` % (always the most frequent class); our baseline reaches
# {glue:text}`acc_baseline:.1f` % mean accuracy and the full model {glue:text}`acc_full:.1f` %. Their mAP:
# {glue:text}`map_baseline:.2f` % and {glue:text}`map_full:.2f` %.

# %% [markdown]
# ## Each rung against the one before, and the controls
#
# The interval of each difference is a 95 % interval over seeds and validation images, crossed (every seed is
# scored on the same images; `fashion_lib.intervals.crossed_bootstrap_ci`): {glue:text}`diff_map_joint_method`. In
# percentage points of mAP and of mean accuracy over the tasks; the estimate is the mean over seeds.

# %%
claims = {  # key: (method, compared with)
    "joint": (JOINT, BASELINE),
    "maybe": (MAYBE, JOINT),
    "nkd": (FULL, MAYBE),
    "all": (FULL, BASELINE),
    "maybe_alone": (MAYBE_ALONE, BASELINE),
    "nkd_alone": (NKD_ALONE, BASELINE),
    "joint_steps": (JOINT_EQUAL_STEPS, BASELINE),
    "stopped": (BASELINE_EARLY_STOP, BASELINE),
    "joint_vs_stopped": (JOINT, BASELINE_EARLY_STOP),
}
paper_map = {name: row[-1] for name, row in PAPER_TABLE2.items()}
glue("exploratory", EXPLORATORY, display=False)
map_cis, acc_cis = {}, {}


def claim_interval(key, a, b):
    """The mAP difference; the accuracy difference is drawn right after it, from the same generator."""
    map_cis[key] = crossed_bootstrap_ci(mAP, arrays[a], arrays[b], n_boot=n_boot, generator=gen, weighted=True)
    acc_cis[key] = crossed_bootstrap_ci(accuracy, arrays[a], arrays[b], n_boot=n_boot, generator=gen,
                                        weighted=True)
    return map_cis[key]


# the ladder's mAP steps are primary claims (t2_joint, t2_maybe, t2_nkd of primary_claims.PRIMARY_CLAIMS); a claim's
# level is its baseline's own mAP (the primary claims' relative size)
judge_claims(claims, claim_interval, page="t2", better="higher", untested=[m for m in INGREDIENTS if m not in arrays],
             not_tested_reason=ingredients_sentence({}), level=lambda a, b: scores[b].ci.estimate,
             diff_name="diff_map_{key}")
rows = []
for key, ci_acc in acc_cis.items():  # the tested claims, in order
    a, b = claims[key]
    glue_ci(f"diff_acc_{key}", ci_acc, scale=100)
    glue(f"verdict_acc_{key}", verdict(ci_acc, better="higher"), display=False)
    paper_diff = paper_map[a] - paper_map[b] if a in paper_map and b in paper_map else None
    rows.append({"claim": f"{a.label}  vs  {b.label}",
                 "paper, mAP points": "—" if paper_diff is None else f"{paper_diff:+.2f}",
                 "ours, mAP points [95 %]": format_ci(map_cis[key], scale=100, signed=True),
                 "verdict (mAP)": verdict(map_cis[key], better="higher"),
                 "family": "primary" if f"t2_{key}" in {c.key for c in PRIMARY_CLAIMS} else "exploratory",
                 "ours, accuracy points [95 %]": format_ci(ci_acc, scale=100, signed=True),
                 "verdict (accuracy)": verdict(ci_acc, better="higher")})
glue("t2_ingredients", ingredients_sentence(map_cis), display=False)
pd.DataFrame(rows).set_index("claim")

# %% [markdown]
# **Verdicts on the paper's claims** (mAP, the paper's headline metric; accuracy in brackets):
#
# - **Joint learning** changes mAP by {glue:text}`diff_map_joint:+.2f` points (95 % interval
#   {glue:text}`diff_map_joint_low:+.2f` to {glue:text}`diff_map_joint_high:+.2f`; the paper: +0.34). Our result
#   **{glue:text}`verdict_joint`** the claim that it helps (mean accuracy: {glue:text}`diff_acc_joint:+.2f`,
#   {glue:text}`verdict_acc_joint`). Against the paper's size: {glue:text}`t2_joint_size`; the smallest effect
#   this profile could tell from zero (uncorrected: Holm's step on the front page asks more) is
#   {glue:text}`t2_joint_detectable:.2f` mAP points (the paper's steps are
#   0.04 to 0.34).
# - **The "maybe" loss** on top of it: {glue:text}`diff_map_maybe:+.2f` points
#   ({glue:text}`diff_map_maybe_low:+.2f` to {glue:text}`diff_map_maybe_high:+.2f`; the paper: +0.08):
#   **{glue:text}`verdict_maybe`** (accuracy: {glue:text}`diff_acc_maybe:+.2f`, {glue:text}`verdict_acc_maybe`).
# - **New-key-detection** on top of both: {glue:text}`diff_map_nkd:+.2f` points
#   ({glue:text}`diff_map_nkd_low:+.2f` to {glue:text}`diff_map_nkd_high:+.2f`; the paper: +0.04):
#   **{glue:text}`verdict_nkd`** (accuracy: {glue:text}`diff_acc_nkd:+.2f`, {glue:text}`verdict_acc_nkd`).
# - All three together: {glue:text}`diff_map_all:+.2f` points ({glue:text}`diff_map_all_low:+.2f` to
#   {glue:text}`diff_map_all_high:+.2f`; the paper: +0.46): **{glue:text}`verdict_all`**.
#
# {glue:text}`t2_ingredients` "Cannot decide" means the interval holds
# zero: at this profile's size the data cannot tell the two rows apart. The paper's own steps are a few tenths of
# a point on one run, without any interval.
#
# All rungs train the same passes; at the last one the training loss was still falling for
# {glue:text}`t2_still_falling` of the ladder's {glue:text}`t2_ladder_networks` networks (seeds included,
# {numref}`fig-table2-curves`), and the baseline allowed up to {glue:text}`t2_stop_max_epochs` passes scores
# {glue:text}`diff_map_stopped:+.2f` mAP
# points more. Every rung has learnt its tasks (at least twice chance, above); where the loss still falls it has not
# converged, and the verdicts are about networks trained this long, not about the paper's fully trained NASNets.
#
# The three mAP steps of the ladder are primary claims: the verdicts here are uncorrected, and the front page
# corrects them for the paper's whole family (Holm). Everything else on this page (all three together, the
# ingredients alone, the accuracy columns, the per-task changes) is {glue:text}`exploratory`.

# %% [markdown]
# ## Where each rung acts: length and design tasks
#
# The paper says the "maybe" loss helps the length tasks more than the design tasks ("some length attributes are
# confusing") and New-key-detection helps almost every task. The change of each task's accuracy (points, mean
# over seeds):

# %%
changes = pd.DataFrame({f"{a.label}  vs  {b.label}": ours.loc[a] - ours.loc[b] for a, b in claims.values()
                        if a in ours.index and b in ours.index}).T.round(2)  # the rows this profile trains
length_cols = [PAPER_TASK_NAMES[t] for t in LENGTH_TASKS]
design_cols = [PAPER_TASK_NAMES[t] for t in DESIGN_TASKS]
maybe_row = (ours.loc[MAYBE] - ours.loc[JOINT]).round(2)
glue("maybe_gain_length", float(maybe_row[length_cols].mean()), display=False)
glue("maybe_gain_design", float(maybe_row[design_cols].mean()), display=False)
changes

# %% [markdown]
# The "maybe" loss changes the length tasks' accuracy by {glue:text}`maybe_gain_length:+.2f` points on average and
# the design tasks' by {glue:text}`maybe_gain_design:+.2f` (single tasks, on about {glue:text}`t2_val_per_task`
# validation images each, move by several points between seeds: read these as descriptions, the intervals above as
# the test).

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), dpi=dpi, gridspec_kw={"width_ratios": [1, 2]})
draw_paper_beside_ours(axes, paper_map, {n: scores[n] for n in preds}, xlabel="mAP (%)",
                       paper_title="the paper (real FashionAI, one run)",
                       source="synthetic" if setup.synthetic else "real data",
                       paper_xlim=(min(paper_map.values()) - 0.5, max(paper_map.values()) + 0.3))
fig.tight_layout()
glue("table2_figure", fig, display=False)
plt.close(fig)

# %% [markdown]
# ```{glue:figure} table2_figure
# :name: fig-table2
#
# mAP of every row: the paper's (left, note the narrow axis) and ours (right). Higher is better.
# ```
#
# Training, crops and scoring of this page took {glue:text}`t2_wall_min:.1f` min (networks already trained are
# loaded, so a rebuild is faster; the provenance table below gives the page's own wall time).

# %%
_ = prov.finish()
