"""OGBench's on-disk format (an ``.npz`` of per-step arrays): header inspection and atomic writes.

Official layout of a state dataset ``<env>-<type>-v0.npz`` (and ``-val.npz``), one row per environment step,
episodes back to back, each episode's last row flagged in ``terminals`` (its observation is the final state,
whose action is never used):

- ``observations`` float32 (T, obs_dim) (uint8 (T, 64, 64, 3) for ``visual-`` datasets)
- ``actions`` float32 (T, action_dim), ``terminals`` bool (T,)
- ``qpos`` float32 (T, nq), ``qvel`` float32 (T, nv); ``button_states`` int64 (T, n_buttons) for scene/puzzle
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np

from fidec.data.validate import DatasetError, file_read_error

OGBENCH_REQUIRED_KEYS: tuple[str, ...] = ("observations", "actions", "terminals")


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
                    major, _ = np.lib.format.read_magic(stream)
                    read_header = (
                        np.lib.format.read_array_header_1_0
                        if major == 1
                        else np.lib.format.read_array_header_2_0
                    )
                    shape, _, dtype = read_header(stream)
                headers[member[: -len(".npy")]] = (tuple(shape), np.dtype(dtype))
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


def read_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """All arrays of an ``.npz``, with read failures reported as :class:`DatasetError`."""
    try:
        with np.load(path, allow_pickle=False) as file:
            return {key: file[key] for key in file.files}
    except (zipfile.BadZipFile, EOFError, ValueError, OSError) as error:
        raise file_read_error(path, error) from error


def write_npz_atomic(path: str | os.PathLike, arrays: dict[str, np.ndarray], compress: bool = True) -> Path:
    """Write ``arrays`` to ``path`` so that ``path`` either does not exist or is complete.

    The data go to a temporary file in the same directory, are fsynced, then renamed over ``path``
    (``os.replace`` is atomic on one filesystem).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        with open(temporary, "wb") as stream:
            (np.savez_compressed if compress else np.savez)(stream, **arrays)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    return path
