"""Several seeds in one process: one vmapped program over seed-stacked states, or a loop over seeds.

A :class:`SeedMap` turns a per-seed function ``f(state, *args) -> outputs`` into one that runs every
seed.  Vmapped, the per-seed containers are pytrees with the seeds on a leading axis and shared
arguments (the dataset) are passed once, not copied per seed.  Sequential (the fallback), the
containers are lists of per-seed pytrees and the same jitted single-seed program runs once per seed.
Both modes build each seed's initial state the same way, and checkpoints store the seed-stacked form,
so a run may resume in either mode.  Vmapped and sequential runs agree to float round-off, not bitwise
(batched matrix products may sum in a different order).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


def vmap_by_default(backend: str | None = None) -> bool:
    """fidec's choice of seed execution when a run does not say (``vmap_seeds=None``): sequential seeds on a
    CPU, vmapped seeds on accelerators, where one program fills the device.

    Measured by ``fidec bench`` (section "seeds", benchmarks/results/cpu-quick.json, docs/benchmarks.md):
    on 2 loaded CPU cores, FD at 3 x 256 with the training loop's own blocks, vmapped seeds ran at 0.94-1.01x
    the per-seed rate of sequential ones for 1-4 seeds (never faster outside the noise of the windows), and
    sequential seeds at 0.91-1.05x separate single-seed runs: on a CPU vmapping buys nothing and costs a
    compile per number of seeds."""
    return (backend or jax.default_backend()) != "cpu"


@dataclass(frozen=True)
class SeedMap:
    """How per-seed work is spread over the seeds: ``vmapped`` or one after another.

    The number of seeds is read from the containers (leading axis, or list length).
    """

    vmapped: bool

    def jit(self, fn: Callable, per_seed: Sequence[bool], donate_argnums: tuple[int, ...] = ()) -> Callable:
        """All-seeds version of ``fn``; ``per_seed[i]`` says whether positional argument i differs by seed
        (a seed container, or a seed-stacked pytree such as the environments' transitions).

        Every output of ``fn`` is per seed (stacked when vmapped, a list per output otherwise).
        """
        per_seed = tuple(per_seed)
        if self.vmapped:
            in_axes = tuple(0 if p else None for p in per_seed)
            return jax.jit(jax.vmap(fn, in_axes=in_axes), donate_argnums=donate_argnums)
        single = jax.jit(fn, donate_argnums=donate_argnums)

        first_per_seed = per_seed.index(True)

        def seed_part(arg, i: int):
            # Per-seed containers are lists; per-seed inputs from the host are seed-stacked pytrees.
            return arg[i] if isinstance(arg, list) else jax.tree.map(lambda x: x[i], arg)

        def run_each(*args):
            outputs = []
            for i in range(len(args[first_per_seed])):
                outputs.append(
                    single(*[seed_part(a, i) if p else a for a, p in zip(args, per_seed, strict=True)])
                )
            if not isinstance(outputs[0], tuple):
                return outputs
            return tuple(list(column) for column in zip(*outputs, strict=True))

        return run_each

    def from_list(self, trees: Sequence[Any]) -> Any:
        """Container of per-seed pytrees (stacked on device when vmapped)."""
        if self.vmapped:
            return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)
        return list(trees)

    def to_list(self, container: Any) -> list:
        if self.vmapped:
            return [jax.tree.map(lambda x, i=i: x[i], container) for i in range(_leading(container))]
        return list(container)

    def select(self, container: Any, i: int) -> Any:
        """Seed i's pytree."""
        return jax.tree.map(lambda x: x[i], container) if self.vmapped else container[i]

    def to_host(self, container: Any) -> Any:
        """Seed-stacked NumPy pytree (one transfer), the form checkpoints store."""
        if self.vmapped:
            return jax.device_get(container)
        trees = jax.device_get(list(container))
        return jax.tree.map(lambda *xs: np.stack(xs), *trees)

    def from_host(self, stacked: Any) -> Any:
        """Inverse of :meth:`to_host`."""
        if self.vmapped:
            return jax.tree.map(jnp.asarray, stacked)
        return [jax.tree.map(lambda x, i=i: jnp.asarray(x[i]), stacked) for i in range(_leading(stacked))]


def _leading(tree: Any) -> int:
    """Size of the seed axis of a seed-stacked pytree."""
    return int(jax.tree.leaves(tree)[0].shape[0])
