"""The ``fidec`` command line (Typer).  Each command is a thin shell over a library function."""

from __future__ import annotations

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


def main() -> None:
    app()


if __name__ == "__main__":
    main()
