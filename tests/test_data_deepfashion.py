"""DeepFashion loader: hand-typed fixtures (from the spec, not from our writer), round trips, malformed rows."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from fashion_lib.data.deepfashion import DeepFashionAttributes, read_deepfashion
from fashion_lib.synthetic import (
    DEEPFASHION_ATTRIBUTES,
    DEEPFASHION_CATEGORIES,
    SyntheticDeepFashion,
    WorldConfig,
    write_deepfashion,
)

FIXTURE = Path(__file__).parent / "fixtures" / "deepfashion"
NAMES = ("img/Lace_Trim_Cami_Romper/img_00000007.jpg", "img/Sheer_Pleated-Front_Blouse/img_00000001.jpg",
         "img/Distressed_Boyfriend_Jeans/img_00000012.jpg", "img/Floral_Print_Maxi_Dress/img_00000002.jpg")
FAST = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SMALL = WorldConfig(image_size=64, clutter=0.5, truncation_rate=0.3)


def _copy_fixture(directory: Path, size: tuple[int, int] | None = (300, 300)) -> Path:
    """The fixture tree under ``directory``, with grey stand-in images of ``size`` (width, height) unless None."""
    root = directory / "deepfashion"
    shutil.copytree(FIXTURE, root)
    if size is not None:
        for name in NAMES:
            (root / "Img" / name).parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", size, (100, 100, 100)).save(root / "Img" / name)
    return root


# ------------------------------------------------------------------------------------------------------------------
# Hand-typed fixture: every expected value below is read off the fixture files by eye
# ------------------------------------------------------------------------------------------------------------------


def test_fixture_tables():
    t, quirks = read_deepfashion(FIXTURE)
    assert quirks == {"unknown_attribute_values": 1, "truncated_landmarks": 3, "variation_type_column": 0}
    assert len(t.category_names) == 50 and t.category_names[47] == "Romper" and t.category_names[4] == "Button-Down"
    assert t.category_types.tolist() == [1] * 20 + [2] * 16 + [3] * 14
    assert t.attribute_names == ("a-line", "abstract", "abstract chevron print", "denim", "sleeveless", "v-neck",
                                 "boho")
    assert t.attribute_types.tolist() == [3, 1, 1, 2, 4, 4, 5]
    assert t.image_names == NAMES and t.splits == ("val", "train", "train", "test")
    assert t.labels.tolist() == [48, 3, 26, 41] and t.clothes_types.tolist() == [3, 1, 2, 3]
    assert t.attributes.tolist() == [[0, 0, 0, 0, 1, 0, 1], [0, 1, 1, 0, 0, 1, 0], [0, 0, 0, 1, 0, 0, 0],
                                     [1, 0, 0, 0, 1, 1, 1]]
    assert t.boxes[0].tolist() == [61, 44, 238, 291] and t.boxes[2].tolist() == [90, 11, 201, 296]
    assert t.lines["list_landmarks.txt"] == (3, 4, 5, 6)


def test_fixture_landmarks_in_slots_with_library_visibility():
    t, _ = read_deepfashion(FIXTURE)
    romper, blouse, jeans, dress = t.keypoints
    # the spec's example row: "3  0 121 058  0 176 060  1 098 120  0 201 118  0 110 160  0 190 162  2 104 299 ..."
    assert romper.tolist() == [[121, 58, 2], [176, 60, 2], [98, 120, 1], [201, 118, 2], [110, 160, 2], [190, 162, 2],
                               [0, 0, 0], [205, 280, 2]]
    # upper body: collar, sleeve, hem in slots 0-3 and 6-7; no waistline
    assert blouse.tolist() == [[128, 62, 2], [171, 63, 2], [75, 150, 2], [226, 148, 1], [0, 0, 0], [0, 0, 0],
                               [95, 207, 2], [203, 205, 2]]
    # lower body: waistline and hem in slots 4-7; the truncated left hem is absent
    assert jeans.tolist() == [[0, 0, 0]] * 4 + [[97, 15, 2], [195, 16, 2], [0, 0, 0], [186, 294, 2]]
    assert dress[4].tolist() == [105, 140, 1] and dress[7].tolist() == [0, 0, 0]


def test_fixture_split_as_dataset(tmp_path):
    root = _copy_fixture(tmp_path)
    with pytest.warns(UserWarning) as record:
        ds = DeepFashionAttributes(root, "train")
    messages = [str(w.message) for w in record]
    assert "list_attr_img.txt: 1 attribute values 0 ('unknown', read as negative)" in messages
    assert "list_landmarks.txt: 3 truncated landmarks (v = 2, read as absent)" in messages
    assert len(ds) == 2 and ds.quirks["out_of_bounds_points"] == 0
    image, target = ds[1]
    assert image.shape == (3, 300, 300)
    assert target["image_id"] == NAMES[2] and target["category"] == "Jeans" and target["labels"].tolist() == [26]
    assert target["clothes_type"] == 2 and target["attributes"].tolist() == [0, 0, 0, 1, 0, 0, 0]
    assert target["boxes"].tolist() == [[90, 11, 201, 296]] and target["keypoints"].shape == (1, 8, 3)
    assert [len(DeepFashionAttributes(root, s, images=False)) for s in ("val", "test")] == [1, 1]


def test_missing_image_names_the_partition_line(tmp_path):
    root = _copy_fixture(tmp_path)
    (root / "Img" / NAMES[2]).unlink()
    with pytest.raises(FileNotFoundError, match=r"list_eval_partition.txt line 5: image file .*img_00000012.jpg"):
        DeepFashionAttributes(root, "train")
    assert len(DeepFashionAttributes(root, "val")) == 1  # other splits do not need that image


def test_out_of_bounds_landmarks_are_counted_with_line(tmp_path):
    # 200 x 200 stand-ins: the blouse (line 4) has (226, 148), (95, 207), (203, 205) outside; the jeans (line 5)
    # have (186, 294); the truncated (112, 300) is absent and does not count
    root = _copy_fixture(tmp_path, size=(200, 200))
    with pytest.warns(UserWarning, match=r"list_landmarks.txt: 4 labelled landmarks outside .* 2 rows .* line 4\)"):
        ds = DeepFashionAttributes(root, "train")
    assert ds.quirks["out_of_bounds_points"] == 4


def test_variation_type_column_is_read_when_the_header_names_it(tmp_path):
    root = _copy_fixture(tmp_path, size=None)
    path = root / "Anno" / "list_landmarks.txt"
    lines = path.read_text().splitlines()
    lines[1] = lines[1].replace("clothes_type  ", "clothes_type  variation_type  ")
    lines[2:] = [" ".join(line.split()[:2] + ["1"] + line.split()[2:]) for line in lines[2:]]
    path.write_text("\n".join(lines) + "\n")
    t, quirks = read_deepfashion(root)
    assert quirks["variation_type_column"] == 1
    assert torch.equal(t.keypoints, read_deepfashion(FIXTURE)[0].keypoints)


# ------------------------------------------------------------------------------------------------------------------
# Malformed rows: the error names the file and the line
# ------------------------------------------------------------------------------------------------------------------


def _edit(root: Path, file: str, row: int, edit) -> int:
    """Apply ``edit`` to the fields of data row ``row`` of ``file``; returns the row's 1-based line number."""
    path = root / ("Eval" if file == "list_eval_partition.txt" else "Anno") / file
    lines = path.read_text().splitlines()
    lines[2 + row] = "  ".join(edit(lines[2 + row].split()))
    path.write_text("\n".join(lines) + "\n")
    return 3 + row


def _check_error(file: str, row: int, edit, match: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = _copy_fixture(Path(tmp), size=None)
        lineno = _edit(root, file, row, edit)
        with pytest.raises(ValueError, match=rf"{file} line {lineno}: {match}"):
            read_deepfashion(root)


@FAST
@given(st.integers(0, 3), st.integers(1, 3), st.sampled_from(["list_category_img.txt", "list_bbox.txt",
                                                              "list_eval_partition.txt"]))
def test_wrong_field_count(row, extra, file):
    expected = {"list_category_img.txt": f"{2 + extra} fields, expected 2", "list_bbox.txt": f"{5 + extra} fields, "
                "expected 5", "list_eval_partition.txt": r"'\w+( 7)+', expected one of"}
    _check_error(file, row, lambda f: f + ["7"] * extra, expected[file])


@FAST
@given(st.integers(0, 3), st.integers(-5, 999).filter(lambda c: not 1 <= c <= 50))
def test_unknown_category_id(row, category):
    _check_error("list_category_img.txt", row, lambda f: [f[0], str(category)], f"category_label = {category}")


@FAST
@given(st.integers(0, 3), st.integers(0, 5), st.integers(-3, 9).filter(lambda v: v not in (0, 1, 2)))
def test_landmark_visibility_outside_the_codes(row, slot, v):
    def edit(f):
        f[2 + 3 * slot] = str(v)
        return f

    # the jeans row (lower body) has 4 landmarks only
    slot = min(slot, 3) if row == 2 else slot
    _check_error("list_landmarks.txt", row, edit, f"landmark_visibility_{slot + 1} = {v}, expected one of")


@FAST
@given(st.integers(0, 3), st.integers(1, 4))
def test_landmark_row_length_must_follow_the_clothes_type(row, drop):
    _check_error("list_landmarks.txt", row, lambda f: f[:-drop], r"\d+ landmark values, clothes_type \d has")


@FAST
@given(st.integers(0, 3), st.sampled_from(["2", "-2", "x", "1.0"]), st.integers(0, 6))
def test_attribute_value_outside_the_format(row, value, column):
    def edit(f):
        f[1 + column] = value
        return f

    _check_error("list_attr_img.txt", row, edit, f"attribute {column + 1} = ")


@FAST
@given(st.integers(0, 3), st.integers(1, 3))
def test_attribute_count_must_match_the_attribute_list(row, extra):
    _check_error("list_attr_img.txt", row, lambda f: f + ["1"] * extra, f"{7 + extra} attribute values, expected 7")


def test_clothes_type_must_match_the_category(tmp_path):
    root = _copy_fixture(tmp_path, size=None)
    _edit(root, "list_category_img.txt", 1, lambda f: [f[0], "26"])  # the blouse row says Jeans (type 2)
    with pytest.raises(ValueError, match=r"list_landmarks.txt line 4: clothes_type 1, but .* 'Jeans'"):
        read_deepfashion(root)


def test_entry_count_and_unlisted_images(tmp_path):
    root = _copy_fixture(tmp_path, size=None)
    path = root / "Anno" / "list_bbox.txt"
    path.write_text(path.read_text().replace("4\n", "5\n", 1))
    with pytest.raises(ValueError, match=r"list_bbox.txt line 1: says 5 entries, the file has 4 data rows"):
        read_deepfashion(root)
    root = _copy_fixture(tmp_path / "b", size=None)
    _edit(root, "list_category_img.txt", 3, lambda f: ["img/Other/img_00000001.jpg", f[1]])
    with pytest.raises(ValueError, match=r"list_category_img.txt: no row for image .*Maxi_Dress.* line 6\)"):
        read_deepfashion(root)


def test_boxes_beyond_the_image_are_counted_and_boxes_outside_it_refused(tmp_path):
    root = _copy_fixture(tmp_path, size=(220, 300))  # train rows: blouse box x_2 = 229 > 220, jeans box inside
    with pytest.warns(UserWarning, match=r"list_bbox.txt: 1 boxes of split 'train' reach beyond their image \(first "
                                         r"at line 4\)"):
        ds = DeepFashionAttributes(root, "train")
    assert ds.quirks["out_of_bounds_boxes"] == 1
    _edit(root, "list_bbox.txt", 2, lambda f: [f[0], "240", "11", "260", "296"])  # the jeans box, right of 220
    with pytest.raises(ValueError, match=r"list_bbox.txt line 5: box \(240, 11, 260, 296\) lies outside its 220 x "
                                         "300 image"):
        DeepFashionAttributes(root, "train")


def test_empty_lists_undecodable_bytes_and_images_are_named(tmp_path):
    root = _copy_fixture(tmp_path, size=None)
    (root / "Anno" / "list_bbox.txt").write_text("0\nimage_name  x_1  y_1  x_2  y_2\n")
    with pytest.raises(ValueError, match="list_bbox.txt line 1: says 0 entries; an annotation list needs at least one"):
        read_deepfashion(root)
    root = _copy_fixture(tmp_path / "b", size=None)
    path = root / "Anno" / "list_attr_cloth.txt"
    data = path.read_bytes()
    at = data.index(b"abstract chevron")
    path.write_bytes(data[:at] + b"\x96" + data[at + 1:])  # a Windows-1252 dash
    with pytest.raises(ValueError, match=rf"list_attr_cloth.txt: byte {at} \(line 5\): 96 is not valid UTF-8"):
        read_deepfashion(root)
    root = _copy_fixture(tmp_path / "c", size=None)
    path = root / "Anno" / "list_landmarks.txt"
    path.write_bytes(path.read_bytes().replace(b"clothes_type", b"clothes\xfftype", 1))
    with pytest.raises(ValueError, match=r"list_landmarks.txt: byte \d+ \(line 2\): ff is not valid UTF-8"):
        read_deepfashion(root)
    root = _copy_fixture(tmp_path / "d")
    (root / "Img" / NAMES[2]).write_bytes(b"\x89PNG\r\n but cut short")
    with pytest.raises(ValueError, match=r"list_eval_partition.txt line 5: image file .*img_00000012.jpg' is not an "
                                         "image PIL can decode"):
        DeepFashionAttributes(root, "train")


# ------------------------------------------------------------------------------------------------------------------
# Round trip through the synthetic writer
# ------------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    return write_deepfashion(tmp_path_factory.mktemp("df") / "set", 40, seed=11, config=SMALL)


def test_round_trip_tables(written):
    t, quirks = read_deepfashion(written)
    assert t.category_names == tuple(name for name, _ in DEEPFASHION_CATEGORIES)
    assert t.category_types.tolist() == [ctype for _, ctype in DEEPFASHION_CATEGORIES]
    assert t.attribute_names == tuple(name for name, _ in DEEPFASHION_ATTRIBUTES)
    assert sorted(set(t.splits)) == ["test", "train", "val"] and len(t.image_names) == 40
    assert quirks["unknown_attribute_values"] == 0 and quirks["variation_type_column"] == 0


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_round_trip_items_equal_the_renderer(written, split):
    truth = json.loads((written / "Anno" / "synthetic_truth.json").read_text())
    ds = DeepFashionAttributes(written, split)
    assert ds.quirks["out_of_bounds_points"] == 0
    on_the_fly = SyntheticDeepFashion(SMALL, 40, seed=11, split=split)
    for k in range(len(ds)):
        image, target = ds[k]
        name = target["image_id"]
        assert truth[name]["split"] == split
        true_image, expected = on_the_fly[truth[name]["index"]]
        assert image.shape == true_image.shape and (image - true_image).abs().mean() < 0.05
        assert target["labels"].tolist() == expected["labels"].tolist()
        assert target["category"] == expected["category"] and target["clothes_type"] == expected["clothes_type"]
        assert torch.equal(target["attributes"], expected["attributes"])
        kp, true_kp = target["keypoints"][0], expected["keypoints"][0]
        assert torch.equal(kp[:, 2], true_kp[:, 2])
        assert (kp[:, :2] - true_kp[:, :2]).abs().max() <= 0.5
        assert (target["boxes"] - expected["boxes"]).abs().max() <= 0.5
