"""OGBench's on-disk format (an ``.npz`` of per-step arrays): headers, layout checks, reading and writing.

Official layout of a state dataset ``<env>-<type>-v0.npz`` (and ``-val.npz``), one row per environment step,
episodes back to back, each episode's last row flagged in ``terminals`` (its observation is the final state,
whose action is never used):

- ``observations`` float32 (T, obs_dim) (uint8 (T, 64, 64, 3) for ``visual-`` datasets)
- ``actions`` float32 (T, action_dim), ``terminals`` bool (T,)
- ``qpos`` float32 (T, nq), ``qvel`` float32 (T, nv); ``button_states`` int64 (T, n_buttons) for scene/puzzle

Files are written through :mod:`fidec.files`, so a reader sees no file or a complete one.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import IO

import numpy as np

from fidec.data.errors import DatasetError, file_read_error
from fidec.files import atomic_file, fsync_dir

OGBENCH_REQUIRED_KEYS: tuple[str, ...] = ("observations", "actions", "terminals")
NpyHeader = tuple[tuple[int, ...], bool, np.dtype]


def read_npy_header(stream: IO[bytes]) -> NpyHeader:
    """(shape, fortran_order, dtype) of the ``.npy`` stream, leaving it at the first data byte."""
    major, _ = np.lib.format.read_magic(stream)
    reader = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
    shape, fortran, dtype = reader(stream)
    return tuple(shape), bool(fortran), np.dtype(dtype)


def inspect_npz(path: str | os.PathLike) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """{key: (shape, dtype)} read from the array headers only (no decompression of the data).

    Raises :class:`DatasetError` for a truncated or corrupt archive.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            headers = {}
            for member in archive.namelist():
                if not member.endswith(".npy"):
                    continue
                with archive.open(member) as stream:
                    shape, _, dtype = read_npy_header(stream)
                headers[member[: -len(".npy")]] = (shape, dtype)
            return headers
    except (zipfile.BadZipFile, EOFError, ValueError, OSError) as error:
        raise file_read_error(path, error) from error


def check_ogbench_layout(path: str | os.PathLike) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Header-level checks of an OGBench file: required keys, one length, non-empty, numeric dtypes."""
    headers = inspect_npz(path)
    missing = [k for k in OGBENCH_REQUIRED_KEYS if k not in headers]
    if missing:
        raise DatasetError(
            f"{path}: missing key(s) {missing}; found {sorted(headers)}. An OGBench dataset needs "
            f"{list(OGBENCH_REQUIRED_KEYS)} (plus qpos/qvel for single-task reward relabelling). "
            "Re-download it or regenerate it with `fidec data generate`."
        )
    lengths = {k: shape[0] if shape else -1 for k, (shape, _) in headers.items()}
    if len(set(lengths.values())) != 1:
        raise DatasetError(
            f"{path}: arrays have different lengths {lengths}; an OGBench file has one row per step in every "
            "array. The file is damaged; re-download or regenerate it."
        )
    if next(iter(lengths.values())) <= 0:
        raise DatasetError(f"{path}: the dataset is empty (0 steps). Re-download or regenerate it.")
    for key, (_, dtype) in headers.items():
        if dtype.kind not in "biuf":
            raise DatasetError(
                f"{path}: '{key}' has dtype {dtype}; OGBench files hold float32 arrays (bool terminals, int64 "
                "button_states, uint8 pixels). Regenerate the file."
            )
    return headers


def read_npz(path: str | os.PathLike, keys: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` (only ``keys`` that it holds, when given), read failures as
    :class:`DatasetError`."""
    try:
        with np.load(path, allow_pickle=False) as file:
            names = file.files if keys is None else [k for k in keys if k in file.files]
            return {key: file[key] for key in names}
    except (zipfile.BadZipFile, EOFError, ValueError, OSError) as error:
        raise file_read_error(path, error) from error


def write_npz_atomic(path: str | os.PathLike, arrays: dict[str, np.ndarray], compress: bool = True) -> Path:
    """Write ``arrays`` to ``path`` so that ``path`` either does not exist or is complete."""
    with atomic_file(path, "wb") as stream:
        (np.savez_compressed if compress else np.savez)(stream, allow_pickle=False, **arrays)
    fsync_dir(Path(path).parent)  # the rename itself survives a power cut
    return Path(path)
