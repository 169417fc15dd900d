"""Moving file data: temp files, copies, content comparison.

Every file is written to a temporary ``.<name>.XXXXXX`` in its target
directory (rsync's naming), gets its attributes there, and is renamed over
the target, so a crash never leaves partial data under a real name.

Each change to the destination made here is followed by a call of the
test-only crash hook (faults.py).
"""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Callable

from . import faults

__all__ = [
    "NAME_MAX",
    "ReadError",
    "WriteError",
    "copy_data",
    "open_temp",
    "same_content",
    "same_size_content",
    "temp_name",
    "unlink_quietly",
]

NAME_MAX = 255
_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_LETTERS = bytes(_ALPHABET[b % len(_ALPHABET)] for b in range(256))  # a byte -> a letter
_CHUNK = 1 << 20
_COMPARE_CHUNK = 128 << 10  # two of them fit in L2: faster than bigger reads
# rsync's maxname: NAME_MAX less the leading dot and ".XXXXXX", as a buffer
# size that includes the terminating NUL.
_MAXNAME = NAME_MAX - 1 - len(".XXXXXX")
_HIGH_BIT = bytes(range(0x80, 0x100))


def temp_name(name: bytes) -> bytes:
    """rsync's temp name for ``name`` (get_tmpname): ``.<name>.XXXXXX``; a
    leading dot is not doubled; a name too long for NAME_MAX is cut to 246
    bytes (without a trailing partial UTF-8 sequence); then one trailing dot
    is trimmed."""
    base = name[1:] if name.startswith(b".") else name
    if len(base) >= _MAXNAME:
        # strlcpy() into a buffer of _MAXNAME bytes, with its '\0'
        cut = base[:_MAXNAME - 1]
        if base[_MAXNAME - 1] & 0x80:
            cut = cut.rstrip(_HIGH_BIT)
        base = cut
    if base.endswith(b"."):
        base = base[:-1]
    return b"." + base + b"." + _six_letters()


# Random letters for temp names, read from the kernel a few thousand at a
# time (a getrandom call per file costs more than the rest of the name).
# O_EXCL makes a clash a retry; a forked process draws its own.
_pool = b""
_drawn = 0


def _six_letters() -> bytes:
    global _pool, _drawn
    if _drawn + 6 > len(_pool):
        _pool, _drawn = os.urandom(6 << 10).translate(_LETTERS), 0
    _drawn += 6
    return _pool[_drawn - 6:_drawn]


def _new_pool() -> None:
    global _pool
    _pool = b""


os.register_at_fork(after_in_child=_new_pool)


_TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def open_temp(dirfd: int, name: bytes, mode: int, direct: bool = False) -> tuple[int, bytes]:
    """Create a fresh temp file for ``name`` in ``dirfd``: O_EXCL, never
    following a symlink, private mode ``(mode|0200)&0700`` until the real
    mode is set.  Returns (fd, temp name).  ``direct``: in a dir no one
    sees yet (a shelter), the file itself is made, under ``name``."""
    if direct:
        fd = os.open(name, _TEMP_FLAGS, (mode | 0o200) & 0o700, dir_fd=dirfd)
        faults.mutated("create")
        return fd, name
    while True:
        tmp = temp_name(name)
        try:
            fd = os.open(tmp, _TEMP_FLAGS, (mode | 0o200) & 0o700, dir_fd=dirfd)
        except FileExistsError:
            continue
        faults.mutated("create temp")
        return fd, tmp


class ReadError(OSError):
    """Reading the source failed (rsync's "read errors mapping")."""


class WriteError(OSError):
    """Writing the destination failed (rsync's "write failed on", fatal)."""


_copy_file_range_ok = hasattr(os, "copy_file_range")
# Errors of copy_file_range that say "not here": read/write does the rest.
_NO_COPY_RANGE = frozenset({errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP,
                            errno.EBADF})
# Errors that can only come from the writing side.
_WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


def copy_data(src_fd: int, dst_fd: int, size: int,
              check: Callable[[], None] | None = None) -> int:
    """Copy the first ``size`` bytes of src_fd (from its current offset, the
    start) into dst_fd: the size the file had when it was opened, as rsync's
    sender maps it, even if it grows meanwhile.  Returns the number of bytes
    copied, fewer than ``size`` when the file ended early (it shrank).

    Uses the kernel's copy_file_range (which also clones on reflink
    filesystems) and falls back to read/write, in chunks; ``check()`` runs
    between chunks (it may raise to stop the copy; the caller checks before
    the first).  Failures raise
    :class:`ReadError` or :class:`WriteError` (both OSError) saying which
    side failed."""
    global _copy_file_range_ok
    copied = 0
    if _copy_file_range_ok:
        try:
            while copied < size:
                if copied and check is not None:
                    check()
                n = os.copy_file_range(src_fd, dst_fd, min(size - copied, _CHUNK * 8))
                if n == 0:
                    return copied
                copied += n
                faults.mutated("write")
            return copied
        except OSError as exc:
            if exc.errno in _WRITE_ERRNOS:
                raise WriteError(exc.errno, exc.strerror) from None
            if exc.errno == errno.ENOSYS:
                _copy_file_range_ok = False
            # Anything else: read/write carries on from the same offsets and
            # tells which side fails, if one does.
    while copied < size:
        if copied and check is not None:
            check()
        try:
            chunk = os.read(src_fd, min(_CHUNK, size - copied))
        except OSError as exc:
            raise ReadError(exc.errno, exc.strerror) from None
        if not chunk:
            return copied
        view = memoryview(chunk)
        try:
            while view:
                view = view[os.write(dst_fd, view):]
                faults.mutated("write")
        except OSError as exc:
            raise WriteError(exc.errno, exc.strerror) from None
        copied += len(chunk)
    return copied


def same_content(fd_a: int, fd_b: int) -> bool:
    """True when two open files hold the same bytes (both read from 0)."""
    while True:
        a = os.read(fd_a, _CHUNK)
        b = os.read(fd_b, len(a) or 1)
        while len(b) < len(a):
            more = os.read(fd_b, len(a) - len(b))
            if not more:
                return False
            b += more
        if a != b:
            return False
        if not a:
            return True


# Two reusable read buffers per thread: runs may go on in several threads.
_local = threading.local()


def same_size_content(fd_a: int, fd_b: int, size: int,
                      tick: Callable[[], None] | None = None) -> bool | None:
    """Whether the first ``size`` bytes of two open files are the same,
    read with pread (the offsets stay where they are), as rsync's -c
    checksums the ``st_size`` bytes of each side.  None when either file
    holds fewer bytes now (it shrank since its lstat): the caller decides.
    ``tick()`` runs after each chunk of a big file."""
    buffers = getattr(_local, "buffers", None)
    if buffers is None:
        buffers = _local.buffers = (bytearray(_COMPARE_CHUNK), bytearray(_COMPARE_CHUNK))
    buf_a, buf_b = buffers
    offset = 0
    while offset < size:
        want = min(size - offset, _COMPARE_CHUNK)
        if want < _COMPARE_CHUNK:
            a, b = os.pread(fd_a, want, offset), os.pread(fd_b, want, offset)
            if len(a) != want or len(b) != want:
                return None
            if a != b:
                return False
        else:
            if os.preadv(fd_a, [buf_a], offset) != want or os.preadv(fd_b, [buf_b], offset) != want:
                return None
            if buf_a != buf_b:
                return False
            if tick is not None:
                tick()
        offset += want
    return True


def unlink_quietly(dirfd: int, name: bytes) -> None:
    """Remove a temp file; one that cannot be removed (an append-only dir,
    say) stays, as rsync's do_unlink() leaves it, without a word."""
    try:
        os.unlink(name, dir_fd=dirfd)
    except OSError:
        return
    faults.mutated("unlink")
