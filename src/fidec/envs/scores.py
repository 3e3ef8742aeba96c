"""D4RL normalised scores: 100 * (R - R_min) / (R_max - R_min).

Reference returns are those of ``d4rl/infos.py`` (REF_MIN_SCORE / REF_MAX_SCORE, Fu et al., 2020); the
Adroit v1 entries reuse the v0 (``<task>-human-v0``) references, as ``infos.py`` does. AntMaze returns
are 0 or 1 (goal reached), so its references are (0, 1).
"""

from __future__ import annotations

import numpy as np

# (R_min, R_max) from d4rl/infos.py.
_ADROIT_REFERENCE = {
    "pen": (96.262799, 3076.8331017826877),
    "hammer": (-274.856578, 12794.134825156867),
    "relocate": (-6.425911, 4233.877797728884),
    "door": (-56.512833, 2880.5693087298737),
}
D4RL_REFERENCE_RETURNS: dict[str, tuple[float, float]] = {
    **{
        f"antmaze-{maze}-v{v}": (0.0, 1.0)
        for maze in ("umaze", "umaze-diverse", "medium-play", "medium-diverse", "large-play", "large-diverse")
        for v in (0, 2)
    },
    **{
        f"{hand}-{quality}-v{v}": bounds
        for hand, bounds in _ADROIT_REFERENCE.items()
        for quality in ("human", "cloned", "expert")
        for v in (0, 1)
    },
}


def normalized_score(task_name: str, episode_return: float | np.ndarray) -> float | np.ndarray:
    """D4RL normalised score x100: 100 (R - R_min) / (R_max - R_min)."""
    if task_name not in D4RL_REFERENCE_RETURNS:
        raise KeyError(
            f"No D4RL reference returns for {task_name!r}; known: {', '.join(sorted(D4RL_REFERENCE_RETURNS))}."
        )
    low, high = D4RL_REFERENCE_RETURNS[task_name]
    return 100.0 * (np.asarray(episode_return) - low) / (high - low)
