"""Shared fixtures: Gaussian behaviour distributions with closed-form flows, and a scoped float64 mode."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import pytest


@dataclass(frozen=True)
class GaussianCase:
    """pi_b = N(mu, cov), stored in float64 NumPy so each test picks its own JAX dtype."""

    mu: np.ndarray
    cov: np.ndarray

    @property
    def dim(self) -> int:
        return self.mu.shape[-1]

    def arrays(self) -> tuple[jax.Array, jax.Array]:
        """(mu, cov) in JAX's default float: float64 inside the ``x64`` fixture, float32 otherwise."""
        dtype = jnp.result_type(float)
        return jnp.asarray(self.mu, dtype), jnp.asarray(self.cov, dtype)

    def normalized_precision(self) -> np.ndarray:
        """S^{-1} / (tr(S^{-1}) / d): the trace-normalised Fisher metric of pi_b."""
        precision = np.linalg.inv(self.cov)
        return precision / (np.trace(precision) / self.dim)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.multivariate_normal(self.mu, self.cov, size=n)


def rotation_2d(angle: float) -> np.ndarray:
    return np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])


@pytest.fixture(scope="session")
def gaussian_2d() -> GaussianCase:
    """The strongly anisotropic 2-D Gaussian of ``fidec fisher-check``: std 0.25 and 0.05, rotated 0.5 rad."""
    rotation = rotation_2d(0.5)
    cov = rotation @ np.diag([0.25**2, 0.05**2]) @ rotation.T
    return GaussianCase(mu=np.array([0.2, -0.1]), cov=cov)


@pytest.fixture(scope="session")
def gaussian_3d() -> GaussianCase:
    """A 3-D Gaussian with a random orientation and variances 0.1, 0.4 and 1.0."""
    rng = np.random.default_rng(3)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    cov = q @ np.diag([0.1, 0.4, 1.0]) @ q.T
    return GaussianCase(mu=np.array([0.3, -0.5, 0.1]), cov=0.5 * (cov + cov.T))


@pytest.fixture
def x64() -> Iterator[None]:
    """float64 for the duration of one test only (never leaks to other tests)."""
    with jax.enable_x64(True):
        yield


@pytest.fixture(scope="module")
def quick_compiles() -> Iterator[None]:
    """Most XLA optimisations off for a module (``pytestmark = pytest.mark.usefixtures("quick_compiles")``):
    halves compile time where compiling tiny networks dominates the tests."""
    previous = jax.config.read("jax_disable_most_optimizations")
    jax.config.update("jax_disable_most_optimizations", True)
    yield
    jax.config.update("jax_disable_most_optimizations", previous)
