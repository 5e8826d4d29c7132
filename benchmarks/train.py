"""Benchmark the key-point detectors: training and inference images/s and peak memory, beside plain loops.

For each detector configuration (the ``cpu`` presets of Keypoint R-CNN and CPN, per schema; on CUDA also the
``gpu`` presets, with and without bf16 autocast) two variants run the same batches:

- **ours**: the model of :func:`~fashion_lib.models.keypoint_rcnn.build_keypoint_rcnn` /
  :func:`~fashion_lib.models.cpn.build_cpn`, trained through its own forward (targets as loaders give them) and
  run through :func:`~fashion_lib.models.detector.predict` (chunking, conversion to the shared format, CPU copy);
- **plain**: for Keypoint R-CNN the same torchvision ``KeypointRCNN`` with torchvision's own key-point predictor,
  trained and called directly (``model(images, targets)`` / ``model(images)`` under ``no_grad``); for CPN the bare
  network on pre-cut crops with a plain MSE to pre-computed Gaussian targets and an arg-max decode (no crop,
  jitter, target building, OHKM or sub-pixel decoding).

The training loop is the minimal one (forward, sum of the loss dict, backward, AdamW step); the engine's own
overhead is measured by ``benchmarks/engine.py``. Each (configuration, variant) runs in a fresh process, so its
peak resident memory (``ru_maxrss``; on CUDA also ``max_memory_allocated``) is its own; variants alternate
(ours, plain, ours, ...) so machine load hits both alike, and each figure is the median over ``--repeats``
processes of the median step time after ``--warmup`` steps. The synthetic data's rate (items/s rendered in one
process) is printed beside the training rate: with ``num_workers = 0`` the data's share of a step is
``train rate / data rate``. Device, versions, threads and the load average before and after are recorded.

Workers run with ``OMP_WAIT_POLICY=PASSIVE`` by default: on this shared 2-core machine, OpenMP threads that spin
while waiting made a Keypoint R-CNN step ~5x slower whenever other processes loaded the cores (1.1 against 5.0
images/s at load average 4.5; one thread: 5.9), which drowned every comparison in noise.

Run: ``python benchmarks/train.py [--schemas fashionai coco] [--steps 5] [--warmup 2] [--repeats 2]
[--batch-size 8] [--threads 2]``; on CUDA ``--gpu-batch-size 4 --gpu-image-size 800``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

import torch
import torchvision

from fashion_lib.models.cpn import CPNConfig, build_cpn, crop_boxes, crop_images, gaussian_heatmaps, image_to_crop
from fashion_lib.models.detector import TopDownDetector, predict
from fashion_lib.models.keypoint_rcnn import KeypointRCNNConfig, build_keypoint_rcnn, detection_target
from fashion_lib.provenance import device_description
from fashion_lib.synthetic import SyntheticGarments, SyntheticPeople, WorldConfig


def dataset(schema: str, image_size: int, n: int) -> torch.utils.data.Dataset:
    world = WorldConfig(image_size=image_size)
    return SyntheticGarments(world, n, seed=0) if schema == "fashionai" else SyntheticPeople(world, n, seed=0)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_steps(step, n_warmup: int, n_steps: int, device: torch.device) -> float:
    """Median seconds of ``step(i)`` over ``n_steps`` calls after ``n_warmup``."""
    times = []
    for i in range(n_warmup + n_steps):
        sync(device)
        t0 = time.perf_counter()
        step(i)
        sync(device)
        if i >= n_warmup:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


# ------------------------------------------------------------------------------------------------ worker


def keypoint_rcnn_job(job: dict, batches: list, device: torch.device, autocast) -> tuple[float, float]:
    overrides = {k: tuple(v) if isinstance(v, list) else v for k, v in job.get("overrides", {}).items()}
    config = getattr(KeypointRCNNConfig, job["preset"])(job["schema"], **overrides)
    model = build_keypoint_rcnn(config)
    if job["variant"] == "plain":
        from torchvision.models.detection.keypoint_rcnn import KeypointRCNNPredictor

        model.roi_heads.keypoint_predictor = KeypointRCNNPredictor(config.keypoint_head_channels,
                                                                   config.num_keypoints)  # fmt: skip
    model.to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    if job["variant"] == "ours":
        data = [([im.to(device) for im in ims], [{k: v.to(device) if torch.is_tensor(v) else v for k, v in t.items()}
                                                 for t in tgs]) for ims, tgs in batches]  # fmt: skip
    else:
        data = [([im.to(device) for im in ims], [{k: v.to(device) for k, v in detection_target(t).items()}
                                                 for t in tgs]) for ims, tgs in batches]  # fmt: skip
    if job["variant"] == "ours" and job["schema"] == "coco":
        data = [(ims, [detection_target(t) for t in tgs]) for ims, tgs in data]  # crowd regions out, as loaders must

    def train_step(i: int) -> None:
        images, targets = data[i % len(data)]
        with autocast():
            losses = model(images, targets)
        total = sum(losses.values())
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()

    t_train = timed_steps(train_step, job["warmup"], job["steps"], device)
    model.eval()
    images = [im for ims, _ in batches for im in ims][: job["batch_size"]]

    def infer_step(i: int) -> None:
        with autocast():
            if job["variant"] == "ours":
                predict(model, images, batch_size=job["batch_size"], device=device)
            else:
                with torch.no_grad():
                    out = model([im.to(device) for im in images])
                [{k: v.cpu() for k, v in d.items()} for d in out]

    t_infer = timed_steps(infer_step, 1, job["steps"], device)
    return t_train, t_infer


def cpn_job(job: dict, batches: list, device: torch.device, autocast) -> tuple[float, float]:
    config = getattr(CPNConfig, job["preset"])(job["schema"])
    model = build_cpn(config).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    data = [([im.to(device) for im in ims], [{k: v.to(device) if torch.is_tensor(v) else v for k, v in t.items()}
                                             for t in tgs]) for ims, tgs in batches]  # fmt: skip
    plain = job["variant"] == "plain"
    if plain:  # pre-cut crops and pre-computed targets: only the network and an MSE remain
        pre = []
        for images, targets in data:
            boxes = torch.cat([detection_target(t)["boxes"] for t in targets])
            keypoints = torch.cat([detection_target(t)["keypoints"] for t in targets])
            index = torch.cat([torch.full((len(detection_target(t)["boxes"]),), i) for i, t in enumerate(targets)])
            rects = crop_boxes(boxes, config.input_size, config.box_scale)
            crops = (crop_images(images, index.to(device), rects, config.input_size) - model.mean) / model.std
            xy = image_to_crop(keypoints[..., :2], rects, config.input_size) / config.heatmap_stride
            maps = [gaussian_heatmaps(xy, config.heatmap_size, s) for s in config.sigmas]
            pre.append((crops, maps))

    def train_step(i: int) -> None:
        with autocast():
            if plain:
                crops, maps = pre[i % len(pre)]
                global_maps, refine = model.forward_heatmaps(crops)
                total = sum(((g.float() - t) ** 2).mean() for g, t in zip(global_maps, maps, strict=True))
                total = total + ((refine.float() - maps[0]) ** 2).mean()
            else:
                images, targets = data[i % len(data)]
                total = sum(model(images, targets).values())
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()

    t_train = timed_steps(train_step, job["warmup"], job["steps"], device)
    model.eval()
    images, targets = data[0]
    boxes = [t["boxes"] for t in targets]

    def infer_step(i: int) -> None:
        with autocast(), torch.no_grad():
            if plain:
                _, refine = model.forward_heatmaps(pre[0][0])
                refine.flatten(2).argmax(-1).cpu()
            else:
                predict(model, images, boxes=boxes, batch_size=job["batch_size"], device=device)

    t_infer = timed_steps(infer_step, 1, job["steps"], device)
    return t_train, t_infer


def top_down_job(job: dict, batches: list, device: torch.device, autocast) -> tuple[float, float]:
    detector = build_keypoint_rcnn(getattr(KeypointRCNNConfig, job["preset"])(job["schema"])).to(device)
    cpn = build_cpn(getattr(CPNConfig, job["preset"])(job["schema"])).to(device)
    model = TopDownDetector(detector, cpn, max_instances=job.get("max_instances", 5)).eval()
    images = [im for ims, _ in batches for im in ims][: job["batch_size"]]

    def infer_step(i: int) -> None:
        with autocast():
            predict(model, images, batch_size=job["batch_size"], device=device)

    return float("nan"), timed_steps(infer_step, 1, job["steps"], device)


def worker(job: dict) -> dict:
    torch.set_num_threads(job["threads"])
    torch.manual_seed(0)
    device = torch.device(job["device"])
    ds = dataset(job["schema"], job["image_size"], job["batch_size"] * 2)
    items = [ds[i] for i in range(len(ds))]
    b = job["batch_size"]
    batches = [([im for im, _ in items[j:j + b]], [t for _, t in items[j:j + b]]) for j in range(0, len(items), b)]
    if job["amp"]:
        def autocast():
            return torch.autocast("cuda", dtype=torch.bfloat16)
    else:
        import contextlib

        autocast = contextlib.nullcontext
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    run = {"keypoint_rcnn": keypoint_rcnn_job, "cpn": cpn_job, "top_down": top_down_job}[job["model"]]
    t_train, t_infer = run(job, batches, device, autocast)
    out = {"train_img_s": b / t_train, "infer_img_s": b / t_infer,
           "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}  # fmt: skip
    if device.type == "cuda":
        out["cuda_max_alloc_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    return out


# ------------------------------------------------------------------------------------------------ driver


def run_job(job: dict, wait_policy: str) -> dict:
    env = dict(os.environ)
    if wait_policy != "default":
        env["OMP_WAIT_POLICY"] = wait_policy.upper()
    proc = subprocess.run([sys.executable, __file__, "--worker", json.dumps(job)], capture_output=True, text=True,
                          check=False, env=env)  # fmt: skip
    if proc.returncode:
        raise RuntimeError(f"worker {job} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def data_rate(schema: str, image_size: int, n: int) -> float:
    ds = dataset(schema, image_size, n)
    ds[0]
    t0 = time.perf_counter()
    for i in range(1, n):
        ds[i]
    return (n - 1) / (time.perf_counter() - t0)


def fmt(x: float, width: int = 6) -> str:
    return f"{'-':>{width}}" if math.isnan(x) else f"{x:{width}.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--schemas", nargs="+", default=["fashionai", "coco"], choices=["fashionai", "coco"])
    parser.add_argument("--models", nargs="+", default=["keypoint_rcnn", "cpn", "top_down"],
                        choices=["keypoint_rcnn", "cpn", "top_down"])
    parser.add_argument("--steps", type=int, default=5, help="timed steps per process")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--repeats", type=int, default=2, help="processes per (configuration, variant)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--omp-wait-policy", choices=["default", "passive", "active"], default="passive",
                        help="OMP_WAIT_POLICY of the worker processes (passive: idle threads sleep at once)")
    parser.add_argument("--gpu-batch-size", type=int, default=4)
    parser.add_argument("--gpu-image-size", type=int, default=800)
    parser.add_argument("--no-gpu-presets", action="store_true", help="on CUDA, time only the cpu presets")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return

    cuda = torch.cuda.is_available()
    print(f"device: {device_description()}; python {platform.python_version()}, torch {torch.__version__}, "
          f"torchvision {torchvision.__version__}; threads {args.threads}, OMP_WAIT_POLICY {args.omp_wait_policy}; "
          f"load average {os.getloadavg()}")
    settings = [("cpu", "cuda" if cuda else "cpu", False, args.batch_size, 128)]
    if cuda and not args.no_gpu_presets:
        settings += [("gpu", "cuda", amp, args.gpu_batch_size, args.gpu_image_size) for amp in (False, True)]
    print(f"steps {args.steps} after {args.warmup} warm-up, median of {args.repeats} processes per figure; "
          "ratio = ours / plain images/s (>= 1: ours no slower)\n")
    header = (f"{'model':14} {'preset':6} {'schema':9} {'amp':4} {'px':>4} {'batch':>5} | {'train img/s':>17} "
              f"{'ratio':>5} | {'infer img/s':>17} {'ratio':>5} | {'peak RSS MiB':>13} {'CUDA MiB':>8}")
    print(header + "\n" + "-" * len(header))
    rates: dict[tuple, float] = {}
    for preset, device, amp, batch, size in settings:
        for schema in args.schemas:
            for model in args.models:
                variants = ["ours"] if model == "top_down" else ["ours", "plain"]
                results: dict[str, list[dict]] = {v: [] for v in variants}
                for _ in range(args.repeats):
                    for variant in variants:  # alternate, so load hits both alike
                        job = dict(model=model, preset=preset, schema=schema, variant=variant, device=device, amp=amp,
                                   batch_size=batch, image_size=size, steps=args.steps, warmup=args.warmup,
                                   threads=args.threads)  # fmt: skip
                        if preset == "gpu":  # time Keypoint R-CNN at exactly the image size (no multi-scale draw)
                            job["overrides"] = {"min_size": [size], "max_size": max(1333, size)}
                        results[variant].append(run_job(job, args.omp_wait_policy))
                med = {v: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for v, rs in results.items()}
                ours, plain = med["ours"], med.get("plain", {})
                rates[(preset, amp, schema, model)] = ours["train_img_s"]
                nan = float("nan")
                print(f"{model:14} {preset:6} {schema:9} {'bf16' if amp else '-':4} {size:4d} {batch:5d} | "
                      f"{fmt(ours['train_img_s'])} / {fmt(plain.get('train_img_s', nan))} "
                      f"{fmt(ours['train_img_s'] / plain.get('train_img_s', nan), 5)} | "
                      f"{fmt(ours['infer_img_s'])} / {fmt(plain.get('infer_img_s', nan))} "
                      f"{fmt(ours['infer_img_s'] / plain.get('infer_img_s', nan), 5)} | "
                      f"{ours['peak_rss_mib']:5.0f} / {plain.get('peak_rss_mib', nan):5.0f} "
                      f"{ours.get('cuda_max_alloc_mib', nan):8.0f}", flush=True)  # fmt: skip
    print("\nsynthetic data (one process, render + tensor) beside the training step (ours):")
    for preset, _, amp, _, size in settings:
        for schema in args.schemas:
            rate = data_rate(schema, size, 33 if size <= 256 else 9)
            train_rates = ", ".join(f"{m} {rates[(preset, amp, schema, m)]:.1f}" for m in args.models
                                    if not math.isnan(rates[(preset, amp, schema, m)]))  # fmt: skip
            print(f"  {schema:9} {size:4d} px{' bf16' if amp else ''}: data {rate:7.1f} items/s; train img/s: "
                  f"{train_rates}")
    print(f"\nload average at the end {os.getloadavg()}")


if __name__ == "__main__":
    main()
