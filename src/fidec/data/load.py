"""``load_dataset``: one entry point from a task name or a file to (train, val) Datasets.

Resolution (directories: see :mod:`fidec.data.paths`):

- A path: ``.npz`` (an OGBench file, relabelled with the task its name implies or ``task``, or a file of
  ready transitions with rewards/masks/next_observations), ``.hdf5`` (D4RL), or a Minari dataset folder.
- An OGBench single-task name: ``<dataset_dir>/<dataset>.npz`` + ``-val.npz``. When absent and
  ``generate_if_missing`` is set (manipulation families only), a cached generated dataset is used, or one
  is generated into the cache with OGBench's oracles (``episodes`` defaults to the official count).
- A D4RL name: ``<dataset_dir>/<name>.hdf5``, else the matching Minari dataset (``D4RL/antmaze/umaze-v1``,
  ...) under Minari's root. D4RL data have no validation split (val is None).

Whenever the task is known, the data's observation and action sizes are checked against the task's
environment (:func:`fidec.envs.dims.task_dims`) before anything trains on them. Nothing is downloaded
here: ``fidec data download`` (:mod:`fidec.data.download`) is the opt-in way to fetch official files.
"""

from __future__ import annotations

import os
from pathlib import Path

from fidec.data.d4rl import MINARI_DATASET_IDS, is_minari_folder, load_d4rl_hdf5, load_minari
from fidec.data.dataset import CORE_KEYS, Dataset
from fidec.data.errors import DatasetError, DatasetNotFoundError
from fidec.data.generate import generate
from fidec.data.npz import inspect_npz, read_npz
from fidec.data.ogbench_data import load_ogbench
from fidec.data.paths import (
    d4rl_file,
    dataset_stem,
    has_dataset_suffix,
    is_hdf5,
    is_npz,
    is_val_file,
    minari_root,
    regular_file,
)
from fidec.data.validate import ActionPolicy, check_action_range, check_env_dims, check_finite
from fidec.data.visual import VisualDataset
from fidec.envs.dims import task_dims
from fidec.envs.registry import D4RL_TASKS, UnknownTaskError, parse_dataset_name, parse_task


def looks_like_path(name: str) -> bool:
    return has_dataset_suffix(name) or os.sep in name or Path(name).expanduser().is_dir()


def _ogbench_task_for_file(path: Path, task: str | None) -> str:
    if task is not None:
        return task
    stem = dataset_stem(path)
    try:
        env, dataset_type, visual = parse_dataset_name(stem)
    except UnknownTaskError as error:
        raise DatasetError(
            f"{path}: cannot tell which OGBench task this file belongs to (its name is not an OGBench dataset "
            "name). Pass the task, e.g. load_dataset('cube-single-play-singletask-task1-v0', dataset_path=...)."
        ) from error
    return f"{'visual-' if visual else ''}{env}-{dataset_type}-singletask-v0"


def _not_a_dataset_folder(path: Path) -> DatasetError:
    """A folder that is not a Minari dataset: say what --dataset takes and what to pass instead."""
    names = [p.name for p in path.iterdir() if has_dataset_suffix(p.name) and not p.name.startswith(".")]
    files = sorted(names, key=lambda name: (is_val_file(name), name))  # a training file first
    inside = (
        f"It holds {', '.join(files[:4])}{' ...' if len(files) > 4 else ''}: pass one file, e.g. "
        f"--dataset {path / files[0]}, or pass the folder as --dataset-dir {path} to load the task's "
        "official file names from it."
        if files
        else "It holds no .npz or .hdf5 file."
    )
    return DatasetError(
        f"{path} is a folder, not a dataset: --dataset takes an OGBench .npz file (with its -val.npz beside "
        f"it), a D4RL .hdf5 file or a Minari dataset folder (one holding data/metadata.json). {inside}"
    )


def check_against_task(dataset: Dataset | VisualDataset, task: str | None, source: str):
    """Refuse data whose observation or action size does not fit the environment of ``task`` (when given)."""
    if task is None:
        return dataset
    dims = task_dims(task)
    obs_shape = dataset.obs_dim if isinstance(dataset, VisualDataset) else dataset.observations.shape[1:]
    check_env_dims(obs_shape, dataset.action_dim, dims.observation_shape, dims.action_dim, task, source)
    return dataset


def _load_transitions_npz(path: Path, action_policy: ActionPolicy) -> Dataset:
    """A ``.npz`` of ready transitions (the :data:`CORE_KEYS`, plus any extra per-row arrays)."""
    arrays = read_npz(path)
    check_finite(arrays, str(path))
    arrays["actions"] = check_action_range(arrays["actions"], str(path), policy=action_policy)
    extras = tuple(k for k in arrays if k not in CORE_KEYS)
    return Dataset.from_arrays(arrays, extra_keys=extras).validate(str(path))


def load_path(
    path: str | os.PathLike, task: str | None = None, action_policy: ActionPolicy = "refuse"
) -> tuple[Dataset | VisualDataset, Dataset | VisualDataset | None]:
    """(train, val) from a file or folder; see the module docstring."""
    path = regular_file(Path(path).expanduser())
    if not path.exists():
        raise DatasetNotFoundError(f"No dataset at {path}: the file or folder does not exist.")
    if path.is_dir():
        if not is_minari_folder(path):
            raise _not_a_dataset_folder(path)
        dataset = load_minari(path, task_name=task, action_policy=action_policy)
        return check_against_task(dataset, task, str(path)), None
    if is_hdf5(path):
        dataset = load_d4rl_hdf5(path, task_name=task or path.stem, action_policy=action_policy)
        return check_against_task(dataset, task, str(path)), None
    if not is_npz(path):
        raise DatasetError(
            f"{path}: unknown dataset format; expected .npz (OGBench), .hdf5 (D4RL) or a Minari folder."
        )
    if set(CORE_KEYS) <= set(inspect_npz(path)):
        return check_against_task(_load_transitions_npz(path, action_policy), task, str(path)), None
    return load_ogbench(_ogbench_task_for_file(path, task), dataset_path=path, action_policy=action_policy)


def load_dataset(
    env_name: str,
    dataset_dir: str | os.PathLike | None = None,
    generate_if_missing: bool = False,
    episodes: int | None = None,
    seed: int = 0,
    dataset_path: str | os.PathLike | None = None,
    action_policy: ActionPolicy = "refuse",
    generation_workers: int = 1,
) -> tuple[Dataset | VisualDataset, Dataset | VisualDataset | None]:
    """(train, val) for a task name or a dataset path (see the module docstring).

    ``episodes``/``seed``/``generation_workers`` apply only to generated OGBench datasets.
    ``action_policy``: what to do with actions outside [-1, 1] ('refuse', 'clip' or 'rescale').
    """
    if dataset_path is None and looks_like_path(env_name):
        return load_path(env_name, action_policy=action_policy)
    spec = parse_task(env_name)
    if dataset_path is not None:
        return load_path(dataset_path, task=env_name, action_policy=action_policy)
    if spec.benchmark == "ogbench":
        try:
            return load_ogbench(env_name, dataset_dir=dataset_dir, action_policy=action_policy)
        except DatasetNotFoundError:
            # Rendering runs at a few frames per second on a CPU: pixel data only when episodes are given.
            renderable = not spec.visual or episodes is not None
            if not (generate_if_missing and spec.is_manipulation and renderable):
                raise
        result = generate(spec.dataset_name, num_episodes=episodes, seed=seed, workers=generation_workers)
        return load_ogbench(env_name, dataset_path=result.train_path, action_policy=action_policy)
    return load_d4rl(env_name, dataset_dir, action_policy), None


def load_d4rl(env_name: str, dataset_dir: str | os.PathLike | None, action_policy: ActionPolicy) -> Dataset:
    """``<dataset_dir>/<name>.hdf5`` if present, else the Minari re-recording of the task."""
    assert env_name in D4RL_TASKS
    hdf5 = regular_file(d4rl_file(env_name, dataset_dir))
    if hdf5.exists():
        dataset = load_d4rl_hdf5(hdf5, task_name=env_name, action_policy=action_policy)
        return check_against_task(dataset, env_name, str(hdf5))
    minari_id = MINARI_DATASET_IDS[env_name]
    try:
        dataset = load_minari(minari_id, task_name=env_name, action_policy=action_policy)
    except DatasetNotFoundError as error:
        raise DatasetNotFoundError(
            f"D4RL dataset for {env_name!r} not found: expected {hdf5} (the D4RL .hdf5 file) or the Minari "
            f"dataset {minari_id!r} under {minari_root()}. Fetch the Minari dataset with `fidec data download "
            f"{env_name}` (--url for a mirror), or copy the .hdf5 file into {hdf5.parent} (or pass dataset_dir / "
            "set $FIDEC_DATA_DIR), or copy the Minari dataset folder and set $MINARI_DATASETS_PATH."
        ) from error
    return check_against_task(dataset, env_name, minari_id)
