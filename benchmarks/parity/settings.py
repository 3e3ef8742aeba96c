"""The settings both sides of the parity runs share (docs/parity.md), in one place."""

from __future__ import annotations

PARITY = {
    "env": "cube-single-play-singletask-task1-v0",
    "dataset_episodes": 100,
    "hidden": (256, 256),
    "batch_size": 128,
    "steps": 20_000,
    "log_interval": 1_000,
    "eval_interval": 2_000,
    "eval_episodes": 20,
}

# The flags the official codes were run with.  FD: the paper's grid script (scripts/run_fqlscope_offline_grid_2x4090.sh:
# fisher_t 0.90, fisher_t_width 0.05, 8 Fisher samples, damping 1e-3, normalize_q_loss false) with the family's
# entry of scripts/fql_scope_registry.sh (target_divergence); fidec's side is `--preset official-grid`.
# FQL: its README's command list (alpha per family, normalisation off); fidec's side is `fql`.
FD_GRID = {
    "fisher_t": 0.90,
    "fisher_t_width": 0.05,
    "num_fisher_samples": 8,
    "fisher_damping": 1e-3,
    "normalize_q_loss": False,
}
FAMILY_FLAGS = {
    "fd": {
        "cube-single-play": {**FD_GRID, "target_divergence": 0.001},
        "puzzle-3x3-play": {**FD_GRID, "target_divergence": 0.005},
    },
    "fql": {
        "cube-single-play": {"alpha": 300},
        "puzzle-3x3-play": {"alpha": 1000},
    },
}


def family_of(env: str) -> str:
    """'cube-single-play-singletask-task1-v0' -> 'cube-single-play'."""
    return env.split("-singletask")[0]
