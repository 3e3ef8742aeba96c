"""Observation and action sizes of a task's environment, known before any dataset is read.

D4RL sizes come from a table (so a dataset can be checked when gymnasium-robotics is not installed);
they are those of the D4RL files and of fidec's Gymnasium-Robotics environments (AntMaze flattened to
``[x, y, 27 ant features]``, see :mod:`fidec.envs.observations`), checked against the environments in
``tests/test_envs_dims.py``. OGBench sizes are read from the environment itself (OGBench is always
installed).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fidec.envs.make import make_env
from fidec.envs.registry import parse_task

# D4RL family -> (observation size, action size), as in the D4RL .hdf5 files.
D4RL_DIMS: dict[str, tuple[int, int]] = {
    "antmaze": (29, 8),
    "pen": (45, 24),
    "door": (39, 28),
    "hammer": (46, 26),
    "relocate": (39, 30),
}


@dataclass(frozen=True)
class TaskDims:
    """The shape of one observation and the number of action dimensions of a task's environment."""

    observation_shape: tuple[int, ...]
    action_dim: int


def task_dims(task_name: str) -> TaskDims:
    """Sizes of ``task_name``'s environment (D4RL: from :data:`D4RL_DIMS`; OGBench: from the environment)."""
    spec = parse_task(task_name)
    if spec.benchmark == "d4rl":
        obs_dim, action_dim = D4RL_DIMS[spec.family]
        return TaskDims((obs_dim,), action_dim)
    env = make_env(task_name)
    try:
        return TaskDims(tuple(env.observation_space.shape or ()), int(np.prod(env.action_space.shape or ())))
    finally:
        env.close()
