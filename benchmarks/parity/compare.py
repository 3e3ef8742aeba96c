"""Side by side: the official code's runs (run_official.py) against fidec's runs of the same settings.

    python benchmarks/parity/compare.py --sweep runs/sweeps/cpu-study [--sweep runs/sweeps/parity-extra] \
        --official fd=runs/parity/official-fd --official fql=runs/parity/official-fql \
        [--official fd=runs/parity/official-fd-puzzle] --out docs/parity
    python benchmarks/parity/compare.py --rerender docs/parity     # recompute the comparisons of parity.json

For each pair (official FD vs fidec `--preset official`, official FQL vs fidec `fql`) on each task: the success
rate per evaluation step (mean and sample std over seeds), the last-three and final protocols, and the
comparison of fidec against the official code by :func:`fidec.stats.compare_groups`, the function every fidec
page takes its wording from: the difference of means, its Welch 95% interval (which decides the verdict), the
percentile-bootstrap interval beside it (anti-conservative with three seeds a side), and the minimum
difference detectable with 80% power at the observed spread.  An ``--official`` folder's task is read from its
seeds' ``fidec-parity.json`` (their ``--env_name``), else ``--task``.  Writes ``parity.json`` (every number,
including each seed's value), ``parity.md`` (the table) and ``curves.png`` (learning curves) into ``--out``.
``--rerender`` rewrites ``parity.json`` and ``parity.md`` from the per-seed values an earlier ``parity.json``
holds (no run folders needed; the figure is left as it is).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from settings import PARITY  # noqa: E402

from fidec.files import write_json_atomic, write_text_atomic  # noqa: E402
from fidec.formatting import format_mean_std, markdown_table  # noqa: E402
from fidec.stats import Comparison, compare_groups, mean_std  # noqa: E402
from fidec.training.rundir import RunDir  # noqa: E402

# official code -> the fidec label of its counterpart in the sweep
PAIRS = {"fd": "fd-official", "fql": "fql"}
NAMES = {"fd": "FD", "fql": "FQL"}
PROTOCOLS = ("last3", "final")
SCALE = 100.0  # success rates are stored as fractions and shown in %
FONT = 10


def official_curve(seed_dir: Path) -> dict[int, float]:
    """{step: success} of one official run (its eval.csv; step 1 is the untrained policy and is dropped)."""
    path = next(seed_dir.rglob("eval.csv"))
    with open(path, newline="") as stream:
        rows = list(csv.DictReader(stream))
    return {int(float(r["step"])): float(r["evaluation/success"]) for r in rows if int(float(r["step"])) > 1}


def official_record(seed_dir: Path) -> dict[str, Any]:
    """The seed's ``fidec-parity.json`` written by run_official.py ({} when absent)."""
    path = seed_dir / "fidec-parity.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def official_task(folder: Path, default: str) -> str:
    """The task an official folder ran (``--env_name`` of its seeds' commands), else ``default``."""
    for record in (official_record(d) for d in sorted(folder.glob("seed[0-9]*")) if d.is_dir()):
        for arg in record.get("command", []):
            if str(arg).startswith("--env_name="):
                return str(arg).split("=", 1)[1]
    return default


def fidec_curve(run_dir: Path) -> dict[int, float]:
    rows = RunDir.open(run_dir).read_rows("eval")
    return {int(r["step"]): float(r["success"]) for r in rows if r.get("success") is not None}


def protocols(curve: Mapping[int, float]) -> dict[str, float]:
    steps = sorted(curve)
    return {"last3": float(np.mean([curve[s] for s in steps[-3:]])), "final": curve[steps[-1]]}


def comparison(record: Mapping[str, Any], protocol: str) -> Comparison:
    """fidec against the official code under ``protocol``, from the per-seed values of a pair's record."""
    return compare_groups(record["official"][protocol]["values"], record["fidec"][protocol]["values"])


def with_comparisons(record: dict[str, Any]) -> dict[str, Any]:
    """The record with ``difference_<protocol>`` (:meth:`Comparison.to_dict`) for each protocol that has
    values on both sides."""
    for p in PROTOCOLS:
        record.pop(f"difference_{p}", None)
        if record["official"][p]["n"] and record["fidec"][p]["n"]:
            record[f"difference_{p}"] = comparison(record, p).to_dict()
    return record


def side_record(curves: Mapping[int, Mapping[int, float]]) -> dict[str, Any]:
    """Curve (mean and std over seeds at every step all seeds reached) and the two protocols' statistics."""
    steps = sorted(set.intersection(*(set(c) for c in curves.values()))) if curves else []
    return {
        "curve": {s: mean_std([c[s] for c in curves.values()]).__dict__ for s in steps},
        **{p: mean_std([protocols(c)[p] for c in curves.values()]).__dict__ for p in PROTOCOLS},
    }


def compare(sweeps: list[Path], officials: list[tuple[str, Path]], default_task: str) -> dict:
    """``officials``: (code, folder) pairs, several folders per code for several tasks."""
    out: dict = {"settings": PARITY, "tasks": {}}
    for code, folder in officials:
        task = official_task(folder, default_task)
        label = PAIRS[code]
        seed_dirs = [d for d in sorted(folder.glob("seed[0-9]*")) if d.is_dir()]
        official = {int(d.name[4:]): official_curve(d) for d in seed_dirs}
        ours = {}
        for run in sorted(r for sweep in sweeps for r in (sweep / "runs").glob(f"{label}__{task}__s*")):
            if RunDir(run).finished:
                ours[int(run.name.rsplit("__s", 1)[1])] = fidec_curve(run)
        sides = {"official": official, "fidec": ours}
        record: dict = {
            "fidec_label": label,
            "seeds": {k: sorted(v) for k, v in sides.items()},
            **{side: side_record(curves) for side, curves in sides.items()},
        }
        walls = [official_record(d).get("wall_s") for d in seed_dirs]
        if any(w is not None for w in walls):
            record["official_wall_s"] = walls
        out["tasks"].setdefault(task, {"pairs": {}})["pairs"][code] = with_comparisons(record)
    return out


def rerender(previous: Mapping[str, Any]) -> dict:
    """An earlier ``parity.json`` with its comparisons recomputed (a single-task file from before several
    tasks were supported, ``{"task", "settings", "pairs"}``, is brought to the current layout)."""
    if "tasks" in previous:
        tasks = {task: dict(entry) for task, entry in previous["tasks"].items()}
    else:
        tasks = {previous["task"]: {"pairs": previous["pairs"]}}
    for entry in tasks.values():
        entry["pairs"] = {code: with_comparisons(dict(rec)) for code, rec in entry["pairs"].items()}
    return {"settings": previous["settings"], "tasks": tasks}


def _percent(stat: Mapping[str, Any]) -> str:
    mean = stat["mean"]
    shown = format_mean_std(None if mean is None else SCALE * mean, SCALE * (stat["std"] or 0.0), decimals=1)
    return f"{shown} (n={stat['n']})"


def _signed(value: float) -> str:
    return f"{round(SCALE * value, 1) + 0.0:+.1f}"  # never "-0.0"


def table(result: Mapping[str, Any]) -> str:
    """One row per (task, pair, protocol): both sides, the difference, its Welch and bootstrap intervals,
    the detectable difference and the verdict (all from :func:`comparison`)."""
    rows = []
    for task, entry in result["tasks"].items():
        for code, rec in entry["pairs"].items():
            for p in PROTOCOLS:
                if f"difference_{p}" not in rec:
                    continue
                c = comparison(rec, p)
                welch = "-" if c.welch is None else f"[{_signed(c.welch[0])}, {_signed(c.welch[1])}]"
                detectable = "-" if c.detectable is None else f"{SCALE * c.detectable:.1f}"
                rows.append(
                    [
                        task,
                        f"{NAMES[code]} ({p})",
                        _percent(rec["official"][p]),
                        _percent(rec["fidec"][p]),
                        _signed(c.difference),
                        welch,
                        f"[{_signed(c.bootstrap[0])}, {_signed(c.bootstrap[1])}]",
                        detectable,
                        c.verdict,
                    ]
                )
    headers = [
        "task",
        "success rate (%)",
        "official code",
        "fidec",
        "fidec - official",
        "Welch 95%",
        "bootstrap 95%",
        "detectable (80% power)",
        "verdict",
    ]
    return markdown_table(headers, rows, align="llrrrrrrl")


def figure(result: Mapping[str, Any], path: Path) -> None:
    """Rows: tasks; columns: the pairs (official code vs fidec), mean ± std over seeds per evaluation."""
    cells = [
        (task, code, rec) for task, entry in result["tasks"].items() for code, rec in entry["pairs"].items()
    ]
    tasks = list(result["tasks"])
    codes = list(dict.fromkeys(code for _, code, _ in cells))
    fig, axes = plt.subplots(
        len(tasks), len(codes), figsize=(5.0 * len(codes), 3.8 * len(tasks)), sharey=True, squeeze=False
    )
    for ax in axes.flat:
        ax.set_visible(False)
    for task, code, rec in cells:
        ax = axes[tasks.index(task)][codes.index(code)]
        ax.set_visible(True)
        for side, color, name in (("official", "tab:gray", "official code"), ("fidec", "tab:blue", "fidec")):
            curve = {int(step): stat for step, stat in rec[side]["curve"].items()}  # JSON keys are text
            steps = np.array(sorted(curve))
            if steps.size == 0:
                continue
            mean = np.array([SCALE * curve[s]["mean"] for s in steps])
            std = np.array([SCALE * curve[s]["std"] for s in steps])
            n = rec[side]["final"]["n"]
            ax.plot(steps / 1000, mean, marker="o", color=color, label=f"{name} ({n} seeds)")
            ax.fill_between(steps / 1000, mean - std, mean + std, color=color, alpha=0.2)
        ax.set_title(f"{task}\n{NAMES[code]}: official code vs fidec {rec['fidec_label']}", fontsize=FONT)
        ax.set_xlabel("gradient steps (thousands)", fontsize=FONT)
        ax.set_ylabel("success rate (%), mean ± std", fontsize=FONT)
        ax.tick_params(labelsize=FONT)
        ax.grid(alpha=0.3)
    legend: dict[str, object] = {}
    for ax in axes.flat:
        for handle, text in zip(*ax.get_legend_handles_labels(), strict=True):
            legend.setdefault(text, handle)
    fig.legend(
        list(legend.values()),
        list(legend),
        loc="lower center",
        ncol=len(legend),
        fontsize=FONT,
        frameon=False,
    )
    fig.suptitle("same data, networks, batch, steps and evaluations", fontsize=FONT)
    fig.tight_layout(rect=(0, 0.1, 1, 0.95))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--sweep", action="append", type=Path, help="a fidec sweep folder (repeatable)")
    parser.add_argument(
        "--official", action="append", help="CODE=DIR, CODE in fd, fql (repeatable, one folder per task)"
    )
    parser.add_argument("--task", default=PARITY["env"], help="task of an official folder that does not say")
    parser.add_argument("--out", type=Path, help="folder for parity.json, parity.md and curves.png")
    parser.add_argument(
        "--rerender", type=Path, help="a folder with parity.json: recompute its comparisons in place"
    )
    args = parser.parse_args()
    if args.rerender is not None:
        result = rerender(json.loads((args.rerender / "parity.json").read_text()))
        out = args.rerender
    else:
        if not (args.sweep and args.official and args.out):
            parser.error("give --sweep, --official and --out (or --rerender FOLDER)")
        officials = [(code, Path(folder)) for code, folder in (item.split("=", 1) for item in args.official)]
        unknown = sorted({code for code, _ in officials} - set(PAIRS))
        if unknown:
            parser.error(f"unknown code(s) {unknown}: use {sorted(PAIRS)}")
        result = compare(args.sweep, officials, args.task)
        out = args.out
        figure(result, out / "curves.png")
    write_json_atomic(out / "parity.json", result)
    write_text_atomic(out / "parity.md", table(result))
    print(table(result))


if __name__ == "__main__":
    main()
