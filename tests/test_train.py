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
