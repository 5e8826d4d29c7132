"""The "maybe"-weighted cross-entropy of FashionAI attribute labels (paper, section III.B).

FashionAI labels every class of a task ``y`` (yes), ``m`` ("maybe") or ``n`` (no). The paper's multi-label loss
keeps the "maybe" information as soft targets::

    Loss = - sum_i sum_j W_ij log p_ij,   W_ij = beta          if GT_ij = m
                                                 1 - t_i beta  if GT_ij = y
                                                 0             if GT_ij = n

with ``p_i = softmax(logits_i)`` over the task's classes and ``t_i`` the number of ``m`` labels of sample ``i``. We
divide by the number of samples ``B`` so that the learning rate does not depend on the batch size (study notes,
"The maybe loss"). The paper uses ``beta = 0.1``. Without the loss (the ablation baseline) the target is the
``y`` class alone: ``beta = 0``, which is plain cross-entropy on the ``y`` class.

The label codes :data:`Y`, :data:`M`, :data:`N` are defined once, in :mod:`fashion_lib.attributes`, and
re-exported here.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from fashion_lib.attributes import M, N, Y

__all__ = ["Y", "M", "N", "maybe_weights", "maybe_weighted_ce", "plain_ce"]


def _check(logits: torch.Tensor, labels: torch.Tensor) -> None:
    if not isinstance(logits, torch.Tensor) or logits.ndim != 2 or not logits.is_floating_point():
        got = f"shape {tuple(logits.shape)} dtype {logits.dtype}" if isinstance(logits, torch.Tensor) else type(logits)
        raise ValueError(f"logits must be a (B, C) float tensor, got {got}")
    if not isinstance(labels, torch.Tensor) or labels.shape != logits.shape:
        got = tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels).__name__
        raise ValueError(f"labels must be a tensor of the shape of logits {tuple(logits.shape)}, got {got}")
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise ValueError(f"labels must hold integer codes N={N}, M={M}, Y={Y}, got dtype {labels.dtype}")
    bad = (labels != Y) & (labels != M) & (labels != N)
    if labels.numel() and bool(bad.any()):
        i, j = (int(v) for v in torch.nonzero(bad)[0])
        raise ValueError(f"labels[{i}, {j}] = {int(labels[i, j])}: expected a code N={N}, M={M} or Y={Y} "
                         "(fashion_lib.attributes.parse_label_string)")


def maybe_weights(labels: torch.Tensor, beta: float | None) -> torch.Tensor:
    """The weights ``W`` of the "maybe" loss.

    Parameters
    ----------
    labels : (B, C) integer
        Codes :data:`Y`, :data:`M`, :data:`N`.
    beta : float or None
        Weight of an ``m`` label, ``>= 0``; ``None`` (or 0) gives the baseline weights: 1 on ``y``, 0 elsewhere.

    Returns
    -------
    W : (B, C) float32 on the device of ``labels``.

    Raises
    ------
    ValueError
        ``beta`` negative or not finite, or ``1 - t * beta <= 0`` for a sample of the batch; the message names
        ``beta`` and the largest ``t`` in the batch.
    """
    is_y = labels == Y
    if beta is None:
        return is_y.float()
    if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not math.isfinite(beta) or beta < 0:
        raise ValueError(f"beta must be a finite number >= 0 or None, got {beta!r}")
    is_m = labels == M
    t = is_m.sum(1, keepdim=True)  # (B, 1) number of m labels per sample
    t_max = int(t.max()) if t.numel() else 0
    if t_max and 1.0 - t_max * beta <= 0:
        raise ValueError(f"beta = {beta} makes the 'y' weight 1 - t * beta = {1.0 - t_max * beta:g} <= 0 for a sample "
                         f"with t = {t_max} 'm' labels (the largest t in this batch); beta must be < 1 / {t_max} = "
                         f"{1.0 / t_max:g}")
    return is_m.float() * beta + is_y.float() * (1.0 - t.float() * beta)


def maybe_weighted_ce(logits: torch.Tensor, labels: torch.Tensor, beta: float | None) -> torch.Tensor:
    """The paper's "maybe"-weighted cross-entropy, averaged over samples.

    ``loss = - sum_ij W_ij log softmax(logits)_ij / B`` with ``W`` from :func:`maybe_weights`.

    Parameters
    ----------
    logits : (B, C) float
        Class scores of one task (before softmax).
    labels : (B, C) integer
        Codes :data:`Y`, :data:`M`, :data:`N` (one FashionAI label string per row).
    beta : float or None
        Weight of an ``m`` label (paper: 0.1). ``None`` or 0: cross-entropy on the ``y`` class (the baseline).

    Returns
    -------
    loss : () float, in the dtype of ``logits``. A sample whose labels are all ``n`` has zero weight (and its
        logits get zero gradient) but still counts in ``B``. An empty batch gives ``logits.sum() * 0``, so the
        graph survives.
    """
    _check(logits, labels)
    weights = maybe_weights(labels, beta).to(logits.dtype)  # (B, C)
    if logits.shape[0] == 0:
        return logits.sum() * 0
    return -(weights * F.log_softmax(logits, dim=1)).sum() / logits.shape[0]


def plain_ce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The ablation baseline: cross-entropy on the ``y`` class (:func:`maybe_weighted_ce` with ``beta=None``).

    Parameters and returns as :func:`maybe_weighted_ce`. For rows with exactly one ``y`` this equals
    ``F.cross_entropy(logits, y_index)``; a row without ``y`` adds 0 and counts in ``B``.
    """
    return maybe_weighted_ce(logits, labels, None)
