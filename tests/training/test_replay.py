"""Online replay buffer: the dataset is shared, online rows form a ring, sampling covers exactly the filled rows."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fidec.training import replay


def _dataset(n: int = 5):
    return {
        "observations": jnp.zeros((n, 3)),
        "actions": jnp.zeros((n, 2)),
        "rewards": jnp.zeros(n),
        "masks": jnp.ones(n),
        "terminals": jnp.zeros(n),
        "next_observations": jnp.zeros((n, 3)),
    }


def _transition(value: float):
    return {
        "observations": jnp.full(3, value),
        "actions": jnp.full(2, value),
        "rewards": jnp.asarray(value),
        "masks": jnp.asarray(1.0),
        "terminals": jnp.asarray(0.0),
        "next_observations": jnp.full(3, value),
    }


def test_insert_fills_then_wraps_around():
    buffer = replay.empty_buffer(_dataset(), 3)
    insert = jax.jit(replay.insert)
    for value in (1.0, 2.0, 3.0, 4.0):
        buffer = insert(buffer, _transition(value))
    assert int(buffer.size) == 3 and int(buffer.pointer) == 1
    assert np.array_equal(
        np.asarray(buffer.data["rewards"]), [4.0, 2.0, 3.0]
    )  # the oldest online row went first


def test_sampling_covers_dataset_and_filled_online_rows_only():
    data = _dataset(5)
    buffer = replay.empty_buffer(data, 10)
    for value in (7.0, 8.0):
        buffer = replay.insert(buffer, _transition(value))
    batch = jax.jit(replay.sample, static_argnums=3)(data, buffer, jax.random.PRNGKey(0), 7000)
    rewards = np.asarray(batch["rewards"])
    values, counts = np.unique(rewards, return_counts=True)
    assert set(values.tolist()) == {
        0.0,
        7.0,
        8.0,
    }  # never an unfilled (zero-reward but online) slot beyond size
    # Uniform over 5 dataset rows + 2 online rows.
    assert counts[0] / 7000 == pytest.approx(5 / 7, abs=0.03)
    assert np.array_equal(
        np.asarray(batch["observations"])[rewards == 8.0], np.full(((rewards == 8.0).sum(), 3), 8.0)
    )


def test_online_capacity_rules():
    assert replay.online_capacity(2_000_000, 1_000_000, 1_000_000) == 1_000_000
    assert replay.online_capacity(2_000_000, 1_000_000, 500) == 500
    with pytest.raises(ValueError, match="must exceed the dataset size"):
        replay.online_capacity(100, 100, 10)


def test_filled_rows_round_trip():
    data = _dataset()
    buffer = replay.empty_buffer(data, 4)
    for value in (1.0, 2.0):
        buffer = replay.insert(buffer, _transition(value))
    rows = jax.device_get(replay.filled_rows(buffer, int(buffer.size)))
    assert rows["rewards"].shape == (2,)
    restored = replay.restore_rows(replay.empty_buffer(data, 4), rows).replace(
        pointer=buffer.pointer, size=buffer.size
    )
    for a, b in zip(jax.tree.leaves(buffer), jax.tree.leaves(restored), strict=True):
        assert np.array_equal(np.asarray(a), np.asarray(b))


def test_next_actions_follow_the_buffers_row_order_dataset_then_online():
    """Rows are [dataset rows; online rows] (the FQL code's replay buffer seeded by the dataset): the dataset's
    last row is followed by the first online row, and the newest online row has its own action as next."""
    n = 4
    data = {
        "observations": jnp.zeros((n, 3)),
        "actions": jnp.stack([jnp.arange(n, dtype=jnp.float32)] * 2, axis=1),
        "rewards": jnp.arange(n, dtype=jnp.float32),
        "masks": jnp.ones(n),
        "terminals": jnp.zeros(n),
        "next_observations": jnp.zeros((n, 3)),
    }
    buffer = replay.empty_buffer(data, 5)
    for value in (10.0, 11.0, 12.0):
        buffer = replay.insert(buffer, _transition(value))
    sample = jax.jit(replay.sample, static_argnums=(3, 4))
    batch = sample(data, buffer, jax.random.PRNGKey(0), 500, ("next_actions",))
    following = {0.0: 1.0, 1.0: 2.0, 2.0: 3.0, 3.0: 10.0, 10.0: 11.0, 11.0: 12.0, 12.0: 12.0}
    rewards = np.asarray(batch["rewards"])
    assert set(rewards.tolist()) == set(following)  # every row drawn, never an unfilled slot
    expected = np.array([following[r] for r in rewards])
    np.testing.assert_array_equal(np.asarray(batch["next_actions"]), np.stack([expected] * 2, axis=1))
    assert "next_actions" not in sample(data, buffer, jax.random.PRNGKey(0), 8, ())
