"""Human output on the terminal: the live progress line, sizes, summaries,
and the JSON line writer."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from typing import Any, TextIO

from .. import Progress, SyncResult
from ..verify import display_name

__all__ = ["ProgressDisplay", "human_bytes", "human_duration", "summary_line", "emit_json",
           "sync_progress_line", "REDRAW_INTERVAL"]

# At most ten redraws (and ten JSON progress events) a second.
REDRAW_INTERVAL = 0.1
_BAR_WIDTH = 20


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover


def human_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return (f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours
            else f"{rest // 60}:{rest % 60:02d}")


def estimate(sample: Progress, elapsed: float) -> tuple[float, float | None]:
    """(bytes per second, seconds left or None) of a sync so far.  With
    rsync only the percentage tells how much is left."""
    rate = sample.bytes_done / elapsed if elapsed > 0 else 0.0
    if sample.bytes_total:
        left = max(sample.bytes_total - sample.bytes_done, 0)
        return rate, (left / rate if rate > 0 else None)
    if 0 < sample.percent < 100:
        return rate, elapsed * (100 - sample.percent) / sample.percent
    return rate, (0.0 if sample.percent >= 100 else None)


def sync_progress_line(label: str, sample: Progress, elapsed: float) -> tuple[str, str]:
    """The progress line of a sync, as (fixed part, current file)."""
    rate, eta = estimate(sample, elapsed)
    filled = int(_BAR_WIDTH * min(max(sample.percent, 0.0), 100.0) / 100)
    size = human_bytes(sample.bytes_done)
    if sample.bytes_total:
        size += f"/{human_bytes(sample.bytes_total)}"
    parts = [f"[{'#' * filled}{'-' * (_BAR_WIDTH - filled)}] {sample.percent:5.1f}%", size,
             f"{human_bytes(rate)}/s", f"ETA {human_duration(eta) if eta is not None else '?'}",
             f"{sample.files_transferred} files"]
    if label:
        parts.insert(0, label)
    return "  ".join(parts), display_name(sample.current) if sample.current else ""


class ProgressDisplay:
    """One live line on a terminal (stderr), redrawn at most ten times a
    second and cut to the terminal's width (a pipe or file, with
    ``--progress``, gets it whole); ``clear()`` removes it before other
    output, ``end()`` when the work is done."""

    def __init__(self, stream: TextIO | None = None, enabled: bool | None = None) -> None:
        # Looked up at call time, not import time: click's CliRunner and
        # contextlib.redirect_stderr swap sys.stderr after this module loads.
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = _isatty(self.stream) if enabled is None else enabled
        self._shown = 0
        self._last = 0.0
        self._lock = threading.Lock()

    def _columns(self) -> int | None:
        """The terminal's width; None when the stream is no terminal (a
        line cut there would only lose its end)."""
        if not _isatty(self.stream):
            return None
        try:
            columns = os.get_terminal_size(self.stream.fileno()).columns
        except (OSError, ValueError, AttributeError):
            columns = 0
        if not columns:  # a terminal that does not know its size
            try:
                columns = int(os.environ.get("COLUMNS", ""))
            except ValueError:
                columns = 80
        return max(columns, 20)

    def draw(self, fixed: str, tail: str = "", *, force: bool = False) -> None:
        """Show ``fixed`` and as much of ``tail`` (a file name: its end is
        kept) as the terminal has room for."""
        if not self.enabled:
            return
        now = time.monotonic()
        with self._lock:
            if not force and self._shown and now - self._last < REDRAW_INTERVAL:
                return
            self._last = now
            columns = self._columns()
            line = fixed
            if columns is None:
                line += "  " + tail if tail else ""
            else:
                width = columns - 1
                room = width - len(line) - 2
                if tail and room > 3:
                    line += "  " + (tail if len(tail) <= room else "…" + tail[-(room - 1):])
                line = line[:width]
            self.stream.write("\r" + line.ljust(self._shown))
            self.stream.flush()
            self._shown = max(self._shown, len(line))

    def clear(self) -> None:
        with self._lock:
            if self.enabled and self._shown:
                self.stream.write("\r" + " " * self._shown + "\r")
                self.stream.flush()
                self._shown = 0

    end = clear


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def summary_line(verb: str, results: list[SyncResult], duration: float) -> str:
    files = sum(r.files_transferred for r in results)
    size = sum(r.bytes_transferred for r in results)
    engines = ", ".join(sorted({r.engine for r in results})) or "none"
    # Devices, fifos and sockets are not copied (no -D): say how many.
    skipped = sum(r.files_skipped for r in results)
    skipped_text = f", {skipped} special file(s) skipped" if skipped else ""
    if any(r.dry_run for r in results):
        return (f"{verb} (dry run, nothing changed): {len(results)} sync(s), {files} file(s) "
                f"would be transferred{skipped_text}, {human_bytes(size)} in {duration:.2f} s "
                f"(engine: {engines})")
    return (f"{verb}: {len(results)} sync(s), {files} file(s) transferred{skipped_text}, "
            f"{human_bytes(size)} in {duration:.2f} s (engine: {engines})")


def emit_json(obj: dict[str, Any], stream: TextIO | None = None) -> None:
    stream = stream if stream is not None else sys.stdout  # at call time (see ProgressDisplay)
    stream.write(json.dumps(obj, ensure_ascii=False, default=str) + "\n")
    stream.flush()
