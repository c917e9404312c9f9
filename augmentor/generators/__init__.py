"""Generative augmentation: GAN, VAE and diffusion generators that sample labelled images.

Loading and sampling need only this package (no training code, no Lightning)::

    from augmentor.generators import load_generator
    gen = load_generator("runs/gan/generator")
    images = gen.sample(16, labels=[3] * 16, generator=torch.Generator().manual_seed(0))

``images`` is a uint8 tensor ``(n, C, H, W)``; ``gen.class_names`` maps labels to names.
Training lives in :mod:`augmentor.generators.fit` (Lightning), its settings in
:mod:`augmentor.generators.config` (plain data, no torch). The names below are resolved on first
use (PEP 562), so importing the config costs no torch import.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from augmentor.generators.common import DivergenceError as DivergenceError
    from augmentor.generators.config import GeneratorError as GeneratorError
    from augmentor.generators.config import TrainConfig as TrainConfig
    from augmentor.generators.registry import GENERATORS as GENERATORS
    from augmentor.generators.registry import LoadedGenerator as LoadedGenerator
    from augmentor.generators.registry import generator_class as generator_class
    from augmentor.generators.registry import list_generators as list_generators
    from augmentor.generators.registry import load_generator as load_generator

_EXPORTS = {
    "DivergenceError": "augmentor.generators.common",
    "GeneratorError": "augmentor.generators.config",
    "TrainConfig": "augmentor.generators.config",
    "GENERATORS": "augmentor.generators.registry",
    "LoadedGenerator": "augmentor.generators.registry",
    "generator_class": "augmentor.generators.registry",
    "list_generators": "augmentor.generators.registry",
    "load_generator": "augmentor.generators.registry",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'augmentor.generators' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
