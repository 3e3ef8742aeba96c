"""Sweep spec files: parsing (TOML and YAML), validation errors that name the key, trial expansion."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from fidec.config import field_descriptions
from fidec.envs.registry import suite_tasks
from fidec.sweeps.spec import (
    AgentVariant,
    Resources,
    SpecError,
    SweepSpec,
    grid_tag,
    load_spec,
    parse_spec,
    trial_id,
)

TASK = "cube-single-play-singletask-task1-v0"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "sweeps"


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
    assert spec.tasks == (TASK,) and spec.all_tasks == tuple(suite_tasks("local-tiny"))
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
    # Packed seeds follow fidec's rule for the backend (vmap_by_default) unless the spec says otherwise.
    assert config.seeds == (0, 1, 2) and config.vmap_seeds is None
    assert config.steps == 80  # [overrides] after [train]
    assert config.agent.lr == 5e-4  # the agent's overrides after [overrides]


@pytest.mark.parametrize("choice", [True, False])
def test_a_spec_may_choose_how_packed_seeds_run(choice):
    spec = parse_spec(minimal(seeds=2, pack_seeds=True, train={"vmap_seeds": choice}))
    (trial,) = spec.trials()
    assert trial.train_config().vmap_seeds is choice


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
        ({"agents": ["fdd"]}, "agents[0]: unknown agent 'fdd' (did you mean 'fd'?)"),
        ({"suites": ["ogbench-state-5"], "tasks": []}, "unknown suite 'ogbench-state-5'"),
        ({"tasks": ["cube-single-play-v0"]}, "single-task variants"),
        (
            {"overrides": {"agent.alhpa": 1.0}},
            "overrides: unknown config key 'agent.alhpa' (did you mean 'agent.alpha'",
        ),
        ({"grid": {"agent.fisher.estimator": ["tweedie", "bogus"]}}, "estimator"),
        ({"train": {"seeds": [0, 1]}}, "'seeds' is set by the sweep"),
        ({"agents": ["fd", "fd"]}, "distinct 'label'"),
        ({"resources": {"gpus": 1.5}}, "resources: gpus must be a fraction"),
        ({"resources": {"cpus": float("inf")}}, "resources: cpus must be a number > 0"),
        ({"resources": {"cpu": 1}}, "unknown config key 'resources.cpu' (did you mean 'resources.cpus'"),
        ({"seed": [0]}, "unknown config key 'seed' (did you mean 'seeds'?); valid keys: agents, out_dir"),
        ({"grid": {"agent.alpha": []}}, "non-empty list"),
        ({"scale": "huge"}, "valid scales: tiny, cpu, paper"),
        ({"scale": "tinny"}, "unknown scale 'tinny' (did you mean 'tiny'?)"),
        ({"seeds": [0, 0]}, "distinct"),
        ({"tasks": [], "suites": []}, "no tasks"),
        ({"seeds": 0}, "seeds as a count must be >= 1"),
        ({"seeds": ["a"]}, "seeds: expected an integer, got 'a'"),
        ({"pack_seeds": "maybe"}, "pack_seeds: expected true/false"),
        ({"max_retries": -1}, "max_retries must be >= 0"),
        ({"max_retries": 1.5}, "max_retries: expected an integer"),
        ({"resources": {"cpus": "two"}}, "resources.cpus: expected a number, got 'two'"),
        ({"train": 5}, "train: expected a table of dotted keys"),
        ({"agents": [5]}, "agents[0]: expected a table of keys, got 5"),
        (
            {"agents": [{"name": "fd", "labl": "x"}]},
            "unknown config key 'agents[0].labl' (did you mean 'agents[0].label'",
        ),
        ({"agents": [{"label": "x"}]}, "missing required key agents[0].name (the agent"),
        ({"agents": [{"name": "fd", "label": "a__b"}]}, "agents[0]: label 'a__b' may hold only"),
    ],
)
def test_invalid_specs_name_the_key_and_the_choices(changes, expected):
    with pytest.raises(SpecError, match=re.escape(expected)):
        parse_spec(minimal(**changes))


def test_a_spec_without_agents_names_the_key_and_what_it_holds():
    raw = minimal()
    del raw["agents"]
    with pytest.raises(SpecError, match=r"missing required key agents \(agent names, or tables"):
        parse_spec(raw)


def test_shorthands_and_defaults():
    spec = parse_spec(minimal(agents="iso", seeds=2), default_name="study")
    (variant,) = spec.agents
    assert variant == AgentVariant(name="iso", label="iso")
    assert spec.seeds == (0, 1) and spec.name == "study" and spec.out_dir == Path("runs/sweeps/study")
    assert spec.resources == Resources(cpus=1.0, gpus=0.0) and spec.max_retries == 1


def test_unknown_override_error_names_the_variant():
    spec = minimal(agents=[{"name": "iso", "label": "iso-x", "overrides": {"agent.nope": 1}}])
    with pytest.raises(
        SpecError,
        match=r"agents\[0\]\.overrides: unknown config key .agent\.nope.*valid keys: .*agent\.fisher\.est",
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


@pytest.mark.parametrize("cls", [SweepSpec, AgentVariant, Resources])
def test_every_spec_key_is_described_and_documented(cls):
    descriptions = field_descriptions(cls)
    assert list(descriptions) == [f.name for f in dataclasses.fields(cls)]
    docs = (EXAMPLES.parents[1] / "docs" / "sweeps.md").read_text()
    for key in descriptions:
        assert re.search(rf"\b{key}\b", docs), f"docs/sweeps.md does not mention the spec key {key!r}"
