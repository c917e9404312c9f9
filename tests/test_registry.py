import ast
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


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module.split(".")[0])
    return out


@pytest.mark.parametrize(
    ("package", "forbidden"), [("augmentor", {"transfer", "cli"}), ("transfer", {"cli"})]
)
def test_dependency_direction(package, forbidden):
    for path in (ROOT / package).rglob("*.py"):
        bad = _imports(path) & forbidden
        assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


def test_cli_imports_no_torch_at_module_level():
    for path in (ROOT / "cli").rglob("*.py"):
        tree = ast.parse(path.read_text())
        top = set()
        for node in tree.body:
            if isinstance(node, ast.Import):
                top.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                top.add(node.module.split(".")[0])
        assert not top & {"torch", "torchvision", "augmentor", "cv2", "numpy"}, path
