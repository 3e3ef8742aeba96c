"""The official FD code's update timed in turns with fidec's: same shapes, same settings, one run.

``fidec bench --reference DIR`` takes a checkout of the official code that the user obtained
(github.com/ARC0127/Fisher-Decorator) and loads its agent from ``DIR/agents/fidec.py``, with the official
code's own dependencies (fidec's ``reference`` extra: ml-collections, distrax).  The interface used is the
one its ``main.py`` uses: ``get_config()``, ``FiDecAgent.create(seed, ex_observations, ex_actions, config)``,
``agent.update(batch) -> (agent, info)`` and ``agent.sample_actions(observations, seed=key)``; the agent
file and class are parameters of :func:`load_reference`, so a checkout with the same interface and another
layout loads alike.  Nothing of that code is part of fidec: the file is loaded from DIR for the run, and the
top-level names it brings (its ``utils`` package) are taken out of ``sys.modules`` again afterwards, so they
shadow nothing.

Both sides get the same synthetic batch at the profile preset's sizes (the paper's: 4 x 512, batch 256,
M = 4 Fisher samples, K = 10 Euler steps; obs 28, act 5).  fidec runs its ``official`` preset (the
official agent's score, t, damping, M fresh samples and gradient clip); it is also timed with
``fisher.reuse_base_sample=true``.  All are compiled ahead of time, timed in turns, window by window
(:func:`~fidec.bench.timing.interleaved_rates`), so a change of the machine's load reaches each alike; the
result is the median of the ratios of windows measured together (:func:`~fidec.bench.timing.window_ratios`),
with their range.  The work of one official ``sample_actions`` call on the batch's states is counted too: the
official update calls it for the critic's next actions and once more for a logged metric (``mse``).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import jax

from fidec.agents import AgentConfig
from fidec.bench.flops import matmul_flops, xla_flops
from fidec.bench.settings import OFFICIAL_PRESET, TARGET_SPEEDUP, BenchSettings
from fidec.bench.timing import Runner, chained, compile_timed, interleaved_rates, window_ratios
from fidec.bench.update_speed import PreparedUpdate, Timed, finish_row, gflop, prepare_update
from fidec.errors import UserError

AGENT_FILE = Path("agents") / "fidec.py"  # the official FD agent, and its class
AGENT_CLASS = "FiDecAgent"
REFERENCE_HINT = "give the folder of your clone of the official FD code (git clone https://github.com/ARC0127/Fisher-Decorator)"
INSTALL_HINT = "install the official code's dependencies with `pip install 'fidec[reference]'`"


class ReferenceError(UserError):
    """``--reference DIR`` is not a usable checkout of the official FD code (the message says why)."""


@dataclass(frozen=True)
class ReferenceCode:
    """An official agent, loaded from a checkout: its folder, agent file (relative to it), module, agent
    class and the hash of the agent file."""

    root: Path
    agent_file: Path
    module: ModuleType
    agent_class: Any
    sha256: str

    def config(self) -> Any:
        return self.module.get_config()

    def create(self, seed: int, observations: Any, actions: Any, config: Any) -> Any:
        return self.agent_class.create(seed, observations, actions, config)


# Settings fidec gives the official agent: its config key -> fidec's value (agents/fidec.py get_config).
def shape_settings(config: AgentConfig) -> dict[str, Any]:
    """The sizes of the comparison, in the official config's keys: set on its config before ``create``."""
    return {
        "batch_size": config.batch_size,
        "actor_hidden_dims": tuple(config.network.actor_hidden),
        "value_hidden_dims": tuple(config.network.critic_hidden),
        "num_fisher_samples": config.fisher.num_samples,
        "flow_steps": config.flow_steps,
    }


# Settings read from both sides and compared (not set): official key -> fidec's value, docs/parity.md rows.
def compared_settings(config: AgentConfig) -> dict[str, Any]:
    return {
        "lr": config.lr,
        "discount": config.discount,
        "tau": config.tau,
        "q_agg": config.q_agg,
        "alpha": config.alpha,
        "use_lagrange": config.lagrange,
        "target_divergence": config.target_divergence,
        "normalize_q_loss": config.normalize_q_loss,
        "grad_clip": config.grad_clip,
        "fisher_t": config.fisher.t_eps,
        "fisher_damping": config.fisher.damping,
        "layer_norm": config.network.critic_layer_norm,
        "actor_layer_norm": config.network.actor_layer_norm,
    }


def _top_level_names(root: Path) -> set[str]:
    """Modules a checkout can provide at top level: its packages (folders) and .py files."""
    names = {p.stem for p in root.glob("*.py")}
    names |= {p.name for p in root.iterdir() if p.is_dir() and p.name.isidentifier()}
    return names


@contextlib.contextmanager
def _isolated_imports(root: Path) -> Iterator[None]:
    """Import with ``root`` first on ``sys.path``; afterwards drop what that put into ``sys.modules``
    under the checkout's top-level names and restore what was there (the loaded code keeps its own
    references)."""
    names = _top_level_names(root)
    own = lambda key: key.split(".")[0] in names
    saved = {k: m for k, m in sys.modules.items() if own(k)}
    for key in saved:
        del sys.modules[key]
    sys.path.insert(0, str(root))
    try:
        yield
    finally:
        sys.path.remove(str(root))
        for key in [k for k in sys.modules if own(k)]:
            del sys.modules[key]
        sys.modules.update(saved)


def load_reference(
    path: str | Path, agent_file: Path = AGENT_FILE, class_name: str = AGENT_CLASS
) -> ReferenceCode:
    """The official agent ``class_name`` of ``agent_file`` in the checkout at ``path``; a
    :class:`ReferenceError` when it is none."""
    root = Path(path).expanduser().resolve()
    if not root.is_dir():
        raise ReferenceError(f"--reference {path}: no such folder; {REFERENCE_HINT}")
    if not (root / agent_file).is_file():
        raise ReferenceError(
            f"--reference {path}: no {agent_file} there, so it is not a checkout of the official code; "
            f"{REFERENCE_HINT}"
        )
    spec = importlib.util.spec_from_file_location("fidec_reference_agent", root / agent_file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    try:
        with _isolated_imports(root):
            spec.loader.exec_module(module)
    except ModuleNotFoundError as exc:
        raise ReferenceError(
            f"--reference {path}: {agent_file} needs the module {exc.name!r}, which is not installed; "
            f"{INSTALL_HINT}"
        ) from exc
    except Exception as exc:  # their code, any failure: say where and keep one line
        raise ReferenceError(
            f"--reference {path}: importing {agent_file} failed ({type(exc).__name__}: {exc}); "
            f"check the checkout and {INSTALL_HINT}"
        ) from exc
    agent_class = getattr(module, class_name, None)
    missing = [name for name in ("create", "update", "sample_actions") if not hasattr(agent_class, name)]
    if agent_class is None or missing or not callable(getattr(module, "get_config", None)):
        raise ReferenceError(
            f"--reference {path}: {agent_file} has no get_config() and {class_name} with create, update and "
            f"sample_actions (the official agent's interface); {REFERENCE_HINT}"
        )
    sha256 = hashlib.sha256((root / agent_file).read_bytes()).hexdigest()
    return ReferenceCode(root, agent_file, module, agent_class, sha256)


def reference_config(code: ReferenceCode, config: AgentConfig) -> tuple[Any, list[dict]]:
    """The official config with fidec's sizes set, and the settings both read, side by side."""
    ref = code.config()
    sizes = shape_settings(config)
    missing = [key for key in sizes if key not in ref]
    if missing:
        raise ReferenceError(
            f"--reference {code.root}: its get_config() has no {', '.join(missing)} (the official agent's keys); "
            f"{REFERENCE_HINT}"
        )
    for key, value in sizes.items():
        ref[key] = value
    compared = [
        {"key": key, "fidec": value, "reference": _plain(ref[key]), "same": _plain(ref[key]) == value}
        for key, value in compared_settings(config).items()
        if key in ref
    ]
    return ref, compared


def _plain(value: Any) -> Any:
    """A config value as JSON-able Python (tuples from ml_collections as tuples, numbers as numbers)."""
    if isinstance(value, list | tuple):
        return tuple(value)
    return value


@dataclass(frozen=True)
class PreparedReference:
    """The official update ready to time (see :class:`~fidec.bench.update_speed.Timed`)."""

    runner: Runner
    row: dict
    flop: float


def prepare_reference(code: ReferenceCode, fidec: PreparedUpdate) -> tuple[PreparedReference, list[dict]]:
    """The official agent built at fidec's sizes, its update compiled ahead of time on fidec's batch; its row
    also counts the work of one ``sample_actions`` call on the batch's states."""
    config, compared = reference_config(code, fidec.config)
    batch = fidec.batch
    agent = code.create(0, batch["observations"][:1], batch["actions"][:1], config)
    update = lambda agent, batch: agent.update(batch)
    compiled, compile_s = compile_timed(update, agent, batch)
    flop = matmul_flops(update, agent, batch)
    sample = lambda agent, observations, key: agent.sample_actions(observations, seed=key)
    row = {
        "label": "official code",
        "networks": fidec.row["networks"],
        "compile_s": compile_s,
        "gflop_per_update": flop / 1e9,
        "xla_gflop_per_update": gflop(xla_flops(compiled)),
        "sample_actions_gflop": matmul_flops(sample, agent, batch["observations"], jax.random.PRNGKey(0))
        / 1e9,
    }
    return PreparedReference(chained(lambda a: compiled(a, batch)[0], agent), row, flop), compared


def reference_section(settings: BenchSettings, log=print, code: ReferenceCode | None = None) -> dict:
    """fidec's FD update (``official`` preset; and with ``fisher.reuse_base_sample``) against the official
    code's, at ``settings.profile_preset``, timed in turns in this process."""
    assert settings.reference_dir is not None, "the reference section needs settings.reference_dir"
    code = code or load_reference(settings.reference_dir)
    preset = settings.profile_preset
    agent, presets = settings.agent, (OFFICIAL_PRESET,)
    fidec = prepare_update(agent, preset, settings, label=f"fidec {agent}", extra_presets=presets)
    reuse = prepare_update(
        agent,
        preset,
        settings,
        overrides={"fisher.reuse_base_sample": True},
        label=f"fidec {agent}, fisher.reuse_base_sample=true",
        extra_presets=presets,
    )
    official, compared = prepare_reference(code, fidec)
    for item in compared:
        if not item["same"]:
            log(
                f"  note: {item['key']} is {item['reference']!r} in the official config, {item['fidec']!r} in fidec's"
            )
    timed: tuple[Timed, ...] = (fidec, reuse, official)
    rates = interleaved_rates(
        [p.runner for p in timed], settings.reference_windows, settings.reference_window_seconds
    )
    rows = [finish_row(p, rate, None) for p, rate in zip(timed, rates, strict=True)]
    ratio = window_ratios(rates[0]["windows"], rates[2]["windows"])
    reuse_ratio = window_ratios(rates[1]["windows"], rates[2]["windows"])
    for row in rows:
        log(
            f"  {row['label']:42s} {row['updates_per_s']:8.2f} updates/s  {row['gflop_per_update']:6.2f} GFLOP  "
            f"compile {row['compile_s']:5.1f} s"
        )
    log(
        f"  fidec / official: {ratio['ratio']:.3f}x (windows {ratio['window_min']:.2f}-{ratio['window_max']:.2f}); "
        f"with reuse_base_sample {reuse_ratio['ratio']:.3f}x"
    )
    return {
        "checkout": code.root.name,
        "agent_file": code.agent_file.as_posix(),
        "agent_file_sha256": code.sha256,
        "preset": preset,
        "fidec_presets": [preset, OFFICIAL_PRESET],
        "sizes": {
            **{k: list(v) if isinstance(v, tuple) else v for k, v in shape_settings(fidec.config).items()},
            "obs_dim": settings.obs_dim,
            "action_dim": settings.action_dim,
        },
        "settings_compared": compared,
        "windows": settings.reference_windows,
        "rows": rows,
        "speedup": ratio,
        "speedup_reuse_base_sample": reuse_ratio,
        "target_speedup": TARGET_SPEEDUP,
        "meets_target": ratio["ratio"] >= TARGET_SPEEDUP,
    }
