"""Per-task presets: task-name parsing, the official per-family values, named presets, resolution order."""

from __future__ import annotations

import pytest

from fidec.agents import AgentConfig, agent_names
from fidec.config import ConfigError
from fidec.presets import (
    AGENT_DEFAULTS,
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


@pytest.mark.parametrize("agent", agent_names())
def test_unknown_tasks_have_no_preset_and_resolve_to_the_agents_defaults(agent):
    assert task_preset("pointmaze-medium-navigate-singletask-task1-v0") is None
    expected = resolve_agent_config(agent)
    assert resolve_agent_config(agent, "pointmaze-medium-navigate-singletask-task1-v0") == expected
    assert expected == AgentConfig(**AGENT_DEFAULTS[agent].overrides)


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
    # FQL chose its alphas with normalisation off (its default), so it stays off for FQL.
    assert config.normalize_q_loss is False
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
@pytest.mark.parametrize("agent", ["fd", "iso", "fql"])
def test_adroit_uses_the_min_over_the_critic_ensemble(env_name, agent):
    assert resolve_agent_config(agent, env_name).q_agg == "min"


@pytest.mark.parametrize("name", D4RL_ANTMAZE)
@pytest.mark.parametrize("agent", ["fd", "iso", "fql"])
def test_d4rl_antmaze_uses_the_ensemble_mean(name, agent):
    """The official FD scripts and FQL use q_agg=min for Adroit only."""
    assert resolve_agent_config(agent, f"antmaze-{name}-v2").q_agg == "mean"


# FQL README: offline alphas of the pixel tasks and the D4RL datasets, and the offline-to-online ones.
FQL_PIXEL_ALPHA = {
    "cube-single-play": 300.0,
    "cube-double-play": 100.0,
    "scene-play": 100.0,
    "puzzle-3x3-play": 300.0,
    "puzzle-4x4-play": 300.0,
}
FQL_D4RL_ALPHA = {
    "antmaze-umaze-v2": 10.0,
    "antmaze-umaze-diverse-v2": 10.0,
    "antmaze-medium-play-v2": 10.0,
    "antmaze-medium-diverse-v2": 10.0,
    "antmaze-large-play-v2": 3.0,
    "antmaze-large-diverse-v2": 3.0,
    "pen-human-v1": 10000.0,
    "pen-cloned-v1": 10000.0,
    "pen-expert-v1": 3000.0,
    "door-human-v1": 30000.0,
    "door-cloned-v1": 30000.0,
    "door-expert-v1": 30000.0,
    "hammer-human-v1": 30000.0,
    "hammer-cloned-v1": 10000.0,
    "hammer-expert-v1": 30000.0,
    "relocate-human-v1": 10000.0,
    "relocate-cloned-v1": 30000.0,
    "relocate-expert-v1": 30000.0,
}
FQL_ONLINE_ALPHA = {
    "humanoidmaze-medium-navigate-singletask-task1-v0": 100.0,
    "antsoccer-arena-navigate-singletask-task4-v0": 30.0,
    "cube-double-play-singletask-task2-v0": 300.0,
    "scene-play-singletask-task2-v0": 300.0,
    "puzzle-4x4-play-singletask-task4-v0": 1000.0,
    "antmaze-large-play-v2": 3.0,
    "pen-cloned-v1": 1000.0,
    "door-cloned-v1": 1000.0,
    "hammer-cloned-v1": 1000.0,
    "relocate-cloned-v1": 10000.0,
}


@pytest.mark.parametrize(("family", "alpha"), sorted(FQL_PIXEL_ALPHA.items()))
def test_fql_pixel_tasks_use_fqls_pixel_alphas(family, alpha):
    config = resolve_agent_config("fql", f"visual-{family}-singletask-task1-v0")
    assert config.alpha == alpha
    assert config.normalize_q_loss is False
    assert config.encoder.name == "impala"


@pytest.mark.parametrize(("task", "alpha"), sorted(FQL_D4RL_ALPHA.items()))
def test_fql_d4rl_alphas_are_per_dataset(task, alpha):
    assert resolve_agent_config("fql", task).alpha == alpha
    # FD keeps its Lagrange multiplier's initial value.
    assert resolve_agent_config("fd", task).alpha == 10.0


@pytest.mark.parametrize(("task", "alpha"), sorted(FQL_ONLINE_ALPHA.items()))
def test_fql_offline_to_online_alphas_apply_only_with_an_online_phase(task, alpha):
    assert resolve_agent_config("fql", task, online=True).alpha == alpha
    offline = resolve_agent_config("fql", task).alpha
    assert offline == FQL_D4RL_ALPHA.get(task, offline)


@pytest.mark.parametrize(("agent", "clip"), [("fd", 5.0), ("iso", 5.0), ("fql", None), ("bcflow", None)])
def test_each_agent_gets_its_own_codes_gradient_clipping(agent, clip):
    """Official FD and its DeFlow clip the global gradient norm at 5.0; FQL does not clip."""
    assert resolve_agent_config(agent).grad_clip == clip
    assert resolve_agent_config(agent, "cube-single-play-singletask-task1-v0").grad_clip == clip


@pytest.mark.parametrize("preset", sorted(TASK_PRESETS))
@pytest.mark.parametrize("agent", agent_names())
def test_every_task_preset_is_valid_for_every_agent(preset, agent):
    """Each value is a known key of the right type (apply_overrides validates every override)."""
    config = resolve_agent_config(agent, presets=[preset])
    assert isinstance(config, AgentConfig)


def test_official_grid_preset_sets_the_paper_runs_settings():
    config = resolve_agent_config("fd", presets=["official-grid"])
    fisher = config.fisher
    assert fisher.estimator == "velocity"
    assert (fisher.t_eps, fisher.t_eps_max) == (0.85, 0.90)
    assert fisher.num_samples == 8
    assert fisher.damping == 1e-3
    assert fisher.reuse_base_sample is False
    # Everything outside the Fisher settings stays at the defaults.
    assert config.network == AgentConfig().network
    assert config.target_divergence == AgentConfig().target_divergence


def test_official_preset_is_the_official_agents_defaults():
    """official FD agents/fidec.py get_config: fisher_t 0.95, width 0, 4 samples, damping 1e-3, v / (1 - t),
    grad_clip 5.0, flow actions clipped."""
    config = resolve_agent_config("fd", "cube-single-play-singletask-task1-v0", presets=["official"])
    fisher = config.fisher
    assert (fisher.estimator, fisher.t_eps, fisher.t_eps_max) == ("velocity", 0.95, None)
    assert (fisher.num_samples, fisher.damping, fisher.reuse_base_sample) == (4, 1e-3, False)
    assert (config.grad_clip, config.clip_flow_actions) == (5.0, True)
    assert (config.lagrange, config.alpha, config.normalize_q_loss) == (True, 10.0, True)
    # The official code's network and optimiser defaults are fidec's defaults.
    assert config.network.actor_hidden == config.network.critic_hidden == (512,) * 4
    assert (config.network.actor_layer_norm, config.network.critic_layer_norm) == (False, True)
    assert (config.network.residual_init_scale, config.flow_steps) == (1.0, 10)
    assert (config.lr, config.batch_size, config.tau, config.discount) == (3e-4, 256, 0.005, 0.99)


def test_fidecs_own_fisher_defaults_are_labelled_as_its_choice():
    """fidec's FD default reads the exact (tweedie) score at t = 0.98; --preset official gives the official one."""
    fisher = resolve_agent_config("fd").fisher
    assert (fisher.estimator, fisher.t_eps, fisher.num_samples) == ("tweedie", 0.98, 4)


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
        presets=["official-grid", "tiny-networks"],
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
