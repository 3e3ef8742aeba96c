"""A tiny point-reaching task for tests and smoke runs: environment, dataset and evaluator, no MuJoCo.

State: position p and goal g in the plane (observation [p, g], 4 numbers); action a in [-1, 1]^2;
p' = clip(p + 0.1 a, -1, 1); reward -|p' - g|; the episode succeeds and terminates when |p' - g| < 0.1,
and is cut after 40 steps.  The dataset comes from a noisy scripted policy a = clip(5 (g - p) + noise).

The environment follows the Gymnasium API (``reset(seed=...)``, ``step``); :func:`evaluate_toy` has the
signature of :func:`fidec.envs.evaluate`, so both plug into :func:`fidec.training.train`.
"""

from __future__ import annotations

import numpy as np

from fidec.data import Dataset

OBS_DIM, ACTION_DIM, HORIZON, GOAL_RADIUS, STEP_SIZE = 4, 2, 40, 0.1, 0.1


class _Box:
    def __init__(self, low: float, high: float, shape: tuple[int, ...]):
        self.low = np.full(shape, low, np.float32)
        self.high = np.full(shape, high, np.float32)
        self.shape = shape
        self.dtype = np.dtype(np.float32)


class PointEnv:
    """The point-reaching environment (see the module docstring)."""

    observation_space = _Box(-1.0, 1.0, (OBS_DIM,))
    action_space = _Box(-1.0, 1.0, (ACTION_DIM,))

    def __init__(self, seed: int | None = None):
        self.rng = np.random.default_rng(seed)
        self.position = np.zeros(2, np.float32)
        self.goal = np.zeros(2, np.float32)
        self.t = 0

    def _observation(self) -> np.ndarray:
        return np.concatenate([self.position, self.goal]).astype(np.float32)

    def reset(self, seed: int | None = None):
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.position = self.rng.uniform(-0.8, 0.8, 2).astype(np.float32)
        self.goal = self.rng.uniform(-0.8, 0.8, 2).astype(np.float32)
        self.t = 0
        return self._observation(), {}

    def step(self, action):
        action = np.clip(np.asarray(action, np.float32), -1.0, 1.0)
        self.position = np.clip(self.position + STEP_SIZE * action, -1.0, 1.0).astype(np.float32)
        self.t += 1
        distance = float(np.linalg.norm(self.position - self.goal))
        success = distance < GOAL_RADIUS
        truncated = self.t >= HORIZON and not success
        return self._observation(), -distance, success, truncated, {"success": float(success)}


def make_toy_env(name: str = "toy-point", seed: int | None = None) -> PointEnv:
    return PointEnv(seed)


def toy_dataset(num_episodes: int = 20, noise: float = 0.3, seed: int = 0) -> Dataset:
    """Transitions of a noisy scripted policy, with the dataset conventions of :mod:`fidec.data`."""
    rng = np.random.default_rng(seed)
    env = PointEnv(seed)
    rows: dict[str, list] = {k: [] for k in ("observations", "actions", "rewards", "masks", "terminals")}
    next_observations = []
    for episode in range(num_episodes):
        observation, _ = env.reset(seed=seed * 100_003 + episode)
        while True:
            action = np.clip(5.0 * (observation[2:] - observation[:2]) + noise * rng.normal(size=2), -1, 1)
            next_observation, reward, terminated, truncated, _ = env.step(action)
            rows["observations"].append(observation)
            rows["actions"].append(action)
            rows["rewards"].append(reward)
            rows["masks"].append(1.0 - float(terminated))
            rows["terminals"].append(float(terminated or truncated))
            next_observations.append(next_observation)
            observation = next_observation
            if terminated or truncated:
                break
    arrays = {k: np.asarray(v, np.float32) for k, v in rows.items()}
    arrays["next_observations"] = np.asarray(next_observations, np.float32)
    return Dataset.from_arrays(arrays)


def evaluate_toy(
    policy, env_name: str, num_episodes: int, seed: int, num_envs: int | None = None, video_dir=None
):
    """Evaluate ``policy`` on the point task (episodes batched, seeded per episode as in fidec.envs)."""
    envs = [PointEnv() for _ in range(num_episodes)]
    observations = np.stack(
        [
            env.reset(seed=int(np.random.SeedSequence([seed, k]).generate_state(1)[0]))[0]
            for k, env in enumerate(envs)
        ]
    )
    returns = np.zeros(num_episodes)
    lengths = np.zeros(num_episodes)
    success = np.zeros(num_episodes)
    active = np.ones(num_episodes, bool)
    while active.any():
        actions = np.asarray(policy(observations))
        for k in np.flatnonzero(active):
            observations[k], reward, terminated, truncated, info = envs[k].step(actions[k])
            returns[k] += reward
            lengths[k] += 1
            if terminated or truncated:
                success[k] = info["success"]
                active[k] = False
    return {
        "success": float(success.mean()),
        "return_mean": float(returns.mean()),
        "return_std": float(returns.std()),
        "length_mean": float(lengths.mean()),
        "episodes": float(num_episodes),
        "normalized_score": float("nan"),
    }
