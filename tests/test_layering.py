"""The dependency direction, at package and module level: ``augmentor`` <- ``transfer`` <- ``cli``,
inside ``augmentor`` the op graph below its executors below the pipeline, and no import circle
anywhere (function-level imports included; ``if TYPE_CHECKING:`` blocks are not imports)."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("augmentor", "transfer", "cli")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULES = {
    _module_name(p): p
    for pkg in PACKAGES
    for p in (ROOT / pkg).rglob("*.py")
    if ".venv" not in p.parts
}


def _resolve(name: str) -> str | None:
    """The project module an import of ``name`` loads (the longest existing prefix)."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in MODULES:
            return candidate
        parts.pop()
    return None


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(module: str) -> set[str]:
    tree = ast.parse(MODULES[module].read_text())
    out: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            for a in node.names:
                out.add(a.name)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for a in node.names:  # `from pkg import submodule` imports the submodule
                out.add(f"{node.module}.{a.name}")
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    resolved = {_resolve(n) for n in out}
    return {m for m in resolved if m is not None and m != module}


GRAPH = {m: _imports(m) for m in MODULES}


def _rank(module: str) -> tuple[int, int]:
    """(package, layer inside the package): an import may only go to an equal or lower rank."""
    pkg = PACKAGES.index(module.split(".")[0])
    if module in PACKAGES:  # a package face re-exports from every layer below it
        return (pkg, 99)
    if not module.startswith("augmentor."):
        return (pkg, 0)
    sub = module.split(".")[1]
    layers = [
        {"types", "_validation", "seeding", "registry", "convert", "io"},
        {"ops"},
        {"backends"},
        {"serialization", "structures"},
        {"pipeline"},
    ]
    for i, names in enumerate(layers):
        if sub in names:
            return (pkg, i)
    return (pkg, len(layers))  # presets, io, datasets, folders, trainer, generators...


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_imports_go_down_the_layers(module):
    up = [m for m in GRAPH[module] if _rank(m) > _rank(module)]
    assert not up, f"{module} imports higher layers: {up}"


def test_no_import_circles():
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def strong(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                circles.append(sorted(comp))

    for v in sorted(GRAPH):
        if v not in index:
            strong(v)
    assert not circles, circles


def test_the_graph_is_read():
    # so that the two tests above could fail: known edges are there
    assert "augmentor.backends.fuse" in GRAPH["augmentor.backends.cpu"]
    assert "transfer.config" in GRAPH["cli.finetune"]
