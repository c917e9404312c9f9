from pathlib import Path

import pytest

import augmentor
from augmentor.registry import OPS, Registry

ROOT = Path(__file__).resolve().parents[1]


def test_every_public_op_is_registered():
    for name in augmentor.list_ops():
        cls = OPS.get(name)
        assert cls.name == name


def test_unknown_name_suggests_close_matches():
    with pytest.raises(KeyError, match="did you mean 'rotate'"):
        OPS.get("rotat")


def test_duplicate_registration_raises():
    reg = Registry("thing")
    reg.register("a")(type("A", (), {}))
    with pytest.raises(ValueError, match="already registered"):
        reg.register("a")(type("B", (), {}))


@pytest.mark.parametrize("path", sorted((ROOT / "cli").glob("*.py")), ids=lambda p: p.name)
def test_cli_modules_import_no_torch(path):
    """Importing any command module (what `augment CMD --help` does) loads no torch, OpenCV
    or Lightning: the defaults come from the torch-free config modules."""
    import subprocess
    import sys

    code = (
        f"import sys, cli.{path.stem}; "
        "heavy = {'torch', 'cv2', 'lightning', 'torchvision'} & set(sys.modules); "
        "print(sorted(heavy))"
    )
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert r.stdout.strip() == "[]", (path.name, r.stdout)
