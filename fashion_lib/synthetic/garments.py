"""Garments of FashionAI's five categories, each a parametric shape drawn from the 24-point schema.

Paper, section IV.A: FashionAI's key-point set has 24 points over 5 categories (blouse, outwear, dress, skirt,
trousers); the points of a garment's category exist and the others are absent. The attribute latents of
:mod:`fashion_lib.synthetic.world` decide the sleeve, the lengths and the neck region; the placement (rotation,
projective tilt of the symmetry axis, scale, shift) is returned as the true symmetry axis of the garment.

FashionAI's ``*_left`` points lie at the smaller ``x`` (as in the real rows).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw

from fashion_lib.keypoints import ABSENT, FASHIONAI, OCCLUDED, VISIBLE
from fashion_lib.synthetic.canvas import _background, _color, _occlude, _texture
from fashion_lib.synthetic.world import (
    _NECK_DEFAULT,
    _TASK_MODELS,
    CATEGORIES,
    CATEGORY_TASKS,
    WorldConfig,
    _Draws,
    _latent_to_labels,
)

__all__ = ["render_garment"]

# ----------------------------------------------------------------------------------------------------------------
# Garment geometry in the canonical frame: x right, y down, origin at the neck centre, shoulder width ~ 1.
# ----------------------------------------------------------------------------------------------------------------

_K = FASHIONAI.num_keypoints
_IDX = {name: i for i, name in enumerate(FASHIONAI.names)}

# Shape asymmetry: at asymmetry 1, each point of a pair moves by an independent offset whose x and y are uniform
# with this standard deviation (garment units, shoulder width ~ 1). Real garments are not cut, sewn or laid
# perfectly symmetric, least at the neckline and most at the hems (real-data-facts.md, the mirror error per pair);
# the values were set so that the default world's mirror errors land within a quarter of the real medians.
_PAIR_JITTER = {"neckline": 0.045, "shoulder": 0.08, "armpit": 0.08, "waistline": 0.05, "cuff_in": 0.1,
                "cuff_out": 0.02, "top_hem": 0.07, "waistband": 0.06, "hemline": 0.12, "bottom_in": 0.06,
                "bottom_out": 0.06}
_JITTER = np.zeros(_K)
for _pair, (_left, _right) in zip(FASHIONAI.pair_names, FASHIONAI.pairs.tolist(), strict=True):
    _JITTER[[_left, _right]] = _PAIR_JITTER[_pair]


def _rot(v: np.ndarray, angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([c * v[0] - s * v[1], s * v[0] + c * v[1]])


def _garment_shape(category: str, p: dict, draws: _Draws, asym: float):
    """Canonical key points (24, 2), existence mask (24,), drawing polygons and neck-detail polygons.

    ``p`` holds the drawing parameters of the attribute latents, and optionally ``fit`` in [0, 1] (0 narrow: fitted,
    skinny; 1 wide: boxy, flared, wide-leg) and, for tops, ``body`` (hem height, shoulder width ~ 1).
    """
    fit = p.get("fit")
    pts = np.zeros((_K, 2))
    exists = FASHIONAI.category_mask(category).numpy().copy()
    # (K, 2) shape asymmetry of every point, drawn always (the stream does not depend on asym); uniform with sd 1
    jitter = np.array([[draws.uniform(-1.0, 1.0), draws.uniform(-1.0, 1.0)] for _ in range(_K)]) * math.sqrt(3.0)
    jitter *= asym * _JITTER[:, None]

    def put(name: str, x: float, y: float) -> None:
        pts[_IDX[name]] = (x, y) + jitter[_IDX[name]]

    body: list[np.ndarray] = []  # garment polygons (drawn with the fabric)
    skin: list[np.ndarray] = []  # body/skin polygons drawn under the garment
    details: list[tuple[np.ndarray, str]] = []  # (polygon, "dark" | "light") neck details drawn over the fabric
    if category in ("blouse", "outwear", "dress"):
        nw, nd, shape = p.get("width", 0.17), p.get("depth", 0.16), p.get("shape", 0.0)
        strap = p.get("strap", 0.0)
        sh_y = 0.08 + 0.25 * strap
        put("neckline_left", -nw, 0.0)
        put("neckline_right", nw, 0.0)
        put("center_front", 0.0, nd)
        put("shoulder_left", -0.5, sh_y)
        put("shoulder_right", 0.5, sh_y)
        put("armpit_left", -0.44, 0.46)
        put("armpit_right", 0.44, 0.46)
        put("waistline_left", -0.39, 0.85)
        put("waistline_right", 0.39, 0.85)
        if category == "dress":
            hem_y = 0.85 + p.get("skirt", 1.0)
            skirt = p.get("skirt", 1.0)
            flare = 0.12 + 0.25 * skirt if fit is None else (0.02 + 0.5 * fit) * (0.4 + skirt)
            put("hemline_left", -0.39 - flare, hem_y)
            put("hemline_right", 0.39 + flare, hem_y)
            hem_l, hem_r = "hemline_left", "hemline_right"
        else:
            hem_y = p.get("body", 1.05)
            widen = 0.05 * max(hem_y - 0.85, 0.0) + (0.0 if fit is None else 0.3 * (fit - 0.5))
            put("top_hem_left", -0.45 - widen, hem_y)
            put("top_hem_right", 0.45 + widen, hem_y)
            hem_l, hem_r = "top_hem_left", "top_hem_right"
        # sleeves: base direction down-and-out; asymmetry raises one arm and folds one sleeve
        sleeve = p.get("sleeve", 0.75)
        for side, sign in (("left", -1.0), ("right", 1.0)):
            angle = math.radians(28.0 + asym * draws.uniform(-25.0, 70.0))
            fold, amount = draws.uniform(), draws.uniform()  # both drawn always: asym changes the pose only
            length = sleeve * (1.0 - asym * 0.5 * amount) if fold < asym else sleeve
            d = np.array([sign * math.sin(angle), math.cos(angle)])
            sh, ap = pts[_IDX[f"shoulder_{side}"]], pts[_IDX[f"armpit_{side}"]]
            if sleeve <= 0.04:  # sleeveless: the cuffs do not exist (like the real -1 cuffs of sleeveless dresses)
                exists[[_IDX[f"cuff_{side}_in"], _IDX[f"cuff_{side}_out"]]] = False
                arm_in, arm_out = ap + 0.9 * d, sh + 1.0 * d
                skin.append(np.stack([sh, arm_out, arm_in, ap]))
                continue
            out = sh + (length + 0.05) * d
            inn = ap + max(length - 0.3, 0.03) * d
            out, inn = out + jitter[_IDX[f"cuff_{side}_out"]], inn + jitter[_IDX[f"cuff_{side}_in"]]
            pts[_IDX[f"cuff_{side}_out"]] = out
            pts[_IDX[f"cuff_{side}_in"]] = inn
            body.append(np.stack([sh, out, inn, ap]))
            if length < 1.0:  # forearm skin below a short sleeve
                skin.append(np.stack([out, sh + 1.05 * d, ap + 0.75 * d, inn]))
        cut = _neckline_curve(nw, nd, shape)  # (S, 2) from neckline_left to neckline_right via the centre
        side_l = [pts[_IDX["shoulder_left"]], pts[_IDX["armpit_left"]]]
        side_r = [pts[_IDX["armpit_right"]], pts[_IDX["shoulder_right"]]]
        if category != "blouse":
            side_l.append(pts[_IDX["waistline_left"]])
            side_r.insert(0, pts[_IDX["waistline_right"]])
        body.append(np.concatenate([np.stack(side_l + [pts[_IDX[hem_l]], pts[_IDX[hem_r]]] + side_r), cut[::-1]]))
        skin.append(np.array([[-nw * 0.8, -0.15], [nw * 0.8, -0.15], [nw, nd + 0.05], [-nw, nd + 0.05]]))
        details += _neck_details(p, nw, nd, category)
    elif category == "skirt":
        length = p.get("skirt", 1.0)
        flare = 0.1 + 0.25 * length if fit is None else (0.02 + 0.5 * fit) * (0.4 + length)
        put("waistband_left", -0.35, 0.0)
        put("waistband_right", 0.35, 0.0)
        put("hemline_left", -0.35 - flare, length)
        put("hemline_right", 0.35 + flare, length)
        body.append(pts[[_IDX["waistband_left"], _IDX["hemline_left"], _IDX["hemline_right"], _IDX["waistband_right"]]])
        details.append((np.array([[-0.35, 0.0], [0.35, 0.0], [0.35, 0.06], [-0.35, 0.06]]), "dark"))
    else:  # trousers
        length = p.get("pant", 1.5)
        put("waistband_left", -0.4, 0.0)
        put("waistband_right", 0.4, 0.0)
        put("crotch", 0.0, 0.42)
        for side, sign in (("left", -1.0), ("right", 1.0)):
            bend = math.radians(asym * draws.uniform(-10.0, 30.0)) * sign
            hip = np.array([sign * 0.2, 0.1])
            out = hip + _rot(np.array([sign * (0.22 if fit is None else 0.13 + 0.15 * fit), length - 0.1]), bend)
            inn = hip + _rot(np.array([-sign * (0.07 if fit is None else 0.02 + 0.1 * fit), length - 0.1]), bend)
            out, inn = out + jitter[_IDX[f"bottom_{side}_out"]], inn + jitter[_IDX[f"bottom_{side}_in"]]
            pts[_IDX[f"bottom_{side}_out"]] = out
            pts[_IDX[f"bottom_{side}_in"]] = inn
            skin.append(np.stack([inn, out, hip + _rot(np.array([sign * 0.2, 1.55]), bend),
                                  hip + _rot(np.array([-sign * 0.05, 1.55]), bend)]))
        body.append(pts[[_IDX[n] for n in ("waistband_left", "bottom_left_out", "bottom_left_in", "crotch",
                                           "bottom_right_in", "bottom_right_out", "waistband_right")]])
        details.append((np.array([[-0.4, 0.0], [0.4, 0.0], [0.4, 0.06], [-0.4, 0.06]]), "dark"))
    return pts, exists, body, skin, details


def _neckline_curve(nw: float, nd: float, shape: float, samples: int = 9) -> np.ndarray:
    """(S, 2) neckline from left to right: a blend of round (0), V (1) and square (2) profiles of depth ``nd``."""
    t = np.linspace(-1.0, 1.0, samples)
    round_ = np.sqrt(np.clip(1.0 - t**2, 0.0, 1.0))
    vee = 1.0 - np.abs(t)
    square = np.where(np.abs(t) < 0.85, 1.0, (1.0 - np.abs(t)) / 0.15)
    s = min(max(shape, 0.0), 2.0)
    prof = np.where(s <= 1.0, (1 - s) * round_ + s * vee, (2 - s) * vee + (s - 1) * square)
    return np.stack([t * nw, nd * prof], axis=1)


def _neck_details(p: dict, nw: float, nd: float, category: str) -> list[tuple[np.ndarray, str]]:
    """Polygons of collars, bands, turtle necks and lapels (canonical frame), each with its tone."""
    out: list[tuple[np.ndarray, str]] = []
    collar, rnd = p.get("collar", 0.0), p.get("collar_round", 0.0)
    if collar > 0.02:
        for sign in (-1.0, 1.0):
            tip = np.array([sign * (nw + 0.4 * collar * (1 - rnd)), collar * (1.2 - 0.3 * rnd)])
            mid = np.array([sign * (nw + 0.5 * collar), 0.5 * collar])
            out.append((np.array([[sign * nw * 0.2, 0.02], [sign * (nw + 0.04), -0.03], mid, tip]), "light"))
    band = p.get("band", 0.0)
    if band > 0.01:
        out.append((np.array([[-nw, -band], [nw, -band], [nw, 0.01], [-nw, 0.01]]), "dark"))
    turtle, ruffle = p.get("turtle", 0.0), p.get("ruffle", 0.0)
    if turtle > 0.02:
        xs = np.linspace(-nw * 0.85, nw * 0.85, 7)
        top = -turtle - ruffle * 0.05 * (np.arange(7) % 2)
        poly = np.concatenate([np.stack([xs, top], 1), [[nw, 0.03], [-nw, 0.03]]])
        out.append((poly, "light"))
    lapel, notch = p.get("lapel", 0.0), p.get("notch", 0.0)
    if lapel > 0.02:
        for sign in (-1.0, 1.0):
            poly = [[sign * nw, 0.0], [sign * (nw + lapel * 0.6), 0.1 + 0.3 * lapel]]
            if notch > 0.5:
                poly += [[sign * (nw + lapel * 0.3), 0.15 + 0.3 * lapel],
                         [sign * (nw + lapel * 0.5), 0.25 + 0.4 * lapel]]
            poly += [[sign * 0.02, nd + 0.05]]
            out.append((np.array(poly), "dark"))
    return out


# ----------------------------------------------------------------------------------------------------------------
# Placement: rotation + projective tilt + scale + translation, fitted so that the whole shape stays in the image.
# ----------------------------------------------------------------------------------------------------------------


class _Placement:
    """Maps canonical points to pixels: ``H @ [x, y, 1]`` (projective), then scale and shift."""

    def __init__(self, angle: float, p: float, q: float) -> None:
        c, s = math.cos(angle), math.sin(angle)
        self.h = np.array([[c, -s, 0.0], [s, c, 0.0], [p, q, 1.0]])
        self.scale, self.shift = 1.0, np.zeros(2)

    def raw(self, xy: np.ndarray) -> np.ndarray:
        hom = np.concatenate([xy, np.ones((len(xy), 1))], axis=1) @ self.h.T  # (n, 3)
        return hom[:, :2] / hom[:, 2:3]

    def __call__(self, xy: np.ndarray) -> np.ndarray:
        return self.raw(xy) * self.scale + self.shift

    def fit(self, all_xy: np.ndarray, size: int, frac: float, draws: _Draws) -> None:
        """Scale so the longer side of ``all_xy`` is ``frac * size``; shift uniformly within the image."""
        raw = self.raw(all_xy)
        lo, hi = raw.min(0), raw.max(0)
        self.scale = frac * size / max(float((hi - lo).max()), 1e-6)
        extent = (hi - lo) * self.scale
        room = np.maximum(size - 2.0 - extent, 0.0)
        self.shift = 1.0 + np.array([draws.uniform() * room[0], draws.uniform() * room[1]]) - lo * self.scale

    def axis(self) -> tuple[np.ndarray, float]:
        """The image of the canonical axis ``x = 0``: unit normal (2,) and offset."""
        a, b = self(np.array([[0.0, 0.0], [0.0, 1.0]]))
        d = (b - a) / np.linalg.norm(b - a)
        normal = np.array([d[1], -d[0]])
        if normal[0] < 0:  # orient the normal towards +x, so "left" points (small x) have negative distance
            normal = -normal
        return normal, float(normal @ a)



def _polys_px(polys: Sequence[np.ndarray], place: _Placement) -> list[list[tuple[float, float]]]:
    return [[(float(x), float(y)) for x, y in place(poly)] for poly in polys]




def _check_look(category: str, fit, body_length, pattern_period, color) -> None:
    if fit is not None and not 0.0 <= fit <= 1.0:
        raise ValueError(f"fit must be in [0, 1], got {fit}")
    if body_length is not None:
        if category != "blouse":
            raise ValueError(f"body_length applies to blouses only (an outwear's comes from coat_length_labels), "
                             f"got it for {category!r}")
        if not 0.5 <= body_length <= 2.0:
            raise ValueError(f"body_length must be in [0.5, 2], got {body_length}")
    if pattern_period is not None and not 0.02 <= pattern_period <= 0.3:
        raise ValueError(f"pattern_period must be in [0.02, 0.3], got {pattern_period}")
    if color is not None and (len(color) != 3 or not all(0 <= int(v) <= 255 for v in color)):
        raise ValueError(f"color must be three integers in [0, 255], got {color!r}")


def render_garment(
    config: WorldConfig,
    generator: torch.Generator,
    category: str | None = None,
    latents: dict[str, float] | None = None,
    fabric: int | None = None,
    *,
    fit: float | None = None,
    body_length: float | None = None,
    pattern_period: float | None = None,
    color: Sequence[int] | None = None,
) -> tuple[np.ndarray, dict]:
    """Draw one garment on a cluttered background.

    Parameters
    ----------
    config : WorldConfig
        World knobs.
    generator : torch.Generator
        The only source of randomness.
    category : str, optional
        One of :data:`CATEGORIES`; drawn uniformly when ``None``.
    latents : dict, optional
        AttrKey -> latent in ``[0, n_k)`` (``n_k`` the task's number of drawable classes) to force an attribute;
        the others are drawn uniformly.
    fabric : int, optional
        Texture: 0 solid, 1 stripes, 2 checks, 3 dots; drawn uniformly when ``None``.
    fit : float, optional
        Width in [0, 1]: 0 narrow (fitted top, pencil skirt, skinny legs), 1 wide (boxy, flared, wide-leg);
        ``None`` keeps the FashionAI world's shapes. DeepFashion's shape attributes use it.
    body_length : float, optional
        Hem height of a blouse in garment units (shoulder width ~ 1), in [0.5, 2]; 1.05 when ``None``.
    pattern_period : float, optional
        Period of stripes, checks or dots as a fraction of the image side, in [0.02, 0.3]; random when ``None``.
    color : (3,) int, optional
        RGB of the fabric's main colour (the pattern's second colour is its contrasting shade); random when
        ``None``. The same random numbers are drawn whether or not these four are given.

    Returns
    -------
    image : (H, W, 3) uint8 array, ``H = W = config.image_size``.
    target : dict
        ``keypoints`` (24, 3) float32 array, x, y in pixels, v in {0, 1, 2}; ``occluded`` (24,) bool;
        ``box`` (4,) float32 x1, y1, x2, y2 of the drawn garment, pixels; ``category`` str; ``attributes`` dict
        AttrKey -> (C,) long codes; ``latents`` dict AttrKey -> float; ``fabric`` int; ``axis_normal`` (2,)
        float32 unit; ``axis_offset`` float, pixels.
    """
    draws = _Draws(generator)
    if category is None:
        category = CATEGORIES[draws.integer(0, len(CATEGORIES) - 1)]
    elif category not in CATEGORIES:
        raise ValueError(f"category must be one of {CATEGORIES}, got {category!r}")
    latents = dict(latents or {})
    unknown = set(latents) - set(CATEGORY_TASKS[category])
    if unknown:
        raise ValueError(f"latents has tasks {sorted(unknown)} that do not apply to {category!r}; "
                         f"valid: {CATEGORY_TASKS[category]}")
    _check_look(category, fit, body_length, pattern_period, color)
    params: dict[str, float] = dict(_NECK_DEFAULT.get(category, {}))
    attributes, used = {}, {}
    for task in CATEGORY_TASKS[category]:
        n = len(_TASK_MODELS[task].order)
        u = latents.get(task)
        if u is None:
            u = draws.uniform(0.0, n)
        elif not 0.0 <= u < n:
            raise ValueError(f"latents[{task!r}] must be in [0, {n}), got {u}")
        codes, p = _latent_to_labels(task, u, config, draws)
        attributes[task], used[task] = codes, float(u)
        params.update(p)
    if fit is not None:
        params["fit"] = fit
    if body_length is not None:
        params["body"] = body_length

    pts, exists, body, skin, details = _garment_shape(category, params, draws, config.asymmetry)
    lim = math.radians(config.rotation_deg)
    place = _Placement(draws.uniform(-lim, lim), draws.uniform(-1, 1) * config.perspective,
                       draws.uniform(-1, 1) * config.perspective)
    everything = np.concatenate([pts[exists]] + list(body) + [d for d, _ in details])
    place.fit(everything, config.image_size, draws.uniform(*config.scale), draws)

    img = _background(config, draws)
    draw = ImageDraw.Draw(img)
    skin_color = (draws.integer(150, 235), draws.integer(110, 190), draws.integer(80, 160))
    for poly in _polys_px(skin, place):
        draw.polygon(poly, fill=skin_color)
    mask = Image.new("L", img.size, 0)
    mdraw = ImageDraw.Draw(mask)
    body_px = _polys_px(body, place)
    for poly in body_px:
        mdraw.polygon(poly, fill=255)
    if fabric is None:
        fabric = draws.integer(0, 3)
    elif fabric not in (0, 1, 2, 3):
        raise ValueError(f"fabric must be 0 (solid), 1 (stripes), 2 (checks) or 3 (dots), got {fabric!r}")
    texture = Image.fromarray(np.ascontiguousarray(_texture(config, draws, fabric, pattern_period, color)))
    img.paste(texture, (0, 0), mask)
    tone = np.array(_color(draws, 0, 255))
    dark, light = tuple(int(v) for v in tone // 3), tuple(int(v) for v in 255 - (255 - tone) // 3)
    for poly in body_px:
        draw.line(poly + [poly[0]], fill=dark, width=1)
    for poly, kind in details:
        draw.polygon(_polys_px([poly], place)[0], fill=dark if kind == "dark" else light, outline=dark)

    pts_px = place(pts)
    box = np.concatenate([np.min([np.min(b, 0) for b in body_px], 0), np.max([np.max(b, 0) for b in body_px], 0)])
    radius = config.occluder_size * float(max(box[2] - box[0], box[3] - box[1]))
    occluded = _occlude(img, pts_px, exists, radius, config, draws)
    # an annotator guesses where a hidden point is: its label moves by a uniform offset of sd occluded_label_noise
    # (garment units), drawn for every point so that the stream does not depend on which points were hidden
    guess = np.array([[draws.uniform(-1.0, 1.0), draws.uniform(-1.0, 1.0)] for _ in range(_K)]) * math.sqrt(3.0)
    guessed = np.clip(pts_px + guess * config.occluded_label_noise * place.scale, 1.0, config.image_size - 1.0)
    pts_px = np.where(occluded[:, None], guessed, pts_px)  # a guess stays inside the drawing's 1-px margin
    vis = np.where(exists, np.where(occluded, OCCLUDED, VISIBLE), ABSENT)
    keypoints = np.concatenate([np.where(exists[:, None], pts_px, 0.0), vis[:, None]], axis=1).astype(np.float32)
    normal, offset = place.axis()
    target = {
        "keypoints": keypoints,
        "occluded": occluded,
        "box": np.clip(box, 0, config.image_size).astype(np.float32),
        "category": category,
        "attributes": attributes,
        "latents": used,
        "fabric": fabric,
        "axis_normal": normal.astype(np.float32),
        "axis_offset": offset,
    }
    return np.array(img), target


