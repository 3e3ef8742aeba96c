"""The ``fidec`` command line: version, help and the fisher-check diagnostic."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from fidec import __version__
from fidec.cli import app

runner = CliRunner()


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"fidec {__version__}"


def test_help_lists_the_commands():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0, result.output
    assert "fisher-check" in result.output
    assert "--version" in result.output


def test_fisher_check_prints_the_table():
    result = runner.invoke(app, ["fisher-check", "--steps", "300"])
    assert result.exit_code == 0, result.output
    assert "Trace-normalised Fisher metric" in result.output
    assert "tweedie" in result.output and "velocity" in result.output


def test_unknown_option_fails():
    result = runner.invoke(app, ["fisher-check", "--no-such-option"])
    assert result.exit_code != 0


@pytest.mark.parametrize("command", ["train", "eval", "sweep", "report", "data", "bench", "diagnose", "demo"])
def test_every_subsystem_command_is_registered_with_help(command):
    result = CliRunner().invoke(app, [command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output and command in result.output
