"""The experiment behind ``fidec demo``: residual refinements of a 2-D flow policy under four penalties at
equal reward (paper Figs. 3 and 7).

For one behaviour (exact log-density, :mod:`fidec.diagnostics.behaviours`):

1. fit a flow policy to behaviour actions (flow matching, :func:`fidec.diagnostics.flow_fit.fit_flow`);
2. draw base actions a_hat with the K-step Euler sampler and estimate the Fisher metric from the flow
   with :func:`fidec.fisher.fisher_metric` twice: F, fidec's estimate (``DemoConfig.fisher``: tweedie
   score at t_eps = 0.98, true scale: no trace normalisation, so that 1/2 delta^T F delta is a KL in nats),
   and F_off, the official FD code's estimate (``DemoConfig.official_fisher``: v / (1 - t) at t = 0.95,
   damping 1e-3, trace-normalised as that code does);
3. train residuals delta(a_hat) to maximise r(a_hat + delta) - alpha * penalty for five penalties, each
   built from the functions FD trains with (:mod:`fidec.fisher`):

       isotropic (L2):        1/2 mean_eig(F) ||delta||^2       (DeFlow; F_n = I)
       Fisher (fidec):        1/2 delta^T F delta
       Fisher (official):     1/2 mean_eig(F) delta^T F_off delta   (the official metric's shape, in the
                              isotropic penalty's units: both have mean eigenvalue mean_eig(F))
       Fisher + 1/2 tr(J^2):  the second-order KL of docs/method.md section 4 with F for -Hess log p
                              (J = d delta / d a_hat; exact in 2-D, Hutchinson with
                              ``jacobian_probes``; beyond the paper)
       Fisher + 1/2 ||sym J||^2:  the same with the symmetric part of J, an upper bound that, unlike
                              tr(J^2), cannot be driven negative by a rotation-like J

   at equal reward: alpha is a Lagrange multiplier that drives the mean reward to a common target
   r* = r0 + f (r_max - r0) (several fractions f trace a reward / KL frontier);
4. measure the reward reached and the true KL(T#pi_b || pi_b) (change of variables with the exact
   behaviour density, :mod:`fidec.diagnostics.kl`).

The reward is r(a) = -||a - goal||^2 with the goal off the data, so every penalty must trade reward for
leaving the support.  The refinement is the unclipped map a + delta (clipping would make T
non-invertible and the KL infinite).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np
import optax

from fidec.config import ConfigError
from fidec.diagnostics import kl
from fidec.diagnostics.behaviours import BEHAVIOURS, goal_reward, make_behaviour
from fidec.diagnostics.flow_fit import fit_flow
from fidec.fisher import (
    FisherConfig,
    fisher_metric,
    isotropic_penalty,
    jacobian_square,
    mean_eigenvalue,
    quadratic_penalty,
)
from fidec.networks import Residual

PENALTIES = ("isotropic", "fisher", "fisher_official", "fisher_jacobian", "fisher_sym_jacobian")
PENALTY_LABELS = {
    "isotropic": "isotropic (L2)",
    "fisher": "Fisher, fidec's estimate",
    "fisher_official": "Fisher, official estimate",
    "fisher_jacobian": "Fisher + ½tr(J²)",
    "fisher_sym_jacobian": "Fisher + ½‖sym J‖²",
}
# (w_isotropic, w_fisher, w_trace_jacobian, w_sym_jacobian, w_official) per penalty: one loss, vmapped
# over weights.  The two Jacobian variants add their term to fidec's Fisher penalty.
PENALTY_WEIGHTS = {
    "isotropic": (1.0, 0.0, 0.0, 0.0, 0.0),
    "fisher": (0.0, 1.0, 0.0, 0.0, 0.0),
    "fisher_official": (0.0, 0.0, 0.0, 0.0, 1.0),
    "fisher_jacobian": (0.0, 1.0, 1.0, 0.0, 0.0),
    "fisher_sym_jacobian": (0.0, 1.0, 0.0, 1.0, 0.0),
}
DEMO_GOALS = {"band": (0.65, 0.45), "mixture": (0.7, 0.25), "gaussian": (0.7, 0.4)}


@dataclass(frozen=True)
class DemoConfig:
    """Sizes of the demo (defaults: about 40 s of CPU time, both behaviours).

    Attributes:
        behaviours: toy behaviours to run (see :func:`fidec.diagnostics.behaviours.make_behaviour`).
        num_data: behaviour actions the flow is fitted to.
        flow_steps, flow_hidden, flow_lr, flow_batch, time_embedding: flow-matching fit.
        sampler_steps: K, Euler steps of the base policy.
        fisher: fidec's Fisher estimate (must be un-normalised: the penalties are KLs in nats).
        official_fisher: the official FD code's estimate (must be trace-normalised, as that code's is; the
            penalty scales it by mean_eig of ``fisher``).
        residual_hidden, residual_steps, residual_lr, residual_batch: residual networks.
        pool_size: base actions the residuals are trained on.
        reward_fractions: f of the reward targets r* = r0 + f (r_max - r0); ``main_fraction`` is drawn.
        alpha_init, alpha_lr: Lagrange multiplier (Adam on log alpha).
        jacobian_probes: Hutchinson probes of the Jacobian terms (0 = exact, d JVPs: as cheap in 2-D).
        eval_samples: samples for the reward and the true KL.
        seed: everything is seeded from it.
    """

    behaviours: tuple[str, ...] = ("band", "mixture")
    num_data: int = 20_000
    flow_steps: int = 3000
    flow_hidden: tuple[int, ...] = (128, 128, 128)
    flow_lr: float = 3e-3
    flow_batch: int = 256
    time_embedding: str = "fourier"
    sampler_steps: int = 10
    fisher: FisherConfig = field(default_factory=lambda: FisherConfig(normalize=False))
    official_fisher: FisherConfig = field(
        default_factory=lambda: FisherConfig(estimator="velocity", t_eps=0.95, normalize=True)
    )
    residual_hidden: tuple[int, ...] = (32, 32)
    residual_steps: int = 1000
    residual_lr: float = 3e-3
    residual_batch: int = 256
    pool_size: int = 4096
    reward_fractions: tuple[float, ...] = (0.25, 0.5, 0.75)
    main_fraction: float = 0.5
    alpha_init: float = 1.0
    alpha_lr: float = 0.05
    jacobian_probes: int = 0
    eval_samples: int = 8192
    seed: int = 0

    def __post_init__(self) -> None:
        unknown = [b for b in self.behaviours if b not in BEHAVIOURS]
        if unknown:
            raise ConfigError(f"unknown demo behaviours {unknown}; choose from {BEHAVIOURS}")
        if self.main_fraction not in self.reward_fractions:
            raise ConfigError(f"main_fraction {self.main_fraction} must be one of {self.reward_fractions}")
        if not all(0.0 < f < 1.0 for f in self.reward_fractions):
            raise ConfigError(f"reward_fractions must lie in (0, 1), got {self.reward_fractions}")
        if self.fisher.normalize:
            raise ConfigError("the demo's penalties are KLs in nats: use FisherConfig(normalize=False)")
        if not self.official_fisher.normalize:
            raise ConfigError(
                "official_fisher is the official code's trace-normalised metric: normalize=True"
            )


def quick_config(seed: int = 0) -> DemoConfig:
    """A small demo (one behaviour, short fits): a smoke test of the whole pipeline in seconds."""
    return DemoConfig(
        behaviours=("band",),
        num_data=4000,
        flow_steps=300,
        flow_hidden=(64, 64),
        residual_steps=200,
        pool_size=512,
        reward_fractions=(0.25, 0.5),
        eval_samples=2048,
        seed=seed,
    )


@dataclass(frozen=True)
class RefinementResult:
    """One trained residual, evaluated."""

    penalty: str
    fraction: float
    reward_target: float
    reward: float
    alpha: float
    true_kl: float
    true_kl_stderr: float
    quadratic_kl: float
    second_order_kl: float
    jacobian_term: float
    fd_penalty_kl: float
    fold_fraction: float


@dataclass
class BehaviourDemo:
    """Everything the figure and the summary need for one behaviour."""

    name: str
    goal: np.ndarray
    base_reward: float
    fisher_estimated: np.ndarray
    fisher_exact: np.ndarray
    flow_loss: float
    base_actions: np.ndarray
    refined: dict[str, np.ndarray]  # main fraction: refined actions of ``base_actions``, per penalty
    results: list[RefinementResult]
    grid: dict[str, np.ndarray]  # behaviour density on a grid, for the figure
    fisher_official: np.ndarray | None = None  # the official estimate, trace-normalised

    def main(self, penalty: str, fraction: float) -> RefinementResult:
        return next(r for r in self.results if r.penalty == penalty and r.fraction == fraction)

    def frontier(self, penalty: str) -> tuple[np.ndarray, np.ndarray]:
        rows = sorted((r for r in self.results if r.penalty == penalty), key=lambda r: r.reward)
        return np.array([r.reward for r in rows]), np.array([r.true_kl for r in rows])

    def kl_at_reward(self, penalty: str, reward: float) -> float:
        """True KL of ``penalty``'s frontier at ``reward`` (log-linear interpolation; NaN outside it)."""
        rewards, kls = self.frontier(penalty)
        if reward < rewards[0] or reward > rewards[-1] or np.any(kls <= 0):
            return float("nan")
        return float(np.exp(np.interp(reward, rewards, np.log(kls))))


# ---------------------------------------------------------------------------------------------
# Residual training under a Lagrangian that reaches a reward target.
# ---------------------------------------------------------------------------------------------


def penalty_value(
    module: Residual,
    params,
    actions: jax.Array,
    fisher: jax.Array,
    weights: jax.Array,
    key: jax.Array,
    jacobian_probes: int,
    official: jax.Array | None = None,
) -> tuple[jax.Array, jax.Array]:
    """(mean penalty, deltas) for weights (w_iso, w_fisher, w_tr, w_sym, w_official) over base actions
    (B, d); a fifth weight needs ``official``, the official code's trace-normalised metric F_off.

    penalty = w_iso 1/2 mean_eig(F) ||delta||^2 + w_fisher 1/2 delta^T F delta
              + w_tr 1/2 tr(J^2) + w_sym 1/2 ||sym J||_F^2 + w_official 1/2 mean_eig(F) delta^T F_off delta
    with FD's per-dimension penalties (:func:`fidec.fisher.quadratic_penalty` and
    :func:`~fidec.fisher.isotropic_penalty`, which divide by d) scaled by d / 2 into nats, and its
    Jacobian estimator :func:`fidec.fisher.jacobian_square` (exact with ``jacobian_probes = 0``, else
    Hutchinson with that many probes, the same probes for both forms).
    """
    d = actions.shape[-1]
    obs = jnp.zeros((0,), actions.dtype)
    delta_fn = lambda a: module.apply(params, obs, a)
    deltas = jax.vmap(delta_fn)(actions)
    half_d = 0.5 * d
    iso = half_d * mean_eigenvalue(fisher) * isotropic_penalty(deltas)
    quad = half_d * quadratic_penalty(deltas, jnp.broadcast_to(fisher, deltas.shape[:-1] + fisher.shape))
    probe_key = key if jacobian_probes > 0 else None
    trace_jac = jacobian_square(delta_fn, actions, probe_key, jacobian_probes, form="trace")
    sym_jac = jacobian_square(delta_fn, actions, probe_key, jacobian_probes, form="sym")
    penalty = weights[0] * iso + weights[1] * quad + 0.5 * (weights[2] * trace_jac + weights[3] * sym_jac)
    if weights.shape[0] > 4:
        if official is None:
            raise ValueError("a fifth (official) weight needs the official metric")
        scaled = mean_eigenvalue(fisher) * official
        off = half_d * quadratic_penalty(deltas, jnp.broadcast_to(scaled, deltas.shape[:-1] + scaled.shape))
        penalty = penalty + weights[4] * off
    return jnp.mean(penalty), deltas


def train_residuals(
    config: DemoConfig,
    reward_fn,
    pool: jax.Array,
    fisher: jax.Array,
    weights: jax.Array,
    targets: jax.Array,
    key: jax.Array,
    official: jax.Array | None = None,
) -> tuple[dict, jax.Array, Residual]:
    """Train one residual per row of (weights (R, 5), targets (R,)), vmapped; returns (params, alpha, module).
    ``official``: the official code's trace-normalised metric, for the fifth weight.

    Each residual minimises -E[r(a_hat + delta)] + alpha * penalty; log alpha minimises
    -log alpha * (E[r] - r*), i.e. alpha grows while the reward exceeds its target, so every residual
    ends at (about) the reward r* with the smallest penalty that reaches it.
    """
    d = pool.shape[-1]
    module = Residual(config.residual_hidden, d, activation="gelu", init_scale=1e-2)  # delta ~ 0 at start
    init_key, train_key = jax.random.split(key)
    params = module.init(init_key, jnp.zeros((0,)), jnp.zeros((d,)))
    num = weights.shape[0]
    params = jax.tree.map(lambda p: jnp.broadcast_to(p, (num,) + p.shape), params)  # same init for all
    log_alpha = jnp.full((num,), jnp.log(config.alpha_init))
    # Decaying rates let the multiplier settle instead of oscillating around the reward target.
    optimizer = optax.adam(optax.cosine_decay_schedule(config.residual_lr, config.residual_steps, 0.1))
    alpha_optimizer = optax.adam(optax.cosine_decay_schedule(config.alpha_lr, config.residual_steps, 0.1))

    def losses(p, la, w, target, batch, k):
        penalty, deltas = penalty_value(module, p, batch, fisher, w, k, config.jacobian_probes, official)
        reward = jnp.mean(reward_fn(batch + deltas))
        alpha = jnp.exp(jax.lax.stop_gradient(la))
        actor = -reward + alpha * penalty
        dual = -la * (jax.lax.stop_gradient(reward) - target)
        return actor + dual, reward

    grad_fn = jax.vmap(jax.grad(losses, argnums=(0, 1), has_aux=True), in_axes=(0, 0, 0, 0, None, None))

    def step(carry, k):
        p, la, opt, aopt = carry
        k_batch, k_probe = jax.random.split(k)
        batch = pool[jax.random.randint(k_batch, (config.residual_batch,), 0, pool.shape[0])]
        (gp, gla), _ = grad_fn(p, la, weights, targets, batch, k_probe)
        updates, opt = optimizer.update(gp, opt, p)
        a_updates, aopt = alpha_optimizer.update(gla, aopt, la)
        return (optax.apply_updates(p, updates), optax.apply_updates(la, a_updates), opt, aopt), None

    carry = (params, log_alpha, optimizer.init(params), alpha_optimizer.init(log_alpha))
    run = jax.jit(lambda c, ks: jax.lax.scan(step, c, ks)[0])
    params, log_alpha, _, _ = run(carry, jax.random.split(train_key, config.residual_steps))
    return params, jnp.exp(log_alpha), module


def evaluate_residual(
    module: Residual,
    params,
    behaviour,
    reward_fn,
    base_actions: jax.Array,
    behaviour_actions: jax.Array,
    fisher_estimated: jax.Array,
    fisher_exact: jax.Array,
) -> dict[str, jax.Array]:
    """Reward on base actions; true KL, quadratic and second order on exact behaviour samples."""
    obs = jnp.zeros((0,), base_actions.dtype)
    delta_fn = lambda a: module.apply(params, obs, a)
    reward = jnp.mean(reward_fn(base_actions + jax.vmap(delta_fn)(base_actions)))
    scan = kl.scan_arrays(
        behaviour.log_density, delta_fn, behaviour_actions, jnp.ones((1,)), fisher_exact, fisher_estimated
    )
    return {"reward": reward, **{k: v[0] for k, v in scan.items()}}


def evaluate_residuals(
    module: Residual,
    stacked_params,
    behaviour,
    reward_fn,
    base_actions,
    behaviour_actions,
    fisher_estimated,
    fisher_exact,
) -> dict[str, np.ndarray]:
    """:func:`evaluate_residual` for each residual of a stacked parameter tree; NumPy columns.

    One jitted call per residual, not ``vmap`` over them: with jax 0.10.2 on CPU, vmapping the
    control-variate KL terms over residual parameters returned wrong values for some residuals
    (several nats off on a few samples; each part alone agreed), so the batch is looped.
    """
    evaluate = jax.jit(
        lambda p: evaluate_residual(
            module, p, behaviour, reward_fn, base_actions, behaviour_actions, fisher_estimated, fisher_exact
        )
    )
    num = jax.tree.leaves(stacked_params)[0].shape[0]
    rows = [evaluate(jax.tree.map(lambda x, i=i: x[i], stacked_params)) for i in range(num)]
    return {k: np.stack([np.asarray(r[k]) for r in rows]) for k in rows[0]}


# ---------------------------------------------------------------------------------------------
# The demo.
# ---------------------------------------------------------------------------------------------


def density_grid(behaviour, lim: float = 1.0, n: int = 300) -> dict[str, np.ndarray]:
    xs = np.linspace(-lim, lim, n, dtype=np.float32)
    xx, yy = np.meshgrid(xs, xs)
    log_p = behaviour.log_density(jnp.asarray(np.stack([xx, yy], -1)))
    return {"x": xx, "y": yy, "log_density": np.asarray(log_p)}


def run_behaviour(name: str, config: DemoConfig, key: jax.Array) -> BehaviourDemo:
    """Fit the flow, estimate F (fidec's and the official estimate), train every penalty at every reward
    target, evaluate."""
    behaviour = make_behaviour(name)
    goal = np.asarray(DEMO_GOALS[name], np.float32)
    reward_fn = goal_reward(goal)
    k_data, k_flow, k_pool, k_fisher, k_train, k_eval, k_exact = jax.random.split(key, 7)

    data = np.asarray(behaviour.sample(k_data, config.num_data))
    fit = fit_flow(
        data,
        steps=config.flow_steps,
        batch_size=config.flow_batch,
        hidden=config.flow_hidden,
        lr=config.flow_lr,
        seed=int(jax.random.randint(k_flow, (), 0, 2**30)),
        time_embedding=config.time_embedding,
    )
    pool = fit.sample(k_pool, config.pool_size, config.sampler_steps)
    fisher_est = fisher_metric(fit.velocity_fn(), pool[None], k_fisher, config.fisher)[0]
    # A key of its own (not an eighth split), so the other draws stay those of the runs without this row.
    k_official = jax.random.fold_in(key, 1)
    fisher_official = fisher_metric(fit.velocity_fn(), pool[None], k_official, config.official_fisher)[0]
    behaviour_actions = behaviour.sample(k_exact, config.eval_samples)
    fisher_exact = kl.exact_fisher(behaviour.log_density, behaviour_actions)

    base_reward = float(jnp.mean(reward_fn(pool)))
    max_reward = 0.0  # r(goal)
    fractions = np.asarray(config.reward_fractions)
    combos = [(p, f) for p in PENALTIES for f in fractions]
    weights = jnp.asarray([PENALTY_WEIGHTS[p] for p, _ in combos])
    targets = jnp.asarray([base_reward + f * (max_reward - base_reward) for _, f in combos])
    params, alphas, module = train_residuals(
        config, reward_fn, pool, fisher_est, weights, targets, k_train, fisher_official
    )

    eval_base = fit.sample(k_eval, config.eval_samples, config.sampler_steps)
    metrics = evaluate_residuals(
        module, params, behaviour, reward_fn, eval_base, behaviour_actions, fisher_est, fisher_exact
    )
    results = [
        RefinementResult(
            penalty=p,
            fraction=float(f),
            reward_target=float(targets[i]),
            reward=float(metrics["reward"][i]),
            alpha=float(alphas[i]),
            true_kl=float(metrics["true_kl"][i]),
            true_kl_stderr=float(metrics["true_kl_stderr"][i]),
            quadratic_kl=float(metrics["quadratic_kl"][i]),
            second_order_kl=float(metrics["curvature_term"][i] + metrics["jacobian_term"][i]),
            jacobian_term=float(metrics["jacobian_term"][i]),
            fd_penalty_kl=float(metrics["quadratic_kl_estimated"][i]),
            fold_fraction=float(metrics["fold_fraction"][i]),
        )
        for i, (p, f) in enumerate(combos)
    ]

    shown = np.asarray(pool[:400])
    refined = {}
    obs = jnp.zeros((0,))
    for i, (p, f) in enumerate(combos):
        if f == config.main_fraction:
            p_i = jax.tree.map(lambda x, i=i: x[i], params)
            refined[p] = shown + np.asarray(jax.vmap(lambda a, q=p_i: module.apply(q, obs, a))(shown))
    return BehaviourDemo(
        name=name,
        goal=goal,
        base_reward=base_reward,
        fisher_estimated=np.asarray(fisher_est),
        fisher_exact=np.asarray(fisher_exact),
        flow_loss=float(fit.losses[-200:].mean()),
        base_actions=shown,
        refined=refined,
        results=results,
        grid=density_grid(behaviour),
        fisher_official=np.asarray(fisher_official),
    )


def verdict(demo: BehaviourDemo, fraction: float) -> dict:
    """Does the Fisher penalty reach a smaller true KL than the isotropic one at equal reward?

    Compared at the isotropic run's reward on each penalty's reward / KL frontier (interpolated), so
    a small mismatch of the reached rewards does not decide the answer.
    """
    iso = demo.main("isotropic", fraction)
    out = {"reward": iso.reward, "isotropic_kl": iso.true_kl}
    for penalty in PENALTIES[1:]:
        at_equal = demo.kl_at_reward(penalty, iso.reward)
        if np.isnan(at_equal):  # outside the frontier: fall back to the raw run at the same target
            at_equal = demo.main(penalty, fraction).true_kl
        out[f"{penalty}_kl"] = at_equal
        out[f"{penalty}_smaller"] = bool(at_equal < iso.true_kl)
    return out
