"""Random erasing (cutout) and the final conversion to a normalised float tensor."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from augmentor.ops.base import Op, check_fill, check_number, check_range, max_value
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


@functools.lru_cache(maxsize=64)
def _lut_cache(
    channels: int, mean: tuple[float, ...] | None, std: tuple[float, ...] | None
) -> list[np.ndarray]:
    """Per-channel uint8 -> float32 tables of :class:`Normalize`, keyed by its params (so an
    image costs a dict lookup, not the scale/offset algebra)."""
    params = {
        "mean": None if mean is None else list(mean),
        "std": None if std is None else list(std),
    }
    scale, offset = Normalize.scale_offset(params, channels, 255.0)
    values = np.arange(256, dtype=np.float64)
    return [(values * s + o).astype(np.float32) for s, o in zip(scale.tolist(), offset.tolist())]


@register_op("normalize")
class Normalize(Op):
    """Convert to a float32 ``C x H x W`` tensor scaled to [0, 1], then ``(x - mean) / std``.

    Must be the last op of a pipeline. ``mean``/``std`` default to no normalisation; pass the
    backbone's own (``transfer`` reads them from the backbone, never hard-coded).
    """

    kind = "final"

    def __init__(
        self,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        p: float = 1.0,
    ) -> None:
        super().__init__(p=p)
        if p != 1.0:
            raise ValueError(f"normalize: p must be 1 (it converts the type), got {p!r}")
        self.mean = None if mean is None else [check_number(self.name, "mean", m) for m in mean]
        self.std = (
            None if std is None else [check_number(self.name, "std", s, lo=1e-12) for s in std]
        )
        if self.std is not None and any(s <= 0 for s in self.std):
            raise ValueError(f"normalize: std must be > 0, got {list(std)!r}")

    def make_params(self, rng, canvas):
        return {"mean": self.mean, "std": self.std}

    @classmethod
    def scale_offset(
        cls, params: dict[str, Any], channels: int, vmax: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """``out = x * scale + offset`` per channel."""
        mean = np.zeros(channels) if params["mean"] is None else np.asarray(params["mean"], float)
        std = np.ones(channels) if params["std"] is None else np.asarray(params["std"], float)
        if mean.shape[0] != channels or std.shape[0] != channels:
            if mean.shape[0] == 1 or std.shape[0] == 1 or channels == 1:
                mean = np.resize(mean, channels)
                std = np.resize(std, channels)
            else:
                raise ValueError(
                    f"normalize: mean/std have {mean.shape[0]} values but the image has "
                    f"{channels} channels"
                )
        return 1.0 / (vmax * std), -mean / std

    @classmethod
    def apply_np(cls, image, params):
        import cv2

        c = image.shape[2]
        out = np.empty((c, *image.shape[:2]), np.float32)
        if image.dtype == np.uint8:
            # One pass per channel through a 256-entry float table, written straight into the
            # CHW buffer: no float HWC intermediate and no transposed copy (both cost more than
            # the arithmetic, through fresh-page faults on 600 kB buffers).
            mean, std = params["mean"], params["std"]
            luts = _lut_cache(
                c, None if mean is None else tuple(mean), None if std is None else tuple(std)
            )
            # one plane at a time (cv2.extractChannel) is faster than cv2.split's three at once
            for k in range(c):
                plane = cv2.extractChannel(image, k) if c > 1 else image[..., 0]
                cv2.LUT(plane, luts[k], dst=out[k])
            return out
        scale, offset = cls.scale_offset(params, c, max_value(image))
        for k in range(c):
            np.multiply(image[..., k], np.float32(scale[k]), out=out[k])
            out[k] += np.float32(offset[k])
        return out
