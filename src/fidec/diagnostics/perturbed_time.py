"""How the Fisher estimate depends on the perturbed time t_eps = 1 - eps (docs/method.md sections 2 and 7).

FD reads the behaviour score at t_eps with the Tweedie estimate g = (t v(x, t) - x) / (1 - t), so its
Fisher F_hat = E[g g^T] estimates the Fisher of p_t, Sigma_t^-1 for pi_b = N(mu, S), not S^-1:

    bias(eps)     = Sigma_t^-1 - S^-1,   Sigma_t = t^2 S + eps^2 I          (shrinks as eps -> 0)
    round-off     ~ delta / eps                                              (1 - t divides the error)

For each eps the scores are computed by the library's ``score_at`` in the working precision (fp32 or
fp64, analytic velocity field; optionally a flow fitted in fp32) and, on the same samples, by the
exact fp64 score of p_t.  Their difference F_hat - F_ref is the round-off (or network) part; adding the
analytic bias gives the total error with the Monte-Carlo noise of the N samples removed:

    error(eps) = || F_hat - F_ref + Sigma_t^-1 - S^-1 ||_F / || S^-1 ||_F

per estimate from M samples (one state's estimate in FD; RMS over N / M estimates), and the same for the trace-normalised F_n that FD uses).  The measured optimum eps* is compared with
the paper's delta^(1/4) rule for unit round-off delta.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from fidec.config import ConfigError
from fidec.diagnostics.behaviours import rotation_2d
from fidec.diagnostics.flow_fit import fit_flow
from fidec.fisher import trace_normalize
from fidec.flows import gaussian_fisher, gaussian_score, gaussian_velocity, score_at

METRICS = ("raw", "normalized")
# Leading order of the bias of p_t in eps: t^2 S shrinks p_t by ~2 eps; trace normalisation cancels that.
BIAS_ORDER = {"raw": 1, "normalized": 2}
UNIT_ROUNDOFF = {"fp32": float(np.finfo(np.float32).eps) / 2, "fp64": float(np.finfo(np.float64).eps) / 2}


def default_eps() -> np.ndarray:
    """eps on a log grid from 1e-7 to 0.3 (49 points)."""
    return np.logspace(-7.0, np.log10(0.3), 49)


@dataclass(frozen=True)
class PerturbedTimeConfig:
    """The perturbed-time study.

    Attributes:
        eps: grid of eps = 1 - t_eps (increasing, inside (0, 1)).
        num_samples: N behaviour samples (and noise draws) shared by every eps and precision.
        samples_per_state: M, samples behind one Fisher estimate (FD's ``fisher.num_samples``, 4 by
            default).  The N samples form N / M estimates; errors are RMS over them.  Round-off is
            random across samples, so it averages down as 1 / sqrt(M): M = N gives a pooled estimate.
        stds, angle, mean: the anisotropic Gaussian behaviour N(mean, R(angle) diag(stds^2) R^T).
        flow_steps: flow-matching steps of an fp32 flow fitted to the behaviour (0: analytic only).
        seed: PRNG seed.
    """

    eps: tuple[float, ...] = tuple(float(e) for e in default_eps())
    num_samples: int = 8192
    samples_per_state: int = 4
    stds: tuple[float, float] = (0.25, 0.05)
    angle: float = 0.5
    mean: tuple[float, float] = (0.2, -0.1)
    flow_steps: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        eps = np.asarray(self.eps)
        if eps.ndim != 1 or eps.size < 3 or np.any(eps <= 0) or np.any(eps >= 1) or np.any(np.diff(eps) <= 0):
            raise ConfigError("eps must be an increasing grid of at least 3 values inside (0, 1)")
        if self.num_samples < 2:
            raise ConfigError(f"num_samples must be >= 2, got {self.num_samples}")
        if self.samples_per_state < 1 or self.num_samples % self.samples_per_state:
            raise ConfigError(
                f"samples_per_state must be >= 1 and divide num_samples ({self.num_samples}), "
                f"got {self.samples_per_state}"
            )
        if min(self.stds) <= 0:
            raise ConfigError(f"stds must be positive, got {self.stds}")
        if self.flow_steps < 0:
            raise ConfigError(f"flow_steps must be >= 0, got {self.flow_steps}")

    def covariance(self) -> np.ndarray:
        """S = R(angle) diag(stds^2) R(angle)^T."""
        rot = rotation_2d(self.angle)
        return rot @ np.diag(np.square(self.stds)) @ rot.T


@dataclass(frozen=True)
class PerturbedTimeCurve:
    """One estimator over the eps grid: total error and its round-off / network part, per metric."""

    name: str
    eps: np.ndarray
    error: dict[str, np.ndarray]
    deviation: dict[str, np.ndarray]

    def optimum(self, metric: str = "normalized") -> float:
        """eps with the smallest total error."""
        return float(self.eps[int(np.nanargmin(self.error[metric]))])


def error_model(eps: np.ndarray, bias: np.ndarray, deviation: np.ndarray, order: int) -> dict | None:
    """Fit bias ~ a eps^order and round-off ~ b / eps where each dominates; their crossing
    (b / a)^(1/(order+1)) predicts the optimum eps.

    ``a`` is the median of bias / eps^order over eps < 0.01 where the bias is > 10x the round-off part
    (the leading order); ``b`` the median of deviation * eps where the round-off part is > 10x the bias.
    None when either side has no such point on the grid.
    """
    bias_side = (bias > 10 * deviation) & (eps < 1e-2)
    roundoff_side = deviation > 10 * bias
    if not bias_side.any() or not roundoff_side.any():
        return None
    a = float(np.median(bias[bias_side] / eps[bias_side] ** order))
    b = float(np.median(deviation[roundoff_side] * eps[roundoff_side]))
    return {
        "bias_order": order,
        "bias_coefficient": a,
        "roundoff_coefficient": b,
        "crossing_eps": (b / a) ** (1.0 / (order + 1)),
    }


@dataclass(frozen=True)
class PerturbedTimeResult:
    curves: list[PerturbedTimeCurve]
    bias: dict[str, np.ndarray]
    unit_roundoff: dict[str, float]
    num_samples: int
    samples_per_state: int

    def error_models(self, curve: PerturbedTimeCurve) -> dict[str, dict | None]:
        """Per metric, :func:`error_model` of an analytic curve (the flow's error is not round-off)."""
        if not curve.name.startswith("analytic"):
            return {m: None for m in METRICS}
        return {m: error_model(curve.eps, self.bias[m], curve.deviation[m], BIAS_ORDER[m]) for m in METRICS}

    def curve(self, name: str) -> PerturbedTimeCurve:
        for c in self.curves:
            if c.name == name:
                return c
        raise KeyError(f"no curve {name!r}; have {[c.name for c in self.curves]}")

    def to_dict(self) -> dict:
        out: dict = {
            "num_samples": self.num_samples,
            "samples_per_state": self.samples_per_state,
            "unit_roundoff": self.unit_roundoff,
            "delta_quarter": {k: v**0.25 for k, v in self.unit_roundoff.items()},
            "delta_third": {k: v ** (1 / 3) for k, v in self.unit_roundoff.items()},
            "eps": [float(e) for e in self.curves[0].eps],
            "bias": {m: [float(x) for x in v] for m, v in self.bias.items()},
            "curves": {},
        }
        for c in self.curves:
            out["curves"][c.name] = {
                "optimum_eps": {m: c.optimum(m) for m in METRICS},
                "min_error": {m: float(np.nanmin(c.error[m])) for m in METRICS},
                "error": {m: [float(x) for x in c.error[m]] for m in METRICS},
                "deviation": {m: [float(x) for x in c.deviation[m]] for m in METRICS},
                "error_model": self.error_models(c),
            }
        return out


def _normalize(metric: np.ndarray) -> np.ndarray:
    """FD's trace normalisation (:func:`fidec.fisher.trace_normalize`) in fp64: the errors compared here
    go down to 1e-11."""
    with jax.enable_x64(True):
        return np.asarray(trace_normalize(jnp.asarray(metric, jnp.float64)))


def _relative(diff: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """RMS over states of ||diff||_F / ||reference||_F: (E, S, d, d) or (E, d, d) -> (E,)."""
    norms = np.linalg.norm(diff, axis=(-2, -1))
    if norms.ndim > 1:
        norms = np.sqrt(np.mean(norms**2, axis=-1))
    return norms / np.linalg.norm(reference)


def _outer_mean(scores: np.ndarray, per_state: int) -> np.ndarray:
    """(E, N, d) scores -> (E, N / M, d, d): mean outer products over groups of M = ``per_state``
    samples (one group = one state's estimate), accumulated in fp64 (the round-off that eps trades off
    is in the scores; summing M outer products does not depend on eps)."""
    scores = np.asarray(scores, np.float64)
    e, n, d = scores.shape
    groups = scores.reshape(e, n // per_state, per_state, d)
    return np.einsum("esmi,esmj->esij", groups, groups) / per_state


def estimated_scores(
    velocity_fn, actions: np.ndarray, noise: np.ndarray, eps: np.ndarray, dtype
) -> np.ndarray:
    """Tweedie scores (E, N, d) at t = 1 - eps in ``dtype`` through :func:`fidec.flows.score_at`."""
    a = jnp.asarray(actions, dtype)
    x0 = jnp.asarray(noise, dtype)

    def one(e):
        t = jnp.full(a.shape[:-1] + (1,), 1.0, dtype) - e
        return score_at(velocity_fn, a, x0, t, "tweedie")

    return np.asarray(jax.lax.map(one, jnp.asarray(eps, dtype)))


def reference_scores(mean: np.ndarray, cov: np.ndarray, actions, noise, eps: np.ndarray) -> np.ndarray:
    """Exact fp64 scores of p_t at the same noised points (E, N, d)."""
    with jax.enable_x64(True):
        mu, s = jnp.asarray(mean, jnp.float64), jnp.asarray(cov, jnp.float64)
        a, x0 = jnp.asarray(actions, jnp.float64), jnp.asarray(noise, jnp.float64)

        def one(e):
            t = 1.0 - e
            return gaussian_score(mu, s, (1.0 - t) * x0 + t * a, t)

        return np.asarray(jax.lax.map(one, jnp.asarray(eps, jnp.float64)))


def _curve(name, eps, f_hat, f_ref, f_t, s_inv) -> PerturbedTimeCurve:
    raw_dev = f_hat - f_ref
    norm_dev = _normalize(f_hat) - _normalize(f_ref)
    f_t, f_t_n = f_t[:, None], _normalize(f_t)[:, None]  # the same bias for every state
    return PerturbedTimeCurve(
        name=name,
        eps=eps,
        error={
            "raw": _relative(raw_dev + f_t - s_inv, s_inv),
            "normalized": _relative(norm_dev + f_t_n - _normalize(s_inv), _normalize(s_inv)),
        },
        deviation={"raw": _relative(raw_dev, s_inv), "normalized": _relative(norm_dev, _normalize(s_inv))},
    )


def perturbed_time_study(config: PerturbedTimeConfig = PerturbedTimeConfig()) -> PerturbedTimeResult:
    """Error of FD's Fisher estimate against the analytic S^-1 over the eps grid (see the module doc)."""
    eps = np.asarray(config.eps, np.float64)
    mean, cov = np.asarray(config.mean, np.float64), config.covariance()
    rng = np.random.default_rng(config.seed)
    actions = rng.multivariate_normal(mean, cov, config.num_samples).astype(np.float32)
    noise = rng.standard_normal(actions.shape).astype(np.float32)

    m = config.samples_per_state
    f_ref = _outer_mean(reference_scores(mean, cov, actions, noise, eps), m)
    with jax.enable_x64(True):
        s_inv = np.linalg.inv(cov)
        f_t = np.stack(
            [np.asarray(gaussian_fisher(jnp.asarray(mean), jnp.asarray(cov), 1.0 - e)) for e in eps]
        )

    curves = []
    for label, dtype in (("fp32", jnp.float32), ("fp64", jnp.float64)):
        with jax.enable_x64(dtype == jnp.float64):
            velocity = gaussian_velocity(jnp.asarray(mean, dtype), jnp.asarray(cov, dtype))
            scores = estimated_scores(velocity, actions, noise, eps, dtype)
        curves.append(_curve(f"analytic {label}", eps, _outer_mean(scores, m), f_ref, f_t, s_inv))
    if config.flow_steps > 0:
        data = rng.multivariate_normal(mean, cov, 20_000).astype(np.float32)
        fit = fit_flow(data, steps=config.flow_steps, seed=config.seed)
        scores = estimated_scores(fit.velocity_fn(), actions, noise, eps, jnp.float32)
        curves.append(_curve("flow fp32", eps, _outer_mean(scores, m), f_ref, f_t, s_inv))

    bias = {
        "raw": _relative(f_t - s_inv, s_inv),
        "normalized": _relative(_normalize(f_t) - _normalize(s_inv), _normalize(s_inv)),
    }
    return PerturbedTimeResult(curves, bias, dict(UNIT_ROUNDOFF), config.num_samples, m)


def summary_lines(result: PerturbedTimeResult) -> list[str]:
    """Markdown bullet lines: the optimum eps of each curve against delta^(1/4) and the fitted error model."""
    lines = []
    for c in result.curves:
        prec = "fp64" if "fp64" in c.name else "fp32"
        rule = result.unit_roundoff[prec] ** 0.25
        models = result.error_models(c)
        for m in METRICS:
            i = int(np.nanargmin(c.error[m]))
            edge = " (grid edge: the optimum lies beyond the grid)" if i in (0, len(c.eps) - 1) else ""
            model = models[m]
            fit = (
                ""
                if model is None
                else f"; bias ~ {model['bias_coefficient']:.3g} eps^{model['bias_order']} meets round-off "
                f"~ {model['roundoff_coefficient']:.2g} / eps at eps = {model['crossing_eps']:.2g}"
            )
            lines.append(
                f"- {c.name}, {m} F: optimum eps = {c.eps[i]:.2g}{edge} (t_eps = {1 - c.eps[i]:.6g}), "
                f"error {c.error[m][i]:.2e}; delta^(1/4) = {rule:.2g}{fit}"
            )
    return lines
