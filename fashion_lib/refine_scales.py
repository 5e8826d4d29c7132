"""New-key-detection's two-scale loop (paper Alg. 2, steps 9-10): refine, crop, detect and refine again, average.

:func:`new_key_detection` runs the refiner (:func:`fashion_lib.refine_pairs.refine_symmetric`) on a detector's
first-scale key points, crops each instance's image to its refined points (:mod:`fashion_lib.crops`), runs the
detector on the crops, keeps the crop detection that matches the instance (:func:`match_instances`), refines it and
averages the two scales. Works with any detector callable. Re-exported by :mod:`fashion_lib.refine`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch

from fashion_lib.crops import (
    closing_boxes,
    line_from_crop,
    points_from_crop,
    second_scale_boxes,
    second_scale_crops,
)
from fashion_lib.keypoints import KeypointSchema, get_schema, missing_mask
from fashion_lib.refine_config import MATCH_BY, CropMapping, RefineConfig, resolve_config
from fashion_lib.refine_pairs import RefineResult, _applicable_points, refine_symmetric

__all__ = ["NewKeyDetectionResult", "InstanceMatch", "match_instances", "new_key_detection"]


@dataclass(frozen=True)
class NewKeyDetectionResult:
    """Output of :func:`new_key_detection`; every coordinate is in pixels of the input images."""

    keypoints: torch.Tensor  # (B, K, 3) the final key points: the average of the two scales (Alg. 2, last line)
    detected: torch.Tensor  # (B, K, 3) the detector's first-scale output (Alg. 2, step 1)
    first: RefineResult  # steps 2-8 on the first scale ("axis once", the paper's Fig. 1c)
    second: RefineResult  # steps 1-8 on the crop, mapped back to image pixels
    boxes: torch.Tensor  # (B, 4) x1, y1, x2, y2 of the crop fed to the detector at the second scale
    whole_image: torch.Tensor  # (B,) bool, no present point to crop to: the second scale saw the whole image
    matched: torch.Tensor  # (B,) bool, a crop detection matched the instance (else: second scale all missing)
    match_score: torch.Tensor  # (B,) float, OKS or IoU of the kept crop detection with the instance (0: none)

    @property
    def num_unmatched(self) -> int:
        """Instances whose crop held no detection matching them: they keep their first scale (a host sync)."""
        return int((~self.matched).sum())


def _identity_result(keypoints: torch.Tensor, num_pairs: int) -> RefineResult:
    """A :class:`RefineResult` that changes nothing (the ``symmetric=False`` control)."""
    B, K, _ = keypoints.shape
    dev = keypoints.device
    return RefineResult(keypoints=keypoints.clone(), axis=keypoints.new_zeros(B, 3),
                        inliers=torch.zeros(B, num_pairs, dtype=torch.bool, device=dev),
                        refined=torch.zeros(B, num_pairs, dtype=torch.bool, device=dev),
                        filled=torch.zeros(B, K, dtype=torch.bool, device=dev),
                        has_axis=torch.zeros(B, dtype=torch.bool, device=dev),
                        ignored=torch.zeros(B, K, dtype=torch.bool, device=dev))


def _average_scales(a: torch.Tensor, b: torch.Tensor, score_threshold: float) -> torch.Tensor:
    """Average two (B, K, 3) key-point sets where both are present; where one is missing, take the other."""
    pa = ~missing_mask(a, score_threshold)
    pb = ~missing_mask(b, score_threshold)
    both = (pa & pb)[..., None]
    only_b = (pb & ~pa)[..., None]
    return torch.where(both, 0.5 * (a + b), torch.where(only_b, b, a))


class InstanceMatch(NamedTuple):
    """Output of :func:`match_instances`."""

    index: torch.Tensor  # (B,) long, the best candidate of each reference instance
    score: torch.Tensor  # (B,) float, its similarity in [0, 1] (0: no candidate shares a present point)


def match_instances(
    reference: torch.Tensor,
    candidates: torch.Tensor,
    sigmas: torch.Tensor,
    *,
    by: str = "oks",
    score_threshold: float = 0.0,
) -> InstanceMatch:
    """For each reference instance, the candidate that best matches it (the same person or garment).

    ``"oks"``: COCO's object key-point similarity with the reference as ground truth,
    ``mean_k exp(-d_k^2 / (2 s^2 (2 sigma_k)^2))`` over the reference's present points (a point the candidate
    misses counts 0), ``s^2`` the area of the box closing the reference's present points (COCO uses the mask's
    area; at least 1 px^2). ``"iou"``: the intersection over union of the two instances' key-point boxes.
    Ties go to the earliest candidate (a detector lists them best first).

    Parameters
    ----------
    reference : (B, K, 3) float, x, y pixels and a score; points scoring ``<= score_threshold`` or NaN are missing.
    candidates : (B, D, K, 3) float, D candidates per reference instance in the same pixels (padding: NaN / 0).
    sigmas : (K,) float, the schema's OKS constants (:attr:`KeypointSchema.sigmas`).
    by : {"oks", "iou"}
    score_threshold : float, as in :func:`missing_mask`.

    Returns
    -------
    InstanceMatch
        ``index`` (B,) long and ``score`` (B,) float.
    """
    if by not in MATCH_BY:
        raise ValueError(f"by must be one of {MATCH_BY}, got {by!r}")
    if reference.ndim != 3 or candidates.ndim != 4 or candidates.shape[0] != reference.shape[0] \
            or candidates.shape[2:] != reference.shape[1:] or reference.shape[-1] != 3:
        raise ValueError(f"reference must be (B, K, 3) and candidates (B, D, K, 3), got {tuple(reference.shape)} and "
                         f"{tuple(candidates.shape)}")
    B, D, K, _ = candidates.shape
    if sigmas.shape != (K,):
        raise ValueError(f"sigmas must have shape ({K},), got {tuple(sigmas.shape)}")
    if D == 0:
        return InstanceMatch(torch.zeros(B, dtype=torch.long, device=reference.device), reference.new_zeros(B))
    ref_on = ~missing_mask(reference, score_threshold)  # (B, K)
    cand_on = ~missing_mask(candidates, score_threshold)  # (B, D, K)
    ref_box = closing_boxes(reference, ref_on)  # (B, 4)
    if by == "oks":
        area = ((ref_box[:, 2] - ref_box[:, 0]) * (ref_box[:, 3] - ref_box[:, 1])).clamp(min=1.0)  # (B,)
        d2 = (candidates[..., :2] - reference[:, None, :, :2]).square().sum(-1)  # (B, D, K)
        kappa2 = (2 * sigmas.to(reference)) ** 2  # (K,)
        sim = torch.exp(-d2 / (2 * area[:, None, None] * kappa2))
        both = ref_on[:, None] & cand_on  # (B, D, K)
        sim = torch.where(both, sim, torch.zeros_like(sim)).sum(-1) / ref_on.sum(-1, keepdim=True).clamp(min=1)
    else:
        cand_box = closing_boxes(candidates.flatten(0, 1), cand_on.flatten(0, 1)).view(B, D, 4)
        lo = torch.maximum(ref_box[:, None, :2], cand_box[..., :2])  # (B, D, 2)
        hi = torch.minimum(ref_box[:, None, 2:], cand_box[..., 2:])
        inter = (hi - lo).clamp(min=0).prod(-1)  # (B, D)
        area_r = (ref_box[:, 2:] - ref_box[:, :2]).prod(-1)  # (B,)
        area_c = (cand_box[..., 2:] - cand_box[..., :2]).prod(-1)  # (B, D)
        union = area_r[:, None] + area_c - inter
        sim = torch.where(union > 0, inter / union.clamp(min=1e-12), torch.zeros_like(inter))
        sim = torch.where(cand_on.any(-1) & ref_on.any(-1, keepdim=True), sim, torch.zeros_like(sim))
    score, index = sim.max(1)  # first maximum: the earliest candidate wins ties
    return InstanceMatch(index, score)


def _as_candidates(detected: torch.Tensor, batch: int, num_keypoints: int) -> torch.Tensor:
    """A detector's answer as (B, D, K, 3) candidates: (B, K, 3) is one candidate per image."""
    if detected.ndim == 3:
        detected = detected[:, None]
    if detected.ndim != 4 or detected.shape[0] != batch or detected.shape[2:] != (num_keypoints, 3):
        raise ValueError(f"detect returned key points of shape {tuple(detected.shape)} for {batch} images, expected "
                         f"({batch}, {num_keypoints}, 3) or ({batch}, D, {num_keypoints}, 3)")
    return detected


def new_key_detection(
    images: Sequence[torch.Tensor] | torch.Tensor,
    detect: Callable[[list[torch.Tensor]], torch.Tensor],
    schema: str | KeypointSchema,
    *,
    generator: torch.Generator,
    keypoints: torch.Tensor | None = None,
    image_index: torch.Tensor | None = None,
    config: RefineConfig | None = None,
    categories: Sequence[str] | torch.Tensor | None = None,
    symmetric: bool = True,
    crop_size: int | None = None,
    margin: float | None = None,
    backend: str = "auto",
    **overrides,
) -> NewKeyDetectionResult:
    """New-key-detection (paper Alg. 2): refine, crop to the refined points, detect and refine again, average.

    1. ``keys_1`` = ``keypoints`` or ``detect(images)`` (its top instance per image), refined by
       :func:`refine_symmetric` (steps 1-8; skipped with ``symmetric=False``).
    2. Crop each instance's image to the rectangle closing its refined present points, grown by ``margin``, made
       square (``config.square_crop``) and shifted inside the image where it fits, edge-replicated where it cannot
       (:func:`fashion_lib.crops.second_scale_boxes`), and run ``detect`` on the crops: resized to ``crop_size``
       or at their own size (``config.crop_mapping``, :class:`fashion_lib.crops.CropMapping`).
    3. Of the crop's detections, keep the one that best matches the instance (:func:`match_instances`,
       ``config.match_by``); below ``config.min_match`` the instance keeps its first scale (``matched`` False).
    4. Refine the kept detection (steps 1-8 again, in crop pixels), map it back to the image (offset and, for a
       resized crop, the resize factor, which the paper's formula omits) and average the two scales; a point
       present at one scale only is taken from that scale.

    Works with any detector: ``detect`` maps a list of ``(C, h, w)`` images to ``(B, K, 3)`` (the top instance) or
    ``(B, D, K, 3)`` (D instances per image, best first, padded with NaN coordinates and score 0) key points, x, y
    in that image's pixels and a confidence; a point it did not find is NaN or scores ``<= score_threshold``.
    Several persons of one image are several instances sharing an image: pass their first-scale ``keypoints`` and
    their ``image_index``, and a ``detect`` that returns every instance, so that each keeps its own.

    Parameters
    ----------
    images : list of (C, H, W) float tensors, or a (N, C, H, W) tensor.
    detect : callable, list of (C, h, w) images -> (B, K, 3) or (B, D, K, 3) float.
    schema : ``"fashionai"``, ``"coco"`` or a schema.
    generator : torch.Generator for RANSAC (both scales draw from it in turn).
    keypoints : (B, K, 3) float, optional first-scale detections (default ``detect(images)``, B = N).
    image_index : (B,) long, the image of each instance (default ``arange(B)``).
    config, categories, overrides : as in :func:`refine_symmetric` (``alpha``, ``k``, ``n``, ``m``, ``d``, ...)
        and the second scale's fields of :class:`RefineConfig` (``square_crop``, ``crop_mapping``, ``match_by``,
        ``min_match``). With ``categories`` and ``pairs="category"``, only each garment's own points are refined
        and framed.
    symmetric : bool, ``False`` drops the symmetry constraint and only runs the detector twice (the paper's
        control in section III.A).
    crop_size : int, side of the resized crops (default: the longer side of the largest image).
    margin : float, overrides ``config.margin`` (fraction of the rectangle's size added on each side).
    backend : the refiner's implementation at both scales, as in :func:`refine_symmetric`.

    Returns
    -------
    NewKeyDetectionResult
    """
    schema = get_schema(schema)
    if isinstance(images, torch.Tensor):
        if images.ndim != 4:
            raise ValueError(f"images must be a (N, C, H, W) tensor or a list of (C, H, W), got {tuple(images.shape)}")
        images = list(images.unbind(0))
    images = list(images)
    if not images:
        raise ValueError("images must hold at least one image")
    if any(im.ndim != 3 or not im.is_floating_point() for im in images):
        raise ValueError("every image must be a (C, H, W) float tensor")
    cfg = resolve_config(config, schema, {**overrides, "margin": margin})
    cfg.validate()
    if keypoints is None:
        if image_index is not None:
            raise ValueError("image_index needs keypoints: without them detect(images) gives one instance per image")
        keypoints = _as_candidates(detect(images), len(images), schema.num_keypoints)[:, 0]
    detected = keypoints
    B = keypoints.shape[0]
    device = keypoints.device
    if image_index is None:
        if B != len(images):
            raise ValueError(f"keypoints has {B} instances but there are {len(images)} images: pass image_index")
        image_index = torch.arange(B, device=device)
    image_index = torch.as_tensor(image_index, dtype=torch.long, device=device)
    if image_index.shape != (B,) or (B and (int(image_index.min()) < 0 or int(image_index.max()) >= len(images))):
        raise ValueError(f"image_index must be ({B},) indices into the {len(images)} images")

    def refine(kps: torch.Tensor) -> RefineResult:
        if not symmetric:
            return _identity_result(kps, schema.num_pairs)
        return refine_symmetric(kps, schema, generator=generator, config=cfg, categories=categories,
                                backend=backend)

    first = refine(keypoints)
    present = ~missing_mask(first.keypoints, cfg.score_threshold)
    if categories is not None and cfg.pairs == "category":
        present &= _applicable_points(schema, categories, B, device)
    sizes = torch.tensor([tuple(im.shape[-2:]) for im in images], dtype=keypoints.dtype)[image_index.cpu()]
    framed = second_scale_boxes(first.keypoints, present, sizes.to(device), margin=cfg.margin,
                                square=cfg.square_crop)
    size = int(crop_size or max(max(im.shape[-2:]) for im in images))
    if size < 8:
        raise ValueError(f"crop_size must be >= 8 pixels, got {size}")
    crops, boxes, crop_side = second_scale_crops([im.to(device) for im in images], framed.boxes, image_index,
                                                 CropMapping(cfg.crop_mapping), size)
    raw = detect(crops) if B else keypoints.new_zeros(0, 1, schema.num_keypoints, 3)
    raw = _as_candidates(raw, B, schema.num_keypoints).to(device=device, dtype=keypoints.dtype)  # (B, D, K, 3)
    D = raw.shape[1]
    in_image = points_from_crop(raw.flatten(1, 2), boxes, crop_side).view(B, D, schema.num_keypoints, 3)
    match = match_instances(first.keypoints, in_image, schema.sigmas.to(device), by=cfg.match_by,
                            score_threshold=cfg.score_threshold)
    matched = match.score >= cfg.min_match  # (B,)
    pick = raw[torch.arange(B, device=device), match.index]  # (B, K, 3) in crop pixels
    # an unmatched instance's second scale is all missing, so the average below keeps its first scale
    pick = torch.where(matched[:, None, None], pick, _all_missing(pick))
    second_crop = refine(pick)
    mapped = points_from_crop(second_crop.keypoints, boxes, crop_side)
    second = dataclasses.replace(second_crop, keypoints=mapped, axis=line_from_crop(second_crop.axis, boxes, crop_side))
    final = _average_scales(first.keypoints, mapped, cfg.score_threshold)
    return NewKeyDetectionResult(keypoints=final, detected=detected, first=first, second=second, boxes=boxes,
                                 whole_image=framed.fallback, matched=matched, match_score=match.score)


def _all_missing(keypoints: torch.Tensor) -> torch.Tensor:
    """(B, K, 3) of NaN coordinates and score 0 (the library's missing point), like ``keypoints``."""
    out = torch.full_like(keypoints, float("nan"))
    out[..., 2] = 0.0
    return out
