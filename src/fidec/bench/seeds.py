"""Several seeds in one process: vmapped against one after another, and against separate runs.

What ``fidec train --seeds 0,1,...`` runs: the training loop's own programs (:class:`~fidec.training.
programs.Programs` over a :class:`~fidec.training.seeds.SeedMap`), fused blocks of ``settings.seed_block``
FD updates sampling from one on-device dataset.  For S seeds three runners are timed in turns, window by
window: the S seeds vmapped in one program, the S seeds one after another in one process, and one seed
alone (S separate runs one after another go at its rate).  Rates are seed-updates/s, updates per second
summed over the seeds, so the columns of a row compare directly.  Each row also says which mode the rule
:func:`~fidec.training.seeds.vmap_by_default` picks on this backend and how that compares with separate
runs.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp

from fidec.bench.settings import BenchSettings
from fidec.bench.timing import chained, interleaved_rates, window_ratios
from fidec.bench.workloads import build, dataset, network_summary
from fidec.training.blocks import new_train_state
from fidec.training.programs import Programs
from fidec.training.seeds import SeedMap, vmap_by_default


def faster(vmapped_vs_sequential: dict) -> str:
    """ "vmapped" or "sequential" where every window agrees which is faster, else "neither (within noise)"."""
    if vmapped_vs_sequential["window_min"] > 1.0:
        return "vmapped"
    if vmapped_vs_sequential["window_max"] < 1.0:
        return "sequential"
    return "neither (within noise)"


def seed_rows(preset: str, settings: BenchSettings, log=print) -> list[dict]:
    """One row per S in ``settings.seed_counts``: seed-updates/s vmapped, sequential and as separate runs."""
    agent = build(settings.agent, preset, settings.obs_dim, settings.action_dim).agent
    data = dataset(settings)
    start = jnp.zeros((), jnp.int32)
    k = settings.seed_block
    rule_vmapped = vmap_by_default()

    def seeds_state(seed_map: SeedMap, count: int):
        return seed_map.from_list([new_train_state(agent.init, seed) for seed in range(count)])

    def runner_and_first_call(block, states):
        began = time.perf_counter()
        states = jax.block_until_ready(block(states, data, start)[0])  # compiles on the first call
        return chained(lambda s: block(s, data, start)[0], states), time.perf_counter() - began

    sequential = Programs(agent, SeedMap(vmapped=False)).offline_block(k, data)
    single, single_first_s = runner_and_first_call(sequential, seeds_state(SeedMap(False), 1))
    rows = []
    for count in settings.seed_counts:
        vmapped = Programs(agent, SeedMap(vmapped=True)).offline_block(k, data)
        v_run, v_first_s = runner_and_first_call(vmapped, seeds_state(SeedMap(True), count))
        s_run, _ = runner_and_first_call(sequential, seeds_state(SeedMap(False), count))
        rates = interleaved_rates([v_run, s_run, single], settings.seed_windows, settings.seed_window_seconds)
        # Seed-updates per window: K updates per call for each of the seeds the runner carries.
        per_window = [
            [r * k * n for r in rate["windows"]] for rate, n in zip(rates, (count, count, 1), strict=True)
        ]
        vmapped_rate, sequential_rate, separate_rate = (
            rate["per_s"] * k * n for rate, n in zip(rates, (count, count, 1), strict=True)
        )
        rule_windows = per_window[0] if rule_vmapped else per_window[1]
        row = {
            "agent": settings.agent,
            "preset": preset,
            "networks": network_summary(agent),
            "seeds": count,
            "updates_per_call": k,
            "vmapped_updates_per_s": vmapped_rate,
            "sequential_updates_per_s": sequential_rate,
            "separate_runs_updates_per_s": separate_rate,
            "vmapped_vs_sequential": window_ratios(per_window[0], per_window[1]),
            "rule": "vmapped" if rule_vmapped else "sequential",
            "rule_vs_separate_runs": window_ratios(rule_windows, per_window[2]),
            "faster": faster(window_ratios(per_window[0], per_window[1])),
            "vmapped_first_call_s": v_first_s,
            "sequential_first_call_s": single_first_s,
        }
        rows.append(row)
        log(
            f"  {preset:15s} seeds={count:<2d} vmapped {vmapped_rate:8.2f}  sequential {sequential_rate:8.2f}  "
            f"separate runs {separate_rate:8.2f} seed-updates/s; rule ({row['rule']}) / separate runs "
            f"{row['rule_vs_separate_runs']['ratio']:.3f}"
        )
    return rows
