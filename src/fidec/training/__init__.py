"""Training and evaluation runtime: ``train``, exact resume, multi-seed, offline-to-online, run directories.

    from fidec.training import make_train_config, train, evaluate_run
    result = train(make_train_config("fd", "cube-single-play-singletask-task1-v0", presets=["cpu"]))
    print(result.summary["aggregate"])
    evaluate_run(result.run_dir, episodes=50)

Modules: ``config`` (TrainConfig, scale presets), ``loop`` (train / resume), ``blocks`` (fused jitted
update blocks), ``seeds`` (vmapped or sequential seeds), ``replay`` (online replay buffer), ``online``
(environment stepping), ``checkpoint`` (atomic, verified checkpoints), ``logging`` (metrics files and
optional loggers), ``evaluation`` (policies, ``evaluate_run``), ``summary``, ``plots``, ``rundir``,
``commands`` (the ``fidec train`` / ``fidec eval`` CLI).
"""

from fidec.training.config import SCALES, ScalePreset, TrainConfig, make_train_config
from fidec.training.evaluation import evaluate_run
from fidec.training.loop import NonFiniteError, RunInterrupted, RunResult, resume, train
from fidec.training.rundir import RunDirError, read_config

__all__ = [
    "SCALES",
    "NonFiniteError",
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
