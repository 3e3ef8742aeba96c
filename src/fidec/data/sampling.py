"""The jittable minibatch sampler every agent trains with.

Sampling is uniform with replacement from device memory. :func:`sample_batch` is pure: the batch is a
function of the key alone, so the sampler's whole state for an exact resume is the PRNG key, which the
training loop owns, splits and checkpoints.
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp

from fidec.data.dataset import BATCH_KEYS
from fidec.data.stacking import gather_stacks
from fidec.data.visual import ROW_KEYS


def sample_batch(
    arrays: Mapping[str, jax.Array], key: jax.Array, batch_size: int, extra_keys: tuple[str, ...] = ()
) -> dict[str, jax.Array]:
    """Uniform minibatch with replacement: rows i_1..i_B ~ U{0..N-1} i.i.d., drawn from ``key`` alone.

    Pure and jittable (``batch_size`` static): the same key gives the same batch. Returns the
    :data:`~fidec.data.dataset.BATCH_KEYS` present in ``arrays``, plus ``extra_keys`` an agent asks for
    (:func:`with_next_actions`).  Arrays of a :class:`~fidec.data.visual.VisualDataset` (``frames`` + stack
    indices) give frame-stacked uint8 observations (see :func:`sample_stacked_batch`).
    """
    if "frames" in arrays:
        return with_next_actions(arrays, sample_stacked_batch(arrays, key, batch_size), key, extra_keys)
    size = arrays["observations"].shape[0]
    indices = jax.random.randint(key, (batch_size,), 0, size)
    batch = {k: jnp.take(arrays[k], indices, axis=0) for k in BATCH_KEYS if k in arrays}
    return with_next_actions(arrays, batch, key, extra_keys, indices)


def next_rows(indices: jax.Array, size: int | jax.Array) -> jax.Array:
    """The row after each index, min(i + 1, N - 1) (the FQL code's ``next_actions``: at the end of an episode
    it is the next episode's first row; a terminal transition's critic target does not use it)."""
    return jnp.minimum(indices + 1, size - 1)


def with_next_actions(
    arrays: Mapping[str, jax.Array],
    batch: dict[str, jax.Array],
    key: jax.Array,
    extra_keys: tuple[str, ...],
    indices: jax.Array | None = None,
) -> dict[str, jax.Array]:
    """``batch`` plus ``next_actions`` = actions[:func:`next_rows`] when ``extra_keys`` asks for it."""
    unknown = set(extra_keys) - {"next_actions"} - set(batch)
    if unknown:
        raise KeyError(f"the sampler cannot provide {sorted(unknown)}")
    if "next_actions" in extra_keys:
        size = arrays["actions"].shape[0]
        if indices is None:  # the stacked sampler drew them from the same key
            indices = jax.random.randint(key, (batch["actions"].shape[0],), 0, size)
        batch["next_actions"] = jnp.take(arrays["actions"], next_rows(indices, size), axis=0)
    return batch


def sample_stacked_batch(arrays: Mapping[str, jax.Array], key: jax.Array, batch_size: int) -> dict:
    """Uniform minibatch of a visual dataset on device: rows i_1..i_B ~ U{0..N-1} from ``key`` alone.

    Observations are gathered as stacks of k frames (k = ``obs_stack.shape[1]``, static) and stay uint8;
    nothing larger than a batch is ever materialised.
    """
    size = arrays["actions"].shape[0]
    indices = jax.random.randint(key, (batch_size,), 0, size)
    batch = {k: jnp.take(arrays[k], indices, axis=0) for k in ROW_KEYS}
    batch["observations"] = gather_stacks(arrays["frames"], jnp.take(arrays["obs_stack"], indices, axis=0))
    batch["next_observations"] = gather_stacks(
        arrays["frames"], jnp.take(arrays["next_stack"], indices, axis=0)
    )
    return batch
