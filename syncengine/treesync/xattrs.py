"""Extended attributes: where they are read and written, which names rsync
-X carries, and bringing a destination entry's set to the source's.

Names and values are bytes.  Every call is addressed so that a symlink
swapped in for an entry is never followed: through the entry's own open fd
when there is one, otherwise through ``/proc/self/fd/DIRFD/NAME`` with the
l* calls (the dir fd pins the parent, the l* call does not follow the last
component).
"""

from __future__ import annotations

import errno
import os
import stat

__all__ = ["Node", "NO_XATTR_ERRNOS", "chmod_nofollow", "sender_keeps", "receiver_keeps",
           "read_xattrs", "xattr_changes", "ACL_ACCESS_XATTR", "ACL_DEFAULT_XATTR"]

ACL_ACCESS_XATTR = b"system.posix_acl_access"
ACL_DEFAULT_XATTR = b"system.posix_acl_default"

# listxattr/getxattr errnos that mean "this filesystem has no xattrs".
NO_XATTR_ERRNOS = frozenset({errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS})

_SYSTEM = b"system."
_USER = b"user."
# rsync's own bookkeeping names (--fake-super etc.) travel only with -XX.
_RSYNC_PRIVATE = b"user.rsync.%"


class Node:
    """One filesystem entry, addressed without following symlinks.

    ``fd`` is an ordinary open descriptor of the entry itself (not O_PATH)
    or None; ``dirfd``/``name`` locate it in its parent.  ``follow_path()``
    hands out a path that may safely be followed (for APIs like libacl's
    that always follow): the entry's pinned fd under /proc/self/fd.
    """

    __slots__ = ("fd", "dirfd", "name", "is_link", "_pin")

    def __init__(self, *, fd: int | None, dirfd: int, name: bytes, is_link: bool) -> None:
        self.fd = fd
        self.dirfd = dirfd
        self.name = name
        self.is_link = is_link
        self._pin: int | None = None

    # -- addressing -------------------------------------------------------
    def _target(self):
        if self.fd is not None:
            return self.fd, {}
        return b"/proc/self/fd/%d/%s" % (self.dirfd, self.name), {"follow_symlinks": False}

    def follow_path(self) -> bytes:
        """A followable path naming exactly this (non-symlink) entry."""
        if self.fd is not None:
            return b"/proc/self/fd/%d" % self.fd
        if self._pin is None:
            fd = os.open(self.name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=self.dirfd)
            if stat.S_ISLNK(os.fstat(fd).st_mode):
                os.close(fd)
                raise OSError(errno.ELOOP, os.strerror(errno.ELOOP))
            self._pin = fd
        return b"/proc/self/fd/%d" % self._pin

    def close(self) -> None:
        if self._pin is not None:
            os.close(self._pin)
            self._pin = None

    # -- metadata calls ---------------------------------------------------
    def lstat(self) -> os.stat_result:
        if self.fd is not None:
            return os.fstat(self.fd)
        return os.stat(self.name, dir_fd=self.dirfd, follow_symlinks=False)

    def chown(self, uid: int, gid: int) -> None:
        if self.fd is not None:
            os.fchown(self.fd, uid, gid)
        else:
            os.chown(self.name, uid, gid, dir_fd=self.dirfd, follow_symlinks=False)

    def utime(self, atime_ns: int, mtime_ns: int) -> None:
        if self.fd is not None:
            os.utime(self.fd, ns=(atime_ns, mtime_ns))
        else:
            os.utime(self.name, ns=(atime_ns, mtime_ns), dir_fd=self.dirfd,
                     follow_symlinks=False)

    def chmod(self, mode: int) -> None:
        if self.fd is not None:
            os.fchmod(self.fd, mode)
        else:
            chmod_nofollow(self.dirfd, self.name, mode)

    def listxattr(self) -> list[bytes]:
        target, kw = self._target()
        return [os.fsencode(n) for n in os.listxattr(target, **kw)]

    def getxattr(self, name: bytes) -> bytes:
        target, kw = self._target()
        return os.getxattr(target, name, **kw)

    def setxattr(self, name: bytes, value: bytes) -> None:
        target, kw = self._target()
        os.setxattr(target, name, value, **kw)

    def removexattr(self, name: bytes) -> None:
        target, kw = self._target()
        os.removexattr(target, name, **kw)


def chmod_nofollow(dirfd: int, name: bytes, mode: int) -> None:
    """chmod ``name`` in ``dirfd`` without following it if it is a symlink.

    glibc does this safely (an O_PATH|O_NOFOLLOW open, then a chmod of that
    very inode through /proc), but Linux cannot change a symlink's mode, and
    Python reports that case as ValueError: it is turned into the OSError
    that lchmod() gives (EOPNOTSUPP), so a symlink swapped in for a
    destination entry is one more reported failure, not a crash."""
    try:
        os.chmod(name, mode, dir_fd=dirfd, follow_symlinks=False)
    except (ValueError, NotImplementedError):
        raise OSError(errno.EOPNOTSUPP, os.strerror(errno.EOPNOTSUPP)) from None


def sender_keeps(name: bytes) -> bool:
    """Names rsync -X sends: every namespace but system.*, without rsync's
    private user.rsync.%* names."""
    return not name.startswith(_SYSTEM) and not name.startswith(_RSYNC_PRIVATE)


def receiver_keeps(name: bytes, am_root: bool) -> bool:
    """Destination names the receiver manages (sets, compares, removes): as
    root all but system.*, otherwise only user.* (the rest is left alone)."""
    if am_root:
        return not name.startswith(_SYSTEM)
    return name.startswith(_USER)


def read_xattrs(node: Node, names: list[bytes], keep) -> dict[bytes, bytes]:
    """Values of the listed names that ``keep`` accepts.  A name that vanished
    since the listing is skipped; other errors raise OSError with
    ``.xattr_name`` set to the name being read."""
    out: dict[bytes, bytes] = {}
    for n in names:
        if not keep(n):
            continue
        try:
            out[n] = node.getxattr(n)
        except OSError as e:
            if e.errno == errno.ENODATA:
                continue
            e.xattr_name = n  # type: ignore[attr-defined]  # (for the caller's message)
            raise
    return out


# rsync's sender sends a value up to this long whole, a longer one as a
# checksum (xattrs.c MAX_FULL_DATUM).
MAX_FULL_DATUM = 32


def xattr_changes(want: dict[bytes, bytes], have: dict[bytes, bytes]
                  ) -> tuple[list[tuple[bytes, bytes]], list[bytes]]:
    """(names to set with their values, names to remove), in rsync's order:
    sets first, by name, then the removals in the order the entry lists
    its names (``have``'s); nothing when the entry has the xattrs
    already.  Otherwise rsync_xal_set() sets every value it got whole,
    the same as the entry's or not (it only compares the long ones, by
    checksum): a refused call shows for each."""
    removes = [n for n in have if n not in want]
    if not removes and all(have.get(n) == v for n, v in want.items()):
        return [], []
    sets = [(n, v) for n, v in sorted(want.items())
            if len(v) <= MAX_FULL_DATUM or have.get(n) != v]
    return sets, removes
