"""Dispatch overhead and batching over seeds: updates fused into one compiled call, and vmapped seeds.

Fused blocks: K updates in one ``lax.scan`` (:func:`fidec.training.blocks.offline_block`, the block
the training loop runs: on-device minibatch sampling, the update, metric accumulation) against one
call per update (K = 1).

Seeds: one ``jax.vmap``-ed update over S seed-stacked states and batches, against the single-seed
update called S times one after another; reported per seed.
"""

from __future__ import annotations

import jax

from fidec.bench.settings import BenchSettings
from fidec.bench.timing import chained, compile_timed, interleaved_rates, spread
from fidec.bench.workloads import build, network_summary, synthetic_transitions


def fused_rows(preset: str, settings: BenchSettings, log=print) -> list[dict]:
    """FD updates/s with K updates per compiled call, for each K in ``settings.fused_blocks``."""
    from fidec.training.blocks import TrainState, metric_names, offline_block

    built = build("fd", preset, settings.obs_dim, settings.action_dim)
    agent = built.agent
    data = synthetic_transitions(
        jax.random.PRNGKey(5), settings.dataset_rows, settings.obs_dim, settings.action_dim
    )
    train_state = TrainState(agent=built.state, key=jax.random.PRNGKey(6))
    names = tuple(metric_names(agent.update_fn, train_state, built.batch))
    batch_size = agent.config.batch_size
    start = jax.numpy.zeros((), jax.numpy.int32)
    compiled_blocks = []
    for k in settings.fused_blocks:

        def block(state, data, start, k=k):
            return offline_block(agent.update_fn, batch_size, k, state, data, start, names)

        compiled_blocks.append(compile_timed(block, train_state, data, start))
    # Timed in turns, window by window, so a change of machine load reaches every K alike.
    runners = [
        chained(lambda s, c=compiled: c(s, data, start)[0], train_state) for compiled, _ in compiled_blocks
    ]
    rates = interleaved_rates(runners, settings.windows, settings.window_seconds)
    rows = []
    for k, (_, compile_s), rate in zip(settings.fused_blocks, compiled_blocks, rates, strict=True):
        updates_per_s = rate["per_s"] * k
        rows.append(
            {
                "agent": "fd",
                "preset": preset,
                "networks": network_summary(agent),
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


def seed_rows(preset: str, settings: BenchSettings, log=print) -> list[dict]:
    """Per-seed FD updates/s for S seeds vmapped in one call and for S sequential single-seed calls."""
    rows = []
    built = build("fd", preset, settings.obs_dim, settings.action_dim)
    agent = built.agent
    single, _ = compile_timed(agent.update_fn, built.state, built.batch)
    for seeds in settings.seed_counts:
        keys = jax.random.split(jax.random.PRNGKey(7), seeds)
        states = jax.vmap(agent.init)(keys)
        batches = jax.vmap(
            lambda k: synthetic_transitions(k, agent.config.batch_size, settings.obs_dim, settings.action_dim)
        )(keys)
        vmapped, compile_s = compile_timed(jax.vmap(agent.update_fn), states, batches)
        v_run = chained(lambda s, c=vmapped, b=batches: c(s, b)[0], states)
        state_list = [jax.tree.map(lambda x, i=i: x[i], states) for i in range(seeds)]
        batch_list = [jax.tree.map(lambda x, i=i: x[i], batches) for i in range(seeds)]

        def sequential(states, batch_list=batch_list):
            return [single(s, b)[0] for s, b in zip(states, batch_list, strict=True)]

        # Timed in turns, window by window, so a change of machine load reaches both alike.
        v_rate, s_rate = interleaved_rates(
            [v_run, chained(sequential, state_list)], settings.windows, settings.window_seconds
        )
        row = {
            "agent": "fd",
            "preset": preset,
            "networks": network_summary(agent),
            "seeds": seeds,
            "vmapped_per_seed_updates_per_s": v_rate["per_s"] * seeds,
            "sequential_per_seed_updates_per_s": s_rate["per_s"] * seeds,
            "vmapped_compile_s": compile_s,
        }
        row["vmapped_speedup"] = (
            row["vmapped_per_seed_updates_per_s"] / row["sequential_per_seed_updates_per_s"]
        )
        rows.append(row)
        log(
            f"  {preset:15s} seeds={seeds:<2d} vmapped {row['vmapped_per_seed_updates_per_s']:8.2f}  "
            f"sequential {row['sequential_per_seed_updates_per_s']:8.2f} updates/s per seed"
        )
    return rows
