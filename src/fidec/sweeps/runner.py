"""Run a sweep's trials on Ray: an embedded local Ray by default, an existing cluster when given an address.

Each trial is a Ray task in a fresh worker process (``max_calls=1``: no JAX state or memory carries over
between trials) that reserves the spec's CPU cores and GPU fraction.  The driver keeps at most
``max_concurrent`` trials in flight, records every state change in the manifest, retries a failed trial up
to ``max_retries`` times (Ray's own retries are off, so every failure is recorded), and never lets one
trial's failure stop the others.  A trial whose run directory holds a checkpoint resumes from it; one that
finished is skipped; what an attempt killed before its first checkpoint left is moved to ``set-aside/``
(never deleted) and the trial starts again.  Each trial's output goes to ``<out_dir>/logs/<trial id>.log``.
Ray is optional (``pip install 'fidec[sweep]'``): it is imported only here, through :func:`import_ray`.

A stop signal to the driver (Ctrl-C, SIGTERM from ``kill`` / ``docker stop`` / Slurm, SIGHUP) is passed on
to the trials in flight as a Ctrl-C: each finishes its block and saves a checkpoint (up to
:data:`STOP_GRACE_S` seconds, then it is stopped by force), is marked pending, and resumes on the next run;
the driver then raises :class:`SweepStopped`.
"""

from __future__ import annotations

import math
import os
import shutil
import signal
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, ModuleType
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from fidec.data.generate import generate
from fidec.data.paths import data_dir, ogbench_files
from fidec.envs.registry import parse_task
from fidec.errors import STOP_SIGNALS, UserError
from fidec.files import FileLock, LockedError
from fidec.sweeps.manifest import Manifest, set_aside_path, sweep_lock, trial_lock_path
from fidec.sweeps.spec import Resources, SpecError, SweepSpec, Trial
from fidec.training import train
from fidec.training.rundir import RunDir

# (trial, run directory, resume) -> anything JSON-able; it must leave a finished run (its summary) behind.
TrialFn = Callable[[Trial, Path, bool], Any]
ERROR_TAIL_CHARS = 2000
TRIAL_LOCK_WAIT_S = 600.0
# How long the trials in flight get to save a checkpoint after the sweep is stopped (a block of the cpu
# scale takes about 10 s; Slurm's default grace before SIGKILL is 30 s).
STOP_GRACE_S = 30.0
INSTALL_RAY = "pip install 'fidec[sweep]'"


class SweepStopped(KeyboardInterrupt):
    """The sweep driver was stopped by a signal (``signum``); the trials in flight saved what they could and
    are pending again."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


@contextmanager
def _stop_signals_raise() -> Iterator[None]:
    """While active (main thread only), a stop signal raises :class:`SweepStopped` in the driver; a signal
    that was ignored (``nohup``) stays ignored.  Ray may turn the exception into a plain KeyboardInterrupt
    (a signal that arrives while it waits): it is raised as :class:`SweepStopped` again, with its signal."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        raise SweepStopped(signum)

    previous = {s: signal.getsignal(s) for s in STOP_SIGNALS}
    for number, old in previous.items():
        if old is not signal.SIG_IGN:
            signal.signal(number, handler)
    try:
        yield
    except KeyboardInterrupt as exc:
        if received and not isinstance(exc, SweepStopped):
            raise SweepStopped(received[0]) from None
        raise
    finally:
        for number, old in previous.items():
            signal.signal(number, old if old is not None else signal.SIG_DFL)


class RayMissingError(UserError, ModuleNotFoundError):
    """Ray (the optional ``sweep`` extra) is not installed."""


class RayConnectionError(UserError, ConnectionError):
    """The Ray cluster given with ``--address`` cannot be reached."""


def import_ray() -> ModuleType:
    """The ``ray`` module, or :class:`RayMissingError` saying how to install it (Ray is an optional extra)."""
    try:
        import ray
    except ImportError:
        raise RayMissingError(
            f"fidec sweep runs trials on Ray, which is not installed: {INSTALL_RAY} "
            "(in a checkout: pip install -e '.[sweep]'), then run this command again"
        ) from None
    return ray


def train_trial(trial: Trial, run_dir: Path, resume: bool) -> dict[str, Any]:
    """The default trial: one fidec training run (resumed from its last checkpoint when ``resume``)."""
    result = train(trial.train_config(run_dir), resume=resume)
    return {"run_dir": str(run_dir), "summary": getattr(result, "summary", None)}


@dataclass(frozen=True)
class TrialOutcome:
    """What a worker reports back for one attempt."""

    trial_id: str
    ok: bool
    resumed: bool
    wall_s: float
    error: str | None = None
    result: Any = None


@dataclass(frozen=True)
class SweepOutcome:
    """The state of every trial of the spec after a ``run_sweep`` call."""

    out_dir: Path
    counts: Mapping[str, int]
    failed: Mapping[str, str]
    skipped: int
    ran: int
    wall_s: float
    ray_startup_s: float | None = None
    trial_wall_s: Mapping[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failed and self.counts.get("done", 0) == sum(self.counts.values())


def execute_trial(
    trial_fn: TrialFn, trial: Trial, run_dir: str, log_path: str, set_aside_dir: str
) -> TrialOutcome:
    """Run one attempt in this (worker) process, its stdout and stderr appended to ``log_path``.

    The attempt holds the trial's lock while it writes the run directory, and the process exits as soon as
    the Ray node that started it is gone (a killed sweep), so a rerun never has two writers in one run.
    A run directory with a checkpoint resumes; one without (an attempt killed before its first checkpoint)
    is moved to ``set_aside_dir`` for inspection and the trial starts again.
    """
    _exit_with_parent()
    run, log = RunDir(run_dir), Path(log_path)
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    resume = False
    with _output_to(log):
        try:
            with _trial_lock(run.root):
                resume = bool(run.checkpoints())
                if not resume and run.root.is_dir() and any(run.root.iterdir()):
                    target = Path(set_aside_dir)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.move(str(run.root), str(target))
                    print(
                        f"the previous attempt left {run.root} without a checkpoint: moved to {target}",
                        flush=True,
                    )
                stamp = time.strftime("%Y-%m-%d %H:%M:%S")
                what = "resuming from its last checkpoint" if resume else "starting"
                print(f"== {trial.trial_id}: {what} at {stamp} (pid {os.getpid()})", flush=True)
                result = trial_fn(trial, run.root, resume)
                if not run.finished:
                    raise RuntimeError(f"the trial returned without writing {run.summary_path}")
        except BaseException as exc:  # report everything (even SystemExit) to the driver
            error = traceback.format_exc()
            print(error, flush=True)
            message = f"{type(exc).__name__}: {exc}\n{error}"[-ERROR_TAIL_CHARS:]
            return TrialOutcome(trial.trial_id, False, resume, time.perf_counter() - start, message)
        print(f"== {trial.trial_id}: done in {time.perf_counter() - start:.1f} s", flush=True)
    return TrialOutcome(trial.trial_id, True, resume, time.perf_counter() - start, None, result)


def _exit_with_parent(poll_s: float = 0.2) -> None:
    """Exit this process when its parent (the Ray node's raylet) dies.

    Ray workers otherwise keep running for seconds after a local Ray is killed, still writing checkpoints.
    """
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_s)
        os._exit(70)

    threading.Thread(target=watch, name="exit-with-ray-node", daemon=True).start()


@contextmanager
def _trial_lock(run_dir: Path, wait_s: float | None = None) -> Iterator[None]:
    """The trial's lock; waits (up to ``wait_s``, default :data:`TRIAL_LOCK_WAIT_S`) for an earlier attempt
    that has not stopped yet."""
    wait_s = TRIAL_LOCK_WAIT_S if wait_s is None else wait_s

    def lock(wait: float) -> FileLock:
        return FileLock(
            trial_lock_path(run_dir),
            owner=f"an earlier attempt of this trial (still running after {wait:g} s)",
            hint="stop it, then rerun the sweep",
            wait_s=wait,
        )

    with ExitStack() as held:
        try:
            held.enter_context(lock(0.0))
        except LockedError:
            print(f"waiting for an earlier attempt to release {trial_lock_path(run_dir)}", flush=True)
            held.enter_context(lock(wait_s))
        yield


@contextmanager
def _output_to(log: Path) -> Iterator[None]:
    """Send this process's output to ``log``: file descriptors 1 and 2 (so also JAX's and C libraries'
    output) and Python's ``sys.stdout`` / ``sys.stderr`` (which need not write to them, e.g. captured)."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(log, "a") as f, redirect_stdout(f), redirect_stderr(f):
        os.dup2(f.fileno(), 1)
        os.dup2(f.fileno(), 2)
        try:
            yield
        finally:
            f.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def worker_env(resources: Resources, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment of a trial's worker: threads limited to its cores; JAX on CPU, or sharing its GPU share.

    The intra-op thread flags of XLA:CPU are set for single-core trials; OpenMP/BLAS pools are sized to the
    trial's cores.  With a GPU fraction, JAX allocates on demand and caps itself at that fraction.
    """
    base = os.environ if base is None else base
    threads = str(max(1, math.floor(resources.cpus)))
    env = {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "OPENBLAS_NUM_THREADS": threads}
    env["PYTHONUNBUFFERED"] = "1"
    xla_flags = base.get("XLA_FLAGS", "")
    if resources.cpus <= 1 and "intra_op_parallelism_threads" not in xla_flags:
        xla_flags = f"{xla_flags} --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1".strip()
    if xla_flags:
        env["XLA_FLAGS"] = xla_flags
    if resources.gpus == 0:
        env["JAX_PLATFORMS"] = "cpu"
    elif resources.gpus < 1:
        env["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"
        env["XLA_PYTHON_CLIENT_MEM_FRACTION"] = f"{0.95 * resources.gpus:.3f}"
    return env


@contextmanager
def ray_session(address: str | None = None, num_cpus: int | None = None) -> Iterator[float]:
    """Connect to Ray (``address``: "auto", "HOST:PORT" or "ray://HOST:10001") or start a local instance.

    Yields the seconds the start-up took.  A Ray already initialised in this process is reused and left
    running; one started here is shut down on exit.
    """
    ray = import_ray()
    start = time.perf_counter()
    started_here = not ray.is_initialized()
    if started_here:
        kwargs: dict[str, Any] = {
            "include_dashboard": False,
            "log_to_driver": False,
            "logging_level": "WARNING",
        }
        if address is None:
            kwargs.update(address="local", num_cpus=num_cpus or os.cpu_count())
        else:
            kwargs.update(address=address)
        try:
            ray.init(**kwargs)
        except ConnectionError as exc:
            reason = " ".join(str(exc).split())
            raise RayConnectionError(
                f"could not connect to a Ray cluster at {address!r} ({reason}). Start one with "
                "`ray start --head --port=6379` and pass --address auto (on the head) or HEAD_IP:6379, "
                "or omit --address to run on this machine."
            ) from None
    try:
        yield time.perf_counter() - start
    finally:
        if started_here:
            ray.shutdown()


def _dataset_to_generate(trial: Trial) -> tuple[str, int | None] | None:
    """(dataset name, episodes) when the trial's run would generate its OGBench dataset, else None.

    Mirrors :func:`fidec.data.load_dataset`: official files in the data directory first, then the generated
    cache (episodes from the config, generation seed 0).
    """
    config = trial.train_config()
    task = parse_task(trial.task)
    if not config.generate_dataset or config.dataset is not None or not task.is_manipulation or task.visual:
        return None
    if all(p.exists() for p in ogbench_files(data_dir(config.dataset_dir), task.dataset_name)):
        return None
    return task.dataset_name, config.dataset_episodes


def _generate_dataset(dataset_name: str, episodes: int | None, workers: int) -> str:
    result = generate(dataset_name, num_episodes=episodes, seed=0, workers=workers, progress=False)
    return f"{dataset_name}: {'cached' if result.cached else f'generated in {result.seconds:.0f} s'} ({result.train_path})"


def prepare_datasets(trials: list[Trial], resources: Resources, console: Console) -> None:
    """Generate each missing OGBench dataset once, before the trials that need it start (on a Ray worker).

    Without this, concurrent trials of one task would all generate the same dataset.  A failure is printed
    and left to the trials, which then fail with the data layer's own message.
    """
    ray = import_ray()
    needed = {key for trial in trials if (key := _dataset_to_generate(trial)) is not None}
    if not needed:
        return
    console.print(f"generating {len(needed)} dataset(s) first: {', '.join(sorted(k[0] for k in needed))}")
    workers = max(1, math.floor(resources.cpus))
    remote = ray.remote(max_retries=0)(_generate_dataset).options(num_cpus=resources.cpus)
    refs = [remote.remote(name, episodes, workers) for name, episodes in sorted(needed, key=str)]
    for ref in refs:
        try:
            console.print(ray.get(ref))
        except ray.exceptions.RayError as exc:
            console.print(f"[red]dataset generation failed[/red] (the trials will report it): {exc}")


def default_concurrency(resources: Resources) -> int:
    """How many trials the cluster fits at once (at least 1): its CPUs and GPUs over a trial's share."""
    total = import_ray().cluster_resources()
    limits = [math.floor(total.get("CPU", 1) / resources.cpus)]
    if resources.gpus > 0:
        limits.append(math.floor(total.get("GPU", 0) / resources.gpus))
    return max(1, min(limits))


def run_sweep(
    spec: SweepSpec,
    address: str | None = None,
    max_concurrent: int | None = None,
    trial_fn: TrialFn | None = None,
    console: Console | None = None,
    num_cpus: int | None = None,
) -> SweepOutcome:
    """Run every trial of ``spec`` that has not finished; return the final state of all of them.

    ``address``: None for an embedded local Ray (``num_cpus`` cores, default all), else a cluster address.
    ``max_concurrent``: trials in flight at once (default: as many as the cluster's resources fit).
    ``trial_fn``: what a trial runs (default :func:`train_trial`, a fidec training run).
    """
    import_ray()  # before any work: a missing Ray is one clear message
    console = console or Console(stderr=True)
    trial_fn = trial_fn or train_trial
    start = time.perf_counter()
    out_dir = _writable_out_dir(spec.out_dir)
    with sweep_lock(out_dir):
        manifest = Manifest.open(spec)
        trials = spec.trials()
        ids = [t.trial_id for t in trials]
        todo = [t for t in trials if manifest.trials[t.trial_id].state != "done"]
        skipped = len(trials) - len(todo)
        console.print(
            f"sweep {spec.name!r}: {len(trials)} trials in {out_dir} ({skipped} already done, {len(todo)} to run)"
        )
        startup = None
        trial_wall: dict[str, float] = {}
        if todo:
            with ray_session(address, num_cpus) as startup, _stop_signals_raise():
                limit = max_concurrent or default_concurrency(spec.resources)
                console.print(f"Ray ready in {startup:.1f} s; up to {limit} trial(s) at once")
                if trial_fn is train_trial:
                    prepare_datasets(todo, spec.resources, console)
                trial_wall = _schedule(spec, manifest, todo, ids, trial_fn, limit, console)
        counts = manifest.counts(ids)
        failed = {t: manifest.trials[t].error or "" for t in ids if manifest.trials[t].state == "failed"}
    outcome = SweepOutcome(
        out_dir=out_dir,
        counts=dict(counts),
        failed=failed,
        skipped=skipped,
        ran=len(todo),
        wall_s=time.perf_counter() - start,
        ray_startup_s=startup,
        trial_wall_s=trial_wall,
    )
    _print_outcome(outcome, manifest, console)
    return outcome


def _writable_out_dir(out_dir: Path) -> Path:
    """The sweep folder, created; a file in its place or a folder that cannot be written is a SpecError."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise SpecError(f"out_dir {out_dir} is a file; give a folder (the spec's out_dir, or --out-dir)")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SpecError(
            f"cannot create out_dir {out_dir} ({exc.strerror}); choose another with --out-dir"
        ) from None
    if not os.access(out_dir, os.W_OK):
        raise SpecError(f"out_dir {out_dir} is not writable; choose another with --out-dir")
    return out_dir


def _schedule(
    spec: SweepSpec,
    manifest: Manifest,
    todo: list[Trial],
    ids: list[str],
    trial_fn: TrialFn,
    limit: int,
    console: Console,
) -> dict[str, float]:
    """Submit, wait, record and retry until every trial in ``todo`` is done or out of attempts."""
    ray = import_ray()
    # A fresh worker process per trial (max_calls=1); retries are ours, so that each failure is recorded.
    remote = ray.remote(max_calls=1, max_retries=0)(execute_trial).options(
        num_cpus=spec.resources.cpus,
        num_gpus=spec.resources.gpus,
        runtime_env={"env_vars": worker_env(spec.resources)},
    )
    queue = deque(todo)
    for trial in todo:
        manifest.update(trial.trial_id, state="pending")
    failures = dict.fromkeys((t.trial_id for t in todo), 0)
    in_flight: dict[Any, Trial] = {}
    wall: dict[str, float] = {}
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        bar = progress.add_task(
            _progress_text(manifest, ids), total=len(ids), completed=manifest.counts(ids)["done"]
        )
        try:
            while queue or in_flight:
                while queue and len(in_flight) < limit:
                    trial = queue.popleft()
                    record = manifest.trials[trial.trial_id]
                    run_dir, log = spec.out_dir / record.run_dir, spec.out_dir / (record.log or "")
                    aside = set_aside_path(spec.out_dir, trial.trial_id)
                    ref = remote.remote(trial_fn, trial, str(run_dir), str(log), str(aside))
                    in_flight[ref] = trial
                    manifest.update(
                        trial.trial_id,
                        state="running",
                        attempts=record.attempts + 1,
                        started_at=time.time(),
                        finished_at=None,
                    )
                progress.update(bar, description=_progress_text(manifest, ids))
                ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=1.0)
                for ref in ready:
                    trial = in_flight.pop(ref)
                    outcome = _collect(ref, trial)
                    wall[trial.trial_id] = outcome.wall_s
                    if outcome.ok:
                        manifest.update(
                            trial.trial_id,
                            state="done",
                            error=None,
                            resumed=outcome.resumed,
                            finished_at=time.time(),
                            wall_s=outcome.wall_s,
                        )
                        # One line per finished trial: the record of progress in logs, where no bar is drawn.
                        resumed = " (resumed)" if outcome.resumed else ""
                        console.print(
                            f"done {trial.trial_id} in {outcome.wall_s:.0f} s{resumed}; "
                            + _progress_text(manifest, ids)
                        )
                        continue
                    failures[trial.trial_id] += 1
                    retry = failures[trial.trial_id] <= spec.max_retries
                    manifest.update(
                        trial.trial_id,
                        state="pending" if retry else "failed",
                        error=outcome.error,
                        resumed=outcome.resumed,
                        finished_at=time.time(),
                        wall_s=outcome.wall_s,
                    )
                    last_line = (outcome.error or "").strip().splitlines()[:1]
                    console.print(
                        f"[red]trial {trial.trial_id} failed[/red] (attempt {failures[trial.trial_id]} of "
                        f"{spec.max_retries + 1}{', retrying' if retry else ''}): {' '.join(last_line)}"
                    )
                    if retry:
                        queue.append(trial)
                progress.update(
                    bar, description=_progress_text(manifest, ids), completed=manifest.counts(ids)["done"]
                )
        except BaseException:
            # Interrupted (a stop signal): the trials in flight save a checkpoint and resume on the next run.
            _stop_trials(in_flight, manifest, console)
            raise
    return wall


def _stop_trials(in_flight: Mapping[Any, Trial], manifest: Manifest, console: Console) -> None:
    """Pass a stop on to the trials in flight as a Ctrl-C (each finishes its block and saves a checkpoint),
    wait up to :data:`STOP_GRACE_S` for them, stop the rest by force; all are pending again."""
    ray = import_ray()
    if not in_flight:
        return
    console.print(f"stopping {len(in_flight)} trial(s): each saves a checkpoint (up to {STOP_GRACE_S:.0f} s)")
    for ref in in_flight:
        ray.cancel(ref, force=False)
    _, still_running = ray.wait(list(in_flight), num_returns=len(in_flight), timeout=STOP_GRACE_S)
    for ref in still_running:
        ray.cancel(ref, force=True)
    # Pending again: the next run resumes each from its checkpoint (or skips one that finished meanwhile).
    for trial in in_flight.values():
        manifest.update(trial.trial_id, state="pending", error="interrupted: the sweep was stopped")


def _collect(ref: Any, trial: Trial) -> TrialOutcome:
    """The worker's outcome, or a failure when the worker process itself died (crash, OOM kill)."""
    ray = import_ray()
    try:
        return ray.get(ref)
    except ray.exceptions.RayError as exc:
        return TrialOutcome(
            trial.trial_id, False, False, 0.0, f"{type(exc).__name__}: {exc}"[-ERROR_TAIL_CHARS:]
        )


def _progress_text(manifest: Manifest, ids: list[str]) -> str:
    counts = manifest.counts(ids)
    return (
        f"done {counts['done']} | running {counts['running']} | failed {counts['failed']} | "
        f"pending {counts['pending']}"
    )


def _print_outcome(outcome: SweepOutcome, manifest: Manifest, console: Console) -> None:
    counts = outcome.counts
    console.print(
        f"sweep finished in {outcome.wall_s:.1f} s: {counts.get('done', 0)} done, {counts.get('failed', 0)} failed "
        f"(manifest: {manifest.path})"
    )
    for trial_id, error in outcome.failed.items():
        record = manifest.trials[trial_id]
        first = error.strip().splitlines()[0] if error.strip() else "(no message)"
        console.print(
            f"  [red]failed[/red] {trial_id} after {record.attempts} attempt(s): {first}; log: "
            f"{outcome.out_dir / (record.log or '')}"
        )
