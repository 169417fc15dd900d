"""A look-ahead for re-runs: which files are already in sync.

With ``-c`` a re-run reads every file on both sides.  Two forked worker
processes walk the source tree in the walk's order, ahead of it, each
taking the files whose name hashes to it, and for each regular file (not
hard-linked) compare everything the walk would: the destination is a
regular file of the same size and the same bytes, and its owner, group,
mode, mtime (to the nanosecond), xattrs and ACLs are those the walk would
give it (meta.py's own comparison, so "in sync" means exactly "the walk
would change nothing and print nothing").  A verdict is what identifies
both sides of a file found in sync (inode, size, mtime and ctime), or 0;
verdicts stream to the walk in batches (one per big file, so the walk
can go on while the next is compared), and a batch marks each dir's end.  The walk skips such a file only if its own lstat of
both sides still shows the same identity (a ctime moves with every change
of contents or attributes); everything else it handles as before, so
results and messages do not change.

Workers only read: files open O_RDONLY|O_NOFOLLOW below dirs opened with
O_NOFOLLOW, as the walk does.  They die with a default SIGINT/SIGTERM/
SIGHUP, when the walk closes their pipe (a write fails), with the thread
that forked them (PR_SET_PDEATHSIG), and are killed and reaped by
:meth:`Precheck.close`.  Processes, not threads: small reads and compares
hold the GIL.
"""

from __future__ import annotations

import errno
import marshal
import os
import select
import signal
import stat
import struct
import threading
from collections.abc import Callable

from .meta import UNCHANGED, MetaContext, _letters, _read_dest, read_src_meta
from .transfer import same_size_content
from .xattrs import Node

__all__ = ["Precheck"]

_PATH_FLAGS = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_LIST_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: a FIFO put where a file was must not block the open
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
_NOATIME = getattr(os, "O_NOATIME", 0)
_LEN = struct.Struct("<I")
_BATCH_FILES = 64
_BATCH_BYTES = 256 << 10
_PIPE_SIZE = 1 << 20
_F_SETPIPE_SZ = 1031


def _join(rel: bytes, name: bytes) -> bytes:
    return rel + b"/" + name if rel and rel != b"." else name


def _open_file(name: bytes, dirfd: int) -> int:
    if _NOATIME:
        try:
            return os.open(name, _FILE_FLAGS | _NOATIME, dir_fd=dirfd)
        except PermissionError:
            pass
    return os.open(name, _FILE_FLAGS, dir_fd=dirfd)


def _die_with_parent() -> None:
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:  # pragma: no cover - no libc prctl: the pipe still ends us
        pass


class _Worker:
    """The code of one worker process."""

    def __init__(self, index: int, count: int, excluded: Callable[[bytes, bool], bool],
                 out_fd: int) -> None:
        self.index = index
        self.count = count
        self.excluded = excluded
        self.out_fd = out_fd
        self.errors = 0
        self.ctx = MetaContext(errors=self._error)

    def _error(self, line: str) -> None:
        self.errors += 1

    def _send(self, rel: bytes, verdicts: dict, done: bool) -> None:
        data = marshal.dumps((rel, verdicts, done))
        data = _LEN.pack(len(data)) + data
        while data:
            data = data[os.write(self.out_fd, data):]

    def walk(self, src_fd: int, dst_fd: int, rel: bytes) -> None:
        """One dir in the walk's order: its files, then each subdir."""
        with os.scandir(src_fd) as it:
            entries = sorted((os.fsencode(e.name), e.is_dir(follow_symlinks=False),
                              e.is_file(follow_symlinks=False)) for e in it)
        verdicts: dict[bytes, tuple | int] = {}
        size = 0
        for name, is_dir, is_file in entries:
            if is_file and hash(name) % self.count == self.index \
                    and not self.excluded(_join(rel, name), False):
                ident = self.check(src_fd, dst_fd, name)
                verdicts[name] = ident or 0
                size += ident[1] if ident else 0
                if size >= _BATCH_BYTES or len(verdicts) >= _BATCH_FILES:
                    self._send(rel, verdicts, False)
                    verdicts, size = {}, 0
        self._send(rel, verdicts, True)
        for name, is_dir, _ in entries:
            if not is_dir:
                continue
            child = _join(rel, name)
            if self.excluded(child, True):
                continue
            try:
                sub_src = os.open(name, _LIST_FLAGS, dir_fd=src_fd)
            except OSError:
                continue
            try:
                try:
                    sub_dst = os.open(name, _PATH_FLAGS, dir_fd=dst_fd)
                except OSError:
                    continue  # made by the walk: nothing to compare below
                try:
                    self.walk(sub_src, sub_dst, child)
                finally:
                    os.close(sub_dst)
            finally:
                os.close(sub_src)

    def check(self, src_dir: int, dst_dir: int, name: bytes) -> tuple | None:
        """The identity of both sides if the file is in sync, else None."""
        try:
            src_fd = _open_file(name, src_dir)  # (O_NOFOLLOW: the fstat is its lstat)
        except OSError:
            return None
        try:
            st = os.fstat(src_fd)
            if not stat.S_ISREG(st.st_mode) or st.st_nlink > 1:
                return None
            try:
                dst_fd = _open_file(name, dst_dir)
            except OSError:
                return None
            try:
                return self._compare(st, src_fd, src_dir, dst_fd, name)
            finally:
                os.close(dst_fd)
        except OSError:
            return None
        finally:
            os.close(src_fd)

    def _compare(self, st: os.stat_result, src_fd: int, src_dir: int, dst_fd: int,
                 name: bytes) -> tuple | None:
        dst = os.fstat(dst_fd)
        if not stat.S_ISREG(dst.st_mode) or dst.st_size != st.st_size \
                or dst.st_mtime_ns != st.st_mtime_ns \
                or (dst.st_mode ^ st.st_mode) & 0o7777:
            return None
        ctx = self.ctx
        if (ctx.am_root and dst.st_uid != st.st_uid) or \
                (dst.st_gid != st.st_gid and ctx.may_set_gid(st.st_gid)):
            return None
        if os.listxattr(src_fd) or os.listxattr(dst_fd):
            if not self._same_xattrs(st, src_fd, src_dir, dst, dst_fd, name):
                return None
        # (no xattrs on either side: no ACLs either, and nothing to set)
        if same_size_content(src_fd, dst_fd, st.st_size) is not True:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns,
                dst.st_ino, dst.st_ctime_ns)

    def _same_xattrs(self, st: os.stat_result, src_fd: int, src_dir: int,
                     dst: os.stat_result, dst_fd: int, name: bytes) -> bool:
        """xattrs and ACLs as the walk compares them (meta.py)."""
        errors = self.errors
        src_meta = read_src_meta(st, fd=src_fd, dirfd=src_dir, name=name, ctx=self.ctx)
        if src_meta is None:
            return False
        node = Node(fd=dst_fd, dirfd=-1, name=name, is_link=False)
        try:
            dest = _read_dest(self.ctx, node, dst, "generator", name)
        finally:
            node.close()
        return self.errors == errors and dest.xattrs is not None and dest.acl_ok \
            and _letters(self.ctx, src_meta, dest) == UNCHANGED


class Precheck:
    """The walk's side: start the workers, ask ``verdict(rel, name)`` for
    the regular files of each dir in the walk's order (the identity seen
    in sync, else None), ``end_dir(rel)`` after each dir, and ``close()``
    at the end."""

    def __init__(self, src_dir: bytes, dst_dir: bytes, rel: bytes,
                 excluded: Callable[[bytes, bool], bool], cancel: threading.Event,
                 workers: int = 2) -> None:
        self.count = workers
        self.cancel = cancel
        self.fds: list[int] = []
        self.pids: list[int] = []
        self.buffers: list[bytearray] = []
        # per worker: rel -> [verdicts so far, whether the dir is done]
        self.dirs: list[dict[bytes, list]] = []
        try:
            self._start(src_dir, dst_dir, rel, excluded, workers)
        except BaseException:
            self.close()  # (no worker left behind when the second cannot start)
            raise

    def _start(self, src_dir: bytes, dst_dir: bytes, rel: bytes,
               excluded: Callable[[bytes, bool], bool], workers: int) -> None:
        for index in range(workers):
            read_fd, write_fd = os.pipe()
            try:
                import fcntl
                fcntl.fcntl(write_fd, _F_SETPIPE_SZ, _PIPE_SIZE)
            except OSError:
                pass
            try:
                pid = os.fork()
            except OSError:
                os.close(read_fd)
                os.close(write_fd)
                raise
            if pid == 0:  # the worker
                code = 0
                try:
                    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                        signal.signal(signum, signal.SIG_DFL)
                    os.close(read_fd)
                    for fd in self.fds:
                        os.close(fd)
                    _die_with_parent()
                    worker = _Worker(index, workers, excluded, write_fd)
                    src_fd = os.open(src_dir, _LIST_FLAGS & ~os.O_NOFOLLOW)
                    dst_fd = os.open(dst_dir, _PATH_FLAGS & ~os.O_NOFOLLOW)
                    worker.walk(src_fd, dst_fd, rel)
                except BaseException:
                    code = 1
                os._exit(code)
            os.close(write_fd)
            self.fds.append(read_fd)
            self.pids.append(pid)
            self.buffers.append(bytearray())
            self.dirs.append({})

    def _receive(self, index: int) -> bool:
        """Take the worker's next batch; False when it has no more (or the
        run was cancelled)."""
        buf = self.buffers[index]
        fd = self.fds[index]
        while True:
            if len(buf) >= _LEN.size:
                size = _LEN.unpack_from(buf)[0]
                if len(buf) >= _LEN.size + size:
                    rel, verdicts, done = marshal.loads(bytes(buf[_LEN.size:_LEN.size + size]))
                    del buf[:_LEN.size + size]
                    known = self.dirs[index].get(rel)
                    if known is None:
                        self.dirs[index][rel] = [verdicts, done]
                    else:
                        known[0].update(verdicts)
                        known[1] = done
                    return True
            if fd < 0 or self.cancel.is_set():
                return False
            ready, _, _ = select.select([fd], [], [], 0.05)
            if not ready:
                continue
            try:
                data = os.read(fd, 1 << 16)
            except OSError as exc:
                if exc.errno == errno.EINTR:
                    continue
                data = b""
            if not data:
                os.close(fd)
                self.fds[index] = -1
                buf.clear()
                return False
            buf += data

    def verdict(self, rel: bytes, name: bytes) -> tuple | None:
        index = hash(name) % self.count
        dirs = self.dirs[index]
        while True:
            known = dirs.get(rel)
            if known is not None:
                ident = known[0].pop(name, None)
                if ident is not None:
                    return ident or None
                if known[1]:
                    return None
            if not self._receive(index):
                return None

    def end_dir(self, rel: bytes) -> None:
        for dirs in self.dirs:
            dirs.pop(rel, None)

    def close(self) -> None:
        for fd in self.fds:
            if fd >= 0:
                os.close(fd)
        self.fds = []
        for pid in self.pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
        self.pids = []
        self.dirs = []
