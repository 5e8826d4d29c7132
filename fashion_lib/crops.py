"""Crop geometry, in one place: Normal-crop and Neck-crop from key points, CPN's top-down crops, the second scale's
crops, a batched crop-and-resize, and the maps between image and crop pixels.

This module chooses the boxes; :mod:`fashion_lib.crop_sampling` cuts them out of the images (resampled or in whole
pixels) and maps points and lines between image and crop pixels. Everything of both is importable from here
(``from fashion_lib.crops import crop_and_resize``), so a caller names one module for all crop geometry.

Paper, section III.A and Fig. 3: "The bigger bounding box we defined by the key-points is called Normal-crop [...]
We then propose Neck-crop (the smaller bounding box), a region near the neck of clothes, specialized for upper-body
design tasks." Study notes, "Crops": the Normal-crop is the rectangle closing all predicted key points of the
instance with a margin; the Neck-crop a smaller rectangle around the neckline, the shoulders and ``center_front``.

Conventions
-----------
- Coordinates are continuous pixels: pixel ``(i, j)`` covers ``[j, j + 1) x [i, i + 1)``, its centre is
  ``(j + 0.5, i + 0.5)``; ``x`` right, ``y`` down. Boxes are ``x1, y1, x2, y2`` in those pixels.
- A key point is *valid* when both coordinates are finite and its third channel is ``> 0``: with COCO visibility
  (0 absent, 1 occluded, 2 visible) that means "labelled"; with detector scores, "score above 0"
  (:func:`fashion_lib.keypoints.missing_mask` with threshold 0).
- Per-instance failure is a returned mask, never an exception: an instance with no valid point falls back to the
  whole image and is flagged in :attr:`CropBoxes.fallback`.

The Neck-crop, as we define it (paper and notes give no formula; each knob is a field of :class:`CropConfig`):

1. The neck points are ``neckline_left``, ``neckline_right``, ``center_front``, ``shoulder_left`` and
   ``shoulder_right`` (:data:`NECK_POINTS`). Their valid ones give the closure ``[lo, hi]``.
2. The neck scale ``s`` is the shoulder distance when both shoulders are valid; otherwise
   ``neckline_to_shoulder`` times the neckline distance when both neckline points are valid (a garment's shoulders
   are about 3 necklines wide: 1 / 0.34 on the synthetic prototypes); otherwise there is no scale.
3. With a scale, about the centre ``cx`` of the pair that gave it: ``x`` spans ``[min(lo_x, cx - s/2),
   max(hi_x, cx + s/2)]``; ``y`` spans ``[lo_y, max(hi_y, lo_y + depth * s)]`` (room below the neckline for
   collars, lapels and deep V necks); then ``margin * s`` is added on every side (room above for turtle necks).
4. Without a scale (no shoulder pair, no neckline pair: a skirt, trousers, or a bad detection) the Neck-crop is the
   top ``neck_fallback`` fraction of the Normal-crop, full width, and the instance is flagged.
5. The box is intersected with the Normal-crop, so it always lies inside it.

What a network sees (:func:`crop_boxes`, ``CropConfig.square``): by default each box is then grown to a square
about its centre, so that resizing to the network's square input keeps the garment's aspect ratio (the paper does
not say; stretching a rectangle to a square hides a length in the box's shape, and on synthetic pant lengths the
stretched crops learned far slower).

CPN (:mod:`fashion_lib.models.cpn`) crops each detected box enlarged about its centre and fitted to its input's
aspect ratio (:func:`aspect_boxes`), resized by :func:`~fashion_lib.crop_sampling.crop_and_resize`, and maps its
targets with :func:`~fashion_lib.crop_sampling.points_to_crop`.

The second scale of New-key-detection (paper Alg. 2, step 9; study notes item 8) crops to the rectangle closing
the refined key points (:func:`second_scale_boxes`): grown by a margin, made square or left as the paper's
rectangle, and then *shifted* to stay inside the image wherever it fits (:func:`fit_boxes`), so that the detector
sees image content, never a border it was not trained on; where a box is larger than the image it covers the whole
image along that side and the rest is filled by edge replication (``padding="edge"``), never zeros. The crop reaches
the detector in one of two ways, a :class:`~fashion_lib.refine_config.CropMapping`: resized to a fixed square side
(the points map back with the offset and the resize factor) or at its own size (the paper's
``keys2 + [xmin, ymin]``, exact because Keypoint R-CNN accepts any input size and answers in the input's pixels);
:func:`~fashion_lib.crop_sampling.second_scale_crops` cuts it either way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple

import torch

# the cutting and the point maps, re-exported (their home is crop_sampling: listed in __all__ below)
from fashion_lib.crop_sampling import (
    PADDINGS,
    CropMapping,
    Crops,
    crop_and_resize,
    crop_pixels,
    line_from_crop,
    pixel_boxes,
    points_from_crop,
    points_to_crop,
    second_scale_crops,
)
from fashion_lib.data.transforms import _size_hw, keypoint_boxes
from fashion_lib.keypoints import KeypointSchema, get_schema, missing_mask

__all__ = [
    "CropConfig",
    "CropBoxes",
    "Crops",
    "NECK_POINTS",
    "CROP_KINDS",
    "valid_keypoints",
    "closing_boxes",
    "image_sizes",
    "normal_crop",
    "neck_crop",
    "crop_boxes",
    "square_boxes",
    "aspect_boxes",
    "crop_and_resize",
    "points_to_crop",
    "points_from_crop",
    "CropMapping",
    "PADDINGS",
    "fit_boxes",
    "pixel_boxes",
    "second_scale_boxes",
    "crop_framing",
    "crop_pixels",
    "second_scale_crops",
    "line_from_crop",
]

CROP_KINDS = ("full", "normal", "neck")
"""Inputs a recognition network can see: the whole image, the Normal-crop, the Neck-crop."""

NECK_POINTS: dict[str, tuple[str, ...]] = {
    "fashionai": ("neckline_left", "neckline_right", "center_front", "shoulder_left", "shoulder_right"),
}
"""Schema name -> the points of the neck region, in the order: neckline pair, centre, shoulder pair."""


@dataclass(frozen=True)
class CropConfig:
    """Knobs of the two crops. Defaults are our reading (the paper gives no numbers; module docstring)."""

    normal_margin: float = 0.15
    # Normal-crop: fraction of the key-point box's width (height) added on the left and right (top and bottom), >= 0
    neck_margin: float = 0.2
    # Neck-crop: margin added on every side, as a fraction of the neck scale s (shoulder width), >= 0
    neck_depth: float = 0.6
    # Neck-crop: minimum extent below the top neck point, in units of s (collars, lapels, deep V), >= 0
    neckline_to_shoulder: float = 3.0
    # Neck-crop: s = this times the neckline distance when a shoulder is missing, > 0
    neck_fallback: float = 0.4
    # Neck-crop without a scale: the top fraction of the Normal-crop's height that is used, in (0, 1]
    min_size: float = 2.0
    # smallest box side in pixels; a narrower box (e.g. a single valid point) grows about its centre, > 0
    square: bool = True
    # crop_boxes: grow each box to a square about its centre, so the square resize keeps the garment's aspect ratio
    # (parts outside the image are zeros). False: the rectangles themselves, stretched to the network's square,
    # which hides lengths in the box's aspect ratio (a short trial on synthetic pant length learned markedly worse)

    def __post_init__(self) -> None:
        for name in ("normal_margin", "neck_margin", "neck_depth"):
            _check_nonneg(name, getattr(self, name))
        _check_positive("neckline_to_shoulder", self.neckline_to_shoulder)
        _check_positive("min_size", self.min_size)
        if not 0.0 < self.neck_fallback <= 1.0:
            raise ValueError(f"neck_fallback must be in (0, 1], got {self.neck_fallback}")


class CropBoxes(NamedTuple):
    """Crop boxes of a batch of instances."""

    boxes: torch.Tensor
    """``(B, 4)`` float, ``x1, y1, x2, y2`` in image pixels."""
    fallback: torch.Tensor
    """``(B,)`` bool: the instance lacked the points its crop needs and got the documented fallback box."""

    @property
    def num_fallback(self) -> int:
        """How many instances fell back (a host sync; call it outside hot loops)."""
        return int(self.fallback.sum())


def _check_nonneg(name: str, value: float) -> None:
    if not value >= 0.0:  # also rejects NaN
        raise ValueError(f"{name} must be >= 0, got {value}")


def _check_positive(name: str, value: float) -> None:
    if not value > 0.0:
        raise ValueError(f"{name} must be > 0, got {value}")


def _check_keypoints(keypoints: torch.Tensor) -> None:
    if not isinstance(keypoints, torch.Tensor) or keypoints.ndim != 3 or keypoints.shape[-1] != 3:
        shape = tuple(keypoints.shape) if isinstance(keypoints, torch.Tensor) else type(keypoints).__name__
        raise ValueError(f"keypoints must be a (B, K, 3) tensor [x, y, visibility or score], got {shape}")
    if not keypoints.is_floating_point():
        raise ValueError(f"keypoints must be a float tensor, got {keypoints.dtype}")


def valid_keypoints(keypoints: torch.Tensor) -> torch.Tensor:
    """``(B, K)`` bool: finite coordinates and third channel ``> 0`` (visibility or score)."""
    return ~missing_mask(keypoints, 0.0)


def image_sizes(
    image_size: int | Sequence[int] | torch.Tensor | None, batch: int, device: torch.device, dtype: torch.dtype
) -> torch.Tensor | None:
    """``(B, 2)`` float ``(height, width)`` per instance from an int (square), an ``(H, W)`` pair or a ``(B, 2)``
    tensor; ``None`` passes through."""
    if image_size is None:
        return None
    if isinstance(image_size, int):
        hw = torch.tensor([[image_size, image_size]], dtype=dtype, device=device)
    else:
        hw = torch.as_tensor(image_size, dtype=dtype, device=device)
        hw = hw[None] if hw.ndim == 1 else hw
    if hw.ndim != 2 or hw.shape[1] != 2 or hw.shape[0] not in (1, batch):
        raise ValueError(f"image_size must be an int, (height, width) or a ({batch}, 2) tensor, got "
                         f"{tuple(hw.shape)}")
    if not bool((hw >= 1).all()):
        raise ValueError(f"image_size must be >= 1 pixel, got {hw.min().item()}")
    return hw.expand(batch, 2)


def _grow_and_clip(boxes: torch.Tensor, min_size: float, hw: torch.Tensor | None) -> torch.Tensor:
    """Grow boxes narrower than ``min_size`` about their centre, then clip to ``(B, 2)`` image sizes."""
    lo, hi = boxes[:, :2], boxes[:, 2:]  # (B, 2) each
    centre, half = 0.5 * (lo + hi), 0.5 * (hi - lo).clamp(min=min_size)
    lo, hi = centre - half, centre + half
    if hw is not None:
        wh = hw.flip(-1)  # (B, 2) as (width, height)
        lo = torch.minimum(lo.clamp(min=0), wh)
        hi = torch.minimum(hi.clamp(min=0), wh)
    return torch.cat([lo, hi], 1)


def closing_boxes(keypoints: torch.Tensor, valid: torch.Tensor, margin: float = 0.0) -> torch.Tensor:
    """``(B, 4)`` boxes ``x1, y1, x2, y2`` closing the ``valid`` ``(B, K)`` bool points of ``(B, K, 2 or 3)``
    ``keypoints``, grown by ``margin`` of their width (height) per side; zeros where an instance has none."""
    # keypoint_boxes closes the points with v > 0: zero the invalid ones (NaN coordinates, scores <= 0) first
    clean = torch.where(valid[..., None], keypoints, torch.zeros_like(keypoints))
    clean = torch.cat([clean[..., :2], valid[..., None].to(clean.dtype)], -1)  # (B, K, 3), v = valid
    return keypoint_boxes(clean, margin)


def _whole_image(hw: torch.Tensor) -> torch.Tensor:
    """``(B, 4)`` boxes ``[0, 0, W, H]``."""
    zeros = torch.zeros_like(hw)
    return torch.cat([zeros, hw.flip(-1)], 1)


def normal_crop(
    keypoints: torch.Tensor,
    *,
    margin: float,
    image_size: int | Sequence[int] | torch.Tensor | None = None,
    min_size: float = CropConfig.min_size,
) -> CropBoxes:
    """Normal-crop: the box closing each instance's valid key points, enlarged by ``margin``.

    Parameters
    ----------
    keypoints : (B, K, 3) float
        ``x, y`` in image pixels and a visibility (COCO's 0 / 1 / 2) or a score; valid points are defined in the
        module docstring. NaN coordinates mark missing predictions.
    margin : float
        Fraction of the key-point box's width (height) added on the left and right (top and bottom), ``>= 0``.
    image_size : int, (H, W) or (B, 2) tensor of (H, W), optional
        Image size(s) in pixels. When given, boxes are clipped to the image, and instances without a valid point
        get the whole image. Required if any instance has no valid point.
    min_size : float
        Smallest box side before clipping, pixels, ``> 0`` (a single valid point gives a ``min_size`` square).

    Returns
    -------
    CropBoxes
        ``boxes`` (B, 4) float and ``fallback`` (B,) bool (no valid point: the whole image).

    Raises
    ------
    ValueError
        Bad shapes or parameters, or an instance without a valid point while ``image_size`` is ``None``.
    """
    _check_keypoints(keypoints)
    _check_nonneg("margin", margin)
    _check_positive("min_size", min_size)
    B = keypoints.shape[0]
    hw = image_sizes(image_size, B, keypoints.device, keypoints.dtype)
    valid = valid_keypoints(keypoints)  # (B, K)
    boxes = _grow_and_clip(closing_boxes(keypoints, valid, margin), min_size, hw)
    fallback = ~valid.any(1)  # (B,)
    if hw is None:
        if B and bool(fallback.any()):
            raise ValueError(f"normal_crop: {int(fallback.sum())} of {B} instances have no valid key point (first: "
                             f"{int(torch.nonzero(fallback)[0])}); pass image_size to fall back to the whole image")
        return CropBoxes(boxes, fallback)
    return CropBoxes(torch.where(fallback[:, None], _whole_image(hw), boxes), fallback)


def _neck_indices(schema: KeypointSchema) -> list[int]:
    if schema.name not in NECK_POINTS:
        raise ValueError(f"neck_crop: schema {schema.name!r} has no neck region; valid schemas: "
                         f"{', '.join(NECK_POINTS)}")
    return [schema.index(n) for n in NECK_POINTS[schema.name]]


def neck_crop(
    keypoints: torch.Tensor,
    schema: str | KeypointSchema = "fashionai",
    *,
    margin: float,
    image_size: int | Sequence[int] | torch.Tensor | None = None,
    normal: CropBoxes | None = None,
    normal_margin: float = CropConfig.normal_margin,
    depth: float = CropConfig.neck_depth,
    neckline_to_shoulder: float = CropConfig.neckline_to_shoulder,
    fallback_fraction: float = CropConfig.neck_fallback,
    min_size: float = CropConfig.min_size,
) -> CropBoxes:
    """Neck-crop: a box about the neckline, ``center_front`` and the shoulders, inside the Normal-crop.

    The construction (scale from the shoulders, else from the neckline; fallback to the top of the Normal-crop)
    is spelled out in the module docstring.

    Parameters
    ----------
    keypoints : (B, K, 3) float
        ``x, y`` in image pixels and a visibility or a score; ``K = schema.num_keypoints``.
    schema : str or KeypointSchema
        Must have an entry in :data:`NECK_POINTS` (``"fashionai"``).
    margin : float
        Added on every side, as a fraction of the neck scale ``s``, ``>= 0``.
    image_size : int, (H, W) or (B, 2) tensor, optional
        As in :func:`normal_crop` (used when ``normal`` is not given).
    normal : CropBoxes, optional
        The instances' Normal-crops; computed with ``normal_margin`` when omitted.
    normal_margin : float
        Margin of the Normal-crop computed here.
    depth : float
        Minimum extent below the top neck point, in units of ``s``, ``>= 0``.
    neckline_to_shoulder : float
        ``s`` as a multiple of the neckline distance when a shoulder is missing, ``> 0``.
    fallback_fraction : float
        Without a scale: the top fraction of the Normal-crop's height, in ``(0, 1]``.
    min_size : float
        Smallest side of the Normal-crop computed here, pixels.

    Returns
    -------
    CropBoxes
        ``boxes`` (B, 4) float inside the Normal-crop; ``fallback`` (B,) bool: no neck scale, the top of the
        Normal-crop was used (an instance without any valid point is one of them: the top of the whole image).
    """
    _check_keypoints(keypoints)
    schema = get_schema(schema)
    if keypoints.shape[1] != schema.num_keypoints:
        raise ValueError(f"keypoints have {keypoints.shape[1]} points, schema {schema.name!r} has "
                         f"{schema.num_keypoints}")
    # CropConfig's checks validate the knobs (the object itself is not needed)
    CropConfig(neck_margin=margin, neck_depth=depth, neckline_to_shoulder=neckline_to_shoulder,
               neck_fallback=fallback_fraction, min_size=min_size)
    if normal is None:
        normal = normal_crop(keypoints, margin=normal_margin, image_size=image_size, min_size=min_size)
    B = keypoints.shape[0]
    if normal.boxes.shape != (B, 4):
        raise ValueError(f"normal.boxes must have shape ({B}, 4), got {tuple(normal.boxes.shape)}")
    idx = _neck_indices(schema)
    pts = keypoints[:, idx]  # (B, 5, 3): neckline L, R, centre, shoulder L, R
    valid = valid_keypoints(pts)  # (B, 5)
    xy = torch.where(valid[..., None], pts[..., :2], torch.zeros_like(pts[..., :2]))  # (B, 5, 2), no NaN
    inf = torch.tensor(float("inf"), dtype=xy.dtype, device=xy.device)
    lo = torch.where(valid[..., None], xy, inf).amin(1)  # (B, 2) closure of the valid neck points
    hi = torch.where(valid[..., None], xy, -inf).amax(1)

    shoulders_ok = valid[:, 3] & valid[:, 4]
    neckline_ok = valid[:, 0] & valid[:, 1]
    s_sh = (xy[:, 3] - xy[:, 4]).norm(dim=-1)  # (B,)
    s_nl = (xy[:, 0] - xy[:, 1]).norm(dim=-1) * neckline_to_shoulder
    s = torch.where(shoulders_ok, s_sh, torch.where(neckline_ok, s_nl, torch.zeros_like(s_sh)))
    cx = torch.where(shoulders_ok, 0.5 * (xy[:, 3, 0] + xy[:, 4, 0]), 0.5 * (xy[:, 0, 0] + xy[:, 1, 0]))
    has_scale = (shoulders_ok | neckline_ok) & (s > 0)
    s = torch.where(has_scale, s, torch.ones_like(s))  # placeholder where the fallback is used

    pad = margin * s
    x1 = torch.minimum(lo[:, 0], cx - 0.5 * s) - pad
    x2 = torch.maximum(hi[:, 0], cx + 0.5 * s) + pad
    y1 = lo[:, 1] - pad
    y2 = torch.maximum(hi[:, 1], lo[:, 1] + depth * s) + pad
    neck = torch.stack([x1, y1, x2, y2], 1)  # (B, 4)

    nb = normal.boxes.to(neck)
    top = torch.cat([nb[:, :3], (nb[:, 1] + fallback_fraction * (nb[:, 3] - nb[:, 1]))[:, None]], 1)
    neck = torch.where(has_scale[:, None], neck, top)
    # intersect with the Normal-crop; x2 >= x1 holds because the neck points lie in it (a clipped Normal-crop
    # may exclude points outside the image, hence the final clamp)
    lo_b = torch.maximum(neck[:, :2], nb[:, :2])
    hi_b = torch.minimum(neck[:, 2:], nb[:, 2:])
    hi_b = torch.maximum(hi_b, lo_b)
    return CropBoxes(torch.cat([lo_b, hi_b], 1), ~has_scale)


def crop_boxes(
    keypoints: torch.Tensor,
    kind: Literal["full", "normal", "neck"],
    image_size: int | Sequence[int] | torch.Tensor,
    config: CropConfig | None = None,
    schema: str | KeypointSchema = "fashionai",
) -> CropBoxes:
    """The boxes a recognition network sees: the whole image, the Normal-crop or the Neck-crop.

    Parameters
    ----------
    keypoints : (B, K, 3) float, image pixels.
    kind : {"full", "normal", "neck"}
    image_size : int, (H, W) or (B, 2) tensor of (H, W); required (fallbacks use the whole image).
    config : CropConfig, optional (default ``CropConfig()``)
    schema : str or KeypointSchema, only for ``"neck"``.

    Returns
    -------
    CropBoxes; for ``"full"`` no instance is flagged. With ``config.square`` the boxes are :func:`square_boxes`
    of the crops (the Normal-crop's square may then reach outside the image).
    """
    if kind not in CROP_KINDS:
        raise ValueError(f"kind must be one of {CROP_KINDS}, got {kind!r}")
    config = config or CropConfig()
    _check_keypoints(keypoints)
    B = keypoints.shape[0]
    hw = image_sizes(image_size, B, keypoints.device, keypoints.dtype)
    if hw is None:
        raise ValueError("crop_boxes: image_size is required")
    if kind == "full":
        out = CropBoxes(_whole_image(hw), torch.zeros(B, dtype=torch.bool, device=keypoints.device))
    else:
        out = normal_crop(keypoints, margin=config.normal_margin, image_size=hw, min_size=config.min_size)
        if kind == "neck":
            out = neck_crop(keypoints, schema, margin=config.neck_margin, normal=out, depth=config.neck_depth,
                            neckline_to_shoulder=config.neckline_to_shoulder, fallback_fraction=config.neck_fallback,
                            min_size=config.min_size)
    return CropBoxes(square_boxes(out.boxes), out.fallback) if config.square else out


def square_boxes(boxes: torch.Tensor) -> torch.Tensor:
    """Grow each box to the square of its longer side about its centre (not clipped to the image): the
    :func:`aspect_boxes` of a square crop.

    Parameters
    ----------
    boxes : (B, 4) float, ``x1, y1, x2, y2`` pixels.

    Returns
    -------
    (B, 4) float squares containing the boxes.
    """
    return aspect_boxes(boxes, 1)


def aspect_boxes(
    boxes: torch.Tensor, size: int | Sequence[int], *, scale: float = 1.0, min_side: float | None = None
) -> torch.Tensor:
    """Grow each box about its centre to the aspect ratio of a ``size`` crop: enlarged by ``scale``, then widened or
    heightened (never shrunk) so that resizing it to ``size`` keeps the content's aspect ratio (not clipped to the
    image). CPN's top-down crops are these boxes of the detector's boxes (``scale = box_scale``).

    Parameters
    ----------
    boxes : (B, 4) float, ``x1, y1, x2, y2`` image pixels.
    size : int or (h, w), the crop the box will be resized to (an int: a square).
    scale : float, factor on the box's width and height before fitting the aspect ratio (``>= 1`` enlarges).
    min_side : float, optional, pixels: a side shorter than this counts as this long (before ``scale``).

    Returns
    -------
    (B, 4) float, ``x1, y1, x2, y2`` image pixels, with ``(x2 - x1) / (y2 - y1) == w / h``.
    """
    h_in, w_in = _size_hw(size)
    centre = 0.5 * (boxes[:, :2] + boxes[:, 2:])  # (B, 2)
    side = boxes[:, 2:] - boxes[:, :2]  # (B, 2) as (w, h)
    if min_side is not None:
        side = side.clamp(min=min_side)
    side = side * scale
    aspect = w_in / h_in
    h = torch.maximum(side[:, 1], side[:, 0] / aspect)  # (B,)
    half = 0.5 * torch.stack([h * aspect, h], 1)  # (B, 2)
    return torch.cat([centre - half, centre + half], 1)


def fit_boxes(boxes: torch.Tensor, image_size: int | Sequence[int] | torch.Tensor) -> torch.Tensor:
    """Shift each box, keeping its size, to lie inside its image wherever it fits.

    Along each axis a side ``s`` no longer than the image's ``L`` is moved into ``[0, L]``; a longer side is moved
    to cover ``[0, L]`` whole, staying as near its place as it can (its overhang stays on the side it was on). Both
    are ``x1' = clamp(x1, min(0, L - s), max(0, L - s))``. The part of a box outside its image is then the least any
    box of that size can have: ``s - min(s, L)`` per axis. A box already inside does not move, and a box that
    contained points of the image still contains them.

    Parameters
    ----------
    boxes : (B, 4) float, ``x1, y1, x2, y2`` image pixels.
    image_size : int, (H, W) or (B, 2) tensor of (H, W), pixels.

    Returns
    -------
    (B, 4) float, the shifted boxes (same sizes).
    """
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes must have shape (B, 4), got {tuple(boxes.shape)}")
    hw = image_sizes(image_size, boxes.shape[0], boxes.device, boxes.dtype)
    extent = hw.flip(-1)  # (B, 2) as (width, height)
    lo, side = boxes[:, :2], boxes[:, 2:] - boxes[:, :2]  # (B, 2) each
    room = extent - side  # (B, 2), negative where the box is larger than the image
    lo = torch.maximum(torch.minimum(lo, room.clamp(min=0)), room.clamp(max=0))
    return torch.cat([lo, lo + side], 1)


def second_scale_boxes(
    keypoints: torch.Tensor,
    present: torch.Tensor,
    image_size: int | Sequence[int] | torch.Tensor,
    *,
    margin: float,
    square: bool = True,
    min_size: float = 4.0,
) -> CropBoxes:
    """The second scale's crop (Alg. 2, step 9): the rectangle closing the present points, grown by ``margin``,
    made square (or left as the paper's rectangle), then shifted inside the image where it fits (:func:`fit_boxes`).

    Parameters
    ----------
    keypoints : (B, K, 3) float, image pixels (the refined first scale).
    present : (B, K) bool, the points the rectangle closes.
    image_size : int, (H, W) or (B, 2) tensor of (H, W): each instance's image.
    margin : float
        Fraction of the rectangle's width (height) added on the left and right (top and bottom), ``>= 0``; 0 is the
        paper's literal "minimum rectangle closure".
    square : bool
        Grow the rectangle to the square of its longer side about its centre (the garment keeps its aspect ratio when
        the crop is resized to a square input); ``False`` keeps the rectangle.
    min_size : float
        Smallest side before squaring, pixels, ``> 0``.

    Returns
    -------
    CropBoxes
        ``boxes`` (B, 4) float; ``fallback`` (B,) bool: no present point, the box is the whole image (its square).
    """
    _check_keypoints(keypoints)
    _check_nonneg("margin", margin)
    _check_positive("min_size", min_size)
    if present.shape != keypoints.shape[:2] or present.dtype != torch.bool:
        raise ValueError(f"present must be a {tuple(keypoints.shape[:2])} bool tensor, got "
                         f"{tuple(present.shape)} {present.dtype}")
    B = keypoints.shape[0]
    hw = image_sizes(image_size, B, keypoints.device, keypoints.dtype)
    valid = present & torch.isfinite(keypoints[..., :2]).all(-1)
    fallback = ~valid.any(1)  # (B,)
    boxes = torch.where(fallback[:, None], _whole_image(hw), _grow_and_clip(closing_boxes(keypoints, valid, margin),
                                                                            min_size, None))
    if square:
        boxes = square_boxes(boxes)
    return CropBoxes(fit_boxes(boxes, hw), fallback)


def crop_framing(keypoints: torch.Tensor, present: torch.Tensor, boxes: torch.Tensor,
                 image_size: int | Sequence[int] | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """How a crop frames its instance: the share of the crop its points span, and the share that is padding.

    The second scale's detector was trained on whole images, where a garment's key points span 0.3 to 0.9 of the
    frame (real-data-facts.md); a crop that the points fill edge to edge, or that is mostly padding, is outside
    that distribution.

    Parameters
    ----------
    keypoints : (B, K, 3) float, image pixels; present : (B, K) bool, the points that count.
    boxes : (B, 4) float, the crops ``x1, y1, x2, y2`` in image pixels (e.g. :func:`second_scale_boxes`).
    image_size : int, (H, W) or (B, 2) tensor of (H, W).

    Returns
    -------
    extent : (B,) float, the longer side of the box closing the present points over the crop's longer side (NaN
        without present points); padding : (B,) float in [0, 1], the fraction of the crop's area outside its image
        (what edge replication fills).
    """
    _check_keypoints(keypoints)
    if boxes.shape != (keypoints.shape[0], 4):
        raise ValueError(f"boxes must have shape ({keypoints.shape[0]}, 4), got {tuple(boxes.shape)}")
    hw = image_sizes(image_size, keypoints.shape[0], keypoints.device, keypoints.dtype)
    valid = present & torch.isfinite(keypoints[..., :2]).all(-1)
    closing = closing_boxes(keypoints, valid)
    side = (boxes[:, 2:] - boxes[:, :2]).clamp(min=1e-9)  # (B, 2)
    extent = (closing[:, 2:] - closing[:, :2]).amax(1) / side.amax(1)
    extent = torch.where(valid.any(1), extent, torch.full_like(extent, float("nan")))
    inside = (torch.minimum(boxes[:, 2:], hw.flip(-1)) - boxes[:, :2].clamp(min=0)).clamp(min=0)  # (B, 2)
    padding = 1 - inside.prod(1) / side.prod(1)
    return extent, padding
