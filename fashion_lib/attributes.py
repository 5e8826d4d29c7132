"""Attribute schemas: FashionAI's 8 attribute tasks and the ``y`` / ``m`` / ``n`` label codes.

Paper, section III.B: FashionAI labels each class of a task ``y`` (yes), ``m`` ("maybe") or ``n`` (no). The
integer codes below are the one definition shared by the loaders, the "maybe"-weighted loss and the metrics.
Class lists follow ``data-formats.md`` section B.2, in index order.
"""

from __future__ import annotations

import torch

__all__ = [
    "N",
    "M",
    "Y",
    "FASHIONAI_TASKS",
    "LENGTH_TASKS",
    "DESIGN_TASKS",
    "PAPER_TASK_NAMES",
    "parse_label_string",
]

N = 0
"""Code of an ``n`` (no) label."""
M = 1
"""Code of an ``m`` ("maybe") label."""
Y = 2
"""Code of a ``y`` (yes) label."""

_CODES = {"n": N, "m": M, "y": Y}

FASHIONAI_TASKS: dict[str, tuple[str, ...]] = {
    "skirt_length_labels": ("Invisible", "Short Length", "Knee Length", "Midi Length", "Ankle Length",
                            "Floor Length"),
    "coat_length_labels": ("Invisible", "High Waist Length", "Regular Length", "Long Length", "Micro Length",
                           "Knee Length", "Midi Length", "Ankle&Floor Length"),
    "collar_design_labels": ("Invisible", "Shirt Collar", "Peter Pan", "Puritan Collar", "Rib Collar"),
    "lapel_design_labels": ("Invisible", "Notched", "Collarless", "Shawl Collar", "Plus Size Shawl"),
    "neck_design_labels": ("Invisible", "Turtle Neck", "Ruffle Semi-High Collar", "Low Turtle Neck",
                           "Draped Collar"),
    "neckline_design_labels": ("Invisible", "Strapless Neck", "Deep V Neckline", "Straight Neck", "V Neckline",
                               "Square Neckline", "Off Shoulder", "Round Neckline", "Sweat Heart Neck",
                               "OneShoulder Neckline"),
    "pant_length_labels": ("Invisible", "Short Pant", "Mid Length", "3/4 Length", "Cropped Pant", "Full Length"),
    "sleeve_length_labels": ("Invisible", "Sleeveless", "Cup Sleeves", "Short Sleeves", "Elbow Sleeves",
                             "3/4 Sleeves", "Wrist Length", "Long Sleeves", "Extra Long Sleeves"),
}
"""AttrKey -> class names in label-string order."""

# Joint learning (study notes): one network for the length tasks on Normal-crop, one for the design tasks on
# Neck-crop. Order follows the columns of the paper's Table 2.
DESIGN_TASKS = ("collar_design_labels", "neck_design_labels", "neckline_design_labels", "lapel_design_labels")
LENGTH_TASKS = ("skirt_length_labels", "pant_length_labels", "sleeve_length_labels", "coat_length_labels")
PAPER_TASK_NAMES = {
    "collar_design_labels": "Collar", "neck_design_labels": "Neck", "neckline_design_labels": "Neckline",
    "lapel_design_labels": "Lapel", "skirt_length_labels": "Skirt", "pant_length_labels": "Pant",
    "sleeve_length_labels": "Sleeve", "coat_length_labels": "Coat",
}
"""AttrKey -> the column heading of the paper's Table 2."""


def parse_label_string(labels: str, task: str, *, where: str = "label string") -> torch.Tensor:
    """Parse a FashionAI label string such as ``"nnnmyn"`` into codes.

    Parameters
    ----------
    labels : str
        One character per class of ``task``, each ``y``, ``m`` or ``n``.
    task : str
        The AttrKey, e.g. ``"skirt_length_labels"``.
    where : str
        Prefix for error messages (a loader passes ``"label.csv line 12"``).

    Returns
    -------
    codes : (C,) long tensor of :data:`Y`, :data:`M`, :data:`N`.
    """
    if task not in FASHIONAI_TASKS:
        raise ValueError(f"{where}: unknown attribute task {task!r}; valid: {', '.join(FASHIONAI_TASKS)}")
    expected = len(FASHIONAI_TASKS[task])
    if len(labels) != expected:
        raise ValueError(f"{where}: label string {labels!r} has {len(labels)} characters, "
                         f"{task} has {expected} classes")
    bad = sorted(set(labels) - set(_CODES))
    if bad:
        raise ValueError(f"{where}: label string {labels!r} contains {bad}, expected only 'y', 'm' or 'n'")
    return torch.tensor([_CODES[c] for c in labels], dtype=torch.long)
