"""A short offline-to-online run of every agent writes the whole run directory and a finite summary."""

from __future__ import annotations

import json
import math

import pytest

from fidec.agents import agent_names
from fidec.training import evaluate_run, make_train_config, train
from fidec.training.toy import evaluate_toy, make_toy_env, toy_dataset

DATASET = toy_dataset(10)
FILES = (
    "config.json",
    "train.log",
    "summary.json",
    "plots/learning_curves.png",
    "metrics/train.jsonl",
    "metrics/train.csv",
    "metrics/eval.jsonl",
    "metrics/eval.csv",
)


@pytest.mark.slow
@pytest.mark.parametrize("name", agent_names())
def test_each_agent_runs_offline_then_online_and_writes_every_file(name, tmp_path):
    config = make_train_config(
        name,
        "toy-point",
        presets=["tiny"],
        overrides={"run_dir": str(tmp_path / name), "steps": 50, "online_steps": 25, "progress": False},
    )
    result = train(config, dataset=DATASET, evaluator=evaluate_toy, env_factory=make_toy_env, console=False)
    for file in FILES:
        assert (result.run_dir / file).is_file(), file
    assert [p.name for p in sorted((result.run_dir / "checkpoints").iterdir())][-1] == "step_000000075"
    summary = json.loads((result.run_dir / "summary.json").read_text())
    assert summary["agent"] == name and summary["online_steps"] == 25
    assert 0.0 <= summary["aggregate"]["final_mean"] <= 1.0
    rows = [json.loads(line) for line in (result.run_dir / "metrics/train.jsonl").read_text().splitlines()]
    assert all(math.isfinite(v) for r in rows for k, v in r.items() if k == "actor_loss")
    assert {r["phase"] for r in rows} == {"offline", "online"}
    # Evaluating the saved run reproduces the run's own last evaluation.
    record = evaluate_run(result.run_dir, evaluator=evaluate_toy)
    last = [json.loads(line) for line in (result.run_dir / "metrics/eval.jsonl").read_text().splitlines()][-1]
    assert record["step"] == 75 and record["per_seed"]["0"]["return_mean"] == last["return_mean"]
