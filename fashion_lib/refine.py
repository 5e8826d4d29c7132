"""New-key-detection: the symmetry refiner (paper Alg. 1 and 2), batched over instances, on CPU or GPU.

Paper, section III.A: fit a symmetry axis through the midpoints of the left/right key-point pairs by RANSAC
(Alg. 1), move the pairs whose midpoint is not an inlier of the best axis towards their partner's mirror image by an
exponential moving average, then crop the image to the refined points, detect and refine again, and average the
two scales (Alg. 2). Every ambiguity of the paper is read as ``study-notes.md`` ("New-key-detection") recommends,
and each reading is a field of :class:`RefineConfig`:

- the axis is a total-least-squares line (orthogonal distance), ``{p : normal . p = offset}``;
- a midpoint is an inlier when its orthogonal distance is ``<= d``, ``d`` in pixels or relative to the instance's
  size (:func:`instance_size`);
- a candidate's set ``A`` starts as its ``n`` sampled midpoints and gains every other midpoint within ``d``; with
  ``|A| >= m`` the axis is refitted on ``A`` and scored by the mean squared orthogonal distance over ``A``; the
  smallest score wins, ties going to the earliest candidate;
- ``EMA_alpha(p, q) = (1 - alpha) p + alpha q``, ``q`` the partner mirrored across the axis, both points updated
  from the original values; a pair with one point missing gets it filled with the partner's mirror image;
- non-symmetric points are left alone (``center_votes`` lets them vote for the axis).

Coordinates are continuous pixels (pixel ``i`` covers ``[i, i + 1)``, torchvision's convention); that matters only
for the crop of the second scale.

Two implementations, one algorithm: on a GPU (and for other dtypes than float32/float64) the refiner runs as
batched tensor operations, below; float32/float64 input on a CPU goes through a compiled per-instance kernel
(:mod:`fashion_lib.refine_cpu`), about twice as fast there (``benchmarks/refine.py``). Both draw the same random
numbers and sample the same subsets. On float64 input they make the same decisions; on float32 input the kernel
still computes in float64, so the two agree to float32 rounding (see :mod:`fashion_lib.refine_cpu`).
``tests/test_refine_cpu.py`` holds them together.

Input validation (an option, ``absurd_factor``; on in the command line): a point far outside the rest of its
instance (:func:`absurd_points`, a coordinate such as 1e30 from a broken detector) is treated as missing, so it
neither votes nor drags its partner, and is reported in ``RefineResult.ignored``.

Command line: ``python -m fashion_lib.refine RESULTS.json -o REFINED.json --schema coco`` refines the key-point
results (COCO results format) of any detector; ``--help`` lists the options. It lives in
:mod:`fashion_lib.refine_cli`, with the results-file reading and writing, and refines through
:mod:`fashion_lib.refine_numpy`: this module's CPU kernel path on NumPy arrays, without torch, tested to give the
same results as :func:`refine_symmetric`.
"""

from __future__ import annotations

if __name__ == "__main__":  # before the imports below: ``--help`` and argument errors then answer without torch
    import sys

    from fashion_lib.refine_cli import main

    sys.exit(main())

import dataclasses
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch

from fashion_lib.crops import (
    closing_boxes,
    line_from_crop,
    points_from_crop,
    second_scale_boxes,
    second_scale_crops,
)
from fashion_lib.keypoints import KeypointSchema, get_schema, missing_mask
from fashion_lib.refine_config import (  # noqa: F401  (_D_UNITS, _PAIR_MODES: the command line's tests read them here)
    _D_UNITS,
    _PAIR_MODES,
    _SCHEMA_DEFAULTS,
    MATCH_BY,
    CropMapping,
    RefineConfig,
    RefineSummary,
    _replace,
    resolve_config,
)

__all__ = [
    "RefineConfig",
    "resolve_config",
    "AxisFit",
    "RefineResult",
    "RefineSummary",
    "summarize_refinement",
    "NewKeyDetectionResult",
    "fit_symmetry_axis",
    "refine_symmetric",
    "new_key_detection",
    "reflect",
    "instance_size",
    "missing_mask",
    "MATCH_BY",
    "InstanceMatch",
    "match_instances",
    "MissingCalibration",
    "calibrate_missing_threshold",
    "absurd_points",
]

logger = logging.getLogger(__name__)

@dataclass(frozen=True)
class AxisFit:
    """The best symmetry axis per instance (:func:`fit_symmetry_axis`)."""

    normal: torch.Tensor  # (B, 2) float unit normal; the axis is {p : normal . p = offset}; normal[:, 0] >= 0
    offset: torch.Tensor  # (B,) float, pixels
    inliers: torch.Tensor  # (B, P) bool, A_best (all False where has_axis is False)
    has_axis: torch.Tensor  # (B,) bool, False where no candidate reached m (or all midpoints coincide)
    error: torch.Tensor  # (B,) float, mean squared orthogonal distance over A_best, pixels^2 (inf without axis)


@dataclass(frozen=True)
class RefineResult:
    """Output of :func:`refine_symmetric`."""

    keypoints: torch.Tensor  # (B, K, 3) float, refined x, y (pixels) and the input's third channel
    axis: torch.Tensor  # (B, 3) float, (normal_x, normal_y, offset) of {p : normal . p = offset}; 0 without axis
    inliers: torch.Tensor  # (B, P) bool, pairs whose midpoint is in A_best
    refined: torch.Tensor  # (B, P) bool, pairs moved by the EMA (complete, midpoint not in A_best, no point filled)
    filled: torch.Tensor  # (B, K) bool, points replaced by their partner's mirror image (missing, or at or below
    # RefineConfig.fill_threshold with the partner above it)
    has_axis: torch.Tensor  # (B,) bool, an axis was found (otherwise nothing changed)
    ignored: torch.Tensor  # (B, K) bool, absurd points treated as missing (absurd_points); kept unless filled

    @property
    def normal(self) -> torch.Tensor:
        """``(B, 2)`` float unit normal of the axis."""
        return self.axis[:, :2]

    @property
    def offset(self) -> torch.Tensor:
        """``(B,)`` float offset of the axis, pixels."""
        return self.axis[:, 2]


# --------------------------------------------------------------------------------------------------------------
# Geometry helpers
# --------------------------------------------------------------------------------------------------------------


def reflect(points: torch.Tensor, normal: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
    """Mirror ``points`` across the line ``{p : normal . p = offset}``: ``p - 2 (normal . p - offset) normal``.

    Parameters
    ----------
    points : (B, N, 2) float, pixels.
    normal : (B, 2) float, unit normals.
    offset : (B,) float, pixels.

    Returns
    -------
    (B, N, 2) float, pixels.
    """
    mx, my = _mirror(points[..., 0], points[..., 1], normal[:, None, 0], normal[:, None, 1], offset[:, None])
    return torch.stack([mx, my], -1)


def _mirror(
    x: torch.Tensor, y: torch.Tensor, nx: torch.Tensor, ny: torch.Tensor, offset: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`reflect` on separate coordinates: ``(x, y)`` mirrored across ``{nx x + ny y = offset}``.

    All arguments broadcast together (the refiner passes batch-last ``(P, B)`` points and ``(B,)`` axes).
    """
    twice = 2.0 * (nx * x + ny * y - offset)
    return x - twice * nx, y - twice * ny


def instance_size(keypoints: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """Size of each instance: the largest distance between two of its present points (0 with fewer than 2).

    This is the unit of ``d`` when ``d_unit="relative"`` (and of nothing else). The diameter, unlike the diagonal
    of the bounding box, does not change when the instance rotates, so the refiner stays rotation-equivariant.

    Parameters
    ----------
    keypoints : (B, K, 3) or (B, K, 2) float, pixels.
    present : (B, K) bool.

    Returns
    -------
    (B,) float, pixels.
    """
    xy = torch.where(present[..., None], keypoints[..., :2], torch.zeros_like(keypoints[..., :2]))
    dist = torch.cdist(xy, xy)  # (B, K, K)
    both = present[:, :, None] & present[:, None, :]
    return torch.where(both, dist, torch.zeros_like(dist)).flatten(1).amax(1) if xy.shape[1] else xy.new_zeros(len(xy))


def absurd_points(keypoints: torch.Tensor, present: torch.Tensor, factor: float) -> torch.Tensor:
    """Present points too far from the rest of their instance to be a detection of it: input to refuse, not refine.

    The instance's centre is the coordinate-wise median of its present points and its radius the median distance of
    those points from the centre (at least 1 pixel). A point farther than ``factor`` radii from the centre is
    absurd. Medians, because the absurd point must not move the yardstick it is measured with: one coordinate of
    1e30 would otherwise make every other point look close. With the default ``factor = 100`` nothing a detector
    puts on the image of a garment or person qualifies (on the real COCO excerpt the farthest labelled point is
    4.1 radii from the centre; a person seen as five face points and one ankle, 35), while a value
    such as 1e30, or a point thousands of instance sizes away, does. With two present points neither is ever absurd
    (each is one radius away); such an instance gets no axis anyway.

    Parameters
    ----------
    keypoints : (B, K, 3) or (B, K, 2) float, pixels.
    present : (B, K) bool.
    factor : float > 1, radii; ``inf`` flags nothing.

    Returns
    -------
    (B, K) bool, a subset of ``present``.
    """
    nan = torch.tensor(float("nan"), dtype=keypoints.dtype, device=keypoints.device)
    xy = torch.where(present[..., None], keypoints[..., :2], nan)  # (B, K, 2)
    centre = xy.nanmedian(1).values if xy.shape[1] else xy.new_zeros(len(xy), 2)  # (B, 2)
    dist = torch.hypot(xy[..., 0] - centre[:, None, 0], xy[..., 1] - centre[:, None, 1])  # (B, K), NaN if missing
    radius = dist.nanmedian(1).values.clamp(min=1.0) if xy.shape[1] else dist.new_ones(len(xy))  # (B,)
    return present & (dist > factor * radius[:, None])


# --------------------------------------------------------------------------------------------------------------
# RANSAC (Alg. 1), batched. Internal layout is batch-last: coordinates (P, B), candidates (P, k, B). The few
# midpoints are looped over in Python and every operation runs on a (k, B) slice, vectorised along B: such a
# slice stays in cache, whereas one (P, k, B) temporary per operation would spill to main memory and broadcasting
# a (P, 1, B) tensor over k is several times slower on CPU than over a leading dimension. Everything inside is float
# 0/1 rather than bool, which is much faster on CPU.
# --------------------------------------------------------------------------------------------------------------


def _uniforms(k: int, batch: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """(k, B) float64 uniforms on ``device``, one per RANSAC candidate, drawn on ``generator``'s device.

    The only random numbers the refiner consumes; both paths (tensor and CPU kernel) draw them here."""
    return torch.rand(k, batch, generator=generator, device=generator.device, dtype=torch.float64).to(device)


def _sample_subsets(
    valid: torch.Tensor, k: int, n: int | torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """Draw ``k`` uniform random subsets of ``n`` valid midpoints per instance (selection sampling).

    Knuth's Algorithm S, vectorised over instances and candidates: midpoint ``i`` is taken with probability
    (still needed) / (valid ones from ``i`` on), which gives every ``n``-subset of the valid midpoints the same
    chance. Where fewer than ``n`` are valid, all valid ones are taken (the caller rejects that candidate).

    Each candidate spends a single float64 uniform ``u``, digit by digit: at midpoint ``i``, ``j = floor(u * L)``
    is uniform on ``{0, ..., L - 1}`` (``L`` the valid midpoints from ``i`` on), ``i`` is taken when ``j < need``,
    and the fractional part ``u * L - j`` is a fresh uniform independent of ``j``. The choices consume
    ``log2(P!)`` bits (25 for FashionAI's 11 pairs) and an invalid midpoint about ``log2(P + 1)`` (its digit is
    pushed above any need by adding ``P + 1``), inside float64's 53 bits for any schema here; one draw per candidate
    instead of one per midpoint makes the random stream (a Mersenne twister on CPU) ten times cheaper. The draw is
    made on ``generator``'s device and moved to ``valid``'s, so a CPU generator gives the same subsets for CPU and
    GPU input.

    Parameters
    ----------
    valid : (P, B) float 0/1 (batch-last), which midpoints may be sampled.
    k : int, candidates per instance.
    n : int or (B,) float, midpoints per candidate.
    generator : torch.Generator.

    Returns
    -------
    (P, k, B) float 0/1 of ``valid``'s dtype, ``subsets[i, j, b] == 1``: midpoint ``i`` is in candidate ``j`` of
    instance ``b``.
    """
    P, B = valid.shape
    f64 = torch.float64
    u = _uniforms(k, B, generator, valid.device)
    valid64 = valid.to(f64)
    left = valid64.flip(0).cumsum(0).flip(0)  # (P, B): valid midpoints from i on
    base = torch.where(valid64 > 0, left, torch.ones_like(left))  # (P, B); an invalid midpoint spends no digit
    shift = (1.0 - valid64) * (P + 1)  # ... and its digit is P + 1 or more, above any need: never taken
    need = torch.as_tensor(n, dtype=f64, device=valid.device).expand(B).expand(k, B).clone()  # (k, B)
    subsets = torch.empty(P, k, B, dtype=valid.dtype, device=valid.device)
    digit, take = torch.empty_like(u), torch.empty_like(u)
    for i in range(P):  # float64 throughout: a comparison or update across dtypes is several times slower
        torch.addcmul(shift[i], u, base[i], out=u)
        torch.floor(u, out=digit)
        u.sub_(digit)
        torch.lt(digit, need, out=take)
        need.sub_(take)
        subsets[i].copy_(take)
    return subsets


def _moments_line(
    weights: torch.Tensor, x: torch.Tensor, y: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Total-least-squares line through the points selected by ``weights``.

    ``x``, ``y`` are (P, B), centred per instance, so the one-pass moments lose no precision to the image
    position; ``weights`` is (P, k, B) float 0/1. Returns the unit normal ``(nx, ny)``, the offset ``c``
    (line ``nx x + ny y = c``), the count and the scatter trace, each (k, B).
    """
    P, k, B = weights.shape
    count = weights.sum(0)  # (k, B)
    sums = x.new_zeros(5, k, B)  # sum of w x, w y, w x^2, w y^2, w x y
    sx, sy, sxx, syy, sxy = sums
    xx, yy, xy = x * x, y * y, x * y  # rounded once, so each product below is exact (w is 0 or 1), as in refine_cpu
    for i in range(P):
        w = weights[i]
        sx.addcmul_(w, x[i])
        sy.addcmul_(w, y[i])
        sxx.addcmul_(w, xx[i])
        syy.addcmul_(w, yy[i])
        sxy.addcmul_(w, xy[i])
    safe = count.clamp(min=1.0)
    mx, my = sx / safe, sy / safe
    sxx = sxx - count * mx * mx  # second moments about the candidate's centroid
    syy = syy - count * my * my
    sxy = sxy - count * mx * my
    # Direction of largest spread, (cos, sin) of theta = atan2(2 sxy, sxx - syy) / 2, taken as the eigenvector of
    # the 2 x 2 scatter for its larger eigenvalue rather than through trigonometry: a line along an image axis then
    # gets an exact normal (cos(pi / 2) is 6e-17, which moves a midpoint exactly d away across the inlier bound).
    # refine_cpu._tls computes the same formula. A degenerate set (norm 0) gets theta = 0; the caller rejects it.
    diff = sxx - syy
    r = torch.sqrt(diff * diff + 4.0 * sxy * sxy)
    up = diff >= 0
    dx = torch.where(up, diff + r, 2.0 * sxy)
    dy = torch.where(up, 2.0 * sxy, r - diff)
    norm = torch.sqrt(dx * dx + dy * dy)
    zero = norm == 0
    dx = torch.where(zero, 1.0, dx)
    flip = (dx < 0) | ((dx == 0) & (dy < 0))  # cos(theta) > 0, or sin(theta) > 0 where cos(theta) = 0
    norm = torch.where(zero, 1.0, norm)
    norm = torch.where(flip, -norm, norm)
    nx, ny = -dy / norm, dx / norm  # the normal is perpendicular to the direction
    return nx, ny, nx * mx + ny * my, count, (sxx + syy).clamp(min=0.0)


def _residuals(nx: torch.Tensor, ny: torch.Tensor, c: torch.Tensor, x: torch.Tensor, y: torch.Tensor):
    """Signed orthogonal distance of each midpoint to each candidate line, one (k, B) slice at a time.

    ``nx``, ``ny``, ``c``: (k, B); ``x``, ``y``: (P, B). Yields ``(i, r_i)``, ``r_i`` (k, B) float; the buffer is
    reused, so consume it before the next one.
    """
    r, ry = torch.empty_like(c), torch.empty_like(c)
    for i in range(x.shape[0]):
        # two roundings, not addcmul's fused multiply-add: the CPU kernel (refine_cpu) rounds the same way
        torch.mul(nx, x[i], out=r)
        r.add_(torch.mul(ny, y[i], out=ry)).sub_(c)
        yield i, r


def _fit_axis_t(
    x: torch.Tensor,
    y: torch.Tensor,
    valid: torch.Tensor,
    *,
    k: int,
    n: torch.Tensor,
    m: torch.Tensor,
    d: torch.Tensor,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Alg. 1 on batch-last float tensors. ``x``, ``y``, ``valid``: (P, B) (coordinates finite, 0 where
    invalid); ``n``, ``m``, ``d``: (B,). Returns nx, ny, offset, has_axis (float 0/1), error (each (B,)) and the
    inliers (P, B) float 0/1."""
    P, B = x.shape
    dtype = x.dtype
    count_valid = valid.sum(0)  # (B,)
    cx = (x * valid).sum(0) / count_valid.clamp(min=1.0)  # (B,) instance centre of the valid midpoints
    cy = (y * valid).sum(0) / count_valid.clamp(min=1.0)
    scale = torch.maximum((x * valid).abs().amax(0), (y * valid).abs().amax(0)) if P else cx.abs()  # (B,)
    lx = (x - cx) * valid  # (P, B), centred: moments then carry no image-position round-off
    ly = (y - cy) * valid
    reach = torch.where(valid > 0, d, -1.0)  # (P, B): an invalid midpoint is within no distance
    d_scalar = float(d[0]) if B and bool((d == d[0]).all()) else None  # a scalar compare is the fast path

    subsets = _sample_subsets(valid, k, n, generator)  # (P, k, B)
    nx, ny, c, count_s, _ = _moments_line(subsets, lx, ly)  # (k, B): the base line of each sample
    in_a = subsets  # A = sample + valid midpoints within d (Alg. 1 lines 2-8): it only grows, so built in place
    for i, r in _residuals(nx, ny, c, lx, ly):
        if d_scalar is None:
            torch.le(r.abs_().sub_(reach[i]), 0.0, out=r)
        else:
            torch.le(r.abs_(), d_scalar, out=r).mul_(valid[i])
        torch.maximum(in_a[i], r, out=in_a[i])
    nx, ny, c, count, trace = _moments_line(in_a, lx, ly)  # refit on A (Alg. 1 line 10)
    error = torch.zeros_like(c)
    for i, r in _residuals(nx, ny, c, lx, ly):  # explicit residuals: exact ties stay ties (see fit_symmetry_axis)
        error.addcmul_(r.square_(), in_a[i])
    error /= count.clamp(min=1.0)  # (k, B) mean squared orthogonal distance over A

    # A candidate counts when its sample was complete, |A| >= m, and A's points do not all coincide.
    tiny = (_tiny_eps(dtype) * scale) ** 2  # (B,)
    eligible = (count_s >= n) & (count >= m) & (trace > count * tiny)  # (k, B) bool, small
    error = torch.where(eligible, error, torch.full_like(error, float("inf")))
    best_error, best = error.min(0)  # (B,); the first index on ties
    has_axis = eligible.any(0).to(dtype)  # (B,)
    pick = best[None]  # (1, B)
    nx, ny = nx.gather(0, pick)[0], ny.gather(0, pick)[0]
    # Canonical sign: normal pointing to +x (garment axes are near-vertical, so this rarely flips near a tie).
    sign = torch.where(nx < 0, -1.0, 1.0).to(dtype)
    nx, ny = nx * sign * has_axis, ny * sign * has_axis
    offset = (c.gather(0, pick)[0] * sign + nx * cx + ny * cy) * has_axis  # back to image coordinates
    inliers = in_a.gather(1, pick[None].expand(P, 1, B))[:, 0] * has_axis  # (P, B)
    return nx, ny, offset, has_axis, best_error, inliers


def _tiny_eps(dtype: torch.dtype) -> float:
    """Relative size below which a candidate's ``A`` counts as coincident points: 256 machine epsilons."""
    return 256 * torch.finfo(dtype).eps


# Run CPU float32/float64 input through the compiled kernel (fashion_lib.refine_cpu), about twice as fast there
# than the tensor path below, which serves every other device and dtype. The tests switch it off to check that the
# two paths agree.
_CPU_KERNEL = True


def _kernel():
    """:mod:`fashion_lib.refine_cpu`, imported on first use: importing numba takes about a second."""
    from fashion_lib import refine_cpu

    return refine_cpu


def _cpu_kernel_applies(tensor: torch.Tensor) -> bool:
    """Whether ``tensor`` goes through the CPU kernel; if so, the kernel gets as many threads as torch has."""
    return (_CPU_KERNEL and tensor.device.type == "cpu" and tensor.dtype in (torch.float32, torch.float64)
            and _kernel().ready(torch.get_num_threads()))


def _rounded(value: float, dtype: torch.dtype) -> float:
    """``value`` rounded to ``dtype``: the kernel compares in float64 what the tensor path compares in ``dtype``."""
    return torch.tensor(value, dtype=dtype).item()


def _np(tensor: torch.Tensor):
    """A NumPy view of a CPU tensor for the kernel (a contiguous copy where its layout is not)."""
    return tensor.detach().contiguous().numpy()


def _np64(tensor: torch.Tensor):
    return _np(tensor.to(torch.float64))


def _as_per_instance(value, name: str, batch: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    out = torch.as_tensor(value, dtype=dtype, device=device)
    if out.ndim == 0:
        return out.expand(batch)
    if out.shape != (batch,):
        raise ValueError(f"{name} must be a number or a ({batch},) tensor, got shape {tuple(out.shape)}")
    return out


def fit_symmetry_axis(
    midpoints: torch.Tensor,
    valid: torch.Tensor,
    *,
    k: int,
    n: int | torch.Tensor,
    m: int | torch.Tensor,
    d: float | torch.Tensor,
    generator: torch.Generator,
) -> AxisFit:
    """RANSAC for the symmetry axis (paper Alg. 1), over ``B`` sets of midpoints at once.

    1. Draw ``k`` subsets of ``n`` valid midpoints per instance (:func:`_sample_subsets`).
    2. Fit a total-least-squares line to each subset.
    3. ``A`` = the subset plus every other valid midpoint within orthogonal distance ``d`` of that line.
    4. Where ``|A| >= m`` (and ``A``'s points do not all coincide), refit the line on ``A``; its error is the mean
       squared orthogonal distance over ``A``.
    5. Keep the candidate with the smallest error; ties go to the earliest candidate.

    Midpoints are centred per instance before any moment is taken, and errors come from explicit residuals, not
    from the moments: on exactly symmetric input every candidate's error is then ~0 at the precision of the
    *spread* of the points, not of their image position, and the tie cannot pick a worse ``A``.

    Parameters
    ----------
    midpoints : (B, P, 2) float, pixels; entries where ``valid`` is False are ignored (may be NaN).
    valid : (B, P) bool.
    k : int >= 1, candidates.
    n : int >= 2 or (B,) long, midpoints per sample.
    m : int >= 1 or (B,) long, the smallest ``|A|`` a candidate may have.
    d : float >= 0 or (B,) float, inlier distance in pixels.
    generator : torch.Generator; see :func:`_sample_subsets` for devices.

    Returns
    -------
    AxisFit
        ``normal`` (B, 2), ``offset`` (B,), ``inliers`` (B, P), ``has_axis`` (B,), ``error`` (B,).
    """
    if midpoints.ndim != 3 or midpoints.shape[-1] != 2:
        raise ValueError(f"midpoints must have shape (B, P, 2), got {tuple(midpoints.shape)}")
    if not midpoints.is_floating_point():
        raise ValueError(f"midpoints must be a float tensor, got dtype {midpoints.dtype}")
    B, P, _ = midpoints.shape
    if valid.shape != (B, P) or valid.dtype != torch.bool:
        raise ValueError(f"valid must be a ({B}, {P}) bool tensor, got {tuple(valid.shape)} {valid.dtype}")
    dtype, device = midpoints.dtype, midpoints.device
    n_t, m_t, d_t = _check_ransac_args(k, n, m, d, B, P, dtype, device)
    valid = valid & torch.isfinite(midpoints).all(-1)
    if _cpu_kernel_applies(midpoints):
        normal, offset, inliers = midpoints.new_empty(B, 2), midpoints.new_empty(B), torch.empty(B, P, dtype=torch.bool)
        has_axis, error = torch.empty(B, dtype=torch.bool), midpoints.new_empty(B)
        _kernel().fit_axes(_np(midpoints), _np(valid), _np(_uniforms(k, B, generator, device)), _np64(n_t),
                           _np64(m_t), _np64(d_t), _tiny_eps(dtype), normal.numpy(), offset.numpy(),
                           inliers.numpy(), has_axis.numpy(), error.numpy())
        return AxisFit(normal=normal, offset=offset, inliers=inliers, has_axis=has_axis, error=error)
    pts = torch.nan_to_num(midpoints, nan=0.0, posinf=0.0, neginf=0.0) * valid[..., None]
    vf = valid.t().to(dtype).contiguous()  # (P, B)
    x, y = pts[..., 0].t().contiguous(), pts[..., 1].t().contiguous()
    nx, ny, offset, has_axis, error, inliers = _fit_axis_t(x, y, vf, k=k, n=n_t, m=m_t, d=d_t, generator=generator)
    return AxisFit(normal=torch.stack([nx, ny], -1), offset=offset, inliers=inliers.t() > 0.5,
                   has_axis=has_axis > 0.5, error=error)


def _check_ransac_args(k, n, m, d, B: int, P: int, dtype: torch.dtype, device: torch.device):
    """Validate k, n, m, d and return n, m, d as (B,) tensors of ``dtype``."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be an int >= 1, got {k!r}")
    n_t = _as_per_instance(n, "n", B, dtype, device)
    m_t = _as_per_instance(m, "m", B, dtype, device)
    d_t = _as_per_instance(d, "d", B, dtype, device)
    if B:
        if float(n_t.min()) < 2 or float(n_t.max()) > P:
            raise ValueError(f"n must be in [2, {P}] (P = the number of midpoints), got "
                             f"{_span(n_t)}")
        if float(m_t.min()) < 1 or float(m_t.max()) > P:
            raise ValueError(f"m must be in [1, {P}] (P = the number of midpoints), got {_span(m_t)}")
        if not bool(((d_t >= 0) & torch.isfinite(d_t)).all()):
            raise ValueError(f"d must be finite and >= 0, got {_span(d_t)}")
    return n_t, m_t, d_t


def _span(values: torch.Tensor) -> str:
    lo, hi = values.min().item(), values.max().item()
    return f"{lo:g}" if lo == hi else f"{lo:g}..{hi:g}"


# --------------------------------------------------------------------------------------------------------------
# The refiner (Alg. 2, steps 1-8)
# --------------------------------------------------------------------------------------------------------------


def _applicable_points(
    schema: KeypointSchema, categories: Sequence[str] | torch.Tensor, batch: int, device: torch.device
) -> torch.Tensor:
    """(B, K) bool: which points each instance's category has. ``categories``: B names, or (B,) long indices
    into ``list(schema.categories)``."""
    names = list(schema.categories)
    table = torch.stack([schema.category_mask(c) for c in names]).to(device)  # (n_categories, K)
    if isinstance(categories, torch.Tensor):
        index = categories.to(device=device, dtype=torch.long)
        if index.shape != (batch,):
            raise ValueError(f"categories must have shape ({batch},), got {tuple(index.shape)}")
        if batch and (int(index.min()) < 0 or int(index.max()) >= len(names)):
            raise ValueError(f"categories indices must be in [0, {len(names) - 1}] ({names}), got "
                             f"{int(index.min())}..{int(index.max())}")
    else:
        if len(categories) != batch:
            raise ValueError(f"categories must have one name per instance ({batch}), got {len(categories)}")
        lookup = {c: i for i, c in enumerate(names)}
        bad = [(i, c) for i, c in enumerate(categories) if c not in lookup]
        if bad:
            raise ValueError(f"categories[{bad[0][0]}] = {bad[0][1]!r} is not a {schema.name} category; "
                             f"valid: {names}")
        index = torch.tensor([lookup[c] for c in categories], dtype=torch.long, device=device)
    return table[index]


def _instance_parameters(
    keypoints: torch.Tensor,
    present: torch.Tensor | None,
    schema: KeypointSchema,
    cfg: RefineConfig,
    applicable: torch.Tensor | None,
    dtype: torch.dtype,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """RANSAC's ``n``, ``m`` and ``d`` for each instance, each (B,) of ``dtype``.

    ``keypoints`` (B, K, 3); ``present`` (B, K) bool (read only with ``d_unit="relative"``); ``applicable`` (B, K)
    bool with ``pairs="category"``, else None. ``d`` is in pixels: with ``d_unit="relative"`` it is scaled by
    :func:`instance_size`."""
    B, device = len(keypoints), keypoints.device
    n, m = cfg.n, cfg.m
    if cfg.pairs == "category":
        # Scale n and m to the voters the garment has (study notes): n' = max(2, min(n, V_c - 1)),
        # m' = max(n', ceil(m * V_c / V)). With two voters (a skirt) this samples both: the exact line, no RANSAC.
        left, right = schema.pairs.to(device).unbind(1)
        centre = schema.center.to(device)
        voters = schema.num_pairs + (len(centre) if cfg.center_votes else 0)
        v_c = (applicable[:, left] & applicable[:, right]).sum(1)  # (B,)
        if cfg.center_votes:
            v_c = v_c + applicable[:, centre].sum(1)
        n = torch.clamp(torch.minimum(torch.full_like(v_c, cfg.n), v_c - 1), min=2)
        m = torch.maximum((cfg.m * v_c + voters - 1) // voters, n)
    d = cfg.d * instance_size(keypoints, present) if cfg.d_unit == "relative" else cfg.d
    return (_as_per_instance(n, "n", B, dtype, device), _as_per_instance(m, "m", B, dtype, device),
            _as_per_instance(d, "d", B, dtype, device))


def _refine_chunk(
    keypoints: torch.Tensor,
    schema: KeypointSchema,
    cfg: RefineConfig,
    applicable: torch.Tensor | None,
    generator: torch.Generator,
    out: RefineResult,
    kernel: bool,
) -> None:
    """Refine one chunk of instances into ``out`` (views of the whole batch's result), through the compiled CPU
    kernel when ``kernel`` is set (the same random numbers and the same decisions), else as tensor operations."""
    B, K, _ = keypoints.shape
    device, dtype = keypoints.device, keypoints.dtype
    if kernel:
        # The kernel finds the present points itself; only d_unit="relative" needs them here (missing_mask would be
        # the slowest step left on this side).
        present = ~missing_mask(keypoints, cfg.score_threshold) if cfg.d_unit == "relative" else None
        n, m, d = _instance_parameters(keypoints, present, schema, cfg, applicable, dtype)
        _kernel().refine_instances(
            _np(keypoints), _rounded(cfg.score_threshold, dtype), _rounded(cfg.fill_below, dtype),
            _np(torch.ones(B, K, dtype=torch.bool) if applicable is None else applicable), _np(schema.pairs[:, 0]),
            _np(schema.pairs[:, 1]), _np(schema.center), cfg.center_votes, _np(_uniforms(cfg.k, B, generator, device)),
            _np64(n), _np64(m), _np64(d), float(cfg.alpha), _tiny_eps(dtype), out.keypoints.numpy(), out.axis.numpy(),
            out.inliers.numpy(), out.refined.numpy(), out.filled.numpy(), out.has_axis.numpy())
        return
    left_idx, right_idx = schema.pairs.to(device).unbind(1)
    centre = schema.center.to(device)
    P = len(left_idx)
    # Batch-last (K, 3, B): every operation below runs along rows of B values, the fast direction on CPU. A copy
    # always (``contiguous`` could return the input itself), because the refined values are written into it.
    kt = torch.empty(K, 3, B, dtype=dtype, device=device).copy_(keypoints.permute(1, 2, 0))
    present = ~missing_mask(kt, cfg.score_threshold, dim=1)  # (K, B)
    x, y, score = kt.unbind(1)  # (K, B) each
    n, m, d = _instance_parameters(keypoints, present.t(), schema, cfg, applicable, dtype)
    if applicable is None:
        present_voting, pair_applicable = present, None
    else:
        applicable = applicable.t()  # (K, B)
        present_voting = present & applicable
        pair_applicable = applicable[left_idx] & applicable[right_idx]  # (P, B)
    xl, yl, sl = x[left_idx], y[left_idx], score[left_idx]  # (P, B) each
    xr, yr, sr = x[right_idx], y[right_idx], score[right_idx]
    has_left, has_right = present_voting[left_idx], present_voting[right_idx]  # (P, B)
    complete = has_left & has_right  # a pair with a point missing has no midpoint and does not vote
    vx, vy, voting = 0.5 * (xl + xr), 0.5 * (yl + yr), complete  # (P, B)
    if cfg.center_votes:  # non-symmetric points lie on the axis: they vote as their own midpoints
        vx, vy = torch.cat([vx, x[centre]]), torch.cat([vy, y[centre]])  # (P + C, B)
        voting = torch.cat([voting, present_voting[centre]])
    voting = voting & torch.isfinite(vx) & torch.isfinite(vy)  # the midpoint of two huge values may overflow
    zero = vx.new_zeros(())
    nx, ny, offset, has_axis, _, inliers = _fit_axis_t(
        torch.where(voting, vx, zero), torch.where(voting, vy, zero), voting.to(dtype), k=cfg.k, n=n, m=m, d=d,
        generator=generator)
    has = has_axis > 0.5  # (B,)
    inliers = inliers[:P] > 0.5  # (P, B)

    mxr, myr = _mirror(xr, yr, nx, ny, offset)  # left's target q (P, B)
    mxl, myl = _mirror(xl, yl, nx, ny, offset)
    # the fill's rule (fill_threshold) may flag points that voted: such a point is filled from a partner above the
    # rule, not moved by the EMA; with fill_threshold None, "unsure" is "missing" and this is the paper's rule
    if cfg.fill_threshold is None:
        unsure, sure = ~present, present_voting
    else:
        unsure = missing_mask(kt, cfg.fill_threshold, dim=1)  # (K, B)
        sure = ~unsure if applicable is None else ~unsure & applicable
    can_fill = has if pair_applicable is None else pair_applicable & has
    fill_left = can_fill & unsure[left_idx] & sure[right_idx]  # (P, B)
    fill_right = can_fill & unsure[right_idx] & sure[left_idx]
    refined = complete & has & ~inliers & ~fill_left & ~fill_right  # (P, B)
    a = cfg.alpha
    new_xl = torch.where(refined, (1 - a) * xl + a * mxr, xl)
    new_yl = torch.where(refined, (1 - a) * yl + a * myr, yl)
    new_xr = torch.where(refined, (1 - a) * xr + a * mxl, xr)
    new_yr = torch.where(refined, (1 - a) * yr + a * myl, yr)
    new_left = (torch.where(fill_left, mxr, new_xl), torch.where(fill_left, myr, new_yl),
                torch.where(fill_left, sr, sl))  # a filled point takes its partner's score: the evidence it rests on
    new_right = (torch.where(fill_right, mxl, new_xr), torch.where(fill_right, myl, new_yr),
                 torch.where(fill_right, sl, sr))

    for channel in range(3):
        kt[:, channel].index_copy_(0, left_idx, new_left[channel])
        kt[:, channel].index_copy_(0, right_idx, new_right[channel])
    filled = torch.zeros(K, B, dtype=torch.bool, device=device)
    filled.index_copy_(0, left_idx, fill_left).index_copy_(0, right_idx, fill_right)
    out.keypoints.view(B, 3 * K).copy_(kt.view(3 * K, B).t())  # a 2-D transpose: much faster than a 3-D permute
    out.axis.copy_(torch.stack([nx, ny, offset], -1))
    out.inliers.copy_(inliers.t())
    out.refined.copy_(refined.t())
    out.filled.copy_(filled.t())
    out.has_axis.copy_(has)


def refine_symmetric(
    keypoints: torch.Tensor,
    schema: str | KeypointSchema,
    *,
    generator: torch.Generator,
    config: RefineConfig | None = None,
    categories: Sequence[str] | torch.Tensor | None = None,
    alpha: float | None = None,
    k: int | None = None,
    n: int | None = None,
    m: int | None = None,
    d: float | None = None,
    d_unit: str | None = None,
    score_threshold: float | None = None,
    fill_threshold: float | None = None,
    pairs: str | None = None,
    center_votes: bool | None = None,
    absurd_factor: float | None = None,
    chunk_size: int = 16384,
) -> RefineResult:
    """Symmetry refinement of key points (paper Alg. 2, steps 1-8), batched over instances.

    Fits the symmetry axis through the midpoints of the complete left/right pairs (:func:`fit_symmetry_axis`),
    then, for every complete pair whose midpoint is not in ``A_best``, replaces both points from their *original*
    values by ``EMA_alpha(p, q) = (1 - alpha) p + alpha q``, ``q`` the partner mirrored across the axis. This
    multiplies the pair's asymmetric part (its midpoint's offset from the axis, and its tilt) by ``1 - 2 alpha`` and
    keeps the symmetric part: ``alpha = 0`` changes nothing, ``alpha = 0.5`` puts the pair exactly in symmetry
    (its midpoint lands on the axis), ``alpha = 1`` swaps each point for its partner's mirror image, and the
    paper's ``alpha = 0.4`` removes 80 % of the asymmetry. A pair with one point missing (see
    :func:`missing_mask`) gets that point filled with its partner's mirror image, and the partner's score, for any
    ``alpha``. With ``fill_threshold`` set (above ``score_threshold``) the fill has its own rule: a point scoring at
    or below it whose partner scores above it is filled the same way, even though it voted (every point above
    ``score_threshold`` votes), and its pair is not moved by the EMA. Non-symmetric points are never moved. Instances
    without an axis are returned unchanged. A point far outside the rest of its instance (:func:`absurd_points` with
    ``absurd_factor``) is treated as missing: it does not vote and moves no partner, is filled like any missing point,
    and otherwise keeps its input value.

    Parameters
    ----------
    keypoints : (B, K, 3) float, x, y in pixels and a score or COCO visibility; ``K`` must match ``schema``.
    schema : ``"fashionai"``, ``"coco"`` or a :class:`~fashion_lib.keypoints.KeypointSchema`.
    generator : torch.Generator for the RANSAC samples (a CPU generator gives identical results on CPU and GPU).
    config : RefineConfig, default ``RefineConfig.for_schema(schema)``; the keywords below override its fields.
    categories : B category names (or (B,) long indices into ``schema.categories``); required with
        ``pairs="category"``, where only each garment's own pairs vote, are refined and are filled, and ``n``, ``m``
        are scaled to its pair count (see :class:`RefineConfig`). Ignored with ``pairs="all"``, where all pairs
        vote (the paper's literal reading, the detector predicting every point for every garment).
    alpha, k, n, m, d, d_unit, score_threshold, fill_threshold, pairs, center_votes, absurd_factor : override the
        config's fields (None: keep the config's; the paper's fill rule is ``fill_threshold=None`` in the config).
    chunk_size : int, instances processed at once; bounds memory (the tensor path needs about 2 kB per instance at
        k = 10, P = 11; the CPU kernel little beyond the output).
        The random stream is consumed chunk by chunk, so results may depend on it.

    Returns
    -------
    RefineResult
        ``keypoints`` (B, K, 3), ``axis`` (B, 3), ``inliers`` (B, P), ``refined`` (B, P), ``filled`` (B, K),
        ``has_axis`` (B,), ``ignored`` (B, K).
    """
    schema = get_schema(schema)
    cfg = resolve_config(config, schema, dict(alpha=alpha, k=k, n=n, m=m, d=d, d_unit=d_unit,
                                        score_threshold=score_threshold, fill_threshold=fill_threshold,
                                        pairs=pairs, center_votes=center_votes, absurd_factor=absurd_factor))
    num_voters = schema.num_pairs + (len(schema.center) if cfg.center_votes else 0)
    cfg.validate(num_voters=num_voters)
    if not isinstance(keypoints, torch.Tensor) or not keypoints.is_floating_point():
        raise ValueError(f"keypoints must be a float tensor, got {type(keypoints).__name__}")
    if keypoints.ndim != 3 or keypoints.shape[1:] != (schema.num_keypoints, 3):
        raise ValueError(f"keypoints must have shape (B, {schema.num_keypoints}, 3) for the {schema.name} schema, "
                         f"got {tuple(keypoints.shape)}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    B = keypoints.shape[0]
    applicable = None
    if cfg.pairs == "category":
        if categories is None:
            raise ValueError("categories is required with pairs='category' (one category name per instance)")
        applicable = _applicable_points(schema, categories, B, keypoints.device)
    K, P, device = schema.num_keypoints, schema.num_pairs, keypoints.device
    ignored = (absurd_points(keypoints, ~missing_mask(keypoints, cfg.score_threshold), cfg.absurd_factor)
               if math.isfinite(cfg.absurd_factor) else torch.zeros(B, K, dtype=torch.bool, device=device))
    any_ignored = bool(ignored.any())
    # an ignored point becomes NaN, the refiner's "missing", so that it neither votes nor moves its partner
    source = keypoints.masked_fill(ignored[..., None] & (torch.arange(3, device=device) < 2), float("nan")) \
        if any_ignored else keypoints
    result = RefineResult(keypoints=keypoints.new_empty(keypoints.shape), axis=keypoints.new_empty(B, 3),
                          inliers=torch.empty(B, P, dtype=torch.bool, device=device),
                          refined=torch.empty(B, P, dtype=torch.bool, device=device),
                          filled=torch.empty(B, K, dtype=torch.bool, device=device),
                          has_axis=torch.empty(B, dtype=torch.bool, device=device), ignored=ignored)
    kernel = _cpu_kernel_applies(keypoints)
    for s in range(0, B, chunk_size):  # over chunks of instances, to bound memory
        part = RefineResult(**{f.name: getattr(result, f.name)[s:s + chunk_size]
                               for f in dataclasses.fields(RefineResult)})
        _refine_chunk(source[s:s + chunk_size], schema, cfg,
                      None if applicable is None else applicable[s:s + chunk_size], generator, out=part, kernel=kernel)
    if any_ignored:  # an ignored point that was not filled keeps its input value: the refiner reports, not erases
        keep = (ignored & ~result.filled)[..., None]
        result.keypoints.copy_(torch.where(keep, keypoints, result.keypoints))
    return result


def summarize_refinement(
    keypoints: torch.Tensor,
    result: RefineResult,
    schema: str | KeypointSchema,
    *,
    config: RefineConfig | None = None,
    categories: Sequence[str] | torch.Tensor | None = None,
    **overrides,
) -> RefineSummary:
    """Count what :func:`refine_symmetric` did: ``result`` is its output for ``keypoints`` (B, K, 3), and
    ``schema``, ``config``, ``categories`` and the keyword ``overrides`` are the ones it was called with (they give
    each instance's ``m``, for ``too_few_pairs``)."""
    schema = get_schema(schema)
    cfg = resolve_config(config, schema, overrides)
    if keypoints.shape != result.keypoints.shape:
        raise ValueError(f"keypoints has shape {tuple(keypoints.shape)} but the result's key points "
                         f"{tuple(result.keypoints.shape)}: pass the input the result was refined from")
    moved = (result.keypoints[..., :2] != keypoints[..., :2]).any(-1) & ~result.filled
    return RefineSummary(instances=len(keypoints), with_axis=int(result.has_axis.sum()),
                         too_few_pairs=int(_too_few_voters(keypoints, result.ignored, schema, cfg, categories).sum()),
                         pairs_refined=int(result.refined.sum()), points_moved=int(moved.sum()),
                         points_filled=int(result.filled.sum()), points_ignored=int(result.ignored.sum()))


def _too_few_voters(
    keypoints: torch.Tensor, ignored: torch.Tensor, schema: KeypointSchema, cfg: RefineConfig,
    categories: Sequence[str] | torch.Tensor | None,
) -> torch.Tensor:
    """(B,) bool: instances with fewer voting midpoints than their ``m``, which no ``d`` gives an axis.

    Uses the refiner's own per-instance ``m`` (scaled to the garment's pairs with ``pairs="category"``)."""
    present = ~missing_mask(keypoints, cfg.score_threshold) & ~ignored  # (B, K)
    applicable = None
    if cfg.pairs == "category":
        if categories is None:
            raise ValueError("categories is required with pairs='category' (one category name per instance)")
        applicable = _applicable_points(schema, categories, len(keypoints), keypoints.device)
        present &= applicable
    left, right = schema.pairs.to(keypoints.device).unbind(1)
    voters = (present[:, left] & present[:, right]).sum(1)
    if cfg.center_votes:
        voters += present[:, schema.center.to(keypoints.device)].sum(1)
    _, m, _ = _instance_parameters(keypoints, present, schema, cfg, applicable, torch.float64)
    return voters < m


# --------------------------------------------------------------------------------------------------------------
# New-key-detection: the two-scale loop (Alg. 2, steps 9-10)
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewKeyDetectionResult:
    """Output of :func:`new_key_detection`; every coordinate is in pixels of the input images."""

    keypoints: torch.Tensor  # (B, K, 3) the final key points: the average of the two scales (Alg. 2, last line)
    detected: torch.Tensor  # (B, K, 3) the detector's first-scale output (Alg. 2, step 1)
    first: RefineResult  # steps 2-8 on the first scale ("axis once", the paper's Fig. 1c)
    second: RefineResult  # steps 1-8 on the crop, mapped back to image pixels
    boxes: torch.Tensor  # (B, 4) x1, y1, x2, y2 of the crop fed to the detector at the second scale
    whole_image: torch.Tensor  # (B,) bool, no present point to crop to: the second scale saw the whole image
    matched: torch.Tensor  # (B,) bool, a crop detection matched the instance (else: second scale all missing)
    match_score: torch.Tensor  # (B,) float, OKS or IoU of the kept crop detection with the instance (0: none)

    @property
    def num_unmatched(self) -> int:
        """Instances whose crop held no detection matching them: they keep their first scale (a host sync)."""
        return int((~self.matched).sum())


def _identity_result(keypoints: torch.Tensor, num_pairs: int) -> RefineResult:
    """A :class:`RefineResult` that changes nothing (the ``symmetric=False`` control)."""
    B, K, _ = keypoints.shape
    dev = keypoints.device
    return RefineResult(keypoints=keypoints.clone(), axis=keypoints.new_zeros(B, 3),
                        inliers=torch.zeros(B, num_pairs, dtype=torch.bool, device=dev),
                        refined=torch.zeros(B, num_pairs, dtype=torch.bool, device=dev),
                        filled=torch.zeros(B, K, dtype=torch.bool, device=dev),
                        has_axis=torch.zeros(B, dtype=torch.bool, device=dev),
                        ignored=torch.zeros(B, K, dtype=torch.bool, device=dev))


def _average_scales(a: torch.Tensor, b: torch.Tensor, score_threshold: float) -> torch.Tensor:
    """Average two (B, K, 3) key-point sets where both are present; where one is missing, take the other."""
    pa = ~missing_mask(a, score_threshold)
    pb = ~missing_mask(b, score_threshold)
    both = (pa & pb)[..., None]
    only_b = (pb & ~pa)[..., None]
    return torch.where(both, 0.5 * (a + b), torch.where(only_b, b, a))


class InstanceMatch(NamedTuple):
    """Output of :func:`match_instances`."""

    index: torch.Tensor  # (B,) long, the best candidate of each reference instance
    score: torch.Tensor  # (B,) float, its similarity in [0, 1] (0: no candidate shares a present point)


def match_instances(
    reference: torch.Tensor,
    candidates: torch.Tensor,
    sigmas: torch.Tensor,
    *,
    by: str = "oks",
    score_threshold: float = 0.0,
) -> InstanceMatch:
    """For each reference instance, the candidate that best matches it (the same person or garment).

    ``"oks"``: COCO's object key-point similarity with the reference as ground truth,
    ``mean_k exp(-d_k^2 / (2 s^2 (2 sigma_k)^2))`` over the reference's present points (a point the candidate
    misses counts 0), ``s^2`` the area of the box closing the reference's present points (COCO uses the mask's
    area; at least 1 px^2). ``"iou"``: the intersection over union of the two instances' key-point boxes.
    Ties go to the earliest candidate (a detector lists them best first).

    Parameters
    ----------
    reference : (B, K, 3) float, x, y pixels and a score; points scoring ``<= score_threshold`` or NaN are missing.
    candidates : (B, D, K, 3) float, D candidates per reference instance in the same pixels (padding: NaN / 0).
    sigmas : (K,) float, the schema's OKS constants (:attr:`KeypointSchema.sigmas`).
    by : {"oks", "iou"}
    score_threshold : float, as in :func:`missing_mask`.

    Returns
    -------
    InstanceMatch
        ``index`` (B,) long and ``score`` (B,) float.
    """
    if by not in MATCH_BY:
        raise ValueError(f"by must be one of {MATCH_BY}, got {by!r}")
    if reference.ndim != 3 or candidates.ndim != 4 or candidates.shape[0] != reference.shape[0] \
            or candidates.shape[2:] != reference.shape[1:] or reference.shape[-1] != 3:
        raise ValueError(f"reference must be (B, K, 3) and candidates (B, D, K, 3), got {tuple(reference.shape)} and "
                         f"{tuple(candidates.shape)}")
    B, D, K, _ = candidates.shape
    if sigmas.shape != (K,):
        raise ValueError(f"sigmas must have shape ({K},), got {tuple(sigmas.shape)}")
    if D == 0:
        return InstanceMatch(torch.zeros(B, dtype=torch.long, device=reference.device), reference.new_zeros(B))
    ref_on = ~missing_mask(reference, score_threshold)  # (B, K)
    cand_on = ~missing_mask(candidates, score_threshold)  # (B, D, K)
    ref_box = closing_boxes(reference, ref_on)  # (B, 4)
    if by == "oks":
        area = ((ref_box[:, 2] - ref_box[:, 0]) * (ref_box[:, 3] - ref_box[:, 1])).clamp(min=1.0)  # (B,)
        d2 = (candidates[..., :2] - reference[:, None, :, :2]).square().sum(-1)  # (B, D, K)
        kappa2 = (2 * sigmas.to(reference)) ** 2  # (K,)
        sim = torch.exp(-d2 / (2 * area[:, None, None] * kappa2))
        both = ref_on[:, None] & cand_on  # (B, D, K)
        sim = torch.where(both, sim, torch.zeros_like(sim)).sum(-1) / ref_on.sum(-1, keepdim=True).clamp(min=1)
    else:
        cand_box = closing_boxes(candidates.flatten(0, 1), cand_on.flatten(0, 1)).view(B, D, 4)
        lo = torch.maximum(ref_box[:, None, :2], cand_box[..., :2])  # (B, D, 2)
        hi = torch.minimum(ref_box[:, None, 2:], cand_box[..., 2:])
        inter = (hi - lo).clamp(min=0).prod(-1)  # (B, D)
        area_r = (ref_box[:, 2:] - ref_box[:, :2]).prod(-1)  # (B,)
        area_c = (cand_box[..., 2:] - cand_box[..., :2]).prod(-1)  # (B, D)
        union = area_r[:, None] + area_c - inter
        sim = torch.where(union > 0, inter / union.clamp(min=1e-12), torch.zeros_like(inter))
        sim = torch.where(cand_on.any(-1) & ref_on.any(-1, keepdim=True), sim, torch.zeros_like(sim))
    score, index = sim.max(1)  # first maximum: the earliest candidate wins ties
    return InstanceMatch(index, score)


def _as_candidates(detected: torch.Tensor, batch: int, num_keypoints: int) -> torch.Tensor:
    """A detector's answer as (B, D, K, 3) candidates: (B, K, 3) is one candidate per image."""
    if detected.ndim == 3:
        detected = detected[:, None]
    if detected.ndim != 4 or detected.shape[0] != batch or detected.shape[2:] != (num_keypoints, 3):
        raise ValueError(f"detect returned key points of shape {tuple(detected.shape)} for {batch} images, expected "
                         f"({batch}, {num_keypoints}, 3) or ({batch}, D, {num_keypoints}, 3)")
    return detected


def new_key_detection(
    images: Sequence[torch.Tensor] | torch.Tensor,
    detect: Callable[[list[torch.Tensor]], torch.Tensor],
    schema: str | KeypointSchema,
    *,
    generator: torch.Generator,
    keypoints: torch.Tensor | None = None,
    image_index: torch.Tensor | None = None,
    config: RefineConfig | None = None,
    categories: Sequence[str] | torch.Tensor | None = None,
    symmetric: bool = True,
    crop_size: int | None = None,
    margin: float | None = None,
    **overrides,
) -> NewKeyDetectionResult:
    """New-key-detection (paper Alg. 2): refine, crop to the refined points, detect and refine again, average.

    1. ``keys_1`` = ``keypoints`` or ``detect(images)`` (its top instance per image), refined by
       :func:`refine_symmetric` (steps 1-8; skipped with ``symmetric=False``).
    2. Crop each instance's image to the rectangle closing its refined present points, grown by ``margin``, made
       square (``config.square_crop``) and shifted inside the image where it fits, edge-replicated where it cannot
       (:func:`fashion_lib.crops.second_scale_boxes`), and run ``detect`` on the crops: resized to ``crop_size``
       or at their own size (``config.crop_mapping``, :class:`fashion_lib.crops.CropMapping`).
    3. Of the crop's detections, keep the one that best matches the instance (:func:`match_instances`,
       ``config.match_by``); below ``config.min_match`` the instance keeps its first scale (``matched`` False).
    4. Refine the kept detection (steps 1-8 again, in crop pixels), map it back to the image (offset and, for a
       resized crop, the resize factor, which the paper's formula omits) and average the two scales; a point
       present at one scale only is taken from that scale.

    Works with any detector: ``detect`` maps a list of ``(C, h, w)`` images to ``(B, K, 3)`` (the top instance) or
    ``(B, D, K, 3)`` (D instances per image, best first, padded with NaN coordinates and score 0) key points, x, y
    in that image's pixels and a confidence; a point it did not find is NaN or scores ``<= score_threshold``.
    Several persons of one image are several instances sharing an image: pass their first-scale ``keypoints`` and
    their ``image_index``, and a ``detect`` that returns every instance, so that each keeps its own.

    Parameters
    ----------
    images : list of (C, H, W) float tensors, or a (N, C, H, W) tensor.
    detect : callable, list of (C, h, w) images -> (B, K, 3) or (B, D, K, 3) float.
    schema : ``"fashionai"``, ``"coco"`` or a schema.
    generator : torch.Generator for RANSAC (both scales draw from it in turn).
    keypoints : (B, K, 3) float, optional first-scale detections (default ``detect(images)``, B = N).
    image_index : (B,) long, the image of each instance (default ``arange(B)``).
    config, categories, overrides : as in :func:`refine_symmetric` (``alpha``, ``k``, ``n``, ``m``, ``d``, ...)
        and the second scale's fields of :class:`RefineConfig` (``square_crop``, ``crop_mapping``, ``match_by``,
        ``min_match``). With ``categories`` and ``pairs="category"``, only each garment's own points are refined
        and framed.
    symmetric : bool, ``False`` drops the symmetry constraint and only runs the detector twice (the paper's
        control in section III.A).
    crop_size : int, side of the resized crops (default: the longer side of the largest image).
    margin : float, overrides ``config.margin`` (fraction of the rectangle's size added on each side).

    Returns
    -------
    NewKeyDetectionResult
    """
    schema = get_schema(schema)
    if isinstance(images, torch.Tensor):
        if images.ndim != 4:
            raise ValueError(f"images must be a (N, C, H, W) tensor or a list of (C, H, W), got {tuple(images.shape)}")
        images = list(images.unbind(0))
    images = list(images)
    if not images:
        raise ValueError("images must hold at least one image")
    if any(im.ndim != 3 or not im.is_floating_point() for im in images):
        raise ValueError("every image must be a (C, H, W) float tensor")
    cfg = resolve_config(config, schema, {**overrides, "margin": margin})
    cfg.validate()
    if keypoints is None:
        if image_index is not None:
            raise ValueError("image_index needs keypoints: without them detect(images) gives one instance per image")
        keypoints = _as_candidates(detect(images), len(images), schema.num_keypoints)[:, 0]
    detected = keypoints
    B = keypoints.shape[0]
    device = keypoints.device
    if image_index is None:
        if B != len(images):
            raise ValueError(f"keypoints has {B} instances but there are {len(images)} images: pass image_index")
        image_index = torch.arange(B, device=device)
    image_index = torch.as_tensor(image_index, dtype=torch.long, device=device)
    if image_index.shape != (B,) or (B and (int(image_index.min()) < 0 or int(image_index.max()) >= len(images))):
        raise ValueError(f"image_index must be ({B},) indices into the {len(images)} images")

    def refine(kps: torch.Tensor) -> RefineResult:
        if not symmetric:
            return _identity_result(kps, schema.num_pairs)
        return refine_symmetric(kps, schema, generator=generator, config=cfg, categories=categories)

    first = refine(keypoints)
    present = ~missing_mask(first.keypoints, cfg.score_threshold)
    if categories is not None and cfg.pairs == "category":
        present &= _applicable_points(schema, categories, B, device)
    sizes = torch.tensor([tuple(im.shape[-2:]) for im in images], dtype=keypoints.dtype)[image_index.cpu()]
    framed = second_scale_boxes(first.keypoints, present, sizes.to(device), margin=cfg.margin,
                                square=cfg.square_crop)
    size = int(crop_size or max(max(im.shape[-2:]) for im in images))
    if size < 8:
        raise ValueError(f"crop_size must be >= 8 pixels, got {size}")
    crops, boxes, crop_side = second_scale_crops([im.to(device) for im in images], framed.boxes, image_index,
                                                 CropMapping(cfg.crop_mapping), size)
    raw = detect(crops) if B else keypoints.new_zeros(0, 1, schema.num_keypoints, 3)
    raw = _as_candidates(raw, B, schema.num_keypoints).to(device=device, dtype=keypoints.dtype)  # (B, D, K, 3)
    D = raw.shape[1]
    in_image = points_from_crop(raw.flatten(1, 2), boxes, crop_side).view(B, D, schema.num_keypoints, 3)
    match = match_instances(first.keypoints, in_image, schema.sigmas.to(device), by=cfg.match_by,
                            score_threshold=cfg.score_threshold)
    matched = match.score >= cfg.min_match  # (B,)
    pick = raw[torch.arange(B, device=device), match.index]  # (B, K, 3) in crop pixels
    # an unmatched instance's second scale is all missing, so the average below keeps its first scale
    pick = torch.where(matched[:, None, None], pick, _all_missing(pick))
    second_crop = refine(pick)
    mapped = points_from_crop(second_crop.keypoints, boxes, crop_side)
    second = dataclasses.replace(second_crop, keypoints=mapped, axis=line_from_crop(second_crop.axis, boxes, crop_side))
    final = _average_scales(first.keypoints, mapped, cfg.score_threshold)
    return NewKeyDetectionResult(keypoints=final, detected=detected, first=first, second=second, boxes=boxes,
                                 whole_image=framed.fallback, matched=matched, match_score=match.score)


def _all_missing(keypoints: torch.Tensor) -> torch.Tensor:
    """(B, K, 3) of NaN coordinates and score 0 (the library's missing point), like ``keypoints``."""
    out = torch.full_like(keypoints, float("nan"))
    out[..., 2] = 0.0
    return out


# --------------------------------------------------------------------------------------------------------------
# The missing-point rule, calibrated on held-out images
# --------------------------------------------------------------------------------------------------------------


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
