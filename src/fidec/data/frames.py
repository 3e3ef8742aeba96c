"""Pixel frames kept on disk: an ``.npz`` member extracted once into a standalone ``.npy`` and memory-mapped.

The file's (possibly compressed) member is streamed in chunks, so extraction never holds the whole array
in memory; the ``.npy`` goes to the cache (``$FIDEC_CACHE_DIR/frames``) under a name fingerprinted by the
source file's path, size and modification time, so a changed file is extracted again. Writes are atomic
(:func:`fidec.files.atomic_path`).
"""

from __future__ import annotations

import hashlib
import os
import zipfile
import zlib
from pathlib import Path

import numpy as np

from fidec.data.errors import DatasetError, file_read_error
from fidec.data.npz import read_npy_header
from fidec.data.paths import frames_file
from fidec.files import WriteError, atomic_path

EXTRACT_CHUNK_BYTES = 64 << 20


def _member_fingerprint(path: Path, key: str) -> str:
    stat = path.stat()
    words = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{key}"
    return hashlib.sha256(words.encode()).hexdigest()[:16]


def extract_npz_array(path: str | os.PathLike, key: str, out_path: str | os.PathLike) -> Path:
    """Stream member ``key`` of an ``.npz`` into a standalone ``.npy`` in chunks (atomic)."""
    path, out_path = Path(path), Path(out_path)
    try:
        with (
            zipfile.ZipFile(path) as archive,
            archive.open(f"{key}.npy") as stream,
            atomic_path(out_path) as temporary,
        ):
            shape, fortran, dtype = read_npy_header(stream)
            if fortran:
                raise DatasetError(f"{path}: '{key}' is stored in Fortran order; re-save it in C order")
            out = np.lib.format.open_memmap(temporary, mode="w+", dtype=dtype, shape=shape)
            flat = out.reshape(-1).view(np.uint8) if out.size else np.zeros(0, np.uint8)
            done = 0
            while done < flat.size:
                chunk = stream.read(min(EXTRACT_CHUNK_BYTES, flat.size - done))
                if not chunk:
                    raise DatasetError(f"{path}: '{key}' is truncated ({done} of {flat.size} bytes)")
                flat[done : done + len(chunk)] = np.frombuffer(chunk, np.uint8)
                done += len(chunk)
            out.flush()
            del out, flat
    except WriteError:
        raise  # the cache could not be written (disk full, ...): the message names the .npy
    except (zipfile.BadZipFile, KeyError, EOFError, zlib.error, OSError) as error:
        raise file_read_error(path, error) from error
    return out_path


def frames_memmap(
    path: str | os.PathLike, key: str = "observations", directory: str | os.PathLike | None = None
) -> np.ndarray:
    """A read-only memmap of the frames of an ``.npz`` (extracted once into the cache, reused after)."""
    path = Path(path)
    npy = frames_file(path, _member_fingerprint(path, key), directory)
    if not npy.exists():
        extract_npz_array(path, key, npy)
    return np.load(npy, mmap_mode="r")
