"""The package's shape (docs/architecture.md): imports flow one way down the layers, no import cycles, and
no fidec module imported inside a function (an optional heavy dependency may be; fidec modules may not).

Checked from the source (AST), so ``python -m pytest tests/test_architecture.py`` is the command that
verifies a restructuring.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "fidec"

# Lowest first.  A unit (top-level module or subpackage of fidec) imports only units of lower layers.
LAYERS: list[tuple[str, ...]] = [
    ("errors",),
    ("files", "stats", "formatting", "config"),
    ("flows", "networks", "encoders", "augment"),
    ("fisher",),
    ("__init__",),  # the package root (its public API: flows, fisher, networks)
    ("agents", "envs"),
    ("data",),
    ("presets",),
    ("training",),
    ("sweeps", "diagnostics", "bench"),
    ("reports",),  # reads sweep folders through fidec.sweeps.manifest
    ("cli",),
]
LAYER_OF = {unit: i for i, units in enumerate(LAYERS) for unit in units}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def unit_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def imports(path: Path) -> list[tuple[str, bool]]:
    """(imported fidec module, inside a function?) for every import in the file."""
    tree = ast.parse(path.read_text())
    found: list[tuple[str, bool]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            nested = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            if isinstance(child, ast.Import):
                found.extend((a.name, in_function) for a in child.names if a.name.split(".")[0] == "fidec")
            elif isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                if child.module.split(".")[0] == "fidec":
                    # "from fidec.agents import fd" imports the module fidec.agents.fd when it is one
                    for alias in child.names:
                        candidate = f"{child.module}.{alias.name}"
                        is_module = (SRC / Path(*candidate.split("."))).with_suffix(".py").exists() or (
                            SRC / Path(*candidate.split("."))
                        ).is_dir()
                        found.append((candidate if is_module else child.module, in_function))
            visit(child, nested)

    visit(tree, False)
    return found


def graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = defaultdict(set)
    for path in PACKAGE.rglob("*.py"):
        for target, _ in imports(path):
            edges[module_name(path)].add(target)
    return edges


def test_every_unit_has_a_layer():
    units = {unit_of(module_name(p)) for p in PACKAGE.rglob("*.py")}
    assert units <= set(LAYER_OF), f"add {sorted(units - set(LAYER_OF))} to LAYERS (and docs/architecture.md)"


def test_imports_flow_down_the_layers():
    upward = []
    for source, targets in graph().items():
        for target in targets:
            a, b = unit_of(source), unit_of(target)
            if a != b and LAYER_OF[b] >= LAYER_OF[a]:
                upward.append(f"{source} -> {target}")
    assert not upward, "imports that do not flow down the layers:\n" + "\n".join(sorted(upward))


def test_no_import_cycles_between_modules():
    edges = graph()
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def walk(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges.get(node, ())):
            # a package's __init__ importing its own submodules is how a package exports: not a cycle
            if nxt.startswith(node + "."):
                continue
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt) :], nxt] if nxt in stack else [node, nxt])
            elif state.get(nxt) is None:
                walk(nxt, [*stack, nxt])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            walk(node, [node])
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_no_fidec_module_is_imported_inside_a_function():
    local = [
        f"{module_name(path)} imports {target}"
        for path in PACKAGE.rglob("*.py")
        for target, in_function in imports(path)
        if in_function
    ]
    assert not local, "function-local imports of fidec modules:\n" + "\n".join(sorted(local))


# -- one owner per artefact: file names -------------------------------------------------------------------

# Each artefact's file and folder names, and the modules that may spell them (docs/architecture.md, "One owner
# per artefact"); everyone else asks the owner (``RunDir``, ``fidec.data.paths``, ...).  A name counts where a
# string literal (or a literal piece of an f-string) is exactly the name; suffixes (".npz") also where a literal
# ends with them, prefixes ("step_") where one starts with them.  Messages that mention a file are free text.
FILE_NAME_OWNERS: dict[str, set[str]] = {
    # a run directory
    "config.json": {"training/rundir.py"},
    "summary.json": {"training/rundir.py", "diagnostics/demo.py"},  # the demo writes its own summary
    "train.log": {"training/rundir.py"},
    "wandb.json": {"training/rundir.py"},
    "metrics": {"training/rundir.py"},
    "checkpoints": {"training/rundir.py"},
    "evals": {"training/rundir.py"},
    "videos": {"training/rundir.py"},
    "plots": {"training/rundir.py"},
    # checkpoints (their folders' prefix is shared with the evaluation records, both owned by training)
    "step_": {"training/rundir.py", "training/checkpoint.py"},
    "arrays.npz": {"training/checkpoint.py"},
    # a sweep folder (a checkpoint has a manifest.json of its own)
    "manifest.json": {"sweeps/manifest.py", "training/checkpoint.py"},
    ".sweep.lock": {"sweeps/manifest.py"},
    "set-aside": {"sweeps/manifest.py"},
    # datasets
    ".npz": {"data/paths.py", "training/checkpoint.py"},
    "-val.npz": {"data/paths.py"},
    ".hdf5": {"data/paths.py"},
    ".h5": {"data/paths.py"},
    "main_data.hdf5": {"data/paths.py"},
    "metadata.json": {"data/paths.py"},
    ".generation.json": {"data/paths.py"},
}


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the docstring constants of a module, its classes and functions."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def _spells(literal: str, name: str) -> bool:
    if name.startswith((".", "-")):
        return literal.endswith(name)
    if name.endswith("_"):
        return literal.startswith(name)
    return literal == name


def test_file_names_are_spelled_only_by_their_owner():
    spelled = []
    for path in sorted(PACKAGE.rglob("*.py")):
        where = str(path.relative_to(PACKAGE))
        tree = ast.parse(path.read_text())
        docstrings = _docstrings(tree)
        for node in ast.walk(tree):
            if (
                not isinstance(node, ast.Constant)
                or not isinstance(node.value, str)
                or id(node) in docstrings
            ):
                continue
            for name, owners in FILE_NAME_OWNERS.items():
                if where not in owners and _spells(node.value, name):
                    spelled.append(
                        f"{where}:{node.lineno} spells {name!r} ({node.value!r}); ask its owner {sorted(owners)}"
                    )
    assert not spelled, "file names spelled outside their owner:\n" + "\n".join(spelled)
