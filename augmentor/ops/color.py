"""Photometric ops.

Linear colour ops (brightness, contrast, saturation, grayscale, channel shuffle, invert) describe
an affine colour map ``x -> M x + b`` (:meth:`ColorOp.color_matrix`); consecutive ones are fused
into one map and applied in one pass, clipping once at the end (identical to one-by-one
application wherever no intermediate value leaves the range). Point functions (gamma, posterize,
solarize) are fused into one lookup table on uint8 images. The rest (hue, equalize, autocontrast,
sharpness) are plain per-image kernels.

Formulas follow torchvision's ``adjust_*`` functionals (ITU-R 601-2 luma weights).

About 400 lines on purpose: one family (17 ops) whose fusion contract (``color_matrix``,
``luma_affine``, ``lut_fn``) is easiest to check with every op of it in view.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from augmentor._validation import check_number, check_prob, check_range
from augmentor.ops.base import (
    Node,
    Op,
    finish_like,
    finish_tensor,
    fires,
    max_value,
    per_image_numpy,
    tensor_max_value,
)
from augmentor.registry import register_op
from augmentor.types import Canvas, Record

LUMA = np.array([0.299, 0.587, 0.114])
_GRAY3 = np.outer(np.ones(3), LUMA)  # each output channel = the luma of the input
_EYE3 = np.eye(3)


class ColorOp(Op):
    """An affine colour map. ``mean`` is the per-channel mean of the image it is applied to.

    Ops of the *luma family* (maps ``x -> a x + b luma(x) + d`` on RGB, closed under
    composition) also give ``luma_affine(params, gray_mean) -> (a, b, d)``, which lets the
    planner compose a run of them in three floats; ``uses_mean`` says the map reads the mean.
    """

    kind = "color"
    uses_mean: ClassVar[bool] = False
    luma_affine: ClassVar[Any] = None  # a classmethod on the luma family

    @classmethod
    def color_matrix(
        cls, params: dict[str, Any], mean: np.ndarray, vmax: float
    ) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError


def _factor_range(op: str, arg: str, value: Any) -> tuple[float, float]:
    return check_range(op, arg, value, lo=0.0, center=1.0)


class _FactorOp(ColorOp):
    def __init__(self, factor: float | tuple[float, float] = 0.2, p: float = 1.0) -> None:
        super().__init__(p=p)
        self.factor = _factor_range(self.name, "factor", factor)

    def make_params(self, rng, canvas):
        return {"factor": float(rng.uniform(*self.factor))}


def _gray(mean: np.ndarray) -> float:
    return float(LUMA @ mean) if mean.shape[0] == 3 else float(mean[0])


@register_op("brightness")
class Brightness(_FactorOp):
    """Multiply by a factor in ``factor`` (``f`` means ``(1 - f, 1 + f)``)."""

    @classmethod
    def luma_affine(cls, params, gray_mean):
        return params["factor"], 0.0, 0.0

    @classmethod
    def color_matrix(cls, params, mean, vmax):
        c = mean.shape[0]
        return (_EYE3 if c == 3 else np.eye(c)) * params["factor"], np.zeros(c)


@register_op("contrast")
class Contrast(_FactorOp):
    """Blend with the mean grey level of the image."""

    uses_mean = True

    @classmethod
    def luma_affine(cls, params, gray_mean):
        f = params["factor"]
        return f, 0.0, (1.0 - f) * gray_mean

    @classmethod
    def color_matrix(cls, params, mean, vmax):
        c, f = mean.shape[0], params["factor"]
        return (_EYE3 if c == 3 else np.eye(c)) * f, np.full(c, (1.0 - f) * _gray(mean))


@register_op("saturation")
class Saturation(_FactorOp):
    """Blend with the grey version of the image (no-op on 1-channel images)."""

    @classmethod
    def luma_affine(cls, params, gray_mean):
        f = params["factor"]
        return f, 1.0 - f, 0.0

    @classmethod
    def color_matrix(cls, params, mean, vmax):
        c, f = mean.shape[0], params["factor"]
        if c != 3:
            return np.eye(c), np.zeros(c)
        return f * _EYE3 + (1 - f) * _GRAY3, np.zeros(3)


@register_op("grayscale")
class Grayscale(ColorOp):
    """Replace each channel by the luma (the image keeps its channel count)."""

    def __init__(self, p: float = 0.1) -> None:
        super().__init__(p=p)

    @classmethod
    def luma_affine(cls, params, gray_mean):
        return 0.0, 1.0, 0.0

    @classmethod
    def color_matrix(cls, params, mean, vmax):
        c = mean.shape[0]
        if c != 3:
            return np.eye(c), np.zeros(c)
        return _GRAY3.copy(), np.zeros(3)


@register_op("channel_shuffle")
class ChannelShuffle(ColorOp):
    """Permute the colour channels randomly."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__(p=p)

    def make_params(self, rng, canvas):
        return {"perm": [int(i) for i in rng.permutation(canvas.channels)]}

    @classmethod
    def color_matrix(cls, params, mean, vmax):
        c = mean.shape[0]
        perm = params["perm"] if len(params["perm"]) == c else list(range(c))
        return np.eye(c)[perm], np.zeros(c)


@register_op("invert")
class Invert(ColorOp):
    """``max - x``."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__(p=p)

    @classmethod
    def color_matrix(cls, params, mean, vmax):
        c = mean.shape[0]
        return -np.eye(c), np.full(c, vmax)


@register_op("color_jitter")
class ColorJitter(Node):
    """torchvision's ColorJitter: brightness, contrast, saturation and hue factors, applied in a
    random order. Expands into the leaf records of those ops (so they fuse)."""

    def __init__(
        self,
        brightness: float | tuple[float, float] = 0.0,
        contrast: float | tuple[float, float] = 0.0,
        saturation: float | tuple[float, float] = 0.0,
        hue: float | tuple[float, float] = 0.0,
        p: float = 1.0,
    ) -> None:
        self.p = check_prob(self.name, p)
        self.brightness = _factor_range(self.name, "brightness", brightness)
        self.contrast = _factor_range(self.name, "contrast", contrast)
        self.saturation = _factor_range(self.name, "saturation", saturation)
        self.hue = check_range(self.name, "hue", hue, lo=-0.5, hi=0.5)

    def sample(self, rng: np.random.Generator, canvas: Canvas, out: list[Record]) -> None:
        if not fires(rng, self.p, self.name):
            return
        order = rng.permutation(4)
        table = (
            ("brightness", "factor", self.brightness, (1.0, 1.0)),
            ("contrast", "factor", self.contrast, (1.0, 1.0)),
            ("saturation", "factor", self.saturation, (1.0, 1.0)),
            ("hue", "shift", self.hue, (0.0, 0.0)),
        )
        for i in order:
            name, key, (lo, hi), neutral = table[i]
            if (lo, hi) == neutral:
                continue
            out.append({"op": name, "params": {key: float(rng.uniform(lo, hi))}})


# --------------------------------------------------------------------------------------------
# Point functions: fused into one lookup table on uint8
# --------------------------------------------------------------------------------------------


class LutOp(Op):
    """A function of each value alone, on values scaled to [0, 1]."""

    kind = "lut"

    @classmethod
    def lut_fn(cls, params: dict[str, Any]) -> Callable[[np.ndarray], np.ndarray]:
        raise NotImplementedError


@register_op("gamma")
class Gamma(LutOp):
    """``gain * x ** gamma`` with gamma drawn from ``gamma``."""

    def __init__(
        self, gamma: float | tuple[float, float] = (0.7, 1.5), gain: float = 1.0, p: float = 1.0
    ) -> None:
        super().__init__(p=p)
        if isinstance(gamma, (int, float)) and not isinstance(gamma, bool):
            g = check_number(self.name, "gamma", gamma, lo=1e-3)
            self.gamma = (g, g)
        else:
            self.gamma = check_range(self.name, "gamma", gamma, lo=1e-3)
        self.gain = check_number(self.name, "gain", gain, lo=0.0)

    def make_params(self, rng, canvas):
        lo, hi = np.log(self.gamma[0]), np.log(self.gamma[1])
        return {"gamma": float(np.exp(rng.uniform(lo, hi))), "gain": self.gain}

    @classmethod
    def lut_fn(cls, params):
        g, gain = params["gamma"], params.get("gain", 1.0)
        return lambda x: gain * np.power(x, g)


@register_op("posterize")
class Posterize(LutOp):
    """Keep ``bits`` bits per channel (drawn from ``bits`` if a range)."""

    def __init__(self, bits: int | tuple[int, int] = 4, p: float = 1.0) -> None:
        super().__init__(p=p)
        if isinstance(bits, (int, float)) and not isinstance(bits, bool):
            b = int(check_number(self.name, "bits", bits, 1, 8, integer=True))
            self.bits = (b, b)
        else:
            self.bits = check_range(self.name, "bits", bits, lo=1, hi=8, integer=True)

    def make_params(self, rng, canvas):
        return {"bits": int(rng.integers(self.bits[0], self.bits[1] + 1))}

    @classmethod
    def lut_fn(cls, params):
        mask = (0xFF << (8 - params["bits"])) & 0xFF
        return lambda x: (np.floor(x * 255 + 0.5).astype(np.int64) & mask) / 255.0


@register_op("solarize")
class Solarize(LutOp):
    """Invert the values at or above ``threshold`` (a fraction of the maximum)."""

    def __init__(self, threshold: float | tuple[float, float] = 0.5, p: float = 1.0) -> None:
        super().__init__(p=p)
        if isinstance(threshold, (int, float)) and not isinstance(threshold, bool):
            t = check_number(self.name, "threshold", threshold, 0.0, 1.0)
            self.threshold = (t, t)
        else:
            self.threshold = check_range(self.name, "threshold", threshold, lo=0.0, hi=1.0)

    def make_params(self, rng, canvas):
        return {"threshold": float(rng.uniform(*self.threshold))}

    @classmethod
    def lut_fn(cls, params):
        t = params["threshold"]
        return lambda x: np.where(x >= t - 1e-9, 1.0 - x, x)


# --------------------------------------------------------------------------------------------
# Per-image photometric kernels
# --------------------------------------------------------------------------------------------


def _as_uint8(image: np.ndarray) -> np.ndarray:
    if image.dtype == np.uint8:
        return image
    return np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)


def _back(result_u8: np.ndarray, like: np.ndarray) -> np.ndarray:
    if like.dtype == np.uint8:
        return result_u8
    return result_u8.astype(np.float32) / 255.0


@register_op("hue")
class Hue(Op):
    """Shift the hue by a fraction of the colour wheel drawn from ``shift`` (in [-0.5, 0.5])."""

    numpy_on_cpu = True  # measured faster per image on CPU than apply_torch there

    def __init__(self, shift: float | tuple[float, float] = 0.1, p: float = 1.0) -> None:
        super().__init__(p=p)
        self.shift = check_range(self.name, "shift", shift, lo=-0.5, hi=0.5)

    def make_params(self, rng, canvas):
        return {"shift": float(rng.uniform(*self.shift))}

    @classmethod
    def apply_np(cls, image, params):
        """OpenCV's float HSV (hue in degrees) for every dtype: its uint8 HSV quantises the hue
        to 256 steps and its uint8 HSV->RGB (fixed point, SIMD-dependent rounding) could not be
        reproduced on a device, whereas the float formulas are (:meth:`apply_torch`)."""
        import cv2

        if image.shape[2] != 3 or params["shift"] == 0:
            return image
        x = image.astype(np.float32) / np.float32(255.0) if image.dtype == np.uint8 else image
        hsv = cv2.cvtColor(x.astype(np.float32, copy=False), cv2.COLOR_RGB2HSV)
        # hue in [0, 720): OpenCV's HSV->RGB takes the sector modulo 6 (np.mod costs 4x more)
        hsv[..., 0] += np.float32(_degrees(params["shift"]))
        out = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
        if image.dtype == np.uint8:
            return cv2.convertScaleAbs(out, alpha=255.0)  # round half to even, saturate
        return np.clip(out, 0.0, 1.0)

    @classmethod
    def apply_torch(cls, images: Any, params: list[dict[str, Any]]) -> Any:
        """On the images' device: OpenCV's float RGB->HSV->RGB formulas written in torch
        (neither torchvision's ``adjust_hue``, which differs from OpenCV by up to 2 levels, nor
        kornia follows them), so a batch writes the per-image pixels within one level."""
        import torch

        if images.shape[1] != 3:
            return images
        degrees = [np.float32(_degrees(p["shift"])) for p in params]
        shifts = torch.tensor(degrees, dtype=torch.float32, device=images.device)
        x = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
        r, g, b = x.unbind(1)
        v = torch.maximum(torch.maximum(r, g), b)
        diff = v - torch.minimum(torch.minimum(r, g), b)
        s = diff / (v.abs() + _FLT_EPSILON)
        k = 60.0 / (diff + _FLT_EPSILON)
        h = torch.where(
            v == r, (g - b) * k, torch.where(v == g, (b - r) * k + 120.0, (r - g) * k + 240.0)
        )
        h = torch.where(h < 0, h + 360.0, h)
        h = (h + shifts.view(-1, 1, 1)) * float(np.float32(6.0) / np.float32(360.0))
        sector = torch.floor(h)
        f = h - sector
        sector = sector - 6.0 * torch.floor(sector / 6.0)
        t0, t1, t2, t3 = v, v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
        # which of t0..t3 each channel takes in sectors 0..5 (OpenCV's sector table)
        rr = torch.where(
            sector < 1,
            t0,
            torch.where(
                sector == 1, t2, torch.where(sector <= 3, t1, torch.where(sector == 4, t3, t0))
            ),
        )
        gg = torch.where(
            sector < 1, t3, torch.where(sector <= 2, t0, torch.where(sector == 3, t2, t1))
        )
        bb = torch.where(
            sector < 2, t1, torch.where(sector == 2, t3, torch.where(sector <= 4, t0, t2))
        )
        out = torch.stack([rr, gg, bb], 1) * tensor_max_value(images)
        out = finish_tensor(out, images.dtype)
        unchanged = torch.tensor([p["shift"] == 0 for p in params], device=images.device)
        return torch.where(unchanged.view(-1, 1, 1, 1), images, out)


_FLT_EPSILON = float(np.finfo(np.float32).eps)


def _degrees(shift: float) -> float:
    """A hue shift (fraction of the wheel, in [-0.5, 0.5]) as degrees in [0, 360)."""
    return (shift * 360.0) % 360.0


@register_op("equalize")
class Equalize(Op):
    """Histogram equalisation of each channel."""

    def __init__(self, p: float = 1.0) -> None:
        super().__init__(p=p)

    @classmethod
    def apply_np(cls, image, params):
        u8 = _as_uint8(image)
        out = np.empty_like(u8)
        for c in range(u8.shape[2]):
            lut = equalize_lut(np.bincount(u8[..., c].ravel(), minlength=256))
            out[..., c] = lut[u8[..., c]]
        return _back(out, image)

    @classmethod
    def apply_torch(cls, images: Any, params: list[dict[str, Any]]) -> Any:
        """torchvision's ``equalize`` on the device (the same table as :func:`equalize_lut`);
        float images go through the numpy kernel, which rounds them to 8 bits first."""
        import torch
        from torchvision.transforms.v2 import functional as TF

        if images.dtype != torch.uint8:
            return per_image_numpy(cls.apply_np, images, params)
        return TF.equalize(images)


def equalize_lut(hist: np.ndarray) -> np.ndarray:
    """PIL's ImageOps.equalize table, which torchvision's equalize also follows (OpenCV's
    equalizeHist maps the lowest level differently, so it is not used)."""
    nonzero = hist[hist > 0]
    if len(nonzero) <= 1:
        return np.arange(256, dtype=np.uint8)
    step = (int(nonzero.sum()) - int(nonzero[-1])) // 255
    if step == 0:
        return np.arange(256, dtype=np.uint8)
    cum = np.concatenate([[0], np.cumsum(hist)[:-1]])
    return np.minimum((step // 2 + cum) // step, 255).astype(np.uint8)


@register_op("autocontrast")
class AutoContrast(Op):
    """Stretch each channel so its minimum maps to 0 and its maximum to the top of the range."""

    def __init__(self, p: float = 1.0) -> None:
        super().__init__(p=p)

    @classmethod
    def apply_np(cls, image, params):
        vmax = max_value(image)
        x = image.reshape(-1, image.shape[2])
        lo, hi = x.min(axis=0).astype(np.float32), x.max(axis=0).astype(np.float32)
        flat = hi <= lo
        scale = np.where(flat, 1.0, vmax / np.maximum(hi - lo, 1e-12)).astype(np.float32)
        lo = np.where(flat, 0.0, lo).astype(np.float32)
        out = (image.astype(np.float32) - lo) * scale
        return finish_like(out, image)

    @classmethod
    def apply_torch(cls, images: Any, params: list[dict[str, Any]]) -> Any:
        """torchvision's ``autocontrast`` on the device, the whole batch at once."""
        from torchvision.transforms.v2 import functional as TF

        return TF.autocontrast(images)


@register_op("sharpness")
class Sharpness(Op):
    """Blend with a smoothed copy (torchvision's 3x3 kernel; border pixels kept); factor 0 gives
    the smoothed image, 1 the original, 2 a sharper one."""

    def __init__(self, factor: float | tuple[float, float] = (0.5, 2.0), p: float = 1.0) -> None:
        super().__init__(p=p)
        self.factor = _factor_range(self.name, "factor", factor)

    def make_params(self, rng, canvas):
        return {"factor": float(rng.uniform(*self.factor))}

    @classmethod
    def apply_np(cls, image, params):
        import cv2

        h, w = image.shape[:2]
        if h <= 2 or w <= 2:
            return image
        kernel = np.ones((3, 3), np.float32)
        kernel[1, 1] = 5.0
        kernel /= 13.0
        x = image.astype(np.float32)
        blurred = cv2.filter2D(x, -1, kernel, borderType=cv2.BORDER_REPLICATE)
        if blurred.ndim == 2:
            blurred = blurred[..., None]
        blurred[0, :] = x[0, :]
        blurred[-1, :] = x[-1, :]
        blurred[:, 0] = x[:, 0]
        blurred[:, -1] = x[:, -1]
        if image.dtype == np.uint8:
            blurred = np.rint(blurred)  # torchvision rounds the smoothed image on uint8
        f = params["factor"]
        out = f * x + (1 - f) * blurred
        return finish_like(out, image)

    @classmethod
    def apply_torch(cls, images: Any, params: list[dict[str, Any]]) -> Any:
        """torchvision's ``adjust_sharpness`` on the device, one factor per image."""
        import torch
        from torchvision.transforms.v2 import functional as TF

        if min(images.shape[-2:]) <= 2:
            return images
        rows = [TF.adjust_sharpness(images[i : i + 1], p["factor"]) for i, p in enumerate(params)]
        return torch.cat(rows).to(images.dtype)
