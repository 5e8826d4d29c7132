"""The Table 1 notebooks run unchanged on real data set folders (here: the real excerpts in ../shared/real-samples,
laid out as the real downloads are), with nothing but the ``data_root`` parameter changed.

The FashionAI excerpt has real annotation rows but no images: the test puts stand-in 512 x 512 images (the real
size) at the paths the rows name. The COCO excerpt has real images. Scores are meaningless at this size; the test
checks that the pages run through the real loaders and score what they read.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nbformat
import pytest
from PIL import Image

from fashion_lib import pipeline

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "real-samples"
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not SAMPLES.is_dir(), reason="../shared/real-samples is not beside the repository")]


def fashionai_folder(tmp_path: Path) -> Path:
    """A FashionAI training split folder as downloaded: the real rows as train.csv (no validation file), stand-in
    images."""
    root = tmp_path / "fashionAI"
    (root / "Annotations").mkdir(parents=True)
    csv = (SAMPLES / "fashionai-keypoints" / "Annotations" / "train.csv").read_text()
    (root / "Annotations" / "train.csv").write_text(csv)
    for line in csv.splitlines()[1:]:
        path = root / line.split(",")[0]
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (512, 512), (200, 190, 180)).save(path)
    return root


def coco_folder(tmp_path: Path) -> Path:
    """A COCO 2017 folder: the real excerpt as both splits, with its real images."""
    root = tmp_path / "coco"
    (root / "annotations").mkdir(parents=True)
    for split in ("train2017", "val2017"):
        shutil.copy(SAMPLES / "coco" / "test_coco.json", root / "annotations" / f"person_keypoints_{split}.json")
        (root / split).mkdir()
        for image in (SAMPLES / "coco").glob("*.jpg"):
            shutil.copy(image, root / split / image.name)
    return root


def run_notebook(tmp_path: Path, name: str, root: Path) -> dict:
    summary = pipeline.run("smoke", [(f"{name}.data_root", str(root))], only=[name], workdir=tmp_path / "book",
                           cache_dir=tmp_path / "cache", runs_dir=tmp_path / "runs", build=False)
    assert summary.executed == (name,)
    return nbformat.read(tmp_path / "book" / "book" / "results" / f"{name}.ipynb", as_version=4)


def printed(nb) -> str:
    """What the code cells showed: printed text and Markdown prose."""
    return "".join(o.get("text", "") + o.get("data", {}).get("text/markdown", "")
                   for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))


def test_table1_fashionai_runs_on_a_real_fashionai_folder(tmp_path):
    root = fashionai_folder(tmp_path)
    nb = run_notebook(tmp_path, "10_table1_fashionai", root)
    # the smoke profile's val_images, held out of the real rows (the download has no validation file)
    assert f"Validation set: 4 images ({root})." in printed(nb)
    assert nb.metadata["fashion_lib"]["parameters"]["data_root"] == str(root)


def test_table1_coco_runs_on_a_real_coco_folder(tmp_path):
    root = coco_folder(tmp_path)
    nb = run_notebook(tmp_path, "11_table1_coco", root)
    people = sum(1 for a in json.loads((SAMPLES / "coco" / "test_coco.json").read_text())["annotations"]
                 if not a["iscrowd"])
    assert f"Validation set: 4 images, {people} persons ({root})." in printed(nb)
