"""Dispatch overhead: updates fused into one compiled call.

Fused blocks: K updates in one ``lax.scan`` (:func:`fidec.training.blocks.offline_block`, the block
the training loop runs: on-device minibatch sampling, the update, metric accumulation) against one
call per update (K = 1).
"""

from __future__ import annotations

from collections.abc import Callable

import jax

from fidec.bench.settings import BenchSettings
from fidec.bench.timing import chained, compile_timed, interleaved_rates, spread
from fidec.bench.workloads import build, dataset, fused_block, network_summary
from fidec.training.blocks import TrainState


def fused_rows(preset: str, settings: BenchSettings, log=print) -> list[dict]:
    """FD updates/s with K updates per compiled call, for each K in ``settings.fused_blocks``."""
    built = build(settings.agent, preset, settings.obs_dim, settings.action_dim)
    data, start = dataset(settings), jax.numpy.zeros((), jax.numpy.int32)
    blocks = [fused_block(built, k) for k in settings.fused_blocks]
    train_state = blocks[0][1]
    compiled_blocks = [compile_timed(block, train_state, data, start) for block, _ in blocks]

    def advance(compiled: Callable) -> Callable[[TrainState], TrainState]:
        """A compiled block as a state -> state step (its metrics dropped)."""
        return lambda state: compiled(state, data, start)[0]

    # Timed in turns, window by window, so a change of machine load reaches every K alike.
    runners = [chained(advance(compiled), train_state) for compiled, _ in compiled_blocks]
    rates = interleaved_rates(runners, settings.windows, settings.window_seconds)
    rows = []
    for k, (_, compile_s), rate in zip(settings.fused_blocks, compiled_blocks, rates, strict=True):
        updates_per_s = rate["per_s"] * k
        rows.append(
            {
                "agent": settings.agent,
                "preset": preset,
                "networks": network_summary(built.agent),
                "updates_per_call": k,
                "updates_per_s": updates_per_s,
                "ms_per_update": 1e3 / updates_per_s,
                "spread": spread(rate["windows"]),
                "compile_s": compile_s,
            }
        )
        log(f"  {preset:15s} K={k:<4d} {updates_per_s:9.2f} updates/s  compile {compile_s:5.1f} s")
    base = rows[0]["updates_per_s"]
    for row in rows:
        row["speedup_vs_first"] = row["updates_per_s"] / base
    return rows
