"""Turn a list of records into execution steps, fusing what can be fused.

Shared by both backends, so the CPU and the batched path make the same decisions:

- consecutive homographies become one :class:`WarpStep` (one resampling). Ops that read outside
  their input canvas (rotate, affine, pad, ...) get ``fill`` there; where that canvas, pulled
  back to the source, is an axis-aligned rectangle (only crops, resizes and flips before it) it
  becomes a clip rectangle on the source, so the fused warp is equivalent to the sequential
  one. Otherwise the group is closed and a new one starts: never a silent change of meaning.
- consecutive affine colour ops become one :class:`ColorStep`, point functions one :class:`LutStep`.

The rules read only each op's ``kind`` and class-level geometry; the algebra that composes a
fused step (colour maps, lookup tables) is in :mod:`augmentor.backends.fuse`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

import augmentor.ops  # noqa: F401  (registers the ops)
from augmentor.registry import OPS
from augmentor.types import Record, Size


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

    def prefilter_size(self, height: int, width: int) -> tuple[int, int] | None:
        """The size to area-average a ``height x width`` source to before an affine warp that
        shrinks it by more than 2x (1.5x the output scale), else None: neither OpenCV's
        ``warpAffine`` nor torch's ``grid_sample`` antialiases, and both executors use this."""
        if self.perspective:
            return None
        (a00, a01, _), (a10, a11, _) = self.matrix[:2].tolist()
        scale = abs(a00 * a11 - a01 * a10) ** 0.5  # how much the warp scales lengths
        if scale >= 0.5:
            return None
        return max(1, round(height * scale * 1.5)), max(1, round(width * scale * 1.5))

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
class MixStep:
    """A blend of the image with augmented chains of it (AugMix): the executor runs the
    chains' records, so the op itself never calls an executor."""

    record: Record


@dataclass
class FinalStep:
    record: Record


Step = WarpStep | FieldStep | ColorStep | LutStep | OpStep | MixStep | FinalStep


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
            if self.matrix is not None:  # the canvas is a sub-rectangle of the source
                x0, y0, x1, y1 = _pull_back_rect(self.matrix, size)
                sh, sw = self.src_size
                if self.clip is not None:
                    cx0, cy0, cx1, cy1 = self.clip
                    x0, y0, x1, y1 = max(x0, cx0), max(y0, cy0), min(x1, cx1), min(y1, cy1)
                if not (x0 <= 0 and y0 <= 0 and x1 >= sw and y1 >= sh):
                    self.clip = (x0, y0, x1, y1)
        m = cls.matrix(params, size)
        self.matrix = m if self.matrix is None else m @ self.matrix
        self.axis = self.axis and _axis_aligned(m)
        self.records.append(record)

    def build(self, out_size: Size) -> WarpStep:
        if self.matrix is None:
            raise ValueError("a warp step needs at least one geometric op")
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
        elif kind == "mix":
            steps.append(MixStep(rec))
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
