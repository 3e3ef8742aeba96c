"""Where a run's numbers go: the metrics tables always, TensorBoard and wandb when asked, a text log, progress bars.

``metrics/train.jsonl`` and ``metrics/eval.jsonl`` are the record (see :mod:`fidec.training.metrics`).
Nothing time-dependent goes into them (timings go to ``train.log`` and ``summary.json``).

wandb: one wandb run per seed, named ``<run name>-seed<k>`` and grouped under the run name; their ids are
kept in the run directory's ``wandb.json`` so that ``fidec train --resume`` continues the same wandb runs.
"""

from __future__ import annotations

import json
import secrets
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from tqdm.auto import tqdm

from fidec.files import write_json_atomic
from fidec.training.rundir import RunDir

# Training metrics shown in the progress bar (those the agent reports), in this order.
BAR_METRICS = ("critic_loss", "actor_loss", "bc_loss", "penalty", "alpha")


class TextLog:
    """``train.log``: timestamped lines; ``echo`` also prints them (above the progress bar).

    ``train.log`` keeps every line: a console that cannot be written (a closed pipe, a full device, a closed
    terminal) only stops the echo, never the run."""

    def __init__(self, run: RunDir, console: bool = True):
        self.path = run.log_path
        self.console = console
        self._stream = open(self.path, "a")

    def write(self, message: str, echo: bool = False) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        self._stream.write(f"{stamp} {message}\n")
        self._stream.flush()
        if echo and self.console:
            try:
                tqdm.write(message, file=sys.stderr)
            except (OSError, ValueError):  # ValueError: a closed stream
                self.console = False

    def close(self) -> None:
        if not self._stream.closed:
            self._stream.close()


def _scalars(values: Mapping[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in values.items() if isinstance(v, int | float) and not isinstance(v, bool)}


class OptionalLoggers:
    """TensorBoard (tensorboardX) and wandb, each only when enabled; neither is ever required."""

    def __init__(
        self,
        run: RunDir,
        config_dict: dict,
        seeds: Sequence[int],
        tensorboard: bool,
        wandb: bool,
        project: str,
        mode: str,
    ):
        self.tb = None
        self.wandb_runs: dict[int, Any] = {}
        if tensorboard:
            try:
                from tensorboardX import SummaryWriter
            except ImportError as exc:
                raise RuntimeError(
                    "tensorboard logging is on but tensorboardX is not installed: pip install tensorboardX "
                    "(or pip install 'fidec[tensorboard]'), or leave tensorboard off"
                ) from exc
            self.tb = SummaryWriter(str(run.tensorboard_dir))
        if wandb and mode != "disabled":
            self.wandb_runs = _open_wandb_runs(run, config_dict, seeds, project, mode)

    def log(self, group: str, step: int, seed: int, values: Mapping[str, Any]) -> None:
        scalars = _scalars(values)
        if self.tb is not None:
            for k, v in scalars.items():
                self.tb.add_scalar(f"seed_{seed}/{group}/{k}", v, step)
        if seed in self.wandb_runs:
            self.wandb_runs[seed].log({f"{group}/{k}": v for k, v in scalars.items()}, step=step)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
        for wandb_run in self.wandb_runs.values():
            wandb_run.finish()
        self.wandb_runs = {}


def _open_wandb_runs(run: RunDir, config_dict: dict, seeds: Sequence[int], project: str, mode: str) -> dict:
    try:
        import wandb as wandb_lib
    except ImportError as exc:
        raise RuntimeError(
            "wandb logging is on but wandb is not installed: pip install 'fidec[wandb]', or leave wandb off"
        ) from exc
    ids: dict[str, str] = {}
    if run.wandb_path.is_file():
        ids = json.loads(run.wandb_path.read_text())
    runs = {}
    name = run.root.name
    for seed in seeds:
        run_id = ids.get(str(seed)) or secrets.token_hex(8)  # wandb ids: lowercase letters and digits
        ids[str(seed)] = run_id
        runs[seed] = wandb_lib.init(
            project=project,
            id=run_id,
            resume="allow",
            name=f"{name}-seed{seed}",
            group=name,
            dir=str(run.root),
            mode=mode,
            config={**config_dict, "seed": seed},
            reinit="create_new",
        )
    write_json_atomic(run.wandb_path, ids)
    return runs


class RunLogger:
    """Train and eval tables plus the optional loggers, behind two calls: ``train`` and ``eval``."""

    def __init__(self, run: RunDir, optional: OptionalLoggers | None = None):
        self.train_table = run.metrics_table("train")
        self.eval_table = run.metrics_table("eval")
        self.optional = optional

    def resume_at(self, step: int | None) -> list[str]:
        """Keep rows up to ``step`` (None: keep all; 0 or a fresh run: none); returns a note per row that one
        copy had lost and that was rebuilt from the other."""
        self.train_table.load(step)
        self.eval_table.load(step)
        return [f"metrics/{note}" for note in self.train_table.notes + self.eval_table.notes]

    def _write(
        self, table, group: str, step: int, phase: str, per_seed: Mapping[int, Mapping[str, Any]]
    ) -> None:
        table.append(
            [{"step": step, "seed": seed, "phase": phase, **values} for seed, values in per_seed.items()]
        )
        if self.optional:
            for seed, values in per_seed.items():
                self.optional.log(group, step, seed, values)

    def train(self, step: int, phase: str, per_seed: Mapping[int, Mapping[str, Any]]) -> None:
        self._write(self.train_table, "train", step, phase, per_seed)

    def eval(self, step: int, phase: str, per_seed: Mapping[int, Mapping[str, Any]]) -> None:
        self._write(self.eval_table, "eval", step, phase, per_seed)

    def close(self) -> None:
        if self.optional:
            self.optional.close()


class Progress:
    """A progress bar over all steps: status (compiling / training / evaluating), steps/s, ETA, the latest
    losses and evaluation score.  A ticker refreshes it every second while a long block runs, so the elapsed
    time moves even before the first block (which includes compilation) ends."""

    def __init__(self, total: int, initial: int, enabled: bool):
        self.bar = tqdm(
            total=total,
            initial=initial,
            unit="step",
            disable=not enabled,
            dynamic_ncols=True,
            file=sys.stderr,
            smoothing=0.3,
        )
        self.enabled = enabled
        self.postfix: dict[str, str] = {}
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        if enabled:
            self._ticker = threading.Thread(target=self._tick, daemon=True)
            self._ticker.start()
        self.closed = False

    def _tick(self) -> None:
        while not self._stop.wait(1.0):
            try:
                self.bar.refresh()
            except Exception:  # a closed or detached bar: stop quietly
                return

    def _draw(self, action) -> None:
        """Run a drawing call; a console that cannot be written turns the bar off (the run goes on)."""
        if not self.enabled:
            return
        try:
            action()
        except (OSError, ValueError):
            self.enabled = False
            self._stop.set()

    def status(self, text: str) -> None:
        self._draw(lambda: self.bar.set_description_str(text, refresh=True))

    def advance(self, steps: int, metrics: Mapping[str, float] | None = None, **postfix: str) -> None:
        if metrics:
            self.postfix.update({k: f"{metrics[k]:.3g}" for k in BAR_METRICS if k in metrics})
        self.postfix.update(postfix)

        def draw() -> None:
            if self.postfix:
                self.bar.set_postfix(self.postfix, refresh=False)
            self.bar.update(steps)

        self._draw(draw)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(timeout=2.0)
        try:
            self.bar.close()
        except (OSError, ValueError):
            pass


class EpisodeBar:
    """A transient bar over the evaluation episodes of all seeds (``callback`` advances it by one)."""

    def __init__(self, total: int, enabled: bool, description: str = "evaluating"):
        self.bar = tqdm(
            total=total, unit="episode", desc=description, disable=not enabled, leave=False, file=sys.stderr
        )

    def callback(self) -> None:
        try:
            self.bar.update(1)
        except (OSError, ValueError):  # a console that cannot be written: the evaluation goes on
            self.bar.disable = True

    def close(self) -> None:
        try:
            self.bar.close()
        except (OSError, ValueError):
            pass
