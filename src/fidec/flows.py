"""Flow matching on the rectified-flow path (docs/method.md sections 1-2).

Conventions: noise x0 ~ N(0, I) at t = 0, data a at t = 1,

    x_t = (1 - t) x0 + t a,        target velocity u = a - x0.

Every function here is pure JAX and works under ``jit`` and ``vmap``.  A *velocity function* is any
callable ``v(x, t)`` with ``x`` of shape (..., d) and ``t`` of shape (..., 1) (a network with its
parameters and the state already bound, or an analytic field such as :func:`gaussian_velocity`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import jax
import jax.numpy as jnp

VelocityFn = Callable[[jax.Array, jax.Array], jax.Array]
ScoreEstimator = Literal["tweedie", "velocity"]
SCORE_ESTIMATORS: tuple[str, ...] = ("tweedie", "velocity")


def interpolate(x0: jax.Array, a: jax.Array, t: jax.Array) -> jax.Array:
    """Point on the rectified path: x_t = (1 - t) x0 + t a."""
    return (1.0 - t) * x0 + t * a


def flow_matching_loss(
    velocity_fn: VelocityFn, actions: jax.Array, noise: jax.Array, times: jax.Array
) -> jax.Array:
    """Conditional flow-matching loss L_bc = E || v(x_t, t) - (a - x0) ||^2 / d.

    ``actions`` and ``noise`` are (B, d), ``times`` is (B, 1) with t ~ U(0, 1).  The squared error is
    averaged over action dimensions (as in FQL; docs/method.md section 1); this rescales the sum over
    dimensions by 1/d, which leaves the minimiser unchanged and, because the flow has its own parameters
    under Adam, the training too.
    """
    x_t = interpolate(noise, actions, times)
    target = actions - noise
    return jnp.mean((velocity_fn(x_t, times) - target) ** 2)


def euler_sample(
    velocity_fn: VelocityFn, noise: jax.Array, num_steps: int = 10, unroll: bool = False
) -> jax.Array:
    """K-step Euler integration of dx/dt = v(x, t) from t = 0 to 1: x_{k+1} = x_k + v(x_k, k/K) / K.

    Returns x_K (the base action a_hat).  ``noise`` is x_0 with shape (..., d).  ``unroll``: the K steps as
    one straight-line program instead of a loop (the same maths; the benchmarks compare the two).
    """

    def step(x, k):
        t = jnp.full(x.shape[:-1] + (1,), k / num_steps, dtype=x.dtype)
        return x + velocity_fn(x, t) / num_steps, None

    x, _ = jax.lax.scan(step, noise, jnp.arange(num_steps), unroll=unroll)
    return x


def score_from_velocity(
    velocity: jax.Array, x: jax.Array, t: jax.Array, estimator: ScoreEstimator = "tweedie"
) -> jax.Array:
    """Score of the noised marginal p_t read off the velocity field.

    ``"tweedie"`` (exact for the optimal field):  grad_x log p_t(x) = (t v(x, t) - x) / (1 - t),
    from Tweedie's identity E[x0 | x_t = x] = x - t v(x, t).

    ``"velocity"`` (the official FD code):  v(x, t) / (1 - t)  =  score + v + x / (1 - t).
    Near t = 1 the x / (1 - t) part dominates, so a metric built on it mostly reflects the second
    moment of the actions, not the behaviour density (kept to reproduce the official numbers).
    """
    if estimator == "tweedie":
        return (t * velocity - x) / (1.0 - t)
    if estimator == "velocity":
        return velocity / (1.0 - t)
    raise ValueError(f"unknown score estimator {estimator!r}; expected one of {SCORE_ESTIMATORS}")


def score_at(
    velocity_fn: VelocityFn,
    actions: jax.Array,
    noise: jax.Array,
    t: jax.Array,
    estimator: ScoreEstimator = "tweedie",
) -> jax.Array:
    """Score of p_t at the noised action x_t = (1 - t) x0 + t a (the behaviour score when t -> 1)."""
    x_t = interpolate(noise, actions, t)
    return score_from_velocity(velocity_fn(x_t, t), x_t, t, estimator)


def divergence_exact(fn: Callable[[jax.Array], jax.Array], x: jax.Array) -> jax.Array:
    """div f(x) = tr(d f / d x) for a single point x of shape (d,), by a full forward-mode Jacobian."""
    return jnp.trace(jax.jacfwd(fn)(x))


def divergence_hutchinson(
    fn: Callable[[jax.Array], jax.Array], x: jax.Array, key: jax.Array, num_probes: int = 1
) -> jax.Array:
    """Unbiased estimate of div f(x) = E_z[z^T (d f / d x) z] with Rademacher probes z."""
    probes = jax.random.rademacher(key, (num_probes,) + x.shape, dtype=x.dtype)
    jvps = jax.vmap(lambda z: jax.jvp(fn, (x,), (z,))[1])(probes)
    return jnp.mean(jnp.sum(jvps * probes, axis=-1))


def standard_normal_log_density(x: jax.Array) -> jax.Array:
    """log N(x; 0, I) summed over the last axis."""
    d = x.shape[-1]
    return -0.5 * jnp.sum(x**2, axis=-1) - 0.5 * d * jnp.log(2.0 * jnp.pi)


def log_density(
    velocity_fn: VelocityFn,
    x1: jax.Array,
    num_steps: int = 64,
    exact_trace: bool | None = None,
    key: jax.Array | None = None,
    num_probes: int = 1,
) -> jax.Array:
    """Exact log-density of the flow's ODE push-forward at a single point x1 (shape (d,)).

    Integrates backwards from t = 1 to 0 with RK4 the augmented ODE
        dx/dt = v(x, t),   d/dt log p_t(x_t) = -div v(x_t, t),
    so that log p_1(x1) = log N(x_0; 0, I) - int_0^1 div v(x_t, t) dt.
    The divergence is the exact Jacobian trace for d <= 8 (default) and a Hutchinson estimate beyond.
    ``vmap`` over points for a batch.
    """
    d = x1.shape[-1]
    if exact_trace is None:
        exact_trace = d <= 8
    if not exact_trace and key is None:
        raise ValueError("log_density with a Hutchinson trace needs a PRNG key")
    key = jax.random.PRNGKey(0) if key is None else key

    def field(x, t, k):
        tt = jnp.reshape(t, (1,)).astype(x.dtype)
        f = lambda y: velocity_fn(y, tt)
        div = divergence_exact(f, x) if exact_trace else divergence_hutchinson(f, x, k, num_probes)
        return f(x), div

    h = 1.0 / num_steps

    def step(carry, i):
        x, int_div, k = carry
        k, k1, k2, k3, k4 = jax.random.split(k, 5)
        t = 1.0 - i * h  # integrate backwards in time: s = -t
        v1, d1 = field(x, t, k1)
        v2, d2 = field(x - 0.5 * h * v1, t - 0.5 * h, k2)
        v3, d3 = field(x - 0.5 * h * v2, t - 0.5 * h, k3)
        v4, d4 = field(x - h * v3, t - h, k4)
        x = x - h / 6.0 * (v1 + 2 * v2 + 2 * v3 + v4)
        int_div = int_div + h / 6.0 * (d1 + 2 * d2 + 2 * d3 + d4)
        return (x, int_div, k), None

    (x0, int_div, _), _ = jax.lax.scan(step, (x1, jnp.zeros((), x1.dtype), key), jnp.arange(num_steps))
    return standard_normal_log_density(x0) - int_div


# ---------------------------------------------------------------------------------------------
# Closed-form reference: a Gaussian behaviour policy N(mu, S).  Used by tests and diagnostics.
# ---------------------------------------------------------------------------------------------


def gaussian_marginal(mu: jax.Array, cov: jax.Array, t: jax.Array) -> tuple[jax.Array, jax.Array]:
    """p_t = N(t mu, t^2 S + (1 - t)^2 I) when pi_b = N(mu, S) and x0 ~ N(0, I)."""
    d = mu.shape[-1]
    return t * mu, t**2 * cov + (1.0 - t) ** 2 * jnp.eye(d, dtype=cov.dtype)


def gaussian_velocity(mu: jax.Array, cov: jax.Array) -> VelocityFn:
    """Optimal (minimum-L_bc) velocity field for pi_b = N(mu, S):

    v(x, t) = E[a - x0 | x_t = x] = mu + (t S - (1 - t) I) Sigma_t^{-1} (x - t mu).
    """
    d = mu.shape[-1]
    eye = jnp.eye(d, dtype=cov.dtype)

    def single(x, t):
        t = jnp.reshape(t, ())
        mean_t, cov_t = gaussian_marginal(mu, cov, t)
        gain = (t * cov - (1.0 - t) * eye) @ jnp.linalg.inv(cov_t)
        return mu + gain @ (x - mean_t)

    def velocity(x, t):
        t = jnp.broadcast_to(t, x.shape[:-1] + (1,))
        flat_x, flat_t = x.reshape(-1, d), t.reshape(-1, 1)
        return jax.vmap(single)(flat_x, flat_t).reshape(x.shape)

    return velocity


def gaussian_score(mu: jax.Array, cov: jax.Array, x: jax.Array, t: jax.Array) -> jax.Array:
    """grad_x log p_t(x) = -Sigma_t^{-1} (x - t mu) for pi_b = N(mu, S)."""
    mean_t, cov_t = gaussian_marginal(mu, cov, jnp.reshape(t, ()))
    return -jnp.linalg.solve(cov_t, (x - mean_t)[..., None])[..., 0]


def gaussian_fisher(mu: jax.Array, cov: jax.Array, t: float | jax.Array) -> jax.Array:
    """Fisher information of p_t: E[score score^T] = Sigma_t^{-1} (-> S^{-1} as t -> 1)."""
    _, cov_t = gaussian_marginal(mu, cov, jnp.asarray(t, cov.dtype))
    return jnp.linalg.inv(cov_t)
