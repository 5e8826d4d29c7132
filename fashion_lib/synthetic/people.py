"""People for COCO's 17-point schema: articulated figures, several per image, some small, some overlapping.

Vectorised over the persons of an image; only the drawing loops. Canonical frame: person height 1, head top at
``y = 0``, feet at ``y ~ 1``, facing the camera, so COCO's ``left_*`` points (the person's left) lie at the larger
``x``, as in the real annotations. A crowd region (small unlabelled figures) is one ``iscrowd = 1`` annotation.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageDraw

from fashion_lib.keypoints import ABSENT, COCO, OCCLUDED, VISIBLE
from fashion_lib.synthetic.canvas import _background, _color, _occlude
from fashion_lib.synthetic.world import WorldConfig, _Draws

__all__ = ["render_people"]


_CI = {name: i for i, name in enumerate(COCO.names)}
_LIMBS = [("left_shoulder", "left_elbow"), ("left_elbow", "left_wrist"), ("right_shoulder", "right_elbow"),
          ("right_elbow", "right_wrist"), ("left_hip", "left_knee"), ("left_knee", "left_ankle"),
          ("right_hip", "right_knee"), ("right_knee", "right_ankle")]
_LIMB_IDX = np.array([[_CI[a], _CI[b]] for a, b in _LIMBS])


def _skeletons(n: int, asym: float, draws: _Draws) -> tuple[np.ndarray, np.ndarray]:
    """(n, 17, 2) canonical joints and (n, 17) existence (a turned head hides its far ear).

    The pose has a part shared by both sides (a symmetric stance) and a per-side part scaled by ``asym`` (a raised
    arm, a bent elbow or knee, a turned head): with ``asym = 0`` every figure is mirror-symmetric about ``x = 0``.
    """
    u = np.array([[draws.uniform() for _ in range(13)] for _ in range(n)]).reshape(n, 13)
    j = np.zeros((n, 17, 2))
    turn = (u[:, 0] - 0.5) * 0.04 * min(1.0, 3.0 * asym)  # head turn: shifts the face sideways
    j[:, _CI["nose"]] = np.stack([turn, np.full(n, 0.075)], 1)
    for side, s in (("left", 1.0), ("right", -1.0)):
        j[:, _CI[f"{side}_eye"]] = np.stack([turn + s * 0.022, np.full(n, 0.06)], 1)
        j[:, _CI[f"{side}_ear"]] = np.stack([np.full(n, s * 0.045), np.full(n, 0.068)], 1)
        j[:, _CI[f"{side}_shoulder"]] = (s * 0.11, 0.19)
        j[:, _CI[f"{side}_hip"]] = (s * 0.075, 0.52)
    # limb angles from straight down, outward positive: a shared stance plus a per-side deviation scaled by asym
    for k, (side, s) in enumerate((("left", 1.0), ("right", -1.0))):
        v = u[:, 5 + 4 * k : 9 + 4 * k] - 0.5  # (n, 4) this side's deviations
        upper = np.radians(12.0 + (u[:, 1] - 0.3) * 18.0 + asym * v[:, 0] * 90.0)
        lower = upper + np.radians((u[:, 2] - 0.2) * 18.0 + asym * v[:, 1] * 120.0)
        thigh = np.radians(4.0 + (u[:, 3] - 0.4) * 6.0 + asym * v[:, 2] * 40.0)
        shin = thigh - np.radians(u[:, 4] * 5.0 + asym * (v[:, 3] + 0.5) * 50.0)
        for (a, b, length), ang in zip(
            [(f"{side}_shoulder", f"{side}_elbow", 0.17), (f"{side}_elbow", f"{side}_wrist", 0.15),
             (f"{side}_hip", f"{side}_knee", 0.23), (f"{side}_knee", f"{side}_ankle", 0.23)],
            [upper, lower, thigh, shin], strict=True,
        ):
            j[:, _CI[b]] = j[:, _CI[a]] + length * np.stack([s * np.sin(ang), np.cos(ang)], 1)
    exists = np.ones((n, 17), dtype=bool)
    far_ear = np.where(turn > 0.012, _CI["right_ear"], np.where(turn < -0.012, _CI["left_ear"], -1))
    rows = np.flatnonzero(far_ear >= 0)
    exists[rows, far_ear[rows]] = False
    return j, exists


def _hull(points: np.ndarray) -> np.ndarray:
    """Convex hull (Andrew's monotone chain) of (n, 2) points, counter-clockwise, as (h, 2)."""
    pts = sorted(map(tuple, np.round(points, 2)))
    if len(pts) < 3:
        return np.array(pts)

    def half(seq):
        out: list = []
        for p in seq:
            while len(out) >= 2 and (out[-1][0] - out[-2][0]) * (p[1] - out[-2][1]) - (out[-1][1] - out[-2][1]) * (
                p[0] - out[-2][0]
            ) <= 0:
                out.pop()
            out.append(p)
        return out

    lower, upper = half(pts), half(pts[::-1])
    return np.array(lower[:-1] + upper[:-1])


def _draw_person(
    img: Image.Image, mask: Image.Image, joints: np.ndarray, height: float, skin, cloth, dressed: bool
) -> None:
    """Draw one figure (joints (17, 2) in pixels) into ``img`` and its silhouette into ``mask``."""
    d, m = ImageDraw.Draw(img), ImageDraw.Draw(mask)
    w = max(int(round(0.055 * height)), 1)
    ls, rs, lh, rh = (joints[_CI[n]] for n in ("left_shoulder", "right_shoulder", "left_hip", "right_hip"))
    torso = [tuple(p) for p in (ls, rs, rh, lh)]
    head_c = (joints[_CI["left_ear"]] + joints[_CI["right_ear"]]) / 2 - np.array([0.0, 0.005 * height])
    r = 0.06 * height
    for draw, fill in ((d, skin), (m, 255)):
        for a, b in _LIMB_IDX:
            draw.line([tuple(joints[a]), tuple(joints[b])], fill=fill, width=w)
        draw.polygon(torso, fill=fill)
        draw.ellipse([head_c[0] - r * 0.8, head_c[1] - r, head_c[0] + r * 0.8, head_c[1] + r], fill=fill)
        draw.line([tuple(head_c), tuple((ls + rs) / 2)], fill=fill, width=w)
    if dressed:  # a top over the torso and upper arms, so garments are seen on bodies
        for a, b in _LIMB_IDX[[0, 2]]:
            d.line([tuple(joints[a]), tuple((joints[a] + joints[b]) / 2)], fill=cloth, width=w + 1)
        d.polygon(torso, fill=cloth, outline=tuple(c // 2 for c in cloth))
    eye = max(int(round(0.012 * height)), 1)
    for name in ("left_eye", "right_eye"):
        x, y = joints[_CI[name]]
        d.rectangle([x - eye / 2, y - eye / 2, x + eye / 2, y + eye / 2], fill=(20, 20, 20))


def render_people(config: WorldConfig, generator: torch.Generator) -> tuple[np.ndarray, dict]:
    """Draw several persons (some small, some overlapping) and maybe a crowd region on a cluttered background.

    Parameters
    ----------
    config : WorldConfig
        World knobs (``people``, ``person_scale``, ``crowd_rate``, ``dressed_rate``, ``occlusion_rate``, ...).
    generator : torch.Generator
        The only source of randomness.

    Returns
    -------
    image : (H, W, 3) uint8 array.
    target : dict of arrays over the ``N`` annotations (persons first, then at most one crowd region)
        ``keypoints`` (N, 17, 3) float32 (x, y pixels, v in {0, 1, 2}; all 0 for a crowd); ``occluded`` (N, 17)
        bool; ``boxes`` (N, 4) float32 x1, y1, x2, y2; ``area`` (N,) float32 silhouette pixels; ``iscrowd`` (N,)
        int64; ``polygons`` list of N flat [x1, y1, x2, y2, ...] hulls (``None`` for a crowd); ``crowd_mask``
        (H, W) bool or ``None``; ``axis_normal`` (N, 2) float32; ``axis_offset`` (N,) float32.
    """
    draws = _Draws(generator)
    size = config.image_size
    n = draws.integer(*config.people)
    img = _background(config, draws)
    joints, exists = _skeletons(n, config.asymmetry, draws)
    heights = np.array([draws.uniform(*config.person_scale) for _ in range(n)]) * size  # (n,) pixels
    angles = np.radians(np.array([draws.uniform(-1, 1) for _ in range(n)]) * config.rotation_deg)
    # place: rotate about the feet-centre-ish point, scale to height, shift inside the image
    c, s = np.cos(angles), np.sin(angles)
    rot = np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], -2)  # (n, 2, 2)
    local = np.einsum("nij,nkj->nki", rot, joints - np.array([0.0, 0.5])) * heights[:, None, None]  # (n, 17, 2)
    pad = 0.1 * heights[:, None]
    lo, hi = local.min(1) - pad, local.max(1) + pad  # (n, 2)
    room = np.maximum(size - (hi - lo), 0.0)
    shift = np.array([[draws.uniform(), draws.uniform()] for _ in range(n)]).reshape(n, 2) * room - lo
    pts = local + shift[:, None, :]  # (n, 17, 2)
    normal = np.stack([c, s], -1)  # image of the canonical x axis direction: the axis's normal
    offset = np.einsum("ni,ni->n", normal, shift)  # the axis passes through the placed canonical x = 0 line

    crowd_mask = None
    if draws.uniform() < config.crowd_rate:  # a patch of small unlabelled figures, drawn first (behind everyone)
        crowd = Image.new("L", (size, size), 0)
        cx, cy, span = draws.uniform(0.1, 0.7) * size, draws.uniform(0.1, 0.7) * size, draws.uniform(0.2, 0.3) * size
        cj, _ = _skeletons(6, 1.0, draws)
        for k in range(6):
            h = draws.uniform(0.08, 0.14) * size
            at = np.array([cx + draws.uniform() * span, cy + draws.uniform() * span])
            p = (cj[k] - np.array([0.0, 0.5])) * h + at
            _draw_person(img, crowd, p, h, _color(draws, 80, 230), _color(draws), draws.uniform() < 0.5)
        crowd_mask = np.asarray(crowd) > 0

    masks = []
    for k in range(n):
        mask = Image.new("L", (size, size), 0)
        skin = (draws.integer(150, 235), draws.integer(100, 190), draws.integer(70, 160))
        _draw_person(img, mask, pts[k], heights[k], skin, _color(draws, 10, 245), draws.uniform() < config.dressed_rate)
        masks.append(np.asarray(mask) > 0)
    masks_np = np.stack(masks) if n else np.zeros((0, size, size), dtype=bool)  # (n, H, W)
    # a point is occluded when a person drawn later covers it
    ij = np.clip(np.floor(pts).astype(int), 0, size - 1)  # (n, 17, 2)
    covered_by = masks_np[:, ij[..., 1], ij[..., 0]]  # (n_cover, n, 17)
    later = np.arange(n)[:, None] > np.arange(n)[None, :]  # (n_cover, n): cover drawn after the person
    occluded = (covered_by & later[:, :, None]).any(0) & exists if n else np.zeros((0, 17), dtype=bool)
    hidden = _occlude(img, pts.reshape(-1, 2), exists.reshape(-1), 0.04 * size, config, draws).reshape(n, 17)
    occluded = occluded | hidden
    vis = np.where(exists, np.where(occluded, OCCLUDED, VISIBLE), ABSENT)
    keypoints = np.concatenate([np.where(exists[..., None], pts, 0.0), vis[..., None]], -1).astype(np.float32)
    area = masks_np.reshape(n, -1).sum(1).astype(np.float32)
    ys, xs = np.any(masks_np, 2), np.any(masks_np, 1)  # (n, H), (n, W)
    boxes = np.stack([xs.argmax(1), ys.argmax(1), size - xs[:, ::-1].argmax(1), size - ys[:, ::-1].argmax(1)],
                     1).astype(np.float32)
    w = 0.04 * heights[:, None, None]
    corners = np.concatenate([pts + w * np.array(o) for o in ((1, 1), (1, -1), (-1, 1), (-1, -1))], 1)
    head_top = ((pts[:, _CI["left_ear"]] + pts[:, _CI["right_ear"]]) / 2 - 0.08 * heights[:, None] * normal[:, ::-1]
                * np.array([-1.0, 1.0]))
    corners = np.clip(np.concatenate([corners, head_top[:, None]], 1), 0, size)
    polygons: list = [_hull(corners[k]).reshape(-1).round(2).tolist() for k in range(n)]
    iscrowd = np.zeros(n, dtype=np.int64)
    if crowd_mask is not None:
        # later persons cover parts of the crowd; its region keeps only what is still crowd, possibly nothing
        crowd_mask = crowd_mask & ~masks_np.any(0)
    if crowd_mask is not None and crowd_mask.any():
        cy_, cx_ = np.nonzero(crowd_mask)
        keypoints = np.concatenate([keypoints, np.zeros((1, 17, 3), np.float32)])
        occluded = np.concatenate([occluded, np.zeros((1, 17), bool)])
        boxes = np.concatenate([boxes, np.array([[cx_.min(), cy_.min(), cx_.max() + 1, cy_.max() + 1]], np.float32)])
        area = np.concatenate([area, np.array([crowd_mask.sum()], np.float32)])
        iscrowd = np.concatenate([iscrowd, np.ones(1, np.int64)])
        polygons.append(None)
        normal = np.concatenate([normal, np.zeros((1, 2))])
        offset = np.concatenate([offset, np.zeros(1)])
    else:
        crowd_mask = None
    target = {
        "keypoints": keypoints,
        "occluded": occluded,
        "boxes": boxes,
        "area": area,
        "iscrowd": iscrowd,
        "polygons": polygons,
        "crowd_mask": crowd_mask,
        "axis_normal": normal.astype(np.float32),
        "axis_offset": offset.astype(np.float32),
    }
    return np.array(img), target


