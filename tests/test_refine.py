"""New-key-detection (fashion_lib.refine): RANSAC axis, the EMA refiner and the two-scale loop.

The oracle is a per-instance, plain-Python (NumPy float64) implementation of Alg. 1 and steps 4-8 of Alg. 2 as the
study notes read them; the batched code must agree with it given the same sampled subsets.

Every test runs three times on the CPU, once per backend: the compiled kernel (``fashion_lib.refine_cpu``, what a
CPU runs), the batch-last tensor path (``fashion_lib.refine_tensor``, what a GPU runs) and the batch-first reference
(``fashion_lib.refine_axis``); ``tests/test_refine_cpu.py`` checks that they agree with each other.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import torch

from fashion_lib import refine, refine_axis
from fashion_lib.crops import CropMapping
from fashion_lib.keypoints import COCO, FASHIONAI
from fashion_lib.refine import (
    RefineConfig,
    RefineSummary,
    calibrate_missing_threshold,
    fit_symmetry_axis,
    match_instances,
    new_key_detection,
    refine_symmetric,
    reflect,
    summarize_refinement,
)


@pytest.fixture(autouse=True, params=["kernel", "tensor", "reference"])
def backend(request, monkeypatch):
    """Run the test through each backend: this module's names of the refiner's entry points pass ``backend``."""
    for fn in (fit_symmetry_axis, refine_symmetric, new_key_detection):
        monkeypatch.setitem(globals(), fn.__name__, functools.partial(fn, backend=request.param))
    return request.param


# ------------------------------------------------------------------------------------------------------------------
# Instances
# ------------------------------------------------------------------------------------------------------------------


def symmetric_instances(b: int, schema=FASHIONAI, *, seed: int = 0, dtype=torch.float64, centre=(300.0, 250.0),
                        tilt_deg: float = 15.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``b`` exactly symmetric instances: (B, K, 3) key points (score 1), their axes' unit normals and offsets.

    Pair midpoints spread along the axis (a line through ``centre`` tilted by up to ``tilt_deg``); centre points
    lie on it."""
    g = torch.Generator().manual_seed(seed)
    K, P = schema.num_keypoints, schema.num_pairs
    angle = (torch.rand(b, generator=g, dtype=torch.float64) * 2 - 1) * math.radians(tilt_deg)
    normal = torch.stack([torch.cos(angle), torch.sin(angle)], -1)  # (B, 2), the axis direction is (-sin, cos)
    direction = torch.stack([-torch.sin(angle), torch.cos(angle)], -1)
    c = torch.tensor(centre, dtype=torch.float64)
    along = (torch.rand(b, P, generator=g, dtype=torch.float64) * 2 - 1) * 120  # (B, P) position along the axis
    half = 10 + torch.rand(b, P, generator=g, dtype=torch.float64) * 60  # (B, P) half width of each pair
    mid = c + along[..., None] * direction[:, None]  # (B, P, 2)
    left = mid - half[..., None] * normal[:, None]
    right = mid + half[..., None] * normal[:, None]
    kps = torch.zeros(b, K, 3, dtype=torch.float64)
    kps[:, schema.pairs[:, 0], :2] = left
    kps[:, schema.pairs[:, 1], :2] = right
    on_axis = (torch.rand(b, len(schema.center), generator=g, dtype=torch.float64) * 2 - 1) * 120
    kps[:, schema.center, :2] = c + on_axis[..., None] * direction[:, None]
    kps[..., 2] = 1.0
    offset = (normal * c).sum(-1)
    return kps.to(dtype), normal.to(dtype), offset.to(dtype)


def noisy_instances(b: int, *, seed: int = 1, noise: float = 0.3, outlier_rate: float = 0.25,
                    missing_rate: float = 0.08) -> torch.Tensor:
    """Symmetric FashionAI instances with pixel noise, some pairs pushed off the axis and some points missing."""
    kps, normal, _ = symmetric_instances(b, seed=seed)
    g = torch.Generator().manual_seed(seed + 100)
    kps[..., :2] += torch.randn(b, 24, 2, generator=g, dtype=torch.float64) * noise
    P = FASHIONAI.num_pairs
    shift = (torch.rand(b, P, generator=g, dtype=torch.float64) < outlier_rate) * (
        3 + 15 * torch.rand(b, P, generator=g, dtype=torch.float64))  # (B, P) pixels across the axis
    for side in (0, 1):
        kps[:, FASHIONAI.pairs[:, side], :2] += shift[..., None] * normal[:, None]
    missing = torch.rand(b, 24, generator=g) < missing_rate
    kps[missing] = torch.tensor([0.0, 0.0, 0.0], dtype=torch.float64)
    return kps


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------------------------------------------------------
# The oracle: one instance at a time, in plain Python and NumPy float64
# ------------------------------------------------------------------------------------------------------------------


def tls_line(points: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Total-least-squares line through (n, 2) points: unit normal, offset, total scatter."""
    centroid = points.mean(0)
    scatter = (points - centroid).T @ (points - centroid)
    values, vectors = np.linalg.eigh(scatter)
    normal = vectors[:, 0]  # smallest eigenvalue: the direction of least spread
    return normal, float(normal @ centroid), float(np.trace(scatter))


def oracle_axis(mid: np.ndarray, valid: np.ndarray, subsets: np.ndarray, n: int, m: int, d: float):
    """Alg. 1 for one instance. ``mid`` (P, 2), ``valid`` (P,), ``subsets`` (P, k) bool. Returns (normal, c, A) or
    None."""
    best = None
    for j in range(subsets.shape[1]):
        sample = [i for i in range(len(mid)) if subsets[i, j]]
        if len(sample) < n:
            continue
        normal, c, _ = tls_line(mid[sample])
        a = sorted(set(sample) | {i for i in range(len(mid)) if valid[i] and abs(mid[i] @ normal - c) <= d})
        if len(a) < m:
            continue
        normal, c, trace = tls_line(mid[a])
        if trace <= 1e-9:
            continue
        err = float(np.mean((mid[a] @ normal - c) ** 2))
        if best is None or err < best[0]:
            best = (err, normal, c, a)
    return None if best is None else best[1:]


def oracle_refine(kps: np.ndarray, subsets: np.ndarray, schema, alpha: float, n: int, m: int, d: float):
    """Steps 2-8 of Alg. 2 for one instance (pairs="all", score threshold 0). Returns the refined (K, 3) array and
    the refined-pair mask."""
    pairs = schema.pairs.numpy()
    present = (kps[:, 2] > 0) & np.isfinite(kps[:, :2]).all(1)
    complete = present[pairs[:, 0]] & present[pairs[:, 1]]
    mid = 0.5 * (kps[pairs[:, 0], :2] + kps[pairs[:, 1], :2])
    fit = oracle_axis(np.where(complete[:, None], mid, 0.0), complete, subsets, n, m, d)
    out = kps.copy()
    refined = np.zeros(len(pairs), dtype=bool)
    if fit is None:
        return out, refined
    normal, c, a = fit

    def mirror(p):
        return p - 2 * (p @ normal - c) * normal

    for i, (l_idx, r_idx) in enumerate(pairs):
        left, right = kps[l_idx, :2], kps[r_idx, :2]
        if complete[i] and i not in a:
            refined[i] = True
            out[l_idx, :2] = (1 - alpha) * left + alpha * mirror(right)
            out[r_idx, :2] = (1 - alpha) * right + alpha * mirror(left)
        elif present[r_idx] and not present[l_idx]:
            out[l_idx, :2], out[l_idx, 2] = mirror(right), kps[r_idx, 2]
        elif present[l_idx] and not present[r_idx]:
            out[r_idx, :2], out[r_idx, 2] = mirror(left), kps[l_idx, 2]
    return out, refined


def subsets_for(kps: torch.Tensor, schema, k: int, n: int, seed: int) -> torch.Tensor:
    """The subsets refine_symmetric draws for ``kps`` with generator ``seed``: (B, P, k) bool."""
    present = (kps[..., 2] > 0) & torch.isfinite(kps[..., :2]).all(-1)
    complete = present[:, schema.pairs[:, 0]] & present[:, schema.pairs[:, 1]]  # (B, P)
    u = refine_axis._uniforms(k, len(kps), gen(seed), kps.device).t()  # (B, k), the refiner's draw
    return refine_axis._sample_subsets(complete, torch.full((len(kps),), float(n)), u).transpose(1, 2)


# ------------------------------------------------------------------------------------------------------------------
# RANSAC
# ------------------------------------------------------------------------------------------------------------------


def test_sampled_subsets_are_uniform_and_use_only_valid_midpoints():
    valid = torch.tensor([1, 0, 1, 1, 1, 0, 1], dtype=torch.bool).expand(3000, 7)
    u = refine_axis._uniforms(4, 3000, gen(5), torch.device("cpu")).t()  # (B, k)
    s = refine_axis._sample_subsets(valid, torch.full((3000,), 3.0), u)  # (B, k, P) bool
    assert (s.sum(-1) == 3).all(), "every candidate must hold exactly n midpoints"
    assert not s[..., [1, 5]].any(), "an invalid midpoint was sampled"
    # 5 valid midpoints, 10 subsets of 3: each should come up ~1200 times in 12000 draws
    codes = (s.reshape(-1, 7).double() * (2 ** torch.arange(7, dtype=torch.float64))).sum(1)
    counts = torch.unique(codes, return_counts=True)[1].double()
    assert len(counts) == 10
    chi2 = float(((counts - 1200) ** 2 / 1200).sum())
    assert chi2 < 27.9, f"subset frequencies are not uniform (chi2 = {chi2:.1f}, 9 dof, p = 0.001)"


def test_exactly_symmetric_float32_input_far_from_the_origin_keeps_every_midpoint():
    # Uncentred float32 moments turn the zero-error tie into noise and pick a candidate with fewer inliers.
    kps, normal, offset = symmetric_instances(64, centre=(3000.0, 2500.0), dtype=torch.float32)
    pairs = FASHIONAI.pairs
    mid = 0.5 * (kps[:, pairs[:, 0], :2] + kps[:, pairs[:, 1], :2])
    fit = fit_symmetry_axis(mid, torch.ones(64, 11, dtype=torch.bool), k=10, n=5, m=8, d=1e-3, generator=gen())
    assert fit.has_axis.all()
    assert fit.inliers.all(), "a midpoint exactly on the axis was rejected"
    assert torch.allclose(fit.normal, normal, atol=1e-4)
    assert torch.allclose(fit.offset, offset, atol=0.05)


def test_planted_outliers_are_rejected_and_the_axis_recovered():
    kps, normal, offset = symmetric_instances(200, seed=3)
    pairs = FASHIONAI.pairs
    mid = 0.5 * (kps[:, pairs[:, 0], :2] + kps[:, pairs[:, 1], :2])
    g = torch.Generator().manual_seed(9)
    mid = mid + torch.randn(mid.shape, generator=g, dtype=torch.float64) * 0.2
    planted = torch.zeros(200, 11, dtype=torch.bool)
    planted[:, [2, 7]] = True  # two of eleven midpoints far off the axis
    mid = mid + planted[..., None] * 25.0 * normal[:, None]
    fit = fit_symmetry_axis(mid, torch.ones(200, 11, dtype=torch.bool), k=30, n=3, m=8, d=1.5, generator=gen(1))
    assert fit.has_axis.all()
    assert not (fit.inliers & planted).any(), "a planted outlier was taken as an inlier"
    # Alg. 1 keeps the candidate with the smallest mean error, not the most inliers, so a noisy true midpoint can
    # be left out where a smaller A fits better; almost all are kept.
    assert (fit.inliers & ~planted).sum() >= 0.97 * (~planted).sum()
    assert torch.allclose(fit.normal, normal, atol=0.01)
    # the fitted axis passes within half a pixel of the true axis's centre
    centre = torch.tensor([300.0, 250.0], dtype=torch.float64)
    assert ((fit.normal * centre).sum(-1) - fit.offset).abs().max() < 0.5


def test_no_axis_when_no_candidate_reaches_m_or_the_sample_is_short():
    mid = torch.randn(3, 6, 2, generator=gen(2)) * 50
    valid = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 0, 0, 0, 0], [1, 1, 1, 0, 0, 0]], dtype=torch.bool)
    fit = fit_symmetry_axis(mid, valid, k=10, n=3, m=6, d=0.0, generator=gen())
    # instance 0: random points, no line holds 6 within d = 0; 1 and 2: fewer valid midpoints than m
    assert not fit.has_axis.any()
    assert not fit.inliers.any()
    assert torch.isfinite(fit.normal).all() and torch.isfinite(fit.offset).all()


def test_identical_midpoints_give_no_axis_and_no_nan():
    mid = torch.full((2, 11, 2), 7.0)
    fit = fit_symmetry_axis(mid, torch.ones(2, 11, dtype=torch.bool), k=10, n=5, m=8, d=1.0, generator=gen())
    assert not fit.has_axis.any()
    assert torch.isfinite(fit.normal).all() and torch.isfinite(fit.offset).all()


@pytest.mark.parametrize("kwargs, message", [
    (dict(k=0), r"k must be an int >= 1, got 0"),
    (dict(n=1), r"n must be in \[2, 11\]"),
    (dict(n=12), r"n must be in \[2, 11\]"),
    (dict(m=12), r"m must be in \[1, 11\]"),
    (dict(d=-1.0), r"d must be finite and >= 0"),
])
def test_fit_symmetry_axis_rejects_bad_parameters_by_name(kwargs, message):
    args = dict(k=10, n=5, m=8, d=1.0) | kwargs
    with pytest.raises(ValueError, match=message):
        fit_symmetry_axis(torch.zeros(2, 11, 2), torch.ones(2, 11, dtype=torch.bool), generator=gen(), **args)


# ------------------------------------------------------------------------------------------------------------------
# The refiner against the oracle, and its properties
# ------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("alpha, n, m, d", [(0.4, 5, 8, 1.0), (0.7, 3, 6, 2.0), (0.4, 2, 4, 0.5)])
def test_batched_refiner_equals_the_per_instance_oracle(alpha, n, m, d):
    kps = noisy_instances(120, seed=int(alpha * 10) + n)
    out = refine_symmetric(kps, FASHIONAI, generator=gen(4), alpha=alpha, k=10, n=n, m=m, d=d)
    subsets = subsets_for(kps, FASHIONAI, 10, n, seed=4).numpy()
    agree = 0
    for b in range(len(kps)):
        expected, refined = oracle_refine(kps[b].numpy(), subsets[b], FASHIONAI, alpha, n, m, d)
        np.testing.assert_allclose(out.keypoints[b].numpy(), expected, atol=1e-6, err_msg=f"instance {b}")
        assert (out.refined[b].numpy() == refined).all(), f"instance {b}"
        agree += 1
    assert agree == 120
    assert 0 < int(out.refined.sum()) < out.refined.numel(), "the test data should exercise both branches"
    assert int(out.filled.sum()) > 0 and int(out.has_axis.sum()) > 40


@pytest.mark.parametrize("alpha", [0.0, 0.4, 0.5, 1.0])
def test_a_symmetric_set_is_unchanged_for_any_alpha(alpha):
    kps, _, _ = symmetric_instances(32, dtype=torch.float32)
    out = refine_symmetric(kps, FASHIONAI, generator=gen(), alpha=alpha)
    assert out.has_axis.all() and out.inliers.all() and not out.refined.any()
    assert torch.allclose(out.keypoints, kps, atol=1e-3)


def test_alpha_zero_changes_nothing_but_fills():
    kps = noisy_instances(100, seed=7)
    out = refine_symmetric(kps, FASHIONAI, generator=gen(), alpha=0.0, d=0.5)
    assert out.refined.any(), "pairs were refined (with alpha = 0 they must not move)"
    changed = (out.keypoints != kps).any(-1)
    assert out.filled.any()
    assert torch.equal(changed, out.filled)


@pytest.mark.parametrize("alpha", [0.25, 0.4, 0.5, 0.8, 1.0])
def test_alpha_scales_the_asymmetry_of_a_refined_pair_by_one_minus_two_alpha(alpha):
    kps = noisy_instances(100, seed=11, missing_rate=0.0)
    out = refine_symmetric(kps, FASHIONAI, generator=gen(2), alpha=alpha, d=0.8)
    refined = out.refined
    assert refined.sum() > 20
    left, right = FASHIONAI.pairs[:, 0], FASHIONAI.pairs[:, 1]

    def asymmetry(k: torch.Tensor) -> torch.Tensor:  # (B, P, 2): the pair's deviation from its own mirror image
        return k[:, left, :2] - reflect(k[:, right, :2], out.normal, out.offset)

    before, after = asymmetry(kps)[refined], asymmetry(out.keypoints)[refined]
    assert torch.allclose(after, (1 - 2 * alpha) * before, atol=1e-9)
    if alpha == 0.5:
        mid = 0.5 * (out.keypoints[:, left, :2] + out.keypoints[:, right, :2])
        dist = (mid * out.normal[:, None]).sum(-1) - out.offset[:, None]
        assert dist[refined].abs().max() < 1e-9, "alpha = 0.5 must put the refined midpoints on the axis"


def test_alpha_one_replaces_each_refined_point_by_its_partners_mirror_image():
    kps = noisy_instances(60, seed=12, missing_rate=0.0)
    out = refine_symmetric(kps, FASHIONAI, generator=gen(3), alpha=1.0, d=0.8)
    left, right = FASHIONAI.pairs[:, 0], FASHIONAI.pairs[:, 1]
    mirrored_right = reflect(kps[:, right, :2], out.normal, out.offset)
    r = out.refined
    assert r.any()
    assert torch.allclose(out.keypoints[:, left, :2][r], mirrored_right[r], atol=1e-9)


def test_one_corrupted_pair_among_ten_perfect_ones_is_the_only_one_refined():
    kps, normal, offset = symmetric_instances(50, seed=21)
    bad = 4  # the cuff_out pair
    kps[:, FASHIONAI.pairs[bad, 1], :2] += 12.0 * normal  # right cuff pushed outwards: its midpoint moves 6 px
    out = refine_symmetric(kps, FASHIONAI, generator=gen())
    expected = torch.zeros(50, 11, dtype=torch.bool)
    expected[:, bad] = True
    assert torch.equal(out.refined, expected)
    assert torch.allclose(out.normal, normal, atol=1e-9) and torch.allclose(out.offset, offset, atol=1e-6)
    others = torch.ones(24, dtype=torch.bool)
    others[FASHIONAI.pairs[bad]] = False
    assert torch.equal(out.keypoints[:, others], kps[:, others])


def test_missing_point_is_filled_with_its_partners_mirror_image_and_score():
    kps, normal, offset = symmetric_instances(10, seed=5)
    truth = kps.clone()
    cuff = FASHIONAI.index("cuff_right_out")
    kps[:, cuff] = torch.tensor([float("nan"), float("nan"), 0.0], dtype=torch.float64)
    kps[:, FASHIONAI.index("cuff_left_out"), 2] = 0.9
    out = refine_symmetric(kps, FASHIONAI, generator=gen())
    assert out.filled[:, cuff].all() and out.filled.sum() == 10
    assert torch.allclose(out.keypoints[:, cuff, :2], truth[:, cuff, :2], atol=1e-6)
    assert torch.allclose(out.keypoints[:, cuff, 2], torch.full((10,), 0.9, dtype=torch.float64))


def test_the_summary_counts_what_the_refiner_did_and_its_shares_agree_with_the_counts():
    kps = noisy_instances(100, seed=7)
    out = refine_symmetric(kps, FASHIONAI, generator=gen(), d=0.5)
    s = summarize_refinement(kps, out, FASHIONAI, d=0.5)
    assert (s.instances, s.with_axis, s.pairs_refined) == (100, int(out.has_axis.sum()), int(out.refined.sum()))
    assert (s.points_filled, s.points_ignored) == (int(out.filled.sum()), 0)
    assert 0 < s.with_axis < 100 and s.pairs_refined > 0 and s.points_filled > 0
    assert s.with_axis_fraction == s.with_axis / 100
    assert s.pairs_refined_per_instance == s.pairs_refined / 100
    assert s.points_filled_per_instance == s.points_filled / 100
    moved = ((out.keypoints != kps)[..., :2].any(-1) & ~out.filled).sum()
    assert s.points_moved == int(moved) > 0
    # alpha 0 moves no point: the fills are all that changed
    still = refine_symmetric(kps, FASHIONAI, generator=gen(), d=0.5, alpha=0.0)
    assert summarize_refinement(kps, still, FASHIONAI, d=0.5, alpha=0.0).points_moved == 0
    assert "100 instances, " + f"{s.with_axis} with an axis ({s.with_axis_fraction:.0%})" in str(s)


def test_the_summary_counts_instances_with_too_few_pairs_to_vote_and_an_empty_batch():
    kps, _, _ = symmetric_instances(4, seed=8)
    kps[0, FASHIONAI.pairs[3:, 0], 2] = 0.0  # the first keeps 3 complete pairs, below m = 8
    out = refine_symmetric(kps, FASHIONAI, generator=gen())
    s = summarize_refinement(kps, out, FASHIONAI)
    assert (s.too_few_pairs, s.with_axis, s.with_axis_fraction) == (1, 3, 0.75)
    assert summarize_refinement(kps, out, FASHIONAI, m=3).too_few_pairs == 0
    empty = kps[:0]
    none = summarize_refinement(empty, refine_symmetric(empty, FASHIONAI, generator=gen()), FASHIONAI)
    assert none == RefineSummary(0, 0, 0, 0, 0, 0, 0) and none.with_axis_fraction == 0.0


def test_the_summary_refuses_a_result_of_other_input_and_a_missing_category():
    kps = noisy_instances(4, seed=9)
    out = refine_symmetric(kps, FASHIONAI, generator=gen())
    with pytest.raises(ValueError, match=r"keypoints has shape \(3, 24, 3\) but the result's key points "
                                         r"\(4, 24, 3\)"):
        summarize_refinement(kps[:3], out, FASHIONAI)
    with pytest.raises(ValueError, match="categories is required with pairs='category'"):
        summarize_refinement(kps, out, FASHIONAI, pairs="category")


def test_low_scores_count_as_missing_with_a_threshold():
    kps, _, _ = symmetric_instances(4, seed=6)
    wrist = COCO.index("left_wrist")
    coco, _, _ = symmetric_instances(4, COCO, seed=6)
    coco[:, wrist, :2] += 30.0
    coco[:, wrist, 2] = 0.05
    plain = refine_symmetric(coco, COCO, generator=gen())
    thresholded = refine_symmetric(coco, COCO, generator=gen(), score_threshold=0.1)
    assert not plain.filled.any()
    assert thresholded.filled[:, wrist].all()
    truth, _, _ = symmetric_instances(4, COCO, seed=6)
    assert torch.allclose(thresholded.keypoints[:, wrist, :2], truth[:, wrist, :2], atol=1e-6)


def test_refinement_is_equivariant_to_rotation_translation_and_scale():
    kps = noisy_instances(80, seed=13)
    angle, s, t = 0.3, 1.7, torch.tensor([40.0, -25.0], dtype=torch.float64)
    rot = torch.tensor([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]], dtype=torch.float64)

    def move(k: torch.Tensor) -> torch.Tensor:
        present = k[..., 2:] > 0
        xy = torch.where(present, s * k[..., :2] @ rot.T + t, k[..., :2])
        return torch.cat([xy, k[..., 2:]], -1)

    a = refine_symmetric(kps, FASHIONAI, generator=gen(8), d=1.0)
    b = refine_symmetric(move(kps), FASHIONAI, generator=gen(8), d=1.0 * s)
    assert torch.equal(a.refined, b.refined) and torch.equal(a.filled, b.filled)
    assert torch.allclose(move(a.keypoints), b.keypoints, atol=1e-7)
    # with d relative to the instance's size the same holds without rescaling d by hand
    c = refine_symmetric(kps, FASHIONAI, generator=gen(8), d=0.005, d_unit="relative")
    e = refine_symmetric(move(kps), FASHIONAI, generator=gen(8), d=0.005, d_unit="relative")
    assert torch.equal(c.refined, e.refined)
    assert torch.allclose(move(c.keypoints), e.keypoints, atol=1e-7)


def test_a_left_right_swap_of_the_input_swaps_the_output():
    kps = noisy_instances(60, seed=14)
    a = refine_symmetric(kps, FASHIONAI, generator=gen(1))
    b = refine_symmetric(kps[:, FASHIONAI.flip], FASHIONAI, generator=gen(1))
    assert torch.allclose(a.keypoints[:, FASHIONAI.flip], b.keypoints, atol=1e-9)
    assert torch.equal(a.refined, b.refined)


def test_same_generator_seed_same_output_and_chunking_does_not_change_a_single_chunk():
    kps = noisy_instances(50, seed=15)
    a = refine_symmetric(kps, FASHIONAI, generator=gen(3))
    b = refine_symmetric(kps, FASHIONAI, generator=gen(3))
    assert torch.equal(a.keypoints, b.keypoints) and torch.equal(a.inliers, b.inliers)
    chunked = refine_symmetric(kps, FASHIONAI, generator=gen(3), chunk_size=7)
    assert chunked.keypoints.shape == kps.shape and chunked.refined.shape == (50, 11)


def test_the_input_is_never_modified_whatever_its_batch_size_or_layout():
    # a batch of one is already contiguous in the refiner's batch-last layout, the case where it could write through
    for b in (1, 5):
        kps, normal, _ = symmetric_instances(b, seed=16)
        kps[:, FASHIONAI.pairs[0], :2] += 6.0 * normal[:, None]  # one pair off the axis, to be refined
        kps[:, FASHIONAI.pairs[1, 0], 2] = 0.0  # one point missing, to be filled
        before = kps.clone()
        out = refine_symmetric(kps, FASHIONAI, generator=gen(2), alpha=0.5)
        assert out.has_axis.all() and out.refined[:, 0].all() and out.filled[:, FASHIONAI.pairs[1, 0]].all()
        assert torch.equal(kps, before)
        # a strided view of the same values (channels first in memory) gives the same result
        strided = kps.permute(2, 0, 1).contiguous().permute(1, 2, 0)
        again = refine_symmetric(strided, FASHIONAI, generator=gen(2), alpha=0.5)
        assert torch.equal(again.keypoints, out.keypoints) and again.keypoints.is_contiguous()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cpu_and_gpu_agree_with_a_cpu_generator(backend):
    kps = noisy_instances(200, seed=16).float()
    cpu = refine_symmetric(kps, FASHIONAI, generator=gen(5))
    on_gpu = "tensor" if backend == "kernel" else backend  # the kernel runs CPU tensors only
    gpu = refine.refine_symmetric(kps.cuda(), FASHIONAI, generator=gen(5), backend=on_gpu)
    assert torch.equal(cpu.refined, gpu.refined.cpu())
    assert torch.allclose(cpu.keypoints, gpu.keypoints.cpu(), atol=1e-3)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_an_absurd_point_is_ignored_with_absurd_factor_and_drags_its_partner_without(dtype, backend):
    """Issue 18, case 8: one point at 1e30 dragged its partner to 4e29; with absurd_factor it is missing instead."""
    kps, normal, _ = symmetric_instances(3, COCO, seed=8)
    truth = kps.clone().to(dtype)
    kps[:, COCO.index("right_knee"), :2] += 8.0 * normal  # a pair the refiner moves
    left, right = COCO.index("left_elbow"), COCO.index("right_elbow")
    kps[0, left, 0] = 1e30
    kps = kps.to(dtype)
    out = refine_symmetric(kps, COCO, generator=gen(), absurd_factor=100.0)
    assert out.ignored.nonzero().tolist() == [[0, left]]
    assert out.has_axis.all() and out.filled.nonzero().tolist() == [[0, left]]
    assert torch.allclose(out.keypoints[0, left, :2], truth[0, left, :2], atol=1e-3)  # the partner's mirror image
    assert torch.equal(out.keypoints[0, right], kps[0, right])  # not dragged: its pair no longer counts as complete
    assert out.refined[:, COCO.pairs.tolist().index([COCO.index("left_knee"), COCO.index("right_knee")])].all()
    paper = refine_symmetric(kps, COCO, generator=gen())  # no check, as the paper
    assert not paper.ignored.any()
    if dtype == torch.float64 and backend != "reference":  # the partner is dragged away
        assert paper.keypoints[0, right, 0].abs() > 1e29
    else:  # next to 5e29, float32 cannot tell the other midpoints apart, nor can the reference's centred second
        # moments in float64 (the others take them in one pass): the instance loses its axis
        assert paper.has_axis.tolist() == [False, True, True]
    lone = kps[:1].clone()
    keep = [COCO.index(name) for name in ("nose", "left_eye", "right_eye", "left_elbow", "right_elbow")]
    lone[0, [i for i in range(17) if i not in keep]] = 0.0  # two complete pairs: no axis, so nothing to fill from
    alone = refine_symmetric(lone, COCO, generator=gen(), absurd_factor=100.0)
    assert alone.ignored[0, left] and not alone.has_axis[0]
    assert torch.equal(alone.keypoints, lone)  # the refiner reports the absurd point; it does not erase it


def test_absurd_points_uses_the_instance_own_extent():
    # centre (5, 5) (the coordinate-wise median, whatever the sixth point), radius 5 (the median distance from it)
    kps = torch.tensor([[[5.0, 5, 1], [0, 5, 1], [10, 5, 1], [5, 0, 1], [5, 10, 1], [5, 5 + 5 * 101, 1]]],
                       dtype=torch.float64)
    present = torch.ones(1, 6, dtype=torch.bool)
    assert refine.absurd_points(kps, present, 100.0).tolist() == [[False] * 5 + [True]]
    assert not refine.absurd_points(kps, present, 102.0).any()
    near = kps.clone()
    near[0, 5, 1] = 5 + 5 * 99
    assert not refine.absurd_points(near, present, 100.0).any()
    tiny = kps.clone()
    tiny[0, :5, :2] = 5.0  # five coincident points: the radius is floored at 1 pixel
    tiny[0, 5, 1] = 5 + 99.0
    assert not refine.absurd_points(tiny, present, 100.0).any()
    missing = present.clone()
    missing[0, 5] = False  # a missing point is never absurd
    assert not refine.absurd_points(kps, missing, 100.0).any()
    with pytest.raises(ValueError, match=r"absurd_factor must be > 1"):
        refine.RefineConfig(absurd_factor=0.5).validate()


def test_degenerate_input_never_produces_nan():
    kps = torch.zeros(4, 24, 3)
    kps[1, :4] = torch.tensor([10.0, 10.0, 1.0])  # two pairs only: fewer than n
    kps[2, :, :2] = 5.0  # all points (so all midpoints) identical
    kps[2, :, 2] = 1.0
    kps[3, FASHIONAI.pairs[:, 0]] = torch.tensor([50.0, 60.0, 1.0])  # coincident pair points
    kps[3, FASHIONAI.pairs[:, 1]] = torch.tensor([50.0, 60.0, 1.0])
    out = refine_symmetric(kps, FASHIONAI, generator=gen())
    assert torch.isfinite(out.keypoints).all() and torch.isfinite(out.axis).all()
    assert not out.has_axis.any()
    assert torch.equal(out.keypoints, kps)
    empty = refine_symmetric(torch.zeros(0, 17, 3), COCO, generator=gen())
    assert empty.keypoints.shape == (0, 17, 3) and empty.refined.shape == (0, 8)


@pytest.mark.parametrize("kwargs, message", [
    (dict(n=1), r"n must be >= 2"),
    (dict(m=12), r"m must be in \[1, 11\]"),
    (dict(n=12), r"n must be in \[2, 11\]"),
    (dict(alpha=1.5), r"alpha must be in \[0, 1\], got 1.5"),
    (dict(alpha=-0.1), r"alpha must be in \[0, 1\]"),
    (dict(d_unit="cm"), r"d_unit must be one of \('px', 'relative'\)"),
    (dict(pairs="some"), r"pairs must be one of \('all', 'category'\)"),
    (dict(d=-2.0), r"d must be finite and >= 0"),
])
def test_bad_parameters_stop_with_a_message_naming_them(kwargs, message):
    with pytest.raises(ValueError, match=message):
        refine_symmetric(torch.zeros(2, 24, 3), FASHIONAI, generator=gen(), **kwargs)


def test_wrong_number_of_keypoints_for_the_schema_is_refused():
    with pytest.raises(ValueError, match=r"shape \(B, 17, 3\) for the coco schema, got \(2, 24, 3\)"):
        refine_symmetric(torch.zeros(2, 24, 3), COCO, generator=gen())
    with pytest.raises(ValueError, match="unknown RefineConfig field"):
        RefineConfig.for_schema("coco", beta=1)


def test_resolve_config_applies_the_given_overrides_to_the_config_or_the_schemas_defaults():
    assert refine.resolve_config(None, COCO, {"m": 3, "d": None}) == RefineConfig.for_schema("coco", m=3)
    base = RefineConfig(alpha=0.2)
    assert refine.resolve_config(base, COCO, {"alpha": None, "k": 4}) == RefineConfig(alpha=0.2, k=4)
    with pytest.raises(ValueError, match=r"unknown RefineConfig field\(s\) \['beta'\]"):
        refine.resolve_config(None, COCO, {"beta": 1})


def test_paper_defaults_per_schema():
    assert (RefineConfig.for_schema("fashionai").m, RefineConfig.for_schema("fashionai").n) == (8, 5)
    coco = RefineConfig.for_schema(COCO)
    assert (coco.k, coco.n, coco.m, coco.d, coco.alpha) == (10, 4, 6, 1.0, 0.4)


def test_category_pairs_only_move_and_fill_the_garments_own_points():
    kps, normal, _ = symmetric_instances(6, seed=30)
    truth = kps.clone()
    blouse = FASHIONAI.category_mask("blouse")
    cuff = FASHIONAI.index("cuff_right_in")
    kps[:, cuff, 2] = 0.0  # missing: to be filled from its partner
    waist = FASHIONAI.index("waistline_left")  # not a blouse point: displaced, must stay where it is
    kps[:, waist, :2] += 9.0 * normal
    out = refine_symmetric(kps, FASHIONAI, generator=gen(), pairs="category", categories=["blouse"] * 6)
    assert out.has_axis.all()
    assert out.filled[:, cuff].all()
    assert torch.allclose(out.keypoints[:, cuff, :2], truth[:, cuff, :2], atol=1e-6)
    assert torch.equal(out.keypoints[:, ~blouse], kps[:, ~blouse])
    # "all" would let the displaced non-blouse pair vote and be refined
    literal = refine_symmetric(kps, FASHIONAI, generator=gen())
    assert literal.refined[:, FASHIONAI.pair_names.index("waistline")].all()
    with pytest.raises(ValueError, match="categories is required with pairs='category'"):
        refine_symmetric(kps, FASHIONAI, generator=gen(), pairs="category")
    with pytest.raises(ValueError, match=r"categories\[1\] = 'coat' is not a fashionai category"):
        refine_symmetric(kps[:2], FASHIONAI, generator=gen(), pairs="category", categories=["blouse", "coat"])


def test_centre_points_can_vote_for_the_axis():
    kps, _, _ = symmetric_instances(5, COCO, seed=31)
    kps[:, COCO.pairs[:3].reshape(-1), 2] = 0.0  # three of eight pairs missing: five voters, m = 6
    without = refine_symmetric(kps, COCO, generator=gen())
    with_nose = refine_symmetric(kps, COCO, generator=gen(), center_votes=True)
    assert not without.has_axis.any()
    assert with_nose.has_axis.all()
    assert torch.equal(with_nose.keypoints[:, COCO.center], kps[:, COCO.center]), "the nose must never move"


# ------------------------------------------------------------------------------------------------------------------
# The two-scale loop, with a stand-in detector on K-channel images: channel k holds a blob at point k
# ------------------------------------------------------------------------------------------------------------------


def blob_images(kps: torch.Tensor, size: int, sigma: float = 1.5) -> list[torch.Tensor]:
    """(B, K, 3) points -> B images of K channels, a Gaussian blob per present point (continuous pixels)."""
    centres = torch.arange(size, dtype=torch.float64) + 0.5
    yy, xx = torch.meshgrid(centres, centres, indexing="ij")
    d2 = (xx - kps[..., 0, None, None]) ** 2 + (yy - kps[..., 1, None, None]) ** 2  # (B, K, H, W)
    img = torch.exp(-d2 / (2 * sigma**2)) * (kps[..., 2, None, None] > 0)
    return list(img.float().unbind(0))


def blob_detector(images: list[torch.Tensor]) -> torch.Tensor:
    """Stand-in detector: the intensity centroid of each channel; a blank channel is a missed point (NaN)."""
    out = []
    for im in images:
        h, w = im.shape[-2:]
        ys = torch.arange(h, dtype=torch.float64) + 0.5
        xs = torch.arange(w, dtype=torch.float64) + 0.5
        wgt = im.double().clamp(min=0)
        mass = wgt.sum((-2, -1))
        x = (wgt.sum(-2) * xs).sum(-1) / mass
        y = (wgt.sum(-1) * ys).sum(-1) / mass
        found = wgt.amax((-2, -1)) > 0.2
        nan = torch.tensor(float("nan"), dtype=torch.float64)
        out.append(torch.stack([torch.where(found, x, nan), torch.where(found, y, nan), found.double()], -1))
    return torch.stack(out)


def garment_in_image(b: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric FashionAI instances scaled into a 96-px image, and the same with the right cuffs missed."""
    kps, _, _ = symmetric_instances(b, seed=seed, centre=(300.0, 250.0), tilt_deg=8.0)
    kps[..., :2] = (kps[..., :2] - torch.tensor([300.0, 250.0], dtype=torch.float64)) * 0.22 + 48.0
    missed = kps.clone()
    for name in ("cuff_right_in", "cuff_right_out"):
        missed[:, FASHIONAI.index(name)] = 0.0
    return kps, missed


def test_new_key_detection_recovers_missed_points_and_maps_the_crop_back():
    truth, missed = garment_in_image(4, seed=40)
    images = blob_images(missed, 96)
    # a margin keeps the blobs of the extreme points whole inside the crop (margin 0 cuts them in half)
    res = new_key_detection(images, blob_detector, FASHIONAI, generator=gen(), margin=0.1)
    cuffs = [FASHIONAI.index("cuff_right_in"), FASHIONAI.index("cuff_right_out")]
    assert res.first.filled[:, cuffs].all()
    assert torch.isnan(res.detected[:, cuffs, 0]).all()
    err = (res.keypoints[..., :2] - truth[..., :2]).norm(dim=-1)  # (B, K)
    assert err.max() < 0.35, f"worst error {err.max():.3f} px: the crop was not mapped back exactly"
    # the second scale alone, mapped back, sees the same points
    second_err = (res.second.keypoints[..., :2] - truth[..., :2]).norm(dim=-1)
    present = ~torch.isnan(res.second.keypoints[..., 0])
    assert second_err[present].max() < 0.35
    # the crop is a square closing every refined point
    side = res.boxes[:, 2] - res.boxes[:, 0]
    assert torch.allclose(side, res.boxes[:, 3] - res.boxes[:, 1])
    xy = res.first.keypoints[..., :2]
    assert (xy[..., 0] >= res.boxes[:, None, 0] - 1e-6).all() and (xy[..., 0] <= res.boxes[:, None, 2] + 1e-6).all()
    # the second-scale axis, mapped back, is the first scale's axis
    assert torch.allclose(res.second.axis, res.first.axis, atol=0.05)


def test_without_the_symmetry_constraint_the_detector_just_runs_twice():
    truth, missed = garment_in_image(3, seed=41)
    res = new_key_detection(blob_images(missed, 96), blob_detector, FASHIONAI, generator=gen(), symmetric=False)
    torch.testing.assert_close(res.first.keypoints, res.detected, equal_nan=True, rtol=0, atol=0)
    assert not res.first.filled.any() and not res.second.refined.any()
    cuff = FASHIONAI.index("cuff_right_out")
    assert torch.isnan(res.keypoints[:, cuff, 0]).all(), "without the prior nothing can recover a missed point"


def test_margin_grows_the_crop_and_instances_can_share_an_image():
    truth, _ = garment_in_image(2, seed=42)
    image = blob_images(truth[:1], 96)  # one image, two instances: the second is the first shifted by 3 px
    kps = truth[:1].repeat(2, 1, 1)
    kps[1, :, :2] += 3.0
    tight = new_key_detection(image, blob_detector, FASHIONAI, generator=gen(), keypoints=kps,
                              image_index=torch.tensor([0, 0]))
    wide = new_key_detection(image, blob_detector, FASHIONAI, generator=gen(), keypoints=kps,
                             image_index=torch.tensor([0, 0]), margin=0.2)
    assert ((wide.boxes[:, 2] - wide.boxes[:, 0]) > 1.35 * (tight.boxes[:, 2] - tight.boxes[:, 0])).all()
    # the detector at the second scale finds the true points for both instances
    assert (wide.second.keypoints[:, :, :2] - truth[0, :, :2]).norm(dim=-1).max() < 0.35
    # with no margin the crop's edge runs through the extreme points and cuts their blobs: the paper's tight crop
    assert (tight.second.keypoints[:, :, :2] - truth[0, :, :2]).norm(dim=-1).max() > 0.5
    with pytest.raises(ValueError, match="pass image_index"):
        new_key_detection(image, blob_detector, FASHIONAI, generator=gen(), keypoints=kps)


def coco_people(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Two symmetric COCO persons about 60 px tall, 14 px apart, in a 96-px image: (2, 17, 3) each."""
    kps, _, _ = symmetric_instances(2, COCO, seed=seed, centre=(300.0, 250.0), tilt_deg=5.0)
    kps[..., :2] = (kps[..., :2] - torch.tensor([300.0, 250.0], dtype=torch.float64)) * 0.25 + 48.0
    kps[1, :, 0] += 14.0
    kps[0, :, 0] -= 4.0
    return kps[:1], kps[1:]


def test_match_instances_picks_the_candidate_of_the_same_instance():
    me, other = coco_people(60)
    nudged = me.clone()
    nudged[..., :2] += 1.5
    missing = torch.full_like(me, float("nan"))
    missing[..., 2] = 0.0
    candidates = torch.stack([other, nudged, missing], 1)  # (1, 3, 17, 3): the other person ranked first
    for by in ("oks", "iou"):
        out = match_instances(me, candidates, COCO.sigmas, by=by)
        assert out.index.tolist() == [1], by
        assert float(out.score[0]) > 0.7
        # only the other person (or nothing) to choose from: a poor match, below the default min_match of 0.5
        alone = match_instances(me, torch.stack([other, missing], 1), COCO.sigmas, by=by)
        assert alone.index.tolist() == [0] and float(alone.score[0]) < 0.5, by
    # OKS by hand: every point 1.5 * sqrt(2) px off, area of the key-point box, kappa = 2 sigma
    box = me[0, :, :2].amax(0) - me[0, :, :2].amin(0)
    expected = torch.exp(-4.5 / (2 * box.prod() * (2 * COCO.sigmas.double()) ** 2)).mean()
    assert float(match_instances(me, candidates, COCO.sigmas).score[0]) == pytest.approx(float(expected), rel=1e-6)
    with pytest.raises(ValueError, match="by must be one of"):
        match_instances(me, candidates, COCO.sigmas, by="l2")


def coordinate_image(size: int) -> torch.Tensor:
    """(3, S, S): channel 0 holds each pixel's column, channel 1 its row (a crop tells where it was cut)."""
    j = torch.arange(size, dtype=torch.float32).expand(size, size)
    return torch.stack([j, j.t().contiguous(), torch.zeros(size, size)])


def test_second_scale_keeps_the_crop_detection_of_its_own_person():
    me, other = coco_people(61)
    stranger = other.clone()
    stranger[..., 0] += 200.0  # the third instance's crop holds nobody like it
    people = torch.cat([me, other])  # (2, 17, 3) in image pixels

    def detect(crops: list[torch.Tensor]) -> torch.Tensor:
        """Both persons of the image, in the crop's pixels, the wrong one first (a detector ranks by its score)."""
        out = []
        for crop in crops:
            corner = crop[:2, 0, 0].double()  # the crop's top-left pixel in the image (x, y)
            found = people.clone()
            found[..., :2] -= corner
            out.append(found.flip(0))
        return torch.stack(out)  # (B, 2, 17, 3)

    first = torch.cat([me, other, torch.cat([stranger[..., :2], stranger[..., 2:]], -1)])
    first[:2, :, :2] += 0.8  # the first scale is a little off; the crop's detection of the same person is exact
    res = new_key_detection([coordinate_image(96)], detect, COCO, generator=gen(), keypoints=first,
                            image_index=torch.tensor([0, 0, 0]), symmetric=False, margin=0.2,
                            crop_mapping=CropMapping.UNRESIZED)
    assert res.matched.tolist() == [True, True, False] and res.num_unmatched == 1
    torch.testing.assert_close(res.second.keypoints[:2], people)  # each instance kept its own person
    torch.testing.assert_close(res.keypoints[:2, :, :2], people[..., :2] + 0.4)  # the average of the two scales
    torch.testing.assert_close(res.keypoints[2], first[2])  # unmatched: the first scale, untouched
    assert res.second.keypoints[2, :, 2].eq(0).all()


def test_calibrated_threshold_separates_a_hand_worked_example():
    scores = torch.tensor([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    visible = torch.tensor([False, True, False, True, True, True])
    cal = calibrate_missing_threshold(scores, visible)
    # cuts: after 0.1 J = 1/2 + 1 - 1 = 0.5; after 0.3 J = 1 + 3/4 - 1 = 0.75 (best); after 0.2 J = 0.25
    assert cal.threshold == pytest.approx(0.35) and cal.youden_j == pytest.approx(0.75)
    assert (cal.sensitivity, cal.specificity, cal.visible, cal.hidden) == (1.0, 0.75, 4, 2)
    assert cal.balanced_accuracy == pytest.approx(0.875)
    # scores that carry no information: nothing is flagged
    flat = calibrate_missing_threshold(torch.full((4,), 0.5), torch.tensor([True, False, True, False]))
    assert flat.threshold == -math.inf and flat.youden_j == 0.0
    with pytest.raises(ValueError, match="needs visible and hidden points"):
        calibrate_missing_threshold(scores, torch.ones(6, dtype=torch.bool))


def test_calibrated_threshold_flags_planted_low_score_points_and_fills_them():
    g = torch.Generator().manual_seed(70)
    # held-out points: visible ones score 0.4-1, occluded or absent ones 0-0.3 (a detector's low peaks)
    visible = torch.rand(400, generator=g) < 0.8
    scores = torch.where(visible, 0.4 + 0.6 * torch.rand(400, generator=g), 0.3 * torch.rand(400, generator=g))
    cal = calibrate_missing_threshold(scores, visible)
    assert 0.3 <= cal.threshold < 0.4 and cal.youden_j == pytest.approx(1.0)
    truth, _, _ = symmetric_instances(6, seed=71)
    planted = truth.clone()
    cuffs = [FASHIONAI.index("cuff_right_in"), FASHIONAI.index("cuff_right_out")]
    planted[:, cuffs, :2] += 25.0  # the detector's guess for an occluded cuff: far off, with a low score
    planted[:, cuffs, 2] = 0.15
    out = refine_symmetric(planted, FASHIONAI, generator=gen(), score_threshold=cal.threshold)
    assert out.filled[:, cuffs].all() and out.filled.sum() == 2 * len(truth)
    torch.testing.assert_close(out.keypoints[:, cuffs, :2], truth[:, cuffs, :2])  # the partners' mirror images
    # the literal threshold 0 never calls them missing, and leaves them where the detector put them
    literal = refine_symmetric(planted, FASHIONAI, generator=gen(), score_threshold=0.0)
    assert not literal.filled.any()


def test_fill_threshold_fills_unsure_points_that_still_vote_and_leaves_the_paper_rule_alone():
    truth, _, _ = symmetric_instances(6, seed=72)
    planted = truth.clone()
    unsure = FASHIONAI.pairs[:7, 1]  # the right point of 7 of the 11 pairs scores low ...
    planted[:, unsure, 2] = 0.15
    cuffs = [FASHIONAI.index("cuff_right_in"), FASHIONAI.index("cuff_right_out")]
    planted[:, cuffs, :2] += 25.0  # ... and two of them are far off
    # one threshold for both jobs: 4 complete pairs are left to vote, fewer than m = 8, so no axis and no fill
    gated = refine_symmetric(planted, FASHIONAI, generator=gen(), score_threshold=0.3)
    assert not gated.has_axis.any() and not gated.filled.any()
    # the fill's own rule: every pair votes (the cuffs' midpoints are outliers), the unsure points are filled
    out = refine_symmetric(planted, FASHIONAI, generator=gen(), fill_threshold=0.3)
    assert out.has_axis.all()
    expected = torch.zeros_like(out.filled)
    expected[:, torch.cat([unsure, torch.tensor(cuffs)])] = True
    assert torch.equal(out.filled, expected)
    torch.testing.assert_close(out.keypoints[:, cuffs, :2], truth[:, cuffs, :2])  # the partners' mirror images
    assert not out.refined[:, :7].any()  # the cuffs are among the 7 pairs: filled, not moved by the EMA
    # None is the paper's rule, bit for bit
    same = refine_symmetric(planted, FASHIONAI, generator=gen(), fill_threshold=0.0)
    paper = refine_symmetric(planted, FASHIONAI, generator=gen())
    assert torch.equal(same.keypoints, paper.keypoints) and torch.equal(same.filled, paper.filled)
    with pytest.raises(ValueError, match=r"fill_threshold must be a number >= score_threshold \(0.3\)"):
        refine_symmetric(planted, FASHIONAI, generator=gen(), score_threshold=0.3, fill_threshold=0.1)


# ------------------------------------------------------------------------------------------------------------------
# Results files and the command line
# ------------------------------------------------------------------------------------------------------------------
