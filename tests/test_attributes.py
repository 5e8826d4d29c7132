import pytest
import torch

from fashion_lib.attributes import DESIGN_TASKS, FASHIONAI_TASKS, LENGTH_TASKS, M, N, Y, parse_label_string


def test_task_class_counts_match_the_label_string_lengths():
    # data-formats.md B.2: label-string lengths seen in the real data
    expected = {"skirt_length_labels": 6, "coat_length_labels": 8, "collar_design_labels": 5,
                "lapel_design_labels": 5, "neck_design_labels": 5, "neckline_design_labels": 10,
                "pant_length_labels": 6, "sleeve_length_labels": 9}
    assert {k: len(v) for k, v in FASHIONAI_TASKS.items()} == expected
    assert set(DESIGN_TASKS) | set(LENGTH_TASKS) == set(FASHIONAI_TASKS)
    assert not set(DESIGN_TASKS) & set(LENGTH_TASKS)


def test_parse_label_string():
    codes = parse_label_string("nnnmyn", "skirt_length_labels")
    assert codes.tolist() == [N, N, N, M, Y, N]
    assert codes.dtype == torch.long
    assert len({N, M, Y}) == 3


@pytest.mark.parametrize("labels, task, message", [
    ("nny", "skirt_length_labels", "has 3 characters, skirt_length_labels has 6 classes"),
    ("nnxnyn", "skirt_length_labels", r"contains \['x'\]"),
    ("ny", "hat_labels", "unknown attribute task 'hat_labels'"),
])
def test_parse_label_string_names_the_problem(labels, task, message):
    with pytest.raises(ValueError, match=f"label.csv line 3: .*{message}"):
        parse_label_string(labels, task, where="label.csv line 3")
