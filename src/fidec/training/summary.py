"""The run's final summary: per-seed final and last-three-evaluation scores, mean and std over seeds.

Two numbers per seed, always labelled:

- ``final``: the score of the last evaluation;
- ``last3``: the mean score of the last three evaluations (the paper's protocol for OGBench state
  tasks: evaluations at 800k, 900k and 1M steps of a 1M-step run).

Aggregates are the mean and the sample standard deviation (ddof = 1; 0 for one seed) over seeds.
The best evaluation is never reported.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from fidec.agents import get_spec
from fidec.stats import mean_std
from fidec.training.config import TrainConfig


def seed_scores(rows: Sequence[Mapping[str, Any]], metric: str) -> dict[str, Any]:
    """final / last3 of one seed's evaluation rows (any order)."""
    rows = sorted(rows, key=lambda r: r["step"])
    scores = [(int(r["step"]), float(v)) for r in rows if (v := r.get(metric)) is not None]
    if not scores:
        return {"final": None, "last3": None, "final_step": None, "last3_steps": []}
    last = scores[-3:]
    return {
        "final": float(scores[-1][1]),
        "last3": float(np.mean([s for _, s in last])),
        "final_step": int(scores[-1][0]),
        "last3_steps": [int(step) for step, _ in last],
    }


def aggregate(per_seed: Mapping[int, Mapping[str, Any]]) -> dict[str, float | None]:
    final = mean_std([s["final"] for s in per_seed.values()])
    last3 = mean_std([s["last3"] for s in per_seed.values()])
    return {
        "final_mean": final.mean,
        "final_std": final.std,
        "last3_mean": last3.mean,
        "last3_std": last3.std,
    }


def protocol_text(metric: str, config: TrainConfig, last3_steps: Sequence[int], num_seeds: int) -> str:
    what = "success rate" if metric == "success" else "D4RL normalised return (x100)"
    return (
        f"score = {what} ('{metric}') over {config.eval_episodes} evaluation episodes with action mode "
        f"'{config.action_mode}'. final = the last evaluation; last3 = mean of the last three evaluations "
        f"(steps {list(last3_steps)}; the paper's OGBench protocol averages the evaluations at 800k, 900k and 1M "
        f"steps). Aggregates: mean and sample standard deviation (ddof=1) over {num_seeds} seed(s). "
        "The best evaluation is never reported."
    )


def build_summary(
    config: TrainConfig,
    eval_rows: Sequence[Mapping[str, Any]],
    metric: str,
    timing: Mapping[str, Any],
    status: str = "completed",
) -> dict[str, Any]:
    """The ``summary.json`` record (see the module docstring)."""
    per_seed = {
        seed: seed_scores([r for r in eval_rows if r["seed"] == seed], metric) for seed in config.seeds
    }
    last3_steps: list[int] = next((s["last3_steps"] for s in per_seed.values() if s["last3_steps"]), [])
    summary: dict[str, Any] = {
        "status": status,
        "agent": config.agent_name,
        "env": config.env,
        "seeds": list(config.seeds),
        "steps": config.steps,
        "online_steps": config.online_steps,
        "metric": metric,
        "per_seed": {str(seed): scores for seed, scores in per_seed.items()},
        "aggregate": aggregate(per_seed),
        "protocol": protocol_text(metric, config, last3_steps, len(config.seeds)),
        "eval_episodes": config.eval_episodes,
        "action_mode": config.action_mode,
        **dict(timing),
    }
    if config.online_steps > 0:
        offline_rows = [r for r in eval_rows if r.get("phase") == "offline"]
        offline = {
            seed: seed_scores([r for r in offline_rows if r["seed"] == seed], metric) for seed in config.seeds
        }
        summary["offline_phase"] = {
            "per_seed": {str(seed): scores for seed, scores in offline.items()},
            "aggregate": aggregate(offline),
            "note": "scores at the end of the offline phase, before online fine-tuning",
        }
    return summary


def format_summary(summary: Mapping[str, Any]) -> str:
    """Two human-readable lines: the aggregate scores and where they come from."""
    agg = summary["aggregate"]
    fmt = lambda m, s: "n/a" if m is None else f"{m:.3f} +- {s:.3f}"
    return (
        f"{summary['agent']} on {summary['env']} ({len(summary['seeds'])} seed(s)): "
        f"{summary['metric']} final {fmt(agg['final_mean'], agg['final_std'])}, "
        f"last3 {fmt(agg['last3_mean'], agg['last3_std'])}"
    )


def closing_message(summary: Mapping[str, Any], run: Any) -> str:
    """What a user reads when a run ends: what was trained, how well it did, where everything is, what next.

    ``run`` is the run's :class:`~fidec.training.rundir.RunDir`.
    """
    agg = summary["aggregate"]
    metric = summary["metric"]
    seeds = summary["seeds"]
    unit = (lambda v: f"{100 * v:.0f}%") if metric == "success" else (lambda v: f"{v:.1f}")
    what = "success rate" if metric == "success" else "normalised return"
    if agg["final_mean"] is None:
        result = "No evaluation ran (eval_episodes = 0)."
    else:
        spread = f" (+- {unit(agg['final_std'])} over {len(seeds)} seeds)" if len(seeds) > 1 else ""
        result = (
            f"Final {what}: {unit(agg['final_mean'])}{spread} over {summary['eval_episodes']} episodes; "
            f"mean of the last three evaluations: {unit(agg['last3_mean'])}."
        )
    steps = f"{summary['steps']:,} offline steps" + (
        f" + {summary['online_steps']:,} online steps" if summary.get("online_steps") else ""
    )
    newest = run.checkpoints()[-1][1] if run.checkpoints() else run.checkpoints_dir
    agent, env = summary["agent"], summary["env"]
    nexts = [f"evaluate it longer with `fidec eval {run.root} --episodes 50`"]
    if get_spec(agent).has_residual:
        nexts.append(f"check the KL approximation with `fidec diagnose kl --run-dir {run.root}`")
    longer = f"fidec train --agent {agent} --env {env} --steps {2 * int(summary['steps'])}"
    nexts.append(f"train longer on three seeds with `{longer} --seeds 0,1,2` (docs/results.md)")
    return "\n".join(
        [
            f"Done: trained {agent} on {env} for {steps}, seed(s) {', '.join(map(str, seeds))}.",
            result,
            f"Run directory: {run.root}",
            f"  learning curves  {run.plot_path}",
            f"  summary          {run.summary_path}",
            f"  checkpoint       {newest}",
            "Next: " + ", ".join(nexts[:-1]) + ", or " + nexts[-1] + ".",
        ]
    )
