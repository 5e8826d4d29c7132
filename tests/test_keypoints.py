"""The schemas against the data sets' published lists (data-formats.md A.2 and D.1)."""

import pytest
import torch

from fashion_lib.keypoints import COCO, FASHIONAI, get_schema, keypoint_extent

# Typed from the FashionAI train.csv header (data-formats.md A.2), not from the module under test.
FASHIONAI_HEADER = (
    "image_id,image_category,neckline_left,neckline_right,center_front,shoulder_left,shoulder_right,armpit_left,"
    "armpit_right,waistline_left,waistline_right,cuff_left_in,cuff_left_out,cuff_right_in,cuff_right_out,"
    "top_hem_left,top_hem_right,waistband_left,waistband_right,hemline_left,hemline_right,crotch,bottom_left_in,"
    "bottom_left_out,bottom_right_in,bottom_right_out"
)
COCO_NAMES = ("nose left_eye right_eye left_ear right_ear left_shoulder right_shoulder left_elbow right_elbow "
              "left_wrist right_wrist left_hip right_hip left_knee right_knee left_ankle right_ankle").split()


def test_fashionai_names_follow_the_csv_columns():
    assert FASHIONAI.names == tuple(FASHIONAI_HEADER.split(",")[2:])
    assert FASHIONAI.num_keypoints == 24


def test_coco_names_follow_the_category_entry():
    assert COCO.names == tuple(COCO_NAMES)


@pytest.mark.parametrize("schema, pairs, centers", [(FASHIONAI, 11, ["center_front", "crotch"]), (COCO, 8, ["nose"])])
def test_pairs_and_centers_partition_the_points(schema, pairs, centers):
    assert schema.num_pairs == pairs
    assert [schema.names[i] for i in schema.center.tolist()] == centers
    covered = torch.cat([schema.pairs.flatten(), schema.center]).sort().values
    assert torch.equal(covered, torch.arange(schema.num_keypoints))


@pytest.mark.parametrize("schema", [FASHIONAI, COCO])
def test_pairs_are_left_then_right_of_the_same_part(schema):
    for (left, right), part in zip(schema.pairs.tolist(), schema.pair_names, strict=True):
        a, b = schema.names[left], schema.names[right]
        assert "left" in a and "right" in b
        assert a.replace("left", "") == b.replace("right", "")
        assert a.replace("left_", "").replace("_left", "") == part


@pytest.mark.parametrize("schema", [FASHIONAI, COCO])
def test_flip_swaps_every_pair_and_is_an_involution(schema):
    flip = schema.flip
    assert torch.equal(flip[flip], torch.arange(schema.num_keypoints))
    assert torch.equal(flip[schema.pairs[:, 0]], schema.pairs[:, 1])
    assert torch.equal(flip[schema.center], schema.center)
    for i, j in enumerate(flip.tolist()):
        assert schema.names[j] == schema.names[i].replace("left", "#").replace("right", "left").replace("#", "right")


def test_fashionai_categories_match_the_official_table():
    counts = {c: len(idx) for c, idx in FASHIONAI.categories.items()}
    assert counts == {"blouse": 13, "outwear": 14, "dress": 15, "skirt": 4, "trousers": 7}
    assert "center_front" not in [FASHIONAI.names[i] for i in FASHIONAI.categories["outwear"]]
    assert {FASHIONAI.names[i] for i in FASHIONAI.categories["skirt"]} == {
        "waistband_left", "waistband_right", "hemline_left", "hemline_right"}
    pairs = {c: int(FASHIONAI.category_pairs(c).sum()) for c in FASHIONAI.categories}
    assert pairs == {"blouse": 6, "outwear": 7, "dress": 7, "skirt": 2, "trousers": 3}


def test_normalizers_are_armpits_for_tops_and_waistband_for_bottoms():
    armpits = (FASHIONAI.index("armpit_left"), FASHIONAI.index("armpit_right"))
    waistband = (15, 16)
    assert armpits == (5, 6)
    for c in ("blouse", "outwear", "dress"):
        assert FASHIONAI.normalizer[c] == armpits
    for c in ("skirt", "trousers"):
        assert FASHIONAI.normalizer[c] == waistband


def test_coco_sigmas_are_cocoapis():
    expected = torch.tensor([.26, .25, .25, .35, .35, .79, .79, .72, .72, .62, .62, 1.07, 1.07, .87, .87, .89,
                             .89]) / 10
    assert torch.allclose(COCO.sigmas, expected)


def test_fashionai_sigmas_are_symmetric_and_positive():
    s = FASHIONAI.sigmas
    assert s.shape == (24,) and bool((s > 0).all())
    assert torch.equal(s[FASHIONAI.flip], s)


def test_lookups_fail_with_the_valid_names():
    with pytest.raises(KeyError, match="no key point 'elbow'.*neckline_left"):
        FASHIONAI.index("elbow")
    with pytest.raises(KeyError, match="no category 'hat'.*blouse"):
        FASHIONAI.category_mask("hat")
    with pytest.raises(ValueError, match="schema must be one of"):
        get_schema("mpii")
    assert get_schema("coco") is COCO and get_schema(FASHIONAI) is FASHIONAI


def test_missing_mask_reads_non_finite_coordinates_and_low_scores_as_missing():
    from fashion_lib.keypoints import missing_mask

    kps = torch.tensor([[[1.0, 2.0, 0.9], [float("nan"), 2.0, 0.9], [1.0, 2.0, 0.0], [1.0, 2.0, float("nan")],
                         [1.0, 2.0, 0.3]]])
    assert missing_mask(kps).tolist() == [[False, True, True, True, False]]
    assert missing_mask(kps, 0.5).tolist() == [[False, True, True, True, True]]


def test_keypoint_extent_by_hand():
    kp = torch.tensor([[[10.0, 20.0, 2.0], [30.0, 60.0, 1.0], [99.0, 0.0, 0.0]],
                       [[5.0, 5.0, 2.0], [45.0, 10.0, 2.0], [0.0, 0.0, 0.0]],
                       [[0.0, 0.0, 0.0]] * 3])
    extent = keypoint_extent(kp, 80, 50)  # box 20 x 40 in 50 x 80: max(0.4, 0.5); box 40 x 5: max(0.8, 1/16)
    assert extent[:2].tolist() == pytest.approx([0.5, 0.8]) and extent[2].isnan()
    with pytest.raises(ValueError, match="height and width must be > 0, got 0 x 50"):
        keypoint_extent(kp, 0, 50)


def test_keypoint_extent_takes_one_image_size_per_instance():
    kp = torch.zeros(2, 24, 3)
    kp[0, :3] = torch.tensor([[10.0, 20.0, 2.0], [50.0, 30.0, 1.0], [30.0, 80.0, 2.0]])  # box 40 x 60
    kp[0, 3] = torch.tensor([0.0, 0.0, 0.0])  # absent: not in the box
    kp[1] = kp[0]
    sides = torch.tensor([100.0, 200.0])
    assert keypoint_extent(kp, sides, sides).tolist() == pytest.approx([0.6, 0.3])
    with pytest.raises(ValueError, match="must have shape"):
        keypoint_extent(kp[0], 100, 100)
