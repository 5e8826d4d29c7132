"""A procedural apparel and people world, written in the real on-disk formats.

No real data set can be downloaded for this study, so it runs on synthetic data shaped like the real thing
(paper, section IV.A uses FashionAI, DeepFashion and COCO-2017). Every garment is a parametric shape drawn from
FashionAI's 24-point schema (:data:`fashion_lib.keypoints.FASHIONAI`); every attribute is a continuous latent that
decides both the drawing and the label, and a latent close to a class boundary gives the neighbouring class an
``m`` ("maybe") label, so the paper's "maybe" loss has something real to learn from.

Ground truth the real data lacks is returned too: the true symmetry axis of each instance (the line
``{p : normal . p = offset}``, the refiner's representation) and which points an occluder hid.

Conventions
-----------
- Pixel coordinates are continuous: the centre of pixel ``(i, j)`` is ``(j + 0.5, i + 0.5)``; ``x`` right, ``y`` down.
- Visibility is COCO's across the library: ``0`` absent (coordinates 0), ``1`` occluded, ``2`` visible.
- FashionAI's ``*_left`` points lie at the smaller ``x`` (as in the real rows); COCO's ``left_*`` points are the
  person's left, at the larger ``x`` for a person facing the camera (as in the real annotations).
- Randomness comes only from the ``torch.Generator`` passed in; item ``i`` of a data set is generated from a
  generator seeded by ``(seed, split, i)``, so items are deterministic and independent of worker order.

Attribute tasks per category (FashionAI labels one task per image; here each garment carries every task that
applies to its category, and the attribute writer writes one row per image for one of them):

=========  ==================================================================================
blouse     sleeve_length_labels, neckline_design_labels, collar_design_labels
outwear    sleeve_length_labels, coat_length_labels, lapel_design_labels, neck_design_labels
dress      sleeve_length_labels, neckline_design_labels, skirt_length_labels
skirt      skirt_length_labels
trousers   pant_length_labels
=========  ==================================================================================

The ``Invisible`` class (index 0 of every task) is never generated: every drawn attribute is visible.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from fashion_lib.attributes import FASHIONAI_TASKS, M, N, Y
from fashion_lib.io import atomic_dir
from fashion_lib.keypoints import ABSENT, COCO, FASHIONAI, OCCLUDED, VISIBLE

__all__ = [
    "WorldConfig",
    "CATEGORIES",
    "CATEGORY_TASKS",
    "TASK_CATEGORIES",
    "render_garment",
    "render_people",
    "SyntheticGarments",
    "SyntheticPeople",
    "item_generator",
    "write_fashionai_keypoints",
    "write_fashionai_attributes",
    "write_deepfashion",
    "write_coco_people",
    "FASHIONAI_HEADER",
    "DEEPFASHION_LANDMARKS",
]

logger = logging.getLogger(__name__)

CATEGORIES: tuple[str, ...] = tuple(FASHIONAI.categories)
"""FashionAI categories in schema order; ``labels`` of a target is the index here plus 1 (0 is background)."""

CATEGORY_TASKS: dict[str, tuple[str, ...]] = {
    "blouse": ("sleeve_length_labels", "neckline_design_labels", "collar_design_labels"),
    "outwear": ("sleeve_length_labels", "coat_length_labels", "lapel_design_labels", "neck_design_labels"),
    "dress": ("sleeve_length_labels", "neckline_design_labels", "skirt_length_labels"),
    "skirt": ("skirt_length_labels",),
    "trousers": ("pant_length_labels",),
}
"""Category -> the attribute tasks that apply to it (module docstring)."""

TASK_CATEGORIES: dict[str, tuple[str, ...]] = {
    task: tuple(c for c in CATEGORIES if task in CATEGORY_TASKS[c]) for task in FASHIONAI_TASKS
}
"""AttrKey -> the categories whose garments carry it."""

FASHIONAI_HEADER = "image_id,image_category," + ",".join(FASHIONAI.names)
"""The exact 26-column header of FashionAI's ``train.csv`` (data-formats.md, A.2)."""

DEEPFASHION_LANDMARKS = ("left collar", "right collar", "left sleeve", "right sleeve", "left waistline",
                         "right waistline", "left hem", "right hem")  # fmt: skip
"""DeepFashion's landmark slots in full-body order; loaders place type 1 / 2 rows in these slots."""


@dataclass(frozen=True)
class WorldConfig:
    """Knobs of the synthetic world. Defaults give clean, varied, learnable 128-px images."""

    image_size: int = 128
    # side of the square images, pixels (FashionAI's real images are 512; the study trains at 128)
    scale: tuple[float, float] = (0.55, 0.9)
    # garment size: its longer side as a fraction of image_size, drawn uniformly from this range
    rotation_deg: float = 10.0
    # in-plane rotation of the garment (and its symmetry axis), uniform in [-rotation_deg, rotation_deg] degrees
    perspective: float = 0.08
    # strength of the projective tilt of the symmetry axis plane (0: affine); homography row (p, q, 1), |p|,|q| <= it
    asymmetry: float = 0.3
    # pose asymmetry in [0, 1]: raised arms, folded sleeves and bent legs break the left/right symmetry
    occlusion_rate: float = 0.1
    # chance that each existing point becomes the centre of an occluder (which may hide neighbours too)
    occluder_size: float = 0.18
    # occluder radius as a fraction of the garment's longer side
    clutter: float = 2.0
    # mean number of background shapes (Poisson)
    noise: float = 12.0
    # standard deviation of the background's pixel noise, in 0..255 grey levels
    label_noise: float = 0.0
    # chance that an attribute's ``y`` class is replaced by another (wrong) class; the drawing is unchanged
    maybe_width: float = 0.12
    # a latent within this distance (in class units) of a class boundary gives the neighbouring class an ``m``
    people: tuple[int, int] = (1, 4)
    # number of persons per COCO image, uniform in this inclusive range
    person_scale: tuple[float, float] = (0.2, 0.85)
    # person height as a fraction of image_size; the low end gives COCO's small persons
    crowd_rate: float = 0.25
    # chance that a COCO image holds a crowd region (small unlabelled figures, one ``iscrowd=1`` annotation)
    dressed_rate: float = 0.7
    # chance that a person wears a garment drawn over the body
    jpeg_quality: int = 90
    # JPEG quality of the writers (fixed so that the same seed gives the same bytes)

    def __post_init__(self) -> None:
        if not 16 <= self.image_size <= 4096:
            raise ValueError(f"image_size must be in [16, 4096], got {self.image_size}")
        _check_range("scale", self.scale, 0.05, 1.0)
        _check_range("person_scale", self.person_scale, 0.05, 1.0)
        for name, hi in (("rotation_deg", 90.0), ("perspective", 0.5), ("noise", 128.0), ("clutter", 100.0)):
            value = getattr(self, name)
            if not 0.0 <= value <= hi:
                raise ValueError(f"{name} must be in [0, {hi}], got {value}")
        for name in ("asymmetry", "occlusion_rate", "label_noise", "crowd_rate", "dressed_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        if not 0.0 < self.occluder_size <= 1.0:
            raise ValueError(f"occluder_size must be in (0, 1], got {self.occluder_size}")
        if not 0.0 <= self.maybe_width < 0.5:
            raise ValueError(f"maybe_width must be in [0, 0.5), got {self.maybe_width}")
        lo, hi = self.people
        if not 0 <= lo <= hi <= 20:
            raise ValueError(f"people must satisfy 0 <= low <= high <= 20, got {self.people}")
        if not 1 <= self.jpeg_quality <= 95:
            raise ValueError(f"jpeg_quality must be in [1, 95], got {self.jpeg_quality}")


def _check_range(name: str, value: tuple[float, float], lo: float, hi: float) -> None:
    if len(value) != 2 or not lo <= value[0] <= value[1] <= hi:
        raise ValueError(f"{name} must be (low, high) with {lo} <= low <= high <= {hi}, got {value}")


# ----------------------------------------------------------------------------------------------------------------
# Attribute latents: each task is an ordered list of classes with a prototype drawing vector per class. The latent
# u in [0, n) picks class order[floor(u)]; the drawing vector is interpolated between neighbouring prototypes
# (centres at k + 0.5), so near a boundary the drawing really is between two classes, which is where ``m`` goes.
# ----------------------------------------------------------------------------------------------------------------

# Neck-region drawing vector, shared by the four design tasks:
_NECK_PARAMS = ("depth", "width", "shape", "strap", "collar", "collar_round", "band", "turtle", "ruffle", "lapel",
                "notch")  # fmt: skip
_NECK_DEFAULT = {"blouse": dict(depth=0.16, width=0.17), "dress": dict(depth=0.18, width=0.18),
                 "outwear": dict(depth=0.55, width=0.15, shape=1.0)}  # fmt: skip


@dataclass(frozen=True)
class _TaskModel:
    order: tuple[int, ...]  # class indices from one end of the latent to the other
    protos: tuple[dict[str, float], ...]  # drawing parameters of each class, in ``order``


_TASK_MODELS: dict[str, _TaskModel] = {
    # length tasks: one parameter, the length in garment units (shoulder width ~ 1), ordered short -> long
    "sleeve_length_labels": _TaskModel(
        (1, 2, 3, 4, 5, 6, 7, 8), tuple({"sleeve": v} for v in (0.0, 0.14, 0.32, 0.55, 0.75, 0.95, 1.12, 1.32))
    ),
    "coat_length_labels": _TaskModel(
        (4, 1, 2, 3, 5, 6, 7), tuple({"body": v} for v in (0.6, 0.8, 1.05, 1.35, 1.75, 2.15, 2.6))
    ),
    "skirt_length_labels": _TaskModel((1, 2, 3, 4, 5), tuple({"skirt": v} for v in (0.45, 0.8, 1.15, 1.5, 1.8))),
    "pant_length_labels": _TaskModel((1, 2, 3, 4, 5), tuple({"pant": v} for v in (0.4, 0.65, 0.95, 1.2, 1.5))),
    # design tasks: neck-region drawings (shape: 0 round, 1 V, 2 square)
    "neckline_design_labels": _TaskModel(
        (1, 6, 9, 3, 5, 7, 8, 4, 2),
        (
            dict(depth=0.42, width=0.5, shape=2.0, strap=1.0),  # strapless
            dict(depth=0.16, width=0.5, shape=0.0, strap=0.7),  # off shoulder
            dict(depth=0.25, width=0.35, shape=1.0, strap=0.4),  # one shoulder
            dict(depth=0.04, width=0.3, shape=2.0),  # straight
            dict(depth=0.28, width=0.22, shape=2.0),  # square
            dict(depth=0.2, width=0.18, shape=0.0),  # round
            dict(depth=0.34, width=0.24, shape=0.5),  # sweetheart
            dict(depth=0.36, width=0.16, shape=1.0),  # V
            dict(depth=0.7, width=0.17, shape=1.0),  # deep V
        ),
    ),
    "collar_design_labels": _TaskModel(
        (4, 1, 2, 3),
        (
            dict(band=0.08),  # rib collar
            dict(collar=0.22, collar_round=0.0, band=0.03),  # shirt collar
            dict(collar=0.2, collar_round=1.0),  # peter pan
            dict(collar=0.36, collar_round=1.0),  # puritan
        ),
    ),
    "neck_design_labels": _TaskModel(
        (3, 1, 2, 4),
        (
            dict(turtle=0.1),  # low turtle
            dict(turtle=0.3),  # turtle
            dict(turtle=0.16, ruffle=1.0),  # ruffle semi-high
            dict(turtle=0.04, ruffle=0.6, depth=0.3, shape=0.0),  # draped
        ),
    ),
    "lapel_design_labels": _TaskModel(
        (2, 1, 3, 4),
        (
            dict(lapel=0.0),  # collarless
            dict(lapel=0.24, notch=1.0),  # notched
            dict(lapel=0.3),  # shawl
            dict(lapel=0.46),  # plus size shawl
        ),
    ),
}


def _latent_to_labels(task: str, u: float, cfg: WorldConfig, draws: _Draws) -> tuple[torch.Tensor, dict]:
    """Map latent ``u`` in [0, n) of ``task`` to its (C,) label codes and its drawing parameters."""
    model = _TASK_MODELS[task]
    n = len(model.order)
    codes = torch.full((len(FASHIONAI_TASKS[task]),), N, dtype=torch.long)
    k = min(int(u), n - 1)
    codes[model.order[k]] = Y
    frac = u - k
    if frac < cfg.maybe_width and k > 0:
        codes[model.order[k - 1]] = M
    if 1.0 - frac < cfg.maybe_width and k < n - 1:
        codes[model.order[k + 1]] = M
    if draws.uniform() < cfg.label_noise:
        wrong = [c for c in range(1, len(codes)) if c != model.order[k]]
        codes[model.order[k]] = N
        codes[wrong[int(draws.uniform() * len(wrong))]] = Y
    # piecewise-linear interpolation between the prototypes' centres
    t = min(max(u - 0.5, 0.0), n - 1.0)
    a = min(int(t), n - 2) if n > 1 else 0
    w = t - a
    lo, hi = model.protos[a], model.protos[min(a + 1, n - 1)]
    params = {key: (1 - w) * lo.get(key, 0.0) + w * hi.get(key, 0.0) for key in set(lo) | set(hi)}
    return codes, params


class _Draws:
    """Uniform numbers drawn from a ``torch.Generator`` in blocks (one torch call per block, not per number)."""

    def __init__(self, generator: torch.Generator, block: int = 256) -> None:
        self.generator = generator
        self.block = block
        self.values: list[float] = []
        self.seed = int(torch.randint(0, 2**62, (1,), generator=generator))

    def uniform(self, lo: float = 0.0, hi: float = 1.0) -> float:
        if not self.values:
            self.values = torch.rand(self.block, generator=self.generator, dtype=torch.float64).tolist()[::-1]
        return lo + (hi - lo) * self.values.pop()

    def integer(self, lo: int, hi: int) -> int:
        """Uniform integer in the inclusive range [lo, hi]."""
        return min(lo + int(self.uniform() * (hi - lo + 1)), hi)

    def numpy(self) -> np.random.Generator:
        """A NumPy generator derived from this stream, for whole pixel arrays (noise)."""
        return np.random.default_rng(self.seed)


def item_generator(seed: int, split: str, index: int) -> torch.Generator:
    """The generator of item ``index`` of ``split`` for ``seed``: independent of order and of the worker.

    Parameters
    ----------
    seed : int
        Data-set seed.
    split : str
        Split name (``"train"``, ``"val"``, ...): different splits never share an item.
    index : int
        Item index.
    """
    digest = hashlib.sha256(f"{seed}/{split}/{index}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") >> 1)


# ----------------------------------------------------------------------------------------------------------------
# Garment geometry in the canonical frame: x right, y down, origin at the neck centre, shoulder width ~ 1.
# ----------------------------------------------------------------------------------------------------------------

_K = FASHIONAI.num_keypoints
_IDX = {name: i for i, name in enumerate(FASHIONAI.names)}


def _rot(v: np.ndarray, angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([c * v[0] - s * v[1], s * v[0] + c * v[1]])


def _garment_shape(category: str, p: dict, draws: _Draws, asym: float):
    """Canonical key points (24, 2), existence mask (24,), drawing polygons and neck-detail polygons."""
    pts = np.zeros((_K, 2))
    exists = FASHIONAI.category_mask(category).numpy().copy()

    def put(name: str, x: float, y: float) -> None:
        pts[_IDX[name]] = (x, y)

    body: list[np.ndarray] = []  # garment polygons (drawn with the fabric)
    skin: list[np.ndarray] = []  # body/skin polygons drawn under the garment
    details: list[tuple[np.ndarray, str]] = []  # (polygon, "dark" | "light") neck details drawn over the fabric
    if category in ("blouse", "outwear", "dress"):
        nw, nd, shape = p.get("width", 0.17), p.get("depth", 0.16), p.get("shape", 0.0)
        strap = p.get("strap", 0.0)
        sh_y = 0.08 + 0.25 * strap
        put("neckline_left", -nw, 0.0)
        put("neckline_right", nw, 0.0)
        put("center_front", 0.0, nd)
        put("shoulder_left", -0.5, sh_y)
        put("shoulder_right", 0.5, sh_y)
        put("armpit_left", -0.44, 0.46)
        put("armpit_right", 0.44, 0.46)
        put("waistline_left", -0.39, 0.85)
        put("waistline_right", 0.39, 0.85)
        if category == "dress":
            hem_y = 0.85 + p.get("skirt", 1.0)
            flare = 0.12 + 0.25 * p.get("skirt", 1.0)
            put("hemline_left", -0.39 - flare, hem_y)
            put("hemline_right", 0.39 + flare, hem_y)
            hem_l, hem_r = "hemline_left", "hemline_right"
        else:
            hem_y = p.get("body", 1.05)
            widen = 0.05 * max(hem_y - 0.85, 0.0)
            put("top_hem_left", -0.45 - widen, hem_y)
            put("top_hem_right", 0.45 + widen, hem_y)
            hem_l, hem_r = "top_hem_left", "top_hem_right"
        # sleeves: base direction down-and-out; asymmetry raises one arm and folds one sleeve
        sleeve = p.get("sleeve", 0.75)
        for side, sign in (("left", -1.0), ("right", 1.0)):
            angle = math.radians(28.0 + asym * draws.uniform(-25.0, 70.0))
            length = sleeve * (1.0 - asym * 0.5 * draws.uniform()) if draws.uniform() < asym else sleeve
            d = np.array([sign * math.sin(angle), math.cos(angle)])
            sh, ap = pts[_IDX[f"shoulder_{side}"]], pts[_IDX[f"armpit_{side}"]]
            if sleeve <= 0.04:  # sleeveless: the cuffs do not exist (like the real -1 cuffs of sleeveless dresses)
                exists[[_IDX[f"cuff_{side}_in"], _IDX[f"cuff_{side}_out"]]] = False
                arm_in, arm_out = ap + 0.9 * d, sh + 1.0 * d
                skin.append(np.stack([sh, arm_out, arm_in, ap]))
                continue
            out = sh + (length + 0.05) * d
            inn = ap + max(length - 0.3, 0.03) * d
            pts[_IDX[f"cuff_{side}_out"]] = out
            pts[_IDX[f"cuff_{side}_in"]] = inn
            body.append(np.stack([sh, out, inn, ap]))
            if length < 1.0:  # forearm skin below a short sleeve
                skin.append(np.stack([out, sh + 1.05 * d, ap + 0.75 * d, inn]))
        cut = _neckline_curve(nw, nd, shape)  # (S, 2) from neckline_left to neckline_right via the centre
        side_l = [pts[_IDX["shoulder_left"]], pts[_IDX["armpit_left"]]]
        side_r = [pts[_IDX["armpit_right"]], pts[_IDX["shoulder_right"]]]
        if category != "blouse":
            side_l.append(pts[_IDX["waistline_left"]])
            side_r.insert(0, pts[_IDX["waistline_right"]])
        body.append(np.concatenate([np.stack(side_l + [pts[_IDX[hem_l]], pts[_IDX[hem_r]]] + side_r), cut[::-1]]))
        skin.append(np.array([[-nw * 0.8, -0.15], [nw * 0.8, -0.15], [nw, nd + 0.05], [-nw, nd + 0.05]]))
        details += _neck_details(p, nw, nd, category)
    elif category == "skirt":
        length = p.get("skirt", 1.0)
        flare = 0.1 + 0.25 * length
        put("waistband_left", -0.35, 0.0)
        put("waistband_right", 0.35, 0.0)
        put("hemline_left", -0.35 - flare, length)
        put("hemline_right", 0.35 + flare, length)
        body.append(pts[[_IDX["waistband_left"], _IDX["hemline_left"], _IDX["hemline_right"], _IDX["waistband_right"]]])
        details.append((np.array([[-0.35, 0.0], [0.35, 0.0], [0.35, 0.06], [-0.35, 0.06]]), "dark"))
    else:  # trousers
        length = p.get("pant", 1.5)
        put("waistband_left", -0.4, 0.0)
        put("waistband_right", 0.4, 0.0)
        put("crotch", 0.0, 0.42)
        for side, sign in (("left", -1.0), ("right", 1.0)):
            bend = math.radians(asym * draws.uniform(-10.0, 30.0)) * sign
            hip = np.array([sign * 0.2, 0.1])
            out = hip + _rot(np.array([sign * 0.22, length - 0.1]), bend)
            inn = hip + _rot(np.array([-sign * 0.07, length - 0.1]), bend)
            pts[_IDX[f"bottom_{side}_out"]] = out
            pts[_IDX[f"bottom_{side}_in"]] = inn
            skin.append(np.stack([inn, out, hip + _rot(np.array([sign * 0.2, 1.55]), bend),
                                  hip + _rot(np.array([-sign * 0.05, 1.55]), bend)]))  # fmt: skip
        body.append(pts[[_IDX[n] for n in ("waistband_left", "bottom_left_out", "bottom_left_in", "crotch",
                                           "bottom_right_in", "bottom_right_out", "waistband_right")]])  # fmt: skip
        details.append((np.array([[-0.4, 0.0], [0.4, 0.0], [0.4, 0.06], [-0.4, 0.06]]), "dark"))
    return pts, exists, body, skin, details


def _neckline_curve(nw: float, nd: float, shape: float, samples: int = 9) -> np.ndarray:
    """(S, 2) neckline from left to right: a blend of round (0), V (1) and square (2) profiles of depth ``nd``."""
    t = np.linspace(-1.0, 1.0, samples)
    round_ = np.sqrt(np.clip(1.0 - t**2, 0.0, 1.0))
    vee = 1.0 - np.abs(t)
    square = np.where(np.abs(t) < 0.85, 1.0, (1.0 - np.abs(t)) / 0.15)
    s = min(max(shape, 0.0), 2.0)
    prof = np.where(s <= 1.0, (1 - s) * round_ + s * vee, (2 - s) * vee + (s - 1) * square)
    return np.stack([t * nw, nd * prof], axis=1)


def _neck_details(p: dict, nw: float, nd: float, category: str) -> list[tuple[np.ndarray, str]]:
    """Polygons of collars, bands, turtle necks and lapels (canonical frame), each with its tone."""
    out: list[tuple[np.ndarray, str]] = []
    collar, rnd = p.get("collar", 0.0), p.get("collar_round", 0.0)
    if collar > 0.02:
        for sign in (-1.0, 1.0):
            tip = np.array([sign * (nw + 0.4 * collar * (1 - rnd)), collar * (1.2 - 0.3 * rnd)])
            mid = np.array([sign * (nw + 0.5 * collar), 0.5 * collar])
            out.append((np.array([[sign * nw * 0.2, 0.02], [sign * (nw + 0.04), -0.03], mid, tip]), "light"))
    band = p.get("band", 0.0)
    if band > 0.01:
        out.append((np.array([[-nw, -band], [nw, -band], [nw, 0.01], [-nw, 0.01]]), "dark"))
    turtle, ruffle = p.get("turtle", 0.0), p.get("ruffle", 0.0)
    if turtle > 0.02:
        xs = np.linspace(-nw * 0.85, nw * 0.85, 7)
        top = -turtle - ruffle * 0.05 * (np.arange(7) % 2)
        poly = np.concatenate([np.stack([xs, top], 1), [[nw, 0.03], [-nw, 0.03]]])
        out.append((poly, "light"))
    lapel, notch = p.get("lapel", 0.0), p.get("notch", 0.0)
    if lapel > 0.02:
        for sign in (-1.0, 1.0):
            poly = [[sign * nw, 0.0], [sign * (nw + lapel * 0.6), 0.1 + 0.3 * lapel]]
            if notch > 0.5:
                poly += [[sign * (nw + lapel * 0.3), 0.15 + 0.3 * lapel], [sign * (nw + lapel * 0.5), 0.25 + 0.4 * lapel]]
            poly += [[sign * 0.02, nd + 0.05]]
            out.append((np.array(poly), "dark"))
    return out


# ----------------------------------------------------------------------------------------------------------------
# Placement: rotation + projective tilt + scale + translation, fitted so that the whole shape stays in the image.
# ----------------------------------------------------------------------------------------------------------------


class _Placement:
    """Maps canonical points to pixels: ``H @ [x, y, 1]`` (projective), then scale and shift."""

    def __init__(self, angle: float, p: float, q: float) -> None:
        c, s = math.cos(angle), math.sin(angle)
        self.h = np.array([[c, -s, 0.0], [s, c, 0.0], [p, q, 1.0]])
        self.scale, self.shift = 1.0, np.zeros(2)

    def raw(self, xy: np.ndarray) -> np.ndarray:
        hom = np.concatenate([xy, np.ones((len(xy), 1))], axis=1) @ self.h.T  # (n, 3)
        return hom[:, :2] / hom[:, 2:3]

    def __call__(self, xy: np.ndarray) -> np.ndarray:
        return self.raw(xy) * self.scale + self.shift

    def fit(self, all_xy: np.ndarray, size: int, frac: float, draws: _Draws) -> None:
        """Scale so the longer side of ``all_xy`` is ``frac * size``; shift uniformly within the image."""
        raw = self.raw(all_xy)
        lo, hi = raw.min(0), raw.max(0)
        self.scale = frac * size / max(float((hi - lo).max()), 1e-6)
        extent = (hi - lo) * self.scale
        room = np.maximum(size - 2.0 - extent, 0.0)
        self.shift = 1.0 + np.array([draws.uniform() * room[0], draws.uniform() * room[1]]) - lo * self.scale

    def axis(self) -> tuple[np.ndarray, float]:
        """The image of the canonical axis ``x = 0``: unit normal (2,) and offset."""
        a, b = self(np.array([[0.0, 0.0], [0.0, 1.0]]))
        d = (b - a) / np.linalg.norm(b - a)
        normal = np.array([d[1], -d[0]])
        if normal[0] < 0:  # orient the normal towards +x, so "left" points (small x) have negative distance
            normal = -normal
        return normal, float(normal @ a)


# ----------------------------------------------------------------------------------------------------------------
# Pixels
# ----------------------------------------------------------------------------------------------------------------

_GRIDS: dict[int, tuple[np.ndarray, np.ndarray]] = {}


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    if size not in _GRIDS:
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
        _GRIDS[size] = (xx, yy)
    return _GRIDS[size]


def _color(draws: _Draws, lo: int = 0, hi: int = 255) -> tuple[int, int, int]:
    return (draws.integer(lo, hi), draws.integer(lo, hi), draws.integer(lo, hi))


def _background(cfg: WorldConfig, draws: _Draws) -> Image.Image:
    size = cfg.image_size
    base = np.array(_color(draws, 60, 230), dtype=np.float32)
    xx, yy = _grid(size)
    grad = (draws.uniform(-0.3, 0.3) * xx + draws.uniform(-0.3, 0.3) * yy)[..., None] * (128.0 / size)
    img = base + grad
    if cfg.noise > 0:
        img = img + draws.numpy().normal(0.0, cfg.noise, size=(size, size, 1)).astype(np.float32)
    out = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    n_clutter = int(np.random.default_rng(draws.seed + 1).poisson(cfg.clutter)) if cfg.clutter > 0 else 0
    draw = ImageDraw.Draw(out)
    for _ in range(n_clutter):
        x0, y0 = draws.uniform(-0.1, 1.0) * size, draws.uniform(-0.1, 1.0) * size
        w, h = draws.uniform(0.05, 0.35) * size, draws.uniform(0.05, 0.35) * size
        box = [x0, y0, x0 + w, y0 + h]
        (draw.ellipse if draws.uniform() < 0.5 else draw.rectangle)(box, fill=_color(draws, 40, 240))
    return out


def _texture(cfg: WorldConfig, draws: _Draws, kind: int) -> np.ndarray:
    """(H, W, 3) uint8 fabric: 0 solid, 1 stripes, 2 checks, 3 dots."""
    size = cfg.image_size
    c1 = np.array(_color(draws, 20, 235), dtype=np.uint8)
    c2 = np.array(_color(draws, 20, 235), dtype=np.uint8)
    if kind == 0:
        return np.broadcast_to(c1, (size, size, 3))
    xx, yy = _grid(size)
    period = draws.uniform(0.04, 0.1) * size
    angle = draws.uniform(0.0, math.pi)
    u = (xx * math.cos(angle) + yy * math.sin(angle)) / period
    if kind == 1:
        mask = (u % 1.0) < 0.5
    else:
        v = (-xx * math.sin(angle) + yy * math.cos(angle)) / period
        if kind == 2:
            mask = ((u % 1.0) < 0.5) ^ ((v % 1.0) < 0.5)
        else:
            mask = ((u % 1.0) - 0.5) ** 2 + ((v % 1.0) - 0.5) ** 2 < 0.07
    return np.where(mask[..., None], c1, c2)


def _polys_px(polys: Sequence[np.ndarray], place: _Placement) -> list[list[tuple[float, float]]]:
    return [[(float(x), float(y)) for x, y in place(poly)] for poly in polys]


def _occlude(
    img: Image.Image, pts_px: np.ndarray, exists: np.ndarray, radius: float, cfg: WorldConfig, draws: _Draws
) -> np.ndarray:
    """Draw occluders centred near randomly chosen existing points; return (K,) bool of the points they hide."""
    size = cfg.image_size
    mask = Image.new("L", (size, size), 0)
    md = ImageDraw.Draw(mask)
    d = ImageDraw.Draw(img)
    any_drawn = False
    for k in np.flatnonzero(exists):
        if draws.uniform() >= cfg.occlusion_rate:
            continue
        r = radius * draws.uniform(0.6, 1.2)
        cx, cy = pts_px[k] + np.array([draws.uniform(-0.5, 0.5), draws.uniform(-0.5, 0.5)]) * r
        box = [cx - r, cy - r, cx + r, cy + r]
        fill = _color(draws, 0, 255)
        if draws.uniform() < 0.5:
            d.ellipse(box, fill=fill)
            md.ellipse(box, fill=255)
        else:
            d.rectangle(box, fill=fill)
            md.rectangle(box, fill=255)
        any_drawn = True
    if not any_drawn:
        return np.zeros(len(pts_px), dtype=bool)
    m = np.asarray(mask)
    ij = np.clip(np.floor(pts_px).astype(int), 0, size - 1)
    return (m[ij[:, 1], ij[:, 0]] > 0) & exists


def render_garment(
    config: WorldConfig,
    generator: torch.Generator,
    category: str | None = None,
    latents: dict[str, float] | None = None,
    fabric: int | None = None,
) -> tuple[np.ndarray, dict]:
    """Draw one garment on a cluttered background.

    Parameters
    ----------
    config : WorldConfig
        World knobs.
    generator : torch.Generator
        The only source of randomness.
    category : str, optional
        One of :data:`CATEGORIES`; drawn uniformly when ``None``.
    latents : dict, optional
        AttrKey -> latent in ``[0, n_k)`` (``n_k`` the task's number of drawable classes) to force an attribute;
        the others are drawn uniformly.
    fabric : int, optional
        Texture: 0 solid, 1 stripes, 2 checks, 3 dots; drawn uniformly when ``None``.

    Returns
    -------
    image : (H, W, 3) uint8 array, ``H = W = config.image_size``.
    target : dict
        ``keypoints`` (24, 3) float32 array, x, y in pixels, v in {0, 1, 2}; ``occluded`` (24,) bool;
        ``box`` (4,) float32 x1, y1, x2, y2 of the drawn garment, pixels; ``category`` str; ``attributes`` dict
        AttrKey -> (C,) long codes; ``latents`` dict AttrKey -> float; ``fabric`` int; ``axis_normal`` (2,) float32 unit;
        ``axis_offset`` float, pixels.
    """
    draws = _Draws(generator)
    if category is None:
        category = CATEGORIES[draws.integer(0, len(CATEGORIES) - 1)]
    elif category not in CATEGORIES:
        raise ValueError(f"category must be one of {CATEGORIES}, got {category!r}")
    latents = dict(latents or {})
    unknown = set(latents) - set(CATEGORY_TASKS[category])
    if unknown:
        raise ValueError(f"latents has tasks {sorted(unknown)} that do not apply to {category!r}; "
                         f"valid: {CATEGORY_TASKS[category]}")  # fmt: skip
    params: dict[str, float] = dict(_NECK_DEFAULT.get(category, {}))
    attributes, used = {}, {}
    for task in CATEGORY_TASKS[category]:
        n = len(_TASK_MODELS[task].order)
        u = latents.get(task)
        if u is None:
            u = draws.uniform(0.0, n)
        elif not 0.0 <= u < n:
            raise ValueError(f"latents[{task!r}] must be in [0, {n}), got {u}")
        codes, p = _latent_to_labels(task, u, config, draws)
        attributes[task], used[task] = codes, float(u)
        params.update(p)

    pts, exists, body, skin, details = _garment_shape(category, params, draws, config.asymmetry)
    lim = math.radians(config.rotation_deg)
    place = _Placement(draws.uniform(-lim, lim), draws.uniform(-1, 1) * config.perspective,
                       draws.uniform(-1, 1) * config.perspective)  # fmt: skip
    everything = np.concatenate([pts[exists]] + list(body) + [d for d, _ in details])
    place.fit(everything, config.image_size, draws.uniform(*config.scale), draws)

    img = _background(config, draws)
    draw = ImageDraw.Draw(img)
    skin_color = (draws.integer(150, 235), draws.integer(110, 190), draws.integer(80, 160))
    for poly in _polys_px(skin, place):
        draw.polygon(poly, fill=skin_color)
    mask = Image.new("L", img.size, 0)
    mdraw = ImageDraw.Draw(mask)
    body_px = _polys_px(body, place)
    for poly in body_px:
        mdraw.polygon(poly, fill=255)
    if fabric is None:
        fabric = draws.integer(0, 3)
    elif fabric not in (0, 1, 2, 3):
        raise ValueError(f"fabric must be 0 (solid), 1 (stripes), 2 (checks) or 3 (dots), got {fabric!r}")
    texture = Image.fromarray(np.ascontiguousarray(_texture(config, draws, fabric)))
    img.paste(texture, (0, 0), mask)
    tone = np.array(_color(draws, 0, 255))
    dark, light = tuple(int(v) for v in tone // 3), tuple(int(v) for v in 255 - (255 - tone) // 3)
    for poly in body_px:
        draw.line(poly + [poly[0]], fill=dark, width=1)
    for poly, kind in details:
        draw.polygon(_polys_px([poly], place)[0], fill=dark if kind == "dark" else light, outline=dark)

    pts_px = place(pts)
    box = np.concatenate([np.min([np.min(b, 0) for b in body_px], 0), np.max([np.max(b, 0) for b in body_px], 0)])
    radius = config.occluder_size * float(max(box[2] - box[0], box[3] - box[1]))
    occluded = _occlude(img, pts_px, exists, radius, config, draws)
    vis = np.where(exists, np.where(occluded, OCCLUDED, VISIBLE), ABSENT)
    keypoints = np.concatenate([np.where(exists[:, None], pts_px, 0.0), vis[:, None]], axis=1).astype(np.float32)
    normal, offset = place.axis()
    target = {
        "keypoints": keypoints,
        "occluded": occluded,
        "box": np.clip(box, 0, config.image_size).astype(np.float32),
        "category": category,
        "attributes": attributes,
        "latents": used,
        "fabric": fabric,
        "axis_normal": normal.astype(np.float32),
        "axis_offset": offset,
    }
    return np.array(img), target


# ----------------------------------------------------------------------------------------------------------------
# People (COCO schema): articulated figures, vectorised over the persons of an image; only drawing loops.
# Canonical frame: person height 1, head top at y = 0, feet at y ~ 1, facing the camera (person's left at +x).
# ----------------------------------------------------------------------------------------------------------------

_CI = {name: i for i, name in enumerate(COCO.names)}
_LIMBS = [("left_shoulder", "left_elbow"), ("left_elbow", "left_wrist"), ("right_shoulder", "right_elbow"),
          ("right_elbow", "right_wrist"), ("left_hip", "left_knee"), ("left_knee", "left_ankle"),
          ("right_hip", "right_knee"), ("right_knee", "right_ankle")]  # fmt: skip
_LIMB_IDX = np.array([[_CI[a], _CI[b]] for a, b in _LIMBS])


def _skeletons(n: int, asym: float, draws: _Draws) -> tuple[np.ndarray, np.ndarray]:
    """(n, 17, 2) canonical joints and (n, 17) existence (a turned head hides its far ear)."""
    u = np.array([[draws.uniform() for _ in range(10)] for _ in range(n)]).reshape(n, 10)
    j = np.zeros((n, 17, 2))
    turn = (u[:, 0] - 0.5) * 0.04  # head turn: shifts the face sideways
    j[:, _CI["nose"]] = np.stack([turn, np.full(n, 0.075)], 1)
    for side, s in (("left", 1.0), ("right", -1.0)):
        j[:, _CI[f"{side}_eye"]] = np.stack([turn + s * 0.022, np.full(n, 0.06)], 1)
        j[:, _CI[f"{side}_ear"]] = np.stack([np.full(n, s * 0.045), np.full(n, 0.068)], 1)
        j[:, _CI[f"{side}_shoulder"]] = (s * 0.11, 0.19)
        j[:, _CI[f"{side}_hip"]] = (s * 0.075, 0.52)
    # limb angles from straight down, outward positive; asymmetry spreads each side independently
    k = 0
    for side, s in (("left", 1.0), ("right", -1.0)):
        upper = np.radians(12.0 + (u[:, 1 + k] - 0.3) * 60.0 * (0.3 + asym))
        lower = upper + np.radians((u[:, 2 + k] - 0.2) * 90.0 * (0.2 + asym))
        thigh = np.radians(4.0 + (u[:, 3 + k] - 0.4) * 30.0 * (0.2 + asym))
        shin = thigh - np.radians(u[:, 4 + k] * 50.0 * asym)
        for (a, b, length), ang in zip(
            [(f"{side}_shoulder", f"{side}_elbow", 0.17), (f"{side}_elbow", f"{side}_wrist", 0.15),
             (f"{side}_hip", f"{side}_knee", 0.23), (f"{side}_knee", f"{side}_ankle", 0.23)],
            [upper, lower, thigh, shin], strict=True,
        ):  # fmt: skip
            j[:, _CI[b]] = j[:, _CI[a]] + length * np.stack([s * np.sin(ang), np.cos(ang)], 1)
        k += 4
    exists = np.ones((n, 17), dtype=bool)
    far_ear = np.where(turn > 0.012, _CI["right_ear"], np.where(turn < -0.012, _CI["left_ear"], -1))
    rows = np.flatnonzero(far_ear >= 0)
    exists[rows, far_ear[rows]] = False
    return j, exists


def _hull(points: np.ndarray) -> np.ndarray:
    """Convex hull (Andrew's monotone chain) of (n, 2) points, counter-clockwise, as (h, 2)."""
    pts = sorted(map(tuple, np.round(points, 2)))
    if len(pts) < 3:
        return np.array(pts)

    def half(seq):
        out: list = []
        for p in seq:
            while len(out) >= 2 and (out[-1][0] - out[-2][0]) * (p[1] - out[-2][1]) - (out[-1][1] - out[-2][1]) * (
                p[0] - out[-2][0]
            ) <= 0:
                out.pop()
            out.append(p)
        return out

    lower, upper = half(pts), half(pts[::-1])
    return np.array(lower[:-1] + upper[:-1])


def _draw_person(
    img: Image.Image, mask: Image.Image, joints: np.ndarray, height: float, skin, cloth, dressed: bool
) -> None:
    """Draw one figure (joints (17, 2) in pixels) into ``img`` and its silhouette into ``mask``."""
    d, m = ImageDraw.Draw(img), ImageDraw.Draw(mask)
    w = max(int(round(0.055 * height)), 1)
    ls, rs, lh, rh = (joints[_CI[n]] for n in ("left_shoulder", "right_shoulder", "left_hip", "right_hip"))
    torso = [tuple(p) for p in (ls, rs, rh, lh)]
    head_c = (joints[_CI["left_ear"]] + joints[_CI["right_ear"]]) / 2 - np.array([0.0, 0.005 * height])
    r = 0.06 * height
    for draw, fill in ((d, skin), (m, 255)):
        for a, b in _LIMB_IDX:
            draw.line([tuple(joints[a]), tuple(joints[b])], fill=fill, width=w)
        draw.polygon(torso, fill=fill)
        draw.ellipse([head_c[0] - r * 0.8, head_c[1] - r, head_c[0] + r * 0.8, head_c[1] + r], fill=fill)
        draw.line([tuple(head_c), tuple((ls + rs) / 2)], fill=fill, width=w)
    if dressed:  # a top over the torso and upper arms, so garments are seen on bodies
        for a, b in _LIMB_IDX[[0, 2]]:
            d.line([tuple(joints[a]), tuple((joints[a] + joints[b]) / 2)], fill=cloth, width=w + 1)
        d.polygon(torso, fill=cloth, outline=tuple(c // 2 for c in cloth))
    eye = max(int(round(0.012 * height)), 1)
    for name in ("left_eye", "right_eye"):
        x, y = joints[_CI[name]]
        d.rectangle([x - eye / 2, y - eye / 2, x + eye / 2, y + eye / 2], fill=(20, 20, 20))


def render_people(config: WorldConfig, generator: torch.Generator) -> tuple[np.ndarray, dict]:
    """Draw several persons (some small, some overlapping) and maybe a crowd region on a cluttered background.

    Parameters
    ----------
    config : WorldConfig
        World knobs (``people``, ``person_scale``, ``crowd_rate``, ``dressed_rate``, ``occlusion_rate``, ...).
    generator : torch.Generator
        The only source of randomness.

    Returns
    -------
    image : (H, W, 3) uint8 array.
    target : dict of arrays over the ``N`` annotations (persons first, then at most one crowd region)
        ``keypoints`` (N, 17, 3) float32 (x, y pixels, v in {0, 1, 2}; all 0 for a crowd); ``occluded`` (N, 17)
        bool; ``boxes`` (N, 4) float32 x1, y1, x2, y2; ``area`` (N,) float32 silhouette pixels; ``iscrowd`` (N,)
        int64; ``polygons`` list of N flat [x1, y1, x2, y2, ...] hulls (``None`` for a crowd); ``crowd_mask``
        (H, W) bool or ``None``; ``axis_normal`` (N, 2) float32; ``axis_offset`` (N,) float32.
    """
    draws = _Draws(generator)
    size = config.image_size
    n = draws.integer(*config.people)
    img = _background(config, draws)
    joints, exists = _skeletons(n, config.asymmetry, draws)
    heights = np.array([draws.uniform(*config.person_scale) for _ in range(n)]) * size  # (n,) pixels
    angles = np.radians(np.array([draws.uniform(-1, 1) for _ in range(n)]) * config.rotation_deg)
    # place: rotate about the feet-centre-ish point, scale to height, shift inside the image
    c, s = np.cos(angles), np.sin(angles)
    rot = np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], -2)  # (n, 2, 2)
    local = np.einsum("nij,nkj->nki", rot, joints - np.array([0.0, 0.5])) * heights[:, None, None]  # (n, 17, 2)
    pad = 0.1 * heights[:, None]
    lo, hi = local.min(1) - pad, local.max(1) + pad  # (n, 2)
    room = np.maximum(size - (hi - lo), 0.0)
    shift = np.array([[draws.uniform(), draws.uniform()] for _ in range(n)]).reshape(n, 2) * room - lo
    pts = local + shift[:, None, :]  # (n, 17, 2)
    normal = np.stack([c, s], -1)  # image of the canonical x axis direction: the axis's normal
    offset = np.einsum("ni,ni->n", normal, shift)  # the axis passes through the placed canonical x = 0 line

    crowd_mask = None
    if draws.uniform() < config.crowd_rate:  # a patch of small unlabelled figures, drawn first (behind everyone)
        crowd = Image.new("L", (size, size), 0)
        cx, cy, span = draws.uniform(0.1, 0.7) * size, draws.uniform(0.1, 0.7) * size, draws.uniform(0.2, 0.3) * size
        cj, _ = _skeletons(6, 1.0, draws)
        for k in range(6):
            h = draws.uniform(0.08, 0.14) * size
            p = (cj[k] - np.array([0.0, 0.5])) * h + np.array([cx + draws.uniform() * span, cy + draws.uniform() * span])
            _draw_person(img, crowd, p, h, _color(draws, 80, 230), _color(draws), draws.uniform() < 0.5)
        crowd_mask = np.asarray(crowd) > 0

    masks = []
    for k in range(n):
        mask = Image.new("L", (size, size), 0)
        _draw_person(img, mask, pts[k], heights[k], (draws.integer(150, 235), draws.integer(100, 190),
                     draws.integer(70, 160)), _color(draws, 10, 245), draws.uniform() < config.dressed_rate)  # fmt: skip
        masks.append(np.asarray(mask) > 0)
    masks_np = np.stack(masks) if n else np.zeros((0, size, size), dtype=bool)  # (n, H, W)
    # a point is occluded when a person drawn later covers it
    ij = np.clip(np.floor(pts).astype(int), 0, size - 1)  # (n, 17, 2)
    covered_by = masks_np[:, ij[..., 1], ij[..., 0]]  # (n_cover, n, 17)
    later = np.arange(n)[:, None] > np.arange(n)[None, :]  # (n_cover, n): cover drawn after the person
    occluded = (covered_by & later[:, :, None]).any(0) & exists if n else np.zeros((0, 17), dtype=bool)
    hidden = _occlude(img, pts.reshape(-1, 2), exists.reshape(-1), 0.04 * size, config, draws).reshape(n, 17)
    occluded = occluded | hidden
    vis = np.where(exists, np.where(occluded, OCCLUDED, VISIBLE), ABSENT)
    keypoints = np.concatenate([np.where(exists[..., None], pts, 0.0), vis[..., None]], -1).astype(np.float32)
    area = masks_np.reshape(n, -1).sum(1).astype(np.float32)
    ys, xs = np.any(masks_np, 2), np.any(masks_np, 1)  # (n, H), (n, W)
    boxes = np.stack([xs.argmax(1), ys.argmax(1), size - xs[:, ::-1].argmax(1), size - ys[:, ::-1].argmax(1)],
                     1).astype(np.float32)  # fmt: skip
    w = 0.04 * heights[:, None, None]
    corners = np.concatenate([pts + w * np.array(o) for o in ((1, 1), (1, -1), (-1, 1), (-1, -1))], 1)
    head_top = ((pts[:, _CI["left_ear"]] + pts[:, _CI["right_ear"]]) / 2 - 0.08 * heights[:, None] * normal[:, ::-1]
                * np.array([-1.0, 1.0]))  # fmt: skip
    corners = np.clip(np.concatenate([corners, head_top[:, None]], 1), 0, size)
    polygons: list = [_hull(corners[k]).reshape(-1).round(2).tolist() for k in range(n)]
    iscrowd = np.zeros(n, dtype=np.int64)
    if crowd_mask is not None and crowd_mask.any():
        # later persons cover parts of the crowd; its region keeps only what is still crowd
        crowd_mask = crowd_mask & ~masks_np.any(0)
        cy_, cx_ = np.nonzero(crowd_mask)
        keypoints = np.concatenate([keypoints, np.zeros((1, 17, 3), np.float32)])
        occluded = np.concatenate([occluded, np.zeros((1, 17), bool)])
        boxes = np.concatenate([boxes, np.array([[cx_.min(), cy_.min(), cx_.max() + 1, cy_.max() + 1]], np.float32)])
        area = np.concatenate([area, np.array([crowd_mask.sum()], np.float32)])
        iscrowd = np.concatenate([iscrowd, np.ones(1, np.int64)])
        polygons.append(None)
        normal = np.concatenate([normal, np.zeros((1, 2))])
        offset = np.concatenate([offset, np.zeros(1)])
    else:
        crowd_mask = None
    target = {
        "keypoints": keypoints,
        "occluded": occluded,
        "boxes": boxes,
        "area": area,
        "iscrowd": iscrowd,
        "polygons": polygons,
        "crowd_mask": crowd_mask,
        "axis_normal": normal.astype(np.float32),
        "axis_offset": offset.astype(np.float32),
    }
    return np.array(img), target


# ----------------------------------------------------------------------------------------------------------------
# On-the-fly torch data sets
# ----------------------------------------------------------------------------------------------------------------


def _image_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div_(255.0)  # (3, H, W)


def _axis_tensor(normal: np.ndarray, offset) -> torch.Tensor:
    normal = torch.as_tensor(np.asarray(normal, dtype=np.float32)).reshape(-1, 2)
    offset = torch.as_tensor(np.asarray(offset, dtype=np.float32)).reshape(-1, 1)
    return torch.cat([normal, offset], 1)  # (N, 3)


def _check_dataset_args(length: int, seed: int, split: str) -> None:
    if length < 0:
        raise ValueError(f"length must be >= 0, got {length}")
    if not isinstance(seed, int):
        raise ValueError(f"seed must be an int, got {seed!r}")
    if not split or "/" in split:
        raise ValueError(f"split must be a non-empty name without '/', got {split!r}")


class SyntheticGarments(torch.utils.data.Dataset):
    """One FashionAI garment per image, generated on the fly; item ``i`` depends only on ``(seed, split, i)``.

    Parameters
    ----------
    config : WorldConfig
    length : int
        Number of items.
    seed : int
    split : str
        Any name; different splits never share an item.
    categories : sequence of str, optional
        Restrict to these categories (drawn uniformly among them); all five by default.

    Items are ``(image, target)``: ``image`` (3, H, W) float32 in [0, 1]; ``target`` has ``boxes`` (1, 4) float32
    (:func:`fashion_lib.data.transforms.keypoint_boxes` of the labelled points, margin 0.05, the same rule as the
    FashionAI loader), ``garment_box`` (1, 4) float32 (extent of the drawn garment), ``labels`` (1,) int64
    (category index + 1), ``keypoints`` (1, 24, 3) float32 (x, y pixels, v in {0, 1, 2}), ``occluded`` (1, 24)
    bool, ``axis`` (1, 3) float32 ``[normal_x, normal_y, offset]``, ``category`` str, ``attributes`` dict AttrKey
    -> (C,) int64 codes (:data:`fashion_lib.attributes.Y` / ``M`` / ``N``), ``latents`` dict AttrKey -> float,
    ``image_id`` int (``i``).
    """

    def __init__(
        self, config: WorldConfig, length: int, seed: int, split: str = "train",
        categories: Sequence[str] | None = None,
    ) -> None:  # fmt: skip
        _check_dataset_args(length, seed, split)
        self.categories = tuple(categories) if categories is not None else CATEGORIES
        bad = [c for c in self.categories if c not in CATEGORIES]
        if bad or not self.categories:
            raise ValueError(f"categories must be a non-empty subset of {CATEGORIES}, got {categories!r}")
        self.config, self.length, self.seed, self.split = config, length, seed, split

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict]:
        if not 0 <= index < self.length:
            raise IndexError(f"index must be in [0, {self.length}), got {index}")
        g = item_generator(self.seed, self.split, index)
        category = None
        if len(self.categories) < len(CATEGORIES):
            category = self.categories[int(torch.randint(len(self.categories), (1,), generator=g))]
        image, t = render_garment(self.config, g, category=category)
        return _image_tensor(image), _garment_target(t, index, self.config.image_size)


def _garment_target(t: dict, image_id, size: int) -> dict:
    from fashion_lib.data.transforms import keypoint_boxes

    keypoints = torch.from_numpy(t["keypoints"])[None]  # (1, 24, 3)
    return {
        "boxes": keypoint_boxes(keypoints, 0.05, size, size),
        "garment_box": torch.from_numpy(t["box"])[None],
        "labels": torch.tensor([CATEGORIES.index(t["category"]) + 1]),
        "keypoints": keypoints,
        "occluded": torch.from_numpy(t["occluded"])[None],
        "axis": _axis_tensor(t["axis_normal"], t["axis_offset"]),
        "category": t["category"],
        "attributes": t["attributes"],
        "latents": t["latents"],
        "image_id": image_id,
    }


class SyntheticPeople(torch.utils.data.Dataset):
    """Several COCO persons per image (plus, sometimes, a crowd region), generated on the fly.

    Parameters
    ----------
    config : WorldConfig
    length : int
    seed : int
    split : str

    Items are ``(image, target)`` with the :class:`fashion_lib.data.coco.CocoKeypoints` item format: ``boxes``
    (N, 4) float32, ``labels`` (N,) int64 (all 1), ``keypoints`` (N, 17, 3) float32, ``iscrowd`` (N,) int64,
    ``area`` (N,) float32, plus the ground truth real data lacks: ``occluded`` (N, 17) bool and ``axis`` (N, 3)
    float32 (zeros for a crowd region); ``image_id`` int.
    """

    def __init__(self, config: WorldConfig, length: int, seed: int, split: str = "train") -> None:
        _check_dataset_args(length, seed, split)
        self.config, self.length, self.seed, self.split = config, length, seed, split

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict]:
        if not 0 <= index < self.length:
            raise IndexError(f"index must be in [0, {self.length}), got {index}")
        image, t = render_people(self.config, item_generator(self.seed, self.split, index))
        return _image_tensor(image), _people_target(t, index)


def _people_target(t: dict, image_id) -> dict:
    n = len(t["iscrowd"])
    return {
        "boxes": torch.from_numpy(t["boxes"]).reshape(n, 4),
        "labels": torch.ones(n, dtype=torch.long),
        "keypoints": torch.from_numpy(t["keypoints"]).reshape(n, 17, 3),
        "iscrowd": torch.from_numpy(t["iscrowd"]),
        "area": torch.from_numpy(t["area"]),
        "occluded": torch.from_numpy(t["occluded"]).reshape(n, 17),
        "axis": _axis_tensor(t["axis_normal"], t["axis_offset"]),
        "image_id": image_id,
    }


# ----------------------------------------------------------------------------------------------------------------
# Writers: the real on-disk layouts (data-formats.md), each written through ``atomic_dir``.
# ----------------------------------------------------------------------------------------------------------------


def _jpeg(image: np.ndarray, quality: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=quality, subsampling=0, optimize=False)
    return buf.getvalue()


def _hex_id(seed: int, split: str, index: int, kind: str) -> str:
    return hashlib.sha256(f"{kind}/{seed}/{split}/{index}".encode()).hexdigest()[:32]


def _split_counts(n: int, fractions: dict[str, float]) -> dict[str, int]:
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    counts = {name: int(round(n * f)) for name, f in fractions.items() if name != "train"}
    counts = {"train": n - sum(counts.values()), **counts}
    if counts["train"] < 0:
        raise ValueError(f"split fractions {fractions} leave no training images for n={n}")
    return counts


def _check_fraction(name: str, value: float) -> None:
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {value}")


def _fashionai_cell(x: float, y: float, v: float) -> str:
    if v == ABSENT:
        return "-1_-1_-1"
    return f"{int(round(x))}_{int(round(y))}_{1 if v == VISIBLE else 0}"


def write_fashionai_keypoints(
    root: str | os.PathLike, n: int, seed: int, config: WorldConfig | None = None, val_fraction: float = 0.2
) -> Path:
    """Write a FashionAI key-point set in the real layout (data-formats.md, A).

    Layout under ``root``: ``Images/<category>/<32 hex>.jpg``; ``Annotations/train.csv`` (the exact 26-column
    header, ``x_y_v`` cells with v = 1 visible, 0 occluded, ``-1_-1_-1`` absent); ``Annotations/val.csv`` (the
    validation split, same format: what the released ``*_answer_*.csv`` files look like); ``test.csv`` (header
    ``image_id,image_category``, the validation images, as in a real test split); and
    ``Annotations/synthetic_truth.json`` (not part of the real format: per image id, the true symmetry axis
    ``[normal_x, normal_y, offset]``, the occluded flags and the attribute latents).

    Parameters
    ----------
    root : path
        Output directory; replaced atomically (a half-written set never sits under this name).
    n : int
        Total number of images (train + val).
    seed : int
    config : WorldConfig, optional
    val_fraction : float
        Fraction of ``n`` in the validation split, in [0, 1).

    Returns
    -------
    root : Path
    """
    config = config or WorldConfig()
    _check_fraction("val_fraction", val_fraction)
    counts = _split_counts(n, {"val": val_fraction})
    with atomic_dir(root) as tmp:
        truth: dict[str, dict] = {}
        rows: dict[str, list[str]] = {"train": [], "val": []}
        for split, count in counts.items():
            for i in range(count):
                image, t = render_garment(config, item_generator(seed, split, i))
                image_id = f"Images/{t['category']}/{_hex_id(seed, split, i, 'kp')}.jpg"
                (tmp / image_id).parent.mkdir(parents=True, exist_ok=True)
                (tmp / image_id).write_bytes(_jpeg(image, config.jpeg_quality))
                cells = [_fashionai_cell(*p) for p in t["keypoints"].tolist()]
                rows[split].append(",".join([image_id, t["category"], *cells]))
                truth[image_id] = {
                    "split": split,
                    "axis": [*t["axis_normal"].tolist(), t["axis_offset"]],
                    "occluded": t["occluded"].astype(int).tolist(),
                    "latents": t["latents"],
                }
        (tmp / "Annotations").mkdir(exist_ok=True)
        for split, name in (("train", "train.csv"), ("val", "val.csv")):
            (tmp / "Annotations" / name).write_text("\n".join([FASHIONAI_HEADER, *rows[split]]) + "\n")
        test = ["image_id,image_category"] + [",".join(r.split(",")[:2]) for r in rows["val"]]
        (tmp / "test.csv").write_text("\n".join(test) + "\n")
        (tmp / "Annotations" / "synthetic_truth.json").write_text(json.dumps(truth, sort_keys=True))
    logger.info("wrote FashionAI key points to %s: %s", root, counts)
    return Path(root)


def write_fashionai_attributes(
    root: str | os.PathLike, n: int, seed: int, config: WorldConfig | None = None, val_fraction: float = 0.2
) -> Path:
    """Write a FashionAI attribute set in the real layout (data-formats.md, B).

    Layout under ``root``: ``Images/<AttrKey>/<32 hex>.jpg``; ``Annotations/label.csv`` (no header, one row per
    image: ``Images/<AttrKey>/<hash>.jpg,<AttrKey>,<label string>``, exactly one ``y``, ``m`` near a class
    boundary); ``Annotations/val.csv`` (the validation split, same row format). Each image shows a garment of a
    category the task applies to (:data:`TASK_CATEGORIES`); tasks cycle through the 8 AttrKeys.

    Parameters
    ----------
    root : path
    n : int
        Total number of images (train + val).
    seed : int
    config : WorldConfig, optional
    val_fraction : float
        In [0, 1).

    Returns
    -------
    root : Path
    """
    config = config or WorldConfig()
    _check_fraction("val_fraction", val_fraction)
    counts = _split_counts(n, {"val": val_fraction})
    tasks = tuple(FASHIONAI_TASKS)
    with atomic_dir(root) as tmp:
        rows: dict[str, list[str]] = {"train": [], "val": []}
        for split, count in counts.items():
            for i in range(count):
                task = tasks[i % len(tasks)]
                g = item_generator(seed, split, i)
                cats = TASK_CATEGORIES[task]
                category = cats[int(torch.randint(len(cats), (1,), generator=g))]
                image, t = render_garment(config, g, category=category)
                path = f"Images/{task}/{_hex_id(seed, split, i, 'attr')}.jpg"
                (tmp / path).parent.mkdir(parents=True, exist_ok=True)
                (tmp / path).write_bytes(_jpeg(image, config.jpeg_quality))
                label = "".join("nmy"[c] for c in t["attributes"][task].tolist())
                rows[split].append(f"{path},{task},{label}")
        (tmp / "Annotations").mkdir(exist_ok=True)
        for split, name in (("train", "label.csv"), ("val", "val.csv")):
            (tmp / "Annotations" / name).write_text("".join(r + "\n" for r in rows[split]))
    logger.info("wrote FashionAI attributes to %s: %s", root, counts)
    return Path(root)
