"""``fidec data ...``: generate OGBench manipulation datasets locally, download official ones, inspect datasets.

Every mistake a user can fix (a bad name, an output path that is a file, a damaged or mismatched file,
an unreachable mirror) ends as one line ``error: ...`` and exit code 2 (:mod:`fidec.errors`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from fidec.data.download import MINARI_URL_ENV, OGBENCH_URL_ENV, download
from fidec.data.generate import OFFICIAL_MAX_EPISODE_STEPS, GenerationError, generate
from fidec.data.info import dataset_info
from fidec.envs.registry import UnknownTaskError, parse_task
from fidec.errors import fail, user_errors
from fidec.formatting import format_number

DEFAULT_GENERATED = "cube-single-play-v0"

app = typer.Typer(
    name="data",
    help="Generate OGBench manipulation datasets locally, download official datasets, and inspect datasets.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


def dataset_to_generate(name: str | None, env: str | None) -> str:
    """The OGBench dataset name from the positional name or ``--env`` (a single-task name maps to its dataset)."""
    if name is not None and env is not None and name != env:
        raise GenerationError(f"two datasets given: {name!r} and --env {env!r}; give one of them.")
    chosen = name or env or DEFAULT_GENERATED
    try:
        return parse_task(chosen).dataset_name
    except UnknownTaskError:
        return chosen  # a dataset name, checked by the generator with its own message


@app.command("generate")
def generate_command(
    dataset: str | None = typer.Argument(
        None,
        help=f"OGBench dataset (or single-task) name, e.g. {DEFAULT_GENERATED} (the default).",
        show_default=False,
        metavar="DATASET",
    ),
    env: str | None = typer.Option(None, "--env", help="The same as DATASET (kept for older scripts)."),
    episodes: int | None = typer.Option(
        None, "--episodes", help="Training episodes (default: the official count)."
    ),
    seed: int = typer.Option(
        0,
        "--seed",
        help="Random seed (training episode k is seeded from (seed, k); validation from its own stream).",
    ),
    out: Path | None = typer.Option(None, "--out", help="Output folder (default: the fidec dataset cache)."),
    workers: int = typer.Option(1, "--workers", help="Parallel worker processes."),
    max_episode_steps: int = typer.Option(
        OFFICIAL_MAX_EPISODE_STEPS, "--max-episode-steps", help="Rows per episode (official: 1001)."
    ),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace an existing dataset with other settings."
    ),
) -> None:
    """Write DATASET.npz and DATASET-val.npz in the official OGBench layout with OGBench's scripted oracles."""
    with user_errors():
        name = dataset_to_generate(dataset, env)
        result = generate(
            name,
            num_episodes=episodes,
            seed=seed,
            out_dir=out,
            workers=workers,
            max_episode_steps=max_episode_steps,
            overwrite=overwrite,
        )
    if result.cached:
        typer.echo(f"Already generated with these settings: {result.train_path}")
    else:
        typer.echo(
            f"Wrote {result.train_path} and {result.val_path}: {result.steps} steps in {result.seconds:.1f} s "
            f"({result.steps_per_second:.0f} transitions/s, {workers} worker(s))."
        )


@app.command("download")
def download_command(
    name: str = typer.Argument(
        ...,
        help="OGBench task or dataset name (cube-single-play-v0), D4RL task (antmaze-umaze-v2) or Minari id.",
        metavar="TASK_OR_DATASET",
    ),
    dataset_dir: Path | None = typer.Option(
        None, "--dataset-dir", help="Folder for OGBench files (default: $FIDEC_DATA_DIR or ~/.ogbench/data)."
    ),
    url: str | None = typer.Option(
        None,
        "--url",
        help=f"Mirror to download from (default: ${OGBENCH_URL_ENV} / ${MINARI_URL_ENV}, else the official "
        "source).",
    ),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Download again even if the files are present."
    ),
) -> None:
    """Download an official dataset (opt-in; fidec never downloads on its own), verified and written atomically."""
    with user_errors():
        result = download(name, dataset_dir=dataset_dir, url=url, overwrite=overwrite)
    where = ", ".join(str(p) for p in result.paths)
    if result.already_present:
        typer.echo(f"Already present: {where} (--overwrite downloads again).")
        return
    typer.echo(f"Downloaded {result.name} to {where}; verified by {result.verified_by}.")
    for file, digest in result.sha256.items():
        typer.echo(f"  sha256 {digest}  {file}")


def _fmt(value: Any) -> str:
    if isinstance(value, dict) and {"min", "mean", "max"} <= set(value):
        return " / ".join(f"{k} {format_number(value[k], 4)}" for k in ("min", "mean", "max"))
    return format_number(value, 4)


def _print_summary(console: Console, title: str, summary: dict[str, Any]) -> None:
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
    """Sizes, shapes, dtypes, episodes, episode lengths, rewards, action range and NaN check of a dataset.

    Exits with code 2 when the dataset cannot be used (its stored arrays are still summarised)."""
    with user_errors():
        info = dataset_info(path_or_name, dataset_dir=dataset_dir)
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
        raise fail(f"cannot be loaded as a dataset: {info['load_error']}")
