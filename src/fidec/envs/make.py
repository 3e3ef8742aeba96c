"""Build one benchmark environment by its official task name (Gymnasium API).

- OGBench single-task names go through ``ogbench.make_env_and_datasets(name, env_only=True)``: the
  environment terminates when the task is solved and reports ``info['success']``. Pixel (``visual-``)
  tasks render with MuJoCo's OpenGL; on a machine without a display set ``MUJOCO_GL=egl`` before Python
  starts.
- D4RL names are built from Gymnasium-Robotics (no mujoco-py):
  AntMaze ``AntMaze_{UMaze,Medium,Large}-v5`` with D4RL's evaluation layout (fixed start cell ``r`` and goal
  cell ``g``), terminating at the goal (sparse reward 1 there, so the return is 0 or 1 as in D4RL's
  evaluation), 700 steps (umaze) or 1000, observations flattened to ``[x, y, 27 ant features]``;
  Adroit ``AdroitHand{Pen,Door,Hammer,Relocate}-v1`` (dense reward) with D4RL's horizons (pen 100, others 200).
- Every environment returns float32 observations and takes actions in [-1, 1]; an environment with another
  action range is wrapped by ``RescaleAction`` so that [-1, 1] maps onto its bounds.
"""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np

from fidec.envs.observations import flatten_observation
from fidec.envs.registry import TaskSpec, parse_task
from fidec.errors import UserError

R, G = "r", "g"
# D4RL's evaluation mazes: umaze from D4RL's U_MAZE_TEST, medium/large from BIG_MAZE_TEST / HARDEST_MAZE_TEST.
D4RL_ANTMAZE_EVAL_MAPS: dict[str, list[list[Any]]] = {
    "umaze": [
        [1, 1, 1, 1, 1],
        [1, R, 0, 0, 1],
        [1, 1, 1, 0, 1],
        [1, G, 0, 0, 1],
        [1, 1, 1, 1, 1],
    ],
    "medium": [
        [1, 1, 1, 1, 1, 1, 1, 1],
        [1, R, 0, 1, 1, 0, 0, 1],
        [1, 0, 0, 1, 0, 0, 0, 1],
        [1, 1, 0, 0, 0, 1, 1, 1],
        [1, 0, 0, 1, 0, 0, 0, 1],
        [1, 0, 1, 0, 0, 1, 0, 1],
        [1, 0, 0, 0, 1, 0, G, 1],
        [1, 1, 1, 1, 1, 1, 1, 1],
    ],
    "large": [
        [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1],
        [1, R, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1],
        [1, 0, 1, 1, 0, 1, 0, 1, 0, 1, 0, 1],
        [1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1],
        [1, 0, 1, 1, 1, 1, 0, 1, 1, 1, 0, 1],
        [1, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 1],
        [1, 1, 0, 1, 0, 1, 0, 1, 0, 1, 1, 1],
        [1, 0, 0, 1, 0, 0, 0, 1, 0, G, 0, 1],
        [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1],
    ],
}
ANTMAZE_ENV_IDS = {"umaze": "AntMaze_UMaze-v5", "medium": "AntMaze_Medium-v5", "large": "AntMaze_Large-v5"}
ANTMAZE_HORIZONS = {"umaze": 700, "medium": 1000, "large": 1000}
ADROIT_ENV_IDS = {
    "pen": "AdroitHandPen-v1",
    "door": "AdroitHandDoor-v1",
    "hammer": "AdroitHandHammer-v1",
    "relocate": "AdroitHandRelocate-v1",
}
ADROIT_HORIZONS = {"pen": 100, "door": 200, "hammer": 200, "relocate": 200}


class MissingDependencyError(UserError, ImportError):
    """A task needs an optional package that is not installed; the message names the pip command."""


class Float32Observation(gymnasium.ObservationWrapper):
    """Observations as float32 vectors; Dict observations flattened by
    :func:`fidec.envs.observations.flatten_observation`."""

    def __init__(self, env: gymnasium.Env):
        super().__init__(env)
        sample = flatten_observation(env.observation_space.sample())
        if env.observation_space.dtype == np.uint8:
            self.observation_space = env.observation_space
        else:
            self.observation_space = gymnasium.spaces.Box(
                -np.inf, np.inf, shape=sample.shape, dtype=np.float32
            )

    def observation(self, observation):
        flat = flatten_observation(observation)
        return flat if flat.dtype == np.uint8 else flat.astype(np.float32)


def _gymnasium_robotics_env(spec: TaskSpec, render_mode: str | None) -> gymnasium.Env:
    try:
        import gymnasium_robotics
    except ImportError as error:
        raise MissingDependencyError(
            f"{spec.name!r} needs gymnasium-robotics (AntMaze, Adroit), which is not installed: "
            "pip install 'fidec[d4rl]'."
        ) from error
    gymnasium.register_envs(gymnasium_robotics)
    if spec.is_antmaze:
        maze = spec.name.split("-")[1]
        return gymnasium.make(
            ANTMAZE_ENV_IDS[maze],
            maze_map=D4RL_ANTMAZE_EVAL_MAPS[maze],
            continuing_task=False,
            reset_target=False,
            include_cfrc_ext_in_observation=False,
            max_episode_steps=ANTMAZE_HORIZONS[maze],
            render_mode=render_mode,
        )
    return gymnasium.make(
        ADROIT_ENV_IDS[spec.family], max_episode_steps=ADROIT_HORIZONS[spec.family], render_mode=render_mode
    )


def make_env(name: str, seed: int | None = None, render: bool = False, **kwargs: Any) -> gymnasium.Env:
    """The environment of task ``name`` (see the module docstring). ``seed`` seeds its first reset and its
    action space; ``render=True`` makes ``env.render()`` return RGB frames."""
    spec = parse_task(name)
    if spec.benchmark == "ogbench":
        import ogbench

        env = ogbench.make_env_and_datasets(name, env_only=True, **kwargs)
    else:
        env = _gymnasium_robotics_env(spec, "rgb_array" if render else None)
    env = Float32Observation(env)
    space = env.action_space
    assert isinstance(space, gymnasium.spaces.Box), f"{name}: continuous (Box) actions expected, got {space}"
    if not (np.allclose(space.low, -1.0) and np.allclose(space.high, 1.0)):
        env = gymnasium.wrappers.RescaleAction(env, np.float32(-1.0), np.float32(1.0))
    if seed is not None:
        env.reset(seed=seed)
        env.action_space.seed(seed)
    return env


def render_frame(env: gymnasium.Env) -> np.ndarray:
    """An RGB frame of the current state (OGBench renders without a render mode; Gymnasium-Robotics needs
    ``render=True`` at :func:`make_env`)."""
    frame = env.render()
    if frame is None:
        raise ValueError("The environment returned no frame: build it with make_env(..., render=True).")
    return np.asarray(frame, dtype=np.uint8)
