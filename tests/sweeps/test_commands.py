"""``fidec sweep`` faults a user can meet: each is one line and exit code 2, before any work, losing
nothing."""

from __future__ import annotations

import json
import sys

import pytest
import typer
from typer.testing import CliRunner

from fidec.errors import EXIT_USER_ERROR
from fidec.files import FileLock
from fidec.sweeps.commands import sweep_command
from fidec.sweeps.manifest import LOCK_NAME, MANIFEST_NAME

TASK = "cube-single-play-singletask-task1-v0"


def invoke(*args: str):
    app = typer.Typer()
    app.command("sweep")(sweep_command)
    app.command("other")(lambda: None)
    return CliRunner().invoke(app, ["sweep", *args], env={"COLUMNS": "200"})


def one_line(output: str) -> str:
    return " ".join(output.split())


@pytest.fixture
def spec_file(tmp_path):
    spec = tmp_path / "s.toml"
    spec.write_text(
        f'agents = ["fd"]\ntasks = ["{TASK}"]\nseeds = 1\nscale = "tiny"\nout_dir = "{tmp_path / "out"}"\n'
    )
    return spec


def test_without_ray_the_sweep_says_how_to_install_it_before_any_work(spec_file, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails as if Ray were not installed
    result = invoke(str(spec_file))
    assert result.exit_code == EXIT_USER_ERROR, result.output
    assert "pip install 'fidec[sweep]'" in one_line(result.output)
    assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists()  # nothing was written
    # A dry run needs no Ray.
    listed = invoke(str(spec_file), "--dry-run")
    assert listed.exit_code == 0 and f"fd__{TASK}__s0" in listed.output


def test_a_sweep_folder_in_use_is_refused_with_exit_code_2(spec_file, tmp_path):
    pytest.importorskip("ray")
    with FileLock(tmp_path / "out" / LOCK_NAME):
        result = invoke(str(spec_file))
    assert result.exit_code == EXIT_USER_ERROR
    assert "another fidec sweep holds" in one_line(result.output)
    assert not (tmp_path / "out" / MANIFEST_NAME).exists()


def test_a_damaged_manifest_is_named_and_kept(spec_file, tmp_path):
    pytest.importorskip("ray")
    manifest = tmp_path / "out" / MANIFEST_NAME
    manifest.parent.mkdir()
    manifest.write_text('{"format": 1, "trials": ')
    for args in ([str(spec_file)], [str(spec_file), "--dry-run"]):
        result = invoke(*args)
        assert result.exit_code == EXIT_USER_ERROR, result.output
        assert f"{str(manifest)!r} is not valid JSON" in one_line(result.output)
    assert manifest.read_text() == '{"format": 1, "trials": '  # untouched


def test_an_out_dir_that_is_a_file_is_refused_before_any_work(spec_file, tmp_path):
    pytest.importorskip("ray")
    (tmp_path / "out").write_text("not a folder")
    result = invoke(str(spec_file))
    assert result.exit_code == EXIT_USER_ERROR
    assert "is a file; give a folder" in one_line(result.output)
    assert (tmp_path / "out").read_text() == "not a folder"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('agents = ["fdd"]\n', "unknown agent 'fdd' (did you mean 'fd'?)"),
        ("agents = [fd", "is not valid TOML"),
        (
            f'agents = ["fd"]\ntasks = ["{TASK}"]\ntrain = {{ "agent.lr" = "fast" }}\n',
            "agent.lr: expected a number",
        ),
    ],
)
def test_spec_errors_are_one_line_with_exit_code_2(tmp_path, text, needle):
    spec = tmp_path / "bad.toml"
    spec.write_text(text)
    result = invoke(str(spec))
    assert result.exit_code == EXIT_USER_ERROR
    assert result.output.startswith("error: sweep spec") and needle in one_line(result.output)
    assert "Traceback" not in result.output


def test_the_manifest_of_a_dry_run_is_only_read(spec_file, tmp_path):
    manifest = tmp_path / "out" / MANIFEST_NAME
    manifest.parent.mkdir()
    record = {
        "trial_id": f"fd__{TASK}__s0",
        "label": "fd",
        "agent": "fd",
        "task": TASK,
        "seeds": [0],
        "run_dir": f"runs/fd__{TASK}__s0",
        "fingerprint": "x",
        "state": "failed",
    }
    manifest.write_text(json.dumps({"format": 1, "trials": {record["trial_id"]: record}}))
    before = manifest.read_bytes()
    listed = invoke(str(spec_file), "--dry-run")
    assert listed.exit_code == 0 and "failed" in listed.output
    assert manifest.read_bytes() == before
