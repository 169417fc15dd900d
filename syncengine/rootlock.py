"""One run at a time per backup root: an ``flock`` on the backup root itself.

``backup`` and ``restore`` both hold it (the backup root is what they
share), from before their first hook to after their last, and so does a
snapshot prune (a snapshot backup prunes under its own hold: flock is
per open file, so it must not take the lock a second time); a dry run holds
it shared (it reads the root, so no real run may change it meanwhile, but
dry runs may run side by side).  A run that finds it taken fails at once
with :class:`BackupRootBusy`, whose message says which run holds it: its
pid, command line and start time, from ``/proc/locks`` and ``/proc/PID``.

The directory is locked, not a lock file in it: nothing is written, so a
restore leaves its source (the backup root) untouched, a read-only backup
medium locks as well as any other, and a dry run creates nothing.  The
kernel drops an flock with the last process that holds it, so a killed
run never leaves a lock behind.  Where a filesystem has no flock (some
network filesystems refuse it), runs are not locked.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import time
from collections.abc import Iterator

from .engines.base import SyncError

__all__ = ["BUSY_EXIT", "BackupRootBusy", "root_lock"]

BUSY_EXIT = 3  # (rsync's "errors selecting input/output files, dirs")


class BackupRootBusy(SyncError):
    """Another run holds the backup root's lock."""

    def __init__(self, root: str, holder: str) -> None:
        super().__init__(f"backup root {root} is in use by another run ({holder}); "
                         "try again when it has finished", exit_code=BUSY_EXIT)
        self.root = root


@contextlib.contextmanager
def root_lock(root: str, operation: str, *, dry_run: bool = False) -> Iterator[None]:
    """Hold ``root``'s lock while the body runs ("backup" or "restore", as
    the message of a run that finds it taken says); raise BackupRootBusy
    when another run holds it.  A root that cannot be opened is left to
    the caller's checks."""
    try:
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        yield
        return
    try:
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if dry_run else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BackupRootBusy(root, _holder(fd)) from None
        except OSError as exc:
            if exc.errno not in (errno.ENOLCK, errno.EBADF, errno.EINVAL, errno.EOPNOTSUPP):
                raise
        yield
    finally:
        os.close(fd)


def _holder(fd: int) -> str:
    """Who holds the flock on ``fd``'s inode: "pid N: COMMAND, running since
    TIME" (as far as /proc tells)."""
    st = os.fstat(fd)
    inode = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    try:
        with open("/proc/locks") as f:
            pids = [int(fields[4]) for fields in (line.split() for line in f)
                    if len(fields) > 5 and fields[1] == "FLOCK" and fields[5] == inode]
    except (OSError, ValueError):
        pids = []
    if not pids:  # (it ended since, or /proc is not there)
        return "another process"
    return f"pid {pids[0]}: {_command_line(pids[0])}, running since {_started(pids[0])}"


def _command_line(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            text = " ".join(os.fsdecode(arg) for arg in f.read().split(b"\0") if arg)
    except OSError:
        return "command unknown"
    return text if len(text) <= 300 else text[:297] + "..."


def _started(pid: int) -> str:
    """A process's start time, local time (its stat's starttime, in clock
    ticks after boot, plus the boot time)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/stat") as f:
            boot = next(int(line.split()[1]) for line in f if line.startswith("btime "))
    except (OSError, ValueError, IndexError, StopIteration):
        return "an unknown time"
    started = boot + ticks / os.sysconf("SC_CLK_TCK")
    return time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(started))
