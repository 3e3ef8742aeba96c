"""The real ``fidec`` command line on the toy point task (:mod:`fidec.training.toy`): no MuJoCo, tiny and fast.

The task name ``toy-point`` resolves to the toy environment, its dataset (or ``--dataset FILE``, a ``.npz`` of
ready transitions read by fidec's own loader) and its evaluator; everything else is fidec's own code.
In-process: ``install(monkeypatch.setattr)`` before invoking :data:`fidec.cli.app`; as a process:
``python tests/toy_cli.py train --env toy-point ...`` (what subprocess tests run: signals, pipes, users).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

TOY = "toy-point"
TOY_EPISODES = 20
SCRIPT = Path(__file__).resolve()
# The run every campaign case starts from: BC-flow on the toy task, tiny networks, 100 steps (every 25 logged,
# evaluated at 50 and 100, checkpoints at 50 and 100).
TRAIN_ARGS = ("train", "--agent", "bcflow", "--env", TOY, "--preset", "tiny", "--no-progress")


def install(patch: Callable[[Any, str, Any], None] = setattr) -> None:
    """Make ``toy-point`` a task of the CLI (``patch`` is ``setattr`` or ``monkeypatch.setattr``)."""
    import fidec.training.evaluation as evaluation
    import fidec.training.loop as loop
    from fidec.data.load import load_path
    from fidec.envs import evaluate
    from fidec.training.toy import evaluate_toy, toy_dataset

    real_parse, real_load, real_envs = loop.parse_task, loop.load_training_data, evaluation.eval_envs_for

    def parse_task(name: str):
        return None if name == TOY else real_parse(name)

    def load_training_data(config):
        if config.env != TOY:
            return real_load(config)
        if config.dataset is None:
            return toy_dataset(TOY_EPISODES)
        return load_path(config.dataset, action_policy=config.action_policy)[0]

    def eval_envs_for(agent_config, env_name, *args, **kwargs):
        return None if env_name == TOY else real_envs(agent_config, env_name, *args, **kwargs)

    def evaluator(policy, env_name, episodes, seed, **kwargs):
        if env_name == TOY:
            return evaluate_toy(policy, env_name, episodes, seed)
        return evaluate(policy, env_name, episodes, seed, **kwargs)

    patch(loop, "parse_task", parse_task)
    patch(loop, "load_training_data", load_training_data)
    patch(loop, "eval_envs_for", eval_envs_for)
    patch(evaluation, "eval_envs_for", eval_envs_for)
    patch(evaluation, "default_evaluator", lambda: evaluator)


if __name__ == "__main__":
    install()
    from fidec.cli import main

    sys.argv[0] = "fidec"
    main()
