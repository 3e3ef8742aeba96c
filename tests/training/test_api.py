"""The Python API of runs: a loaded policy acts as the trained agent does, deterministically given its key,
for every agent and mode, on state and pixel runs; bad input is refused in one line."""

from __future__ import annotations

import logging

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fidec
from fidec.agents import agent_names
from fidec.config import ConfigError
from fidec.data.visual import VisualDataset
from fidec.errors import UserError
from fidec.training import RunResult, make_train_config
from fidec.training import api as api_module
from fidec.training import train as train_config
from fidec.training.toy import evaluate_toy, make_toy_env, toy_dataset

pytestmark = pytest.mark.usefixtures("quick_compiles")

SEEDS = (0, 1)
TOY = toy_dataset(10)
OBS = np.asarray(TOY.observations[:6], np.float32)


def _toy_run(path, agent: str) -> RunResult:
    """A tiny toy run of ``agent``: seeds 0 and 1, checkpoints at steps 25 and 50, no evaluation."""
    overrides = {
        "run_dir": str(path),
        "seeds": SEEDS,
        "progress": False,
        "steps": 50,
        "log_interval": 25,
        "save_interval": 25,
        "eval_interval": 0,
        "eval_episodes": 0,
    }
    config = make_train_config(agent, "toy-point", presets=["tiny"], overrides=overrides)
    return train_config(config, dataset=TOY, evaluator=evaluate_toy, env_factory=make_toy_env, console=False)


@pytest.fixture(scope="module", params=agent_names())
def toy_run(request, tmp_path_factory) -> RunResult:
    return _toy_run(tmp_path_factory.mktemp(request.param) / "run", request.param)


@pytest.fixture(scope="module")
def bcflow_run(tmp_path_factory) -> RunResult:
    return _toy_run(tmp_path_factory.mktemp("errors") / "run", "bcflow")


def _agent_actions(run: RunResult, seed: int, observations: np.ndarray, key: int, mode: str) -> np.ndarray:
    """What the run's own agent samples from seed ``seed``'s final state."""
    state = run.states[SEEDS.index(seed)].agent
    return np.asarray(
        run.agent.sample_actions(state, jnp.asarray(observations), jax.random.PRNGKey(key), mode)
    )


def test_a_loaded_policy_acts_as_the_trained_agent_in_every_mode(toy_run):
    for seed in SEEDS:
        policy = fidec.load_policy(toy_run.run_dir, seed=seed)
        assert (policy.step, policy.seed, policy.mode) == (50, seed, toy_run.config.action_mode)
        actions = policy(OBS, key=7)
        assert isinstance(actions, np.ndarray) and actions.dtype == np.float32
        assert actions.shape == (len(OBS), policy.action_dim) and np.abs(actions).max() <= 1.0
        np.testing.assert_array_equal(actions, _agent_actions(toy_run, seed, OBS, 7, policy.mode))
    for mode in toy_run.agent.modes:
        policy = fidec.load_policy(toy_run.run_dir, mode=mode)
        np.testing.assert_array_equal(policy(OBS, key=3), _agent_actions(toy_run, 0, OBS, 3, mode))


def test_one_observation_gives_one_action(toy_run):
    policy = fidec.load_policy(toy_run.run_dir)
    action = policy(OBS[2], key=5)
    assert action.shape == (policy.action_dim,)
    np.testing.assert_array_equal(action, policy(OBS[2:3], key=5)[0])
    assert policy(list(map(float, OBS[2])), key=5).tolist() == action.tolist()  # any array-like


def test_actions_are_determined_by_the_key(bcflow_run):
    policy = fidec.load_policy(bcflow_run.run_dir)
    np.testing.assert_array_equal(policy(OBS, key=1), policy(OBS, key=jax.random.PRNGKey(1)))
    assert not np.array_equal(policy(OBS, key=1), policy(OBS, key=2))  # bcflow samples its flow's noise
    # Without a key: call k draws fold_in(PRNGKey(noise_seed), k); keyed calls do not advance the stream.
    stream = [policy(OBS) for _ in range(3)]
    assert policy.calls == 3 and not np.array_equal(stream[0], stream[1])
    for k, actions in enumerate(stream):
        np.testing.assert_array_equal(actions, policy(OBS, key=jax.random.fold_in(jax.random.PRNGKey(0), k)))
    again = fidec.load_policy(bcflow_run.run_dir)
    np.testing.assert_array_equal([again(OBS) for _ in range(3)], stream)
    again.reset()
    np.testing.assert_array_equal(again(OBS), stream[0])
    other = fidec.load_policy(bcflow_run.run_dir, noise_seed=1)
    assert not np.array_equal(other(OBS), stream[0])


def test_the_policy_compiles_once_per_batch_size(bcflow_run, caplog):
    policy = fidec.load_policy(bcflow_run.run_dir)
    compiles = lambda: [r for r in caplog.records if "Compiling" in r.getMessage()]
    observations = np.asarray(TOY.observations[:11], np.float32)  # a batch size no other test uses
    with jax.log_compiles(), caplog.at_level(logging.WARNING):
        policy(observations, key=0)
        assert compiles(), "no compilation logged for a new batch size: the detector is broken"
        caplog.clear()
        policy(observations + 0.01, key=1)
        policy(observations)
        policy(observations)
        fidec.load_policy(bcflow_run.run_dir, seed=1)(observations, key=2)  # another seed: same program
    assert not compiles()


def test_an_older_checkpoint_and_load_run(bcflow_run):
    run = fidec.load_run(bcflow_run.run_dir, step=25)
    assert run.step == 25 and run.config.seeds == SEEDS and len(run.states) == 2
    old = fidec.load_policy(bcflow_run.run_dir, step=25, seed=1)
    assert old.step == 25
    state = run.states[1]
    expected = run.agent.sample_actions(state, jnp.asarray(OBS), jax.random.PRNGKey(4), old.mode)
    np.testing.assert_array_equal(old(OBS, key=4), np.asarray(expected))
    assert not np.array_equal(old(OBS, key=4), fidec.load_policy(bcflow_run.run_dir, seed=1)(OBS, key=4))


def _refused(match: str, call) -> UserError:
    """Run ``call`` and return the UserError it raises (one line, matching ``match``)."""
    with pytest.raises(UserError, match=match) as caught:
        call()
    assert "\n" not in str(caught.value)
    return caught.value


def test_bad_runs_steps_seeds_and_modes_are_refused(bcflow_run, tmp_path):
    run_dir = bcflow_run.run_dir
    _refused(r"does not exist", lambda: fidec.load_policy(tmp_path / "no-such-run"))
    (tmp_path / "empty").mkdir()
    _refused(r"not a fidec run directory", lambda: fidec.load_policy(tmp_path / "empty"))
    _refused(
        r"no checkpoint at step 30 .*available steps: \[25, 50\]", lambda: fidec.load_policy(run_dir, 30)
    )
    _refused(r"seed 2 is not in the run .*its seeds: 0, 1", lambda: fidec.load_policy(run_dir, seed=2))
    _refused(r"action modes onestep, not 'best_of_n'", lambda: fidec.load_policy(run_dir, mode="best_of_n"))


def test_bad_observations_are_refused(bcflow_run):
    policy = fidec.load_policy(bcflow_run.run_dir)
    _refused(r"shape \(6, 3\); this policy takes \(4,\) per observation", lambda: policy(OBS[:, :3]))
    _refused(r"shape \(2, 6, 4\)", lambda: policy(OBS[None].repeat(2, axis=0)))
    _refused(r"shape \(\)", lambda: policy(1.0))
    _refused(r"array of numbers", lambda: policy(np.array([["a", "b", "c", "d"]])))
    _refused(r"array of numbers", lambda: policy([[1.0, 2.0], [3.0]]))
    _refused(
        r"dict \(keys achieved_goal, observation\).*flatten_observation",
        lambda: policy(dict(achieved_goal=OBS[0, :2], observation=OBS[0, 2:])),
    )
    bad = OBS.copy()
    bad[2, 1], bad[4, 0] = np.nan, np.inf
    _refused(r"NaN or inf \(row 2, 4 of 6\)", lambda: policy(bad))
    _refused(r"NaN or inf \(row 0 of 1\)", lambda: policy(bad[2]))
    assert policy.calls == 0  # refused calls draw no key
    assert policy(OBS.astype(np.float64)).dtype == np.float32  # other float and int dtypes are fine
    assert policy(OBS.astype(np.int32)).shape == (6, 2)


def test_train_builds_the_config_as_the_command_line_does(monkeypatch, tmp_path):
    seen = {}
    monkeypatch.setattr(api_module, "train_config", lambda config: seen.setdefault("config", config))
    fidec.train(
        "iso",
        "cube-single-play-singletask-task1-v0",
        presets=["tiny"],
        overrides={"agent.alpha": 3.0},
        steps=75,
        seeds=(0, 2),
        run_dir=str(tmp_path / "run"),
    )
    config = seen["config"]
    assert (config.agent_name, config.scale, config.steps, config.seeds) == ("iso", "tiny", 75, (0, 2))
    assert config.agent.alpha == 3.0 and config.run_dir == str(tmp_path / "run")
    with pytest.raises(ConfigError, match="stepz"):
        fidec.train("fd", presets=["tiny"], stepz=3)
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------------------------------- pixels

FRAME, FRAME_STACK = (16, 16, 3), 3


def _frames(lengths=(7, 6), seed=0) -> VisualDataset:
    rng = np.random.default_rng(seed)
    terminals = np.zeros(sum(lengths), bool)
    terminals[np.cumsum(lengths) - 1] = True
    frames = rng.integers(0, 256, (len(terminals), *FRAME), dtype=np.uint8)
    actions = rng.uniform(-1, 1, (len(terminals), 2)).astype(np.float32)
    return VisualDataset.from_episodes(
        frames, actions, terminals, rewards=-np.ones(len(terminals), np.float32)
    )


def test_a_pixel_policy_takes_stacked_frames_and_names_frame_stack_for_single_frames(tmp_path):
    dataset = _frames()
    overrides = {
        "agent.encoder.name": "tiny",
        "agent.encoder.tiny_channels": (4,),
        "agent.encoder.tiny_features": 8,
        "agent.encoder.frame_stack": FRAME_STACK,
        "agent.network.actor_hidden": (8,),
        "agent.network.critic_hidden": (8,),
        "agent.batch_size": 4,
        "steps": 2,
        "log_interval": 2,
        "eval_interval": 0,
        "save_interval": 2,
        "eval_episodes": 0,
        "run_dir": str(tmp_path / "run"),
        "progress": False,
    }
    config = make_train_config(
        "bcflow", "visual-cube-single-play-singletask-task1-v0", presets=["tiny"], overrides=overrides
    )
    run = train_config(config, dataset=dataset.with_frame_stack(FRAME_STACK), console=False)
    policy = fidec.load_policy(run.run_dir)
    stacked = (FRAME[0], FRAME[1], FRAME[2] * FRAME_STACK)
    assert policy.frame_stack == FRAME_STACK and policy.observation_shape == stacked
    frames = np.random.default_rng(1).integers(0, 256, (5, *stacked), dtype=np.uint8)
    expected = run.agent.sample_actions(
        run.states[0].agent, jnp.asarray(frames, jnp.float32), jax.random.PRNGKey(2)
    )
    np.testing.assert_array_equal(policy(frames, key=2), np.asarray(expected))
    assert policy(frames[0], key=2).shape == (2,)
    error = _refused(r"look like single frames \(16, 16, 3\)", lambda: policy(frames[..., :3]))
    assert "fidec.envs.FrameStack(env, 3)" in str(error) and "(16, 16, 9)" in str(error)
    _refused(r"look like single frames", lambda: policy(frames[0, ..., :3]))
