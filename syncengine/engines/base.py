"""The strategy layer's contract: what every engine returns.

An engine's ``start()`` returns a :class:`SyncJob` at once; ``wait()`` gives
the :class:`SyncResult` (or raises :class:`SyncError`).  Exit codes are
rsync's, whichever engine ran.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ..itemize import ItemChange
from ..messages import EXIT_MESSAGES, SENDER_BROKEN_PIPE, WARNING_EXIT_CODES
from ..options import SyncOptions

__all__ = [
    "EXIT_MESSAGES",
    "Engine",
    "Progress",
    "ItemCallback",
    "ProgressCallback",
    "SyncError",
    "SyncJob",
    "SyncResult",
    "is_failure",
]

def is_failure(exit_code: int) -> bool:
    return exit_code != 0 and exit_code not in WARNING_EXIT_CODES


@dataclass(frozen=True)
class Progress:
    """One progress sample.  ``bytes_total`` is None when the engine only
    knows a percentage (rsync reports bytes done and a percent)."""

    bytes_done: int
    bytes_total: int | None
    percent: float
    files_transferred: int = 0
    to_check: int | None = None
    total_entries: int | None = None
    current: str | None = None


ProgressCallback = Callable[[Progress], None]
# Receives each itemized change (rsync's -i) as the engine makes it.
ItemCallback = Callable[[ItemChange], None]


@dataclass(frozen=True)
class SyncResult:
    """The outcome of one sync, in rsync's terms."""

    engine: str
    src: str
    dst: str
    exit_code: int
    files_transferred: int = 0
    files_deleted: int = 0
    files_skipped: int = 0
    bytes_transferred: int = 0
    bytes_total: int = 0
    errors: tuple[str, ...] = ()
    messages: tuple[str, ...] = ()
    duration: float = 0.0
    dry_run: bool = False          # nothing was changed: the counts are what would be

    @property
    def ok(self) -> bool:
        return not is_failure(self.exit_code)

    @property
    def warnings(self) -> tuple[str, ...]:
        """Non-fatal problems: set when the exit code is 24."""
        return self.errors if self.exit_code in WARNING_EXIT_CODES else ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "engine": self.engine,
            "src": self.src,
            "dst": self.dst,
            "exit_code": self.exit_code,
            "files_transferred": self.files_transferred,
            "files_deleted": self.files_deleted,
            "files_skipped": self.files_skipped,
            "bytes_transferred": self.bytes_transferred,
            "bytes_total": self.bytes_total,
            "errors": list(self.errors),
            "duration": round(self.duration, 6),
            "dry_run": self.dry_run,
        }


# Lines that only echo an earlier failure: rsync's summary line, and its
# sender's complaint when the receiver died of a write error (disk full).
_ECHOES = ("rsync error:", SENDER_BROKEN_PIPE)


class SyncError(Exception):
    """A sync that failed: carries rsync's exit code and the tail of the
    engine's error output."""

    def __init__(self, message: str, exit_code: int = 1, stderr: str = "",
                 result: SyncResult | None = None) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.stderr = stderr
        self.result = result

    @classmethod
    def from_result(cls, result: SyncResult) -> SyncError:
        meaning = EXIT_MESSAGES.get(result.exit_code, "unknown error")
        tail = "\n".join(result.errors[-20:])
        message = (f"{result.engine} sync {result.src!s} -> {result.dst!s} failed "
                   f"with exit code {result.exit_code} ({meaning})")
        last = next((line for line in reversed(result.errors)
                     if line and not line.startswith(_ECHOES)), "")
        if last:
            message += f": {last}"
        return cls(message, result.exit_code, tail, result)


class SyncJob:
    """A running sync.  Subclasses run ``_run()`` in a thread and report
    progress through ``_report()``; this class keeps ``progress()`` monotonic
    and turns failures into :class:`SyncError` on ``wait()``."""

    _ids = itertools.count(1)

    def __init__(self, on_progress: ProgressCallback | None = None) -> None:
        self._on_progress = on_progress
        self._percent = 0.0
        self._last: Progress | None = None
        self._lock = threading.Lock()
        self._result: SyncResult | None = None
        self._exception: BaseException | None = None
        self._done = threading.Event()
        self._cancelled = threading.Event()
        self._started = time.monotonic()
        self.id = f"job-{next(self._ids)}"
        self._thread = threading.Thread(target=self._main, name=self.id, daemon=True)

    # -- for subclasses -------------------------------------------------
    def _launch(self) -> SyncJob:
        self._thread.start()
        return self

    def _run(self) -> SyncResult:  # pragma: no cover - abstract
        raise NotImplementedError

    def _report(self, sample: Progress) -> None:
        with self._lock:
            self._percent = max(self._percent, min(100.0, sample.percent))
            self._last = sample
        if self._on_progress is not None:
            self._on_progress(sample)

    def _main(self) -> None:
        try:
            self._result = self._run()
            if not is_failure(self._result.exit_code):
                with self._lock:
                    self._percent = 100.0
        except BaseException as exc:  # handed to wait()
            self._exception = exc
        finally:
            self._done.set()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    # -- public -----------------------------------------------------------
    def progress(self) -> float:
        """Percent done, 0.0-100.0; never goes backwards."""
        with self._lock:
            return self._percent

    def last_progress(self) -> Progress | None:
        with self._lock:
            return self._last

    def cancel(self) -> None:
        """Ask the job to stop at the next safe point; ``wait()`` then
        raises SyncError with exit code 20."""
        self._cancelled.set()

    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> SyncResult:
        """Block until the job ends.  Returns the result when the exit code
        is 0 or 24; raises SyncError otherwise."""
        if not self._done.wait(timeout):
            raise TimeoutError(f"{self.id} still running after {timeout} s")
        if self._exception is not None:
            raise self._exception
        assert self._result is not None
        if is_failure(self._result.exit_code):
            raise SyncError.from_result(self._result)
        return self._result

    def result(self) -> SyncResult:
        """Block until the job ends and return its result, failed or not."""
        self._done.wait()
        if self._exception is not None:
            raise self._exception
        assert self._result is not None
        return self._result


class Engine(Protocol):
    """What the facade and ``sync()`` need from an engine."""

    name: str

    def available(self) -> bool:
        """True when the engine can run on this machine."""

    def start(self, src: str, dst: str, options: SyncOptions = SyncOptions(), *,
              on_progress: ProgressCallback | None = None, on_item: ItemCallback | None = None,
              dry_run: bool = False, link_dest: tuple[str, ...] = ()) -> SyncJob:
        """Start syncing SRC to DST with rsync's argument semantics (a
        trailing slash on SRC copies its contents).  ``on_item`` gets each
        itemized change; ``dry_run`` changes nothing and reports what a
        real run would do; ``link_dest``: rsync's ``--link-dest=DIR`` for
        each DIR (a new file identical to DIR's is hard-linked to it)."""
