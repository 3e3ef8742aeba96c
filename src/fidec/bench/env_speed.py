"""Evaluation throughput on a real environment: env steps/s with the FD policy in the loop.

:func:`fidec.envs.evaluate` runs ``num_envs`` instances in lock-step with one batched, jitted policy
call per step; its ``env_steps_per_second`` includes policy inference.  The same run with uniformly
random actions (no inference) shows how much of the time the policy takes.
"""

from __future__ import annotations

import time

import jax
import numpy as np

from fidec.bench.settings import BenchSettings
from fidec.bench.workloads import build, network_summary
from fidec.envs import evaluate, make_eval_envs
from fidec.envs.dims import task_dims


class JittedPolicy:
    """observations (n, obs_dim) -> actions (n, d) from an agent's jitted sampler, a fresh key per call."""

    def __init__(self, sample_fn, state, seed: int = 0):
        self._sample = jax.jit(sample_fn)
        self._state = state
        self._key = jax.random.PRNGKey(seed)

    def __call__(self, observations: np.ndarray) -> np.ndarray:
        self._key, key = jax.random.split(self._key)
        return np.asarray(self._sample(self._state, jax.numpy.asarray(observations), key))


def env_section(settings: BenchSettings, log=print) -> dict:
    """Env steps/s of FD (one-step mode) and of random actions on ``settings.env_name``."""
    dims = task_dims(settings.env_name)
    obs_dim, action_dim = int(np.prod(dims.observation_shape)), dims.action_dim
    built = build(settings.agent, settings.env_preset, obs_dim, action_dim)
    policy = JittedPolicy(built.agent.sample_actions_fn("onestep"), built.state)
    n = settings.env_num_envs
    policy(np.zeros((n, obs_dim), np.float32))  # compile outside the timed loop
    envs = make_eval_envs(settings.env_name, n, seed=0)
    rng = np.random.default_rng(0)
    random_policy = lambda obs: rng.uniform(-1.0, 1.0, (obs.shape[0], action_dim)).astype(np.float32)

    start = time.perf_counter()
    with_policy = evaluate(policy, settings.env_name, settings.env_episodes, seed=0, envs=envs)
    policy_s = time.perf_counter() - start
    with_random = evaluate(random_policy, settings.env_name, settings.env_episodes, seed=0, envs=envs)
    for env in envs:
        env.close()
    steps = with_policy["length_mean"] * with_policy["episodes"]
    policy_rate, random_rate = with_policy["env_steps_per_second"], with_random["env_steps_per_second"]
    result = {
        "env_name": settings.env_name,
        "agent": settings.agent,
        "mode": "onestep",
        "preset": settings.env_preset,
        "networks": network_summary(built.agent),
        "num_envs": n,
        "episodes": settings.env_episodes,
        "env_steps": steps,
        "env_steps_per_s": policy_rate,
        "random_actions_env_steps_per_s": random_rate,
        "wall_s": policy_s,
        "policy_time_fraction": 1.0 - policy_rate / random_rate,
    }
    log(
        f"  {settings.env_name}: {policy_rate:.0f} env steps/s with FD, "
        f"{random_rate:.0f} with random actions ({n} envs)"
    )
    return result
