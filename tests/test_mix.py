import numpy as np
import pytest
import torch

from augmentor import CutMix, MixUp


@pytest.mark.parametrize("cls", [MixUp, CutMix])
def test_labels_are_convex_and_seeded(cls, global_rng):
    x = torch.rand(8, 3, 16, 16)
    y = torch.arange(8) % 4
    op = cls(alpha=1.0, num_classes=4)
    xa, ya = op(x, y, np.random.default_rng(0))
    xb, yb = op(x, y, np.random.default_rng(0))
    torch.testing.assert_close(xa, xb)
    torch.testing.assert_close(ya.sum(1), torch.ones(8))
    assert xa.shape == x.shape and ya.shape == (8, 4)


def test_cutmix_label_weight_is_pasted_area():
    x = torch.zeros(2, 1, 10, 10)
    x[1] = 1.0
    op = CutMix(alpha=1.0, num_classes=2)
    params = {"lam": 1 - 0.25, "perm": [1, 0], "box": [0, 0, 5, 5]}
    out, y = op(x, torch.tensor([0, 1]), np.random.default_rng(0), params)
    assert out[0].mean().item() == pytest.approx(0.25)
    torch.testing.assert_close(y[0], torch.tensor([0.75, 0.25]))


@pytest.mark.parametrize("cls", [MixUp, CutMix])
@pytest.mark.parametrize(
    "labels", [[0, 5], [-1, 0], [0.0, 1.0]], ids=["above", "negative", "float"]
)
def test_bad_labels(cls, labels, global_rng):
    with pytest.raises(ValueError, match=r"class indices in \[0, 3\)"):
        cls(num_classes=3)(torch.rand(2, 3, 4, 4), torch.tensor(labels), np.random.default_rng(0))
