"""Every `fidec ...` command in README.md and docs/ parses as written, so docs and CLI cannot drift.

Each fenced shell block is scanned for lines that run ``fidec`` (backslash continuations joined, ``&&``
chains split, comments dropped).  Every command is parsed by the real CLI (options, types, subcommands)
without running; ``fidec train`` commands that start a new run are also resolved with ``--show-config``,
which checks their presets, task names and ``--set`` keys.  Usage synopses (``[--option ...]``) are skipped.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import typer
from typer import Exit
from typer._click.exceptions import UsageError  # typer >= 0.29 vendors its own click
from typer.testing import CliRunner

from fidec.cli import app

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)\s*$")


def documented_commands() -> list[tuple[str, int, str]]:
    """(file, line, command) of every fidec command in a fenced shell block."""
    found = []
    for path in DOCS:
        lines = path.read_text().splitlines()
        inside, language, i = False, "", 0
        while i < len(lines):
            match = FENCE.match(lines[i].strip())
            if match:
                inside, language = (not inside), match.group(1)
                i += 1
                continue
            if inside and language in ("", "bash", "sh", "shell", "console"):
                start = i
                text = lines[i].strip().removeprefix("$ ")
                while text.endswith("\\") and i + 1 < len(lines):
                    i += 1
                    text = text[:-1] + " " + lines[i].strip()
                text = text.split(" #")[0].strip()
                for part in re.split(r"\s*(?:&&|;)\s*", text):
                    if part.startswith("fidec ") and " [" not in part:
                        found.append((str(path.relative_to(ROOT)), start + 1, part))
            i += 1
    return found


COMMANDS = documented_commands()


def test_the_docs_show_commands_at_all():
    assert len(COMMANDS) >= 20
    assert any(c.startswith("fidec train") for _, _, c in COMMANDS)


def parse_only(args: list[str]):
    """Parse a command line through every (sub)command level without invoking anything."""
    command = typer.main.get_command(app)
    ctx = command.make_context("fidec", list(args), resilient_parsing=False)
    while hasattr(command, "resolve_command"):  # a group: descend into the named subcommand
        rest = [*ctx._protected_args, *ctx.args]
        if not rest:
            break
        name, sub, rest = command.resolve_command(ctx, rest)
        ctx = sub.make_context(name, rest, parent=ctx)
        command = sub
    return ctx


@pytest.mark.parametrize(("source", "line", "command"), COMMANDS, ids=[f"{s}:{n}" for s, n, _ in COMMANDS])
def test_documented_command_parses(source, line, command):
    args = shlex.split(command)[1:]
    try:
        parse_only(args)
    except Exit:
        pass  # --version / --help style eager options
    except UsageError as exc:
        pytest.fail(f"{source}:{line}: `{command}` does not parse: {exc.format_message()}")
    if args[:1] == ["train"] and "--resume" not in args and "--show-config" not in args:
        result = CliRunner().invoke(app, [*args, "--show-config"])
        assert result.exit_code == 0, (
            f"{source}:{line}: `{command}` does not resolve:\n{result.output[-2000:]}"
        )
