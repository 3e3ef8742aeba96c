"""BC-flow: behaviour cloning with a flow-matching policy (docs/method.md, section 1).

    L_bc = E_{s, a, x0, t} || v_theta(s, x_t, t) - (a - x0) ||^2 / d,   x_t = (1 - t) x0 + t a

Acts with the K-step Euler sampler.  No critic is trained, so the only action mode is "onestep".  No
reference agent exists: it is FQL's ``actor_bc_flow`` trained alone (seohongpark/fql ``agents/fql.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import jax
import jax.numpy as jnp

from fidec.agents import common
from fidec.agents.base import AgentSpec, Draw, FlowConfig
from fidec.agents.common import AgentState, Batch, Networks
from fidec.flows import flow_matching_loss

MODES = ("onestep",)


@dataclass(frozen=True)
class BCFlowConfig(FlowConfig):
    """BC-flow's settings (FQL's flow and its BC loss).

    Attributes:
        action_mode: "onestep": the K-step Euler sample.
    """

    action_mode: Literal["onestep"] = "onestep"

    def checks(self) -> list[tuple[bool, str]]:
        ok = self.action_mode in MODES
        return super().checks() + [(ok, f"action_mode must be 'onestep', got {self.action_mode!r}")]


def build(config: BCFlowConfig, action_dim: int) -> Networks:
    return common.make_networks(config, action_dim, {"flow": common.flow_network(config, action_dim)})


def init(config: BCFlowConfig, networks: Networks, key: jax.Array, obs_dim, action_dim: int) -> AgentState:
    init_key, state_key = jax.random.split(key)
    params = common.init_params(networks, init_key, obs_dim, action_dim, ("flow",))
    return common.new_state(config, params, state_key, targets=())


def update_draws(config: BCFlowConfig, b: int, d: int) -> dict[str, Draw]:
    return {"bc_noise": Draw((b, d)), "bc_times": Draw((b, 1), "uniform")}


def actor_loss(params, networks: Networks, batch: Batch, noise: jax.Array, times: jax.Array):
    """L_bc on the dataset actions (the only loss: no critic)."""
    v = common.velocity_fn(networks, params["flow"], batch["observations"])
    loss = flow_matching_loss(v, batch["actions"], noise, times)
    return loss, {"bc_loss": loss, "actor_loss": loss}


def gradients(config: BCFlowConfig, networks: Networks, state: AgentState, batch: Batch, draws):
    """(gradients, metrics) of L_bc (pure)."""
    grads, info = jax.grad(actor_loss, has_aux=True)(
        state.params, networks, batch, draws["bc_noise"], draws["bc_times"]
    )
    info.update(common.grad_norms(grads))
    return grads, info


def action_draws(config: BCFlowConfig, b: int, d: int, mode: str) -> dict[str, Draw]:
    return {"noise": Draw((b, d))}


def act(
    config: BCFlowConfig, networks: Networks, state: AgentState, observations, draws, mode: str
) -> jax.Array:
    """a = clip(Euler rollout of the flow from x0 ~ N(0, I), -1, 1)."""
    if mode != "onestep":
        raise ValueError(f"unknown action mode {mode!r}; choose one of {MODES}")
    actions = common.sample_base_actions(config, networks, state.params["flow"], observations, draws["noise"])
    return jnp.clip(actions, -1.0, 1.0)


SPEC = AgentSpec(
    name="bcflow",
    summary="behaviour cloning with a flow-matching policy (no critic)",
    config=BCFlowConfig,
    parts=("flow",),
    targets=(),
    batch_keys=common.TRANSITION_KEYS,
    modes=MODES,
    online_mode="onestep",
    has_critic=False,
    has_residual=False,
    build=build,
    init=init,
    update_draws=update_draws,
    gradients=gradients,
    action_draws=action_draws,
    act=act,
)
