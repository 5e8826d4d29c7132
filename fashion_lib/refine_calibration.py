"""The missing-point rule of the refiner, calibrated on held-out images (Youden's J).

A point counts as missing when its detector score is at or below ``RefineConfig.score_threshold`` (voting) or
``RefineConfig.fill_threshold`` (filling). :func:`calibrate_missing_threshold` picks such a threshold from held-out
ground truth (visible against occluded-or-absent points); the key-point pages of the book set it per detector.
Re-exported by :mod:`fashion_lib.refine`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

__all__ = ["MissingCalibration", "calibrate_missing_threshold"]


@dataclass(frozen=True)
class MissingCalibration:
    """The score threshold below which a point counts as missing, and how well it separates (its figures)."""

    threshold: float  # a point scoring <= this is missing (RefineConfig.score_threshold); -inf: none flagged
    youden_j: float  # sensitivity + specificity - 1 at the threshold, in [-1, 1] (0: no better than chance)
    sensitivity: float  # fraction of occluded-or-absent points flagged missing
    specificity: float  # fraction of visible points kept
    visible: int  # visible ground-truth points calibrated on
    hidden: int  # occluded-or-absent ones

    @property
    def balanced_accuracy(self) -> float:
        """Mean of sensitivity and specificity, ``(1 + J) / 2``: the same choice as Youden's J."""
        return 0.5 * (self.sensitivity + self.specificity)


def calibrate_missing_threshold(scores: torch.Tensor, visible: torch.Tensor) -> MissingCalibration:
    """The score threshold that best separates visible points from occluded-or-absent ones (Youden's J).

    The rule "missing when the score is ``<= t``" flags the occluded-or-absent points it should (sensitivity) and
    keeps the visible ones (specificity); ``t`` maximises Youden's ``J = sensitivity + specificity - 1``, i.e.
    balanced accuracy, which does not depend on how many points of each kind there are (occluded points are a
    minority). Every cut between two distinct sorted scores is tried at once (cumulative sums); the threshold is
    the midpoint of the cut, ties going to the lowest threshold (fewest points flagged). When no cut beats
    chance, ``t = -inf`` (nothing is flagged). NaN scores count as the lowest.

    Parameters
    ----------
    scores : (N,) float, the detector's confidence of N ground-truth points (held-out images, never validation).
    visible : (N,) bool, the ground truth marks the point visible (False: occluded or absent).

    Returns
    -------
    MissingCalibration
    """
    if scores.ndim != 1 or visible.shape != scores.shape or visible.dtype != torch.bool:
        raise ValueError(f"scores must be (N,) float and visible (N,) bool, got {tuple(scores.shape)} "
                         f"{scores.dtype} and {tuple(visible.shape)} {visible.dtype}")
    n_vis, n_hid = int(visible.sum()), int((~visible).sum())
    if not n_vis or not n_hid:
        raise ValueError(f"calibrate_missing_threshold needs visible and hidden points, got {n_vis} visible and "
                         f"{n_hid} occluded or absent")
    s = torch.nan_to_num(scores.double(), nan=-math.inf)
    s, order = torch.sort(s, stable=True)
    vis = visible[order].double()
    # a cut after position i (i = 0..N) flags the i lowest scores; J at each cut
    flagged_hidden = torch.cat([s.new_zeros(1), (1 - vis).cumsum(0)])  # (N + 1,)
    flagged_visible = torch.cat([s.new_zeros(1), vis.cumsum(0)])
    sens, spec = flagged_hidden / n_hid, 1 - flagged_visible / n_vis
    j = sens + spec - 1
    N = len(s)
    cut = torch.ones(N + 1, dtype=torch.bool)
    cut[1:N] = s[1:] > s[:-1]  # only between distinct scores
    best = int(torch.where(cut, j, torch.full_like(j, -math.inf)).argmax())  # first maximum: lowest threshold
    if float(j[best]) <= 0.0:  # J is 0 at both ends (nothing or everything flagged): no cut beats chance
        best, threshold = 0, -math.inf
    else:
        threshold = float(0.5 * (s[best - 1] + s[best]))
    return MissingCalibration(threshold=threshold, youden_j=float(j[best]), sensitivity=float(sens[best]),
                              specificity=float(spec[best]), visible=n_vis, hidden=n_hid)
