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
    # the package root is imported before any fidec module, so it sits at the bottom and imports none;
    # its public names reach their modules lazily (see test_only_the_package_root_loads_modules_by_name)
    ("errors", "__init__"),
    ("files", "stats", "formatting", "config"),
    ("flows", "networks", "encoders", "augment"),
    ("fisher",),
    ("agents", "envs"),
    ("data",),
    ("presets",),
    ("training", "parity"),
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


def is_type_checking_block(node: ast.AST) -> bool:
    """``if TYPE_CHECKING:`` (or ``typing.TYPE_CHECKING``): imports that only type checkers run."""
    if not isinstance(node, ast.If):
        return False
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def type_only_imports(path: Path) -> list[str]:
    """Lines of the file's ``if TYPE_CHECKING:`` blocks that import fidec modules (never run)."""
    tree = ast.parse(path.read_text())
    return [
        ast.unparse(child)
        for node in ast.walk(tree)
        if is_type_checking_block(node)
        for child in ast.walk(node)
        if isinstance(child, ast.Import | ast.ImportFrom) and "fidec" in ast.unparse(child)
    ]


def imports(path: Path) -> list[tuple[str, bool]]:
    """(imported fidec module, inside a function?) for every import in the file that runs (imports
    under ``if TYPE_CHECKING:`` are for type checkers only: see :func:`type_only_imports`)."""
    tree = ast.parse(path.read_text())
    found: list[tuple[str, bool]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if is_type_checking_block(child):
                continue
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


def test_only_the_package_root_loads_modules_by_name():
    """The root's lazy index is the one place a fidec module is loaded on demand (``importlib`` by name)
    or imported for type checkers only; everywhere else imports are plain, at the top, down the layers."""
    root = PACKAGE / "__init__.py"
    found = []
    for path in PACKAGE.rglob("*.py"):
        if path == root:
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and ast.unparse(node.func).endswith(
                ("import_module", "__import__")
            ):
                found.append(f"{module_name(path)}: {ast.unparse(node)}")
        found.extend(f"{module_name(path)}: {line} (type-only)" for line in type_only_imports(path))
    assert not found, (
        "modules loaded by name or for type checkers only outside the package root:\n"
        + "\n".join(sorted(found))
    )


# -- one home per formula (docs/architecture.md): expressions that compute a formula, and its one module -----


def _calls(node: ast.AST, names: set[str]) -> bool:
    """Whether ``node`` calls a function or method of one of ``names`` anywhere inside."""
    for sub in ast.walk(node):
        if isinstance(sub, ast.Call):
            func = sub.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if name in names:
                return True
    return False


def _divides_by_a_trace(node: ast.AST) -> bool:
    """F / (tr F / d ...): a division whose divisor takes a trace (a trace normalisation)."""
    return (
        isinstance(node, ast.BinOp)
        and isinstance(node.op, ast.Div)
        and _calls(node.right, {"trace", "mean_eigenvalue"})
    )


def _squares_one_minus_t(node: ast.AST) -> bool:
    """(1 - t) ** 2: the noise variance of the flow path's marginal, t^2 S + (1 - t)^2 I for a Gaussian."""
    return (
        isinstance(node, ast.BinOp)
        and isinstance(node.op, ast.Pow)
        and isinstance(node.left, ast.BinOp)
        and isinstance(node.left.op, ast.Sub)
        and isinstance(node.left.left, ast.Constant)
        and node.left.left.value == 1
        and isinstance(node.right, ast.Constant)
        and node.right.value == 2
    )


# formula -> (what computes it, the module that owns it)
FORMULAS = {
    "the trace normalisation F / max(tr F / d, eps)": (_divides_by_a_trace, "fidec.fisher"),
    "the Gaussian path marginal t^2 S + (1 - t)^2 I (velocity, score, Fisher)": (
        _squares_one_minus_t,
        "fidec.flows",
    ),
}


def formula_sites(source: str) -> dict[str, list[int]]:
    """Lines of ``source`` that compute each formula of :data:`FORMULAS`."""
    tree = ast.parse(source)
    return {
        formula: [node.lineno for node in ast.walk(tree) if computes(node)]
        for formula, (computes, _) in FORMULAS.items()
    }


def test_the_formula_checks_recognise_a_copy():
    copy = "f = fisher / (jnp.trace(fisher, axis1=-2, axis2=-1)[:, None, None] / d + eps)\n"
    copy += "gain = (t * cov - (1.0 - t) * eye) @ jnp.linalg.inv(t**2 * cov + (1.0 - t) ** 2 * eye)\n"
    assert list(formula_sites(copy).values()) == [[1], [2]]
    assert formula_sites("kl = 0.5 * (np.trace(prec @ cov) - d)\nx = (1.0 - t) * x0 + t * a\n") == {
        formula: [] for formula in FORMULAS
    }


def test_each_formula_is_computed_in_its_home_only():
    elsewhere = [
        f"{module_name(path)}:{line} computes {formula}: call {owner}"
        for path in PACKAGE.rglob("*.py")
        for formula, lines in formula_sites(path.read_text()).items()
        for owner in [FORMULAS[formula][1]]
        if module_name(path) != owner
        for line in lines
    ]
    assert not elsewhere, "formulas computed outside their home:\n" + "\n".join(elsewhere)
    for formula, (_, owner) in FORMULAS.items():  # and the home does compute it
        assert formula_sites((SRC / Path(*owner.split("."))).with_suffix(".py").read_text())[formula], formula


# -- the registry is the one list of agents (docs/architecture.md) ----------------------------------------

# A command's default agent may be named where the command chooses it; nowhere else outside its own module.
AGENT_NAME_DEFAULTS = {
    ("training/config.py", "fd"),  # DEFAULT_AGENT: fidec train's default agent
    ("bench/settings.py", "fd"),  # the agent fidec bench times by default
    ("bench/settings.py", "iso"),  # the profile's variant without a Fisher metric
}


def agent_name_literals() -> list[tuple[str, int, str]]:
    """(file, line, name) of every string literal in src/fidec equal to an agent's name, outside that agent's
    own module."""
    from fidec.agents import REGISTRY

    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in REGISTRY:
                if relative.parts[0] == "agents" and relative.stem == node.value:
                    continue
                found.append((relative.as_posix(), node.lineno, node.value))
    return found


def test_no_agent_name_is_spelled_outside_its_own_module_but_a_commands_default():
    """The registry is the only list of agents: the CLI's choices, bench, summaries, diagnostics and tests read
    it, so adding an agent touches its module and one registry line."""
    spelled = [f"{file}:{line} {name!r}" for file, line, name in agent_name_literals()]
    unexpected = [
        s
        for s, (file, _, name) in zip(spelled, agent_name_literals(), strict=True)
        if (file, name) not in AGENT_NAME_DEFAULTS
    ]
    assert not unexpected, "agent names spelled outside their module:\n" + "\n".join(unexpected)


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
