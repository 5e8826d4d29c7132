"""The synthetic world: its knobs do what they say, same seed same bytes, atomic writers, the real file layouts."""

from __future__ import annotations

import hashlib
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from fashion_lib.attributes import FASHIONAI_TASKS, M, N, Y
from fashion_lib.keypoints import COCO, FASHIONAI
from fashion_lib.synthetic import (
    CATEGORIES,
    CATEGORY_TASKS,
    DEEPFASHION_ATTRIBUTES,
    DEEPFASHION_CATEGORIES,
    REAL_FASHIONAI_FACTS,
    SyntheticDeepFashion,
    SyntheticGarments,
    SyntheticPeople,
    WorldConfig,
    garment_facts,
    item_generator,
    label_rates,
    mirror_errors,
    occluded_shares,
    pair_axis_offsets,
    render_deepfashion,
    render_garment,
    render_people,
    write_coco_people,
    write_deepfashion,
    write_fashionai_attributes,
    write_fashionai_keypoints,
)
from fashion_lib.synthetic import deepfashion as deepfashion_module
from fashion_lib.synthetic import writers as writers_module
from fashion_lib.synthetic.world import _TASK_MODELS

SMALL = WorldConfig(image_size=64, clutter=0.5)
WRITERS = {
    "fashionai_keypoints": write_fashionai_keypoints,
    "fashionai_attributes": write_fashionai_attributes,
    "deepfashion": write_deepfashion,
    "coco_people": write_coco_people,
}


def _gen(i: int, split: str = "t") -> torch.Generator:
    return item_generator(0, split, i)


def _tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------------------------------------------------------
# Configuration
# ------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "field, value",
    [("image_size", 8), ("scale", (0.9, 0.5)), ("person_scale", (0.0, 0.5)), ("rotation_deg", -1.0),
     ("perspective", 0.6), ("asymmetry", 1.5), ("occlusion_rate", -0.1), ("occluder_size", 0.0), ("clutter", 101.0),
     ("noise", 200.0), ("label_noise", 2.0), ("maybe_width", 0.5), ("people", (3, 1)), ("crowd_rate", 1.1),
     ("dressed_rate", -1.0), ("truncation_rate", 1.2), ("jpeg_quality", 100), ("occluded_label_noise", -0.1)],
)
def test_bad_config_values_raise_naming_the_field(field, value):
    with pytest.raises(ValueError, match=rf"^{field} must "):
        WorldConfig(**{field: value})


def test_bad_render_arguments_raise():
    with pytest.raises(ValueError, match=r"category must be one of"):
        render_garment(SMALL, _gen(0), category="hat")
    with pytest.raises(ValueError, match=r"latents\['skirt_length_labels'\] must be in \[0, 5\), got 5.0"):
        render_garment(SMALL, _gen(0), category="skirt", latents={"skirt_length_labels": 5.0})
    with pytest.raises(ValueError, match=r"latents has tasks \['pant_length_labels'\] that do not apply to 'skirt'"):
        render_garment(SMALL, _gen(0), category="skirt", latents={"pant_length_labels": 1.0})
    with pytest.raises(ValueError, match=r"fit must be in \[0, 1\], got 2"):
        render_garment(SMALL, _gen(0), fit=2)
    with pytest.raises(ValueError, match=r"body_length applies to blouses only"):
        render_garment(SMALL, _gen(0), category="dress", body_length=1.0)
    with pytest.raises(ValueError, match=r"category must be a drawn 1-based id"):
        render_deepfashion(SMALL, _gen(0), category=38)  # Cape: merged into Dress, never drawn
    with pytest.raises(ValueError, match=r"split must be a non-empty name without '/'"):
        SyntheticGarments(SMALL, 3, seed=0, split="a/b")


# ------------------------------------------------------------------------------------------------------------------
# Garments
# ------------------------------------------------------------------------------------------------------------------


def test_garments_have_exactly_their_category_points():
    for i in range(40):
        image, t = render_garment(SMALL, _gen(i))
        exists = t["keypoints"][:, 2] > 0
        mask = FASHIONAI.category_mask(t["category"]).numpy()
        assert not (exists & ~mask).any()
        cuffs = [FASHIONAI.index(n) for n in ("cuff_left_in", "cuff_left_out", "cuff_right_in", "cuff_right_out")]
        missing = mask & ~exists
        assert set(np.flatnonzero(missing)) <= set(cuffs)  # only a sleeveless garment loses points: its cuffs
        assert (t["keypoints"][~exists, :2] == 0).all()
        assert image.shape == (64, 64, 3) and image.dtype == np.uint8
        xy = t["keypoints"][exists, :2]
        assert (xy >= 0).all() and (xy < 64).all()


def test_same_seed_same_item_and_split_independence():
    a_img, a = render_garment(SMALL, _gen(3))
    b_img, b = render_garment(SMALL, _gen(3))
    c_img, _ = render_garment(SMALL, _gen(3, "other"))
    assert np.array_equal(a_img, b_img) and np.array_equal(a["keypoints"], b["keypoints"])
    assert not np.array_equal(a_img, c_img)
    ds = SyntheticGarments(SMALL, 10, seed=0, split="t")
    assert torch.equal(ds[3][0], torch.from_numpy(a_img).permute(2, 0, 1).float() / 255)
    # item i does not depend on which items were read before
    assert torch.equal(SyntheticPeople(SMALL, 5, 9)[4][1]["keypoints"], SyntheticPeople(SMALL, 5, 9)[4][1]["keypoints"])


def test_occlusion_rate_zero_hides_nothing_and_more_rate_hides_more():
    def occluded_fraction(rate: float) -> float:
        config = WorldConfig(image_size=64, occlusion_rate=rate)
        flags, exists = [], []
        for i in range(40):
            _, t = render_garment(config, _gen(i))
            flags.append(t["occluded"])
            exists.append(t["keypoints"][:, 2] > 0)
            assert ((t["keypoints"][:, 2] == 1) == t["occluded"]).all()  # occluded <=> v = 1
        return float(np.concatenate(flags).sum() / np.concatenate(exists).sum())

    low, mid, high = occluded_fraction(0.0), occluded_fraction(0.15), occluded_fraction(0.6)
    assert low == 0.0 and 0.0 < mid < high


def test_people_occlusion_comes_from_occluders_or_later_figures_only():
    config = WorldConfig(image_size=64, occlusion_rate=0.0, people=(1, 1))
    for i in range(20):
        _, t = render_people(config, _gen(i))
        assert not t["occluded"].any() and (t["keypoints"][..., 2] != 1).all()
    busy = WorldConfig(image_size=64, occlusion_rate=0.3, people=(3, 4))
    assert sum(int(render_people(busy, _gen(i))[1]["occluded"].sum()) for i in range(20)) > 0


def _pair_offsets(kp: np.ndarray, normal: np.ndarray, offset: float, schema) -> list[float]:
    """Signed distance of the midpoint of every complete pair from the axis."""
    out = []
    for left, right in schema.pairs.tolist():
        if kp[left, 2] > 0 and kp[right, 2] > 0:
            out.append(float(normal @ ((kp[left, :2] + kp[right, :2]) / 2) - offset))
    return out


def test_zero_asymmetry_puts_every_pair_midpoint_on_the_true_axis():
    config = WorldConfig(image_size=96, asymmetry=0.0, perspective=0.0, rotation_deg=30.0, occluded_label_noise=0.0)
    for i in range(30):
        _, t = render_garment(config, _gen(i))
        assert max(abs(d) for d in _pair_offsets(t["keypoints"], t["axis_normal"], t["axis_offset"], FASHIONAI)) < 1e-3
        _, p = render_people(config, _gen(i))
        for k in range(int((p["iscrowd"] == 0).sum())):
            d = _pair_offsets(p["keypoints"][k], p["axis_normal"][k], float(p["axis_offset"][k]), COCO)
            assert max(abs(x) for x in d) < 1e-3
    # the knob does something: at full asymmetry some pairs leave the axis by pixels
    bent = WorldConfig(image_size=96, asymmetry=1.0, perspective=0.0)
    worst = max(max(abs(d) for d in _pair_offsets(t["keypoints"], t["axis_normal"], t["axis_offset"], FASHIONAI))
                for t in (render_garment(bent, _gen(i))[1] for i in range(30)))
    assert worst > 2.0


def test_perspective_keeps_every_pair_on_both_sides_of_the_axis():
    config = WorldConfig(image_size=96, asymmetry=0.0, perspective=0.3, occluded_label_noise=0.0)
    for i in range(30):
        _, t = render_garment(config, _gen(i))
        n, c, kp = t["axis_normal"], t["axis_offset"], t["keypoints"]
        for left, right in FASHIONAI.pairs.tolist():
            if kp[left, 2] > 0 and kp[right, 2] > 0:
                assert (n @ kp[left, :2] - c) < 0 < (n @ kp[right, :2] - c)
        for centre in FASHIONAI.center.tolist():
            if kp[centre, 2] > 0 and t["category"] != "outwear":
                assert abs(float(n @ kp[centre, :2] - c)) < 1.0


@pytest.mark.parametrize("task", sorted(FASHIONAI_TASKS))
def test_maybe_labels_appear_only_near_class_boundaries(task):
    category = next(c for c in CATEGORIES if task in CATEGORY_TASKS[c])
    n = len(_TASK_MODELS[task].order)
    width = 0.15
    config = WorldConfig(image_size=32, maybe_width=width, clutter=0.0)
    for k, u in enumerate(np.linspace(0.0, n - 1e-6, 41)):
        _, t = render_garment(config, _gen(k), category=category, latents={task: float(u)})
        codes = t["attributes"][task]
        cls = _TASK_MODELS[task].order[min(int(u), n - 1)]
        assert codes[cls] == Y and int((codes == Y).sum()) == 1 and codes[0] == N  # never "Invisible"
        frac = u - math.floor(u)
        near = (frac < width and u >= 1) or (1 - frac < width and u < n - 1)
        assert bool((codes == M).any()) == near, (u, codes)
    plain = WorldConfig(image_size=32, maybe_width=0.0)
    for k in range(30):
        _, t = render_garment(plain, _gen(k), category=category)
        assert not (t["attributes"][task] == M).any()


def test_label_noise_changes_labels_only():
    clean, noisy = WorldConfig(image_size=64), WorldConfig(image_size=64, label_noise=1.0)
    changed = 0
    for i in range(20):
        a_img, a = render_garment(clean, _gen(i))
        b_img, b = render_garment(noisy, _gen(i))
        assert np.array_equal(a_img, b_img) and np.array_equal(a["keypoints"], b["keypoints"])
        assert a["latents"] == b["latents"]
        for task in a["attributes"]:
            ya, yb = a["attributes"][task].argmax(), b["attributes"][task].argmax()
            assert ya != yb and int((b["attributes"][task] == Y).sum()) == 1
            changed += 1
        c_img, c = render_deepfashion(clean, _gen(i))
        d_img, d = render_deepfashion(noisy, _gen(i))
        assert np.array_equal(c_img, d_img) and np.array_equal(c["keypoints"], d["keypoints"])
        assert c["category_id"] == d["category_id"] and not torch.equal(c["attributes"], d["attributes"])
        types = torch.tensor([t for _, t in DEEPFASHION_ATTRIBUTES])
        for ty in range(1, 6):  # a positive moves within its type: the count per type is kept
            assert int(c["attributes"][types == ty].sum()) == int(d["attributes"][types == ty].sum())
    assert changed > 20


# ------------------------------------------------------------------------------------------------------------------
# DeepFashion items
# ------------------------------------------------------------------------------------------------------------------


def test_deepfashion_categories_and_attributes_follow_the_spec():
    names = [n for n, _ in DEEPFASHION_CATEGORIES]
    assert len(names) == 50 and names[0] == "Anorak" and names[19] == "Turtleneck" and names[47] == "Romper"
    assert [t for _, t in DEEPFASHION_CATEGORIES] == [1] * 20 + [2] * 16 + [3] * 14
    attrs = [a for a, _ in DEEPFASHION_ATTRIBUTES]
    assert attrs == sorted(attrs) and any(" " in a for a in attrs)
    counts = np.bincount([t for _, t in DEEPFASHION_ATTRIBUTES], minlength=6)[1:]
    assert (counts >= 8).all() and (counts <= 12).all()


def test_deepfashion_labels_follow_the_drawing():
    attrs = [a for a, _ in DEEPFASHION_ATTRIBUTES]
    seen = set()
    config = WorldConfig(image_size=64, truncation_rate=0.0)
    for i in range(120):
        image, t = render_deepfashion(config, _gen(i))
        seen.add(t["category_id"])
        pos = {attrs[j] for j in t["attributes"].nonzero().flatten().tolist()}
        assert image.shape == (64, 64, 3)
        assert (t["landmark_codes"] != 2).all()
        by_type = np.bincount([DEEPFASHION_ATTRIBUTES[attrs.index(a)][1] for a in pos], minlength=6)
        assert by_type[1] == 1 and by_type[2] == 1  # exactly one texture and one fabric
        if t["category"] in ("Jeans", "Jeggings", "Cutoffs"):
            assert "denim" in pos
        if t["category"] in ("Tank", "Halter"):
            assert "sleeveless" in pos
        if t["category"] == "Peacoat":
            assert {"wool", "lapel"} <= pos
        if t["clothes_type"] == 2:  # lower body: no sleeves, no neck
            assert not pos & {"sleeveless", "short sleeve", "long sleeve", "v-neck", "collared"}
            assert t["keypoints"][:4, 2].sum() == 0 and (t["keypoints"][4:, 2] > 0).all()
    assert not seen & {38, 45, 49, 50} and len(seen) > 35  # the merged four are never drawn


@pytest.mark.parametrize("category, kind", [(26, "trousers"), (33, "skirt"), (17, "blouse"), (41, "dress")])
def test_deepfashion_landmarks_come_from_the_garment_points(category, kind):
    config = WorldConfig(image_size=64, truncation_rate=0.0, occlusion_rate=0.3)
    _, t = render_deepfashion(config, _gen(category), category=category)
    assert t["kind"] == kind
    # redraw the same garment: the item's own uniforms come first, then the garment renderer's
    g = _gen(category)
    torch.rand(deepfashion_module._NUM_UNIFORMS, generator=g, dtype=torch.float64)
    lat = t["latents"]
    tasks = {k: v for k, v in lat.items() if k in FASHIONAI_TASKS}
    _, garment = render_garment(config, g, category=kind, latents=tasks,
                                fabric=deepfashion_module.TEXTURES[int(lat["texture"])][1], fit=lat["fit"],
                                body_length=0.65 + 0.8 * lat["length"] if kind == "blouse" else None)
    fa = torch.from_numpy(garment["keypoints"])
    kp = torch.from_numpy(t["keypoints"])

    def point(name):
        return fa[FASHIONAI.index(name)]

    def mid(a, b):
        p, q = point(a), point(b)
        return torch.tensor([(p[0] + q[0]) / 2, (p[1] + q[1]) / 2, min(p[2], q[2])])

    if kind in ("skirt", "trousers"):
        assert kp[:4].abs().sum() == 0  # no collar, no sleeve
        assert torch.equal(kp[4], point("waistband_left")) and torch.equal(kp[5], point("waistband_right"))
        hem = (point("hemline_left"), point("hemline_right")) if kind == "skirt" else (
            mid("bottom_left_in", "bottom_left_out"), mid("bottom_right_in", "bottom_right_out"))
        assert torch.allclose(kp[6], hem[0]) and torch.allclose(kp[7], hem[1])
    else:
        assert torch.equal(kp[0], point("neckline_left")) and torch.equal(kp[1], point("neckline_right"))
        sleeve = mid("cuff_left_in", "cuff_left_out") if point("cuff_left_in")[2] > 0 else mid("shoulder_left",
                                                                                              "armpit_left")
        assert torch.allclose(kp[2], sleeve)
        hem = "hemline_left" if kind == "dress" else "top_hem_left"
        assert torch.equal(kp[6], point(hem))
        assert (kp[4:6].abs().sum() == 0) == (kind == "blouse")  # type 1 rows have no waistline
    assert torch.equal(torch.from_numpy(t["occluded"]), kp[:, 2] == 1)


def test_truncation_cuts_the_image_and_codes_the_cut_landmarks():
    config = WorldConfig(image_size=64, truncation_rate=1.0)
    cut = 0
    for i in range(30):
        image, t = render_deepfashion(config, _gen(i))
        h = image.shape[0]
        codes, xy = t["landmark_codes"], t["landmarks"]
        truncated = codes == 2
        assert (xy[truncated, 1] >= h - 0.5).all()
        assert (xy[(codes == 0) | (codes == 1), 1] < h - 0.5).all()
        assert (t["keypoints"][truncated] == 0).all()
        assert t["box"][3] <= h
        cut += int(truncated.any())
        assert h <= 64 and image.shape[1] == 64
    assert cut > 15


def test_synthetic_deepfashion_dataset_items():
    ds = SyntheticDeepFashion(SMALL, 6, seed=1, categories=[41])
    image, target = ds[2]
    assert target["category"] == "Dress" and target["labels"].tolist() == [41] and target["clothes_type"] == 3
    assert target["keypoints"].shape == (1, 8, 3) and target["attributes"].shape == (len(DEEPFASHION_ATTRIBUTES),)
    assert image.shape[0] == 3 and image.shape[2] == 64 and target["axis"].shape == (1, 3)
    with pytest.raises(ValueError, match="categories must be a non-empty subset"):
        SyntheticDeepFashion(SMALL, 6, seed=1, categories=[45])


# ------------------------------------------------------------------------------------------------------------------
# Writers: same seed same bytes, atomic, the real layouts
# ------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_writers_same_seed_same_bytes(tmp_path, name):
    write = WRITERS[name]
    a = _tree_digest(write(tmp_path / "a", 6, seed=2, config=SMALL))
    b = _tree_digest(write(tmp_path / "b", 6, seed=2, config=SMALL))
    c = _tree_digest(write(tmp_path / "c", 6, seed=3, config=SMALL))
    assert a == b and len(a) >= 6
    assert a != c


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_writers_are_atomic(tmp_path, monkeypatch, name):
    root = WRITERS[name](tmp_path / "set", 3, seed=1, config=SMALL)
    before = _tree_digest(root)
    calls = {"n": 0}
    real_jpeg = writers_module._jpeg

    def failing_jpeg(image, quality):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("disk full")
        return real_jpeg(image, quality)

    monkeypatch.setattr(writers_module, "_jpeg", failing_jpeg)
    with pytest.raises(RuntimeError, match="disk full"):
        WRITERS[name](tmp_path / "set", 5, seed=9, config=SMALL)
    assert _tree_digest(root) == before  # the old set is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set"]  # no half-written directory is left
    with pytest.raises(RuntimeError, match="disk full"):
        calls["n"] = 0
        WRITERS[name](tmp_path / "new", 5, seed=9, config=SMALL)
    assert not (tmp_path / "new").exists()


def test_deepfashion_files_follow_the_real_layout(tmp_path):
    root = write_deepfashion(tmp_path / "df", 20, seed=5, config=WorldConfig(image_size=64, truncation_rate=0.5))
    files = {p: (root / p).read_text().splitlines() for p in
             ("Anno/list_category_cloth.txt", "Anno/list_category_img.txt", "Anno/list_attr_cloth.txt",
              "Anno/list_attr_img.txt", "Anno/list_bbox.txt", "Anno/list_landmarks.txt",
              "Eval/list_eval_partition.txt")}
    cloth = files["Anno/list_category_cloth.txt"]
    assert cloth[:3] == ["50", "category_name  category_type", "Anorak                 1"]
    assert files["Anno/list_attr_cloth.txt"][1] == "attribute_name  attribute_type"
    assert files["Anno/list_category_img.txt"][1] == "image_name  category_label"
    assert files["Anno/list_bbox.txt"][1] == "image_name  x_1  y_1  x_2  y_2"
    assert files["Eval/list_eval_partition.txt"][1] == "image_name  evaluation_status"
    assert files["Anno/list_landmarks.txt"][1].startswith(
        "image_name  clothes_type  landmark_visibility_1  landmark_location_x_1  landmark_location_y_1  ")
    image_lists = [f for f in files if f not in ("Anno/list_category_cloth.txt", "Anno/list_attr_cloth.txt")]
    names = [line.split()[0] for line in files["Eval/list_eval_partition.txt"][2:]]
    assert names == sorted(names) and len(names) == 20
    for f in image_lists:
        assert files[f][0] == "20" and [line.split()[0] for line in files[f][2:]] == names
    for name in names:
        assert re.fullmatch(r"img/[A-Z][A-Za-z_-]+/img_\d{8}\.jpg", name) and (root / "Img" / name).is_file()
    for line in files["Anno/list_bbox.txt"][2:]:
        assert re.fullmatch(r"img/\S+ {2,}\d{3} \d{3} \d{3} \d{3}", line)
    for line in files["Anno/list_attr_img.txt"][2:]:
        assert set(line.split()[1:]) <= {"1", "-1"} and len(line.split()) == 1 + len(DEEPFASHION_ATTRIBUTES)
    for line in files["Anno/list_landmarks.txt"][2:]:
        fields = line.split()
        assert len(fields) == 2 + 3 * {"1": 6, "2": 4, "3": 8}[fields[1]]
        assert set(fields[2::3]) <= {"0", "1", "2"}
        assert all(re.fullmatch(r"\d{3,}", v) for k, v in enumerate(fields[2:]) if k % 3)
    codes = [c for line in files["Anno/list_landmarks.txt"][2:] for c in line.split()[2::3]]
    assert {"0", "1", "2"} <= set(codes)
    assert {line.split()[1] for line in files["Eval/list_eval_partition.txt"][2:]} == {"train", "val", "test"}


def test_fashionai_files_follow_the_real_layout(tmp_path):
    root = write_fashionai_keypoints(tmp_path / "kp", 5, seed=1, config=SMALL, val_fraction=0.4)
    train = (root / "Annotations" / "train.csv").read_text().splitlines()
    assert train[0].split(",")[:3] == ["image_id", "image_category", "neckline_left"] and len(train) == 4
    for row in train[1:]:
        cells = row.split(",")
        assert len(cells) == 26 and cells[0].split("/")[1] == cells[1]
        assert re.fullmatch(r"Images/(blouse|outwear|dress|skirt|trousers)/[0-9a-f]{32}\.jpg", cells[0])
        assert all(re.fullmatch(r"\d+_\d+_[01]|-1_-1_-1", c) for c in cells[2:])
    assert (root / "test.csv").read_text().splitlines()[0] == "image_id,image_category"
    labels = write_fashionai_attributes(tmp_path / "attr", 8, seed=1, config=SMALL, val_fraction=0.0)
    rows = (labels / "Annotations" / "label.csv").read_text().splitlines()
    assert [r.split(",")[1] for r in rows] == list(FASHIONAI_TASKS)  # tasks cycle through the 8 AttrKeys
    assert all(re.fullmatch(r"[nmy]+", r.split(",")[2]) for r in rows)


# ------------------------------------------------------------------------------------------------------------------
# Knob measurements
# ------------------------------------------------------------------------------------------------------------------


def test_pair_axis_offsets_by_hand_and_against_a_loop():
    kp = torch.zeros(2, 17, 3)
    kp[0, COCO.index("left_eye")] = torch.tensor([12.0, 5.0, 2.0])
    kp[0, COCO.index("right_eye")] = torch.tensor([6.0, 5.0, 1.0])
    kp[0, COCO.index("left_ear")] = torch.tensor([14.0, 6.0, 2.0])  # its partner is absent
    axis = torch.tensor([[1.0, 0.0, 8.0], [0.0, 0.0, 0.0]])  # the line x = 8; the second instance has no axis
    out = pair_axis_offsets(kp, axis, COCO)
    eye, ear = COCO.pair_names.index("eye"), COCO.pair_names.index("ear")
    assert out[0, eye] == 1.0 and out[0, ear].isnan() and out[1].isnan().all()
    g = torch.Generator().manual_seed(0)
    kp = torch.cat([torch.rand(5, 24, 2, generator=g) * 50, torch.randint(0, 3, (5, 24, 1), generator=g)], -1)
    normal = torch.nn.functional.normalize(torch.randn(5, 2, generator=g), dim=1)
    axis = torch.cat([normal, torch.rand(5, 1, generator=g) * 20], 1)
    out = pair_axis_offsets(kp, axis, FASHIONAI)
    for b in range(5):
        for p, (left, right) in enumerate(FASHIONAI.pairs.tolist()):
            if kp[b, left, 2] > 0 and kp[b, right, 2] > 0:
                expected = float(normal[b] @ ((kp[b, left, :2] + kp[b, right, :2]) / 2) - axis[b, 2])
                assert float(out[b, p]) == pytest.approx(expected, abs=1e-4)
            else:
                assert out[b, p].isnan()
    with pytest.raises(ValueError, match=r"keypoints must have shape \(N, 17, 3\)"):
        pair_axis_offsets(torch.zeros(1, 24, 3), torch.zeros(1, 3), COCO)


def test_label_rates_by_hand():
    codes = torch.tensor([[N, Y, M], [N, Y, N], [M, N, Y], [N, N, Y]])
    y_share, m_rate = label_rates(codes)
    assert y_share.tolist() == [0.0, 0.5, 0.5] and float(m_rate) == 0.5


def test_a_crowd_region_covered_whole_by_later_persons_is_dropped_not_a_crash():
    # found by the cpu profile: in this image the persons drawn after the crowd cover all of it
    image, target = SyntheticPeople(WorldConfig(image_size=128), 1200, seed=2, split="train")[556]
    assert image.shape == (3, 128, 128)
    assert not bool(target["iscrowd"].any()), "an empty crowd region must not become an annotation"
    boxes = target["boxes"]
    assert bool((boxes[:, 2:] > boxes[:, :2]).all()) and bool((target["area"] > 0).all())


# ------------------------------------------------------------------------------------------------------------------
# The figures of real-data-facts.md, on hand-worked garments and on the default world
# ------------------------------------------------------------------------------------------------------------------


def _symmetric_blouse(angle_deg: float = 0.0) -> torch.Tensor:
    """(1, 24, 3) a blouse symmetric about x = 50 (armpits 20 px apart), every point visible, rotated by
    ``angle_deg`` about (50, 50)."""
    kp = torch.zeros(1, 24, 3)
    half = {"neckline": (6.0, 10.0), "shoulder": (14.0, 14.0), "armpit": (10.0, 30.0), "cuff_in": (20.0, 45.0),
            "cuff_out": (26.0, 40.0), "top_hem": (12.0, 70.0)}  # pair -> (half width, y)
    for name, (left, right) in zip(FASHIONAI.pair_names, FASHIONAI.pairs.tolist(), strict=True):
        if name in half:
            dx, y = half[name]
            kp[0, left] = torch.tensor([50.0 - dx, y, 2.0])
            kp[0, right] = torch.tensor([50.0 + dx, y, 2.0])
    kp[0, FASHIONAI.index("center_front"), :] = torch.tensor([50.0, 20.0, 2.0])
    assert torch.equal(kp[0, :, 2] > 0, FASHIONAI.category_mask("blouse"))
    a = math.radians(angle_deg)
    rot = torch.tensor([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    kp[..., :2] = torch.where(kp[..., 2:] > 0, (kp[..., :2] - 50.0) @ rot.T + 50.0, 0.0)
    return kp


def test_occluded_shares_by_hand():
    kp = torch.zeros(2, 24, 3)
    kp[0, :3] = torch.tensor([[10.0, 20.0, 2.0], [50.0, 30.0, 1.0], [30.0, 80.0, 2.0]])
    kp[0, 3] = torch.tensor([0.0, 0.0, 0.0])  # absent: not counted
    shares = occluded_shares(kp)
    assert shares[0] == pytest.approx(1 / 3) and math.isnan(shares[1])


@pytest.mark.parametrize("angle", [0.0, 30.0])
def test_mirror_errors_by_hand(angle):
    kp = _symmetric_blouse(angle)
    exact = mirror_errors(kp, ["blouse"])
    assert int(exact.visible.sum()) == 12 and not exact.occluded.any()
    assert torch.allclose(exact.error[exact.visible], torch.zeros(12), atol=1e-5)
    # the left out-cuff hidden and 3 px off its symmetric place: 3 / 20 (armpit distance) from its partner's mirror
    # image; its partner is not measured (its own partner is not visible) and the pair leaves the other axes
    moved = kp.clone()
    i, j = FASHIONAI.index("cuff_left_out"), FASHIONAI.index("cuff_right_out")
    a = math.radians(angle)
    moved[0, i, :2] += 3.0 * torch.tensor([math.cos(a), math.sin(a)])
    moved[0, i, 2] = 1.0
    m = mirror_errors(moved, ["blouse"])
    assert m.occluded[0, i] and not m.visible[0, i] and float(m.error[0, i]) == pytest.approx(0.15, abs=1e-5)
    assert math.isnan(float(m.error[0, j])) and int(m.visible.sum()) == 10
    assert torch.allclose(m.error[m.visible], torch.zeros(10), atol=1e-5)
    # an axis needs min_pairs other fully visible pairs: a skirt's 2 pairs give none
    skirt = torch.zeros(1, 24, 3)
    for name, y in (("waistband", 10.0), ("hemline", 60.0)):
        left, right = FASHIONAI.pairs[FASHIONAI.pair_names.index(name)].tolist()
        skirt[0, left], skirt[0, right] = torch.tensor([40.0, y, 2.0]), torch.tensor([60.0, y, 2.0])
    assert mirror_errors(skirt, ["skirt"]).error.isnan().all()
    with pytest.raises(ValueError, match="min_pairs must be an integer >= 2"):
        mirror_errors(kp, ["blouse"], min_pairs=1)
    with pytest.raises(ValueError, match="categories has 2 names, expected N = 1"):
        mirror_errors(kp, ["blouse", "skirt"])


def test_garment_facts_by_hand():
    moved = _symmetric_blouse()
    i = FASHIONAI.index("cuff_left_out")
    moved[0, i, 0] += 3.0
    moved[0, i, 2] = 1.0
    facts = garment_facts(torch.cat([_symmetric_blouse(), moved]), ["blouse", "blouse"], 100.0)
    assert facts["extent 5 %"] == pytest.approx(0.60) and facts["extent 95 %"] == pytest.approx(0.60)  # 60 px tall
    assert facts["occluded 50 %"] == pytest.approx(1 / 26) and facts["occluded mean"] == pytest.approx(1 / 26)
    assert facts["mirror occluded, cuff_out"] == pytest.approx(0.15, abs=1e-5)
    assert facts["n mirror occluded, cuff_out"] == 1 and facts["n mirror visible, all pairs"] == 22
    assert facts["mirror visible, all pairs"] == pytest.approx(0.0, abs=1e-5)
    assert math.isnan(facts["mirror visible, hemline"])
    assert set(REAL_FASHIONAI_FACTS) - {"source"} <= set(facts)


def test_default_world_is_as_symmetric_and_framed_as_real_garments():
    """The default world's figures land within a quarter of the real FashionAI medians (real-data-facts.md)."""
    config = WorldConfig()
    targets = [t for _, t in SyntheticGarments(config, 300, seed=0, split="facts")]
    facts = garment_facts(torch.cat([t["keypoints"] for t in targets]), [t["category"] for t in targets],
                          config.image_size)
    for name in ("extent 50 %", "occluded mean", "mirror visible, all pairs", "mirror occluded, all pairs",
                 "mirror visible, neckline", "mirror visible, cuff_out", "mirror visible, hemline"):
        real = REAL_FASHIONAI_FACTS[name]
        assert abs(facts[name] - real) <= real / 4, (name, facts[name], real)
    # and a symmetric world is symmetric: no asymmetry, perspective or guessed hidden points, no mirror error
    exact = WorldConfig(asymmetry=0.0, perspective=0.0, occluded_label_noise=0.0)
    targets = [t for _, t in SyntheticGarments(exact, 40, seed=0, split="facts")]
    m = mirror_errors(torch.cat([t["keypoints"] for t in targets]), [t["category"] for t in targets])
    assert float(m.error[m.visible | m.occluded].max()) < 1e-3


def test_occluded_label_noise_moves_only_hidden_points():
    quiet = WorldConfig(image_size=96, occlusion_rate=0.5, occluded_label_noise=0.0)
    noisy = WorldConfig(image_size=96, occlusion_rate=0.5, occluded_label_noise=0.3)
    moved = 0
    for i in range(10):
        _, a = render_garment(quiet, _gen(i))
        _, b = render_garment(noisy, _gen(i))
        hidden = a["keypoints"][:, 2] == 1
        assert np.array_equal(a["keypoints"][:, 2], b["keypoints"][:, 2])
        assert np.allclose(a["keypoints"][~hidden], b["keypoints"][~hidden])
        moved += int((np.abs(a["keypoints"][hidden, :2] - b["keypoints"][hidden, :2]) > 0.5).any(1).sum())
    assert moved > 5


REAL_KEYPOINTS = Path(__file__).resolve().parents[2] / "shared" / "real-samples" / "fashionai-keypoints"


@pytest.mark.skipif(not (REAL_KEYPOINTS / "Annotations" / "train.csv").is_file(), reason="needs the real excerpt")
def test_garment_facts_of_a_real_excerpt_agree_with_the_published_figures():
    """50 real rows measured by our functions land near the figures measured on 6,415 (real-data-facts.md)."""
    from fashion_lib.data import FashionAIKeypoints

    ann = FashionAIKeypoints(REAL_KEYPOINTS, "Annotations/train.csv", images=False).annotations
    facts = garment_facts(ann.keypoints, ann.categories, 512.0)
    assert abs(facts["extent 50 %"] - REAL_FASHIONAI_FACTS["extent 50 %"]) < 0.05
    assert abs(facts["mirror visible, all pairs"] - REAL_FASHIONAI_FACTS["mirror visible, all pairs"]) < 0.015
    assert facts["n mirror visible, all pairs"] > 100
