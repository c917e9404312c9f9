"""Blur, noise and compression ops.

Noise is regenerated from a seed kept in the params (an int, not an array), so a record stays
small, serialisable and replays the same noise on every backend: the values are counter-based
hashes (:mod:`augmentor.ops.counter_rng`) that numpy and torch on any device compute alike, so
the batched kernels run on the images' device and write the per-image pixels.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from augmentor._validation import check_number, check_range
from augmentor.ops.base import (
    Op,
    finish_like,
    finish_tensor,
    max_value,
    per_image_numpy,
    tensor_max_value,
)
from augmentor.ops.counter_rng import bits_np, bits_torch, normal_np, normal_torch
from augmentor.registry import register_op


def _per_image(values: list[Any], like: Any, integer: bool = False) -> Any:
    """One value per image, shaped to broadcast over ``N x C x H x W``."""
    import torch

    dtype = torch.int64 if integer else torch.float32
    return torch.tensor(values, dtype=dtype, device=like.device).view(-1, 1, 1, 1)


def _keep_channels(out: np.ndarray, like: np.ndarray) -> np.ndarray:
    return out[..., None] if out.ndim == 2 and like.ndim == 3 else out


@register_op("gaussian_blur")
class GaussianBlur(Op):
    """Gaussian blur with sigma drawn from ``sigma``; ``kernel_size`` 0 derives it from sigma."""

    def __init__(
        self, sigma: float | tuple[float, float] = (0.1, 2.0), kernel_size: int = 0, p: float = 1.0
    ) -> None:
        super().__init__(p=p)
        if isinstance(sigma, (int, float)) and not isinstance(sigma, bool):
            s = check_number(self.name, "sigma", sigma, lo=1e-3)
            self.sigma = (s, s)
        else:
            self.sigma = check_range(self.name, "sigma", sigma, lo=1e-3)
        k = int(check_number(self.name, "kernel_size", kernel_size, lo=0, integer=True))
        if k and k % 2 == 0:
            raise ValueError(f"{self.name}: kernel_size must be odd or 0, got {kernel_size!r}")
        self.kernel_size = k

    def make_params(self, rng, canvas):
        sigma = float(rng.uniform(*self.sigma))
        k = self.kernel_size or int(2 * math.ceil(3 * sigma) + 1)
        return {"sigma": sigma, "kernel_size": k}

    @classmethod
    def apply_np(cls, image, params):
        import cv2

        k = params["kernel_size"]
        out = cv2.GaussianBlur(image, (k, k), params["sigma"], borderType=cv2.BORDER_REFLECT_101)
        return _keep_channels(out, image)

    @classmethod
    def apply_torch(cls, images: Any, params: list[dict[str, Any]]) -> Any:
        """On the images' device: torchvision's separable Gaussian with reflect padding (=
        OpenCV's BORDER_REFLECT_101); an image smaller than half its kernel goes to OpenCV."""
        import torch
        from torchvision.transforms.v2 import functional as TF

        out = images.clone()
        for i, p in enumerate(params):
            k, sigma = p["kernel_size"], p["sigma"]
            if k // 2 >= min(images.shape[-2:]):
                out[i] = per_image_numpy(cls.apply_np, images[i : i + 1], [p])[0]
                continue
            y = TF.gaussian_blur(images[i : i + 1].float(), [k, k], [sigma, sigma])
            out[i] = y[0].round().clamp(0, 255) if images.dtype == torch.uint8 else y[0]
        return out


def motion_kernel(length: int, angle: float) -> np.ndarray:
    """A normalised line kernel of ``length`` pixels at ``angle`` degrees (hand-written: neither
    torchvision nor OpenCV ships one)."""
    import cv2

    k = np.zeros((length, length), np.float32)
    k[length // 2, :] = 1.0
    rot = cv2.getRotationMatrix2D(((length - 1) / 2, (length - 1) / 2), angle, 1.0)
    warped: np.ndarray = cv2.warpAffine(k, rot, (length, length), flags=cv2.INTER_LINEAR)
    s = warped.sum()
    return warped / s if s > 0 else np.eye(length, dtype=np.float32) / length


@register_op("motion_blur")
class MotionBlur(Op):
    """Blur along a line of random length (odd, in ``kernel_size``) and direction."""

    def __init__(self, kernel_size: int | tuple[int, int] = (3, 9), p: float = 1.0) -> None:
        super().__init__(p=p)
        if isinstance(kernel_size, (int, float)) and not isinstance(kernel_size, bool):
            k = int(check_number(self.name, "kernel_size", kernel_size, lo=3, integer=True))
            self.kernel_size = (k, k)
        else:
            self.kernel_size = check_range(
                self.name, "kernel_size", kernel_size, lo=3, integer=True
            )

    def make_params(self, rng, canvas):
        lo, hi = self.kernel_size
        odd = [k for k in range(lo, hi + 1) if k % 2 == 1] or [lo | 1]
        return {"length": int(rng.choice(odd)), "angle": float(rng.uniform(0, 180))}

    @classmethod
    def apply_np(cls, image, params):
        import cv2

        k = motion_kernel(params["length"], params["angle"])
        out = cv2.filter2D(image, -1, k, borderType=cv2.BORDER_REFLECT_101)
        return _keep_channels(out, image)

    @classmethod
    def apply_torch(cls, images: Any, params: list[dict[str, Any]]) -> Any:
        """On the images' device: the same line kernel as a correlation (``conv2d``, like
        ``filter2D``) with reflect-101 padding; an image smaller than the kernel goes to
        OpenCV."""
        import torch
        from torch.nn import functional as F

        out = images.clone()
        c = images.shape[1]
        for i, p in enumerate(params):
            length = p["length"]
            r = length // 2
            if r >= min(images.shape[-2:]):
                out[i] = per_image_numpy(cls.apply_np, images[i : i + 1], [p])[0]
                continue
            k = torch.from_numpy(motion_kernel(length, p["angle"])).to(images.device)
            x = F.pad(images[i : i + 1].float(), (r, r, r, r), mode="reflect")
            y = F.conv2d(x, k.expand(c, 1, length, length), groups=c)[0]
            out[i] = y.round().clamp(0, 255) if images.dtype == torch.uint8 else y
        return out


@register_op("gaussian_noise")
class GaussianNoise(Op):
    """Add Gaussian noise with standard deviation drawn from ``std`` (fraction of the maximum)."""

    numpy_on_cpu = True  # measured faster per image on CPU than apply_torch there

    def __init__(
        self,
        std: float | tuple[float, float] = (0.01, 0.05),
        per_channel: bool = True,
        p: float = 1.0,
    ) -> None:
        super().__init__(p=p)
        if isinstance(std, (int, float)) and not isinstance(std, bool):
            s = check_number(self.name, "std", std, 0.0, 1.0)
            self.std = (s, s)
        else:
            self.std = check_range(self.name, "std", std, lo=0.0, hi=1.0)
        self.per_channel = bool(per_channel)

    def make_params(self, rng, canvas):
        return {
            "std": float(rng.uniform(*self.std)),
            "per_channel": self.per_channel,
            "seed": int(rng.integers(2**31)),
        }

    @classmethod
    def apply_np(cls, image, params):
        h, w, c = image.shape
        shape = (h, w, c) if params["per_channel"] else (h, w, 1)
        noise = normal_np(params["seed"], shape) * np.float32(params["std"] * max_value(image))
        return finish_like(image.astype(np.float32) + noise, image)

    @classmethod
    def apply_torch(cls, images: Any, params: list[dict[str, Any]]) -> Any:
        """On the images' device, the per-image noise (counter-based, see the module)."""
        n, c, h, w = images.shape
        out = images.clone()
        for per_channel in {bool(p["per_channel"]) for p in params}:
            rows = [i for i, p in enumerate(params) if bool(p["per_channel"]) == per_channel]
            seeds = [params[i]["seed"] for i in rows]
            noise = normal_torch(seeds, c if per_channel else 1, h, w, images.device)
            scale = _per_image([params[i]["std"] * tensor_max_value(images) for i in rows], images)
            out[rows] = finish_tensor(images[rows].float() + noise * scale, images.dtype)
        return out


@register_op("speckle_noise")
class SpeckleNoise(Op):
    """Multiplicative noise: ``x * (1 + n)`` with ``n`` Gaussian of std drawn from ``std``."""

    numpy_on_cpu = True  # measured faster per image on CPU than apply_torch there

    def __init__(self, std: float | tuple[float, float] = (0.05, 0.2), p: float = 1.0) -> None:
        super().__init__(p=p)
        if isinstance(std, (int, float)) and not isinstance(std, bool):
            s = check_number(self.name, "std", std, 0.0, 2.0)
            self.std = (s, s)
        else:
            self.std = check_range(self.name, "std", std, lo=0.0, hi=2.0)

    def make_params(self, rng, canvas):
        return {"std": float(rng.uniform(*self.std)), "seed": int(rng.integers(2**31))}

    @classmethod
    def apply_np(cls, image, params):
        n = normal_np(params["seed"], image.shape) * np.float32(params["std"])
        return finish_like(image.astype(np.float32) * (np.float32(1.0) + n), image)

    @classmethod
    def apply_torch(cls, images: Any, params: list[dict[str, Any]]) -> Any:
        """On the images' device, the per-image noise (counter-based, see the module)."""
        _, c, h, w = images.shape
        noise = normal_torch([p["seed"] for p in params], c, h, w, images.device)
        std = _per_image([p["std"] for p in params], images)
        return finish_tensor(images.float() * (1.0 + noise * std), images.dtype)


@register_op("salt_pepper")
class SaltPepper(Op):
    """Set a fraction ``amount`` of pixels to the maximum (salt) or zero (pepper)."""

    def __init__(
        self,
        amount: float | tuple[float, float] = (0.01, 0.05),
        salt_vs_pepper: float = 0.5,
        p: float = 1.0,
    ) -> None:
        super().__init__(p=p)
        if isinstance(amount, (int, float)) and not isinstance(amount, bool):
            a = check_number(self.name, "amount", amount, 0.0, 1.0)
            self.amount = (a, a)
        else:
            self.amount = check_range(self.name, "amount", amount, lo=0.0, hi=1.0)
        self.salt_vs_pepper = check_number(self.name, "salt_vs_pepper", salt_vs_pepper, 0.0, 1.0)

    def make_params(self, rng, canvas):
        return {
            "amount": float(rng.uniform(*self.amount)),
            "salt_vs_pepper": self.salt_vs_pepper,
            "seed": int(rng.integers(2**31)),
        }

    @staticmethod
    def _thresholds(params: dict[str, Any]) -> tuple[int, int]:
        # in 24-bit units, so both backends compare integers
        amount, svp = params["amount"], params["salt_vs_pepper"]
        return int(amount * svp * (1 << 24)), int(amount * (1 << 24))

    @classmethod
    def apply_np(cls, image, params):
        h, w = image.shape[:2]
        k = bits_np(params["seed"], (h, w))
        salt, stop = cls._thresholds(params)
        out = image.copy()
        out[k < salt] = max_value(image)
        out[(k >= salt) & (k < stop)] = 0
        return out

    @classmethod
    def apply_torch(cls, images: Any, params: list[dict[str, Any]]) -> Any:
        """On the images' device, the per-image pixels (counter-based, see the module)."""
        _, _, h, w = images.shape
        k = bits_torch([p["seed"] for p in params], 1, h, w, images.device)
        limits = [cls._thresholds(p) for p in params]
        salt = _per_image([a for a, _ in limits], images, integer=True)
        stop = _per_image([b for _, b in limits], images, integer=True)
        out = images.masked_fill(k < salt, tensor_max_value(images))
        return out.masked_fill((k >= salt) & (k < stop), 0)


@register_op("jpeg")
class Jpeg(Op):
    """Re-encode as JPEG with a quality drawn from ``quality`` (compression artefacts)."""

    def __init__(self, quality: int | tuple[int, int] = (30, 90), p: float = 1.0) -> None:
        super().__init__(p=p)
        if isinstance(quality, (int, float)) and not isinstance(quality, bool):
            q = int(check_number(self.name, "quality", quality, 1, 100, integer=True))
            self.quality = (q, q)
        else:
            self.quality = check_range(self.name, "quality", quality, lo=1, hi=100, integer=True)

    def make_params(self, rng, canvas):
        return {"quality": int(rng.integers(self.quality[0], self.quality[1] + 1))}

    @classmethod
    def apply_np(cls, image, params):
        import cv2

        u8 = (
            image
            if image.dtype == np.uint8
            else np.clip(np.rint(image * 255), 0, 255).astype(np.uint8)
        )
        bgr = u8[..., ::-1] if u8.shape[2] == 3 else u8[..., 0]
        ok, buf = cv2.imencode(
            ".jpg", np.ascontiguousarray(bgr), [cv2.IMWRITE_JPEG_QUALITY, params["quality"]]
        )
        if not ok:  # pragma: no cover - OpenCV always encodes uint8 HWC
            raise RuntimeError("jpeg: OpenCV failed to encode the image")
        dec = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
        dec = dec[..., ::-1] if dec.ndim == 3 else dec[..., None]
        dec = np.ascontiguousarray(dec)
        return dec if image.dtype == np.uint8 else dec.astype(np.float32) / 255.0

    @classmethod
    def apply_torch(cls, images: Any, params: list[dict[str, Any]]) -> Any:
        """torchvision's ``encode_jpeg``/``decode_jpeg``: libjpeg-turbo on the CPU (the same
        bytes as OpenCV's), nvJPEG for CUDA images, batched per quality; images that are not
        grey or RGB go through OpenCV per image."""
        import torch

        try:  # deprecated in torchvision 0.29 (for TorchCodec); OpenCV per image once gone
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                from torchvision.io import decode_jpeg, encode_jpeg
        except ImportError:  # pragma: no cover - torchvision without its image codecs
            return per_image_numpy(cls.apply_np, images, params)
        if images.shape[1] not in (1, 3):
            return per_image_numpy(cls.apply_np, images, params)
        u8 = images if images.dtype == torch.uint8 else finish_tensor(images * 255.0, torch.uint8)
        out = torch.empty_like(u8)
        for quality in sorted({p["quality"] for p in params}):
            rows = [i for i, p in enumerate(params) if p["quality"] == quality]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                encoded = encode_jpeg([u8[i].contiguous() for i in rows], quality=quality)
                decoded = decode_jpeg([e.cpu() for e in encoded], device=images.device)
            for i, d in zip(rows, decoded):
                out[i] = d
        return out if images.dtype == torch.uint8 else out.float() / 255.0
