"""Every agent's update timed in turns with its reference code's update: same settings, same batch, one run.

``fidec bench --reference DIR`` (repeatable) takes checkouts of reference code that the user obtained: the
official FD code (github.com/ARC0127/Fisher-Decorator: ``fd``, ``iso``) and seohongpark/fql (``fql``, ``iql``,
``rebrac``, ``ifql``).  Every agent whose declared reference (:class:`~fidec.agents.base.Reference`) one of them
holds is compared, by one path for all:

- its reference agent is loaded by the parity check's loader (:func:`fidec.parity.load.load_reference`: the
  checkout's modules are imported for the run and dropped from ``sys.modules`` again);
- both configs come from the parity check's :func:`~fidec.parity.check.case_configs` for the agent's first
  reference case at ``settings.reference_scale`` (the paper's 4 x 512, batch 256), so bench and parity agree on
  what "the same settings" are; an agent whose settings differ there is not timed;
- both sides get the same synthetic batch (:func:`~fidec.parity.check.make_batches`; obs 28, act 5) and are
  compiled ahead of time;
- one timed call is one cycle of the reference training loop's update calls, up to where their keyword
  arguments repeat (:func:`update_cycle`; ReBRAC: a critic-only update and a full one, as its loop alternates
  them), and as many consecutive fidec updates (whose own step makes the same alternation);
- fidec, its declared speed variants (FD: ``fisher.reuse_base_sample=true``) and the reference are timed in
  turns, window by window (:func:`~fidec.bench.timing.interleaved_rates`), so a change of the machine's load
  reaches each alike; a ratio is the median of the ratios of windows measured together, with their range
  (:func:`~fidec.bench.timing.window_ratios`);
- work is the matmul FLOP count of each side's jaxpr (:mod:`fidec.bench.flops`, a step-dependent branch
  counted as taken), and, for the reader, that of the reference's action (its agent's first mode) for the
  batch's states (the official FD and DeFlow code and FQL's compute one such action in every update for a
  logged metric only).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp

from fidec.agents import get_spec, make_agent
from fidec.agents.base import Reference, ReferenceAction
from fidec.bench.flops import matmul_flops, update_cycle_flops
from fidec.bench.settings import TARGET_REFERENCE_RATIO, BenchSettings
from fidec.bench.timing import Runner, chained, compile_timed, interleaved_rates, spread, window_ratios
from fidec.parity.check import case_configs, make_batches
from fidec.parity.load import ReferenceCode, ReferenceError, holds, load_reference
from fidec.parity.run import references


@dataclass(frozen=True)
class Prepared:
    """A compiled cycle of updates ready to time: ``runner(n)`` runs n cycles; ``row`` holds all but the rates."""

    runner: Runner
    row: dict


def load_references(paths: Sequence[str | Path]) -> dict[str, ReferenceCode]:
    """agent -> its reference agent, loaded from the first of ``paths`` that holds it; a
    :class:`~fidec.parity.load.ReferenceError` when a folder is missing or holds no agent's reference."""
    declared = references()
    roots = [Path(p).expanduser().resolve() for p in paths]
    for path, root in zip(paths, roots, strict=True):
        if not root.is_dir():
            raise ReferenceError(f"--reference {path}: no such folder; {clone_hint(declared)}")
        if not any(holds(root, r) for r in declared.values()):
            files = ", ".join(sorted({r.agent_file for r in declared.values()}))
            raise ReferenceError(
                f"--reference {path}: holds none of the reference agent files ({files}), so it is no checkout "
                f"of reference code; {clone_hint(declared)}"
            )
    codes = {}
    for agent, reference in declared.items():
        found = [root for root in roots if holds(root, reference)]
        if found:
            codes[agent] = load_reference(found[0], reference)
    return codes


def clone_hint(declared: Mapping[str, Reference]) -> str:
    repositories = sorted({r.repository for r in declared.values()})
    return "give a clone of " + " or ".join(repositories)


def update_cycle(reference: Reference, config: Any, longest: int = 16) -> list[dict]:
    """The keyword arguments of the reference's update for updates 1, 2, ... up to where they repeat: one
    cycle of its training loop's calls (``[{}]`` for most; ReBRAC with ``actor_freq`` 2: critic-only, full)."""
    calls = [dict(reference.update_kwargs(config, i)) for i in range(1, 2 * longest + 1)]
    for n in range(1, longest + 1):
        if all(calls[i] == calls[i % n] for i in range(len(calls))):
            return calls[:n]
    raise ValueError(
        f"{reference.agent_file}: its update's arguments repeat in no cycle of {longest} or fewer"
    )


def prepare_fidec(
    agent_name: str, config: Any, batch: dict, updates: int, label: str, overrides: dict
) -> Prepared:
    """fidec's update (the training loop's: draws from the state's key, then the update), ``updates``
    consecutive ones per call, compiled ahead of time."""
    obs_dim, action_dim = batch["observations"].shape[-1], batch["actions"].shape[-1]
    agent = make_agent(agent_name, config, obs_dim, action_dim)
    state = agent.init(jax.random.PRNGKey(0))
    compiled, compile_s = compile_timed(agent.update_fn, state, batch)

    def cycle(s):
        for _ in range(updates):
            s = compiled(s, batch)[0]
        return s

    flop = update_cycle_flops(agent.update_fn, state, batch, updates)
    row = {"label": label, "side": "fidec", "overrides": overrides, "compile_s": compile_s}
    return Prepared(chained(cycle, state), {**row, **_work(flop, updates)})


def prepare_reference(
    code: ReferenceCode,
    config: Any,
    batch: dict,
    calls: list[dict],
    label: str,
    action: ReferenceAction,
    kwargs: dict,
) -> Prepared:
    """The reference agent built from ``config``, its update calls of one cycle compiled ahead of time; the
    work of ``action`` (how the reference computes one of the agent's modes) for the batch's states is counted."""
    agent = code.create(0, batch["observations"][:1], batch["actions"][:1], config)
    updates: list[Callable] = []
    compile_s, flop = 0.0, 0
    for call in calls:
        update = _reference_update(call)
        compiled, seconds = compile_timed(update, agent, batch)
        updates.append(compiled)
        compile_s += seconds
        flop += matmul_flops(update, agent, batch)

    def cycle(a):
        for compiled in updates:
            a = compiled(a, batch)[0]
        return a

    act = lambda a, observations, key: getattr(a, action.method)(observations, seed=key, **kwargs)
    observations = batch["observations"]
    if action.per_state:  # the method takes one observation: the work of one, times the batch's states
        action_flop = len(observations) * matmul_flops(act, agent, observations[0], jax.random.PRNGKey(0))
    else:
        action_flop = matmul_flops(act, agent, observations, jax.random.PRNGKey(0))
    row = {
        "label": label,
        "side": "reference",
        "calls": calls,
        "compile_s": compile_s,
        **_work(flop, len(calls)),
        "action_gflop": action_flop / 1e9,
    }
    return Prepared(chained(cycle, agent), row)


def _reference_update(kwargs: dict) -> Callable:
    return lambda agent, batch: agent.update(batch, **kwargs)


def _work(flop: float, updates: int) -> dict:
    return {"updates_per_call": updates, "gflop_per_update": flop / updates / 1e9}


def _finish(prepared: Prepared, rate: dict) -> dict:
    """The row with its rates: calls/s times the updates of a call."""
    row, n = prepared.row, prepared.row["updates_per_call"]
    per_s = rate["per_s"] * n
    return {
        **row,
        "updates_per_s": per_s,
        "ms_per_update": 1e3 / per_s,
        "window_updates_per_s": [w * n for w in rate["windows"]],
        "spread": spread(rate["windows"]),
        "gflop_per_s": per_s * row["gflop_per_update"],
    }


def compare(agent: str, code: ReferenceCode, settings: BenchSettings, log: Callable[[str], None]) -> dict:
    """One agent against its reference: the settings compared and, where they agree, the rows timed in turns."""
    reference = get_spec(agent).reference
    assert reference is not None
    case = next(iter(reference.cases))
    scale = settings.reference_scale
    config, ref_config, compared = case_configs(agent, case, scale, code)
    entry: dict[str, Any] = {
        "agent": agent,
        "case": case,
        "source": reference.cases[case].source,
        "checkout": code.root.name,
        "commit": code.commit,
        "agent_file": code.agent_file,
        "agent_file_sha256": code.sha256,
        "settings_compared": compared,
    }
    differing = [c["key"] for c in compared if not c["same"]]
    if differing:
        log(f"  {agent}: not timed, its settings differ from the reference's: {', '.join(differing)}")
        return {**entry, "status": "settings differ", "differing": differing}
    batch = make_batches(1, scale.batch_size, settings.obs_dim, settings.action_dim, 0, jnp.float32)[0]
    calls = update_cycle(reference, config)
    timed = [prepare_fidec(agent, config, batch, len(calls), f"fidec {agent}", {})]
    for overrides in reference.speed_variants:
        variant, _, _ = case_configs(agent, case, scale, code, overrides=overrides)
        label = f"fidec {agent}, " + ", ".join(f"{k}={_text(v)}" for k, v in overrides.items())
        timed.append(prepare_fidec(agent, variant, batch, len(calls), label, dict(overrides)))
    label = f"{code.root.name} {reference.agent_file}"
    mode, action = next(iter(reference.actions.items()))  # the agent's first mode that the reference has
    timed.append(
        prepare_reference(code, ref_config, batch, calls, label, action, dict(action.kwargs(config)))
    )
    timed[-1].row["action_mode"] = mode
    rates = interleaved_rates(
        [t.runner for t in timed], settings.reference_windows, settings.reference_window_seconds
    )
    rows = [_finish(t, rate) for t, rate in zip(timed, rates, strict=True)]
    theirs = rates[-1]["windows"]
    for row, rate in zip(rows[:-1], rates[:-1], strict=True):
        row["vs_reference"] = window_ratios(rate["windows"], theirs)
    ratio = rows[0]["vs_reference"]
    entry.update(
        status="timed",
        rows=rows,
        meets_target=ratio["ratio"] >= TARGET_REFERENCE_RATIO,
        range_includes_1x=ratio["window_min"] <= 1.0 <= ratio["window_max"],
    )
    for row in rows:
        vs = row.get("vs_reference")
        versus = f"  {vs['ratio']:.3f}x ({vs['window_min']:.2f}-{vs['window_max']:.2f})" if vs else ""
        log(
            f"  {row['label']:48s} {row['updates_per_s']:8.2f} updates/s  {row['gflop_per_update']:6.2f} GFLOP  "
            f"compile {row['compile_s']:5.1f} s{versus}"
        )
    return entry


def _text(value: Any) -> str:
    """A setting as a command line gives it (``true``, ``0.5``)."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def reference_section(
    settings: BenchSettings,
    log: Callable[[str], None] = print,
    codes: Mapping[str, ReferenceCode] | None = None,
) -> dict:
    """Every agent whose reference ``settings.reference_dirs`` hold, against it (see the module docstring);
    ``codes``: the references already loaded (:func:`load_references`)."""
    codes = load_references(settings.reference_dirs) if codes is None else codes
    scale = settings.reference_scale
    agents, errors = [], {}
    for agent, code in codes.items():
        log(f"  {agent} against {code.root.name} {code.agent_file}")
        try:
            agents.append(compare(agent, code, settings, log))
        except Exception as exc:  # one agent's failure must not lose the others
            errors[agent] = f"{type(exc).__name__}: {exc}"
            log(f"  {agent}: failed: {errors[agent]}")
    missing = {
        agent: f"no checkout given holds {reference.agent_file} ({reference.repository})"
        for agent, reference in references().items()
        if agent not in codes
    }
    return {
        "checkouts": [
            {"folder": folder, "commit": commit}
            for folder, commit in dict.fromkeys((c.root.name, c.commit) for c in codes.values())
        ],
        "networks": f"{len(scale.hidden)} x {scale.hidden[0]}",
        "hidden": list(scale.hidden),
        "batch_size": scale.batch_size,
        "obs_dim": settings.obs_dim,
        "action_dim": settings.action_dim,
        "windows": settings.reference_windows,
        "window_seconds": settings.reference_window_seconds,
        "target_ratio": TARGET_REFERENCE_RATIO,
        "agents": agents,
        "errors": errors,
        "not_compared": missing,
        "all_meet_target": bool(agents) and all(a.get("meets_target") for a in agents) and not errors,
    }
