"""The final op: conversion to a normalised float ``C x H x W`` tensor."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np

from augmentor._validation import check_number
from augmentor.ops.base import Op, max_value
from augmentor.registry import register_op


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
