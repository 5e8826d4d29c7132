"""Tables 2 and 3 as library functions: crop key points from the detector, train or load the attribute networks,
predict on the validation images, score.

Paper, sections III.B, IV.B and IV.C, Tables 2 and 3. One :class:`AttributeSetup` (built from a notebook's
parameters) fixes the attribute data (the synthetic world written in the real layout, or a real folder), the
detector that supplies the crops' key points, the networks' profile and the schedule; a seed fixes the networks'
initialisation and data order. The study

1. reads the attribute data through the real loaders (:func:`attribute_data`): the synthetic FashionAI or
   DeepFashion set is written once under :func:`~fashion_lib.experiments.runs_dir` and read back like a real
   folder;
2. runs the FashionAI Keypoint R-CNN of :func:`fashion_lib.experiments.keypoints.train_detectors` (one detector
   seed, ``detector_seed``, for every attribute seed) on every training and validation image, and keeps two sets of
   crop key points (:func:`crop_keypoints`, cached beside the detector's run): ``"plain"``, its top instance, and
   ``"nkd"``, after New-key-detection with the paper's FashionAI settings. The detector predicts all 24 points of
   every garment; by default a crop closes only the points of the category the detector predicted, or of the
   one category a FashionAI row's task applies to where the task fixes it (:meth:`CropKeypoints.task_categories`);
3. trains each network of a method through :func:`fashion_lib.engine.train` on the images of its own tasks for
   ``epochs`` passes, in a run folder named by everything that shapes it (:func:`fashionai_predictions`,
   :func:`deepfashion_predictions`), so notebooks share trained networks; the early-stopped per-task baseline
   instead trains up to ``max_epochs`` passes on its task's images less a seeded held-out share, stops once the
   held-out loss has not improved for ``patience`` passes (:func:`stop_now`) and keeps its best pass's weights
   (:func:`best_pass`);
4. scores the validation images with the metrics of :mod:`fashion_lib.metrics`, through per-seed arrays whose
   instances are validation images (:func:`fashionai_arrays`, :func:`deepfashion_arrays`), ready for
   :func:`fashion_lib.metrics.crossed_bootstrap_ci`.

The beta ablation trains on garments generated on the fly with their ground-truth key points
(:func:`task_garments`, :func:`beta_predictions`): no detector, so the loss is the only thing that changes.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
import math
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fashion_lib.attributes import DESIGN_TASKS, FASHIONAI_TASKS, LENGTH_TASKS, PAPER_TASK_NAMES, M, N, Y
from fashion_lib.data.deepfashion import ATTRIBUTE_TYPES, DeepFashionAttributes
from fashion_lib.data.fashionai import CATEGORIES, FashionAIAttributes
from fashion_lib.data.transforms import collate
from fashion_lib.engine import METRICS_NAME, TrainConfig, bf16_native, run_dir_for, train
from fashion_lib.experiments import (
    DATA_SOURCES,
    TRAINING_SOURCES,
    cached,
    exclusive,
    holdout_rows,
    library_digest,
    runs_dir,
    seeded_build,
    spread_rows,
)
from fashion_lib.experiments.keypoints import KeypointSetup, train_detectors
from fashion_lib.io import atomic_write
from fashion_lib.keypoints import FASHIONAI
from fashion_lib.losses import maybe_weighted_ce
from fashion_lib.metrics import CI, attribute_accuracy, attribute_ap, topk_accuracy, topk_recall
from fashion_lib.models.attributes import (
    AttributeProfile,
    DeepFashionRecognizerConfig,
    FashionAIRecognizerConfig,
    build_recognizer,
    deepfashion_config,
    get_profile,
    joint_configs,
    per_task_configs,
)
from fashion_lib.models.detector import as_detect_fn, predict, top_instance
from fashion_lib.provenance import content_digest
from fashion_lib.refine import RefineConfig, new_key_detection
from fashion_lib.report import verdict
from fashion_lib.synthetic import (
    TASK_CATEGORIES,
    SyntheticGarments,
    WorldConfig,
    write_deepfashion,
    write_fashionai_attributes,
)
from fashion_lib.synthetic.knobs import label_rates

__all__ = [
    "AttributeSetup",
    "AttributeSplit",
    "AttributeData",
    "attribute_data",
    "CropKeypoints",
    "PLAIN",
    "NKD",
    "GROUND_TRUTH",
    "detect_crop_keypoints",
    "crop_keypoints",
    "train_config",
    "FashionAIMethod",
    "BASELINE",
    "JOINT",
    "MAYBE",
    "FULL",
    "MAYBE_ALONE",
    "NKD_ALONE",
    "LADDER",
    "INGREDIENTS",
    "JOINT_EQUAL_STEPS",
    "table2_methods",
    "PAPER_TABLE2",
    "fashionai_configs",
    "TaskPredictions",
    "fashionai_predictions",
    "fashionai_rows_for_seeds",
    "fashionai_arrays",
    "learning_curves",
    "stop_now",
    "best_pass",
    "holdout_split",
    "stopping_passes",
    "BASELINE_EARLY_STOP",
    "map_metric",
    "accuracy_metric",
    "chance_accuracy",
    "chance_by_task",
    "accuracy_half_width",
    "table2_frame",
    "task_garments",
    "maybe_statistics",
    "beta_predictions",
    "DeepFashionMethod",
    "T3_BASELINE",
    "T3_FULL",
    "T3_JOINT_ALONE",
    "T3_NKD_ALONE",
    "T3_PLAIN",
    "table3_methods",
    "PAPER_TABLE3",
    "PAPER_TABLE3_OTHERS",
    "TABLE3_GROUPS",
    "deepfashion_configs",
    "DeepFashionPredictions",
    "deepfashion_predictions",
    "deepfashion_rows_for_seeds",
    "attribute_groups",
    "deepfashion_arrays",
    "recall_metric",
    "category_metric",
    "deepfashion_chance",
    "table3_frame",
    "Figure3",
    "figure3",
]

log = logging.getLogger(__name__)

# Where the crops' key points come from.
PLAIN = "plain"  # the detector's top instance
NKD = "nkd"  # the detector's top instance after New-key-detection (Alg. 2)
GROUND_TRUTH = "gt"  # the ground-truth points of on-the-fly synthetic garments (the beta ablation only)
_SOURCES = (PLAIN, NKD)
_DATASETS = ("fashionai", "deepfashion")
_MONITORED = ("val_", "holdout_")  # metrics.csv columns of the figures scored after each pass
_C_MAX = max(len(c) for c in FASHIONAI_TASKS.values())  # widest FashionAI task (neckline, 10 classes)
_CHUNK = 64  # images decoded, detected and refined at a time (bounds memory on real, large images)
# What a trained attribute network depends on besides its settings: the training code, and the code that turns the
# detector's output into crop key points (its weights and the refiner's settings are part of the crops' source).
# A change elsewhere (scoring, reporting) reuses the networks; cached crop key points and predictions are keyed on
# every library source, as the key-point half's predictions are.
_NETWORK_SOURCES = (*TRAINING_SOURCES, "refine.py", "models/detector.py")


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
        if kind not in _SOURCES:
            raise ValueError(f"kind must be one of {_SOURCES}, got {kind!r}")
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


# ------------------------------------------------------------------------------------------------------------------
# Training and predicting: shared by both data sets
# ------------------------------------------------------------------------------------------------------------------


def train_config(setup: AttributeSetup, seed: int, num_images: int, epochs: int = 0) -> TrainConfig:
    """``epochs`` (0: the setup's) passes over ``num_images`` images with the setup's batch size and learning rate;
    the monitor (:func:`learning_curves`) runs after every pass, and the loss is logged 8 times a pass."""
    steps = setup.steps(num_images, epochs)
    per_epoch = math.ceil(num_images / setup.batch_size)
    return TrainConfig(steps=steps, batch_size=setup.batch_size, lr=setup.lr, seed=seed, amp=setup.amp,
                       channels_last=True, warmup_steps=max(1, steps // 10), checkpoint_every=max(50, steps // 2),
                       log_every=max(1, per_epoch // 8), eval_every=per_epoch, grad_clip=10.0)


@dataclass(frozen=True)
class _DataKey:
    """What an attribute network depends on besides its own config (part of its run folder's hash)."""

    data: str  # the training split
    keypoints: str  # where the crops' key points come from
    library: str


class _Items(torch.utils.data.Dataset):
    """Items ``rows`` of ``dataset``, each with ``target["keypoints"]`` set to ``keypoints[row][None]`` (if given)."""

    def __init__(self, dataset: torch.utils.data.Dataset, rows: Sequence[int], keypoints: torch.Tensor | None):
        self.dataset, self.rows, self.keypoints = dataset, list(rows), keypoints

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict]:
        row = self.rows[index]
        image, target = self.dataset[row]
        if self.keypoints is not None:
            target = {**target, "keypoints": self.keypoints[row][None]}
        return image, target


def _monitor_fashionai(model: torch.nn.Module, items: torch.utils.data.Dataset, amp: bool) -> dict[str, float]:
    """``val_accuracy``: top-1 accuracy of ``items`` (FashionAI rows, one task each) on their own task."""
    out, targets = _batched_predict(model, items, amp=amp)
    hits = [float(t["labels"][int(out[t["task"]][i].argmax())] == Y) for i, t in enumerate(targets)]
    return {"val_accuracy": float(np.mean(hits)) if hits else math.nan}


def _monitor_deepfashion(model: torch.nn.Module, items: torch.utils.data.Dataset, amp: bool) -> dict[str, float]:
    """``val_category_top3`` (networks with a category loss) and ``val_attribute_top3`` (recall over all
    attributes, networks with an attribute loss) of ``items``."""
    out, targets = _batched_predict(model, items, amp=amp)
    metrics = {}
    if model.config.category_weight > 0:
        category = torch.stack([t["labels"].reshape(-1)[0] for t in targets]).long() - 1
        metrics["val_category_top3"] = topk_accuracy(out["category"], category, 3)
    if model.config.attribute_weight > 0:
        attributes = torch.stack([t["attributes"].reshape(-1) for t in targets]).long()
        metrics["val_attribute_top3"] = topk_recall(out["attributes"], attributes, 3)["all"]
    return metrics


def stop_now(losses: Sequence[float], patience: int) -> bool:
    """Early stopping's rule: True once the last ``patience`` passes have not lowered the loss below the best
    before them (a tie is no improvement).

    Parameters
    ----------
    losses : the validation loss after each pass so far, in order (finite).
    patience : passes without improvement that end training (>= 1).
    """
    if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
        raise ValueError(f"patience must be an integer >= 1, got {patience!r}")
    return len(losses) - best_pass(losses) >= patience if len(losses) else False


def best_pass(losses: Sequence[float]) -> int:
    """The 1-based pass of the lowest loss (the first of equal ones): the pass whose weights early stopping keeps."""
    values = np.asarray(losses, dtype=float)
    if values.ndim != 1 or not len(values):
        raise ValueError(f"losses must be a non-empty sequence of numbers, got {losses!r}")
    if not np.isfinite(values).all():
        first = int(np.argmin(np.isfinite(values))) + 1
        raise ValueError(f"losses must be finite, got {values[first - 1]} after pass {first}")
    return int(np.argmin(values)) + 1


def holdout_split(n: int, fraction: float, generator: torch.Generator) -> tuple[list[int], list[int]]:
    """A seeded split of ``n`` items into (kept, held out) positions, ``round(fraction * n)`` held out (at least
    one, and at least one kept), both in increasing order."""
    if n < 2:
        raise ValueError(f"n must be >= 2 to hold some items out and train on the others, got {n}")
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1), got {fraction!r}")
    n_out = min(max(1, round(fraction * n)), n - 1)
    order = torch.randperm(n, generator=generator)
    return sorted(order[n_out:].tolist()), sorted(order[:n_out].tolist())


def _holdout_scores(model: torch.nn.Module, items: torch.utils.data.Dataset) -> dict[str, float]:
    """``holdout_loss`` (the network's own training loss, with its beta, mean over ``items``) and
    ``holdout_accuracy`` of FashionAI rows held out of the training images (early stopping's figures)."""
    out, targets = _batched_predict(model, items)
    tasks = np.asarray([t["task"] for t in targets])
    total, hits = 0.0, 0.0
    for task in dict.fromkeys(tasks.tolist()):  # a loop over the network's <= 4 tasks
        rows = np.flatnonzero(tasks == task)
        labels = torch.stack([targets[i]["labels"] for i in rows])  # (B_t, C_t)
        # the log of a softmax is a log-softmax, so the loss of these "logits" is the loss of the network's logits
        logp = out[task][torch.from_numpy(rows)].clamp_min(1e-30).log()
        total += float(maybe_weighted_ce(logp, labels, model.config.beta)) * len(rows)
        hits += float((labels.gather(1, logp.argmax(1, keepdim=True)) == Y).sum())
    return {"holdout_loss": total / len(targets), "holdout_accuracy": hits / len(targets)}


_BEST_NAME = "best.pt"  # the weights of the early-stopped network's best pass, beside checkpoint.pt


def _train_network(setup: AttributeSetup, name: str, config: Any, seed: int, items: torch.utils.data.Dataset,
                   key: _DataKey, monitor: torch.utils.data.Dataset | None = None, step_images: int = 0,
                   holdout: torch.utils.data.Dataset | None = None) -> tuple[torch.nn.Module, Path]:
    """Train (or load the finished run of) one network on ``items``; returns the model in eval mode and its run.

    ``monitor``: validation items scored after every pass (their figures become columns of the run's
    ``metrics.csv``, read by :func:`learning_curves`); shown on the page, never used to choose anything.
    ``step_images``: the schedule is ``epochs`` passes over this many images (0: over ``items``).
    ``holdout``: FashionAI rows held out of the training images; early stopping: up to ``max_epochs`` passes
    (the schedule spans them), ended by :func:`stop_now` on their loss after each pass; the weights of the best
    pass (:func:`best_pass`) are returned."""
    epochs = setup.max_epochs if holdout is not None else 0
    tc = train_config(setup, seed, step_images or len(items), epochs)
    tag = f"-stop{setup.patience}-holdout{len(holdout)}" if holdout is not None else ""
    run_dir = run_dir_for(runs_dir(), f"{name}{tag}-s{seed}", config, tc, key)
    model = seeded_build(build_recognizer, config, seed)
    evaluate = stop = None
    if monitor is not None and len(monitor):
        score = _monitor_fashionai if isinstance(config, FashionAIRecognizerConfig) else _monitor_deepfashion
        evaluate = lambda m, step: score(m, monitor, setup.amp)  # noqa: E731
    if holdout is not None:
        evaluate = _keeping_best(run_dir / _BEST_NAME, holdout, evaluate, tc.eval_every)
        stop = lambda history: stop_now([h["holdout_loss"] for h in history], setup.patience)  # noqa: E731
    with exclusive(run_dir):  # another notebook running beside this one may be training the same network
        result = train(model, items, tc, run_dir, evaluate=evaluate, stop=stop, progress=False)
    if result.resumed_from != result.step:
        log.info("%s: %d steps in %.0f s (%.1f img/s)", run_dir.name, result.step, result.wall_time_s,
                 result.images_per_s)
    if holdout is not None:
        best = torch.load(run_dir / _BEST_NAME, map_location="cpu", weights_only=False)
        chosen = best_pass(_read_column(run_dir / METRICS_NAME, "holdout_loss"))
        if best["pass"] != chosen:
            raise ValueError(f"{run_dir / _BEST_NAME}: holds pass {best['pass']}, but the held-out losses of "
                             f"{METRICS_NAME} choose pass {chosen}; delete the run folder and train again")
        result.model.load_state_dict(best["model"])
    # channels-last: the layout the engine trains in (a loaded finished run comes back contiguous)
    return result.model.to(memory_format=torch.channels_last).eval(), run_dir


def _keeping_best(path: Path, holdout: torch.utils.data.Dataset,
                  monitor: Callable[[torch.nn.Module, int], dict[str, float]] | None, per_pass: int
                  ) -> Callable[[torch.nn.Module, int], dict[str, float]]:
    """An evaluate hook: the monitor's figures and :func:`_holdout_scores`, saving the weights to ``path`` with
    their 1-based ``pass`` (``per_pass`` steps each) whenever the held-out loss is the lowest so far."""

    def evaluate(model: torch.nn.Module, step: int) -> dict[str, float]:
        values = {**(monitor(model, step) if monitor is not None else {}), **_holdout_scores(model, holdout)}
        # a file left by an interrupted attempt holds a pass this one replays bit for bit (same seed, same data),
        # so only a strictly lower loss replaces it
        prior = torch.load(path, map_location="cpu", weights_only=False)["holdout_loss"] if path.is_file() else math.inf
        if values["holdout_loss"] < prior:
            with atomic_write(path, "wb") as f:
                torch.save({"pass": math.ceil(step / per_pass), "holdout_loss": values["holdout_loss"],
                            "model": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}}, f)
        return values

    return evaluate


def _read_column(path: Path, column: str) -> list[float]:
    """The non-empty values of ``column`` in a run's ``metrics.csv``, in step order ([] without the file)."""
    import pandas as pd

    if not path.is_file():
        return []
    rows = pd.read_csv(path)
    return rows[column].dropna().tolist() if column in rows.columns else []


def _scoring(model: torch.nn.Module, amp: bool) -> contextlib.AbstractContextManager:
    """The autocast a network is scored under: bf16 with ``amp`` where the hardware has it (as its training forward
    ran: ``AttributeSetup.amp``), else none."""
    device = next(model.parameters()).device
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp and bf16_native(device))


def _batched_predict(model: torch.nn.Module, items: torch.utils.data.Dataset, batch_size: int = 64, *,
                     amp: bool = False) -> tuple[dict[str, torch.Tensor], list[dict]]:
    """``model.predict`` over ``items`` in chunks (under :func:`_scoring`): dict output name -> (B, ...)
    concatenated, and the B targets."""
    parts: list[dict] = []
    targets: list[dict] = []
    for lo in range(0, len(items), batch_size):  # chunks of images
        images, chunk = collate([items[i] for i in range(lo, min(lo + batch_size, len(items)))])
        with _scoring(model, amp):
            parts.append(model.predict(images, chunk))
        targets.extend(chunk)
    return ({k: torch.cat([p[k] for p in parts]) for k in parts[0]} if parts else {}), targets


def learning_curves(predictions: Mapping[str, Sequence[TaskPredictions | DeepFashionPredictions]]):
    """Per-pass learning curves of every network behind ``predictions`` (method -> one per seed), read from the
    runs' ``metrics.csv``: a long DataFrame with columns ``method``, ``seed`` (position in the list), ``network``,
    ``epoch`` (1-based pass), ``train_loss`` (mean of the loss rows logged in that pass) and each monitor column
    (``val_accuracy``; DeepFashion ``val_category_top3`` / ``val_attribute_top3``; an early-stopped network's
    ``holdout_loss`` / ``holdout_accuracy``), scored after the pass."""
    import pandas as pd

    frames = []
    for method, per_seed in predictions.items():  # over the few methods
        for seed, pred in enumerate(per_seed):  # over the few seeds
            for network, run in pred.runs:  # over the 1 to 8 networks
                path = Path(run) / METRICS_NAME
                if not path.is_file():
                    raise FileNotFoundError(f"{path}: no metrics of the network {network!r} of {method!r}")
                rows = pd.read_csv(path)
                evaluated = rows.dropna(subset=[c for c in rows.columns if c.startswith(_MONITORED)], how="all")
                if not {c for c in rows.columns if c.startswith("val_")}:
                    raise ValueError(f"{path}: no val_ column (a run trained without a monitor)")
                # pass e spans the steps after the (e-1)-th evaluation up to the e-th (eval_every = one pass)
                bounds = [0, *evaluated["step"].tolist()]
                epoch = np.searchsorted(np.asarray(bounds[1:]), rows["step"].to_numpy(), side="left") + 1
                loss = rows.assign(epoch=epoch).dropna(subset=["total"]).groupby("epoch")["total"].mean()
                curve = evaluated.drop(columns=[c for c in evaluated.columns if not c.startswith(_MONITORED)])
                curve.insert(0, "epoch", np.arange(1, len(curve) + 1))
                curve.insert(1, "train_loss", loss.reindex(curve["epoch"]).to_numpy())
                frames.append(curve.assign(method=method, seed=seed, network=network))
    if not frames:
        raise ValueError("predictions hold no network runs")
    out = pd.concat(frames, ignore_index=True)
    return out[["method", "seed", "network", "epoch", "train_loss",
                *[c for c in out.columns if c.startswith(_MONITORED)]]]


def stopping_passes(curves):
    """The pass early stopping kept for every network with a held-out loss in ``curves`` (:func:`learning_curves`):
    a DataFrame with columns ``method``, ``seed``, ``network``, ``passes`` (trained before it stopped), ``chosen``
    (:func:`best_pass` of its held-out losses) and the ``holdout_loss``, ``holdout_accuracy`` and
    ``val_accuracy`` of the chosen pass."""
    import pandas as pd

    if "holdout_loss" not in curves.columns:
        raise ValueError("curves hold no early-stopped network (no holdout_loss column)")
    rows = []
    stopped = curves.dropna(subset=["holdout_loss"])
    for (method, seed, network), run in stopped.groupby(["method", "seed", "network"], sort=False):  # networks
        run = run.sort_values("epoch")
        chosen = best_pass(run["holdout_loss"].tolist())
        at = run.iloc[chosen - 1]
        rows.append({"method": method, "seed": seed, "network": network, "passes": len(run), "chosen": chosen,
                     "holdout_loss": at["holdout_loss"], "holdout_accuracy": at.get("holdout_accuracy", math.nan),
                     "val_accuracy": at.get("val_accuracy", math.nan)})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------------------------------------
# Table 2: FashionAI attributes
# ------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FashionAIMethod:
    """A row of Table 2: how the networks are arranged, what they crop from and their loss."""

    joint: bool  # False: one network per task (the baseline); True: the length and the design network (IV.B)
    beta: float | None  # "maybe" loss weight; None: plain cross-entropy on the y class
    keypoints: str = PLAIN  # crops from "plain" detector key points or after New-key-detection ("nkd")
    # joint only: train each network for the optimiser steps of one per-task network (``epochs`` passes over one
    # task's share of its images) instead of ``epochs`` passes over all its images (the paper's protocol)
    equal_steps: bool = False
    # per-task only: train each network up to ``max_epochs`` passes on its task's images less a held-out share and
    # stop once the held-out loss stops falling (``patience``), keeping the best pass
    early_stop: bool = False

    def __post_init__(self) -> None:
        if self.keypoints not in (*_SOURCES, GROUND_TRUTH):
            raise ValueError(f"keypoints must be one of {(*_SOURCES, GROUND_TRUTH)}, got {self.keypoints!r}")
        if self.equal_steps and not self.joint:
            raise ValueError("equal_steps applies to joint networks only (a per-task network sets the steps)")
        if self.early_stop and self.joint:
            raise ValueError("early_stop applies to per-task networks only (joint=False)")


# The rows of Table 2 (the paper's ladder) and the ingredients alone, in display order.
BASELINE = "Baseline: a network per task"
JOINT = "+ joint learning"
MAYBE = "+ multi-label (maybe) loss"
FULL = "+ New-key-detection"
MAYBE_ALONE = "baseline + maybe loss only"
NKD_ALONE = "baseline + New-key-detection only"
JOINT_EQUAL_STEPS = "+ joint learning, at the baseline's optimiser steps"
BASELINE_EARLY_STOP = "Baseline, each network stopped early on held-out training images"
LADDER = (BASELINE, JOINT, MAYBE, FULL)
INGREDIENTS = (MAYBE_ALONE, NKD_ALONE)


def ingredients_sentence(differences: Mapping[str, CI | None]) -> str:
    """Page 20's sentence on the ingredients alone: ``differences`` maps ``"maybe_alone"`` and ``"nkd_alone"`` to
    the mAP difference against the baseline (a fraction) or None where the profile did not train that row."""
    maybe, nkd = differences.get("maybe_alone"), differences.get("nkd_alone")
    if maybe is None or nkd is None:
        return ("This profile does not train the ingredients alone (the parameter `ingredients` is false: its time "
                "goes to more training and validation images); the `gpu` profile trains them.")
    return (f"Alone on the baseline, the \"maybe\" loss changes mAP by {100 * maybe.estimate:+.2f} points "
            f"({verdict(maybe, better='higher')} that it helps) and New-key-detection's crops by "
            f"{100 * nkd.estimate:+.2f} ({verdict(nkd, better='higher')}).")


def table2_methods(beta: float = 0.1, *, ingredients: bool = True) -> dict[str, FashionAIMethod]:
    """Table 2's ladder, each ingredient alone, joint learning at the baseline's optimiser steps (a joint
    network otherwise takes as many steps as its tasks' per-task networks together) and the baseline trained until
    its held-out loss stops falling; ``beta`` is the maybe loss's weight (the paper's 0.1). Without
    ``ingredients``, the rows of each ingredient alone are left out."""
    methods = {
        BASELINE: FashionAIMethod(joint=False, beta=None, keypoints=PLAIN),
        JOINT: FashionAIMethod(joint=True, beta=None, keypoints=PLAIN),
        MAYBE: FashionAIMethod(joint=True, beta=beta, keypoints=PLAIN),
        FULL: FashionAIMethod(joint=True, beta=beta, keypoints=NKD),
        MAYBE_ALONE: FashionAIMethod(joint=False, beta=beta, keypoints=PLAIN),
        NKD_ALONE: FashionAIMethod(joint=False, beta=None, keypoints=NKD),
        JOINT_EQUAL_STEPS: FashionAIMethod(joint=True, beta=None, keypoints=PLAIN, equal_steps=True),
        BASELINE_EARLY_STOP: FashionAIMethod(joint=False, beta=None, keypoints=PLAIN, early_stop=True),
    }
    return methods if ingredients else {name: m for name, m in methods.items() if name not in INGREDIENTS}


_TABLE2_ORDER = ("collar_design_labels", "neck_design_labels", "neckline_design_labels", "lapel_design_labels",
                 "skirt_length_labels", "pant_length_labels", "sleeve_length_labels", "coat_length_labels")
# The paper's Table 2 (validation accuracy per task and mAP, %), in its column order (_TABLE2_ORDER, then mAP).
PAPER_TABLE2: dict[str, tuple[float, ...]] = {
    BASELINE: (84.27, 80.82, 84.00, 79.15, 73.49, 78.76, 69.50, 65.46, 92.52),
    JOINT: (86.02, 83.42, 85.11, 81.82, 74.49, 79.57, 69.85, 65.73, 92.86),
    MAYBE: (86.41, 82.52, 85.68, 80.88, 75.46, 80.29, 70.01, 65.81, 92.94),
    FULL: (86.74, 83.67, 85.51, 81.09, 75.56, 80.37, 70.02, 66.31, 92.98),
}


def fashionai_configs(setup: AttributeSetup, method: FashionAIMethod) -> dict[str, FashionAIRecognizerConfig]:
    """The networks of ``method``: AttrKey -> config (one per task) or ``"length"`` / ``"design"`` (joint)."""
    if method.joint:
        return joint_configs(setup.networks(), beta=method.beta)
    return per_task_configs(setup.networks(), beta=method.beta)


@dataclass(frozen=True)
class TaskPredictions:
    """Class probabilities of every validation image for its own task (a FashionAI row labels one task)."""

    tasks: tuple[str, ...]  # (B,) the AttrKey of each image
    probs: torch.Tensor  # (B, 10) float: softmax over the image's task's C_t classes, zeros beyond them
    labels: torch.Tensor  # (B, 10) long: label codes Y / M / N of the image's task, N beyond its classes
    runs: tuple[tuple[str, str], ...] = ()  # (network, run folder) of each network that scored them

    def __len__(self) -> int:
        return len(self.tasks)


class InputCache:
    """The network inputs (crops) of a split's images, each computed once: every seed and every row whose networks
    crop alike (same key points, crop kind, margins and input size) scores the same inputs, and on a large
    validation set decoding and cropping cost more than the small networks' forward.

    Holds ``(B, 3, S, S)`` float per kind of crop (about 0.9 GB for 19,200 images at 64 px)."""

    def __init__(self, items: torch.utils.data.Dataset, batch_size: int = 64) -> None:
        self.items, self.batch_size = items, batch_size
        self._inputs: dict[tuple, torch.Tensor] = {}
        self._done: dict[tuple, torch.Tensor] = {}
        self.labels: dict[int, torch.Tensor] = {}  # row -> its (C,) label codes, read with its image

    def __call__(self, model: torch.nn.Module, rows: Sequence[int]) -> torch.Tensor:
        """``(len(rows), 3, S, S)`` the inputs of ``model`` for items ``rows`` (:meth:`crop_inputs`)."""
        c = model.config
        key = (c.crop, c.crops, c.schema, c.net.input_size, tuple(model.mean.flatten().tolist()),
               tuple(model.std.flatten().tolist()))
        if key not in self._inputs:
            S = c.net.input_size
            self._inputs[key] = torch.empty(len(self.items), 3, S, S)
            self._done[key] = torch.zeros(len(self.items), dtype=torch.bool)
        inputs, done = self._inputs[key], self._done[key]
        missing = [r for r in rows if not done[r]]
        for lo in range(0, len(missing), self.batch_size):  # chunks of images
            chunk = missing[lo:lo + self.batch_size]
            images, targets = collate([self.items[i] for i in chunk])
            with torch.no_grad():
                inputs[chunk] = model.crop_inputs(images, targets)[0].to(inputs.device)
            done[chunk] = True
            self.labels.update({i: t["labels"] for i, t in zip(chunk, targets, strict=True)})
        return inputs[list(rows)]


def _task_predictions(networks: Mapping[str, tuple[torch.nn.Module, Path]], inputs: InputCache,
                      tasks: Sequence[str], cache_key: str, *, amp: bool = False) -> TaskPredictions:
    """Each image of ``inputs.items`` scored by the network that has its task (cached in that network's run
    folder), under :func:`_scoring`."""
    B = len(tasks)
    probs = torch.zeros(B, _C_MAX)
    labels = torch.full((B, _C_MAX), N, dtype=torch.long)
    done = torch.zeros(B, dtype=torch.bool)
    for model, run_dir in networks.values():  # a loop over the 2 or 8 networks
        mine = [i for i, t in enumerate(tasks) if t in model.net.tasks]
        if not mine:
            continue

        def compute(model=model, mine=mine) -> dict:
            x = inputs(model, mine)  # (len(mine), 3, S, S)
            out = []
            for lo in range(0, len(mine), inputs.batch_size):  # chunks of images
                with _scoring(model, amp):
                    out.append(model.predict_inputs(x[lo:lo + inputs.batch_size].contiguous(
                        memory_format=torch.channels_last)))
            out = {task: torch.cat([o[task] for o in out]).float() for task in out[0]}
            return {"rows": mine, "probs": [out[tasks[i]][j] for j, i in enumerate(mine)],
                    "labels": [inputs.labels[i] for i in mine]}

        got = cached(run_dir / f"predictions-{cache_key}-{library_digest()}.pt", compute)
        for row, p, y in zip(got["rows"], got["probs"], got["labels"], strict=True):  # rows of this network
            probs[row, : len(p)], labels[row, : len(y)], done[row] = p, y, True
    if not bool(done.all()):
        missing = sorted({tasks[i] for i in torch.nonzero(~done)[:, 0].tolist()})
        raise ValueError(f"no network of the method recognises the tasks {missing}")
    runs = tuple((name, str(run_dir)) for name, (_, run_dir) in networks.items())
    return TaskPredictions(tuple(tasks), probs, labels, runs)


def monitor_rows(tasks: Sequence[str], per_task: int) -> list[int]:
    """The validation rows the learning curves score after every pass: ``per_task`` rows of each task spread over
    its rows (:func:`spread_rows`; all rows of a task that has fewer, and every row with ``per_task`` 0), in row
    order."""
    if per_task == 0:
        return list(range(len(tasks)))
    rows: list[int] = []
    for task in dict.fromkeys(tasks):  # over the <= 8 tasks
        mine = [i for i, t in enumerate(tasks) if t == task]
        rows.extend(mine[i] for i in spread_rows(len(mine), min(per_task, len(mine))))
    return sorted(rows)


def fashionai_predictions(setup: AttributeSetup, method: FashionAIMethod, seed: int, data: AttributeData,
                          crops: Mapping[str, CropKeypoints], inputs: Mapping[str, InputCache] | None = None
                          ) -> TaskPredictions:
    """Train (or load) the networks of ``method`` for ``seed`` and score the validation images.

    Each network trains on the training images of its own tasks (a per-task network on its task's images, the
    joint length network on the four length tasks' images), ``setup.epochs`` passes, cropped from
    ``crops[split].points(method.keypoints)``. With ``method.early_stop``, ``setup.holdout_fraction`` of each
    task's training images (a split seeded by ``setup.data_seed``, the same for every seed) are held out and
    decide when it stops (:func:`_train_network`); the scored validation images play no part in it. The
    learning curves score :func:`monitor_rows`. ``inputs``: the validation crops by key-point kind, shared by the
    calls of every seed and row (:class:`InputCache`; default a fresh one).
    """
    if setup.dataset != "fashionai":
        raise ValueError(f"fashionai_predictions needs setup.dataset 'fashionai', got {setup.dataset!r}")
    if method.keypoints not in _SOURCES:
        raise ValueError(f"method.keypoints must be one of {_SOURCES} here, got {method.keypoints!r}")
    # a FashionAI row's task fixes the garment's category for five of the eight tasks: crop as that category
    train_kps = crops["train"].points(method.keypoints, crops["train"].task_categories(data.train.tasks)[0])
    val_kps = crops["val"].points(method.keypoints, crops["val"].task_categories(data.val.tasks)[0])
    key = _DataKey(data.train.key, f"{method.keypoints}-{crops['train'].source}", library_digest(_NETWORK_SOURCES))
    networks = {}
    monitored = monitor_rows(data.val.tasks, setup.monitor_per_task)
    for name, config in fashionai_configs(setup, method).items():  # the 2 or 8 networks
        rows = [i for i, t in enumerate(data.train.tasks) if t in dict(config.net.tasks)]
        val_rows = [i for i in monitored if data.val.tasks[i] in dict(config.net.tasks)]
        # equal steps: one task's share of the images sets the schedule, as it does for a per-task network
        step_images = math.ceil(len(rows) / len(config.net.tasks)) if method.equal_steps else 0
        tag = "-equal-steps" if method.equal_steps else ""
        holdout = None
        if method.early_stop:
            kept, held = holdout_split(len(rows), setup.holdout_fraction,
                                       torch.Generator().manual_seed(setup.data_seed))
            rows, holdout = [rows[i] for i in kept], _Items(data.train.dataset, [rows[i] for i in held], train_kps)
        networks[name] = _train_network(setup, f"attr-fashionai-{name}-{method.keypoints}{tag}", config, seed,
                                        _Items(data.train.dataset, rows, train_kps), key,
                                        monitor=_Items(data.val.dataset, val_rows, val_kps),
                                        step_images=step_images, holdout=holdout)
    cache = (inputs or {}).get(method.keypoints) or InputCache(_Items(data.val.dataset, range(len(data.val)), val_kps))
    cache_key = f"{data.val.key}-{method.keypoints}-{crops['val'].source}"
    return _task_predictions(networks, cache, data.val.tasks, cache_key, amp=setup.amp)


def fashionai_rows_for_seeds(setup: AttributeSetup, methods: Mapping[str, FashionAIMethod], seeds: Sequence[int]
                             ) -> tuple[dict[str, list[TaskPredictions]], AttributeData, dict[str, CropKeypoints]]:
    """:func:`fashionai_predictions` of every method and seed (training or loading), logging the time taken.

    Returns the predictions (method -> one per seed), the data and the crop key points."""
    data = attribute_data(setup)
    crops = crop_keypoints(setup, data)
    out: dict[str, list[TaskPredictions]] = {name: [] for name in methods}
    categories = crops["val"].task_categories(data.val.tasks)[0]
    inputs = {kind: InputCache(_Items(data.val.dataset, range(len(data.val)), crops["val"].points(kind, categories)))
              for kind in {m.keypoints for m in methods.values()}}
    for seed in seeds:  # over the few training seeds
        for name, method in methods.items():  # over the few rows of the table
            start = time.perf_counter()
            out[name].append(fashionai_predictions(setup, method, seed, data, crops, inputs))
            log.info("seed %d, %s: trained or loaded and scored in %.0f s", seed, name, time.perf_counter() - start)
    return out, data, crops


def fashionai_arrays(predictions_per_seed: Sequence[TaskPredictions]) -> list[tuple]:
    """Per seed, ``(probs (B, 10), labels (B, 10), tasks (B,) str array)``: the arguments of :func:`map_metric`
    and :func:`accuracy_metric` (instances are validation images)."""
    return [(p.probs, p.labels, np.asarray(p.tasks)) for p in predictions_per_seed]


def _by_task(probs: torch.Tensor, labels: torch.Tensor, tasks: np.ndarray) -> tuple[dict, dict]:
    """Split padded per-image arrays into the per-task ``(B_t, C_t)`` arrays the metrics take."""
    P, L = {}, {}
    for task in dict.fromkeys(tasks.tolist()):  # a loop over the <= 8 tasks present
        rows = torch.from_numpy(np.flatnonzero(tasks == task))
        c = len(FASHIONAI_TASKS[task])
        # contiguous: a strided slice makes torch's small reductions in the metrics ~1000x slower (thread sync)
        P[task], L[task] = probs[rows, :c].contiguous(), labels[rows, :c].contiguous()
    return P, L


def map_metric(variant: str = "wangxin") -> Callable[..., float]:
    """A function ``(probs, labels, tasks) -> float``: the challenge's mAP (a fraction) over the tasks present, as
    :func:`fashion_lib.metrics.fashionai_attribute_map` computes it (``variant`` as there)."""

    if variant not in ("wangxin", "antgo"):
        raise ValueError(f"variant must be 'wangxin' or 'antgo', got {variant!r}")

    def metric(probs: torch.Tensor, labels: torch.Tensor, tasks: np.ndarray) -> float:
        P, L = _by_task(probs, labels, np.asarray(tasks))
        # fashionai_attribute_map's mAP (the mean of attribute_ap over the tasks), without its other outputs: the
        # bootstrap calls this thousands of times
        return float(np.mean([attribute_ap(P[t], L[t], variant=variant) for t in P]))

    return metric


def accuracy_metric(task: str | None = None) -> Callable[..., float]:
    """A function ``(probs, labels, tasks) -> float``: top-1 accuracy (:func:`fashion_lib.metrics.attribute_accuracy`)
    of ``task``, or with ``None`` the mean over the tasks present of their accuracies."""
    if task is not None and task not in FASHIONAI_TASKS:
        raise ValueError(f"task must be None or one of {', '.join(FASHIONAI_TASKS)}, got {task!r}")

    def metric(probs: torch.Tensor, labels: torch.Tensor, tasks: np.ndarray) -> float:
        P, L = _by_task(probs, labels, np.asarray(tasks))
        if task is not None:
            return attribute_accuracy(P[task], L[task]) if task in P else math.nan
        return float(np.mean([attribute_accuracy(P[t], L[t]) for t in P]))

    return metric


def accuracy_half_width(predictions_per_seed: Sequence[TaskPredictions], z: float = 1.96) -> dict[str, float]:
    """Half-width (a fraction) of each task's accuracy interval from its validation images alone: the normal
    approximation ``z * sqrt(p (1 - p) / n_t)`` at the accuracy ``p`` averaged over seeds, ``n_t`` the task's
    validation images (the image part of the interval; differences between seeds widen it)."""
    if not predictions_per_seed:
        raise ValueError("predictions_per_seed is empty")
    tasks = np.asarray(predictions_per_seed[0].tasks)
    out = {}
    for task in dict.fromkeys(tasks.tolist()):  # a loop over the <= 8 tasks
        p = float(np.mean([accuracy_metric(task)(*a) for a in fashionai_arrays(predictions_per_seed)]))
        out[task] = z * math.sqrt(p * (1 - p) / int((tasks == task).sum()))
    return out


def chance_by_task(predictions: TaskPredictions) -> dict[str, dict[str, float]]:
    """Accuracy of guessing on these validation images, per task (AttrKey -> figures, fractions): ``"uniform"``
    (one over the number of classes that occur as a ``y``) and ``"majority"`` (always the most frequent ``y``
    class)."""
    probs, labels, tasks = fashionai_arrays([predictions])[0]
    _, L = _by_task(probs, labels, tasks)
    out = {}
    for task, codes in L.items():  # a loop over the <= 8 tasks
        share = (codes == Y).float().mean(0)  # (C_t,) how often each class is the y
        out[task] = {"uniform": 1.0 / max(int((share > 0).sum()), 1), "majority": float(share.max())}
    return out


def chance_accuracy(predictions: TaskPredictions) -> dict[str, float]:
    """:func:`chance_by_task` as the mean over tasks: ``"uniform"`` and ``"majority"``."""
    per_task = chance_by_task(predictions).values()
    return {kind: float(np.mean([c[kind] for c in per_task])) for kind in ("uniform", "majority")}


def table2_frame(predictions: Mapping[str, Sequence[TaskPredictions]], *, paper: bool = True):
    """Table 2 as a DataFrame: per-task accuracy and mAP (%), means over seeds, beside the paper's rows.

    Columns are the paper's (Collar ... Coat, mAP) plus the mean accuracy; a row ``"<method> (paper)"`` follows
    each of ours that the paper reports."""
    import pandas as pd

    columns = [PAPER_TASK_NAMES[t] for t in _TABLE2_ORDER]
    rows = {}
    for name, per_seed in predictions.items():  # over the few methods
        arrays = fashionai_arrays(per_seed)
        row = {PAPER_TASK_NAMES[t]: 100 * np.mean([accuracy_metric(t)(*a) for a in arrays]) for t in _TABLE2_ORDER}
        row["mAP"] = 100 * np.mean([map_metric()(*a) for a in arrays])
        row["mean accuracy"] = 100 * np.mean([accuracy_metric()(*a) for a in arrays])
        rows[f"{name} (ours)"] = row
        if paper and name in PAPER_TABLE2:
            rows[f"{name} (paper)"] = dict(zip([*columns, "mAP"], PAPER_TABLE2[name], strict=True))
    return pd.DataFrame.from_dict(rows, orient="index")[[*columns, "mAP", "mean accuracy"]].round(2)


# ------------------------------------------------------------------------------------------------------------------
# The beta ablation: the joint network on garments generated on the fly, cropped from their ground truth
# ------------------------------------------------------------------------------------------------------------------


class _TaskGarments(torch.utils.data.Dataset):
    """Synthetic garments labelled like FashionAI rows: item ``i`` has one task, ``tasks[i % T]``, and a garment of
    a category that task applies to; targets hold ``task``, ``labels`` (C,), the ground-truth ``keypoints``
    (1, 24, 3) and ``image_id``."""

    def __init__(self, world: WorldConfig, n: int, seed: int, split: str, tasks: Sequence[str]) -> None:
        self.tasks = tuple(tasks)
        self.n = n
        counts = [len(range(j, n, len(self.tasks))) for j in range(len(self.tasks))]
        self.sources = [SyntheticGarments(world, c, seed, split=f"{split}-{t}", categories=TASK_CATEGORIES[t])
                        for t, c in zip(self.tasks, counts, strict=True)]

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict]:
        if not 0 <= index < self.n:
            raise IndexError(f"index must be in [0, {self.n}), got {index}")
        j, k = index % len(self.tasks), index // len(self.tasks)
        image, t = self.sources[j][k]
        task = self.tasks[j]
        return image, {"task": task, "labels": t["attributes"][task], "keypoints": t["keypoints"], "image_id": index}


def task_garments(world: WorldConfig, n: int, seed: int, split: str, tasks: Sequence[str] = LENGTH_TASKS
                  ) -> torch.utils.data.Dataset:
    """``n`` synthetic garments labelled like FashionAI rows (one task each, cycling through ``tasks``), with their
    ground-truth key points; generated on the fly, item ``i`` depends only on ``(seed, split, i)``."""
    bad = [t for t in tasks if t not in FASHIONAI_TASKS]
    if bad or not tasks:
        raise ValueError(f"tasks must be a non-empty list of FashionAI tasks, got {list(tasks)!r}")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    return _TaskGarments(world, n, seed, split, tasks)


def maybe_statistics(dataset: torch.utils.data.Dataset) -> tuple[float, int]:
    """The ``m``-label rate (fraction of items with at least one ``m``) and ``t_max`` (the most ``m`` labels of
    one item) of a data set of FashionAI-row items; ``1 / t_max`` bounds the maybe loss's ``beta``."""
    codes = [dataset[i][1]["labels"] for i in range(len(dataset))]  # renders every item once
    rate = float(np.mean([float(label_rates(c[None])[1]) for c in codes])) if codes else math.nan
    t_max = max((int((c == M).sum()) for c in codes), default=0)
    return rate, t_max


def beta_predictions(setup: AttributeSetup, beta: float | None, maybe_width: float, seed: int, *,
                     network: str = "length") -> TaskPredictions:
    """Train (or load) the joint ``network`` ("length" or "design") with maybe-loss weight ``beta`` on synthetic
    garments whose labels get an ``m`` within ``maybe_width`` of a class boundary; crops from the ground-truth key
    points; score ``val_images`` garments of the same world (one task each)."""
    if network not in ("length", "design"):
        raise ValueError(f"network must be 'length' or 'design', got {network!r}")
    tasks = LENGTH_TASKS if network == "length" else DESIGN_TASKS
    world = dataclasses.replace(setup.world, maybe_width=maybe_width)
    train_set = task_garments(world, setup.train_images, setup.data_seed, "train", tasks)
    val_set = task_garments(world, setup.val_images, setup.data_seed, "val", tasks)
    config = joint_configs(setup.networks(), beta=beta)[network]
    train_key = content_digest({"world": dataclasses.asdict(world), "n": setup.train_images, "seed": setup.data_seed})
    key = _DataKey(train_key, GROUND_TRUTH, library_digest(_NETWORK_SOURCES))
    net = _train_network(setup, f"attr-beta-{network}", config, seed, train_set, key, monitor=val_set)
    val_tasks = [val_set.tasks[i % len(tasks)] for i in range(len(val_set))]
    val_key = content_digest({"world": dataclasses.asdict(world), "n": setup.val_images, "seed": setup.data_seed})
    return _task_predictions({network: net}, InputCache(val_set), val_tasks, f"val-{val_key}", amp=setup.amp)


# ------------------------------------------------------------------------------------------------------------------
# Table 3: DeepFashion
# ------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeepFashionMethod:
    """A row of Table 3: one network with both heads or one per head, and what it sees."""

    joint: bool  # True: one network, category and attribute heads; False: a category and an attribute network
    crop: str  # "full" (the whole image) or "normal" (the Normal-crop of the crop key points)
    keypoints: str = NKD  # with "normal": "plain" or "nkd" crop key points

    def __post_init__(self) -> None:
        if self.crop not in ("full", "normal"):
            raise ValueError(f"crop must be 'full' or 'normal', got {self.crop!r}")
        if self.keypoints not in _SOURCES:
            raise ValueError(f"keypoints must be one of {_SOURCES}, got {self.keypoints!r}")


T3_BASELINE = "Baseline: separate networks, whole image"
T3_FULL = "+ joint learning and New-key-detection"
T3_JOINT_ALONE = "baseline + joint learning only"
T3_NKD_ALONE = "baseline + New-key-detection crop only"
T3_PLAIN = "+ joint learning, crops from the plain detector's key points"


def table3_methods() -> dict[str, DeepFashionMethod]:
    """Table 3's two rows of ours, the full row on the plain detector's crops (New-key-detection's own share is
    the full row minus it) and each ingredient alone."""
    return {
        T3_BASELINE: DeepFashionMethod(joint=False, crop="full"),
        T3_FULL: DeepFashionMethod(joint=True, crop="normal", keypoints=NKD),
        T3_PLAIN: DeepFashionMethod(joint=True, crop="normal", keypoints=PLAIN),
        T3_JOINT_ALONE: DeepFashionMethod(joint=True, crop="full"),
        T3_NKD_ALONE: DeepFashionMethod(joint=False, crop="normal", keypoints=NKD),
    }


TABLE3_GROUPS = ("category", "texture", "fabric", "shape", "part", "style", "all")
"""Column groups of Table 3, each with top-3 and top-5 (category: accuracy; the others: attribute recall)."""
# The paper's Table 3 (%), each row top-3, top-5 per group of TABLE3_GROUPS, on the real DeepFashion test set.
PAPER_TABLE3: dict[str, tuple[float, ...]] = {
    T3_BASELINE: (90.60, 96.45, 60.26, 69.57, 44.82, 54.57, 60.00, 68.47, 45.57, 55.47, 32.58, 41.36, 48.86, 58.12),
    T3_FULL: (92.75, 96.71, 64.52, 73.80, 49.87, 59.89, 64.46, 72.46, 51.73, 60.95, 36.45, 45.00, 53.64, 62.69),
}
# Other methods' published rows as the paper quotes them (real DeepFashion; context, not reproduced here).
PAPER_TABLE3_OTHERS: dict[str, tuple[float, ...]] = {
    "WTBI [2]": (43.73, 66.26, 24.21, 32.65, 25.38, 36.06, 23.39, 31.26, 26.31, 33.24, 49.85, 58.68, 27.46, 35.37),
    "DARN [19]": (59.48, 79.58, 36.15, 48.15, 36.64, 48.52, 35.89, 46.93, 39.17, 50.14, 66.11, 71.36, 42.35, 51.95),
    "FashionNet [20]": (82.58, 90.17, 37.46, 49.52, 39.30, 49.84, 39.47, 48.59, 44.13, 54.02, 66.43, 73.16, 45.52,
                        54.61),
    "Weakly [21]": (86.30, 92.80, 53.60, 63.20, 39.10, 48.80, 50.10, 59.50, 38.80, 48.90, 30.50, 38.30, 23.10, 30.40),
}


def deepfashion_configs(setup: AttributeSetup, method: DeepFashionMethod, *, num_categories: int,
                        num_attributes: int) -> dict[str, DeepFashionRecognizerConfig]:
    """The networks of ``method``: ``{"joint": ...}`` or ``{"category": ..., "attributes": ...}``, each trained
    only on its head's loss (the other head's weight is 0)."""
    base = {"num_categories": num_categories, "num_attributes": num_attributes, "crop": method.crop}
    if method.joint:
        return {"joint": deepfashion_config(setup.networks(), **base)}
    return {"category": deepfashion_config(setup.networks(), attribute_weight=0.0, **base),
            "attributes": deepfashion_config(setup.networks(), category_weight=0.0, **base)}


@dataclass(frozen=True)
class DeepFashionPredictions:
    """Category and attribute scores of every scored image."""

    category_probs: torch.Tensor  # (B, C) float softmax over the categories
    category: torch.Tensor  # (B,) long true category, 0-based
    attribute_scores: torch.Tensor  # (B, A) float sigmoid of each attribute
    attributes: torch.Tensor  # (B, A) long true attributes in {0, 1}
    runs: tuple[tuple[str, str], ...] = ()  # (network, run folder) of each network that scored them

    def __len__(self) -> int:
        return len(self.category)


def _loader(split: AttributeSplit) -> DeepFashionAttributes:
    return split.dataset.dataset  # AttributeSplit wraps the loader in a Subset


def attribute_groups(data: AttributeData) -> dict[str, torch.Tensor]:
    """Attribute indices of each DeepFashion type (texture, fabric, shape, part, style)."""
    types = _loader(data.val).tables.attribute_types
    return {name: torch.nonzero(types == code)[:, 0] for code, name in ATTRIBUTE_TYPES.items()
            if bool((types == code).any())}


def deepfashion_predictions(setup: AttributeSetup, method: DeepFashionMethod, seed: int, data: AttributeData,
                            crops: Mapping[str, CropKeypoints]) -> DeepFashionPredictions:
    """Train (or load) the networks of ``method`` for ``seed`` on every training image and score the scored
    split (``setup.epochs`` passes each)."""
    if setup.dataset != "deepfashion":
        raise ValueError(f"deepfashion_predictions needs setup.dataset 'deepfashion', got {setup.dataset!r}")
    tables = _loader(data.train).tables
    configs = deepfashion_configs(setup, method, num_categories=len(tables.category_names),
                                  num_attributes=len(tables.attribute_names))
    source = method.keypoints if method.crop == "normal" else "none"
    train_kps = crops["train"].points(method.keypoints) if method.crop == "normal" else None
    val_kps = crops["val"].points(method.keypoints) if method.crop == "normal" else None
    key = _DataKey(data.train.key, f"{source}-{crops['train'].source}" if train_kps is not None else source,
                   library_digest(_NETWORK_SOURCES))
    scores: dict[str, torch.Tensor] = {}
    runs = []
    val = _Items(data.val.dataset, range(len(data.val)), val_kps)
    for name, config in configs.items():  # the one or two networks
        model, run_dir = _train_network(setup, f"attr-deepfashion-{name}-{method.crop}-{source}", config, seed,
                                        _Items(data.train.dataset, range(len(data.train)), train_kps), key,
                                        monitor=val)
        runs.append((name, str(run_dir)))
        out = cached(run_dir / f"predictions-{data.val.key}-{key.keypoints}-{library_digest()}.pt",
                     lambda m=model: _batched_predict(m, val, amp=setup.amp)[0])
        heads = ("category", "attributes") if name == "joint" else (name,)
        scores.update({h: out[h] for h in heads})
    val_tables, rows = _loader(data.val).tables, _loader(data.val).indices[data.val.dataset.indices]
    return DeepFashionPredictions(scores["category"], val_tables.labels[rows] - 1, scores["attributes"],
                                  val_tables.attributes[rows], tuple(runs))


def deepfashion_rows_for_seeds(setup: AttributeSetup, methods: Mapping[str, DeepFashionMethod],
                               seeds: Sequence[int]) -> tuple[dict[str, list[DeepFashionPredictions]], AttributeData,
                                                              dict[str, CropKeypoints]]:
    """:func:`deepfashion_predictions` of every method and seed; returns them with the data and crop key points."""
    data = attribute_data(setup)
    crops = crop_keypoints(setup, data)
    out: dict[str, list[DeepFashionPredictions]] = {name: [] for name in methods}
    for seed in seeds:  # over the few training seeds
        for name, method in methods.items():  # over the few rows
            start = time.perf_counter()
            out[name].append(deepfashion_predictions(setup, method, seed, data, crops))
            log.info("seed %d, %s: trained or loaded and scored in %.0f s", seed, name, time.perf_counter() - start)
    return out, data, crops


def deepfashion_arrays(predictions_per_seed: Sequence[DeepFashionPredictions]) -> list[tuple]:
    """Per seed, ``(category_probs, category, attribute_scores, attributes)``: the arguments of
    :func:`recall_metric` and :func:`category_metric` (instances are images)."""
    return [(p.category_probs, p.category, p.attribute_scores, p.attributes) for p in predictions_per_seed]


def recall_metric(k: int, group: str = "all", groups: Mapping[str, torch.Tensor] | None = None
                  ) -> Callable[..., float]:
    """A function of :func:`deepfashion_arrays`' arguments: attribute top-``k`` recall (a fraction) over all
    attributes (``group="all"``) or within one group of ``groups`` (:func:`fashion_lib.metrics.topk_recall`)."""
    if group != "all" and (groups is None or group not in groups):
        raise ValueError(f"group must be 'all' or one of {sorted(groups or {})}, got {group!r}")
    chosen = None if group == "all" else {group: groups[group]}

    def metric(category_probs, category, attribute_scores, attributes) -> float:
        return topk_recall(attribute_scores, attributes, k, chosen)[group]

    return metric


def category_metric(k: int) -> Callable[..., float]:
    """A function of :func:`deepfashion_arrays`' arguments: top-``k`` category accuracy (a fraction)."""

    def metric(category_probs, category, attribute_scores, attributes) -> float:
        return topk_accuracy(category_probs, category, k)

    return metric


def deepfashion_chance(predictions: DeepFashionPredictions, groups: Mapping[str, torch.Tensor], k: int
                       ) -> dict[str, float]:
    """Top-``k`` scores of a random ranking: ``"category"``, ``k`` over the categories that occur; each attribute
    group and ``"all"``, ``k`` over the group's size (every positive is equally likely to be ranked in the top k)."""
    present = int(torch.unique(predictions.category).numel())
    out = {"category": min(1.0, k / max(present, 1)), "all": min(1.0, k / predictions.attributes.shape[1])}
    out.update({name: min(1.0, k / len(idx)) for name, idx in groups.items()})
    return out


def table3_frame(predictions: Mapping[str, Sequence[DeepFashionPredictions]], groups: Mapping[str, torch.Tensor],
                 *, paper: bool = True):
    """Table 3 as a DataFrame (%, means over seeds): top-3 / top-5 category accuracy and attribute recall per
    group and over all attributes; the paper's rows follow ours, then the other methods' published rows."""
    import pandas as pd

    columns = [(g.capitalize(), f"top{k}") for g in TABLE3_GROUPS for k in (3, 5)]
    rows = {}
    for name, per_seed in predictions.items():  # over the few methods
        arrays = deepfashion_arrays(per_seed)
        values = []
        for g in TABLE3_GROUPS:  # over the 7 column groups
            for k in (3, 5):
                if g == "category":
                    metric = category_metric(k)
                elif g == "all" or g in groups:
                    metric = recall_metric(k, g, groups)
                else:  # a group the data set does not have
                    values.append(math.nan)
                    continue
                values.append(100 * float(np.mean([metric(*a) for a in arrays])))
        rows[f"{name} (ours)"] = values
        if paper and name in PAPER_TABLE3:
            rows[f"{name} (paper)"] = list(PAPER_TABLE3[name])
    if paper:
        rows.update({f"{name} (paper's citation, real data)": list(v) for name, v in PAPER_TABLE3_OTHERS.items()})
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.columns = pd.MultiIndex.from_tuples(columns)
    return frame.round(2)


# ------------------------------------------------------------------------------------------------------------------
# Fig. 3: Normal-crop and Neck-crop on clear and occluded garments
# ------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Figure3:
    """Garments for the Fig. 3 analogue, with their crop key points."""

    images: list[torch.Tensor]  # B (3, H, W) float images
    truth: torch.Tensor | None  # (B, 24, 3) ground-truth key points (synthetic), None for real data
    occluded: torch.Tensor | None  # (B,) bool: an occluder hides at least one of the garment's points (synthetic)
    keypoints: CropKeypoints  # plain and New-key-detection key points of the detector


def figure3(setup: AttributeSetup, n_clear: int, n_occluded: int, *, scan: int = 400) -> Figure3:
    """Upper-body garments (the Neck-crop's) for the Fig. 3 analogue: synthetic, the first ``n_clear`` without and
    the first ``n_occluded`` with an occluded point among ``scan`` validation garments of the setup's world; real
    data, the first ``n_clear + n_occluded`` validation images. The detector of ``setup`` gives the key points."""
    if n_clear < 0 or n_occluded < 0 or n_clear + n_occluded < 1:
        raise ValueError(f"n_clear and n_occluded must be >= 0 with a positive sum, got {n_clear}, {n_occluded}")
    truth = occluded = None
    if setup.synthetic:
        garments = SyntheticGarments(setup.world, scan, setup.data_seed, split="figure3",
                                     categories=("blouse", "outwear", "dress"))
        clear, hidden = [], []
        for i in range(scan):  # scan the garments until both kinds are found
            image, target = garments[i]
            (hidden if bool(target["occluded"].any()) else clear).append((image, target))
            if len(clear) >= n_clear and len(hidden) >= n_occluded:
                break
        items = clear[:n_clear] + hidden[:n_occluded]
        images = [im for im, _ in items]
        truth = torch.cat([t["keypoints"] for _, t in items])
        occluded = torch.tensor([bool(t["occluded"].any()) for _, t in items])
    else:
        val = attribute_data(setup).val
        images = [val.dataset[i][0] for i in range(min(n_clear + n_occluded, len(val)))]
    detector = train_detectors(setup.detector, setup.detector_seed, progress=False).keypoint_rcnn
    kps = detect_crop_keypoints(detector, images, setup.refine, generator=torch.Generator().manual_seed(0),
                                category_points=setup.category_points)
    return Figure3(images, truth, occluded, kps)
