"""The settings both sides of the parity runs share (docs/parity.md), in one place."""

from __future__ import annotations

PARITY = {
    "env": "cube-single-play-singletask-task1-v0",
    "dataset_episodes": 100,
    "hidden": (256, 256),
    "batch_size": 128,
    "steps": 20_000,
    "log_interval": 1_000,
    "eval_interval": 5_000,
    "eval_episodes": 20,
}

# The per-family flags the official codes were run with: FD from its scripts/ogbench_env_flags.sh (the
# family's entry; that script lists only the families' default tasks), FQL from its README's command list.
FAMILY_FLAGS = {
    "fd": {
        "cube-single-play": {"normalize_q_loss": True, "target_divergence": 0.001},
        "puzzle-3x3-play": {"normalize_q_loss": True, "target_divergence": 0.005},
    },
    "fql": {
        "cube-single-play": {"alpha": 300},
        "puzzle-3x3-play": {"alpha": 1000},
    },
}


def family_of(env: str) -> str:
    """'cube-single-play-singletask-task1-v0' -> 'cube-single-play'."""
    return env.split("-singletask")[0]
