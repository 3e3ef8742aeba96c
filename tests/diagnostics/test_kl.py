"""True KL of a transport map a -> a + c delta(a) against FD's quadratic and the second-order expansion.

Known answers: the closed-form KL of a Gaussian pushed through an affine map, the translation case where
FD's quadratic is the exact second-order term, and the affine case where it misses exactly
1/2 c^2 tr(A^2) (docs/method.md section 4).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fidec import fisher
from fidec.config import ConfigError
from fidec.diagnostics import behaviours, kl
from fidec.flows import gaussian_fisher, gaussian_velocity

GAUSSIAN = behaviours.elongated_gaussian()
MEAN, COV = GAUSSIAN.means[0], GAUSSIAN.covariances[0]
A = np.array([[0.6, -1.1], [0.4, -0.2]])  # not symmetric: tr(A^2) = 0.36 - 0.88 + 0.04 < ||A||_F^2
B = np.array([0.3, -0.5])
# Stretch along the broad axis of S with zero mean displacement: the Jacobian term is half the KL.
BROAD = np.linalg.eigh(COV)[1][:, -1]
A_STRETCH, B_STRETCH = np.outer(BROAD, BROAD), -np.outer(BROAD, BROAD) @ MEAN


def _expected_quadratic(matrix, offset):
    """E[(A a + b)^T S^-1 (A a + b)] under N(mu, S), in closed form."""
    prec = np.linalg.inv(COV)
    m = matrix @ MEAN + offset
    return float(np.trace(matrix.T @ prec @ matrix @ COV) + m @ prec @ m)


def test_gaussian_kl_closed_form_known_values():
    assert kl.gaussian_kl(np.array([1.5]), np.eye(1), np.zeros(1), np.eye(1)) == pytest.approx(1.125)
    # KL(N(0, 4) || N(0, 1)) = 1/2 (4 - 1 - log 4)
    assert kl.gaussian_kl(np.zeros(1), 4 * np.eye(1), np.zeros(1), np.eye(1)) == pytest.approx(
        0.5 * (3 - np.log(4))
    )
    # The affine push-forward with c = 0 is the identity.
    assert kl.gaussian_affine_kl(MEAN, COV, A, B, [0.0])[0] == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("scale", [0.05, 0.3, 1.0])
def test_true_kl_matches_the_closed_form_for_a_gaussian_through_an_affine_map(scale):
    delta = behaviours.affine_field(A, B)
    actions = GAUSSIAN.sample(jax.random.PRNGKey(0), 40_000).astype(jnp.float32)
    terms = np.asarray(kl.true_kl_terms(GAUSSIAN.log_density, delta, actions, scale), np.float64)
    estimate, stderr = terms.mean(), terms.std() / np.sqrt(len(terms))
    closed = kl.gaussian_affine_kl(MEAN, COV, A, B, [scale])[0]
    assert closed > 0
    assert abs(estimate - closed) < 4 * stderr + 2e-3 * closed, (estimate, closed, stderr)


def test_control_variate_removes_the_first_order_noise():
    delta = behaviours.affine_field(A, B)
    actions = GAUSSIAN.sample(jax.random.PRNGKey(1), 4096)
    plain = np.asarray(kl.true_kl_terms(GAUSSIAN.log_density, delta, actions, 0.01, control_variate=False))
    cv = np.asarray(kl.true_kl_terms(GAUSSIAN.log_density, delta, actions, 0.01, control_variate=True))
    assert abs(plain.mean() - cv.mean()) < 4 * plain.std() / np.sqrt(len(plain))  # same mean
    assert cv.std() < 0.05 * plain.std()  # first-order noise gone


@pytest.mark.parametrize("behaviour", ["mixture", "band"])
def test_translation_quadratic_ratio_tends_to_one_as_c_goes_to_zero(behaviour):
    model = behaviours.make_behaviour(behaviour)
    delta = behaviours.make_field("translation", model, jax.random.PRNGKey(3))
    actions = model.sample(jax.random.PRNGKey(4), 20_000)
    # The band's Fisher is known exactly; its sample estimate carries heavy-tailed Monte-Carlo error.
    fisher = jnp.asarray(model.fisher(), jnp.float32) if behaviour == "band" else None
    scan = kl.kl_scan(model.log_density, delta, actions, np.logspace(-3, 0.5, 8), fisher=fisher)
    ratio = scan.quadratic_ratio
    assert abs(ratio[0] - 1.0) < 0.02 and abs(ratio[1] - 1.0) < 0.03, ratio
    # The deviation from 1 grows with c (a non-Gaussian density has a third-order remainder).
    assert abs(ratio[-1] - 1.0) > 5 * abs(ratio[0] - 1.0)
    assert np.allclose(scan.jacobian_term, 0.0)
    # E[-Hess log p] = E[score score^T]: the curvature half equals FD's quadratic up to Monte Carlo.
    np.testing.assert_allclose(scan.curvature_term, scan.quadratic_kl, rtol=0.03)
    assert scan.valid_scale("quadratic") is not None


def test_band_fisher_is_the_mean_outer_product_of_its_scores():
    band = behaviours.CurvedBand()
    actions = band.sample(jax.random.PRNGKey(11), 200_000)
    estimate = np.asarray(kl.exact_fisher(band.log_density, actions))
    np.testing.assert_allclose(estimate, band.fisher(), rtol=0.03, atol=0.03 * band.fisher()[0, 0])


def test_translation_on_a_gaussian_is_exactly_quadratic():
    delta = behaviours.translation_field(jnp.asarray(B))
    actions = GAUSSIAN.sample(jax.random.PRNGKey(5), 2048)
    scales = np.array([0.01, 0.1, 1.0, 3.0])
    scan = kl.kl_scan(GAUSSIAN.log_density, delta, actions, scales, fisher=jnp.linalg.inv(COV))
    closed = kl.gaussian_affine_kl(MEAN, COV, np.zeros((2, 2)), B, scales)
    np.testing.assert_allclose(closed, 0.5 * scales**2 * (B @ np.linalg.inv(COV) @ B), rtol=1e-10)
    np.testing.assert_allclose(scan.true_kl, closed, rtol=1e-4)
    np.testing.assert_allclose(scan.quadratic_kl, closed, rtol=1e-5)
    assert scan.valid_scale("quadratic") == pytest.approx(3.0)


def test_a_rotation_like_field_has_a_negative_jacobian_term():
    delta = behaviours.affine_field(A, B)  # tr(A^2) < 0: the true KL is below FD's quadratic at small c
    actions = GAUSSIAN.sample(jax.random.PRNGKey(12), 8192)
    scan = kl.kl_scan(GAUSSIAN.log_density, delta, actions, [1e-3, 1e-2], fisher=jnp.linalg.inv(COV))
    np.testing.assert_allclose(scan.jacobian_term, 0.5 * np.trace(A @ A) * scan.scales**2, rtol=1e-5)
    assert np.all(scan.jacobian_term < 0) and np.all(scan.quadratic_ratio > 1.0)


def test_affine_field_second_order_matches_and_fd_misses_exactly_the_jacobian_term():
    A, B = A_STRETCH, B_STRETCH
    delta = behaviours.affine_field(A, B)
    actions = GAUSSIAN.sample(jax.random.PRNGKey(6), 40_000).astype(jnp.float32)
    scales = np.array([1e-2, 3e-2, 1e-1])  # KL >= 1e-4 nats: above fp32 round-off of log p ~ 1
    scan = kl.kl_scan(GAUSSIAN.log_density, delta, actions, scales, fisher=jnp.linalg.inv(COV))
    closed = kl.gaussian_affine_kl(MEAN, COV, A, B, scales)
    half_trace_a2 = 0.5 * np.trace(A @ A)
    # Closed form: (KL - FD's quadratic) / c^2 -> 1/2 tr(A^2) as c -> 0.
    gap = (closed - 0.5 * scales**2 * _expected_quadratic(A, B)) / scales**2
    assert half_trace_a2 == pytest.approx(0.5)
    np.testing.assert_allclose(gap, half_trace_a2, rtol=0.15)
    np.testing.assert_allclose(gap[0], half_trace_a2, rtol=0.02)
    # The estimator's Jacobian term is exactly 1/2 c^2 tr(A^2) (J = A everywhere).
    np.testing.assert_allclose(scan.jacobian_term, half_trace_a2 * scales**2, rtol=1e-5)
    # Full second order matches the closed form at small c; FD's quadratic does not.
    np.testing.assert_allclose(scan.second_order_kl[0] / closed[0], 1.0, atol=0.03)
    np.testing.assert_allclose(scan.true_kl, closed, rtol=0.02)
    assert abs(scan.second_order_ratio[0] - 1.0) < 0.03
    expected_fd_ratio = _expected_quadratic(A, B) / (_expected_quadratic(A, B) + 2 * half_trace_a2)
    assert expected_fd_ratio == pytest.approx(0.5)  # E[d^T S^-1 d] = tr(A S A^T S^-1) = 1 = tr(A^2)
    np.testing.assert_allclose(scan.quadratic_ratio[0], expected_fd_ratio, rtol=0.03)
    assert scan.valid_scale("quadratic") is None
    assert scan.valid_scale("second_order") is not None


def test_hutchinson_jacobian_terms_are_unbiased():
    """The diagnostics read the Jacobian term through fidec.fisher.jacobian_square, FD's own estimator."""
    field = behaviours.mlp_field(jax.random.PRNGKey(7), 2)
    actions = GAUSSIAN.sample(jax.random.PRNGKey(8), 64)
    exact_tr = fisher.jacobian_square(field, actions, form="trace")
    exact_sym = fisher.jacobian_square(field, actions, form="sym")
    jac = jax.vmap(jax.jacfwd(field))(actions)
    np.testing.assert_allclose(exact_tr, jnp.einsum("nij,nji->n", jac, jac), rtol=1e-5)
    np.testing.assert_allclose(2 * kl.jacobian_term(field, actions), exact_tr.mean(), rtol=1e-6)
    key = jax.random.PRNGKey(9)
    est_tr = fisher.jacobian_square(field, actions, key, num_probes=500, form="trace")
    est_sym = fisher.jacobian_square(field, actions, key, num_probes=500, form="sym")
    assert float(jnp.mean(exact_sym - exact_tr)) >= 0  # ||sym J||^2 >= tr(J^2)
    np.testing.assert_allclose(est_tr.mean(), exact_tr.mean(), rtol=0.1, atol=1e-3)
    np.testing.assert_allclose(est_sym.mean(), exact_sym.mean(), rtol=0.1, atol=1e-3)
    np.testing.assert_allclose(2 * kl.jacobian_term(field, actions, key, 500), est_tr.mean(), rtol=1e-6)


def test_quadratic_terms_are_fd_quadratic_penalty_in_nats():
    """1/2 E[delta^T M delta] is FD's quadratic_penalty (delta^T M delta / d) times d / 2."""
    deltas = jax.random.normal(jax.random.PRNGKey(14), (16, 3))
    metric = jnp.asarray([[2.0, 0.3, 0.0], [0.3, 1.0, -0.2], [0.0, -0.2, 0.5]])
    expected = 0.5 * np.mean(np.einsum("ni,ij,nj->n", deltas, metric, deltas))
    assert float(kl.half_quadratic(deltas, metric)) == pytest.approx(expected, rel=1e-6)
    per_sample = jnp.broadcast_to(metric, (16, 3, 3))
    np.testing.assert_allclose(1.5 * fisher.quadratic_penalty(deltas, per_sample).mean(), expected, rtol=1e-6)


def test_valid_scale_is_the_last_scale_of_the_first_run_inside_the_band():
    def scan_with(ratio):
        n = len(ratio)
        ones = np.ones(n)
        return kl.KLScan(
            scales=np.arange(1.0, n + 1), true_kl=ones, true_kl_stderr=0 * ones, quadratic_kl=np.asarray(ratio),
            curvature_term=ones, jacobian_term=0 * ones, fisher_norm=ones, displacement_rms=ones,
        )  # fmt: skip

    assert scan_with([1.0, 1.05, 1.2, 1.0]).valid_scale() == 2.0
    assert scan_with([1.0, 0.95, 0.91, 1.0]).valid_scale() == 4.0
    assert scan_with([0.5, 1.0, 1.0]).valid_scale() is None
    with pytest.raises(ConfigError, match="positive and increasing"):
        kl.kl_scan(
            GAUSSIAN.log_density, behaviours.translation_field(jnp.asarray(B)), jnp.zeros((4, 2)), [1.0, 0.5]
        )


@pytest.mark.slow
def test_per_state_scan_through_the_ode_log_density_of_an_exact_flow():
    """The optimal velocity field of N(mu, S): the ODE log-density is exact, so a translation is quadratic."""
    velocity = gaussian_velocity(jnp.asarray(MEAN, jnp.float32), jnp.asarray(COV, jnp.float32))
    states = jnp.asarray([[0.0], [1.0]])
    config = kl.KLValidityConfig(scales=(0.01, 0.1, 1.0), num_actions=128, sampler_steps=50, ode_steps=16)

    # State 0: a translation (no Jacobian term); state 1: an affine field (Jacobian term A).
    def delta_for(s):
        a_mat, offset = (
            s[0] * jnp.asarray(A_STRETCH),
            (1 - s[0]) * jnp.asarray(B) + s[0] * jnp.asarray(B_STRETCH),
        )
        return lambda a: a_mat.astype(a.dtype) @ a + offset.astype(a.dtype)

    reports = kl.kl_validity_for_states(
        lambda s: velocity, delta_for, states, 2, jax.random.PRNGKey(10), config
    )
    translation, affine = (r.summary() for r in reports)
    assert translation["jacobian_term"] == pytest.approx(0.0, abs=1e-6)
    assert translation["quadratic_ratio"] == pytest.approx(1.0, abs=0.03)
    assert reports[0].inside_valid_region
    assert translation["true_kl"] == pytest.approx(0.5 * B @ np.linalg.inv(COV) @ B, rel=0.03)
    assert affine["jacobian_term"] == pytest.approx(0.5, rel=1e-4)  # 1/2 tr(A^2), A = v v^T
    assert reports[1].scan.at(0.01)["second_order_ratio"] == pytest.approx(1.0, abs=0.05)
    assert reports[1].scan.at(0.01)["quadratic_ratio"] == pytest.approx(0.5, abs=0.05)
    assert not reports[1].inside_valid_region
    # FD's own estimate reads the score at t_eps = 0.98: it estimates the Fisher of p_t, Sigma_t^-1
    # (smaller than S^-1 along the narrow axis), from 128 samples.
    fisher_t = np.asarray(gaussian_fisher(jnp.asarray(MEAN), jnp.asarray(COV), config.fisher.t_eps))
    np.testing.assert_allclose(reports[0].scan.quadratic_kl_estimated[-1], 0.5 * B @ fisher_t @ B, rtol=0.25)


def test_fold_fraction_flags_a_map_whose_jacobian_determinant_changes_sign():
    actions = GAUSSIAN.sample(jax.random.PRNGKey(13), 4096)
    reflection = jax.vmap(jax.jacfwd(behaviours.affine_field(np.diag([-3.0, 0.0]), np.zeros(2))))(actions)
    assert float(kl.fold_fraction(reflection)) == 0.0  # det = -2 everywhere: a bijection
    cubic = lambda a: jnp.stack([-30.0 * (a[0] - MEAN[0]) ** 3, jnp.zeros_like(a[0])])
    jac = kl.displacement_jacobians(cubic, actions)
    det = 1.0 - 90.0 * (np.asarray(actions[:, 0]) - MEAN[0]) ** 2
    expected = min(np.mean(det <= 0), np.mean(det > 0))
    assert expected > 0.05
    assert float(kl.fold_fraction(jac)) == pytest.approx(expected, abs=1e-3)
    assert float(kl.fold_fraction(jac, 0.001)) == 0.0


def test_state_summary_carries_fd_own_estimate_at_the_applied_scale():
    scan = kl.KLScan(
        scales=np.array([0.5, 1.0]), true_kl=np.array([1.0, 4.0]), true_kl_stderr=np.zeros(2),
        quadratic_kl=np.array([1.0, 4.0]), curvature_term=np.array([1.0, 4.0]), jacobian_term=np.zeros(2),
        fisher_norm=np.ones(2), displacement_rms=np.ones(2), quadratic_kl_estimated=np.array([0.5, 2.0]),
    )  # fmt: skip
    row = kl.StateKLReport(3, scan).summary()
    assert row["quadratic_kl_estimated"] == 2.0 and row["state"] == 3 and row["inside_valid_region"]
    assert np.isnan(
        kl.KLScan(**{**scan.__dict__, "quadratic_kl_estimated": None}).at(1.0)["quadratic_kl_estimated"]
    )
