"""Benchmark the attribute networks: training images/s per backbone, and the crop step beside the network step.

Three tables, all on the device of this run (CUDA when available, else the CPU):

1. **Training throughput per backbone** of the ``cpu`` profile's candidates at their input size: one full
   training step of the joint length network (:class:`fashion_lib.models.attributes.FashionAIRecognizer`:
   Normal-crop from the key points, forward, the "maybe" loss, backward, AdamW step) on a batch of pre-rendered
   synthetic garments. Reported as images/s and as the speed ratio to the cpu profile's own trunk (the baseline,
   timed in the same run; backbones alternate so that machine load hits all alike).
2. **The gpu profile's backbones** at the paper's sizes (NASNet-A Large at 399 px, Inception-ResNet-v2 at 299 px).
   With CUDA: the same full training step at ``--gpu-batch``. Without: one training step at batch 1 and no
   warm-up, as a smoke timing only: a CPU cannot train them.
3. **Crop step vs network step**: the time of :meth:`crop_inputs` (Normal- and Neck-crop boxes from the key
   points, then one batched ``roi_align``) beside the network's forward/backward/step on the cropped batch, and
   the batched crop against a per-instance loop (boxes and ``crop_and_resize`` one instance at a time, the
   baseline).

Each figure is the median of ``--repeats`` timings after one warm-up; CUDA work is synchronised before a clock
is read.

Run: ``python benchmarks/attributes.py [--batch 32] [--repeats 5] [--threads 2] [--backbones resnet10t ...]
[--tables 1 2 3]``.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable

import timm
import torch
import torchvision

from fashion_lib.crops import crop_and_resize, crop_boxes
from fashion_lib.data.transforms import collate
from fashion_lib.models.attributes import (
    PROFILES,
    AttributeProfile,
    FashionAIRecognizer,
    build_recognizer,
    deepfashion_config,
    joint_configs,
)
from fashion_lib.provenance import device_description
from fashion_lib.synthetic import SyntheticGarments, WorldConfig

CPU_CANDIDATES = ("resnet10t", "mobilenetv3_small_100", "lcnet_100", "regnetx_002", "resnet18")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], repeats: int, device: torch.device, warmup: bool = True) -> float:
    """Median wall time of ``repeats`` calls of ``fn`` after one warm-up call (if ``warmup``), seconds."""
    if warmup:
        fn()
        sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def batch(n: int, image_size: int, device: torch.device) -> tuple[list[torch.Tensor], list[dict]]:
    """``n`` synthetic garments of every category, rendered once, on ``device``."""
    ds = SyntheticGarments(WorldConfig(image_size=image_size), n, seed=0)
    images, targets = collate([ds[i] for i in range(n)])
    images = [im.to(device) for im in images]
    targets = [{**t, "keypoints": t["keypoints"].to(device)} for t in targets]
    return images, targets


def train_step(model: FashionAIRecognizer, images: list[torch.Tensor], targets: list[dict]) -> Callable[[], None]:
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model.train()

    def step() -> None:
        loss = sum(model(images, targets).values())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def network_step(model: FashionAIRecognizer, x: torch.Tensor) -> Callable[[], None]:
    """Forward, a stand-in loss, backward and AdamW step of the network alone, on an already cropped batch."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model.train()

    def step() -> None:
        loss = sum(o.logsumexp(1).mean() for o in model.net(x).values())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def throughput_table(args: argparse.Namespace, device: torch.device) -> None:
    size = PROFILES["cpu"].fashionai_size
    images, targets = batch(args.batch, args.image_size, device)
    baseline = PROFILES["cpu"].fashionai_backbone
    names = [baseline, *[b for b in args.backbones if b != baseline]]
    steps = {}
    for name in names:
        torch.manual_seed(0)
        model = build_recognizer(joint_configs(AttributeProfile(name, size, name, size))["length"]).to(device)
        steps[name] = (train_step(model, images, targets), sum(p.numel() for p in model.parameters()))
    times: dict[str, list[float]] = {n: [] for n in names}
    for _ in range(args.rounds):  # alternate backbones so that load changes hit all of them
        for name in names:
            times[name].append(timed(steps[name][0], args.repeats, device))
    print(f"\n1. training step of the joint length network, batch {args.batch}, {size} px crops of "
          f"{args.image_size} px images (median of {args.rounds} x {args.repeats})")
    print(f"{'backbone':24s} {'params':>8s} {'img/s':>8s} {'vs ' + baseline:>16s}")
    base = statistics.median(times[baseline])
    for name in names:
        t = statistics.median(times[name])
        print(f"{name:24s} {steps[name][1] / 1e6:7.2f}M {args.batch / t:8.1f} {base / t:15.2f}x")


def gpu_profile_table(args: argparse.Namespace, device: torch.device) -> None:
    gpu = PROFILES["gpu"]
    cases = [
        ("FashionAI (joint length)", joint_configs("gpu")["length"], gpu.fashionai_size),
        ("DeepFashion (50 + 1000)", deepfashion_config("gpu"), gpu.deepfashion_size),
    ]
    cuda = device.type == "cuda"
    b = args.gpu_batch if cuda else 1
    what = "full training step" if cuda else "one forward/backward + AdamW step on the CPU, no warm-up (smoke)"
    print(f"\n2. gpu profile backbones at the paper's sizes: {what}, batch {b}")
    print(f"{'network':26s} {'backbone':22s} {'size':>5s} {'s/step':>8s} {'img/s':>8s}")
    g = torch.Generator().manual_seed(0)
    for label, config, size in cases:
        torch.manual_seed(0)
        model = build_recognizer(config).to(device)
        images = [torch.rand(3, size, size, generator=g).to(device) for _ in range(b)]
        if "category" in dict(config.net.tasks):
            targets = [{"labels": torch.tensor([1 + i]), "attributes": torch.zeros(1000, dtype=torch.long)}
                       for i in range(b)]
        else:
            targets = [{"task": "sleeve_length_labels", "labels": torch.tensor([0, 0, 2, 0, 0, 0, 0, 0, 0])}] * b
        t = timed(train_step(model, images, targets), args.repeats if cuda else 1, device, warmup=cuda)
        print(f"{label:26s} {config.net.backbone:22s} {size:5d} {t:8.2f} {b / t:8.2f}")
        del model


def crop_table(args: argparse.Namespace, device: torch.device) -> None:
    images, targets = batch(args.batch, args.image_size, device)
    size = PROFILES["cpu"].fashionai_size
    configs = joint_configs("cpu")
    print(f"\n3. crop step beside the network step ({PROFILES['cpu'].fashionai_backbone}, batch {args.batch}, "
          f"{size} px)")
    print(f"{'crop':8s} {'crop ms':>9s} {'network ms':>11s} {'crop share':>11s} {'loop ms':>9s} "
          f"{'batched speed-up':>17s}")
    kp = torch.cat([t["keypoints"] for t in targets])
    for kind, name in (("normal", "length"), ("neck", "design")):
        torch.manual_seed(0)
        model = build_recognizer(configs[name]).to(device)
        x, _ = model.crop_inputs(images, targets)
        t_crop = timed(lambda m=model: m.crop_inputs(images, targets), args.repeats, device)
        t_net = timed(network_step(model, x), args.repeats, device)

        def loop(kind=kind) -> None:  # baseline: boxes and crop of one instance at a time
            for i, im in enumerate(images):
                crop_and_resize(im[None], crop_boxes(kp[i : i + 1], kind, args.image_size).boxes, size)

        def batched(kind=kind) -> None:  # boxes from key points + one batched crop, as crop_inputs does
            crop_and_resize(images, crop_boxes(kp, kind, args.image_size).boxes, size)

        t_loop, t_batched = timed(loop, args.repeats, device), timed(batched, args.repeats, device)
        print(f"{kind:8s} {t_crop * 1e3:9.2f} {t_net * 1e3:11.1f} {t_crop / (t_crop + t_net):10.1%} "
              f"{t_loop * 1e3:9.2f} {t_loop / t_batched:16.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=32, help="images per training step (tables 1 and 3)")
    parser.add_argument("--image-size", type=int, default=128, help="side of the synthetic images, pixels")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds over the backbones (table 1)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--backbones", nargs="+", default=list(CPU_CANDIDATES), help="timm names for table 1")
    parser.add_argument("--gpu-batch", type=int, default=24, help="batch of table 2 on CUDA (the paper's 24)")
    parser.add_argument("--tables", nargs="+", type=int, default=[1, 2, 3], choices=[1, 2, 3], help="which tables")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    print(f"device: {device_description()}")
    print(f"python {platform.python_version()}, torch {torch.__version__}, torchvision {torchvision.__version__}, "
          f"timm {timm.__version__}")
    for table in sorted(set(args.tables)):
        (throughput_table, gpu_profile_table, crop_table)[table - 1](args, device)


if __name__ == "__main__":
    main()
