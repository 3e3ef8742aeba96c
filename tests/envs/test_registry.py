"""Task names, families and suites."""

from __future__ import annotations

import pytest

from fidec.envs.registry import (
    OGBENCH_STATE_FAMILIES,
    SUITES,
    UnknownTaskError,
    parse_dataset_name,
    parse_task,
    suite_tasks,
)


def test_parse_ogbench_singletask_names():
    spec = parse_task("cube-double-play-singletask-task2-v0")
    assert (spec.benchmark, spec.family, spec.task_id, spec.visual) == (
        "ogbench",
        "cube-double-play",
        2,
        False,
    )
    assert spec.env_id == "cube-double-singletask-task2-v0"
    assert spec.dataset_name == "cube-double-play-v0"
    assert spec.is_manipulation

    visual = parse_task("visual-puzzle-3x3-play-singletask-task1-v0")
    assert visual.visual and visual.family == "puzzle-3x3-play"
    assert visual.dataset_name == "visual-puzzle-3x3-play-v0"
    assert visual.env_id == "visual-puzzle-3x3-singletask-task1-v0"

    maze = parse_task("antmaze-large-navigate-singletask-v0")
    assert maze.task_id is None and maze.env_id == "antmaze-large-singletask-v0"
    assert not maze.is_manipulation


def test_parse_d4rl_names():
    spec = parse_task("antmaze-medium-diverse-v2")
    assert (spec.benchmark, spec.family, spec.is_antmaze) == ("d4rl", "antmaze", True)
    assert parse_task("pen-human-v1").family == "pen"


@pytest.mark.parametrize(
    ("name", "hint"),
    [
        ("cube-single-play-singletask-task9-v0", "task id"),
        ("cube-singel-play-singletask-task1-v0", "Did you mean"),
        ("cube-single-play-v0", "dataset name"),
        ("hopper-medium-v2", "Valid names"),
    ],
)
def test_unknown_names_explain_what_is_valid(name, hint):
    with pytest.raises(UnknownTaskError, match=hint):
        parse_task(name)


def test_suites_are_data_and_parse():
    assert len(suite_tasks("ogbench-state-50")) == 50
    assert {parse_task(t).family for t in suite_tasks("ogbench-state-50")} == set(OGBENCH_STATE_FAMILIES)
    assert all(parse_task(t).visual for t in suite_tasks("ogbench-pixel-5"))
    assert len(suite_tasks("d4rl-antmaze-6")) == 6 and len(suite_tasks("d4rl-adroit-12")) == 12
    assert "scene-play-singletask-task2-v0" in suite_tasks("offline-to-online-5")
    for name in SUITES:
        for task in suite_tasks(name):
            parse_task(task)
    assert all(parse_task(t).is_manipulation for t in suite_tasks("local-tiny"))
    with pytest.raises(UnknownTaskError, match="Valid suites"):
        suite_tasks("ogbench-state-5O")


def test_parse_dataset_name():
    assert parse_dataset_name("puzzle-4x4-noisy-v0") == ("puzzle-4x4", "noisy", False)
    with pytest.raises(UnknownTaskError, match="Unknown OGBench dataset"):
        parse_dataset_name("cube-single-navigate-v0")
