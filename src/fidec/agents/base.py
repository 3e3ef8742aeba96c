"""What every agent is made of: its config's shared base, its declaration (:class:`AgentSpec`), its random
draws (:class:`Draw`) and its presets (:class:`Preset`).

An agent is one module (``fidec.agents.fd``, ``...iql``) that defines its config dataclass (a subclass of
:class:`AgentConfig`), its losses and update, its action selection and, at its end, ``SPEC``: the one
object the rest of fidec reads (the CLI's choices, training, evaluation, reports, diagnostics, bench, the
parity check and the contract tests).  ``fidec.agents.REGISTRY`` lists the specs; nothing else lists agents.

Randomness is explicit.  An update (and an action) first draws every random number it needs, named and
shaped by the agent's :class:`Draw` declarations, then computes deterministically from them.  So a draw can
be replaced by a recorded one (the update-level parity check feeds the reference code's own draws), and
the declarations say what each update consumes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import jax
import jax.numpy as jnp

from fidec.config import check_finite_fields
from fidec.encoders import EncoderConfig
from fidec.networks import NetworkConfig

# -- configs ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AgentConfig:
    """Settings every agent has (each agent's config extends it with its own fields).

    Attributes:
        network: network sizes and options (4 x 512 GELU, LayerNorm in the critic).
        encoder: pixel observations: encoder ("none" for state vectors), frame stacking, random shift.
        lr: Adam learning rate of all networks.
        batch_size: minibatch size.
        grad_clip: clip the gradient of all parameters together to this global norm, g * min(1, c / (||g|| +
            1e-6)) (none: no clipping).
        action_mode: how the agent acts at evaluation (one of the agent's modes; see ``fidec agents``).
    """

    network: NetworkConfig = field(default_factory=NetworkConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    lr: float = 3e-4
    batch_size: int = 256
    grad_clip: float | None = None
    action_mode: str = "onestep"

    def __post_init__(self) -> None:
        check_finite_fields(self)
        for ok, message in self.checks():
            if not ok:
                raise ValueError(message)

    def checks(self) -> list[tuple[bool, str]]:
        """(condition, message if it fails) for every field; subclasses extend the list."""
        return [
            (self.lr > 0, f"lr must be > 0, got {self.lr}"),
            (self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}"),
            (
                self.grad_clip is None or self.grad_clip > 0,
                f"grad_clip must be > 0 or none, got {self.grad_clip}",
            ),
        ]


@dataclass(frozen=True)
class CriticConfig(AgentConfig):
    """An agent with a critic and its Polyak-averaged target.

    Attributes:
        discount: gamma.
        tau: Polyak rate of the target networks: theta' <- tau theta + (1 - tau) theta'.
        target_update: which online parameters the target moves towards: "before" this update's gradient step
            (the FQL family's code: its ``target_update`` averages the parameters it was called with) or
            "after" it.
    """

    discount: float = 0.99
    tau: float = 0.005
    target_update: Literal["before", "after"] = "before"

    def checks(self) -> list[tuple[bool, str]]:
        return super().checks() + [
            (0.0 <= self.discount <= 1.0, f"discount must lie in [0, 1], got {self.discount}"),
            (0.0 < self.tau <= 1.0, f"tau must lie in (0, 1], got {self.tau}"),
            (
                self.target_update in ("before", "after"),
                f"target_update must be 'before' or 'after', got {self.target_update!r}",
            ),
        ]


@dataclass(frozen=True)
class FlowConfig(AgentConfig):
    """An agent with a behaviour-cloning flow policy (flow matching, K-step Euler sampler).

    Attributes:
        flow_steps: K, Euler steps of the flow sampler.
        clip_flow_actions: clip the flow's Euler samples to [-1, 1] (the FQL family's ``compute_flow_actions``).
    """

    flow_steps: int = 10
    clip_flow_actions: bool = True

    def checks(self) -> list[tuple[bool, str]]:
        return super().checks() + [(self.flow_steps >= 1, f"flow_steps must be >= 1, got {self.flow_steps}")]


# -- random draws -------------------------------------------------------------------------------------------

DrawKind = Literal["normal", "uniform", "rademacher"]


@dataclass(frozen=True)
class Draw:
    """One named array of random numbers an update or an action consumes: its shape and distribution
    (standard normal, uniform on [low, high), or Rademacher +-1)."""

    shape: tuple[int, ...]
    kind: DrawKind = "normal"
    low: float = 0.0
    high: float = 1.0


def sample_draws(draws: Mapping[str, Draw], key: jax.Array, dtype=jnp.float32) -> dict[str, jax.Array]:
    """Arrays for the declared draws: draw i (in declaration order) from the i-th of ``len(draws)`` keys split
    from ``key``."""
    out: dict[str, jax.Array] = {}
    if not draws:
        return out
    keys = jax.random.split(key, len(draws))
    for k, (name, draw) in zip(keys, draws.items(), strict=True):
        if draw.kind == "normal":
            out[name] = jax.random.normal(k, draw.shape, dtype)
        elif draw.kind == "uniform":
            out[name] = jax.random.uniform(k, draw.shape, dtype, draw.low, draw.high)
        else:
            out[name] = jax.random.rademacher(k, draw.shape, dtype)
    return out


# -- presets ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Preset:
    """Dotted agent-config keys and values (``{"alpha": 300.0, "fisher.t_eps": 0.95}``) with their source."""

    values: Mapping[str, Any]
    source: str
    description: str = ""


@dataclass(frozen=True)
class AgentPresets:
    """An agent's settings as its authors ran them, by task, and its own named presets.

    Attributes:
        families: task family (``cube-single-play``, ``visual-scene-play``, ``d4rl-antmaze``) -> values.
        tasks: task or dataset name (``pen-cloned-v1``) -> values on top of its family's.
        online_families: family -> values for offline-to-online runs (on top of the offline ones).
        online_tasks: task -> values for offline-to-online runs.
        named: ``--preset NAME`` presets of this agent (e.g. ``official``: its reference code's defaults).
    """

    families: Mapping[str, Preset] = field(default_factory=dict)
    tasks: Mapping[str, Preset] = field(default_factory=dict)
    online_families: Mapping[str, Preset] = field(default_factory=dict)
    online_tasks: Mapping[str, Preset] = field(default_factory=dict)
    named: Mapping[str, Preset] = field(default_factory=dict)


# -- the reference code an agent is proven against --------------------------------------------------------


@dataclass(frozen=True)
class ReferenceAction:
    """How the reference code computes one of the agent's action modes.

    Attributes:
        method: the reference agent's method (called with observations, ``seed`` and ``kwargs``).
        kwargs: (config) -> its other keyword arguments.
        per_state: the method takes one observation at a time (it is called per state, draws stacked).
        draws: the fidec draw each of its recorded random draws is (None: fidec's mode draws nothing for it).
    """

    method: str
    kwargs: Callable[[Any], Mapping[str, Any]] = lambda config: {}
    per_state: bool = False
    draws: tuple[str | None, ...] = ("noise",)


@dataclass(frozen=True)
class ReferenceCase:
    """One setting at which both codes run: fidec's presets for ``env`` plus ``presets`` (and ``overrides``),
    and the reference's own defaults plus ``flags`` (its config keys as its script passes them)."""

    env: str
    presets: tuple[str, ...]
    flags: Mapping[str, Any]
    source: str
    overrides: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Reference:
    """The code an agent is proven against, number for number, by ``fidec parity`` (docs/parity.md).

    Attributes:
        repository: where users clone it from.
        agent_file: the agent's file in a checkout, e.g. ``agents/fql.py``.
        agent_class: its agent class (``create``, ``update``, ``total_loss``, ``sample_actions``).
        params: (reference parameter path, fidec path) prefix pairs mapping the two parameter trees; fidec paths
            start with ``params/`` or ``target_params/``; every leaf of both trees must be covered once.
        settings: (config) -> fidec's config in the reference's config keys (read back from the reference's
            config and compared before anything runs).
        fixed: dotted fidec config keys and the value the reference code hard-wires (checked on fidec's config).
        update_draws: (config) -> the fidec draw each random draw of one reference update is, in the order the
            update makes them (None: a draw fidec does not make, e.g. a logging-only sample).
        metrics: reference metric -> fidec metric (a tuple: the sum of those fidec metrics).
        actions: fidec action mode -> how the reference computes it.
        cases: named settings to compare at.
        update_kwargs: (config, update number from 1) -> keyword arguments of the reference's update.
        differences: deliberate differences the check shows, one line each (docs/parity.md states them).
        speed_variants: fidec settings (dotted overrides of the first case's config) that ``fidec bench
            --reference`` also times against the reference: opt-in changes of the computation, which the
            parity check therefore does not cover.
    """

    repository: str
    agent_file: str
    agent_class: str
    params: tuple[tuple[str, str], ...]
    settings: Callable[[Any], Mapping[str, Any]]
    fixed: Mapping[str, Any]
    update_draws: Callable[[Any], tuple[str | None, ...]]
    metrics: Mapping[str, str | tuple[str, ...]]
    actions: Mapping[str, ReferenceAction]
    cases: Mapping[str, ReferenceCase]
    update_kwargs: Callable[[Any, int], Mapping[str, Any]] = lambda config, step: {}
    differences: tuple[str, ...] = ()
    speed_variants: tuple[Mapping[str, Any], ...] = ()


# -- the declaration --------------------------------------------------------------------------------------

PARAMETER_GROUPS = ("flow", "critic", "residual", "onestep", "value", "actor", "log_alpha")


@dataclass(frozen=True)
class AgentSpec:
    """Everything fidec needs to know about an agent, declared at the end of its module.

    Attributes:
        name: the agent's name (``fidec train --agent NAME``).
        summary: one line: what the method is.
        config: its config dataclass (defaults = its authors' code's defaults).
        parts: its parameter groups (keys of ``state.params``).
        targets: parameter groups with a Polyak-averaged target copy (keys of ``state.target_params``).
        batch_keys: what a training batch must hold.
        modes: its action-selection modes (the evaluation mode is ``config.action_mode``).
        online_mode: the mode it acts with in the environment during offline-to-online training (its reference
            code's exploration action); None: it cannot run an online phase.
        has_critic: it learns Q(s, a) (best-of-N style modes and Q metrics apply).
        has_residual: it refines a base flow action with a residual delta(s, a) (the KL diagnostics apply).
        build: (config, action_dim) -> the networks.
        init: (config, networks, key, obs_dim, action_dim) -> a fresh state.
        update_draws: (config, batch_size, action_dim) -> the draws of one update.
        gradients: (config, networks, state, batch, draws) -> (gradients of all parameters, metrics): the loss
            an update differentiates; the optimiser step and the target update are shared (``fidec.agents``).
        action_draws: (config, batch_size, action_dim, mode) -> the draws of one action.
        act: (config, networks, state, observations, draws, mode) -> actions.
        presets: its per-task and named presets.
        reference: the code it is proven against (None: no reference code exists).
        targets_due: (config, step) -> whether this update moves the targets (None: every update).
    """

    name: str
    summary: str
    config: type[AgentConfig]
    parts: tuple[str, ...]
    targets: tuple[str, ...]
    batch_keys: tuple[str, ...]
    modes: tuple[str, ...]
    online_mode: str | None
    has_critic: bool
    has_residual: bool
    build: Callable[..., Any]
    init: Callable[..., Any]
    update_draws: Callable[..., Mapping[str, Draw]]
    gradients: Callable[..., Any]
    action_draws: Callable[..., Mapping[str, Draw]]
    act: Callable[..., jax.Array]
    presets: AgentPresets = field(default_factory=AgentPresets)
    reference: Reference | None = None
    targets_due: Callable[..., Any] | None = None

    def __post_init__(self) -> None:
        unknown = set(self.parts) - set(PARAMETER_GROUPS)
        assert not unknown, f"{self.name}: unknown parameter groups {sorted(unknown)}"
        assert set(self.targets) <= set(self.parts), f"{self.name}: a target of a group it lacks"
        assert self.online_mode is None or self.online_mode in self.modes
        default_mode = _default(self.config, "action_mode")
        assert default_mode in self.modes, (
            f"{self.name}: default action_mode {default_mode!r} not in its modes"
        )


def _default(cls: type, name: str) -> Any:
    for f in dataclasses.fields(cls):
        if f.name == name:
            return f.default
    raise KeyError(name)
