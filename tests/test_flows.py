"""Closed-form tests of the flow core (docs/method.md sections 1-2) on Gaussian behaviour policies N(mu, S).

For pi_b = N(mu, S) and x0 ~ N(0, I) the noised marginal is p_t = N(t mu, Sigma_t) with
Sigma_t = t^2 S + (1 - t)^2 I, and the optimal velocity field is affine in x, so the score, the
log-density and the Euler push-forward are all known exactly.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fidec import flows

TIMES = (0.1, 0.5, 0.9, 0.98)


def generalized_eigenvalues(cov: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Eigenvalues of reference^{-1/2} cov reference^{-1/2}: all 1 iff cov == reference."""
    chol = np.linalg.cholesky(reference)
    whitened = np.linalg.solve(chol, np.linalg.solve(chol, cov).T)
    return np.linalg.eigvalsh(0.5 * (whitened + whitened.T))


def euler_affine_map(velocity_fn, dim: int, num_steps: int) -> tuple[np.ndarray, np.ndarray]:
    """The Euler sampler on an affine field is an affine map x0 -> A x0 + c; return (A, c) exactly."""
    points = jnp.concatenate([jnp.zeros((1, dim)), jnp.eye(dim)])
    out = np.asarray(flows.euler_sample(velocity_fn, points, num_steps))
    return (out[1:] - out[0]).T, out[0]


def hutchinson_std(matrix: np.ndarray, num_probes: int) -> float:
    """Std of the mean of num_probes Rademacher estimates z^T M z: Var = sum_{i<j} (M_ij + M_ji)^2."""
    sym = matrix + matrix.T
    return float(np.sqrt(np.sum(np.triu(sym, k=1) ** 2) / num_probes))


# ---------------------------------------------------------------------------------------------
# Path and loss
# ---------------------------------------------------------------------------------------------


def test_interpolation_endpoints_and_path_velocity():
    x0 = jax.random.normal(jax.random.PRNGKey(0), (5, 3))
    a = jax.random.normal(jax.random.PRNGKey(1), (5, 3))
    np.testing.assert_allclose(flows.interpolate(x0, a, jnp.zeros((5, 1))), x0, atol=0)
    np.testing.assert_allclose(flows.interpolate(x0, a, jnp.ones((5, 1))), a, atol=0)
    np.testing.assert_allclose(flows.interpolate(x0, a, 0.25), 0.75 * x0 + 0.25 * a, rtol=1e-6)
    # d x_t / dt is the flow-matching target a - x0 at every t.
    _, dxdt = jax.jvp(lambda t: flows.interpolate(x0, a, t), (jnp.full((5, 1), 0.3),), (jnp.ones((5, 1)),))
    np.testing.assert_allclose(dxdt, a - x0, rtol=1e-6)


def test_flow_matching_loss_is_mean_squared_error_against_the_target():
    key_a, key_x, key_t = jax.random.split(jax.random.PRNGKey(0), 3)
    a = jax.random.normal(key_a, (64, 3))
    x0 = jax.random.normal(key_x, (64, 3))
    t = jax.random.uniform(key_t, (64, 1))
    zero_field = lambda x, tt: jnp.zeros_like(x)
    np.testing.assert_allclose(
        flows.flow_matching_loss(zero_field, a, x0, t), jnp.mean((a - x0) ** 2), rtol=1e-6
    )
    # A field that returns the target exactly has zero loss.
    oracle = lambda x, tt: a - x0
    assert float(flows.flow_matching_loss(oracle, a, x0, t)) == 0.0


def test_gaussian_marginal_matches_noised_samples(gaussian_2d):
    mu, cov = gaussian_2d.arrays()
    rng = np.random.default_rng(0)
    a = gaussian_2d.sample(rng, 200_000)
    x0 = rng.normal(size=a.shape)
    for t in (0.3, 0.9):
        x_t = (1 - t) * x0 + t * a
        mean_t, cov_t = flows.gaussian_marginal(mu, cov, jnp.asarray(t))
        np.testing.assert_allclose(x_t.mean(0), mean_t, atol=5e-3)  # MC std of the mean ~ 2e-3
        np.testing.assert_allclose(np.cov(x_t.T), cov_t, atol=5e-3)


@pytest.mark.parametrize(
    "perturbation",
    [
        lambda x, t: jnp.full_like(x, 0.2),
        lambda x, t: 0.3 * x,
        lambda x, t: 0.5 * t * jnp.ones_like(x),
        lambda x, t: 0.2 * jnp.sin(3.0 * x),
    ],
    ids=["constant", "linear", "time", "nonlinear"],
)
def test_gaussian_velocity_minimises_flow_matching_loss(x64, gaussian_2d, perturbation):
    """v* = E[a - x0 | x_t] is the L2 projection: L(v* + p) - L(v*) = E||p(x_t, t)||^2 / d (Pythagoras)."""
    mu, cov = gaussian_2d.arrays()
    velocity = flows.gaussian_velocity(mu, cov)
    rng = np.random.default_rng(1)
    n = 100_000
    a = jnp.asarray(gaussian_2d.sample(rng, n))
    x0 = jnp.asarray(rng.normal(size=(n, 2)))
    t = jnp.asarray(rng.uniform(size=(n, 1)))
    perturbed = lambda x, tt: velocity(x, tt) + perturbation(x, tt)
    base_loss = float(flows.flow_matching_loss(velocity, a, x0, t))
    gap = float(flows.flow_matching_loss(perturbed, a, x0, t)) - base_loss
    x_t = flows.interpolate(x0, a, t)
    expected_gap = float(jnp.mean(perturbation(x_t, t) ** 2))
    assert gap > 0.0
    # The cross term 2 E[(v* - u) . p] / d vanishes in expectation; its MC std here is < 3% of the gap.
    assert gap == pytest.approx(expected_gap, rel=0.1)


# ---------------------------------------------------------------------------------------------
# Score from velocity
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("t", TIMES)
@pytest.mark.parametrize("case", ["gaussian_2d", "gaussian_3d"])
def test_tweedie_score_of_the_exact_field_is_the_gaussian_score(x64, request, case, t):
    gaussian = request.getfixturevalue(case)
    mu, cov = gaussian.arrays()
    velocity = flows.gaussian_velocity(mu, cov)
    x = jax.random.normal(jax.random.PRNGKey(0), (50, gaussian.dim))
    tt = jnp.full((50, 1), t)
    score = flows.score_from_velocity(velocity(x, tt), x, tt, "tweedie")
    expected = flows.gaussian_score(mu, cov, x, jnp.asarray(t))
    # float64; the score grows like 1 / (1 - t), so compare relative to its scale.
    np.testing.assert_allclose(score, expected, rtol=0, atol=1e-10 * float(jnp.max(jnp.abs(expected))))


@pytest.mark.parametrize("t", TIMES)
def test_velocity_estimator_equals_score_plus_v_plus_x_over_one_minus_t(x64, gaussian_3d, t):
    """docs/method.md section 2: v / (1 - t) = score + v + x / (1 - t)."""
    mu, cov = gaussian_3d.arrays()
    velocity = flows.gaussian_velocity(mu, cov)
    x = jax.random.normal(jax.random.PRNGKey(1), (40, 3))
    tt = jnp.full((40, 1), t)
    v = velocity(x, tt)
    official = flows.score_from_velocity(v, x, tt, "velocity")
    score = flows.gaussian_score(mu, cov, x, jnp.asarray(t))
    np.testing.assert_allclose(official, score + v + x / (1 - t), rtol=1e-9, atol=1e-9)
    # ... which is not the score: the two estimators really differ.
    assert float(jnp.max(jnp.abs(official - score))) > 0.1


def test_score_at_reads_the_score_at_the_noised_action(x64, gaussian_2d):
    mu, cov = gaussian_2d.arrays()
    velocity = flows.gaussian_velocity(mu, cov)
    a = jnp.asarray(gaussian_2d.sample(np.random.default_rng(2), 30))
    x0 = jax.random.normal(jax.random.PRNGKey(2), a.shape)
    t = jnp.full((30, 1), 0.95)
    x_t = 0.05 * x0 + 0.95 * a
    np.testing.assert_allclose(
        flows.score_at(velocity, a, x0, t), flows.gaussian_score(mu, cov, x_t, 0.95), rtol=1e-9
    )


def test_score_from_velocity_rejects_unknown_estimator():
    x = jnp.zeros((2, 2))
    with pytest.raises(ValueError, match="tweedie"):
        flows.score_from_velocity(x, x, jnp.full((2, 1), 0.5), "stein")


def test_gaussian_fisher_is_the_inverse_marginal_covariance_and_tends_to_the_precision(x64, gaussian_2d):
    mu, cov = gaussian_2d.arrays()
    np.testing.assert_allclose(
        flows.gaussian_fisher(mu, cov, 1.0), np.linalg.inv(gaussian_2d.cov), rtol=1e-10
    )
    np.testing.assert_allclose(flows.gaussian_fisher(mu, cov, 0.0), np.eye(2), atol=1e-12)
    # E[score score^T] over exact samples of p_t equals Sigma_t^{-1}.
    t = 0.7
    mean_t, cov_t = flows.gaussian_marginal(mu, cov, jnp.asarray(t))
    x = np.random.default_rng(4).multivariate_normal(np.asarray(mean_t), np.asarray(cov_t), size=200_000)
    score = np.asarray(flows.gaussian_score(mu, cov, jnp.asarray(x), jnp.asarray(t)))
    fisher = np.asarray(flows.gaussian_fisher(mu, cov, t))
    np.testing.assert_allclose(score.T @ score / len(x), fisher, rtol=0, atol=0.02 * np.abs(fisher).max())


# ---------------------------------------------------------------------------------------------
# Divergence and log-density
# ---------------------------------------------------------------------------------------------


def test_divergence_exact_of_a_linear_map_is_its_trace(x64):
    rng = np.random.default_rng(5)
    matrix, offset = jnp.asarray(rng.normal(size=(4, 4))), jnp.asarray(rng.normal(size=4))
    div = flows.divergence_exact(lambda x: matrix @ x + offset, jnp.asarray(rng.normal(size=4)))
    assert float(div) == pytest.approx(float(jnp.trace(matrix)), abs=1e-12)


def test_divergence_hutchinson_is_unbiased(x64):
    rng = np.random.default_rng(6)
    matrix = rng.normal(size=(4, 4))
    fn = lambda x: jnp.asarray(matrix) @ x
    x = jnp.asarray(rng.normal(size=4))
    num_probes = 4000
    estimate = float(flows.divergence_hutchinson(fn, x, jax.random.PRNGKey(0), num_probes))
    assert estimate == pytest.approx(np.trace(matrix), abs=4 * hutchinson_std(matrix, num_probes))
    # One probe is a noisy estimate (so the test above is not trivially exact).
    singles = [float(flows.divergence_hutchinson(fn, x, jax.random.PRNGKey(i))) for i in range(5)]
    assert np.std(singles) > 0.1


def true_log_density(gaussian, points: np.ndarray) -> np.ndarray:
    diff = points - gaussian.mu
    precision = np.linalg.inv(gaussian.cov)
    _, logdet = np.linalg.slogdet(gaussian.cov)
    maha = np.einsum("ni,ij,nj->n", diff, precision, diff)
    return -0.5 * (maha + logdet + gaussian.dim * np.log(2 * np.pi))


@pytest.mark.parametrize("num_steps, atol", [(64, 1e-4), (128, 1e-5)])
@pytest.mark.parametrize("case", ["gaussian_2d", "gaussian_3d"])
def test_ode_log_density_of_the_exact_field_is_the_gaussian_log_density(x64, request, case, num_steps, atol):
    """RK4 on the augmented ODE; measured errors (2-D fisher-check Gaussian): 2e-5 at 64 steps, 1e-6 at 128."""
    gaussian = request.getfixturevalue(case)
    mu, cov = gaussian.arrays()
    velocity = flows.gaussian_velocity(mu, cov)
    points = gaussian.sample(np.random.default_rng(7), 4)
    points = np.concatenate([points, gaussian.mu[None] + 0.3])  # one point off the sample
    log_p = jax.vmap(lambda x: flows.log_density(velocity, x, num_steps=num_steps))(jnp.asarray(points))
    np.testing.assert_allclose(log_p, true_log_density(gaussian, points), rtol=0, atol=atol)


def test_log_density_with_hutchinson_trace_is_unbiased(x64, gaussian_3d):
    mu, cov = gaussian_3d.arrays()
    velocity = flows.gaussian_velocity(mu, cov)
    point = jnp.asarray(gaussian_3d.sample(np.random.default_rng(8), 1)[0])
    exact = float(flows.log_density(velocity, point, num_steps=16, exact_trace=True))
    keys = jax.random.split(jax.random.PRNGKey(0), 256)
    estimates = np.asarray(
        jax.vmap(lambda k: flows.log_density(velocity, point, num_steps=16, exact_trace=False, key=k))(keys)
    )
    assert estimates.std() > 1e-3  # really stochastic
    assert estimates.mean() == pytest.approx(exact, abs=4 * estimates.std() / np.sqrt(len(keys)))
    many_probes = flows.log_density(velocity, point, 16, exact_trace=False, key=keys[0], num_probes=256)
    assert float(many_probes) == pytest.approx(exact, abs=8 * estimates.std() / np.sqrt(256))


def test_log_density_with_hutchinson_trace_needs_a_key(gaussian_2d):
    velocity = flows.gaussian_velocity(*gaussian_2d.arrays())
    with pytest.raises(ValueError, match="PRNG key"):
        flows.log_density(velocity, jnp.zeros(2), exact_trace=False)


def test_standard_normal_log_density():
    x = jnp.array([[0.0, 0.0], [1.0, -2.0]])
    expected = [-np.log(2 * np.pi), -0.5 * 5.0 - np.log(2 * np.pi)]
    np.testing.assert_allclose(flows.standard_normal_log_density(x), expected, rtol=1e-6)


# ---------------------------------------------------------------------------------------------
# Euler sampler
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case, num_steps, tol", [("gaussian_3d", 500, 0.02), ("gaussian_2d", 1000, 0.03)])
def test_euler_sampler_with_many_steps_reproduces_the_gaussian(x64, request, case, num_steps, tol):
    gaussian = request.getfixturevalue(case)
    velocity = flows.gaussian_velocity(*gaussian.arrays())
    matrix, offset = euler_affine_map(velocity, gaussian.dim, num_steps)
    # The mean is exact for any K (the Euler recursion keeps E[x_k] = (k / K) mu).
    np.testing.assert_allclose(offset, gaussian.mu, atol=1e-10)
    ratios = generalized_eigenvalues(matrix @ matrix.T, gaussian.cov)
    np.testing.assert_allclose(ratios, 1.0, atol=tol)
    # Euler is first order: doubling K halves the covariance error.
    matrix_2k, _ = euler_affine_map(velocity, gaussian.dim, 2 * num_steps)
    error_2k = np.abs(generalized_eigenvalues(matrix_2k @ matrix_2k.T, gaussian.cov) - 1).max()
    assert np.abs(ratios - 1).max() / error_2k == pytest.approx(2.0, rel=0.15)


def test_euler_samples_match_mean_and_covariance(gaussian_3d):
    velocity = flows.gaussian_velocity(*gaussian_3d.arrays())
    noise = jax.random.normal(jax.random.PRNGKey(0), (40_000, 3))
    samples = np.asarray(flows.euler_sample(velocity, noise, 200))
    # MC std of the mean <= 0.005; covariance entries within ~3 MC std plus the ~1% Euler bias.
    np.testing.assert_allclose(samples.mean(0), gaussian_3d.mu, atol=0.02)
    np.testing.assert_allclose(np.cov(samples.T), gaussian_3d.cov, atol=0.03)


def test_coarse_euler_sampler_shrinks_the_covariance(x64, gaussian_2d):
    """K = 10 on the fisher-check Gaussian: variance ratio 0.64 along the broad axis, 0.16 along the narrow one.

    The shrink is not uniform, so it does not cancel under trace normalisation: a Fisher metric built from
    K = 10 base actions exaggerates the anisotropy (about 4x here).
    """
    velocity = flows.gaussian_velocity(*gaussian_2d.arrays())
    matrix, offset = euler_affine_map(velocity, 2, 10)
    ratios = generalized_eigenvalues(matrix @ matrix.T, gaussian_2d.cov)
    np.testing.assert_allclose(offset, gaussian_2d.mu, atol=1e-10)
    np.testing.assert_allclose(ratios, [0.1585, 0.6436], atol=2e-3)


# ---------------------------------------------------------------------------------------------
# jit / vmap
# ---------------------------------------------------------------------------------------------


def test_jit_euler_sample_equals_eager(gaussian_2d):
    velocity = flows.gaussian_velocity(*gaussian_2d.arrays())
    noise = jax.random.normal(jax.random.PRNGKey(0), (8, 3, 2))  # (B, M, d) batch
    eager = flows.euler_sample(velocity, noise, 10)
    jitted = jax.jit(lambda z: flows.euler_sample(velocity, z, 10))(noise)
    assert eager.shape == (8, 3, 2)
    np.testing.assert_allclose(jitted, eager, rtol=1e-5, atol=1e-6)


def test_vmap_of_score_from_velocity_equals_batched_call():
    key_v, key_x, key_t = jax.random.split(jax.random.PRNGKey(0), 3)
    v = jax.random.normal(key_v, (16, 3))
    x = jax.random.normal(key_x, (16, 3))
    t = jax.random.uniform(key_t, (16, 1), minval=0.1, maxval=0.9)
    for estimator in ("tweedie", "velocity"):
        batched = flows.score_from_velocity(v, x, t, estimator)
        mapped = jax.vmap(lambda vv, xx, tt, e=estimator: flows.score_from_velocity(vv, xx, tt, e))(v, x, t)
        np.testing.assert_allclose(mapped, batched, rtol=1e-6)


def test_jit_log_density_equals_eager(gaussian_2d):
    velocity = flows.gaussian_velocity(*gaussian_2d.arrays())
    point = jnp.array([0.1, -0.05])
    eager = flows.log_density(velocity, point, num_steps=32)
    jitted = jax.jit(lambda x: flows.log_density(velocity, x, num_steps=32))(point)
    np.testing.assert_allclose(jitted, eager, rtol=1e-5)
