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
# # A tour of the data
#
# No real data set can be downloaded here, so the study runs on a procedural world shaped like FashionAI,
# DeepFashion and COCO (paper, section IV.A), written in their real on-disk formats and read back by the same
# loaders a user points at the real data. This page shows what that world draws, how its labels are distributed,
# what its two main knobs (occlusion and pose asymmetry) do, and that the four loaders read what the writers wrote.
# Everything comes from `fashion_lib.synthetic` and `fashion_lib.data`.

# %% tags=["parameters"]
run_info = {}
seeds = [0, 1, 2]
image_size = 128
per_category = 4
people_images = 4
deepfashion_images = 6
stats_items = 400
knob_items = 120
occlusion_values = [0.0, 0.1, 0.3, 0.6]
asymmetry_values = [0.0, 0.3, 0.6, 1.0]
loader_items = 24
fashionai_root = ""
deepfashion_root = ""
coco_annotation_file = ""
coco_image_dir = ""
dpi = 100

# %%
import shutil
import tempfile
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from myst_nb import glue

from fashion_lib import provenance
from fashion_lib.attributes import FASHIONAI_TASKS, PAPER_TASK_NAMES
from fashion_lib.data import CocoKeypoints, DeepFashionAttributes, FashionAIKeypoints
from fashion_lib.keypoints import COCO, FASHIONAI
from fashion_lib.plotting import LEFT_COLOR, RIGHT_COLOR, draw_axis, draw_keypoints
from fashion_lib.synthetic import (
    CATEGORIES,
    DEEPFASHION_ATTRIBUTES,
    DEEPFASHION_LANDMARKS,
    SyntheticDeepFashion,
    SyntheticGarments,
    SyntheticPeople,
    WorldConfig,
    label_rates,
    occluded_fraction,
    pair_axis_offsets,
    write_coco_people,
    write_deepfashion,
    write_fashionai_keypoints,
)

prov = provenance.start(run_info, seeds)
config = WorldConfig(image_size=image_size)


def show(ax, image):
    ax.imshow(image.permute(1, 2, 0).numpy())
    ax.set_xticks([])
    ax.set_yticks([])


# %% [markdown]
# ## Garments of the five FashionAI categories
#
# Each garment is a parametric shape built on FashionAI's 24-point schema: the points of its category exist and
# the others are absent. Blue points are FashionAI's `*_left` points, orange the `*_right` ones, green the points on
# the axis; hollow markers are points an occluder hid (visibility 1). The dashed red line is the true symmetry axis
# the world returns with every garment. Titles give the class that is `y` in each attribute task of the garment.

# %%
fig, axes = plt.subplots(len(CATEGORIES), per_category, figsize=(2.2 * per_category, 2.4 * len(CATEGORIES)),
                         dpi=dpi, squeeze=False)  # fmt: skip
for row, category in enumerate(CATEGORIES):
    data = SyntheticGarments(config, per_category, seed=seeds[0], split="tour", categories=[category])
    for col in range(per_category):
        image, target = data[col]
        ax = axes[row, col]
        show(ax, image)
        draw_keypoints(ax, target["keypoints"][0], FASHIONAI, size=12)
        draw_axis(ax, target["axis"][0, :2], target["axis"][0, 2])
        names = [FASHIONAI_TASKS[t][int(c.argmax())] for t, c in target["attributes"].items()]
        ax.set_title(category + "".join(("\n" if k % 2 == 0 else ", ") + n for k, n in enumerate(names)), fontsize=6)
fig.tight_layout()
glue("garment_grid", fig, display=False)
plt.close(fig)

# %% [markdown]
# ```{glue:figure} garment_grid
# :name: fig-garment-grid
#
# Synthetic garments per FashionAI category with their key points, true symmetry axis and attribute classes.
# ```

# %% [markdown]
# ## People and DeepFashion items
#
# COCO's world holds several persons per image, some small, some overlapping, some wearing a top, and sometimes a
# crowd of small unlabelled figures (one `iscrowd = 1` region, shaded). DeepFashion items are the same garments
# drawn with a DeepFashion category (Jeans are full-length denim trousers, a Tank is a sleeveless top), 8 landmarks
# (collar, sleeve, waistline and hem on each side; blue left, orange right) and some of them cut off below, so their
# lowest landmarks are truncated and absent.

# %%
people = SyntheticPeople(config, people_images, seed=seeds[0], split="tour")
items = SyntheticDeepFashion(config, deepfashion_images, seed=seeds[0], split="tour")
attribute_names = [name for name, _ in DEEPFASHION_ATTRIBUTES]
cols = max(people_images, deepfashion_images)
fig, axes = plt.subplots(2, cols, figsize=(2.2 * cols, 5.0), dpi=dpi, squeeze=False)
for ax in axes.flat:
    ax.axis("off")
for i in range(people_images):
    image, target = people[i]
    ax = axes[0, i]
    show(ax, image)
    for kp, crowd, box in zip(target["keypoints"], target["iscrowd"], target["boxes"], strict=True):
        if crowd:
            x1, y1, x2, y2 = box.tolist()
            ax.add_patch(plt.Rectangle((x1, y1), x2 - x1, y2 - y1, color="white", alpha=0.35))
        else:
            draw_keypoints(ax, kp, COCO, size=5)
    ax.set_title(f"{int((target['iscrowd'] == 0).sum())} persons" + (", crowd" if target["iscrowd"].any() else ""),
                 fontsize=7)  # fmt: skip
for i in range(deepfashion_images):
    image, target = items[i]
    ax = axes[1, i]
    show(ax, image)
    kp = target["keypoints"][0]
    for slot, name in enumerate(DEEPFASHION_LANDMARKS):
        if kp[slot, 2] > 0:
            color = LEFT_COLOR if name.startswith("left") else RIGHT_COLOR
            ax.scatter(kp[slot, 0], kp[slot, 1], s=14, edgecolors=color, linewidths=1.2,
                       facecolors=color if kp[slot, 2] == 2 else "none")  # fmt: skip
    positives = [attribute_names[j] for j in target["attributes"].nonzero().flatten().tolist()]
    ax.set_title(f"{target['category']}: " + ", ".join(positives[:4]), fontsize=6)
fig.tight_layout()
glue("people_deepfashion", fig, display=False)
plt.close(fig)

# %% [markdown]
# ```{glue:figure} people_deepfashion
# :name: fig-people-deepfashion
#
# Top: synthetic COCO people with their skeletons. Bottom: DeepFashion items with their category, a few positive
# attributes and the visible (filled) or occluded (hollow) landmarks.
# ```

# %% [markdown]
# ## Attribute labels and "maybe" labels
#
# Every FashionAI attribute is a continuous latent that decides both the drawing and the label; a latent within
# `maybe_width` of a class boundary gives the neighbouring class an `m` label. The bars show, per task, how the `y`
# labels spread over the classes and how many items carry an `m` (mean over the seeds; the whiskers span the seeds).

# %%
rows = []
for seed in seeds:
    codes = {task: [] for task in FASHIONAI_TASKS}
    for _, target in SyntheticGarments(config, stats_items, seed=seed, split="stats"):
        for task, c in target["attributes"].items():
            codes[task].append(c)
    for task, c in codes.items():
        y_share, m_rate = label_rates(torch.stack(c))
        rows.append({"seed": seed, "task": PAPER_TASK_NAMES[task], "items": len(c), "m rate": float(m_rate),
                     "largest class share": float(y_share.max()), "classes used": int((y_share > 0).sum())})
labels = pd.DataFrame(rows)
summary = labels.groupby("task")[["items", "m rate", "largest class share", "classes used"]].mean()
spread = labels.groupby("task")["m rate"].agg(["min", "max"])

df = SyntheticDeepFashion(config, stats_items, seed=seeds[0], split="stats")
positives = torch.stack([target["attributes"] for _, target in df]).float()
types = torch.tensor([t for _, t in DEEPFASHION_ATTRIBUTES])
per_type = {name: float(positives[:, types == t].sum(1).mean())
            for t, name in enumerate(("texture", "fabric", "shape", "part", "style"), start=1)}  # fmt: skip

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.2), dpi=dpi)
x = np.arange(len(summary))
ax1.bar(x, summary["m rate"], color="tab:purple")
ax1.errorbar(x, summary["m rate"], yerr=[summary["m rate"] - spread["min"], spread["max"] - summary["m rate"]],
             fmt="none", color="k", lw=1)  # fmt: skip
ax1.set_xticks(x, summary.index, fontsize=8)
ax1.set_ylabel("items with an m label")
ax1.set_title("FashionAI tasks: share of items with an 'm'", fontsize=9)
ax2.bar(list(per_type), list(per_type.values()), color="tab:gray")
ax2.set_ylabel("positive attributes per item")
ax2.set_title("DeepFashion: positives per attribute type", fontsize=9)
fig.tight_layout()
glue("label_figure", fig, display=False)
plt.close(fig)

m_rate = float(labels["m rate"].mean())
glue("m_rate_percent", round(100 * m_rate, 1), display=False)
glue("maybe_width", config.maybe_width, display=False)
glue("deepfashion_positives", round(float(positives.sum(1).mean()), 1), display=False)
glue("deepfashion_attributes", len(DEEPFASHION_ATTRIBUTES), display=False)
summary.round(3)

# %% [markdown]
# ```{glue:figure} label_figure
# :name: fig-labels
#
# Left: share of items with an `m` label per FashionAI task. Right: positive DeepFashion attributes per item and
# type.
# ```
#
# With `maybe_width` = {glue:text}`maybe_width` (in class units), {glue:text}`m_rate_percent`% of the labels carry
# an `m`. The DeepFashion world keeps the real format with {glue:text}`deepfashion_attributes` attributes instead of
# 1000; an item has {glue:text}`deepfashion_positives` positive attributes on average (about 3.3 in the real data).

# %% [markdown]
# ## The knobs: occlusion and pose asymmetry
#
# Two knobs the real data sets cannot offer. `occlusion_rate` is the chance that each existing point becomes the
# centre of an occluder, which hides it (and maybe its neighbours) and sets it to visibility 1. `asymmetry` raises
# arms, folds sleeves and bends legs independently on each side, which moves the midpoint of a left/right pair off
# the true symmetry axis: the situation the paper's refiner has to cope with.

# %%
knob_rows = []
for seed in seeds:
    for rate in occlusion_values:
        data = SyntheticGarments(WorldConfig(image_size=image_size, occlusion_rate=rate), knob_items, seed=seed,
                                 split="knobs")  # fmt: skip
        kp = torch.cat([t["keypoints"] for _, t in data])
        knob_rows.append({"knob": "occlusion_rate", "value": rate, "seed": seed,
                          "measure": float(occluded_fraction(kp))})  # fmt: skip
    for asym in asymmetry_values:
        data = SyntheticGarments(WorldConfig(image_size=image_size, asymmetry=asym, perspective=0.0), knob_items,
                                 seed=seed, split="knobs")  # fmt: skip
        targets = [t for _, t in data]
        offsets = pair_axis_offsets(torch.cat([t["keypoints"] for t in targets]),
                                    torch.cat([t["axis"] for t in targets]), FASHIONAI)  # fmt: skip
        knob_rows.append({"knob": "asymmetry", "value": asym, "seed": seed,
                          "measure": float(offsets.abs().nan_to_num(0.0).amax(1).mean())})  # fmt: skip
knobs = pd.DataFrame(knob_rows)

fig, axes = plt.subplots(2, 3, figsize=(10, 6.4), dpi=dpi)
panels = (("occlusion_rate", "occluded share of labelled points", occlusion_values),
          ("asymmetry", "largest |pair midpoint - axis| (px)", asymmetry_values))  # fmt: skip
for row, (knob, ylabel, values) in enumerate(panels):
    stats = knobs[knobs.knob == knob].groupby("value")["measure"].agg(["mean", "min", "max"])
    ax = axes[row, 0]
    ax.errorbar(stats.index, stats["mean"], yerr=[stats["mean"] - stats["min"], stats["max"] - stats["mean"]],
                marker="o", capsize=3)  # fmt: skip
    ax.set_xlabel(knob)
    ax.set_ylabel(ylabel, fontsize=8)
    for col, value in ((1, values[0]), (2, values[-1])):
        world = WorldConfig(image_size=image_size, **({knob: value} if knob == "occlusion_rate" else
                                                       {knob: value, "perspective": 0.0}))  # fmt: skip
        image, target = SyntheticGarments(world, 1, seed=seeds[0], split="knob-example", categories=["blouse"])[0]
        ax = axes[row, col]
        show(ax, image)
        draw_keypoints(ax, target["keypoints"][0], FASHIONAI, size=14)
        draw_axis(ax, target["axis"][0, :2], target["axis"][0, 2])
        ax.set_title(f"{knob} = {value}", fontsize=8)
fig.tight_layout()
glue("knob_figure", fig, display=False)
plt.close(fig)

occ = knobs[knobs.knob == "occlusion_rate"].groupby("value")["measure"].mean()
asy = knobs[knobs.knob == "asymmetry"].groupby("value")["measure"].mean()
glue("occluded_at_zero", round(100 * float(occ.iloc[0]), 1), display=False)
glue("occluded_at_max", round(100 * float(occ.iloc[-1]), 1), display=False)
glue("occlusion_max", float(occlusion_values[-1]), display=False)
glue("offset_at_zero", round(float(asy.iloc[0]), 3), display=False)
glue("offset_at_max", round(float(asy.iloc[-1]), 1), display=False)
glue("asymmetry_max", float(asymmetry_values[-1]), display=False)
knobs.groupby(["knob", "value"])["measure"].agg(["mean", "min", "max"]).round(3)

# %% [markdown]
# ```{glue:figure} knob_figure
# :name: fig-knobs
#
# Top: the occlusion knob (left: share of labelled points that are occluded, mean and range over the seeds;
# middle and right: the same blouse at the lowest and highest rate). Bottom: the asymmetry knob (left: distance of
# a garment's farthest pair midpoint from its true axis, mean over garments; middle and right: the same blouse
# without and with asymmetry).
# ```
#
# Without occluders {glue:text}`occluded_at_zero`% of the points are occluded; at `occlusion_rate` =
# {glue:text}`occlusion_max` it is {glue:text}`occluded_at_max`%. Without asymmetry (and without perspective) a
# garment's farthest pair midpoint sits {glue:text}`offset_at_zero` px from the true axis on average (0: on it);
# at `asymmetry` = {glue:text}`asymmetry_max` it is {glue:text}`offset_at_max` px off (the sleeves and trouser legs
# move, the neckline, shoulders and hems stay symmetric).

# %% [markdown]
# ## The same loaders for synthetic and real data
#
# The writers produce each data set in its real layout, and the loaders of `fashion_lib.data` read it back. Set the
# parameters `fashionai_root` (a FashionAI split folder holding `Annotations/train.csv` and `Images/`),
# `deepfashion_root` (the folder holding `Anno/`, `Eval/` and `Img/`), `coco_annotation_file` and
# `coco_image_dir` (`person_keypoints_val2017.json` and `val2017/`) to read a real copy instead; the table then
# describes the real data. Quirks are the loaders' counts of known irregularities (kept, never dropped).

# %%
workdir = Path(tempfile.mkdtemp(prefix="data_tour_"))
real = {"FashionAI": bool(fashionai_root), "DeepFashion": bool(deepfashion_root), "COCO": bool(coco_annotation_file)}
fashionai = Path(fashionai_root) if real["FashionAI"] else write_fashionai_keypoints(
    workdir / "fashionai", loader_items, seed=seeds[0], config=config)
deepfashion = Path(deepfashion_root) if real["DeepFashion"] else write_deepfashion(
    workdir / "deepfashion", loader_items, seed=seeds[0], config=config)
if real["COCO"]:
    coco_json, coco_dir = Path(coco_annotation_file), Path(coco_image_dir)
else:
    coco = write_coco_people(workdir / "coco", loader_items, seed=seeds[0], config=config)
    coco_json, coco_dir = coco / "annotations" / "person_keypoints_train2017.json", coco / "train2017"
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    loaders = {
        "FashionAI": FashionAIKeypoints(fashionai),
        "DeepFashion": DeepFashionAttributes(deepfashion, "train"),
        "COCO": CocoKeypoints(coco_json, coco_dir),
    }
table = []
for name, ds in loaders.items():
    image, target = ds[0]
    table.append({"data set": name, "source": "real" if real[name] else "synthetic", "images": len(ds),
                  "points per instance": int(target["keypoints"].shape[1]),
                  "first image": f"{image.shape[2]} x {image.shape[1]}",
                  "quirks": ", ".join(f"{k} {v}" for k, v in ds.quirks.items() if v) or "none"})  # fmt: skip
shutil.rmtree(workdir)  # the synthetic copies were only written to be read back
glue("loader_warnings", len(caught), display=False)
pd.DataFrame(table)

# %% [markdown]
# The loaders raised {glue:text}`loader_warnings` warnings while reading these sets (truncated DeepFashion landmarks
# are one: the world cuts some images off below, as the real photographs are).

# %%
record = prov.finish()
