"""Keep only synthetic images worth training on (selective synthetic augmentation, Xue et al.
2019): :class:`SyntheticFilter`.

A synthetic image of intended class ``c`` is accepted when, in the feature space of the
pretrained backbone (EfficientNet-Lite0, offline),

a. ``confidence``: a linear probe fitted on the real training images gives ``c`` a probability
   inside the band ``[low, high]`` (too low: off-class; too high, with a high bound below 1:
   nothing new);
b. ``centroid``: its feature is nearer (cosine) the centroid of the real images of ``c`` than
   the centroid of any other class;
c. ``duplicate``: it is no near-duplicate of a real training image (nearer one than the 1%
   closest pairs of real images are to each other, the memorisation check of
   :mod:`transfer.quality`).

The filter sees the real training images only: in ``compare`` and the demo those of the split
being trained, never a test image. It returns a verdict with the reason of every rejection,
which :mod:`augmentor.generators.sample` tallies into ``filter.json``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from augmentor.generators.sample import FilterVerdict
from transfer.errors import DataError
from transfer.images import LabelledImages, load_folder
from transfer.preprocess import to_chw_uint8
from transfer.probe import fit_linear_probe
from transfer.quality import FeatureSpace

__all__ = ["REASONS", "SyntheticFilter"]

REASONS = ("confidence", "centroid", "duplicate")


class SyntheticFilter:
    """Accept or reject synthetic images against the real training images (module docstring).

    Args:
        real: the real training images (a folder or decoded images).
        class_names: the generator's classes, in its label order (each must be a class of
            ``real``).
        band: the accepted probe probability of the intended class, ``(low, high)``.
        image_size: the side the feature network sees.
        space: a feature space to reuse (default: EfficientNet-Lite0 at ``image_size``).

    Example (given a fine-tuning folder and a generator of its classes)::

        keep = SyntheticFilter("data/train", gen.class_names, band=(0.5, 1.0))
        verdict = keep(images, labels)      # .accepted, .reasons
    """

    def __init__(
        self,
        real: str | Path | LabelledImages,
        class_names: Sequence[str],
        band: tuple[float, float] = (0.5, 1.0),
        image_size: int = 64,
        space: FeatureSpace | None = None,
    ) -> None:
        low, high = band
        if not 0 <= low < high <= 1:
            raise DataError(f"the confidence band must have 0 <= low < high <= 1, got {band}")
        data = real if isinstance(real, LabelledImages) else load_folder(real)
        missing = [c for c in class_names if c not in data.classes]
        if missing:
            raise DataError(f"the real images have no class {missing[0]!r} (of the generator's)")
        self.class_names = list(class_names)
        self.band = (float(low), float(high))
        self.space = space or FeatureSpace(image_size=image_size)
        # real labels in the generator's order
        order = {c: i for i, c in enumerate(self.class_names)}
        keep = [i for i, y in enumerate(data.labels) if data.classes[int(y)] in order]
        labels = torch.tensor([order[data.classes[int(data.labels[i])]] for i in keep])
        feats = self.embed([data.images[i] for i in keep])
        k = len(self.class_names)
        counts = torch.bincount(labels, minlength=k)
        if (counts == 0).any():
            empty = self.class_names[int(torch.nonzero(counts == 0)[0])]
            raise DataError(f"the real images have no image of class {empty!r}")
        self.mean, self.std = feats.mean(0), feats.std(0).clamp_min(1e-6)
        z = (feats - self.mean) / self.std
        self.probe = fit_linear_probe(z, labels, k)
        unit = nn.functional.normalize(feats, dim=1)
        self.centroids = nn.functional.normalize(
            torch.stack([unit[labels == c].mean(0) for c in range(k)]), dim=1
        )
        self.real_unit = unit
        sim = unit @ unit.T
        sim.fill_diagonal_(-1)
        nn_dist = 1 - sim.max(dim=1).values
        self.duplicate_threshold = float(torch.quantile(nn_dist, 0.01)) if len(nn_dist) > 1 else 0.0

    def embed(self, images: Sequence[np.ndarray] | torch.Tensor) -> torch.Tensor:
        """Features of HWC uint8 arrays or a uint8 ``(N, C, H, W)`` tensor (any sizes)."""
        if isinstance(images, torch.Tensor):
            return self.space(images)
        out = [self.space(to_chw_uint8(np.ascontiguousarray(img))[None]) for img in images]
        return torch.cat(out) if out else torch.zeros(0, self.space.num_features)

    def __call__(self, images: torch.Tensor, labels: torch.Tensor) -> FilterVerdict:
        feats = self.embed(images)
        y = torch.as_tensor(labels, dtype=torch.long)
        with torch.no_grad():
            probs = self.probe((feats - self.mean) / self.std).softmax(1)
        p = probs[torch.arange(len(y)), y]
        low, high = self.band
        ok_conf = (p >= low) & (p <= high)
        unit = nn.functional.normalize(feats, dim=1)
        ok_centroid = (unit @ self.centroids.T).argmax(1) == y
        nearest = 1 - (unit @ self.real_unit.T).max(1).values
        ok_new = nearest >= self.duplicate_threshold
        reasons: list[str | None] = []
        for a, b, c in zip(ok_conf.tolist(), ok_centroid.tolist(), ok_new.tolist()):
            reasons.append(None if a and b and c else REASONS[[a, b, c].index(False)])
        return FilterVerdict(ok_conf & ok_centroid & ok_new, reasons)

    def describe(self) -> str:
        low, high = self.band
        return (
            f"probe probability of the class in [{low}, {high}], nearest class centroid, no "
            f"near-duplicate (cosine distance >= {self.duplicate_threshold:.4f})"
        )
