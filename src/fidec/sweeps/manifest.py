"""The sweep manifest: one JSON file recording every trial's state, written atomically after each change.

``<out_dir>/manifest.json``::

    {"format": 1, "name": ..., "spec": {...}, "updated": ..., "trials": {trial_id: record, ...}}

A record holds the trial's identity (label, agent, task, seeds, grid point, fingerprint, run_dir relative
to out_dir), its state (``pending`` -> ``running`` -> ``done`` | ``failed``), the number of attempts over
all invocations, the tail of the last error, whether the last attempt resumed from a checkpoint, and
timings.  A ``running`` record found when a sweep starts is a trial whose sweep was killed: it resumes.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fidec.errors import UserError
from fidec.files import write_json_atomic
from fidec.sweeps.spec import SweepSpec, Trial

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = 1
TRIAL_STATES = ("pending", "running", "done", "failed")
RUN_FINISHED_FILE = "summary.json"


@dataclass(frozen=True)
class TrialRecord:
    """What the manifest knows about one trial."""

    trial_id: str
    label: str
    agent: str
    task: str
    seeds: tuple[int, ...]
    run_dir: str
    fingerprint: str
    grid: Mapping[str, Any] = field(default_factory=dict)
    state: str = "pending"
    attempts: int = 0
    error: str | None = None
    resumed: bool = False
    started_at: float | None = None
    finished_at: float | None = None
    wall_s: float | None = None
    log: str | None = None

    @classmethod
    def for_trial(cls, trial: Trial) -> TrialRecord:
        return cls(
            trial_id=trial.trial_id,
            label=trial.label,
            agent=trial.agent,
            task=trial.task,
            seeds=tuple(trial.seeds),
            run_dir=f"runs/{trial.trial_id}",
            fingerprint=trial.fingerprint(),
            grid=dict(trial.grid_point),
            log=f"logs/{trial.trial_id}.log",
        )

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["seeds"] = list(self.seeds)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TrialRecord:
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in names}
        kwargs["seeds"] = tuple(kwargs.get("seeds", ()))
        return cls(**kwargs)


class SpecChangedError(UserError, RuntimeError):
    """The spec now defines a finished trial differently from the run on disk."""


class SweepLockedError(UserError, RuntimeError):
    """Another ``fidec sweep`` is writing to the same output directory."""


class Manifest:
    """The trial records of one sweep output directory; :meth:`update` saves the file after every change."""

    def __init__(self, out_dir: Path, name: str, spec: Mapping[str, Any], trials: dict[str, TrialRecord]):
        self.out_dir = Path(out_dir)
        self.name = name
        self.spec = dict(spec)
        self.trials = trials

    @property
    def path(self) -> Path:
        return self.out_dir / MANIFEST_NAME

    @classmethod
    def open(cls, spec: SweepSpec) -> Manifest:
        """Load ``<out_dir>/manifest.json`` and merge the spec's trials into it (new ones are pending).

        A trial whose run already finished (``summary.json`` exists) is ``done`` whatever the manifest says;
        one marked ``done`` whose summary is gone is ``pending`` again.  A finished trial whose definition
        changed in the spec raises :class:`SpecChangedError` (its results would no longer match the spec).
        """
        out_dir = Path(spec.out_dir)
        existing = read_manifest(out_dir).trials if (out_dir / MANIFEST_NAME).exists() else {}
        trials: dict[str, TrialRecord] = {}
        changed = []
        for trial in spec.trials():
            fresh = TrialRecord.for_trial(trial)
            old = existing.get(trial.trial_id)
            record = fresh if old is None else dataclasses.replace(old, grid=fresh.grid, label=fresh.label)
            finished = (out_dir / record.run_dir / RUN_FINISHED_FILE).exists()
            if old is not None and old.fingerprint != fresh.fingerprint and (finished or old.attempts):
                changed.append(trial.trial_id)
                continue
            if finished:
                record = dataclasses.replace(record, state="done", error=None)
            elif record.state == "done":
                record = dataclasses.replace(record, state="pending")
            trials[trial.trial_id] = record
        if changed:
            shown = ", ".join(changed[:5]) + (f" and {len(changed) - 5} more" if len(changed) > 5 else "")
            raise SpecChangedError(
                f"the spec now defines {len(changed)} trial(s) differently from the runs already in "
                f"{str(out_dir)!r}: {shown}. Their results would not match the spec: write to a new out_dir "
                "(--out-dir), or delete those run directories and their manifest entries to rerun them."
            )
        # Trials of earlier versions of the spec stay in the manifest (and on disk), untouched.
        for trial_id, record in existing.items():
            trials.setdefault(trial_id, record)
        manifest = cls(out_dir, spec.name, spec.to_dict(), trials)
        manifest.save()
        return manifest

    def update(self, trial_id: str, **changes: Any) -> TrialRecord:
        """Change one record and save the manifest (atomically)."""
        if "state" in changes and changes["state"] not in TRIAL_STATES:
            raise ValueError(f"state must be one of {TRIAL_STATES}, got {changes['state']!r}")
        record = dataclasses.replace(self.trials[trial_id], **changes)
        self.trials[trial_id] = record
        self.save()
        return record

    def counts(self, trial_ids: list[str] | None = None) -> Counter:
        """Number of trials per state (over ``trial_ids``, default all)."""
        ids = self.trials if trial_ids is None else trial_ids
        return Counter(self.trials[t].state for t in ids)

    def save(self) -> None:
        data = {
            "format": MANIFEST_FORMAT,
            "name": self.name,
            "spec": self.spec,
            "updated": time.time(),
            "trials": {trial_id: record.to_json() for trial_id, record in self.trials.items()},
        }
        write_json_atomic(self.path, data, indent=1)


def read_manifest(out_dir: str | Path) -> Manifest:
    """Read ``<out_dir>/manifest.json`` as written by a sweep."""
    out_dir = Path(out_dir)
    path = out_dir / MANIFEST_NAME
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(
            f"no sweep manifest at {str(path)!r}: is {str(out_dir)!r} a sweep's out_dir?"
        ) from None
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"{str(path)!r} is not valid JSON ({exc}); it is written atomically, so it was edited by hand"
        ) from exc
    if data.get("format") != MANIFEST_FORMAT:
        raise ValueError(
            f"{str(path)!r} has format {data.get('format')!r}; this fidec reads format {MANIFEST_FORMAT}"
        )
    trials = {trial_id: TrialRecord.from_json(record) for trial_id, record in data["trials"].items()}
    return Manifest(out_dir, data.get("name", out_dir.name), data.get("spec", {}), trials)




@contextmanager
def sweep_lock(out_dir: str | Path) -> Iterator[None]:
    """Hold an exclusive lock on ``<out_dir>/.sweep.lock`` (released by the OS even on kill -9)."""
    path = Path(out_dir) / ".sweep.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SweepLockedError(
                f"another fidec sweep is running on {str(out_dir)!r} (it holds {str(path)!r}); wait for it to "
                "finish or stop it, then run this command again"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)
