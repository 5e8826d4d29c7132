"""Cascaded Pyramid Network (CPN), the top-down baseline of the paper's Table 1.

Chen et al., "Cascaded Pyramid Network for Multi-Person Pose Estimation", CVPR 2018. Paper (ours), Table 1: CPN
is run "without ground truth bounding boxes on coco2017 for fair[ness]": it estimates key points inside the boxes
of a detector (:class:`fashion_lib.models.detector.TopDownDetector`). The network:

- **GlobalNet**: a ResNet trunk's stages C2-C5 (strides 4-32) merged top-down into a feature pyramid (1x1
  laterals, upsample + 1x1 conv + sum); each level predicts ``K`` heat maps (1x1 conv, 3x3 conv), upsampled to
  the output size, each with an L2 loss on Gaussian targets, the Gaussian narrower at finer levels.
- **RefineNet**: level ``i`` (0 finest) passes ``i`` bottleneck blocks, is upsampled to the output size; the
  levels are concatenated, one bottleneck and a 3x3 conv give the final heat maps, trained with an L2 loss and
  online hard key-point mining (OHKM): per instance only the ``top_m`` key points with the largest loss count.

Top-down crops, with the library's crop geometry (:mod:`fashion_lib.crops`). Each instance's box is enlarged by
``box_scale`` about its centre, widened or heightened to the input's aspect ratio
(:func:`~fashion_lib.crops.aspect_boxes`) and cut out with ``torchvision.ops.roi_align`` (``aligned=True``) to
``input_size`` (:func:`~fashion_lib.crops.crop_and_resize`). Crop pixel ``(u, v)`` (continuous) is image pixel
``(x1 + u * bw / W, y1 + v * bh / H)`` (:func:`~fashion_lib.crops.points_to_crop` and its inverse), exactly, in the
library's continuous-pixel convention. Heat-map pixel ``(a, b)`` is crop pixel ``(a * stride, b * stride)``.

Training-time box jitter (random shift and scale of the ground-truth box) is drawn from a counter-based hash of
``(config.jitter_seed, step, image key, instance index)`` (:func:`hash_uniform`), where ``step`` is a buffer of the
model (in its state dict, so a resumed run continues the same sequence) counting training forwards, and the image
key is the target's ``image_id`` (position in the batch when absent). Jitter therefore neither touches nor depends
on the global torch RNG, and an instance gets the same jitter however a batch is split across processes.
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models._utils import IntermediateLayerGetter

from fashion_lib.crops import aspect_boxes, crop_and_resize, points_to_crop
from fashion_lib.keypoints import get_schema
from fashion_lib.models.keypoint_rcnn import RESNETS, build_resnet, resnet_stage_channels

__all__ = [
    "CPNConfig",
    "CPN",
    "build_cpn",
    "gaussian_heatmaps",
    "decode_heatmaps",
    "ohkm_loss",
    "jitter_boxes",
    "hash_uniform",
]

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class CPNConfig:
    """A CPN's architecture, crops, targets and losses. Defaults are the CPN paper's COCO ResNet-50 256 x 192."""

    schema: str = "coco"  # key-point schema, "fashionai" (24 points) or "coco" (17 points)
    backbone: str = "resnet50"  # trunk, a key of fashion_lib.models.keypoint_rcnn.RESNETS
    input_size: tuple[int, int] = (256, 192)  # (height, width) of each instance crop, pixels
    heatmap_stride: int = 4  # crop pixels per heat-map pixel; 1, 2 or 4 (GlobalNet's finest level is stride 4)
    channels: int = 256  # channels of GlobalNet's pyramid levels (and of RefineNet's blocks' outputs)
    refine_channels: int = 128  # bottleneck width of RefineNet's blocks
    sigmas: tuple[float, float, float, float] = (1.7, 2.0, 2.3, 2.9)  # target Gaussian std (heat-map px) per
    # GlobalNet level, finest (stride 4) to coarsest; RefineNet's target uses the finest (CPN: kernels 7-15 at 64x48)
    top_m: int = 8  # OHKM: key points per instance that count in RefineNet's loss (CPN: 8 of 17)
    box_scale: float = 1.25  # crop = box enlarged by this factor about its centre, then fitted to the aspect ratio
    jitter_shift: float = 0.1  # training: box centre shifted by U(-s, s) times its width (height)
    jitter_scale: float = 0.2  # training: box size multiplied by U(1 - s, 1 + s)
    jitter_seed: int = 0  # seeds the training jitter together with the step counter (see the module docstring)
    sampling_ratio: int = 2  # roi_align samples per output pixel and axis (averaged; anti-aliases large boxes)
    frozen_norm: bool = False  # True: FrozenBatchNorm2d in the trunk (only with weights_path); False: trainable BN
    weights_path: str | None = None  # local ResNet classification state dict for the trunk; never downloaded
    image_mean: tuple[float, float, float] = _IMAGENET_MEAN  # per-channel mean subtracted from [0, 1] images
    image_std: tuple[float, float, float] = _IMAGENET_STD  # per-channel std dividing them

    def __post_init__(self) -> None:
        get_schema(self.schema)
        if self.backbone not in RESNETS:
            raise ValueError(f"backbone must be one of {', '.join(RESNETS)}, got {self.backbone!r}")
        if self.heatmap_stride not in (1, 2, 4):
            raise ValueError(f"heatmap_stride must be 1, 2 or 4, got {self.heatmap_stride!r}")
        h, w = self.input_size
        if not (isinstance(h, int) and isinstance(w, int) and h >= 32 and w >= 32 and h % 32 == 0 and w % 32 == 0):
            raise ValueError(f"input_size must be (height, width), multiples of 32 and >= 32, got {self.input_size}")
        if len(self.sigmas) != 4 or any(not s > 0 for s in self.sigmas):
            raise ValueError(f"sigmas must be 4 positive numbers (finest to coarsest level), got {self.sigmas}")
        k = get_schema(self.schema).num_keypoints
        if not 1 <= self.top_m <= k:
            raise ValueError(f"top_m must be in [1, {k}] for the {self.schema} schema, got {self.top_m}")
        for name in ("channels", "refine_channels", "sampling_ratio"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if not self.box_scale >= 1.0:
            raise ValueError(f"box_scale must be >= 1, got {self.box_scale}")
        if not 0.0 <= self.jitter_shift <= 0.5:
            raise ValueError(f"jitter_shift must be in [0, 0.5], got {self.jitter_shift}")
        if not 0.0 <= self.jitter_scale < 1.0:
            raise ValueError(f"jitter_scale must be in [0, 1), got {self.jitter_scale}")
        if self.frozen_norm and self.weights_path is None:
            raise ValueError("frozen_norm=True needs pretrained weights_path: a network trained from scratch needs "
                             "trainable normalisation")

    @property
    def num_keypoints(self) -> int:
        """``K`` of the schema."""
        return get_schema(self.schema).num_keypoints

    @property
    def heatmap_size(self) -> tuple[int, int]:
        """``(h, w)`` of the output heat maps: the input size divided by the stride."""
        return self.input_size[0] // self.heatmap_stride, self.input_size[1] // self.heatmap_stride

    @classmethod
    def cpu(cls, schema: str, **overrides) -> CPNConfig:
        """A CPN that trains on a 2-core CPU in minutes: ResNet-18, 64 x 64 crops (FashionAI garments are about
        as wide as tall) or 96 x 64 (COCO persons), 128 / 32 channels, stride-4 heat maps.

        64-px garment crops learn faster per step than 96-px ones, not only per second: after 300 steps of 8
        synthetic garments (lr 3e-3, one seed, ground-truth boxes) NE was 0.22 at 64 px against 0.32-0.34 at 96 px,
        and 0.17 after 600 steps; at 21 against 13 images/s on one loaded core.

        The Gaussians are wider, relative to the map, than the CPN paper's: trained from scratch for 150 steps of
        16 synthetic garments, NE (ground-truth boxes) reached 0.92 with sigmas (1.0, 1.25, 1.5, 2.0), 0.34 with
        (1.5, 2.0, 2.5, 3.0) and 0.35 with (2.0, 2.5, 3.0, 4.0) (one seed each). ``overrides`` replace fields."""
        name = get_schema(schema).name
        base = cls(schema=name, backbone="resnet18", input_size=(64, 64) if name == "fashionai" else (96, 64),
                   channels=128, refine_channels=32, sigmas=(1.5, 2.0, 2.5, 3.0))
        return dataclasses.replace(base, **overrides)

    @classmethod
    def gpu(cls, schema: str, **overrides) -> CPNConfig:
        """The CPN paper's ResNet-50 at 256 x 192 (height x width), 256 / 128 channels, OHKM top 8 (of 17; 8 of
        24 for FashionAI). ``overrides`` replace fields."""
        return dataclasses.replace(cls(schema=get_schema(schema).name), **overrides)


# ---------------------------------------------------------------------------------------------------------------
# Training-time box jitter (the crop geometry itself is fashion_lib.crops')
# ---------------------------------------------------------------------------------------------------------------


def jitter_boxes(boxes: torch.Tensor, uniforms: torch.Tensor, shift: float, scale: float) -> torch.Tensor:
    """Shift and scale boxes by given uniform draws (training augmentation).

    Parameters
    ----------
    boxes : (M, 4) float, x1, y1, x2, y2 pixels.
    uniforms : (M, 3) float in [0, 1)
        Draws for the x shift, the y shift and the scale.
    shift : float
        The centre moves by ``(2 u - 1) * shift`` times the box's width (height).
    scale : float
        Width and height are multiplied by ``1 + (2 u - 1) * scale``.

    Returns
    -------
    (M, 4) float.
    """
    centre = 0.5 * (boxes[:, :2] + boxes[:, 2:])
    size = boxes[:, 2:] - boxes[:, :2]  # (M, 2)
    centre = centre + (2 * uniforms[:, :2] - 1) * shift * size
    half = 0.5 * size * (1 + (2 * uniforms[:, 2:] - 1) * scale)
    return torch.cat([centre - half, centre + half], 1)


# ---------------------------------------------------------------------------------------------------------------
# Heat maps: Gaussian targets, sub-pixel decoding, OHKM
# ---------------------------------------------------------------------------------------------------------------


def gaussian_heatmaps(xy: torch.Tensor, size: tuple[int, int], sigma: float) -> torch.Tensor:
    """Unnormalised Gaussian heat maps (peak 1 at the exact, sub-pixel point).

    Parameters
    ----------
    xy : (M, K, 2) float
        Points in continuous heat-map pixels (the centre of heat-map pixel ``(i, j)`` is ``(j + 0.5, i + 0.5)``).
    size : (h, w) of the maps.
    sigma : float
        Standard deviation in heat-map pixels.

    Returns
    -------
    (M, K, h, w) float: ``exp(-|c - p|^2 / (2 sigma^2))`` at each pixel centre ``c``.
    """
    h, w = size
    ys = torch.arange(h, dtype=xy.dtype, device=xy.device) + 0.5  # (h,)
    xs = torch.arange(w, dtype=xy.dtype, device=xy.device) + 0.5  # (w,)
    gx = torch.exp(-((xs - xy[..., :1]) ** 2) / (2 * sigma**2))  # (M, K, w)
    gy = torch.exp(-((ys - xy[..., 1:]) ** 2) / (2 * sigma**2))  # (M, K, h)
    return gy[..., :, None] * gx[..., None, :]  # (M, K, h, w)


def decode_heatmaps(heatmaps: torch.Tensor, eps: float = 1e-10) -> tuple[torch.Tensor, torch.Tensor]:
    """Sub-pixel peaks of heat maps: the arg-max refined by a Newton step on the log heat map.

    The log of a Gaussian is a quadratic, so one Newton step from the arg-max pixel, with gradient and Hessian by
    central differences of ``log(max(h, eps))``, recovers a Gaussian's centre exactly (the distribution-aware
    decoding of Zhang et al., CVPR 2020, without its blur). Where the Hessian is not negative definite (flat or
    noisy maps), or the step exceeds one pixel, the pixel centre is kept.

    Parameters
    ----------
    heatmaps : (M, K, h, w) float
    eps : float
        Floor before the log.

    Returns
    -------
    xy : (M, K, 2) float, continuous heat-map pixels.
    peak : (M, K) float, the heat map's maximum value.
    """
    m, k, h, w = heatmaps.shape
    flat = heatmaps.reshape(m, k, h * w)
    peak, idx = flat.max(-1)  # (M, K)
    iy, ix = idx // w, idx % w
    logs = F.pad(heatmaps.clamp(min=eps).log().reshape(m * k, 1, h, w), (1, 1, 1, 1), mode="replicate")
    logs = logs.reshape(m, k, (h + 2) * (w + 2))

    def at(dy: int, dx: int) -> torch.Tensor:  # log value at (iy + dy, ix + dx), via the padded map
        return logs.gather(-1, ((iy + 1 + dy) * (w + 2) + ix + 1 + dx)[..., None])[..., 0]  # (M, K)

    c = at(0, 0)
    gx = 0.5 * (at(0, 1) - at(0, -1))
    gy = 0.5 * (at(1, 0) - at(-1, 0))
    hxx = at(0, 1) - 2 * c + at(0, -1)
    hyy = at(1, 0) - 2 * c + at(-1, 0)
    hxy = 0.25 * (at(1, 1) - at(1, -1) - at(-1, 1) + at(-1, -1))
    det = hxx * hyy - hxy**2
    ok = (hxx < 0) & (det > 0)
    safe = torch.where(ok, det, torch.ones_like(det))
    ox = -(hyy * gx - hxy * gy) / safe  # -H^-1 g, (M, K)
    oy = -(hxx * gy - hxy * gx) / safe
    ok &= (ox.abs() <= 1) & (oy.abs() <= 1)
    ox = torch.where(ok, ox, torch.zeros_like(ox))
    oy = torch.where(ok, oy, torch.zeros_like(oy))
    xy = torch.stack([ix.to(heatmaps.dtype) + 0.5 + ox, iy.to(heatmaps.dtype) + 0.5 + oy], -1)
    return xy, peak


def ohkm_loss(point_losses: torch.Tensor, valid: torch.Tensor, top_m: int) -> torch.Tensor:
    """Online hard key-point mining: per instance, the mean loss of its ``top_m`` worst supervised key points.

    Parameters
    ----------
    point_losses : (M, K) float, each key point's loss.
    valid : (M, K) bool, supervised key points.
    top_m : int
        Points that count per instance; an instance with fewer supervised points averages all of them.

    Returns
    -------
    Scalar: the mean over instances with a supervised point (``0`` connected to the graph when none has).
    """
    masked = torch.where(valid, point_losses, torch.full_like(point_losses, -1.0))  # losses are >= 0
    top = masked.topk(min(top_m, point_losses.shape[1]), dim=1).values  # (M, top_m)
    counted = top >= 0
    per_instance = torch.where(counted, top, torch.zeros_like(top)).sum(1) / counted.sum(1).clamp(min=1)  # (M,)
    has = counted.any(1)
    if not bool(has.any()):
        return point_losses.sum() * 0
    return per_instance[has].mean()


def hash_uniform(keys: torch.Tensor) -> torch.Tensor:
    """Uniform numbers in [0, 1) that are a fixed function of integer keys (a splitmix64 hash).

    Parameters
    ----------
    keys : (..., n) int64
        Each row of ``n`` integers gives one draw; the same row gives the same number on every device and run.

    Returns
    -------
    (...) float64 in [0, 1).
    """
    mask = (1 << 64) - 1

    def signed(v: int) -> int:  # a uint64 constant as the int64 with the same bits
        return v - (1 << 64) if v >= 1 << 63 else v

    def shr(x: torch.Tensor, s: int) -> torch.Tensor:  # logical right shift on int64
        return (x >> s) & ((1 << (64 - s)) - 1)

    x = torch.zeros(keys.shape[:-1], dtype=torch.int64, device=keys.device)
    for j in range(keys.shape[-1]):
        x = (x + keys[..., j].long()) * signed(0x9E3779B97F4A7C15 & mask)  # wraps modulo 2^64
        x = x ^ shr(x, 30)
        x = x * signed(0xBF58476D1CE4E5B9)
        x = x ^ shr(x, 27)
        x = x * signed(0x94D049BB133111EB)
        x = x ^ shr(x, 31)
    return shr(x, 11).double() / float(1 << 53)


# ---------------------------------------------------------------------------------------------------------------
# The network
# ---------------------------------------------------------------------------------------------------------------


def _conv_bn_relu(cin: int, cout: int, k: int, relu: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, padding=k // 2, bias=False), nn.BatchNorm2d(cout)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class Bottleneck(nn.Module):
    """ResNet bottleneck: 1x1 (``width``) -> 3x3 (``width``) -> 1x1 (``cout``), plus a (projected) shortcut."""

    def __init__(self, cin: int, width: int, cout: int) -> None:
        super().__init__()
        self.body = nn.Sequential(_conv_bn_relu(cin, width, 1), _conv_bn_relu(width, width, 3),
                                  _conv_bn_relu(width, cout, 1, relu=False))
        self.shortcut = nn.Identity() if cin == cout else _conv_bn_relu(cin, cout, 1, relu=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + self.shortcut(x))


class GlobalNet(nn.Module):
    """Feature pyramid over C2-C5 with one heat-map head per level (CPN, section 3.1)."""

    def __init__(self, in_channels: Sequence[int], channels: int, num_keypoints: int) -> None:
        super().__init__()
        self.laterals = nn.ModuleList(_conv_bn_relu(c, channels, 1) for c in in_channels)
        self.smooth = nn.ModuleList(_conv_bn_relu(channels, channels, 1, relu=False) for _ in in_channels[:-1])
        self.heads = nn.ModuleList(
            nn.Sequential(_conv_bn_relu(channels, channels, 1), nn.Conv2d(channels, num_keypoints, 3, padding=1))
            for _ in in_channels
        )

    def forward(self, features: Sequence[torch.Tensor], out_size: tuple[int, int]) -> tuple[list, list]:
        """``features`` C2..C5 (finest first) -> (pyramid levels, finest first; heat maps (M, K, h, w) per level)."""
        levels: list[torch.Tensor] = [None] * len(features)  # type: ignore[list-item]
        top = self.laterals[-1](features[-1])
        levels[-1] = top
        for i in range(len(features) - 2, -1, -1):
            lateral = self.laterals[i](features[i])
            up = F.interpolate(top, size=lateral.shape[-2:], mode="bilinear", align_corners=False)
            top = lateral + self.smooth[i](up)
            levels[i] = top
        heatmaps = [F.interpolate(head(level), size=out_size, mode="bilinear", align_corners=False)
                    for head, level in zip(self.heads, levels, strict=True)]
        return levels, heatmaps


class RefineNet(nn.Module):
    """Level ``i`` (0 finest) through ``i`` bottlenecks, upsampled, concatenated, one bottleneck, heat maps."""

    def __init__(self, channels: int, width: int, num_levels: int, num_keypoints: int) -> None:
        super().__init__()
        self.cascade = nn.ModuleList(
            nn.Sequential(*[Bottleneck(channels, width, channels) for _ in range(i)]) for i in range(num_levels)
        )
        self.final = nn.Sequential(Bottleneck(channels * num_levels, width, channels),
                                   nn.Conv2d(channels, num_keypoints, 3, padding=1))

    def forward(self, levels: Sequence[torch.Tensor], out_size: tuple[int, int]) -> torch.Tensor:
        """Pyramid levels (finest first) -> (M, K, h, w) heat maps."""
        up = [F.interpolate(block(level), size=out_size, mode="bilinear", align_corners=False)
              if level.shape[-2:] != out_size else block(level)
              for block, level in zip(self.cascade, levels, strict=True)]
        return self.final(torch.cat(up, 1))  # (M, num_levels * C, h, w) -> (M, K, h, w)


class CPN(nn.Module):
    """Cascaded Pyramid Network on instance crops; see the module docstring.

    Training (``model.train()``): ``model(images, targets) -> {"loss_global": ..., "loss_refine": ...}``, the
    engine's convention. ``images`` is a list of (3, H, W) float in [0, 1]; each target has ``boxes`` (N, 4),
    ``keypoints`` (N, K, 3) (v > 0 supervised), optional ``iscrowd`` (N,) and ``image_id``. Instances without a
    labelled point and crowd regions are skipped. Each call advances the ``step`` buffer.

    Inference (``model.eval()``): ``model(images, targets)`` with each target giving ``boxes`` (N, 4) (optional
    ``labels`` (N,) and ``scores`` (N,)) returns per image ``{"boxes", "scores", "labels", "keypoints"}`` in the
    shared format of :mod:`fashion_lib.models.detector`: ``keypoints`` (N, K, 3) x, y image pixels and the
    RefineNet heat map's peak value clamped to [0, 1] as confidence; ``scores`` the given ones, else the mean
    key-point confidence; ``labels`` the given ones, else 1.
    """

    def __init__(self, config: CPNConfig) -> None:
        super().__init__()
        self.config = config
        trunk = build_resnet(config.backbone, frozen_norm=config.frozen_norm, weights_path=config.weights_path)
        stage_channels = resnet_stage_channels(trunk)
        self.body = IntermediateLayerGetter(trunk, return_layers={f"layer{i}": str(i - 1) for i in range(1, 5)})
        k = config.num_keypoints
        self.global_net = GlobalNet(stage_channels, config.channels, k)
        self.refine_net = RefineNet(config.channels, config.refine_channels, 4, k)
        self.register_buffer("step", torch.zeros((), dtype=torch.long))  # training forwards so far (jitter key)
        self.register_buffer("mean", torch.tensor(config.image_mean).reshape(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(config.image_std).reshape(1, 3, 1, 1), persistent=False)

    def forward_heatmaps(self, crops: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """(M, 3, H, W) normalised crops -> (GlobalNet heat maps per level, finest first; RefineNet heat maps),
        each (M, K, h, w)."""
        features = list(self.body(crops).values())  # C2..C5, strides 4..32
        out_size = self.config.heatmap_size
        levels, global_maps = self.global_net(features, out_size)
        return global_maps, self.refine_net(levels, out_size)

    def _crops(self, images: Sequence[torch.Tensor], image_index: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        crops = crop_and_resize(images, boxes, self.config.input_size, image_index=image_index,
                                sampling_ratio=self.config.sampling_ratio).images
        return (crops - self.mean) / self.std

    def forward(self, images: Sequence[torch.Tensor], targets: Sequence[dict] | None = None):
        if targets is None:
            raise ValueError("CPN needs targets: ground truth in training, boxes ({'boxes': (N, 4)}) at inference")
        if len(targets) != len(images):
            raise ValueError(f"got {len(images)} images but {len(targets)} targets")
        if self.training:
            return self._losses(images, targets)
        return self._predict(images, targets)

    def _losses(self, images: Sequence[torch.Tensor], targets: Sequence[dict]) -> dict[str, torch.Tensor]:
        cfg = self.config
        device = images[0].device
        k = cfg.num_keypoints
        boxes, keypoints, image_index, keys = [], [], [], []
        for i, t in enumerate(targets):  # over images: gather their instances into flat tensors
            kp = torch.as_tensor(t["keypoints"], device=device).float().reshape(-1, k, 3)
            n = kp.shape[0]
            crowd = torch.as_tensor(t.get("iscrowd", torch.zeros(n)), device=device).reshape(n) != 0
            keep = (kp[..., 2] > 0).any(1) & ~crowd  # (n,)
            boxes.append(torch.as_tensor(t["boxes"], device=device).float().reshape(n, 4)[keep])
            keypoints.append(kp[keep])
            image_index.append(torch.full((n,), i, device=device)[keep])
            keys.append(torch.stack([torch.full((n,), _image_key(t, i)), torch.arange(n)], 1)[keep.cpu()])
        boxes, keypoints = torch.cat(boxes), torch.cat(keypoints)  # (M, 4), (M, K, 3)
        image_index, keys = torch.cat(image_index), torch.cat(keys)  # (M,), (M, 2)
        step = self.step.clone()
        self.step += 1
        if boxes.shape[0] == 0:
            zero = sum(p.sum() for p in self.parameters() if p.requires_grad) * 0.0
            return {"loss_global": zero, "loss_refine": zero.clone()}
        draws = torch.arange(3)
        full_keys = torch.cat([torch.tensor([[cfg.jitter_seed, int(step)]]).expand(len(keys), 2), keys], 1)  # (M, 4)
        full_keys = torch.cat([full_keys[:, None].expand(-1, 3, -1), draws[None, :, None].expand(len(keys), 3, 1)],
                              -1)  # (M, 3, 5): one key per draw
        uniforms = hash_uniform(full_keys).to(device=device, dtype=boxes.dtype)  # (M, 3)
        jittered = jitter_boxes(boxes, uniforms, cfg.jitter_shift, cfg.jitter_scale)
        rects = aspect_boxes(jittered, cfg.input_size, scale=cfg.box_scale, min_side=1.0)  # (M, 4)
        global_maps, refine_maps = self.forward_heatmaps(self._crops(images, image_index, rects))

        xy = points_to_crop(keypoints[..., :2], rects, cfg.input_size)  # (M, K, 2) crop pixels
        h_in, w_in = cfg.input_size
        inside = (xy[..., 0] >= 0) & (xy[..., 0] < w_in) & (xy[..., 1] >= 0) & (xy[..., 1] < h_in)
        valid = (keypoints[..., 2] > 0) & inside  # (M, K)
        xy_hm = xy / cfg.heatmap_stride
        size = cfg.heatmap_size
        loss_global = global_maps[0].new_zeros(())
        n_valid = valid.sum().clamp(min=1)
        for maps, sigma in zip(global_maps, cfg.sigmas, strict=True):
            per_point = _l2_per_point(maps, gaussian_heatmaps(xy_hm, size, sigma))  # (M, K)
            loss_global = loss_global + torch.where(valid, per_point, torch.zeros_like(per_point)).sum() / n_valid
        refine_point = _l2_per_point(refine_maps, gaussian_heatmaps(xy_hm, size, cfg.sigmas[0]))
        return {"loss_global": loss_global, "loss_refine": ohkm_loss(refine_point, valid, cfg.top_m)}

    @torch.no_grad()
    def _predict(self, images: Sequence[torch.Tensor], targets: Sequence[dict]) -> list[dict]:
        cfg = self.config
        device = images[0].device
        counts = [len(t["boxes"]) for t in targets]
        boxes = torch.cat([torch.as_tensor(t["boxes"], device=device).float().reshape(-1, 4) for t in targets])
        image_index = torch.repeat_interleave(torch.arange(len(images), device=device),
                                              torch.tensor(counts, device=device))
        k = cfg.num_keypoints
        if boxes.shape[0]:
            rects = aspect_boxes(boxes, cfg.input_size, scale=cfg.box_scale, min_side=1.0)  # (M, 4)
            _, refine_maps = self.forward_heatmaps(self._crops(images, image_index, rects))
            xy_hm, peak = decode_heatmaps(refine_maps.float())
            xy = _crop_to_image(xy_hm * cfg.heatmap_stride, rects, cfg.input_size)  # (M, K, 2)
            keypoints = torch.cat([xy, peak.clamp(0, 1)[..., None]], -1)  # (M, K, 3)
        else:
            keypoints = boxes.new_zeros(0, k, 3)
        out = []
        for t, kp, bx in zip(targets, keypoints.split(counts), boxes.split(counts), strict=True):
            scores, labels = t.get("scores"), t.get("labels")
            scores = kp[..., 2].mean(1) if scores is None else torch.as_tensor(scores, device=device).float()
            if labels is None:
                labels = torch.ones(len(bx), dtype=torch.long, device=device)
            out.append({"boxes": bx, "scores": scores, "labels": torch.as_tensor(labels, device=device).long(),
                        "keypoints": kp})
        return out


def _image_key(target: dict, position: int) -> int:
    """An integer naming the image: its ``image_id`` (an int, or the CRC32 of a string id), else its position."""
    image_id = target.get("image_id")
    if image_id is None:
        return position
    if isinstance(image_id, torch.Tensor):
        image_id = image_id.item()
    if isinstance(image_id, str):
        return zlib.crc32(image_id.encode())
    return int(image_id)


def _crop_to_image(xy: torch.Tensor, boxes: torch.Tensor, input_size: tuple[int, int]) -> torch.Tensor:
    """(M, K, 2) crop pixels -> image pixels, ``x1 + u * (bw / W)``: the map of
    :func:`fashion_lib.crops.points_from_crop`, which computes it as ``u / (W / bw) + x1``. The two round differently
    in the last bit (up to about 1e-5 px), and CPN's published numbers were computed with this one: issue 19 moved
    code without changing a result, so switching CPN to ``points_from_crop`` is left to a change that may move them.
    """
    h_in, w_in = input_size
    scale = torch.stack([(boxes[:, 2] - boxes[:, 0]) / w_in, (boxes[:, 3] - boxes[:, 1]) / h_in], 1)  # (M, 2)
    return boxes[:, None, :2] + xy * scale[:, None, :]


def _l2_per_point(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(M, K, h, w) maps -> (M, K): half the mean squared difference over each map's pixels."""
    return 0.5 * (pred.float() - target).pow(2).mean((2, 3))


def build_cpn(config: CPNConfig) -> CPN:
    """A randomly initialised (or local-trunk) :class:`CPN`."""
    return CPN(config)
