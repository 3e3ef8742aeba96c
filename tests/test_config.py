"""Dotted-key overrides of frozen config dataclasses: coercion, errors, and dict round trips."""

from __future__ import annotations

import json

import pytest

from fidec.agents import AgentConfig
from fidec.config import ConfigError, all_keys, apply_overrides, from_dict, to_dict
from fidec.fisher import FisherConfig
from fidec.networks import NetworkConfig


def test_nested_dotted_keys_change_only_their_field():
    config = apply_overrides(AgentConfig(), {"fisher.num_samples": 8, "network.critic_hidden": (64, 64)})
    assert config.fisher == FisherConfig(num_samples=8)
    assert config.network == NetworkConfig(critic_hidden=(64, 64))
    assert config.lr == AgentConfig().lr


def test_overrides_return_a_copy_and_leave_the_input_unchanged():
    original = AgentConfig()
    changed = apply_overrides(original, {"lr": 1e-3, "fisher.t_eps": 0.9})
    assert original == AgentConfig()
    assert (changed.lr, changed.fisher.t_eps) == (1e-3, 0.9)


def test_a_section_accepts_a_mapping():
    config = apply_overrides(AgentConfig(), {"fisher": {"t_eps": 0.9, "damping": "0.01"}})
    assert (config.fisher.t_eps, config.fisher.damping) == (0.9, 0.01)


def test_dashes_in_keys_read_as_underscores():
    assert apply_overrides(AgentConfig(), {"target-divergence": "0.01"}).target_divergence == 0.01


@pytest.mark.parametrize(
    ("key", "text", "expected"),
    [
        ("fisher.t_eps", "0.5", 0.5),
        ("alpha", "3", 3.0),
        ("lr", "1e-4", 1e-4),
        ("batch_size", "64", 64),
        ("batch_size", "1e3", 1000),
        ("lagrange", "true", True),
        ("lagrange", "False", False),
        ("lagrange", "off", False),
        ("normalize_q_loss", "1", True),
        ("network.actor_hidden", "64,64", (64, 64)),
        ("network.actor_hidden", "[64, 64]", (64, 64)),
        ("network.actor_hidden", "128", (128,)),
        ("network.actor_hidden", [32, 16], (32, 16)),
        ("fisher.t_eps_max", "none", None),
        ("fisher.t_eps_max", "null", None),
        ("fisher.t_eps_max", "0.99", 0.99),
        ("fisher.estimator", "velocity", "velocity"),
        ("q_agg", "min", "min"),
    ],
)
def test_strings_are_coerced_to_the_field_type(key, text, expected):
    config = apply_overrides(AgentConfig(), {key: text})
    value = config
    for part in key.split("."):
        value = getattr(value, part)
    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("lr", "fast", "lr: expected a number"),
        ("batch_size", "12.5", "batch_size: expected an integer"),
        ("batch_size", 12.5, "batch_size: expected an integer"),
        ("lagrange", "maybe", "lagrange: expected true/false"),
        ("network.actor_hidden", "64,wide", "network.actor_hidden: expected an integer"),
        ("fisher.estimator", "exact", "not one of ['tweedie', 'velocity']"),
        ("lr", None, "lr: expected a number"),
    ],
)
def test_values_of_the_wrong_type_raise_config_error_naming_the_key(key, value, message):
    with pytest.raises(ConfigError) as excinfo:
        apply_overrides(AgentConfig(), {key: value})
    assert message in str(excinfo.value)


def test_unknown_top_level_key_lists_every_valid_dotted_key():
    with pytest.raises(ConfigError, match="unknown config key 'learning_rate'") as excinfo:
        apply_overrides(AgentConfig(), {"learning_rate": 1e-3})
    message = str(excinfo.value)
    for key in all_keys(AgentConfig()):
        assert key in message
    assert "fisher.t_eps" in message and "network.actor_hidden" in message


def test_unknown_nested_key_lists_valid_keys_with_their_section():
    """The suggestion must be usable as typed: 'fisher.t_eps', not a bare 't_eps'."""
    with pytest.raises(ConfigError, match=r"unknown config key 'fisher\.teps'") as excinfo:
        apply_overrides(AgentConfig(), {"fisher.teps": 0.9})
    assert "fisher.t_eps" in str(excinfo.value)


def test_a_value_is_not_a_section_and_a_section_is_not_a_value():
    with pytest.raises(ConfigError, match="'lr' is a value, not a section"):
        apply_overrides(AgentConfig(), {"lr.scale": 2})
    with pytest.raises(ConfigError, match="'fisher' is a section"):
        apply_overrides(AgentConfig(), {"fisher": 0.9})


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"lr": "-1"}, "lr must be > 0"),
        ({"discount": 1.5}, "discount must lie in [0, 1]"),
        ({"q_agg": "max"}, "q_agg must be 'mean' or 'min'"),
        ({"action_mode": "greedy"}, "action_mode must be one of"),
        ({"fisher.t_eps": 1.0}, "fisher.t_eps must lie in (0, 1)"),
        ({"fisher.t_eps_max": 0.5}, "fisher.t_eps_max must lie in [t_eps, 1)"),
        ({"fisher.source": "replay"}, "fisher.source must be 'flow' or 'dataset'"),
        ({"network.activation": "swish"}, "network.activation must be one of"),
        ({"network.actor_hidden": "[]"}, "hidden sizes must be non-empty"),
    ],
)
def test_validation_errors_from_post_init_surface_as_config_error(overrides, message):
    with pytest.raises(ConfigError) as excinfo:
        apply_overrides(AgentConfig(), overrides)
    assert message in str(excinfo.value)
    assert isinstance(excinfo.value, ValueError)


def test_the_order_of_overrides_within_a_section_does_not_matter():
    """Validation must see the finished section, not each intermediate one (t_eps_max >= t_eps)."""
    expected = apply_overrides(AgentConfig(), {"fisher.t_eps": 0.85, "fisher.t_eps_max": 0.9})
    reordered = apply_overrides(AgentConfig(), {"fisher.t_eps_max": 0.9, "fisher.t_eps": 0.85})
    assert reordered == expected


def _non_default_config() -> AgentConfig:
    return apply_overrides(
        AgentConfig(),
        {
            "network.actor_hidden": (64, 32),
            "network.critic_layer_norm": False,
            "fisher.estimator": "velocity",
            "fisher.t_eps": 0.85,
            "fisher.t_eps_max": 0.9,
            "fisher.source": "dataset",
            "lr": 1e-4,
            "lagrange": False,
            "q_agg": "min",
            "jacobian_weight": 0.5,
            "action_mode": "best_of_n",
        },
    )


def test_to_dict_is_plain_json_and_from_dict_rebuilds_the_same_config():
    config = _non_default_config()
    data = to_dict(config)
    assert json.loads(json.dumps(data)) == data
    assert data["network"]["actor_hidden"] == [64, 32]
    assert data["fisher"]["t_eps_max"] == 0.9
    rebuilt = from_dict(AgentConfig, data)
    assert rebuilt == config
    assert isinstance(rebuilt.network.actor_hidden, tuple)


def test_round_trip_keeps_none_values():
    config = AgentConfig()
    assert config.fisher.t_eps_max is None
    assert from_dict(AgentConfig, json.loads(json.dumps(to_dict(config)))) == config


def test_from_dict_rejects_unknown_keys():
    data = to_dict(AgentConfig())
    data["fisher"]["temperature"] = 1.0
    with pytest.raises(ConfigError, match=r"fisher\.temperature"):
        from_dict(AgentConfig, data)
