"""Which images train and which test: stratified splits, repeated splits and few-shot draws.

Every draw comes from :func:`augmentor.seeding.stream` with its own purpose (``split``,
``draw``), so no split can share its random stream with another draw or an augmentation.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from augmentor.seeding import stream
from transfer.errors import DataError

__all__ = [
    "check_classes",
    "check_repeats",
    "per_class_draws",
    "repeated_splits",
    "stratified_folds",
    "stratified_split",
]


def check_classes(labels: np.ndarray, classes: Sequence[str], need: int, why: str) -> None:
    """Raise unless 2+ classes have images and each has at least ``need``."""
    counts = np.bincount(labels, minlength=len(classes))
    present = int((counts > 0).sum())
    if present < 2:
        raise DataError(f"need at least 2 classes with images, found {present}")
    low = [(classes[c], int(n)) for c, n in enumerate(counts) if 0 < n < need]
    if low:
        listing = ", ".join(f"{name!r} has {n}" for name, n in low)
        raise DataError(f"each class needs at least {need} images {why}; {listing}")


def stratified_split(
    labels: np.ndarray,
    fraction: float,
    seed: int,
    classes: Sequence[str] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Split indices into (kept, held-out) with ``fraction`` of each class held out.

    Every class keeps at least one image on each side; a class that cannot is an error naming
    it. Written by hand (a few lines) rather than adding scikit-learn as a dependency.
    """
    return _split(labels, fraction, seed, None, classes)


def stratified_folds(labels: np.ndarray, k: int, seed: int) -> list[np.ndarray]:
    """``k`` disjoint folds of the indices, each class dealt across them in a seeded order
    (so every class of at least ``k`` images has a member in every fold).

    Example:
        >>> labels = np.array([0, 0, 0, 1, 1, 1])
        >>> [labels[f].tolist() for f in stratified_folds(labels, 3, seed=0)]
        [[0, 1], [0, 1], [0, 1]]
    """
    if k < 2:
        raise DataError(f"folds must be >= 2, got {k}")
    labels = np.asarray(labels)
    rng = stream(seed, "audit")
    folds: list[list[int]] = [[] for _ in range(k)]
    start = 0
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        for j, i in enumerate(idx[rng.permutation(len(idx))]):
            folds[(start + j) % k].append(int(i))
        start += len(idx)  # the next class starts where this one stopped: folds stay even
    return [np.sort(np.asarray(f, dtype=int)) for f in folds]


def _split(
    labels: np.ndarray,
    fraction: float,
    seed: int,
    repeat: int | None,
    classes: Sequence[str] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    if not 0.0 < fraction < 1.0:
        raise DataError(f"split fraction must be in (0, 1), got {fraction}")
    labels = np.asarray(labels)
    classes = classes or [str(c) for c in range(int(labels.max()) + 1)]
    check_classes(labels, classes, 2, f"to hold out {fraction:.0%} of each class")
    rng = stream(seed, "split") if repeat is None else stream(seed, "split", repeat)
    kept, held = [], []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        idx = idx[rng.permutation(len(idx))]
        n_held = min(max(1, round(fraction * len(idx))), len(idx) - 1)
        held.append(idx[:n_held])
        kept.append(idx[n_held:])
    return np.sort(np.concatenate(kept)), np.sort(np.concatenate(held))


def check_repeats(repeats: int) -> None:
    """Raise unless there are enough repeats for a confidence interval."""
    if repeats < 2:
        raise DataError(f"repeats must be >= 2 for a confidence interval, got {repeats}")


def repeated_splits(
    labels: np.ndarray,
    repeats: int,
    test_fraction: float,
    seed: int,
    classes: Sequence[str] | None = None,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``repeats`` independent stratified (train, test) splits, the same for every config."""
    check_repeats(repeats)
    return [_split(labels, test_fraction, seed, r, classes) for r in range(repeats)]


def per_class_draws(
    labels: np.ndarray,
    per_class: int,
    repeats: int,
    seed: int,
    classes: Sequence[str] | None = None,
) -> list[np.ndarray]:
    """``repeats`` stratified draws of ``per_class`` indices per class (sorted, no repeats
    within a draw): the training sets of a few-shot comparison against a fixed test set."""
    check_repeats(repeats)
    if per_class < 1:
        raise DataError(f"per_class must be >= 1, got {per_class}")
    labels = np.asarray(labels)
    classes = classes or [str(c) for c in range(int(labels.max()) + 1)]
    check_classes(labels, classes, per_class, f"to draw {per_class} per class")
    draws = []
    for r in range(repeats):
        rng = stream(seed, "draw", r)
        picked = [
            rng.choice(np.flatnonzero(labels == c), per_class, replace=False)
            for c in np.unique(labels)
        ]
        draws.append(np.sort(np.concatenate(picked)))
    return draws
