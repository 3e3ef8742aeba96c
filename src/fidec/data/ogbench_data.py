"""OGBench single-task datasets, loaded with OGBench's own loader and reward relabelling.

``ogbench.make_env_and_datasets(task, dataset_path=<file>)`` reads ``<file>`` and its ``-val`` sibling, drops
each episode's final row to form ``next_observations``, sets ``terminals`` to the episode ends and, for
single-task names, adds ``rewards`` and ``masks``:

- locomotion (maze, soccer): r = success - 1, mask = 1 - success (success: within the goal tolerance);
- manipulation (cube, scene, puzzle): r = (#subgoals achieved) - (#subgoals), mask = 1 - all achieved.

fidec never re-implements that step. It always passes an explicit ``dataset_path`` (OGBench would otherwise
try to download missing files) and checks the files before handing them over, so that a missing or damaged
file fails with a message saying where the file was expected and how to get it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from fidec.data.dataset import Dataset
from fidec.data.npz import check_ogbench_layout
from fidec.data.paths import dataset_files
from fidec.data.validate import (
    ActionPolicy,
    DatasetError,
    check_action_range,
    check_env_dims,
    check_finite,
    file_read_error,
)
from fidec.envs.registry import TaskSpec, parse_task

INFO_KEYS: tuple[str, ...] = ("qpos", "qvel", "button_states")


class DatasetNotFoundError(DatasetError, FileNotFoundError):
    """A dataset file is not where it was expected; the message says how to obtain it."""


def missing_dataset_message(spec: TaskSpec, train_path: Path, val_path: Path) -> str:
    missing = [str(p) for p in (train_path, val_path) if not p.exists()]
    directory = train_path.parent
    how = [
        f'download them on a machine with internet access: python -c "import ogbench; '
        f"ogbench.download_datasets(['{spec.dataset_name}'], '{directory}')\" and copy both files here",
        "or point fidec to the folder that holds them (dataset_dir=..., --dataset-dir, or $FIDEC_DATA_DIR)",
    ]
    if spec.is_manipulation and not spec.visual:
        how.append(
            f"or generate the dataset locally with OGBench's scripted oracles: "
            f"`fidec data generate --env {spec.dataset_name}` (or load_dataset(..., generate_if_missing=True))"
        )
    return (
        f"OGBench dataset for {spec.name!r} not found: missing {', '.join(missing)}. "
        f"Expected {train_path.name} and {val_path.name} in {directory}. To obtain them, "
        + "; ".join(how)
        + "."
    )


def _to_dataset(raw: dict[str, np.ndarray], source: str, action_policy: ActionPolicy) -> Dataset:
    check_finite({k: v for k, v in raw.items() if k in ("observations", "actions", "rewards")}, source)
    raw = dict(raw, actions=check_action_range(raw["actions"], source, policy=action_policy))
    dataset = Dataset.from_arrays(raw, extra_keys=INFO_KEYS)
    return dataset.validate(source)


def load_ogbench(
    task_name: str,
    dataset_dir: str | os.PathLike | None = None,
    dataset_path: str | os.PathLike | None = None,
    action_policy: ActionPolicy = "refuse",
) -> tuple[Dataset, Dataset]:
    """(train, val) for an OGBench single-task name, from ``<dataset_dir>/<dataset>.npz`` (+ ``-val.npz``)
    or from an explicit ``dataset_path`` to the training file (its ``-val`` sibling must exist too).

    ``visual-`` names give :class:`fidec.data.visual.VisualDataset` (frames memory-mapped, 3-frame stacks)."""
    import ogbench

    spec = parse_task(task_name)
    if spec.benchmark != "ogbench":
        raise ValueError(f"{task_name!r} is not an OGBench task.")
    if spec.visual:  # frames stored once, stacked on device: see fidec.data.visual
        from fidec.data.visual import load_visual_ogbench

        return load_visual_ogbench(task_name, dataset_dir, dataset_path, action_policy=action_policy)
    train_path, val_path = dataset_files(spec.dataset_name, dataset_dir, dataset_path)
    if not (train_path.exists() and val_path.exists()):
        raise DatasetNotFoundError(missing_dataset_message(spec, train_path, val_path))
    headers = {}
    for path in (train_path, val_path):
        headers[path] = check_ogbench_layout(path)
        for key in ("qpos", "qvel"):
            if key not in headers[path]:
                raise DatasetError(
                    f"{path}: missing '{key}', which OGBench needs to relabel rewards for single-task names. "
                    "Use the official file or one written by `fidec data generate`."
                )
    env = ogbench.make_env_and_datasets(task_name, env_only=True)
    for path, header in headers.items():
        check_env_dims(
            header["observations"][0][1:],
            header["actions"][0][1],
            env.observation_space.shape,
            int(np.prod(env.action_space.shape)),
            task_name,
            str(path),
        )
    try:
        train_raw, val_raw = ogbench.make_env_and_datasets(
            task_name, dataset_path=str(train_path), dataset_only=True, cur_env=env, add_info=True
        )
    except (KeyError, IndexError, ValueError, OSError, EOFError) as error:
        raise file_read_error(train_path, error) from error
    train = _to_dataset(train_raw, str(train_path), action_policy)
    val = _to_dataset(val_raw, str(val_path), action_policy)
    return train, val
