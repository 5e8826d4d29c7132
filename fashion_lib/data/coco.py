"""COCO-2017 person key points (``person_keypoints_{train,val}2017.json``) as a torch Dataset.

Format: ``data-formats.md`` section D.1. Paper, section IV.A: the refiner is also evaluated on COCO's 17 points.
COCO's visibility is already the library's (0 absent with x = y = 0, 1 occluded, 2 visible). Boxes are converted
from COCO's ``[x, y, w, h]`` to ``x1, y1, x2, y2``. Images without annotations are kept (``N = 0``), as
pycocotools keeps them.

Errors name the file and the JSON path (``person_keypoints_val2017.json: annotations[3].keypoints[8]``). Quirks are
counted in ``.quirks`` and warned about, never dropped:

- ``num_keypoints_mismatch``: ``num_keypoints`` differs from the number of points with v > 0 (the real sample
  agrees everywhere; the loader trusts the points);
- ``out_of_bounds_points``: a labelled point outside ``[0, width] x [0, height]`` of its image entry (none in the
  real sample; kept as given);
- ``duplicate_annotations``: an annotation whose ``id`` repeats an earlier one with identical content is read once
  (counted twice it would be two people for training and for pycocotools); the same ``id`` with different content
  is an error naming both JSON paths.

Errors, never quirks: bytes that are not UTF-8 (file, byte offset, line); JSON's ``NaN`` / ``Infinity`` in key
points, boxes or areas, and a negative area; ``images: []`` (a file of no image is a wrong file, not an empty data
set); an image file PIL cannot decode (named with its ``images[i].file_name``).
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable
from pathlib import Path

import torch

from fashion_lib.data.fashionai import image_size, load_image
from fashion_lib.io import read_text
from fashion_lib.keypoints import COCO

__all__ = ["CocoKeypoints", "parse_coco_keypoints"]

Transform = Callable[[torch.Tensor, dict], tuple[torch.Tensor, dict]]
_K = COCO.num_keypoints


def _get(obj: dict, key: str, kind, where: str):
    if not isinstance(obj, dict) or key not in obj:
        raise ValueError(f"{where}: missing key {key!r}")
    value = obj[key]
    if kind is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    else:
        ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
    if not ok:
        expected = "a finite number" if kind is float else getattr(kind, "__name__", kind)
        raise ValueError(f"{where}.{key}: expected {expected}, got {value!r}"[:300])
    return value


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def parse_coco_keypoints(path: str | Path) -> tuple[list[dict], dict[int, dict], dict[str, int], dict[str, str]]:
    """Read and validate a COCO person-keypoints ground-truth file.

    Returns
    -------
    images : list of image entries (``id``, ``file_name``, ``width``, ``height``), in file order.
    per_image : dict image id -> ``{"boxes": (N, 4) float32 x1 y1 x2 y2, "keypoints": (N, 17, 3) float32,
        "iscrowd": (N,) int64, "area": (N,) float32, "ids": (N,) int64}``.
    quirks : dict name -> count.
    first : dict quirk name -> the JSON path of its first occurrence (only quirks that occur).
    """
    path = Path(path)
    name = path.name
    if not path.is_file():
        raise FileNotFoundError(f"{path}: annotation file not found")
    try:
        data = json.loads(read_text(path, name=name))
    except json.JSONDecodeError as err:
        raise ValueError(f"{name}: not valid JSON: {err}") from None
    for key in ("images", "annotations", "categories"):
        _get(data, key, list, name)
    cats = data["categories"]
    person = [c for c in cats if isinstance(c, dict) and c.get("id") == 1]
    if not person:
        raise ValueError(f"{name}: categories has no entry with id 1 (person)")
    kp_names = person[0].get("keypoints")
    if kp_names is not None and (not isinstance(kp_names, list) or tuple(kp_names) != COCO.names):
        raise ValueError(f"{name}: categories[{cats.index(person[0])}].keypoints = {kp_names}, expected {COCO.names}")
    if not data["images"]:
        raise ValueError(f"{name}: images is empty; a ground-truth file needs at least one image")
    images, sizes = [], {}
    for i, im in enumerate(data["images"]):
        where = f"{name}: images[{i}]"
        image_id = _get(im, "id", int, where)
        entry = {"id": image_id, "file_name": _get(im, "file_name", str, where),
                 "width": _get(im, "width", int, where), "height": _get(im, "height", int, where)}
        if image_id in sizes:
            raise ValueError(f"{where}.id: duplicate image id {image_id}")
        sizes[image_id] = (entry["width"], entry["height"])
        images.append(entry)
    rows: dict[int, list] = {i: [] for i in sizes}
    mismatch = outside = repeats = 0
    first: dict[str, str] = {}  # quirk -> JSON path of its first occurrence
    by_id: dict[int, int] = {}  # annotation id -> index of its first occurrence
    for a, ann in enumerate(data["annotations"]):
        where = f"{name}: annotations[{a}]"
        if isinstance(ann, dict) and "id" in ann:
            ann_id = _get(ann, "id", int, where)
            if ann_id in by_id:
                earlier = by_id[ann_id]
                if data["annotations"][earlier] != ann:
                    raise ValueError(f"{where}.id: {ann_id} is already the id of annotations[{earlier}], which "
                                     "differs from this one; annotation ids must be unique")
                repeats += 1
                first.setdefault("duplicate_annotations", f"annotations[{a}].id")
                continue
            by_id[ann_id] = a
        image_id = _get(ann, "image_id", int, where)
        if image_id not in sizes:
            raise ValueError(f"{where}.image_id: {image_id} is not the id of any entry of images")
        category = _get(ann, "category_id", int, where)
        if category != 1:
            raise ValueError(f"{where}.category_id: {category}, expected 1 (person)")
        kps = _get(ann, "keypoints", list, where)
        if len(kps) != 3 * _K:
            raise ValueError(f"{where}.keypoints: {len(kps)} values, expected {3 * _K} (17 x, y, v triples)")
        for j, value in enumerate(kps):
            if not _finite(value):
                raise ValueError(f"{where}.keypoints[{j}]: {value!r} is not a finite number")
        kp = torch.tensor(kps, dtype=torch.float32).reshape(_K, 3)
        bad = ~torch.isin(kp[:, 2], torch.tensor([0.0, 1.0, 2.0]))
        if bad.any():
            j = int(bad.nonzero()[0, 0])
            raise ValueError(f"{where}.keypoints[{3 * j + 2}]: visibility {kps[3 * j + 2]!r} of "
                             f"{COCO.names[j]!r}, expected 0, 1 or 2")
        absent_with_xy = (kp[:, 2] == 0) & (kp[:, :2] != 0).any(1)
        if absent_with_xy.any():
            j = int(absent_with_xy.nonzero()[0, 0])
            raise ValueError(f"{where}.keypoints[{3 * j}]: {COCO.names[j]!r} has v = 0 but coordinates "
                             f"({kps[3 * j]}, {kps[3 * j + 1]}), expected 0, 0")
        num = ann.get("num_keypoints")
        if num is not None and num != int((kp[:, 2] > 0).sum()):
            mismatch += 1
            first.setdefault("num_keypoints_mismatch", f"annotations[{a}].num_keypoints")
        bbox = _get(ann, "bbox", list, where)
        if len(bbox) != 4 or not all(_finite(v) for v in bbox) or bbox[2] < 0 or bbox[3] < 0:
            raise ValueError(f"{where}.bbox: {bbox!r}, expected [x, y, width, height] of finite numbers with width, "
                             "height >= 0")
        iscrowd = _get(ann, "iscrowd", int, where)
        if iscrowd not in (0, 1):
            raise ValueError(f"{where}.iscrowd: {iscrowd}, expected 0 or 1")
        area = float(_get(ann, "area", float, where))
        if area < 0:
            raise ValueError(f"{where}.area: {area}, expected a finite number >= 0 (pixels)")
        w, h = sizes[image_id]
        labelled = kp[:, 2] > 0
        out = labelled & ((kp[:, 0] < 0) | (kp[:, 0] > w) | (kp[:, 1] < 0) | (kp[:, 1] > h))
        if out.any():
            outside += int(out.sum())
            first.setdefault("out_of_bounds_points", f"annotations[{a}].keypoints[{3 * int(out.nonzero()[0, 0])}]")
        x, y, bw, bh = (float(v) for v in bbox)
        rows[image_id].append(([x, y, x + bw, y + bh], kp, iscrowd, area, ann.get("id", -1)))
    per_image = {}
    for image_id, anns in rows.items():
        n = len(anns)
        per_image[image_id] = {
            "boxes": torch.tensor([r[0] for r in anns], dtype=torch.float32).reshape(n, 4),
            "keypoints": torch.stack([r[1] for r in anns]) if n else torch.zeros(0, _K, 3),
            "iscrowd": torch.tensor([r[2] for r in anns], dtype=torch.long),
            "area": torch.tensor([r[3] for r in anns], dtype=torch.float32),
            "ids": torch.tensor([r[4] for r in anns], dtype=torch.long),
        }
    quirks = {"num_keypoints_mismatch": mismatch, "out_of_bounds_points": outside, "duplicate_annotations": repeats}
    return images, per_image, quirks, first


class CocoKeypoints(torch.utils.data.Dataset):
    """COCO person key points as a torch Dataset.

    Parameters
    ----------
    annotation_file : path
        ``person_keypoints_{train,val}2017.json``.
    image_dir : path
        Folder of the images (``val2017/``); every image of the file must exist there.
    transform : callable, optional
        ``(image, target) -> (image, target)``.

    Attributes
    ----------
    images : list of dict
        Image entries (``id``, ``file_name``, ``width``, ``height``).
    quirks : dict name -> count
    quirk_locations : dict name -> JSON path of the first occurrence of each quirk that occurs

    Items are ``(image, target)``: ``image`` (3, H, W) float32 in [0, 1]; ``target`` has ``boxes`` (N, 4) float32
    x1, y1, x2, y2 pixels, ``labels`` (N,) int64 (all 1), ``keypoints`` (N, 17, 3) float32 (x, y pixels, v in
    {0, 1, 2}), ``iscrowd`` (N,) int64, ``area`` (N,) float32 (segment area, pixels), ``annotation_ids`` (N,)
    int64, ``image_id`` int.
    """

    def __init__(self, annotation_file: str | Path, image_dir: str | Path, transform: Transform | None = None) -> None:
        self.annotation_file = Path(annotation_file)
        self.image_dir = Path(image_dir)
        self.transform = transform
        self.images, self._targets, self.quirks, self.quirk_locations = parse_coco_keypoints(self.annotation_file)
        name = self.annotation_file.name
        for i, im in enumerate(self.images):
            image_size(self.image_dir / im["file_name"], f"{name}: images[{i}].file_name")
        for key, what in (("num_keypoints_mismatch", "annotations whose num_keypoints differs from count(v > 0)"),
                          ("out_of_bounds_points", "labelled key points outside their image"),
                          ("duplicate_annotations", "exact repeats of an earlier annotation (read once)")):
            if self.quirks[key]:
                warnings.warn(f"{name}: {self.quirks[key]} {what} (first at {self.quirk_locations[key]}); kept as "
                              "given", stacklevel=2)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict]:
        entry = self.images[index]
        image = load_image(self.image_dir / entry["file_name"])
        t = self._targets[entry["id"]]
        target = {
            "boxes": t["boxes"].clone(),
            "labels": torch.ones(len(t["iscrowd"]), dtype=torch.long),
            "keypoints": t["keypoints"].clone(),
            "iscrowd": t["iscrowd"].clone(),
            "area": t["area"].clone(),
            "annotation_ids": t["ids"].clone(),
            "image_id": entry["id"],
        }
        if self.transform is not None:
            return self.transform(image, target)
        return image, target
