"""Profiles and the notebooks' parameters (fashion_lib.profiles): parameter cells, profile files, checking names
and types, layering ``all``, a notebook's section and ``-p``."""

from pathlib import Path

import pytest

from fashion_lib.profiles import (
    Notebook,
    ProfileError,
    discover_notebooks,
    load_profile,
    notebook_parameters,
    read_parameters,
    resolve_parameters,
)

ROOT = Path(__file__).resolve().parents[1]


def _notebook(tmp_path: Path, name: str, params: str) -> Notebook:
    path = tmp_path / f"{name}.py"
    path.write_text(f'# %% [markdown]\n# # A test notebook\n\n# %% tags=["parameters"]\n{params}\n\n# %%\nprint(1)\n')
    return Notebook(path, read_parameters(path))


def test_read_parameters_takes_literal_assignments_in_order(tmp_path):
    nb = _notebook(tmp_path, "01_x", "run_info = {}\nseeds = [0, 1, 2]\nalpha = 0.4\nname = 'a'")
    assert list(nb.defaults.items()) == [("run_info", {}), ("seeds", [0, 1, 2]), ("alpha", 0.4), ("name", "a")]


@pytest.mark.parametrize("cell, message", [
    ("import os", "line 1: expected 'name = <literal>'"),
    ("x = 1\ny = len([1])", "line 2: the default of 'y' is not a literal"),
    ("x = = 1", "parameters cell does not parse"),
])
def test_read_parameters_rejects_what_it_cannot_override(tmp_path, cell, message):
    with pytest.raises(ProfileError, match=message):
        _notebook(tmp_path, "01_bad", cell)


def test_a_notebook_needs_exactly_one_parameters_cell(tmp_path):
    path = tmp_path / "02_none.py"
    path.write_text("# %%\nx = 1\n")
    with pytest.raises(ProfileError, match="exactly one cell tagged 'parameters', found 0"):
        read_parameters(path)


@pytest.fixture
def two_notebooks(tmp_path):
    return [_notebook(tmp_path, "01_a", "run_info = {}\nseed = 0\nalpha = 0.4"),
            _notebook(tmp_path, "02_b", "seed = 0\nsteps = 10\nseeds = [0]")]


def test_profile_all_section_reaches_only_notebooks_that_declare_the_name(two_notebooks):
    params = resolve_parameters(two_notebooks, {"all": {"seed": 3, "alpha": 1}, "02_b": {"steps": 5}})
    assert params == {"01_a": {"seed": 3, "alpha": 1}, "02_b": {"seed": 3, "steps": 5}}


def test_overrides_parse_yaml_and_can_address_one_notebook(two_notebooks):
    params = resolve_parameters(two_notebooks, {"all": {"seed": 3}},
                                [("seed", "7"), ("02_b.seeds", "[1, 2]"), ("01_a.alpha", "0.5")])
    assert params == {"01_a": {"seed": 7, "alpha": 0.5}, "02_b": {"seed": 7, "seeds": [1, 2]}}


@pytest.mark.parametrize("profile, overrides, message", [
    ({"02_b": {"stepz": 5}}, [], r"cpu.yaml \(02_b\): notebook '02_b' has no parameter 'stepz'; valid: \['seed'"),
    ({"all": {"sead": 1}}, [], "'all' sets 'sead', which no notebook declares"),
    ({"02_b": {"steps": "ten"}}, [], "parameter 'steps' of notebook '02_b' must be a int like its default 10"),
    ({"01_a": {"alpha": True}}, [], "must be a float"),
    ({"01_a": {"run_info": {}}}, [], "'run_info' is set by the runner"),
    ({"99x": {}}, [], "unknown section '99x'"),
    ({}, [("nope", "1")], "-p nope: no notebook declares a parameter 'nope'"),
    ({}, [("03_c.seed", "1")], "-p 03_c.seed: unknown notebook '03_c'"),
    ({}, [("steps", "[1")], r"-p steps \[1: value is not valid YAML"),
])
def test_bad_profiles_stop_with_a_message_naming_the_parameter(two_notebooks, profile, overrides, message):
    with pytest.raises(ProfileError, match=message):
        resolve_parameters(two_notebooks, profile, overrides, profile_name="profiles/cpu.yaml")


def test_the_shipped_profiles_resolve_against_the_shipped_notebooks():
    notebooks = discover_notebooks(ROOT)
    assert notebooks, "no notebooks found"
    for name in ("smoke", "cpu", "gpu"):
        profile = load_profile(ROOT / "notebooks" / "profiles" / f"{name}.yaml")
        params = resolve_parameters(notebooks, profile, profile_name=name)
        assert set(params) == {nb.name for nb in notebooks}
    for nb in notebooks:
        assert "run_info" in nb.defaults, f"{nb.path} must declare run_info (provenance)"


def test_a_section_for_an_unknown_notebook_is_refused_with_file_and_line(two_notebooks, tmp_path):
    path = tmp_path / "cpu.yaml"
    path.write_text("all:\n  seed: 1\n# a typo of 02_b:\n02_bb:\n  steps: 3\n")
    profile = load_profile(path)
    with pytest.raises(ProfileError, match=rf"{path} line 4: section '02_bb' names no notebook .*\['01_a', '02_b'\]"):
        resolve_parameters(two_notebooks, profile, profile_name=str(path))
    # a notebook that exists but is outside --only: its section is skipped, not refused
    path.write_text("all:\n  seed: 1\n02_b:\n  steps: 3\n")
    params = resolve_parameters(two_notebooks[:1], load_profile(path), known=["01_a", "02_b"])
    assert params == {"01_a": {"seed": 1}}


@pytest.mark.parametrize("text, message", [
    ("all:\n  seed: 1\n02_b:\n  steps: 3\nall:\n  seed: 2\n",
     r"line 5: key 'all' is written twice \(first on line 1\)"),
    ("02_b:\n  steps: 3\n  seed: 1\n  steps: 4\n", r"line 4: key 'steps' is written twice \(first on line 2\)"),
])
def test_a_key_written_twice_is_refused_with_file_and_line(tmp_path, text, message):
    path = tmp_path / "cpu.yaml"
    path.write_text(text)
    with pytest.raises(ProfileError, match=rf"{path} {message}"):
        load_profile(path)


def test_a_profile_that_is_not_utf8_names_the_byte(tmp_path):
    path = tmp_path / "cpu.yaml"
    path.write_bytes(b"all:\n  name: caf\xe9\n")
    with pytest.raises(ProfileError, match=rf"{path}: byte 16 \(line 2\): e9 is not valid UTF-8"):
        load_profile(path)


@pytest.fixture
def detector_notebook(tmp_path):
    return [_notebook(tmp_path, "10_t", "seeds = [0, 1]\nalphas = [0, 0.5]\n"
                                        "detector = {'preset': 'cpu', 'image_size': 128, 'lr': 0.001}")]


@pytest.mark.parametrize("profile, overrides, message", [
    ({}, [("seeds", '["a"]')], r"-p seeds: parameter 'seeds' of notebook '10_t' element \[0\] = 'a' \(str\) must be "
                               r"a int like the elements of its default \[0, 1\]"),
    ({"all": {"seeds": [0, 1.5]}}, [], r"element \[1\] = 1.5 \(float\) must be a int"),
    ({"all": {"detector": {"preset": "cpu", "imag_size": 64}}}, [],
     r"parameter 'detector' of notebook '10_t' has no field 'imag_size'; valid: \['preset', 'image_size', 'lr'\]"),
    ({}, [("detector", "{image_size: '64'}")], r"field 'image_size' must be a int like its default 128, got '64'"),
    ({}, [("detector", "[1]")], r"'detector' of notebook '10_t' must be a mapping like its default"),
])
def test_list_elements_and_mapping_fields_are_checked_against_the_defaults(detector_notebook, profile, overrides,
                                                                           message):
    with pytest.raises(ProfileError, match=message):
        resolve_parameters(detector_notebook, profile, overrides)
    ok = resolve_parameters(detector_notebook, {"all": {"alphas": [0, 0.25, 1], "detector": {"image_size": 64}}})
    # int or float, as the default; the fields not given keep the default's values
    assert ok == {"10_t": {"alphas": [0, 0.25, 1], "detector": {"preset": "cpu", "image_size": 64, "lr": 0.001}}}


def test_missing_profile_lists_the_available_ones():
    with pytest.raises(ProfileError, match=r"available profiles: \[.*'smoke'"):
        load_profile(ROOT / "notebooks" / "profiles" / "nope.yaml")


def test_a_mapping_given_in_part_keeps_the_other_fields_of_the_layer_below():
    notebooks = discover_notebooks(ROOT)
    profile = {"all": {"detector": {"preset": "cpu", "image_size": 64, "train_steps": 3, "cpn_steps": 3,
                                    "batch_size": 2, "lr": 0.001}},
               "11_table1_coco": {"detector": {"cpn_steps": 5}}}
    params = resolve_parameters(notebooks, profile, [("detector", "{train_steps: 10, scale_crop: false}")])
    fashionai, coco = params["10_table1_fashionai"]["detector"], params["11_table1_coco"]["detector"]
    # -p over 'all' over the notebook's default: only the named fields change
    assert fashionai == {"preset": "cpu", "image_size": 64, "train_steps": 10, "coco_train_steps": 300, "cpn_steps": 3,
                         "batch_size": 2, "lr": 0.001, "scale_crop": False, "amp": True}
    assert coco == {**fashionai, "cpn_steps": 5}  # the notebook's own section sits between 'all' and -p
    with pytest.raises(ProfileError, match="has no field 'steps'"):
        resolve_parameters(notebooks, {}, [("detector", "{steps: 10}")])


@pytest.mark.parametrize(("profile", "fashionai", "coco"), [("smoke", 3, 3), ("cpu", 900, 300), ("gpu", 20000, 20000)])
def test_each_profile_trains_people_for_the_steps_it_names(profile, fashionai, coco):
    # the notebooks' own default (300 people steps, the cpu profile's) must not leak into a profile that sets only
    # train_steps: the smoke book would train people 100 times longer than garments
    from fashion_lib.experiments.keypoints import KeypointSetup

    detector = notebook_parameters(profile)["11_table1_coco"]["detector"]
    steps = [KeypointSetup(schema=schema, **detector).keypoint_rcnn_steps for schema in ("fashionai", "coco")]
    assert steps == [fashionai, coco]
