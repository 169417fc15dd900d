"""The rsync engine: runs the system rsync with exactly the seed's flags."""

from __future__ import annotations

import io
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import cast

from ..itemize import parse_line
from ..messages import unescape
from ..options import SyncOptions
from ..treesync.procs import dies_with_this_thread
from .base import ItemCallback, Progress, ProgressCallback, SyncError, SyncJob, SyncResult

__all__ = ["RsyncEngine", "build_argv", "parse_progress2", "Progress2Parser", "rsync_version"]

# The seed's flags, in the seed's order.
RSYNC_FLAGS = ("-rlptgocAXH", "--info=progress2", "--no-inc-recursive")
# --info=progress2 came with rsync 3.1.0; an older rsync rejects the seed's argv.
MIN_VERSION = (3, 1, 0)

# One progress2 record: "      5,000,000  99%  592.14MB/s    0:00:00 (xfr#1, to-chk=900/932)"
# rsync picks its digit-group separator from the locale's decimal point
# ("5.000.000" and "592,14MB/s" where the decimal point is a comma), so both
# separators are accepted.
_PROGRESS2 = re.compile(
    rb"^\s*(?P<bytes>\d[\d,.]*)\s+(?P<pct>\d+)%\s+(?P<rate>[\d.,]+[kMGT]?B/s|\?+)\s+"
    rb"(?P<eta>\d+:\d\d:\d\d|\?\?:\?\?:\?\?)"
    rb"(?:\s+\((?:xfr#(?P<xfr>\d+), )?(?:to-chk|ir-chk)=(?P<left>\d+)/(?P<total>\d+)\))?\s*$"
)


def build_argv(src: str, dst: str, options: SyncOptions, rsync: str = "rsync", *,
               itemize: bool = False, dry_run: bool = False,
               link_dest: tuple[str, ...] = ()) -> list[str]:
    """The seed's command line: ``[--delete] [--exclude=P]... [--link-dest=DIR]...
    -rlptgocAXH --info=progress2 --no-inc-recursive [-i] [-n] SRC DST`` (list
    form, no shell; never ``--inplace``: a file linked from DIR must not be
    written into)."""
    argv = [rsync]
    if options.delete:
        argv.append("--delete")
    argv.extend(f"--exclude={pattern}" for pattern in options.exclude)
    argv.extend(f"--link-dest={os.fsdecode(path)}" for path in link_dest)
    argv.extend(RSYNC_FLAGS)
    if itemize:
        argv.append("--itemize-changes")
    if dry_run:
        argv.append("--dry-run")
    argv.extend([src, dst])
    return argv


def parse_progress2(record: bytes) -> Progress | None:
    """One ``\\r``/``\\n``-delimited record of ``--info=progress2`` output, or
    None when the record is not a progress line."""
    match = _PROGRESS2.match(record)
    if match is None:
        return None
    left, total = match["left"], match["total"]
    return Progress(
        bytes_done=int(re.sub(rb"\D", b"", match["bytes"])),
        bytes_total=None,
        percent=float(match["pct"]),
        files_transferred=int(match["xfr"] or 0),
        to_check=int(left) if left is not None else None,
        total_entries=int(total) if total is not None else None,
    )


class Progress2Parser:
    """Splits rsync's stdout into records.  Progress records end in ``\\r``
    and may be cut anywhere by a read; other lines end in ``\\n``."""

    def __init__(self) -> None:
        self._pending = b""

    def feed(self, chunk: bytes) -> Iterator[tuple[Progress | None, bytes]]:
        """Yield (progress or None, record) for each complete record."""
        data = self._pending + chunk
        records = re.split(rb"[\r\n]", data)
        self._pending = records.pop()
        for record in records:
            if record.strip():
                yield parse_progress2(record), record

    def flush(self) -> Iterator[tuple[Progress | None, bytes]]:
        rest, self._pending = self._pending, b""
        if rest.strip():
            yield parse_progress2(rest), rest


def rsync_version(rsync: str | None = None) -> str | None:
    """rsync's version string (e.g. "3.5.0") when it runs, else None."""
    rsync = rsync or shutil.which("rsync")
    if not rsync:
        return None
    try:
        out = subprocess.run([rsync, "--version"], capture_output=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(rb"rsync\s+version\s+v?(\S+)", out)
    return match[1].decode("ascii", "replace") if match else None


def version_tuple(version: str) -> tuple[int, ...]:
    """(3, 5, 0) for "3.5.0" (and for "3.5.0pre1"): the leading numbers."""
    return tuple(int(part) for part in re.findall(r"\d+", version.split("pre")[0])[:3])


def too_old(rsync: str, version: str) -> str | None:
    """Why this rsync cannot run the seed's flags, or None when it can."""
    if version_tuple(version) >= MIN_VERSION:
        return None
    wanted = ".".join(map(str, MIN_VERSION))
    return f"{rsync} is rsync {version}; the seed's flags need rsync {wanted} or newer (--info=progress2)"


class RsyncEngine:
    name = "rsync"

    def __init__(self, rsync: str | None = None) -> None:
        self._rsync = rsync

    def executable(self) -> str | None:
        return self._rsync or shutil.which("rsync")

    def available(self) -> bool:
        return self.unusable_reason() is None

    def version(self) -> str | None:
        """rsync's version, asked once per engine object (``rsync --version``)."""
        if not hasattr(self, "_version"):
            rsync = self.executable()
            self._version = rsync_version(rsync) if rsync else None
        return self._version

    def unusable_reason(self) -> str | None:
        """None when this rsync can run the seed's command line, else why not
        (one line)."""
        rsync, version = self.executable(), self.version()
        if rsync is None:
            return "rsync is not installed (not found on PATH)"
        if version is None:
            return f"{rsync} does not answer --version"
        return too_old(rsync, version)

    def start(self, src: str, dst: str, options: SyncOptions = SyncOptions(), *,
              on_progress: ProgressCallback | None = None, on_item: ItemCallback | None = None,
              dry_run: bool = False, link_dest: tuple[str, ...] = ()) -> SyncJob:
        rsync = self.executable()
        if rsync is None:
            raise SyncError("rsync engine: rsync is not installed (not found on PATH)", exit_code=127)
        # Only a version that answers can be too old: an rsync that does not
        # answer is run all the same, and its own failure reported.
        version = self.version()
        if version is not None and too_old(rsync, version):
            raise SyncError(f"rsync engine: {too_old(rsync, version)}", exit_code=127)
        argv = build_argv(os.fspath(src), os.fspath(dst), options, rsync,
                          itemize=on_item is not None, dry_run=dry_run, link_dest=link_dest)
        return RsyncJob(argv, os.fspath(src), os.fspath(dst), on_progress, on_item=on_item,
                        dry_run=dry_run)._launch()


class RsyncJob(SyncJob):
    """rsync in a process of its own.  The job's thread starts it and lives
    as long as it runs: rsync gets SIGTERM (PR_SET_PDEATHSIG) when that
    thread ends, so it never outlives us, even SIGKILLed (its helper
    processes end with it).  A cancel that comes while it starts is passed
    on as soon as it exists."""

    def __init__(self, argv: list[str], src: str, dst: str,
                 on_progress: ProgressCallback | None, *, on_item: ItemCallback | None = None,
                 dry_run: bool = False) -> None:
        super().__init__(on_progress)
        self.argv = argv
        self._on_item, self._dry_run = on_item, dry_run
        self._deleted = 0
        self._src, self._dst = src, dst
        self._proc: subprocess.Popen | None = None
        self._spawned = threading.Event()
        self.pid = 0

    def _launch(self) -> RsyncJob:
        super()._launch()
        try:
            self._spawned.wait()
        except BaseException:  # Ctrl-C while rsync starts: it must not run on
            self.cancel()
            raise
        if self._proc is None:
            self.wait()  # raises the SyncError of a failed start
        return self

    def _spawn(self) -> subprocess.Popen:
        try:
            # A process group of its own, so cancel() reaches rsync's children.
            proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, start_new_session=True,
                                    preexec_fn=dies_with_this_thread(signal.SIGTERM))
            self.pid, self._proc = proc.pid, proc
        except OSError as exc:
            raise SyncError(f"rsync engine: cannot run {self.argv[0]}: {exc.strerror}",
                            exit_code=127) from exc
        finally:
            self._spawned.set()  # (after _proc is set: _launch looks at it)
        if self.cancelled:  # cancel() came before there was a process to signal
            self._signal_group(signal.SIGTERM)
        return proc

    def cancel(self) -> None:
        super().cancel()
        self._signal_group(signal.SIGTERM)

    def _signal_group(self, sig: int) -> None:
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return  # not started, or reaped: its group id may belong to someone else by now
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass

    def _run(self) -> SyncResult:
        self._spawn()
        assert self._proc is not None
        stderr_chunks: list[bytes] = []
        # Popen(..., stdout=PIPE, stderr=PIPE) without text: buffered readers.
        stdout = cast(io.BufferedReader, self._proc.stdout)
        stderr = cast(io.BufferedReader, self._proc.stderr)
        reader = threading.Thread(target=lambda: stderr_chunks.append(stderr.read()), daemon=True)
        reader.start()
        messages: list[str] = []
        last: Progress | None = None
        parser = Progress2Parser()
        try:
            for chunk in iter(lambda: stdout.read1(65536), b""):
                for sample, record in parser.feed(chunk):
                    last = self._note(sample, record, messages) or last
            for sample, record in parser.flush():
                last = self._note(sample, record, messages) or last
        except BaseException:
            # E.g. an on_progress callback raised: nobody drains rsync's
            # stdout any more, so it would block forever. Stop it first.
            self._signal_group(signal.SIGKILL)
            self._proc.wait()
            raise
        finally:
            stdout.close()
        exit_code = self._proc.wait()
        reader.join()
        stderr.close()
        if exit_code < 0:  # killed by a signal rsync did not handle
            exit_code = 20 if self.cancelled else 128 - exit_code
        errors = tuple(os.fsdecode(line) for line in b"".join(stderr_chunks).splitlines() if line)
        return SyncResult(
            engine="rsync", src=self._src, dst=self._dst, exit_code=exit_code,
            files_transferred=last.files_transferred if last else 0,
            files_deleted=self._deleted,
            files_skipped=sum(1 for m in messages if m.startswith("skipping non-regular file")),
            bytes_transferred=last.bytes_done if last else 0,
            errors=errors, messages=tuple(messages),
            duration=time.monotonic() - self._started, dry_run=self._dry_run,
        )

    def _note(self, sample: Progress | None, record: bytes, messages: list[str]) -> Progress | None:
        if sample is None:
            # With -i, rsync's itemized lines (names \#ooo-escaped) go to
            # on_item; everything else on stdout is a message.
            on_item = self._on_item
            item = parse_line(os.fsencode(unescape(os.fsdecode(record)))) \
                if on_item is not None else None
            if item is None or on_item is None:
                messages.append(os.fsdecode(record))
            else:
                self._deleted += item.deleted
                on_item(item)
            return None
        self._report(sample)
        return sample
