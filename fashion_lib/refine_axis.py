"""The symmetry axis (paper Alg. 1): RANSAC over the midpoints of left/right key-point pairs, batched over instances.

:func:`fit_symmetry_axis` fits, per instance, the total-least-squares line through the midpoints that best explains
them (the readings of the paper are listed in :mod:`fashion_lib.refine`), with the geometry the refiner needs
beside it (:func:`reflect`, :func:`instance_size`, :func:`absurd_points`). Re-exported by :mod:`fashion_lib.refine`.

The reference implementation (``backend="reference"``, :func:`_fit_axis_reference`) is written here as the paper
states Alg. 1, batch-first with boolean masks; the faster backends sit beside it, chosen explicitly or by
``backend="auto"`` (the default): the batch-last tensor path (:mod:`fashion_lib.refine_tensor`) and the compiled CPU
kernel (:mod:`fashion_lib.refine_cpu`). May import: torch, :mod:`fashion_lib.refine_tensor`, and (on first use)
:mod:`fashion_lib.refine_cpu`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from fashion_lib.refine_tensor import _fit_axis_t

__all__ = ["AxisFit", "BACKENDS", "fit_symmetry_axis", "reflect", "instance_size", "absurd_points"]


@dataclass(frozen=True)
class AxisFit:
    """The best symmetry axis per instance (:func:`fit_symmetry_axis`)."""

    normal: torch.Tensor  # (B, 2) float unit normal; the axis is {p : normal . p = offset}; normal[:, 0] >= 0
    offset: torch.Tensor  # (B,) float, pixels
    inliers: torch.Tensor  # (B, P) bool, A_best (all False where has_axis is False)
    has_axis: torch.Tensor  # (B,) bool, False where no candidate reached m (or all midpoints coincide)
    error: torch.Tensor  # (B,) float, mean squared orthogonal distance over A_best, pixels^2 (inf without axis)


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
# Backends: one algorithm, three implementations that draw the same random numbers
# --------------------------------------------------------------------------------------------------------------

# "reference": batch-first tensor operations that read like Alg. 1 (below). "tensor": the same steps batch-last and
# tuned for memory traffic (fashion_lib.refine_tensor), what a GPU runs. "kernel": a compiled per-instance loop on
# the CPU (fashion_lib.refine_cpu). "auto": the kernel for float32/float64 CPU input, else the tensor path.
BACKENDS = ("auto", "kernel", "tensor", "reference")


def _kernel():
    """:mod:`fashion_lib.refine_cpu`, imported on first use: importing numba takes about a second."""
    from fashion_lib import refine_cpu

    return refine_cpu


def _resolve_backend(backend: str, tensor: torch.Tensor) -> str:
    """The implementation that refines ``tensor``: ``"kernel"``, ``"tensor"`` or ``"reference"``.

    The kernel runs float32/float64 CPU tensors on as many threads as torch has. ``"auto"`` falls back to the tensor
    path where it cannot run: other devices and dtypes, and a process forked after it ran (see
    :func:`fashion_lib.refine_cpu.ready`); an explicit ``"kernel"`` raises there instead."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend in ("tensor", "reference"):
        return backend
    fits = tensor.device.type == "cpu" and tensor.dtype in (torch.float32, torch.float64)
    if backend == "kernel" and not fits:
        raise ValueError(f"backend='kernel' runs float32 or float64 CPU tensors, got {tensor.dtype} on "
                         f"{tensor.device}: use backend='tensor' or 'auto'")
    ready = fits and _kernel().ready(torch.get_num_threads())
    if backend == "kernel" and not ready:
        raise RuntimeError("backend='kernel' cannot run in a process forked from one that ran it (OpenMP): use "
                           "backend='tensor' or 'auto', or start worker processes with 'spawn'")
    return "kernel" if ready else "tensor"


def _uniforms(k: int, batch: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """(k, B) float64 uniforms on ``device``, one per RANSAC candidate, drawn on ``generator``'s device.

    The only random numbers the refiner consumes; every backend draws them here, so a CPU generator gives the same
    subsets for CPU and GPU input."""
    return torch.rand(k, batch, generator=generator, device=generator.device, dtype=torch.float64).to(device)


def _tiny_eps(dtype: torch.dtype) -> float:
    """Relative size below which a candidate's ``A`` counts as coincident points: 256 machine epsilons."""
    return 256 * torch.finfo(dtype).eps


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
    backend: str = "auto",
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
    :func:`_fit_axis_reference` is these steps as batch-first tensor operations.

    Parameters
    ----------
    midpoints : (B, P, 2) float, pixels; entries where ``valid`` is False are ignored (may be NaN).
    valid : (B, P) bool.
    k : int >= 1, candidates.
    n : int >= 2 or (B,) long, midpoints per sample.
    m : int >= 1 or (B,) long, the smallest ``|A|`` a candidate may have.
    d : float >= 0 or (B,) float, inlier distance in pixels.
    generator : torch.Generator; see :func:`_uniforms` for devices.
    backend : one of :data:`BACKENDS`. ``"auto"`` (the compiled kernel for float32/float64 CPU input, else
        ``"tensor"``), ``"kernel"``, ``"tensor"`` and ``"reference"`` draw the same random numbers and sample the
        same subsets; on float64 input they reach the same decisions (``tests/test_refine_cpu.py``).

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
    backend = _resolve_backend(backend, midpoints)
    valid = valid & torch.isfinite(midpoints).all(-1)
    u = _uniforms(k, B, generator, device)  # (k, B)
    if backend == "reference":
        return _fit_axis_reference(midpoints, valid, n_t, m_t, d_t, u.t())
    if backend == "kernel":
        normal, offset, inliers = midpoints.new_empty(B, 2), midpoints.new_empty(B), torch.empty(B, P, dtype=torch.bool)
        has_axis, error = torch.empty(B, dtype=torch.bool), midpoints.new_empty(B)
        _kernel().fit_axes(_np(midpoints), _np(valid), _np(u), _np64(n_t), _np64(m_t), _np64(d_t), _tiny_eps(dtype),
                           normal.numpy(), offset.numpy(), inliers.numpy(), has_axis.numpy(), error.numpy())
        return AxisFit(normal=normal, offset=offset, inliers=inliers, has_axis=has_axis, error=error)
    pts = torch.nan_to_num(midpoints, nan=0.0, posinf=0.0, neginf=0.0) * valid[..., None]
    vf = valid.t().to(dtype).contiguous()  # (P, B)
    x, y = pts[..., 0].t().contiguous(), pts[..., 1].t().contiguous()
    nx, ny, offset, has_axis, error, inliers = _fit_axis_t(x, y, vf, n=n_t, m=m_t, d=d_t, u=u,
                                                           tiny_eps=_tiny_eps(dtype))
    return AxisFit(normal=torch.stack([nx, ny], -1), offset=offset, inliers=inliers.t() > 0.5,
                   has_axis=has_axis > 0.5, error=error)


# --------------------------------------------------------------------------------------------------------------
# The reference: Alg. 1 as batch-first tensor operations (B instances, k candidates, P midpoints), boolean masks
# --------------------------------------------------------------------------------------------------------------


def _sample_subsets(valid: torch.Tensor, n: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """``k`` uniform random subsets of ``n`` valid midpoints per instance (Knuth's selection sampling, Algorithm S).

    Midpoint ``i`` is taken with probability (still needed) / (valid midpoints from ``i`` on), which gives every
    ``n``-subset of the valid midpoints the same chance; where fewer than ``n`` are valid, all are taken (the caller
    rejects that candidate). Each candidate spends one float64 uniform digit by digit: at a valid midpoint,
    ``digit = floor(u * L)`` is uniform on ``{0, ..., L - 1}`` (``L`` the valid midpoints from ``i`` on), the midpoint
    is taken when ``digit < need``, and the fraction ``u * L - digit`` is the next uniform. An invalid midpoint adds
    ``P + 1`` to ``u`` (its digit is then never below ``need``), the step the other backends take, so that all of
    them sample the same subsets from the same uniforms.

    Parameters
    ----------
    valid : (B, P) bool.
    n : (B,) float, midpoints per subset.
    u : (B, k) float64 uniforms in [0, 1).

    Returns
    -------
    (B, k, P) bool, ``subsets[b, j, i]``: midpoint ``i`` is in candidate ``j`` of instance ``b``.
    """
    B, P = valid.shape
    remaining = valid.flip(1).cumsum(1).flip(1).double()  # (B, P): valid midpoints from i on
    need = n.double()[:, None].expand_as(u)  # (B, k)
    taken = []
    for i in range(P):  # a handful of midpoints; each step is vectorised over instances and candidates
        u = torch.where(valid[:, i, None], u * remaining[:, i, None], u + (P + 1))
        digit = u.floor()
        u = u - digit
        take = digit < need  # (B, k)
        need = need - take.double()
        taken.append(take)
    return torch.stack(taken, -1) if P else valid.new_zeros(B, u.shape[1], 0)


def _tls_line(points: torch.Tensor, members: torch.Tensor):
    """Total-least-squares line through the ``members`` of each set of ``points``.

    Parameters
    ----------
    points : (B, P, 2) float, centred per instance.
    members : (B, k, P) bool.

    Returns
    -------
    normal : (B, k, 2) unit normal, perpendicular to the direction of largest spread; the line is
        ``{p : normal . p = offset}``.
    offset : (B, k).
    count : (B, k) float, members.
    trace : (B, k) float, the scatter's trace (0: the members coincide).
    """
    w = members.to(points.dtype)  # (B, k, P)
    x, y = points[:, None, :, 0], points[:, None, :, 1]  # (B, 1, P)
    count = w.sum(-1)  # (B, k)
    mx = (w * x).sum(-1) / count.clamp(min=1.0)  # (B, k) centroid
    my = (w * y).sum(-1) / count.clamp(min=1.0)
    cx, cy = x - mx[..., None], y - my[..., None]  # (B, k, P) about the centroid
    sxx, syy, sxy = (w * cx * cx).sum(-1), (w * cy * cy).sum(-1), (w * cx * cy).sum(-1)  # scatter, (B, k) each
    # The direction of largest spread is the scatter's eigenvector for its larger eigenvalue, in closed form (an
    # exact normal for a line along an image axis); a degenerate set (no spread) gets the direction (1, 0).
    diff = sxx - syy
    r = torch.sqrt(diff * diff + 4 * sxy * sxy)
    direction = torch.where((diff >= 0)[..., None], torch.stack([diff + r, 2 * sxy], -1),
                            torch.stack([2 * sxy, r - diff], -1))  # (B, k, 2)
    ux, uy = direction.unbind(-1)  # made to point to +x (to +y where vertical), as the other backends do
    direction = torch.where(((ux < 0) | ((ux == 0) & (uy < 0)))[..., None], -direction, direction)
    length = direction.norm(dim=-1, keepdim=True)
    direction = torch.where(length > 0, direction / length.clamp(min=torch.finfo(points.dtype).tiny),
                            torch.tensor([1.0, 0.0], dtype=points.dtype, device=points.device))
    normal = torch.stack([-direction[..., 1], direction[..., 0]], -1)  # (B, k, 2)
    offset = normal[..., 0] * mx + normal[..., 1] * my
    return normal, offset, count, sxx + syy


def _fit_axis_reference(
    midpoints: torch.Tensor, valid: torch.Tensor, n: torch.Tensor, m: torch.Tensor, d: torch.Tensor, u: torch.Tensor
) -> AxisFit:
    """Alg. 1 (the steps of :func:`fit_symmetry_axis`) for ``backend="reference"``.

    ``midpoints`` (B, P, 2), ``valid`` (B, P) bool (False where not finite), ``n``, ``m``, ``d`` (B,) of the
    midpoints' dtype, ``u`` (B, k) float64 uniforms."""
    B, P, _ = midpoints.shape
    dtype = midpoints.dtype
    pts = torch.where(valid[..., None], midpoints, torch.zeros_like(midpoints))  # (B, P, 2)
    count_valid = valid.sum(1, keepdim=True).clamp(min=1)  # (B, 1)
    centre = pts.sum(1) / count_valid  # (B, 2)
    scale = pts.abs().flatten(1).amax(1) if P else centre.abs().amax(1)  # (B,) size of the coordinates
    pts = torch.where(valid[..., None], pts - centre[:, None], torch.zeros_like(pts))  # centred: no round-off from
    # the image position in the moments

    def residuals(normal: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:  # (B, k, P) signed distances
        return normal[..., 0, None] * pts[:, None, :, 0] + normal[..., 1, None] * pts[:, None, :, 1] - offset[..., None]

    sample = _sample_subsets(valid, n, u)  # (B, k, P)
    normal, offset, count_sample, _ = _tls_line(pts, sample)  # the line through each sample
    within = residuals(normal, offset).abs() <= d[:, None, None]  # (B, k, P)
    in_a = sample | (valid[:, None] & within)  # A: the sample and every valid midpoint within d
    normal, offset, count, trace = _tls_line(pts, in_a)  # refit on A
    error = torch.where(in_a, residuals(normal, offset).square(), 0.0).sum(-1) / count.clamp(min=1.0)  # (B, k)
    tiny = (_tiny_eps(dtype) * scale[:, None]) ** 2
    eligible = (count_sample >= n[:, None]) & (count >= m[:, None]) & (trace > count * tiny)  # (B, k)
    error = torch.where(eligible, error, torch.inf)
    best_error, best = error.min(1)  # (B,), the first candidate on ties
    has_axis = eligible.any(1)  # (B,)
    pick = torch.arange(B, device=midpoints.device)
    normal, offset, inliers = normal[pick, best], offset[pick, best], in_a[pick, best]  # (B, 2), (B,), (B, P)
    sign = torch.where(normal[:, 0] < 0, -1.0, 1.0).to(dtype)  # canonical: the normal points to +x
    normal = normal * sign[:, None]
    offset = offset * sign + (normal * centre).sum(-1)  # back to image coordinates
    return AxisFit(normal=torch.where(has_axis[:, None], normal, 0.0), offset=torch.where(has_axis, offset, 0.0),
                   inliers=inliers & has_axis[:, None], has_axis=has_axis, error=best_error)


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
