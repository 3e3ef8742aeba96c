"""What a checkpoint holds, and how a run's state is packed into one and rebuilt from it.

Offline: every seed's :class:`~fidec.training.blocks.TrainState` (agent state and sampler key), stacked
over seeds under ``state``.  Online, in addition: each seed's filled replay rows (``replay_rows/<key>``),
the environments' state (``envs/<key>``) and the actions chosen for the next environment step
(``pending_actions``), so that the online phase resumes exactly.  ``meta`` records the phase, seeds,
agent, task, offline length, ring capacity and the cumulative timing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import jax
import numpy as np

from fidec.training import blocks
from fidec.training.checkpoint import Checkpoint, flatten_tree, unflatten_tree
from fidec.training.replay import empty_buffer, filled_rows, restore_rows
from fidec.training.rundir import RunDirError
from fidec.training.seeds import SeedMap


class SnapshotError(RunDirError):
    """A checkpoint that does not belong to this run (other seeds, other offline length)."""


@dataclass
class OnlineParts:
    """The online phase's state outside the agents: environments, next actions, ring capacity."""

    envs: Any  # fidec.training.online.OnlineEnvs
    pending_actions: np.ndarray
    ring_capacity: int


def pack(
    seed_map: SeedMap,
    states: Any,
    step: int,
    phase: str,
    meta: dict[str, Any],
    online: OnlineParts | None = None,
    offline_steps: int = 0,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """(arrays, meta) of a checkpoint at ``step`` (see the module docstring)."""
    arrays: dict[str, np.ndarray] = {}
    meta = {**meta, "phase": phase, "offline_steps": offline_steps}
    if phase == "online":
        assert online is not None
        containers = seed_map.to_list(states)
        filled = min(step - offline_steps, online.ring_capacity)
        rows = [jax.device_get(filled_rows(s.replay, filled)) for s in containers]
        for k in rows[0]:
            arrays[f"replay_rows/{k}"] = np.stack([r[k] for r in rows])
        states = seed_map.from_list([s.replace(replay=s.replay.replace(data=None)) for s in containers])
        arrays.update({f"envs/{k}": v for k, v in online.envs.to_arrays().items()})
        arrays["pending_actions"] = np.asarray(online.pending_actions)
        meta["ring_capacity"] = online.ring_capacity
    arrays.update(flatten_tree(seed_map.to_host(states), "state"))
    return arrays, meta


def unpack(
    checkpoint: Checkpoint,
    seed_map: SeedMap,
    init_agent: Callable,
    seeds: Sequence[int],
    data: Any,
    offline_steps: int,
    make_envs: Callable[[], Any],
) -> tuple[Any, OnlineParts | None]:
    """(per-seed states, online parts or None) from ``checkpoint``; ``make_envs()`` builds the environments
    whose state an online checkpoint restores."""
    if list(checkpoint.meta.get("seeds", [])) != list(seeds):
        raise SnapshotError(
            f"checkpoint seeds {checkpoint.meta.get('seeds')} differ from the config's {list(seeds)}"
        )
    online = checkpoint.meta["phase"] == "online"
    if online and checkpoint.meta.get("offline_steps") != offline_steps:
        raise SnapshotError(
            f"the online phase began after {checkpoint.meta.get('offline_steps')} offline steps; "
            f"steps={offline_steps} cannot change once it has started"
        )
    template = blocks.state_template(init_agent, len(seeds), with_replay=online)
    states = seed_map.from_host(unflatten_tree(template, checkpoint.arrays, "state"))
    if not online:
        return states, None
    capacity = int(checkpoint.meta["ring_capacity"])
    rows = {k.split("/", 1)[1]: v for k, v in checkpoint.arrays.items() if k.startswith("replay_rows/")}
    restored = []
    for i, s in enumerate(seed_map.to_list(states)):
        ring = restore_rows(empty_buffer(data, capacity), {k: v[i] for k, v in rows.items()})
        restored.append(s.replace(replay=ring.replace(pointer=s.replay.pointer, size=s.replay.size)))
    envs = make_envs()
    envs.restore({k.split("/", 1)[1]: v for k, v in checkpoint.arrays.items() if k.startswith("envs/")})
    parts = OnlineParts(envs, np.asarray(checkpoint.arrays["pending_actions"]), capacity)
    return seed_map.from_list(restored), parts
