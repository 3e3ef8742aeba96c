"""Task names, benchmark families and named suites, as data.

Task names are the official ones of each benchmark:

- OGBench single-task: ``[visual-]<env>-<dataset type>-singletask[-task<k>]-v0``, e.g.
  ``cube-double-play-singletask-task2-v0``. Without ``-task<k>`` OGBench uses the environment's default task.
  The *family* is ``<env>-<dataset type>`` (``cube-double-play``); the dataset file is
  ``[visual-]<family>-v0.npz`` (``cube-double-play-v0.npz``).
- D4RL: ``antmaze-<maze>-v2`` (AntMaze, 6 datasets) and ``<hand task>-<quality>-v1`` (Adroit, 12 datasets).

:func:`parse_task` turns a name into a :class:`TaskSpec`; :func:`suite_tasks` expands a suite name.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Literal

from fidec.errors import UserError

Benchmark = Literal["ogbench", "d4rl"]

# The 10 OGBench state families of the FD evaluation (docs/method.md section 8).
OGBENCH_STATE_FAMILIES: tuple[str, ...] = (
    "antmaze-large-navigate",
    "antmaze-giant-navigate",
    "humanoidmaze-medium-navigate",
    "humanoidmaze-large-navigate",
    "antsoccer-arena-navigate",
    "cube-single-play",
    "cube-double-play",
    "scene-play",
    "puzzle-3x3-play",
    "puzzle-4x4-play",
)

# Every OGBench environment that has single-task variants, with its dataset types.
OGBENCH_DATASET_TYPES: dict[str, tuple[str, ...]] = {
    "pointmaze-medium": ("navigate", "stitch"),
    "pointmaze-large": ("navigate", "stitch"),
    "pointmaze-giant": ("navigate", "stitch"),
    "pointmaze-teleport": ("navigate", "stitch"),
    "antmaze-medium": ("navigate", "stitch", "explore"),
    "antmaze-large": ("navigate", "stitch", "explore"),
    "antmaze-giant": ("navigate", "stitch"),
    "antmaze-teleport": ("navigate", "stitch", "explore"),
    "humanoidmaze-medium": ("navigate", "stitch"),
    "humanoidmaze-large": ("navigate", "stitch"),
    "humanoidmaze-giant": ("navigate", "stitch"),
    "antsoccer-arena": ("navigate", "stitch"),
    "antsoccer-medium": ("navigate", "stitch"),
    "cube-single": ("play", "noisy"),
    "cube-double": ("play", "noisy"),
    "cube-triple": ("play", "noisy"),
    "cube-quadruple": ("play", "noisy"),
    "scene": ("play", "noisy"),
    "puzzle-3x3": ("play", "noisy"),
    "puzzle-4x4": ("play", "noisy"),
    "puzzle-4x5": ("play", "noisy"),
    "puzzle-4x6": ("play", "noisy"),
}

# Environments whose datasets fidec can generate locally with OGBench's scripted oracles.
MANIPULATION_ENVS: tuple[str, ...] = (
    "cube-single",
    "cube-double",
    "cube-triple",
    "cube-quadruple",
    "scene",
    "puzzle-3x3",
    "puzzle-4x4",
    "puzzle-4x5",
    "puzzle-4x6",
)
OGBENCH_NUM_TASKS = 5

D4RL_ANTMAZE_TASKS: tuple[str, ...] = (
    "antmaze-umaze-v2",
    "antmaze-umaze-diverse-v2",
    "antmaze-medium-play-v2",
    "antmaze-medium-diverse-v2",
    "antmaze-large-play-v2",
    "antmaze-large-diverse-v2",
)
D4RL_ADROIT_TASKS: tuple[str, ...] = tuple(
    f"{hand}-{quality}-v1"
    for hand in ("pen", "door", "hammer", "relocate")
    for quality in ("human", "cloned", "expert")
)
D4RL_TASKS: tuple[str, ...] = D4RL_ANTMAZE_TASKS + D4RL_ADROIT_TASKS


def _singletask(family: str, task_id: int, visual: bool = False) -> str:
    return f"{'visual-' if visual else ''}{family}-singletask-task{task_id}-v0"


SUITES: dict[str, tuple[str, ...]] = {
    "ogbench-state-50": tuple(
        _singletask(family, k) for family in OGBENCH_STATE_FAMILIES for k in range(1, OGBENCH_NUM_TASKS + 1)
    ),
    "ogbench-pixel-5": tuple(
        _singletask(family, 1, visual=True)
        for family in (
            "cube-single-play",
            "cube-double-play",
            "scene-play",
            "puzzle-3x3-play",
            "puzzle-4x4-play",
        )
    ),
    "d4rl-antmaze-6": D4RL_ANTMAZE_TASKS,
    "d4rl-adroit-12": D4RL_ADROIT_TASKS,
    "offline-to-online-5": (
        _singletask("humanoidmaze-medium-navigate", 1),
        _singletask("antsoccer-arena-navigate", 4),
        _singletask("cube-double-play", 2),
        _singletask("scene-play", 2),
        _singletask("puzzle-4x4-play", 4),
    ),
    # Tasks whose datasets can be generated on this machine (``fidec data generate``): no download needed.
    "local-tiny": (
        _singletask("cube-single-play", 1),
        _singletask("puzzle-3x3-play", 1),
    ),
}


class UnknownTaskError(UserError, ValueError):
    """A task or suite name that fidec does not know; the message lists the valid choices."""


@dataclass(frozen=True)
class TaskSpec:
    """What a task name means.

    ``family``: OGBench ``<env>-<dataset type>`` or the D4RL domain (``antmaze``, ``pen``, ...);
    ``env_id``: the id the environment is built from; ``dataset_name``: the dataset file stem.
    """

    name: str
    benchmark: Benchmark
    family: str
    task_id: int | None
    visual: bool
    env_id: str
    dataset_name: str

    @property
    def is_antmaze(self) -> bool:
        return self.benchmark == "d4rl" and self.family == "antmaze"

    @property
    def is_manipulation(self) -> bool:
        return self.benchmark == "ogbench" and self.family.rsplit("-", 1)[0] in MANIPULATION_ENVS


_OGBENCH_SINGLETASK = re.compile(
    r"^(?P<visual>visual-)?(?P<env>[a-z0-9]+(?:-[a-z0-9]+)*?)-(?P<dtype>[a-z]+)-singletask(?:-task(?P<task>\d+))?-v0$"
)
_OGBENCH_DATASET = re.compile(
    r"^(?P<visual>visual-)?(?P<env>[a-z0-9]+(?:-[a-z0-9]+)*?)-(?P<dtype>[a-z]+)-v0$"
)


def _closest(name: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(name, choices, n=3, cutoff=0.6)
    return f" Did you mean: {', '.join(close)}?" if close else ""


def known_task_examples() -> list[str]:
    """Every single-task name fidec recognises (OGBench state/visual tasks 1-5 and the D4RL tasks)."""
    names = [
        _singletask(f"{env}-{dtype}", k, visual)
        for env, dtypes in OGBENCH_DATASET_TYPES.items()
        for dtype in dtypes
        for k in range(1, OGBENCH_NUM_TASKS + 1)
        for visual in (False, True)
    ]
    return names + list(D4RL_TASKS)


def parse_task(name: str) -> TaskSpec:
    """Parse an official task name into a :class:`TaskSpec`; raise :class:`UnknownTaskError` otherwise."""
    if name in D4RL_TASKS:
        family = name.split("-", 1)[0]
        return TaskSpec(name, "d4rl", family, None, False, env_id=name, dataset_name=name)
    match = _OGBENCH_SINGLETASK.match(name)
    if (
        match
        and match["env"] in OGBENCH_DATASET_TYPES
        and match["dtype"] in OGBENCH_DATASET_TYPES[match["env"]]
    ):
        visual = match["visual"] is not None
        task_id = int(match["task"]) if match["task"] else None
        if task_id is not None and not 1 <= task_id <= OGBENCH_NUM_TASKS:
            raise UnknownTaskError(
                f"OGBench task id must be 1..{OGBENCH_NUM_TASKS}, got task{task_id} in {name!r}."
            )
        prefix = "visual-" if visual else ""
        suffix = f"-task{task_id}" if task_id else ""
        return TaskSpec(
            name=name,
            benchmark="ogbench",
            family=f"{match['env']}-{match['dtype']}",
            task_id=task_id,
            visual=visual,
            env_id=f"{prefix}{match['env']}-singletask{suffix}-v0",
            dataset_name=f"{prefix}{match['env']}-{match['dtype']}-v0",
        )
    hint = ""
    dataset_match = _OGBENCH_DATASET.match(name)
    if dataset_match and dataset_match["env"] in OGBENCH_DATASET_TYPES:
        hint = (
            f" {name!r} is an OGBench dataset name; fidec trains on single-task variants such as "
            f"{name[:-3]}-singletask-task1-v0."
        )
    raise UnknownTaskError(
        f"Unknown task {name!r}.{hint}{_closest(name, known_task_examples())} Valid names: OGBench single-task "
        "names '[visual-]<env>-<dataset>-singletask[-task1..5]-v0' with <env>-<dataset> one of "
        f"{', '.join(f'{e}-{d}' for e, ds in OGBENCH_DATASET_TYPES.items() for d in ds)}; "
        f"D4RL names {', '.join(D4RL_TASKS)}."
    )


def parse_dataset_name(dataset_name: str) -> tuple[str, str, bool]:
    """Split an OGBench dataset name ``[visual-]<env>-<type>-v0`` into (env, dataset type, visual)."""
    match = _OGBENCH_DATASET.match(dataset_name)
    if (
        not match
        or match["env"] not in OGBENCH_DATASET_TYPES
        or match["dtype"] not in OGBENCH_DATASET_TYPES[match["env"]]
    ):
        valid = [f"{e}-{d}-v0" for e, ds in OGBENCH_DATASET_TYPES.items() for d in ds]
        raise UnknownTaskError(
            f"Unknown OGBench dataset {dataset_name!r}.{_closest(dataset_name, valid)} Valid: {', '.join(valid)}."
        )
    return match["env"], match["dtype"], match["visual"] is not None


def suite_tasks(name: str) -> list[str]:
    """The task names of a named suite (see :data:`SUITES`)."""
    if name not in SUITES:
        raise UnknownTaskError(
            f"Unknown suite {name!r}.{_closest(name, list(SUITES))} Valid suites: {', '.join(SUITES)}."
        )
    return list(SUITES[name])
