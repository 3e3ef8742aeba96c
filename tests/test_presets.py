"""Per-task presets: task-name parsing, the official per-family values, named presets, resolution order."""

from __future__ import annotations

import pytest

from fidec.agents import AgentConfig, agent_names
from fidec.config import ConfigError
from fidec.presets import (
    NAMED_PRESETS,
    TASK_PRESETS,
    get_preset,
    preset_names,
    resolve_agent_config,
    task_family,
    task_preset,
)

# METHOD.md section 9 (official FD flags): family -> (discount, q_agg, target_divergence), and the
# FQL paper's per-environment alpha (its hyperparameter table).
OGBENCH_STATE = {
    "antmaze-large-navigate": (0.99, "min", 0.01, 10.0),
    "antmaze-giant-navigate": (0.995, "min", 0.01, 10.0),
    "humanoidmaze-medium-navigate": (0.995, "mean", 0.001, 30.0),
    "humanoidmaze-large-navigate": (0.995, "mean", 0.001, 30.0),
    "antsoccer-arena-navigate": (0.995, "mean", 0.01, 10.0),
    "cube-single-play": (0.99, "mean", 0.001, 300.0),
    "cube-double-play": (0.99, "mean", 0.001, 300.0),
    "scene-play": (0.99, "mean", 0.001, 300.0),
    "puzzle-3x3-play": (0.99, "mean", 0.005, 1000.0),
    "puzzle-4x4-play": (0.99, "mean", 0.005, 1000.0),
}
PIXEL_TARGETS = {
    "cube-single-play": 0.001,
    "cube-double-play": 0.001,
    "scene-play": 0.001,
    "puzzle-3x3-play": 0.005,
    "puzzle-4x4-play": 0.005,
}
D4RL_ANTMAZE = ["umaze", "umaze-diverse", "medium-play", "medium-diverse", "large-play", "large-diverse"]
ADROIT = [
    f"{task}-{kind}"
    for task in ("pen", "door", "hammer", "relocate")
    for kind in ("human", "cloned", "expert")
]


@pytest.mark.parametrize(
    ("env_name", "family"),
    [
        ("cube-double-play-singletask-task2-v0", "cube-double-play"),
        ("cube-double-play-singletask-v0", "cube-double-play"),
        ("puzzle-4x4-play-singletask-task4-v0", "puzzle-4x4-play"),
        ("antmaze-large-navigate-singletask-task1-v0", "antmaze-large-navigate"),
        ("humanoidmaze-medium-navigate-singletask-task5-v0", "humanoidmaze-medium-navigate"),
        ("antsoccer-arena-navigate-singletask-task4-v0", "antsoccer-arena-navigate"),
        ("scene-play-v0", "scene-play"),
        ("visual-cube-single-play-singletask-task1-v0", "visual-cube-single-play"),
        ("visual-puzzle-3x3-play-singletask-task1-v0", "visual-puzzle-3x3-play"),
        ("ogbench/cube-single-play-singletask-task3-v0", "cube-single-play"),
        *[(f"antmaze-{name}-v2", "d4rl-antmaze") for name in D4RL_ANTMAZE],
        *[(f"{name}-v1", "d4rl-adroit") for name in ADROIT],
    ],
)
def test_task_family_of_ogbench_visual_and_d4rl_names(env_name, family):
    assert task_family(env_name) == family
    assert task_preset(env_name) is TASK_PRESETS[family]


def test_every_ogbench_state_family_and_pixel_family_has_a_preset():
    assert set(OGBENCH_STATE) <= set(TASK_PRESETS)
    assert {f"visual-{family}" for family in PIXEL_TARGETS} <= set(TASK_PRESETS)


def test_unknown_tasks_have_no_preset_and_resolve_to_the_defaults():
    assert task_preset("pointmaze-medium-navigate-singletask-task1-v0") is None
    assert resolve_agent_config("fd", "pointmaze-medium-navigate-singletask-task1-v0") == AgentConfig()


@pytest.mark.parametrize("family", sorted(OGBENCH_STATE))
@pytest.mark.parametrize("agent", ["fd", "iso"])
def test_fd_and_iso_get_the_official_per_family_values(family, agent):
    discount, q_agg, target, _ = OGBENCH_STATE[family]
    config = resolve_agent_config(agent, f"{family}-singletask-task1-v0")
    assert config.discount == discount
    assert config.q_agg == q_agg
    assert config.target_divergence == target
    assert config.normalize_q_loss is True
    assert config.lagrange is True
    assert config.alpha == 10.0


@pytest.mark.parametrize("family", sorted(OGBENCH_STATE))
def test_fql_gets_its_own_alpha_and_the_shared_values(family):
    discount, q_agg, _, fql_alpha = OGBENCH_STATE[family]
    config = resolve_agent_config("fql", f"{family}-singletask-task2-v0")
    assert config.alpha == fql_alpha
    assert config.discount == discount
    assert config.q_agg == q_agg
    # FD's Lagrange target is not FQL's business.
    assert config.target_divergence == AgentConfig().target_divergence


@pytest.mark.parametrize("family", sorted(PIXEL_TARGETS))
def test_pixel_tasks_use_the_pixel_target_divergence(family):
    config = resolve_agent_config("fd", f"visual-{family}-singletask-task1-v0")
    assert config.target_divergence == PIXEL_TARGETS[family]
    assert config.discount == OGBENCH_STATE[family][0]


@pytest.mark.parametrize(
    "env_name", [f"antmaze-{name}-v2" for name in D4RL_ANTMAZE] + [f"{n}-v1" for n in ADROIT]
)
def test_d4rl_tasks_use_target_divergence_1e_3(env_name):
    assert resolve_agent_config("fd", env_name).target_divergence == 0.001


@pytest.mark.parametrize("env_name", [f"{name}-v1" for name in ADROIT])
def test_adroit_uses_the_min_over_the_critic_ensemble(env_name):
    assert resolve_agent_config("fd", env_name).q_agg == "min"


@pytest.mark.parametrize("preset", sorted(TASK_PRESETS))
@pytest.mark.parametrize("agent", agent_names())
def test_every_task_preset_is_valid_for_every_agent(preset, agent):
    """Each value is a known key of the right type (apply_overrides validates every override)."""
    config = resolve_agent_config(agent, presets=[preset])
    assert isinstance(config, AgentConfig)


def test_official_fisher_preset_sets_the_official_grid_settings():
    config = resolve_agent_config("fd", presets=["official-fisher"])
    fisher = config.fisher
    assert fisher.estimator == "velocity"
    assert (fisher.t_eps, fisher.t_eps_max) == (0.85, 0.90)
    assert fisher.num_samples == 8
    assert fisher.damping == 1e-3
    # Everything outside the Fisher settings stays at the defaults.
    assert config.network == AgentConfig().network
    assert config.target_divergence == AgentConfig().target_divergence


@pytest.mark.parametrize(("name", "hidden"), [("paper-networks", (512,) * 4), ("cpu-networks", (256,) * 3)])
def test_network_presets_set_both_actor_and_critic(name, hidden):
    config = resolve_agent_config("fd", presets=[name])
    assert config.network.actor_hidden == hidden
    assert config.network.critic_hidden == hidden
    assert config.batch_size == 256


def test_resolution_order_is_family_then_named_presets_then_overrides():
    env_name = "puzzle-3x3-play-singletask-task1-v0"
    config = resolve_agent_config(
        "fd",
        env_name,
        presets=["official-fisher", "tiny-networks"],
        overrides={"target_divergence": 0.05, "fisher.num_samples": "2"},
    )
    assert config.discount == 0.99  # family
    assert config.normalize_q_loss is True  # family
    assert config.target_divergence == 0.05  # explicit override beats the family's 0.005
    assert config.fisher.estimator == "velocity"  # named preset
    assert config.fisher.num_samples == 2  # explicit override beats the named preset's 8
    assert config.network.actor_hidden == (32, 32)  # second named preset
    # A later named preset overrides an earlier one.
    assert resolve_agent_config("fd", presets=["tiny-networks", "cpu-networks"]).batch_size == 256


def test_resolution_starts_from_the_given_base_config():
    base = AgentConfig(lr=1e-4)
    config = resolve_agent_config("fd", "scene-play-singletask-task2-v0", base=base)
    assert config.lr == 1e-4
    assert config.target_divergence == 0.001


def test_unknown_preset_lists_the_valid_names():
    with pytest.raises(ConfigError, match="unknown preset 'official-fischer'") as excinfo:
        get_preset("official-fischer")
    message = str(excinfo.value)
    for name in list(NAMED_PRESETS) + list(TASK_PRESETS):
        assert name in message
    with pytest.raises(ConfigError, match="unknown preset"):
        resolve_agent_config("fd", presets=["fast"])


def test_preset_names_are_unique_and_complete():
    names = preset_names()
    assert len(names) == len(set(names))
    assert set(names) == set(NAMED_PRESETS) | set(TASK_PRESETS)


def test_every_preset_states_its_source():
    for name in preset_names():
        assert get_preset(name).source, f"preset {name!r} does not say where its values come from"
