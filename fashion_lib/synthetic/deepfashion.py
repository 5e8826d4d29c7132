"""DeepFashion Category-and-Attribute items drawn by the garment renderer: 50 categories, 5 attribute types.

Paper, section IV.A: DeepFashion's Category and Attribute Prediction benchmark has 50 categories and 1000
attributes of 5 types (texture, fabric, shape, part, style). Format: ``data-formats.md`` section C. This world keeps
the 50 categories (names, clothes types and file order of ``list_category_cloth.txt``) and reduces the attributes
to :data:`DEEPFASHION_ATTRIBUTES` (8 to 11 per type), keeping the format.

Categories. Each category is drawn as a FashionAI garment kind (upper-body -> blouse or outwear, lower-body ->
skirt or trousers, full-body -> dress) with a prototype: ranges of the latents (sleeve, neck region, length,
fit, texture, fabric) typical of it, so that the category can be told from the drawing where the real ones differ
visibly (Jeans: full-length denim trousers; Tank: a sleeveless top; Peacoat: a wool coat with lapels). Categories
that differ in ways a flat drawing cannot show overlap, as they do in the real data (Top and Blouse). Cape,
Nightdress, Shirtdress and Sundress are listed but never drawn: the real data merged them into Dress (mmfashion,
data-formats.md C.2).

Attributes. Every attribute is a predicate of continuous latents that also decide the drawing:

- texture: the ``texture`` latent in [0, 8) picks a pattern (solid, stripes, checks, dots) and its period;
- fabric: the ``fabric`` latent in [0, 8) picks the fabric's colour (denim blue, leather black, ...);
- shape: the length latent (a blouse's body length, the coat, skirt or pant length) and ``fit`` in [0, 1);
- part: the FashionAI sleeve and neck-region latents of the garment (``sleeveless``, ``v-neck``, ``lapel``, ...);
- style: combinations of the above, as real style words are (``sporty``: striped knit or cotton).

``label_noise`` moves a positive attribute to another attribute of the same type, without changing the drawing.

Landmarks. DeepFashion's 8 slots (:data:`DEEPFASHION_LANDMARKS`) come from the drawn garment's FashionAI points:
collar = neckline, sleeve = the middle of the cuff (of the armhole, between shoulder and armpit, when sleeveless),
waistline = waistline (waistband for lower-body items), hem = top hem, hemline, or the middle of a trouser leg's
bottom. Left is the smaller ``x``, as in FashionAI. A composite point is occluded when any of its parts is. With
probability ``truncation_rate`` the image is cut off below, and the landmarks below the cut are truncated
(DeepFashion code 2; the library reads them as absent).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from fashion_lib.attributes import FASHIONAI_TASKS
from fashion_lib.data.deepfashion import CLOTHES_TYPE_SLOTS, LANDMARK_NAMES
from fashion_lib.keypoints import ABSENT, FASHIONAI, OCCLUDED, VISIBLE
from fashion_lib.synthetic.garments import render_garment
from fashion_lib.synthetic.world import _TASK_MODELS, CATEGORY_TASKS, WorldConfig

__all__ = [
    "DEEPFASHION_LANDMARKS",
    "DEEPFASHION_CATEGORIES",
    "DEEPFASHION_ATTRIBUTES",
    "DRAWN_CATEGORIES",
    "TEXTURES",
    "FABRICS",
    "render_deepfashion",
]

DEEPFASHION_LANDMARKS: tuple[str, ...] = LANDMARK_NAMES
"""DeepFashion's 8 landmark slots in full-body order; type 1 / 2 rows use a subset (the loader's slots)."""

# Short names of the FashionAI attribute tasks, for the category table below.
_TASK = {"sleeve": "sleeve_length_labels", "neckline": "neckline_design_labels", "collar": "collar_design_labels",
         "lapel": "lapel_design_labels", "neck": "neck_design_labels", "coat": "coat_length_labels",
         "skirt": "skirt_length_labels", "pant": "pant_length_labels"}
_LENGTH_TASK = {"outwear": "coat_length_labels", "dress": "skirt_length_labels", "skirt": "skirt_length_labels",
                "trousers": "pant_length_labels"}

TEXTURES: tuple[tuple[str, int, float | None], ...] = (
    ("solid", 0, None), ("pinstriped", 1, 0.035), ("striped", 1, 0.06), ("bold stripe", 1, 0.1),
    ("gingham", 2, 0.04), ("plaid", 2, 0.09), ("dotted", 3, 0.045), ("polka dot", 3, 0.1),
)
"""Texture classes in latent order: (attribute name, renderer fabric 0 solid / 1 stripes / 2 checks / 3 dots,
pattern period as a fraction of the image side)."""

FABRICS: tuple[tuple[str, tuple[int, int, int]], ...] = (
    ("denim", (62, 92, 150)), ("leather", (38, 32, 30)), ("cotton", (236, 234, 226)), ("linen", (206, 190, 158)),
    ("knit", (178, 112, 64)), ("wool", (122, 124, 132)), ("velvet", (120, 24, 56)), ("chiffon", (226, 196, 236)),
)
"""Fabric classes in latent order: (attribute name, RGB of the fabric)."""

_TEXTURE_NAMES = tuple(t[0] for t in TEXTURES)
_FABRIC_NAMES = tuple(f[0] for f in FABRICS)


@dataclass(frozen=True)
class _Category:
    name: str
    clothes_type: int  # 1 upper-body, 2 lower-body, 3 full-body
    kind: str | None  # the FashionAI garment drawn; None: merged into Dress in the real data, never drawn
    ranges: dict  # latent -> (first class, last class) for tasks; names for texture / fabric; (lo, hi) for fit, length


def _c(name: str, clothes_type: int, kind: str | None, **ranges) -> _Category:
    return _Category(name, clothes_type, kind, ranges)


_CATEGORY_TABLE: tuple[_Category, ...] = (
    # upper-body (type 1), ids 1-20
    _c("Anorak", 1, "outwear", sleeve=("Wrist Length", "Extra Long Sleeves"),
       coat=("High Waist Length", "Regular Length"), neck=("Low Turtle Neck", "Turtle Neck"),
       lapel=("Collarless", "Collarless"), fabric=("cotton", "wool")),
    _c("Blazer", 1, "outwear", sleeve=("Wrist Length", "Long Sleeves"), coat=("Regular Length", "Regular Length"),
       lapel=("Notched", "Notched"), texture=("solid", "pinstriped", "plaid"), fabric=("wool", "linen", "cotton")),
    _c("Blouse", 1, "blouse", sleeve=("Elbow Sleeves", "Long Sleeves"), neckline=("Round Neckline", "V Neckline"),
       fabric=("chiffon", "cotton", "linen"), fit=(0.0, 0.7)),
    _c("Bomber", 1, "outwear", sleeve=("Wrist Length", "Long Sleeves"), coat=("Micro Length", "High Waist Length"),
       neck=("Low Turtle Neck", "Low Turtle Neck"), lapel=("Collarless", "Collarless"),
       fabric=("leather", "cotton", "velvet"), texture=("solid",)),
    _c("Button-Down", 1, "blouse", collar=("Shirt Collar", "Shirt Collar"), sleeve=("Wrist Length", "Long Sleeves"),
       texture=("solid", "pinstriped", "striped", "gingham"), fabric=("cotton", "linen", "denim")),
    _c("Cardigan", 1, "outwear", lapel=("Collarless", "Shawl Collar"), coat=("Regular Length", "Long Length"),
       fabric=("knit", "wool")),
    _c("Flannel", 1, "blouse", collar=("Shirt Collar", "Shirt Collar"), sleeve=("Wrist Length", "Long Sleeves"),
       texture=("gingham", "plaid"), fabric=("cotton", "wool")),
    _c("Halter", 1, "blouse", sleeve=("Sleeveless", "Sleeveless"), neckline=("V Neckline", "Deep V Neckline")),
    _c("Henley", 1, "blouse", collar=("Rib Collar", "Rib Collar"), neckline=("Round Neckline", "Round Neckline"),
       sleeve=("Short Sleeves", "Long Sleeves"), fabric=("cotton", "knit")),
    _c("Hoodie", 1, "outwear", neck=("Turtle Neck", "Turtle Neck"), coat=("Regular Length", "Regular Length"),
       lapel=("Collarless", "Collarless"), sleeve=("Long Sleeves", "Extra Long Sleeves"), fabric=("knit", "cotton")),
    _c("Jacket", 1, "outwear", coat=("High Waist Length", "Regular Length"), lapel=("Collarless", "Notched"),
       fabric=("denim", "leather", "cotton")),
    _c("Jersey", 1, "blouse", sleeve=("Cup Sleeves", "Short Sleeves"), neckline=("Round Neckline", "V Neckline"),
       texture=("striped", "bold stripe"), fabric=("knit", "cotton")),
    _c("Parka", 1, "outwear", coat=("Long Length", "Knee Length"), neck=("Turtle Neck", "Turtle Neck"),
       sleeve=("Long Sleeves", "Extra Long Sleeves"), fabric=("cotton", "wool")),
    _c("Peacoat", 1, "outwear", coat=("Regular Length", "Long Length"), lapel=("Notched", "Shawl Collar"),
       sleeve=("Wrist Length", "Long Sleeves"), fabric=("wool",)),
    _c("Poncho", 1, "outwear", sleeve=("Elbow Sleeves", "3/4 Sleeves"), coat=("Regular Length", "Long Length"),
       lapel=("Shawl Collar", "Plus Size Shawl"), fit=(0.7, 1.0), fabric=("knit", "wool")),
    _c("Sweater", 1, "blouse", collar=("Rib Collar", "Rib Collar"), sleeve=("Wrist Length", "Extra Long Sleeves"),
       fabric=("knit", "wool")),
    _c("Tank", 1, "blouse", sleeve=("Sleeveless", "Sleeveless"), neckline=("Straight Neck", "Round Neckline"),
       fabric=("cotton", "knit")),
    _c("Tee", 1, "blouse", sleeve=("Cup Sleeves", "Short Sleeves"), neckline=("Round Neckline", "Round Neckline"),
       fabric=("cotton",)),
    _c("Top", 1, "blouse"),
    _c("Turtleneck", 1, "outwear", neck=("Low Turtle Neck", "Turtle Neck"), coat=("Micro Length", "Micro Length"),
       lapel=("Collarless", "Collarless"), fabric=("knit", "wool")),
    # lower-body (type 2), ids 21-36
    _c("Capris", 2, "trousers", pant=("3/4 Length", "Cropped Pant"), fit=(0.0, 0.5)),
    _c("Chinos", 2, "trousers", pant=("Full Length", "Full Length"), fabric=("cotton", "linen"), fit=(0.3, 0.6),
       texture=("solid",)),
    _c("Culottes", 2, "trousers", pant=("Mid Length", "3/4 Length"), fit=(0.75, 1.0)),
    _c("Cutoffs", 2, "trousers", pant=("Short Pant", "Short Pant"), fabric=("denim",)),
    _c("Gauchos", 2, "trousers", pant=("3/4 Length", "Cropped Pant"), fit=(0.8, 1.0)),
    _c("Jeans", 2, "trousers", pant=("Cropped Pant", "Full Length"), fabric=("denim",), fit=(0.2, 0.7)),
    _c("Jeggings", 2, "trousers", pant=("Full Length", "Full Length"), fabric=("denim",), fit=(0.0, 0.2)),
    _c("Jodhpurs", 2, "trousers", pant=("Full Length", "Full Length"), fabric=("cotton", "leather"), fit=(0.0, 0.3)),
    _c("Joggers", 2, "trousers", pant=("Cropped Pant", "Full Length"), fabric=("knit", "cotton"), fit=(0.3, 0.6)),
    _c("Leggings", 2, "trousers", pant=("3/4 Length", "Full Length"), fabric=("knit",), fit=(0.0, 0.15)),
    _c("Sarong", 2, "skirt", skirt=("Midi Length", "Floor Length"), fabric=("chiffon", "linen", "cotton")),
    _c("Shorts", 2, "trousers", pant=("Short Pant", "Mid Length"), fabric=("cotton", "linen", "denim")),
    _c("Skirt", 2, "skirt"),
    _c("Sweatpants", 2, "trousers", pant=("Full Length", "Full Length"), fabric=("knit", "wool"), fit=(0.4, 0.8)),
    _c("Sweatshorts", 2, "trousers", pant=("Short Pant", "Short Pant"), fabric=("knit",)),
    _c("Trunks", 2, "trousers", pant=("Short Pant", "Short Pant"), fabric=("knit", "cotton"),
       texture=("solid", "striped")),
    # full-body (type 3), ids 37-50
    _c("Caftan", 3, "dress", sleeve=("Elbow Sleeves", "Long Sleeves"), skirt=("Ankle Length", "Floor Length"),
       fit=(0.7, 1.0), fabric=("chiffon", "linen")),
    _c("Cape", 3, None),
    _c("Coat", 3, "dress", sleeve=("Wrist Length", "Long Sleeves"), skirt=("Knee Length", "Midi Length"),
       neckline=("V Neckline", "V Neckline"), fabric=("wool", "leather"), texture=("solid", "plaid")),
    _c("Coverup", 3, "dress", sleeve=("Sleeveless", "Short Sleeves"), skirt=("Short Length", "Knee Length"),
       fabric=("chiffon",)),
    _c("Dress", 3, "dress"),
    _c("Jumpsuit", 3, "dress", skirt=("Ankle Length", "Floor Length"), fit=(0.0, 0.2)),
    _c("Kaftan", 3, "dress", sleeve=("Elbow Sleeves", "3/4 Sleeves"), skirt=("Midi Length", "Floor Length"),
       fit=(0.6, 1.0), fabric=("linen", "chiffon")),
    _c("Kimono", 3, "dress", sleeve=("Elbow Sleeves", "3/4 Sleeves"), neckline=("V Neckline", "Deep V Neckline"),
       skirt=("Knee Length", "Midi Length"), fabric=("velvet", "chiffon")),
    _c("Nightdress", 3, None),
    _c("Onesie", 3, "dress", sleeve=("Wrist Length", "Long Sleeves"), skirt=("Ankle Length", "Floor Length"),
       fabric=("knit",), fit=(0.0, 0.2)),
    _c("Robe", 3, "dress", sleeve=("Wrist Length", "Long Sleeves"), neckline=("V Neckline", "Deep V Neckline"),
       skirt=("Knee Length", "Midi Length"), fabric=("cotton", "velvet")),
    _c("Romper", 3, "dress", skirt=("Short Length", "Short Length"), fit=(0.0, 0.3),
       sleeve=("Sleeveless", "Short Sleeves")),
    _c("Shirtdress", 3, None),
    _c("Sundress", 3, None),
)

DEEPFASHION_CATEGORIES: tuple[tuple[str, int], ...] = tuple((c.name, c.clothes_type) for c in _CATEGORY_TABLE)
"""The 50 real categories in the order of ``list_category_cloth.txt``: (name, clothes type 1 / 2 / 3); the id of a
category is its index here plus 1 (data-formats.md C.2)."""

DRAWN_CATEGORIES: tuple[int, ...] = tuple(i + 1 for i, c in enumerate(_CATEGORY_TABLE) if c.kind is not None)
"""The 46 category ids the world draws (the 4 merged into Dress are never drawn)."""


@dataclass(frozen=True)
class _Look:
    """What the attribute predicates see: the drawn kind and the classes and values of its latents."""

    kind: str
    classes: dict  # AttrKey -> class name, for the tasks of ``kind``
    texture: str
    fabric: str
    fit: float  # [0, 1): narrow -> wide
    length: float  # [0, 1): short -> long (a blouse's body, or the kind's length task)

    def cls(self, task: str) -> str | None:
        return self.classes.get(_TASK[task])


_UPPER, _SKIRTS = ("blouse", "outwear"), ("dress", "skirt")
_SUMMER_SLEEVES = ("Sleeveless", "Cup Sleeves", "Short Sleeves")


def _summer(s: _Look) -> bool:
    return s.cls("sleeve") in _SUMMER_SLEEVES or (s.kind in ("skirt", "trousers") and s.length < 0.4)


_PREDICATES: tuple[tuple[str, int, Callable[[_Look], bool]], ...] = (
    *((name, 1, lambda s, name=name: s.texture == name) for name in _TEXTURE_NAMES),
    *((name, 2, lambda s, name=name: s.fabric == name) for name in _FABRIC_NAMES),
    ("cropped", 3, lambda s: s.kind in _UPPER and s.length < 0.25),
    ("longline", 3, lambda s: s.kind in _UPPER and s.length >= 0.7),
    ("mini", 3, lambda s: s.kind in _SKIRTS and s.length < 0.3),
    ("midi", 3, lambda s: s.kind in _SKIRTS and 0.3 <= s.length < 0.7),
    ("maxi", 3, lambda s: s.kind in _SKIRTS and s.length >= 0.7),
    ("fitted", 3, lambda s: s.kind in (*_UPPER, "dress") and s.fit < 0.3),
    ("boxy", 3, lambda s: s.kind in _UPPER and s.fit >= 0.7),
    ("a-line", 3, lambda s: s.kind in _SKIRTS and 0.3 <= s.fit < 0.7),
    ("flared", 3, lambda s: s.kind in _SKIRTS and s.fit >= 0.7),
    ("skinny", 3, lambda s: s.kind == "trousers" and s.fit < 0.3),
    ("wide-leg", 3, lambda s: s.kind == "trousers" and s.fit >= 0.7),
    ("sleeveless", 4, lambda s: s.cls("sleeve") == "Sleeveless"),
    ("short sleeve", 4, lambda s: s.cls("sleeve") in ("Cup Sleeves", "Short Sleeves")),
    ("long sleeve", 4, lambda s: s.cls("sleeve") in ("Wrist Length", "Long Sleeves", "Extra Long Sleeves")),
    ("v-neck", 4, lambda s: s.cls("neckline") in ("V Neckline", "Deep V Neckline")),
    ("crew neck", 4, lambda s: s.cls("neckline") == "Round Neckline"),
    ("square neck", 4, lambda s: s.cls("neckline") in ("Square Neckline", "Straight Neck")),
    ("off shoulder", 4, lambda s: s.cls("neckline") in ("Strapless Neck", "Off Shoulder", "OneShoulder Neckline")),
    ("collared", 4, lambda s: s.cls("collar") in ("Shirt Collar", "Peter Pan", "Puritan Collar")),
    ("lapel", 4, lambda s: s.cls("lapel") in ("Notched", "Shawl Collar", "Plus Size Shawl")),
    ("turtleneck", 4, lambda s: s.cls("neck") in ("Turtle Neck", "Low Turtle Neck")),
    ("ruffle", 4, lambda s: s.cls("neck") == "Ruffle Semi-High Collar"),
    ("casual", 5, lambda s: s.fabric in ("denim", "cotton", "knit")),
    ("office", 5, lambda s: s.texture in ("solid", "pinstriped") and s.fabric in ("wool", "cotton", "linen")),
    ("party", 5, lambda s: s.fabric in ("velvet", "chiffon")),
    ("sporty", 5, lambda s: s.texture in ("striped", "bold stripe") and s.fabric in ("knit", "cotton")),
    ("vintage", 5, lambda s: s.texture in ("gingham", "dotted", "polka dot")),
    ("summer", 5, _summer),
    ("winter", 5, lambda s: s.fabric in ("wool", "knit", "leather") and not _summer(s)),
    ("boho", 5, lambda s: s.fabric in ("linen", "chiffon") and s.fit >= 0.5),
)
_PREDICATES = tuple(sorted(_PREDICATES, key=lambda p: p[0]))  # the real list_attr_cloth.txt is alphabetical

DEEPFASHION_ATTRIBUTES: tuple[tuple[str, int], ...] = tuple((name, t) for name, t, _ in _PREDICATES)
"""The attributes in the order of ``list_attr_cloth.txt``: (name, type 1 texture .. 5 style), alphabetical as in
the real file; names may contain single spaces."""

_TYPE_OF = np.array([t for _, t, _ in _PREDICATES])
_NUM_UNIFORMS = 24 + 2 * len(_PREDICATES)


def _task_range(task: str, first: str, last: str) -> tuple[float, float]:
    """Latent interval ``[lo, hi)`` of ``task`` covering the classes from ``first`` to ``last`` in latent order."""
    order = _TASK_MODELS[task].order
    a, b = (order.index(FASHIONAI_TASKS[task].index(name)) for name in (first, last))
    return float(min(a, b)), float(max(a, b) + 1)


def _pick_class(names: tuple[str, ...], allowed: tuple[str, ...] | None, u_pick: float, u_in: float) -> float:
    """A latent in [0, len(names)): a class chosen uniformly among ``allowed`` (all when None), then a position."""
    choices = [names.index(a) for a in allowed] if allowed else list(range(len(names)))
    return choices[min(int(u_pick * len(choices)), len(choices) - 1)] + u_in


def _class_of(task: str, u: float) -> str:
    order = _TASK_MODELS[task].order
    return FASHIONAI_TASKS[task][order[min(int(u), len(order) - 1)]]


def _mid(kp: np.ndarray, a: str, b: str) -> np.ndarray:
    """Middle of two FashionAI points as an (x, y, v) row; occluded when either is (v: COCO's codes)."""
    p, q = kp[FASHIONAI.index(a)], kp[FASHIONAI.index(b)]
    return np.array([(p[0] + q[0]) / 2, (p[1] + q[1]) / 2, min(p[2], q[2])])


def _landmarks(kind: str, kp: np.ndarray) -> np.ndarray:
    """(8, 3) DeepFashion slots from the (24, 3) FashionAI points of the drawn garment (v in COCO's codes)."""
    out = np.zeros((len(LANDMARK_NAMES), 3))
    rows: dict[int, np.ndarray] = {}
    if kind in ("blouse", "outwear", "dress"):
        for s, side in enumerate(("left", "right")):
            rows[s] = kp[FASHIONAI.index(f"neckline_{side}")]
            cuff = kp[FASHIONAI.index(f"cuff_{side}_in")][2] > ABSENT
            rows[2 + s] = (_mid(kp, f"cuff_{side}_in", f"cuff_{side}_out") if cuff
                           else _mid(kp, f"shoulder_{side}", f"armpit_{side}"))
            if kind != "blouse":
                rows[4 + s] = kp[FASHIONAI.index(f"waistline_{side}")]
            rows[6 + s] = kp[FASHIONAI.index(("top_hem_" if kind != "dress" else "hemline_") + side)]
    else:
        for s, side in enumerate(("left", "right")):
            rows[4 + s] = kp[FASHIONAI.index(f"waistband_{side}")]
            rows[6 + s] = (kp[FASHIONAI.index(f"hemline_{side}")] if kind == "skirt"
                           else _mid(kp, f"bottom_{side}_in", f"bottom_{side}_out"))
    for slot, row in rows.items():
        out[slot] = row
    return out


def render_deepfashion(
    config: WorldConfig, generator: torch.Generator, category: int | None = None
) -> tuple[np.ndarray, dict]:
    """Draw one DeepFashion item: a garment of ``category`` with its attributes, landmarks and box.

    Parameters
    ----------
    config : WorldConfig
        World knobs (``truncation_rate`` and ``label_noise`` matter here besides the garment's).
    generator : torch.Generator
        The only source of randomness.
    category : int, optional
        1-based category id among :data:`DRAWN_CATEGORIES`; drawn uniformly among them when ``None``.

    Returns
    -------
    image : (H, W, 3) uint8 array, ``W = config.image_size`` and ``H <= W`` (smaller when cut off below).
    target : dict
        ``category_id`` int (1-based); ``category`` str; ``clothes_type`` int; ``kind`` str (FashionAI garment
        drawn); ``attributes`` (A,) int64 in {0, 1} in :data:`DEEPFASHION_ATTRIBUTES` order; ``latents`` dict
        (the FashionAI task latents of ``kind`` plus ``texture``, ``fabric`` in [0, 8), ``fit``, ``length`` in
        [0, 1)); ``keypoints`` (8, 3) float32 (x, y pixels, v in {0, 1, 2}, truncated and missing slots absent);
        ``landmarks`` (8, 2) float32 true x, y of every slot of the clothes type (also when truncated);
        ``landmark_codes`` (8,) int64 DeepFashion codes (0 visible, 1 occluded, 2 truncated, -1 slot not in the
        clothes type); ``occluded`` (8,) bool; ``box`` (4,) float32 x1, y1, x2, y2 of the garment in the image;
        ``axis_normal`` (2,) float32 and ``axis_offset`` float (the true symmetry axis).
    """
    if category is not None and category not in DRAWN_CATEGORIES:
        raise ValueError(f"category must be a drawn 1-based id in {DRAWN_CATEGORIES}, got {category!r}")
    u = torch.rand(_NUM_UNIFORMS, generator=generator, dtype=torch.float64).tolist()
    if category is None:
        category = DRAWN_CATEGORIES[min(int(u[0] * len(DRAWN_CATEGORIES)), len(DRAWN_CATEGORIES) - 1)]
    cat = _CATEGORY_TABLE[category - 1]
    kind, ranges = cat.kind, cat.ranges
    latents: dict[str, float] = {}
    for k, task in enumerate(CATEGORY_TASKS[kind]):
        short = next(s for s, t in _TASK.items() if t == task)
        lo, hi = _task_range(task, *ranges[short]) if short in ranges else (0.0, float(len(_TASK_MODELS[task].order)))
        latents[task] = min(lo + (hi - lo) * u[1 + k], hi - 1e-9)
    texture = _pick_class(_TEXTURE_NAMES, ranges.get("texture"), u[6], u[7])
    fabric = _pick_class(_FABRIC_NAMES, ranges.get("fabric"), u[8], u[9])
    fit_lo, fit_hi = ranges.get("fit", (0.0, 1.0))
    fit = fit_lo + (fit_hi - fit_lo) * u[10]
    if kind == "blouse":
        length = u[11]
    else:
        task = _LENGTH_TASK[kind]
        length = latents[task] / len(_TASK_MODELS[task].order)
    _, kind_code, base_period = TEXTURES[int(texture)]
    period = None if base_period is None else base_period * (0.85 + 0.3 * (texture % 1.0))
    color = tuple(int(np.clip(c + 30.0 * (u[12 + j] - 0.5), 0, 255)) for j, c in enumerate(FABRICS[int(fabric)][1]))
    image, t = render_garment(
        config, generator, category=kind, latents=latents, fabric=kind_code, fit=fit,
        body_length=0.65 + 0.8 * length if kind == "blouse" else None, pattern_period=period, color=color,
    )

    # landmarks from the drawn FashionAI points, then an optional cut below
    lm = _landmarks(kind, t["keypoints"])  # (8, 3), v in COCO's codes
    slots = np.zeros(len(LANDMARK_NAMES), dtype=bool)
    slots[list(CLOTHES_TYPE_SLOTS[cat.clothes_type])] = True
    size = config.image_size
    height = size
    if u[15] < config.truncation_rate:
        lo, hi = max(0.55 * size, float(lm[slots, 1].min()) + 1.0), float(lm[slots, 1].max())
        if hi > lo:
            height = int(math.floor(lo + (hi - lo) * u[16]))
            image = image[:height]
    truncated = slots & (lm[:, 1] >= height - 0.5)  # also what would round onto the image's edge
    occluded = slots & (lm[:, 2] == OCCLUDED) & ~truncated
    codes = np.where(slots, np.where(truncated, 2, np.where(occluded, 1, 0)), -1).astype(np.int64)
    shown = slots & ~truncated
    vis = np.where(shown, np.where(occluded, OCCLUDED, VISIBLE), ABSENT)
    keypoints = np.concatenate([np.where(shown[:, None], lm[:, :2], 0.0), vis[:, None]], 1).astype(np.float32)
    box = t["box"].copy()
    box[[1, 3]] = np.clip(box[[1, 3]], 0, height)

    # attributes from the latents; label noise moves a positive to another attribute of the same type
    look = _Look(kind, {task: _class_of(task, v) for task, v in latents.items()}, _TEXTURE_NAMES[int(texture)],
                 _FABRIC_NAMES[int(fabric)], fit, length)
    attrs = np.array([int(pred(look)) for _, _, pred in _PREDICATES], dtype=np.int64)
    noisy = attrs.copy()
    for j in np.flatnonzero(attrs):
        flip, pick = u[24 + 2 * j], u[25 + 2 * j]
        if flip < config.label_noise:
            others = np.flatnonzero((_TYPE_OF == _TYPE_OF[j]) & (attrs == 0) & (noisy == 0))
            if len(others):
                noisy[j] = 0
                noisy[others[min(int(pick * len(others)), len(others) - 1)]] = 1
    target = {
        "category_id": category,
        "category": cat.name,
        "clothes_type": cat.clothes_type,
        "kind": kind,
        "attributes": torch.from_numpy(noisy),
        "latents": {**latents, "texture": texture, "fabric": fabric, "fit": fit, "length": length},
        "keypoints": keypoints,
        "landmarks": np.where(slots[:, None], lm[:, :2], 0.0).astype(np.float32),
        "landmark_codes": codes,
        "occluded": occluded,
        "box": box.astype(np.float32),
        "axis_normal": t["axis_normal"],
        "axis_offset": t["axis_offset"],
    }
    return np.ascontiguousarray(image), target

