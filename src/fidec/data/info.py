"""Summaries of datasets for ``fidec data info``: sizes, shapes, dtypes, episodes, rewards, actions, NaNs.

A file is summarised as stored (an OGBench ``.npz`` has no rewards until a task relabels it; its episodes
are the ``terminals`` flags) and, when it can be loaded as transitions, as the :class:`Dataset` agents see.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from fidec.data.d4rl import read_d4rl_hdf5
from fidec.data.dataset import Dataset
from fidec.data.errors import DatasetError, DatasetNotFoundError
from fidec.data.load import load_dataset, looks_like_path
from fidec.data.npz import read_npz
from fidec.data.ogbench_data import check_ogbench_file
from fidec.data.paths import generated_train_files, is_npz, regular_file
from fidec.data.visual import VisualDataset
from fidec.envs.registry import parse_task


def array_table(arrays: Mapping[str, np.ndarray]) -> list[dict[str, Any]]:
    """One row per array: key, shape, dtype, min, max and the number of NaN/inf entries."""
    rows = []
    for key, value in arrays.items():
        value = np.asarray(value)
        numeric = value.dtype.kind in "biuf" and value.size > 0
        finite = np.isfinite(value) if value.dtype.kind == "f" else np.ones(value.shape, bool)
        rows.append(
            {
                "key": key,
                "shape": tuple(value.shape),
                "dtype": str(value.dtype),
                "min": float(value[finite].min()) if numeric and finite.any() else None,
                "max": float(value[finite].max()) if numeric and finite.any() else None,
                "non_finite": int((~finite).sum()),
            }
        )
    return rows


def _stats(values: np.ndarray) -> dict[str, float]:
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return {"min": float("nan"), "mean": float("nan"), "max": float("nan"), "std": float("nan")}
    return {
        "min": float(values.min()),
        "mean": float(values.mean()),
        "max": float(values.max()),
        "std": float(values.std()),
    }


def episode_lengths(terminals: np.ndarray) -> np.ndarray:
    """Lengths of the runs closed by each terminal flag (a trailing unterminated run counts)."""
    ends = np.flatnonzero(np.asarray(terminals) > 0.5) + 1
    if ends.size == 0 or ends[-1] != len(terminals):
        ends = np.append(ends, len(terminals))
    return np.diff(np.concatenate([[0], ends]))


def dataset_summary(dataset: Dataset | VisualDataset) -> dict[str, Any]:
    """Summary of loaded transitions."""
    lengths = episode_lengths(dataset.terminals)
    # A VisualDataset's obs_dim is already one frame's shape.
    obs_shape = (
        dataset.obs_dim if isinstance(dataset, VisualDataset) else tuple(dataset.observations.shape[1:])
    )
    episode_returns = np.add.reduceat(dataset.rewards, np.concatenate([[0], np.cumsum(lengths)[:-1]]))
    return {
        "transitions": dataset.size,
        "obs_shape": obs_shape,
        "action_dim": dataset.action_dim,
        "episodes": len(lengths),
        "episode_length": _stats(lengths),
        "reward": _stats(dataset.rewards),
        "episode_return": _stats(episode_returns),
        "terminations": int((dataset.masks < 0.5).sum()),
        "action_min": float(dataset.actions.min()),
        "action_max": float(dataset.actions.max()),
        "arrays": array_table({**dataset.arrays(), **dataset.extras}),
    }


def raw_file_summary(path: str | os.PathLike) -> dict[str, Any]:
    """Summary of a file's arrays as stored (OGBench .npz or D4RL .hdf5)."""
    path = Path(path)
    arrays = read_npz(path) if is_npz(path) else read_d4rl_hdf5(path)
    summary: dict[str, Any] = {"path": str(path), "bytes": path.stat().st_size, "arrays": array_table(arrays)}
    if "terminals" in arrays:
        flags = np.asarray(arrays["terminals"]).astype(bool)
        if "timeouts" in arrays:
            flags = flags | np.asarray(arrays["timeouts"]).astype(bool)
        lengths = episode_lengths(flags)
        summary["rows"] = len(flags)
        summary["episodes"] = len(lengths)
        summary["episode_length"] = _stats(lengths)
    if "actions" in arrays and np.size(arrays["actions"]):
        summary["action_min"] = float(np.min(arrays["actions"]))
        summary["action_max"] = float(np.max(arrays["actions"]))
    if "rewards" in arrays:
        summary["reward"] = _stats(arrays["rewards"])
    return summary


def _generated_train_file(task: str) -> Path | None:
    """The most recent generated dataset of a task's OGBench dataset, if any."""
    candidates = generated_train_files(parse_task(task).dataset_name)
    return candidates[-1] if candidates else None


def dataset_info(path_or_name: str, dataset_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """Summary for a file, a Minari folder or a task name (official file, else the newest generated one).

    A file that cannot be used as a dataset keeps its as-stored summary and gets ``load_error``: the checks
    are those training runs (with the default ``action_policy``, "refuse")."""
    info: dict[str, Any] = {"source": path_or_name}
    path = Path(path_or_name).expanduser()
    is_file = looks_like_path(path_or_name) and regular_file(path).is_file()
    if is_file:
        info["file"] = raw_file_summary(path)
        if is_npz(path) and "rewards" not in {row["key"] for row in info["file"]["arrays"]}:
            try:
                check_ogbench_file(path)
            except DatasetError as error:
                info["load_error"] = str(error)
                return info
            info["note"] = (
                "OGBench file: rewards and masks are computed per task when loaded with a task name."
            )
            return info
    try:
        train, val = load_dataset(path_or_name, dataset_dir=dataset_dir)
    except DatasetNotFoundError:
        generated = None if looks_like_path(path_or_name) else _generated_train_file(path_or_name)
        if generated is None:
            raise
        info["source"] = f"{path_or_name} (generated: {generated})"
        train, val = load_dataset(path_or_name, dataset_path=generated)
    except DatasetError as error:
        if not is_file:
            raise
        info["load_error"] = str(error)  # the stored arrays are still summarised above
        return info
    info["train"] = dataset_summary(train)
    if val is not None:
        info["val"] = dataset_summary(val)
    return info
