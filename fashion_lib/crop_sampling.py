"""Cutting crops out of images, and the maps between image and crop pixels: the second half of the crop geometry
(:mod:`fashion_lib.crops` chooses the boxes and re-exports everything here, so callers import both from there).

A crop is a box of an image (``x1, y1, x2, y2``, from :func:`fashion_lib.crops.crop_boxes`,
:func:`~fashion_lib.crops.aspect_boxes` or :func:`~fashion_lib.crops.second_scale_boxes`) turned into pixels in
one of two ways:

- resampled to a fixed size by :func:`crop_and_resize` (one batched ``roi_align`` call; parts outside the image
  are zeros or, with ``padding="edge"``, the nearest border pixel): what the recognition networks, CPN and the
  second scale's :attr:`CropMapping.RESIZED` see;
- cut at its own size in whole pixels by :func:`crop_pixels` (edge replication outside the image): the second
  scale's :attr:`CropMapping.UNRESIZED`, the paper's ``keys2 + [xmin, ymin]``, exact because Keypoint R-CNN accepts
  any input size and answers in the input's pixels.

:func:`points_to_crop` and :func:`points_from_crop` map points between the two pixel frames (the offset and the
resize factor; the offset alone for a crop at its own size), :func:`line_from_crop` maps a symmetry axis back.
Coordinates are continuous pixels, as in :mod:`fashion_lib.crops`: pixel ``(i, j)`` covers ``[j, j + 1) x
[i, i + 1)``, its centre is ``(j + 0.5, i + 0.5)``; ``x`` right, ``y`` down.

The module imports only :mod:`fashion_lib.data.transforms` (sizes) and :mod:`fashion_lib.refine_config`
(:class:`CropMapping`); :mod:`fashion_lib.crops` imports it, never the reverse.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F

from fashion_lib.data.transforms import _size_hw
from fashion_lib.refine_config import CropMapping  # its home: RefineConfig's field

__all__ = [
    "Crops",
    "PADDINGS",
    "CropMapping",
    "crop_and_resize",
    "points_to_crop",
    "points_from_crop",
    "line_from_crop",
    "pixel_boxes",
    "crop_pixels",
    "second_scale_crops",
]

PADDINGS = ("zeros", "edge")
"""How :func:`crop_and_resize` fills the parts of a box outside its image: ``roi_align``'s zeros, or the nearest
border pixel (edge replication, what the second scale uses)."""


class Crops(NamedTuple):
    """Output of :func:`crop_and_resize`."""

    images: torch.Tensor
    """``(B, C, h, w)`` crops, dtype and device of the input images."""
    boxes: torch.Tensor
    """``(B, 4)`` the boxes cropped, image pixels: with ``(h, w)`` all :func:`points_from_crop` needs."""


def crop_and_resize(
    images: torch.Tensor | Sequence[torch.Tensor],
    boxes: torch.Tensor,
    size: int | Sequence[int],
    *,
    image_index: torch.Tensor | None = None,
    sampling_ratio: int = 0,
    padding: Literal["zeros", "edge"] = "zeros",
) -> Crops:
    """Crop ``boxes`` out of their images and resize each to ``size`` in one batched ``roi_align`` call.

    Output pixel ``(i, j)`` of crop ``b`` is the bilinear sample of image ``image_index[b]`` at the continuous point
    ``(x1 + (j + 0.5) * (x2 - x1) / w, y1 + (i + 0.5) * (y2 - y1) / h)`` (torchvision's ``roi_align`` with
    ``aligned=True``), averaged over ``sampling_ratio`` x ``sampling_ratio`` points of the output pixel's cell.
    Samples beyond the image's border pixel centres take the border value; samples more than one pixel outside
    the image are 0 (``roi_align``'s rule) with ``padding="zeros"``, and the nearest border pixel's value with
    ``padding="edge"`` (the image is first padded by edge replication as far as the boxes reach).

    Parameters
    ----------
    images : (N, C, H, W) float tensor, or a sequence of N (C, H_n, W_n) float tensors (sizes may differ)
        On one device; crops are computed there (CPU or CUDA).
    boxes : (B, 4) float
        ``x1, y1, x2, y2`` in image pixels, with ``x2 > x1`` and ``y2 > y1``.
    size : int or (h, w)
        Output size in pixels.
    image_index : (B,) long, optional
        Image of each box; default ``arange(B)`` (one box per image, ``B == N``).
    sampling_ratio : int
        Samples per output pixel and axis; ``0`` is adaptive, ``ceil(box side / output side)``: a box filter
        against aliasing when shrinking. ``1`` is a plain bilinear resize.
    padding : {"zeros", "edge"}
        What fills the parts of a box outside its image (:data:`PADDINGS`).

    Returns
    -------
    Crops
        ``images`` (B, C, h, w) and ``boxes`` (B, 4) (as given, in the images' dtype).

    Notes
    -----
    Images of different sizes are grouped by size and each group is cropped in one call (a loop over the
    distinct sizes, not over boxes); the result equals cropping each image on its own.
    """
    h, w = _size_hw(size)
    if not isinstance(sampling_ratio, int) or sampling_ratio < 0:
        raise ValueError(f"sampling_ratio must be an integer >= 0, got {sampling_ratio!r}")
    if padding not in PADDINGS:
        raise ValueError(f"padding must be one of {PADDINGS}, got {padding!r}")
    if isinstance(images, torch.Tensor):
        if images.ndim != 4:
            raise ValueError(f"images must be (N, C, H, W) or a list of (C, H, W), got shape {tuple(images.shape)}")
        image_list: list[torch.Tensor] | None = None
        n_images, ref = images.shape[0], images
    else:
        image_list = list(images)
        if not image_list:
            raise ValueError("images is an empty list")
        for i, im in enumerate(image_list):
            if not isinstance(im, torch.Tensor) or im.ndim != 3:
                raise ValueError(f"images[{i}] must be a (C, H, W) tensor, got "
                                 f"{tuple(im.shape) if isinstance(im, torch.Tensor) else type(im).__name__}")
        n_images, ref = len(image_list), image_list[0]
    if not ref.is_floating_point():
        raise ValueError(f"images must be float (convert uint8 with .float() / 255), got {ref.dtype}")
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes must have shape (B, 4), got {tuple(boxes.shape)}")
    B = boxes.shape[0]
    device, dtype = ref.device, ref.dtype
    boxes = boxes.to(device=device, dtype=dtype)
    if image_index is None:
        if B != n_images:
            raise ValueError(f"boxes has {B} rows but there are {n_images} images; pass image_index")
        image_index = torch.arange(B, device=device)
    image_index = torch.as_tensor(image_index, device=device).long()
    if image_index.shape != (B,):
        raise ValueError(f"image_index must have shape ({B},), got {tuple(image_index.shape)}")
    if B and (int(image_index.min()) < 0 or int(image_index.max()) >= n_images):
        raise ValueError(f"image_index must be in [0, {n_images}), got values in "
                         f"[{int(image_index.min())}, {int(image_index.max())}]")
    bad = ~torch.isfinite(boxes).all(1) | (boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])
    if B and bool(bad.any()):
        i = int(torch.nonzero(bad)[0])
        raise ValueError(f"boxes[{i}] = {boxes[i].tolist()}: need finite x1 < x2 and y1 < y2")
    channels = ref.shape[-3]
    if B == 0:
        return Crops(ref.new_zeros(0, channels, h, w), boxes)
    from torchvision.ops import roi_align  # here, not at the top: torchvision takes seconds to import (issue 21)

    def crop(batch: torch.Tensor, idx: torch.Tensor, bx: torch.Tensor) -> torch.Tensor:
        if padding == "edge":  # replicate the border as far as any box reaches, plus roi_align's one-pixel rim
            H, W = batch.shape[-2:]
            reach = torch.cat([-bx[:, :2], bx[:, 2:3] - W, bx[:, 3:4] - H], 1).max()
            pad = math.ceil(max(float(reach), 0.0)) + 1
            batch, bx = F.pad(batch, (pad, pad, pad, pad), mode="replicate"), bx + pad
        rois = torch.cat([idx[:, None].to(dtype), bx], 1)  # (b, 5): image index, x1, y1, x2, y2
        return roi_align(batch, rois, output_size=(h, w), spatial_scale=1.0, sampling_ratio=sampling_ratio,
                         aligned=True)

    if image_list is None:
        return Crops(crop(images, image_index, boxes), boxes)
    shapes = [tuple(im.shape) for im in image_list]
    if any(s[0] != channels for s in shapes):
        raise ValueError(f"images must all have {channels} channels, got shapes {sorted(set(shapes))}")
    distinct = sorted(set(shapes))
    if len(distinct) == 1:
        return Crops(crop(torch.stack(image_list), image_index, boxes), boxes)
    out = ref.new_empty(B, channels, h, w)
    group_of = torch.tensor([distinct.index(s) for s in shapes], device=device)  # (N,) size group of each image
    local = torch.zeros(n_images, dtype=torch.long, device=device)  # (N,) position inside its group
    for g, shape in enumerate(distinct):  # loop over distinct image sizes, not over boxes
        members = [i for i, s in enumerate(shapes) if s == shape]
        local[members] = torch.arange(len(members), device=device)
        sel = torch.nonzero(group_of[image_index] == g)[:, 0]  # boxes on images of this size
        if sel.numel():
            out[sel] = crop(torch.stack([image_list[i] for i in members]), local[image_index[sel]], boxes[sel])
    return Crops(out, boxes)


def _check_points(points: torch.Tensor, boxes: torch.Tensor) -> None:
    if points.ndim != 3 or points.shape[-1] not in (2, 3) or boxes.shape != (points.shape[0], 4):
        raise ValueError(f"points must be (B, K, 2) or (B, K, 3) and boxes (B, 4), got {tuple(points.shape)} and "
                         f"{tuple(boxes.shape)}")


def _crop_scale(boxes: torch.Tensor, size: int | Sequence[int] | None) -> torch.Tensor:
    """``(B, 2)`` crop pixels per image pixel along x and y; ones for an unresized crop (``size`` None)."""
    if size is None:
        return torch.ones_like(boxes[:, :2])
    h, w = _size_hw(size)
    return torch.stack([w / (boxes[:, 2] - boxes[:, 0]), h / (boxes[:, 3] - boxes[:, 1])], -1)


def _map(points: torch.Tensor, offset: torch.Tensor, scale: torch.Tensor, forward: bool) -> torch.Tensor:
    xy = points[..., :2]
    new = (xy - offset[:, None]) * scale[:, None] if forward else xy / scale[:, None] + offset[:, None]
    if points.shape[-1] == 3:  # absent points (third channel 0) keep their zero coordinates (library convention)
        new = torch.where(points[..., 2:] == 0, xy, new)
        return torch.cat([new, points[..., 2:]], -1)
    return new


def points_to_crop(points: torch.Tensor, boxes: torch.Tensor, size: int | Sequence[int] | None) -> torch.Tensor:
    """Map image pixels to crop pixels: ``u = (x - x1) * w / (x2 - x1)``, ``v = (y - y1) * h / (y2 - y1)``.

    Parameters
    ----------
    points : (B, K, 2) or (B, K, 3) float, image pixels (a third channel passes through; where it is 0, the point
        is absent and keeps its coordinates).
    boxes : (B, 4) float, the crops' boxes (:attr:`Crops.boxes`).
    size : int or (h, w), the crops' size; ``None`` for crops at their own size (:attr:`CropMapping.UNRESIZED`),
        where ``u = x - x1``.

    Returns
    -------
    (B, K, 2) or (B, K, 3) float, crop pixels (continuous convention).
    """
    _check_points(points, boxes)
    boxes = boxes.to(points)
    return _map(points, boxes[:, :2], _crop_scale(boxes, size), forward=True)


def points_from_crop(points: torch.Tensor, boxes: torch.Tensor, size: int | Sequence[int] | None) -> torch.Tensor:
    """Map crop pixels back to image pixels, the inverse of :func:`points_to_crop` (offset and resize factor; with
    ``size=None``, the paper's ``keys2 + [xmin, ymin]``).

    Parameters and returns as :func:`points_to_crop`, with the roles of image and crop pixels swapped.
    """
    _check_points(points, boxes)
    boxes = boxes.to(points)
    return _map(points, boxes[:, :2], _crop_scale(boxes, size), forward=False)


def line_from_crop(axis: torch.Tensor, boxes: torch.Tensor, size: int | Sequence[int] | None) -> torch.Tensor:
    """Map lines ``{p : n . p = c}`` from crop pixels to image pixels (the inverse of :func:`points_to_crop`).

    With ``p_crop = (p - o) * s`` (``o`` the box's corner, ``s`` the per-axis scale), the line becomes
    ``(n * s) . p = c + (n * s) . o``, renormalised to a unit normal; a stretched (non-square) resize turns it.

    Parameters
    ----------
    axis : (B, 3) float, ``(n_x, n_y, c)`` with a unit normal; rows with a zero normal (no line) pass through.
    boxes : (B, 4) float, the crops' boxes.
    size : int, (h, w) or None, as in :func:`points_to_crop`.

    Returns
    -------
    (B, 3) float, ``(n_x, n_y, c)`` in image pixels, unit normal (the sign of ``n_x`` is kept).
    """
    if axis.ndim != 2 or axis.shape[1] != 3 or boxes.shape != (axis.shape[0], 4):
        raise ValueError(f"axis must be (B, 3) and boxes (B, 4), got {tuple(axis.shape)} and {tuple(boxes.shape)}")
    boxes = boxes.to(axis)
    ns = axis[:, :2] * _crop_scale(boxes, size)  # (B, 2)
    norm = ns.norm(dim=-1, keepdim=True)  # (B, 1)
    has = norm > 0
    safe = torch.where(has, norm, torch.ones_like(norm))
    mapped = torch.cat([ns, axis[:, 2:] + (ns * boxes[:, :2]).sum(-1, keepdim=True)], 1) / safe
    return torch.where(has, mapped, axis)


def pixel_boxes(boxes: torch.Tensor) -> torch.Tensor:
    """The smallest whole-pixel boxes containing ``boxes`` (``floor`` of the corner, ``ceil`` of the far corner,
    with a 1e-4 px tolerance against rounding), at least one pixel wide: what :func:`crop_pixels` cuts out.

    Parameters
    ----------
    boxes : (B, 4) float, image pixels.

    Returns
    -------
    (B, 4) float with integer values; a box inside its image stays inside.
    """
    lo = torch.floor(boxes[:, :2] + 1e-4)
    hi = torch.maximum(torch.ceil(boxes[:, 2:] - 1e-4), lo + 1)
    return torch.cat([lo, hi], 1)


def crop_pixels(
    images: Sequence[torch.Tensor], boxes: torch.Tensor, image_index: torch.Tensor | None = None
) -> list[torch.Tensor]:
    """Cut whole-pixel boxes out of their images at their own size; parts outside an image repeat its border.

    Crop pixel ``(i, j)`` of box ``b`` is image pixel ``(y1 + i, x1 + j)`` clamped to the image (edge replication),
    so a point maps back exactly with ``keys2 + [x1, y1]`` (:func:`points_from_crop` with ``size=None``).

    Parameters
    ----------
    images : sequence of N (C, H_n, W_n) float tensors, or a (N, C, H, W) tensor.
    boxes : (B, 4) float with integer values (:func:`pixel_boxes`), ``x2 > x1``, ``y2 > y1``.
    image_index : (B,) long, the image of each box (default ``arange(B)``).

    Returns
    -------
    list of B (C, y2 - y1, x2 - x1) tensors (sizes differ: a list, as a detector takes them).
    """
    images = list(images)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes must have shape (B, 4), got {tuple(boxes.shape)}")
    if not bool((boxes == boxes.round()).all()) or bool((boxes[:, 2:] <= boxes[:, :2]).any()):
        raise ValueError("crop_pixels: boxes must be whole pixels with x2 > x1 and y2 > y1 (see pixel_boxes), got "
                         f"{boxes.tolist()[:3]}...")
    B = boxes.shape[0]
    index = torch.arange(B) if image_index is None else torch.as_tensor(image_index).long().cpu()
    if index.shape != (B,) or (B and (int(index.min()) < 0 or int(index.max()) >= len(images))):
        raise ValueError(f"image_index must be ({B},) indices into the {len(images)} images")
    out = []
    for box, i in zip(boxes.long().tolist(), index.tolist(), strict=True):  # over crops: their sizes differ
        im = images[i]
        H, W = im.shape[-2:]
        rows = torch.arange(box[1], box[3], device=im.device).clamp(0, H - 1)
        cols = torch.arange(box[0], box[2], device=im.device).clamp(0, W - 1)
        out.append(im[:, rows][:, :, cols])
    return out


def second_scale_crops(
    images: Sequence[torch.Tensor],
    boxes: torch.Tensor,
    image_index: torch.Tensor,
    mapping: CropMapping,
    size: int,
) -> tuple[list[torch.Tensor], torch.Tensor, int | None]:
    """The crops the detector sees at the second scale, by edge replication where a box leaves its image.

    Parameters
    ----------
    images : sequence of N (C, H, W) float tensors.
    boxes : (B, 4) float, from :func:`fashion_lib.crops.second_scale_boxes`.
    image_index : (B,) long.
    mapping : CropMapping
        ``RESIZED``: each crop resized to ``size`` x ``size``; ``UNRESIZED``: the whole-pixel box at its own size.
    size : int, the resized crops' side (unused for ``UNRESIZED``).

    Returns
    -------
    crops : list of B (C, h, w) tensors.
    boxes : (B, 4) float, the boxes actually cut (whole pixels for ``UNRESIZED``).
    size : int or None, what :func:`points_from_crop` and :func:`line_from_crop` need to map back.
    """
    mapping = CropMapping(mapping)
    if mapping is CropMapping.UNRESIZED:
        boxes = pixel_boxes(boxes)
        return crop_pixels(images, boxes, image_index), boxes, None
    if not boxes.shape[0]:
        return [], boxes, size
    crops = crop_and_resize(list(images), boxes, size, image_index=image_index, padding="edge")
    return list(crops.images), boxes, size
