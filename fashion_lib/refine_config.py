"""The refiner's settings (:class:`RefineConfig`), importable without torch.

:mod:`fashion_lib.refine` (the library, on tensors) and the command line's NumPy path
(:mod:`fashion_lib.refine_numpy`, :mod:`fashion_lib.refine_cli`) read the same config; this module keeps it free of
torch so that the command line never imports it. ``fashion_lib.refine`` re-exports everything here.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fashion_lib.keypoint_tables import get_table

if TYPE_CHECKING:
    from fashion_lib.keypoints import KeypointSchema

__all__ = ["RefineConfig", "RefineSummary", "CropMapping", "MATCH_BY", "resolve_config"]


class CropMapping(str, enum.Enum):
    """How the second scale's crop reaches the detector, and so how its key points map back to the image."""

    RESIZED = "resized"
    """Resized to a fixed square side (``crops.crop_and_resize``); back with the offset and the resize factor."""
    UNRESIZED = "unresized"
    """At its own size, whole pixels (``crops.crop_pixels``); back with the paper's ``keys2 + [xmin, ymin]``."""

    @property
    def label(self) -> str:
        return {"resized": "crop resized to a fixed side", "unresized": "crop at its own size (paper)"}[self.value]


_D_UNITS = ("px", "relative")
_PAIR_MODES = ("all", "category")
MATCH_BY = ("oks", "iou")
"""How the second scale picks, for each first-scale instance, the crop's detection that is the same instance."""

# Paper, section IV.A: "m = 8, n = 5, d = 1 and k = 10" (FashionAI) and "m = 6, n = 4, d = 1 and k = 10" (COCO).
_SCHEMA_DEFAULTS = {
    "fashionai": {"k": 10, "n": 5, "m": 8, "d": 1.0},
    "coco": {"k": 10, "n": 4, "m": 6, "d": 1.0},
}


@dataclass(frozen=True)
class RefineConfig:
    """Every knob of New-key-detection. Defaults are the paper's FashionAI values; see :meth:`for_schema`."""

    alpha: float = 0.4  # EMA weight of the mirrored partner, in [0, 1]; pair asymmetry shrinks by |1 - 2 alpha|
    k: int = 10  # RANSAC candidates (Alg. 1's iterations), >= 1
    n: int = 5  # midpoints sampled per candidate (Alg. 1's n), >= 2
    m: int = 8  # |A| a candidate needs to count (Alg. 1's m), <= number of voters
    d: float = 1.0  # inlier distance, >= 0, in the unit of d_unit (the paper gives no unit)
    d_unit: str = "px"  # "px": input pixels; "relative": fraction of the instance size (see instance_size)
    score_threshold: float = 0.0  # a point whose score / visibility is <= this (or NaN coordinates) is missing
    # the fill's own rule: a point scoring <= this is replaced by its partner's mirror image when the partner scores
    # above it; None: score_threshold (the paper: only missing points are filled). A separate knob, because a rule
    # that flags unreliable points would otherwise also silence them as voters, and with too few voters no axis is
    # found (a calibrated threshold that also gated the vote left 13 % of the cpu book's garments with an axis)
    fill_threshold: float | None = None
    pairs: str = "all"  # "all": every pair votes (paper's literal reading); "category": the garment's pairs only
    center_votes: bool = False  # let non-symmetric points (centre_front, crotch, nose) vote; off in the paper
    margin: float = 0.0  # second scale: crop margin per side, as a fraction of the box size (0 = paper's literal)
    square_crop: bool = True  # second scale: grow the crop to a square (False: the paper's rectangle)
    # second scale: the crop resized to a fixed side, or at its own size mapped back by keys2 + [xmin, ymin] (paper)
    crop_mapping: CropMapping = CropMapping.RESIZED
    match_by: str = "oks"  # second scale: "oks" or "iou" (key-point boxes) between a crop's detection and the instance
    min_match: float = 0.5  # second scale: a crop detection matching less than this leaves the first scale alone
    absurd_factor: float = math.inf  # > 1: a point this many radii from its instance is missing (absurd_points);
    # inf (no check, as the paper) costs nothing, a finite one a median per instance; the command line uses 100

    @property
    def fill_below(self) -> float:
        """The score at or below which a point is filled from its partner: ``fill_threshold``, else
        ``score_threshold``."""
        return self.score_threshold if self.fill_threshold is None else self.fill_threshold

    @classmethod
    def for_schema(cls, schema: str | KeypointSchema, **overrides) -> RefineConfig:
        """The paper's parameters for ``schema`` (FashionAI m=8, n=5, d=1, k=10; COCO m=6, n=4, d=1, k=10).

        ``overrides`` replace fields by name; an unknown name raises ``ValueError`` listing the valid ones.
        """
        name = get_table(schema if isinstance(schema, str) else schema.name).name
        values = dict(_SCHEMA_DEFAULTS.get(name, {}))
        values.update(overrides)
        return _replace(cls(), values)

    def validate(self, num_voters: int | None = None) -> None:
        """Raise ``ValueError`` naming the first out-of-range field; ``num_voters`` bounds ``n`` and ``m``."""
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {self.alpha!r}")
        if self.k < 1:
            raise ValueError(f"k must be >= 1, got {self.k!r}")
        if self.n < 2:
            raise ValueError(f"n must be >= 2 (two midpoints fix a line), got {self.n!r}")
        if self.m < 1:
            raise ValueError(f"m must be >= 1, got {self.m!r}")
        if not (self.d >= 0.0 and math.isfinite(self.d)):
            raise ValueError(f"d must be finite and >= 0, got {self.d!r}")
        if self.d_unit not in _D_UNITS:
            raise ValueError(f"d_unit must be one of {_D_UNITS}, got {self.d_unit!r}")
        if self.pairs not in _PAIR_MODES:
            raise ValueError(f"pairs must be one of {_PAIR_MODES}, got {self.pairs!r}")
        if math.isnan(self.score_threshold):
            raise ValueError(f"score_threshold must be a number, got {self.score_threshold!r}")
        if self.fill_threshold is not None and not self.fill_threshold >= self.score_threshold:
            raise ValueError(f"fill_threshold must be a number >= score_threshold ({self.score_threshold!r}), got "
                             f"{self.fill_threshold!r} (a point missing for the vote is always fillable)")
        if not (self.margin >= 0.0 and math.isfinite(self.margin)):
            raise ValueError(f"margin must be finite and >= 0, got {self.margin!r}")
        if self.crop_mapping not in tuple(CropMapping):  # a plain string equal to a value passes too
            raise ValueError(f"crop_mapping must be one of {[m.value for m in CropMapping]}, got {self.crop_mapping!r}")
        if self.match_by not in MATCH_BY:
            raise ValueError(f"match_by must be one of {MATCH_BY}, got {self.match_by!r}")
        if not 0.0 <= self.min_match <= 1.0:
            raise ValueError(f"min_match must be in [0, 1], got {self.min_match!r}")
        if not self.absurd_factor > 1.0:
            raise ValueError(f"absurd_factor must be > 1 (inf: keep every point), got {self.absurd_factor!r}")
        if num_voters is not None:
            if self.n > num_voters:
                raise ValueError(f"n must be in [2, {num_voters}] (the number of voting midpoints), got {self.n}")
            if self.m > num_voters:
                raise ValueError(f"m must be in [1, {num_voters}] (the number of voting midpoints), got {self.m}")


def _replace(config: RefineConfig, overrides: dict) -> RefineConfig:
    names = {f.name for f in dataclasses.fields(RefineConfig)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ValueError(f"unknown RefineConfig field(s) {unknown}; valid: {sorted(names)}")
    return dataclasses.replace(config, **overrides)


def resolve_config(config: RefineConfig | None, schema: str | KeypointSchema, overrides: dict) -> RefineConfig:
    """``config`` (or the schema's defaults) with the keyword arguments that are not ``None`` applied."""
    base = config if config is not None else RefineConfig.for_schema(schema)
    return _replace(base, {key: value for key, value in overrides.items() if value is not None})


@dataclass(frozen=True)
class RefineSummary:
    """What one refiner pass (:func:`refine_symmetric`) did to a batch: counts (ints), and the per-instance shares
    derived from them as properties, so that a count and a share never go by the same name."""

    instances: int
    with_axis: int  # instances for which RANSAC found an axis
    too_few_pairs: int  # instances with fewer than m voting midpoints (complete pairs): no axis whatever d is
    pairs_refined: int  # pairs moved towards symmetry by the EMA
    points_moved: int  # points whose coordinates the EMA changed (a refined pair moves up to two; alpha 0 none)
    points_filled: int  # missing points filled with the partner's mirror image (not counted as moved)
    points_ignored: int  # absurd points treated as missing (RefineConfig.absurd_factor); kept unless filled

    @classmethod
    def pooled(cls, summaries: Sequence[RefineSummary]) -> RefineSummary:
        """One summary for several refiner passes (seeds, cells): every count summed, so that its shares are over
        all the instances together."""
        if not summaries:
            raise ValueError("RefineSummary.pooled needs one or more summaries, got none")
        return cls(**{f.name: sum(getattr(s, f.name) for s in summaries) for f in dataclasses.fields(cls)})

    def _per_instance(self, count: int) -> float:
        return count / max(self.instances, 1)  # an empty batch: 0, not a division error

    @property
    def with_axis_fraction(self) -> float:
        """Fraction of the instances with an axis (0 for no instance)."""
        return self._per_instance(self.with_axis)

    @property
    def pairs_refined_per_instance(self) -> float:
        """Pairs the EMA moved, per instance (0 for no instance)."""
        return self._per_instance(self.pairs_refined)

    @property
    def points_filled_per_instance(self) -> float:
        """Missing points filled, per instance (0 for no instance)."""
        return self._per_instance(self.points_filled)

    def __str__(self) -> str:
        share = f" ({self.with_axis_fraction:.0%})" if self.instances else ""
        return (f"{self.instances} instances, {self.with_axis} with an axis{share}; {self.pairs_refined} pairs "
                f"refined, {self.points_moved} points moved; {self.points_filled} points filled; "
                f"{self.points_ignored} absurd points ignored")
