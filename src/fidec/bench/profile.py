"""Where FD's update spends its time: each stage jitted and timed alone, beside the whole update.

Stages (in the order FD's update runs them, :func:`fidec.agents.fd.gradients`):

- Euler rollout: B (M + 2) rows x K steps (a_hat, M fresh Fisher samples per state, and a_hat'; B (M + 1)
  with ``fisher.reuse_base_sample``, whose first sample is a_hat);
- Fisher scores and metric: one flow pass on the B M noised samples, F_n per state;
- next-state refinement a' = clip(a_hat' + delta(s', a_hat'));
- loss and gradient (all networks, one ``jax.grad`` of ``fd.total_loss``), and its parts: the critic loss
  (``fd.critic_loss``) and the actor loss (``fd.actor_loss``: BC flow, residual, penalty and Q term);
- the Fisher condition-number diagnostic (an eigen-decomposition per state, logged every update);
- optimiser (Adam) and Polyak update;
- Python dispatch of one call (a jitted no-op over the same state and batch);
- fetching a batch: from host memory (NumPy gather + transfer) and on device (``sample_batch``).

"Whole update" minus the sum of the in-update stages is what XLA gains (negative) or loses by
compiling them together.  Variants measure candidate changes without editing the agent: the Euler
scan fully unrolled, and the opt-in dataset-action Fisher estimator.
"""

from __future__ import annotations

import time

import jax
import numpy as np

from fidec.agents import common, fd
from fidec.agents.base import sample_draws
from fidec.bench.flops import matmul_flops, unrolled_euler
from fidec.bench.machine import matmul_row, matmul_runner
from fidec.bench.settings import BenchSettings
from fidec.bench.timing import compile_timed, interleaved_rates, measure_latency
from fidec.bench.update_speed import finish_row, prepare_update
from fidec.bench.workloads import build, dataset
from fidec.data import sample_batch
from fidec.fisher import condition_number


def _stage(name: str, fn, args: tuple, settings: BenchSettings, in_update: bool = True) -> dict:
    compiled, compile_s = compile_timed(fn, *args)
    seconds = measure_latency(lambda: compiled(*args), settings.windows, settings.window_seconds)["seconds"]
    flop = matmul_flops(fn, *args)
    return {
        "stage": name,
        "ms": seconds * 1e3,
        "gflop": flop / 1e9,
        "gflop_per_s": flop / seconds / 1e9,
        "compile_s": compile_s,
        "in_update": in_update,
    }


def rollout_rows(config) -> str:
    """'B(M+2)': the rows of FD's batched Euler rollout (a_hat, the Fisher samples, a_hat')."""
    if config.fisher.source == "dataset":
        return "2B"
    return "B(M+1)" if config.fisher.reuse_base_sample else "B(M+2)"


def fd_stages(settings: BenchSettings, log=print) -> list[dict]:
    """Time of each stage of one FD update at ``settings.profile_preset``, each stage one of the agent's own
    functions (:mod:`fidec.agents.fd`) on the inputs the update gives it."""
    built = build(settings.agent, settings.profile_preset, settings.obs_dim, settings.action_dim)
    config, networks, state, batch = built.agent.config, built.agent.networks, built.state, built.batch
    assert isinstance(config, fd.FDConfig), "the profile times FD's update"
    params = state.params
    b, d = batch["actions"].shape
    draws = sample_draws(fd.update_draws(config, b, d), jax.random.PRNGKey(1))
    rollout = lambda state, batch, draws: fd.rollouts(config, networks, state, batch, draws)
    fisher = lambda flow, obs, samples, draws: fd.fisher_metrics(config, networks, flow, obs, samples, draws)
    refine_next = lambda residual, obs, base: fd.refine(networks, residual, obs, base)[0]
    aux = jax.jit(lambda state, batch, draws: fd.update_inputs(config, networks, state, batch, draws))(
        state, batch, draws
    )
    _, samples, next_base = jax.jit(rollout)(state, batch, draws)
    gradient = lambda loss: lambda *args: jax.grad(loss, has_aux=True)(*args)[0]
    full_grad = gradient(lambda p, state, batch, aux: fd.total_loss(p, config, networks, state, batch, aux))
    critic_grad = gradient(
        lambda p, state, batch, aux: fd.critic_loss(config, networks, p, state, batch, aux)
    )
    actor_grad = gradient(lambda p, batch, aux: fd.actor_loss(config, networks, p, batch, aux))
    grads = jax.jit(full_grad)(params, state, batch, aux)
    optimiser = lambda state, grads: common.apply_gradients(config, state, grads)
    stages = [
        (f"Euler rollout ({rollout_rows(config)} rows x K steps)", rollout, (state, batch, draws), True),
        (
            "Fisher scores + metric (B M rows)",
            fisher,
            (params["flow"], batch["observations"], samples, draws),
            True,
        ),
        (
            "next-state refinement a'",
            refine_next,
            (params["residual"], batch["next_observations"], next_base),
            True,
        ),
        ("loss + gradient (one jax.grad)", full_grad, (params, state, batch, aux), True),
        ("  of which: critic loss fwd/bwd (+ target)", critic_grad, (params, state, batch, aux), False),
        (
            "  of which: actor loss fwd/bwd (BC flow, residual, penalty, Q term)",
            actor_grad,
            (params, batch, aux),
            False,
        ),
        ("Fisher condition number (diagnostic)", lambda m: condition_number(m).mean(), (aux.metric,), True),
        ("optimiser (Adam) + Polyak", optimiser, (state, grads), True),
    ]
    rows = [_stage(name, fn, args, settings, in_update) for name, fn, args, in_update in stages]
    for row in rows:
        log(f"  {row['stage']:48s} {row['ms']:9.2f} ms  {row['gflop']:6.2f} GFLOP")
    return rows


def dispatch_and_data(settings: BenchSettings) -> list[dict]:
    """Per-call dispatch overhead and the cost of fetching one batch from host memory or on device."""
    built = build(settings.agent, settings.profile_preset, settings.obs_dim, settings.action_dim)
    state, batch = built.state, built.batch
    b = built.agent.config.batch_size
    noop, _ = compile_timed(lambda s, batch: s.replace(step=s.step + 1), state, batch)
    dispatch = measure_latency(lambda: noop(state, batch), settings.windows, settings.window_seconds)

    data = dataset(settings, seed=2)
    host = {k: np.asarray(v) for k, v in data.items()}
    rng = np.random.default_rng(0)

    def from_host():
        idx = rng.integers(0, settings.dataset_rows, b)
        return jax.device_put({k: v[idx] for k, v in host.items()})

    on_device, _ = compile_timed(
        lambda arrays, key: sample_batch(arrays, key, b), data, jax.random.PRNGKey(3)
    )
    host_t = measure_latency(from_host, settings.windows, settings.window_seconds)
    device_t = measure_latency(
        lambda: on_device(data, jax.random.PRNGKey(3)), settings.windows, settings.window_seconds
    )
    rows = [
        ("Python dispatch of one jitted call (no-op on the same state)", dispatch["seconds"]),
        (
            f"batch from host memory (NumPy gather + transfer, {settings.dataset_rows} rows)",
            host_t["seconds"],
        ),
        ("batch on device (jitted sample_batch)", device_t["seconds"]),
    ]
    return [
        {"stage": name, "ms": s * 1e3, "gflop": 0.0, "gflop_per_s": 0.0, "compile_s": 0.0, "in_update": False}
        for name, s in rows
    ]


def profile_section(
    settings: BenchSettings, roofline_gflop_per_s: float | None, log=print, matmul_size: int | None = None
) -> dict:
    """FD's stage breakdown, then the whole update and its variants (unrolled Euler, dataset Fisher
    samples, ISO) timed in turns with the large square matmul, window by window
    (:func:`~fidec.bench.timing.interleaved_rates`): on a machine whose load changes, their ratios, and
    the update's fraction of the matmul throughput measured in the same windows, stay fair.
    ``matmul_size``: n of that n^3 product (default: the largest of ``settings.matmul_sizes``)."""
    start = time.perf_counter()
    stages = fd_stages(settings, log)
    extra = dispatch_and_data(settings)
    preset, agent = settings.profile_preset, settings.agent
    prepared = [prepare_update(agent, preset, settings, label=f"{agent} (as shipped)")]
    with unrolled_euler():
        prepared.append(prepare_update(agent, preset, settings, label=f"{agent}, Euler scan unrolled"))
    dataset = {"fisher.source": "dataset"}
    prepared.append(
        prepare_update(agent, preset, settings, overrides=dataset, label=f"{agent}, fisher.source=dataset")
    )
    iso = settings.isotropic_agent
    prepared.append(prepare_update(iso, preset, settings, label=f"{iso} (no Fisher metric)"))
    n = matmul_size or max(settings.matmul_sizes)
    matmul_run, matmul_flop = matmul_runner(n, n, n)
    rates = interleaved_rates(
        [p.runner for p in prepared] + [matmul_run], settings.windows, settings.window_seconds
    )
    matmul = matmul_row((n, n, n), rates[-1], matmul_flop)
    variants = []
    for p, rate in zip(prepared, rates[:-1], strict=True):
        row = finish_row(p, rate, roofline_gflop_per_s)
        row["roofline_fraction_same_windows"] = row["gflop_per_s"] / matmul["gflop_per_s"]
        variants.append(row)
    whole = variants[0]
    in_update = sum(s["ms"] for s in stages if s["in_update"])
    for v in variants:
        log(
            f"  {v['label']:48s} {v['ms_per_update']:9.2f} ms/update  "
            f"{100 * v['roofline_fraction_same_windows']:4.0f}% of the matmul in the same windows"
        )
    log(f"  {n}^3 fp32 matmul in the same windows: {matmul['gflop_per_s']:.1f} GFLOP/s")
    return {
        "preset": preset,
        "stages": stages + extra,
        "sum_of_stages_ms": in_update,
        "update_ms": whole["ms_per_update"],
        "fusion_gain_ms": in_update - whole["ms_per_update"],
        "variants": variants,
        "matmul_same_windows": matmul,
        "seconds": time.perf_counter() - start,
    }


__all__ = ["dispatch_and_data", "fd_stages", "profile_section"]
