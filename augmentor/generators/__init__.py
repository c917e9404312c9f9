"""Generative augmentation: GAN, VAE and diffusion generators that sample labelled images.

Loading and sampling need only this package (no training code, no Lightning)::

    from augmentor.generators import load_generator
    gen = load_generator("runs/gan/generator")
    images = gen.sample(16, labels=[3] * 16, generator=torch.Generator().manual_seed(0))

``images`` is a uint8 tensor ``(n, C, H, W)``; ``gen.class_names`` maps labels to names.
Training lives in :mod:`augmentor.generators.train` (Lightning).
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import torch

from augmentor.generators.common import META_FILE, GeneratorError, read_meta

__all__ = [
    "GENERATORS",
    "GeneratorError",
    "LoadedGenerator",
    "generator_class",
    "list_generators",
    "load_generator",
]

# name -> (module, class of the network that samples)
GENERATORS = {
    "gan": ("augmentor.generators.gan", "ConditionalGenerator"),
    "vae": ("augmentor.generators.vae", "ConditionalVAE"),
    "diffusion": ("augmentor.generators.diffusion", "ConditionalDiffusion"),
}


def list_generators() -> list[str]:
    return sorted(GENERATORS)


def generator_class(name: str) -> type:
    import importlib

    if name not in GENERATORS:
        close = difflib.get_close_matches(name, GENERATORS, n=2, cutoff=0.5)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise GeneratorError(
            f"unknown generator {name!r}{hint} (known: {', '.join(list_generators())})"
        )
    module, cls = GENERATORS[name]
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

    def label_of(self, name: str) -> int:
        if name not in self.class_names:
            raise GeneratorError(f"class {name!r} is not one of {self.class_names}")
        return self.class_names.index(name)


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
    try:
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
