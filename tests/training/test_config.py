"""TrainConfig: defaults are the main job, presets resolve in order, bad inputs fail with the valid choices."""

from __future__ import annotations

import pytest

from fidec.agents import REGISTRY, agent_names, get_spec
from fidec.config import ConfigError, all_keys, from_dict, to_dict
from fidec.training.config import (
    DEFAULT_ENV,
    SCALES,
    TrainConfig,
    check_consistency,
    config_keys,
    describe_config,
    make_train_config,
    split_presets,
    train_config_from_dict,
)


def test_default_config_is_the_main_job_at_cpu_scale():
    config = TrainConfig()
    assert config.agent_name == "fd" and config.env == DEFAULT_ENV and config.scale == "cpu"
    assert config == make_train_config()
    # The cube-single task preset is applied to the agent (the official registry): Lagrange, target 1e-3;
    # the Q normalisation stays off, as in the paper's grid runs.
    assert config.agent.lagrange and config.agent.target_divergence == pytest.approx(1e-3)
    assert config.agent.normalize_q_loss is False
    assert config.steps == SCALES["cpu"].overrides["steps"]
    assert config.generate_dataset


def test_paper_scale_is_one_preset_away():
    config = make_train_config("fd", "antmaze-large-navigate-singletask-task1-v0", presets=["paper"])
    assert config.steps == 1_000_000 and config.eval_episodes == 50
    assert config.eval_interval == 100_000 and config.log_interval == 5_000
    assert config.replay_capacity == 2_000_000
    assert config.agent.network.actor_hidden == (512,) * 4
    assert config.agent.q_agg == "min"  # antmaze-large family preset


def test_resolution_order_scale_then_named_presets_then_overrides():
    config = make_train_config(
        "fd",
        presets=["tiny", "official-grid"],
        overrides={"agent.fisher.t_eps": 0.8, "steps": 40, "seeds": "3,4"},
    )
    assert config.scale == "tiny" and config.presets == ("official-grid",)
    assert config.agent.network.actor_hidden == (32, 32)  # tiny scale's agent preset
    assert config.agent.fisher.estimator == "velocity"  # named preset
    assert config.agent.fisher.t_eps == pytest.approx(0.8)  # explicit override wins
    assert config.steps == 40 and config.seeds == (3, 4)


def test_named_presets_override_the_scale():
    config = make_train_config("fd", presets=["paper-networks"])
    assert config.scale == "cpu" and config.agent.network.critic_hidden == (512,) * 4
    assert config.agent.batch_size == 256


def test_fql_gets_its_own_task_alpha():
    assert make_train_config("fql").agent.alpha == pytest.approx(300.0)


def test_round_trip_through_json_dict():
    config = make_train_config(
        "iso", presets=["tiny"], overrides={"seeds": "0,1", "eval_action_mode": "best_of_n"}
    )
    assert train_config_from_dict(to_dict(config)) == config
    # The generic reader does not know which agent's config the table holds, and says so.
    with pytest.raises(ConfigError, match="agent 'iso' takes a IsoConfig"):
        from_dict(TrainConfig, to_dict(config))


@pytest.mark.parametrize("agent", agent_names())
def test_every_agent_resolves_at_every_scale_with_the_scales_keys_it_has(agent):
    """A scale's agent.* values reach the agents whose config has the key (tiny: flow_steps for the flow
    agents, fisher.num_samples for FD) and are skipped for the others."""
    for scale in SCALES:
        config = make_train_config(agent, "cube-single-play-singletask-task1-v0", presets=[scale])
        assert type(config.agent) is get_spec(agent).config
        keys = set(all_keys(config.agent))
        for key, value in SCALES[scale].overrides.items():
            if key.startswith("agent.") and key[len("agent.") :] in keys:
                current = config.agent
                for part in key[len("agent.") :].split("."):
                    current = getattr(current, part)
                assert current == value, (scale, key)
    tiny = make_train_config(agent, presets=["tiny"]).agent
    assert tiny.network.actor_hidden == (32, 32)
    assert getattr(tiny, "flow_steps", 3) == 3
    if agent == "fd":
        assert tiny.fisher.num_samples == 2


def test_every_agent_key_of_a_scale_is_some_agents_key():
    """A key no agent has would be skipped silently: a misspelt scale value must fail here instead."""
    keys = {k for spec in REGISTRY.values() for k in all_keys(spec.config())}
    for scale in SCALES.values():
        for key in scale.overrides:
            if key.startswith("agent."):
                assert key[len("agent.") :] in keys, (scale.name, key)


@pytest.mark.parametrize("agent", agent_names())
def test_config_json_reads_back_as_the_agents_own_config(agent):
    """config.json holds the agent's own fields; train_config_from_dict rebuilds the agent's config class."""
    config = make_train_config(agent, presets=["tiny"], overrides={"seeds": "0,1"})
    data = to_dict(config)
    rebuilt = train_config_from_dict(data)
    assert rebuilt == config and type(rebuilt.agent) is get_spec(agent).config


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"agent": "sac"}, "available agents: fd"),
        ({"presets": ["huge"]}, "scale presets: tiny, cpu, paper"),
        ({"presets": ["tiny", "paper"]}, "at most one scale preset"),
        ({"overrides": {"agent.nope": 1}}, "valid keys"),
        ({"overrides": {"stepz": 1}}, "valid keys"),
        ({"overrides": {"env": "x"}}, "--env"),
        ({"overrides": {"eval_interval": 130}}, "multiple of log_interval"),
        ({"overrides": {"seeds": "1,1"}}, "distinct"),
        ({"overrides": {"eval_action_mode": "greedy"}}, "eval_action_mode must be one of"),
        (
            {"agent": "iql", "overrides": {"eval_action_mode": "onestep"}},
            r"acts with the modes \['mean', 'sample'\]",
        ),
        ({"overrides": {"steps": 0, "online_steps": 0}}, "nothing to train"),
    ],
)
def test_bad_inputs_fail_with_clear_messages(kwargs, needle):
    with pytest.raises(ConfigError, match=needle):
        make_train_config(**kwargs)


def test_split_presets_and_config_listing():
    assert split_presets(["paper", "official-grid"]) == ("paper", ("official-grid",))
    keys = config_keys()
    assert "agent.fisher.t_eps" in keys and "steps" in keys and "env" not in keys
    rows = {key: (type_name, value) for key, type_name, value, _ in describe_config(TrainConfig())}
    assert rows["steps"] == ("int", str(TrainConfig().steps))
    assert "agent.network.actor_hidden" in rows


def test_consistency_check_runs_on_direct_construction():
    with pytest.raises(ConfigError, match="multiple of log_interval"):
        check_consistency(TrainConfig(log_interval=300, eval_interval=1000))


def test_show_config_lists_only_settable_keys_with_allowed_values_and_descriptions():
    from fidec.training.config import PRESET_KEYS, TrainConfig, describe_config, make_train_config

    rows = describe_config(TrainConfig())
    keys = [key for key, _, _, _ in rows]
    assert not set(PRESET_KEYS) & set(keys)  # agent/env/scale/presets are --agent/--env/--preset, not --set
    assert all(description for _, _, _, description in rows), "every key says what it is"
    types = dict((key, type_text) for key, type_text, _, _ in rows)
    assert types["agent.q_agg"] == "'mean' | 'min'"
    assert types["wandb_mode"] == "'offline' | 'online' | 'disabled'"
    assert types["agent.fisher.t_eps_max"] == "float | None"
    # Every value is shown as --set reads it: setting every key to its shown value changes nothing.
    shown = {key: value for key, _, value, _ in rows}
    assert make_train_config(overrides=shown) == make_train_config()


def test_show_config_prints_brackets_literally():
    from typer.testing import CliRunner

    from fidec.cli import app

    result = CliRunner().invoke(app, ["train", "--show-config"], env={"COLUMNS": "250"})
    assert result.exit_code == 0
    assert "[0.85, 0.90]" in result.output  # a description with brackets is not eaten as markup
    assert "agent_name" not in result.output
