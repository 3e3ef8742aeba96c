"""What a checkpoint holds, and how a run's state is packed into one and rebuilt from it.

Offline: every seed's :class:`~fidec.training.blocks.TrainState` (agent state and sampler key), stacked
over seeds under ``state``.  Online, in addition: each seed's filled replay rows (``replay_rows/<key>``),
the environments' state (``envs/<key>``) and the actions chosen for the next environment step
(``pending_actions``), so that the online phase resumes exactly.  ``meta`` records the phase, seeds,
agent, task, offline length, ring capacity, the cumulative timing and the checkpoint's provenance.

Provenance (:func:`provenance`, checked by :func:`check_provenance` before a checkpoint is resumed or
evaluated): the agent, the seeds, and every config key that shapes the parameters or the training -- all
of them except :data:`RESUMABLE_KEYS` and ``run_dir`` -- with their SHA-256.  A checkpoint whose record
differs from the run's config (``config.json`` edited by hand, a checkpoint copied from another run, a
folder renamed to another step) is refused with the first differing key named.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from fidec.agents import AgentState
from fidec.config import flatten, to_dict
from fidec.training import blocks
from fidec.training.checkpoint import PREFIX, Checkpoint, CheckpointError, flatten_tree, unflatten_tree
from fidec.training.config import TrainConfig
from fidec.training.replay import empty_buffer, filled_rows, restore_rows
from fidec.training.seeds import SeedMap

STATE_PREFIX = "state"
# Settings a resumed run may change without breaking exact resume (or only by float round-off): they do not
# shape the parameters or the training, so a checkpoint's provenance leaves them out.
RESUMABLE_KEYS = (
    "steps",
    "online_steps",
    "progress",
    "tensorboard",
    "wandb",
    "wandb_project",
    "wandb_mode",
    "keep_checkpoints",
    "vmap_seeds",
    "eval_num_envs",
)
# Where the run is is not what it computes: a moved run directory keeps its checkpoints valid.
_NOT_PROVENANCE = (*RESUMABLE_KEYS, "run_dir")


class SnapshotError(CheckpointError):
    """A checkpoint that does not belong to this run (other agent, seeds, settings or offline length)."""


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
    arrays.update(flatten_tree(seed_map.to_host(states), STATE_PREFIX))
    return arrays, meta


def shaping_settings(config: TrainConfig) -> dict[str, Any]:
    """The config's dotted keys that shape the parameters and the training (all but :data:`RESUMABLE_KEYS`
    and ``run_dir``), as JSON values."""
    return {k: v for k, v in flatten(to_dict(config)).items() if k not in _NOT_PROVENANCE}


def provenance(config: TrainConfig) -> dict[str, Any]:
    """The provenance record a checkpoint of ``config``'s run carries in its ``meta``."""
    settings = shaping_settings(config)
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()
    return {
        "agent": config.agent_name,
        "seeds": list(config.seeds),
        "config_sha256": digest,
        "config": settings,
    }


def _mismatch(path: Path, key: str, saved: Any, now: Any) -> SnapshotError:
    return SnapshotError(
        f"checkpoint {path} was written with {key}={json.dumps(saved)}, but the run's config.json has "
        f"{key}={json.dumps(now)}: config.json was edited by hand or the checkpoint comes from another run. "
        f"Restore {key} in config.json (a resume may change only {', '.join(RESUMABLE_KEYS)}), or remove the "
        "checkpoint"
    )


def check_provenance(checkpoint: Checkpoint, config: TrainConfig) -> None:
    """Refuse ``checkpoint`` unless it was written by this run at the step its folder names (see the module
    docstring); checkpoints written before fidec recorded provenance are checked for agent and seeds only."""
    check_recorded_provenance(checkpoint.path, checkpoint.step, checkpoint.meta, config)


def check_recorded_provenance(path: Path, step: int, meta: Mapping[str, Any], config: TrainConfig) -> None:
    """:func:`check_provenance` from what a checkpoint's manifest records (no array is read): its folder
    ``path``, ``step`` and ``meta``."""
    name = path.name
    if name.startswith(PREFIX) and name[len(PREFIX) :].isdigit() and int(name[len(PREFIX) :]) != step:
        raise SnapshotError(
            f"checkpoint folder {path} holds the checkpoint of step {step}: it was renamed or copied from "
            "elsewhere; move it back or remove it"
        )
    if meta.get("agent") is not None and meta["agent"] != config.agent_name:
        raise _mismatch(path, "agent_name", meta["agent"], config.agent_name)
    if "seeds" in meta and list(meta["seeds"]) != list(config.seeds):
        raise _mismatch(path, "seeds", list(meta["seeds"]), list(config.seeds))
    saved: Mapping[str, Any] | None = (meta.get("provenance") or {}).get("config")
    if saved is None:
        return
    now = shaping_settings(config)
    missing = object()
    for key in sorted(set(saved) | set(now)):
        if saved.get(key, missing) != now.get(key, missing):
            raise _mismatch(path, key, saved.get(key), now.get(key))


def agent_states(checkpoint: Checkpoint, init_agent: Callable, num_seeds: int) -> list[AgentState]:
    """Each seed's agent state (on the default device) from ``checkpoint``, for evaluation."""
    host = unflatten_tree(blocks.state_template(init_agent, num_seeds), checkpoint.arrays, STATE_PREFIX)
    return [jax.tree.map(lambda x, i=i: jnp.asarray(x[i]), host.agent) for i in range(num_seeds)]


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
    whose state an online checkpoint restores (its provenance is checked by :func:`check_provenance`)."""
    online = checkpoint.meta["phase"] == "online"
    if online and checkpoint.meta.get("offline_steps") != offline_steps:
        raise SnapshotError(
            f"the online phase began after {checkpoint.meta.get('offline_steps')} offline steps; "
            f"steps={offline_steps} cannot change once it has started"
        )
    template = blocks.state_template(init_agent, len(seeds), with_replay=online)
    states = seed_map.from_host(unflatten_tree(template, checkpoint.arrays, STATE_PREFIX))
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
