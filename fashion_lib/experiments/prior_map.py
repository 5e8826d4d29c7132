"""Where does the symmetry prior help? The axis applied once over a grid of worlds (occlusion x asymmetry).

Page 16 (beyond the paper). :func:`prior_map` scores, in every cell of the grid, the axis applied once against the
detector alone on visible and on occluded points, with a two-level bootstrap interval; :func:`prior_map_counts`,
:func:`prior_map_notes` and :func:`prior_map_sentences` put the counts and the text beside the heat map.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from fashion_lib.experiments.keypoint_refiner import refiner_activity
from fashion_lib.experiments.keypoint_rows import per_seed_refine
from fashion_lib.experiments.keypoint_scores import ne_metric, per_image_errors
from fashion_lib.experiments.keypoints import Detectors, KeypointSetup, to_instances, validation_set
from fashion_lib.intervals import CI
from fashion_lib.keypoints import OCCLUDED, VISIBLE
from fashion_lib.models.detector import predict
from fashion_lib.refine import RefineConfig, RefineSummary, refine_symmetric, summarize_refinement
from fashion_lib.report import format_ci
from fashion_lib.synthetic import WorldConfig

__all__ = [
    "PriorMap", "map_world", "prior_map", "prior_map_counts", "prior_map_notes", "prior_map_sentences",
    "draw_prior_map",
]


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
        return torch.tensor([[RefineSummary.pooled(c).with_axis_fraction for c in row] for row in self.activity],
                            dtype=torch.float64)

    def cell(self, occlusion: float, asymmetry: float) -> tuple[int, int] | None:
        """(row, column) of the cell with this occlusion rate and asymmetry (e.g. the default world's, to outline on
        the heat map), or None where the grid has no such cell."""
        if occlusion in self.occlusion_values and asymmetry in self.asymmetry_values:
            return self.occlusion_values.index(occlusion), self.asymmetry_values.index(asymmetry)
        return None

    @property
    def filled(self) -> torch.Tensor:
        """(O, A) int64: the points the axis filled with a partner's mirror image, summed over the seeds."""
        return torch.tensor([[RefineSummary.pooled(c).points_filled for c in row] for row in self.activity])


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
    points gets its interval (:func:`fashion_lib.intervals.crossed_bootstrap_ci`, paired over seeds and garments).

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
    from fashion_lib.intervals import CI, crossed_bootstrap_ci

    if setup.schema != "fashionai":
        raise ValueError(f"prior_map needs a FashionAI setup (NE), got schema {setup.schema!r}")
    if len(detectors) != len(seeds) or not seeds:
        raise ValueError(f"detectors ({len(detectors)}) and seeds ({len(seeds)}) must pair up, one or more")
    if not isinstance(images, int) or images < 1:
        raise ValueError(f"images must be an integer >= 1, got {images!r}")
    configs = per_seed_refine(refine, thresholds, len(seeds))
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
                inst = to_instances(predict(det.keypoint_rcnn, val.images, batch_size=batch_size), "fashionai")
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


def draw_prior_map(prior: PriorMap, *, mark: tuple[int, int] | None = None, dpi: int = 100):
    """The heat maps of :func:`prior_map`, one per kind of point side by side on one colour scale (the largest
    ``|change|``, NE points; blue: the axis helps), each cell starred where its interval excludes 0 and noted with
    :func:`prior_map_notes`; ``mark``: (row, column) of a cell to outline (:meth:`PriorMap.cell`). Returns the
    Matplotlib figure."""
    import matplotlib.pyplot as plt

    from fashion_lib.plotting import draw_effect_map

    fig, axes = plt.subplots(1, len(prior.points), figsize=(11, 4.6), dpi=dpi, sharey=True, layout="constrained",
                             squeeze=False)
    axes = axes[0]
    limit = float(prior.change.abs().nan_to_num(0.0).max()) * 100 or 1.0
    for p, (ax, kind, notes) in enumerate(zip(axes, prior.points, prior_map_notes(prior), strict=True)):
        im = draw_effect_map(ax, prior.change[p], prior.low[p], prior.high[p], prior.occlusion_values,
                             prior.asymmetry_values, row_label="occlusion rate",
                             column_label="pose and shape asymmetry", limit=limit, mark=mark, notes=notes)
        ax.set_title(f"{kind} points")
    for ax in axes[1:]:
        ax.set_ylabel("")  # the rows are shared: one label
    fig.suptitle("The axis applied once minus the detector alone (n: points scored, f: points filled)")
    fig.colorbar(im, ax=axes, label="NE points (blue: the axis helps)", shrink=0.8)
    return fig
