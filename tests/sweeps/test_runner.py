"""Sweeps on a local Ray: failing trials are retried a bounded number of times and never stop the others,
finished trials are skipped on a rerun (their files untouched), and real tiny fidec trainings run as trials
(seeds packed into one process, vmapped or sequential by fidec's rule for the backend) and feed
``fidec report``."""

from __future__ import annotations

import io
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray")

from fidec.reports import build_report  # noqa: E402
from fidec.sweeps import read_manifest, run_sweep  # noqa: E402
from fidec.sweeps.runner import worker_env  # noqa: E402
from fidec.sweeps.spec import Resources, parse_spec  # noqa: E402
from fidec.training.seeds import vmap_by_default  # noqa: E402

TASK = "cube-single-play-singletask-task1-v0"
# Ray workers cannot import this test module: its functions travel by value.
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


# -- trials used by the tests (run inside Ray workers) ---------------------------------------------------


def fake_trial(trial, run_dir: Path, resume: bool):
    """Writes a summary unless the variant is meant to fail: 'iso' raises, 'bcflow' kills its process."""
    calls = run_dir.parent.parent / "calls"
    calls.mkdir(exist_ok=True)
    (calls / f"{trial.trial_id}.{os.getpid()}").touch()
    if trial.label == "iso":
        raise RuntimeError("iso is broken on purpose")
    if trial.label == "bcflow":
        os._exit(3)  # a crash of the worker process itself (segfault, OOM kill)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "summary.json").write_text(json.dumps({"seeds": list(trial.seeds)}))
    return {"threads": os.environ.get("OMP_NUM_THREADS"), "platform": os.environ.get("JAX_PLATFORMS")}


def toy_dataset(obs_dim: int = 4, action_dim: int = 2, size: int = 256):
    from fidec.data import Dataset

    rng = np.random.default_rng(0)
    obs = rng.normal(size=(size, obs_dim)).astype(np.float32)
    actions = np.tanh(obs[:, :action_dim] + 0.1 * rng.normal(size=(size, action_dim))).astype(np.float32)
    return Dataset.from_arrays(
        {
            "observations": obs,
            "actions": actions,
            "rewards": -np.abs(actions - 0.5).sum(-1).astype(np.float32),
            "masks": np.ones(size, np.float32),
            "terminals": (np.arange(size) % 64 == 63).astype(np.float32),
            "next_observations": np.roll(obs, -1, axis=0),
        }
    )


def toy_evaluator(policy, env_name, num_episodes, seed, **kwargs):
    """A deterministic stand-in for the environment: success = fraction of first action coordinates > 0."""
    observations = np.random.default_rng(seed).normal(size=(16, 4)).astype(np.float32)
    actions = np.asarray(policy(observations))
    return {
        "success": float(np.mean(actions[:, 0] > 0)),
        "return_mean": float(actions.sum()),
        "episodes": 16.0,
    }


def toy_training_trial(trial, run_dir: Path, resume: bool):
    """A real fidec training run (the sweep's config, checkpoints, resume) on an in-memory dataset."""
    from fidec.training import train

    result = train(
        trial.train_config(run_dir),
        resume=resume,
        dataset=toy_dataset(),
        evaluator=toy_evaluator,
        console=True,
    )
    return result.summary["aggregate"]


TOY_TRAIN = {"steps": 40, "log_interval": 10, "eval_interval": 10, "save_interval": 20, "eval_episodes": 1}


# -- tests ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray for the module (run_sweep reuses an initialised Ray and leaves it running)."""
    ray.init(
        address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING"
    )
    yield
    ray.shutdown()


def spec_for(tmp_path: Path, **changes):
    raw = {
        "name": "t",
        "agents": ["fd", "iso", "bcflow"],
        "tasks": [TASK],
        "seeds": [0, 1],
        "scale": "tiny",
        "out_dir": str(tmp_path / "sweep"),
        "max_retries": 1,
    }
    return parse_spec({**raw, **changes})


@pytest.mark.slow
def test_failures_are_retried_recorded_and_do_not_stop_the_others(local_ray, tmp_path):
    agents = ["fd", {"name": "fd", "label": "fd-b"}, "iso", "bcflow"]
    spec = spec_for(tmp_path, agents=agents, seeds=[0])
    outcome = run_sweep(spec, trial_fn=fake_trial, max_concurrent=2)
    assert outcome.counts == {"done": 2, "failed": 2}
    assert not outcome.ok
    manifest = read_manifest(spec.out_dir)
    for trial_id, record in manifest.trials.items():
        calls = list((spec.out_dir / "calls").glob(f"{trial_id}.*"))
        if record.agent == "fd":
            assert record.state == "done" and record.attempts == 1 and len(calls) == 1
            assert record.wall_s is not None and record.resumed is False
        else:
            assert record.state == "failed" and record.attempts == 2 and len(calls) == 2  # 1 + max_retries
    iso = manifest.trials[f"iso__{TASK}__s0"]
    assert "RuntimeError: iso is broken on purpose" in iso.error
    assert "iso is broken on purpose" in (spec.out_dir / iso.log).read_text()  # the traceback is in the log
    crashed = manifest.trials[f"bcflow__{TASK}__s0"]
    assert "Error" in crashed.error  # Ray's report of the dead worker, not a hang


def test_rerun_skips_finished_trials_and_retries_failed_ones(local_ray, tmp_path):
    spec = spec_for(tmp_path, agents=["fd", "iso"], seeds=[0], max_retries=0)
    run_sweep(spec, trial_fn=fake_trial, max_concurrent=2)
    done = spec.out_dir / "runs" / f"fd__{TASK}__s0" / "summary.json"
    before = (done.stat().st_mtime_ns, done.read_text())

    calls_before = {p.name for p in (spec.out_dir / "calls").iterdir()}

    def working_trial(trial, run_dir, resume):  # the cause of the failure is fixed
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "summary.json").write_text("{}")

    from rich.console import Console

    console = Console(file=io.StringIO(), width=200)
    outcome = run_sweep(spec, trial_fn=working_trial, max_concurrent=2, console=console)
    assert outcome.ok and outcome.skipped == 1 and outcome.ran == 1
    printed = console.file.getvalue()
    assert "2 trials in" in printed and "(1 already done, 1 to run)" in printed
    assert f"done iso__{TASK}__s0 in" in printed and "done 2 | running 0 | failed 0 | pending 0" in printed
    assert (done.stat().st_mtime_ns, done.read_text()) == before
    assert {p.name for p in (spec.out_dir / "calls").iterdir()} == calls_before  # fd was not run again
    manifest = read_manifest(spec.out_dir)
    assert manifest.trials[f"iso__{TASK}__s0"].attempts == 2  # counted over both invocations
    assert manifest.trials[f"iso__{TASK}__s0"].error is None

    nothing = run_sweep(spec, trial_fn=working_trial)
    assert nothing.ok and nothing.ran == 0 and nothing.ray_startup_s is None  # Ray is not even needed


def test_worker_environment_limits_threads_and_shares_gpus():
    cpu = worker_env(Resources(cpus=1, gpus=0), base={})
    assert cpu["OMP_NUM_THREADS"] == "1" and cpu["JAX_PLATFORMS"] == "cpu"
    assert "intra_op_parallelism_threads=1" in cpu["XLA_FLAGS"]
    shared = worker_env(Resources(cpus=4, gpus=0.25), base={"XLA_FLAGS": "--xla_dump_to=/x"})
    assert shared["OMP_NUM_THREADS"] == "4" and "JAX_PLATFORMS" not in shared
    assert (
        shared["XLA_PYTHON_CLIENT_PREALLOCATE"] == "false"
        and float(shared["XLA_PYTHON_CLIENT_MEM_FRACTION"]) < 0.25
    )
    assert shared["XLA_FLAGS"] == "--xla_dump_to=/x"


@pytest.mark.slow
def test_real_trainings_with_packed_seeds_and_their_report(local_ray, tmp_path):
    spec = spec_for(tmp_path, agents=["fd", "iso"], pack_seeds=True, train=TOY_TRAIN)
    outcome = run_sweep(spec, trial_fn=toy_training_trial, max_concurrent=2)
    assert outcome.ok and outcome.counts == {"done": 2}
    run_dir = spec.out_dir / "runs" / f"fd__{TASK}__s0-1"
    summary = json.loads((run_dir / "summary.json").read_text())
    config = json.loads((run_dir / "config.json").read_text())["config"]
    # The trials run on the CPU (gpus = 0): the packed seeds follow fidec's rule for it.
    expected_mode = "vmapped" if vmap_by_default("cpu") else "sequential"
    assert summary["seeds"] == [0, 1] and summary["seed_mode"] == expected_mode
    assert config["steps"] == 40 and config["agent"]["network"]["actor_hidden"] == [32, 32]

    report = build_report([spec.out_dir], tmp_path / "report", fmt="csv", num_resamples=200)
    rows = [line.split(",") for line in report.text.strip().splitlines()[1:]]
    fd_last3 = next(r for r in rows if r[0] == "last3" and r[3] == "fd")
    assert int(fd_last3[5]) == 2
    assert float(fd_last3[6]) == pytest.approx(summary["aggregate"]["last3_mean"])
    assert float(fd_last3[7]) == pytest.approx(summary["aggregate"]["last3_std"])
    markdown = report.markdown.read_text()
    assert "Displacement statistics" in markdown and "fisher_condition" in markdown
    assert (tmp_path / "report" / "curves" / f"{TASK}.png").exists()
