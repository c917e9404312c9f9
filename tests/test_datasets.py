import gzip
import struct

import numpy as np
import pytest

from augmentor import datasets


def test_bundled_subset_is_balanced_and_real():
    for split in ("train", "test"):
        ds = datasets.fashion_mnist_subset(split)
        assert ds.images.shape == (1000, 28, 28) and ds.images.dtype == np.uint8
        assert np.bincount(ds.labels).tolist() == [100] * 10
        assert ds.images.std() > 30  # real pictures, not blanks


def _write_idx(path, arr):
    header = struct.pack(">BBBB", 0, 0, 8, arr.ndim) + b"".join(
        struct.pack(">I", d) for d in arr.shape
    )
    with gzip.open(path, "wb") as f:
        f.write(header + arr.tobytes())


def test_full_loader_reads_idx_files(tmp_path):
    imgs = np.random.default_rng(0).integers(0, 256, (7, 28, 28), dtype=np.uint8)
    labels = np.arange(7, dtype=np.uint8)
    _write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", imgs)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", labels)
    ds = datasets.fashion_mnist("test", root=tmp_path)
    np.testing.assert_array_equal(ds.images, imgs)
    np.testing.assert_array_equal(ds.labels, labels)


def test_truncated_idx_is_an_error(tmp_path):
    p = tmp_path / "x.gz"
    with gzip.open(p, "wb") as f:
        f.write(struct.pack(">BBBBI", 0, 0, 8, 1, 10) + b"abc")
    with pytest.raises(ValueError, match="truncated or corrupt"):
        datasets.read_idx(p)


def test_missing_offline_is_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        datasets.fashion_mnist("train", root=tmp_path)


@pytest.mark.skipif(not datasets.DEBIAN_FASHION_MNIST.exists(), reason="Debian package absent")
def test_debian_package_full_set():
    ds = datasets.fashion_mnist("test")
    assert ds.images.shape == (10000, 28, 28)
    sub = datasets.fashion_mnist_subset("test")
    with np.load(datasets.BUNDLED) as z:
        idx = z["test_source_index"]
    np.testing.assert_array_equal(ds.images[idx], sub.images)


def test_textures_and_lfw():
    t = datasets.textures(patch_size=32, per_class=4)
    assert t.images.shape == (12, 32, 32) and t.classes == ["brick", "grass", "gravel"]
    f = datasets.lfw_faces()
    assert f.images.shape == (200, 25, 25) and np.bincount(f.labels).tolist() == [100, 100]


def test_export(tmp_path):
    n = datasets.export_dataset("textures", tmp_path / "tex")
    assert n == 150
    assert sorted(p.name for p in (tmp_path / "tex").iterdir()) == ["brick", "grass", "gravel"]
