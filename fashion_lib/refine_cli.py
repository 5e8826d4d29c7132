"""The refiner's command line and its results files: ``python -m fashion_lib.refine RESULTS.json -o OUT.json``.

Refines the key-point detections of any detector, in the COCO results format (data-formats.md, D.2: a JSON list of
``{"image_id", "category_id", "keypoints": [x1, y1, v1, ...], "score"}``), with
:func:`fashion_lib.refine.refine_symmetric`, and writes them in the same format. ``python -m fashion_lib.refine``
runs :func:`main`.

What the command adds to the library, and why:

- A default ``d`` for each unit. The paper's ``d = 1`` has no unit; read as pixels (the default here, as in
  ``RefineConfig``) it is far below the scale of real detections, and few instances get an axis. With
  ``--d-unit relative`` and no ``--d`` the command uses ``CLI_RELATIVE_D`` (0.1 of each instance's size), not 1
  (which would make every midpoint an inlier). Pixels stay the default by measurement on the real COCO excerpt
  (``benchmarks/refine_d_unit.py``; README, "Applying the refiner to your own detector"): relative ``d`` finds
  axes, but raises AP only through the points it fills and lowers it where the detector reports every point.
- Validation: a point far outside the rest of its instance (``--absurd-factor``, 100 radii; see
  :func:`fashion_lib.refine.absurd_points`) is treated as missing and counted, so a coordinate such as 1e30 cannot
  drag its partner; non-finite numbers and malformed entries are refused with the file, the entry and the field.
- A report: the settings used, what was moved and what was filled, and a warning naming the parameter to change
  when few instances get an axis.

Speed and memory: the file is read with one ``json.load`` whose object hook moves each entry's key points into one
float64 buffer as soon as the entry is parsed (the float objects of 100,000 persons never exist at once); the other
fields are checked with whole-list operations that run in C; the refined rows are written back in chunks, so no
second copy of the results exists as Python objects. The command never imports torch (about 650 MB of memory on its
own): it refines with :mod:`fashion_lib.refine_numpy`, the library's CPU kernel on NumPy arrays with torch's random
stream, which reaches the same results as :func:`refine_results` (the reference, on tensors; tests hold them equal).
numba is imported only once the file is read, so ``--help`` answers at once. ``benchmarks/refine_cli.py`` measures
it.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
from array import array
from collections.abc import Sequence
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fashion_lib import refine_numpy
from fashion_lib.io import atomic_write, load_json
from fashion_lib.keypoint_tables import TABLES, get_table
from fashion_lib.refine_config import _D_UNITS, _PAIR_MODES, RefineConfig, RefineSummary, resolve_config
from fashion_lib.refine_numpy import Layout, RefinedArrays

if TYPE_CHECKING:
    import torch

    from fashion_lib.keypoints import KeypointSchema

__all__ = ["refine_results", "read_results", "write_results", "axis_advice", "main"]

logger = logging.getLogger(__name__)


# The command line's own defaults: see the module docstring and the README (benchmarks/refine_d_unit.py measured them).
CLI_D_UNIT = "px"  # the paper's reading; relative d gained AP on real COCO persons only by filling dropped points
CLI_RELATIVE_D = 0.1  # with --d-unit relative: fraction of the instance's size (the best AP measured, 0.05-0.2)
CLI_ABSURD_FACTOR = 100.0

# Below this fraction of instances with an axis the command warns: most detections then pass through unchanged.
FEW_AXES = 0.5

_WRITE_CHUNK = 2048  # entries serialised at once: bounds the Python objects alive while writing


# --------------------------------------------------------------------------------------------------------------
# Results files in bulk
# --------------------------------------------------------------------------------------------------------------


_NUMBERS = {int, float}
_COLLECTED = object()  # stands in for a key-point list that _KeypointCollector moved into its buffer


class _KeypointCollector:
    """A ``json.load`` object hook that moves each entry's key-point list into one float64 buffer while the file is
    parsed, so that the millions of float objects of a large file never exist at once (they are freed entry by
    entry). A list it cannot take (wrong length, not all numbers) stays where it is, for the validator to name."""

    def __init__(self, width: int):
        self.width, self.buffer, self.rows = width, array("d"), 0

    def __call__(self, obj: dict) -> dict:
        kps = obj.get("keypoints")
        if type(kps) is list and len(kps) == self.width and set(map(type, kps)) <= _NUMBERS:
            end = len(self.buffer)
            try:
                self.buffer.extend(kps)
            except OverflowError:  # an integer beyond float64
                del self.buffer[end:]
                return obj
            obj["keypoints"] = _COLLECTED
            self.rows += 1
        return obj


def _bulk_arrays(data: Any, num_keypoints: int, keypoints: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray] | None:
    """Key points ``(B, K, 3)`` float64 and category ids ``(B,)`` int64 of well-formed results, else None.

    ``keypoints``, when the reader's :class:`_KeypointCollector` already holds them, replaces the entries' lists.
    Each check covers the whole list at once (``set(map(type, ...))`` runs in C): the per-entry Python work of
    :func:`fashion_lib.coco_eval.validate_coco_results` is what made the command slow. None means "something is
    wrong": that function then finds the first bad entry and names it.
    """
    if type(data) is not list or not set(map(type, data)) <= {dict}:
        return None
    if not data:
        return np.zeros((0, num_keypoints, 3)), np.zeros(0, dtype=np.int64)
    try:
        ids, cats, scores = ([e[name] for e in data] for name in ("image_id", "category_id", "score"))
        kps = [e["keypoints"] for e in data] if keypoints is None else None
    except KeyError:
        return None
    if not (set(map(type, ids)) <= {int} and set(map(type, cats)) <= {int} and set(map(type, scores)) <= _NUMBERS):
        return None
    if kps is not None and not (set(map(type, kps)) <= {list} and set(map(len, kps)) == {3 * num_keypoints}
                                and set(map(type, chain.from_iterable(kps))) <= _NUMBERS):
        return None
    try:
        if kps is not None:
            keypoints = np.fromiter(chain.from_iterable(kps), np.float64, count=len(kps) * 3 * num_keypoints)
        finite_scores = np.isfinite(np.fromiter(scores, np.float64, count=len(scores))).all()
        categories = np.fromiter(cats, np.int64, count=len(cats))
    except OverflowError:  # an integer beyond float64 or int64
        return None
    if not (finite_scores and np.isfinite(keypoints).all()):
        return None
    return keypoints.reshape(len(data), num_keypoints, 3), categories


def _checked_arrays(data: Any, where: str, num_keypoints: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_bulk_arrays`, or the error of :func:`fashion_lib.coco_eval.validate_coco_results` naming the entry."""
    arrays = _bulk_arrays(data, num_keypoints)
    if arrays is not None:
        return arrays
    from fashion_lib.coco_eval import validate_coco_results

    try:
        valid = validate_coco_results(data, where=where, num_keypoints=num_keypoints)
    except OverflowError:  # an integer too large for a float reaches math.isfinite there
        raise ValueError(f"{where}: an integer in the key points is too large for a float") from None
    arrays = _bulk_arrays(valid, num_keypoints)
    if arrays is None:  # validate_coco_results accepted what the bulk check refused: a bug here, not in the input
        raise ValueError(f"{where}: the results passed validation but could not be read in bulk")
    return arrays


def read_results(path: str | os.PathLike, num_keypoints: int) -> tuple[list[dict], np.ndarray, np.ndarray]:
    """Read a COCO key-point results file for the refiner.

    Returns
    -------
    entries : list of B dicts, each entry's fields with ``keypoints`` set to None (its list is dropped once copied,
        to save memory; the key stays, so :func:`write_results` writes the fields in their order).
    keypoints : (B, K, 3) float64, x, y in pixels and the score / visibility.
    category_ids : (B,) int64.

    Raises
    ------
    ValueError
        Naming the file and the line (not JSON, not UTF-8) or the entry and the field (malformed, non-finite).
    """
    collector = _KeypointCollector(3 * num_keypoints)
    data = load_json(path, object_hook=collector)
    arrays = None
    # every top-level entry, and nothing else (a nested object), gave its list to the collector, in order
    if type(data) is list and collector.rows == len(data) and set(map(type, data)) <= {dict} and all(
            entry.get("keypoints") is _COLLECTED for entry in data):
        arrays = _bulk_arrays(data, num_keypoints, np.frombuffer(collector.buffer, dtype=np.float64))
    if arrays is None:  # read it again as it is, for the validator to name the first bad entry
        data = load_json(path)
        arrays = _checked_arrays(data, str(path), num_keypoints)
    for entry in data:
        entry["keypoints"] = None
    return data, *arrays


def write_results(path: str | os.PathLike, entries: Sequence[dict], keypoints: np.ndarray) -> Path:
    """Write ``entries`` with ``keypoints`` (B, K, 3) as a COCO results file, atomically, ``_WRITE_CHUNK`` at a time.

    The output is what ``json.dump`` of the whole list would write; ``entries`` are not modified.
    """
    path = Path(path)
    flat = keypoints.reshape(len(entries), math.prod(keypoints.shape[1:]))
    bad = np.flatnonzero(~np.isfinite(flat).all(1))
    if len(bad):
        raise ValueError(f"entry {bad[0]}: a refined coordinate is not finite (inputs too large for float64 "
                         "arithmetic); nothing was written")
    with atomic_write(path, "w", encoding="utf-8") as f:
        f.write("[")
        for s in range(0, len(entries), _WRITE_CHUNK):
            rows = flat[s:s + _WRITE_CHUNK].tolist()
            part = [{**entry, "keypoints": row} for entry, row in zip(entries[s:s + _WRITE_CHUNK], rows, strict=True)]
            f.write(("" if s == 0 else ", ") + json.dumps(part, allow_nan=False)[1:-1])
        f.write("]")
    return path


# --------------------------------------------------------------------------------------------------------------
# Refining arrays, and the summary
# --------------------------------------------------------------------------------------------------------------


def _category_index(category_ids: np.ndarray, layout: Layout, cfg: RefineConfig, where: str) -> np.ndarray | None:
    """(B,) int64 indices into the schema's categories from COCO's 1-based ``category_id``s, with
    ``pairs="category"``; else None. ``ValueError`` naming ``where`` and the entry for an unknown id."""
    if cfg.pairs != "category":
        return None
    names = list(get_table(layout.name).categories)
    bad = np.flatnonzero((category_ids < 1) | (category_ids > len(names)))
    if len(bad):
        raise ValueError(f"{where}[{bad[0]}]: category_id {category_ids[bad[0]]} is not a {layout.name} category id "
                         f"(1..{len(names)}: {names})")
    return category_ids - 1


def _summary(keypoints: np.ndarray, out: RefinedArrays) -> RefineSummary:
    """What the refiner did to ``keypoints`` (B, K, 3): moved points are those the EMA changed, not the filled."""
    moved = (out.keypoints[..., :2] != keypoints[..., :2]).any(-1) & ~out.filled
    return RefineSummary(instances=len(keypoints), with_axis=int(out.has_axis.sum()),
                         too_few_pairs=int(out.too_few_pairs.sum()), pairs_refined=int(out.refined.sum()),
                         points_moved=int(moved.sum()), points_filled=int(out.filled.sum()),
                         points_ignored=int(out.ignored.sum()))


def _reference_arrays(keypoints: np.ndarray, layout: Layout, cfg: RefineConfig, generator: torch.Generator,
                      categories: np.ndarray | None) -> RefinedArrays:
    """:func:`fashion_lib.refine.refine_symmetric` (the reference, on tensors) as :class:`RefinedArrays`."""
    import torch

    from fashion_lib import refine

    kps = torch.from_numpy(keypoints)
    out = refine.refine_symmetric(kps, layout.name, generator=generator, config=cfg,
                                  categories=None if categories is None else torch.from_numpy(categories))
    present = refine_numpy._present(keypoints, cfg.score_threshold) & ~out.ignored.numpy()
    applicable = None if categories is None else layout.categories[categories]
    _, m, _ = refine_numpy._instance_parameters(keypoints, present, layout, cfg, applicable)
    return RefinedArrays(keypoints=out.keypoints.numpy(), has_axis=out.has_axis.numpy(), refined=out.refined.numpy(),
                         filled=out.filled.numpy(), ignored=out.ignored.numpy(),
                         too_few_pairs=refine_numpy.too_few_voters(present, layout, cfg, m, applicable))


def refine_results(
    results: list[dict],
    schema: str | KeypointSchema,
    *,
    generator: torch.Generator,
    config: RefineConfig | None = None,
    **overrides,
) -> tuple[list[dict], RefineSummary]:
    """Refine detections in the COCO results format with :func:`fashion_lib.refine.refine_symmetric`, the reference
    (the command line runs :mod:`fashion_lib.refine_numpy` instead, which reaches the same results without torch).

    The third value of each key-point triple is read as the point's score / visibility (a point written as
    ``0, 0, 0`` is missing). For the FashionAI schema, ``category_id`` is the garment category: 1 blouse,
    2 outwear, 3 dress, 4 skirt, 5 trousers (the order of ``FASHIONAI.categories``); it is needed with
    ``pairs="category"``.

    Parameters
    ----------
    results : list of dict, COCO results entries (not modified).
    schema : ``"coco"``, ``"fashionai"`` or a schema.
    generator : torch.Generator for RANSAC.
    config : RefineConfig, default ``RefineConfig.for_schema(schema)`` (the paper's); ``overrides`` replace fields.

    Returns
    -------
    refined : list of dict, new entries with refined ``keypoints`` (filled points get their partner's score).
    summary : RefineSummary
    """
    layout = Layout.of(get_table(schema if isinstance(schema, str) else schema.name))
    cfg = resolve_config(config, layout.name, overrides)
    keypoints, category_ids = _checked_arrays(results, "results", layout.num_keypoints)
    out = _reference_arrays(keypoints, layout, cfg, generator, _category_index(category_ids, layout, cfg, "results"))
    rows = out.keypoints.reshape(len(keypoints), 3 * layout.num_keypoints).tolist()
    return [{**entry, "keypoints": row} for entry, row in zip(results, rows, strict=True)], _summary(keypoints, out)


def axis_advice(summary: RefineSummary, cfg: RefineConfig) -> str | None:
    """A warning when fewer than ``FEW_AXES`` of the instances got an axis, naming the parameter to change; else None.

    Instances with fewer than ``m`` complete pairs need a smaller ``--m``; the others found no ``m`` midpoints
    within ``d`` of a line, so ``d`` is too small for them (in pixels, usually: ``--d-unit relative``).
    """
    if not summary.instances or summary.with_axis >= FEW_AXES * summary.instances:
        return None
    without = summary.instances - summary.with_axis
    parts = [f"only {summary.with_axis} of {summary.instances} instances ({summary.with_axis / summary.instances:.0%}) "
             f"got a symmetry axis; the other {without} pass through unchanged."]
    if summary.too_few_pairs:
        parts.append(f"{summary.too_few_pairs} have fewer than m = {cfg.m} complete pairs: lower --m to let them "
                     "vote.")
    spread = without - summary.too_few_pairs
    if spread:
        if cfg.d_unit == "px":
            parts.append(f"{spread} have the pairs but not m of their midpoints within d = {cfg.d:g} px of one line: "
                         "d in pixels is below the scale of real detections; to refine them use --d-unit relative "
                         f"(d {CLI_RELATIVE_D:g} of each instance's size) or a larger --d, or lower --m (on real COCO "
                         "persons that helped only by filling missing points: see the README).")
        else:
            parts.append(f"{spread} have the pairs but not m of their midpoints within d = {cfg.d:g} of their size "
                         "from one line: raise --d or lower --m.")
    return " ".join(parts)


def _settings(schema: str, cfg: RefineConfig, seed: int) -> str:
    unit = "px" if cfg.d_unit == "px" else "x the instance's size (--d-unit relative)"
    absurd = "off" if math.isinf(cfg.absurd_factor) else f"{cfg.absurd_factor:g} radii"
    return (f"settings: schema {schema}, alpha {cfg.alpha:g}, k {cfg.k}, n {cfg.n}, m {cfg.m}, d {cfg.d:g} "
            f"{unit}, score threshold {cfg.score_threshold:g}, fill threshold {cfg.fill_below:g}, pairs {cfg.pairs}, "
            "center votes "
            f"{'on' if cfg.center_votes else 'off'}, absurd points beyond {absurd}, seed {seed}")


# --------------------------------------------------------------------------------------------------------------
# The command line
# --------------------------------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m fashion_lib.refine",
        description="Refine key-point detections (COCO results format) with the symmetry prior of New-key-detection "
                    "(Alg. 2, steps 1-8). Defaults are the paper's parameters for the schema (d = 1 read as pixels); "
                    "the command prints the settings it used and warns when few instances get an axis.")
    p.add_argument("results", help="detections: a JSON list of {image_id, category_id, keypoints, score}")
    p.add_argument("-o", "--output", required=True, help="where to write the refined detections (same format)")
    p.add_argument("--schema", required=True, choices=sorted(TABLES), help="key-point schema")
    p.add_argument("--alpha", type=float, help="EMA weight of the mirrored partner, in [0, 1] (paper: 0.4)")
    p.add_argument("--k", type=int, help="RANSAC candidates (paper: 10)")
    p.add_argument("--n", type=int, help="midpoints per RANSAC sample (paper: 5 FashionAI, 4 COCO)")
    p.add_argument("--m", type=int, help="inliers a candidate axis needs (paper: 8 FashionAI, 6 COCO)")
    p.add_argument("--d", type=float, help="inlier distance, in the unit of --d-unit (default: the paper's 1 px; "
                                           f"{CLI_RELATIVE_D:g} with --d-unit relative)")
    p.add_argument("--d-unit", choices=_D_UNITS, default=CLI_D_UNIT,
                   help="unit of d: px (the paper's reading, default), or relative: a fraction of the instance's "
                        "size (the largest distance between two of its points)")
    p.add_argument("--score-threshold", type=float,
                   help="a point whose third value is <= this is missing: it does not vote and may be filled "
                        "(default 0)")
    p.add_argument("--fill-threshold", type=float,
                   help="a point whose third value is <= this is filled from its partner's mirror image when the "
                        "partner's is above it, though it votes; for example your detector's threshold that best "
                        "separates visible from hidden points on held-out images (default: --score-threshold)")
    p.add_argument("--pairs", choices=_PAIR_MODES,
                   help="which pairs vote: all (paper's literal reading) or the garment category's own")
    p.add_argument("--center-votes", action="store_true", default=None,
                   help="let the non-symmetric points vote for the axis")
    p.add_argument("--absurd-factor", type=float, default=CLI_ABSURD_FACTOR,
                   help="a point farther than this many radii (median distance of the instance's points from their "
                        f"median) from its instance is treated as missing and counted; inf: off (default "
                        f"{CLI_ABSURD_FACTOR:g})")
    p.add_argument("--seed", type=int, default=0, help="seed of the RANSAC samples (default 0)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status (2 on bad input, with a message naming it)."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    d = CLI_RELATIVE_D if args.d is None and args.d_unit == "relative" else args.d
    overrides = {key: getattr(args, key) for key in ("alpha", "k", "n", "m", "d_unit", "score_threshold",
                                                     "fill_threshold", "pairs", "center_votes", "absurd_factor")}
    layout = Layout.of(get_table(args.schema))
    try:
        cfg = resolve_config(None, layout.name, {**overrides, "d": d})
        cfg.validate()  # before the file is read; refine_arrays checks n and m against the voters
        logger.info("%s", _settings(layout.name, cfg, args.seed))
        entries, keypoints, category_ids = read_results(args.results, layout.num_keypoints)
        # the same seed gives the same samples as torch.Generator().manual_seed(seed) in the library
        out = refine_numpy.refine_arrays(keypoints, layout, cfg, refine_numpy.TorchUniforms(args.seed),
                                         _category_index(category_ids, layout, cfg, args.results))
        summary = _summary(keypoints, out)
        del keypoints, category_ids  # the input's buffer, before the output's text exists (peak memory)
        write_results(args.output, entries, out.keypoints)
    except (OSError, ValueError) as err:
        logger.error("error: %s", err)
        return 2
    logger.info("%s -> %s: %s", args.results, args.output, summary)
    advice = axis_advice(summary, cfg)
    if advice:
        logger.warning("warning: %s", advice)
    return 0
