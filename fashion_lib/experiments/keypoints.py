"""Table 1 as library functions: train (or load) the detectors, detect on the validation set, refine, evaluate.

Paper, Table 1 and section III.A. One :class:`KeypointSetup` (built from a notebook's parameters) fixes the data
(the synthetic world, or a real data set's folder in its own layout), the detector presets and the schedule; a
seed fixes the initialisation and the data order. For each seed the study

1. trains Keypoint R-CNN (the paper's "Mask R-CNN") and CPN through :func:`fashion_lib.engine.train`, or loads
   them when a run with the same settings exists (:func:`train_detectors`);
2. detects on the validation set (:func:`detect_validation`), cached beside the run;
3. builds the rows of Table 1 and its controls from those detections (:func:`table1_rows`): the detector, the
   axis applied once (the paper's Fig. 1c), the detector run twice without the symmetry constraint, the detector
   with New-key-detection, CPN and CPN with New-key-detection.

A setup with ``cpn_steps = 0`` trains no CPN: its rows (:data:`CPN_ROWS`) are then absent from every result, and
the pages show them as "not tested at this scale" with :data:`CPN_NOT_TESTED_REASON`.

The validation set is always read through the real loaders: the synthetic one is first written in the real
layout (:func:`validation_set`), so the same code scores a real FashionAI or COCO folder.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from fashion_lib.coco_eval import keypoints_to_coco_results
from fashion_lib.data.coco import CocoKeypoints
from fashion_lib.data.fashionai import CATEGORIES, FashionAIKeypoints
from fashion_lib.data.transforms import ScaleCropConfig, ScaleCropped
from fashion_lib.engine import TrainConfig, TrainResult, run_dir_for, train
from fashion_lib.experiments import (
    DATA_SOURCES,
    TRAINING_SOURCES,
    MappedDataset,
    cached,
    exclusive,
    holdout_rows,
    library_digest,
    runs_dir,
    seeded_build,
    spread_rows,
)
from fashion_lib.keypoints import OCCLUDED, VISIBLE, KeypointSchema, get_schema, keypoint_extent
from fashion_lib.metrics import CI
from fashion_lib.models.cpn import CPNConfig, build_cpn
from fashion_lib.models.detector import TopDownDetector, all_instances, as_detect_fn, predict, top_instance
from fashion_lib.models.keypoint_rcnn import KeypointRCNNConfig, build_keypoint_rcnn, detection_target
from fashion_lib.provenance import content_digest
from fashion_lib.refine import (
    MissingCalibration,
    NewKeyDetectionResult,
    RefineConfig,
    RefineResult,
    RefineSummary,
    calibrate_missing_threshold,
    match_instances,
    new_key_detection,
    refine_symmetric,
    summarize_refinement,
)
from fashion_lib.report import NOT_TESTED, format_ci, format_count
from fashion_lib.synthetic import (
    SyntheticGarments,
    SyntheticPeople,
    WorldConfig,
    write_coco_people,
    write_fashionai_keypoints,
)

__all__ = [
    "KeypointSetup",
    "Detectors",
    "ValidationSet",
    "ROWS",
    "KRCNN",
    "SECOND",
    "AXIS_ONCE",
    "axis_once_variant",
    "NE_BAR",
    "CATEGORY_BAR",
    "detector_bar_sentence",
    "TWICE",
    "NKD",
    "CPN",
    "CPN_NKD",
    "CPN_ROWS",
    "CPN_NOT_TESTED_REASON",
    "CPN_NOT_TESTED_PARAGRAPH",
    "tested_rows",
    "train_detectors",
    "train_detector",
    "detector_run",
    "DetectorRun",
    "DETECTOR_MODELS",
    "validation_set",
    "detect_validation",
    "table1_rows",
    "coco_results",
    "Instances",
    "detected_instances",
    "detector_configs",
    "train_config",
    "training_set",
    "training_extents",
    "data_key",
    "FillErrors",
    "fill_errors",
    "filled_point_errors",
    "calibration_set",
    "calibrate_missing",
    "calibrated_refine",
    "crop_alone",
    "refiner_activity",
    "second_scale_sentence",
    "with_fill_threshold",
    "missing_rule_sentence",
    "point_scores",
    "missing_point_table",
    "missing_point_summary",
    "coco_point_errors",
    "seed_point_errors",
    "PointChanges",
    "point_changes",
    "row_point_changes",
    "coco_error_arrays",
    "PriorMap",
    "map_world",
    "prior_map",
    "prior_map_counts",
    "prior_map_notes",
    "prior_map_sentences",
    "pooled_summary",
    "second_scale_framing",
    "limb_change_metric",
    "limb_error_changes",
    "rows_for_seeds",
    "score_axis_once",
    "per_image_errors",
    "ne_arrays",
    "ne_metric",
    "coco_arrays",
    "coco_metric",
]

log = logging.getLogger(__name__)

# The rows of Table 1 and of its two controls (paper, section III.A), in display order.
KRCNN = "Keypoint R-CNN"
AXIS_ONCE = "Keypoint R-CNN + axis once"
TWICE = "Keypoint R-CNN twice, no symmetry"
# the crop's detection alone, mapped back (an instance with no matching crop detection keeps its first scale): the
# check that the second scale reads its crop as well as the detector reads the whole image
SECOND = "Keypoint R-CNN on its crop alone"
NKD = "Keypoint R-CNN + New-key-detection"
CPN = "CPN"
CPN_NKD = "CPN + New-key-detection"
ROWS = (KRCNN, AXIS_ONCE, SECOND, TWICE, NKD, CPN, CPN_NKD)
CPN_ROWS = (CPN, CPN_NKD)  # the rows that need a trained CPN: absent when a setup trains none (cpn_steps 0)
# Why a profile may train no CPN: the sentence every page prints beside the CPN rows it does not test.
CPN_NOT_TESTED_REASON = (
    "This profile trains no CPN (`cpn_steps: 0`): trained from scratch, CPN learns far more slowly per step than "
    "Keypoint R-CNN (in an earlier cpu build, after 240 steps, it scored FashionAI NE 35.7 %, the level of a "
    "category's mean layout placed in the detected box), and a CPN good enough to compare would not fit the cpu "
    "budget beside Keypoint R-CNN; its time goes to Keypoint R-CNN. The `gpu` profile trains it.")
# The Table 1 pages' paragraph on CPN where it is not trained.
CPN_NOT_TESTED_PARAGRAPH = (
    f"CPN's rows and its two claims (CPN against Keypoint R-CNN, New-key-detection against CPN) are **{NOT_TESTED}**: "
    f"{CPN_NOT_TESTED_REASON} They have no verdict here, and the front page lists them as not tested.")

_PRESETS = ("cpu", "gpu")
_MIN_IMAGE_SIZE = 64  # two pixels at the trunks' stride 32
DETECTOR_MODELS = ("keypoint_rcnn", "cpn")  # the two detectors of Table 1, as named in their run folders


@dataclass(frozen=True)
class KeypointSetup:
    """Data, detectors and schedule of a key-point experiment (one per notebook; seeds vary beside it)."""

    schema: str = "fashionai"  # "fashionai" (garments, scored by NE) or "coco" (people, scored by OKS AP)
    preset: str = "cpu"  # detector configurations: "cpu" (slim heads, small images) or "gpu" (paper scale)
    image_size: int = 128  # side of the synthetic images, and the detectors' input size with the cpu preset
    train_steps: int = 150  # Keypoint R-CNN optimizer steps per seed
    # Keypoint R-CNN steps per seed on COCO people; 0: train_steps (a profile may give the two schemas different
    # schedules: the cpu profile spends its budget where the study's NE target lies, on garments)
    coco_train_steps: int = 0
    # CPN optimizer steps per seed (from scratch it learns slower per step); 0: no CPN is trained, and its rows
    # (CPN_ROWS) and claims are "not tested at this scale" (CPN_NOT_TESTED_REASON)
    cpn_steps: int = 240
    batch_size: int = 8  # images per step
    lr: float = 1e-3  # peak learning rate (AdamW, warm-up then cosine)
    # scale and crop augmentation of the detectors' training images (data.transforms.ScaleCropConfig: key-point
    # box from a third of the frame to all of it, as real photographs); False: the literal setup, images as drawn
    scale_crop: bool = True
    # bf16 autocast of the training forward where the hardware has native bf16 (CUDA; CPUs with AVX512-BF16 or AMX:
    # 1.3-1.6x faster cpu-preset steps on the 2-core AMD EPYC); elsewhere float32, with a log line (engine.bf16_native)
    amp: bool = True
    val_images: int = 200  # validation images (synthetic: written with val_seed; real: rows spread over the file)
    world: WorldConfig = field(default_factory=WorldConfig)  # the synthetic world (its image size: image_size)
    data_root: str = ""  # a real data set's folder in its own layout; "" = the synthetic world
    train_file: str = ""  # real data: annotation file under data_root ("" = the layout's usual name)
    # real data: validation annotation file under val_root ("" = COCO: the usual name; FashionAI, whose downloads
    # label the training split only: val_images rows held out of train_file, which then trains on the others)
    val_file: str = ""
    val_root: str = ""  # real data: the validation split's folder, e.g. FashionAI's test_a ("" = data_root)
    val_seed: int = 10_000  # seed of the synthetic validation set (training seeds are small integers)
    val_world: WorldConfig | None = None  # a different world for the validation set only (None: ``world``)
    # held-out training images that calibrate the fill rule (refine.calibrate_missing_threshold, set as the
    # refiner's fill_threshold; the vote keeps score_threshold); 0: the refiner's own thresholds are used as given
    # (the default, so that threshold sweeps stay sweeps; the key-point notebooks set it)
    calibration_images: int = 0
    calibration_seed: int = 20_000  # synthetic: calibration images are the training world's with seed this + seed

    def __post_init__(self) -> None:
        get_schema(self.schema)
        if self.preset not in _PRESETS:
            raise ValueError(f"preset must be one of {_PRESETS}, got {self.preset!r}")
        coco_steps = self.coco_train_steps
        if isinstance(coco_steps, bool) or not isinstance(coco_steps, int) or coco_steps < 0:
            raise ValueError(f"coco_train_steps must be an integer >= 0 (0: train_steps), got {coco_steps!r}")
        for name in ("image_size", "train_steps", "batch_size", "val_images"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        for name, meaning in (("cpn_steps", "0: no CPN"), ("calibration_images", "0: no calibration")):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name} must be an integer >= 0 ({meaning}), got {value!r}")
        if self.image_size < _MIN_IMAGE_SIZE:
            raise ValueError(f"image_size must be >= {_MIN_IMAGE_SIZE}, got {self.image_size}: the detectors' ResNet "
                             "trunks downsample 32 times, and below that their last stage is 1 x 1 pixel, where batch "
                             "normalisation cannot train on one image per step")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")
        for name in ("scale_crop", "amp"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if self.data_root and not Path(self.data_root).is_dir():
            raise FileNotFoundError(f"data_root {self.data_root!r} is not a folder")
        if self.val_root and not self.data_root:
            raise ValueError("val_root is set but data_root is not: give the training split's folder too")
        if self.data_root:
            train_file, _, val_file, _ = self.files()
            for name, path in (("train_file", train_file), ("val_file", val_file)):
                if path is not None and not path.is_file():
                    raise FileNotFoundError(f"{name}: {path} does not exist (data_root {self.data_root!r}"
                                            f"{', val_root ' + repr(self.val_root) if name == 'val_file' else ''})")
        # one image size for the world and the detectors: image_size sets the worlds'
        for name in ("world", "val_world"):
            world = getattr(self, name)
            if world is not None and world.image_size != self.image_size:
                object.__setattr__(self, name, dataclasses.replace(world, image_size=self.image_size))

    @property
    def keypoint_rcnn_steps(self) -> int:
        """Keypoint R-CNN's optimizer steps per seed for this setup's schema."""
        return self.coco_train_steps if self.schema == "coco" and self.coco_train_steps else self.train_steps

    @property
    def synthetic(self) -> bool:
        """True when the data comes from the synthetic world."""
        return not self.data_root

    @property
    def trains_cpn(self) -> bool:
        """False when ``cpn_steps`` is 0: no CPN is trained and the CPN rows are not computed."""
        return self.cpn_steps > 0

    @property
    def holdout(self) -> bool:
        """True when validation rows are held out of the training file (real FashionAI without ``val_file``)."""
        return bool(self.data_root) and self.schema == "fashionai" and not self.val_file

    def files(self) -> tuple[Path, Path, Path | None, Path]:
        """Real data: (train annotations, train images, val annotations, val images) in the layout's usual names;
        the val annotations are None where validation rows are held out of the training file."""
        root = Path(self.data_root)
        val_root = Path(self.val_root) if self.val_root else root
        if self.schema == "fashionai":  # data-formats.md A.1: one split folder, image paths inside the CSV
            return (root / (self.train_file or "Annotations/train.csv"), root,
                    val_root / self.val_file if self.val_file else None, val_root)
        return (root / (self.train_file or "annotations/person_keypoints_train2017.json"), root / "train2017",
                val_root / (self.val_file or "annotations/person_keypoints_val2017.json"),
                val_root / "val2017" if not self.val_root else val_root)


def _fashionai_splits(setup: KeypointSetup) -> tuple[FashionAIKeypoints, list[int], FashionAIKeypoints, list[int]]:
    """Real FashionAI: the training loader and its rows, the validation loader and its candidate rows (disjoint
    from the training rows: held out of the training file, or a separate file checked to share no image)."""
    train_csv, root, val_csv, val_root = setup.files()
    train = FashionAIKeypoints(root, str(train_csv.relative_to(root)))
    if val_csv is None:
        train_rows, val_rows = holdout_rows(len(train), setup.val_images, where=f"train_file {train_csv}")
        return train, train_rows, train, val_rows
    val = FashionAIKeypoints(val_root, str(val_csv.relative_to(val_root)))
    if val_root.resolve() == root.resolve():
        shared = sorted(set(train.annotations.image_ids) & set(val.annotations.image_ids))
        if shared:
            raise ValueError(f"val_file {val_csv} shares {len(shared)} image(s) with train_file {train_csv} (e.g. "
                             f"{shared[0]}): validation images must not be trained on; leave val_file empty to "
                             f"hold rows out of the training file")
    return train, list(range(len(train))), val, list(range(len(val)))


@dataclass(frozen=True)
class DataKey:
    """What the trained models depend on besides their own configs (part of the run folder's hash)."""

    source: str
    world: dict
    library: str
    scale_crop: dict | None = None  # the training augmentation's ScaleCropConfig, None when off


def data_key(setup: KeypointSetup) -> DataKey:
    source = "synthetic" if setup.synthetic else str(Path(setup.data_root).resolve()) + f":{setup.train_file}" + (
        f":holdout-{setup.val_images}" if setup.holdout else "")
    return DataKey(source=source, world=dataclasses.asdict(setup.world) if setup.synthetic else {},
                   library=library_digest(TRAINING_SOURCES),
                   scale_crop=dataclasses.asdict(ScaleCropConfig()) if setup.scale_crop else None)


def detector_configs(setup: KeypointSetup) -> tuple[KeypointRCNNConfig, CPNConfig]:
    """The two detectors' configurations for the setup's preset (cpu: input side ``image_size``)."""
    if setup.preset == "cpu":
        size = setup.image_size
        return (KeypointRCNNConfig.cpu(setup.schema, min_size=(size,), max_size=size),
                CPNConfig.cpu(setup.schema))
    return KeypointRCNNConfig.gpu(setup.schema), CPNConfig.gpu(setup.schema)


def train_config(setup: KeypointSetup, seed: int, steps: int) -> TrainConfig:
    return TrainConfig(steps=steps, batch_size=setup.batch_size, lr=setup.lr, seed=seed, amp=setup.amp,
                       warmup_steps=min(100, steps // 10), checkpoint_every=max(25, steps // 4),
                       log_every=max(1, steps // 50), grad_clip=10.0)


def _for_detection(image: torch.Tensor, target: dict) -> tuple[torch.Tensor, dict]:
    return image, detection_target(target)


def training_set(setup: KeypointSetup, seed: int, steps: int) -> torch.utils.data.Dataset:
    """The training images: fresh synthetic items for every step (seeded by ``seed``), or the real train split;
    with ``setup.scale_crop`` each item rescaled and cropped by its own draw (:class:`ScaleCropped`, seeded by
    ``seed``; a real split is repeated to ``steps * batch_size`` items so that every epoch draws new scales)."""
    if setup.synthetic:
        n = steps * setup.batch_size
        cls = SyntheticGarments if setup.schema == "fashionai" else SyntheticPeople
        data = cls(setup.world, n, seed=seed, split="train")
    elif setup.schema == "fashionai":
        train, rows, _, _ = _fashionai_splits(setup)
        data = torch.utils.data.Subset(train, rows)
    else:
        annotations, images, _, _ = setup.files()
        data = CocoKeypoints(annotations, images)
    if setup.scale_crop:
        data = ScaleCropped(data, ScaleCropConfig(), seed, length=max(len(data), steps * setup.batch_size))
    return MappedDataset(data, _for_detection)


def training_extents(setup: KeypointSetup, seed: int, items: int) -> torch.Tensor:
    """(N,) float: :func:`~fashion_lib.keypoints.keypoint_extent` of each of the N instances in the first ``items``
    images of :func:`training_set` (seed ``seed``), as the detector sees them in training: after the scale-and-crop
    augmentation when ``setup.scale_crop``; NaN for an instance whose points all left the crop."""
    if items < 1:
        raise ValueError(f"items must be >= 1, got {items}")
    data = training_set(setup, seed, steps=math.ceil(items / setup.batch_size))
    out = []
    for i in range(items):  # over the images the figure needs
        image, target = data[i]
        out.append(keypoint_extent(target["keypoints"], image.shape[-2], image.shape[-1]))
    return torch.cat(out)


@dataclass(frozen=True)
class Detectors:
    """The trained detectors of one seed and where their runs live (no CPN when the setup trains none)."""

    keypoint_rcnn: torch.nn.Module
    cpn: torch.nn.Module | None  # None: the setup trains no CPN (cpn_steps 0)
    run_dir: Path  # the Keypoint R-CNN run (cached predictions are stored beside its checkpoint)
    cpn_run_dir: Path | None  # None with ``cpn``

    def __post_init__(self) -> None:
        if (self.cpn is None) != (self.cpn_run_dir is None):
            raise ValueError("Detectors: cpn and cpn_run_dir are given together, or both None (no CPN)")

    @property
    def has_cpn(self) -> bool:
        return self.cpn is not None

    @property
    def cpn_key(self) -> str:
        """The CPN run's name in cache file names (its predictions depend on it); ``"no-cpn"`` without one."""
        return self.cpn_run_dir.name if self.cpn_run_dir is not None else "no-cpn"

    @property
    def top_down(self) -> TopDownDetector:
        """CPN on the boxes of Keypoint R-CNN (the paper's fair CPN: detector boxes, not ground truth)."""
        if self.cpn is None:
            raise ValueError("no CPN was trained (the setup's cpn_steps is 0): there is no top-down detector")
        return TopDownDetector(self.keypoint_rcnn, self.cpn)


def tested_rows(setup: KeypointSetup, rows: Sequence[str] = ROWS) -> tuple[str, ...]:
    """The rows of ``rows`` that ``setup`` computes: all of them, less :data:`CPN_ROWS` when it trains no CPN."""
    return tuple(r for r in rows if setup.trains_cpn or r not in CPN_ROWS)


@dataclass(frozen=True)
class DetectorRun:
    """Everything that trains one detector of a setup and seed: its model, schedule and data, and its folder."""

    model: str  # one of DETECTOR_MODELS
    config: KeypointRCNNConfig | CPNConfig
    train_config: TrainConfig
    run_dir: Path  # under runs_dir(), named by a hash of the three configs and the data (engine.run_dir_for)

    def build(self) -> torch.nn.Module:
        """The untrained model, initialised from the run's seed."""
        build = build_keypoint_rcnn if self.model == "keypoint_rcnn" else build_cpn
        return seeded_build(build, self.config, self.train_config.seed)


def detector_run(setup: KeypointSetup, model: str, seed: int) -> DetectorRun:
    """The run of ``model`` (``"keypoint_rcnn"`` or ``"cpn"``) for ``setup`` and ``seed``: the one place that names
    a detector's run folder, so the notebooks and ``python -m fashion_lib.train`` find the same one."""
    if model not in DETECTOR_MODELS:
        raise ValueError(f"model must be one of {DETECTOR_MODELS}, got {model!r}")
    if model == "cpn" and not setup.trains_cpn:
        raise ValueError("cpn_steps is 0: this setup trains no CPN, so it has no CPN run")
    kcfg, ccfg = detector_configs(setup)
    config = kcfg if model == "keypoint_rcnn" else ccfg
    tc = train_config(setup, seed, setup.keypoint_rcnn_steps if model == "keypoint_rcnn" else setup.cpn_steps)
    return DetectorRun(model, config, tc, run_dir_for(runs_dir(), f"{model}-{setup.schema}-s{seed}", config, tc,
                                                      data_key(setup)))


def train_detector(setup: KeypointSetup, model: str, seed: int, *, progress: bool = True) -> TrainResult:
    """Train one detector of :func:`detector_run`, or load it from its finished run."""
    run = detector_run(setup, model, seed)
    with exclusive(run.run_dir):  # another notebook running beside this one may be training the same run
        return train(run.build(), training_set(setup, seed, run.train_config.steps), run.train_config, run.run_dir,
                     progress=progress)


def train_detectors(setup: KeypointSetup, seed: int, *, progress: bool = True) -> Detectors:
    """Train Keypoint R-CNN and CPN for ``seed``, or load them from finished runs with the same settings; no CPN
    (``Detectors.cpn`` None, no CPN run folder) when ``setup.cpn_steps`` is 0."""
    krcnn = train_detector(setup, "keypoint_rcnn", seed, progress=progress)
    if not setup.trains_cpn:
        return Detectors(krcnn.model.eval(), None, krcnn.run_dir, None)
    cpn = train_detector(setup, "cpn", seed, progress=progress)
    return Detectors(krcnn.model.eval(), cpn.model.eval(), krcnn.run_dir, cpn.run_dir)


@dataclass
class ValidationSet:
    """The validation images and their ground truth, read through the real loaders."""

    images: list[torch.Tensor]  # B images (3, H, W) float
    targets: list[dict]  # the loader's targets
    key: str  # identifies the set in cache file names
    annotation_file: Path | None = None  # COCO: the ground-truth JSON (for pycocotools)

    @property
    def keypoints(self) -> torch.Tensor:
        """FashionAI: (B, 24, 3) ground truth (one garment per image)."""
        return torch.cat([t["keypoints"] for t in self.targets])

    @property
    def categories(self) -> list[str]:
        """FashionAI: the B garment categories (given at test time in the challenge)."""
        return [t["category"] for t in self.targets]

    @property
    def image_ids(self) -> list[Any]:
        return [t["image_id"] for t in self.targets]


def validation_set(setup: KeypointSetup) -> ValidationSet:
    """The validation set: the synthetic one is written once in the real layout under :func:`runs_dir` (with
    ``val_seed``) and read back through the loader, like a real folder; a real one takes ``val_images`` rows
    spread over the validation file (or held out of the training file, see :class:`KeypointSetup`)."""
    if setup.synthetic:
        world = setup.val_world or setup.world
        key = content_digest({"schema": setup.schema, "n": setup.val_images, "seed": setup.val_seed,
                              "world": dataclasses.asdict(world), "library": library_digest(DATA_SOURCES)})
        root = runs_dir() / "data" / f"{setup.schema}-val-{key}"
        writer = write_fashionai_keypoints if setup.schema == "fashionai" else write_coco_people
        with exclusive(root):  # the writers build the folder aside and rename it into place when complete
            if not root.is_dir():
                writer(root, 2 * setup.val_images, setup.val_seed, world, val_fraction=0.5)
        if setup.schema == "fashionai":
            data = FashionAIKeypoints(root, "Annotations/val.csv")
            annotation_file = None
        else:
            annotation_file = root / "annotations" / "person_keypoints_val2017.json"
            data = CocoKeypoints(annotation_file, root / "val2017")
        rows = list(range(min(setup.val_images, len(data))))
    else:
        if setup.schema == "fashionai":
            _, _, data, pool = _fashionai_splits(setup)
            annotation_file = None
        else:
            _, _, annotation_file, val_images = setup.files()
            data = CocoKeypoints(annotation_file, val_images)
            pool = list(range(len(data)))
        # real files are grouped (FashionAI by category): rows spread over the file cover every category
        rows = [pool[i] for i in spread_rows(len(pool), setup.val_images)]
        source = Path(data.csv if setup.schema == "fashionai" else annotation_file).resolve()
        key = content_digest({"source": source, "rows": rows})
    items = [data[i] for i in rows]
    images, targets = [im for im, _ in items], [t for _, t in items]
    if annotation_file is not None and len(rows) < len(data):
        annotation_file = _coco_subset(annotation_file, [t["image_id"] for t in targets], key)
    return ValidationSet(images, targets, key, annotation_file)


def _coco_subset(annotation_file: Path, image_ids: Sequence[int], key: str) -> Path:
    """A COCO ground-truth file restricted to ``image_ids`` (pycocotools scores every image of its ground truth)."""
    target = runs_dir() / "data" / f"coco-gt-subset-{key}.json"
    if not target.is_file():
        data = json.loads(annotation_file.read_text())
        keep = set(image_ids)
        data["images"] = [im for im in data["images"] if im["id"] in keep]
        data["annotations"] = [a for a in data["annotations"] if a["image_id"] in keep]
        from fashion_lib.io import atomic_write

        with atomic_write(target) as f:
            json.dump(data, f)
    return target


def detect_validation(detectors: Detectors, val: ValidationSet, *, batch_size: int = 16) -> dict[str, list[dict]]:
    """Both detectors' predictions on the validation images (the shared format of
    :mod:`fashion_lib.models.detector`), cached beside the Keypoint R-CNN run. Keys: :data:`KRCNN`, and
    :data:`CPN` where a CPN was trained."""
    # inference code may change without retraining: the cache is keyed on every library source
    path = detectors.run_dir / f"predictions-{val.key}-{detectors.cpn_key}-{library_digest()}.pt"
    return cached(path, lambda: {row: predict(model, val.images, batch_size=batch_size)
                                 for row, model in _detector_models(detectors)})


def _detector_models(detectors: Detectors) -> list[tuple[str, torch.nn.Module]]:
    """(row, model) of each trained detector: Keypoint R-CNN, and CPN on its boxes where a CPN was trained."""
    return [(KRCNN, detectors.keypoint_rcnn)] + ([(CPN, detectors.top_down)] if detectors.has_cpn else [])


@dataclass(frozen=True)
class Instances:
    """Every detection to score, flattened over images: one per image for FashionAI, all of them for COCO."""

    keypoints: torch.Tensor  # (T, K, 3) x, y pixels, confidence
    scores: torch.Tensor  # (T,) instance confidence
    image_index: torch.Tensor  # (T,) long, index into the validation images
    # (T,) bool, two-scale rows only: the crop held a detection matching the instance (else its first scale stayed)
    matched: torch.Tensor | None = None
    refined: RefineResult | None = None  # one-scale refined rows: what the refiner did (filled points, axes)
    labels: torch.Tensor | None = None  # (T,) long, the detector's rows: class index (FashionAI category + 1; 0 none)


def _instances(predictions: list[dict], schema: str) -> Instances:
    K = get_schema(schema).num_keypoints
    if schema == "fashionai":  # one garment per image: the best detection (NaN key points where there is none)
        top = top_instance(predictions, K)
        return Instances(top.keypoints, top.scores, torch.arange(len(predictions)), labels=top.labels)
    counts = torch.tensor([len(p["scores"]) for p in predictions], dtype=torch.long)
    if int(counts.sum()) == 0:
        return Instances(torch.zeros(0, K, 3), torch.zeros(0), torch.zeros(0, dtype=torch.long))
    return Instances(torch.cat([p["keypoints"] for p in predictions]).float(),
                     torch.cat([p["scores"] for p in predictions]).float(),
                     torch.repeat_interleave(torch.arange(len(predictions)), counts))


def category_accuracy(instances: Instances, val: ValidationSet) -> dict[str, float]:
    """FashionAI: the share of validation garments whose top detection has the right category, overall (key
    ``"all"``) and per category (a detector that has not learnt the task names the wrong garment; an image without
    a detection counts as wrong). ``instances``: a detector's own row (:func:`detected_instances` or
    :func:`table1_rows`), which carries the labels."""
    if instances.labels is None:
        raise ValueError("these instances carry no labels: pass a detector's own row (KRCNN or CPN), not a refined one")
    truth = val.categories
    names = [CATEGORIES[i - 1] if 1 <= i <= len(CATEGORIES) else "" for i in instances.labels.tolist()]
    right = {c: [0, 0] for c in dict.fromkeys(truth)}
    for i, name in zip(instances.image_index.tolist(), names, strict=True):
        right[truth[i]][0] += name == truth[i]
        right[truth[i]][1] += 1
    out = {"all": sum(r for r, _ in right.values()) / max(sum(n for _, n in right.values()), 1)}
    return out | {c: r / n for c, (r, n) in right.items()}


# The study's bars for a detector trained well enough to test a refiner on (issue 17, the cpu profile): NE of visible
# points at most NE_BAR %, the top detection's garment category right for at least CATEGORY_BAR % of garments.
NE_BAR = 8.0
CATEGORY_BAR = 90.0


def detector_bar_sentence(ne: Sequence[float], category: Sequence[Mapping[str, float]], *, ne_bar: float = NE_BAR,
                          category_bar: float = CATEGORY_BAR) -> str:
    """The page's verdict on whether the detector is trained well enough: per seed, its NE of visible points
    (``ne``, %) against ``ne_bar`` and its category accuracy (``category``: per seed, :func:`category_accuracy`'s
    dict as fractions) against ``category_bar`` overall, naming every category below the bar in some seed."""
    if len(ne) != len(category) or not ne:
        raise ValueError(f"give one NE and one category accuracy per seed, got {len(ne)} and {len(category)}")
    ne_pass = sum(v <= ne_bar for v in ne)
    overall = [100 * c["all"] for c in category]
    cat_pass = sum(v >= category_bar for v in overall)
    low = {name: min(100 * c[name] for c in category) for name in category[0] if name != "all"}
    short = [f"{name} {value:.0f} %" for name, value in low.items() if value < category_bar]
    return (f"NE of visible points {', '.join(f'{v:.2f}' for v in ne)} % (per seed): {ne_pass} of {len(ne)} seeds "
            f"within the {ne_bar:g} % bar. Category right {', '.join(f'{v:.1f}' for v in overall)} %: {cat_pass} of "
            f"{len(ne)} seeds at or above the {category_bar:g} % bar"
            + (f"; below it in at least one seed (each at its lowest seed): {', '.join(short)}." if short else
               "; every category at or above it in every seed."))


def table1_rows(
    setup: KeypointSetup,
    detectors: Detectors,
    val: ValidationSet,
    refine: RefineConfig,
    *,
    rows: Sequence[str] = ROWS,
    seed: int = 0,
    batch_size: int = 16,
    thresholds: dict[str, float] | None = None,
) -> dict[str, Instances]:
    """The key points of each row of Table 1 (and its controls) for one seed, cached beside the run.

    Parameters
    ----------
    setup, detectors, val : from :func:`train_detectors` and :func:`validation_set`.
    refine : RefineConfig, the refiner's settings (both scales).
    rows : which rows to compute (a subset of :data:`ROWS`); without a CPN (``detectors.cpn`` None) the rows of
        :data:`CPN_ROWS` are left out, so they are absent from the result.
    seed : int, seed of the RANSAC generator.
    batch_size : int, images per detector call.
    thresholds : dict detector row (:data:`KRCNN`, :data:`CPN`) -> the fill threshold (``refine.fill_threshold``)
        for that detector's rows (:func:`calibrate_missing`); None: ``refine``'s own. Every point above
        ``refine.score_threshold`` still votes for the axis.

    Returns
    -------
    dict row name -> Instances (key points in image pixels).
    """
    unknown = [r for r in rows if r not in ROWS]
    if unknown:
        raise ValueError(f"rows has unknown entries {unknown}; valid: {list(ROWS)}")
    unknown = sorted(set(thresholds or {}) - {KRCNN, CPN})
    if unknown:
        raise ValueError(f"thresholds has unknown detector rows {unknown}; valid: {[KRCNN, CPN]}")
    rows = [r for r in rows if detectors.has_cpn or r not in CPN_ROWS]
    key = content_digest({"rows": list(rows), "refine": dataclasses.asdict(refine), "seed": seed,
                          "thresholds": thresholds, "library": library_digest()})
    path = detectors.run_dir / f"rows-{val.key}-{detectors.cpn_key}-{key}.pt"
    return cached(path, lambda: _compute_rows(setup, detectors, val, refine, rows, seed, batch_size,
                                              thresholds or {}))


def _compute_rows(setup: KeypointSetup, detectors: Detectors, val: ValidationSet, refine: RefineConfig,
                  rows: Sequence[str], seed: int, batch_size: int, thresholds: dict[str, float]
                  ) -> dict[str, Instances]:
    schema = get_schema(setup.schema)
    base = detected_instances(detectors, val, setup.schema)
    # every detection of a crop: the second scale keeps the one matching the instance it was cropped for
    detect = {row: as_detect_fn(model, schema.num_keypoints, batch_size=batch_size, every_instance=True)
              for row, model in _detector_models(detectors)}
    out: dict[str, Instances] = {}
    # the crop alone is a by-product of the "twice, no symmetry" run
    todo = [r for r in rows if r != SECOND] + ([TWICE] if SECOND in rows and TWICE not in rows else [])
    for row in todo:  # over the few rows of the table
        source = CPN if row in CPN_ROWS else KRCNN
        inst = base[source]
        cfg = with_fill_threshold(refine, thresholds[source]) if source in thresholds else refine
        cats = [val.categories[i] for i in inst.image_index.tolist()] if refine.pairs == "category" else None
        g = torch.Generator().manual_seed(seed)
        if row in (KRCNN, CPN):
            out[row] = inst
        elif row == AXIS_ONCE:
            res = refine_symmetric(inst.keypoints, schema, generator=g, config=cfg, categories=cats)
            out[row] = Instances(res.keypoints, inst.scores, inst.image_index, refined=res)
        else:
            res = new_key_detection(val.images, detect[source], schema, generator=g, keypoints=inst.keypoints,
                                    image_index=inst.image_index, config=cfg, categories=cats,
                                    symmetric=row != TWICE)
            out[row] = Instances(res.keypoints, inst.scores, inst.image_index, matched=res.matched,
                                 refined=res.first)
            if row == TWICE and SECOND in rows:
                out[SECOND] = Instances(crop_alone(res), inst.scores, inst.image_index, matched=res.matched)
    return {row: out[row] for row in rows}


def crop_alone(result: NewKeyDetectionResult) -> torch.Tensor:
    """(B, K, 3): the second scale of a New-key-detection run on its own (the crop's detection mapped back to the
    image), and the first scale's detection for an instance whose crop held no matching detection: the
    :data:`SECOND` row."""
    return torch.where(result.matched[:, None, None], result.second.keypoints, result.detected)


def axis_once_variant(rows_per_seed: Sequence[dict[str, Instances]], val: ValidationSet, refine: RefineConfig,
                      seeds: Sequence[int], thresholds: Sequence[float] = (), *, schema: str = "fashionai",
                      **changes: Any) -> list[Instances]:
    """The :data:`AXIS_ONCE` row again with ``changes`` to ``refine`` (e.g. ``alpha=0.0``: the same axes and fills,
    no pull), per seed: the seed's detector row, its fill threshold (``thresholds``, as :func:`rows_for_seeds` set
    them; empty: ``refine``'s own) and its RANSAC seed, as :func:`table1_rows` ran the row, so that the variant
    differs from the row by ``changes`` alone (``schema``: the rows' key-point schema); the refiner only, no detector
    pass."""
    configs = _per_seed(dataclasses.replace(refine, **changes), thresholds, len(rows_per_seed))
    if len(seeds) != len(rows_per_seed):
        raise ValueError(f"seeds has {len(seeds)} entries for {len(rows_per_seed)} seeds' rows")
    out = []
    for rows, cfg, seed in zip(rows_per_seed, configs, seeds, strict=True):  # over the few seeds
        inst = rows[KRCNN]
        cats = [val.categories[i] for i in inst.image_index.tolist()] if cfg.pairs == "category" else None
        res = refine_symmetric(inst.keypoints, schema, generator=torch.Generator().manual_seed(seed), config=cfg,
                               categories=cats)
        out.append(Instances(res.keypoints, inst.scores, inst.image_index, refined=res))
    return out


def coco_results(instances: Instances, val: ValidationSet) -> list[dict]:
    """COCO results entries (data-formats.md, D.2) of flattened detections."""
    ids = torch.tensor(val.image_ids, dtype=torch.long)[instances.image_index]
    return keypoints_to_coco_results(ids, instances.keypoints, instances.scores)


# ------------------------------------------------------------------------------------------------------------------
# Scoring the rows: per-seed arrays for the bootstrap (fashion_lib.metrics.crossed_bootstrap_ci) and the metrics on them
# ------------------------------------------------------------------------------------------------------------------


def ne_arrays(rows_per_seed: Sequence[dict[str, Instances]], val: ValidationSet, row: str) -> list[tuple]:
    """Per seed, ``(pred (B, 24, 3), gt (B, 24, 3), categories)`` of ``row``: the arguments of :func:`ne_metric`."""
    gt, cats = val.keypoints, val.categories
    return [(rows[row].keypoints, gt, cats) for rows in rows_per_seed]


def ne_metric(*, reduce: str = "keypoint", points: str = "visible"):
    """A function ``(pred, gt, categories) -> float`` giving NE (a fraction).

    ``points``: ``"visible"`` (the challenge's rule: ground truth visible), ``"occluded"`` (only points the ground
    truth marks occluded: where the symmetry prior should help) or ``"all"`` (both).
    """
    from fashion_lib.keypoints import OCCLUDED
    from fashion_lib.metrics import keypoint_errors, normalized_error

    if points not in ("visible", "occluded", "all"):
        raise ValueError(f"points must be 'visible', 'occluded' or 'all', got {points!r}")

    def metric(pred: torch.Tensor, gt: torch.Tensor, categories: Sequence[str]) -> float:
        if points != "occluded":
            return normalized_error(pred, gt, categories, reduce=reduce, count_occluded=points == "all").ne
        err = keypoint_errors(pred, gt, categories, count_occluded=True)  # (B, K), nan where not counted
        err = torch.where(torch.as_tensor(gt)[..., 2] == OCCLUDED, err, torch.nan)
        if reduce == "keypoint":
            return float(err.nanmean())
        per_image = err.nanmean(1)
        return float(per_image[~per_image.isnan()].mean())

    return metric


def coco_arrays(rows_per_seed: Sequence[dict[str, Instances]], val: ValidationSet, row: str) -> list[tuple]:
    """Per seed, ``(results per image (B,) object array, image ids (B,))`` of ``row``: the arguments of
    :func:`coco_metric`."""
    import numpy as np

    ids = np.asarray(val.image_ids, dtype=np.int64)
    out = []
    for rows in rows_per_seed:
        inst = rows[row]
        results = coco_results(inst, val)
        per_image = np.empty(len(ids), dtype=object)
        for j in range(len(ids)):
            per_image[j] = []
        for entry, j in zip(results, inst.image_index.tolist(), strict=True):
            per_image[j].append(entry)
        out.append((per_image, ids))
    return out


def coco_metric(val: ValidationSet, stat: str = "AP"):
    """A function ``(results per image, image ids) -> float``: pycocotools' ``stat`` on those images (repeats
    count as often as drawn, :func:`fashion_lib.coco_eval.coco_ap_on_images`)."""
    from fashion_lib.coco_eval import coco_ap_on_images, load_ground_truth

    if val.annotation_file is None:
        raise ValueError("coco_metric needs a COCO validation set (annotation_file)")
    gt = load_ground_truth(val.annotation_file)

    def metric(per_image, image_ids) -> float:
        return coco_ap_on_images(gt, list(per_image), [int(i) for i in image_ids], stat=stat)

    return metric


def per_image_errors(instances: Instances, val: ValidationSet, *, count_occluded: bool = True) -> torch.Tensor:
    """FashionAI: (B, K) normalised error of every labelled point (visible, and occluded with ``count_occluded``);
    NaN where not counted. The per-point view behind NE, for galleries and per-point gains."""
    from fashion_lib.metrics import keypoint_errors

    return keypoint_errors(instances.keypoints, val.keypoints, val.categories, count_occluded=count_occluded)



def detected_instances(detectors: Detectors, val: ValidationSet, schema: str) -> dict[str, Instances]:
    """The detectors' own instances (rows :data:`KRCNN`, and :data:`CPN` where a CPN was trained), from the cached
    predictions."""
    return {row: _instances(preds, schema) for row, preds in detect_validation(detectors, val).items()}


@dataclass(frozen=True)
class FillErrors:
    """What the points one refiner pass filled were worth (:func:`fill_errors`); how many it filled, and the rest
    of what it did, is its :class:`fashion_lib.refine.RefineSummary`."""

    scored: int  # filled points the ground truth labels (visible or occluded): the ones the NE below is over
    ne_before: float  # NE (fraction) of those points where the detector put them
    ne_after: float  # ... and after the fill (NaN when none was filled)


def fill_errors(detected: Instances, result: RefineResult, val: ValidationSet, *,
                schema: str = "fashionai") -> FillErrors:
    """The mean NE of the points one refiner pass (``result``, for the instances ``detected``) filled, before and
    after the fill, over the filled points the validation set labels (:func:`filled_point_errors`)."""
    before, after = filled_point_errors(detected, result, val, schema=schema)
    scored = ~after.isnan()
    return FillErrors(scored=int(scored.sum()), ne_before=_nanmean(before[scored]), ne_after=_nanmean(after[scored]))


def _nanmean(values: torch.Tensor) -> float:
    finite = values[~values.isnan()]
    return float(finite.mean()) if len(finite) else float("nan")


def filled_point_errors(detected: Instances, result: RefineResult, val: ValidationSet, *,
                        schema: str = "fashionai") -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised error of every filled point, where the detector put it and where the fill put it.

    FashionAI: NE's per-point error (the garment's normaliser); COCO: the error against the matched person
    divided by its shoulder distance (:func:`coco_point_errors`). Points the ground truth does not label, or
    whose detection had no coordinates, are NaN.

    Returns
    -------
    before, after : (F,) float each, F = ``result.filled.sum()`` (in the order of ``result.filled.nonzero()``).
    """
    if schema == "fashionai":
        from fashion_lib.metrics import keypoint_errors

        cats = [val.categories[i] for i in detected.image_index.tolist()]
        gt = val.keypoints[detected.image_index]
        before = keypoint_errors(detected.keypoints, gt, cats, count_occluded=True)  # (B, K), NaN where not counted
        after = keypoint_errors(result.keypoints, gt, cats, count_occluded=True)
        return before[result.filled], after[result.filled]
    # persons matched on the detector's own boxes: the fill moves the boxes, and the same detection must be scored
    # before and after it (coco_point_errors)
    gt, person_of = _coco_matches(detected, val)  # (N, 17, 3), (N,) detection of each person (-1: none)
    has = person_of >= 0
    # (T, 17) error of each detection's points against its person (NaN for detections matching nobody)
    before = torch.full(result.filled.shape, float("nan"))
    after = torch.full(result.filled.shape, float("nan"))
    if bool(has.any()):
        from fashion_lib.metrics import keypoint_errors

        idx, people = person_of[has], gt[has]
        names = ["person"] * len(people)
        # keypoint_errors computes in the wider of its inputs' dtypes: store in the table's
        before[idx] = keypoint_errors(detected.keypoints[idx], people, names, schema="coco",
                                      count_occluded=True).to(before.dtype)
        after[idx] = keypoint_errors(result.keypoints[idx], people, names, schema="coco",
                                     count_occluded=True).to(after.dtype)
    return before[result.filled], after[result.filled]


def _coco_matches(instances: Instances, val: ValidationSet, *, min_iou: float = 0.5
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """COCO: the N annotated persons' key points (N, 17, 3) and the index of the detection whose key-point box
    overlaps each person's box most, IoU >= ``min_iou`` (-1: none), (N,) long."""
    from torchvision.ops import box_iou

    from fashion_lib.data.transforms import keypoint_boxes

    gts, picks = [], []
    for j, t in enumerate(val.targets):  # over images: matching is per image
        people = _annotated_people(t)
        gt = t["keypoints"][people]
        if not len(gt):
            continue
        mine = torch.nonzero(instances.image_index == j)[:, 0]
        pick = torch.full((len(gt),), -1, dtype=torch.long)
        if len(mine):
            pred = instances.keypoints[mine]
            finite = torch.nan_to_num(pred)
            pred_boxes = keypoint_boxes(torch.cat([finite[..., :2], (pred[..., 2:] > 0).float()], -1), margin=0.0)
            best_iou, best = box_iou(t["boxes"][people], pred_boxes).max(1)  # (G,)
            pick = torch.where(best_iou >= min_iou, mine[best], pick)
        gts.append(gt)
        picks.append(pick)
    if not gts:
        return torch.zeros(0, 17, 3), torch.zeros(0, dtype=torch.long)
    return torch.cat(gts), torch.cat(picks)


def _annotated_people(target: dict) -> torch.Tensor:
    """(G,) bool: the image's annotations that are persons with at least one labelled point (not crowd regions)."""
    return (target["iscrowd"] == 0) & (target["keypoints"][..., 2] > 0).any(-1)


def coco_point_errors(instances: Instances, val: ValidationSet, *, reference: Instances | None = None,
                      min_iou: float = 0.5) -> torch.Tensor:
    """COCO: (N, 17) error of every labelled point of the N annotated persons, divided by the person's shoulder
    distance, against the detection whose key-point box overlaps the person's box most (IoU >= ``min_iou``; a
    person without such a detection gets NaN). For per-point analysis only: COCO's metric is OKS AP.

    ``reference``: the instances whose key-point boxes pick each person's detection, the same detections as
    ``instances`` in the same order (e.g. the seed's detector row, from which its refined rows derive); None:
    ``instances``' own boxes. Comparing two rows of a seed needs the same ``reference`` for both: refining moves
    the boxes, and matching each row on its own would let a person switch to another (duplicate) detection, so
    the change would mix the refiner's effect with a change of the scored detection.
    """
    from fashion_lib.metrics import keypoint_errors

    if reference is None:
        reference = instances
    elif len(reference.image_index) != len(instances.image_index) or \
            not torch.equal(reference.image_index, instances.image_index):
        raise ValueError(f"instances ({len(instances.image_index)} detections) do not line up with reference "
                         f"({len(reference.image_index)}): a row of one seed must hold its detector row's "
                         "instances in the same order (same image_index)")
    gt, pick = _coco_matches(reference, val, min_iou=min_iou)
    if not len(gt):
        return torch.zeros(0, 17)
    matched = torch.full_like(gt, float("nan"))
    matched[pick >= 0] = instances.keypoints[pick[pick >= 0]].to(gt.dtype)
    return keypoint_errors(matched, gt, ["person"] * len(gt), schema="coco", count_occluded=True)


def seed_point_errors(rows: dict[str, Instances], val: ValidationSet, row: str, *, matched_on: str = KRCNN
                      ) -> torch.Tensor:
    """COCO, one seed: :func:`coco_point_errors` of ``rows[row]`` with every person matched on the detections of
    ``rows[matched_on]`` (the seed's detector row, from which ``row`` derives), so that every row of the seed
    scores the same detection for a person. (N, 17) float."""
    for name in (row, matched_on):
        if name not in rows:
            raise ValueError(f"rows has no row {name!r} (matched_on={matched_on!r}); it has {list(rows)}")
    return coco_point_errors(rows[row], val, reference=rows[matched_on])


def second_scale_framing(instances: Instances, val: ValidationSet, refine: RefineConfig
                         ) -> tuple[torch.Tensor, torch.Tensor]:
    """How the crops New-key-detection cuts around ``instances`` (its refined first scale, e.g. the
    :data:`AXIS_ONCE` row) frame them, with ``refine``'s margin, squareness and missing-point threshold
    (:func:`fashion_lib.crops.second_scale_boxes`, :func:`fashion_lib.crops.crop_framing`).

    Returns
    -------
    extent : (T,) float, the key-point box's longer side over the crop's; padding : (T,) float, the share of each
    crop outside its image (filled by edge replication).
    """
    from fashion_lib.crops import crop_framing, second_scale_boxes
    from fashion_lib.keypoints import missing_mask

    kp = instances.keypoints
    present = ~missing_mask(kp, refine.score_threshold)
    sizes = torch.tensor([tuple(im.shape[-2:]) for im in val.images], dtype=kp.dtype)[instances.image_index]
    boxes = second_scale_boxes(kp, present, sizes, margin=refine.margin, square=refine.square_crop).boxes
    return crop_framing(kp, present, boxes, sizes)


def second_scale_counts(rows_per_seed: Sequence[dict[str, Instances]], val: ValidationSet, *, row: str = NKD,
                        baseline: str = KRCNN) -> list[dict[str, int]]:
    """COCO, per seed: the denominators of the second scale's matching. ``detections``: the first-scale
    detections ``row`` refined (those of ``baseline``, in the same order); ``matched to a person``: those that are
    some annotated person's best match (:func:`coco_point_errors`' rule, box IoU >= 0.5); ``matched in the
    crop``: those whose crop held a detection matching them (``row``'s ``matched``), the rest keep their first
    scale; ``both``: matched to a person and in the crop."""
    out = []
    for rows in rows_per_seed:  # over the few seeds
        first, second = rows[baseline], rows[row]
        if second.matched is None:
            raise ValueError(f"row {row!r} has no second-scale matching (matched is None): not a two-scale row")
        total = len(first.image_index)
        if len(second.matched) != total:
            raise ValueError(f"row {row!r} has {len(second.matched)} instances, baseline {baseline!r} {total}")
        person = torch.zeros(total, dtype=torch.bool)
        _, pick = _coco_matches(first, val)
        person[pick[pick >= 0]] = True
        out.append({"detections": total, "matched to a person": int(person.sum()),
                    "matched in the crop": int(second.matched.sum()),
                    "both": int((person & second.matched).sum())})
    return out


def coco_error_arrays(rows_per_seed: Sequence[dict[str, Instances]], val: ValidationSet, row: str, baseline: str,
                      *, matched_on: str = KRCNN) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """COCO, per seed: ``(errors of row (N, 17), errors of baseline (N, 17), visibility (N, 17))`` over the N
    annotated persons (:func:`seed_point_errors`: the same persons in the same order for both rows, each matched to
    the same detection of ``matched_on``, so the bootstrap resamples persons in pairs): the arguments of
    :func:`limb_change_metric`."""
    people = [t["keypoints"][_annotated_people(t)][..., 2] for t in val.targets]
    vis = torch.cat(people) if people else torch.zeros(0, 17)
    return [(seed_point_errors(rows, val, row, matched_on=matched_on),
             seed_point_errors(rows, val, baseline, matched_on=matched_on), vis) for rows in rows_per_seed]


def limb_change_metric(limb: str, *, points: str = "visible", change: bool = True):
    """A function ``(errors_a (N, 17), errors_b (N, 17), visibility (N, 17)) -> float``: over the two points of the
    COCO pair ``limb`` (``"wrist"``, ...) whose ground truth is ``points`` (``"visible"`` or ``"occluded"``) and
    that both rows matched, the mean of ``errors_a - errors_b`` (``change=True``) or of ``errors_b`` (the
    baseline's level); NaN where there is no such point."""
    from fashion_lib.keypoints import COCO, OCCLUDED, VISIBLE

    if limb not in COCO.pair_names:
        raise ValueError(f"limb must be one of {COCO.pair_names}, got {limb!r}")
    if points not in ("visible", "occluded"):
        raise ValueError(f"points must be 'visible' or 'occluded', got {points!r}")
    columns = COCO.pairs[COCO.pair_names.index(limb)]  # (2,) left, right
    flag = VISIBLE if points == "visible" else OCCLUDED

    def metric(errors_a: torch.Tensor, errors_b: torch.Tensor, visibility: torch.Tensor) -> float:
        a, b = errors_a[:, columns], errors_b[:, columns]  # (N, 2) each
        values = (a - b) if change else b
        keep = (visibility[:, columns] == flag) & ~a.isnan() & ~b.isnan()
        return float(values[keep].mean()) if bool(keep.any()) else float("nan")

    return metric


def limb_error_changes(rows_per_seed: Sequence[dict[str, Instances]], val: ValidationSet, row: str, baseline: str,
                       *, n_boot: int, generator: torch.Generator, matched_on: str = KRCNN) -> list[dict[str, Any]]:
    """COCO: per limb (left/right pair) and kind of point (visible, occluded), the baseline's mean error and the
    change ``row - baseline`` (errors divided by the person's shoulder distance, fractions) with its 95 % two-level
    bootstrap interval over seeds and persons (:func:`fashion_lib.metrics.crossed_bootstrap_ci`) and its verdict on
    "``row`` lowers the error" (:func:`fashion_lib.report.verdict`). Each person is matched to the same detection of
    ``matched_on`` for both rows (:func:`coco_error_arrays`).

    Returns
    -------
    list of dict, one per limb and kind: ``limb``, ``points``, ``n`` (points scored, all seeds), ``moved``
    (those of them whose error ``row`` changed), ``baseline``, ``change``, ``low``, ``high``, ``verdict``. A limb
    with points scored but none moved has change 0, no interval (NaN) and the verdict
    :data:`fashion_lib.report.NOT_MOVED`: resampling zeros would print "0.00 [0.00, 0.00], cannot decide".
    """
    from fashion_lib.keypoints import COCO, OCCLUDED, VISIBLE
    from fashion_lib.metrics import CI, crossed_bootstrap_ci
    from fashion_lib.report import NOT_MOVED, verdict

    arrays = coco_error_arrays(rows_per_seed, val, row, baseline, matched_on=matched_on)
    out = []
    for points, flag in (("visible", VISIBLE), ("occluded", OCCLUDED)):
        for limb, columns in zip(COCO.pair_names, COCO.pairs, strict=True):  # over the 8 pairs
            scored = [(v[:, columns] == flag) & ~a[:, columns].isnan() & ~b[:, columns].isnan() for a, b, v in arrays]
            n = sum(int(keep.sum()) for keep in scored)
            moved = sum(int((keep & (a[:, columns] != b[:, columns])).sum())
                        for keep, (a, b, _) in zip(scored, arrays, strict=True))
            level = limb_change_metric(limb, points=points, change=False)
            base = _nanmean(torch.tensor([level(*a) for a in arrays], dtype=torch.float64))
            nothing = CI(float("nan"), float("nan"), float("nan"))  # no such point: nothing to resample
            ci = nothing if moved == 0 else crossed_bootstrap_ci(limb_change_metric(limb, points=points), arrays,
                                                              n_boot=n_boot, generator=generator)
            still = n > 0 and moved == 0
            out.append({"limb": limb, "points": points, "n": n, "moved": moved, "baseline": base,
                        "change": 0.0 if still else ci.estimate, "low": ci.low, "high": ci.high,
                        "verdict": NOT_MOVED if still else verdict(ci, better="lower")})
    return out


def limb_change_table(limbs: Sequence[dict[str, Any]]):
    """The page's limb table from :func:`limb_error_changes`: per kind of point and limb, the points scored and
    moved, the detector's error (%) and the change (points of %) with its 95 % interval, "—" for a limb not
    moved (its verdict says so), and the verdict (a pandas DataFrame indexed by points and limb)."""
    import pandas as pd

    from fashion_lib.metrics import CI
    from fashion_lib.report import NOT_MOVED, format_ci

    return pd.DataFrame([{
        "points": r["points"], "limb": r["limb"], "scored": r["n"], "moved": r["moved"],
        "detector's error (%)": round(100 * r["baseline"], 2),
        "change (points) [95 % interval]": "—" if r["verdict"] == NOT_MOVED else
        format_ci(CI(r["change"], r["low"], r["high"]), scale=100, digits=2, signed=True),
        "verdict": r["verdict"]} for r in limbs]).set_index(["points", "limb"])


# ------------------------------------------------------------------------------------------------------------------
# Where does the prior help? The axis applied once over a grid of worlds (occlusion x asymmetry)
# ------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PriorMap:
    """The axis applied once minus the detector alone, NE (fractions), per kind of point and cell of the grid."""

    occlusion_values: tuple[float, ...]  # O rows: the worlds' occlusion_rate
    asymmetry_values: tuple[float, ...]  # A columns: the worlds' asymmetry (perspective 0 where it is 0)
    points: tuple[str, ...]  # the kinds of point scored, ("visible", "occluded")
    change: torch.Tensor  # (len(points), O, A) float64: pooled NE change (negative: the axis helps); NaN: no point
    low: torch.Tensor  # (len(points), O, A) float64: 95 % two-level bootstrap interval over seeds and garments
    high: torch.Tensor
    garments: int  # validation garments per cell (per seed: the same garments)
    scored: torch.Tensor  # (len(points), O, A) int64: labelled points of that kind NE scores in the cell's garments
    # (each seed scores the same points)
    activity: tuple[tuple[tuple[RefineSummary, ...], ...], ...]  # [O][A]: one refiner summary per seed

    @property
    def decided(self) -> torch.Tensor:
        """(len(points), O, A) bool: the interval excludes 0."""
        return (self.low > 0) | (self.high < 0)

    @property
    def axis_found(self) -> torch.Tensor:
        """(O, A) float64: the share of garment detections (all seeds) whose axis RANSAC found."""
        return torch.tensor([[pooled_summary(c).with_axis_fraction for c in row] for row in self.activity],
                            dtype=torch.float64)

    @property
    def filled(self) -> torch.Tensor:
        """(O, A) int64: the points the axis filled with a partner's mirror image, summed over the seeds."""
        return torch.tensor([[pooled_summary(c).points_filled for c in row] for row in self.activity])


def map_world(world: WorldConfig, occlusion: float, asymmetry: float) -> WorldConfig:
    """The world of one cell of :func:`prior_map`: ``world`` with this occlusion rate and asymmetry, and exactly
    symmetric at asymmetry 0 (no perspective, no guessed hidden points), so that end tests the prior where it
    holds."""
    if asymmetry == 0:
        return dataclasses.replace(world, occlusion_rate=occlusion, asymmetry=0.0, perspective=0.0,
                                   occluded_label_noise=0.0)
    return dataclasses.replace(world, occlusion_rate=occlusion, asymmetry=asymmetry)


def prior_map(setup: KeypointSetup, detectors: Sequence[Detectors], seeds: Sequence[int], refine: RefineConfig,
              occlusion_values: Sequence[float], asymmetry_values: Sequence[float], *, images: int, n_boot: int,
              generator: torch.Generator, batch_size: int = 16, thresholds: Sequence[float] = ()) -> PriorMap:
    """FashionAI: where the symmetry prior helps. For every occlusion rate x asymmetry, a validation set of
    ``images`` garments of that world (:func:`map_world`, written like any synthetic validation set), each seed's
    Keypoint R-CNN (trained on the default world, never retrained) detects, the axis is applied once
    (:func:`fashion_lib.refine.refine_symmetric` with ``refine``), and the NE change on visible and on occluded
    points gets its interval (:func:`fashion_lib.metrics.crossed_bootstrap_ci`, paired over seeds and garments).

    Parameters
    ----------
    setup : KeypointSetup (FashionAI); its ``world`` is the base of every cell.
    detectors : one :class:`Detectors` per seed (:func:`train_detectors`); seeds : the same seeds (RANSAC's).
    refine : RefineConfig, the axis' settings.
    occlusion_values, asymmetry_values : the grid's rows and columns.
    images : int >= 1, garments per cell; n_boot, generator : the bootstrap's.
    thresholds : per seed, the fill threshold replacing ``refine.fill_threshold`` (empty: as is).

    Returns
    -------
    PriorMap
    """
    from fashion_lib.metrics import CI, crossed_bootstrap_ci

    if setup.schema != "fashionai":
        raise ValueError(f"prior_map needs a FashionAI setup (NE), got schema {setup.schema!r}")
    if len(detectors) != len(seeds) or not seeds:
        raise ValueError(f"detectors ({len(detectors)}) and seeds ({len(seeds)}) must pair up, one or more")
    if not isinstance(images, int) or images < 1:
        raise ValueError(f"images must be an integer >= 1, got {images!r}")
    configs = _per_seed(refine, thresholds, len(seeds))
    points = ("visible", "occluded")
    shape = (len(points), len(occlusion_values), len(asymmetry_values))
    change, low, high = (torch.full(shape, float("nan"), dtype=torch.float64) for _ in range(3))
    scored = torch.zeros(shape, dtype=torch.int64)
    activity: list[list[tuple[RefineSummary, ...]]] = [[() for _ in asymmetry_values] for _ in occlusion_values]
    for i, occlusion in enumerate(occlusion_values):  # over the few cells of the grid
        for j, asymmetry in enumerate(asymmetry_values):
            cell = dataclasses.replace(setup, val_world=map_world(setup.world, occlusion, asymmetry),
                                       val_images=images)
            val = validation_set(cell)
            gt, cats = val.keypoints, val.categories
            axis, alone, summaries = [], [], []
            pair_cats = cats if refine.pairs == "category" else None
            for det, seed, cfg in zip(detectors, seeds, configs, strict=True):  # over the few seeds
                inst = _instances(predict(det.keypoint_rcnn, val.images, batch_size=batch_size), "fashionai")
                out = refine_symmetric(inst.keypoints, "fashionai", generator=torch.Generator().manual_seed(seed),
                                       config=cfg, categories=pair_cats)
                axis.append((out.keypoints, gt, cats))
                alone.append((inst.keypoints, gt, cats))
                summaries.append(summarize_refinement(inst.keypoints, out, "fashionai", config=cfg,
                                                      categories=pair_cats))
            activity[i][j] = tuple(summaries)
            # a missing prediction scores too (keypoint_errors), so which points count depends on the garments only
            counted = ~per_image_errors(inst, val).isnan()
            for p, kind in enumerate(points):
                scored[p, i, j] = int((counted & (gt[..., 2] == (VISIBLE if kind == "visible" else OCCLUDED))).sum())
                metric = ne_metric(points=kind)
                if kind == "occluded" and not bool((gt[..., 2] == OCCLUDED).any()):
                    ci = CI(float("nan"), float("nan"), float("nan"))  # nothing occluded in this world
                else:
                    ci = crossed_bootstrap_ci(metric, axis, alone, n_boot=n_boot, generator=generator)
                change[p, i, j], low[p, i, j], high[p, i, j] = ci.estimate, ci.low, ci.high
    return PriorMap(tuple(float(v) for v in occlusion_values), tuple(float(v) for v in asymmetry_values), points,
                    change, low, high, images, scored, tuple(tuple(row) for row in activity))


def pooled_summary(summaries: Sequence[RefineSummary]) -> RefineSummary:
    """One :class:`~fashion_lib.refine.RefineSummary` for several refiner passes (seeds, cells): every count summed,
    so that its shares are over all the instances together."""
    if not summaries:
        raise ValueError("pooled_summary needs one or more summaries, got none")
    return RefineSummary(**{f.name: sum(getattr(s, f.name) for s in summaries)
                            for f in dataclasses.fields(RefineSummary)})


def prior_map_counts(prior: PriorMap):
    """The table beside :func:`prior_map`'s heat map: per cell (rows: occlusion rate, asymmetry), the labelled
    points each kind's change is scored on (in the cell's garments; each seed scores the same points), the
    refiner's activity over the seeds (:func:`refiner_activity`: garments with an axis, points filled), and on
    which kinds of point the cell is starred (interval excludes 0)."""
    import pandas as pd

    rows = []
    for i, occlusion in enumerate(prior.occlusion_values):  # over the few cells
        for j, asymmetry in enumerate(prior.asymmetry_values):
            acts = refiner_activity(prior.activity[i][j])
            row = {"occlusion rate": occlusion, "asymmetry": asymmetry}
            row.update({f"{kind} points scored": int(prior.scored[p, i, j]) for p, kind in enumerate(prior.points)})
            row.update({"garments with an axis (n/N, all seeds)": acts["with an axis (n/N)"],
                        "points filled (all seeds)": acts["points filled"],
                        "starred on": ", ".join(k for p, k in enumerate(prior.points) if prior.decided[p, i, j])
                        or "—"})
            rows.append(row)
    return pd.DataFrame(rows).set_index(["occlusion rate", "asymmetry"])


def prior_map_notes(prior: PriorMap) -> list[list[list[str]]]:
    """Per kind of point, the heat map's second line in every cell (:func:`fashion_lib.plotting.draw_effect_map`'s
    ``notes``, O x A): ``"n=<points of that kind scored> f=<points filled, all seeds>"``."""
    filled = prior.filled
    return [[[f"n={int(prior.scored[p, i, j])} f={int(filled[i, j])}" for j in range(len(prior.asymmetry_values))]
             for i in range(len(prior.occlusion_values))] for p in range(len(prior.points))]


def _map_line(change: torch.Tensor, low: torch.Tensor, high: torch.Tensor, knob: str, values: Sequence[float],
              scale: float, digits: int) -> str:
    """One line of the map along ``knob`` (``values``, its L settings): the estimates (L,) in order, the two
    measured ends with their intervals, and whether the change grows or shrinks between them, at the printed
    precision; NaN cells are left out."""
    measured = [k for k in range(len(values)) if not math.isnan(float(change[k]))]
    if len(measured) < 2:
        return f"fewer than two measured cells along {knob}"
    first, last = measured[0], measured[-1]

    def end(k: int) -> str:
        ci = CI(float(change[k]), float(low[k]), float(high[k]))
        return f"{format_ci(ci, scale=scale, digits=digits, signed=True)} ({knob} {values[k]:g})"

    middle = [f"{scale * float(change[k]):+.{digits}f}" for k in measured[1:-1]]
    a, b = (round(scale * float(change[k]), digits) for k in (first, last))
    if a == b:
        trend = "the same at the printed precision"
    elif a * b < 0:
        trend = "the sign changes"
    else:
        trend = "the change shrinks towards 0" if abs(b) < abs(a) else "the change grows away from 0"
    overlap = float(low[first]) <= float(high[last]) and float(low[last]) <= float(high[first])
    return (" → ".join([end(first), *middle, end(last)]) + f": {trend}; the end intervals "
            + ("overlap" if overlap else "do not overlap"))


def prior_map_sentences(prior: PriorMap, *, scale: float = 100.0, digits: int = 2) -> str:
    """The page's text on :func:`prior_map`, computed from the map (Markdown): per kind of point, how many cells
    the axis helps (interval below 0), hurts (above 0) or leaves undecided, the fewest points scored among the
    starred cells, and every line of the grid along occlusion (one per asymmetry value) and along asymmetry (one
    per occlusion rate), each with the estimates in order, its two ends' intervals and the trend between them.
    Changes are printed times ``scale`` (NE points) with ``digits`` decimals; no verdict beyond the intervals."""
    paragraphs = []
    for p, kind in enumerate(prior.points):
        change, low, high = prior.change[p], prior.low[p], prior.high[p]
        measured = ~change.isnan()
        helps, hurts = int((high < 0).sum()), int((low > 0).sum())
        text = (f"**{kind.capitalize()} points.** Of the {int(measured.sum())} measured cells the axis lowers NE "
                f"(interval below 0) in {helps}, raises it (interval above 0) in {hurts}, and the interval includes "
                f"0 in {int(measured.sum()) - helps - hurts}")
        unmeasured = int((~measured).sum())
        text += f"; no {kind} point in {unmeasured} cell{'s' if unmeasured > 1 else ''}." if unmeasured else "."
        starred = prior.decided[p].nonzero().tolist()
        if starred:
            counts = [int(prior.scored[p, i, j]) for i, j in starred]
            i, j = starred[counts.index(min(counts))]
            text += (f" The starred cells are scored on {min(counts)} to {max(counts)} {kind} points each (fewest "
                     f"at occlusion {prior.occlusion_values[i]:g}, asymmetry {prior.asymmetry_values[j]:g}).")
        else:
            text += " No cell is starred."
        lines = []
        if len(prior.occlusion_values) > 1:
            lines += [f"- at asymmetry {a:g}, along occlusion: " + _map_line(
                change[:, j], low[:, j], high[:, j], "occlusion", prior.occlusion_values, scale, digits) + "."
                for j, a in enumerate(prior.asymmetry_values)]
        if len(prior.asymmetry_values) > 1:
            lines += [f"- at occlusion {o:g}, along asymmetry: " + _map_line(
                change[i], low[i], high[i], "asymmetry", prior.asymmetry_values, scale, digits) + "."
                for i, o in enumerate(prior.occlusion_values)]
        if lines:
            text += (f" Line by line (change of NE on {kind} points in NE points, 95 % interval at the two "
                     "ends):\n\n" + "\n".join(lines))
        paragraphs.append(text)
    return "\n\n".join(paragraphs)


# ------------------------------------------------------------------------------------------------------------------
# The missing-point rule, calibrated on held-out training images (never the validation set)
# ------------------------------------------------------------------------------------------------------------------


def calibration_set(setup: KeypointSetup, seed: int) -> tuple[list[torch.Tensor], list[dict]]:
    """``setup.calibration_images`` held-out training images and their targets: synthetic, fresh images of the
    training world (seed ``calibration_seed + seed``, which no training run uses); real data, rows spread over the
    training split (the detector has seen them: its scores there are optimistic, a caveat the page states)."""
    n = setup.calibration_images
    if setup.synthetic:
        cls = SyntheticGarments if setup.schema == "fashionai" else SyntheticPeople
        data = cls(setup.world, n, seed=setup.calibration_seed + seed, split="train")
        rows = list(range(n))
    elif setup.schema == "fashionai":
        data, train_rows, _, _ = _fashionai_splits(setup)
        rows = [train_rows[i] for i in spread_rows(len(train_rows), n)]
    else:
        annotations, images, _, _ = setup.files()
        data = CocoKeypoints(annotations, images)
        rows = spread_rows(len(data), n)
    items = [data[i] for i in rows]
    return [im for im, _ in items], [t for _, t in items]


def point_scores(predictions: list[dict], targets: list[dict], schema: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The detector's confidence of every ground-truth point and whether the ground truth marks it visible.

    FashionAI: the top detection of each image, the points of the garment's own category (a point another
    category has is not "absent", it is not asked for). COCO: each annotated person's best-matching detection
    (OKS >= 0.5, :func:`fashion_lib.refine.match_instances`), all 17 points; unmatched persons are left out.

    Returns
    -------
    scores : (N,) float; visible : (N,) bool (False: occluded or absent).
    """
    from fashion_lib.keypoints import VISIBLE

    sch = get_schema(schema)
    if schema == "fashionai":
        scores = top_instance(predictions, sch.num_keypoints).keypoints[..., 2]  # (B, K)
        gt = torch.cat([t["keypoints"] for t in targets])  # (B, K, 3)
        own = torch.stack([sch.category_mask(t["category"]) for t in targets])  # (B, K)
        return scores[own], gt[..., 2][own] == VISIBLE
    every = all_instances(predictions, sch.num_keypoints)  # (B, D, K, 3)
    people = [t["keypoints"][(t["iscrowd"] == 0) & (t["keypoints"][..., 2] > 0).any(-1)] for t in targets]
    counts = torch.tensor([len(p) for p in people], dtype=torch.long)
    if not int(counts.sum()):
        return torch.zeros(0), torch.zeros(0, dtype=torch.bool)
    gt = torch.cat(people).float()  # (N, K, 3)
    candidates = every[torch.repeat_interleave(torch.arange(len(targets)), counts)]  # (N, D, K, 3)
    match = match_instances(gt, candidates, sch.sigmas)
    ok = match.score >= 0.5
    picked = candidates[torch.arange(len(gt)), match.index][ok]  # (N', K, 3)
    return picked[..., 2].reshape(-1), (gt[ok][..., 2] == VISIBLE).reshape(-1)


def calibrate_missing(setup: KeypointSetup, detectors: Detectors, seed: int, *, batch_size: int = 16
                      ) -> dict[str, MissingCalibration]:
    """Each detector's missing-point threshold (:func:`fashion_lib.refine.calibrate_missing_threshold`) on the
    seed's calibration images (:func:`calibration_set`), cached beside the run. Keys: :data:`KRCNN`, and
    :data:`CPN` where a CPN was trained.
    Where the images give no visible or no hidden point to separate (a detector that matches no person), the
    threshold is the literal 0 with NaN figures, and a warning says so."""
    if setup.calibration_images < 1:
        raise ValueError("calibrate_missing: setup.calibration_images is 0 (no calibration asked for)")
    key = content_digest({"n": setup.calibration_images, "seed": setup.calibration_seed + seed,
                          "library": library_digest()})
    path = detectors.run_dir / f"calibration-{detectors.cpn_key}-{key}.pt"

    def compute() -> dict[str, MissingCalibration]:
        images, targets = calibration_set(setup, seed)
        out = {}
        for row, model in _detector_models(detectors):  # the one or two detectors
            scores, visible = point_scores(predict(model, images, batch_size=batch_size), targets, setup.schema)
            n_vis, n_hid = int(visible.sum()), int((~visible).sum())
            if n_vis and n_hid:
                out[row] = calibrate_missing_threshold(scores, visible)
            else:  # nothing to separate (e.g. no person matched): the literal rule, score 0, and J unknown
                log.warning("%s, seed %d: %d visible and %d hidden calibration points; missing-point threshold 0",
                            row, seed, n_vis, n_hid)
                out[row] = MissingCalibration(threshold=0.0, youden_j=float("nan"), sensitivity=float("nan"),
                                              specificity=float("nan"), visible=n_vis, hidden=n_hid)
        return out

    return cached(path, compute)


def calibrated_refine(setup: KeypointSetup, detectors: Detectors, seed: int, refine: RefineConfig) -> RefineConfig:
    """``refine`` with the fill rule every key-point page uses: with ``setup.calibration_images > 0`` its
    ``fill_threshold`` set to the seed's calibrated Keypoint R-CNN threshold (:func:`calibrate_missing`); with 0,
    ``refine`` unchanged. The vote keeps ``refine.score_threshold`` (the paper's 0): a rule that flags unreliable
    points would otherwise silence them as voters too, and leave most garments without an axis."""
    if not setup.calibration_images:
        return refine
    return with_fill_threshold(refine, calibrate_missing(setup, detectors, seed)[KRCNN].threshold)


def with_fill_threshold(refine: RefineConfig, threshold: float) -> RefineConfig:
    """``refine`` with its fill rule set to a calibrated ``threshold``, the one place every page's rule is made: a
    calibration that flags nothing (``-inf``, scores that carry no information) leaves the paper's rule, where
    only the points missing for the vote (``<= score_threshold``) are filled."""
    return dataclasses.replace(refine, fill_threshold=max(float(threshold), refine.score_threshold))


def missing_rule_sentence(setup: KeypointSetup, thresholds: Sequence[float], vote_threshold: float = 0.0) -> str:
    """The page's one sentence on its two point rules: the fill threshold each seed used (in seed order), and the
    vote's ``vote_threshold`` (``RefineConfig.score_threshold``, the paper's 0)."""
    values = ", ".join(f"{t:.3f}" for t in thresholds)
    paper = " (every detected point, as the paper's Alg. 2 lets them)" if vote_threshold == 0 else ""
    vote = (f"Every point scoring above {vote_threshold:g} votes for the axis{paper}; a point is replaced by its "
            "partner's mirror image when its score is at or below ")
    if setup.calibration_images:
        # synthetic: fresh images of the training world; real data: rows of the training split the detector saw
        source = "fresh images of the training world" if setup.synthetic else "rows of the training split"
        return (f"{vote}the threshold calibrated (Youden's J) on {setup.calibration_images} {source} per seed "
                f"(never the validation set), {values}, and its partner's is above it.")
    return f"{vote}the fixed threshold {values} (no calibration) and its partner's is above it."


def missing_point_table(rows_per_seed: Sequence[dict[str, Instances]], val: ValidationSet, seeds: Sequence[int],
                        refine: RefineConfig, *, calibrations: Sequence[dict] = (), schema: str = "fashionai",
                        ) -> list[dict[str, float]]:
    """Per seed, Keypoint R-CNN's fill rule and what the axis applied once did with it: the fill threshold
    (calibrated, or ``refine.fill_below`` when ``calibrations`` is empty) with its Youden's J, the share of instances
    whose axis was found (every point above ``refine.score_threshold`` votes), the points filled, the
    normalised error (%) of the filled points before and after the fill (:func:`fill_errors`), and how many
    instances the second scale left at their first scale for want of a matching crop detection, of how many."""
    if calibrations and len(calibrations) != len(rows_per_seed):
        raise ValueError(f"calibrations has {len(calibrations)} entries for {len(rows_per_seed)} seeds")
    out = []
    for i, (seed, rows) in enumerate(zip(seeds, rows_per_seed, strict=True)):  # over the few seeds
        cal = calibrations[i][KRCNN] if calibrations else None
        once = rows[AXIS_ONCE].refined
        fills = fill_errors(rows[KRCNN], once, val, schema=schema)
        matched = rows[NKD].matched if NKD in rows else None
        out.append({"seed": seed, "threshold": cal.threshold if cal else refine.fill_below,
                    "Youden's J": cal.youden_j if cal else float("nan"),
                    "axis found (%)": 100 * float(once.has_axis.double().mean()) if len(once.has_axis) else math.nan,
                    "pairs moved by the EMA": int(once.refined.sum()),
                    "points filled": int(once.filled.sum()),
                    # the points a fill could reach: both points of every pair of every instance
                    "symmetric points": 2 * once.refined.numel(),
                    "filled, labelled": fills.scored, "error before fill (%)": 100 * fills.ne_before,
                    "error after fill (%)": 100 * fills.ne_after,
                    "second scale unmatched": int((~matched).sum()) if matched is not None else 0,
                    "second scale instances": len(matched) if matched is not None else 0})
    return out


def missing_point_summary(table: Sequence[dict[str, float]]) -> dict[str, float | int]:
    """The page's figures from :func:`missing_point_table`: the mean threshold and axis-found share (%) over seeds,
    the points filled, the instances the second scale left unmatched and the instances it refined, in all, the
    unmatched share (%, NaN without instances), and the mean error (%) of the filled points before and after the
    fill."""
    def mean(column: str) -> float:
        return _nanmean(torch.tensor([float(r[column]) for r in table], dtype=torch.float64))

    unmatched = sum(int(r["second scale unmatched"]) for r in table)
    instances = sum(int(r["second scale instances"]) for r in table)

    return {"missing_threshold": mean("threshold"), "axis_found": mean("axis found (%)"),
            "pairs_moved": sum(int(r["pairs moved by the EMA"]) for r in table),
            "points_filled": sum(int(r["points filled"]) for r in table),
            "symmetric_points": sum(int(r["symmetric points"]) for r in table),
            "filled_labelled": sum(int(r["filled, labelled"]) for r in table),
            "filled_error_before": mean("error before fill (%)"), "filled_error_after": mean("error after fill (%)"),
            "second_scale_unmatched": unmatched, "second_scale_instances": instances,
            "second_scale_unmatched_share": 100 * unmatched / instances if instances else float("nan")}


def second_scale_sentence(difference: CI, *, unit: str, scale: float = 1.0, digits: int = 2,
                          bar: float | None = None, better: str = "lower", unmatched: int | None = None,
                          instances: int | None = None) -> str:
    """The page's sentence on the second scale's own reading: ``difference`` is :data:`SECOND` minus the detector on
    the whole image (:data:`KRCNN`), in the metric's units before ``scale``; ``bar`` (after ``scale``): the study's
    bound on how far the two may lie apart for the crop to count as inside the detector's training distribution;
    ``better``: ``"lower"`` (NE) or ``"higher"`` (AP), which side of the bar reads the crop worse; ``unmatched`` of
    ``instances`` (both or neither, summed over seeds, :func:`missing_point_summary`): the instances that kept their
    first scale, which the crop-alone row (and every two-scale row) holds unchanged."""
    if (unmatched is None) != (instances is None):
        raise ValueError(f"pass unmatched and instances together, got unmatched={unmatched}, instances={instances}")
    kept = ""
    if instances is not None:
        if not 0 <= unmatched <= instances:
            raise ValueError(f"unmatched must be in [0, instances={instances}], got {unmatched}")
        kept = f": {unmatched} of {instances}" + (f", {100 * unmatched / instances:.0f} %" if instances else "")
    text = (f"The detector on its crop alone (mapped back to the image; an instance whose crop held no matching "
            f"detection keeps its first scale{kept}) against the detector on the whole image: "
            f"{format_ci(difference, scale=scale, digits=digits, signed=True)} {unit}.")
    if bar is None:
        return text
    low, high, estimate = difference.low * scale, difference.high * scale, difference.estimate * scale
    if -bar <= low and high <= bar:
        return text + f" The whole interval lies within the study's ±{bar:g}-point bar: the crop is read as well."
    if abs(estimate) <= bar:
        worse_end = high if better == "lower" else -low  # how far the interval reaches on the worse side
        side = ("worse" if worse_end > bar else "better")
        return text + (f" The estimate lies within the study's ±{bar:g}-point bar, the interval not wholly: it "
                       f"reaches past the bar on the side where the crop reads {side}"
                       + (", so a crop read worse by more than the bar is ruled out." if side == "better" else
                          ": the data cannot rule out a crop the detector reads worse."))
    return text + (f" Outside the study's ±{bar:g}-point bar: the detector reads its crop differently from the whole "
                   "image, so the two-scale rows also measure that difference.")


def refiner_activity(summaries: Sequence[RefineSummary]) -> dict[str, int | str]:
    """One table row on how often the refiner acted, from one :class:`~fashion_lib.refine.RefineSummary` per seed
    (each seed refines its own detections of the same validation images): counts summed over the seeds, each with
    its denominator, so that garments and persons (whose detections differ in number per seed) read alike."""
    if not summaries:
        raise ValueError("refiner_activity needs one summary per seed, got none")
    total = pooled_summary(summaries)
    n = total.instances

    def per_instance(count: int) -> str:
        return f"{count} ({count / n:.2f} per instance)" if n else f"{count}"

    return {"seeds": len(summaries), "instances, all seeds (N)": n,
            "with an axis (n/N)": format_count(total.with_axis, n),
            "pairs moved by the EMA": per_instance(total.pairs_refined),
            "points filled": per_instance(total.points_filled)}


def fill_sentence(summary: dict[str, float | int]) -> str:
    """The page's sentence on what the fill did: :func:`missing_point_summary`'s errors (%) of the filled points the
    ground truth labels, before and after, in the direction they measure at the printed precision (one decimal;
    means over seeds, no interval: a description, not a verdict)."""
    before, after = summary["filled_error_before"], summary["filled_error_after"]
    filled, labelled = summary["points_filled"], summary["filled_labelled"]
    if not (math.isfinite(before) and math.isfinite(after)):
        return f"No labelled point was filled ({filled} filled in all): the fill is not measured on this page."
    b, a = round(before, 1), round(after, 1)
    effect = ("The fill raised" if a > b else "The fill lowered" if a < b else "The fill left")
    return (f"{effect} the error of the filled points from {b:.1f} % (where the detector put them) to {a:.1f} % "
            f"(their partners' mirror images; means over seeds, no interval) on the {labelled} of the {filled} "
            "filled points that the ground truth labels.")


@dataclass(frozen=True)
class PointChanges:
    """Per key point, one row's normalised error minus a baseline's (negative: the row is better), split by the
    ground truth's visibility: the mean over instances (each first averaged over the seeds, which all score the same
    validation instances) and its 95 % t interval over instances (mean +- t(n - 1) standard errors; the seeds'
    own variance is not in it, so it is an exploratory band, not a verdict; medians say nothing here, since the
    axis leaves most points of most instances where they were)."""

    points: tuple[str, ...]  # ("visible", "occluded")
    mean: torch.Tensor  # (2, K) float64; NaN: no such point
    low: torch.Tensor  # (2, K) float64: the interval's ends (NaN with fewer than 2 instances)
    high: torch.Tensor  # (2, K) float64
    count: torch.Tensor  # (2, K) long: the instances behind each mean
    on_axis: tuple[int, ...]  # the schema's non-symmetric points, which the mirror cannot move

    @property
    def largest_on_axis(self) -> float:
        """The largest absolute mean change (fraction) over the points on the axis, visible and occluded: a check,
        since the mirror cannot move them (0 unless another step did; NaN where none was scored)."""
        values = self.mean[:, list(self.on_axis)].abs()
        values = values[~values.isnan()]
        return float(values.max()) if len(values) else float("nan")


def point_changes(before: torch.Tensor, after: torch.Tensor, visibility: torch.Tensor,
                  schema: KeypointSchema | str) -> PointChanges:
    """:class:`PointChanges` from per-instance errors ``before`` and ``after`` (N, K) float (NaN: not labelled)
    and the ground truth's ``visibility`` (N, K) (the library's convention: 1 occluded, 2 visible)."""
    from scipy import stats

    schema = get_schema(schema)
    k = schema.num_keypoints
    if before.shape != after.shape or tuple(visibility.shape) != tuple(before.shape) or before.ndim != 2 or \
            before.shape[1] != k:
        raise ValueError(f"before, after and visibility must have the same shape (N, {k}) for schema "
                         f"{schema.name!r}, got {tuple(before.shape)}, {tuple(after.shape)}, "
                         f"{tuple(visibility.shape)}")
    delta = (after - before).double()
    means, halves, counts = [], [], []
    for flag in (VISIBLE, OCCLUDED):
        kept = (visibility == flag) & ~delta.isnan()
        n = kept.sum(0)
        d = torch.where(kept, delta, 0.0)
        mean = d.sum(0) / n  # NaN where n == 0
        var = torch.where(kept, (delta - mean) ** 2, 0.0).sum(0) / (n - 1)  # NaN or inf where n < 2
        means.append(mean)
        t = torch.tensor(stats.t.ppf(0.975, (n - 1).clamp(min=1).numpy()), dtype=torch.float64)
        halves.append(torch.where(n > 1, t * (var / n).sqrt(), torch.nan))
        counts.append(n)
    mean, half = torch.stack(means), torch.stack(halves)
    return PointChanges(("visible", "occluded"), mean, mean - half, mean + half, torch.stack(counts),
                        on_axis=tuple(schema.center.tolist()))


def row_point_changes(rows_per_seed: Sequence[dict[str, Instances]], val: ValidationSet, schema: str, row: str,
                      baseline: str = KRCNN, *, matched_on: str = KRCNN) -> PointChanges:
    """:func:`point_changes` of ``row`` against ``baseline``, each validation instance's errors first averaged over
    the seeds (every seed scores the same instances, so pooling them would count each instance once per seed):
    FashionAI per garment (:func:`per_image_errors`, occluded points counted), COCO per annotated person, matched
    to the same detection of ``matched_on`` for both rows (:func:`seed_point_errors`)."""
    befores, afters = [], []
    for rows in rows_per_seed:  # over the few seeds
        if schema == "coco":
            befores.append(seed_point_errors(rows, val, baseline, matched_on=matched_on))
            afters.append(seed_point_errors(rows, val, row, matched_on=matched_on))
        else:
            befores.append(per_image_errors(rows[baseline], val))
            afters.append(per_image_errors(rows[row], val))
    # the ground truth's visibility is the same for every seed (for COCO, per annotated person)
    if schema == "coco":
        vis = torch.cat([t["keypoints"][_annotated_people(t)][..., 2] for t in val.targets])
    else:
        vis = val.keypoints[..., 2]
    return point_changes(torch.stack(befores).nanmean(0), torch.stack(afters).nanmean(0), vis, schema)


def rows_for_seeds(setup: KeypointSetup, val: ValidationSet, refine: RefineConfig, seeds: Sequence[int], *,
                   rows: Sequence[str] = ROWS, calibrations: list | None = None) -> list[dict[str, Instances]]:
    """:func:`table1_rows` for every seed (training or loading each seed's detectors), logging the time taken.

    With ``setup.calibration_images > 0`` each seed's detectors get their own fill threshold
    (:func:`calibrate_missing`) as ``refine.fill_threshold``; pass a list as ``calibrations`` to receive
    them (one dict per seed, detector row -> :class:`~fashion_lib.refine.MissingCalibration`), for the page."""
    import time

    # the attribute lane starts by training the detector of seeds[0], whose key points its crops use
    # (pipeline.LANES); trained last seed first, this lane reaches seeds[0] when it is done instead of waiting for it
    for seed in reversed(seeds[1:]):
        train_detectors(setup, seed, progress=False)
    out = []
    for seed in seeds:  # over the few training seeds
        start = time.perf_counter()
        detectors = train_detectors(setup, seed, progress=False)
        thresholds = None
        if setup.calibration_images:
            cal = calibrate_missing(setup, detectors, seed)
            thresholds = {row: c.threshold for row, c in cal.items()}
            if calibrations is not None:
                calibrations.append(cal)
        out.append(table1_rows(setup, detectors, val, refine, rows=rows, seed=seed, thresholds=thresholds))
        log.info("seed %d: detectors trained or loaded, rows %s in %.0f s", seed, list(tested_rows(setup, rows)),
                 time.perf_counter() - start)
    return out


def _per_seed(refine: RefineConfig, thresholds: Sequence[float], n: int) -> list[RefineConfig]:
    """``refine`` per seed, its ``fill_threshold`` set to each seed's entry of ``thresholds`` (empty: as is)."""
    if not thresholds:
        return [refine] * n
    if len(thresholds) != n:
        raise ValueError(f"thresholds has {len(thresholds)} entries for {n} seeds")
    return [with_fill_threshold(refine, t) for t in thresholds]


def score_axis_once(instances_per_seed: Sequence[Instances], val: ValidationSet, refine: RefineConfig, *,
                    seed: int = 0, thresholds: Sequence[float] = (), seeds: Sequence[int] = ()
                    ) -> dict[str, float]:
    """FashionAI: refine each seed's detections once (steps 2-8) with ``refine`` and score them: NE (%) of visible
    and occluded points (mean and sd over seeds) and what the refiner did (fraction with an axis, pairs moved
    and points filled per garment, the NE of the filled points before and after the fill; means over seeds).
    The cheap evaluation behind the RANSAC ablations. ``thresholds``: per seed, the fill threshold
    (``refine.fill_threshold``, :func:`calibrated_refine`); empty: ``refine``'s own for every seed. ``seeds``: per
    seed, the RANSAC generator's seed (the training seeds, as :func:`table1_rows` uses them); empty: ``seed`` for
    every one."""
    from fashion_lib.report import mean_sd

    vis, occ, summaries, fills = [], [], [], []
    visible, occluded = ne_metric(), ne_metric(points="occluded")
    cats = val.categories if refine.pairs == "category" else None
    configs = _per_seed(refine, thresholds, len(instances_per_seed))
    if seeds and len(seeds) != len(instances_per_seed):
        raise ValueError(f"seeds has {len(seeds)} entries for {len(instances_per_seed)} seeds' detections")
    ransac = list(seeds) or [seed] * len(instances_per_seed)
    for inst, cfg, s in zip(instances_per_seed, configs, ransac, strict=True):  # over the few seeds
        out = refine_symmetric(inst.keypoints, "fashionai", generator=torch.Generator().manual_seed(s),
                               config=cfg, categories=cats)
        vis.append(100 * visible(out.keypoints, val.keypoints, val.categories))
        occ.append(100 * occluded(out.keypoints, val.keypoints, val.categories))
        summaries.append(summarize_refinement(inst.keypoints, out, "fashionai", config=cfg, categories=cats))
        fills.append(fill_errors(inst, out, val))
    (v, v_sd), (o, o_sd) = mean_sd(vis), mean_sd(occ)
    n = len(summaries)
    return {"NE visible (%)": v, "sd visible": v_sd, "NE occluded (%)": o, "sd occluded": o_sd,
            "with axis": sum(s.with_axis_fraction for s in summaries) / n,
            "pairs moved": sum(s.pairs_refined_per_instance for s in summaries) / n,
            "points filled": sum(s.points_filled_per_instance for s in summaries) / n,
            "filled NE before (%)": 100 * _nanmean(torch.tensor([f.ne_before for f in fills])),
            "filled NE after (%)": 100 * _nanmean(torch.tensor([f.ne_after for f in fills]))}
