"""One attempt of a trial (``execute_trial``, here in this process, without Ray): resume from a checkpoint,
set aside what a killed attempt left (never delete it), refuse to run beside an earlier attempt."""

from __future__ import annotations

import json
from pathlib import Path

from fidec.files import FileLock
from fidec.sweeps.manifest import set_aside_path, trial_lock_path
from fidec.sweeps.runner import execute_trial
from fidec.sweeps.spec import parse_spec
from fidec.training.checkpoint import PREFIX
from fidec.training.rundir import RunDir

TASK = "cube-single-play-singletask-task1-v0"


def a_trial(tmp_path: Path):
    spec = parse_spec({"agents": ["fd"], "tasks": [TASK], "scale": "tiny", "out_dir": str(tmp_path)})
    return spec.trials()[0]


def finishing_trial(trial, run_dir: Path, resume: bool):
    """Records how it was called and finishes the run."""
    run = RunDir(run_dir)
    run.root.mkdir(parents=True, exist_ok=True)
    run.write_summary({"resumed": resume, "found": sorted(p.name for p in run.root.iterdir())})
    return resume


def attempt(tmp_path: Path, trial, run: RunDir):
    aside = set_aside_path(tmp_path, trial.trial_id)
    outcome = execute_trial(
        finishing_trial, trial, str(run.root), str(tmp_path / "logs" / "t.log"), str(aside)
    )
    return outcome, aside


def test_an_attempt_killed_before_its_first_checkpoint_is_set_aside_not_deleted(tmp_path):
    trial = a_trial(tmp_path)
    run = RunDir(tmp_path / "runs" / trial.trial_id)
    run.metrics_dir.mkdir(parents=True)
    (run.metrics_dir / "train.jsonl").write_text('{"step": 25}\n')  # logged, then killed before a checkpoint
    outcome, aside = attempt(tmp_path, trial, run)
    assert outcome.ok and outcome.resumed is False, outcome.error
    assert (aside / "metrics" / "train.jsonl").read_text() == '{"step": 25}\n'  # kept for inspection
    assert json.loads(run.summary_path.read_text()) == {"resumed": False, "found": []}  # a clean start
    assert "without a checkpoint: moved to" in (tmp_path / "logs" / "t.log").read_text()


def test_an_attempt_with_a_checkpoint_resumes_in_place(tmp_path):
    trial = a_trial(tmp_path)
    run = RunDir(tmp_path / "runs" / trial.trial_id)
    (run.checkpoints_dir / f"{PREFIX}50").mkdir(parents=True)
    outcome, aside = attempt(tmp_path, trial, run)
    assert outcome.ok and outcome.resumed is True
    assert not aside.exists()
    assert json.loads(run.summary_path.read_text())["found"] == ["checkpoints"]


def test_an_attempt_waits_for_an_earlier_one_then_reports_it(tmp_path, monkeypatch):
    monkeypatch.setattr("fidec.sweeps.runner.TRIAL_LOCK_WAIT_S", 0.3)
    trial = a_trial(tmp_path)
    run = RunDir(tmp_path / "runs" / trial.trial_id)
    with FileLock(trial_lock_path(run.root)):
        outcome, _ = attempt(tmp_path, trial, run)
    assert not outcome.ok and "an earlier attempt of this trial" in outcome.error
    assert not run.root.exists()  # it did not start
    log = (tmp_path / "logs" / "t.log").read_text()
    assert "waiting for an earlier attempt to release" in log
