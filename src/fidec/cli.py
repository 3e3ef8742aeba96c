"""The ``fidec`` command line (Typer).  Each command is a thin shell over a library function.

:func:`main` guards the console: output that cannot be written to stderr (a closed pipe, a full device, a
closed terminal) is dropped -- a training run goes on, its ``train.log`` keeps every line -- and a command
whose stdout cannot be written (its result) ends with one ``error:`` line and exit code 2.
"""

from __future__ import annotations

import errno
import os
import sys
from typing import IO, Any

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from fidec import __version__
from fidec.agents import REGISTRY
from fidec.bench.commands import bench_command
from fidec.data.commands import app as data_app
from fidec.diagnostics.commands import app as diagnose_app
from fidec.diagnostics.commands import demo_command
from fidec.diagnostics.flow_fit import fisher_check
from fidec.parity.commands import parity_command
from fidec.reports.commands import report_command
from fidec.sweeps.commands import sweep_command
from fidec.training.commands import TRAIN_EPILOG, eval_command, presets_command, train_command

app = typer.Typer(
    name="fidec",
    help="Fisher Decorator and flow-policy baselines for offline and offline-to-online RL.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"fidec {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Print the version."
    ),
) -> None:
    """Fisher Decorator (FD) and its baselines (FQL, isotropic refinement, BC-flow) in JAX."""


@app.command("fisher-check")
def fisher_check_command(
    steps: int = typer.Option(3000, help="Flow-matching steps."),
    seed: int = typer.Option(0, help="Random seed."),
    t_eps: float = typer.Option(0.98, help="Perturbed time t_eps = 1 - eps at which the score is read."),
) -> None:
    """Fit a flow to a 2-D anisotropic Gaussian and print its Fisher estimate beside the analytic one."""
    r = fisher_check(steps=steps, seed=seed, t_eps=t_eps)
    fmt = lambda m: np.array2string(np.asarray(m), precision=3, suppress_small=True)
    table = Table(title=f"Trace-normalised Fisher metric F_n at t_eps = {t_eps} (flow fit: {steps} steps)")
    table.add_column("quantity")
    table.add_column("value")
    table.add_row("behaviour covariance S", fmt(r["cov"]))
    table.add_row("flow sample covariance (ODE, 100 Euler steps)", fmt(r["sample_cov"]))
    table.add_row("analytic F_n of p_t (Sigma_t^-1)", fmt(r["fisher_analytic_t"]))
    table.add_row("analytic F_n of pi_b (S^-1)", fmt(r["fisher_analytic_behaviour"]))
    table.add_row("estimated F_n, tweedie score (default)", fmt(r["fisher_tweedie"]))
    table.add_row("estimated F_n, velocity score (official code)", fmt(r["fisher_velocity"]))
    Console().print(table)


@app.command("agents")
def agents_command() -> None:
    """List the agents: what each is, its action modes (the first its evaluation default), the mode it explores
    with online, and the code it is proven against (``fidec parity``)."""
    table = Table(title="fidec agents (fidec train --agent NAME; --show-config lists an agent's keys)")
    for column in ("agent", "method", "action modes", "online", "reference code"):
        table.add_column(column, overflow="fold")
    for name, spec in REGISTRY.items():
        default = spec.config().action_mode
        modes = [default] + [m for m in spec.modes if m != default]
        reference = f"{spec.reference.repository} {spec.reference.agent_file}" if spec.reference else "-"
        table.add_row(name, spec.summary, ", ".join(modes), spec.online_mode or "-", reference)
    Console().print(table)


app.add_typer(data_app, name="data")
app.command("train", epilog=TRAIN_EPILOG)(train_command)
app.command("eval")(eval_command)
app.command("presets")(presets_command)
app.command("sweep")(sweep_command)
app.command("report")(report_command)
app.command("bench")(bench_command)
app.command("parity")(parity_command)
app.add_typer(diagnose_app, name="diagnose")
app.command("demo")(demo_command)


class GuardedStream:
    """A console stream whose failed writes are recorded (:attr:`failure`) instead of raised; once one failed,
    the rest is dropped."""

    def __init__(self, stream: IO[str]):
        self.stream = stream
        self.failure: OSError | None = None

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        if self.failure is None:
            try:
                self.stream.write(text)
            except OSError as exc:
                self.failure = exc
        return len(text)

    def flush(self) -> None:
        if self.failure is None:
            try:
                self.stream.flush()
            except OSError as exc:
                self.failure = exc

    def __getattr__(self, name: str) -> Any:  # isatty, fileno, encoding, ... of the real stream
        return getattr(self.stream, name)


def _silence(stream: GuardedStream) -> None:
    """Point a failed stream's file descriptor at /dev/null, so that the interpreter's last flush succeeds."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.stream.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def main() -> None:
    """The ``fidec`` command, with its console guarded (see the module docstring)."""
    out, err = GuardedStream(sys.stdout), GuardedStream(sys.stderr)
    sys.stdout, sys.stderr = out, err
    code: int | str | None = 0
    try:
        app()
    except SystemExit as exc:
        code = exc.code
    out.flush()
    err.flush()
    if out.failure is not None:
        reason = os.strerror(out.failure.errno) if out.failure.errno else str(out.failure)
        what = "the reader closed the pipe" if out.failure.errno == errno.EPIPE else reason
        err.write(
            f"error: cannot write the output to stdout ({what}); send it to a file or a pipe that reads it all\n"
        )
        err.flush()
        code = 2
    for stream in (out, err):
        if stream.failure is not None:
            _silence(stream)
    sys.exit(code)


if __name__ == "__main__":
    main()
