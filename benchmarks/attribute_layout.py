"""The attribute networks' memory layout and autocast: contiguous against channels-last, float32 against bf16.

The attribute pages train every network channels-last under bf16 autocast and score it the same way
(``experiments.attribute_training.train_config``, ``scoring_autocast``; issue 22). This measures what each choice
buys for the ``cpu`` profile's trunk (timm's ``test_resnet``) at its 64-px input, in one run: the four variants
alternate over ``--repeats`` rounds (machine load hits all alike), and each is reported as the median time per image
and as a speed ratio to contiguous float32 (the baseline), for a scoring forward (batch 64, no grad) and for a
training step (batch 16: forward, cross-entropy, backward, AdamW step).

bf16 runs natively only on CPUs with AVX512-BF16 or AMX (``engine.bf16_native``); elsewhere oneDNN emulates it and
the bf16 rows are slower, which is why the library enables it only where it is native.

Measured on the 2-core AMD EPYC (quiet, native bf16, one thread, ``--repeats 3``): scoring forward 0.85 / 0.55 /
0.54 / 0.26 ms per image (contiguous float32, contiguous bf16, channels-last float32, channels-last bf16), training
step 2.25 / 1.73 / 1.70 / 1.31. Against the books before stop 28 (contiguous, bf16 training, float32 scoring),
channels-last with bf16 scores 3.3x and trains 1.3x faster.

Run: ``python benchmarks/attribute_layout.py [--repeats 5] [--threads 1]``.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import timm
import torch

VARIANTS = {  # name: (channels_last, bf16)
    "contiguous, float32": (False, False),
    "contiguous, bf16": (False, True),
    "channels-last, float32": (True, False),
    "channels-last, bf16": (True, True),
}


def _model(channels_last: bool) -> torch.nn.Module:
    torch.manual_seed(0)
    model = timm.create_model("test_resnet", num_classes=10)
    return model.to(memory_format=torch.channels_last) if channels_last else model


def _autocast(bf16: bool) -> contextlib.AbstractContextManager:
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16)


def time_forward(channels_last: bool, bf16: bool, n: int = 5) -> float:
    """Seconds per image of a no-grad forward of a batch of 64 (after one warm-up)."""
    model = _model(channels_last).eval()
    x = torch.rand(64, 3, 64, 64)
    with torch.no_grad(), _autocast(bf16):
        model(x)
        start = time.perf_counter()
        for _ in range(n):
            model(x)
    return (time.perf_counter() - start) / n / 64


def time_step(channels_last: bool, bf16: bool, n: int = 10) -> float:
    """Seconds per image of a training step on a batch of 16 (after three warm-up steps)."""
    model = _model(channels_last).train()
    x, y = torch.rand(16, 3, 64, 64), torch.randint(0, 10, (16,))
    opt = torch.optim.AdamW(model.parameters(), 1e-3)

    def step() -> None:
        with _autocast(bf16):
            loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    for _ in range(3):
        step()
    start = time.perf_counter()
    for _ in range(n):
        step()
    return (time.perf_counter() - start) / n / 16


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="rounds over the variants (default 5)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1, as a book lane)")
    args = parser.parse_args()
    if args.repeats < 1 or args.threads < 1:
        parser.error("--repeats and --threads must be >= 1")
    torch.set_num_threads(args.threads)
    print(f"bf16 native on this CPU: {bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())}; threads {args.threads}")
    for label, timer in (("scoring forward, batch 64", time_forward), ("training step, batch 16", time_step)):
        times: dict[str, list[float]] = {name: [] for name in VARIANTS}
        for _ in range(args.repeats):  # rounds: every variant once per round
            for name, (channels_last, bf16) in VARIANTS.items():
                times[name].append(timer(channels_last, bf16))
        base = statistics.median(times["contiguous, float32"])
        print(f"\n{label} (median of {args.repeats}):")
        for name, values in times.items():
            ms = 1000 * statistics.median(values)
            print(f"  {name:24s} {ms:6.2f} ms/image   {base / statistics.median(values):4.2f}x")


if __name__ == "__main__":
    main()
