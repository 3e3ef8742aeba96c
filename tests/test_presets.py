"""Presets: task-name parsing, every agent's per-task and named presets (their values and sources), and the
order in which a config is resolved."""

from __future__ import annotations

import re

import pytest

from fidec.agents import REGISTRY, agent_names, default_config, get_spec
from fidec.agents.base import Preset
from fidec.agents.fd import FDConfig
from fidec.config import ConfigError, apply_overrides
from fidec.presets import (
    NETWORK_PRESETS,
    SHARED_FAMILIES,
    describe,
    get_preset,
    preset_names,
    resolve_agent_config,
    task_family,
    task_presets,
)

D4RL_ANTMAZE = ["umaze", "umaze-diverse", "medium-play", "medium-diverse", "large-play", "large-diverse"]
ADROIT = [
    f"{task}-{kind}"
    for task in ("pen", "door", "hammer", "relocate")
    for kind in ("human", "cloned", "expert")
]
MANIPULATION = ["cube-single-play", "cube-double-play", "scene-play", "puzzle-3x3-play", "puzzle-4x4-play"]
NAVIGATION = [
    "antmaze-large-navigate",
    "antmaze-giant-navigate",
    "humanoidmaze-medium-navigate",
    "humanoidmaze-large-navigate",
    "antsoccer-arena-navigate",
]
PIXEL = [f"visual-{family}" for family in MANIPULATION]


def example_task(family: str) -> str:
    """A task of the family: an OGBench single task, or a D4RL dataset of the D4RL families."""
    if family == "d4rl-antmaze":
        return "antmaze-large-play-v2"
    if family == "d4rl-adroit":
        return "pen-human-v1"
    return f"{family}-singletask-task1-v0"


def lookup(config, key: str):
    for part in key.split("."):
        config = getattr(config, part)
    return config


def every_preset() -> list[tuple[str, str, str, Preset]]:
    """(agent, kind, name, preset) of every preset an agent module declares."""
    out = []
    for name, spec in REGISTRY.items():
        tables = spec.presets
        for kind, table in [
            ("family", tables.families),
            ("task", tables.tasks),
            ("online family", tables.online_families),
            ("online task", tables.online_tasks),
            ("named", tables.named),
        ]:
            out += [(name, kind, key, preset) for key, preset in table.items()]
    return out


EVERY_PRESET = every_preset()
PRESET_IDS = [f"{agent}-{kind}-{name}" for agent, kind, name, _ in EVERY_PRESET]


# -- task names ------------------------------------------------------------------------------------------


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
        ("pointmaze-medium-navigate-nosuchtask", "pointmaze-medium-navigate-nosuchtask"),
        *[(f"antmaze-{name}-v2", "d4rl-antmaze") for name in D4RL_ANTMAZE],
        *[(f"{name}-v1", "d4rl-adroit") for name in ADROIT],
    ],
)
def test_task_family_of_ogbench_visual_and_d4rl_names(env_name, family):
    assert task_family(env_name) == family


@pytest.mark.parametrize("agent", agent_names())
def test_every_family_and_task_key_is_a_name_a_run_can_reach(agent):
    """A preset keyed by a family task_family never returns (or a task it cannot parse) would never apply."""
    presets = get_spec(agent).presets
    for family in [*presets.families, *presets.online_families]:
        assert task_family(example_task(family)) == family
    for task in [*presets.tasks, *presets.online_tasks]:
        assert task_family(task) in ("d4rl-antmaze", "d4rl-adroit"), task


@pytest.mark.parametrize("agent", agent_names())
def test_unknown_tasks_have_no_preset_and_resolve_to_the_agents_defaults(agent):
    task = "pointmaze-medium-navigate-singletask-task1-v0"
    assert task_presets(agent, task) == task_presets(agent, task, online=True) == []
    assert resolve_agent_config(agent, task) == resolve_agent_config(agent) == default_config(agent)
    assert type(default_config(agent)) is get_spec(agent).config


# -- every preset is valid and says where it comes from --------------------------------------------------


@pytest.mark.parametrize(("agent", "kind", "name", "preset"), EVERY_PRESET, ids=PRESET_IDS)
def test_every_preset_of_every_agent_resolves_to_a_valid_config_with_its_values(agent, kind, name, preset):
    """Each key is a field of the agent's own config class, each value of the right type, and lands as given."""
    assert preset.values, f"{agent} {kind} preset {name!r} sets nothing"
    config = apply_overrides(default_config(agent), preset.values)
    assert type(config) is get_spec(agent).config
    for key, value in preset.values.items():
        assert lookup(config, key) == value, key


@pytest.mark.parametrize(("agent", "kind", "name", "preset"), EVERY_PRESET, ids=PRESET_IDS)
def test_every_preset_states_its_source(agent, kind, name, preset):
    assert preset.source.strip(), f"{agent} {kind} preset {name!r} does not say where its values come from"
    if agent in ("fd", "iso", "fql") or kind == "named":
        # A code or script preset names the file and its lines.
        assert re.search(r"\S+\.(py|sh|md):\d+", preset.source), preset.source
    else:
        # The FQL paper's tuned baselines name the paper's table.
        assert re.search(r"Table [5-7]", preset.source), preset.source


@pytest.mark.parametrize("agent", agent_names())
@pytest.mark.parametrize("family", [*NAVIGATION, *MANIPULATION, *PIXEL, "d4rl-antmaze", "d4rl-adroit"])
def test_resolving_any_task_of_any_family_gives_the_agents_own_config(agent, family):
    config = resolve_agent_config(agent, example_task(family))
    assert type(config) is get_spec(agent).config
    merged: dict = {}  # a later step (a task's value) wins over an earlier one (its family's)
    for step in task_presets(agent, example_task(family)):
        merged.update(step.preset.values)
    for key, value in merged.items():
        assert lookup(config, key) == value


@pytest.mark.parametrize("name", sorted(NETWORK_PRESETS))
@pytest.mark.parametrize("agent", agent_names())
def test_network_presets_apply_to_every_agent(name, agent):
    config = resolve_agent_config(agent, presets=[name])
    for key, value in NETWORK_PRESETS[name].values.items():
        assert lookup(config, key) == value


@pytest.mark.parametrize(("name", "hidden"), [("paper-networks", (512,) * 4), ("cpu-networks", (256,) * 3)])
def test_network_presets_set_both_actor_and_critic(name, hidden):
    config = resolve_agent_config("fd", presets=[name])
    assert config.network.actor_hidden == config.network.critic_hidden == hidden
    assert config.batch_size == 256


def test_shared_sources_are_stated_and_describe_lists_every_preset():
    for preset in [*NETWORK_PRESETS.values(), *SHARED_FAMILIES.values()]:
        assert preset.source.strip()
    rows = list(describe())
    listed = {(agent, name) for agent, name, *_ in rows}
    for agent, _, name, _ in EVERY_PRESET:
        assert (agent, name) in listed
    for agent, name, kind, sets, about in rows:
        assert sets and about.endswith("]"), (agent, name, kind)
    assert {agent for agent, *_ in describe("iql")} == {"every agent", "iql"}


# -- FD and iso: the official FD code's per-task flags ---------------------------------------------------

# The official grid's registry (scripts/fql_scope_registry.sh): family -> (discount, q_agg, target_divergence).
FD_REGISTRY = {
    "antmaze-large-navigate": (0.99, "min", 0.01),
    "antmaze-giant-navigate": (0.995, "min", 0.01),
    "humanoidmaze-medium-navigate": (0.995, "mean", 0.001),
    "humanoidmaze-large-navigate": (0.995, "mean", 0.001),
    "antsoccer-arena-navigate": (0.995, "mean", 0.01),
    "cube-single-play": (0.99, "mean", 0.001),
    "cube-double-play": (0.99, "mean", 0.001),
    "scene-play": (0.99, "mean", 0.001),
    "puzzle-3x3-play": (0.99, "mean", 0.005),
    "puzzle-4x4-play": (0.99, "mean", 0.005),
    "visual-cube-single-play": (0.99, "mean", 0.001),
    "visual-cube-double-play": (0.99, "mean", 0.001),
    "visual-scene-play": (0.99, "mean", 0.001),
    "visual-puzzle-3x3-play": (0.99, "mean", 0.005),
    "visual-puzzle-4x4-play": (0.99, "mean", 0.005),
    "d4rl-antmaze": (0.99, "mean", 0.001),
    "d4rl-adroit": (0.99, "min", 0.001),
}


@pytest.mark.parametrize("family", sorted(FD_REGISTRY))
@pytest.mark.parametrize("agent", ["fd", "iso"])
def test_fd_and_iso_get_the_official_registrys_per_family_values(family, agent):
    discount, q_agg, target = FD_REGISTRY[family]
    preset = get_spec(agent).presets.families[family]
    assert set(preset.values) == {"discount", "q_agg", "target_divergence"}
    assert "fql_scope_registry.sh" in preset.source
    config = resolve_agent_config(agent, example_task(family))
    assert (config.discount, config.q_agg, config.target_divergence) == (discount, q_agg, target)
    # The registry does not set these: the agent's defaults stay (the grid ran normalize_q_loss off).
    assert config.normalize_q_loss is False
    assert (config.lagrange, config.alpha, config.grad_clip) == (True, 10.0, 5.0)


def test_fd_and_iso_share_the_registry():
    assert get_spec("fd").presets.families == get_spec("iso").presets.families
    assert set(get_spec("fd").presets.families) == set(FD_REGISTRY)


@pytest.mark.parametrize("name", D4RL_ANTMAZE)
@pytest.mark.parametrize("agent", ["fd", "iso", "fql"])
def test_d4rl_antmaze_uses_the_ensemble_mean_and_adroit_the_min(name, agent):
    """The official FD scripts and FQL use q_agg=min for Adroit only."""
    assert resolve_agent_config(agent, f"antmaze-{name}-v2").q_agg == "mean"
    for task in ADROIT:
        assert resolve_agent_config(agent, f"{task}-v1").q_agg == "min"


def test_official_preset_is_the_official_agents_defaults():
    """official FD agents/fidec.py get_config: fisher_t 0.95, width 0, 4 samples, damping 1e-3, v / (1 - t),
    grad_clip 5.0, flow actions clipped, target from the pre-update parameters."""
    config = resolve_agent_config("fd", "cube-single-play-singletask-task1-v0", presets=["official"])
    fisher = config.fisher
    assert (fisher.estimator, fisher.t_eps, fisher.t_eps_max) == ("velocity", 0.95, None)
    assert (fisher.num_samples, fisher.damping, fisher.reuse_base_sample) == (4, 1e-3, False)
    assert (config.grad_clip, config.clip_flow_actions, config.target_update) == (5.0, True, "before")
    assert (config.lagrange, config.alpha, config.normalize_q_loss) == (True, 10.0, False)
    assert config.target_divergence == 0.001  # the family's, untouched by the named preset
    # The official code's network and optimiser defaults are fidec's defaults.
    assert config.network.actor_hidden == config.network.critic_hidden == (512,) * 4
    assert (config.network.actor_layer_norm, config.network.critic_layer_norm) == (False, True)
    assert (config.network.residual_init_scale, config.flow_steps) == (1.0, 10)
    assert (config.lr, config.batch_size, config.tau, config.discount) == (3e-4, 256, 0.005, 0.99)


@pytest.mark.parametrize(
    "family", ["cube-single-play", "puzzle-3x3-play", "visual-scene-play", "d4rl-adroit"]
)
def test_official_grid_preset_sets_the_paper_runs_settings(family):
    """The grid script: v/(1-t) at t ~ U[0.85, 0.90] per sample, M = 8, damping 1e-3, normalize_q_loss off."""
    config = resolve_agent_config("fd", example_task(family), presets=["official-grid"])
    fisher = config.fisher
    assert fisher.estimator == "velocity"
    assert (fisher.t_eps, fisher.t_eps_max) == (0.85, 0.90)
    assert (fisher.num_samples, fisher.damping, fisher.reuse_base_sample) == (8, 1e-3, False)
    assert config.normalize_q_loss is False
    assert (config.grad_clip, config.clip_flow_actions, config.target_update) == (5.0, True, "before")
    # The family's values stay; the network stays at the defaults.
    assert config.target_divergence == FD_REGISTRY[family][2]
    assert config.network == FDConfig().network
    assert (
        resolve_agent_config("iso", example_task(family), presets=["official-grid"]).normalize_q_loss is False
    )


@pytest.mark.parametrize("agent", ["fd", "iso"])
def test_official_state5_preset_turns_the_q_normalisation_on(agent):
    config = resolve_agent_config(agent, "scene-play-singletask-task2-v0", presets=["official-state5"])
    assert config.normalize_q_loss is True
    if agent == "fd":  # otherwise the grid's Fisher settings
        grid = resolve_agent_config(agent, "scene-play-singletask-task2-v0", presets=["official-grid"])
        assert config.fisher == grid.fisher
        assert apply_overrides(config, {"normalize_q_loss": False}) == grid


def test_fidecs_own_fisher_defaults_are_labelled_as_its_choice():
    """fidec's FD default reads the exact (tweedie) score at t = 0.98; --preset official gives the official one."""
    fisher = resolve_agent_config("fd").fisher
    assert (fisher.estimator, fisher.t_eps, fisher.num_samples) == ("tweedie", 0.98, 4)


# -- FQL: its README's commands --------------------------------------------------------------------------

# FQL README (offline, state): family -> (alpha, q_agg, discount).
FQL_STATE = {
    "antmaze-large-navigate": (10.0, "min", 0.99),
    "antmaze-giant-navigate": (10.0, "min", 0.995),
    "humanoidmaze-medium-navigate": (30.0, "mean", 0.995),
    "humanoidmaze-large-navigate": (30.0, "mean", 0.995),
    "antsoccer-arena-navigate": (10.0, "mean", 0.995),
    "cube-single-play": (300.0, "mean", 0.99),
    "cube-double-play": (300.0, "mean", 0.99),
    "scene-play": (300.0, "mean", 0.99),
    "puzzle-3x3-play": (1000.0, "mean", 0.99),
    "puzzle-4x4-play": (1000.0, "mean", 0.99),
}
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
    "antmaze-large-diverse-v2": 3.0,
    "pen-cloned-v1": 1000.0,
    "door-cloned-v1": 1000.0,
    "hammer-cloned-v1": 1000.0,
    "relocate-cloned-v1": 10000.0,
}


@pytest.mark.parametrize("family", sorted(FQL_STATE))
def test_fql_gets_its_readmes_alpha_q_agg_and_discount(family):
    alpha, q_agg, discount = FQL_STATE[family]
    config = resolve_agent_config("fql", f"{family}-singletask-task2-v0")
    assert (config.alpha, config.q_agg, config.discount) == (alpha, q_agg, discount)
    # FQL chose its alphas with normalisation off (its default), and does not clip gradients.
    assert (config.normalize_q_loss, config.grad_clip) == (False, None)
    assert get_spec("fql").presets.families[family].source.startswith("FQL README.md:")


@pytest.mark.parametrize(("family", "alpha"), sorted(FQL_PIXEL_ALPHA.items()))
def test_fql_pixel_tasks_use_fqls_pixel_alphas_and_the_impala_encoder(family, alpha):
    config = resolve_agent_config("fql", f"visual-{family}-singletask-task1-v0")
    assert config.alpha == alpha
    assert config.normalize_q_loss is False
    assert (config.encoder.name, config.encoder.frame_stack, config.encoder.augment_prob) == (
        "impala",
        3,
        0.5,
    )


@pytest.mark.parametrize(("task", "alpha"), sorted(FQL_D4RL_ALPHA.items()))
def test_fql_d4rl_alphas_are_per_dataset(task, alpha):
    assert resolve_agent_config("fql", task).alpha == alpha
    # FD keeps its Lagrange multiplier's initial value.
    assert resolve_agent_config("fd", task).alpha == 10.0


@pytest.mark.parametrize(("task", "alpha"), sorted(FQL_ONLINE_ALPHA.items()))
def test_fql_offline_to_online_alphas_apply_only_with_an_online_phase(task, alpha):
    assert resolve_agent_config("fql", task, online=True).alpha == alpha
    offline = resolve_agent_config("fql", task).alpha
    family = task_family(task)
    expected = FQL_D4RL_ALPHA[task] if task in FQL_D4RL_ALPHA else FQL_STATE[family][0]
    assert offline == expected


# -- IQL, ReBRAC, IFQL: the FQL paper's tuned values (Tables 5-7, as their modules declare them) ----------

DISCOUNT_995 = {"antmaze-giant-navigate", "humanoidmaze-medium-navigate", "humanoidmaze-large-navigate"}
# Table 6: IQL's AWR inverse temperature (the FQL code's alpha) per family.
IQL_BETA = {
    "antmaze-large-navigate": 10.0,
    "antmaze-giant-navigate": 10.0,
    "humanoidmaze-medium-navigate": 10.0,
    "humanoidmaze-large-navigate": 10.0,
    "cube-single-play": 1.0,
    "cube-double-play": 0.3,
    "scene-play": 10.0,
    "puzzle-3x3-play": 10.0,
    "puzzle-4x4-play": 3.0,
    "visual-cube-single-play": 1.0,
    "visual-cube-double-play": 0.3,
    "visual-scene-play": 10.0,
    "visual-puzzle-3x3-play": 10.0,
    "visual-puzzle-4x4-play": 3.0,
}
IQL_ONLINE_BETA = {
    "humanoidmaze-medium-navigate": 10.0,
    "antsoccer-arena-navigate": 1.0,
    "cube-double-play": 0.3,
    "scene-play": 10.0,
    "puzzle-4x4-play": 3.0,
}
# Table 6: ReBRAC's (alpha_actor, alpha_critic) per family; Table 7 the offline-to-online ones.
REBRAC_ALPHAS = {
    "antmaze-large-navigate": (0.003, 0.01),
    "antmaze-giant-navigate": (0.003, 0.01),
    "humanoidmaze-medium-navigate": (0.01, 0.01),
    "humanoidmaze-large-navigate": (0.01, 0.01),
    "cube-single-play": (1.0, 0.0),
    "cube-double-play": (0.1, 0.0),
    "scene-play": (0.1, 0.01),
    "puzzle-3x3-play": (0.3, 0.01),
    "puzzle-4x4-play": (0.3, 0.01),
    "visual-cube-single-play": (1.0, 0.0),
    "visual-cube-double-play": (0.1, 0.0),
    "visual-scene-play": (0.1, 0.01),
    "visual-puzzle-3x3-play": (0.3, 0.01),
    "visual-puzzle-4x4-play": (0.3, 0.01),
}
REBRAC_ONLINE_ALPHAS = {
    "humanoidmaze-medium-navigate": (0.01, 0.01),
    "antsoccer-arena-navigate": (0.01, 0.01),
    "cube-double-play": (0.1, 0.0),
    "scene-play": (0.1, 0.01),
    "puzzle-4x4-play": (0.3, 0.01),
}
# Tables 6 and 7: IFQL's N, 32 but for these datasets.
IFQL_TASK_N = {"door-cloned-v1": 128, "relocate-human-v1": 128}
IFQL_ONLINE_N = {
    "antsoccer-arena-navigate-singletask-task4-v0": 64,
    "pen-cloned-v1": 128,
    "door-cloned-v1": 128,
    "hammer-cloned-v1": 128,
    "relocate-cloned-v1": 128,
}


def fql_paper_discount(family: str) -> float:
    return 0.995 if family in DISCOUNT_995 or family == "antsoccer-arena-navigate" else 0.99


@pytest.mark.parametrize("family", sorted(IQL_BETA))
def test_iql_gets_the_papers_awr_temperature_and_small_state_networks(family):
    config = resolve_agent_config("iql", example_task(family))
    assert config.awr_inverse_temperature == IQL_BETA[family]
    assert config.discount == fql_paper_discount(family)
    # "smaller [256]x4 MLPs for the state-based manipulation tasks (but not for pixel-based tasks)"
    hidden = (256,) * 4 if family in MANIPULATION else (512,) * 4
    assert config.network.actor_hidden == config.network.critic_hidden == hidden
    assert (config.actor_loss, config.expectile, config.const_std, config.grad_clip) == (
        "awr",
        0.9,
        True,
        None,
    )


@pytest.mark.parametrize("family", sorted(REBRAC_ALPHAS))
def test_rebrac_gets_the_papers_actor_and_critic_penalties(family):
    config = resolve_agent_config("rebrac", example_task(family))
    assert (config.alpha_actor, config.alpha_critic) == REBRAC_ALPHAS[family]
    assert config.discount == fql_paper_discount(family)
    assert config.network.actor_hidden == config.network.critic_hidden == (512,) * 4
    assert (config.actor_freq, config.actor_noise, config.actor_noise_clip) == (2, 0.2, 0.5)


@pytest.mark.parametrize("family", [*NAVIGATION, *MANIPULATION, *PIXEL, "d4rl-antmaze", "d4rl-adroit"])
def test_ifql_takes_the_best_of_32_flow_samples(family):
    config = resolve_agent_config("ifql", example_task(family))
    assert config.num_samples == 32
    assert config.discount == fql_paper_discount(family)


@pytest.mark.parametrize(("task", "n"), sorted(IFQL_TASK_N.items()))
def test_ifql_takes_more_samples_on_the_papers_adroit_exceptions(task, n):
    assert resolve_agent_config("ifql", task).num_samples == n
    assert (
        resolve_agent_config("ifql", task.replace("door", "pen").replace("relocate", "hammer")).num_samples
        == 32
    )


@pytest.mark.parametrize("family", sorted(IQL_ONLINE_BETA))
def test_iql_and_rebrac_offline_to_online_values_apply_only_with_an_online_phase(family):
    task = example_task(family)
    assert resolve_agent_config("iql", task, online=True).awr_inverse_temperature == IQL_ONLINE_BETA[family]
    config = resolve_agent_config("rebrac", task, online=True)
    assert (config.alpha_actor, config.alpha_critic) == REBRAC_ONLINE_ALPHAS[family]
    if family == "antsoccer-arena-navigate":  # no offline value: the code defaults offline
        assert resolve_agent_config("iql", task).awr_inverse_temperature == 10.0
        assert (
            resolve_agent_config("rebrac", task).alpha_actor,
            resolve_agent_config("rebrac", task).alpha_critic,
        ) == (
            0.0,
            0.0,
        )


@pytest.mark.parametrize(("task", "n"), sorted(IFQL_ONLINE_N.items()))
def test_ifql_offline_to_online_sample_counts(task, n):
    assert resolve_agent_config("ifql", task, online=True).num_samples == n
    assert resolve_agent_config("ifql", task).num_samples == IFQL_TASK_N.get(task, 32)


@pytest.mark.parametrize(
    ("agent", "task", "values"),
    [
        # FQL README.md:232-242, the example commands of the three baselines.
        (
            "iql",
            "humanoidmaze-medium-navigate-singletask-v0",
            {"discount": 0.995, "awr_inverse_temperature": 10.0},
        ),
        ("rebrac", "humanoidmaze-medium-navigate-singletask-v0", {"alpha_actor": 0.01, "alpha_critic": 0.01}),
        ("ifql", "humanoidmaze-medium-navigate-singletask-v0", {"discount": 0.995, "num_samples": 32}),
        ("iql", "visual-cube-single-play-singletask-task1-v0", {"awr_inverse_temperature": 1.0}),
        ("rebrac", "visual-cube-single-play-singletask-task1-v0", {"alpha_actor": 1.0, "alpha_critic": 0.0}),
        (
            "ifql",
            "visual-cube-single-play-singletask-task1-v0",
            {"num_samples": 32, "encoder.name": "impala"},
        ),
    ],
)
def test_the_baselines_match_the_fql_readmes_example_commands(agent, task, values):
    config = resolve_agent_config(agent, task)
    for key, value in values.items():
        assert lookup(config, key) == value


@pytest.mark.parametrize("agent", ["fql", "iql", "rebrac", "ifql"])
def test_the_fql_codes_official_presets_are_its_defaults(agent):
    """Each FQL-family agent's config defaults are its code's get_config; ``official`` pins what differs
    from fidec's other agents (no gradient clipping, the pre-update target)."""
    preset = get_preset("official", agent)
    assert re.search(rf"agents/{agent}\.py:\d+-\d+ \(get_config\)", preset.source)
    assert resolve_agent_config(agent, presets=["official"]) == default_config(agent)
    config = default_config(agent)
    assert (config.lr, config.batch_size, config.tau, config.discount) == (3e-4, 256, 0.005, 0.99)
    assert config.network.actor_hidden == config.network.critic_hidden == (512,) * 4
    assert (config.network.actor_layer_norm, config.network.critic_layer_norm) == (False, True)


@pytest.mark.parametrize(
    ("agent", "clip"),
    [
        ("fd", 5.0),
        ("iso", 5.0),
        ("fql", None),
        ("bcflow", None),
        ("iql", None),
        ("rebrac", None),
        ("ifql", None),
    ],
)
def test_each_agent_gets_its_own_codes_gradient_clipping(agent, clip):
    """Official FD and its DeFlow clip the global gradient norm at 5.0; the FQL code does not clip."""
    assert resolve_agent_config(agent).grad_clip == clip
    assert resolve_agent_config(agent, "cube-single-play-singletask-task1-v0").grad_clip == clip


@pytest.mark.parametrize("agent", agent_names())
@pytest.mark.parametrize("family", PIXEL)
def test_pixel_tasks_give_every_agent_the_impala_encoder(agent, family):
    config = resolve_agent_config(agent, example_task(family))
    assert config.encoder.name == "impala"
    assert task_presets(agent, example_task(family))[0].kind == "shared family"


# -- resolution order ------------------------------------------------------------------------------------


def test_resolution_order_is_family_then_task_then_online_then_named_presets_then_overrides():
    # FQL on door-cloned: family (adroit) alpha 10000 < task 30000 < online task 1000.
    assert [s.kind for s in task_presets("fql", "door-cloned-v1", online=True)] == [
        "family",
        "task",
        "online task",
    ]
    assert resolve_agent_config("fql", "door-cloned-v1").alpha == 30000.0
    assert resolve_agent_config("fql", "door-cloned-v1", online=True).alpha == 1000.0
    # FQL on humanoidmaze-medium: the online family (100) beats the family (30).
    assert (
        resolve_agent_config("fql", "humanoidmaze-medium-navigate-singletask-task1-v0", online=True).alpha
        == 100
    )
    # IQL on cube-single: the family's 256x4 networks, then a named preset, then explicit overrides.
    env_name = "cube-single-play-singletask-task1-v0"
    assert resolve_agent_config("iql", env_name).network.actor_hidden == (256,) * 4
    config = resolve_agent_config(
        "iql", env_name, presets=["tiny-networks"], overrides={"network.critic_hidden": "8,8"}
    )
    assert config.network.actor_hidden == (32, 32)  # named preset beats the family
    assert config.network.critic_hidden == (8, 8)  # explicit override beats the named preset
    assert config.awr_inverse_temperature == 1.0  # the family's value stays


def test_named_presets_apply_in_order_and_overrides_beat_them():
    env_name = "puzzle-3x3-play-singletask-task1-v0"
    config = resolve_agent_config(
        "fd",
        env_name,
        presets=["official-grid", "tiny-networks"],
        overrides={"target_divergence": 0.05, "fisher.num_samples": "2"},
    )
    assert config.discount == 0.99  # family
    assert config.target_divergence == 0.05  # explicit override beats the family's 0.005
    assert config.fisher.estimator == "velocity"  # named preset
    assert config.fisher.num_samples == 2  # explicit override beats the named preset's 8
    assert config.network.actor_hidden == (32, 32)  # second named preset
    # A later named preset overrides an earlier one.
    assert resolve_agent_config("fd", presets=["tiny-networks", "cpu-networks"]).batch_size == 256
    assert resolve_agent_config("fd", presets=["official-grid", "official-state5"]).normalize_q_loss is True
    assert resolve_agent_config("fd", presets=["official-state5", "official-grid"]).normalize_q_loss is False


def test_resolution_starts_from_the_given_base_config():
    base = FDConfig(lr=1e-4)
    config = resolve_agent_config("fd", "scene-play-singletask-task2-v0", base=base)
    assert config.lr == 1e-4
    assert config.target_divergence == 0.001


def test_a_family_given_as_a_named_preset_sets_the_shared_and_the_agents_values():
    preset = get_preset("visual-cube-double-play", "rebrac")
    assert preset.values == {
        "encoder.name": "impala",
        "alpha_actor": 0.1,
        "alpha_critic": 0.0,
        "discount": 0.99,
    }
    assert "FQL README.md" in preset.source and "Table 6" in preset.source
    config = resolve_agent_config("rebrac", presets=["visual-cube-double-play"])
    assert (config.encoder.name, config.alpha_actor) == ("impala", 0.1)


# -- errors and names ------------------------------------------------------------------------------------


def test_an_unknown_preset_lists_the_valid_names_with_a_did_you_mean():
    with pytest.raises(ConfigError, match="unknown preset 'official-gird' for agent 'fd'") as excinfo:
        get_preset("official-gird", "fd")
    message = str(excinfo.value)
    assert "(did you mean 'official-grid'" in message
    for name in preset_names("fd"):
        assert name in message
    with pytest.raises(ConfigError, match="unknown preset 'fast'"):
        resolve_agent_config("fd", presets=["fast"])


def test_another_agents_preset_is_refused_naming_whose_it_is():
    with pytest.raises(
        ConfigError, match=r"unknown preset 'official-grid' for agent 'fql' \(it is a preset of fd, iso\)"
    ):
        get_preset("official-grid", "fql")
    # A family an agent has no preset for is not one of its names either.
    with pytest.raises(ConfigError, match="unknown preset 'd4rl-adroit' for agent 'iql'"):
        get_preset("d4rl-adroit", "iql")


def test_a_preset_key_of_another_agents_config_is_a_config_error():
    """No field means different things for different agents: FQL's alpha is not a ReBRAC key."""
    with pytest.raises(ConfigError, match="unknown config key 'alpha'"):
        resolve_agent_config("rebrac", overrides={"alpha": 1.0})
    with pytest.raises(ConfigError, match=r"unknown config key 'fisher\.t_eps'"):
        resolve_agent_config("iso", overrides={"fisher.t_eps": 0.9})


def test_preset_names_are_unique_and_complete():
    names = preset_names()
    assert len(names) == len(set(names))
    named = {n for spec in REGISTRY.values() for n in spec.presets.named}
    families = {f for spec in REGISTRY.values() for f in spec.presets.families}
    assert set(names) == set(NETWORK_PRESETS) | named | families | set(SHARED_FAMILIES)
    for agent in agent_names():
        own = preset_names(agent)
        assert len(own) == len(set(own))
        assert set(get_spec(agent).presets.named) <= set(own)
        for name in own:
            assert get_preset(name, agent).source.strip(), (agent, name)
