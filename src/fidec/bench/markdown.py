"""The Markdown of one benchmark result: a table per section, filled into the prose of templates/sections.md.

Each ``*_block(result)`` returns its section's Markdown ('' when the section did not run); the words
live in the template file, the code only computes the values and tables.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Sequence
from functools import cache
from importlib import resources
from typing import Any

from fidec.bench.run import headline
from fidec.bench.settings import SECTIONS
from fidec.formatting import format_number, format_percent, markdown_table

TEMPLATES = resources.files("fidec.bench") / "templates"
Column = tuple[str, Callable[[dict], str]]
BLOCK_MARK = "<!-- block: "


@cache
def template_text(name: str) -> str:
    """A template file of ``fidec.bench.templates`` (package data)."""
    return (TEMPLATES / name).read_text(encoding="utf-8")


@cache
def blocks() -> dict[str, str]:
    """The named blocks of templates/sections.md (text between '<!-- block: NAME -->' lines)."""
    found: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in template_text("sections.md").splitlines():
        if line.startswith(BLOCK_MARK):
            current = found.setdefault(line[len(BLOCK_MARK) :].removesuffix("-->").strip(), [])
        elif current is not None:
            current.append(line)
    return {name: "\n".join(lines).strip() for name, lines in found.items()}


def fill(name: str, **values: object) -> str:
    """Block ``name`` with its $placeholders replaced (every placeholder must be given); values are
    written with ``str``, trailing newlines dropped (a table ends with one)."""
    return string.Template(blocks()[name]).substitute({k: str(v).rstrip("\n") for k, v in values.items()})


def times(value: float | None) -> str:
    """A ratio as '1.31x' ('-' when missing)."""
    return "-" if value is None else f"{format_number(value)}x"


def column(header: str, key: str, form: Callable[[Any], str] = format_number) -> Column:
    """A table column: ``header`` over ``form(row[key])``."""
    return header, lambda row: form(row[key])


def columns_table(columns: Sequence[Column], rows: Sequence[dict], align: str | None = None) -> str:
    """A Markdown table with one line per row, one cell per column."""
    return markdown_table([h for h, _ in columns], [[cell(r) for _, cell in columns] for r in rows], align)


def ratio_range(r: dict) -> str:
    """'1.31x (1.1x to 1.5x)': a ratio of rates timed in turns with its range over the single windows."""
    return f"{times(r['ratio'])} ({times(r['window_min'])} to {times(r['window_max'])})"


def shape(s: dict) -> str:
    m, k, n = s["shape"]
    return f"{m} x {k} @ {k} x {n}"


# -- the machine and the headline ---------------------------------------------------------------------


def title(result: dict) -> str:
    m = result["machine"]
    device = m["cpu_model"] if m["backend"] == "cpu" else m["device"]
    settings = result.get("settings") or {}
    sections = [s for s in settings.get("sections") or [] if s != "reference"]
    mode = result["mode"]
    if sections and set(sections) != set(SECTIONS) - {"reference"}:
        mode += ", only " + ", ".join(settings["sections"])
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
    if was_loaded(result):
        first = lambda key: (load.get(key) or ["-"])[0]
        text += "\n\n" + fill(
            "loaded",
            cores=m["usable_cores"] or 1,
            cpu=cpu_description(m),
            load_start=first("start"),
            load_end=first("end"),
        )
    return text


def headline_block(result: dict) -> str:
    h = headline(result)  # recomputed from the sections, so results written by older versions read alike
    if not h or h.get("updates_per_s") is None:
        return fill("headline_missing")
    ref = h.get("reference")
    same_windows = "same windows" if "profile" in (h.get("source") or "") else "run's best"
    rows = [
        ("updates/s", format_number(h["updates_per_s"])),
        ("ms per update", format_number(h["ms_per_update"])),
        ("spread of the timing windows ((max - min) / median)", format_percent(h.get("spread"))),
        ("matmul GFLOP per update", format_number(h["gflop_per_update"])),
        ("achieved GFLOP/s", format_number(h["gflop_per_s"])),
        (f"fraction of large-matmul throughput ({same_windows})", format_percent(h["roofline_fraction"])),
        (
            "fraction of the run's best large-matmul throughput",
            format_percent(h.get("roofline_fraction_vs_best_matmul")),
        ),
        (
            "fidec / official code (timed in turns, `--preset official`)",
            times(ref["speedup"]) if ref else "not measured",
        ),
    ]
    parts = [markdown_table(("FD update, paper settings", "fidec (this run)"), rows)]
    if "profile" in (h.get("source") or ""):
        parts.append(
            fill(
                "headline_profile",
                same_gflop_per_s=format_number(h["roofline_gflop_per_s"]),
                best_gflop_per_s=format_number(h.get("best_matmul_gflop_per_s")),
            )
        )
    parts.append("\n".join(verdicts(result, h)))
    return "\n\n".join(p.rstrip() for p in parts)


def verdicts(result: dict, h: dict) -> list[str]:
    met = lambda flag: "-" if flag is None else ("met" if flag else "missed")
    ref = h.get("reference")
    lines = [
        fill(
            "verdict_reference",
            speedup=times(ref["speedup"]),
            window_min=times(ref["speedup_window_min"]),
            window_max=times(ref["speedup_window_max"]),
            target=times(h["target_speedup"]),
            met=met(ref["meets_speed_target"]),
            speedup_reuse=times(ref["speedup_reuse_base_sample"]),
        )
        if ref
        else fill("verdict_no_reference"),
        fill(
            "verdict_roofline",
            fraction=format_percent(h["roofline_fraction"]),
            target=format_percent(h["target_roofline_fraction"]),
            met=met(h.get("meets_roofline_target")),
        ),
        fill(
            "verdict_work",
            gflop=format_number(h["gflop_per_update"]),
            against=f" against the official code's {format_number(ref['official_gflop_per_update'])}"
            if ref
            else "",
        ),
    ]
    unrolled = [
        v
        for v in (result.get("profile") or {}).get("variants", [])
        if v["label"] == "fd, Euler scan unrolled" and v.get("xla_gflop_per_update")
    ]
    if unrolled:
        lines.append(fill("verdict_unrolled", gflop=format_number(unrolled[0]["xla_gflop_per_update"])))
    squares = (result.get("matmul") or {}).get("square") or []
    square = max(squares, key=lambda r: r["gflop_per_s"], default=None)
    layers = (result.get("matmul") or {}).get("mlp_shapes") or []
    if square and layers:
        shares = ", ".join(
            f"{format_percent(r['gflop_per_s'] / square['gflop_per_s'])} for {shape(r)}" for r in layers
        )
        lines.append(fill("verdict_layers", shares=shares, square=square["shape"][0]))
    return lines


# -- the sections -------------------------------------------------------------------------------------


def matmul_block(result: dict) -> str:
    mm = result.get("matmul")
    if not mm:
        return ""
    rows = [(f"{shape(s)} (square, start)", format_number(s["gflop_per_s"])) for s in mm["square"]]
    if mm.get("square_at_end"):
        rows.append(
            (f"{shape(mm['square_at_end'])} (square, end)", format_number(mm["square_at_end"]["gflop_per_s"]))
        )
    rows += [(f"{shape(s)} (MLP layer)", format_number(s["gflop_per_s"])) for s in mm["mlp_shapes"]]
    same = (result.get("profile") or {}).get("matmul_same_windows")
    if same:
        rows.append(
            (
                f"{shape(same)} (square, in turns with the profiled updates)",
                format_number(same["gflop_per_s"]),
            )
        )
    rows.append(
        ("**roofline denominator** (best square)", f"**{format_number(mm['roofline_gflop_per_s'])}**")
    )
    return fill("matmul", table=markdown_table(("product", "GFLOP/s"), rows))


UPDATE_COLUMNS = (
    column("agent", "agent", str),
    column("networks", "networks", str),
    column("updates/s", "updates_per_s"),
    column("ms/update", "ms_per_update"),
    column("compile s", "compile_s"),
    column("GFLOP/update (jaxpr)", "gflop_per_update"),
    column("GFLOP (XLA, scan body once)", "xla_gflop_per_update"),
    column("GFLOP/s", "gflop_per_s"),
    column("roofline", "roofline_fraction", format_percent),
    column("spread", "spread", format_percent),
)


def updates_block(result: dict) -> str:
    rows = result.get("updates")
    return fill("updates", table=columns_table(UPDATE_COLUMNS, rows)) if rows else ""


def profile_block(result: dict) -> str:
    p = result.get("profile")
    if not p:
        return ""
    roofline = (result.get("matmul") or {}).get("roofline_gflop_per_s")
    update_ms = p["update_ms"]
    rows = []
    for s in p["stages"]:
        share = format_percent(s["ms"] / update_ms) if s["in_update"] or s["stage"].startswith("  ") else "-"
        frac = format_percent(s["gflop_per_s"] / roofline) if roofline and s["gflop"] else "-"
        name = s["stage"].replace("  of which:", "&nbsp;&nbsp;of which:")
        rows.append(
            (name, format_number(s["ms"]), share, format_number(s["gflop"]) if s["gflop"] else "-", frac)
        )
    rows.append(
        (
            "sum of the in-update stages",
            format_number(p["sum_of_stages_ms"]),
            format_percent(p["sum_of_stages_ms"] / update_ms),
            "-",
            "-",
        )
    )
    rows.append(("**whole update (one compiled call)**", f"**{format_number(update_ms)}**", "100%", "-", "-"))
    in_update = [s for s in p["stages"] if s["in_update"]]
    work = p["variants"][0]["gflop_per_update"] if p.get("variants") else None
    summary = ""
    if in_update and p["sum_of_stages_ms"] > 0:
        top = max(in_update, key=lambda s: s["ms"])
        summary = fill(
            "profile_summary",
            stage=top["stage"].split(" (")[0],
            share=format_percent(top["ms"] / p["sum_of_stages_ms"]),
            work_share=f" and {format_percent(top['gflop'] / work)} of the update's matmul work"
            if work
            else "",
            update_ms=format_number(update_ms),
            stages_ms=format_number(p["sum_of_stages_ms"]),
        )
    base = p["variants"][0]["ms_per_update"]
    variant_columns = (
        column("variant", "label", str),
        column("ms/update", "ms_per_update"),
        column("updates/s", "updates_per_s"),
        column("GFLOP (jaxpr)", "gflop_per_update"),
        column("GFLOP (XLA)", "xla_gflop_per_update"),
        column("roofline (run's best matmul)", "roofline_fraction", format_percent),
        ("roofline (same windows)", lambda v: format_percent(v.get("roofline_fraction_same_windows"))),
        ("speed vs shipped", lambda v: times(base / v["ms_per_update"])),
    )
    same = p.get("matmul_same_windows")
    return fill(
        "profile",
        preset=p["preset"],
        stages=markdown_table(("stage", "ms", "share of update", "GFLOP", "roofline"), rows),
        summary=summary,
        matmul=f"{same['shape'][0]}^3" if same else "large",
        variants=columns_table(variant_columns, p["variants"]),
    )


REFERENCE_COLUMNS = (
    column("update", "label", str),
    column("updates/s", "updates_per_s"),
    column("ms/update", "ms_per_update"),
    column("spread", "spread", format_percent),
    column("GFLOP (jaxpr)", "gflop_per_update"),
    column("GFLOP (XLA)", "xla_gflop_per_update"),
    column("compile s", "compile_s"),
    ("vs official (single windows)", lambda r: f"**{ratio_range(r['ratio'])}**" if r["ratio"] else "1"),
)
SETTING_COLUMNS = (
    column("official key", "key", str),
    column("official code", "reference", lambda v: setting_text(v)),
    column("fidec", "fidec", lambda v: setting_text(v)),
    column("same", "same", lambda same: "yes" if same else "**no**"),
)


def reference_block(result: dict) -> str:
    r = result.get("reference")
    if not r:
        ran = "reference" in ((result.get("settings") or {}).get("sections") or [])
        return "" if ran else fill("reference_missing")
    ratios = (r["speedup"], r["speedup_reuse_base_sample"], None)
    rows = [{**row, "ratio": ratio} for row, ratio in zip(r["rows"], ratios, strict=True)]
    sizes = r["sizes"]
    hidden = sizes["actor_hidden_dims"]
    return fill(
        "reference",
        checkout=r["checkout"],
        agent_file=r["agent_file"],
        sha=r["agent_file_sha256"][:12],
        sizes=f"{len(hidden)} x {hidden[0]}, batch {sizes['batch_size']}, M = {sizes['num_fisher_samples']}, "
        f"K = {sizes['flow_steps']}, obs {sizes['obs_dim']}, act {sizes['action_dim']}",
        presets=" + ".join(f"`{p}`" for p in r["fidec_presets"]),
        windows=r["windows"],
        table=columns_table(REFERENCE_COLUMNS, rows),
        same=sum(s["same"] for s in r["settings_compared"]),
        compared=len(r["settings_compared"]),
        settings=columns_table(SETTING_COLUMNS, r["settings_compared"], align="llll"),
    )


def setting_text(value: object) -> str:
    """A setting as the page shows it: hidden sizes as '4 x 512', the rest with ``str``."""
    if isinstance(value, list | tuple):
        return " x ".join(map(str, value)) if len(set(value)) > 1 else f"{len(value)} x {value[0]}"
    return str(value)


def fisher_block(result: dict) -> str:
    f = result.get("fisher")
    if not f:
        return ""
    a = f["accuracy"]
    speed = ""
    if f.get("speed"):
        s = f["speed"]
        speed = fill(
            "fisher_speed",
            preset=s["preset"],
            dataset=format_number(s["dataset_updates_per_s"]),
            flow=format_number(s["flow_updates_per_s"]),
            speedup=times(s["speedup"]),
            dataset_gflop=format_number(s["dataset_gflop_per_update"]),
            flow_gflop=format_number(s["flow_gflop_per_update"]),
        )
    rows = [
        (
            name,
            format_number(a[name]["one_draw"]["relative_error"]),
            f"x{format_number(a[name]['one_draw']['penalty_factor'])}",
            format_number(a[name]["average"]["relative_error"]),
            f"x{format_number(a[name]['average']['penalty_factor'])}",
        )
        for name in ("flow", "dataset")
    ]
    headers = (
        "fisher.source",
        "error, one update",
        "penalty off by, one update",
        f"error, {a['redraws']}-update mean",
        f"penalty off by, {a['redraws']}-update mean",
    )
    return fill(
        "fisher",
        speed=speed,
        states=a["states"],
        d=a["action_dim"],
        anisotropy=format_number(a["anisotropy"]),
        m=a["num_samples"],
        t_eps=a["t_eps"],
        estimator=a["estimator"],
        redraws=a["redraws"],
        table=markdown_table(headers, rows),
    )


FUSED_COLUMNS = (
    column("networks", "networks", str),
    column("K updates per call", "updates_per_call"),
    column("updates/s", "updates_per_s"),
    column("ms/update", "ms_per_update"),
    column("vs K = 1", "speedup_vs_first", times),
    column("compile s", "compile_s"),
)


def fused_block(result: dict) -> str:
    rows = result.get("fused")
    return fill("fused", table=columns_table(FUSED_COLUMNS, rows)) if rows else ""


SEED_COLUMNS = (
    column("networks", "networks", str),
    column("seeds", "seeds"),
    column("vmapped", "vmapped_updates_per_s"),
    column("sequential", "sequential_updates_per_s"),
    column("separate runs", "separate_runs_updates_per_s"),
    column("vmapped / sequential", "vmapped_vs_sequential", ratio_range),
    column("faster", "faster", str),
    column("rule / separate runs", "rule_vs_separate_runs", ratio_range),
)


def seeds_block(result: dict) -> str:
    rows = result.get("seeds")
    if not rows:
        return ""
    three = [r for r in rows if r["seeds"] == 3]
    verdict = ""
    if three:
        rule = three[0]["rule_vs_separate_runs"]
        verdict = fill(
            "seeds_verdict",
            seeds=3,
            ratio=times(rule["ratio"]),
            window_min=times(rule["window_min"]),
            window_max=times(rule["window_max"]),
            vmapped=times(three[0]["vmapped_vs_sequential"]["ratio"]),
        )
    return fill(
        "seeds",
        block=rows[0]["updates_per_call"],
        backend=result["machine"]["backend"],
        rule=rows[0]["rule"],
        table=columns_table(SEED_COLUMNS, rows),
        verdict=verdict,
    ).rstrip()


def sampling_block(result: dict) -> str:
    rows = result.get("sampling")
    if not rows:
        return ""
    batches = result["settings"]["sampling_batches"]
    small, large = min(batches), max(batches)
    columns = (
        column("agent", "agent", str),
        column("mode", "mode", str),
        column("networks", "networks", str),
        column(f"latency, batch {small} (ms)", f"batch{small}_ms"),
        column(f"batch {large} (ms)", f"batch{large}_ms"),
        column(f"actions/s at batch {large}", f"batch{large}_actions_per_s"),
    )
    return fill("sampling", table=columns_table(columns, rows))


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
        ("env steps/s with the policy", format_number(e["env_steps_per_s"])),
        ("env steps/s with random actions", format_number(e["random_actions_env_steps_per_s"])),
        ("share of time in the policy", format_percent(e["policy_time_fraction"])),
        ("episodes, steps", f"{e['episodes']}, {format_number(e['env_steps'])}"),
    ]
    return fill("env", table=markdown_table(("", ""), rows, align="ll"))


MEMORY_COLUMNS = (
    column("agent", "agent", str),
    column("preset", "preset", str),
    column("after importing JAX", "rss_after_jax_import_mb"),
    (
        "after the dataset",
        lambda r: f"{format_number(r['rss_after_dataset_mb'])} ({format_number(r['dataset_mb'])} dataset)",
    ),
    column("parameters", "params_mb"),
    column("peak", "peak_rss_mb", lambda v: f"**{format_number(v)}**"),
    column("updates", "updates"),
)


def memory_block(result: dict) -> str:
    rows = result.get("memory")
    return fill("memory", table=columns_table(MEMORY_COLUMNS, rows)) if rows else ""


SCALING_COLUMNS = (
    column("varied", "vary", str),
    column("value", "value"),
    column("networks", "networks", str),
    column("action dim", "action_dim"),
    column("ms/update", "ms_per_update"),
    column("GFLOP/update", "gflop_per_update"),
    column("GFLOP/s", "gflop_per_s"),
    column("roofline", "roofline_fraction", format_percent),
)


def scaling_block(result: dict) -> str:
    rows = result.get("scaling")
    if not rows:
        return ""
    return fill(
        "scaling", preset=result["settings"]["scaling_preset"], table=columns_table(SCALING_COLUMNS, rows)
    )


def errors_block(result: dict) -> str:
    items = [f"- `{k}`: {v}" for k, v in (result.get("errors") or {}).items()]
    items += [f"- `{k}`: skipped, {v}" for k, v in (result.get("skipped") or {}).items()]
    if result.get("interrupted"):
        items.append(
            f"- interrupted (Ctrl-C) in `{result['interrupted']}`; the sections after it did not run"
        )
    return fill("errors", items="\n".join(items)) if items else ""


BLOCKS = (
    machine_block,
    headline_block,
    matmul_block,
    updates_block,
    profile_block,
    reference_block,
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
    """One result's section of docs/benchmarks.md; a section whose data this version cannot read (a
    result written by an older one) is named, not allowed to stop the page."""
    parts = []
    for block in BLOCKS:
        try:
            parts.append(block(result))
        except (KeyError, TypeError, IndexError) as exc:
            name = block.__name__.removesuffix("_block")
            parts.append(fill("unreadable", section=name, error=f"{type(exc).__name__}: {exc}"))
    return fill("result", title=title(result), blocks="\n\n".join(p for p in parts if p))
