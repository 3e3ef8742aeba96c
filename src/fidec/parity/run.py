"""Running the update-level parity check for several agents, cases, scales and precisions, and its report.

Each precision runs in its own process (float64 needs JAX's x64 mode from the start): the parent starts
``python -m fidec.parity.worker`` with ``JAX_ENABLE_X64`` set or not, the worker writes its results as JSON,
and the parent gathers them into one record (``parity.json``) and a Markdown table (``parity.md``).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fidec.agents import REGISTRY
from fidec.agents.base import Reference
from fidec.errors import UserError
from fidec.parity.check import REL_TOL_F64, SCALES
from fidec.parity.load import holds

PRECISIONS = ("float32", "float64")


class ParityRunError(UserError):
    """The parity check cannot run as asked (the message says why)."""


@dataclass(frozen=True)
class Job:
    """One comparison: an agent's reference case at a scale, against the checkout that holds its reference."""

    agent: str
    case: str
    scale: str
    checkout: str


def references() -> dict[str, Reference]:
    """Every agent with a reference code to compare with."""
    return {name: spec.reference for name, spec in REGISTRY.items() if spec.reference is not None}


def plan(
    checkouts: Iterable[str | Path],
    agents: Iterable[str] = (),
    cases: Iterable[str] = (),
    scales: Iterable[str] = (),
) -> tuple[list[Job], list[str]]:
    """(the jobs to run, notes on what is skipped and why).  Each agent's reference is looked up in the given
    checkouts (the one holding its agent file); an agent asked for by name without one is an error."""
    roots = [Path(c).expanduser().resolve() for c in checkouts]
    missing = [str(r) for r in roots if not r.is_dir()]
    if missing:
        raise ParityRunError(f"--reference {missing[0]}: no such folder")
    asked = list(agents)
    known = references()
    unknown = [a for a in asked if a not in REGISTRY]
    if unknown:
        raise ParityRunError(f"unknown agent {unknown[0]!r}; agents: {', '.join(REGISTRY)}")
    no_reference = [a for a in asked if a not in known]
    if no_reference:
        raise ParityRunError(
            f"agent {no_reference[0]!r} has no reference code; agents with one: {', '.join(known)}"
        )
    scale_names = list(scales) or list(SCALES)
    bad_scale = [s for s in scale_names if s not in SCALES]
    if bad_scale:
        raise ParityRunError(f"unknown scale {bad_scale[0]!r}; scales: {', '.join(SCALES)}")
    jobs, notes = [], []
    for agent in asked or list(known):
        reference = known[agent]
        found = [r for r in roots if holds(r, reference)]
        if not found:
            message = f"{agent}: no checkout holds {reference.agent_file} (clone {reference.repository})"
            if asked:
                raise ParityRunError(message + " and pass it with --reference")
            notes.append(message + "; skipped")
            continue
        case_names = [c for c in cases if c in reference.cases] if cases else list(reference.cases)
        if cases and not case_names:
            notes.append(
                f"{agent}: none of the cases {list(cases)} (its cases: {', '.join(reference.cases)})"
            )
        jobs += [Job(agent, case, scale, str(found[0])) for case in case_names for scale in scale_names]
    if not jobs:
        raise ParityRunError("nothing to compare: " + "; ".join(notes or ["no agent matched"]))
    return jobs, notes


def job_file(done_dir: str | Path, job: Job, precision: str, updates: int) -> Path:
    """Where one finished comparison is kept: ``DONE_DIR/AGENT__CASE__SCALE__PRECISION__uUPDATES.json``."""
    return Path(done_dir) / f"{job.agent}__{job.case}__{job.scale}__{precision}__u{updates}.json"


def finished(done_dir: str | Path, job: Job, precision: str, updates: int) -> dict[str, Any] | None:
    """A comparison an earlier run into the same folder finished against the same checkout folder (None: none,
    or its file is unreadable, in which case it is run again)."""
    path = job_file(done_dir, job, precision, updates)
    try:
        result = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if result.get("reference", {}).get("checkout") != Path(job.checkout).name:
        return None
    return result


def run_precision(
    jobs: list[Job],
    precision: str,
    updates: int,
    done_dir: str | Path,
    log: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """Run ``jobs`` at ``precision`` in a fresh process (x64 mode for float64); their results, in order.

    Each result is written to ``done_dir`` as it finishes (:func:`job_file`); a job already finished there is
    reused, so a stopped ``fidec parity`` picks up where it stopped when run again with the same ``--out``."""
    if precision not in PRECISIONS:
        raise ParityRunError(f"unknown precision {precision!r}; choose {', '.join(PRECISIONS)}")
    Path(done_dir).mkdir(parents=True, exist_ok=True)
    todo = [j for j in jobs if finished(done_dir, j, precision, updates) is None]
    if len(todo) < len(jobs):
        log(f"{precision}: {len(jobs) - len(todo)} comparison(s) reused from {done_dir}")
    if todo:
        env = dict(os.environ)
        env["JAX_ENABLE_X64"] = "1" if precision == "float64" else "0"
        with tempfile.TemporaryDirectory(prefix="fidec-parity-") as tmp:
            spec_path = Path(tmp) / "jobs.json"
            spec_path.write_text(json.dumps({"jobs": [j.__dict__ for j in todo], "updates": updates}))
            command = [sys.executable, "-m", "fidec.parity.worker", str(spec_path), str(done_dir)]
            process = subprocess.run(command, env=env, stdout=sys.stderr, stderr=sys.stderr, check=False)
        if process.returncode != 0:
            raise ParityRunError(
                f"the {precision} comparison stopped (exit code {process.returncode}); its output is above. "
                f"The comparisons it finished are kept in {done_dir}: run the same command again to go on"
            )
    results = [finished(done_dir, j, precision, updates) for j in jobs]
    lost = [j for j, r in zip(jobs, results, strict=True) if r is None]
    if lost:
        raise ParityRunError(f"the {precision} comparison of {lost[0]} left no result in {done_dir}")
    return [r for r in results if r is not None]


def machine() -> dict[str, Any]:
    import jax

    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "jax": jax.__version__,
        "backend": jax.default_backend(),
    }


def summary(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Whether every float64 comparison agrees to the tolerance (and every setting matched)."""
    failures = []
    for r in results:
        label = f"{r['agent']} {r['case']} {r['scale']} {r['precision']}"
        if r["status"] != "compared":
            failures.append(f"{label}: {r['status']} ({', '.join(r.get('failures', []))})")
        elif r["precision"] == "float64" and r["failing_at_float64_tolerance"]:
            failures.append(f"{label}: {', '.join(r['failing_at_float64_tolerance'])}")
    return {"passed": not failures, "failures": failures, "float64_rel_tolerance": REL_TOL_F64}


# -- the report ---------------------------------------------------------------------------------------------

# (row title, which quantities): each row shows the largest relative error of its quantities.
GROUPS: tuple[tuple[str, Callable[[str], bool]], ...] = (
    ("losses and metrics", lambda q: q.startswith("metric ")),
    ("gradients", lambda q: "gradient" in q),
    ("parameters and targets", lambda q: ("parameters" in q or "target" in q) and "Adam" not in q),
    ("Adam moments and step count", lambda q: "Adam" in q),
    ("actions of every mode", lambda q: q.startswith("action ")),
)


def worst(quantities: dict[str, dict[str, float]], keep: Callable[[str], bool]) -> float | None:
    """The largest relative error among the kept quantities (None: none of them)."""
    values = [e["rel"] for q, e in quantities.items() if keep(q.strip())]
    return max(values) if values else None


def cells(run: dict[str, Any] | None, keep: Callable[[str], bool], metrics: bool) -> list[str]:
    """(after the first update, after the last) of one precision's run; metrics: the last cell is the largest
    over every update."""
    if run is None:
        return ["", ""]
    if run["status"] != "compared":
        return [run["status"], run["status"]]
    last = run["metrics_every_update"] if metrics else run["last_update"]
    return [_fmt(worst(run["first_update"], keep)), _fmt(worst(last, keep))]


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.1e}"


def markdown_table(record: dict[str, Any]) -> str:
    """The update-level table: agent x case x scale x quantity, the largest relative error in float32 and
    float64 after the first update and after the last (losses and metrics: the largest over every update)."""
    by_key: dict[tuple, dict[str, dict]] = {}
    for r in record["results"]:
        by_key.setdefault((r["agent"], r["case"], r["scale"]), {})[r["precision"]] = r
    updates = max((r["updates"] for r in record["results"]), default=0)
    lines = [
        f"| agent | case | scale | quantity | float32, update 1 | float32, update {updates} "
        f"| float64, update 1 | float64, update {updates} |",
        "|---|---|---|---|---:|---:|---:|---:|",
    ]
    for (agent, case, scale), runs in by_key.items():
        for title, keep in GROUPS:
            metrics = title == "losses and metrics"
            row = cells(runs.get("float32"), keep, metrics) + cells(runs.get("float64"), keep, metrics)
            lines.append(f"| {agent} | {case} | {scale} | {title} | " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"
