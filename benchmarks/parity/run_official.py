"""Run the official FD or FQL code on fidec's parity settings, one seed per process, skipping finished seeds.

The official code is *not* part of fidec: clone it yourself and pass its folder.

    git clone https://github.com/ARC0127/Fisher-Decorator /tmp/official-fd
    git clone https://github.com/seohongpark/fql /tmp/official-fql
    pip install ml-collections distrax wandb           # their dependencies (fidec's `reference` extra)
    python benchmarks/parity/run_official.py fd  --checkout /tmp/official-fd  --out runs/parity/official-fd
    python benchmarks/parity/run_official.py fql --checkout /tmp/official-fql --out runs/parity/official-fql

Settings (the same as fidec's side of docs/parity.md): cube-single-play-singletask-task1-v0 (``--env``),
the dataset fidec generated (``fidec data generate --env cube-single-play-v0 --episodes 100``; its folder
is found in fidec's cache, or give ``--data-dir``), 2 x 256 networks, batch 128, 20k steps, evaluation every
2k steps over 20 episodes, training metrics every 1k.  FD: as the paper's grid runs ran it (the grid
script's Fisher flags and normalize_q_loss false, the registry's target_divergence for the family; fidec's
side: ``--preset official-grid``); FQL: its README's alpha for the family, normalisation off (its default).

Nothing in their files is edited.  :mod:`launch_official` starts their ``main.py`` with two adjustments made
from outside: wandb runs offline (their ``setup_wandb`` passes ``mode='online'`` and a ``start_method``
setting that current wandb releases reject) and OGBench reads the dataset folder given here (FQL has no
``OGBENCH_DATA_DIR`` setting).

Output: ``<out>/seed<S>/`` holds their run folder (``eval.csv``, ``train.csv``, ``flags.json``) and
``fidec-parity.json`` (command, wall time, final step).  A seed whose ``eval.csv`` reaches the last step is
skipped; an unfinished one is moved aside to ``seed<S>.partial-<time>`` and rerun (their code cannot resume).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from settings import FAMILY_FLAGS, PARITY, family_of  # noqa: E402


def official_flags(code: str, env: str, seed: int, save_dir: Path, steps: int) -> list[str]:
    """The command-line flags of their ``main.py`` for one seed."""
    family = family_of(env)
    p = PARITY
    agent_file = {"fd": "agents/fidec.py", "fql": "agents/fql.py"}.get(code)
    if agent_file is None:
        raise SystemExit(f"unknown code {code!r}: choose fd or fql")
    flags = [
        f"--agent={agent_file}",  # first: their flag parser reads --agent.* only after --agent
        f"--env_name={env}",
        f"--seed={seed}",
        f"--save_dir={save_dir}",
        f"--run_group=fidec-parity-{code}",
        f"--offline_steps={steps}",
        "--online_steps=0",
        f"--log_interval={p['log_interval']}",
        f"--eval_interval={p['eval_interval']}",
        f"--eval_episodes={p['eval_episodes']}",
        f"--save_interval={10 * steps}",
        f"--agent.actor_hidden_dims={tuple(p['hidden'])}",
        f"--agent.value_hidden_dims={tuple(p['hidden'])}",
        f"--agent.batch_size={p['batch_size']}",
    ]
    return flags + [f"--agent.{k}={v}" for k, v in FAMILY_FLAGS[code][family].items()]


def last_eval_step(seed_dir: Path) -> int:
    """The largest step in any eval.csv under ``seed_dir`` (0 when there is none)."""
    best = 0
    for path in seed_dir.rglob("eval.csv"):
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                if row.get("step"):
                    best = max(best, int(float(row["step"])))
    return best


def run_seed(args: argparse.Namespace, seed: int) -> None:
    seed_dir = Path(args.out) / f"seed{seed}"
    if seed_dir.exists():
        if last_eval_step(seed_dir) >= args.steps:
            print(f"[skip] {args.code} seed {seed}: finished ({seed_dir})", flush=True)
            return
        aside = seed_dir.with_name(f"seed{seed}.partial-{time.strftime('%Y%m%d-%H%M%S')}")
        seed_dir.rename(aside)
        print(f"[redo] {args.code} seed {seed}: unfinished run moved to {aside}", flush=True)
    seed_dir.mkdir(parents=True)
    flags = official_flags(args.code, args.env, seed, seed_dir, args.steps)
    command = [sys.executable, str(HERE / "launch_official.py"), str(Path(args.checkout).resolve()), *flags]
    env = {**os.environ, "OGBENCH_DATA_DIR": str(Path(args.data_dir).resolve()), "WANDB_MODE": "offline"}
    env.setdefault("WANDB_DIR", str(seed_dir))
    print(f"[run] {args.code} seed {seed}: {' '.join(command)}", flush=True)
    start = time.time()
    with open(seed_dir / "stdout.log", "w") as log:
        code = subprocess.call(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    wall = time.time() - start
    record = {
        "code": args.code,
        "seed": seed,
        "command": command,
        "wall_s": wall,
        "exit_code": code,
        "last_eval_step": last_eval_step(seed_dir),
    }
    (seed_dir / "fidec-parity.json").write_text(json.dumps(record, indent=2))
    if code != 0:
        raise SystemExit(f"{args.code} seed {seed} failed (exit {code}); see {seed_dir / 'stdout.log'}")
    print(f"[done] {args.code} seed {seed}: {wall / 60:.1f} min", flush=True)


def default_data_dir(env: str) -> Path:
    from fidec.data.paths import generated_dataset_dir

    dataset = env.split("-singletask")[0] + "-v0"
    return generated_dataset_dir(dataset, PARITY["dataset_episodes"], 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("code", choices=["fd", "fql"])
    parser.add_argument("--checkout", required=True, help="folder of your clone of the official code")
    parser.add_argument("--out", required=True)
    parser.add_argument("--env", default=PARITY["env"])
    parser.add_argument("--data-dir", default=None, help="folder with <dataset>.npz and <dataset>-val.npz")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--steps", type=int, default=PARITY["steps"])
    args = parser.parse_args()
    if not (Path(args.checkout) / "main.py").is_file():
        raise SystemExit(
            f"{args.checkout} has no main.py: give the folder of your clone of the official code"
        )
    args.data_dir = args.data_dir or str(default_data_dir(args.env))
    if not Path(args.data_dir).is_dir():
        raise SystemExit(
            f"no dataset folder {args.data_dir}; generate it with "
            f"`fidec data generate --env {args.env.split('-singletask')[0]}-v0 --episodes {PARITY['dataset_episodes']}`"
        )
    for seed in (int(s) for s in args.seeds.split(",")):
        run_seed(args, seed)


if __name__ == "__main__":
    main()
