"""Shared pieces of the attribute experiments' tests: a tiny set-up whose detector runs the whole path in seconds,
and hand-checked FashionAI predictions."""

from __future__ import annotations

import torch

from fashion_lib.attributes import M, N, Y
from fashion_lib.experiments.attribute_data import AttributeSetup
from fashion_lib.experiments.keypoints import KeypointSetup
from fashion_lib.experiments.table2 import TaskPredictions

# a detector trained for one step on 64-px garments: meaningless, but it runs the whole path in seconds
TINY_DETECTOR = KeypointSetup(image_size=64, train_steps=1, cpn_steps=1, batch_size=1)


def tiny(**overrides) -> AttributeSetup:
    values = {"detector": TINY_DETECTOR, "train_images": 16, "val_images": 8, "epochs": 1, "batch_size": 4}
    return AttributeSetup(**{**values, **overrides})


def task_case() -> TaskPredictions:
    """Five images of three tasks, padded to 10 classes; top-1 correct for images 0, 2, 3 (hand-checked)."""
    rows = {  # task, probabilities, labels
        0: ("collar_design_labels", [0.1, 0.6, 0.1, 0.1, 0.1], [N, Y, N, N, N]),
        1: ("collar_design_labels", [0.5, 0.2, 0.1, 0.1, 0.1], [N, Y, M, N, N]),
        2: ("pant_length_labels", [0.0, 0.1, 0.1, 0.1, 0.2, 0.5], [N, N, N, N, M, Y]),
        3: ("pant_length_labels", [0.0, 0.7, 0.1, 0.1, 0.1, 0.0], [N, Y, N, N, N, N]),
        4: ("neckline_design_labels", [0.0, 0.0, 0.3, 0.0, 0.0, 0.0, 0.0, 0.7, 0.0, 0.0], [N] * 9 + [Y]),
    }
    probs = torch.zeros(5, 10)
    labels = torch.full((5, 10), N)
    for i, (_, p, y) in rows.items():
        probs[i, : len(p)], labels[i, : len(y)] = torch.tensor(p), torch.tensor(y)
    return TaskPredictions(tuple(t for t, _, _ in rows.values()), probs, labels)
