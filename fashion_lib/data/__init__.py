"""Loaders for the four data sets of the study, in their real on-disk layouts (one module per data set).

Every loader returns ``(image, target)`` items with ``image`` a ``(3, H, W)`` float tensor in [0, 1] and key points
in pixels with COCO's visibility (0 absent, 1 occluded, 2 visible), so models take real and synthetic data alike.
The synthetic world that writes these layouts is :mod:`fashion_lib.synthetic`.
"""

from fashion_lib.data.coco import CocoKeypoints
from fashion_lib.data.deepfashion import DeepFashionAttributes
from fashion_lib.data.fashionai import FashionAIAttributes, FashionAIKeypoints
from fashion_lib.data.transforms import collate, hflip, keypoint_boxes, random_hflip, resize, to_model_input

__all__ = [
    "FashionAIKeypoints",
    "FashionAIAttributes",
    "DeepFashionAttributes",
    "CocoKeypoints",
    "resize",
    "hflip",
    "random_hflip",
    "to_model_input",
    "keypoint_boxes",
    "collate",
]
