"""The Python API of runs, re-exported by the package root: train a run, load it, act with its policy.

    import fidec
    run = fidec.train("fd", "cube-single-play-singletask-task1-v0", presets=["tiny"])
    policy = fidec.load_policy(run.run_dir)          # newest checkpoint, seed 0, the run's action mode
    action = policy(observation)                     # NumPy (obs_dim,) -> (action_dim,); batches too

A :class:`Policy` is one seed's parameters from one checkpoint, bound to an action-selection mode.  It
maps NumPy observations to NumPy actions in [-1, 1]^action_dim: a batch (B, *observation_shape) gives
(B, action_dim), one observation (*observation_shape) gives (action_dim,).  It calls the agent's jitted
``sample_actions``, compiled once per batch size and mode (and shared by every policy of the same run).

Randomness: ``policy(obs, key=k)`` is a pure function of (observations, k) (a JAX PRNG key or an int
seed).  Without ``key`` the policy draws from its own stream: its k-th such call (counting from 0, or
from the last :meth:`Policy.reset`) uses ``fold_in(PRNGKey(noise_seed), k)``, the scheme of fidec's own
evaluation, so a fresh policy replays the same actions for the same observations.

Pixel runs take observations with their frame stack already applied: (H, W, C k), the last k frames on
the channel axis, oldest first (what :class:`fidec.envs.FrameStack` gives, which also repeats the first
frame at an episode start, as training did).  The policy keeps no frames itself, so one policy serves
any number of environments and episodes.

Observations holding NaN or inf are refused (a :class:`PolicyInputError` naming the rows) rather than
turned into NaN or arbitrary actions an environment or robot would then execute.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from fidec.agents import Agent, AgentState
from fidec.errors import UserError
from fidec.training.config import DEFAULT_AGENT, DEFAULT_ENV, make_train_config
from fidec.training.loop import RunResult
from fidec.training.loop import train as train_config
from fidec.training.rundir import LoadedRun, RunDir

__all__ = ["Policy", "PolicyInputError", "load_policy", "load_run", "train"]


class PolicyInputError(UserError, ValueError):
    """Observations a policy cannot act on (wrong shape, not numbers, NaN or inf)."""


def train(
    agent: str = DEFAULT_AGENT,
    env: str = DEFAULT_ENV,
    *,
    presets: Sequence[str] = (),
    overrides: Mapping[str, Any] | None = None,
    **settings: Any,
) -> RunResult:
    """Train a run as ``fidec train --agent AGENT --env ENV --preset P --set KEY=VALUE`` does, and return
    its :class:`~fidec.training.RunResult` (``run_dir``, ``summary``, ``config``, final ``states``).

    ``presets``: at most one scale (``tiny``, ``cpu``, ``paper``) and any named agent presets.
    ``settings``: run keys as keywords (``steps=200``, ``seeds=(0, 1)``, ``run_dir="runs/x"``);
    ``overrides``: dotted keys, agent ones included (``{"agent.alpha": 10.0}``).  To train a
    :class:`~fidec.training.TrainConfig` you built yourself, call :func:`fidec.training.train`.
    """
    config = make_train_config(agent, env, presets=presets, overrides={**settings, **(overrides or {})})
    return train_config(config)


def load_run(run_dir: str | os.PathLike, step: int | None = None) -> LoadedRun:
    """A saved run: its config, agent and one agent state per seed from checkpoint ``step`` (default: the
    newest that verifies).  Unknown folders and missing steps raise a :class:`~fidec.errors.UserError`
    naming what exists.  Reading takes no lock: a run still training can be loaded (its checkpoints are
    written atomically)."""
    return RunDir.open(run_dir).load(step)


def _seed_index(run: LoadedRun, seed: int) -> int:
    """Position of training seed ``seed`` among the run's seeds (refused, listing them, when absent)."""
    seeds = list(run.config.seeds)
    if seed not in seeds:
        raise UserError(
            f"seed {seed!r} is not in the run {run.config.run_dir}; its seeds: {', '.join(map(str, seeds))}"
        )
    return seeds.index(seed)


def load_policy(
    run_dir: str | os.PathLike,
    step: int | None = None,
    seed: int = 0,
    mode: str | None = None,
    *,
    noise_seed: int = 0,
) -> Policy:
    """The policy of training seed ``seed`` of the run in ``run_dir`` at checkpoint ``step`` (default: the
    newest that verifies), acting with ``mode`` (default: the mode the run evaluated with).

    ``noise_seed`` seeds the policy's own key stream (see the module docstring); refused with a one-line
    :class:`~fidec.errors.UserError`: a folder that is not a run, a step without a checkpoint (listing
    those there are), a seed the run did not train, a mode the agent does not have.
    """
    run = load_run(run_dir, step)
    state = run.states[_seed_index(run, seed)]
    chosen = mode or run.config.action_mode
    return Policy(run.agent, state, chosen, noise_seed=noise_seed, source=(Path(run_dir), run.step, seed))


def _as_key(key: jax.Array | int) -> jax.Array:
    """A JAX PRNG key from a key or an int seed."""
    return jax.random.PRNGKey(key) if isinstance(key, int | np.integer) else key


def _format_rows(rows: np.ndarray) -> str:
    """The first few row indices, for error messages."""
    shown = ", ".join(str(int(r)) for r in rows[:5])
    return shown + (f" and {len(rows) - 5} more" if len(rows) > 5 else "")


class Policy:
    """Observations (NumPy) -> actions (NumPy) of one trained agent state with one action mode.

    Attributes: ``agent``, ``state``, ``mode``, ``noise_seed``, ``calls`` (keyless calls since the last
    reset); ``run_dir``, ``step``, ``seed`` (where it was loaded from, None when built directly).
    """

    def __init__(
        self,
        agent: Agent,
        state: AgentState,
        mode: str | None = None,
        *,
        noise_seed: int = 0,
        source: tuple[Path, int, int] | None = None,
    ):
        self.agent = agent
        self.state = state
        self.mode = mode or agent.config.action_mode
        if self.mode not in agent.modes:
            raise UserError(
                f"agent {agent.name!r} has the action modes {', '.join(agent.modes)}, not {self.mode!r}"
            )
        self.noise_seed = noise_seed
        self.run_dir: Path | None = source[0] if source else None
        self.step: int | None = source[1] if source else None
        self.seed: int | None = source[2] if source else None
        self.calls = 0
        self._stream = jax.random.PRNGKey(noise_seed)

    def __repr__(self) -> str:
        where = f", run_dir={str(self.run_dir)!r}, step={self.step}, seed={self.seed}" if self.run_dir else ""
        return f"Policy(agent={self.agent.name!r}, mode={self.mode!r}{where})"

    @property
    def observation_shape(self) -> tuple[int, ...]:
        """The shape of one observation: (obs_dim,) for states, (H, W, C k) for stacked pixel frames."""
        obs_dim = self.agent.obs_dim
        return tuple(obs_dim) if isinstance(obs_dim, tuple) else (int(obs_dim),)

    @property
    def action_dim(self) -> int:
        return self.agent.action_dim

    @property
    def frame_stack(self) -> int:
        """Frames per observation on the channel axis (1 for state observations)."""
        return self.agent.config.encoder.frame_stack if self.agent.config.encoder.pixels else 1

    def reset(self) -> None:
        """Restart the policy's own key stream (the next keyless call draws as the first one did)."""
        self.calls = 0

    def __call__(self, observations: Any, key: jax.Array | int | None = None) -> np.ndarray:
        """Actions (B, action_dim) for observations (B, *observation_shape), or (action_dim,) for one
        observation; ``key``: a PRNG key or int seed (default: the policy's next key, see the module doc)."""
        batch, single = self._check(observations)
        if key is None:
            key = jax.random.fold_in(self._stream, self.calls)
            self.calls += 1
        actions = self.agent.sample_actions(self.state, jnp.asarray(batch), _as_key(key), self.mode)
        out = np.asarray(actions)
        return out[0] if single else out

    def _check(self, observations: Any) -> tuple[np.ndarray, bool]:
        """(float32 batch, whether one unbatched observation was given); refuses what cannot be acted on."""
        if isinstance(observations, Mapping):
            raise PolicyInputError(
                f"observations are a dict (keys {', '.join(map(str, observations))}); the policy takes arrays: "
                "flatten them as fidec does with fidec.envs.observations.flatten_observation (fidec.envs.make_env "
                "environments already do)"
            )
        try:
            array = np.asarray(observations)
            batch = array.astype(np.float32)
        except (TypeError, ValueError) as exc:
            raise PolicyInputError(f"observations must be an array of numbers ({exc})") from None
        if array.dtype.kind not in "biuf":
            raise PolicyInputError(f"observations must be an array of numbers, got dtype {array.dtype}")
        expected = self.observation_shape
        single = array.shape == expected
        if single:
            batch = batch[None]
        elif array.ndim != len(expected) + 1 or array.shape[1:] != expected:
            raise PolicyInputError(self._shape_message(array.shape))
        if array.dtype.kind == "f":
            bad = np.flatnonzero(~np.isfinite(batch.reshape(len(batch), -1)).all(axis=1))
            if len(bad):
                raise PolicyInputError(
                    f"observations hold NaN or inf (row {_format_rows(bad)} of {len(batch)}); the policy refuses "
                    "them rather than return meaningless actions: check the environment or your preprocessing"
                )
        return batch, single

    def _shape_message(self, shape: tuple[int, ...]) -> str:
        """Why observations of ``shape`` are refused, and what the policy takes instead."""
        expected = self.observation_shape
        takes = f"{expected} per observation: give {expected} or (batch, {', '.join(map(str, expected))})"
        k = self.frame_stack
        if k > 1:
            h, w, ck = expected
            frame = (h, w, ck // k)
            if shape[-3:] == frame:
                return (
                    f"observations of shape {shape} look like single frames {frame}; this pixel policy takes "
                    f"{k} stacked frames {expected} (oldest first on the channel axis): wrap the environment "
                    f"with fidec.envs.FrameStack(env, {k}), or stack the last {k} frames yourself, repeating the "
                    "first frame of an episode"
                )
        return f"observations have shape {shape}; this policy takes {takes}"
