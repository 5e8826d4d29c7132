"""COCO key-point evaluation: the COCO results format and OKS AP through pycocotools.

Paper, Table 1: AP@0.50:0.95, AP@0.50, AP@0.75, AP@medium and AP@large on COCO 2017 person key points. Every AP
here comes from pycocotools' ``COCOeval(..., iouType="keypoints")``; nothing of OKS or of the matching is
re-implemented (STYLE.md, "Metrics wrap the reference implementation").

The results format (data-formats.md, D.2) is a JSON list of ``{"image_id": int, "category_id": int,
"keypoints": [x1, y1, v1, ..., xK, yK, vK], "score": float}``. COCO ignores the predicted ``v``.

The other metrics of the paper are in :mod:`fashion_lib.metrics`, their intervals in :mod:`fashion_lib.intervals`.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pycocotools.coco import COCO as _COCOApi
from pycocotools.cocoeval import COCOeval, Params

from fashion_lib.io import atomic_write, load_json  # load_json: re-exported, here since before the move
from fashion_lib.keypoints import COCO, FASHIONAI

__all__ = [
    "CocoKeypointAP",
    "coco_keypoint_ap",
    "keypoints_to_coco_results",
    "read_coco_results",
    "write_coco_results",
    "validate_coco_results",
    "coco_ap_on_images",
    "load_ground_truth",
    "load_json",
    "coco_area_scale",
    "COCO_IMAGE_SIDE",
]

logger = logging.getLogger(__name__)

_RESULT_FIELDS = ("image_id", "category_id", "keypoints", "score")


def _is_int(value: Any) -> bool:
    # bool is an int subclass, and a JSON true must not pass as image id 1
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_real(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def validate_coco_results(
    results: Any, *, where: str = "results", num_keypoints: int | None = None
) -> list[dict[str, Any]]:
    """Check a list in the COCO key-point results format and return it as plain Python dicts.

    Parameters
    ----------
    results : list of dict
        Entries ``{"image_id": int, "category_id": int, "keypoints": list of 3 * K numbers, "score": number}``.
        Extra fields are kept.
    where : str
        Prefix of error messages (a file name, or the argument name).
    num_keypoints : int, optional
        ``K``; when given, every entry must have ``3 * K`` numbers. Otherwise all entries must agree.

    Returns
    -------
    results : list of dict
        New dicts (the caller's are never modified) with ``int`` ids, ``float`` score and a list of ``float``
        key points.

    Raises
    ------
    ValueError
        Naming ``where``, the index of the first bad entry, the field and the offending value.
    """
    if not isinstance(results, list):
        raise ValueError(f"{where}: expected a list of result entries, got {type(results).__name__}")
    out = []
    expected_len = None if num_keypoints is None else 3 * num_keypoints
    for i, entry in enumerate(results):
        if not isinstance(entry, Mapping):
            raise ValueError(f"{where}: entry {i} is a {type(entry).__name__}, expected an object with fields "
                             f"{', '.join(_RESULT_FIELDS)}")
        missing = [f for f in _RESULT_FIELDS if f not in entry]
        if missing:
            raise ValueError(f"{where}: entry {i} lacks field(s) {missing}; required: {', '.join(_RESULT_FIELDS)}")
        for name in ("image_id", "category_id"):
            if not _is_int(entry[name]):
                raise ValueError(f"{where}: entry {i}: field {name!r} = {entry[name]!r}, expected an integer")
        score = entry["score"]
        if not _is_real(score) or not math.isfinite(score):
            raise ValueError(f"{where}: entry {i}: field 'score' = {score!r}, expected a finite number")
        kps = entry["keypoints"]
        # set(map(type, ...)) runs in C: the common all-float list skips the per-number isinstance checks
        if not isinstance(kps, (list, tuple)) or not (set(map(type, kps)) <= {float, int}
                                                      or all(_is_real(x) for x in kps)):
            raise ValueError(f"{where}: entry {i}: field 'keypoints' must be a list of numbers, got {kps!r:.80}")
        if len(kps) == 0 or len(kps) % 3:
            raise ValueError(f"{where}: entry {i}: field 'keypoints' has {len(kps)} numbers, expected 3 * K > 0")
        if expected_len is None:
            expected_len = len(kps)
        if len(kps) != expected_len:
            raise ValueError(f"{where}: entry {i}: field 'keypoints' has {len(kps)} numbers, expected "
                             f"{expected_len} (3 x {expected_len // 3} key points)")
        if not all(map(math.isfinite, kps)):
            raise ValueError(f"{where}: entry {i}: field 'keypoints' contains a non-finite value; write a missing "
                             "point as 0, 0, 0")
        new = dict(entry)
        new.update(image_id=int(entry["image_id"]), category_id=int(entry["category_id"]), score=float(score),
                   keypoints=list(map(float, kps)))
        out.append(new)
    return out


def keypoints_to_coco_results(
    image_ids: Sequence[int] | torch.Tensor | np.ndarray,
    keypoints: torch.Tensor | np.ndarray,
    scores: Sequence[float] | torch.Tensor | np.ndarray,
    category_id: int = 1,
) -> list[dict[str, Any]]:
    """Turn a batch of predicted instances into COCO results entries.

    Parameters
    ----------
    image_ids : (B,) int
        COCO image id of each instance (several instances may share an image).
    keypoints : (B, K, 2) or (B, K, 3) float
        ``x, y`` in pixels of the original image (COCO's convention: continuous coordinates, origin at the
        top-left corner of the top-left pixel), optionally a third column (visibility or confidence).
        A point with a non-finite ``x`` or ``y``, or a third column ``<= 0``, is a point the model did not output.
    scores : (B,) float
        Instance confidence; COCOeval ranks detections by it.
    category_id : int
        COCO category of every entry (1, ``person``, in COCO).

    Returns
    -------
    results : list of B dicts
        ``keypoints`` as ``K`` triples ``x, y, 1`` (COCO recommends ``v = 1``; it ignores it) and ``0, 0, 0`` for
        a point the model did not output (JSON has no NaN; OKS then measures the distance to ``(0, 0)``).
    """
    kps = torch.as_tensor(keypoints)
    if kps.ndim != 3 or kps.shape[-1] not in (2, 3):
        raise ValueError(f"keypoints must have shape (B, K, 2) or (B, K, 3), got {tuple(kps.shape)}")
    ids = torch.as_tensor(image_ids)
    sc = torch.as_tensor(scores)
    b = kps.shape[0]
    if ids.shape != (b,) or ids.is_floating_point() or ids.dtype == torch.bool:
        raise ValueError(f"image_ids must be (B,) = ({b},) integers, got shape {tuple(ids.shape)} dtype {ids.dtype}")
    if sc.shape != (b,):
        raise ValueError(f"scores must have shape (B,) = ({b},), got {tuple(sc.shape)}")
    if not torch.isfinite(sc.double()).all():
        bad = int(torch.nonzero(~torch.isfinite(sc.double()))[0])
        raise ValueError(f"scores[{bad}] = {float(sc[bad])}, expected a finite number")
    if not _is_int(category_id):
        raise ValueError(f"category_id must be an integer, got {category_id!r}")
    xy = kps[..., :2].double()
    present = torch.isfinite(xy).all(-1)  # (B, K)
    if kps.shape[-1] == 3:
        present &= kps[..., 2] > 0
    flat = torch.cat([torch.where(present[..., None], xy, 0.0), present[..., None].double()], dim=-1)  # (B, K, 3)
    flat = flat.reshape(b, -1).tolist()  # (B, 3K) as Python floats
    ids_list = ids.tolist()
    sc_list = sc.double().tolist()
    return [
        {"image_id": int(ids_list[i]), "category_id": int(category_id), "keypoints": flat[i], "score": sc_list[i]}
        for i in range(b)
    ]


def write_coco_results(path: str | os.PathLike, results: list[dict[str, Any]]) -> Path:
    """Validate ``results`` and write them as a COCO results JSON file, atomically.

    Parameters
    ----------
    path : path-like
        Destination; parent folders are created.
    results : list of dict
        COCO key-point results entries (see :func:`validate_coco_results`).

    Returns
    -------
    path : Path
        The written file.
    """
    path = Path(path)
    entries = validate_coco_results(results, where="results")
    with atomic_write(path, "w", encoding="utf-8") as f:
        json.dump(entries, f)
    return path


def read_coco_results(path: str | os.PathLike, *, num_keypoints: int | None = None) -> list[dict[str, Any]]:
    """Read and validate a COCO key-point results JSON file.

    Parameters
    ----------
    path : path-like
        A JSON list of results entries.
    num_keypoints : int, optional
        Expected ``K`` of every entry.

    Returns
    -------
    results : list of dict
        Validated entries (see :func:`validate_coco_results`).

    Raises
    ------
    ValueError
        The file is not JSON, or an entry is malformed; the message names the file, the entry index and the field.
    """
    path = Path(path)
    return validate_coco_results(load_json(path), where=str(path), num_keypoints=num_keypoints)


@dataclass(frozen=True)
class CocoKeypointAP:
    """pycocotools' ten key-point summary numbers, as fractions in ``[0, 1]``.

    ``nan`` where pycocotools reports ``-1`` (no ground truth in that area range). AP/AR average over OKS
    thresholds 0.50:0.05:0.95 with at most 20 detections per image; ``m`` is area 32^2..96^2, ``l`` above 96^2.
    """

    AP: float  # AP @ OKS 0.50:0.95, area all (the paper's "AP@0.50:0.95")
    AP50: float  # AP @ OKS 0.50
    AP75: float  # AP @ OKS 0.75
    APm: float  # AP, medium objects
    APl: float  # AP, large objects
    AR: float  # AR @ OKS 0.50:0.95
    AR50: float  # AR @ OKS 0.50
    AR75: float  # AR @ OKS 0.75
    ARm: float  # AR, medium objects
    ARl: float  # AR, large objects
    num_results: int  # detections evaluated
    num_images: int  # ground-truth images evaluated (all of them)
    sigmas: tuple[float, ...]  # per-point OKS sigmas used (K values)

    def as_dict(self) -> dict[str, float]:
        """The ten summary numbers by name."""
        return {k: getattr(self, k) for k in ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")}


def load_ground_truth(gt: str | os.PathLike | Mapping[str, Any] | _COCOApi) -> _COCOApi:
    """A pycocotools ``COCO`` object of ground truth given as a path, a dict (not modified) or such an object,
    after checking the fields COCOeval reads (the message names the file and the annotation)."""
    if isinstance(gt, _COCOApi):
        return gt
    if isinstance(gt, (str, os.PathLike)):
        dataset = load_json(gt)
        if not isinstance(dataset, dict):
            raise ValueError(f"{gt}: ground truth must be a JSON object with images, annotations and categories, got "
                             f"a {type(dataset).__name__}")
        where = str(gt)
    elif isinstance(gt, Mapping):
        # COCOeval writes an 'ignore' flag into every GT annotation: copy the annotations, not the whole set
        dataset = dict(gt)
        dataset["annotations"] = [dict(a) for a in gt.get("annotations", [])]
        where = "gt"
    else:
        raise ValueError(f"gt must be a path, a COCO-format dict or a pycocotools COCO object, got {type(gt).__name__}")
    for key in ("images", "annotations", "categories"):
        if key not in dataset:
            raise ValueError(f"{where}: ground truth lacks the top-level field {key!r}")
    for i, ann in enumerate(dataset["annotations"]):
        for field in ("image_id", "category_id", "keypoints", "num_keypoints", "area", "bbox", "iscrowd"):
            if field not in ann:
                raise ValueError(f"{where}: annotations[{i}] (id {ann.get('id')!r}) lacks field {field!r}")
    api = _COCOApi()
    api.dataset = dataset
    with contextlib.redirect_stdout(io.StringIO()):
        api.createIndex()
    return api


def _default_sigmas(num_keypoints: int) -> np.ndarray:
    if num_keypoints == COCO.num_keypoints:
        # pycocotools' own constants, so that COCO AP matches the reference to the last bit
        return np.asarray(Params(iouType="keypoints").kpt_oks_sigmas, dtype=np.float64)
    if num_keypoints == FASHIONAI.num_keypoints:
        # the schema stores float32; 6 significant digits recover the decimal constants it was built from
        return np.asarray([float(f"{s:.6g}") for s in FASHIONAI.sigmas.tolist()], dtype=np.float64)
    raise ValueError(f"no default OKS sigmas for K = {num_keypoints} key points (known: COCO 17, FashionAI 24); "
                     "pass sigmas=")


def _check_gt_keypoints(coco_gt: _COCOApi, k: int, where: str) -> None:
    """Every ground-truth annotation holds ``3 * k`` finite key-point values (pycocotools would fail inside its
    broadcasting, or score NaN silently, otherwise)."""
    for i, ann in enumerate(coco_gt.dataset["annotations"]):
        kps = ann["keypoints"]
        if not isinstance(kps, list | tuple) or len(kps) != 3 * k:
            got = f"{len(kps)} values" if isinstance(kps, list | tuple) else repr(kps)[:40]
            raise ValueError(f"{where}: annotations[{i}] (id {ann.get('id')!r}).keypoints: {got}, expected 3 * K = "
                             f"{3 * k} (K = {k} from the categories, the results or sigmas)")
        bad = [j for j, v in enumerate(kps) if not (_is_real(v) and math.isfinite(v))]
        if bad:
            j = bad[0]
            raise ValueError(f"{where}: annotations[{i}] (id {ann.get('id')!r}).keypoints[{j}]: {kps[j]!r} is not a "
                             "finite number")


COCO_IMAGE_SIDE = 640
"""The longer side of COCO 2017's images, pixels: the scale at which its size ranges (medium 32^2..96^2 px, large
above 96^2 px) were defined."""


def coco_area_scale(gt: str | os.PathLike | Mapping[str, Any] | _COCOApi) -> float:
    """The factor that carries COCO's size ranges to the images of ``gt``: ``(s / 640) ** 2``, ``s`` the median
    longer side of its images (``width``, ``height`` of its ``images`` entries).

    A person that covers the same share of the frame then falls in the same size range as on COCO itself: at
    128-px images medium becomes 6.4^2..19.2^2 px and large above 19.2^2 px (unscaled, no person of a 128-px image
    can exceed 96^2 px, and AP-large is undefined). Real COCO images give a factor near 1.
    """
    api = load_ground_truth(gt)
    sides = [max(int(im["width"]), int(im["height"])) for im in api.dataset["images"]]
    if not sides:
        raise ValueError("gt has no images: cannot scale COCO's size ranges to them")
    return (float(np.median(sides)) / COCO_IMAGE_SIDE) ** 2


def coco_keypoint_ap(
    gt: str | os.PathLike | Mapping[str, Any] | _COCOApi,
    results: str | os.PathLike | list[dict[str, Any]],
    *,
    sigmas: Sequence[float] | torch.Tensor | np.ndarray | None = None,
    size_ranges: bool = True,
    area_scale: float = 1.0,
) -> CocoKeypointAP:
    """COCO OKS key-point AP/AR, computed by pycocotools ``COCOeval(gt, dt, iouType="keypoints")``.

    Parameters
    ----------
    gt : path, dict or pycocotools.coco.COCO
        Ground truth in the COCO key-point format (data-formats.md, D.1). A dict is not modified.
    results : path or list of dict
        Detections in the COCO results format (:func:`keypoints_to_coco_results`). An empty list is allowed and
        scores AP = AR = 0 (pycocotools' own ``loadRes`` would crash on it).
    sigmas : (K,) float, optional
        Per-point OKS constants. Default by ``K`` (from the ground-truth category's ``keypoints`` list, else from
        the results): 17 -> COCO's published values; 24 -> ``FASHIONAI.sigmas`` (our documented choice: each
        point borrows the COCO sigma of the body part it lies on; no official FashionAI OKS exists).
    size_ranges : bool
        False evaluates the "all" area range only (one per-image evaluation instead of three): APm, APl, ARm and
        ARl are then ``nan``; AP, AP50, AP75 and AR are unchanged, and bootstrap replicates need nothing else.
    area_scale : float
        Multiplies the bounds of pycocotools' area ranges (px^2; medium 32^2..96^2, large above 96^2), so that
        they mean the same share of the frame on smaller images (:func:`coco_area_scale`); 1 is COCO's own.

    Returns
    -------
    CocoKeypointAP
        AP, AP50, AP75, APm, APl, AR, AR50, AR75, ARm, ARl as plain floats (``nan`` for pycocotools' ``-1``).

    Raises
    ------
    ValueError
        A results entry is malformed, or names an image or category absent from the ground truth (the message
        gives the entry's index and id); the key-point count disagrees with the ground truth or ``sigmas``; a
        ground-truth annotation has key points of another length than ``3 * K`` or a non-finite value; the ground
        truth path is not UTF-8 JSON (file and line named).
    """
    if not (isinstance(area_scale, (int, float)) and math.isfinite(area_scale) and area_scale > 0):
        raise ValueError(f"area_scale must be a finite number > 0, got {area_scale!r}")
    coco_gt = load_ground_truth(gt)
    where = str(results) if isinstance(results, (str, os.PathLike)) else "results"
    if isinstance(results, (str, os.PathLike)):
        entries = read_coco_results(results)
    else:
        entries = validate_coco_results(results, where="results")

    gt_k = {len(c["keypoints"]) for c in coco_gt.dataset["categories"] if "keypoints" in c}
    res_k = {len(e["keypoints"]) // 3 for e in entries[:1]}
    k_set = gt_k | res_k
    if len(k_set) > 1:
        raise ValueError(f"{where}: key-point counts disagree: ground-truth categories have {sorted(gt_k)}, "
                         f"results have {sorted(res_k)}")
    if sigmas is None:
        if not k_set:
            raise ValueError("cannot infer K (no 'keypoints' list in the ground-truth categories, no results); "
                             "pass sigmas=")
        sig = _default_sigmas(k_set.pop())
    else:
        sig = torch.as_tensor(sigmas, dtype=torch.float64).numpy()
        if sig.ndim != 1 or (k_set and sig.shape[0] not in k_set) or not np.all(sig > 0):
            raise ValueError(f"sigmas must be K = {sorted(k_set)} positive numbers, got shape {sig.shape}")

    _check_gt_keypoints(coco_gt, len(sig), str(gt) if isinstance(gt, (str, os.PathLike)) else "gt")
    img_ids = set(coco_gt.getImgIds())
    cat_ids = set(coco_gt.getCatIds())
    for i, e in enumerate(entries):
        if e["image_id"] not in img_ids:
            raise ValueError(f"{where}: entry {i}: image_id {e['image_id']} is not in the ground truth "
                             f"({len(img_ids)} images)")
        if e["category_id"] not in cat_ids:
            raise ValueError(f"{where}: entry {i}: category_id {e['category_id']} is not in the ground truth "
                             f"(categories {sorted(cat_ids)})")

    with contextlib.redirect_stdout(io.StringIO()):
        if entries:
            # loadRes writes area, bbox and id into each entry; ours are fresh copies from validation
            coco_dt = coco_gt.loadRes(entries)
        else:
            coco_dt = _COCOApi()
            coco_dt.dataset = {"images": copy.deepcopy(coco_gt.dataset["images"]), "annotations": [],
                               "categories": copy.deepcopy(coco_gt.dataset["categories"])}
            coco_dt.createIndex()
        evaluator = COCOeval(coco_gt, coco_dt, iouType="keypoints")
        evaluator.params.kpt_oks_sigmas = sig
        evaluator.params.areaRng = [[lo * area_scale, hi * area_scale] for lo, hi in evaluator.params.areaRng]
        if not size_ranges:  # pycocotools' summary gives -1 (nan here) for a size range it did not evaluate
            evaluator.params.areaRng = evaluator.params.areaRng[:1]
            evaluator.params.areaRngLbl = evaluator.params.areaRngLbl[:1]
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    stats = [float(s) if s >= 0 else math.nan for s in evaluator.stats[:10]]
    logger.debug("coco_keypoint_ap: %d results on %d images: %s", len(entries), len(img_ids), stats)
    names = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")
    return CocoKeypointAP(**dict(zip(names, stats, strict=True)), num_results=len(entries), num_images=len(img_ids),
                          sigmas=tuple(float(s) for s in sig))


def coco_ap_on_images(
    gt: str | os.PathLike | Mapping[str, Any] | _COCOApi,
    results_per_image: Sequence[Sequence[Mapping[str, Any]]],
    image_ids: Sequence[int],
    *,
    stat: str = "AP",
    area_scale: float = 1.0,
) -> float:
    """One of :func:`coco_keypoint_ap`'s numbers on a sample of images that may repeat (a bootstrap replicate).

    pycocotools scores each image id once, so image ``j`` of the sample becomes image ``j + 1`` of a new ground
    truth (its annotations copied with fresh ids) and its results are re-labelled alike; a repeated image then
    counts as many times as it was drawn.

    Parameters
    ----------
    gt : ground truth, as in :func:`coco_keypoint_ap`.
    results_per_image : B sequences of results entries, those of ``image_ids[j]`` at ``j``.
    image_ids : B ids of the ground truth (repeats allowed).
    stat : one of ``CocoKeypointAP``'s ten names.
    area_scale : float, as in :func:`coco_keypoint_ap` (for the size-range stats).

    Returns
    -------
    float
    """
    if len(results_per_image) != len(image_ids):
        raise ValueError(f"results_per_image has {len(results_per_image)} entries for {len(image_ids)} image ids")
    api = load_ground_truth(gt)
    base = api.dataset
    images, annotations, results = [], [], []
    for j, (image_id, entries) in enumerate(zip(image_ids, results_per_image, strict=True)):
        image_id = int(image_id)
        if image_id not in api.imgs:
            raise ValueError(f"image_ids[{j}] = {image_id} is not in the ground truth")
        images.append({**api.imgs[image_id], "id": j + 1})
        for ann in api.imgToAnns[image_id]:
            annotations.append({**ann, "image_id": j + 1, "id": len(annotations) + 1})
        results.extend({**e, "image_id": j + 1} for e in entries)
    sample = {"images": images, "annotations": annotations, "categories": base["categories"]}
    by_size = stat in ("APm", "APl", "ARm", "ARl")
    return float(getattr(coco_keypoint_ap(sample, results, size_ranges=by_size, area_scale=area_scale), stat))
