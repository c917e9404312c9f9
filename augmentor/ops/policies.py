"""Learned and random policies: AutoAugment, RandAugment, TrivialAugmentWide, AugMix.

The augmentation spaces, magnitudes and ImageNet sub-policies are those of torchvision (and the
papers), but the choices are drawn from the generator passed in, and each policy expands into
the leaf records of our own ops, so they are logged, replayed and fused like any other op.
torchvision's own classes draw from torch's global RNG, which breaks the (seed, epoch, index)
contract, hence these re-implementations.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from augmentor._validation import check_fill, check_number, check_prob
from augmentor.ops.base import Node, Op, fires
from augmentor.registry import register_op
from augmentor.types import Canvas, Record

# (name, magnitudes(num_bins, height, width) or None, signed)
_Space = dict[str, tuple[Any, bool]]


def _lin(a: float, b: float, n: int) -> np.ndarray:
    return np.linspace(a, b, n)


def _posterize_bins(top: int, n: int, span: int) -> np.ndarray:
    return (top - np.round(np.arange(n) / ((n - 1) / span))).astype(int)


def _space_ra(n: int, h: int, w: int) -> _Space:
    return {
        "Identity": (None, False),
        "ShearX": (_lin(0, 0.3, n), True),
        "ShearY": (_lin(0, 0.3, n), True),
        "TranslateX": (_lin(0, 150 / 331 * w, n), True),
        "TranslateY": (_lin(0, 150 / 331 * h, n), True),
        "Rotate": (_lin(0, 30, n), True),
        "Brightness": (_lin(0, 0.9, n), True),
        "Color": (_lin(0, 0.9, n), True),
        "Contrast": (_lin(0, 0.9, n), True),
        "Sharpness": (_lin(0, 0.9, n), True),
        "Posterize": (_posterize_bins(8, n, 4), False),
        "Solarize": (_lin(255, 0, n), False),
        "AutoContrast": (None, False),
        "Equalize": (None, False),
    }


def _space_ta(n: int, h: int, w: int) -> _Space:
    return {
        "Identity": (None, False),
        "ShearX": (_lin(0, 0.99, n), True),
        "ShearY": (_lin(0, 0.99, n), True),
        "TranslateX": (_lin(0, 32, n), True),
        "TranslateY": (_lin(0, 32, n), True),
        "Rotate": (_lin(0, 135, n), True),
        "Brightness": (_lin(0, 0.99, n), True),
        "Color": (_lin(0, 0.99, n), True),
        "Contrast": (_lin(0, 0.99, n), True),
        "Sharpness": (_lin(0, 0.99, n), True),
        "Posterize": (_posterize_bins(8, n, 6), False),
        "Solarize": (_lin(255, 0, n), False),
        "AutoContrast": (None, False),
        "Equalize": (None, False),
    }


def _space_augmix(n: int, h: int, w: int, all_ops: bool) -> _Space:
    s: _Space = {
        "ShearX": (_lin(0, 0.3, n), True),
        "ShearY": (_lin(0, 0.3, n), True),
        "TranslateX": (_lin(0, w / 3, n), True),
        "TranslateY": (_lin(0, h / 3, n), True),
        "Rotate": (_lin(0, 30, n), True),
        "Posterize": (_posterize_bins(4, n, 4), False),
        "Solarize": (_lin(255, 0, n), False),
        "AutoContrast": (None, False),
        "Equalize": (None, False),
    }
    if all_ops:
        s.update(
            {
                "Brightness": (_lin(0, 0.9, n), True),
                "Color": (_lin(0, 0.9, n), True),
                "Contrast": (_lin(0, 0.9, n), True),
                "Sharpness": (_lin(0, 0.9, n), True),
            }
        )
    return s


def op_record(name: str, magnitude: float, fill: Any) -> Record | None:
    """The leaf record for one policy op (None for Identity)."""
    geo = {"interpolation": "nearest", "fill": fill}
    if name == "Identity":
        return None
    if name in ("ShearX", "ShearY"):
        deg = math.degrees(math.atan(magnitude))
        return {
            "op": "affine",
            "params": {
                "angle": 0.0,
                "tx": 0.0,
                "ty": 0.0,
                "scale": 1.0,
                "center": [0.0, 0.0],
                "shear_x": deg if name == "ShearX" else 0.0,
                "shear_y": deg if name == "ShearY" else 0.0,
                **geo,
            },
        }
    if name in ("TranslateX", "TranslateY"):
        return {
            "op": "affine",
            "params": {
                "angle": 0.0,
                "scale": 1.0,
                "shear_x": 0.0,
                "shear_y": 0.0,
                "center": None,
                "tx": float(int(magnitude)) if name == "TranslateX" else 0.0,
                "ty": float(int(magnitude)) if name == "TranslateY" else 0.0,
                **geo,
            },
        }
    if name == "Rotate":
        return {"op": "rotate", "params": {"angle": float(magnitude), "expand": False, **geo}}
    if name in ("Brightness", "Contrast", "Sharpness"):
        return {"op": name.lower(), "params": {"factor": 1.0 + float(magnitude)}}
    if name == "Color":
        return {"op": "saturation", "params": {"factor": 1.0 + float(magnitude)}}
    if name == "Posterize":
        return {"op": "posterize", "params": {"bits": int(magnitude)}}
    if name == "Solarize":
        return {"op": "solarize", "params": {"threshold": float(magnitude) / 255.0}}
    if name in ("AutoContrast", "Equalize", "Invert"):
        return {"op": name.lower(), "params": {}}
    raise KeyError(name)  # pragma: no cover - the spaces above only hold known names


def _draw(
    rng: np.random.Generator, space: _Space, name: str, num_bins: int, top_bin: int | None = None
) -> float:
    mags, signed = space[name]
    if mags is None:
        return 0.0
    idx = int(rng.integers(top_bin if top_bin is not None else num_bins))
    m = float(mags[idx])
    if signed and rng.integers(2):
        m = -m
    return m


class _Policy(Node):
    def _append(self, rec: Record | None, out: list[Record]) -> None:
        if rec is not None:
            out.append(rec)


@register_op("autoaugment")
class AutoAugment(_Policy):
    """AutoAugment's ImageNet policy (Cubuk et al. 2019): one of 25 sub-policies per image."""

    POLICIES: ClassVar[dict[str, list]] = {
        "imagenet": [
            (("Posterize", 0.4, 8), ("Rotate", 0.6, 9)),
            (("Solarize", 0.6, 5), ("AutoContrast", 0.6, None)),
            (("Equalize", 0.8, None), ("Equalize", 0.6, None)),
            (("Posterize", 0.6, 7), ("Posterize", 0.6, 6)),
            (("Equalize", 0.4, None), ("Solarize", 0.2, 4)),
            (("Equalize", 0.4, None), ("Rotate", 0.8, 8)),
            (("Solarize", 0.6, 3), ("Equalize", 0.6, None)),
            (("Posterize", 0.8, 5), ("Equalize", 1.0, None)),
            (("Rotate", 0.2, 3), ("Solarize", 0.6, 8)),
            (("Equalize", 0.6, None), ("Posterize", 0.4, 6)),
            (("Rotate", 0.8, 8), ("Color", 0.4, 0)),
            (("Rotate", 0.4, 9), ("Equalize", 0.6, None)),
            (("Equalize", 0.0, None), ("Equalize", 0.8, None)),
            (("Invert", 0.6, None), ("Equalize", 1.0, None)),
            (("Color", 0.6, 4), ("Contrast", 1.0, 8)),
            (("Rotate", 0.8, 8), ("Color", 1.0, 2)),
            (("Color", 0.8, 8), ("Solarize", 0.8, 7)),
            (("Sharpness", 0.4, 7), ("Invert", 0.6, None)),
            (("ShearX", 0.6, 5), ("Equalize", 1.0, None)),
            (("Color", 0.4, 0), ("Equalize", 0.6, None)),
            (("Equalize", 0.4, None), ("Solarize", 0.2, 4)),
            (("Solarize", 0.6, 5), ("AutoContrast", 0.6, None)),
            (("Invert", 0.6, None), ("Equalize", 1.0, None)),
            (("Color", 0.6, 4), ("Contrast", 1.0, 8)),
            (("Equalize", 0.8, None), ("Equalize", 0.6, None)),
        ],
    }

    def __init__(
        self, policy: str = "imagenet", fill: float | list[float] = 0.0, p: float = 1.0
    ) -> None:
        if policy not in self.POLICIES:
            raise ValueError(
                f"autoaugment: policy must be one of {list(self.POLICIES)}, got {policy!r}"
            )
        self.policy = policy
        self.fill = check_fill(self.name, fill)
        self.p = check_prob(self.name, p)

    def sample(self, rng: np.random.Generator, canvas: Canvas, out: list[Record]) -> None:
        if not fires(rng, self.p, self.name):
            return
        subs = self.POLICIES[self.policy]
        sub = subs[int(rng.integers(len(subs)))]
        space = _space_ra(10, canvas.height, canvas.width)
        space["Invert"] = (None, False)
        for name, prob, mag_idx in sub:
            if rng.random() < prob:
                mags, signed = space[name]
                m = 0.0 if mags is None else float(mags[mag_idx])
                if signed and rng.integers(2):
                    m = -m
                self._append(op_record(name, m, self.fill), out)


@register_op("randaugment")
class RandAugment(_Policy):
    """RandAugment (Cubuk et al. 2020): ``num_ops`` ops at a fixed ``magnitude`` bin."""

    def __init__(
        self,
        num_ops: int = 2,
        magnitude: int = 9,
        num_magnitude_bins: int = 31,
        fill: float | list[float] = 0.0,
        p: float = 1.0,
    ) -> None:
        self.num_ops = int(check_number(self.name, "num_ops", num_ops, lo=0, integer=True))
        self.num_magnitude_bins = int(
            check_number(self.name, "num_magnitude_bins", num_magnitude_bins, lo=2, integer=True)
        )
        self.magnitude = int(
            check_number(
                self.name, "magnitude", magnitude, 0, self.num_magnitude_bins - 1, integer=True
            )
        )
        self.fill = check_fill(self.name, fill)
        self.p = check_prob(self.name, p)

    def sample(self, rng: np.random.Generator, canvas: Canvas, out: list[Record]) -> None:
        if not fires(rng, self.p, self.name):
            return
        space = _space_ra(self.num_magnitude_bins, canvas.height, canvas.width)
        names = list(space)
        for _ in range(self.num_ops):
            name = names[int(rng.integers(len(names)))]
            mags, signed = space[name]
            m = 0.0 if mags is None else float(mags[self.magnitude])
            if signed and rng.integers(2):
                m = -m
            self._append(op_record(name, m, self.fill), out)


@register_op("trivialaugment")
class TrivialAugmentWide(_Policy):
    """TrivialAugment Wide (Müller & Hutter 2021): one op at a uniformly drawn magnitude."""

    def __init__(
        self, num_magnitude_bins: int = 31, fill: float | list[float] = 0.0, p: float = 1.0
    ) -> None:
        self.num_magnitude_bins = int(
            check_number(self.name, "num_magnitude_bins", num_magnitude_bins, lo=2, integer=True)
        )
        self.fill = check_fill(self.name, fill)
        self.p = check_prob(self.name, p)

    def sample(self, rng: np.random.Generator, canvas: Canvas, out: list[Record]) -> None:
        if not fires(rng, self.p, self.name):
            return
        space = _space_ta(self.num_magnitude_bins, canvas.height, canvas.width)
        names = list(space)
        name = names[int(rng.integers(len(names)))]
        m = _draw(rng, space, name, self.num_magnitude_bins)
        self._append(op_record(name, m, self.fill), out)


@register_op("augmix")
class AugMix(Op):
    """AugMix (Hendrycks et al. 2020): a Dirichlet-weighted mix of ``mixture_width`` random
    chains, blended with the original by a Beta weight. Image-only (masks, boxes and keypoints
    are not moved), as in torchvision. Its records hold the chains' records; the executors run
    them (``kind = "mix"``), so this module samples and never moves pixels."""

    kind = "mix"

    def __init__(
        self,
        severity: int = 3,
        mixture_width: int = 3,
        chain_depth: int = -1,
        alpha: float = 1.0,
        all_ops: bool = True,
        fill: float | list[float] = 0.0,
        p: float = 1.0,
    ) -> None:
        super().__init__(p=p)
        self.severity = int(check_number(self.name, "severity", severity, 1, 10, integer=True))
        self.mixture_width = int(
            check_number(self.name, "mixture_width", mixture_width, lo=1, integer=True)
        )
        self.chain_depth = int(
            check_number(self.name, "chain_depth", chain_depth, lo=-1, integer=True)
        )
        if self.chain_depth == 0:
            raise ValueError("augmix: chain_depth must be -1 (random 1-3) or >= 1, got 0")
        self.alpha = check_number(self.name, "alpha", alpha, lo=1e-6)
        self.all_ops = bool(all_ops)
        self.fill = check_fill(self.name, fill)

    def make_params(self, rng, canvas):
        space = _space_augmix(10, canvas.height, canvas.width, self.all_ops)
        names = list(space)
        m = rng.dirichlet([self.alpha, self.alpha])
        weights = rng.dirichlet([self.alpha] * self.mixture_width) * m[1]
        chains = []
        for _ in range(self.mixture_width):
            depth = self.chain_depth if self.chain_depth > 0 else int(rng.integers(1, 4))
            chain = []
            for _ in range(depth):
                name = names[int(rng.integers(len(names)))]
                rec = op_record(name, _draw(rng, space, name, 10, self.severity), self.fill)
                if rec is not None:
                    chain.append(rec)
            chains.append(chain)
        return {"original_weight": float(m[0]), "weights": weights.tolist(), "chains": chains}
