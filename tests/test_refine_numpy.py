"""The refiner on NumPy arrays without torch (fashion_lib.refine_numpy) against the reference, refine_symmetric."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from test_refine import symmetric_instances

from fashion_lib import refine, refine_numpy
from fashion_lib.keypoint_tables import get_table
from fashion_lib.keypoints import get_schema
from fashion_lib.refine_cli import main, refine_results
from fashion_lib.refine_config import RefineConfig
from fashion_lib.refine_numpy import Layout, TorchUniforms, refine_arrays

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("seed", [0, 1, 2**40 + 3, -1])
def test_torch_uniforms_are_torchs_float64_stream(seed):
    ours, g = TorchUniforms(seed), torch.Generator().manual_seed(seed)
    for k, b in [(10, 7), (3, 1), (10, 1000)]:  # successive draws continue the same stream
        assert np.array_equal(ours.draw(k, b), torch.rand(k, b, generator=g, dtype=torch.float64).numpy())


def noisy_instances(b: int, schema: str, seed: int) -> np.ndarray:
    """(B, K, 3) float64: symmetric instances with 3 px noise, a tenth of the points dropped (0, 0, 0), and a few
    absurd coordinates."""
    kps, _, _ = symmetric_instances(b, get_schema(schema), seed=seed)
    rng = np.random.default_rng(seed)
    kps = kps.numpy()
    kps[..., :2] += rng.normal(0, 3.0, kps[..., :2].shape)
    kps[rng.random(kps.shape[:2]) < 0.1] = 0.0
    kps[rng.integers(b, size=3), rng.integers(kps.shape[1], size=3), 0] = 1e30
    return kps


CASES = [
    ("coco", {}),
    ("coco", {"d_unit": "relative", "d": 0.05, "absurd_factor": 100.0}),
    ("coco", {"m": 4, "d": 3.0, "center_votes": True, "absurd_factor": 100.0, "alpha": 0.25}),
    ("fashionai", {"pairs": "category", "d": 4.0, "m": 6, "absurd_factor": 100.0}),
    ("fashionai", {"pairs": "category", "d_unit": "relative", "d": 0.01, "score_threshold": 0.5}),
    ("fashionai", {"fill_threshold": 0.5, "absurd_factor": 100.0}),
]


@pytest.mark.parametrize(("schema", "overrides"), CASES)
def test_refine_arrays_reaches_the_references_results(schema, overrides, monkeypatch):
    """Bit for bit with the reference's CPU kernel, and the same decisions as its tensor path (float64), over
    several chunks of the random stream."""
    kps = noisy_instances(300, schema, seed=len(overrides))
    layout, cfg = Layout.of(get_table(schema)), RefineConfig.for_schema(schema, **overrides)
    categories = np.random.default_rng(5).integers(len(layout.categories), size=len(kps))
    monkeypatch.setattr(refine_numpy, "_CHUNK", 128)
    ours = refine_arrays(kps, layout, cfg, TorchUniforms(7), categories if cfg.pairs == "category" else None)
    assert ours.has_axis.sum() > 50 and ours.refined.any()  # the comparison covers real work
    for kernel in (True, False):
        ref = refine.refine_symmetric(torch.from_numpy(kps), schema, generator=torch.Generator().manual_seed(7),
                                      config=cfg, categories=torch.from_numpy(categories), chunk_size=128,
                                      backend="kernel" if kernel else "tensor")
        for name in ("has_axis", "refined", "filled", "ignored"):
            assert np.array_equal(getattr(ours, name), getattr(ref, name).numpy()), (kernel, name)
        if kernel:
            assert np.array_equal(ours.keypoints, ref.keypoints.numpy())
        else:
            np.testing.assert_allclose(ours.keypoints, ref.keypoints.numpy(), rtol=1e-12, atol=1e-9)


def test_a_different_seed_or_chunking_changes_the_samples(monkeypatch):
    """The comparison above can fail: the stream matters."""
    kps = noisy_instances(300, "coco", seed=3)
    layout, cfg = Layout.of(get_table("coco")), RefineConfig.for_schema("coco", m=4, d=3.0)
    base = refine_arrays(kps, layout, cfg, TorchUniforms(7))
    assert not np.array_equal(refine_arrays(kps, layout, cfg, TorchUniforms(8)).keypoints, base.keypoints)
    monkeypatch.setattr(refine_numpy, "_CHUNK", 128)
    assert not np.array_equal(refine_arrays(kps, layout, cfg, TorchUniforms(7)).keypoints, base.keypoints)


def test_absurd_points_and_lower_medians_match_the_reference():
    rng = np.random.default_rng(0)
    kps = rng.normal(0, 50.0, (400, 6, 3))
    kps[rng.random((400, 6)) < 0.1, 0] = 1e9 * rng.random()  # far points, in instances of 6 and fewer points
    present = rng.random((400, 6)) < 0.8  # odd and even counts: torch's median is the lower middle value
    for factor in (3.0, 100.0):
        expected = refine.absurd_points(torch.from_numpy(kps), torch.from_numpy(present), factor).numpy()
        assert np.array_equal(refine_numpy.absurd_points(kps, present, factor), expected)
        assert expected.any()
    kps = np.array([[[0.0, 0, 1], [2, 0, 1], [4, 0, 1], [10, 0, 1]]])
    assert refine_numpy._lower_nanmedian(kps[..., :2]).tolist() == [[2.0, 0.0]]  # numpy's median would say 3


def test_command_line_writes_the_references_results_without_importing_torch(tmp_path):
    kps = noisy_instances(200, "coco", seed=1)
    entries = [{"image_id": i, "category_id": 1, "keypoints": row, "score": 0.5}
               for i, row in enumerate(kps.reshape(len(kps), -1).tolist())]
    src, dst = tmp_path / "dets.json", tmp_path / "out.json"
    src.write_text(json.dumps(entries))
    options = ["--schema", "coco", "--d-unit", "relative", "--d", "0.02"]
    args = [str(src), "-o", str(dst), *options, "--seed", "3"]
    code = ("import sys\nfrom fashion_lib.refine_cli import main\n"
            f"code = main({args!r})\nprint(code, 'torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.stdout.split() == ["0", "False"], done.stderr
    expected, _ = refine_results(entries, "coco", generator=torch.Generator().manual_seed(3), d_unit="relative",
                                 d=0.02, absurd_factor=100.0)
    assert json.loads(dst.read_text()) == expected and expected != entries
    assert main([str(src), "-o", str(tmp_path / "other.json"), *options]) == 0
    assert json.loads((tmp_path / "other.json").read_text()) != expected  # seed 0: other samples
