"""The run directory: the one module that knows its layout.  Everyone else asks :class:`RunDir`.

<run_dir>/
  config.json              resolved TrainConfig, dimensions, fidec/jax versions, command line
  train.log                timestamped text log
  metrics/train.jsonl|csv  train metrics (block means) per log point and seed
  metrics/eval.jsonl|csv   evaluation results per evaluation and seed
  checkpoints/step_*/      atomic checkpoints (the newest ``keep_checkpoints``)
  checkpoints/damaged/     checkpoints that failed verification, set aside for inspection (never deleted)
  summary.json             final / last-three scores per seed, mean and std over seeds (present only while it
                           covers the newest checkpoint: a resume that extends the run removes it until it ends)
  plots/learning_curves.png
  evals/step_<step>-<mode>-<episodes>ep.json   results of ``fidec eval`` (videos under videos/)
  tensorboard/             only with tensorboard on
  wandb.json               the wandb run id of each seed (only with wandb on), so a resume continues them
  .lock                    held by the process training (or evaluating) the run

A run directory is claimed atomically together with its ``config.json`` (built in a hidden sibling
folder, then renamed into place), so a crash or kill at any moment leaves either no directory or a
resumable one.  While a process uses it, ``.lock`` is held and a second ``fidec train`` is refused.
A run directory without results (no checkpoint, no metrics row: a run that failed or was killed before its
first update) holds nothing to keep: a new command may claim it again with another config.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax

from fidec import __version__
from fidec.agents import Agent, AgentState
from fidec.config import to_dict
from fidec.errors import UserError
from fidec.files import (
    DirectoryExistsError,
    FileLock,
    atomic_directory,
    fsync_dir,
    remove_stale_temporaries,
    write_json_atomic,
)
from fidec.training import checkpoint as ckpt
from fidec.training.config import TrainConfig, train_config_from_dict
from fidec.training.metrics import MetricsTable, read_rows
from fidec.training.programs import cached_agent
from fidec.training.snapshot import agent_states, check_provenance, check_recorded_provenance

CONFIG_FILE = "config.json"
SUMMARY_FILE = "summary.json"
METRICS_DIR = "metrics"
CHECKPOINTS_DIR = "checkpoints"
DAMAGED_DIR = "damaged"
LOCK_FILE = ".lock"
WANDB_FILE = "wandb.json"
LOG_FILE = "train.log"
EVALS_DIR = "evals"
EVAL_PREFIX = "step_"
VIDEOS_DIR = "videos"
PLOTS_DIR = "plots"
# Settings that do not change what a run computes (a rerun that differs only in these is the same run).
PRESENTATION_KEYS = ("run_dir", "progress", "tensorboard", "wandb", "wandb_project", "wandb_mode")


class RunDirError(UserError, RuntimeError):
    """The run directory cannot be used as asked (not a run, not empty, in use, or damaged)."""


@dataclass
class LoadedRun:
    """A run's saved config and its agent restored from one checkpoint (one state per seed)."""

    config: TrainConfig
    record: dict[str, Any]
    agent: Agent
    states: list[AgentState]
    step: int


def default_run_dir(config: TrainConfig) -> Path:
    return Path("runs") / f"{config.agent_name}-{config.env}-{time.strftime('%Y%m%d-%H%M%S')}"


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RunDirError(
            f"{path} is damaged ({what} is not valid JSON: {exc}); restore it from a backup, or start a new run"
        ) from exc


class RunDir:
    """A run directory at ``root`` (see the module docstring for the layout)."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"RunDir({str(self.root)!r})"

    # -------------------------------------------------------------------------------------- paths

    @property
    def config_path(self) -> Path:
        return self.root / CONFIG_FILE

    @property
    def log_path(self) -> Path:
        return self.root / LOG_FILE

    @property
    def metrics_dir(self) -> Path:
        return self.root / METRICS_DIR

    @property
    def checkpoints_dir(self) -> Path:
        return self.root / CHECKPOINTS_DIR

    @property
    def damaged_dir(self) -> Path:
        return self.checkpoints_dir / DAMAGED_DIR

    @property
    def summary_path(self) -> Path:
        return self.root / SUMMARY_FILE

    @property
    def plot_path(self) -> Path:
        return self.root / PLOTS_DIR / "learning_curves.png"

    @property
    def evals_dir(self) -> Path:
        return self.root / EVALS_DIR

    @staticmethod
    def eval_record_name(step: int, mode: str, episodes: int) -> str:
        """The file name of a ``fidec eval`` record: ``step_<step>-<mode>-<episodes>ep.json``."""
        return f"{EVAL_PREFIX}{step:09d}-{mode}-{episodes}ep.json"

    def video_folder(self, step: int, base: Path | None = None) -> Path:
        """Where ``fidec eval --video`` puts the videos of checkpoint ``step`` (under ``base`` instead of the
        run's ``videos/`` when given)."""
        return (self.videos_dir if base is None else base / VIDEOS_DIR) / f"{EVAL_PREFIX}{step}"

    def eval_records(self) -> list[Path]:
        """The ``fidec eval`` records in ``evals/``, by name."""
        return sorted(self.evals_dir.glob(f"{EVAL_PREFIX}*.json")) if self.evals_dir.is_dir() else []

    @property
    def videos_dir(self) -> Path:
        return self.root / VIDEOS_DIR

    @property
    def tensorboard_dir(self) -> Path:
        return self.root / "tensorboard"

    @property
    def wandb_path(self) -> Path:
        return self.root / WANDB_FILE

    # -------------------------------------------------------------------------------------- life cycle

    @property
    def is_run(self) -> bool:
        """True when the folder holds a run (its ``config.json``)."""
        return self.config_path.is_file()

    @property
    def finished(self) -> bool:
        """True when the run completed: its ``summary.json`` exists and covers its newest checkpoint (a run that
        a resume extends is unfinished until the resume ends, even if an older summary was left behind)."""
        if not self.summary_path.is_file():
            return False
        try:
            summary = self.read_summary() or {}
        except RunDirError:
            return True  # damaged: whoever reads it reports that
        if not isinstance(summary, dict) or not isinstance(summary.get("steps"), int):
            return True  # a summary that does not record its length (written by another tool)
        length = summary["steps"] + int(summary.get("online_steps") or 0)
        newest = self.checkpoints()
        return not newest or newest[-1][0] <= length

    @property
    def has_results(self) -> bool:
        """True when the run computed anything worth keeping: a checkpoint, a metrics row or a summary."""
        return bool(
            self.checkpoints()
            or self.summary_path.exists()
            or self.read_rows("train")
            or self.read_rows("eval")
        )

    def check_writable(self) -> None:
        """Refuse a run directory that training cannot write (read-only folder or files), in one line."""
        places = [self.root, self.metrics_dir, self.checkpoints_dir]
        places += [p for p in (self.log_path, *self.metrics_dir.glob("*.*")) if p.is_file()]
        blocked = [p for p in places if p.exists() and not os.access(p, os.W_OK)]
        if blocked:
            raise RunDirError(
                f"{self.root} is not writable ({blocked[0]}: permission denied), and training writes its "
                f"checkpoints and metrics there: make it writable (chmod -R u+w {self.root}), or copy it elsewhere "
                "and resume the copy"
            )

    @classmethod
    def claim(cls, root: str | os.PathLike, config: TrainConfig) -> RunDir:
        """Create the run directory and its ``config.json`` (``config`` as given) in one atomic step.

        Refuses a path that is a file, or a folder that is not empty (a run's results are never overwritten).
        """
        run = cls(root)
        if run.root.exists() and not run.root.is_dir():
            raise RunDirError(f"run directory {run.root} exists and is a file; choose another --run-dir")
        if run.root.exists() and any(run.root.iterdir()):
            hint = f"resume it with `fidec train --resume {run.root}`" if run.is_run else "empty it"
            raise RunDirError(f"run directory {run.root} is not empty; {hint}, or choose another --run-dir")
        remove_stale_temporaries(run.root.parent, run.root.name)
        try:
            with atomic_directory(run.root, replace_existing=False) as staging:
                (staging / METRICS_DIR).mkdir()
                (staging / CHECKPOINTS_DIR).mkdir()
                write_json_atomic(staging / CONFIG_FILE, config_record(config))
        except DirectoryExistsError:
            raise RunDirError(
                f"run directory {run.root} was created by another process meanwhile; choose another --run-dir"
            ) from None
        return run

    @classmethod
    def open(cls, root: str | os.PathLike) -> RunDir:
        """An existing run directory (its ``config.json`` must exist)."""
        run = cls(root)
        if not run.root.is_dir():
            raise RunDirError(f"{run.root} does not exist: give the folder of a fidec run (runs/...)")
        if not run.is_run:
            raise RunDirError(
                f"{run.root} is not a fidec run directory: {CONFIG_FILE} is missing (a run directory is written by "
                "`fidec train`)"
            )
        return run

    def reclaim(self, config: TrainConfig) -> None:
        """Give a run directory without results (see :attr:`has_results`) a new ``config.json``, atomically."""
        if self.has_results:
            raise RunDirError(
                f"run directory {self.root} holds results; resume it or choose another --run-dir"
            )
        write_json_atomic(self.config_path, config_record(config))

    def remove(self) -> None:
        """Delete a run directory that holds no results (a fresh run that failed before its first update)."""
        if self.has_results:
            raise RunDirError(f"run directory {self.root} holds results and is kept")
        shutil.rmtree(self.root, ignore_errors=True)
        if self.root.parent.is_dir():
            fsync_dir(self.root.parent)

    @property
    def writable(self) -> bool:
        """Whether this process may write into the run directory (create files in it)."""
        return os.access(self.root, os.W_OK)

    def lock(self, wait_s: float = 0.0) -> FileLock:
        """The run's lock (a ``with`` block): refused while another process trains or evaluates this run."""
        return FileLock(
            self.root / LOCK_FILE,
            owner=f"another fidec process is using the run {self.root}",
            hint="wait for it to finish (or stop it), then run this command again",
            wait_s=wait_s,
        )

    # -------------------------------------------------------------------------------------- config record

    def read_record(self) -> dict[str, Any]:
        """The whole ``config.json`` record."""
        try:
            return _read_json(self.config_path, "the run's config")
        except FileNotFoundError:
            raise RunDirError(f"{self.root} is not a fidec run directory: {CONFIG_FILE} is missing") from None

    def read_config(self) -> tuple[TrainConfig, dict[str, Any]]:
        """(TrainConfig as recorded, full record).  Where the run is now is :attr:`root` (the recorded
        ``run_dir`` is where it was created)."""
        record = self.read_record()
        if not isinstance(record, dict) or not isinstance(record.get("config"), dict):
            raise RunDirError(
                f"{self.config_path} is damaged (it holds no 'config' table); restore it from a backup, or start a "
                "new run"
            )
        return train_config_from_dict(record["config"]), record

    def update_record(self, **extra: Any) -> None:
        """Add or replace entries (e.g. the dataset's dimensions) of ``config.json``, atomically."""
        write_json_atomic(self.config_path, {**self.read_record(), **extra})

    def record_config(self, config: TrainConfig) -> None:
        """Record ``config`` (e.g. a resume's longer ``steps``) in ``config.json``, atomically."""
        self.update_record(config=to_dict(config))

    # -------------------------------------------------------------------------------------- metrics

    def metrics_table(self, name: str) -> MetricsTable:
        """The writable ``metrics/<name>`` table ("train" or "eval")."""
        self.metrics_dir.mkdir(parents=True, exist_ok=True)
        return MetricsTable(self.metrics_dir, name)

    def read_rows(self, name: str) -> list[dict[str, Any]]:
        """Rows of ``metrics/<name>.jsonl`` (else ``.csv``), numbers parsed."""
        return read_rows(self.metrics_dir / f"{name}.jsonl", self.metrics_dir / f"{name}.csv")

    # -------------------------------------------------------------------------------------- summary

    def read_summary(self) -> dict[str, Any] | None:
        """``summary.json``, or None when the run has not finished."""
        try:
            return _read_json(self.summary_path, "the run's summary")
        except FileNotFoundError:
            return None

    def write_summary(self, summary: dict[str, Any]) -> None:
        write_json_atomic(self.summary_path, summary)

    def remove_summary(self) -> None:
        """Mark the run unfinished (a resume that extends it): ``summary.json`` goes until the run ends again."""
        try:
            self.summary_path.unlink()
        except FileNotFoundError:
            return
        fsync_dir(self.root)

    # -------------------------------------------------------------------------------------- checkpoints

    def checkpoints(self) -> list[tuple[int, Path]]:
        """(step, folder) of every checkpoint, oldest first (not verified)."""
        return ckpt.list_checkpoints(self.checkpoints_dir)

    def save_checkpoint(self, step: int, arrays: dict, meta: dict, keep: int) -> Path:
        return ckpt.save_checkpoint(self.checkpoints_dir, step, arrays, meta, keep)

    def check_checkpoints_belong(self, config: TrainConfig) -> None:
        """Refuse, before any data is loaded, a run whose checkpoints were not written with ``config`` (a
        hand-edited ``config.json``, a checkpoint copied from another run), from their manifests alone; the
        checkpoint a session restores is checked again in full."""
        for _, folder in self.checkpoints():
            recorded = ckpt.read_meta(folder)
            if recorded is not None:
                check_recorded_provenance(folder, *recorded, config)

    def set_aside(self, folder: Path, report: Callable[[str], None] | None = None) -> Path:
        """Move a checkpoint folder to ``checkpoints/damaged/`` (kept for inspection, never loaded again)."""
        self.damaged_dir.mkdir(parents=True, exist_ok=True)
        target = self.damaged_dir / folder.name
        if target.exists():
            target = self.damaged_dir / f"{folder.name}-{time.strftime('%Y%m%d-%H%M%S')}"
        shutil.move(str(folder), str(target))
        if report is not None:
            report(f"checkpoint {folder.name} set aside in {target} (it failed verification)")
        return target

    def latest_checkpoint(
        self, step: int | None = None, report: Callable[[str], None] | None = None, set_aside: bool = False
    ) -> ckpt.Checkpoint | None:
        """The newest checkpoint that verifies (or exactly ``step``), falling back past damaged ones.

        Each damaged one is reported; with ``set_aside`` (a run about to continue) it and any unusable
        newer one is moved to ``checkpoints/damaged/``.  None when there is no checkpoint at all.
        """
        found = ckpt.load_latest_checkpoint(self.checkpoints_dir, report=report, step=step)
        if set_aside:
            newest_good = found.step if found is not None else -1
            for later, folder in self.checkpoints():
                if later > newest_good:
                    self.set_aside(folder, report)
        return found

    # -------------------------------------------------------------------------------------- agent

    def load(self, step: int | None = None, report: Callable[[str], None] | None = None) -> LoadedRun:
        """The run's config, its agent, and one agent state per seed from checkpoint ``step`` (default: the
        newest good one)."""
        config, record = self.read_config()
        if "obs_dim" not in record:
            raise RunDirError(
                f"{self.root} has no checkpoint yet (its dataset was never loaded); train it first"
            )
        obs_dim = record["obs_dim"]
        obs_dim = tuple(obs_dim) if isinstance(obs_dim, list) else int(obs_dim)
        agent = cached_agent(config.agent_name, config.agent, obs_dim, int(record["action_dim"]))
        found = self.latest_checkpoint(step=step, report=report or (lambda m: print(m, file=sys.stderr)))
        if found is None:
            raise ckpt.CheckpointError(f"no usable checkpoint in {self.checkpoints_dir}; train the run first")
        check_provenance(found, config)
        states = agent_states(found, agent.init, len(config.seeds))
        return LoadedRun(config, record, agent, states, found.step)


def config_record(config: TrainConfig, **extra: Any) -> dict[str, Any]:
    """``config.json``: the resolved config plus what is needed to rebuild the agent and reproduce the run."""
    return {
        "config": to_dict(config),
        **extra,
        "fidec_version": __version__,
        "jax_version": jax.__version__,
        "command": sys.argv,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def same_run(a: TrainConfig, b: TrainConfig) -> bool:
    """True when two configs compute the same run (they may differ in presentation settings only)."""
    strip = lambda c: {k: v for k, v in to_dict(c).items() if k not in PRESENTATION_KEYS}
    return strip(a) == strip(b)


def read_config(run_dir: str | os.PathLike) -> tuple[TrainConfig, dict[str, Any]]:
    """(TrainConfig, full record) of the run in ``run_dir`` (``RunDir.open(run_dir).read_config()``)."""
    return RunDir.open(run_dir).read_config()
