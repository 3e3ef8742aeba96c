"""docs/benchmarks.md from the result files in benchmarks/results/: a maintainer's step, not part of fidec.

    python benchmarks/render_page.py          # rewrite docs/benchmarks.md from benchmarks/results/*.json
    python benchmarks/render_page.py --check  # exit 1 when the page is not what the results give

``fidec bench`` writes result files only; this script turns the committed ones into the project's page:
the words of page_template.md around one part per result (CPU before other backends, quick before the rest,
then by date; smoke-test runs and foreign JSON files are skipped).  A result's part is its machine, the
headline, then one entry of :data:`TABLES` after another: a section's tables are data here, a heading and
words with ``$table`` and ``$names`` filled from the result, and a list of columns.
"""

from __future__ import annotations

import argparse
import json
import string
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from fidec.bench.run import headline
from fidec.bench.settings import (
    GPU_TIME_BUDGET_S,
    SECTIONS,
    TARGET_REFERENCE_RATIO,
    TARGET_ROOFLINE,
    TARGET_SPEEDUP,
)
from fidec.files import write_text_atomic
from fidec.formatting import format_number, format_percent, markdown_table

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
PAGE = ROOT / "docs" / "benchmarks.md"
TEMPLATE = ROOT / "benchmarks" / "page_template.md"

Cell = Callable[[Any], str]
Column = tuple[str, Cell]


def fill(text: str, **values: object) -> str:
    """``text`` with its $names replaced (every one must be given; a value's trailing newlines dropped)."""
    return string.Template(text).substitute({k: str(v).rstrip("\n") for k, v in values.items()})


def times(value: float | None) -> str:
    """A ratio as '1.31x' ('-' when missing)."""
    return "-" if value is None else f"{format_number(value)}x"


def ratio_range(r: dict) -> str:
    """'1.31x (1.1x to 1.5x)': a ratio of rates timed in turns with its range over the single windows."""
    return f"{times(r['ratio'])} ({times(r['window_min'])} to {times(r['window_max'])})"


def shape(s: dict) -> str:
    m, k, n = s["shape"]
    return f"{m} x {k} @ {k} x {n}"


def col(header: str, key: str, form: Callable[[Any], str] = format_number) -> Column:
    """A column: ``header`` over ``form(row[key])``."""
    return header, lambda row: form(row[key])


def positional(*headers: str) -> list[Column]:
    """The columns of a table whose rows are tuples of cells, one header per position."""
    return [(header, partial(cell_at, i)) for i, header in enumerate(headers)]


def cell_at(position: int, row: Sequence[Any]) -> str:
    return str(row[position])


@dataclass(frozen=True)
class Table:
    """One table of a result's section and the words around it.

    Attributes:
        key: the result's entry it renders; nothing is shown when that is empty (``missing`` when the run
            was not asked for the section at all).
        text: Markdown with ``$table`` where the table goes and ``$names`` from ``values(result)``.
        columns: (header, cell) pairs, or a function of the result that gives them.
        rows: the rows, from the result (default: ``result[key]``).
    """

    key: str
    text: str
    columns: Sequence[Column] | Callable[[dict], Sequence[Column]]
    rows: Callable[[dict], Sequence[Any]] | None = None
    values: Callable[[dict], dict] = lambda result: {}
    align: str | None = None
    missing: str = ""

    def render(self, result: dict) -> str:
        if not result.get(self.key):
            return "" if self.key in (result.get("settings") or {}).get("sections", ()) else self.missing
        columns = self.columns(result) if callable(self.columns) else self.columns
        rows = self.rows(result) if self.rows else result[self.key]
        cells = [[cell(row) for _, cell in columns] for row in rows]
        table = markdown_table([header for header, _ in columns], cells, self.align)
        return fill(self.text, table=table, **self.values(result)).strip()


# -- the sections' rows and values ---------------------------------------------------------------------


def matmul_rows(result: dict) -> list[tuple[str, str]]:
    mm = result["matmul"]
    rows = [(f"{shape(s)} (square, start)", s) for s in mm["square"]]
    rows += (
        [(f"{shape(mm['square_at_end'])} (square, end)", mm["square_at_end"])]
        if mm.get("square_at_end")
        else []
    )
    rows += [(f"{shape(s)} (MLP layer)", s) for s in mm["mlp_shapes"]]
    same = (result.get("profile") or {}).get("matmul_same_windows")
    rows += [(f"{shape(same)} (square, in turns with the profiled updates)", same)] if same else []
    denominator = (
        "**roofline denominator** (best square)",
        f"**{format_number(mm['roofline_gflop_per_s'])}**",
    )
    return [(label, format_number(s["gflop_per_s"])) for label, s in rows] + [denominator]


def profile_rows(result: dict) -> list[tuple]:
    p, roofline = result["profile"], (result.get("matmul") or {}).get("roofline_gflop_per_s")
    update_ms, stages_ms = p["update_ms"], p["sum_of_stages_ms"]
    rows = []
    for s in p["stages"]:
        share = format_percent(s["ms"] / update_ms) if s["in_update"] or s["stage"].startswith("  ") else "-"
        fraction = format_percent(s["gflop_per_s"] / roofline) if roofline and s["gflop"] else "-"
        name = s["stage"].replace("  of which", "&nbsp;&nbsp;of which")
        rows.append(
            (name, format_number(s["ms"]), share, format_number(s["gflop"]) if s["gflop"] else "-", fraction)
        )
    rows.append(
        (
            "sum of the in-update stages",
            format_number(stages_ms),
            format_percent(stages_ms / update_ms),
            "-",
            "-",
        )
    )
    return [
        *rows,
        ("**whole update (one compiled call)**", f"**{format_number(update_ms)}**", "100%", "-", "-"),
    ]


def profile_values(result: dict) -> dict:
    p = result["profile"]
    in_update = [s for s in p["stages"] if s["in_update"]]
    summary = ""
    if in_update and p["sum_of_stages_ms"] > 0:
        top = max(in_update, key=lambda s: s["ms"])
        work = p["variants"][0]["gflop_per_update"] if p.get("variants") else None
        summary = fill(
            "The largest stage is the $stage: $share of the summed stage time$work_share. Compiled together "
            "the update\ntakes $update_ms ms against $stages_ms ms for its stages alone.",
            stage=top["stage"].split(" (")[0],
            share=format_percent(top["ms"] / p["sum_of_stages_ms"]),
            work_share=f" and {format_percent(top['gflop'] / work)} of the update's matmul work"
            if work
            else "",
            update_ms=format_number(p["update_ms"]),
            stages_ms=format_number(p["sum_of_stages_ms"]),
        )
    return {"preset": p["preset"], "summary": summary}


def variant_columns(result: dict) -> list[Column]:
    base = result["profile"]["variants"][0]["ms_per_update"]
    return [
        col("variant", "label", str),
        col("ms/update", "ms_per_update"),
        col("updates/s", "updates_per_s"),
        col("GFLOP (jaxpr)", "gflop_per_update"),
        col("GFLOP (XLA)", "xla_gflop_per_update"),
        col("roofline (run's best matmul)", "roofline_fraction", format_percent),
        ("roofline (same windows)", lambda v: format_percent(v.get("roofline_fraction_same_windows"))),
        ("speed vs shipped", lambda v: times(base / v["ms_per_update"])),
    ]


def reference_rows(result: dict) -> list[dict]:
    """One row per fidec update timed against a reference (an agent, then its speed variants)."""
    rows = []
    for entry in result["reference"]["agents"]:
        if entry["status"] != "timed":
            continue
        *ours, theirs = entry["rows"]
        same = sum(s["same"] for s in entry["settings_compared"])
        for row in ours:
            rows.append(
                {
                    "label": row["label"].removeprefix("fidec "),
                    "reference": theirs["label"],
                    "fidec": row["updates_per_s"],
                    "theirs": theirs["updates_per_s"],
                    "ratio": row["vs_reference"],
                    "fidec_gflop": row["gflop_per_update"],
                    "reference_gflop": theirs["gflop_per_update"],
                    "settings": (
                        "opt-in variant"
                        if row.get("overrides")
                        else f"{same} of {len(entry['settings_compared'])}"
                    ),
                }
            )
    return rows


def ratio_cell(ratio: dict) -> str:
    return f"**{times(ratio['ratio'])}**"


def windows_cell(ratio: dict) -> str:
    low, high = ratio["window_min"], ratio["window_max"]
    return f"{times(low)} to {times(high)}" + (" (includes 1x)" if within(1.0, low, high) else "")


def reference_values(result: dict) -> dict:
    r = result["reference"]
    checkouts = ", ".join(
        f"`{c['folder']}` at {c['commit'][:7]}" if c["commit"] else f"`{c['folder']}` (no git commit)"
        for c in r["checkouts"]
    )
    cycles = [
        e["agent"] for e in r["agents"] if e["status"] == "timed" and e["rows"][0]["updates_per_call"] > 1
    ]
    notes = [
        f"- `{e['agent']}`: not timed, its settings differ from the reference's ({', '.join(e['differing'])})."
        for e in r["agents"]
        if e["status"] != "timed"
    ]
    notes += [f"- `{agent}`: failed: {error}" for agent, error in r["errors"].items()]
    notes += [f"- `{agent}`: not compared: {why}." for agent, why in r["not_compared"].items()]
    timed = [e for e in r["agents"] if e["status"] == "timed"]
    slower = [e["agent"] for e in timed if not e["meets_target"]]
    noise = [e["agent"] for e in timed if e["range_includes_1x"]]
    verdict = (
        f"Target: every agent at least {times(r['target_ratio'])} its reference's updates/s. "
        + (f"Below it here: {', '.join(slower)}." if slower else "Every agent timed meets it.")
        + (f" Ranges that include 1x (within this run's noise): {', '.join(noise)}." if noise else "")
    )
    return {
        "sizes": f"{r['networks']} networks, batch {r['batch_size']}, obs {r['obs_dim']}, act {r['action_dim']}",
        "checkouts": checkouts,
        "windows": r["windows"],
        "cycles": (
            f" {', '.join(cycles)}: each call runs one cycle of the reference training loop's update calls on both "
            "sides (critic-only, then full); rates and work are per update."
            if cycles
            else ""
        ),
        "verdict": verdict,
        "notes": "\n".join(notes),
    }


def fisher_columns(result: dict) -> list[Column]:
    n = result["fisher"]["accuracy"]["redraws"]
    error = lambda draws: (
        lambda name: format_number(result["fisher"]["accuracy"][name][draws]["relative_error"])
    )
    factor = lambda draws: (
        lambda name: f"x{format_number(result['fisher']['accuracy'][name][draws]['penalty_factor'])}"
    )
    return [
        ("fisher.source", str),
        ("error, one update", error("one_draw")),
        ("penalty off by, one update", factor("one_draw")),
        (f"error, {n}-update mean", error("average")),
        (f"penalty off by, {n}-update mean", factor("average")),
    ]


def fisher_values(result: dict) -> dict:
    f, a = result["fisher"], result["fisher"]["accuracy"]
    speed = ""
    if f.get("speed"):
        s = f["speed"]
        speed = fill(
            "Speed ($preset): $dataset updates/s against $flow with the paper's estimator (**$speedup**; "
            "$dataset_gflop\nagainst $flow_gflop GFLOP per update).",
            preset=s["preset"],
            dataset=format_number(s["dataset_updates_per_s"]),
            flow=format_number(s["flow_updates_per_s"]),
            speedup=times(s["speedup"]),
            dataset_gflop=format_number(s["dataset_gflop_per_update"]),
            flow_gflop=format_number(s["flow_gflop_per_update"]),
        )
    keys = ("states", "action_dim", "num_samples", "t_eps", "estimator", "redraws")
    return {"speed": speed, "anisotropy": format_number(a["anisotropy"]), **{k: a[k] for k in keys}}


def seeds_values(result: dict) -> dict:
    rows = result["seeds"]
    three = [r for r in rows if r["seeds"] == 3]
    verdict = ""
    if three:
        verdict = fill(
            "With 3 seeds (as `--seeds 0,1,2`), what the rule picks runs at $rule the rate of separate runs "
            "(single\nwindows $low to $high); vmapped seeds run at $vmapped the rate of sequential ones.",
            rule=times(three[0]["rule_vs_separate_runs"]["ratio"]),
            low=times(three[0]["rule_vs_separate_runs"]["window_min"]),
            high=times(three[0]["rule_vs_separate_runs"]["window_max"]),
            vmapped=times(three[0]["vmapped_vs_sequential"]["ratio"]),
        )
    backend = result["machine"]["backend"]
    return {
        "block": rows[0]["updates_per_call"],
        "backend": backend,
        "rule": rows[0]["rule"],
        "verdict": verdict,
    }


def sampling_columns(result: dict) -> list[Column]:
    batches = result["settings"]["sampling_batches"]
    small, large = min(batches), max(batches)
    return [
        col("agent", "agent", str),
        col("mode", "mode", str),
        col("networks", "networks", str),
        col(f"latency, batch {small} (ms)", f"batch{small}_ms"),
        col(f"batch {large} (ms)", f"batch{large}_ms"),
        col(f"actions/s at batch {large}", f"batch{large}_actions_per_s"),
    ]


def env_rows(result: dict) -> list[tuple[str, str]]:
    e = result["env"]
    return [
        ("environment", e["env_name"]),
        (
            "policy",
            f"{e['agent']} ({e['mode']}), {e['networks']}, one jitted call per step for {e['num_envs']} envs",
        ),
        ("env steps/s with the policy", format_number(e["env_steps_per_s"])),
        ("env steps/s with random actions", format_number(e["random_actions_env_steps_per_s"])),
        ("share of time in the policy", format_percent(e["policy_time_fraction"])),
        ("episodes, steps", f"{e['episodes']}, {format_number(e['env_steps'])}"),
    ]


# -- the sections: one entry per table, in the order of the page --------------------------------------

NETWORKS = col("networks", "networks", str)
TABLES: tuple[Table, ...] = (
    Table(
        "matmul", "#### Dense fp32 matmul throughput\n\n$table", positional("product", "GFLOP/s"), matmul_rows
    ),
    Table(
        "updates",
        "#### Gradient updates (one call per update)\n\n$table",
        [
            col("agent", "agent", str),
            NETWORKS,
            col("updates/s", "updates_per_s"),
            col("ms/update", "ms_per_update"),
            col("compile s", "compile_s"),
            col("GFLOP/update (jaxpr)", "gflop_per_update"),
            col("GFLOP (XLA, scan body once)", "xla_gflop_per_update"),
            col("GFLOP/s", "gflop_per_s"),
            col("roofline", "roofline_fraction", format_percent),
            col("spread", "spread", format_percent),
        ],
    ),
    Table(
        "profile",
        "#### Where FD's update spends its time ($preset)\n\nEach stage jitted and timed alone with the "
        "update's inputs; 'of which' rows split the gradient stage.\n\n$table\n\n$summary",
        positional("stage", "ms", "share of update", "GFLOP", "roofline"),
        profile_rows,
        profile_values,
    ),
    Table(
        "profile",
        "Variants (nothing else changed), timed in turns window by window together with the $matmul matmul "
        "so their\nratios are fair on a loaded machine:\n\n$table",
        variant_columns,
        lambda result: result["profile"]["variants"],
        lambda result: {"matmul": f"{result['profile']['matmul_same_windows']['shape'][0]}^3"},
    ),
    Table(
        "reference",
        "#### Each agent against its reference code (same settings, same batch, timed in turns)\n\n"
        "At $sizes, each agent at its first reference case's settings (those of the\nparity check, compared "
        "before timing). Reference code: $checkouts. $windows windows each; a ratio is\nthe median of the "
        "ratios of windows measured together, with their range.$cycles\n\n$table\n\n$verdict\n\n$notes",
        [
            col("fidec", "label", str),
            col("reference", "reference", str),
            col("fidec updates/s", "fidec"),
            col("reference updates/s", "theirs"),
            col("fidec / reference", "ratio", ratio_cell),
            col("single windows", "ratio", windows_cell),
            col("GFLOP/update fidec", "fidec_gflop"),
            col("GFLOP/update reference", "reference_gflop"),
            col("settings the same", "settings", str),
        ],
        reference_rows,
        reference_values,
        align="llrrrlrrl",
        missing="#### Each agent against its reference code\n\nNot measured in this run: `fidec bench "
        "--reference DIR` times each agent's update against its reference code's.",
    ),
    Table(
        "fisher",
        "#### Opt-in cheaper Fisher estimator (`fisher.source=dataset`)\n\n$speed Accuracy of F_n on a "
        "state-conditional Gaussian behaviour with its exact velocity field ($states\nstates, d = $action_dim, "
        "anisotropy $anisotropy, M = $num_samples, t_eps = $t_eps, $estimator score): median relative error of\n"
        "the metric and the typical factor by which the penalty along a random direction is off, for one "
        "update and\naveraged over $redraws updates.\n\n$table\n\nThe flow estimator's error shrinks as "
        "updates average out (fresh rollouts each update); the dataset\nestimator keeps the single dataset "
        "action of each state, so its metric stays concentrated along a - mu(s)\nhowever long training runs. "
        "It is faster but measures a different, rank-one-like metric: keep the paper's\nestimator (the "
        "default) unless that trade is wanted.",
        fisher_columns,
        lambda result: ("flow", "dataset"),
        fisher_values,
    ),
    Table(
        "fused",
        "#### Updates fused into one compiled call (FD, `offline_block`: on-device sampling + update)\n\n$table",
        [
            NETWORKS,
            col("K updates per call", "updates_per_call"),
            col("updates/s", "updates_per_s"),
            col("ms/update", "ms_per_update"),
            col("vs K = 1", "speedup_vs_first", times),
            col("compile s", "compile_s"),
        ],
    ),
    Table(
        "seeds",
        "#### Seeds in one process: vmapped, one after another, and separate runs (FD)\n\nThe training loop's "
        "own programs (fused blocks of $block updates on one on-device dataset), timed in turns.\nRates are "
        'seed-updates/s (updates per second summed over the seeds); "separate runs" is one seed alone,\nthe '
        "rate of that many single-seed runs one after another. The rule on this backend ($backend) picks\n"
        "**$rule** seeds.\n\n$table\n\n$verdict",
        [
            NETWORKS,
            col("seeds", "seeds"),
            col("vmapped", "vmapped_updates_per_s"),
            col("sequential", "sequential_updates_per_s"),
            col("separate runs", "separate_runs_updates_per_s"),
            col("vmapped / sequential", "vmapped_vs_sequential", ratio_range),
            col("faster", "faster", str),
            col("rule / separate runs", "rule_vs_separate_runs", ratio_range),
        ],
        values=seeds_values,
    ),
    Table("sampling", "#### Action selection\n\n$table", sampling_columns),
    Table(
        "env",
        "#### Evaluation throughput (`fidec.envs.evaluate`)\n\n$table",
        positional("", ""),
        env_rows,
        align="ll",
    ),
    Table(
        "memory",
        "#### Peak resident memory of a training process (MiB, fresh subprocess)\n\n$table",
        [
            col("agent", "agent", str),
            col("preset", "preset", str),
            col("after importing JAX", "rss_after_jax_import_mb"),
            (
                "after the dataset",
                lambda r: (
                    f"{format_number(r['rss_after_dataset_mb'])} ({format_number(r['dataset_mb'])} dataset)"
                ),
            ),
            col("parameters", "params_mb"),
            col("peak", "peak_rss_mb", lambda v: f"**{format_number(v)}**"),
            col("updates", "updates"),
        ],
    ),
    Table(
        "scaling",
        "#### Cost growth of the FD update (around $preset, one quantity varied at a time)\n\n$table",
        [
            col("varied", "vary", str),
            col("value", "value"),
            NETWORKS,
            col("action dim", "action_dim"),
            col("ms/update", "ms_per_update"),
            col("GFLOP/update", "gflop_per_update"),
            col("GFLOP/s", "gflop_per_s"),
            col("roofline", "roofline_fraction", format_percent),
        ],
        values=lambda result: {"preset": result["settings"]["scaling_preset"]},
    ),
)


# -- the machine, the headline, the errors -----------------------------------------------------------


def title(result: dict) -> str:
    m, settings = result["machine"], result.get("settings") or {}
    device = m["cpu_model"] if m["backend"] == "cpu" else m["device"]
    mode = result["mode"]
    sections = [s for s in settings.get("sections") or [] if s != "reference"]
    if sections and set(sections) != set(SECTIONS) - {"reference"}:
        mode += ", only " + ", ".join(settings["sections"])
    return f"{m['backend'].upper()} ({mode}): {device}, {m['usable_cores']} cores, {result['created'][:10]}"


def cpu_description(machine: dict) -> str:
    """'AMD EPYC (family 26, model 2, stepping 1)': model name, plus the CPU id where recorded."""
    return f"{machine['cpu_model']} ({machine['cpu_id']})" if machine.get("cpu_id") else machine["cpu_model"]


def machine_part(result: dict) -> str:
    m, load = result["machine"], result.get("load_average") or {}
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
            f"{result['created']}, {format_number(result['seconds'].get('total'))} s wall-clock, "
            f"{format_number((result.get('cpu_seconds') or {}).get('total'))} CPU-seconds in all",
        ),
    ]
    text = markdown_table(("machine", ""), rows, align="ll").rstrip()
    first = [(load.get(k) or ["-"])[0] for k in ("start", "end")]
    cores = m.get("usable_cores") or 1
    if max(x if isinstance(x, int | float) else 0.0 for x in first) > 0.5 * cores:
        text += "\n\n" + fill(
            "**Measured on a shared, loaded machine**: $cores CPU cores ($cpu) that other processes were using "
            "during\nthe run (1-minute load average $start at the start and $end at the end, against $cores "
            "cores).\nAbsolute rates are therefore lower and noisier than on an idle machine; ratios measured in "
            "the same run\n(roofline fractions, fidec against the official code, speed-ups) are more robust.",
            cores=cores,
            cpu=cpu_description(m),
            start=first[0],
            end=first[1],
        )
    return text


WINDOWS = {True: "same windows", False: "run's best"}  # whose matmul throughput the headline fraction uses


def headline_part(result: dict) -> str:
    h = headline(result)  # recomputed from the sections, so results written by older versions read alike
    if not h or h.get("updates_per_s") is None:
        return "_FD at the paper's settings was not measured in this run._"
    ref = h.get("reference")
    profiled = "profile" in (h.get("source") or "")
    rows = [
        ("updates/s", format_number(h["updates_per_s"])),
        ("ms per update", format_number(h["ms_per_update"])),
        ("spread of the timing windows ((max - min) / median)", format_percent(h.get("spread"))),
        ("matmul GFLOP per update", format_number(h["gflop_per_update"])),
        ("achieved GFLOP/s", format_number(h["gflop_per_s"])),
        (
            f"fraction of large-matmul throughput ({WINDOWS[profiled]})",
            format_percent(h["roofline_fraction"]),
        ),
        (
            "fraction of the run's best large-matmul throughput",
            format_percent(h.get("roofline_fraction_vs_best_matmul")),
        ),
        (
            "fidec / official code (timed in turns, the official code's settings)",
            times(ref["speedup"]) if ref else "not measured",
        ),
    ]
    parts = [markdown_table(("FD update, paper settings", "fidec (this run)"), rows).rstrip()]
    if profiled:
        parts.append(
            fill(
                "FD's rate here is the profile's: timed in turns, window by window, with the large square "
                "matmul, whose\nthroughput in those same windows ($same GFLOP/s) is the denominator of the "
                "headline fraction.\nThe best of all measurements of that product in the run (start, end and "
                "profile: $best\nGFLOP/s) gives the second fraction.",
                same=format_number(h["roofline_gflop_per_s"]),
                best=format_number(h.get("best_matmul_gflop_per_s")),
            )
        )
    parts.append("\n".join(verdicts(result, h)))
    return "\n\n".join(parts)


def within(ratio: float, low: float, high: float) -> bool:
    return low <= ratio <= high


def met(flag: bool | None) -> str:
    return "-" if flag is None else ("met" if flag else "missed")


def windows(ref: dict, key: str) -> str:
    """'single windows 0.95x to 1.3x', and whether that range includes 1x, of a ratio of the headline."""
    low, high = ref.get(f"{key}_window_min"), ref.get(f"{key}_window_max")
    if low is None or high is None:  # a result written before the range was in the headline
        return ""
    noise = ", a range that includes 1x: within this run's noise" if within(1.0, low, high) else ""
    return f" (single windows {times(low)} to {times(high)}{noise})"


SPEED = """- Speed against the official code, measured in this run: **$speedup** fidec / official$windows;
  target $target: $met. With `fisher.reuse_base_sample=true`: $reuse$reuse_windows."""
WORK = """- Work: $fidec GFLOP per update against the official code's $official ($reuse with
  `fisher.reuse_base_sample=true`). The work ratios $official / $fidec = $ratio and $official / $reuse =
  $reuse_ratio $verdict."""
AGREE = """lie within the window ranges of the speed-ups measured: that the work fidec's update leaves
  out is the cause is the hypothesis they fit, not an attribution they measure"""
WORK_DIFFERS = """- Where the work differs: one call of the official agent's `sample_actions` on the batch's $batch
  states counts $sample GFLOP ($share of its update). The official update makes that call twice: for the
  critic's next actions, which fidec's update computes too, and once more only for a logged metric, `mse`
  (official `agents/fidec.py`, lines 172-173). Without that second call it would count $official - $sample =
  $rest GFLOP, against fidec's $fidec. Batching rollouts into one call saves no FLOPs, and the official
  rollouts are forward-only (no gradient) as fidec's are."""


def verdicts(result: dict, h: dict) -> list[str]:
    """The headline's bullet points: the official code, the roofline, the work and where it differs."""
    ref = h.get("reference")
    lines = [
        fill(
            SPEED,
            speedup=times(ref["speedup"]),
            windows=windows(ref, "speedup"),
            target=times(h["target_speedup"]),
            met=met(ref["meets_speed_target"]),
            reuse=times(ref["speedup_reuse_base_sample"]),
            reuse_windows=windows(ref, "speedup_reuse_base_sample"),
        )
        if ref
        else "- Speed against the official code: not measured in this run (`fidec bench --reference DIR` "
        "measures it).",
        f"- Roofline fraction: **{format_percent(h['roofline_fraction'])}** (target "
        f"{format_percent(h['target_roofline_fraction'])}: {met(h.get('meets_roofline_target'))}).",
    ]
    if ref and ref.get("fidec_reuse_base_sample_gflop_per_update"):
        lines += work_against_official(result, ref)
    else:
        lines.append(
            f"- Work: {format_number(h['gflop_per_update'])} GFLOP per update (matmul FLOPs of its jaxpr)."
        )
    variants = (result.get("profile") or {}).get("variants", [])
    unrolled = [v for v in variants if "Euler scan unrolled" in v["label"] and v.get("xla_gflop_per_update")]
    if unrolled:
        lines.append(
            "- Counted XLA's way (cost analysis, Euler loop unrolled so the rollout is counted K times): "
            f"{format_number(unrolled[0]['xla_gflop_per_update'])} GFLOP per\n  update (element-wise work included)."
        )
    squares = (result.get("matmul") or {}).get("square") or []
    layers = (result.get("matmul") or {}).get("mlp_shapes") or []
    if squares and layers:
        square = max(squares, key=lambda r: r["gflop_per_s"])
        shares = [
            f"{format_percent(r['gflop_per_s'] / square['gflop_per_s'])} for {shape(r)}" for r in layers
        ]
        lines.append(
            f"- The update's own layer products, timed alone in this run, reach {', '.join(shares)} of the "
            f"square {square['shape'][0]}^3\n  product's throughput (measured at other moments of the run; where "
            "well below 100%, a ceiling on the\n  fraction an update made of such products can show)."
        )
    return lines


def work_against_official(result: dict, ref: dict) -> list[str]:
    """The work of both updates, the work ratios against the speed-ups measured, and where the work differs."""
    fidec, official = ref["fidec_gflop_per_update"], ref["official_gflop_per_update"]
    reuse = ref["fidec_reuse_base_sample_gflop_per_update"]
    agree = within(official / fidec, ref["speedup_window_min"], ref["speedup_window_max"]) and within(
        official / reuse,
        ref["speedup_reuse_base_sample_window_min"],
        ref["speedup_reuse_base_sample_window_max"],
    )
    numbers = {"fidec": format_number(fidec), "official": format_number(official)}
    lines = [
        fill(
            WORK,
            reuse=format_number(reuse),
            ratio=times(official / fidec),
            reuse_ratio=times(official / reuse),
            verdict=AGREE if agree else "are not within the window ranges of the speed-ups measured",
            **numbers,
        )
    ]
    sample = ref.get("official_sample_actions_gflop")
    if sample is not None:
        lines.append(
            fill(
                WORK_DIFFERS,
                batch=result["reference"]["batch_size"],
                sample=format_number(sample),
                share=format_percent(sample / official, 1),
                rest=format_number(official - sample),
                **numbers,
            )
        )
    return lines


def errors_part(result: dict) -> str:
    items = [f"- `{k}`: {v}" for k, v in (result.get("errors") or {}).items()]
    items += [f"- `{k}`: skipped, {v}" for k, v in (result.get("skipped") or {}).items()]
    if result.get("interrupted"):
        items.append(
            f"- interrupted (Ctrl-C) in `{result['interrupted']}`; the sections after it did not run"
        )
    return "#### Sections that failed or did not run\n\n" + "\n".join(items) if items else ""


def render_result(result: dict) -> str:
    """One result's part of the page; a table whose data this version cannot read (a result written by
    an older one) is named, not allowed to stop the page."""
    parts = [f"### {title(result)}", machine_part(result), headline_part(result)]
    for table in TABLES:
        try:
            parts.append(table.render(result))
        except (KeyError, TypeError, IndexError) as exc:
            parts.append(
                f"_The {table.key} section of this result could not be rendered ({type(exc).__name__}: {exc}): "
                "it was written by\nanother version of fidec; rerun `fidec bench` to replace it._"
            )
    parts.append(errors_part(result))
    return "\n\n".join(p for p in parts if p)


# -- the page ----------------------------------------------------------------------------------------------


def is_result(data: object) -> bool:
    """True for a dict with the layout ``fidec bench`` writes (other JSON files are skipped)."""
    return isinstance(data, dict) and all(k in data for k in ("schema", "mode", "created", "machine"))


def is_smoke_run(result: dict) -> bool:
    """A run at the smoke-test size (``--tiny``, or any plan at its smallest): never on the page."""
    return result.get("mode") == "tiny" or bool((result.get("settings") or {}).get("smallest"))


def load_results(results_dir: Path) -> list[dict]:
    """Every benchmark result JSON in ``results_dir`` except smoke-test runs."""
    found = [json.loads(path.read_text()) for path in sorted(results_dir.glob("*.json"))]
    return [r for r in found if is_result(r) and not is_smoke_run(r)]


def render_page(results: Sequence[dict], template: str | None = None) -> str:
    """The page: the template's words around one part per result."""
    order = lambda r: (r["machine"]["backend"] != "cpu", r["mode"] != "quick", r["created"])
    body = "\n\n".join(render_result(r) for r in sorted(results, key=order))
    page = string.Template(template if template is not None else TEMPLATE.read_text()).substitute(
        results=body or "_No results yet: run `fidec bench --quick --out benchmarks/results`._",
        gpu_budget=format_number(GPU_TIME_BUDGET_S),
        target_roofline=format_percent(TARGET_ROOFLINE),
        target_speedup=times(TARGET_SPEEDUP),
        target_reference=times(TARGET_REFERENCE_RATIO),
    )
    return page.rstrip("\n") + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder of result JSON files")
    parser.add_argument("--page", type=Path, default=PAGE, help="the page to write")
    parser.add_argument("--check", action="store_true", help="only compare: exit 1 when the page differs")
    args = parser.parse_args(argv)
    text = render_page(load_results(args.results))
    if args.check:
        current = args.page.read_text() if args.page.exists() else ""
        print(f"{args.page} is {'up to date' if current == text else 'not what the results give'}")
        return 0 if current == text else 1
    print(f"rendered {write_text_atomic(args.page, text)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
