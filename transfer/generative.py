"""Generative augmentation that can be measured: synthetic images made from a training split
only (:func:`make_synthetic`), the two arms of the question and their configurations
(:func:`arm_configs`), with the duplicated-reals control.

The question "did synthetic images help?" has three confounds this module removes:

* a generator trained on images a test split holds leaks test information: the synthetic
  images of a split come from a generator trained on that split's training images only;
* "more images per epoch" is not "synthetic images": the ``duplicated reals`` control fills
  the slots synthetic images take with further classic-augmented copies of real images;
* more steps are not better images: every configuration of an arm makes the same number of
  optimizer steps.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from transfer.comparison import ConfigSpec
from transfer.config import AUTO_EPOCHS, AUTO_MIN_STEPS, FinetuneConfig
from transfer.images import LabelledImages

__all__ = [
    "ARMS",
    "CONFIG_NAMES",
    "CONTROL",
    "RECIPE",
    "SyntheticRecipe",
    "SyntheticSet",
    "arm_configs",
    "arm_steps",
    "make_synthetic",
]

# the pretrained default and a network trained from scratch (where several points of gain
# are plausible: Xue et al. 2019, Antoniou et al. 2017)
ARMS: dict[str, FinetuneConfig] = {
    "pretrained": FinetuneConfig(),
    "scratch": FinetuneConfig(
        backbone="small_cnn",
        pretrained=False,
        strategy="full",
        lr=1e-3,
        head_lr=1e-3,
        layer_decay=1.0,
        warmup_epochs=0.0,
        label_smoothing=0.0,
        dropout=0.0,
        mixup=0.0,
        cutmix=0.0,
    ),
}
CONFIG_NAMES = ("real only", "real + classic", "real + classic + synthetic")
CONTROL = "duplicated reals"


@dataclass(frozen=True)
class SyntheticRecipe:
    """How the synthetic images of a training split are made.

    Args:
        generator: ``vae`` or ``diffusion`` (the generators that vary real images).
        steps: generator training steps.
        per_image: variations kept per real training image.
        strength: how far a variation departs from its image, in [0, 1].
        method: ``posterior`` or ``slerp`` (VAE), ``sdedit`` (diffusion); None: the
            generator's default.
        band: the filter's accepted probe probability of the intended class; None: no filter.
        perceptual: VAE only: weight of the feature reconstruction loss (0: pixels only).
        batch_size, base_channels, image_size: the generator's (None: from the data).
    """

    generator: str = "vae"
    steps: int = 1500
    per_image: int = 4
    strength: float = 0.5
    method: str | None = None
    band: tuple[float, float] | None = (0.5, 1.0)
    perceptual: float = 0.0
    batch_size: int | None = None
    base_channels: int | None = None
    image_size: int | None = None


# the chosen recipe: VAE variations towards other images of the same class (slerp), filtered;
# chosen on validation draws of the training pool (BENCHMARKS.md, "Generative gain")
RECIPE = SyntheticRecipe(
    generator="vae", per_image=8, method="slerp", strength=1.0, band=(0.5, 1.0)
)


@dataclass
class SyntheticSet:
    """A split's synthetic images: the folder, and what the filter and generator did."""

    folder: Path
    generator_dir: Path
    acceptance: dict[str, float] | None
    rejected: dict[str, int]
    seconds: float


def make_synthetic(
    part: LabelledImages,
    out: str | Path,
    recipe: SyntheticRecipe,
    seed: int = 0,
    devices: Any = "auto",
) -> SyntheticSet:
    """Train ``recipe.generator`` on ``part`` (and nothing else), write ``recipe.per_image``
    variations of each of its images that pass the filter (fitted on ``part`` too) into
    ``out/variations``. Reused when ``out`` holds the same images and recipe; a directory of
    other images or settings starts over."""
    from augmentor.generators.config import TrainConfig
    from augmentor.generators.fit import train_generator
    from augmentor.generators.sample import vary_folder
    from transfer.images import save_folder
    from transfer.synthetic import SyntheticFilter

    out = Path(out)
    key = hashlib.sha256(
        json.dumps([part.content_keys(), part.labels.tolist(), asdict(recipe), seed]).encode()
    ).hexdigest()
    stamp = out / "synthetic-key.txt"
    if out.exists() and (not stamp.is_file() or stamp.read_text() != key):
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    stamp.write_text(key)
    t = time.perf_counter()
    real = out / "real"
    if not (real / ".complete").is_file():
        save_folder(part, real)
        (real / ".complete").write_text("")
    config = TrainConfig(
        recipe.generator,
        steps=recipe.steps,
        steps_per_epoch=min(500, recipe.steps),
        batch_size=recipe.batch_size,
        base_channels=recipe.base_channels,
        image_size=recipe.image_size,
        perceptual=recipe.perceptual,
        seed=seed,
        devices=devices,
    )
    gen_dir = out / "generator"
    done = gen_dir / "train.json"
    if not (done.is_file() and json.loads(done.read_text())["steps"] >= recipe.steps):
        last = gen_dir / "checkpoints" / "last.ckpt"
        train_generator(
            real, gen_dir, config, resume=last.is_file(), overwrite=not last.is_file(),
            progress=False,
        )  # fmt: skip
    accept, name = None, None
    if recipe.band is not None:
        from augmentor.generators.registry import load_generator

        names = load_generator(gen_dir / "generator").class_names
        keep = SyntheticFilter(part, names, band=recipe.band)
        accept, name = keep, keep.describe()
    report = vary_folder(
        gen_dir / "generator",
        real,
        out / "variations",
        recipe.per_image,
        recipe.strength,
        seed=seed,
        method=recipe.method,
        accept=accept,
        accept_name=name,
        strict=False,  # a class the filter empties trains on its real images alone
    )
    return SyntheticSet(
        out / "variations",
        gen_dir / "generator",
        report.acceptance,
        report.rejected,
        time.perf_counter() - t,
    )


def arm_steps(base: FinetuneConfig, train_images: int) -> int:
    """The optimizer steps every configuration of an arm makes: what the real-only run would
    make by the default rule (``AUTO_EPOCHS`` epochs, at least ``AUTO_MIN_STEPS`` steps), or
    ``base.epochs`` epochs of the real images."""
    per_epoch = max(1, train_images // base.batch_size)
    if base.steps is not None:
        return base.steps
    if base.epochs is not None:
        return base.epochs * per_epoch
    return max(AUTO_EPOCHS * per_epoch, AUTO_MIN_STEPS)


def arm_configs(
    base: FinetuneConfig,
    train_images: int,
    synthetic: Callable[[int, LabelledImages], str] | None = None,
    control: bool = True,
) -> dict[str, ConfigSpec]:
    """The configurations of one arm, every one making the same number of optimizer steps:
    real only (no augmentation, no mixing), real + classic, and with ``synthetic`` (a split
    index and its training images -> the folder of its synthetic images) real + classic +
    synthetic and its control, duplicated reals (``base.synthetic_mode`` ``extra``: the
    synthetic slots filled with classic-augmented copies of real images; with ``replace`` a
    real image is swapped for a variation, no slot is added, and the control would equal real
    + classic, so it is left out)."""
    steps = arm_steps(base, train_images)
    base = replace(base, steps=steps, synthetic=None)
    configs: dict[str, ConfigSpec] = {
        CONFIG_NAMES[0]: replace(base, preset=None, pipeline=None, mixup=0.0, cutmix=0.0),
        CONFIG_NAMES[1]: base,
    }
    if synthetic is not None:

        def with_synthetic(r: int, part: LabelledImages) -> FinetuneConfig:
            return replace(base, synthetic=str(synthetic(r, part)))

        configs[CONFIG_NAMES[2]] = with_synthetic
        if control and base.synthetic_mode == "extra":
            configs[CONTROL] = replace(base, duplicate_ratio=base.synthetic_ratio)
    return configs
