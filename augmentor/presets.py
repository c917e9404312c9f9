"""Named pipelines for ``augment generate --preset`` and the library.

Each keeps the input size (random resized crops are resized back to it), so an augmented folder
looks like the source folder.
"""

from __future__ import annotations

from collections.abc import Callable

from augmentor.ops.base import Node
from augmentor.ops.color import ColorJitter, Grayscale
from augmentor.ops.containers import OneOf
from augmentor.ops.erasing import RandomErasing
from augmentor.ops.geometric import Affine, HorizontalFlip, RandomResizedCrop, Rotate
from augmentor.ops.noise import GaussianBlur, GaussianNoise, MotionBlur
from augmentor.ops.policies import AugMix, RandAugment, TrivialAugmentWide
from augmentor.pipeline import Pipeline
from augmentor.registry import Registry

PRESETS: Registry[Callable[[], list[Node]]] = Registry("preset", "augmentor.list_presets()")


def _preset(name: str) -> Callable[[Callable[[], list[Node]]], Callable[[], list[Node]]]:
    return PRESETS.register(name)


@_preset("light")
def _light() -> list[Node]:
    return [
        HorizontalFlip(p=0.5),
        Rotate(10, p=0.5),
        ColorJitter(brightness=0.1, contrast=0.1, p=0.5),
    ]


@_preset("medium")
def _medium() -> list[Node]:
    return [
        RandomResizedCrop(None, scale=(0.6, 1.0)),
        HorizontalFlip(p=0.5),
        Affine(degrees=15, translate=(0.05, 0.05), scale=(0.9, 1.1), shear=5, p=0.7),
        ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2, hue=0.02, p=0.8),
        GaussianBlur((0.1, 1.0), p=0.2),
    ]


@_preset("heavy")
def _heavy() -> list[Node]:
    return [
        RandomResizedCrop(None, scale=(0.35, 1.0)),
        HorizontalFlip(p=0.5),
        Affine(degrees=25, translate=(0.1, 0.1), scale=(0.8, 1.2), shear=10, p=0.8),
        ColorJitter(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.05, p=0.8),
        Grayscale(p=0.1),
        OneOf([GaussianBlur((0.1, 1.5)), MotionBlur((3, 7)), GaussianNoise((0.01, 0.05))], p=0.4),
        RandomErasing(p=0.3),
    ]


@_preset("randaugment")
def _randaugment() -> list[Node]:
    return [HorizontalFlip(p=0.5), RandAugment(num_ops=2, magnitude=9)]


@_preset("trivialaugment")
def _trivialaugment() -> list[Node]:
    return [HorizontalFlip(p=0.5), TrivialAugmentWide()]


@_preset("augmix")
def _augmix() -> list[Node]:
    return [HorizontalFlip(p=0.5), AugMix()]


def list_presets(pattern: str = "*") -> list[str]:
    """Names of the presets, optionally filtered by a glob."""
    return PRESETS.list(pattern)


def preset(name: str, seed: int = 0) -> Pipeline:
    """A named pipeline: ``light``, ``medium``, ``heavy``, ``randaugment``, ``trivialaugment``
    or ``augmix``.

    Example:
        >>> from augmentor import preset
        >>> len(preset("light").ops)
        3
    """
    return Pipeline(PRESETS.get(name)(), seed=seed)
