"""The key-point schemas' definitions as plain Python data: names, pairs, categories (no torch).

:mod:`fashion_lib.keypoints` turns each :class:`SchemaTable` into a :class:`~fashion_lib.keypoints.KeypointSchema`
of tensors; the refiner's command line reads the tables directly, so that it runs without importing torch
(:mod:`fashion_lib.refine_numpy`). Definitions live here only.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SchemaTable", "FASHIONAI", "COCO", "TABLES", "get_table"]


@dataclass(frozen=True)
class SchemaTable:
    """One schema's layout by point names (see :class:`fashion_lib.keypoints.KeypointSchema` for each field)."""

    name: str
    names: list[str]
    pair_names: list[str]
    pairs: list[tuple[str, str]]  # (left, right) names of each symmetric pair
    center: list[str]  # the non-symmetric points
    sigmas: list[float]
    sigmas_source: str
    categories: dict[str, list[str]]  # category -> the names of the points it has
    normalizer: dict[str, tuple[str, str]]
    edges: list[tuple[str, str]]

    def index(self, names: list[str] | tuple[str, ...]) -> list[int]:
        """The indices of ``names`` in :attr:`names`."""
        lookup = {n: i for i, n in enumerate(self.names)}
        return [lookup[n] for n in names]


# Column order of FashionAI's train.csv after image_id, image_category (data-formats.md, A.2).
_FASHIONAI_NAMES = [
    "neckline_left", "neckline_right", "center_front", "shoulder_left", "shoulder_right", "armpit_left",
    "armpit_right", "waistline_left", "waistline_right", "cuff_left_in", "cuff_left_out", "cuff_right_in",
    "cuff_right_out", "top_hem_left", "top_hem_right", "waistband_left", "waistband_right", "hemline_left",
    "hemline_right", "crotch", "bottom_left_in", "bottom_left_out", "bottom_right_in", "bottom_right_out",
]

_FASHIONAI_PAIRS = {
    "neckline": ("neckline_left", "neckline_right"),
    "shoulder": ("shoulder_left", "shoulder_right"),
    "armpit": ("armpit_left", "armpit_right"),
    "waistline": ("waistline_left", "waistline_right"),
    "cuff_in": ("cuff_left_in", "cuff_right_in"),
    "cuff_out": ("cuff_left_out", "cuff_right_out"),
    "top_hem": ("top_hem_left", "top_hem_right"),
    "waistband": ("waistband_left", "waistband_right"),
    "hemline": ("hemline_left", "hemline_right"),
    "bottom_in": ("bottom_left_in", "bottom_right_in"),
    "bottom_out": ("bottom_left_out", "bottom_right_out"),
}

_CUFFS = ["cuff_left_in", "cuff_left_out", "cuff_right_in", "cuff_right_out"]
_UPPER = ["neckline_left", "neckline_right", "shoulder_left", "shoulder_right", "armpit_left", "armpit_right"]
# Which points apply to each category (data-formats.md, A.2; the official Y/N table).
_FASHIONAI_CATEGORIES = {
    "blouse": _UPPER[:2] + ["center_front"] + _UPPER[2:] + _CUFFS + ["top_hem_left", "top_hem_right"],
    "outwear": _UPPER + ["waistline_left", "waistline_right"] + _CUFFS + ["top_hem_left", "top_hem_right"],
    "dress": _UPPER[:2] + ["center_front"] + _UPPER[2:] + ["waistline_left", "waistline_right"] + _CUFFS
    + ["hemline_left", "hemline_right"],
    "skirt": ["waistband_left", "waistband_right", "hemline_left", "hemline_right"],
    "trousers": ["waistband_left", "waistband_right", "crotch", "bottom_left_in", "bottom_left_out",
                 "bottom_right_in", "bottom_right_out"],
}

# No OKS constants were ever published for FashionAI. Our choice: each point borrows the COCO sigma of the body
# part it sits on (neckline ~ ears 0.035, centre front/shoulders 0.079, armpits and waist/waistband/hems/crotch
# ~ hips 0.107, cuffs ~ wrists 0.062, trouser bottoms ~ ankles 0.089). It only matters for OKS AP on FashionAI,
# which the paper does not report; NE is the paper's metric there.
_FASHIONAI_SIGMA_BY_PART = {
    "neckline": 0.035, "center_front": 0.079, "shoulder": 0.079, "armpit": 0.107, "waistline": 0.107,
    "cuff": 0.062, "top_hem": 0.107, "waistband": 0.107, "hemline": 0.107, "crotch": 0.107, "bottom": 0.089,
}


def _fashionai_sigma(point: str) -> float:
    for part, sigma in _FASHIONAI_SIGMA_BY_PART.items():
        if point.startswith(part):
            return sigma
    raise AssertionError(point)  # unreachable: every FashionAI name starts with a listed part


_FASHIONAI_EDGES = [
    ("neckline_left", "neckline_right"), ("neckline_left", "shoulder_left"), ("neckline_right", "shoulder_right"),
    ("shoulder_left", "cuff_left_out"), ("shoulder_right", "cuff_right_out"), ("cuff_left_out", "cuff_left_in"),
    ("cuff_right_out", "cuff_right_in"), ("cuff_left_in", "armpit_left"), ("cuff_right_in", "armpit_right"),
    ("armpit_left", "waistline_left"), ("armpit_right", "waistline_right"), ("waistline_left", "hemline_left"),
    ("waistline_right", "hemline_right"), ("armpit_left", "top_hem_left"), ("armpit_right", "top_hem_right"),
    ("top_hem_left", "top_hem_right"), ("hemline_left", "hemline_right"), ("waistband_left", "waistband_right"),
    ("waistband_left", "hemline_left"), ("waistband_right", "hemline_right"), ("waistband_left", "bottom_left_out"),
    ("waistband_right", "bottom_right_out"), ("bottom_left_out", "bottom_left_in"),
    ("bottom_right_out", "bottom_right_in"), ("bottom_left_in", "crotch"), ("bottom_right_in", "crotch"),
]

FASHIONAI = SchemaTable(
    name="fashionai",
    names=_FASHIONAI_NAMES,
    pair_names=list(_FASHIONAI_PAIRS),
    pairs=list(_FASHIONAI_PAIRS.values()),
    center=["center_front", "crotch"],
    sigmas=[_fashionai_sigma(n) for n in _FASHIONAI_NAMES],
    sigmas_source="ours: each point takes the COCO sigma of the body part it lies on (no official FashionAI OKS)",
    categories=_FASHIONAI_CATEGORIES,
    normalizer={
        "blouse": ("armpit_left", "armpit_right"),
        "outwear": ("armpit_left", "armpit_right"),
        "dress": ("armpit_left", "armpit_right"),
        "skirt": ("waistband_left", "waistband_right"),
        "trousers": ("waistband_left", "waistband_right"),
    },
    edges=_FASHIONAI_EDGES,
)

_COCO_NAMES = [
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder", "left_elbow",
    "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle",
    "right_ankle",
]
_COCO_PARTS = ["eye", "ear", "shoulder", "elbow", "wrist", "hip", "knee", "ankle"]
# 1-based skeleton of the COCO category entry (data-formats.md, D.1).
_COCO_SKELETON = [
    [16, 14], [14, 12], [17, 15], [15, 13], [12, 13], [6, 12], [7, 13], [6, 7], [6, 8], [7, 9], [8, 10], [9, 11],
    [2, 3], [1, 2], [1, 3], [2, 4], [3, 5], [4, 6], [5, 7],
]

COCO = SchemaTable(
    name="coco",
    names=_COCO_NAMES,
    pair_names=_COCO_PARTS,
    pairs=[(f"left_{p}", f"right_{p}") for p in _COCO_PARTS],
    center=["nose"],
    # cocoapi cocoeval.py, Params.setKpParams
    sigmas=[s / 10 for s in (.26, .25, .25, .35, .35, .79, .79, .72, .72, .62, .62, 1.07, 1.07, .87, .87, .89, .89)],
    sigmas_source="COCO: cocoapi cocoeval.py Params.setKpParams",
    categories={"person": _COCO_NAMES},
    # NE is not COCO's metric; the shoulder distance plays the armpit distance's role where a study wants it.
    normalizer={"person": ("left_shoulder", "right_shoulder")},
    edges=[(_COCO_NAMES[a - 1], _COCO_NAMES[b - 1]) for a, b in _COCO_SKELETON],
)

TABLES: dict[str, SchemaTable] = {"fashionai": FASHIONAI, "coco": COCO}


def get_table(name: str) -> SchemaTable:
    """The table of the schema called ``name``; ``ValueError`` listing the valid names."""
    try:
        return TABLES[name]
    except (KeyError, TypeError):
        raise ValueError(f"schema must be one of {sorted(TABLES)}, got {name!r}") from None
