"""The Dataset container and the uniform minibatch sampler."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from fidec.data import BATCH_KEYS, Dataset, DatasetError, sample_batch


def make_dataset(episode_lengths=(3, 4, 5), obs_dim=2, action_dim=1, seed=0) -> Dataset:
    rng = np.random.default_rng(seed)
    size = sum(episode_lengths)
    terminals = np.zeros(size)
    terminals[np.cumsum(episode_lengths) - 1] = 1.0
    observations = rng.normal(size=(size, obs_dim))
    return Dataset.from_arrays(
        {
            "observations": observations,
            "actions": rng.uniform(-1, 1, size=(size, action_dim)),
            "rewards": np.arange(size, dtype=np.float64),
            "masks": np.ones(size),
            "terminals": terminals,
            "next_observations": observations + 1.0,
        },
        extra_keys=("qpos",),
    )


def test_from_arrays_casts_to_float32_and_reports_sizes():
    dataset = make_dataset(obs_dim=3, action_dim=2)
    assert all(v.dtype == np.float32 for v in dataset.arrays().values())
    assert (dataset.size, dataset.obs_dim, dataset.action_dim, dataset.num_episodes) == (12, 3, 2, 3)
    assert dataset.extras == {}  # 'qpos' was asked for but absent: nothing invented
    dataset.validate()


def test_pixel_observations_stay_uint8():
    base = make_dataset()
    pixels = np.zeros((base.size, 4, 4, 3), np.uint8)
    dataset = Dataset.from_arrays({**base.arrays(), "observations": pixels, "next_observations": pixels})
    assert dataset.observations.dtype == np.uint8
    assert dataset.obs_dim == 48
    dataset.validate()


def test_episode_bounds_and_split_keep_whole_episodes():
    dataset = make_dataset(episode_lengths=(3, 4, 5, 6))
    np.testing.assert_array_equal(dataset.episode_bounds(), [[0, 3], [3, 7], [7, 12], [12, 18]])
    train, val = dataset.split(0.25, seed=1)
    assert train.size + val.size == dataset.size
    assert val.num_episodes == 1 and train.num_episodes == 3
    # Rewards are row indices: the two sides are disjoint and together cover every row.
    rows = np.concatenate([train.rewards, val.rewards]).astype(int)
    assert sorted(rows) == list(range(dataset.size))
    assert val.terminals[-1] == 1.0 and train.terminals[-1] == 1.0
    with pytest.raises(ValueError, match="val_fraction"):
        dataset.split(1.5)


def test_sample_batch_is_deterministic_jittable_and_uniform():
    dataset = make_dataset(episode_lengths=(5, 5))
    arrays = dataset.to_device()
    assert set(arrays) == set(BATCH_KEYS)
    key = jax.random.PRNGKey(3)
    first = sample_batch(arrays, key, 64)
    again = jax.jit(sample_batch, static_argnums=2)(arrays, key, 64)
    for name in BATCH_KEYS:
        np.testing.assert_array_equal(first[name], again[name])
    other = sample_batch(arrays, jax.random.PRNGKey(4), 64)
    assert not np.array_equal(first["rewards"], other["rewards"])
    # Rows stay aligned across keys (rewards are row ids).
    rows = np.asarray(first["rewards"]).astype(int)
    np.testing.assert_array_equal(first["observations"], dataset.observations[rows])
    np.testing.assert_array_equal(first["next_observations"], dataset.next_observations[rows])
    # Uniform with replacement: every row is hit, with frequencies near 1/N.
    many = np.asarray(sample_batch(arrays, key, 20_000)["rewards"]).astype(int)
    counts = np.bincount(many, minlength=dataset.size) / many.size
    np.testing.assert_allclose(counts, 1 / dataset.size, atol=0.015)


def test_validate_rejects_a_wrong_dtype_in_the_container():
    dataset = make_dataset()
    broken = Dataset(**{**dataset.arrays(), "rewards": dataset.rewards.astype(np.float64)})
    with pytest.raises(DatasetError, match="float32"):
        broken.validate()
