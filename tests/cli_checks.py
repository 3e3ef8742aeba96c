"""What every campaign case checks of a ``fidec`` command, in-process (Typer's runner) or as a process.

A refused command exits with the expected code, prints exactly one ``error:`` line that names the cause and
no traceback; :func:`digest` shows that its inputs are byte-identical afterwards.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from typer.testing import CliRunner

import fidec
from fidec.cli import app
from fidec.errors import EXIT_USER_ERROR

TESTS = Path(__file__).resolve().parent


def digest(folder: Path) -> dict[str, str]:
    """SHA-256 of every file under ``folder`` (the run lock aside: commands take it, which is no change)."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


def invoke(args: Sequence[str]) -> tuple[int, str]:
    """(exit code, stdout + stderr) of ``fidec ARGS`` run in this process."""
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "300"})
    return result.exit_code, result.output


def check_refusal(
    code: int, output: str, expected: str, exit_code: int = EXIT_USER_ERROR, what: str = ""
) -> str:
    """Assert the exit code, exactly one ``error:`` line holding ``expected`` (case-insensitive), no
    traceback; return the error line."""
    output = output.strip()
    assert code == exit_code, f"`{what}` exited {code}, not {exit_code}:\n{output[-3000:]}"
    assert "Traceback" not in output, output[-3000:]
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, f"expected one 'error:' line from `{what}`, got:\n{output[-3000:]}"
    assert expected.lower() in errors[0].lower(), f"{expected!r} not in {errors[0]!r}"
    return errors[0]


def fails(args: Sequence[str], expected: str, exit_code: int = EXIT_USER_ERROR) -> str:
    """Run ``fidec ARGS`` in this process and check its refusal (see :func:`check_refusal`)."""
    code, output = invoke(args)
    return check_refusal(code, output, expected, exit_code, "fidec " + " ".join(map(str, args)))


def process_env(cache: Path | None = None, **extra: str) -> dict[str, str]:
    """The environment of a ``fidec`` process: the fidec this process imported first, JAX on the CPU, compiled
    programs shared through ``cache`` (the persistent compilation cache)."""
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "COLUMNS": "300", **extra}
    env["PYTHONPATH"] = os.pathsep.join([str(Path(fidec.__file__).parents[1]), env.get("PYTHONPATH", "")])
    if cache is not None:
        env["JAX_COMPILATION_CACHE_DIR"] = str(cache)
        env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    return env


def toy_command(*args: str) -> list[str]:
    """``fidec ARGS`` as a process, with the toy task installed (:mod:`toy_cli`)."""
    return [sys.executable, str(TESTS / "toy_cli.py"), *args]


def run_process(
    command: Sequence[str], env: dict[str, str], timeout: float = 300, **kwargs
) -> subprocess.CompletedProcess:
    """Run a command to its end (``timeout`` seconds at most), its output captured as text."""
    return subprocess.run(list(command), env=env, capture_output=True, text=True, timeout=timeout, **kwargs)
