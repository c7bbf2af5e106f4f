"""The import rules of docs/architecture.md, checked on the source.

Every module of the package belongs to one layer; a module may import
(at the top or inside a function) only from its own layer or the layers
below it. No module imports a private (underscore) name from another module.
A new module must be placed in LAYERS, which is the map the docs describe.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "igneous"

# bottom to top; a module belongs to the layer of its longest matching prefix
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("base", ("igneous", "igneous.errors", "igneous.grid", "igneous.memory",
              "igneous.capabilities")),
    ("storage", ("igneous.storage", "igneous.chunkio", "igneous.blockio", "igneous.zarrio",
                 "igneous.layers", "igneous.formats", "igneous.scales", "igneous.skeleton_swc")),
    ("tasks", ("igneous.tasks", "igneous.compat")),
    ("task_creation", ("igneous.task_creation", "igneous.design", "igneous.sample",
                       "igneous.validate")),
    ("queues", ("igneous.queues",)),
    ("worker", ("igneous.worker", "igneous.supervisor", "igneous.cost")),
    ("submit", ("igneous.submit", "igneous.pipeline", "igneous.view", "igneous.fileserver")),
    ("cli", ("igneous.cli", "igneous.__main__")),
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer_of(module: str) -> int:
    best, found = -1, None
    for i, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, found = len(prefix), i
    if found is None:
        raise AssertionError(f"{module} is in no layer: place it in tests/test_layers.py LAYERS "
                             "and docs/architecture.md")
    return found


def imports_of(module: str) -> list[tuple[int, str, str]]:
    """(line, imported module, imported name or '') of every igneous import in ``module``."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name, "") for a in node.names if a.name.startswith("igneous")]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            if not base.startswith("igneous"):
                continue
            for a in node.names:
                sub = f"{base}.{a.name}"
                out.append((node.lineno, sub, "") if sub in MODULES else (node.lineno, base, a.name))
    return out


def test_every_module_has_a_layer():
    for module in MODULES:
        layer_of(module)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_point_down(module):
    mine = layer_of(module)
    for line, target, _ in imports_of(module):
        theirs = layer_of(target)
        assert theirs <= mine, (
            f"{MODULES[module].name}:{line}: {module} ({LAYERS[mine][0]}) imports {target} "
            f"({LAYERS[theirs][0]}), a higher layer"
        )


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_private_name_imported_across_modules(module):
    for line, target, name in imports_of(module):
        private = name.startswith("_") and not name.startswith("__")
        private = private or any(p.startswith("_") and not p.startswith("__")
                                 for p in target.split("."))
        assert not private or target == module, (
            f"{MODULES[module].name}:{line}: {module} imports the private {target}:{name}"
        )


def test_the_checker_sees_function_local_imports(tmp_path):
    """The parser must see imports inside functions (the lazy ones)."""
    src = "def f():\n    from igneous.cli import main\n    import igneous.worker\n"
    tree = ast.parse(src)
    found = [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert len(found) == 2
    assert layer_of("igneous.cli") > layer_of("igneous.tasks.mesh") > layer_of("igneous.grid")
