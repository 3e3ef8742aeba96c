"""The run directory: its layout, creation (refusing to overwrite), and the saved config.

<run_dir>/
  config.json              resolved TrainConfig, dimensions, fidec/jax versions, command line
  train.log                timestamped text log
  metrics/train.jsonl|csv  train metrics (block means) per log point and seed
  metrics/eval.jsonl|csv   evaluation results per evaluation and seed
  checkpoints/step_*/      atomic checkpoints (the newest ``keep_checkpoints``)
  summary.json             final / last-three scores per seed, mean and std over seeds
  plots/learning_curves.png
  evals/                   results of ``fidec eval`` (videos under videos/)
  tensorboard/             only with tensorboard on
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from fidec.atomic import write_json_atomic
from fidec.config import from_dict, to_dict
from fidec.training.config import TrainConfig

CONFIG_FILE = "config.json"
# Settings a resumed run may change without breaking exact resume (or only by float round-off).
RESUMABLE_KEYS = (
    "steps",
    "online_steps",
    "progress",
    "tensorboard",
    "wandb",
    "wandb_project",
    "wandb_mode",
    "keep_checkpoints",
    "vmap_seeds",
    "eval_num_envs",
)


class RunDirError(RuntimeError):
    """The run directory cannot be used as asked (not empty without --resume, or not a run)."""


@dataclass(frozen=True)
class RunPaths:
    root: Path

    @property
    def config(self) -> Path:
        return self.root / CONFIG_FILE

    @property
    def log(self) -> Path:
        return self.root / "train.log"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def summary(self) -> Path:
        return self.root / "summary.json"

    @property
    def plot(self) -> Path:
        return self.root / "plots" / "learning_curves.png"

    @property
    def evals(self) -> Path:
        return self.root / "evals"

    @property
    def videos(self) -> Path:
        return self.root / "videos"


def default_run_dir(config: TrainConfig) -> Path:
    return Path("runs") / f"{config.agent_name}-{config.env}-{time.strftime('%Y%m%d-%H%M%S')}"


def create_run_dir(root: Path) -> RunPaths:
    """A fresh run directory; refuse a non-empty one (a run's results are never overwritten)."""
    if root.exists() and not root.is_dir():
        raise RunDirError(f"run directory {root} exists and is a file; choose another --run-dir")
    if root.exists() and any(root.iterdir()):
        hint = (
            f"resume it with `fidec train --resume {root}`" if (root / CONFIG_FILE).exists() else "empty it"
        )
        raise RunDirError(f"run directory {root} is not empty; {hint}, or choose another --run-dir")
    root.mkdir(parents=True, exist_ok=True)
    (root / "metrics").mkdir(exist_ok=True)
    (root / "checkpoints").mkdir(exist_ok=True)
    return RunPaths(root)


def write_config(paths: RunPaths, config: TrainConfig, **extra: Any) -> None:
    """``config.json``: the resolved config plus what is needed to rebuild the agent and reproduce the run."""
    import jax

    from fidec import __version__

    record = {
        "config": to_dict(config),
        **extra,
        "fidec_version": __version__,
        "jax_version": jax.__version__,
        "command": sys.argv,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    write_json_atomic(paths.config, record)


def read_config(run_dir: str | os.PathLike) -> tuple[TrainConfig, dict]:
    """(TrainConfig, full record) of a run directory, with ``run_dir`` set to where it is now."""
    root = Path(run_dir)
    path = root / CONFIG_FILE
    if not path.exists():
        raise RunDirError(f"{root} is not a fidec run directory: {CONFIG_FILE} is missing")
    record = json.loads(path.read_text())
    config = from_dict(TrainConfig, record["config"])
    return replace(config, run_dir=str(root)), record
