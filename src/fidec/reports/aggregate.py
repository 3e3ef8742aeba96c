"""Collect finished runs (from sweep directories or plain run directories) and aggregate their scores.

Per (variant label, task), with s ranging over seeds and e over a seed's evaluations in step order:

    final_s = score at the last evaluation          last3_s = mean of the scores at the last three evaluations
    mean = (1/n) sum_s x_s                          std = sample standard deviation (ddof = 1; 0 for one seed)

(the same definitions as each run's ``summary.json``).  A family average is taken per seed over the
family's tasks, then mean and std over seeds, so its std measures seed-to-seed spread of the average.
The best evaluation (max over e) is computed only when asked, and always labelled as such.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fidec.presets import task_family
from fidec.training.summary import seed_scores

PROTOCOLS = ("last3", "final", "best")
PROTOCOL_TEXT = {
    "last3": "mean of the last three evaluations (the paper's protocol)",
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
SUMMARY_FILE = "summary.json"
MANIFEST_FILE = "manifest.json"


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
class Stat:
    """Mean and sample std of ``values`` (one per seed)."""

    mean: float
    std: float
    n: int
    values: tuple[float, ...] = ()


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

    def stat(self, protocol: str) -> Stat:
        seeds = sorted(self.per_seed)
        return mean_std([self.per_seed[s][protocol] for s in seeds])

    @property
    def seeds(self) -> tuple[int, ...]:
        return tuple(sorted(self.per_seed))


def mean_std(values: Sequence[float]) -> Stat:
    """Mean and sample standard deviation (ddof = 1; 0 for a single value)."""
    values = [float(v) for v in values]
    if not values:
        return Stat(math.nan, math.nan, 0, ())
    std = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    return Stat(float(np.mean(values)), std, len(values), tuple(values))


# -- reading run directories ----------------------------------------------------------------------------


def read_rows(metrics_dir: Path, name: str) -> list[dict[str, Any]]:
    """Rows of ``<name>.jsonl`` (the record; a torn last line is skipped), else of ``<name>.csv``."""
    jsonl, csv_path = metrics_dir / f"{name}.jsonl", metrics_dir / f"{name}.csv"
    rows: list[dict[str, Any]] = []
    if jsonl.exists():
        for line in jsonl.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    elif csv_path.exists():
        with open(csv_path, newline="") as f:
            rows = [
                {k: _number(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(f)
            ]
    return [{k: _number(v) for k, v in row.items()} for row in rows if "step" in row and "seed" in row]


def _number(value: Any) -> Any:
    """'12' -> 12, '0.5' / 'nan' -> float; other strings unchanged."""
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return value
        return (
            int(number) if number.is_integer() and "." not in value and "e" not in value.lower() else number
        )
    return value


def last_train_values(rows: Iterable[Mapping[str, Any]], keys: Sequence[str]) -> dict[int, dict[str, float]]:
    """{seed: {key: last logged finite value}} for each key a seed logged."""
    last: dict[int, dict[str, tuple[int, float]]] = {}
    for row in rows:
        for key in keys:
            value = row.get(key)
            if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
                seen = last.setdefault(int(row["seed"]), {}).get(key)
                if seen is None or row["step"] >= seen[0]:
                    last[int(row["seed"])][key] = (int(row["step"]), float(value))
    return {seed: {k: v for k, (_, v) in values.items()} for seed, values in last.items()}


def read_run(run_dir: Path, label: str | None = None) -> RunData:
    """A finished run directory (``summary.json`` and ``metrics/eval.jsonl`` or ``eval.csv``)."""
    summary = json.loads((run_dir / SUMMARY_FILE).read_text())
    metrics = run_dir / "metrics"
    eval_rows = read_rows(metrics, "eval")
    train_rows = read_rows(metrics, "train")
    seeds = tuple(int(s) for s in summary["seeds"])
    return RunData(
        run_dir=run_dir,
        label=label or summary["agent"],
        agent=summary["agent"],
        task=summary["env"],
        metric=summary["metric"],
        seeds=seeds,
        eval_rows=tuple(eval_rows),
        train_last={
            s: v for s, v in last_train_values(train_rows, DISPLACEMENT_METRICS).items() if s in seeds
        },
    )


def collect_runs(paths: Sequence[str | Path]) -> Collection:
    """Finished runs under ``paths``: sweep directories (with ``manifest.json``), run directories, or folders
    holding either (searched recursively).  Labels come from the sweep manifest (agent variants and grid
    points), else from the run's agent name.  Unfinished or failed trials are listed in ``notes``.
    """
    runs: list[RunData] = []
    notes: list[str] = []
    seen: set[Path] = set()
    sources: list[Path] = []
    for given in paths:
        root = Path(given)
        if not root.exists():
            raise FileNotFoundError(
                f"{str(root)!r} does not exist: give sweep directories or run directories"
            )
        sweep_dirs = [d for d in _dirs_with(root, MANIFEST_FILE) if _is_sweep_manifest(d / MANIFEST_FILE)]
        for sweep_dir in sweep_dirs:
            sources.append(sweep_dir)
            found, missing = _sweep_runs(sweep_dir)
            for run in found:
                if run.run_dir.resolve() not in seen:
                    seen.add(run.run_dir.resolve())
                    runs.append(run)
            notes.extend(missing)
        run_dirs = _dirs_with(root, SUMMARY_FILE)
        for run_dir in run_dirs:
            if run_dir.resolve() in seen:
                continue
            seen.add(run_dir.resolve())
            sources.append(run_dir)
            runs.append(read_run(run_dir))
        if not sweep_dirs and not run_dirs:
            notes.append(f"{root}: no finished run (no {SUMMARY_FILE}) and no sweep ({MANIFEST_FILE}) found")
    return Collection(tuple(runs), tuple(notes), tuple(dict.fromkeys(sources)))


def _dirs_with(root: Path, name: str) -> list[Path]:
    """``root`` when it holds ``name``, else every folder below it that does (not looking inside
    checkpoints, whose files have other meanings, nor below a folder that matched)."""
    if (root / name).is_file():
        return [root]
    found = []
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = sorted(d for d in subfolders if d != "checkpoints")
        if name in files and Path(folder) != root:
            found.append(Path(folder))
            subfolders[:] = []
    return found


def _is_sweep_manifest(path: Path) -> bool:
    """True for a sweep's ``manifest.json`` (a table with ``trials``), not another file of that name."""
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return isinstance(data, dict) and isinstance(data.get("trials"), dict)


def _sweep_runs(sweep_dir: Path) -> tuple[list[RunData], list[str]]:
    manifest = json.loads((sweep_dir / MANIFEST_FILE).read_text())
    runs, notes = [], []
    for trial_id, record in manifest["trials"].items():
        run_dir = sweep_dir / record["run_dir"]
        if (run_dir / SUMMARY_FILE).exists():
            runs.append(read_run(run_dir, label=record["label"]))
        else:
            error = (record.get("error") or "").strip().splitlines()
            why = f": {error[0]}" if error else ""
            notes.append(
                f"{trial_id} ({sweep_dir.name}): not finished, state {record.get('state', '?')}{why}"
            )
    return runs, notes


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
            raise ValueError(
                f"{run.run_dir}: metric {run.metric!r} differs from {group['metric']!r} of other runs of "
                f"{run.label} on {run.task}"
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


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def family_average(groups: Sequence[GroupScores], protocol: str) -> Stat | None:
    """Per-seed mean over the tasks of ``groups`` (one label, one family), then mean and std over seeds.

    Uses the seeds every task has; None when they share no seed.
    """
    common = set.intersection(*(set(g.per_seed) for g in groups)) if groups else set()
    if not common:
        return None
    per_seed = [float(np.mean([g.per_seed[s][protocol] for g in groups])) for s in sorted(common)]
    return mean_std(per_seed)


def displacement_stats(runs: Sequence[RunData]) -> dict[str, dict[str, Stat]]:
    """{label: {metric: mean and std over every (task, seed) of its last logged value}}."""
    values: dict[str, dict[str, list[float]]] = {}
    for run in runs:
        for seed_values in run.train_last.values():
            for key, value in seed_values.items():
                values.setdefault(run.label, {}).setdefault(key, []).append(value)
    return {
        label: {key: mean_std(v) for key in DISPLACEMENT_METRICS if (v := by_key.get(key))}
        for label, by_key in values.items()
    }
