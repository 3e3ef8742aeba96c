"""The update-level parity check: same parameters, same batch, same random draws, same numbers.

For one agent, one of its reference cases and one scale, :func:`run_case`

1. resolves fidec's config for the case and sets the reference's config the way its script does, then compares
   every setting both name (and the values the reference hard-wires) before anything runs;
2. builds the reference agent from its own code and gives fidec the reference's initial parameters through the
   declared mapping of the two parameter trees (every leaf of both covered, shapes checked);
3. runs ``updates`` consecutive updates on different synthetic batches; each reference update's random draws are
   recorded as it makes them (:mod:`fidec.parity.record`) and fed to fidec's update through its explicit draws;
4. compares every metric both report at every update; the gradients of every parameter at the first and last
   update; the parameters, target parameters, Adam moments and step count after the first and the last update;
   and, from the reference's parameters at those points, the action of every evaluation mode both have, from the
   same observations and draws.

Errors are reported per quantity as the largest absolute difference and the largest relative one (per array,
max |fidec - reference| / max |reference|).  In float64 (JAX's x64 mode) the same computation agrees to about
1e-12; a float32 difference that vanishes in float64 is rounding, one that does not is a different computation.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from fidec.agents import Agent, AgentState, get_spec, make_agent
from fidec.agents.base import Draw, Reference
from fidec.agents.common import adam_moments, make_optimizer
from fidec.parity.load import ReferenceCode
from fidec.parity.record import DrawRecorder, RecordedDraw
from fidec.parity.trees import flatten, map_leaves, to_fidec, unflatten
from fidec.presets import resolve_agent_config

# Pass criterion in float64: relative error at most this, or absolute error at most ABS_TOL.
REL_TOL_F64 = 1e-9
ABS_TOL_F64 = 1e-12


@dataclass(frozen=True)
class Scale:
    """The network sizes and batch of a comparison."""

    name: str
    hidden: tuple[int, ...]
    batch_size: int


SCALES = {
    "paper": Scale("paper", (512, 512, 512, 512), 256),
    "cpu": Scale("cpu", (256, 256), 128),
}


class ParityError(ValueError):
    """The comparison cannot run (a setting differs, a draw is missing, the trees do not map)."""


@dataclass
class Errors:
    """Largest absolute and relative differences seen for one quantity."""

    abs: float = 0.0
    rel: float = 0.0

    def add(self, fidec: Any, reference: Any) -> None:
        a = np.asarray(fidec, np.float64)
        b = np.asarray(reference, np.float64)
        if a.shape != b.shape:
            a = np.broadcast_to(a, b.shape) if a.size == 1 else a.reshape(b.shape)
        diff = float(np.max(np.abs(a - b))) if a.size else 0.0
        scale = float(np.max(np.abs(b))) if b.size else 0.0
        if not (math.isfinite(diff) and math.isfinite(scale)):
            diff = math.inf
        self.abs = max(self.abs, diff)
        self.rel = max(self.rel, diff / scale if scale > 0 else (0.0 if diff == 0 else math.inf))

    def passes(self) -> bool:
        return self.rel <= REL_TOL_F64 or self.abs <= ABS_TOL_F64

    def as_dict(self) -> dict[str, float]:
        return {"abs": self.abs, "rel": self.rel}


@dataclass
class Comparison:
    """Errors by quantity name, in the order first seen."""

    quantities: dict[str, Errors] = field(default_factory=dict)

    def add(self, name: str, fidec: Any, reference: Any) -> None:
        self.quantities.setdefault(name, Errors()).add(fidec, reference)

    def as_dict(self) -> dict[str, dict[str, float]]:
        return {k: v.as_dict() for k, v in self.quantities.items()}


# -- settings -----------------------------------------------------------------------------------------------


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, tuple | list) or isinstance(b, tuple | list):
        return (
            isinstance(a, tuple | list)
            and isinstance(b, tuple | list)
            and len(a) == len(b)
            and all(_same(x, y) for x, y in zip(a, b, strict=True))
        )
    if isinstance(a, bool) or isinstance(b, bool) or a is None or b is None or isinstance(a, str):
        return a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
    return bool(a == b)


def _plain(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def dotted(config: Any, key: str) -> Any:
    for part in key.split("."):
        config = getattr(config, part)
    return config


def case_configs(
    agent: str,
    case: str,
    scale: Scale,
    code: ReferenceCode,
    reference: Reference | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> tuple[Any, Any, list[dict]]:
    """(fidec config, reference config, settings compared) for a case at a scale; ``overrides`` (dotted keys)
    change fidec's config last (e.g. a speed variant: the comparison then shows what it changes)."""
    reference = reference or _reference(agent)
    spec = reference.cases[case]
    sizes = {
        "network.actor_hidden": scale.hidden,
        "network.critic_hidden": scale.hidden,
        "batch_size": scale.batch_size,
    }
    config = resolve_agent_config(
        agent, spec.env, presets=spec.presets, overrides={**spec.overrides, **sizes, **(overrides or {})}
    )
    ref_config = code.config()
    flags = {
        **dict(spec.flags),
        "actor_hidden_dims": scale.hidden,
        "value_hidden_dims": scale.hidden,
        "batch_size": scale.batch_size,
    }
    unknown = [k for k in flags if k not in ref_config]
    if unknown:
        raise ParityError(f"the reference config of {reference.agent_file} has no key(s) {unknown}")
    for key, value in flags.items():
        ref_config[key] = value
    compared = []
    for key, value in reference.settings(config).items():
        if key not in ref_config:
            raise ParityError(f"the reference config of {reference.agent_file} has no key {key!r}")
        theirs = ref_config[key]
        compared.append(
            {"key": key, "fidec": _plain(value), "reference": _plain(theirs), "same": _same(value, theirs)}
        )
    for key, value in reference.fixed.items():
        ours = dotted(config, key)
        compared.append(
            {
                "key": f"fidec {key} (fixed in the reference code)",
                "fidec": _plain(ours),
                "reference": _plain(value),
                "same": _same(ours, value),
            }
        )
    return config, ref_config, compared


def _reference(agent: str) -> Reference:
    reference = get_spec(agent).reference
    if reference is None:
        raise ParityError(f"agent {agent!r} has no reference code to compare with")
    return reference


# -- batches and draws --------------------------------------------------------------------------------------


def make_batches(count: int, batch_size: int, obs_dim: int, action_dim: int, seed: int, dtype) -> list[dict]:
    """``count`` different synthetic transition batches (with ``next_actions``), drawn by NumPy from ``seed``."""
    rng = np.random.default_rng(seed)
    batches = []
    for _ in range(count):
        actions = rng.uniform(-0.999, 0.999, (batch_size, action_dim))
        batch = {
            "observations": rng.normal(size=(batch_size, obs_dim)),
            "actions": actions,
            "rewards": -(rng.uniform(size=batch_size) < 0.9).astype(float),
            "masks": (rng.uniform(size=batch_size) < 0.95).astype(float),
            "next_observations": rng.normal(size=(batch_size, obs_dim)),
            "next_actions": np.roll(actions, -1, axis=0),
        }
        batches.append({k: jnp.asarray(v, dtype) for k, v in batch.items()})
    return batches


def assign_draws(
    recorded: list[RecordedDraw], names: Iterable[str | None], wanted: Mapping[str, Draw], where: str
) -> dict[str, jax.Array]:
    """fidec's draws from the reference's recorded ones: the i-th recorded draw is fidec's ``names[i]`` (None:
    skipped), reshaped to fidec's declared shape; its distribution must be the declared one."""
    names = list(names)
    if len(recorded) != len(names):
        raise ParityError(
            f"{where}: the reference made {len(recorded)} random draws "
            f"{[(d.kind, d.shape) for d in recorded]}, the agent's reference declares {len(names)} ({names})"
        )
    draws = {}
    for draw, name in zip(recorded, names, strict=True):
        if name is None:
            continue
        if name not in wanted:
            raise ParityError(f"{where}: fidec makes no draw {name!r} (it makes {sorted(wanted)})")
        spec = wanted[name]
        if draw.value.size != math.prod(spec.shape):
            raise ParityError(
                f"{where}: draw {name!r} has {draw.value.shape} in the reference, {spec.shape} in fidec"
            )
        if draw.kind != spec.kind or not (_same(draw.low, spec.low) and _same(draw.high, spec.high)):
            raise ParityError(
                f"{where}: draw {name!r} is {draw.kind}[{draw.low}, {draw.high}] in the reference, "
                f"{spec.kind}[{spec.low}, {spec.high}] in fidec"
            )
        draws[name] = jnp.asarray(draw.value.reshape(spec.shape))
    missing = sorted(set(wanted) - set(draws))
    if missing:
        raise ParityError(f"{where}: fidec needs the draws {missing}, which the reference did not make")
    return draws


def stacked(per_state: list[list[RecordedDraw]]) -> list[RecordedDraw]:
    """Draws of per-state calls stacked along a new leading (state) axis, draw by draw."""
    counts = {len(d) for d in per_state}
    if len(counts) != 1:
        raise ParityError(f"per-state reference calls made different numbers of draws: {sorted(counts)}")
    out = []
    for i in range(counts.pop()):
        first = per_state[0][i]
        value = np.stack([d[i].value for d in per_state])
        out.append(RecordedDraw(first.kind, value.shape, first.low, first.high, value))
    return out


def cast_floats(tree: Any, dtype) -> Any:
    """``tree`` with every floating-point leaf cast to ``dtype`` (integers, e.g. step counts, kept)."""
    return jax.tree.map(
        lambda x: jnp.asarray(x, dtype) if jnp.issubdtype(jnp.asarray(x).dtype, jnp.floating) else x, tree
    )


# -- state mapping ------------------------------------------------------------------------------------------


def fidec_tree(state: AgentState) -> dict[str, Any]:
    return flatten({"params": state.params, "target_params": state.target_params})


def state_from_reference(
    agent: Agent, template: AgentState, ref_params: Any, pairs: list[tuple[str, str]], dtype
) -> AgentState:
    """A fidec state holding the reference's parameters and targets, a fresh optimiser state, step 0."""
    flat = to_fidec(flatten(ref_params), fidec_tree(template), pairs)
    tree = unflatten({k: jnp.asarray(v, dtype) for k, v in flat.items()})
    params, targets = tree["params"], tree.get("target_params", {})
    return template.replace(
        params=params,
        target_params=targets,
        opt_state=make_optimizer(agent.config).init(params),
        step=jnp.zeros((), jnp.int32),
    )


def with_params(state: AgentState, ref_params: Any, pairs: list[tuple[str, str]], dtype) -> AgentState:
    flat = to_fidec(flatten(ref_params), fidec_tree(state), pairs)
    tree = unflatten({k: jnp.asarray(v, dtype) for k, v in flat.items()})
    return state.replace(params=tree["params"], target_params=tree.get("target_params", {}))


def group_of(fidec_path: str) -> str:
    """``params/critic/params/...`` -> ``critic``; ``target_params/actor/...`` -> ``target actor``."""
    parts = fidec_path.split("/")
    return parts[1] if parts[0] == "params" else f"target {parts[1]}"


# -- comparisons --------------------------------------------------------------------------------------------


def compare_metrics(
    out: Comparison, fidec: Mapping[str, Any], reference: Mapping[str, Any], names: Mapping[str, Any]
) -> None:
    for ref_key, ours in names.items():
        if ref_key not in reference:
            continue  # e.g. the actor's metrics of a critic-only ReBRAC update
        value = (
            sum(np.asarray(fidec[k]) for k in ours) if isinstance(ours, tuple) else np.asarray(fidec[ours])
        )
        out.add(f"metric {ref_key}", value, np.squeeze(np.asarray(reference[ref_key])))


def compare_state(
    out: Comparison, state: AgentState, ref_network: Any, pairs: list[tuple[str, str]], prefix: str
) -> None:
    """Parameters, targets, Adam moments (and their count) of fidec's state against the reference's."""
    ref_flat = flatten(ref_network.params)
    ours = fidec_tree(state)
    for a, b in pairs:
        kind = "target" if b.startswith("target_params/") else "parameters"
        out.add(f"{prefix} {kind} {group_of(b).removeprefix('target ')}", ours[b], ref_flat[a])
    count, mu, nu = adam_moments(state.opt_state, state.params)
    ref_adam = _reference_adam(ref_network.opt_state)
    ref_mu, ref_nu = flatten(ref_adam.mu), flatten(ref_adam.nu)
    mu_flat, nu_flat = flatten({"params": mu}), flatten({"params": nu})
    for a, b in pairs:
        if b.startswith("params/"):
            group = group_of(b)
            out.add(f"{prefix} Adam first moment {group}", mu_flat[b], ref_mu[a])
            out.add(f"{prefix} Adam second moment {group}", nu_flat[b], ref_nu[a])
        else:  # the reference's Adam also holds its targets, which must never receive a gradient
            out.add(f"{prefix} Adam moments of the reference's targets (must stay 0)", 0.0, ref_mu[a])
            out.add(f"{prefix} Adam moments of the reference's targets (must stay 0)", 0.0, ref_nu[a])
    out.add(f"{prefix} Adam step count", count, ref_adam.count)


def _reference_adam(opt_state: Any) -> Any:
    found = [
        s
        for s in jax.tree.leaves(opt_state, is_leaf=lambda x: isinstance(x, optax.ScaleByAdamState))
        if isinstance(s, optax.ScaleByAdamState)
    ]
    if len(found) != 1:
        raise ParityError(f"expected one Adam state in the reference's optimiser, found {len(found)}")
    return found[0]


def compare_gradients(
    out: Comparison, grads: Mapping[str, Any], ref_grads: Any, pairs: list[tuple[str, str]], prefix: str
) -> None:
    ours = flatten({"params": grads})
    theirs = flatten(ref_grads)
    for a, b in pairs:
        if b.startswith("params/"):
            out.add(f"{prefix} gradient {group_of(b)}", ours[b], theirs[a])
        else:
            out.add(f"{prefix} gradient into the reference's targets (must be 0)", 0.0, theirs[a])


# -- one case -----------------------------------------------------------------------------------------------


def run_case(
    agent_name: str,
    case: str,
    scale: Scale,
    code: ReferenceCode,
    recorder: DrawRecorder,
    updates: int = 100,
    seed: int = 0,
    obs_dim: int = 28,
    action_dim: int = 5,
    num_states: int = 8,
    log: Callable[[str], None] = lambda line: None,
    reference: Reference | None = None,
) -> dict[str, Any]:
    """Compare fidec's agent with its reference on one case at one scale (see the module docstring);
    ``reference`` replaces the agent's declared one (tests)."""
    reference = reference or _reference(agent_name)
    dtype = jnp.float64 if jax.config.read("jax_enable_x64") else jnp.float32
    config, ref_config, compared = case_configs(agent_name, case, scale, code, reference)
    result: dict[str, Any] = {
        "agent": agent_name,
        "case": case,
        "scale": scale.name,
        "networks": f"{len(scale.hidden)} x {scale.hidden[0]}",
        "batch_size": scale.batch_size,
        "precision": "float64" if dtype == jnp.float64 else "float32",
        "updates": updates,
        "obs_dim": obs_dim,
        "action_dim": action_dim,
        "source": reference.cases[case].source,
        "settings": compared,
        "differences": list(reference.differences),
    }
    differing = [c["key"] for c in compared if not c["same"]]
    if differing:
        result.update(status="settings differ", failures=differing)
        return result

    batches = make_batches(updates, scale.batch_size, obs_dim, action_dim, seed, dtype)
    first = batches[0]
    ref_agent = code.create(seed, first["observations"][:1], first["actions"][:1], ref_config)
    # Flax keeps parameters in float32 unless told otherwise: in x64 mode the reference's parameters and
    # optimiser state are made float64 too, so that its whole computation runs in the precision compared.
    network = ref_agent.network
    ref_agent = ref_agent.replace(
        network=network.replace(
            params=cast_floats(network.params, dtype), opt_state=cast_floats(network.opt_state, dtype)
        )
    )
    agent = make_agent(agent_name, config, obs_dim, action_dim)
    template = agent.init(jax.random.PRNGKey(seed))
    pairs = map_leaves(flatten(ref_agent.network.params), fidec_tree(template), reference.params)
    state = state_from_reference(agent, template, ref_agent.network.params, pairs, dtype)
    wanted = agent.update_draws(scale.batch_size)
    update = jax.jit(agent.update_with_draws)
    gradients = jax.jit(lambda s, b, d: agent.spec.gradients(agent.config, agent.networks, s, b, d))

    per_step = Comparison()
    at: dict[str, Comparison] = {"first": Comparison(), "last": Comparison()}
    checkpoints: dict[int, list[str]] = {}
    for step, name in ((1, "first"), (updates, "last")):
        checkpoints.setdefault(step, []).append(name)
    for i, batch in enumerate(batches, start=1):
        kwargs = dict(reference.update_kwargs(config, i))
        points = checkpoints.get(i, [])
        if points:
            rng = jax.random.split(ref_agent.rng)[1]  # the key the reference's update hands to total_loss
            with recorder.listen() as grad_draws:
                ref_grads = jax.grad(
                    lambda p, a=ref_agent, b=batch, r=rng, k=kwargs: a.total_loss(b, p, rng=r, **k)[0]
                )(ref_agent.network.params)
        with recorder.listen() as recorded:
            ref_agent, ref_info = ref_agent.update(batch, **kwargs)
        draws = assign_draws(recorded, reference.update_draws(config), wanted, f"update {i}")
        if points:
            if [d.value.tobytes() for d in grad_draws] != [d.value.tobytes() for d in recorded]:
                raise ParityError("the reference's total_loss drew other numbers than its update")
            grads, _ = gradients(state, batch, draws)
            for point in points:
                compare_gradients(at[point], grads, ref_grads, pairs, "")
        state, info = update(state, batch, draws)
        compare_metrics(per_step, info, ref_info, reference.metrics)
        for point in points:
            compare_metrics(at[point], info, ref_info, reference.metrics)
            compare_state(at[point], state, ref_agent.network, pairs, "")
        if points:
            actions = Comparison()
            compare_actions(
                actions, agent, state, ref_agent, pairs, reference, batch, num_states, recorder, dtype
            )
            for point in points:
                at[point].quantities.update(actions.quantities)
        if i % 25 == 0:
            log(f"    {agent_name} {case} {scale.name} {result['precision']}: update {i}/{updates}")
    result["first_update"] = at["first"].as_dict()
    result["last_update"] = at["last"].as_dict()
    result["metrics_every_update"] = per_step.as_dict()
    failing = sorted(
        name
        for comparison in (*at.values(), per_step)
        for name, errors in comparison.quantities.items()
        if not errors.passes()
    )
    result["failing_at_float64_tolerance"] = failing
    result["status"] = "compared"
    return result


def compare_actions(
    out: Comparison,
    agent: Agent,
    state: AgentState,
    ref_agent: Any,
    pairs: list[tuple[str, str]],
    reference: Reference,
    batch: Mapping[str, Any],
    num_states: int,
    recorder: DrawRecorder,
    dtype,
) -> None:
    """The action of every mode both have, from the reference's current parameters, the batch's first
    observations and the reference's draws."""
    state = with_params(state, ref_agent.network.params, pairs, dtype)
    observations = batch["observations"][:num_states]
    for mode, how in reference.actions.items():
        kwargs = dict(how.kwargs(agent.config))
        method = getattr(ref_agent, how.method)
        keys = jax.random.split(jax.random.PRNGKey(7), num_states)
        if how.per_state:
            actions, draws_per_state = [], []
            for s in range(num_states):
                with recorder.listen() as recorded:
                    actions.append(np.asarray(method(observations[s], seed=keys[s], **kwargs)))
                draws_per_state.append(recorded)
            ref_actions = np.stack(actions)
            recorded_draws = stacked(draws_per_state)
        else:
            with recorder.listen() as recorded_draws:
                ref_actions = np.asarray(method(observations, seed=keys[0], **kwargs))
        draws = assign_draws(
            recorded_draws, how.draws, agent.action_draws(num_states, mode), f"action {mode}"
        )
        ours = agent.act_with_draws(state, observations, draws, mode)
        out.add(f"action {mode}", ours, ref_actions)
