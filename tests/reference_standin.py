"""A stand-in for the FQL reference code, written for the tests (CI has no checkout of the real one).

It has the reference's interface and layout (``agents/fql.py`` with ``get_config`` and ``FQLAgent`` with
``create``, ``update``, ``total_loss`` and ``sample_actions``; the same parameter names; the same order of
random draws), so ``fidec parity`` can run against it.  :func:`write_standin` writes it into a folder, with
one line changed when ``mutation`` names one of :data:`MUTATIONS`.
"""

from __future__ import annotations

from pathlib import Path

SOURCE = """
import copy
import functools

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax


def get_config():
    return dict(
        agent_name="fql", lr=3e-4, batch_size=256, actor_hidden_dims=(512, 512, 512, 512),
        value_hidden_dims=(512, 512, 512, 512), layer_norm=True, actor_layer_norm=False, discount=0.99,
        tau=0.005, q_agg="mean", alpha=10.0, flow_steps=10, normalize_q_loss=False, encoder=None,
    )


class MLP(nn.Module):
    hidden_dims: tuple
    layer_norm: bool = False

    @nn.compact
    def __call__(self, x):
        init = nn.initializers.variance_scaling(1.0, "fan_avg", "uniform")
        for i, size in enumerate(self.hidden_dims):
            x = nn.Dense(size, kernel_init=init)(x)
            if i + 1 < len(self.hidden_dims):
                x = nn.gelu(x)
                if self.layer_norm:
                    x = nn.LayerNorm()(x)
        return x


class Value(nn.Module):
    hidden_dims: tuple
    layer_norm: bool = True

    def setup(self):
        ensemble = nn.vmap(MLP, variable_axes={"params": 0}, split_rngs={"params": True}, in_axes=None,
                           out_axes=0, axis_size=2)
        self.value_net = ensemble((*self.hidden_dims, 1), layer_norm=self.layer_norm)

    def __call__(self, observations, actions):
        return self.value_net(jnp.concatenate([observations, actions], -1)).squeeze(-1)


class VectorField(nn.Module):
    hidden_dims: tuple
    action_dim: int

    def setup(self):
        self.mlp = MLP((*self.hidden_dims, self.action_dim))

    def __call__(self, observations, actions, times=None):
        parts = [observations, actions] + ([] if times is None else [times])
        return self.mlp(jnp.concatenate(parts, -1))


class Nets(nn.Module):
    modules: dict

    @nn.compact
    def __call__(self, *args, name=None, **kwargs):
        if name is None:
            return {k: self.modules[k](*v) for k, v in kwargs.items()}
        return self.modules[name](*args, **kwargs)


class State(flax.struct.PyTreeNode):
    params: dict
    opt_state: object
    apply_fn: object = flax.struct.field(pytree_node=False)
    tx: object = flax.struct.field(pytree_node=False)

    def __call__(self, name, *args, params=None, **kwargs):
        return self.apply_fn({"params": self.params if params is None else params}, *args, name=name, **kwargs)


class FQLAgent(flax.struct.PyTreeNode):
    rng: object
    network: State
    config: dict = flax.struct.field(pytree_node=False)

    def critic_loss(self, batch, grad_params, rng):
        rng, sample_rng = jax.random.split(rng)
        next_actions = jnp.clip(self.sample_actions(batch["next_observations"], seed=sample_rng), -1, 1)
        next_qs = self.network("target_critic", batch["next_observations"], next_actions)
        next_q = next_qs.min(axis=0) if self.config["q_agg"] == "min" else next_qs.mean(axis=0)
        target_q = batch["rewards"] + self.config["discount"] * batch["masks"] * next_q
        q = self.network("critic", batch["observations"], batch["actions"], params=grad_params)
        loss = jnp.square(q - target_q).mean()
        return loss, {"critic_loss": loss, "q_mean": q.mean(), "q_max": q.max(), "q_min": q.min()}

    def actor_loss(self, batch, grad_params, rng):
        b, d = batch["actions"].shape
        rng, x_rng, t_rng = jax.random.split(rng, 3)
        x_0 = jax.random.normal(x_rng, (b, d))
        t = jax.random.uniform(t_rng, (b, 1))
        x_t = (1 - t) * x_0 + t * batch["actions"]
        pred = self.network("actor_bc_flow", batch["observations"], x_t, t, params=grad_params)
        bc_flow_loss = jnp.mean((pred - (batch["actions"] - x_0)) ** 2)
        rng, noise_rng = jax.random.split(rng)
        noises = jax.random.normal(noise_rng, (b, d))
        target = self.compute_flow_actions(batch["observations"], noises)
        actions = self.network("actor_onestep_flow", batch["observations"], noises, params=grad_params)
        distill_loss = jnp.mean((actions - target) ** 2)
        q = self.network("critic", batch["observations"], jnp.clip(actions, -1, 1)).mean(axis=0)
        q_loss = -q.mean()
        if self.config["normalize_q_loss"]:  # MUTATION:normalize
            q_loss = q_loss / jax.lax.stop_gradient(jnp.abs(q).mean())
        loss = bc_flow_loss + self.config["alpha"] * distill_loss + q_loss
        logged = self.sample_actions(batch["observations"], seed=rng)
        return loss, {"actor_loss": loss, "bc_flow_loss": bc_flow_loss, "distill_loss": distill_loss,
                      "q_loss": q_loss, "q": q.mean(), "mse": jnp.mean((logged - batch["actions"]) ** 2)}

    @jax.jit
    def total_loss(self, batch, grad_params, rng=None):
        rng, actor_rng, critic_rng = jax.random.split(rng, 3)
        c_loss, c_info = self.critic_loss(batch, grad_params, critic_rng)
        a_loss, a_info = self.actor_loss(batch, grad_params, actor_rng)
        info = {**{f"critic/{k}": v for k, v in c_info.items()}, **{f"actor/{k}": v for k, v in a_info.items()}}
        return c_loss + a_loss, info

    @jax.jit
    def update(self, batch):
        new_rng, rng = jax.random.split(self.rng)
        grads, info = jax.grad(lambda p: self.total_loss(batch, p, rng=rng), has_aux=True)(self.network.params)
        updates, opt_state = self.network.tx.update(grads, self.network.opt_state, self.network.params)
        params = optax.apply_updates(self.network.params, updates)
        source = self.network.params  # MUTATION:target
        tau = self.config["tau"]
        params["modules_target_critic"] = jax.tree_util.tree_map(
            lambda p, tp: p * tau + tp * (1 - tau), source["modules_critic"], self.network.params["modules_target_critic"]
        )
        network = self.network.replace(params=params, opt_state=opt_state)
        return self.replace(network=network, rng=new_rng), info

    @jax.jit
    def sample_actions(self, observations, seed=None, temperature=1.0):
        action_seed, _ = jax.random.split(seed)
        noises = jax.random.normal(action_seed, (*observations.shape[:-1], self.config["action_dim"]))
        return jnp.clip(self.network("actor_onestep_flow", observations, noises), -1, 1)

    @jax.jit
    def compute_flow_actions(self, observations, noises):
        actions = noises
        for i in range(self.config["flow_steps"]):
            t = jnp.full((*observations.shape[:-1], 1), i / self.config["flow_steps"])
            actions = actions + self.network("actor_bc_flow", observations, actions, t) / self.config["flow_steps"]
        return jnp.clip(actions, -1, 1)

    @classmethod
    def create(cls, seed, ex_observations, ex_actions, config):
        rng, init_rng = jax.random.split(jax.random.PRNGKey(seed))
        d = ex_actions.shape[-1]
        critic = Value(tuple(config["value_hidden_dims"]), config["layer_norm"])
        modules = dict(
            critic=critic, target_critic=copy.deepcopy(critic),
            actor_bc_flow=VectorField(tuple(config["actor_hidden_dims"]), d),
            actor_onestep_flow=VectorField(tuple(config["actor_hidden_dims"]), d),
        )
        nets = Nets(modules)
        args = dict(critic=(ex_observations, ex_actions), target_critic=(ex_observations, ex_actions),
                    actor_bc_flow=(ex_observations, ex_actions, ex_actions[..., :1]),
                    actor_onestep_flow=(ex_observations, ex_actions))
        params = nets.init(init_rng, **args)["params"]
        params = flax.core.unfreeze(params)
        params["modules_target_critic"] = params["modules_critic"]
        tx = optax.adam(config["lr"])
        network = State(params=params, opt_state=tx.init(params), apply_fn=nets.apply, tx=tx)
        return cls(rng, network=network, config=flax.core.FrozenDict(**config, action_dim=d))
"""

# One-line changes a parity check must notice.
MUTATIONS = {
    "target": (
        "        source = self.network.params  # MUTATION:target",
        "        source = params  # the target moves towards the updated critic",
    ),
    "normalize": (
        '        if self.config["normalize_q_loss"]:  # MUTATION:normalize',
        "        if False:  # normalize_q_loss ignored",
    ),
}


def write_standin(root: Path, mutation: str | None = None) -> Path:
    """Write the stand-in checkout into ``root`` (``agents/fql.py``); ``mutation`` changes one line."""
    source = SOURCE
    if mutation is not None:
        old, new = MUTATIONS[mutation]
        assert old in source, mutation
        source = source.replace(old, new)
    (root / "agents").mkdir(parents=True, exist_ok=True)
    (root / "agents" / "fql.py").write_text(source)
    return root
