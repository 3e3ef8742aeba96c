"""Where a run's numbers go: JSONL and CSV always, TensorBoard and wandb when asked, a text log, a progress bar.

``metrics/train.jsonl`` and ``metrics/eval.jsonl`` are the record: one JSON object per (step, seed).
The CSV files beside them hold the same rows (columns: the union of keys seen so far; the file is
rewritten when a new column appears, e.g. at the start of the online phase).  On resume both files are
cut back to the checkpoint's step, so a resumed run writes the same bytes as an uninterrupted one.
Nothing time-dependent goes into these files (timings go to ``train.log`` and ``summary.json``).
"""

from __future__ import annotations

import csv
import io
import json
import math
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fidec.atomic import write_text_atomic

FIRST_COLUMNS = ("step", "seed", "phase")


def _clean(value: Any) -> Any:
    """JSON-safe scalar: floats as Python floats (non-finite ones as strings), numpy scalars unwrapped."""
    if hasattr(value, "item") and getattr(value, "ndim", 0) == 0:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


class MetricsTable:
    """One metrics table as ``<name>.jsonl`` (appended) and ``<name>.csv`` (same rows)."""

    def __init__(self, directory: Path, name: str):
        self.jsonl_path = directory / f"{name}.jsonl"
        self.csv_path = directory / f"{name}.csv"
        self.rows: list[dict] = []
        self.columns: list[str] = []

    def load(self, max_step: int | None) -> list[dict]:
        """Read existing rows (skipping a torn last line), keep those with step <= max_step, rewrite both files."""
        rows = []
        if self.jsonl_path.exists():
            for line in self.jsonl_path.read_text().splitlines():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if max_step is None or row["step"] <= max_step:
                    rows.append(row)
        self.rows = rows
        self.columns = self._columns_for(rows)
        write_text_atomic(self.jsonl_path, "".join(json.dumps(r) + "\n" for r in rows))
        self._rewrite_csv()
        return rows

    @staticmethod
    def _columns_for(rows: Sequence[Mapping]) -> list[str]:
        columns = list(FIRST_COLUMNS)
        for row in rows:
            columns.extend(k for k in row if k not in columns)
        return columns

    def _rewrite_csv(self) -> None:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=self.columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows)
        write_text_atomic(self.csv_path, buffer.getvalue())

    def append(self, rows: Sequence[Mapping[str, Any]]) -> None:
        rows = [{k: _clean(v) for k, v in row.items()} for row in rows]
        with open(self.jsonl_path, "a") as stream:
            stream.write("".join(json.dumps(r) + "\n" for r in rows))
        self.rows.extend(rows)
        new_columns = self._columns_for(self.rows)
        if new_columns != self.columns:
            self.columns = new_columns
            self._rewrite_csv()
            return
        buffer = io.StringIO()
        csv.DictWriter(buffer, fieldnames=self.columns, lineterminator="\n").writerows(rows)
        with open(self.csv_path, "a") as stream:
            stream.write(buffer.getvalue())


class TextLog:
    """``train.log``: timestamped lines; ``echo`` also prints them (above the progress bar)."""

    def __init__(self, path: Path, console: bool = True):
        self.path = path
        self.console = console
        self._stream = open(path, "a")

    def write(self, message: str, echo: bool = False) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        self._stream.write(f"{stamp} {message}\n")
        self._stream.flush()
        if echo and self.console:
            from tqdm import tqdm

            tqdm.write(message, file=sys.stderr)

    def close(self) -> None:
        self._stream.close()


class OptionalLoggers:
    """TensorBoard (tensorboardX) and wandb, each only when enabled; neither is ever required."""

    def __init__(
        self, run_dir: Path, config_dict: dict, tensorboard: bool, wandb: bool, project: str, mode: str
    ):
        self.tb = None
        self.wandb_run = None
        if tensorboard:
            try:
                from tensorboardX import SummaryWriter
            except ImportError as exc:
                raise RuntimeError(
                    "tensorboard logging is on but tensorboardX is not installed: pip install tensorboardX "
                    "(or pip install 'fidec[tensorboard]'), or leave tensorboard off"
                ) from exc
            self.tb = SummaryWriter(str(run_dir / "tensorboard"))
        if wandb and mode != "disabled":
            try:
                import wandb as wandb_lib
            except ImportError as exc:
                raise RuntimeError(
                    "wandb logging is on but wandb is not installed: pip install wandb, or leave wandb off"
                ) from exc
            self.wandb_run = wandb_lib.init(
                project=project,
                dir=str(run_dir),
                mode=mode,
                config=config_dict,
                name=run_dir.name,
                resume="allow",
            )

    def log(self, group: str, step: int, seed: int, values: Mapping[str, Any]) -> None:
        scalars = {
            k: float(v) for k, v in values.items() if isinstance(v, int | float) and not isinstance(v, bool)
        }
        if self.tb is not None:
            for k, v in scalars.items():
                self.tb.add_scalar(f"seed_{seed}/{group}/{k}", v, step)
        if self.wandb_run is not None:
            self.wandb_run.log({f"seed_{seed}/{group}/{k}": v for k, v in scalars.items()}, step=step)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
        if self.wandb_run is not None:
            self.wandb_run.finish()


class RunLogger:
    """Train and eval tables plus the optional loggers, behind two calls: ``train`` and ``eval``."""

    def __init__(self, run_dir: Path, optional: OptionalLoggers | None = None):
        directory = run_dir / "metrics"
        directory.mkdir(parents=True, exist_ok=True)
        self.train_table = MetricsTable(directory, "train")
        self.eval_table = MetricsTable(directory, "eval")
        self.optional = optional

    def resume_at(self, step: int | None) -> None:
        """Keep rows up to ``step`` (None: keep all; 0 or a fresh run: none)."""
        self.train_table.load(step)
        self.eval_table.load(step)

    def train(self, step: int, phase: str, per_seed: Mapping[int, Mapping[str, Any]]) -> None:
        rows = [{"step": step, "seed": seed, "phase": phase, **values} for seed, values in per_seed.items()]
        self.train_table.append(rows)
        if self.optional:
            for seed, values in per_seed.items():
                self.optional.log("train", step, seed, values)

    def eval(self, step: int, phase: str, per_seed: Mapping[int, Mapping[str, Any]]) -> None:
        rows = [{"step": step, "seed": seed, "phase": phase, **values} for seed, values in per_seed.items()]
        self.eval_table.append(rows)
        if self.optional:
            for seed, values in per_seed.items():
                self.optional.log("eval", step, seed, values)

    def close(self) -> None:
        if self.optional:
            self.optional.close()


class Progress:
    """A tqdm bar over all steps with steps/s, ETA and the latest evaluation score."""

    def __init__(self, total: int, initial: int, enabled: bool):
        from tqdm import tqdm

        self.bar = tqdm(
            total=total,
            initial=initial,
            unit="step",
            disable=not enabled,
            dynamic_ncols=True,
            file=sys.stderr,
            smoothing=0.3,
        )
        self.postfix: dict[str, str] = {}

    def advance(self, steps: int, **postfix: str) -> None:
        self.postfix.update(postfix)
        if self.postfix:
            self.bar.set_postfix(self.postfix, refresh=False)
        self.bar.update(steps)

    def close(self) -> None:
        self.bar.close()
