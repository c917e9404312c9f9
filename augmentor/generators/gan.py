"""A class-conditional GAN with the small-data recipe.

* **DiffAugment** (Zhao et al., 2020): the same differentiable colour, translation and cutout
  augmentation on real and fake images before the discriminator, so the discriminator cannot
  memorise a few dozen images and the generator is not taught the augmentations.
* **Spectral norm + hinge loss** in a **projection discriminator** (Miyato & Koyama, 2018): the
  class enters the discriminator as an inner product with its features.
* An **EMA** of the generator's weights does the sampling (kept by the training module).
* Capacity follows the image size: one up/down stage per halving.

``diff_augment`` is written by hand: it must be differentiable, batched, and draw from the
generator passed in; torchvision's and kornia's random transforms are neither both nor seeded
that way.
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn
from torch.nn import functional as F
from torch.nn.utils import spectral_norm

from augmentor.generators.common import (
    GeneratorError,
    check_labels,
    evaluating,
    no_images,
    randn,
    size_levels,
    to_uint8,
)

POLICY = ("color", "translation", "cutout")


def _rand(n: int, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    return torch.rand(n, 1, 1, 1, generator=generator, device=device)


def diff_augment(
    x: torch.Tensor,
    policy: tuple[str, ...] = POLICY,
    generator: torch.Generator | None = None,
    translation: float = 0.125,
    cutout: float = 0.5,
) -> torch.Tensor:
    """DiffAugment on ``(N, C, H, W)`` images in [-1, 1]; gradients flow to ``x``."""
    n, _, h, w = x.shape
    dev = x.device
    if "color" in policy:
        x = x + (_rand(n, generator, dev) - 0.5)
        mean = x.mean(dim=1, keepdim=True)
        x = (x - mean) * (_rand(n, generator, dev) * 2) + mean
        mean = x.mean(dim=[1, 2, 3], keepdim=True)
        x = (x - mean) * (_rand(n, generator, dev) + 0.5) + mean
    if "translation" in policy:
        sh, sw = int(h * translation + 0.5), int(w * translation + 0.5)
        ty = torch.randint(-sh, sh + 1, (n, 1, 1), generator=generator, device=dev)
        tx = torch.randint(-sw, sw + 1, (n, 1, 1), generator=generator, device=dev)
        gy, gx = torch.meshgrid(
            torch.arange(h, device=dev), torch.arange(w, device=dev), indexing="ij"
        )
        gy = (gy[None] + ty + 1).clamp(0, h + 1)
        gx = (gx[None] + tx + 1).clamp(0, w + 1)
        padded = F.pad(x, [1, 1, 1, 1])
        idx = torch.arange(n, device=dev)[:, None, None]
        x = padded.permute(0, 2, 3, 1)[idx, gy, gx].permute(0, 3, 1, 2)
    if "cutout" in policy:
        ch, cw = int(h * cutout + 0.5), int(w * cutout + 0.5)
        oy = torch.randint(0, h + (1 - ch % 2), (n, 1, 1), generator=generator, device=dev)
        ox = torch.randint(0, w + (1 - cw % 2), (n, 1, 1), generator=generator, device=dev)
        gy, gx = torch.meshgrid(
            torch.arange(h, device=dev), torch.arange(w, device=dev), indexing="ij"
        )
        inside = (gy[None] >= oy - ch // 2) & (gy[None] < oy - ch // 2 + ch)
        inside &= (gx[None] >= ox - cw // 2) & (gx[None] < ox - cw // 2 + cw)
        x = x * (~inside).unsqueeze(1).to(x.dtype)
    return x


class ClassBatchNorm2d(nn.Module):
    """BatchNorm whose scale and shift are looked up per class (class-conditional BatchNorm, as
    in the generators of Miyato & Koyama 2018 and BigGAN). Not in torch; a few lines."""

    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, affine=False)
        self.scale = nn.Embedding(num_classes, channels)
        self.shift = nn.Embedding(num_classes, channels)
        nn.init.ones_(self.scale.weight)
        nn.init.zeros_(self.shift.weight)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.bn(x) * self.scale(y)[:, :, None, None] + self.shift(y)[:, :, None, None]


class ConditionalGenerator(ModelMixin, ConfigMixin):  # type: ignore[misc]  # diffusers\' own two bases disagree on config_name
    """z + class embedding -> image in [-1, 1].

    ``class_bn``: the up-sampling blocks' BatchNorm takes its scale and shift from the class
    (off in generators saved before it existed, whose config lacks the key).

    Example:
        >>> g = ConditionalGenerator(image_size=16, channels=1, num_classes=3, base_channels=8)
        >>> g.sample(5, labels=[2] * 5, generator=torch.Generator().manual_seed(0)).shape
        torch.Size([5, 1, 16, 16])
    """

    @register_to_config
    def __init__(
        self,
        image_size: int = 28,
        channels: int = 1,
        num_classes: int = 10,
        z_dim: int = 64,
        base_channels: int = 32,
        class_bn: bool = False,
    ) -> None:
        super().__init__()
        levels = size_levels(image_size)
        self.bottom = image_size // 2**levels
        top = base_channels * 2 ** (levels - 1)
        self.embed = nn.Embedding(num_classes, z_dim)
        self.fc = nn.Sequential(
            nn.Linear(2 * z_dim, top * self.bottom**2),
            nn.BatchNorm1d(top * self.bottom**2),
            nn.ReLU(),
        )
        blocks: list[nn.Module] = []
        width = top
        for i in range(levels):
            out = max(base_channels, top // 2 ** (i + 1))
            blocks += [
                nn.Upsample(scale_factor=2),
                nn.Conv2d(width, out, 3, 1, 1),
                ClassBatchNorm2d(out, num_classes) if class_bn else nn.BatchNorm2d(out),
                nn.ReLU(),
            ]
            width = out
        self.blocks = nn.Sequential(*blocks, nn.Conv2d(width, channels, 3, 1, 1), nn.Tanh())
        self.top = top

    @property
    def cfg(self) -> Any:
        """The registered config (diffusers' FrozenDict; its stubs type it as a plain dict)."""
        return self.config

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = self.fc(torch.cat([z, self.embed(y)], 1))
        h = h.view(-1, self.top, self.bottom, self.bottom)
        for layer in self.blocks:
            h = layer(h, y) if isinstance(layer, ClassBatchNorm2d) else layer(h)
        return h

    def noise(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return randn((n, self.cfg.z_dim), generator, self.embed.weight.device)

    @torch.no_grad()
    def sample(
        self,
        n: int,
        labels: torch.Tensor | list[int] | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """``n`` uint8 images ``(n, C, H, W)``; ``labels`` default to a balanced cycle."""
        y = check_labels(n, labels, self.cfg.num_classes, self.embed.weight.device)
        if n == 0:
            return no_images(self.config)
        with evaluating(self):
            return to_uint8(self(self.noise(n, generator), y))

    def vary(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        """Not possible: a GAN maps noise to images and has no encoder to map a given image
        back. Variations of real images come from the VAE or the diffusion generator."""
        raise GeneratorError(
            "a GAN cannot make variations of given images (it has no encoder); train a VAE or "
            "a diffusion generator for that (augment train vae|diffusion)"
        )


class ProjectionDiscriminator(ModelMixin, ConfigMixin):  # type: ignore[misc]  # diffusers\' own two bases disagree on config_name
    """Spectral-normalised conv features, summed, scored by a linear + class projection."""

    @register_to_config
    def __init__(
        self,
        image_size: int = 28,
        channels: int = 1,
        num_classes: int = 10,
        base_channels: int = 32,
    ) -> None:
        super().__init__()
        levels = size_levels(image_size)
        layers: list[nn.Module] = []
        width = channels
        for i in range(levels):
            out = base_channels * 2**i
            layers += [
                spectral_norm(nn.Conv2d(width, out, 3, 1, 1)),
                nn.LeakyReLU(0.1),
                spectral_norm(nn.Conv2d(out, out, 4, 2, 1)),
                nn.LeakyReLU(0.1),
            ]
            width = out
        self.features = nn.Sequential(*layers)
        self.linear = spectral_norm(nn.Linear(width, 1))
        self.embed = spectral_norm(nn.Embedding(num_classes, width))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = self.features(x).sum(dim=(2, 3))
        return self.linear(h).squeeze(1) + (self.embed(y) * h).sum(1)
