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
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from fidec.agents import Agent, AgentState

Evaluator = Callable[..., dict]
SCORE_METRICS = ("success", "normalized_score")
# Results that measure time: kept out of the metrics files (they would differ between identical runs).
TIMING_KEYS = ("env_steps_per_second",)


def score_metric(env_name: str) -> str:
    """'success' for OGBench tasks, 'normalized_score' for D4RL tasks (and 'success' for unknown names)."""
    try:
        from fidec.envs import parse_task

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
    from fidec.envs import evaluate

    return evaluate


def clean_results(results: dict) -> dict[str, float]:
    """Scalar results as floats, timings dropped; NaN (metric undefined for this task) becomes None."""
    cleaned = {}
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
) -> dict[int, dict[str, Any]]:
    """{seed: results} for each seed's agent state, evaluated over ``episodes`` episodes.

    ``envs``: environment instances to reuse (passed on to the evaluator; episodes are seeded one by one,
    so reuse does not change the results).
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
        results = evaluator(policy, env_name, episodes, eval_seed, **kwargs)
        out[seed] = clean_results(results)
    return out


def eval_envs_for(agent_config, env_name: str, episodes: int, num_envs: int | None = None) -> list | None:
    """Evaluation environments for a pixel agent (frames stacked as in training); None for state agents,
    whose environments the evaluator builds itself."""
    encoder = agent_config.encoder
    if not encoder.pixels:
        return None
    from fidec.data.visual import stack_frames
    from fidec.envs import make_eval_envs
    from fidec.envs.evaluate import DEFAULT_NUM_ENVS

    count = min(episodes, num_envs or DEFAULT_NUM_ENVS)
    return stack_frames(make_eval_envs(env_name, count, seed=0), encoder.frame_stack)


def score_of(results: dict[str, Any], metric: str) -> float | None:
    value = results.get(metric)
    return None if value is None else float(value)


def evaluate_run(
    run_dir: str | Path,
    checkpoint: int | None = None,
    episodes: int | None = None,
    video: bool = False,
    action_mode: str | None = None,
    evaluator: Evaluator | None = None,
    num_envs: int | None = None,
) -> dict[str, Any]:
    """Evaluate a saved run's checkpoint (default: the newest good one) for every seed.

    ``episodes`` defaults to the run's ``eval_episodes`` (50 if the run did not evaluate); ``action_mode``
    to the run's.  With the run's settings, the result equals the run's own evaluation at that step.
    Writes ``evals/step_<step>-<mode>-<episodes>ep.json`` (videos under ``videos/``) and returns the record.
    """
    import sys

    from fidec.atomic import write_json_atomic
    from fidec.training.blocks import state_template
    from fidec.training.checkpoint import CheckpointError, load_latest_checkpoint, unflatten_tree
    from fidec.training.rundir import RunPaths, read_config
    from fidec.training.summary import mean_std

    config, record = read_config(run_dir)
    paths = RunPaths(Path(run_dir))
    from fidec.training.programs import cached_agent

    agent = cached_agent(config.agent_name, config.agent, int(record["obs_dim"]), int(record["action_dim"]))
    report = lambda message: print(message, file=sys.stderr)
    found = load_latest_checkpoint(paths.checkpoints, step=checkpoint, report=report)
    if found is None:
        raise CheckpointError(f"no usable checkpoint in {paths.checkpoints}; train the run first")
    template = state_template(agent.init, len(config.seeds))
    host = unflatten_tree(template, found.arrays, "state")
    states = [jax.tree.map(lambda x, i=i: jnp.asarray(x[i]), host.agent) for i in range(len(config.seeds))]
    episodes = episodes or config.eval_episodes or 50
    mode = action_mode or config.action_mode
    video_dir = paths.videos / f"step_{found.step}" if video else None
    envs = eval_envs_for(config.agent, config.env, episodes, num_envs)
    results = evaluate_seeds(
        agent, states, config.seeds, config.env, found.step, episodes, mode, evaluator, num_envs, video_dir, envs
    )
    metric = score_metric(config.env)
    mean, std = mean_std([score_of(r, metric) for r in results.values()])
    out = {
        "run_dir": str(paths.root),
        "agent": config.agent_name,
        "env": config.env,
        "step": found.step,
        "episodes": episodes,
        "action_mode": mode,
        "metric": metric,
        "per_seed": {str(seed): r for seed, r in results.items()},
        "aggregate": {"mean": mean, "std": std},
        "protocol": (
            f"{metric} of checkpoint step {found.step} over {episodes} episodes per seed, action mode '{mode}'; "
            "mean and sample standard deviation (ddof=1) over seeds"
        ),
    }
    if video_dir is not None:
        out["video_dir"] = str(video_dir)
    paths.evals.mkdir(parents=True, exist_ok=True)
    write_json_atomic(paths.evals / f"step_{found.step:09d}-{mode}-{episodes}ep.json", out)
    return out
