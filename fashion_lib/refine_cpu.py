"""The CPU kernel of New-key-detection: Alg. 1 (RANSAC axis) and steps 4-8 of Alg. 2, one instance per loop turn.

:mod:`fashion_lib.refine_tensor` runs the refiner as whole-batch tensor operations, the right shape for a GPU. On a
CPU those operations are bound by memory traffic, not arithmetic: each of the ~400 passes per chunk streams ``(k, B)``
floats through the caches. This module compiles (numba) the same computation as a loop over instances whose
working set (one instance's midpoints and candidates) stays in registers and L1, with blocks of instances shared
between threads: ``backend="kernel"`` of the refiner, and its default (``"auto"``) for float32/float64 CPU input.
``benchmarks/refine.py`` times the backends on the same CPU.

Where the time went, and what this code does about it (each measured on FashionAI-shaped input):

- libm's ``atan2``, ``sin`` and ``cos`` per line were half the time: :func:`_tls` takes the normal from the
  eigenvector of the 2 x 2 scatter with two square roots;
- a mispredicted branch per midpoint cost more than its arithmetic: set membership is computed with ``&`` and
  ``|`` on booleans and 0/1 weights, not ``and`` / ``or`` / ``if``;
- a fresh array view per instance cost more than the work on it: scratch arrays are allocated once per block and
  indexed whole;
- one candidate at a time is a chain of dependent operations: the sampler runs the ``k`` candidates side by side.

It is the same algorithm and it consumes the same random numbers: the caller draws the ``(k, B)`` float64 uniforms
from its ``torch.Generator`` exactly as the tensor path's ``_sample_subsets`` does, and :func:`_sample` spends them
with the same float64 steps, so both paths sample the same subsets. The arithmetic follows the tensor path's
formulas and order of summation and rounds at the same steps (neither fuses a multiply-add), so float64 input gives
the same decisions on both, ties and inputs exactly ``d`` from a line included. Arithmetic here is float64
whatever the input's dtype (scalar float64 costs no more than float32); outputs are stored in the input's dtype. On
float32 input the tensor path rounds in float32, so there the two agree to rounding and can decide differently
only for a residual within rounding of ``d`` or errors tied within rounding. ``tests/test_refine_cpu.py`` checks
both.

Everything here is private to :mod:`fashion_lib.refine_axis`, :mod:`fashion_lib.refine_pairs` and
:mod:`fashion_lib.refine_numpy` (the same calls on NumPy arrays, for the command line without torch), which
validate the arguments and prepare the per-instance parameters (``n``, ``m``, ``d``, the uniforms); the functions
below trust them.
"""

from __future__ import annotations

import math
import os

import numba
import numpy as np
from numba import njit, prange

# Instances per parallel work item: large enough to amortise a thread hand-off, small enough to balance two cores.
_BLOCK = 256


_launched = False  # this process has run a parallel kernel, and so started the threading layer's threads
_forked_after_launch = False  # this process was forked from one that had


def _after_fork_in_child() -> None:
    global _forked_after_launch
    _forked_after_launch = _launched


os.register_at_fork(after_in_child=_after_fork_in_child)


def ready(threads: int) -> bool:
    """Whether the kernels below can run in this process; if so, they will run on ``threads`` threads (at most
    numba's ``NUMBA_NUM_THREADS``, the core count by default) and the caller launches one.

    False in a process forked from one that has run them. numba's threading layer is GNU OpenMP here (numba
    prefers TBB where ``tbb`` is installed), and OpenMP terminates such a child as soon as it starts a parallel
    region; the tensor path serves it instead. PyTorch shares that OpenMP runtime and its parallel operations hang
    in such a child unless it runs on one thread, as DataLoader workers do (``torch.set_num_threads(1)``); other
    worker processes are best started with "spawn" or "forkserver". numba's fork-safe work queue layer measured
    0.77-0.97 million instances/s here against 1.3-1.5 million with OpenMP, which is why it is not forced.
    :mod:`fashion_lib.refine_axis` passes ``torch.get_num_threads()``, so one setting governs both paths."""
    global _launched
    if _forked_after_launch:
        return False
    numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
    _launched = True
    return True


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _sample(u, valid, b, left, n, need, count, index) -> None:
    """Algorithm S with one uniform per candidate spent digit by digit, as ``refine_tensor._sample_subsets`` (which
    documents it), for the ``k`` candidates of one instance at once.

    ``u`` (k,) float64, consumed; ``valid[b]`` (V,) bool; ``left`` (V,) float, valid midpoints from ``i`` on;
    ``need`` (k,) float scratch. Writes ``count`` (k,) int, the sample sizes, and ``index`` (k, V + 1) int, whose
    row ``j`` starts with candidate ``j``'s midpoints in increasing order. The float64 steps are those of the tensor
    path, so the same ``u`` gives the same subsets. Candidates are the inner loop: one candidate's digits form a
    chain of dependent operations, and ``k`` independent chains keep the CPU busy."""
    V, k = left.shape[0], u.shape[0]
    for j in range(k):
        need[j] = n
        count[j] = 0
    for i in range(V):
        base, shift = (left[i], 0.0) if valid[b, i] else (1.0, V + 1.0)  # an invalid digit exceeds any need
        for j in range(k):
            value = shift + u[j] * base
            digit = math.floor(value)
            u[j] = value - digit
            take = digit < need[j]
            need[j] -= take
            index[j, count[j]] = i  # no branch (taking is a coin flip): the slot is overwritten unless taken
            count[j] += take


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _tls(count, sx, sy, sxx, syy, sxy):
    """Total-least-squares line from the sums of 1, x, y, x^2, y^2, x y over a set of centred points.

    Returns ``(nx, ny, c, trace)``: unit normal and offset of ``nx x + ny y = c`` and the scatter's trace. The
    formula, step for step, is the tensor path's (``refine_tensor._moments_line``)."""
    safe = max(count, 1.0)
    mx, my = sx / safe, sy / safe
    a = sxx - count * mx * mx  # second moments about the set's centroid
    c = syy - count * my * my
    b = sxy - count * mx * my
    diff = a - c
    r = math.sqrt(diff * diff + 4.0 * b * b)
    # Direction of largest spread. Arithmetic rather than branches on the signs, which vary from one candidate to
    # the next and would be mispredicted.
    up = 1.0 * (diff >= 0.0)
    dx = up * (diff + r) + (1.0 - up) * 2.0 * b
    dy = up * 2.0 * b + (1.0 - up) * (r - diff)
    norm = math.sqrt(dx * dx + dy * dy)
    zero = 1.0 * (norm == 0.0)  # isotropic or a single point: atan2(0, 0) = 0 there (the caller rejects the set)
    dx, norm = dx + zero, norm + zero
    flip = (dx < 0.0) | ((dx == 0.0) & (dy < 0.0))  # the tensor path's sign: cos(theta) > 0, or sin(theta) > 0
    norm *= 1.0 - 2.0 * flip
    nx, ny = -dy / norm, dx / norm  # the normal is perpendicular to the direction
    return nx, ny, nx * mx + ny * my, max(a + c, 0.0)


@njit(cache=True, nogil=True, error_model="numpy")
def _scratch(V: int, k: int):
    """Work arrays for :func:`_fit_one`, allocated once per block of instances rather than per instance."""
    return (np.empty((5, V)), np.empty(V), np.empty((9, k)), np.empty(k, np.int64), np.empty((k, V + 1), np.int64),
            np.empty((k, V), np.bool_))


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _fit_one(vx, vy, valid, u, b, n, m, d, tiny_eps, feats, left, cand, count_s, index, member, best_a):
    """Alg. 1 for instance ``b``: ``vx``, ``vy`` (V,) its midpoints, ``valid[b]`` (V,) which ones vote; ``u`` (k, B)
    the uniforms.

    ``feats`` ... ``member`` are scratch from :func:`_scratch`; ``best_a[b]`` (V,) bool receives ``A_best`` (arrays
    come whole with an index: a view per instance costs more than the arithmetic). Returns ``(nx, ny, offset,
    has_axis, error)`` in image coordinates, as ``refine_tensor._fit_axis_t``.

    Each step runs over all ``k`` candidates before the next: a candidate alone is a chain of dependent square
    roots and divisions, and independent candidates side by side keep the CPU's units busy. The sample's line
    comes from its own few points (adding the others' zero weights, as the tensor path does, changes no bit), and
    ``A``'s sums are gathered while its members are found."""
    V, k = feats.shape[1], u.shape[0]
    count_valid = cx = cy = scale = 0.0
    for i in range(V):
        if valid[b, i]:
            count_valid += 1.0
            cx += vx[i]
            cy += vy[i]
            scale = max(scale, abs(vx[i]), abs(vy[i]))
    cx /= max(count_valid, 1.0)
    cy /= max(count_valid, 1.0)
    remaining = 0.0
    for i in range(V - 1, -1, -1):
        x, y = (vx[i] - cx, vy[i] - cy) if valid[b, i] else (0.0, 0.0)  # centred: no image-position round-off
        feats[0, i], feats[1, i], feats[2, i], feats[3, i], feats[4, i] = x, y, x * x, y * y, x * y
        remaining += valid[b, i]
        left[i] = remaining
    tiny = (tiny_eps * scale) ** 2

    # cand rows: 0 the uniforms, 1 scratch, 2-4 the sample's line, 5-7 A's line, 8 |A| then A's error (inf: not
    # eligible)
    for j in range(k):
        cand[0, j] = u[j, b]
    _sample(cand[0], valid, b, left, n, cand[1], count_s, index)
    for j in range(k):  # the sample's line
        s0 = s1 = s2 = s3 = s4 = s5 = 0.0
        for t in range(count_s[j]):
            i = index[j, t]
            s0 += 1.0
            s1 += feats[0, i]
            s2 += feats[1, i]
            s3 += feats[2, i]
            s4 += feats[3, i]
            s5 += feats[4, i]
        cand[2, j], cand[3, j], cand[4, j], _ = _tls(s0, s1, s2, s3, s4, s5)
    for j in range(k):  # A = the sample and every valid midpoint within d of its line; A's line (Alg. 1 line 10)
        size, nx, ny, c = count_s[j], cand[2, j], cand[3, j], cand[4, j]
        s0 = s1 = s2 = s3 = s4 = s5 = 0.0
        t = 0
        # Bitwise & and |, not "and" / "or": those branch, and a mispredicted branch per midpoint cost more than
        # all the arithmetic here.
        for i in range(V):
            in_sample = (t < size) & (index[j, t] == i)  # index has a spare column: t = size reads a stale slot
            t += in_sample
            inside = in_sample | (valid[b, i] & (abs(nx * feats[0, i] + ny * feats[1, i] - c) <= d))
            member[j, i] = inside
            w = 1.0 * inside
            s0 += w
            s1 += w * feats[0, i]
            s2 += w * feats[1, i]
            s3 += w * feats[2, i]
            s4 += w * feats[3, i]
            s5 += w * feats[4, i]
        cand[5, j], cand[6, j], cand[7, j], trace = _tls(s0, s1, s2, s3, s4, s5)
        cand[8, j] = math.inf if (size < n) | (s0 < m) | (trace <= s0 * tiny) else s0  # not eligible: inf
    for j in range(k):  # A's error, from explicit residuals (exact ties stay ties, as in the tensor path)
        if cand[8, j] < math.inf:
            nx, ny, c = cand[5, j], cand[6, j], cand[7, j]
            err = 0.0
            for i in range(V):
                r = nx * feats[0, i] + ny * feats[1, i] - c
                err += member[j, i] * (r * r)
            cand[8, j] = err / cand[8, j]
    best, best_err = -1, math.inf
    for j in range(k):
        if cand[8, j] < best_err:  # strict: ties go to the earliest candidate
            best, best_err = j, cand[8, j]
    for i in range(V):
        best_a[b, i] = (best >= 0) & member[max(best, 0), i]
    if best < 0:
        return 0.0, 0.0, 0.0, False, math.inf
    sign = -1.0 if cand[5, best] < 0 else 1.0  # canonical sign: the normal points to +x
    nx, ny = cand[5, best] * sign, cand[6, best] * sign
    return nx, ny, cand[7, best] * sign + nx * cx + ny * cy, True, best_err


@njit(parallel=True, cache=True, error_model="numpy")
def fit_axes(mid, valid, u, n, m, d, tiny_eps, normal, offset, inliers, has_axis, error):
    """:func:`refine.fit_symmetry_axis` on CPU arrays.

    ``mid`` (B, V, 2) float; ``valid`` (B, V) bool (already False where a coordinate is not finite); ``u`` (k, B)
    float64; ``n``, ``m``, ``d`` (B,) float64; ``tiny_eps`` float, ``256 eps`` of the input's dtype. Writes
    ``normal`` (B, 2), ``offset`` (B,), ``inliers`` (B, V) bool, ``has_axis`` (B,) bool, ``error`` (B,)."""
    B, V = valid.shape
    for block in prange((B + _BLOCK - 1) // _BLOCK):
        vx, vy = np.empty(V), np.empty(V)
        feats, left, cand, count_s, index, member = _scratch(V, u.shape[0])
        for b in range(block * _BLOCK, min(B, (block + 1) * _BLOCK)):
            for i in range(V):
                vx[i], vy[i] = mid[b, i, 0], mid[b, i, 1]
            nx, ny, off, has, best_err = _fit_one(vx, vy, valid, u, b, n[b], m[b], d[b], tiny_eps, feats, left,
                                                     cand, count_s, index, member, inliers)
            normal[b, 0], normal[b, 1], offset[b] = nx, ny, off
            has_axis[b], error[b] = has, best_err


@njit(parallel=True, cache=True, error_model="numpy")
def refine_instances(kps, score_threshold, fill_threshold, applicable, left_idx, right_idx, centre_idx, center_votes,
                     u, n, m, d, alpha, tiny_eps, out_kps, axis, inliers, refined, filled, has_axis):
    """:func:`refine.refine_symmetric` on CPU arrays, instance by instance.

    ``kps`` (B, K, 3) float; ``score_threshold`` float (the vote's), ``fill_threshold`` float (the fill's, >= it);
    ``applicable`` (B, K) bool, the points each instance's category has (all True with ``pairs="all"``); ``left_idx``,
    ``right_idx`` (P,) and ``centre_idx`` (C,) int64; ``u`` (k, B) float64; ``n``, ``m``, ``d`` (B,) float64 (already
    scaled per instance); ``alpha``, ``tiny_eps`` floats. Writes ``out_kps`` (B, K, 3), ``axis`` (B, 3), ``inliers`` (B,
    P), ``refined`` (B, P), ``filled`` (B, K), ``has_axis`` (B,), as the tensor path of :func:`refine.refine_symmetric`
    does."""
    B, K, _ = kps.shape
    P = left_idx.shape[0]
    V = P + (centre_idx.shape[0] if center_votes else 0)
    voting, best_a = np.empty((B, V), np.bool_), np.empty((B, V), np.bool_)
    for block in prange((B + _BLOCK - 1) // _BLOCK):
        vx, vy, present, sure = np.empty(V), np.empty(V), np.empty(K, np.bool_), np.empty(K, np.bool_)
        feats, left, cand, count_s, index, member = _scratch(V, u.shape[0])
        for b in range(block * _BLOCK, min(B, (block + 1) * _BLOCK)):
            for p in range(K):
                x, y, score = kps[b, p, 0], kps[b, p, 1], kps[b, p, 2]
                out_kps[b, p, 0], out_kps[b, p, 1], out_kps[b, p, 2] = x, y, score
                filled[b, p] = False
                # keypoints.missing_mask, negated (a NaN score compares False: missing)
                present[p] = math.isfinite(x) & math.isfinite(y) & (score > score_threshold)
                sure[p] = math.isfinite(x) & math.isfinite(y) & (score > fill_threshold)
            for i in range(V):
                if i < P:  # a pair votes with its midpoint when both points are present (and the garment's)
                    l_, r_ = left_idx[i], right_idx[i]
                    vote = present[l_] & present[r_] & applicable[b, l_] & applicable[b, r_]
                    x = 0.5 * (kps[b, l_, 0] + kps[b, r_, 0])
                    y = 0.5 * (kps[b, l_, 1] + kps[b, r_, 1])
                else:  # a non-symmetric point votes as its own midpoint (center_votes)
                    c_ = centre_idx[i - P]
                    vote = present[c_] & applicable[b, c_]
                    x, y = kps[b, c_, 0], kps[b, c_, 1]
                voting[b, i] = vote & math.isfinite(x) & math.isfinite(y)  # as the tensor path (float64 here, though)
                vx[i], vy[i] = x, y
            nx, ny, offset, has, _ = _fit_one(vx, vy, voting, u, b, n[b], m[b], d[b], tiny_eps, feats, left, cand,
                                              count_s, index, member, best_a)
            axis[b, 0], axis[b, 1], axis[b, 2] = nx, ny, offset
            has_axis[b] = has
            for i in range(P):
                l_, r_ = left_idx[i], right_idx[i]
                inliers[b, i] = best_a[b, i]
                refined[b, i] = False
                if not has:
                    continue
                xl, yl, xr, yr = kps[b, l_, 0], kps[b, l_, 1], kps[b, r_, 0], kps[b, r_, 1]
                has_l, has_r = present[l_] & applicable[b, l_], present[r_] & applicable[b, r_]
                pair_ok = applicable[b, l_] & applicable[b, r_]
                twice_l = 2.0 * (nx * xl + ny * yl - offset)  # mirror images across the axis
                twice_r = 2.0 * (nx * xr + ny * yr - offset)
                mxl, myl = xl - twice_l * nx, yl - twice_l * ny
                mxr, myr = xr - twice_r * nx, yr - twice_r * ny
                # the fill's rule first: an unsure point (<= fill_threshold) with a sure partner takes the
                # partner's mirror image and score, even if it voted; else a complete pair gets EMA_alpha(p, q)
                if pair_ok & sure[r_] & applicable[b, r_] & (not sure[l_]):
                    out_kps[b, l_, 0], out_kps[b, l_, 1], out_kps[b, l_, 2] = mxr, myr, kps[b, r_, 2]
                    filled[b, l_] = True
                elif pair_ok & sure[l_] & applicable[b, l_] & (not sure[r_]):
                    out_kps[b, r_, 0], out_kps[b, r_, 1], out_kps[b, r_, 2] = mxl, myl, kps[b, l_, 2]
                    filled[b, r_] = True
                elif has_l & has_r & (not best_a[b, i]):  # from the original values
                    refined[b, i] = True
                    out_kps[b, l_, 0] = (1.0 - alpha) * xl + alpha * mxr
                    out_kps[b, l_, 1] = (1.0 - alpha) * yl + alpha * myr
                    out_kps[b, r_, 0] = (1.0 - alpha) * xr + alpha * mxl
                    out_kps[b, r_, 1] = (1.0 - alpha) * yr + alpha * myl
