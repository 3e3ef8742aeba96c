"""A campaign of bad inputs through the real CLI: every one exits with code 2 and one clear line that names
what is wrong, and no input file is changed.

Run directories come from a short toy run (no MuJoCo); the dataset cases use small files written here.  The
second campaign (signals, concurrent use, hand-edited files, odd paths, a broken console) is
``test_campaign_faults.py``; both check each case with :mod:`cli_checks`.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from cli_checks import digest, fails
from fidec.training import RunDir, make_train_config, train
from fidec.training.toy import evaluate_toy, make_toy_env, toy_dataset

TASK = "cube-single-play-singletask-task1-v0"


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("campaign") / "run"
    config = make_train_config(
        "fql",
        "toy-point",
        presets=["tiny"],
        overrides={"run_dir": str(run_dir), "seeds": "0", "progress": False, "steps": 50},
    )
    train(config, dataset=toy_dataset(10), evaluator=evaluate_toy, env_factory=make_toy_env, console=False)
    return run_dir


CONFIG_CASES = [
    (["train", "--env", "cube-singel-play-singletask-task1-v0", "--show-config"], "did you mean"),
    (["train", "--set", "agent.lr=inf", "--show-config"], "finite"),
    (["train", "--set", "agent.fisher.damping=nan", "--show-config"], "finite"),
    (["train", "--set", "agent.nosuch=1", "--show-config"], "did you mean"),
    (["train", "--set", "agent.fisher.t_esp=0.9", "--show-config"], "agent.fisher.t_eps"),
    (["train", "--set", "agent.q_agg=max", "--show-config"], "not one of"),
    (["train", "--set", "agent.lr", "--show-config"], "KEY=VALUE"),
    (["train", "--seeds", "0,0", "--show-config"], "distinct"),
    (["train", "--seeds", "0,-1", "--show-config"], "seeds must be >= 0"),
    (["train", "--preset", "officail", "--show-config"], "unknown preset"),
    (["train", "--preset", "tiny", "--preset", "paper", "--show-config"], "at most one scale"),
    (["train", "--agent", "sac", "--show-config"], "unknown agent"),
    (["train", "--steps", "0", "--show-config"], "nothing to train"),
    (["train", "--set", "eval_interval=333", "--show-config"], "multiple of log_interval"),
    (["train", "--agent", "fql", "--action-mode", "iterative", "--show-config"], "acts with the modes"),
    (["train", "--set", "action_policy=fix", "--show-config"], "not one of"),
]


@pytest.mark.parametrize(("args", "expected"), CONFIG_CASES, ids=[" ".join(a[1:3]) for a, _ in CONFIG_CASES])
def test_bad_settings_are_one_line_errors(args, expected):
    fails(args, expected)


def test_bad_run_directories(toy_run, tmp_path):
    before = digest(toy_run)
    fails(["train", "--resume", str(tmp_path / "nowhere")], "does not exist")
    (tmp_path / "empty").mkdir()
    fails(["train", "--resume", str(tmp_path / "empty")], "not a fidec run directory")
    fails(["train", "--resume", str(toy_run), "--run-dir", str(tmp_path / "y")], "drop --run-dir")
    fails(["train", "--resume", str(toy_run), "--set", "agent.lr=1e-3"], "cannot change")
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "keep.txt").write_text("mine")
    fails(["train", "--env", TASK, "--run-dir", str(notes), "--no-generate-dataset"], "not empty")
    assert (notes / "keep.txt").read_text() == "mine"
    fails(["eval", str(toy_run), "--action-mode", "iterative"], "action modes")
    fails(["diagnose", "kl", "--run-dir", str(toy_run)], "residual")
    assert digest(toy_run) == before
    claimed = RunDir.claim(
        tmp_path / "claimed", make_train_config(overrides={"run_dir": str(tmp_path / "claimed")})
    )
    with claimed.lock():  # another process trains this run: refused before any data is loaded
        fails(["train", "--resume", str(claimed.root)], "another fidec process is using the run")


def test_damaged_run_records_are_named(toy_run, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(toy_run, copy)
    config = copy / "config.json"
    config.write_text(config.read_text()[:50])
    line = fails(["train", "--resume", str(copy)], "config.json")
    assert "not valid JSON" in line
    damaged = tmp_path / "no-checkpoints"
    shutil.copytree(toy_run, damaged)
    for folder in (damaged / "checkpoints").glob("step_*"):
        shutil.rmtree(folder)
    fails(["eval", str(damaged)], "no usable checkpoint")


def test_bad_datasets(tmp_path):
    missing = tmp_path / "missing.npz"
    fails(
        ["train", "--env", TASK, "--dataset", str(missing), "--run-dir", str(tmp_path / "a")], "missing.npz"
    )
    assert not (tmp_path / "a" / "checkpoints").exists() or not list(
        (tmp_path / "a" / "checkpoints").iterdir()
    )
    bad = tmp_path / "bad.npz"
    np.savez(bad, observations=np.zeros((10, 28), np.float32))
    before = bad.read_bytes()
    fails(["data", "info", str(bad)], "actions")
    assert bad.read_bytes() == before


def test_bad_sweep_and_report_inputs(tmp_path):
    spec = tmp_path / "spec.toml"
    spec.write_text(
        'name = "x"\nagents = ["fd"]\ntasks = ["cube-single-play-singletask-task1-v0"]\nseeds = [0]\nsteeps = 3\n'
    )
    fails(["sweep", str(spec), "--dry-run"], "steeps")
    fails(["sweep", str(tmp_path / "none.toml"), "--dry-run"], "none.toml")
    fails(["report", str(tmp_path / "nothing-here")], "does not exist")
    out_file = tmp_path / "out-is-a-file"
    out_file.write_text("x")
    fails(["report", str(tmp_path), "--out", str(out_file)], "is a file")
