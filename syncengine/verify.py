"""Verify: compare two trees with the engine's full notion of sameness.

``iter_differences(src, dst, excludes)`` walks SRC and DST side by side and
yields a :class:`Difference` for every way DST is not what
``rsync -rlptgocAXH --delete --exclude=... SRC DST`` promises it to be:

- entries only in SRC (``missing``) or only in DST (``extra``), and type
  changes (reported once, at the top of the subtree: nothing below is
  compared);
- ``mode`` (suid/sgid/sticky included; not for symlinks), ``uid``, ``gid``,
  ``mtime`` to the nanosecond (every type, dirs and symlinks included);
- regular files: ``size``, then ``content`` byte for byte (with the two
  sha256 digests as values when they differ); symlinks: ``target``;
- ``xattr`` (one difference per name): every namespace but ``system.*``
  (only ``user.*`` when not root), as rsync -X carries them;
- ``acl`` (the access ACL's entries the mode bits cannot express, as rsync
  compares it) and ``default_acl`` (dirs, whole);
- ``links``: hard-link groups among the compared entries (a link to a file
  outside the tree or an excluded one does not count, as with rsync -H).

Paths are bytes, relative to the transfer root as rsync names them (the
rules' path): ``a/b`` for ``SRC/`` (the root itself is ``.``, and its own
attributes are compared), ``src/a/b`` for ``SRC`` (compared with
``DST/src``).  Exclude rules are rsync's; an excluded directory is pruned on
both sides, as rsync neither sends nor deletes it.  Devices, fifos and
sockets in SRC are skipped (no -D), and so is whatever DST has at their
name.

The walk streams: one directory listing at a time, descending in sorted
order; only hard-link bookkeeping (entries with a link count above one)
grows with the tree.  Nothing is followed: every entry is read relative to
its parent's open descriptor with ``O_NOFOLLOW``/l* calls; only the roots
may be symlinks to directories (``SRC/`` and a DST that links to a dir).
"""

from __future__ import annotations

import base64
import datetime
import errno
import hashlib
import io
import os
import stat
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from .treesync.acl import Acl, access_differs
from .treesync.filters import FilterRules
from .treesync.xattrs import ACL_ACCESS_XATTR, ACL_DEFAULT_XATTR, NO_XATTR_ERRNOS, Node, receiver_keeps, sender_keeps

__all__ = ["Difference", "VerifyStats", "VerifyError", "IGNORABLE", "iter_differences",
           "verify_trees", "display_name", "json_name"]

# What ``ignore=`` may name: every attribute a difference names.  "extra"
# drops entries only in DST (a sync without --delete leaves them);
# "content" covers size and content, "size" only the size (files of other
# sizes are then told apart by their content); "acl" covers both ACLs.
IGNORABLE = ("mode", "uid", "gid", "mtime", "size", "content", "target", "xattr", "acl", "links",
             "extra")

_TYPE_NAMES = {stat.S_IFREG: "file", stat.S_IFDIR: "dir", stat.S_IFLNK: "symlink",
               stat.S_IFIFO: "fifo", stat.S_IFSOCK: "socket", stat.S_IFCHR: "chardev",
               stat.S_IFBLK: "blockdev"}
_SPECIAL = frozenset({stat.S_IFIFO, stat.S_IFSOCK, stat.S_IFCHR, stat.S_IFBLK})
_CHUNK = 1 << 20
_OPEN_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
_OPEN_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class VerifyError(ValueError):
    """The comparison cannot start (e.g. SRC does not exist): a usage error."""


# -- showing names ----------------------------------------------------------------

def display_name(name: bytes | str) -> str:
    """A name as one readable line: valid UTF-8 as is, every other byte and
    every control character as ``\\xNN``, a backslash as ``\\\\`` (so the
    text stays unambiguous)."""
    raw = os.fsencode(name) if isinstance(name, str) else name
    out = []
    for ch in raw.decode("utf-8", "surrogateescape"):
        code = ord(ch)
        if 0xDC80 <= code <= 0xDCFF:
            out.append("\\x%02x" % (code - 0xDC00))
        elif ch == "\\":
            out.append("\\\\")
        elif code < 0x20 or 0x7F <= code < 0xA0:
            out.append("\\x%02x" % code)
        else:
            out.append(ch)
    return "".join(out)


def json_name(key: str, name: bytes | str | None) -> dict[str, Any]:
    """``{key: text}`` for JSON, plus ``{key_b64: base64}`` of the raw bytes
    when they are not valid UTF-8 (the text then has U+FFFD in their
    place).  A str is taken as ``os.fsdecode`` made it (surrogate escapes)."""
    if name is None:
        return {key: None}
    raw = os.fsencode(name) if isinstance(name, str) else bytes(name)
    try:
        return {key: raw.decode("utf-8")}
    except UnicodeDecodeError:
        return {key: raw.decode("utf-8", "replace"),
                f"{key}_b64": base64.b64encode(raw).decode("ascii")}


def _show_bytes(value: bytes) -> str:
    """An xattr value: quoted text when it is short printable UTF-8, else hex."""
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and len(text) <= 80 and text.isprintable():
        return "'%s'" % text.replace("\\", "\\\\").replace("'", "\\'")
    shown = value[:32].hex()
    return f"0x{shown}{'…' if len(value) > 32 else ''} ({len(value)} bytes)"


def _show_time(ns: int) -> str:
    seconds, frac = divmod(ns, 1_000_000_000)
    when = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    return f"{when:%Y-%m-%dT%H:%M:%S}.{frac:09d}Z"


def _show_delta(ns: int) -> str:
    if abs(ns) < 1000:
        return f"{ns:+d} ns"
    if abs(ns) < 1_000_000_000:
        return f"{ns / 1e9:+.9f} s"
    return f"{ns / 1e9:+.3f} s"


# -- differences --------------------------------------------------------------------

_LABELS = {"type": "type", "mode": "mode", "uid": "owner (uid)", "gid": "group (gid)",
           "mtime": "mtime", "size": "size", "content": "content",
           "target": "symlink target", "acl": "ACL", "default_acl": "default ACL",
           "links": "hard links"}
_PLURAL = frozenset({"links"})


@dataclass(frozen=True)
class Difference:
    """One way DST differs from SRC at ``path``.

    ``attribute`` is one of ``missing`` (only in SRC), ``extra`` (only in
    DST), ``type``, ``mode``, ``uid``, ``gid``, ``mtime``, ``size``,
    ``content``, ``target``, ``xattr`` (``name`` is the xattr's name),
    ``acl``, ``default_acl``, ``links`` or ``error`` (an entry that could
    not be read; the message is the value on its side).  ``src``/``dst``
    are the values on each side, None for "absent": a type name for
    missing/extra/type, ints for mode/uid/gid/mtime (ns)/size, sha256 hex
    digests for content, bytes for targets and xattr values, ACL text, and
    for links the path of the first entry (in walk order) sharing the
    inode, None when it is not linked to an earlier one.
    """

    path: bytes
    attribute: str
    src: Any
    dst: Any
    name: bytes | None = None

    def __str__(self) -> str:
        where = display_name(self.path)
        a, s, d = self.attribute, self.src, self.dst
        if a == "missing":
            return f"{where}: only in SRC ({s})"
        if a == "extra":
            return f"{where}: only in DST ({d})"
        if a == "error":
            side, message = ("SRC", s) if s is not None else ("DST", d)
            return f"{where}: cannot read in {side}: {message}"
        if a == "xattr":
            def show(v: bytes | None) -> str:
                return "(absent)" if v is None else _show_bytes(v)
            return (f"{where}: xattr {display_name(self.name or b'')} differs: "
                    f"SRC {show(s)}, DST {show(d)}")
        if a == "mode":
            s_text, d_text = f"{s:04o}", f"{d:04o}"
        elif a == "mtime":
            return (f"{where}: mtime differs: SRC {_show_time(s)}, DST {_show_time(d)} "
                    f"(DST {_show_delta(d - s)})")
        elif a == "size":
            s_text, d_text = f"{s} bytes", f"{d} bytes"
        elif a == "content":
            s_text, d_text = f"sha256 {s[:16]}…", f"sha256 {d[:16]}…"
        elif a == "target":
            s_text, d_text = (f"-> '{display_name(v)}'" for v in (s, d))
        elif a in ("acl", "default_acl"):
            s_text, d_text = (v or "(none)" for v in (s, d))
        elif a == "links":
            s_text, d_text = (f"same file as {display_name(v)}" if v is not None
                              else "not linked to an earlier entry" for v in (s, d))
        else:
            s_text, d_text = str(s), str(d)
        verb = "differ" if a in _PLURAL else "differs"
        return f"{where}: {_LABELS.get(a, a)} {verb}: SRC {s_text}, DST {d_text}"

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready ``{"event": "difference", ...}``: names and bytes
        values as text, with a ``*_b64`` field beside each that is not valid
        UTF-8 (see :func:`json_name`)."""
        out: dict[str, Any] = {"event": "difference", **json_name("path", self.path),
                               "attribute": self.attribute}
        if self.name is not None:
            out.update(json_name("name", self.name))
        for side, value in (("src", self.src), ("dst", self.dst)):
            if isinstance(value, bytes):
                out.update(json_name(side, value))
            else:
                out[side] = value
        out["message"] = str(self)
        return out


@dataclass
class VerifyStats:
    """How far the walk got: entries compared (pairs), bytes of content
    compared, and the entry being looked at."""

    entries: int = 0
    bytes_compared: int = 0
    differences: int = 0
    current: bytes = b""


# -- reading one side ----------------------------------------------------------------

class _Entry:
    """One entry on one side: its lstat and how to reach it without
    following it (an open fd for a root directory, else parent fd + name)."""

    __slots__ = ("st", "dirfd", "name", "fd")

    def __init__(self, st: os.stat_result, dirfd: int, name: bytes, fd: int | None = None):
        self.st, self.dirfd, self.name, self.fd = st, dirfd, name, fd

    @property
    def fmt(self) -> int:
        return stat.S_IFMT(self.st.st_mode)

    def node(self) -> Node:
        return Node(fd=self.fd, dirfd=self.dirfd, name=self.name,
                    is_link=stat.S_ISLNK(self.st.st_mode))

    def open_dir(self) -> int:
        if self.fd is not None:
            return os.dup(self.fd)
        fd = os.open(self.name, _OPEN_DIR, dir_fd=self.dirfd)
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) != (self.st.st_dev, self.st.st_ino):
            os.close(fd)
            raise OSError(errno.ESTALE, "changed during the comparison")
        return fd

    def open_file(self) -> io.BufferedReader:
        if self.fd is not None:
            fd = os.open(f"/proc/self/fd/{self.fd}", os.O_RDONLY | os.O_CLOEXEC)
        else:
            fd = os.open(self.name, _OPEN_FILE, dir_fd=self.dirfd)
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) != (self.st.st_dev, self.st.st_ino):
            os.close(fd)
            raise OSError(errno.ESTALE, "changed during the comparison")
        return open(fd, "rb")


def _xattrs_and_acls(entry: _Entry, am_root: bool, want_x: bool, want_acl: bool
                     ) -> tuple[dict[bytes, bytes], Acl | None, Acl | None]:
    node = entry.node()
    try:
        names = node.listxattr()
    except OSError as e:
        if e.errno not in NO_XATTR_ERRNOS:
            raise
        names = []
    xattrs: dict[bytes, bytes] = {}
    if want_x:
        for name in names:
            if sender_keeps(name) and receiver_keeps(name, am_root):
                try:
                    xattrs[name] = node.getxattr(name)
                except OSError as e:
                    if e.errno != errno.ENODATA:
                        raise
    access = default = None
    if want_acl and not node.is_link:
        if ACL_ACCESS_XATTR in names:
            access = _read_acl(node, ACL_ACCESS_XATTR)
            if access is not None and access.is_minimal():
                access = None
        if ACL_DEFAULT_XATTR in names and stat.S_ISDIR(entry.st.st_mode):
            default = _read_acl(node, ACL_DEFAULT_XATTR)
            if default is not None and not default.entries:
                default = None
    return xattrs, access, default


def _read_acl(node: Node, xname: bytes) -> Acl | None:
    try:
        data = node.getxattr(xname)
    except OSError as e:
        if e.errno == errno.ENODATA or e.errno in NO_XATTR_ERRNOS:
            return None
        raise
    try:
        return Acl.from_xattr(data)
    except ValueError as e:
        raise OSError(errno.EINVAL, f"unreadable ACL: {e}") from None


def _digest(f: io.BufferedReader) -> str:
    f.seek(0)
    return hashlib.file_digest(f, "sha256").hexdigest()


# One name to compare: (path, SRC entry, DST entry); a side is None when absent.
_Pair = tuple[bytes, _Entry | None, _Entry | None]


# -- the walk ------------------------------------------------------------------------

class _Walk:
    def __init__(self, rules: FilterRules, ignore: frozenset[str],
                 on_progress: Callable[[VerifyStats], None] | None) -> None:
        self.rules = rules
        self.ignore = ignore
        self.on_progress = on_progress
        self.stats = VerifyStats()
        self.am_root = os.geteuid() == 0
        # Hard-link bookkeeping: (dev, ino) -> first path with that inode,
        # per side, for entries with more than one link.
        self.leaders: tuple[dict[tuple[int, int], bytes], dict[tuple[int, int], bytes]] = ({}, {})
        self.compared: set[tuple[int, int, int, int]] = set()

    # Each side's entries of one directory, as {name: lstat}.
    @staticmethod
    def _listing(dirfd: int) -> dict[bytes, os.stat_result]:
        out = {}
        for name in os.listdir(dirfd):
            raw = os.fsencode(name)
            try:
                out[raw] = os.stat(raw, dir_fd=dirfd, follow_symlinks=False)
            except FileNotFoundError:
                continue  # vanished since the listing
        return out

    def _excluded(self, rel: bytes, st: os.stat_result) -> bool:
        return self.rules.excluded(rel, stat.S_ISDIR(st.st_mode))

    def run(self, top: list[tuple[bytes, _Entry | None, _Entry | None]]
            ) -> Iterator[Difference]:
        """Compare each (rel, src entry, dst entry) of ``top``, descending
        into directories present on both sides."""
        yield from self._pairs(top, None)

    def _pairs(self, items: Iterable[_Pair], frame_fds: list[int] | None) -> Iterator[Difference]:
        # An explicit stack of (iterator over pairs, fds to close when done):
        # depth costs two descriptors per level, no Python recursion.
        stack: list[tuple[Iterator[_Pair], list[int] | None]] = [(iter(items), frame_fds)]
        try:
            while stack:
                it, fds = stack[-1]
                item = next(it, None)
                if item is None:
                    stack.pop()
                    for fd in fds or ():
                        os.close(fd)
                    continue
                rel, s, d = item
                child: tuple[Iterator[_Pair], list[int]] | None = None
                for diff in self._compare(rel, s, d):
                    if diff is _DESCEND:
                        assert s is not None and d is not None  # (_DESCEND: a dir on both sides)
                        opened = self._open_children(rel, s, d)
                        if isinstance(opened, Difference):
                            self.stats.differences += 1
                            yield opened
                        else:
                            child = opened
                    else:
                        self.stats.differences += 1
                        yield diff
                if child is not None:
                    stack.append(child)
        finally:  # the consumer may stop early: close what is still open
            for _it, fds in stack:
                for fd in fds or ():
                    os.close(fd)

    def _open_children(self, rel: bytes, s: _Entry, d: _Entry
                       ) -> Difference | tuple[Iterator[_Pair], list[int]]:
        fds: list[int] = []
        try:
            for side, entry in (("SRC", s), ("DST", d)):
                try:
                    fds.append(entry.open_dir())
                    listing = self._listing(fds[-1])
                except OSError as e:
                    for fd in fds:
                        os.close(fd)
                    return _error(rel, side, e)
                if side == "SRC":
                    s_list = listing
                else:
                    d_list = listing
        except BaseException:
            for fd in fds:
                os.close(fd)
            raise
        sfd, dfd = fds
        prefix = b"" if rel == b"." else rel + b"/"

        def pairs() -> Iterator[_Pair]:
            for name in sorted(s_list.keys() | d_list.keys()):
                crel = prefix + name
                sst, dst_ = s_list.get(name), d_list.get(name)
                if sst is not None and self._excluded(crel, sst):
                    sst = None
                if dst_ is not None and self._excluded(crel, dst_):
                    dst_ = None
                if sst is None and dst_ is None:
                    continue
                yield (crel, None if sst is None else _Entry(sst, sfd, name),
                       None if dst_ is None else _Entry(dst_, dfd, name))
        return pairs(), fds

    def _compare(self, rel: bytes, s: _Entry | None, d: _Entry | None) -> Iterator[Any]:
        stats = self.stats
        stats.current = rel
        if s is not None and s.fmt in _SPECIAL:
            return  # rsync without -D skips it and leaves DST's entry alone
        if s is None:
            if d is not None and "extra" not in self.ignore:
                yield Difference(rel, "extra", None, _TYPE_NAMES.get(d.fmt, "unknown"))
            return
        if d is None:
            yield Difference(rel, "missing", _TYPE_NAMES.get(s.fmt, "unknown"), None)
            return
        stats.entries += 1
        if self.on_progress is not None:
            self.on_progress(stats)
        if s.fmt != d.fmt:
            yield Difference(rel, "type", _TYPE_NAMES.get(s.fmt, "unknown"),
                             _TYPE_NAMES.get(d.fmt, "unknown"))
            return
        ss, ds = s.st, d.st
        ignore = self.ignore
        if s.fmt != stat.S_IFLNK and "mode" not in ignore \
                and stat.S_IMODE(ss.st_mode) != stat.S_IMODE(ds.st_mode):
            yield Difference(rel, "mode", stat.S_IMODE(ss.st_mode), stat.S_IMODE(ds.st_mode))
        if "uid" not in ignore and ss.st_uid != ds.st_uid:
            yield Difference(rel, "uid", ss.st_uid, ds.st_uid)
        if "gid" not in ignore and ss.st_gid != ds.st_gid:
            yield Difference(rel, "gid", ss.st_gid, ds.st_gid)
        if "mtime" not in ignore and ss.st_mtime_ns != ds.st_mtime_ns:
            yield Difference(rel, "mtime", ss.st_mtime_ns, ds.st_mtime_ns)
        if s.fmt == stat.S_IFREG and "content" not in ignore:
            yield from self._content(rel, s, d)
        elif s.fmt == stat.S_IFLNK and "target" not in ignore:
            targets = []
            for side, entry in (("SRC", s), ("DST", d)):
                try:
                    targets.append(os.readlink(entry.name, dir_fd=entry.dirfd))
                except OSError as e:
                    yield _error(rel, side, e)
                    break
            else:
                if targets[0] != targets[1]:
                    yield Difference(rel, "target", targets[0], targets[1])
        yield from self._attributes(rel, s, d)
        if s.fmt != stat.S_IFDIR and "links" not in ignore:
            leaders: list[bytes | None] = []
            for i, st in ((0, ss), (1, ds)):
                leader = None
                if st.st_nlink > 1:
                    leader = self.leaders[i].setdefault((st.st_dev, st.st_ino), rel)
                leaders.append(None if leader == rel else leader)
            if leaders[0] != leaders[1]:
                yield Difference(rel, "links", leaders[0], leaders[1])
        if s.fmt == stat.S_IFDIR:
            yield _DESCEND

    def _content(self, rel: bytes, s: _Entry, d: _Entry) -> Iterator[Difference]:
        ss, ds = s.st, d.st
        if ss.st_size != ds.st_size and "size" not in self.ignore:
            yield Difference(rel, "size", ss.st_size, ds.st_size)
            return
        if (ss.st_dev, ss.st_ino) == (ds.st_dev, ds.st_ino):
            return  # one and the same file
        key = (ss.st_dev, ss.st_ino, ds.st_dev, ds.st_ino)
        if key in self.compared:
            return  # another link of this pair was compared already
        side = "SRC"
        try:
            with s.open_file() as fs:
                side = "DST"
                with d.open_file() as fd:
                    side = "SRC or DST"
                    while True:
                        a = fs.read(_CHUNK)
                        b = fd.read(_CHUNK)
                        self.stats.bytes_compared += len(a)
                        if a != b:
                            yield Difference(rel, "content", _digest(fs), _digest(fd))
                            return
                        if not a:
                            break
        except OSError as e:
            yield _error(rel, side, e)
            return
        if ss.st_nlink > 1 or ds.st_nlink > 1:
            self.compared.add(key)

    def _attributes(self, rel: bytes, s: _Entry, d: _Entry) -> Iterator[Difference]:
        want_x = "xattr" not in self.ignore
        want_acl = "acl" not in self.ignore
        if not (want_x or want_acl):
            return
        try:
            sx, sa, sd = _xattrs_and_acls(s, self.am_root, want_x, want_acl)
        except OSError as e:
            yield _error(rel, "SRC", e)
            return
        try:
            dx, da, dd = _xattrs_and_acls(d, self.am_root, want_x, want_acl)
        except OSError as e:
            yield _error(rel, "DST", e)
            return
        for name in sorted(sx.keys() | dx.keys()):
            if sx.get(name) != dx.get(name):
                yield Difference(rel, "xattr", sx.get(name), dx.get(name), name=name)
        if access_differs(sa, da):
            yield Difference(rel, "acl", sa.text() if sa else None, da.text() if da else None)
        if sd != dd:
            yield Difference(rel, "default_acl", sd.text() if sd else None,
                             dd.text() if dd else None)


_DESCEND = object()


def _error(rel: bytes, side: str, err: OSError) -> Difference:
    message = err.strerror or str(err)
    return Difference(rel, "error", message if side != "DST" else None,
                      message if side == "DST" else None)


# -- the roots ----------------------------------------------------------------------

def _fs(path: str | bytes | os.PathLike[str]) -> bytes:
    return os.fsencode(path)


def _contents_form(src: bytes) -> bool:
    """rsync copies SRC's contents (and SRC's own attributes onto DST) for
    ``SRC/``, ``SRC/.`` and ``.``."""
    return src.endswith(b"/") or src == b"." or src.endswith(b"/.")


def _top(src: bytes, dst: bytes) -> tuple[list[_Pair], list[int]]:
    """The top-level pair(s) to compare, and the fds opened for them."""
    fds: list[int] = []
    dst_st: os.stat_result | None

    def open_dir(path: bytes, follow: bool = True) -> int:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
                     | (0 if follow else os.O_NOFOLLOW))
        fds.append(fd)
        return fd

    try:
        if _contents_form(src):
            try:
                sst = os.stat(src)
            except OSError as e:
                raise VerifyError(f"source {os.fsdecode(src)}: {e.strerror}") from None
            if not stat.S_ISDIR(sst.st_mode):
                raise VerifyError(f"source {os.fsdecode(src)} is not a directory")
            sfd = open_dir(src)
            s_entry = _Entry(os.fstat(sfd), -1, b".", fd=sfd)
            try:
                dst_st = os.stat(dst)  # a DST that links to a dir is followed
            except FileNotFoundError:
                return [(b".", s_entry, None)], fds
            if not stat.S_ISDIR(dst_st.st_mode):
                d_entry = _Entry(os.lstat(dst), -1, dst)
                return [(b".", s_entry, d_entry)], fds
            dfd = open_dir(dst)
            return [(b".", s_entry, _Entry(os.fstat(dfd), -1, b".", fd=dfd))], fds

        stripped = src.rstrip(b"/")
        parent, _, base = stripped.rpartition(b"/")
        parent = parent or (b"/" if stripped.startswith(b"/") else b".")
        try:
            pfd = open_dir(parent)
            sst = os.stat(base, dir_fd=pfd, follow_symlinks=False)
        except OSError as e:
            raise VerifyError(f"source {os.fsdecode(src)}: {e.strerror}") from None
        s_entry = _Entry(sst, pfd, base)
        # Where the copy is: DST/<base> when DST is a directory (or SRC is
        # one), else DST itself (rsync's single-item rule).
        try:
            dst_st = os.stat(dst)
        except FileNotFoundError:
            dst_st = None
        if (dst_st is not None and stat.S_ISDIR(dst_st.st_mode)) or stat.S_ISDIR(sst.st_mode) \
                or dst.endswith(b"/"):
            try:
                dfd = open_dir(dst)
            except OSError:
                return [(base, s_entry, None)], fds
            d_name = base
        else:
            dparent, _, d_name = dst.rpartition(b"/")
            try:
                dfd = open_dir(dparent or b".")
            except OSError:
                return [(base, s_entry, None)], fds
        try:
            d_st = os.stat(d_name, dir_fd=dfd, follow_symlinks=False)
        except FileNotFoundError:
            return [(base, s_entry, None)], fds
        return [(base, s_entry, _Entry(d_st, dfd, d_name))], fds
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise


def iter_differences(src: str | bytes | os.PathLike[str], dst: str | bytes | os.PathLike[str],
                     excludes: Sequence[str | bytes] = (), *, ignore: Iterable[str] = (),
                     on_progress: Callable[[VerifyStats], None] | None = None,
                     stats: VerifyStats | None = None) -> Iterator[Difference]:
    """Yield the differences between SRC and DST (see the module doc) as
    the walk finds them.  ``ignore`` names attributes not to compare (see
    IGNORABLE); ``on_progress(stats)`` is called for each entry compared;
    pass ``stats`` to read the counts afterwards.  Raises VerifyError
    (a ValueError) when SRC cannot be read at all or an argument is bad."""
    ignore = frozenset(ignore)
    unknown = sorted(ignore - set(IGNORABLE))
    if unknown:
        raise VerifyError(f"cannot ignore {', '.join(unknown)} (choose from {', '.join(IGNORABLE)})")
    rules = FilterRules.from_excludes(list(excludes))
    src_b, dst_b = _fs(src), _fs(dst)
    if not src_b or not dst_b:
        raise VerifyError("SRC and DST must not be empty")
    walk = _Walk(rules, ignore, on_progress)
    if stats is not None:
        walk.stats = stats
    top, fds = _top(src_b, dst_b)
    try:
        rel, s, _d = top[0]
        if rel != b"." and s is not None and rules.excluded(rel, stat.S_ISDIR(s.st.st_mode)):
            return  # rsync sends nothing and touches nothing
        yield from walk.run(top)
    finally:
        for fd in fds:
            try:
                os.close(fd)
            except OSError:
                pass


def verify_trees(src: str | bytes | os.PathLike[str], dst: str | bytes | os.PathLike[str],
                 excludes: Sequence[str | bytes] = (), *, ignore: Iterable[str] = (),
                 on_progress: Callable[[VerifyStats], None] | None = None) -> list[Difference]:
    """Every difference between SRC and DST (``[]``: DST is what
    ``rsync -rlptgocAXH --delete`` with these excludes would make of it)."""
    return list(iter_differences(src, dst, excludes, ignore=ignore, on_progress=on_progress))
