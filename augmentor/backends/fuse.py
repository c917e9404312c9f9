"""The algebra of fused steps, shared by both executors: one affine colour map for a run of
colour ops, one lookup table for a run of point functions, and the corner/centre convention
change of a homography.

Nothing here knows an op by name: an op that belongs to the luma family says so with
:meth:`~augmentor.ops.color.ColorOp.luma_affine`, and one that reads the image mean with
``uses_mean``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from augmentor.ops.color import LUMA
from augmentor.registry import OPS
from augmentor.types import Record

__all__ = [
    "apply_lut_float",
    "compose_color",
    "compose_luma_family",
    "compose_lut",
    "corner_to_center",
    "luma_family_map",
    "luma_family_matrix",
    "needs_mean",
]

# Brightness, contrast, saturation and grayscale on RGB all have the form
# ``x -> a x + b G x + d 1`` with ``G = 1 w^T`` (every channel gets the luma ``w^T x``); since
# ``w^T 1 = 1``, ``G G = G`` and ``G 1 = 1``, a run of them composes in three Python floats.
# ColorJitter's three ops per image then cost ~1 us instead of ~15 us of 3x3 numpy algebra.
_LUMA = tuple(LUMA.tolist())


def _luma_affine(rec: Record, gray_mean: float) -> tuple[float, float, float] | None:
    fn = getattr(OPS.get(rec["op"]), "luma_affine", None)
    return None if fn is None else fn(rec["params"], gray_mean)


def compose_luma_family(
    records: list[Record], gray_mean: float
) -> tuple[float, float, float] | None:
    """``(a, b, d)`` of the composed map ``x -> a x + b luma(x) + d`` on 3-channel images, for
    a run of brightness/contrast/saturation/grayscale records; ``gray_mean`` is the luma of the
    input's mean. None when the run holds any other op."""
    a, b, d, g = 1.0, 0.0, 0.0, gray_mean
    for rec in records:
        coeffs = _luma_affine(rec, g)
        if coeffs is None:
            return None
        a2, b2, d2 = coeffs
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
    last_mean_user = max((k for k, r in enumerate(records) if _uses_mean(r)), default=-1)
    for k, rec in enumerate(records):
        m, b = OPS.get(rec["op"]).color_matrix(rec["params"], mu, vmax)
        if m_tot is None:
            m_tot, b_tot = m, b
        else:
            m_tot, b_tot = m @ m_tot, m @ b_tot + b
        if k < last_mean_user:
            mu = m @ mu + b
    if m_tot is None or b_tot is None:
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


def _uses_mean(rec: Record) -> bool:
    return bool(getattr(OPS.get(rec["op"]), "uses_mean", False))


def needs_mean(records: list[Record]) -> bool:
    """Whether a colour run reads the image's mean (contrast does)."""
    return any(_uses_mean(r) for r in records)


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
