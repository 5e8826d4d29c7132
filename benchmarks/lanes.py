"""Benchmark the pipeline's lanes: two notebooks training Keypoint R-CNN side by side, with and without the
per-kernel thread variables (``fashion_lib.pipeline.kernel_thread_env``).

Each of the two notebooks (one per lane) runs the refiner's CPU kernel on 2,000 random instances, then trains
``--steps`` steps of the cpu preset (128 px, batch 8, bf16 autocast where the CPU has it) and reports its images/s
(start-up included). "env" is the pipeline as shipped; "no env" empties ``THREAD_ENV``, leaving only
``torch.set_num_threads`` in the kernel: after the numba kernel has run, PyTorch then runs two OpenMP threads again
and the two lanes' threads share the cores. Both variants run in this one invocation, so their ratio is measured
under the same load.

Run: ``python benchmarks/lanes.py [--steps 60]`` (about 3 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from fashion_lib import pipeline

ROOT = Path(__file__).resolve().parents[1]
CELL = '''import os, time, torch
from fashion_lib import provenance
provenance.start(run_info)

# %%
from fashion_lib.experiments import keypoints as kx
from fashion_lib.keypoints import FASHIONAI
from fashion_lib.refine import refine_symmetric
kp = torch.rand(2000, 24, 3, dtype=torch.float64) * 100
refine_symmetric(kp, FASHIONAI, generator=torch.Generator().manual_seed(0))
setup = kx.KeypointSetup(schema="fashionai", preset="cpu", image_size=128, train_steps={steps}, batch_size=8,
                         amp=True, val_images=4)
t = time.time()
kx.train_detector(setup, "keypoint_rcnn", {seed}, progress=False)
with open({out!r}, "a") as f:
    f.write(f"{{8 * {steps} / (time.time() - t):.2f}}\\n")
'''


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=60, help="training steps per notebook")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "repo"
        (root / "notebooks" / "profiles").mkdir(parents=True)
        shutil.copy(ROOT / "pyproject.toml", root)
        shutil.copytree(ROOT / "fashion_lib", root / "fashion_lib", ignore=shutil.ignore_patterns("__pycache__"))
        (root / "notebooks" / "profiles" / "smoke.yaml").write_text("{}\n")
        results = {}
        for variant, env in (("env", pipeline.THREAD_ENV), ("no env", ())):
            out = Path(tmp) / f"{variant.replace(' ', '_')}.txt"
            for name, seed in (("01_a", 0), ("02_b", 1)):
                (root / "notebooks" / f"{name}.py").write_text(
                    '# %% tags=["parameters"]\nrun_info = {}\n\n# %%\n' +
                    CELL.format(steps=args.steps, seed=seed, out=str(out)))
            pipeline.LANES, pipeline.THREAD_ENV = (("01_a",), ("02_b",)), env
            try:
                pipeline.run("smoke", root=root, cache_dir=Path(tmp) / f"cache-{variant}", build=False, jobs=2,
                             runs_dir=Path(tmp) / f"runs-{variant}")
            except FileNotFoundError:  # no _toc.yml in this bare checkout: the provenance page is not written
                pass
            results[variant] = [float(x) for x in out.read_text().split()]
    for variant, rates in results.items():
        print(f"{variant:7s}: images/s per lane {', '.join(f'{r:.1f}' for r in rates)}")
    ratio = sum(results["env"]) / sum(results["no env"])
    print(f"two lanes together, env / no env: {ratio:.2f}x")


if __name__ == "__main__":
    main()
