"""Render benchmark results (the JSON ``fidec bench`` writes) as the Markdown of docs/benchmarks.md."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

from fidec.bench.settings import REFERENCE_FD, SECTIONS
from fidec.files import write_text_atomic

INTRO = """\
# Benchmarks

How fast fidec trains and acts, how close it comes to the hardware's limit, and how its cost grows.
Every number in one section below was measured side by side in the same process by `fidec bench`
(or `python -m fidec.bench`) and rendered from the JSON files in `benchmarks/results/`, which also
record the machine (CPU model, cores, memory, JAX version, backend and device) and the load average
at the start and end of the run.

## How to rerun

```bash
python -m fidec.bench --quick     # or: fidec bench --quick  (under five minutes on 2 idle CPU cores)
python -m fidec.bench             # or: fidec bench          (the full set: more windows, sizes, presets)
python -m fidec.bench --only updates --only profile   # a subset of the sections
python -m fidec.bench --render-only                   # re-render this page from benchmarks/results/
```

A run writes `benchmarks/results/<backend>-<mode>.json` (e.g. `cpu-quick.json`) and re-renders this
page from every result in that folder. Run it on an otherwise idle machine: other processes on the same
cores lower every absolute rate, so each section states the load average measured around it.

## On a GPU

The same command runs unchanged on a GPU: JAX picks the backend. Install the CUDA build of the pinned
JAX version (`pip install "jax[cuda12]==$(python -c 'import jax; print(jax.__version__)')"`), check that
`python -c "import jax; print(jax.devices())"` lists the GPU, then run `python -m fidec.bench --quick`
(or the full set); the result lands in `benchmarks/results/gpu-<mode>.json` beside the CPU results and
gets its own section below. `JAX_PLATFORMS=cpu` forces the CPU on a GPU machine. On recent NVIDIA GPUs
XLA's default fp32 matmul precision may use TF32 tensor cores; the roofline denominator and the update
use the same default, so their ratio stays consistent (set `JAX_DEFAULT_MATMUL_PRECISION=highest` for
true fp32 in both). The memory table counts host memory (peak RSS) only, not GPU memory.

## How to read the tables

- **Work** is the matmul FLOP count of the update, read from its jaxpr: 2 m n k for every matrix product
  (forward and backward), the Euler scan's body times its K steps. XLA's own cost analysis counts a scan
  body once, so its raw figure under-counts the rollout; compiled with the Euler loop unrolled it agrees
  with the jaxpr count to within the element-wise FLOPs (profile table, "Euler scan unrolled").
- **Roofline fraction** = achieved matmul GFLOP/s of the update / GFLOP/s of a large square fp32
  `jnp.dot` measured in the same run (the best of its measurements at the start, at the end and in
  the profile, where it is timed in turns with FD's update). The headline fraction uses the matmul
  throughput of the very windows in which FD's update was timed, which keeps it fair when the load of
  the machine changes during a run.
  On a loaded machine a long all-core matmul loses more to sharing than the smaller products of an
  update, so fractions there can exceed 100%: read them as ratios of two noisy rates.
- **Rates** are medians over several timing windows after compilation; *spread* is (max - min) / median
  of the windows, a direct reading of the noise. Rows that are compared with each other (the agents of
  one network size, the profile's variants with the matmul, the K of fused blocks, vmapped against
  sequential seeds) are timed in turns, window by window, so a change of load reaches them alike.
- **Reference anchor**: the paper's public implementation performs 39.5 GFLOP per FD update at the default
  settings (4 x 512, batch 256, M = 4 Fisher samples, 10 Euler steps; XLA cost analysis) and runs
  4.4 updates/s, about 90% of the large-matmul throughput. It was measured on an *idle* 2-core CPU machine
  of the type the CPU results below come from, *not in the same run*. The row "reference scaled to this run"
  applies that implementation's 90% efficiency to this run's measured matmul throughput: the fairer
  comparison when the machine was loaded.
- **Targets** for the FD update at the paper's settings on that CPU: at least 85% of the large-matmul
  throughput, and at least 1.25x the reference's updates/s.

## Results
"""


def fmt(value, digits: int = 3) -> str:
    """Compact number: 3 significant digits, thousands without decimals, '-' for missing."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value != value:
            return "-"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.{digits}g}"
    return str(value)


def pct(value) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def table(headers: Sequence[str], rows: Iterable[Sequence]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _title(result: dict) -> str:
    m = result["machine"]
    device = m["cpu_model"] if m["backend"] == "cpu" else m["device"]
    sections = (result.get("settings") or {}).get("sections")
    mode = result["mode"]
    if sections and set(sections) != set(SECTIONS):
        mode += ", only " + ", ".join(sections)
    return f"{m['backend'].upper()} ({mode}): {device}, {m['usable_cores']} cores, {result['created'][:10]}"


def cpu_description(machine: dict) -> str:
    """'AMD EPYC (family 26, model 2, stepping 1)': model name, plus the CPU id where recorded."""
    cpu = machine["cpu_model"]
    return f"{cpu} ({machine['cpu_id']})" if machine.get("cpu_id") else cpu


def was_loaded(result: dict) -> bool:
    """True when the 1-minute load average at the start or end exceeded half the usable cores."""
    load = result.get("load_average") or {}
    cores = result["machine"].get("usable_cores") or 1
    readings = [(load.get(k) or [0.0])[0] for k in ("start", "end")]
    return max(readings) > 0.5 * cores


def machine_block(result: dict) -> str:
    m = result["machine"]
    load = result.get("load_average") or {}
    cores = m["usable_cores"] or 1
    rows = [
        ("CPU", f"{cpu_description(m)}; {', '.join(m['cpu_flags']) or 'no SIMD flags read'}"),
        ("cores (usable / logical)", f"{m['usable_cores']} / {m['logical_cores']}"),
        ("memory", f"{m['memory_gb']} GB"),
        ("JAX backend, device", f"{m['backend']}, {m['device']} x {m['device_count']}"),
        ("jax / jaxlib / flax / optax", f"{m['jax']} / {m['jaxlib']} / {m['flax']} / {m['optax']}"),
        ("Python, OS", f"{m['python']}, {m['os']}"),
        ("load average (1, 5, 15 min) at start / end", f"{load.get('start')} / {load.get('end')}"),
        (
            "run",
            f"{result['created']}, {fmt(result['seconds'].get('total'))} s wall-clock, "
            f"{fmt((result.get('cpu_seconds') or {}).get('total'))} CPU-seconds in all",
        ),
    ]
    text = table(("machine", ""), rows)
    if was_loaded(result):
        text += (
            f"\n\n**Measured on a shared, loaded machine**: {cores} CPU cores ({cpu_description(m)}) that other "
            f"processes were using during the run (1-minute load average {(load.get('start') or ['-'])[0]} at the "
            f"start and {(load.get('end') or ['-'])[0]} at the end, against {cores} cores). Absolute rates are "
            "therefore lower and noisier than on an idle machine; ratios measured in the same run (roofline "
            "fractions, speed-ups) are more robust. The reference anchor (39.5 GFLOP, 4.4 updates/s) was measured "
            "on an idle machine of this type, so comparing this run's updates/s with it is unfair to fidec; "
            "the 'reference scaled to this run' row corrects for the load."
        )
    return text


def headline_block(result: dict) -> str:
    h = result.get("headline")
    if not h:
        return "_FD at the paper's settings was not measured in this run._"
    rows = [
        (
            "updates/s",
            fmt(h["updates_per_s"]),
            fmt(h["reference_updates_per_s"]),
            f">= {fmt(h['target_updates_per_s'])}",
        ),
        ("ms per update", fmt(h["ms_per_update"]), fmt(1e3 / h["reference_updates_per_s"]), "-"),
        ("spread of the timing windows ((max - min) / median)", pct(h.get("spread")), "-", "-"),
        (
            "matmul GFLOP per update",
            fmt(h["gflop_per_update"]),
            fmt(h["reference_gflop_per_update"]),
            "less work",
        ),
        (
            "achieved GFLOP/s",
            fmt(h["gflop_per_s"]),
            fmt(h["reference_updates_per_s"] * h["reference_gflop_per_update"]),
            "-",
        ),
        (
            "fraction of large-matmul throughput ("
            + ("same windows" if "profile" in h.get("source", "") else "run's best")
            + ")",
            pct(h["roofline_fraction"]),
            "90%",
            f">= {pct(h['target_roofline_fraction'])}",
        ),
        (
            "fraction of the run's best large-matmul throughput",
            pct(h.get("roofline_fraction_vs_best_matmul")),
            "-",
            "-",
        ),
        (
            "reference scaled to this run (updates/s)",
            "-",
            fmt(h["reference_scaled_to_this_run_updates_per_s"]),
            f">= {fmt(1.25 * h['reference_scaled_to_this_run_updates_per_s'])}"
            if h["reference_scaled_to_this_run_updates_per_s"]
            else "-",
        ),
    ]
    text = table(("FD update, paper settings", "fidec (this run)", "reference anchor", "target"), rows)
    if "profile" in h.get("source", ""):
        text += (
            "\n\nFD's rate here is the profile's: timed in turns, window by window, with the large square matmul, "
            f"whose throughput in those same windows ({fmt(h['roofline_gflop_per_s'])} GFLOP/s) is the denominator "
            "of the headline fraction. The best of all measurements of that product in the run (start, end and "
            f"profile: {fmt(h.get('best_matmul_gflop_per_s'))} GFLOP/s) gives the second fraction."
        )
    verdict = [
        f"- Speed vs the 4.4 updates/s anchor: **{h['speedup_vs_reference']:.3f}x** "
        f"(target 1.25x: {'met' if h['meets_speed_target'] else 'missed'}).",
        f"- Speed vs the reference scaled to this run's matmul throughput: "
        f"**{_ratio(h['speedup_vs_scaled_reference'])}** "
        f"(target 1.25x: {_met(h['meets_speed_target_vs_scaled_reference'])}).",
        f"- Roofline fraction: **{pct(h['roofline_fraction'])}** (target 85%: "
        f"{'met' if h['meets_roofline_target'] else 'missed'}).",
        f"- Work: {fmt(h['gflop_per_update'])} GFLOP per update against the reference's "
        f"{fmt(h['reference_gflop_per_update'])} (one batched rollout serves the M Fisher samples, whose "
        "first is a_hat, and the next-state actions; forward-only passes outside the gradient).",
    ]
    unrolled = [
        v
        for v in (result.get("profile") or {}).get("variants", [])
        if v["label"] == "fd, Euler scan unrolled" and v.get("xla_gflop_per_update")
    ]
    if unrolled:
        verdict.append(
            f"- Counted the reference's way (XLA cost analysis, Euler loop unrolled so the rollout is counted "
            f"K times): {fmt(unrolled[0]['xla_gflop_per_update'])} GFLOP per update (element-wise work included)."
        )
    ref = h["reference_updates_per_s"] * h["reference_gflop_per_update"] / REFERENCE_FD["roofline_fraction"]
    needed = h["target_updates_per_s"] * h["gflop_per_update"]
    verdict.append(
        f"- What the speed target asks of this work: {fmt(h['target_updates_per_s'])} updates/s x "
        f"{fmt(h['gflop_per_update'])} GFLOP = {fmt(needed)} GFLOP/s, {pct(needed / ref)} of the large-matmul "
        f"throughput implied for the idle reference machine ({fmt(ref)} GFLOP/s = 39.5 GFLOP x 4.4 / 0.90)."
    )
    square = max(
        ((result.get("matmul") or {}).get("square") or []), key=lambda r: r["gflop_per_s"], default=None
    )
    layers = (result.get("matmul") or {}).get("mlp_shapes") or []
    if square and layers:
        shares = ", ".join(
            f"{pct(r['gflop_per_s'] / square['gflop_per_s'])} for {r['shape'][0]} x {r['shape'][1]} @ "
            f"{r['shape'][1]} x {r['shape'][2]}"
            for r in layers
        )
        verdict.append(
            f"- The update's own layer products, timed alone in this run, reach {shares} of the square "
            f"{square['shape'][0]}^3 product's throughput (measured at other moments of the run; where well below "
            "100%, a ceiling on the fraction an update made of such products can show)."
        )
    return text + "\n\n" + "\n".join(verdict)


def _ratio(value) -> str:
    return "-" if value is None else f"{value:.3f}x"


def _met(flag) -> str:
    return "-" if flag is None else ("met" if flag else "missed")


def matmul_block(result: dict) -> str:
    mm = result.get("matmul")
    if not mm:
        return ""
    rows = [
        (
            f"{s['shape'][0]} x {s['shape'][1]} @ {s['shape'][1]} x {s['shape'][2]} (square, start)",
            fmt(s["gflop_per_s"]),
        )
        for s in mm["square"]
    ]
    if mm.get("square_at_end"):
        s = mm["square_at_end"]
        rows.append(
            (
                f"{s['shape'][0]} x {s['shape'][1]} @ {s['shape'][1]} x {s['shape'][2]} (square, end)",
                fmt(s["gflop_per_s"]),
            )
        )
    rows += [
        (
            f"{s['shape'][0]} x {s['shape'][1]} @ {s['shape'][1]} x {s['shape'][2]} (MLP layer)",
            fmt(s["gflop_per_s"]),
        )
        for s in mm["mlp_shapes"]
    ]
    same = (result.get("profile") or {}).get("matmul_same_windows")
    if same:
        shape = same["shape"]
        rows.append(
            (
                f"{shape[0]} x {shape[1]} @ {shape[1]} x {shape[2]} (square, in turns with the profiled updates)",
                fmt(same["gflop_per_s"]),
            )
        )
    rows.append(("**roofline denominator** (best square)", f"**{fmt(mm['roofline_gflop_per_s'])}**"))
    return "#### Dense fp32 matmul throughput\n\n" + table(("product", "GFLOP/s"), rows)


def updates_block(result: dict) -> str:
    rows = result.get("updates")
    if not rows:
        return ""
    body = [
        (
            r["agent"],
            r["networks"],
            fmt(r["updates_per_s"]),
            fmt(r["ms_per_update"]),
            fmt(r["compile_s"]),
            fmt(r["gflop_per_update"]),
            fmt(r["xla_gflop_per_update"]),
            fmt(r["gflop_per_s"]),
            pct(r["roofline_fraction"]),
            pct(r["spread"]),
        )
        for r in rows
    ]
    headers = (
        "agent",
        "networks",
        "updates/s",
        "ms/update",
        "compile s",
        "GFLOP/update (jaxpr)",
        "GFLOP (XLA, scan body once)",
        "GFLOP/s",
        "roofline",
        "spread",
    )
    return "#### Gradient updates (one call per update)\n\n" + table(headers, body)


def profile_block(result: dict) -> str:
    p = result.get("profile")
    if not p:
        return ""
    roofline = (result.get("matmul") or {}).get("roofline_gflop_per_s")
    update_ms = p["update_ms"]
    rows = []
    for s in p["stages"]:
        share = pct(s["ms"] / update_ms) if s["in_update"] or s["stage"].startswith("  ") else "-"
        frac = pct(s["gflop_per_s"] / roofline) if roofline and s["gflop"] else "-"
        name = s["stage"].replace("  of which:", "&nbsp;&nbsp;of which:")
        rows.append((name, fmt(s["ms"]), share, fmt(s["gflop"]) if s["gflop"] else "-", frac))
    rows.append(
        (
            "sum of the in-update stages",
            fmt(p["sum_of_stages_ms"]),
            pct(p["sum_of_stages_ms"] / update_ms),
            "-",
            "-",
        )
    )
    rows.append(("**whole update (one compiled call)**", f"**{fmt(update_ms)}**", "100%", "-", "-"))
    text = "#### Where FD's update spends its time (" + p["preset"] + ")\n\n"
    text += "Each stage jitted and timed alone with the update's inputs; 'of which' rows split the gradient stage.\n\n"
    text += table(("stage", "ms", "share of update", "GFLOP", "roofline"), rows)
    in_update = [s for s in p["stages"] if s["in_update"]]
    work = p["variants"][0]["gflop_per_update"] if p.get("variants") else None
    if in_update and p["sum_of_stages_ms"] > 0:
        top = max(in_update, key=lambda s: s["ms"])
        text += (
            f"\n\nThe largest stage is the {top['stage'].split(' (')[0]}: {pct(top['ms'] / p['sum_of_stages_ms'])} "
            "of the summed stage time"
            + (f" and {pct(top['gflop'] / work)} of the update's matmul work" if work else "")
            + ". Compiled together the update takes "
            + f"{fmt(update_ms)} ms against {fmt(p['sum_of_stages_ms'])} ms for its stages alone."
        )
    base = p["variants"][0]["ms_per_update"]
    vrows = [
        (
            v["label"],
            fmt(v["ms_per_update"]),
            fmt(v["updates_per_s"]),
            fmt(v["gflop_per_update"]),
            fmt(v["xla_gflop_per_update"]),
            pct(v["roofline_fraction"]),
            pct(v.get("roofline_fraction_same_windows")),
            f"{fmt(base / v['ms_per_update'])}x",
        )
        for v in p["variants"]
    ]
    text += (
        "\n\nVariants (nothing else changed), timed in turns window by window together with the "
        + (f"{p['matmul_same_windows']['shape'][0]}^3 matmul " if p.get("matmul_same_windows") else "matmul ")
        + "so their ratios are fair on a loaded machine:\n\n"
    )
    text += table(
        (
            "variant",
            "ms/update",
            "updates/s",
            "GFLOP (jaxpr)",
            "GFLOP (XLA)",
            "roofline (run's best matmul)",
            "roofline (same windows)",
            "speed vs shipped",
        ),
        vrows,
    )
    return text


def fisher_block(result: dict) -> str:
    f = result.get("fisher")
    if not f:
        return ""
    a = f["accuracy"]
    text = "#### Opt-in cheaper Fisher estimator (`fisher.source=dataset`)\n\n"
    if f.get("speed"):
        s = f["speed"]
        text += (
            f"Speed ({s['preset']}): {fmt(s['dataset_updates_per_s'])} updates/s against "
            f"{fmt(s['flow_updates_per_s'])} with the paper's estimator (**{fmt(s['speedup'])}x**; "
            f"{fmt(s['dataset_gflop_per_update'])} against {fmt(s['flow_gflop_per_update'])} GFLOP per update).\n\n"
        )
    text += (
        f"Accuracy of F_n on a state-conditional Gaussian behaviour with its exact velocity field "
        f"({a['states']} states, d = {a['action_dim']}, anisotropy {fmt(a['anisotropy'])}, M = {a['num_samples']}, "
        f"t_eps = {a['t_eps']}, {a['estimator']} score): median relative error of the metric and the typical factor "
        "by which the penalty along a random direction is off, for one update and averaged over "
        f"{a['redraws']} updates.\n\n"
    )
    rows = [
        (
            name,
            fmt(a[name]["one_draw"]["relative_error"]),
            f"x{fmt(a[name]['one_draw']['penalty_factor'])}",
            fmt(a[name]["average"]["relative_error"]),
            f"x{fmt(a[name]['average']['penalty_factor'])}",
        )
        for name in ("flow", "dataset")
    ]
    text += table(
        (
            "fisher.source",
            "error, one update",
            "penalty off by, one update",
            f"error, {a['redraws']}-update mean",
            f"penalty off by, {a['redraws']}-update mean",
        ),
        rows,
    )
    text += (
        "\n\nThe flow estimator's error shrinks as updates average out (fresh rollouts each update); the dataset "
        "estimator keeps the single dataset action of each state, so its metric stays concentrated along "
        "a - mu(s) however long training runs. It is faster but measures a different, rank-one-like metric: "
        "keep the paper's estimator (the default) unless that trade is wanted."
    )
    return text


def fused_block(result: dict) -> str:
    rows = result.get("fused")
    if not rows:
        return ""
    body = [
        (
            r["networks"],
            r["updates_per_call"],
            fmt(r["updates_per_s"]),
            fmt(r["ms_per_update"]),
            f"{fmt(r['speedup_vs_first'])}x",
            fmt(r["compile_s"]),
        )
        for r in rows
    ]
    return (
        "#### Updates fused into one compiled call (FD, `offline_block`: on-device sampling + update)\n\n"
        + table(("networks", "K updates per call", "updates/s", "ms/update", "vs K = 1", "compile s"), body)
    )


def seeds_block(result: dict) -> str:
    rows = result.get("seeds")
    if not rows:
        return ""
    body = [
        (
            r["networks"],
            r["seeds"],
            fmt(r["vmapped_per_seed_updates_per_s"]),
            fmt(r["sequential_per_seed_updates_per_s"]),
            f"{fmt(r['vmapped_speedup'])}x",
        )
        for r in rows
    ]
    return "#### Seeds: vmapped in one call vs one after another (FD, per-seed updates/s)\n\n" + table(
        ("networks", "seeds", "vmapped", "sequential", "vmapped / sequential"), body
    )


def sampling_block(result: dict) -> str:
    rows = result.get("sampling")
    if not rows:
        return ""
    batches = result["settings"]["sampling_batches"]
    small, large = min(batches), max(batches)
    body = [
        (
            r["agent"],
            r["mode"],
            r["networks"],
            fmt(r[f"batch{small}_ms"]),
            fmt(r[f"batch{large}_ms"]),
            fmt(r[f"batch{large}_actions_per_s"]),
        )
        for r in rows
    ]
    return "#### Action selection\n\n" + table(
        (
            "agent",
            "mode",
            "networks",
            f"latency, batch {small} (ms)",
            f"batch {large} (ms)",
            f"actions/s at batch {large}",
        ),
        body,
    )


def env_block(result: dict) -> str:
    e = result.get("env")
    if not e:
        return ""
    rows = [
        ("environment", e["env_name"]),
        (
            "policy",
            f"{e['agent']} ({e['mode']}), {e['networks']}, one jitted call per step for {e['num_envs']} envs",
        ),
        ("env steps/s with the policy", fmt(e["env_steps_per_s"])),
        ("env steps/s with random actions", fmt(e["random_actions_env_steps_per_s"])),
        ("share of time in the policy", pct(e["policy_time_fraction"])),
        ("episodes, steps", f"{e['episodes']}, {fmt(e['env_steps'])}"),
    ]
    return "#### Evaluation throughput (`fidec.envs.evaluate`)\n\n" + table(("", ""), rows)


def memory_block(result: dict) -> str:
    rows = result.get("memory")
    if not rows:
        return ""
    body = [
        (
            r["agent"],
            r["preset"],
            fmt(r["rss_after_jax_import_mb"]),
            f"{fmt(r['rss_after_dataset_mb'])} ({fmt(r['dataset_mb'])} dataset)",
            fmt(r["params_mb"]),
            f"**{fmt(r['peak_rss_mb'])}**",
            r["updates"],
        )
        for r in rows
    ]
    return "#### Peak resident memory of a training process (MiB, fresh subprocess)\n\n" + table(
        ("agent", "preset", "after importing JAX", "after the dataset", "parameters", "peak", "updates"), body
    )


def scaling_block(result: dict) -> str:
    rows = result.get("scaling")
    if not rows:
        return ""
    base = result["settings"]["scaling_preset"]
    body = [
        (
            r["vary"],
            r["value"],
            r["networks"],
            r["action_dim"],
            fmt(r["ms_per_update"]),
            fmt(r["gflop_per_update"]),
            fmt(r["gflop_per_s"]),
            pct(r["roofline_fraction"]),
        )
        for r in rows
    ]
    return f"#### Cost growth of the FD update (around {base}, one quantity varied at a time)\n\n" + table(
        ("varied", "value", "networks", "action dim", "ms/update", "GFLOP/update", "GFLOP/s", "roofline"),
        body,
    )


def errors_block(result: dict) -> str:
    errors = result.get("errors") or {}
    if not errors:
        return ""
    return "#### Sections that failed\n\n" + "\n".join(f"- `{k}`: {v}" for k, v in errors.items())


BLOCKS = (
    machine_block,
    headline_block,
    matmul_block,
    updates_block,
    profile_block,
    fisher_block,
    fused_block,
    seeds_block,
    sampling_block,
    env_block,
    memory_block,
    scaling_block,
    errors_block,
)


def render_result(result: dict) -> str:
    parts = [f"### {_title(result)}"] + [block(result) for block in BLOCKS]
    return "\n\n".join(p for p in parts if p)


def render_markdown(results: Sequence[dict]) -> str:
    """docs/benchmarks.md: the introduction, then one section per result (CPU first, quick before full)."""
    order = {"cpu": 0}
    ordered = sorted(
        results, key=lambda r: (order.get(r["machine"]["backend"], 1), r["mode"] != "quick", r["created"])
    )
    body = "\n\n".join(render_result(r) for r in ordered) or "_No results yet: run `fidec bench --quick`._"
    return INTRO + "\n" + body + "\n"


def is_result(data: object) -> bool:
    """True for a dict with the layout ``fidec bench`` writes (other JSON files are skipped)."""
    return isinstance(data, dict) and all(k in data for k in ("schema", "mode", "created", "machine"))


def load_results(results_dir: str | Path) -> list[dict]:
    """Every benchmark result JSON in ``results_dir`` except tiny (smoke-test) runs."""
    results = []
    for path in sorted(Path(results_dir).glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if is_result(data) and data.get("mode") != "tiny":
            results.append(data)
    return results




def render_docs(results_dir: str | Path, docs_path: str | Path, extra: Sequence[dict] = ()) -> Path:
    """Render every result in ``results_dir`` (plus ``extra`` results not saved there) into ``docs_path``."""
    results = load_results(results_dir) if Path(results_dir).is_dir() else []
    seen = {(r["created"], r["mode"], r["machine"]["backend"]) for r in results}
    results += [r for r in extra if (r["created"], r["mode"], r["machine"]["backend"]) not in seen]
    return write_text_atomic(docs_path, render_markdown(results))
