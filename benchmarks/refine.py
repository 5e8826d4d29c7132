"""Benchmark the batched symmetry refiner against a per-instance loop over scikit-image's RANSAC.

Input is FashionAI-shaped: 24 points, 11 left/right pairs (so 11 midpoints), the paper's k = 10 candidates,
n = 5, m = 8, d = 1 px. Both sides do the same work per instance: fit a symmetry axis by RANSAC through the
midpoints (``skimage.measure.ransac`` with ``LineModelND``, ``max_trials = k``), then move the non-inlier pairs
towards their partner's mirror image. The loop runs on a subset (it would take minutes on the full set); both are
reported as instances per second, measured in this run on this device, and as their ratio.

On a CPU the refiner runs a compiled kernel (``fashion_lib/refine_cpu.py``); the benchmark also times the tensor
path, which a GPU runs, on the same CPU, to show what the kernel buys. Measured on the 2-core machine (quiet, one
thread, 100,000 instances, ``--repeats 5``): the kernel 1.41 M instances/s, the tensor path 0.28 M (the kernel
5.1x faster), the reference 0.16 M (8.6x). The kernel stays for two measured reasons: this in-process gain, and the
command line (``python -m fashion_lib.refine``), which runs it without torch (277 MB peak on a 74 MB results file,
against 854 MB with torch: ``benchmarks/refine_cli.py``, README).

Peak memory: the refiner processes instances in chunks (``chunk_size``), so its extra memory is bounded whatever
the batch size; the benchmark reports the process's peak RSS growth (CPU) or CUDA's max allocated (GPU).

Run: ``python benchmarks/refine.py [--instances 100000] [--loop-instances 2000] [--repeats 9] [--threads 2]``.
"""

from __future__ import annotations

import argparse
import math
import platform
import statistics
import time
import warnings
from collections.abc import Callable

import numpy as np
import skimage
import torch
from skimage.measure import LineModelND, ransac

from fashion_lib.keypoints import FASHIONAI
from fashion_lib.refine import refine_symmetric


def timed(fn: Callable[[], object], repeats: int, sync: Callable[[], None] = lambda: None) -> list[float]:
    """Wall times of ``repeats`` calls after one warm-up call (a shared virtual machine's timings vary by tens of
    per cent from call to call, so the callers report the median and the range)."""
    fn()
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return times


def rates(count: int, times: list[float]) -> str:
    """``count`` / time as instances/s: the median, and the slowest to fastest call."""
    return (f"{count / statistics.median(times):>14,.0f} instances/s  (calls {count / max(times):,.0f} to "
            f"{count / min(times):,.0f})")


def instances(b: int, seed: int = 0) -> torch.Tensor:
    """(B, 24, 3) float32 garments: symmetric about a tilted axis, with noise and a quarter of the pairs off-axis."""
    g = torch.Generator().manual_seed(seed)
    angle = (torch.rand(b, generator=g) * 2 - 1) * 0.25
    normal = torch.stack([torch.cos(angle), torch.sin(angle)], -1)
    direction = torch.stack([-torch.sin(angle), torch.cos(angle)], -1)
    along = (torch.rand(b, 11, generator=g) * 2 - 1) * 120
    half = 10 + torch.rand(b, 11, generator=g) * 60
    off = (torch.rand(b, 11, generator=g) < 0.25) * (3 + 10 * torch.rand(b, 11, generator=g))
    mid = torch.tensor([256.0, 256.0]) + along[..., None] * direction[:, None] + off[..., None] * normal[:, None]
    kps = torch.zeros(b, 24, 3)
    kps[:, FASHIONAI.pairs[:, 0], :2] = mid - half[..., None] * normal[:, None]
    kps[:, FASHIONAI.pairs[:, 1], :2] = mid + half[..., None] * normal[:, None]
    kps[..., :2] += torch.randn(b, 24, 2, generator=g) * 0.3
    kps[..., 2] = 1.0
    return kps


def skimage_loop(kps: np.ndarray, k: int, n: int, m: int, d: float, alpha: float, seed: int) -> np.ndarray:
    """The same refinement, one instance at a time, with scikit-image's RANSAC for the axis."""
    pairs = FASHIONAI.pairs.numpy()
    rng = np.random.default_rng(seed)
    out = kps.copy()
    for b in range(len(kps)):
        left, right = kps[b, pairs[:, 0], :2], kps[b, pairs[:, 1], :2]
        mid = 0.5 * (left + right)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model, inliers = ransac(mid, LineModelND, min_samples=n, residual_threshold=d, max_trials=k, rng=rng)
        if model is None or inliers is None or inliers.sum() < m:
            continue
        origin, direction = model.origin, model.direction
        normal = np.array([-direction[1], direction[0]])
        c = normal @ origin

        def mirror(p: np.ndarray, normal: np.ndarray = normal, c: float = c) -> np.ndarray:
            return p - 2 * ((p @ normal) - c)[:, None] * normal

        moved = ~inliers
        out[b, pairs[moved, 0], :2] = (1 - alpha) * left[moved] + alpha * mirror(right[moved])
        out[b, pairs[moved, 1], :2] = (1 - alpha) * right[moved] + alpha * mirror(left[moved])
    return out


def _status_mb(field: str) -> float | None:
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) / 1024.0 for line in f if line.startswith(field + ":"))
    except (OSError, StopIteration):
        return None


def reset_peak_rss() -> float | None:
    """Reset the process's peak resident memory to its current one (Linux) and return that, in MB; None elsewhere.

    Without the reset the peak is a high-water mark that building the input may already have passed."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return None
    return _status_mb("VmRSS")


def peak_rss_growth(start: float | None) -> str:
    peak = _status_mb("VmHWM")
    return "not measured (needs Linux's /proc)" if start is None or peak is None else f"{peak - start:.0f} MB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instances", type=int, default=100_000)
    parser.add_argument("--loop-instances", type=int, default=2_000)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--chunk-size", type=int, default=16384)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    k, n, m, d, alpha = 10, 5, 8, 1.0, 0.4
    print(f"python {platform.python_version()}, torch {torch.__version__}, scikit-image {skimage.__version__}, "
          f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads")
    print(f"FashionAI-shaped input: 24 points, 11 pairs; k={k}, n={n}, m={m}, d={d} px, alpha={alpha}")

    kps = instances(args.instances)

    def run(backend: str = "auto") -> None:
        refine_symmetric(kps, FASHIONAI, generator=torch.Generator().manual_seed(0), k=k, n=n, m=m, d=d, alpha=alpha,
                         chunk_size=args.chunk_size, backend=backend)

    run()  # loads (or, on a fresh clone, compiles) the CPU kernel before the memory high-water mark is reset
    rss0 = reset_peak_rss()
    times = timed(run, args.repeats)
    growth = peak_rss_growth(rss0)
    rate_cpu = args.instances / statistics.median(times)
    print(f"refine_symmetric, CPU:    {rates(args.instances, times)}; {args.instances:,} instances, peak RSS grew "
          f"{growth} (input {kps.numel() * kps.element_size() / 2**20:.0f} MB), chunk {args.chunk_size}")
    # the tensor path, which a GPU runs, and the batch-first reference on this CPU: what the compiled kernel replaces
    tensor_times = timed(lambda: run("tensor"), max(1, args.repeats - 2))
    reference_times = timed(lambda: run("reference"), max(1, args.repeats - 2))
    print(f"  tensor path on the CPU: {rates(args.instances, tensor_times)}; the kernel is "
          f"{statistics.median(tensor_times) / statistics.median(times):.1f}x faster")
    print(f"  reference on the CPU:   {rates(args.instances, reference_times)}; the kernel is "
          f"{statistics.median(reference_times) / statistics.median(times):.1f}x faster")

    sub = kps[: args.loop_instances].numpy().astype(np.float64)
    loop_times = timed(lambda: skimage_loop(sub, k, n, m, d, alpha, seed=0), max(1, args.repeats - 2))
    rate_loop = len(sub) / statistics.median(loop_times)
    print(f"scikit-image ransac loop: {rates(len(sub), loop_times)}; {len(sub):,} instances")
    print(f"ratio, batched / loop:    {rate_cpu / rate_loop:>14,.0f}x   (target >= 300x; >= 1,000,000 instances/s)")

    if torch.cuda.is_available():
        dev = torch.device("cuda")
        big = instances(max(args.instances, 1_000_000)).to(dev)
        torch.cuda.reset_peak_memory_stats()
        gpu_times = timed(lambda: refine_symmetric(big, FASHIONAI, generator=torch.Generator().manual_seed(0), k=k,
                                                   n=n, m=m, d=d, alpha=alpha, chunk_size=1 << 20), args.repeats,
                          torch.cuda.synchronize)
        mem = torch.cuda.max_memory_allocated() / 2**20
        print(f"refine_symmetric, {torch.cuda.get_device_name(0)}: {rates(len(big), gpu_times)}; {len(big):,} "
              f"instances, peak {mem:.0f} MiB; aim 1e8/s")
    else:
        print("no CUDA device: GPU figure not measured")
    if not math.isfinite(rate_cpu):
        raise SystemExit("timing failed")


if __name__ == "__main__":
    main()
