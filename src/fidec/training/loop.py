"""``train(config) -> RunResult``: the offline phase, the optional online phase, evaluation, checkpoints.

The run advances in blocks that end at every multiple of ``log_interval`` (and at the end of each
phase).  After each block, in this order: train metrics are written, the seeds are evaluated when an
evaluation is due, a checkpoint is saved when one is due, and a pending stop signal is honoured.  A
checkpoint at step k therefore implies that every metrics row up to k is on disk, and resuming from it
cuts the metrics files back to k: an interrupted and resumed run ends with the same parameters and the
same metrics files as an uninterrupted one (bitwise, on the same machine and mode).

Stop signals (Ctrl-C, SIGTERM from ``kill`` / ``docker stop`` / Slurm, SIGHUP from a closed terminal): once
training runs, the first one lets the block finish, saves a checkpoint and raises :class:`RunInterrupted`;
a second one, or one that arrives while the data loads, stops at once (:class:`TrainingStopped`).  A
signal that was ignored when the run started (``nohup``) stays ignored.

A resume that extends a run records its new length in ``config.json`` and marks the run unfinished (its
old ``summary.json`` removed) before it trains, so that an interrupted extension resumes as printed and is
never reported as finished.  A fresh run directory that fails before its first update (a bad dataset) is
removed, and one left without results (no checkpoint, no metrics row) may be claimed again.

Offline, a block is one jitted scan of updates (see :mod:`fidec.training.blocks`).  Online, each
environment step is one jitted call that inserts the last transition, updates once and picks the next
action; the environments step on the host.  The run directory (layout, config, checkpoints, metrics,
summary, lock) is :class:`~fidec.training.rundir.RunDir`'s; what a checkpoint holds is
:mod:`fidec.training.snapshot`'s.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import FrameType
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np

from fidec.agents import Agent
from fidec.config import ConfigError, apply_overrides, check_int_ranges, to_dict
from fidec.data import Dataset, load_dataset
from fidec.data.dataset import clip_actions
from fidec.data.visual import VisualDataset
from fidec.envs import parse_task
from fidec.errors import STOP_SIGNALS, signal_name
from fidec.training import blocks, snapshot
from fidec.training.config import TrainConfig, check_consistency
from fidec.training.evaluation import Evaluator, eval_envs_for, evaluate_seeds, score_metric
from fidec.training.finite import NonFiniteError, check_seeds, nonfinite_diagnostics, stop_message
from fidec.training.logging import EpisodeBar, OptionalLoggers, Progress, RunLogger, TextLog
from fidec.training.online import EnvFactory, OnlineEnvs
from fidec.training.plots import plot_learning_curves
from fidec.training.programs import cached_agent, cached_programs
from fidec.training.replay import empty_buffer, online_capacity
from fidec.training.rundir import RunDir, RunDirError, default_run_dir, same_run
from fidec.training.seeds import vmap_by_default
from fidec.training.snapshot import RESUMABLE_KEYS, check_provenance, provenance
from fidec.training.summary import build_summary, closing_message, format_summary

__all__ = ["NonFiniteError", "RunInterrupted", "RunResult", "TrainingStopped", "resume", "train"]
# How a session came to its run directory: claimed by this call, or one that already held this very run
# (a rerun after a crash), claimed again (it held no results), or opened by an explicit resume.
Start = Literal["new", "continue", "reclaim", "resume"]


class RunInterrupted(Exception):
    """A stop signal (Ctrl-C, SIGTERM, SIGHUP): the run saved a checkpoint at ``step`` and stopped; resume it
    with ``fidec train --resume``."""

    def __init__(self, run_dir: Path, step: int, signum: int = signal.SIGINT):
        super().__init__(
            f"interrupted by {signal_name(signum)} at step {step}; checkpoint saved. Resume with: "
            f"fidec train --resume {run_dir}"
        )
        self.run_dir = run_dir
        self.step = step
        self.signum = signum


class TrainingStopped(KeyboardInterrupt):
    """A stop signal that ended the process at once: while the data loaded (before training began), or a
    second one during training.  The message says what is left and what to do."""

    def __init__(self, signum: int, message: str = ""):
        super().__init__(message or f"stopped by {signal_name(signum)}")
        self.signum = signum

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass
class RunResult:
    """What :func:`train` returns: where the run is, its summary, and the final per-seed states."""

    run_dir: Path
    config: TrainConfig
    summary: dict
    states: list[blocks.TrainState]
    agent: Agent = field(repr=False)


class _StopSignals:
    """The stop signals (:data:`fidec.errors.STOP_SIGNALS`) during one :func:`train` call.

    Until training runs (the data loads, the run is restored) a signal stops at once (:class:`TrainingStopped`).
    Once it runs (``training``), the first one is only recorded in ``received`` (the run stops after its
    block, with a checkpoint) and a second one stops at once.  Handlers are installed only in the main thread,
    and never for a signal that was ignored (``nohup``).
    """

    def __init__(self) -> None:
        self.received: int | None = None
        self.training = False

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.training and self.received is None:
            self.received = signum
            return
        raise TrainingStopped(signum)

    @contextmanager
    def installed(self) -> Iterator[_StopSignals]:
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {s: signal.getsignal(s) for s in STOP_SIGNALS}
        for number, handler in previous.items():
            if handler is not signal.SIG_IGN:
                signal.signal(number, self._handle)
        try:
            yield self
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler if handler is not None else signal.SIG_DFL)


def _next_boundary(step: int, interval: int, end: int) -> int:
    return min((step // interval + 1) * interval, end)


def _is_multiple(step: int, interval: int) -> bool:
    return interval > 0 and step % interval == 0


def load_training_data(config: TrainConfig) -> Dataset | VisualDataset:
    """The run's training set (generated and cached first when allowed and missing)."""
    train_set, _ = load_dataset(
        config.env,
        dataset_dir=config.dataset_dir,
        generate_if_missing=config.generate_dataset,
        episodes=config.dataset_episodes,
        dataset_path=config.dataset,
        action_policy=config.action_policy,
        generation_workers=os.cpu_count() or 1,
    )
    if hasattr(train_set, "with_frame_stack"):  # pixel datasets stack frames when a batch is drawn
        train_set = train_set.with_frame_stack(config.agent.encoder.frame_stack)
    return train_set


def check_runnable(
    config: TrainConfig, dataset: Dataset | VisualDataset | None, evaluator: Evaluator | None
) -> TrainConfig:
    """Everything about ``config`` that can be checked before any file is written or data is loaded."""
    check_int_ranges(config)
    config = check_consistency(config)
    if config.total_steps > 2**31 - 1:
        raise ConfigError(
            f"steps + online_steps is {config.total_steps}; a run has at most {2**31 - 1} steps (an int32 counter)"
        )
    if (dataset is None or evaluator is None) and config.total_steps > 0:
        parse_task(config.env)  # unknown names fail here, listing the valid ones
    return config


def _open_run_dir(config: TrainConfig) -> tuple[RunDir, TrainConfig, Start]:
    """(the run directory, the config with its ``run_dir`` resolved, how the session starts): claimed fresh;
    continued when it already holds this very run (same settings; e.g. a rerun after a crash); claimed again
    when it holds a run without results (see :attr:`RunDir.has_results`)."""
    root = Path(config.run_dir) if config.run_dir else default_run_dir(config)
    config = replace(config, run_dir=str(root))
    existing = RunDir(root)
    if existing.is_run:
        if same_run(existing.read_config()[0], config):
            return existing, config, "continue"
        if not existing.has_results:
            return existing, config, "reclaim"
    return RunDir.claim(root, config), config, "new"


class _Session:
    """One training session of a run (fresh or resumed): loads the data, restores the newest checkpoint, then
    schedules the offline and online phases, the evaluations and the checkpoints."""

    def __init__(
        self,
        config: TrainConfig,
        run: RunDir,
        resume: bool,
        dataset: Dataset | VisualDataset | None,
        evaluator: Evaluator | None,
        env_factory: EnvFactory | None,
        console: bool,
        stops: _StopSignals,
    ):
        self.session_start = time.perf_counter()
        self.config = config
        self.run = run
        self.stops = stops
        self.evaluator = evaluator
        self.env_factory = env_factory
        self.console = console
        self.text = TextLog(run, console)
        self.timing = {
            "data_seconds": 0.0,
            "train_seconds": 0.0,
            "eval_seconds": 0.0,
            "checkpoint_seconds": 0.0,
        }
        self.timed_updates = 0
        self.timed_update_seconds = 0.0
        self.previous_timing: dict[str, float] = {}
        self.reported_diagnostics: set[str] = set()
        self.last_saved = -1
        self.eval_envs: list | None = None
        self.online: snapshot.OnlineParts | None = None

        try:
            self._prepare(dataset, resume)
        except BaseException:
            self.text.close()
            raise

    def _prepare(self, dataset: Dataset | VisualDataset | None, resume: bool) -> None:
        """Load the data, build the agent and its programs, restore the newest checkpoint (or start)."""
        config, run = self.config, self.run
        start = time.perf_counter()
        injected = dataset is not None
        if dataset is None:
            self.text.write(f"loading the dataset of {config.env}", echo=True)
        data = dataset if dataset is not None else load_training_data(self.config)
        self.timing["data_seconds"] = time.perf_counter() - start
        if config.action_clip_eps is not None:
            data = clip_actions(data, config.action_clip_eps)
        self.dataset = dataset = data
        self.agent = cached_agent(config.agent_name, config.agent, dataset.obs_dim, dataset.action_dim)
        if "obs_dim" not in run.read_record() or not run.checkpoints():
            run.update_record(
                obs_dim=dataset.obs_dim,
                action_dim=dataset.action_dim,
                dataset_size=dataset.size,
                dataset="in-memory" if injected else config.dataset,
            )
        self.metric = score_metric(config.env)
        vmap = vmap_by_default() if config.vmap_seeds is None else config.vmap_seeds
        vmapped = vmap and len(config.seeds) > 1
        self.programs = cached_programs(
            config.agent_name, config.agent, dataset.obs_dim, dataset.action_dim, vmapped
        )
        self.seed_map = self.programs.seed_map
        self.data = dataset.to_device()
        self.states, self.step = self._starting_point(resume)
        self.logger = RunLogger(
            run,
            OptionalLoggers(
                run,
                to_dict(self.config),
                config.seeds,
                config.tensorboard,
                config.wandb,
                config.wandb_project,
                config.wandb_mode,
            ),
        )
        for note in self.logger.resume_at(self.step):
            self._warn(f"note: {note}")
        self.progress = Progress(config.total_steps, self.step, config.progress)
        self.progress_step = self.step

    # ------------------------------------------------------------------ start, checkpoints

    def _starting_point(self, resume: bool) -> tuple[Any, int]:
        """(states, step): fresh states at step 0, or those of the newest good checkpoint."""
        config = self.config
        fresh = self.seed_map.from_list([blocks.new_train_state(self.agent.init, s) for s in config.seeds])
        if not resume:
            self.text.write(
                f"training {config.agent_name} on {config.env}: seeds {list(config.seeds)} "
                f"({'vmapped' if self.seed_map.vmapped else 'sequential'}), {config.steps} offline steps"
                + (f" + {config.online_steps} online steps" if config.online_steps else "")
                + f", dataset {self.dataset.size} transitions; run directory {self.run.root}",
                echo=True,
            )
            return fresh, 0
        checkpoint = self.run.latest_checkpoint(report=self._warn, set_aside=True)
        if checkpoint is None:
            logged = self.run.read_rows("train") or self.run.read_rows("eval")
            if logged or self.run.finished:
                last = max(r["step"] for r in logged) if logged else config.total_steps
                raise RunDirError(
                    f"{self.run.root} has results up to step {last} but no usable checkpoint (damaged ones are kept "
                    f"in {self.run.damaged_dir}), so it cannot continue exactly; start a new run with another "
                    "--run-dir"
                )
            self.text.write(f"no checkpoint in {self.run.root} yet: starting from step 0", echo=True)
            self._record_start(0)
            return fresh, 0
        check_provenance(checkpoint, config)
        if checkpoint.step > config.total_steps:
            raise RunDirError(
                f"checkpoint step {checkpoint.step} is past the run's length ({config.total_steps}); a run cannot "
                "be shortened on resume"
            )
        states, self.online = snapshot.unpack(
            checkpoint,
            self.seed_map,
            self.agent.init,
            config.seeds,
            self.data,
            config.steps,
            lambda: OnlineEnvs(config.env, config.seeds, self.env_factory, self._warn),
        )
        self.previous_timing = checkpoint.meta.get("timing", {})
        self.last_saved = checkpoint.step
        self._record_start(checkpoint.step)
        self.text.write(f"resuming {self.run.root} from step {checkpoint.step}", echo=True)
        return states, checkpoint.step

    def _record_start(self, step: int) -> None:
        """Before training continues from ``step``: record a changed config (a resume's new length) in
        ``config.json``, and mark a run that goes on unfinished (its old summary removed), both atomically."""
        recorded, _ = self.run.read_config()
        if not same_run(recorded, self.config):
            self.run.record_config(replace(self.config, run_dir=recorded.run_dir))
            self.text.write(f"recorded the run's settings for this resume in {self.run.config_path}")
        if step < self.config.total_steps and self.run.summary_path.exists():
            self.run.remove_summary()
            self.text.write(f"the run goes on past step {step}: its summary is rewritten when it ends")

    def save(self, states, step: int, phase: str) -> None:
        start = time.perf_counter()
        meta = {
            "seeds": list(self.config.seeds),
            "agent": self.config.agent_name,
            "env": self.config.env,
            "timing": self._cumulative_timing(),
            "provenance": provenance(self.config),
        }
        arrays, meta = snapshot.pack(
            self.seed_map,
            states,
            step,
            phase,
            meta,
            self.online if phase == "online" else None,
            self.config.steps,
        )
        self.run.save_checkpoint(step, arrays, meta, self.config.keep_checkpoints)
        self.last_saved = step
        self.timing["checkpoint_seconds"] += time.perf_counter() - start

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
        """Stop on a non-finite loss or parameter; a non-finite diagnostic metric is only reported."""
        for summary in summaries:
            for k, first in sorted(nonfinite_diagnostics(summary).items()):
                if k not in self.reported_diagnostics:
                    self.reported_diagnostics.add(k)
                    self._warn(
                        f"note: diagnostic metric '{k}' is non-finite from step {first} (training goes on)"
                    )
        stop = check_seeds(step, self.config.seeds, summaries)
        if stop is not None:
            message = stop_message(stop[0], stop[1], self.last_saved, self.run.checkpoints_dir)
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
        first_seed = per_seed[self.config.seeds[0]]
        self.progress.status("training")
        self.progress.advance(step - self.progress_step, first_seed, **postfix)
        self.progress_step = step
        # The first block of a phase includes compilation and is not timed: no rate to show yet.
        rate = (
            f"{self.timed_updates / self.timed_update_seconds:.1f} updates/s/seed"
            if self.timed_update_seconds > 0
            else "first block, compile included, not timed"
        )
        keys = [k for k in ("critic_loss", "actor_loss", "bc_loss", "penalty", "alpha") if k in first_seed]
        shown = ", ".join(f"{k}={first_seed[k]:.4g}" for k in keys)
        self.text.write(
            f"step {step}/{self.config.total_steps} [{phase}] {rate} | seed {self.config.seeds[0]}: {shown}"
        )
        if self.stops.received is not None:
            if self.last_saved != step:
                self.save(states, step, phase)
            self.text.write(
                f"interrupted by {signal_name(self.stops.received)} at step {step}; checkpoint saved",
                echo=True,
            )
            raise RunInterrupted(self.run.root, step, self.stops.received)

    def evaluate(self, states, step: int, phase: str) -> float | None:
        start = time.perf_counter()
        config = self.config
        agent_states = [self.seed_map.select(states, i).agent for i in range(len(config.seeds))]
        if self.evaluator is None and self.eval_envs is None:  # built once, reused by every evaluation
            self.eval_envs = eval_envs_for(
                config.agent, config.env, config.eval_episodes, config.eval_num_envs
            )
        self.progress.status("evaluating")
        bar = EpisodeBar(config.eval_episodes * len(config.seeds), config.progress and self.evaluator is None)
        try:
            results = evaluate_seeds(
                self.agent,
                agent_states,
                config.seeds,
                config.env,
                step,
                config.eval_episodes,
                config.action_mode,
                evaluator=self.evaluator,
                num_envs=config.eval_num_envs,
                envs=self.eval_envs,
                on_episode=bar.callback if self.evaluator is None else None,
            )
        finally:
            bar.close()
        self.logger.eval(step, phase, results)
        self.timing["eval_seconds"] += time.perf_counter() - start
        scores = [float(s) for r in results.values() if (s := r.get(self.metric)) is not None]
        mean = float(np.mean(scores)) if scores else None
        shown = "n/a" if mean is None else f"{mean:.3f}"
        self.text.write(
            f"eval at step {step}: {self.metric} {shown} (mean over {len(results)} seed(s), "
            f"{config.eval_episodes} episodes each, {time.perf_counter() - start:.1f} s)",
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
            self.progress.status("compiling" if first_block else "training")
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

    def online_phase(self, states, step: int):
        config = self.config
        if self.online is None:
            capacity = online_capacity(config.replay_capacity, self.dataset.size, config.online_steps)
            self.text.write(
                f"online phase: {config.online_steps} environment steps, replay = dataset ({self.dataset.size} rows, "
                f"shared) + {capacity} online rows per seed",
                echo=True,
            )
            envs = OnlineEnvs(config.env, config.seeds, self.env_factory, self._warn)
            ring = empty_buffer(self.data, capacity)
            states = self.seed_map.from_list([s.replace(replay=ring) for s in self.seed_map.to_list(states)])
            states, actions = self.programs.first_action()(states, envs.observations)
            self.online = snapshot.OnlineParts(envs, self._host_actions(actions), capacity)
        online = self.online
        names = self.programs.metric_names(self.data)
        step_fn = self.programs.online_step()
        summarize = self.programs.online_summary()
        acc = self.seed_map.from_list([blocks.empty_accumulator(list(names)) for _ in config.seeds])
        first_block = True
        while step < config.total_steps:
            end = _next_boundary(step, config.log_interval, config.total_steps)
            start, block_start = time.perf_counter(), step
            while step < end:
                transitions, next_observations = online.envs.step(online.pending_actions)
                step += 1
                states, acc, actions = step_fn(
                    states, acc, self.data, transitions, next_observations, jnp.int32(step)
                )
                online.pending_actions = self._host_actions(actions)
            acc, summary = summarize(states, acc)
            summaries = self._per_seed_summary(summary)
            seconds = time.perf_counter() - start
            self.timing["train_seconds"] += seconds
            if not first_block or end == config.total_steps:
                self.timed_updates += end - block_start
                self.timed_update_seconds += seconds
            first_block = False
            self.after_block(states, step, "online", summaries, extra=online.envs.drain_metrics())
        return states, step

    def _host_actions(self, actions) -> np.ndarray:
        if self.seed_map.vmapped:
            return np.asarray(actions)
        return np.stack([np.asarray(a) for a in actions])

    # ------------------------------------------------------------------ the whole session

    def execute(self) -> RunResult:
        config = self.config
        states, step = self.states, self.step
        try:
            self.stops.training = True  # a first stop signal from here on is honoured after the block
            if step < config.steps:
                states, step = self.offline_phase(states, step)
            if step < config.total_steps:
                states, step = self.online_phase(states, step)
            self.progress.close()
            summary = self.finish()
        finally:
            self.progress.close()
            self.logger.close()
            self.text.close()
        per_seed = [
            s.replace(replay=None) if s.replay is not None else s for s in self.seed_map.to_list(states)
        ]
        return RunResult(self.run.root, config, summary, per_seed, self.agent)

    def finish(self) -> dict:
        timing: dict[str, Any] = dict(self._cumulative_timing())
        updates = timing.pop("timed_updates")
        update_seconds = timing.pop("timed_update_seconds")
        per_seed_rate = updates / update_seconds if update_seconds > 0 else None
        timing["updates_per_second_per_seed"] = per_seed_rate
        timing["updates_per_second_all_seeds"] = (
            per_seed_rate * len(self.config.seeds) if per_seed_rate is not None else None
        )
        timing["seed_mode"] = "vmapped" if self.seed_map.vmapped else "sequential"
        summary = build_summary(self.config, self.logger.eval_table.rows, self.metric, timing)
        summary["run_dir"] = str(self.run.root)
        self.run.write_summary(summary)
        try:
            plot_learning_curves(
                self.logger.train_table.rows,
                self.logger.eval_table.rows,
                self.metric,
                self.run.plot_path,
                title=f"{self.config.agent_name} on {self.config.env}",
                online_start=self.config.steps if self.config.online_steps else None,
            )
        except Exception as exc:  # a plotting failure must not lose a finished run
            self._warn(f"could not draw the learning curves: {exc}")
        self.text.write(format_summary(summary))
        self.text.write(closing_message(summary, self.run), echo=True)
        return summary


def train(
    config: TrainConfig | None = None,
    *,
    resume: bool = False,
    dataset: Dataset | VisualDataset | None = None,
    evaluator: Evaluator | None = None,
    env_factory: EnvFactory | None = None,
    console: bool = True,
) -> RunResult:
    """Train ``config`` (default: the built-in main job) and return where the results are.

    ``resume``: continue the run in ``config.run_dir`` from its newest good checkpoint (see
    :func:`resume`).  ``dataset``, ``evaluator`` (signature of :func:`fidec.envs.evaluate`) and
    ``env_factory`` (name -> Gymnasium env) replace the defaults, e.g. in tests.
    Raises :class:`NonFiniteError` on NaN/inf, :class:`RunInterrupted` after a stop signal (Ctrl-C,
    SIGTERM, SIGHUP; checkpoint saved), :class:`TrainingStopped` after one while the data loads or a second
    one, and :class:`RunDirError` when the run directory cannot be used (not empty, in use by another
    process, not writable, ...).
    """
    config = check_runnable(config or TrainConfig(), dataset, evaluator)
    if resume:
        if not config.run_dir:
            raise ConfigError("resume=True continues the run in config.run_dir: set run_dir")
        return _run(RunDir.open(config.run_dir), config, "resume", dataset, evaluator, env_factory, console)
    run, config, start = _open_run_dir(config)
    return _run(run, config, start, dataset, evaluator, env_factory, console)


def resume(
    run_dir: str | os.PathLike,
    overrides: dict[str, Any] | None = None,
    *,
    dataset: Dataset | VisualDataset | None = None,
    evaluator: Evaluator | None = None,
    env_factory: EnvFactory | None = None,
    console: bool = True,
) -> RunResult:
    """Continue the run in ``run_dir`` with its saved config; ``overrides`` may change only
    :data:`fidec.training.snapshot.RESUMABLE_KEYS` (e.g. more ``steps``), or anything while the run has no
    results yet (it failed or was killed before its first update)."""
    run = RunDir.open(run_dir)
    config, _ = run.read_config()
    overrides = dict(overrides or {})
    refused = [k for k in overrides if k not in RESUMABLE_KEYS]
    if refused and run.has_results:
        raise RunDirError(
            f"cannot change {', '.join(refused)} when resuming (the run must continue as it started); "
            f"changeable: {', '.join(RESUMABLE_KEYS)}. Start a new run for other changes."
        )
    config = check_runnable(apply_overrides(config, overrides), dataset, evaluator)
    return _run(run, config, "resume", dataset, evaluator, env_factory, console)


def _run(
    run: RunDir,
    config: TrainConfig,
    start: Start,
    dataset: Dataset | VisualDataset | None,
    evaluator: Evaluator | None,
    env_factory: EnvFactory | None,
    console: bool,
) -> RunResult:
    """One session in ``run`` under its lock, with the stop signals handled (see the module docstring)."""
    run.check_writable()
    stops = _StopSignals()
    with run.lock(), stops.installed():
        if start == "reclaim":
            run.reclaim(config)
        run.check_checkpoints_belong(config)
        try:
            session = _Session(config, run, start != "new", dataset, evaluator, env_factory, console, stops)
        except BaseException as exc:
            removed = start != "resume" and not run.has_results
            if removed:  # a fresh run that failed before its first update: nothing to keep
                run.remove()
            if isinstance(exc, TrainingStopped):
                raise TrainingStopped(
                    exc.signum, _stopped_before_training(run, exc.signum, removed)
                ) from None
            raise
        try:
            return session.execute()
        except TrainingStopped as exc:
            raise TrainingStopped(
                exc.signum,
                f"stopped by a second {signal_name(exc.signum)}: the block in progress was not saved; resume from "
                f"the last checkpoint with `fidec train --resume {run.root}`",
            ) from None


def _stopped_before_training(run: RunDir, signum: int, removed: bool) -> str:
    """What a stop signal that arrived while the data loaded left behind, and what to do."""
    what = f"interrupted by {signal_name(signum)} before training"
    if removed:
        return f"{what} began (while loading the dataset): nothing was trained or kept; run the same command again"
    return f"{what} went on (while loading the dataset): {run.root} is as it was; resume it with `fidec train --resume {run.root}`"
