"""Measuring what the synthetic world's knobs do: symmetry about the true axis, occlusion and label statistics.

Pure tensor functions over batches of rendered instances, used by the data-tour notebook and the tests.
"""

from __future__ import annotations

import torch

from fashion_lib.attributes import M, Y
from fashion_lib.keypoints import OCCLUDED, KeypointSchema

__all__ = ["pair_axis_offsets", "occluded_fraction", "label_rates"]


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
