"""Pure tensor transforms on ``(image, target)`` pairs that keep boxes, key points and symmetry axes consistent.

Conventions: ``image`` is ``(C, H, W)`` float in [0, 1]; coordinates are continuous pixels (the centre of pixel
``(i, j)`` is ``(j + 0.5, i + 0.5)``), so a horizontal flip maps ``x`` to ``W - x`` and a resize by ``s`` maps
``x`` to ``s * x`` exactly. Visibility follows COCO (0 absent, 1 occluded, 2 visible); absent points keep zero
coordinates through every transform. Target keys a transform does not know pass through unchanged.

Target keys understood here (``N`` instances, ``K`` points):

- ``boxes`` (N, 4) float: x1, y1, x2, y2 in pixels;
- ``keypoints`` (N, K, 3) float: x, y in pixels, v in {0, 1, 2};
- ``area`` (N,) float: pixels (scaled by the area factor of a resize);
- ``axis`` (N, 3) float: ``[normal_x, normal_y, offset]`` of the symmetry line ``{p : normal . p = offset}``,
  unit normal, offset in pixels (all zeros: no axis, e.g. a crowd region);
- ``occluded`` (N, K) bool: permuted with the points by a flip.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from fashion_lib.keypoints import KeypointSchema

__all__ = ["keypoint_boxes", "resize", "hflip", "random_hflip", "to_model_input", "collate"]


def _size_hw(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, int):
        hw = (size, size)
    else:
        hw = tuple(int(s) for s in size)
    if len(hw) != 2 or min(hw) < 1:
        raise ValueError(f"size must be a positive int or (height, width), got {size!r}")
    return hw  # type: ignore[return-value]


def _check_image(image: torch.Tensor) -> None:
    if image.ndim != 3 or not image.is_floating_point():
        raise ValueError(f"image must be a (C, H, W) float tensor, got shape {tuple(image.shape)} {image.dtype}")


def keypoint_boxes(keypoints: torch.Tensor, margin: float = 0.05, width: int | None = None,
                   height: int | None = None) -> torch.Tensor:  # fmt: skip
    """Boxes closing the labelled points of each instance, enlarged by ``margin`` of their size on every side.

    FashionAI and the synthetic garments have no box annotation; detectors need one, so every garment loader
    uses this one definition.

    Parameters
    ----------
    keypoints : (N, K, 3) float
        x, y in pixels, v in {0, 1, 2}; points with v = 0 are ignored.
    margin : float
        Fraction of the box's width (height) added left and right (top and bottom); >= 0.
    width, height : int, optional
        Image size; the box is clipped to it when given.

    Returns
    -------
    boxes : (N, 4) float, x1, y1, x2, y2 pixels; an instance without labelled points gets ``[0, 0, 0, 0]``.
    """
    if keypoints.ndim != 3 or keypoints.shape[-1] != 3:
        raise ValueError(f"keypoints must have shape (N, K, 3), got {tuple(keypoints.shape)}")
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    labelled = keypoints[..., 2] > 0  # (N, K)
    xy = keypoints[..., :2]
    big = torch.finfo(keypoints.dtype).max
    lo = torch.where(labelled[..., None], xy, big).amin(1)  # (N, 2)
    hi = torch.where(labelled[..., None], xy, -big).amax(1)  # (N, 2)
    pad = (hi - lo) * margin
    boxes = torch.cat([lo - pad, hi + pad], 1)  # (N, 4)
    if width is not None:
        boxes[:, 0::2] = boxes[:, 0::2].clamp(0, width)
    if height is not None:
        boxes[:, 1::2] = boxes[:, 1::2].clamp(0, height)
    return torch.where(labelled.any(1, keepdim=True), boxes, torch.zeros_like(boxes))


def resize(image: torch.Tensor, target: dict, size: int | Sequence[int]) -> tuple[torch.Tensor, dict]:
    """Resize the image to ``size`` (bilinear, antialiased) and scale the target with it.

    Parameters
    ----------
    image : (C, H, W) float
    target : dict
        See the module docstring; unknown keys pass through.
    size : int or (height, width)
        Output size in pixels; an int gives a square.

    Returns
    -------
    image : (C, h, w) float; target : a new dict with boxes, key points (absent points stay 0), area and axis scaled.
    """
    _check_image(image)
    h, w = _size_hw(size)
    sy, sx = h / image.shape[1], w / image.shape[2]
    out = F.interpolate(image[None], size=(h, w), mode="bilinear", align_corners=False, antialias=True)[0]
    target = dict(target)
    scale = torch.tensor([sx, sy])
    if "boxes" in target:
        target["boxes"] = target["boxes"] * scale.repeat(2)
    if "keypoints" in target:
        kp = target["keypoints"]
        xy = kp[..., :2] * scale * (kp[..., 2:] > 0)  # absent points stay exactly 0
        target["keypoints"] = torch.cat([xy, kp[..., 2:]], -1)
    if "area" in target:
        target["area"] = target["area"] * (sx * sy)
    if "axis" in target:
        # normal . (x / sx, y / sy) = c  <=>  (nx / sx, ny / sy) . p = c, then renormalise
        ax = target["axis"]
        n = ax[:, :2] / scale
        norm = n.norm(dim=1, keepdim=True)
        has = norm > 0
        safe = torch.where(has, norm, torch.ones_like(norm))
        target["axis"] = torch.where(has, torch.cat([n / safe, ax[:, 2:] / safe], 1), ax)
    return out, target


def hflip(image: torch.Tensor, target: dict, schema: KeypointSchema) -> tuple[torch.Tensor, dict]:
    """Mirror the image left-right; mirror x and swap left/right points through ``schema.flip``.

    Parameters
    ----------
    image : (C, H, W) float
    target : dict
        See the module docstring; ``keypoints`` must have ``K = schema.num_keypoints`` points.
    schema : KeypointSchema
        Gives the left/right permutation.

    Returns
    -------
    image : (C, H, W) float; target : a new dict. Flipping twice returns the input exactly.
    """
    _check_image(image)
    width = image.shape[2]
    target = dict(target)
    if "boxes" in target:
        b = target["boxes"]
        target["boxes"] = torch.stack([width - b[:, 2], b[:, 1], width - b[:, 0], b[:, 3]], 1)
    if "keypoints" in target:
        kp = target["keypoints"]
        if kp.shape[-2] != schema.num_keypoints:
            raise ValueError(f"keypoints have {kp.shape[-2]} points, schema {schema.name!r} has {schema.num_keypoints}")
        x = torch.where(kp[..., 2] > 0, width - kp[..., 0], kp[..., 0])  # absent points stay at 0
        kp = torch.stack([x, kp[..., 1], kp[..., 2]], -1)
        target["keypoints"] = kp[..., schema.flip, :]
    if "occluded" in target:
        target["occluded"] = target["occluded"][..., schema.flip]
    if "axis" in target:
        # n . (W - x, y) = c  <=>  (-nx, ny) . p = c - nx W
        ax = target["axis"]
        target["axis"] = torch.stack([-ax[:, 0], ax[:, 1], ax[:, 2] - ax[:, 0] * width], 1)
        target["axis"] = torch.where((ax[:, :2] != 0).any(1, keepdim=True), target["axis"], ax)
    return image.flip(-1), target


def random_hflip(
    image: torch.Tensor, target: dict, schema: KeypointSchema, generator: torch.Generator, p: float = 0.5
) -> tuple[torch.Tensor, dict]:
    """:func:`hflip` with probability ``p`` (drawn from ``generator``), else the inputs unchanged."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be in [0, 1], got {p}")
    if float(torch.rand((), generator=generator)) < p:
        return hflip(image, target, schema)
    return image, target


def to_model_input(
    image: torch.Tensor, target: dict, size: int | Sequence[int] | None = None
) -> tuple[torch.Tensor, dict]:
    """Make a loader item what torchvision's detection models take: float32 image, float32 boxes and key points,
    int64 labels, optionally resized to ``size``.

    Parameters
    ----------
    image : (C, H, W) float or uint8 (uint8 is divided by 255)
    target : dict
    size : int or (height, width), optional

    Returns
    -------
    image : (C, h, w) float32 in [0, 1]; target : a new dict.
    """
    if image.dtype == torch.uint8:
        image = image.float() / 255.0
    _check_image(image)
    image = image.float().contiguous()
    target = dict(target)
    for key in ("boxes", "keypoints", "area", "axis"):
        if key in target:
            target[key] = target[key].float()
    if "labels" in target:
        target["labels"] = target["labels"].long()
    if size is not None:
        image, target = resize(image, target, size)
    return image, target


def collate(batch: Sequence[tuple[torch.Tensor, dict]]) -> tuple[list[torch.Tensor], list[dict]]:
    """DataLoader ``collate_fn`` for detection: images and targets as lists (sizes and instance counts vary)."""
    images, targets = zip(*batch, strict=True) if batch else ((), ())
    return list(images), list(targets)
