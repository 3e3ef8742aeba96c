"""Figures of the diagnostics (matplotlib, Agg backend): KL validity, perturbed time, and the demo.

Every figure carries one message (its title states it), labelled axes with units, text of at least 9 pt
and legends outside the data.  Files are written atomically.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import wraps
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.typing import RcKeyType

from fidec.diagnostics.kl import VALID_BAND, KLScan, RunKLResult
from fidec.diagnostics.perturbed_time import PerturbedTimeResult
from fidec.diagnostics.refinement import PENALTIES, PENALTY_LABELS, BehaviourDemo
from fidec.files import atomic_file
from fidec.formatting import format_number

# Text sizes in points: nothing below 9 (issue 17: readable at a glance).
STYLE: dict[RcKeyType, float] = {
    "font.size": 10.5,
    "axes.titlesize": 11,
    "axes.labelsize": 10.5,
    "xtick.labelsize": 9.5,
    "ytick.labelsize": 9.5,
    "legend.fontsize": 9.5,
    "figure.titlesize": 12,
}
PENALTY_COLOURS = {
    "isotropic": "tab:red",
    "fisher": "tab:blue",
    "fisher_official": "tab:orange",
    "fisher_jacobian": "tab:green",
    "fisher_sym_jacobian": "tab:cyan",
}
KL_COLOURS = {
    "true": "black",
    "quadratic": "tab:blue",
    "second_order": "tab:orange",
    "estimated": "tab:purple",
}
BEHAVIOUR_TITLES = {"band": "curved band", "mixture": "two lanes", "gaussian": "elongated Gaussian"}
SCALE_LABEL = "scale c of the displacement c·δ(a)  (= RMS ‖c·δ‖, action units)"
LABEL_BOX = {"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.85}
RUN_SCALE_LABEL = "scale c of the refinement c·δ(s, â)  (c = 1: as trained)"


def _styled(plot: Callable[..., Path]) -> Callable[..., Path]:
    """Draw under :data:`STYLE` (text sizes are fixed when the artists are created)."""

    @wraps(plot)
    def wrapper(*args, **kwargs) -> Path:
        with plt.rc_context(STYLE):
            return plot(*args, **kwargs)

    return wrapper


def _save(fig, path: str | Path, dpi: int = 100) -> Path:
    path = Path(path)
    try:
        with atomic_file(path, "wb") as stream:
            fig.savefig(stream, format="png", dpi=dpi, bbox_inches="tight")
    finally:
        plt.close(fig)
    return path


def _ratio_limits(ratios: np.ndarray, band: tuple[float, float]) -> tuple[float, float]:
    finite = ratios[np.isfinite(ratios)]
    lo, hi = (float(np.min(finite)), float(np.max(finite))) if finite.size else (0.5, 1.5)
    return max(min(lo, band[0]) - 0.05, -0.5), min(max(hi, band[1]) + 0.05, 3.0)


def _format_scale(value: float | None) -> str:
    return "no scale" if value is None else f"c = {value:.3g}"


# ---------------------------------------------------------------------------------------------
# KL validity of a toy displacement field
# ---------------------------------------------------------------------------------------------


@_styled
def plot_kl_scan(scan: KLScan, path: str | Path, title: str, band: tuple[float, float] = VALID_BAND) -> Path:
    """Two panels over the scale c: the KL and its approximations (top axis: the Fisher norm of c·δ), and
    their ratios to the true KL with the validity band.  One legend, below the panels."""
    fig, (ax_kl, ax_ratio) = plt.subplots(1, 2, figsize=(12, 4.8))
    x = scan.scales
    ax_kl.plot(x, scan.true_kl, "-", color=KL_COLOURS["true"], lw=2.2, label="true KL (change of variables)")
    lo = np.clip(scan.true_kl - 2 * scan.true_kl_stderr, 1e-300, None)
    ax_kl.fill_between(x, lo, scan.true_kl + 2 * scan.true_kl_stderr, color="grey", alpha=0.3, lw=0,
                       label="true KL ± 2 standard errors")  # fmt: skip
    ax_kl.plot(x, scan.quadratic_kl, "--", color=KL_COLOURS["quadratic"], lw=2, label="FD quadratic ½E[δᵀFδ]")
    ax_kl.plot(x, scan.second_order_kl, ":", color=KL_COLOURS["second_order"], lw=2.4,
               label="full second order (+ ½E[tr J²])")  # fmt: skip
    if scan.quadratic_kl_estimated is not None:
        ax_kl.plot(x, scan.quadratic_kl_estimated, "-.", color=KL_COLOURS["estimated"], lw=1.5,
                   label="FD quadratic, F estimated at t_eps")  # fmt: skip
    if scan.closed_form_kl is not None:
        ax_kl.plot(
            x, scan.closed_form_kl, "o", color="black", ms=4, mfc="none", label="closed form (Gaussian)"
        )
    ax_kl.set_xscale("log")
    ax_kl.set_yscale("log")
    ax_kl.set_xlabel(SCALE_LABEL)
    ax_kl.set_ylabel("KL(T#p ‖ p)  (nats)")
    ax_kl.set_title("KL and its approximations")
    ax_kl.grid(True, which="major", alpha=0.3)
    per_unit = float(scan.fisher_norm[0] / scan.scales[0])  # the Fisher norm is linear in c
    top = ax_kl.secondary_xaxis("top", functions=(lambda c: c * per_unit, lambda n: n / per_unit))
    top.set_xlabel("Fisher norm √E[(cδ)ᵀF(cδ)]  (√nats)")

    ax_ratio.axhspan(band[0], band[1], color="tab:green", alpha=0.12,
                     label=f"ratio within [{band[0]}, {band[1]}]")  # fmt: skip
    ax_ratio.axhline(1.0, color="black", lw=0.8)
    quad_ratio = np.where(scan.resolved, scan.quadratic_ratio, np.nan)  # hide round-off-level KLs
    second_ratio = np.where(scan.resolved, scan.second_order_ratio, np.nan)
    ax_ratio.plot(x, quad_ratio, "o-", color=KL_COLOURS["quadratic"], ms=4, label="FD quadratic / true KL")
    ax_ratio.plot(
        x, second_ratio, "s-", color=KL_COLOURS["second_order"], ms=4, label="second order / true KL"
    )
    valid = scan.valid_scale("quadratic")
    if valid is not None:
        ax_ratio.axvline(valid, color=KL_COLOURS["quadratic"], ls=":", lw=1.5,
                         label=f"FD quadratic valid up to c = {valid:.3g}")  # fmt: skip
    ax_ratio.set_xscale("log")
    ax_ratio.set_ylim(*_ratio_limits(np.concatenate([quad_ratio, second_ratio]), band))
    ax_ratio.set_xlabel(SCALE_LABEL)
    ax_ratio.set_ylabel("approximation / true KL  (ratio)")
    ax_ratio.set_title("Ratio to the true KL")
    ax_ratio.grid(True, which="major", alpha=0.3)

    handles, labels = [], []
    for ax in (ax_kl, ax_ratio):
        h, lab = ax.get_legend_handles_labels()
        handles += h
        labels += lab
    fig.legend(handles, labels, loc="lower center", ncol=3, bbox_to_anchor=(0.5, -0.01), frameon=False)
    fig.suptitle(f"{title}: FD's quadratic within 10 % of the true KL up to {_format_scale(valid)}")
    fig.tight_layout(rect=(0, 0.14, 1, 1))
    return _save(fig, path)


# ---------------------------------------------------------------------------------------------
# KL validity of a trained run
# ---------------------------------------------------------------------------------------------


@_styled
def plot_run_kl(result: RunKLResult, path: str | Path, band: tuple[float, float] = VALID_BAND) -> Path:
    """Per dataset state: the true KL and FD's quadratic over c, and their ratio (c = 1 is the applied
    refinement).  States are colours, quantities are line styles; the legend sits right of the panels."""
    fig, (ax_kl, ax_ratio) = plt.subplots(1, 2, figsize=(12.5, 4.8))
    colours = plt.cm.viridis(np.linspace(0.0, 0.9, max(len(result.reports), 1)))
    ratios = []
    for report, colour in zip(result.reports, colours, strict=True):
        scan = report.scan
        shown = lambda values, scan=scan: np.where(scan.resolved, values, np.nan)  # hide round-off KLs
        ax_kl.plot(scan.scales, shown(scan.true_kl), "-", color=colour, lw=2)
        ax_kl.plot(scan.scales, scan.quadratic_kl, "--", color=colour, lw=1.3)
        if scan.quadratic_kl_estimated is not None:
            ax_kl.plot(scan.scales, scan.quadratic_kl_estimated, ":", color=colour, lw=1.3)
        ax_ratio.plot(scan.scales, shown(scan.quadratic_ratio), "o-", color=colour, ms=3.5)
        ax_ratio.plot(scan.scales, shown(scan.second_order_ratio), "s--", color=colour, ms=3, lw=1, alpha=0.8)
        ratios += [shown(scan.quadratic_ratio), shown(scan.second_order_ratio)]
    ax_kl.set_xscale("log")
    ax_kl.set_yscale("log")
    ax_kl.set_ylabel("KL  (nats)")
    ax_kl.set_title("True KL and FD's quadratic")
    ax_ratio.axhspan(band[0], band[1], color="tab:green", alpha=0.12)
    ax_ratio.axhline(1.0, color="black", lw=0.8)
    ax_ratio.set_xscale("log")
    ax_ratio.set_ylim(*_ratio_limits(np.concatenate(ratios) if ratios else np.array([]), band))
    ax_ratio.set_ylabel("approximation / true KL  (ratio)")
    ax_ratio.set_title("Ratio to the true KL")
    lo = min(r.scan.scales[0] for r in result.reports) * 0.8
    hi = max(r.scan.scales[-1] for r in result.reports) * 1.25
    for ax in (ax_kl, ax_ratio):
        ax.set_xlim(lo, hi)
        ax.axvline(1.0, color="tab:red", ls=":", lw=1.2)
        ax.set_xlabel(RUN_SCALE_LABEL)
        ax.grid(True, which="major", alpha=0.3)

    states = [
        Line2D([], [], color=c, lw=3, label=f"state {i}")
        for i, c in zip(result.state_indices, colours, strict=True)
    ]
    keys = [
        Line2D([], [], color="grey", ls="-", lw=2, label="true KL (hidden below\nfp32 round-off)"),
        Line2D([], [], color="grey", ls="--", label="FD quadratic, exact F"),
        Line2D([], [], color="grey", ls=":", label="FD quadratic, F as FD\nestimates it"),
        Line2D([], [], color="grey", marker="o", label="FD quadratic / true"),
        Line2D([], [], color="grey", marker="s", ls="--", label="second order / true"),
        Patch(color="tab:green", alpha=0.25, label=f"ratio within [{band[0]}, {band[1]}]"),
        Line2D([], [], color="tab:red", ls=":", label="c = 1 (as trained)"),
    ]
    fig.legend(handles=states + keys, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    inside = sum(r.inside_valid_region for r in result.reports)
    fig.suptitle(
        f"{result.agent} on {result.env} (step {result.step}, seed {result.seed}): FD's quadratic within "
        f"10 % of the true KL up to c = 1 on {inside} of {len(result.reports)} dataset states"
    )
    fig.tight_layout()
    return _save(fig, path)


# ---------------------------------------------------------------------------------------------
# Perturbed time
# ---------------------------------------------------------------------------------------------


@_styled
def plot_perturbed_time(result: PerturbedTimeResult, path: str | Path) -> Path:
    """Log-log error of the Fisher estimate vs eps = 1 - t_eps (raw F and trace-normalised F_n).

    Colours are estimators, line styles the error's parts; one legend below the panels.
    """
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.6))
    colours = {"analytic fp32": "tab:blue", "analytic fp64": "tab:orange", "flow fp32": "tab:green"}
    for ax, metric, title in (
        (axes[0], "raw", "Fisher F (true scale)"),
        (axes[1], "normalized", "trace-normalised F_n (what FD uses)"),
    ):
        for curve in result.curves:
            colour = colours.get(curve.name)
            err = curve.error[metric]
            ax.loglog(curve.eps, err, "-", color=colour, lw=2)
            ax.loglog(curve.eps, curve.deviation[metric], ":", color=colour, lw=1.2)
            i = int(np.nanargmin(err))
            ax.plot(curve.eps[i], err[i], "*", color=colour, ms=14, mec="black")
            ax.annotate(f"ε = {curve.eps[i]:.1e}", (curve.eps[i], err[i]), xytext=(8, -14),
                        textcoords="offset points", fontsize=9.5, color=colour, bbox=LABEL_BOX)  # fmt: skip
        ax.loglog(result.curves[0].eps, result.bias[metric], "--", color="grey", lw=1.5)
        for name, delta in result.unit_roundoff.items():
            ax.axvline(delta**0.25, color="black", ls=(0, (3, 3)) if name == "fp32" else (0, (1, 2)), lw=1)
        ax.set_xlabel("ε = 1 − t_eps  (perturbed time, log scale)")
        ax.set_ylabel("relative error ‖F̂ − S⁻¹‖_F / ‖S⁻¹‖_F")
        ax.set_title(title)
        ax.grid(True, which="major", alpha=0.3)
        floor = min(np.nanmin(c.error[metric]) for c in result.curves)
        ax.set_ylim(max(floor * 0.05, 1e-13), 10.0)  # room for the optimum's label below its star
    handles = [Line2D([], [], color=colours.get(c.name), lw=3, label=c.name) for c in result.curves]
    handles += [
        Line2D([], [], color="grey", ls="-", lw=2, label="total error"),
        Line2D([], [], color="grey", ls=":", lw=1.2, label="round-off (flow: network + round-off) part"),
        Line2D(
            [], [], color="grey", marker="*", ms=12, mec="black", ls="", label="optimum ε (value beside it)"
        ),
        Line2D([], [], color="grey", ls="--", lw=1.5, label="bias of p_t (exact arithmetic)"),
    ]
    handles += [
        Line2D([], [], color="black", ls=(0, (3, 3)) if name == "fp32" else (0, (1, 2)), lw=1,
               label=f"δ^(1/4), {name} (δ = {delta:.1e})")
        for name, delta in result.unit_roundoff.items()
    ]  # fmt: skip
    fig.legend(handles=handles, loc="lower center", ncol=4, bbox_to_anchor=(0.5, -0.01), frameon=False)
    estimates = result.num_samples // result.samples_per_state
    fig.suptitle(
        "Fisher estimate from the Tweedie score at t_eps = 1 − ε: bias falls with ε, fp32 round-off grows as 1/ε\n"
        f"(error against the analytic S⁻¹; M = {result.samples_per_state} samples per estimate, "
        f"RMS over {estimates} estimates, Monte-Carlo part removed)"
    )
    fig.tight_layout(rect=(0, 0.13, 1, 1))
    return _save(fig, path)


# ---------------------------------------------------------------------------------------------
# Demo
# ---------------------------------------------------------------------------------------------


def _density_background(ax, demo: BehaviourDemo) -> None:
    """Behaviour log-density (shaded down to 8 nats below its peak) and the reward's level sets."""
    grid = demo.grid
    log_p = grid["log_density"] - grid["log_density"].max()
    ax.contourf(grid["x"], grid["y"], np.clip(log_p, -8.0, 0.0), levels=np.linspace(-8.0, 0.0, 9),
                cmap="Greys", alpha=0.6)  # fmt: skip
    ax.contour(grid["x"], grid["y"], log_p, levels=[-4.0], colors="grey", linewidths=0.6)
    reward = -((grid["x"] - demo.goal[0]) ** 2 + (grid["y"] - demo.goal[1]) ** 2)
    ax.contour(grid["x"], grid["y"], reward, levels=6, colors="tab:olive", linewidths=0.7,
               linestyles="dashed", alpha=0.8)  # fmt: skip
    ax.plot(*demo.goal, "*", color="gold", ms=18, mec="black")
    ax.set_xlim(-1, 1)
    ax.set_ylim(-1, 1)
    ax.set_aspect("equal")
    ax.set_xlabel("action a₁  (normalised units)")
    ax.set_ylabel("action a₂  (normalised units)")


@_styled
def plot_demo_refinements(
    demos: list[BehaviourDemo],
    fraction: float,
    penalties: Sequence[str],
    path: str | Path,
    num_arrows: int = 60,
) -> Path:
    """Rows: behaviours; columns: ``penalties``.  Base actions (grey), refined actions and displacement
    arrows at the reward fraction ``fraction``; the panel title gives the true KL paid."""
    nrows, ncols = len(demos), len(penalties)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(4.3 * ncols, 4.1 * nrows + 1.2), squeeze=False, layout="constrained"
    )
    for row, demo in zip(axes, demos, strict=True):
        for ax, penalty in zip(row, penalties, strict=True):
            _density_background(ax, demo)
            base, refined = demo.base_actions, demo.refined[penalty]
            colour = PENALTY_COLOURS[penalty]
            ax.scatter(*base.T, s=4, color="0.2", alpha=0.5, zorder=2)
            ax.scatter(*refined.T, s=6, color=colour, alpha=0.6, zorder=3)
            idx = np.linspace(0, len(base) - 1, num_arrows).astype(int)
            d = refined[idx] - base[idx]
            ax.quiver(base[idx, 0], base[idx, 1], d[:, 0], d[:, 1], angles="xy", scale_units="xy", scale=1,
                      color=colour, width=0.004, alpha=0.9)  # fmt: skip
            r = demo.main(penalty, fraction)
            folds = (
                f"\nT folds on {r.fold_fraction:.0%}: the KL is a lower bound" if r.fold_fraction > 0 else ""
            )
            ax.set_title(
                f"{BEHAVIOUR_TITLES.get(demo.name, demo.name)}, {PENALTY_LABELS[penalty]}\n"
                f"reward {r.reward:.3f}: true KL {format_number(r.true_kl)} nats{folds}"
            )
    handles = [
        Line2D([], [], color="0.2", marker="o", ls="", ms=5, label="base actions â (flow)"),
        *[Line2D([], [], color=PENALTY_COLOURS[p], marker="o", ls="", ms=5,
                 label=f"refined â + δ, {PENALTY_LABELS[p]}") for p in penalties],
        Line2D([], [], color="gold", marker="*", mec="black", ls="", ms=14, label="reward goal"),
        Line2D([], [], color="tab:olive", ls="--", lw=0.9, label="reward level sets"),
        Patch(color="grey", alpha=0.5, label="behaviour density (log, 8 nats shown)"),
    ]  # fmt: skip
    fig.legend(handles=handles, loc="outside lower center", ncol=2, frameon=False)
    names = " vs ".join(PENALTY_LABELS[p] for p in penalties)
    fig.suptitle(f"{names} at equal reward:\nwhere the actions move, and the true KL they pay")
    return _save(fig, path)


@_styled
def plot_demo_frontier(demos: list[BehaviourDemo], fraction: float, path: str | Path) -> Path:
    """One panel per behaviour: the true KL each penalty pays for each reward target (circled: the runs
    drawn in the refinement figures)."""
    fig, axes = plt.subplots(1, len(demos), figsize=(5.4 * len(demos), 4.6), squeeze=False)
    for ax, demo in zip(axes[0], demos, strict=True):
        for penalty in PENALTIES:
            rewards, kls = demo.frontier(penalty)
            ax.plot(rewards, kls, "o-", color=PENALTY_COLOURS[penalty], label=PENALTY_LABELS[penalty])
            folded = [r for r in demo.results if r.penalty == penalty and r.fold_fraction > 0]
            ax.plot([r.reward for r in folded], [r.true_kl for r in folded], "x", color="black", ms=9, mew=2)
            r = demo.main(penalty, fraction)
            ax.plot(r.reward, r.true_kl, "o", ms=12, mfc="none", mec=PENALTY_COLOURS[penalty], mew=2)
        ax.axvline(demo.base_reward, color="grey", ls=":")
        ax.set_yscale("log")
        ax.set_xlabel("mean reward reached  −‖a − goal‖²  (higher is better)")
        ax.set_ylabel("true KL(T#π_b ‖ π_b)  (nats)")
        ax.set_title(BEHAVIOUR_TITLES.get(demo.name, demo.name))
        ax.grid(True, which="both", alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    handles += [
        Line2D(
            [],
            [],
            color="grey",
            marker="o",
            ms=12,
            mfc="none",
            mew=2,
            ls="",
            label=f"runs drawn (f = {fraction})",
        ),
        Line2D([], [], color="grey", ls=":", label="base policy's reward"),
        Line2D(
            [],
            [],
            color="black",
            marker="x",
            ms=9,
            mew=2,
            ls="",
            label="T folds: the KL shown\nis a lower bound",
        ),
    ]
    labels += [h.get_label() for h in handles[len(labels) :]]
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    fig.suptitle("KL paid for reward: lower is better at equal reward")
    fig.tight_layout()
    return _save(fig, path)
