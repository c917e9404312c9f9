"""Batch-level MixUp (Zhang et al. 2018) and CutMix (Yun et al. 2019).

They mix images *and labels* of a batch, so they run after collation (e.g. in a ``collate_fn``
or the training step), not per image. The draws come from the generator passed in, as plain
params (``lam``, ``perm``, ``box``) that can be logged and replayed. torchvision's v2 MixUp and
CutMix draw from torch's global RNG, hence these small versions.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from augmentor._validation import check_number


def _one_hot(labels: Any, num_classes: int, check: bool = True) -> Any:
    import torch

    if labels.ndim == 2:
        return labels.float()
    bad = labels.dtype.is_floating_point
    if check and not bad and labels.numel():
        # One host sync for both bounds (on a GPU each ``.min() < 0`` is a sync of its own).
        lo, hi = torch.stack(torch.aminmax(labels)).tolist()
        bad = lo < 0 or hi >= num_classes
    if bad:
        raise ValueError(
            f"labels must be class indices in [0, {num_classes}), got {labels.tolist()[:8]}"
        )
    return torch.nn.functional.one_hot(labels.long(), num_classes).float()


class MixUp:
    """``x = lam * x + (1 - lam) * x[perm]``, labels likewise, ``lam ~ Beta(alpha, alpha)``.

    Example:
        >>> import numpy as np, torch
        >>> from augmentor import MixUp
        >>> x, y = torch.rand(4, 3, 8, 8), torch.tensor([0, 1, 2, 1])
        >>> xm, ym = MixUp(alpha=0.4, num_classes=3)(x, y, np.random.default_rng(0))
        >>> ym.shape, bool(torch.allclose(ym.sum(1), torch.ones(4)))
        (torch.Size([4, 3]), True)
    """

    def __init__(self, alpha: float = 0.2, num_classes: int = 2, p: float = 1.0) -> None:
        self.alpha = check_number("mixup", "alpha", alpha, lo=1e-6)
        self.num_classes = int(
            check_number("mixup", "num_classes", num_classes, lo=2, integer=True)
        )
        self.p = check_number("mixup", "p", p, 0.0, 1.0)

    def make_params(self, n: int, rng: np.random.Generator) -> dict[str, Any]:
        if self.p < 1.0 and not rng.random() < self.p:
            return {"lam": 1.0, "perm": list(range(n))}
        return {"lam": float(rng.beta(self.alpha, self.alpha)), "perm": rng.permutation(n).tolist()}

    def __call__(
        self,
        images: Any,
        labels: Any,
        rng: np.random.Generator,
        params: dict[str, Any] | None = None,
        check_labels: bool = True,
    ) -> tuple[Any, Any]:
        """Mix a batch. ``check_labels=False`` skips the bounds check of integer labels (a
        host sync on a GPU), for callers whose labels are valid class indices already."""
        params = params or self.make_params(images.shape[0], rng)
        lam, perm = params["lam"], params["perm"]
        y = _one_hot(labels, self.num_classes, check_labels)
        xf = images.float() if not images.dtype.is_floating_point else images
        mixed = lam * xf + (1 - lam) * xf[perm]
        return mixed.to(images.dtype) if images.dtype.is_floating_point else mixed, (
            lam * y + (1 - lam) * y[perm]
        )


class CutMix(MixUp):
    """Paste a random box from ``x[perm]``; labels mixed by the pasted area."""

    def make_params(
        self, n: int, rng: np.random.Generator, size: tuple[int, int] = (1, 1)
    ) -> dict[str, Any]:
        if self.p < 1.0 and not rng.random() < self.p:
            return {"lam": 1.0, "perm": list(range(n)), "box": [0, 0, 0, 0]}
        h, w = size
        lam = float(rng.beta(self.alpha, self.alpha))
        r = math.sqrt(1.0 - lam)
        cx, cy = int(rng.integers(w)), int(rng.integers(h))
        bw, bh = int(w * r), int(h * r)
        x0, x1 = max(cx - bw // 2, 0), min(cx + bw // 2, w)
        y0, y1 = max(cy - bh // 2, 0), min(cy + bh // 2, h)
        return {
            "lam": 1.0 - (x1 - x0) * (y1 - y0) / (w * h),
            "perm": rng.permutation(n).tolist(),
            "box": [x0, y0, x1, y1],
        }

    def __call__(
        self,
        images: Any,
        labels: Any,
        rng: np.random.Generator,
        params: dict[str, Any] | None = None,
        check_labels: bool = True,
    ) -> tuple[Any, Any]:
        n, _, h, w = images.shape
        params = params or self.make_params(n, rng, (h, w))
        x0, y0, x1, y1 = params["box"]
        perm, lam = params["perm"], params["lam"]
        out = images.clone()
        out[:, :, y0:y1, x0:x1] = images[perm, :, y0:y1, x0:x1]  # gather only the box
        y = _one_hot(labels, self.num_classes, check_labels)
        return out, lam * y + (1 - lam) * y[perm]
