"""Dotted-key overrides of frozen config dataclasses: coercion, errors, and dict round trips."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Literal

import pytest

from fidec.agents.fd import FDConfig
from fidec.config import (
    ConfigError,
    DottedKeys,
    all_keys,
    apply_overrides,
    class_keys,
    did_you_mean,
    field_descriptions,
    field_names,
    from_dict,
    to_dict,
)
from fidec.fisher import FisherConfig
from fidec.networks import NetworkConfig
from fidec.training.config import TrainConfig


def test_nested_dotted_keys_change_only_their_field():
    config = apply_overrides(FDConfig(), {"fisher.num_samples": 8, "network.critic_hidden": (64, 64)})
    assert config.fisher == FisherConfig(num_samples=8)
    assert config.network == NetworkConfig(critic_hidden=(64, 64))
    assert config.lr == FDConfig().lr


def test_overrides_return_a_copy_and_leave_the_input_unchanged():
    original = FDConfig()
    changed = apply_overrides(original, {"lr": 1e-3, "fisher.t_eps": 0.9})
    assert original == FDConfig()
    assert (changed.lr, changed.fisher.t_eps) == (1e-3, 0.9)


def test_a_section_accepts_a_mapping():
    config = apply_overrides(FDConfig(), {"fisher": {"t_eps": 0.9, "damping": "0.01"}})
    assert (config.fisher.t_eps, config.fisher.damping) == (0.9, 0.01)


def test_dashes_in_keys_read_as_underscores():
    assert apply_overrides(FDConfig(), {"target-divergence": "0.01"}).target_divergence == 0.01


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
    config = apply_overrides(FDConfig(), {key: text})
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
        apply_overrides(FDConfig(), {key: value})
    assert message in str(excinfo.value)


def test_unknown_top_level_key_lists_every_valid_dotted_key():
    with pytest.raises(ConfigError, match="unknown config key 'learning_rate'") as excinfo:
        apply_overrides(FDConfig(), {"learning_rate": 1e-3})
    message = str(excinfo.value)
    for key in all_keys(FDConfig()):
        assert key in message
    assert "fisher.t_eps" in message and "network.actor_hidden" in message


def test_unknown_nested_key_lists_valid_keys_with_their_section():
    """The suggestion must be usable as typed: 'fisher.t_eps', not a bare 't_eps'."""
    with pytest.raises(ConfigError, match=r"unknown config key 'fisher\.teps'") as excinfo:
        apply_overrides(FDConfig(), {"fisher.teps": 0.9})
    assert "fisher.t_eps" in str(excinfo.value)


def test_a_value_is_not_a_section_and_a_section_is_not_a_value():
    with pytest.raises(ConfigError, match="'lr' is a value, not a section"):
        apply_overrides(FDConfig(), {"lr.scale": 2})
    with pytest.raises(ConfigError, match="'fisher' is a section"):
        apply_overrides(FDConfig(), {"fisher": 0.9})


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"lr": "-1"}, "lr must be > 0"),
        ({"discount": 1.5}, "discount must lie in [0, 1]"),
        ({"q_agg": "max"}, "q_agg: 'max' is not one of"),
        ({"action_mode": "greedy"}, "action_mode: 'greedy' is not one of"),
        ({"fisher.t_eps": 1.0}, "fisher.t_eps must lie in (0, 1)"),
        ({"fisher.t_eps_max": 0.5}, "fisher.t_eps_max must lie in [t_eps, 1)"),
        ({"fisher.source": "replay"}, "fisher.source: 'replay' is not one of"),
        ({"network.activation": "swish"}, "network.activation: 'swish' is not one of"),
        ({"network.actor_hidden": "[]"}, "hidden sizes must be non-empty"),
    ],
)
def test_validation_errors_from_post_init_surface_as_config_error(overrides, message):
    with pytest.raises(ConfigError) as excinfo:
        apply_overrides(FDConfig(), overrides)
    assert message in str(excinfo.value)
    assert isinstance(excinfo.value, ValueError)


def test_the_order_of_overrides_within_a_section_does_not_matter():
    """Validation must see the finished section, not each intermediate one (t_eps_max >= t_eps)."""
    expected = apply_overrides(FDConfig(), {"fisher.t_eps": 0.85, "fisher.t_eps_max": 0.9})
    reordered = apply_overrides(FDConfig(), {"fisher.t_eps_max": 0.9, "fisher.t_eps": 0.85})
    assert reordered == expected


def _non_default_config() -> FDConfig:
    return apply_overrides(
        FDConfig(),
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
    rebuilt = from_dict(FDConfig, data)
    assert rebuilt == config
    assert isinstance(rebuilt.network.actor_hidden, tuple)


def test_round_trip_keeps_none_values():
    config = FDConfig()
    assert config.fisher.t_eps_max is None
    assert from_dict(FDConfig, json.loads(json.dumps(to_dict(config)))) == config


def test_from_dict_rejects_unknown_keys():
    data = to_dict(FDConfig())
    data["fisher"]["temperature"] = 1.0
    with pytest.raises(ConfigError, match=r"fisher\.temperature"):
        from_dict(FDConfig, data)


# -- did you mean, Literal fields, non-finite numbers, descriptions, typed tables -------------------------


def test_an_unknown_key_gets_a_did_you_mean_and_the_valid_keys():
    with pytest.raises(ConfigError) as excinfo:
        apply_overrides(TrainConfig(), {"agent.alhpa": 1.0})
    message = str(excinfo.value)
    assert message.startswith("unknown config key 'agent.alhpa' (did you mean 'agent.alpha'")
    assert "valid keys: agent.network.actor_hidden" in message
    with pytest.raises(ConfigError, match=r"unknown config key 'stpes' \(did you mean 'steps'"):
        apply_overrides(TrainConfig(), {"stpes": 10})
    assert did_you_mean("zzz", ["steps"]) == ""


def test_an_unknown_set_key_on_the_command_line_gets_a_did_you_mean():
    from typer.testing import CliRunner

    from fidec.cli import app

    result = CliRunner().invoke(app, ["train", "--preset", "tiny", "--set", "agent.fisher.t_esp=0.9"])
    assert result.exit_code == 2
    assert "unknown config key 'agent.fisher.t_esp' (did you mean 'agent.fisher.t_eps'" in " ".join(
        result.output.split()
    )


@dataclasses.dataclass(frozen=True)
class Choices:
    """A config with typed choices.

    Attributes:
        mode: how to go: "fast" or "slow".
        level: 1, 2 or 3.
        scale: a positive finite factor; this description goes on
            over two lines.
        window: optional width (none: everything).
        sizes: layer widths.
        note: Undocumented fields are left out.
    """

    mode: Literal["fast", "slow"] = "fast"
    level: Literal[1, 2, 3] = 1
    scale: float = 1.0
    window: int | None = None
    sizes: tuple[float, ...] = (1.0,)
    untold: str = ""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.scale) and self.scale > 0):
            raise ValueError(f"scale must be a finite number > 0, got {self.scale}")


def test_literal_fields_coerce_validate_and_list_the_allowed_values():
    assert apply_overrides(Choices(), {"mode": "slow", "level": "3"}) == Choices(mode="slow", level=3)
    assert type(apply_overrides(Choices(), {"level": 2.0}).level) is int
    with pytest.raises(
        ConfigError, match=r"mode: 'slwo' is not one of \['fast', 'slow'\] \(did you mean 'slow'\?\)"
    ):
        apply_overrides(Choices(), {"mode": "slwo"})
    with pytest.raises(ConfigError, match=r"level: 4 is not one of \[1, 2, 3\]"):
        apply_overrides(Choices(), {"level": 4})
    with pytest.raises(ConfigError, match=r"level: True is not one of"):
        apply_overrides(Choices(), {"level": True})


@pytest.mark.parametrize("text", ["inf", "-inf", "nan", "Infinity"])
def test_non_finite_numbers_parse_as_floats_and_reach_the_fields_own_checks(text):
    with pytest.raises(ConfigError, match="scale must be a finite number > 0"):
        apply_overrides(Choices(), {"scale": text})
    value = apply_overrides(Choices(), {"sizes": f"[1, {text}]"}).sizes[1]
    assert isinstance(value, float) and not math.isfinite(value)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("window", "inf", "window: cannot read 'inf' as int or none (expected an integer, got 'inf')"),
        ("window", "1e400", "expected an integer, got '1e400'"),
        ("window", "1.5e0", "expected an integer, got '1.5e0'"),
        ("window", [3], "expected an integer, got [3]"),
        ("scale", True, "scale: expected a number, got True"),
        ("untold", ["a"], "untold: expected a string, got ['a']"),
        ("sizes", "[1, 2", "sizes: expected a list like [64, 64] or 64,64"),
    ],
)
def test_bad_values_are_config_errors_naming_the_key(key, value, message):
    with pytest.raises(ConfigError) as excinfo:
        apply_overrides(Choices(), {key: value})
    assert message in str(excinfo.value)


def test_a_sections_own_error_names_the_key_once():
    with pytest.raises(ConfigError) as excinfo:
        apply_overrides(FDConfig(), {"fisher.t_eps": 1.0})
    assert str(excinfo.value).startswith("fisher.t_eps must lie in (0, 1)")


def test_field_descriptions_come_from_the_attributes_section():
    descriptions = field_descriptions(Choices)
    assert descriptions == {
        "mode": 'how to go: "fast" or "slow".',
        "level": "1, 2 or 3.",
        "scale": "a positive finite factor; this description goes on over two lines.",
        "window": "optional width (none: everything).",
        "sizes": "layer widths.",
    }
    train = field_descriptions(TrainConfig)
    assert set(train) == set(field_names(TrainConfig))  # every run setting is described
    assert train["vmap_seeds"].startswith("train several seeds in one vmapped program (True)")
    assert "\n" not in train["vmap_seeds"] and "  " not in train["vmap_seeds"]


@dataclasses.dataclass(frozen=True)
class Part:
    """A part.

    Attributes:
        name: the part's name.
    """

    name: str
    weight: float = 1.0


@dataclasses.dataclass(frozen=True)
class Assembly:
    """A dataclass read from a file.

    Attributes:
        parts: the parts, in order.
        where: the output folder.
        settings: dotted settings.
        inner: a section with a default.
    """

    parts: tuple[Part, ...]
    where: Path = Path("out")
    settings: DottedKeys = dataclasses.field(default_factory=dict)
    inner: FisherConfig = dataclasses.field(default_factory=lambda: FisherConfig(num_samples=8))


def test_from_dict_reads_required_fields_lists_of_tables_paths_and_dotted_tables():
    built = from_dict(
        Assembly,
        {
            "parts": [{"name": "a"}, {"name": "b", "weight": "2"}],
            "where": "~/x",
            "settings": {"agent": {"alpha": 3}, "steps": 5},
            "inner": {"t_eps": 0.9},
        },
    )
    assert built.parts == (Part("a"), Part("b", 2.0))
    assert built.where == Path("~/x").expanduser()
    assert built.settings == {"agent.alpha": 3, "steps": 5}
    assert built.inner == FisherConfig(num_samples=8, t_eps=0.9)  # only the keys given change
    with pytest.raises(ConfigError, match=r"missing required key parts \(the parts, in order\.\)"):
        from_dict(Assembly, {})
    with pytest.raises(ConfigError, match=r"missing required key parts\[1\]\.name \(the part's name\.\)"):
        from_dict(Assembly, {"parts": [{"name": "a"}, {"weight": 1}]})
    with pytest.raises(
        ConfigError, match=r"unknown config key 'parts\[0\]\.nmae' \(did you mean 'parts\[0\]\.name'"
    ):
        from_dict(Assembly, {"parts": [{"nmae": "a"}]})
    with pytest.raises(ConfigError, match=r"parts\[0\]: expected a table of keys, got 'a'"):
        from_dict(Assembly, {"parts": ["a"]})
    with pytest.raises(ConfigError, match="settings: expected a table of dotted keys"):
        from_dict(Assembly, {"parts": [], "settings": 3})
    assert class_keys(Assembly)[:3] == ["parts", "where", "settings"] and "inner.t_eps" in class_keys(
        Assembly
    )
