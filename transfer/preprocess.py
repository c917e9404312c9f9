"""The backbone's preprocessing as one torch module, used in training and inside exported models.

Training, prediction and the TorchScript / ONNX exports all run this same module, so an exported
model sees exactly the pixels the classifier was trained on. Written as a small module rather than
a ``transforms.v2.Compose`` because it must script and export with the network (v2 transforms do
not script) and must accept any image size and 1, 3 or 4 channels.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from transfer.backbones import Preprocessing

__all__ = ["Preprocess", "to_chw_uint8"]


class Preprocess(nn.Module):
    """uint8 ``(N, C, H, W)`` images of any size, C in {1, 3, 4} -> normalized float input.

    Centre-crop the square that "resize the short side to ``resize_size``, crop ``input_size``"
    keeps, resize it (antialiased) to ``input_size``, scale to [0, 1] and normalize. Grey images
    are repeated to RGB; alpha is dropped.

    Example:
        >>> pre = Preprocess(Preprocessing(8, 10, (0.5,) * 3, (0.5,) * 3, "bilinear"))
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
            short = torch.sym_min(h, w)
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
        return (x.clamp(0.0, 255.0) - self.mean) / self.std


def to_chw_uint8(image: np.ndarray) -> torch.Tensor:
    """An ``(H, W)`` or ``(H, W, C)`` uint8 array as a contiguous ``(C, H, W)`` uint8 tensor."""
    if image.ndim == 2:
        image = image[:, :, None]
    chw = np.ascontiguousarray(image.transpose(2, 0, 1))
    if not chw.flags.writeable:  # e.g. decoded from a read-only buffer; torch wants writable
        chw = chw.copy()
    return torch.from_numpy(chw)
