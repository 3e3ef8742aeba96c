"""``fidec diagnose kl | perturbed-time`` and ``fidec demo``: files written, numbers, clear errors."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from fidec.config import ConfigError, to_dict
from fidec.diagnostics.commands import app, demo_command
from fidec.diagnostics.kl import KLValidityConfig, kl_validity_for_run
from fidec.training import make_train_config, train
from fidec.training.toy import evaluate_toy, make_toy_env, toy_dataset

runner = CliRunner()


def test_kl_toy_gaussian_affine_writes_figure_json_and_the_closed_form(tmp_path):
    args = ["kl", "--behaviour", "gaussian", "--field", "affine", "--num-samples", "4096", "--num-scales", "5",
            "--scale-min", "0.01", "--scale-max", "2", "--out", str(tmp_path)]  # fmt: skip
    result = runner.invoke(app, args, terminal_width=250)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "kl_gaussian_affine.png").stat().st_size > 20_000
    record = json.loads((tmp_path / "kl_gaussian_affine.json").read_text())
    assert 1.0 in record["scale"]  # the applied refinement c = 1 is always on the grid
    np.testing.assert_allclose(record["true_kl"], record["closed_form_kl"], rtol=0.05)
    # Second order tracks the true KL at small c; the reported valid scales are grid points or null.
    assert record["second_order_ratio"][0] == pytest.approx(1.0, abs=0.05)
    assert record["valid_scale_second_order"] in record["scale"]
    assert "FD's quadratic valid" in result.output


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["kl", "--behaviour", "spiral"], "unknown behaviour 'spiral'"),
        (["kl", "--field", "swirl"], "unknown displacement field 'swirl'"),
        (["kl", "--scale-min", "2", "--scale-max", "1"], "--scale-min < --scale-max"),
        (["perturbed-time", "--eps-min", "0.5", "--eps-max", "0.1"], "--eps-min < --eps-max"),
        (["perturbed-time", "--num-samples", "10"], "divide num_samples"),
    ],
)
def test_bad_inputs_exit_2_with_a_clear_message(args, needle, tmp_path):
    out = tmp_path / "out"
    result = runner.invoke(app, [*args, "--out", str(out)], terminal_width=250)
    assert result.exit_code == 2, result.output
    assert needle in result.output
    assert len(result.output.strip().splitlines()) == 1 and result.output.startswith("error: ")
    assert not out.exists()  # refused before anything was written


@pytest.mark.parametrize("command", [["kl", "--num-scales", "3"], ["perturbed-time", "--num-eps", "3"]])
def test_an_out_that_is_a_file_is_refused_before_the_work(command, tmp_path):
    target = tmp_path / "a-file"
    target.write_text("keep me")
    result = runner.invoke(app, [*command, "--out", str(target)], terminal_width=250)
    assert result.exit_code == 2 and "is a file; give a folder" in result.output, result.output
    assert target.read_text() == "keep me"


def test_kl_run_dir_that_is_not_a_run_is_refused(tmp_path):
    result = runner.invoke(
        app, ["kl", "--run-dir", str(tmp_path), "--out", str(tmp_path)], terminal_width=250
    )
    assert result.exit_code == 2 and "not a fidec run directory" in result.output


def test_perturbed_time_writes_the_log_log_figure_and_optima(tmp_path):
    args = [
        "perturbed-time",
        "--num-eps",
        "13",
        "--num-samples",
        "512",
        "--flow-steps",
        "0",
        "--out",
        str(tmp_path),
    ]
    result = runner.invoke(app, args, terminal_width=250)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "perturbed_time.png").stat().st_size > 30_000
    record = json.loads((tmp_path / "perturbed_time.json").read_text())
    assert set(record["curves"]) == {"analytic fp32", "analytic fp64"}
    opt32 = record["curves"]["analytic fp32"]["optimum_eps"]["normalized"]
    opt64 = record["curves"]["analytic fp64"]["optimum_eps"]["normalized"]
    assert opt32 > opt64 and "Optimum eps of the Fisher estimate" in result.output


def test_demo_command_is_a_typer_command_function(tmp_path, monkeypatch):
    """The demo command calls run_demo with the quick config and prints the summary."""
    calls = {}

    def fake_run_demo(out, config):
        calls["out"], calls["config"] = out, config
        (out / "summary.md").parent.mkdir(parents=True, exist_ok=True)
        (out / "summary.md").write_text("# summary\n")
        return {"figure": out / "demo.png", "summary": out / "summary.md", "json": out / "summary.json"}

    monkeypatch.setattr("fidec.diagnostics.demo.run_demo", fake_run_demo)
    demo_app = typer.Typer()
    demo_app.command("demo")(demo_command)
    demo_app.command("other")(lambda: None)  # two commands: "demo" stays a subcommand
    result = runner.invoke(demo_app, ["demo", "--quick", "--out", str(tmp_path / "d")])
    assert result.exit_code == 0, result.output
    assert calls["config"].behaviours == ("band",) and calls["out"] == tmp_path / "d"
    assert "# summary" in result.output


def test_demo_refuses_an_out_that_is_a_file_before_the_work(tmp_path):
    target = tmp_path / "a-file"
    target.write_text("keep me")
    demo_app = typer.Typer()
    demo_app.command("demo")(demo_command)
    demo_app.command("other")(lambda: None)
    result = runner.invoke(demo_app, ["demo", "--quick", "--out", str(target)], terminal_width=250)
    assert result.exit_code == 2 and "is a file; give a folder" in result.output, result.output
    assert target.read_text() == "keep me"


@pytest.mark.slow
def test_kl_validity_of_a_trained_fd_run(tmp_path):
    dataset = toy_dataset(5)
    run_dir = tmp_path / "run"
    overrides = {"run_dir": str(run_dir), "seeds": "0", "progress": False, "steps": 50, "eval_interval": 0}
    config = make_train_config("fd", "toy-point", presets=["tiny"], overrides=overrides)
    train(config, dataset=dataset, evaluator=evaluate_toy, env_factory=make_toy_env, console=False)

    kl_config = KLValidityConfig(scales=(0.3, 1.0, 3.0), num_actions=32, sampler_steps=20, ode_steps=8)
    result = kl_validity_for_run(
        str(run_dir), num_states=2, key=jax.random.PRNGKey(0), config=kl_config, dataset=dataset
    )
    assert result.agent == "fd" and result.step == 50 and len(result.reports) == 2
    record = result.to_dict()
    for row in record["states"]:
        assert 0 <= row["dataset_index"] < dataset.size
        assert row["true_kl"] >= 0 and np.isfinite(row["quadratic_kl"]) and np.isfinite(row["jacobian_term"])
        # The second-order expansion (with the residual's Jacobian term) is close to the true KL.
        assert row["second_order_ratio"] == pytest.approx(1.0, abs=0.2)
    # The run was trained on an in-memory dataset: the command line cannot reload it and says so.
    result = runner.invoke(app, ["kl", "--run-dir", str(run_dir), "--out", str(tmp_path)], terminal_width=250)
    assert result.exit_code == 2 and "in-memory dataset" in result.output
    with pytest.raises(ConfigError, match="no residual refinement"):
        record_path = run_dir / "config.json"
        saved = json.loads(record_path.read_text())
        saved["config"]["agent_name"] = "bcflow"  # a valid record of an agent without a residual
        saved["config"]["agent"] = to_dict(make_train_config("bcflow", "toy-point", presets=["tiny"]).agent)
        record_path.write_text(json.dumps(saved))
        kl_validity_for_run(str(run_dir), dataset=dataset)
