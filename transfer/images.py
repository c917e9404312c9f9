"""Labelled images in memory: decoded once from an image folder (corrupt files skipped and
reported), subset and joined without copying pixels, written back as a folder.

Small datasets fit in memory, so images are decoded once and every epoch only augments and
preprocesses.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from augmentor.io import (
    ImageReadError,
    check_utf8_names,
    content_key,
    load_image,
    scan_image_folder,
)
from transfer.errors import DataError

log = logging.getLogger(__name__)

__all__ = ["LabelledImages", "load_folder", "save_folder"]


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
            self._keys = [content_key(img) for img in self.images]
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
            it is an error. Default: the folder's classes, sorted; then every class folder
            must hold a readable image (an empty one would be a class the model can never
            learn), else a :class:`DataError` naming it.
    """
    try:
        folder = scan_image_folder(root)
    except (FileNotFoundError, NotADirectoryError, ValueError) as e:
        raise DataError(str(e)) from None
    check_utf8_names(folder.classes, root, DataError)
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
    for path, why in skipped:  # the commands list them; at INFO here so nothing prints twice
        log.info("skipped %s: %s", path, why)
    if not images:
        raise DataError(f"{str(root)!r}: no readable images ({len(skipped)} skipped)")
    if classes is None:
        present = set(labels)
        empty = [n for i, n in enumerate(names) if i not in present]
        if empty:
            raise DataError(
                f"{str(root)!r}: the class folder(s) {empty} hold no readable image; remove "
                "them or add images (each would be a class the model can never learn)"
            )
    return LabelledImages(images, np.asarray(labels), names, sources, skipped)


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
