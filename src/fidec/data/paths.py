"""Where datasets live on disk.

- Official OGBench files ``<dataset>.npz`` and ``<dataset>-val.npz``: the ``dataset_dir`` argument, else
  ``$FIDEC_DATA_DIR``, else OGBench's own default ``~/.ogbench/data`` (where ``ogbench.download_datasets``
  puts them).
- Datasets fidec generates: ``$FIDEC_CACHE_DIR/datasets`` (default ``~/.cache/fidec/datasets``), one
  folder per (dataset, episodes, seed), holding files with the official names:
  ``ogbench/<dataset>/episodes<N>-seed<S>/<dataset>.npz`` (+ ``-val.npz``).
- D4RL ``.hdf5`` files: ``$FIDEC_DATA_DIR`` or ``dataset_dir``, as ``<task>.hdf5`` (e.g. ``antmaze-umaze-v2.hdf5``).
- Minari datasets: Minari's own root (``$MINARI_DATASETS_PATH``, default ``~/.minari/datasets``).
"""

from __future__ import annotations

import os
from pathlib import Path

OGBENCH_DEFAULT_DATA_DIR = "~/.ogbench/data"
DEFAULT_CACHE_DIR = "~/.cache/fidec"
MINARI_DEFAULT_ROOT = "~/.minari/datasets"


def data_dir(dataset_dir: str | os.PathLike | None = None) -> Path:
    """Directory of official dataset files: argument, then ``$FIDEC_DATA_DIR``, then ``~/.ogbench/data``."""
    chosen = dataset_dir or os.environ.get("FIDEC_DATA_DIR") or OGBENCH_DEFAULT_DATA_DIR
    return Path(chosen).expanduser()


def cache_dir() -> Path:
    """fidec's cache root: ``$FIDEC_CACHE_DIR`` or ``~/.cache/fidec``."""
    return Path(os.environ.get("FIDEC_CACHE_DIR") or DEFAULT_CACHE_DIR).expanduser()


def minari_root() -> Path:
    """Minari's dataset root: ``$MINARI_DATASETS_PATH`` or ``~/.minari/datasets`` (as Minari reads it)."""
    return Path(os.environ.get("MINARI_DATASETS_PATH") or MINARI_DEFAULT_ROOT).expanduser()


def generated_dataset_dir(dataset_name: str, num_episodes: int, seed: int) -> Path:
    """Folder of a generated OGBench dataset (files inside carry the official names)."""
    return cache_dir() / "datasets" / "ogbench" / dataset_name / f"episodes{num_episodes}-seed{seed}"


def ogbench_files(directory: str | os.PathLike, dataset_name: str) -> tuple[Path, Path]:
    """(train, val) paths with OGBench's names: ``<name>.npz`` and ``<name>-val.npz``."""
    directory = Path(directory).expanduser()
    return directory / f"{dataset_name}.npz", directory / f"{dataset_name}-val.npz"


def val_path_for(train_path: str | os.PathLike) -> Path:
    """OGBench's rule for the validation file beside a training file: ``x.npz`` -> ``x-val.npz``."""
    train_path = Path(train_path)
    return train_path.with_name(train_path.name[: -len(".npz")] + "-val.npz")


def dataset_files(
    dataset_name: str, dataset_dir: str | os.PathLike | None, dataset_path: str | os.PathLike | None
) -> tuple[Path, Path]:
    """(train, val) of a task's dataset: the explicit training file and its ``-val`` sibling, or else
    the official names in :func:`data_dir` (``dataset_dir``, ``$FIDEC_DATA_DIR``, ``~/.ogbench/data``)."""
    if dataset_path is None:
        return ogbench_files(data_dir(dataset_dir), dataset_name)
    train_path = Path(dataset_path).expanduser()
    return train_path, val_path_for(train_path)
