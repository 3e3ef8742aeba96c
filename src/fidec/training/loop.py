"""``train(config) -> RunResult``: the offline phase, the optional online phase, evaluation, checkpoints.

The run advances in blocks that end at every multiple of ``log_interval`` (and at the end of each
phase).  After each block, in this order: train metrics are written, the seeds are evaluated when an
evaluation is due, a checkpoint is saved when one is due, and a pending Ctrl-C is honoured.  A
checkpoint at step k therefore implies that every metrics row up to k is on disk, and resuming from it
cuts the metrics files back to k: an interrupted and resumed run ends with the same parameters and the
same metrics files as an uninterrupted one (bitwise, on the same machine and mode).

Offline, a block is one jitted scan of updates (see :mod:`fidec.training.blocks`).  Online, each
environment step is one jitted call that inserts the last transition, updates once and picks the next
action; the environments step on the host.
"""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from fidec.agents import REGISTRY, Agent
from fidec.atomic import write_json_atomic
from fidec.config import ConfigError, to_dict
from fidec.data import Dataset
from fidec.data.dataset import clip_actions
from fidec.training import blocks
from fidec.training.checkpoint import (
    Checkpoint,
    flatten_tree,
    list_checkpoints,
    load_latest_checkpoint,
    save_checkpoint,
    unflatten_tree,
)
from fidec.training.config import TrainConfig, check_consistency
from fidec.training.evaluation import Evaluator, evaluate_seeds, score_metric
from fidec.training.logging import OptionalLoggers, Progress, RunLogger, TextLog
from fidec.training.online import EnvFactory, OnlineEnvs
from fidec.training.plots import plot_learning_curves
from fidec.training.programs import cached_agent, cached_programs
from fidec.training.replay import empty_buffer, filled_rows, online_capacity, restore_rows
from fidec.training.rundir import (
    RESUMABLE_KEYS,
    RunDirError,
    RunPaths,
    create_run_dir,
    default_run_dir,
    read_config,
    write_config,
)
from fidec.training.summary import build_summary, format_summary


class NonFiniteError(RuntimeError):
    """A loss or parameter became NaN/inf; the message names the step, the metric and the last good checkpoint."""


class RunInterrupted(Exception):
    """Ctrl-C: the run saved a checkpoint at ``step`` and stopped; resume it with ``fidec train --resume``."""

    def __init__(self, run_dir: Path, step: int):
        super().__init__(
            f"interrupted at step {step}; checkpoint saved. Resume with: fidec train --resume {run_dir}"
        )
        self.run_dir = run_dir
        self.step = step


@dataclass
class RunResult:
    """What :func:`train` returns: where the run is, its summary, and the final per-seed states."""

    run_dir: Path
    config: TrainConfig
    summary: dict
    states: list[blocks.TrainState]
    agent: Agent = field(repr=False)


@contextmanager
def _sigint_flag():
    """While active, a first Ctrl-C only sets ``flag['set']`` (the run stops after the block); a second one aborts."""
    flag = {"set": False}
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum, frame):
        if flag["set"]:
            signal.signal(signal.SIGINT, previous)
            raise KeyboardInterrupt
        flag["set"] = True

    signal.signal(signal.SIGINT, handler)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)


def _next_boundary(step: int, interval: int, end: int) -> int:
    return min((step // interval + 1) * interval, end)


def _is_multiple(step: int, interval: int) -> bool:
    return interval > 0 and step % interval == 0


def load_training_data(config: TrainConfig) -> Dataset:
    """The run's training set (generated and cached first when allowed and missing)."""
    from fidec.data import load_dataset

    train_set, _ = load_dataset(
        config.env,
        dataset_dir=config.dataset_dir,
        generate_if_missing=config.generate_dataset,
        episodes=config.dataset_episodes,
        dataset_path=config.dataset,
        generation_workers=os.cpu_count() or 1,
    )
    if hasattr(train_set, "with_frame_stack"):  # pixel datasets stack frames when a batch is drawn
        train_set = train_set.with_frame_stack(config.agent.encoder.frame_stack)
    return train_set


class _Run:
    """One training session (fresh or resumed); :func:`train` is its public face."""

    def __init__(
        self,
        config: TrainConfig,
        resume: bool,
        dataset: Dataset | None,
        evaluator: Evaluator | None,
        env_factory: EnvFactory | None,
        console: bool,
    ):
        self.session_start = time.perf_counter()
        self.config = check_consistency(config)
        self.evaluator = evaluator
        self.env_factory = env_factory
        if (dataset is None or evaluator is None) and config.total_steps > 0:
            from fidec.envs import parse_task

            parse_task(config.env)  # unknown names fail here, listing the valid ones
        modes = REGISTRY[config.agent_name].MODES
        if config.action_mode not in modes:
            raise ConfigError(
                f"agent {config.agent_name!r} supports action modes {list(modes)}, not {config.action_mode!r} "
                "(set eval_action_mode or agent.action_mode)"
            )
        root = Path(config.run_dir) if config.run_dir else default_run_dir(config)
        if resume:
            if not (root / "config.json").exists():
                raise RunDirError(f"cannot resume {root}: it is not a fidec run directory (no config.json)")
            self.paths = RunPaths(root)
        else:
            self.paths = create_run_dir(root)
        self.config = replace(self.config, run_dir=str(root))
        self.text = TextLog(self.paths.log, console)
        self.timing = {
            "data_seconds": 0.0,
            "train_seconds": 0.0,
            "eval_seconds": 0.0,
            "checkpoint_seconds": 0.0,
        }
        self.timed_updates = 0
        self.timed_update_seconds = 0.0

        start = time.perf_counter()
        injected = dataset is not None
        if dataset is None:
            self.text.write(f"loading the dataset of {config.env}", echo=True)
            dataset = load_training_data(self.config)
        self.timing["data_seconds"] = time.perf_counter() - start
        if config.action_clip_eps is not None:
            dataset = clip_actions(dataset, config.action_clip_eps)
        self.dataset = dataset
        self.agent = cached_agent(config.agent_name, config.agent, dataset.obs_dim, dataset.action_dim)
        if not resume:
            write_config(
                self.paths,
                self.config,
                obs_dim=dataset.obs_dim,
                action_dim=dataset.action_dim,
                dataset_size=dataset.size,
                dataset="in-memory" if injected else config.dataset,
            )
        self.metric = score_metric(config.env)
        vmapped = config.vmap_seeds and len(config.seeds) > 1
        self.programs = cached_programs(
            config.agent_name, config.agent, dataset.obs_dim, dataset.action_dim, vmapped
        )
        self.seed_map = self.programs.seed_map
        self.data = dataset.to_device()
        self.sigint = {"set": False}
        self.last_saved = -1
        self.envs: OnlineEnvs | None = None
        self.pending_actions: np.ndarray | None = None
        self.ring_capacity = 0
        self.previous_timing: dict[str, float] = {}
        self.eval_envs: list | None = None
        self.reported_diagnostics: set[str] = set()

    # ------------------------------------------------------------------ state, checkpoints

    def fresh_states(self):
        return self.seed_map.from_list(
            [blocks.new_train_state(self.agent.init, s) for s in self.config.seeds]
        )

    def save(self, states, step: int, phase: str) -> None:
        start = time.perf_counter()
        arrays: dict[str, np.ndarray] = {}
        meta: dict[str, Any] = {
            "phase": phase,
            "seeds": list(self.config.seeds),
            "agent": self.config.agent_name,
            "env": self.config.env,
            "timing": self._cumulative_timing(),
        }
        if phase == "online":
            containers = self.seed_map.to_list(states)
            filled = min(step - self.config.steps, self.ring_capacity)
            rows = [jax.device_get(filled_rows(s.replay, filled)) for s in containers]
            for k in rows[0]:
                arrays[f"replay_rows/{k}"] = np.stack([r[k] for r in rows])
            states = self.seed_map.from_list(
                [s.replace(replay=s.replay.replace(data=None)) for s in containers]
            )
            arrays.update({f"envs/{k}": v for k, v in self.envs.to_arrays().items()})
            arrays["pending_actions"] = np.asarray(self.pending_actions)
            meta["ring_capacity"] = self.ring_capacity
        meta["offline_steps"] = self.config.steps
        arrays.update(flatten_tree(self.seed_map.to_host(states), "state"))
        save_checkpoint(self.paths.checkpoints, step, arrays, meta, self.config.keep_checkpoints)
        self.last_saved = step
        self.timing["checkpoint_seconds"] += time.perf_counter() - start

    def restore(self, checkpoint: Checkpoint):
        """States (and, in the online phase, environments and pending actions) from a checkpoint."""
        if list(checkpoint.meta.get("seeds", [])) != list(self.config.seeds):
            raise RunDirError(
                f"checkpoint seeds {checkpoint.meta.get('seeds')} differ from the config's {list(self.config.seeds)}"
            )
        online = checkpoint.meta["phase"] == "online"
        template = blocks.state_template(self.agent.init, len(self.config.seeds), with_replay=online)
        host = unflatten_tree(template, checkpoint.arrays, "state")
        states = self.seed_map.from_host(host)
        if online:
            self.ring_capacity = int(checkpoint.meta["ring_capacity"])
            rows = {
                k.split("/", 1)[1]: v for k, v in checkpoint.arrays.items() if k.startswith("replay_rows/")
            }
            containers = self.seed_map.to_list(states)
            restored = []
            for i, s in enumerate(containers):
                ring = empty_buffer(self.data, self.ring_capacity)
                ring = restore_rows(ring, {k: v[i] for k, v in rows.items()})
                restored.append(s.replace(replay=ring.replace(pointer=s.replay.pointer, size=s.replay.size)))
            states = self.seed_map.from_list(restored)
            self.envs = OnlineEnvs(self.config.env, self.config.seeds, self.env_factory, self._warn)
            self.envs.restore(
                {k.split("/", 1)[1]: v for k, v in checkpoint.arrays.items() if k.startswith("envs/")}
            )
            self.pending_actions = np.asarray(checkpoint.arrays["pending_actions"])
        self.previous_timing = checkpoint.meta.get("timing", {})
        return states

    def _warn(self, message: str) -> None:
        self.text.write(message, echo=True)

    def _cumulative_timing(self) -> dict[str, float]:
        previous = self.previous_timing
        now = {**self.timing, "wall_time_s": time.perf_counter() - self.session_start}
        now["timed_updates"] = self.timed_updates
        now["timed_update_seconds"] = self.timed_update_seconds
        return {k: float(previous.get(k, 0.0)) + float(v) for k, v in now.items()}

    # ------------------------------------------------------------------ per-block bookkeeping

    def _per_seed_summary(self, summary) -> list[dict]:
        host = jax.device_get(summary)
        if not self.seed_map.vmapped and isinstance(host, list):
            return host
        return [jax.tree.map(lambda x, i=i: x[i], host) for i in range(len(self.config.seeds))]

    def _check_finite(self, step: int, summaries: list[dict]) -> None:
        """Stop on a non-finite loss or parameter; a non-finite diagnostic metric is only reported.

        Losses are the metrics named ``*loss*``; diagnostics such as the Fisher condition number can
        legitimately overflow for nearly singular metrics without harming training.
        """
        for seed, s in zip(self.config.seeds, summaries, strict=True):
            nonfinite = {k: int(v) for k, v in s["first_nonfinite"].items() if int(v) >= 0}
            losses = {k: v for k, v in nonfinite.items() if "loss" in k}
            for k in sorted(set(nonfinite) - set(losses) - self.reported_diagnostics):
                self.reported_diagnostics.add(k)
                self._warn(
                    f"note: diagnostic metric '{k}' is non-finite from step {nonfinite[k]} (training goes on)"
                )
            if not losses and bool(s["params_finite"]):
                continue
            if losses:
                name, first = min(losses.items(), key=lambda kv: (kv[1], kv[0]))
                others = sorted(k for k in losses if k != name)
                what = f"loss '{name}' became non-finite at step {first}"
                what += f" (also: {', '.join(others)})" if others else ""
            else:
                what = f"parameters became non-finite in the block ending at step {step}"
            kept = (
                f"the last good checkpoint is step {self.last_saved} in {self.paths.checkpoints}"
                if self.last_saved >= 0
                else "no checkpoint had been saved yet"
            )
            message = (
                f"training stopped: seed {seed}: {what}; {kept}. Lower the learning rate, check the "
                "dataset's rewards/observations, or resume with a changed config in a new run."
            )
            self.text.write(message, echo=True)
            raise NonFiniteError(message)

    def after_block(
        self, states, step: int, phase: str, summaries: list[dict], extra: list[dict] | None = None
    ):
        """Write train rows, evaluate, checkpoint and honour Ctrl-C, in that order (see the module docstring)."""
        per_seed = {}
        for i, (seed, s) in enumerate(zip(self.config.seeds, summaries, strict=True)):
            per_seed[seed] = {k: float(v) for k, v in sorted(s["mean"].items())}
            if extra:
                per_seed[seed].update(extra[i])
        self.logger.train(step, phase, per_seed)
        self._check_finite(step, summaries)

        phase_end = step in (self.config.steps, self.config.total_steps)
        postfix = {}
        if self.config.eval_episodes > 0 and (_is_multiple(step, self.config.eval_interval) or phase_end):
            score = self.evaluate(states, step, phase)
            if score is not None:
                postfix["eval"] = f"{score:.3f}"
        if _is_multiple(step, self.config.save_interval) or phase_end:
            self.save(states, step, phase)
        self.progress.advance(step - self.progress_step, **postfix)
        self.progress_step = step
        rate = (
            self.timed_updates / self.timed_update_seconds if self.timed_update_seconds > 0 else float("nan")
        )
        keys = [
            k
            for k in ("critic_loss", "actor_loss", "bc_loss", "penalty", "alpha")
            if k in per_seed[self.config.seeds[0]]
        ]
        shown = ", ".join(f"{k}={per_seed[self.config.seeds[0]][k]:.4g}" for k in keys)
        self.text.write(
            f"step {step}/{self.config.total_steps} [{phase}] {rate:.1f} updates/s/seed | seed {self.config.seeds[0]}: {shown}"
        )
        if self.sigint["set"]:
            if self.last_saved != step:
                self.save(states, step, phase)
            self.text.write(f"interrupted at step {step}; checkpoint saved", echo=True)
            raise RunInterrupted(self.paths.root, step)

    def evaluate(self, states, step: int, phase: str) -> float | None:
        start = time.perf_counter()
        agent_states = [self.seed_map.select(states, i).agent for i in range(len(self.config.seeds))]
        if self.evaluator is None and self.eval_envs is None:  # built once, reused by every evaluation
            from fidec.envs import make_eval_envs
            from fidec.envs.evaluate import DEFAULT_NUM_ENVS

            count = min(self.config.eval_episodes, self.config.eval_num_envs or DEFAULT_NUM_ENVS)
            self.eval_envs = make_eval_envs(self.config.env, count, seed=0)
            encoder = self.config.agent.encoder
            if encoder.pixels:
                from fidec.data.visual import stack_frames

                self.eval_envs = stack_frames(self.eval_envs, encoder.frame_stack)
        results = evaluate_seeds(
            self.agent,
            agent_states,
            self.config.seeds,
            self.config.env,
            step,
            self.config.eval_episodes,
            self.config.action_mode,
            evaluator=self.evaluator,
            num_envs=self.config.eval_num_envs,
            envs=self.eval_envs,
        )
        self.logger.eval(step, phase, results)
        self.timing["eval_seconds"] += time.perf_counter() - start
        scores = [r.get(self.metric) for r in results.values() if r.get(self.metric) is not None]
        mean = float(np.mean(scores)) if scores else None
        shown = "n/a" if mean is None else f"{mean:.3f}"
        self.text.write(
            f"eval at step {step}: {self.metric} {shown} (mean over {len(results)} seed(s), "
            f"{self.config.eval_episodes} episodes each, {time.perf_counter() - start:.1f} s)",
            echo=True,
        )
        return mean

    # ------------------------------------------------------------------ phases

    def offline_phase(self, states, step: int):
        config = self.config
        first_block = True
        while step < config.steps:
            end = _next_boundary(step, config.log_interval, config.steps)
            n = end - step
            block = self.programs.offline_block(n, self.data)
            start = time.perf_counter()
            states, summary = block(states, self.data, jnp.int32(step))
            summaries = self._per_seed_summary(summary)
            seconds = time.perf_counter() - start
            self.timing["train_seconds"] += seconds
            if not first_block or end == config.steps:  # the first block includes compilation
                self.timed_updates += n
                self.timed_update_seconds += seconds
            first_block = False
            step = end
            self.after_block(states, step, "offline", summaries)
        return states, step

    def online_phase(self, states, step: int, resumed_online: bool):
        config = self.config
        if not resumed_online:
            self.ring_capacity = online_capacity(
                config.replay_capacity, self.dataset.size, config.online_steps
            )
            self.text.write(
                f"online phase: {config.online_steps} environment steps, replay = dataset ({self.dataset.size} rows, "
                f"shared) + {self.ring_capacity} online rows per seed",
                echo=True,
            )
            self.envs = OnlineEnvs(config.env, config.seeds, self.env_factory, self._warn)
            ring = empty_buffer(self.data, self.ring_capacity)
            states = self.seed_map.from_list([s.replace(replay=ring) for s in self.seed_map.to_list(states)])
            states, actions = self.programs.first_action()(states, self.envs.observations)
            self.pending_actions = self._host_actions(actions)
        names = self.programs.metric_names(self.data)
        step_fn = self.programs.online_step()
        summarize = self.programs.online_summary()
        acc = self.seed_map.from_list([blocks.empty_accumulator(list(names)) for _ in config.seeds])
        first_block = True
        while step < config.total_steps:
            end = _next_boundary(step, config.log_interval, config.total_steps)
            start, block_start = time.perf_counter(), step
            while step < end:
                transitions, next_observations = self.envs.step(self.pending_actions)
                step += 1
                states, acc, actions = step_fn(
                    states, acc, self.data, transitions, next_observations, jnp.int32(step)
                )
                self.pending_actions = self._host_actions(actions)
            acc, summary = summarize(states, acc)
            summaries = self._per_seed_summary(summary)
            seconds = time.perf_counter() - start
            self.timing["train_seconds"] += seconds
            if not first_block or end == config.total_steps:
                self.timed_updates += end - block_start
                self.timed_update_seconds += seconds
            first_block = False
            self.after_block(states, step, "online", summaries, extra=self.envs.drain_metrics())
        return states, step

    def _host_actions(self, actions) -> np.ndarray:
        if self.seed_map.vmapped:
            return np.asarray(actions)
        return np.stack([np.asarray(a) for a in actions])

    # ------------------------------------------------------------------ the whole run

    def run(self, resume: bool) -> RunResult:
        config = self.config
        states = self.fresh_states()
        step = 0
        resumed_online = False
        if resume:
            checkpoint = load_latest_checkpoint(self.paths.checkpoints, report=self._warn)
            if checkpoint is not None:
                for later, path in list_checkpoints(self.paths.checkpoints):
                    if later > checkpoint.step:
                        self._warn(f"removing unusable checkpoint {path.name}")
                        shutil.rmtree(path, ignore_errors=True)
                states = self.restore(checkpoint)
                step = checkpoint.step
                self.last_saved = step
                resumed_online = checkpoint.meta["phase"] == "online"
                if resumed_online and checkpoint.meta.get("offline_steps") != config.steps:
                    raise RunDirError(
                        f"the online phase began after {checkpoint.meta.get('offline_steps')} offline steps; "
                        f"steps={config.steps} cannot change once it has started"
                    )
                if step > config.total_steps:
                    raise RunDirError(
                        f"checkpoint step {step} is past the run's length ({config.total_steps}); a run cannot be "
                        "shortened on resume"
                    )
                self.text.write(f"resuming {self.paths.root} from step {step}", echo=True)
            else:
                self.text.write(f"no usable checkpoint in {self.paths.root}: starting from step 0", echo=True)
        else:
            self.text.write(
                f"training {config.agent_name} on {config.env}: seeds {list(config.seeds)} "
                f"({'vmapped' if self.seed_map.vmapped else 'sequential'}), {config.steps} offline steps"
                + (f" + {config.online_steps} online steps" if config.online_steps else "")
                + f", dataset {self.dataset.size} transitions; run directory {self.paths.root}",
                echo=True,
            )
        optional = OptionalLoggers(
            self.paths.root,
            to_dict(config),
            config.tensorboard,
            config.wandb,
            config.wandb_project,
            config.wandb_mode,
        )
        self.logger = RunLogger(self.paths.root, optional)
        self.logger.resume_at(step)
        self.progress = Progress(config.total_steps, step, config.progress)
        self.progress_step = step
        try:
            with _sigint_flag() as flag:
                self.sigint = flag
                if step < config.steps:
                    states, step = self.offline_phase(states, step)
                if step < config.total_steps:
                    states, step = self.online_phase(states, step, resumed_online)
            self.progress.close()
            summary = self.finish()
        finally:
            self.progress.close()
            self.logger.close()
            self.text.close()
        per_seed = [
            s.replace(replay=None) if s.replay is not None else s for s in self.seed_map.to_list(states)
        ]
        return RunResult(self.paths.root, config, summary, per_seed, self.agent)

    def finish(self) -> dict:
        timing = self._cumulative_timing()
        updates = timing.pop("timed_updates")
        update_seconds = timing.pop("timed_update_seconds")
        per_seed_rate = updates / update_seconds if update_seconds > 0 else None
        timing["updates_per_second_per_seed"] = per_seed_rate
        timing["updates_per_second_all_seeds"] = (
            per_seed_rate * len(self.config.seeds) if per_seed_rate is not None else None
        )
        timing["seed_mode"] = "vmapped" if self.seed_map.vmapped else "sequential"
        summary = build_summary(self.config, self.logger.eval_table.rows, self.metric, timing)
        summary["run_dir"] = str(self.paths.root)
        write_json_atomic(self.paths.summary, summary)
        try:
            plot_learning_curves(
                self.logger.train_table.rows,
                self.logger.eval_table.rows,
                self.metric,
                self.paths.plot,
                title=f"{self.config.agent_name} on {self.config.env}",
                online_start=self.config.steps if self.config.online_steps else None,
            )
        except Exception as exc:  # a plotting failure must not lose a finished run
            self._warn(f"could not draw the learning curves: {exc}")
        self.text.write(format_summary(summary), echo=True)
        self.text.write(
            f"results in {self.paths.root}: summary {self.paths.summary}, curves {self.paths.plot}, "
            f"metrics {self.paths.metrics}",
            echo=True,
        )
        return summary


def train(
    config: TrainConfig | None = None,
    *,
    resume: bool = False,
    dataset: Dataset | None = None,
    evaluator: Evaluator | None = None,
    env_factory: EnvFactory | None = None,
    console: bool = True,
) -> RunResult:
    """Train ``config`` (default: the built-in main job) and return where the results are.

    ``resume``: continue the run in ``config.run_dir`` from its newest good checkpoint (see
    :func:`resume`).  ``dataset``, ``evaluator`` (signature of :func:`fidec.envs.evaluate`) and
    ``env_factory`` (name -> Gymnasium env) replace the defaults, e.g. in tests.
    Raises :class:`NonFiniteError` on NaN/inf and :class:`RunInterrupted` after Ctrl-C.
    """
    run = _Run(config or TrainConfig(), resume, dataset, evaluator, env_factory, console)
    return run.run(resume)


def resume(
    run_dir: str | os.PathLike,
    overrides: dict[str, Any] | None = None,
    *,
    dataset: Dataset | None = None,
    evaluator: Evaluator | None = None,
    env_factory: EnvFactory | None = None,
    console: bool = True,
) -> RunResult:
    """Continue the run in ``run_dir`` with its saved config; ``overrides`` may change only
    :data:`fidec.training.rundir.RESUMABLE_KEYS` (e.g. more ``steps``)."""
    from fidec.config import apply_overrides

    config, _ = read_config(run_dir)
    overrides = dict(overrides or {})
    refused = [k for k in overrides if k not in RESUMABLE_KEYS]
    if refused:
        raise RunDirError(
            f"cannot change {refused} when resuming (the run must continue as it started); "
            f"changeable: {', '.join(RESUMABLE_KEYS)}. Start a new run for other changes."
        )
    config = apply_overrides(config, overrides)
    return train(
        config, resume=True, dataset=dataset, evaluator=evaluator, env_factory=env_factory, console=console
    )
