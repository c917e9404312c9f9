"""Test-time views and temperature scaling: the served model, its fit, its file, its errors."""

import json

import numpy as np
import pytest
import torch
from torch import nn

from augmentor.datasets import fashion_mnist_subset
from augmentor.seeding import stream, torch_generator
from transfer.calibration import (
    Calibration,
    Served,
    apply_temperature,
    expected_calibration_error,
    fit_temperature,
    read_calibration,
)
from transfer.config import FinetuneConfig
from transfer.errors import DataError, RunError
from transfer.finetuning import finetune
from transfer.images import LabelledImages


@torch.no_grad()
def test_the_temperature_never_changes_the_predicted_class(global_rng):
    head = nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 7))
    x = torch.randn(64, 3, 16, 16, generator=torch_generator(0, "quality")) * 3
    for tta in ("none", "flip", "flip+scale"):
        base = Served(head, 16, tta)(x)
        for t in (0.05, 0.3, 2.5, 20.0):
            p = Served(head, 16, tta, temperature=t)(x)
            assert torch.equal(p.argmax(1), base.argmax(1)), (tta, t)
            assert torch.allclose(p.sum(1), torch.ones(64))
            np.testing.assert_allclose(apply_temperature(base.numpy(), t), p.numpy(), atol=1e-6)
        # a temperature > 1 softens, < 1 sharpens the top class
        assert (Served(head, 16, tta, 3.0)(x).max(1).values <= base.max(1).values + 1e-6).all()


def test_the_views_are_the_image_its_mirror_and_their_zooms(global_rng):
    seen = []

    class Spy(nn.Module):
        def forward(self, v):
            seen.append(v.clone())
            return v.flatten(1)[:, :3]

    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).view(2, 3, 8, 8)
    Served(Spy(), 8, "flip+scale")(x)
    assert len(seen) == 4
    assert torch.equal(seen[0], x) and torch.equal(seen[1], x.flip(-1))
    assert torch.equal(seen[3], seen[2].flip(-1)) and not torch.equal(seen[2], x)
    seen.clear()
    Served(Spy(), 8, "flip")(x)
    assert len(seen) == 2


def test_fit_temperature_recovers_the_temperature_that_made_the_labels():
    rng = stream(0, "quality")
    logits = rng.normal(0, 3, size=(4000, 5))
    for true_t in (0.5, 2.0):
        p = torch.tensor(logits / true_t).softmax(1).numpy()
        labels = np.array([rng.choice(5, p=row) for row in p])
        # the labels follow softmax(z / T): the fitted temperature of the log-probabilities
        # softmax(z) is T, and scaling lowers the calibration error
        logp = torch.tensor(logits).log_softmax(1).numpy()
        t = fit_temperature(logp, labels)
        assert abs(t - true_t) < 0.1 * true_t, (t, true_t)
        before = expected_calibration_error(np.exp(logp), labels)
        after = expected_calibration_error(apply_temperature(np.exp(logp), t), labels)
        assert after < before / 2


@pytest.fixture(scope="module")
def data() -> LabelledImages:
    ds = fashion_mnist_subset("train")
    keep = np.concatenate([np.flatnonzero(ds.labels == c)[:12] for c in range(3)])
    return LabelledImages.from_arrays(ds.images[keep], ds.labels[keep], ds.classes[:3])


CNN = dict(backbone="small_cnn", pretrained=False, preset=None, mixup=0.0, cutmix=0.0)


def test_a_linear_probe_without_validation_is_calibrated_out_of_fold(data, tmp_path):
    cfg = FinetuneConfig(strategy="linear", probe_epochs=3, tta="flip", **CNN)
    run = finetune(data, tmp_path / "run", cfg, progress=False)
    calib = run.calibration
    assert calib is not None and calib.fitted_on == "out-of-fold" and calib.n == len(data)
    assert calib.nll_after <= calib.nll_before + 1e-6
    assert sorted(p.name for p in (tmp_path / "run" / "calibration").iterdir()) == [
        "fold-0",
        "fold-1",
        "fold-2",
    ]
    saved = read_calibration(
        tmp_path / "run", json.loads((tmp_path / "run/config.json").read_text())
    )
    assert (saved.tta, saved.temperature) == ("flip", pytest.approx(calib.temperature))
    report = (tmp_path / "run" / "report" / "report.md").read_text()
    assert "out-of-fold predictions" in report and "reliability.png" in report
    assert (tmp_path / "run" / "report" / "reliability.png").stat().st_size > 1000
    metrics = json.loads((tmp_path / "run" / "report" / "metrics.json").read_text())
    assert {"ece_before", "ece_after"} <= set(metrics["calibration"]) and "ece" in metrics


def test_fine_tuning_without_validation_is_not_calibrated_unless_asked(data, tmp_path):
    cfg = FinetuneConfig(strategy="full", epochs=1, **CNN)
    run = finetune(data, tmp_path / "run", cfg, progress=False, export=False)
    assert (
        run.calibration == Calibration("none", note=run.calibration.note)
        and "folds" in run.calibration.note
    )
    with pytest.raises(DataError, match="calibration='validation' needs a validation split"):
        finetune(data, tmp_path / "r2", FinetuneConfig(calibration="validation", **CNN))


@pytest.mark.parametrize(
    "content,message",
    [
        ({"tta": "flop", "temperature": 1.0}, "tta must be one of none, flip, flip\\+scale"),
        ({"tta": "none", "temperature": 0.0}, "temperature must be"),
        ({"tta": "none", "temperature": "hot"}, "temperature must be a number"),
        ([1, 2], "must be an object"),
    ],
)
def test_a_tampered_calibration_file_is_one_line(tmp_path, content, message):
    (tmp_path / "calibration.json").write_text(json.dumps(content))
    with pytest.raises(RunError, match=message) as e:
        read_calibration(tmp_path, {})
    assert "\n" not in str(e.value) and "calibration.json" in str(e.value)


def test_an_unknown_tta_is_refused_with_a_suggestion():
    with pytest.raises(DataError, match="did you mean 'flip'"):
        FinetuneConfig(tta="flp")
