"""The synthetic world's knobs, its randomness, and the attribute latents shared by every renderer.

Every attribute is a continuous latent that decides both the drawing and the label (paper, section III.B: the
FashionAI attribute tasks and their ``m`` "maybe" labels). A task is an ordered list of classes with a prototype
drawing vector per class; the latent ``u`` in ``[0, n)`` picks class ``order[floor(u)]`` and the drawing vector is
interpolated between neighbouring prototypes, so near a boundary the drawing really is between two classes, which
is where an ``m`` label goes.

Randomness comes only from a ``torch.Generator``; item ``i`` of a data set is generated from a generator seeded by
``(seed, split, i)`` (:func:`item_generator`), so items are deterministic and independent of worker order.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import torch

from fashion_lib.attributes import FASHIONAI_TASKS, M, N, Y
from fashion_lib.keypoints import FASHIONAI

__all__ = ["WorldConfig", "CATEGORIES", "CATEGORY_TASKS", "TASK_CATEGORIES", "item_generator"]

CATEGORIES: tuple[str, ...] = tuple(FASHIONAI.categories)
"""FashionAI categories in schema order; ``labels`` of a target is the index here plus 1 (0 is background)."""

CATEGORY_TASKS: dict[str, tuple[str, ...]] = {
    "blouse": ("sleeve_length_labels", "neckline_design_labels", "collar_design_labels"),
    "outwear": ("sleeve_length_labels", "coat_length_labels", "lapel_design_labels", "neck_design_labels"),
    "dress": ("sleeve_length_labels", "neckline_design_labels", "skirt_length_labels"),
    "skirt": ("skirt_length_labels",),
    "trousers": ("pant_length_labels",),
}
"""Category -> the attribute tasks that apply to it (module docstring)."""

TASK_CATEGORIES: dict[str, tuple[str, ...]] = {
    task: tuple(c for c in CATEGORIES if task in CATEGORY_TASKS[c]) for task in FASHIONAI_TASKS
}
"""AttrKey -> the categories whose garments carry it."""


@dataclass(frozen=True)
class WorldConfig:
    """Knobs of the synthetic world. Defaults give clean, varied, learnable 128-px images."""

    image_size: int = 128
    # side of the square images, pixels (FashionAI's real images are 512; the study trains at 128)
    scale: tuple[float, float] = (0.3, 0.97)
    # garment size: its longer side as a fraction of image_size, drawn uniformly from this range (the key-point
    # box's extent then spans the real FashionAI photographs' 0.32-0.92 of the frame, real-data-facts.md)
    rotation_deg: float = 10.0
    # in-plane rotation of the garment (and its symmetry axis), uniform in [-rotation_deg, rotation_deg] degrees
    perspective: float = 0.03
    # strength of the projective tilt of the symmetry axis plane (0: affine); homography row (p, q, 1), |p|,|q| <= it
    asymmetry: float = 0.3
    # pose asymmetry in [0, 1]: raised arms, folded sleeves and bent legs break the left/right symmetry
    occlusion_rate: float = 0.085
    # chance that each existing point becomes the centre of an occluder (which may hide neighbours too)
    occluder_size: float = 0.18
    # occluder radius as a fraction of the garment's longer side
    occluded_label_noise: float = 0.07
    # garments: standard deviation of the annotator's guess of a hidden (occluded) point's position, in garment units
    # (shoulder width ~ 1); real occluded points lie about twice as far from their partner's mirror image as
    # visible ones (real-data-facts.md)
    clutter: float = 2.0
    # mean number of background shapes (Poisson)
    noise: float = 12.0
    # standard deviation of the background's pixel noise, in 0..255 grey levels
    label_noise: float = 0.0
    # chance that an attribute's ``y`` class is replaced by another (wrong) class; the drawing is unchanged
    maybe_width: float = 0.12
    # a latent within this distance (in class units) of a class boundary gives the neighbouring class an ``m``
    people: tuple[int, int] = (1, 4)
    # number of persons per COCO image, uniform in this inclusive range
    person_scale: tuple[float, float] = (0.2, 0.85)
    # person height as a fraction of image_size; the low end gives COCO's small persons
    crowd_rate: float = 0.25
    # chance that a COCO image holds a crowd region (small unlabelled figures, one ``iscrowd=1`` annotation)
    dressed_rate: float = 0.7
    # chance that a person wears a garment drawn over the body
    truncation_rate: float = 0.15
    # chance that a DeepFashion image is cut off below, so that its lowest landmarks are truncated (code 2)
    jpeg_quality: int = 90
    # JPEG quality of the writers (fixed so that the same seed gives the same bytes)

    def __post_init__(self) -> None:
        if not 16 <= self.image_size <= 4096:
            raise ValueError(f"image_size must be in [16, 4096], got {self.image_size}")
        _check_range("scale", self.scale, 0.05, 1.0)
        _check_range("person_scale", self.person_scale, 0.05, 1.0)
        for name, hi in (("rotation_deg", 90.0), ("perspective", 0.5), ("noise", 128.0), ("clutter", 100.0)):
            value = getattr(self, name)
            if not 0.0 <= value <= hi:
                raise ValueError(f"{name} must be in [0, {hi}], got {value}")
        for name in ("asymmetry", "occlusion_rate", "label_noise", "crowd_rate", "dressed_rate",
                     "truncation_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        if not 0.0 <= self.occluded_label_noise <= 1.0:
            raise ValueError(f"occluded_label_noise must be in [0, 1], got {self.occluded_label_noise}")
        if not 0.0 < self.occluder_size <= 1.0:
            raise ValueError(f"occluder_size must be in (0, 1], got {self.occluder_size}")
        if not 0.0 <= self.maybe_width < 0.5:
            raise ValueError(f"maybe_width must be in [0, 0.5), got {self.maybe_width}")
        lo, hi = self.people
        if not 0 <= lo <= hi <= 20:
            raise ValueError(f"people must satisfy 0 <= low <= high <= 20, got {self.people}")
        if not 1 <= self.jpeg_quality <= 95:
            raise ValueError(f"jpeg_quality must be in [1, 95], got {self.jpeg_quality}")


def _check_range(name: str, value: tuple[float, float], lo: float, hi: float) -> None:
    if len(value) != 2 or not lo <= value[0] <= value[1] <= hi:
        raise ValueError(f"{name} must be (low, high) with {lo} <= low <= high <= {hi}, got {value}")


# ----------------------------------------------------------------------------------------------------------------
# Attribute latents: each task is an ordered list of classes with a prototype drawing vector per class. The latent
# u in [0, n) picks class order[floor(u)]; the drawing vector is interpolated between neighbouring prototypes
# (centres at k + 0.5), so near a boundary the drawing really is between two classes, which is where ``m`` goes.
# ----------------------------------------------------------------------------------------------------------------

# Neck-region drawing vector, shared by the four design tasks:
_NECK_PARAMS = ("depth", "width", "shape", "strap", "collar", "collar_round", "band", "turtle", "ruffle", "lapel",
                "notch")
_NECK_DEFAULT = {"blouse": dict(depth=0.16, width=0.17), "dress": dict(depth=0.18, width=0.18),
                 "outwear": dict(depth=0.55, width=0.15, shape=1.0)}


@dataclass(frozen=True)
class _TaskModel:
    order: tuple[int, ...]  # class indices from one end of the latent to the other
    protos: tuple[dict[str, float], ...]  # drawing parameters of each class, in ``order``


_TASK_MODELS: dict[str, _TaskModel] = {
    # length tasks: one parameter, the length in garment units (shoulder width ~ 1), ordered short -> long
    "sleeve_length_labels": _TaskModel(
        (1, 2, 3, 4, 5, 6, 7, 8), tuple({"sleeve": v} for v in (0.0, 0.14, 0.32, 0.55, 0.75, 0.95, 1.12, 1.32))
    ),
    "coat_length_labels": _TaskModel(
        (4, 1, 2, 3, 5, 6, 7), tuple({"body": v} for v in (0.6, 0.8, 1.05, 1.35, 1.75, 2.15, 2.6))
    ),
    "skirt_length_labels": _TaskModel((1, 2, 3, 4, 5), tuple({"skirt": v} for v in (0.45, 0.8, 1.15, 1.5, 1.8))),
    "pant_length_labels": _TaskModel((1, 2, 3, 4, 5), tuple({"pant": v} for v in (0.4, 0.65, 0.95, 1.2, 1.5))),
    # design tasks: neck-region drawings (shape: 0 round, 1 V, 2 square)
    "neckline_design_labels": _TaskModel(
        (1, 6, 9, 3, 5, 7, 8, 4, 2),
        (
            dict(depth=0.42, width=0.5, shape=2.0, strap=1.0),  # strapless
            dict(depth=0.16, width=0.5, shape=0.0, strap=0.7),  # off shoulder
            dict(depth=0.25, width=0.35, shape=1.0, strap=0.4),  # one shoulder
            dict(depth=0.04, width=0.3, shape=2.0),  # straight
            dict(depth=0.28, width=0.22, shape=2.0),  # square
            dict(depth=0.2, width=0.18, shape=0.0),  # round
            dict(depth=0.34, width=0.24, shape=0.5),  # sweetheart
            dict(depth=0.36, width=0.16, shape=1.0),  # V
            dict(depth=0.7, width=0.17, shape=1.0),  # deep V
        ),
    ),
    "collar_design_labels": _TaskModel(
        (4, 1, 2, 3),
        (
            dict(band=0.08),  # rib collar
            dict(collar=0.22, collar_round=0.0, band=0.03),  # shirt collar
            dict(collar=0.2, collar_round=1.0),  # peter pan
            dict(collar=0.36, collar_round=1.0),  # puritan
        ),
    ),
    "neck_design_labels": _TaskModel(
        (3, 1, 2, 4),
        (
            dict(turtle=0.1),  # low turtle
            dict(turtle=0.3),  # turtle
            dict(turtle=0.16, ruffle=1.0),  # ruffle semi-high
            dict(turtle=0.04, ruffle=0.6, depth=0.3, shape=0.0),  # draped
        ),
    ),
    "lapel_design_labels": _TaskModel(
        (2, 1, 3, 4),
        (
            dict(lapel=0.0),  # collarless
            dict(lapel=0.24, notch=1.0),  # notched
            dict(lapel=0.3),  # shawl
            dict(lapel=0.46),  # plus size shawl
        ),
    ),
}


def _latent_to_labels(task: str, u: float, cfg: WorldConfig, draws: _Draws) -> tuple[torch.Tensor, dict]:
    """Map latent ``u`` in [0, n) of ``task`` to its (C,) label codes and its drawing parameters."""
    model = _TASK_MODELS[task]
    n = len(model.order)
    codes = torch.full((len(FASHIONAI_TASKS[task]),), N, dtype=torch.long)
    k = min(int(u), n - 1)
    codes[model.order[k]] = Y
    frac = u - k
    if frac < cfg.maybe_width and k > 0:
        codes[model.order[k - 1]] = M
    if 1.0 - frac < cfg.maybe_width and k < n - 1:
        codes[model.order[k + 1]] = M
    # two draws whatever the outcome, so that label noise never changes the rest of the drawing
    flip, pick = draws.uniform(), draws.uniform()
    if flip < cfg.label_noise:
        wrong = [c for c in range(1, len(codes)) if c != model.order[k]]
        codes[model.order[k]] = N
        codes[wrong[int(pick * len(wrong))]] = Y
    # piecewise-linear interpolation between the prototypes' centres
    t = min(max(u - 0.5, 0.0), n - 1.0)
    a = min(int(t), n - 2) if n > 1 else 0
    w = t - a
    lo, hi = model.protos[a], model.protos[min(a + 1, n - 1)]
    params = {key: (1 - w) * lo.get(key, 0.0) + w * hi.get(key, 0.0) for key in set(lo) | set(hi)}
    return codes, params


class _Draws:
    """Uniform numbers drawn from a ``torch.Generator`` in blocks (one torch call per block, not per number)."""

    def __init__(self, generator: torch.Generator, block: int = 256) -> None:
        self.generator = generator
        self.block = block
        self.values: list[float] = []
        self.seed = int(torch.randint(0, 2**62, (1,), generator=generator))

    def uniform(self, lo: float = 0.0, hi: float = 1.0) -> float:
        if not self.values:
            self.values = torch.rand(self.block, generator=self.generator, dtype=torch.float64).tolist()[::-1]
        return lo + (hi - lo) * self.values.pop()

    def integer(self, lo: int, hi: int) -> int:
        """Uniform integer in the inclusive range [lo, hi]."""
        return min(lo + int(self.uniform() * (hi - lo + 1)), hi)

    def numpy(self) -> np.random.Generator:
        """A NumPy generator derived from this stream, for whole pixel arrays (noise)."""
        return np.random.default_rng(self.seed)


def item_generator(seed: int, split: str, index: int) -> torch.Generator:
    """The generator of item ``index`` of ``split`` for ``seed``: independent of order and of the worker.

    Parameters
    ----------
    seed : int
        Data-set seed.
    split : str
        Split name (``"train"``, ``"val"``, ...): different splits never share an item.
    index : int
        Item index.
    """
    digest = hashlib.sha256(f"{seed}/{split}/{index}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") >> 1)

