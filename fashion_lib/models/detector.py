"""One inference interface for both key-point detectors, so the refiner and the metrics take either.

Paper, Table 1 compares Mask R-CNN (our :mod:`~fashion_lib.models.keypoint_rcnn`), CPN
(:mod:`~fashion_lib.models.cpn`, on the detector's boxes) and either followed by New-key-detection
(:func:`fashion_lib.refine.new_key_detection`). Every detector here returns, per image, a dict

- ``boxes`` (N, 4) float: x1, y1, x2, y2 in image pixels;
- ``scores`` (N,) float: the instance's confidence (the box classifier's score; for CPN on given boxes without
  scores, the mean key-point confidence);
- ``labels`` (N,) int64: class index (FashionAI: category index + 1; COCO: 1, person);
- ``keypoints`` (N, K, 3) float: x, y in image pixels (continuous: pixel ``i`` covers ``[i, i + 1)``) and a
  per-point confidence in [0, 1]:

  - Keypoint R-CNN: the softmax probability of the peak of the point's heat map (its 56 x 56 map is a
    distribution over pixels, :class:`~fashion_lib.models.keypoint_rcnn.LogSoftmaxKeypointPredictor`; torchvision
    reports the bicubically upsampled log-probability at the peak, and we return its ``exp``, clamped to 1);
  - CPN: the value of RefineNet's heat map at its peak (trained towards Gaussians of height 1), clamped to [0, 1].

:func:`top_instance` reduces this to one instance per image (``B x K x 3``), and :func:`as_detect_fn` wraps a
detector as the ``detect(images) -> (B, K, 3)`` callable of :func:`fashion_lib.refine.new_key_detection`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import NamedTuple

import torch
from torch import nn
from torchvision.models.detection import KeypointRCNN

from fashion_lib.models.cpn import CPN
from fashion_lib.models.keypoint_rcnn import LogSoftmaxKeypointPredictor

__all__ = [
    "keypoint_rcnn_outputs",
    "TopDownDetector",
    "predict",
    "TopInstance",
    "top_instance",
    "all_instances",
    "as_detect_fn",
    "coco_results",
]


def keypoint_rcnn_outputs(detections: Sequence[dict]) -> list[dict]:
    """Turn torchvision Keypoint R-CNN detections of a :func:`~fashion_lib.models.keypoint_rcnn.build_keypoint_rcnn`
    model into the shared format.

    Parameters
    ----------
    detections : sequence of dict
        torchvision's eval-mode output: ``boxes`` (N, 4), ``scores`` (N,), ``labels`` (N,), ``keypoints`` (N, K, 3)
        with v = 1, ``keypoints_scores`` (N, K): log-probabilities of each heat map's peak.

    Returns
    -------
    list of dict, see the module docstring; ``keypoints[..., 2] = exp(keypoints_scores)`` clamped to [0, 1].
    """
    out = []
    for d in detections:
        conf = d["keypoints_scores"].float().exp().clamp(0.0, 1.0)  # (N, K)
        keypoints = torch.cat([d["keypoints"][..., :2].float(), conf[..., None]], -1)  # (N, K, 3)
        out.append({"boxes": d["boxes"].float(), "scores": d["scores"].float(), "labels": d["labels"].long(),
                    "keypoints": keypoints})
    return out


class TopDownDetector(nn.Module):
    """A box detector followed by CPN inside its boxes (Table 1's CPN: detector boxes, not the ground truth).

    Parameters
    ----------
    box_detector : torchvision detection model
        Anything whose eval-mode ``model(images)`` returns ``boxes``, ``scores`` and ``labels`` per image (a
        Keypoint R-CNN of :func:`~fashion_lib.models.keypoint_rcnn.build_keypoint_rcnn`; its own key points are
        discarded).
    cpn : CPN
    score_threshold : float
        Boxes scoring below this are dropped before CPN runs.
    max_instances : int, optional
        Keep at most this many boxes per image (the highest scoring; the detector returns them sorted).

    Calling it in eval mode, ``model(images)``, returns the shared format (module docstring): the detector's boxes,
    scores and labels, CPN's key points.
    """

    def __init__(self, box_detector: nn.Module, cpn: CPN, *, score_threshold: float = 0.0,
                 max_instances: int | None = None) -> None:
        super().__init__()
        if not 0.0 <= score_threshold <= 1.0:
            raise ValueError(f"score_threshold must be in [0, 1], got {score_threshold}")
        if max_instances is not None and max_instances < 1:
            raise ValueError(f"max_instances must be >= 1 or None, got {max_instances}")
        self.box_detector = box_detector
        self.cpn = cpn
        self.score_threshold = score_threshold
        self.max_instances = max_instances

    def forward(self, images: Sequence[torch.Tensor]) -> list[dict]:
        if self.training:
            raise ValueError("TopDownDetector is for inference: train its box detector and its CPN separately")
        boxes = []
        for d in self.box_detector(list(images)):
            keep = d["scores"] >= self.score_threshold  # (N,), sorted by score already
            sel = {key: d[key][keep][: self.max_instances] for key in ("boxes", "scores", "labels")}
            boxes.append(sel)
        return self.cpn(list(images), boxes)


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def _run(model: nn.Module, images: list[torch.Tensor], boxes: list | None) -> list[dict]:
    if isinstance(model, KeypointRCNN):
        if not isinstance(model.roi_heads.keypoint_predictor, LogSoftmaxKeypointPredictor):
            raise ValueError("predict needs a Keypoint R-CNN from build_keypoint_rcnn (its key-point predictor "
                             "gives log-probabilities); torchvision's own predictor gives unbounded logits")
        return keypoint_rcnn_outputs(model(images))
    if isinstance(model, CPN):
        if boxes is None:
            raise ValueError("predict with a CPN needs boxes (one (N, 4) tensor per image); or wrap it in a "
                             "TopDownDetector with a box detector")
        return model(images, [{"boxes": b} for b in boxes])
    if isinstance(model, TopDownDetector):
        return model(images)
    raise ValueError(f"model must be a KeypointRCNN, a CPN or a TopDownDetector, got {type(model).__name__}")


def predict(
    model: nn.Module,
    images: Sequence[torch.Tensor],
    *,
    boxes: Sequence[torch.Tensor] | None = None,
    batch_size: int = 8,
    device: torch.device | str | None = None,
) -> list[dict]:
    """Key-point detections of ``images`` in the shared format, on CPU.

    Parameters
    ----------
    model : KeypointRCNN (from ``build_keypoint_rcnn``), TopDownDetector, or CPN (then ``boxes`` is required)
        Run in eval mode under ``torch.no_grad``; its train/eval mode is restored afterwards.
    images : sequence of (3, H, W) float in [0, 1]
    boxes : sequence of (N_i, 4) float, optional
        For a bare CPN: the boxes to estimate key points in (image pixels).
    batch_size : int
        Images per forward pass.
    device : optional
        Where to run; the model is moved there (default: where its parameters are).

    Returns
    -------
    list of dict, one per image, tensors on CPU (module docstring).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    images = list(images)
    if boxes is not None and len(boxes) != len(images):
        raise ValueError(f"boxes has {len(boxes)} entries for {len(images)} images")
    if any(im.ndim != 3 or not im.is_floating_point() for im in images):
        raise ValueError("every image must be a (C, H, W) float tensor")
    if device is not None:
        model.to(device)
    device = next(model.parameters()).device
    out: list[dict] = []
    with _eval_mode(model), torch.no_grad():
        for start in range(0, len(images), batch_size):  # over chunks of images
            chunk = [im.to(device) for im in images[start:start + batch_size]]
            chunk_boxes = None if boxes is None else [torch.as_tensor(b, device=device).float()
                                                      for b in boxes[start:start + batch_size]]
            out.extend({k: v.cpu() for k, v in d.items()} for d in _run(model, chunk, chunk_boxes))
    return out


class TopInstance(NamedTuple):
    """The highest-scoring detection of each image."""

    keypoints: torch.Tensor  # (B, K, 3) float: x, y pixels, confidence; NaN, NaN, 0 where an image has none
    scores: torch.Tensor  # (B,) float: its score; 0 where an image has none
    boxes: torch.Tensor  # (B, 4) float: its box; NaN where an image has none
    labels: torch.Tensor  # (B,) long: its class (FashionAI: category index + 1); 0 where an image has none


def top_instance(predictions: Sequence[dict], num_keypoints: int) -> TopInstance:
    """The highest-scoring detection per image (ties: the first in the image's list).

    Parameters
    ----------
    predictions : sequence of B dicts in the shared format (module docstring).
    num_keypoints : int
        ``K`` (needed when no image has a detection).

    Returns
    -------
    TopInstance
        ``keypoints`` (B, K, 3), ``scores`` (B,), ``boxes`` (B, 4), ``labels`` (B,); an image without detections
        gets NaN coordinates and box, and score, confidences and label 0.
    """
    b = len(predictions)
    counts = torch.tensor([len(p["scores"]) for p in predictions], dtype=torch.long)  # (B,)
    for i, p in enumerate(predictions):
        if p["keypoints"].shape[1:] != (num_keypoints, 3):
            raise ValueError(f"predictions[{i}]['keypoints'] has shape {tuple(p['keypoints'].shape)}, expected "
                             f"(N, {num_keypoints}, 3)")
    nan = float("nan")
    keypoints = torch.full((b, num_keypoints, 3), nan)
    keypoints[..., 2] = 0.0
    scores, boxes, labels = torch.zeros(b), torch.full((b, 4), nan), torch.zeros(b, dtype=torch.long)
    if int(counts.sum()) == 0:
        return TopInstance(keypoints, scores, boxes, labels)
    all_scores = torch.cat([p["scores"].float().cpu() for p in predictions])  # (T,)
    image = torch.repeat_interleave(torch.arange(b), counts)  # (T,)
    order = torch.sort(all_scores, descending=True, stable=True).indices
    order = order[torch.sort(image[order], stable=True).indices]  # grouped by image, best first in each group
    has = counts > 0
    first = (torch.cumsum(counts, 0) - counts)[has]  # start of each non-empty group
    pick = order[first]  # (B',) flat indices of the winners
    keypoints[has] = torch.cat([p["keypoints"].float().cpu() for p in predictions])[pick]
    scores[has] = all_scores[pick]
    boxes[has] = torch.cat([p["boxes"].float().cpu() for p in predictions])[pick]
    labels[has] = torch.cat([p["labels"].long().cpu() for p in predictions])[pick]
    return TopInstance(keypoints, scores, boxes, labels)


def all_instances(predictions: Sequence[dict], num_keypoints: int) -> torch.Tensor:
    """Every detection of each image, best first, padded to the largest count.

    Parameters
    ----------
    predictions : sequence of B dicts in the shared format (module docstring).
    num_keypoints : int
        ``K``.

    Returns
    -------
    (B, D, K, 3) float, ``D`` the most detections of one image (at least 1); padding rows have NaN coordinates and
    confidence 0 (a missing instance), so ``[:, 0]`` equals :func:`top_instance`'s key points.
    """
    for i, p in enumerate(predictions):
        if p["keypoints"].shape[1:] != (num_keypoints, 3):
            raise ValueError(f"predictions[{i}]['keypoints'] has shape {tuple(p['keypoints'].shape)}, expected "
                             f"(N, {num_keypoints}, 3)")
    # over images: each sorts its own detections (stable, so ties keep the detector's order as top_instance does)
    ranked = [p["keypoints"].float().cpu()[torch.sort(p["scores"].float().cpu(), descending=True, stable=True).indices]
              for p in predictions]
    depth = max([len(r) for r in ranked] + [1])
    out = torch.full((len(ranked), depth, num_keypoints, 3), float("nan"))
    out[..., 2] = 0.0
    counts = torch.tensor([len(r) for r in ranked], dtype=torch.long)  # (B,)
    if int(counts.sum()):
        image = torch.repeat_interleave(torch.arange(len(ranked)), counts)  # (T,) image of each detection
        rank = torch.arange(len(image)) - torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts)  # (T,)
        out[image, rank] = torch.cat(ranked)
    return out


def as_detect_fn(
    model: nn.Module, num_keypoints: int, *, batch_size: int = 8, device: torch.device | str | None = None,
    every_instance: bool = False,
) -> Callable[[list[torch.Tensor]], torch.Tensor]:
    """Wrap a detector as ``detect(images) -> (B, K, 3)``, the top instance's key points of each image, or, with
    ``every_instance``, ``(B, D, K, 3)``, all of them best first (:func:`all_instances`).

    This is the callable :func:`fashion_lib.refine.new_key_detection` takes for its second scale; with every
    instance, the second scale keeps the crop's detection that matches the instance it was cropped for.

    Parameters
    ----------
    model : KeypointRCNN (from ``build_keypoint_rcnn``) or TopDownDetector
    num_keypoints : int
        ``K``.
    batch_size, device
        As in :func:`predict`.
    every_instance : bool
        Return every detection of each image instead of the top one.

    Returns
    -------
    callable
        list of (3, h, w) float -> (B, K, 3) (or (B, D, K, 3)) float on CPU: x, y in that image's pixels and the
        confidence; NaN coordinates and confidence 0 where nothing was detected.
    """
    if isinstance(model, CPN):
        raise ValueError("a bare CPN needs boxes: wrap it in TopDownDetector(box_detector, cpn)")

    def detect(images: list[torch.Tensor]) -> torch.Tensor:
        predictions = predict(model, images, batch_size=batch_size, device=device)
        if every_instance:
            return all_instances(predictions, num_keypoints)
        return top_instance(predictions, num_keypoints).keypoints

    return detect


def coco_results(predictions: Sequence[dict], image_ids: Sequence[int], *, category_id: int | None = None
                 ) -> list[dict]:
    """Every detection of ``predictions`` as COCO results entries (data-formats.md, D.2), ready for
    :func:`fashion_lib.coco_eval.write_coco_results`, pycocotools and ``python -m fashion_lib.refine``.

    Parameters
    ----------
    predictions : sequence of B dicts in the shared format (module docstring).
    image_ids : B image ids, in the same order.
    category_id : int, optional
        Category of every entry (COCO: 1); default each detection's own label (FashionAI: the garment category,
        1 blouse ... 5 trousers, which the refiner's command line reads).

    Returns
    -------
    list of dict, one per detection; each point's third value is its confidence.
    """
    from fashion_lib.coco_eval import keypoints_to_coco_results

    if len(image_ids) != len(predictions):
        raise ValueError(f"image_ids has {len(image_ids)} entries for {len(predictions)} predictions")
    out: list[dict] = []
    for image_id, p in zip(image_ids, predictions, strict=True):  # over images: entries are per detection
        if not len(p["scores"]):
            continue
        entries = keypoints_to_coco_results([int(image_id)] * len(p["scores"]), p["keypoints"], p["scores"])
        confidence = p["keypoints"][..., 2].clamp(0, 1).tolist()  # keep the confidence, not COCO's v = 1
        for entry, label, conf in zip(entries, p["labels"].tolist(), confidence, strict=True):
            entry["category_id"] = int(category_id if category_id is not None else label)
            kps = entry["keypoints"]
            for j, c in enumerate(conf):
                if kps[3 * j + 2] > 0:
                    kps[3 * j + 2] = float(c)
        out.extend(entries)
    return out
