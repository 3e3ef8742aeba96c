"""Every validation failure has a clear error: missing keys, lengths, NaN/inf, dtypes, empty data, action
range, truncated or corrupt files, and a task whose environment does not fit the data."""

from __future__ import annotations

import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from fidec.data import DatasetError, DatasetNotFoundError, load_dataset
from fidec.data.dataset import validate_transitions
from fidec.data.generate import generate
from fidec.data.npz import check_ogbench_layout, read_npz
from fidec.data.validate import check_action_range

TASK = "cube-single-play-singletask-task1-v0"


@pytest.fixture(scope="module")
def tiny_ogbench(tmp_path_factory) -> Path:
    """A real cube-single dataset in the official layout: 2 + 1 episodes of 20 rows."""
    out = tmp_path_factory.mktemp("ogbench")
    result = generate(
        "cube-single-play-v0", num_episodes=2, out_dir=out, max_episode_steps=20, progress=False
    )
    return result.train_path


def write_pair(directory: Path, arrays: dict, val_arrays: dict | None = None) -> Path:
    """``cube-single-play-v0.npz`` and its ``-val`` sibling with the given arrays."""
    directory.mkdir(parents=True, exist_ok=True)
    train = directory / "cube-single-play-v0.npz"
    np.savez(train, **arrays)
    np.savez(directory / "cube-single-play-v0-val.npz", **(val_arrays or arrays))
    return train


def small_layout(rows: int = 6) -> dict[str, np.ndarray]:
    return {
        "observations": np.zeros((rows, 28), np.float32),
        "actions": np.zeros((rows, 5), np.float32),
        "terminals": np.eye(1, rows, rows - 1, dtype=bool)[0],
        "qpos": np.zeros((rows, 21), np.float32),
        "qvel": np.zeros((rows, 20), np.float32),
    }


def test_missing_file_names_the_expected_path_and_how_to_get_it(tmp_path):
    with pytest.raises(DatasetNotFoundError) as error:
        load_dataset(TASK, dataset_dir=tmp_path)
    message = str(error.value)
    assert str(tmp_path / "cube-single-play-v0.npz") in message
    assert "download_datasets" in message and "fidec data generate cube-single-play-v0" in message
    assert f"fidec data download {TASK}" in message


def test_missing_keys(tmp_path):
    arrays = small_layout()
    del arrays["actions"]
    with pytest.raises(DatasetError, match=r"missing key\(s\) \['actions'\]"):
        check_ogbench_layout(write_pair(tmp_path, arrays))
    arrays = small_layout()
    del arrays["qpos"]
    with pytest.raises(DatasetError, match="missing 'qpos'"):
        load_dataset(TASK, dataset_path=write_pair(tmp_path / "b", arrays))


def test_mismatched_lengths(tmp_path):
    arrays = small_layout()
    arrays["actions"] = arrays["actions"][:-1]
    with pytest.raises(DatasetError, match="different lengths"):
        load_dataset(TASK, dataset_path=write_pair(tmp_path, arrays))


def test_wrong_dtype(tmp_path):
    arrays = small_layout()
    arrays["actions"] = np.full((6, 5), "x")
    with pytest.raises(DatasetError, match="dtype <U1"):
        load_dataset(TASK, dataset_path=write_pair(tmp_path, arrays))


def test_empty_dataset(tmp_path):
    with pytest.raises(DatasetError, match="empty"):
        load_dataset(TASK, dataset_path=write_pair(tmp_path, small_layout(rows=0)))


def test_truncated_and_corrupt_files(tmp_path, tiny_ogbench):
    data = tiny_ogbench.read_bytes()
    truncated = write_pair(tmp_path / "truncated", small_layout())
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match="truncated or corrupt"):
        load_dataset(TASK, dataset_path=truncated)
    # Flip bytes inside the compressed payload: the archive opens, the CRC check fails when reading.
    corrupt = tmp_path / "corrupt.npz"
    damaged = bytearray(data)
    for i in range(2000, 2400):
        damaged[i] ^= 0xFF
    corrupt.write_bytes(bytes(damaged))
    with pytest.raises(DatasetError, match="truncated or corrupt"):
        read_npz(corrupt)


def test_nan_values_and_out_of_range_actions(tmp_path, tiny_ogbench):
    arrays = read_npz(tiny_ogbench)
    val_arrays = read_npz(str(tiny_ogbench).replace(".npz", "-val.npz"))
    with_nan = dict(arrays, observations=arrays["observations"].copy())
    with_nan["observations"][3, 2] = np.nan
    with pytest.raises(DatasetError, match=r"NaN/inf value\(s\), first at row\(s\) \[3\]"):
        load_dataset(TASK, dataset_path=write_pair(tmp_path / "nan", with_nan, val_arrays))

    wide = dict(arrays, actions=arrays["actions"].copy())
    wide["actions"][0, 0] = 1.5
    path = write_pair(tmp_path / "wide", wide, val_arrays)
    with pytest.raises(DatasetError, match=r"actions must lie in \[-1, 1\].*`--set action_policy=clip`"):
        load_dataset(TASK, dataset_path=path)
    train, _ = load_dataset(TASK, dataset_path=path, action_policy="clip")
    assert train.actions.max() <= 1.0


def test_action_range_policies():
    actions = np.array([[-2.0, 0.0], [2.0, 1.0]], np.float32)
    with pytest.raises(DatasetError, match="reach"):
        check_action_range(actions, "x")
    np.testing.assert_array_equal(check_action_range(actions, "x", policy="clip"), [[-1, 0], [1, 1]])
    np.testing.assert_allclose(check_action_range(actions, "x", policy="rescale"), [[-1, -1], [1, 1]])
    np.testing.assert_allclose(
        check_action_range(actions, "x", policy="rescale", low=-4.0, high=4.0), [[-0.5, 0], [0.5, 0.25]]
    )
    # Float round-off just above 1 is not an error.
    assert check_action_range(np.array([[1.0 + 1e-7]]), "x").max() <= 1.0


def test_task_that_does_not_fit_the_data(tiny_ogbench):
    with pytest.raises(
        DatasetError, match=r"does not match environment 'puzzle-3x3-play-singletask-task1-v0'"
    ):
        load_dataset("puzzle-3x3-play-singletask-task1-v0", dataset_path=tiny_ogbench)


def test_d4rl_file_checks(tmp_path):
    path = tmp_path / "antmaze-umaze-v2.hdf5"
    with h5py.File(path, "w") as file:
        for key, value in {
            "observations": np.zeros((5, 29)),
            "actions": np.zeros((5, 8)),
            "rewards": np.zeros(5),
            "terminals": np.zeros(5, bool),
        }.items():
            file[key] = value
    with pytest.raises(DatasetError, match=r"missing key\(s\) \['timeouts'\]"):
        load_dataset(str(path))
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(DatasetError, match="truncated or corrupt"):
        load_dataset(str(path))


def test_transition_checks_on_plain_arrays():
    size = 4
    arrays = {
        "observations": np.zeros((size, 2), np.float32),
        "actions": np.zeros((size, 1), np.float32),
        "rewards": np.zeros(size, np.float32),
        "masks": np.full(size, 2.0, np.float32),
        "terminals": np.zeros(size, np.float32),
        "next_observations": np.zeros((size, 2), np.float32),
    }
    with pytest.raises(DatasetError, match="'masks' must hold only 0 and 1"):
        validate_transitions(arrays, "x")
    arrays["masks"] = np.ones(size, np.float32)
    arrays["rewards"] = np.array([0, np.inf, 0, 0], np.float32)
    with pytest.raises(DatasetError, match="'rewards' has 1 NaN/inf"):
        validate_transitions(arrays, "x")


def ready_transitions(rows: int = 6, obs_dim: int = 28, action_dim: int = 5) -> dict[str, np.ndarray]:
    """A file of ready transitions (rewards, masks, next_observations) in fidec's Dataset layout."""
    terminals = np.zeros(rows, np.float32)
    terminals[-1] = 1.0
    return {
        "observations": np.zeros((rows, obs_dim), np.float32),
        "actions": np.zeros((rows, action_dim), np.float32),
        "rewards": np.zeros(rows, np.float32),
        "masks": np.ones(rows, np.float32),
        "terminals": terminals,
        "next_observations": np.zeros((rows, obs_dim), np.float32),
    }


def test_ready_transitions_of_the_wrong_size_are_refused_at_load_time(tmp_path):
    path = tmp_path / "ready.npz"
    np.savez(path, **ready_transitions(obs_dim=30, action_dim=5))
    with pytest.raises(
        DatasetError, match=rf"{path}.*observation shape \(30,\) vs the environment's \(28,\)"
    ):
        load_dataset(TASK, dataset_path=path)
    np.savez(path, **ready_transitions(obs_dim=28, action_dim=4))
    with pytest.raises(DatasetError, match=r"action dimension 4 vs the environment's 5"):
        load_dataset(TASK, dataset_path=path)
    np.savez(path, **ready_transitions())
    train, val = load_dataset(TASK, dataset_path=path)
    assert (train.obs_dim, train.action_dim, val) == (28, 5, None)


def write_hdf5(path: Path, obs_dim: int, action_dim: int, rows: int = 5) -> None:
    with h5py.File(path, "w") as file:
        file["observations"] = np.zeros((rows, obs_dim), np.float32)
        file["actions"] = np.zeros((rows, action_dim), np.float32)
        file["rewards"] = np.zeros(rows, np.float32)
        file["terminals"] = np.zeros(rows, bool)
        file["timeouts"] = np.zeros(rows, bool)


def test_d4rl_sizes_are_checked_without_gymnasium_robotics(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "gymnasium_robotics", None)  # `import gymnasium_robotics` now fails
    path = tmp_path / "data.hdf5"
    write_hdf5(path, obs_dim=45, action_dim=24)
    with pytest.raises(
        DatasetError, match=rf"{path}.*observation shape \(45,\) vs the environment's \(39,\)"
    ):
        load_dataset("door-human-v1", dataset_path=path)
    with pytest.raises(DatasetError, match=r"action dimension 24 vs the environment's 8"):
        load_dataset("antmaze-umaze-v2", dataset_path=write_hdf5(path, 29, 24) or path)
    assert load_dataset("pen-human-v1", dataset_path=write_hdf5(path, 45, 24) or path)[0].obs_dim == 45


def test_nan_in_the_state_that_rewards_come_from_is_refused(tmp_path, tiny_ogbench):
    arrays = read_npz(tiny_ogbench)
    val_arrays = read_npz(str(tiny_ogbench).replace(".npz", "-val.npz"))
    for key in ("qpos", "qvel"):
        broken = dict(arrays, **{key: arrays[key].copy()})
        broken[key][4, 0] = np.nan
        path = write_pair(tmp_path / key, broken, val_arrays)
        with pytest.raises(DatasetError, match=rf"{path}: '{key}' has 1 NaN/inf value\(s\)"):
            load_dataset(TASK, dataset_path=path)


def test_terminals_that_end_no_episode_are_explained(tmp_path):
    arrays = small_layout()
    arrays["terminals"] = np.zeros(6, bool)
    path = write_pair(tmp_path, arrays)
    with pytest.raises(
        DatasetError, match=r"'terminals' flags no row; in OGBench's layout it is true at the last"
    ):
        load_dataset(TASK, dataset_path=path)
    arrays["terminals"][2] = True  # an episode end, but the file stops inside the next episode
    with pytest.raises(DatasetError, match=r"flags 1 row\(s\) but not the last"):
        load_dataset(TASK, dataset_path=write_pair(tmp_path / "b", arrays))


def test_a_folder_given_as_the_dataset_file_is_explained(tmp_path, tiny_ogbench):
    folder = tiny_ogbench.parent
    with pytest.raises(DatasetError, match=r"is a folder, not a dataset") as error:
        load_dataset(TASK, dataset_path=folder)
    message = str(error.value)
    assert (
        f"--dataset {folder / 'cube-single-play-v0.npz'}" in message and f"--dataset-dir {folder}" in message
    )
    assert "Minari" in message and "\n" not in message
    with pytest.raises(DatasetError, match=r"It holds no \.npz or \.hdf5 file"):
        load_dataset(TASK, dataset_path=tmp_path)
