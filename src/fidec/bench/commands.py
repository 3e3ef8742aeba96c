"""The ``fidec bench`` command (also ``python -m fidec.bench``): run, write JSON, render the docs.

Everything a run needs is checked before it starts (the mode, the sections, the official checkout, where
the JSON and the page go).  A finished or interrupted run's result is written before the page is rendered,
and a result that cannot be written where asked goes to a temporary file instead of being lost.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import typer

from fidec.bench.reference import load_reference
from fidec.bench.render import render_docs
from fidec.bench.run import default_result_path, run_benchmarks, write_result
from fidec.bench.settings import SECTIONS, settings_for
from fidec.errors import EXIT_FAILURE, EXIT_INTERRUPTED, UserError, fail, user_errors
from fidec.files import WriteError, output_file

DEFAULT_RESULTS_DIR = Path("benchmarks/results")
DEFAULT_DOCS = Path("docs/benchmarks.md")
PRESETS = ("gpu",)


class BenchOptionError(UserError):
    """A ``fidec bench`` option that cannot work (the message names it and what to give instead)."""


def bench_command(
    quick: bool = typer.Option(
        False, "--quick", help="Fewer windows and configurations: under 5 minutes on 2 idle CPU cores."
    ),
    tiny: bool = typer.Option(
        False,
        "--tiny",
        help="2 x 32 networks and a few calls: checks the suite (or --preset gpu's plan) runs, measures "
        "nothing useful.",
    ),
    preset: str = typer.Option(
        None,
        "--preset",
        help="gpu: the quick bench plus fused blocks K = 1/10/100/1000 and 1/4/8/16 vmapped seeds at the "
        "paper's settings, within 8 minutes (benchmarks/gpu.sh runs it).",
    ),
    reference: Path = typer.Option(
        None,
        "--reference",
        help="Checkout of the official FD code (github.com/ARC0127/Fisher-Decorator): time its update in "
        "turns with fidec's, same shapes and settings (needs the official code's dependencies: the 'reference' extra of fidec).",
    ),
    only: list[str] = typer.Option(
        None,
        "--only",
        help=f"Run only these sections (repeatable): {', '.join(SECTIONS)}.",
    ),
    out: Path = typer.Option(
        None,
        "--out",
        help="Result JSON file, or an existing folder to put it in (default: RESULTS_DIR/BACKEND-MODE.json, "
        "e.g. cpu-quick.json; none for --tiny).",
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
    """Benchmark fidec: update speed, roofline fraction, the official code, fused blocks, seeds, sampling,
    env, memory, scaling."""
    with user_errors():
        if render_only:
            path = render_docs(results_dir, output_file(docs or DEFAULT_DOCS, DEFAULT_DOCS.name))
            typer.echo(f"rendered {path}")
            return
        settings = _settings(quick, tiny, preset, reference, only)
        code = load_reference(reference) if reference is not None else None
        smoke = settings.smallest
        default_name = default_result_path(results_dir, settings.mode, settings.sections)
        target = None
        if out is not None or not smoke:
            target = output_file(out, default_name.name, default_dir=results_dir)
        docs_target = None
        if docs is not None or not smoke:
            docs_target = output_file(docs or DEFAULT_DOCS, DEFAULT_DOCS.name)

    result = run_benchmarks(settings, log=typer.echo, code=code)
    if target is not None:
        target = _write_keeping_the_result(result, target)
        typer.echo(f"wrote {target}")
    if docs_target is not None:
        try:
            # Every saved result in --results-dir, plus this run's when it was saved elsewhere (or not at all).
            typer.echo(f"rendered {render_docs(results_dir, docs_target, extra=[result])}")
        except Exception as exc:  # the result is saved: say so and how to retry, in one line
            saved = f"the result is saved in {target}" if target else "the result was not saved (no --out)"
            raise fail(
                f"rendering {docs_target} failed ({type(exc).__name__}: {exc}); {saved}; "
                "retry with `fidec bench --render-only`",
                EXIT_FAILURE,
            ) from None
    if result["interrupted"]:
        raise fail(
            f"interrupted in [{result['interrupted']}]; the sections measured so far are kept",
            EXIT_INTERRUPTED,
        )


def _settings(quick: bool, tiny: bool, preset: str | None, reference: Path | None, only: list[str] | None):
    if preset is not None and preset not in PRESETS:
        raise BenchOptionError(f"--preset {preset}: unknown; choose from {', '.join(PRESETS)}")
    if quick and (tiny or preset):
        raise BenchOptionError("--quick cannot be combined with --tiny or --preset; choose one")
    unknown = [s for s in only or [] if s not in SECTIONS]
    if unknown:
        raise BenchOptionError(
            f"--only {', '.join(unknown)}: unknown sections; choose from {', '.join(SECTIONS)}"
        )
    if only and "reference" in only and reference is None:
        raise BenchOptionError("--only reference needs the official code: add --reference DIR")
    mode = preset or ("tiny" if tiny else "quick" if quick else "full")
    return settings_for(
        mode,
        tuple(only) if only else None,
        reference_dir=str(reference) if reference is not None else None,
        smallest=tiny,
    )


def _write_keeping_the_result(result: dict, target: Path) -> Path:
    """Write the result to ``target``; when that fails (disk full, folder removed), to a temporary file."""
    try:
        return write_result(result, target)
    except (WriteError, OSError) as exc:
        fallback = Path(tempfile.gettempdir()) / f"fidec-bench-{result['created'].replace(':', '')}.json"
        write_result(result, fallback)
        raise fail(f"{exc}; the result was written to {fallback} instead", EXIT_FAILURE) from None
