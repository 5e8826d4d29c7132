"""FashionAI loaders: the real excerpts, synthetic round trips, and malformed rows that must fail by file and line."""

from __future__ import annotations

import csv
import shutil
import tempfile
import warnings
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from PIL import Image

from fashion_lib.attributes import FASHIONAI_TASKS, M, N, Y
from fashion_lib.data.fashionai import (
    CATEGORIES,
    HEADER,
    FashionAIAttributes,
    FashionAIKeypoints,
    parse_attribute_csv,
    parse_keypoint_csv,
)
from fashion_lib.keypoints import FASHIONAI
from fashion_lib.synthetic import (
    TASK_CATEGORIES,
    WorldConfig,
    item_generator,
    render_garment,
    write_fashionai_attributes,
    write_fashionai_keypoints,
)

REAL = Path(__file__).resolve().parents[2] / "shared" / "real-samples"
REAL_KP = REAL / "fashionai-keypoints" / "Annotations" / "train.csv"
REAL_ATTR = REAL / "fashionai-attributes" / "Annotations" / "label.csv"
needs_real = pytest.mark.skipif(not REAL_KP.is_file(), reason="real excerpts not found beside the repository")
SMALL = WorldConfig(image_size=64, clutter=0.5)
FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _stand_in_images(root: Path, image_ids, size: tuple[int, int] = (512, 512)) -> None:
    """Grey images of ``size`` (width, height) at every path: real FashionAI images are 512 x 512."""
    for image_id in image_ids:
        path = root / image_id
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            Image.new("RGB", size, (128, 128, 128)).save(path)


def _real_root(tmp: Path, size=(512, 512)) -> Path:
    root = tmp / "fashionai"
    (root / "Annotations").mkdir(parents=True)
    shutil.copy(REAL_KP, root / "Annotations" / "train.csv")
    with open(REAL_KP) as f:
        ids = [row[0] for row in list(csv.reader(f))[1:]]
    _stand_in_images(root, ids, size)
    return root


# ------------------------------------------------------------------------------------------------------------------
# The real excerpts
# ------------------------------------------------------------------------------------------------------------------


@needs_real
def test_real_keypoint_rows_read_with_known_values():
    ann, quirks = parse_keypoint_csv(REAL_KP)
    assert len(ann) == 50 and quirks == {"blank_lines": 0, "duplicate_rows": 0}
    assert [ann.categories.count(c) for c in CATEGORIES] == [10] * 5
    # line 2: blouse, neckline_left 212_179_0 (occluded), center_front 249_197_1 (visible), waistline -1_-1_-1
    assert ann.image_ids[0] == "Images/blouse/a7173f059a26f46e8001c648fd8a8746.jpg" and ann.lines[0] == 2
    assert ann.keypoints[0, 0].tolist() == [212.0, 179.0, 1.0]
    assert ann.keypoints[0, 2].tolist() == [249.0, 197.0, 2.0]
    assert ann.keypoints[0, 7].tolist() == [0.0, 0.0, 0.0]
    assert int(ann.labels[0]) == CATEGORIES.index("blouse") + 1
    # line 12: a dress whose waistline is absent although dresses have one; hemline_right 370_403_1
    assert ann.lines[10] == 12 and ann.categories[10] == "dress"
    assert ann.keypoints[10, 7, 2] == 0 and ann.keypoints[10, 18].tolist() == [370.0, 403.0, 2.0]
    # line 42: trousers, waistband occluded, crotch 228_175_1
    assert ann.categories[40] == "trousers" and ann.keypoints[40, 15].tolist() == [176.0, 88.0, 1.0]
    assert ann.keypoints[40, 19].tolist() == [228.0, 175.0, 2.0]


@needs_real
def test_real_rows_only_label_points_of_their_category():
    ann, _ = parse_keypoint_csv(REAL_KP)
    for k, category in enumerate(ann.categories):
        labelled = ann.keypoints[k, :, 2] > 0
        assert not (labelled & ~FASHIONAI.category_mask(category)).any()


@needs_real
def test_real_excerpt_as_dataset_with_stand_in_images(tmp_path):
    ds = FashionAIKeypoints(_real_root(tmp_path))
    assert len(ds) == 50 and ds.quirks == {"blank_lines": 0, "duplicate_rows": 0, "out_of_bounds_points": 0}
    assert ds.sizes.tolist() == [[512, 512]] * 50
    image, target = ds[0]
    assert image.shape == (3, 512, 512) and target["category"] == "blouse"
    kp = target["keypoints"][0]
    labelled = kp[kp[:, 2] > 0]
    # the box closes the labelled points (x 142..388, y 162..368) with a 5 % margin on each side
    assert torch.allclose(target["boxes"][0], torch.tensor([142 - 12.3, 162 - 10.3, 388 + 12.3, 368 + 10.3]))
    assert labelled[:, 0].min() == 142 and labelled[:, 1].max() == 368


@needs_real
def test_out_of_bounds_points_are_a_counted_quirk_with_file_and_line(tmp_path):
    # The real excerpt has none at 512 px (largest coordinate 505), so a point outside is a quirk we count, not an
    # error. Smaller stand-in images put some real points outside; count them independently of the loader.
    root = _real_root(tmp_path, size=(300, 400))
    with open(REAL_KP) as f:
        rows = list(csv.reader(f))[1:]
    expected, first = 0, None
    for lineno, row in enumerate(rows, start=2):
        for cell in row[2:]:
            x, y, v = (int(t) for t in cell.split("_"))
            if v != -1 and (x >= 300 or y >= 400):
                expected += 1
                first = first or lineno
    assert expected > 0
    with pytest.warns(UserWarning, match=rf"train.csv: {expected} labelled key points outside .* line {first}\)"):
        ds = FashionAIKeypoints(root)
    assert ds.quirks["out_of_bounds_points"] == expected


@needs_real
def test_real_attribute_rows_read_with_known_values():
    ann, quirks = parse_attribute_csv(REAL_ATTR)
    assert len(ann) == 48 and quirks == {"blank_lines": 0, "attribute_rows_without_one_y": 0, "duplicate_rows": 0}
    assert sorted(set(ann.tasks)) == sorted(FASHIONAI_TASKS) and all(ann.tasks.count(t) == 6 for t in FASHIONAI_TASKS)
    # line 5: coat_length_labels,nnnnmynn
    assert ann.lines[4] == 5 and ann.tasks[4] == "coat_length_labels"
    assert ann.labels[4].tolist() == [N, N, N, N, M, Y, N, N]
    idx, codes = ann.task_labels("collar_design_labels")
    assert idx.tolist() == [6, 7, 8, 9, 10, 11]
    assert codes[4].tolist() == [Y, M, N, N, N]  # line 11: ymnnn
    assert int((codes == M).sum()) == 2


@needs_real
def test_real_attribute_dataset_with_stand_in_images(tmp_path):
    root = tmp_path / "attr"
    (root / "Annotations").mkdir(parents=True)
    shutil.copy(REAL_ATTR, root / "Annotations" / "label.csv")
    ann, _ = parse_attribute_csv(REAL_ATTR)
    _stand_in_images(root, ann.image_ids)
    ds = FashionAIAttributes(root)
    image, target = ds[47]  # last line: sleeve_length_labels,nnnnnymnn
    assert target["task"] == "sleeve_length_labels" and target["labels"].tolist() == [N] * 5 + [Y, M, N, N]
    assert image.shape == (3, 512, 512)


# ------------------------------------------------------------------------------------------------------------------
# Round trips through the synthetic writers
# ------------------------------------------------------------------------------------------------------------------


def test_keypoint_round_trip_equals_the_renderer(tmp_path):
    root = write_fashionai_keypoints(tmp_path / "kp", 10, seed=3, config=SMALL, val_fraction=0.3)
    for csv_name, split, count in (("Annotations/train.csv", "train", 7), ("Annotations/val.csv", "val", 3)):
        ds = FashionAIKeypoints(root, csv=csv_name)
        assert len(ds) == count and ds.quirks == {"blank_lines": 0, "duplicate_rows": 0, "out_of_bounds_points": 0}
        for i in range(count):
            image, target = ds[i]
            truth_image, truth = render_garment(SMALL, item_generator(3, split, i))
            assert target["category"] == truth["category"]
            assert int(target["labels"]) == CATEGORIES.index(truth["category"]) + 1
            kp, true_kp = target["keypoints"][0], torch.from_numpy(truth["keypoints"])
            assert torch.equal(kp[:, 2], true_kp[:, 2])  # visibility, absent points included
            assert (kp[:, :2] - true_kp[:, :2]).abs().max() <= 0.5  # integer cells
            jpeg = (image - torch.from_numpy(truth_image).permute(2, 0, 1) / 255.0).abs().mean()
            assert jpeg < 0.05


def test_attribute_round_trip_equals_the_renderer(tmp_path):
    root = write_fashionai_attributes(tmp_path / "attr", 16, seed=5, config=SMALL, val_fraction=0.25)
    ds = FashionAIAttributes(root)
    assert len(ds) == 12
    tasks = list(FASHIONAI_TASKS)
    for i in range(len(ds)):
        _, target = ds[i]
        task = tasks[i % len(tasks)]
        g = item_generator(5, "train", i)
        cats = TASK_CATEGORIES[task]
        category = cats[int(torch.randint(len(cats), (1,), generator=g))]
        _, truth = render_garment(SMALL, g, category=category)
        assert target["task"] == task
        assert torch.equal(target["labels"], truth["attributes"][task])
        assert int((target["labels"] == Y).sum()) == 1


# ------------------------------------------------------------------------------------------------------------------
# Malformed rows must fail with the file and the line
# ------------------------------------------------------------------------------------------------------------------

_BLOUSE = ["Images/blouse/0123456789abcdef0123456789abcdef.jpg", "blouse"] + [
    "10_20_1" if FASHIONAI.category_mask("blouse")[k] else "-1_-1_-1" for k in range(24)
]


def _write_rows(directory: Path, rows: list[list[str]], header: str = ",".join(HEADER)) -> Path:
    path = directory / "train.csv"
    path.write_text("\n".join([header, *(",".join(r) for r in rows)]) + "\n")
    return path


def _check_keypoint_error(rows, bad_line: int, match: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = _write_rows(Path(tmp), rows)
        with pytest.raises(ValueError, match=rf"train.csv line {bad_line}: {match}"):
            parse_keypoint_csv(path)


@FAST
@given(st.integers(0, 4), st.integers(0, 2), st.integers(1, 6))
def test_wrong_column_count(position, kind, extra):
    rows = [list(_BLOUSE) for _ in range(5)]
    rows[position] = rows[position] + ["1_1_1"] * extra if kind else rows[position][: 26 - extra]
    columns = 26 + extra if kind else 26 - extra
    _check_keypoint_error(rows, position + 2, f"{columns} columns, expected 26")


@FAST
@given(st.integers(0, 4), st.text(alphabet="abcdefghijklmnopqrstuvwxyz_ ", min_size=1, max_size=12))
def test_unknown_category(position, category):
    assume(category not in CATEGORIES)
    rows = [list(_BLOUSE) for _ in range(5)]
    rows[position][1] = category
    _check_keypoint_error(rows, position + 2, "'image_category' = ")


@FAST
@given(st.integers(0, 4), st.sampled_from([0, 3, 5, 13]),
       st.sampled_from(["12", "12_3", "a_b_c", "1.5_2_1", "1_2_3_4", "", "1__1", " 1_2_1"]))
def test_malformed_cell(position, column, cell):
    rows = [list(_BLOUSE) for _ in range(5)]
    rows[position][2 + column] = cell
    _check_keypoint_error(rows, position + 2, f"'{FASHIONAI.names[column]}' = '{cell}', expected 'x_y_v'")


@FAST
@given(st.integers(0, 4), st.sampled_from([0, 3, 13]), st.integers(-9, 9).filter(lambda v: v not in (-1, 0, 1)))
def test_visibility_outside_the_format(position, column, v):
    rows = [list(_BLOUSE) for _ in range(5)]
    rows[position][2 + column] = f"10_20_{v}"
    _check_keypoint_error(rows, position + 2, f"'{FASHIONAI.names[column]}' = '10_20_{v}' has visibility {v}")


def test_absent_point_with_coordinates_and_point_of_another_category():
    rows = [list(_BLOUSE) for _ in range(3)]
    rows[1][2] = "10_20_-1"
    _check_keypoint_error(rows, 3, "'neckline_left' = '10_20_-1' is absent")
    rows = [list(_BLOUSE) for _ in range(3)]
    rows[2][2 + FASHIONAI.index("crotch")] = "5_5_1"
    _check_keypoint_error(rows, 4, "'crotch' = '5_5_1' is labelled, but blouse has no crotch")


def test_wrong_header_names_the_column(tmp_path):
    header = ",".join(HEADER).replace("armpit_left", "armpit_l")
    with pytest.raises(ValueError, match=r"train.csv line 1: header column 8 is 'armpit_l', expected 'armpit_left'"):
        parse_keypoint_csv(_write_rows(tmp_path, [_BLOUSE], header))


def test_missing_image_names_the_line(tmp_path):
    root = tmp_path / "split"
    (root / "Annotations").mkdir(parents=True)
    second = list(_BLOUSE)
    second[0] = "Images/blouse/ffffffffffffffffffffffffffffffff.jpg"
    _write_rows(root / "Annotations", [_BLOUSE, second])
    _stand_in_images(root, [_BLOUSE[0]])
    with pytest.raises(FileNotFoundError, match=r"train.csv line 3: image file .*ffffffff.jpg' not found"):
        FashionAIKeypoints(root)
    assert len(FashionAIKeypoints(root, images=False)) == 2  # the CSV alone still reads


def test_blank_lines_are_counted_not_dropped_silently(tmp_path):
    path = tmp_path / "train.csv"
    other = [_BLOUSE[0].replace("0123", "4567"), *_BLOUSE[1:]]
    path.write_text(",".join(HEADER) + "\n" + ",".join(_BLOUSE) + "\n\n" + ",".join(other) + "\n")
    ann, quirks = parse_keypoint_csv(path)
    assert len(ann) == 2 and quirks["blank_lines"] == 1 and ann.lines == (2, 4)


def _check_attribute_error(rows: list[str], bad_line: int, match: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "label.csv"
        path.write_text("".join(r + "\n" for r in rows))
        with pytest.raises(ValueError, match=rf"label.csv line {bad_line}: {match}"):
            parse_attribute_csv(path)


_ATTR_ROW = "Images/skirt_length_labels/0123456789abcdef0123456789abcdef.jpg,skirt_length_labels,nnynnn"


@FAST
@given(st.integers(0, 3), st.sampled_from(sorted(FASHIONAI_TASKS)), st.text(alphabet="nmy", max_size=12))
def test_label_string_of_the_wrong_length(position, task, label):
    assume(len(label) != len(FASHIONAI_TASKS[task]))
    rows = [_ATTR_ROW] * 4
    rows[position] = f"Images/{task}/0123456789abcdef0123456789abcdef.jpg,{task},{label}"
    _check_attribute_error(rows, position + 1, f"label string '{label}' has {len(label)} characters")


@FAST
@given(st.integers(0, 3), st.sampled_from(["x", "a,b", "a,b,nny", "a,b,c,d", "Images/x.jpg,skirt_length_labels"]))
def test_attribute_row_with_wrong_columns_or_task(position, row):
    rows = [_ATTR_ROW] * 4
    rows[position] = row
    columns = len(row.split(","))
    if columns != 3:
        _check_attribute_error(rows, position + 1, f"{columns} columns, expected 3")
    else:
        _check_attribute_error(rows, position + 1, "unknown attribute task 'b'")


def test_attribute_quirks_and_bad_characters(tmp_path):
    path = tmp_path / "label.csv"
    other = _ATTR_ROW.replace("0123", "4567")
    path.write_text(_ATTR_ROW.replace("nnynnn", "nnymyn") + "\n\n" + other.replace("nnynnn", "nnnnnn") + "\n")
    ann, quirks = parse_attribute_csv(path)
    assert quirks == {"blank_lines": 1, "attribute_rows_without_one_y": 2, "duplicate_rows": 0} and ann.lines == (1, 3)
    bad = [_ATTR_ROW, _ATTR_ROW.replace("nnynnn", "nnyxnn")]
    _check_attribute_error(bad, 2, r"label string 'nnyxnn' contains \['x'\]")


def test_missing_attribute_image_names_the_line(tmp_path):
    (tmp_path / "Annotations").mkdir()
    (tmp_path / "Annotations" / "label.csv").write_text(_ATTR_ROW + "\n")
    with pytest.raises(FileNotFoundError, match=r"label.csv line 1: image file .*0123456789abcdef.jpg' not found"):
        FashionAIAttributes(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(FashionAIAttributes(tmp_path, images=False)) == 1



# ------------------------------------------------------------------------------------------------------------------
# Duplicates, undecodable bytes, empty files, undecodable images
# ------------------------------------------------------------------------------------------------------------------


def test_an_exact_repeat_is_read_once_and_counted_a_conflicting_one_is_an_error(tmp_path):
    other = [_BLOUSE[0].replace("0123", "4567"), *_BLOUSE[1:]]
    ann, quirks = parse_keypoint_csv(_write_rows(tmp_path, [_BLOUSE, other, _BLOUSE]))
    assert len(ann) == 2 and ann.lines == (2, 3) and quirks["duplicate_rows"] == 1
    moved = list(_BLOUSE)
    moved[2] = "11_20_1"
    _check_keypoint_error([_BLOUSE, other, moved], 4, r"image '.*0123456789abcdef.jpg' is already labelled on line 2 "
                                                      "with other key points")
    path = tmp_path / "label.csv"
    path.write_text(f"{_ATTR_ROW}\n{_ATTR_ROW}\n{_ATTR_ROW.replace('0123', '4567')}\n")
    ann, quirks = parse_attribute_csv(path)
    assert len(ann) == 2 and ann.lines == (1, 3) and quirks["duplicate_rows"] == 1
    _check_attribute_error([_ATTR_ROW, _ATTR_ROW.replace("nnynnn", "nnnynn")], 2, r"image .*cdef.jpg. is "
                           "already labelled on line 1 with other AttrKey or labels")


def test_undecodable_bytes_are_named_with_the_file_and_byte_offset(tmp_path):
    path = _write_rows(tmp_path, [_BLOUSE])
    data = path.read_bytes()
    at = len(",".join(HEADER)) + 1 + 10  # inside the image path of line 2
    path.write_bytes(data[:at] + b"\xe9" + data[at + 1:])  # Latin-1 'é'
    with pytest.raises(ValueError, match=rf"train.csv: byte {at} \(line 2\): e9 is not valid UTF-8"):
        parse_keypoint_csv(path)
    attributes = tmp_path / "label.csv"
    attributes.write_bytes(b"Images/skirt_length_labels/\xff.jpg,skirt_length_labels,nnynnn\n")
    with pytest.raises(ValueError, match=r"label.csv: byte 27 \(line 1\): ff is not valid UTF-8"):
        parse_attribute_csv(attributes)


def test_a_file_without_data_rows_is_an_error_not_an_empty_data_set(tmp_path):
    with pytest.raises(ValueError, match="train.csv: no data rows after the header"):
        parse_keypoint_csv(_write_rows(tmp_path, []))
    path = tmp_path / "label.csv"
    for content in ("", "\n\n"):
        path.write_text(content)
        with pytest.raises(ValueError, match="label.csv: no rows; an attribute file needs at least one"):
            parse_attribute_csv(path)


def test_an_image_that_does_not_decode_is_named_with_the_csv_line(tmp_path):
    root = tmp_path / "split"
    (root / "Annotations").mkdir(parents=True)
    second = [_BLOUSE[0].replace("0123", "4567"), *_BLOUSE[1:]]
    _write_rows(root / "Annotations", [_BLOUSE, second])
    _stand_in_images(root, [_BLOUSE[0]])
    (root / second[0]).write_bytes(b"<html>not a picture</html>")  # a saved error page named .jpg
    with pytest.raises(ValueError, match=r"train.csv line 3: image file .*4567.*\.jpg' is not an image PIL can decode"):
        FashionAIKeypoints(root)
    with pytest.raises(ValueError, match=r"4567.*\.jpg: not an image PIL can decode"):
        FashionAIKeypoints(root, images=False)[1]
