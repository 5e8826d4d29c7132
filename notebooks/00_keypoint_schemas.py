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
# # The two key-point schemas
#
# The paper localises FashionAI's apparel key points and COCO's human key points, and its refiner
# (New-key-detection) rests on one fact about both: most points come in left/right pairs whose midpoints lie on a
# symmetry axis. This page draws both schemas from `fashion_lib.keypoints`, the single place where the study
# defines them, with each pair and the axis their midpoints should lie on.

# %% tags=["parameters"]
run_info = {}
dpi = 100

# %%
import matplotlib.pyplot as plt
from myst_nb import glue

from fashion_lib import provenance
from fashion_lib.keypoints import COCO, FASHIONAI
from fashion_lib.plotting import draw_schema

prov = provenance.start(run_info)

# %% [markdown]
# ## FashionAI: 24 points, one garment category per image
#
# Each of the five categories uses a subset of the 24 points; the points a category lacks are written `-1_-1_-1`
# in the data set's CSV. Blue points are the wearer's left, orange the right, green the non-symmetric points that
# lie on the axis (dashed red).

# %%
fig, axes = plt.subplots(1, 6, figsize=(15, 3.6), dpi=dpi)
for ax, category in zip(axes, FASHIONAI.categories, strict=False):
    draw_schema(ax, FASHIONAI, category)
draw_schema(axes[-1], COCO, "person")
fig.tight_layout()
glue("schema_figure", fig, display=False)
plt.close(fig)

# %% [markdown]
# ```{glue:figure} schema_figure
# :name: fig-schemas
#
# The five FashionAI categories and the COCO person, drawn from the schema objects the whole study uses.
# ```

# %%
per_category = {c: len(idx) for c, idx in FASHIONAI.categories.items()}
pairs_per_category = {c: int(FASHIONAI.category_pairs(c).sum()) for c in FASHIONAI.categories}
glue("fashionai_points", FASHIONAI.num_keypoints, display=False)
glue("fashionai_pairs", FASHIONAI.num_pairs, display=False)
glue("fashionai_center", len(FASHIONAI.center), display=False)
glue("coco_points", COCO.num_keypoints, display=False)
glue("coco_pairs", COCO.num_pairs, display=False)
glue("coco_center", len(COCO.center), display=False)
glue("max_pairs_per_category", max(pairs_per_category.values()), display=False)
for category, count in pairs_per_category.items():
    glue(f"pairs_{category}", count, display=False)
print("points per category:", per_category)
print("pairs per category: ", pairs_per_category)

# %% [markdown]
# FashionAI has {glue:text}`fashionai_points` points: {glue:text}`fashionai_pairs` left/right pairs and
# {glue:text}`fashionai_center` non-symmetric points (`center_front`, `crotch`). The paper counts "10 paired
# mid-points and 4 non-symmetric points", which does not add up to the data set's own column names; we follow the
# data set. COCO has {glue:text}`coco_points` points: {glue:text}`coco_pairs` pairs and {glue:text}`coco_center`
# non-symmetric point, as the paper says.
#
# No single garment has more than {glue:text}`max_pairs_per_category` pairs (blouse
# {glue:text}`pairs_blouse`, outwear {glue:text}`pairs_outwear`, dress {glue:text}`pairs_dress`, skirt
# {glue:text}`pairs_skirt`, trousers {glue:text}`pairs_trousers`), so the paper's RANSAC setting for FashionAI
# (`m = 8` inlier midpoints) can only be met when the detector outputs all 24 points for every garment. The page
# "Where the paper is ambiguous" explains the two readings the study offers.

# %% [markdown]
# ## The left/right pairs

# %%
import pandas as pd  # noqa: E402

rows = []
for schema in (FASHIONAI, COCO):
    for name, (left, right) in zip(schema.pair_names, schema.pairs.tolist(), strict=True):
        cats = [c for c in schema.categories if schema.category_pairs(c)[schema.pair_names.index(name)]]
        rows.append({"schema": schema.name, "pair": name, "left": schema.names[left], "right": schema.names[right],
                     "categories": ", ".join(cats), "OKS sigma": float(schema.sigmas[left])})
pd.DataFrame(rows)

# %% [markdown]
# OKS sigmas: COCO's are the published constants; FashionAI has none, and the study's choice is stated in
# `fashion_lib.keypoints` (each point borrows the COCO sigma of the body part it lies on).

# %%
_ = prov.finish()
