"""Counter-based random numbers that numpy and torch (any device) compute bit for bit alike.

The noise ops keep one integer seed per image in their params and must replay the same noise on
every backend: the per-image numpy kernel and the batched kernel on a GPU. Neither library offers
that (torch's CPU and CUDA generators give different streams for one seed, numpy's bit
generators have no torch counterpart), so each value here is a hash of (seed, element index):
Wellons' ``lowbias32`` integer mix, two rounds. Integer arithmetic is exact on every device; the
uniforms carry 24 bits, exactly representable in float32. Gaussians use Box-Muller, whose
``log``/``cos`` may differ in the last float32 bit between devices (far below one 8-bit level).

The element index is the position in an ``H x W x C`` image (``(y * W + x) * C + c``), the
per-image kernels' layout, so a batched ``N x C x H x W`` kernel asks for the same numbers.

Example:
    >>> a = uniform_np(7, (2, 3, 1))
    >>> bool(np.all((a > 0) & (a < 1))), bool(np.array_equal(a, uniform_np(7, (2, 3, 1))))
    (True, True)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

_MASK = 0xFFFFFFFF
_M1, _M2 = 0x7FEB352D, 0x846CA68B
_GOLDEN = 0x9E3779B9
_TO_UNIT = 1.0 / (1 << 24)


def _mix_np(x: np.ndarray) -> np.ndarray:
    x = x ^ (x >> np.uint32(16))
    x = x * np.uint32(_M1)
    x = x ^ (x >> np.uint32(15))
    x = x * np.uint32(_M2)
    return x ^ (x >> np.uint32(16))


def _mix_torch(x: torch.Tensor) -> torch.Tensor:
    # int64 holding 32-bit words: a product may wrap past 2**63, its low 32 bits stay exact
    x = x ^ (x >> 16)
    x = (x * _M1) & _MASK
    x = x ^ (x >> 15)
    x = (x * _M2) & _MASK
    return x ^ (x >> 16)


def _key(seed: int, stream: int) -> int:
    word = np.array([(int(seed) * _GOLDEN + stream) & _MASK], dtype=np.uint32)
    return int(_mix_np(word)[0])


def bits_np(seed: int, shape: tuple[int, ...], stream: int = 0) -> np.ndarray:
    """24 random bits (int64 in [0, 2**24)) per element of an HWC-ordered ``shape``."""
    idx = np.arange(int(np.prod(shape)), dtype=np.uint32)
    h = _mix_np(_mix_np(idx) ^ np.uint32(_key(seed, stream)))
    return (h >> np.uint32(8)).astype(np.int64).reshape(shape)


def bits_torch(
    seeds: list[int], channels: int, height: int, width: int, device: torch.device, stream: int = 0
) -> torch.Tensor:
    """:func:`bits_np` for each seed, as an ``N x C x H x W`` int64 tensor on ``device``: image
    ``i`` equals ``bits_np(seeds[i], (H, W, C))`` moved to channels-first."""
    import torch

    y = torch.arange(height, device=device).view(1, height, 1)
    x = torch.arange(width, device=device).view(1, 1, width)
    c = torch.arange(channels, device=device).view(channels, 1, 1)
    idx = (y * width + x) * channels + c
    keys = torch.tensor([_key(s, stream) for s in seeds], dtype=torch.int64, device=device)
    h = _mix_torch(_mix_torch(idx)[None] ^ keys.view(-1, 1, 1, 1))
    return h >> 8


def uniform_np(seed: int, shape: tuple[int, ...], stream: int = 0) -> np.ndarray:
    """Uniforms in (0, 1), float32, from :func:`bits_np`."""
    return ((bits_np(seed, shape, stream) + 0.5) * _TO_UNIT).astype(np.float32)


def _unit_torch(bits: torch.Tensor) -> torch.Tensor:
    import torch

    return ((bits.to(torch.float64) + 0.5) * _TO_UNIT).to(torch.float32)


def normal_np(seed: int, shape: tuple[int, ...]) -> np.ndarray:
    """Standard normals (float32) by Box-Muller on two counter streams."""
    u1, u2 = uniform_np(seed, shape, 1), uniform_np(seed, shape, 2)
    two_pi = np.float32(2.0 * np.pi)
    return np.sqrt(np.float32(-2.0) * np.log(u1)) * np.cos(two_pi * u2)


def normal_torch(
    seeds: list[int], channels: int, height: int, width: int, device: torch.device
) -> torch.Tensor:
    """:func:`normal_np` for each seed, ``N x C x H x W`` float32 on ``device``."""
    import torch

    u1 = _unit_torch(bits_torch(seeds, channels, height, width, device, 1))
    u2 = _unit_torch(bits_torch(seeds, channels, height, width, device, 2))
    return torch.sqrt(-2.0 * torch.log(u1)) * torch.cos(float(np.float32(2.0 * np.pi)) * u2)
