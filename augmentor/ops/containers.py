"""Containers: Sequential, OneOf, SomeOf, RandomApply."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from augmentor._validation import check_number, check_prob
from augmentor.ops.base import Node, fires
from augmentor.registry import register_op
from augmentor.types import Canvas, Record


def _check_ops(name: str, ops: Any) -> list[Node]:
    if not isinstance(ops, Sequence) or isinstance(ops, str):
        raise ValueError(f"{name}: ops must be a list of ops, got {ops!r}")
    for i, op in enumerate(ops):
        if not isinstance(op, Node):
            raise ValueError(f"{name}: ops[{i}] must be an op, got {type(op).__name__}")
    return list(ops)


@register_op("sequential")
class Sequential(Node):
    """Apply ``ops`` in order (as a whole with probability ``p``)."""

    def __init__(self, ops: Sequence[Node], p: float = 1.0) -> None:
        self.ops = _check_ops(self.name, ops)
        self.p = check_prob(self.name, p)

    def sample(self, rng: np.random.Generator, canvas: Canvas, out: list[Record]) -> None:
        if not fires(rng, self.p, self.name):
            return
        for op in self.ops:
            op.sample(rng, canvas, out)


@register_op("random_apply")
class RandomApply(Sequential):
    """Apply all of ``ops`` with probability ``p``, or none of them."""

    def __init__(self, ops: Sequence[Node], p: float = 0.5) -> None:
        super().__init__(ops, p=p)


@register_op("one_of")
class OneOf(Node):
    """Apply exactly one of ``ops`` (chosen with ``weights``), with probability ``p``."""

    def __init__(
        self, ops: Sequence[Node], weights: Sequence[float] | None = None, p: float = 1.0
    ) -> None:
        self.ops = _check_ops(self.name, ops)
        if not self.ops:
            raise ValueError(f"{self.name}: ops must not be empty")
        self.p = check_prob(self.name, p)
        if weights is not None:
            if len(weights) != len(self.ops):
                raise ValueError(
                    f"{self.name}: weights has {len(weights)} values for {len(self.ops)} ops"
                )
            weights = [check_number(self.name, "weights", w, lo=0.0) for w in weights]
            if sum(weights) <= 0:
                raise ValueError(f"{self.name}: weights must not all be 0, got {weights!r}")
        self.weights = weights

    def sample(self, rng: np.random.Generator, canvas: Canvas, out: list[Record]) -> None:
        if not fires(rng, self.p, self.name):
            return
        w = None if self.weights is None else np.asarray(self.weights) / sum(self.weights)
        self.ops[int(rng.choice(len(self.ops), p=w))].sample(rng, canvas, out)


@register_op("some_of")
class SomeOf(Node):
    """Apply ``n`` of ``ops`` (an int, or a ``(min, max)`` range drawn uniformly), without
    replacement, in random order unless ``random_order`` is false."""

    def __init__(
        self,
        ops: Sequence[Node],
        n: int | tuple[int, int] = (1, 2),
        random_order: bool = True,
        p: float = 1.0,
    ) -> None:
        self.ops = _check_ops(self.name, ops)
        self.p = check_prob(self.name, p)
        if isinstance(n, (int, float)) and not isinstance(n, bool):
            k = int(check_number(self.name, "n", n, 0, len(self.ops), integer=True))
            self.n = (k, k)
        else:
            if not (isinstance(n, Sequence) and len(n) == 2):
                raise ValueError(f"{self.name}: n must be an int or (min, max), got {n!r}")
            lo = int(check_number(self.name, "n[0]", n[0], 0, len(self.ops), integer=True))
            hi = int(check_number(self.name, "n[1]", n[1], lo, len(self.ops), integer=True))
            self.n = (lo, hi)
        self.random_order = bool(random_order)

    def sample(self, rng: np.random.Generator, canvas: Canvas, out: list[Record]) -> None:
        if not fires(rng, self.p, self.name):
            return
        k = int(rng.integers(self.n[0], self.n[1] + 1))
        chosen = rng.choice(len(self.ops), size=k, replace=False)
        if not self.random_order:
            chosen = np.sort(chosen)
        for i in chosen:
            self.ops[int(i)].sample(rng, canvas, out)
