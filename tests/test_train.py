"""The training command line (fashion_lib.train)."""

import pickle

import pytest

from fashion_lib.checkpoints import CHECKPOINT_NAME
from fashion_lib.train import TABLE1_NOTEBOOKS, main

TABLE1_SCHEMAS = tuple(TABLE1_NOTEBOOKS)


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


def test_the_command_line_reports_errors_as_error_lines_with_exit_2(tmp_path, caplog):
    assert main(["keypoint_rcnn", "--image-size", "32"]) == 2  # used to fail deep inside batch normalisation
    assert "error: image_size must be >= 64, got 32" in caplog.text
    assert main(["cpn", "--steps", "0"]) == 2
    assert "error: train_steps must be an integer >= 1, got 0" in caplog.text
    caplog.clear()
    run = tmp_path / "run"
    run.mkdir()
    (run / CHECKPOINT_NAME).write_bytes(pickle.dumps({"model": "not a checkpoint"}))
    args = ["cpn", "--steps", "2", "--batch-size", "2", "--image-size", "64", "--run-dir", str(run), "--no-progress"]
    assert main(args) == 2  # not a traceback with exit 1
    lines = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(lines) == 1 and lines[0].startswith(f"error: {run / CHECKPOINT_NAME}: cannot read the checkpoint")
    assert "weights_only" not in caplog.text  # torch's advice to unpickle an untrusted file is never repeated


def _notebook_setup(profile: str, schema: str = "fashionai"):
    """The KeypointSetup the schema's Table 1 notebook builds under ``profile`` (its own call, its parameters)."""
    from fashion_lib.experiments import keypoints as kx
    from fashion_lib.profiles import notebook_parameters

    p = notebook_parameters(profile)[TABLE1_NOTEBOOKS[schema]]
    return kx.KeypointSetup(schema=schema, **p["detector"], val_images=p["val_images"], data_root=p["data_root"],
                            train_file=p["train_file"], val_file=p["val_file"], val_root=p["val_root"]), p["seeds"]


@pytest.mark.parametrize("schema", ["fashionai", "coco"])
def test_profile_option_names_the_run_folders_the_profiles_notebooks_use(schema, capsys, caplog):
    from fashion_lib.experiments import keypoints as kx

    setup, seeds = _notebook_setup("gpu", schema)
    expected = [str(kx.detector_run(setup, m, s).run_dir) for s in seeds for m in ("keypoint_rcnn", "cpn")]
    assert main(["keypoint_rcnn", "cpn", "--schema", schema, "--profile", "gpu", "--print-run-dir"]) == 0
    assert capsys.readouterr().out.split() == expected
    assert len(set(expected)) == 2 * len(seeds) == 6
    # the batch size the old docstring's example gave: another folder, and a warning saying so
    with caplog.at_level("WARNING"):
        assert main(["keypoint_rcnn", "--schema", schema, "--profile", "gpu", "--batch-size", "32", "--seed", "0",
                     "--print-run-dir"]) == 0
    assert capsys.readouterr().out.split() != expected[:1]
    assert "batch_size replace(s) the profile's value" in caplog.text
    assert main(["cpn", "--profile", "nope", "--print-run-dir"]) == 2
    assert "profile file" in caplog.text and "does not exist" in caplog.text
    # -p as the pipeline takes it: the folder of the notebooks given the same override
    assert main(["cpn", "--schema", schema, "--profile", "gpu", "-p", "seeds", "[5]", "--print-run-dir"]) == 0
    assert capsys.readouterr().out.split() == [str(kx.detector_run(setup, "cpn", 5).run_dir)]
    assert main(["cpn", "-p", "seeds", "[5]", "--print-run-dir"]) == 2
    assert "give --profile too" in caplog.text


def test_without_a_profile_the_options_and_their_defaults_name_the_folder(capsys):
    from fashion_lib.experiments import keypoints as kx

    setup = kx.KeypointSetup(schema="coco", preset="cpu", image_size=64, train_steps=5, cpn_steps=5, batch_size=2)
    assert main(["cpn", "--schema", "coco", "--image-size", "64", "--steps", "5", "--batch-size", "2", "--seed", "3",
                 "--print-run-dir"]) == 0
    assert capsys.readouterr().out.split() == [str(kx.detector_run(setup, "cpn", 3).run_dir)]


def test_a_profile_with_cpn_steps_0_trains_no_cpn(capsys, caplog):
    """The cpu profile trains no CPN (its notebooks look for none): ``cpn`` is skipped with a warning."""
    from fashion_lib.experiments import keypoints as kx

    setup, seeds = _notebook_setup("cpu")
    assert setup.cpn_steps == 0
    with caplog.at_level("WARNING"):
        assert main(["keypoint_rcnn", "cpn", "--profile", "cpu", "--print-run-dir"]) == 0
    assert capsys.readouterr().out.split() == [str(kx.detector_run(setup, "keypoint_rcnn", s).run_dir)
                                               for s in seeds]
    assert "cpn_steps is 0" in caplog.text and "skipping cpn" in caplog.text
    # the same through a -p override of a profile that trains one
    assert main(["cpn", "--profile", "smoke", "-p", "detector", "{cpn_steps: 0}", "--print-run-dir"]) == 0
    assert capsys.readouterr().out.split() == []


@pytest.mark.slow
def test_torchrun_on_cpu_trains_the_runs_the_notebooks_then_load(tmp_path, monkeypatch):
    """``torchrun`` (2 processes, gloo) with ``--profile smoke`` into a runs folder; the notebooks' function then
    loads both detectors from it: no optimiser step runs, and the weights are the command's."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    import torch

    from fashion_lib.checkpoints import load_checkpoint
    from fashion_lib.experiments import keypoints as kx
    from fashion_lib.provenance import RUNS_ENV

    if not torch.distributed.is_available() or not torch.distributed.is_gloo_available():
        pytest.skip("this torch build has no gloo backend")
    root = Path(__file__).resolve().parents[1]
    runs = tmp_path / "runs"
    env = {**os.environ, RUNS_ENV: str(runs), "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m",
               "fashion_lib.train", "keypoint_rcnn", "cpn", "--profile", "smoke", "--no-progress"]
    done = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "rank 1 of 2 (local rank 1, gloo)" in done.stderr

    monkeypatch.setenv(RUNS_ENV, str(runs))
    setup, seeds = _notebook_setup("smoke")
    assert seeds == [0]

    def no_training(*args, **kwargs):
        raise AssertionError("an optimiser step ran: the notebook trained instead of loading the torchrun run")

    monkeypatch.setattr(torch.optim.AdamW, "step", no_training)
    monkeypatch.setattr(torch.optim.SGD, "step", no_training)
    detectors = kx.train_detectors(setup, 0, progress=False)
    for model, run_dir in ((detectors.keypoint_rcnn, detectors.run_dir), (detectors.cpn, detectors.cpn_run_dir)):
        run = kx.detector_run(setup, "keypoint_rcnn" if model is detectors.keypoint_rcnn else "cpn", 0)
        assert run_dir == run.run_dir and run_dir.parent == runs
        saved, untrained = run.build(), run.build()
        load_checkpoint(run_dir / CHECKPOINT_NAME, saved)
        for name, value in model.state_dict().items():
            torch.testing.assert_close(value, saved.state_dict()[name], rtol=0, atol=0, msg=name)
        assert any(not torch.equal(v, untrained.state_dict()[k]) for k, v in model.state_dict().items())


def test_the_gpu_pages_torchrun_commands_train_the_runs_the_gpu_notebooks_load(capsys):
    """book/gpu.md's commands, run with --print-run-dir, name every detector run the gpu profile's key-point
    notebooks look for (both schemas, both models, every seed)."""
    import shlex
    from pathlib import Path

    page = (Path(__file__).resolve().parents[1] / "book" / "gpu.md").read_text()
    commands = [shlex.split(line) for line in page.splitlines() if line.startswith("torchrun ")]
    assert len(commands) == 2
    printed = []
    for words in commands:
        args = words[words.index("fashion_lib.train") + 1:]
        assert main([*args, "--print-run-dir"]) == 0
        printed += capsys.readouterr().out.split()
    expected = [run for schema in TABLE1_SCHEMAS for run in _gpu_notebook_runs(schema)]
    assert sorted(printed) == sorted(expected) and len(expected) == 12


def _gpu_notebook_runs(schema: str) -> list[str]:
    """The detector run folders the gpu profile's Table 1 notebook of ``schema`` loads (every model and seed)."""
    from fashion_lib.experiments import keypoints as kx

    setup, seeds = _notebook_setup("gpu", schema)
    return [str(kx.detector_run(setup, m, s).run_dir) for s in seeds for m in kx.DETECTOR_MODELS]


def test_the_readmes_train_example_trains_the_runs_the_gpu_notebooks_load(capsys):
    """The README's ``python -m fashion_lib.train ...`` (its prose names it), with ``--print-run-dir``: the runs it
    would train are those the gpu profile's notebooks of its schema load."""
    import readme

    (command,) = readme.inline_commands("Profiles and parameters", "python -m fashion_lib.train")
    assert main([*command[3:], "--print-run-dir"]) == 0
    schema = command[command.index("--schema") + 1]
    assert sorted(capsys.readouterr().out.split()) == sorted(_gpu_notebook_runs(schema))
