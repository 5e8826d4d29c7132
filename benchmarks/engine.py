"""Benchmark fashion_lib.engine.train against a plain training loop over the same model, data and batches.

The plain loop is what torchvision's reference does per step (forward, sum the loss dict, read it back with one
synchronisation, backward, optimizer and scheduler step) with no checkpoint, CSV or progress bar. The engine adds
the global-batch sampler, a finiteness check, metrics rows every ``--log-every`` steps and one checkpoint at the
end; its whole ``train()`` call is timed (setup and the final checkpoint included). Runs alternate (plain,
engine, plain, ...) so machine load hits both alike; the median of ``--repeats`` after one warm-up pair is
reported as images/s and as the speed ratio plain time / engine time (1.0: no overhead; below 1: slower), for
the whole call and for the engine's steps alone (its reported images/s), which isolates the fixed costs.

Models: ``toy`` (a 2-layer conv net on 32 px images: per-step overhead dominates, the worst case) and ``rcnn``
(a small torchvision Keypoint R-CNN: ResNet-18-FPN with trainable batch norm, 2 x 64-channel key-point head,
128-wide box head, light sampling, 96 px images).
Data are pre-rendered into memory so the comparison measures the loop, not the data pipeline.

Run: ``python benchmarks/engine.py [--models toy rcnn] [--steps 20] [--repeats 3] [--threads 2]``.
"""

from __future__ import annotations

import argparse
import logging
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from fashion_lib.data.order import StepBatchSampler
from fashion_lib.data.transforms import collate
from fashion_lib.engine import TrainConfig, lr_at, train
from fashion_lib.provenance import device_description


class ToyNet(nn.Module):
    """Two convolutions and a linear head regressing ``value`` (2,); losses ``loss_a``, ``loss_b``."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                                  nn.Conv2d(16, 16, 3, stride=2, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                                  nn.Flatten(), nn.Linear(16, 2))

    def forward(self, images, targets):
        pred = self.body(torch.stack(images))  # (B, 2)
        y = torch.stack([t["value"] for t in targets])  # (B, 2)
        return {"loss_a": F.mse_loss(pred[:, 0], y[:, 0]), "loss_b": F.mse_loss(pred[:, 1], y[:, 1])}


def toy_data(n: int) -> list:
    g = torch.Generator().manual_seed(0)
    out = []
    for _ in range(n):
        colour = torch.rand(3, generator=g)
        image = colour[:, None, None] + 0.2 * torch.randn(3, 32, 32, generator=g)
        out.append((image, {"value": torch.stack([colour[0] - colour[1], colour[2] - 0.5])}))
    return out


def small_rcnn() -> nn.Module:
    from torchvision.models.detection import KeypointRCNN
    from torchvision.models.detection.backbone_utils import resnet_fpn_backbone
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
    from torchvision.models.detection.keypoint_rcnn import KeypointRCNNHeads, KeypointRCNNPredictor

    backbone = resnet_fpn_backbone(backbone_name="resnet18", weights=None, norm_layer=nn.BatchNorm2d,
                                   trainable_layers=5)
    return KeypointRCNN(backbone, num_classes=None, min_size=96, max_size=96, rpn_batch_size_per_image=64,
                        box_batch_size_per_image=32, rpn_pre_nms_top_n_train=200, rpn_post_nms_top_n_train=100,
                        rpn_pre_nms_top_n_test=100, rpn_post_nms_top_n_test=50,
                        box_head=TwoMLPHead(256 * 7 * 7, 128), box_predictor=FastRCNNPredictor(128, 6),
                        keypoint_head=KeypointRCNNHeads(256, (64, 64)),
                        keypoint_predictor=KeypointRCNNPredictor(64, 24))


def rcnn_data(n: int) -> list:
    from fashion_lib.models.keypoint_rcnn import detection_target
    from fashion_lib.synthetic import SyntheticGarments, WorldConfig

    ds = SyntheticGarments(WorldConfig(image_size=96), n, seed=0)
    return [(image, detection_target(target)) for image, target in (ds[i] for i in range(n))]


def plain_loop(model: nn.Module, data: list, config: TrainConfig) -> tuple[float, float]:
    """The reference loop; returns wall seconds (twice: it has no setup or checkpoint to leave out). It computes
    exactly what the engine computes (same batches, optimizer groups, schedule and random draws)."""
    t0 = time.perf_counter()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW([{"params": [p for p in params if p.ndim >= 2], "weight_decay": config.weight_decay},
                                   {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}],
                                  lr=config.lr)  # the engine's groups: no decay on biases and norms
    factor = [lr_at(config, s) / config.lr for s in range(1, config.steps + 1)]
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda i: factor[min(i, config.steps - 1)])
    loader = torch.utils.data.DataLoader(data, batch_sampler=StepBatchSampler(len(data), config.batch_size,
                                         config.seed, steps=config.steps), collate_fn=collate)
    model.train()
    torch.manual_seed(config.seed)  # as the engine does, so both draw the same proposals and do the same work
    for images, targets in loader:
        losses = model(images, targets)
        total = sum(losses.values())
        total.item()
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        scheduler.step()
    seconds = time.perf_counter() - t0
    return seconds, seconds


def engine_loop(model: nn.Module, data: list, config: TrainConfig) -> tuple[float, float]:
    """The whole ``train()`` call; returns its wall seconds and the seconds of its steps alone (from the
    reported images/s: no setup, metrics or checkpoint writing)."""
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        result = train(model, data, config, Path(tmp) / "run", progress=False)
        return time.perf_counter() - t0, config.steps * config.batch_size / result.images_per_s


def compare(name: str, build: Callable[[], nn.Module], data: list, config: TrainConfig, repeats: int) -> None:
    runs: dict[str, list[tuple[float, float]]] = {"plain": [], "engine": []}
    for i in range(repeats + 1):  # the first pair warms up
        weights = []
        for label, loop in (("plain", plain_loop), ("engine", engine_loop)):
            torch.manual_seed(0)
            model = build()
            seconds = loop(model, data, config)
            weights.append(model.state_dict())
            if i:
                runs[label].append(seconds)
        same = all(torch.equal(weights[0][k], weights[1][k].cpu()) for k in weights[0])
        if not same:
            print(f"{name}: WARNING the engine's weights differ from the plain loop's; the work compared differs")
    images = config.steps * config.batch_size
    plain = statistics.median(t for t, _ in runs["plain"])
    engine = statistics.median(t for t, _ in runs["engine"])
    steps_only = statistics.median(t for _, t in runs["engine"])
    print(f"{name}: {config.steps} steps x batch {config.batch_size}, median of {repeats}\n"
          f"  plain loop            {images / plain:8.1f} img/s\n"
          f"  engine, whole call    {images / engine:8.1f} img/s   speed vs plain {plain / engine:5.3f}\n"
          f"  engine, steps only    {images / steps_only:8.1f} img/s   speed vs plain {plain / steps_only:5.3f}\n"
          f"  (walls: plain {[round(t, 2) for t, _ in runs['plain']]} s, engine "
          f"{[round(t, 2) for t, _ in runs['engine']]} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["toy", "rcnn"], choices=["toy", "rcnn"])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--log-every", type=int, default=10)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    print(f"device: {device_description()}; torch {torch.__version__}, torchvision {torchvision.__version__}, "
          f"python {platform.python_version()}, {args.threads} threads")
    for name in args.models:
        batch = 32 if name == "toy" else 4
        config = TrainConfig(steps=args.steps, batch_size=batch, lr=1e-3, warmup_steps=2, device="cpu",
                             checkpoint_every=args.steps, log_every=args.log_every)
        if name == "toy":
            compare("toy", ToyNet, toy_data(256), config, args.repeats)
        else:
            compare("rcnn", small_rcnn, rcnn_data(32), config, args.repeats)


if __name__ == "__main__":
    main()
