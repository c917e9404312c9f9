import json

import numpy as np
import pytest

import augmentor
from augmentor import Pipeline


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
@pytest.mark.parametrize("name", augmentor.list_presets())
def test_save_load_roundtrip(tmp_path, suffix, name, photo):
    pipe = augmentor.preset(name, seed=4)
    path = tmp_path / f"p{suffix}"
    pipe.save(path)
    again = Pipeline.load(path)
    assert again.get_config() == pipe.get_config()
    for idx in range(3):
        np.testing.assert_array_equal(again(photo, index=idx), pipe(photo, index=idx))


def _load(tmp_path, cfg):
    path = tmp_path / "p.json"
    path.write_text(json.dumps(cfg))
    return Pipeline.load(path)


def test_unknown_op_named_with_suggestion(tmp_path):
    with pytest.raises(ValueError, match=r"ops\[1\]: unknown op 'rotat'; did you mean 'rotate'"):
        _load(tmp_path, {"version": 1, "ops": [{"op": "hflip"}, {"op": "rotat"}]})


def test_unknown_key_named(tmp_path):
    with pytest.raises(
        ValueError,
        match=r"unknown argument\(s\) \['degree'\]; did you mean "
        r"'degrees'",
    ):
        _load(tmp_path, {"version": 1, "ops": [{"op": "rotate", "degree": 10}]})
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['opps'\]"):
        _load(tmp_path, {"version": 1, "opps": []})


def test_nested_errors_have_a_path(tmp_path):
    cfg = {
        "version": 1,
        "ops": [{"op": "one_of", "ops": [{"op": "hflip"}, {"op": "rotate", "p": 2}]}],
    }
    with pytest.raises(
        ValueError,
        match=r"ops\[0\]\.ops\[1\]: rotate: p must be a number in "
        r"\[0, 1\], got 2",
    ):
        _load(tmp_path, cfg)


def test_version_required(tmp_path):
    with pytest.raises(ValueError, match="version must be 1, got None"):
        _load(tmp_path, {"ops": []})


def test_bad_yaml_is_a_clear_error(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("ops: [\n")
    with pytest.raises(ValueError, match="is not valid YAML"):
        Pipeline.load(path)
