"""Isotropic refinement (DeFlow-style L2 residual): FD with F_n = I.

    L_actor = L_bc(theta) + alpha * E_s[ ||delta||^2 / d ] - E_s[ Q(s, a) ]

Everything else (flow, residual, critic, Lagrange multiplier, action selection) is FD's, so the two agents
differ only in the metric of the penalty; no Fisher samples are drawn.  Its reference is the DeFlow agent the
official FD repository ships (``agents/deflow.py``), which the FD paper's DeFlow runs used.
"""

from __future__ import annotations

from dataclasses import dataclass

from fidec.agents import common, fd
from fidec.agents.base import AgentPresets, AgentSpec, Preset, Reference, ReferenceCase


@dataclass(frozen=True)
class IsoConfig(fd.RefinementConfig):
    """FD's refinement with the isotropic penalty ||delta||^2 / d (no Fisher metric).

    Defaults are the official repository's DeFlow agent's (``agents/deflow.py`` get_config).
    """


OFFICIAL = Preset(
    {"clip_flow_actions": True, "grad_clip": 5.0, "target_update": "before"},
    "official FD repository agents/deflow.py:379-405 (get_config)",
    "the official DeFlow agent's defaults (gradient clip 5.0, clipped flow actions)",
)
OFFICIAL_GRID = Preset(
    {**OFFICIAL.values, "normalize_q_loss": False},
    f"{fd.GRID_SH}:24,124 (BASE_AGENT agents/deflow.py, normalize_q_loss false)",
    "what the paper's grid runs used for DeFlow: normalize_q_loss off",
)
OFFICIAL_STATE5 = Preset(
    {**OFFICIAL.values, "normalize_q_loss": True},
    f"{fd.STATE5_SH}:16,86,110 with {fd.FLAGS_SH}:5 (normalize_q_loss true)",
    "the official state-5 script's DeFlow runs: normalize_q_loss on",
)

REFERENCE = Reference(
    repository="https://github.com/ARC0127/Fisher-Decorator",
    agent_file="agents/deflow.py",
    agent_class="DeFlowAgent",
    params=fd.REFINEMENT_PARAMS,
    settings=fd.refinement_settings,
    fixed=fd.REFINEMENT_FIXED,
    update_draws=lambda config: ("next_noise", "bc_noise", "bc_times", "base_noise", None),
    metrics=fd.REFINEMENT_METRICS,
    actions=fd.REFINEMENT_ACTIONS,
    cases={
        "official": ReferenceCase(
            fd.CUBE,
            ("official",),
            {"target_divergence": 0.001},
            f"{OFFICIAL.source}; {fd.REGISTRY_SH}:110-111",
        )
    },
    differences=(fd.LOGGING_SAMPLE.format(file="deflow.py", lines="120-121"),),
)

SPEC = AgentSpec(
    name="iso",
    summary="isotropic residual refinement (DeFlow-style ||delta||^2 penalty): FD with F_n = I",
    config=IsoConfig,
    parts=fd.SPEC.parts,
    targets=fd.SPEC.targets,
    batch_keys=common.TRANSITION_KEYS,
    modes=fd.MODES,
    online_mode="onestep",
    has_critic=True,
    has_residual=True,
    build=fd.build,
    init=fd.init,
    update_draws=fd.update_draws,
    gradients=fd.gradients,
    action_draws=fd.action_draws,
    act=fd.act,
    presets=AgentPresets(
        families=fd.FAMILY_PRESETS,
        named={"official": OFFICIAL, "official-grid": OFFICIAL_GRID, "official-state5": OFFICIAL_STATE5},
    ),
    reference=REFERENCE,
)
