"""Side by side: the official code's runs (run_official.py) against fidec's runs of the same settings.

    python benchmarks/parity/compare.py --sweep runs/sweeps/cpu-study [--sweep runs/sweeps/parity-extra] \
        --official fd=runs/parity/official-fd --official fql=runs/parity/official-fql --out docs/parity

For each pair (official FD vs fidec `--preset official`, official FQL vs fidec `fql`) on the task: the
success rate per evaluation step (mean and sample std over seeds), the last-three and final protocols,
the difference of means with a 95% percentile-bootstrap interval that resamples each side's seeds, and a
verdict: "within seed noise" when that interval contains 0.  Writes ``parity.json`` (every number),
``parity.md`` (the table) and ``curves.png`` (learning curves) into ``--out``.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from settings import PARITY  # noqa: E402

from fidec.files import write_json_atomic, write_text_atomic  # noqa: E402
from fidec.formatting import format_mean_std, markdown_table  # noqa: E402
from fidec.stats import mean_std  # noqa: E402
from fidec.training.rundir import RunDir  # noqa: E402

# official code -> the fidec label of its counterpart in the sweep
PAIRS = {"fd": "fd-official", "fql": "fql"}
NAMES = {"fd": "FD", "fql": "FQL"}
FONT = 10


def official_curve(seed_dir: Path) -> dict[int, float]:
    """{step: success} of one official run (its eval.csv; step 1 is the untrained policy and is dropped)."""
    path = next(seed_dir.rglob("eval.csv"))
    with open(path, newline="") as stream:
        rows = list(csv.DictReader(stream))
    return {int(float(r["step"])): float(r["evaluation/success"]) for r in rows if int(float(r["step"])) > 1}


def fidec_curve(run_dir: Path) -> dict[int, float]:
    rows = RunDir.open(run_dir).read_rows("eval")
    return {int(r["step"]): float(r["success"]) for r in rows if r.get("success") is not None}


def protocols(curve: dict[int, float]) -> dict[str, float]:
    steps = sorted(curve)
    return {"last3": float(np.mean([curve[s] for s in steps[-3:]])), "final": curve[steps[-1]]}


def bootstrap_difference(
    a: list[float], b: list[float], resamples: int = 10000, seed: int = 0
) -> tuple[float, float]:
    """95% percentile interval of mean(b) - mean(a), each side's seeds resampled with replacement."""
    rng = np.random.default_rng(seed)
    xa, xb = np.asarray(a), np.asarray(b)
    ia = rng.integers(0, len(xa), (resamples, len(xa)))
    ib = rng.integers(0, len(xb), (resamples, len(xb)))
    diff = xb[ib].mean(axis=1) - xa[ia].mean(axis=1)
    low, high = np.percentile(diff, [2.5, 97.5])
    return float(low), float(high)


def compare(sweeps: list[Path], officials: dict[str, Path], task: str) -> dict:
    out: dict = {"task": task, "settings": PARITY, "pairs": {}}
    for code, folder in officials.items():
        label = PAIRS[code]
        official = {
            int(d.name[4:]): official_curve(d) for d in sorted(folder.glob("seed[0-9]*")) if d.is_dir()
        }
        ours = {}
        for run in sorted(r for sweep in sweeps for r in (sweep / "runs").glob(f"{label}__{task}__s*")):
            if RunDir(run).finished:
                ours[int(run.name.rsplit("__s", 1)[1])] = fidec_curve(run)
        sides = {"official": official, "fidec": ours}
        record: dict = {"fidec_label": label, "seeds": {k: sorted(v) for k, v in sides.items()}}
        for side, curves in sides.items():
            steps = sorted(set.intersection(*(set(c) for c in curves.values()))) if curves else []
            record[side] = {
                "curve": {s: mean_std([c[s] for c in curves.values()]).__dict__ for s in steps},
                **{
                    p: mean_std([protocols(c)[p] for c in curves.values()]).__dict__
                    for p in ("last3", "final")
                },
            }
        for p in ("last3", "final"):
            a = [protocols(c)[p] for c in official.values()]
            b = [protocols(c)[p] for c in ours.values()]
            if a and b:
                low, high = bootstrap_difference(a, b)
                record[f"difference_{p}"] = {
                    "fidec_minus_official": float(np.mean(b) - np.mean(a)),
                    "bootstrap_95": [low, high],
                    "within_seed_noise": bool(low <= 0.0 <= high),
                }
        out["pairs"][code] = record
    return out


def table(result: dict) -> str:
    rows = []
    for code, rec in result["pairs"].items():
        for p in ("last3", "final"):
            diff = rec.get(f"difference_{p}")
            if diff is None:
                continue
            pct = lambda s: format_mean_std(
                100 * s["mean"] if s["mean"] is not None else None, 100 * (s["std"] or 0.0), decimals=1
            )
            low, high = (100 * v for v in diff["bootstrap_95"])
            rows.append(
                [
                    f"{NAMES[code]} ({p})",
                    f"{pct(rec['official'][p])} (n={rec['official'][p]['n']})",
                    f"{pct(rec['fidec'][p])} (n={rec['fidec'][p]['n']})",
                    f"{100 * diff['fidec_minus_official']:+.1f} [{low:+.1f}, {high:+.1f}]",
                    "yes" if diff["within_seed_noise"] else "no",
                ]
            )
    return markdown_table(
        [
            "success rate (%)",
            "official code",
            "fidec",
            "fidec - official [95% bootstrap]",
            "within seed noise",
        ],
        rows,
        align="lrrrl",
    )


def figure(result: dict, path: Path) -> None:
    pairs = result["pairs"]
    fig, axes = plt.subplots(1, len(pairs), figsize=(5.0 * len(pairs), 3.8), sharey=True, squeeze=False)
    for ax, (code, rec) in zip(axes[0], pairs.items(), strict=True):
        for side, color, name in (("official", "tab:gray", "official code"), ("fidec", "tab:blue", "fidec")):
            curve = rec[side]["curve"]
            steps = np.array(sorted(int(s) for s in curve))
            if steps.size == 0:
                continue
            mean = np.array([100 * curve[s]["mean"] for s in steps])
            std = np.array([100 * curve[s]["std"] for s in steps])
            n = curve[steps[0]]["n"]
            ax.plot(steps / 1000, mean, marker="o", color=color, label=f"{name} ({n} seeds)")
            ax.fill_between(steps / 1000, mean - std, mean + std, color=color, alpha=0.2)
        label = f"fidec {rec['fidec_label']}" if code == "fd" else "fidec fql"
        ax.set_title(f"{NAMES[code]}: official code vs {label}", fontsize=FONT)
        ax.set_xlabel("gradient steps (thousands)", fontsize=FONT)
        ax.tick_params(labelsize=FONT)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("success rate (%), mean ± std", fontsize=FONT)
    legend: dict[str, object] = {}
    for ax in axes[0]:
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
    fig.suptitle(f"{result['task']}: same data, networks, batch, steps and evaluations", fontsize=FONT)
    fig.tight_layout(rect=(0, 0.1, 1, 0.95))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sweep", action="append", required=True, type=Path, help="a fidec sweep folder (repeatable)"
    )
    parser.add_argument("--official", action="append", required=True, help="CODE=DIR, CODE in fd, fql")
    parser.add_argument("--task", default=PARITY["env"])
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args()
    officials = dict(item.split("=", 1) for item in args.official)
    result = compare(args.sweep, {k: Path(v) for k, v in officials.items()}, args.task)
    write_json_atomic(args.out / "parity.json", result)
    write_text_atomic(args.out / "parity.md", table(result))
    figure(result, args.out / "curves.png")
    print(table(result))


if __name__ == "__main__":
    main()
