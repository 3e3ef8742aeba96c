"""``fidec data ...``: generate OGBench manipulation datasets locally and inspect datasets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

app = typer.Typer(
    name="data",
    help="Generate OGBench manipulation datasets locally and inspect datasets.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


def _exit_with(error: Exception) -> typer.Exit:
    """Print a user-facing error (what went wrong and what to do) without a traceback."""
    from rich.console import Console

    Console(stderr=True).print(f"[red]Error:[/red] {error}", highlight=False)
    return typer.Exit(code=1)


def _user_errors() -> tuple[type[Exception], ...]:
    from fidec.data.validate import DatasetError
    from fidec.envs.registry import UnknownTaskError

    return (DatasetError, UnknownTaskError, FileExistsError, ValueError)


@app.command("generate")
def generate_command(
    env: str = typer.Option(
        "cube-single-play-v0", "--env", help="OGBench dataset name, e.g. cube-single-play-v0."
    ),
    episodes: int | None = typer.Option(
        None, "--episodes", help="Training episodes (default: the official count)."
    ),
    seed: int = typer.Option(0, "--seed", help="Random seed (episode k is seeded from (seed, k))."),
    out: Path | None = typer.Option(None, "--out", help="Output folder (default: the fidec dataset cache)."),
    workers: int = typer.Option(1, "--workers", help="Parallel worker processes."),
    max_episode_steps: int = typer.Option(
        1001, "--max-episode-steps", help="Rows per episode (official: 1001)."
    ),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace an existing dataset with other settings."
    ),
) -> None:
    """Write <env>.npz and <env>-val.npz in the official OGBench layout with OGBench's scripted oracles."""
    from rich.console import Console

    from fidec.data.generate import generate

    try:
        result = generate(
            env,
            num_episodes=episodes,
            seed=seed,
            out_dir=out,
            workers=workers,
            max_episode_steps=max_episode_steps,
            overwrite=overwrite,
        )
    except _user_errors() as error:
        raise _exit_with(error) from error
    console = Console()
    if result.cached:
        console.print(f"Already generated with these settings: {result.train_path}")
    else:
        console.print(
            f"Wrote {result.train_path} and {result.val_path}: {result.steps} steps in {result.seconds:.1f} s "
            f"({result.steps_per_second:.0f} transitions/s, {workers} worker(s))."
        )


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict) and {"min", "mean", "max"} <= set(value):
        return f"min {value['min']:.4g} / mean {value['mean']:.4g} / max {value['max']:.4g}"
    return str(value)


def _print_summary(console, title: str, summary: dict[str, Any]) -> None:
    from rich.table import Table

    overview = Table(title=title, show_header=False)
    overview.add_column("quantity")
    overview.add_column("value")
    for key, value in summary.items():
        if key != "arrays":
            overview.add_row(key.replace("_", " "), _fmt(value))
    console.print(overview)
    arrays = Table(title=f"{title}: arrays")
    for column in ("key", "shape", "dtype", "min", "max", "NaN/inf"):
        arrays.add_column(column)
    for row in summary["arrays"]:
        bad = row["non_finite"]
        arrays.add_row(
            row["key"],
            str(row["shape"]),
            row["dtype"],
            _fmt(row["min"]),
            _fmt(row["max"]),
            f"[red]{bad}[/red]" if bad else "0",
        )
    console.print(arrays)


@app.command("info")
def info_command(
    path_or_name: str = typer.Argument(..., help="A dataset file/folder, or a task name."),
    dataset_dir: Path | None = typer.Option(None, "--dataset-dir", help="Folder of official dataset files."),
) -> None:
    """Sizes, shapes, dtypes, episodes, episode lengths, rewards, action range and NaN check of a dataset."""
    from rich.console import Console

    from fidec.data.info import dataset_info

    try:
        info = dataset_info(path_or_name, dataset_dir=dataset_dir)
    except _user_errors() as error:
        raise _exit_with(error) from error
    console = Console()
    console.print(f"[bold]{info['source']}[/bold]")
    if "file" in info:
        _print_summary(console, "file (as stored)", info["file"])
    for split in ("train", "val"):
        if split in info:
            _print_summary(console, f"{split} transitions", info[split])
    if "note" in info:
        console.print(info["note"])
    if "load_error" in info:
        console.print(f"[red]Cannot be loaded as transitions:[/red] {info['load_error']}")
        raise typer.Exit(code=1)
