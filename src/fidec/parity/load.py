"""Loading an agent of a reference code base from the user's own checkout, for the run only.

Nothing of the reference code is part of fidec: its agent file is loaded from the checkout the user gives,
with the checkout first on ``sys.path`` while it is imported (so its own ``utils`` package resolves), and the
top-level names it brought are taken out of ``sys.modules`` again afterwards, so they shadow nothing.  The
reference code's own dependencies (ml-collections, distrax) come with ``pip install 'fidec[reference]'``.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from fidec.agents.base import Reference
from fidec.errors import UserError

INSTALL_HINT = "install the reference code's dependencies with `pip install 'fidec[reference]'`"


class ReferenceError(UserError):
    """A checkout is not usable as a reference (the message says why and what to do)."""


@dataclass(frozen=True)
class ReferenceCode:
    """A reference agent loaded from a checkout: its module, class, folder, file hash and git commit."""

    root: Path
    module: ModuleType
    agent_class: Any
    agent_file: str
    sha256: str
    commit: str | None

    def config(self) -> Any:
        """A fresh copy of the reference agent's default config (its ``get_config()``)."""
        return self.module.get_config()

    def create(self, seed: int, observations: Any, actions: Any, config: Any) -> Any:
        return self.agent_class.create(seed, observations, actions, config)


def _top_level_names(root: Path) -> set[str]:
    """Modules a checkout can provide at top level: its packages (folders) and .py files."""
    names = {p.stem for p in root.glob("*.py")}
    names |= {p.name for p in root.iterdir() if p.is_dir() and p.name.isidentifier()}
    return names


@contextlib.contextmanager
def isolated_imports(root: Path) -> Iterator[None]:
    """Import with ``root`` first on ``sys.path``; afterwards drop what that put into ``sys.modules`` under the
    checkout's top-level names and restore what was there (the loaded code keeps its own references)."""
    names = _top_level_names(root)
    own = lambda key: key.split(".")[0] in names
    saved = {k: m for k, m in sys.modules.items() if own(k)}
    for key in saved:
        del sys.modules[key]
    sys.path.insert(0, str(root))
    try:
        yield
    finally:
        sys.path.remove(str(root))
        for key in [k for k in sys.modules if own(k)]:
            del sys.modules[key]
        sys.modules.update(saved)


def git_commit(root: Path) -> str | None:
    """The checkout's HEAD commit, or None (not a git checkout, or no git)."""
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def holds(root: Path, reference: Reference) -> bool:
    """Whether the checkout at ``root`` has the reference's agent file."""
    return (root / reference.agent_file).is_file()


def load_reference(path: str | Path, reference: Reference, hint: str = "") -> ReferenceCode:
    """The reference agent of ``reference`` from the checkout at ``path``; a :class:`ReferenceError` saying
    what is wrong when it is not there or does not import."""
    root = Path(path).expanduser().resolve()
    clone = hint or f"clone it: git clone {reference.repository} DIR"
    if not root.is_dir():
        raise ReferenceError(f"reference checkout {path}: no such folder; {clone}")
    agent_file = root / reference.agent_file
    if not agent_file.is_file():
        raise ReferenceError(
            f"reference checkout {path}: no {reference.agent_file} there, so it is not a checkout of "
            f"{reference.repository}; {clone}"
        )
    name = "fidec_reference_" + reference.agent_file.replace("/", "_").removesuffix(".py")
    spec = importlib.util.spec_from_file_location(name, agent_file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    try:
        with isolated_imports(root):
            spec.loader.exec_module(module)
    except ModuleNotFoundError as exc:
        raise ReferenceError(
            f"reference checkout {path}: {reference.agent_file} needs the module {exc.name!r}, which is not "
            f"installed; {INSTALL_HINT}"
        ) from exc
    except Exception as exc:  # their code, any failure: say where, in one line
        raise ReferenceError(
            f"reference checkout {path}: importing {reference.agent_file} failed ({type(exc).__name__}: {exc}); "
            f"check the checkout and {INSTALL_HINT}"
        ) from exc
    agent_class = getattr(module, reference.agent_class, None)
    missing = [m for m in ("create", "update", "total_loss") if not hasattr(agent_class, m)]
    if agent_class is None or missing or not callable(getattr(module, "get_config", None)):
        raise ReferenceError(
            f"reference checkout {path}: {reference.agent_file} has no get_config() and {reference.agent_class} "
            f"with create, update and total_loss (the interface fidec compares against); {clone}"
        )
    return ReferenceCode(
        root=root,
        module=module,
        agent_class=agent_class,
        agent_file=reference.agent_file,
        sha256=hashlib.sha256(agent_file.read_bytes()).hexdigest(),
        commit=git_commit(root),
    )
