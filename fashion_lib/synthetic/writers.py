"""Writers of the four real on-disk layouts (``data-formats.md``), each written atomically through ``atomic_dir``.

Same seed, same bytes: images are JPEG-encoded with fixed settings, and every text file is generated in a fixed
order. A half-written data set never sits under its final name.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from pycocotools import mask as mask_utils

from fashion_lib.attributes import FASHIONAI_TASKS
from fashion_lib.data.deepfashion import CLOTHES_TYPE_SLOTS
from fashion_lib.data.fashionai import HEADER
from fashion_lib.io import atomic_dir
from fashion_lib.keypoints import ABSENT, COCO, VISIBLE
from fashion_lib.synthetic.deepfashion import (
    DEEPFASHION_ATTRIBUTES,
    DEEPFASHION_CATEGORIES,
    FABRICS,
    TEXTURES,
    render_deepfashion,
)
from fashion_lib.synthetic.garments import render_garment
from fashion_lib.synthetic.people import render_people
from fashion_lib.synthetic.world import TASK_CATEGORIES, WorldConfig, item_generator

__all__ = [
    "FASHIONAI_HEADER",
    "write_fashionai_keypoints",
    "write_fashionai_attributes",
    "write_deepfashion",
    "write_coco_people",
]

logger = logging.getLogger(__name__)

FASHIONAI_HEADER = ",".join(HEADER)
"""The exact 26-column header of FashionAI's ``train.csv`` (data-formats.md, A.2)."""


def _jpeg(image: np.ndarray, quality: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=quality, subsampling=0, optimize=False)
    return buf.getvalue()


def _hex_id(seed: int, split: str, index: int, kind: str) -> str:
    return hashlib.sha256(f"{kind}/{seed}/{split}/{index}".encode()).hexdigest()[:32]


def _split_counts(n: int, fractions: dict[str, float]) -> dict[str, int]:
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    counts = {name: int(round(n * f)) for name, f in fractions.items() if name != "train"}
    counts = {"train": n - sum(counts.values()), **counts}
    if counts["train"] < 0:
        raise ValueError(f"split fractions {fractions} leave no training images for n={n}")
    return counts


def _check_fraction(name: str, value: float) -> None:
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {value}")


def _fashionai_cell(x: float, y: float, v: float) -> str:
    if v == ABSENT:
        return "-1_-1_-1"
    return f"{int(round(x))}_{int(round(y))}_{1 if v == VISIBLE else 0}"


def write_fashionai_keypoints(
    root: str | os.PathLike, n: int, seed: int, config: WorldConfig | None = None, val_fraction: float = 0.2
) -> Path:
    """Write a FashionAI key-point set in the real layout (data-formats.md, A).

    Layout under ``root``: ``Images/<category>/<32 hex>.jpg``; ``Annotations/train.csv`` (the exact 26-column
    header, ``x_y_v`` cells with v = 1 visible, 0 occluded, ``-1_-1_-1`` absent); ``Annotations/val.csv`` (the
    validation split, same format: what the released ``*_answer_*.csv`` files look like); ``test.csv`` (header
    ``image_id,image_category``, the validation images, as in a real test split); and
    ``Annotations/synthetic_truth.json`` (not part of the real format: per image id, the true symmetry axis
    ``[normal_x, normal_y, offset]``, the occluded flags and the attribute latents).

    Parameters
    ----------
    root : path
        Output directory; replaced atomically (a half-written set never sits under this name).
    n : int
        Total number of images (train + val).
    seed : int
    config : WorldConfig, optional
    val_fraction : float
        Fraction of ``n`` in the validation split, in [0, 1).

    Returns
    -------
    root : Path
    """
    config = config or WorldConfig()
    _check_fraction("val_fraction", val_fraction)
    counts = _split_counts(n, {"val": val_fraction})
    with atomic_dir(root) as tmp:
        truth: dict[str, dict] = {}
        rows: dict[str, list[str]] = {"train": [], "val": []}
        for split, count in counts.items():
            for i in range(count):
                image, t = render_garment(config, item_generator(seed, split, i))
                image_id = f"Images/{t['category']}/{_hex_id(seed, split, i, 'kp')}.jpg"
                (tmp / image_id).parent.mkdir(parents=True, exist_ok=True)
                (tmp / image_id).write_bytes(_jpeg(image, config.jpeg_quality))
                cells = [_fashionai_cell(*p) for p in t["keypoints"].tolist()]
                rows[split].append(",".join([image_id, t["category"], *cells]))
                truth[image_id] = {
                    "split": split,
                    "axis": [*t["axis_normal"].tolist(), t["axis_offset"]],
                    "occluded": t["occluded"].astype(int).tolist(),
                    "latents": t["latents"],
                }
        (tmp / "Annotations").mkdir(exist_ok=True)
        for split, name in (("train", "train.csv"), ("val", "val.csv")):
            (tmp / "Annotations" / name).write_text("\n".join([FASHIONAI_HEADER, *rows[split]]) + "\n")
        test = ["image_id,image_category"] + [",".join(r.split(",")[:2]) for r in rows["val"]]
        (tmp / "test.csv").write_text("\n".join(test) + "\n")
        (tmp / "Annotations" / "synthetic_truth.json").write_text(json.dumps(truth, sort_keys=True))
    logger.info("wrote FashionAI key points to %s: %s", root, counts)
    return Path(root)


def write_fashionai_attributes(
    root: str | os.PathLike, n: int, seed: int, config: WorldConfig | None = None, val_fraction: float = 0.2
) -> Path:
    """Write a FashionAI attribute set in the real layout (data-formats.md, B).

    Layout under ``root``: ``Images/<AttrKey>/<32 hex>.jpg``; ``Annotations/label.csv`` (no header, one row per
    image: ``Images/<AttrKey>/<hash>.jpg,<AttrKey>,<label string>``, exactly one ``y``, ``m`` near a class
    boundary); ``Annotations/val.csv`` (the validation split, same row format). Each image shows a garment of a
    category the task applies to (:data:`TASK_CATEGORIES`); tasks cycle through the 8 AttrKeys.

    Parameters
    ----------
    root : path
    n : int
        Total number of images (train + val).
    seed : int
    config : WorldConfig, optional
    val_fraction : float
        In [0, 1).

    Returns
    -------
    root : Path
    """
    config = config or WorldConfig()
    _check_fraction("val_fraction", val_fraction)
    counts = _split_counts(n, {"val": val_fraction})
    tasks = tuple(FASHIONAI_TASKS)
    with atomic_dir(root) as tmp:
        rows: dict[str, list[str]] = {"train": [], "val": []}
        for split, count in counts.items():
            for i in range(count):
                task = tasks[i % len(tasks)]
                g = item_generator(seed, split, i)
                cats = TASK_CATEGORIES[task]
                category = cats[int(torch.randint(len(cats), (1,), generator=g))]
                image, t = render_garment(config, g, category=category)
                path = f"Images/{task}/{_hex_id(seed, split, i, 'attr')}.jpg"
                (tmp / path).parent.mkdir(parents=True, exist_ok=True)
                (tmp / path).write_bytes(_jpeg(image, config.jpeg_quality))
                label = "".join("nmy"[c] for c in t["attributes"][task].tolist())
                rows[split].append(f"{path},{task},{label}")
        (tmp / "Annotations").mkdir(exist_ok=True)
        for split, name in (("train", "label.csv"), ("val", "val.csv")):
            (tmp / "Annotations" / name).write_text("".join(r + "\n" for r in rows[split]))
    logger.info("wrote FashionAI attributes to %s: %s", root, counts)
    return Path(root)



def _padded(rows: list[tuple[str, str]], width: int) -> list[str]:
    """``name`` left-aligned in a column of at least ``width`` characters, then the rest: the lists' layout."""
    width = max([width, *(len(name) + 2 for name, _ in rows)])
    return [name.ljust(width) + rest for name, rest in rows]


def _list_file(path: Path, header: str, rows: list[tuple[str, str]], width: int) -> None:
    """A DeepFashion list file: the entry count, the column names, then the padded rows (data-formats.md C.2)."""
    lines = [str(len(rows)), header, *_padded(rows, width)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _item_folder(target: dict) -> str:
    """An item folder name in the real style (``Lace_Trim_Cami_Romper``): texture, fabric and category words."""
    words = [TEXTURES[int(target["latents"]["texture"])][0], FABRICS[int(target["latents"]["fabric"])][0],
             target["category"]]
    return "_".join(w.replace(" ", "_").title() if w == w.lower() else w for w in words)


def write_deepfashion(
    root: str | os.PathLike, n: int, seed: int, config: WorldConfig | None = None, val_fraction: float = 0.1,
    test_fraction: float = 0.1,
) -> Path:
    """Write a DeepFashion Category-and-Attribute set in the real layout (data-formats.md, C).

    Layout under ``root``: ``Anno/list_category_cloth.txt`` (the 50 real categories and types, in file order),
    ``Anno/list_category_img.txt``, ``Anno/list_attr_cloth.txt`` (:data:`DEEPFASHION_ATTRIBUTES`, alphabetical),
    ``Anno/list_attr_img.txt`` (values 1 / -1), ``Anno/list_bbox.txt``, ``Anno/list_landmarks.txt`` (rows of 6, 4
    or 8 ``v x y`` triples by clothes type; v = 0 visible, 1 occluded, 2 truncated), ``Eval/list_eval_partition.txt``
    (train / val / test) and ``Img/img/<Item_Folder>/img_XXXXXXXX.jpg``. Every list has the entry count on line 1,
    the column names on line 2, names padded with runs of spaces and zero-padded numbers, like the real files; all
    image lists are in the same order (by image name). ``Anno/synthetic_truth.json`` (not part of the real format)
    holds per image its split and index in the split, the latents, the true symmetry axis and the occluded flags.

    Image ``i`` of split ``s`` is item ``i`` of ``SyntheticDeepFashion(config, ..., seed, split=s)``.

    Parameters
    ----------
    root : path
        Output directory; replaced atomically.
    n : int
        Total number of images (train + val + test).
    seed : int
    config : WorldConfig, optional
    val_fraction, test_fraction : float
        Fractions of ``n`` in the val and test splits, each in [0, 1).

    Returns
    -------
    root : Path
    """
    config = config or WorldConfig()
    _check_fraction("val_fraction", val_fraction)
    _check_fraction("test_fraction", test_fraction)
    counts = _split_counts(n, {"val": val_fraction, "test": test_fraction})
    items: list[tuple[str, str, int, dict]] = []  # (image name, split, index in the split, target)
    per_folder: dict[str, int] = {}
    with atomic_dir(root) as tmp:
        for split, count in counts.items():
            for i in range(count):
                image, t = render_deepfashion(config, item_generator(seed, split, i))
                folder = _item_folder(t)
                per_folder[folder] = per_folder.get(folder, 0) + 1
                name = f"img/{folder}/img_{per_folder[folder]:08d}.jpg"
                (tmp / "Img" / name).parent.mkdir(parents=True, exist_ok=True)
                (tmp / "Img" / name).write_bytes(_jpeg(image, config.jpeg_quality))
                items.append((name, split, i, t))
        items.sort(key=lambda item: item[0])
        anno, width = tmp / "Anno", 71
        anno.mkdir()
        (tmp / "Eval").mkdir()
        _list_file(anno / "list_category_cloth.txt", "category_name  category_type",
                   [(name, str(ctype)) for name, ctype in DEEPFASHION_CATEGORIES], 23)
        _list_file(anno / "list_attr_cloth.txt", "attribute_name  attribute_type",
                   [(name, str(atype)) for name, atype in DEEPFASHION_ATTRIBUTES], 31)
        _list_file(anno / "list_category_img.txt", "image_name  category_label",
                   [(name, str(t["category_id"])) for name, _, _, t in items], width)
        _list_file(anno / "list_attr_img.txt", "image_name  attribute_labels",
                   [(name, " ".join(f"{2 * int(a) - 1:>2}" for a in t["attributes"])) for name, _, _, t in items],
                   width)
        _list_file(anno / "list_bbox.txt", "image_name  x_1  y_1  x_2  y_2",
                   [(name, " ".join(f"{round(float(v)):03d}" for v in t["box"])) for name, _, _, t in items],
                   width)
        header = "  ".join(["image_name", "clothes_type"] + [
            f"landmark_visibility_{k}  landmark_location_x_{k}  landmark_location_y_{k}" for k in range(1, 9)])
        rows = []
        for name, _, _, t in items:
            slots = CLOTHES_TYPE_SLOTS[t["clothes_type"]]
            xy, code = t["landmarks"], t["landmark_codes"]
            triples = [f"{code[s]} {round(float(xy[s, 0])):03d} {round(float(xy[s, 1])):03d}" for s in slots]
            rows.append((name, "  ".join([str(t["clothes_type"]), *triples])))
        _list_file(anno / "list_landmarks.txt", header, rows, width)
        _list_file(tmp / "Eval" / "list_eval_partition.txt", "image_name  evaluation_status",
                   [(name, split) for name, split, _, _ in items], width)
        truth = {
            name: {"split": split, "index": i, "latents": t["latents"], "occluded": t["occluded"].astype(int).tolist(),
                   "axis": [*t["axis_normal"].tolist(), t["axis_offset"]]}
            for name, split, i, t in items
        }
        (anno / "synthetic_truth.json").write_text(json.dumps(truth, sort_keys=True))
        (tmp / "README.txt").write_text(
            "Synthetic DeepFashion Category and Attribute Prediction set written by fashion_lib.synthetic "
            f"(seed {seed}, {n} images). Same layout as the real benchmark; not real data.\n"
        )
    logger.info("wrote DeepFashion to %s: %s", root, counts)
    return Path(root)


def _rle_counts(mask: np.ndarray) -> list[int]:
    """COCO's uncompressed RLE counts of a (H, W) bool mask: run lengths in column-major order, zeros first."""
    flat = np.asarray(mask, dtype=bool).T.reshape(-1)  # column-major
    edges = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    runs = np.diff(np.concatenate([[0], edges, [flat.size]])).tolist()
    return [0, *runs] if flat.size and flat[0] else runs


def _coco_annotations(t: dict, image_id: int, first_id: int, size: int) -> list[dict]:
    """The COCO annotation entries of one rendered people image (data-formats.md, D.1)."""
    out = []
    for k in range(len(t["iscrowd"])):
        entry = {"id": first_id + k, "image_id": image_id, "category_id": 1, "iscrowd": int(t["iscrowd"][k])}
        if entry["iscrowd"]:
            rle = {"counts": _rle_counts(t["crowd_mask"]), "size": [size, size]}
            compressed = mask_utils.frPyObjects(rle, size, size)
            x, y, w, h = (round(float(v), 2) for v in mask_utils.toBbox(compressed))
            entry.update(segmentation=rle, area=float(mask_utils.area(compressed)), bbox=[x, y, w, h],
                         keypoints=[0] * (3 * COCO.num_keypoints), num_keypoints=0)
        else:
            kp = t["keypoints"][k]  # (17, 3)
            labelled = kp[:, 2] > 0
            xy = np.where(labelled[:, None], np.round(kp[:, :2]), 0).astype(int)
            flat = np.concatenate([xy, kp[:, 2:].astype(int)], 1).reshape(-1).tolist()
            x1, y1, x2, y2 = (float(v) for v in t["boxes"][k])
            entry.update(segmentation=[t["polygons"][k]], area=float(t["area"][k]),
                         bbox=[round(x1, 2), round(y1, 2), round(x2 - x1, 2), round(y2 - y1, 2)], keypoints=flat,
                         num_keypoints=int(labelled.sum()))
        out.append(entry)
    return out


def write_coco_people(
    root: str | os.PathLike, n: int, seed: int, config: WorldConfig | None = None, val_fraction: float = 0.2
) -> Path:
    """Write a COCO-2017 person-keypoints set in the real layout (data-formats.md, D.1).

    Layout under ``root`` (as in the real download): ``annotations/person_keypoints_train2017.json``,
    ``annotations/person_keypoints_val2017.json``, ``train2017/`` and ``val2017/`` with 12-digit zero-padded file
    names. Annotations: persons with a polygon (the convex hull of the figure), ``area`` (the silhouette's pixel
    count), ``bbox`` ``[x, y, w, h]``, integer key points with v in {0, 1, 2} and ``num_keypoints = count(v > 0)``;
    a crowd region is one ``iscrowd = 1`` annotation with an uncompressed RLE (area and box by
    ``pycocotools.mask``) and no key points. The category entry has the 17 names and the 1-based skeleton.
    ``annotations/synthetic_truth_{split}2017.json`` (not part of the real format) holds per annotation id the
    occluded flags and the true symmetry axis.

    Image ``i`` of split ``s`` is item ``i`` of ``SyntheticPeople(config, ..., seed, split=s)``.

    Parameters
    ----------
    root : path
        Output directory; replaced atomically.
    n : int
        Total number of images (train + val).
    seed : int
    config : WorldConfig, optional
    val_fraction : float
        In [0, 1).

    Returns
    -------
    root : Path
    """
    config = config or WorldConfig()
    _check_fraction("val_fraction", val_fraction)
    counts = _split_counts(n, {"val": val_fraction})
    size = config.image_size
    category = {"supercategory": "person", "id": 1, "name": "person", "keypoints": list(COCO.names),
                "skeleton": [[a + 1, b + 1] for a, b in COCO.edges]}
    image_id, annotation_id = 1, 1
    with atomic_dir(root) as tmp:
        (tmp / "annotations").mkdir()
        for split, count in counts.items():
            folder = tmp / f"{split}2017"
            folder.mkdir()
            images, annotations, truth = [], [], {}
            for i in range(count):
                image, t = render_people(config, item_generator(seed, split, i))
                file_name = f"{image_id:012d}.jpg"
                (folder / file_name).write_bytes(_jpeg(image, config.jpeg_quality))
                images.append({"license": 1, "file_name": file_name, "coco_url": "", "height": size, "width": size,
                               "date_captured": "2017-01-01 00:00:00", "flickr_url": "", "id": image_id})
                entries = _coco_annotations(t, image_id, annotation_id, size)
                for k, entry in enumerate(entries):
                    truth[str(entry["id"])] = {"occluded": t["occluded"][k].astype(int).tolist(),
                                               "axis": [*t["axis_normal"][k].tolist(), float(t["axis_offset"][k])]}
                annotations += entries
                image_id += 1
                annotation_id += len(entries)
            data = {
                "info": {"description": f"Synthetic people written by fashion_lib.synthetic (seed {seed}); not COCO",
                         "version": "1.0", "year": 2017, "date_created": "2017/01/01"},
                "licenses": [{"url": "", "id": 1, "name": "synthetic"}],
                "images": images,
                "annotations": annotations,
                "categories": [category],
            }
            (tmp / "annotations" / f"person_keypoints_{split}2017.json").write_text(json.dumps(data))
            (tmp / "annotations" / f"synthetic_truth_{split}2017.json").write_text(json.dumps(truth, sort_keys=True))
    logger.info("wrote COCO people to %s: %s", root, counts)
    return Path(root)
