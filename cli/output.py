"""Where a command's output goes: human lines on stderr (a live progress
line on a terminal, notes, errors, the summary), or JSON lines on stdout.

The JSON stream (``--json``) is one object per line, each with an
``"event"``:

- ``sync_start`` / ``sync_end``: a sync begins / ends (``index``, ``count``,
  ``src``, ``dst``; the end carries the sync's result);
- ``progress``: at most ten a second (``percent``, ``bytes_done``,
  ``bytes_total`` or null with rsync, ``rate``, ``eta``, ``current``...);
- ``hook``: a hook command starts (``hook``, ``command``);
- ``error``: an error line (``message``), e.g. one of the engine's;
- ``difference``: one difference found by verify (see syncengine.verify);
- ``itemize``: one itemized change (``-i``): ``index``, ``code`` (rsync's
  11 characters, e.g. ``">f+++++++++"``, or ``"*deleting"``), ``path``,
  and ``symlink_target`` or ``hardlink_to`` when the line has one;
- ``snapshot_start`` / ``snapshot_end``: a ``backup --snapshot`` builds
  (``id``, ``base``: the link base or null, ``dry_run``) / completed
  (``id``, ``path``) a snapshot;
- ``snapshot`` (``snapshots list``): one complete snapshot (``id``,
  ``time``, ``data_version``, ``entries``, ``unshared_bytes``,
  ``unshared_disk_bytes``);
- ``prune``: one snapshot's fate (``id``, ``action``: keep, delete,
  would_delete or in_use; ``reason``: the rule that keeps it);
- ``summary``: always the last line: ``command``, ``exit_code``, counts,
  bytes, ``duration``, and ``error`` when the command failed as a whole.

Text that is not valid UTF-8 (a name, usually) is carried twice: as text
with U+FFFD in place of the bad bytes, and losslessly as base64 in a field
named like it plus ``_b64`` (``"path"`` and ``"path_b64"``).
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

import click

from .. import Progress, SyncError, SyncResult
from ..itemize import ItemChange
from ..messages import rsync_escape
from ..verify import Difference, VerifyStats, display_name, json_name
from .display import REDRAW_INTERVAL, ProgressDisplay, emit_json, estimate, human_bytes, sync_progress_line

__all__ = ["Output", "json_clean"]


def _has_surrogates(text: str) -> bool:
    return any("\udc80" <= ch <= "\udcff" for ch in text)


def json_clean(obj: Any) -> Any:
    """``obj`` with every str that carries raw bytes (os.fsdecode's
    surrogate escapes) made valid: in a dict, as lossy text plus a
    ``<key>_b64`` field; in a list, as lossy text."""
    if isinstance(obj, dict):
        out: dict[str, Any] = {}
        for key, value in obj.items():
            if isinstance(value, str) and _has_surrogates(value):
                out.update(json_name(key, value))
            else:
                out[key] = json_clean(value)
        return out
    if isinstance(obj, (list, tuple)):
        return [json_name("v", v)["v"] if isinstance(v, str) and _has_surrogates(v)
                else json_clean(v) for v in obj]
    return obj


class Output:
    """One command's output; see the module doc.  Thread-safe: engines
    report progress from their own thread."""

    def __init__(self, command: str, *, json_out: bool = False, quiet: bool = False,
                 progress: bool | None = None) -> None:
        self.command = command
        self.json = json_out
        self.quiet = quiet
        self.bar = ProgressDisplay(enabled=False if quiet else progress)
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self._label = ""
        self._index: int | None = None
        self._header = ""             # the sync's header line, until its first -i line
        self._sync_started = self.started
        self._last_event = 0.0
        self.failed_sync: SyncError | None = None

    # -- plain lines ---------------------------------------------------------------------
    def emit(self, obj: dict[str, Any]) -> None:
        """One JSON line (only with --json)."""
        if self.json:
            with self._lock:
                emit_json(json_clean(obj))

    def note(self, line: str) -> None:
        """An informational line on stderr (not with -q)."""
        if not self.quiet:
            self.bar.clear()
            click.echo(line, err=True)

    def error(self, line: str, **fields: Any) -> None:
        """An error line: always on stderr, and an ``error`` event."""
        self.bar.clear()
        click.echo(line, err=True)
        self.emit({"event": "error", **fields, **json_name("message", line)})

    def warning(self, line: str) -> None:
        """A warning: on stderr even with -q (it says what was left out),
        and a ``warning`` event."""
        self.bar.clear()
        click.echo(line, err=True)
        self.emit({"event": "warning", **json_name("message", line)})

    # -- syncs ---------------------------------------------------------------------------
    def sync_start(self, index: int, count: int, src: str, dst: str, label: str = "") -> None:
        with self._lock:
            self._index, self._label = index, label
            self._sync_started = time.monotonic()
            self._last_event = 0.0
            # With several syncs, -i lines are relative to which one? A
            # header says (the JSON events carry the index instead).
            self._header = (f"[{index}/{count}] {label + ': ' if label else ''}"
                            f"{rsync_escape(src)} -> {rsync_escape(dst)}") if count > 1 else ""
        self.emit({"event": "sync_start", "index": index, "count": count,
                   **json_name("src", src), **json_name("dst", dst)})

    def sync_failed(self, index: int, error: SyncError) -> None:
        """A sync raised: remembered, so that a post hook failing after it
        does not hide it."""
        self.failed_sync = error
        if error.result is not None:
            self.sync_end(index, error.result)

    def sync_end(self, index: int, result: SyncResult) -> None:
        self.bar.clear()
        self.emit({"event": "sync_end", "index": index, **result.as_dict()})

    def item(self, change: ItemChange) -> None:
        """An itemized change: rsync's line on stdout (asked for with -i,
        so printed even with -q), or an ``itemize`` event."""
        if self.json:
            self.emit({"event": "itemize", "index": self._index, **change.as_dict()})
            return
        self.bar.clear()
        if self._header:
            click.echo(self._header)
            self._header = ""
        click.echo(rsync_escape(change.line()))

    def progress(self, sample: Progress) -> None:
        """An engine's progress callback: the live line, and throttled
        ``progress`` events."""
        now = time.monotonic()
        elapsed = now - self._sync_started
        if self.bar.enabled:
            fixed, tail = sync_progress_line(self._label, sample, elapsed)
            self.bar.draw(fixed, tail)
        if not self.json:
            return
        with self._lock:
            if self._last_event and now - self._last_event < REDRAW_INTERVAL:
                return
            self._last_event = now
        rate, eta = estimate(sample, elapsed)
        event = {"event": "progress", "index": self._index, "percent": round(sample.percent, 2),
                 "bytes_done": sample.bytes_done, "bytes_total": sample.bytes_total,
                 "files_transferred": sample.files_transferred,
                 "rate": round(rate, 1), "eta": None if eta is None else round(eta, 1),
                 "elapsed": round(elapsed, 3)}
        if sample.current:
            event.update(json_name("current", sample.current))
        self.emit(event)

    # -- hooks ----------------------------------------------------------------------------
    def hook_log(self, hook: str, command: str) -> None:
        self.note(f"syncengine: running {hook} hook: {command}")
        self.emit({"event": "hook", "hook": hook, **json_name("command", command)})

    def hook_output(self, text: str) -> None:
        self.bar.clear()
        sys.stderr.write(text)
        sys.stderr.flush()

    # -- verify ---------------------------------------------------------------------------
    def verify_progress(self, stats: VerifyStats) -> None:
        now = time.monotonic()
        if self.bar.enabled:
            fixed = (f"{self._label + '  ' if self._label else ''}verify  {stats.entries} entries"
                     f"  {human_bytes(stats.bytes_compared)} compared"
                     f"  {stats.differences} differences")
            self.bar.draw(fixed, display_name(stats.current))
        if not self.json:
            return
        with self._lock:
            if self._last_event and now - self._last_event < REDRAW_INTERVAL:
                return
            self._last_event = now
        self.emit({"event": "progress", "index": self._index, "phase": "verify",
                   "entries": stats.entries, "bytes_compared": stats.bytes_compared,
                   "differences": stats.differences, **json_name("current", stats.current),
                   "elapsed": round(now - self._sync_started, 3)})

    def difference(self, diff: Difference, *, as_error: bool, **where: Any) -> None:
        """A difference: a plain line on stdout for ``verify`` (not with -q),
        an error line on stderr after a sync; a ``difference`` event."""
        if self.json:
            self.emit({**diff.as_dict(), **{k: v for k, v in where.items() if v is not None}})
            if as_error:
                self.bar.clear()
                click.echo(f"syncengine: verify: {where.get('dst', '')}: {diff}", err=True)
        elif as_error:
            self.error(f"syncengine: verify: {where.get('dst', '')}: {diff}")
        elif not self.quiet:
            self.bar.clear()
            click.echo(str(diff))

    # -- the end --------------------------------------------------------------------------
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def summary(self, fields: dict[str, Any], human: str | None) -> None:
        """The last word: a ``summary`` event, or the human line on stderr."""
        self.bar.end()
        if self.json:
            self.emit({"event": "summary", "command": self.command, **fields,
                       "duration": round(self.elapsed(), 6)})
        elif human is not None:
            self.note(human)
