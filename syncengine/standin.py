"""``syncengine rsync ARGV...``: the native engine behind rsync's command
line, for the argv the seed emits, plus ``-n/--dry-run``,
``-i/--itemize-changes`` and ``-v/--verbose``.  Anything else is refused the
way rsync refuses an unknown option (exit 1)."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TextIO

from .engines.base import Progress
from .messages import SENDER_LINES, exit_line, rsync_escape
from .treesync.linkdest import MAX_BASIS_DIRS

__all__ = ["StandinArgs", "UsageError", "Progress2Writer", "cancel_on_signals", "parse_argv",
           "run_standin"]

# The letters the seed passes as -rlptgocAXH, and what each one means here.
REQUIRED_LETTERS = "rlptgocAXH"
# -n (dry run), -i (itemize changes), -v (verbose)
OPTIONAL_LETTERS = "niv"
_LONG_FLAGS = {"--dry-run": "n", "--itemize-changes": "i", "--verbose": "v"}


class UsageError(Exception):
    """A command line rsync would refuse: exit code 1."""


@dataclass
class StandinArgs:
    sources: list[str] = field(default_factory=list)
    dest: str = ""
    delete: bool = False
    excludes: list[str] = field(default_factory=list)
    link_dest: list[str] = field(default_factory=list)   # --link-dest=DIR...
    progress2: bool = False
    letters: set[str] = field(default_factory=set)
    dry_run: bool = False
    itemize: bool = False
    verbose: bool = False
    whole_list: bool = False     # --no-inc-recursive (what -v's first line says)


def parse_argv(argv: Sequence[str]) -> StandinArgs:
    """Parse the seed's rsync argv; raise UsageError with rsync's wording."""
    args = StandinArgs()
    paths: list[str] = []
    items = list(argv)
    i = 0
    only_paths = False
    counts = {ch: 0 for ch in OPTIONAL_LETTERS}
    while i < len(items):
        arg = items[i]
        i += 1
        if only_paths or arg == "-" or not arg.startswith("-"):
            paths.append(arg)
        elif arg == "--":
            only_paths = True
        elif arg == "--delete":
            args.delete = True
        elif arg.partition("=")[0] in ("--exclude", "--link-dest"):
            # --opt=VALUE, or --opt VALUE
            name, eq, value = arg.partition("=")
            if not eq:
                if i >= len(items):
                    raise UsageError(f"rsync: {name}: missing argument")
                value = items[i]
                i += 1
            (args.excludes if name == "--exclude" else args.link_dest).append(value)
        elif arg == "--info=progress2":
            args.progress2 = True
        elif arg in ("--no-inc-recursive", "--no-i-r"):
            args.whole_list = True  # the native engine always builds the whole list first
        elif arg in _LONG_FLAGS:
            counts[_LONG_FLAGS[arg]] += 1
        elif arg.startswith("--"):
            raise UsageError(f"rsync: {arg.split('=', 1)[0]}: unknown option")
        else:
            letters = arg[1:]
            if any(ch not in REQUIRED_LETTERS + OPTIONAL_LETTERS for ch in letters):
                raise UsageError(f"rsync: {arg}: unknown option")
            for ch in letters:
                if ch in counts:
                    counts[ch] += 1
                else:
                    args.letters.add(ch)
    if len(args.link_dest) > MAX_BASIS_DIRS:
        raise UsageError(f"rsync: ERROR: at most {MAX_BASIS_DIRS} --link-dest args may be specified")
    for ch, what in (("i", "-ii (itemize unchanged entries)"), ("v", "-vv")):
        if counts[ch] > 1:
            raise UsageError(f"syncengine rsync: {what} is not supported")
    args.dry_run, args.itemize, args.verbose = (counts[ch] > 0 for ch in OPTIONAL_LETTERS)
    missing = [ch for ch in REQUIRED_LETTERS if ch not in args.letters]
    if args.delete and "r" not in args.letters:
        raise UsageError("rsync: --delete does not work without --recursive (-r) or --dirs (-d).")
    if missing:
        raise UsageError("syncengine rsync: only -rlptgocAXH is supported; missing "
                         + " ".join(f"-{ch}" for ch in missing))
    if len(paths) < 2:
        raise UsageError("syncengine rsync: need SRC [SRC]... DEST (listing mode is not supported)")
    if any(":" in p.split("/", 1)[0] for p in paths if not p.startswith(("/", "."))):
        raise UsageError("syncengine rsync: remote (HOST:PATH) transfers are not supported")
    args.sources, args.dest = paths[:-1], paths[-1]
    if not args.dest:
        raise UsageError('Empty destination arg specified (use "." or see --old-args).')
    if not all(args.sources):
        raise UsageError("Empty source arg specified.")
    return args


def _rate(bytes_per_sec: float) -> str:
    rate, unit = bytes_per_sec / 1024, "kB/s"
    for bigger in ("MB/s", "GB/s"):
        if rate < 1024:
            break
        rate, unit = rate / 1024, bigger
    return f"{rate:7.2f}{unit}"


class Progress2Writer:
    """Writes rsync's ``--info=progress2`` records: ``\\r``-terminated-free
    lines ``"\\r%15s %3d%% %7.2f%s %s%s"``, a record per transferred file and
    one at the end, then a newline.  A line rsync's sender prints while a
    record is on the screen starts on a line of its own: its rwrite() first
    writes a newline to the line's own stream (``output_needs_newline``;
    an error line's goes to stderr, and the record stays open on stdout).
    ``per_file``: a record per file sent (a dry run sends none: only the
    last record then)."""

    def __init__(self, stream: TextIO, per_file: bool = True) -> None:
        self.stream = stream
        self.per_file = per_file
        self.started = time.monotonic()
        self.suffix_width = 0
        self.last: Progress | None = None
        self.last_xfr = 0
        self.open = False  # a record is the last thing written: no newline yet

    def record(self, sample: Progress) -> str:
        total = sample.bytes_total or 0
        pct = int(sample.bytes_done * 100 / total) if total else 0
        elapsed = max(time.monotonic() - self.started, 1e-9)
        secs = int(elapsed)
        suffix = (f" (xfr#{sample.files_transferred}, "
                  f"to-chk={sample.to_check or 0}/{sample.total_entries or 0})")
        self.suffix_width = max(self.suffix_width, len(suffix))
        return (f"\r{sample.bytes_done:15,} {pct:3d}% {_rate(sample.bytes_done / elapsed)} "
                f"{secs // 3600:4d}:{secs // 60 % 60:02d}:{secs % 60:02d}"
                f"{suffix.ljust(self.suffix_width)}")

    def __call__(self, sample: Progress) -> None:
        self.last = sample
        if self.per_file and sample.files_transferred != self.last_xfr:
            self.last_xfr = sample.files_transferred
            write_out(self.stream, self.record(sample))
            self.open = True

    def end_record(self, stream: TextIO | None = None) -> None:
        """Before a line of the sender on ``stream`` (by default the
        records' own): the newline rsync writes there if a record is open."""
        if self.open:
            write_out(stream or self.stream, "\n")
            self.open = False

    def finish(self) -> None:
        if self.last is not None:
            write_out(self.stream, self.record(self.last) + "\n")
            self.open = False


def write_out(stream: TextIO, text: str) -> bool:
    """Write and flush; False if nobody reads the stream any more (a closed
    pipe, as in ``| head``).  Its output then goes nowhere: rsync goes on
    with its work when its stdout is gone."""
    try:
        stream.write(text)
        stream.flush()
        return True
    except BrokenPipeError:
        try:
            null = os.open(os.devnull, os.O_WRONLY)
            try:
                os.dup2(null, stream.fileno())
            finally:
                os.close(null)
        except (OSError, ValueError):
            pass
        return False



# rsync's "received SIGINT, SIGTERM, or SIGHUP" (exit 20).
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@contextlib.contextmanager
def cancel_on_signals(cancel: Callable[[], None]) -> Iterator[None]:
    """While the body runs, SIGINT, SIGTERM and SIGHUP call ``cancel()``
    instead of killing the process, as rsync handles them: the engine stops
    at its next check (between entries and between chunks of a copy),
    removes its temp file and ends with exit 20 and rsync's line.  Only the
    main thread can install handlers; elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {}
    try:
        for signum in _STOP_SIGNALS:
            previous[signum] = signal.signal(signum, lambda _signum, _frame: cancel())
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def run_standin(argv: Sequence[str], stdout: TextIO = sys.stdout, stderr: TextIO = sys.stderr) -> int:
    """Run the native engine on an rsync argv; returns rsync's exit code."""
    try:
        args = parse_argv(argv)
    except UsageError as exc:
        write_out(stderr, f"{exc}\n{exit_line(1)}\n")
        return 1
    from .engines.native import NativeEngine
    from .options import SyncOptions

    diagnostics_lost = threading.Event()
    writer = Progress2Writer(stdout, per_file=not args.dry_run) if args.progress2 else None

    def out(line: str) -> None:
        if writer is not None:
            writer.end_record()
        write_out(stdout, line + "\n")

    def err(line: str) -> None:
        if writer is not None and line.startswith(SENDER_LINES):
            writer.end_record(stderr)
        # rsync ends with code 13 when it cannot write a message (a closed
        # stderr), at once: so the run stops here.
        if not write_out(stderr, line + "\n") and not diagnostics_lost.is_set():
            diagnostics_lost.set()
            stop()

    def item(change) -> None:
        line = change.line() if args.itemize else change.verbose_line()
        if line is not None:
            out(rsync_escape(line))

    if args.verbose:
        out("building file list ... done" if args.whole_list else "sending incremental file list")
    job = None
    stop_requested = threading.Event()

    def stop() -> None:
        stop_requested.set()
        if job is not None:
            job.cancel()

    with cancel_on_signals(stop):
        job = NativeEngine().start(args.sources, args.dest,
                                   SyncOptions(delete=args.delete, exclude=tuple(args.excludes)),
                                   on_progress=writer, out=out, err=err,
                                   on_item=item if args.itemize or args.verbose else None,
                                   dry_run=args.dry_run, link_dest=tuple(args.link_dest))
        if stop_requested.is_set():
            job.cancel()
        result = job.result()
    if diagnostics_lost.is_set():
        return 13  # (rsync's "errors with program diagnostics")
    if writer is not None and result.exit_code in (0, 23, 24):
        writer.finish()
    if args.verbose and result.exit_code in (0, 23, 24):
        out("")
        out(_totals(result))
    return result.exit_code


def _totals(result) -> str:
    """-v's last lines.  A local native sync has no protocol, so "sent"
    counts the file data copied and "received" is 0."""
    rate = result.bytes_transferred / max(result.duration, 1e-6)
    speedup = result.bytes_total / result.bytes_transferred if result.bytes_transferred else 0.0
    return (f"sent {result.bytes_transferred:,} bytes  received 0 bytes  {rate:,.2f} bytes/sec\n"
            f"total size is {result.bytes_total:,}  speedup is {speedup:,.2f}"
            + (" (DRY RUN)" if result.dry_run else ""))
