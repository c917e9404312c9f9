"""A conditional convolutional VAE (Kingma & Welling; Sohn et al. for the conditioning).

The encoder sees the image and its label, the decoder a latent and the label; sampling draws the
latent from the N(0, I) prior. ``beta`` weights the KL term (beta-VAE). Width doubles at each
halving of the image; the number of halvings follows the image size.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn
from torch.nn import functional as F

from augmentor.generators.common import (
    check_labels,
    evaluating,
    no_images,
    prepare_variation,
    randn,
    same_class_partners,
    size_levels,
    slerp,
    to_uint8,
)


class ConditionalVAE(ModelMixin, ConfigMixin):  # type: ignore[misc]  # diffusers\' own two bases disagree on config_name
    """Conditional VAE on ``channels`` x ``image_size`` x ``image_size`` images in [-1, 1].

    Example:
        >>> vae = ConditionalVAE(image_size=16, channels=1, num_classes=3, base_channels=8)
        >>> vae.sample(4, generator=torch.Generator().manual_seed(0)).shape
        torch.Size([4, 1, 16, 16])
    """

    @register_to_config
    def __init__(
        self,
        image_size: int = 28,
        channels: int = 1,
        num_classes: int = 10,
        latent_dim: int = 32,
        base_channels: int = 32,
        beta: float = 1.0,
    ) -> None:
        super().__init__()
        levels = size_levels(image_size)
        widths = [base_channels * 2**i for i in range(levels)]
        self.bottom = image_size // 2**levels
        self.label_embed = nn.Embedding(num_classes, 16)
        enc: list[nn.Module] = []
        c_in = channels + 1  # the label as an extra constant plane
        for w in widths:
            enc += [nn.Conv2d(c_in, w, 4, 2, 1), nn.BatchNorm2d(w), nn.LeakyReLU(0.2)]
            c_in = w
        self.encoder = nn.Sequential(*enc, nn.Flatten())
        flat = widths[-1] * self.bottom**2
        self.to_stats = nn.Linear(flat + 16, 2 * latent_dim)
        self.from_latent = nn.Linear(latent_dim + 16, flat)
        dec: list[nn.Module] = []
        for w_in, w_out in zip(widths[::-1], [*widths[::-1][1:], base_channels]):
            dec += [nn.ConvTranspose2d(w_in, w_out, 4, 2, 1), nn.BatchNorm2d(w_out), nn.ReLU()]
        self.decoder = nn.Sequential(*dec, nn.Conv2d(base_channels, channels, 3, 1, 1))
        self.widths = widths

    @property
    def cfg(self) -> Any:
        """The registered config (diffusers' FrozenDict; its stubs type it as a plain dict)."""
        return self.config

    def encode(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        plane = (y.float() / max(1, self.cfg.num_classes - 1) * 2 - 1).view(-1, 1, 1, 1)
        h = self.encoder(torch.cat([x, plane.expand(-1, 1, *x.shape[-2:])], 1))
        mu, logvar = self.to_stats(torch.cat([h, self.label_embed(y)], 1)).chunk(2, dim=1)
        return mu, logvar.clamp(-10, 10)

    def decode(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = self.from_latent(torch.cat([z, self.label_embed(y)], 1))
        h = h.view(-1, self.widths[-1], self.bottom, self.bottom)
        return torch.tanh(self.decoder(h))

    def loss(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        generator: torch.Generator | None = None,
        features: Callable[[torch.Tensor], list[torch.Tensor]] | None = None,
        feature_weight: float = 0.0,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The negative ELBO per image (reconstruction as a Gaussian with fixed variance), plus,
        with ``features`` (a frozen network's feature maps, :class:`~augmentor.pretrained.
        LiteFeatures`), ``feature_weight`` times the squared distance of the reconstruction's
        features to the image's (a feature-perceptual loss, Hou et al. 2017, DFC-VAE)."""
        mu, logvar = self.encode(x, y)
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        recon = self.decode(mu + eps * (0.5 * logvar).exp(), y)
        rec = F.mse_loss(recon, x, reduction="none").flatten(1).sum(1).mean() / 0.1
        kl = (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1)).mean()
        total = rec + self.cfg.beta * kl
        parts = {"recon": rec.detach(), "kl": kl.detach()}
        if features is not None and feature_weight > 0:
            with torch.no_grad():
                target = features(x)
            got = features(recon)
            perceptual = torch.stack(
                [
                    F.mse_loss(a, b, reduction="none").flatten(1).sum(1).mean()
                    for a, b in zip(got, target)
                ]
            ).sum()
            total = total + feature_weight * perceptual
            parts["perceptual"] = perceptual.detach()
        return total, {"loss": total.detach(), **parts}

    @torch.no_grad()
    def sample(
        self,
        n: int,
        labels: torch.Tensor | list[int] | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """``n`` uint8 images ``(n, C, H, W)``; ``labels`` default to a balanced cycle."""
        device = self.from_latent.weight.device
        y = check_labels(n, labels, self.cfg.num_classes, device)
        if n == 0:
            return no_images(self.config)
        z = randn((n, self.cfg.latent_dim), generator, device)
        with evaluating(self):
            return to_uint8(self.decode(z, y))

    @torch.no_grad()
    def vary(
        self,
        images: torch.Tensor,
        labels: torch.Tensor | list[int],
        n_per_image: int,
        strength: float,
        generator: torch.Generator | None = None,
        method: str = "posterior",
        pool: tuple[torch.Tensor, torch.Tensor | list[int]] | None = None,
    ) -> torch.Tensor:
        """``n_per_image`` variations of each uint8 image ``(N, C, H, W)``, each keeping its
        label; ``(N * n_per_image, C, H, W)`` uint8, the variations of image ``i`` at rows
        ``i * n_per_image ...``. ``strength`` 0 gives the reconstruction of the image.

        * ``posterior``: decode ``z = mu + strength * sigma * eps`` from the image's posterior;
        * ``slerp``: decode a point on the great circle from the image's latent towards the
          latent of another image of the same class (White 2016), a share ``strength / 2`` of
          the way. The other image comes from ``pool`` (uint8 images and labels; default:
          ``images`` themselves); a class with no other image falls back to ``posterior``.
        """
        x, y, n = prepare_variation(self, images, labels, n_per_image, strength, method)
        if x.shape[0] == 0:
            return no_images(self.config)
        device = self.from_latent.weight.device
        with evaluating(self):
            mu, logvar = self.encode(x.to(device), y)
            mu_r = mu.repeat_interleave(n, 0)
            sd_r = (0.5 * logvar).exp().repeat_interleave(n, 0)
            y_r = y.repeat_interleave(n, 0)
            eps = randn(mu_r.shape, generator, device)
            z = mu_r + strength * sd_r * eps
            if method == "slerp":
                if pool is None:
                    p_mu, p_y = mu, y
                else:
                    px, py, _ = prepare_variation(self, pool[0], pool[1], 1, strength, method)
                    p_mu, p_y = self.encode(px, py)[0], py
                partner = same_class_partners(y_r, p_y, p_mu, mu_r, generator)
                found = partner >= 0
                target = p_mu[partner.clamp(min=0)]
                z = torch.where(found[:, None], slerp(mu_r, target, strength / 2), z)
            return to_uint8(self.decode(z, y_r))
