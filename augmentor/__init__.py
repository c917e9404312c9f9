"""augmentor: classic and generative augmentation for small image datasets.

Classic augmentation::

    from augmentor import Pipeline, RandomResizedCrop, HorizontalFlip, Rotate, ColorJitter
    pipe = Pipeline([RandomResizedCrop(224), HorizontalFlip(), Rotate(15),
                     ColorJitter(0.2, 0.2, 0.2)], seed=0)
    out = pipe(image, index=i, epoch=e)   # PIL, numpy or tensor in, same type out

Importing this package loads numpy only (OpenCV and torch are imported on first use). The
names below are the public surface (a test snapshots it); the seeding contract is in
:mod:`augmentor.seeding`, the plain data of the op graph in :mod:`augmentor.types`.
"""

from augmentor.ops.base import Node as Node
from augmentor.ops.base import Op as Op
from augmentor.ops.color import AutoContrast as AutoContrast
from augmentor.ops.color import Brightness as Brightness
from augmentor.ops.color import ChannelShuffle as ChannelShuffle
from augmentor.ops.color import ColorJitter as ColorJitter
from augmentor.ops.color import Contrast as Contrast
from augmentor.ops.color import Equalize as Equalize
from augmentor.ops.color import Gamma as Gamma
from augmentor.ops.color import Grayscale as Grayscale
from augmentor.ops.color import Hue as Hue
from augmentor.ops.color import Invert as Invert
from augmentor.ops.color import Posterize as Posterize
from augmentor.ops.color import Saturation as Saturation
from augmentor.ops.color import Sharpness as Sharpness
from augmentor.ops.color import Solarize as Solarize
from augmentor.ops.containers import OneOf as OneOf
from augmentor.ops.containers import RandomApply as RandomApply
from augmentor.ops.containers import Sequential as Sequential
from augmentor.ops.containers import SomeOf as SomeOf
from augmentor.ops.erasing import RandomErasing as RandomErasing
from augmentor.ops.fields import Elastic as Elastic
from augmentor.ops.fields import GridDistortion as GridDistortion
from augmentor.ops.geometric import Affine as Affine
from augmentor.ops.geometric import CenterCrop as CenterCrop
from augmentor.ops.geometric import HorizontalFlip as HorizontalFlip
from augmentor.ops.geometric import Pad as Pad
from augmentor.ops.geometric import Perspective as Perspective
from augmentor.ops.geometric import RandomCrop as RandomCrop
from augmentor.ops.geometric import RandomResizedCrop as RandomResizedCrop
from augmentor.ops.geometric import Resize as Resize
from augmentor.ops.geometric import Rotate as Rotate
from augmentor.ops.geometric import VerticalFlip as VerticalFlip
from augmentor.ops.mix import CutMix as CutMix
from augmentor.ops.mix import MixUp as MixUp
from augmentor.ops.noise import GaussianBlur as GaussianBlur
from augmentor.ops.noise import GaussianNoise as GaussianNoise
from augmentor.ops.noise import Jpeg as Jpeg
from augmentor.ops.noise import MotionBlur as MotionBlur
from augmentor.ops.noise import SaltPepper as SaltPepper
from augmentor.ops.noise import SpeckleNoise as SpeckleNoise
from augmentor.ops.normalize import Normalize as Normalize
from augmentor.ops.policies import AugMix as AugMix
from augmentor.ops.policies import AutoAugment as AutoAugment
from augmentor.ops.policies import RandAugment as RandAugment
from augmentor.ops.policies import TrivialAugmentWide as TrivialAugmentWide
from augmentor.pipeline import Pipeline as Pipeline
from augmentor.presets import list_presets as list_presets
from augmentor.presets import preset as preset
from augmentor.registry import list_ops as list_ops
from augmentor.registry import register_op as register_op
from augmentor.torchdata import AugmentedDataset as AugmentedDataset


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("smallaug")
    except PackageNotFoundError:  # a source tree that is not installed
        return "0+unknown"


__version__ = _version()

__all__ = [
    "Affine",
    "AugMix",
    "AugmentedDataset",
    "AutoAugment",
    "AutoContrast",
    "Brightness",
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
    "list_ops",
    "list_presets",
    "preset",
    "register_op",
]
