"""Disk I/O: image folders, robust image loading, atomic writes, manifests.

Every module that writes goes through these helpers: each file is written to a temporary name
in the target directory and renamed into place, so an interrupted run (Ctrl-C, kill -9) never
leaves a half-written file under a final name.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

IMAGE_EXTENSIONS = (
    ".png",
    ".jpg",
    ".jpeg",
    ".bmp",
    ".tif",
    ".tiff",
    ".webp",
    ".gif",
    ".ppm",
    ".pgm",
)
FORMATS = {"png": ".png", "jpg": ".jpg", "webp": ".webp"}
TMP_PREFIX = ".tmp-"


def _file_mode() -> int:
    """The mode a plain ``open()`` would give a new file (mkstemp's default is 0600)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


_FILE_MODE = _file_mode()


class ImageReadError(ValueError):
    """An image file that cannot be decoded; the message says why."""


@dataclass(frozen=True)
class ImageItem:
    path: Path
    label: int
    class_name: str


@dataclass(frozen=True)
class ImageFolder:
    """An ImageFolder-layout directory: ``root/<class>/<image>``."""

    root: Path
    classes: tuple[str, ...]
    items: tuple[ImageItem, ...]
    ignored: tuple[Path, ...]  # files in class folders that are not images by extension

    def by_class(self) -> dict[str, list[ImageItem]]:
        out: dict[str, list[ImageItem]] = {c: [] for c in self.classes}
        for it in self.items:
            out[it.class_name].append(it)
        return out


def scan_image_folder(root: str | Path) -> ImageFolder:
    """List the images of ``root/<class>/...`` (sorted, recursive within a class; hidden files and
    our temporary files ignored). Raises ``FileNotFoundError``/``ValueError`` with a clear message
    for a missing root, a root with no class folders, or no images at all."""
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"{str(root)!r} does not exist")
    if not root.is_dir():
        raise ValueError(f"{str(root)!r} is not a directory")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise ValueError(f"{str(root)!r} has no class sub-folders (expected root/<class>/<image>)")
    locked = [c for c in classes if not os.access(root / c, os.R_OK | os.X_OK)]
    if locked:  # rglob would skip them silently: a class would vanish from the data
        raise ValueError(
            f"{str(root)!r}: cannot read the class folder(s) {locked} (permission denied)"
        )
    items: list[ImageItem] = []
    ignored: list[Path] = []
    for label, cname in enumerate(classes):
        for p in sorted((root / cname).rglob("*")):
            if any(part.startswith(".") for part in p.relative_to(root).parts):
                continue
            # a dangling symlink or a symlink loop named *.png is an image that cannot be read:
            # listed, so every command reports it as skipped, never dropped silently
            readable = p.is_file()
            if not (readable or p.is_symlink()):
                continue  # a folder
            if p.suffix.lower() in IMAGE_EXTENSIONS:
                items.append(ImageItem(p, label, cname))
            elif readable:
                ignored.append(p)
    if not items:
        raise ValueError(
            f"{str(root)!r} holds no images ({', '.join(IMAGE_EXTENSIONS)}) in its class folders"
        )
    return ImageFolder(root, tuple(classes), tuple(items), tuple(ignored))


def check_utf8_names(classes: Sequence[str], root: str | Path, error: type[Exception]) -> None:
    """Class names go into labels.json, reports and exported models, all UTF-8: a class folder
    whose name is not valid UTF-8 (Python holds it with surrogate escapes) is refused up front,
    before hours of training end in a report that cannot be written."""
    for name in classes:
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:
            raw = os.fsencode(name)
            raise error(
                f"{str(root)!r}: the class folder name {raw!r} is not valid UTF-8; rename it"
            ) from None


def load_image(path: str | Path) -> np.ndarray:
    """Decode any common format and mode to HWC uint8 (1 channel for grey images, else RGB).

    EXIF orientation is applied; 16-bit images are scaled to 8 bits; alpha is dropped; palette
    images become RGB. Corrupt or truncated files raise :class:`ImageReadError`.
    """
    import warnings

    from PIL import Image, ImageOps, UnidentifiedImageError

    from augmentor.convert import pil_to_array

    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                img.load()  # decodes now: truncated files fail here
                img = ImageOps.exif_transpose(img)
                if img.mode == "P" and "transparency" in img.info:
                    img = img.convert("RGBA")
                arr = pil_to_array(img)
    except UnidentifiedImageError:
        raise ImageReadError("not an image PIL can identify") from None
    except (
        OSError,
        SyntaxError,
        ValueError,
        Image.DecompressionBombWarning,
        Image.DecompressionBombError,
    ) as e:
        raise ImageReadError(f"cannot decode: {e}") from None
    return np.ascontiguousarray(arr)


def content_key(image: np.ndarray) -> str:
    """A hash of an HWC (or HW) uint8 image's pixels and shape: how the feature cache, the
    resume of a run and a variation's source recognise an image whatever its file name.

    Example:
        >>> content_key(np.zeros((2, 2), np.uint8)) == content_key(np.zeros((2, 2, 1), np.uint8))
        True
    """
    import hashlib

    img = np.ascontiguousarray(image if image.ndim == 3 else image[:, :, None])
    return hashlib.blake2b(str(img.shape).encode() + img.tobytes(), digest_size=16).hexdigest()


def encode_image(image: np.ndarray, fmt: str = "png", quality: int = 95) -> bytes:
    """Encode an HWC uint8 image; deterministic for a given input, format and quality."""
    import io

    from PIL import Image

    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {list(FORMATS)}, got {fmt!r}")
    if image.dtype != np.uint8:
        image = np.clip(np.rint(np.asarray(image, np.float32) * 255), 0, 255).astype(np.uint8)
    pil = Image.fromarray(image[..., 0] if image.ndim == 3 and image.shape[2] == 1 else image)
    buf = io.BytesIO()
    if fmt == "png":
        pil.save(buf, format="PNG", optimize=False, compress_level=6)
    elif fmt == "jpg":
        pil.save(buf, format="JPEG", quality=int(quality), subsampling=0 if quality >= 90 else 2)
    else:
        pil.save(buf, format="WEBP", quality=int(quality), method=4)
    return buf.getvalue()


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same directory and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # hidden, and not ending in the image suffix, so no *.png glob picks up a partial file
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, suffix=path.suffix + ".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def read_json(path: str | Path, error: type[Exception] = ValueError) -> Any:
    """The JSON value in ``path``; a file that is not valid JSON (or not UTF-8) is one
    ``error`` line naming it."""
    try:
        return json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise error(f"{str(path)!r} is not valid JSON: {e}") from None


def save_figure(path: str | Path, fig: Any) -> None:
    """Write a matplotlib figure as PNG atomically, and close it."""
    import io

    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def save_image(path: str | Path, image: np.ndarray, fmt: str = "png", quality: int = 95) -> None:
    atomic_write_bytes(path, encode_image(image, fmt, quality))


def remove_temporaries(root: str | Path) -> int:
    """Delete temporary files an interrupted run left behind; returns how many."""
    n = 0
    for p in Path(root).rglob(f"{TMP_PREFIX}*"):
        if p.is_file():
            p.unlink()
            n += 1
    return n


class Manifest:
    """An append-only JSONL file, one record per line, flushed line by line.

    A line cut short by a kill is ignored on reading (and rewritten by the resumed run).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._fh: Any = None

    def read(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        out = []
        with open(self.path, encoding="utf-8") as f:
            for line in f:
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
        return out

    def compact(self, entries: Iterable[dict[str, Any]]) -> None:
        atomic_write_text(self.path, "".join(json.dumps(e, sort_keys=True) + "\n" for e in entries))

    def append(self, entry: dict[str, Any]) -> None:
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "a", encoding="utf-8")
        self._fh.write(json.dumps(entry, sort_keys=True) + "\n")
        self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def __enter__(self) -> Manifest:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def write_image_folder(
    root: str | Path,
    images: Sequence[np.ndarray] | np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    prefix: str = "img",
    names: Sequence[str] | None = None,
) -> int:
    """Write ``images`` (N x H x W (x C) uint8) as ``root/<class>/<prefix>_<i>.png``, or as
    ``root/<class>/<names[i]>.png`` when ``names`` (unique within a class) are given."""
    root = Path(root)
    folders = class_folder_names(class_names)
    for i, (img, lab) in enumerate(zip(images, labels)):
        arr = img if img.ndim == 3 else img[..., None]
        stem = names[i] if names is not None else f"{prefix}_{i:05d}"
        save_image(root / folders[class_names[int(lab)]] / f"{stem}.png", arr)
    return len(images)


def class_folder_names(
    classes: Sequence[str], error: type[Exception] = ValueError
) -> dict[str, str]:
    """The folder of each class: its name verbatim wherever that is a legal, visible folder
    name (``red shoe`` stays ``red shoe``, so the folder reads back as the same class), else
    :func:`safe_name`; two classes that would share a folder are an error naming both.

    Example:
        >>> class_folder_names(["red shoe", "a/b"])
        {'red shoe': 'red shoe', 'a/b': 'a_b'}
    """
    out: dict[str, str] = {}
    taken: dict[str, str] = {}
    for name in classes:
        legal = (
            bool(name)
            and name not in (".", "..")
            and not name.startswith(".")
            and "/" not in name
            and "\0" not in name
            and os.sep not in name
            and len(name.encode("utf-8", "surrogateescape")) <= 255
        )
        folder = name if legal else safe_name(name)
        if folder in taken:
            raise error(
                f"classes {taken[folder]!r} and {name!r} would be written to the same folder "
                f"{folder!r}; rename one of them"
            )
        taken[folder] = name
        out[name] = folder
    return out


def safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name).strip("._") or "class"


RUN_STAMP = "run.json"


def prepare_run_dir(
    out: str | Path,
    identity: dict[str, Any],
    *,
    resume: bool,
    overwrite: bool,
    products: Sequence[str],
    checkpoint: str = "checkpoints/last.ckpt",
    error: type[Exception] = ValueError,
) -> Path:
    """Claim the run directory ``out`` for a training run described by ``identity`` (plain
    data: the settings that define the run and a fingerprint of its data), written to
    ``out/run.json``.

    * An existing run is never replaced by mistake: without ``resume`` or ``overwrite`` it is
      refused; with ``overwrite`` its ``products`` (files or folders) are deleted first.
    * ``resume`` needs the checkpoint, and a run of the same identity: any key that differs is
      named in the error (so a run of other data or settings is never continued silently).

    Example:
        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp()) / "run"
        >>> _ = prepare_run_dir(d, {"lr": 1}, resume=False, overwrite=False, products=[])
        >>> (d / "checkpoints").mkdir(); (d / "checkpoints" / "last.ckpt").write_bytes(b"")
        0
        >>> prepare_run_dir(d, {"lr": 2}, resume=True, overwrite=False, products=[])
        Traceback (most recent call last):
        ...
        ValueError: cannot resume ...: it is a run of other settings or data (lr: 1 there, 2 here)
    """
    import shutil

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise error(f"{str(out)!r} exists and is not a directory")
    stamp = out / RUN_STAMP
    ckpt = out / checkpoint
    previous = [name for name in (*products, checkpoint, RUN_STAMP) if (out / name).exists()]
    if resume:
        if not ckpt.is_file():
            raise error(
                f"cannot resume {str(out)!r}: it has no checkpoint ({checkpoint}); run without "
                "--resume to start"
            )
        if stamp.is_file():
            try:
                old = json.loads(stamp.read_text())
            except (OSError, json.JSONDecodeError) as e:
                raise error(f"cannot resume: {str(stamp)!r} is unreadable ({e})") from None
            new = json.loads(json.dumps(identity))
            diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
            if diff:
                what = ", ".join(
                    f"{k}: {_brief(old.get(k))} there, {_brief(new.get(k))} here" for k in diff[:4]
                )
                raise error(
                    f"cannot resume {str(out)!r}: it is a run of other settings or data ({what})"
                )
        return out
    if previous:
        if not overwrite:
            raise error(
                f"{str(out)!r} already holds a run ({previous[0]}); resume it (--resume), "
                "replace it (--overwrite) or choose another directory"
            )
        for name in {*products, str(Path(checkpoint).parts[0]), RUN_STAMP}:
            path = out / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(stamp, json.dumps(identity, indent=2, sort_keys=True, default=str))
    return out


def _brief(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 40 else text[:16] + "..." + text[-8:]
