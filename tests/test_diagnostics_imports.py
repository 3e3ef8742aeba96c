"""fidec.diagnostics imports at module top, one way: no fidec import inside a function, no cycle."""

from __future__ import annotations

import ast
from pathlib import Path

import fidec.diagnostics

PACKAGE = Path(fidec.diagnostics.__file__).parent


def _fidec_imports(node: ast.AST) -> list[str]:
    names = []
    for child in ast.walk(node):
        if isinstance(child, ast.ImportFrom) and child.module and child.module.startswith("fidec"):
            names += [child.module] + [f"{child.module}.{alias.name}" for alias in child.names]
        elif isinstance(child, ast.Import):
            names += [alias.name for alias in child.names if alias.name.startswith("fidec")]
    return names


def _modules() -> dict[str, ast.Module]:
    return {f"fidec.diagnostics.{p.stem}": ast.parse(p.read_text()) for p in sorted(PACKAGE.glob("*.py"))}


def test_no_fidec_import_inside_a_function():
    local = []
    for name, tree in _modules().items():
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and _fidec_imports(node):
                local.append(f"{name}.{node.name}: {_fidec_imports(node)}")
    assert local == []


def test_the_diagnostics_modules_import_each_other_without_a_cycle():
    modules = _modules()
    graph = {
        name: {target for target in _fidec_imports(tree) if target in modules and target != name}
        for name, tree in modules.items()
    }
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, f"import cycle: {' -> '.join(path + (name,))}"
        if name in done:
            return
        for target in graph[name]:
            visit(target, path + (name,))
        done.add(name)

    for name in graph:
        visit(name, ())


def test_the_diagnostics_import_nothing_above_them():
    above = ("fidec.cli",)
    upward = {
        name: [t for t in _fidec_imports(tree) if t.startswith(above)] for name, tree in _modules().items()
    }
    assert {k: v for k, v in upward.items() if v} == {}
