"""Pixels shared by the garment and people renderers: backgrounds with clutter, fabrics, occluders.

Image coordinates are continuous pixels (the centre of pixel ``(i, j)`` is ``(j + 0.5, i + 0.5)``), x right, y down.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

from fashion_lib.synthetic.world import WorldConfig, _Draws

__all__: list[str] = []  # internal to the synthetic world

# ----------------------------------------------------------------------------------------------------------------

_GRIDS: dict[int, tuple[np.ndarray, np.ndarray]] = {}


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    if size not in _GRIDS:
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
        _GRIDS[size] = (xx, yy)
    return _GRIDS[size]


def _color(draws: _Draws, lo: int = 0, hi: int = 255) -> tuple[int, int, int]:
    return (draws.integer(lo, hi), draws.integer(lo, hi), draws.integer(lo, hi))


def _background(cfg: WorldConfig, draws: _Draws) -> Image.Image:
    size = cfg.image_size
    base = np.array(_color(draws, 60, 230), dtype=np.float32)
    xx, yy = _grid(size)
    grad = (draws.uniform(-0.3, 0.3) * xx + draws.uniform(-0.3, 0.3) * yy)[..., None] * (128.0 / size)
    img = base + grad
    if cfg.noise > 0:
        img = img + draws.numpy().normal(0.0, cfg.noise, size=(size, size, 1)).astype(np.float32)
    out = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    n_clutter = int(np.random.default_rng(draws.seed + 1).poisson(cfg.clutter)) if cfg.clutter > 0 else 0
    draw = ImageDraw.Draw(out)
    for _ in range(n_clutter):
        x0, y0 = draws.uniform(-0.1, 1.0) * size, draws.uniform(-0.1, 1.0) * size
        w, h = draws.uniform(0.05, 0.35) * size, draws.uniform(0.05, 0.35) * size
        box = [x0, y0, x0 + w, y0 + h]
        (draw.ellipse if draws.uniform() < 0.5 else draw.rectangle)(box, fill=_color(draws, 40, 240))
    return out


def _texture(
    cfg: WorldConfig, draws: _Draws, kind: int, period: float | None = None, color: Sequence[int] | None = None
) -> np.ndarray:
    """(H, W, 3) uint8 fabric: 0 solid, 1 stripes, 2 checks, 3 dots.

    ``period`` (fraction of the image side) and ``color`` (RGB of the main colour; the second colour is then its
    contrasting shade) override the random ones; the same numbers are drawn either way, so the rest of the drawing
    does not change.
    """
    size = cfg.image_size
    c1 = np.array(_color(draws, 20, 235), dtype=np.uint8)
    c2 = np.array(_color(draws, 20, 235), dtype=np.uint8)
    if color is not None:
        base = np.asarray(color, dtype=np.float64)
        shade = base * 0.45 if base.mean() > 110 else base + (255.0 - base) * 0.6
        c1, c2 = base.astype(np.uint8), shade.astype(np.uint8)
    if kind == 0:
        return np.broadcast_to(c1, (size, size, 3))
    xx, yy = _grid(size)
    drawn = draws.uniform(0.04, 0.1)
    period = (drawn if period is None else period) * size
    angle = draws.uniform(0.0, math.pi)
    u = (xx * math.cos(angle) + yy * math.sin(angle)) / period
    if kind == 1:
        mask = (u % 1.0) < 0.5
    else:
        v = (-xx * math.sin(angle) + yy * math.cos(angle)) / period
        if kind == 2:
            mask = ((u % 1.0) < 0.5) ^ ((v % 1.0) < 0.5)
        else:
            mask = ((u % 1.0) - 0.5) ** 2 + ((v % 1.0) - 0.5) ** 2 < 0.07
    return np.where(mask[..., None], c1, c2)


def _occlude(
    img: Image.Image, pts_px: np.ndarray, exists: np.ndarray, radius: float, cfg: WorldConfig, draws: _Draws
) -> np.ndarray:
    """Draw occluders centred near randomly chosen existing points; return (K,) bool of the points they hide."""
    size = cfg.image_size
    mask = Image.new("L", (size, size), 0)
    md = ImageDraw.Draw(mask)
    d = ImageDraw.Draw(img)
    any_drawn = False
    for k in np.flatnonzero(exists):
        if draws.uniform() >= cfg.occlusion_rate:
            continue
        r = radius * draws.uniform(0.6, 1.2)
        cx, cy = pts_px[k] + np.array([draws.uniform(-0.5, 0.5), draws.uniform(-0.5, 0.5)]) * r
        box = [cx - r, cy - r, cx + r, cy + r]
        fill = _color(draws, 0, 255)
        if draws.uniform() < 0.5:
            d.ellipse(box, fill=fill)
            md.ellipse(box, fill=255)
        else:
            d.rectangle(box, fill=fill)
            md.rectangle(box, fill=255)
        any_drawn = True
    if not any_drawn:
        return np.zeros(len(pts_px), dtype=bool)
    m = np.asarray(mask)
    ij = np.clip(np.floor(pts_px).astype(int), 0, size - 1)
    return (m[ij[:, 1], ij[:, 0]] > 0) & exists

