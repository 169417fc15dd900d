"""Progress and summary output for the command line."""

from __future__ import annotations

import json
import sys
import time
from typing import Any, TextIO

from .. import Progress, SyncResult

__all__ = ["ProgressDisplay", "human_bytes", "summary_line", "emit_json"]


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover


class ProgressDisplay:
    """A one-line live display on a terminal: percent, bytes, rate, label."""

    def __init__(self, stream: TextIO | None = None, enabled: bool | None = None) -> None:
        # Looked up at call time, not import time: click's CliRunner and
        # contextlib.redirect_stderr swap sys.stderr after this module loads.
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.label = ""
        self._start = time.monotonic()
        self._width = 0

    def begin(self, label: str) -> None:
        self.label = label
        self._start = time.monotonic()

    def __call__(self, sample: Progress) -> None:
        if not self.enabled:
            return
        elapsed = max(time.monotonic() - self._start, 1e-6)
        rate = sample.bytes_done / elapsed
        line = (f"{self.label} {sample.percent:5.1f}%  {human_bytes(sample.bytes_done)}"
                f"  {human_bytes(rate)}/s  files {sample.files_transferred}")
        if sample.current:
            line += f"  {sample.current}"
        self._width = max(self._width, len(line))
        self.stream.write("\r" + line.ljust(self._width))
        self.stream.flush()

    def end(self) -> None:
        if self.enabled and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
            self._width = 0


def summary_line(verb: str, results: list[SyncResult], duration: float) -> str:
    files = sum(r.files_transferred for r in results)
    size = sum(r.bytes_transferred for r in results)
    engines = ", ".join(sorted({r.engine for r in results})) or "none"
    return (f"{verb}: {len(results)} sync(s), {files} file(s) transferred, "
            f"{human_bytes(size)} in {duration:.2f} s (engine: {engines})")


def emit_json(obj: dict[str, Any], stream: TextIO | None = None) -> None:
    stream = stream if stream is not None else sys.stdout  # at call time (see ProgressDisplay)
    stream.write(json.dumps(obj, ensure_ascii=False, default=str) + "\n")
    stream.flush()
