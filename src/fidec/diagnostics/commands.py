"""``fidec diagnose kl | perturbed-time`` and ``fidec demo``: thin Typer shells over the diagnostics.

Each command checks its options and ``--out`` before the work, writes a figure (PNG) and the numbers
behind it (JSON) to ``--out`` and prints a table.  Mistakes a user can fix end in one ``error:`` line and
exit code 2 (:func:`fidec.errors.user_errors`).
"""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from fidec.config import ConfigError
from fidec.diagnostics import behaviours, demo, kl, plots
from fidec.diagnostics.perturbed_time import METRICS, PerturbedTimeConfig, perturbed_time_study
from fidec.diagnostics.refinement import DemoConfig, quick_config
from fidec.errors import user_errors
from fidec.files import output_dir, write_json_atomic
from fidec.formatting import format_number

app = typer.Typer(
    name="diagnose",
    help="Where FD's quadratic is a faithful stand-in for the KL, and how its Fisher depends on t_eps.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


def scale_grid(scale_min: float, scale_max: float, num_scales: int) -> np.ndarray:
    """A log grid of c from ``scale_min`` to ``scale_max`` with c = 1 added when it lies inside."""
    if not 0 < scale_min < scale_max or num_scales < 3:
        raise ConfigError(
            f"need 0 < --scale-min < --scale-max and --num-scales >= 3, got {scale_min}, {scale_max}, {num_scales}"
        )
    grid = np.logspace(np.log10(scale_min), np.log10(scale_max), num_scales)
    if scale_min <= 1.0 <= scale_max:  # the refinement actually applied is c = 1: keep it on the grid
        grid = np.unique(np.append(grid, 1.0))
    return grid


def toy_kl(behaviour: str, field: str, scales, num_samples: int, seed: int) -> kl.KLScan:
    """The KL scan of one toy behaviour and displacement field (with the closed form when it exists)."""
    model = behaviours.make_behaviour(behaviour)
    key = jax.random.PRNGKey(seed)
    k_field, k_samples = jax.random.split(key)
    delta = behaviours.make_field(field, model, k_field)
    actions = model.sample(k_samples, num_samples)
    scan = kl.kl_scan(model.log_density, delta, actions, scales)
    if behaviour == "gaussian" and field in ("translation", "affine"):
        assert isinstance(model, behaviours.GaussianMixture)  # make_behaviour("gaussian"): one component
        zero = jnp.zeros((model.dim,))
        matrix, offset = jax.jacfwd(delta)(zero), delta(zero)
        closed = kl.gaussian_affine_kl(model.means[0], model.covariances[0], matrix, offset, scan.scales)
        scan = replace(scan, closed_form_kl=closed)
    return scan


class _Cost:
    """Wall-clock and CPU seconds since creation, and the machine's load, for the JSON record."""

    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def record(self) -> dict[str, float]:
        return {
            "runtime_s": time.perf_counter() - self.wall,
            "cpu_s": time.process_time() - self.cpu,
            "load_average_1min": os.getloadavg()[0],
        }


def _check_choice(option: str, noun: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{option}: unknown {noun} {value!r}; choose one of {', '.join(choices)}")


def _print_toy_scan(scan: kl.KLScan, behaviour: str, field: str) -> None:
    table = Table(title=f"{behaviour} / {field}: FD's quadratic valid (ratio in [0.9, 1.1]) up to "
                  f"c = {format_number(scan.valid_scale('quadratic'))}; second order up to "
                  f"c = {format_number(scan.valid_scale('second_order'))}")  # fmt: skip
    for column in ("c", "F-norm", "true KL", "FD quad", "2nd ord", "Jac term", "quad/true", "2nd/true"):
        table.add_column(column)
    for i in range(0, len(scan.scales), max(1, len(scan.scales) // 10)):
        table.add_row(*(format_number(float(v)) for v in (
            scan.scales[i], scan.fisher_norm[i], scan.true_kl[i], scan.quadratic_kl[i],
            scan.second_order_kl[i], scan.jacobian_term[i], scan.quadratic_ratio[i],
            scan.second_order_ratio[i],
        )))  # fmt: skip
    Console().print(table)


def _print_run_scan(record: dict) -> None:
    table = Table(title=f"{record['agent']} on {record['env']}, step {record['step']}, seed {record['seed']}: "
                  f"{record['fraction_inside_valid_region']:.0%} of states inside the valid region at c = 1")  # fmt: skip
    for column in ("state", "true KL", "FD quadratic", "FD quad. (F est.)", "second order",
                   "Jacobian term", "quad / true", "valid up to c"):  # fmt: skip
        table.add_column(column)
    for row in record["states"]:
        table.add_row(
            str(row["dataset_index"]), *(format_number(row[k]) for k in (
                "true_kl", "quadratic_kl", "quadratic_kl_estimated", "second_order_kl",
                "jacobian_term", "quadratic_ratio")), format_number(row["valid_scale_quadratic"]),
        )  # fmt: skip
    Console().print(table)


@app.command("kl")
def kl_command(
    behaviour: str = typer.Option("band", help="Toy behaviour: gaussian, mixture or band."),
    field: str = typer.Option("mlp", help="Displacement field delta(a): translation, affine or mlp."),
    scale_min: float = typer.Option(1e-2, help="Smallest scale c."),
    scale_max: float = typer.Option(3.0, help="Largest scale c."),
    num_scales: int = typer.Option(19, help="Points of the log grid of c (1.0 is always added)."),
    num_samples: int = typer.Option(8192, help="Behaviour samples for the Monte-Carlo averages."),
    run_dir: Path | None = typer.Option(
        None, "--run-dir", help="A trained fd or iso run: scan its refinement on sampled dataset states."
    ),
    checkpoint: int | None = typer.Option(None, "--checkpoint", help="Checkpoint step (default: newest)."),
    num_states: int = typer.Option(4, help="--run-dir: dataset states to scan."),
    num_actions: int = typer.Option(128, help="--run-dir: base actions per state."),
    seed_index: int = typer.Option(0, help="--run-dir: which of the run's training seeds."),
    seed: int = typer.Option(0, help="Random seed."),
    out: Path = typer.Option(Path("diagnostics"), "--out", help="Output folder."),
) -> None:
    """True KL(T#pi_b || pi_b) against FD's quadratic and the full second-order expansion, over the scale c.

    Toy mode (default): an exact behaviour density and a displacement field normalised to RMS 1, so c
    is the displacement in action units.  With --run-dir: a trained agent's residual on sampled states,
    through the flow's ODE log-density (the unclipped map a_hat + delta(s, a_hat); c = 1 is the
    refinement the agent applies).
    """
    with user_errors():
        scales = scale_grid(scale_min, scale_max, num_scales)
        if run_dir is None:
            _check_choice("--behaviour", "behaviour", behaviour, behaviours.BEHAVIOURS)
            _check_choice("--field", "displacement field", field, behaviours.FIELDS)
            folder = output_dir(out)
            cost = _Cost()
            scan = toy_kl(behaviour, field, scales, num_samples, seed)
            stem = f"kl_{behaviour}_{field}"
            title = f"{behaviour} behaviour, {field} displacement field"
            figure = plots.plot_kl_scan(scan, folder / f"{stem}.png", title)
            record = {"behaviour": behaviour, "field": field, "num_samples": num_samples, "seed": seed}
            write_json_atomic(folder / f"{stem}.json", {**record, **scan.to_dict(), **cost.record()})
            _print_toy_scan(scan, behaviour, field)
        else:
            config = kl.KLValidityConfig(scales=tuple(float(c) for c in scales), num_actions=num_actions)
            folder = output_dir(out)
            cost = _Cost()
            result = kl.kl_validity_for_run(
                str(run_dir), checkpoint, num_states, seed_index, jax.random.PRNGKey(seed), config
            )
            stem = f"kl_run_step{result.step}"
            figure = plots.plot_run_kl(result, folder / f"{stem}.png")
            record = {**result.to_dict(), "num_actions": num_actions, **cost.record()}
            write_json_atomic(folder / f"{stem}.json", record)
            _print_run_scan(record)
    typer.echo(f"wrote {figure} and {figure.with_suffix('.json')}")


@app.command("perturbed-time")
def perturbed_time_command(
    eps_min: float = typer.Option(1e-7, help="Smallest eps = 1 - t_eps."),
    eps_max: float = typer.Option(0.3, help="Largest eps."),
    num_eps: int = typer.Option(49, help="Points of the log grid of eps."),
    num_samples: int = typer.Option(8192, help="Behaviour samples (shared by every eps and precision)."),
    samples_per_state: int = typer.Option(
        4, help="M, samples per Fisher estimate (FD's fisher.num_samples)."
    ),
    flow_steps: int = typer.Option(
        3000, help="Flow-matching steps of an fp32 flow fitted to the behaviour (0: analytic only)."
    ),
    seed: int = typer.Option(0, help="Random seed."),
    out: Path = typer.Option(Path("diagnostics"), "--out", help="Output folder."),
) -> None:
    """Error of FD's Fisher estimate against the analytic S^-1 versus eps, in fp32 and fp64 (log-log).

    Anisotropic 2-D Gaussian behaviour; Tweedie score of the analytic velocity field (and of a fitted
    flow), Monte-Carlo noise removed; the measured optimum eps is compared with the delta^(1/4) rule.
    """
    with user_errors():
        if not 0 < eps_min < eps_max < 1 or num_eps < 3:
            raise ConfigError(
                f"need 0 < --eps-min < --eps-max < 1 and --num-eps >= 3, got {eps_min}, {eps_max}, {num_eps}"
            )
        eps = tuple(float(e) for e in np.logspace(np.log10(eps_min), np.log10(eps_max), num_eps))
        config = PerturbedTimeConfig(
            eps=eps,
            num_samples=num_samples,
            samples_per_state=samples_per_state,
            flow_steps=flow_steps,
            seed=seed,
        )
        folder = output_dir(out)
        cost = _Cost()
        result = perturbed_time_study(config)
        figure = plots.plot_perturbed_time(result, folder / "perturbed_time.png")
        record = {**result.to_dict(), "flow_steps": flow_steps, "seed": seed, **cost.record()}
        write_json_atomic(folder / "perturbed_time.json", record)
    table = Table(title=f"Optimum eps of the Fisher estimate (M = {samples_per_state} samples per estimate)")
    for column in ("estimator", "metric", "optimum eps", "t_eps", "error at optimum", "error at eps=0.02",
                   "delta^(1/4)", "bias meets round-off at eps"):  # fmt: skip
        table.add_column(column)
    for curve in result.curves:
        rule = result.unit_roundoff["fp64" if "fp64" in curve.name else "fp32"] ** 0.25
        j = int(np.argmin(np.abs(np.log(curve.eps / 0.02))))
        models = result.error_models(curve)
        for metric in METRICS:
            i = int(np.nanargmin(curve.error[metric]))
            edge = " (grid edge)" if i in (0, len(curve.eps) - 1) else ""
            model = models[metric]
            crossing = "-" if model is None else f"{model['crossing_eps']:.2g}"
            table.add_row(curve.name, metric, f"{curve.eps[i]:.2g}{edge}", f"{1 - curve.eps[i]:.6g}",
                          f"{curve.error[metric][i]:.2e}", f"{curve.error[metric][j]:.2e}", f"{rule:.2g}",
                          crossing)  # fmt: skip
    Console().print(table)
    typer.echo(f"wrote {figure} and {figure.with_suffix('.json')}")


def demo_command(
    out: Path = typer.Option(Path("fidec-demo"), "--out", help="Output folder."),
    quick: bool = typer.Option(
        False, "--quick", help="A smaller, faster run (a smoke test, not for reading)."
    ),
    seed: int = typer.Option(0, help="Random seed."),
) -> None:
    """Isotropic vs Fisher refinement of a flow policy on 2-D anisotropic behaviours (about a minute on CPU).

    Fits a flow to a thin curved band and to two elongated lanes, trains residuals under the isotropic
    (L2) penalty, FD's Fisher penalty and FD with the Jacobian term at equal reward, and writes
    demo.png, demo_frontier.png, demo_jacobian.png, summary.md and summary.json with the reward reached
    and the true KL of each.
    """
    with user_errors():
        config = quick_config(seed) if quick else DemoConfig(seed=seed)
        paths = demo.run_demo(out, config)
    typer.echo(paths["summary"].read_text())
    typer.echo(f"wrote {', '.join(str(p) for p in paths.values())}")


if __name__ == "__main__":
    app()
