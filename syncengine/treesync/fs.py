"""System calls on dir fds for the walk: the open flags, lstat/open/list
relative to a dir fd (never following a symlink in the destination),
space reservation, inode flags.  Nothing here knows about rsync.
"""

from __future__ import annotations

import array
import errno
import fcntl
import os
import stat
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

from . import faults
from .model import ROOM
from .xattrs import chmod_nofollow

if TYPE_CHECKING:
    pass



PATH_FLAGS = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
PATH_FOLLOW = PATH_FLAGS & ~os.O_NOFOLLOW  # for paths given on the command line
LIST_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
# O_NONBLOCK: a fifo swapped in for a file since the walk's lstat must not
# block the open (open_file then finds what it is through the fd).
FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
NOATIME = getattr(os, "O_NOATIME", 0)

# A dry run's stand-in for the fd of a destination dir it would have created:
# the dir is empty, and nothing is ever opened relative to it.
VIRTUAL = -2


def lstat_at(dirfd: int, name: bytes) -> tuple[os.stat_result | None, int]:
    """lstat relative to a dir fd: (stat, 0), or (None, errno)."""
    if dirfd == VIRTUAL:
        return None, errno.ENOENT
    try:
        return os.stat(name, dir_fd=dirfd, follow_symlinks=False), 0
    except OSError as exc:
        return None, exc.errno or errno.EIO


def open_listable(name: bytes, dir_fd: int) -> int:
    """Open a source dir to read its entries as rsync 3.5's sender does: an
    O_PATH handle, then "." inside it, so that listing needs search
    permission as well as read permission."""
    path_fd = os.open(name, PATH_FLAGS, dir_fd=dir_fd)
    try:
        return os.open(b".", LIST_FLAGS, dir_fd=path_fd)
    finally:
        os.close(path_fd)


class NotRegularFile(OSError):
    """What open_file opened is no longer a regular file (a fifo, socket or
    device swapped in since the walk's lstat)."""


def open_file(name: bytes, dir_fd: int) -> int:
    """Open a regular file for reading, never blocking; anything else is
    NotRegularFile.  O_NOATIME only where it is allowed (it needs
    ownership: EPERM otherwise)."""
    fd = -1
    if NOATIME:
        try:
            fd = os.open(name, FILE_FLAGS | NOATIME, dir_fd=dir_fd)
        except PermissionError as exc:
            if exc.errno != errno.EPERM:
                raise
    if fd < 0:
        fd = os.open(name, FILE_FLAGS, dir_fd=dir_fd)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise NotRegularFile(errno.EINVAL, "not a regular file")
    return fd


_FS_ENCODING = sys.getfilesystemencoding()
_FS_ERRORS = sys.getfilesystemencodeerrors()


def usable_cpus() -> int:
    """The CPUs this process may run on (helper processes need a second)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def list_names(dirfd: int) -> list[bytes]:
    """Names in a directory (bytes), from an fd open for reading (listdir
    reads a dup of it: the fd stays open).  Encoded in place: a wide dir's
    names are not held twice."""
    names: list = os.listdir(dirfd)
    for i, name in enumerate(names):
        names[i] = name.encode(_FS_ENCODING, _FS_ERRORS)
    return names


def streamed_names(dirfd: int) -> Iterator[bytes]:
    """Names in a directory (bytes), one at a time, in the order list_names
    gives them."""
    with os.scandir(dirfd) as entries:
        for entry in entries:
            yield entry.name.encode(_FS_ENCODING, _FS_ERRORS)


def reserve_space(fd: int, size: int, am_root: bool, pending: int) -> bool:
    """Make sure a temp file's data can be copied behind the walk without
    running out of space: a full disk must stop the run before the next
    entry, as in rsync.  Root (whom quotas do not limit) with room to spare
    on the filesystem for this and the ``pending`` bytes still being copied
    goes ahead; otherwise the blocks are allocated up front.  False when
    that fails: the caller copies in its own turn then (and meets the full
    disk there)."""
    try:
        if am_root:
            fs = os.fstatvfs(fd)
            if fs.f_bavail * fs.f_frsize >= 2 * (size + pending) + ROOM:
                return True
        os.posix_fallocate(fd, 0, size)
        return True
    except OSError:
        try:
            os.ftruncate(fd, 0)
        except OSError:
            pass
        return False


_FS_IOC_GETFLAGS = 0x80086601  # linux/fs.h (an int, whatever its _IOR says)
_FS_APPEND_FL = 0x00000020


_FS_CASEFOLD_FL = 0x40000000


def _dir_flags(path: bytes, dir_fd: int | None = None) -> int | None:
    """A dir's inode flags (chattr's), None if it has none to show."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NONBLOCK | os.O_CLOEXEC,
                     dir_fd=dir_fd)
    except OSError:
        return None
    try:
        flags = array.array("i", [0])
        fcntl.ioctl(fd, _FS_IOC_GETFLAGS, flags, True)
        return flags[0]
    except OSError:
        return None  # (a filesystem without inode flags)
    finally:
        os.close(fd)


def is_append_only(path: bytes) -> bool:
    """Whether a dir has the append-only flag (chattr +a): entries can be
    made in it, but not renamed or removed."""
    return bool((_dir_flags(path) or 0) & _FS_APPEND_FL)


# Filesystems whose names are bytes matched exactly, unless a dir says it
# folds case (chattr +F: ext4, f2fs, tmpfs).  Any other (vfat, exfat,
# ntfs, cifs, hfsplus, overlay, fuse...) may fold case or normalise names.
_EXACT_FS = frozenset((b"ext2", b"ext3", b"ext4", b"xfs", b"btrfs", b"tmpfs", b"f2fs"))


def _fs_type(dev: int, mounts: dict[int, bytes]) -> bytes:
    """The type of the filesystem mounted as ``dev``; ``mounts``: the
    run's table of them, read from /proc/self/mountinfo when first asked
    (per run: a device number may be another filesystem's later)."""
    if not mounts:
        try:
            with open("/proc/self/mountinfo", "rb") as f:
                for line in f:
                    fields, _, rest = line.partition(b" - ")
                    major, _, minor = fields.split()[2].partition(b":")
                    mounts[os.makedev(int(major), int(minor))] = rest.split()[0]
        except (OSError, ValueError, IndexError):
            pass
    return mounts.get(dev, b"")


def exact_names(dir_fd: int, mounts: dict[int, bytes]) -> bool:
    """Whether a dir's entries are told apart by their exact bytes: then a
    change to one name reaches no other entry of the dir (see
    DirWalk._dir_contents).  False when unsure.  ``mounts``: see _fs_type."""
    try:
        dev = os.fstat(dir_fd).st_dev
    except OSError:
        return False
    if _fs_type(dev, mounts) not in _EXACT_FS:
        return False
    flags = _dir_flags(b".", dir_fd)
    return flags is not None and not flags & _FS_CASEFOLD_FL


def xattrs_readable(path: bytes) -> bool:
    try:
        for name in os.listxattr(path, follow_symlinks=False):
            os.getxattr(path, name, follow_symlinks=False)
    except OSError:
        return False
    return True


def chmod_at(dirfd: int, name: bytes, mode: int) -> None:
    chmod_nofollow(dirfd, name, mode)
    faults.mutated("chmod")
