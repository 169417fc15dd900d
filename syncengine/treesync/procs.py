"""Forked helper processes (precheck.py's workers, writer.py's writer):
how one starts, how it dies with the run, how it is reaped."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable

__all__ = ["dies_with_this_thread", "fork_helper", "kill_and_reap"]

_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def fork_helper(body: Callable[[], None], on_signal: int = signal.SIG_DFL) -> int:
    """Fork a process that runs ``body()`` and exits (with 1 if it raised);
    returns its pid.  In it SIGINT, SIGTERM and SIGHUP get ``on_signal``
    (SIG_IGN leaves the cleanup to the run, which tells it to stop), and it
    dies with the thread that forked it, or at once if that is gone
    already.  No ``finally`` or atexit code of the run's runs in it."""
    parent = os.getpid()
    prctl = _prctl()  # (resolved here: the child of a threaded process loads nothing)
    pid = os.fork()
    if pid:
        return pid
    code = 0
    try:
        for signum in _SIGNALS:
            signal.signal(signum, on_signal)
        if prctl:
            prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: die with the forking thread
        if os.getppid() != parent:  # it died before PR_SET_PDEATHSIG took
            os._exit(1)
        body()
    except BaseException:
        code = 1
    os._exit(code)


def dies_with_this_thread(sig: int) -> Callable[[], None]:
    """A Popen ``preexec_fn``: the child receives ``sig`` when the calling
    thread ends (PR_SET_PDEATHSIG, which survives exec), or at once if the
    parent process died before the setting took."""
    parent, prctl = os.getpid(), _prctl()  # (resolved here, not in the child)

    def setup() -> None:
        if prctl:
            prctl(1, sig)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:
            os.kill(os.getpid(), sig)
    return setup


_PRCTL: list = []


def _prctl() -> Callable | None:
    """libc's prctl, looked up once (None without it: its pipe or socket
    still ends a helper whose run is gone)."""
    if not _PRCTL:
        try:
            import ctypes
            _PRCTL.append(ctypes.CDLL(None, use_errno=True).prctl)
        except Exception:  # pragma: no cover
            _PRCTL.append(None)
    return _PRCTL[0]


def kill_and_reap(pid: int, grace: float = 0.0) -> None:
    """End a helper: give it ``grace`` seconds to exit on its own, then
    SIGKILL; wait for it, in a thread if it is stuck in the kernel (a read
    on a hung mount ends only when the read does)."""
    deadline = time.monotonic() + grace
    while True:
        try:
            if os.waitpid(pid, os.WNOHANG)[0]:
                return
        except ChildProcessError:
            return
        if time.monotonic() >= deadline:
            break
        time.sleep(0.001)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    for _ in range(100):
        try:
            if os.waitpid(pid, os.WNOHANG)[0]:
                return
        except ChildProcessError:
            return
        time.sleep(0.001)
    threading.Thread(target=os.waitpid, args=(pid, 0), daemon=True).start()
