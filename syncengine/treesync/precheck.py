"""A look-ahead for re-runs: which files are already in sync.

With ``-c`` a re-run reads every file on both sides.  A forked worker
process walks the source tree in the walk's order, ahead of it, and the
walk itself takes a share of each dir's regular files just before it
needs them (see _Claims and _Worker.share); for each file they compare
everything the walk would: the destination is a regular file of
the same size and the same bytes, and its owner, group, mode, mtime (to
the nanosecond), xattrs and ACLs are those the walk would give it
(meta.py's own comparison, so "in sync" means exactly "the walk would
change nothing and print nothing").  A verdict is, for a file in sync,
its size and the destination file's identity (inode, ctime), else -1;
verdicts stream to the walk in batches (one per big file, so the walk can
go on while the next is compared), and a batch marks each dir's end.
Both go through the dirs in one order (depth first, subdirs by name): the
walk skips its share of a dir whose end it has read already, and drops
the verdicts on a dir it has passed.  Neither waits on the other: the
worker queues what the pipe does not take, the walk reads ahead; each up
to a few MiB.

The walk takes a file found in sync as done without looking at it again,
as long as it has changed nothing in the destination since it entered the
file's dir (faults.changes counts every change).  Only files with one name
on each side are judged (st_nlink == 1), so the run's own changes reach
such a file only through its own name -- or through another name of the
same dir on a filesystem that folds case, or a delete pass removing the
name the file is stored under.  Once the walk has changed something in
the dir, it lstats each remaining file and trusts the verdict only if the
destination file is still the one the worker saw (inode and ctime: a
ctime moves with every change) -- unless the dir's names are exact bytes
(fs.exact_names: a filesystem that never folds case, a dir without
chattr +F), where neither can happen.  A change made by someone else meanwhile
is a race, as it is for rsync, whose sender checksums each file long
before its generator gets to it.  (Not covered: a bind mount showing one
destination dir at two places.)

The worker only reads: files open O_RDONLY|O_NOFOLLOW below dirs opened
with O_NOFOLLOW, as the walk does.  It dies with a default SIGINT/SIGTERM/
SIGHUP, when the walk closes its pipe (a write fails), with the thread
that forked it (PR_SET_PDEATHSIG), and is killed and reaped by
:meth:`Precheck.close`.  A process, not a thread: small reads and
compares hold the GIL.
"""

from __future__ import annotations

import errno
import marshal
import mmap
import os
import select
import stat
import struct
import threading
import time
from array import array
from bisect import bisect_left
from collections.abc import Callable

from .freshstack import Steps, descend
from .fs import list_names
from .meta import UNCHANGED, MetaContext, attr_letters, read_dest, read_src_meta
from .packed import packed_verdict, unpacked_verdict
from .procs import fork_helper, kill_and_reap
from .transfer import same_size_content
from .xattrs import Node

__all__ = ["Precheck"]

_PATH_FLAGS = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_LIST_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: a FIFO put where a file was must not block the open
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
_NOATIME = getattr(os, "O_NOATIME", 0)
# A batch: this head (the size of the rest, whether it ends its dir, the
# length of the dir's path), the path, the verdicts (marshal).  The walk
# reads the heads alone to find where a dir ends (Precheck._judged).
_HEAD = struct.Struct("<IBI")
_JUDGED, _LEFT_OUT = 1, 2  # how a batch ends its dir (left out: nothing was compared)
_BATCH_FILES = 64
_BATCH_BYTES = 256 << 10
_SMALL = 64 << 10  # compared in one read a side
_PIPE_SIZE = 1 << 20
_STALL = 60.0      # seconds without a word from the worker: give up on it
_HEARTBEAT = 1.0   # a worker comparing a big file says so this often
_F_SETPIPE_SZ = 1031
_DRAIN_EVERY = 64  # files the walk compares between two looks at the worker's pipe (a batch)
_BACKLOG = 4 << 20  # bytes of verdicts a worker queues beyond the pipe's (~100,000 files)
# Bytes of verdicts the walk reads ahead of its need: the pipe and the
# worker's backlog hold the rest (1 MiB here ran no faster, and grew the
# walk by up to as much in a tree of small dirs).
_HELD = 256 << 10


def _join(rel: bytes, name: bytes) -> bytes:
    return rel + b"/" + name if rel and rel != b"." else name


def _batch_at(buf: bytearray, offset: int) -> tuple[bytes, int, int, int] | None:
    """The whole batch at ``offset`` in what was read: its dir, how it ends
    the dir, where its verdicts start and where it ends; None if not all
    of it is there yet."""
    if offset + _HEAD.size > len(buf):
        return None
    size, done, length = _HEAD.unpack_from(buf, offset)
    start = offset + _HEAD.size
    if start + size > len(buf):
        return None
    return bytes(buf[start:start + length]), done, start + length, start + size


def _place(rel: bytes) -> tuple[bytes, ...]:
    """A dir's place in the order both the walk and the worker go: depth
    first, each dir's subdirs by name -- the order of its path's parts."""
    return tuple(rel.split(b"/")) if rel and rel != b"." else ()


class _Claims:
    """Which worker compares which file: in each dir, worker 0 takes the
    files from the front and worker 1 from the back until they meet, so
    both stay busy to the end whatever the files' sizes and however the
    scheduler treats them.  A dir's slot, in memory both share, is picked
    by the hash of its path and holds that hash and the next index from
    the front and from the back.  Once a slot is set up each pointer moves
    under one worker only; setting it up (by both at once, or for another
    dir in the same slot) rewrites both.  So the worst a race can do is
    have both compare a file, or neither (the walk then does it), or hand
    out an index past a worker's list (ignored): a claim never changes a
    verdict, only who makes it.

    Each pointer is one aligned 8-byte word, read and written whole (a
    memoryview's item: one load or store).  ``struct.pack_into`` zeroes
    its bytes before it writes them: the other worker could read a back
    of 0 and take the dir for done while most of it was left."""

    _SLOTS = 1 << 14
    _WORDS = 3  # tag (the path's hash), front, back

    def __init__(self) -> None:
        # (MAP_SHARED: forks see it)
        self.memory = mmap.mmap(-1, self._SLOTS * self._WORDS * 8)
        self.words = memoryview(self.memory).cast("q")

    def enter(self, rel: bytes, files: int) -> int:
        """The index of a dir's slot, set up if the other worker has not
        done so yet (the pointers first, the tag last)."""
        tag = hash(rel) | 1  # (never 0, as in a fresh slot)
        slot = (tag % self._SLOTS) * self._WORDS
        words = self.words
        if words[slot] != tag:
            words[slot + 1] = 0
            words[slot + 2] = files
            words[slot] = tag
        return slot

    def take(self, slot: int, worker: int) -> int:
        """The index of the next file for ``worker`` to compare, or -1."""
        words = self.words
        front, back = words[slot + 1], words[slot + 2]
        if front >= back:
            return -1
        if worker == 0:
            words[slot + 1] = front + 1
            return front
        words[slot + 2] = back - 1
        return back - 1


class _Verdicts:
    """The verdicts on a dir's files (sorted names) by one side, packed:
    three ints a file -- a wide dir's verdicts in tuples and a dict would
    take some 200 bytes a file.  The walk's side takes its files from the
    back (see _Claims), so they are kept from the back: only as many as
    it judged (in a wide dir, its share is some half of it)."""

    __slots__ = ("files", "_packed")
    _NONE = (-2, 0, 0)  # (not judged here)

    def __init__(self, files: list[bytes]) -> None:
        self.files = files
        self._packed = array("q")  # (the last file's verdict first)

    def set(self, index: int, verdict: tuple | int) -> None:
        at, packed = 3 * (len(self.files) - 1 - index), self._packed
        if at > len(packed):  # (a file skipped: a claims race, see _Claims)
            packed.extend(array("q", self._NONE) * ((at - len(packed)) // 3))
        packed[at:at + 3] = array(
            "q", packed_verdict(verdict) if isinstance(verdict, tuple) else (-1, 0, 0))

    def get(self, name: bytes) -> tuple | int | None:
        """A file in sync: (size, inode, ctime); -1: not in sync; None:
        not judged here."""
        files, packed = self.files, self._packed
        i = bisect_left(files, name)
        if i == len(files) or files[i] != name:
            return None
        at = 3 * (len(files) - 1 - i)
        if at >= len(packed) or packed[at] == -2:
            return None
        return -1 if packed[at] == -1 else unpacked_verdict(packed, at)


class _Worker:
    """The code of one worker process."""

    def __init__(self, index: int, claims: _Claims, excluded: Callable[[bytes, bool], bool],
                 out_fd: int, acl_backend: str | None = None) -> None:
        self.index = index
        self.claims = claims
        self.excluded = excluded
        self.out_fd = out_fd
        self.errors = 0
        self.ctx = MetaContext(errors=self._error, acl_backend=acl_backend)
        self.noatime = bool(_NOATIME)  # (PermissionError unless root or the owner)
        self.rel = b""           # the dir being compared
        self.sent = time.monotonic()
        self.backlog = bytearray()  # batches the pipe did not take yet

    def _error(self, line: str) -> None:
        self.errors += 1

    def _heartbeat(self) -> None:
        if self.out_fd >= 0 and time.monotonic() - self.sent > _HEARTBEAT:
            self._send(self.rel, {}, False)

    def _send(self, rel: bytes, verdicts: dict | None, done: bool) -> None:
        """Queue a batch and write what the pipe takes now: the walk reads
        the pipe only while it compares its own share, and a worker that
        waited on a full pipe meanwhile (through the census, say) would
        leave it most of a wide dir.  Past _BACKLOG bytes queued it waits."""
        self.sent = time.monotonic()
        data = marshal.dumps(verdicts)
        ends = _LEFT_OUT if verdicts is None else _JUDGED if done else 0
        self.backlog += _HEAD.pack(len(rel) + len(data), ends, len(rel))
        self.backlog += rel
        self.backlog += data
        self.flush(wait=len(self.backlog) > _BACKLOG)

    def flush(self, wait: bool = True) -> None:
        """Write the queued batches: all of them, or (not ``wait``) what the
        pipe takes without blocking."""
        backlog = self.backlog
        while backlog:
            try:
                del backlog[:os.write(self.out_fd, backlog)]
            except BlockingIOError:
                if not wait:
                    return
                select.select([], [self.out_fd], [])

    def _listing(self, src_fd: int, rel: bytes) -> tuple[list[bytes], list[bytes], list[bytes]]:
        """A dir's names, its files to compare (in the order both sides
        number them for claims) and its subdirs, each sorted.  (No record
        per entry: a wide dir's listing stays small.)"""
        names, files, dirs = [], [], []
        with os.scandir(src_fd) as it:
            for entry in it:
                name = os.fsencode(entry.name)
                names.append(name)
                if entry.is_file(follow_symlinks=False):
                    files.append(name)
                elif entry.is_dir(follow_symlinks=False):
                    dirs.append(name)
        names.sort()
        files.sort()
        dirs.sort()
        return names, [name for name in files if not self.excluded(_join(rel, name), False)], dirs

    def share(self, src_fd: int, dst_fd: int, rel: bytes, drain: Callable[[], None],
              ) -> tuple[_Verdicts, list[bytes]]:
        """In the walk's own process, as worker 1: compare a dir's files
        from the back until it meets the forked worker (the walk would
        only wait for it otherwise); returns the verdicts, and the dir's
        names, sorted.  ``drain`` takes what the forked worker has sent so
        far: in a wide dir its pipe would fill, and it would wait there
        while the walk compared the rest alone."""
        names, files, _ = self._listing(src_fd, rel)
        slot = self.claims.enter(rel, len(files))
        verdicts = _Verdicts(files)
        count = 0
        while 0 <= (index := self.claims.take(slot, self.index)) < len(files):
            verdicts.set(index, self.check(src_fd, dst_fd, files[index]))
            count += 1
            if not count % _DRAIN_EVERY:
                drain()
        return verdicts, names

    def walk(self, src_fd: int, dst_fd: int, rel: bytes) -> None:
        """A dir's subtree in the walk's order (see descend)."""
        descend(self._dir(src_fd, dst_fd, rel))

    def _dir(self, src_fd: int, dst_fd: int, rel: bytes) -> Steps:
        """One dir in the walk's order: its files, then each subdir (the
        steps it yields)."""
        files, dirs = self._listing(src_fd, rel)[1:]
        self._files(src_fd, dst_fd, rel, files)
        del files  # (not held through the subtree)
        for name in dirs:
            child = _join(rel, name)
            if self.excluded(child, True):
                continue
            try:
                sub_src = os.open(name, _LIST_FLAGS, dir_fd=src_fd)
            except OSError:
                self._send(child, None, True)  # (nothing will come for its subtree)
                continue
            try:
                try:
                    sub_dst = os.open(name, _PATH_FLAGS, dir_fd=dst_fd)
                except OSError:  # (made by the walk, say: nothing to compare below)
                    self._send(child, None, True)
                    continue
                try:
                    yield self._dir(sub_src, sub_dst, child)
                finally:
                    os.close(sub_dst)
            finally:
                os.close(sub_src)

    def _files(self, src_fd: int, dst_fd: int, rel: bytes, files: list[bytes]) -> None:
        """Compare a dir's files (those it takes)."""
        slot = self.claims.enter(rel, len(files))
        self.rel = rel
        verdicts: dict[bytes, tuple | int] = {}
        size = 0
        while 0 <= (index := self.claims.take(slot, self.index)) < len(files):
            name = files[index]
            verdict = verdicts[name] = self.check(src_fd, dst_fd, name)
            size += verdict[0] if isinstance(verdict, tuple) else 0
            if size >= _BATCH_BYTES or len(verdicts) >= _BATCH_FILES:
                self._send(rel, verdicts, False)
                verdicts, size = {}, 0
        self._send(rel, verdicts, True)

    def check(self, src_dir: int, dst_dir: int, name: bytes) -> tuple | int:
        """If the file is in sync, its size and the identity of the
        destination file (inode, ctime), else -1.  (The hot loop of a
        re-run: kept to the syscalls it needs.)"""
        try:
            src_fd = self._open(name, src_dir)  # (O_NOFOLLOW: the fstat is its lstat)
        except OSError:
            return -1
        try:
            st = os.fstat(src_fd)
            if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
                return -1
            try:
                dst_fd = self._open(name, dst_dir)
            except OSError:
                return -1
            try:
                dst = self._same(st, src_fd, src_dir, dst_fd, name)
                return -1 if dst is None else (st.st_size, dst.st_ino, dst.st_ctime_ns)
            finally:
                os.close(dst_fd)
        except OSError:
            return -1
        finally:
            os.close(src_fd)

    def _open(self, name: bytes, dirfd: int) -> int:
        if self.noatime:
            try:
                return os.open(name, _FILE_FLAGS | _NOATIME, dir_fd=dirfd)
            except PermissionError:
                pass
        return os.open(name, _FILE_FLAGS, dir_fd=dirfd)

    def _same(self, st: os.stat_result, src_fd: int, src_dir: int, dst_fd: int,
              name: bytes) -> os.stat_result | None:
        """The destination's fstat if it is in sync with the source."""
        dst = os.fstat(dst_fd)
        # (st is a regular file: one compare checks dst's type and mode)
        if dst.st_mode != st.st_mode or dst.st_nlink != 1 or dst.st_size != st.st_size \
                or dst.st_mtime_ns != st.st_mtime_ns:
            return None
        ctx = self.ctx
        if (ctx.am_root and dst.st_uid != st.st_uid) or \
                (dst.st_gid != st.st_gid and ctx.may_set_gid(st.st_gid)):
            return None
        if os.listxattr(src_fd) or os.listxattr(dst_fd):
            if not self._same_xattrs(st, src_fd, src_dir, dst, dst_fd, name):
                return None
        # (no xattrs on either side: no ACLs either, and nothing to set)
        size = st.st_size
        if size <= _SMALL:
            data = os.pread(src_fd, size, 0)
            same = len(data) == size and data == os.pread(dst_fd, size, 0)
        else:
            same = same_size_content(src_fd, dst_fd, size, self._heartbeat) is True
        return dst if same else None

    def _same_xattrs(self, st: os.stat_result, src_fd: int, src_dir: int,
                     dst: os.stat_result, dst_fd: int, name: bytes) -> bool:
        """xattrs and ACLs as the walk compares them (meta.py)."""
        errors = self.errors
        src_meta = read_src_meta(st, fd=src_fd, dirfd=src_dir, name=name, ctx=self.ctx)
        if src_meta is None:
            return False
        node = Node(fd=dst_fd, dirfd=-1, name=name, is_link=False)
        try:
            dest = read_dest(self.ctx, node, dst, "generator", name)
        finally:
            node.close()
        return self.errors == errors and dest.xattrs is not None and dest.acl_ok \
            and attr_letters(self.ctx, src_meta, dest) == UNCHANGED


class Precheck:
    """The walk's side: start the worker, ``share()`` each dir, ask
    ``verdict(rel, name)`` for the entries of each dir in the walk's order
    (a file found in sync: its size and the destination's inode and ctime,
    else None), ``end_dir(rel)`` after each dir, and ``close()`` at the
    end.  A worker that sends nothing for _STALL seconds (it sends a
    heartbeat while comparing a big file) is given up on: the walk then
    does everything itself."""

    def __init__(self, src_dir: bytes, dst_dir: bytes, rel: bytes,
                 excluded: Callable[[bytes, bool], bool], cancel: threading.Event,
                 acl_backend: str | None = None, workers: bool = True) -> None:
        self.cancel = cancel
        claims = _Claims()
        # The walk's own share (see share): one forked worker and the walk's
        # process make two on two cores, and a process less in memory.
        self.helper = _Worker(1, claims, excluded, -1, acl_backend)
        self.own: dict[bytes, _Verdicts] = {}
        self.skipped: set[bytes] = set()  # dirs the worker left out
        self.fds: list[int] = []
        self.pids: list[int] = []
        self.buffers: list[bytearray] = []
        self.at: tuple[bytes, ...] | None = None  # the walk's dir (see _place)
        # per worker: rel -> [verdicts so far, whether the dir is done]
        self.dirs: list[dict[bytes, list]] = []
        if workers:  # (without one, the walk's share is every file)
            self._start(src_dir, dst_dir, rel, excluded, claims, acl_backend)

    def _start(self, src_dir: bytes, dst_dir: bytes, rel: bytes,
               excluded: Callable[[bytes, bool], bool], claims: _Claims,
               acl_backend: str | None) -> None:
        read_fd, write_fd = os.pipe()
        try:
            import fcntl
            fcntl.fcntl(write_fd, _F_SETPIPE_SZ, _PIPE_SIZE)
        except OSError:
            pass

        def work() -> None:
            os.close(read_fd)
            os.set_blocking(write_fd, False)
            worker = _Worker(0, claims, excluded, write_fd, acl_backend)
            src_fd = os.open(src_dir, _LIST_FLAGS & ~os.O_NOFOLLOW)
            dst_fd = os.open(dst_dir, _PATH_FLAGS & ~os.O_NOFOLLOW)
            worker.walk(src_fd, dst_fd, rel)
            worker.flush()
        try:
            pid = fork_helper(work)
        except OSError:
            os.close(read_fd)
            os.close(write_fd)
            raise
        os.close(write_fd)
        self.fds.append(read_fd)
        self.pids.append(pid)
        self.buffers.append(bytearray())
        self.dirs.append({})

    def share(self, rel: bytes, src_fd: int, dst_fd: int) -> list[bytes]:
        """Before the walk asks for a dir's verdicts: its own share, unless
        the worker has judged the whole dir already (its claims slot may
        be another dir's by now: the walk would compare it all again).
        Returns the dir's names, sorted (the walk need not list it again)."""
        self.at = place = _place(rel)
        self._drain()
        if self._judged(rel, place):
            names = list_names(src_fd)
            names.sort()
            return names
        self.own[rel], names = self.helper.share(src_fd, dst_fd, rel, self._drain)
        return names

    def _judged(self, rel: bytes, place: tuple[bytes, ...]) -> bool:
        """Whether the verdicts a worker sent so far end the dir's (found by
        the batches' heads: a wide dir's verdicts stay packed)."""
        for index, dirs in enumerate(self.dirs):
            known = dirs.get(rel)
            if known is not None and known[1] == _JUDGED:
                return True
            buf, offset = self.buffers[index], 0
            while (batch := _batch_at(buf, offset)) is not None:
                batch_rel, done, _, offset = batch
                if batch_rel == rel and done == _JUDGED:
                    return True
                if _place(batch_rel) > place:
                    break  # (the worker is past it: the walk shares it)
        return False

    def _drain(self) -> None:
        """Read what the workers have sent so far (up to _HELD bytes each),
        to unpack when asked for (packed, a verdict takes some 40 bytes;
        unpacked, 200)."""
        for index, fd in enumerate(self.fds):
            while fd >= 0 and len(self.buffers[index]) < _HELD and \
                    select.select([fd], [], [], 0)[0]:
                if not self._read(index):
                    break

    def verdict(self, rel: bytes, name: bytes) -> tuple | None:
        """(size, destination inode, destination ctime) of a file found in
        sync, else None."""
        own = self.own.get(rel)
        if own is not None:
            verdict = own.get(name)
            if verdict is not None:
                return verdict if isinstance(verdict, tuple) else None
        while True:
            waiting = []
            for index, dirs in enumerate(self.dirs):
                known = dirs.get(rel)
                if known is not None:
                    verdict = known[0].pop(name, None)
                    if verdict is not None:
                        return verdict if isinstance(verdict, tuple) else None
                    if known[1]:
                        continue  # done with the dir: it has nothing on the name
                if self.fds[index] >= 0 or self.buffers[index]:
                    waiting.append(index)
            if not waiting or self._skipped(rel) or not self._receive(waiting):
                return None

    def _read(self, index: int) -> bool:
        """Read what worker ``index`` sent; False at its end (its fd is
        then closed; whole batches read before stay to be unpacked)."""
        fd = self.fds[index]
        try:
            data = os.read(fd, 1 << 16)
        except OSError as exc:
            if exc.errno == errno.EINTR:
                return True
            data = b""
        if not data:
            os.close(fd)
            self.fds[index] = -1
            return False
        self.buffers[index] += data
        return True

    def _skipped(self, rel: bytes) -> bool:
        """Whether the worker left out the dir (it could not open it) or
        one above it: nothing will come for it."""
        if not self.skipped:
            return False
        parts = rel.split(b"/")
        return any(b"/".join(parts[:n]) in self.skipped for n in range(1, len(parts) + 1))

    def _receive(self, waiting: list[int]) -> bool:
        """Take what the ``waiting`` workers send next; False when none of
        them has more (or the run was cancelled, or they stalled)."""
        if any(self._unpack(index) is not None for index in waiting):  # (read before: _drain)
            return True
        deadline = time.monotonic() + _STALL
        while True:
            fds = [self.fds[index] for index in waiting if self.fds[index] >= 0]
            if not fds or self.cancel.is_set():
                return False
            if time.monotonic() > deadline:
                self.close()
                return False
            ready, _, _ = select.select(fds, [], [], 0.05)
            got = False
            for fd in ready:
                index = self.fds.index(fd)
                if self._read(index):
                    got = self._unpack(index) is not None or got
            if got:
                return True

    def _unpack(self, index: int) -> bytes | None:
        """File the next whole batch in a worker's buffer, if there is one
        (one at a time: a wide dir's verdicts stay packed until asked for);
        returns its dir.  A batch for a dir the walk has passed (it judged
        that dir itself) is dropped."""
        buf, dirs = self.buffers[index], self.dirs[index]
        batch = _batch_at(buf, 0)
        if batch is None:
            return None
        rel, done, start, end = batch
        verdicts = marshal.loads(bytes(buf[start:end]))
        del buf[:end]
        if verdicts is None:  # a dir it left out, with its subtree
            self.skipped.add(rel)
            verdicts = {}
        if self.at is not None and _place(rel) < self.at:
            return rel
        known = dirs.get(rel)
        if known is None:
            dirs[rel] = [verdicts, done]
        else:
            known[0].update(verdicts)
            known[1] = done
        return rel

    def end_dir(self, rel: bytes) -> None:
        self.own.pop(rel, None)
        for dirs in self.dirs:
            dirs.pop(rel, None)

    def close(self) -> None:
        for index, fd in enumerate(self.fds):
            if fd >= 0:
                os.close(fd)
                self.fds[index] = -1
        for pid in self.pids:
            kill_and_reap(pid)
        self.pids = []
        for dirs in self.dirs:
            dirs.clear()
        for buf in self.buffers:
            buf.clear()
