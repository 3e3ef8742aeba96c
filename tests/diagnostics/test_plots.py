"""The diagnostics' figures read at a glance: text of at least 9 pt, labelled axes, legends outside the data."""

from __future__ import annotations

import numpy as np
import pytest

from fidec.diagnostics import plots
from fidec.diagnostics.kl import KLScan, RunKLResult, StateKLReport
from fidec.diagnostics.perturbed_time import UNIT_ROUNDOFF, PerturbedTimeCurve, PerturbedTimeResult
from fidec.diagnostics.refinement import PENALTIES, BehaviourDemo, RefinementResult
from figures import readability_problems


@pytest.fixture
def checked(monkeypatch):
    """Every figure saved while the test runs: its readability problems."""
    found: list[list[str]] = []
    save = plots._save

    def checking_save(fig, path, dpi=100):
        found.append(readability_problems(fig))
        return save(fig, path, dpi)

    monkeypatch.setattr(plots, "_save", checking_save)
    return found


def _scan(scale: float = 1.0) -> KLScan:
    c = np.logspace(-2, 0.5, 12)
    true_kl = scale * 0.5 * c**2 * (1 + 0.3 * c)
    return KLScan(
        scales=c, true_kl=true_kl, true_kl_stderr=0.01 * true_kl, quadratic_kl=scale * 0.5 * c**2,
        curvature_term=scale * 0.5 * c**2, jacobian_term=scale * 0.02 * c**2, fisher_norm=3.0 * c,
        displacement_rms=c, quadratic_kl_estimated=scale * 40 * c**2, closed_form_kl=true_kl,
        fold_fraction=np.zeros_like(c), kl_floor=np.full_like(c, 1e-9),
    )  # fmt: skip


def _is_png(path) -> bool:
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_kl_scan_figure_is_readable(tmp_path, checked):
    path = plots.plot_kl_scan(_scan(), tmp_path / "kl.png", "band behaviour, mlp displacement field")
    assert _is_png(path) and checked == [[]], checked


def test_run_kl_figure_with_eight_states_keeps_its_legend_off_the_data(tmp_path, checked):
    reports = [StateKLReport(i, _scan(1.0 + i)) for i in range(8)]
    result = RunKLResult(
        "run", "fd", "cube-single-play-singletask-task1-v0", 300, 0, np.arange(8) * 100, reports
    )
    path = plots.plot_run_kl(result, tmp_path / "run.png")
    assert _is_png(path) and checked == [[]], checked


def test_perturbed_time_figure_is_readable(tmp_path, checked):
    eps = np.logspace(-7, np.log10(0.3), 13)
    curves = [
        PerturbedTimeCurve(name, eps, {m: 1e-3 / eps + eps for m in ("raw", "normalized")},
                           {m: 1e-3 / eps for m in ("raw", "normalized")})
        for name in ("analytic fp32", "analytic fp64", "flow fp32")
    ]  # fmt: skip
    result = PerturbedTimeResult(curves, {"raw": eps, "normalized": eps**2}, dict(UNIT_ROUNDOFF), 512, 4)
    path = plots.plot_perturbed_time(result, tmp_path / "pt.png")
    assert _is_png(path) and checked == [[]], checked


def _demo(name: str) -> BehaviourDemo:
    rng = np.random.default_rng(0)
    base = rng.normal(0, 0.2, (50, 2))
    results = [
        RefinementResult(p, f, -0.5, -0.5 + 0.01 * i, 1.0, 1.0 + f + i, 0.01, 1.0, 1.0, 0.0, 1.0, 0.0)
        for i, p in enumerate(PENALTIES)
        for f in (0.25, 0.5)
    ]
    xs = np.linspace(-1, 1, 30)
    xx, yy = np.meshgrid(xs, xs)
    return BehaviourDemo(
        name=name, goal=np.array([0.6, 0.4]), base_reward=-0.8, fisher_estimated=np.eye(2),
        fisher_exact=np.eye(2), flow_loss=0.1, base_actions=base,
        refined={p: base + 0.1 * (i + 1) for i, p in enumerate(PENALTIES)}, results=results,
        grid={"x": xx, "y": yy, "log_density": -(xx**2 + 4 * yy**2)},
    )  # fmt: skip


def test_demo_figures_are_readable(tmp_path, checked):
    demos = [_demo("band"), _demo("mixture")]
    paths = [
        plots.plot_demo_refinements(demos, 0.5, ("isotropic", "fisher"), tmp_path / "demo.png"),
        plots.plot_demo_frontier(demos, 0.5, tmp_path / "frontier.png"),
        plots.plot_demo_refinements(
            demos, 0.5, ("fisher_jacobian", "fisher_sym_jacobian"), tmp_path / "j.png"
        ),
    ]
    assert all(_is_png(p) for p in paths) and checked == [[], [], []], checked


def test_a_figure_that_cannot_be_written_leaves_no_partial_file(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OSError):
        plots.plot_kl_scan(_scan(), blocker / "kl.png", "t")
    assert blocker.read_text() == "x" and not list(tmp_path.glob("**/.kl.png*"))
