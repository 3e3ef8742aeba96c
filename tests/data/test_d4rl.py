"""D4RL .hdf5 and Minari loaders on files in the exact official layouts, and D4RL normalised scores."""

from __future__ import annotations

import gymnasium as gym
import h5py
import numpy as np
import pytest

from fidec.data import DatasetError, DatasetNotFoundError, load_dataset
from fidec.data.d4rl import load_d4rl_hdf5, load_minari
from fidec.envs.observations import flatten_observation
from fidec.envs.registry import D4RL_TASKS
from fidec.envs.scores import D4RL_REFERENCE_RETURNS, normalized_score

gymnasium_robotics = pytest.importorskip("gymnasium_robotics")
minari = pytest.importorskip("minari")


def write_d4rl(path, terminals_at=(6,), timeouts_at=(3,), obs_dim=29, action_dim=8) -> None:
    """8 steps in D4RL's layout; observations[i] = i so transitions can be read off."""
    size = 8
    observations = np.repeat(np.arange(size, dtype=np.float32)[:, None], obs_dim, axis=1)
    terminals = np.zeros(size, bool)
    terminals[list(terminals_at)] = True
    timeouts = np.zeros(size, bool)
    timeouts[list(timeouts_at)] = True
    with h5py.File(path, "w") as file:
        file["observations"] = observations
        file["actions"] = np.linspace(-1, 1, size * action_dim, dtype=np.float32).reshape(size, action_dim)
        file["rewards"] = terminals.astype(np.float32)  # sparse: 1 at the goal
        file["terminals"] = terminals
        file["timeouts"] = timeouts


def test_d4rl_hdf5_transitions_follow_qlearning_dataset(tmp_path):
    path = tmp_path / "hammer-human-v1.hdf5"
    write_d4rl(path, terminals_at=(1, 6), obs_dim=46, action_dim=26)
    dataset = load_d4rl_hdf5(path, task_name="hammer-human-v1")
    # Rows 0..6 minus the timeout row 3 (its successor starts the next episode); row 7 has no successor.
    np.testing.assert_array_equal(dataset.observations[:, 0], [0, 1, 2, 4, 5, 6])
    np.testing.assert_array_equal(dataset.next_observations[:, 0], [1, 2, 3, 5, 6, 7])
    np.testing.assert_array_equal(dataset.masks, [1, 0, 1, 1, 1, 0])  # timeouts do not stop bootstrapping
    np.testing.assert_array_equal(dataset.terminals, [0, 1, 1, 0, 0, 1])  # terminal, cut, last row
    np.testing.assert_array_equal(dataset.rewards, [0, 1, 0, 0, 0, 1])


def test_d4rl_antmaze_reward_shift_and_continuing_trajectories(tmp_path):
    path = tmp_path / "antmaze-umaze-v2.hdf5"
    write_d4rl(path, terminals_at=(1, 6))
    train, val = load_dataset(str(path))
    assert val is None
    np.testing.assert_array_equal(train.rewards, [-1, 0, -1, -1, -1, 0])  # r - 1
    np.testing.assert_array_equal(train.masks, [1, 0, 1, 1, 1, 0])
    # AntMaze data keep moving after a goal: only the cut and the end are trajectory boundaries.
    np.testing.assert_array_equal(train.terminals, [0, 0, 1, 0, 0, 1])


def test_d4rl_dims_must_match_the_task(tmp_path):
    path = tmp_path / "data.hdf5"
    write_d4rl(path, obs_dim=45, action_dim=24)
    train, _ = load_dataset("pen-human-v1", dataset_path=path)
    assert train.obs_dim == 45
    with pytest.raises(DatasetError, match=r"observation shape \(45,\) vs the environment's \(39,\)"):
        load_dataset("door-human-v1", dataset_path=path)


def test_d4rl_dataset_dir_resolution_and_missing_message(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    with pytest.raises(
        DatasetNotFoundError, match=r"antmaze-large-play-v2\.hdf5.*D4RL/antmaze/large-play-v1"
    ):
        load_dataset("antmaze-large-play-v2", dataset_dir=tmp_path)
    write_d4rl(tmp_path / "antmaze-large-play-v2.hdf5")
    train, _ = load_dataset("antmaze-large-play-v2", dataset_dir=tmp_path)
    assert train.size == 6


def test_normalized_scores_use_the_d4rl_references():
    assert set(D4RL_TASKS) <= set(D4RL_REFERENCE_RETURNS)
    assert normalized_score("antmaze-umaze-v2", 1.0) == pytest.approx(100.0)
    assert normalized_score("pen-human-v1", 96.262799) == pytest.approx(0.0)
    assert normalized_score("pen-expert-v1", 3076.8331017826877) == pytest.approx(100.0)
    assert normalized_score("door-cloned-v1", (2880.5693087298737 - 56.512833) / 2) == pytest.approx(50.0)
    with pytest.raises(KeyError, match="No D4RL reference"):
        normalized_score("hopper-medium-v2", 1.0)


def collect_minari(dataset_id: str, env_id: str, episodes: int, steps: int, **env_kwargs):
    """A Minari dataset written by minari's own DataCollector from real rollouts of a random policy."""
    gym.register_envs(gymnasium_robotics)
    env = minari.DataCollector(gym.make(env_id, max_episode_steps=steps, **env_kwargs))
    env.action_space.seed(0)
    for episode in range(episodes):
        env.reset(seed=episode)
        done = False
        while not done:
            _, _, terminated, truncated, _ = env.step(env.action_space.sample())
            done = terminated or truncated
    dataset = env.create_dataset(
        dataset_id=dataset_id,
        algorithm_name="random",
        description="random-policy rollouts for fidec tests",
        ref_min_score=0.0,
        ref_max_score=1.0,
    )
    env.close()
    return dataset


@pytest.fixture
def minari_root(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    return tmp_path / "minari"


def test_minari_antmaze_dataset(minari_root):
    source = collect_minari(
        "D4RL/antmaze/umaze-v1",
        "AntMaze_UMaze-v5",
        episodes=3,
        steps=12,
        continuing_task=False,
        include_cfrc_ext_in_observation=False,
    )
    folder = minari_root / "D4RL" / "antmaze" / "umaze-v1"
    with_minari = load_minari(folder, task_name="antmaze-umaze-v2", use_minari=True)
    with_h5py = load_minari(folder, task_name="antmaze-umaze-v2", use_minari=False)
    for key, value in with_minari.arrays().items():
        np.testing.assert_array_equal(value, getattr(with_h5py, key), err_msg=key)

    assert with_minari.size == 36 and with_minari.obs_dim == 29 and with_minari.num_episodes == 3
    episode = next(iter(source.iterate_episodes()))
    np.testing.assert_allclose(
        with_minari.observations[:12],
        np.concatenate([episode.observations["achieved_goal"], episode.observations["observation"]], axis=1)[
            :-1
        ],
        rtol=1e-6,
    )
    np.testing.assert_allclose(with_minari.rewards[:12], episode.rewards - 1.0)  # AntMaze: r - 1
    np.testing.assert_array_equal(with_minari.masks[:12], 1.0 - episode.terminations)
    np.testing.assert_array_equal(with_minari.terminals[:12], [0] * 11 + [1])
    np.testing.assert_array_equal(with_minari.next_observations[:11], with_minari.observations[1:12])

    # By D4RL name: no .hdf5 in the data folder, so the Minari re-recording is used (and fits the env).
    train, val = load_dataset("antmaze-umaze-v2", dataset_dir=minari_root / "empty")
    assert val is None and train.size == 36
    with pytest.raises(DatasetError, match="does not match environment 'pen-human-v1'"):
        load_dataset("pen-human-v1", dataset_path=folder)


def test_minari_adroit_dataset(minari_root):
    collect_minari("fidec/pen/random-v0", "AdroitHandPen-v1", episodes=2, steps=5)
    train, _ = load_dataset("pen-human-v1", dataset_path=minari_root / "fidec" / "pen" / "random-v0")
    assert (train.size, train.obs_dim, train.action_dim, train.num_episodes) == (10, 45, 24, 2)
    assert np.all(train.masks == 1.0)  # Adroit never terminates: truncations only


def test_flatten_observation():
    single = flatten_observation(
        {"observation": np.ones(3), "achieved_goal": np.zeros(2), "desired_goal": np.ones(2)}
    )
    np.testing.assert_array_equal(single, [0, 0, 1, 1, 1])
    stacked = flatten_observation({"b": np.ones((4, 2)), "a": np.zeros((4, 1))})
    assert stacked.shape == (4, 3) and np.all(stacked[:, 0] == 0)
