"""The ``fidec bench`` command (also ``python -m fidec.bench``): run, write JSON, render the docs."""

from __future__ import annotations

from pathlib import Path

import typer

DEFAULT_RESULTS_DIR = Path("benchmarks/results")
DEFAULT_DOCS = Path("docs/benchmarks.md")


def bench_command(
    quick: bool = typer.Option(
        False, "--quick", help="Fewer windows and configurations: under 5 minutes on 2 idle CPU cores."
    ),
    tiny: bool = typer.Option(
        False,
        "--tiny",
        help="2 x 32 networks and a few calls (about 80 CPU-seconds, mostly compiling): checks the suite runs, "
        "measures nothing useful.",
    ),
    only: list[str] = typer.Option(
        None,
        "--only",
        help="Run only these sections (repeatable): matmul, updates, profile, fisher, fused, "
        "seeds, sampling, env, memory, scaling.",
    ),
    out: Path = typer.Option(
        None,
        "--out",
        help="Result JSON path (default: RESULTS_DIR/BACKEND-MODE.json, e.g. cpu-quick.json; none for --tiny).",
    ),
    results_dir: Path = typer.Option(
        DEFAULT_RESULTS_DIR, help="Folder of result JSON files rendered into the docs."
    ),
    docs: Path = typer.Option(
        None,
        "--docs",
        help="Markdown file rendered from every result in --results-dir and this run's "
        "(default: docs/benchmarks.md; none for --tiny).",
    ),
    render_only: bool = typer.Option(
        False, "--render-only", help="Only re-render the docs from existing results."
    ),
) -> None:
    """Benchmark fidec: update speed, roofline fraction, fused blocks, seeds, sampling, env, memory, scaling."""
    from fidec.bench.render import render_docs

    if quick and tiny:
        raise typer.BadParameter("choose at most one of --quick and --tiny")
    mode = "tiny" if tiny else "quick" if quick else "full"
    docs = docs if docs is not None else (None if tiny else DEFAULT_DOCS)
    if render_only:
        path = render_docs(results_dir, docs or DEFAULT_DOCS)
        typer.echo(f"rendered {path}")
        return

    from fidec.bench.run import default_result_path, run_benchmarks, write_result
    from fidec.bench.settings import SECTIONS, settings_for

    if only:
        unknown = [s for s in only if s not in SECTIONS]
        if unknown:
            raise typer.BadParameter(
                f"unknown sections {unknown}; choose from {', '.join(SECTIONS)}", param_hint="--only"
            )
    settings = settings_for(mode, tuple(only) if only else None)
    result = run_benchmarks(settings, log=lambda line: typer.echo(line))
    target = (
        out
        if out is not None
        else (None if tiny else default_result_path(results_dir, mode, settings.sections))
    )
    if target is not None:
        typer.echo(f"wrote {write_result(result, target)}")
    if docs is not None:
        # Every saved result in --results-dir, plus this run's when it was saved elsewhere (or not at all).
        typer.echo(f"rendered {render_docs(results_dir, docs, extra=[result])}")
