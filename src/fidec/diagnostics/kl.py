"""True KL of a local transport map against FD's quadratic and the full second-order expansion.

For one state, a behaviour density p (exact log-density) and a displacement field delta(a), the refined
policy is T#p with T(a) = a + c delta(a).  By change of variables (docs/method.md sections 4 and 7),

    KL(T#p || p) = E_{a~p}[ log p(a) - log|det(I + c J(a))| - log p(a + c delta(a)) ],  J = d delta / d a,

    FD's quadratic        Q(c)  = 1/2 c^2 E[ delta^T F delta ],          F = E[grad log p grad log p^T],
    full second order     S2(c) = 1/2 c^2 E[ delta^T (-Hess log p) delta ] + 1/2 c^2 E[ tr(J^2) ].

Q equals S2 when delta does not depend on a; otherwise the two differ by the Jacobian term (and by
E[delta^T (-H) delta] - E[delta^T F delta]).  The Monte-Carlo estimate of the true KL uses the control
variate c (grad log p . delta + tr J), whose mean is zero under p (Stein's identity), which removes the
first-order noise: without it the ratio Q / KL is dominated by noise of order 1 / (c sqrt(N)) at small c.

``log_density_fn`` maps one action (d,) to a scalar and ``delta_fn`` one action (d,) to (d,).  For a
trained flow, :func:`kl_validity_for_states` builds both per state from ``velocity_fn(x, t)`` (the ODE
log-density of :func:`fidec.flows.log_density`) and the residual network.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import jax
import jax.numpy as jnp
import numpy as np
from numpy.typing import ArrayLike

from fidec.agents import REGISTRY, get_spec
from fidec.config import ConfigError
from fidec.fisher import FisherConfig, fisher_from_scores, fisher_metric, jacobian_square, quadratic_penalty
from fidec.flows import VelocityFn, euler_sample, log_density
from fidec.training.loop import load_training_data
from fidec.training.rundir import RunDir

LogDensityFn = Callable[[jax.Array], jax.Array]
DeltaFn = Callable[[jax.Array], jax.Array]
VALID_BAND = (0.9, 1.1)


def default_scales() -> np.ndarray:
    """c on a log grid from 1e-2 to 10 (25 points, 1.0 included)."""
    return np.logspace(-2.0, 1.0, 25)


# ---------------------------------------------------------------------------------------------
# Per-sample pieces (single action functions vmapped over a batch of actions (N, d)).
# ---------------------------------------------------------------------------------------------


def displacement_jacobians(delta_fn: DeltaFn, actions: jax.Array) -> jax.Array:
    """J(a) = d delta / d a for each action: (N, d, d)."""
    return jax.vmap(jax.jacfwd(delta_fn))(actions)


def log_det_transport(jacobians: jax.Array, scale: float | jax.Array = 1.0) -> jax.Array:
    """log|det(I + c J(a))| per sample: (N,)."""
    eye = jnp.eye(jacobians.shape[-1], dtype=jacobians.dtype)
    return jnp.linalg.slogdet(eye + scale * jacobians)[1]


def fold_fraction(jacobians: jax.Array, scale: float | jax.Array = 1.0) -> jax.Array:
    """Share of samples on the minority side of det(I + c J) = 0 (0 when the sign never changes).

    A smooth T whose Jacobian determinant changes sign folds (is not injective): there the push-forward
    density sums over several preimages and the change-of-variables mean is only a lower bound on
    KL(T#p || p).  (A determinant of constant negative sign, e.g. an affine reflection, is fine.)
    """
    eye = jnp.eye(jacobians.shape[-1], dtype=jacobians.dtype)
    negative = jnp.mean(jnp.linalg.det(eye + scale * jacobians) <= 0)
    return jnp.minimum(negative, 1.0 - negative)


def true_kl_terms(
    log_density_fn: LogDensityFn,
    delta_fn: DeltaFn,
    actions: jax.Array,
    scale: float | jax.Array = 1.0,
    control_variate: bool = True,
) -> jax.Array:
    """Per-sample terms of the change-of-variables KL (their mean is KL(T#p || p)), a ~ p: (N,).

    log p(a) - log|det(I + c J)| - log p(a + c delta)  [+ c (grad log p . delta + tr J), mean zero].
    """
    log_p = jax.vmap(log_density_fn)
    deltas = jax.vmap(delta_fn)(actions)
    jacobians = displacement_jacobians(delta_fn, actions)
    terms = log_p(actions) - log_det_transport(jacobians, scale) - log_p(actions + scale * deltas)
    if control_variate:
        scores = jax.vmap(jax.grad(log_density_fn))(actions)
        stein = jnp.sum(scores * deltas, axis=-1) + jnp.trace(jacobians, axis1=-2, axis2=-1)
        terms = terms + scale * stein
    return terms


def true_kl(
    log_density_fn: LogDensityFn,
    delta_fn: DeltaFn,
    actions: jax.Array,
    scale: float | jax.Array = 1.0,
    control_variate: bool = True,
) -> jax.Array:
    """KL(T#p || p) for T(a) = a + c delta(a), by change of variables (Monte Carlo over a ~ p)."""
    return jnp.mean(true_kl_terms(log_density_fn, delta_fn, actions, scale, control_variate))


def exact_fisher(log_density_fn: LogDensityFn, actions: jax.Array) -> jax.Array:
    """F = E[grad log p grad log p^T] (true scale: no damping, no trace normalisation): (d, d)."""
    scores = jax.vmap(jax.grad(log_density_fn))(actions)
    return fisher_from_scores(scores, damping=0.0, normalize=False)


def half_quadratic(deltas: jax.Array, metric: jax.Array) -> jax.Array:
    """1/2 E[delta^T M delta] over displacements (N, d), for a (d, d) or per-sample (N, d, d) metric M.

    Computed by FD's own :func:`fidec.fisher.quadratic_penalty` (delta^T M delta / d), times d / 2.
    """
    d = deltas.shape[-1]
    metric = jnp.broadcast_to(metric, deltas.shape[:-1] + metric.shape[-2:])
    return 0.5 * d * jnp.mean(quadratic_penalty(deltas, metric))


def quadratic_kl(delta_fn: DeltaFn, actions: jax.Array, fisher: jax.Array) -> jax.Array:
    """FD's quadratic 1/2 E[delta^T F delta] with a fixed (d, d) metric F."""
    return half_quadratic(jax.vmap(delta_fn)(actions), fisher)


def curvature_term(log_density_fn: LogDensityFn, delta_fn: DeltaFn, actions: jax.Array) -> jax.Array:
    """1/2 E[delta^T (-Hess log p) delta], the first part of the second-order expansion."""
    hessians = jax.vmap(jax.hessian(log_density_fn))(actions)
    return half_quadratic(jax.vmap(delta_fn)(actions), -hessians)


def jacobian_term(
    delta_fn: DeltaFn, actions: jax.Array, key: jax.Array | None = None, num_probes: int = 1
) -> jax.Array:
    """1/2 E[tr((d delta / d a)^2)] through :func:`fidec.fisher.jacobian_square` (the estimator FD trains
    with): exact with ``key=None``, else Hutchinson with ``num_probes`` Rademacher probes."""
    return 0.5 * jnp.mean(jacobian_square(delta_fn, actions, key, num_probes, form="trace"))


def second_order_kl(log_density_fn: LogDensityFn, delta_fn: DeltaFn, actions: jax.Array) -> jax.Array:
    """1/2 E[delta^T (-Hess log p) delta] + 1/2 E[tr(J^2)] (docs/method.md section 4)."""
    return curvature_term(log_density_fn, delta_fn, actions) + jacobian_term(delta_fn, actions)


def gaussian_kl(mean_1: np.ndarray, cov_1: np.ndarray, mean_0: np.ndarray, cov_0: np.ndarray) -> float:
    """Closed form KL(N(m1, C1) || N(m0, C0)) = 1/2 [tr(C0^-1 C1) + dm^T C0^-1 dm - d + log det C0 / det C1]."""
    prec_0 = np.linalg.inv(cov_0)
    dm = np.asarray(mean_0) - np.asarray(mean_1)
    d = len(dm)
    log_det_ratio = np.linalg.slogdet(cov_0)[1] - np.linalg.slogdet(cov_1)[1]
    return float(0.5 * (np.trace(prec_0 @ cov_1) + dm @ prec_0 @ dm - d + log_det_ratio))


# ---------------------------------------------------------------------------------------------
# A scan over the scale c.
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KLScan:
    """True KL, FD's quadratic and the second-order expansion of T(a) = a + c delta(a) over a grid of c.

    Attributes (NumPy arrays over ``scales`` unless noted):
        true_kl, true_kl_stderr: Monte-Carlo estimate of KL(T#p || p) and its standard error.
        quadratic_kl: 1/2 c^2 E[delta^T F delta] with the true-scale Fisher F of p.
        quadratic_kl_estimated: the same with an estimated metric (e.g. FD's Tweedie score at t_eps),
            or None.
        curvature_term, jacobian_term: the two halves of the second-order expansion.
        second_order_kl: their sum.
        fisher_norm: sqrt(E[delta^T F delta]) * c, the size of the displacement in the Fisher metric.
        displacement_rms: sqrt(E ||delta||^2) * c, its size in action units.
        fold_fraction: share of samples on the minority side of det(I + c J) = 0 (nonzero: T folds and
            the true KL column is a lower bound; see :func:`fold_fraction`), or None.
    """

    scales: np.ndarray
    true_kl: np.ndarray
    true_kl_stderr: np.ndarray
    quadratic_kl: np.ndarray
    curvature_term: np.ndarray
    jacobian_term: np.ndarray
    fisher_norm: np.ndarray
    displacement_rms: np.ndarray
    quadratic_kl_estimated: np.ndarray | None = None
    closed_form_kl: np.ndarray | None = None
    fold_fraction: np.ndarray | None = None
    kl_floor: np.ndarray | None = None

    @property
    def resolved(self) -> np.ndarray:
        """Scales where the true KL is above its round-off floor (and so can judge an approximation)."""
        if self.kl_floor is None:
            return np.ones(len(self.scales), bool)
        return np.abs(self.true_kl) > self.kl_floor

    @property
    def second_order_kl(self) -> np.ndarray:
        return self.curvature_term + self.jacobian_term

    @property
    def quadratic_ratio(self) -> np.ndarray:
        """FD's quadratic / true KL."""
        return self.quadratic_kl / self.true_kl

    @property
    def second_order_ratio(self) -> np.ndarray:
        """Full second-order expansion / true KL."""
        return self.second_order_kl / self.true_kl

    def valid_scale(self, which: str = "quadratic", band: tuple[float, float] = VALID_BAND) -> float | None:
        """Largest c on the grid such that the ratio stays inside ``band`` for every c' <= c.

        Scales where the true KL is below its round-off floor (``resolved`` false) do not count
        against the approximation.  None when the ratio is already outside at the smallest resolved
        c (the approximation has the wrong second-order term, e.g. FD's quadratic for a field with a
        Jacobian term) or when no scale is resolved.
        """
        ratio = {"quadratic": self.quadratic_ratio, "second_order": self.second_order_ratio}[which]
        resolved = self.resolved
        if not resolved.any():
            return None
        inside = ((ratio >= band[0]) & (ratio <= band[1])) | ~resolved
        if not inside[int(np.argmax(resolved))]:
            return None
        first_out = np.argmin(inside) if not inside.all() else len(inside)
        return float(self.scales[first_out - 1])

    def at(self, scale: float) -> dict[str, float]:
        """All quantities at the grid point nearest to ``scale`` (in log space)."""
        i = int(np.argmin(np.abs(np.log(self.scales) - np.log(scale))))
        row = {
            "scale": self.scales[i],
            "true_kl": self.true_kl[i],
            "true_kl_stderr": self.true_kl_stderr[i],
            "quadratic_kl": self.quadratic_kl[i],
            "second_order_kl": self.second_order_kl[i],
            "jacobian_term": self.jacobian_term[i],
            "quadratic_ratio": self.quadratic_ratio[i],
            "second_order_ratio": self.second_order_ratio[i],
            "fisher_norm": self.fisher_norm[i],
            "fold_fraction": self.fold_fraction[i] if self.fold_fraction is not None else float("nan"),
            "quadratic_kl_estimated": (
                self.quadratic_kl_estimated[i] if self.quadratic_kl_estimated is not None else float("nan")
            ),
        }
        return {k: float(v) for k, v in row.items()}

    def to_dict(self) -> dict:
        """JSON-ready columns plus the valid scales."""
        columns = {
            "scale": self.scales,
            "fisher_norm": self.fisher_norm,
            "displacement_rms": self.displacement_rms,
            "true_kl": self.true_kl,
            "true_kl_stderr": self.true_kl_stderr,
            "quadratic_kl": self.quadratic_kl,
            "second_order_kl": self.second_order_kl,
            "curvature_term": self.curvature_term,
            "jacobian_term": self.jacobian_term,
            "quadratic_ratio": self.quadratic_ratio,
            "second_order_ratio": self.second_order_ratio,
        }
        if self.quadratic_kl_estimated is not None:
            columns["quadratic_kl_estimated"] = self.quadratic_kl_estimated
        if self.closed_form_kl is not None:
            columns["closed_form_kl"] = self.closed_form_kl
        if self.fold_fraction is not None:
            columns["fold_fraction"] = self.fold_fraction
        if self.kl_floor is not None:
            columns["kl_floor"] = self.kl_floor
        out: dict[str, list[float] | float | None] = {
            k: [float(x) for x in np.asarray(v)] for k, v in columns.items()
        }
        out["valid_scale_quadratic"] = self.valid_scale("quadratic")
        out["valid_scale_second_order"] = self.valid_scale("second_order")
        return out


def scan_arrays(
    log_density_fn: LogDensityFn,
    delta_fn: DeltaFn,
    actions: jax.Array,
    scales: jax.Array,
    fisher: jax.Array | None = None,
    estimated_fisher: jax.Array | None = None,
    control_variate: bool = True,
    fisher_from: str = "score",
) -> dict[str, jax.Array]:
    """Pure (jittable) core of :func:`kl_scan`: every column as a JAX array over ``scales``.

    ``fisher`` defaults to the sample average over ``actions`` of score score^T (``fisher_from="score"``)
    or of -Hess log p (``"hessian"``): both estimate the same F (integration by parts); the Hessian
    form has far lower Monte-Carlo variance with few actions (a translation's quadratic then equals
    the curvature term on the same samples).  The c^2 terms are computed once at c = 1; only the true
    KL is evaluated at each c (``lax.map`` over scales keeps the memory at one batch of log-densities).
    """
    n = actions.shape[0]
    deltas = jax.vmap(delta_fn)(actions)
    hessians = jax.vmap(jax.hessian(log_density_fn))(actions)
    if fisher is None:
        if fisher_from == "hessian":
            neg = -jnp.mean(hessians, axis=0)
            fisher = 0.5 * (neg + neg.T)
        elif fisher_from == "score":
            fisher = exact_fisher(log_density_fn, actions)
        else:
            raise ConfigError(f"fisher_from must be 'score' or 'hessian', got {fisher_from!r}")
    quad = half_quadratic(deltas, fisher)
    curv = half_quadratic(deltas, -hessians)
    jac = jacobian_term(delta_fn, actions)

    def at_scale(c):
        terms = true_kl_terms(log_density_fn, delta_fn, actions, c, control_variate)
        return jnp.mean(terms), jnp.std(terms) / jnp.sqrt(n)

    kl, stderr = jax.lax.map(at_scale, scales)
    jacobians = displacement_jacobians(delta_fn, actions)
    folds = jax.lax.map(lambda c: fold_fraction(jacobians, c), scales)
    # log p(a) - log p(T a) cancels: a KL below ~100 ulps of |log p| / sqrt(N) is round-off (heuristic,
    # checked on the Gaussian closed form: ~5 % error there with N = 40k in fp32).
    mean_abs_log_p = jnp.mean(jnp.abs(jax.vmap(log_density_fn)(actions)))
    floor = 100.0 * jnp.finfo(actions.dtype).eps * mean_abs_log_p / jnp.sqrt(n)
    c2 = scales**2
    out = {
        "true_kl": kl,
        "true_kl_stderr": stderr,
        "kl_floor": jnp.full_like(scales, floor),
        "fold_fraction": folds,
        "quadratic_kl": c2 * quad,
        "curvature_term": c2 * curv,
        "jacobian_term": c2 * jac,
        "fisher_norm": scales * jnp.sqrt(2.0 * quad),
        "displacement_rms": scales * jnp.sqrt(jnp.mean(jnp.sum(deltas**2, axis=-1))),
    }
    if estimated_fisher is not None:
        out["quadratic_kl_estimated"] = c2 * half_quadratic(deltas, estimated_fisher)
    return out


def scan_from_arrays(scales: np.ndarray, arrays: dict, closed_form_kl: np.ndarray | None = None) -> KLScan:
    arrays = {k: np.asarray(v, np.float64) for k, v in arrays.items()}
    return KLScan(
        scales=np.asarray(scales, np.float64),
        true_kl=arrays["true_kl"],
        true_kl_stderr=arrays["true_kl_stderr"],
        quadratic_kl=arrays["quadratic_kl"],
        curvature_term=arrays["curvature_term"],
        jacobian_term=arrays["jacobian_term"],
        fisher_norm=arrays["fisher_norm"],
        displacement_rms=arrays["displacement_rms"],
        quadratic_kl_estimated=arrays.get("quadratic_kl_estimated"),
        closed_form_kl=closed_form_kl,
        fold_fraction=arrays.get("fold_fraction"),
        kl_floor=arrays.get("kl_floor"),
    )


def kl_scan(
    log_density_fn: LogDensityFn,
    delta_fn: DeltaFn,
    actions: jax.Array,
    scales: Sequence[float] | np.ndarray | None = None,
    fisher: jax.Array | None = None,
    estimated_fisher: jax.Array | None = None,
    control_variate: bool = True,
) -> KLScan:
    """True KL, FD's quadratic and the second-order expansion of a + c delta(a) for every c in ``scales``.

    ``actions`` (N, d) are samples of p.  ``fisher`` defaults to the exact E[score score^T] on them.
    """
    scales = default_scales() if scales is None else np.asarray(scales, np.float64)
    if np.any(scales <= 0) or np.any(np.diff(scales) <= 0):
        raise ConfigError("kl_scan: scales must be positive and increasing (e.g. np.logspace(-2, 1, 25))")
    compute = jax.jit(lambda a, s, f, fe: scan_arrays(log_density_fn, delta_fn, a, s, f, fe, control_variate))
    arrays = compute(actions, jnp.asarray(scales, actions.dtype), fisher, estimated_fisher)
    return scan_from_arrays(scales, arrays)


# ---------------------------------------------------------------------------------------------
# Per state, for a flow policy and a residual (a trained FD agent or a toy flow).
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KLValidityConfig:
    """How :func:`kl_validity_for_states` measures each state.

    Attributes:
        scales: the grid of c (the refinement actually applied is c = 1; keep 1.0 in the grid).
        num_actions: base actions per state for the Monte-Carlo averages.
        sampler_steps: Euler steps for drawing from the flow (many, so the draws follow the ODE density).
        ode_steps: RK4 steps of the ODE log-density.
        fisher: how FD's own estimate of F is formed (un-normalised, undamped for a true-scale KL).
    """

    scales: tuple[float, ...] = tuple(float(c) for c in default_scales())
    num_actions: int = 256
    sampler_steps: int = 100
    ode_steps: int = 32
    fisher: FisherConfig = field(default_factory=lambda: FisherConfig(damping=0.0, normalize=False))

    def __post_init__(self) -> None:
        if self.num_actions < 2:
            raise ConfigError(f"num_actions must be >= 2, got {self.num_actions}")
        if self.fisher.normalize:
            raise ConfigError("KL diagnostics need the true-scale Fisher: use FisherConfig(normalize=False)")


@dataclass(frozen=True)
class StateKLReport:
    """The scan of one state and what it says about the refinement actually applied (c = 1)."""

    index: int
    scan: KLScan

    @property
    def valid_scale(self) -> float | None:
        return self.scan.valid_scale("quadratic")

    @property
    def inside_valid_region(self) -> bool:
        """FD's quadratic is within [0.9, 1.1] of the true KL for every c up to the applied c = 1."""
        return self.valid_scale is not None and self.valid_scale >= 1.0

    def summary(self) -> dict:
        at_one = self.scan.at(1.0)
        second = at_one["second_order_kl"]
        return {
            "state": self.index,
            **at_one,
            "jacobian_share": at_one["jacobian_term"] / second if second != 0 else float("nan"),
            "valid_scale_quadratic": self.valid_scale,
            "valid_scale_second_order": self.scan.valid_scale("second_order"),
            "inside_valid_region": self.inside_valid_region,
        }


def state_scan_arrays(
    velocity_fn: VelocityFn, delta_fn: DeltaFn, key: jax.Array, config: KLValidityConfig, action_dim: int
) -> dict[str, jax.Array]:
    """Pure core for one state: a ~ flow (fine Euler), exact ODE log-density, FD's Tweedie Fisher, scan.

    The quadratic uses the exact Fisher of the flow's density, F = E[-Hess log p] through the ODE
    (equal to E[score score^T]; lower variance with a few hundred actions); ``quadratic_kl_estimated``
    uses FD's own estimate (score read at t_eps, true scale).
    """
    sample_key, fisher_key = jax.random.split(key)
    noise = jax.random.normal(sample_key, (config.num_actions, action_dim))
    actions = euler_sample(velocity_fn, noise, config.sampler_steps)
    log_density_fn = lambda a: log_density(velocity_fn, a, config.ode_steps)
    estimated = fisher_metric(velocity_fn, actions[None], fisher_key, config.fisher)[0]
    scales = jnp.asarray(config.scales, actions.dtype)
    return scan_arrays(log_density_fn, delta_fn, actions, scales, None, estimated, fisher_from="hessian")


def kl_validity_for_states(
    velocity_fn_per_state: Callable[[jax.Array], VelocityFn],
    delta_fn_per_state: Callable[[jax.Array], DeltaFn],
    states: jax.Array,
    action_dim: int,
    key: jax.Array,
    config: KLValidityConfig = KLValidityConfig(),
) -> list[StateKLReport]:
    """Per-state KL validity of a flow policy refined by a residual (e.g. a trained FD agent).

    For each state s in ``states`` (S, obs_dim): ``velocity_fn_per_state(s)`` is the flow's v(x, t) at s
    (x of shape (..., d), t of shape (..., 1)) and ``delta_fn_per_state(s)`` the residual a -> delta(s, a)
    for one action (d,).  Both must be traceable in s (closures over Flax ``apply`` are): the whole
    per-state computation is compiled once and reused for every state.  Returns one report per state.

    Example (FD agent): ``velocity_fn_per_state = lambda s: lambda x, t: flow.apply(p_flow, s, x, t)``
    and ``delta_fn_per_state = lambda s: lambda a: residual.apply(p_res, s, a)``.
    """
    if states.ndim != 2:
        raise ConfigError(f"states must have shape (S, obs_dim), got {states.shape}")

    def one_state(s, k):
        v = velocity_fn_per_state(s)
        delta = delta_fn_per_state(s)
        return state_scan_arrays(v, delta, k, config, action_dim)

    compute = jax.jit(one_state)
    keys = jax.random.split(key, states.shape[0])
    reports = []
    for i in range(states.shape[0]):
        arrays = compute(states[i], keys[i])
        reports.append(StateKLReport(i, scan_from_arrays(np.asarray(config.scales), arrays)))
    return reports


def gaussian_affine_kl(
    mean: ArrayLike, cov: ArrayLike, matrix: ArrayLike, offset: ArrayLike, scales: ArrayLike
) -> np.ndarray:
    """Closed-form KL(T#N(mu, S) || N(mu, S)) for T(a) = a + c (A a + b), per c (docs/method.md section 4).

    T#N(mu, S) = N(J mu + c b, J S J^T) with J = I + c A.
    """
    mu, sigma = np.asarray(mean, np.float64), np.asarray(cov, np.float64)
    a, b = np.asarray(matrix, np.float64), np.asarray(offset, np.float64)
    out = []
    for c in np.asarray(scales, np.float64):
        jac = np.eye(len(mu)) + c * a
        out.append(gaussian_kl(jac @ mu + c * b, jac @ sigma @ jac.T, mu, sigma))
    return np.asarray(out)


# ---------------------------------------------------------------------------------------------
# A trained run (FD or the isotropic baseline): per-state scans on sampled dataset states.
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunKLResult:
    """Per-state KL validity of a run's refinement at one checkpoint."""

    run_dir: str
    agent: str
    env: str
    step: int
    seed: int
    state_indices: np.ndarray
    reports: list[StateKLReport]

    def to_dict(self) -> dict:
        rows = [r.summary() for r in self.reports]
        for row, index in zip(rows, self.state_indices, strict=True):
            row["dataset_index"] = int(index)
        inside = [r.inside_valid_region for r in self.reports]
        return {
            "run_dir": self.run_dir,
            "agent": self.agent,
            "env": self.env,
            "step": self.step,
            "seed": self.seed,
            "num_states": len(self.reports),
            "fraction_inside_valid_region": float(np.mean(inside)) if inside else float("nan"),
            "states": rows,
            "scans": [r.scan.to_dict() for r in self.reports],
        }


def residual_agents() -> list[str]:
    """The agents whose actions are a residual refinement T(a) = a + delta(s, a) (the registry's say)."""
    return [name for name, spec in REGISTRY.items() if spec.has_residual]


def kl_validity_for_run(
    run_dir: str,
    checkpoint: int | None = None,
    num_states: int = 8,
    seed_index: int = 0,
    key: jax.Array | None = None,
    config: KLValidityConfig = KLValidityConfig(),
    dataset=None,
) -> RunKLResult:
    """Load a run's checkpoint (default: the newest good one) and scan ``num_states`` dataset states.

    The refinement measured is the unclipped T(a_hat) = a_hat + delta_phi(s, a_hat) of the training
    seed ``seed_index``, with a_hat from the run's flow (``config.sampler_steps`` Euler steps, finer
    than training so the draws follow the ODE density).  FD's own Fisher estimate uses the run's
    score estimator and t_eps, true scale.  ``dataset`` replaces the run's dataset (needed for runs
    trained on an in-memory dataset).
    """
    run = RunDir.open(run_dir)
    train_config, record = run.read_config()
    if not get_spec(train_config.agent_name).has_residual:
        raise ConfigError(
            f"run {run_dir} trained agent {train_config.agent_name!r}, which has no residual refinement; "
            f"the KL diagnostic needs a run of an agent with one ({', '.join(residual_agents())})"
        )
    num_seeds = len(train_config.seeds)
    if not 0 <= seed_index < num_seeds:
        raise ConfigError(
            f"seed_index must lie in [0, {num_seeds}) for this run's seeds {train_config.seeds}"
        )
    if num_states < 1:
        raise ConfigError(f"num_states must be >= 1, got {num_states}")
    loaded = run.load(step=checkpoint)
    agent, found_step = loaded.agent, loaded.step
    obs_dim, action_dim = agent.obs_dim, agent.action_dim
    params = loaded.states[seed_index].params

    if dataset is None:
        if record.get("dataset") == "in-memory":
            raise ConfigError(
                f"run {run_dir} was trained on an in-memory dataset; pass the same dataset "
                "(kl_validity_for_run(..., dataset=...))"
            )
        dataset = load_training_data(train_config)
    if dataset.obs_dim != obs_dim or dataset.action_dim != action_dim:
        raise ConfigError(
            f"dataset has obs_dim {dataset.obs_dim}, action_dim {dataset.action_dim}; the run expects "
            f"{obs_dim}, {action_dim}"
        )
    key = jax.random.PRNGKey(0) if key is None else key
    pick_key, scan_key = jax.random.split(key)
    count = min(num_states, dataset.size)
    indices = np.sort(np.asarray(jax.random.choice(pick_key, dataset.size, (count,), replace=False)))
    states = jnp.asarray(np.asarray(dataset.observations)[indices], jnp.float32)

    nets = agent.networks
    # The run's own Fisher settings (an isotropic agent has none: the default estimator's).
    run_fisher = getattr(train_config.agent, "fisher", FisherConfig())
    fisher = replace(run_fisher, damping=0.0, normalize=False, t_eps_max=None)
    config = replace(config, fisher=fisher)
    reports = kl_validity_for_states(
        lambda s: lambda x, t: nets.flow.apply(params["flow"], s, x, t),
        lambda s: lambda a: nets.residual.apply(params["residual"], s, a),
        states,
        action_dim,
        scan_key,
        config,
    )
    return RunKLResult(
        run_dir=str(run_dir),
        agent=train_config.agent_name,
        env=train_config.env,
        step=found_step,
        seed=int(train_config.seeds[seed_index]),
        state_indices=indices,
        reports=reports,
    )
