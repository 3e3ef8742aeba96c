"""The opt-in cheaper Fisher estimator against the paper's: speed and accuracy of the metric.

``fisher.source = "flow"`` (the paper's, default): M Euler rollouts of the behaviour flow per state,
each noised to t_eps.  ``fisher.source = "dataset"`` (opt-in): the dataset action of each state with
M noise draws: no rollouts for the metric, so the update's rollout shrinks from B (M + 2) to 2 B rows.

Accuracy is measured where the answer is known: a state-conditional Gaussian behaviour
pi_b(.|s) = N(mu_s, S_s) (anisotropic, condition number ``ANISOTROPY``, random orientation per state)
with its exact velocity field, so both estimators see a perfect flow and differ only in their samples.
The target is the trace-normalised Fisher of p_{t_eps}, F_n(s) = norm(Sigma_t^{-1} + lambda I).

Reported per state, for one update (a single draw) and averaged over R updates (what the residual
sees over training): the relative Frobenius error ||F_hat - F_n|| / ||F_n||, and the typical factor
by which the penalty delta^T F_hat delta is off along random directions delta, exp(median |log ratio|).
The flow estimator's average converges to F_n; the dataset estimator keeps one action per state, so
its average stays a rank-one metric along a - mu_s (plus damping and the small noise term).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

from fidec.bench.settings import BenchSettings
from fidec.fisher import FisherConfig, fisher_metric, trace_normalize
from fidec.flows import VelocityFn, euler_sample, gaussian_fisher, gaussian_velocity

ANISOTROPY = 100.0  # largest / smallest variance of the behaviour at each state


def conditional_gaussians(key: jax.Array, states: int, d: int) -> tuple[jax.Array, jax.Array]:
    """Means in [-0.5, 0.5]^d and covariances R diag(sigma^2) R^T with sigma from 0.3 down by sqrt(ANISOTROPY)."""
    mean_key, rot_key = jax.random.split(key)
    means = jax.random.uniform(mean_key, (states, d), jnp.float32, -0.5, 0.5)
    rotations, _ = jnp.linalg.qr(jax.random.normal(rot_key, (states, d, d)))
    stds = 0.3 * jnp.logspace(0.0, -0.5 * jnp.log10(ANISOTROPY), d)
    covs = jnp.einsum("sij,j,skj->sik", rotations, stds**2, rotations)
    return means, covs


def conditional_velocity(means: jax.Array, covs: jax.Array) -> VelocityFn:
    """Exact velocity of N(mu_s, S_s) per state (:func:`fidec.flows.gaussian_velocity` of each state's
    Gaussian), for x (S, M, d) and t (S, M, 1)."""
    per_state = lambda mu, cov, x, t: gaussian_velocity(mu, cov)(x, t)
    return lambda x, t: jax.vmap(per_state)(means, covs, x, jnp.broadcast_to(t, x.shape[:-1] + (1,)))


def target_metric(means: jax.Array, covs: jax.Array, config: FisherConfig) -> jax.Array:
    """F_n = norm(Sigma_t^{-1} + lambda I) at t = t_eps (:func:`fidec.fisher.trace_normalize`): what both
    estimators estimate."""
    fisher = jax.vmap(lambda mu, cov: gaussian_fisher(mu, cov, config.t_eps))(means, covs)
    return trace_normalize(fisher + config.damping * jnp.eye(means.shape[-1]), config.norm_eps)


@jax.jit
def _errors(estimate: jax.Array, target: jax.Array, key: jax.Array) -> tuple[jax.Array, jax.Array]:
    frob = jnp.linalg.norm(estimate - target, axis=(-2, -1)) / jnp.linalg.norm(target, axis=(-2, -1))
    deltas = jax.random.normal(key, (16,) + target.shape[:-1])
    quad = lambda m: jnp.einsum("nsi,sij,nsj->ns", deltas, m, deltas)
    log_ratio = jnp.abs(jnp.log(quad(estimate) / quad(target)))
    return jnp.median(frob), jnp.exp(jnp.median(log_ratio))


def metric_errors(estimate: jax.Array, target: jax.Array, key: jax.Array) -> dict:
    """Median relative Frobenius error, and exp(median |log(delta^T F_hat delta / delta^T F delta)|)
    over 16 random directions delta per state."""
    frob, factor = _errors(estimate, target, key)
    return {"relative_error": float(frob), "penalty_factor": float(factor)}


@partial(jax.jit, static_argnames=("states", "d", "redraws", "flow_steps", "config"))
def estimates(
    key: jax.Array, states: int, d: int, redraws: int, flow_steps: int, config: FisherConfig
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(target F_n (S, d, d), flow-estimator draws (R, S, d, d), dataset-estimator draws (R, S, d, d))."""
    m = config.num_samples
    task_key, data_key, draw_key = jax.random.split(key, 3)
    means, covs = conditional_gaussians(task_key, states, d)
    velocity = conditional_velocity(means, covs)
    chol = jnp.linalg.cholesky(covs)
    dataset_actions = means + jnp.einsum("sij,sj->si", chol, jax.random.normal(data_key, (states, d)))

    def flow_draw(k):
        roll_key, fisher_key = jax.random.split(k)
        samples = euler_sample(velocity, jax.random.normal(roll_key, (states, m, d)), flow_steps)
        return fisher_metric(velocity, samples, fisher_key, config)

    def dataset_draw(k):
        samples = jnp.repeat(dataset_actions[:, None, :], m, axis=1)
        return fisher_metric(velocity, samples, k, config)

    keys = jax.random.split(draw_key, redraws)
    return target_metric(means, covs, config), jax.lax.map(flow_draw, keys), jax.lax.map(dataset_draw, keys)


def estimator_accuracy(settings: BenchSettings, flow_steps: int = 10, seed: int = 0) -> dict:
    """Errors of the flow-sample and dataset-action estimators of F_n, one draw and R-draw averages."""
    config = FisherConfig()
    key, err_key = jax.random.split(jax.random.PRNGKey(seed))
    target, flow, dataset = estimates(
        key, settings.fisher_states, settings.action_dim, settings.fisher_redraws, flow_steps, config
    )
    result: dict[str, object] = {
        "states": settings.fisher_states,
        "action_dim": settings.action_dim,
        "num_samples": config.num_samples,
        "t_eps": config.t_eps,
        "estimator": config.estimator,
        "redraws": settings.fisher_redraws,
        "anisotropy": ANISOTROPY,
    }
    for name, draws in (("flow", flow), ("dataset", dataset)):
        result[name] = {
            "one_draw": metric_errors(draws[0], target, err_key),
            "average": metric_errors(draws.mean(axis=0), target, err_key),
        }
    return result


def fisher_section(settings: BenchSettings, speed_rows: list[dict] | None, log=print) -> dict:
    """Accuracy of both estimators, and the update speed-up of the dataset estimator (from the profile's
    variants, ``speed_rows``)."""
    accuracy = estimator_accuracy(settings)
    out: dict = {"accuracy": accuracy}
    if speed_rows:  # the profile's variants: the agent as shipped first, then with the dataset estimator
        flow = speed_rows[0]
        dataset = next((r for r in speed_rows if r["overrides"] == {"fisher.source": "dataset"}), None)
        if dataset:
            out["speed"] = {
                "preset": flow["preset"],
                "flow_updates_per_s": flow["updates_per_s"],
                "dataset_updates_per_s": dataset["updates_per_s"],
                "flow_gflop_per_update": flow["gflop_per_update"],
                "dataset_gflop_per_update": dataset["gflop_per_update"],
                "speedup": dataset["updates_per_s"] / flow["updates_per_s"],
            }
    for name in ("flow", "dataset"):
        a = accuracy[name]
        log(
            f"  fisher.source={name:8s} one draw: error {a['one_draw']['relative_error']:.2f}, "
            f"penalty x{a['one_draw']['penalty_factor']:.2f};  {accuracy['redraws']}-draw average: "
            f"error {a['average']['relative_error']:.2f}, penalty x{a['average']['penalty_factor']:.2f}"
        )
    return out
