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
- ``occluded`` (N, K) bool: permuted with the points by a flip;
- ``garment_box`` (N, 4) float, ``labels`` (N,), ``iscrowd`` (N,): per-instance, kept or dropped with the
  instance by :func:`crop`.

Scale and crop augmentation (:func:`random_scale_crop`, :class:`ScaleCropConfig`) is the standard one of detection
references: rescale, then crop a window around an instance, so that a garment's key-point box spans from about a
third of the frame to the whole frame, as in real FashionAI photographs (the 5 %-95 % range of its extent, the
longer side of the key-point box over the image side, is 0.32-0.92, median 0.67: ``shared/real-data-facts.md``).
:func:`keypoint_extent` measures that extent.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from fashion_lib.keypoints import KeypointSchema, keypoint_extent

__all__ = [
    "keypoint_boxes",
    "EXTENT_QUANTILES",
    "extent_quantiles",
    "resize",
    "hflip",
    "random_hflip",
    "crop",
    "ScaleCropConfig",
    "random_scale_crop",
    "ScaleCropped",
    "to_model_input",
    "collate",
]


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
                   height: int | None = None) -> torch.Tensor:
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


EXTENT_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
"""The quantiles of the extent that ``shared/real-data-facts.md`` reports for real FashionAI (0.32 ... 0.92)."""


def extent_quantiles(targets: Sequence[dict], sizes: Sequence[tuple[int, int]],
                     quantiles: Sequence[float] = EXTENT_QUANTILES) -> dict[float, float]:
    """Quantiles of :func:`keypoint_extent` over every instance of a set of targets (crowd regions and instances
    without labelled points left out), for comparing a data set's framing with the real one.

    Parameters
    ----------
    targets : sequence of T dicts with ``keypoints`` (N_i, K, 3), optional ``iscrowd`` (N_i,)
    sizes : sequence of T (height, width) of the targets' images, pixels
    quantiles : probabilities in [0, 1]

    Returns
    -------
    dict probability -> extent (NaN for every probability when no instance qualifies).
    """
    if len(sizes) != len(targets):
        raise ValueError(f"sizes has {len(sizes)} entries for {len(targets)} targets")
    if any(not 0.0 <= q <= 1.0 for q in quantiles):
        raise ValueError(f"quantiles must lie in [0, 1], got {list(quantiles)}")
    parts = []
    for t, (h, w) in zip(targets, sizes, strict=True):  # images differ in size and instance count
        extent = keypoint_extent(torch.as_tensor(t["keypoints"]).float(), h, w)  # (N,)
        if "iscrowd" in t:
            extent = extent[torch.as_tensor(t["iscrowd"]) == 0]
        parts.append(extent[torch.isfinite(extent)])
    extents = torch.cat(parts) if parts else torch.zeros(0)
    if not len(extents):
        return {float(q): math.nan for q in quantiles}
    values = torch.quantile(extents.double(), torch.tensor(list(quantiles), dtype=torch.float64))
    return {float(q): float(v) for q, v in zip(quantiles, values, strict=True)}


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


# Per-instance target keys: :func:`crop` keeps or drops their rows together.
_INSTANCE_KEYS = ("boxes", "garment_box", "labels", "keypoints", "occluded", "axis", "area", "iscrowd")
_PAD_MODES = ("replicate", "constant")


def crop(image: torch.Tensor, target: dict, top: int, left: int, height: int, width: int, *,
         pad_mode: str = "replicate", min_box_size: float = 1.0) -> tuple[torch.Tensor, dict]:
    """Cut the window ``[left, left + width) x [top, top + height)`` (integer pixels) out of the image and move the
    target into it. Where the window leaves the image it is padded (by default by replicating the edge pixels).

    Parameters
    ----------
    image : (C, H, W) float
    target : dict
        See the module docstring; unknown keys pass through unchanged.
    top, left : int
        Window origin in image pixels; may be negative or beyond the image (padding).
    height, width : int
        Window size in pixels, >= 1.
    pad_mode : "replicate" or "constant"
        Padding outside the image: edge pixels repeated, or zeros.
    min_box_size : float
        Instances whose box, clipped to the window, is narrower or lower than this (pixels) are dropped, with
        every per-instance key (``boxes``, ``garment_box``, ``labels``, ``keypoints``, ``occluded``, ``axis``,
        ``area``, ``iscrowd``); > 0, since detectors reject empty boxes.

    Returns
    -------
    image : (C, height, width) float
    target : a new dict. Key points move by ``(-left, -top)``; those outside ``[0, width] x [0, height]`` become
    absent (v = 0, coordinates 0, ``occluded`` False). Boxes and ``garment_box`` are moved and clipped to the window;
    ``area`` is scaled by the fraction of the box left inside; ``axis`` is moved.
    """
    _check_image(image)
    if height < 1 or width < 1:
        raise ValueError(f"crop height and width must be >= 1, got {height} x {width}")
    if pad_mode not in _PAD_MODES:
        raise ValueError(f"pad_mode must be one of {_PAD_MODES}, got {pad_mode!r}")
    if not min_box_size > 0:
        raise ValueError(f"min_box_size must be > 0, got {min_box_size}")
    top, left = int(top), int(left)
    h_in, w_in = image.shape[1:]
    pad = (max(0, -left), max(0, left + width - w_in), max(0, -top), max(0, top + height - h_in))  # l, r, t, b
    if any(pad):
        image = F.pad(image[None], pad, mode=pad_mode)[0]
    out = image[:, top + pad[2]:top + pad[2] + height, left + pad[0]:left + pad[0] + width]
    target = dict(target)
    if "keypoints" in target:
        kp = target["keypoints"]
        xy = kp[..., :2] - kp.new_tensor([left, top])
        inside = (kp[..., 2] > 0) & (xy >= 0).all(-1) & (xy[..., 0] <= width) & (xy[..., 1] <= height)  # (N, K)
        target["keypoints"] = torch.cat([xy, kp[..., 2:]], -1) * inside[..., None]
        if "occluded" in target:
            target["occluded"] = target["occluded"] & inside
    keep = None
    for key in ("boxes", "garment_box"):
        if key in target:
            b = target[key]
            moved = b - b.new_tensor([left, top, left, top])
            clipped = torch.stack([moved[:, 0].clamp(0, width), moved[:, 1].clamp(0, height),
                                   moved[:, 2].clamp(0, width), moved[:, 3].clamp(0, height)], 1)
            target[key] = clipped
            if key == "boxes":
                keep = ((clipped[:, 2] - clipped[:, 0]) >= min_box_size) & ((clipped[:, 3] - clipped[:, 1])
                                                                            >= min_box_size)
                if "area" in target:
                    before = ((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])).clamp_min(1e-12)
                    after = (clipped[:, 2] - clipped[:, 0]) * (clipped[:, 3] - clipped[:, 1])
                    target["area"] = target["area"] * (after / before)
    if "axis" in target:
        # n . (p' + t) = c  <=>  n . p' = c - n . t; an all-zero axis (none) stays zero
        ax = target["axis"]
        moved = torch.cat([ax[:, :2], ax[:, 2:] - ax[:, :2] @ ax.new_tensor([[left], [top]])], 1)
        target["axis"] = torch.where((ax[:, :2] != 0).any(1, keepdim=True), moved, ax)
    if keep is not None and not bool(keep.all()):
        for key in _INSTANCE_KEYS:
            if key in target:
                target[key] = target[key][keep]
    return out, target


@dataclass(frozen=True)
class ScaleCropConfig:
    """Scale and crop augmentation of detection training images (:func:`random_scale_crop`)."""

    extent: tuple[float, float] = (1 / 3, 1.0)  # drawn uniformly: the reference instance's key-point extent after
    # the transform (:func:`keypoint_extent`); real FashionAI spans 0.32-0.92 (5 %-95 %), a second-scale crop 1.0
    pad_mode: str = "replicate"  # outside the image when zooming out: "replicate" (edge pixels) or "constant" (0)
    min_box_size: float = 1.0  # instances whose box keeps less than this (output pixels) inside are dropped

    def __post_init__(self) -> None:
        lo, hi = self.extent
        if not 0.0 < lo <= hi <= 1.0:
            raise ValueError(f"ScaleCropConfig.extent must be (lo, hi) with 0 < lo <= hi <= 1, got {self.extent}")
        if self.pad_mode not in _PAD_MODES:
            raise ValueError(f"ScaleCropConfig.pad_mode must be one of {_PAD_MODES}, got {self.pad_mode!r}")
        if not self.min_box_size > 0:
            raise ValueError(f"ScaleCropConfig.min_box_size must be > 0, got {self.min_box_size}")


def _window_origin(lo_box: float, hi_box: float, side: int, window: int, generator: torch.Generator) -> int:
    """An integer window origin drawn uniformly among those whose window contains ``[lo_box, hi_box]`` and, where
    possible, stays inside ``[0, side]`` (else holds all of it): the fewest padded pixels."""
    lo = max(hi_box - window, min(0, side - window))
    hi = min(lo_box, max(0, side - window))
    first, last = math.ceil(lo), math.floor(hi)
    last = max(first, last)  # the caller leaves >= 1 px of slack, so this only guards rounding
    return first + int(torch.randint(last - first + 1, (), generator=generator))


def random_scale_crop(image: torch.Tensor, target: dict, generator: torch.Generator,
                      config: ScaleCropConfig = ScaleCropConfig()) -> tuple[torch.Tensor, dict]:
    """Rescale and crop so that one instance's key points span a drawn fraction of the frame; same output size.

    1. The reference instance is drawn uniformly among the non-crowd instances with labelled points spread over
       more than a pixel (none: the inputs are returned unchanged); its extent ``e0`` is :func:`keypoint_extent`.
    2. A target extent ``e`` is drawn uniformly from ``config.extent``; the scale is ``s = e / e0``, lowered where
       needed so that the window holds the instance's key-point box with a pixel to spare.
    3. A window of ``(H / s, W / s)`` source pixels (rounded) is placed at a uniformly drawn integer origin among
       those that contain the key-point box, inside the image where it fits, else holding all of the image (zoom
       out: the rest is padded by ``config.pad_mode``); it is cut out (:func:`crop`) and resized to ``(H, W)``
       (:func:`resize`, antialiased).

    Other instances are cropped with it: their points outside the window become absent (v = 0) and instances left
    with less than ``config.min_box_size`` pixels of box are dropped. Key points, boxes, areas and symmetry axes
    are mapped exactly (continuous pixels, module docstring).

    Parameters
    ----------
    image : (C, H, W) float
    target : dict with ``keypoints`` (N, K, 3) and ``boxes`` (N, 4); see the module docstring
    generator : torch.Generator
        Every draw (instance, extent, origin) comes from it: the same state gives the same output.
    config : ScaleCropConfig

    Returns
    -------
    image : (C, H, W) float; target : a new dict.
    """
    _check_image(image)
    height, width = image.shape[1:]
    pick, draw_e = torch.rand((), generator=generator), torch.rand((), generator=generator)
    kp = target.get("keypoints")
    if kp is None or not len(kp):
        return image, target
    boxes = keypoint_boxes(kp, 0.0)  # (N, 4)
    size = boxes[:, 2:] - boxes[:, :2]  # (N, 2)
    usable = (kp[..., 2] > 0).any(1) & (size.amax(1) > 1.0)
    if "iscrowd" in target:
        usable &= torch.as_tensor(target["iscrowd"]) == 0
    candidates = usable.nonzero()[:, 0]
    if not len(candidates):
        return image, target
    ref = int(candidates[min(int(pick * len(candidates)), len(candidates) - 1)])
    lo, hi = config.extent
    e0 = float(keypoint_extent(kp[ref:ref + 1], height, width)[0])
    bw, bh = float(size[ref, 0]), float(size[ref, 1])
    # the window (width / s source pixels) holds the box with >= 1 px to spare, so an integer origin exists
    s = min((lo + (hi - lo) * float(draw_e)) / e0, width / (math.ceil(bw) + 1), height / (math.ceil(bh) + 1))
    win_w, win_h = max(1, round(width / s)), max(1, round(height / s))
    x0 = _window_origin(float(boxes[ref, 0]), float(boxes[ref, 2]), width, win_w, generator)
    y0 = _window_origin(float(boxes[ref, 1]), float(boxes[ref, 3]), height, win_h, generator)
    image, target = crop(image, target, y0, x0, win_h, win_w, pad_mode=config.pad_mode,
                         min_box_size=config.min_box_size * min(win_w / width, win_h / height))
    return resize(image, target, (height, width))


class ScaleCropped(torch.utils.data.Dataset):
    """Items of ``dataset`` through :func:`random_scale_crop`; item ``i``'s draw depends only on ``(seed, i)``.

    Parameters
    ----------
    dataset : map-style Dataset of ``(image, target)``
    config : ScaleCropConfig
    seed : int
    length : int, optional
        A length >= ``len(dataset)``: item ``i`` is ``dataset[i % len(dataset)]`` with its own draw, so a data set
        trained over several epochs shows each image at new scales (default ``len(dataset)``).
    """

    def __init__(self, dataset: Any, config: ScaleCropConfig, seed: int, length: int | None = None) -> None:
        if length is not None and length < len(dataset):
            raise ValueError(f"length must be >= len(dataset) = {len(dataset)}, got {length}")
        if length is not None and length > 0 and not len(dataset):
            raise ValueError("length > 0 needs a non-empty dataset")
        self.dataset, self.config, self.seed = dataset, config, int(seed)
        self.length = len(dataset) if length is None else int(length)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict]:
        if not 0 <= index < self.length:
            raise IndexError(f"index must be in [0, {self.length}), got {index}")
        digest = hashlib.sha256(f"scale-crop/{self.seed}/{index}".encode()).digest()
        generator = torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") >> 1)
        return random_scale_crop(*self.dataset[index % len(self.dataset)], generator, self.config)


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
