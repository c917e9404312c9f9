"""How an image becomes the backbone's input: the recipe (:class:`Preprocessing`, plain data read
from the backbone) and the torch module that runs it (:class:`PreprocessModule`), used in
training and inside exported models.

Training, prediction and the TorchScript / ONNX exports all run this same module, so an exported
model sees exactly the pixels the classifier was trained on. Written as a small module rather than
a ``transforms.v2.Compose`` because it must script and export with the network (v2 transforms do
not script) and must accept any image size and 1, 3 or 4 channels.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from transfer.errors import BackboneError

__all__ = ["PreprocessModule", "Preprocessing", "to_chw_uint8"]


@dataclass(frozen=True)
class Preprocessing:
    """How an image becomes the backbone's input.

    Resize the short side to ``resize_size`` with ``interpolation``, centre-crop
    ``input_size`` x ``input_size``, scale RGB to [0, 1], then ``(x - mean) / std``.

    Example:
        >>> p = Preprocessing(224, 256, (0.5,) * 3, (0.5,) * 3, "bicubic")
        >>> p.scaled(112).resize_size
        128
    """

    input_size: int
    resize_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bilinear"

    def __post_init__(self) -> None:
        if self.interpolation not in ("bilinear", "bicubic", "nearest"):
            raise BackboneError(
                f"interpolation must be bilinear, bicubic or nearest, got {self.interpolation!r}"
            )
        # resize < 2 * input keeps the centre crop at least 1 px for any image (see Preprocess)
        if not 8 <= self.input_size <= self.resize_size < 2 * self.input_size:
            raise BackboneError(
                f"need 8 <= input_size <= resize_size < 2 * input_size, got {self.input_size} and "
                f"{self.resize_size}"
            )

    def scaled(self, input_size: int) -> Preprocessing:
        """The same recipe at another input size, keeping the crop ratio."""
        if input_size < 8:
            raise BackboneError(f"image_size must be >= 8, got {input_size}")
        resize = round(input_size * self.resize_size / self.input_size)
        return dataclasses.replace(self, input_size=input_size, resize_size=resize)

    def with_crop(self, crop_pct: float) -> Preprocessing:
        """The same recipe with the centre crop keeping ``crop_pct`` of the resized short side
        (timm's ``crop_pct``); 1.0 keeps all of it."""
        from transfer.config import check_crop_pct

        check_crop_pct(crop_pct, error=BackboneError)
        # crop_pct > 0.5 keeps input / crop_pct below 2 * input; only rounding can reach it
        resize = max(self.input_size, round(self.input_size / crop_pct))
        resize = min(resize, 2 * self.input_size - 1)
        return dataclasses.replace(self, resize_size=resize)

    @property
    def crop_pct(self) -> float:
        """The share of the resized short side the centre crop keeps."""
        return self.input_size / self.resize_size

    def to_dict(self) -> dict[str, Any]:
        return {
            "input_size": self.input_size,
            "resize_size": self.resize_size,
            "mean": list(self.mean),
            "std": list(self.std),
            "interpolation": self.interpolation,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "preprocess.json") -> Preprocessing:
        """The recipe from plain data (a run's ``preprocess.json``), every field checked: a
        tampered file is one :class:`RunError` naming ``where``, the field and the value."""
        from augmentor._validation import (
            INTERPOLATIONS,
            MAX_SIDE,
            check_choice,
            check_int,
            check_number,
        )
        from transfer.errors import RunError

        if not isinstance(d, Mapping):
            raise RunError(f"{where} must hold a JSON object, got {type(d).__name__}")
        missing = [
            k for k in ("input_size", "resize_size", "mean", "std", "interpolation") if k not in d
        ]
        if missing:
            raise RunError(f"{where} lacks {missing}")
        size = check_int(where, "input_size", d["input_size"], 8, MAX_SIDE, error=RunError)
        resize = check_int(where, "resize_size", d["resize_size"], size, MAX_SIDE, error=RunError)
        stats = {}
        for key, lo in (("mean", None), ("std", 1e-6)):
            v = d[key]
            if not (isinstance(v, list) and len(v) == 3):
                raise RunError(f"{where}: {key} must be 3 numbers, got {v!r}")
            stats[key] = tuple(check_number(where, key, x, lo, error=RunError) for x in v)
        mode = check_choice(
            where,
            "interpolation",
            d["interpolation"],
            INTERPOLATIONS,
            error=RunError,
        )
        return cls(size, resize, stats["mean"], stats["std"], mode)


class PreprocessModule(nn.Module):
    """uint8 ``(N, C, H, W)`` images of any size, C in {1, 3, 4} -> normalized float input.

    Centre-crop the square that "resize the short side to ``resize_size``, crop ``input_size``"
    keeps, resize it (antialiased) to ``input_size``, scale to [0, 1] and normalize. Grey images
    are repeated to RGB; alpha is dropped.

    Example:
        >>> pre = PreprocessModule(Preprocessing(8, 10, (0.5,) * 3, (0.5,) * 3, "bilinear"))
        >>> pre(torch.zeros(2, 1, 30, 20, dtype=torch.uint8)).shape
        torch.Size([2, 3, 8, 8])
    """

    def __init__(self, preprocessing: Preprocessing) -> None:
        super().__init__()
        self.input_size = preprocessing.input_size
        self.resize_size = preprocessing.resize_size
        self.mode = preprocessing.interpolation
        self.register_buffer("mean", torch.tensor(preprocessing.mean).view(1, 3, 1, 1) * 255.0)
        self.register_buffer("std", torch.tensor(preprocessing.std).view(1, 3, 1, 1) * 255.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        elif x.shape[1] == 4:
            x = x[:, :3]
        h, w = x.shape[-2], x.shape[-1]
        # Branch-free on the shape, so torch.export keeps H and W symbolic for ONNX.
        if torch.jit.is_scripting():
            short = min(h, w)
        else:
            short = _sym_min(h, w)
        # Centre square of the short side scaled by input/resize (the crop ratio), then one
        # resize to a fixed input_size x input_size: the network downstream sees a static shape.
        side = (2 * short * self.input_size + self.resize_size) // (2 * self.resize_size)
        top = (h - side) // 2
        left = (w - side) // 2
        x = x[:, :, top : top + side, left : left + side].float()
        if not torch.jit.is_scripting():
            torch._check(x.shape[2] > 0)  # tells torch.export what the bounds above guarantee
            torch._check(x.shape[3] > 0)
        size = [self.input_size, self.input_size]
        if self.mode == "nearest":
            x = F.interpolate(x, size=size, mode="nearest")
        else:
            x = F.interpolate(x, size=size, mode=self.mode, align_corners=False, antialias=True)
        # (buffers; typing them on the class would break TorchScript's annotation parsing)
        return (x.clamp(0.0, 255.0) - self.mean) / self.std  # type: ignore[operator]


def _sym_min(a: int, b: int) -> int:
    """``min`` that torch.export keeps symbolic (a SymInt, typed as int here; kept outside
    ``forward`` because TorchScript reads the type comments there)."""
    return torch.sym_min(a, b)  # type: ignore[return-value]


def to_chw_uint8(image: np.ndarray) -> torch.Tensor:
    """An ``(H, W)`` or ``(H, W, C)`` uint8 array as a contiguous ``(C, H, W)`` uint8 tensor."""
    if image.ndim == 2:
        image = image[:, :, None]
    chw = np.ascontiguousarray(image.transpose(2, 0, 1))
    if not chw.flags.writeable:  # e.g. decoded from a read-only buffer; torch wants writable
        chw = chw.copy()
    return torch.from_numpy(chw)
