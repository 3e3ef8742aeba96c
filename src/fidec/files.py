"""The one place fidec writes files atomically, locks them, and checks where output goes.

- Atomic writes: the data goes to a unique temporary file (or folder) beside the target, is flushed and
  fsync'd, then renamed over the target (``os.replace`` is atomic on one filesystem).  A reader sees the
  old file or the complete new one; a failed write leaves no temporary behind.  New files get the usual
  permissions (0666 minus the umask), so shared output folders stay readable by the group.
- Disk full (or any other OS error) while writing becomes a :class:`WriteError` naming the file.
- :class:`FileLock`: an exclusive ``fcntl`` lock, released by the OS even on ``kill -9``.
- :func:`output_file`: where an ``--out`` option's file goes (an existing folder receives the file), checked
  before any long work starts.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from fidec.errors import UserError


class WriteError(UserError, OSError):
    """A file could not be written (disk full, no permission, ...); the message names the file and the cause."""

    def __str__(self) -> str:
        return str(self.strerror or super().__str__())


class LockedError(UserError, RuntimeError):
    """Another process holds the lock; the message says who and what to do."""


class OutputPathError(UserError, ValueError):
    """An output path that cannot receive the file (names the path and what to choose instead)."""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _describe(exc: OSError, path: Path) -> str:
    if exc.errno == errno.ENOSPC:
        return f"cannot write {path}: the disk is full; free space (the previous file, if any, is intact) and retry"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"cannot write {path}: no permission ({exc.strerror}); choose a folder you can write to"
    return f"cannot write {path}: {exc.strerror or exc}"


def fsync_dir(path: str | os.PathLike) -> None:
    """Flush a folder's entries (a rename inside it) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_file(path: str | os.PathLike, mode: str = "w") -> Iterator[IO[Any]]:
    """Write ``path`` through a stream that replaces it atomically when the block ends without error.

    ``mode`` is "w" (text) or "wb" (bytes).  Parent folders are created.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise WriteError(exc.errno, _describe(exc, path)) from exc
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, mode) as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except OSError as exc:
        Path(temporary).unlink(missing_ok=True)
        raise WriteError(exc.errno, _describe(exc, path)) from exc
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Like :func:`atomic_file`, for writers that need a file name (``np.lib.format.open_memmap``, h5py):
    the block receives a temporary path beside ``path``, which replaces ``path`` when the block succeeds."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WriteError(exc.errno, _describe(exc, path)) from exc
    try:
        yield temporary
        with open(temporary, "rb+") as stream:
            os.fsync(stream.fileno())
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, path)
        fsync_dir(path.parent)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise WriteError(exc.errno, _describe(exc, path)) from exc
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Replace ``path`` by ``text`` atomically (parent folders are created); returns the path."""
    with atomic_file(path, "w") as stream:
        stream.write(text)
    return Path(path)


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Replace ``path`` by ``data`` atomically; returns the path."""
    with atomic_file(path, "wb") as stream:
        stream.write(data)
    return Path(path)


def write_json_atomic(path: str | os.PathLike, record: Any, indent: int = 2) -> Path:
    """Replace ``path`` by ``json.dumps(record, indent=indent)`` and a newline, atomically."""
    return write_text_atomic(path, json.dumps(record, indent=indent) + "\n")


class DirectoryExistsError(FileExistsError):
    """:func:`atomic_directory` found ``path`` already holding files and was told not to replace it."""


@contextmanager
def atomic_directory(path: str | os.PathLike, replace_existing: bool = True) -> Iterator[Path]:
    """Build a folder in a hidden temporary sibling, then rename it to ``path`` in one step.

    The block receives the temporary folder.  An existing ``path`` is replaced only after the new one is
    complete (an empty one is replaced directly); with ``replace_existing=False`` a non-empty ``path`` (even
    one another process created meanwhile) raises :class:`DirectoryExistsError` and is left untouched.
    On error the temporary folder is removed.
    """
    path = Path(path)
    temporary = path.parent / f".{path.name}.tmp-{os.getpid()}"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if temporary.exists():
            shutil.rmtree(temporary)
        temporary.mkdir(mode=0o777 & ~_umask())
    except OSError as exc:
        raise WriteError(exc.errno, _describe(exc, path)) from exc
    try:
        yield temporary
        fsync_dir(temporary)
        if replace_existing and path.exists() and (path.is_file() or any(path.iterdir())):
            shutil.rmtree(path)
        try:
            os.replace(temporary, path)  # onto an empty folder, or a new name
        except OSError as exc:
            if not replace_existing and exc.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR):
                raise DirectoryExistsError(exc.errno, f"{path} already exists and is not empty") from exc
            raise
        fsync_dir(path.parent)
    except DirectoryExistsError:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    except OSError as exc:
        shutil.rmtree(temporary, ignore_errors=True)
        raise WriteError(exc.errno, _describe(exc, path)) from exc
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise


def remove_stale_temporaries(folder: str | os.PathLike, name: str) -> None:
    """Delete leftovers ``.<name>.tmp-<pid>`` of interrupted :func:`atomic_directory` writes (other processes')."""
    for child in Path(folder).glob(f".{name}.tmp-*"):
        if not child.name.endswith(f"-{os.getpid()}"):
            shutil.rmtree(child, ignore_errors=True) if child.is_dir() else child.unlink(missing_ok=True)


class FileLock:
    """An exclusive lock on ``path`` (created if missing), held while the ``with`` block runs.

    ``wait_s`` = 0 refuses at once when another process holds it; otherwise waits up to ``wait_s`` seconds.
    ``owner`` describes the holder in the refusal message (e.g. "another fidec train"); ``on_wait`` is called
    once when the lock is busy and the call is about to wait (to say so).  A lock file that cannot be created
    (a folder that is not writable) is a :class:`WriteError`.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        owner: str = "another process",
        hint: str = "",
        wait_s: float = 0.0,
        on_wait: Callable[[], None] | None = None,
    ):
        self.path = Path(path)
        self.owner = owner
        self.hint = hint
        self.wait_s = wait_s
        self.on_wait = on_wait
        self._stream: IO[str] | None = None

    def __enter__(self) -> FileLock:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            stream = open(self.path, "a+")
        except OSError as exc:  # a folder that is not writable (or a name that is too long)
            if exc.errno == errno.ENAMETOOLONG:
                raise
            raise WriteError(exc.errno, _describe(exc, self.path)) from exc
        deadline = time.monotonic() + self.wait_s
        waiting = False
        while True:
            try:
                fcntl.flock(stream.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    stream.close()
                    hint = f"; {self.hint}" if self.hint else ""
                    raise LockedError(f"{self.owner} holds {self.path}{hint}") from None
                if not waiting and self.on_wait is not None:
                    self.on_wait()
                waiting = True
                time.sleep(0.2)
        stream.seek(0)
        stream.truncate()
        stream.write(f"{os.getpid()}\n")
        stream.flush()
        self._stream = stream
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._stream is not None:
            fcntl.flock(self._stream.fileno(), fcntl.LOCK_UN)
            self._stream.close()
            self._stream = None


def output_file(
    out: str | os.PathLike | None, default_name: str, default_dir: str | os.PathLike = "."
) -> Path:
    """The file an ``--out`` option names, checked before any work: an existing folder receives
    ``default_name``; a path whose parent is not a folder, or an existing file where a folder is needed, is an
    :class:`OutputPathError`.  The parent folder is created and must be writable."""
    target = Path(default_dir) / default_name if out is None else Path(out).expanduser()
    if target.is_dir():
        target = target / default_name
    parent = target.parent
    for ancestor in [parent, *parent.parents]:
        if ancestor.exists():
            if not ancestor.is_dir():
                raise OutputPathError(
                    f"cannot write {target}: {ancestor} is a file, not a folder; choose another --out"
                )
            if not os.access(ancestor, os.W_OK):
                raise OutputPathError(
                    f"cannot write {target}: {ancestor} is not writable; choose another --out"
                )
            break
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputPathError(_describe(exc, target)) from exc
    return target


def output_dir(out: str | os.PathLike, create: bool = True) -> Path:
    """A folder an ``--out`` option names, refusing an existing file or an unwritable place before any work
    starts; created unless ``create`` is False (a check only)."""
    path = Path(out).expanduser()
    if path.exists() and not path.is_dir():
        raise OutputPathError(f"--out {path} is a file; give a folder (it is created if missing)")
    existing = next(p for p in [path, *path.parents] if p.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK):
        raise OutputPathError(f"--out {path}: {existing} is not a writable folder; choose another folder")
    if create:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputPathError(_describe(exc, path)) from exc
    return path
