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
# # Ablation: RANSAC's k, m, n and d, which pairs vote, and whether the centre points vote
#
# The paper sets `m = 8, n = 5, d = 1, k = 10` for FashionAI "for best results" and shows nothing else; `d` has
# no unit, and `m = 8` cannot be reached by any one garment's own pairs (see "Where the paper is ambiguous").
# This page varies one parameter at a time around the paper's values, on the detections of Keypoint R-CNN, with
# the symmetry axis applied once (steps 2-8 of Alg. 2: what these parameters act on; the second scale adds a
# detector pass per setting). Each curve marks the paper's choice; beside NE it shows how often an axis was found.

# %% tags=["parameters"]
run_info = {}
seeds = [0, 1, 2]
detector = {"preset": "cpu", "image_size": 128, "train_steps": 900, "coco_train_steps": 300, "cpn_steps": 0,
            "batch_size": 8, "lr": 0.001, "scale_crop": True, "amp": True}
val_images = 200
k_values = [1, 2, 5, 10, 20, 50]
m_values = [5, 6, 7, 8, 9, 10, 11]
n_values = [2, 3, 4, 5, 6, 8]
d_px_values = [0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0]
d_relative_values = [0.002, 0.005, 0.01, 0.02, 0.05, 0.1]
calibration_images = 100
dpi = 100

# %%
import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import Markdown
from myst_nb import glue

from fashion_lib import provenance
from fashion_lib.experiments import keypoints as kx
from fashion_lib.experiments.keypoint_refiner import score_axis_once
from fashion_lib.experiments.keypoint_rows import calibrated_refine
from fashion_lib.experiments.keypoint_scores import ne_metric
from fashion_lib.experiments.keypoint_text import missing_rule_sentence
from fashion_lib.refine import RefineConfig

prov = provenance.start(run_info, seeds)
setup = kx.KeypointSetup(schema="fashionai", **detector, val_images=val_images, calibration_images=calibration_images)
val = kx.validation_set(setup)
trained = [kx.train_detectors(setup, s, progress=False) for s in seeds]
detections = [kx.detected_instances(d, val, "fashionai")[kx.KRCNN] for d in trained]
detector_ne = 100 * sum(ne_metric()(d.keypoints, val.keypoints, val.categories) for d in detections) / len(seeds)
paper = RefineConfig.for_schema("fashionai")
# the Table 1 page's missing-point rule, per seed, under every setting swept below
thresholds = [calibrated_refine(setup, d, s, paper).fill_below for d, s in zip(trained, seeds, strict=True)]
glue("ransac_missing_rule", Markdown(missing_rule_sentence(setup, thresholds)), display=False)


def sweep(name, values, **fixed):
    """Score the axis applied once for each value of one parameter, the others at the paper's values."""
    rows = [{name: v, **score_axis_once(detections, val, RefineConfig.for_schema("fashionai", **fixed, **{name: v}),
                                        thresholds=thresholds, seeds=seeds)}
            for v in values]
    return pd.DataFrame(rows).set_index(name)


sweeps = {
    "k": sweep("k", k_values),
    "m": sweep("m", m_values),
    "n": sweep("n", n_values),
    "d (pixels)": sweep("d", d_px_values),
    "d (relative to the garment's size)": sweep("d", d_relative_values, d_unit="relative"),
}
marks = {"k": paper.k, "m": paper.m, "n": paper.n, "d (pixels)": paper.d, "d (relative to the garment's size)": None}

# %%
fig, axes = plt.subplots(2, len(sweeps), figsize=(3.2 * len(sweeps), 5.6), dpi=dpi, sharey="row")
for j, (label, table) in enumerate(sweeps.items()):
    x = list(table.index)
    ax = axes[0, j]
    ax.errorbar(x, table["NE visible (%)"], yerr=table["sd visible"].fillna(0.0), fmt="o-", label="visible points")
    ax.errorbar(x, table["NE occluded (%)"], yerr=table["sd occluded"].fillna(0.0), fmt="s--", label="occluded")
    ax.axhline(detector_ne, color="tab:blue", ls=":", lw=1)
    axes[1, j].plot(x, 100 * table["axis share"], "o-", color="tab:gray")
    for a in (ax, axes[1, j]):
        if marks[label] is not None:
            a.axvline(marks[label], color="tab:red", ls="--", lw=1)
        if label.startswith("d") or label == "k":
            a.set_xscale("log")
    ax.set_title(label, fontsize=9)
    axes[1, j].set_xlabel(label)
axes[0, 0].set_ylabel("NE (%) after the axis, once")
axes[1, 0].set_ylabel("garments with an axis (%)")
axes[0, 0].legend(fontsize=7)
fig.tight_layout()
glue("ransac_figure", fig, display=False)
plt.close(fig)

d_table = sweeps["d (pixels)"]
glue("ransac_axis_rate_paper", float(100 * d_table.loc[paper.d, "axis share"]), display=False)
glue("ransac_best_d_px", float(d_table["NE visible (%)"].idxmin()), display=False)
glue("ransac_best_d_ne", float(d_table["NE visible (%)"].min()), display=False)
glue("ransac_detector_ne", float(detector_ne), display=False)
glue("ransac_filled_paper", float(d_table.loc[paper.d, "points filled"]), display=False)
beats = int((d_table["NE visible (%)"] < detector_ne).sum())
glue("ransac_d_beats_detector", f"{beats} of the {len(d_table)} values of `d` tried score below the detector alone"
     if beats else f"none of the {len(d_table)} values of `d` tried scores below the detector alone", display=False)

# %% [markdown]
# ```{glue:figure} ransac_figure
# :name: fig-ransac-ablation
#
# One parameter at a time, the others at the paper's values (red dashed: the paper's choice). Top: NE of the
# refined key points, visible and occluded points, ± sd over seeds; the dotted line is the detector alone. Bottom:
# the share of garments for which RANSAC found an axis (no axis: the garment is left as detected).
# ```
#
# With the paper's `d = 1` pixel, an axis is found for {glue:text}`ransac_axis_rate_paper:.0f` % of the
# garments; of the values tried, the lowest visible-point NE, {glue:text}`ransac_best_d_ne:.2f` %, comes at `d` =
# {glue:text}`ransac_best_d_px:g` pixels (the detector alone: {glue:text}`ransac_detector_ne:.2f` %;
# {glue:text}`ransac_d_beats_detector`). That `d` is
# picked on these same validation garments without an interval: an exploratory description (uncorrected), not a
# verdict, and optimistic for fresh garments. {glue:md}`ransac_missing_rule` At the paper's settings the axis
# fills {glue:text}`ransac_filled_paper:.2f` points per garment.

# %% [markdown]
# ## Which pairs vote, and the centre points
#
# The literal reading lets all 11 pairs vote (the detector predicts all 24 points for every garment); the
# category reading only the garment's own pairs, with `n` and `m` scaled to their number. Optionally the
# non-symmetric points (`center_front`, `crotch`), which lie on the axis, vote too.

# %%
variants = {
    "all pairs (literal, default)": {},
    "category's pairs": {"pairs": "category"},
    "all pairs + centre votes": {"center_votes": True},
    "category's pairs + centre votes": {"pairs": "category", "center_votes": True},
}
variant_table = pd.DataFrame({name: score_axis_once(detections, val, RefineConfig.for_schema("fashionai", **kw),
                                                   thresholds=thresholds, seeds=seeds)
                              for name, kw in variants.items()}).T
glue("ransac_category_ne", float(variant_table.loc["category's pairs", "NE visible (%)"]), display=False)
glue("ransac_all_ne", float(variant_table.loc["all pairs (literal, default)", "NE visible (%)"]), display=False)
glue("ransac_category_axis", float(100 * variant_table.loc["category's pairs", "axis share"]), display=False)
above = int((variant_table["NE visible (%)"] > detector_ne).sum())
glue("ransac_variants_sentence", Markdown(
    f"On visible points {above} of the {len(variant_table)} variants end above the detector alone "
    f"({detector_ne:.2f} %): "
    + {len(variant_table): "on average the axis applied once leaves visible points' NE above the detector's "
                           "alone, whichever points vote", 0: "on average the axis applied once lowers visible points' "
                           "NE whichever points vote"}.get(
        above, "on average the choice of voters decides which side of the detector the axis ends on")
    + " (means over seeds, no interval: the Table 1 page tests the literal variant with its interval)."),
    display=False)
# the refiner's counts in their units: the share of garments with an axis, pairs and points per garment
variant_table.round(3).rename(columns={"axis share": "with axis (share of garments)",
                                       "pairs moved": "pairs moved (per garment)",
                                       "points filled": "points filled (per garment)"})

# %% [markdown]
# With the category's own pairs the refined NE is {glue:text}`ransac_category_ne:.2f` % against
# {glue:text}`ransac_all_ne:.2f` % for the literal reading, and an axis is found for
# {glue:text}`ransac_category_axis:.0f` % of the garments. {glue:md}`ransac_variants_sentence`

# %%
_ = prov.finish()
