"""Figures shared by the notebooks: key points, skeletons, symmetry axes, schema diagrams, scores over seeds.

Functions draw on a Matplotlib ``Axes`` they are given and return it; none creates a figure or saves files, so a
notebook decides the layout and the book decides where figures go. Image coordinates: x right, y down, pixels.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch

from fashion_lib.keypoints import ABSENT, COCO, FASHIONAI, KeypointSchema
from fashion_lib.report import MethodScore, display_label

__all__ = ["schema_template", "draw_keypoints", "draw_prediction", "draw_axis", "draw_schema", "draw_scores",
           "draw_effect_map", "draw_paper_beside_ours", "draw_grouped_bars", "draw_learning_curves",
           "draw_stopping_curves", "LEFT_COLOR", "RIGHT_COLOR"]

LEFT_COLOR = "tab:blue"
RIGHT_COLOR = "tab:orange"
CENTER_COLOR = "tab:green"
_METHOD_COLORS = ("tab:blue", "tab:cyan", "tab:olive", "tab:green", "tab:orange", "tab:red", "tab:purple",
                  "tab:brown")

# Front-view reference shapes for schema diagrams, in a 100 x 120 frame. The wearer's left appears on the image's
# right, as in both data sets. Only used for figures: the synthetic world has its own parametric garments.
_TEMPLATES: dict[str, dict[str, tuple[float, float]]] = {
    "blouse": {
        "neckline_left": (57, 12), "neckline_right": (43, 12), "center_front": (50, 22), "shoulder_left": (70, 17),
        "shoulder_right": (30, 17), "armpit_left": (67, 42), "armpit_right": (33, 42), "cuff_left_in": (84, 66),
        "cuff_left_out": (93, 58), "cuff_right_in": (16, 66), "cuff_right_out": (7, 58), "top_hem_left": (68, 82),
        "top_hem_right": (32, 82),
    },
    "outwear": {
        "neckline_left": (57, 10), "neckline_right": (43, 10), "shoulder_left": (71, 15), "shoulder_right": (29, 15),
        "armpit_left": (68, 40), "armpit_right": (32, 40), "waistline_left": (67, 66), "waistline_right": (33, 66),
        "cuff_left_in": (86, 78), "cuff_left_out": (95, 72), "cuff_right_in": (14, 78), "cuff_right_out": (5, 72),
        "top_hem_left": (70, 100), "top_hem_right": (30, 100),
    },
    "dress": {
        "neckline_left": (56, 8), "neckline_right": (44, 8), "center_front": (50, 20), "shoulder_left": (66, 12),
        "shoulder_right": (34, 12), "armpit_left": (64, 32), "armpit_right": (36, 32), "waistline_left": (61, 52),
        "waistline_right": (39, 52), "cuff_left_in": (74, 40), "cuff_left_out": (79, 33), "cuff_right_in": (26, 40),
        "cuff_right_out": (21, 33), "hemline_left": (76, 110), "hemline_right": (24, 110),
    },
    "skirt": {
        "waistband_left": (63, 20), "waistband_right": (37, 20), "hemline_left": (78, 95), "hemline_right": (22, 95),
    },
    "trousers": {
        "waistband_left": (64, 10), "waistband_right": (36, 10), "crotch": (50, 42), "bottom_left_in": (54, 112),
        "bottom_left_out": (70, 112), "bottom_right_in": (46, 112), "bottom_right_out": (30, 112),
    },
    "person": {
        "nose": (50, 12), "left_eye": (53, 9), "right_eye": (47, 9), "left_ear": (56, 11), "right_ear": (44, 11),
        "left_shoulder": (63, 26), "right_shoulder": (37, 26), "left_elbow": (68, 45), "right_elbow": (32, 45),
        "left_wrist": (70, 62), "right_wrist": (30, 62), "left_hip": (58, 62), "right_hip": (42, 62),
        "left_knee": (59, 86), "right_knee": (41, 86), "left_ankle": (59, 110), "right_ankle": (41, 110),
    },
}


def schema_template(schema: KeypointSchema, category: str) -> torch.Tensor:
    """A symmetric front-view reference instance of ``category`` for diagrams.

    Returns
    -------
    keypoints : (K, 3) float, x and y in a 100 x 120 frame, v = 2 for the category's points and 0 (at 0, 0) for
        the others.
    """
    if category not in schema.categories:
        raise KeyError(f"{schema.name} schema has no category {category!r}; valid: {', '.join(schema.categories)}")
    kp = torch.zeros(schema.num_keypoints, 3)
    for name, (x, y) in _TEMPLATES[category].items():
        kp[schema.index(name)] = torch.tensor([x, y, 2.0])
    return kp


def _side_colors(schema: KeypointSchema) -> list[str]:
    colors = [CENTER_COLOR] * schema.num_keypoints
    for left, right in schema.pairs.tolist():
        colors[left], colors[right] = LEFT_COLOR, RIGHT_COLOR
    return colors


def draw_keypoints(ax, keypoints: torch.Tensor, schema: KeypointSchema, *, edges: bool = True, names: bool = False,
                   size: float = 30.0, marker: str = "o", alpha: float = 1.0, edge_color: str = "0.4"):
    """Draw one instance: points coloured by side (left blue, right orange, centre green), occluded ones hollow.

    Parameters
    ----------
    keypoints : (K, 3) float, x, y in pixels, v in {0, 1, 2}; v = 0 points are not drawn.
    schema : the instance's schema (colours, edges, names).
    """
    kp = torch.as_tensor(keypoints, dtype=torch.float32).cpu()
    if kp.shape != (schema.num_keypoints, 3):
        raise ValueError(f"keypoints must have shape ({schema.num_keypoints}, 3) for {schema.name}, "
                         f"got {tuple(kp.shape)}")
    present = kp[:, 2] > ABSENT
    if edges:
        for a, b in schema.edges:
            if present[a] and present[b]:
                ax.plot(kp[[a, b], 0], kp[[a, b], 1], color=edge_color, lw=1, alpha=alpha, zorder=1)
    colors = _side_colors(schema)
    for i in torch.nonzero(present).flatten().tolist():
        filled = kp[i, 2] >= 2
        ax.scatter(kp[i, 0], kp[i, 1], s=size, marker=marker, alpha=alpha, zorder=3, linewidths=1.5,
                   facecolors=colors[i] if filled else "none", edgecolors=colors[i])
        if names:
            ax.annotate(schema.names[i], (float(kp[i, 0]), float(kp[i, 1])), fontsize=6, xytext=(3, 2),
                        textcoords="offset points", zorder=4)
    return ax


def draw_prediction(ax, image: torch.Tensor, keypoints: torch.Tensor, schema: KeypointSchema, *,
                    category: str | None = None, truth: torch.Tensor | None = None, title: str = ""):
    """Show ``image`` ((3, H, W) float) with predicted ``keypoints`` ((K, 3), confidence in the third column) of
    ``category``'s points (all points without it) and, optionally, the ground truth ((K, 3), v) as grey crosses."""
    ax.imshow(image.permute(1, 2, 0).clamp(0, 1).cpu().numpy(), extent=(0, image.shape[2], image.shape[1], 0))
    present = torch.isfinite(keypoints[:, :2]).all(-1) & (keypoints[:, 2] > 0)
    if category is not None:
        present &= schema.category_mask(category)
    shown = torch.cat([torch.nan_to_num(keypoints[:, :2]), (2.0 * present)[:, None]], -1)
    if truth is not None:
        labelled = truth[:, 2] > 0
        ax.scatter(truth[labelled, 0], truth[labelled, 1], marker="x", s=14, color="0.2", lw=1, zorder=2)
    draw_keypoints(ax, shown, schema, size=18)
    ax.set_xlim(0, image.shape[2])
    ax.set_ylim(image.shape[1], 0)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=8)
    return ax


def draw_axis(ax, normal: torch.Tensor, offset: float | torch.Tensor, *, color: str = "tab:red", **kwargs):
    """Draw the symmetry axis ``{p : normal . p = offset}`` across the current view limits of ``ax``."""
    n = torch.as_tensor(normal, dtype=torch.float64).cpu()
    c = float(offset)
    x0, x1 = ax.get_xlim()
    y0, y1 = ax.get_ylim()
    # the point of the line nearest the view's centre, then half the view's diagonal each way along the line
    centre = torch.tensor([(x0 + x1) / 2, (y0 + y1) / 2], dtype=torch.float64)
    foot = centre - (n @ centre - c) * n
    direction = torch.stack([-n[1], n[0]])
    half = math.hypot(x1 - x0, y1 - y0) / 2
    ends = torch.stack([foot - half * direction, foot + half * direction])
    ax.plot(ends[:, 0], ends[:, 1], color=color, ls="--", lw=1.2, **kwargs)
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    return ax


def draw_schema(ax, schema: KeypointSchema, category: str):
    """A schema diagram: the reference instance of ``category`` with named points, dashed pair links and its axis."""
    kp = schema_template(schema, category)
    present = kp[:, 2] > 0
    for left, right in schema.pairs.tolist():
        if present[left] and present[right]:
            ax.plot(kp[[left, right], 0], kp[[left, right], 1], color="0.75", ls=":", lw=1, zorder=0)
    draw_keypoints(ax, kp, schema, names=True)
    ax.set_xlim(-2, 102)
    ax.set_ylim(122, -2)
    ax.set_aspect("equal")
    draw_axis(ax, torch.tensor([1.0, 0.0]), 50.0, alpha=0.6)
    ax.set_title(f"{schema.name}: {category} ({int(present.sum())} points)", fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    return ax


# Keep the two schemas importable from here for notebooks that only draw.
SCHEMAS_FOR_FIGURES = {"fashionai": FASHIONAI, "coco": COCO}


def draw_scores(ax, scores: Mapping[str, MethodScore], *, xlabel: str, scale: float = 100.0,
                source: str = "synthetic"):
    """Horizontal bars of each method's pooled estimate with its 95 % interval, and a dot per seed.

    The right half of every "the paper beside ours" figure; methods top to bottom in ``scores``' order.

    Parameters
    ----------
    ax : Matplotlib Axes.
    scores : method (a :class:`~fashion_lib.report.Row`, shown by its label) -> its
        :class:`~fashion_lib.report.MethodScore` (fractions; shown times ``scale``).
    xlabel : the metric and its unit, e.g. ``"NE (%)"``.
    source : the data the scores come from, for the title.
    """
    names = list(scores)
    est = [scale * scores[n].ci.estimate for n in names]
    err = [[scale * (scores[n].ci.estimate - scores[n].ci.low) for n in names],
           [scale * (scores[n].ci.high - scores[n].ci.estimate) for n in names]]
    ax.barh([display_label(n) for n in names], est, xerr=err,
            color=[_METHOD_COLORS[i % len(_METHOD_COLORS)] for i in range(len(names))])
    for i, n in enumerate(names):
        ax.scatter([scale * v for v in scores[n].per_seed], [i] * len(scores[n].per_seed), color="k", s=8, zorder=3)
    seeds = max((len(s.per_seed) for s in scores.values()), default=0)
    ax.set_title(f"ours ({source}, {seeds} seeds; dots: seeds, bars: 95 % interval)")
    ax.set_xlabel(xlabel)
    ax.invert_yaxis()
    return ax


def draw_paper_beside_ours(axes, paper: Mapping[str, float], scores: Mapping[str, MethodScore], *, xlabel: str,
                           paper_title: str, source: str = "synthetic", scale: float = 100.0,
                           paper_xlim: tuple[float, float] | None = None):
    """The figure of a results page: the paper's figure of each of its rows as grey bars (left) and ours, pooled
    over seeds with its 95 % interval and a dot per seed (right, :func:`draw_scores`).

    Parameters
    ----------
    axes : two Matplotlib Axes.
    paper : row -> the paper's figure, in the metric's units as the paper prints them; rows by their labels
        (:func:`fashion_lib.report.display_label`), top to bottom in ``paper``'s order.
    scores, xlabel, source, scale : as in :func:`draw_scores` (both halves share ``xlabel``).
    paper_title : the left half's title (which data set, how many runs).
    paper_xlim : the left half's x range; None: Matplotlib's (from 0), which hides differences of a fraction of a
        point such as Table 2's.
    """
    names = list(paper)
    axes[0].barh([display_label(n) for n in names], [paper[n] for n in names], color="tab:gray")
    if paper_xlim is not None:
        axes[0].set_xlim(*paper_xlim)
    axes[0].set_title(paper_title)
    axes[0].set_xlabel(xlabel)
    axes[0].invert_yaxis()
    draw_scores(axes[1], scores, xlabel=xlabel, scale=scale, source=source)
    return axes


def draw_grouped_bars(ax, bars: Mapping[str, Sequence[float]], columns: Sequence[str], *, title: str, ylabel: str):
    """A group of bars per column and a bar per row in each, the rows in the legend by their labels
    (:func:`fashion_lib.report.display_label`): one half of Table 3's paper-beside-ours figure.

    Parameters
    ----------
    ax : Matplotlib Axes.
    bars : row -> its value in each of ``columns``, in order; the rows' bars left to right in ``bars``' order.
    columns : the groups' names under the x axis.
    title, ylabel : the Axes' title and y label.
    """
    width = 0.8 / len(bars)
    for r, (name, values) in enumerate(bars.items()):
        if len(values) != len(columns):
            raise ValueError(f"row {str(name)!r} has {len(values)} values for {len(columns)} columns")
        ax.bar([i + r * width for i in range(len(columns))], list(values), width, label=display_label(name))
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(columns))], list(columns))
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    return ax


def draw_effect_map(ax, change: torch.Tensor, low: torch.Tensor, high: torch.Tensor, rows: Sequence[float],
                    columns: Sequence[float], *, row_label: str, column_label: str, scale: float = 100.0,
                    limit: float | None = None, better: str = "lower", mark: tuple[int, int] | None = None,
                    notes: Sequence[Sequence[str]] | None = None):
    """A heat map of an effect with its interval per cell; a cell whose interval excludes 0 is framed and starred.

    Parameters
    ----------
    ax : Matplotlib Axes.
    change, low, high : (R, C) float, the effect and its 95 % interval per cell (fractions; shown times
        ``scale``); NaN where nothing was measured (the cell reads "n/a").
    rows, columns : the R and C values of the two knobs (rows bottom to top).
    row_label, column_label : the knobs' names.
    limit : the colour scale's half-range (times ``scale``); default the largest ``|change|``.
    better : ``"lower"`` (errors: blue for negative) or ``"higher"`` (blue for positive).
    mark : (row, column) of a cell to outline (e.g. the default world), or None.
    notes : R rows of C strings, a small second line under each cell's value (e.g. the counts behind it), or None.

    Returns
    -------
    The ``AxesImage`` (for a colour bar).
    """
    import matplotlib.patches as patches

    if better not in ("lower", "higher"):
        raise ValueError(f"better must be 'lower' or 'higher', got {better!r}")
    grid = scale * torch.as_tensor(change, dtype=torch.float64)
    if grid.shape != (len(rows), len(columns)) or torch.as_tensor(low).shape != grid.shape or \
            torch.as_tensor(high).shape != grid.shape:
        raise ValueError(f"change, low and high must have shape ({len(rows)}, {len(columns)}) (rows x columns), "
                         f"got {tuple(grid.shape)}, {tuple(torch.as_tensor(low).shape)}, "
                         f"{tuple(torch.as_tensor(high).shape)}")
    if notes is not None and (len(notes) != len(rows) or any(len(n) != len(columns) for n in notes)):
        raise ValueError(f"notes must be {len(rows)} rows of {len(columns)} strings (rows x columns), got "
                         f"{[len(n) for n in notes]}")
    lo, hi = torch.as_tensor(low, dtype=torch.float64), torch.as_tensor(high, dtype=torch.float64)
    decided = (lo > 0) | (hi < 0)  # NaN compares False: an unmeasured cell is never marked
    finite = grid[~grid.isnan()]
    if limit is None:
        limit = float(finite.abs().max()) if len(finite) else 1.0
    limit = limit or 1.0
    image = ax.imshow(grid.numpy(), cmap="RdBu_r" if better == "lower" else "RdBu", vmin=-limit, vmax=limit,
                      origin="lower")
    for r in range(len(rows)):  # over the few cells
        for c in range(len(columns)):
            v = float(grid[r, c])
            text = "n/a" if math.isnan(v) else f"{v:+.2f}" + ("*" if decided[r, c] else "")
            # with a note the value moves up a little so the two lines share the cell (rows run bottom to top)
            ax.text(c, r + (0.13 if notes is not None else 0.0), text, ha="center", va="center", fontsize=8,
                    fontweight="bold" if decided[r, c] else "normal")
            if notes is not None:
                ax.text(c, r - 0.2, notes[r][c], ha="center", va="center", fontsize=6.5)
            if decided[r, c]:
                ax.add_patch(patches.Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False, lw=2, color="k"))
    if mark is not None:
        ax.add_patch(patches.Rectangle((mark[1] - 0.46, mark[0] - 0.46), 0.92, 0.92, fill=False, lw=1.5, ls="--",
                                       color="tab:green"))
    ax.set_xticks(range(len(columns)), [f"{v:g}" for v in columns])
    ax.set_yticks(range(len(rows)), [f"{v:g}" for v in rows])
    ax.set_xlabel(column_label)
    ax.set_ylabel(row_label)
    return image


def draw_learning_curves(axes, curves, *, value: str = "val_accuracy", scale: float = 100.0,
                         ylabel: str = "validation accuracy (%)", labels: Mapping[str, str] | None = None):
    """Per-pass training loss (left) and a monitored validation figure (right), a line per method and network,
    averaged over seeds.

    Parameters
    ----------
    axes : two Matplotlib Axes.
    curves : DataFrame of :func:`fashion_lib.experiments.attribute_training.learning_curves` (``method``, ``network``,
        ``epoch``, ``train_loss``, ``value``).
    value : the monitor column drawn on the right (a fraction, shown times ``scale``).
    labels : method -> its name in the legend (``{row: row.label for row in predictions}``); None, or a method not
        in it: the method as it is in ``curves``.
    """
    labels = labels or {}
    if value not in curves.columns:
        raise ValueError(f"value must be a column of curves ({', '.join(map(str, curves.columns))}), got {value!r}")
    mean = curves.groupby(["method", "network", "epoch"], sort=False)[["train_loss", value]].mean().reset_index()
    for i, (method, rows) in enumerate(mean.groupby("method", sort=False)):  # a colour per method
        color = _METHOD_COLORS[i % len(_METHOD_COLORS)]
        for j, (_, net) in enumerate(rows.groupby("network", sort=False)):  # a line per network, one label
            label = labels.get(method, str(method)) if j == 0 else None
            axes[0].plot(net["epoch"], net["train_loss"], color=color, alpha=0.7, marker="o", ms=3, label=label)
            axes[1].plot(net["epoch"], scale * net[value], color=color, alpha=0.7, marker="o", ms=3, label=label)
    axes[0].set_xlabel("pass over the training images")
    axes[0].set_ylabel("training loss (mean of the pass)")
    axes[1].set_xlabel("pass over the training images")
    axes[1].set_ylabel(ylabel)
    axes[1].legend(fontsize=7)
    return axes


def draw_stopping_curves(axes, curves, chosen, *, scale: float = 100.0):
    """Early stopping, network by network: the held-out loss (left) and held-out accuracy (right) after each pass,
    a colour per network and a line per seed, a star on the pass each seed kept.

    Parameters
    ----------
    axes : two Matplotlib Axes.
    curves : DataFrame of :func:`fashion_lib.experiments.attribute_training.learning_curves` rows of early-stopped
        networks (``seed``, ``network``, ``epoch``, ``holdout_loss``, ``holdout_accuracy``).
    chosen : DataFrame of :func:`fashion_lib.experiments.attribute_training.stopping_passes` (``seed``, ``network``,
        ``chosen``) for the same networks.
    scale : factor of the accuracy axis (100: percent).
    """
    missing = {"seed", "network", "epoch", "holdout_loss", "holdout_accuracy"} - set(curves.columns)
    if missing:
        raise ValueError(f"curves lack the columns {sorted(missing)} (learning_curves of early-stopped networks)")
    kept = {(r.seed, r.network): int(r.chosen) for r in chosen.itertuples()}
    rows = curves.dropna(subset=["holdout_loss"])
    for i, (network, runs) in enumerate(rows.groupby("network", sort=False)):  # a colour per network
        color = f"C{i % 10}"
        for j, (seed, run) in enumerate(runs.groupby("seed", sort=False)):  # a line per seed, one label
            run = run.sort_values("epoch")
            label = str(network) if j == 0 else None
            for ax, column, factor in ((axes[0], "holdout_loss", 1.0), (axes[1], "holdout_accuracy", scale)):
                ax.plot(run["epoch"], factor * run[column], color=color, alpha=0.6, lw=1, label=label)
                if (seed, network) in kept:
                    at = run[run["epoch"] == kept[(seed, network)]]
                    ax.plot(at["epoch"], factor * at[column], color=color, marker="*", ms=10, ls="none")
    for ax in axes:
        ax.set_xlabel("pass over the training images")
    axes[0].set_ylabel("held-out loss")
    axes[1].set_ylabel("held-out accuracy (%)")
    axes[1].legend(fontsize=7)
    return axes


def draw_point_changes(ax, changes, schema: KeypointSchema, *, scale: float = 100.0,
                       colors: Sequence[str] = ("tab:blue", "tab:orange")):
    """Grouped bars of a :class:`~fashion_lib.experiments.keypoints.PointChanges`: per point the mean change
    (times ``scale``) on visible and on occluded points side by side, the 95 % interval as error bars. The points on
    the symmetry axis (``changes.on_axis``) are labelled "(on axis)" and hatched: the mirror cannot move them. A
    point with no instance of a kind is marked "n/a" instead of drawn as a bar of 0."""
    k = schema.num_keypoints
    if tuple(changes.mean.shape) != (len(changes.points), k) or len(colors) < len(changes.points):
        raise ValueError(f"changes must have shape ({len(changes.points)}, {k}) for schema {schema.name!r} and "
                         f"colors one per kind of point, got {tuple(changes.mean.shape)} and {len(colors)} colors")
    width = 0.8 / len(changes.points)
    for p, (kind, color) in enumerate(zip(changes.points, colors[:len(changes.points)], strict=True)):
        mid = scale * torch.nan_to_num(changes.mean[p])
        err = scale * torch.nan_to_num(torch.stack([changes.mean[p] - changes.low[p],
                                                    changes.high[p] - changes.mean[p]]))
        x = [i - 0.4 + width * (p + 0.5) for i in range(k)]
        bars = ax.bar(x, mid.tolist(), width, yerr=err.numpy(), color=color, label=f"{kind} points",
                      error_kw={"lw": 0.7, "capsize": 1.5})
        for i in changes.on_axis:
            bars[i].set_hatch("//")
        for i in torch.nonzero(changes.mean[p].isnan())[:, 0].tolist():  # no such point: a mark, not a 0 bar
            ax.text(x[i], 0, "n/a", ha="center", va="bottom", fontsize=5, rotation=90, color=color)
    labels = [name + (" (on axis)" if i in changes.on_axis else "") for i, name in enumerate(schema.names)]
    ax.set_xticks(range(k), labels, rotation=90, fontsize=7)
    ax.axhline(0, color="k", lw=0.8)
