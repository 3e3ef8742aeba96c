"""Evaluation: run a batched policy for N episodes over several environment instances in lock-step.

Episode k is reset with its own seed drawn from ``SeedSequence([seed, k])``; environment i plays episodes
i, i + n, i + 2n, ... So results depend on ``seed`` only (not on the number of instances) whenever the
policy's action for a row depends on that row alone. The policy always receives the full (n, obs_dim)
batch (rows of finished instances hold their last observation and their actions are ignored), so a
jitted policy compiles once.

Reported: ``success`` (mean over episodes of ``info['success']`` at the episode's last step; NaN when the
environment has no success signal), ``return_mean``, ``return_std``, ``length_mean``, ``episodes``,
``normalized_score`` (D4RL x100 of the mean return; NaN for tasks without reference returns) and
``env_steps_per_second``. Actions are clipped to [-1, 1]; non-finite or mis-shaped actions raise.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import gymnasium
import numpy as np

from fidec.envs.make import make_env, render_frame
from fidec.envs.registry import parse_task
from fidec.envs.scores import normalized_score

Policy = Callable[[np.ndarray], np.ndarray]
DEFAULT_NUM_ENVS = 5


def make_eval_envs(name: str, num_envs: int, seed: int, render: bool = False) -> list[gymnasium.Env]:
    """``num_envs`` instances of task ``name``, instance i seeded with ``seed + i``."""
    if num_envs < 1:
        raise ValueError(f"num_envs must be >= 1, got {num_envs}.")
    return [make_env(name, seed=seed + i, render=render) for i in range(num_envs)]


def episode_seed(seed: int, episode: int) -> int:
    return int(np.random.SeedSequence([seed, episode]).generate_state(1)[0])


def _checked_actions(actions: np.ndarray, num_envs: int, action_dim: int) -> np.ndarray:
    actions = np.asarray(actions, dtype=np.float32)
    if actions.shape != (num_envs, action_dim):
        raise ValueError(
            f"The policy returned actions of shape {actions.shape}; expected ({num_envs}, {action_dim}) "
            "(one row per observation in the batch)."
        )
    if not np.isfinite(actions).all():
        raise ValueError("The policy returned NaN or inf actions; check the agent's parameters and inputs.")
    return np.clip(actions, -1.0, 1.0)


def _save_video(frames: list[np.ndarray], video_dir: str | os.PathLike, name: str) -> Path:
    directory = Path(video_dir)
    directory.mkdir(parents=True, exist_ok=True)
    try:
        import imageio.v3 as iio

        path = directory / f"{name}.gif"
        iio.imwrite(path, np.stack(frames), duration=50, loop=0)
    except ImportError:
        path = directory / f"{name}.npy"
        np.save(path, np.stack(frames))
    return path


def evaluate(
    policy: Policy,
    env_name: str,
    num_episodes: int,
    seed: int,
    num_envs: int | None = None,
    video_dir: str | os.PathLike | None = None,
    envs: Sequence[gymnasium.Env] | None = None,
    on_episode: Callable[[], None] | None = None,
) -> dict[str, float]:
    """Run ``num_episodes`` episodes of ``policy`` on ``env_name``; see the module docstring for the keys.

    Pass ``envs`` (from :func:`make_eval_envs`) to reuse instances across evaluations. With ``video_dir``,
    the first episode of instance 0 is rendered and saved there as a GIF (``MUJOCO_GL=egl`` on headless
    machines).  ``on_episode`` is called each time an episode ends (e.g. to advance a progress bar).
    """
    if num_episodes < 1:
        raise ValueError(f"num_episodes must be >= 1, got {num_episodes}.")
    spec = parse_task(env_name)
    if envs is None:
        count = min(num_episodes, num_envs or DEFAULT_NUM_ENVS)
        envs = make_eval_envs(env_name, count, seed, render=video_dir is not None)
    envs = list(envs)
    count = len(envs)
    obs_shape = envs[0].observation_space.shape or ()
    action_dim = int(np.prod(envs[0].action_space.shape or ()))

    queues = [list(range(i, num_episodes, count)) for i in range(count)]
    observations = np.zeros((count, *obs_shape), dtype=envs[0].observation_space.dtype)
    current = [-1] * count
    returns = np.zeros(num_episodes)
    lengths = np.zeros(num_episodes, dtype=int)
    successes = np.full(num_episodes, np.nan)
    frames: list[np.ndarray] = []

    def start_next(i: int) -> None:
        if queues[i]:
            current[i] = queues[i].pop(0)
            observations[i], _ = envs[i].reset(seed=episode_seed(seed, current[i]))
        else:
            current[i] = -1

    for i in range(count):
        start_next(i)
    recording = video_dir is not None
    if recording:
        frames.append(render_frame(envs[0]))
    start, steps = time.perf_counter(), 0
    while any(k >= 0 for k in current):
        actions = _checked_actions(policy(observations), count, action_dim)
        for i, k in enumerate(current):
            if k < 0:
                continue
            observation, reward, terminated, truncated, info = envs[i].step(actions[i])
            steps += 1
            observations[i] = observation
            returns[k] += float(reward)
            lengths[k] += 1
            if recording and i == 0:
                frames.append(render_frame(envs[0]))
            if terminated or truncated:
                if "success" in info:
                    successes[k] = float(info["success"])
                if i == 0 and recording:
                    recording = False
                if on_episode is not None:
                    on_episode()
                start_next(i)
    seconds = time.perf_counter() - start

    results = {
        "success": float(np.mean(successes)) if not np.isnan(successes).any() else float("nan"),
        "return_mean": float(returns.mean()),
        "return_std": float(returns.std()),
        "length_mean": float(lengths.mean()),
        "episodes": num_episodes,
        "normalized_score": float("nan"),
        "env_steps_per_second": steps / seconds if seconds > 0 else float("nan"),
    }
    if spec.benchmark == "d4rl":
        results["normalized_score"] = float(normalized_score(env_name, returns.mean()))
    if video_dir is not None and frames:
        _save_video(frames, video_dir, f"{env_name}-seed{seed}")
    return results
