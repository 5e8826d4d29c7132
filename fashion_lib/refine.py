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

One algorithm, three implementations, chosen by the ``backend`` argument of :func:`fit_symmetry_axis`,
:func:`refine_symmetric` and :func:`new_key_detection`: ``"reference"``, batch-first tensor operations that read like
Alg. 1 (:mod:`fashion_lib.refine_axis`, :mod:`fashion_lib.refine_pairs`); ``"tensor"``, the same steps batch-last and
tuned for memory traffic (:mod:`fashion_lib.refine_tensor`), what a GPU runs; ``"kernel"``, a compiled per-instance
loop for the CPU (:mod:`fashion_lib.refine_cpu`). The default, ``"auto"``, takes the kernel for float32/float64 CPU
input and the tensor path otherwise. All draw the same random numbers and sample the same subsets; on float64 input
they make the same decisions (the kernel and the tensor path round alike, so they agree on exact ties too); on
float32 input the kernel still computes in float64, so the others agree with it to float32 rounding.
``tests/test_refine_cpu.py`` holds them together; ``benchmarks/refine.py`` times them.

Input validation (an option, ``absurd_factor``; on in the command line): a point far outside the rest of its
instance (:func:`absurd_points`, a coordinate such as 1e30 from a broken detector) is treated as missing, so it
neither votes nor drags its partner, and is reported in ``RefineResult.ignored``.

Command line: ``python -m fashion_lib.refine RESULTS.json -o REFINED.json --schema coco`` refines the key-point
results (COCO results format) of any detector; ``--help`` lists the options. It lives in
:mod:`fashion_lib.refine_cli`, with the results-file reading and writing, and refines through
:mod:`fashion_lib.refine_numpy`: the CPU kernel backend on NumPy arrays, without torch, tested to give the
same results as :func:`refine_symmetric`.

Layout: this module re-exports the public names of the refiner's modules, one job each, so that
``from fashion_lib.refine import ...`` serves every caller:

- :mod:`fashion_lib.refine_config`: :class:`RefineConfig` (the readings above), :class:`RefineSummary`;
- :mod:`fashion_lib.refine_axis`: Alg. 1, the symmetry axis by RANSAC (:func:`fit_symmetry_axis`), and the geometry
  (:func:`reflect`, :func:`instance_size`, :func:`absurd_points`);
- :mod:`fashion_lib.refine_pairs`: Alg. 2 steps 1-8, :func:`refine_symmetric` and :func:`summarize_refinement`;
- :mod:`fashion_lib.refine_scales`: Alg. 2 steps 9-10, the two-scale loop :func:`new_key_detection` and
  :func:`match_instances`;
- :mod:`fashion_lib.refine_calibration`: the missing-point threshold, :func:`calibrate_missing_threshold`;
- :mod:`fashion_lib.refine_cpu` (the compiled kernel), :mod:`fashion_lib.refine_numpy` (the kernel on NumPy arrays)
  and :mod:`fashion_lib.refine_cli` (results files and the command line).
"""

from __future__ import annotations

if __name__ == "__main__":  # before the imports below: ``--help`` and argument errors then answer without torch
    import sys

    from fashion_lib.refine_cli import main

    sys.exit(main())

from fashion_lib.keypoints import missing_mask
from fashion_lib.refine_axis import AxisFit, absurd_points, fit_symmetry_axis, instance_size, reflect
from fashion_lib.refine_calibration import MissingCalibration, calibrate_missing_threshold
from fashion_lib.refine_config import MATCH_BY, RefineConfig, RefineSummary, resolve_config
from fashion_lib.refine_pairs import RefineResult, refine_symmetric, summarize_refinement
from fashion_lib.refine_scales import InstanceMatch, NewKeyDetectionResult, match_instances, new_key_detection

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
