"""Collect finished runs (from sweep directories or plain run directories) and aggregate their scores.

Per (variant label, task), with s ranging over seeds and e over a seed's evaluations in step order:

    final_s = score at the last evaluation          last3_s = mean of the scores at the last three evaluations
    mean = (1/n) sum_s x_s                          std = sample standard deviation (ddof = 1; 0 for one seed)

(the same definitions as each run's summary, :mod:`fidec.training.summary`).  A family average is taken per
seed over the family's tasks, then mean and std over seeds, so its std measures seed-to-seed spread of the
average.  Across tasks, :func:`iqm_interval` gives the interquartile mean of every (task, seed) score with a
stratified bootstrap interval (Agarwal et al. 2021).  The best evaluation (max over e) is computed only when
asked, and always labelled as such.  Runs are read through :class:`~fidec.training.rundir.RunDir` only, sweep
folders through :func:`fidec.sweeps.manifest.read_manifest` only.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeGuard

import numpy as np

from fidec.errors import UserError
from fidec.presets import task_family
from fidec.stats import MeanStd, iqm, mean_std, stratified_bootstrap_ci
from fidec.sweeps.manifest import MANIFEST_NAME, is_sweep_folder, read_manifest
from fidec.training.rundir import RunDir
from fidec.training.summary import seed_scores

PROTOCOLS = ("last3", "final", "best")
PROTOCOL_TEXT = {
    "last3": "mean of the last three evaluations",
    "final": "the last evaluation",
    "best": "the best evaluation (optimistic: a max over evaluations, shown only on request)",
}
# Fisher-vs-isotropic displacement statistics (train metrics of FD and iso), reported when logged.
DISPLACEMENT_METRICS = (
    "delta_abs_mean",
    "delta_norm_mean",
    "penalty",
    "jacobian_term",
    "alpha",
    "fisher_condition",
)


class ReportInputError(UserError, ValueError):
    """The folders given to ``fidec report`` hold nothing it can read (the message says what was found)."""


@dataclass(frozen=True)
class RunData:
    """One finished run directory: who (label, agent, task), its score metric, and its per-seed series."""

    run_dir: Path
    label: str
    agent: str
    task: str
    metric: str
    seeds: tuple[int, ...]
    eval_rows: tuple[Mapping[str, Any], ...]
    train_last: Mapping[int, Mapping[str, float]] = field(default_factory=dict)
    wall_s: float | None = None  # the trial's wall time, as a sweep's manifest records it

    @property
    def family(self) -> str:
        return task_family(self.task)


@dataclass(frozen=True)
class Collection:
    """What :func:`collect_runs` found: finished runs, and notes on what was left out (and why)."""

    runs: tuple[RunData, ...]
    notes: tuple[str, ...] = ()
    sources: tuple[Path, ...] = ()


@dataclass(frozen=True)
class GroupScores:
    """Every seed of one (label, task): per-seed protocol scores and evaluation curves."""

    label: str
    task: str
    family: str
    metric: str
    per_seed: Mapping[int, Mapping[str, float]]
    curves: Mapping[int, tuple[np.ndarray, np.ndarray]]
    last3_steps: tuple[int, ...] = ()

    def stat(self, protocol: str) -> MeanStd:
        return mean_std([self.per_seed[s][protocol] for s in self.seeds])

    def scores(self, protocol: str) -> np.ndarray:
        """One score per seed (seed order) under ``protocol``."""
        return np.array([self.per_seed[s][protocol] for s in self.seeds], dtype=np.float64)

    @property
    def seeds(self) -> tuple[int, ...]:
        return tuple(sorted(self.per_seed))


# -- reading run directories ----------------------------------------------------------------------------


def last_train_values(rows: Iterable[Mapping[str, Any]], keys: Sequence[str]) -> dict[int, dict[str, float]]:
    """{seed: {key: last logged finite value}} for each key a seed logged."""
    last: dict[int, dict[str, tuple[int, float]]] = {}
    for row in rows:
        for key in keys:
            value = row.get(key)
            if _is_number(value):
                seen = last.setdefault(int(row["seed"]), {}).get(key)
                if seen is None or row["step"] >= seen[0]:
                    last[int(row["seed"])][key] = (int(row["step"]), float(value))
    return {seed: {k: v for k, (_, v) in values.items()} for seed, values in last.items()}


def read_run(run_dir: Path, label: str | None = None, wall_s: float | None = None) -> RunData:
    """A finished run directory: its summary (who and which metric) and its eval and train metrics."""
    run = RunDir(run_dir)
    summary = run.read_summary() if run.finished else None
    if summary is None:
        raise ReportInputError(f"{run_dir} has not finished (no summary yet); let `fidec train` complete it")
    seeds = tuple(int(s) for s in summary["seeds"])
    return RunData(
        run_dir=run_dir,
        label=label or summary["agent"],
        agent=summary["agent"],
        task=summary["env"],
        metric=summary["metric"],
        seeds=seeds,
        eval_rows=tuple(run.read_rows("eval")),
        train_last={
            s: v
            for s, v in last_train_values(run.read_rows("train"), DISPLACEMENT_METRICS).items()
            if s in seeds
        },
        wall_s=wall_s,
    )


def collect_runs(paths: Sequence[str | Path]) -> Collection:
    """Finished runs under ``paths``: sweep directories (with ``manifest.json``), run directories, or folders
    holding either (searched recursively).  Labels come from the sweep manifest (agent variants and grid
    points), else from the run's agent name.  Unfinished, failed or unreadable trials are listed in ``notes``.
    """
    runs: list[RunData] = []
    notes: list[str] = []
    seen: set[Path] = set()
    sources: list[Path] = []

    def add(run_dir: Path, label: str | None = None, wall_s: float | None = None) -> bool:
        try:
            run = read_run(run_dir, label, wall_s)
        except (UserError, KeyError, TypeError, ValueError) as exc:  # a damaged summary: say so, keep going
            notes.append(f"{run_dir}: unreadable run summary ({exc}); rerun or resume it")
            return False
        runs.append(run)
        return True

    for given in paths:
        root = Path(given)
        if not root.exists():
            raise ReportInputError(f"{str(root)!r} does not exist: give sweep directories or run directories")
        sweep_dirs = _sweep_dirs(root)
        for sweep_dir in sweep_dirs:
            sources.append(sweep_dir)
            found, missing = _sweep_trials(sweep_dir)
            for run_dir, label, wall_s in found:
                if run_dir.resolve() not in seen:
                    seen.add(run_dir.resolve())
                    add(run_dir, label, wall_s)
            notes.extend(missing)
        run_dirs = _finished_runs(root)
        for run_dir in run_dirs:
            if run_dir.resolve() in seen:
                continue
            seen.add(run_dir.resolve())
            if add(run_dir):
                sources.append(run_dir)
        if not sweep_dirs and not run_dirs:
            notes.append(f"{root}: no finished run and no sweep ({MANIFEST_NAME}) found")
    return Collection(tuple(runs), tuple(notes), tuple(dict.fromkeys(sources)))


def _walk(root: Path, matches: Any) -> list[Path]:
    """``root`` when ``matches(root)``, else every folder below it that matches (not looking inside a run's
    checkpoints, whose files have other meanings, nor below a folder that matched)."""
    if matches(root):
        return [root]
    found = []
    for folder, subfolders, _ in os.walk(root):
        here = Path(folder)
        if here != root and matches(here):
            found.append(here)
            subfolders[:] = []
            continue
        checkpoints = RunDir(here).checkpoints_dir.name
        subfolders[:] = sorted(d for d in subfolders if d != checkpoints)
    return found


def _finished_runs(root: Path) -> list[Path]:
    return _walk(root, lambda folder: RunDir(folder).finished)


def _sweep_dirs(root: Path) -> list[Path]:
    return _walk(root, is_sweep_folder)


def _sweep_trials(sweep_dir: Path) -> tuple[list[tuple[Path, str, float | None]], list[str]]:
    """(run directory, label, wall time) of each finished trial of a sweep, and a note for each other trial."""
    manifest = read_manifest(sweep_dir)
    agents = manifest.spec.get("agents", [])
    # A sweep whose spec was edited keeps the trials of earlier versions in its manifest (untouched).
    labels = {a.get("label") for a in agents if isinstance(a, dict)} if isinstance(agents, list) else set()
    found: list[tuple[Path, str, float | None]] = []
    notes: list[str] = []
    for trial_id, record in manifest.trials.items():
        run_dir = sweep_dir / record.run_dir
        if RunDir(run_dir).finished:
            wall = record.wall_s
            found.append((run_dir, record.label, float(wall) if _is_number(wall) else None))
        elif labels and record.label not in labels:
            notes.append(
                f"{trial_id} ({sweep_dir.name}): not run, its variant {record.label!r} was removed from the "
                "sweep's spec"
            )
        else:
            error = (record.error or "").strip().splitlines()
            why = f": {error[0]}" if error else ""
            notes.append(f"{trial_id} ({sweep_dir.name}): not finished, state {record.state}{why}")
    return found, notes


# -- aggregation ---------------------------------------------------------------------------------------


def group_scores(
    runs: Sequence[RunData], protocols: Sequence[str] = ("last3", "final")
) -> tuple[list[GroupScores], list[str]]:
    """One :class:`GroupScores` per (label, task), in first-seen order, and notes on duplicated seeds."""
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    notes: list[str] = []
    for run in runs:
        group = groups.setdefault(
            (run.label, run.task), {"metric": run.metric, "per_seed": {}, "curves": {}, "last3_steps": ()}
        )
        if group["metric"] != run.metric:
            raise ReportInputError(
                f"{run.run_dir}: metric {run.metric!r} differs from {group['metric']!r} of other runs of "
                f"{run.label} on {run.task}; report runs scored with different metrics separately"
            )
        for seed in run.seeds:
            if seed in group["per_seed"]:
                notes.append(
                    f"{run.label} on {run.task}: seed {seed} appears twice; kept the first, ignored {run.run_dir}"
                )
                continue
            rows = [r for r in run.eval_rows if int(r["seed"]) == seed and _is_number(r.get(run.metric))]
            if not rows:
                notes.append(f"{run.label} on {run.task}: seed {seed} has no evaluation in {run.run_dir}")
                continue
            rows.sort(key=lambda r: r["step"])
            scores = seed_scores(rows, run.metric)
            per_seed = {"final": scores["final"], "last3": scores["last3"]}
            if "best" in protocols:
                per_seed["best"] = max(float(r[run.metric]) for r in rows)
            group["per_seed"][seed] = per_seed
            group["curves"][seed] = (
                np.array([r["step"] for r in rows], dtype=np.int64),
                np.array([float(r[run.metric]) for r in rows]),
            )
            group["last3_steps"] = group["last3_steps"] or tuple(scores["last3_steps"])
    result = [
        GroupScores(label, task, task_family(task), g["metric"], g["per_seed"], g["curves"], g["last3_steps"])
        for (label, task), g in groups.items()
        if g["per_seed"]
    ]
    return result, notes


def _is_number(value: Any) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def family_average(groups: Sequence[GroupScores], protocol: str) -> MeanStd | None:
    """Per-seed mean over the tasks of ``groups`` (one label, one family), then mean and std over seeds.

    Uses the seeds every task has; None when they share no seed.
    """
    common = set.intersection(*(set(g.per_seed) for g in groups)) if groups else set()
    if not common:
        return None
    per_seed = [float(np.mean([g.per_seed[s][protocol] for g in groups])) for s in sorted(common)]
    return mean_std(per_seed)


@dataclass(frozen=True)
class AggregateInterval:
    """The interquartile mean of one label's runs over a set of tasks, with its bootstrap interval."""

    value: float
    low: float
    high: float
    num_tasks: int
    num_runs: int


def iqm_interval(
    groups: Sequence[GroupScores],
    protocol: str,
    num_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> AggregateInterval:
    """IQM of every (task, seed) score of ``groups`` (one label, one group per task) and its stratified
    bootstrap interval: seeds resampled with replacement within each task (Agarwal et al. 2021; rliable's
    ``get_interval_estimates`` with ``aggregate_iqm`` and the percentile method)."""
    strata = [g.scores(protocol) for g in groups]
    value, low, high = stratified_bootstrap_ci(strata, iqm, num_resamples, confidence, seed)
    return AggregateInterval(float(value), float(low), float(high), len(strata), sum(len(s) for s in strata))


@dataclass(frozen=True)
class AggregateScope:
    """A set of tasks aggregated together: one family, or every task scored with one metric."""

    name: str
    metric: str
    tasks: tuple[str, ...]


def aggregate_scopes(groups: Sequence[GroupScores]) -> list[AggregateScope]:
    """Each family, then "all tasks" of each metric whose tasks span more than one family."""
    ordered = lambda values: list(dict.fromkeys(values))
    tasks_of = lambda keep: tuple(ordered(g.task for g in groups if keep(g)))
    scopes = []
    for family in ordered(g.family for g in groups):
        tasks = tasks_of(lambda g, f=family: g.family == f)
        metric = next(g.metric for g in groups if g.family == family)
        scopes.append(AggregateScope(f"{family} ({_tasks_text(len(tasks))})", metric, tasks))
    metrics = ordered(g.metric for g in groups)
    for metric in metrics:
        if len({g.family for g in groups if g.metric == metric}) > 1:
            tasks = tasks_of(lambda g, m=metric: g.metric == m)
            suffix = f", {metric}" if len(metrics) > 1 else ""
            scopes.append(AggregateScope(f"all ({_tasks_text(len(tasks))}{suffix})", metric, tasks))
    return scopes


def _tasks_text(count: int) -> str:
    return f"{count} task{'s' if count != 1 else ''}"


def iqm_results(
    groups: Sequence[GroupScores],
    protocol: str,
    labels: Sequence[str] | None = None,
    num_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> list[tuple[AggregateScope, dict[str, AggregateInterval | None]]]:
    """Per scope (:func:`aggregate_scopes`) and label, :func:`iqm_interval` over the scope's tasks; None for a
    label that lacks one of them (its aggregate would not be comparable)."""
    labels = list(labels or dict.fromkeys(g.label for g in groups))
    by_key = {(g.label, g.task): g for g in groups}
    results = []
    for scope in aggregate_scopes(groups):
        row: dict[str, AggregateInterval | None] = {}
        for label in labels:
            members = [by_key.get((label, task)) for task in scope.tasks]
            row[label] = (
                iqm_interval([m for m in members if m], protocol, num_resamples, confidence, seed)
                if all(members)
                else None
            )
        results.append((scope, row))
    return results


def displacement_stats(runs: Sequence[RunData]) -> dict[tuple[str, str], dict[str, MeanStd]]:
    """{(label, family): {metric: mean and std over every (task, seed) of the family of its last logged
    value}}.  Per family, not pooled across families: the target divergence that the Lagrange multiplier
    drives the penalty to is set per family, so displacements of two families are not comparable."""
    values: dict[tuple[str, str], dict[str, list[float]]] = {}
    for run in runs:
        for seed_values in run.train_last.values():
            for key, value in seed_values.items():
                values.setdefault((run.label, run.family), {}).setdefault(key, []).append(value)
    return {
        group: {key: mean_std(v) for key in DISPLACEMENT_METRICS if (v := by_key.get(key))}
        for group, by_key in values.items()
    }
