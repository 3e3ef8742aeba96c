"""``fidec demo``: run the refinement experiment of :mod:`fidec.diagnostics.refinement` on each behaviour and
write its figures, ``summary.md`` and ``summary.json``.

Figures (one message each):

- ``demo.png``: where the isotropic penalty and the Fisher penalty (fidec's and the official estimate of the
  metric) move the actions at equal reward;
- ``demo_frontier.png``: the true KL each penalty pays for each reward target;
- ``demo_jacobian.png``: the two Jacobian-term variants (the unbounded tr(J^2) folds the map).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import jax
import jax.numpy as jnp

from fidec.diagnostics import plots
from fidec.diagnostics.refinement import (
    PENALTIES,
    PENALTY_LABELS,
    BehaviourDemo,
    DemoConfig,
    run_behaviour,
    verdict,
)
from fidec.files import output_dir, write_json_atomic, write_text_atomic
from fidec.fisher import FisherConfig, condition_number
from fidec.formatting import format_fixed, format_mean_std, format_number, markdown_table

FIGURES = {
    "figure": ("demo.png", "isotropic vs Fisher refinement (two estimates of F) at equal reward"),
    "frontier": ("demo_frontier.png", "true KL paid for each reward target"),
    "jacobian": ("demo_jacobian.png", "the two Jacobian-term penalties"),
}


def _percent(value: float) -> str:
    return f"{format_fixed(100.0 * value, 1)} %"


def _estimate(config: FisherConfig) -> str:
    """'tweedie score at t_eps = 0.98' or 'v / (1 - t) at t_eps = 0.95' (with its range when drawn)."""
    score = "tweedie score (t v - x) / (1 - t)" if config.estimator == "tweedie" else "v / (1 - t)"
    at = (
        f"t_eps = {config.t_eps}"
        if config.t_eps_max is None
        else f"t ~ U[{config.t_eps}, {config.t_eps_max}]"
    )
    return f"{score} at {at}"


def summary_markdown(
    demos: list[BehaviourDemo],
    config: DemoConfig,
    runtime_s: float,
    figures: Sequence[tuple[str, str]] = (),
    cpu_s: float | None = None,
) -> str:
    """The Markdown summary: per behaviour, the runs at the main reward fraction and the verdicts.

    ``figures``: (file name, caption) pairs drawn at the top.
    """
    f = config.main_fraction
    lines = ["# fidec demo: isotropic vs Fisher refinement on 2-D behaviours", ""]
    for name, caption in figures:
        lines += [f"![{caption}]({name})", ""]
    lines += [
        "Reward r(a) = -||a - goal||^2 with the goal off the data.  Each residual is trained to the same",
        f"reward target (Lagrange multiplier), r* = r0 + f (0 - r0); the tables show f = {f}.",
        "True KL = KL(T#pi_b || pi_b) by change of variables with the exact behaviour density",
        "(Monte Carlo, ± one standard error); FD quadratic = 1/2 E[delta^T F delta] with the exact",
        "Fisher; fidec F est. = the same with fidec's estimate of F from the flow (true scale: the penalty",
        "the 'Fisher, fidec's estimate' residual is trained with); second order adds 1/2 E[tr(J^2)] and",
        "uses -Hess log p (docs/method.md section 4).  The two estimates of F:",
        "",
        f"- fidec's: {_estimate(config.fisher)}, M = {config.fisher.num_samples}, damping "
        f"{config.fisher.damping}, not normalised;",
        f"- official (the official FD code's defaults): {_estimate(config.official_fisher)}, "
        f"M = {config.official_fisher.num_samples}, damping {config.official_fisher.damping}, "
        "trace-normalised, and scaled by the mean eigenvalue of fidec's estimate (the isotropic "
        "penalty's scale).",
        "",
        "The Jacobian penalty 1/2 tr(J^2) is unbounded below (negative for rotation-like J); the",
        "1/2 ||sym J||^2 variant is a bound that cannot go negative.  'T folds': share of behaviour",
        "samples on the minority side of det(I + J) = 0 (nonzero: T is not injective).",
        "",
    ]
    headers = ["penalty", "reward target", "reward reached", "true KL (nats)", "FD quadratic",
               "fidec F est.", "second order", "Jacobian term", "T folds", "alpha"]  # fmt: skip
    for demo in demos:
        v = verdict(demo, f)
        cond_est = float(condition_number(jnp.asarray(demo.fisher_estimated)))
        cond_exact = float(condition_number(jnp.asarray(demo.fisher_exact)))
        official = (
            ""
            if demo.fisher_official is None
            else f"{format_fixed(float(condition_number(jnp.asarray(demo.fisher_official))), 1)} with the "
            f"official estimate ({_estimate(config.official_fisher)}), "
        )
        rows = []
        for penalty in PENALTIES:
            r = demo.main(penalty, f)
            rows.append([
                PENALTY_LABELS[penalty], format_fixed(r.reward_target, 3), format_fixed(r.reward, 3),
                format_mean_std(r.true_kl, r.true_kl_stderr, decimals=3), format_fixed(r.quadratic_kl, 3),
                format_fixed(r.fd_penalty_kl, 3), format_fixed(r.second_order_kl, 3),
                format_fixed(r.jacobian_term, 3), _percent(r.fold_fraction), format_number(r.alpha, 3),
            ])  # fmt: skip
        goal = ", ".join(format_fixed(float(g), 2) for g in demo.goal)
        lines += [
            f"## {demo.name} (goal ({goal}), base reward {format_fixed(demo.base_reward, 3)})",
            "",
            f"Fisher metric: condition number {format_fixed(cond_est, 1)} as fidec estimates it from the flow "
            f"({_estimate(config.fisher)}), {official}{format_fixed(cond_exact, 1)} for the exact behaviour "
            "density.",
            "",
            markdown_table(headers, rows),
        ]
        folded = [PENALTY_LABELS[p] for p in PENALTIES if demo.main(p, f).fold_fraction > 0]
        if folded:
            lines += [
                f"T = a + delta folds (det(I + J) changes sign over the data) for: {', '.join(folded)}; "
                "there the change-of-variables value is only a lower bound on the true KL.",
                "",
            ]
        for penalty in PENALTIES[1:]:
            phrase = "reached" if v[f"{penalty}_smaller"] else "did not reach"
            lines.append(
                f"- {PENALTY_LABELS[penalty]} {phrase} a smaller true KL than the isotropic penalty at equal "
                f"reward ({format_fixed(v[f'{penalty}_kl'], 3)} vs {format_fixed(v['isotropic_kl'], 3)} nats "
                f"at reward {format_fixed(v['reward'], 3)})."
            )
        lines.append("")
    cpu = "" if cpu_s is None else f", {format_fixed(cpu_s, 1)} s of CPU time"
    lines += [
        f"Runtime: {format_fixed(runtime_s, 1)} s wall clock{cpu} ({jax.device_count()} "
        f"{jax.default_backend()} device(s)).  Flow: {config.flow_steps} flow-matching steps; "
        f"residuals: {config.residual_steps} steps each.",
        "",
    ]
    return "\n".join(lines)


def summary_dict(
    demos: list[BehaviourDemo], config: DemoConfig, runtime_s: float, cpu_s: float | None = None
) -> dict:
    """The JSON record: the config, the run's cost, and per behaviour its metrics, verdict and every run."""
    out = {
        "config": _jsonable(asdict(config)),
        "runtime_s": runtime_s,
        "cpu_s": cpu_s,
        "load_average_1min": os.getloadavg()[0],
        "behaviours": {},
    }
    for demo in demos:
        out["behaviours"][demo.name] = {
            "goal": demo.goal.tolist(),
            "base_reward": demo.base_reward,
            "flow_loss": demo.flow_loss,
            "fisher_estimated": demo.fisher_estimated.tolist(),
            "fisher_exact": demo.fisher_exact.tolist(),
            "condition_number_estimated": float(condition_number(jnp.asarray(demo.fisher_estimated))),
            "condition_number_exact": float(condition_number(jnp.asarray(demo.fisher_exact))),
            **(
                {}
                if demo.fisher_official is None
                else {
                    "fisher_official": demo.fisher_official.tolist(),
                    "condition_number_official": float(condition_number(jnp.asarray(demo.fisher_official))),
                }
            ),
            "verdict": verdict(demo, config.main_fraction),
            "runs": [asdict(r) for r in demo.results],
        }
    return out


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def run_demo(out_dir: str | Path, config: DemoConfig = DemoConfig()) -> dict[str, Path]:
    """Run the demo and write its figures (:data:`FIGURES`), summary.md and summary.json to ``out_dir``.

    ``out_dir`` is checked (and created) before the work starts.  Returns the paths, keyed "figure",
    "frontier", "jacobian", "summary" and "json".
    """
    out_dir = output_dir(out_dir)
    wall, cpu = time.perf_counter(), time.process_time()
    keys = jax.random.split(jax.random.PRNGKey(config.seed), len(config.behaviours))
    demos = [run_behaviour(name, config, k) for name, k in zip(config.behaviours, keys, strict=True)]
    runtime, cpu_s = time.perf_counter() - wall, time.process_time() - cpu
    paths = {key: out_dir / name for key, (name, _) in FIGURES.items()}
    f = config.main_fraction
    plots.plot_demo_refinements(demos, f, ("isotropic", "fisher", "fisher_official"), paths["figure"])
    plots.plot_demo_frontier(demos, f, paths["frontier"])
    plots.plot_demo_refinements(demos, f, ("fisher_jacobian", "fisher_sym_jacobian"), paths["jacobian"])
    paths["summary"] = out_dir / "summary.md"
    paths["json"] = out_dir / "summary.json"
    figures = [(name, caption) for name, caption in FIGURES.values()]
    write_text_atomic(paths["summary"], summary_markdown(demos, config, runtime, figures, cpu_s))
    write_json_atomic(paths["json"], summary_dict(demos, config, runtime, cpu_s))
    return paths
