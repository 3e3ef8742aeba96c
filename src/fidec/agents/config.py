"""The agent configuration: one typed dataclass with the paper's defaults (METHOD.md section 5)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from fidec.config import check_finite_fields
from fidec.encoders import EncoderConfig
from fidec.fisher import FisherConfig
from fidec.networks import NetworkConfig

ACTION_MODES = ("onestep", "best_of_n", "iterative")


@dataclass(frozen=True)
class AgentConfig:
    """Hyperparameters shared by every agent; each agent reads the fields it needs.

    Attributes:
        network: network sizes and options (4 x 512 GELU, LayerNorm in the critic).
        fisher: how FD estimates the per-state Fisher metric.
        encoder: pixel observations: encoder ("none" for state vectors), frame stacking, random shift.
        lr: Adam learning rate for all networks.
        alpha_lr: Adam learning rate of log_alpha (Lagrange multiplier).
        batch_size: minibatch size.
        discount: gamma.
        tau: Polyak rate of the target critic.
        q_agg: "mean" or "min" over the target ensemble.
        flow_steps: K, Euler steps of the flow sampler.
        alpha: FD / iso: penalty weight (fixed) or initial Lagrange multiplier; FQL: distillation weight.
        lagrange: FD / iso: learn log_alpha so the penalty tracks ``target_divergence``.
        target_divergence: the penalty's target when ``lagrange`` is on.
        normalize_q_loss: divide the actor's -Q by stop_gradient(max(mean |Q|, 1e-6)) (FQL's normalize_q_loss).
        grad_clip: clip the gradient of all parameters together to this global norm, g * min(1, c / (||g|| +
            1e-6)) (None: no clipping).  Each agent's default is its official code's (see
            :data:`fidec.presets.AGENT_DEFAULTS`): 5.0 for fd and iso, none for fql and bcflow.
        clip_flow_actions: clip the flow's Euler samples to [-1, 1] (base actions, Fisher samples, FQL's
            distillation target, BC-flow's actions), as the official ``compute_flow_actions`` does.
        jacobian_weight: FD / iso: weight w of the Jacobian term, penalty += w * tr((d delta/d a)^2) / d
            (0 = the paper's penalty; beyond the paper, see METHOD.md section 4).
        jacobian_probes: Hutchinson probes for that term (0 = exact trace, d JVPs).
        jacobian_form: "sym" (default): ||sym J||_F^2, a non-negative upper bound; "trace": tr(J^2), the
            exact second-order term, which a residual can drive negative (see docs/diagnostics.md).
        action_mode: evaluation action selection: "onestep", "best_of_n" or "iterative".
        num_action_samples: N for best-of-N.
        best_of_n_rank: fd / iso best-of-N: "base" ranks the N base actions by Q and refines the winner (the
            official ``sample_actions_max_q``); "refined" refines all N and keeps the refined action of highest Q.
        refine_iterations: residual applications for iterative refinement (the base action and every
            iterate are candidates; the one of highest Q is taken).
    """

    network: NetworkConfig = field(default_factory=NetworkConfig)
    fisher: FisherConfig = field(default_factory=FisherConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    lr: float = 3e-4
    alpha_lr: float = 3e-4
    batch_size: int = 256
    discount: float = 0.99
    tau: float = 0.005
    q_agg: Literal["mean", "min"] = "mean"
    flow_steps: int = 10
    alpha: float = 10.0
    lagrange: bool = True
    target_divergence: float = 1e-3
    normalize_q_loss: bool = False
    grad_clip: float | None = None
    clip_flow_actions: bool = True
    jacobian_weight: float = 0.0
    jacobian_probes: int = 1
    jacobian_form: Literal["sym", "trace"] = "sym"
    action_mode: Literal["onestep", "best_of_n", "iterative"] = "onestep"
    num_action_samples: int = 10
    best_of_n_rank: Literal["base", "refined"] = "base"
    refine_iterations: int = 5

    def __post_init__(self) -> None:
        check_finite_fields(self)
        checks = [
            (self.lr > 0, f"lr must be > 0, got {self.lr}"),
            (self.alpha_lr > 0, f"alpha_lr must be > 0, got {self.alpha_lr}"),
            (self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}"),
            (0.0 <= self.discount <= 1.0, f"discount must lie in [0, 1], got {self.discount}"),
            (0.0 < self.tau <= 1.0, f"tau must lie in (0, 1], got {self.tau}"),
            (self.q_agg in ("mean", "min"), f"q_agg must be 'mean' or 'min', got {self.q_agg!r}"),
            (self.flow_steps >= 1, f"flow_steps must be >= 1, got {self.flow_steps}"),
            (self.alpha > 0, f"alpha must be > 0 (log_alpha = log(alpha)), got {self.alpha}"),
            (self.target_divergence > 0, f"target_divergence must be > 0, got {self.target_divergence}"),
            (self.jacobian_weight >= 0, f"jacobian_weight must be >= 0, got {self.jacobian_weight}"),
            (self.jacobian_probes >= 0, f"jacobian_probes must be >= 0, got {self.jacobian_probes}"),
            (
                self.jacobian_form in ("sym", "trace"),
                f"jacobian_form must be 'sym' or 'trace', got {self.jacobian_form!r}",
            ),
            (
                self.action_mode in ACTION_MODES,
                f"action_mode must be one of {ACTION_MODES}, got {self.action_mode!r}",
            ),
            (
                self.grad_clip is None or self.grad_clip > 0,
                f"grad_clip must be > 0 or none, got {self.grad_clip}",
            ),
            (
                self.best_of_n_rank in ("base", "refined"),
                f"best_of_n_rank must be 'base' or 'refined', got {self.best_of_n_rank!r}",
            ),
            (self.num_action_samples >= 1, f"num_action_samples must be >= 1, got {self.num_action_samples}"),
            (self.refine_iterations >= 1, f"refine_iterations must be >= 1, got {self.refine_iterations}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
