"""The ``fidec parity`` command: fidec's updates against the reference code's, number for number."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from fidec import __version__
from fidec.errors import EXIT_FAILURE, fail, user_errors
from fidec.files import output_dir, write_json_atomic, write_text_atomic
from fidec.formatting import listed
from fidec.parity.check import SCALES
from fidec.parity.run import PRECISIONS, machine, markdown_table, plan, references, run_precision, summary

DEFAULT_OUT = Path("runs/parity-update")


def reference_codes() -> str:
    """'REPOSITORY for AGENT and AGENT, ...': which checkout proves which agents, from the registry."""
    by_repository: dict[str, list[str]] = {}
    for agent, reference in references().items():
        by_repository.setdefault(reference.repository.removeprefix("https://"), []).append(agent)
    return ", ".join(f"{repo} for {listed(agents)}" for repo, agents in by_repository.items())


REFERENCE_CODES = reference_codes()


def parity_command(
    reference: list[Path] = typer.Option(
        ...,
        "--reference",
        help=f"A checkout of a reference code (repeatable): {REFERENCE_CODES}.  Needs their dependencies: "
        "pip install 'fidec\\[reference]'.",
    ),
    agent: list[str] = typer.Option(
        [],
        "--agent",
        help="Only these agents (repeatable; default: every agent whose reference is among the checkouts).",
    ),
    case: list[str] = typer.Option([], "--case", help="Only these cases (repeatable), e.g. official-grid."),
    scale: list[str] = typer.Option(
        [], "--scale", help=f"Scales (repeatable; default: {', '.join(SCALES)})."
    ),
    precision: list[str] = typer.Option(
        [], "--precision", help="float32 and/or float64 (repeatable; default: both)."
    ),
    updates: int = typer.Option(100, "--updates", min=1, help="Consecutive updates compared."),
    out: Path = typer.Option(
        DEFAULT_OUT,
        "--out",
        help="Folder for parity.json and parity.md; each finished comparison is kept in its comparisons/ "
        "folder, and running again with the same --out reuses them.",
    ),
) -> None:
    """Prove fidec's agents compute what their reference code computes: the same initial parameters, batches
    and random draws through both updates, every metric, gradient, parameter, target, Adam moment and action
    compared, in float32 and float64 (docs/parity.md)."""
    with user_errors():
        jobs, notes = plan(reference, agent, case, scale)
        precisions = precision or list(PRECISIONS)
        bad = [p for p in precisions if p not in PRECISIONS]
        if bad:
            raise fail(f"unknown precision {bad[0]!r}; choose {', '.join(PRECISIONS)}")
        folder = output_dir(out)
    console = Console(stderr=True)
    for note in notes:
        console.print(f"note: {note}")
    console.print(f"{len(jobs)} comparison(s) x {len(precisions)} precision(s), {updates} updates each")
    start = time.perf_counter()
    results = []
    with user_errors():
        for p in precisions:
            results += run_precision(jobs, p, updates, folder / "comparisons", log=console.print)
    record: dict[str, Any] = {
        "fidec_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "wall_s": round(time.perf_counter() - start, 1),
        "machine": machine(),
        "updates": updates,
        "summary": summary(results),
        "results": results,
    }
    write_json_atomic(folder / "parity.json", record)
    write_text_atomic(folder / "parity.md", markdown_table(record))
    table = Table(title=f"largest relative error, {updates} updates (full table: {folder / 'parity.md'})")
    for column in ("agent", "case", "scale", "precision", "status", "worst quantity", "rel. error"):
        table.add_column(column)
    for r in results:
        worst = ("", "")
        if r["status"] == "compared":
            everything = {**r["first_update"], **r["last_update"], **r["metrics_every_update"]}
            name, errors = max(everything.items(), key=lambda item: item[1]["rel"])
            worst = (name.strip(), f"{errors['rel']:.1e}")
        table.add_row(r["agent"], r["case"], r["scale"], r["precision"], r["status"], *worst)
    Console().print(table)
    if not record["summary"]["passed"]:
        for failure in record["summary"]["failures"]:
            console.print(f"error: {failure}")
        raise typer.Exit(EXIT_FAILURE)
    console.print(
        f"every float64 comparison agrees to {record['summary']['float64_rel_tolerance']:g}; {folder}"
    )
