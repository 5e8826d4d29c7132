"""The refiner's batched tensor path, laid out for throughput: the ``backend="tensor"`` of the refiner.

This is Alg. 1 (RANSAC for the symmetry axis, :func:`fashion_lib.refine_axis.fit_symmetry_axis`, which documents
it and holds the readable batch-first reference) rewritten batch-last, with float 0/1 masks and ``out=`` buffers,
so that it runs at memory speed on a GPU, which it serves by default, and makes the same decisions as the compiled
CPU kernel (:mod:`fashion_lib.refine_cpu`) step for step: the same formulas, order of summation and roundings.
Everything here is private to :mod:`fashion_lib.refine_axis` and :mod:`fashion_lib.refine_pairs`, which validate
the arguments and draw the uniforms.
"""

from __future__ import annotations

import torch

# --------------------------------------------------------------------------------------------------------------
# RANSAC (Alg. 1), batched. Internal layout is batch-last: coordinates (P, B), candidates (P, k, B). The few
# midpoints are looped over in Python and every operation runs on a (k, B) slice, vectorised along B: such a
# slice stays in cache, whereas one (P, k, B) temporary per operation would spill to main memory and broadcasting
# a (P, 1, B) tensor over k is several times slower on CPU than over a leading dimension. Everything inside is float
# 0/1 rather than bool, which is much faster on CPU.
# --------------------------------------------------------------------------------------------------------------


def _sample_subsets(valid: torch.Tensor, n: int | torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Draw ``k`` uniform random subsets of ``n`` valid midpoints per instance (selection sampling).

    Knuth's Algorithm S, vectorised over instances and candidates: midpoint ``i`` is taken with probability
    (still needed) / (valid ones from ``i`` on), which gives every ``n``-subset of the valid midpoints the same
    chance. Where fewer than ``n`` are valid, all valid ones are taken (the caller rejects that candidate).

    Each candidate spends a single float64 uniform ``u``, digit by digit: at midpoint ``i``, ``j = floor(u * L)``
    is uniform on ``{0, ..., L - 1}`` (``L`` the valid midpoints from ``i`` on), ``i`` is taken when ``j < need``,
    and the fractional part ``u * L - j`` is a fresh uniform independent of ``j``. The choices consume
    ``log2(P!)`` bits (25 for FashionAI's 11 pairs) and an invalid midpoint about ``log2(P + 1)`` (its digit is
    pushed above any need by adding ``P + 1``), inside float64's 53 bits for any schema here; one draw per candidate
    instead of one per midpoint makes the random stream (a Mersenne twister on CPU) ten times cheaper.

    Parameters
    ----------
    valid : (P, B) float 0/1 (batch-last), which midpoints may be sampled.
    n : int or (B,) float, midpoints per candidate.
    u : (k, B) float64 uniforms on ``valid``'s device, one per candidate (:func:`fashion_lib.refine_axis._uniforms`);
        spent here (overwritten).

    Returns
    -------
    (P, k, B) float 0/1 of ``valid``'s dtype, ``subsets[i, j, b] == 1``: midpoint ``i`` is in candidate ``j`` of
    instance ``b``.
    """
    P, B = valid.shape
    k = u.shape[0]
    f64 = torch.float64
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
    n: torch.Tensor,
    m: torch.Tensor,
    d: torch.Tensor,
    u: torch.Tensor,
    tiny_eps: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Alg. 1 on batch-last float tensors. ``x``, ``y``, ``valid``: (P, B) (coordinates finite, 0 where
    invalid); ``n``, ``m``, ``d``: (B,); ``u``: (k, B) float64 uniforms, one per candidate (spent); ``tiny_eps``:
    the relative spread below which a candidate's points coincide. Returns nx, ny, offset, has_axis (float 0/1),
    error (each (B,)) and the inliers (P, B) float 0/1."""
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

    subsets = _sample_subsets(valid, n, u)  # (P, k, B)
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
    tiny = (tiny_eps * scale) ** 2  # (B,)
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

