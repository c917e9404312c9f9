"""Turn a list of records into execution steps, fusing what can be fused.

Shared by both backends, so the CPU and the batched path make the same decisions:

- consecutive homographies become one :class:`WarpStep` (one resampling). Ops that read outside
  their input canvas (rotate, affine, pad, ...) get ``fill`` there; where that canvas, pulled
  back to the source, is an axis-aligned rectangle (only crops, resizes and flips before it) it
  becomes a clip rectangle on the source, so the fused warp is equivalent to the sequential
  one. Otherwise the group is closed and a new one starts: never a silent change of meaning.
- consecutive affine colour ops become one :class:`ColorStep`, point functions one :class:`LutStep`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import augmentor.ops  # noqa: F401  (registers the ops)
from augmentor.ops.base import Record, Size
from augmentor.ops.color import LUMA
from augmentor.registry import OPS


@dataclass
class WarpStep:
    matrix: np.ndarray  # forward 3x3, source -> output, corner convention
    src_size: Size
    out_size: Size
    clip: tuple[float, float, float, float] | None  # valid source region x0, y0, x1, y1
    interpolation: str
    fill: Any
    records: list[Record] = field(default_factory=list)

    @property
    def perspective(self) -> bool:
        m20, m21, m22 = self.matrix[2].tolist()
        return abs(m20) > 1e-12 or abs(m21) > 1e-12 or abs(m22 - 1.0) > 1e-12

    def is_integer_shift(self) -> bool:
        """Flips and integer translations only: executed by slicing, with no interpolation."""
        (a, b, tx), (c, d, ty) = self.matrix[0].tolist(), self.matrix[1].tolist()
        if abs(b) > 1e-9 or abs(c) > 1e-9 or self.perspective:
            return False
        if abs(abs(a) - 1) > 1e-9 or abs(abs(d) - 1) > 1e-9:
            return False
        return abs(tx - round(tx)) < 1e-6 and abs(ty - round(ty)) < 1e-6


@dataclass
class FieldStep:
    record: Record
    size: Size


@dataclass
class ColorStep:
    records: list[Record]


@dataclass
class LutStep:
    records: list[Record]


@dataclass
class OpStep:
    record: Record


@dataclass
class FinalStep:
    record: Record


Step = WarpStep | FieldStep | ColorStep | LutStep | OpStep | FinalStep


def _axis_aligned(m: np.ndarray) -> bool:
    return (
        abs(m[0, 1]) < 1e-12
        and abs(m[1, 0]) < 1e-12
        and abs(m[2, 0]) < 1e-12
        and abs(m[2, 1]) < 1e-12
    )


def _pull_back_rect(a: np.ndarray, size: Size) -> tuple[float, float, float, float]:
    """The canvas ``[0, w] x [0, h]`` mapped back through the axis-aligned ``a``."""
    (sx, _, tx), (_, sy, ty) = a[0].tolist(), a[1].tolist()
    h, w = size
    xs = ((0.0 - tx) / sx, (w - tx) / sx)
    ys = ((0.0 - ty) / sy, (h - ty) / sy)
    return (min(xs), min(ys), max(xs), max(ys))


class _WarpBuilder:
    def __init__(self, size: Size) -> None:
        self.src_size = size
        self.matrix: np.ndarray | None = None  # set by the first add
        self.clip: tuple[float, float, float, float] | None = None
        self.axis = True
        self.interpolation: str | None = None
        self.fill: Any = None
        self.records: list[Record] = []

    def accepts(self, cls: Any, params: dict[str, Any], size: Size) -> bool:
        interp = params.get("interpolation")
        if interp is not None and self.interpolation not in (None, interp):
            return False
        if cls.reads_outside(params, size):
            if not self.axis:
                return False
            fill = params.get("fill", 0.0)
            if self.fill is not None and self.fill != fill:
                return False
        return True

    def add(self, cls: Any, params: dict[str, Any], size: Size, record: Record) -> None:
        if params.get("interpolation") is not None:
            self.interpolation = params["interpolation"]
        if cls.reads_outside(params, size):
            self.fill = params.get("fill", 0.0)
            if self.records:  # the current canvas is a sub-rectangle of the source
                x0, y0, x1, y1 = _pull_back_rect(self.matrix, size)
                sh, sw = self.src_size
                if self.clip is not None:
                    cx0, cy0, cx1, cy1 = self.clip
                    x0, y0, x1, y1 = max(x0, cx0), max(y0, cy0), min(x1, cx1), min(y1, cy1)
                if not (x0 <= 0 and y0 <= 0 and x1 >= sw and y1 >= sh):
                    self.clip = (x0, y0, x1, y1)
        m = cls.matrix(params, size)
        self.matrix = m @ self.matrix if self.records else m
        self.axis = self.axis and _axis_aligned(m)
        self.records.append(record)

    def build(self, out_size: Size) -> WarpStep:
        return WarpStep(
            self.matrix,
            self.src_size,
            out_size,
            self.clip,
            self.interpolation or "bilinear",
            0.0 if self.fill is None else self.fill,
            self.records,
        )


def plan(records: list[Record], size: Size) -> list[Step]:
    """Fuse ``records`` applied to an image of ``size`` into execution steps."""
    steps: list[Step] = []
    warp: _WarpBuilder | None = None
    for i, rec in enumerate(records):
        cls = OPS.get(rec["op"])
        kind = getattr(cls, "kind", "pixel")
        params = rec["params"]
        if kind == "geometric":
            if warp is not None and not warp.accepts(cls, params, size):
                steps.append(warp.build(size))
                warp = None
            if warp is None:
                warp = _WarpBuilder(size)
            warp.add(cls, params, size, rec)
            size = tuple(cls.output_size(params, size))
            continue
        if warp is not None:
            steps.append(warp.build(size))
            warp = None
        if kind == "final":
            if i != len(records) - 1:
                raise ValueError(f"{rec['op']} must be the last op of a pipeline")
            steps.append(FinalStep(rec))
        elif kind == "field":
            steps.append(FieldStep(rec, size))
        elif kind == "color":
            if steps and isinstance(steps[-1], ColorStep):
                steps[-1].records.append(rec)
            else:
                steps.append(ColorStep([rec]))
        elif kind == "lut":
            if steps and isinstance(steps[-1], LutStep):
                steps[-1].records.append(rec)
            else:
                steps.append(LutStep([rec]))
        else:
            steps.append(OpStep(rec))
    if warp is not None:
        steps.append(warp.build(size))
    return steps


# Brightness, contrast, saturation and grayscale on RGB all have the form
# ``x -> a x + b G x + d 1`` with ``G = 1 w^T`` (every channel gets the luma ``w^T x``); since
# ``w^T 1 = 1``, ``G G = G`` and ``G 1 = 1``, a run of them composes in three Python floats.
# ColorJitter's three ops per image then cost ~1 us instead of ~15 us of 3x3 numpy algebra.
_LUMA_FAMILY = {"brightness", "contrast", "saturation", "grayscale"}
_LUMA = tuple(LUMA.tolist())


def compose_luma_family(
    records: list[Record], gray_mean: float
) -> tuple[float, float, float] | None:
    """``(a, b, d)`` of the composed map ``x -> a x + b luma(x) + d`` on 3-channel images, for
    a run of brightness/contrast/saturation/grayscale records; ``gray_mean`` is the luma of the
    input's mean. None when the run holds any other op."""
    a, b, d, g = 1.0, 0.0, 0.0, gray_mean
    for rec in records:
        op = rec["op"]
        if op not in _LUMA_FAMILY:
            return None
        if op == "grayscale":
            a2, b2, d2 = 0.0, 1.0, 0.0
        else:
            f = rec["params"]["factor"]
            if op == "brightness":
                a2, b2, d2 = f, 0.0, 0.0
            elif op == "contrast":
                a2, b2, d2 = f, 0.0, (1.0 - f) * g
            else:  # saturation
                a2, b2, d2 = f, 1.0 - f, 0.0
        # (a2 I + b2 G)(a I + b G) = a2 a I + (a2 b + b2 a + b2 b) G; offsets: (a2 + b2) d + d2
        a, b, d = a2 * a, a2 * b + b2 * a + b2 * b, (a2 + b2) * d + d2
        g = (a2 + b2) * g + d2  # luma of the mean after this op
    return a, b, d


def luma_family_matrix(a: float, b: float, d: float) -> np.ndarray:
    """The 3 x 4 ``[m | offset]`` of :func:`compose_luma_family`'s ``(a, b, d)``."""
    wr, wg, wb = _LUMA
    return np.array(
        [
            [a + b * wr, b * wg, b * wb, d],
            [b * wr, a + b * wg, b * wb, d],
            [b * wr, b * wg, a + b * wb, d],
        ]
    )


def luma_family_map(records: list[Record], mean: Sequence[float]) -> np.ndarray | None:
    """The 3 x 4 ``[m | offset]`` of a run of brightness/contrast/saturation/grayscale records
    on an RGB image whose per-channel mean is ``mean``; None for other images or runs."""
    if len(mean) != 3:
        return None
    wr, wg, wb = _LUMA
    abd = compose_luma_family(records, wr * mean[0] + wg * mean[1] + wb * mean[2])
    return None if abd is None else luma_family_matrix(*abd)


def compose_color(
    records: list[Record], mean: np.ndarray, vmax: float
) -> tuple[np.ndarray, np.ndarray]:
    """One affine colour map ``x -> m @ x + b`` for a run of colour records; ``mean`` is the
    per-channel mean of the input, pushed through the run for the ops that need it."""
    mat = luma_family_map(records, mean.tolist())
    if mat is not None:
        return mat[:, :3], mat[:, 3]
    m_tot = b_tot = None
    mu = mean
    last_mean_user = max((k for k, r in enumerate(records) if r["op"] == "contrast"), default=-1)
    for k, rec in enumerate(records):
        m, b = OPS.get(rec["op"]).color_matrix(rec["params"], mu, vmax)
        if m_tot is None:
            m_tot, b_tot = m, b
        else:
            m_tot, b_tot = m @ m_tot, m @ b_tot + b
        if k < last_mean_user:
            mu = m @ mu + b
    if m_tot is None:
        return np.eye(mean.shape[0]), np.zeros(mean.shape[0])
    return m_tot, b_tot


def compose_lut(records: list[Record]) -> np.ndarray:
    """One uint8 lookup table for a run of point functions (rounded between ops, so it equals the
    ops applied one after the other on uint8)."""
    x = np.arange(256, dtype=np.float64)
    for rec in records:
        fn = OPS.get(rec["op"]).lut_fn(rec["params"])
        x = np.clip(np.rint(np.asarray(fn(x / 255.0), dtype=np.float64) * 255.0), 0, 255)
    return x.astype(np.uint8)


def apply_lut_float(image: np.ndarray, records: list[Record]) -> np.ndarray:
    x = image
    for rec in records:
        x = np.clip(OPS.get(rec["op"]).lut_fn(rec["params"])(x), 0.0, 1.0)
    return x.astype(np.float32)


def needs_mean(records: list[Record]) -> bool:
    return any(r["op"] == "contrast" for r in records)


_HALF = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.5], [0.0, 0.0, 1.0]])
_MINUS_HALF = np.array([[1.0, 0.0, -0.5], [0.0, 1.0, -0.5], [0.0, 0.0, 1.0]])


def corner_to_center(a: np.ndarray) -> np.ndarray:
    """A corner-convention matrix in OpenCV's pixel-centre convention."""
    (a00, a01, a02), (a10, a11, a12), (a20, a21, a22) = a.tolist()
    if a20 == 0.0 and a21 == 0.0 and a22 == 1.0:
        # affine: _MINUS_HALF @ a @ _HALF only moves the translation (once per image)
        return np.array(
            [
                [a00, a01, a02 + 0.5 * (a00 + a01 - 1.0)],
                [a10, a11, a12 + 0.5 * (a10 + a11 - 1.0)],
                [0.0, 0.0, 1.0],
            ]
        )
    return _MINUS_HALF @ a @ _HALF
