"""The rows of Table 1 for each seed: the detectors' own, the axis applied once, the detector twice, New-key-detection.

Paper, Table 1 and Alg. 1-2. :func:`table1_rows` builds, from one seed's detectors (:mod:`.keypoints`), the key
points of each row (:data:`~fashion_lib.experiments.keypoints.ROWS`) and caches them beside the run;
:func:`rows_for_seeds` does it for every seed. The refiner's fill rule is calibrated on held-out training images,
never the validation set (:func:`calibrate_missing`), and set by :func:`with_fill_threshold`, the one place every
page's rule is made.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence

import torch

from fashion_lib.data.coco import CocoKeypoints
from fashion_lib.experiments import cached, library_digest, spread_rows
from fashion_lib.experiments.keypoints import (
    AXIS_ONCE,
    CPN,
    CPN_ROWS,
    KRCNN,
    ROWS,
    SECOND,
    TWICE,
    Detectors,
    Instances,
    KeypointSetup,
    Table1Row,
    ValidationSet,
    detected_instances,
    detector_models,
    fashionai_splits,
    tested_rows,
    train_detectors,
)
from fashion_lib.keypoints import get_schema
from fashion_lib.models.detector import all_instances, as_detect_fn, predict, top_instance
from fashion_lib.provenance import content_digest
from fashion_lib.refine import (
    MissingCalibration,
    NewKeyDetectionResult,
    RefineConfig,
    calibrate_missing_threshold,
    match_instances,
    new_key_detection,
    refine_symmetric,
)
from fashion_lib.synthetic import SyntheticGarments, SyntheticPeople

__all__ = [
    "with_fill_threshold", "per_seed_refine", "calibration_set", "point_scores", "calibrate_missing",
    "calibrated_refine", "table1_rows", "crop_alone", "rows_for_seeds",
]

log = logging.getLogger(__name__)


def with_fill_threshold(refine: RefineConfig, threshold: float) -> RefineConfig:
    """``refine`` with its fill rule set to a calibrated ``threshold``, the one place every page's rule is made: a
    calibration that flags nothing (``-inf``, scores that carry no information) leaves the paper's rule, where
    only the points missing for the vote (``<= score_threshold``) are filled."""
    return dataclasses.replace(refine, fill_threshold=max(float(threshold), refine.score_threshold))


def per_seed_refine(refine: RefineConfig, thresholds: Sequence[float], n: int) -> list[RefineConfig]:
    """``refine`` per seed, its ``fill_threshold`` set to each seed's entry of ``thresholds`` (empty: as is)."""
    if not thresholds:
        return [refine] * n
    if len(thresholds) != n:
        raise ValueError(f"thresholds has {len(thresholds)} entries for {n} seeds")
    return [with_fill_threshold(refine, t) for t in thresholds]


def calibration_set(setup: KeypointSetup, seed: int) -> tuple[list[torch.Tensor], list[dict]]:
    """``setup.calibration_images`` held-out training images and their targets: synthetic, fresh images of the
    training world (seed ``calibration_seed + seed``, which no training run uses); real data, rows spread over the
    training split (the detector has seen them: its scores there are optimistic, a caveat the page states)."""
    n = setup.calibration_images
    if setup.synthetic:
        cls = SyntheticGarments if setup.schema == "fashionai" else SyntheticPeople
        data = cls(setup.world, n, seed=setup.calibration_seed + seed, split="train")
        rows = list(range(n))
    elif setup.schema == "fashionai":
        data, train_rows, _, _ = fashionai_splits(setup)
        rows = [train_rows[i] for i in spread_rows(len(train_rows), n)]
    else:
        annotations, images, _, _ = setup.files()
        data = CocoKeypoints(annotations, images)
        rows = spread_rows(len(data), n)
    items = [data[i] for i in rows]
    return [im for im, _ in items], [t for _, t in items]


def point_scores(predictions: list[dict], targets: list[dict], schema: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The detector's confidence of every ground-truth point and whether the ground truth marks it visible.

    FashionAI: the top detection of each image, the points of the garment's own category (a point another
    category has is not "absent", it is not asked for). COCO: each annotated person's best-matching detection
    (OKS >= 0.5, :func:`fashion_lib.refine.match_instances`), all 17 points; unmatched persons are left out.

    Returns
    -------
    scores : (N,) float; visible : (N,) bool (False: occluded or absent).
    """
    from fashion_lib.keypoints import VISIBLE

    sch = get_schema(schema)
    if schema == "fashionai":
        scores = top_instance(predictions, sch.num_keypoints).keypoints[..., 2]  # (B, K)
        gt = torch.cat([t["keypoints"] for t in targets])  # (B, K, 3)
        own = torch.stack([sch.category_mask(t["category"]) for t in targets])  # (B, K)
        return scores[own], gt[..., 2][own] == VISIBLE
    every = all_instances(predictions, sch.num_keypoints)  # (B, D, K, 3)
    people = [t["keypoints"][(t["iscrowd"] == 0) & (t["keypoints"][..., 2] > 0).any(-1)] for t in targets]
    counts = torch.tensor([len(p) for p in people], dtype=torch.long)
    if not int(counts.sum()):
        return torch.zeros(0), torch.zeros(0, dtype=torch.bool)
    gt = torch.cat(people).float()  # (N, K, 3)
    candidates = every[torch.repeat_interleave(torch.arange(len(targets)), counts)]  # (N, D, K, 3)
    match = match_instances(gt, candidates, sch.sigmas)
    ok = match.score >= 0.5
    picked = candidates[torch.arange(len(gt)), match.index][ok]  # (N', K, 3)
    return picked[..., 2].reshape(-1), (gt[ok][..., 2] == VISIBLE).reshape(-1)


def calibrate_missing(setup: KeypointSetup, detectors: Detectors, seed: int, *, batch_size: int = 16
                      ) -> dict[Table1Row, MissingCalibration]:
    """Each detector's missing-point threshold (:func:`fashion_lib.refine.calibrate_missing_threshold`) on the
    seed's calibration images (:func:`calibration_set`), cached beside the run. Keys: :data:`KRCNN`, and
    :data:`CPN` where a CPN was trained.
    Where the images give no visible or no hidden point to separate (a detector that matches no person), the
    threshold is the literal 0 with NaN figures, and a warning says so."""
    if setup.calibration_images < 1:
        raise ValueError("calibrate_missing: setup.calibration_images is 0 (no calibration asked for)")
    key = content_digest({"n": setup.calibration_images, "seed": setup.calibration_seed + seed,
                          "library": library_digest()})
    path = detectors.run_dir / f"calibration-{detectors.cpn_key}-{key}.pt"

    def compute() -> dict[Table1Row, MissingCalibration]:
        images, targets = calibration_set(setup, seed)
        out = {}
        for row, model in detector_models(detectors):  # the one or two detectors
            scores, visible = point_scores(predict(model, images, batch_size=batch_size), targets, setup.schema)
            n_vis, n_hid = int(visible.sum()), int((~visible).sum())
            if n_vis and n_hid:
                out[row] = calibrate_missing_threshold(scores, visible)
            else:  # nothing to separate (e.g. no person matched): the literal rule, score 0, and J unknown
                log.warning("%s, seed %d: %d visible and %d hidden calibration points; missing-point threshold 0",
                            row.label, seed, n_vis, n_hid)
                out[row] = MissingCalibration(threshold=0.0, youden_j=float("nan"), sensitivity=float("nan"),
                                              specificity=float("nan"), visible=n_vis, hidden=n_hid)
        return out

    return cached(path, compute)


def calibrated_refine(setup: KeypointSetup, detectors: Detectors, seed: int, refine: RefineConfig) -> RefineConfig:
    """``refine`` with the fill rule every key-point page uses: with ``setup.calibration_images > 0`` its
    ``fill_threshold`` set to the seed's calibrated Keypoint R-CNN threshold (:func:`calibrate_missing`); with 0,
    ``refine`` unchanged. The vote keeps ``refine.score_threshold`` (the paper's 0): a rule that flags unreliable
    points would otherwise silence them as voters too, and leave most garments without an axis."""
    if not setup.calibration_images:
        return refine
    return with_fill_threshold(refine, calibrate_missing(setup, detectors, seed)[KRCNN].threshold)


def table1_rows(
    setup: KeypointSetup,
    detectors: Detectors,
    val: ValidationSet,
    refine: RefineConfig,
    *,
    rows: Sequence[Table1Row] = ROWS,
    seed: int = 0,
    batch_size: int = 16,
    thresholds: dict[Table1Row, float] | None = None,
) -> dict[Table1Row, Instances]:
    """The key points of each row of Table 1 (and its controls) for one seed, cached beside the run.

    Parameters
    ----------
    setup, detectors, val : from :func:`train_detectors` and :func:`validation_set`.
    refine : RefineConfig, the refiner's settings (both scales).
    rows : which rows to compute (a subset of :data:`ROWS`, members or their keys such as ``"nkd"``); without a
        CPN (``detectors.cpn`` None) the rows of :data:`CPN_ROWS` are left out, so they are absent from the result.
    seed : int, seed of the RANSAC generator.
    batch_size : int, images per detector call.
    thresholds : dict detector row (:data:`KRCNN`, :data:`CPN`) -> the fill threshold (``refine.fill_threshold``)
        for that detector's rows (:func:`calibrate_missing`); None: ``refine``'s own. Every point above
        ``refine.score_threshold`` still votes for the axis.

    Returns
    -------
    dict row (:class:`Table1Row`) -> Instances (key points in image pixels).
    """
    rows = [_row(r, ROWS, "rows") for r in rows]
    thresholds = {_row(r, (KRCNN, CPN), "thresholds"): t for r, t in (thresholds or {}).items()}
    rows = [r for r in rows if detectors.has_cpn or r not in CPN_ROWS]
    key = content_digest({"rows": list(rows), "refine": dataclasses.asdict(refine), "seed": seed,
                          "thresholds": thresholds, "library": library_digest()})
    path = detectors.run_dir / f"rows-{val.key}-{detectors.cpn_key}-{key}.pt"
    return cached(path, lambda: _compute_rows(setup, detectors, val, refine, rows, seed, batch_size, thresholds))


def _row(key: str, valid: Sequence[Table1Row], name: str) -> Table1Row:
    """``key`` as a :class:`Table1Row` of ``valid`` (a member, or its value typed as a string), or a ValueError
    naming the parameter ``name`` and the valid keys."""
    if key not in valid:
        raise ValueError(f"{name} has the unknown row {str(key)!r}; valid: {[r.value for r in valid]}")
    return Table1Row(key)


def _compute_rows(setup: KeypointSetup, detectors: Detectors, val: ValidationSet, refine: RefineConfig,
                  rows: Sequence[Table1Row], seed: int, batch_size: int, thresholds: dict[Table1Row, float]
                  ) -> dict[Table1Row, Instances]:
    schema = get_schema(setup.schema)
    base = detected_instances(detectors, val, setup.schema)
    # every detection of a crop: the second scale keeps the one matching the instance it was cropped for
    detect = {row: as_detect_fn(model, schema.num_keypoints, batch_size=batch_size, every_instance=True)
              for row, model in detector_models(detectors)}
    out: dict[Table1Row, Instances] = {}
    # the crop alone is a by-product of the "twice, no symmetry" run
    todo = [r for r in rows if r != SECOND] + ([TWICE] if SECOND in rows and TWICE not in rows else [])
    for row in todo:  # over the few rows of the table
        source = CPN if row in CPN_ROWS else KRCNN
        inst = base[source]
        cfg = with_fill_threshold(refine, thresholds[source]) if source in thresholds else refine
        cats = [val.categories[i] for i in inst.image_index.tolist()] if refine.pairs == "category" else None
        g = torch.Generator().manual_seed(seed)
        if row in (KRCNN, CPN):
            out[row] = inst
        elif row == AXIS_ONCE:
            res = refine_symmetric(inst.keypoints, schema, generator=g, config=cfg, categories=cats)
            out[row] = Instances(res.keypoints, inst.scores, inst.image_index, refined=res)
        else:
            res = new_key_detection(val.images, detect[source], schema, generator=g, keypoints=inst.keypoints,
                                    image_index=inst.image_index, config=cfg, categories=cats,
                                    symmetric=row != TWICE)
            out[row] = Instances(res.keypoints, inst.scores, inst.image_index, matched=res.matched,
                                 refined=res.first)
            if row == TWICE and SECOND in rows:
                out[SECOND] = Instances(crop_alone(res), inst.scores, inst.image_index, matched=res.matched)
    return {row: out[row] for row in rows}


def crop_alone(result: NewKeyDetectionResult) -> torch.Tensor:
    """(B, K, 3): the second scale of a New-key-detection run on its own (the crop's detection mapped back to the
    image), and the first scale's detection for an instance whose crop held no matching detection: the
    :data:`SECOND` row."""
    return torch.where(result.matched[:, None, None], result.second.keypoints, result.detected)


def rows_for_seeds(setup: KeypointSetup, val: ValidationSet, refine: RefineConfig, seeds: Sequence[int], *,
                   rows: Sequence[Table1Row] = ROWS, calibrations: list | None = None
                   ) -> list[dict[Table1Row, Instances]]:
    """:func:`table1_rows` for every seed (training or loading each seed's detectors), logging the time taken.

    With ``setup.calibration_images > 0`` each seed's detectors get their own fill threshold
    (:func:`calibrate_missing`) as ``refine.fill_threshold``; pass a list as ``calibrations`` to receive
    them (one dict per seed, detector row -> :class:`~fashion_lib.refine.MissingCalibration`), for the page."""
    import time

    # the attribute lane starts by training the detector of seeds[0], whose key points its crops use
    # (pipeline.LANES); trained last seed first, this lane reaches seeds[0] when it is done instead of waiting for it
    for seed in reversed(seeds[1:]):
        train_detectors(setup, seed, progress=False)
    out = []
    for seed in seeds:  # over the few training seeds
        start = time.perf_counter()
        detectors = train_detectors(setup, seed, progress=False)
        thresholds = None
        if setup.calibration_images:
            cal = calibrate_missing(setup, detectors, seed)
            thresholds = {row: c.threshold for row, c in cal.items()}
            if calibrations is not None:
                calibrations.append(cal)
        out.append(table1_rows(setup, detectors, val, refine, rows=rows, seed=seed, thresholds=thresholds))
        log.info("seed %d: detectors trained or loaded, rows %s in %.0f s", seed,
                 [str(r) for r in tested_rows(setup, rows)], time.perf_counter() - start)
    return out
