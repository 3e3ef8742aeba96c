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


def sample_batch(arrays: Mapping[str, jax.Array], key: jax.Array, batch_size: int) -> dict[str, jax.Array]:
    """Uniform minibatch with replacement: rows i_1..i_B ~ U{0..N-1} i.i.d., drawn from ``key`` alone.

    Pure and jittable (``batch_size`` static): the same key gives the same batch. Returns the
    :data:`~fidec.data.dataset.BATCH_KEYS` present in ``arrays``.  Arrays of a
    :class:`~fidec.data.visual.VisualDataset` (``frames`` + stack indices) give frame-stacked uint8
    observations (see :func:`sample_stacked_batch`).
    """
    if "frames" in arrays:
        return sample_stacked_batch(arrays, key, batch_size)
    size = arrays["observations"].shape[0]
    indices = jax.random.randint(key, (batch_size,), 0, size)
    return {k: jnp.take(arrays[k], indices, axis=0) for k in BATCH_KEYS if k in arrays}


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
