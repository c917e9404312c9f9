"""Quality of synthetic images, offline: KID, FID and memorisation in a pretrained feature space.

Features come from the offline EfficientNet-Lite0 (the transfer backbone), never a download.
KID (Binkowski et al., 2018) is unbiased for small sample counts and is reported as mean ± std
over random subsets; FID is reported too but is biased upwards at a few hundred samples. Both
use torchmetrics' implementations with our feature extractor plugged in.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from augmentor.seeding import global_seed
from transfer.backbones import create_backbone
from transfer.copies import pixel_copies
from transfer.preprocess import PreprocessModule

__all__ = [
    "FeatureSpace",
    "evaluate_generator",
    "kid_fid",
    "kid_fid_features",
    "memorisation",
    "memorisation_features",
    "nearest_real",
    "pixel_copies",
    "write_neighbours_png",
]


class FeatureSpace(nn.Module):
    """uint8 ``(N, C, H, W)`` images (C in {1, 3}) -> pooled pretrained features, computed on
    ``device`` (the GPU when there is one) and returned on the CPU.

    Example:
        >>> fs = FeatureSpace(image_size=32)
        >>> fs(torch.zeros(2, 1, 28, 28, dtype=torch.uint8)).shape
        torch.Size([2, 1280])
    """

    def __init__(
        self,
        backbone: str = "efficientnet_lite0",
        image_size: int = 128,
        device: str | torch.device | None = None,
    ) -> None:
        super().__init__()
        self.backbone = create_backbone(backbone).eval()
        self.preprocess = PreprocessModule(self.backbone.preprocessing.scaled(image_size))
        self.num_features = self.backbone.num_features
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.to(self.device)

    @torch.inference_mode()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        out = []
        for chunk in images.split(256 if self.device.type == "cuda" else 64):
            x = self.preprocess(chunk.to(self.device, non_blocking=True))
            out.append(self.backbone(x).float().cpu())
        return torch.cat(out) if out else torch.zeros(0, self.num_features)


@dataclass(frozen=True)
class Quality:
    kid: float
    kid_std: float
    fid: float
    n_real: int
    n_fake: int

    def to_dict(self) -> dict[str, float]:
        return {
            "kid": self.kid,
            "kid_std": self.kid_std,
            "fid": self.fid,
            "n_real": self.n_real,
            "n_fake": self.n_fake,
        }


def kid_fid(
    real: torch.Tensor, fake: torch.Tensor, space: FeatureSpace, subsets: int = 50, seed: int = 0
) -> Quality:
    """KID (mean ± std over subsets) and FID between uint8 real and fake images."""
    return kid_fid_features(space(real), space(fake), subsets, seed)


def kid_fid_features(
    fr: torch.Tensor, ff: torch.Tensor, subsets: int = 50, seed: int = 0
) -> Quality:
    """:func:`kid_fid` on features already computed (real ``fr``, fake ``ff``), so a fixed
    real set is embedded once however often it is compared."""
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.kid import KernelInceptionDistance

    n = min(len(fr), len(ff))
    if n < 10:
        raise ValueError(f"need at least 10 real and 10 fake images, got {len(fr)}/{len(ff)}")
    feat = _Precomputed(fr.shape[1])
    with warnings.catch_warnings():  # "features kept in memory": a few thousand rows at most
        warnings.filterwarnings("ignore", message=".*will save all extracted features.*")
        kid = KernelInceptionDistance(
            feature=feat, subsets=subsets, subset_size=max(10, n // 2), normalize=False
        )
    fid = FrechetInceptionDistance(feature=feat, normalize=False)
    for metric in (kid, fid):
        metric.update(fr, real=True)
        metric.update(ff, real=False)
    with global_seed(seed, "quality"):  # torchmetrics' KID draws its subsets globally
        k_mean, k_std = kid.compute()
    return Quality(float(k_mean), float(k_std), float(fid.compute()), len(fr), len(ff))


class _Precomputed(nn.Module):
    """Identity 'feature extractor': torchmetrics gets features we computed once."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.uint8:  # torchmetrics' own shape probe with a dummy image batch
            return torch.zeros(x.shape[0], self.num_features)
        return x


def nearest_real(
    fake_feats: torch.Tensor, real_feats: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """For each fake feature: cosine distance to, and index of, its nearest real feature."""
    f = nn.functional.normalize(fake_feats, dim=1)
    r = nn.functional.normalize(real_feats, dim=1)
    sim = f @ r.T
    best, idx = sim.max(dim=1)
    return 1 - best, idx


def memorisation(real: torch.Tensor, fake: torch.Tensor, space: FeatureSpace) -> dict[str, Any]:
    """Near-duplicate rate of uint8 ``fake`` against uint8 ``real`` images: a fake counts when
    it is closer to a real image in feature space than 1% of real images are to their own
    nearest other real image, or when it is a pixel copy of one (:func:`pixel_copies`: noise,
    small shifts, a mirror image, a re-encode)."""
    return memorisation_features(space(real), space(fake), pixel_copies(real, fake))


def memorisation_features(
    fr: torch.Tensor, ff: torch.Tensor, copies: torch.Tensor | None = None
) -> dict[str, Any]:
    """:func:`memorisation` on features already computed (real ``fr``, fake ``ff``), with the
    :func:`pixel_copies` mask ``copies`` when the images are at hand."""
    d_fake, idx = nearest_real(ff, fr)
    rr = nn.functional.normalize(fr, dim=1)
    sim = rr @ rr.T
    sim.fill_diagonal_(-1)
    d_real = 1 - sim.max(dim=1).values
    threshold = float(torch.quantile(d_real, 0.01))
    near = d_fake < threshold
    out = {
        "feature_duplicate_rate": float(near.float().mean()),
        "threshold": threshold,
        "median_distance": float(d_fake.median()),
        "nearest": idx.tolist(),
        "distance": d_fake.tolist(),
    }
    if copies is not None:
        out["pixel_copy_rate"] = float(copies.float().mean())
        near = near | copies
    out["near_duplicate_rate"] = float(near.float().mean())
    return out


def write_neighbours_png(
    path: str | Path, fake: torch.Tensor, real: torch.Tensor, nearest: Sequence[int], n: int = 16
) -> None:
    """Pairs of rows: samples on top, their nearest real training images below."""
    from augmentor.io import save_image

    n = min(n, len(fake))
    top = torch.cat(list(fake[:n]), dim=2)
    bottom = torch.cat([real[i] for i in list(nearest)[:n]], dim=2)
    grid = torch.cat([top, bottom], dim=1).permute(1, 2, 0).numpy()
    save_image(path, np.ascontiguousarray(grid))


def evaluate_generator(
    generator_dir: str | Path,
    real: str | Path,
    out: str | Path,
    n: int = 500,
    seed: int = 0,
    image_size: int = 64,
) -> dict[str, object]:
    """KID ± std, FID and memorisation of a saved generator against the real folder ``real``.

    Writes ``quality.json`` and ``neighbours.png`` (samples above their nearest real images)
    into ``out``; returns the numbers.
    """
    from augmentor.generators import load_generator
    from augmentor.generators.common import to_uint8
    from augmentor.generators.data import load_training_data
    from augmentor.io import atomic_write_text
    from transfer.errors import DataError

    gen = load_generator(generator_dir, "cuda" if torch.cuda.is_available() else "cpu")
    # the real images, converted to the generator's size and channels the way its own
    # training images were
    data = load_training_data(real, gen.image_size, gen.channels, min_per_class=1)
    unknown = sorted(set(data.class_names) - set(gen.class_names))
    if unknown:
        raise DataError(
            f"{str(real)!r} has classes the model does not know: {', '.join(unknown)} "
            f"(known: {', '.join(gen.class_names)})"
        )
    real_t = to_uint8(data.images)
    labels = torch.arange(n) % gen.num_classes
    fake = gen.sample(n, labels=labels, generator=torch.Generator().manual_seed(seed))
    space = FeatureSpace(image_size=image_size)
    fr, ff = space(real_t), space(fake)
    q = kid_fid_features(fr, ff)
    mem = memorisation_features(fr, ff, pixel_copies(real_t, fake))
    # FID has no absolute scale at a few hundred images: its value between two halves of the
    # real images is what a perfect generator would get here
    half = torch.randperm(len(fr), generator=torch.Generator().manual_seed(seed))
    floor = (
        kid_fid_features(fr[half[: len(fr) // 2]], fr[half[len(fr) // 2 :]]).fid
        if len(fr) >= 20
        else None
    )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    order = np.argsort(mem["distance"])  # the closest pairs first: where memorisation shows
    write_neighbours_png(
        out / "neighbours.png", fake[order], real_t, [mem["nearest"][i] for i in order]
    )
    result = {
        **q.to_dict(),
        "fid_real_halves": floor,
        "near_duplicate_rate": mem["near_duplicate_rate"],
        "feature_duplicate_rate": mem["feature_duplicate_rate"],
        "pixel_copy_rate": mem["pixel_copy_rate"],
        "near_duplicate_threshold": mem["threshold"],
        "median_nn_distance": mem["median_distance"],
        "samples": n,
        "generator": str(generator_dir),
        "real": str(real),
        "feature_space": f"efficientnet_lite0 at {image_size} px",
    }
    atomic_write_text(out / "quality.json", json.dumps(result, indent=2))
    return result
