"""Near-identical copies by their thumbnails: the test the audit (duplicates, leaks) and the
generators' memorisation check share.

An 8x8 mean-removed grey thumbnail of each image, and Lowe's ratio test: a copy's nearest
thumbnail is much nearer than the next one (distance ratio at most :data:`NEAR_RATIO`, cosine
at least :data:`NEAR_MIN_COSINE`). A resized, re-encoded, noisy or slightly cropped copy
passes; two distinct but similar images (two plain trousers) do not, because each has several
neighbours that close. The thresholds were measured on planted copies against distinct images
of three training pools (``benchmarks/audit.py --calibrate``, BENCHMARKS.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

__all__ = ["NEAR_MIN_COSINE", "NEAR_RATIO", "THUMB_SIDE", "pixel_copies", "thumbnails"]

NEAR_RATIO = 0.2  # nearest thumbnail distance / second nearest, at most: near-identical
NEAR_MIN_COSINE = 0.95  # and the thumbnails at least this similar
THUMB_SIDE = 8


def thumbnails(images: Sequence[np.ndarray], side: int = THUMB_SIDE) -> torch.Tensor:
    """Unit-norm ``side x side`` grey thumbnails with their mean removed, one row per image
    (a constant image gives a zero row). The continuous form of an average hash: written here
    because comparing them by a distance ratio is what works on small images, which bit hashes
    (``imagehash``) do not allow.

    Example:
        >>> a = np.tile(np.arange(64, dtype=np.uint8)[None, :, None] * 4, (64, 1, 3))
        >>> t = thumbnails([a, a[::2, ::2]])
        >>> round(float(t[0] @ t[1]), 3)
        1.0
    """
    from PIL import Image

    rows = []
    for image in images:
        grey = image.mean(axis=2) if image.ndim == 3 else image
        small = Image.fromarray(grey.astype(np.float32), mode="F")
        t = np.asarray(small.resize((side, side), Image.Resampling.BILINEAR)).ravel()
        t = t - t.mean()
        rows.append(t / max(float(np.linalg.norm(t)), 1e-6))
    return torch.tensor(np.stack(rows)) if rows else torch.zeros(0, side * side)


def pixel_copies(real: torch.Tensor, fake: torch.Tensor, max_shift: float = 0.08) -> torch.Tensor:
    """Which uint8 ``fake`` images are near-identical copies of a uint8 ``real`` image, its
    mirror image or either shifted by up to ``max_shift`` of the side: the audit's thumbnail
    ratio test (8x8 mean-removed grey thumbnails; the nearest real image, over its mirrored and
    shifted versions, at most ``NEAR_RATIO`` times as far as the second nearest *other* real
    image, cosine at least ``NEAR_MIN_COSINE``). Features alone missed copies with N(0, 8)
    pixel noise entirely (BENCHMARKS.md, issue 20)."""
    if len(real) < 2 or not len(fake):
        return torch.zeros(len(fake), dtype=torch.bool)
    hwc = real.permute(0, 2, 3, 1).numpy()
    side = min(hwc.shape[1:3])
    steps = sorted({0, *(round(f * max_shift * side) for f in (-1, -0.5, 0.5, 1))})
    tf = thumbnails(list(fake.permute(0, 2, 3, 1).numpy()))
    best = torch.full((len(fake), len(real)), -1.0)
    pad = max(abs(v) for v in steps)
    # the uncovered border takes each image's median border value (a shifted copy's border is
    # usually the background: black in Fashion-MNIST, white in product photos)
    edges = np.concatenate(
        [hwc[:, 0], hwc[:, -1], hwc[:, :, 0], hwc[:, :, -1]], axis=1
    )  # N x (2W + 2H) x C
    background = np.median(edges, axis=1)[:, None, None, :].astype(hwc.dtype)
    h, w = hwc.shape[1:3]
    for mirrored in (hwc, hwc[:, :, ::-1]):
        padded = np.broadcast_to(background, (len(hwc), h + 2 * pad, w + 2 * pad, hwc.shape[3]))
        padded = padded.copy()
        padded[:, pad : pad + h, pad : pad + w] = mirrored
        for dy in steps:
            for dx in steps:
                view = padded[:, pad - dy : pad - dy + h, pad - dx : pad - dx + w]
                best = torch.maximum(best, tf @ thumbnails(list(view)).T)
    top = best.topk(2, dim=1).values
    d1, d2 = 1 - top[:, 0], 1 - top[:, 1]
    return (d1 <= NEAR_RATIO * d2) & (top[:, 0] >= NEAR_MIN_COSINE)
