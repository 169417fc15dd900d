"""Entry attributes for the native engine, as ``rsync -rlptgocAXH`` sets them.

``read_src_meta`` captures what a destination entry must end up with
(:class:`SrcMeta`); ``apply_meta`` brings one destination entry there,
changing only what differs, in rsync's order (set_file_attrs):
lchown -> xattrs -> mtime -> ACLs -> chmod.  When nothing differs no call
that changes anything is made, so the ctime stays as it was.

Errors never raise: they become rsync's message lines (``ctx.errors``) and
set ``ctx.had_error``, which the walker turns into exit code 23.  rsync's
generator/receiver split shows in those lines, so it is kept: an entry the
walker created by a transfer (a new regular file, the temp file) gets one
"receiver" pass; any other entry gets a "generator" pass without xattrs and,
only if its xattrs differ, a "receiver" pass that sets them and retries the
rest (so, as in rsync, a failing ACL is reported twice then).

Itemize letters: ``apply_meta``/``itemize_meta`` return the 7 itemize
columns 4..10 (``ITEMIZE_ATTRS = "tpoguax"``), each the letter when that
attribute differs, else ``.``; ``u`` is always ``.``.  A new entry gives
``"+++++++"``.  The walker prefixes ``YXcs``.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field

from .. import messages as msg
from . import acl as _acl
from . import faults
from .acl import ACCESS, DEFAULT, TYPE_NAMES, Acl, access_differs, access_to_set
from .xattrs import (
    ACL_ACCESS_XATTR,
    ACL_DEFAULT_XATTR,
    NO_XATTR_ERRNOS,
    Node,
    read_xattrs,
    receiver_keeps,
    sender_keeps,
    xattr_changes,
)

__all__ = ["SrcMeta", "MetaContext", "DestState", "read_src_meta", "read_dest", "attr_letters",
           "apply_meta", "bare_transfer", "itemize_meta", "stat_letters", "ITEMIZE_ATTRS",
           "UNCHANGED", "NEW"]

ITEMIZE_ATTRS = "tpoguax"
UNCHANGED = "......."
NEW = "+++++++"
_NS = 1_000_000_000
_PERMS = 0o7777


@dataclass(slots=True)
class SrcMeta:
    """What the destination entry must end up with."""

    mode: int                     # full st_mode: type bits and 07777
    uid: int
    gid: int
    mtime_ns: int
    xattrs: dict[bytes, bytes] = field(default_factory=dict)  # all but system.*
    acl_access: Acl | None = None   # None: no extended access ACL
    acl_default: Acl | None = None  # dirs only; None: no default ACL


class MetaContext:
    """Per-run state: who we are, which filesystems lack xattrs, and where
    error lines go.

    ``errors(line)`` receives each rsync-style line (messages.py words it;
    the caller escapes it as it prints it); without it the lines collect in
    ``messages``.  ``dest_root`` is the destination root as an absolute
    path (rsync's cwd), used to print full names; ``had_error`` means exit
    23; ``src_io_error`` means a source entry could not be read, which in
    rsync also disables --delete.
    """

    def __init__(self, errors: Callable[[str], None] | None = None, *,
                 dest_root: bytes | str | None = None, acl_backend: str | None = None) -> None:
        self.am_root = os.geteuid() == 0
        # rsync's is_in_group(): the supplementary groups and the egid.
        self.groups = frozenset(os.getgroups()) | {os.getegid()}
        self.dest_root = None if dest_root is None else os.fsencode(dest_root)
        self.errors = errors
        self.messages: list[str] = []
        self.had_error = False
        self.src_io_error = False
        self._no_xattr_devs: set[int] = set()
        self.acl = _acl.acl_backend(acl_backend)  # how ACLs are read and written

    def may_set_gid(self, gid: int) -> bool:
        """-g as non-root: only to a group the caller is in (rsync skips the
        others silently, leaving the default group)."""
        return self.am_root or gid in self.groups

    def report(self, role: str, what: str, err: OSError) -> None:
        line = msg.attr_call_failed(role, what, err.errno or 0)
        self.had_error = True
        if self.errors is not None:
            self.errors(line)
        else:
            self.messages.append(line)

    def full_name(self, rel: bytes) -> str:
        """rsync's full_fname(): the quoted path below the destination root."""
        if self.dest_root is None or rel.startswith(b"/"):
            path = rel
        else:
            path = self.dest_root.rstrip(b"/") + b"/" + rel
        return '"%s"' % os.fsdecode(path)

    def bare(self, fd: int, dev: int) -> bool:
        """Whether the open entry ``fd`` (not a symlink, on the filesystem
        ``dev``) has no xattr at all, so no ACL either: the common case,
        which the fast paths of read_src_meta and apply_meta take.  False
        on a read error too (the general path then reads it again, and
        reports it)."""
        if dev in self._no_xattr_devs:
            return True
        try:
            return not os.listxattr(fd)
        except OSError:
            return False

    def list_xattr_names(self, node: Node, st: os.stat_result) -> list[bytes]:
        """The entry's xattr names, [] on a filesystem without xattrs (then
        remembered per device, so the next entries cost no syscall)."""
        if st.st_dev in self._no_xattr_devs:
            return []
        try:
            return node.listxattr()
        except OSError as e:
            if e.errno not in NO_XATTR_ERRNOS:
                raise
            if not node.is_link:  # some filesystems refuse only on symlinks
                self._no_xattr_devs.add(st.st_dev)
            return []


# -- reading ------------------------------------------------------------------
def _node(mode: int, fd: int | None, dirfd: int, name: bytes) -> Node:
    # A symlink is always addressed by name with the l* calls, never an fd.
    is_link = stat.S_ISLNK(mode)
    return Node(fd=None if is_link else fd, dirfd=dirfd, name=name, is_link=is_link)


def read_src_meta(st: os.stat_result, *, fd: int | None, dirfd: int, name: bytes,
                  ctx: MetaContext,
                  path: bytes | Callable[[], bytes] | None = None) -> SrcMeta | None:
    """The attributes of a source entry (``st`` is its lstat).  Reads the
    xattrs and ACLs through ``fd`` when given, else via ``dirfd``/``name``
    without following a symlink.  One listxattr call when it has none.

    On a read error it reports the line rsync's sender prints (``path`` is
    the source path as rsync shows it, e.g. ``/abs/src/./f``, or a function
    that makes it: it is only needed for a message), sets
    ``ctx.src_io_error`` and returns None: rsync then leaves the entry out
    of the transfer and skips deletions.
    """
    if fd is not None and not stat.S_ISLNK(st.st_mode) and ctx.bare(fd, st.st_dev):
        return SrcMeta(st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns, {})
    node = _node(st.st_mode, fd, dirfd, name)

    def shown() -> str:
        where = path() if callable(path) else path
        return os.fsdecode(where if where is not None else name)
    try:
        try:
            names = ctx.list_xattr_names(node, st)
        except OSError as e:
            _source_failed(ctx, msg.llistxattr_call(f'"{shown()}"'), e)
            return None
        try:
            xattrs = read_xattrs(node, names, sender_keeps)
        except OSError as e:
            _source_failed(ctx, msg.lgetxattr_call(f'"{shown()}"', e.xattr_name),  # type: ignore[attr-defined]
                           e)
            return None
        acls: dict[str, Acl | None] = {ACCESS: None, DEFAULT: None}
        for kind, xname in ((ACCESS, ACL_ACCESS_XATTR), (DEFAULT, ACL_DEFAULT_XATTR)):
            # Only a listed ACL xattr is worth a read; symlinks have none.
            if xname in names and not node.is_link and (
                    kind == ACCESS or stat.S_ISDIR(st.st_mode)):
                try:
                    acls[kind] = ctx.acl.read(node, kind)
                except OSError as e:
                    _source_failed(ctx, msg.xacl_get_call(shown(), TYPE_NAMES[kind]), e)
                    return None
    finally:
        node.close()
    return SrcMeta(st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns,
                   xattrs, acls[ACCESS], acls[DEFAULT])


def _source_failed(ctx: MetaContext, what: str, err: OSError) -> None:
    ctx.report("sender", what, err)
    ctx.src_io_error = True
    return None


@dataclass(slots=True)
class DestState:
    """What the destination entry has now, as far as rsync compares it."""

    st: os.stat_result
    xattrs: dict[bytes, bytes] | None  # None: unreadable, left alone
    acl_ok: bool                       # False: ACLs unreadable, left alone
    acl_access: Acl | None = None
    acl_default: Acl | None = None


def read_dest(ctx: MetaContext, node: Node, st: os.stat_result, role: str,
               rel: bytes) -> DestState:
    dest = DestState(st, None, False)
    try:
        names = ctx.list_xattr_names(node, st)
    except OSError as e:
        ctx.report(role, msg.llistxattr_call(ctx.full_name(rel)), e)
        return dest
    try:
        dest.xattrs = read_xattrs(node, names, lambda n: receiver_keeps(n, ctx.am_root))
    except OSError as e:
        ctx.report(role, msg.lgetxattr_call(ctx.full_name(rel), getattr(e, "xattr_name", b"")), e)
    if node.is_link:
        return dest
    backend = ctx.acl
    for kind, xname in ((ACCESS, ACL_ACCESS_XATTR), (DEFAULT, ACL_DEFAULT_XATTR)):
        if xname in names and (kind == ACCESS or stat.S_ISDIR(st.st_mode)):
            try:
                acl = backend.read(node, kind)
            except OSError as e:
                ctx.report(role, msg.xacl_get_call(os.fsdecode(rel), TYPE_NAMES[kind]), e)
                return dest
            setattr(dest, "acl_access" if kind == ACCESS else "acl_default", acl)
    dest.acl_ok = True
    return dest


# -- comparing ------------------------------------------------------------------
def _want_xattrs(ctx: MetaContext, src: SrcMeta) -> dict[bytes, bytes]:
    return {n: v for n, v in src.xattrs.items() if receiver_keeps(n, ctx.am_root)}


def _mtime_differs(have_ns: int, want_ns: int, exact: bool) -> bool:
    # rsync compares whole seconds, and nanoseconds too only right after a
    # transfer or checksum check of a regular file (spec §10).
    if exact:
        return have_ns != want_ns
    return have_ns // _NS != want_ns // _NS


def attr_letters(ctx: MetaContext, src: SrcMeta, dest: DestState, seen: _Seen | None = None) -> str:
    """The itemize columns.  ``seen``: what rsync's stat buffer holds after
    its generator pass (see _Seen); None compares with the entry as it was."""
    st = dest.st
    uid, gid, mode = (st.st_uid, st.st_gid, st.st_mode) if seen is None else \
        (seen.uid, seen.gid, seen.mode)
    have_xattrs = dest.xattrs if seen is None or seen.xattrs is _UNREAD else seen.xattrs
    is_link = stat.S_ISLNK(src.mode)
    acl_access = not is_link and dest.acl_ok and access_differs(src.acl_access, dest.acl_access)
    # (default ACLs count only for a source dir, whatever the entry now is)
    acl_default = (stat.S_ISDIR(src.mode) and dest.acl_ok and stat.S_ISDIR(st.st_mode)
                   and src.acl_default != dest.acl_default)
    flags = (
        _mtime_differs(st.st_mtime_ns, src.mtime_ns, False),
        # (a symlink's mode is 0777: it differs only from another type's)
        mode & _PERMS != src.mode & _PERMS,
        ctx.am_root and uid != src.uid,
        gid != src.gid and ctx.may_set_gid(src.gid),
        False,
        acl_access or acl_default,
        have_xattrs is not None and (have_xattrs or src.xattrs)
        and _want_xattrs(ctx, src) != have_xattrs,
    )
    if not any(flags):
        return UNCHANGED
    return "".join(c if f else "." for c, f in zip(ITEMIZE_ATTRS, flags, strict=True))


def stat_letters(ctx: MetaContext, src: SrcMeta, dst_st: os.stat_result) -> str:
    """The itemize columns of what the entry's lstat alone tells (ACL and
    xattr columns blank): for an entry whose ACLs and xattrs rsync does not
    read."""
    return attr_letters(ctx, src, DestState(dst_st, None, False))


_UNREAD = object()  # (_Seen.xattrs: not read after set_file_attrs)


@dataclass(slots=True)
class _Seen:
    """rsync's view of the entry after set_file_attrs(), which it itemizes
    for files and symlinks (dirs and transfers are itemized before): a
    chown re-stats when setuid/setgid was on (so `o`/`g` vanish and `p`
    may appear), and a written access ACL stands for the new rwx bits.
    Its itemize() reads the xattrs only then: after a chown, which took
    away security.capability (so `x` appears, and rsync's receiver puts
    the capability back)."""

    uid: int
    gid: int
    mode: int
    xattrs: object = _UNREAD


def itemize_meta(ctx: MetaContext, src: SrcMeta, dst_st: os.stat_result | None = None, *,
                 dirfd: int, name: bytes, fd: int | None = None,
                 path: bytes | None = None, transfer: bool = False) -> str:
    """The itemize columns "tpoguax" for ``src`` against the destination
    entry as it is, changing nothing.  For a transfer the walker calls this
    on the old destination file before the temp file replaces it (the
    entry may be of another type: it is read as what it is); then xattrs
    it cannot read count as none (rsync's xattr_diff() without them: the
    source's xattrs, if any, show as a change).  ``path``: the entry's
    path below the destination root, for messages (as in apply_meta),
    default ``name``."""
    node = _node(src.mode if dst_st is None else dst_st.st_mode, fd, dirfd, name)
    try:
        if dst_st is None:
            dst_st = node.lstat()
        dest = read_dest(ctx, node, dst_st, "generator", path if path is not None else name)
        if transfer and dest.xattrs is None:
            dest.xattrs = {}
        return attr_letters(ctx, src, dest)
    except OSError:
        return UNCHANGED
    finally:
        node.close()


# -- applying -------------------------------------------------------------------
def apply_meta(ctx: MetaContext, src: SrcMeta | None, dst_st: os.stat_result | None, *,
               dirfd: int, name: bytes, fd: int | None = None, exact_time: bool,
               is_new: bool, path: bytes | Callable[[], bytes] | None = None,
               later: list[Callable[[], None]] | None = None) -> str:
    """Bring the destination entry ``name`` in ``dirfd`` (already of the
    right type; ``fd`` an ordinary open fd of it, if the caller has one) to
    ``src``'s owner, group, xattrs, mtime, ACLs and mode.

    ``dst_st``: its current lstat (None: read it).  ``exact_time``: compare
    mtimes to the nanosecond (after a transfer or checksum check of a
    regular file).  ``is_new``: the caller just created it; a new regular
    file is a transfer's temp file.  ``path``: the entry's path below the
    destination root as rsync prints it (for a transfer, the temp file's),
    default ``name``, or a function that makes it.  ``later``: where the
    receiver's xattr pass goes when rsync's receiver, lagging behind its
    generator, would make it later (the caller runs it while ``dirfd`` is
    still open).  Returns the itemize columns (see the module doc).
    ``src`` None (its source could not be read) leaves the entry alone.
    """
    if src is None:
        return UNCHANGED
    transfer = is_new and stat.S_ISREG(src.mode)
    if transfer and fd is not None and not src.xattrs and src.acl_access is None and \
            bare_transfer(ctx, src, dst_st, fd, exact_time):
        return NEW
    node = _node(src.mode, fd, dirfd, name)
    rel = (path() if callable(path) else path) if path is not None else name
    role = "receiver" if transfer else "generator"
    try:
        if dst_st is None:
            try:
                dst_st = node.lstat()
            except OSError as e:
                ctx.report(role, msg.stat_call(ctx.full_name(rel)), e)
                return UNCHANGED
        dest = read_dest(ctx, node, dst_st, role, rel)
        if transfer:
            _set_attrs(ctx, node, src, dest, "receiver", True, exact_time, rel)
            return NEW
        letters = attr_letters(ctx, src, dest)
        seen = _set_attrs(ctx, node, src, dest, "generator", False, exact_time, rel)
        if letters != UNCHANGED and not stat.S_ISDIR(src.mode):
            # (nothing differed: nothing that _Seen tracks was changed)
            letters = attr_letters(ctx, src, dest, seen)
        if letters[6] == "x":
            if later is None:
                _receiver_pass(ctx, node, src, exact_time, rel)
            else:
                later.append(lambda: _receiver_pass(ctx, None, src, exact_time, rel,
                                                    dirfd=dirfd, name=name))
        return NEW if is_new else letters
    finally:
        node.close()


def bare_transfer(ctx: MetaContext, src: SrcMeta, st: os.stat_result | None, fd: int,
                  exact_time: bool) -> bool:
    """apply_meta for a transfer's temp file when neither side has an xattr
    (nor so an ACL): owner and group, mtime and mode, as _set_attrs sets
    them, through the fd itself (not a Node).  False if that does not hold
    or a call fails: the general path then does (or redoes) it, and
    reports."""
    try:
        if st is None:
            st = os.fstat(fd)
        if not ctx.bare(fd, st.st_dev):
            return False
        uid = src.uid if ctx.am_root and st.st_uid != src.uid else -1
        gid = src.gid if st.st_gid != src.gid and ctx.may_set_gid(src.gid) else -1
        if uid != -1 or gid != -1:
            os.fchown(fd, uid, gid)
            faults.mutated("chown")
            st = os.fstat(fd)  # (a chown clears setuid and setgid)
        if _mtime_differs(st.st_mtime_ns, src.mtime_ns, exact_time):
            os.utime(fd, ns=(st.st_atime_ns, src.mtime_ns))
            faults.mutated("utime")
        if st.st_mode & _PERMS != src.mode & _PERMS:
            os.fchmod(fd, src.mode & _PERMS)
            faults.mutated("chmod")
    except OSError:
        return False
    return True


def _receiver_pass(ctx: MetaContext, node: Node | None, src: SrcMeta, exact_time: bool,
                   rel: bytes, *, dirfd: int = -1, name: bytes = b"") -> None:
    """rsync's receiver sets the xattrs and redoes set_file_attrs (on
    ``node``, or on ``name`` in ``dirfd`` when it comes later)."""
    own = node is None
    if node is None:
        node = _node(src.mode, None, dirfd, name)
    try:
        try:
            st = node.lstat()
        except OSError as e:
            ctx.report("receiver", msg.stat_call(ctx.full_name(rel)), e)
            return
        dest = read_dest(ctx, node, st, "receiver", rel)
        _set_attrs(ctx, node, src, dest, "receiver", True, exact_time, rel)
    finally:
        if own:
            node.close()


def _set_attrs(ctx: MetaContext, node: Node, src: SrcMeta, dest: DestState, role: str,
               with_xattrs: bool, exact_time: bool, rel: bytes) -> _Seen:
    """One set_file_attrs(): only what differs, in rsync's order.  A failed
    chown or utime ends the pass, as in rsync."""
    st = dest.st
    seen = _Seen(st.st_uid, st.st_gid, st.st_mode)
    # 1. owner and group
    uid = src.uid if ctx.am_root and st.st_uid != src.uid else -1
    gid = src.gid if st.st_gid != src.gid and ctx.may_set_gid(src.gid) else -1
    if uid != -1 or gid != -1:
        try:
            node.chown(uid, gid)
            faults.mutated("chown")
        except OSError as e:
            ctx.report(role, msg.chown_call(ctx.full_name(rel), owner=uid != -1), e)
            return seen
        # chown clears setuid/setgid and security.capability: look again.
        dest = read_dest(ctx, node, _restat(node, st), role, rel)
        st = dest.st
        if seen.mode & (stat.S_ISUID | stat.S_ISGID):
            seen = _Seen(st.st_uid, st.st_gid, st.st_mode)
        seen.xattrs = dest.xattrs
    # 2. xattrs
    xattrs_changed = False
    if with_xattrs and dest.xattrs is not None:
        xattrs_changed = _set_xattrs(ctx, node, src, dest.xattrs, role, rel)
    # 3. mtime (the atime is written back as it was, like rsync).  After a
    # successful xattr change rsync writes the mtime even if it is equal.
    if xattrs_changed or _mtime_differs(st.st_mtime_ns, src.mtime_ns, exact_time):
        try:
            node.utime(st.st_atime_ns, src.mtime_ns)
            faults.mutated("utime")
        except OSError as e:
            ctx.report(role, msg.set_times_call(ctx.full_name(rel)), e)
            return seen
    if node.is_link:
        return seen  # symlinks get no ACL and no chmod
    # 4. ACLs; writing the access ACL also writes the rwx bits
    mode = st.st_mode
    if dest.acl_ok:
        mode, written = _set_acls(ctx, node, src, dest, st, role, rel)
        if written:  # rsync's stat buffer takes the rwx bits the ACL wrote
            seen.mode = (seen.mode & ~0o777) | (src.mode & 0o777)
    # 5. mode
    if mode & _PERMS != src.mode & _PERMS:
        try:
            node.chmod(src.mode & _PERMS)
            faults.mutated("chmod")
        except OSError as e:
            ctx.report(role, msg.set_permissions_call(ctx.full_name(rel)), e)
    return seen


def _set_xattrs(ctx: MetaContext, node: Node, src: SrcMeta, have: dict[bytes, bytes],
                role: str, rel: bytes) -> bool:
    """rsync_xal_set(): set what differs, then remove the extra names.
    Returns whether anything was changed."""
    sets, removes = xattr_changes(_want_xattrs(ctx, src), have)
    if not sets and not removes:
        return False
    restore = _grant_write(ctx, node)
    try:
        return _write_xattrs(ctx, node, sets, removes, role, rel)
    finally:
        if restore is not None:
            try:
                node.chmod(restore)
                faults.mutated("chmod")
            except OSError:
                pass


def _grant_write(ctx: MetaContext, node: Node) -> int | None:
    """rsync's set_xattr(): a non-root caller gives an entry it cannot
    write a temporary u+w so the xattrs can change.  Returns the mode to
    put back, or None when nothing was changed."""
    if ctx.am_root or node.is_link:
        return None
    try:
        if os.access(node.follow_path(), os.W_OK):
            return None
        mode = stat.S_IMODE(node.lstat().st_mode)
        node.chmod(mode | stat.S_IWUSR)
    except OSError:
        return None
    faults.mutated("chmod")
    return mode


def _write_xattrs(ctx: MetaContext, node: Node, sets: list[tuple[bytes, bytes]],
                  removes: list[bytes], role: str, rel: bytes) -> bool:
    call = "l" if node.is_link else "f"
    changed = False
    for n, v in sets:
        try:
            node.setxattr(n, v)
            faults.mutated("setxattr")
            changed = True
        except OSError as e:
            ctx.report(role, msg.setxattr_call(call, ctx.full_name(rel), n), e)
    for n in removes:
        try:
            node.removexattr(n)
            faults.mutated("removexattr")
            changed = True
        except OSError as e:
            if e.errno != errno.ENODATA:
                ctx.report(role, msg.removexattr_call(call, ctx.full_name(rel), n), e)
    return changed


def _restat(node: Node, st: os.stat_result) -> os.stat_result:
    """The entry's stat now; ``st`` if it cannot be had (the next call on
    the entry will fail and be reported)."""
    try:
        return node.lstat()
    except OSError:
        return st


def _acl_node(node: Node, rel: bytes) -> tuple[Node, Node | None]:
    """The node rsync sets ACLs through, and the one to close after:
    xacl_set through a held fd or the parent dir's fd and the name -- but
    DST itself, which it has no parent fd for, through an fd it opens once
    for both ACLs (the default ACL still goes on after the access ACL took
    away DST's search permission), or by path (sys_acl_set_file) when it
    cannot open it."""
    if rel != b"." or node.fd is not None:
        return node, None
    try:
        fd = os.open(node.name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                     dir_fd=node.dirfd)
    except OSError:
        return node, None
    held = Node(fd=fd, dirfd=node.dirfd, name=node.name, is_link=False)
    return held, held


def _set_acls(ctx: MetaContext, node: Node, src: SrcMeta, dest: DestState,
              st: os.stat_result, role: str, rel: bytes) -> tuple[int, bool]:
    """Returns the entry's mode afterwards (as rsync's stat buffer has it)
    and whether the access ACL (and with it the rwx bits) was written."""
    backend = ctx.acl
    shown = os.fsdecode(rel)
    mode = st.st_mode
    written = False
    access = access_differs(src.acl_access, dest.acl_access)
    default = stat.S_ISDIR(mode) and src.acl_default != dest.acl_default
    if not access and not default:
        return mode, False
    node, held = _acl_node(node, rel)
    setter = "sys_acl_set_file" if rel == b"." and node.fd is None else "xacl_set"
    try:
        if access:
            acl = access_to_set(src.acl_access, src.mode, mode)
            try:
                backend.write(node, ACCESS, acl)
                faults.mutated("set access ACL")
            except OSError as e:
                # rsync gives up on the default ACL too when this fails.
                ctx.report(role, msg.set_acl_call(setter, shown, TYPE_NAMES[ACCESS]), e)
                return mode, False
            written = True
            try:
                mode = node.lstat().st_mode
            except OSError:  # (by path, into a dir the ACL just shut)
                mode = (mode & ~0o777) | acl.mode_bits()
        if default:
            try:
                if src.acl_default is None:
                    backend.delete_default(node)
                else:
                    backend.write(node, DEFAULT, src.acl_default)
                faults.mutated("set default ACL")
            except OSError as e:
                what = (msg.delete_default_acl_call(shown) if src.acl_default is None
                        else msg.set_acl_call(setter, shown, TYPE_NAMES[DEFAULT]))
                ctx.report(role, what, e)
        return mode, written
    finally:
        if held is not None and held.fd is not None:
            os.close(held.fd)
