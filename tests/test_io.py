from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from augmentor.io import ImageReadError, atomic_write_bytes, load_image, scan_image_folder


def _rgb():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "BMP", "TIFF", "WEBP"])
def test_common_formats(tmp_path, fmt):
    path = tmp_path / f"x.{fmt.lower()}"
    Image.fromarray(_rgb()).save(path, format=fmt)
    img = load_image(path)
    assert img.shape == (20, 30, 3) and img.dtype == np.uint8


@pytest.mark.parametrize(
    ("mode", "channels"),
    [("L", 1), ("RGB", 3), ("RGBA", 3), ("P", 3), ("I;16", 1), ("1", 1), ("LA", 1)],
)
def test_modes(tmp_path, mode, channels):
    base = Image.fromarray(_rgb())
    if mode == "I;16":
        arr = np.arange(600, dtype=np.uint16).reshape(20, 30) * 100
        img = Image.fromarray(arr)
    else:
        img = base.convert(mode)
    path = tmp_path / "x.png"
    img.save(path)
    out = load_image(path)
    assert out.shape == (20, 30, channels) and out.dtype == np.uint8
    if mode == "I;16":  # 16-bit scaled, not truncated
        assert out.max() > 200


def test_corrupt_and_truncated(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png at all")
    with pytest.raises(ImageReadError, match="not an image"):
        load_image(bad)
    good = tmp_path / "good.jpg"
    Image.fromarray(_rgb()).resize((300, 300)).save(good, quality=95)
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    with pytest.raises(ImageReadError, match="cannot decode"):
        load_image(cut)


def test_scan_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        scan_image_folder(tmp_path / "nope")
    with pytest.raises(ValueError, match="no class sub-folders"):
        scan_image_folder(tmp_path)
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="holds no images"):
        scan_image_folder(tmp_path)


def test_atomic_write_has_normal_permissions(tmp_path):
    import os

    mask = os.umask(0)
    os.umask(mask)
    atomic_write_bytes(tmp_path / "x.bin", b"abc")
    assert (tmp_path / "x.bin").stat().st_mode & 0o777 == 0o666 & ~mask


def test_atomic_write_leaves_no_temporary_on_failure(tmp_path):
    with pytest.raises(TypeError):
        atomic_write_bytes(tmp_path / "x.bin", 12345)  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def test_an_unreadable_class_folder_is_an_error_not_a_missing_class(tmp_path):
    """Issue 20 #7: rglob skipped a class folder it could not read, so the class vanished.
    As root, permissions do not apply: the scan then runs as `nobody` through setpriv."""
    import os
    import shutil
    import subprocess
    import sys
    import tempfile

    root = Path(tempfile.mkdtemp(dir=tmp_path if os.geteuid() else "/tmp"))
    try:
        root.chmod(0o755)
        for name in ("a", "b"):
            (root / name).mkdir()
            Image.fromarray(_rgb()).save(root / name / "x.png")
        (root / "b").chmod(0)
        if os.geteuid():
            with pytest.raises(ValueError, match=r"cannot read the class folder\(s\) \['b'\]"):
                scan_image_folder(root)
            return
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv: permissions cannot be tested")

        def as_nobody(code: str) -> subprocess.CompletedProcess:
            return subprocess.run(
                ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                 sys.executable, "-c", code],
                capture_output=True, text=True, cwd="/",
                env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
            )  # fmt: skip

        if as_nobody("import augmentor.io").returncode:
            # a checkout under a private folder (mktemp -d is 0700): `nobody` cannot import it
            pytest.skip("running as root in a checkout `nobody` cannot read")
        r = as_nobody(
            f"from augmentor.io import scan_image_folder; scan_image_folder({str(root)!r})"
        )
        assert "cannot read the class folder(s) ['b']" in r.stderr, r.stderr[-500:]
    finally:
        (root / "b").chmod(0o755)
        shutil.rmtree(root, ignore_errors=True)
