"""``fidec sweep SPEC``: run a sweep spec on Ray.

:func:`sweep_command` is registered on the main CLI in :mod:`fidec.cli`; ``app`` runs it on its own
(``python -m fidec.sweeps.commands SPEC``).  Every mistake a user can fix (a bad spec, Ray missing, a
cluster that cannot be reached, a sweep folder in use or damaged) is one line and exit code 2.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from fidec.errors import EXIT_FAILURE, EXIT_INTERRUPTED, exit_code_for_signal, fail, signal_name, user_errors
from fidec.sweeps.manifest import MANIFEST_NAME, read_manifest
from fidec.sweeps.runner import run_sweep
from fidec.sweeps.spec import SweepSpec, load_spec


def sweep_command(
    spec: Path = typer.Argument(..., help="Sweep spec file (.toml, .yaml or .yml); see docs/sweeps.md."),
    address: str | None = typer.Option(
        None,
        "--address",
        help="Ray cluster to run on: 'auto' (the cluster this machine has joined), HOST:6379, or "
        "ray://HOST:10001. Default: an embedded Ray on this machine, no set-up needed.",
    ),
    max_concurrent: int | None = typer.Option(
        None,
        "--max-concurrent",
        min=1,
        help="Trials in flight at once (default: as many as the cluster fits).",
    ),
    out_dir: Path | None = typer.Option(None, "--out-dir", help="Write here instead of the spec's out_dir."),
    num_cpus: int | None = typer.Option(
        None,
        "--num-cpus",
        min=1,
        help="Cores the embedded local Ray may use (default: all); ignored with --address.",
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Validate the spec and list its trials; run nothing (Ray is not needed)."
    ),
) -> None:
    """Run agents x tasks x seeds x settings from a spec file on Ray; rerun to skip finished trials and resume the rest."""
    console = Console(stderr=True)
    with user_errors():
        sweep_spec = load_spec(spec, out_dir=out_dir)
        if dry_run:
            _print_trials(sweep_spec)
            return
        try:
            outcome = run_sweep(
                sweep_spec, address=address, max_concurrent=max_concurrent, num_cpus=num_cpus, console=console
            )
        except KeyboardInterrupt as exc:
            signum = getattr(exc, "signum", None)
            by = f" by {signal_name(signum)}" if signum is not None else ""
            raise fail(
                f"interrupted{by}: the trials in flight were asked to save a checkpoint and stop; run the same "
                "command again to resume them",
                exit_code_for_signal(signum) if signum is not None else EXIT_INTERRUPTED,
            ) from None
    if not outcome.ok:
        raise fail(
            "some trials failed; fix the cause (see their logs) and run the same command again to retry them",
            EXIT_FAILURE,
        )
    typer.echo(f"report: fidec report {outcome.out_dir}")


app = typer.Typer(add_completion=False, pretty_exceptions_show_locals=False)
app.command("sweep")(sweep_command)


def _print_trials(spec: SweepSpec) -> None:
    """The trials of a spec with their state in an existing manifest (nothing is written)."""
    states = {}
    if (Path(spec.out_dir) / MANIFEST_NAME).exists():
        states = {k: r.state for k, r in read_manifest(spec.out_dir).trials.items()}
    trials = spec.trials()
    table = Table(title=f"sweep {spec.name!r}: {len(trials)} trials -> {spec.out_dir}")
    table.add_column("trial (label__task__seeds)", overflow="fold")
    table.add_column("agent")
    table.add_column("state")
    for trial in trials:
        table.add_row(trial.trial_id, trial.agent, states.get(trial.trial_id, "new"))
    Console().print(table)


if __name__ == "__main__":
    app()
