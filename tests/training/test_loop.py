"""train(): the run directory, determinism, Ctrl-C and exact resume (offline and online), NaN stops, bad inputs.

Every run here is BC-flow with 2 x 32 networks on the toy point task (no MuJoCo), two seeds vmapped,
so that the runs share one set of compiled programs.
"""

from __future__ import annotations

import json
import os
import signal
from dataclasses import replace

import numpy as np
import pytest

from fidec.config import ConfigError
from fidec.envs import UnknownTaskError
from fidec.training import NonFiniteError, RunDirError, RunInterrupted, make_train_config, resume, train
from fidec.training.checkpoint import list_checkpoints
from fidec.training.toy import evaluate_toy, make_toy_env, toy_dataset

DATASET = toy_dataset(20)
METRIC_FILES = ("metrics/train.jsonl", "metrics/train.csv", "metrics/eval.jsonl", "metrics/eval.csv")


def _config(run_dir, **overrides):
    base = {
        "run_dir": str(run_dir),
        "seeds": "0,1",
        "vmap_seeds": True,
        "progress": False,
        "steps": 100,
        "online_steps": 60,
    }
    base.update(overrides)
    return make_train_config("bcflow", "toy-point", presets=["tiny"], overrides=base)


def _train(config, evaluator=evaluate_toy, dataset=DATASET, **kwargs):
    return train(
        config, dataset=dataset, evaluator=evaluator, env_factory=make_toy_env, console=False, **kwargs
    )


def _params(result):
    return [np.asarray(x) for s in result.states for x in _leaves(s)]


def _leaves(tree):
    import jax

    return jax.tree.leaves(tree)


def _same_run(a, b, result_a, result_b):
    for name in METRIC_FILES:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    for x, y in zip(_params(result_a), _params(result_b), strict=True):
        assert np.array_equal(x, y)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One uninterrupted run (offline then online) that the other tests compare against."""
    run_dir = tmp_path_factory.mktemp("reference") / "run"
    config = _config(run_dir, tensorboard=True)
    return run_dir, _train(config)


def test_run_directory_holds_every_file(reference):
    run_dir, result = reference
    for name in (*METRIC_FILES, "config.json", "summary.json", "plots/learning_curves.png", "train.log"):
        assert (run_dir / name).is_file(), name
    assert any((run_dir / "tensorboard").iterdir())
    record = json.loads((run_dir / "config.json").read_text())
    assert record["config"]["agent_name"] == "bcflow" and record["obs_dim"] == 4 and record["action_dim"] == 2
    assert {"fidec_version", "jax_version", "command"} <= set(record)
    train_rows = [json.loads(line) for line in (run_dir / "metrics/train.jsonl").read_text().splitlines()]
    # One row per log point (every 25 steps over 100 offline + 60 online) per seed.
    assert [(r["step"], r["seed"]) for r in train_rows] == [
        (s, seed) for s in (25, 50, 75, 100, 125, 150, 160) for seed in (0, 1)
    ]
    assert {r["phase"] for r in train_rows if r["step"] > 100} == {"online"}
    assert "online/episodes" in train_rows[-1] and "bc_loss" in train_rows[0]
    eval_rows = [json.loads(line) for line in (run_dir / "metrics/eval.jsonl").read_text().splitlines()]
    assert sorted({r["step"] for r in eval_rows}) == [50, 100, 150, 160]  # interval + end of each phase
    assert [s for s, _ in list_checkpoints(run_dir / "checkpoints")] == [100, 150, 160]  # keep 3 newest
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["metric"] == "success" and summary["seeds"] == [0, 1]
    assert set(summary["per_seed"]) == {"0", "1"} and summary["per_seed"]["0"]["last3_steps"] == [
        100,
        150,
        160,
    ]
    assert {"final_mean", "final_std", "last3_mean", "last3_std"} <= set(summary["aggregate"])
    assert summary["updates_per_second_per_seed"] > 0 and summary["seed_mode"] == "vmapped"
    assert "offline_phase" in summary and "protocol" in summary
    assert result.summary == summary


def test_same_seed_gives_the_same_metrics_and_parameters(reference, tmp_path):
    run_dir, result = reference
    again = _train(_config(tmp_path / "again", tensorboard=True))
    _same_run(run_dir, tmp_path / "again", result, again)


def _interrupting_evaluator(at_steps):
    """The toy evaluator, which also presses Ctrl-C once when evaluating at one of ``at_steps``."""
    pressed = set()

    def evaluator(policy, env_name, num_episodes, seed, **kwargs):
        from fidec.training.evaluation import evaluation_seed

        for step in at_steps:
            if step not in pressed and seed == evaluation_seed(0, step):
                pressed.add(step)
                os.kill(os.getpid(), signal.SIGINT)
        return evaluate_toy(policy, env_name, num_episodes, seed, **kwargs)

    return evaluator


def test_ctrl_c_saves_and_resume_matches_uninterrupted_run(reference, tmp_path):
    """Ctrl-C in the offline phase (step 50) and again in the online phase (step 150), then resume twice."""
    run_dir, result = reference
    target = tmp_path / "interrupted"
    evaluator = _interrupting_evaluator([50, 150])
    with pytest.raises(RunInterrupted, match="fidec train --resume") as stopped:
        _train(_config(target, tensorboard=True), evaluator=evaluator)
    assert stopped.value.step == 50 and (target / "checkpoints" / "step_000000050").is_dir()
    with pytest.raises(RunInterrupted) as stopped:
        resume(target, dataset=DATASET, evaluator=evaluator, env_factory=make_toy_env, console=False)
    assert stopped.value.step == 150
    final = resume(target, dataset=DATASET, evaluator=evaluator, env_factory=make_toy_env, console=False)
    _same_run(run_dir, target, result, final)
    assert "resuming" in (target / "train.log").read_text()


def test_resume_after_a_crash_cuts_logs_back_and_skips_a_damaged_checkpoint(reference, tmp_path):
    """Simulate a kill: logs written past the last good checkpoint, and the newest checkpoint damaged."""
    run_dir, result = reference
    target = tmp_path / "crashed"
    config = _config(target, tensorboard=True, keep_checkpoints=10)
    _train(replace(config, online_steps=0, steps=75))  # a run that stopped at step 75 ...
    with open(target / "metrics/train.jsonl", "a") as stream:  # ... in the middle of writing a row
        stream.write('{"step": 100, "seed": 0, "pha')
    arrays = target / "checkpoints" / "step_000000075" / "arrays.npz"
    arrays.write_bytes(arrays.read_bytes()[:-100])  # and with its newest checkpoint truncated
    messages = []
    final = resume(
        target,
        {"steps": 100, "online_steps": 60},
        dataset=DATASET,
        evaluator=evaluate_toy,
        env_factory=make_toy_env,
        console=False,
    )
    log = (target / "train.log").read_text()
    assert "checkpoint at step 75 is unusable" in log and "falling back to step 50" in log, messages
    _same_run(run_dir, target, result, final)


def test_non_finite_loss_stops_with_step_metric_and_last_good_checkpoint(reference, tmp_path):
    target = tmp_path / "nan"
    config = _config(target, online_steps=0, steps=50)
    _train(config)
    arrays = DATASET.arrays()
    arrays["actions"] = np.full_like(arrays["actions"], np.nan)
    broken = type(DATASET)(**arrays)
    with pytest.raises(NonFiniteError, match=r"seed 0: loss '\w+' became non-finite at step 51.*step 50"):
        resume(
            target, {"steps": 100, "online_steps": 0}, dataset=broken, evaluator=evaluate_toy, console=False
        )
    assert [s for s, _ in list_checkpoints(target / "checkpoints")] == [50]
    assert "non-finite at step 51" in (target / "train.log").read_text()


def test_bad_inputs(reference, tmp_path):
    run_dir, _ = reference
    with pytest.raises(RunDirError, match=r"not empty.*--resume"):
        _train(_config(run_dir, **{"agent.lr": 1e-3}))  # another run's settings: never overwritten
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("keep me")
    with pytest.raises(RunDirError, match=r"not empty; empty it"):
        _train(_config(tmp_path / "other"))
    assert (tmp_path / "other" / "notes.txt").read_text() == "keep me"
    with pytest.raises(UnknownTaskError, match="Did you mean"):
        train(
            make_train_config("fd", "cube-singel-play-singletask-task1-v0", presets=["tiny"]), console=False
        )
    with pytest.raises(RunDirError, match="cannot change"):
        resume(run_dir, {"agent.lr": 1.0})
    with pytest.raises(RunDirError, match="not a fidec run directory"):
        resume(tmp_path)
    with pytest.raises(ConfigError, match=r"acts with the modes \[.onestep.\], not .iterative."):
        _train(_config(tmp_path / "mode", eval_action_mode="iterative"))


def test_dataset_actions_are_clipped_like_the_official_code(tmp_path):
    """action_clip_eps (default 1e-5): training on box-edge actions equals training, without the clip, on the
    actions moved to 1 - 1e-5 (and differs from training on the raw ones)."""
    from fidec.data.dataset import clip_actions

    edge = replace(DATASET, actions=np.sign(DATASET.actions).astype(np.float32))
    inside = clip_actions(edge, 1e-5)
    assert np.abs(inside.actions).max() == np.float32(1 - 1e-5)
    short = {"online_steps": 0, "steps": 25, "eval_interval": 0, "save_interval": 0}
    default = _train(_config(tmp_path / "a", **short), dataset=edge)
    assert default.config.action_clip_eps == 1e-5
    pre_clipped = _train(_config(tmp_path / "b", action_clip_eps="none", **short), dataset=inside)
    raw = _train(_config(tmp_path / "c", action_clip_eps="none", **short), dataset=edge)
    assert all(np.array_equal(x, y) for x, y in zip(_params(default), _params(pre_clipped), strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(_params(default), _params(raw), strict=True))
