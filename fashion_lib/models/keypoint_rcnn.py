"""Keypoint R-CNN, the paper's "Mask R-CNN" key-point detector, trained from scratch.

Paper, section III and Table 1: Mask R-CNN with a key-point branch localises the garment's (FashionAI, 24 points)
or the person's (COCO, 17 points) key points; New-key-detection refines its output. We use torchvision's
``KeypointRCNN`` unchanged (its training-mode forward returns its loss dict, which is the engine's convention) and
choose only its parts:

- a ResNet trunk looked up by name (:data:`RESNETS`) under a feature pyramid of configurable width and levels;
- **trainable** ``BatchNorm2d`` everywhere: torchvision's default ``FrozenBatchNorm2d`` is meant for pretrained
  trunks and leaves a network trained from scratch without normalisation (issue 7);
- a key-point head of configurable depth and width, and a predictor whose heat maps are log-probabilities over the
  heat map's pixels (:class:`LogSoftmaxKeypointPredictor`), so each point gets a confidence in [0, 1];
- proposal and box sampling sizes: most of a from-scratch CPU run's time goes to the key-point head on sampled
  boxes, so the ``cpu`` preset samples lightly (``/work/shared/cpu-profile-notes.md``).

No weight is ever downloaded. ``weights_path`` loads a ResNet classification state dict a user supplies into the
trunk (for example torchvision's ImageNet file copied by hand).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torchvision
from torch import nn
from torchvision.models.detection import KeypointRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.keypoint_rcnn import KeypointRCNNHeads, KeypointRCNNPredictor
from torchvision.ops import MultiScaleRoIAlign
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool
from torchvision.ops.misc import FrozenBatchNorm2d

from fashion_lib.keypoints import get_schema

__all__ = [
    "RESNETS",
    "KeypointRCNNConfig",
    "LogSoftmaxKeypointPredictor",
    "build_resnet",
    "resnet_stage_channels",
    "build_keypoint_rcnn",
    "num_classes_for",
    "detection_target",
]

logger = logging.getLogger(__name__)

RESNETS: dict[str, Callable[..., torchvision.models.ResNet]] = {
    "resnet18": torchvision.models.resnet18,
    "resnet34": torchvision.models.resnet34,
    "resnet50": torchvision.models.resnet50,
    "resnet101": torchvision.models.resnet101,
    "resnet152": torchvision.models.resnet152,
    "resnext50_32x4d": torchvision.models.resnext50_32x4d,
    "resnext101_32x8d": torchvision.models.resnext101_32x8d,
    "wide_resnet50_2": torchvision.models.wide_resnet50_2,
    "wide_resnet101_2": torchvision.models.wide_resnet101_2,
}
"""torchvision ResNet constructors by name; every one is built with ``weights=None``."""


def num_classes_for(schema: str) -> int:
    """Classes including background: FashionAI's 5 garment categories + 1, COCO's person + 1.

    A FashionAI target's label is the index in :data:`fashion_lib.synthetic.CATEGORIES` plus 1.
    """
    schema_ = get_schema(schema)
    return len(schema_.categories) + 1


@dataclass(frozen=True)
class KeypointRCNNConfig:
    """Architecture and sampling of a Keypoint R-CNN. Defaults are torchvision's ``keypointrcnn_resnet50_fpn``."""

    schema: str = "coco"  # key-point schema, "fashionai" (24 points) or "coco" (17 points)
    num_classes: int = 2  # box classes including background: fashionai 6 (5 categories + 1), coco 2 (person + 1)
    backbone: str = "resnet50"  # trunk, a key of RESNETS
    fpn_channels: int = 256  # channels of every feature-pyramid level (and of the heads' inputs)
    fpn_levels: tuple[int, ...] = (1, 2, 3, 4)  # ResNet stages feeding the pyramid (1: stride 4 ... 4: stride 32)
    anchor_sizes: tuple[int, ...] = (32, 64, 128, 256, 512)  # anchor side (px) per level; one per stage + max-pool
    aspect_ratios: tuple[float, ...] = (0.5, 1.0, 2.0)  # anchor height / width ratios, the same on every level
    frozen_norm: bool = False  # True: FrozenBatchNorm2d (only with a pretrained weights_path); False: trainable BN
    keypoint_head_channels: int = 512  # channels of each 3x3 conv of the key-point head
    keypoint_head_layers: int = 8  # number of 3x3 convs of the key-point head
    box_head_size: int = 1024  # width of the two fully connected layers of the box head
    min_size: tuple[int, ...] = (640, 672, 704, 736, 768, 800)  # shorter image side (px); train draws one, test last
    max_size: int = 1333  # cap on the longer image side after resizing (px)
    rpn_batch_size_per_image: int = 256  # anchors sampled per image for the RPN loss
    box_batch_size_per_image: int = 512  # proposals sampled per image for the box (and key-point) losses
    box_positive_fraction: float = 0.25  # most positives per sampled batch; the key-point head trains on positives
    rpn_pre_nms_top_n_train: int = 2000  # proposals kept per pyramid level before NMS, training
    rpn_post_nms_top_n_train: int = 2000  # proposals kept per image after NMS, training
    rpn_pre_nms_top_n_test: int = 1000  # proposals kept per pyramid level before NMS, inference
    rpn_post_nms_top_n_test: int = 1000  # proposals kept per image after NMS, inference
    box_detections_per_img: int = 100  # detections returned per image (the key-point head runs on each)
    box_score_thresh: float = 0.05  # detections scoring below this are dropped at inference
    weights_path: str | None = None  # local ResNet classification state dict for the trunk; never downloaded

    def __post_init__(self) -> None:
        schema = get_schema(self.schema)
        if self.backbone not in RESNETS:
            raise ValueError(f"backbone must be one of {', '.join(RESNETS)}, got {self.backbone!r}")
        expected = num_classes_for(schema.name)
        if self.num_classes != expected:
            raise ValueError(f"num_classes must be {expected} for the {schema.name} schema (classes + background), "
                             f"got {self.num_classes}")
        levels = tuple(self.fpn_levels)
        if not levels or list(levels) != sorted(set(levels)) or not set(levels) <= {1, 2, 3, 4}:
            raise ValueError(f"fpn_levels must be increasing stage numbers in [1, 4], got {self.fpn_levels}")
        if len(self.anchor_sizes) != len(levels) + 1:
            raise ValueError(f"anchor_sizes needs one size per pyramid level ({len(levels)} stages + max-pool = "
                             f"{len(levels) + 1}), got {len(self.anchor_sizes)}: {self.anchor_sizes}")
        if self.frozen_norm and self.weights_path is None:
            raise ValueError("frozen_norm=True needs pretrained weights_path: a network trained from scratch needs "
                             "trainable normalisation")
        positive = ("fpn_channels", "keypoint_head_channels", "keypoint_head_layers", "box_head_size", "max_size",
                    "rpn_batch_size_per_image", "box_batch_size_per_image", "rpn_pre_nms_top_n_train",
                    "rpn_post_nms_top_n_train", "rpn_pre_nms_top_n_test", "rpn_post_nms_top_n_test",
                    "box_detections_per_img")
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if not self.min_size or any(not isinstance(s, int) or s < 16 for s in self.min_size):
            raise ValueError(f"min_size must be a non-empty tuple of integers >= 16, got {self.min_size!r}")
        if not 0.0 < self.box_positive_fraction <= 1.0:
            raise ValueError(f"box_positive_fraction must be in (0, 1], got {self.box_positive_fraction}")
        if not 0.0 <= self.box_score_thresh < 1.0:
            raise ValueError(f"box_score_thresh must be in [0, 1), got {self.box_score_thresh}")

    @property
    def num_keypoints(self) -> int:
        """``K`` of the schema."""
        return get_schema(self.schema).num_keypoints

    @classmethod
    def cpu(cls, schema: str, **overrides) -> KeypointRCNNConfig:
        """The configuration that trains on a 2-core CPU in minutes (``cpu-profile-notes.md``, fastest row).

        ResNet-18 under a 128-channel pyramid on all 4 stages, a 4 x 128 key-point head, a 256-wide box head,
        light sampling (RPN 64 anchors, 32 boxes per image; 200/100 proposals in training, 100/50 at test) and
        128-px images. At inference at most 10 detections per image for COCO (several people) and 2 for FashionAI,
        whose images hold one garment and whose study reads the top detection (and, on a second-scale crop, the
        better match of two): the key-point head's heat-map decoding runs per detection and made inference 1.9x
        slower at 10 (measured with an untrained network keeping every box). ``overrides`` replace fields.
        """
        base = cls(
            schema=get_schema(schema).name, num_classes=num_classes_for(schema), backbone="resnet18",
            fpn_channels=128, anchor_sizes=(16, 32, 64, 128, 256), keypoint_head_channels=128,
            keypoint_head_layers=4, box_head_size=256, min_size=(128,), max_size=128,
            rpn_batch_size_per_image=64, box_batch_size_per_image=32, rpn_pre_nms_top_n_train=200,
            rpn_post_nms_top_n_train=100, rpn_pre_nms_top_n_test=100, rpn_post_nms_top_n_test=50,
            box_detections_per_img=2 if get_schema(schema).name == "fashionai" else 10,
        )
        return dataclasses.replace(base, **overrides)

    @classmethod
    def gpu(cls, schema: str, **overrides) -> KeypointRCNNConfig:
        """ResNet-50-FPN with the stock 8 x 512 key-point head and torchvision's reference sampling and sizes
        (training at a shorter side of 640-800 px, testing at 800 px, longer side <= 1333). The paper trained at
        224 x 224: ``gpu(schema, min_size=(224,), max_size=224)``. ``overrides`` replace fields."""
        base = cls(schema=get_schema(schema).name, num_classes=num_classes_for(schema))
        return dataclasses.replace(base, **overrides)


class LogSoftmaxKeypointPredictor(KeypointRCNNPredictor):
    """torchvision's key-point predictor whose heat maps are log-probabilities over each map's pixels.

    The training loss is unchanged: torchvision's loss is a cross-entropy over the flattened map, and
    ``cross_entropy(log_softmax(x)) == cross_entropy(x)``. At inference torchvision reports the (bicubically
    upsampled) map's value at the peak as the point's score; with these maps it is the log-probability of the peak,
    so ``exp(score)`` is a confidence in [0, 1] (see :func:`fashion_lib.models.detector.keypoint_rcnn_outputs`).
    Parameter names are torchvision's, so its state dicts load.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` (R, C, 14, 14) RoI features -> (R, K, 56, 56) log-probabilities (each map sums to 1 in exp).

        In training mode the maps are returned unnormalised: they only feed the cross-entropy, which normalises
        them itself, and the normalisation's forward and backward cost 1-2 % of a ``cpu``-preset step for nothing.
        """
        logits = super().forward(x)  # (R, K, h, w)
        if self.training:
            return logits
        return logits.flatten(2).log_softmax(-1).view_as(logits)


def build_resnet(name: str, *, frozen_norm: bool = False, weights_path: str | os.PathLike | None = None,
                 **kwargs) -> torchvision.models.ResNet:
    """A torchvision ResNet with random (or user-supplied local) weights.

    Parameters
    ----------
    name : str
        A key of :data:`RESNETS`.
    frozen_norm : bool
        ``FrozenBatchNorm2d`` instead of trainable ``BatchNorm2d`` (only sensible with pretrained weights).
    weights_path : path, optional
        A torchvision ResNet classification state dict (``fc.*`` entries are ignored); read with
        ``weights_only=True``. Never downloaded.
    **kwargs
        Passed to the constructor.

    Returns
    -------
    torchvision.models.ResNet
    """
    try:
        ctor = RESNETS[name]
    except KeyError:
        raise ValueError(f"backbone must be one of {', '.join(RESNETS)}, got {name!r}") from None
    norm = FrozenBatchNorm2d if frozen_norm else nn.BatchNorm2d
    model = ctor(weights=None, norm_layer=norm, **kwargs)
    if weights_path is not None:
        _load_trunk(model, Path(weights_path))
    return model


def _load_trunk(model: nn.Module, path: Path) -> None:
    if not path.is_file():
        raise ValueError(f"weights_path {str(path)!r} is not a file (weights are never downloaded: give a local copy)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 -- any unreadable file is the same user error
        raise ValueError(f"weights_path {str(path)!r} is not a readable torch state dict: {e}") from None
    if not isinstance(state, dict):
        raise ValueError(f"weights_path {str(path)!r} holds a {type(state).__name__}, expected a state dict")
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as e:  # shape mismatches
        detail = str(e).splitlines()[-1].strip()
        raise ValueError(f"weights_path {str(path)!r} does not fit the trunk: {detail}") from None
    missing = [k for k in missing if not k.startswith("fc.")]
    if missing or unexpected:
        raise ValueError(f"weights_path {str(path)!r} does not fit the trunk: missing {missing[:5]}, "
                         f"unexpected {unexpected[:5]}")
    logger.info("loaded trunk weights from %s", path)


def resnet_stage_channels(model: torchvision.models.ResNet) -> list[int]:
    """Output channels of ``layer1`` ... ``layer4`` (64-512 for ResNet-18/34, 256-2048 for the others)."""
    return [model.inplanes // 8 * 2**i for i in range(4)]


def build_keypoint_rcnn(config: KeypointRCNNConfig) -> KeypointRCNN:
    """torchvision ``KeypointRCNN`` as ``config`` describes it, randomly initialised (or with a local trunk).

    Parameters
    ----------
    config : KeypointRCNNConfig

    Returns
    -------
    KeypointRCNN
        In training mode ``model(images, targets)`` returns torchvision's loss dict (``loss_classifier``,
        ``loss_box_reg``, ``loss_keypoint``, ``loss_objectness``, ``loss_rpn_box_reg``); targets need ``boxes``
        (N, 4) float, ``labels`` (N,) int64 and ``keypoints`` (N, K, 3) float (see :func:`detection_target`).
        In eval mode it returns torchvision's detections; :func:`fashion_lib.models.detector.predict` turns them
        into the shared inference format.
    """
    trunk = build_resnet(config.backbone, frozen_norm=config.frozen_norm, weights_path=config.weights_path)
    stage_channels = resnet_stage_channels(trunk)
    levels = config.fpn_levels
    backbone = BackboneWithFPN(
        trunk,
        return_layers={f"layer{stage}": str(i) for i, stage in enumerate(levels)},
        in_channels_list=[stage_channels[stage - 1] for stage in levels],
        out_channels=config.fpn_channels,
        extra_blocks=LastLevelMaxPool(),
    )
    names = [str(i) for i in range(len(levels))]
    anchors = AnchorGenerator(sizes=tuple((s,) for s in config.anchor_sizes),
                              aspect_ratios=(tuple(config.aspect_ratios),) * len(config.anchor_sizes))
    c = config.fpn_channels
    head_layers = (config.keypoint_head_channels,) * config.keypoint_head_layers
    model = KeypointRCNN(
        backbone,
        num_classes=None,
        min_size=config.min_size,
        max_size=config.max_size,
        rpn_anchor_generator=anchors,
        rpn_pre_nms_top_n_train=config.rpn_pre_nms_top_n_train,
        rpn_post_nms_top_n_train=config.rpn_post_nms_top_n_train,
        rpn_pre_nms_top_n_test=config.rpn_pre_nms_top_n_test,
        rpn_post_nms_top_n_test=config.rpn_post_nms_top_n_test,
        rpn_batch_size_per_image=config.rpn_batch_size_per_image,
        box_roi_pool=MultiScaleRoIAlign(featmap_names=names, output_size=7, sampling_ratio=2),
        box_head=TwoMLPHead(c * 7 * 7, config.box_head_size),
        box_predictor=FastRCNNPredictor(config.box_head_size, config.num_classes),
        box_score_thresh=config.box_score_thresh,
        box_detections_per_img=config.box_detections_per_img,
        box_batch_size_per_image=config.box_batch_size_per_image,
        box_positive_fraction=config.box_positive_fraction,
        keypoint_roi_pool=MultiScaleRoIAlign(featmap_names=names, output_size=14, sampling_ratio=2),
        keypoint_head=KeypointRCNNHeads(c, head_layers),
        keypoint_predictor=LogSoftmaxKeypointPredictor(head_layers[-1], config.num_keypoints),
    )
    return model


def detection_target(target: dict) -> dict:
    """The part of a loader target torchvision's detection models train on, without crowd regions.

    torchvision trains every box it is given as an object; COCO's ``iscrowd = 1`` regions (no key points) must
    not be, as in torchvision's reference, which drops them when loading.

    Parameters
    ----------
    target : dict
        ``boxes`` (N, 4), ``labels`` (N,), ``keypoints`` (N, K, 3), optional ``iscrowd`` (N,).

    Returns
    -------
    dict
        ``boxes`` float32, ``labels`` int64, ``keypoints`` float32 of the non-crowd instances.
    """
    boxes = torch.as_tensor(target["boxes"])
    crowd = target.get("iscrowd")
    keep = torch.ones(len(boxes), dtype=torch.bool, device=boxes.device) if crowd is None else (
        torch.as_tensor(crowd, device=boxes.device) == 0)
    return {
        "boxes": boxes.float()[keep],
        "labels": torch.as_tensor(target["labels"], device=boxes.device).long()[keep],
        "keypoints": torch.as_tensor(target["keypoints"], device=boxes.device).float()[keep],
    }
