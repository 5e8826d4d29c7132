"""Key-point cases shared by tests/test_metrics.py (NE) and tests/test_intervals.py (the bootstrap of NE)."""

from __future__ import annotations

import math

import torch

from fashion_lib.keypoints import FASHIONAI

NAN = math.nan
IDX = {n: i for i, n in enumerate(FASHIONAI.names)}


def instance(points: dict[str, tuple[float, float, int]]) -> torch.Tensor:
    """(24, 3) ground truth with the given points, the others absent (0, 0, 0)."""
    gt = torch.zeros(24, 3)
    for name, (x, y, v) in points.items():
        gt[IDX[name]] = torch.tensor([x, y, v], dtype=torch.float32)
    return gt


def hand_case() -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """A skirt (waistband distance 10) and a blouse (occluded armpits 20 apart), worked out by hand below."""
    skirt_gt = instance({"waistband_left": (0, 0, 2), "waistband_right": (10, 0, 2), "hemline_left": (0, 20, 2),
                          "hemline_right": (10, 20, 1)})
    skirt_pred = skirt_gt[:, :2].clone()
    skirt_pred[IDX["waistband_left"]] = torch.tensor([3.0, 4.0])  # 5 px / 10 = 0.5
    skirt_pred[IDX["hemline_left"]] = torch.tensor([0.0, 21.0])  # 0.1
    skirt_pred[IDX["hemline_right"]] = torch.tensor([10.0, 25.0])  # 0.5, counted only with count_occluded
    blouse_gt = instance({"armpit_left": (0, 0, 1), "armpit_right": (0, 20, 1), "neckline_left": (5, 5, 2),
                           "neckline_right": (8, 8, 2)})
    blouse_pred = blouse_gt[:, :2].clone()
    blouse_pred[IDX["neckline_left"]] = torch.tensor([5.0, 15.0])  # 10 / 20 = 0.5
    blouse_pred[IDX["neckline_right"]] = torch.tensor([NAN, NAN])  # missing: scores missing_error
    return torch.stack([skirt_pred, blouse_pred]), torch.stack([skirt_gt, blouse_gt]), ["skirt", "blouse"]
