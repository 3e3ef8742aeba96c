"""Run the benchmark sections in order, side by side in one process, and collect one JSON-able result.

Every section is independent: one that fails records its error (shown in the rendered table) and the
run goes on; Ctrl-C keeps what was measured.  The square-matmul throughput is measured first, in turns with the profiled updates, and
again at the end (at the size that ran fastest first); the best of these is the roofline denominator,
so a load change during the run cannot flatter the fractions.
"""

from __future__ import annotations

import datetime as dt
import sys
import time
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path

import jax

from fidec.agents.fd import FDConfig
from fidec.bench.env_speed import env_section
from fidec.bench.fisher_estimators import fisher_section
from fidec.bench.fused import fused_rows
from fidec.bench.machine import describe_machine, load_average, matmul_section, matmul_throughput
from fidec.bench.memory import memory_section
from fidec.bench.profile import profile_section
from fidec.bench.reference import reference_section
from fidec.bench.sampling import sampling_rows
from fidec.bench.scaling import scaling_rows
from fidec.bench.seeds import seed_rows
from fidec.bench.settings import AGENT, PAPER_PRESET, SECTIONS, TARGET_ROOFLINE, TARGET_SPEEDUP, BenchSettings
from fidec.bench.update_speed import updates_section
from fidec.files import write_json_atomic
from fidec.parity.load import ReferenceCode
from fidec.presets import resolve_agent_config

if sys.platform != "win32":  # resource is POSIX-only
    import resource

SCHEMA_VERSION = 2
NOT_MEASURED = "not measured: fidec bench --reference DIR times each agent against its reference code"
# A result: what ran where, then one entry per section (SECTIONS, None where it did not run), then how it went.
RESULT_KEYS = (
    ("schema", "mode", "created", "machine", "load_average", "settings", "headline")
    + SECTIONS
    + ("errors", "skipped", "interrupted", "seconds", "cpu_seconds")
)


def mlp_shapes(settings: BenchSettings) -> list[tuple[int, int, int]]:
    """The Dense-layer products of FD's update at the profile preset: rollout rows and batch rows."""
    config = resolve_agent_config(settings.agent, presets=[settings.profile_preset])
    assert isinstance(config, FDConfig), "the matmul shapes are FD's update's"
    width = config.network.actor_hidden[0]
    b, m = config.batch_size, config.fisher.num_samples
    rows = b * (m + (1 if config.fisher.reuse_base_sample else 2))  # a_hat, the M samples, a_hat'
    return [(rows, width, width), (b, width, width)]


def headline(result: dict) -> dict | None:
    """FD at the paper's settings: its rate, work and roofline fraction, and against the official code.

    The rate and fraction come from the profile's row, timed in turns with the large matmul (its
    fraction of the matmul throughput measured in the same windows is the headline fraction), else from
    the updates table's row against the run's best matmul throughput.  The comparison with the official
    code comes from the reference section's entry of the agent (timed in turns with it in this run; its first
    speed variant, ``fisher.reuse_base_sample=true``, beside it), or is ``None``: not measured.
    """
    agent = (result.get("settings") or {}).get("agent", AGENT)
    variants = (result.get("profile") or {}).get("variants") or []
    profiled = [r for r in variants[:1] if r["preset"] == PAPER_PRESET]  # the agent as shipped comes first
    rows = profiled + [
        r for r in result.get("updates") or [] if r["agent"] == agent and r["preset"] == PAPER_PRESET
    ]
    reference = reference_entry(result, agent)
    if not rows and not reference:
        return None
    h: dict = {"source": None, "target_roofline_fraction": TARGET_ROOFLINE, "target_speedup": TARGET_SPEEDUP}
    if rows:
        fd = rows[0]
        best = result["matmul"]["roofline_gflop_per_s"] if result.get("matmul") else None
        same = (result["profile"].get("matmul_same_windows") or {}).get("gflop_per_s") if profiled else None
        roofline = same or best
        fraction = fd["gflop_per_s"] / roofline if roofline else None
        h.update(
            source="profile (timed in turns with the matmul)" if profiled else "updates table",
            updates_per_s=fd["updates_per_s"],
            ms_per_update=fd["ms_per_update"],
            spread=fd.get("spread"),
            gflop_per_update=fd["gflop_per_update"],
            xla_gflop_per_update=fd["xla_gflop_per_update"],
            gflop_per_s=fd["gflop_per_s"],
            roofline_gflop_per_s=roofline,
            roofline_fraction=fraction,
            best_matmul_gflop_per_s=best,
            roofline_fraction_vs_best_matmul=fd["gflop_per_s"] / best if best else None,
            meets_roofline_target=None if fraction is None else fraction >= TARGET_ROOFLINE,
        )
    h["reference"] = None
    h["reference_status"] = "measured in this run" if reference else NOT_MEASURED
    if reference:
        fidec, *opt_in, official = reference["rows"]
        speedup = fidec["vs_reference"]
        h["reference"] = {
            "fidec_updates_per_s": fidec["updates_per_s"],
            "official_updates_per_s": official["updates_per_s"],
            "fidec_gflop_per_update": fidec["gflop_per_update"],
            "official_gflop_per_update": official["gflop_per_update"],
            "official_sample_actions_gflop": official.get("action_gflop"),
            "speedup": speedup["ratio"],
            "speedup_window_min": speedup["window_min"],
            "speedup_window_max": speedup["window_max"],
            "meets_speed_target": speedup["ratio"] >= TARGET_SPEEDUP,
        }
        if opt_in:
            reuse, reuse_speedup = opt_in[0], opt_in[0]["vs_reference"]
            h["reference"].update(
                fidec_reuse_base_sample_gflop_per_update=reuse["gflop_per_update"],
                speedup_reuse_base_sample=reuse_speedup["ratio"],
                speedup_reuse_base_sample_window_min=reuse_speedup["window_min"],
                speedup_reuse_base_sample_window_max=reuse_speedup["window_max"],
            )
    return h


def reference_entry(result: dict, agent: str) -> dict | None:
    """The reference section's entry of ``agent`` where it was timed (None otherwise)."""
    entries = (result.get("reference") or {}).get("agents") or []
    return next((e for e in entries if e["agent"] == agent and e.get("status") == "timed"), None)


def _sections(
    settings: BenchSettings, result: dict, log: Callable, codes: Mapping[str, ReferenceCode] | None
) -> dict[str, Callable[[], object]]:
    roofline = lambda: (result.get("matmul") or {}).get("roofline_gflop_per_s")
    return {
        "matmul": lambda: matmul_section(
            settings.matmul_sizes, mlp_shapes(settings), settings.windows, settings.window_seconds
        ),
        "updates": lambda: updates_section(settings, roofline(), log),
        "profile": lambda: profile_section(settings, roofline(), log, best_square_size(result)),
        "reference": lambda: reference_section(settings, log, codes),
        "fisher": lambda: fisher_section(settings, (result.get("profile") or {}).get("variants"), log),
        "fused": lambda: [r for p in settings.fused_presets for r in fused_rows(p, settings, log)],
        "seeds": lambda: [r for p in settings.seed_presets for r in seed_rows(p, settings, log)],
        "sampling": lambda: [r for p in settings.sampling_presets for r in sampling_rows(p, settings, log)],
        "env": lambda: env_section(settings, log),
        "memory": lambda: memory_section(settings, log),
        "scaling": lambda: scaling_rows(settings, roofline(), log, result.get("updates")),
    }


def new_result(settings: BenchSettings) -> dict:
    """The result dictionary before any section ran (keys: ``RESULT_KEYS``)."""
    result: dict = {key: None for key in RESULT_KEYS}
    result.update(
        schema=SCHEMA_VERSION,
        mode=settings.mode,
        created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        machine=describe_machine(),
        load_average={"start": load_average(), "end": None},
        settings=recorded_settings(settings),
        errors={},
        skipped={},
        interrupted=None,
        seconds={},
        cpu_seconds={},
    )
    return result


def recorded_settings(settings: BenchSettings) -> dict:
    """The settings as a result records them: the reference checkouts by their folders' names, not their paths
    (the reference section records each agent file's sha256 and the checkout's commit)."""
    return {**settings.to_dict(), "reference_dirs": [Path(folder).name for folder in settings.reference_dirs]}


def run_benchmarks(
    settings: BenchSettings,
    log: Callable[[str], None] = print,
    codes: Mapping[str, ReferenceCode] | None = None,
) -> dict:
    """Run every section of ``settings`` (in order) and return the result dictionary (keys: ``RESULT_KEYS``).

    A failing section records its error and the run goes on; once ``settings.time_budget_s`` is spent the
    remaining sections are recorded as skipped; Ctrl-C stops the run and returns what was measured, with
    ``interrupted`` naming the section it stopped in.  ``codes``: the reference agents, already loaded
    (:func:`fidec.bench.reference.load_references`) for the reference section.
    """
    started, cpu_started = time.perf_counter(), _cpu_now()
    result = new_result(settings)
    m = result["machine"]
    log(
        f"fidec bench ({settings.mode}): {m['cpu_model']}, {m['usable_cores']} cores, jax {m['jax']} on {m['backend']}"
    )
    log(f"load average at start: {result['load_average']['start']}")
    sections = _sections(settings, result, log, codes)
    for name in settings.sections:
        elapsed = time.perf_counter() - started
        if settings.time_budget_s is not None and elapsed > settings.time_budget_s:
            result["skipped"][name] = f"the time budget of {settings.time_budget_s:.0f} s was spent"
            log(f"[{name}] skipped: {result['skipped'][name]}")
            continue
        log(f"[{name}]")
        start, cpu_start = time.perf_counter(), _cpu_now()
        try:
            result[name] = sections[name]()
        except KeyboardInterrupt:
            result["interrupted"] = name
            log(f"  interrupted in [{name}]: keeping the sections measured so far")
            break
        except Exception as exc:  # a failed section must not lose the others
            result["errors"][name] = f"{type(exc).__name__}: {exc}"
            log(f"  failed: {result['errors'][name]}\n{traceback.format_exc(limit=3)}")
        finally:
            result["seconds"][name] = time.perf_counter() - start
            result["cpu_seconds"][name] = _cpu_now() - cpu_start
    if result.get("matmul") and result["interrupted"] is None and not result["skipped"]:
        n = best_square_size(result) or max(settings.matmul_sizes)
        try:
            again = matmul_throughput(n, n, n, settings.windows, settings.window_seconds)
            result["matmul"]["square_at_end"] = again
        except KeyboardInterrupt:
            result["interrupted"] = "matmul at the end"
    finalise(result)
    result["load_average"]["end"] = load_average()
    result["seconds"]["total"] = time.perf_counter() - started
    result["cpu_seconds"]["total"] = _cpu_now() - cpu_started
    log(f"load average at end: {result['load_average']['end']}; total {result['seconds']['total']:.0f} s")
    return result


def _cpu_now() -> float:
    """CPU seconds used so far by this process (all threads) and its finished children."""
    if sys.platform == "win32":  # no resource module (children's CPU time is not counted)
        return time.process_time()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def best_square_size(result: dict) -> int | None:
    """n of the square product with the highest throughput in the matmul section (None before it ran)."""
    squares = (result.get("matmul") or {}).get("square") or []
    return max(squares, key=lambda r: r["gflop_per_s"])["shape"][0] if squares else None


def finalise(result: dict) -> dict:
    """Set the roofline denominator to the best measurement of the large square product in the run
    (start, end, and the profile's same-window one), recompute every roofline fraction against it,
    and compute the headline.  Idempotent."""
    mm = result.get("matmul")
    if mm:
        squares = list(mm["square"]) + ([mm["square_at_end"]] if mm.get("square_at_end") else [])
        same = (result.get("profile") or {}).get("matmul_same_windows")
        if same:
            squares.append(same)
        mm["roofline_gflop_per_s"] = max(s["gflop_per_s"] for s in squares)
        _refresh_fractions(result)
    result["headline"] = headline(result)
    return result


def _refresh_fractions(result: dict) -> None:
    """Recompute every roofline fraction against the final (best) matmul throughput."""
    roofline = result["matmul"]["roofline_gflop_per_s"]
    rows = list(result.get("updates") or []) + list(result.get("scaling") or [])
    rows += list((result.get("profile") or {}).get("variants") or [])
    for row in rows:
        row["roofline_fraction"] = row["gflop_per_s"] / roofline if roofline else None


# File names of the modes' results where they differ from the mode ("gpu" on a GPU: gpu-paper-scale.json).
RESULT_NAMES = {"gpu": "paper-scale"}


def default_result_name(mode: str, sections: tuple[str, ...] | None = None) -> str:
    """``<backend>-<mode>.json`` (e.g. cpu-quick.json; the gpu mode's is ``<backend>-paper-scale.json``); a
    run of only some sections gets their names appended (cpu-full-matmul-profile.json) so it replaces no
    full run.  The reference section adds no suffix."""
    every = set(SECTIONS) - {"reference"}
    named = () if sections is None or set(sections) - {"reference"} == every else sections
    suffix = "".join(f"-{s}" for s in named)
    return f"{jax.default_backend()}-{RESULT_NAMES.get(mode, mode)}{suffix}.json"


def write_result(result: dict, path: str | Path) -> Path:
    """Write ``result`` as indented JSON (non-finite floats as null), atomically."""
    return write_json_atomic(path, _finite(result), indent=1)


def _finite(value):
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value
