"""Run-directory reliability (issue: nothing a user does by mistake strands a run or loses data):
atomic claim, the run lock, disk full during a checkpoint, damaged files named, results kept for inspection."""

from __future__ import annotations

import errno
import json
import os
import stat

import numpy as np
import pytest

from fidec.files import LockedError, WriteError, write_text_atomic
from fidec.training import RunDir, RunDirError, make_train_config, resume, train
from fidec.training import checkpoint as ckpt
from fidec.training.toy import evaluate_toy, make_toy_env, toy_dataset

DATASET = toy_dataset(20)


def _config(run_dir, agent="bcflow", **overrides):
    base = {"run_dir": str(run_dir), "seeds": "0", "progress": False, "steps": 100, "online_steps": 0}
    base.update(overrides)
    return make_train_config(agent, "toy-point", presets=["tiny"], overrides=base)


def _train(config, **kwargs):
    return train(
        config, dataset=DATASET, evaluator=evaluate_toy, env_factory=make_toy_env, console=False, **kwargs
    )


def _resume(run_dir, overrides=None):
    return resume(
        run_dir, overrides, dataset=DATASET, evaluator=evaluate_toy, env_factory=make_toy_env, console=False
    )


def test_a_run_directory_is_claimed_with_its_config_in_one_step(tmp_path, monkeypatch):
    """A failure right after the claim (here: loading the data) leaves nothing behind (the fresh directory
    held no result), and the same command completes the run."""
    import fidec.training.loop as loop

    def broken(*args, **kwargs):
        raise OSError("the dataset server went away")

    monkeypatch.setattr(loop, "clip_actions", broken)
    config = _config(tmp_path / "run")
    with pytest.raises(OSError, match="went away"):
        _train(config)
    assert list(tmp_path.iterdir()) == []  # nothing stranded: no run directory, no temporary folder
    monkeypatch.undo()
    result = _train(config)  # the same command again completes the run
    assert result.summary["status"] == "completed"
    assert [p.name for p in tmp_path.iterdir()] == ["run"]  # no temporary folder left beside it


def test_a_run_in_use_is_refused_and_left_untouched(tmp_path):
    run_dir = tmp_path / "run"
    _train(_config(run_dir, steps=50))
    rows = (run_dir / "metrics/train.jsonl").read_text()
    with RunDir(run_dir).lock():  # another process trains this run
        with pytest.raises(LockedError, match="another fidec process is using the run"):
            _resume(run_dir, {"steps": 100})
        with pytest.raises(LockedError):
            _train(_config(run_dir, steps=50))
    assert (run_dir / "metrics/train.jsonl").read_text() == rows
    assert _resume(run_dir, {"steps": 100}).summary["steps"] == 100  # free again afterwards


def test_disk_full_during_a_checkpoint_names_the_file_and_the_run_resumes_after(tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    real_savez = ckpt.np.savez
    calls = {"n": 0}

    def savez(stream, **arrays):
        calls["n"] += 1
        if calls["n"] == 2:  # the second checkpoint finds the disk full
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_savez(stream, **arrays)

    monkeypatch.setattr(ckpt.np, "savez", savez)
    with pytest.raises(WriteError, match=r"step_000000100.*disk is full") as failure:
        _train(_config(run_dir))
    assert "\n" not in str(failure.value)
    monkeypatch.undo()
    run = RunDir(run_dir)
    assert [s for s, _ in run.checkpoints()] == [50]  # the earlier checkpoint is intact
    assert not [p for p in run.checkpoints_dir.iterdir() if p.name.startswith(".")]  # no partial folder
    assert _resume(run_dir).summary["status"] == "completed"


def test_damaged_checkpoints_are_set_aside_not_deleted(tmp_path):
    run_dir = tmp_path / "run"
    _train(_config(run_dir, steps=75, save_interval=25, eval_interval=25))
    run = RunDir(run_dir)
    newest = run.checkpoints()[-1][1]
    (newest / "arrays.npz").write_bytes(b"damaged")
    _resume(run_dir, {"steps": 100})
    kept = run.damaged_dir / newest.name
    assert kept.is_dir() and (kept / "arrays.npz").read_bytes() == b"damaged"
    assert [s for s, _ in run.checkpoints()][-1] == 100


def test_a_finished_run_without_checkpoints_is_not_silently_retrained(tmp_path):
    run_dir = tmp_path / "run"
    _train(_config(run_dir, steps=50))
    for _, folder in RunDir(run_dir).checkpoints():
        import shutil

        shutil.rmtree(folder)
    with pytest.raises(RunDirError, match=r"results up to step 50 but no usable checkpoint"):
        _resume(run_dir, {"steps": 100})


@pytest.mark.parametrize("name", ["config.json", "summary.json"])
def test_a_truncated_record_is_named(tmp_path, name):
    run_dir = tmp_path / "run"
    _train(_config(run_dir, steps=25))
    path = run_dir / name
    path.write_text(path.read_text()[:40])
    run = RunDir(run_dir)
    with pytest.raises(RunDirError, match=rf"{name}.*not valid JSON"):
        run.read_config() if name == "config.json" else run.read_summary()


def test_run_files_are_readable_by_the_group(tmp_path):
    """Shared sweep folders: files get 0666 minus the umask (not mkstemp's 0600)."""
    previous = os.umask(0o022)
    try:
        path = write_text_atomic(tmp_path / "x.json", "{}")
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
        run_dir = tmp_path / "run"
        _train(_config(run_dir, steps=25))
        for name in ("config.json", "summary.json", "metrics/train.csv"):
            assert stat.S_IMODE((run_dir / name).stat().st_mode) == 0o644, name
        manifest = run_dir / "checkpoints" / "step_000000025" / "manifest.json"
        assert stat.S_IMODE(manifest.stat().st_mode) == 0o644
    finally:
        os.umask(previous)


def test_non_finite_settings_are_refused_before_anything_runs(tmp_path):
    from fidec.config import ConfigError

    for agent, key in [
        ("bcflow", "agent.lr"),
        ("fd", "agent.fisher.damping"),
        ("iql", "agent.tau"),
        ("rebrac", "agent.alpha_actor"),
    ]:
        with pytest.raises(ConfigError, match="must be a finite number"):
            _config(tmp_path / "x", agent, **{key: "inf"})
    assert not (tmp_path / "x").exists()


def test_resume_continues_the_same_wandb_run_of_each_seed(tmp_path, monkeypatch):
    """One wandb run per seed, grouped by the run's name, ids kept in wandb.json and reused by a resume."""
    import sys
    import types

    calls = []

    class FakeRun:
        def __init__(self, **kwargs):
            self.kwargs = kwargs
            self.logged = []

        def log(self, values, step):
            self.logged.append((step, values))

        def finish(self):
            pass

    fake = types.ModuleType("wandb")
    fake.init = lambda **kwargs: calls.append(FakeRun(**kwargs)) or calls[-1]
    monkeypatch.setitem(sys.modules, "wandb", fake)
    run_dir = tmp_path / "run"
    _train(_config(run_dir, steps=50, seeds="0,1", wandb=True))
    first = [c.kwargs for c in calls]
    assert [k["name"] for k in first] == ["run-seed0", "run-seed1"] and {k["group"] for k in first} == {"run"}
    ids = json.loads((run_dir / "wandb.json").read_text())
    assert ids == {"0": first[0]["id"], "1": first[1]["id"]} and first[0]["id"] != first[1]["id"]
    groups = {key.split("/")[0] for _, values in calls[0].logged for key in values}
    assert groups == {"train", "eval"}  # no seed prefix: the seed is the wandb run
    assert any("train/bc_loss" in values for _, values in calls[0].logged)
    calls.clear()
    _resume(run_dir, {"steps": 100})
    assert [c.kwargs["id"] for c in calls] == [ids["0"], ids["1"]]
    assert all(c.kwargs["resume"] == "allow" for c in calls)
    assert np.all([step > 50 for c in calls for step, _ in c.logged])


def test_kill_9_while_the_dataset_loads_leaves_a_run_that_the_same_command_completes(tmp_path):
    """The window the default job spends generating its dataset: the process is killed inside it."""
    import signal
    import subprocess
    import sys
    import textwrap
    import time

    run_dir = tmp_path / "run"
    script = textwrap.dedent(
        f"""
        import time
        import fidec.training.loop as loop
        from fidec.training import make_train_config, train
        from fidec.training.toy import toy_dataset

        def slow_load(config):
            time.sleep(120)  # killed in here
            return toy_dataset(20)

        loop.load_training_data = slow_load
        loop.parse_task = lambda name: None  # the toy task has no registry entry
        config = make_train_config("bcflow", "toy-point", presets=["tiny"], overrides={{
            "run_dir": {str(run_dir)!r}, "seeds": "0", "progress": False, "steps": 50, "online_steps": 0}})
        from fidec.training.toy import evaluate_toy
        train(config, evaluator=evaluate_toy, console=False)
        """
    )
    process = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 120
    while not (run_dir / "train.log").exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.2)
    time.sleep(0.5)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert RunDir(run_dir).is_run, process.stderr.read().decode()[-2000:]
    result = _train(_config(run_dir, steps=50))  # the same command again
    assert result.summary["status"] == "completed" and result.summary["steps"] == 50
