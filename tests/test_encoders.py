"""Pixel encoders, random-shift augmentation, and how agents wire one encoder per network."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fidec.agents import REGISTRY, AgentConfig, common, default_config, make_agent
from fidec.augment import augment_batch, random_shift, shift_frames, shift_offsets
from fidec.config import apply_overrides
from fidec.encoders import EncoderConfig, ImpalaEncoder, TinyEncoder, make_encoder
from fidec.networks import Encoded

FRAME = (64, 64, 3)


def pixel_config(agent: str = "fd", encoder: str = "tiny", **overrides) -> AgentConfig:
    config = default_config(agent)
    base = {
        "encoder.name": encoder,
        "network.actor_hidden": (16,),
        "network.critic_hidden": (16,),
        "batch_size": 4,
        "encoder.impala_channels": (4, 8),
        "encoder.mlp_hidden": (16,),
    }
    if hasattr(config, "flow_steps"):
        base["flow_steps"] = 3
    if hasattr(config, "fisher"):
        base["fisher.num_samples"] = 2
    return apply_overrides(config, {**base, **overrides})


def frames(key, shape) -> jax.Array:
    return jax.random.randint(key, shape, 0, 256, jnp.int32).astype(jnp.uint8)


# ------------------------------------------------------------------------------------------ encoders


@pytest.mark.parametrize(
    ("module", "features"),
    [(ImpalaEncoder(), 512), (TinyEncoder(), 32)],
)
def test_encoders_map_uint8_frames_to_feature_vectors(module, features):
    x = frames(jax.random.PRNGKey(0), (2, 24, 24, 9))  # any frame size; 64 x 64 below
    params = module.init(jax.random.PRNGKey(1), x)
    out = module.apply(params, x)
    assert out.shape == (2, features) and out.dtype == jnp.float32
    assert bool(jnp.all(jnp.isfinite(out)))
    # Extra leading axes are kept; each sample is encoded on its own.
    stacked = module.apply(params, jnp.stack([x, x[::-1]]))
    assert stacked.shape == (2, 2, features)
    np.testing.assert_allclose(stacked[1, 0], out[1], rtol=1e-5, atol=1e-5)


def test_impala_encoder_has_the_small_impala_layout():
    """3 stages (16, 32, 32 channels) of conv + pool + 1 residual block (2 convs), then a 512-unit layer."""
    params = ImpalaEncoder().init(jax.random.PRNGKey(0), jnp.zeros((1, *FRAME[:2], 9), jnp.uint8))["params"]
    kernels = [
        v.shape for path, v in jax.tree_util.tree_leaves_with_path(params) if "kernel" in str(path[-1])
    ]
    convs = [k for k in kernels if len(k) == 4]
    assert len(convs) == 9 and sorted({k[-1] for k in convs}) == [16, 32, 32][:2]
    dense = [k for k in kernels if len(k) == 2]
    assert dense == [(8 * 8 * 32, 512)]  # 64 -> 32 -> 16 -> 8 after three stride-2 pools


def test_encoder_input_scaling_treats_uint8_and_float_frames_alike():
    module = TinyEncoder()
    x = frames(jax.random.PRNGKey(2), (3, 16, 16, 3))
    params = module.init(jax.random.PRNGKey(3), x)
    np.testing.assert_allclose(
        module.apply(params, x), module.apply(params, x.astype(jnp.float32)), atol=1e-6
    )


def test_encoder_config_validates_and_names_the_choices():
    assert make_encoder(EncoderConfig()) is None
    assert isinstance(make_encoder(EncoderConfig(name="impala")), ImpalaEncoder)
    assert isinstance(make_encoder(EncoderConfig(name="tiny")), TinyEncoder)
    with pytest.raises(ValueError, match=r"encoder.name must be one of \('none', 'impala', 'tiny'\)"):
        EncoderConfig(name="resnet50")
    with pytest.raises(ValueError, match="frame_stack must be >= 1"):
        EncoderConfig(frame_stack=0)
    with pytest.raises(ValueError, match=r"augment_prob must lie in \[0, 1\]"):
        EncoderConfig(augment_prob=1.5)


# -------------------------------------------------------------------------------------- augmentation


def test_random_shift_is_a_real_per_sample_translation():
    pad, b = 4, 64
    x = frames(jax.random.PRNGKey(4), (b, 16, 16, 3))
    offsets = shift_offsets(jax.random.PRNGKey(5), b, pad, prob=1.0)
    out = shift_frames(x, offsets, pad)
    assert out.dtype == jnp.uint8 and out.shape == x.shape
    padded = np.pad(np.asarray(x), ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="edge")
    for i in range(b):
        dy, dx = (int(v) for v in offsets[i])
        np.testing.assert_array_equal(out[i], padded[i, dy : dy + 16, dx : dx + 16])
    # Per sample: many different offsets in one batch, all within {0..2 pad}.
    assert len({tuple(int(v) for v in o) for o in offsets}) > 20
    assert int(offsets.min()) >= 0 and int(offsets.max()) <= 2 * pad


def test_random_shift_applies_with_probability_p_and_is_reproducible_from_the_key():
    x = frames(jax.random.PRNGKey(6), (2000, 8, 8, 3))
    key = jax.random.PRNGKey(7)
    out = random_shift(key, x, pad=2, prob=0.3)
    np.testing.assert_array_equal(out, random_shift(key, x, pad=2, prob=0.3))
    np.testing.assert_array_equal(out, jax.jit(random_shift, static_argnums=(2, 3))(key, x, 2, 0.3))
    assert not np.array_equal(out, random_shift(jax.random.PRNGKey(8), x, pad=2, prob=0.3))
    offsets = shift_offsets(key, 2000, 2, 0.3)
    moved = np.asarray(jnp.any(offsets != 2, axis=1)).mean()
    # P(shifted and offset != (pad, pad)) = 0.3 * (1 - 1/25).
    assert abs(moved - 0.3 * 24 / 25) < 0.04
    np.testing.assert_array_equal(random_shift(key, x, pad=2, prob=0.0), x)


def test_augment_batch_shifts_s_and_next_s_of_a_transition_alike():
    x = frames(jax.random.PRNGKey(9), (32, 12, 12, 6))
    batch = {"observations": x, "next_observations": x, "actions": jnp.zeros((32, 2))}
    out = augment_batch(jax.random.PRNGKey(10), batch, pad=3, prob=1.0)
    np.testing.assert_array_equal(out["observations"], out["next_observations"])
    assert not np.array_equal(out["observations"], x)
    assert out["actions"] is batch["actions"]


# ---------------------------------------------------------------------------------- agent networks


@pytest.mark.parametrize("name", list(REGISTRY))
def test_each_network_owns_its_encoder(name):
    parts = tuple(p for p in REGISTRY[name].parts if p != "log_alpha")
    agent = make_agent(name, pixel_config(name), FRAME, 5)
    assert agent.obs_dim == (64, 64, 9)
    state = agent.init(jax.random.PRNGKey(0))
    kernels = []
    for part in parts:
        assert isinstance(getattr(agent.networks, part), Encoded)
        assert set(state.params[part]["params"]) == {"encoder", "head"}
        kernels.append(np.asarray(state.params[part]["params"]["encoder"]["Conv_0"]["kernel"]))
    # Separate parameters (independently initialised), not one shared encoder.
    for i in range(len(kernels)):
        for j in range(i):
            assert not np.allclose(kernels[i], kernels[j]), (parts[i], parts[j])


@pytest.mark.parametrize("name", list(REGISTRY))
def test_state_agents_build_plain_networks(name):
    spec = REGISTRY[name]
    networks = spec.build(default_config(name), 3)
    assert set(networks.modules) == {p for p in spec.parts if p != "log_alpha"}
    assert not any(isinstance(m, Encoded) for m in networks.modules.values())


def test_state_agents_leave_the_batch_and_rng_alone():
    config = apply_overrides(
        default_config("fd"), {"network.actor_hidden": (8,), "network.critic_hidden": (8,)}
    )
    agent = make_agent("fd", config, 6, 3)
    state = agent.init(jax.random.PRNGKey(0))
    batch = {"observations": jnp.ones((2, 6))}
    same_state, same_batch = common.prepare_batch(agent.config, state, batch)
    assert same_batch is batch and same_state is state


def test_flow_encodes_the_observation_once_outside_the_euler_loop():
    agent = make_agent("bcflow", pixel_config("bcflow", flow_steps=7), FRAME, 2)
    state = agent.init(jax.random.PRNGKey(0))
    obs = jnp.zeros((3, 64, 64, 9), jnp.uint8)
    jaxpr = jax.make_jaxpr(lambda p, o, n: common.sample_base_actions(agent.config, agent.networks, p, o, n))(
        state.params["flow"], obs, jnp.zeros((3, 2))
    ).jaxpr
    scans = [e for e in jaxpr.eqns if e.primitive.name == "scan"]
    assert len(scans) == 1
    assert "conv_general_dilated" not in str(scans[0].params["jaxpr"])  # no encoder inside the Euler steps
    outside = sum(e.primitive.name == "conv_general_dilated" for e in jaxpr.eqns)
    assert outside == len(agent.config.encoder.tiny_channels)  # one forward pass of the tiny CNN


def test_make_agent_explains_mismatched_observations_and_encoders():
    with pytest.raises(ValueError, match="needs pixel observations: pass the frame shape"):
        make_agent("fd", pixel_config(), 28, 5)
    with pytest.raises(ValueError, match=r"need a pixel encoder: set agent\.encoder\.name"):
        make_agent("fd", default_config("fd"), FRAME, 5)
    with pytest.raises(ValueError, match=r"frame shape \(H, W, C\)"):
        make_agent("fd", pixel_config(), (64, 64), 5)
    agent = make_agent("fd", pixel_config(), FRAME, 5)
    bad = {k: jnp.zeros((4,)) for k in ("rewards", "masks")}
    bad.update(
        observations=jnp.zeros((4, 64, 64, 3), jnp.uint8),
        next_observations=jnp.zeros((4, 64, 64, 3), jnp.uint8),
        actions=jnp.zeros((4, 5)),
    )
    with pytest.raises(ValueError, match=r"built for frames \(64, 64, 9\)"):
        agent.update(agent.init(jax.random.PRNGKey(0)), bad)
    with pytest.raises(
        ValueError, match=r"wrap the environments with fidec\.envs\.frame_stack\.stack_frames"
    ):
        agent.sample_actions(
            agent.init(jax.random.PRNGKey(0)), jnp.zeros((2, 64, 64, 3)), jax.random.PRNGKey(1)
        )
