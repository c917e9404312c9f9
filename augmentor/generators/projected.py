"""A Projected GAN discriminator (Sauer et al., NeurIPS 2021) on frozen EfficientNet-Lite features.

Real and generated images go through the offline ImageNet EfficientNet-Lite0 (frozen, in eval
mode for good: :class:`augmentor.pretrained.LiteFeatures`), taken at four resolutions (strides 4,
8, 16 and 32 of the resized image). Two fixed random projections follow, as in the paper:

* **cross-channel mixing** (CCM): a random 1x1 convolution per scale, widening the channels;
* **cross-scale mixing** (CSM): a top-down path, each deeper map upsampled and added to the
  next shallower one after a random 1x1 convolution to its width.

Both are drawn once from the ``init`` stream of the seed and never trained (the paper's finding:
a fixed random projection spreads the features so that the discriminators use all of them, while
a trained one collapses onto a few). One small discriminator per scale, spectral-normalised
strided convolutions down to 4x4 or less, scores patches with a class projection (Miyato &
Koyama) so the GAN stays class-conditional. Only those discriminators are trained; gradients
flow through the frozen network into the generator.

The feature network, CCM and CSM are training-time parts: nothing here is saved with a
generator (the saved directory holds the generator alone), and sampling never imports it.

Written here rather than taken from the paper's code: that code is tied to its own training loop
and to a timm EfficientNet with downloaded weights; this one takes the offline weights, the
class projection and this project's seeding.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils import spectral_norm

from augmentor._validation import check_choice
from augmentor.generators.config import (
    FEATURE_NETWORKS,
    GeneratorError,
    TrainConfig,
    check_feature_size,
)
from augmentor.generators.gan import ProjectionDiscriminator
from augmentor.pretrained import LiteFeatures, PretrainedError
from augmentor.seeding import global_seed

CCM_WIDTHS = (64, 128, 256, 512)  # the paper's widths per scale (shallow to deep)


def _fixed_conv(cin: int, cout: int) -> nn.Conv2d:
    conv = nn.Conv2d(cin, cout, 1, bias=False)
    nn.init.kaiming_normal_(conv.weight, nonlinearity="linear")
    conv.requires_grad_(False)
    return conv


class RandomProjection(nn.Module):
    """CCM and CSM: fixed random 1x1 mixing per scale, then a top-down fusion of the scales."""

    def __init__(self, channels: list[int]) -> None:
        super().__init__()
        widths = [CCM_WIDTHS[min(i, len(CCM_WIDTHS) - 1)] for i in range(len(channels))]
        self.ccm = nn.ModuleList(_fixed_conv(c, w) for c, w in zip(channels, widths))
        # CSM: deeper scale i+1 -> width of scale i
        self.csm = nn.ModuleList(
            _fixed_conv(widths[i + 1], widths[i]) for i in range(len(widths) - 1)
        )
        self.widths = widths

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        mixed = [conv(f) for conv, f in zip(self.ccm, feats)]
        out = [mixed[-1]]
        for i in range(len(mixed) - 2, -1, -1):
            deeper = F.interpolate(out[0], size=mixed[i].shape[-2:], mode="bilinear")
            out.insert(0, mixed[i] + self.csm[i](deeper))
        return out


class ScaleDiscriminator(nn.Module):
    """Strided spectral-norm convolutions down to at most 4x4, then patch logits with a class
    projection: ``linear(h) + <embed(y), h>`` at every patch."""

    def __init__(self, channels: int, side: int, num_classes: int, width: int = 64) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = channels
        while side > 4:
            out = min(2 * c, 256) if layers else width
            layers += [spectral_norm(nn.Conv2d(c, out, 4, 2, 1)), nn.LeakyReLU(0.2)]
            c, side = out, side // 2
        if not layers:
            layers = [spectral_norm(nn.Conv2d(c, width, 3, 1, 1)), nn.LeakyReLU(0.2)]
            c = width
        self.body = nn.Sequential(*layers)
        self.linear = spectral_norm(nn.Conv2d(c, 1, 1))
        self.embed = spectral_norm(nn.Embedding(num_classes, c))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = self.body(x)
        proj = (self.embed(y)[:, :, None, None] * h).sum(1, keepdim=True)
        return (self.linear(h) + proj).flatten(1)  # (N, patches)


class ProjectedDiscriminator(nn.Module):
    """Frozen EfficientNet-Lite features + fixed random projections + one trained patch
    discriminator per scale. ``forward`` returns the per-scale logits, a list of
    ``(N, patches)`` tensors.

    Example:
        >>> d = ProjectedDiscriminator(num_classes=3, feature_size=64, pretrained=False)
        >>> [tuple(t.shape) for t in d(torch.zeros(2, 1, 28, 28), torch.tensor([0, 2]))]
        [(2, 16), (2, 16), (2, 16), (2, 4)]
    """

    def __init__(
        self,
        num_classes: int,
        feature_size: int = 64,
        feature_network: str = "efficientnet_lite0",
        pretrained: bool = True,
        seed: int = 0,
    ) -> None:
        super().__init__()
        check_feature_size(feature_size)
        check_choice(
            None, "feature_network", feature_network, FEATURE_NETWORKS, error=GeneratorError
        )
        level = FEATURE_NETWORKS.index(feature_network)
        try:
            self.features = LiteFeatures(level, (1, 2, 3, 4), feature_size, pretrained)
        except PretrainedError as e:
            raise GeneratorError(f"the projected discriminator needs {e}") from None
        with global_seed(seed, "init"):
            self.project = RandomProjection(self.features.channels)
            sides = [feature_size // s for s in (4, 8, 16, 32)]
            self.heads = nn.ModuleList(
                ScaleDiscriminator(w, s, num_classes) for w, s in zip(self.project.widths, sides)
            )
        self.project.requires_grad_(False)

    def train(self, mode: bool = True) -> ProjectedDiscriminator:
        super().train(mode)
        self.features.train(False)  # frozen BatchNorm statistics, whatever Lightning asks
        return self

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.heads.parameters() if p.requires_grad]

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
        feats = self.project(self.features(x))
        return [head(f, y) for head, f in zip(self.heads, feats)]

    @property
    def weights(self) -> list[float]:
        """Each scale's share of the loss: the four scales count as one discriminator."""
        return [1.0 / len(self.heads)] * len(self.heads)


class VisionAidedDiscriminator(nn.Module):
    """The pixel discriminator beside the projected one (Kumari et al., CVPR 2022: frozen
    pretrained-feature heads *added* to the usual discriminator): logits of both, the pixel
    discriminator and the four projected scales counting one each."""

    def __init__(self, pixel: nn.Module, projected: ProjectedDiscriminator) -> None:
        super().__init__()
        self.pixel = pixel
        self.projected = projected

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
        return [self.pixel(x, y), *self.projected(x, y)]

    @property
    def weights(self) -> list[float]:
        return [1.0, *self.projected.weights]


def scales(logits: torch.Tensor | list[torch.Tensor]) -> list[torch.Tensor]:
    """A discriminator's output as a list of per-scale logits (the standard one has one)."""
    return logits if isinstance(logits, list) else [logits]


def _weighted(terms: list[torch.Tensor], weights: list[float] | None) -> torch.Tensor:
    w = weights or [1.0] * len(terms)
    return torch.stack([t * wi for t, wi in zip(terms, w)]).sum()


def hinge_d(real: Any, fake: Any, weights: list[float] | None = None) -> torch.Tensor:
    """The discriminator's hinge loss, a weighted sum over scales (each a mean over its
    patches; ``weights`` default to 1 each)."""
    terms = [
        torch.relu(1 - r).mean() + torch.relu(1 + f).mean()
        for r, f in zip(scales(real), scales(fake))
    ]
    return _weighted(terms, weights)


def hinge_g(fake: Any, weights: list[float] | None = None) -> torch.Tensor:
    """The generator's hinge loss, a weighted sum over scales."""
    return _weighted([-f.mean() for f in scales(fake)], weights)


def mean_logit(logits: Any) -> torch.Tensor:
    return torch.stack([t.mean() for t in scales(logits)]).mean()


def build_discriminator(config: TrainConfig, num_classes: int) -> Any:
    """The discriminator ``config`` asks for (``standard``, ``projected``, ``vision-aided``)."""
    projected = None
    if config.discriminator in ("projected", "vision-aided"):
        projected = ProjectedDiscriminator(
            num_classes, config.feature_size or 64, config.feature_network, seed=config.seed
        )
        if config.discriminator == "projected":
            return projected
    assert config.image_size and config.channels and config.base_channels  # resolved
    pixel = ProjectionDiscriminator(
        config.image_size, config.channels, num_classes, config.base_channels
    )
    return pixel if projected is None else VisionAidedDiscriminator(pixel, projected)
