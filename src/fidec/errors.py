"""What every fidec command does with a mistake a user can make or fix: one clear line and one exit code.

Errors a user can cause or fix (a bad option or config, a missing or damaged file, a run directory in use,
a full disk) derive from :class:`UserError`; their message names what is wrong and what to do.  Every
``fidec`` command turns them into ``error: <message>`` on stderr and exit code :data:`EXIT_USER_ERROR`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer

EXIT_USER_ERROR = 2  # the user can fix it (bad input, missing file, ...)
EXIT_FAILURE = 1  # the work itself failed (e.g. training diverged); the message says where it stopped
EXIT_INTERRUPTED = 130  # Ctrl-C (the state was saved)


class UserError(Exception):
    """Base of the errors a user can cause or fix; the message says what is wrong and what to do."""


def fail(message: str, code: int = EXIT_USER_ERROR) -> typer.Exit:
    """Print ``error: message`` to stderr and return the Exit to raise."""
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code)


@contextmanager
def user_errors(*also: type[BaseException]) -> Iterator[None]:
    """Inside a command: a :class:`UserError` (or one of ``also``) becomes one line and exit code 2."""
    caught: tuple[type[BaseException], ...] = (UserError, *also)
    try:
        yield
    except caught as exc:
        raise fail(str(exc)) from None
