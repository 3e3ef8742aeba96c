"""Benchmark environments by official task name, evaluation, and the task/suite registry.

- :func:`make_env` (``fidec.envs.make``): one Gymnasium environment for an OGBench or D4RL task.
- :func:`make_eval_envs`, :func:`evaluate` (``fidec.envs.evaluate``): batched, seeded evaluation.
- :func:`stack_frames` (``fidec.envs.frame_stack``): k-frame observations for pixel agents.
- ``fidec.envs.registry``: task parsing, benchmark families and named suites (:func:`suite_tasks`).
- ``fidec.envs.dims`` (sizes of each task's spaces), ``fidec.envs.observations`` (Dict observations as
  vectors), ``fidec.envs.scores`` (D4RL normalised scores).

This package never imports :mod:`fidec.data`; the data layer uses it (task names, observation flattening).
"""

from fidec.envs.headless import configure_headless

configure_headless()

from fidec.envs.evaluate import evaluate, make_eval_envs  # noqa: E402
from fidec.envs.frame_stack import FrameStack, stack_frames  # noqa: E402
from fidec.envs.make import make_env  # noqa: E402
from fidec.envs.registry import SUITES, TaskSpec, UnknownTaskError, parse_task, suite_tasks  # noqa: E402

__all__ = [
    "SUITES",
    "FrameStack",
    "TaskSpec",
    "UnknownTaskError",
    "configure_headless",
    "evaluate",
    "make_env",
    "make_eval_envs",
    "parse_task",
    "stack_frames",
    "suite_tasks",
]
