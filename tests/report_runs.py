"""Shared test helper: synthetic finished run directories with hand-computable scores (report tests)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fidec.training.rundir import RunDir

T1 = "cube-single-play-singletask-task1-v0"
T2 = "cube-single-play-singletask-task2-v0"
UMAZE = "antmaze-umaze-v2"
STEPS = (100, 200, 300, 400, 500)
LABELS = ("fd", "iso", "bc")  # the column order of the tables below

# Scores at STEPS per seed.  Hand-computed below: last3 = mean of the last three, final = the last one.
SCORES = {
    ("fd", T1): {0: [0.0, 0.2, 0.4, 0.6, 0.8], 1: [0.0, 0.2, 0.2, 0.4, 0.6], 2: [0.1, 0.3, 0.5, 0.5, 0.5]},
    ("iso", T1): {0: [0.0, 0.0, 0.2, 0.2, 0.2], 1: [0.0, 0.0, 0.4, 0.4, 0.4]},
    ("fd", T2): {0: [1.0] * 5, 1: [0.8] * 5, 2: [0.9] * 5},
    ("iso", T2): {0: [0.9] * 5, 1: [0.96] * 5},
    ("fd", UMAZE): {0: [50, 70, 80, 90, 100], 1: [40, 60, 70, 80, 60], 2: [0, 0, 60, 70, 80]},
    ("bc", T1): {0: [0.0] * 5, 1: [0.0, 0.0, 0.0, 0.1, 0.1]},
    ("bc", T2): {0: [0.5] * 5, 1: [0.7] * 5},
}


def write_run(
    run_dir: Path,
    agent: str,
    task: str,
    scores: dict[int, list[float]],
    train: dict | None = None,
    steps: tuple[int, ...] = STEPS,
):
    """A finished run directory as `fidec train` leaves it (its summary and metrics, through RunDir)."""
    metric = "normalized_score" if task == UMAZE else "success"
    run = RunDir(run_dir)
    # A checkpoint's own manifest.json (not a sweep manifest): the report must not mistake it for a sweep.
    checkpoint = run.checkpoints_dir / f"step_{steps[-1]:09d}"
    checkpoint.mkdir(parents=True)
    (checkpoint / "manifest.json").write_text(json.dumps({"step": steps[-1], "files": {"arrays.npz": "0"}}))
    rows = [
        {"step": step, "seed": seed, "phase": "offline", metric: value, "episodes": 50}
        for seed, values in scores.items()
        for step, value in zip(steps, values, strict=True)
    ]
    run.metrics_table("eval").append(rows)
    train_rows = [{"step": step, "seed": seed, **values} for (step, seed), values in (train or {}).items()]
    run.metrics_table("train").append(train_rows)
    run.write_summary(
        {"agent": agent, "env": task, "seeds": sorted(scores), "metric": metric, "steps": steps[-1]}
    )


@pytest.fixture
def runs(tmp_path) -> Path:
    """One run directory per (agent, task); fd's runs on T1 are split over two directories (seeds 0-1, 2)."""
    for (agent, task), scores in SCORES.items():
        train = None
        if task == T1:
            train = {
                (500, s): {
                    "delta_abs_mean": 0.1 * (s + 1),
                    "penalty": 0.01,
                    "fisher_condition": 10.0 * (s + 1),
                }
                for s in scores
            }
            train[(400, 0)] = {"delta_abs_mean": 99.0}  # not the last logged value: ignored
        if (agent, task) == ("fd", T1):
            write_run(tmp_path / "plain" / "fd-t1-a", agent, task, {s: scores[s] for s in (0, 1)}, train)
            write_run(
                tmp_path / "plain" / "fd-t1-b", agent, task, {2: scores[2]}, {(500, 2): train[(500, 2)]}
            )
        else:
            write_run(tmp_path / "plain" / f"{agent}-{task}", agent, task, scores, train)
    return tmp_path / "plain"
