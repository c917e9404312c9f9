"""The training systems of the generators (Lightning's "systems apart from models"): the
networks stay in ``gan.py``, ``vae.py`` and ``diffusion.py``; the losses, optimizers, EMA and the
seeded draw of each step live here.

* :class:`LossSystem`: a network with ``loss(x, y, generator)`` (the VAE, the diffusion model),
  trained with automatic optimization.
* :class:`GANSystem`: the GAN's alternating discriminator and generator step (hinge loss,
  optional DiffAugment), with manual optimization.

Every random draw of training step ``s`` (the batch, noise, timesteps, DiffAugment) comes from
``augmentor.seeding.torch_generator(seed, "generator-step", s, rank)``; the step counter, EMA
and optimizer states are in the checkpoint, so N steps + resume + M steps equals N+M steps.
:meth:`GeneratorSystem.timed_step` runs the very step that trains, for ``--dry-run``'s estimate.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightning as L
import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from augmentor.generators.config import TrainConfig
from augmentor.generators.data import GeneratorData
from augmentor.generators.gan import diff_augment
from augmentor.generators.projected import build_discriminator, hinge_d, hinge_g, mean_logit
from augmentor.generators.registry import generator_class
from augmentor.seeding import torch_generator

__all__ = [
    "GANSystem",
    "GeneratorSystem",
    "LossSystem",
    "build_model",
    "build_system",
    "step_generator",
]


def build_model(config: TrainConfig, num_classes: int) -> torch.nn.Module:
    """The sampling network of ``config.kind`` at the configured size."""
    cls = generator_class(config.kind)
    kw: dict[str, Any] = dict(
        image_size=config.image_size,
        channels=config.channels,
        num_classes=num_classes,
        base_channels=config.base_channels,
    )
    if config.kind == "vae":
        kw["beta"] = config.beta
    if config.kind == "gan":
        kw["class_bn"] = config.class_bn
    return cls(**kw)


def step_generator(seed: int, step: int, device: torch.device, rank: int = 0) -> torch.Generator:
    """The generator of every random draw in training step ``step`` (on process ``rank``:
    with several devices each process draws its own batch)."""
    return torch_generator(seed, "generator-step", step, rank, device=device)


class GeneratorSystem(L.LightningModule):
    """What every generator system shares: the data as buffers, the step counter, the EMA copy
    of the sampling network, and the seeded batch of each step."""

    # buffers and networks, typed (nn.Module's __getattr__ would give Tensor | Module)
    images: torch.Tensor
    labels: torch.Tensor
    step: torch.Tensor
    model: Any
    lr_option = "--lr"  # what a divergence message tells the user to lower
    optimizer_steps_per_step = 1  # Lightning's global_step counts optimizer steps
    loss_ratio_check = True  # the divergence guard compares epoch losses with the first

    def __init__(self, config: TrainConfig, data: GeneratorData, ema: bool) -> None:
        super().__init__()
        assert config.batch_size is not None and config.lr is not None, "a resolved config"
        self.config = config
        self.batch_size: int = config.batch_size
        self.lr: float = config.lr
        self.watched_loss: torch.Tensor | None = None  # read by the divergence guard
        self.model = build_model(config, len(data.class_names))
        self.register_buffer("images", data.images, persistent=False)
        self.register_buffer("labels", data.labels, persistent=False)
        self.register_buffer("step", torch.zeros((), dtype=torch.long))
        self.ema = (
            AveragedModel(
                self.model, multi_avg_fn=get_ema_multi_avg_fn(config.ema_decay), use_buffers=True
            )
            if ema
            else None
        )

    def sampler(self) -> torch.nn.Module:
        """The network that samples: the EMA copy when there is one."""
        return self.ema.module if self.ema is not None else self.model

    def draw(self, step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Generator]:
        """Step ``step``'s batch and the generator of its other draws."""
        g = step_generator(self.config.seed, step, self.images.device, self.global_rank)
        idx = torch.randint(
            0, len(self.labels), (self.batch_size,), generator=g, device=g.device
        ).to(self.images.device)
        return self.images[idx], self.labels[idx], g

    def current_step(self) -> int:
        return int(self.step)

    def on_train_batch_end(self, *args: Any) -> None:
        if self.ema is not None:
            self.ema.update_parameters(self.model)
        self.step += 1

    def timed_step(self, step: int, optimizers: list[torch.optim.Optimizer]) -> None:
        """One training step outside a Trainer (for the time estimate): the same draws and
        losses as :meth:`training_step`, with plain ``backward``."""
        raise NotImplementedError


class LossSystem(GeneratorSystem):
    """A network with ``loss(x, y, generator) -> (loss, parts)``, automatic optimization."""

    def __init__(self, config: TrainConfig, data: GeneratorData) -> None:
        super().__init__(config, data, ema=config.kind == "diffusion")
        self.features: Any = None  # a training-time part: never saved with the generator
        if config.kind == "vae" and config.perceptual > 0:
            from augmentor.pretrained import LiteFeatures

            assert config.image_size is not None
            self.features = LiteFeatures(stages=(1, 2), image_size=max(64, 2 * config.image_size))

    def compute_loss(self, step: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        x, y, g = self.draw(step)
        extra = (
            {"features": self.features, "feature_weight": self.config.perceptual}
            if self.features is not None
            else {}
        )
        loss, parts = self.model.loss(x, y, generator=g, **extra)
        self.watched_loss = loss.detach()  # checked on the device, not synced every step
        return loss, parts

    def training_step(self, batch: Any, _: int) -> torch.Tensor:
        loss, parts = self.compute_loss(int(self.step))
        self.log_dict({f"train/{k}": v for k, v in parts.items()}, prog_bar=True)
        return loss

    def timed_step(self, step: int, optimizers: list[torch.optim.Optimizer]) -> None:
        loss, _ = self.compute_loss(step)
        loss.backward()
        for opt in optimizers:
            opt.step()
            opt.zero_grad(set_to_none=True)

    def configure_optimizers(self) -> Any:
        return torch.optim.AdamW(self.model.parameters(), self.lr, weight_decay=0.0)


class GANSystem(GeneratorSystem):
    """The GAN: a discriminator step then a generator step per training step (hinge loss,
    DiffAugment on real and fake images before the discriminator), manual optimization."""

    loss_ratio_check = False  # adversarial losses have no level to compare with
    optimizer_steps_per_step = 2  # the discriminator's and the generator's

    def __init__(self, config: TrainConfig, data: GeneratorData) -> None:
        super().__init__(config, data, ema=True)
        self.automatic_optimization = False
        self.disc = build_discriminator(config, len(data.class_names))

    disc: Any

    def gan_step(
        self,
        step: int,
        opt_g: Any,
        opt_d: Any,
        backward: Callable[[torch.Tensor], None],
    ) -> dict[str, torch.Tensor]:
        """The one GAN step, used by training and by the time estimate alike."""
        real, y, g = self.draw(step)
        if self.config.diffaugment:

            def aug(t: torch.Tensor) -> torch.Tensor:
                return diff_augment(t, generator=g)

        else:

            def aug(t: torch.Tensor) -> torch.Tensor:
                return t

        z = self.model.noise(real.shape[0], g)
        fake = self.model(z, y)
        weights = getattr(self.disc, "weights", None)
        d_real = self.disc(aug(real), y)
        d_fake = self.disc(aug(fake.detach()), y)
        d_loss = hinge_d(d_real, d_fake, weights)
        opt_d.zero_grad(set_to_none=True)
        backward(d_loss)
        opt_d.step()
        g_loss = hinge_g(self.disc(aug(fake), y), weights)
        if self.config.mode_seeking:
            # MSGAN: two halves of the batch share classes, differ in noise; the generator is
            # asked for images as far apart as their noise (written here: a few lines)
            half = real.shape[0] // 2
            z2 = self.model.noise(half, g)
            other = self.model(z2, y[:half])
            ratio = (fake[:half] - other).abs().mean((1, 2, 3)) / (z[:half] - z2).abs().mean(1)
            g_loss = g_loss + self.config.mode_seeking / (ratio.mean() + 1e-5)
        self.watched_loss = (d_loss + g_loss).detach()
        opt_g.zero_grad(set_to_none=True)
        backward(g_loss)
        opt_g.step()
        return {
            "d_loss": d_loss.detach(),
            "g_loss": g_loss.detach(),
            "d_real": mean_logit(d_real).detach(),
        }

    def training_step(self, batch: Any, _: int) -> None:
        opt_g, opt_d = self.optimizers()  # type: ignore[attr-defined]  # two optimizers: a list
        parts = self.gan_step(int(self.step), opt_g, opt_d, self.manual_backward)
        self.log_dict({f"train/{k}": v for k, v in parts.items()}, prog_bar=True)

    def timed_step(self, step: int, optimizers: list[torch.optim.Optimizer]) -> None:
        opt_g, opt_d = optimizers
        self.gan_step(step, opt_g, opt_d, lambda loss: loss.backward())

    def configure_optimizers(self) -> Any:
        lr = self.lr
        return [
            torch.optim.Adam(self.model.parameters(), lr, betas=(0.0, 0.99)),
            torch.optim.Adam(
                [p for p in self.disc.parameters() if p.requires_grad], lr, betas=(0.0, 0.99)
            ),
        ]


def build_system(config: TrainConfig, data: GeneratorData) -> GeneratorSystem:
    """The training system of ``config.kind``."""
    return GANSystem(config, data) if config.kind == "gan" else LossSystem(config, data)
