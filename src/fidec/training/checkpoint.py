"""Atomic, checksummed checkpoints of pytrees, with fallback to the last good one.

Layout: ``checkpoints/step_<step:09d>/arrays.npz`` (every leaf, keyed by its pytree path) and
``manifest.json`` (step, SHA-256 and size of ``arrays.npz``, leaf shapes and dtypes, run metadata).

A checkpoint is written into a hidden temporary folder, each file fsync'd, then renamed into place
(:func:`fidec.files.atomic_directory`): a kill at any moment leaves either the complete checkpoint or
none.  Loading verifies the manifest, the size and the checksum; a damaged checkpoint is reported and
the previous one is used.  Where checkpoints live is :class:`fidec.training.rundir.RunDir`'s business.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import warnings
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import numpy as np

from fidec.errors import UserError
from fidec.files import atomic_directory, remove_stale_temporaries

FORMAT_VERSION = 1
ARRAYS_FILE = "arrays.npz"
MANIFEST_FILE = "manifest.json"
PREFIX = "step_"


class CheckpointError(UserError, RuntimeError):
    """A checkpoint is missing, damaged, or does not match the run it is loaded into."""


@dataclass(frozen=True)
class Checkpoint:
    """A verified checkpoint: its step, the flat arrays and the metadata saved with it."""

    step: int
    path: Path
    arrays: dict[str, np.ndarray]
    meta: dict[str, Any]


def flatten_tree(tree: Any, prefix: str = "") -> dict[str, np.ndarray]:
    """{path string: NumPy leaf} for every leaf of ``tree`` (paths as ``jax.tree_util.keystr``)."""
    flat = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        flat[prefix + jax.tree_util.keystr(path)] = np.asarray(leaf)
    return flat


def unflatten_tree(template: Any, arrays: Mapping[str, np.ndarray], prefix: str = "") -> Any:
    """Rebuild ``template``'s structure from ``arrays``; every leaf must match in shape and dtype.

    ``template`` leaves need only ``shape`` and ``dtype`` (arrays or ``jax.ShapeDtypeStruct``).
    """
    leaves_with_paths, treedef = jax.tree_util.tree_flatten_with_path(template)
    leaves = []
    for path, leaf in leaves_with_paths:
        key = prefix + jax.tree_util.keystr(path)
        if key not in arrays:
            raise CheckpointError(
                f"checkpoint has no entry {key!r}: it was written by a run with a different agent or network "
                "layout. Resume with the run's own config.json."
            )
        saved = arrays[key]
        expected_shape, expected_dtype = tuple(leaf.shape), np.dtype(leaf.dtype)
        if saved.shape != expected_shape or saved.dtype != expected_dtype:
            raise CheckpointError(
                f"checkpoint entry {key!r} has shape {saved.shape} and dtype {saved.dtype}; this run expects "
                f"{expected_shape} {expected_dtype}. The config differs from the one that wrote the checkpoint."
            )
        leaves.append(saved)
    return jax.tree_util.tree_unflatten(treedef, leaves)


def checkpoint_dir(root: str | os.PathLike, step: int) -> Path:
    return Path(root) / f"{PREFIX}{step:09d}"


def list_checkpoints(root: str | os.PathLike) -> list[tuple[int, Path]]:
    """(step, path) of the checkpoint folders under ``root``, oldest first (not verified)."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = []
    for child in root.iterdir():
        if child.is_dir() and child.name.startswith(PREFIX) and child.name[len(PREFIX) :].isdigit():
            found.append((int(child.name[len(PREFIX) :]), child))
    return sorted(found)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def save_checkpoint(
    root: str | os.PathLike, step: int, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any], keep: int
) -> Path:
    """Write ``arrays`` and ``meta`` as checkpoint ``step`` atomically; keep the newest ``keep`` checkpoints.

    Disk full (or any OS error) raises :class:`fidec.files.WriteError`; the previous checkpoints are intact.
    """
    root = Path(root)
    final = checkpoint_dir(root, step)
    with atomic_directory(final) as folder:
        arrays_path = folder / ARRAYS_FILE
        with open(arrays_path, "wb") as stream:
            np.savez(stream, allow_pickle=False, **{k: np.asarray(v) for k, v in arrays.items()})
            stream.flush()
            os.fsync(stream.fileno())
        manifest = {
            "format": FORMAT_VERSION,
            "step": step,
            "arrays_sha256": _sha256(arrays_path),
            "arrays_bytes": arrays_path.stat().st_size,
            "leaves": {k: [list(np.shape(v)), str(np.asarray(v).dtype)] for k, v in arrays.items()},
            "meta": dict(meta),
        }
        with open(folder / MANIFEST_FILE, "w") as stream:
            json.dump(manifest, stream, indent=1)
            stream.flush()
            os.fsync(stream.fileno())
    prune_checkpoints(root, keep)
    return final


def prune_checkpoints(root: str | os.PathLike, keep: int) -> None:
    """Delete all but the newest ``keep`` checkpoints, and leftovers of interrupted writes."""
    root = Path(root)
    remove_stale_temporaries(root, f"{PREFIX}*")
    for _, path in list_checkpoints(root)[:-keep]:
        shutil.rmtree(path, ignore_errors=True)


def read_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Load and verify one checkpoint folder; raise :class:`CheckpointError` naming what is wrong."""
    path = Path(path)
    manifest_path, arrays_path = path / MANIFEST_FILE, path / ARRAYS_FILE
    try:
        manifest = json.loads(manifest_path.read_text())
    except FileNotFoundError as exc:
        raise CheckpointError(f"{path}: no {MANIFEST_FILE} (the write was interrupted)") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path}: {MANIFEST_FILE} is not valid JSON ({exc})") from exc
    if manifest.get("format") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format {manifest.get('format')}, expected {FORMAT_VERSION}"
        )
    if not arrays_path.exists():
        raise CheckpointError(f"{path}: {ARRAYS_FILE} is missing")
    size = arrays_path.stat().st_size
    if size != manifest["arrays_bytes"]:
        raise CheckpointError(
            f"{path}: {ARRAYS_FILE} has {size} bytes, the manifest says {manifest['arrays_bytes']}"
        )
    if _sha256(arrays_path) != manifest["arrays_sha256"]:
        raise CheckpointError(f"{path}: checksum of {ARRAYS_FILE} does not match its manifest (damaged file)")
    try:
        with np.load(arrays_path, allow_pickle=False) as file:
            arrays = {k: file[k] for k in file.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise CheckpointError(f"{path}: cannot read {ARRAYS_FILE} ({exc})") from exc
    if set(arrays) != set(manifest["leaves"]):
        raise CheckpointError(f"{path}: the arrays do not match the manifest's list of entries")
    return Checkpoint(step=int(manifest["step"]), path=path, arrays=arrays, meta=manifest["meta"])


def read_meta(path: str | os.PathLike) -> tuple[int, dict[str, Any]] | None:
    """(step, meta) from a checkpoint's manifest alone (its arrays are neither read nor verified); None when
    the manifest cannot be read."""
    try:
        manifest = json.loads((Path(path) / MANIFEST_FILE).read_text())
        return int(manifest["step"]), dict(manifest["meta"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def load_latest_checkpoint(
    root: str | os.PathLike,
    max_step: int | None = None,
    report: Callable[[str], None] | None = None,
    step: int | None = None,
) -> Checkpoint | None:
    """The newest checkpoint that verifies (or exactly ``step``), falling back past damaged ones.

    Each damaged checkpoint is reported through ``report`` (default: a warning) and skipped.
    Returns None when there is no checkpoint at all.
    """
    report = report or (lambda message: warnings.warn(message, stacklevel=2))
    candidates = list_checkpoints(root)
    if step is not None:
        candidates = [(s, p) for s, p in candidates if s == step]
        if not candidates:
            available = [s for s, _ in list_checkpoints(root)]
            raise CheckpointError(f"no checkpoint at step {step} in {root}; available steps: {available}")
    if max_step is not None:
        candidates = [(s, p) for s, p in candidates if s <= max_step]
    for i, (found_step, path) in enumerate(reversed(candidates)):
        try:
            return read_checkpoint(path)
        except CheckpointError as exc:
            older = candidates[-(i + 2)][0] if i + 1 < len(candidates) else None
            fallback = f"falling back to step {older}" if older is not None else "no older checkpoint is left"
            report(f"checkpoint at step {found_step} is unusable: {exc}; {fallback}")
            if step is not None:
                raise
    return None
