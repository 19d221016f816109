"""The package's layers hold: lower layers never import the ones above (docs/architecture.md).

Imports are read from the source (module-level and inside functions alike), so a lazy import
that crosses a layer is caught too.
"""

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "transformer_jax"
# package -> packages above it that it must not import.
FORBIDDEN = {
    "models": ("tasks", "run", "train", "data", "decoding"),
    "data": ("tasks", "run", "train", "decoding", "models"),
    "metrics": ("tasks", "run", "train", "decoding", "models"),
    "train": ("tasks", "run", "decoding"),
    "decoding": ("tasks", "run", "train"),
    "tasks": ("run",),
    "compress": ("tasks", "run", "train", "decoding", "models", "data", "interpret"),
}


def _imports(path: pathlib.Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {n for n in names if n.startswith("transformer_jax.")}


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_lower_layers_do_not_import_higher_ones(package):
    crossings = []
    for path in sorted((PACKAGE / package).rglob("*.py")):
        for name in _imports(path):
            top = name.split(".")[1]
            if top in FORBIDDEN[package]:
                crossings.append(f"{path.relative_to(PACKAGE)} imports {name}")
    assert not crossings, "\n".join(crossings)


def test_the_scan_sees_imports():
    assert "transformer_jax.train.losses" in _imports(PACKAGE / "tasks" / "lm.py")
