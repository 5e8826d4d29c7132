"""Table 1's set-up as library functions: the data, the detectors (trained or loaded) and their detections.

Paper, Table 1 and section III.A. One :class:`KeypointSetup` (built from a notebook's parameters) fixes the data
(the synthetic world, or a real data set's folder in its own layout), the detector presets and the schedule; a
seed fixes the initialisation and the data order. For each seed the study trains Keypoint R-CNN (the paper's
"Mask R-CNN") and CPN through :func:`fashion_lib.engine.train`, or loads them when a run with the same settings
exists (:func:`train_detectors`), and detects on the validation set (:func:`detect_validation`), cached beside the
run. The rows of Table 1 (:class:`Table1Row`, :data:`ROWS`) live here, since every other key-point module keys on them.

The rest of the key-point study sits beside this module, each on one job:

- :mod:`fashion_lib.experiments.keypoint_rows`: the rows of Table 1 per seed (the refiner's fill rule calibrated,
  the axis applied once, New-key-detection);
- :mod:`fashion_lib.experiments.keypoint_scores`: NE and COCO AP of the rows, as the bootstrap takes them;
- :mod:`fashion_lib.experiments.keypoint_errors`: per-point errors (COCO persons, limbs, filled points, changes);
- :mod:`fashion_lib.experiments.keypoint_refiner`: the refiner's variants and what it did (the axis-once analysis);
- :mod:`fashion_lib.experiments.keypoint_text`: the pages' sentences on those figures;
- :mod:`fashion_lib.experiments.prior_map`: where the symmetry prior helps, over a grid of worlds (page 16).

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
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from fashion_lib.data.coco import CocoKeypoints
from fashion_lib.data.fashionai import FashionAIKeypoints
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
from fashion_lib.keypoints import get_schema, keypoint_extent
from fashion_lib.models.cpn import CPNConfig, build_cpn
from fashion_lib.models.detector import TopDownDetector, predict, top_instance
from fashion_lib.models.keypoint_rcnn import KeypointRCNNConfig, build_keypoint_rcnn, detection_target
from fashion_lib.provenance import content_digest
from fashion_lib.refine import RefineResult
from fashion_lib.report import NOT_TESTED, Row
from fashion_lib.synthetic import (
    SyntheticGarments,
    SyntheticPeople,
    WorldConfig,
    write_coco_people,
    write_fashionai_keypoints,
)

__all__ = [
    "Table1Row", "KRCNN", "AXIS_ONCE", "TWICE", "SECOND", "NKD", "CPN", "CPN_NKD", "ROWS", "CPN_ROWS",
    "CPN_NOT_TESTED_REASON",
    "CPN_NOT_TESTED_PARAGRAPH", "DETECTOR_MODELS", "KeypointSetup", "fashionai_splits", "DataKey", "data_key",
    "detector_configs", "train_config", "training_set", "training_extents", "Detectors", "tested_rows",
    "DetectorRun", "detector_run", "train_detector", "train_detectors", "ValidationSet", "validation_set",
    "detect_validation", "detector_models", "Instances", "to_instances", "detected_instances",
]

log = logging.getLogger(__name__)


class Table1Row(Row):
    """The rows of Table 1 and of its controls (paper, section III.A), in display order: each member's value is its
    key (glue names ``ne_<key>``, cache keys), ``label`` the row's name on the page."""

    KRCNN = "krcnn", "Keypoint R-CNN"
    AXIS_ONCE = "axis_once", "Keypoint R-CNN + axis once"
    # the crop's detection alone, mapped back (an instance with no matching crop detection keeps its first scale):
    # the check that the second scale reads its crop as well as the detector reads the whole image
    SECOND = "second_alone", "Keypoint R-CNN on its crop alone"
    TWICE = "twice", "Keypoint R-CNN twice, no symmetry"
    NKD = "nkd", "Keypoint R-CNN + New-key-detection"
    CPN = "cpn", "CPN"
    CPN_NKD = "cpn_nkd", "CPN + New-key-detection"


# the members by their own names, as ``re.IGNORECASE`` is ``re.RegexFlag.IGNORECASE``: every key-point module and
# page keys on them
KRCNN, AXIS_ONCE, SECOND, TWICE, NKD, CPN, CPN_NKD = Table1Row
ROWS = tuple(Table1Row)
CPN_ROWS = (CPN, CPN_NKD)  # the rows that need a trained CPN: absent when a setup trains none (cpn_steps 0)
# Why a profile may train no CPN: the sentence every page prints beside the CPN rows it does not test.
CPN_NOT_TESTED_REASON = (
    "This profile trains no CPN (`cpn_steps: 0`): trained from scratch, CPN learns far more slowly per step than "
    "Keypoint R-CNN (after the 240 steps an earlier cpu build gave it, it was no better than a category's mean "
    "layout placed in the detected box), and a CPN good enough to compare would not fit the cpu budget beside "
    "Keypoint R-CNN; its time goes to Keypoint R-CNN. The `gpu` profile trains it.")


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


def fashionai_splits(setup: KeypointSetup) -> tuple[FashionAIKeypoints, list[int], FashionAIKeypoints, list[int]]:
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
        train, rows, _, _ = fashionai_splits(setup)
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


def tested_rows(setup: KeypointSetup, rows: Sequence[Table1Row] = ROWS) -> tuple[Table1Row, ...]:
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
            _, _, data, pool = fashionai_splits(setup)
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


def detect_validation(detectors: Detectors, val: ValidationSet, *, batch_size: int = 16
                      ) -> dict[Table1Row, list[dict]]:
    """Both detectors' predictions on the validation images (the shared format of
    :mod:`fashion_lib.models.detector`), cached beside the Keypoint R-CNN run. Keys: :data:`KRCNN`, and
    :data:`CPN` where a CPN was trained."""
    # inference code may change without retraining: the cache is keyed on every library source
    path = detectors.run_dir / f"predictions-{val.key}-{detectors.cpn_key}-{library_digest()}.pt"
    return cached(path, lambda: {row: predict(model, val.images, batch_size=batch_size)
                                 for row, model in detector_models(detectors)})


def detector_models(detectors: Detectors) -> list[tuple[Table1Row, torch.nn.Module]]:
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


def to_instances(predictions: list[dict], schema: str) -> Instances:
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


def detected_instances(detectors: Detectors, val: ValidationSet, schema: str) -> dict[Table1Row, Instances]:
    """The detectors' own instances (rows :data:`KRCNN`, and :data:`CPN` where a CPN was trained), from the cached
    predictions."""
    return {row: to_instances(preds, schema) for row, preds in detect_validation(detectors, val).items()}
