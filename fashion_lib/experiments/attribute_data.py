"""The attribute experiments' set-up, data and crop key points (Tables 2 and 3, Fig. 3).

Paper, sections III.B, IV.B and IV.C. One :class:`AttributeSetup` (built from a notebook's parameters) fixes the
attribute data (the synthetic world written in the real layout, or a real folder), the detector that supplies the
crops' key points, the networks' profile and the schedule. This module

1. reads the attribute data through the real loaders (:func:`attribute_data`): the synthetic FashionAI or
   DeepFashion set is written once under :func:`~fashion_lib.experiments.runs_dir` and read back like a real
   folder;
2. runs the FashionAI Keypoint R-CNN of :func:`fashion_lib.experiments.keypoints.train_detectors` (one detector
   seed, ``detector_seed``, for every attribute seed) on every training and validation image, and keeps two sets of
   crop key points (:func:`crop_keypoints`, cached beside the detector's run): ``"plain"``, its top instance, and
   ``"nkd"``, after New-key-detection with the paper's FashionAI settings. The detector predicts all 24 points of
   every garment; by default a crop closes only the points of the category the detector predicted, or of the
   one category a FashionAI row's task applies to where the task fixes it (:meth:`CropKeypoints.task_categories`).

Training and scoring the networks is :mod:`~fashion_lib.experiments.attribute_training`'s; the tables are
:mod:`~fashion_lib.experiments.table2` and :mod:`~fashion_lib.experiments.table3`, the figure
:mod:`~fashion_lib.experiments.figure3`.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from fashion_lib.data.deepfashion import DeepFashionAttributes
from fashion_lib.data.fashionai import CATEGORIES, FashionAIAttributes
from fashion_lib.engine import bf16_native
from fashion_lib.experiments import DATA_SOURCES, cached, exclusive, holdout_rows, library_digest, runs_dir, spread_rows
from fashion_lib.experiments.keypoints import KeypointSetup, train_detectors
from fashion_lib.keypoints import FASHIONAI
from fashion_lib.models.attributes import AttributeProfile, get_profile
from fashion_lib.models.detector import as_detect_fn, predict, top_instance
from fashion_lib.provenance import content_digest
from fashion_lib.refine import RefineConfig, new_key_detection
from fashion_lib.synthetic import TASK_CATEGORIES, WorldConfig, write_deepfashion, write_fashionai_attributes

__all__ = [
    "AttributeSetup",
    "AttributeSplit",
    "AttributeData",
    "attribute_data",
    "CropKeypoints",
    "PLAIN",
    "NKD",
    "GROUND_TRUTH",
    "DETECTED_KINDS",
    "detect_crop_keypoints",
    "top_detection_only",
    "crop_keypoints",
]

log = logging.getLogger(__name__)

# Where the crops' key points come from.
PLAIN = "plain"  # the detector's top instance
NKD = "nkd"  # the detector's top instance after New-key-detection (Alg. 2)
GROUND_TRUTH = "gt"  # the ground-truth points of on-the-fly synthetic garments (the beta ablation only)
DETECTED_KINDS = (PLAIN, NKD)  # the kinds of crop key points the detector gives (CropKeypoints.points)
_DATASETS = ("fashionai", "deepfashion")
_CHUNK = 64  # images decoded, detected and refined at a time (bounds memory on real, large images)


# ------------------------------------------------------------------------------------------------------------------
# Setup and data
# ------------------------------------------------------------------------------------------------------------------


def _default_refine() -> RefineConfig:
    return RefineConfig.for_schema("fashionai")


@dataclass(frozen=True)
class AttributeSetup:
    """Data, crop key points, networks and schedule of an attribute experiment (one per notebook)."""

    dataset: str = "fashionai"  # "fashionai" (Table 2: 8 tasks, y / m / n labels) or "deepfashion" (Table 3)
    detector: KeypointSetup = field(default_factory=KeypointSetup)  # the FashionAI detector of the crop key points
    detector_seed: int = 0  # the one detector seed whose key points every attribute seed crops from
    refine: RefineConfig = field(default_factory=_default_refine)  # New-key-detection (the paper's FashionAI values)
    profile: str = "cpu"  # attribute networks (models.attributes.PROFILES): "cpu" small trunk, "gpu" the paper's
    input_size: int = 0  # side of the networks' square input, pixels (0: the profile's; >= 16 otherwise)
    train_images: int = 1200  # synthetic: training images written; real: that many rows of the training split
    val_images: int = 480  # synthetic: validation images written; real: that many rows, spread over the file
    epochs: int = 4  # passes over each network's own training images (every network alike)
    # the early-stopped baseline: at most max_epochs passes (its schedule spans them), ended once the held-out loss
    # has not improved for patience passes; holdout_fraction of each task's training images are held out for it
    max_epochs: int = 12
    patience: int = 2
    holdout_fraction: float = 0.15
    batch_size: int = 16  # images per optimizer step
    lr: float = 3e-3  # peak learning rate (AdamW, linear warm-up over 10 % of the steps, then cosine)
    # bf16 autocast of the networks' training forward where the hardware has native bf16 (engine.bf16_native; 1.7x
    # faster test_resnet steps at 64 px on the 2-core AMD EPYC); elsewhere float32
    amp: bool = True
    # the same for the detector that places the crops (every image of both splits, both kinds of key points alike;
    # 2x faster on the 2-core AMD EPYC; benchmarks/inference_bf16.py measures what it changes)
    detect_amp: bool = True
    # validation images per task scored after every pass for the learning curves (0: all of them): a large
    # validation set decides the tables, a fixed spread subset draws the curves
    monitor_per_task: int = 0
    world: WorldConfig = field(default_factory=WorldConfig)  # synthetic world; its image size becomes the detector's
    data_root: str = ""  # a real folder: FashionAI (Annotations/, Images/) or DeepFashion (Anno/, Eval/, Img/)
    train_file: str = ""  # FashionAI: label file of the training split ("" = Annotations/label.csv)
    val_file: str = ""  # FashionAI: label file of the validation rows ("" = val_images rows held out of train_file)
    eval_split: str = "test"  # DeepFashion: the split scored ("test", as the paper's 40,000 images; or "val")
    data_seed: int = 20_000  # seed of the synthetic attribute data (written once, shared by every seed)
    category_points: bool = True  # a crop closes only the points of the detected category (the detector gives 24)

    def __post_init__(self) -> None:
        for name in ("amp", "detect_amp"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if isinstance(self.monitor_per_task, bool) or not isinstance(self.monitor_per_task, int) or \
                self.monitor_per_task < 0:
            raise ValueError(f"monitor_per_task must be an integer >= 0, got {self.monitor_per_task!r}")
        if self.dataset not in _DATASETS:
            raise ValueError(f"dataset must be one of {_DATASETS}, got {self.dataset!r}")
        if self.detector.schema != "fashionai":
            raise ValueError(f"detector.schema must be 'fashionai' (the crops need garment points), got "
                             f"{self.detector.schema!r}")
        get_profile(self.profile)
        if isinstance(self.input_size, bool) or not isinstance(self.input_size, int) or not (
                self.input_size == 0 or self.input_size >= 16):
            raise ValueError(f"input_size must be 0 (the profile's) or an integer >= 16, got {self.input_size!r}")
        for name in ("train_images", "val_images", "epochs", "batch_size", "max_epochs", "patience"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if isinstance(self.detector_seed, bool) or not isinstance(self.detector_seed, int) or self.detector_seed < 0:
            raise ValueError(f"detector_seed must be an integer >= 0, got {self.detector_seed!r}")
        if not (isinstance(self.lr, int | float) and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a finite number > 0, got {self.lr!r}")
        if not (isinstance(self.holdout_fraction, int | float) and 0 < self.holdout_fraction < 1):
            raise ValueError(f"holdout_fraction must be a number in (0, 1), got {self.holdout_fraction!r}")
        if self.eval_split not in ("val", "test"):
            raise ValueError(f"eval_split must be 'val' or 'test', got {self.eval_split!r}")
        self.refine.validate()
        if self.data_root and not Path(self.data_root).is_dir():
            raise FileNotFoundError(f"data_root {self.data_root!r} is not a folder")
        if self.data_root and self.detector.synthetic:
            warnings.warn(f"the attribute data is real ({self.data_root}) but the detector that places the crops "
                          f"trains on the synthetic world: set keypoint_data_root to the FashionAI key-point "
                          f"folder", stacklevel=2)
        if self.world.image_size != self.detector.image_size:  # the detector sees the world it was trained on
            object.__setattr__(self, "world", dataclasses.replace(self.world, image_size=self.detector.image_size))

    @property
    def synthetic(self) -> bool:
        """True when the data comes from the synthetic world."""
        return not self.data_root

    def networks(self) -> AttributeProfile:
        """The networks' backbones and input sizes: the profile's, with ``input_size`` when it is set."""
        profile = get_profile(self.profile)
        if not self.input_size:
            return profile
        return dataclasses.replace(profile, fashionai_size=self.input_size, deepfashion_size=self.input_size)

    def steps(self, num_images: int, epochs: int = 0) -> int:
        """Optimizer steps of ``epochs`` (0: the setup's ``epochs``) passes over ``num_images`` images."""
        return (epochs or self.epochs) * math.ceil(num_images / self.batch_size)


@dataclass(frozen=True)
class AttributeSplit:
    """One split of the attribute data, read through the real loader (images are decoded on access)."""

    dataset: torch.utils.data.Dataset  # items (image (3, H, W) float, the loader's target), the chosen rows
    key: str  # identifies these items in run folders and cache file names
    tasks: tuple[str, ...]  # FashionAI: the AttrKey of every item; DeepFashion: ()

    def __len__(self) -> int:
        return len(self.dataset)


@dataclass(frozen=True)
class AttributeData:
    """The training split and the scored split of a setup."""

    train: AttributeSplit
    val: AttributeSplit


def attribute_data(setup: AttributeSetup) -> AttributeData:
    """The setup's two splits. Synthetic data is written once in the real layout under :func:`runs_dir` (seed
    ``data_seed``) and read back through the loader, like a real folder; real data takes ``train_images`` and
    ``val_images`` rows spread evenly over each split."""
    if setup.synthetic:
        spec = {"dataset": setup.dataset, "train": setup.train_images, "val": setup.val_images,
                "seed": setup.data_seed, "world": dataclasses.asdict(setup.world), "split": setup.eval_split,
                "library": library_digest(DATA_SOURCES)}
        key = content_digest(spec)
        root = runs_dir() / "data" / f"{setup.dataset}-attributes-{key}"
        n = setup.train_images + setup.val_images
        # the writers build the folder aside and rename it into place when complete
        with exclusive(root):
            if not root.is_dir():
                if setup.dataset == "fashionai":
                    write_fashionai_attributes(root, n, setup.data_seed, setup.world,
                                               val_fraction=setup.val_images / n)
                else:
                    fractions = {"val_fraction": 0.0, "test_fraction": 0.0}
                    fractions[f"{setup.eval_split}_fraction"] = setup.val_images / n
                    write_deepfashion(root, n, setup.data_seed, setup.world, **fractions)
        source = f"synthetic-{key}"
    else:
        root = Path(setup.data_root)
        source = str(root.resolve())
    if setup.dataset == "fashionai":
        train_file = setup.train_file or "Annotations/label.csv"
        # the real downloads label the training split only: without val_file, validation rows are held out of it
        val_file = setup.val_file or ("Annotations/val.csv" if setup.synthetic else "")
        train = FashionAIAttributes(root, train_file)
        if val_file:
            loaders, names = (train, FashionAIAttributes(root, val_file)), (train_file, val_file)
            pools = tuple(list(range(len(loader))) for loader in loaders)
        else:
            loaders, names = (train, train), (f"{train_file}-train", f"{train_file}-heldout")
            pools = holdout_rows(len(train), setup.val_images, where=f"train_file {train.csv}")
    else:
        loaders = (DeepFashionAttributes(root, "train"), DeepFashionAttributes(root, setup.eval_split))
        names = ("train", setup.eval_split)
        pools = tuple(list(range(len(loader))) for loader in loaders)
    splits = []
    for loader, name, pool, n in zip(loaders, names, pools, (setup.train_images, setup.val_images), strict=True):
        if not pool:
            raise ValueError(f"{root}: split {name!r} is empty")
        rows = [pool[i] for i in spread_rows(len(pool), n)]
        tasks = tuple(loader.annotations.tasks[i] for i in rows) if setup.dataset == "fashionai" else ()
        key = content_digest({"source": source, "split": name, "rows": rows, "n": len(loader)})
        splits.append(AttributeSplit(torch.utils.data.Subset(loader, rows), f"{name.split('/')[-1]}-{key}", tasks))
    return AttributeData(*splits)


# ------------------------------------------------------------------------------------------------------------------
# Crop key points from the detector
# ------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CropKeypoints:
    """The FashionAI key points every image of a split is cropped from, before and after New-key-detection."""

    plain: torch.Tensor  # (B, 24, 3) the detector's top instance, all 24 channels: x, y pixels, confidence
    nkd: torch.Tensor  # (B, 24, 3) the same after New-key-detection (Alg. 2, both scales)
    detected: torch.Tensor  # (B,) bool: the detector found a garment (else every crop falls back to the image)
    categories: tuple[str, ...]  # (B,) the detected category ("" where nothing was detected)
    source: str  # identifies the detector run and the refiner settings (part of the networks' run folders)
    # points() closes only the points of each image's category (the detector predicts all 24 for every garment)
    category_points: bool = True

    def __len__(self) -> int:
        return len(self.plain)

    def points(self, kind: str, categories: Sequence[str] | None = None) -> torch.Tensor:
        """``(B, 24, 3)`` key points of ``kind`` (``"plain"`` or ``"nkd"``) that a crop closes: with
        ``category_points``, the confidence of every point outside the image's category is 0 (``categories``:
        one per image, default the detected ones; ``""`` keeps no point, so the crop falls back to the image)."""
        if kind not in DETECTED_KINDS:
            raise ValueError(f"kind must be one of {DETECTED_KINDS}, got {kind!r}")
        points = self.plain if kind == PLAIN else self.nkd
        if not self.category_points:
            return points
        categories = self.categories if categories is None else tuple(categories)
        if len(categories) != len(points):
            raise ValueError(f"categories must name one category per image ({len(points)}), got {len(categories)}")
        keep = _category_masks(categories)[..., None]  # (B, 24, 1)
        return torch.cat([points[..., :2], torch.where(keep, points[..., 2:], 0.0)], -1)

    def task_categories(self, tasks: Sequence[str]) -> tuple[tuple[str, ...], torch.Tensor]:
        """The category each image is cropped as when its attribute task is known (a FashionAI row), and where
        the detector disagreed with the task.

        Parameters
        ----------
        tasks : (B,) the AttrKey of each image.

        Returns
        -------
        categories : (B,) the one category the task applies to where the data set fixes it (collar: blouse; lapel,
            neck, coat: outwear; pant: trousers) and a garment was detected; the detected category elsewhere.
        disagree : (B,) bool, a garment was detected as a category the task does not apply to.
        """
        if len(tasks) != len(self):
            raise ValueError(f"tasks must give one task per image ({len(self)}), got {len(tasks)}")
        bad = sorted({t for t in tasks if t not in TASK_CATEGORIES})
        if bad:
            raise ValueError(f"tasks: {bad} are not FashionAI tasks")
        fixed = [TASK_CATEGORIES[t][0] if len(TASK_CATEGORIES[t]) == 1 and c else c
                 for t, c in zip(tasks, self.categories, strict=True)]
        disagree = torch.tensor([bool(c) and c not in TASK_CATEGORIES[t]
                                 for t, c in zip(tasks, self.categories, strict=True)], dtype=torch.bool)
        return tuple(fixed), disagree


def _category_masks(categories: Sequence[str]) -> torch.Tensor:
    """``(B, 24)`` bool: the points of each detected category (all False where nothing was detected)."""
    table = torch.stack([FASHIONAI.category_mask(c) for c in CATEGORIES])  # (5, 24)
    index = torch.tensor([CATEGORIES.index(c) if c else -1 for c in categories], dtype=torch.long)  # (B,)
    masks = table[index.clamp(min=0)]
    return masks & (index >= 0)[:, None]


def detect_crop_keypoints(detector: torch.nn.Module, images: Sequence[torch.Tensor], refine: RefineConfig, *,
                          generator: torch.Generator, category_points: bool = True,
                          batch_size: int = 16) -> CropKeypoints:
    """Plain and New-key-detection key points of ``images`` from a FashionAI Keypoint R-CNN (not cached).

    Parameters
    ----------
    detector : the Keypoint R-CNN (``train_detectors(...).keypoint_rcnn``).
    images : B (3, H, W) float images in [0, 1].
    refine : RefineConfig of New-key-detection.
    generator : torch.Generator of RANSAC.
    category_points : :meth:`CropKeypoints.points` sets the confidence of the points the category does not have
        to 0, so that no crop closes them (the detector predicts all 24 channels for every garment).
    batch_size : images per detector call.

    Returns
    -------
    CropKeypoints (``source`` empty).
    """
    images = list(images)
    k = FASHIONAI.num_keypoints
    preds = predict(detector, images, batch_size=batch_size)
    top = top_instance(preds, k)
    labels = top.labels.tolist()
    categories = tuple(CATEGORIES[lab - 1] if 1 <= lab <= len(CATEGORIES) else "" for lab in labels)
    nkd = new_key_detection(images, as_detect_fn(detector, k, batch_size=batch_size), FASHIONAI,
                            generator=generator, keypoints=top.keypoints, config=refine).keypoints
    return CropKeypoints(top.keypoints, nkd, top.scores > 0, categories, "", category_points)


def top_detection_only(detector: torch.nn.Module) -> torch.nn.Module:
    """A copy of a Keypoint R-CNN that returns only its highest-scoring detection per image: a crop uses no other,
    and the key-point head then runs on one box instead of ``detections_per_img`` (1.16x faster crop key points at
    the cpu preset's 2, the same points: the detections come sorted by score, each box's key points alone)."""
    if not hasattr(detector, "roi_heads"):
        return detector
    out = copy.deepcopy(detector)
    out.roi_heads.detections_per_img = 1
    return out


def crop_keypoints(setup: AttributeSetup, data: AttributeData, *, batch_size: int = 16
                   ) -> dict[str, CropKeypoints]:
    """Crop key points of every image of both splits (``{"train": ..., "val": ...}``), cached beside the detector's
    run: the expensive step (the detector runs twice on every image), done once per detector and data."""
    detectors = train_detectors(setup.detector, setup.detector_seed, progress=False)
    detector = top_detection_only(detectors.keypoint_rcnn)
    device = next(detector.parameters()).device
    amp = setup.detect_amp and bf16_native(device)
    refine_key = content_digest({"refine": dataclasses.asdict(setup.refine), "category_points": setup.category_points,
                                 **({"amp": True} if amp else {})})
    out = {}
    for name, split in (("train", data.train), ("val", data.val)):
        path = detectors.run_dir / f"attribute-crops-{split.key}-{refine_key}-{library_digest()}.pt"
        source = f"{detectors.run_dir.name}-{refine_key}"

        def compute(split: AttributeSplit = split, source: str = source) -> CropKeypoints:
            start, parts = time.perf_counter(), []
            g = torch.Generator().manual_seed(setup.detector_seed)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                for lo in range(0, len(split), _CHUNK):  # chunks of images: bounded memory on large real images
                    images = [split.dataset[i][0] for i in range(lo, min(lo + _CHUNK, len(split)))]
                    parts.append(detect_crop_keypoints(detector, images, setup.refine, generator=g,
                                                       category_points=setup.category_points,
                                                       batch_size=batch_size))
            log.info("crop key points of %d images in %.0f s", len(split), time.perf_counter() - start)
            return CropKeypoints(torch.cat([p.plain for p in parts]), torch.cat([p.nkd for p in parts]),
                                 torch.cat([p.detected for p in parts]),
                                 tuple(c for p in parts for c in p.categories), source,
                                 setup.category_points)

        out[name] = cached(path, compute)
    return out
