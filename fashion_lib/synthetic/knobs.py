"""Measuring what the synthetic world's knobs do, and the same figures on real garments.

Symmetry about the true axis, occlusion and label statistics of rendered instances, and the figures of
``real-data-facts.md`` (how much of the frame a garment's key points span, how much of it is occluded, how far a
point lies from its partner's mirror image), computed alike on the synthetic world and on real FashionAI rows, so
that the world can be set to look like the real data (:data:`REAL_FASHIONAI_FACTS`). Pure tensor functions over
batches of instances, used by the data-tour notebook and the tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch

from fashion_lib.attributes import M, Y
from fashion_lib.keypoints import FASHIONAI, OCCLUDED, VISIBLE, KeypointSchema, keypoint_extent

__all__ = ["pair_axis_offsets", "occluded_fraction", "label_rates", "occluded_shares",
           "mirror_errors", "MirrorErrors", "garment_facts", "REAL_FASHIONAI_FACTS", "FACT_QUANTILES"]


def pair_axis_offsets(keypoints: torch.Tensor, axis: torch.Tensor, schema: KeypointSchema) -> torch.Tensor:
    """Signed distance of every left/right pair's midpoint from the instance's symmetry axis.

    With no pose asymmetry and no perspective the true axis bisects every complete pair, so these are 0; the
    asymmetry knob moves them away.

    Parameters
    ----------
    keypoints : (N, K, 3) float
        x, y in pixels, v in {0, 1, 2}; ``K = schema.num_keypoints``.
    axis : (N, 3) float
        ``[normal_x, normal_y, offset]`` of the line ``{p : normal . p = offset}`` (unit normal, offset in pixels);
        all zeros for an instance without an axis (a crowd region).
    schema : KeypointSchema
        Gives the pairs.

    Returns
    -------
    offsets : (N, P) float, pixels; NaN where a point of the pair is absent or the instance has no axis.
    """
    if keypoints.ndim != 3 or keypoints.shape[1:] != (schema.num_keypoints, 3):
        raise ValueError(f"keypoints must have shape (N, {schema.num_keypoints}, 3), got {tuple(keypoints.shape)}")
    if axis.shape != (keypoints.shape[0], 3):
        raise ValueError(f"axis must have shape ({keypoints.shape[0]}, 3), got {tuple(axis.shape)}")
    left, right = keypoints[:, schema.pairs[:, 0]], keypoints[:, schema.pairs[:, 1]]  # (N, P, 3) each
    mid = (left[..., :2] + right[..., :2]) / 2  # (N, P, 2)
    offsets = (mid * axis[:, None, :2]).sum(-1) - axis[:, None, 2]  # (N, P)
    complete = (left[..., 2] > 0) & (right[..., 2] > 0) & (axis[:, :2] != 0).any(1, keepdim=True)
    return torch.where(complete, offsets, torch.full_like(offsets, float("nan")))


def occluded_fraction(keypoints: torch.Tensor) -> torch.Tensor:
    """Fraction of the labelled points (v > 0) of ``(..., K, 3)`` key points that are occluded (v = 1); a 0-d
    float tensor, NaN when nothing is labelled."""
    v = keypoints[..., 2]
    return (v == OCCLUDED).sum() / (v > 0).sum()


def label_rates(codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Class distribution and ``m`` rate of one attribute task's labels.

    Parameters
    ----------
    codes : (B, C) int64
        Label codes :data:`~fashion_lib.attributes.Y` / ``M`` / ``N`` of ``B`` items.

    Returns
    -------
    y_share : (C,) float, the fraction of items whose ``y`` is each class; m_rate : 0-d float, the fraction of
    items with at least one ``m``.
    """
    if codes.ndim != 2:
        raise ValueError(f"codes must have shape (B, C), got {tuple(codes.shape)}")
    b = max(codes.shape[0], 1)
    return (codes == Y).sum(0).float() / b, (codes == M).any(1).float().sum() / b


# ----------------------------------------------------------------------------------------------------------------
# The figures of real-data-facts.md: framing, occlusion and the symmetry of real garments
# ----------------------------------------------------------------------------------------------------------------

FACT_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
"""The quantiles at which the extent is reported (real-data-facts.md)."""

REAL_FASHIONAI_FACTS: dict[str, float] = {
    "source": "real-data-facts.md: 6,415 garments of the validation split of the public repository tabsun/FashionAI "
              "(data/train/val.csv, official 26-column format, 512 x 512 images)",
    "extent 5 %": 0.32, "extent 25 %": 0.50, "extent 50 %": 0.67, "extent 75 %": 0.79, "extent 95 %": 0.92,
    "occluded 50 %": 0.13, "occluded 95 %": 0.50, "occluded mean": 0.141,
    "mirror visible, all pairs": 0.071, "mirror occluded, all pairs": 0.144,
    "mirror visible, neckline": 0.044, "mirror occluded, neckline": 0.120,
    "mirror visible, shoulder": 0.057, "mirror occluded, shoulder": 0.174,
    "mirror visible, armpit": 0.054, "mirror occluded, armpit": 0.116,
    "mirror visible, waistline": 0.052, "mirror occluded, waistline": 0.112,
    "mirror visible, cuff_in": 0.096, "mirror occluded, cuff_in": 0.178,
    "mirror visible, cuff_out": 0.101, "mirror occluded, cuff_out": 0.233,
    "mirror visible, top_hem": 0.092, "mirror occluded, top_hem": 0.241,
    "mirror visible, hemline": 0.143, "mirror occluded, hemline": 0.508,
}
"""The real FashionAI figures, measured once on real annotations (``source``), under the names of
:func:`garment_facts`; a figure's value is a fraction (extent: of the image side; mirror: of the NE normaliser)."""


def _check_keypoints(keypoints: torch.Tensor, schema: KeypointSchema) -> None:
    if keypoints.ndim != 3 or keypoints.shape[1:] != (schema.num_keypoints, 3):
        raise ValueError(f"keypoints must have shape (N, {schema.num_keypoints}, 3), got {tuple(keypoints.shape)}")


def occluded_shares(keypoints: torch.Tensor) -> torch.Tensor:
    """Per instance, the fraction of its present points (v > 0) that are occluded (v = 1): (N,) float from
    ``(N, K, 3)`` key points, NaN for an instance without present points (:func:`occluded_fraction` pools them)."""
    v = keypoints[..., 2]
    return (v == OCCLUDED).sum(-1) / (v > 0).sum(-1)


class MirrorErrors(NamedTuple):
    """Each point predicted as its partner's mirror image (:func:`mirror_errors`)."""

    error: torch.Tensor  # (N, K) float: distance to the truth / the NE normaliser; NaN where not measured
    visible: torch.Tensor  # (N, K) bool: a visible point measured from its visible partner
    occluded: torch.Tensor  # (N, K) bool: an occluded point measured from its visible partner


def mirror_errors(keypoints: torch.Tensor, categories: Sequence[str], *, schema: KeypointSchema = FASHIONAI,
                  min_pairs: int = 3) -> MirrorErrors:
    """How far each point lies from its partner's mirror image across the garment's own symmetry axis.

    real-data-facts.md, "How symmetric are real garments?": for every left/right pair, each point is predicted
    as the mirror image of its partner across the axis fitted by total least squares through the midpoints of the
    garment's *other* fully visible pairs (at least ``min_pairs`` of them); the error is the distance to the true
    point divided by the garment's NE normaliser (armpit distance; waistband for skirts and trousers). The
    partner must be visible; the point itself visible or occluded. This is the accuracy of the paper's prior on
    the garment's own geometry, with perfect partner points.

    Algorithm: per garment and pair, the other fully visible pairs' midpoints (weights 1, the rest 0) give a
    centroid ``c`` and a 2 x 2 scatter matrix; its eigenvector of the smaller eigenvalue is the axis' unit normal
    ``u`` (the line through ``c`` along the midpoints). A partner ``q`` mirrors to ``q - 2 u (u . (q - c))``.

    Parameters
    ----------
    keypoints : (N, K, 3) float, x, y in pixels, v in {0 absent, 1 occluded, 2 visible}.
    categories : N category names of ``schema`` (they give the normaliser).
    schema : KeypointSchema, the pairs and normalisers (FashionAI by default).
    min_pairs : int >= 2, the fewest other fully visible pairs an axis is fitted through.

    Returns
    -------
    MirrorErrors: ``error`` (N, K) and the masks ``visible``, ``occluded`` (N, K) of the points measured.
    """
    _check_keypoints(keypoints, schema)
    if len(categories) != keypoints.shape[0]:
        raise ValueError(f"categories has {len(categories)} names, expected N = {keypoints.shape[0]}")
    if not isinstance(min_pairs, int) or min_pairs < 2:
        raise ValueError(f"min_pairs must be an integer >= 2 (two midpoints fix a line), got {min_pairs!r}")
    unknown = sorted(set(categories) - set(schema.normalizer))
    if unknown:
        raise ValueError(f"categories has {unknown}, not categories of the {schema.name} schema")
    kp = keypoints.double()
    N, P = kp.shape[0], schema.num_pairs
    left, right = kp[:, schema.pairs[:, 0]], kp[:, schema.pairs[:, 1]]  # (N, P, 3) each
    both = (left[..., 2] == VISIBLE) & (right[..., 2] == VISIBLE)  # (N, P) fully visible pairs
    mid = (left[..., :2] + right[..., :2]) / 2  # (N, P, 2)
    others = both[:, None, :] & ~torch.eye(P, dtype=torch.bool)[None]  # (N, P, Q): pair q serves pair p's axis
    w = others.double()
    count = w.sum(-1)  # (N, P)
    centre = (w[..., None] * mid[:, None]).sum(2) / count.clamp(min=1)[..., None]  # (N, P, 2)
    d = mid[:, None] - centre[:, :, None]  # (N, P, Q, 2)
    scatter = torch.einsum("npq,npqi,npqj->npij", w, d, d)  # (N, P, 2, 2)
    _, vectors = torch.linalg.eigh(scatter + 1e-12 * torch.eye(2, dtype=kp.dtype))
    normal = vectors[..., :, 0]  # (N, P, 2): the eigenvector of the smaller eigenvalue
    has_axis = count >= min_pairs  # (N, P)

    def mirror(q: torch.Tensor) -> torch.Tensor:  # (N, P, 2) -> its mirror image across each pair's axis
        return q - 2 * normal * ((q - centre) * normal).sum(-1, keepdim=True)

    a, b = _normalizers(schema, categories)
    rows = torch.arange(N)
    scale = (kp[rows, a, :2] - kp[rows, b, :2]).norm(dim=-1)  # (N,)
    error = torch.full((N, schema.num_keypoints), float("nan"), dtype=kp.dtype)
    vis = torch.zeros(N, schema.num_keypoints, dtype=torch.bool)
    occ = torch.zeros_like(vis)
    for side, point, partner in ((0, left, right), (1, right, left)):  # the two directions of every pair
        idx = schema.pairs[:, side]
        measured = has_axis & (partner[..., 2] == VISIBLE) & (point[..., 2] > 0) & (scale[:, None] > 0)
        dist = (mirror(partner[..., :2]) - point[..., :2]).norm(dim=-1) / scale[:, None]  # (N, P)
        error[:, idx] = torch.where(measured, dist, torch.nan)
        vis[:, idx] = measured & (point[..., 2] == VISIBLE)
        occ[:, idx] = measured & (point[..., 2] == OCCLUDED)
    return MirrorErrors(error.to(keypoints.dtype), vis, occ)


def _normalizers(schema: KeypointSchema, categories: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """(N,) long each: the two points whose distance normalises each instance's error (NE)."""
    pairs = torch.tensor([schema.normalizer[c] for c in categories], dtype=torch.long).reshape(-1, 2)
    return pairs[:, 0], pairs[:, 1]


def garment_facts(keypoints: torch.Tensor, categories: Sequence[str], image_sides: torch.Tensor | float, *,
                  schema: KeypointSchema = FASHIONAI) -> dict[str, float]:
    """The figures of :data:`REAL_FASHIONAI_FACTS`, under the same names, measured on ``N`` garments.

    Extent quantiles (:func:`keypoint_extent`), the median, 95th percentile and mean of the per-garment occluded
    share (:func:`occluded_shares`), and the median mirror error (:func:`mirror_errors`) of visible and of
    occluded points, over all pairs and per pair (NaN where no point was measured), with ``n ...`` counts.

    Parameters
    ----------
    keypoints : (N, K, 3) float; categories : N names; image_sides : (N,) float or a number, pixels.
    """
    _check_keypoints(keypoints, schema)
    facts: dict[str, float] = {}
    extent = keypoint_extent(keypoints, image_sides, image_sides)
    extent = extent[~extent.isnan()].double()
    q = torch.quantile(extent, torch.tensor(FACT_QUANTILES, dtype=torch.float64)) if len(extent) else None
    for i, level in enumerate(FACT_QUANTILES):
        facts[f"extent {round(100 * level)} %"] = float(q[i]) if q is not None else float("nan")
    shares = occluded_shares(keypoints)
    shares = shares[~shares.isnan()].double()
    facts["occluded 50 %"] = float(shares.quantile(0.5)) if len(shares) else float("nan")
    facts["occluded 95 %"] = float(shares.quantile(0.95)) if len(shares) else float("nan")
    facts["occluded mean"] = float(shares.mean()) if len(shares) else float("nan")
    m = mirror_errors(keypoints, categories, schema=schema)
    groups = [("all pairs", torch.ones(schema.num_keypoints, dtype=torch.bool))]
    for name, (i, j) in zip(schema.pair_names, schema.pairs.tolist(), strict=True):
        cols = torch.zeros(schema.num_keypoints, dtype=torch.bool)
        cols[[i, j]] = True
        groups.append((name, cols))
    for kind, mask in (("visible", m.visible), ("occluded", m.occluded)):
        for name, cols in groups:
            values = m.error[mask & cols[None]]
            facts[f"mirror {kind}, {name}"] = float(values.median()) if len(values) else float("nan")
            facts[f"n mirror {kind}, {name}"] = len(values)
    return facts
