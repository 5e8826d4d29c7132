"""FashionAI Global Challenge 2018 loaders: key points (``train.csv``) and attributes (``label.csv``).

Formats: ``data-formats.md`` sections A and B. Paper, section IV.A: the key-point set has 24 points over 5
categories and the category is given with every image; the attribute set has 8 tasks labelled ``y`` / ``m`` / ``n``.

Visibility is mapped onto the library's one convention (COCO's): FashionAI ``1`` visible -> ``2``, ``0`` occluded
-> ``1``, ``-1`` absent -> ``0`` with coordinates 0. Coordinates stay in pixels of the original image, as floats.

Errors name the file, the line and the field. Known quirks are handled and counted in ``.quirks``, with a warning:

- ``out_of_bounds_points``: a labelled point outside the image. The real excerpt (50 rows from a real validation
  split) has none, but nothing in the format forbids it and annotators click near borders, so it is a counted
  quirk (kept as is, reported with file, first line and count), not an error. Only checked when images are read.
- ``blank_lines``: empty lines (a trailing newline pair); skipped and counted.
- ``duplicate_rows``: a row that repeats an earlier row of the same image exactly (same category and points; for
  attributes, same AttrKey and label string) is read once and counted: a copy-paste slip that would otherwise
  weigh that image twice. The same image with *different* labels is an error naming both lines, since one of
  them is wrong and the loader cannot tell which.

A file that is not UTF-8 is an error naming the byte offset and line; a file without data rows (empty, or a
header only) is an error, never an empty data set. An image file PIL cannot decode is named with the CSV line.
- ``attribute_rows_without_one_y`` (attributes): every real row has exactly one ``y``; a row with none or several is
  kept, counted and reported.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image, UnidentifiedImageError

from fashion_lib.attributes import FASHIONAI_TASKS, Y, parse_label_string
from fashion_lib.data.transforms import keypoint_boxes
from fashion_lib.io import read_text
from fashion_lib.keypoints import ABSENT, FASHIONAI, OCCLUDED, VISIBLE

__all__ = [
    "CATEGORIES",
    "HEADER",
    "KeypointAnnotations",
    "parse_keypoint_csv",
    "FashionAIKeypoints",
    "AttributeAnnotations",
    "parse_attribute_csv",
    "FashionAIAttributes",
    "load_image",
    "image_size",
    "image_sizes",
    "outside_image",
]

CATEGORIES: tuple[str, ...] = tuple(FASHIONAI.categories)
"""Category names; a target's ``labels`` is the index here plus 1 (0 is torchvision's background)."""

HEADER: tuple[str, ...] = ("image_id", "image_category", *FASHIONAI.names)
"""The 26 columns of ``train.csv`` (data-formats.md, A.2)."""

_CELL = re.compile(r"^(-?\d+)_(-?\d+)_(-?\d+)$")
_VIS = {1: VISIBLE, 0: OCCLUDED, -1: ABSENT}
_CATEGORY_MASKS = {c: FASHIONAI.category_mask(c) for c in CATEGORIES}

Transform = Callable[[torch.Tensor, dict], tuple[torch.Tensor, dict]]


def load_image(path: Path) -> torch.Tensor:
    """Decode an image file to a ``(3, H, W)`` float32 tensor in [0, 1] (RGB); a file PIL cannot decode raises a
    ValueError naming it."""
    try:
        with Image.open(path) as im:
            rgb = im.convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError) as err:  # PIL raises all three for damaged files
        if isinstance(err, FileNotFoundError):
            raise
        raise ValueError(f"{path}: not an image PIL can decode ({err})") from None
    return torch.frombuffer(bytearray(rgb.tobytes()), dtype=torch.uint8).reshape(rgb.height, rgb.width, 3).permute(
        2, 0, 1
    ).float().div_(255.0)


def _read_lines(path: Path) -> list[str]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: annotation file not found")
    return read_text(path, encoding="utf-8-sig", name=path.name).splitlines()


def _check_repeat(seen: dict[str, tuple[int, Any]], key: str, value: Any, lineno: int, where: str, what: str
                  ) -> bool:
    """True when ``key`` repeats an earlier row with the same ``value`` (a duplicate to skip and count); raises
    when it repeats one with another value; records a first occurrence. ``seen``: key -> (line, value)."""
    if key not in seen:
        seen[key] = (lineno, value)
        return False
    line, earlier = seen[key]
    if earlier != value:
        raise ValueError(f"{where}: image {key!r} is already labelled on line {line} with other {what}; one of the "
                         "two rows is wrong")
    return True


@dataclass(frozen=True)
class KeypointAnnotations:
    """All rows of a FashionAI key-point CSV, parsed into tensors (no image is decoded)."""

    image_ids: tuple[str, ...]
    """``N`` image paths relative to the split directory (``Images/<category>/<hash>.jpg``)."""
    categories: tuple[str, ...]
    """``N`` category names."""
    labels: torch.Tensor
    """``(N,)`` int64: category index + 1."""
    keypoints: torch.Tensor
    """``(N, 24, 3)`` float32: x, y in pixels of the original image, v in {0, 1, 2} (absent points are 0, 0, 0)."""
    lines: tuple[int, ...]
    """``N`` 1-based line numbers in the CSV (for error messages)."""

    def __len__(self) -> int:
        return len(self.image_ids)


def parse_keypoint_csv(path: str | Path) -> tuple[KeypointAnnotations, dict[str, int]]:
    """Parse a FashionAI ``train.csv`` / ``val.csv`` / answer file (header plus 26 comma-separated columns).

    Parameters
    ----------
    path : path of the CSV.

    Returns
    -------
    annotations : KeypointAnnotations
    quirks : dict name -> count (``blank_lines``, ``duplicate_rows``).

    Raises
    ------
    ValueError
        Naming file, line and field: bytes that are not UTF-8, no data row, the same image on two rows with other
        points, a wrong header, a wrong column count, an unknown category, a malformed
        ``x_y_v`` cell, a visibility code outside {-1, 0, 1}, an absent point with coordinates, or a point given
        for a category that does not have it.
    """
    path = Path(path)
    lines = _read_lines(path)
    name = path.name
    if not lines:
        raise ValueError(f"{name}: file is empty, expected the 26-column header {','.join(HEADER)!r}")
    header = lines[0].split(",")
    if tuple(header) != HEADER:
        if len(header) != len(HEADER):
            raise ValueError(f"{name} line 1: header has {len(header)} columns, expected {len(HEADER)}: {HEADER}")
        col = next(i for i, (a, b) in enumerate(zip(header, HEADER, strict=True)) if a != b)
        raise ValueError(f"{name} line 1: header column {col + 1} is {header[col]!r}, expected {HEADER[col]!r}")
    ids, cats, kps, nums = [], [], [], []
    blank = repeats = 0
    seen: dict[str, tuple[int, Any]] = {}
    for lineno, line in enumerate(lines[1:], start=2):
        if not line.strip():
            blank += 1
            continue
        fields = line.split(",")
        where = f"{name} line {lineno}"
        if len(fields) != len(HEADER):
            raise ValueError(f"{where}: {len(fields)} columns, expected {len(HEADER)}")
        image_id, category = fields[0], fields[1]
        if not image_id:
            raise ValueError(f"{where}: 'image_id' is empty")
        if category not in _CATEGORY_MASKS:
            raise ValueError(f"{where}: 'image_category' = {category!r}, expected one of {', '.join(CATEGORIES)}")
        row = []
        allowed = _CATEGORY_MASKS[category]
        for k, cell in enumerate(fields[2:]):
            m = _CELL.match(cell)
            col = FASHIONAI.names[k]
            if m is None:
                raise ValueError(f"{where}: {col!r} = {cell!r}, expected 'x_y_v' (three integers joined by '_')")
            x, y, v = (int(g) for g in m.groups())
            if v not in _VIS:
                raise ValueError(f"{where}: {col!r} = {cell!r} has visibility {v}, expected -1, 0 or 1")
            if v == -1:
                if (x, y) != (-1, -1):
                    raise ValueError(f"{where}: {col!r} = {cell!r} is absent (v = -1) but has coordinates; "
                                     "expected '-1_-1_-1'")
                row.append((0.0, 0.0, float(ABSENT)))
                continue
            if not allowed[k]:
                raise ValueError(f"{where}: {col!r} = {cell!r} is labelled, but {category} has no {col} "
                                 "(expected '-1_-1_-1')")
            row.append((float(x), float(y), float(_VIS[v])))
        if _check_repeat(seen, image_id, (category, row), lineno, where, "key points"):
            repeats += 1
            continue
        ids.append(image_id)
        cats.append(category)
        kps.append(row)
        nums.append(lineno)
    if not ids:
        raise ValueError(f"{name}: no data rows after the header; an annotation file needs at least one")
    keypoints = torch.tensor(kps, dtype=torch.float32).reshape(len(kps), FASHIONAI.num_keypoints, 3)
    labels = torch.tensor([CATEGORIES.index(c) + 1 for c in cats], dtype=torch.long)
    ann = KeypointAnnotations(tuple(ids), tuple(cats), labels, keypoints, tuple(nums))
    return ann, {"blank_lines": blank, "duplicate_rows": repeats}


def image_size(path: Path, where: str) -> tuple[int, int]:
    """Width and height of the image at ``path`` from its header; a missing or undecodable file raises an error
    starting with ``where`` (the annotation file and line or JSON path that names the image)."""
    if not path.is_file():
        raise FileNotFoundError(f"{where}: image file {str(path)!r} not found")
    try:
        with Image.open(path) as im:  # reads the header only
            return im.size
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise ValueError(f"{where}: image file {str(path)!r} is not an image PIL can decode ({err})") from None


def image_sizes(root: Path, image_ids: Sequence[str], lines: Sequence[int], csv_name: str) -> torch.Tensor:
    """(N, 2) int64 width, height read from the headers of ``root / image_id``; a missing image raises
    ``FileNotFoundError`` naming ``csv_name`` and its line."""
    sizes = []
    for image_id, lineno in zip(image_ids, lines, strict=True):
        path = root / image_id
        sizes.append(image_size(path, f"{csv_name} line {lineno}"))
    return torch.tensor(sizes, dtype=torch.long).reshape(len(sizes), 2)


def outside_image(keypoints: torch.Tensor, sizes: torch.Tensor) -> torch.Tensor:
    """(N, K) bool: labelled points (v > 0) of ``(N, K, 3)`` key points outside ``[0, W) x [0, H)`` of ``(N, 2)``
    image sizes (width, height)."""
    labelled = keypoints[..., 2] > 0
    wh = sizes[:, None, :].float()  # (N, 1, 2)
    outside = ((keypoints[..., :2] < 0) | (keypoints[..., :2] >= wh)).any(-1)
    return labelled & outside


class FashionAIKeypoints(torch.utils.data.Dataset):
    """FashionAI key points as a torch Dataset.

    Parameters
    ----------
    root : path
        The split directory (holding ``Images/`` and ``Annotations/``).
    csv : str
        Annotation file relative to ``root``: ``Annotations/train.csv``, ``Annotations/val.csv``, an answer file.
    images : bool
        Check that every image exists and read its size (to count out-of-bounds points). ``False`` gives
        :attr:`annotations` from the CSV alone, for evaluation on key points without images.
    transform : callable, optional
        ``(image, target) -> (image, target)``, e.g. a :mod:`fashion_lib.data.transforms` function.

    Attributes
    ----------
    annotations : KeypointAnnotations
        Every row parsed into tensors, with no image decoded.
    sizes : (N, 2) int64 or None
        Image width and height (``None`` when ``images=False``).
    quirks : dict name -> count

    Items are ``(image, target)``: ``image`` (3, H, W) float32 in [0, 1]; ``target`` has ``boxes`` (1, 4) float32
    (:func:`~fashion_lib.data.transforms.keypoint_boxes` of the labelled points, margin 0.05: FashionAI has no box),
    ``labels`` (1,) int64, ``keypoints`` (1, 24, 3) float32, ``category`` str, ``image_id`` str.
    """

    def __init__(
        self, root: str | Path, csv: str = "Annotations/train.csv", images: bool = True,
        transform: Transform | None = None,
    ) -> None:
        self.root = Path(root)
        self.csv = self.root / csv
        self.transform = transform
        self.annotations, self.quirks = parse_keypoint_csv(self.csv)
        self.sizes = None
        if images:
            ann = self.annotations
            self.sizes = image_sizes(self.root, ann.image_ids, ann.lines, self.csv.name)
            outside = outside_image(ann.keypoints, self.sizes)
            count = int(outside.sum())
            self.quirks["out_of_bounds_points"] = count
            if count:
                first = int(outside.any(1).nonzero()[0, 0])
                warnings.warn(f"{self.csv.name}: {count} labelled key points outside the image bounds, in "
                              f"{int(outside.any(1).sum())} rows (first at line {ann.lines[first]}); kept as given",
                              stacklevel=2)
        if self.quirks["blank_lines"]:
            warnings.warn(f"{self.csv.name}: skipped {self.quirks['blank_lines']} blank lines", stacklevel=2)
        if self.quirks["duplicate_rows"]:
            warnings.warn(f"{self.csv.name}: {self.quirks['duplicate_rows']} exact repeats of an earlier row (read "
                          "once)", stacklevel=2)

    def __len__(self) -> int:
        return len(self.annotations)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict]:
        ann = self.annotations
        image = load_image(self.root / ann.image_ids[index])
        keypoints = ann.keypoints[index : index + 1].clone()  # (1, 24, 3)
        target = {
            "boxes": keypoint_boxes(keypoints, 0.05, image.shape[2], image.shape[1]),
            "labels": ann.labels[index : index + 1].clone(),
            "keypoints": keypoints,
            "category": ann.categories[index],
            "image_id": ann.image_ids[index],
        }
        if self.transform is not None:
            return self.transform(image, target)
        return image, target


@dataclass(frozen=True)
class AttributeAnnotations:
    """All rows of a FashionAI attribute ``label.csv``."""

    image_ids: tuple[str, ...]
    """``N`` image paths relative to the split directory (``Images/<AttrKey>/<hash>.jpg``)."""
    tasks: tuple[str, ...]
    """``N`` AttrKeys."""
    labels: tuple[torch.Tensor, ...]
    """``N`` tensors, each ``(C_task,)`` int64 codes :data:`~fashion_lib.attributes.Y` / ``M`` / ``N``."""
    lines: tuple[int, ...]
    """``N`` 1-based line numbers."""

    def __len__(self) -> int:
        return len(self.image_ids)

    def task_labels(self, task: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Row indices ``(N_t,)`` int64 and stacked codes ``(N_t, C_task)`` int64 of one task."""
        if task not in FASHIONAI_TASKS:
            raise ValueError(f"task must be one of {', '.join(FASHIONAI_TASKS)}, got {task!r}")
        idx = [i for i, t in enumerate(self.tasks) if t == task]
        codes = torch.stack([self.labels[i] for i in idx]) if idx else torch.zeros(0, len(FASHIONAI_TASKS[task]))
        return torch.tensor(idx, dtype=torch.long), codes.long()


def parse_attribute_csv(path: str | Path) -> tuple[AttributeAnnotations, dict[str, int]]:
    """Parse a FashionAI attribute file: no header, rows ``<image path>,<AttrKey>,<label string>``.

    Returns
    -------
    annotations : AttributeAnnotations
    quirks : dict (``blank_lines``, ``attribute_rows_without_one_y``, ``duplicate_rows``)

    Raises
    ------
    ValueError
        Naming file and line: bytes that are not UTF-8, no row, the same image on two rows with another AttrKey or
        other labels, a wrong column count, an unknown AttrKey, a label string of the wrong length or
        with characters other than ``y``, ``m``, ``n``, an empty image path.
    """
    path = Path(path)
    name = path.name
    ids, tasks, labels, nums = [], [], [], []
    blank = not_one_y = repeats = 0
    seen: dict[str, tuple[int, Any]] = {}
    for lineno, line in enumerate(_read_lines(path), start=1):
        if not line.strip():
            blank += 1
            continue
        fields = line.split(",")
        where = f"{name} line {lineno}"
        if len(fields) != 3:
            raise ValueError(f"{where}: {len(fields)} columns, expected 3 (image path, AttrKey, label string)")
        image_id, task, label = fields
        if not image_id:
            raise ValueError(f"{where}: the image path is empty")
        codes = parse_label_string(label, task, where=where)
        if _check_repeat(seen, image_id, (task, label), lineno, where, "AttrKey or labels"):
            repeats += 1
            continue
        not_one_y += int((codes == Y).sum()) != 1
        ids.append(image_id)
        tasks.append(task)
        labels.append(codes)
        nums.append(lineno)
    if not ids:
        raise ValueError(f"{name}: no rows; an attribute file needs at least one '<image path>,<AttrKey>,<labels>'")
    ann = AttributeAnnotations(tuple(ids), tuple(tasks), tuple(labels), tuple(nums))
    return ann, {"blank_lines": blank, "attribute_rows_without_one_y": not_one_y, "duplicate_rows": repeats}


class FashionAIAttributes(torch.utils.data.Dataset):
    """FashionAI attribute rows as a torch Dataset.

    Parameters
    ----------
    root : path
        The split directory (``base/``), holding ``Images/`` and ``Annotations/``.
    csv : str
        Label file relative to ``root``.
    images : bool
        Check at construction that every image file exists.
    transform : callable, optional
        ``(image, target) -> (image, target)``.

    Items are ``(image, target)``: ``image`` (3, H, W) float32 in [0, 1]; ``target`` has ``task`` str (the AttrKey),
    ``labels`` (C,) int64 codes (:data:`~fashion_lib.attributes.Y`, ``M``, ``N``), ``image_id`` str.
    """

    def __init__(
        self, root: str | Path, csv: str = "Annotations/label.csv", images: bool = True,
        transform: Transform | None = None,
    ) -> None:
        self.root = Path(root)
        self.csv = self.root / csv
        self.transform = transform
        self.annotations, self.quirks = parse_attribute_csv(self.csv)
        if images:
            for image_id, lineno in zip(self.annotations.image_ids, self.annotations.lines, strict=True):
                if not (self.root / image_id).is_file():
                    raise FileNotFoundError(f"{self.csv.name} line {lineno}: image file "
                                            f"{str(self.root / image_id)!r} not found")
        for key, what in (("blank_lines", "blank lines skipped"),
                          ("attribute_rows_without_one_y", "rows without exactly one 'y' (kept)"),
                          ("duplicate_rows", "exact repeats of an earlier row (read once)")):
            if self.quirks[key]:
                warnings.warn(f"{self.csv.name}: {self.quirks[key]} {what}", stacklevel=2)

    def __len__(self) -> int:
        return len(self.annotations)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict]:
        ann = self.annotations
        image = load_image(self.root / ann.image_ids[index])
        target = {"task": ann.tasks[index], "labels": ann.labels[index].clone(), "image_id": ann.image_ids[index]}
        if self.transform is not None:
            return self.transform(image, target)
        return image, target
