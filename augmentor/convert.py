"""Conversions at the boundary: PIL images, numpy arrays, tensors and tv_tensors in; the same type
out. Inside, an image is an HWC numpy array (uint8 or float32 in [0, 1])."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np


def _is_tensor(x: Any) -> bool:
    import sys

    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def _is_pil(x: Any) -> bool:
    import sys

    pil = sys.modules.get("PIL.Image")
    return pil is not None and isinstance(x, pil.Image)


def is_image_like(x: Any) -> bool:
    return _is_pil(x) or isinstance(x, np.ndarray) or _is_tensor(x)


def pil_to_array(img: Any) -> np.ndarray:
    """Any PIL mode to HWC uint8: L and RGB as they are; palette, CMYK and the rest to RGB; alpha
    dropped (colour channels kept as stored); 16/32-bit integer and float modes scaled to 8 bits."""
    mode = img.mode
    if mode in ("L", "RGB"):
        a = np.asarray(img)
    elif mode in ("I;16", "I;16B", "I;16L", "I"):
        raw = np.asarray(img)
        top = 65535.0 if mode.startswith("I;16") or raw.max() > 255 else 255.0
        a = np.clip(np.rint(raw.astype(np.float64) * (255.0 / top)), 0, 255).astype(np.uint8)
    elif mode == "F":
        raw = np.asarray(img, dtype=np.float32)
        top = 1.0 if raw.max() <= 1.0 else 255.0
        a = np.clip(np.rint(raw * (255.0 / top)), 0, 255).astype(np.uint8)
    elif mode in ("1", "LA"):
        a = np.asarray(img.convert("L"))
    else:  # P, PA, RGBA, CMYK, YCbCr, LAB, HSV ...
        a = np.asarray(img.convert("RGB"))
    return a[..., None] if a.ndim == 2 else a


def to_hwc(x: Any, arg: str = "image") -> tuple[np.ndarray, Callable[[np.ndarray], Any]]:
    """Return the image as HWC numpy and a function that converts a result back to x's type."""
    if _is_pil(x):
        from PIL import Image

        a = np.ascontiguousarray(pil_to_array(x))

        def back_pil(out: np.ndarray) -> Any:
            return Image.fromarray(out[..., 0] if out.shape[2] == 1 else out)

        return a, back_pil
    if isinstance(x, np.ndarray):
        if x.ndim not in (2, 3) or (x.ndim == 3 and x.shape[2] not in (1, 3)):
            raise ValueError(f"{arg}: a numpy image must be HxW or HxWx1/3, got shape {x.shape}")
        squeeze = x.ndim == 2
        a = _normalise_dtype(x[..., None] if squeeze else x, arg)

        def back_np(out: np.ndarray) -> Any:
            return out[..., 0] if squeeze else out

        return np.ascontiguousarray(a), back_np
    if _is_tensor(x):
        import torch

        if x.ndim not in (2, 3) or (x.ndim == 3 and x.shape[0] not in (1, 3)):
            raise ValueError(
                f"{arg}: a tensor image must be HxW or CxHxW with C in (1, 3), got shape "
                f"{tuple(x.shape)}"
            )
        squeeze = x.ndim == 2
        t = x[None] if squeeze else x
        a = t.detach().cpu().permute(1, 2, 0).numpy()
        a = _normalise_dtype(a, arg)
        device, dtype, wrap = x.device, x.dtype, type(x)

        def back_tensor(out: np.ndarray) -> Any:
            res = torch.from_numpy(np.ascontiguousarray(out)).permute(2, 0, 1)
            if dtype.is_floating_point and res.dtype != dtype:
                res = res.to(dtype)
            res = res.to(device)
            if squeeze:
                res = res[0]
            if wrap is not torch.Tensor:
                from torchvision import tv_tensors

                res = tv_tensors.wrap(res, like=x)
            return res

        return np.ascontiguousarray(a), back_tensor
    raise TypeError(f"{arg}: expected a PIL image, numpy array or tensor, got {type(x).__name__}")


def _normalise_dtype(a: np.ndarray, arg: str) -> np.ndarray:
    if a.dtype == np.uint8 or a.dtype == np.float32:
        return a
    if a.dtype == np.uint16:
        return np.clip(np.rint(a.astype(np.float32) / 257.0), 0, 255).astype(np.uint8)
    if a.dtype in (np.float64, np.float16):
        return a.astype(np.float32)
    if a.dtype == np.bool_:
        return a.astype(np.uint8) * 255
    raise ValueError(f"{arg}: unsupported dtype {a.dtype} (use uint8, uint16 or float in [0, 1])")
