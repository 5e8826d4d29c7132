"""Fig. 3 as a library function: upper-body garments with the detector's crop key points, for the Normal-crop and
the Neck-crop on clear and occluded garments.

Paper, section III.B, Fig. 3. The garments come from the synthetic world of an
:class:`~fashion_lib.experiments.attribute_data.AttributeSetup` (or its real validation images) and the key points
from its detector (:func:`~fashion_lib.experiments.attribute_data.detect_crop_keypoints`); the notebook draws them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from fashion_lib.experiments.attribute_data import AttributeSetup, CropKeypoints, attribute_data, detect_crop_keypoints
from fashion_lib.experiments.keypoints import train_detectors
from fashion_lib.synthetic import SyntheticGarments

__all__ = ["Figure3", "figure3"]


@dataclass(frozen=True)
class Figure3:
    """Garments for the Fig. 3 analogue, with their crop key points."""

    images: list[torch.Tensor]  # B (3, H, W) float images
    truth: torch.Tensor | None  # (B, 24, 3) ground-truth key points (synthetic), None for real data
    occluded: torch.Tensor | None  # (B,) bool: an occluder hides at least one of the garment's points (synthetic)
    keypoints: CropKeypoints  # plain and New-key-detection key points of the detector


def figure3(setup: AttributeSetup, n_clear: int, n_occluded: int, *, scan: int = 400) -> Figure3:
    """Upper-body garments (the Neck-crop's) for the Fig. 3 analogue: synthetic, the first ``n_clear`` without and
    the first ``n_occluded`` with an occluded point among ``scan`` validation garments of the setup's world; real
    data, the first ``n_clear + n_occluded`` validation images. The detector of ``setup`` gives the key points."""
    if n_clear < 0 or n_occluded < 0 or n_clear + n_occluded < 1:
        raise ValueError(f"n_clear and n_occluded must be >= 0 with a positive sum, got {n_clear}, {n_occluded}")
    truth = occluded = None
    if setup.synthetic:
        garments = SyntheticGarments(setup.world, scan, setup.data_seed, split="figure3",
                                     categories=("blouse", "outwear", "dress"))
        clear, hidden = [], []
        for i in range(scan):  # scan the garments until both kinds are found
            image, target = garments[i]
            (hidden if bool(target["occluded"].any()) else clear).append((image, target))
            if len(clear) >= n_clear and len(hidden) >= n_occluded:
                break
        items = clear[:n_clear] + hidden[:n_occluded]
        images = [im for im, _ in items]
        truth = torch.cat([t["keypoints"] for _, t in items])
        occluded = torch.tensor([bool(t["occluded"].any()) for _, t in items])
    else:
        val = attribute_data(setup).val
        images = [val.dataset[i][0] for i in range(min(n_clear + n_occluded, len(val)))]
    detector = train_detectors(setup.detector, setup.detector_seed, progress=False).keypoint_rcnn
    kps = detect_crop_keypoints(detector, images, setup.refine, generator=torch.Generator().manual_seed(0),
                                category_points=setup.category_points)
    return Figure3(images, truth, occluded, kps)
