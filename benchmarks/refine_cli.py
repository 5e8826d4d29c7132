"""Benchmark the refiner's command line (``python -m fashion_lib.refine``) against the cost of its file I/O.

Input: a COCO key-point results file of ``--instances`` person detections (100,000 by default, about 100 MB), made
from the real COCO excerpt's persons (``../shared/real-samples/coco``, or a fixed pose where it is absent), each
moved, scaled and rotated at random, with 2 px noise and a tenth of the points dropped (written ``0, 0, 0``).

The floor is a plain ``json.load`` of that file followed by ``json.dump`` of what it read, run as its own process:
no command that reads and rewrites the file can do less. The command runs as a subprocess too; for each the wall
time and the process's peak resident memory (``getrusage`` of the child) are printed, and the ratios (targets:
wall time <= 3x the floor, peak memory <= 5x the file's size). The file is made by a child process too: Linux
counts a parent's resident memory at the fork in its child's peak, so this process stays small (figures before
that change counted the generated results, about 375 MB, in every child). The first run of the command in a fresh
clone also compiles the CPU kernel (numba caches it), so the command runs once before it is timed. The command
imports no torch (:mod:`fashion_lib.refine_numpy`); the imports' own peak is printed beside the floor, with and
without torch.

Start-up: ``python -m fashion_lib.refine --help`` and ``python -c "import fashion_lib.refine"``, each timed as a
fresh process (the median of ``--repeats``), beside ``python -c pass``.

``--baseline CHECKOUT`` also times the command (and its start-up) of another checkout of the project, in the same
run, for a before/after comparison.

Run: ``python benchmarks/refine_cli.py [--instances 100000] [--repeats 3] [--keep DIR] [--baseline ../main]``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
REAL_COCO = ROOT.parent / "shared" / "real-samples" / "coco" / "test_coco.json"


def template_poses() -> np.ndarray:
    """(T, 17, 3) float64 persons with all 17 points labelled: the real excerpt's, or one fixed pose without it."""
    if REAL_COCO.is_file():
        anns = json.loads(REAL_COCO.read_text())["annotations"]
        poses = [np.asarray(a["keypoints"], dtype=np.float64).reshape(17, 3) for a in anns]
        full = [p for p in poses if (p[:, 2] > 0).all()]
        if full:
            return np.stack(full)
    # nose, eyes, ears, shoulders, elbows, wrists, hips, knees, ankles of a 200 px standing person
    xy = [(0, 0), (-4, -4), (4, -4), (-9, -2), (9, -2), (-22, 25), (22, 25), (-28, 60), (28, 60), (-30, 92),
          (30, 92), (-14, 100), (14, 100), (-15, 148), (15, 148), (-16, 196), (16, 196)]
    return np.array([[x, y, 2.0] for x, y in xy])[None]


def make_results(count: int, seed: int = 0) -> list[dict]:
    """``count`` COCO results entries: template persons under a random similarity, 2 px noise, 10 % dropped."""
    rng = np.random.default_rng(seed)
    poses = template_poses()
    base = poses[rng.integers(len(poses), size=count), :, :2]  # (B, 17, 2)
    base = base - base.mean(1, keepdims=True)
    angle = rng.uniform(-0.3, 0.3, count)
    rot = np.stack([np.stack([np.cos(angle), -np.sin(angle)], -1), np.stack([np.sin(angle), np.cos(angle)], -1)], -2)
    xy = np.einsum("bij,bkj->bki", rot * rng.uniform(0.5, 2.0, count)[:, None, None], base)
    xy += rng.uniform(150, 500, (count, 1, 2)) + rng.normal(0, 2.0, xy.shape)
    kps = np.concatenate([xy, np.ones((count, 17, 1))], -1)
    kps[rng.random((count, 17)) < 0.1] = 0.0
    flat = kps.reshape(count, -1).tolist()
    scores = rng.uniform(0.1, 1.0, count).tolist()
    return [{"image_id": int(i // 4), "category_id": 1, "keypoints": flat[i], "score": scores[i]} for i in range(count)]


def run_child(cmd: list[str], cwd: Path = ROOT) -> tuple[float, float]:
    """Run ``cmd`` in ``cwd`` (whose ``fashion_lib`` it then imports) to completion; its wall time (s) and peak
    resident memory (MB). A failure stops the benchmark."""
    env = {**os.environ, "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE"), "PYTHONPATH": str(cwd)}
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    out = proc.stdout.read().decode()
    proc.stdout.close()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{out}")
    return wall, usage.ru_maxrss / 1024.0  # ru_maxrss is in KB on Linux


def median_wall(cmd: list[str], repeats: int, cwd: Path = ROOT) -> float:
    return statistics.median(run_child(cmd, cwd)[0] for _ in range(repeats))


def time_command(label: str, command: list[str], repeats: int, cwd: Path, size_mb: float,
                 floor: tuple[float, float]) -> None:
    """Print the command's median wall time and peak memory, and their ratios to the floor and the file's size."""
    run_child(command, cwd)  # compiles and caches the CPU kernel on a fresh clone
    runs = [run_child(command, cwd) for _ in range(repeats)]
    wall, mem = statistics.median(w for w, _ in runs), max(m for _, m in runs)
    print(f"{label:<28} {wall:6.2f} s wall, peak {mem:6.0f} MB: {wall / floor[0]:.2f}x the floor's wall time "
          f"(target <= 3x), {mem / size_mb:.2f}x the file's size (target <= 5x)")


def time_start_up(label: str, repeats: int, cwd: Path) -> None:
    py = sys.executable
    helps = median_wall([py, "-m", "fashion_lib.refine", "--help"], repeats, cwd)
    imports = median_wall([py, "-c", "import fashion_lib.refine"], repeats, cwd)
    print(f"{label:<28} python -m fashion_lib.refine --help {helps:.2f} s; import fashion_lib.refine {imports:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instances", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="write the files here (default: a temporary folder, removed)")
    parser.add_argument("--args", default="", help="extra options for the command, e.g. '--d-unit relative'")
    parser.add_argument("--baseline", type=Path, help="another checkout whose command is timed too")
    parser.add_argument("--make-file", type=Path, help=argparse.SUPPRESS)  # write the input file only (a child)
    args = parser.parse_args()
    if args.make_file:
        with open(args.make_file, "w") as f:
            json.dump(make_results(args.instances), f)
        return
    py = sys.executable
    print(f"python {platform.python_version()}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'PASSIVE')}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        src, dst = folder / "results.json", folder / "refined.json"
        # made by a child process: a child's peak memory (getrusage) counts the parent's at the fork, so the parent
        # must never hold the results itself
        subprocess.run([py, __file__, "--instances", str(args.instances), "--make-file", str(src)], check=True)
        size_mb = src.stat().st_size / 2**20
        print(f"input: {args.instances:,} COCO person detections, {size_mb:.0f} MB ({src})")

        floor = [py, "-c", "import json, sys\nwith open(sys.argv[1]) as f: d = json.load(f)\n"
                 "with open(sys.argv[2], 'w') as f: json.dump(d, f)", str(src), str(folder / "copy.json")]
        command = [py, "-m", "fashion_lib.refine", str(src), "-o", str(dst), "--schema", "coco", *args.args.split()]
        floor_runs = [run_child(floor) for _ in range(args.repeats)]
        f_wall, f_mem = statistics.median(w for w, _ in floor_runs), max(m for _, m in floor_runs)
        light = run_child([py, "-c", "import fashion_lib.refine_cli, fashion_lib.refine_cpu"])[1]
        heavy = run_child([py, "-c", "import torch, numba, fashion_lib.refine_cpu"])[1]
        print(f"json.load + json.dump:       {f_wall:6.2f} s wall, peak {f_mem:6.0f} MB (median of {args.repeats}); "
              f"importing the command's modules and numba alone: peak {light:.0f} MB (with torch: {heavy:.0f} MB)")
        print(f"command: {' '.join(command[1:])}")
        time_command("this checkout:", command, args.repeats, ROOT, size_mb, (f_wall, f_mem))
        if args.baseline:
            time_command(f"{args.baseline}:", command, args.repeats, args.baseline.resolve(), size_mb, (f_wall, f_mem))
    print(f"start-up, fresh processes (median of {args.repeats}): python -c pass "
          f"{median_wall([py, '-c', 'pass'], args.repeats):.2f} s")
    time_start_up("this checkout:", args.repeats, ROOT)
    if args.baseline:
        time_start_up(f"{args.baseline}:", args.repeats, args.baseline.resolve())
    if not math.isfinite(f_wall):
        raise SystemExit("timing failed")


if __name__ == "__main__":
    main()
