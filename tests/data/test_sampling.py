"""The minibatch sampler's ``next_actions`` (ReBRAC's critic penalty): the actions of the row after each
sampled row, the last row's own at the end (the FQL code's ``min(i + 1, N - 1)``), for state and visual
datasets alike."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from fidec.data import sample_batch
from fidec.data.sampling import next_rows
from fidec.data.visual import VisualDataset

N = 6


def row_labelled_arrays(n: int = N) -> dict[str, jax.Array]:
    """Row r has reward r and action (r, -r) / 10, so that a batch says which rows it drew."""
    rows = np.arange(n, dtype=np.float32)
    arrays = {
        "observations": np.repeat(rows[:, None], 3, axis=1),
        "actions": np.stack([rows, -rows], axis=1) / 10,
        "rewards": rows,
        "masks": np.ones(n, np.float32),
        "next_observations": np.repeat(rows[:, None] + 1, 3, axis=1),
    }
    return {k: jax.numpy.asarray(v) for k, v in arrays.items()}


def test_next_rows_is_the_following_row_and_the_last_rows_own():
    np.testing.assert_array_equal(next_rows(jax.numpy.arange(6), 6), [1, 2, 3, 4, 5, 5])


def test_next_actions_are_the_next_rows_actions_clipped_at_the_last_row():
    arrays = row_labelled_arrays()
    key = jax.random.PRNGKey(0)
    batch = sample_batch(arrays, key, 300, extra_keys=("next_actions",))
    rows = np.asarray(batch["rewards"]).astype(int)
    assert set(rows.tolist()) == set(range(N))  # every row drawn, the last one included
    actions = np.asarray(arrays["actions"])
    np.testing.assert_array_equal(batch["next_actions"], actions[np.minimum(rows + 1, N - 1)])
    np.testing.assert_array_equal(
        np.asarray(batch["next_actions"])[rows == N - 1], actions[[N - 1]].repeat((rows == N - 1).sum(), 0)
    )
    # Asking for next_actions leaves the rest of the batch as it was, and is jittable.
    plain = sample_batch(arrays, key, 300)
    assert "next_actions" not in plain
    for k, v in plain.items():
        np.testing.assert_array_equal(batch[k], v)
    jitted = jax.jit(sample_batch, static_argnums=(2, 3))(arrays, key, 300, ("next_actions",))
    np.testing.assert_array_equal(jitted["next_actions"], batch["next_actions"])


def test_the_sampler_refuses_keys_it_cannot_provide():
    with pytest.raises(KeyError, match="returns"):
        sample_batch(row_labelled_arrays(), jax.random.PRNGKey(0), 4, extra_keys=("returns",))


def test_visual_datasets_give_the_next_transitions_action_too():
    """Transition rows of a frame-stacked dataset: row r + 1 (across an episode's end: the next episode's first
    transition, as in the FQL code), the last row's own at the end."""
    terminals = np.zeros(11, bool)
    terminals[[4, 10]] = True
    frames = np.zeros((11, 4, 4, 3), np.uint8)
    actions = np.linspace(-1, 1, 22, dtype=np.float32).reshape(11, 2)
    ds = VisualDataset.from_episodes(frames, actions, terminals, frame_stack=2)
    key = jax.random.PRNGKey(1)
    batch = sample_batch(ds.to_device(), key, 200, extra_keys=("next_actions",))
    table = np.asarray(ds.actions)
    rows = np.array([int(np.flatnonzero((table == a).all(axis=1))[0]) for a in np.asarray(batch["actions"])])
    assert set(rows.tolist()) == set(range(ds.size))
    np.testing.assert_array_equal(batch["next_actions"], table[np.minimum(rows + 1, ds.size - 1)])
