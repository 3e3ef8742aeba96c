"""D4RL-style tasks without mujoco-py: D4RL ``.hdf5`` files and Minari datasets.

D4RL ``.hdf5`` layout (one row per environment step): ``observations`` (N, obs_dim), ``actions``
(N, action_dim), ``rewards`` (N,), ``terminals`` (N,) true terminations, ``timeouts`` (N,) time-limit cuts.
Transitions follow ``d4rl.qlearning_dataset``: row i gives (s_i, a_i, r_i, s_{i+1}) for i < N - 1, and rows
with ``timeouts[i]`` are dropped (their successor belongs to the next episode).

Minari layout (``<root>/<dataset id>/data/``): ``metadata.json`` and ``main_data.hdf5`` with one group
``episode_<k>`` per episode holding ``observations`` (T + 1 rows, or a group of arrays for Dict spaces),
``actions``, ``rewards``, ``terminations`` and ``truncations`` (T rows). Read with the ``minari`` package
when it is installed, else directly with h5py.

Reward and mask conventions (IQL / FQL practice):

- ``masks = 1 - terminals`` (D4RL) or ``1 - terminations`` (Minari): a timeout or truncation never stops
  bootstrapping.
- AntMaze: rewards are shifted, r <- r - 1, so the sparse 0/1 reward becomes -1 per step and 0 at the goal
  (Kostrikov et al., IQL, 2021; Park et al., FQL, 2025). AntMaze data keep moving after reaching a goal, so
  D4RL ``terminals`` do not end trajectories there; elsewhere a termination also ends the trajectory.
- AntMaze observations from Gymnasium-Robotics (Dict spaces) are flattened to
  ``[achieved_goal (x, y), observation (27)]`` (:func:`fidec.envs.observations.flatten_observation`): 29
  numbers, the same content as D4RL's qpos[:15] + qvel[:14]. Gymnasium-Robotics mazes are centred at the
  origin and their y axis is mirrored relative to D4RL's, so policies trained on the original D4RL
  ``.hdf5`` AntMaze files do not transfer to the Gymnasium-Robotics environments; data recorded in them
  (Minari's ``D4RL/antmaze/*``) do.

Normalised scores: :mod:`fidec.envs.scores`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import h5py
import numpy as np

from fidec.data.dataset import Dataset
from fidec.data.errors import DatasetError, DatasetNotFoundError, file_read_error
from fidec.data.paths import (
    MINARI_DATA,
    MINARI_METADATA,
    minari_data_folder,
    minari_main_data,
    minari_metadata,
    minari_root,
)
from fidec.data.validate import ActionPolicy, check_action_range, check_finite, check_lengths, require_keys
from fidec.envs.observations import flatten_observation

# D4RL task -> the Minari dataset that re-records it in Gymnasium-Robotics.
MINARI_DATASET_IDS: dict[str, str] = {
    **{
        f"antmaze-{maze}-v2": f"D4RL/antmaze/{maze}-v1"
        for maze in ("umaze", "umaze-diverse", "medium-play", "medium-diverse", "large-play", "large-diverse")
    },
    **{
        f"{hand}-{quality}-v1": f"D4RL/{hand}/{quality}-v2"
        for hand in ("pen", "door", "hammer", "relocate")
        for quality in ("human", "cloned", "expert")
    },
}


def is_antmaze(name: str | None) -> bool:
    """Whether a task name or file name is an AntMaze one (rewards shifted by -1, see above)."""
    return name is not None and "antmaze" in name


def _finish(
    arrays: dict[str, np.ndarray], source: str, antmaze: bool, action_policy: ActionPolicy
) -> Dataset:
    check_finite(arrays, source)
    arrays["actions"] = check_action_range(arrays["actions"], source, policy=action_policy)
    if antmaze:
        arrays["rewards"] = arrays["rewards"] - 1.0
    return Dataset.from_arrays(arrays).validate(source)


# ----------------------------------------------------------------------------------------------- D4RL


D4RL_KEYS: tuple[str, ...] = ("observations", "actions", "rewards", "terminals", "timeouts")


def read_d4rl_hdf5(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The five D4RL arrays of an ``.hdf5`` file, checked for presence and equal length."""
    try:
        with h5py.File(path, "r") as file:
            require_keys(file, D4RL_KEYS, source=str(path))
            raw = {k: file[k][()] for k in D4RL_KEYS}
    except DatasetError:
        raise
    except (OSError, KeyError, ValueError) as error:
        raise file_read_error(path, error) from error
    check_lengths(raw, str(path))
    return raw


def d4rl_transitions(
    raw: Mapping[str, np.ndarray], antmaze: bool, source: str = "D4RL data"
) -> dict[str, np.ndarray]:
    """``d4rl.qlearning_dataset`` transitions plus fidec's masks and trajectory boundaries."""
    size = len(raw["rewards"])
    if size < 2:
        raise DatasetError(f"{source}: a D4RL file needs at least 2 steps to form one transition.")
    timeouts = np.asarray(raw["timeouts"]).astype(bool)
    done = np.asarray(raw["terminals"]).astype(bool)
    keep = np.flatnonzero(~timeouts[: size - 1])
    if keep.size == 0:
        raise DatasetError(f"{source}: every step is a timeout, so no transition can be formed.")
    next_kept_is_successor = np.append(keep[1:] == keep[:-1] + 1, False)
    boundary = ~next_kept_is_successor | (done[keep] & (not antmaze))
    return {
        "observations": np.asarray(raw["observations"])[keep],
        "actions": np.asarray(raw["actions"])[keep],
        "rewards": np.asarray(raw["rewards"], dtype=np.float32)[keep],
        "masks": 1.0 - done[keep].astype(np.float32),
        "terminals": boundary.astype(np.float32),
        "next_observations": np.asarray(raw["observations"])[keep + 1],
    }


def load_d4rl_hdf5(
    path: str | os.PathLike, task_name: str | None = None, action_policy: ActionPolicy = "refuse"
) -> Dataset:
    """A D4RL ``.hdf5`` file as a :class:`Dataset` (AntMaze convention when the name or path says antmaze)."""
    antmaze = is_antmaze(task_name) or is_antmaze(Path(path).name)
    arrays = d4rl_transitions(read_d4rl_hdf5(path), antmaze, str(path))
    arrays = {k: v.astype(np.float32) for k, v in arrays.items()}
    return _finish(arrays, str(path), antmaze, action_policy)


# --------------------------------------------------------------------------------------------- Minari


def is_minari_folder(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a Minari dataset folder or its ``data`` folder (it holds ``metadata.json``)."""
    path = Path(path).expanduser()
    return minari_metadata(path).exists() or minari_metadata(minari_data_folder(path)).exists()


def minari_data_path(path_or_id: str | os.PathLike) -> Path:
    """The ``data`` folder of a Minari dataset given its folder, its ``data`` folder or its id."""
    candidate = Path(path_or_id).expanduser()
    for folder in (candidate, minari_data_folder(candidate)):
        if minari_metadata(folder).exists():
            return folder
    root = minari_root()
    by_id = minari_data_folder(root / str(path_or_id))
    if minari_metadata(by_id).exists():
        return by_id
    raise DatasetNotFoundError(
        f"No Minari dataset at {candidate} nor with id {str(path_or_id)!r} under {root} (expected "
        f"<dataset>/{MINARI_DATA}/{MINARI_METADATA}). Fetch it with `fidec data download {path_or_id}` (--url for a "
        "mirror), or copy the dataset folder from a machine where `minari download <id>` worked and set "
        "$MINARI_DATASETS_PATH to its root."
    )


def _episodes_with_minari(data_path: Path) -> Iterable[dict]:
    import minari

    dataset = minari.MinariDataset(data_path)
    for episode in dataset.iterate_episodes():
        yield {
            "observations": episode.observations,
            "actions": episode.actions,
            "rewards": episode.rewards,
            "terminations": episode.terminations,
            "truncations": episode.truncations,
        }


def _read_group(node) -> np.ndarray | dict:
    if isinstance(node, h5py.Group):
        return {key: _read_group(node[key]) for key in node}
    return node[()]


def _episodes_with_h5py(data_path: Path) -> Iterable[dict]:
    main = minari_main_data(data_path)
    with h5py.File(main, "r") as file:
        names = sorted((k for k in file if k.startswith("episode_")), key=lambda k: int(k.split("_")[1]))
        for name in names:
            group = file[name]
            keys = ("observations", "actions", "rewards", "terminations", "truncations")
            require_keys(group, keys, source=f"{main}:{name}")
            yield {k: _read_group(group[k]) for k in keys}


def minari_transitions(episodes: Iterable[Mapping], source: str) -> dict[str, np.ndarray]:
    """Concatenate episodes: s_t = obs[t], s'_t = obs[t + 1], mask = 1 - termination, last row = boundary."""
    parts: dict[str, list[np.ndarray]] = {
        k: [] for k in ("observations", "actions", "rewards", "masks", "terminals", "next_observations")
    }
    for index, episode in enumerate(episodes):
        observations = flatten_observation(episode["observations"]).astype(np.float32)
        steps = len(episode["rewards"])
        if len(observations) != steps + 1 or len(episode["actions"]) != steps:
            raise DatasetError(
                f"{source}: episode {index} has {len(observations)} observations, {len(episode['actions'])} "
                f"actions and {steps} rewards; Minari stores T + 1 observations for T steps. The file is damaged."
            )
        if steps == 0:
            continue
        boundary = np.zeros(steps, np.float32)
        boundary[-1] = 1.0
        parts["observations"].append(observations[:-1])
        parts["next_observations"].append(observations[1:])
        parts["actions"].append(np.asarray(episode["actions"], np.float32).reshape(steps, -1))
        parts["rewards"].append(np.asarray(episode["rewards"], np.float32))
        parts["masks"].append(1.0 - np.asarray(episode["terminations"], np.float32))
        parts["terminals"].append(boundary)
    if not parts["rewards"]:
        raise DatasetError(f"{source}: the Minari dataset has no steps.")
    return {k: np.concatenate(v) for k, v in parts.items()}


def load_minari(
    path_or_id: str | os.PathLike,
    task_name: str | None = None,
    action_policy: ActionPolicy = "refuse",
    use_minari: bool | None = None,
) -> Dataset:
    """A Minari dataset (folder or id) as a :class:`Dataset`; ``use_minari=None`` uses minari when installed."""
    data_path = minari_data_path(path_or_id)
    if use_minari is None:
        try:
            import minari  # noqa: F401

            use_minari = True
        except ImportError:
            use_minari = False
    source = str(data_path.parent)
    try:
        episodes = _episodes_with_minari(data_path) if use_minari else _episodes_with_h5py(data_path)
        arrays = minari_transitions(episodes, source)
    except DatasetError:
        raise
    except (OSError, KeyError, ValueError) as error:
        raise file_read_error(minari_main_data(data_path), error) from error
    antmaze = is_antmaze(task_name) or is_antmaze(str(path_or_id))
    return _finish(arrays, source, antmaze, action_policy)
