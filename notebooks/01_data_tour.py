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
real_facts_csv = ""  # a real FashionAI key-point CSV (its split folder's Annotations/...): compute the real figures
real_image_side = 512  # the real images' side when real_facts_csv's folder holds no Images/ (FashionAI's: 512)
crop_margins = [0.0, 0.1, 0.25]  # the second scale's margins of the ablation (notebook 15)
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
from fashion_lib.crops import crop_framing, second_scale_boxes
from fashion_lib.data import CocoKeypoints, DeepFashionAttributes, FashionAIKeypoints
from fashion_lib.experiments import keypoints as kx
from fashion_lib.keypoints import COCO, FASHIONAI, keypoint_extent
from fashion_lib.plotting import LEFT_COLOR, RIGHT_COLOR, draw_axis, draw_keypoints
from fashion_lib.synthetic import (
    CATEGORIES,
    DEEPFASHION_ATTRIBUTES,
    DEEPFASHION_LANDMARKS,
    REAL_FASHIONAI_FACTS,
    SyntheticDeepFashion,
    SyntheticGarments,
    SyntheticPeople,
    WorldConfig,
    garment_facts,
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
                         dpi=dpi, squeeze=False)
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
                 fontsize=7)
for i in range(deepfashion_images):
    image, target = items[i]
    ax = axes[1, i]
    show(ax, image)
    kp = target["keypoints"][0]
    for slot, name in enumerate(DEEPFASHION_LANDMARKS):
        if kp[slot, 2] > 0:
            color = LEFT_COLOR if name.startswith("left") else RIGHT_COLOR
            ax.scatter(kp[slot, 0], kp[slot, 1], s=14, edgecolors=color, linewidths=1.2,
                       facecolors=color if kp[slot, 2] == 2 else "none")
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
            for t, name in enumerate(("texture", "fabric", "shape", "part", "style"), start=1)}

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.2), dpi=dpi)
x = np.arange(len(summary))
ax1.bar(x, summary["m rate"], color="tab:purple")
ax1.errorbar(x, summary["m rate"], yerr=[summary["m rate"] - spread["min"], spread["max"] - summary["m rate"]],
             fmt="none", color="k", lw=1)
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
                                 split="knobs")
        kp = torch.cat([t["keypoints"] for _, t in data])
        knob_rows.append({"knob": "occlusion_rate", "value": rate, "seed": seed,
                          "measure": float(occluded_fraction(kp))})
    for asym in asymmetry_values:
        data = SyntheticGarments(WorldConfig(image_size=image_size, asymmetry=asym, perspective=0.0,
                                             occluded_label_noise=0.0), knob_items, seed=seed, split="knobs")
        targets = [t for _, t in data]
        offsets = pair_axis_offsets(torch.cat([t["keypoints"] for t in targets]),
                                    torch.cat([t["axis"] for t in targets]), FASHIONAI)
        knob_rows.append({"knob": "asymmetry", "value": asym, "seed": seed,
                          "measure": float(offsets.abs().nan_to_num(0.0).amax(1).mean())})
knobs = pd.DataFrame(knob_rows)

fig, axes = plt.subplots(2, 3, figsize=(10, 6.4), dpi=dpi)
panels = (("occlusion_rate", "occluded share of labelled points", occlusion_values),
          ("asymmetry", "largest |pair midpoint - axis| (px)", asymmetry_values))
for row, (knob, ylabel, values) in enumerate(panels):
    stats = knobs[knobs.knob == knob].groupby("value")["measure"].agg(["mean", "min", "max"])
    ax = axes[row, 0]
    ax.errorbar(stats.index, stats["mean"], yerr=[stats["mean"] - stats["min"], stats["max"] - stats["mean"]],
                marker="o", capsize=3)
    ax.set_xlabel(knob)
    ax.set_ylabel(ylabel, fontsize=8)
    for col, value in ((1, values[0]), (2, values[-1])):
        exact = {} if knob == "occlusion_rate" else {"perspective": 0.0, "occluded_label_noise": 0.0}
        world = WorldConfig(image_size=image_size, **{knob: value, **exact})
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
# {glue:text}`occlusion_max` it is {glue:text}`occluded_at_max`%. Without asymmetry (and without perspective or
# guessed hidden points, `occluded_label_noise` = 0) a
# garment's farthest pair midpoint sits {glue:text}`offset_at_zero` px from the true axis on average (0: on it);
# at `asymmetry` = {glue:text}`asymmetry_max` it is {glue:text}`offset_at_max` px off (the sleeves and trouser legs
# move, and every pair is cut a little off its mirror image, least at the neckline, most at the hems).

# %% [markdown]
# ## The default world beside real garments
#
# The world's default framing, occlusion and asymmetry were set so that it looks like real FashionAI photographs on
# the figures of `real-data-facts.md`: how much of the frame the key points span (the longer side of the box
# closing a garment's present points, over the image side), how much of a garment is occluded, and how far a point
# lies from its partner's mirror image across the garment's own symmetry axis (fitted through the midpoints of its
# other fully visible pairs, at least 3 of them, so mostly tops; error over the NE normaliser). The last is the
# accuracy of the paper's prior with perfect partner points: a detector whose error on a pair is below it is pulled
# away from the truth by the refiner. All from `fashion_lib.synthetic.garment_facts`, the same function for both;
# the real figures are {glue:text}`real_facts_source`.

# %%
if real_facts_csv:
    csv_path = Path(real_facts_csv)
    split = csv_path.parent.parent  # the split folder: <split>/Annotations/<file>.csv
    with_images = (split / "Images").is_dir()
    real_rows = FashionAIKeypoints(split, str(csv_path.relative_to(split)), images=with_images)
    ann = real_rows.annotations
    real_facts = garment_facts(ann.keypoints, ann.categories,
                               real_rows.sizes.amax(1) if with_images else float(real_image_side))
    real_source = f"computed here from {csv_path.name} ({len(ann)} garments)"
else:
    real_facts, real_source = REAL_FASHIONAI_FACTS, "cited from " + REAL_FASHIONAI_FACTS["source"]
world_items = [t for seed in seeds for _, t in SyntheticGarments(config, stats_items, seed=seed, split="facts")]
world_kp = torch.cat([t["keypoints"] for t in world_items])
world_facts = garment_facts(world_kp, [t["category"] for t in world_items], image_size)
facts = pd.DataFrame([{"figure": name, "real FashionAI": real_facts[name], "default world": world_facts[name],
                       "points (world)": world_facts.get(f"n {name}", ""),
                       "within a quarter": abs(world_facts[name] - real_facts[name]) <= real_facts[name] / 4}
                      for name in REAL_FASHIONAI_FACTS if name != "source"]).set_index("figure")
glue("real_facts_source", real_source, display=False)
glue("facts_within", int(facts["within a quarter"].sum()), display=False)
glue("facts_total", len(facts), display=False)
glue("facts_garments", len(world_items), display=False)
facts.round(3)

# %% [markdown]
# On {glue:text}`facts_garments` garments of the default world, {glue:text}`facts_within` of the
# {glue:text}`facts_total` figures lie within a quarter of the real value. The shape asymmetry grows from the
# neckline to the hems (`fashion_lib/synthetic/garments.py`, scaled by the `asymmetry` knob); an occluded point's
# label is the annotator's guess (`occluded_label_noise`), which is why real occluded points lie about twice as far
# from their partner's mirror image as visible ones. Occluded figures per pair rest on few points on both sides.
#
# ### How much of the frame a garment fills: images and second-scale crops
#
# The detectors learn on whole images. New-key-detection's second scale crops the image around the refined key
# points (`fashion_lib.crops.second_scale_boxes`: the closing rectangle grown by a margin, made square, shifted
# inside the image and padded by edge replication only where it cannot fit) and detects again; the crop shows the
# garment larger than a training image as drawn does. Here the extent of the key-point box over the training
# world's images (as drawn, and as the detector sees them in training), over the crops cut around the same
# garments' true points at each margin of the ablation ({doc}`15_ablation_second_scale`), and the real
# photographs' quantiles; and the share of each crop that is padding.

# %%
present = world_kp[..., 2] > 0
# the detectors never see the world's images as drawn: their training set rescales and crops each one
train_setup = kx.KeypointSetup(schema="fashionai", image_size=image_size, world=config)
framing = {"training images": keypoint_extent(world_kp, image_size, image_size),
           "training images, scaled and cropped": torch.cat([kx.training_extents(train_setup, seed, stats_items)
                                                              for seed in seeds])}
padding = {}
for margin in crop_margins:
    boxes = second_scale_boxes(world_kp, present, image_size, margin=margin).boxes
    framing[f"crop, margin {margin:g}"], padding[f"crop, margin {margin:g}"] = crop_framing(
        world_kp, present, boxes, image_size)
quantiles = torch.tensor([0.05, 0.25, 0.5, 0.75, 0.95], dtype=torch.float64)
extent_rows = {name: torch.nanquantile(e.double(), quantiles).tolist() for name, e in framing.items()}
extent_rows["real FashionAI"] = [real_facts[f"extent {q} %"] for q in (5, 25, 50, 75, 95)]
extent_table = pd.DataFrame(extent_rows, index=["5 %", "25 %", "50 %", "75 %", "95 %"]).T
extent_table["padded share of the crop (mean)"] = [float(padding[n].mean()) if n in padding else float("nan")
                                                   for n in extent_table.index]

fig, ax = plt.subplots(figsize=(9, 3.2), dpi=dpi)
ax.boxplot([e[~e.isnan()].numpy() for e in framing.values()], orientation="horizontal", whis=(5, 95), showfliers=False)
ax.set_yticks(range(1, len(framing) + 1), list(framing), fontsize=8)
for q, value in zip((5, 50, 95), (real_facts["extent 5 %"], real_facts["extent 50 %"], real_facts["extent 95 %"]),
                    strict=True):
    ax.axvline(value, color="tab:red", ls="--" if q != 50 else "-", lw=1,
               label="real FashionAI: 5, 50, 95 %" if q == 5 else None)
ax.set_xlabel("longer side of the key-point box / side of the image or crop")
ax.legend(fontsize=7, loc="lower left")
fig.tight_layout()
glue("framing_figure", fig, display=False)
plt.close(fig)
glue("crop_zero_extent", float(extent_table.loc[f"crop, margin {crop_margins[0]:g}", "50 %"]), display=False)
glue("train_extent_95", float(extent_table.loc["training images", "95 %"]), display=False)
for q in ("5 %", "50 %", "95 %"):
    glue(f"augmented_extent_{q[:-2]}", float(extent_table.loc["training images, scaled and cropped", q]),
         display=False)
    glue(f"real_extent_{q[:-2]}", float(real_facts[f"extent {q}"]), display=False)
extent_table.round(3)

# %% [markdown]
# ```{glue:figure} framing_figure
# :name: fig-framing
#
# Extent of the key-point box (boxes: 25-75 %, whiskers: 5-95 %) over the training world's images as drawn and as
# the detector sees them in training (after the scale-and-crop augmentation), and over the second-scale crops at
# each margin; red: the real FashionAI photographs' 5th percentile, median and 95th
# percentile.
# ```
#
# In the crop of the ablation's first margin the key points span a median {glue:text}`crop_zero_extent:.2f` of the
# crop, against at most {glue:text}`train_extent_95:.2f` (95th percentile) of a training image as drawn and
# {glue:text}`augmented_extent_95:.2f` of one as the detector sees it in training: where the crop's median lies above
# the latter, the literal "minimum rectangle closure" shows the detector a framing it rarely learnt. Wider margins
# bring the crop back into the training range, at the cost of the padding in the last column where the crop cannot
# fit in the image.
#
# The detectors do not train on the images as drawn: their training set (`training_set` in
# `fashion_lib.experiments.keypoints`, with `scale_crop`) rescales and crops every image by its own draw
# (`fashion_lib.data.transforms.ScaleCropped`). Through it the key points span
# {glue:text}`augmented_extent_5:.2f` to {glue:text}`augmented_extent_95:.2f` of the frame (5th to 95th
# percentile, median {glue:text}`augmented_extent_50:.2f`), beside the real photographs'
# {glue:text}`real_extent_5:.2f` to {glue:text}`real_extent_95:.2f`.

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
                  "quirks": ", ".join(f"{k} {v}" for k, v in ds.quirks.items() if v) or "none"})
shutil.rmtree(workdir)  # the synthetic copies were only written to be read back
glue("loader_warnings", len(caught), display=False)
pd.DataFrame(table)

# %% [markdown]
# The loaders raised {glue:text}`loader_warnings` warnings while reading these sets (truncated DeepFashion landmarks
# are one: the world cuts some images off below, as the real photographs are).

# %%
record = prov.finish()
