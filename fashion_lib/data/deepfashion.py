"""DeepFashion Category and Attribute Prediction benchmark (``Anno/``, ``Eval/``, ``Img/``) as a torch Dataset.

Format: ``data-formats.md`` section C. Paper, section IV.A uses DeepFashion's 50 categories and 1000 attributes of 5
types (texture, fabric, shape, part, style); this loader reads any attribute count with that layout.

Every list file has the entry count on line 1, column names on line 2, then one entry per line with fields
separated by runs of spaces (attribute names contain single spaces; numbers may be zero-padded). Data rows of
``list_landmarks.txt`` are ``name clothes_type (v x y) x n`` with n = 6 / 4 / 8 for clothes type 1 / 2 / 3.

Mappings onto the library's conventions:

- attribute values: 1 -> 1, -1 -> 0; the documented "unknown" 0 -> 0, counted in ``quirks["unknown_attribute_values"]``;
- landmarks are placed in 8 slots, full-body order (:data:`LANDMARK_NAMES`); slots a clothes type lacks are absent;
- landmark visibility: DeepFashion 0 visible -> 2, 1 occluded -> 1, 2 truncated / not in the picture -> 0 (absent,
  coordinates set to 0, counted in ``quirks["truncated_landmarks"]``);
- ``labels`` is the 1-based category id of the file (row of ``list_category_cloth.txt``).

Errors name the file, the line and what is wrong (a wrong field count, a category id outside the category list, a
value outside its codes, an image missing from a list or from ``Img/``); the clothes type of a landmark row must
match its category's type. Quirks are handled, counted in ``.quirks`` and warned about, never dropped:

- ``unknown_attribute_values``, ``truncated_landmarks``: see above;
- ``variation_type_column``: ``data-formats.md`` F.3 leaves open whether ``list_landmarks.txt`` rows carry a
  ``variation_type`` column after ``clothes_type`` (three parsers say no). When line 2 names ``variation_type``,
  rows are read with it (the value is checked to be an integer and not used) and this count is 1;
- ``out_of_bounds_points`` (when images are read): a landmark labelled visible or occluded outside its image.
  No real excerpt exists; truncated points have their own code, so such a point is an annotation slip near the
  border, kept as given and reported with the file, the first line and the count, as in the other loaders;
- ``out_of_bounds_boxes`` (when images are read): a box reaching beyond its image (a slip at the border, kept as
  given and reported likewise). A box with no pixel inside its image is an error naming its ``list_bbox.txt`` line.

Also errors: bytes that are not UTF-8 (file, byte offset, line), a list whose entry count is 0 (a wrong file, not
an empty data set), the same image on two rows of a list, an image file PIL cannot decode (named with its
``list_eval_partition.txt`` line).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from fashion_lib.data.fashionai import image_sizes, load_image, outside_image
from fashion_lib.io import decode_text, read_text
from fashion_lib.keypoints import ABSENT, OCCLUDED, VISIBLE

__all__ = ["DeepFashionAttributes", "DeepFashionTables", "read_deepfashion", "LANDMARK_NAMES", "ATTRIBUTE_TYPES",
           "CLOTHES_TYPES", "CLOTHES_TYPE_SLOTS", "SPLITS"]

LANDMARK_NAMES = ("left collar", "right collar", "left sleeve", "right sleeve", "left waistline", "right waistline",
                  "left hem", "right hem")
"""The 8 landmark slots, in the full-body (clothes type 3) order."""
CLOTHES_TYPE_SLOTS = {1: (0, 1, 2, 3, 6, 7), 2: (4, 5, 6, 7), 3: (0, 1, 2, 3, 4, 5, 6, 7)}
"""Clothes type -> the slots of :data:`LANDMARK_NAMES` its rows fill, in row order (data-formats.md C.2)."""
ATTRIBUTE_TYPES = {1: "texture", 2: "fabric", 3: "shape", 4: "part", 5: "style"}
"""Attribute type code -> name."""
CLOTHES_TYPES = {1: "upper-body", 2: "lower-body", 3: "full-body"}
SPLITS = ("train", "val", "test")
_VIS = {0: VISIBLE, 1: OCCLUDED, 2: ABSENT}

Transform = Callable[[torch.Tensor, dict], tuple[torch.Tensor, dict]]


def _table(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """The column names of line 2 and ``(line number, whitespace-split fields)`` of the data rows."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: annotation file not found")
    name = path.name
    lines = read_text(path, name=name).splitlines()
    if len(lines) < 2:
        raise ValueError(f"{name}: {len(lines)} lines, expected at least 2 (the entry count, the column names)")
    try:
        count = int(lines[0].strip())
    except ValueError:
        raise ValueError(f"{name} line 1: {lines[0]!r}, expected the number of entries (an integer)") from None
    if count < 1:
        raise ValueError(f"{name} line 1: says {count} entries; an annotation list needs at least one")
    if not lines[1].strip():
        raise ValueError(f"{name} line 2: empty, expected the column names")
    rows = [(i, line.split()) for i, line in enumerate(lines[2:], start=3) if line.strip()]
    if len(rows) != count:
        raise ValueError(f"{name} line 1: says {count} entries, the file has {len(rows)} data rows")
    return lines[1].split(), rows


def _table_header(path: Path) -> list[str]:
    """The column names on line 2 of a list file (empty when the file is shorter)."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: annotation file not found")
    with path.open("rb") as f:
        head = f.readline() + f.readline()
    lines = decode_text(head, path.name).splitlines()
    return lines[1].split() if len(lines) > 1 else []


def _int(token: str, where: str, what: str, allowed=None) -> int:
    try:
        value = int(token)
    except ValueError:
        raise ValueError(f"{where}: {what} = {token!r}, expected an integer") from None
    if allowed is not None and value not in allowed:
        raise ValueError(f"{where}: {what} = {value}, expected one of {sorted(allowed)}")
    return value


@dataclass(frozen=True)
class DeepFashionTables:
    """Every list file of the benchmark, parsed; image-level tensors are in the order of ``image_names``."""

    category_names: tuple[str, ...]
    """50 category names (id = index + 1)."""
    category_types: torch.Tensor
    """``(C,)`` int64 clothes type 1 / 2 / 3 of each category."""
    attribute_names: tuple[str, ...]
    """``A`` attribute names (may contain spaces)."""
    attribute_types: torch.Tensor
    """``(A,)`` int64 type 1..5 (:data:`ATTRIBUTE_TYPES`)."""
    image_names: tuple[str, ...]
    """``N`` keys ``img/<item>/img_XXXXXXXX.jpg``, in ``list_eval_partition.txt`` order."""
    splits: tuple[str, ...]
    """``N`` split names."""
    labels: torch.Tensor
    """``(N,)`` int64 category ids, 1-based."""
    attributes: torch.Tensor
    """``(N, A)`` int64 in {0, 1}."""
    boxes: torch.Tensor
    """``(N, 4)`` float32 x1, y1, x2, y2 pixels."""
    keypoints: torch.Tensor
    """``(N, 8, 3)`` float32 x, y pixels, v in {0, 1, 2}."""
    clothes_types: torch.Tensor
    """``(N,)`` int64."""
    lines: dict[str, tuple[int, ...]]
    """List file name -> ``N`` 1-based line numbers of each image's row (for messages)."""


def read_deepfashion(root: str | Path) -> tuple[DeepFashionTables, dict[str, int]]:
    """Parse ``Anno/*.txt`` and ``Eval/list_eval_partition.txt`` under ``root`` (no image is read).

    Returns
    -------
    tables : DeepFashionTables
    quirks : dict (``unknown_attribute_values``, ``truncated_landmarks``, ``variation_type_column``)
    """
    root = Path(root)
    anno = root / "Anno"
    _, cat_rows = _table(anno / "list_category_cloth.txt")
    cat_names, cat_types = [], []
    for lineno, f in cat_rows:
        where = f"list_category_cloth.txt line {lineno}"
        if len(f) < 2:
            raise ValueError(f"{where}: {len(f)} fields, expected 2 (category_name, category_type)")
        cat_names.append(" ".join(f[:-1]))
        cat_types.append(_int(f[-1], where, "category_type", CLOTHES_TYPES))
    _, attr_rows = _table(anno / "list_attr_cloth.txt")
    attr_names, attr_types = [], []
    for lineno, f in attr_rows:
        where = f"list_attr_cloth.txt line {lineno}"
        if len(f) < 2:
            raise ValueError(f"{where}: {len(f)} fields, expected an attribute name and its type")
        attr_names.append(" ".join(f[:-1]))
        attr_types.append(_int(f[-1], where, "attribute_type", ATTRIBUTE_TYPES))
    n_attr = len(attr_names)

    def by_image(file: str, parse) -> dict[str, tuple[int, object]]:
        out = {}
        _, rows = _table(anno / file if file != "list_eval_partition.txt" else root / "Eval" / file)
        for lineno, f in rows:
            where = f"{file} line {lineno}"
            if f[0] in out:
                raise ValueError(f"{where}: image {f[0]!r} already listed on line {out[f[0]][0]}")
            out[f[0]] = (lineno, parse(f, where))
        return out

    def parse_category(f, where):
        if len(f) != 2:
            raise ValueError(f"{where}: {len(f)} fields, expected 2 (image_name, category_label)")
        return _int(f[1], where, "category_label", range(1, len(cat_names) + 1))

    unknown = 0

    def parse_attr(f, where):
        nonlocal unknown
        if len(f) != 1 + n_attr:
            raise ValueError(f"{where}: {len(f) - 1} attribute values, expected {n_attr} (list_attr_cloth.txt)")
        try:  # the fast path: the real file has 289,222 rows of 1000 values
            values = [int(t) for t in f[1:]]
        except ValueError:
            values = []
        if len(values) != n_attr or not set(values) <= {-1, 0, 1}:
            values = [_int(t, where, f"attribute {j + 1}", (-1, 0, 1)) for j, t in enumerate(f[1:])]
        unknown += values.count(0)
        return [int(v > 0) for v in values]

    def parse_bbox(f, where):
        if len(f) != 5:
            raise ValueError(f"{where}: {len(f)} fields, expected 5 (image_name, x_1, y_1, x_2, y_2)")
        x1, y1, x2, y2 = (_int(t, where, c, None) for t, c in zip(f[1:], ("x_1", "y_1", "x_2", "y_2"), strict=True))
        if x2 < x1 or y2 < y1:
            raise ValueError(f"{where}: box ({x1}, {y1}, {x2}, {y2}) has x_2 < x_1 or y_2 < y_1")
        return [x1, y1, x2, y2]

    truncated = 0

    def parse_landmarks(f, where):
        nonlocal truncated
        first = 3 if variation else 2  # index of the first landmark value
        if len(f) < first:
            raise ValueError(f"{where}: {len(f)} fields, expected image_name, clothes_type"
                             f"{', variation_type' if variation else ''} and landmark triples")
        ctype = _int(f[1], where, "clothes_type", CLOTHES_TYPES)
        if variation:
            _int(f[2], where, "variation_type")
        slots = CLOTHES_TYPE_SLOTS[ctype]
        if len(f) - first != 3 * len(slots):
            raise ValueError(f"{where}: {len(f) - first} landmark values, clothes_type {ctype} has {len(slots)} "
                             f"landmarks, expected {3 * len(slots)} values (v x y each)")
        kp = [[0.0, 0.0, float(ABSENT)] for _ in LANDMARK_NAMES]
        for s, slot in enumerate(slots):
            v = _int(f[first + 3 * s], where, f"landmark_visibility_{s + 1}", _VIS)
            x = _int(f[first + 1 + 3 * s], where, f"landmark_location_x_{s + 1}")
            y = _int(f[first + 2 + 3 * s], where, f"landmark_location_y_{s + 1}")
            if _VIS[v] == ABSENT:
                truncated += 1
            else:
                kp[slot] = [float(x), float(y), float(_VIS[v])]
        return ctype, kp

    def parse_split(f, where):
        if len(f) != 2 or f[1] not in SPLITS:
            raise ValueError(f"{where}: {' '.join(f[1:])!r}, expected one of {SPLITS} as evaluation_status")
        return f[1]

    part = by_image("list_eval_partition.txt", parse_split)
    tables = {
        "list_category_img.txt": by_image("list_category_img.txt", parse_category),
        "list_attr_img.txt": by_image("list_attr_img.txt", parse_attr),
        "list_bbox.txt": by_image("list_bbox.txt", parse_bbox),
    }
    variation = "variation_type" in _table_header(anno / "list_landmarks.txt")
    tables["list_landmarks.txt"] = by_image("list_landmarks.txt", parse_landmarks)
    names = tuple(part)
    for file, table in tables.items():
        missing = [n for n in names if n not in table]
        if missing:
            raise ValueError(f"{file}: no row for image {missing[0]!r} (list_eval_partition.txt line "
                             f"{part[missing[0]][0]}); {len(missing)} images missing")
        extra = [n for n in table if n not in part]
        if extra:
            raise ValueError(f"{file} line {table[extra[0]][0]}: image {extra[0]!r} is not in list_eval_partition.txt")
    labels = [tables["list_category_img.txt"][n][1] for n in names]
    for n, label in zip(names, labels, strict=True):
        lineno, (ctype, _) = tables["list_landmarks.txt"][n]
        if ctype != cat_types[label - 1]:
            raise ValueError(f"list_landmarks.txt line {lineno}: clothes_type {ctype}, but the image's category "
                             f"{cat_names[label - 1]!r} (list_category_img.txt line "
                             f"{tables['list_category_img.txt'][n][0]}) has type {cat_types[label - 1]}")
    n = len(names)
    result = DeepFashionTables(
        category_names=tuple(cat_names),
        category_types=torch.tensor(cat_types, dtype=torch.long),
        attribute_names=tuple(attr_names),
        attribute_types=torch.tensor(attr_types, dtype=torch.long),
        image_names=names,
        splits=tuple(part[k][1] for k in names),
        labels=torch.tensor(labels, dtype=torch.long),
        attributes=torch.tensor([tables["list_attr_img.txt"][k][1] for k in names], dtype=torch.long).reshape(
            n, n_attr
        ),
        boxes=torch.tensor([tables["list_bbox.txt"][k][1] for k in names], dtype=torch.float32).reshape(n, 4),
        keypoints=torch.tensor([tables["list_landmarks.txt"][k][1][1] for k in names], dtype=torch.float32).reshape(
            n, len(LANDMARK_NAMES), 3
        ),
        clothes_types=torch.tensor([tables["list_landmarks.txt"][k][1][0] for k in names], dtype=torch.long),
        lines={"list_eval_partition.txt": tuple(part[k][0] for k in names),
               **{file: tuple(table[k][0] for k in names) for file, table in tables.items()}},
    )
    quirks = {"unknown_attribute_values": unknown, "truncated_landmarks": truncated,
              "variation_type_column": int(variation)}
    return result, quirks


def _check_boxes(boxes: torch.Tensor, sizes: torch.Tensor, lines: list[int], split: str) -> int:
    """Count (and warn about) ``(M, 4)`` x1, y1, x2, y2 boxes reaching beyond their ``(M, 2)`` image sizes (width,
    height); raise naming the ``list_bbox.txt`` line of the first box with no pixel inside its image."""
    wh = sizes.float()  # (M, 2)
    disjoint = (boxes[:, :2] >= wh).any(1) | (boxes[:, 2:] <= 0).any(1)  # (M,)
    if disjoint.any():
        i = int(disjoint.nonzero()[0, 0])
        raise ValueError(f"list_bbox.txt line {lines[i]}: box {tuple(int(v) for v in boxes[i].tolist())} lies "
                         f"outside its {int(sizes[i, 0])} x {int(sizes[i, 1])} image")
    beyond = (boxes[:, :2] < 0).any(1) | (boxes[:, 2:] > wh).any(1)  # (M,)
    count = int(beyond.sum())
    if count:
        warnings.warn(f"list_bbox.txt: {count} boxes of split {split!r} reach beyond their image (first at line "
                      f"{lines[int(beyond.nonzero()[0, 0])]}); kept as given", stacklevel=3)
    return count


class DeepFashionAttributes(torch.utils.data.Dataset):
    """One split of the DeepFashion Category and Attribute benchmark.

    Parameters
    ----------
    root : path
        Directory holding ``Anno/``, ``Eval/`` and ``Img/``.
    split : str
        ``"train"``, ``"val"`` or ``"test"`` (``Eval/list_eval_partition.txt``).
    images : bool
        Check at construction that every image of the split exists (``Img/<image_name>``) and read its size, to
        count landmarks outside it.
    transform : callable, optional
        ``(image, target) -> (image, target)``.

    Attributes
    ----------
    tables : DeepFashionTables
        All images of all splits, parsed.
    indices : (M,) int64
        Rows of ``tables`` in this split.
    sizes : (M, 2) int64 or None
        Width and height of this split's images (``None`` when ``images=False``).
    quirks : dict name -> count

    Items are ``(image, target)``: ``image`` (3, H, W) float32 in [0, 1]; ``target`` has ``boxes`` (1, 4) float32,
    ``labels`` (1,) int64 (1-based category id), ``category`` str, ``attributes`` (A,) int64 in {0, 1},
    ``keypoints`` (1, 8, 3) float32 (:data:`LANDMARK_NAMES` slots, v in {0, 1, 2}), ``clothes_type`` int,
    ``image_id`` str.
    """

    def __init__(
        self, root: str | Path, split: str = "train", images: bool = True, transform: Transform | None = None
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        self.root = Path(root)
        self.split = split
        self.transform = transform
        self.tables, self.quirks = read_deepfashion(self.root)
        self.indices = torch.tensor([i for i, s in enumerate(self.tables.splits) if s == split], dtype=torch.long)
        self.sizes = None
        if images:
            t, idx = self.tables, self.indices.tolist()
            self.sizes = image_sizes(self.root / "Img", [t.image_names[i] for i in idx],
                                     [t.lines["list_eval_partition.txt"][i] for i in idx], "list_eval_partition.txt")
            self.quirks["out_of_bounds_boxes"] = _check_boxes(t.boxes[self.indices], self.sizes,
                                                              [t.lines["list_bbox.txt"][i] for i in idx], split)
            outside = outside_image(t.keypoints[self.indices], self.sizes)  # (M, 8)
            self.quirks["out_of_bounds_points"] = count = int(outside.sum())
            if count:
                first = t.lines["list_landmarks.txt"][idx[int(outside.any(1).nonzero()[0, 0])]]
                warnings.warn(f"list_landmarks.txt: {count} labelled landmarks outside the image bounds, in "
                              f"{int(outside.any(1).sum())} rows of split {split!r} (first at line {first}); "
                              "kept as given", stacklevel=2)
        for key, file, what in (
            ("unknown_attribute_values", "list_attr_img.txt", "attribute values 0 ('unknown', read as negative)"),
            ("truncated_landmarks", "list_landmarks.txt", "truncated landmarks (v = 2, read as absent)"),
            ("variation_type_column", "list_landmarks.txt", "file with a variation_type column (read and ignored)"),
        ):
            if self.quirks[key]:
                warnings.warn(f"{file}: {self.quirks[key]} {what}", stacklevel=2)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict]:
        i = int(self.indices[index])
        t = self.tables
        image = load_image(self.root / "Img" / t.image_names[i])
        label = int(t.labels[i])
        target = {
            "boxes": t.boxes[i : i + 1].clone(),
            "labels": t.labels[i : i + 1].clone(),
            "category": t.category_names[label - 1],
            "attributes": t.attributes[i].clone(),
            "keypoints": t.keypoints[i : i + 1].clone(),
            "clothes_type": int(t.clothes_types[i]),
            "image_id": t.image_names[i],
        }
        if self.transform is not None:
            return self.transform(image, target)
        return image, target
