"""Random erasing (cutout)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from augmentor._validation import check_fill, check_number, check_range
from augmentor.ops.base import Op, max_value
from augmentor.registry import register_op


@register_op("random_erasing")
class RandomErasing(Op):
    """Erase a random rectangle (Zhong et al. 2017; torchvision's RandomErasing algorithm).

    Args:
        scale: range of the erased area as a fraction of the image.
        ratio: range of its aspect ratio, sampled log-uniformly.
        value: a fill value (fraction of the maximum, or 3 of them), or ``"random"`` for noise.
        count: how many rectangles (cutout with several holes).
    """

    def __init__(
        self,
        scale: tuple[float, float] = (0.02, 0.33),
        ratio: tuple[float, float] = (0.3, 3.3),
        value: float | str | list[float] = 0.0,
        count: int = 1,
        p: float = 0.5,
    ) -> None:
        super().__init__(p=p)
        self.scale = check_range(self.name, "scale", scale, lo=0.0, hi=1.0)
        self.ratio = check_range(self.name, "ratio", ratio, lo=1e-3)
        if value == "random":
            self.value = "random"
        else:
            v = check_fill(self.name, value)
            for x in [v] if isinstance(v, float) else v:
                check_number(self.name, "value", x, 0.0, 1.0)
            self.value = v
        self.count = int(check_number(self.name, "count", count, lo=1, integer=True))

    def make_params(self, rng, canvas):
        h, w = canvas.size
        boxes = []
        log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(self.count):
            for _ in range(10):
                area = h * w * rng.uniform(*self.scale)
                aspect = math.exp(rng.uniform(*log_ratio))
                eh = int(round(math.sqrt(area * aspect)))
                ew = int(round(math.sqrt(area / aspect)))
                if 0 < eh < h and 0 < ew < w:
                    top = int(rng.integers(0, h - eh + 1))
                    left = int(rng.integers(0, w - ew + 1))
                    boxes.append([top, left, eh, ew])
                    break
        return {"boxes": boxes, "value": self.value, "seed": int(rng.integers(2**31))}

    @classmethod
    def apply_np(cls, image, params):
        if not params["boxes"]:
            return image
        out = image.copy()
        vmax = max_value(image)
        g = np.random.default_rng(params["seed"])
        for top, left, eh, ew in params["boxes"]:
            region = out[top : top + eh, left : left + ew]
            if params["value"] == "random":
                noise = g.random(region.shape, dtype=np.float32) * vmax
                region[...] = np.rint(noise) if image.dtype == np.uint8 else noise
            else:
                v = np.asarray(params["value"], dtype=np.float32) * vmax
                if v.ndim and v.shape[0] != region.shape[2]:
                    v = v[: region.shape[2]] if v.shape[0] > region.shape[2] else v[:1]
                region[...] = np.rint(v) if image.dtype == np.uint8 else v
        return out

    @classmethod
    def apply_torch(cls, images: Any, params: list[dict[str, Any]]) -> Any:
        """On the images' device; the noise of ``value="random"`` is drawn from the same
        numpy stream as :meth:`apply_np` (so both paths write the same pixels) and copied."""
        import torch

        out = images.clone()
        uint8 = images.dtype == torch.uint8
        vmax = 255.0 if uint8 else 1.0
        c = images.shape[1]
        for i, p in enumerate(params):
            if not p["boxes"]:
                continue
            g = np.random.default_rng(p["seed"])
            for top, left, eh, ew in p["boxes"]:
                if p["value"] == "random":
                    noise = g.random((eh, ew, c), dtype=np.float32) * vmax
                    block = torch.from_numpy(np.rint(noise) if uint8 else noise)
                    value = block.permute(2, 0, 1).to(out)
                else:
                    v = np.atleast_1d(np.asarray(p["value"], dtype=np.float32) * vmax)
                    if v.shape[0] != c:
                        v = v[:c] if v.shape[0] > c else np.repeat(v[:1], c)
                    value = torch.from_numpy(np.rint(v) if uint8 else v).to(out).view(c, 1, 1)
                out[i, :, top : top + eh, left : left + ew] = value
        return out
