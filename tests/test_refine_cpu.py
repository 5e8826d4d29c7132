"""The refiner's backends against each other: the CPU kernel (fashion_lib.refine_cpu), the batch-last tensor path
(fashion_lib.refine_tensor) and the batch-first reference (fashion_lib.refine_axis, fashion_lib.refine_pairs).

All draw the same uniforms, so they must sample the same subsets bit for bit. On float64 input they must reach the
same decisions (axis found, inliers, refined and filled points); the kernel and the tensor path round alike, so they
agree on ties and midpoints exactly ``d`` from a line too. On float32 input the kernel still computes in float64, so
coordinates agree to float32 rounding. The properties and the oracle of ``tests/test_refine.py`` run on every
backend as well.
"""

from __future__ import annotations

import math
import os

import numba
import numpy as np
import pytest
import torch
from test_refine import gen, noisy_instances, symmetric_instances

from fashion_lib import refine_axis, refine_cpu
from fashion_lib.keypoints import COCO, FASHIONAI
from fashion_lib.refine import fit_symmetry_axis, refine_symmetric
from fashion_lib.refine_tensor import _moments_line, _sample_subsets


def both_paths(fn, other: str = "tensor"):
    """``fn(backend)`` through the kernel, then through ``other``."""
    return fn("kernel"), fn(other)


def messy_instances(b: int, schema=FASHIONAI, *, seed: int = 0, dtype=torch.float64) -> torch.Tensor:
    """Noisy, partly asymmetric instances with missing points, low scores, NaN and infinite coordinates."""
    if schema is FASHIONAI:
        kps = noisy_instances(b, seed=seed)
    else:
        kps, normal, _ = symmetric_instances(b, schema, seed=seed)
        g = torch.Generator().manual_seed(seed)
        kps[..., :2] += torch.randn(kps[..., :2].shape, generator=g, dtype=torch.float64) * 0.4
        off = (torch.rand(b, schema.num_pairs, generator=g, dtype=torch.float64) < 0.3) * 8.0
        kps[:, schema.pairs[:, 1], :2] += off[..., None] * normal[:, None]
        kps[torch.rand(kps.shape[:2], generator=g) < 0.06] = 0.0  # missed points
    g = torch.Generator().manual_seed(seed + 7)
    kps[..., 2] = torch.where(kps[..., 2] > 0, 0.05 + torch.rand(kps.shape[:2], generator=g, dtype=torch.float64),
                              kps[..., 2])
    kps[0, 0, 0] = float("nan")  # a present score with a NaN coordinate: missing
    kps[1, 1, 1] = float("inf")
    kps[2, 2, 2] = float("nan")  # a NaN score: missing
    kps[3] = 0.0  # an empty instance
    return kps.to(dtype)


def assert_same_refinement(kernel, tensor, atol: float) -> None:
    for field in ("has_axis", "inliers", "refined", "filled"):
        a, b = getattr(kernel, field), getattr(tensor, field)
        assert torch.equal(a, b), f"{field} differs at {(a != b).nonzero()[:5].tolist()}"
    assert torch.allclose(kernel.keypoints, tensor.keypoints, atol=atol, equal_nan=True)
    assert torch.allclose(kernel.axis, tensor.axis, atol=atol)
    assert kernel.keypoints.dtype == tensor.keypoints.dtype and kernel.keypoints.is_contiguous()


CASES = {
    "paper defaults": (FASHIONAI, {}),
    "alpha 0.7, n 3, m 6, d 2": (FASHIONAI, dict(alpha=0.7, n=3, m=6, d=2.0)),
    "score threshold": (FASHIONAI, dict(score_threshold=0.15)),
    "fill threshold": (FASHIONAI, dict(fill_threshold=0.4)),
    "fill threshold, category pairs": (FASHIONAI, dict(score_threshold=0.1, fill_threshold=0.5, pairs="category")),
    "relative d": (FASHIONAI, dict(d=0.01, d_unit="relative")),
    "centre votes": (FASHIONAI, dict(center_votes=True, m=6)),
    "category pairs": (FASHIONAI, dict(pairs="category")),
    "category pairs, centre votes": (FASHIONAI, dict(pairs="category", center_votes=True)),
    "coco": (COCO, {}),
    "coco, centre votes, chunks of 7": (COCO, dict(center_votes=True, chunk_size=7)),
}


@pytest.mark.parametrize("other", ["tensor", "reference"])
@pytest.mark.parametrize("case", list(CASES))
def test_the_backends_reach_the_kernels_decisions(case, other):
    schema, kwargs = CASES[case]
    kps = messy_instances(300, schema, seed=len(case))
    if kwargs.get("pairs") == "category":
        names = list(schema.categories)
        kwargs = kwargs | {"categories": [names[i % len(names)] for i in range(len(kps))]}
    kernel, tensor = both_paths(lambda b: refine_symmetric(kps, schema, generator=gen(3), backend=b, **kwargs), other)
    assert_same_refinement(kernel, tensor, atol=1e-7)
    # the case exercises every branch: axes found and not, pairs refined, points filled
    assert 0 < int(kernel.has_axis.sum()) < len(kps) and kernel.refined.any() and kernel.filled.any()


def test_float32_and_strided_input_agree():
    kps = messy_instances(200, seed=4, dtype=torch.float32)
    strided = kps.permute(2, 0, 1).contiguous().permute(1, 2, 0)  # channels first in memory
    kernel, tensor = both_paths(lambda b: refine_symmetric(strided, FASHIONAI, generator=gen(1), backend=b))
    assert_same_refinement(kernel, tensor, atol=1e-3)
    assert kernel.keypoints.dtype == torch.float32


@pytest.mark.parametrize("other", ["tensor", "reference"])
def test_fit_symmetry_axis_agrees_and_its_error_is_the_mean_squared_residual(other):
    kps = messy_instances(300, seed=5)
    pairs = FASHIONAI.pairs
    mid = 0.5 * (kps[:, pairs[:, 0], :2] + kps[:, pairs[:, 1], :2])
    valid = (kps[:, pairs[:, 0], 2] > 0) & (kps[:, pairs[:, 1], 2] > 0)
    kernel, tensor = both_paths(
        lambda b: fit_symmetry_axis(mid, valid, k=10, n=4, m=7, d=1.0, generator=gen(2), backend=b), other)
    assert torch.equal(kernel.has_axis, tensor.has_axis) and torch.equal(kernel.inliers, tensor.inliers)
    has = kernel.has_axis
    assert 0 < int(has.sum()) < len(kps)
    assert torch.allclose(kernel.normal, tensor.normal, atol=1e-9)
    assert torch.allclose(kernel.offset, tensor.offset, atol=1e-7)
    residual = (mid * kernel.normal[:, None]).sum(-1) - kernel.offset[:, None]  # (B, P)
    inl = kernel.inliers
    explicit = torch.where(inl, residual.square(), 0.0).sum(1) / inl.sum(1).clamp(min=1)
    assert torch.allclose(kernel.error[has], explicit[has], rtol=1e-7, atol=1e-9)
    assert torch.isinf(kernel.error[~has]).all()


def test_the_kernel_and_the_reference_sample_the_tensor_paths_subsets_bit_for_bit():
    P, B, k = 13, 500, 10
    g = torch.Generator().manual_seed(8)
    valid = torch.rand(B, P, generator=g) < 0.8  # (B, P)
    n = torch.randint(2, 6, (B,), generator=g).double()
    u = refine_axis._uniforms(k, B, gen(6), torch.device("cpu"))  # (k, B), the refiner's draw with gen(6)
    expected = _sample_subsets(valid.t().double().contiguous(), n, u.clone()).permute(2, 1, 0) > 0.5  # (B, k, P)
    assert torch.equal(refine_axis._sample_subsets(valid, n, u.t()), expected)
    left = valid.flip(1).cumsum(1).flip(1).double().numpy()  # (B, P) valid midpoints from i on
    need, count, index = np.empty(k), np.empty(k, np.int64), np.empty((k, P + 1), np.int64)
    valid_np = valid.numpy()
    for b in range(B):
        refine_cpu._sample(u[:, b].numpy().copy(), valid_np, b, left[b], float(n[b]), need, count, index)
        got = np.zeros((k, P), bool)
        for j in range(k):
            got[j, index[j, :count[j]]] = True
        assert (got == expected[b].numpy()).all(), f"instance {b}"
        assert (count == expected[b].sum(1).numpy()).all()


@pytest.mark.parametrize("points", [
    "random", "vertical", "horizontal", "diagonal", "anti-diagonal", "steep falling", "flat falling", "single point",
    "isotropic square", "empty"])
def test_the_kernels_line_is_the_tensor_paths_line(points):
    g = np.random.default_rng(len(points))
    xy = {
        "random": g.normal(size=(9, 2)) * [3.0, 40.0],
        "vertical": np.stack([np.zeros(6), np.arange(6.0)], 1),
        "horizontal": np.stack([np.arange(6.0), np.zeros(6)], 1),
        "diagonal": np.stack([np.arange(6.0), np.arange(6.0)], 1),
        "anti-diagonal": np.stack([np.arange(6.0), -np.arange(6.0)], 1),
        "steep falling": np.stack([-np.arange(6.0), 3.0 * np.arange(6.0)], 1) + g.normal(size=(6, 2)) * 0.1,
        "flat falling": np.stack([3.0 * np.arange(6.0), -np.arange(6.0)], 1) + g.normal(size=(6, 2)) * 0.1,
        "single point": np.array([[2.0, 3.0]]),
        "isotropic square": np.array([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]]),
        "empty": np.zeros((0, 2)),
    }[points]
    x, y = xy[:, 0], xy[:, 1]
    sums = [float(len(xy)), 0.0, 0.0, 0.0, 0.0, 0.0]
    for xi, yi in zip(x.tolist(), y.tolist(), strict=True):  # in order, one rounding each, as both paths sum
        for s, term in enumerate((xi, yi, xi * xi, yi * yi, xi * yi), start=1):
            sums[s] += term
    nx, ny, c, trace = refine_cpu._tls(*sums)
    ones = torch.ones(len(xy), 1, 1, dtype=torch.float64)
    tnx, tny, tc, tcount, ttrace = _moments_line(ones, torch.from_numpy(x)[:, None], torch.from_numpy(y)[:, None])
    assert [nx, ny, c, trace] == [float(tnx), float(tny), float(tc), float(ttrace)], "the same formula, bit for bit"
    # the reference fits the same line from centred moments: the same normal and offset up to rounding
    everyone = torch.ones(1, 1, len(xy), dtype=torch.bool)  # (B, k, P)
    normal, offset, _, _ = refine_axis._tls_line(torch.from_numpy(xy)[None], everyone)
    assert torch.allclose(normal[0, 0], torch.tensor([nx, ny], dtype=torch.float64), atol=1e-12)
    assert math.isclose(float(offset), c, abs_tol=1e-9)
    assert math.isclose(nx * nx + ny * ny, 1.0, rel_tol=1e-12)
    if len(xy) >= 2:  # the normal spans the direction of least spread: the TLS line
        centred = xy - xy.mean(0)
        values, vectors = np.linalg.eigh(centred.T @ centred)
        assert abs(abs(float(vectors[:, 0] @ [nx, ny])) - 1.0) < 1e-9 or values[0] == values[1]
        assert math.isclose(float(((xy @ [nx, ny] - c) ** 2).sum()), max(values[0], 0.0), abs_tol=1e-9)
    if points in ("vertical", "horizontal"):  # a line along an image axis gets an exact normal
        assert {abs(nx), abs(ny)} == {0.0, 1.0}


def test_integer_coordinates_exactly_d_from_the_axis_get_the_same_decisions():
    # Ground truth and arg-max detectors give whole pixels: with d = 1 px, midpoints lie exactly on the inlier bound.
    kps, normal, _ = symmetric_instances(400, seed=12, tilt_deg=0.0)
    kps[..., :2] = torch.round(kps[..., :2])
    g = torch.Generator().manual_seed(13)
    shift = (torch.rand(400, FASHIONAI.num_pairs, generator=g) < 0.3).double()  # pairs moved exactly 1 px across
    kps[:, FASHIONAI.pairs[:, 0], 0] += shift
    kps[:, FASHIONAI.pairs[:, 1], 0] += shift
    kernel, tensor = both_paths(lambda b: refine_symmetric(kps, FASHIONAI, generator=gen(3), d=1.0, backend=b))
    assert_same_refinement(kernel, tensor, atol=0.0)
    # the data do sit on the bound: d just below 1 px changes the decisions
    below = refine_symmetric(kps, FASHIONAI, generator=gen(3), d=0.999)
    assert kernel.has_axis.all() and not torch.equal(below.inliers, kernel.inliers)


def test_a_float32_score_equal_to_the_threshold_is_missing_on_both_paths():
    kps, _, _ = symmetric_instances(6, seed=14, dtype=torch.float32)
    cuff = FASHIONAI.index("cuff_left_out")
    kps[:, cuff, 2] = 0.15  # float32(0.15) is not float64(0.15): the threshold is rounded the same way
    kernel, tensor = both_paths(
        lambda b: refine_symmetric(kps, FASHIONAI, generator=gen(), score_threshold=0.15, backend=b))
    assert kernel.filled[:, cuff].all()
    assert_same_refinement(kernel, tensor, atol=1e-4)


def test_fit_symmetry_axis_agrees_on_float32_with_per_instance_parameters():
    kps = messy_instances(200, seed=15)
    pairs = FASHIONAI.pairs
    mid = (0.5 * (kps[:, pairs[:, 0], :2] + kps[:, pairs[:, 1], :2])).float()
    valid = (kps[:, pairs[:, 0], 2] > 0) & (kps[:, pairs[:, 1], 2] > 0)
    g = torch.Generator().manual_seed(16)
    n = torch.randint(2, 5, (200,), generator=g)
    m = n + 1 + torch.randint(0, 3, (200,), generator=g)  # |A| > n: no line fits A exactly, so errors do not tie
    d = 0.5 + torch.rand(200, generator=g) * 2
    kernel, tensor = both_paths(lambda b: fit_symmetry_axis(mid, valid, k=8, n=n, m=m, d=d, generator=gen(7),
                                                            backend=b))
    # float32 rounding could flip a midpoint within ~1e-5 px of d, or errors tied to rounding: none here
    same = (kernel.has_axis == tensor.has_axis) & (kernel.inliers == tensor.inliers).all(1)
    assert same.all() and 0 < int(kernel.has_axis.sum()) < 200
    assert torch.allclose(kernel.normal[same], tensor.normal[same], atol=1e-4)
    assert kernel.normal.is_contiguous() and kernel.offset.is_contiguous() and kernel.normal.dtype == torch.float32


def test_a_forked_worker_can_refine_after_its_parent_did():
    # numba's OpenMP layer would terminate the child: there the tensor path serves (refine_cpu.ready). The child runs
    # torch on one thread, as a DataLoader worker does: PyTorch's own OpenMP threads would hang in a forked child.
    kps = messy_instances(600, seed=17)
    parent = refine_symmetric(kps, FASHIONAI, generator=gen(1))
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: refine, report the number of axes found, exit without running pytest's teardown
        try:
            torch.set_num_threads(1)
            child = refine_symmetric(kps, FASHIONAI, generator=gen(1))
            os.write(write, str(int(child.has_axis.sum())).encode())
        finally:
            os._exit(0)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    reported = os.read(read, 64).decode()
    os.close(read)
    assert status == 0 and reported == str(int(parent.has_axis.sum())), (status, reported)


def test_the_thread_count_changes_nothing():
    kps = messy_instances(2000, seed=9)
    threads = torch.get_num_threads()
    if min(threads, numba.config.NUMBA_NUM_THREADS) < 2:
        pytest.skip("needs two threads")
    try:
        torch.set_num_threads(1)
        one = refine_symmetric(kps, FASHIONAI, generator=gen(4))
        assert numba.get_num_threads() == 1, "the kernel follows torch's thread count"
    finally:
        torch.set_num_threads(threads)
    many = refine_symmetric(kps, FASHIONAI, generator=gen(4))
    assert numba.get_num_threads() == min(threads, numba.config.NUMBA_NUM_THREADS)
    assert_same_refinement(one, many, atol=0.0)  # 2000 instances: eight blocks of work shared between threads


def test_other_devices_and_dtypes_take_the_tensor_path(monkeypatch):
    calls = []
    monkeypatch.setattr(refine_cpu, "refine_instances", lambda *args: calls.append(args))
    kps = messy_instances(8, seed=10)
    refine_symmetric(kps.to(torch.bfloat16), FASHIONAI, generator=gen())
    assert not calls, "bfloat16 has no NumPy dtype: it must stay on the tensor path"
    refine_symmetric(kps, FASHIONAI, generator=gen())
    assert len(calls) == 1
    refine_symmetric(kps, FASHIONAI, generator=gen(), backend="tensor")
    assert len(calls) == 1, "an explicit backend is obeyed"


def test_an_unknown_or_impossible_backend_is_refused_by_name():
    kps = messy_instances(8, seed=10)
    with pytest.raises(ValueError, match=r"backend must be one of .*'reference'.*, got 'numba'"):
        refine_symmetric(kps, FASHIONAI, generator=gen(), backend="numba")
    with pytest.raises(ValueError, match=r"backend='kernel' runs float32 or float64 CPU tensors, got torch.bfloat16"):
        refine_symmetric(kps.to(torch.bfloat16), FASHIONAI, generator=gen(), backend="kernel")
