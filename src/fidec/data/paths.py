"""Where datasets live on disk.

- Official OGBench files ``<dataset>.npz`` and ``<dataset>-val.npz``: the ``dataset_dir`` argument, else
  ``$FIDEC_DATA_DIR``, else OGBench's own default ``~/.ogbench/data`` (where ``ogbench.download_datasets``
  puts them).
- Datasets fidec generates: ``$FIDEC_CACHE_DIR/datasets`` (default ``~/.cache/fidec/datasets``), one
  folder per (dataset, episodes, seed), holding files with the official names:
  ``ogbench/<dataset>/episodes<N>-seed<S>/<dataset>.npz`` (+ ``-val.npz``).
- D4RL ``.hdf5`` files: ``$FIDEC_DATA_DIR`` or ``dataset_dir``, as ``<task>.hdf5`` (e.g. ``antmaze-umaze-v2.hdf5``).
- Minari datasets: Minari's own root (``$MINARI_DATASETS_PATH``, default ``~/.minari/datasets``), each
  ``<root>/<dataset id>/data/metadata.json`` and ``data/main_data.hdf5``.

This module is the one place that spells dataset file names (the loaders, the downloader, the generator and
``fidec data info`` ask it), and :func:`regular_file` is the one check that a dataset path is a file that
can be read (not a FIFO, a socket or a device, which would block or fail).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from fidec.data.errors import DatasetError

OGBENCH_DEFAULT_DATA_DIR = "~/.ogbench/data"
DEFAULT_CACHE_DIR = "~/.cache/fidec"
MINARI_DEFAULT_ROOT = "~/.minari/datasets"
NPZ_SUFFIX = ".npz"
VAL_SUFFIX = "-val.npz"
HDF5_SUFFIXES = (".hdf5", ".h5")
DATASET_SUFFIXES = (NPZ_SUFFIX, *HDF5_SUFFIXES)
GENERATION_RECORD_SUFFIX = ".generation.json"
MINARI_DATA = "data"
MINARI_METADATA = "metadata.json"
MINARI_MAIN_DATA = "main_data.hdf5"
# A Minari dataset's files, relative to its folder.
MINARI_FILES: tuple[str, ...] = (f"{MINARI_DATA}/{MINARI_METADATA}", f"{MINARI_DATA}/{MINARI_MAIN_DATA}")


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
    return directory / f"{dataset_name}{NPZ_SUFFIX}", directory / f"{dataset_name}{VAL_SUFFIX}"


def dataset_stem(path: str | os.PathLike) -> str:
    """The dataset name of an OGBench file: ``cube-single-play-v0.npz`` -> ``cube-single-play-v0``."""
    return Path(path).name.removesuffix(NPZ_SUFFIX)


def val_path_for(train_path: str | os.PathLike) -> Path:
    """OGBench's rule for the validation file beside a training file: ``x.npz`` -> ``x-val.npz``."""
    train_path = Path(train_path)
    return train_path.with_name(dataset_stem(train_path) + VAL_SUFFIX)


def is_val_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` is an OGBench validation file (``...-val.npz``)."""
    return Path(path).name.endswith(VAL_SUFFIX)


def is_npz(path: str | os.PathLike) -> bool:
    """Whether ``path`` names an ``.npz`` file (OGBench's format, or ready transitions)."""
    return Path(path).suffix == NPZ_SUFFIX


def is_hdf5(path: str | os.PathLike) -> bool:
    """Whether ``path`` names an HDF5 file (``.hdf5`` / ``.h5``: D4RL's format)."""
    return Path(path).suffix in HDF5_SUFFIXES


def has_dataset_suffix(name: str | os.PathLike) -> bool:
    """Whether a name ends like a dataset file (``.npz``, ``.hdf5``, ``.h5``)."""
    return str(name).endswith(DATASET_SUFFIXES)


def d4rl_file(env_name: str, dataset_dir: str | os.PathLike | None = None) -> Path:
    """A D4RL task's ``.hdf5`` file in :func:`data_dir`: ``<dir>/<task>.hdf5``."""
    return data_dir(dataset_dir) / f"{env_name}{HDF5_SUFFIXES[0]}"


def generation_record(train_path: str | os.PathLike) -> Path:
    """The generation record beside a generated training file: ``<name>.generation.json``."""
    train_path = Path(train_path)
    return train_path.with_name(dataset_stem(train_path) + GENERATION_RECORD_SUFFIX)


def generated_train_files(dataset_name: str) -> list[Path]:
    """Every generated training file of ``dataset_name`` in the cache, oldest first."""
    root = cache_dir() / "datasets" / "ogbench" / dataset_name
    found = root.glob(f"*/{dataset_name}{NPZ_SUFFIX}") if root.is_dir() else []
    return sorted(found, key=lambda p: p.stat().st_mtime)


def generation_parts(directory: Path, dataset_name: str, fingerprint: str) -> Path:
    """The hidden folder that holds a generation's finished chunks until the files are written."""
    return directory / f".{dataset_name}.parts-{fingerprint}"


def generation_part(parts: Path, split: str, first: int, last: int) -> Path:
    """One finished chunk (episodes ``first``..``last`` of ``split``) inside :func:`generation_parts`."""
    return parts / f"{split}-episodes-{first:06d}-{last:06d}{NPZ_SUFFIX}"


def generation_lock(directory: Path, dataset_name: str) -> Path:
    """The lock held by the process generating ``dataset_name`` into ``directory``."""
    return directory / f".{dataset_name}.lock"


def frames_file(
    dataset_path: str | os.PathLike, fingerprint: str, directory: str | os.PathLike | None = None
) -> Path:
    """Where the frames of a pixel dataset are extracted once, as ``.npy``: ``<cache>/frames/`` (or
    ``directory``), named after the dataset and the fingerprint of its frames."""
    folder = Path(directory) if directory is not None else cache_dir() / "frames"
    return folder / f"{dataset_stem(dataset_path)}-{fingerprint}.npy"


def minari_metadata(folder: str | os.PathLike) -> Path:
    """``metadata.json`` of a Minari dataset's ``data`` folder."""
    return Path(folder) / MINARI_METADATA


def minari_main_data(folder: str | os.PathLike) -> Path:
    """``main_data.hdf5`` of a Minari dataset's ``data`` folder."""
    return Path(folder) / MINARI_MAIN_DATA


def minari_data_folder(dataset_folder: str | os.PathLike) -> Path:
    """The ``data`` folder of a Minari dataset folder."""
    return Path(dataset_folder) / MINARI_DATA


def regular_file(path: str | os.PathLike, what: str = "dataset") -> Path:
    """``path`` if it is a regular file (or a link to one); a FIFO, socket or device is refused at once (reading
    one would block or fail).  A missing path is left to the caller."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return path
    if not stat.S_ISREG(mode) and not stat.S_ISDIR(mode):
        kind = "a FIFO (named pipe)" if stat.S_ISFIFO(mode) else "not a regular file (a socket or device)"
        raise DatasetError(f"{path} is {kind}, not a {what} file: give the path of the {what} file itself")
    return path


def dataset_files(
    dataset_name: str, dataset_dir: str | os.PathLike | None, dataset_path: str | os.PathLike | None
) -> tuple[Path, Path]:
    """(train, val) of a task's dataset: the explicit training file and its ``-val`` sibling, or else
    the official names in :func:`data_dir` (``dataset_dir``, ``$FIDEC_DATA_DIR``, ``~/.ogbench/data``)."""
    if dataset_path is None:
        return ogbench_files(data_dir(dataset_dir), dataset_name)
    train_path = Path(dataset_path).expanduser()
    return train_path, val_path_for(train_path)
