"""Where the symmetry prior helps, over a grid of worlds (fashion_lib.experiments.prior_map)."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from test_experiments_keypoint_refiner import summary
from test_experiments_keypoints import tiny

from fashion_lib.experiments import keypoint_scores as ks
from fashion_lib.experiments import keypoints as kx
from fashion_lib.experiments import prior_map as pm
from fashion_lib.keypoints import FASHIONAI, OCCLUDED, VISIBLE
from fashion_lib.refine import RefineConfig, refine_symmetric, summarize_refinement


def test_prior_map_scores_the_axis_once_per_world_with_an_interval(runs):
    from fashion_lib.models.detector import predict

    setup = tiny()
    world = pm.map_world(setup.world, 0.3, 0.0)
    assert (world.asymmetry, world.perspective, world.occluded_label_noise, world.occlusion_rate) == (0, 0, 0, 0.3)
    assert pm.map_world(setup.world, 0.3, 0.5).perspective == setup.world.perspective
    detectors = [kx.train_detectors(setup, 0, progress=False)]
    refine = RefineConfig.for_schema("fashionai", d=4.0, m=6)
    prior = pm.prior_map(setup, detectors, [0], refine, [0.0, 0.5], [0.0, 1.0], images=3, n_boot=20,
                         generator=torch.Generator().manual_seed(0))
    assert prior.change.shape == (2, 2, 2) and prior.points == ("visible", "occluded") and prior.garments == 3
    assert prior.change[1, 0].isnan().all(), "no occluded point at occlusion 0: nothing to score"
    # the oracle for one cell: the axis once on the detector's garments of that world, minus the detector
    cell = dataclasses.replace(setup, val_world=pm.map_world(setup.world, 0.5, 1.0), val_images=3)
    val = kx.validation_set(cell)
    alone = kx.to_instances(predict(detectors[0].keypoint_rcnn, val.images), "fashionai").keypoints
    axis = refine_symmetric(alone, FASHIONAI, generator=torch.Generator().manual_seed(0), config=refine).keypoints
    ne = ks.ne_metric()
    expected = ne(axis, val.keypoints, val.categories) - ne(alone, val.keypoints, val.categories)
    assert float(prior.change[0, 1, 1]) == pytest.approx(expected, abs=1e-9)
    assert bool((prior.low[0] <= prior.change[0] + 1e-12).all() and (prior.change[0] <= prior.high[0] + 1e-12).all())
    assert torch.equal(prior.decided, (prior.low > 0) | (prior.high < 0))
    # the counts beside the verdicts: the labelled points of each kind, and the refiner's own summary per seed
    from fashion_lib.metrics import keypoint_errors

    counted = ~keypoint_errors(alone, val.keypoints, val.categories, count_occluded=True).isnan()
    assert int(prior.scored[0, 1, 1]) == int((counted & (val.keypoints[..., 2] == VISIBLE)).sum()) > 0
    assert int(prior.scored[1, 1, 1]) == int((counted & (val.keypoints[..., 2] == OCCLUDED)).sum())
    assert int(prior.scored[1, 0].sum()) == 0, "no occluded point at occlusion 0"
    out = refine_symmetric(alone, FASHIONAI, generator=torch.Generator().manual_seed(0), config=refine)
    assert prior.activity[1][1] == (summarize_refinement(alone, out, FASHIONAI, config=refine),)
    assert float(prior.axis_found[1, 1]) == pytest.approx(float(out.has_axis.double().mean()))
    assert int(prior.filled[1, 1]) == int(out.filled.sum())
    with pytest.raises(ValueError, match="prior_map needs a FashionAI setup"):
        pm.prior_map(tiny("coco"), detectors, [0], refine, [0.1], [0.0], images=3, n_boot=5,
                     generator=torch.Generator())
    with pytest.raises(ValueError, match=r"detectors \(1\) and seeds \(2\) must pair up"):
        pm.prior_map(setup, detectors, [0, 1], refine, [0.1], [0.0], images=3, n_boot=5, generator=torch.Generator())


def _referee_map() -> pm.PriorMap:
    """The 3 x 3 map the page showed (NE points): decided cells get a narrow interval, the others one across 0."""
    occluded = [[-3.86, -2.63, -1.86], [-2.93, -2.53, -0.23], [-1.73, -0.92, -0.18]]
    visible = [[-0.17, 0.28, 0.59], [0.16, 0.27, 0.69], [0.29, 0.20, 0.80]]
    decided = torch.tensor([[[False, False, False], [False, False, True], [False, False, True]],
                            [[True, True, False], [True, True, False], [True, True, False]]])
    change = torch.tensor([visible, occluded], dtype=torch.float64) / 100
    width = torch.where(decided, 0.3 * change.abs(), change.abs() + 0.005)
    scored = torch.tensor([[[500, 501, 502], [400, 401, 402], [300, 301, 302]],
                           [[30, 31, 32], [70, 71, 72], [140, 141, 142]]])
    activity = tuple(tuple((summary(48, 40, 3), summary(48, 44, 4 + i + j)) for j in range(3)) for i in range(3))
    return pm.PriorMap((0.085, 0.2, 0.4), (0.0, 0.3, 1.0), ("visible", "occluded"), change, change - width,
                       change + width, 48, scored, activity)


def test_prior_map_sentences_count_the_verdicts_and_state_every_line_with_its_ends():
    prior = _referee_map()
    visible, occluded = pm.prior_map_sentences(prior).split("\n\n**Occluded points.**")
    assert visible.startswith("**Visible points.** Of the 9 measured cells the axis lowers NE (interval below 0) in "
                              "0, raises it (interval above 0) in 2, and the interval includes 0 in 7.")
    assert " The starred cells are scored on 302 to 402 visible points each (fewest at occlusion 0.4, asymmetry 1)." \
        in visible
    assert occluded.startswith(" Of the 9 measured cells the axis lowers NE (interval below 0) in 6, raises it "
                               "(interval above 0) in 0, and the interval includes 0 in 3.")
    assert "on 30 to 141 occluded points each (fewest at occlusion 0.085, asymmetry 0)" in occluded
    # the referee's line: the gain on occluded points shrinks as occlusion rises, at the symmetric end
    assert ("- at asymmetry 0, along occlusion: -3.86 [-5.02, -2.70] (occlusion 0.085) → -2.93 → -1.73 [-2.25, "
            "-1.21] (occlusion 0.4): the change shrinks towards 0; the end intervals do not overlap.") in occluded
    assert "- at occlusion 0.085, along asymmetry: -0.17 [-0.84, +0.50] (asymmetry 0) → +0.28 → +0.59 [-0.50, " \
           "+1.68] (asymmetry 1): the sign changes; the end intervals overlap." in visible
    assert "- at asymmetry 1, along occlusion: +0.59 [-0.50, +1.68] (occlusion 0.085) → +0.69 → +0.80 [+0.56, " \
           "+1.04] (occlusion 0.4): the change grows away from 0; the end intervals overlap." in visible
    assert visible.count("\n- at asymmetry") == 3 and visible.count("\n- at occlusion") == 3


def test_prior_map_sentences_leave_out_unmeasured_cells_and_read_ties_at_the_printed_precision():
    nan = float("nan")
    change = torch.tensor([[[0.010, 0.010], [0.01001, -0.02]], [[nan, nan], [-0.03, -0.01]]], dtype=torch.float64)
    activity = (((summary(3, 3, 0),),) * 2,) * 2
    prior = pm.PriorMap((0.0, 0.4), (0.0, 1.0), ("visible", "occluded"), change, change - 0.001, change + 0.001, 3,
                        torch.ones(2, 2, 2, dtype=torch.int64), activity)
    text = pm.prior_map_sentences(prior)
    assert "and the interval includes 0 in 0; no occluded point in 2 cells." in text
    assert "- at asymmetry 0, along occlusion: fewer than two measured cells along occlusion." in text
    assert "(occlusion 0.4): the same at the printed precision; the end intervals overlap." in text
    assert "Of the 4 measured cells the axis lowers NE (interval below 0) in 1, raises it (interval above 0) in 3" \
        in text
    one_row = dataclasses.replace(prior, occlusion_values=(0.4,), change=change[:, 1:], low=change[:, 1:] - 1,
                                  high=change[:, 1:] + 1, scored=prior.scored[:, 1:], activity=activity[1:])
    text = pm.prior_map_sentences(one_row)
    assert "along occlusion" not in text and "- at occlusion 0.4, along asymmetry" in text
    assert text.count("No cell is starred.") == 2


def test_prior_map_counts_and_notes_put_the_mechanism_beside_each_verdict():
    prior = _referee_map()
    assert prior.axis_found[0, 0].item() == pytest.approx(84 / 96) and prior.filled[2, 2].item() == 3 + 8
    table = pm.prior_map_counts(prior)
    assert list(table.index)[0] == (0.085, 0.0) and len(table) == 9
    row = table.loc[(0.085, 0.0)]
    assert (row["visible points scored"], row["occluded points scored"]) == (500, 30)
    assert row["garments with an axis (n/N, all seeds)"] == "84/96 (88 %)"
    assert row["points filled (all seeds)"] == "7 (0.07 per instance)"
    assert table["starred on"].tolist() == ["occluded", "occluded", "—", "occluded", "occluded", "visible",
                                            "occluded", "occluded", "visible"]
    notes = pm.prior_map_notes(prior)
    assert notes[1][0][0] == "n=30 f=7" and notes[0][2][1] == "n=301 f=10"
    assert len(notes) == 2 and all(len(rows) == 3 and all(len(r) == 3 for r in rows) for rows in notes)


def test_cell_finds_a_grid_cell_and_none_outside_the_grid():
    prior = _referee_map()
    assert prior.cell(0.2, 1.0) == (1, 2)
    assert prior.cell(0.085, 0.0) == (0, 0)
    assert prior.cell(0.2, 0.5) is None and prior.cell(0.3, 0.0) is None


def test_draw_prior_map_draws_one_map_per_kind_on_one_colour_scale():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.patches as patches
    import matplotlib.pyplot as plt

    prior = _referee_map()
    fig = pm.draw_prior_map(prior, mark=prior.cell(0.2, 0.3), dpi=50)
    maps, bar = fig.axes[:2], fig.axes[2]
    assert len(fig.axes) == 3 and [ax.get_title() for ax in maps] == ["visible points", "occluded points"]
    limit = 100 * float(prior.change.abs().max())  # 3.86: the largest |change|, on both maps and the bar
    for ax in maps:
        assert ax.images[0].get_clim() == pytest.approx((-limit, limit))
    assert bar.get_ylabel() == "NE points (blue: the axis helps)"
    assert maps[0].get_ylabel() == "occlusion rate" and maps[1].get_ylabel() == ""
    assert fig._suptitle.get_text().startswith("The axis applied once minus the detector alone")
    # the marked cell (0.2, 0.3) is outlined, dashed, on both maps: around (column 1, row 1)
    for ax in maps:
        dashed = [p.get_xy() for p in ax.patches if isinstance(p, patches.Rectangle) and p.get_linestyle() == "--"]
        assert dashed == [pytest.approx((0.54, 0.54))]
    texts = [t.get_text() for t in maps[1].texts]
    assert any("n=30 f=7" in t for t in texts), texts  # the notes: points scored and filled per cell
    plt.close(fig)
