"""The environment side of the online phase: one environment per seed, stepped in lock-step.

Transitions follow the dataset's conventions (FQL's online loop): ``masks = 1 - terminated`` (a time
limit still bootstraps), ``terminals = terminated or truncated`` (episode boundary), and D4RL AntMaze
rewards shifted by -1 as in its dataset.

Exact resume: every episode starts with ``reset(seed=episode_seed(seed, episode))``, so an environment
mid-episode is restored by resetting with that seed and replaying the episode's actions so far (MuJoCo
is deterministic).  A checkpoint stores, per seed, the episode index, its actions so far, its return
and the current observation (checked after the replay).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fidec.envs import make_env, parse_task

EnvFactory = Callable[[str], Any]


def episode_seed(seed: int, episode: int) -> int:
    """Reset seed of online episode ``episode`` of training seed ``seed``."""
    return int(np.random.SeedSequence([seed, episode, 0x0A11]).generate_state(1)[0] % (2**31 - 1))


def reward_shift(env_name: str) -> float:
    """-1 for D4RL AntMaze (its dataset rewards are r - 1), else 0."""
    try:
        return -1.0 if parse_task(env_name).is_antmaze else 0.0
    except ValueError:
        return 0.0


def default_env_factory(env_name: str):
    return make_env(env_name)


@dataclass
class EpisodeCursor:
    """Where one seed's environment is: episode index, actions taken in it, its return so far."""

    episode: int = 0
    actions: list = field(default_factory=list)
    episode_return: float = 0.0


class OnlineEnvs:
    """One environment per training seed; ``step`` takes the (S, action_dim) actions of all seeds."""

    def __init__(
        self,
        env_name: str,
        seeds: Sequence[int],
        env_factory: EnvFactory | None = None,
        report: Callable[[str], None] = print,
    ):
        factory = env_factory or default_env_factory
        self.seeds = list(seeds)
        self.envs = [factory(env_name) for _ in self.seeds]
        self.shift = reward_shift(env_name)
        self.cursors = [EpisodeCursor() for _ in self.seeds]
        self.finished: list[list[dict]] = [[] for _ in self.seeds]
        self.report = report
        self.observations = np.stack([self._reset(i) for i in range(len(self.seeds))]).astype(np.float32)

    def _reset(self, i: int) -> np.ndarray:
        cursor = self.cursors[i]
        cursor.actions, cursor.episode_return = [], 0.0
        observation, _ = self.envs[i].reset(seed=episode_seed(self.seeds[i], cursor.episode))
        return np.asarray(observation, np.float32)

    def step(self, actions: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Step every environment; return the transitions (S rows) and the observations to act on next."""
        actions = np.clip(np.asarray(actions, np.float32), -1.0, 1.0)
        rows = []
        for i, env in enumerate(self.envs):
            cursor = self.cursors[i]
            next_observation, reward, terminated, truncated, info = env.step(actions[i])
            next_observation = np.asarray(next_observation, np.float32)
            rows.append(
                {
                    "observations": self.observations[i],
                    "actions": actions[i],
                    "rewards": np.float32(float(reward) + self.shift),
                    "masks": np.float32(1.0 - float(terminated)),
                    "terminals": np.float32(float(terminated or truncated)),
                    "next_observations": next_observation,
                }
            )
            cursor.actions.append(actions[i])
            cursor.episode_return += float(reward)
            if terminated or truncated:
                success = info.get("success")
                self.finished[i].append(
                    {
                        "return": cursor.episode_return,
                        "length": len(cursor.actions),
                        "success": None if success is None else float(success),
                    }
                )
                cursor.episode += 1
                next_observation = self._reset(i)
            self.observations[i] = next_observation
        transitions = {k: np.stack([r[k] for r in rows]) for k in rows[0]}
        return transitions, self.observations.copy()

    def drain_metrics(self) -> list[dict[str, float]]:
        """Per seed: episodes finished since the last call, and their mean return / length / success."""
        out = []
        for i in range(len(self.seeds)):
            episodes = self.finished[i]
            metrics: dict[str, float] = {"online/episodes": float(len(episodes))}
            if episodes:
                metrics["online/return_mean"] = float(np.mean([e["return"] for e in episodes]))
                metrics["online/length_mean"] = float(np.mean([e["length"] for e in episodes]))
                successes = [e["success"] for e in episodes if e["success"] is not None]
                if successes:
                    metrics["online/success_mean"] = float(np.mean(successes))
            out.append(metrics)
            self.finished[i] = []
        return out

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The cursors and current observations, for a checkpoint."""
        lengths = [len(c.actions) for c in self.cursors]
        action_dim = int(np.prod(self.envs[0].action_space.shape))
        padded = np.zeros((len(self.seeds), max(lengths + [1]), action_dim), np.float32)
        for i, cursor in enumerate(self.cursors):
            if cursor.actions:
                padded[i, : len(cursor.actions)] = np.stack(cursor.actions)
        return {
            "episode": np.asarray([c.episode for c in self.cursors], np.int64),
            "episode_length": np.asarray(lengths, np.int64),
            "episode_return": np.asarray([c.episode_return for c in self.cursors], np.float64),
            "episode_actions": padded,
            "observations": self.observations.copy(),
        }

    def restore(self, arrays: dict[str, np.ndarray]) -> None:
        """Put every environment back where :meth:`to_arrays` found it (reset with the episode's seed, replay)."""
        for i in range(len(self.seeds)):
            cursor = self.cursors[i]
            cursor.episode = int(arrays["episode"][i])
            observation = self._reset(i)
            for action in arrays["episode_actions"][i, : int(arrays["episode_length"][i])]:
                observation, reward, _, _, _ = self.envs[i].step(action)
                cursor.actions.append(np.asarray(action, np.float32))
                cursor.episode_return += float(reward)
            observation = np.asarray(observation, np.float32)
            if not np.array_equal(observation, arrays["observations"][i]):
                self.report(
                    f"warning: replaying seed {self.seeds[i]}'s episode did not reproduce the saved observation; "
                    "the environment is not deterministic, so the resumed online phase may differ slightly"
                )
            self.observations[i] = arrays["observations"][i]
            cursor.episode_return = float(arrays["episode_return"][i])
