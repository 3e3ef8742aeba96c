"""The ``fidec bench`` command (also ``python -m fidec.bench``): run the benchmarks and write one JSON result.

A run writes only where it is told: its result file, into ``--out`` (a ``.json`` file, or a folder that
receives ``<backend>-<mode>.json``), by default into a new folder of the current directory whose name the
command prints.  It renders no page: docs/benchmarks.md is rendered from the committed results by a
maintainer's script of the repository (``python benchmarks/render_page.py``).  Everything a run needs is
checked before it starts (the mode, the sections, the official checkout, where the result goes); a result
that cannot be written where asked goes to a temporary file instead of being lost.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path

import typer

from fidec.bench.reference import load_references
from fidec.bench.run import default_result_name, run_benchmarks, write_result
from fidec.bench.settings import SECTIONS, BenchSettings, settings_for
from fidec.errors import EXIT_FAILURE, EXIT_INTERRUPTED, UserError, fail, user_errors
from fidec.files import WriteError, output_dir, output_file

PRESETS = ("gpu",)
DEFAULT_FOLDER = "fidec-bench-{stamp}"  # in the current directory: a new folder per run


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
    reference: list[Path] = typer.Option(
        None,
        "--reference",
        help="Checkout of reference code (repeatable): the official FD code (github.com/ARC0127/Fisher-Decorator) "
        "and/or seohongpark/fql. Every agent whose reference it holds is timed in turns with it at the paper's "
        "settings, same batch (needs the reference code's dependencies: the 'reference' extra of fidec).",
    ),
    only: list[str] = typer.Option(
        None,
        "--only",
        help=f"Run only these sections (repeatable): {', '.join(SECTIONS)}.",
    ),
    out: Path = typer.Option(
        None,
        "--out",
        help="Where the result goes: a .json file, or a folder (created if missing) that receives "
        "BACKEND-MODE.json, e.g. cpu-quick.json (default: a new folder fidec-bench-DATE-TIME here).",
    ),
) -> None:
    """Benchmark fidec: update speed, roofline fraction, each agent against its reference code, fused blocks,
    seeds, sampling, env, memory, scaling.  Writes one JSON result and nothing else."""
    with user_errors():
        settings = _settings(quick, tiny, preset, reference or [], only)
        codes = load_references(settings.reference_dirs) if settings.reference_dirs else None
        target = result_target(out, settings)
    typer.echo(f"the result goes to {target}")
    if codes is not None:
        typer.echo("reference code: " + ", ".join(f"{a} ({c.root.name})" for a, c in codes.items()))
    result = run_benchmarks(settings, log=typer.echo, codes=codes)
    typer.echo(f"wrote {_write_keeping_the_result(result, target)}")
    if result["interrupted"]:
        raise fail(
            f"interrupted in [{result['interrupted']}]; the sections measured so far are kept",
            EXIT_INTERRUPTED,
        )


def result_target(out: Path | None, settings: BenchSettings) -> Path:
    """The result file of ``--out``, checked (and its folder created) before the run: a path ending in
    .json is the file; any other path is a folder receiving the default name; none is a new folder here."""
    name = default_result_name(settings.mode, settings.sections)
    if out is not None and out.suffix == ".json":
        return output_file(out, name)
    folder = (
        out
        if out is not None
        else Path(DEFAULT_FOLDER.format(stamp=dt.datetime.now().strftime("%Y%m%d-%H%M%S")))
    )
    return output_dir(folder) / name


def _settings(
    quick: bool, tiny: bool, preset: str | None, reference: list[Path], only: list[str] | None
) -> BenchSettings:
    if preset is not None and preset not in PRESETS:
        raise BenchOptionError(f"--preset {preset}: unknown; choose from {', '.join(PRESETS)}")
    if quick and (tiny or preset):
        raise BenchOptionError("--quick cannot be combined with --tiny or --preset; choose one")
    unknown = [s for s in only or [] if s not in SECTIONS]
    if unknown:
        raise BenchOptionError(
            f"--only {', '.join(unknown)}: unknown sections; choose from {', '.join(SECTIONS)}"
        )
    if only and "reference" in only and not reference:
        raise BenchOptionError("--only reference needs reference code: add --reference DIR")
    mode = preset or ("tiny" if tiny else "quick" if quick else "full")
    return settings_for(
        mode,
        tuple(only) if only else None,
        reference_dirs=tuple(str(r) for r in reference),
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
