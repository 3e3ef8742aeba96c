"""Where FD's update spends its time: each stage jitted and timed alone, beside the whole update.

Stages (METHOD.md section 5, in the order :func:`fidec.agents.fd.update` runs them):

- Euler rollout: B (M + 2) rows x K steps (a_hat, M fresh Fisher samples per state, and a_hat'; B (M + 1)
  with ``fisher.reuse_base_sample``, whose first sample is a_hat);
- Fisher scores and metric: one flow pass on the B M noised samples, F_n per state;
- next-state refinement a' = clip(a_hat' + delta(s', a_hat'));
- loss and gradient (all networks, one ``jax.grad``), and its parts: critic fwd/bwd, BC-flow fwd/bwd,
  residual + penalty + Q term fwd/bwd;
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
from fidec.bench.flops import matmul_flops, unrolled_euler
from fidec.bench.machine import matmul_row, matmul_runner
from fidec.bench.settings import BenchSettings
from fidec.bench.timing import compile_timed, interleaved_rates, measure_latency
from fidec.bench.update_speed import finish_row, prepare_update
from fidec.bench.workloads import build, synthetic_transitions
from fidec.data import sample_batch
from fidec.fisher import condition_number, quadratic_penalty
from fidec.flows import flow_matching_loss


def _stage(name: str, fn, args: tuple, settings: BenchSettings, in_update: bool = True) -> dict:
    compiled, compile_s = compile_timed(fn, *args)
    latency = measure_latency(lambda: compiled(*args), settings.windows, settings.window_seconds)
    flop = matmul_flops(fn, *args)
    seconds = latency["seconds"]
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
    """Time of each stage of one FD update at ``settings.profile_preset``."""
    built = build("fd", settings.profile_preset, settings.obs_dim, settings.action_dim)
    config, networks, state, batch = built.agent.config, built.agent.networks, built.state, built.batch
    b, d = batch["actions"].shape
    keys = jax.random.split(jax.random.PRNGKey(1), 6)

    rollout = lambda state, batch, key: fd.rollouts(config, networks, state, batch, key, True)
    base, samples, next_base = jax.jit(rollout)(state, batch, keys[0])
    fisher = lambda flow, obs, samples, key: fd.fisher_metrics_for_batch(
        config, networks, flow, obs, samples, key
    )
    metric = jax.jit(fisher)(state.params["flow"], batch["observations"], samples, keys[1])
    refine_next = lambda residual, obs, base: fd.refine(networks, residual, obs, base)[0]
    next_actions = jax.jit(refine_next)(state.params["residual"], batch["next_observations"], next_base)
    aux = fd.UpdateInputs(
        base_actions=base,
        next_actions=next_actions,
        metric=metric,
        bc_noise=jax.random.normal(keys[2], (b, d)),
        bc_times=jax.random.uniform(keys[3], (b, 1)),
        jacobian_key=keys[4],
    )

    def full_grad(params, state, batch, aux):
        return jax.grad(fd.total_loss, has_aux=True)(params, config, networks, state, batch, aux)

    def critic_grad(critic, target, batch, next_actions):
        loss = lambda p: common.critic_loss(networks, config, p, target, batch, next_actions)[0]
        return jax.grad(loss)(critic)

    def bc_grad(flow, batch, noise, times):
        loss = lambda p: flow_matching_loss(
            common.velocity_fn(networks, p, batch["observations"]), batch["actions"], noise, times
        )
        return jax.grad(loss)(flow)

    def actor_grad(residual, critic, obs, base, metric):
        def loss(p):
            actions, delta = fd.refine(networks, p, obs, base)
            q_loss, _ = common.q_objective(networks, config, critic, obs, actions)
            return config.alpha * quadratic_penalty(delta, metric).mean() + q_loss

        return jax.grad(loss)(residual)

    grads, _ = jax.jit(full_grad)(state.params, state, batch, aux)
    optimiser = lambda state, grads, rng: common.apply_gradients(config, state, grads, rng)
    params = state.params
    stages = [
        _stage(
            f"Euler rollout ({rollout_rows(config)} rows x K steps)",
            rollout,
            (state, batch, keys[0]),
            settings,
        ),
        _stage(
            "Fisher scores + metric (B M rows)",
            fisher,
            (params["flow"], batch["observations"], samples, keys[1]),
            settings,
        ),
        _stage(
            "next-state refinement a'",
            refine_next,
            (params["residual"], batch["next_observations"], next_base),
            settings,
        ),
        _stage("loss + gradient (one jax.grad)", full_grad, (params, state, batch, aux), settings),
        _stage(
            "  of which: critic fwd/bwd (+ target)",
            critic_grad,
            (params["critic"], state.target_params["critic"], batch, next_actions),
            settings,
            in_update=False,
        ),
        _stage(
            "  of which: BC flow fwd/bwd",
            bc_grad,
            (params["flow"], batch, aux.bc_noise, aux.bc_times),
            settings,
            in_update=False,
        ),
        _stage(
            "  of which: residual + penalty + Q term fwd/bwd",
            actor_grad,
            (params["residual"], params["critic"], batch["observations"], base, metric),
            settings,
            in_update=False,
        ),
        _stage(
            "Fisher condition number (diagnostic)", lambda m: condition_number(m).mean(), (metric,), settings
        ),
        _stage("optimiser (Adam) + Polyak", optimiser, (state, grads, keys[5]), settings),
    ]
    for row in stages:
        log(f"  {row['stage']:48s} {row['ms']:9.2f} ms  {row['gflop']:6.2f} GFLOP")
    return stages


def dispatch_and_data(settings: BenchSettings) -> list[dict]:
    """Per-call dispatch overhead and the cost of fetching one batch from host memory or on device."""
    built = build("fd", settings.profile_preset, settings.obs_dim, settings.action_dim)
    state, batch = built.state, built.batch
    b = built.agent.config.batch_size
    noop, _ = compile_timed(lambda s, batch: s.replace(step=s.step + 1), state, batch)
    dispatch = measure_latency(lambda: noop(state, batch), settings.windows, settings.window_seconds)

    data = synthetic_transitions(
        jax.random.PRNGKey(2), settings.dataset_rows, settings.obs_dim, settings.action_dim
    )
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
    preset = settings.profile_preset
    prepared = [prepare_update("fd", preset, settings, label="fd (as shipped)")]
    with unrolled_euler():
        prepared.append(prepare_update("fd", preset, settings, label="fd, Euler scan unrolled"))
    prepared.append(
        prepare_update(
            "fd", preset, settings, overrides={"fisher.source": "dataset"}, label="fd, fisher.source=dataset"
        )
    )
    prepared.append(prepare_update("iso", preset, settings, label="iso (no Fisher metric)"))
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
