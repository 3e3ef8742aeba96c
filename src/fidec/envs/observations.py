"""Observations as flat vectors: how Dict observations (Gymnasium-Robotics, Minari) become one array.

AntMaze observations from Gymnasium-Robotics are flattened to ``[achieved_goal (x, y), observation (27)]``:
29 numbers, the same content as D4RL's qpos[:15] + qvel[:14]. Other Dict observations concatenate all
keys in sorted order. The environments (:class:`fidec.envs.make.Float32Observation`) and the Minari loader
(:mod:`fidec.data.d4rl`) both use :func:`flatten_observation`, so data and evaluation see the same vector.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

MAZE_OBSERVATION_KEYS: tuple[str, ...] = ("achieved_goal", "observation")


def flatten_observation(observation: np.ndarray | Mapping[str, np.ndarray]) -> np.ndarray:
    """Dict observations -> one vector: AntMaze keeps [achieved_goal, observation]; other Dicts concatenate
    all keys in sorted order. Arrays pass through. Works on single observations and on (T, ...) stacks."""
    if not isinstance(observation, Mapping):
        return np.asarray(observation)
    keys = MAZE_OBSERVATION_KEYS if set(MAZE_OBSERVATION_KEYS) <= set(observation) else sorted(observation)
    parts = [np.asarray(observation[k]) for k in keys]
    return np.concatenate(
        [p.reshape(*p.shape[: p.ndim - 1], -1) if p.ndim else p[None] for p in parts], axis=-1
    )
