"""Render the result pages from their templates and the data files the code wrote.

    python benchmarks/pages/render.py            # write docs/results.md, parity.md, diagnostics.md, README blocks
    python benchmarks/pages/render.py --check    # exit 1 and name every page that differs from its rendering

Pages and their templates (``benchmarks/pages/templates``):

    docs/results.md       results.md          docs/results/{scores,aggregate}.csv, tables.md, kl/*.json, ...
    docs/parity.md        parity.md           docs/parity/parity.json (through benchmarks/parity/compare.py)
    docs/diagnostics.md   diagnostics.md      docs/demo/*.json
    README.md             readme_*.md         the blocks between ``<!-- begin rendered: NAME -->`` and
                                              ``<!-- end rendered: NAME -->``

A template is Markdown with ``{{ expression }}`` fields.  An expression is Python evaluated against its page's
helpers (the methods of :class:`Results`, :class:`Parity`, :class:`Diagnostics`, each reading its files once):
every number on a page comes from a file through one of them, and every sentence about a difference between
two groups of seeds takes its words from :func:`fidec.stats.compare_groups`.  ``check(condition, why)`` renders
nothing and stops the rendering when a claim the prose makes no longer holds for the files, so that new data
cannot silently sit under old prose.  ``tests/test_docs_pages.py`` renders every page from the committed files
and compares it with the committed page.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import itertools
import json
import math
import re
import statistics
import sys
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from fidec.data.generate import OFFICIAL_MAX_EPISODE_STEPS, OFFICIAL_NUM_EPISODES
from fidec.envs.registry import SUITES
from fidec.formatting import format_fixed, format_number, listed, markdown_table
from fidec.presets import NETWORK_PRESETS, get_preset
from fidec.reports.tables import BOLD_RULE, distinct_resamples, last3_span_text
from fidec.stats import Comparison, compare_groups
from fidec.training.config import SCALES

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = Path(__file__).resolve().parent / "templates"
PAGES = {
    "docs/results.md": "results.md",
    "docs/parity.md": "parity.md",
    "docs/diagnostics.md": "diagnostics.md",
}
README_BLOCKS = {"results": "readme_results.md", "diagnostics": "readme_diagnostics.md"}
FIELD = re.compile(r"\{\{(.+?)\}\}", re.DOTALL)
SCALE = 100.0  # success rates: stored as fractions, shown in %


class RenderError(RuntimeError):
    """A template field that cannot be rendered from the files, or a prose claim the files no longer support."""


SET = re.compile(r"^\{% set (\w+) = (.+?) %\}\n", re.MULTILINE)


def render_template(text: str, namespace: Mapping[str, Any], name: str) -> str:
    """Replace every ``{{ expression }}`` by ``str(eval(expression, namespace))``, after evaluating the
    template's ``{% set NAME = expression %}`` lines (each on a line of its own, removed from the output) in
    order into the namespace."""
    names = dict(namespace)
    for match in SET.finditer(text):
        try:
            names[match.group(1)] = eval(match.group(2), {"__builtins__": __builtins__, **names})
        except Exception as exc:
            raise RenderError(
                f"{name}: {match.group(0).strip()} failed: {type(exc).__name__}: {exc}"
            ) from exc
    text = SET.sub("", text)

    def field(match: re.Match[str]) -> str:
        expression = " ".join(match.group(1).split())
        try:
            return str(eval(expression, {"__builtins__": __builtins__, **names}))
        except RenderError as exc:
            raise RenderError(f"{name}: {{{{ {expression} }}}}: {exc}") from exc
        except Exception as exc:
            raise RenderError(f"{name}: {{{{ {expression} }}}} failed: {type(exc).__name__}: {exc}") from exc

    return FIELD.sub(field, text)


def check(condition: object, why: str) -> str:
    """Nothing, when ``condition`` holds; else stop: the prose next to this field says ``why``."""
    if not condition:
        raise RenderError(f"a claim of the prose no longer holds for the files: {why}")
    return ""


def claim(comparison: Comparison, verdict: str, scale: float = SCALE, unit: str = " points") -> str:
    """The comparison in words (:meth:`Comparison.describe`), after checking that its verdict is ``verdict``."""
    check(comparison.verdict == verdict, f"expected {verdict!r}, the files give {comparison.verdict!r}")
    return comparison.describe(scale=scale, unit=unit)


def sci(value: float, digits: int = 2) -> str:
    """6.0023e-4 -> '6.0e-4' (``digits`` significant digits, no padded exponent)."""
    text = f"{value:.{digits - 1}e}"
    mantissa, exponent = text.split("e")
    return f"{mantissa}e{int(exponent)}"


def pct(value: float, decimals: int = 1) -> str:
    """A fraction in percent with fixed decimals: 0.1111 -> '11.1'."""
    return format_fixed(SCALE * value, decimals)


def share(value: float, decimals: int = 1) -> str:
    """A fraction as a signed percentage: 0.0674 -> '+6.7%' (never '-0.0%')."""
    return f"{round(100 * value, decimals) + 0.0:+.{decimals}f}%"


def signed(value: float, decimals: int = 1) -> str:
    """A fraction in percent with its sign: 0.044 -> '+4.4' (never '-0.0')."""
    return f"{round(SCALE * value, decimals) + 0.0:+.{decimals}f}"


def thousands(step: int) -> str:
    """20000 -> '20k', 1000000 -> '1M'."""
    if step >= 1_000_000 and step % 1_000_000 == 0:
        return f"{step // 1_000_000}M"
    return f"{step / 1000:g}k" if step >= 1000 else str(step)


def load_module(path: Path, name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise RenderError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as stream:
        return list(csv.DictReader(stream))


def markdown_tables(text: str) -> dict[str, list[list[str]]]:
    """Pipe tables of a Markdown file written by ``fidec report``, keyed by their bold title: rows of cells."""
    tables: dict[str, list[list[str]]] = {}
    title = None
    for line in text.splitlines():
        head = re.match(r"\*\*(.+?)\.\*\*", line)
        if head:
            title = head.group(1)
            tables[title] = []
        elif line.startswith("|") and title is not None and not line.startswith("|---"):
            tables[title].append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return tables


# -- docs/results.md ------------------------------------------------------------------------------------


class Results:
    """docs/results/: the CPU study's report files, its KL checks, and the parity file for the official run."""

    def __init__(self, root: Path = ROOT):
        self.root = root
        self.dir = root / "docs" / "results"
        self.scores = read_csv(self.dir / "scores.csv")
        self.aggregate = read_csv(self.dir / "aggregate.csv")
        self.tables = markdown_tables((self.dir / "tables.md").read_text())
        self.labels = list(dict.fromkeys(r["label"] for r in self.scores))
        self.tasks = list(dict.fromkeys(r["task"] for r in self.scores))
        self.protocols = list(dict.fromkeys(r["protocol"] for r in self.scores))
        # The spec these files came from (copied beside them when the study is reported), not whatever
        # examples/cpu-study.toml says today: a spec that grew since is a study still to run.
        self.spec = tomllib.loads((self.dir / "study.toml").read_text())
        self._by_key = {(r["protocol"], r["task"], r["label"]): r for r in self.scores}
        self._comparisons: dict[tuple[str, str, str, str], Comparison] = {}

    def next_spec_trials(self) -> int:
        """How many trials examples/cpu-study.toml (the study that replaces this one) holds."""
        spec = tomllib.loads((self.root / "examples" / "cpu-study.toml").read_text())
        return len(spec["agents"]) * len(spec["tasks"]) * len(spec["seeds"])

    def next_study_text(self) -> str:
        """What docs/results-next/ (``fidec report`` of the extended study's finished trials) holds: its labels with
        the seeds each finished per task, or that there is none yet."""
        path = self.root / "docs" / "results-next" / "scores.csv"
        if not path.is_file():
            return "None of its trials has been reported yet."
        rows = [r for r in read_csv(path) if r["protocol"] == "last3"]
        by_label: dict[str, list[str]] = {}
        for r in rows:
            task = r["task"].split("-singletask")[0]
            by_label.setdefault(r["label"], []).append(f"{task} {r['n_seeds']}")
        parts = [f"{label} ({', '.join(tasks)})" for label, tasks in by_label.items()]
        return (
            "Its trials that had finished when its report was written (label, then the seeds finished per "
            f"task: {listed(parts)}) are in [results-next/report.md](results-next/report.md), as `fidec report "
            "runs/sweeps/cpu-study --out docs/results-next` writes them (run with the code of commit 719c8e9); "
            "the comparisons on this page do not use them."
        )

    def report_says(self, text: str) -> bool:
        """Whether the committed report (results/report.md) contains ``text``."""
        return text in (self.dir / "report.md").read_text()

    # the study's settings -------------------------------------------------------------------------
    def setting(self, key: str) -> Any:
        """A [train] value of the study's spec (results/study.toml), else its scale preset's (e.g. 'agent.batch_size')."""
        train = self.spec.get("train", {})
        if key in train:
            return train[key]
        return SCALES[self.spec.get("scale", "cpu")].overrides[key]

    @cached_property
    def last3_steps(self) -> list[int]:
        """The steps of the last three evaluations, from the report's per-task last3 caption."""
        text = (self.dir / "tables.md").read_text()
        found = re.search(r"last three evaluations[^.]*?, at steps (\d+(?:, \d+)*)", text)
        if not found:
            raise RenderError("tables.md states no last-three steps")
        steps = [int(s) for s in found.group(1).split(",")]
        check(
            steps[-1] == self.setting("steps")
            and all(b - a == self.setting("eval_interval") for a, b in itertools.pairwise(steps)),
            f"docs/results was evaluated at {steps}, docs/results/study.toml says every "
            f"{self.setting('eval_interval')} steps to {self.setting('steps')}: rerun the study or keep the spec",
        )
        return steps

    def last3_text(self, inline: bool = False) -> str:
        """'10k, 15k and 20k steps (50-100% of training)', or with ``inline`` '..., 50-100% of training'."""
        steps = self.last3_steps
        share = f"{100 * steps[0] / steps[-1]:.0f}-100% of training"
        where = f"{listed([thousands(s) for s in steps])} steps"
        return f"{where}, {share}" if inline else f"{where} ({share})"

    def transitions_text(self) -> str:
        """'100k' transitions of the study's generated datasets."""
        return thousands(int(self.setting("dataset_episodes")) * (OFFICIAL_MAX_EPISODE_STEPS - 1))

    def last3_caption(self) -> str:
        return last3_span_text(self.last3_steps).removeprefix(", ")

    @cached_property
    def seeds(self) -> list[int]:
        seeds = sorted({int(s) for r in self.scores for s in r["seeds"].split()})
        check(
            seeds == sorted(self.spec["seeds"]),
            f"scores.csv has seeds {seeds}, the spec {self.spec['seeds']}",
        )
        return seeds

    def n_seeds(self) -> int:
        return len(self.seeds)

    def dataset_text(self) -> str:
        episodes = int(self.setting("dataset_episodes"))
        transitions = episodes * (OFFICIAL_MAX_EPISODE_STEPS - 1)
        return (
            f"{episodes} generated episodes = {thousands(transitions)} transitions "
            f"(+{max(1, episodes // 10)} validation episodes)"
        )

    def paper_dataset_text(self) -> str:
        episodes = set(OFFICIAL_NUM_EPISODES[f] for f in ("cube-single", "puzzle-3x3"))
        check(len(episodes) == 1, "the official datasets of the two families differ in size")
        return (
            f"official datasets, {thousands(episodes.pop() * (OFFICIAL_MAX_EPISODE_STEPS - 1))} transitions"
        )

    def networks_text(self, scale: str | None = None) -> str:
        if scale == "paper":
            values = NETWORK_PRESETS["paper-networks"].values
            hidden, batch = values["network.actor_hidden"], values["batch_size"]
        else:
            hidden, batch = self.setting("agent.network.actor_hidden"), self.setting("agent.batch_size")
        return f"{len(hidden)} x {hidden[0]} MLPs, batch {batch}"

    def paper(self, key: str) -> Any:
        return SCALES["paper"].overrides[key]

    def num_state_tasks(self) -> int:
        return len(SUITES["ogbench-state-50"])

    def families_text(self) -> str:
        from fidec.envs.registry import OGBENCH_NUM_TASKS, OGBENCH_STATE_FAMILIES

        return f"{len(OGBENCH_STATE_FAMILIES)} families x {OGBENCH_NUM_TASKS}"

    def paper_last3_text(self) -> str:
        """The paper scale's last three evaluation steps, from ``--preset paper``."""
        steps, every = self.paper("steps"), self.paper("eval_interval")
        last3 = [steps - 2 * every, steps - every, steps]
        return (
            f"{listed([thousands(s) for s in last3])} steps ({100 * last3[0] / steps:.0f}-100% of training)"
        )

    def share_of_paper(self, key: str) -> str:
        """This study's value of ``key`` as a percentage of the paper scale's ('steps': 20k / 1M = 2%)."""
        if key == "data":
            ours = int(self.setting("dataset_episodes"))
            theirs = OFFICIAL_NUM_EPISODES["cube-single"]
        else:
            ours, theirs = self.setting(key), self.paper(key)
        return f"{100 * ours / theirs:.0f}%"

    def estimator_text(self, preset: str | None = None) -> str:
        """'tweedie score (t v - x) / (1 - t) at t = 0.98, M = 4' for fidec's defaults, or a named preset's."""
        from fidec.fisher import FisherConfig

        fields = dict(vars(FisherConfig()))
        if preset is not None:
            fields |= {
                k.removeprefix("fisher."): v
                for k, v in get_preset(preset, "fd").values.items()
                if k.startswith("fisher.")
            }
        score = "tweedie score (t v - x)/(1 - t)" if fields["estimator"] == "tweedie" else "v/(1 - t)"
        at = (
            f"t = {fields['t_eps']}"
            if fields["t_eps_max"] is None
            else f"t ~ U[{fields['t_eps']}, {fields['t_eps_max']}]"
        )
        return f"{score} at {at}, M = {fields['num_samples']}"

    def fidec_t(self) -> float:
        from fidec.fisher import FisherConfig

        return FisherConfig().t_eps

    # scores --------------------------------------------------------------------------------------
    def row(self, protocol: str, task: str, label: str) -> dict[str, str]:
        key = (protocol, task, label)
        if key not in self._by_key:
            raise RenderError(f"scores.csv has no {key}; it has labels {self.labels} and tasks {self.tasks}")
        return self._by_key[key]

    def values(self, protocol: str, task: str, label: str) -> list[float]:
        return [float(v) for v in self.row(protocol, task, label)["values"].split()]

    def mean(self, protocol: str, task: str, label: str) -> float:
        return float(self.row(protocol, task, label)["mean"])

    def score(self, protocol: str, task: str, label: str) -> str:
        """'11.1 ± 5.1' (success in %, mean ± sample std over seeds)."""
        r = self.row(protocol, task, label)
        return f"{pct(float(r['mean']))} ± {pct(float(r['std']))}"

    def span(self, protocol: str, task: str, labels: Iterable[str]) -> str:
        """'9-16': the range of the labels' means (rounded to whole percent)."""
        means = [SCALE * self.mean(protocol, task, label) for label in labels]
        low, high = f"{min(means):.0f}", f"{max(means):.0f}"
        return low if low == high else f"{low}-{high}"

    def cmp(self, protocol: str, task: str, a: str, b: str) -> Comparison:
        """``b`` against ``a``: :func:`fidec.stats.compare_groups` of their per-seed scores."""
        key = (protocol, task, a, b)
        if key not in self._comparisons:
            self._comparisons[key] = compare_groups(
                self.values(protocol, task, a), self.values(protocol, task, b)
            )
        return self._comparisons[key]

    def short(self, task: str) -> str:
        """'cube-single-play-singletask-task1-v0' -> 'cube-single task 1'."""
        found = re.match(r"(.+?)-play-singletask-task(\d+)-v0$", task)
        return f"{found.group(1)} task {found.group(2)}" if found else task

    def score_table(self, protocol: str) -> str:
        """Rows: tasks; columns: labels; mean ± std with the report's bold cells (scores.csv ``bold``)."""
        rows = []
        for task in self.tasks:
            cells = []
            for label in self.labels:
                r = self.row(protocol, task, label)
                text = self.score(protocol, task, label)
                cells.append(f"**{text}**" if r["bold"] == "1" else text)
            rows.append([task, *cells])
        return markdown_table(["task", *self.labels], rows).rstrip("\n")

    def iqm_table(self, protocol: str) -> str:
        """Rows: the report's sets of tasks; IQM [95% interval] (n), rows of fewer than 4 scores as means."""
        rows = []
        scopes = list(dict.fromkeys(r["scope"] for r in self.aggregate if r["protocol"] == protocol))
        for scope in scopes:
            by_label = {
                r["label"]: r for r in self.aggregate if r["protocol"] == protocol and r["scope"] == scope
            }
            ns = {int(r["n_runs"]) for r in by_label.values()}
            cells = []
            for label in self.labels:
                r = by_label.get(label)
                if r is None:
                    cells.append("-")
                    continue
                text = f"{pct(float(r['iqm']))} [{pct(float(r['ci_low']))}, {pct(float(r['ci_high']))}] (n={r['n_runs']})"
                cells.append(f"**{text}**" if r["bold"] == "1" else text)
            name = f"{scope}, mean (n < 4)" if max(ns) < 4 else scope
            rows.append([name, *cells])
        return markdown_table(["tasks", *self.labels], rows).rstrip("\n")

    def iqm(self, protocol: str, scope: str, label: str) -> str:
        """'10.0 [8.3, 15.0]'."""
        for r in self.aggregate:
            if (r["protocol"], r["scope"], r["label"]) == (protocol, scope, label):
                return f"{pct(float(r['iqm']))} [{pct(float(r['ci_low']))}, {pct(float(r['ci_high']))}]"
        raise RenderError(f"aggregate.csv has no ({protocol}, {scope}, {label})")

    def iqm_scopes(self) -> list[str]:
        return list(dict.fromkeys(r["scope"] for r in self.aggregate))

    def resamples(self, n: int = 3) -> int:
        return distinct_resamples(n)

    def bold_rule(self, interval: str) -> str:
        return BOLD_RULE.format(interval=interval)

    def comparison_table(self, protocol: str, pairs: Sequence[tuple[str, str]]) -> str:
        """One row per (task, pair): both means, the difference with its Welch and bootstrap intervals, the
        detectable difference and the verdict, all from :func:`fidec.stats.compare_groups`."""
        rows = []
        for task in self.tasks:
            for a, b in pairs:
                c = self.cmp(protocol, task, a, b)
                detectable = "-" if c.detectable is None else pct(c.detectable)
                welch = "-" if c.welch is None else f"[{signed(c.welch[0])}, {signed(c.welch[1])}]"
                rows.append(
                    [
                        self.short(task),
                        f"{b} - {a}",
                        signed(c.difference),
                        welch,
                        f"[{signed(c.bootstrap[0])}, {signed(c.bootstrap[1])}]",
                        detectable,
                        c.verdict,
                    ]
                )
        headers = [
            "task",
            "difference",
            "points",
            "Welch 95%",
            "bootstrap 95%",
            "detectable (80% power)",
            "verdict",
        ]
        return markdown_table(headers, rows, align="llrrrrl").rstrip("\n")

    def which(self, protocol: str, task: str, pairs: Sequence[tuple[str, str]], verdict: str) -> list[str]:
        """'b - a' of the pairs whose comparison has ``verdict``."""
        return [f"{b} - {a}" for a, b in pairs if self.cmp(protocol, task, a, b).verdict == verdict]

    def detectable_span(
        self, protocols: Sequence[str], tasks: str | Sequence[str], pairs: Sequence[tuple[str, str]]
    ) -> str:
        """'10-39': the range of the detectable differences (points) of the pairs not distinguished."""
        tasks = [tasks] if isinstance(tasks, str) else list(tasks)
        values = [
            SCALE * c.detectable
            for p in protocols
            for task in tasks
            for a, b in pairs
            if (c := self.cmp(p, task, a, b)).verdict == "not distinguished" and c.detectable is not None
        ]
        if not values:
            raise RenderError(f"every pair is distinguished or untestable on {tasks}")
        return f"{min(values):.0f}-{max(values):.0f}"

    # displacements ---------------------------------------------------------------------------------
    @cached_property
    def displacement(self) -> tuple[list[str], dict[str, list[str]]]:
        """(columns, {row name: cells}) of the report's displacement table (tables.md)."""
        rows = self.tables.get("Displacement statistics (Fisher vs isotropic)")
        if not rows:
            raise RenderError("tables.md has no displacement table")
        header, *body = rows
        return header[1:], {r[0]: r[1:] for r in body}

    def displacement_pooled(self) -> bool:
        """Whether the report's displacement rows pool the tasks (one row per label, the older report)."""
        return all("," not in name for name in self.displacement[1])

    def disp(self, row: str, column: str) -> str:
        columns, rows = self.displacement
        return rows[row][columns.index(column)]

    def disp_mean(self, row: str, column: str) -> float:
        return float(self.disp(row, column).split("±")[0].replace(",", ""))

    def displacement_table(self) -> str:
        columns, rows = self.displacement
        return markdown_table(["agent", *columns], [[name, *cells] for name, cells in rows.items()]).rstrip(
            "\n"
        )

    def condition_cap(self, task: str) -> float:
        """The largest condition number :func:`fidec.fisher.condition_number` reports in float32, 1 / (d eps)."""
        return 1.0 / (self.action_dim(task) * float(np.finfo(np.float32).eps))

    def action_dim(self, task: str) -> int:
        from fidec.envs.dims import task_dims

        return task_dims(task).action_dim

    def target(self, task: str) -> str:
        return self.preset_value(task, "fd", "target_divergence")

    def preset_value(self, task: str, agent: str, key: str) -> str:
        """The value of an agent's config key on a task, after its presets (e.g. FQL's alpha on a task)."""
        from fidec.config import flatten, to_dict
        from fidec.presets import resolve_agent_config

        values = flatten(to_dict(resolve_agent_config(agent, task)))
        if key not in values:
            raise RenderError(f"agent {agent!r} has no setting {key!r}")
        return format_number(values[key])

    def fisher_samples(self, label: str) -> int:
        """M of a label of the spec (its overrides, else the default)."""
        from fidec.fisher import FisherConfig

        for agent in self.spec["agents"]:
            if isinstance(agent, dict) and agent.get("label") == label:
                return int(
                    agent.get("overrides", {}).get("agent.fisher.num_samples", FisherConfig().num_samples)
                )
        return FisherConfig().num_samples

    # cost --------------------------------------------------------------------------------------------
    def cost_text(self) -> str:
        """Median wall time per label from runs.csv (written by newer reports), or why there is none."""
        path = self.dir / "runs.csv"
        if not path.is_file():
            return (
                "Cost: the committed report predates `runs.csv` (each trial's wall time, from the sweep "
                "manifest), so this page states no per-trial cost."
            )
        walls: dict[str, list[float]] = {}
        for r in read_csv(path):
            if r["wall_s"]:
                walls.setdefault(r["label"], []).append(float(r["wall_s"]))
        if not walls:
            return "Cost: no trial of the committed report has a recorded wall time (`runs.csv`)."
        parts = [f"{label} {statistics.median(v) / 60:.1f}" for label, v in walls.items()]
        return (
            "Cost: median wall time per trial in minutes (`wall_s` of the sweep manifest, from `runs.csv`; "
            f"trials shared the cores with each other and other jobs): {', '.join(parts)}."
        )

    # the KL check of trained agents -------------------------------------------------------------------
    @cached_property
    def kl_runs(self) -> dict[str, dict[str, Any]]:
        """{task: the `fidec diagnose kl --run-dir` record} from results/kl/*.json."""
        out = {}
        for path in sorted((self.dir / "kl").glob("*.json")):
            record = json.loads(path.read_text())
            out[record["env"]] = record | {"file": path.name}
        return out

    def kl_states(self, task: str) -> list[dict[str, Any]]:
        return self.kl_runs[task]["states"]

    def kl_stat(self, task: str, what: str) -> Any:
        """Per-task numbers of the KL check (see the template)."""
        states = self.kl_states(task)
        ratio = [s["quadratic_ratio"] for s in states]
        if what == "inside_at_1":
            inside = sum(0.9 <= r <= 1.1 for r in ratio)
            return f"{inside} / {len(states)}"
        if what == "inside_region":
            return f"{sum(s['inside_valid_region'] for s in states)} / {len(states)}"
        if what == "ratio":
            return f"{min(ratio):.2f}, {float(np.median(ratio)):.2f}, {max(ratio):.2f}"
        if what == "second":
            second = [s["second_order_ratio"] for s in states]
            return f"{min(second):.2f}-{max(second):.2f}"
        if what == "true_kl":
            return format_number(float(np.median([s["true_kl"] for s in states])), 2)
        if what == "jacobian":
            shares = [s["jacobian_share"] for s in states]
            return f"{100 * float(np.median(shares)):.1f}%, {100 * max(shares):.0f}%"
        if what == "curvature":
            shares = [self.curvature_share(s) for s in states]
            low, high = min(shares), max(shares)
            return f"{share(float(np.median(shares)))} ({share(low)} to {share(high)})"
        if what == "estimate":
            excess = [s["quadratic_kl_estimated"] / s["quadratic_kl"] for s in states]
            return f"{float(np.median(excess)):.1f}x ({min(excess):.1f}-{max(excess):.1f}x)"
        if what == "excess_median":
            return float(np.median([s["quadratic_kl_estimated"] / s["quadratic_kl"] for s in states]))
        if what == "valid_at_least":
            return sum((s["valid_scale_quadratic"] or 0.0) >= 1.5 for s in states)
        if what == "valid_to_end":
            end = max(self.kl_runs[task]["scans"][0]["scale"])
            return sum((s["valid_scale_quadratic"] or 0.0) >= end for s in states)
        if what == "scan_end":
            return format_number(max(self.kl_runs[task]["scans"][0]["scale"]))
        if what == "num_states":
            return len(states)
        if what == "num_actions":
            return self.kl_runs[task]["num_actions"]
        if what == "minutes":
            record = self.kl_runs[task]
            return f"{record['runtime_s'] / 60:.0f} min wall, {record['cpu_s'] / 60:.0f} CPU-minutes"
        raise RenderError(f"unknown KL statistic {what!r}")

    @staticmethod
    def curvature_share(state: Mapping[str, float]) -> float:
        """1/2 E[delta^T (-H - F) delta] / second order: the part of the second-order KL that FD's quadratic
        misses besides the Jacobian term (second order - Jacobian term - quadratic)."""
        second = state["second_order_kl"]
        return (second - state["jacobian_term"] - state["quadratic_kl"]) / second

    def kl_check(self, task: str, key: str) -> Any:
        return self.kl_runs[task][key]

    def kl_valid_count(self, task: str, scale: float) -> int:
        """States whose quadratic stays inside [0.9, 1.1] for every c up to at least ``scale``."""
        return sum((s["valid_scale_quadratic"] or 0.0) >= 0.999 * scale for s in self.kl_states(task))

    def kl_grid_point(self, task: str, above: float) -> float:
        """The first scale of the KL scan's grid at or above ``above``."""
        return float(min(c for c in self.kl_runs[task]["scans"][0]["scale"] if c >= above))

    def kl_table(self) -> str:
        rows = []
        for task in self.kl_runs:
            rows.append(
                [
                    self.short(task),
                    self.kl_stat(task, "inside_at_1"),
                    self.kl_stat(task, "ratio"),
                    self.kl_stat(task, "second"),
                    self.kl_stat(task, "true_kl"),
                    self.kl_stat(task, "jacobian"),
                    self.kl_stat(task, "curvature"),
                    self.kl_stat(task, "estimate"),
                ]
            )
        headers = [
            "task",
            "states with quadratic / true KL in [0.9, 1.1] at c = 1",
            "quadratic / true KL at c = 1 (min, median, max)",
            "second order / true KL",
            "median true KL (nats)",
            "Jacobian term / second order (median, max)",
            "(-H - F) term / second order (median, range)",
            "FD's own F estimate / exact F (median quadratic ratio, range)",
        ]
        return markdown_table(headers, rows, align="lrlllrrr").rstrip("\n")

    # earlier study, parity ---------------------------------------------------------------------------
    @cached_property
    def earlier(self) -> dict[tuple[str, str, str], dict[str, str]]:
        rows = read_csv(self.dir / "earlier" / "scores-2488975.csv")
        return {(r["protocol"], r["task"], r["label"]): r for r in rows}

    def earlier_values(self, protocol: str, task: str, label: str) -> list[float]:
        return [float(v) for v in self.earlier[(protocol, task, label)]["values"].split()]

    def earlier_score(self, protocol: str, task: str, label: str) -> str:
        r = self.earlier[(protocol, task, label)]
        return f"{pct(float(r['mean']))} ± {pct(float(r['std']))}"

    def change(self, protocol: str, task: str, label: str) -> Comparison:
        """Now against the earlier study (before the parity changes)."""
        return compare_groups(self.earlier_values(protocol, task, label), self.values(protocol, task, label))

    @cached_property
    def parity(self) -> Parity:
        return Parity(self.root)


# -- docs/parity.md ---------------------------------------------------------------------------------


class Parity:
    """docs/parity/parity.json (written by benchmarks/parity/compare.py)."""

    def __init__(self, root: Path = ROOT):
        self.root = root
        self.data = json.loads((root / "docs" / "parity" / "parity.json").read_text())
        self.compare = load_module(root / "benchmarks" / "parity" / "compare.py", "parity_compare")
        self.tasks = list(self.data["tasks"])

    def setting(self, key: str) -> Any:
        return self.data["settings"][key]

    # -- the update-level check (docs/parity/update.json, written by `fidec parity`) -----------------------

    @cached_property
    def update(self) -> dict[str, Any]:
        return json.loads((self.root / "docs" / "parity" / "update.json").read_text())

    def update_table(self) -> str:
        from fidec.parity.run import markdown_table

        return markdown_table(self.update).strip()

    def update_cases(self) -> list[tuple[str, str]]:
        """(agent, case) of every comparison, in the record's order."""
        return list(dict.fromkeys((r["agent"], r["case"]) for r in self.update["results"]))

    def update_agents(self) -> list[str]:
        return list(dict.fromkeys(r["agent"] for r in self.update["results"]))

    def update_passed(self) -> bool:
        return bool(self.update["summary"]["passed"])

    def update_worst(self, precision: str) -> float:
        """The largest relative error of any quantity of any comparison at ``precision``."""
        worst = 0.0
        for r in self.update["results"]:
            if r["precision"] != precision or r["status"] != "compared":
                continue
            for part in ("first_update", "last_update", "metrics_every_update"):
                worst = max(worst, max(e["rel"] for e in r[part].values()))
        return worst

    def update_references(self) -> list[str]:
        """'`agents/fidec.py` (REPOSITORY, commit `8c90736`, SHA-256 `4af407379e5b`)' of every reference file
        compared; a checkout without git history records no commit, and then only the file's hash is named."""
        seen: dict[str, str] = {}
        for r in self.update["results"]:
            ref = r["reference"]
            where = f"commit `{ref['commit'][:7]}`, " if ref.get("commit") else ""
            seen.setdefault(
                ref["agent_file"],
                f"`{ref['agent_file']}` ({ref['repository']}, {where}SHA-256 `{ref['sha256'][:12]}`)",
            )
        return list(seen.values())

    def update_commits_known(self) -> bool:
        """Whether every reference checkout recorded its git commit."""
        return all(r["reference"].get("commit") for r in self.update["results"])

    def update_settings_compared(self) -> int:
        """How many settings were compared, each (agent, case) once."""
        seen: dict[tuple[str, str], int] = {}
        for r in self.update["results"]:
            seen[(r["agent"], r["case"])] = len(r["settings"])
        return sum(seen.values())

    def update_differences(self) -> list[str]:
        return list(dict.fromkeys(d for r in self.update["results"] for d in r["differences"]))

    def record(self, task: str, code: str) -> dict[str, Any]:
        try:
            return self.data["tasks"][task]["pairs"][code]
        except KeyError:
            raise RenderError(f"parity.json has no {code} on {task}") from None

    def cmp(self, task: str, code: str, protocol: str) -> Comparison:
        return self.compare.comparison(self.record(task, code), protocol)

    def side(self, task: str, code: str, side: str, protocol: str) -> str:
        stat = self.record(task, code)[side][protocol]
        return f"{pct(stat['mean'])} ± {pct(stat['std'])}"

    def curve(self, task: str, code: str, side: str, step: int) -> dict[str, Any]:
        return self.record(task, code)[side]["curve"][str(step)]

    def curve_mean(self, task: str, code: str, side: str, step: int) -> str:
        return pct(self.curve(task, code, side, step)["mean"])

    def steps(self, task: str, code: str, side: str = "official") -> list[int]:
        return sorted(int(s) for s in self.record(task, code)[side]["curve"])

    def last3(self, task: str, code: str) -> list[int]:
        steps = self.steps(task, code)
        check(
            steps[-3:] == self.steps(task, code, "fidec")[-3:], "the two sides were evaluated at other steps"
        )
        return steps[-3:]

    def last3_text(self, task: str, code: str, inline: bool = False) -> str:
        steps = self.last3(task, code)
        share = f"{100 * steps[0] / steps[-1]:.0f}-100% of training"
        where = f"{listed([thousands(s) for s in steps])} steps"
        return f"{where}, {share}" if inline else f"{where} ({share})"

    def table(self) -> str:
        return str(self.compare.table(self.data)).rstrip("\n")

    def results_resamples(self, n: int = 3) -> int:
        return distinct_resamples(n)

    def has_walls(self) -> bool:
        return any(
            "official_wall_s" in rec for e in self.data["tasks"].values() for rec in e["pairs"].values()
        )

    def wall_text(self) -> str:
        """The official runs' wall times, when parity.json records them."""
        if not self.has_walls():
            return "(parity.json does not record the official runs' wall times)"
        parts = []
        for task, entry in self.data["tasks"].items():
            for code, rec in entry["pairs"].items():
                walls = [w / 60 for w in rec.get("official_wall_s", []) if w is not None]
                if walls:
                    parts.append(
                        f"{self.compare.NAMES[code]} on {task} {min(walls):.1f}-{max(walls):.1f} min per seed"
                    )
        return f"(official {'; '.join(parts)})"


# -- docs/diagnostics.md ----------------------------------------------------------------------------


class Diagnostics:
    """docs/demo/: the demo's summary.json, the toy KL scans, the tiny run's KL check, the perturbed-time study."""

    def __init__(self, root: Path = ROOT):
        self.dir = root / "docs" / "demo"
        self.demo = json.loads((self.dir / "summary.json").read_text())
        self.pt = json.loads((self.dir / "perturbed_time.json").read_text())
        self.run = json.loads((self.dir / "kl_run_cube_fd_tiny.json").read_text())
        self.scans = {
            path.stem.removeprefix("kl_"): json.loads(path.read_text())
            for path in sorted(self.dir.glob("kl_*.json"))
            if not path.stem.startswith("kl_run")
        }

    # fidec demo ---------------------------------------------------------------------------------------
    def config(self, key: str) -> Any:
        value: Any = self.demo["config"]
        for part in key.split("."):
            value = value[part]
        return value

    def behaviours(self) -> list[str]:
        return list(self.demo["behaviours"])

    def main_fraction(self) -> float:
        return float(self.demo["config"]["main_fraction"])

    def run_of(self, behaviour: str, penalty: str, fraction: float | None = None) -> dict[str, Any]:
        f = self.main_fraction() if fraction is None else fraction
        for r in self.demo["behaviours"][behaviour]["runs"]:
            if r["penalty"] == penalty and r["fraction"] == f:
                return r
        raise RenderError(f"summary.json has no {penalty} run at f = {f} on {behaviour}")

    def demo_value(self, behaviour: str, penalty: str, key: str, digits: int = 3) -> str:
        return format_number(self.run_of(behaviour, penalty)[key], digits)

    def verdict(self, behaviour: str, key: str) -> Any:
        return self.demo["behaviours"][behaviour]["verdict"][key]

    def kl_ratio(self, behaviour: str, penalty: str) -> str:
        """How many times less true KL than the isotropic penalty ``penalty`` pays at equal reward."""
        v = self.demo["behaviours"][behaviour]["verdict"]
        return f"{v['isotropic_kl'] / v[f'{penalty}_kl']:.1f}x"

    def condition(self, behaviour: str, which: str) -> str:
        return format_fixed(self.demo["behaviours"][behaviour][f"condition_number_{which}"], 1)

    def demo_table(self) -> str:
        from fidec.diagnostics.refinement import PENALTIES, PENALTY_LABELS

        rows = []
        for behaviour in self.behaviours():
            for penalty in PENALTIES:
                r = self.run_of(behaviour, penalty)
                rows.append(
                    [
                        behaviour,
                        PENALTY_LABELS[penalty],
                        format_fixed(r["reward_target"], 3),
                        format_fixed(r["reward"], 3),
                        format_number(r["true_kl"], 4),
                        format_number(r["quadratic_kl"], 4),
                        format_number(r["fd_penalty_kl"], 3),
                        format_number(r["second_order_kl"], 4),
                        f"{100 * r['fold_fraction']:.1f} %" if r["fold_fraction"] > 0 else "0",
                    ]
                )
        headers = [
            "behaviour",
            "penalty",
            "reward target",
            "reward",
            "true KL (nats)",
            "FD quadratic (exact F)",
            "quadratic with fidec's F estimate",
            "2nd order",
            "T folds",
        ]
        return markdown_table(headers, rows, align="llrrrrrrr").rstrip("\n")

    def target_misses(self) -> tuple[float, list[dict[str, Any]]]:
        """(largest |reward - target| of the runs whose map does not fold, the folding runs)."""
        runs = [r | {"behaviour": b} for b, v in self.demo["behaviours"].items() for r in v["runs"]]
        clean = [abs(r["reward"] - r["reward_target"]) for r in runs if r["fold_fraction"] == 0]
        return max(clean), [r for r in runs if r["fold_fraction"] > 0]

    def target_text(self) -> str:
        from fidec.diagnostics.refinement import PENALTY_LABELS

        worst, folded = self.target_misses()
        misses = [
            f"{r['behaviour']}, {PENALTY_LABELS[r['penalty']]}, f = {r['fraction']:g}: {r['reward']:.3f} "
            f"against {r['reward_target']:.3f}"
            for r in folded
            if abs(r["reward"] - r["reward_target"]) > worst
        ]
        text = f"Every run whose map does not fold reaches its reward target within {worst:.3f}"
        if misses:
            text += "; of the runs that fold, these miss by more: " + "; ".join(misses)
        return text

    def estimator(self, key: str) -> str:
        """The demo's fidec ('fisher') or official ('official_fisher') estimator with its settings."""
        c = self.demo["config"][key]
        score = "tweedie score (t v - x) / (1 - t)" if c["estimator"] == "tweedie" else "v / (1 - t)"
        at = f"t = {c['t_eps']}" if c["t_eps_max"] is None else f"t ~ U[{c['t_eps']}, {c['t_eps_max']}]"
        return f"{score} at {at}, M = {c['num_samples']}, damping {format_number(c['damping'])}"

    def demo_ratio(self, behaviour: str, penalty: str, key: str) -> str:
        """``key`` of a run as a multiple of its true KL: '2.2x'."""
        r = self.run_of(behaviour, penalty)
        return f"{r[key] / r['true_kl']:.2g}x"

    def demo_change(self, behaviour: str, penalty: str, reference: str) -> str:
        """The true KL of ``penalty``'s run relative to ``reference``'s: '-12%'."""
        a, b = self.run_of(behaviour, penalty)["true_kl"], self.run_of(behaviour, reference)["true_kl"]
        return f"{100 * (a / b - 1):+.0f}%"

    def folded_text(self) -> str:
        from fidec.diagnostics.refinement import PENALTY_LABELS

        runs = [r | {"behaviour": b} for b, v in self.demo["behaviours"].items() for r in v["runs"]]
        folded = [r for r in runs if r["fold_fraction"] > 0]
        if not folded:
            return "none"
        return "; ".join(
            f"{r['behaviour']}, {PENALTY_LABELS[r['penalty']]}, f = {r['fraction']:g} "
            f"({100 * r['fold_fraction']:.1f}% of the data)"
            for r in folded
        )

    def runs_per_behaviour(self) -> int:
        counts = {len(v["runs"]) for v in self.demo["behaviours"].values()}
        check(len(counts) == 1, "the behaviours have different numbers of runs")
        return counts.pop()

    def load_range(self) -> str:
        loads = [self.demo["load_average_1min"], self.pt["load_average_1min"], self.run["load_average_1min"]]
        loads += [s["load_average_1min"] for s in self.scans.values()]
        return f"{min(loads):.1f}-{max(loads):.1f}"

    def runtime(self, record: str = "demo") -> str:
        data = self.demo if record == "demo" else self.run if record == "run" else self.pt
        return f"{data['runtime_s']:.0f} s wall clock for {data['cpu_s']:.0f} s of CPU time"

    def load(self, record: str) -> str:
        data = self.demo if record == "demo" else self.run if record == "run" else self.pt
        return format_fixed(data["load_average_1min"], 1)

    # toy KL scans -------------------------------------------------------------------------------------
    def scan(self, name: str) -> dict[str, Any]:
        if name not in self.scans:
            raise RenderError(f"docs/demo has no kl_{name}.json")
        return self.scans[name]

    def ratio_at(self, name: str, c: float, which: str = "quadratic") -> str:
        s = self.scan(name)
        i = int(np.argmin(np.abs(np.log(s["scale"]) - np.log(c))))
        return f"{s[f'{which}_ratio'][i]:.2f}"

    def valid(self, name: str, which: str = "quadratic") -> str:
        value = self.scan(name)[f"valid_scale_{which}"]
        return "never" if value is None else format_number(value, 2)

    def shares(self, name: str) -> tuple[float, float]:
        """(the (-H - F) term, the Jacobian term) as shares of the second order at the smallest c."""
        s = self.scan(name)
        second, quad = s["second_order_kl"][0], s["quadratic_kl"][0]
        jac, curv = s["jacobian_term"][0], s["curvature_term"][0]
        return (curv - quad) / second, jac / second

    def share_text(self, name: str, which: int) -> str:
        return share(self.shares(name)[which])

    def kl_toy_table(self) -> str:
        rows = []
        for name in self.scans:
            s = self.scan(name)
            curvature, jacobian = self.shares(name)
            rows.append(
                [
                    f"{s['behaviour']} / {s['field']}",
                    self.ratio_at(name, s["scale"][0]),
                    share(curvature),
                    share(jacobian),
                    self.valid(name),
                    self.valid(name, "second_order"),
                    self.ratio_at(name, 1.0),
                ]
            )
        headers = [
            "behaviour / field",
            f"FD ratio at c = {format_number(self.scan(next(iter(self.scans)))['scale'][0])}",
            "(-H - F) term / 2nd order",
            "Jacobian term / 2nd order",
            "FD valid up to c",
            "2nd order valid up to c",
            "FD ratio at c = 1",
        ]
        return markdown_table(headers, rows, align="lrrrrrr").rstrip("\n")

    def quad_share(self, name: str) -> str:
        """FD's quadratic as a share of the second order at the smallest c: '91%'."""
        s = self.scan(name)
        return f"{100 * s['quadratic_kl'][0] / s['second_order_kl'][0]:.0f}%"

    def closed_form_error(self) -> str:
        s = self.scan("gaussian_affine")
        error = max(abs(t - c) / c for t, c in zip(s["true_kl"], s["closed_form_kl"], strict=True))
        return f"{100 * error:.1f}%"

    # the tiny run's KL check -------------------------------------------------------------------------
    def run_table(self) -> str:
        rows = []
        for s in self.run["states"]:
            valid = s["valid_scale_quadratic"]
            rows.append(
                [
                    s["dataset_index"],
                    format_number(s["true_kl"], 3),
                    format_number(s["quadratic_kl"], 3),
                    format_number(s["quadratic_kl_estimated"], 3),
                    format_number(s["second_order_kl"], 3),
                    f"{100 * s['jacobian_share']:.1f}%",
                    share(Results.curvature_share(s)),
                    f"{s['quadratic_ratio']:.2f}",
                    "none" if valid is None else format_number(valid, 2),
                ]
            )
        headers = [
            "dataset state",
            "true KL at c = 1",
            "FD quadratic (exact F)",
            "quadratic with FD's F estimate",
            "2nd order",
            "Jacobian term / 2nd order",
            "(-H - F) term / 2nd order",
            "FD / true",
            "FD valid up to c",
        ]
        return markdown_table(headers, rows, align="rrrrrrrrr").rstrip("\n")

    def run_stat(self, what: str) -> str:
        states = self.run["states"]
        if what == "true_kl":
            kls = [s["true_kl"] for s in states]
            return f"{format_number(min(kls), 2)}-{format_number(max(kls), 2)}"
        if what == "second":
            return f"{100 * max(abs(s['second_order_ratio'] - 1) for s in states):.1f}%"
        if what == "estimate":
            ratios = [s["quadratic_kl_estimated"] / s["quadratic_kl"] for s in states]
            return f"{min(ratios):.0f}-{max(ratios):.0f}x"
        raise RenderError(f"unknown run statistic {what!r}")

    def curvature_share(self, state: Mapping[str, float]) -> float:
        return Results.curvature_share(state)

    def run_count(self, low: float, high: float) -> int:
        """States of the tiny run whose quadratic / true KL ratio at c = 1 lies in [low, high]."""
        return sum(low <= s["quadratic_ratio"] <= high for s in self.run["states"])

    def run_estimator(self) -> str:
        """fidec's default estimator, which the tiny run used (``--preset tiny`` keeps the estimator and t)."""
        from fidec.fisher import FisherConfig

        config = FisherConfig()
        check(self.run["agent"] == "fd", "the tiny run is an fd run")
        score = "tweedie score" if config.estimator == "tweedie" else "v / (1 - t)"
        return f"fidec's default {score} at t_eps = {config.t_eps}"

    def run_state(self, index: int) -> dict[str, Any]:
        return next(s for s in self.run["states"] if s["dataset_index"] == index)

    # the perturbed-time study ------------------------------------------------------------------------
    def pt_curve(self, name: str) -> dict[str, Any]:
        return self.pt["curves"][name]

    def pt_nearest(self, eps: float) -> int:
        return int(np.argmin(np.abs(np.log(self.pt["eps"]) - np.log(eps))))

    def pt_eps_near(self, eps: float) -> str:
        return format_number(self.pt["eps"][self.pt_nearest(eps)], 3)

    def pt_error(self, name: str, metric: str, eps: float | None = None) -> str:
        curve = self.pt_curve(name)
        value = curve["min_error"][metric] if eps is None else curve["error"][metric][self.pt_nearest(eps)]
        return f"{value:.2g}"

    def pt_optimum(self, name: str, metric: str) -> str:
        value = self.pt_curve(name)["optimum_eps"][metric]
        edge = value <= self.pt["eps"][0]
        return f"<= {sci(value, 1)} (grid edge)" if edge else sci(value)

    def pt_model(self, name: str, metric: str, key: str) -> str:
        model = self.pt_curve(name)["error_model"][metric]
        if model is None:
            return "-"
        return f"{model[key]:.2g}"

    def pt_table(self) -> str:
        rows = []
        near = self.pt_eps_near(0.02)
        for name in self.pt["curves"]:
            precision = "fp64" if "fp64" in name else "fp32"
            for metric, label in (("normalized", "F_n"), ("raw", "raw F")):
                rows.append(
                    [
                        name,
                        label,
                        self.pt_optimum(name, metric),
                        self.pt_error(name, metric),
                        self.pt_error(name, metric, 0.02),
                        format_number(self.pt["delta_quarter"][precision], 2),
                        self.pt_model(name, metric, "crossing_eps"),
                    ]
                )
        headers = [
            "estimator",
            "metric",
            "optimum eps",
            "error there",
            f"error at eps = {near} (the grid point nearest 0.02)",
            "delta^(1/4)",
            "bias meets round-off at eps",
        ]
        return markdown_table(headers, rows, align="llrrrrr").rstrip("\n")

    def pt_excess(self, name: str, metric: str, eps: float = 0.02) -> str:
        """The error near ``eps`` as a multiple of the curve's minimum: '920x'."""
        curve = self.pt_curve(name)
        ratio = curve["error"][metric][self.pt_nearest(eps)] / curve["min_error"][metric]
        return f"{format_number(float(f'{ratio:.2g}'))}x"

    def flow_flat_range(self, below: float = 0.02) -> str:
        """'11-13%': the learned flow's F_n error over every grid eps below ``below``."""
        errors = [
            e
            for x, e in zip(self.pt["eps"], self.pt_curve("flow fp32")["error"]["normalized"], strict=True)
            if x < below
        ]
        return f"{100 * min(errors):.0f}-{100 * max(errors):.0f}%"

    def roundoff_over_delta(self, metric: str) -> str:
        """The fitted round-off coefficient b of b / eps in units of delta (fp32)."""
        b = self.pt_curve("analytic fp32")["error_model"][metric]["roundoff_coefficient"]
        return f"{b / self.pt['unit_roundoff']['fp32']:.2g}"

    def exponent(self, metric: str = "normalized", key: str = "optimum_eps") -> float:
        """log(eps*_fp32 / eps*_fp64) / log(delta_fp32 / delta_fp64): the rate eps* ~ delta^k the optima follow."""
        if key == "optimum_eps":
            e32 = self.pt_curve("analytic fp32")["optimum_eps"][metric]
            e64 = self.pt_curve("analytic fp64")["optimum_eps"][metric]
        else:
            e32 = self.pt_curve("analytic fp32")["error_model"][metric][key]
            e64 = self.pt_curve("analytic fp64")["error_model"][metric][key]
        d32, d64 = self.pt["unit_roundoff"]["fp32"], self.pt["unit_roundoff"]["fp64"]
        return math.log(e32 / e64) / math.log(d32 / d64)

    def pt_fit(self, metric: str, key: str) -> str:
        return f"{self.pt_curve('analytic fp32')['error_model'][metric][key]:.2g}"

    def delta(self, precision: str, power: float = 1.0) -> str:
        value = self.pt["unit_roundoff"][precision] ** power
        return sci(value) if value < 1e-3 else f"{value:.2g}"


# -- the pages ---------------------------------------------------------------------------------------


def namespace(helpers: object, **extra: Any) -> dict[str, Any]:
    names = {name: getattr(helpers, name) for name in dir(helpers) if not name.startswith("_")}
    return {
        **names,
        "check": check,
        "claim": claim,
        "pct": pct,
        "signed": signed,
        "share": share,
        "sci": sci,
        "thousands": thousands,
        "listed": listed,
        "format_number": format_number,
        "format_fixed": format_fixed,
        **extra,
    }


HEADER = (
    "<!-- Rendered by benchmarks/pages/render.py from benchmarks/pages/templates/{template} and the files it "
    "names: edit the template and run `python benchmarks/pages/render.py`. -->\n\n"
)


def render_pages(root: Path = ROOT) -> dict[Path, str]:
    """{page path: its rendered text} for every page and README."""
    results = Results(root)
    helpers: dict[str, Callable[[], object]] = {
        "results.md": lambda: results,
        "parity.md": lambda: results.parity,
        "diagnostics.md": lambda: Diagnostics(root),
        "readme_results.md": lambda: results,
        "readme_diagnostics.md": lambda: Diagnostics(root),
    }
    out = {}
    for page, template in PAGES.items():
        text = (TEMPLATES / template).read_text()
        out[root / page] = HEADER.format(template=template) + render_template(
            text, namespace(helpers[template]()), template
        )
    readme = (root / "README.md").read_text()
    for block, template in README_BLOCKS.items():
        begin, end = f"<!-- begin rendered: {block} -->", f"<!-- end rendered: {block} -->"
        if readme.count(begin) != 1 or readme.count(end) != 1:
            raise RenderError(f"README.md must hold one {begin} ... {end} block")
        body = render_template((TEMPLATES / template).read_text(), namespace(helpers[template]()), template)
        head, rest = readme.split(begin)
        _, tail = rest.split(end)
        readme = f"{head}{begin}\n{body.strip()}\n{end}{tail}"
    out[root / "README.md"] = readme
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--check", action="store_true", help="compare instead of writing; exit 1 on a difference"
    )
    args = parser.parse_args(argv)
    pages = render_pages()
    differ = [path for path, text in pages.items() if not path.is_file() or path.read_text() != text]
    if args.check:
        for path in differ:
            print(f"{path.relative_to(ROOT)} differs from its rendering", file=sys.stderr)
        return 1 if differ else 0
    for path in differ:
        path.write_text(pages[path])
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
