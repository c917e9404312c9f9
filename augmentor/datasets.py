"""Bundled and offline datasets.

- ``fashion-mnist-subset``: 100 training and 100 test images per class of Fashion-MNIST (28x28
  grey), shipped inside the package (``augmentor/data``), so the demo runs offline anywhere.
  Cut from Debian's ``dataset-fashion-mnist`` by ``scripts/make_bundled_data.py``. Fashion-MNIST
  is (c) 2017 Zalando SE, MIT licence (``augmentor/data/FASHION_MNIST_LICENSE.txt``).
- ``fashion-mnist``: the full set, read from ``/usr/share/datasets/fashion-mnist`` (Debian package
  ``dataset-fashion-mnist``) when present, else through torchvision's download when online.
- ``textures``: patches of scikit-image's ``brick``, ``grass`` and ``gravel`` photos.
- ``lfw``: scikit-image's ``lfw_subset``: 100 faces and 100 non-faces, 25x25.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from augmentor.registry import Registry
from augmentor.seeding import stream

DATA_DIR = Path(__file__).parent / "data"
BUNDLED = DATA_DIR / "fashion_mnist_subset.npz"
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = [
    "t-shirt_top",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle_boot",
]
_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


@dataclass(frozen=True)
class ArrayDataset:
    """Images (N x H x W or N x H x W x C, uint8), integer labels and class names."""

    images: np.ndarray
    labels: np.ndarray
    classes: list[str]

    def __len__(self) -> int:
        return len(self.labels)


def _check_split(split: str) -> None:
    if split not in _FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (the MNIST format), gzip-compressed or not."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ValueError(f"{str(path)!r} is not an unsigned-byte IDX file")
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    expected = 4 + 4 * ndim + int(np.prod(dims))
    if len(data) != expected:
        raise ValueError(
            f"{str(path)!r} is truncated or corrupt: {len(data)} bytes, expected {expected}"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def fashion_mnist_subset(split: str = "train") -> ArrayDataset:
    """The bundled subset: 100 images per class (1,000) per split, 28x28 grey."""
    _check_split(split)
    with np.load(BUNDLED) as z:
        return ArrayDataset(
            z[f"{split}_images"].copy(),
            z[f"{split}_labels"].astype(np.int64),
            list(FASHION_MNIST_CLASSES),
        )


def fashion_mnist(
    split: str = "train", root: str | Path | None = None, download: bool = False
) -> ArrayDataset:
    """The full Fashion-MNIST (60,000 training / 10,000 test images).

    Looks in ``root`` (default: the Debian package's ``/usr/share/datasets/fashion-mnist``). If
    the files are not there and ``download`` is true, uses torchvision's downloader; offline, a
    clear error says how to get them.
    """
    _check_split(split)
    base = Path(root) if root is not None else DEBIAN_FASHION_MNIST
    img_file, lab_file = _FILES[split]
    ip, lp = base / img_file, base / lab_file
    if ip.exists() and lp.exists():
        images, labels = read_idx(ip), read_idx(lp)
        if len(images) != len(labels):
            raise ValueError(f"{str(base)!r}: {len(images)} images but {len(labels)} labels")
        return ArrayDataset(images, labels.astype(np.int64), list(FASHION_MNIST_CLASSES))
    if not download:
        raise FileNotFoundError(
            f"Fashion-MNIST not found in {str(base)!r}. Install the Debian package "
            "(`apt-get install dataset-fashion-mnist`), pass root= a folder with the four "
            "*-ubyte.gz files, or download=True when online."
        )
    try:
        from torchvision.datasets import FashionMNIST

        cache = Path.home() / ".cache" / "smallaug" / "fashion-mnist"
        ds = FashionMNIST(str(cache), train=split == "train", download=True)
    except Exception as e:  # offline: URLError, socket errors, ...
        raise FileNotFoundError(
            f"Fashion-MNIST is not installed and could not be downloaded ({e}). Install the "
            "Debian package `dataset-fashion-mnist` for offline use."
        ) from None
    return ArrayDataset(
        ds.data.numpy(), ds.targets.numpy().astype(np.int64), list(FASHION_MNIST_CLASSES)
    )


def textures(patch_size: int = 64, per_class: int = 50, seed: int = 0) -> ArrayDataset:
    """Random ``patch_size`` crops of scikit-image's brick, grass and gravel photos (grey)."""
    from skimage import data

    rng = stream(seed, "dataset", patch_size, per_class)
    images, labels = [], []
    classes = ["brick", "grass", "gravel"]
    for label, name in enumerate(classes):
        photo = np.asarray(getattr(data, name)())
        if photo.ndim == 3:
            photo = photo[..., 0]
        h, w = photo.shape[:2]
        if patch_size > min(h, w):
            raise ValueError(f"patch_size must be <= {min(h, w)}, got {patch_size}")
        for _ in range(per_class):
            y = int(rng.integers(0, h - patch_size + 1))
            x = int(rng.integers(0, w - patch_size + 1))
            images.append(photo[y : y + patch_size, x : x + patch_size])
            labels.append(label)
    return ArrayDataset(np.stack(images).astype(np.uint8), np.asarray(labels), classes)


def lfw_faces() -> ArrayDataset:
    """scikit-image's ``lfw_subset``: 100 faces then 100 non-faces, 25x25, as uint8."""
    from skimage import data

    x = np.asarray(data.lfw_subset())
    images = np.clip(np.rint(x * 255), 0, 255).astype(np.uint8)
    labels = np.array([0] * 100 + [1] * 100)
    return ArrayDataset(images, labels, ["face", "non_face"])


@dataclass(frozen=True)
class DatasetEntry:
    """A registered dataset: a loader per split name."""

    description: str
    splits: dict[str, Callable[[], ArrayDataset]]


DATASETS: Registry[DatasetEntry] = Registry("dataset", "augmentor.datasets.list_datasets()")
DATASETS.add(
    "fashion-mnist-subset",
    DatasetEntry(
        "the bundled Fashion-MNIST subset (100 per class and split)",
        {
            "train": lambda: fashion_mnist_subset("train"),
            "test": lambda: fashion_mnist_subset("test"),
        },
    ),
)
DATASETS.add(
    "fashion-mnist",
    DatasetEntry(
        "the full Fashion-MNIST (Debian package or download)",
        {"train": lambda: fashion_mnist("train"), "test": lambda: fashion_mnist("test")},
    ),
)
DATASETS.add(
    "textures",
    DatasetEntry(
        # test patches are other random crops of the same three photos: they may overlap
        # training patches, so the split measures little more than the training fit
        "scikit-image brick/grass/gravel patches (64x64); test: other crops of the same photos",
        {"train": lambda: textures(seed=0), "test": lambda: textures(seed=1)},
    ),
)
DATASETS.add(
    "lfw",
    DatasetEntry(
        "scikit-image lfw_subset: faces vs non-faces (25x25); one split only (train)",
        {"train": lfw_faces},
    ),
)


def list_datasets(pattern: str = "*") -> list[str]:
    """Names of the registered datasets, optionally filtered by a glob."""
    return DATASETS.list(pattern)


def load_dataset(name: str, split: str = "train") -> ArrayDataset:
    """A registered dataset's ``split``; a split it does not have is an error naming its splits."""
    entry = DATASETS.get(name)
    if split not in entry.splits:
        raise ValueError(
            f"dataset {name!r} has no {split!r} split (splits: {', '.join(entry.splits)})"
        )
    return entry.splits[split]()


def export_dataset(name: str, dst: str | Path, split: str = "train") -> int:
    """Write a dataset as an ImageFolder (``dst/<class>/*.png``); returns the image count."""
    from augmentor.io import write_image_folder

    ds = load_dataset(name, split)
    return write_image_folder(dst, ds.images, ds.labels, ds.classes, prefix=split)
