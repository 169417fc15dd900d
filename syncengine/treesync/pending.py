"""Work that completes behind the walk, in the walk's order.

- The writer process (writer.py): on an initial copy as root, new small
  files go to a forked process in batches; it writes them to temp files
  and answers with what happened and the lines it printed.
- Copies behind the walk: a big file's data is copied by a thread
  (copy_file_range releases the GIL) while the walk goes on.
- A dir's touch-up, or its delete-pass warning, waiting for those.

Each is a pending item; items complete in order -- their lines printed,
their temp files renamed, their attributes checked -- before any later
line is printed, before their dir's fd closes and its mtime is set, and on
an abort their temp files are removed.  Free space for twice what is under
way is checked every so often: near a full disk the walk writes itself, in
order, as rsync would.
"""

from __future__ import annotations

import os
import threading

# (queue.SimpleQueue is this C type; the queue module costs a ms to import)
from _queue import SimpleQueue
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from . import faults
from .fs import is_append_only, open_file, usable_cpus
from .meta import (
    SrcMeta,
    bare_transfer,
    read_src_meta,
)
from .model import MAX_PENDING, ROOM, WRITER_BUSY, Cancelled, DirFrame, Fatal, Source, copied_intact
from .transfer import (
    ReadError,
    WriteError,
    copy_data,
    open_temp,
    unlink_quietly,
)
from .writer import (
    BATCH,
    BATCH_BYTES,
    FAILED,
    FATAL,
    IN_FLIGHT,
    OK,
    SKIPPED,
    Batch,
    QueuedWrite,
    WriteAnswer,
    WriteJob,
    Writer,
    note_temp,
    serve,
)

if TYPE_CHECKING:
    from .sync import TreeSync
    pass



class PendingWork:
    """The writer process, copies behind the walk, and the queue that orders them."""

    def _start_writer(self: TreeSync) -> None:
        """An initial copy (DST new or empty, not append-only) as root: a
        second process writes the new small files (writer.py).  Not for a
        non-root user, whom quotas may stop where the free space says
        nothing (a full disk must stop the run at the file where rsync
        stops), nor while a test counts the mutations of this process
        (faults.py)."""
        if self.dry_run or self.on_item is not None or self._made is not None or \
                not self.am_root or self._precheck is not None or \
                self.stats.entries_total < 2 or faults.armed() or usable_cpus() < 2 or \
                not self.tuning.writer:
            return
        if self._basis is not None:
            return  # (each new file is first looked up in DIR)
        if not self._root_new:
            try:
                with os.scandir(self.dest) as it:
                    if next(it, None) is not None:
                        return
            except OSError:
                return
            if is_append_only(self.dest):
                return  # (a shelter could not take its name there: see _dir)
        try:
            self._writer = Writer(self._serve_writes)
        except OSError:
            pass  # (no process to spare: the walk writes everything)

    def _serve_writes(self: TreeSync, sock, writer: Writer) -> None:
        """The writer process, a fork of this run: open each file it is
        handed, read its attributes and write it with _write_new, keep the
        temp file (noted in shared memory until it is answered for), and
        answer with what happened and the lines it printed (see
        _complete_write).  A file it cannot open or whose attributes it
        cannot read is left to the walk (SKIPPED), which tries again in
        its turn and reports what fails."""
        lines: list[tuple[int, str]] = []
        held: list[bytes] = []
        job_no = [0]
        self.out = lambda line: lines.append((1, line))
        self.err = lambda line: lines.append((2, line))
        # (the walk renames it in its turn: _complete_write; same signature as
        # FileTransfer._put_in_place)
        self._put_in_place = lambda tmp, dst_parent, dst_name, rel, role="receiver": \
            not held.append(tmp)
        self._note_temp = lambda tmp: note_temp(writer.temps, job_no[0], tmp)

        def write(src_dir: int, dir_fd: int, job: WriteJob) -> WriteAnswer:
            job_no[0] = job.number
            lines.clear()
            held.clear()
            self.partial = self.meta.had_error = False
            copied = self.stats.bytes_done
            try:
                src_fd = open_file(job.name, src_dir)
            except OSError:
                return WriteAnswer(SKIPPED)
            try:
                if self.meta.bare(src_fd, job.dev):  # (read_src_meta's fast path, sooner)
                    src_meta = SrcMeta(job.mode, job.uid, job.gid, job.mtime_ns, {})
                    done = self._write_quick(src_fd, src_meta, dir_fd, job.dst_name, job.direct)
                    if done is not None:
                        return self._named(dir_fd, job, WriteAnswer(OK, temp=done[0],
                                                                    copied=done[1]))
                else:  # (the walk's lstat, as far as read_src_meta looks at it)
                    st = os.stat_result((job.mode, 0, job.dev, 1, job.uid, job.gid, job.size,
                                         0, 0, 0), {"st_mtime_ns": job.mtime_ns})
                    src_meta = read_src_meta(st, fd=src_fd, dirfd=src_dir, name=job.name,
                                             ctx=self.meta)
                    if src_meta is None:
                        return WriteAnswer(SKIPPED)
                done = self._write_new(src_fd, src_meta, dir_fd, job.dst_name, job.rel,
                                       job.src_path, size=job.size, direct=job.direct)
            except Fatal as fatal:
                return WriteAnswer(FATAL, lines=list(lines),
                                   fatal=(fatal.exit_code, list(fatal.lines)))
            finally:
                os.close(src_fd)
            if not done:
                return WriteAnswer(FAILED, lines=list(lines), partial=self.partial,
                                   meta_error=self.meta.had_error)
            return self._named(dir_fd, job, WriteAnswer(OK, held[0], list(lines), self.partial,
                                                        self.meta.had_error,
                                                        self.stats.bytes_done - copied))
        serve(sock, writer.stop, write)

    @staticmethod
    def _named(dir_fd: int, job: WriteJob, answer: WriteAnswer) -> WriteAnswer:
        """In the writer: a temp file outside a shelter (the files of DST
        itself) takes its real name here, where the walk would take a
        rename a file, the bulk of its share in a wide dir.  The dir is
        new, so the name is free; should the rename fail, the walk tries
        it again in its turn and reports what fails.  (An abort before the
        walk's turn removes the file as it would the temp file: _drop_batch.)"""
        if job.direct:
            return answer
        try:
            os.rename(answer.temp, job.dst_name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except OSError:
            return answer
        return answer._replace(temp=job.dst_name)

    def _write_quick(self: TreeSync, src_fd: int, src_meta: SrcMeta, dst_parent: int,
                     dst_name: bytes, direct: bool) -> tuple[bytes, int] | None:
        """_write_new's common case in fewer steps, for the writer: a source
        without xattrs copied whole and intact, the temp file's attributes
        set by the fast path of apply_meta.  Returns the temp file (left
        for the walk to rename) and the bytes copied; or None, having left
        no trace, when anything else happens: _write_new then does it all
        again, and reports what fails."""
        try:
            tmp_fd, tmp = open_temp(dst_parent, dst_name, src_meta.mode & 0o7777, direct)
        except OSError:
            return None
        self._note_temp(tmp)
        done = False
        try:
            before = os.fstat(src_fd)
            copied = copy_data(src_fd, tmp_fd, before.st_size)
            done = copied_intact(copied, before, os.fstat(src_fd)) and \
                bare_transfer(self.meta, src_meta, None, tmp_fd, True)
        except OSError:
            pass
        finally:
            os.close(tmp_fd)
            if not done:
                unlink_quietly(dst_parent, tmp)
                os.lseek(src_fd, 0, os.SEEK_SET)
        return (tmp, copied) if done else None

    def _note_temp(self: TreeSync, tmp: bytes) -> None:
        """A temp file was made (the writer process notes it: see writer.py)."""

    # New small files of the dirs this run made go to the writer in
    # batches; each batch is a pending item like a copy behind the walk,
    # completed in order: its lines printed, its temp files renamed.  A
    # dir's touch-up then waits in the same queue (a TouchUp).  Free space
    # for twice what is under way is checked every so often: near a full
    # disk the walk writes itself, in order, as rsync would.
    def _writer_busy(self: TreeSync) -> bool:
        """Whether the writer has enough to do (the walk then writes the
        file itself rather than wait: both cores stay busy), or is gone."""
        return len(self._writer.unanswered) >= WRITER_BUSY or self._writer.sock is None

    def _writer_takes(self: TreeSync, size: int, dir_fd: int) -> bool:
        """Whether the writer takes a new file of ``size`` bytes for
        ``dir_fd``: not when busy, nor near a full disk."""
        if self._writer_busy():
            return False
        writer = self._writer
        if writer.budget < size or writer.checked >= 4 * BATCH:
            try:
                fs = os.fstatvfs(dir_fd)
            except OSError:
                return False
            writer.checked = 0
            writer.budget = fs.f_bavail * fs.f_frsize - 2 * self._pending_bytes() - ROOM
            if fs.f_favail < 4 * BATCH * IN_FLIGHT + 1024:
                writer.budget = -1
            if writer.budget < size:
                self._complete_pending()  # (and so rsync's order from here on)
                return False
        writer.budget -= size
        writer.checked += 1
        return True

    def _queue_write(self: TreeSync, src_parent: int, name: bytes, st: os.stat_result, dst_parent: int,
                     dst_path: tuple[bytes, ...], rel: bytes, source: Source,
                     direct: bool) -> None:
        """The writer opens the source file and reads its attributes itself
        (the walk's share of a file is then little more than its lstat)."""
        batch, dst_name = self._batch, dst_path[-1]
        # (by path: the fd of the next dir may have the number this one had)
        if batch is None or batch.key != dst_path[:-1] or batch.source is not source or \
                self._pending[-1] is not batch:
            self._send_batch()
            self._bound_pending()
            src_dir = os.dup(src_parent)
            try:
                batch = self._batch = Batch(src_dir, os.dup(dst_parent), dst_path[:-1], source)
            except BaseException:
                os.close(src_dir)
                raise
            self._pending.append(batch)
        writer, src_path, size = self._writer, source.sender_path(rel), st.st_size
        # (_make: a new small file's cost on the walk's side is a few µs)
        batch.jobs.append(QueuedWrite._make((st, dst_path, WriteJob._make((
            writer.number(), name, dst_name, rel, src_path, size,
            st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns, st.st_dev, direct)))))
        batch.size += 64 + len(name) + len(dst_name) + len(rel) + len(src_path)
        writer.pending_bytes += size
        if len(batch.jobs) == BATCH or batch.size >= BATCH_BYTES or not writer.unanswered:
            self._send_batch()  # (full, or the writer is idle)

    def _bound_pending(self: TreeSync) -> None:
        """Each pending item holds an fd or more: past MAX_PENDING items
        (a slow writer, and many dirs with nothing for it) the oldest are
        completed."""
        if len(self._pending) > MAX_PENDING and not self._completing:
            self._complete_pending(keep=MAX_PENDING // 2)

    def _send_batch(self: TreeSync) -> None:
        """Hand the batch being filled to the writer; wait for earlier ones
        while too many are under way."""
        batch, self._batch = self._batch, None
        if batch is None or batch.sent:
            return
        self._writer.send(batch)
        while len(self._writer.unanswered) > IN_FLIGHT and not self._completing:
            self._complete_pending(until=len(self._writer.unanswered) - IN_FLIGHT)

    def _complete_batch(self: TreeSync, batch: Batch) -> None:
        if not batch.sent:
            if self._batch is batch:
                self._batch = None
            self._writer.send(batch)
        self._writer.wait(batch)
        if batch.answers is None:  # (the writer is gone: the walk writes them)
            self._remove_orphans(batch, 0)
        answers = batch.answers or [None] * len(batch.jobs)
        done = 0
        try:
            for queued, answer in zip(batch.jobs, answers, strict=True):
                done += 1
                self._complete_write(batch, queued, answer)
        finally:
            self._drop_batch(batch, done)

    def _complete_write(self: TreeSync, batch: Batch, queued: QueuedWrite,
                        answer: WriteAnswer | None) -> None:
        """One file the writer wrote: its lines and flags, then its name.
        One it did not write (it left it to the walk, or it is gone) the
        walk transfers now, in its turn."""
        job, dir_fd = queued.job, batch.dir_fd
        self._writer.pending_bytes -= job.size
        if answer is None or answer.outcome == SKIPPED:  # (or the writer is gone)
            self._transfer_file(batch.src_dir, job.name, queued.st, dir_fd, job.dst_name, job.rel,
                                queued.dst_path, batch.source, None, -1, None, deferred=True,
                                direct=job.direct)
            return
        for stream, line in answer.lines:
            (self.out if stream == 1 else self.err)(line)
        self.partial |= answer.partial
        self.meta.had_error |= answer.meta_error
        if answer.outcome == FATAL and answer.fatal is not None:
            exit_code, fatal_lines = answer.fatal
            raise Fatal(exit_code, *fatal_lines)
        if answer.outcome == OK:
            try:
                placed = self._put_in_place(answer.temp, dir_fd, job.dst_name, job.rel)
            except BaseException:
                unlink_quietly(dir_fd, answer.temp)
                raise
            if placed:
                self.stats.files_transferred += 1
                self.stats.bytes_done += answer.copied

    def _drop_batch(self: TreeSync, batch: Batch, completed: int = 0) -> None:
        """Close a batch's fds and remove the temp files of the jobs not
        completed (after an abort: once the writer has answered)."""
        if batch.sent and self._writer is not None:
            self._writer.wait(batch)
        if batch.answers is None:
            self._remove_orphans(batch, completed)
        elif completed < len(batch.jobs):
            for answer in batch.answers[completed:]:
                if answer.outcome == OK:
                    unlink_quietly(batch.dir_fd, answer.temp)
        if self._writer is not None:
            self._writer.pending_bytes -= sum(queued.job.size for queued in batch.jobs[completed:])
        os.close(batch.src_dir)
        os.close(batch.dir_fd)
        batch.jobs = []

    def _remove_orphans(self: TreeSync, batch: Batch, start: int) -> None:
        """The files the writer made for the jobs of a batch it never
        answered (it died), from job ``start`` on: whole or not, the walk
        writes them again.  In a shelter a file has its own name (which
        nothing else there holds), noted or not: it may have died between
        making and noting it."""
        if batch.sent and self._writer is not None:
            for _, _, job in batch.jobs[start:]:
                orphan = job.dst_name if job.direct else self._writer.temp_of(job.number)
                if orphan is not None:
                    unlink_quietly(batch.dir_fd, orphan)

    # -- copies behind the walk ------------------------------------------------------
    # A big file's data is copied by a thread (copy_file_range releases the
    # GIL) while the walk goes on; the rest of its transfer (the checks,
    # attributes, rename, counts and any message) is done in the walk's
    # thread, in the order the files came: when the copy is done, before
    # any message is printed, and at the end of the file's dir (before the
    # dir's fd closes and its mtime is set).  On an abort (signal, fatal
    # error) the copies are awaited and their temp files removed.
    def _pending_bytes(self: TreeSync) -> int:
        """Bytes of the files still being written behind the walk."""
        writer = self._writer.pending_bytes if self._writer is not None else 0
        return writer + sum(item.pending_size for item in self._pending)

    def _copy_behind(self: TreeSync, job: CopyJob) -> None:
        try:
            self._send_batch()  # (it comes before this one)
        except BaseException:
            os.close(job.src_fd)
            os.close(job.tmp_fd)
            unlink_quietly(job.dst_parent, job.tmp)
            raise
        if self._copier is None:
            self._copier = Copier(self._check_cancel)
        self._pending.append(job)
        self._copier.jobs.put(job)

    def _complete_pending(self: TreeSync, dir_fd: int | None = None, ready_only: bool = False,
                          until: int = 0, keep: int = 0) -> None:
        """Complete copies in order: all of them; with ``dir_fd`` until none
        into that dir is left; with ``ready_only`` those already copied;
        with ``until`` until that many writer batches are; with ``keep``
        until that many items are left."""
        if self._completing:
            return
        self._completing = True
        try:
            while self._pending:
                job = self._pending[0]
                if ready_only and not job.done.is_set():
                    return
                if dir_fd is not None and all(j.dst_parent != dir_fd for j in self._pending):
                    return
                if keep and len(self._pending) <= keep:
                    return
                self._pending.pop(0)
                try:
                    job.complete(self)
                except Fatal as fatal:  # (what comes after it never happens)
                    fatal.settled = True
                    self._abort_pending()
                    raise
                if until and isinstance(job, Batch):
                    until -= 1
                    if not until:
                        return
        finally:
            self._completing = False

    def _complete_copy(self: TreeSync, job: CopyJob) -> None:
        """A copy behind the walk, in its turn: checked, named, counted."""
        job.done.wait()
        try:
            read_error, copied = None, job.copied
            if isinstance(job.error, ReadError):
                read_error, copied = job.error, -1
            elif job.error is not None:
                os.close(job.tmp_fd)
                unlink_quietly(job.dst_parent, job.tmp)
                if isinstance(job.error, WriteError):
                    raise self._write_failed(job.error, job.rel)
                raise job.error
            done = self._finish_write(job.src_fd, job.tmp_fd, job.tmp, job.before, copied,
                                      read_error, job.src_meta, job.dst_parent, job.dst_name,
                                      job.rel, job.src_path, 1)
            if done is None:
                os.lseek(job.src_fd, 0, os.SEEK_SET)
                self._write_new(job.src_fd, job.src_meta, job.dst_parent, job.dst_name,
                                job.rel, job.src_path, size=job.before.st_size, attempts=(2,))
        finally:
            os.close(job.src_fd)

    def _unwind(self: TreeSync, exc: BaseException) -> None:
        """The walk ends on ``exc``.  A fatal error in the walk's own turn
        comes, in rsync's order, after the files still under way: they are
        completed first (if one of them failed fatally, that error is
        raised instead).  Anything else (a signal) stops them."""
        if isinstance(exc, Fatal) and not exc.settled:
            exc.settled = True
            try:
                self._complete_pending()
            except Fatal as earlier:  # (settled: the rest is dropped)
                raise earlier from None
            except (OSError, Cancelled):
                pass
        self._abort_pending()

    def _abort_pending(self: TreeSync) -> None:
        """After an abort: stop the copies, remove their temp files."""
        if self._pending and self._copier is not None:
            self._copier.abort.set()  # (no copy is queued after an abort)
        if self._pending and self._writer is not None:
            self._writer.abort()
        self._batch = None
        while self._pending:
            self._pending.pop(0).abort(self)
        self._publish_shelters()

    def _check_cancel(self: TreeSync) -> None:
        if self.cancel_event.is_set():
            raise Cancelled()



@dataclass
class CopyJob:
    """A copy behind the walk (TreeSync._copy_behind)."""

    src_fd: int            # its own dup of the source fd
    tmp_fd: int
    tmp: bytes
    before: os.stat_result
    src_meta: SrcMeta
    dst_parent: int
    dst_name: bytes
    rel: bytes
    src_path: bytes | None
    copied: int = -1
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)

    @property
    def pending_size(self) -> int:
        return self.before.st_size

    def complete(self, run: TreeSync) -> None:
        run._complete_copy(self)

    def abort(self, run: TreeSync) -> None:
        self.done.wait()
        os.close(self.src_fd)
        os.close(self.tmp_fd)
        unlink_quietly(self.dst_parent, self.tmp)


class TouchUp:
    """A dir's touch-up waiting in the pending queue for the writer's
    files in it (the queue's items complete in order)."""

    __slots__ = ("dir_fd", "name", "frame")
    dst_parent = -1  # (tied to no fd of the walk: it has its own)
    done = threading.Event()  # (always set: it can run at once)
    done.set()

    pending_size = 0

    def __init__(self, dir_fd: int, name: bytes, frame: DirFrame) -> None:
        self.dir_fd = dir_fd
        self.name = name
        self.frame = frame

    def complete(self, run: TreeSync) -> None:
        try:
            run._dir_done(self.dir_fd, self.name, self.frame)
        finally:
            os.close(self.dir_fd)

    def abort(self, run: TreeSync) -> None:
        os.close(self.dir_fd)


class DeleteCheck:
    """The delete pass of a dir this run made, waiting in the pending
    queue: it has nothing to delete, only rsync's warning to give if the
    sender could not read something -- which the files before it, still
    with the writer, may yet show."""

    __slots__ = ()
    dst_parent = -1
    done = TouchUp.done  # (always set: it can run at once)
    pending_size = 0

    def complete(self, run: TreeSync) -> None:
        run._no_deletion()

    def abort(self, run: TreeSync) -> None:
        pass


class Copier:
    """The thread that copies the data of the jobs, one after another.
    ``abort`` stops the copy under way and fails the jobs still queued
    (an abort then need not wait for them)."""

    def __init__(self, check: Callable[[], None]) -> None:
        self.jobs: SimpleQueue[CopyJob | None] = SimpleQueue()
        self.abort = threading.Event()
        self.thread = threading.Thread(target=self._loop, args=(check,),
                                       name="syncengine-copy", daemon=True)
        self.thread.start()

    def _loop(self, check: Callable[[], None]) -> None:
        def checked() -> None:
            if self.abort.is_set():
                raise Cancelled()
            check()
        while (job := self.jobs.get()) is not None:
            try:
                checked()
                job.copied = copy_data(job.src_fd, job.tmp_fd, job.before.st_size, checked)
            except BaseException as exc:  # handed to the walk's thread
                job.error = exc
            job.done.set()

    def stop(self) -> None:
        self.jobs.put(None)
        self.thread.join()
