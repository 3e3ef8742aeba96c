"""Toy behaviours for the diagnostics: 2-D action densities with exact log-densities, goal rewards and
displacement fields.

Behaviours (each with an exact, differentiable ``log_density`` and a ``sample`` method):

- :class:`GaussianMixture`: sum_k w_k N(m_k, C_k); one component gives a Gaussian with closed-form KLs.
- :class:`CurvedBand`: a thin parabolic band  a = (u, offset + curvature u^2 + z),  u ~ N(0, s_u^2),
  z ~ N(0, s_n^2).  The map (u, z) -> a is a shear with unit Jacobian, so
  log p(a) = log N(a_1; 0, s_u^2) + log N(a_2 - offset - curvature a_1^2; 0, s_n^2)  exactly.

Displacement fields delta(a) for ``fidec diagnose kl`` (a translation, an affine map, a random MLP) are
normalised so that the root-mean-square displacement under the behaviour is 1 at scale c = 1.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import jax
import jax.numpy as jnp
import numpy as np

from fidec.config import ConfigError
from fidec.networks import MLP

BEHAVIOURS = ("gaussian", "mixture", "band")
FIELDS = ("translation", "affine", "mlp")
DeltaFn = Callable[[jax.Array], jax.Array]


class Behaviour(Protocol):
    """A distribution over actions with an exact log-density."""

    @property
    def name(self) -> str: ...

    @property
    def dim(self) -> int: ...

    def log_density(self, actions: jax.Array) -> jax.Array: ...

    def sample(self, key: jax.Array, n: int) -> jax.Array: ...


def rotation_2d(angle: float) -> np.ndarray:
    """The 2-D rotation matrix by ``angle`` radians."""
    return np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])


@dataclass(frozen=True, eq=False)
class GaussianMixture:
    """sum_k w_k N(means[k], covariances[k]); arrays are NumPy float64 (cast to the input's dtype)."""

    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray
    name: str = "mixture"

    def __post_init__(self) -> None:
        k, d = self.means.shape
        if self.weights.shape != (k,) or self.covariances.shape != (k, d, d):
            raise ConfigError(
                f"GaussianMixture expects weights (K,), means (K, d), covariances (K, d, d); got "
                f"{self.weights.shape}, {self.means.shape}, {self.covariances.shape}"
            )
        if not np.isclose(self.weights.sum(), 1.0) or np.any(self.weights <= 0):
            raise ConfigError(f"mixture weights must be positive and sum to 1, got {self.weights}")

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    def log_density(self, actions: jax.Array) -> jax.Array:
        """log p(a) = logsumexp_k [log w_k + log N(a; m_k, C_k)] over the last axis of ``actions``."""
        dtype = actions.dtype
        chol = np.linalg.cholesky(self.covariances)
        inv_chol = jnp.asarray(np.linalg.inv(chol), dtype)  # (K, d, d): L_k^{-1}, C_k = L_k L_k^T
        diff = actions[..., None, :] - jnp.asarray(self.means, dtype)  # (..., K, d)
        maha = jnp.sum(jnp.einsum("kij,...kj->...ki", inv_chol, diff) ** 2, axis=-1)  # (..., K)
        log_det = 2.0 * np.sum(np.log(np.diagonal(chol, axis1=-2, axis2=-1)), axis=-1)  # (K,)
        log_norm = jnp.asarray(-0.5 * (self.dim * np.log(2.0 * np.pi) + log_det), dtype)
        log_w = jnp.log(jnp.asarray(self.weights, dtype))
        return jax.scipy.special.logsumexp(log_w + log_norm - 0.5 * maha, axis=-1)

    def sample(self, key: jax.Array, n: int) -> jax.Array:
        k_comp, k_noise = jax.random.split(key)
        comp = jax.random.choice(k_comp, len(self.weights), (n,), p=jnp.asarray(self.weights, jnp.float32))
        chol = jnp.asarray(np.linalg.cholesky(self.covariances), jnp.float32)
        z = jax.random.normal(k_noise, (n, self.dim))
        return jnp.asarray(self.means, jnp.float32)[comp] + jnp.einsum("nij,nj->ni", chol[comp], z)


@dataclass(frozen=True)
class CurvedBand:
    """Thin parabolic band a_2 = offset + curvature a_1^2 + z (see the module docstring)."""

    length_std: float = 0.35
    width_std: float = 0.04
    curvature: float = 0.5
    offset: float = -0.3
    name: str = "band"

    @property
    def dim(self) -> int:
        return 2

    def log_density(self, actions: jax.Array) -> jax.Array:
        """log N(a_1; 0, s_u^2) + log N(a_2 - offset - curvature a_1^2; 0, s_n^2)."""
        u = actions[..., 0]
        z = actions[..., 1] - self.offset - self.curvature * u**2
        log_two_pi = jnp.log(2.0 * jnp.pi)
        return (
            -0.5 * (u / self.length_std) ** 2
            - 0.5 * (z / self.width_std) ** 2
            - log_two_pi
            - jnp.log(self.length_std * self.width_std)
        )

    def fisher(self) -> np.ndarray:
        """Exact E[score score^T] = diag(1/s_u^2 + 4 k^2 s_u^2 / s_n^2, 1/s_n^2) (k = curvature)."""
        su2, sn2 = self.length_std**2, self.width_std**2
        return np.diag([1.0 / su2 + 4.0 * self.curvature**2 * su2 / sn2, 1.0 / sn2])

    def sample(self, key: jax.Array, n: int) -> jax.Array:
        u = self.length_std * jax.random.normal(key, (n,))
        z = self.width_std * jax.random.normal(jax.random.fold_in(key, 1), (n,))
        return jnp.stack([u, self.offset + self.curvature * u**2 + z], axis=-1)


def elongated_gaussian(angle: float = 0.5, stds: tuple[float, float] = (0.25, 0.05)) -> GaussianMixture:
    """One rotated Gaussian N(mu, R diag(stds^2) R^T) (the anisotropic case of ``fidec fisher-check``)."""
    rot = rotation_2d(angle)
    cov = rot @ np.diag(np.square(stds)) @ rot.T
    return GaussianMixture(np.ones(1), np.array([[0.2, -0.1]]), cov[None], name="gaussian")


def two_lanes(angle: float = 0.35, separation: float = 0.6, stds: tuple[float, float] = (0.35, 0.07)):
    """Two parallel elongated Gaussians ("lanes") tilted by ``angle``: strongly anisotropic, bimodal."""
    rot = rotation_2d(angle)
    cov = rot @ np.diag(np.square(stds)) @ rot.T
    normal = rot @ np.array([0.0, 1.0])
    means = np.stack([-0.5 * separation * normal, 0.5 * separation * normal])
    return GaussianMixture(np.array([0.5, 0.5]), means, np.stack([cov, cov]), name="mixture")


def make_behaviour(name: str) -> GaussianMixture | CurvedBand:
    """ "gaussian" (one elongated Gaussian), "mixture" (two elongated lanes) or "band" (curved band)."""
    if name == "gaussian":
        return elongated_gaussian()
    if name == "mixture":
        return two_lanes()
    if name == "band":
        return CurvedBand()
    raise ConfigError(f"unknown behaviour {name!r}; choose one of {', '.join(BEHAVIOURS)}")


def goal_reward(goal: jax.Array | np.ndarray) -> Callable[[jax.Array], jax.Array]:
    """r(a) = -||a - goal||^2 (concave; pulls every action toward ``goal``)."""
    goal = jnp.asarray(goal)
    return lambda a: -jnp.sum((a - goal.astype(a.dtype)) ** 2, axis=-1)


# ---------------------------------------------------------------------------------------------
# Displacement fields delta(a), single action (d,) -> (d,).
# ---------------------------------------------------------------------------------------------


def translation_field(direction: jax.Array) -> DeltaFn:
    """delta(a) = b: the per-state translation for which FD's quadratic is exact to second order."""
    return lambda a: jnp.asarray(direction, a.dtype)


def affine_field(matrix: jax.Array, offset: jax.Array) -> DeltaFn:
    """delta(a) = A a + b (constant Jacobian A; the closed-form case of docs/method.md section 4)."""
    return lambda a: jnp.asarray(matrix, a.dtype) @ a + jnp.asarray(offset, a.dtype)


def mlp_field(key: jax.Array, dim: int, hidden: tuple[int, ...] = (32, 32)) -> DeltaFn:
    """A randomly initialised tanh MLP a -> delta(a) (a smooth, nonlinear field)."""
    module = MLP(hidden, dim, activation="tanh")
    params = module.init(key, jnp.zeros((dim,)))

    def field(a):
        return module.apply(jax.tree.map(lambda p: p.astype(a.dtype), params), a)

    return field


def scaled(delta_fn: DeltaFn, scale: float) -> DeltaFn:
    """a -> scale * delta_fn(a)."""
    return lambda a: scale * delta_fn(a)


def make_field(name: str, behaviour: Behaviour, key: jax.Array, num_samples: int = 4096) -> DeltaFn:
    """A displacement field normalised to RMS ||delta|| = 1 under the behaviour (so c is in action units).

    translation: a fixed random direction.  affine: A with random entries (not symmetric, so tr(A^2)
    differs from ||A||_F^2) plus a random offset.  mlp: a random tanh MLP.
    """
    d = behaviour.dim
    k_dir, k_mat, k_off, k_norm = jax.random.split(key, 4)
    if name == "translation":
        field = translation_field(jax.random.normal(k_dir, (d,)))
    elif name == "affine":
        field = affine_field(jax.random.normal(k_mat, (d, d)), 0.3 * jax.random.normal(k_off, (d,)))
    elif name == "mlp":
        field = mlp_field(k_mat, d)
    else:
        raise ConfigError(f"unknown displacement field {name!r}; choose one of {', '.join(FIELDS)}")
    actions = behaviour.sample(k_norm, num_samples)
    rms = jnp.sqrt(jnp.mean(jnp.sum(jax.vmap(field)(actions) ** 2, axis=-1)))
    return scaled(field, float(1.0 / rms))
