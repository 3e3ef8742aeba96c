"""Checks on dataset arrays with actionable errors: every problem names the file or dataset, what was found,
what was expected and what to do. Nothing is silently dropped or repaired unless the caller asks for it
(``action_policy="clip"`` or ``"rescale"``: the TrainConfig key ``action_policy``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Literal

import numpy as np

from fidec.data.errors import DatasetError

ActionPolicy = Literal["refuse", "clip", "rescale"]
ACTION_POLICIES: tuple[str, ...] = ("refuse", "clip", "rescale")

# Float round-off in stored actions (e.g. float64 -> float32 of a clipped 1.0) is not an out-of-range action.
ACTION_TOLERANCE = 1e-5


def require_keys(arrays: Mapping[str, object], keys: tuple[str, ...] | list[str], source: str) -> None:
    missing = [k for k in keys if k not in arrays]
    if missing:
        raise DatasetError(
            f"{source}: missing key(s) {missing}; found {sorted(arrays)}. Expected {list(keys)}. "
            "Re-create the file in the official layout (OGBench .npz, D4RL .hdf5 or a Minari dataset)."
        )


def as_float32(name: str, array: np.ndarray, source: str) -> np.ndarray:
    """Cast a numeric array to float32; refuse non-numeric dtypes (strings, objects, complex)."""
    array = np.asarray(array)
    if array.dtype.kind not in "biuf":
        raise DatasetError(
            f"{source}: '{name}' has dtype {array.dtype}; expected a real numeric dtype (float32, bool or int). "
            "The file was probably written with the wrong arrays; regenerate it."
        )
    return array.astype(np.float32, copy=False)


def check_lengths(arrays: Mapping[str, np.ndarray], source: str) -> int:
    lengths = {k: int(np.shape(v)[0]) if np.ndim(v) else -1 for k, v in arrays.items()}
    if len(set(lengths.values())) != 1:
        raise DatasetError(
            f"{source}: arrays have different lengths {lengths}; every per-step array must have one row per "
            "step. The file is truncated or was written inconsistently; regenerate or re-download it."
        )
    size = next(iter(lengths.values()))
    if size <= 0:
        raise DatasetError(
            f"{source}: the dataset is empty (0 transitions). Generate or download a non-empty one."
        )
    return size


def check_finite(arrays: Mapping[str, np.ndarray], source: str, keys: Iterable[str] | None = None) -> None:
    """Every float array (of ``keys``, default all) holds only finite values."""
    for key in arrays if keys is None else [k for k in keys if k in arrays]:
        value = np.asarray(arrays[key])
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            bad = ~np.isfinite(value)
            rows = np.flatnonzero(bad.reshape(len(value), -1).any(axis=1))
            raise DatasetError(
                f"{source}: '{key}' has {int(bad.sum())} NaN/inf value(s), first at row(s) {rows[:5].tolist()}. "
                "Remove those transitions or regenerate the dataset."
            )


def check_episode_ends(terminals: np.ndarray, source: str) -> None:
    """OGBench's layout flags each episode's last row in ``terminals``, so the file's last row is flagged."""
    terminals = np.asarray(terminals).astype(bool)
    if terminals.size and not terminals[-1]:
        found = "no row" if not terminals.any() else f"{int(terminals.sum())} row(s) but not the last"
        raise DatasetError(
            f"{source}: 'terminals' flags {found}; in OGBench's layout it is true at the last row of every "
            "episode (so at the file's last row), which is how episodes are told apart. Write the file with "
            "terminals[i] = True at each episode's last row, or regenerate it with `fidec data generate`."
        )


def check_binary(arrays: Mapping[str, np.ndarray], keys: tuple[str, ...], source: str) -> None:
    for key in keys:
        if key in arrays and not np.isin(np.asarray(arrays[key]), (0.0, 1.0)).all():
            raise DatasetError(f"{source}: '{key}' must hold only 0 and 1.")


def check_action_range(
    actions: np.ndarray,
    source: str,
    policy: ActionPolicy = "refuse",
    low: np.ndarray | float | None = None,
    high: np.ndarray | float | None = None,
) -> np.ndarray:
    """Actions must lie in [-1, 1]^d (flow policies are clipped there).

    - ``refuse`` (default): raise if any |a_j| > 1 (beyond float round-off).
    - ``clip``: clip to [-1, 1] (for datasets with tiny excursions).
    - ``rescale``: a = 2 (a - low) / (high - low) - 1 with the given bounds (default: the data's own
      per-dimension min and max), for datasets recorded in another action range.
    """
    actions = np.asarray(actions, dtype=np.float32)
    if policy == "rescale":
        low = actions.min(axis=0) if low is None else np.asarray(low, np.float32)
        high = actions.max(axis=0) if high is None else np.asarray(high, np.float32)
        span = np.where(np.asarray(high - low) > 0, high - low, 1.0)
        return np.clip(2.0 * (actions - low) / span - 1.0, -1.0, 1.0).astype(np.float32)
    max_abs = float(np.abs(actions).max()) if actions.size else 0.0
    if max_abs <= 1.0:
        return actions
    if policy == "clip" or max_abs <= 1.0 + ACTION_TOLERANCE:
        return np.clip(actions, -1.0, 1.0)
    if policy != "refuse":
        raise DatasetError(f"Unknown action_policy {policy!r}; expected one of {', '.join(ACTION_POLICIES)}.")
    outside = float((np.abs(actions) > 1.0 + ACTION_TOLERANCE).mean())
    raise DatasetError(
        f"{source}: actions must lie in [-1, 1] but reach |a| = {max_abs:.4g} ({outside:.2%} of entries "
        "outside). Clip them with `--set action_policy=clip`, or map the data's range affinely onto [-1, 1] "
        "with `--set action_policy=rescale` (in Python: load_dataset(..., action_policy='clip'))."
    )


def check_env_dims(
    obs_shape: tuple[int, ...],
    action_dim: int,
    env_obs_shape: tuple[int, ...] | None,
    env_action_dim: int | None,
    env_name: str,
    source: str,
) -> None:
    """The dataset must fit the environment it is evaluated in."""
    problems = []
    if env_obs_shape is not None and tuple(obs_shape) != tuple(env_obs_shape):
        problems.append(f"observation shape {tuple(obs_shape)} vs the environment's {tuple(env_obs_shape)}")
    if env_action_dim is not None and action_dim != env_action_dim:
        problems.append(f"action dimension {action_dim} vs the environment's {env_action_dim}")
    if problems:
        raise DatasetError(
            f"{source} does not match environment {env_name!r}: {'; '.join(problems)}. "
            "Check that the dataset belongs to this task (a different family or a pixel/state mix-up)."
        )
