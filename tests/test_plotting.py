"""Shared figures: what they draw, read back from the Matplotlib artists."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from fashion_lib.intervals import CI  # noqa: E402
from fashion_lib.keypoints import COCO, FASHIONAI  # noqa: E402
from fashion_lib.plotting import (  # noqa: E402
    draw_axis,
    draw_effect_map,
    draw_grouped_bars,
    draw_keypoints,
    draw_learning_curves,
    draw_paper_beside_ours,
    draw_scores,
    draw_stopping_curves,
    schema_template,
)
from fashion_lib.report import MethodScore  # noqa: E402


@pytest.fixture
def ax():
    fig, ax = plt.subplots()
    yield ax
    plt.close(fig)


def test_draw_scores_bars_intervals_and_seed_dots(ax):
    scores = {"a": MethodScore((0.10, 0.12, 0.14), CI(0.12, 0.09, 0.16)),
              "b": MethodScore((0.30, 0.20, 0.25), CI(0.25, 0.18, 0.33))}
    draw_scores(ax, scores, xlabel="NE (%)")
    bars = ax.patches
    assert [round(b.get_width(), 6) for b in bars] == [12.0, 25.0]  # scaled to percent, in the given order
    # the error bar of "a" spans its interval, not the spread of the seeds
    segments = [c for c in ax.collections if isinstance(c, matplotlib.collections.LineCollection)][0].get_segments()
    assert np.allclose(segments[0][:, 0], [9.0, 16.0])
    dots = [c for c in ax.collections if isinstance(c, matplotlib.collections.PathCollection)]
    assert sorted(np.round(dots[1].get_offsets()[:, 0], 6).tolist()) == [20.0, 25.0, 30.0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b"]
    assert "3 seeds" in ax.get_title() and ax.get_xlabel() == "NE (%)"
    assert ax.yaxis_inverted(), "the first method must be on top, as in the paper's table"


def test_draw_paper_beside_ours_the_paper_s_rows_left_and_ours_right():
    from fashion_lib.experiments.keypoints import KRCNN, NKD

    fig, axes = plt.subplots(1, 2)
    score = MethodScore((0.12, 0.14), CI(0.13, 0.11, 0.15))
    draw_paper_beside_ours(axes, {KRCNN: 13.70, NKD: 10.96}, {KRCNN: score}, xlabel="NE (%)",
                           paper_title="the paper", paper_xlim=(10.0, 14.0))
    assert [round(b.get_width(), 6) for b in axes[0].patches] == [13.70, 10.96]
    assert [t.get_text() for t in axes[0].get_yticklabels()] == ["Keypoint R-CNN", "Keypoint R-CNN + New-key-detection"]
    assert axes[0].get_xlim() == (10.0, 14.0) and axes[0].yaxis_inverted() and axes[0].get_title() == "the paper"
    assert axes[0].get_xlabel() == axes[1].get_xlabel() == "NE (%)"
    assert [round(b.get_width(), 6) for b in axes[1].patches] == [13.0] and "2 seeds" in axes[1].get_title()
    plt.close(fig)


def test_draw_grouped_bars_a_group_per_column_and_a_bar_per_row(ax):
    from fashion_lib.experiments.table3 import T3_BASELINE, T3_FULL

    draw_grouped_bars(ax, {T3_BASELINE: (90.6, 60.3), T3_FULL: [92.8, 64.5]}, ["Category", "Texture"],
                      title="the paper", ylabel="top-3 (%)")
    bars = ax.patches
    assert [round(b.get_height(), 6) for b in bars] == [90.6, 60.3, 92.8, 64.5]  # row by row, column by column
    assert [round(b.get_x() + b.get_width() / 2, 6) for b in bars] == [0.0, 1.0, 0.4, 1.4]  # rows side by side
    assert [t.get_text() for t in ax.get_xticklabels()] == ["Category", "Texture"]
    assert np.allclose(ax.get_xticks(), [0.2, 1.2])  # each name under the middle of its group
    assert ax.get_legend_handles_labels()[1] == [T3_BASELINE.label, T3_FULL.label]
    assert ax.get_title() == "the paper" and ax.get_ylabel() == "top-3 (%)"
    with pytest.raises(ValueError, match="row 'full' has 1 values for 2 columns"):
        draw_grouped_bars(ax, {T3_FULL: [1.0]}, ["Category", "Texture"], title="", ylabel="")


def test_draw_scores_names_a_table_row_by_its_label(ax):
    from fashion_lib.experiments.keypoints import KRCNN, NKD

    score = MethodScore((0.10,), CI(0.10, 0.10, 0.10))
    draw_scores(ax, {KRCNN: score, NKD: score}, xlabel="NE (%)")
    assert [t.get_text() for t in ax.get_yticklabels()] == ["Keypoint R-CNN", "Keypoint R-CNN + New-key-detection"]


def test_draw_axis_passes_through_the_line(ax):
    ax.set_xlim(0, 100)
    ax.set_ylim(120, 0)
    normal = torch.tensor([0.6, 0.8])
    draw_axis(ax, normal, 50.0)
    xy = np.asarray(ax.lines[0].get_xydata())
    assert np.allclose(xy @ normal.numpy(), 50.0)
    assert ax.get_xlim() == (0, 100), "drawing the axis must not change the view"


def test_draw_keypoints_skips_absent_points_and_checks_the_shape(ax):
    kp = schema_template(FASHIONAI, "skirt")
    draw_keypoints(ax, kp, FASHIONAI, edges=False)
    assert len(ax.collections) == int((kp[:, 2] > 0).sum()) == 4
    with pytest.raises(ValueError, match="shape"):
        draw_keypoints(ax, torch.zeros(COCO.num_keypoints, 3), FASHIONAI)


def test_draw_effect_map_marks_only_cells_whose_interval_excludes_zero(ax):
    change = torch.tensor([[-0.02, 0.01], [float("nan"), 0.005]])
    low = torch.tensor([[-0.03, -0.01], [float("nan"), 0.001]])
    high = torch.tensor([[-0.01, 0.02], [float("nan"), 0.01]])
    image = draw_effect_map(ax, change, low, high, [0.1, 0.4], [0.0, 1.0], row_label="occlusion",
                            column_label="asymmetry", mark=(1, 1))
    texts = {(round(t.get_position()[1]), round(t.get_position()[0])): t.get_text() for t in ax.texts}
    assert texts == {(0, 0): "-2.00*", (0, 1): "+1.00", (1, 0): "n/a", (1, 1): "+0.50*"}
    frames = [p for p in ax.patches if p.get_width() == 1]  # the marked cell is drawn slightly inside
    assert sorted(p.get_xy() for p in frames) == [(-0.5, -0.5), (0.5, 0.5)]  # the two decided cells
    assert len(ax.patches) == 3  # and the marked cell
    assert image.get_clim() == pytest.approx((-2.0, 2.0)) and image.get_cmap().name == "RdBu_r"  # blue: the error falls
    with pytest.raises(ValueError, match=r"change, low and high must have shape \(2, 3\)"):
        draw_effect_map(ax, change, low, high, [0.1, 0.4], [0.0, 0.5, 1.0], row_label="o", column_label="a")


def test_draw_effect_map_writes_each_cells_note_under_its_value(ax):
    change = torch.tensor([[-0.02, 0.01], [0.0, 0.005]])
    notes = [["n=30 f=7", "n=31 f=8"], ["n=70 f=0", "n=71 f=9"]]
    draw_effect_map(ax, change, change - 0.001, change + 0.001, [0.1, 0.4], [0.0, 1.0], row_label="o",
                    column_label="a", notes=notes)
    by_text = {t.get_text(): t.get_position() for t in ax.texts}
    assert len(ax.texts) == 8 and by_text["n=31 f=8"] == pytest.approx((1, -0.2))
    assert by_text["+1.00*"] == pytest.approx((1, 0.13)), "the value moves up so the note fits under it"
    assert by_text["+0.00"] == pytest.approx((0, 1.13)) and by_text["n=70 f=0"] == pytest.approx((0, 0.8))
    with pytest.raises(ValueError, match=r"notes must be 2 rows of 2 strings \(rows x columns\), got \[2, 1\]"):
        draw_effect_map(ax, change, change, change, [0.1, 0.4], [0.0, 1.0], row_label="o", column_label="a",
                        notes=[["a", "b"], ["c"]])


def test_draw_learning_curves_a_line_per_network_averaged_over_seeds():
    import pandas as pd

    curves = pd.DataFrame({"method": ["a"] * 4 + ["b"] * 2, "seed": [0, 0, 1, 1, 0, 0],
                           "network": ["n"] * 4 + ["x", "y"], "epoch": [1, 2, 1, 2, 1, 1],
                           "train_loss": [2.0, 1.0, 4.0, 3.0, 1.0, 2.0],
                           "val_accuracy": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]})
    fig, axes = plt.subplots(1, 2)
    draw_learning_curves(axes, curves)
    lines = axes[1].get_lines()
    assert len(lines) == 3 and len(axes[0].get_lines()) == 3  # a, b/x, b/y
    np.testing.assert_allclose(axes[0].get_lines()[0].get_ydata(), [3.0, 2.0])  # seeds averaged
    np.testing.assert_allclose(lines[0].get_ydata(), [20.0, 30.0])
    assert [t.get_text() for t in axes[1].get_legend().get_texts()] == ["a", "b"]
    fig2, named = plt.subplots(1, 2)
    draw_learning_curves(named, curves, labels={"a": "the method a"})  # the legend's words, where given
    assert [t.get_text() for t in named[1].get_legend().get_texts()] == ["the method a", "b"]
    plt.close(fig2)
    with pytest.raises(ValueError, match="value must be a column of curves"):
        draw_learning_curves(axes, curves, value="val_top3")
    plt.close(fig)


def test_draw_stopping_curves_a_line_per_seed_and_a_star_on_each_kept_pass():
    import pandas as pd

    curves = pd.DataFrame({"seed": [0, 0, 0, 1, 1], "network": ["n"] * 5, "epoch": [1, 2, 3, 1, 2],
                           "holdout_loss": [2.0, 1.0, 1.5, 3.0, 2.5],
                           "holdout_accuracy": [0.1, 0.4, 0.3, 0.2, 0.25]})
    chosen = pd.DataFrame({"seed": [0, 1], "network": ["n", "n"], "chosen": [2, 2]})
    fig, axes = plt.subplots(1, 2)
    draw_stopping_curves(axes, curves, chosen)
    lines = axes[1].get_lines()
    stars = [line for line in lines if line.get_marker() == "*"]
    assert len(lines) == 4 and len(stars) == 2  # two seeds, each a curve and a star
    np.testing.assert_allclose(stars[0].get_ydata(), [40.0])
    np.testing.assert_allclose([s.get_xdata()[0] for s in stars], [2, 2])
    np.testing.assert_allclose([line for line in axes[0].get_lines() if line.get_marker() == "*"][1].get_ydata(),
                               [2.5])
    with pytest.raises(ValueError, match="curves lack the columns \\['holdout_accuracy'\\]"):
        draw_stopping_curves(axes, curves.drop(columns="holdout_accuracy"), chosen)
    plt.close(fig)


def test_draw_point_changes_groups_visible_and_occluded_and_hatches_the_axis(ax):
    from fashion_lib.experiments.keypoint_errors import point_changes
    from fashion_lib.plotting import draw_point_changes

    before = torch.zeros(2, 17)
    after = torch.full((2, 17), 0.02)
    vis = torch.tensor([[2] * 17, [1] * 17])
    draw_point_changes(ax, point_changes(before, after, vis, "coco"), COCO)
    assert len(ax.patches) == 34  # 17 visible and 17 occluded bars
    assert [p.get_height() for p in ax.patches[:2]] == pytest.approx([2.0, 2.0])
    hatched = [i for i, p in enumerate(ax.patches) if p.get_hatch()]
    assert hatched == [0, 17]  # COCO's nose, in both groups
    assert ax.get_xticklabels()[0].get_text() == "nose (on axis)" and ax.get_xticklabels()[1].get_text() == "left_eye"
    with pytest.raises(ValueError, match="changes must have shape"):
        draw_point_changes(ax, point_changes(before, after, vis, "coco"), FASHIONAI)
    # a point with no occluded instance is marked n/a, not drawn as a change of 0
    ax.clear()
    vis[1, 5] = 2
    draw_point_changes(ax, point_changes(before, after, vis, "coco"), COCO)
    assert [t.get_text() for t in ax.texts] == ["n/a"]
