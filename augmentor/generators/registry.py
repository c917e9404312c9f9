"""The generator registry, and loading a saved generator (no training code, no Lightning).

A saved generator is a directory written by diffusers' ``save_pretrained`` (config + safetensors,
no pickle) plus ``generator.json`` (:mod:`augmentor.generators.common`).
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import torch

from augmentor._validation import check_int
from augmentor.generators.common import read_meta
from augmentor.generators.config import GENERATOR_CLASSES, META_FILE, GeneratorError
from augmentor.registry import Registry, UnknownNameError
from augmentor.seeding import global_seed

__all__ = [
    "GENERATORS",
    "LoadedGenerator",
    "generator_class",
    "list_generators",
    "load_generator",
]


class UnknownGeneratorError(UnknownNameError, GeneratorError):
    """A generator kind that is not registered."""


# name -> (module, class of the network that samples), imported when first asked for
GENERATORS: Registry[tuple[str, str]] = Registry(
    "generator", "augmentor.generators.list_generators()", error=UnknownGeneratorError
)
for _kind, (_module, _cls, _about) in GENERATOR_CLASSES.items():
    GENERATORS.add(_kind, (_module, _cls), _about)


def list_generators(pattern: str = "*") -> list[str]:
    """The registered generator kinds, optionally filtered by a glob."""
    return GENERATORS.list(pattern)


def generator_class(name: str) -> Any:
    """The network class of generator ``name`` (imports its module): a diffusers
    ``ModelMixin`` with ``sample`` (and ``from_pretrained``)."""
    module, cls = GENERATORS.get(name)
    return getattr(importlib.import_module(module), cls)


class LoadedGenerator:
    """A saved generator: the network plus its metadata (class names, data fingerprint...)."""

    def __init__(self, model: Any, meta: dict[str, Any]) -> None:
        self.model = model
        self.meta = meta
        self.kind: str = meta["kind"]
        self.class_names: list[str] = list(meta["class_names"])
        self.image_size: int = int(meta["image_size"])
        self.channels: int = int(meta["channels"])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def to(self, device: str | torch.device) -> LoadedGenerator:
        self.model.to(device)
        return self

    def sample(
        self,
        n: int,
        labels: torch.Tensor | list[int] | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """``n`` uint8 images ``(n, C, H, W)``; labels default to a balanced cycle."""
        return self.model.sample(n, labels=labels, generator=generator)

    def vary(
        self,
        images: torch.Tensor,
        labels: torch.Tensor | list[int],
        n_per_image: int,
        strength: float,
        generator: torch.Generator | None = None,
        **kwargs: Any,
    ) -> torch.Tensor:
        """``n_per_image`` uint8 variations ``(N * n_per_image, C, H, W)`` of the uint8 images
        ``(N, C, H, W)`` (the generator's size and channels), each keeping its label;
        ``strength`` in [0, 1], 0 = the image itself as near as the generator allows. The VAE
        (``method="posterior"`` or ``"slerp"``) and the diffusion model (SDEdit) can; a GAN
        raises :class:`GeneratorError`."""
        return self.model.vary(images, labels, n_per_image, strength, generator, **kwargs)

    def label_of(self, name: str) -> int:
        if name not in self.class_names:
            raise GeneratorError(f"class {name!r} is not one of {self.class_names}")
        return self.class_names.index(name)


# The bounds a saved config.json is checked against before anything is allocated: those of
# training (TrainConfig) with room to spare, far below what a tampered file could ask for
# (``base_channels: 4096`` allocates 8 GiB).
CONFIG_BOUNDS: dict[str, tuple[int, int]] = {
    "image_size": (16, 512),
    "channels": (1, 3),
    "num_classes": (1, 100_000),
    "base_channels": (4, 1024),
    "latent_dim": (1, 4096),
    "z_dim": (1, 4096),
    "layers_per_block": (1, 8),
    "num_train_timesteps": (1, 100_000),
    "sample_steps": (1, 10_000),
}


def _check_config(path: Path) -> None:
    try:
        cfg = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise GeneratorError(f"{str(path)!r} is not a readable JSON file ({e})") from None
    if not isinstance(cfg, dict):
        raise GeneratorError(f"{str(path)!r} must hold a JSON object, got {type(cfg).__name__}")
    for key, (lo, hi) in CONFIG_BOUNDS.items():
        if key in cfg:
            check_int(str(path), key, cfg[key], lo, hi, error=GeneratorError)


def load_generator(directory: str | Path, device: str | torch.device = "cpu") -> LoadedGenerator:
    """Load a saved generator directory (safetensors + config; no pickle, no training code)."""
    directory = Path(directory)
    meta = read_meta(directory)
    cls = generator_class(meta.get("kind", "?"))
    for name in ("config.json", "diffusion_pytorch_model.safetensors"):
        if not (directory / name).is_file():
            raise GeneratorError(
                f"{str(directory)!r} is not a complete generator: {name} is missing"
            )
    _check_config(directory / "config.json")
    try:
        with global_seed(0, "init"):  # the init the saved weights replace
            model = cls.from_pretrained(str(directory), low_cpu_mem_usage=False)
    except Exception as e:  # diffusers raises several types for mismatched or broken files
        raise GeneratorError(
            f"{str(directory)!r}: the weights do not load into its config "
            f"({type(e).__name__}: {str(e).splitlines()[0][:200]})"
        ) from None
    cfg = model.config
    if cfg.num_classes != len(meta["class_names"]) or cfg.image_size != meta["image_size"]:
        raise GeneratorError(
            f"{str(directory)!r}: config.json ({cfg.num_classes} classes, {cfg.image_size} px) "
            f"does not match {META_FILE} ({len(meta['class_names'])} classes, "
            f"{meta['image_size']} px)"
        )
    return LoadedGenerator(model.eval().to(device), meta)
