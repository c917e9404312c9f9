"""`augment tune` on tiny real folders: the table, the pipeline, flips on mirrored classes,
resume, and its errors."""

import json

import numpy as np
import pytest
import yaml

from augmentor.datasets import fashion_mnist_subset
from augmentor.pipeline import Pipeline
from transfer.config import TuneConfig
from transfer.errors import DataError
from transfer.images import LabelledImages
from transfer.tuning import CANDIDATES_FILE, DEFAULT, tune


def handed(per_class: int) -> LabelledImages:
    """Footwear of Fashion-MNIST (all drawn toe-left) and its mirror image as classes of their
    own: a horizontal flip turns one class into another."""
    ds = fashion_mnist_subset("train")
    images, labels, classes = [], [], []
    for j, c in enumerate((5, 7, 9)):  # sandal, sneaker, ankle boot
        classes += [ds.classes[c], f"{ds.classes[c]}-mirrored"]
        for n, i in enumerate(np.flatnonzero(ds.labels == c)[: 2 * per_class]):
            images.append(np.ascontiguousarray(ds.images[i][:, ::-1]) if n % 2 else ds.images[i])
            labels.append(2 * j + n % 2)
    return LabelledImages.from_arrays(np.stack(images), np.array(labels), classes)


FAST = dict(backbone="small_cnn", pretrained=False, views=2, confirm_steps=0)


@pytest.fixture(scope="module")
def mirrored_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("tune")
    return out, tune(handed(20), out, TuneConfig(minutes=10, repeats=6, **FAST), progress=False)


def test_tune_writes_a_pipeline_and_a_table(mirrored_run):
    out, result = mirrored_run
    pipe = Pipeline.load(out / "pipeline.yaml")  # what finetune --pipeline reads
    assert pipe.get_config()["ops"] == (result.pipeline or {"ops": []})["ops"]
    table = (out / "tune.md").read_text()
    assert "| none " in table and f"| {DEFAULT}" in table and "(winner)" in table
    saved = json.loads((out / "tune.json").read_text())
    assert saved["winner"] == result.winner and len(saved["candidates"]) >= 10
    # every candidate was scored on the same splits
    assert len({len(c.scores) for c in result.candidates}) == 1


def test_mirrored_classes_turn_horizontal_flips_off(mirrored_run):
    out, result = mirrored_run
    ops = [op["op"] for op in (result.pipeline or {"ops": []})["ops"]]
    assert "hflip" not in ops, result.winner
    # the default flips: on this data it is measurably worse than its flip-less variant
    assert result.paired_to_default["light[hflip=0.0]"].mean > 0
    assert result.tta == "none"


def test_a_rerun_reuses_finished_candidates(mirrored_run, tmp_path):
    out, result = mirrored_run
    lines = (out / CANDIDATES_FILE).read_text().splitlines()
    again = tune(handed(20), out, TuneConfig(minutes=10, repeats=6, **FAST), progress=False)
    assert (out / CANDIDATES_FILE).read_text().splitlines() == lines  # nothing scored again
    assert again.winner == result.winner
    assert {c.name: c.scores for c in again.candidates} == {
        c.name: c.scores for c in result.candidates
    }
    # other settings are another search: nothing is reused
    other = tune(handed(20), out, TuneConfig(minutes=10, repeats=3, **FAST), progress=False)
    assert len((out / CANDIDATES_FILE).read_text().splitlines()) > len(lines)
    assert len(other.candidates[0].scores) == 3


def test_a_class_too_small_for_the_splits_is_named(tmp_path):
    data = handed(20)
    keep = np.concatenate([np.flatnonzero(data.labels != 3), np.flatnonzero(data.labels == 3)[:2]])
    with pytest.raises(DataError, match="'sneaker-mirrored' has 2"):
        tune(data.subset(keep), tmp_path, TuneConfig(minutes=1, **FAST), progress=False)


def test_a_budget_too_small_names_the_minimum(tmp_path):
    data = handed(20)
    cfg = TuneConfig(minutes=0.1, **{**FAST, "image_size": 224, "backbone": "efficientnet_lite0"})
    with pytest.raises(DataError, match=r"minutes must be at least [0-9.]+ to score two"):
        tune(data, tmp_path, cfg, progress=False)
    assert not (tmp_path / CANDIDATES_FILE).exists()


def test_the_pipeline_yaml_is_valid_for_finetune(mirrored_run):
    out, _ = mirrored_run
    assert yaml.safe_load((out / "pipeline.yaml").read_text())["version"] == 1


def test_confirmation_fine_tunes_the_default_the_winner_and_the_winner_without_mixing(tmp_path):
    cfg = TuneConfig(minutes=10, **{**FAST, "repeats": 2, "confirm_steps": 2})
    result = tune(handed(8), tmp_path, cfg, progress=False)
    c = result.confirmation
    assert c is not None and c["repeats"] == 2 and c["steps"] == 2
    assert "without MixUp/CutMix" in c["table"] and "no_mixing" in c
    assert ("difference" in c) == (result.winner != DEFAULT)
    runs = sorted(p.name for p in (tmp_path / "confirm").iterdir() if p.is_dir())
    assert len([r for r in runs if r != "feature_cache"]) == 3 - (result.winner == DEFAULT)
    assert "## Confirmation" in (tmp_path / "tune.md").read_text()


def test_screening_features_keep_left_and_right_apart(global_rng):
    import torch

    from transfer.backbones import create_backbone
    from transfer.tuning import screening_features

    bb = create_backbone("efficientnet_lite0", pretrained=False).eval()
    halves = screening_features(bb, 64)
    assert halves.num_features == 2 * bb.num_features
    assert halves.fingerprint() != bb.fingerprint()  # another feature-cache directory
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        left_right = halves(x).view(2, bb.num_features, 2)
        mirrored = halves(x.flip(-1)).view(2, bb.num_features, 2)
        pooled = bb(x)
    # the halves' mean is the globally pooled feature: nothing is lost
    torch.testing.assert_close(left_right.mean(-1), pooled, rtol=1e-4, atol=1e-5)
    # a mirror image swaps the halves (up to the padding at the border), so they see sides
    assert not torch.allclose(mirrored, left_right, atol=1e-3)
