"""Run a sweep's trials on Ray: an embedded local Ray by default, an existing cluster when given an address.

Each trial is a Ray task in a fresh worker process (``max_calls=1``: no JAX state or memory carries over
between trials) that reserves the spec's CPU cores and GPU fraction.  The driver keeps at most
``max_concurrent`` trials in flight, records every state change in the manifest, retries a failed trial up
to ``max_retries`` times (Ray's own retries are off, so every failure is recorded), and never lets one
trial's failure stop the others.  A trial whose run directory holds a checkpoint resumes from it; one that
finished (``summary.json``) is skipped.  Each trial's output goes to ``<out_dir>/logs/<trial id>.log``.
"""

from __future__ import annotations

import fcntl
import math
import os
import shutil
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from fidec.sweeps.manifest import RUN_FINISHED_FILE, Manifest, sweep_lock
from fidec.sweeps.spec import Resources, SweepSpec, Trial

# (trial, run directory, resume) -> anything JSON-able; it must leave ``summary.json`` in the run directory.
TrialFn = Callable[[Trial, Path, bool], Any]
ERROR_TAIL_CHARS = 2000


def train_trial(trial: Trial, run_dir: Path, resume: bool) -> dict[str, Any]:
    """The default trial: one fidec training run (resumed from its last checkpoint when ``resume``)."""
    from fidec.training import train

    config = trial.train_config(run_dir)
    result = train(config, resume=resume)
    return {"run_dir": str(run_dir), "summary": getattr(result, "summary", None)}


def has_checkpoint(run_dir: Path) -> bool:
    """True when the run directory holds at least one checkpoint (``checkpoints/step_*``)."""
    checkpoints = Path(run_dir) / "checkpoints"
    return checkpoints.is_dir() and any(p.name.startswith("step_") for p in checkpoints.iterdir())


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


def execute_trial(trial_fn: TrialFn, trial: Trial, run_dir: str, log_path: str) -> TrialOutcome:
    """Run one attempt in this (worker) process, its stdout and stderr appended to ``log_path``.

    The attempt holds the trial's lock while it writes the run directory, and the process exits as soon as
    the Ray node that started it is gone (a killed sweep), so a rerun never has two writers in one run.
    """
    _exit_with_parent()
    run_path, log = Path(run_dir), Path(log_path)
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    resume = False
    with _output_to(log):
        try:
            with _trial_lock(run_path):
                resume = has_checkpoint(run_path)
                if not resume and run_path.exists():
                    shutil.rmtree(run_path)  # an attempt killed before its first checkpoint: start clean
                stamp = time.strftime("%Y-%m-%d %H:%M:%S")
                what = "resuming from its last checkpoint" if resume else "starting"
                print(f"== {trial.trial_id}: {what} at {stamp} (pid {os.getpid()})", flush=True)
                result = trial_fn(trial, run_path, resume)
                if not (run_path / RUN_FINISHED_FILE).exists():
                    raise RuntimeError(f"the trial returned without writing {run_path / RUN_FINISHED_FILE}")
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
def _trial_lock(run_dir: Path, timeout_s: float = 600.0) -> Iterator[None]:
    """Exclusive lock ``.<run dir name>.lock`` beside the run directory; waits for an earlier attempt to stop."""
    path = run_dir.parent / f".{run_dir.name}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        deadline = time.monotonic() + timeout_s
        waited = False
        while True:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"{run_dir} is still locked by another process after {timeout_s:.0f} s (an earlier "
                        "attempt of this trial that did not stop); stop it, then rerun the sweep"
                    ) from None
                if not waited:
                    print(f"waiting for an earlier attempt to release {path}", flush=True)
                    waited = True
                time.sleep(0.5)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


@contextmanager
def _output_to(log: Path) -> Iterator[None]:
    """Point file descriptors 1 and 2 (so also JAX's and C libraries' output) at ``log``."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(log, "a") as f:
        os.dup2(f.fileno(), 1)
        os.dup2(f.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
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
    import ray

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
            raise ConnectionError(
                f"could not connect to a Ray cluster at {address!r} ({exc}). Start one with "
                "`ray start --head --port=6379` and pass --address auto (on the head) or HEAD_IP:6379, "
                "or omit --address to run on this machine."
            ) from exc
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
    from fidec.data.paths import data_dir, ogbench_files
    from fidec.envs.registry import parse_task

    config = trial.train_config()
    task = parse_task(trial.task)
    if not config.generate_dataset or config.dataset is not None or not task.is_manipulation or task.visual:
        return None
    if all(p.exists() for p in ogbench_files(data_dir(config.dataset_dir), task.dataset_name)):
        return None
    return task.dataset_name, config.dataset_episodes


def _generate_dataset(dataset_name: str, episodes: int | None, workers: int) -> str:
    from fidec.data.generate import generate

    result = generate(dataset_name, num_episodes=episodes, seed=0, workers=workers, progress=False)
    return f"{dataset_name}: {'cached' if result.cached else f'generated in {result.seconds:.0f} s'} ({result.train_path})"


def prepare_datasets(trials: list[Trial], resources: Resources, console: Console) -> None:
    """Generate each missing OGBench dataset once, before the trials that need it start (on a Ray worker).

    Without this, concurrent trials of one task would all generate the same dataset.  A failure is printed
    and left to the trials, which then fail with the data layer's own message.
    """
    import ray

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
    import ray

    total = ray.cluster_resources()
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
    console = console or Console(stderr=True)
    trial_fn = trial_fn or train_trial
    start = time.perf_counter()
    out_dir = Path(spec.out_dir)
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
            with ray_session(address, num_cpus) as startup:
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
    import ray

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
                    ref = remote.remote(trial_fn, trial, str(run_dir), str(log))
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
            # Interrupted (Ctrl-C): stop the workers; the trials in flight resume on the next run.
            for ref, trial in in_flight.items():
                ray.cancel(ref, force=True)
                manifest.update(trial.trial_id, state="pending", error="interrupted: the sweep was stopped")
            raise
    return wall


def _collect(ref: Any, trial: Trial) -> TrialOutcome:
    """The worker's outcome, or a failure when the worker process itself died (crash, OOM kill)."""
    import ray

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
