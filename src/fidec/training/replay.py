"""Online replay buffer: the offline dataset (shared, read-only) plus a ring of online transitions.

The buffer of the offline-to-online phase starts as the dataset (as in FQL) and grows with the agent's
own transitions.  The dataset part is shared by every seed and never copied; each seed owns only its
ring of online rows, a pytree that jitted code inserts into and samples from:

    rows = dataset rows 0..N-1, then online rows 0..size-1   (uniform sampling over all N + size)

The ring holds ``min(online_steps, replay_capacity - N)`` rows; once full, the newest online
transition overwrites the oldest online one (dataset rows are never evicted).  A checkpoint stores
only the filled online rows (``size`` x row bytes per seed), not the dataset.
"""

from __future__ import annotations

from collections.abc import Mapping

import flax
import jax
import jax.numpy as jnp
import numpy as np

TRANSITION_KEYS = ("observations", "actions", "rewards", "masks", "terminals", "next_observations")


class ReplayBuffer(flax.struct.PyTreeNode):
    """The online rows of one seed: ``data[k]`` has ``capacity`` rows; ``pointer`` is the next write."""

    data: dict
    pointer: jax.Array
    size: jax.Array

    @property
    def capacity(self) -> int:
        return int(self.data["rewards"].shape[-1])


def online_capacity(replay_capacity: int, dataset_size: int, online_steps: int) -> int:
    """Rows of the online ring: the capacity left after the dataset, never more than the online steps."""
    left = replay_capacity - dataset_size
    if left < 1:
        raise ValueError(
            f"replay_capacity ({replay_capacity}) must exceed the dataset size ({dataset_size}) to leave room "
            f"for online transitions; raise it, e.g. --set replay_capacity={dataset_size + online_steps}"
        )
    return max(1, min(left, online_steps))


def empty_buffer(dataset: Mapping[str, jax.Array], capacity: int) -> ReplayBuffer:
    """A ring of ``capacity`` zero rows shaped like the dataset's rows."""
    data = {
        k: jnp.zeros((capacity, *dataset[k].shape[1:]), jnp.float32) for k in TRANSITION_KEYS if k in dataset
    }
    return ReplayBuffer(data=data, pointer=jnp.zeros((), jnp.int32), size=jnp.zeros((), jnp.int32))


def insert(buffer: ReplayBuffer, transition: Mapping[str, jax.Array]) -> ReplayBuffer:
    """Write one transition at ``pointer``; pointer <- (pointer + 1) mod capacity (jittable)."""
    capacity = buffer.data["rewards"].shape[0]
    data = {k: v.at[buffer.pointer].set(jnp.asarray(transition[k], v.dtype)) for k, v in buffer.data.items()}
    return buffer.replace(
        data=data, pointer=(buffer.pointer + 1) % capacity, size=jnp.minimum(buffer.size + 1, capacity)
    )


def sample(
    dataset: Mapping[str, jax.Array],
    buffer: ReplayBuffer,
    key: jax.Array,
    batch_size: int,
    extra_keys: tuple[str, ...] = (),
) -> dict[str, jax.Array]:
    """Uniform minibatch over the N dataset rows and the ``size`` online rows (jittable, pure in the key).

    ``extra_keys`` may ask for ``next_actions``: the actions of the next row of the whole buffer (dataset rows
    then online rows, as the FQL code's replay buffer lays them out), the last row's own at the end.
    """
    num_dataset = dataset["rewards"].shape[0]
    index = jax.random.randint(key, (batch_size,), 0, num_dataset + buffer.size)
    batch = {k: _gather(dataset[k], rows, index, num_dataset) for k, rows in buffer.data.items()}
    if "next_actions" in extra_keys:
        following = jnp.minimum(index + 1, num_dataset + buffer.size - 1)
        batch["next_actions"] = _gather(dataset["actions"], buffer.data["actions"], following, num_dataset)
    return batch


def _gather(dataset_rows: jax.Array, online_rows: jax.Array, index: jax.Array, num_dataset) -> jax.Array:
    """Rows ``index`` of [dataset rows; online rows]."""
    from_dataset = index < num_dataset
    a = jnp.take(dataset_rows, jnp.minimum(index, num_dataset - 1), axis=0)
    b = jnp.take(online_rows, jnp.clip(index - num_dataset, 0, online_rows.shape[0] - 1), axis=0)
    return jnp.where(from_dataset.reshape(index.shape + (1,) * (a.ndim - 1)), a, b)


def filled_rows(buffer: ReplayBuffer, size: int) -> dict[str, jax.Array]:
    """The first ``size`` rows of one seed's ring (the filled ones): what a checkpoint stores."""
    return {k: v[:size] for k, v in buffer.data.items()}


def restore_rows(buffer: ReplayBuffer, rows: Mapping[str, np.ndarray], row_axis: int = 0) -> ReplayBuffer:
    """Put saved online rows back into an empty ring (``row_axis`` 1 for seed-stacked buffers)."""
    data = {}
    for k, v in buffer.data.items():
        saved = jnp.asarray(rows[k], v.dtype)
        index = (slice(None),) * row_axis + (slice(0, saved.shape[row_axis]),)
        data[k] = v.at[index].set(saved)
    return buffer.replace(data=data)
