"""The symmetry refiner (paper Alg. 2, steps 1-8): fit the axis, move the off-axis pairs, fill the missing points.

:func:`refine_symmetric` takes the midpoints of each instance's complete left/right pairs, fits their symmetry axis
(Alg. 1, :mod:`fashion_lib.refine_axis`), moves every complete pair whose midpoint is not an inlier of the axis
towards its partner's mirror image by an exponential moving average, and fills a point missing from a pair with its
partner's mirror image. :func:`summarize_refinement` counts what it did. Re-exported by :mod:`fashion_lib.refine`,
whose docstring gives the readings of the paper (each a field of :class:`~fashion_lib.refine_config.RefineConfig`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from fashion_lib.keypoints import KeypointSchema, get_schema, missing_mask
from fashion_lib.refine_axis import (
    _as_per_instance,
    _fit_axis_reference,
    _kernel,
    _mirror,
    _np,
    _np64,
    _resolve_backend,
    _rounded,
    _tiny_eps,
    _uniforms,
    absurd_points,
    instance_size,
    reflect,
)
from fashion_lib.refine_config import RefineConfig, RefineSummary, resolve_config
from fashion_lib.refine_tensor import _fit_axis_t

__all__ = ["RefineResult", "refine_symmetric", "summarize_refinement"]


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
    backend: str,
) -> None:
    """Refine one chunk of instances into ``out`` (views of the whole batch's result) with ``backend``
    (``"kernel"``, ``"tensor"`` or ``"reference"``: the same random numbers and the same decisions)."""
    u = _uniforms(cfg.k, len(keypoints), generator, keypoints.device)  # (k, B): all the randomness of the chunk
    if backend == "reference":
        _refine_reference(keypoints, schema, cfg, applicable, u.t(), out)
    elif backend == "kernel":
        _refine_kernel(keypoints, schema, cfg, applicable, u, out)
    else:
        _refine_batch_last(keypoints, schema, cfg, applicable, u, out)


def _refine_reference(
    keypoints: torch.Tensor,
    schema: KeypointSchema,
    cfg: RefineConfig,
    applicable: torch.Tensor | None,
    u: torch.Tensor,
    out: RefineResult,
) -> None:
    """Alg. 2 steps 4-8 as batch-first tensor operations (``backend="reference"``), into ``out``.

    ``keypoints`` (B, K, 3), ``applicable`` (B, K) bool or None (``pairs="all"``), ``u`` (B, k) float64
    uniforms."""
    present = ~missing_mask(keypoints, cfg.score_threshold)  # (B, K)
    n, m, d = _instance_parameters(keypoints, present, schema, cfg, applicable, keypoints.dtype)  # (B,) each
    left, right = schema.pairs.to(keypoints.device).unbind(1)  # (P,) each
    centre = schema.center.to(keypoints.device)
    xy, score = keypoints[..., :2], keypoints[..., 2]  # (B, K, 2), (B, K)
    votes = present if applicable is None else present & applicable  # (B, K) points that may vote
    complete = votes[:, left] & votes[:, right]  # (B, P): a pair with a point missing has no midpoint
    midpoints = 0.5 * (xy[:, left] + xy[:, right])  # (B, P, 2)
    voting = complete
    if cfg.center_votes:  # non-symmetric points lie on the axis: they vote as their own midpoints
        midpoints = torch.cat([midpoints, xy[:, centre]], 1)  # (B, P + C, 2)
        voting = torch.cat([voting, votes[:, centre]], 1)
    voting = voting & torch.isfinite(midpoints).all(-1)  # the midpoint of two huge values may overflow
    axis = _fit_axis_reference(midpoints, voting, n, m, d, u)
    has = axis.has_axis[:, None]  # (B, 1)
    inliers = axis.inliers[:, :len(left)]  # (B, P)

    q_left = reflect(xy[:, right], axis.normal, axis.offset)  # (B, P, 2): q of each left point, its partner's
    q_right = reflect(xy[:, left], axis.normal, axis.offset)  # mirror image across the axis
    if cfg.fill_threshold is None:  # the paper's rule: a missing point is filled from a present partner
        unsure, sure = ~present, votes
    else:  # the fill's own rule: a point at or below fill_threshold is filled from a partner above it
        unsure = missing_mask(keypoints, cfg.fill_threshold)
        sure = ~unsure if applicable is None else ~unsure & applicable
    can_fill = has if applicable is None else has & applicable[:, left] & applicable[:, right]  # (B, P)
    fill_left = can_fill & unsure[:, left] & sure[:, right]  # (B, P)
    fill_right = can_fill & unsure[:, right] & sure[:, left]
    refined = complete & has & ~inliers & ~fill_left & ~fill_right  # pairs moved by the EMA, from original values
    a = cfg.alpha
    new_left = torch.where(refined[..., None], (1 - a) * xy[:, left] + a * q_left, xy[:, left])
    new_right = torch.where(refined[..., None], (1 - a) * xy[:, right] + a * q_right, xy[:, right])
    new = keypoints.clone()
    new[:, left, :2] = torch.where(fill_left[..., None], q_left, new_left)
    new[:, right, :2] = torch.where(fill_right[..., None], q_right, new_right)
    new[:, left, 2] = torch.where(fill_left, score[:, right], score[:, left])  # a filled point takes its partner's
    new[:, right, 2] = torch.where(fill_right, score[:, left], score[:, right])  # score: the evidence it rests on
    filled = torch.zeros_like(present)
    filled[:, left], filled[:, right] = fill_left, fill_right
    out.keypoints.copy_(new)
    out.axis.copy_(torch.cat([axis.normal, axis.offset[:, None]], -1))
    out.inliers.copy_(inliers)
    out.refined.copy_(refined)
    out.filled.copy_(filled)
    out.has_axis.copy_(axis.has_axis)


def _refine_kernel(
    keypoints: torch.Tensor,
    schema: KeypointSchema,
    cfg: RefineConfig,
    applicable: torch.Tensor | None,
    u: torch.Tensor,
    out: RefineResult,
) -> None:
    """Alg. 2 steps 4-8 through the compiled CPU kernel (``backend="kernel"``), into ``out``; ``u`` (k, B) float64
    uniforms."""
    B, K, _ = keypoints.shape
    dtype = keypoints.dtype
    # The kernel finds the present points itself; only d_unit="relative" needs them here (missing_mask would be
    # the slowest step left on this side).
    present = ~missing_mask(keypoints, cfg.score_threshold) if cfg.d_unit == "relative" else None
    n, m, d = _instance_parameters(keypoints, present, schema, cfg, applicable, dtype)
    _kernel().refine_instances(
        _np(keypoints), _rounded(cfg.score_threshold, dtype), _rounded(cfg.fill_below, dtype),
        _np(torch.ones(B, K, dtype=torch.bool) if applicable is None else applicable), _np(schema.pairs[:, 0]),
        _np(schema.pairs[:, 1]), _np(schema.center), cfg.center_votes, _np(u),
        _np64(n), _np64(m), _np64(d), float(cfg.alpha), _tiny_eps(dtype), out.keypoints.numpy(), out.axis.numpy(),
        out.inliers.numpy(), out.refined.numpy(), out.filled.numpy(), out.has_axis.numpy())


def _refine_batch_last(
    keypoints: torch.Tensor,
    schema: KeypointSchema,
    cfg: RefineConfig,
    applicable: torch.Tensor | None,
    u: torch.Tensor,
    out: RefineResult,
) -> None:
    """Alg. 2 steps 4-8 batch-last (``backend="tensor"``, what a GPU runs), into ``out``; the arguments as for
    :func:`_refine_reference` but ``u`` (k, B)."""
    B, K, _ = keypoints.shape
    device, dtype = keypoints.device, keypoints.dtype
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
        torch.where(voting, vx, zero), torch.where(voting, vy, zero), voting.to(dtype), n=n, m=m, d=d,
        u=u, tiny_eps=_tiny_eps(dtype))
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
    backend: str = "auto",
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
    backend : one of :data:`~fashion_lib.refine_axis.BACKENDS`: ``"auto"`` (the default: the compiled kernel for
        float32/float64 CPU input, else ``"tensor"``), ``"kernel"``, ``"tensor"`` (batch-last, what a GPU runs) or
        ``"reference"`` (batch-first, as the paper writes it). All draw the same random numbers; on float64 input
        they reach the same decisions, and the kernel and the tensor path give the same key points
        (``tests/test_refine_cpu.py``).

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
    backend = _resolve_backend(backend, keypoints)
    for s in range(0, B, chunk_size):  # over chunks of instances, to bound memory
        part = RefineResult(**{f.name: getattr(result, f.name)[s:s + chunk_size]
                               for f in dataclasses.fields(RefineResult)})
        chunk_applicable = None if applicable is None else applicable[s:s + chunk_size]
        _refine_chunk(source[s:s + chunk_size], schema, cfg, chunk_applicable, generator, out=part, backend=backend)
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
