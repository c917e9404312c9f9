"""Displacement-field ops (``kind = "field"``): elastic and grid distortion, applied with a
remap from output pixels to input positions."""

from __future__ import annotations

from typing import Any

import numpy as np

from augmentor._validation import (
    check_number,
    check_range,
)
from augmentor.ops.base import Op
from augmentor.ops.geometric import interp_fill
from augmentor.registry import register_op
from augmentor.types import Size

# --------------------------------------------------------------------------------------------
# Displacement fields
# --------------------------------------------------------------------------------------------


class FieldOp(Op):
    """A non-linear warp given by a dense map from output pixel to input position."""

    kind = "field"

    @classmethod
    def field(cls, params: dict[str, Any], size: Size) -> tuple[np.ndarray, np.ndarray]:
        """``(map_x, map_y)`` float32 arrays of the output size, in pixel-centre coordinates."""
        raise NotImplementedError


@register_op("elastic")
class Elastic(FieldOp):
    """Elastic deformation: a random displacement field smoothed by a Gaussian of ``sigma`` pixels,
    with displacements of about ``alpha`` pixels (Simard et al. 2003)."""

    def __init__(
        self,
        alpha: float | tuple[float, float] = 30.0,
        sigma: float = 5.0,
        p: float = 1.0,
        interpolation: str = "bilinear",
        fill: float | list[float] = 0.0,
    ) -> None:
        super().__init__(p=p)
        if isinstance(alpha, (int, float)) and not isinstance(alpha, bool):
            a = check_number(self.name, "alpha", alpha, lo=0.0)
            self.alpha = (a, a)
        else:
            self.alpha = check_range(self.name, "alpha", alpha, lo=0.0)
        self.sigma = check_number(self.name, "sigma", sigma, lo=0.1)
        self.interpolation, self.fill = interp_fill(self.name, interpolation, fill)

    def make_params(self, rng, canvas):
        return {
            "alpha": float(rng.uniform(*self.alpha)),
            "sigma": self.sigma,
            "seed": int(rng.integers(2**31)),
            "interpolation": self.interpolation,
            "fill": self.fill,
        }

    @classmethod
    def field(cls, params, size):
        import cv2

        h, w = size
        noise = (
            np.random.default_rng(params["seed"]).uniform(-1, 1, size=(2, h, w)).astype(np.float32)
        )
        sigma = params["sigma"]
        k = int(2 * round(3 * sigma) + 1)
        dx = cv2.GaussianBlur(noise[0], (k, k), sigma)
        dy = cv2.GaussianBlur(noise[1], (k, k), sigma)
        # normalise so that the typical displacement is alpha pixels whatever sigma is
        scale = params["alpha"] / max(float(np.sqrt((dx**2 + dy**2).mean())), 1e-8)
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
        return xs + dx * scale, ys + dy * scale


@register_op("grid_distortion")
class GridDistortion(FieldOp):
    """Grid distortion: the image is cut into ``num_steps`` x ``num_steps`` cells whose sizes are
    scaled by factors in ``1 ± distort_limit`` (albumentations' GridDistortion)."""

    def __init__(
        self,
        num_steps: int = 5,
        distort_limit: float = 0.3,
        p: float = 1.0,
        interpolation: str = "bilinear",
        fill: float | list[float] = 0.0,
    ) -> None:
        super().__init__(p=p)
        self.num_steps = int(check_number(self.name, "num_steps", num_steps, lo=1, integer=True))
        self.distort_limit = check_number(self.name, "distort_limit", distort_limit, 0.0, 0.99)
        self.interpolation, self.fill = interp_fill(self.name, interpolation, fill)

    def make_params(self, rng, canvas):
        d = self.distort_limit
        n = self.num_steps
        return {
            "xsteps": (1 + rng.uniform(-d, d, n + 1)).tolist(),
            "ysteps": (1 + rng.uniform(-d, d, n + 1)).tolist(),
            "interpolation": self.interpolation,
            "fill": self.fill,
        }

    @classmethod
    def field(cls, params, size):
        h, w = size

        def axis(length: int, steps: list[float]) -> np.ndarray:
            n = len(steps) - 1
            cell = length / n
            # output cell boundaries are uniform; input boundaries are stretched by the steps
            src = np.concatenate([[0.0], np.cumsum(np.asarray(steps[:n]) * cell)])
            src *= length / src[-1]
            dst = np.linspace(0.0, length, n + 1)
            centres = np.arange(length, dtype=np.float64) + 0.5
            return (np.interp(centres, dst, src) - 0.5).astype(np.float32)

        xs = axis(w, params["xsteps"])
        ys = axis(h, params["ysteps"])
        map_x = np.broadcast_to(xs[None, :], (h, w)).copy()
        map_y = np.broadcast_to(ys[:, None], (h, w)).copy()
        return map_x, map_y
