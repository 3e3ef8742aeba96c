"""Gradient updates: steady-state rate, compile time, work per update and the roofline fraction.

One call per update on a fixed on-device batch, each call's state fed into the next (the chain a
training loop runs), timed in windows after compilation.  Work is the matmul FLOP count of the
update's jaxpr (:mod:`fidec.bench.flops`); achieved GFLOP/s over the same run's large-matmul
throughput is the roofline fraction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fidec.bench.flops import matmul_flops, xla_flops
from fidec.bench.settings import BenchSettings
from fidec.bench.timing import Runner, chained, compile_timed, interleaved_rates, measure_rate, spread
from fidec.bench.workloads import build, network_summary


@dataclass(frozen=True)
class PreparedUpdate:
    """A compiled update ready to time: ``runner(n)`` chains n updates; ``row`` holds all but the rates."""

    runner: Runner
    row: dict
    flop: float


def prepare_update(
    agent_name: str,
    preset: str,
    settings: BenchSettings,
    overrides: dict[str, Any] | None = None,
    action_dim: int | None = None,
    label: str | None = None,
) -> PreparedUpdate:
    """Build, compile and count the work of one agent's update (traced under whatever context is active)."""
    built = build(agent_name, preset, settings.obs_dim, action_dim or settings.action_dim, overrides)
    agent, state, batch = built.agent, built.state, built.batch
    compiled, compile_s = compile_timed(agent.update_fn, state, batch)
    flop = matmul_flops(agent.update_fn, state, batch)
    row = {
        "agent": agent_name,
        "preset": preset,
        "overrides": dict(overrides or {}),
        "label": label or agent_name,
        "networks": network_summary(agent),
        "batch_size": agent.config.batch_size,
        "action_dim": agent.action_dim,
        "compile_s": compile_s,
        "gflop_per_update": flop / 1e9,
        "xla_gflop_per_update": gflop(xla_flops(compiled)),
    }
    return PreparedUpdate(chained(lambda s: compiled(s, batch)[0], state), row, flop)


def finish_row(prepared: PreparedUpdate, rate: dict, roofline_gflop_per_s: float | None) -> dict:
    """The prepared row completed with its rate: updates/s, ms, GFLOP/s and the roofline fraction."""
    achieved = rate["per_s"] * prepared.flop / 1e9
    return {
        **prepared.row,
        "updates_per_s": rate["per_s"],
        "ms_per_update": 1e3 / rate["per_s"],
        "window_updates_per_s": rate["windows"],
        "spread": spread(rate["windows"]),
        "gflop_per_s": achieved,
        "roofline_fraction": achieved / roofline_gflop_per_s if roofline_gflop_per_s else None,
    }


def update_row(
    agent_name: str,
    preset: str,
    settings: BenchSettings,
    roofline_gflop_per_s: float | None,
    overrides: dict[str, Any] | None = None,
    action_dim: int | None = None,
    label: str | None = None,
) -> dict:
    """Updates/s (median of windows), compile seconds, GFLOP per update and roofline fraction of one agent."""
    prepared = prepare_update(agent_name, preset, settings, overrides, action_dim, label)
    rate = measure_rate(prepared.runner, settings.windows, settings.window_seconds)
    return finish_row(prepared, rate, roofline_gflop_per_s)


def gflop(flops: float | None) -> float | None:
    """FLOP as GFLOP (None stays None)."""
    return None if flops is None else flops / 1e9


def updates_section(settings: BenchSettings, roofline_gflop_per_s: float | None, log=print) -> list[dict]:
    """One row per (preset, agent); the agents of a preset are timed in turns, window by window
    (:func:`~fidec.bench.timing.interleaved_rates`), so a change of machine load reaches all alike."""
    rows = []
    for preset in settings.presets:
        prepared = [prepare_update(name, preset, settings) for name in settings.agents]
        rates = interleaved_rates([p.runner for p in prepared], settings.windows, settings.window_seconds)
        for p, rate in zip(prepared, rates, strict=True):
            row = finish_row(p, rate, roofline_gflop_per_s)
            log(
                f"  {preset:15s} {row['agent']:7s} {row['updates_per_s']:9.2f} updates/s  "
                f"compile {row['compile_s']:5.1f} s  {row['gflop_per_update']:7.2f} GFLOP"
            )
            rows.append(row)
    return rows
