"""POSIX ACLs as rsync -A carries them: a small value type, two backends
(pylibacl when importable, else the kernel's raw ``system.posix_acl_*``
xattrs), and the comparisons rsync makes.

How rsync treats an access ACL: its owner, mask (or group, when there is
no mask) and other entries are the file's mode bits, so they travel with
the mode (`p`); only ``group::`` (when a mask exists) and the named entries
are "the ACL" (`a`).  A default ACL is compared whole.  A source without
an extended ACL makes the destination drop its own (access and default).
"""

from __future__ import annotations

import errno
import struct
from dataclasses import dataclass

from .xattrs import ACL_ACCESS_XATTR, ACL_DEFAULT_XATTR, Node

__all__ = ["Acl", "USER_OBJ", "USER", "GROUP_OBJ", "GROUP", "MASK", "OTHER",
           "ACCESS", "DEFAULT", "TYPE_NAMES", "access_differs", "access_to_set",
           "acl_backend", "RawBackend", "LibaclBackend"]

# Tag values of <linux/posix_acl_xattr.h>; libacl uses the same numbers.
USER_OBJ, USER, GROUP_OBJ, GROUP, MASK, OTHER = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
_NAMED = (USER, GROUP)
_UNDEFINED_ID = 0xFFFFFFFF
_XATTR_VERSION = 2

ACCESS, DEFAULT = "access", "default"
TYPE_NAMES = {ACCESS: "ACL_TYPE_ACCESS", DEFAULT: "ACL_TYPE_DEFAULT"}
_XATTR = {ACCESS: ACL_ACCESS_XATTR, DEFAULT: ACL_DEFAULT_XATTR}
_NO_ACL_ERRNOS = frozenset({errno.ENODATA, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS})

_TEXT_TAG = {USER_OBJ: "u", USER: "u", GROUP_OBJ: "g", GROUP: "g", MASK: "m", OTHER: "o"}


@dataclass(frozen=True, slots=True)
class Acl:
    """A whole POSIX ACL: ``(tag, id, perms)`` entries in canonical order
    (by tag, then id); ``id`` is -1 for the unnamed entries, perms 0..7."""

    entries: tuple[tuple[int, int, int], ...]

    @classmethod
    def of(cls, entries) -> Acl:
        return cls(tuple(sorted((t, i if t in _NAMED else -1, p & 7) for t, i, p in entries)))

    @classmethod
    def from_text(cls, text: str) -> Acl:
        """Short text with numeric ids: ``"u::rw-,u:1:r--,g::r--,m::r--,o::---"``."""
        tags = {("u", False): USER_OBJ, ("u", True): USER, ("g", False): GROUP_OBJ,
                ("g", True): GROUP, ("m", False): MASK, ("o", False): OTHER}
        entries = []
        for item in text.replace("\n", ",").split(","):
            if not item.strip():
                continue
            tag, qual, perms = item.strip().split(":")
            bits = sum(b for c, b in zip(perms, (4, 2, 1), strict=True) if c != "-")
            entries.append((tags[tag[0], bool(qual)], int(qual) if qual else -1, bits))
        return cls.of(entries)

    def text(self) -> str:
        def rwx(p: int) -> str:
            return "".join(c if p & b else "-" for c, b in zip("rwx", (4, 2, 1), strict=True))
        return ",".join("%s:%s:%s" % (_TEXT_TAG[t], "" if i < 0 else i, rwx(p))
                        for t, i, p in self.entries)

    def perms(self, tag: int) -> int | None:
        for t, _, p in self.entries:
            if t == tag:
                return p
        return None

    def mode_bits(self) -> int:
        """The rwx bits of the file mode this access ACL sets: the owner's,
        the mask's (the group's when there is none) and the others'."""
        group = self.perms(MASK)
        if group is None:
            group = self.perms(GROUP_OBJ)
        owner, other = self.perms(USER_OBJ), self.perms(OTHER)
        assert owner is not None and group is not None and other is not None  # (a valid access ACL)
        return owner << 6 | group << 3 | other

    def is_minimal(self) -> bool:
        """Only what the mode bits express (or nothing at all)."""
        return all(t in (USER_OBJ, GROUP_OBJ, OTHER) for t, _, _ in self.entries)

    def extended_part(self) -> tuple:
        """What rsync compares for an access ACL: the entries the mode
        cannot express (group:: once a mask stands in for the group bits)."""
        return tuple(e for e in self.entries if e[0] in (USER, GROUP_OBJ, GROUP))

    # -- kernel xattr form --------------------------------------------------
    @classmethod
    def from_xattr(cls, data: bytes) -> Acl:
        if len(data) < 4 or (len(data) - 4) % 8:
            raise ValueError("bad POSIX ACL xattr length %d" % len(data))
        (version,) = struct.unpack_from("<I", data)
        if version != _XATTR_VERSION:
            raise ValueError("unknown POSIX ACL xattr version %d" % version)
        return cls.of((t, -1 if i == _UNDEFINED_ID else i, p)
                      for t, p, i in struct.iter_unpack("<HHI", data[4:]))

    def to_xattr(self) -> bytes:
        return struct.pack("<I", _XATTR_VERSION) + b"".join(
            struct.pack("<HHI", t, p, _UNDEFINED_ID if i < 0 else i) for t, i, p in self.entries)


def _normal(acl: Acl | None) -> Acl | None:
    """None for "no extended ACL" (absent, empty or minimal)."""
    return None if acl is None or acl.is_minimal() else acl


def access_differs(want: Acl | None, have: Acl | None) -> bool:
    """rsync's test for an access ACL (mask and base entries are the mode's)."""
    want, have = _normal(want), _normal(have)
    if want is None or have is None:
        return want is not have
    return want.extended_part() != have.extended_part()


def access_to_set(want: Acl | None, mode: int, old_mode: int) -> Acl:
    """The access ACL rsync writes for source ACL ``want`` and mode ``mode``
    over an entry of mode ``old_mode``: owner, mask and other come from the
    mode, and so does ``group::`` when it equals the mask (rsync does not
    transmit it then).  While setuid/setgid goes off a file, or sticky
    comes onto a dir, rsync writes the mode's group and other bits as 0
    (change_sacl_perms(): nobody gets in before the final chmod, which
    restores them).  A ``group::`` it took from the mode then stays
    ``---`` in rsync, a loss (README, known differences): here it keeps
    the source's, which the mask, still 0, holds off until that chmod."""
    is_dir = (mode & 0o170000) == 0o040000
    shut = (is_dir and mode & 0o1000 and not old_mode & 0o1000) or \
        (not is_dir and old_mode & 0o6000 & ~mode)
    if shut:
        mode &= ~0o077
    u, g, o = (mode >> 6) & 7, (mode >> 3) & 7, mode & 7
    want = _normal(want)
    if want is None:
        return Acl.of([(USER_OBJ, -1, u), (GROUP_OBJ, -1, g), (OTHER, -1, o)])
    by_mode = {USER_OBJ: u, MASK: g, OTHER: o}
    if want.perms(GROUP_OBJ) == want.perms(MASK) and not shut:
        by_mode[GROUP_OBJ] = g
    return Acl.of((t, i, by_mode.get(t, p)) for t, i, p in want.entries)


# -- backends ----------------------------------------------------------------
class RawBackend:
    """The kernel's ``system.posix_acl_*`` xattrs, through l*/f* calls."""

    name = "raw"

    def read(self, node: Node, kind: str) -> Acl | None:
        try:
            data = node.getxattr(_XATTR[kind])
        except OSError as e:
            if e.errno in _NO_ACL_ERRNOS:
                return None
            raise
        try:
            return _normal_or_empty(Acl.from_xattr(data), kind)
        except ValueError as e:
            raise OSError(errno.EINVAL, str(e)) from None

    def write(self, node: Node, kind: str, acl: Acl) -> None:
        node.setxattr(_XATTR[kind], acl.to_xattr())

    def delete_default(self, node: Node) -> None:
        try:
            node.removexattr(ACL_DEFAULT_XATTR)
        except OSError as e:
            if e.errno != errno.ENODATA:
                raise


class LibaclBackend:
    """pylibacl (libacl).  libacl calls follow symlinks, so a path is used
    only in the /proc/self/fd form of a pinned descriptor."""

    name = "libacl"

    def __init__(self, posix1e) -> None:
        self._p = posix1e
        self._bit = ((posix1e.ACL_READ, 4), (posix1e.ACL_WRITE, 2), (posix1e.ACL_EXECUTE, 1))

    def _kind(self, kind: str) -> int:
        return self._p.ACL_TYPE_ACCESS if kind == ACCESS else self._p.ACL_TYPE_DEFAULT

    def read(self, node: Node, kind: str) -> Acl | None:
        p = self._p
        try:
            if kind == ACCESS and node.fd is not None:
                sys_acl = p.ACL(fd=node.fd)
            elif kind == ACCESS:
                sys_acl = p.ACL(file=node.follow_path())
            else:
                sys_acl = p.ACL(filedef=node.follow_path())
        except OSError as e:
            if e.errno in _NO_ACL_ERRNOS:
                return None
            raise
        entries = []
        for entry in sys_acl:
            tag = entry.tag_type
            perms = sum(b for flag, b in self._bit if entry.permset.test(flag))
            entries.append((tag, entry.qualifier if tag in _NAMED else -1, perms))
        return _normal_or_empty(Acl.of(entries), kind)

    def write(self, node: Node, kind: str, acl: Acl) -> None:
        p = self._p
        sys_acl = p.ACL()
        for tag, ident, perms in acl.entries:
            e = sys_acl.append()
            e.tag_type = tag
            if tag in _NAMED:
                e.qualifier = ident
            e.permset.clear()
            for flag, b in self._bit:
                if perms & b:
                    e.permset.add(flag)
        if kind == ACCESS and node.fd is not None:
            sys_acl.applyto(node.fd)
        else:
            sys_acl.applyto(node.follow_path(), self._kind(kind))

    def delete_default(self, node: Node) -> None:
        self._p.delete_default(node.follow_path())


def _normal_or_empty(acl: Acl, kind: str) -> Acl | None:
    # An access ACL of only the mode's entries, or an empty default ACL, is
    # "none"; a default ACL is otherwise kept whole.
    if kind == ACCESS:
        return _normal(acl)
    return acl if acl.entries else None


def acl_backend(which: str | None = None) -> RawBackend | LibaclBackend:
    """A backend: "raw", "libacl", or None for libacl when pylibacl is
    importable, else raw (each run names its own: Tuning.acl_backend)."""
    if which == "raw":
        return RawBackend()
    try:
        import posix1e
    except ImportError:
        if which == "libacl":
            raise
        return RawBackend()
    if which not in (None, "libacl"):
        raise ValueError(which)
    return LibaclBackend(posix1e)
