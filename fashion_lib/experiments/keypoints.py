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

The validation set is always read through the real loaders: the synthetic one is first written in the real
layout (:func:`validation_set`), so the same code scores a real FashionAI or COCO folder.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from fashion_lib.coco_eval import keypoints_to_coco_results
from fashion_lib.data.coco import CocoKeypoints
from fashion_lib.data.fashionai import FashionAIKeypoints
from fashion_lib.data.transforms import ScaleCropConfig, ScaleCropped
from fashion_lib.engine import TrainConfig, run_dir_for, train
from fashion_lib.experiments import (
    DATA_SOURCES,
    TRAINING_SOURCES,
    MappedDataset,
    cached,
    holdout_rows,
    library_digest,
    runs_dir,
    seeded_build,
    spread_rows,
)
from fashion_lib.keypoints import get_schema
from fashion_lib.models.cpn import CPNConfig, build_cpn
from fashion_lib.models.detector import TopDownDetector, as_detect_fn, predict, top_instance
from fashion_lib.models.keypoint_rcnn import KeypointRCNNConfig, build_keypoint_rcnn, detection_target
from fashion_lib.refine import RefineConfig, RefineResult, new_key_detection, refine_symmetric
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
    "AXIS_ONCE",
    "TWICE",
    "NKD",
    "CPN",
    "CPN_NKD",
    "train_detectors",
    "validation_set",
    "detect_validation",
    "table1_rows",
    "coco_results",
    "Instances",
    "detected_instances",
    "detector_configs",
    "train_config",
    "training_set",
    "data_key",
    "RefinerStats",
    "refiner_stats",
    "coco_point_errors",
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
NKD = "Keypoint R-CNN + New-key-detection"
CPN = "CPN"
CPN_NKD = "CPN + New-key-detection"
ROWS = (KRCNN, AXIS_ONCE, TWICE, NKD, CPN, CPN_NKD)

_PRESETS = ("cpu", "gpu")


@dataclass(frozen=True)
class KeypointSetup:
    """Data, detectors and schedule of a key-point experiment (one per notebook; seeds vary beside it)."""

    schema: str = "fashionai"  # "fashionai" (garments, scored by NE) or "coco" (people, scored by OKS AP)
    preset: str = "cpu"  # detector configurations: "cpu" (slim heads, small images) or "gpu" (paper scale)
    image_size: int = 128  # side of the synthetic images, and the detectors' input size with the cpu preset
    train_steps: int = 150  # Keypoint R-CNN optimizer steps per seed
    cpn_steps: int = 240  # CPN optimizer steps per seed (from scratch it learns slower per step)
    batch_size: int = 8  # images per step
    lr: float = 1e-3  # peak learning rate (AdamW, warm-up then cosine)
    # scale and crop augmentation of the detectors' training images (data.transforms.ScaleCropConfig: key-point
    # box from a third of the frame to all of it, as real photographs); False: the literal setup, images as drawn
    scale_crop: bool = True
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

    def __post_init__(self) -> None:
        get_schema(self.schema)
        if self.preset not in _PRESETS:
            raise ValueError(f"preset must be one of {_PRESETS}, got {self.preset!r}")
        for name in ("image_size", "train_steps", "cpn_steps", "batch_size", "val_images"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")
        if not isinstance(self.scale_crop, bool):
            raise ValueError(f"scale_crop must be true or false, got {self.scale_crop!r}")
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
    def synthetic(self) -> bool:
        """True when the data comes from the synthetic world."""
        return not self.data_root

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
    return TrainConfig(steps=steps, batch_size=setup.batch_size, lr=setup.lr, seed=seed,
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


@dataclass(frozen=True)
class Detectors:
    """The two trained detectors of one seed and where their runs live."""

    keypoint_rcnn: torch.nn.Module
    cpn: torch.nn.Module
    run_dir: Path  # the Keypoint R-CNN run (cached predictions are stored beside its checkpoint)
    cpn_run_dir: Path

    @property
    def top_down(self) -> TopDownDetector:
        """CPN on the boxes of Keypoint R-CNN (the paper's fair CPN: detector boxes, not ground truth)."""
        return TopDownDetector(self.keypoint_rcnn, self.cpn)


def train_detectors(setup: KeypointSetup, seed: int, *, progress: bool = True) -> Detectors:
    """Train Keypoint R-CNN and CPN for ``seed``, or load them from finished runs with the same settings."""
    kcfg, ccfg = detector_configs(setup)
    key = data_key(setup)
    krcnn = seeded_build(build_keypoint_rcnn, kcfg, seed)
    tk = train_config(setup, seed, setup.train_steps)
    kdir = run_dir_for(runs_dir(), f"keypoint_rcnn-{setup.schema}-s{seed}", kcfg, tk, key)
    krcnn = train(krcnn, training_set(setup, seed, setup.train_steps), tk, kdir, progress=progress).model
    cpn = seeded_build(build_cpn, ccfg, seed)
    tc = train_config(setup, seed, setup.cpn_steps)
    cdir = run_dir_for(runs_dir(), f"cpn-{setup.schema}-s{seed}", ccfg, tc, key)
    cpn = train(cpn, training_set(setup, seed, setup.cpn_steps), tc, cdir, progress=progress).model
    return Detectors(krcnn.eval(), cpn.eval(), kdir, cdir)


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
        spec = json.dumps({"schema": setup.schema, "n": setup.val_images, "seed": setup.val_seed,
                           "world": dataclasses.asdict(world), "library": library_digest(DATA_SOURCES)},
                          sort_keys=True)
        key = hashlib.sha256(spec.encode()).hexdigest()[:12]
        root = runs_dir() / "data" / f"{setup.schema}-val-{key}"
        writer = write_fashionai_keypoints if setup.schema == "fashionai" else write_coco_people
        if not root.is_dir():  # the writers build the folder aside and rename it into place when complete
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
        key = hashlib.sha256(f"{source}:{rows}".encode()).hexdigest()[:12]
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
    :mod:`fashion_lib.models.detector`), cached beside the Keypoint R-CNN run."""
    # inference code may change without retraining: the cache is keyed on every library source
    path = detectors.run_dir / f"predictions-{val.key}-{detectors.cpn_run_dir.name}-{library_digest()}.pt"
    return cached(path, lambda: {
        KRCNN: predict(detectors.keypoint_rcnn, val.images, batch_size=batch_size),
        CPN: predict(detectors.top_down, val.images, batch_size=batch_size),
    })


@dataclass(frozen=True)
class Instances:
    """Every detection to score, flattened over images: one per image for FashionAI, all of them for COCO."""

    keypoints: torch.Tensor  # (T, K, 3) x, y pixels, confidence
    scores: torch.Tensor  # (T,) instance confidence
    image_index: torch.Tensor  # (T,) long, index into the validation images


def _instances(predictions: list[dict], schema: str) -> Instances:
    K = get_schema(schema).num_keypoints
    if schema == "fashionai":  # one garment per image: the best detection (NaN key points where there is none)
        top = top_instance(predictions, K)
        return Instances(top.keypoints, top.scores, torch.arange(len(predictions)))
    counts = torch.tensor([len(p["scores"]) for p in predictions], dtype=torch.long)
    if int(counts.sum()) == 0:
        return Instances(torch.zeros(0, K, 3), torch.zeros(0), torch.zeros(0, dtype=torch.long))
    return Instances(torch.cat([p["keypoints"] for p in predictions]).float(),
                     torch.cat([p["scores"] for p in predictions]).float(),
                     torch.repeat_interleave(torch.arange(len(predictions)), counts))


def table1_rows(
    setup: KeypointSetup,
    detectors: Detectors,
    val: ValidationSet,
    refine: RefineConfig,
    *,
    rows: Sequence[str] = ROWS,
    seed: int = 0,
    batch_size: int = 16,
) -> dict[str, Instances]:
    """The key points of each row of Table 1 (and its controls) for one seed, cached beside the run.

    Parameters
    ----------
    setup, detectors, val : from :func:`train_detectors` and :func:`validation_set`.
    refine : RefineConfig, the refiner's settings (both scales).
    rows : which rows to compute (a subset of :data:`ROWS`).
    seed : int, seed of the RANSAC generator.
    batch_size : int, images per detector call.

    Returns
    -------
    dict row name -> Instances (key points in image pixels).
    """
    unknown = [r for r in rows if r not in ROWS]
    if unknown:
        raise ValueError(f"rows has unknown entries {unknown}; valid: {list(ROWS)}")
    spec = json.dumps({"rows": list(rows), "refine": dataclasses.asdict(refine), "seed": seed,
                       "library": library_digest()}, sort_keys=True)
    key = hashlib.sha256(spec.encode()).hexdigest()[:12]
    path = detectors.run_dir / f"rows-{val.key}-{detectors.cpn_run_dir.name}-{key}.pt"
    return cached(path, lambda: _compute_rows(setup, detectors, val, refine, rows, seed, batch_size))


def _compute_rows(setup: KeypointSetup, detectors: Detectors, val: ValidationSet, refine: RefineConfig,
                  rows: Sequence[str], seed: int, batch_size: int) -> dict[str, Instances]:
    schema = get_schema(setup.schema)
    base = detected_instances(detectors, val, setup.schema)
    categories = None
    if refine.pairs == "category":
        categories = [val.categories[i] for i in base[KRCNN].image_index.tolist()]
    detect = {KRCNN: as_detect_fn(detectors.keypoint_rcnn, schema.num_keypoints, batch_size=batch_size),
              CPN: as_detect_fn(detectors.top_down, schema.num_keypoints, batch_size=batch_size)}
    out: dict[str, Instances] = {}
    for row in rows:  # over the few rows of the table
        source = CPN if row in (CPN, CPN_NKD) else KRCNN
        inst = base[source]
        g = torch.Generator().manual_seed(seed)
        if row in (KRCNN, CPN):
            kps = inst.keypoints
        elif row == AXIS_ONCE:
            kps = refine_symmetric(inst.keypoints, schema, generator=g, config=refine,
                                   categories=categories).keypoints
        else:
            cats = None if categories is None else [val.categories[i] for i in inst.image_index.tolist()]
            kps = new_key_detection(val.images, detect[source], schema, generator=g, keypoints=inst.keypoints,
                                    image_index=inst.image_index, config=refine, categories=cats,
                                    symmetric=row != TWICE).keypoints
        out[row] = Instances(kps, inst.scores, inst.image_index)
    return out


def coco_results(instances: Instances, val: ValidationSet) -> list[dict]:
    """COCO results entries (data-formats.md, D.2) of flattened detections."""
    ids = torch.tensor(val.image_ids, dtype=torch.long)[instances.image_index]
    return keypoints_to_coco_results(ids, instances.keypoints, instances.scores)


# ------------------------------------------------------------------------------------------------------------------
# Scoring the rows: per-seed arrays for the bootstrap (fashion_lib.metrics.seed_bootstrap_ci) and the metrics on them
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
    """The two detectors' own instances (rows :data:`KRCNN` and :data:`CPN`), from the cached predictions."""
    preds = detect_validation(detectors, val)
    return {KRCNN: _instances(preds[KRCNN], schema), CPN: _instances(preds[CPN], schema)}


@dataclass(frozen=True)
class RefinerStats:
    """How the refiner acted on a set of instances (steps 2-8, one scale)."""

    instances: int
    with_axis: float  # fraction of instances for which RANSAC found an axis
    refined_pairs: float  # pairs moved by the EMA, per instance
    filled_points: float  # missing points filled with the partner's mirror image, per instance


def refiner_stats(result: RefineResult) -> RefinerStats:
    """Count what one refiner pass (:func:`fashion_lib.refine.refine_symmetric`) did."""
    n = max(len(result.keypoints), 1)
    return RefinerStats(instances=len(result.keypoints), with_axis=float(result.has_axis.sum()) / n,
                        refined_pairs=float(result.refined.sum()) / n, filled_points=float(result.filled.sum()) / n)


def coco_point_errors(instances: Instances, val: ValidationSet, *, min_iou: float = 0.5) -> torch.Tensor:
    """COCO: (N, 17) error of every labelled point of the N annotated persons, divided by the person's shoulder
    distance, against the detection whose key-point box overlaps the person's box most (IoU >= ``min_iou``; a
    person without such a detection gets NaN). For per-point analysis only: COCO's metric is OKS AP."""
    from torchvision.ops import box_iou

    from fashion_lib.data.transforms import keypoint_boxes
    from fashion_lib.metrics import keypoint_errors

    preds, gts = [], []
    for j, t in enumerate(val.targets):  # over images: matching is per image
        people = (t["iscrowd"] == 0) & (t["keypoints"][..., 2] > 0).any(-1)
        gt = t["keypoints"][people]
        if not len(gt):
            continue
        mine = instances.image_index == j
        pred = instances.keypoints[mine]
        matched = torch.full_like(gt, float("nan"))
        if len(pred):
            finite = torch.nan_to_num(pred)
            pred_boxes = keypoint_boxes(torch.cat([finite[..., :2], (pred[..., 2:] > 0).float()], -1), margin=0.0)
            iou = box_iou(t["boxes"][people], pred_boxes)  # (G, D)
            best_iou, best = iou.max(1)
            ok = best_iou >= min_iou
            matched[ok] = pred[best[ok]]
        preds.append(matched)
        gts.append(gt)
    if not preds:
        return torch.zeros(0, 17)
    pred, gt = torch.cat(preds), torch.cat(gts)
    return keypoint_errors(pred, gt, ["person"] * len(gt), schema="coco", count_occluded=True)


def rows_for_seeds(setup: KeypointSetup, val: ValidationSet, refine: RefineConfig, seeds: Sequence[int], *,
                   rows: Sequence[str] = ROWS) -> list[dict[str, Instances]]:
    """:func:`table1_rows` for every seed (training or loading each seed's detectors), logging the time taken."""
    import time

    out = []
    for seed in seeds:  # over the few training seeds
        start = time.perf_counter()
        detectors = train_detectors(setup, seed, progress=False)
        out.append(table1_rows(setup, detectors, val, refine, rows=rows, seed=seed))
        log.info("seed %d: detectors trained or loaded, rows %s in %.0f s", seed, list(rows),
                 time.perf_counter() - start)
    return out


def score_axis_once(instances_per_seed: Sequence[Instances], val: ValidationSet, refine: RefineConfig, *,
                    seed: int = 0) -> dict[str, float]:
    """FashionAI: refine each seed's detections once (steps 2-8) with ``refine`` and score them: NE (%) of visible
    and occluded points (mean and sd over seeds) and what the refiner did (fraction with an axis, pairs moved
    and points filled per garment, means over seeds). The cheap evaluation behind the RANSAC ablations."""
    from fashion_lib.report import mean_sd

    vis, occ, stats = [], [], []
    visible, occluded = ne_metric(), ne_metric(points="occluded")
    cats = val.categories if refine.pairs == "category" else None
    for inst in instances_per_seed:  # over the few seeds
        out = refine_symmetric(inst.keypoints, "fashionai", generator=torch.Generator().manual_seed(seed),
                               config=refine, categories=cats)
        vis.append(100 * visible(out.keypoints, val.keypoints, val.categories))
        occ.append(100 * occluded(out.keypoints, val.keypoints, val.categories))
        stats.append(refiner_stats(out))
    (v, v_sd), (o, o_sd) = mean_sd(vis), mean_sd(occ)
    n = len(stats)
    return {"NE visible (%)": v, "sd visible": v_sd, "NE occluded (%)": o, "sd occluded": o_sd,
            "with axis": sum(s.with_axis for s in stats) / n, "pairs moved": sum(s.refined_pairs for s in stats) / n,
            "points filled": sum(s.filled_points for s in stats) / n}
