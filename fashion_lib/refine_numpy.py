"""New-key-detection (paper Alg. 2, steps 1-8) on NumPy arrays, without torch: the refiner's command-line path.

:func:`fashion_lib.refine.refine_symmetric` is the reference. On CPU float64 input it runs the compiled kernel
:func:`fashion_lib.refine_cpu.refine_instances`; this module prepares the kernel's arguments from NumPy arrays in
the same way (missing and absurd points, per-instance ``n``, ``m``, ``d``, chunk by chunk) and runs the same kernel,
so that ``python -m fashion_lib.refine`` refines a results file without importing torch, whose import alone takes
about 650 MB of memory (more than the 5x a 74 MB results file may cost; ``benchmarks/refine_cli.py``).

Random numbers: :class:`TorchUniforms` reproduces the float64 stream of ``torch.rand`` on
``torch.Generator().manual_seed(seed)`` (MT19937 seeded as torch seeds it, 53 bits from two 32-bit outputs), so
one seed gives both paths the same RANSAC samples and the same decisions. ``tests/test_refine_numpy.py`` checks the
stream against torch and the refined results against ``refine_symmetric``, with the kernel and with the tensor path.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from fashion_lib.keypoint_tables import SchemaTable
from fashion_lib.refine_config import RefineConfig

__all__ = ["TorchUniforms", "Layout", "RefinedArrays", "refine_arrays", "too_few_voters", "absurd_points"]

_CHUNK = 16384  # refine_symmetric's default chunk_size: the random stream is consumed chunk by chunk, as there


class TorchUniforms:
    """The float64 uniforms ``torch.rand(k, B, generator=torch.Generator().manual_seed(seed), dtype=float64)`` gives,
    drawn without torch (numpy's MT19937, seeded as torch's CPU generator seeds its own).

    torch seeds MT19937 with the low 32 bits of the seed (the reference ``init_genrand``), makes each 64-bit number
    from two consecutive outputs (the first high) and keeps its low 53 bits, times ``2**-53``."""

    def __init__(self, seed: int):
        key = [seed & 0xFFFFFFFF]
        for i in range(1, 624):
            prev = key[-1]
            key.append((1812433253 * (prev ^ (prev >> 30)) + i) & 0xFFFFFFFF)
        self._bits = np.random.MT19937()
        self._bits.state = {"bit_generator": "MT19937", "state": {"key": np.array(key, np.uint32), "pos": 624}}

    def draw(self, k: int, batch: int) -> np.ndarray:
        """(k, B) float64 in [0, 1), the next ``k * B`` numbers of the stream in row-major order."""
        raw = self._bits.random_raw(2 * k * batch)  # uint64 holding 32-bit outputs
        bits = ((raw[0::2] << np.uint64(32)) | raw[1::2]) & np.uint64((1 << 53) - 1)
        return (bits.astype(np.float64) * 2.0**-53).reshape(k, batch)


@dataclass(frozen=True)
class Layout:
    """A schema's indices as NumPy arrays, for the kernel."""

    name: str
    num_keypoints: int
    left: np.ndarray  # (P,) int64, the left point of each pair
    right: np.ndarray  # (P,) int64
    center: np.ndarray  # (C,) int64, the non-symmetric points
    categories: np.ndarray  # (n_categories, K) bool, the points each category has (table order)

    @classmethod
    def of(cls, table: SchemaTable) -> Layout:
        pairs = np.array([table.index(pair) for pair in table.pairs], dtype=np.int64).reshape(-1, 2)
        categories = np.zeros((len(table.categories), len(table.names)), dtype=bool)
        for row, points in enumerate(table.categories.values()):
            categories[row, table.index(points)] = True
        return cls(name=table.name, num_keypoints=len(table.names), left=np.ascontiguousarray(pairs[:, 0]),
                   right=np.ascontiguousarray(pairs[:, 1]), center=np.array(table.index(table.center), np.int64),
                   categories=categories)

    @property
    def num_pairs(self) -> int:
        return len(self.left)


class RefinedArrays(NamedTuple):
    """What :func:`refine_arrays` returns: the fields of ``refine.RefineResult`` the command line reports."""

    keypoints: np.ndarray  # (B, K, 3) float64, refined
    has_axis: np.ndarray  # (B,) bool
    refined: np.ndarray  # (B, P) bool, pairs moved by the EMA
    filled: np.ndarray  # (B, K) bool, points replaced by their partner's mirror image (RefineResult.filled)
    ignored: np.ndarray  # (B, K) bool, absurd points treated as missing
    too_few_pairs: np.ndarray  # (B,) bool, fewer voting midpoints than the instance's m (see too_few_voters)


def _present(keypoints: np.ndarray, score_threshold: float) -> np.ndarray:
    """(B, K) bool: ``~keypoints.missing_mask`` (finite coordinates and a score above the threshold)."""
    x, y, score = keypoints[..., 0], keypoints[..., 1], keypoints[..., 2]
    return np.isfinite(x) & np.isfinite(y) & (score > score_threshold)


def _lower_nanmedian(values: np.ndarray) -> np.ndarray:
    """``torch.nanmedian(values, 1)``: the lower of the two middle values (not their mean, as numpy's), NaN
    ignored; NaN where a row has none. ``values`` (B, K, ...) -> (B, ...)."""
    count = (~np.isnan(values)).sum(1)
    pick = np.take_along_axis(np.sort(values, 1), (np.maximum(count - 1, 0) // 2)[:, None], 1)[:, 0]
    return np.where(count > 0, pick, np.nan)


def absurd_points(keypoints: np.ndarray, present: np.ndarray, factor: float) -> np.ndarray:
    """:func:`fashion_lib.refine.absurd_points` (which documents the rule) on arrays: ``keypoints`` (B, K, 3)
    float64, ``present`` (B, K) bool -> (B, K) bool."""
    if not keypoints.shape[1]:
        return np.zeros(present.shape, dtype=bool)
    xy = np.where(present[..., None], keypoints[..., :2], np.nan)  # (B, K, 2)
    centre = _lower_nanmedian(xy)  # (B, 2)
    dist = np.hypot(xy[..., 0] - centre[:, None, 0], xy[..., 1] - centre[:, None, 1])  # (B, K), NaN if missing
    radius = np.maximum(_lower_nanmedian(dist), 1.0)  # NaN stays NaN, as torch's clamp
    with np.errstate(invalid="ignore"):
        return present & (dist > factor * radius[:, None])


def _instance_size(keypoints: np.ndarray, present: np.ndarray) -> np.ndarray:
    """:func:`fashion_lib.refine.instance_size` on arrays: (B,) float64, the largest distance between two present
    points, one point against all at a time (a (B, K, K) array would be large)."""
    xy = np.where(present[..., None], keypoints[..., :2], 0.0)
    size = np.zeros(len(xy))
    for i in range(xy.shape[1]):
        dx, dy = xy[:, i, None, 0] - xy[..., 0], xy[:, i, None, 1] - xy[..., 1]  # (B, K)
        dist = np.sqrt(dx * dx + dy * dy)
        size = np.maximum(size, np.where(present[:, i, None] & present, dist, 0.0).max(1))
    return size


def _instance_parameters(
    keypoints: np.ndarray, present: np.ndarray, layout: Layout, cfg: RefineConfig, applicable: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``refine_pairs._instance_parameters``: RANSAC's ``n``, ``m`` and ``d`` (pixels) per instance, (B,) float64
    each."""
    B = len(keypoints)
    n, m = np.full(B, float(cfg.n)), np.full(B, float(cfg.m))
    if cfg.pairs == "category":  # scaled to the garment's voters, as the reference documents
        voters = layout.num_pairs + (len(layout.center) if cfg.center_votes else 0)
        v_c = (applicable[:, layout.left] & applicable[:, layout.right]).sum(1)
        if cfg.center_votes:
            v_c = v_c + applicable[:, layout.center].sum(1)
        n_c = np.maximum(np.minimum(cfg.n, v_c - 1), 2)
        n, m = n_c.astype(np.float64), np.maximum((cfg.m * v_c + voters - 1) // voters, n_c).astype(np.float64)
    d = cfg.d * _instance_size(keypoints, present) if cfg.d_unit == "relative" else np.full(B, float(cfg.d))
    return n, m, d


def too_few_voters(present: np.ndarray, layout: Layout, cfg: RefineConfig, m: np.ndarray,
                   applicable: np.ndarray | None) -> np.ndarray:
    """(B,) bool: instances with fewer voting midpoints than their ``m`` (B,), which no ``d`` gives an axis.

    ``present`` (B, K) bool, absurd points already left out; ``applicable`` (B, K) bool with ``pairs="category"``."""
    if applicable is not None:
        present = present & applicable
    voters = (present[:, layout.left] & present[:, layout.right]).sum(1)
    if cfg.center_votes:
        voters = voters + present[:, layout.center].sum(1)
    return voters < m


def refine_arrays(
    keypoints: np.ndarray,
    layout: Layout,
    cfg: RefineConfig,
    uniforms: TorchUniforms,
    categories: np.ndarray | None = None,
) -> RefinedArrays:
    """:func:`fashion_lib.refine.refine_symmetric` on float64 arrays, through the CPU kernel, without torch.

    Parameters
    ----------
    keypoints : (B, K, 3) float64, x, y in pixels and a score or COCO visibility.
    layout : the schema's :class:`Layout`.
    cfg : RefineConfig (validated here).
    uniforms : the random stream; ``TorchUniforms(seed)`` gives the samples ``torch.Generator().manual_seed(seed)``
        gives the reference.
    categories : (B,) int64 indices into the schema's categories; required with ``pairs="category"``.

    Returns
    -------
    RefinedArrays
    """
    from fashion_lib import refine_cpu  # numba: imported when there is work

    cfg.validate(num_voters=layout.num_pairs + (len(layout.center) if cfg.center_votes else 0))
    B, K = len(keypoints), layout.num_keypoints
    if keypoints.dtype != np.float64 or keypoints.shape != (B, K, 3):
        raise ValueError(f"keypoints must be a (B, {K}, 3) float64 array for the {layout.name} schema, got "
                         f"{keypoints.shape} {keypoints.dtype}")
    applicable = None
    if cfg.pairs == "category":
        if categories is None or categories.shape != (B,):
            raise ValueError(f"categories must be ({B},) category indices with pairs='category'")
        if B and (categories.min() < 0 or categories.max() >= len(layout.categories)):
            raise ValueError(f"categories indices must be in [0, {len(layout.categories) - 1}]")
        applicable = layout.categories[categories]  # (B, K)
    if not refine_cpu.ready(os.cpu_count() or 1):
        raise RuntimeError("the refiner's CPU kernel cannot run in a process forked from one that ran it; start the "
                           "process with 'spawn' or use fashion_lib.refine.refine_symmetric")
    out = RefinedArrays(keypoints=np.empty_like(keypoints), has_axis=np.empty(B, bool),
                        refined=np.empty((B, layout.num_pairs), bool), filled=np.empty((B, K), bool),
                        ignored=np.zeros((B, K), bool), too_few_pairs=np.empty(B, bool))
    axis, inliers = np.empty((B, 3)), np.empty((B, layout.num_pairs), bool)
    all_points = np.ones((min(B, _CHUNK), K), dtype=bool)
    tiny_eps = 256 * float(np.finfo(np.float64).eps)  # refine_axis._tiny_eps
    for s in range(0, B, _CHUNK):  # chunk by chunk, as the reference: the same stream, and bounded temporaries
        part = slice(s, s + _CHUNK)
        chunk, app = keypoints[part], None if applicable is None else applicable[part]
        present = _present(chunk, cfg.score_threshold)
        if math.isfinite(cfg.absurd_factor):
            ignored = out.ignored[part] = absurd_points(chunk, present, cfg.absurd_factor)
            if ignored.any():  # an ignored point becomes NaN, the refiner's "missing": no vote, no partner moved
                chunk = chunk.copy()
                chunk[..., :2][ignored] = np.nan
                present &= ~ignored
        n, m, d = _instance_parameters(chunk, present, layout, cfg, app)
        refine_cpu.refine_instances(
            chunk, float(cfg.score_threshold), float(cfg.fill_below), all_points[:len(chunk)] if app is None else app,
            layout.left,
            layout.right, layout.center, cfg.center_votes, uniforms.draw(cfg.k, len(chunk)), n, m, d,
            float(cfg.alpha), tiny_eps, out.keypoints[part], axis[part], inliers[part], out.refined[part],
            out.filled[part], out.has_axis[part])
        out.too_few_pairs[part] = too_few_voters(present, layout, cfg, m, app)
    keep = out.ignored & ~out.filled  # an ignored point not filled keeps its input value: reported, not erased
    out.keypoints[keep] = keypoints[keep]
    return out
