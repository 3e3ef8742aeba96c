"""Tests of the Fisher metric and penalties (docs/method.md sections 3-4) against closed-form answers."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fidec import fisher, flows
from fidec.fisher import FisherConfig
from fidec.networks import VectorField


def random_spd(rng: np.random.Generator, d: int, ridge: float = 0.1) -> np.ndarray:
    a = rng.normal(size=(d, d))
    return a @ a.T + ridge * np.eye(d)


def trace_normalized(matrix: np.ndarray) -> np.ndarray:
    return matrix / (np.trace(matrix) / matrix.shape[-1])


def exact_base_actions(gaussian, n: int, seed: int = 0) -> jax.Array:
    """(1, n, d) exact samples of pi_b = N(mu, S): one state with n base actions."""
    return jnp.asarray(gaussian.sample(np.random.default_rng(seed), n)[None], jnp.float32)


# ---------------------------------------------------------------------------------------------
# fisher_metric on the exact Gaussian flow
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("t_eps", [0.5, 0.9, 0.98])
@pytest.mark.parametrize("case", ["gaussian_2d", "gaussian_3d"])
def test_fisher_metric_of_exact_flow_approaches_normalized_marginal_precision(request, case, t_eps):
    """E[g g^T] = Sigma_t^{-1}; from 20k samples the normalised entries are within ~0.016 (measured)."""
    gaussian = request.getfixturevalue(case)
    mu, cov = gaussian.arrays()
    velocity = flows.gaussian_velocity(mu, cov)
    config = FisherConfig(t_eps=t_eps)
    metric = fisher.fisher_metric(
        velocity, exact_base_actions(gaussian, 20_000), jax.random.PRNGKey(1), config
    )
    expected = trace_normalized(np.asarray(flows.gaussian_fisher(mu, cov, t_eps)))
    assert metric.shape == (1, gaussian.dim, gaussian.dim)
    np.testing.assert_allclose(metric[0], expected, rtol=0, atol=0.05)


def test_fisher_metric_near_one_approaches_the_behaviour_precision(gaussian_2d):
    """At t_eps = 0.98 the normalised Sigma_t^{-1} is within 0.01 of the normalised S^{-1}."""
    velocity = flows.gaussian_velocity(*gaussian_2d.arrays())
    metric = fisher.fisher_metric(velocity, exact_base_actions(gaussian_2d, 20_000), jax.random.PRNGKey(2))
    np.testing.assert_allclose(metric[0], gaussian_2d.normalized_precision(), atol=0.05)


def test_velocity_estimator_gives_a_flatter_metric_on_the_anisotropic_gaussian(gaussian_2d):
    """The official v / (1 - t) estimate is dominated by x / (1 - t) (the actions' second moment, mean
    included): at t_eps = 0.98 on the exact flow its condition number is ~3.8 against ~22 for the score."""
    velocity = flows.gaussian_velocity(*gaussian_2d.arrays())
    actions = exact_base_actions(gaussian_2d, 20_000)
    key = jax.random.PRNGKey(3)
    tweedie = fisher.fisher_metric(velocity, actions, key, FisherConfig(estimator="tweedie"))[0]
    official = fisher.fisher_metric(velocity, actions, key, FisherConfig(estimator="velocity"))[0]
    assert float(jnp.max(jnp.abs(official - tweedie))) > 0.2
    assert float(fisher.condition_number(official)) < 0.5 * float(fisher.condition_number(tweedie))


def test_fisher_metric_is_per_state_and_deterministic_given_the_key(gaussian_2d, gaussian_3d):
    velocity = flows.gaussian_velocity(*gaussian_2d.arrays())
    rng = np.random.default_rng(4)
    actions = jnp.asarray(np.stack([gaussian_2d.sample(rng, 4), rng.normal(size=(4, 2))]), jnp.float32)
    key = jax.random.PRNGKey(5)
    metric = fisher.fisher_metric(velocity, actions, key)
    assert metric.shape == (2, 2, 2)
    assert not np.allclose(metric[0], metric[1])
    np.testing.assert_array_equal(metric, fisher.fisher_metric(velocity, actions, key))
    assert not np.allclose(metric, fisher.fisher_metric(velocity, actions, jax.random.PRNGKey(6)))
    # Each state's metric only depends on its own base actions.
    np.testing.assert_allclose(
        fisher.fisher_metric(velocity, actions.at[1].set(0.0), key)[0], metric[0], rtol=1e-6
    )


def test_fisher_metric_with_a_time_range(gaussian_2d):
    """t ~ U[0.85, 0.90] per sample (the official grid setting) lies between the fixed-time metrics."""
    mu, cov = gaussian_2d.arrays()
    velocity = flows.gaussian_velocity(mu, cov)
    actions = exact_base_actions(gaussian_2d, 20_000)
    metric = fisher.fisher_metric(
        velocity, actions, jax.random.PRNGKey(7), FisherConfig(t_eps=0.85, t_eps_max=0.9)
    )
    low = trace_normalized(np.asarray(flows.gaussian_fisher(mu, cov, 0.85)))
    high = trace_normalized(np.asarray(flows.gaussian_fisher(mu, cov, 0.90)))
    off_diagonal = float(metric[0, 0, 1])
    assert high[0, 1] - 0.03 < off_diagonal < low[0, 1] + 0.03  # the off-diagonal grows in size with t
    assert abs(high[0, 1] - low[0, 1]) > 0.1  # so the bracket is informative


def test_jit_fisher_metric_equals_eager(gaussian_2d):
    velocity = flows.gaussian_velocity(*gaussian_2d.arrays())
    actions = exact_base_actions(gaussian_2d, 12).reshape(3, 4, 2)
    key = jax.random.PRNGKey(8)
    jitted = jax.jit(lambda a, k: fisher.fisher_metric(velocity, a, k))(actions, key)
    np.testing.assert_allclose(jitted, fisher.fisher_metric(velocity, actions, key), rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# fisher_from_scores
# ---------------------------------------------------------------------------------------------


def test_fisher_from_scores_is_the_damped_mean_outer_product():
    rng = np.random.default_rng(9)
    scores = rng.normal(size=(3, 6, 4))
    metric = np.asarray(fisher.fisher_from_scores(jnp.asarray(scores), damping=0.1, normalize=False))
    expected = np.einsum("bmi,bmj->bij", scores, scores) / 6 + 0.1 * np.eye(4)
    np.testing.assert_allclose(metric, expected, rtol=1e-5)


def test_fisher_from_scores_is_symmetric_with_trace_d():
    scores = jnp.asarray(np.random.default_rng(10).normal(size=(5, 8, 3)) * 7.0)
    metric = fisher.fisher_from_scores(scores)
    np.testing.assert_array_equal(metric, jnp.swapaxes(metric, -1, -2))
    # tr(F_n) = d * m / (m + eps) with m the mean eigenvalue: d up to norm_eps.
    np.testing.assert_allclose(jnp.trace(metric, axis1=-2, axis2=-1), 3.0, rtol=1e-5)
    assert np.all(np.linalg.eigvalsh(np.asarray(metric)) > 0)


def test_trace_normalization_floors_the_mean_eigenvalue_at_norm_eps():
    """F_n = F / max(tr F / d, eps), the official ``fisher_trace_eps``: eps only matters below it."""
    scores = jnp.asarray([[[1.0, 0.0], [0.0, 1.0]]])  # mean outer product = I / 2, mean eigenvalue 0.5
    np.testing.assert_allclose(fisher.fisher_from_scores(scores, damping=0.0, norm_eps=0.25)[0], np.eye(2))
    np.testing.assert_allclose(
        fisher.fisher_from_scores(scores, damping=0.0, norm_eps=2.0)[0], 0.25 * np.eye(2)
    )


@pytest.mark.parametrize(
    "scores",
    [np.array([[[2.0, -1.0, 0.5]]]), np.ones((1, 4, 3)), np.zeros((1, 4, 3))],
    ids=["one-sample", "equal-scores", "zero-scores"],
)
def test_damping_makes_rank_deficient_metrics_positive_definite(scores):
    damped = np.asarray(fisher.fisher_from_scores(jnp.asarray(scores), damping=1e-3))
    assert np.all(np.isfinite(damped))
    assert np.linalg.eigvalsh(damped).min() > 0
    undamped = np.asarray(fisher.fisher_from_scores(jnp.asarray(scores), damping=0.0))
    assert np.all(np.isfinite(undamped))  # norm_eps keeps even an all-zero metric finite
    assert abs(np.linalg.eigvalsh(undamped).min()) < 1e-6  # singular without damping


def test_fisher_from_scores_has_no_gradient():
    scores = jnp.asarray(np.random.default_rng(11).normal(size=(2, 4, 3)))
    grad = jax.grad(lambda g: jnp.sum(fisher.fisher_from_scores(g) ** 2))(scores)
    np.testing.assert_array_equal(grad, 0.0)


def test_condition_number_of_a_diagonal_metric():
    metric = jnp.stack([jnp.diag(jnp.array([1.0, 4.0, 10.0])), jnp.diag(jnp.array([2.0, 2.0, 3.0]))])
    np.testing.assert_allclose(fisher.condition_number(metric), [10.0, 1.5], rtol=1e-6)


# ---------------------------------------------------------------------------------------------
# Penalties
# ---------------------------------------------------------------------------------------------


def test_identity_metric_penalty_is_the_isotropic_penalty():
    delta = jnp.asarray(np.random.default_rng(12).normal(size=(6, 5)))
    expected = jnp.sum(delta**2, axis=-1) / 5
    identity = jnp.broadcast_to(jnp.eye(5), (6, 5, 5))
    np.testing.assert_allclose(fisher.quadratic_penalty(delta, identity), expected, rtol=1e-6)
    np.testing.assert_allclose(fisher.quadratic_penalty(delta), expected, rtol=1e-6)
    np.testing.assert_allclose(fisher.isotropic_penalty(delta), expected, rtol=1e-6)


def test_quadratic_penalty_is_delta_f_delta_over_d():
    rng = np.random.default_rng(13)
    delta = rng.normal(size=(4, 3))
    metric = np.stack([random_spd(rng, 3) for _ in range(4)])
    expected = np.einsum("bi,bij,bj->b", delta, metric, delta) / 3
    np.testing.assert_allclose(
        fisher.quadratic_penalty(jnp.asarray(delta), jnp.asarray(metric)), expected, rtol=1e-5
    )
    # An anisotropic metric weighs directions differently: the penalty differs from the isotropic one.
    assert not np.allclose(expected, np.sum(delta**2, -1) / 3, rtol=0.05)


def test_penalty_gradient_does_not_reach_the_flow_or_the_base_actions():
    """With F = fisher_metric(v_theta, a_hat) held fixed: d/dtheta = 0, d/da_hat = 0, d/ddelta = 2 F delta / d."""
    d, batch, num_samples = 2, 3, 4
    module = VectorField((16, 16), d)
    obs = jnp.zeros((batch, 1, 5))
    params = module.init(
        jax.random.PRNGKey(0), obs, jnp.zeros((batch, num_samples, d)), jnp.zeros((batch, num_samples, 1))
    )
    base = jax.random.normal(jax.random.PRNGKey(1), (batch, num_samples, d))
    delta = jax.random.normal(jax.random.PRNGKey(2), (batch, d))
    key = jax.random.PRNGKey(3)

    def penalty(p, a_hat, dlt):
        velocity = lambda x, t: module.apply(p, obs, x, t)
        return jnp.sum(fisher.quadratic_penalty(dlt, fisher.fisher_metric(velocity, a_hat, key)))

    grad_params, grad_base, grad_delta = jax.grad(penalty, argnums=(0, 1, 2))(params, base, delta)
    for leaf in jax.tree_util.tree_leaves(grad_params):
        np.testing.assert_array_equal(leaf, 0.0)
    np.testing.assert_array_equal(grad_base, 0.0)
    metric = fisher.fisher_metric(lambda x, t: module.apply(params, obs, x, t), base, key)
    np.testing.assert_allclose(grad_delta, 2.0 * jnp.einsum("bij,bj->bi", metric, delta) / d, rtol=1e-5)
    assert float(jnp.abs(grad_delta).max()) > 0

    # Sanity: without the stop-gradient the scores do depend on theta and on a_hat.
    def raw_scores(p, a_hat):
        velocity = lambda x, t: module.apply(p, obs, x, t)
        return jnp.sum(
            flows.score_at(velocity, a_hat, jnp.ones_like(a_hat), jnp.full(a_hat.shape[:-1] + (1,), 0.9))
        )

    raw_params, raw_base = jax.grad(raw_scores, argnums=(0, 1))(params, base)
    assert max(float(jnp.abs(leaf).max()) for leaf in jax.tree_util.tree_leaves(raw_params)) > 0
    assert float(jnp.abs(raw_base).max()) > 0


# ---------------------------------------------------------------------------------------------
# Jacobian term of the second-order KL
# ---------------------------------------------------------------------------------------------


def test_jacobian_trace_square_of_an_affine_displacement(x64):
    rng = np.random.default_rng(14)
    matrix, offset = jnp.asarray(rng.normal(size=(3, 3))), jnp.asarray(rng.normal(size=3))
    delta_fn = lambda a: matrix @ a + offset
    actions = jnp.asarray(rng.normal(size=(5, 3)))
    expected = float(jnp.trace(matrix @ matrix))
    np.testing.assert_allclose(fisher.jacobian_trace_square(delta_fn, actions), expected, rtol=1e-12)

    num_probes = 4000
    estimate = np.asarray(fisher.jacobian_trace_square(delta_fn, actions, jax.random.PRNGKey(0), num_probes))
    square = np.asarray(matrix @ matrix)
    sym = square + square.T
    std = np.sqrt(np.sum(np.triu(sym, k=1) ** 2) / num_probes)  # Var z^T M z = sum_{i<j} (M_ij + M_ji)^2
    np.testing.assert_allclose(estimate, expected, atol=4 * std)
    assert np.std(estimate) > 0  # each sample drew its own probes


def test_jacobian_trace_square_matches_finite_differences(x64):
    rng = np.random.default_rng(15)
    weights = jnp.asarray(rng.normal(size=(3, 3)))

    def delta_fn(a):
        return jnp.tanh(weights @ a) + 0.3 * a**2

    actions = rng.normal(size=(4, 3))
    h = 1e-5
    expected = []
    for a in actions:
        jac = np.stack(
            [
                (np.asarray(delta_fn(jnp.asarray(a + h * e))) - np.asarray(delta_fn(jnp.asarray(a - h * e))))
                / (2 * h)
                for e in np.eye(3)
            ],
            axis=1,
        )
        expected.append(np.trace(jac @ jac))
    np.testing.assert_allclose(
        fisher.jacobian_trace_square(delta_fn, jnp.asarray(actions)), expected, rtol=1e-7
    )


def test_jacobian_term_closes_the_gap_between_true_kl_and_the_quadratic(x64, gaussian_2d):
    """docs/method.md section 4: delta(a) = c (A a + b) on N(mu, S); true KL - FD's quadratic -> c^2 tr(A^2) / 2."""
    mu, cov = gaussian_2d.mu, gaussian_2d.cov
    matrix, offset = np.array([[0.3, -0.5], [0.8, 0.1]]), np.array([0.2, -0.4])
    precision = np.linalg.inv(cov)
    c = 1e-3
    jac = np.eye(2) + c * matrix
    mean_t, cov_t = jac @ mu + c * offset, jac @ cov @ jac.T
    diff = mean_t - mu
    true_kl = 0.5 * (
        np.trace(precision @ cov_t)
        - 2
        + diff @ precision @ diff
        + np.log(np.linalg.det(cov) / np.linalg.det(cov_t))
    )
    # E[(A a + b)^T P (A a + b)] for a ~ N(mu, S).
    m = matrix @ mu + offset
    fd_quadratic = 0.5 * c**2 * (m @ precision @ m + np.trace(matrix.T @ precision @ matrix @ cov))
    jac_term = fisher.jacobian_trace_square(
        lambda a: jnp.asarray(matrix) @ a + jnp.asarray(offset), jnp.asarray(mu[None])
    )
    assert (true_kl - fd_quadratic) / c**2 == pytest.approx(0.5 * float(jac_term[0]), rel=1e-2)


# ---------------------------------------------------------------------------------------------
# Perturbed times and configuration
# ---------------------------------------------------------------------------------------------


def test_perturbed_times_fixed():
    times = fisher.perturbed_times(jax.random.PRNGKey(0), (3, 4), FisherConfig(t_eps=0.95))
    assert times.shape == (3, 4, 1)
    np.testing.assert_array_equal(times, np.float32(0.95))


def test_perturbed_times_uniform_range():
    config = FisherConfig(t_eps=0.85, t_eps_max=0.9)
    times = np.asarray(fisher.perturbed_times(jax.random.PRNGKey(0), (64, 8), config))
    assert times.shape == (64, 8, 1)
    assert times.min() >= 0.85 and times.max() <= 0.9
    assert times.std() > 0.01  # really drawn, not fixed
    assert times.mean() == pytest.approx(0.875, abs=0.003)


def test_fisher_config_defaults():
    config = FisherConfig()
    assert (config.estimator, config.t_eps, config.num_samples, config.damping) == ("tweedie", 0.98, 4, 1e-3)
    assert config.normalize and config.t_eps_max is None and config.source == "flow"


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"t_eps": 0.0}, "t_eps"),
        ({"t_eps": 1.0}, "t_eps"),
        ({"t_eps": -0.5}, "t_eps"),
        ({"t_eps": 1.5}, "t_eps"),
        ({"t_eps": 0.9, "t_eps_max": 0.85}, "t_eps_max"),
        ({"t_eps": 0.9, "t_eps_max": 1.0}, "t_eps_max"),
        ({"estimator": "stein"}, "estimator"),
        ({"num_samples": 0}, "num_samples"),
        ({"damping": -1e-3}, "damping"),
        ({"source": "replay"}, "source"),
    ],
)
def test_fisher_config_rejects_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        FisherConfig(**kwargs)


def test_condition_number_of_a_rank_deficient_damped_metric_is_finite_positive_and_capped():
    """One score sample in d = 5 with tiny damping: lambda_min is below float32 resolution."""
    g = jnp.array([[30.0, -12.0, 7.0, 0.5, 20.0]])
    metric = fisher.fisher_from_scores(g[None], 1e-3, True, 1e-6)[0]
    kappa = float(fisher.condition_number(metric))
    cap = 1.0 / (5 * float(jnp.finfo(jnp.float32).eps))
    assert np.isfinite(kappa) and kappa > 0
    assert kappa <= cap * (1 + 1e-5)
    # A well-conditioned metric is untouched by the floor.
    np.testing.assert_allclose(fisher.condition_number(jnp.diag(jnp.array([1.0, 4.0]))), 4.0, rtol=1e-6)
