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

from fashion_lib import keypoint_tables as tables
from fashion_lib.keypoint_tables import SchemaTable

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


def _build(table: SchemaTable) -> KeypointSchema:
    """The schema of ``table`` as tensors."""
    pair_idx = torch.tensor([table.index(pair) for pair in table.pairs], dtype=torch.long)
    flip = torch.arange(len(table.names))
    flip[pair_idx[:, 0]] = pair_idx[:, 1]
    flip[pair_idx[:, 1]] = pair_idx[:, 0]
    return KeypointSchema(
        name=table.name,
        names=tuple(table.names),
        pairs=pair_idx,
        pair_names=tuple(table.pair_names),
        center=torch.tensor(table.index(table.center), dtype=torch.long),
        flip=flip,
        sigmas=torch.tensor(table.sigmas, dtype=torch.float32),
        sigmas_source=table.sigmas_source,
        categories={c: torch.tensor(table.index(pts), dtype=torch.long) for c, pts in table.categories.items()},
        normalizer={c: tuple(table.index(pair)) for c, pair in table.normalizer.items()},
        edges=tuple(tuple(table.index(edge)) for edge in table.edges),
    )


FASHIONAI = _build(tables.FASHIONAI)
COCO = _build(tables.COCO)

SCHEMAS: dict[str, KeypointSchema] = {"fashionai": FASHIONAI, "coco": COCO}


def get_schema(name: str | KeypointSchema) -> KeypointSchema:
    """The schema called ``name`` (``"fashionai"`` or ``"coco"``); a schema passes through unchanged."""
    if isinstance(name, KeypointSchema):
        return name
    return SCHEMAS[tables.get_table(name).name]  # get_table names the valid schemas


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
