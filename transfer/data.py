"""Labelled images in memory, stratified splits, and the training set that mixes real,
classic-augmented and synthetic images.

Small datasets fit in memory, so images are decoded once (corrupt files skipped and reported)
and every epoch only augments and preprocesses. Synthetic images enter the training set only:
the split functions never see them.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from augmentor.io import ImageReadError, load_image, scan_image_folder
from augmentor.pipeline import Pipeline, rng_for
from transfer.preprocess import Preprocess, to_chw_uint8

log = logging.getLogger(__name__)

__all__ = [
    "DataError",
    "EpochSampler",
    "LabelledImages",
    "TrainImages",
    "check_repeats",
    "load_folder",
    "per_class_draws",
    "repeated_splits",
    "save_folder",
    "stratified_split",
]


class DataError(ValueError):
    """A dataset that cannot be used as asked; the message names the folder, class and count."""


@dataclass
class LabelledImages:
    """Decoded HWC uint8 images with integer labels and the class names they index."""

    images: list[np.ndarray]
    labels: np.ndarray
    classes: list[str]
    sources: list[str]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    _keys: list[str] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels, dtype=np.int64)
        if len(self.images) != len(self.labels) or len(self.sources) != len(self.labels):
            raise DataError("images, labels and sources must have the same length")

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: Sequence[int] | np.ndarray) -> LabelledImages:
        index = [int(i) for i in index]
        keys = [self.content_keys()[i] for i in index] if self._keys is not None else None
        return LabelledImages(
            [self.images[i] for i in index],
            self.labels[index],
            list(self.classes),
            [self.sources[i] for i in index],
            [],
            keys,
        )

    def counts(self) -> dict[str, int]:
        c = np.bincount(self.labels, minlength=len(self.classes))
        return {name: int(n) for name, n in zip(self.classes, c)}

    def content_keys(self) -> list[str]:
        """A hash of each image's pixels and shape: the feature cache's key for the image."""
        if self._keys is None:
            self._keys = [
                hashlib.blake2b(str(img.shape).encode() + img.tobytes(), digest_size=16).hexdigest()
                for img in self.images
            ]
        return self._keys

    def join(self, other: LabelledImages) -> LabelledImages:
        """This set followed by ``other`` (same class names, in the same order)."""
        if list(other.classes) != list(self.classes):
            raise DataError(
                f"cannot join image sets with different classes: {self.classes} and {other.classes}"
            )
        keys = (
            self.content_keys() + other.content_keys()
            if self._keys is not None and other._keys is not None
            else None
        )
        return LabelledImages(
            self.images + other.images,
            np.concatenate([self.labels, other.labels]),
            list(self.classes),
            self.sources + other.sources,
            self.skipped + other.skipped,
            keys,
        )

    @classmethod
    def from_arrays(
        cls, images: np.ndarray, labels: np.ndarray, classes: Sequence[str], name: str = "array"
    ) -> LabelledImages:
        imgs = [np.ascontiguousarray(im if im.ndim == 3 else im[:, :, None]) for im in images]
        return cls(imgs, labels, list(classes), [f"{name}[{i}]" for i in range(len(imgs))])


def load_folder(root: str | Path, classes: Sequence[str] | None = None) -> LabelledImages:
    """Decode an ImageFolder-layout directory; corrupt files are skipped and listed in ``skipped``.

    Args:
        root: ``root/<class>/<image>``.
        classes: the class order to use (for example a trained model's); a folder class not in
            it is an error. Default: the folder's classes, sorted.
    """
    try:
        folder = scan_image_folder(root)
    except (FileNotFoundError, NotADirectoryError, ValueError) as e:
        raise DataError(str(e)) from None
    names = list(classes) if classes is not None else list(folder.classes)
    unknown = sorted(set(folder.classes) - set(names))
    if unknown:
        raise DataError(
            f"{str(root)!r} has classes the model does not know: {', '.join(unknown)} "
            f"(known: {', '.join(names)})"
        )
    index = {n: i for i, n in enumerate(names)}
    images, labels, sources, skipped = [], [], [], []
    for item in folder.items:
        try:
            img = load_image(item.path)
        except ImageReadError as e:
            skipped.append((str(item.path), str(e)))
            continue
        images.append(img if img.ndim == 3 else img[:, :, None])
        labels.append(index[item.class_name])
        sources.append(str(item.path))
    for path, why in skipped:
        log.warning("skipped %s: %s", path, why)
    if not images:
        raise DataError(f"{str(root)!r}: no readable images ({len(skipped)} skipped)")
    return LabelledImages(images, np.asarray(labels), names, sources, skipped)


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
    if not 0.0 < fraction < 1.0:
        raise DataError(f"split fraction must be in (0, 1), got {fraction}")
    labels = np.asarray(labels)
    classes = classes or [str(c) for c in range(int(labels.max()) + 1)]
    check_classes(labels, classes, 2, f"to hold out {fraction:.0%} of each class")
    rng = np.random.default_rng([seed, 0x5B117])
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
    return [
        stratified_split(labels, test_fraction, seed * 1000 + r, classes) for r in range(repeats)
    ]


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
        rng = np.random.default_rng([seed, r, 0xD8A3])
        picked = [
            rng.choice(np.flatnonzero(labels == c), per_class, replace=False)
            for c in np.unique(labels)
        ]
        draws.append(np.sort(np.concatenate(picked)))
    return draws


def save_folder(data: LabelledImages, root: str | Path) -> int:
    """Write ``data`` as an ImageFolder (``root/<class>/<name>.png``, atomic writes); returns
    the number of images written. Names come from the sources, made unique per class."""
    from augmentor.io import safe_name, write_image_folder

    names, used = [], set()
    for i, (label, src) in enumerate(zip(data.labels, data.sources)):
        stem = safe_name(Path(src).stem)
        if (int(label), stem) in used:
            stem = f"{stem}-{i}"
        used.add((int(label), stem))
        names.append(stem)
    return write_image_folder(root, data.images, data.labels, data.classes, names=names)


class EpochSampler(Sampler):
    """Yields ``(epoch, index)`` so each sample's randomness is a function of both.

    Shuffled (or class-balanced, drawn with replacement) from a generator seeded with
    ``(seed, epoch)``; with ``world_size > 1`` each rank takes its own interleaved share (padded
    to equal length), which replaces Lightning's DistributedSampler. Lightning calls
    :meth:`set_epoch` before each epoch.
    """

    def __init__(
        self,
        n: int,
        seed: int,
        shuffle: bool = True,
        weights: np.ndarray | None = None,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.n = int(n)
        self.seed = int(seed)
        self.shuffle = shuffle
        self.weights = None if weights is None else np.asarray(weights, dtype=np.float64)
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _order(self) -> np.ndarray:
        rng = np.random.default_rng([self.seed, self.epoch, 0xE90C])
        if self.weights is not None:
            return rng.choice(self.n, size=self.n, p=self.weights / self.weights.sum())
        return rng.permutation(self.n) if self.shuffle else np.arange(self.n)

    def __len__(self) -> int:
        return -(-self.n // self.world_size)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        order = self._order()
        per_rank = len(self)
        order = np.resize(order, per_rank * self.world_size)
        for i in order[self.rank :: self.world_size]:
            yield (self.epoch, int(i))


class TrainImages(Dataset):
    """Real (+ synthetic) images, classic-augmented and preprocessed, indexed by (epoch, i).

    Indices below ``len(real)`` are real images; the next ``round(synthetic_ratio * len(real))``
    slots are filled each epoch with a fresh seeded choice of synthetic images. Augmentation of
    sample i at epoch e is a pure function of (pipeline seed, e, i).
    """

    def __init__(
        self,
        real: LabelledImages,
        preprocess: Preprocess,
        pipeline: Pipeline | None = None,
        synthetic: LabelledImages | None = None,
        synthetic_ratio: float = 0.0,
        seed: int = 0,
    ) -> None:
        if synthetic is not None and synthetic.classes != real.classes:
            raise DataError(
                f"synthetic classes {synthetic.classes} do not match the real classes "
                f"{real.classes}"
            )
        if synthetic_ratio < 0:
            raise DataError(f"synthetic_ratio must be >= 0, got {synthetic_ratio}")
        self.real = real
        self.synthetic = synthetic if synthetic is not None and synthetic_ratio > 0 else None
        self.n_synthetic = round(synthetic_ratio * len(real)) if self.synthetic else 0
        self.preprocess = preprocess
        self.pipeline = pipeline
        self.seed = seed

    def __len__(self) -> int:
        return len(self.real) + self.n_synthetic

    def labels(self) -> np.ndarray:
        """Labels of the real part (synthetic slots change with the epoch)."""
        return self.real.labels

    def image(self, epoch: int, i: int) -> tuple[np.ndarray, int]:
        if i < len(self.real):
            return self.real.images[i], int(self.real.labels[i])
        assert self.synthetic is not None
        pick = rng_for(self.seed, epoch, 0).permutation(len(self.synthetic))
        j = int(pick[(i - len(self.real)) % len(self.synthetic)])
        return self.synthetic.images[j], int(self.synthetic.labels[j])

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, int]:
        epoch, i = key
        img, label = self.image(epoch, i)
        if self.pipeline is not None:
            img = self.pipeline(img, index=i, epoch=epoch)
        with torch.no_grad():
            x = self.preprocess(to_chw_uint8(np.ascontiguousarray(img))[None])[0]
        return x, label


class EvalImages(Dataset):
    """Preprocessed images without augmentation, in order."""

    def __init__(self, data: LabelledImages, preprocess: Preprocess) -> None:
        self.data = data
        self.preprocess = preprocess

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        with torch.no_grad():
            x = self.preprocess(to_chw_uint8(self.data.images[i])[None])[0]
        return x, int(self.data.labels[i])
