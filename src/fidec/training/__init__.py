"""Training and evaluation runtime: ``train``, exact resume, multi-seed, offline-to-online, run directories.

    from fidec.training import make_train_config, train, evaluate_run
    result = train(make_train_config("fd", "cube-single-play-singletask-task1-v0", presets=["cpu"]))
    print(result.summary["aggregate"])
    evaluate_run(result.run_dir, episodes=50)

Modules: ``config`` (TrainConfig, scale presets), ``rundir`` (RunDir: the run directory's layout, config
record, checkpoints, metrics tables, summary, lock, ``load``), ``loop`` (train / resume: the phases and
their schedule), ``snapshot`` (what a checkpoint holds), ``blocks`` (fused jitted update blocks),
``seeds`` (vmapped or sequential seeds), ``programs`` (compiled programs, cached), ``replay`` (online
replay buffer), ``online`` (environment stepping), ``checkpoint`` (atomic, verified checkpoint files),
``metrics`` (the JSONL/CSV tables), ``logging`` (text log, optional loggers, progress), ``finite`` (NaN
checks), ``evaluation`` (policies, ``evaluate_run``), ``summary``, ``plots``, ``commands`` (the
``fidec train`` / ``fidec eval`` CLI), ``api`` (the Python API the package root re-exports:
``fidec.train``, ``fidec.load_run``, ``fidec.load_policy``, ``fidec.Policy``).
"""

from fidec.training.config import SCALES, ScalePreset, TrainConfig, make_train_config
from fidec.training.evaluation import evaluate_run
from fidec.training.loop import NonFiniteError, RunInterrupted, RunResult, resume, train
from fidec.training.rundir import LoadedRun, RunDir, RunDirError, read_config

__all__ = [
    "SCALES",
    "LoadedRun",
    "NonFiniteError",
    "RunDir",
    "RunDirError",
    "RunInterrupted",
    "RunResult",
    "ScalePreset",
    "TrainConfig",
    "evaluate_run",
    "make_train_config",
    "read_config",
    "resume",
    "train",
]
