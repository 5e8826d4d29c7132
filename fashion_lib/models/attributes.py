"""Attribute recognition networks: one shared ``timm`` trunk, one linear head per task (paper, III.B, IV.B-C).

Paper, section IV.B: "we train two parallel multi-task recognition networks for eight attribute dimensions (four
length tasks and four upper-body design tasks) [...] We choose NASNet as base nets of recognition network with
input size 399 x 399"; section IV.C: Inception-ResNet-v2 on DeepFashion. Study notes, "Joint learning": the
baseline is one network per attribute task; joint learning is two multi-task networks, the length tasks on the
Normal-crop and the design tasks on the Neck-crop.

Layout (timm's): :class:`AttributeNetConfig` and :class:`MultiTaskAttributeNet` (``forward_features`` /
``forward_head`` / ``forward``); the training wrappers :class:`FashionAIRecognizer` and
:class:`DeepFashionRecognizer`, which crop the images from their key points (:mod:`fashion_lib.crops`) and follow
the engine's convention (train mode: ``model(images, targets) -> dict of scalar losses``); then the builders of the
paper's configurations and the two profiles (:data:`PROFILES`).

Every backbone is built from scratch (``timm.create_model(name, pretrained=False)``); weights are only ever loaded
from a local file named in the config, never downloaded.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import timm
import torch
import torch.nn.functional as F
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from torch import nn

from fashion_lib.attributes import DESIGN_TASKS, FASHIONAI_TASKS, LENGTH_TASKS
from fashion_lib.crops import CROP_KINDS, CropBoxes, CropConfig, crop_and_resize, crop_boxes
from fashion_lib.keypoints import get_schema
from fashion_lib.losses import maybe_weighted_ce

__all__ = [
    "AttributeNetConfig",
    "MultiTaskAttributeNet",
    "FashionAIRecognizerConfig",
    "FashionAIRecognizer",
    "DeepFashionRecognizerConfig",
    "DeepFashionRecognizer",
    "AttributeProfile",
    "PROFILES",
    "get_profile",
    "task_crop",
    "per_task_configs",
    "joint_configs",
    "deepfashion_config",
    "build_recognizer",
]

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------------- the network


@dataclass(frozen=True)
class AttributeNetConfig:
    """A multi-task attribute network: a ``timm`` trunk and one linear head per task."""

    backbone: str
    # timm model name (``timm.list_models()``), built with pretrained=False
    tasks: tuple[tuple[str, int], ...]
    # (head name, number of classes) per task, in output order; names unique, classes >= 1
    input_size: int = 224
    # side of the square input the network is trained at, pixels (crops are resized to it), >= 16
    drop_rate: float = 0.0
    # dropout on the pooled features before the heads, in [0, 1)
    weights: str | None = None
    # optional local path of a backbone state dict (e.g. ImageNet weights copied by hand); never downloaded

    def __post_init__(self) -> None:
        if not isinstance(self.backbone, str) or not timm.is_model(self.backbone):
            raise ValueError(f"backbone {self.backbone!r} is not a timm model; list candidates with "
                             f"timm.list_models('*{self.backbone}*')")
        tasks = tuple((str(n), int(c)) for n, c in self.tasks)
        object.__setattr__(self, "tasks", tasks)
        names = [n for n, _ in tasks]
        if not tasks or len(set(names)) != len(names) or any(not n or "." in n for n in names):
            raise ValueError(f"tasks must be non-empty (name, num_classes) pairs with unique names without '.', "
                             f"got {self.tasks!r}")
        bad = [(n, c) for n, c in tasks if c < 1]
        if bad:
            raise ValueError(f"tasks: num_classes must be >= 1, got {bad}")
        if isinstance(self.input_size, bool) or not isinstance(self.input_size, int) or self.input_size < 16:
            raise ValueError(f"input_size must be an int >= 16 pixels, got {self.input_size!r}")
        if not 0.0 <= self.drop_rate < 1.0:
            raise ValueError(f"drop_rate must be in [0, 1), got {self.drop_rate}")


def _load_backbone_weights(backbone: nn.Module, path: str) -> None:
    """Load a local state dict into ``backbone``; classifier keys are dropped, missing trunk keys are an error."""
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"AttributeNetConfig.weights: {str(file)!r} not found (weights are never downloaded)")
    state = torch.load(file, map_location="cpu", weights_only=True)
    if isinstance(state, Mapping) and "state_dict" in state:
        state = state["state_dict"]
    try:
        missing, unexpected = backbone.load_state_dict(state, strict=False)
    except RuntimeError as e:  # a tensor of the wrong shape
        raise ValueError(f"{file}: does not fit the backbone: {str(e).splitlines()[-1].strip()}") from None
    if missing:
        raise ValueError(f"{file}: {len(missing)} backbone tensors missing, e.g. {missing[:5]}")
    if unexpected:
        logger.info("%s: ignored %d tensors the trunk does not use (the old classifier): %s", file, len(unexpected),
                    unexpected[:5])


class MultiTaskAttributeNet(nn.Module):
    """A shared ``timm`` trunk with one linear head per task.

    Parameters
    ----------
    config : AttributeNetConfig

    Attributes
    ----------
    backbone : nn.Module
        ``timm.create_model(config.backbone, pretrained=False, num_classes=0)``: pooled features, no classifier.
    num_features : int
        Width ``F`` of the pooled features the heads read.
    heads : nn.ModuleDict
        Task name -> ``nn.Linear(F, num_classes)``.
    """

    def __init__(self, config: AttributeNetConfig) -> None:
        super().__init__()
        self.config = config
        self.backbone = timm.create_model(config.backbone, pretrained=False, num_classes=0)
        if config.weights is not None:
            _load_backbone_weights(self.backbone, config.weights)
        # timm: with num_classes=0 the pre-logits width is head_hidden_size (e.g. MobileNetV3's conv_head)
        self.num_features = int(getattr(self.backbone, "head_hidden_size", None) or self.backbone.num_features)
        self.head_drop = nn.Dropout(config.drop_rate)
        self.heads = nn.ModuleDict({name: nn.Linear(self.num_features, c) for name, c in config.tasks})

    @property
    def tasks(self) -> tuple[str, ...]:
        """Task names, in output order."""
        return tuple(self.heads)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The trunk's unpooled feature map.

        Parameters
        ----------
        x : (B, 3, S, S) float, normalised images.

        Returns
        -------
        (B, F', h, w) float (timm's ``forward_features``).
        """
        return self.backbone.forward_features(x)

    def forward_head(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        """Pool (timm's head without its classifier), drop out, and apply every task head.

        Parameters
        ----------
        features : (B, F', h, w) float, from :meth:`forward_features`.

        Returns
        -------
        dict task -> (B, C_task) float logits.
        """
        pooled = self.head_drop(self.backbone.forward_head(features))  # (B, F)
        return {name: head(pooled) for name, head in self.heads.items()}

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``forward_head(forward_features(x))``: dict task -> (B, C_task) logits."""
        return self.forward_head(self.forward_features(x))


# -------------------------------------------------------------------------------------- training wrappers


def _check_input(mean: tuple[float, ...], std: tuple[float, ...], flip: float) -> None:
    if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
        raise ValueError(f"mean and std must be 3 numbers each, std > 0; got mean={mean}, std={std}")
    if isinstance(flip, bool) or not isinstance(flip, int | float) or not 0.0 <= flip <= 1.0:
        raise ValueError(f"flip must be a chance in [0, 1], got {flip!r}")


@dataclass(frozen=True)
class FashionAIRecognizerConfig:
    """A FashionAI attribute network, the input it sees and its loss."""

    net: AttributeNetConfig
    # the network; its task names must be FashionAI AttrKeys with their class counts
    crop: str = "normal"
    # input: "full" image, "normal" (Normal-crop) or "neck" (Neck-crop) from target["keypoints"]
    beta: float | None = 0.1
    # "maybe" loss weight (paper: 0.1); None: plain cross-entropy on the y class (the ablation baseline)
    crops: CropConfig = field(default_factory=CropConfig)
    # margins and fallbacks of the crops
    schema: str = "fashionai"
    # key-point schema of target["keypoints"] (the Neck-crop needs point names)
    mean: tuple[float, float, float] = IMAGENET_DEFAULT_MEAN
    # per-channel mean subtracted from the [0, 1] crops
    std: tuple[float, float, float] = IMAGENET_DEFAULT_STD
    # per-channel standard deviation the crops are divided by
    flip: float = 0.0
    # chance that a training crop is mirrored left-right (every attribute here is left-right symmetric), in [0, 1];
    # 0: 0.5 gained nothing at 512 images x 4 passes (benchmarks/attribute_learning.py)

    def __post_init__(self) -> None:
        if self.crop not in CROP_KINDS:
            raise ValueError(f"crop must be one of {CROP_KINDS}, got {self.crop!r}")
        for name, c in self.net.tasks:
            if name not in FASHIONAI_TASKS:
                raise ValueError(f"net.tasks: {name!r} is not a FashionAI task; valid: {', '.join(FASHIONAI_TASKS)}")
            if c != len(FASHIONAI_TASKS[name]):
                raise ValueError(f"net.tasks: {name} has {len(FASHIONAI_TASKS[name])} classes, got {c}")
        if self.beta is not None and (isinstance(self.beta, bool) or not math.isfinite(self.beta) or self.beta < 0):
            raise ValueError(f"beta must be a finite number >= 0 or None, got {self.beta!r}")
        get_schema(self.schema)
        _check_input(self.mean, self.std, self.flip)


@dataclass(frozen=True)
class DeepFashionRecognizerConfig:
    """A DeepFashion network: a category head (softmax) and an attribute head (multi-label, sigmoid)."""

    net: AttributeNetConfig
    # tasks must be exactly (("category", num_categories), ("attributes", num_attributes))
    crop: str = "normal"
    # input: "full" image or "normal" (the box closing target["keypoints"], DeepFashion's landmarks)
    attribute_weight: float = 1.0
    # weight of the attribute BCE (mean over samples and attributes) beside the category cross-entropy, >= 0
    category_weight: float = 1.0
    # weight of the category cross-entropy, >= 0 (0 with attribute_weight 1: an attribute-only network)
    crops: CropConfig = field(default_factory=CropConfig)
    # margins and fallbacks of the crops
    mean: tuple[float, float, float] = IMAGENET_DEFAULT_MEAN
    # per-channel mean subtracted from the [0, 1] crops
    std: tuple[float, float, float] = IMAGENET_DEFAULT_STD
    # per-channel standard deviation the crops are divided by
    flip: float = 0.0
    # chance that a training crop is mirrored left-right (every attribute here is left-right symmetric), in [0, 1];
    # 0: 0.5 gained nothing at 512 images x 4 passes (benchmarks/attribute_learning.py)

    def __post_init__(self) -> None:
        names = tuple(n for n, _ in self.net.tasks)
        if names != ("category", "attributes"):
            raise ValueError(f"net.tasks must be (('category', C), ('attributes', A)), got {self.net.tasks!r}")
        if self.crop not in ("full", "normal"):
            raise ValueError(f"crop must be 'full' or 'normal' (DeepFashion has no neck points), got {self.crop!r}")
        if not self.attribute_weight >= 0:
            raise ValueError(f"attribute_weight must be >= 0, got {self.attribute_weight}")
        if not self.category_weight >= 0:
            raise ValueError(f"category_weight must be >= 0, got {self.category_weight}")
        _check_input(self.mean, self.std, self.flip)


class _CroppingRecognizer(nn.Module):
    """Shared input side of the recognizers: key points -> crop boxes -> resized, normalised crops."""

    config: FashionAIRecognizerConfig | DeepFashionRecognizerConfig

    def __init__(self, config: FashionAIRecognizerConfig | DeepFashionRecognizerConfig, num_keypoints: int | None,
                 schema: str) -> None:
        super().__init__()
        self.config = config
        self.net = MultiTaskAttributeNet(config.net)
        self.num_keypoints = num_keypoints
        self.schema = schema
        self.register_buffer("mean", torch.tensor(config.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(config.std).view(1, 3, 1, 1), persistent=False)

    def _keypoints(self, targets: Sequence[Mapping[str, Any]] | None, batch: int, device: torch.device
                   ) -> torch.Tensor:
        """(B, K, 3) key points of each image's first instance; NaN rows where a target has none."""
        rows: list[torch.Tensor | None] = []
        for t in targets if targets is not None else [{}] * batch:  # collation of a list of dicts
            kp = t.get("keypoints")
            rows.append(None if kp is None or kp.numel() == 0 else kp.reshape(-1, kp.shape[-2], 3)[0])
        k = self.num_keypoints or next((r.shape[0] for r in rows if r is not None), 1)
        nan = torch.full((k, 3), math.nan, device=device)
        bad = [i for i, r in enumerate(rows) if r is not None and r.shape[0] != k]
        if bad:
            raise ValueError(f"targets[{bad[0]}]['keypoints'] has {rows[bad[0]].shape[0]} points, expected {k}")
        return torch.stack([nan if r is None else r.to(device=device, dtype=torch.float32) for r in rows])

    def crop_inputs(self, images: torch.Tensor | Sequence[torch.Tensor],
                    targets: Sequence[Mapping[str, Any]] | None = None) -> tuple[torch.Tensor, CropBoxes]:
        """The network's input: the configured crop of every image, resized and normalised.

        Parameters
        ----------
        images : (B, 3, H, W) float or list of B (3, H_i, W_i) float in [0, 1]
        targets : list of B dicts, optional
            ``target["keypoints"]`` (N, K, 3) or (K, 3), image pixels: the first instance is cropped. Without key
            points (or without ``targets``) an image falls back to its whole extent (counted in the returned
            ``fallback``).

        Returns
        -------
        x : (B, 3, S, S) float, normalised; boxes : CropBoxes, image pixels.
        """
        device = self.mean.device
        if isinstance(images, torch.Tensor):
            images = images.to(device)
            sizes = torch.tensor([images.shape[-2:]], dtype=torch.float32, device=device).expand(images.shape[0], 2)
        else:
            images = [im.to(device) for im in images]
            sizes = torch.tensor([im.shape[-2:] for im in images], dtype=torch.float32, device=device)
        batch = sizes.shape[0]
        if targets is not None and len(targets) != batch:
            raise ValueError(f"got {batch} images and {len(targets)} targets")
        kps = self._keypoints(targets, batch, device)
        boxes = crop_boxes(kps, self.config.crop, sizes, self.config.crops, self.schema)
        s = self.config.net.input_size
        x = crop_and_resize(images, boxes.boxes, s).images  # (B, 3, S, S)
        return (x - self.mean) / self.std, boxes

    def train_inputs(self, images: torch.Tensor | Sequence[torch.Tensor],
                     targets: Sequence[Mapping[str, Any]]) -> torch.Tensor:
        """:meth:`crop_inputs` with each crop mirrored left-right with chance ``config.flip`` (a free doubling of
        the few training images; the global RNG, which the engine seeds, draws the flips)."""
        x, _ = self.crop_inputs(images, targets)  # (B, 3, S, S)
        mirror = torch.rand(x.shape[0], device=x.device) < self.config.flip  # (B,)
        return torch.where(mirror[:, None, None, None], x.flip(-1), x)


class FashionAIRecognizer(_CroppingRecognizer):
    """A FashionAI attribute network on its crop, trained with the "maybe" loss (or plain CE), engine-ready.

    Train mode: ``model(images, targets) -> {"loss_<task>": ()}``, one term per task of the network (the engine
    minimises their sum). A target's labels come from ``target["attributes"]`` (a dict AttrKey -> (C,) codes:
    the synthetic garments, every task of the garment's category) or from ``target["task"]`` with
    ``target["labels"]`` (C,) (a real FashionAI row: one task per image). Samples without a label for a task are
    left out of that task's loss, which is averaged over the samples that have one; a task without any sample
    in the batch contributes ``0 * logits.sum()`` (every parameter keeps a gradient, as DDP requires).

    Eval mode: ``model(images, targets=None)`` -> list of B dicts ``{"attributes": {task: (C,) softmax},
    "crop_box": (4,)}``; :meth:`predict` gives the batched probabilities.
    """

    config: FashionAIRecognizerConfig

    def __init__(self, config: FashionAIRecognizerConfig) -> None:
        schema = get_schema(config.schema)
        super().__init__(config, schema.num_keypoints, schema.name)

    def task_labels(self, targets: Sequence[Mapping[str, Any]], task: str, device: torch.device
                    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, C)`` long codes of ``task`` and ``(B,)`` bool: which samples carry them (others are zeros)."""
        c = len(FASHIONAI_TASKS[task])
        labels = torch.zeros(len(targets), c, dtype=torch.long)
        has = torch.zeros(len(targets), dtype=torch.bool)
        for i, t in enumerate(targets):  # collation of a list of dicts; the maths below is batched
            attrs = t.get("attributes")
            codes = attrs.get(task) if isinstance(attrs, Mapping) else (t.get("labels") if t.get("task") == task
                                                                           else None)
            if codes is None:
                continue
            if tuple(codes.shape) != (c,):
                raise ValueError(f"targets[{i}]: labels of {task} must have shape ({c},), got {tuple(codes.shape)}")
            labels[i], has[i] = codes.cpu(), True
        return labels.to(device), has.to(device)

    def forward(self, images: torch.Tensor | Sequence[torch.Tensor],
                targets: Sequence[Mapping[str, Any]] | None = None) -> Any:
        """Train mode: dict ``loss_<task>`` -> () float. Eval mode: list of per-image prediction dicts."""
        if not self.training:
            probs, boxes = self._predict(images, targets)
            return [{"attributes": {task: p[i] for task, p in probs.items()}, "crop_box": boxes.boxes[i]}
                    for i in range(boxes.boxes.shape[0])]
        if targets is None:
            raise ValueError("targets are required in train mode")
        device = self.mean.device
        labels = {task: self.task_labels(targets, task, device) for task in self.net.tasks}  # checked first
        x = self.train_inputs(images, targets)
        logits = self.net(x)
        losses = {}
        for task, out in logits.items():  # a loop over the <= 8 heads
            codes, has = labels[task]
            rows = torch.nonzero(has)[:, 0]
            if rows.numel() == 0:
                losses[f"loss_{task}"] = out.sum() * 0
                continue
            losses[f"loss_{task}"] = maybe_weighted_ce(out[rows], codes[rows], self.config.beta)
        return losses

    def _predict(self, images, targets) -> tuple[dict[str, torch.Tensor], CropBoxes]:
        x, boxes = self.crop_inputs(images, targets)
        return self.predict_inputs(x), boxes

    @torch.no_grad()
    def predict_inputs(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """:meth:`predict` from the network's inputs ``x`` (B, 3, S, S) (:meth:`crop_inputs`): dict task -> (B, C)
        softmax. Scoring many networks that crop alike (every seed of a row) crops each image once."""
        # float32 probabilities from logits a bf16 autocast may have computed (they sum to 1)
        return {task: F.softmax(z.float(), dim=1) for task, z in self.net(x).items()}

    @torch.no_grad()
    def predict(self, images: torch.Tensor | Sequence[torch.Tensor],
                targets: Sequence[Mapping[str, Any]] | None = None) -> dict[str, torch.Tensor]:
        """Batched class probabilities: dict task -> (B, C) softmax (for :mod:`fashion_lib.metrics`).

        ``targets`` supplies the key points the crops come from (``target["keypoints"]``); see
        :meth:`crop_inputs`.
        """
        return self._predict(images, targets)[0]


class DeepFashionRecognizer(_CroppingRecognizer):
    """The DeepFashion network (paper, IV.C): category softmax + multi-label attributes, engine-ready.

    Train mode: ``model(images, targets) -> {"loss_category": (), "loss_attributes": ()}`` with
    ``target["labels"]`` (1,) the 1-based category id and ``target["attributes"]`` (A,) in {0, 1}
    (:class:`fashion_lib.data.deepfashion.DeepFashionAttributes` items): ``category_weight`` times the
    cross-entropy over the categories and ``attribute_weight`` times the binary cross-entropy averaged over samples
    and attributes (a weight of 0 trains a network for the other head alone).

    Eval mode: list of B dicts ``{"category": (C,) softmax, "attributes": (A,) sigmoid, "crop_box": (4,)}``;
    :meth:`predict` gives the batched scores (for :func:`fashion_lib.metrics.topk_recall` and ``topk_accuracy``).
    """

    config: DeepFashionRecognizerConfig

    def __init__(self, config: DeepFashionRecognizerConfig) -> None:
        super().__init__(config, None, "")
        self.num_categories = dict(config.net.tasks)["category"]
        self.num_attributes = dict(config.net.tasks)["attributes"]

    def _targets(self, targets: Sequence[Mapping[str, Any]], device: torch.device
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        try:
            cats = torch.stack([t["labels"].reshape(-1)[0] for t in targets]).long()  # (B,) 1-based
            attrs = torch.stack([t["attributes"].reshape(-1) for t in targets])  # (B, A)
        except (KeyError, RuntimeError, AttributeError) as e:
            raise ValueError(f"DeepFashion targets need 'labels' (1,) and 'attributes' (A,) tensors of equal shapes "
                             f"({e})") from None
        if attrs.shape[1] != self.num_attributes:
            raise ValueError(f"targets have {attrs.shape[1]} attributes, the network {self.num_attributes}")
        if cats.numel() and (int(cats.min()) < 1 or int(cats.max()) > self.num_categories):
            raise ValueError(f"target labels must be 1-based category ids in [1, {self.num_categories}], got values "
                             f"in [{int(cats.min())}, {int(cats.max())}]")
        if not bool(((attrs == 0) | (attrs == 1)).all()):
            raise ValueError("target attributes must be 0 or 1 (DeepFashion's -1 read as 0 by the loader)")
        return (cats - 1).to(device), attrs.to(device=device, dtype=torch.float32)

    def forward(self, images: torch.Tensor | Sequence[torch.Tensor],
                targets: Sequence[Mapping[str, Any]] | None = None) -> Any:
        """Train mode: dict of the two loss terms. Eval mode: list of per-image prediction dicts."""
        if not self.training:
            scores, boxes = self._predict(images, targets)
            return [{"category": scores["category"][i], "attributes": scores["attributes"][i],
                     "crop_box": boxes.boxes[i]} for i in range(boxes.boxes.shape[0])]
        if targets is None:
            raise ValueError("targets are required in train mode")
        cats, attrs = self._targets(targets, self.mean.device)  # checked before the network runs
        x = self.train_inputs(images, targets)
        out = self.net(x)
        return {
            "loss_category": self.config.category_weight * F.cross_entropy(out["category"], cats),
            "loss_attributes": self.config.attribute_weight * F.binary_cross_entropy_with_logits(out["attributes"],
                                                                                                 attrs),
        }

    def _predict(self, images, targets) -> tuple[dict[str, torch.Tensor], CropBoxes]:
        x, boxes = self.crop_inputs(images, targets)
        out = self.net(x)
        # float32 scores from logits a bf16 autocast may have computed: probabilities that sum to 1
        return {"category": F.softmax(out["category"].float(), 1),
                "attributes": torch.sigmoid(out["attributes"].float())}, boxes

    @torch.no_grad()
    def predict(self, images: torch.Tensor | Sequence[torch.Tensor],
                targets: Sequence[Mapping[str, Any]] | None = None) -> dict[str, torch.Tensor]:
        """Batched scores: ``{"category": (B, C) softmax, "attributes": (B, A) sigmoid}``."""
        return self._predict(images, targets)[0]


# ------------------------------------------------------------------------------------ configurations, profiles


@dataclass(frozen=True)
class AttributeProfile:
    """Backbones and input sizes of one compute profile."""

    fashionai_backbone: str
    # timm name of the FashionAI recognition trunk
    fashionai_size: int
    # its input side, pixels
    deepfashion_backbone: str
    # timm name of the DeepFashion trunk
    deepfashion_size: int
    # its input side, pixels
    drop_rate: float = 0.0
    # dropout before the heads


PROFILES: dict[str, AttributeProfile] = {
    # timm's smallest ResNet (BasicBlocks, 0.37 M parameters against resnet10t's 4.9 M): on the 2-core CPU it trains
    # about 3.5x faster at 64 px and learns as well from few images (benchmarks/attribute_learning.py: sleeve
    # length 19.8 % against 20.0 % after 4 passes over 512 garments), so the budget buys 3x more passes
    "cpu": AttributeProfile("test_resnet", 80, "test_resnet", 80),
    # the paper's: NASNet-A Large at 399 px (IV.B), Inception-ResNet-v2 at 299 px (IV.C)
    "gpu": AttributeProfile("nasnetalarge", 399, "inception_resnet_v2", 299),
}
"""Profile name -> backbones and sizes."""


def get_profile(profile: str | AttributeProfile) -> AttributeProfile:
    """The profile called ``profile`` (``"cpu"`` or ``"gpu"``); a profile passes through."""
    if isinstance(profile, AttributeProfile):
        return profile
    try:
        return PROFILES[profile]
    except KeyError:
        raise ValueError(f"profile must be one of {sorted(PROFILES)}, got {profile!r}") from None


def task_crop(task: str) -> str:
    """The crop a FashionAI task is recognised on: ``"neck"`` for the four design tasks, else ``"normal"``."""
    if task not in FASHIONAI_TASKS:
        raise ValueError(f"task must be one of {', '.join(FASHIONAI_TASKS)}, got {task!r}")
    return "neck" if task in DESIGN_TASKS else "normal"


def _fashionai_config(profile: AttributeProfile, tasks: Sequence[str], crop: str, beta: float | None,
                      crops: CropConfig) -> FashionAIRecognizerConfig:
    net = AttributeNetConfig(profile.fashionai_backbone, tuple((t, len(FASHIONAI_TASKS[t])) for t in tasks),
                             profile.fashionai_size, profile.drop_rate)
    return FashionAIRecognizerConfig(net, crop=crop, beta=beta, crops=crops)


def per_task_configs(profile: str | AttributeProfile = "cpu", *, beta: float | None = 0.1,
                     tasks: Sequence[str] = DESIGN_TASKS + LENGTH_TASKS, crops: CropConfig | None = None
                     ) -> dict[str, FashionAIRecognizerConfig]:
    """The paper's baseline: one single-head network per task, each on its task's crop (:func:`task_crop`).

    Returns
    -------
    dict AttrKey -> FashionAIRecognizerConfig
    """
    p, crops = get_profile(profile), crops or CropConfig()
    return {t: _fashionai_config(p, (t,), task_crop(t), beta, crops) for t in tasks}


def joint_configs(profile: str | AttributeProfile = "cpu", *, beta: float | None = 0.1,
                  crops: CropConfig | None = None) -> dict[str, FashionAIRecognizerConfig]:
    """Joint learning (paper IV.B): ``"length"``, the four length tasks on the Normal-crop, and ``"design"``, the
    four design tasks on the Neck-crop; each a shared trunk with a head per task. ``crops`` defaults to
    ``CropConfig()``.
    """
    p, crops = get_profile(profile), crops or CropConfig()
    return {"length": _fashionai_config(p, LENGTH_TASKS, "normal", beta, crops),
            "design": _fashionai_config(p, DESIGN_TASKS, "neck", beta, crops)}


def deepfashion_config(profile: str | AttributeProfile = "cpu", *, num_categories: int = 50,
                       num_attributes: int = 1000, crop: str = "normal", attribute_weight: float = 1.0,
                       category_weight: float = 1.0, crops: CropConfig | None = None
                       ) -> DeepFashionRecognizerConfig:
    """The DeepFashion network (paper IV.C): 50-way category softmax and 1000 multi-label attributes."""
    p, crops = get_profile(profile), crops or CropConfig()
    net = AttributeNetConfig(p.deepfashion_backbone, (("category", num_categories), ("attributes", num_attributes)),
                             p.deepfashion_size, p.drop_rate)
    return DeepFashionRecognizerConfig(net, crop=crop, attribute_weight=attribute_weight,
                                       category_weight=category_weight, crops=crops)


def build_recognizer(config: FashionAIRecognizerConfig | DeepFashionRecognizerConfig
                     ) -> FashionAIRecognizer | DeepFashionRecognizer:
    """The recognizer of a config (a plain type dispatch)."""
    if isinstance(config, FashionAIRecognizerConfig):
        return FashionAIRecognizer(config)
    if isinstance(config, DeepFashionRecognizerConfig):
        return DeepFashionRecognizer(config)
    raise TypeError(f"config must be a FashionAIRecognizerConfig or DeepFashionRecognizerConfig, got "
                    f"{type(config).__name__}")
