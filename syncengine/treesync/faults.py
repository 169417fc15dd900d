"""A test-only crash hook: die right after the N-th filesystem mutation.

Armed (by :func:`arm`; a process started with ``SYNCENGINE_CRASH_AFTER=N``
in its environment arms it at start-up: syncengine/environment.py), the
native engine calls ``os._exit(137)`` right
after its N-th change to the destination: creating a temp file, each write
into it, a rename, unlink, rmdir, mkdir, symlink, link, and every chown,
chmod, utime, xattr and ACL change.  137 is what a shell reports for a
process killed by SIGKILL, which is what the crash stands for: no cleanup
runs, no buffered output is flushed, no ``finally`` block executes.

Unset (the normal case) the hook is a module-level no-op function: one
call per mutation, nothing read, nothing counted.

Armed with a stall (``SYNCENGINE_STALL_AFTER=N``), the engine instead
sleeps (``SYNCENGINE_STALL_SECONDS``, default 1.5) right after its N-th
mutation and then goes on: a window in which a test can signal the process while,
say, a temp file exists.

Tests that fork a child process arm the hook there with :func:`arm`;
:func:`count` tells how many
mutations the armed process has made so far.
"""

from __future__ import annotations

import os
import time

__all__ = ["CRASH_EXIT", "arm", "armed", "count", "mutated"]

CRASH_EXIT = 137

_limit = 0
_count = 0
# Every mutation of this process, armed or not: a run that finds it moved
# knows it changed something (precheck.py's verdicts rely on it).
changes = 0
_stall = 0.0  # seconds to sleep at the limit instead of exiting


def _noop(what: str = "") -> None:
    """The hook when no crash is armed: it only counts."""
    global changes
    changes += 1


def _counting(what: str = "") -> None:
    global _count, changes
    _count += 1
    changes += 1
    if _count == _limit > 0:
        if _stall:
            time.sleep(_stall)
        else:
            os._exit(CRASH_EXIT)


def arm(after: int, stall: float = 0.0) -> None:
    """Crash right after the ``after``-th mutation from now on (or with
    ``stall``, sleep that long there and go on); 0 counts mutations without
    ever crashing; a negative value disarms the hook."""
    global _limit, _count, _stall, mutated
    _count, _stall = 0, stall
    if after < 0:
        _limit, mutated = 0, _noop
    else:
        _limit, mutated = after, _counting


def armed() -> bool:
    """Whether the hook counts mutations (of this process only: a forked
    helper's would be counted apart)."""
    return mutated is not _noop


def count() -> int:
    """Mutations made since :func:`arm` (0 when the hook is disarmed)."""
    return _count


# ``mutated(what)``: call right after each filesystem mutation of the
# destination (``what`` only documents the call site).
mutated = _noop
