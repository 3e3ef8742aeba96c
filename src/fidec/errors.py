"""What every fidec command does with a mistake a user can make or fix: one clear line and one exit code.

Errors a user can cause or fix (a bad option or config, a missing or damaged file, a run directory in use,
a full disk) derive from :class:`UserError`; their message names what is wrong and what to do.  Every
``fidec`` command turns them into ``error: <message>`` on stderr and exit code :data:`EXIT_USER_ERROR`.

Exit codes of every ``fidec`` command:

- 0: done;
- 1 (:data:`EXIT_FAILURE`): the work itself failed (e.g. training diverged); the message says where it stopped;
- 2 (:data:`EXIT_USER_ERROR`): a mistake the user can fix (bad input, missing or damaged file, a folder in
  use or not writable, output that cannot be written);
- 128 + the signal's number (:func:`exit_code_for_signal`): stopped by a signal, state saved where there is
  any: 130 after Ctrl-C (SIGINT), 143 after SIGTERM (``kill``, ``docker stop``, Slurm), 129 after SIGHUP
  (the terminal closed).  ``fidec train`` saves a checkpoint first and says how to resume.
"""

from __future__ import annotations

import errno
import signal
from collections.abc import Iterator
from contextlib import contextmanager

import typer

EXIT_USER_ERROR = 2  # the user can fix it (bad input, missing file, ...)
EXIT_FAILURE = 1  # the work itself failed (e.g. training diverged); the message says where it stopped
EXIT_INTERRUPTED = 130  # Ctrl-C (the state was saved)
# The signals a command treats as "stop cleanly": Ctrl-C, kill / docker stop / Slurm, a closed terminal.
STOP_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class UserError(Exception):
    """Base of the errors a user can cause or fix; the message says what is wrong and what to do."""


def exit_code_for_signal(signum: int) -> int:
    """The exit code after stopping on signal ``signum``: 128 + its number (the shell's convention)."""
    return 128 + int(signum)


def signal_name(signum: int) -> str:
    """'Ctrl-C (SIGINT)', 'SIGTERM', 'SIGHUP', ...: how a message names the signal that stopped a command."""
    name = signal.Signals(signum).name
    return "Ctrl-C (SIGINT)" if signum == signal.SIGINT else name


def fail(message: str, code: int = EXIT_USER_ERROR) -> typer.Exit:
    """Print ``error: message`` to stderr and return the Exit to raise."""
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code)


def name_too_long(path: object) -> str:
    """The message for a path the file system refuses as too long (a name over 255 bytes, a path over 4096)."""
    where = "a path" if path is None else repr(str(path)[:60] + ("..." if len(str(path)) > 60 else ""))
    return (
        f"{where}: file name too long (the file system allows 255 bytes per name and 4096 per path); "
        "choose a shorter name"
    )


@contextmanager
def user_errors(*also: type[BaseException]) -> Iterator[None]:
    """Inside a command: a :class:`UserError` (or one of ``also``) becomes one line and exit code 2; so does
    a path the file system refuses as too long."""
    caught: tuple[type[BaseException], ...] = (UserError, *also)
    try:
        yield
    except caught as exc:
        raise fail(str(exc)) from None
    except OSError as exc:
        if exc.errno != errno.ENAMETOOLONG:
            raise
        raise fail(name_too_long(exc.filename)) from None
