"""The sizes fidec checks datasets against are those of the environments it evaluates in."""

from __future__ import annotations

import pytest

from fidec.envs.dims import D4RL_DIMS, TaskDims, task_dims
from fidec.envs.make import make_env
from fidec.envs.registry import D4RL_TASKS, parse_task

pytestmark = pytest.mark.env


def test_every_d4rl_family_has_a_size_entry():
    assert {parse_task(t).family for t in D4RL_TASKS} == set(D4RL_DIMS)
    assert task_dims("door-human-v1") == TaskDims((39,), 28)


@pytest.mark.parametrize(
    "task", ["antmaze-umaze-v2", "pen-human-v1", "door-human-v1", "hammer-human-v1", "relocate-human-v1"]
)
def test_the_d4rl_table_matches_the_gymnasium_robotics_environments(task):
    pytest.importorskip("gymnasium_robotics")
    env = make_env(task)
    assert task_dims(task) == TaskDims(env.observation_space.shape, env.action_space.shape[0])
    env.close()


def test_ogbench_sizes_come_from_the_environment():
    assert task_dims("cube-single-play-singletask-task1-v0") == TaskDims((28,), 5)
    assert task_dims("puzzle-3x3-play-singletask-task1-v0").action_dim == 5
