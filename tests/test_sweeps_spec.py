"""Sweep spec files: parsing (TOML and YAML), validation errors that name the key, trial expansion."""

from __future__ import annotations

from pathlib import Path

import pytest

from fidec.envs.registry import suite_tasks
from fidec.sweeps.spec import SpecError, grid_tag, load_spec, parse_spec, trial_id

TASK = "cube-single-play-singletask-task1-v0"
EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "sweeps"


def minimal(**changes):
    return {"agents": ["fd"], "tasks": [TASK], "seeds": [0], "scale": "tiny", **changes}


def test_trials_are_variants_times_grid_times_tasks_times_seeds():
    spec = parse_spec(
        minimal(
            agents=[
                "fd",
                {"name": "fd", "label": "fd-velocity", "overrides": {"agent.fisher.estimator": "velocity"}},
            ],
            suites=["local-tiny"],
            tasks=[TASK],  # also in the suite: listed once
            seeds=3,
            grid={"agent.alpha": [1.0, 10.0]},
        )
    )
    trials = spec.trials()
    assert spec.tasks == tuple(suite_tasks("local-tiny"))
    assert len(trials) == 2 * 2 * 2 * 3
    assert len({t.trial_id for t in trials}) == len(trials)
    first = trials[0]
    assert first.trial_id == f"fd+alpha=1__{TASK}__s0"
    velocity = next(t for t in trials if t.label == "fd-velocity+alpha=10" and t.seeds == (2,))
    config = velocity.train_config("somewhere")
    assert config.agent.fisher.estimator == "velocity"
    assert config.agent.alpha == 10.0
    assert config.seeds == (2,) and config.run_dir == "somewhere" and config.progress is False
    assert config.steps == 100  # the tiny scale


def test_override_order_and_packed_seeds():
    spec = parse_spec(
        minimal(
            seeds=[0, 1, 2],
            pack_seeds=True,
            train={"steps": 60, "log_interval": 20, "eval_interval": 20, "save_interval": 20},
            overrides={"agent.lr": 1e-3, "steps": 80},
            agents=[{"name": "fd", "overrides": {"agent.lr": 5e-4}}],
        )
    )
    (trial,) = spec.trials()
    assert trial.trial_id == f"fd__{TASK}__s0-1-2"
    config = trial.train_config()
    assert config.seeds == (0, 1, 2) and config.vmap_seeds
    assert config.steps == 80  # [overrides] after [train]
    assert config.agent.lr == 5e-4  # the agent's overrides after [overrides]


def test_fingerprint_changes_with_the_definition_only():
    a = parse_spec(minimal()).trials()[0]
    b = parse_spec(minimal(out_dir="elsewhere", resources={"cpus": 2})).trials()[0]
    c = parse_spec(
        minimal(train={"steps": 50, "eval_interval": 25, "log_interval": 25, "save_interval": 25})
    ).trials()[0]
    assert a.fingerprint() == b.fingerprint()
    assert a.fingerprint() != c.fingerprint()


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"agents": ["fdd"]}, "unknown agent 'fdd'. Did you mean 'fd'"),
        ({"suites": ["ogbench-state-5"], "tasks": []}, "unknown suite 'ogbench-state-5'"),
        ({"tasks": ["cube-single-play-v0"]}, "single-task variants"),
        (
            {"overrides": {"agent.alhpa": 1.0}},
            "overrides: unknown config key 'agent.alhpa'. Did you mean 'agent.alpha'",
        ),
        ({"grid": {"agent.fisher.estimator": ["tweedie", "bogus"]}}, "estimator"),
        ({"train": {"seeds": [0, 1]}}, "'seeds' is set by the sweep"),
        ({"agents": ["fd", "fd"]}, "distinct 'label'"),
        ({"resources": {"gpus": 1.5}}, "resources.gpus"),
        ({"resources": {"cpu": 1}}, "unknown key 'cpu' in resources. Did you mean 'cpus'"),
        ({"seed": [0]}, "unknown key 'seed' in spec. Did you mean 'seeds'"),
        ({"grid": {"agent.alpha": []}}, "non-empty list"),
        ({"scale": "huge"}, "Valid scales: tiny, cpu, paper"),
        ({"seeds": [0, 0]}, "distinct"),
        ({"tasks": [], "suites": []}, "no tasks"),
    ],
)
def test_invalid_specs_name_the_key_and_the_choices(changes, expected):
    with pytest.raises(SpecError, match=expected.replace("(", r"\(").replace(".", r"\.")):
        parse_spec(minimal(**changes))


def test_unknown_override_error_names_the_variant():
    spec = minimal(agents=[{"name": "iso", "label": "iso-x", "overrides": {"agent.nope": 1}}])
    with pytest.raises(
        SpecError,
        match=r"agents\[0\]\.overrides: unknown config key .agent\.nope.*Valid keys: .*agent\.fisher\.estimator",
    ):
        parse_spec(spec)


def test_toml_and_yaml_give_the_same_spec(tmp_path):
    toml = tmp_path / "s.toml"
    toml.write_text(
        f'agents = ["fd", {{name = "iso", label = "l2"}}]\ntasks = ["{TASK}"]\nseeds = 2\nscale = "tiny"\n'
        '[grid]\n"agent.alpha" = [1, 3]\n[resources]\ncpus = 0.5\n'
    )
    yaml = tmp_path / "s.yaml"
    yaml.write_text(
        f"agents: [fd, {{name: iso, label: l2}}]\ntasks: [{TASK}]\nseeds: 2\nscale: tiny\n"
        "grid:\n  agent:\n    alpha: [1, 3]\nresources: {cpus: 0.5}\n"
    )
    a, b = load_spec(toml), load_spec(yaml)
    assert [t.trial_id for t in a.trials()] == [t.trial_id for t in b.trials()]
    assert a.resources.cpus == 0.5 and a.name == "s" and a.out_dir == Path("runs/sweeps/s")
    assert load_spec(toml, out_dir=tmp_path / "o").out_dir == tmp_path / "o"


def test_file_errors(tmp_path):
    with pytest.raises(SpecError, match="does not exist"):
        load_spec(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("agents = [fd")
    with pytest.raises(SpecError, match="not valid TOML"):
        load_spec(bad)
    other = tmp_path / "spec.json"
    other.write_text("{}")
    with pytest.raises(SpecError, match=r"use \.toml, \.yaml or \.yml"):
        load_spec(other)


def test_names():
    assert (
        grid_tag({"agent.alpha": 3.0, "agent.network.actor_hidden": [64, 64]})
        == "+alpha=3+actor_hidden=64x64"
    )
    assert grid_tag({"agent.alpha": 1, "alpha": 2}) == "+agent.alpha=1+alpha=2"
    assert trial_id("fd", TASK, (0, 1)) == f"fd__{TASK}__s0-1"


@pytest.mark.parametrize("name", ["tiny.toml", "paper.toml"])
def test_example_specs_are_valid(name):
    spec = load_spec(EXAMPLES / name)
    assert spec.trials()


def test_sweep_command_dry_run_and_errors(tmp_path):
    import typer
    from typer.testing import CliRunner

    from fidec.sweeps.commands import sweep_command

    app = typer.Typer()
    app.command("sweep")(sweep_command)
    app.command("other")(lambda: None)
    spec = tmp_path / "s.toml"
    spec.write_text(f'agents = ["fd", "iso"]\ntasks = ["{TASK}"]\nseeds = 2\nscale = "tiny"\n')
    runner = CliRunner()
    listed = runner.invoke(
        app, ["sweep", str(spec), "--dry-run", "--out-dir", str(tmp_path / "o")], env={"COLUMNS": "200"}
    )
    assert listed.exit_code == 0, listed.output
    assert f"iso__{TASK}__s1" in listed.output and "4 trials" in listed.output
    assert not (tmp_path / "o").exists()  # a dry run writes nothing
    spec.write_text('agents = ["fdd"]\n')
    bad = runner.invoke(app, ["sweep", str(spec)])
    assert bad.exit_code == 2 and "unknown agent 'fdd'" in " ".join(bad.output.split())


def test_the_documented_spec_is_valid():
    import tomllib

    text = (EXAMPLES.parents[1] / "docs" / "sweeps.md").read_text()
    block = text.split("```toml\n", 1)[1].split("```", 1)[0]
    spec = parse_spec(tomllib.loads(block))
    labels = {t.label for t in spec.trials()}
    assert "fd-velocity+target_divergence=0.01" in labels and "fd-official+target_divergence=0.001" in labels
    assert len(spec.trials()) == 4 * 2 * 3 * 3  # variants x grid points x (1 task + 2 of the suite) x seeds
