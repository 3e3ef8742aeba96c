"""A sweep killed mid-way (kill -9 of the driver and its local Ray) and run again: the finished trial is
skipped with its files untouched, and the interrupted one resumes from its checkpoint (real fidec trainings)."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytest.importorskip("ray")

TASK = "cube-single-play-singletask-task1-v0"
TESTS_DIR = Path(__file__).resolve().parent
DRIVER = textwrap.dedent(
    f"""
    import json, sys
    sys.path.insert(0, {str(TESTS_DIR)!r})
    import test_runner as helpers
    from fidec.sweeps import parse_spec, run_sweep

    spec = parse_spec(json.loads(sys.argv[1]))
    outcome = run_sweep(spec, trial_fn=helpers.toy_training_trial, max_concurrent=1, num_cpus=1)
    sys.exit(0 if outcome.ok else 1)
    """
)
STEPS, LOG, SAVE, EVAL = 3000, 50, 100, 1000


def snapshot(directory: Path) -> dict[str, tuple[int, str]]:
    return {
        str(p.relative_to(directory)): (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def is_running(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def manifest_states(out_dir: Path) -> dict[str, str]:
    try:
        return {
            k: r["state"] for k, r in json.loads((out_dir / "manifest.json").read_text())["trials"].items()
        }
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


@pytest.mark.slow
def test_a_killed_sweep_skips_finished_trials_and_resumes_the_interrupted_one(tmp_path):
    out_dir = tmp_path / "sweep"
    spec = {
        "name": "killed",
        "agents": ["fd"],
        "tasks": [TASK],
        "seeds": [0, 1],
        "scale": "tiny",
        "out_dir": str(out_dir),
        "train": {
            "steps": STEPS,
            "log_interval": LOG,
            "save_interval": SAVE,
            "eval_interval": EVAL,
            "eval_episodes": 1,
        },
    }
    command = [sys.executable, "-c", DRIVER, json.dumps(spec)]
    # Every attempt compiles the same programs: a persistent compilation cache saves the repeats.
    env = {**os.environ, "JAX_COMPILATION_CACHE_DIR": str(tmp_path / "jax-cache")}
    first, second = f"fd__{TASK}__s0", f"fd__{TASK}__s1"
    interrupted_run = out_dir / "runs" / second

    # Own session: the kill takes the driver and the Ray processes it started.
    driver = subprocess.Popen(
        command,
        cwd=tmp_path,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 480
        while time.monotonic() < deadline and driver.poll() is None:
            states = manifest_states(out_dir)
            checkpoints = list((interrupted_run / "checkpoints").glob("step_*"))
            if states.get(first) == "done" and states.get(second) == "running" and checkpoints:
                break
            time.sleep(0.2)
        else:
            pytest.fail(f"the sweep did not reach its second trial in time (exit code {driver.poll()})")
    finally:
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()

    assert manifest_states(out_dir) == {first: "done", second: "running"}
    # The trial's worker (its pid is in the trial log) stops with the Ray node: no writer is left behind.
    worker = int((out_dir / "logs" / f"{second}.log").read_text().split("(pid ")[-1].split(")")[0])
    stop_deadline = time.monotonic() + 10
    while is_running(worker) and time.monotonic() < stop_deadline:
        time.sleep(0.1)
    assert not is_running(worker)
    size = (interrupted_run / "metrics" / "train.jsonl").stat().st_size
    finished = snapshot(out_dir / "runs" / first)
    assert not (interrupted_run / "summary.json").exists()
    assert (interrupted_run / "metrics" / "train.jsonl").stat().st_size == size

    rerun = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=480)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "1 already done, 1 to run" in " ".join(rerun.stderr.split())

    assert snapshot(out_dir / "runs" / first) == finished  # skipped: not one byte or timestamp changed
    record = json.loads((out_dir / "manifest.json").read_text())["trials"][second]
    assert record["state"] == "done" and record["attempts"] == 2 and record["resumed"] is True
    log = (interrupted_run / "train.log").read_text()
    resumed_at = int(log.split("from step ")[1].split()[0])
    assert 0 < resumed_at < STEPS
    train_steps = [json.loads(line)["step"] for line in (interrupted_run / "metrics" / "train.jsonl").open()]
    eval_steps = [json.loads(line)["step"] for line in (interrupted_run / "metrics" / "eval.jsonl").open()]
    assert train_steps == list(range(LOG, STEPS + 1, LOG))  # continued, nothing repeated or lost
    assert eval_steps == list(range(EVAL, STEPS + 1, EVAL))
    summary = json.loads((interrupted_run / "summary.json").read_text())
    assert summary["seeds"] == [1] and summary["steps"] == STEPS
