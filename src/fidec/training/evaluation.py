"""Evaluation of trained seeds in the real environment, with deterministic policies and seeds.

The policy given to :func:`fidec.envs.evaluate` wraps the agent's jitted ``sample_actions``; its key
for the k-th call is fold_in(key, k) with key = PRNGKey(evaluation seed), and the evaluation seed is a
function of (training seed, step) only.  An evaluation therefore does not touch the training RNG, and
a resumed run evaluates exactly as an uninterrupted one.

Which number is the score: OGBench tasks report ``success`` (success rate over episodes); D4RL tasks
report ``normalized_score`` (x100 normalised return).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from fidec.agents import Agent, AgentConfig, AgentState
from fidec.config import ConfigError
from fidec.envs import evaluate, make_eval_envs, parse_task
from fidec.envs.evaluate import DEFAULT_NUM_ENVS
from fidec.envs.frame_stack import stack_frames
from fidec.files import output_dir, write_json_atomic
from fidec.stats import mean_std
from fidec.training.logging import EpisodeBar
from fidec.training.rundir import RunDir, RunDirError

Evaluator = Callable[..., dict]
SCORE_METRICS = ("success", "normalized_score")
# Results that measure time: kept out of the metrics files (they would differ between identical runs).
TIMING_KEYS = ("env_steps_per_second",)


def score_metric(env_name: str) -> str:
    """'success' for OGBench tasks, 'normalized_score' for D4RL tasks (and 'success' for unknown names)."""
    try:
        return "normalized_score" if parse_task(env_name).benchmark == "d4rl" else "success"
    except ValueError:
        return "success"


def evaluation_seed(seed: int, step: int) -> int:
    """Seed of the evaluation of training seed ``seed`` at ``step`` (environment resets and policy noise)."""
    return int(np.random.SeedSequence([seed, step, 0x5EED]).generate_state(1)[0] % (2**31 - 1))


class AgentPolicy:
    """Batch of observations (n, obs_dim) -> actions (n, action_dim), from a fixed agent state."""

    def __init__(self, agent: Agent, state: AgentState, mode: str, seed: int):
        self.agent = agent
        self.state = state
        self.mode = mode
        self.key = jax.random.PRNGKey(seed)
        self.calls = 0

    def __call__(self, observations: np.ndarray) -> np.ndarray:
        key = jax.random.fold_in(self.key, self.calls)
        self.calls += 1
        actions = self.agent.sample_actions(
            self.state, jnp.asarray(observations, jnp.float32), key, self.mode
        )
        return np.asarray(actions)


def default_evaluator() -> Evaluator:
    return evaluate


def clean_results(results: dict) -> dict[str, float | None]:
    """Scalar results as floats, timings dropped; NaN (metric undefined for this task) becomes None."""
    cleaned: dict[str, float | None] = {}
    for k, v in results.items():
        if k in TIMING_KEYS:
            continue
        if isinstance(v, int | float | np.floating | np.integer):
            v = float(v)
            cleaned[k] = None if math.isnan(v) else v
    return cleaned


def evaluate_seeds(
    agent: Agent,
    states: Sequence[AgentState],
    seeds: Sequence[int],
    env_name: str,
    step: int,
    episodes: int,
    mode: str,
    evaluator: Evaluator | None = None,
    num_envs: int | None = None,
    video_dir: Path | None = None,
    envs: Sequence[Any] | None = None,
    on_episode: Callable[[], None] | None = None,
) -> dict[int, dict[str, Any]]:
    """{seed: results} for each seed's agent state, evaluated over ``episodes`` episodes.

    ``envs``: environment instances to reuse (passed on to the evaluator; episodes are seeded one by one,
    so reuse does not change the results).  ``on_episode``: called after each episode (progress).
    """
    evaluator = evaluator or default_evaluator()
    if mode not in agent.modes:
        raise ValueError(f"agent {agent.name!r} supports action modes {list(agent.modes)}, not {mode!r}")
    out = {}
    for seed, state in zip(seeds, states, strict=True):
        eval_seed = evaluation_seed(seed, step)
        policy = AgentPolicy(agent, state, mode, eval_seed)
        kwargs: dict[str, Any] = {"num_envs": num_envs}
        if envs is not None:
            kwargs["envs"] = envs
        if video_dir is not None:
            kwargs["video_dir"] = str(video_dir / f"seed_{seed}")
        if on_episode is not None:
            kwargs["on_episode"] = on_episode
        results = evaluator(policy, env_name, episodes, eval_seed, **kwargs)
        out[seed] = clean_results(results)
    return out


def eval_envs_for(
    agent_config: AgentConfig, env_name: str, episodes: int, num_envs: int | None = None
) -> list:
    """The evaluation environments of a run, built once and reused by every evaluation: ``min(episodes,
    num_envs)`` instances, frames stacked as in training for a pixel agent."""
    count = min(episodes, num_envs or DEFAULT_NUM_ENVS)
    envs = make_eval_envs(env_name, count, seed=0)
    encoder = agent_config.encoder
    return stack_frames(envs, encoder.frame_stack) if encoder.pixels else envs


def score_of(results: dict[str, Any], metric: str) -> float | None:
    value = results.get(metric)
    return None if value is None else float(value)


def check_counts(
    episodes: int | None,
    num_envs: int | None,
    checkpoint: int | None = None,
    names: tuple[str, str, str] = ("episodes", "num_envs", "checkpoint"),
) -> None:
    """Refuse counts that mean nothing, each by its own ``names`` entry: episodes and environments >= 1, a
    checkpoint step >= 0."""
    for name, value, low in zip(names, (episodes, num_envs, checkpoint), (1, 1, 0), strict=True):
        if value is not None and not low <= value <= 2**31 - 1:
            raise ConfigError(f"{name} must be a whole number from {low} to {2**31 - 1}, got {value}")


def evaluate_run(
    run_dir: str | Path,
    checkpoint: int | None = None,
    episodes: int | None = None,
    video: bool = False,
    action_mode: str | None = None,
    evaluator: Evaluator | None = None,
    num_envs: int | None = None,
    progress: bool = False,
    out: str | Path | None = None,
) -> dict[str, Any]:
    """Evaluate a saved run's checkpoint (default: the newest good one) for every seed.

    ``episodes`` defaults to the run's ``eval_episodes`` (50 if the run did not evaluate); ``action_mode``
    to the run's.  With the run's settings, the result equals the run's own evaluation at that step.
    Writes ``evals/step_<step>-<mode>-<episodes>ep.json`` (videos under ``videos/``), or the same names under
    ``out`` (a folder; needed when the run directory is read-only), and returns the record.
    """
    check_counts(episodes, num_envs, checkpoint)
    run = RunDir.open(run_dir)
    target = output_dir(out) if out is not None else None
    if target is None and not run.writable:
        raise RunDirError(
            f"{run.root} is not writable, and fidec eval writes its results into {run.evals_dir}: pass --out DIR "
            "to write them elsewhere (or make the run directory writable)"
        )
    # A read-only run cannot be training now (nothing could write it): it is read without its lock.
    with run.lock() if run.writable else nullcontext():
        loaded = run.load(step=checkpoint)
        config, agent, states = loaded.config, loaded.agent, loaded.states
        episodes = episodes or config.eval_episodes or 50
        mode = action_mode or config.action_mode
        if mode not in agent.modes:  # before any environment is built
            raise ConfigError(f"agent {agent.name!r} supports action modes {list(agent.modes)}, not {mode!r}")
        video_dir = run.video_folder(loaded.step, target) if video else None
        envs = None
        if evaluator is None:
            envs = eval_envs_for(config.agent, config.env, episodes, num_envs)
        bar = EpisodeBar(episodes * len(config.seeds), progress and evaluator is None)
        try:
            results = evaluate_seeds(
                agent,
                states,
                config.seeds,
                config.env,
                loaded.step,
                episodes,
                mode,
                evaluator,
                num_envs,
                video_dir,
                envs,
                on_episode=bar.callback if evaluator is None else None,
            )
        finally:
            bar.close()
        metric = score_metric(config.env)
        stat = mean_std([score_of(r, metric) for r in results.values()])
        out_record = {
            "run_dir": str(run.root),
            "agent": config.agent_name,
            "env": config.env,
            "step": loaded.step,
            "episodes": episodes,
            "action_mode": mode,
            "metric": metric,
            "per_seed": {str(seed): r for seed, r in results.items()},
            "aggregate": {"mean": stat.mean, "std": stat.std},
            "protocol": (
                f"{metric} of checkpoint step {loaded.step} over {episodes} episodes per seed, action mode '{mode}'; "
                "mean and sample standard deviation (ddof=1) over seeds"
            ),
        }
        if video_dir is not None:
            out_record["video_dir"] = str(video_dir)
        write_json_atomic(
            (target or run.evals_dir) / run.eval_record_name(loaded.step, mode, episodes), out_record
        )
    return out_record
