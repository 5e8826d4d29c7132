"""A dry run of the ``gpu`` profile on the CPU: every paper-scale configuration it uses is built from the profile's
parameters through the notebooks' own functions, takes two optimiser steps and scores one small batch.

What is kept from the profile: presets, backbones, input and image sizes (Keypoint R-CNN R50-FPN with the stock
head at 640-800 px on 512-px images, CPN R50 at 256 x 192, NASNet-A Large at 399 px, Inception-ResNet-v2 at
299 px). What is cut, for time: steps (2), batch (2), image counts, and the detections Keypoint R-CNN returns per
image at inference (2 instead of 100: an untrained detector fills all 100, and the key-point head and CPN on 100
boxes take minutes on a CPU; the shapes are the same). Nothing is downloaded (timm builds with pretrained=False).
"""

from __future__ import annotations

import math
import shutil

import pytest
import torch

from fashion_lib.attributes import LENGTH_TASKS
from fashion_lib.experiments import keypoints as kx
from fashion_lib.experiments.attribute_data import AttributeSetup, attribute_data
from fashion_lib.experiments.keypoint_rows import table1_rows
from fashion_lib.experiments.table2 import beta_predictions
from fashion_lib.experiments.table3 import T3_JOINT_ALONE, deepfashion_predictions, table3_methods
from fashion_lib.keypoints import get_schema
from fashion_lib.models.cpn import CPNConfig
from fashion_lib.models.keypoint_rcnn import KeypointRCNNConfig
from fashion_lib.profiles import notebook_parameters
from fashion_lib.provenance import RUNS_ENV
from fashion_lib.refine import RefineConfig
from fashion_lib.train import TABLE1_NOTEBOOKS

pytestmark = pytest.mark.slow

# the detector settings cut for the dry run; float32, as bf16 autocast on a CPU (amp, where it has native bf16) is
# not the path the gpu profile takes on a GPU, and was slower than float32 for the paper-scale detector here
SHORT = {"train_steps": 2, "coco_train_steps": 0, "cpn_steps": 2, "batch_size": 2, "amp": False}


@pytest.fixture(scope="module")
def gpu() -> dict[str, dict]:
    return notebook_parameters("gpu")


@pytest.fixture
def runs(tmp_path, monkeypatch):
    """A runs folder of its own; removed afterwards (a paper-scale checkpoint is hundreds of MB)."""
    monkeypatch.setenv(RUNS_ENV, str(tmp_path / "runs"))
    yield tmp_path / "runs"
    shutil.rmtree(tmp_path / "runs", ignore_errors=True)


def _finite_steps(result, steps: int = 2) -> None:
    assert result.step == steps and result.resumed_from is None
    assert result.losses and all(math.isfinite(v) for v in result.losses.values()), result.losses


@pytest.mark.parametrize("schema", ["fashionai", "coco"])
def test_detectors_train_two_steps_and_score_table1_rows(schema, gpu, runs):
    params = gpu[TABLE1_NOTEBOOKS[schema]]
    setup = kx.KeypointSetup(schema=schema, **{**params["detector"], **SHORT}, val_images=2)
    assert kx.detector_configs(setup) == (KeypointRCNNConfig.gpu(schema), CPNConfig.gpu(schema))
    krcnn, cpn = (kx.train_detector(setup, model, 0, progress=False) for model in kx.DETECTOR_MODELS)
    _finite_steps(krcnn)
    _finite_steps(cpn)
    assert krcnn.model.transform.min_size == (640, 672, 704, 736, 768, 800)
    krcnn.model.roi_heads.detections_per_img = 2  # see the module docstring
    detectors = kx.Detectors(krcnn.model.eval(), cpn.model.eval(), krcnn.run_dir, cpn.run_dir)

    val = kx.validation_set(setup)
    side = params["detector"]["image_size"]
    assert [tuple(im.shape) for im in val.images] == [(3, side, side)] * 2
    rows = table1_rows(setup, detectors, val, RefineConfig.for_schema(schema), seed=0)
    k = get_schema(schema).num_keypoints
    assert set(rows) == set(kx.ROWS)
    for name, inst in rows.items():
        assert inst.keypoints.ndim == 3 and inst.keypoints.shape[1:] == (k, 3), name
        assert inst.keypoints.shape[0] == inst.scores.shape[0] == inst.image_index.shape[0] >= 1, name
        assert torch.isfinite(inst.keypoints[..., :2]).all(), name


def _attribute_setup(params: dict, dataset: str) -> AttributeSetup:
    """The notebook's AttributeSetup with the profile's networks and schedule, cut to 2 steps of 2 images."""
    return AttributeSetup(dataset=dataset, detector=kx.KeypointSetup(**params["detector"]),
                          profile=params["profile"], input_size=params["input_size"], train_images=4,
                          val_images=2, epochs=1, batch_size=2, lr=params["attr_lr"], amp=False)


def test_fashionai_attribute_network_trains_two_steps_and_scores(gpu, runs):
    setup = _attribute_setup(gpu["23_ablation_beta"], "fashionai")
    table2 = _attribute_setup(gpu["20_table2_fashionai_attributes"], "fashionai")
    assert (setup.networks().fashionai_backbone, setup.networks().fashionai_size) == ("nasnetalarge", 399)
    assert table2.networks() == setup.networks()  # Table 2's networks have the same trunk and input
    assert setup.steps(setup.train_images) == 2
    preds = beta_predictions(setup, 0.1, 0.12, 0, network="length")
    assert len(preds) == 2 and set(preds.tasks) <= set(LENGTH_TASKS)
    assert preds.probs.shape == (2, 10) and torch.isfinite(preds.probs).all()
    torch.testing.assert_close(preds.probs.sum(1), torch.ones(2))


def test_deepfashion_attribute_network_trains_two_steps_and_scores(gpu, runs):
    setup = _attribute_setup(gpu["22_table3_deepfashion"], "deepfashion")
    assert (setup.networks().deepfashion_backbone, setup.networks().deepfashion_size) == ("inception_resnet_v2", 299)
    assert setup.steps(setup.train_images) == 2
    data = attribute_data(setup)
    # the joint network on whole images: one Inception-ResNet-v2 with both heads, no detector needed for its input
    preds = deepfashion_predictions(setup, table3_methods()[T3_JOINT_ALONE], 0, data, {})
    assert len(preds) == 2
    assert preds.category_probs.shape[0] == preds.attribute_scores.shape[0] == 2
    assert torch.isfinite(preds.category_probs).all() and torch.isfinite(preds.attribute_scores).all()
    torch.testing.assert_close(preds.category_probs.sum(1), torch.ones(2))
