"""New small files written by a second process (an initial copy).

An initial copy is mostly the kernel's work of making files: a temp file,
its data, owner, mode, mtime and xattrs.  The walk runs in one thread
(Python holds the GIL), so it hands the new files of the dirs it made to a
forked writer process and goes on walking.  The writer is a fork of the
run, so it opens each file, reads its attributes and writes it with the
run's own code (TreeSync._write_quick, _write_new): same temp name, same
checks, same attributes, same messages.  It only leaves the temp file
where it is: the walk renames it into place when the file's turn comes,
so names appear in rsync's order, its messages are printed in that order,
and an abort removes every temp file still waiting.  (In a new dir still
under its temp name, a shelter -- see TreeSync._dir -- a file is written
under its own name: no one sees it until the dir is complete and named.)
A file the writer cannot open, or whose attributes it cannot read, it
leaves to the walk, which tries again in its turn and reports the failure
where rsync would.

Jobs go in batches of up to BATCH files of one source dir (for one
destination dir) over a SOCK_SEQPACKET socket, with the fds of both dirs
(SCM_RIGHTS), and come back as one answer per batch.  The writer notes
in shared memory the temp file it is working on, so that if it dies the
run removes it and writes the files itself.  It ignores SIGINT, SIGTERM
and SIGHUP: the run tells it to stop (a flag in shared memory, then the
end of its socket), and it dies with the run if the run is killed --
then, as with rsync, the temp files under way stay (up to a few dozen,
where rsync leaves one; the next run deletes them).

One difference from rsync remains: a fatal write error in the writer (no
space left -- the free space is checked, so in practice an I/O error)
ends the run with rsync's lines and exit code, but entries the walk made
meanwhile after that file (new dirs, symlinks, files it wrote itself)
stay, where rsync would have stopped before them.  A re-run sets them
right.
"""

from __future__ import annotations

import marshal
import mmap
import os
import signal
import struct
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from .procs import fork_helper, kill_and_reap

if TYPE_CHECKING:
    import socket

# The socket module's C core: the module itself takes 4 ms to import (enums,
# selectors), a tenth of the start of a small run, for four calls.
_socket: Any = None


def _sockets():
    global _socket
    if _socket is None:
        import _socket as core
        _socket = core
    return _socket

__all__ = ["BATCH", "BATCH_BYTES", "Batch", "QueuedWrite", "WriteAnswer", "WriteJob", "Writer",
           "OK", "FAILED", "FATAL", "SKIPPED", "note_temp", "serve"]

BATCH = 16        # files per batch
BATCH_BYTES = 64 << 10  # and at most about this much message (names and paths)
IN_FLIGHT = 4     # batches sent and not yet answered, at most
# What became of a job (the first item of its answer).
OK, FAILED, FATAL, SKIPPED = 0, 1, 2, 3
_ANSWER_SIZE = 1 << 20
# The temp file each job has now, in shared memory, so that the run can
# remove it if the writer dies before it answers: (job number, name).
_TEMP = struct.Struct("<qH255s")
_FDS = struct.Struct("2i")  # a batch's dir fds, as SCM_RIGHTS carries them
_TEMPS = 256      # jobs under way at most: (IN_FLIGHT + 1) * BATCH, with room


class WriteJob(NamedTuple):
    """A file as the writer gets it (a plain tuple on the socket)."""

    number: int        # the job's number (its temp file's record: note_temp)
    name: bytes        # in the source dir
    dst_name: bytes    # in the destination dir
    rel: bytes
    src_path: bytes    # as rsync's sender names it (messages)
    size: int
    # the walk's lstat, as far as read_src_meta looks at it
    mode: int
    uid: int
    gid: int
    mtime_ns: int
    dev: int
    direct: bool       # the dir is a shelter: written under its own name (TreeSync._dir)


class WriteAnswer(NamedTuple):
    """What became of a job (a plain tuple on the socket)."""

    outcome: int                    # OK, FAILED, FATAL or SKIPPED
    temp: bytes = b""               # OK: the temp file, for the run to rename
    lines: tuple | list = ()        # (1 stdout | 2 stderr, line) printed meanwhile
    partial: bool = False           # rsync's io_error was set (exit 23)
    meta_error: bool = False        # an attribute could not be set (exit 23)
    copied: int = 0                 # bytes
    fatal: tuple | list | None = None  # FATAL: (exit code, its lines)


_SKIPPED = tuple(WriteAnswer(SKIPPED))


class QueuedWrite(NamedTuple):
    """A job in a batch, and what the run keeps to finish the file."""

    st: os.stat_result
    dst_path: tuple[bytes, ...]
    job: WriteJob


class Batch:
    """Files of one source dir for one destination dir, in the walk's
    order.  ``src_dir`` and ``dir_fd`` are the run's own dups of the dirs
    (the writer opens the files in the one and writes them in the other;
    the run renames them there, and transfers a file the writer left to
    it, after the walk has closed both); ``answers`` arrive as one list
    when the writer is done.  As an item of the run's pending queue it
    completes and aborts through the run (TreeSync._complete_batch,
    _drop_batch)."""

    __slots__ = ("src_dir", "dir_fd", "key", "source", "jobs", "size", "sent", "answers",
                 "done")
    dst_parent = -1  # (tied to no fd of the walk: it has its own)

    def __init__(self, src_dir: int, dir_fd: int, key: tuple[bytes, ...], source: object) -> None:
        self.src_dir = src_dir
        self.dir_fd = dir_fd
        self.key = key  # the dir's path: which batch a file may join
        self.source = source  # (and of which source)
        self.jobs: list[QueuedWrite] = []
        self.size = 0  # (the message's, roughly)
        self.sent = False
        self.answers: list[WriteAnswer] | None = None
        self.done = threading.Event()

    pending_size = 0  # (its bytes are counted by the Writer: pending_bytes)

    def complete(self, run: Any) -> None:
        run._complete_batch(self)

    def abort(self, run: Any) -> None:
        run._drop_batch(self)


class Writer:
    """The run's side of the writer process."""

    def __init__(self, serve: Callable[[socket.socket, Writer], None]) -> None:
        core = _sockets()  # (here: a re-run has no use for it)
        ours, theirs = core.socketpair(core.AF_UNIX, core.SOCK_SEQPACKET)
        self.stop = mmap.mmap(-1, 1)  # shared: b"\1" asks the writer to skip what is left
        self.temps = mmap.mmap(-1, _TEMPS * _TEMP.size)  # shared: see _TEMP
        self.jobs = 0  # jobs numbered so far

        def body() -> None:  # (the writer's copy of this object shares stop and temps)
            ours.close()
            serve(theirs, self)
        try:
            self.pid = fork_helper(body, on_signal=signal.SIG_IGN)
        except OSError:
            ours.close()
            theirs.close()
            raise
        theirs.close()
        self.sock: socket.socket | None = ours
        self.inbox = _inbox()
        self.unanswered: list[Batch] = []  # sent, in order
        self.budget = -1      # bytes the next jobs may take before free space is checked again
        self.checked = 0      # jobs since free space was checked
        self.pending_bytes = 0

    def send(self, batch: Batch) -> bool:
        """Hand a batch over; False if the writer is gone."""
        batch.sent = True
        if self.sock is not None:
            message = marshal.dumps([tuple(queued.job) for queued in batch.jobs])
            try:
                self.sock.sendmsg([message], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS,
                                               _FDS.pack(batch.dir_fd, batch.src_dir))])
                self.unanswered.append(batch)
                return True
            except OSError:
                self._gone()
        batch.done.set()  # (no answers: the run writes them itself)
        return False

    def receive(self, block: bool) -> bool:
        """Take one answer if there is one (waiting for it with ``block``);
        False if there was none to take."""
        if self.sock is None or not self.unanswered:
            return False
        try:
            size = self.sock.recv_into(self.inbox, _ANSWER_SIZE,
                                       0 if block else _socket.MSG_DONTWAIT)
        except BlockingIOError:
            return False
        except InterruptedError:
            return True
        except OSError:
            size = 0
        if not size:
            self._gone()
            return True
        batch = self.unanswered.pop(0)
        with memoryview(self.inbox) as inbox:
            answers = marshal.loads(inbox[:size])
        batch.answers = [WriteAnswer._make(answer) for answer in answers]
        batch.done.set()
        return True

    def wait(self, batch: Batch) -> None:
        """Until the batch is answered (or the writer is gone: then its
        answers stay None)."""
        while not batch.done.is_set():
            if not self.receive(block=True) and batch not in self.unanswered:
                batch.done.set()  # (never sent: nothing will come)

    def _gone(self) -> None:
        """The writer died (or cannot be reached: then it is made to): no
        answer will come, and nothing more is written by it."""
        if self.sock is not None:
            self.sock.close()
            self.sock = None
            kill_and_reap(self.pid)
        for batch in self.unanswered:
            batch.done.set()
        self.unanswered = []

    def number(self) -> int:
        """A new job's number."""
        self.jobs += 1
        return self.jobs

    def temp_of(self, job: int) -> bytes | None:
        """The temp file the writer made for a job it did not answer for
        (None: it made none, or the record is another job's)."""
        number, length, name = _TEMP.unpack_from(self.temps, (job % _TEMPS) * _TEMP.size)
        return name[:length] if number == job and length else None

    def abort(self) -> None:
        self.stop[0] = 1

    def close(self) -> None:
        """The end of its socket ends the writer; then it is reaped."""
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        kill_and_reap(self.pid, grace=5.0)
        self.stop.close()
        self.temps.close()


def note_temp(temps: mmap.mmap, job: int, name: bytes) -> None:
    """In the writer: the temp file a job has now (see Writer.temp_of)."""
    _TEMP.pack_into(temps, (job % _TEMPS) * _TEMP.size, job, len(name), name)


def _inbox() -> mmap.mmap:
    """A buffer to receive messages into: a recv of its own allocates a new
    _ANSWER_SIZE bytes each time, which malloc maps and unmaps (three
    system calls and fresh pages a message); a private anonymous map
    takes memory only for the pages a message touched."""
    return mmap.mmap(-1, _ANSWER_SIZE, flags=mmap.MAP_PRIVATE)


def serve(sock: socket.socket, stop: mmap.mmap,
          write: Callable[[int, int, WriteJob], WriteAnswer]) -> None:
    """The writer's loop: each batch's jobs through ``write(src_dir,
    dir_fd, job)``, an answer per batch; skipped once ``stop`` is set
    (SKIPPED: the run writes it itself, or not at all)."""
    core = _sockets()
    inbox = _inbox()
    while True:
        size, ancillary, _, _ = sock.recvmsg_into([inbox], core.CMSG_SPACE(_FDS.size))
        if not size:
            return
        dir_fd, src_dir = _FDS.unpack(ancillary[0][2])
        try:
            with memoryview(inbox) as message:
                jobs = marshal.loads(message[:size])
            answers = [_SKIPPED if stop[0] else tuple(write(src_dir, dir_fd, WriteJob._make(job)))
                       for job in jobs]
        finally:
            os.close(src_dir)
            os.close(dir_fd)
        sock.send(marshal.dumps(answers))
