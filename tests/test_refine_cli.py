"""The refiner's command line and results files (fashion_lib.refine_cli)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import readme
import torch
from test_refine import gen, symmetric_instances

from fashion_lib import refine, refine_cli
from fashion_lib.keypoints import COCO
from fashion_lib.refine import RefineSummary, refine_symmetric
from fashion_lib.refine_cli import axis_advice, main, read_results, refine_results, write_results

ROOT = Path(__file__).resolve().parents[1]
REAL_COCO = ROOT.parent / "shared" / "real-samples" / "coco" / "test_coco.json"


def as_entries(kps: torch.Tensor, category_id: int = 1) -> list[dict]:
    return [{"image_id": i + 1, "category_id": category_id, "keypoints": kps[i].reshape(-1).tolist(), "score": 0.9}
            for i in range(len(kps))]


def write_json(path: Path, data) -> Path:
    path.write_text(json.dumps(data))
    return path


def corrupted_coco(b: int = 3) -> tuple[list[dict], torch.Tensor]:
    """Symmetric COCO persons with one pair pushed 8 px off the axis and, in the first, the left ankle missing."""
    kps, normal, _ = symmetric_instances(b, COCO, seed=50)
    kps[:, COCO.index("right_knee"), :2] += 8.0 * normal
    kps[0, COCO.index("left_ankle")] = 0.0  # written as 0, 0, 0: a missing point
    return as_entries(kps), kps


def test_refine_results_separates_moved_from_filled_and_matches_the_library():
    entries, kps = corrupted_coco()
    refined, summary = refine_results(entries, "coco", generator=gen())
    assert summary == RefineSummary(instances=3, with_axis=3, too_few_pairs=0, pairs_refined=3, points_moved=6,
                                    points_filled=1, points_ignored=0)
    direct = refine_symmetric(kps, "coco", generator=gen())
    assert [e["keypoints"] for e in refined] == direct.keypoints.reshape(3, -1).tolist()
    assert refined[0]["keypoints"][3 * COCO.index("left_ankle") + 2] == 1.0  # the partner's score
    assert entries[0]["keypoints"][3 * COCO.index("left_ankle")] == 0.0  # the caller's entries are not modified
    assert str(summary) == ("3 instances, 3 with an axis (100%); 3 pairs refined, 6 points moved; 1 points filled; "
                            "0 absurd points ignored")


def test_command_line_prints_its_settings_and_summary(tmp_path, caplog):
    entries, _ = corrupted_coco()
    src, dst = write_json(tmp_path / "dets.json", entries), tmp_path / "refined.json"
    with caplog.at_level("INFO"):
        assert main([str(src), "-o", str(dst), "--schema", "coco"]) == 0
    assert ("settings: schema coco, alpha 0.4, k 10, n 4, m 6, d 1 px, score threshold 0, fill threshold 0, pairs "
            "all, center votes off, absurd points beyond 100 radii, seed 0") in caplog.text
    assert "3 with an axis (100%); 3 pairs refined, 6 points moved; 1 points filled" in caplog.text
    assert "warning" not in caplog.text
    expected, _ = refine_results(entries, "coco", generator=gen(), absurd_factor=100.0)
    assert json.loads(dst.read_text()) == expected
    # alpha 0: only the fill changes a point
    assert main([str(src), "-o", str(tmp_path / "a0.json"), "--schema", "coco", "--alpha", "0"]) == 0
    a0 = json.loads((tmp_path / "a0.json").read_text())
    changed = [i for i, (a, b) in enumerate(zip(a0[0]["keypoints"], entries[0]["keypoints"], strict=True)) if a != b]
    ankle = 3 * COCO.index("left_ankle")
    assert changed == [ankle, ankle + 1, ankle + 2]
    # --d-unit relative without --d uses the command's relative default, not the paper's 1 (the whole instance)
    caplog.clear()
    with caplog.at_level("INFO"):
        assert main([str(src), "-o", str(dst), "--schema", "coco", "--d-unit", "relative"]) == 0
    assert f"d {refine_cli.CLI_RELATIVE_D:g} x the instance's size" in caplog.text


def real_coco_detections() -> list[dict]:
    """The real COCO excerpt's labelled persons as detections (their ground truth, every labelled point)."""
    if not REAL_COCO.is_file():
        pytest.skip("../shared/real-samples is not beside the repository")
    anns = json.loads(REAL_COCO.read_text())["annotations"]
    return [{"image_id": a["image_id"], "category_id": 1, "keypoints": [float(v) for v in a["keypoints"]],
             "score": 1.0} for a in anns if a["num_keypoints"]]


def test_paper_defaults_on_real_scale_persons_warn_and_name_the_parameter(tmp_path, caplog):
    src = write_json(tmp_path / "real.json", real_coco_detections())
    with caplog.at_level("INFO"):
        assert main([str(src), "-o", str(tmp_path / "out.json"), "--schema", "coco"]) == 0
    assert "12 instances, 2 with an axis (17%)" in caplog.text
    warning = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warning) == 1
    assert warning[0].startswith("warning: only 2 of 12 instances (17%) got a symmetry axis")
    assert "3 have fewer than m = 6 complete pairs: lower --m" in warning[0]
    assert "7 have the pairs but not m of their midpoints within d = 1 px" in warning[0]
    assert "--d-unit relative" in warning[0]
    # relative d gives most of them an axis, and the warning goes
    caplog.clear()
    with caplog.at_level("INFO"):
        assert main([str(src), "-o", str(tmp_path / "out.json"), "--schema", "coco", "--d-unit", "relative"]) == 0
    assert "12 instances, 9 with an axis (75%)" in caplog.text
    assert not [r for r in caplog.records if r.levelname == "WARNING"]


def test_axis_advice_names_m_or_d_for_the_cause():
    cfg = refine.RefineConfig.for_schema("coco")
    summary = RefineSummary(instances=10, with_axis=5, too_few_pairs=0, pairs_refined=0, points_moved=0,
                            points_filled=0, points_ignored=0)
    assert axis_advice(summary, cfg) is None  # half of them: not few
    few = RefineSummary(instances=10, with_axis=4, too_few_pairs=6, pairs_refined=0, points_moved=0,
                        points_filled=0, points_ignored=0)
    advice = axis_advice(few, cfg)
    assert "6 have fewer than m = 6 complete pairs: lower --m" in advice and "--d" not in advice
    relative = refine.RefineConfig.for_schema("coco", d_unit="relative", d=0.1)
    advice = axis_advice(RefineSummary(10, 0, 0, 0, 0, 0, 0), relative)
    assert "10 have the pairs but not m of their midpoints within d = 0.1 of their size" in advice
    assert "raise --d" in advice


def test_an_absurd_point_is_ignored_and_counted_not_dragging_its_partner(tmp_path, caplog):
    """Issue 18, case 8: one point at 1e30 dragged its sane partner to 4e29 without a word."""
    kps, normal, _ = symmetric_instances(2, COCO, seed=51)
    kps[:, COCO.index("right_knee"), :2] += 8.0 * normal  # a pair the refiner moves
    hip = COCO.index("left_hip")
    kps[0, hip, 0] = 1e30
    entries = as_entries(kps)
    src, dst = write_json(tmp_path / "dets.json", entries), tmp_path / "out.json"
    with caplog.at_level("INFO"):
        assert main([str(src), "-o", str(dst), "--schema", "coco"]) == 0
    assert "1 points filled; 1 absurd points ignored" in caplog.text
    out = np.array(json.loads(dst.read_text())[0]["keypoints"]).reshape(17, 3)
    assert np.abs(out[:, :2]).max() < 1000  # the absurd hip was filled from its partner, no point dragged away
    right_hip = COCO.index("right_hip")
    assert out[right_hip, :2] == pytest.approx(kps[0, right_hip, :2].numpy())
    # without the check the partner is dragged: the test can fail
    assert main([str(src), "-o", str(dst), "--schema", "coco", "--absurd-factor", "inf"]) == 0
    dragged = np.array(json.loads(dst.read_text())[0]["keypoints"]).reshape(17, 3)
    assert abs(dragged[right_hip, 0]) > 1e29


def test_bad_input_is_named_and_nothing_is_written(tmp_path, caplog):
    dst = tmp_path / "out.json"
    src = write_json(tmp_path / "bad.json", [{"image_id": 1, "category_id": 1, "keypoints": [0.0] * 51, "score": 1}])
    assert main([str(src), "-o", str(dst), "--schema", "fashionai"]) == 2
    assert "bad.json" in caplog.text and "72" in caplog.text  # 24 key points expected: 72 numbers
    assert main([str(tmp_path / "nope.json"), "-o", str(dst), "--schema", "coco"]) == 2
    assert main([str(src), "-o", str(dst), "--schema", "coco", "--alpha", "2"]) == 2
    assert "alpha must be in [0, 1]" in caplog.text
    fa = write_json(tmp_path / "fa.json", [{"image_id": 1, "category_id": 9, "keypoints": [1.0] * 72, "score": 1.0}])
    assert main([str(fa), "-o", str(dst), "--schema", "fashionai", "--pairs", "category"]) == 2
    assert "fa.json[0]: category_id 9 is not a fashionai category id" in caplog.text
    good = {"image_id": 1, "category_id": 1, "keypoints": [1.0] * 51, "score": 1.0}
    cases = [  # each refused by name: the bulk check falls back to the entry-by-entry validator's message
        ({**good, "keypoints": [True] + [1.0] * 50}, "entry 1: field 'keypoints' must be a list of numbers"),
        ({**good, "keypoints": ["1"] + [1.0] * 50}, "entry 1: field 'keypoints' must be a list of numbers"),
        ({**good, "image_id": "7"}, "entry 1: field 'image_id' = '7', expected an integer"),
        ({k: v for k, v in good.items() if k != "score"}, "entry 1 lacks field(s) ['score']"),
        ({**good, "score": None}, "entry 1: field 'score' = None, expected a finite number"),
        ({**good, "keypoints": [2e308] + [1.0] * 50}, "entry 1: field 'keypoints' contains a non-finite value"),
        ({**good, "keypoints": [10**400] + [1.0] * 50}, "an integer in the key points is too large for a float"),
        ({**good, "keypoints": [1.0] * 50}, "entry 1: field 'keypoints' has 50 numbers, expected 3 * K > 0"),
    ]
    for entry, message in cases:
        bad = tmp_path / "case.json"
        bad.write_text(json.dumps([good, entry]).replace("Infinity", "2e308"))
        caplog.clear()
        assert main([str(bad), "-o", str(dst), "--schema", "coco"]) == 2
        assert message in caplog.text, message
    (tmp_path / "latin1.json").write_bytes(b'[{"image_id": 1, "name": "caf\xe9"}]')
    assert main([str(tmp_path / "latin1.json"), "-o", str(dst), "--schema", "coco"]) == 2
    assert "latin1.json: byte 29 (line 1): e9 is not valid UTF-8" in caplog.text
    (tmp_path / "cut.json").write_text('[{"image_id": 1,\n')
    assert main([str(tmp_path / "cut.json"), "-o", str(dst), "--schema", "coco"]) == 2
    assert "cut.json: line 2: not valid JSON" in caplog.text
    assert not dst.exists()


def test_results_round_trip_as_json_dump_writes_them(tmp_path):
    entries = [{"image_id": 3, "category_id": 1, "keypoints": [float(i) + 0.5 for i in range(51)], "score": 0.25,
                "extra": "kept"}, {"image_id": 4, "category_id": 1, "keypoints": list(range(51)), "score": 1}]
    src = write_json(tmp_path / "in.json", entries)
    rest, kps, cats = read_results(src, 17)
    assert rest == [{**e, "keypoints": None} for e in entries]
    assert kps.shape == (2, 17, 3) and kps.dtype == np.float64 and cats.tolist() == [1, 1]
    assert kps[1].reshape(-1).tolist() == [float(i) for i in range(51)]
    out = write_results(tmp_path / "out.json", rest, kps)
    expected = [{**e, "keypoints": [float(v) for v in e["keypoints"]]} for e in entries]
    assert out.read_text() == json.dumps(expected)  # what json.dump writes, written chunk by chunk
    refine_cli_chunk = refine_cli._WRITE_CHUNK
    try:
        refine_cli._WRITE_CHUNK = 1
        assert write_results(tmp_path / "one.json", rest, kps).read_text() == json.dumps(expected)
    finally:
        refine_cli._WRITE_CHUNK = refine_cli_chunk
    # a nested object with a "keypoints" field of its own: read correctly (the reader then takes its slower path)
    nested = [{**entries[0], "meta": {"keypoints": [1.0] * 51}}, entries[1]]
    rest, kps2, _ = read_results(write_json(tmp_path / "nested.json", nested), 17)
    assert rest[0]["meta"] == {"keypoints": [1.0] * 51} and np.array_equal(kps2, kps)
    assert write_results(tmp_path / "empty.json", [], np.zeros((0, 17, 3))).read_text() == "[]"
    assert refine_results([], "coco", generator=gen()) == ([], RefineSummary(0, 0, 0, 0, 0, 0, 0))
    overflow = kps.copy()
    overflow[1, 0, 0] = math.inf
    with pytest.raises(ValueError, match=r"entry 1: a refined coordinate is not finite"):
        write_results(tmp_path / "inf.json", rest, overflow)
    assert not (tmp_path / "inf.json").exists()


def test_help_and_import_stay_light():
    """``--help`` imports no torch; importing the refiner imports no torchvision and no numba (issue 21)."""
    code = ("import contextlib, io, runpy, sys\nsys.argv = ['refine', '--help']\n"
            "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()) as out:\n"
            "    runpy.run_module('fashion_lib.refine', run_name='__main__')\n"
            "print('--d-unit' in out.getvalue(), 'torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["True", "False"], done.stderr
    code = "import sys, fashion_lib.refine\nprint(sorted({'torchvision', 'numba'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "[]", done.stderr


def test_the_readmes_refine_example_runs_as_written(tmp_path):
    """The README's command, word for word (``python`` being this interpreter), on a file of the name it gives."""
    (command,) = readme.commands("Applying the refiner to your own detector", "python -m fashion_lib.refine")
    entries, _ = corrupted_coco()
    write_json(tmp_path / command[3], entries)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_WAIT_POLICY": "PASSIVE"}
    done = subprocess.run([sys.executable, *command[1:]], cwd=tmp_path, capture_output=True, text=True, env=env,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert "3 instances, 3 with an axis (100%)" in done.stderr
    written = tmp_path / command[command.index("-o") + 1]
    expected, _ = refine_results(entries, command[command.index("--schema") + 1], generator=gen(), absurd_factor=100.0)
    assert json.loads(written.read_text()) == expected


def test_command_line_fill_threshold_fills_a_low_point_from_its_partner(tmp_path):
    entries, kps = corrupted_coco()
    elbow = COCO.index("right_elbow")
    partner = entries[1]["keypoints"][3 * COCO.index("left_elbow") + 2]
    entries[1]["keypoints"][3 * elbow + 2] = 0.3  # a low score: below --fill-threshold 0.5, above 0 ...
    entries[1]["keypoints"][3 * elbow] += 10.0  # ... and 10 px off
    src = write_json(tmp_path / "dets.json", entries)
    assert main([str(src), "-o", str(tmp_path / "paper.json"), "--schema", "coco"]) == 0
    assert main([str(src), "-o", str(tmp_path / "fill.json"), "--schema", "coco", "--fill-threshold", "0.5"]) == 0
    paper, fill = (json.loads((tmp_path / name).read_text()) for name in ("paper.json", "fill.json"))
    assert partner > 0.5 and fill[1]["keypoints"][3 * elbow + 2] == partner  # the partner's score: filled
    assert paper[1]["keypoints"][3 * elbow + 2] == 0.3
    # the partner's mirror image is where the point was before it moved off; the paper's rule only moves it by the EMA
    assert fill[1]["keypoints"][3 * elbow:3 * elbow + 2] == pytest.approx(kps[1, elbow, :2].tolist(), abs=1e-6)
    assert abs(paper[1]["keypoints"][3 * elbow] - kps[1, elbow, 0].item()) > 1.0
    assert main([str(src), "-o", str(tmp_path / "bad.json"), "--schema", "coco", "--score-threshold", "0.5",
                 "--fill-threshold", "0.2"]) == 2
