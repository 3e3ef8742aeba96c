"""Action selection: latency of one state (batch 1) and throughput of many (batch 1000), per mode.

Each agent's jitted ``sample_actions`` for every mode it supports; latency is the median over windows
of the mean time of a blocking call (what a control loop waits for), throughput counts actions/s.
"""

from __future__ import annotations

from functools import partial

import jax

from fidec.bench.settings import BenchSettings
from fidec.bench.timing import compile_timed, measure_latency
from fidec.bench.workloads import build, network_summary


def sampling_rows(preset: str, settings: BenchSettings, log=print) -> list[dict]:
    """One row per (agent, mode): ms per call and actions/s at each batch size of ``settings``."""
    rows = []
    for name in settings.agents:
        built = build(name, preset, settings.obs_dim, settings.action_dim)
        agent, state = built.agent, built.state
        for mode in agent.modes:
            fn = agent.sample_actions_fn(mode)
            row: dict[str, object] = {
                "agent": name,
                "preset": preset,
                "networks": network_summary(agent),
                "mode": mode,
            }
            for batch in settings.sampling_batches:
                obs = jax.random.normal(jax.random.PRNGKey(batch), (batch, settings.obs_dim))
                key = jax.random.PRNGKey(0)
                compiled, compile_s = compile_timed(fn, state, obs, key)
                latency = measure_latency(
                    partial(compiled, state, obs, key), settings.windows, settings.window_seconds
                )
                row[f"batch{batch}_ms"] = latency["seconds"] * 1e3
                row[f"batch{batch}_actions_per_s"] = batch / latency["seconds"]
                row[f"batch{batch}_compile_s"] = compile_s
            rows.append(row)
            cells = "  ".join(f"b={b}: {row[f'batch{b}_ms']:8.3f} ms" for b in settings.sampling_batches)
            log(f"  {preset:15s} {name:7s} {mode:10s} {cells}")
    return rows
