"""Geometric ops.

Homography ops (flips, rotate, affine, perspective, crops, pad, resize) only *describe* their map:
``matrix(params, size)`` returns the forward 3x3 matrix from input to output coordinates in the
continuous "corner" convention (pixel ``i`` spans ``[i, i + 1]``, as torchvision's bounding boxes
do). The planner multiplies consecutive matrices and moves the pixels once, which is faster and
sharper than resampling after every op. Masks, boxes and keypoints follow the same matrix.

Elastic and grid distortion, displacement fields, are in :mod:`augmentor.ops.fields`.

Over 400 lines on purpose: ten ops of one family, each with its sampler, matrix and docs side
by side; splitting them would separate ops that share the corner convention and helpers.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from augmentor._validation import (
    INTERPOLATIONS,
    MAX_SIDE,
    check_choice,
    check_fill,
    check_number,
    check_range,
    check_size,
)
from augmentor.ops.base import Op
from augmentor.registry import register_op
from augmentor.types import Size


def translation(tx: float, ty: float) -> np.ndarray:
    return np.array([[1.0, 0.0, tx], [0.0, 1.0, ty], [0.0, 0.0, 1.0]])


def scaling(sx: float, sy: float) -> np.ndarray:
    return np.array([[sx, 0.0, 0.0], [0.0, sy, 0.0], [0.0, 0.0, 1.0]])


def affine_matrix(
    angle: float,
    tx: float,
    ty: float,
    scale: float,
    shear_x: float,
    shear_y: float,
    cx: float,
    cy: float,
) -> np.ndarray:
    """Forward map: move ``(cx, cy)`` to the origin, shear, scale, rotate counter-clockwise by
    ``angle`` degrees (as seen on screen, y pointing down), move back and translate.

    The shear is torchvision's (``transforms.v2.functional.affine``): ``SHy(shear_y) @
    SHx(shear_x)`` with ``x' = x - tan(shear_x) * y`` and ``y' = y - tan(shear_y) * x``. The
    angle is not: torchvision's ``affine`` turns clockwise, this (like ``rotate`` in both
    libraries) counter-clockwise.
    """
    a = math.radians(angle)
    cos, sin = math.cos(a), math.sin(a)
    kx, ky = math.tan(math.radians(shear_x)), math.tan(math.radians(shear_y))
    # translation(c + t) @ rotation @ scaling @ shear @ translation(-c), multiplied out: one
    # small array instead of five arrays and four matmuls (this runs once per image); the
    # shear is [[1, -kx], [-ky, 1 + kx * ky]]
    l00, l01 = scale * (cos - sin * ky), scale * (sin * (1 + kx * ky) - cos * kx)
    l10, l11 = scale * (-sin - cos * ky), scale * (sin * kx + cos * (1 + kx * ky))
    return np.array(
        [
            [l00, l01, cx + tx - l00 * cx - l01 * cy],
            [l10, l11, cy + ty - l10 * cx - l11 * cy],
            [0.0, 0.0, 1.0],
        ]
    )


class GeometricOp(Op):
    """An op whose effect is a homography of the canvas."""

    kind = "geometric"

    @classmethod
    def matrix(cls, params: dict[str, Any], size: Size) -> np.ndarray:
        raise NotImplementedError

    @classmethod
    def reads_outside(cls, params: dict[str, Any], size: Size) -> bool:
        """Whether some output pixels come from outside the input canvas (and get ``fill``)."""
        return True


def interp_fill(op: str, interpolation: str, fill: Any) -> tuple[str, Any]:
    return check_choice(op, "interpolation", interpolation, INTERPOLATIONS), check_fill(op, fill)


@register_op("hflip")
class HorizontalFlip(GeometricOp):
    """Mirror left-right.

    Example:
        >>> import numpy as np, augmentor
        >>> img = np.arange(6, dtype=np.uint8).reshape(1, 2, 3)
        >>> augmentor.Pipeline([augmentor.HorizontalFlip(p=1.0)])(img)[0, :, 0].tolist()
        [3, 0]
    """

    def __init__(self, p: float = 0.5) -> None:
        super().__init__(p=p)

    @classmethod
    def matrix(cls, params, size):
        return np.array([[-1.0, 0.0, size[1]], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])

    @classmethod
    def reads_outside(cls, params, size):
        return False


@register_op("vflip")
class VerticalFlip(GeometricOp):
    """Mirror top-bottom."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__(p=p)

    @classmethod
    def matrix(cls, params, size):
        return np.array([[1.0, 0.0, 0.0], [0.0, -1.0, size[0]], [0.0, 0.0, 1.0]])

    @classmethod
    def reads_outside(cls, params, size):
        return False


@register_op("rotate")
class Rotate(GeometricOp):
    """Rotate by an angle drawn uniformly from ``degrees`` (counter-clockwise, like torchvision).

    Args:
        degrees: ``d`` for ``(-d, d)``, or ``(min, max)``.
        expand: grow the canvas to hold the whole rotated image.
    """

    def __init__(
        self,
        degrees: float | tuple[float, float] = 15.0,
        p: float = 1.0,
        interpolation: str = "bilinear",
        fill: float | list[float] = 0.0,
        expand: bool = False,
    ) -> None:
        super().__init__(p=p)
        self.degrees = check_range(self.name, "degrees", degrees, lo=-360, hi=360)
        self.interpolation, self.fill = interp_fill(self.name, interpolation, fill)
        self.expand = bool(expand)

    def make_params(self, rng, canvas):
        return {
            "angle": float(rng.uniform(*self.degrees)),
            "expand": self.expand,
            "interpolation": self.interpolation,
            "fill": self.fill,
        }

    @classmethod
    def _expanded(cls, params, size):
        h, w = size
        a = math.radians(params["angle"])
        cos, sin = abs(math.cos(a)), abs(math.sin(a))
        return (int(math.ceil(h * cos + w * sin - 1e-6)), int(math.ceil(w * cos + h * sin - 1e-6)))

    @classmethod
    def output_size(cls, params, size):
        return cls._expanded(params, size) if params.get("expand") else size

    @classmethod
    def matrix(cls, params, size):
        h, w = size
        oh, ow = cls.output_size(params, size)
        m = affine_matrix(params["angle"], 0.0, 0.0, 1.0, 0.0, 0.0, w / 2, h / 2)
        return translation((ow - w) / 2, (oh - h) / 2) @ m


@register_op("affine")
class Affine(GeometricOp):
    """Random affine map: rotation, translation (fraction of the size), scale and shear (degrees).

    The shear follows torchvision's ``affine`` (a positive x shear moves the top rows right,
    ``x' = x - tan(shear) * y`` about the centre); the rotation does not: it is
    counter-clockwise, like ``rotate`` here and in torchvision, whereas torchvision's ``affine``
    turns clockwise (``Affine(degrees=(a, a))`` is ``affine(angle=-a)``).

    Args:
        degrees: rotation range, counter-clockwise.
        translate: ``(a, b)``: x shift drawn in ``[-a*W, a*W]``, y shift in ``[-b*H, b*H]``.
        scale: scale range, e.g. ``(0.9, 1.1)``.
        shear: ``s`` or ``(min, max)`` for x shear; or ``(xmin, xmax, ymin, ymax)``.
    """

    def __init__(
        self,
        degrees: float | tuple[float, float] = 0.0,
        translate: tuple[float, float] | None = None,
        scale: tuple[float, float] | None = None,
        shear: float | tuple[float, ...] | None = None,
        p: float = 1.0,
        interpolation: str = "bilinear",
        fill: float | list[float] = 0.0,
    ) -> None:
        super().__init__(p=p)
        op = self.name
        self.degrees = check_range(op, "degrees", degrees, lo=-360, hi=360)
        if translate is not None:
            if not (isinstance(translate, (list, tuple)) and len(translate) == 2):
                raise ValueError(f"{op}: translate must be (a, b) fractions, got {translate!r}")
            translate = tuple(check_number(op, "translate", t, 0.0, 1.0) for t in translate)
        self.translate = translate
        self.scale = None if scale is None else check_range(op, "scale", scale, lo=1e-3)
        if shear is None:
            self.shear = None
        elif isinstance(shear, (list, tuple)) and len(shear) == 4:
            self.shear = (
                *check_range(op, "shear", shear[:2], lo=-89, hi=89),
                *check_range(op, "shear", shear[2:], lo=-89, hi=89),
            )
        else:
            self.shear = (*check_range(op, "shear", shear, lo=-89, hi=89), 0.0, 0.0)
        self.interpolation, self.fill = interp_fill(op, interpolation, fill)

    def make_params(self, rng, canvas):
        h, w = canvas.size
        tx = ty = 0.0
        if self.translate is not None:
            tx = float(rng.uniform(-self.translate[0] * w, self.translate[0] * w))
            ty = float(rng.uniform(-self.translate[1] * h, self.translate[1] * h))
        shx = shy = 0.0
        if self.shear is not None:
            shx = float(rng.uniform(self.shear[0], self.shear[1]))
            shy = float(rng.uniform(self.shear[2], self.shear[3]))
        return {
            "angle": float(rng.uniform(*self.degrees)),
            "tx": tx,
            "ty": ty,
            "scale": 1.0 if self.scale is None else float(rng.uniform(*self.scale)),
            "shear_x": shx,
            "shear_y": shy,
            "center": None,
            "interpolation": self.interpolation,
            "fill": self.fill,
        }

    @classmethod
    def matrix(cls, params, size):
        h, w = size
        cx, cy = params.get("center") or (w / 2, h / 2)
        return affine_matrix(
            params.get("angle", 0.0),
            params.get("tx", 0.0),
            params.get("ty", 0.0),
            params.get("scale", 1.0),
            params.get("shear_x", 0.0),
            params.get("shear_y", 0.0),
            cx,
            cy,
        )


@register_op("perspective")
class Perspective(GeometricOp):
    """Random perspective: each corner moves inwards by up to ``distortion_scale`` of half the size
    (torchvision's RandomPerspective)."""

    def __init__(
        self,
        distortion_scale: float = 0.5,
        p: float = 0.5,
        interpolation: str = "bilinear",
        fill: float | list[float] = 0.0,
    ) -> None:
        super().__init__(p=p)
        self.distortion_scale = check_number(self.name, "distortion_scale", distortion_scale, 0, 1)
        self.interpolation, self.fill = interp_fill(self.name, interpolation, fill)

    def make_params(self, rng, canvas):
        h, w = canvas.size
        dx, dy = self.distortion_scale * w / 2, self.distortion_scale * h / 2
        u = rng.uniform(0.0, 1.0, size=(4, 2))
        start = [[0.0, 0.0], [w, 0.0], [w, h], [0.0, h]]
        sign = np.array([[1, 1], [-1, 1], [-1, -1], [1, -1]], dtype=np.float64)
        end = np.array(start) + sign * u * np.array([dx, dy])
        return {
            "start": start,
            "end": end.tolist(),
            "interpolation": self.interpolation,
            "fill": self.fill,
        }

    @classmethod
    def matrix(cls, params, size):
        import cv2

        src = np.asarray(params["start"], dtype=np.float32)
        dst = np.asarray(params["end"], dtype=np.float32)
        return cv2.getPerspectiveTransform(src, dst).astype(np.float64)


@register_op("random_resized_crop")
class RandomResizedCrop(GeometricOp):
    """Crop a random area and aspect ratio, resized to ``size`` (torchvision's algorithm).

    Args:
        size: output ``(height, width)``; ``None`` keeps the input size.
        scale: range of the crop area as a fraction of the image area.
        ratio: range of the crop aspect ratio (width / height), sampled log-uniformly.
    """

    def __init__(
        self,
        size: int | tuple[int, int] | None = None,
        scale: tuple[float, float] = (0.08, 1.0),
        ratio: tuple[float, float] = (3 / 4, 4 / 3),
        p: float = 1.0,
        interpolation: str = "bilinear",
    ) -> None:
        super().__init__(p=p)
        op = self.name
        self.size = check_size(op, "size", size, allow_none=True)
        self.scale = check_range(op, "scale", scale, lo=1e-6, hi=1.0)
        self.ratio = check_range(op, "ratio", ratio, lo=1e-3)
        self.interpolation = check_choice(op, "interpolation", interpolation, INTERPOLATIONS)

    def make_params(self, rng, canvas):
        h, w = canvas.size
        area = h * w
        log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(10):
            target = area * rng.uniform(*self.scale)
            aspect = math.exp(rng.uniform(*log_ratio))
            cw = int(round(math.sqrt(target * aspect)))
            ch = int(round(math.sqrt(target / aspect)))
            if 0 < cw <= w and 0 < ch <= h:
                top = int(rng.integers(0, h - ch + 1))
                left = int(rng.integers(0, w - cw + 1))
                break
        else:  # fallback: central crop at the closest allowed ratio
            in_ratio = w / h
            if in_ratio < self.ratio[0]:
                cw, ch = w, int(round(w / self.ratio[0]))
            elif in_ratio > self.ratio[1]:
                ch, cw = h, int(round(h * self.ratio[1]))
            else:
                cw, ch = w, h
            top, left = (h - ch) // 2, (w - cw) // 2
        oh, ow = self.size or (h, w)
        return {
            "top": top,
            "left": left,
            "height": ch,
            "width": cw,
            "out": [oh, ow],
            "interpolation": self.interpolation,
        }

    @classmethod
    def output_size(cls, params, size):
        return tuple(params["out"])

    @classmethod
    def matrix(cls, params, size):
        oh, ow = params["out"]
        sx, sy = ow / params["width"], oh / params["height"]
        # scaling(sx, sy) @ translation(-left, -top), multiplied out
        return np.array(
            [[sx, 0.0, -sx * params["left"]], [0.0, sy, -sy * params["top"]], [0.0, 0.0, 1.0]]
        )

    @classmethod
    def reads_outside(cls, params, size):
        return False


def _crop_params(top: int, left: int, h: int, w: int, fill: Any = 0.0) -> dict[str, Any]:
    return {"top": top, "left": left, "height": h, "width": w, "fill": fill}


class _CropKernel(GeometricOp):
    @classmethod
    def output_size(cls, params, size):
        return (params["height"], params["width"])

    @classmethod
    def matrix(cls, params, size):
        return translation(-params["left"], -params["top"])

    @classmethod
    def reads_outside(cls, params, size):
        h, w = size
        return (
            params["top"] < 0
            or params["left"] < 0
            or params["top"] + params["height"] > h
            or params["left"] + params["width"] > w
        )


@register_op("crop")
class RandomCrop(_CropKernel):
    """Crop ``size`` at a random position; with ``padding``, the image is padded first (by
    ``fill``) so crops may reach past the border, as in torchvision's RandomCrop."""

    def __init__(
        self,
        size: int | tuple[int, int],
        padding: int = 0,
        p: float = 1.0,
        fill: float | list[float] = 0.0,
    ) -> None:
        super().__init__(p=p)
        self.size = check_size(self.name, "size", size)
        self.padding = int(check_number(self.name, "padding", padding, 0, MAX_SIDE, integer=True))
        self.fill = check_fill(self.name, fill)

    def make_params(self, rng, canvas):
        h, w = canvas.size
        th, tw = self.size
        pad = self.padding
        if th > h + 2 * pad or tw > w + 2 * pad:
            raise ValueError(
                f"crop: size {list(self.size)} is larger than the padded image "
                f"({h + 2 * pad}x{w + 2 * pad}); lower size or raise padding"
            )
        top = int(rng.integers(-pad, h + pad - th + 1))
        left = int(rng.integers(-pad, w + pad - tw + 1))
        return _crop_params(top, left, th, tw, self.fill)


@register_op("center_crop")
class CenterCrop(_CropKernel):
    """Crop ``size`` at the centre (padding with ``fill`` if the image is smaller)."""

    def __init__(
        self, size: int | tuple[int, int], p: float = 1.0, fill: float | list[float] = 0.0
    ) -> None:
        super().__init__(p=p)
        self.size = check_size(self.name, "size", size)
        self.fill = check_fill(self.name, fill)

    def make_params(self, rng, canvas):
        h, w = canvas.size
        th, tw = self.size
        return _crop_params(int(round((h - th) / 2)), int(round((w - tw) / 2)), th, tw, self.fill)


@register_op("pad")
class Pad(GeometricOp):
    """Pad by ``padding`` pixels: an int, ``(left/right, top/bottom)`` or ``(l, t, r, b)``."""

    def __init__(
        self, padding: int | tuple[int, ...], p: float = 1.0, fill: float | list[float] = 0.0
    ) -> None:
        super().__init__(p=p)
        pads = [padding] if isinstance(padding, (int, float)) else list(padding)
        if len(pads) not in (1, 2, 4):
            raise ValueError(f"pad: padding must have 1, 2 or 4 values, got {padding!r}")
        pads = [int(check_number(self.name, "padding", v, 0, MAX_SIDE, integer=True)) for v in pads]
        self.padding = pads[0] if len(pads) == 1 else tuple(pads)
        self.fill = check_fill(self.name, fill)

    def make_params(self, rng, canvas):
        pads = [self.padding] if isinstance(self.padding, int) else list(self.padding)
        if len(pads) == 1:
            pads = pads * 4
        elif len(pads) == 2:
            pads = [pads[0], pads[1], pads[0], pads[1]]
        return {"pad": pads, "fill": self.fill}

    @classmethod
    def output_size(cls, params, size):
        l, t, r, b = params["pad"]
        return (size[0] + t + b, size[1] + l + r)

    @classmethod
    def matrix(cls, params, size):
        return translation(params["pad"][0], params["pad"][1])


@register_op("resize")
class Resize(GeometricOp):
    """Resize to ``(height, width)``, or the shorter side to ``size`` if an int (torchvision)."""

    def __init__(
        self, size: int | tuple[int, int], p: float = 1.0, interpolation: str = "bilinear"
    ) -> None:
        super().__init__(p=p)
        self.size: int | tuple[int, int] | None
        if isinstance(size, (int, float)) and not isinstance(size, bool):
            self.size = int(check_number(self.name, "size", size, 1, MAX_SIDE, integer=True))
        else:
            self.size = check_size(self.name, "size", size)
        self.interpolation = check_choice(self.name, "interpolation", interpolation, INTERPOLATIONS)

    def make_params(self, rng, canvas):
        h, w = canvas.size
        if isinstance(self.size, int):
            s = self.size
            out = [s, max(1, int(s * w / h))] if h <= w else [max(1, int(s * h / w)), s]
        else:
            out = list(self.size)
        return {"out": out, "interpolation": self.interpolation}

    @classmethod
    def output_size(cls, params, size):
        return tuple(params["out"])

    @classmethod
    def matrix(cls, params, size):
        return scaling(params["out"][1] / size[1], params["out"][0] / size[0])

    @classmethod
    def reads_outside(cls, params, size):
        return False
