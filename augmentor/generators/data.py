"""Training images for a generator: an image folder decoded to one size and channel count,
as a float tensor in [-1, 1] with labels, a fingerprint and notes on what was converted."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from augmentor.generators.config import GeneratorError, check_image_size

__all__ = ["GeneratorData", "load_training_data"]


@dataclass
class GeneratorData:
    """Training images as a float tensor in [-1, 1], with labels and provenance."""

    images: torch.Tensor  # (N, C, S, S)
    labels: torch.Tensor  # (N,)
    class_names: list[str]
    fingerprint: str
    notes: list[str]
    sources: list[str] = field(default_factory=list)  # the file of each image
    keys: list[str] = field(default_factory=list)  # each image's content key, as decoded
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, why) unreadable


def load_training_data(
    root: str | Path,
    image_size: int | None = None,
    channels: int | None = None,
    min_per_class: int = 5,
) -> GeneratorData:
    """Decode an image folder, convert every image to one size and channel count.

    Mixed sizes are resized (area when shrinking, cubic when enlarging) to ``image_size``
    (default: the most common size rounded to a multiple of 4); mixed modes are converted; both
    are reported in ``notes``. Corrupt files are skipped and noted. A class with fewer than
    ``min_per_class`` images is an error naming it.
    """
    import cv2

    from augmentor.io import (
        ImageReadError,
        check_utf8_names,
        content_key,
        load_image,
        scan_image_folder,
    )

    if image_size is not None:  # before any image is decoded
        check_image_size(image_size)
    if channels not in (None, 1, 3):
        raise GeneratorError(f"channels must be 1 or 3, got {channels!r}")
    try:
        folder = scan_image_folder(root)
    except (FileNotFoundError, NotADirectoryError, ValueError) as e:
        raise GeneratorError(str(e)) from None
    check_utf8_names(folder.classes, root, GeneratorError)
    imgs, labels, notes, skipped = [], [], [], []
    sources: list[str] = []
    keys: list[str] = []
    index = {c: i for i, c in enumerate(folder.classes)}
    for item in folder.items:
        try:
            img = load_image(item.path)
            imgs.append(img)
            labels.append(index[item.class_name])
            sources.append(str(item.path))
            keys.append(content_key(img))
        except (ImageReadError, OSError) as e:  # OSError: permissions, a vanished file
            skipped.append((str(item.path), str(e)))
    counts = np.bincount(labels, minlength=len(folder.classes))
    if len(folder.classes) < 1 or not len(imgs):
        raise GeneratorError(f"{str(root)!r} holds no readable images")
    low = [(c, int(n)) for c, n in zip(folder.classes, counts) if n < min_per_class]
    if low:
        raise GeneratorError(
            f"each class needs at least {min_per_class} images to train a generator; "
            + ", ".join(f"{c!r} has {n}" for c, n in low)
        )
    sizes = [im.shape[:2] for im in imgs]
    grey = all(im.ndim == 2 or im.shape[2] == 1 for im in imgs)
    c = channels or (1 if grey else 3)
    if image_size is None:
        (h, w), _ = max(((s, sizes.count(s)) for s in set(sizes)), key=lambda t: (t[1], t[0]))
        image_size = max(16, int(round(min(h, w) / 4)) * 4)
    if len(set(sizes)) > 1 or sizes[0] != (image_size, image_size):
        notes.append(
            f"resized {sum(s != (image_size, image_size) for s in sizes)} of {len(sizes)} "
            f"images (sizes {sorted(set(sizes))[:4]}{'...' if len(set(sizes)) > 4 else ''}) "
            f"to {image_size}x{image_size}"
        )
    n_conv = sum((im.ndim == 3 and im.shape[2] != c) for im in imgs)
    if n_conv:
        notes.append(f"converted {n_conv} images to {'grey' if c == 1 else 'RGB'}")
    out = np.empty((len(imgs), image_size, image_size, c), np.uint8)
    for i, im in enumerate(imgs):
        im = im if im.ndim == 3 else im[:, :, None]
        if im.shape[2] != c:
            im = (
                cv2.cvtColor(im, cv2.COLOR_RGB2GRAY)[:, :, None]
                if c == 1
                else np.repeat(im, 3, axis=2)
            )
        if im.shape[:2] != (image_size, image_size):
            shrink = im.shape[0] * im.shape[1] > image_size**2
            im = cv2.resize(
                im,
                (image_size, image_size),
                interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC,
            )
            im = im.reshape(image_size, image_size, c)
        out[i] = im
    fingerprint = hashlib.sha256(out.tobytes() + np.asarray(labels).tobytes()).hexdigest()
    x = torch.from_numpy(out).permute(0, 3, 1, 2).float() / 127.5 - 1
    return GeneratorData(
        x, torch.tensor(labels), list(folder.classes), fingerprint, notes, sources, keys, skipped
    )
