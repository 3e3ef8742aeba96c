"""Short pixel training runs: every agent with an encoder, the training loop, and `fidec train` on a visual
task read from a file in the official layout."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest

from fidec.agents import REGISTRY, AgentConfig, default_config, make_agent
from fidec.agents.common import TRANSITION_KEYS
from fidec.config import apply_overrides
from fidec.data import sample_batch
from fidec.data.visual import VisualDataset

TASK = "visual-cube-single-play-singletask-task1-v0"
SMALL_ENCODER = {
    "encoder.name": "tiny",
    "encoder.tiny_channels": (4, 8),
    "encoder.tiny_features": 8,
    "encoder.shift_pad": 2,
    "network.actor_hidden": (16,),
    "network.critic_hidden": (16,),
    "batch_size": 4,
}
# Keys only some agents have (the flow agents' Euler steps, FD's Fisher samples).
SMALL_FLOW = {"flow_steps": 2, "fisher.num_samples": 2}


def small_config(name: str, **overrides) -> AgentConfig:
    """The agent's config with the small encoder (and its own keys of SMALL_FLOW)."""
    config = default_config(name)
    own = {k: v for k, v in SMALL_FLOW.items() if hasattr(config, k.split(".")[0])}
    return apply_overrides(config, {**SMALL_ENCODER, **own, **overrides})


def synthetic_visual(size: int = 32, lengths=(9, 7), seed: int = 0) -> VisualDataset:
    rng = np.random.default_rng(seed)
    terminals = np.zeros(sum(lengths), bool)
    terminals[np.cumsum(lengths) - 1] = True
    frames = rng.integers(0, 256, (len(terminals), size, size, 3), dtype=np.uint8)
    actions = rng.uniform(-1, 1, (len(terminals), 3)).astype(np.float32)
    rewards = -(rng.uniform(size=len(terminals)) < 0.7).astype(np.float32)
    return VisualDataset.from_episodes(frames, actions, terminals, rewards=rewards, masks=-rewards)


@pytest.mark.parametrize("name", list(REGISTRY))
def test_pixel_agents_train_every_encoder_with_finite_metrics(name):
    ds = synthetic_visual()
    agent = make_agent(name, small_config(name), ds.obs_dim, ds.action_dim)
    data = ds.to_device()
    state = agent.init(jax.random.PRNGKey(0))
    before = state.params
    extra = tuple(k for k in agent.spec.batch_keys if k not in TRANSITION_KEYS)  # ReBRAC: next_actions
    for i in range(3):
        state, metrics = agent.update(state, sample_batch(data, jax.random.PRNGKey(i), 4, extra))
    assert int(state.step) == 3
    assert all(np.isfinite(float(v)) for v in metrics.values()), metrics
    parts = [p for p in agent.spec.parts if p != "log_alpha"]
    for part in parts:  # each network's own encoder received gradients
        old = before[part]["params"]["encoder"]["Conv_0"]["kernel"]
        new = state.params[part]["params"]["encoder"]["Conv_0"]["kernel"]
        assert not np.allclose(old, new), part
    obs = sample_batch(data, jax.random.PRNGKey(9), 5)["observations"]
    for mode in agent.modes if name == "fd" else agent.modes[:1]:  # fd: every mode on encoded features
        actions = agent.sample_actions(state, obs, jax.random.PRNGKey(1), mode)
        assert actions.shape == (5, 3) and float(np.abs(actions).max()) <= 1.0


def test_augmentation_draws_from_the_agent_rng_and_changes_the_update():
    ds = synthetic_visual()
    batch = sample_batch(ds.to_device(), jax.random.PRNGKey(0), 4)
    results = {}
    for p in (0.0, 1.0):
        config = small_config("bcflow", **{"encoder.augment_prob": p})
        agent = make_agent("bcflow", config, ds.obs_dim, ds.action_dim)
        state = agent.init(jax.random.PRNGKey(0))
        _, m1 = agent.update(state, batch)
        _, m2 = agent.update(state, batch)
        assert float(m1["bc_loss"]) == float(m2["bc_loss"])  # reproducible from the state's key
        results[p] = float(m1["bc_loss"])
    assert results[0.0] != results[1.0]


def test_training_loop_runs_a_visual_dataset_end_to_end(tmp_path):
    from fidec.training.config import make_train_config
    from fidec.training.loop import train

    config = make_train_config(
        "fd",
        TASK,
        presets=["tiny", "cpu-visual"],
        overrides={
            **{f"agent.{k}": v for k, v in {**SMALL_ENCODER, **SMALL_FLOW}.items()},
            "steps": 4,
            "log_interval": 2,
            "eval_interval": 0,
            "save_interval": 2,
            "eval_episodes": 0,
            "run_dir": str(tmp_path / "run"),
            "progress": False,
        },
    )
    assert config.agent.encoder.name == "tiny" and config.agent.encoder.frame_stack == 3
    result = train(config, dataset=synthetic_visual(), console=False)
    rows = [
        json.loads(line) for line in (result.run_dir / "metrics" / "train.jsonl").read_text().splitlines()
    ]
    assert [r["step"] for r in rows] == [2, 4]
    assert all(np.isfinite(r[k]) for r in rows for k in ("critic_loss", "bc_loss", "actor_loss"))
    assert int(result.states[0].agent.step) == 4
    saved = json.loads((result.run_dir / "config.json").read_text())
    assert "encoder" in json.dumps(saved)


@pytest.mark.slow
def test_fidec_train_on_a_visual_task_from_an_official_layout_file(tmp_path):
    """`fidec train --env visual-... --preset tiny --preset cpu-visual --dataset FILE` (no rendering)."""
    from typer.testing import CliRunner

    from fidec.cli import app
    from fidec.data.npz import write_npz_atomic

    rng = np.random.default_rng(0)
    for name, lengths in (
        ("visual-cube-single-play-v0.npz", (12, 10)),
        ("visual-cube-single-play-v0-val.npz", (6,)),
    ):
        terminals = np.zeros(sum(lengths), bool)
        terminals[np.cumsum(lengths) - 1] = True
        write_npz_atomic(
            tmp_path / name,
            {
                "observations": rng.integers(0, 256, (len(terminals), 64, 64, 3), dtype=np.uint8),
                "actions": rng.uniform(-1, 1, (len(terminals), 5)).astype(np.float32),
                "terminals": terminals,
                "qpos": rng.normal(size=(len(terminals), 21)).astype(np.float32),
                "qvel": rng.normal(size=(len(terminals), 20)).astype(np.float32),
            },
        )
    run_dir = tmp_path / "run"
    args = [
        "train",
        "--env",
        TASK,
        "--preset",
        "tiny",
        "--preset",
        "cpu-visual",
        "--dataset",
        str(tmp_path / "visual-cube-single-play-v0.npz"),
        "--steps",
        "4",
        "--eval-episodes",
        "0",
        "--run-dir",
        str(run_dir),
        "--no-progress",
        "--set",
        "log_interval=2",
        "--set",
        "eval_interval=0",
        "--set",
        "save_interval=2",
    ]
    result = CliRunner().invoke(app, args, terminal_width=400)
    assert result.exit_code == 0, result.output
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["steps"] == 4 and summary["updates_per_second_per_seed"] > 0
    config = json.loads((run_dir / "config.json").read_text())
    assert "tiny" in json.dumps(config)
    rows = (run_dir / "metrics" / "train.jsonl").read_text().splitlines()
    assert len(rows) == 2 and all(np.isfinite(json.loads(r)["critic_loss"]) for r in rows)


def test_evaluation_environments_stack_frames_for_pixel_agents_only():
    from fidec.training.evaluation import eval_envs_for

    state_envs = eval_envs_for(default_config("fd"), "cube-single-play-singletask-task1-v0", 2)
    assert len(state_envs) == 2 and state_envs[0].observation_space.dtype == np.float32
    assert state_envs[0].reset(seed=0)[0].ndim == 1  # state vectors, no frames stacked
    config = apply_overrides(default_config("iql"), {"encoder.name": "tiny", "encoder.frame_stack": 2})
    envs = eval_envs_for(config, "visual-cube-single-play-singletask-task1-v0", episodes=1)
    assert len(envs) == 1
    observation, _ = envs[0].reset(seed=0)
    assert observation.dtype == np.uint8 and observation.shape == (64, 64, 6)
    # At an episode start the stack repeats the first frame (never a frame of another episode).
    np.testing.assert_array_equal(observation[..., :3], observation[..., 3:])
