"""Fisher metric of the behaviour flow policy and the penalties built on it (docs/method.md sections 3-4).

For each state s, with M base actions a_i ~ pi_b(.|s) and fresh noise x0_i,

    g_i  = score of p_{t_eps} at x_i = (1 - t_eps) x0_i + t_eps a_i          (no gradient)
    F(s) = (1/M) sum_i g_i g_i^T (symmetrised) + lambda I                     (damping lambda)
    F_n  = F / max(tr(F) / d, eps)                                            (trace normalisation)

and the FD penalty is the quadratic delta^T F_n delta / d.  With F_n = I it is DeFlow's ||delta||^2 / d.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import jax
import jax.numpy as jnp

from fidec.config import check_finite_fields
from fidec.flows import SCORE_ESTIMATORS, ScoreEstimator, VelocityFn, score_at


@dataclass(frozen=True)
class FisherConfig:
    """How the per-state Fisher metric is estimated.

    Attributes:
        estimator: "tweedie" ((t v - x) / (1 - t), exact for the optimal field; default) or
            "velocity" (v / (1 - t), the official FD code's estimate).
        t_eps: perturbed time at which the score is read (1 - eps).  The default 0.98 is the paper's rule
            eps* = O(delta^(1/4)) read with a unit constant at fp32 (delta^(1/4) = 0.016, rounded to
            eps = 0.02; docs/method.md section 2), not a measured optimum: docs/diagnostics.md measures
            the estimate's error against eps.  The official agent default is 0.95.
        t_eps_max: if set, t is drawn per sample uniformly from [t_eps, t_eps_max]
            (the official grid scripts use [0.85, 0.90]).
        num_samples: M, base actions per state.
        damping: lambda added to the diagonal.
        normalize: divide by tr(F) / d so the mean eigenvalue is 1.
        norm_eps: floor of tr(F) / d before dividing (the official code's ``fisher_trace_eps``).
        source: "flow" (M Euler rollouts of the base policy, the paper's estimator) or "dataset"
            (the dataset action of each state with M noise draws: no rollouts; opt-in, cheaper).
        reuse_base_sample: with ``source="flow"``, take the state's base action a_hat as the first of its M
            samples (M - 1 extra rollouts instead of M).  Off by default: the official code draws M fresh
            samples; on saves B Euler rollouts per update (see docs/parity.md).
    """

    estimator: ScoreEstimator = "tweedie"
    t_eps: float = 0.98
    t_eps_max: float | None = None
    num_samples: int = 4
    damping: float = 1e-3
    normalize: bool = True
    norm_eps: float = 1e-6
    source: Literal["flow", "dataset"] = "flow"
    reuse_base_sample: bool = False

    def __post_init__(self) -> None:
        check_finite_fields(self)
        if self.estimator not in SCORE_ESTIMATORS:
            raise ValueError(f"fisher.estimator must be one of {SCORE_ESTIMATORS}, got {self.estimator!r}")
        if not 0.0 < self.t_eps < 1.0:
            raise ValueError(f"fisher.t_eps must lie in (0, 1), got {self.t_eps}")
        if self.t_eps_max is not None and not self.t_eps <= self.t_eps_max < 1.0:
            raise ValueError(f"fisher.t_eps_max must lie in [t_eps, 1), got {self.t_eps_max}")
        if self.num_samples < 1:
            raise ValueError(f"fisher.num_samples must be >= 1, got {self.num_samples}")
        if self.norm_eps < 0:
            raise ValueError(f"fisher.norm_eps must be >= 0, got {self.norm_eps}")
        if self.damping < 0:
            raise ValueError(f"fisher.damping must be >= 0, got {self.damping}")
        if self.source not in ("flow", "dataset"):
            raise ValueError(f"fisher.source must be 'flow' or 'dataset', got {self.source!r}")


def fisher_from_scores(
    scores: jax.Array, damping: float = 1e-3, normalize: bool = True, norm_eps: float = 1e-6
) -> jax.Array:
    """F = sym((1/M) sum_i g_i g_i^T) + lambda I, then F / max(tr F / d, eps) if ``normalize``.

    ``scores`` is (..., M, d); returns (..., d, d) with a stop-gradient (F is a fixed metric).
    """
    scores = jax.lax.stop_gradient(scores)
    d = scores.shape[-1]
    outer = jnp.einsum("...mi,...mj->...ij", scores, scores) / scores.shape[-2]
    metric = 0.5 * (outer + jnp.swapaxes(outer, -1, -2)) + damping * jnp.eye(d, dtype=scores.dtype)
    return trace_normalize(metric, norm_eps) if normalize else metric


def mean_eigenvalue(metric: jax.Array) -> jax.Array:
    """tr(F) / d of a (..., d, d) metric: its mean eigenvalue, shape (...)."""
    return jnp.trace(metric, axis1=-2, axis2=-1) / metric.shape[-1]


def trace_normalize(metric: jax.Array, norm_eps: float = 0.0) -> jax.Array:
    """F_n = F / max(tr(F) / d, eps) for a (..., d, d) metric: mean eigenvalue 1 (the FD normalisation)."""
    return metric / jnp.maximum(mean_eigenvalue(metric), norm_eps)[..., None, None]


def perturbed_times(
    key: jax.Array, shape: tuple[int, ...], config: FisherConfig, dtype=jnp.float32
) -> jax.Array:
    """t_eps, fixed or ~ U[t_eps, t_eps_max] per sample; shape (..., 1)."""
    if config.t_eps_max is None:
        return jnp.full(shape + (1,), config.t_eps, dtype)
    return jax.random.uniform(key, shape + (1,), dtype, config.t_eps, config.t_eps_max)


def fisher_metric(
    velocity_fn: VelocityFn, base_actions: jax.Array, key: jax.Array, config: FisherConfig = FisherConfig()
) -> jax.Array:
    """Per-state Fisher metric from M base actions.

    ``base_actions`` is (B, M, d) and ``velocity_fn(x, t)`` takes x of shape (B, M, d) and
    t of shape (B, M, 1) (the state broadcast over the M samples).  Returns F_n of shape (B, d, d),
    held fixed (stop-gradient): no gradient reaches the flow through the metric.
    """
    noise_key, time_key = jax.random.split(key)
    noise = jax.random.normal(noise_key, base_actions.shape, base_actions.dtype)
    t = perturbed_times(time_key, base_actions.shape[:-1], config, base_actions.dtype)
    return fisher_metric_at(velocity_fn, base_actions, noise, t, config)


def fisher_metric_at(
    velocity_fn: VelocityFn, base_actions: jax.Array, noise: jax.Array, t: jax.Array, config: FisherConfig
) -> jax.Array:
    """:func:`fisher_metric` with its draws given: x0 ``noise`` (B, M, d) and times ``t`` (B, M, 1) of the
    noised samples x_i = (1 - t_i) x0_i + t_i a_i.  Returns F_n (B, d, d), stop-gradient."""
    base_actions = jax.lax.stop_gradient(base_actions)
    scores = score_at(velocity_fn, base_actions, noise, t, config.estimator)
    return fisher_from_scores(scores, config.damping, config.normalize, config.norm_eps)


def quadratic_penalty(delta: jax.Array, metric: jax.Array | None = None) -> jax.Array:
    """Per-sample FD penalty delta^T F delta / d; with ``metric=None`` (F = I) it is ||delta||^2 / d.

    ``delta`` is (B, d), ``metric`` is (B, d, d).  Returns (B,).
    """
    d = delta.shape[-1]
    if metric is None:
        return jnp.sum(delta**2, axis=-1) / d
    return jnp.einsum("...i,...ij,...j->...", delta, metric, delta) / d


def isotropic_penalty(delta: jax.Array) -> jax.Array:
    """DeFlow's L2 residual penalty ||delta||^2 / d (the quadratic penalty with F = I)."""
    return quadratic_penalty(delta, None)


def condition_number(metric: jax.Array) -> jax.Array:
    """kappa(F) = lambda_max / lambda_min of a symmetric positive-semidefinite (..., d, d) metric.

    eigvalsh resolves eigenvalues only to about d * eps * lambda_max (eps of the dtype): a damped,
    rank-deficient F (M < d samples) has lambda_min below that, and its computed value may even be
    negative.  lambda_min is therefore floored at d * eps * lambda_max, so kappa is finite, positive,
    and capped at 1 / (d * eps) (about 8.4e6 / d in float32: 1.7e6 for d = 5), meaning "at least this
    ill-conditioned".
    """
    eig = jnp.linalg.eigvalsh(metric)
    d = metric.shape[-1]
    floor = d * jnp.finfo(metric.dtype).eps * eig[..., -1]
    return eig[..., -1] / jnp.maximum(eig[..., 0], floor)


def jacobian_trace_square(
    delta_fn: Callable[[jax.Array], jax.Array],
    actions: jax.Array,
    key: jax.Array | None = None,
    num_probes: int = 1,
) -> jax.Array:
    """tr((d delta / d a)^2) per sample: one of the two terms by which FD's quadratic differs from the
    second-order KL when delta depends on a (the other is 1/2 E[delta^T (-Hess log pi_b - F) delta]).

    Full second-order KL (docs/method.md section 4):
        KL(T#pi_b || pi_b) ~ 1/2 E[delta^T (-Hess log pi_b) delta] + 1/2 E[tr((d delta / d a)^2)].
    ``delta_fn`` maps a single action (d,) to a displacement (d,); ``actions`` is (B, d).
    With ``key=None`` the trace is exact (d Jacobian-vector products); otherwise Hutchinson's
    estimator E_z[(J^T z) . (J z)] with Rademacher z, costing one JVP and one VJP per probe.
    """
    return jacobian_square(delta_fn, actions, key, num_probes, form="trace")


JACOBIAN_FORMS = ("trace", "sym")


def jacobian_square(
    delta_fn: Callable[[jax.Array], jax.Array],
    actions: jax.Array,
    key: jax.Array | None = None,
    num_probes: int = 1,
    form: str = "trace",
    probes: jax.Array | None = None,
) -> jax.Array:
    """Per-sample square of the Jacobian J = d delta / d a, in one of two forms:

        "trace": tr(J^2) = E_z[(J^T z) . (J z)]: the exact second-order KL term, which is negative for
                 rotation-like J and so unbounded below as a penalty;
        "sym":   ||sym J||_F^2 = (tr(J^2) + ||J||_F^2) / 2 = E_z[((J^T z) . (J z) + ||J z||^2) / 2]:
                 an upper bound on tr(J^2) that is never negative (sym J = (J + J^T) / 2).

    ``key=None`` and no ``probes``: exact (d Jacobian-vector products); otherwise Hutchinson's estimator with
    ``num_probes`` Rademacher probes z drawn from ``key`` (or the given ``probes``, shape (P, B, d)), one JVP
    and one VJP each.
    """
    if form not in JACOBIAN_FORMS:
        raise ValueError(f"jacobian form must be one of {JACOBIAN_FORMS}, got {form!r}")
    if key is None and probes is None:
        jac = jax.vmap(jax.jacfwd(delta_fn))(actions)
        trace_sq = jnp.einsum("bij,bji->b", jac, jac)
        if form == "trace":
            return trace_sq
        return 0.5 * (trace_sq + jnp.einsum("bij,bij->b", jac, jac))

    if probes is None:
        assert key is not None
        probes = jax.random.rademacher(key, (num_probes,) + actions.shape, dtype=actions.dtype)

    def one(a, zs):
        def per_probe(z):
            _, jz = jax.jvp(delta_fn, (a,), (z,))
            _, vjp = jax.vjp(delta_fn, a)
            (jtz,) = vjp(z)
            cross = jnp.dot(jtz, jz)
            return cross if form == "trace" else 0.5 * (cross + jnp.dot(jz, jz))

        return jnp.mean(jax.vmap(per_probe)(zs))

    return jax.vmap(one, in_axes=(0, 1))(actions, probes)
