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
detector = {"preset": "cpu", "image_size": 128, "train_steps": 150, "cpn_steps": 240, "batch_size": 8, "lr": 0.001}
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
n_boot = 1000
dpi = 100

# %%
import time

import matplotlib.pyplot as plt
import torch
from myst_nb import glue

from fashion_lib import provenance
from fashion_lib.experiments import keypoints as kx
from fashion_lib.metrics import crossed_bootstrap_ci
from fashion_lib.plotting import draw_scores
from fashion_lib.refine import RefineConfig
from fashion_lib.report import EXPLORATORY, comparison_table, format_ci, glue_ci, glue_claim, score_methods, verdict

prov = provenance.start(run_info, seeds)
setup = kx.KeypointSetup(schema="fashionai", **detector, val_images=val_images,
                         data_root=data_root, train_file=train_file, val_file=val_file,
                         val_root=val_root)
refine = RefineConfig.for_schema("fashionai", alpha=alpha, k=k, n=n, m=m, d=d, d_unit=d_unit, pairs=pairs,
                                 score_threshold=score_threshold, margin=margin)
val = kx.validation_set(setup)
print(f"validation set: {len(val.images)} images ({'synthetic' if setup.synthetic else data_root})")

# %% [markdown]
# ## Training and refining, one seed at a time
#
# Each seed trains Keypoint R-CNN (torchvision's, the paper's "Mask R-CNN" with a key-point head) and CPN from
# scratch; a finished run is loaded from the study's run folder instead of trained again. The refiner's settings
# are the paper's FashionAI values unless a parameter says otherwise.

# %%
t0 = time.perf_counter()
rows_per_seed = kx.rows_for_seeds(setup, val, refine, seeds)
print(f"{len(seeds)} seeds trained (or loaded) and refined in {time.perf_counter() - t0:.0f} s; refiner: {refine}")

# %% [markdown]
# ## Table 1, FashionAI column
#
# NE pools the error of every visible ground-truth point, divided by the garment's normaliser (armpit or
# waistband distance), over the whole validation set: the challenge's definition (`reduce="keypoint"`). Ours is
# the mean over seeds; its 95 % interval covers seeds and images, crossed (every seed is scored on the same
# images): {glue:text}`ne_krcnn_method` (`fashion_lib.metrics.crossed_bootstrap_ci`).

# %%
gen = torch.Generator().manual_seed(0)
paper = {kx.KRCNN: 13.70, kx.CPN: 13.55, kx.NKD: 10.96}
arrays = {row: kx.ne_arrays(rows_per_seed, val, row) for row in kx.ROWS}
ne = kx.ne_metric()
scores = score_methods(arrays, ne, n_boot=n_boot, generator=gen)
comparison_table(scores, paper, scale=100, unit=" NE (%)")

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
}
primary = ("nkd", "cpn", "nkd_vs_cpn")  # the front page's claims (fashion_lib.report.PRIMARY_CLAIMS)
verdicts = {}
for key, (a, b) in claims.items():
    ci = difference(a, b)
    if key in primary:
        glue_claim(f"t1_fashionai_{key}", ci)
    verdicts[key] = verdict(ci, better="lower")
    glue_ci(f"diff_{key}", ci, scale=100)
    glue(f"verdict_{key}", verdicts[key], display=False)
    print(f"{a} - {b}: {format_ci(ci, scale=100, signed=True)} NE points -> {verdicts[key]} that it lowers NE")
for row, key in ((kx.KRCNN, "krcnn"), (kx.CPN, "cpn"), (kx.NKD, "nkd"), (kx.CPN_NKD, "cpn_nkd"),
                 (kx.AXIS_ONCE, "axis_once"), (kx.TWICE, "twice")):
    glue_ci(f"ne_{key}", scores[row].ci, scale=100)
glue("exploratory", EXPLORATORY, display=False)
glue("train_steps", setup.train_steps, display=False)
glue("cpn_steps", setup.cpn_steps, display=False)

# %% [markdown]
# **Verdict on the paper's claim.** New-key-detection changes the NE of Keypoint R-CNN by
# {glue:text}`diff_nkd:+.2f` points (95 % interval {glue:text}`diff_nkd_low:+.2f` to
# {glue:text}`diff_nkd_high:+.2f`; the paper reports −2.74). Our result **{glue:text}`verdict_nkd`** the claim
# that it lowers NE. The interval, not the sign of the mean, decides: "cannot decide" means the data of this
# profile cannot tell the refiner from no refiner. Against the paper's size the difference is
# {glue:text}`t1_fashionai_nkd_size`; the smallest effect this profile could tell from zero (the interval's
# half-width) is {glue:text}`t1_fashionai_nkd_detectable:.2f` points. This claim and the two against CPN below
# belong to the paper's primary family: the verdicts here are uncorrected, and the front page corrects them for
# the whole family (Holm). Every other comparison on this page is {glue:text}`exploratory`.
#
# The two controls separate New-key-detection's parts. The axis applied once changes NE by
# {glue:text}`diff_axis_once:+.2f` points ({glue:text}`verdict_axis_once` that it helps); running the detector
# twice, on the crop, without the axis changes it by {glue:text}`diff_twice:+.2f`
# ({glue:text}`verdict_twice` that it helps). Whatever New-key-detection does to NE here, compare it with the
# second control: the crop and second detection alone account for it when the two are close. The crop's margin,
# which the paper's "minimum rectangle closure" sets to zero, is the subject of
# {doc}`15_ablation_second_scale`.
#
# CPN against Keypoint R-CNN: {glue:text}`diff_cpn:+.2f` points ({glue:text}`verdict_cpn` that CPN is better;
# the paper: −0.15). Both are trained from scratch here, CPN for {glue:text}`cpn_steps` steps and Keypoint R-CNN
# for {glue:text}`train_steps`: a heat-map network without pretrained features learns more slowly per step, and at
# this profile's budget the comparison is with an under-trained CPN, not a verdict on the architecture. The
# refiner on CPN: {glue:text}`diff_cpn_nkd:+.2f` points ({glue:text}`verdict_cpn_nkd` that it lowers NE). The
# paper's method against CPN, which it says it beats: {glue:text}`diff_nkd_vs_cpn:+.2f` points
# ({glue:text}`diff_nkd_vs_cpn_low:+.2f` to {glue:text}`diff_nkd_vs_cpn_high:+.2f`; the paper: −2.59), a
# result that **{glue:text}`verdict_nkd_vs_cpn`** the claim, with the same caveat on the under-trained CPN.

# %% [markdown]
# ## Visible and occluded points, and the per-image reduction
#
# The challenge counts only visible points, yet the paper's argument is about occlusion. The same rows scored on
# the points the ground truth marks occluded, and with the per-image reduction (`reduce="image"`) that one
# public scorer uses:

# %%
import pandas as pd

variants = {"visible, pooled (the challenge)": ne, "visible, per image": kx.ne_metric(reduce="image"),
            "occluded points only": kx.ne_metric(points="occluded")}
table = {}
for label, metric in variants.items():
    table[label] = {row: 100 * sum(metric(*a) for a in arrays[row]) / len(arrays[row]) for row in kx.ROWS}
variant_table = pd.DataFrame(table).round(2)
occluded_ci = difference(kx.NKD, kx.KRCNN, kx.ne_metric(points="occluded"))
glue_ci("diff_nkd_occluded", occluded_ci, scale=100)
glue("verdict_nkd_occluded", verdict(occluded_ci, better="lower"), display=False)
variant_table

# %% [markdown]
# On occluded points New-key-detection changes NE by {glue:text}`diff_nkd_occluded:+.2f` points
# ({glue:text}`verdict_nkd_occluded` that it helps there). Values are means over seeds, in percent.

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), dpi=dpi, gridspec_kw={"width_ratios": [1, 2]})
names = list(paper)
axes[0].barh(names, [paper[r] for r in names], color="tab:gray")
axes[0].set_title("the paper (real FashionAI)")
axes[0].set_xlabel("NE (%)")
axes[0].invert_yaxis()
draw_scores(axes[1], {r: scores[r] for r in kx.ROWS}, xlabel="NE (%)",
            source="synthetic" if setup.synthetic else "real data")
fig.tight_layout()
glue("table1_fashionai_figure", fig, display=False)
plt.close(fig)

# %% [markdown]
# ```{glue:figure} table1_fashionai_figure
# :name: fig-table1-fashionai
#
# NE of every row: the paper's (left) and ours (right). Lower is better.
# ```

# %%
_ = prov.finish()
