"""Rewards and masks of OGBench single-task data from the simulator state, with OGBench's own relabelling.

``ogbench.relabel_utils.relabel_dataset`` reads ``qpos`` (and ``button_states``) only, so visual datasets
are relabelled with the environment of the task's state twin and no frame is rendered. The state must be
finite: a NaN in ``qpos`` would silently turn every success into a failure, so it is refused first.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from fidec.data.validate import check_finite

RELABEL_KEYS: tuple[str, ...] = ("qpos", "qvel", "button_states")


def state_twin(task_name: str) -> str:
    """'visual-cube-single-play-singletask-task1-v0' -> 'cube-single-play-singletask-task1-v0'."""
    return task_name.removeprefix("visual-")


def singletask_env_name(task_name: str) -> str:
    """The environment id OGBench relabels with: the task name without its dataset type
    ('cube-single-play-singletask-task1-v0' -> 'cube-single-singletask-task1-v0')."""
    splits = task_name.split("-")
    pos = splits.index("singletask")
    return "-".join(splits[: pos - 1] + splits[pos:])


def relabel(task_name: str, info: Mapping[str, np.ndarray], source: str) -> tuple[np.ndarray, np.ndarray]:
    """(rewards, masks) per row by OGBench's ``relabel_dataset`` on qpos/button_states (no rendering)."""
    import ogbench  # builds a MuJoCo environment
    from ogbench.relabel_utils import relabel_dataset

    check_finite(info, source, keys=RELABEL_KEYS)
    twin = state_twin(task_name)
    env = ogbench.make_env_and_datasets(twin, env_only=True)
    data = dict(info)
    relabel_dataset(singletask_env_name(twin), env, data)
    env.close()
    return data["rewards"], data["masks"]
