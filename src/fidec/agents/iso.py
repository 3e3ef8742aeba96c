"""Isotropic refinement (DeFlow-style L2 residual): FD with F_n = I.

    L_actor = L_bc(theta) + alpha * E_s[ ||delta||^2 / d ] - E_s[ Q(s, a) ]

Everything else (flow, residual, critic, Lagrange multiplier, action selection) is FD's, so the two
agents differ only in the metric of the penalty.  No Fisher samples are rolled out.
"""

from __future__ import annotations

from fidec.agents import fd
from fidec.agents.common import AgentState, Batch, Networks
from fidec.agents.config import AgentConfig

PARTS = fd.PARTS
MODES = fd.MODES
init = fd.init
sample_actions = fd.sample_actions


def update(
    config: AgentConfig, networks: Networks, state: AgentState, batch: Batch
) -> tuple[AgentState, dict]:
    """One gradient step with the isotropic penalty ||delta||^2 / d (pure; jit it)."""
    return fd.update(config, networks, state, batch, use_fisher=False)


__all__ = ["MODES", "PARTS", "init", "sample_actions", "update"]
