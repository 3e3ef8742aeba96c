"""Summary protocol (final and last-three, mean and sample std over seeds), metrics files, plots."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fidec.training.config import make_train_config
from fidec.training.metrics import MetricsTable
from fidec.training.plots import plot_learning_curves
from fidec.training.rundir import RunDir
from fidec.training.summary import build_summary, closing_message, seed_scores


def _eval_rows():
    scores = {0: [0.1, 0.2, 0.4, 0.6], 1: [0.0, 0.3, 0.5, 0.7]}
    return [
        {"step": 100 * (k + 1), "seed": seed, "phase": "offline", "success": s}
        for seed, values in scores.items()
        for k, s in enumerate(values)
    ]


def test_final_and_last_three_per_seed_and_aggregate():
    config = make_train_config("fd", presets=["tiny"], overrides={"seeds": "0,1"})
    summary = build_summary(config, _eval_rows(), "success", {"wall_time_s": 1.0})
    assert summary["per_seed"]["0"]["final"] == pytest.approx(0.6)
    assert summary["per_seed"]["0"]["last3"] == pytest.approx(0.4)
    assert summary["per_seed"]["1"]["last3_steps"] == [200, 300, 400]
    agg = summary["aggregate"]
    assert agg["final_mean"] == pytest.approx(0.65)
    assert agg["final_std"] == pytest.approx(np.std([0.6, 0.7], ddof=1))
    assert agg["last3_mean"] == pytest.approx(np.mean([0.4, 0.5]))
    assert "last three" in summary["protocol"] and "ddof=1" in summary["protocol"]
    assert summary["metric"] == "success" and summary["wall_time_s"] == 1.0


def test_seed_without_evaluations_reports_none():
    assert seed_scores([], "success")["final"] is None
    assert seed_scores([{"step": 1, "seed": 0, "success": None}], "success")["last3"] is None


def test_metrics_table_truncates_on_resume_and_grows_columns(tmp_path):
    table = MetricsTable(tmp_path, "train")
    table.load(None)
    table.append([{"step": 10, "seed": 0, "phase": "offline", "loss": 1.0}])
    table.append([{"step": 20, "seed": 0, "phase": "offline", "loss": np.float32(0.5)}])
    table.append([{"step": 30, "seed": 0, "phase": "online", "loss": 0.25, "online/episodes": 2.0}])
    header = (tmp_path / "train.csv").read_text().splitlines()[0]
    assert header == "step,seed,phase,loss,online/episodes"
    # A torn last line (a kill mid-write) is dropped; rows after the checkpoint step are cut.
    with open(tmp_path / "train.jsonl", "a") as stream:
        stream.write('{"step": 40, "se')
    resumed = MetricsTable(tmp_path, "train")
    rows = resumed.load(20)
    assert [r["step"] for r in rows] == [10, 20]
    assert (tmp_path / "train.csv").read_text().splitlines() == [
        "step,seed,phase,loss",
        "10,0,offline,1.0",
        "20,0,offline,0.5",
    ]
    assert [json.loads(line)["step"] for line in (tmp_path / "train.jsonl").read_text().splitlines()] == [
        10,
        20,
    ]


def test_learning_curves_png(tmp_path):
    train_rows = [{"step": s, "seed": seed, "critic_loss": 1.0 / s} for s in (10, 20) for seed in (0, 1)]
    path = plot_learning_curves(train_rows, _eval_rows(), "success", tmp_path / "plots" / "c.png", title="t")
    assert path.exists() and path.read_bytes()[:4] == b"\x89PNG"


def test_learning_curves_read_at_a_glance():
    from fidec.training.plots import learning_curves_figure
    from figures import readability_problems

    train = [
        {"step": s, "seed": k, "critic_loss": 1.0 / s, "bc_loss": 0.5, "alpha": 3.0}
        for s in (100, 200)
        for k in (0, 1)
    ]
    evals = [{"step": s, "seed": k, "success": 0.1 * k} for s in (100, 200) for k in (0, 1)]
    fig = learning_curves_figure(train, evals, "success", title="fd on cube", online_start=150)
    assert not readability_problems(fig)
    assert fig.axes[0].get_ylabel() == "success rate (% of episodes)"
    # shown in %: the stored fraction 0.1 of seed 1 is drawn at 10
    assert max(max(line.get_ydata()) for line in fig.axes[0].get_lines()) == pytest.approx(10.0)


def test_learning_curves_of_a_long_run_keep_step_labels_apart():
    """Steps in the tens of thousands: tick labels as 5k, 10k, ... that do not run into each other."""
    from fidec.training.plots import learning_curves_figure
    from figures import readability_problems

    steps = range(1000, 20001, 1000)
    train = [{"step": s, "seed": 0, "critic_loss": 1.0, "bc_loss": 0.3, "penalty": 1e-3} for s in steps]
    evals = [{"step": s, "seed": 0, "success": s / 1e5} for s in range(5000, 20001, 5000)]
    fig = learning_curves_figure(train, evals, "success", title="fd on cube")
    assert not readability_problems(fig)
    assert [t.get_text() for t in fig.axes[0].get_xticklabels() if t.get_text()][-1].endswith("k")


def _closing(tmp_path, agent, seeds, steps=400):
    config = make_train_config(
        agent, presets=["tiny"], overrides={"seeds": seeds, "steps": steps, "eval_episodes": 5}
    )
    run = RunDir.claim(tmp_path / agent, config)
    summary = build_summary(config, _eval_rows() if seeds == "0,1" else _eval_rows()[:4], "success", {})
    return closing_message(summary, run), run


def test_closing_message_says_what_ran_how_well_where_and_what_next(tmp_path):
    text, run = _closing(tmp_path, "fd", "0,1")
    lines = text.splitlines()
    assert lines[0].startswith("Done: trained fd on ") and "400 offline steps" in lines[0]
    assert "seed(s) 0, 1" in lines[0]
    # success in %, mean over seeds with its spread, and the paper's protocol
    assert "Final success rate: 65% (+- 7% over 2 seeds) over 5 episodes" in text
    assert "last three evaluations: 45%" in text
    assert str(run.root) in text and str(run.plot_path) in text and str(run.summary_path) in text
    # the next commands are runnable as printed and go beyond what just ran
    assert f"`fidec eval {run.root} --episodes 50`" in text
    assert f"`fidec diagnose kl --run-dir {run.root}`" in text
    assert "--steps 800 --seeds 0,1,2`" in text


def test_closing_message_offers_the_kl_check_only_to_refinement_agents(tmp_path):
    text, _ = _closing(tmp_path, "fql", "0")
    assert "diagnose kl" not in text and "seed(s) 0." in text
    assert "Final success rate: 60% over 5 episodes" in text
