"""The sweep folder and its manifest: one JSON file recording every trial's state, written atomically after
each change.  This module alone knows the folder's layout:

    <out_dir>/manifest.json       {"format": 1, "name", "spec", "updated", "trials": {trial id: record}}
    <out_dir>/.sweep.lock         held by the ``fidec sweep`` writing to the folder
    <out_dir>/runs/<trial id>/    each trial's run directory (:class:`fidec.training.rundir.RunDir`)
    <out_dir>/runs/.<trial id>.lock   held by the process running the trial
    <out_dir>/logs/<trial id>.log the output of every attempt of the trial
    <out_dir>/set-aside/          what attempts killed before their first checkpoint left (never deleted)

A record holds the trial's identity (label, agent, task, seeds, grid point, fingerprint, run_dir relative
to out_dir), its state (``pending`` -> ``running`` -> ``done`` | ``failed``), the number of attempts over
all invocations, the tail of the last error, whether the last attempt resumed from a checkpoint, and
timings.  A ``running`` record found when a sweep starts is a trial whose sweep was killed: it resumes.
The format is read by ``fidec report`` (through :func:`read_manifest`) and by sweeps that resume: keep it
(and the trial ids) compatible.  Every record is validated when read: a damaged one (a field missing, null
or of the wrong type, a run_dir outside the folder) is one error that names the trial and the field.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fidec.errors import UserError
from fidec.files import FileLock, write_json_atomic
from fidec.sweeps.spec import SweepSpec, Trial
from fidec.training.rundir import RunDir

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = 1
TRIAL_STATES = ("pending", "running", "done", "failed")
LOCK_NAME = ".sweep.lock"
SET_ASIDE_DIR = "set-aside"


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
    def from_json(cls, data: Mapping[str, Any], trial_id: str | None = None) -> TrialRecord:
        """The record of ``trial_id`` as the manifest stores it, validated (:class:`ManifestError` names the
        trial and the field that is wrong)."""
        trial_id = str(data.get("trial_id", trial_id)) if isinstance(data, Mapping) else str(trial_id)
        _check_record(trial_id, data)
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in names}
        kwargs.setdefault("trial_id", trial_id)
        kwargs["seeds"] = tuple(kwargs["seeds"])
        return cls(**kwargs)


_TEXT_FIELDS = ("label", "agent", "task", "run_dir", "fingerprint")
_OPTIONAL_TEXT_FIELDS = ("error", "log")
_OPTIONAL_NUMBER_FIELDS = ("started_at", "finished_at", "wall_s")


def _damaged(trial_id: str, problem: str) -> ManifestError:
    return ManifestError(
        f"trial {trial_id!r}: {problem}; restore {MANIFEST_NAME}, or remove that trial's record from it (a finished "
        "trial is found again from its run directory)"
    )


def _check_record(trial_id: str, data: Any) -> None:
    """Raise :class:`ManifestError` naming the first field of a trial record that a sweep or a report could
    not use."""
    if not isinstance(data, Mapping):
        raise _damaged(trial_id, f"the record is {json.dumps(data)}, not a table")
    shown = lambda key: json.dumps(data[key])
    for name in _TEXT_FIELDS:
        if name not in data:
            raise _damaged(trial_id, f"field {name!r} is missing")
        if not isinstance(data[name], str) or not data[name]:
            raise _damaged(trial_id, f"field {name!r} is {shown(name)}, not a text")
    run_dir = Path(data["run_dir"])
    if run_dir.is_absolute() or ".." in run_dir.parts:
        raise _damaged(
            trial_id, f"field 'run_dir' is {shown('run_dir')}, not a folder inside the sweep folder"
        )
    seeds = data.get("seeds")
    if not isinstance(seeds, list) or not seeds or not all(_is_count(s) for s in seeds):
        raise _damaged(
            trial_id, "field 'seeds' is " + json.dumps(seeds) + ", not a list of whole numbers >= 0"
        )
    if data.get("state", "pending") not in TRIAL_STATES:
        raise _damaged(trial_id, f"field 'state' is {shown('state')}, not one of {', '.join(TRIAL_STATES)}")
    if "attempts" in data and not _is_count(data["attempts"]):
        raise _damaged(trial_id, f"field 'attempts' is {shown('attempts')}, not a whole number >= 0")
    if "resumed" in data and not isinstance(data["resumed"], bool):
        raise _damaged(trial_id, f"field 'resumed' is {shown('resumed')}, not true or false")
    if "grid" in data and not isinstance(data["grid"], Mapping):
        raise _damaged(trial_id, f"field 'grid' is {shown('grid')}, not a table")
    for name in _OPTIONAL_TEXT_FIELDS:
        if data.get(name) is not None and not isinstance(data[name], str):
            raise _damaged(trial_id, f"field {name!r} is {shown(name)}, not a text or null")
    for name in _OPTIONAL_NUMBER_FIELDS:
        value = data.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise _damaged(trial_id, f"field {name!r} is {shown(name)}, not a number or null")


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


class SpecChangedError(UserError, RuntimeError):
    """The spec now defines a finished trial differently from the run on disk."""


class ManifestError(UserError, ValueError):
    """``manifest.json`` cannot be read (damaged, or written by another fidec)."""


class ManifestMissingError(UserError, FileNotFoundError):
    """The folder holds no sweep manifest."""


def trial_lock_path(run_dir: str | Path) -> Path:
    """The lock of a trial, beside its run directory (so it outlives the directory being set aside)."""
    run_dir = Path(run_dir)
    return run_dir.parent / f".{run_dir.name}.lock"


def set_aside_path(out_dir: str | Path, trial_id: str) -> Path:
    """Where an unusable run directory of ``trial_id`` is moved: a new, timestamped folder."""
    return Path(out_dir) / SET_ASIDE_DIR / f"{trial_id}-{time.strftime('%Y%m%d-%H%M%S')}"


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

        A trial whose run already finished (``RunDir.finished``) is ``done`` whatever the manifest says;
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
            finished = RunDir(out_dir / record.run_dir).finished
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
                "(--out-dir), or move those run directories out of it and remove their manifest entries to "
                "rerun them."
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
        raise ManifestMissingError(
            f"no sweep manifest at {str(path)!r}: is {str(out_dir)!r} a sweep's out_dir?"
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ManifestError(
            f"{str(path)!r} is not valid JSON ({exc}); it is written atomically, so it was edited or damaged "
            "outside fidec: restore it, or move it away and rerun the sweep (finished trials are found from "
            "their run directories)"
        ) from None
    if (
        not isinstance(data, dict)
        or data.get("format") != MANIFEST_FORMAT
        or not isinstance(data.get("trials"), dict)
    ):
        found = data.get("format") if isinstance(data, dict) else None
        raise ManifestError(
            f"{str(path)!r} has format {found!r}; this fidec reads format {MANIFEST_FORMAT}: write to "
            "another --out-dir, or use the fidec that wrote it"
        )
    try:
        trials = {
            trial_id: TrialRecord.from_json(record, trial_id) for trial_id, record in data["trials"].items()
        }
    except ManifestError as exc:
        raise ManifestError(f"{path}: {exc}") from None
    spec: dict[str, Any] = data["spec"] if isinstance(data.get("spec"), dict) else {}
    return Manifest(out_dir, str(data.get("name", out_dir.name)), spec, trials)


def is_sweep_folder(folder: str | Path) -> bool:
    """Whether ``folder`` holds a sweep's manifest (a JSON table with ``trials``; not another file of that
    name, e.g. a checkpoint's)."""
    try:
        data = json.loads((Path(folder) / MANIFEST_NAME).read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return False
    return isinstance(data, dict) and isinstance(data.get("trials"), dict)


def sweep_lock(out_dir: str | Path) -> FileLock:
    """The exclusive lock of a sweep folder (a ``with`` block; released by the OS even on kill -9).

    Raises :class:`fidec.files.LockedError` when another sweep holds it.
    """
    return FileLock(
        Path(out_dir) / LOCK_NAME,
        owner="another fidec sweep",
        hint="wait for it to finish or stop it, then run this command again",
    )
