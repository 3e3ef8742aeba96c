"""OGBench single-task datasets (state and pixel), loaded with OGBench's own loader and reward relabelling.

``ogbench.make_env_and_datasets(task, dataset_path=<file>)`` reads ``<file>`` and its ``-val`` sibling, drops
each episode's final row to form ``next_observations``, sets ``terminals`` to the episode ends and, for
single-task names, adds ``rewards`` and ``masks``:

- locomotion (maze, soccer): r = success - 1, mask = 1 - success (success: within the goal tolerance);
- manipulation (cube, scene, puzzle): r = (#subgoals achieved) - (#subgoals), mask = 1 - all achieved.

fidec never re-implements that step. It always passes an explicit ``dataset_path`` (OGBench would otherwise
try to download missing files) and checks the files before handing them over (layout, episode ends, sizes
against the task's environment) and the arrays after (no NaN/inf in anything the rewards depend on), so
that a missing or damaged file fails with a message saying which file, what is wrong and how to fix it.

Pixel (``visual-``) tasks give a :class:`~fidec.data.visual.VisualDataset`: frames memory-mapped
(:mod:`fidec.data.frames`), rewards from the same relabelling run on the state twin (:mod:`fidec.data.relabel`).
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np

from fidec.data.dataset import Dataset
from fidec.data.errors import DatasetError, DatasetNotFoundError, file_read_error
from fidec.data.frames import frames_memmap
from fidec.data.npz import check_ogbench_layout, read_npz
from fidec.data.paths import dataset_files, regular_file
from fidec.data.relabel import RELABEL_KEYS, relabel
from fidec.data.validate import (
    ActionPolicy,
    check_action_range,
    check_env_dims,
    check_episode_ends,
    check_finite,
)
from fidec.data.visual import VisualDataset
from fidec.envs.registry import TaskSpec, parse_task

INFO_KEYS = RELABEL_KEYS


def missing_dataset_message(spec: TaskSpec, train_path: Path, val_path: Path) -> str:
    """Which files are missing, where they were expected, and every way to obtain them."""
    missing = [str(p) for p in (train_path, val_path) if not p.exists()]
    directory = train_path.parent
    how = [
        f"download them: `fidec data download {spec.name} --dataset-dir {directory}` (add --url or "
        "$FIDEC_OGBENCH_URL for a mirror), or on a machine with internet access "
        f"python -c \"import ogbench; ogbench.download_datasets(['{spec.dataset_name}'], '{directory}')\" "
        "and copy both files here",
        "or point fidec to the folder that holds them (dataset_dir=..., --dataset-dir, or $FIDEC_DATA_DIR)",
    ]
    if spec.is_manipulation and not spec.visual:
        how.append(
            f"or generate the dataset locally with OGBench's scripted oracles: "
            f"`fidec data generate {spec.dataset_name}` (or load_dataset(..., generate_if_missing=True))"
        )
    if spec.is_manipulation and spec.visual:
        how.append(
            f"or render a small one locally: `MUJOCO_GL=egl fidec data generate {spec.dataset_name} "
            f"--episodes 2 --max-episode-steps 101 --out DIR` and pass --dataset DIR/{spec.dataset_name}.npz "
            "(rendering runs at a few frames per second on a CPU)"
        )
    return (
        f"OGBench dataset for {spec.name!r} not found: missing {', '.join(missing)}. "
        f"Expected {train_path.name} and {val_path.name} in {directory}. To obtain them, "
        + "; ".join(how)
        + "."
    )


def _existing_files(spec: TaskSpec, dataset_dir, dataset_path) -> tuple[Path, Path]:
    train_path, val_path = (
        regular_file(p) for p in dataset_files(spec.dataset_name, dataset_dir, dataset_path)
    )
    if not (train_path.exists() and val_path.exists()):
        raise DatasetNotFoundError(missing_dataset_message(spec, train_path, val_path))
    return train_path, val_path


def check_ogbench_file(
    path: str | os.PathLike, spec: TaskSpec | None = None, action_policy: ActionPolicy = "refuse"
) -> dict:
    """The checks an OGBench file passes before anything uses it -- training loads it only after them, and
    ``fidec data info`` reports them: layout (keys, one length, not empty, numeric dtypes), episode ends,
    finite actions inside [-1, 1] (under ``action_policy``), and, for a task (``spec``), the keys its reward
    relabelling needs.  Returns the array headers."""
    headers = check_ogbench_layout(path)
    if spec is not None:
        for key in ("qpos",) if spec.visual else ("qpos", "qvel"):
            if key not in headers:
                raise DatasetError(
                    f"{path}: missing '{key}', which OGBench needs to relabel rewards for single-task names. "
                    "Use the official file or one written by `fidec data generate`."
                )
    small = read_npz(path, keys=("terminals", "actions"))
    check_episode_ends(small["terminals"], str(path))
    check_finite({"actions": small["actions"]}, str(path))
    check_action_range(small["actions"], str(path), policy=action_policy)
    return headers


def _to_dataset(raw: dict[str, np.ndarray], source: str, action_policy: ActionPolicy) -> Dataset:
    check_finite(raw, source)  # observations, actions, qpos/qvel (which the rewards come from), rewards
    raw = dict(raw, actions=check_action_range(raw["actions"], source, policy=action_policy))
    dataset = Dataset.from_arrays(raw, extra_keys=INFO_KEYS)
    return dataset.validate(source)


def load_ogbench(
    task_name: str,
    dataset_dir: str | os.PathLike | None = None,
    dataset_path: str | os.PathLike | None = None,
    action_policy: ActionPolicy = "refuse",
) -> tuple[Dataset, Dataset] | tuple[VisualDataset, VisualDataset]:
    """(train, val) for an OGBench single-task name, from ``<dataset_dir>/<dataset>.npz`` (+ ``-val.npz``)
    or from an explicit ``dataset_path`` to the training file (its ``-val`` sibling must exist too).

    ``visual-`` names give :class:`VisualDataset` (frames memory-mapped, 3-frame stacks)."""
    import ogbench  # builds a MuJoCo environment

    spec = parse_task(task_name)
    if spec.benchmark != "ogbench":
        raise ValueError(f"{task_name!r} is not an OGBench task.")
    if spec.visual:
        return load_visual_ogbench(task_name, dataset_dir, dataset_path, action_policy=action_policy)
    train_path, val_path = _existing_files(spec, dataset_dir, dataset_path)
    headers = {path: check_ogbench_file(path, spec, action_policy) for path in (train_path, val_path)}
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


# ------------------------------------------------------------------------------------------ pixels


def load_visual_file(
    path: str | os.PathLike,
    task_name: str,
    frame_stack: int = 3,
    memmap: bool = True,
    action_policy: ActionPolicy = "refuse",
    frames_dir: str | os.PathLike | None = None,
) -> VisualDataset:
    """One visual ``.npz`` in the official layout -> :class:`VisualDataset` (rewards: OGBench's relabelling)."""
    path = Path(path)
    headers = check_ogbench_file(path, parse_task(task_name), action_policy)
    shape, dtype = headers["observations"]
    if dtype != np.uint8 or len(shape) != 4:
        raise DatasetError(
            f"{path}: 'observations' is {dtype} {shape}; a visual dataset holds uint8 frames (T, H, W, C). "
            "Use the official visual-*.npz file or one written by `fidec data generate visual-...`."
        )
    try:
        with np.load(path, allow_pickle=False) as file:
            small = {k: file[k] for k in ("actions", "terminals", *INFO_KEYS) if k in file.files}
            loaded = None if memmap else file["observations"]
    except (zipfile.BadZipFile, EOFError, ValueError, OSError) as error:
        raise file_read_error(path, error) from error
    frames = frames_memmap(path, directory=frames_dir) if loaded is None else loaded
    terminals = small["terminals"].astype(bool)
    valid = ~terminals
    info = {k: small[k][valid] for k in INFO_KEYS if k in small}
    rewards, masks = relabel(task_name, info, str(path))
    actions = check_action_range(small["actions"].astype(np.float32), str(path), policy=action_policy)
    check_finite({"actions": actions}, str(path))
    full = lambda x: _scatter(x, valid)
    return VisualDataset.from_episodes(
        frames,
        actions,
        terminals,
        rewards=full(rewards),
        masks=full(masks),
        frame_stack=frame_stack,
        extras={k: small[k] for k in INFO_KEYS if k in small},
    ).validate(str(path))


def _scatter(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    out = np.zeros(len(valid), np.float32)
    out[valid] = values
    return out


def load_visual_ogbench(
    task_name: str,
    dataset_dir: str | os.PathLike | None = None,
    dataset_path: str | os.PathLike | None = None,
    frame_stack: int = 3,
    memmap: bool = True,
    action_policy: ActionPolicy = "refuse",
) -> tuple[VisualDataset, VisualDataset]:
    """(train, val) of a ``visual-`` single-task name from ``<dataset_dir>/<dataset>.npz`` (+ ``-val.npz``)."""
    spec = parse_task(task_name)
    if not spec.visual:
        raise ValueError(f"{task_name!r} is not a visual task (its name has no 'visual-' prefix)")
    train_path, val_path = _existing_files(spec, dataset_dir, dataset_path)
    load = lambda p: load_visual_file(p, task_name, frame_stack, memmap, action_policy)
    return load(train_path), load(val_path)
