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
# # Ablation: the EMA weight alpha
#
# The paper chooses `alpha = 0.4` "for best performance" without showing the curve. In the study's reading,
# `EMA_alpha(p, q) = (1 - alpha) p + alpha q` with `q` the partner mirrored across the axis, so a refined pair's
# asymmetry is multiplied by `1 - 2 alpha`: 0 leaves it, 0.5 removes it, 1 mirrors it to the other side. The
# other reading (alpha on the original point) is the same curve read from the right. This page sweeps alpha on
# the FashionAI validation set, for the axis applied once (cheap: every value) and for the full New-key-detection
# (a second detector pass per value: a coarser grid), scoring visible and occluded points separately.

# %% tags=["parameters"]
run_info = {}
seeds = [0, 1, 2]
detector = {"preset": "cpu", "image_size": 128, "train_steps": 900, "coco_train_steps": 300, "cpn_steps": 0,
            "batch_size": 8, "lr": 0.001, "scale_crop": True, "amp": True}
val_images = 200
alphas = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
nkd_alphas = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
calibration_images = 100
dpi = 100

# %%
import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import Markdown
from myst_nb import glue

from fashion_lib import provenance
from fashion_lib.experiments import keypoints as kx
from fashion_lib.experiments.keypoint_rows import calibrated_refine, rows_for_seeds
from fashion_lib.experiments.keypoint_scores import ne_metric, ne_over_seeds
from fashion_lib.experiments.keypoint_text import missing_rule_sentence
from fashion_lib.refine import RefineConfig

prov = provenance.start(run_info, seeds)
setup = kx.KeypointSetup(schema="fashionai", **detector, val_images=val_images, calibration_images=calibration_images)
val = kx.validation_set(setup)
metrics = {"visible points": ne_metric(), "occluded points": ne_metric(points="occluded")}


def curve(row, values):
    """NE (%) per alpha: {metric: [(mean, sd) per alpha]}, and the detector's own NE for reference."""
    out = {name: [] for name in metrics}
    for a in values:
        per_seed = rows_for_seeds(setup, val, RefineConfig.for_schema("fashionai", alpha=a), seeds,
                                  rows=(kx.KRCNN, row))
        for name, mean_and_sd in ne_over_seeds(per_seed, val, row, metrics).items():
            out[name].append(mean_and_sd)
    return out


axis_once = curve(kx.AXIS_ONCE, alphas)
nkd = curve(kx.NKD, nkd_alphas)
base_rows = rows_for_seeds(setup, val, RefineConfig.for_schema("fashionai"), seeds, rows=(kx.KRCNN,))
detector = {name: mean for name, (mean, _) in ne_over_seeds(base_rows, val, kx.KRCNN, metrics).items()}
# rows_for_seeds applies the same calibrated rule (calibrate_missing) to every alpha; the page names its thresholds
paper = RefineConfig.for_schema("fashionai")
thresholds = [calibrated_refine(setup, kx.train_detectors(setup, s, progress=False), s, paper).fill_below
              for s in seeds]
glue("alpha_missing_rule", Markdown(missing_rule_sentence(setup, thresholds)), display=False)

# %% [markdown]
# Every alpha uses the same missing-point rule as the Table 1 page: {glue:md}`alpha_missing_rule`

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), dpi=dpi, sharex=True)
for ax, name in zip(axes, metrics, strict=True):
    for label, values, res, color in (("axis once", alphas, axis_once, "tab:cyan"),
                                      ("New-key-detection", nkd_alphas, nkd, "tab:green")):
        mean = [m for m, _ in res[name]]
        sd = [0.0 if s != s else s for _, s in res[name]]  # one seed: no spread
        ax.plot(values, mean, "o-", color=color, label=label)
        ax.fill_between(values, [m - s for m, s in zip(mean, sd, strict=True)],
                        [m + s for m, s in zip(mean, sd, strict=True)], color=color, alpha=0.2)
    ax.axhline(detector[name], color="tab:blue", ls=":", label="detector alone")
    ax.axvline(0.4, color="tab:red", ls="--", lw=1, label="the paper's alpha = 0.4")
    ax.set_title(f"NE on {name}")
    ax.set_xlabel("alpha")
    ax.set_ylabel("NE (%), mean ± sd over seeds")
axes[0].legend(fontsize=7)
fig.tight_layout()
glue("alpha_figure", fig, display=False)
plt.close(fig)

best_once = alphas[min(range(len(alphas)), key=lambda i: axis_once["visible points"][i][0])]
best_nkd = nkd_alphas[min(range(len(nkd_alphas)), key=lambda i: nkd["visible points"][i][0])]
best_nkd_occluded = nkd_alphas[min(range(len(nkd_alphas)), key=lambda i: nkd["occluded points"][i][0])]
best_once_occluded = alphas[min(range(len(alphas)), key=lambda i: axis_once["occluded points"][i][0])]
glue("alpha_best_axis_once_occluded", float(best_once_occluded), display=False)
glue("alpha_best_axis_once", float(best_once), display=False)
glue("alpha_best_nkd", float(best_nkd), display=False)
glue("alpha_best_nkd_occluded", float(best_nkd_occluded), display=False)
# alpha = 0 moves no pair (the fill still runs): if that is best on visible points, the axis's pull adds nothing there
once_best_ne = axis_once["visible points"][alphas.index(best_once)][0]
if best_once == 0.0:
    at_paper = axis_once["visible points"][alphas.index(0.4)][0] if 0.4 in alphas else float("nan")
    axis_role = ("At this profile the axis applied once scores best on visible points at alpha = 0, where it moves no "
                 "pair (it only fills points): on visible points the axis's pull does not help"
                 + (f"; at the paper's 0.4 their mean NE is higher ({at_paper:.2f} against {once_best_ne:.2f} %, "
                    "means over seeds: the Table 1 page's interval for the axis once tells whether that difference "
                    "is more than noise)" if at_paper > once_best_ne else "")
                 + ", so the New-key-detection row's change there comes from its other steps, chiefly the second "
                 "detection (the Table 1 page's \"twice, no symmetry\" control isolates it).")
elif once_best_ne < detector["visible points"]:
    axis_role = (f"At this profile the axis applied once lowers NE on visible points below the detector alone "
                 f"({once_best_ne:.2f} against {detector['visible points']:.2f} %) at alpha = {best_once:.1f}, so its "
                 "pull contributes to the New-key-detection row's change on visible points, beside the second "
                 "detection.")
else:
    axis_role = (f"At this profile even the best alpha for the axis applied once ({best_once:.1f}) leaves NE on "
                 f"visible points at or above the detector alone ({once_best_ne:.2f} against "
                 f"{detector['visible points']:.2f} %): the axis's pull does not help visible points here.")
axis_role += " Exploratory: means over seeds, no interval, no correction."
glue("alpha_axis_role", axis_role, display=False)
pd.concat({name: pd.DataFrame({"alpha": values,
                                "visible NE (%)": [round(m, 2) for m, _ in res["visible points"]],
                                "occluded NE (%)": [round(m, 2) for m, _ in res["occluded points"]]}).set_index("alpha")
           for name, values, res in (("axis once", alphas, axis_once), ("New-key-detection", nkd_alphas, nkd))})

# %% [markdown]
# ```{glue:figure} alpha_figure
# :name: fig-alpha
#
# NE against alpha for the axis applied once and for New-key-detection, on visible (left) and occluded (right)
# points; the band is ± one sd over seeds, the dotted line the detector without refinement.
# ```
#
# On visible points the lowest NE comes at alpha = {glue:text}`alpha_best_axis_once:.1f` for the axis applied
# once and {glue:text}`alpha_best_nkd:.1f` for New-key-detection; on occluded points at
# {glue:text}`alpha_best_axis_once_occluded:.1f` for the axis applied once and
# {glue:text}`alpha_best_nkd_occluded:.1f` for New-key-detection (of the values tried, picked on these validation
# garments: exploratory, uncorrected). The paper's 0.4 is marked in red. {glue:text}`alpha_axis_role`

# %%
_ = prov.finish()
