"""augmentor: classic and generative augmentation for small image datasets.

Classic augmentation::

    from augmentor import Pipeline, RandomResizedCrop, HorizontalFlip, Rotate, ColorJitter
    pipe = Pipeline([RandomResizedCrop(224), HorizontalFlip(), Rotate(15),
                     ColorJitter(0.2, 0.2, 0.2)], seed=0)
    out = pipe(image, index=i, epoch=e)   # PIL, numpy or tensor in, same type out

Importing this package loads numpy only (OpenCV and torch are imported on first use).
"""

from augmentor.ops.base import Canvas, Node, Op
from augmentor.ops.color import (
    AutoContrast,
    Brightness,
    ChannelShuffle,
    ColorJitter,
    Contrast,
    Equalize,
    Gamma,
    Grayscale,
    Hue,
    Invert,
    Posterize,
    Saturation,
    Sharpness,
    Solarize,
)
from augmentor.ops.containers import OneOf, RandomApply, Sequential, SomeOf
from augmentor.ops.erasing import Normalize, RandomErasing
from augmentor.ops.geometric import (
    Affine,
    CenterCrop,
    Elastic,
    GridDistortion,
    HorizontalFlip,
    Pad,
    Perspective,
    RandomCrop,
    RandomResizedCrop,
    Resize,
    Rotate,
    VerticalFlip,
)
from augmentor.ops.mix import CutMix, MixUp
from augmentor.ops.noise import (
    GaussianBlur,
    GaussianNoise,
    Jpeg,
    MotionBlur,
    SaltPepper,
    SpeckleNoise,
)
from augmentor.ops.policies import AugMix, AutoAugment, RandAugment, TrivialAugmentWide
from augmentor.pipeline import Pipeline, build_op, rng_for
from augmentor.presets import list_presets, preset
from augmentor.registry import list_ops, register_op
from augmentor.torchdata import AugmentedDataset

__version__ = "0.1.0"

__all__ = [
    "Affine",
    "AugMix",
    "AugmentedDataset",
    "AutoAugment",
    "AutoContrast",
    "Brightness",
    "Canvas",
    "CenterCrop",
    "ChannelShuffle",
    "ColorJitter",
    "Contrast",
    "CutMix",
    "Elastic",
    "Equalize",
    "Gamma",
    "GaussianBlur",
    "GaussianNoise",
    "Grayscale",
    "GridDistortion",
    "HorizontalFlip",
    "Hue",
    "Invert",
    "Jpeg",
    "MixUp",
    "MotionBlur",
    "Node",
    "Normalize",
    "OneOf",
    "Op",
    "Pad",
    "Perspective",
    "Pipeline",
    "Posterize",
    "RandAugment",
    "RandomApply",
    "RandomCrop",
    "RandomErasing",
    "RandomResizedCrop",
    "Resize",
    "Rotate",
    "SaltPepper",
    "Saturation",
    "Sequential",
    "Sharpness",
    "Solarize",
    "SomeOf",
    "SpeckleNoise",
    "TrivialAugmentWide",
    "VerticalFlip",
    "__version__",
    "build_op",
    "list_ops",
    "list_presets",
    "preset",
    "register_op",
    "rng_for",
]
