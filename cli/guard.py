"""Running a command body: every expected failure as one line and its exit code."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable

import click

from .. import SyncError
from ..config import HookError
from ..snapshots import (
                         SnapshotError,
)
from .output import Output

USAGE_ERROR = 2
MISMATCH = 1        # verify found differences
HOOK_FAILED = 1     # a hook command failed
INTERRUPTED = 20    # rsync's code for SIGINT/SIGTERM
SNAPSHOT_FAILED = 3  # a snapshot cannot be made, found or deleted (rsync's "errors selecting

                     # input/output files, dirs", as for a busy backup root)


class CommandFailed(Exception):
    """A one-line error for the user, with the exit code to leave with."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def run_guarded(action: Callable[[], int], output: Output) -> None:
    """Run a command body; turn every expected failure into one line on
    stderr (and a JSON summary with --json) and its exit code."""
    try:
        _interrupt_on_stop_signals()
        code = action()
    except CommandFailed as exc:
        message, code = str(exc), exc.exit_code
    except HookError as exc:
        message, code = str(exc), HOOK_FAILED
        failed_sync = output.failed_sync
        if failed_sync is not None:  # post_backup failed after a failed sync
            output.error(f"syncengine: error: {failed_sync}")
            code = failed_sync.exit_code
    except ValueError as exc:
        message, code = str(exc), USAGE_ERROR
    except SyncError as exc:
        message, code = str(exc), exc.exit_code
    except SnapshotError as exc:
        message, code = str(exc), SNAPSHOT_FAILED
    except BrokenPipeError:
        # The reader went away (`syncengine verify ... | head`): no traceback,
        # and nothing more to say to it.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError, AttributeError):
            pass
        sys.exit(1)
    except OSError as exc:
        message, code = os_error_line(exc), 11
    except KeyboardInterrupt:
        message, code = "interrupted", INTERRUPTED
    else:
        sys.exit(code)
    output.bar.clear()
    click.echo(f"syncengine: error: {message}", err=True)
    output.summary({"exit_code": code, "error": message}, None)
    sys.exit(code)


def os_error_line(exc: OSError) -> str:
    """``PATH: cause`` (rsync and coreutils style), one line."""
    cause = exc.strerror or str(exc)
    if exc.filename is None:
        return cause
    path = os.fsdecode(exc.filename)
    if exc.filename2 is not None:
        path += f" -> {os.fsdecode(exc.filename2)}"
    return f"{path}: {cause}"



_owns_signals = False  # the command owns the process (not so in a test): own_signals()


def own_signals() -> None:
    """The command owns the process: its stop signals interrupt the body."""
    global _owns_signals
    _owns_signals = True


def _interrupt_on_stop_signals() -> None:
    """From the moment a command body runs, SIGINT, SIGTERM and SIGHUP
    stop it as Ctrl-C does: the running sync is cancelled (its temp file
    removed) and the exit code is 20, rsync's.  (Before that, the entry
    point's handler exits at once with the same line: see __main__.)"""
    if _owns_signals:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, signal.default_int_handler)
