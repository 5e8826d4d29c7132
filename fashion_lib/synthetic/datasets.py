"""On-the-fly ``torch`` data sets of the synthetic world, with the item formats of the real loaders.

Item ``i`` of a split depends only on ``(seed, split, i)`` (:func:`~fashion_lib.synthetic.world.item_generator`),
and is the same garment, person group or DeepFashion item as image ``i`` of that split in the matching writer
(:mod:`fashion_lib.synthetic.writers`), up to JPEG compression and the writers' integer coordinates.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from fashion_lib.synthetic.deepfashion import DRAWN_CATEGORIES, render_deepfashion
from fashion_lib.synthetic.garments import render_garment
from fashion_lib.synthetic.people import render_people
from fashion_lib.synthetic.world import CATEGORIES, WorldConfig, item_generator

__all__ = ["SyntheticGarments", "SyntheticPeople", "SyntheticDeepFashion"]


def _image_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div_(255.0)  # (3, H, W)


def _axis_tensor(normal: np.ndarray, offset) -> torch.Tensor:
    normal = torch.as_tensor(np.asarray(normal, dtype=np.float32)).reshape(-1, 2)
    offset = torch.as_tensor(np.asarray(offset, dtype=np.float32)).reshape(-1, 1)
    return torch.cat([normal, offset], 1)  # (N, 3)


class _Synthetic(torch.utils.data.Dataset):
    """``length`` items of ``split``; item ``i`` is drawn from :func:`item_generator` ``(seed, split, i)``."""

    def __init__(self, config: WorldConfig, length: int, seed: int, split: str) -> None:
        if length < 0:
            raise ValueError(f"length must be >= 0, got {length}")
        if not isinstance(seed, int):
            raise ValueError(f"seed must be an int, got {seed!r}")
        if not split or "/" in split:
            raise ValueError(f"split must be a non-empty name without '/', got {split!r}")
        self.config, self.length, self.seed, self.split = config, length, seed, split

    def __len__(self) -> int:
        return self.length

    def _generator(self, index: int) -> torch.Generator:
        if not 0 <= index < self.length:
            raise IndexError(f"index must be in [0, {self.length}), got {index}")
        return item_generator(self.seed, self.split, index)


class SyntheticGarments(_Synthetic):
    """One FashionAI garment per image, generated on the fly; item ``i`` depends only on ``(seed, split, i)``.

    Parameters
    ----------
    config : WorldConfig
    length : int
        Number of items.
    seed : int
    split : str
        Any name; different splits never share an item.
    categories : sequence of str, optional
        Restrict to these categories (drawn uniformly among them); all five by default.

    Items are ``(image, target)``: ``image`` (3, H, W) float32 in [0, 1]; ``target`` has ``boxes`` (1, 4) float32
    (:func:`fashion_lib.data.transforms.keypoint_boxes` of the labelled points, margin 0.05, the same rule as the
    FashionAI loader), ``garment_box`` (1, 4) float32 (extent of the drawn garment), ``labels`` (1,) int64
    (category index + 1), ``keypoints`` (1, 24, 3) float32 (x, y pixels, v in {0, 1, 2}), ``occluded`` (1, 24)
    bool, ``axis`` (1, 3) float32 ``[normal_x, normal_y, offset]``, ``category`` str, ``attributes`` dict AttrKey
    -> (C,) int64 codes (:data:`fashion_lib.attributes.Y` / ``M`` / ``N``), ``latents`` dict AttrKey -> float,
    ``image_id`` int (``i``).
    """

    def __init__(
        self, config: WorldConfig, length: int, seed: int, split: str = "train",
        categories: Sequence[str] | None = None,
    ) -> None:
        super().__init__(config, length, seed, split)
        self.categories = tuple(categories) if categories is not None else CATEGORIES
        bad = [c for c in self.categories if c not in CATEGORIES]
        if bad or not self.categories:
            raise ValueError(f"categories must be a non-empty subset of {CATEGORIES}, got {categories!r}")

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict]:
        g = self._generator(index)
        category = None
        if len(self.categories) < len(CATEGORIES):
            category = self.categories[int(torch.randint(len(self.categories), (1,), generator=g))]
        image, t = render_garment(self.config, g, category=category)
        return _image_tensor(image), _garment_target(t, index, self.config.image_size)


def _garment_target(t: dict, image_id, size: int) -> dict:
    from fashion_lib.data.transforms import keypoint_boxes

    keypoints = torch.from_numpy(t["keypoints"])[None]  # (1, 24, 3)
    return {
        "boxes": keypoint_boxes(keypoints, 0.05, size, size),
        "garment_box": torch.from_numpy(t["box"])[None],
        "labels": torch.tensor([CATEGORIES.index(t["category"]) + 1]),
        "keypoints": keypoints,
        "occluded": torch.from_numpy(t["occluded"])[None],
        "axis": _axis_tensor(t["axis_normal"], t["axis_offset"]),
        "category": t["category"],
        "attributes": t["attributes"],
        "latents": t["latents"],
        "image_id": image_id,
    }


class SyntheticPeople(_Synthetic):
    """Several COCO persons per image (plus, sometimes, a crowd region), generated on the fly.

    Parameters
    ----------
    config : WorldConfig
    length : int
    seed : int
    split : str

    Items are ``(image, target)`` with the :class:`fashion_lib.data.coco.CocoKeypoints` item format: ``boxes``
    (N, 4) float32, ``labels`` (N,) int64 (all 1), ``keypoints`` (N, 17, 3) float32, ``iscrowd`` (N,) int64,
    ``area`` (N,) float32, plus the ground truth real data lacks: ``occluded`` (N, 17) bool and ``axis`` (N, 3)
    float32 (zeros for a crowd region); ``image_id`` int.
    """

    def __init__(self, config: WorldConfig, length: int, seed: int, split: str = "train") -> None:
        super().__init__(config, length, seed, split)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict]:
        image, t = render_people(self.config, self._generator(index))
        return _image_tensor(image), _people_target(t, index)


def _people_target(t: dict, image_id) -> dict:
    n = len(t["iscrowd"])
    return {
        "boxes": torch.from_numpy(t["boxes"]).reshape(n, 4),
        "labels": torch.ones(n, dtype=torch.long),
        "keypoints": torch.from_numpy(t["keypoints"]).reshape(n, 17, 3),
        "iscrowd": torch.from_numpy(t["iscrowd"]),
        "area": torch.from_numpy(t["area"]),
        "occluded": torch.from_numpy(t["occluded"]).reshape(n, 17),
        "axis": _axis_tensor(t["axis_normal"], t["axis_offset"]),
        "image_id": image_id,
    }


class SyntheticDeepFashion(_Synthetic):
    """DeepFashion Category-and-Attribute items generated on the fly (:func:`render_deepfashion`).

    Parameters
    ----------
    config : WorldConfig
    length : int
    seed : int
    split : str
        ``"train"``, ``"val"`` and ``"test"`` give the items of the same split of
        :func:`~fashion_lib.synthetic.writers.write_deepfashion` for the same seed.
    categories : sequence of int, optional
        Restrict to these 1-based category ids (drawn uniformly among them); all drawn categories by default.

    Items are ``(image, target)`` with the :class:`fashion_lib.data.deepfashion.DeepFashionAttributes` item format:
    ``image`` (3, H, W) float32 in [0, 1] (``H <= W``: cut-off items are shorter); ``boxes`` (1, 4) float32;
    ``labels`` (1,) int64 (1-based category id); ``category`` str; ``attributes`` (A,) int64 in {0, 1};
    ``keypoints`` (1, 8, 3) float32; ``clothes_type`` int; ``image_id`` int (``i``); plus ``occluded`` (1, 8) bool
    and ``axis`` (1, 3) float32, the ground truth real data lacks.
    """

    def __init__(
        self, config: WorldConfig, length: int, seed: int, split: str = "train",
        categories: Sequence[int] | None = None,
    ) -> None:
        super().__init__(config, length, seed, split)
        self.categories = tuple(categories) if categories is not None else None
        if self.categories is not None and (not self.categories or set(self.categories) - set(DRAWN_CATEGORIES)):
            raise ValueError(f"categories must be a non-empty subset of the drawn ids {DRAWN_CATEGORIES}, "
                             f"got {categories!r}")

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict]:
        g = self._generator(index)
        category = None
        if self.categories is not None:
            category = self.categories[int(torch.randint(len(self.categories), (1,), generator=g))]
        image, t = render_deepfashion(self.config, g, category=category)
        return _image_tensor(image), _deepfashion_target(t, index)


def _deepfashion_target(t: dict, image_id) -> dict:
    return {
        "boxes": torch.from_numpy(t["box"])[None],
        "labels": torch.tensor([t["category_id"]]),
        "category": t["category"],
        "attributes": t["attributes"].clone(),
        "keypoints": torch.from_numpy(t["keypoints"])[None],
        "clothes_type": t["clothes_type"],
        "image_id": image_id,
        "occluded": torch.from_numpy(t["occluded"])[None],
        "axis": _axis_tensor(t["axis_normal"], t["axis_offset"]),
    }
