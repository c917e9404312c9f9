"""Class-conditional diffusion: diffusers' ``UNet2DModel`` with a class embedding.

Trained with the DDPM objective (noise prediction, ``DDPMScheduler``); sampled in few steps
with ``DDIMScheduler`` (or DPM-Solver++ with ``sampler="dpm"``). The UNet's depth follows the
image size. The training module keeps an EMA of the weights, and that EMA is what is saved.
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from diffusers.models.unets.unet_2d import UNet2DModel
from diffusers.schedulers.scheduling_ddim import DDIMScheduler
from diffusers.schedulers.scheduling_ddpm import DDPMScheduler
from diffusers.schedulers.scheduling_dpmsolver_multistep import DPMSolverMultistepScheduler

from augmentor.generators.common import (
    GeneratorError,
    check_labels,
    evaluating,
    no_images,
    prepare_variation,
    randn,
    size_levels,
    to_uint8,
)


class ConditionalDiffusion(ModelMixin, ConfigMixin):  # type: ignore[misc]  # diffusers\' own two bases disagree on config_name
    """A class-conditional denoiser and its noise schedule.

    Example:
        >>> m = ConditionalDiffusion(image_size=16, channels=1, num_classes=2, base_channels=8,
        ...                          sample_steps=2)
        >>> m.sample(2, generator=torch.Generator().manual_seed(0)).shape
        torch.Size([2, 1, 16, 16])
    """

    @register_to_config
    def __init__(
        self,
        image_size: int = 28,
        channels: int = 1,
        num_classes: int = 10,
        base_channels: int = 32,
        layers_per_block: int = 1,
        num_train_timesteps: int = 1000,
        sample_steps: int = 25,
        sampler: str = "ddim",
    ) -> None:
        super().__init__()
        if sampler not in ("ddim", "dpm"):
            raise GeneratorError(f"sampler must be 'ddim' or 'dpm', got {sampler!r}")
        levels = size_levels(image_size)
        widths = tuple(base_channels * min(2**i, 4) for i in range(levels + 1))
        down = ["DownBlock2D"] * levels + ["AttnDownBlock2D"]
        up = ["AttnUpBlock2D"] + ["UpBlock2D"] * levels
        self.unet = UNet2DModel(
            sample_size=image_size,
            in_channels=channels,
            out_channels=channels,
            block_out_channels=widths,
            layers_per_block=layers_per_block,
            down_block_types=tuple(down),
            up_block_types=tuple(up),
            num_class_embeds=num_classes,
            norm_num_groups=min(8, base_channels),
        )

    @property
    def cfg(self) -> Any:
        """The registered config (diffusers' FrozenDict; its stubs type it as a plain dict)."""
        return self.config

    def train_scheduler(self) -> DDPMScheduler:
        return DDPMScheduler(**self._schedule())

    def _schedule(self) -> dict[str, Any]:
        """The noise schedule, shared by training and by every sampler."""
        return {
            "num_train_timesteps": self.cfg.num_train_timesteps,
            "beta_schedule": "squaredcos_cap_v2",
        }

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.unet(x, t, class_labels=y).sample

    def loss(
        self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        sched = self.train_scheduler()
        dev = x.device
        gdev = generator.device if generator is not None else dev
        noise = randn(x.shape, generator, dev)
        t = torch.randint(
            0, self.cfg.num_train_timesteps, (x.shape[0],), generator=generator, device=gdev
        ).to(dev)
        noisy = sched.add_noise(x, noise, t)  # type: ignore[arg-type]  # a long tensor
        loss = torch.nn.functional.mse_loss(self(noisy, t, y), noise)
        return loss, {"loss": loss.detach()}

    @torch.no_grad()
    def sample(
        self,
        n: int,
        labels: torch.Tensor | list[int] | None = None,
        generator: torch.Generator | None = None,
        steps: int | None = None,
    ) -> torch.Tensor:
        """``n`` uint8 images ``(n, C, H, W)`` in ``steps`` (default ``sample_steps``) steps."""
        dev = next(self.parameters()).device
        y = check_labels(n, labels, self.cfg.num_classes, dev)
        if n == 0:
            return no_images(self.config)
        c, s = self.cfg.channels, self.cfg.image_size
        kw = self._schedule()
        sched = (
            DDIMScheduler(**kw) if self.cfg.sampler == "ddim" else DPMSolverMultistepScheduler(**kw)
        )
        sched.set_timesteps(steps or self.cfg.sample_steps)
        x = randn((n, c, s, s), generator, dev)
        with evaluating(self):
            for t in sched.timesteps:
                eps = self(x, t.to(dev).expand(n), y)
                x = sched.step(eps, t, x).prev_sample
        return to_uint8(x)

    @torch.no_grad()
    def vary(
        self,
        images: torch.Tensor,
        labels: torch.Tensor | list[int],
        n_per_image: int,
        strength: float,
        generator: torch.Generator | None = None,
        method: str = "sdedit",
        steps: int | None = None,
    ) -> torch.Tensor:
        """``n_per_image`` variations of each uint8 image ``(N, C, H, W)`` by SDEdit (Meng et
        al. 2022): noise the image to step ``strength * T`` of the schedule, then denoise with
        DDIM from there. Rows ``i * n_per_image ...`` are image ``i``'s; labels are kept.
        ``strength`` 0 returns the image itself."""
        x0, y, n = prepare_variation(
            self, images, labels, n_per_image, strength, method, methods=("sdedit",)
        )
        if x0.shape[0] == 0:
            return no_images(self.config)
        if strength == 0:
            return images.repeat_interleave(n, 0).cpu()
        dev = x0.device
        sched = DDIMScheduler(**self._schedule())
        sched.set_timesteps(steps or self.cfg.sample_steps)
        t_start = int(round(strength * (self.cfg.num_train_timesteps - 1)))
        timesteps = [t for t in sched.timesteps if int(t) <= t_start]
        if not timesteps:  # a strength below the first sampling step: the image itself
            return images.repeat_interleave(n, 0).cpu()
        x0 = x0.repeat_interleave(n, 0)
        y = y.repeat_interleave(n, 0)
        noise = randn(x0.shape, generator, dev)
        x = sched.add_noise(x0, noise, timesteps[0].reshape(1).to(dev))
        with evaluating(self):
            for t in timesteps:
                eps = self(x, t.to(dev).expand(len(y)), y)
                x = sched.step(eps, t, x).prev_sample
        return to_uint8(x)
