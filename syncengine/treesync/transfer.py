"""Moving file data: temp files, copies, content comparison.

Every file is written to a temporary ``.<name>.XXXXXX`` in its target
directory (rsync's naming), gets its attributes there, and is renamed over
the target, so a crash never leaves partial data under a real name.
"""

from __future__ import annotations

import errno
import os
import secrets
import string

__all__ = [
    "NAME_MAX",
    "copy_data",
    "open_temp",
    "same_content",
    "temp_name",
    "unlink_quietly",
]

NAME_MAX = 255
_ALPHABET = (string.ascii_letters + string.digits).encode()
_CHUNK = 1 << 20


def temp_name(name: bytes) -> bytes:
    """rsync's temp name for ``name``: ``.<name>.XXXXXX``; a leading dot is
    not doubled, one trailing dot is trimmed, and the name is cut to fit
    NAME_MAX."""
    base = name[1:] if name.startswith(b".") else name
    if base.endswith(b"."):
        base = base[:-1]
    suffix = b"." + bytes(secrets.choice(_ALPHABET) for _ in range(6))
    return b"." + base[: NAME_MAX - 1 - len(suffix)] + suffix


def open_temp(dirfd: int, name: bytes, mode: int) -> tuple[int, bytes]:
    """Create a fresh temp file for ``name`` in ``dirfd``: O_EXCL, never
    following a symlink, private mode ``(mode|0200)&0700`` until the real
    mode is set.  Returns (fd, temp name)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    while True:
        tmp = temp_name(name)
        try:
            return os.open(tmp, flags, (mode | 0o200) & 0o700, dir_fd=dirfd), tmp
        except FileExistsError:
            continue


_copy_file_range_ok = hasattr(os, "copy_file_range")


def copy_data(src_fd: int, dst_fd: int, size_hint: int = 0) -> int:
    """Copy all of src_fd (from its start) into dst_fd.  Uses the kernel's
    copy_file_range (which also clones on reflink filesystems) and falls back
    to read/write.  Returns the number of bytes copied."""
    global _copy_file_range_ok
    copied = 0
    if _copy_file_range_ok:
        try:
            while True:
                n = os.copy_file_range(src_fd, dst_fd, max(size_hint - copied, _CHUNK * 8))
                if n == 0:
                    return copied
                copied += n
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP,
                                 errno.EBADF) or copied:
                raise
            if exc.errno in (errno.ENOSYS,):
                _copy_file_range_ok = False
    while True:
        chunk = os.read(src_fd, _CHUNK)
        if not chunk:
            return copied
        view = memoryview(chunk)
        while view:
            view = view[os.write(dst_fd, view):]
        copied += len(chunk)


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


def unlink_quietly(dirfd: int, name: bytes) -> None:
    try:
        os.unlink(name, dir_fd=dirfd)
    except FileNotFoundError:
        pass
