"""Shapes, parameter structure and configuration checks of the shared network modules."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fidec.networks import (
    ACTIVATIONS,
    MLP,
    CriticEnsemble,
    NetworkConfig,
    OneStepPolicy,
    Residual,
    VectorField,
    embed_time,
)

OBS_DIM = 6
HIDDEN = (16, 16)
ACTION_DIMS = (1, 2, 5)
BATCH_SHAPES = ((4,), (4, 3))


def inputs(batch_shape: tuple[int, ...], action_dim: int, seed: int = 0):
    """(obs, actions, t): obs is (B, o) for a (B,) batch and (B, 1, o) for (B, M) (broadcast over M)."""
    key_o, key_a, key_t = jax.random.split(jax.random.PRNGKey(seed), 3)
    obs_shape = batch_shape[:1] + (1,) * (len(batch_shape) - 1) + (OBS_DIM,)
    obs = jax.random.normal(key_o, obs_shape)
    actions = jax.random.normal(key_a, batch_shape + (action_dim,))
    t = jax.random.uniform(key_t, batch_shape + (1,))
    return obs, actions, t


def param_shapes(module, *args) -> dict:
    """Shapes of module.init(key, *args)["params"], traced abstractly."""
    params = jax.eval_shape(module.init, jax.random.PRNGKey(0), *args)
    return jax.tree_util.tree_map(lambda x: x.shape, params)["params"]


def output_shape(module, *args) -> tuple[int, ...]:
    """Shape of module.apply(module.init(key, *args), *args), traced abstractly (no compute, fast)."""
    return jax.eval_shape(
        lambda key: module.apply(module.init(key, *args), *args), jax.random.PRNGKey(0)
    ).shape


@pytest.mark.parametrize("batch_shape", BATCH_SHAPES)
@pytest.mark.parametrize("action_dim", ACTION_DIMS)
def test_actor_networks_output_shapes(action_dim, batch_shape):
    obs, actions, t = inputs(batch_shape, action_dim)
    expected = batch_shape + (action_dim,)
    for module, args in [
        (VectorField(HIDDEN, action_dim), (obs, actions, t)),
        (VectorField(HIDDEN, action_dim, time_embedding="fourier"), (obs, actions, t)),
        (Residual(HIDDEN, action_dim), (obs, actions)),
        (OneStepPolicy(HIDDEN, action_dim), (obs, actions)),
    ]:
        assert output_shape(module, *args) == expected, type(module).__name__


@pytest.mark.parametrize("batch_shape", BATCH_SHAPES)
@pytest.mark.parametrize("action_dim", ACTION_DIMS)
def test_critic_ensemble_output_shape(action_dim, batch_shape):
    obs, actions, _ = inputs(batch_shape, action_dim)
    assert output_shape(CriticEnsemble(HIDDEN, num_critics=3), obs, actions) == (3, *batch_shape)


def test_vector_field_accepts_a_per_sample_state_and_a_scalar_time():
    obs, actions, _ = inputs((4, 3), 2)
    module = VectorField(HIDDEN, 2)
    params = module.init(jax.random.PRNGKey(3), obs, actions, jnp.zeros((4, 3, 1)))
    broadcast = module.apply(params, obs, actions, jnp.full((4, 3, 1), 0.5))
    per_sample = module.apply(params, jnp.broadcast_to(obs, (4, 3, OBS_DIM)), actions, jnp.asarray(0.5))
    np.testing.assert_allclose(per_sample, broadcast, rtol=1e-6)


def test_mlp_structure_and_activations():
    x = jnp.ones((2, 3))
    for activation in ACTIVATIONS:
        assert output_shape(MLP(HIDDEN, 4, activation=activation), x) == (2, 4)
    shapes = param_shapes(MLP((8, 16), 5), x)
    assert shapes == {
        "Dense_0": {"kernel": (3, 8), "bias": (8,)},
        "Dense_1": {"kernel": (8, 16), "bias": (16,)},
        "Dense_2": {"kernel": (16, 5), "bias": (5,)},
    }


def test_layer_norm_option_adds_layer_norm_parameters():
    x = jnp.ones((2, 3))
    plain = param_shapes(MLP(HIDDEN, 2), x)
    normed = param_shapes(MLP(HIDDEN, 2, layer_norm=True), x)
    assert not any(name.startswith("LayerNorm") for name in plain)
    assert {name for name in normed if name.startswith("LayerNorm")} == {"LayerNorm_0", "LayerNorm_1"}
    assert normed["LayerNorm_0"] == {"scale": (16,), "bias": (16,)}
    obs, actions, _ = inputs((4,), 2)
    for layer_norm in (True, False):
        critic = CriticEnsemble(HIDDEN, 2, layer_norm=layer_norm)
        (members,) = param_shapes(critic, obs, actions).values()
        assert ("LayerNorm_0" in members) == layer_norm


def test_critic_ensemble_members_have_separate_parameters():
    obs, actions, _ = inputs((8,), 2)
    module = CriticEnsemble(HIDDEN, num_critics=2)
    params = module.init(jax.random.PRNGKey(4), obs, actions)
    kernels = [leaf for leaf in jax.tree_util.tree_leaves(params) if leaf.ndim == 3]
    assert kernels and all(leaf.shape[0] == 2 for leaf in jax.tree_util.tree_leaves(params))
    for kernel in kernels:
        assert not np.allclose(kernel[0], kernel[1])
    q = module.apply(params, obs, actions)
    assert float(jnp.abs(q[0] - q[1]).max()) > 1e-3


def test_residual_init_scale_scales_the_last_layer():
    obs, actions, _ = inputs((64,), 3)
    key = jax.random.PRNGKey(5)
    small = Residual(HIDDEN, 3, init_scale=1e-2)
    unit = Residual(HIDDEN, 3)  # default: the official plain initialisation
    out_small = small.apply(small.init(key, obs, actions), obs, actions)
    out_unit = unit.apply(unit.init(key, obs, actions), obs, actions)
    # The last layer's weights scale linearly with init_scale (zero bias): delta_0 = 0.01 * unit output.
    np.testing.assert_allclose(out_small, 1e-2 * out_unit, rtol=1e-4, atol=1e-8)
    assert float(jnp.abs(out_small).max()) < 0.05
    assert float(jnp.abs(out_unit).max()) > 0.2


def test_fourier_time_embedding():
    t = jnp.array([[0.0], [0.25], [1.0]])
    raw = embed_time(t, "raw")
    np.testing.assert_array_equal(raw, t)
    features = embed_time(t, "fourier")
    assert features.shape == (3, 17)
    np.testing.assert_allclose(features[:, 0], t[:, 0])
    np.testing.assert_allclose(features[1, 1:9], np.sin(2 * np.pi * np.arange(1, 9) * 0.25), atol=1e-6)
    np.testing.assert_allclose(features[1, 9:], np.cos(2 * np.pi * np.arange(1, 9) * 0.25), atol=1e-6)
    assert embed_time(jnp.zeros((2, 5, 1)), "fourier").shape == (2, 5, 17)
    obs, actions, t = inputs((4,), 2)
    for kind, width in [("raw", 1), ("fourier", 17)]:
        shapes = param_shapes(VectorField(HIDDEN, 2, time_embedding=kind), obs, actions, t)
        assert shapes["MLP_0"]["Dense_0"]["kernel"] == (OBS_DIM + 2 + width, HIDDEN[0])


def test_networks_under_jit_and_vmap():
    obs, actions, t = inputs((6,), 2)
    module = VectorField(HIDDEN, 2)
    params = module.init(jax.random.PRNGKey(6), obs, actions, t)
    batched = module.apply(params, obs, actions, t)
    np.testing.assert_allclose(jax.jit(module.apply)(params, obs, actions, t), batched, rtol=1e-5, atol=1e-6)
    mapped = jax.vmap(module.apply, in_axes=(None, 0, 0, 0))(params, obs, actions, t)
    np.testing.assert_allclose(mapped, batched, rtol=1e-5, atol=1e-6)


def test_network_config_defaults():
    config = NetworkConfig()
    assert config.actor_hidden == config.critic_hidden == (512, 512, 512, 512)
    assert config.activation == "gelu" and config.critic_layer_norm and not config.actor_layer_norm
    assert config.num_critics == 2 and config.time_embedding == "raw"


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"activation": "swish"}, "activation"),
        ({"time_embedding": "sinusoidal"}, "time_embedding"),
        ({"num_critics": 0}, "num_critics"),
        ({"actor_hidden": ()}, "hidden"),
        ({"critic_hidden": (64, 0)}, "hidden"),
    ],
)
def test_network_config_rejects_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        NetworkConfig(**kwargs)
