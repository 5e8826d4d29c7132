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

The training loop is the minimal one (forward, sum of the loss dict, backward, AdamW step) on pre-built batches.
The ``loop`` model compares whole training steps the way the notebooks train Keypoint R-CNN, on the synthetic
training set rendered (and scale-and-crop augmented) on the fly: **engine** is :func:`fashion_lib.engine.train` with
the notebooks' settings (:func:`fashion_lib.experiments.keypoints.train_config`; its sampler, finiteness check,
gradient clipping, scheduler, metrics and checkpoint), **plain** a torchvision-style loop over a ``DataLoader`` of
the same data set (forward, sum, backward, AdamW with its defaults). Both are timed the same way: the period between
the starts of consecutive forward passes, so data, backward, optimiser and every per-step cost of the loop count.
``--baseline-root`` adds **before**: the engine variant run with another checkout's ``fashion_lib`` (for example
the commit before a speed change), in the same run. ``--profile`` prints where one step of the ``cpu`` preset's
training goes (data, each forward part, the losses, backward by operator, optimiser). Each (configuration, variant)
runs in a fresh process, so its peak resident memory (``ru_maxrss``; on CUDA also ``max_memory_allocated``) is its
own; variants alternate (ours, plain, ours, ...) so machine load hits both alike, and each figure is the median over
``--repeats`` processes of the median step time after ``--warmup`` steps. The synthetic data's rate (items/s
rendered in one process) is printed beside the training rate: with ``num_workers = 0`` the data's share of a step is
``train rate / data rate``. Device, versions, threads and the load average before and after are recorded.

Workers run with ``OMP_WAIT_POLICY=PASSIVE`` by default: on this shared 2-core machine, OpenMP threads that spin
while waiting made a Keypoint R-CNN step ~5x slower whenever other processes loaded the cores (1.1 against 5.0
images/s at load average 4.5; one thread: 5.9), which drowned every comparison in noise.

Run: ``python benchmarks/train.py [--schemas fashionai coco] [--models keypoint_rcnn cpn top_down loop] [--steps 5]
[--warmup 2] [--repeats 2] [--batch-size 8] [--threads 2] [--baseline-root DIR] [--profile]``; on CUDA
``--gpu-batch-size 4 --gpu-image-size 800``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torchvision

from fashion_lib.crops import aspect_boxes, crop_and_resize, points_to_crop
from fashion_lib.data.transforms import collate
from fashion_lib.models.cpn import CPNConfig, build_cpn, gaussian_heatmaps
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
                                                                   config.num_keypoints)
    model.to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    if job["variant"] == "ours":
        data = [([im.to(device) for im in ims], [{k: v.to(device) if torch.is_tensor(v) else v for k, v in t.items()}
                                                 for t in tgs]) for ims, tgs in batches]
    else:
        data = [([im.to(device) for im in ims], [{k: v.to(device) for k, v in detection_target(t).items()}
                                                 for t in tgs]) for ims, tgs in batches]
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
                                             for t in tgs]) for ims, tgs in batches]
    plain = job["variant"] == "plain"
    if plain:  # pre-cut crops and pre-computed targets: only the network and an MSE remain
        pre = []
        for images, targets in data:
            boxes = torch.cat([detection_target(t)["boxes"] for t in targets])
            keypoints = torch.cat([detection_target(t)["keypoints"] for t in targets])
            index = torch.cat([torch.full((len(detection_target(t)["boxes"]),), i) for i, t in enumerate(targets)])
            rects = aspect_boxes(boxes, config.input_size, scale=config.box_scale, min_side=1.0)
            crops = crop_and_resize(images, rects, config.input_size, image_index=index.to(device),
                                    sampling_ratio=config.sampling_ratio).images
            crops = (crops - model.mean) / model.std
            xy = points_to_crop(keypoints[..., :2], rects, config.input_size) / config.heatmap_stride
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



def loop_setup(job: dict, steps: int):
    """The notebooks' Keypoint R-CNN setup for ``job`` (its model, training set and training settings)."""
    from fashion_lib.experiments import keypoints as kx
    from fashion_lib.experiments import seeded_build

    fields = {f.name for f in dataclasses.fields(kx.KeypointSetup)}
    extra = {"scale_crop": job["scale_crop"]} if "scale_crop" in fields else {}  # a baseline may predate it
    setup = kx.KeypointSetup(schema=job["schema"], image_size=job["image_size"], batch_size=job["batch_size"],
                             train_steps=steps, **extra)
    config = kx.detector_configs(setup)[0]
    config = dataclasses.replace(config, **{k: tuple(v) if isinstance(v, list) else v
                                            for k, v in job.get("overrides", {}).items()})
    model = seeded_build(build_keypoint_rcnn, config, 0)
    return setup, model, kx.training_set(setup, 0, steps), kx.train_config(setup, 0, steps)


def loop_job(job: dict, device: torch.device) -> float:
    """Median seconds per training step, engine or plain loop, data rendered on the fly."""
    steps = job["warmup"] + job["steps"]
    setup, model, data, train_config = loop_setup(job, steps)
    starts: list[float] = []
    model.register_forward_pre_hook(lambda *_: starts.append(time.perf_counter()))
    if job["variant"] in ("engine", "before"):
        from fashion_lib.engine import train

        with tempfile.TemporaryDirectory() as run_dir:
            train(model, data, dataclasses.replace(train_config, device=device.type), run_dir, progress=False)
            starts.append(time.perf_counter())  # the last step ends with the final checkpoint
    else:
        model.to(device).train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=setup.lr)
        loader = torch.utils.data.DataLoader(data, batch_size=setup.batch_size, shuffle=True, collate_fn=collate,
                                             generator=torch.Generator().manual_seed(0))
        for _, (images, targets) in zip(range(steps), loader, strict=False):
            images = [im.to(device) for im in images]
            targets = [{k: v.to(device) for k, v in t.items()} for t in targets]
            total = sum(model(images, targets).values())
            optimizer.zero_grad(set_to_none=True)
            total.backward()
            optimizer.step()
        sync(device)
        starts.append(time.perf_counter())
    periods = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    return statistics.median(periods[job["warmup"]:])


def profile_job(job: dict, device: torch.device) -> list[tuple[str, float]]:
    """Milliseconds per step of each part of a plain training step of the notebooks' Keypoint R-CNN, and the
    engine's step period beside the plain loop's."""
    from torchvision.models.detection import roi_heads as tv_roi_heads

    steps = job["warmup"] + job["steps"]
    setup, model, data, _ = loop_setup(job, steps)
    model.to(device).train()
    spent: dict[str, float] = {}

    def timed(name: str, fn):
        def wrapper(*args, **kwargs):
            sync(device)
            t0 = time.perf_counter()
            out = fn(*args, **kwargs)
            sync(device)
            spent[name] = spent.get(name, 0.0) + time.perf_counter() - t0
            return out
        return wrapper

    rh = model.roi_heads
    parts = {"resize + normalise (transform)": model.transform, "trunk (ResNet)": model.backbone.body,
             "feature pyramid": model.backbone.fpn, "RPN (with its loss)": model.rpn,
             "box RoIAlign": rh.box_roi_pool, "box head": rh.box_head, "box predictor": rh.box_predictor,
             "key-point RoIAlign": rh.keypoint_roi_pool, "key-point head": rh.keypoint_head,
             "key-point predictor": rh.keypoint_predictor, "RoI heads, total": rh}
    for name, module in parts.items():
        module.forward = timed(name, module.forward)
    for name in ("fastrcnn_loss", "keypointrcnn_loss"):  # module globals, looked up at call time
        setattr(tv_roi_heads, name, timed(f"loss: {name}", getattr(tv_roi_heads, name)))
    optimizer = torch.optim.AdamW(model.parameters(), lr=setup.lr)
    items = iter(range(len(data)))
    batch = setup.batch_size
    for step in range(steps):
        if step == job["warmup"]:
            spent.clear()
        t0 = time.perf_counter()
        images, targets = collate([data[next(items)] for _ in range(batch)])
        t1 = time.perf_counter()
        total = sum(model(images, targets).values())
        t2 = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        t3 = time.perf_counter()
        optimizer.step()
        t4 = time.perf_counter()
        for name, dt in (("data (render, augment, collate)", t1 - t0), ("forward, total", t2 - t1),
                         ("backward", t3 - t2), ("optimiser (AdamW)", t4 - t3), ("step, total", t4 - t0)):
            spent[name] = spent.get(name, 0.0) + dt
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:  # operators of the backward pass
        images, targets = collate([data[i] for i in range(batch)])
        total = sum(model(images, targets).values())
        optimizer.zero_grad(set_to_none=True)
        total.backward()
    ops = sorted(((e.key, e.self_cpu_time_total / 1e3) for e in prof.key_averages()
                  if "backward" in e.key.lower() and "autograd::engine" not in e.key), key=lambda kv: -kv[1])
    rows = [(name, 1e3 * t / job["steps"]) for name, t in spent.items()]
    return rows + [(f"backward op (one step): {name}", ms) for name, ms in ops[:6]]


def worker(job: dict) -> dict:
    torch.set_num_threads(job["threads"])
    torch.manual_seed(0)
    device = torch.device(job["device"])
    if job["model"] == "loop":
        t_step = loop_job(job, device)
        return {"train_img_s": job["batch_size"] / t_step, "infer_img_s": math.nan,
                "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if job["model"] == "profile":
        return {"rows": profile_job(job, device)}
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
           "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if device.type == "cuda":
        out["cuda_max_alloc_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    return out


# ------------------------------------------------------------------------------------------------ driver


def run_job(job: dict, wait_policy: str, root: str | None = None) -> dict:
    """Run ``job`` in a fresh process importing ``fashion_lib`` from ``root`` (default: this checkout)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(root or Path(__file__).resolve().parents[1]),
                                         *filter(None, [os.environ.get("PYTHONPATH")])])
    if wait_policy != "default":
        env["OMP_WAIT_POLICY"] = wait_policy.upper()
    proc = subprocess.run([sys.executable, __file__, "--worker", json.dumps(job)], capture_output=True, text=True,
                          check=False, env=env)
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


def profile(args: argparse.Namespace) -> None:
    """Print where one training step of the cpu preset's Keypoint R-CNN goes, per schema."""
    print(f"device: {device_description()}; torch {torch.__version__}, threads {args.threads}; load average "
          f"{os.getloadavg()}; batch {args.batch_size}, 128 px, mean of {args.steps} steps after {args.warmup}; "
          f"plain loop with per-part timers (forward parts nest: 'RoI heads, total' holds the box and key-point "
          f"parts and both losses)")
    for schema in args.schemas:
        job = dict(model="profile", schema=schema, variant="plain", device="cpu", amp=False, preset="cpu",
                   batch_size=args.batch_size, image_size=128, steps=args.steps, warmup=args.warmup,
                   threads=args.threads, scale_crop=not args.no_scale_crop)
        rows = run_job(job, args.omp_wait_policy)["rows"]
        step = dict(rows)["step, total"]
        print(f"\n{schema}: {step:.0f} ms per step = {args.batch_size / step * 1e3:.1f} images/s")
        for name, ms in rows:
            print(f"  {name:58} {ms:8.1f} ms  {100 * ms / step:5.1f} %")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--schemas", nargs="+", default=["fashionai", "coco"], choices=["fashionai", "coco"])
    parser.add_argument("--models", nargs="+", default=["keypoint_rcnn", "cpn", "top_down", "loop"],
                        choices=["keypoint_rcnn", "cpn", "top_down", "loop"],
                        help="loop: the engine's whole training step beside a plain loop (cpu preset only)")
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
    parser.add_argument("--baseline-root", default=None,
                        help="loop: also time the engine with the fashion_lib of this checkout (row 'before')")
    parser.add_argument("--no-scale-crop", action="store_true", help="loop: train without scale/crop augmentation")
    parser.add_argument("--profile", action="store_true",
                        help="print where a cpu-preset Keypoint R-CNN training step goes (per schema), then stop")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return
    if args.profile:
        profile(args)
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
                if model == "loop" and preset != "cpu":
                    continue
                variants = {"top_down": ["ours"], "loop": ["engine", "plain"] + ["before"] * bool(args.baseline_root)
                            }.get(model, ["ours", "plain"])
                results: dict[str, list[dict]] = {v: [] for v in variants}
                for _ in range(args.repeats):
                    for variant in variants:  # alternate, so load hits both alike
                        job = dict(model=model, preset=preset, schema=schema, variant=variant, device=device, amp=amp,
                                   batch_size=batch, image_size=size, steps=args.steps, warmup=args.warmup,
                                   threads=args.threads, scale_crop=not args.no_scale_crop)
                        if preset == "gpu":  # time Keypoint R-CNN at exactly the image size (no multi-scale draw)
                            job["overrides"] = {"min_size": [size], "max_size": max(1333, size)}
                        root = args.baseline_root if variant == "before" else None
                        results[variant].append(run_job(job, args.omp_wait_policy, root))
                med = {v: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for v, rs in results.items()}
                ours, plain = med.get("ours", med.get("engine")), med.get("plain", {})
                rates[(preset, amp, schema, model)] = ours["train_img_s"]
                nan = float("nan")
                if "before" in med:
                    before = med["before"]
                    print(f"{'loop (before)':14} {preset:6} {schema:9} {'-':4} {size:4d} {batch:5d} | "
                          f"{fmt(before['train_img_s'])} / {fmt(plain['train_img_s'])} "
                          f"{fmt(before['train_img_s'] / plain['train_img_s'], 5)} | after / before "
                          f"{ours['train_img_s'] / before['train_img_s']:.2f}", flush=True)
                print(f"{model:14} {preset:6} {schema:9} {'bf16' if amp else '-':4} {size:4d} {batch:5d} | "
                      f"{fmt(ours['train_img_s'])} / {fmt(plain.get('train_img_s', nan))} "
                      f"{fmt(ours['train_img_s'] / plain.get('train_img_s', nan), 5)} | "
                      f"{fmt(ours['infer_img_s'])} / {fmt(plain.get('infer_img_s', nan))} "
                      f"{fmt(ours['infer_img_s'] / plain.get('infer_img_s', nan), 5)} | "
                      f"{ours['peak_rss_mib']:5.0f} / {plain.get('peak_rss_mib', nan):5.0f} "
                      f"{ours.get('cuda_max_alloc_mib', nan):8.0f}", flush=True)
    if "loop" in args.models:
        print("loop: engine (train(), the notebooks' settings) / plain loop, whole steps with on-the-fly data"
              f"{'' if args.no_scale_crop else ' and scale/crop augmentation'}; 'before': the engine of "
              f"{args.baseline_root}")
    print("\nsynthetic data (one process, render + tensor) beside the training step (ours):")
    for preset, _, amp, _, size in settings:
        for schema in args.schemas:
            rate = data_rate(schema, size, 33 if size <= 256 else 9)
            train_rates = ", ".join(f"{m} {rates[(preset, amp, schema, m)]:.1f}" for m in args.models
                                    if not math.isnan(rates.get((preset, amp, schema, m), math.nan)))
            print(f"  {schema:9} {size:4d} px{' bf16' if amp else ''}: data {rate:7.1f} items/s; train img/s: "
                  f"{train_rates}")
    print(f"\nload average at the end {os.getloadavg()}")


if __name__ == "__main__":
    main()
