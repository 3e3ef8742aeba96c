"""The errors of the data layer: a dataset that cannot be used, one that is missing, one that cannot be read.

All are :class:`fidec.errors.UserError`, so every ``fidec`` command reports them as one line with exit
code 2; each message names the file, what was found, what was expected and what to do.
"""

from __future__ import annotations

import os

from fidec.errors import UserError


class DatasetError(UserError, ValueError):
    """A dataset that cannot be used as it is; the message says why and what to do."""


class DatasetNotFoundError(DatasetError, FileNotFoundError):
    """A dataset file is not where it was expected; the message says how to obtain it."""


def file_read_error(path: str | os.PathLike, error: BaseException) -> DatasetError:
    """A truncated or corrupt file: say which file, what failed and how to recover."""
    return DatasetError(
        f"Could not read dataset file {path}: {type(error).__name__}: {error}. The file is truncated or corrupt "
        "(an interrupted download or copy). Delete it and download or generate it again."
    )
