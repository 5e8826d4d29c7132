"""The training command line (fashion_lib.train)."""

import pytest

from fashion_lib.engine import CHECKPOINT_NAME
from fashion_lib.train import main


@pytest.mark.slow
def test_the_command_line_trains_resumes_and_reports_bad_input(tmp_path, caplog):
    run = tmp_path / "cpn"
    args = ["cpn", "--steps", "2", "--batch-size", "2", "--image-size", "64", "--run-dir", str(run), "--no-progress"]
    with caplog.at_level("INFO"):
        assert main(args) == 0
    assert (run / CHECKPOINT_NAME).is_file()
    assert "trained cpn to step 2" in caplog.text
    caplog.clear()
    with caplog.at_level("INFO"):
        assert main(args) == 0  # a finished run is loaded, not trained again
    assert "trained cpn to step 2" in caplog.text
    assert main(["cpn", "--data-root", str(tmp_path / "missing")]) == 2
    assert "data_root" in caplog.text and "is not a folder" in caplog.text
    with pytest.raises(SystemExit):
        main(["resnet"])


@pytest.mark.slow
def test_train_predict_refine_score_chain_on_the_real_coco_excerpt(tmp_path, caplog):
    """Train (2 steps), detect on the real COCO excerpt into a results file, refine it with the refiner's command
    line, and score both with pycocotools: the files each tool writes are what the next one reads."""
    import json
    from pathlib import Path

    from fashion_lib.coco_eval import coco_keypoint_ap, read_coco_results
    from fashion_lib.refine_cli import main as refine_main

    coco = Path(__file__).resolve().parents[2] / "shared" / "real-samples" / "coco"
    if not coco.is_dir():
        pytest.skip("../shared/real-samples is not beside the repository")
    results, refined = tmp_path / "dets.json", tmp_path / "refined.json"
    args = ["keypoint_rcnn", "--schema", "coco", "--steps", "2", "--batch-size", "2", "--image-size", "64",
            "--run-dir", str(tmp_path / "run"), "--no-progress", "--predict", str(coco / "test_coco.json"), str(coco),
            "--results", str(results)]
    with caplog.at_level("INFO"):
        assert main(args) == 0
    entries = read_coco_results(results, num_keypoints=17)
    assert f"wrote {len(entries)} detections" in caplog.text
    assert {e["image_id"] for e in entries} <= {785, 40083, 196141, 197388}
    assert all(0 <= v <= 1 for e in entries for v in e["keypoints"][2::3])  # confidences, not COCO's v = 1
    assert refine_main([str(results), "-o", str(refined), "--schema", "coco"]) == 0
    assert len(json.loads(refined.read_text())) == len(entries)
    for path in (results, refined):
        ap = coco_keypoint_ap(coco / "test_coco.json", str(path)).AP
        assert 0.0 <= ap <= 1.0
    assert main(["cpn", "--predict", "a", "b", "--results", "c"]) == 2
