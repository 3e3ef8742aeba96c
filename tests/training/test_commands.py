"""``fidec train`` / ``fidec eval``: help and config listing, clear errors, and SIGKILL-then-resume equality."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from typer.testing import CliRunner

from fidec.cli import app
from fidec.training.commands import parse_assignments

runner = CliRunner()
ENV = "cube-single-play-singletask-task1-v0"


def test_help_points_to_overrides_and_presets():
    result = runner.invoke(app, ["train", "--help"], terminal_width=200)
    assert result.exit_code == 0
    for needle in ("--set", "--show-config", "--resume", "--seeds", "--online-steps", "paper"):
        assert needle in result.output


def test_show_config_prints_every_resolved_key():
    result = runner.invoke(
        app,
        ["train", "--preset", "paper", "--agent", "fql", "--set", "agent.lr=1e-4", "--show-config"],
        terminal_width=250,
    )
    assert result.exit_code == 0, result.output
    assert "1000000" in result.output and "0.0001" in result.output
    # FQL's own keys, and none of FD's.
    assert "agent.alpha" in result.output and "agent.q_agg" in result.output
    assert "agent.fisher" not in result.output and "agent.target_divergence" not in result.output


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--agent", "sac"], "available agents: fd, iso, fql, bcflow, iql, rebrac, ifql"),
        (["--preset", "huge"], "scale presets: tiny, cpu, paper"),
        (["--set", "agent.lr"], "--set expects KEY=VALUE"),
        (["--set", "agent.nope=1"], "unknown config key 'agent.nope'"),
        (["--env", "cube-singel-play-singletask-task1-v0", "--preset", "tiny"], "Did you mean"),
        (["--steps", "0"], "nothing to train"),
    ],
)
def test_bad_inputs_exit_2_with_the_valid_choices(args, needle, tmp_path):
    result = runner.invoke(app, ["train", "--run-dir", str(tmp_path / "r"), *args], terminal_width=400)
    assert result.exit_code == 2, result.output
    assert needle in result.output


def test_refuses_a_non_empty_run_dir_and_a_bad_resume(tmp_path):
    (tmp_path / "x.txt").write_text("keep me")
    result = runner.invoke(app, ["train", "--preset", "tiny", "--run-dir", str(tmp_path)], terminal_width=400)
    assert result.exit_code == 2 and "is not empty" in result.output
    assert (tmp_path / "x.txt").read_text() == "keep me"
    result = runner.invoke(app, ["train", "--resume", str(tmp_path)], terminal_width=400)
    assert result.exit_code == 2 and "not a fidec run directory" in result.output
    result = runner.invoke(app, ["eval", str(tmp_path)], terminal_width=400)
    assert result.exit_code == 2 and "not a fidec run directory" in result.output


def test_parse_assignments():
    assert parse_assignments(["a.b=1", "c = x=y"]) == {"a.b": "1", "c": "x=y"}


# ---------------------------------------------------------------------------------------- kill -9


def _fake_cube_dataset(path, n: int = 2000):
    rng = np.random.default_rng(0)
    observations = rng.normal(size=(n, 28)).astype(np.float32)
    np.savez(
        path,
        observations=observations,
        actions=rng.uniform(-1, 1, (n, 5)).astype(np.float32),
        rewards=-np.ones(n, np.float32),
        masks=np.ones(n, np.float32),
        terminals=(np.arange(n) % 200 == 199).astype(np.float32),
        next_observations=(observations + 0.01).astype(np.float32),
    )


def _cli(*args) -> list[str]:
    return [sys.executable, "-m", "fidec.cli", *args]


def _train_args(dataset, run_dir) -> list[str]:
    return [
        "train",
        "--agent",
        "bcflow",
        "--env",
        ENV,
        "--dataset",
        str(dataset),
        "--preset",
        "tiny",
        "--steps",
        "1600",
        "--online-steps",
        "200",
        "--seeds",
        "0,1",
        "--eval-episodes",
        "1",
        "--run-dir",
        str(run_dir),
        "--no-progress",
        "--set",
        "log_interval=20",
        "--set",
        "eval_interval=400",
        "--set",
        "save_interval=40",
    ]


def _final_arrays(run_dir):
    checkpoints = sorted((run_dir / "checkpoints").glob("step_*"))
    with np.load(checkpoints[-1] / "arrays.npz") as file:
        return checkpoints[-1].name, {k: file[k] for k in file.files}


@pytest.mark.slow
@pytest.mark.env
def test_sigkill_at_a_random_moment_then_resume_equals_uninterrupted(tmp_path):
    env = {
        **os.environ,
        "JAX_COMPILATION_CACHE_DIR": str(tmp_path / "jax-cache"),
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
        "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl"),
    }
    dataset = tmp_path / "data.npz"
    _fake_cube_dataset(dataset)
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    done = subprocess.run(_cli(*_train_args(dataset, reference)), env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "summary" in done.stderr

    process = subprocess.Popen(
        _cli(*_train_args(dataset, killed)), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 300
    while not list((killed / "checkpoints").glob("step_*")) and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(random.uniform(0.0, 2.0))
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the run finished before it could be killed; lengthen it"

    resumed = subprocess.run(
        _cli("train", "--resume", str(killed), "--no-progress"), env=env, capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming" in resumed.stderr
    for name in ("metrics/train.jsonl", "metrics/train.csv", "metrics/eval.jsonl", "metrics/eval.csv"):
        assert (reference / name).read_bytes() == (killed / name).read_bytes(), name
    name_a, arrays_a = _final_arrays(reference)
    name_b, arrays_b = _final_arrays(killed)
    assert name_a == name_b == "step_000001800" and arrays_a.keys() == arrays_b.keys()
    for key in arrays_a:
        assert np.array_equal(arrays_a[key], arrays_b[key]), key

    # fidec eval on the saved run reproduces the run's own final evaluation.
    evaluated = subprocess.run(
        _cli("eval", str(killed), "--episodes", "1"), env=env, capture_output=True, text=True
    )
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    record = json.loads(next((killed / "evals").glob("step_000001800-onestep-1ep.json")).read_text())
    final_rows = [json.loads(line) for line in (killed / "metrics/eval.jsonl").read_text().splitlines()][-2:]
    for row in final_rows:
        assert record["per_seed"][str(row["seed"])]["return_mean"] == row["return_mean"]
