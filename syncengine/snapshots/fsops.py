"""The few system calls snapshots need beyond ``os``: directory locks,
a rename that never replaces, syncfs, and a tree removal that never
follows a symlink.  Everything works relative to open directory
descriptors, so a path swapped for a symlink mid-way changes nothing.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import stat
from collections.abc import Iterator

__all__ = ["OPEN_DIR", "open_dir_at", "try_lock", "locked", "rename_noreplace", "sync_filesystem",
           "fsync_dir", "remove_tree", "walk_tree"]

OPEN_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# flock() answers these where a filesystem cannot lock (some network ones).
_NO_LOCKS = {errno.EOPNOTSUPP, errno.ENOLCK, errno.EINVAL, errno.ENOSYS}
_RENAME_NOREPLACE = 1

_libc = ctypes.CDLL(None, use_errno=True)


def open_dir_at(dir_fd: int | None, name: str | bytes) -> int:
    """An fd of the directory ``name`` (relative to ``dir_fd``), refusing a
    symlink (ELOOP) or a non-directory (ENOTDIR)."""
    return os.open(name, OPEN_DIR, dir_fd=dir_fd)


def try_lock(fd: int, *, wait: bool = False, shared: bool = False) -> bool | None:
    """flock(LOCK_EX, or LOCK_SH when ``shared``) ``fd``: True when held,
    False when another open file holds a conflicting lock (without
    ``wait``), None when the filesystem cannot lock.  A lock dies with its
    process, which is how a dead run is told apart."""
    try:
        fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
                    | (0 if wait else fcntl.LOCK_NB))
    except BlockingIOError:
        return False
    except OSError as e:
        if e.errno in _NO_LOCKS:
            return None
        raise
    return True


@contextlib.contextmanager
def locked(fd: int) -> Iterator[bool]:
    """Hold ``fd``'s lock for the block (waiting for it); yields whether
    locking works here at all."""
    held = try_lock(fd, wait=True)
    try:
        yield held is not None
    finally:
        if held:
            fcntl.flock(fd, fcntl.LOCK_UN)


def rename_noreplace(dir_fd: int, old: str, new: str) -> None:
    """Rename ``old`` to ``new`` in one directory; FileExistsError when
    ``new`` exists.  renameat2(RENAME_NOREPLACE) makes the kernel the
    arbiter; where it is missing, a plain rename after a check (a plain
    rename would silently replace an empty directory)."""
    renameat2 = getattr(_libc, "renameat2", None)
    if renameat2 is not None:
        if renameat2(dir_fd, os.fsencode(old), dir_fd, os.fsencode(new), _RENAME_NOREPLACE) == 0:
            return
        err = ctypes.get_errno()
        if err not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
            raise OSError(err, os.strerror(err), new)
    try:
        os.stat(new, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        pass
    else:
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), new)
    try:
        os.rename(old, new, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except OSError as e:
        if e.errno == errno.ENOTEMPTY:
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), new) from None
        raise


def sync_filesystem(fd: int) -> None:
    """Flush every written file of ``fd``'s filesystem to disk (syncfs(2));
    the engines do not fsync what they write, and a snapshot must be whole
    before it is named complete."""
    syncfs = getattr(_libc, "syncfs", None)
    if syncfs is None or syncfs(fd) != 0:
        os.sync()


def fsync_dir(fd: int) -> None:
    """Make a rename in this directory durable (best effort: some
    filesystems refuse fsync on a directory)."""
    try:
        os.fsync(fd)
    except OSError:
        pass


# -- walking and removing ------------------------------------------------------------

def walk_tree(dir_fd: int) -> Iterator[os.stat_result]:
    """The lstat of every entry below the open directory ``dir_fd``, depth
    first, without following symlinks (an explicit stack: no recursion
    limit on depth)."""
    stack = [os.dup(dir_fd)]
    try:
        while stack:
            fd = stack.pop()
            try:
                for name in os.listdir(fd):
                    try:
                        st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                    except FileNotFoundError:
                        continue
                    yield st
                    if stat.S_ISDIR(st.st_mode):
                        stack.append(open_dir_at(fd, name))
            finally:
                os.close(fd)
    finally:
        for fd in stack:
            os.close(fd)


def remove_tree(parent_fd: int, name: str) -> None:
    """Remove ``name`` (in ``parent_fd``) and everything below it.  Never
    follows a symlink: entries are read with lstat and directories opened
    with O_NOFOLLOW relative to their parent.  A directory whose mode
    forbids the removal (a snapshot keeps the source's modes) is given
    u+rwx first, as it is going anyway."""
    try:
        st = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(name, dir_fd=parent_fd)
        return
    fd = _open_for_removal(parent_fd, name)
    stack = [(parent_fd, name, fd, iter(_unlink_files(fd)))]
    try:
        while stack:
            pfd, dname, fd, subdirs = stack[-1]
            child = next(subdirs, None)
            if child is not None:
                cfd = _open_for_removal(fd, child)
                stack.append((fd, child, cfd, iter(_unlink_files(cfd))))
                continue
            stack.pop()
            os.close(fd)
            os.rmdir(dname, dir_fd=pfd)
    finally:
        for _pfd, _name, fd, _it in stack:
            os.close(fd)


def _open_for_removal(parent_fd: int, name: str) -> int:
    try:
        fd = open_dir_at(parent_fd, name)
    except PermissionError:
        _chmod_nofollow(parent_fd, name, 0o700)
        fd = open_dir_at(parent_fd, name)
    mode = os.fstat(fd).st_mode
    if os.geteuid() != 0 and mode & 0o700 != 0o700:
        os.fchmod(fd, stat.S_IMODE(mode) | 0o700)
    return fd


def _chmod_nofollow(parent_fd: int, name: str, mode: int) -> None:
    """chmod a directory that cannot be opened for reading: through an
    O_PATH descriptor, so a symlink put in its place is not followed."""
    path_fd = os.open(name, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                      dir_fd=parent_fd)
    try:
        os.chmod(f"/proc/self/fd/{path_fd}", mode)
    finally:
        os.close(path_fd)


def _unlink_files(fd: int) -> list[str]:
    """Unlink every non-directory in ``fd``; return the subdirectories."""
    subdirs = []
    for name in os.listdir(fd):
        try:
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            continue
        if stat.S_ISDIR(st.st_mode):
            subdirs.append(name)
        else:
            os.unlink(name, dir_fd=fd)
    return subdirs
