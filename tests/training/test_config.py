"""TrainConfig: defaults are the main job, presets resolve in order, bad inputs fail with the valid choices."""

from __future__ import annotations

import pytest

from fidec.config import ConfigError, from_dict, to_dict
from fidec.training.config import (
    DEFAULT_ENV,
    SCALES,
    TrainConfig,
    check_consistency,
    config_keys,
    describe_config,
    make_train_config,
    split_presets,
)


def test_default_config_is_the_main_job_at_cpu_scale():
    config = TrainConfig()
    assert config.agent_name == "fd" and config.env == DEFAULT_ENV and config.scale == "cpu"
    assert config == make_train_config()
    # The cube-single task preset is applied to the agent (METHOD.md section 9): Lagrange, target 1e-3.
    assert config.agent.lagrange and config.agent.target_divergence == pytest.approx(1e-3)
    assert config.agent.normalize_q_loss
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
    assert from_dict(TrainConfig, to_dict(config)) == config


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
        ({"overrides": {"eval_action_mode": "greedy"}}, "eval_action_mode: cannot read .greedy."),
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
