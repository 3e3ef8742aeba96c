"""The per-block health check: a non-finite loss or parameter stops the run; a non-finite diagnostic is reported."""

from __future__ import annotations

from collections.abc import Sequence


class NonFiniteError(RuntimeError):
    """A loss or parameter became NaN/inf; the message names the step, the metric and the last good checkpoint."""


def nonfinite_problem(step: int, summary: dict) -> str | None:
    """What went non-finite in one seed's block summary (None when training may go on).

    Losses are the metrics named ``*loss*``; diagnostics such as the Fisher condition number can legitimately
    overflow for nearly singular metrics without harming training (see :func:`nonfinite_diagnostics`).
    """
    nonfinite = {k: int(v) for k, v in summary["first_nonfinite"].items() if int(v) >= 0}
    losses = {k: v for k, v in nonfinite.items() if "loss" in k}
    if losses:
        name, first = min(losses.items(), key=lambda kv: (kv[1], kv[0]))
        others = sorted(k for k in losses if k != name)
        what = f"loss '{name}' became non-finite at step {first}"
        return what + (f" (also: {', '.join(others)})" if others else "")
    if not bool(summary["params_finite"]):
        return f"parameters became non-finite in the block ending at step {step}"
    return None


def nonfinite_diagnostics(summary: dict) -> dict[str, int]:
    """{diagnostic metric: first non-finite step} of one seed's block summary (losses excluded)."""
    return {k: int(v) for k, v in summary["first_nonfinite"].items() if int(v) >= 0 and "loss" not in k}


def stop_message(seed: int, problem: str, last_saved: int, checkpoints_dir: object) -> str:
    kept = (
        f"the last good checkpoint is step {last_saved} in {checkpoints_dir}"
        if last_saved >= 0
        else "no checkpoint had been saved yet"
    )
    return (
        f"training stopped: seed {seed}: {problem}; {kept}. Lower the learning rate (--set agent.lr=...), check the "
        f"dataset's rewards/observations (fidec data info), or start a new run with a changed config."
    )


def check_seeds(step: int, seeds: Sequence[int], summaries: Sequence[dict]) -> tuple[int, str] | None:
    """The first (seed, problem) that must stop the run, or None."""
    for seed, summary in zip(seeds, summaries, strict=True):
        problem = nonfinite_problem(step, summary)
        if problem is not None:
            return seed, problem
    return None
