"""Atomic file writes: a reader sees the old file or the complete new one, never a torn write.

The text goes to a unique temporary file in the same folder, is flushed and fsync'd, then renamed over
the target (``os.replace`` is atomic on one filesystem); a failed write leaves no temporary behind.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Replace ``path`` by ``text`` atomically (parent folders are created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def write_json_atomic(path: str | os.PathLike, record: Any, indent: int = 2) -> Path:
    """Replace ``path`` by ``json.dumps(record, indent=indent)`` and a newline, atomically."""
    return write_text_atomic(path, json.dumps(record, indent=indent) + "\n")
