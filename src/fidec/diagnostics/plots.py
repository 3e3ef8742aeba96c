"""Figures of the diagnostics (matplotlib, Agg backend): KL validity, perturbed time, and the demo."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

if TYPE_CHECKING:
    from fidec.diagnostics.demo import BehaviourDemo
    from fidec.diagnostics.kl import KLScan
    from fidec.diagnostics.perturbed_time import PerturbedTimeResult

PENALTY_COLOURS = {
    "isotropic": "tab:red",
    "fisher": "tab:blue",
    "fisher_jacobian": "tab:green",
    "fisher_sym_jacobian": "tab:cyan",
}
KL_COLOURS = {"true": "black", "quadratic": "tab:blue", "second_order": "tab:orange", "jacobian": "tab:green"}


def _save(fig, path: str | Path, dpi: int = 110) -> Path:
    path = Path(path)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return path


# ---------------------------------------------------------------------------------------------
# KL validity
# ---------------------------------------------------------------------------------------------


def _kl_curves(ax, x, scan: KLScan) -> None:
    ax.plot(x, scan.true_kl, "-", color=KL_COLOURS["true"], lw=2.2, label="true KL (change of variables)")
    lo = np.clip(scan.true_kl - 2 * scan.true_kl_stderr, 1e-300, None)
    ax.fill_between(x, lo, scan.true_kl + 2 * scan.true_kl_stderr, color="grey", alpha=0.3, lw=0)
    ax.plot(x, scan.quadratic_kl, "--", color=KL_COLOURS["quadratic"], lw=2, label="FD quadratic ½E[δᵀFδ]")
    ax.plot(
        x, scan.second_order_kl, ":", color=KL_COLOURS["second_order"], lw=2.4,
        label="full second order (+ ½E[tr J²])",
    )  # fmt: skip
    if scan.quadratic_kl_estimated is not None:
        ax.plot(
            x, scan.quadratic_kl_estimated, "-.", color="tab:purple", lw=1.5,
            label="FD quadratic, F estimated at t_eps",
        )  # fmt: skip
    if scan.closed_form_kl is not None:
        ax.plot(
            x, scan.closed_form_kl, "o", color="black", ms=3.5, mfc="none", label="closed form (Gaussian)"
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_ylabel("KL (nats)")
    ax.grid(True, which="major", alpha=0.3)


def plot_kl_scan(scan: KLScan, path: str | Path, title: str, band: tuple[float, float] = (0.9, 1.1)) -> Path:
    """Three panels: KL vs c, KL vs Fisher norm of delta, and the ratios to the true KL vs c."""
    fig, axes = plt.subplots(1, 3, figsize=(17, 5.2))
    _kl_curves(axes[0], scan.scales, scan)
    axes[0].set_xlabel("scale c of the displacement c·δ(a)")
    axes[0].set_title("KL against the scale c")
    axes[0].legend(fontsize=8, loc="upper left")

    _kl_curves(axes[1], scan.fisher_norm, scan)
    axes[1].set_xlabel("Fisher norm of the displacement  √E[δᵀFδ]")
    axes[1].set_title("KL against the Fisher norm of δ")

    ax = axes[2]
    ax.axhspan(band[0], band[1], color="tab:green", alpha=0.12, label=f"valid band [{band[0]}, {band[1]}]")
    ax.axhline(1.0, color="black", lw=0.8)
    quad_ratio = np.where(scan.resolved, scan.quadratic_ratio, np.nan)  # hide round-off-level KLs
    second_ratio = np.where(scan.resolved, scan.second_order_ratio, np.nan)
    ax.plot(
        scan.scales,
        quad_ratio,
        "o-",
        color=KL_COLOURS["quadratic"],
        ms=3.5,
        label="FD quadratic / true",
    )
    ax.plot(
        scan.scales, second_ratio, "s-", color=KL_COLOURS["second_order"], ms=3.5,
        label="second order / true",
    )  # fmt: skip
    valid = scan.valid_scale("quadratic")
    if valid is not None:
        ax.axvline(
            valid, color=KL_COLOURS["quadratic"], ls=":", lw=1.5, label=f"FD valid up to c = {valid:.3g}"
        )
    ax.set_xscale("log")
    finite = np.concatenate([quad_ratio, second_ratio])
    finite = finite[np.isfinite(finite)]
    lo, hi = (np.min(finite), np.max(finite)) if finite.size else (0.5, 1.5)
    ax.set_ylim(max(min(lo, band[0]) - 0.05, -0.5), min(max(hi, band[1]) + 0.05, 3.0))
    ax.set_xlabel("scale c of the displacement c·δ(a)")
    ax.set_ylabel("approximation / true KL")
    ax.set_title("Ratio to the true KL")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.suptitle(title, fontsize=12)
    fig.tight_layout()
    return _save(fig, path)


# ---------------------------------------------------------------------------------------------
# Perturbed time
# ---------------------------------------------------------------------------------------------


def plot_perturbed_time(result: PerturbedTimeResult, path: str | Path) -> Path:
    """Log-log error of the Fisher estimate vs eps = 1 - t_eps (raw F and trace-normalised F_n)."""
    fig, axes = plt.subplots(1, 2, figsize=(15, 6.8))
    colours = {"analytic fp32": "tab:blue", "analytic fp64": "tab:orange", "flow fp32": "tab:green"}
    for ax, metric, title in (
        (axes[0], "raw", "Fisher F (true scale)"),
        (axes[1], "normalized", "trace-normalised F_n (what FD uses)"),
    ):
        for curve in result.curves:
            colour = colours.get(curve.name, None)
            err = curve.error[metric]
            ax.loglog(curve.eps, err, "-", color=colour, lw=2, label=f"{curve.name}: total error")
            ax.loglog(
                curve.eps,
                curve.deviation[metric],
                ":",
                color=colour,
                lw=1.2,
                label=f"{curve.name}: "
                + ("round-off" if curve.name.startswith("analytic") else "network + round-off"),
            )
            i = int(np.argmin(err))
            ax.plot(
                curve.eps[i],
                err[i],
                "*",
                color=colour,
                ms=14,
                mec="black",
                label=f"{curve.name}: optimum (ε shown beside it)",
            )
            ax.annotate(f"ε = {curve.eps[i]:.1e}", (curve.eps[i], err[i]), xytext=(8, -14),
                        textcoords="offset points", fontsize=8.5, color=colour)  # fmt: skip
        ax.loglog(
            result.curves[0].eps,
            result.bias[metric],
            "--",
            color="grey",
            lw=1.5,
            label="bias of p_t (exact arithmetic)",
        )
        for name, delta in result.unit_roundoff.items():
            ax.axvline(
                delta**0.25,
                color="black",
                ls=(0, (3, 3)) if name == "fp32" else (0, (1, 2)),
                lw=1,
                label=f"δ^(1/4), {name} (δ = {delta:.1e})",
            )
        ax.set_xlabel("ε = 1 - t_eps")
        ax.set_ylabel("relative Frobenius error vs analytic S⁻¹")
        ax.set_title(title)
        ax.grid(True, which="major", alpha=0.3)
        floor = min(np.nanmin(c.error[metric]) for c in result.curves)
        ax.set_ylim(max(floor * 0.3, 1e-12), 10.0)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=8.5, loc="lower center", ncol=4, bbox_to_anchor=(0.5, -0.01))
    fig.suptitle(
        f"Perturbed time: Fisher estimate from the Tweedie score at t_eps = 1 - ε, against the analytic S⁻¹ "
        f"(M = {result.samples_per_state} samples per estimate, RMS over {result.num_samples // result.samples_per_state}"
        " estimates; Monte-Carlo part removed)",
        fontsize=11.5,
    )
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    return _save(fig, path)


# ---------------------------------------------------------------------------------------------
# Demo
# ---------------------------------------------------------------------------------------------


def _density_background(ax, demo: BehaviourDemo, strong: bool) -> None:
    """Behaviour log-density (shaded down to 8 nats below its peak) and the reward's level sets."""
    grid = demo.grid
    log_p = grid["log_density"] - grid["log_density"].max()
    levels = np.linspace(-8.0, 0.0, 9)
    ax.contourf(grid["x"], grid["y"], np.clip(log_p, -8.0, 0.0), levels=levels, cmap="Greys",
                alpha=0.9 if strong else 0.5)  # fmt: skip
    ax.contour(grid["x"], grid["y"], log_p, levels=[-4.0], colors="grey", linewidths=0.6)
    ax.contour(
        grid["x"], grid["y"], -((grid["x"] - demo.goal[0]) ** 2 + (grid["y"] - demo.goal[1]) ** 2),
        levels=6, colors="tab:olive", linewidths=0.7, linestyles="dashed", alpha=0.8,
    )  # fmt: skip
    ax.plot(*demo.goal, "*", color="gold", ms=18, mec="black", label="reward goal")
    ax.set_xlim(-1, 1)
    ax.set_ylim(-1, 1)
    ax.set_aspect("equal")
    ax.set_xlabel("action a₁")
    ax.set_ylabel("action a₂")


def plot_demo(demos: list[BehaviourDemo], fraction: float, path: str | Path, num_arrows: int = 70) -> Path:
    """Per behaviour: the behaviour and base samples, the refinement of each penalty, and the frontier."""
    from fidec.diagnostics.demo import PENALTIES, PENALTY_LABELS

    ncols = 2 + len(PENALTIES)
    fig, axes = plt.subplots(len(demos), ncols, figsize=(4.3 * ncols, 4.4 * len(demos)), squeeze=False)
    for row, demo in zip(axes, demos, strict=True):
        ax = row[0]
        _density_background(ax, demo, strong=True)
        ax.scatter(*demo.base_actions.T, s=4, color="tab:purple", alpha=0.6, label="base samples (flow)")
        ax.set_title(f"{demo.name}: behaviour log-density (grey),\nflow samples, reward level sets (dashed)")
        ax.legend(fontsize=7.5, loc="lower left")

        for ax, penalty in zip(row[1 : 1 + len(PENALTIES)], PENALTIES, strict=True):
            _density_background(ax, demo, strong=False)
            base, refined = demo.base_actions, demo.refined[penalty]
            colour = PENALTY_COLOURS[penalty]
            ax.scatter(*base.T, s=3, color="grey", alpha=0.5, label="base a_hat")
            ax.scatter(*refined.T, s=4, color=colour, alpha=0.7, label="refined a_hat + δ")
            idx = np.linspace(0, len(base) - 1, num_arrows).astype(int)
            d = refined[idx] - base[idx]
            ax.quiver(
                base[idx, 0], base[idx, 1], d[:, 0], d[:, 1], angles="xy", scale_units="xy", scale=1,
                color=colour, width=0.004, alpha=0.9,
            )  # fmt: skip
            r = demo.main(penalty, fraction)
            ax.set_title(f"{PENALTY_LABELS[penalty]}\nreward {r.reward:.3f}, true KL {r.true_kl:.2f} nats")
            ax.legend(fontsize=7.5, loc="lower left")

        ax = row[-1]
        for penalty in PENALTIES:
            rewards, kls = demo.frontier(penalty)
            ax.plot(rewards, kls, "o-", color=PENALTY_COLOURS[penalty], label=PENALTY_LABELS[penalty])
            r = demo.main(penalty, fraction)
            ax.plot(r.reward, r.true_kl, "o", ms=11, mfc="none", mec=PENALTY_COLOURS[penalty], mew=2)
        ax.axvline(demo.base_reward, color="grey", ls=":", label="base policy reward")
        ax.set_yscale("log")
        ax.set_xlabel("mean reward reached")
        ax.set_ylabel("true KL(T#π_b ‖ π_b)  (nats)")
        ax.set_title(f"{demo.name}: KL paid for reward\n(circled: the runs shown)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7.5, loc="upper left")
    fig.suptitle("Isotropic vs Fisher refinement of a flow policy at equal reward", fontsize=13)
    fig.tight_layout()
    return _save(fig, path, dpi=80)  # a wide figure: 80 dpi keeps it readable and small


# ---------------------------------------------------------------------------------------------
# KL validity of a trained run
# ---------------------------------------------------------------------------------------------


def plot_run_kl(result, path: str | Path, band: tuple[float, float] = (0.9, 1.1)) -> Path:
    """Per state: true KL and FD's quadratic vs c, and their ratio (c = 1 is the applied refinement)."""
    fig, axes = plt.subplots(1, 3, figsize=(17, 5.2))
    colours = plt.cm.viridis(np.linspace(0.0, 0.9, max(len(result.reports), 1)))
    for report, index, colour in zip(result.reports, result.state_indices, colours, strict=True):
        scan = report.scan
        true_kl = np.where(scan.resolved, scan.true_kl, np.nan)  # below the round-off floor: not drawn
        axes[0].plot(scan.scales, true_kl, "-", color=colour, lw=2, label=f"state {index}: true KL")
        axes[0].plot(scan.scales, scan.quadratic_kl, "--", color=colour, lw=1.3)
        if scan.quadratic_kl_estimated is not None:
            axes[0].plot(scan.scales, scan.quadratic_kl_estimated, ":", color=colour, lw=1.3)
        shown = lambda r, scan=scan: np.where(scan.resolved, r, np.nan)  # hide round-off-level KLs
        axes[1].plot(
            scan.scales, shown(scan.quadratic_ratio), "o-", color=colour, ms=3, label=f"state {index}"
        )
        axes[2].plot(
            scan.scales, shown(scan.second_order_ratio), "s-", color=colour, ms=3, label=f"state {index}"
        )
    axes[0].plot([], [], "--", color="grey", label="FD quadratic ½E[δᵀFδ], exact F (dashed)")
    axes[0].plot([], [], ":", color="grey", label="FD quadratic, F as FD estimates it (dotted)")
    axes[0].set_xscale("log")
    axes[0].set_yscale("log")
    axes[0].set_ylabel("KL (nats)")
    axes[0].set_title("True KL (solid; hidden below fp32 round-off) and FD's quadratic")
    axes[0].legend(fontsize=7.5, loc="upper left")
    titles = ("FD quadratic / true KL", "full second order / true KL")
    for ax, title in zip(axes[1:], titles, strict=True):
        ax.axhspan(
            band[0], band[1], color="tab:green", alpha=0.12, label=f"valid band [{band[0]}, {band[1]}]"
        )
        ax.axhline(1.0, color="black", lw=0.8)
        ax.set_xscale("log")
        ax.set_ylim(0.0, 2.0)
        ax.set_ylabel("approximation / true KL")
        ax.set_title(title)
        ax.legend(fontsize=7.5, loc="best")
    for ax in axes:
        ax.set_xlim(
            min(r.scan.scales[0] for r in result.reports) * 0.8,
            max(r.scan.scales[-1] for r in result.reports) * 1.25,
        )
        ax.axvline(1.0, color="tab:red", ls=":", lw=1.2)
        ax.set_xlabel("scale c of the refinement c·δ(s, â)  (dotted: c = 1, as trained)")
        ax.grid(True, which="major", alpha=0.3)
    fig.suptitle(
        f"KL validity of {result.agent} on {result.env} (step {result.step}, seed {result.seed}): "
        f"{len(result.reports)} dataset states",
        fontsize=12,
    )
    fig.tight_layout()
    return _save(fig, path)
