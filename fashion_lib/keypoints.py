"""Key-point schemas: FashionAI's 24 apparel points and COCO's 17 person points.

Paper, section IV.A: "In FashionAI dataset, images have a totally of 24 (10 paired mid-points and 4 non-symmetric
points) key-points" and "In coco2017, there are 17 (8 pairs of mid-points and 1 non-symmetric point) human
key-points". The paper's FashionAI count does not add up; the data set's own column names give 11 left/right
pairs and 2 non-symmetric points (``center_front``, ``crotch``), and that is what we use (study notes,
"Key-point sets").

One visibility convention holds across the library, COCO's: ``0`` absent (not labelled, coordinates 0),
``1`` labelled but occluded, ``2`` labelled and visible. Loaders map other conventions onto it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch

__all__ = [
    "ABSENT",
    "OCCLUDED",
    "VISIBLE",
    "KeypointSchema",
    "FASHIONAI",
    "COCO",
    "SCHEMAS",
    "get_schema",
    "missing_mask",
    "keypoint_extent",
]

ABSENT = 0
OCCLUDED = 1
VISIBLE = 2


@dataclass(frozen=True, eq=False)
class KeypointSchema:
    """A named key-point layout with its left/right symmetry.

    Tensors are created once and must be treated as read-only (a frozen dataclass cannot stop in-place writes).
    """

    name: str
    """Short name, as used in parameters and on the command line (``"fashionai"``, ``"coco"``)."""
    names: tuple[str, ...]
    """The data set's own point names, in the data set's column / array order (length ``K``)."""
    pairs: torch.Tensor
    """``(P, 2)`` long: ``[left, right]`` indices of each symmetric pair."""
    pair_names: tuple[str, ...]
    """``P`` names of the pairs (the point name without its side)."""
    center: torch.Tensor
    """``(C,)`` long: indices of the non-symmetric points, which lie on the symmetry axis."""
    flip: torch.Tensor
    """``(K,)`` long: permutation that swaps left and right; ``flip[flip] == arange(K)``."""
    sigmas: torch.Tensor
    """``(K,)`` float: OKS per-point constants (COCO's definition: ``kappa = 2 * sigma``)."""
    sigmas_source: str
    """Where :attr:`sigmas` come from (COCO's published values, or our documented choice for FashionAI)."""
    categories: Mapping[str, torch.Tensor]
    """Category name -> ``(K_c,)`` long indices of the points that category has."""
    normalizer: Mapping[str, tuple[int, int]]
    """Category name -> the two point indices whose ground-truth distance normalises the error (NE)."""
    edges: tuple[tuple[int, int], ...] = field(default=())
    """Point index pairs to draw as lines (a skeleton or a garment outline); for figures only."""

    @property
    def num_keypoints(self) -> int:
        """``K``, the number of points."""
        return len(self.names)

    @property
    def num_pairs(self) -> int:
        """``P``, the number of left/right pairs."""
        return int(self.pairs.shape[0])

    def index(self, name: str) -> int:
        """Index of the point called ``name``; raises ``KeyError`` listing the valid names."""
        try:
            return self.names.index(name)
        except ValueError:
            raise KeyError(f"{self.name} schema has no key point {name!r}; "
                           f"valid names: {', '.join(self.names)}") from None

    def category_mask(self, category: str) -> torch.Tensor:
        """``(K,)`` bool: which points ``category`` has. Raises ``KeyError`` listing the valid categories."""
        if category not in self.categories:
            raise KeyError(f"{self.name} schema has no category {category!r}; valid: {', '.join(self.categories)}")
        mask = torch.zeros(self.num_keypoints, dtype=torch.bool)
        mask[self.categories[category]] = True
        return mask

    def category_pairs(self, category: str) -> torch.Tensor:
        """``(P,)`` bool: which pairs have both points in ``category``."""
        mask = self.category_mask(category)
        return mask[self.pairs].all(dim=1)


def _build(
    name: str,
    names: list[str],
    pair_names: list[str],
    pairs: list[tuple[str, str]],
    center: list[str],
    sigmas: list[float],
    sigmas_source: str,
    categories: dict[str, list[str]],
    normalizer: dict[str, tuple[str, str]],
    edges: list[tuple[str, str]],
) -> KeypointSchema:
    idx = {n: i for i, n in enumerate(names)}
    pair_idx = torch.tensor([[idx[a], idx[b]] for a, b in pairs], dtype=torch.long)
    flip = torch.arange(len(names))
    flip[pair_idx[:, 0]] = pair_idx[:, 1]
    flip[pair_idx[:, 1]] = pair_idx[:, 0]
    return KeypointSchema(
        name=name,
        names=tuple(names),
        pairs=pair_idx,
        pair_names=tuple(pair_names),
        center=torch.tensor([idx[c] for c in center], dtype=torch.long),
        flip=flip,
        sigmas=torch.tensor(sigmas, dtype=torch.float32),
        sigmas_source=sigmas_source,
        categories={c: torch.tensor([idx[p] for p in pts], dtype=torch.long) for c, pts in categories.items()},
        normalizer={c: (idx[a], idx[b]) for c, (a, b) in normalizer.items()},
        edges=tuple((idx[a], idx[b]) for a, b in edges),
    )


# Column order of FashionAI's train.csv after image_id, image_category (data-formats.md, A.2).
_FASHIONAI_NAMES = [
    "neckline_left", "neckline_right", "center_front", "shoulder_left", "shoulder_right", "armpit_left",
    "armpit_right", "waistline_left", "waistline_right", "cuff_left_in", "cuff_left_out", "cuff_right_in",
    "cuff_right_out", "top_hem_left", "top_hem_right", "waistband_left", "waistband_right", "hemline_left",
    "hemline_right", "crotch", "bottom_left_in", "bottom_left_out", "bottom_right_in", "bottom_right_out",
]  # fmt: skip

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
}  # fmt: skip

# No OKS constants were ever published for FashionAI. Our choice: each point borrows the COCO sigma of the body
# part it sits on (neckline ~ ears 0.035, centre front/shoulders 0.079, armpits and waist/waistband/hems/crotch
# ~ hips 0.107, cuffs ~ wrists 0.062, trouser bottoms ~ ankles 0.089). It only matters for OKS AP on FashionAI,
# which the paper does not report; NE is the paper's metric there.
_FASHIONAI_SIGMA_BY_PART = {
    "neckline": 0.035, "center_front": 0.079, "shoulder": 0.079, "armpit": 0.107, "waistline": 0.107,
    "cuff": 0.062, "top_hem": 0.107, "waistband": 0.107, "hemline": 0.107, "crotch": 0.107, "bottom": 0.089,
}  # fmt: skip


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
]  # fmt: skip

FASHIONAI = _build(
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
]  # fmt: skip
_COCO_PARTS = ["eye", "ear", "shoulder", "elbow", "wrist", "hip", "knee", "ankle"]
# 1-based skeleton of the COCO category entry (data-formats.md, D.1).
_COCO_SKELETON = [
    [16, 14], [14, 12], [17, 15], [15, 13], [12, 13], [6, 12], [7, 13], [6, 7], [6, 8], [7, 9], [8, 10], [9, 11],
    [2, 3], [1, 2], [1, 3], [2, 4], [3, 5], [4, 6], [5, 7],
]  # fmt: skip

COCO = _build(
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

SCHEMAS: dict[str, KeypointSchema] = {"fashionai": FASHIONAI, "coco": COCO}


def get_schema(name: str | KeypointSchema) -> KeypointSchema:
    """The schema called ``name`` (``"fashionai"`` or ``"coco"``); a schema passes through unchanged."""
    if isinstance(name, KeypointSchema):
        return name
    try:
        return SCHEMAS[name]
    except KeyError:
        raise ValueError(f"schema must be one of {sorted(SCHEMAS)}, got {name!r}") from None


def missing_mask(keypoints: torch.Tensor, score_threshold: float = 0.0, *, dim: int = -1) -> torch.Tensor:
    """Which points are missing: third channel ``<= score_threshold`` or a non-finite coordinate.

    Parameters
    ----------
    keypoints : (B, K, 3) float, x, y in pixels and a score or COCO visibility (0 absent, 1 occluded, 2 visible).
    score_threshold : float; with visibility input 0 means "v == 0 is missing".
    dim : int, the dimension of the three channels (the refiner passes batch-last ``(K, 3, B)`` with ``dim=1``).

    Returns
    -------
    (B, K) bool: ``keypoints``' shape without ``dim``.
    """
    x, y, score = keypoints.unbind(dim)
    # A NaN score compares False with everything: count it as missing rather than present.
    return ~(torch.isfinite(x) & torch.isfinite(y) & (score > score_threshold))


def keypoint_extent(keypoints: torch.Tensor, height: torch.Tensor | float, width: torch.Tensor | float) -> torch.Tensor:
    """How much of its frame each instance's key points span: the box closing its labelled points (v > 0), its
    width over the image width and its height over the image height, the larger of the two. For a square image,
    the box's longer side over the image side: the framing figure of ``shared/real-data-facts.md`` (real FashionAI
    garments: 0.32 to 0.92 from the 5th to the 95th percentile).

    Parameters
    ----------
    keypoints : (N, K, 3) float, x, y in pixels, v in {0, 1, 2}; points with v = 0 are ignored.
    height, width : numbers or (N,) float, pixels: each instance's image size.

    Returns
    -------
    (N,) float, >= 0 (1: the points reach across the whole frame); NaN for an instance without labelled points.
    """
    if keypoints.ndim != 3 or keypoints.shape[-1] != 3:
        raise ValueError(f"keypoints must have shape (N, K, 3), got {tuple(keypoints.shape)}")
    n = keypoints.shape[0]
    h = torch.as_tensor(height, dtype=keypoints.dtype, device=keypoints.device).expand(n)
    w = torch.as_tensor(width, dtype=keypoints.dtype, device=keypoints.device).expand(n)
    if not bool((h > 0).all() and (w > 0).all()):
        raise ValueError(f"height and width must be > 0, got {height} x {width}")
    present = (keypoints[..., 2] > 0)[..., None]  # (N, K, 1)
    xy = keypoints[..., :2]
    span = torch.where(present, xy, torch.inf).amin(1).neg_().add_(torch.where(present, xy, -torch.inf).amax(1))
    extent = torch.maximum(span[:, 0] / w, span[:, 1] / h)  # (N,)
    return torch.where(present.any(1)[:, 0], extent, torch.full_like(extent, math.nan))
