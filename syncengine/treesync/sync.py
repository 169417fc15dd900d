"""The walk: make DST what ``rsync -rlptgocAXH [--delete] [--exclude=P]...
--no-inc-recursive SRC... DST`` would make it.

Two passes over the source, both streaming directory by directory:

1. ``_Census`` is rsync's sender building its file list: it counts entries
   and bytes (progress totals, the single-item rule), reports what cannot
   be read (unlistable dirs, entries whose attributes cannot be read: those
   are left out), and notes for each hard-link group which member comes
   last.  With ``--no-inc-recursive`` any such error suppresses every
   deletion, so it must be known before the first one.  Several sources
   make one list: their entries for the same path are merged as rsync
   merges them (filelist.py), in both passes; what cannot be read is
   reported as rsync's sender reports it, one SRC's whole tree after the
   other's (_SenderReport).
2. ``TreeSync`` is rsync's generator and receiver: it walks source and
   destination side by side in rsync's order (in each dir the non-dirs
   sorted bytewise, then each subdir with its subtree).  A dir gets its
   attributes when it is entered, then its extraneous entries are deleted
   (delete-during, reverse order), then its contents are synced; its mtime
   is put back (and, for a non-root user, its mode) once the contents are
   done, as rsync's final touch-up pass does.

Every destination operation is relative to a directory fd opened with
O_NOFOLLOW, so a symlink swapped into the destination cannot redirect it.
Only hard-link bookkeeping (``_LinkGroup``, a model of rsync's hlink.c) and
the entries that failed are remembered; nothing else about the tree is
held in memory.

rsync's rules for a user other than root are kept too: ``-o`` is ignored,
``-g`` only to groups the user is in (meta.py); a dir whose mode lacks some
of ``u+rwx`` is given them while its contents are written and gets its mode
back at the end only if it lacks ``u+w``; an entry to delete that is ours
but lacks ``u+w`` gets it first.
"""

from __future__ import annotations

import array
import errno
import fcntl
import os
import queue
import stat
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from ..itemize import NEW_COLUMNS, ItemChange
from . import faults
from .acl import ACCESS, DEFAULT, access_differs, get_backend
from .filelist import Merged, merge_listings
from .filters import FilterRules
from .linkdest import Basis, BasisDirs, check_basis_dirs, resolve_basis_dirs
from .messages import locale_codec, rsync_escape, unescape
from .meta import (
    ITEMIZE_ATTRS,
    NEW,
    UNCHANGED,
    MetaContext,
    SrcMeta,
    apply_meta,
    bare_transfer,
    itemize_meta,
    read_src_meta,
    stat_letters,
)
from .transfer import (
    ReadError,
    WriteError,
    copy_data,
    open_temp,
    same_content,
    same_size_content,
    temp_name,
    unlink_quietly,
)
from .writer import BATCH, BATCH_BYTES, FAILED, FATAL, IN_FLIGHT, OK, SKIPPED, Batch, Writer, note_temp, serve
from .xattrs import Node, chmod_nofollow, read_xattrs, receiver_keeps

if TYPE_CHECKING:
    from .precheck import Precheck

__all__ = ["Cancelled", "Stats", "TreeSync", "run_sync"]

_PATH_FLAGS = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_PATH_FOLLOW = _PATH_FLAGS & ~os.O_NOFOLLOW  # for paths given on the command line
_LIST_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
# O_NONBLOCK: a fifo swapped in for a file since the walk's lstat must not
# block the open (_open_file then finds what it is through the fd).
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
_NOATIME = getattr(os, "O_NOATIME", 0)
_RECURSION_LIMIT = 6 * 2048 + 1000
_PROGRESS_INTERVAL = 0.05  # seconds between progress samples without a transfer
_BEHIND_MIN = 1 << 20      # files this big are copied while the walk goes on
_BUSY = 3                  # writer batches under way that keep it busy (see _writer_busy)
_MAX_PENDING = 256         # items in the pending queue (each holds an fd or more)
_ROOM = 256 << 20          # free space beyond that which needs no reservation (_reserve)
# A dry run's stand-in for the fd of a destination dir it would have created:
# the dir is empty, and nothing is ever opened relative to it.
_VIRTUAL = -2
_NO_CHANGE = "." * 9
_FLUSH_EVERY = 200  # entries between the flushes of rsync's generator (its loopchk_limit)

# rsync's words for an entry type in "could not make way for new ...".
_TYPE_WORDS = {stat.S_IFREG: "regular file", stat.S_IFDIR: "directory", stat.S_IFLNK: "symlink"}
_SKIP_DIR = "*** Skipping any contents from this failed directory ***"
# Lines of rsync's sender while it sends files (see TreeSync.err).
_SENDER_LINES = ("rsync: [sender] ", "file has vanished: ")
# Error lines of rsync's generator and receiver (see TreeSync.__init__).
_SERVER_SIDE = ("rsync: [generator]", "rsync: [receiver]", "rsync: [Receiver]",
                "could not make way for new ", _SKIP_DIR)
# The final line rsync prints for a fatal exit code.
_EXIT_LINES = {1: "syntax or usage error", 3: "errors selecting input/output files, dirs",
               11: "error in file IO"}


class Cancelled(Exception):
    """Raised inside the walk when the job was cancelled."""


class Fatal(Exception):
    """An error that ends the run at once (rsync's exit_cleanup)."""

    def __init__(self, exit_code: int, *lines: str) -> None:
        super().__init__(lines[0] if lines else "")
        self.exit_code = exit_code
        self.lines = lines
        self.settled = False  # the files under way before it are dealt with (_unwind)


@dataclass
class Stats:
    entries_total: int = 0
    bytes_total: int = 0         # rsync's total size: st_size of every non-dir listed
    entries_done: int = 0
    # entries of the file list rsync's generator has taken up (its sender's
    # progress says how many are left: "to-chk")
    entries_listed: int = 0
    bytes_done: int = 0          # bytes of transferred files (rsync's progress figure)
    bytes_seen: int = 0          # st_size of the non-dirs processed, transferred or not
    files_transferred: int = 0
    files_deleted: int = 0
    files_skipped: int = 0
    current: bytes = b""


def _join(rel: bytes, name: bytes) -> bytes:
    return rel + b"/" + name if rel and rel != b"." else name


def _intact(copied: int, before: os.stat_result, after: os.stat_result) -> bool:
    """Whether a source was copied whole and did not change meanwhile (its
    fstat before and after the copy)."""
    return copied == before.st_size and (
        after.st_size, after.st_mtime_ns, after.st_ctime_ns) == (
        before.st_size, before.st_mtime_ns, before.st_ctime_ns)


def _sibling(rel: bytes, name: bytes) -> bytes:
    """The path of ``name`` in the dir of ``rel`` (a temp file's, say)."""
    return _join(rel.rpartition(b"/")[0], name)


def _strerror(exc: OSError) -> str:
    return f"{os.strerror(exc.errno)} ({exc.errno})" if exc.errno else str(exc)


def _abs(path: bytes) -> str:
    """A path as rsync's sender messages show it: absolute, as str."""
    return os.fsdecode(os.path.abspath(path))


def _full_fname(path: bytes) -> str:
    """rsync's full_fname() of a path from the command line, as str: a
    relative one joined to the cwd as it was given (slashes and dots
    kept)."""
    if path.startswith(b"/"):
        return os.fsdecode(path)
    return os.fsdecode(os.getcwdb().rstrip(b"/") + b"/" + path)


def _column(letters: str, letter: str, on: bool) -> str:
    """Itemize letters ("tpoguax") with one column set to ``letter`` or "."."""
    i = ITEMIZE_ATTRS.index(letter)
    return letters[:i] + (letter if on else ".") + letters[i + 1:]


def _lstat_at(dirfd: int, name: bytes) -> tuple[os.stat_result | None, int]:
    """lstat relative to a dir fd: (stat, 0), or (None, errno)."""
    if dirfd == _VIRTUAL:
        return None, errno.ENOENT
    try:
        return os.stat(name, dir_fd=dirfd, follow_symlinks=False), 0
    except OSError as exc:
        return None, exc.errno or errno.EIO


def _open_listable(name: bytes, dir_fd: int) -> int:
    """Open a source dir to read its entries as rsync 3.5's sender does: an
    O_PATH handle, then "." inside it, so that listing needs search
    permission as well as read permission."""
    path_fd = os.open(name, _PATH_FLAGS, dir_fd=dir_fd)
    try:
        return os.open(b".", _LIST_FLAGS, dir_fd=path_fd)
    finally:
        os.close(path_fd)


class NotRegularFile(OSError):
    """What _open_file opened is no longer a regular file (a fifo, socket or
    device swapped in since the walk's lstat)."""


def _open_file(name: bytes, dir_fd: int) -> int:
    """Open a regular file for reading, never blocking; anything else is
    NotRegularFile.  O_NOATIME only where it is allowed (it needs
    ownership: EPERM otherwise)."""
    fd = -1
    if _NOATIME:
        try:
            fd = os.open(name, _FILE_FLAGS | _NOATIME, dir_fd=dir_fd)
        except PermissionError as exc:
            if exc.errno != errno.EPERM:
                raise
    if fd < 0:
        fd = os.open(name, _FILE_FLAGS, dir_fd=dir_fd)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise NotRegularFile(errno.EINVAL, "not a regular file")
    return fd


_FS_ENCODING = sys.getfilesystemencoding()
_FS_ERRORS = sys.getfilesystemencodeerrors()


def _cpus() -> int:
    """The CPUs this process may run on (helper processes need a second)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _list_names(dirfd: int) -> list[bytes]:
    """Names in a directory (bytes), from an fd open for reading (listdir
    reads a dup of it: the fd stays open)."""
    return [name.encode(_FS_ENCODING, _FS_ERRORS) for name in os.listdir(dirfd)]


def _reserve(fd: int, size: int, am_root: bool, pending: int) -> bool:
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
            if fs.f_bavail * fs.f_frsize >= 2 * (size + pending) + _ROOM:
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


def _append_only(path: bytes) -> bool:
    """Whether a dir has the append-only flag (chattr +a): entries can be
    made in it, but not renamed or removed."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        flags = array.array("i", [0])
        fcntl.ioctl(fd, _FS_IOC_GETFLAGS, flags, True)
        return bool(flags[0] & _FS_APPEND_FL)
    except OSError:
        return False  # (a filesystem without inode flags)
    finally:
        os.close(fd)


def _xattrs_readable(path: bytes) -> bool:
    try:
        for name in os.listxattr(path, follow_symlinks=False):
            os.getxattr(path, name, follow_symlinks=False)
    except OSError:
        return False
    return True


def _chmod_at(dirfd: int, name: bytes, mode: int) -> None:
    chmod_nofollow(dirfd, name, mode)
    faults.mutated("chmod")


@dataclass
class _Source:
    """One SRC argument: where its top entry lives and what it is called."""

    arg: bytes
    parent: bytes          # the directory the top entry is looked up in
    name: bytes            # b"." for the contents form (SRC/)
    rel: bytes             # its name for filters and messages (b"." for SRC/)
    st: os.stat_result | None = None
    entries: int = 0
    size: int = 0
    index: int = 0         # its place among the SRC arguments (the first wins a clash)
    # Found by the census (pass 1); only entries with errors are kept.
    dropped: set[bytes] = field(default_factory=set)     # left out of the list
    unlistable: set[bytes] = field(default_factory=set)  # dirs whose contents could not be read

    @property
    def contents_form(self) -> bool:
        return self.name == b"."

    def sender_path(self, rel: bytes) -> bytes:
        """The path rsync's sender prints for an entry (before abspath)."""
        if self.contents_form:
            return self.arg.rstrip(b"/") + (b"" if rel == b"." else b"/" + rel)
        return os.path.join(self.parent, rel)

    def opendir_shown(self, rel: bytes) -> str:
        """The path in rsync's sender "opendir ... failed" line: a SRC/ root
        shows as "/abs/src/."."""
        shown = _abs(self.sender_path(rel))
        return shown + "/." if rel == b"." else shown

    def meta_path(self, rel: bytes) -> bytes:
        """The path in rsync's attribute-reading messages: the entries right
        below a SRC/ root keep the "./" of rsync's file names."""
        base = os.path.abspath(self.arg if self.contents_form else self.parent)
        if self.contents_form:
            if rel == b".":
                return base + b"/."
            # rsync names the root's own entries "./NAME", deeper ones "DIR/NAME"
            return base + (b"/./" if b"/" not in rel else b"/") + rel
        return base + b"/" + rel


def _parse_source(arg: bytes) -> _Source:
    if arg.endswith(b"/") or arg == b"." or arg.endswith(b"/."):
        return _Source(arg, arg, b".", b".")
    parent, name = os.path.split(arg)
    return _Source(arg, parent or b".", name, name)


@dataclass(frozen=True)
class _Layer:
    """Another source's part in an entry of the merged file list (see
    filelist.py): a dir of the same path, whose contents merge with the
    winner's; or, at the top, a SRC argument's own entry (``top``), which
    goes into the listing of DST's "." (the first SRC/)."""

    parent: int            # fd of the source dir that holds it
    source: _Source
    name: bytes
    st: os.stat_result | None
    top: bool = False


def _more_layers(entry: Merged) -> tuple[_Layer, ...]:
    """The dirs that merge into a merged entry (layers: (dir fd, source))."""
    return tuple(_Layer(parent, source, entry.name, st) for (parent, source), st in entry.more)


@dataclass
class _Member:
    """One member of a hard-link group, as rsync's hlink.c tracks it."""

    rel: bytes
    dst_path: tuple[bytes, ...]
    src_shown: bytes       # the sender's path, for messages and a retry
    prev: int              # F_HL_PREV: the member before it in the chain, -1 none
    first: bool = False    # FLAG_HLINK_FIRST: done, and the others link to it
    done: bool = False     # FLAG_HLINK_DONE
    skip: bool = False     # FLAG_SKIP_HLINK: its transfer failed
    last: bool = False     # FLAG_HLINK_LAST
    sent: bool = False     # FLAG_FILE_SENT: being transferred (or waiting for one)
    dir_mtime_ns: int = -1  # its source dir's mtime (-1: none), for a late touch-up


class _InSync:
    """In a dir's listing, a file the precheck found in sync (no lstat):
    its size, and the destination file's inode and ctime then."""

    __slots__ = ("size", "ino", "ctime_ns")

    def __init__(self, size: int, ino: int, ctime_ns: int) -> None:
        self.size = size
        self.ino = ino
        self.ctime_ns = ctime_ns


@dataclass
class _LinkGroup:
    """-H bookkeeping for one source inode, a model of rsync's hlink.c
    without incremental recursion.  Members come in the walk's order; the
    first is FIRST and the census knows the last.  A member whose previous
    member is done is linked to the group's FIRST; otherwise it is synced
    on its own, except that a missing one that is not the last waits.  A
    member that gets written (or found identical) becomes FIRST and links
    every member before it in the chain to itself."""

    last: bytes                           # rel of the last member (census)
    last_key: tuple = ()                  # its place in the walk (_Census.walk_key)
    members: list[_Member] = field(default_factory=list)
    meta: SrcMeta | None = None           # the source's attributes, once read (-i)
    size: int = 0                         # and its size
    xattrs_late: bool = False             # the leader's xattrs were fixed in place
                                          # (symlinks: they come later, see _symlink)
    target: bytes | None = None           # a group of symlinks: their target

    @property
    def symlinks(self) -> bool:
        return self.target is not None


@dataclass
class _DirFrame:
    """A destination dir being filled: what its touch-up needs."""

    dst_path: tuple[bytes, ...]
    mode: int
    mtime_ns: int
    waiting_links: int = 0
    # rsync's receiver pass still to come for this dir: (attributes, rel)
    receiver_pass: tuple[SrcMeta, bytes] | None = None
    virtual: bool = False  # a dry run would have created it: it is not there
    shut_out: bool = False  # rsync's touch-up cannot reach it (see _dir)
    fresh: bool = False    # this run made it (or, in a dry run, would): it was empty
    # Made under this temp name (a shelter, see _dir), until it is complete.
    shelter: bytes | None = None
    sheltered: bool = False  # it is, or is inside, a shelter not yet in place


class TreeSync:
    """One run.  ``out`` gets rsync's stdout lines, ``err`` its stderr lines."""

    def __init__(self, sources: Sequence[bytes | str], dest: bytes | str, *, delete: bool,
                 rules: FilterRules, out: Callable[[str], None], err: Callable[[str], None],
                 on_progress: Callable[[Stats], None] | None = None,
                 cancel: threading.Event | None = None,
                 on_item: Callable[[ItemChange], None] | None = None,
                 dry_run: bool = False, link_dest: Sequence[bytes | str] = ()) -> None:
        self.sources = [replace(_parse_source(os.fsencode(s)), index=i)
                        for i, s in enumerate(sources)]
        self.dest = os.fsencode(dest)
        # --link-dest=DIR...: where a new entry may be found identical
        # (linkdest.py); rel -> a transfer's itemize code against DIR's file
        self._basis = BasisDirs(resolve_basis_dirs(link_dest, self.dest)) if link_dest else None
        self._basis_codes: dict[bytes, str] = {}
        # -H leaders a dry run "linked" from DIR: rel -> DIR's file's lstat
        self._dry_linked: dict[bytes, os.stat_result] = {}
        # a new dir found in DIR, to be made: (its rel, DIR's dir's path)
        self._basis_dir: tuple[bytes, bytes] | None = None
        self.delete = delete
        self.rules = rules
        # Lines go out as rsync prints them: names escaped (messages.py).
        # stdout lines and the sender's reach the terminal through rsync's
        # client, which checks them against the locale's charset; the
        # generator and receiver write their errors straight to stderr
        # without that (every byte outside printable ASCII escaped).
        codec = locale_codec()
        self.out = lambda line: self._settled() or out(rsync_escape(line, codec))
        self._err = lambda line: self._settled() or err(rsync_escape(
            line, None if line.startswith(_SERVER_SIDE) else codec))
        self.on_progress = on_progress
        # -i: each change as an ItemChange; -n: nothing is changed, the
        # changes are only reported (dirs it would create are _VIRTUAL).
        self.on_item = on_item
        self.dry_run = dry_run
        self._virtual: set[tuple[bytes, ...]] = set()
        self._root_new = False       # DST was created by this run
        # rsync's generator sends its item lines (-i, -v) to the sender as
        # data and its other lines (deletions, notices) as messages, and
        # flushes both only now and then, messages first (_take_entry):
        # the item lines (and the progress samples after them) not yet
        # flushed.
        self._held: list[Callable[[], None]] = []
        self._next_flush = 0
        self.cancel_event = cancel or threading.Event()
        self.stats = Stats()
        # meta escapes its lines as in the C locale: undo that and escape
        # them for this locale (idempotent if meta escapes them right).
        self.meta = MetaContext(errors=lambda line: self.err(unescape(line)))
        self.am_root = self.meta.am_root
        self.uid = os.geteuid()
        self.partial = False         # rsync's io_error: ends in exit 23
        self.scan_error = False      # the sender could not read something: no deletions
        self.vanished = False
        self._warned_no_delete = False
        self._groups: dict[tuple[int, int], _LinkGroup] = {}  # -H, from the census on
        # Entries of several sources that name the same path: all but one
        # are dropped from the list (filelist.py); their count and bytes.
        self._dups = 0
        self._dup_bytes = 0
        self._late_touchups: list[_DirFrame] = []
        # dirs a link went into after their touch-up (rsync's touch-up of
        # every dir comes at the very end): path -> source mtime
        self._retouch: dict[tuple[bytes, ...], int] = {}
        self._deferred: list[tuple] | None = None  # transfers waiting for a receiver pass
        # xattr passes of files fixed in place in the dir being filled:
        # rsync's receiver makes them after its generator is done with the
        # dir's files (it matters when two names share an inode)
        self._receiver_later: list[Callable[[], None]] | None = None
        # transferred -H members, and their failures (see _sent)
        self._finishing: list[tuple[_LinkGroup, int, OSError | None]] = []
        self._root_fd = -1
        self._curr_dir = b""         # rsync's cwd on the receiving side (messages)
        # rsync's solo_file, one item onto a new name: (its rel, DST's name)
        self._solo: tuple[bytes, bytes] | None = None
        # When DST lies inside a source: what this run made there, which the
        # walk must not take for source entries, and the dirs from that
        # source down to DST as the census saw them (see _read_source_dir).
        self._made: set[tuple[int, int]] | None = None
        self._frozen: dict[tuple[int, int], os.stat_result] = {}
        self._progress_xfr = 0
        self._progress_next = 0.0
        # The current dir's destination entries as its delete pass lstat-ed
        # them (each taken once, at its turn), or None; ``_fresh``: the dir
        # was just made, so it holds only what this run puts there.
        self._dst_stats: dict[bytes, os.stat_result] | None = None
        self._fresh = False
        self._sheltered = False  # (the same, for a shelter: see _dir)
        self._shut_dirs = 0      # dirs being filled that rsync's touch-up shuts (see _dir)
        # Shelters not yet in place: their paths, and the names they have.
        self._shelters: dict[tuple[bytes, ...], bytes] = {}
        # Temp names of links that could not be renamed nor removed (see
        # _link_temp): (dir's dev, ino, name) -> temp name.
        self._stuck_temps: dict[tuple[int, int, bytes], bytes] = {}
        self._precheck: Precheck | None = None  # a re-run's look-ahead (precheck.py)
        self._copier: _Copier | None = None     # copies behind the walk (_copy_behind)
        # in the walk's order: copies behind it, batches of the writer
        # process (writer.py), and dir touch-ups waiting for those
        self._pending: list[_CopyJob | Batch | _TouchUp | _DeleteCheck] = []
        self._writer: Writer | None = None      # an initial copy's writer process
        self._batch: Batch | None = None        # the batch being filled
        self._completing = False

    def err(self, line: str) -> None:
        """A stderr line.  One of rsync's sender while item lines are held
        comes after them, as the sender prints it after the lines it read
        before (the error of a file it sends comes after the progress of
        the one before: see _flush)."""
        if self._held and line.startswith(_SENDER_LINES):
            self._held.append(lambda: self._err(line))
        else:
            self._err(line)

    def _settled(self) -> None:
        """Before a line is printed: the copies behind the walk are
        completed (their own lines come first)."""
        if self._pending:
            self._complete_pending()

    # -- entry point ------------------------------------------------------
    def run(self) -> int:
        # The walk recurses a few frames per dir level; rsync goes as deep
        # as a path fits in 4096 bytes (2048 levels).  Raised for good, not
        # put back: another run may be going on in another thread.
        if sys.getrecursionlimit() < _RECURSION_LIMIT:
            sys.setrecursionlimit(_RECURSION_LIMIT)
        try:
            return self._run()
        except Fatal as fatal:
            for line in fatal.lines:
                self.err(line)
            if fatal.exit_code in _EXIT_LINES and not any(
                    line.startswith("rsync error:") for line in fatal.lines):
                self.err(f"rsync error: {_EXIT_LINES[fatal.exit_code]} (code {fatal.exit_code})")
            return fatal.exit_code
        except Cancelled:
            self.err("rsync error: received SIGINT, SIGTERM, or SIGHUP (code 20)")
            return 20
        finally:
            self._flush()
            self._abort_pending()
            if self._basis is not None:
                self._basis.close_all()
            if self._copier is not None:
                self._copier.stop()
                self._copier = None
            if self._precheck is not None:
                self._precheck.close()
                self._precheck = None
            if self._writer is not None:
                self._writer.close()
                self._writer = None

    def _run(self) -> int:
        self._guard_dest_in_a_source()
        self._start_precheck()
        self._census()
        # rsync's list counts the duplicates it drops: nothing to do for them
        self.stats.entries_total = sum(s.entries for s in self.sources) + self._dups
        self.stats.bytes_total = sum(s.size for s in self.sources)
        self.stats.entries_done, self.stats.bytes_seen = self._dups, self._dup_bytes
        self._transfer()
        self._flush()
        self.stats.entries_listed = self.stats.entries_total  # (the whole list, gone ones too)
        if self.on_progress is not None:
            self.on_progress(self.stats)
        return self._exit_code()

    # -- pass 1: the file list --------------------------------------------------
    def _census(self) -> None:
        """rsync's sender building one file list from every source: each
        source's entries counted (_Census), those of several sources for
        the same path merged as rsync merges them (filelist.py)."""
        # rsync's sender lists one SRC argument's whole tree after the
        # other, reporting as it goes (send_file_list()): what the merged
        # census finds is put in that order (_SenderReport).
        err = self.err
        report = self._sender_report = _SenderReport(err)
        censuses = [_Census(self, source) for source in self.sources]
        if len(censuses) > 1:
            self.err = report.append_line
        try:
            tops: list[_Census] = []
            for census in censuses:
                if not tops:  # (the sources before it are done)
                    report.open_through(census.source.index)
                if census.top():
                    tops.append(census)
            roots = [census for census in tops if census.source.contents_form]
            if roots:
                roots[0]._count(b".", roots[0].source.st)
                self._dups += len(roots) - 1  # (their "." is a duplicate)
            if len(tops) == 1 and roots:
                roots[0].list_root()  # (the common case: one SRC/, walked in rsync's order)
                return
            if tops:  # (merged, the walk is not in rsync's order)
                report.open_through(tops[0].source.index - 1)
            listings = [(census, census.fd, [(census.source.name, census.source.st)], (),
                         {census.source.name: 0})
                        for census in tops if not census.source.contents_form]
            fds = []
            try:
                for census in roots:
                    fd, entries, order = census.root_entries()
                    if fd >= 0:
                        fds.append(fd)
                        listings.append((census, fd, entries, (), order))
                listings.sort(key=lambda listing: listing[0].source.index)
                self._census_merged(listings, b".")
            finally:
                for fd in fds:
                    os.close(fd)
        finally:
            for census in censuses:
                census.close()
            self.err = err
            report.close()

    def _census_merged(self, listings: list[tuple[_Census, int, list, tuple, dict]],
                       rel: bytes) -> None:
        """Count one dir of the merged list: ``listings`` are the sources'
        (census, dir fd, entries, the dir's place in that source's walk,
        each entry's place in the dir) for it, in the order of the
        arguments."""
        places = {(census, name): (*place, (2, order[name]))
                  for census, _fd, _entries, place, order in listings for name in order}
        merged, dropped = merge_listings([((census, fd), entries)
                                          for census, fd, entries, _place, _order in listings])
        for (census, _fd), _name, st in dropped:
            self._dups += 1
            if not stat.S_ISDIR(st.st_mode):  # (rsync's total size counts them too)
                census.source.size += st.st_size
                self._dup_bytes += st.st_size
        for entry in merged:
            entry.layer[0]._count(_join(rel, entry.name), entry.st)
        for entry in merged:
            if not stat.S_ISDIR(entry.st.st_mode):
                continue
            child = _join(rel, entry.name)
            (census, parent), name = entry.layer, entry.name
            if not entry.more:
                census.at(places[census, name])
                census._list(lambda name=name, parent=parent: _open_listable(name, parent), child)
                continue
            inner = []
            try:
                for census, parent in [entry.layer, *(layer for layer, _ in entry.more)]:
                    place = places[census, name]
                    census.at(place)
                    try:
                        fd = _open_listable(name, parent)
                    except OSError as exc:
                        census._unlistable(child, exc)
                        continue
                    inner.append((census, fd, [], place, {}))  # (closed if _entries fails)
                    entries, order = census._entries(fd, child, place)
                    inner[-1] = (census, fd, entries, place, order)
                self._census_merged(inner, child)
            finally:
                for _census, fd, *_rest in inner:
                    os.close(fd)

    def _exit_code(self) -> int:
        if self.partial or self.meta.had_error:
            self.err("rsync error: some files/attrs were not transferred (see previous errors) "
                     "(code 23)")
            return 23
        if self.vanished:
            self.err("rsync warning: some files vanished before they could be transferred "
                     "(code 24)")
            return 24
        return 0

    # -- where things go (rsync's get_local_name) ----------------------------
    def _dest_lopped(self) -> bytes:
        """DST as rsync's get_local_name() names the dir it creates: one
        trailing slash lopped off, then the others trimmed by do_mkdir()
        (trim_trailing_slashes(), in place), which a dry run's returns
        before: ``dst//`` is ``dst``, with -n ``dst/``."""
        path = self.dest[:-1] if self.dest.endswith(b"/") else self.dest
        while not self.dry_run and len(path) > 1 and path.endswith(b"/"):
            path = path[:-1]
        return path

    def _transfer(self) -> None:
        sources = [s for s in self.sources if s.entries]
        total = self.stats.entries_total  # (rsync's file_total: duplicates too)
        try:
            dst_st = os.stat(self.dest)  # the root may be a symlink to a dir: followed
        except FileNotFoundError:
            dst_st = None
        except OSError as exc:
            raise Fatal(3, f'rsync: [Receiver] ERROR: cannot stat destination '
                           f'"{_full_fname(self.dest)}": {_strerror(exc)}') from exc
        if total == 0:
            # Nothing to send: rsync still chdir()s into an existing DST, and
            # creates a missing one given with a trailing slash.
            if dst_st is not None and stat.S_ISDIR(dst_st.st_mode):
                self._into_dir([], "change_dir#1", self.dest)
            elif dst_st is None and self.dest.endswith(b"/"):
                self._mkdir_dest()
            return
        if dst_st is not None and not stat.S_ISDIR(dst_st.st_mode):
            if total > 1:
                raise Fatal(3, "ERROR: destination must be a directory when copying more than 1 file")
            if stat.S_ISDIR(sources[0].st.st_mode):
                raise Fatal(3, "ERROR: cannot overwrite non-directory with a directory")
        if dst_st is not None and stat.S_ISDIR(dst_st.st_mode):
            self._into_dir(sources, "change_dir#1", self.dest)
        elif total != 1 or self.dest.endswith(b"/"):
            self._mkdir_dest()
            self._into_dir(sources, "change_dir#2", self._dest_lopped())
        else:
            # rsync chdir()s to what precedes DST's last slash ("/" for "/x")
            cut = self.dest.rfind(b"/")
            parent = self.dest[:cut] if cut > 0 else b"/" if cut == 0 else b""
            name = self.dest[cut + 1:]
            self._solo = (sources[0].rel, name)
            try:
                parent_fd = os.open(parent or b".", _PATH_FOLLOW)
                os.close(os.open(b".", os.O_PATH | os.O_CLOEXEC, dir_fd=parent_fd))
            except OSError as exc:
                raise Fatal(3, f'rsync: [Receiver] change_dir#3 "{_full_fname(parent or b".")}"'
                               f" failed: {_strerror(exc)}") from exc
            self._curr_dir = os.path.abspath(parent or b".")
            self.meta.dest_root = self._curr_dir
            self._check_basis_dirs()
            try:
                self._root_fd = parent_fd
                self._send_top(sources[0], parent_fd, name)
                self._finish()
            finally:
                self._abort_pending()  # (after an abort: while its dir is open)
                os.close(parent_fd)

    def _start_precheck(self) -> None:
        """On a re-run (DST a non-empty dir) of one source dir, let two
        workers find the files already in sync while the census and the
        walk go on (precheck.py)."""
        if len(self.sources) != 1 or self._made is not None or _cpus() < 2 or \
                os.environ.get("SYNCENGINE_PRECHECK", "1") == "0":
            return
        if self._basis is not None:
            return  # (a file in sync may still be replaced by a link to DIR's)
        source = self.sources[0]
        src_dir = source.arg if source.contents_form else os.path.join(source.parent,
                                                                       source.name)
        dst_dir = self.dest if source.contents_form else os.path.join(self.dest, source.name)
        try:
            if not (stat.S_ISDIR(os.lstat(src_dir).st_mode) or source.contents_form):
                return
            with os.scandir(dst_dir) as it:
                if next(it, None) is None:
                    return
        except (OSError, ValueError):
            return
        try:
            from .precheck import Precheck  # (a re-run's only: 1 ms of import)
            self._precheck = Precheck(src_dir, dst_dir, source.rel, self.rules.excluded,
                                      self.cancel_event)
        except OSError:
            pass  # (no pipe or process to spare: the walk does it all itself)

    def _start_writer(self) -> None:
        """An initial copy (DST new or empty, not append-only) as root: a
        second process writes the new small files (writer.py).  Not for a
        non-root user, whom quotas may stop where the free space says
        nothing (a full disk must stop the run at the file where rsync
        stops), nor while a test counts the mutations of this process
        (faults.py)."""
        if self.dry_run or self.on_item is not None or self._made is not None or \
                not self.am_root or self._precheck is not None or \
                self.stats.entries_total < 2 or faults.armed() or _cpus() < 2 or \
                os.environ.get("SYNCENGINE_WRITER", "1") == "0":
            return
        if self._basis is not None:
            return  # (each new file is first looked up in DIR)
        if not self._root_new:
            try:
                with os.scandir(self.dest) as it:
                    if next(it, None) is not None:
                        return
            except OSError:
                return
            if _append_only(self.dest):
                return  # (a shelter could not take its name there: see _dir)
        try:
            self._writer = Writer(self._serve_writes)
        except OSError:
            pass  # (no process to spare: the walk writes everything)

    def _serve_writes(self, sock, writer: Writer) -> None:
        """The writer process, a fork of this run: open each file it is
        handed, read its attributes and write it with _write_new, keep the
        temp file (noted in shared memory until it is answered for), and
        answer with what happened and the lines it printed (see
        _complete_write).  A file it cannot open or whose attributes it
        cannot read is left to the walk (SKIPPED), which tries again in
        its turn and reports what fails."""
        lines: list[tuple[int, str]] = []
        held: list[bytes] = []
        job_no = [0]
        self.out = lambda line: lines.append((1, line))
        self.err = lambda line: lines.append((2, line))
        self._put_in_place = lambda tmp, dst_parent, dst_name, rel: not held.append(tmp)
        self._note_temp = lambda tmp: note_temp(writer.temps, job_no[0], tmp)

        def write(src_dir: int, dir_fd: int, job: tuple) -> tuple:
            job_no[0], name, dst_name, rel, src_path, size, attrs, direct = job
            mode, uid, gid, mtime_ns, dev = attrs
            lines.clear()
            held.clear()
            self.partial = self.meta.had_error = False
            copied = self.stats.bytes_done
            try:
                src_fd = _open_file(name, src_dir)
            except OSError:
                return (SKIPPED,)
            try:
                if self.meta.bare(src_fd, dev):  # (read_src_meta's fast path, sooner)
                    src_meta = SrcMeta(mode, uid, gid, mtime_ns, {})
                    done = self._write_quick(src_fd, src_meta, dir_fd, dst_name, direct)
                    if done is not None:
                        return OK, done[0], [], 0, done[1], None
                else:  # (the walk's lstat, as far as read_src_meta looks at it)
                    st = os.stat_result((mode, 0, dev, 1, uid, gid, size, 0, 0, 0),
                                        {"st_mtime_ns": mtime_ns})
                    src_meta = read_src_meta(st, fd=src_fd, dirfd=src_dir, name=name,
                                             ctx=self.meta)
                    if src_meta is None:
                        return (SKIPPED,)
                done = self._write_new(src_fd, src_meta, dir_fd, dst_name, rel, src_path,
                                       size=size, direct=direct)
            except Fatal as fatal:
                return FATAL, b"", list(lines), 0, 0, (fatal.exit_code, list(fatal.lines))
            finally:
                os.close(src_fd)
            flags = (1 if self.partial else 0) | (2 if self.meta.had_error else 0)
            return ((OK, held[0], list(lines), flags, self.stats.bytes_done - copied, None)
                    if done else (FAILED, b"", list(lines), flags, 0, None))
        serve(sock, writer.stop, write)

    def _write_quick(self, src_fd: int, src_meta: SrcMeta, dst_parent: int,
                     dst_name: bytes, direct: bool) -> tuple[bytes, int] | None:
        """_write_new's common case in fewer steps, for the writer: a source
        without xattrs copied whole and intact, the temp file's attributes
        set by the fast path of apply_meta.  Returns the temp file (left
        for the walk to rename) and the bytes copied; or None, having left
        no trace, when anything else happens: _write_new then does it all
        again, and reports what fails."""
        try:
            tmp_fd, tmp = open_temp(dst_parent, dst_name, src_meta.mode & 0o7777, direct)
        except OSError:
            return None
        self._note_temp(tmp)
        done = False
        try:
            before = os.fstat(src_fd)
            copied = copy_data(src_fd, tmp_fd, before.st_size)
            done = _intact(copied, before, os.fstat(src_fd)) and \
                bare_transfer(self.meta, src_meta, None, tmp_fd, True)
        except OSError:
            pass
        finally:
            os.close(tmp_fd)
            if not done:
                unlink_quietly(dst_parent, tmp)
                os.lseek(src_fd, 0, os.SEEK_SET)
        return (tmp, copied) if done else None

    def _note_temp(self, tmp: bytes) -> None:
        """A temp file was made (the writer process notes it: see writer.py)."""

    def _mkdir_dest(self) -> None:
        self._root_new = True
        if not self.dry_run:
            try:
                os.mkdir(self.dest, 0o777)
                faults.mutated("mkdir")
            except OSError as exc:
                raise Fatal(11, f'rsync: [Receiver] mkdir "{_full_fname(self._dest_lopped())}" '
                                f"failed: {_strerror(exc)}") from exc
            self._made_here(None, self.dest)
        if self.on_item is not None:
            self.out(f"created directory {os.fsdecode(self._dest_lopped())}")

    def _guard_dest_in_a_source(self) -> None:
        """When DST is a source dir or lies inside one (``src/ src/copy``):
        rsync sends the list it built before it wrote anything, so nothing
        the run makes there is sent (and a copy into itself does not recurse
        without end), and the dirs between that source and DST are sent
        with the attributes they had then, not those the run gave them."""
        dest = os.path.realpath(self.dest)
        for source in self.sources:
            root = os.path.realpath(source.arg)
            if not (dest == root or dest.startswith(root.rstrip(b"/") + b"/")):
                continue
            self._made = set()
            path = root
            for part in [b""] + dest[len(root):].strip(b"/").split(b"/"):
                path = os.path.join(path, part) if part else path
                try:
                    st = os.lstat(path)
                except OSError:
                    break
                self._frozen[(st.st_dev, st.st_ino)] = st

    def _made_here(self, dirfd: int | None, name: bytes) -> None:
        """Remember an entry this run made, when DST lies inside a source:
        rsync sends the list it built before it wrote anything, so what
        the run makes inside a source is not sent (and a copy into itself
        does not recurse without end)."""
        if self._made is None:
            return
        try:
            st = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
        except OSError:
            return
        self._made.add((st.st_dev, st.st_ino))

    def _into_dir(self, sources: list[_Source], how: str, shown: bytes) -> None:
        """Into DST, an existing dir or one just made (``how``: rsync's
        change_dir#1 or #2; ``shown``: DST as its failure shows it)."""
        if self.dry_run and self._root_new:
            root_fd = _VIRTUAL
            self._virtual.add(())
        else:
            try:
                root_fd = os.open(self.dest, _PATH_FOLLOW)
            except OSError as exc:
                raise Fatal(3, f'rsync: [Receiver] {how} "{_full_fname(shown)}" failed: '
                               f"{_strerror(exc)}") from exc
        try:
            try:  # rsync chdir()s into DST: that needs search permission
                if root_fd != _VIRTUAL:
                    os.close(os.open(b".", os.O_PATH | os.O_CLOEXEC, dir_fd=root_fd))
            except OSError as exc:
                raise Fatal(3, f'rsync: [Receiver] {how} "{_full_fname(shown)}" failed: '
                               f"{_strerror(exc)}") from exc
            self._root_fd = root_fd
            self._curr_dir = os.path.abspath(self.dest)
            self.meta.dest_root = self._curr_dir
            self._check_basis_dirs()
            self._start_writer()
            self._send_tops(sources, root_fd)
            self._finish()
        except BaseException as exc:
            self._unwind(exc)  # (while its dir is open)
            raise
        finally:
            if root_fd != _VIRTUAL:
                os.close(root_fd)

    def _send_top(self, source: _Source, dst_parent: int, dst_name: bytes) -> None:
        src_parent = os.open(source.parent, _PATH_FOLLOW)
        try:
            self._entry(src_parent, source.name, source.st, dst_parent, dst_name, source.rel,
                        (dst_name,), source)
        finally:
            os.close(src_parent)

    def _send_tops(self, sources: list[_Source], dst_fd: int) -> None:
        """The merged list into DST: with a SRC/ among the sources, DST is
        its "." (the first SRC/'s attributes), whose entries are the SRC/s'
        contents and the other SRC arguments; otherwise just those."""
        fds = []
        try:
            roots, tops = [], []
            for source in sources:
                try:
                    fd = os.open(source.arg if source.contents_form else source.parent,
                                 _PATH_FOLLOW)
                except OSError as exc:  # gone since the census
                    self._scan_failed(f'rsync: [sender] change_dir "{_abs(source.arg)}" '
                                      f"failed: {_strerror(exc)}")
                    continue
                fds.append(fd)
                if source.contents_form:
                    roots.append(_Layer(fd, source, b".", source.st))
                else:
                    tops.append(_Layer(fd, source, source.name, source.st, top=True))
            if roots:
                root = roots[0]
                self._take_entry()
                self._dir(root.parent, b".", root.st, dst_fd, b".", b".", (), root.source,
                          (*roots[1:], *tops))
                return
            merged, _ = merge_listings([((layer.parent, layer.source), [(layer.name, layer.st)])
                                        for layer in tops])
            # (in rsync's order: the files, then each dir with its contents)
            for entry in sorted(merged, key=lambda entry: stat.S_ISDIR(entry.st.st_mode)):
                (parent, source), name = entry.layer, entry.name
                self._entry(parent, name, entry.st, dst_fd, name, name, (name,), source, None,
                            _more_layers(entry))
        finally:
            for fd in fds:
                os.close(fd)

    def _sent(self, group: _LinkGroup, index: int, failure: OSError | None) -> None:
        """A hard-link member went to rsync's sender and receiver.  Their
        word that it is done (or could not be sent) reaches the generator
        later, which meanwhile goes on; for a small tree, after its whole
        walk.  Until then later members of the group wait for this one.  A
        dry run sends nothing: its generator finishes the member at once
        (recv_generator(), without do_xfers), its links' lines right after
        the member's own."""
        group.members[index].sent = True
        if self.dry_run and failure is None:
            self._finish_hard_link(group, index)
        else:
            self._finishing.append((group, index, failure))

    def _finish_transfers(self) -> None:
        """The transferred hard-link members are done (their waiting members
        are linked to them) or were not sent (rsync's handle_skipped_hlink)."""
        while self._finishing:
            group, index, failure = self._finishing.pop(0)
            if failure is None:
                self._finish_hard_link(group, index)
            else:
                self._skipped_hard_link(group, index, failure)

    def _finish(self) -> None:
        """rsync's end of run: dirs whose touch-up waited for hard links."""
        self._complete_pending()
        self._flush()  # (the generator's end of the list: it waits for the receiver)
        self._finish_transfers()
        for frame in self._late_touchups:
            self._retouch.pop(frame.dst_path, None)
        # (a dir a link could go into has u+w: its mode needs no putting back)
        again = [_DirFrame(path, 0o700, mtime_ns) for path, mtime_ns in self._retouch.items()]
        for frame in [*self._late_touchups, *again]:
            try:
                parent = self._open_dest_dir(frame.dst_path[:-1])
            except OSError:
                continue
            try:
                self._touch_up(parent, frame.dst_path[-1] if frame.dst_path else b".", frame)
            finally:
                self._close_dir(parent)
        self._late_touchups.clear()
        self._retouch.clear()

    # -- one entry ----------------------------------------------------------
    def _entry(self, src_parent: int, name: bytes, st: os.stat_result, dst_parent: int,
               dst_name: bytes, rel: bytes, dst_path: tuple[bytes, ...], source: _Source,
               frame: _DirFrame | None = None, more: tuple[_Layer, ...] = ()) -> None:
        if self.cancel_event.is_set():
            raise Cancelled()
        if rel in source.dropped:
            return
        self._take_entry()
        self.stats.current = rel
        kind = stat.S_IFMT(st.st_mode)
        if kind == stat.S_IFDIR:
            self._dir(src_parent, name, st, dst_parent, dst_name, rel, dst_path, source, more)
            return
        if kind == stat.S_IFREG:
            self._file(src_parent, name, st, dst_parent, dst_name, rel, dst_path, source, frame)
        elif kind == stat.S_IFLNK:
            self._symlink(src_parent, name, st, dst_parent, dst_name, rel, dst_path, source, frame)
        else:
            self.out(f'skipping non-regular file "{os.fsdecode(rel)}"')
            self.stats.files_skipped += 1
        self._done_entry(st)

    def _done_entry(self, st: os.stat_result) -> None:
        self._done(0 if stat.S_ISDIR(st.st_mode) else st.st_size)

    def _done(self, size: int) -> None:
        """An entry is done; ``size`` counts towards the bytes seen."""
        stats = self.stats
        stats.entries_done += 1
        if self._writer is not None and self._writer.unanswered and not stats.entries_done & 7:
            self._writer.receive(block=False)
        if self._pending and self._pending[0].done.is_set():
            self._complete_pending(ready_only=True)
        stats.bytes_seen += size
        if self.on_progress is not None:
            # A sample per transferred file (rsync's progress2 prints those),
            # otherwise one every _PROGRESS_INTERVAL, and a last one (_run).
            if stats.files_transferred != self._progress_xfr:
                self._progress_xfr = stats.files_transferred
            elif time.monotonic() < self._progress_next:
                return
            self._progress_next = time.monotonic() + _PROGRESS_INTERVAL
            if self._held:  # (after the item lines before it, as it is now)
                sample = replace(stats)
                self._held.append(lambda: self.on_progress(sample))
            else:
                self.on_progress(stats)

    def _src_meta(self, st: os.stat_result, src_parent: int, name: bytes, rel: bytes,
                  source: _Source, fd: int | None = None) -> SrcMeta | None:
        return read_src_meta(st, fd=fd, dirfd=src_parent, name=name, ctx=self.meta,
                             path=lambda: source.meta_path(rel))

    # -- directories ----------------------------------------------------------
    def _dir(self, src_parent: int, name: bytes, st: os.stat_result, dst_parent: int,
             dst_name: bytes, rel: bytes, dst_path: tuple[bytes, ...], source: _Source,
             more: tuple[_Layer, ...] = ()) -> None:
        """rsync's recv_generator for a dir, then its contents (with those
        of the other sources' dirs ``more``), then the touch-up."""
        src_meta = self._src_meta(st, src_parent, name, rel, source)
        if src_meta is None:  # unreadable attributes: the sender left it out
            self._done_entry(st)
            return
        dst_st, _ = _lstat_at(dst_parent, dst_name)
        if dst_st is not None and not stat.S_ISDIR(dst_st.st_mode):
            if not self._make_way(dst_parent, dst_name, dst_st, stat.S_IFDIR, self._drel(rel)):
                self._skip_contents(src_parent, name, st, rel, dst_path, source, more)
                return
            dst_st = None
        created = False
        if dst_st is None:
            # rsync's generator itemizes a new dir before it tries to make it
            self._item(self._new_dir_code(src_meta, dst_path, rel), rel, is_dir=True)
        sheltered = self._in_shelter(dst_path)
        shelter = None
        if dst_st is None and self.dry_run:
            created = True
            self._virtual.add(dst_path)
        elif dst_st is None:
            # A new dir below DST (with a writer: an initial copy) is made
            # under a temp name, a shelter, and takes its own name once all
            # in it is complete (_dir_done).  Files in a shelter are written
            # under their own names: a temp file each would only cost a
            # rename (a tenth of a small file's time).  An abort names the
            # shelters (_publish_shelters); after a kill one stays, as a
            # temp file does, until a run with --delete removes it.
            if self._writer is not None and not sheltered and dst_path:
                shelter = temp_name(dst_name)
            try:
                # rsync creates a dir with its source mode (the umask applies).
                while True:
                    try:
                        os.mkdir(shelter or dst_name, stat.S_IMODE(st.st_mode),
                                 dir_fd=dst_parent)
                        break
                    except FileExistsError:
                        if shelter is None:
                            raise
                        shelter = temp_name(dst_name)  # (temp names that clash: another)
                faults.mutated("mkdir")
                created = True
                self._made_here(dst_parent, dst_name)
            except FileExistsError:
                shelter = None
            except OSError as exc:
                self._fail(f"rsync: [generator] recv_generator: mkdir {self._full(rel)} failed: "
                           f"{_strerror(exc)}")
                if self._keeps_xattrs(src_meta) and not self._basis_dir_has_xattrs(
                        src_meta, dst_path, rel):
                    # rsync's receiver still comes to set the new dir's xattrs
                    self._fail(f"rsync: [receiver] stat {self._full(rel)} failed: "
                               f"No such file or directory (2)")
                self._skip_contents(src_parent, name, st, rel, dst_path, source, more)
                return
        mode = stat.S_IMODE(st.st_mode)
        if created and self._basis is not None:
            self._copy_basis_xattrs(rel, mode)
        frame = _DirFrame(dst_path, mode, st.st_mtime_ns, virtual=created and self.dry_run,
                          fresh=created, shelter=shelter,
                          sheltered=created and (sheltered or shelter is not None))
        if shelter is not None:
            self._shelters[dst_path] = shelter
            dst_name = shelter  # (its name until it is complete)
        if self.dry_run:
            gen_meta = self._acl_blind(src_meta, dst_parent, dst_name, rel)
            letters = UNCHANGED if created else self._seen_acl(
                self._letters_of(gen_meta, dst_st, dst_parent, dst_name, rel), src_meta,
                gen_meta)
        else:
            letters = self._set_dir_meta(src_meta, dst_st, dst_parent, dst_name, rel, created,
                                         frame)
        if dst_st is not None and self._root_new and not dst_path:
            self._item(self._new_dir_code(src_meta, dst_path, rel), rel,  # DST, made by this run
                       is_dir=True)
        elif dst_st is not None and letters != UNCHANGED:
            self._item(".d.." + letters, rel, is_dir=True)
        if rel in source.unlistable and all(rel in layer.source.unlistable and not layer.top
                                            for layer in more):
            if self.delete:
                self._delete_extraneous(dst_parent, dst_name, rel, None, frame.virtual)
        else:
            # rsync's touch_up_dirs() goes parents first: a non-root user's
            # dir that gets back a mode without u+w and u+x shuts its owner
            # out before the dirs below it are reached.
            frame.shut_out = self._shut_dirs > 0
            shuts = not self.am_root and not mode & (stat.S_IWUSR | stat.S_IXUSR)
            self._shut_dirs += shuts
            try:
                self._fill_dir(src_parent, name, dst_parent, dst_name, rel, dst_path, source,
                               frame, more)
            finally:
                self._shut_dirs -= shuts
        if self._writer is not None and self._pending and not self.dry_run:
            self._send_batch()  # (after the files the writer has for it)
            self._pending.append(_TouchUp(os.dup(dst_parent), dst_name, frame))
            self._bound_pending()
        else:
            self._dir_done(dst_parent, dst_name, frame)
        self._done_entry(st)

    def _in_shelter(self, dst_path: tuple[bytes, ...]) -> bool:
        """Whether a destination path lies inside a shelter not yet in place."""
        return bool(self._shelters) and any(dst_path[:i] in self._shelters
                                            for i in range(1, len(dst_path)))

    def _dir_done(self, dst_parent: int, dst_name: bytes, frame: _DirFrame) -> None:
        """All of a dir's entries are in: a shelter takes its real name, and
        the dir its touch-up (at the end of the run, with hard links still
        to be made in it)."""
        if frame.shelter is not None:
            dst_name = frame.dst_path[-1]
            try:
                os.rename(frame.shelter, dst_name, src_dir_fd=dst_parent, dst_dir_fd=dst_parent)
                faults.mutated("rename")
            except OSError as exc:  # (someone made that name meanwhile)
                rel = self._drel(b"/".join(frame.dst_path))
                self._fail(f"rsync: [receiver] rename {self._full(_sibling(rel, frame.shelter))}"
                           f' -> "{os.fsdecode(rel)}": {_strerror(exc)}')
            del self._shelters[frame.dst_path]
            frame.shelter = None
        if frame.waiting_links:
            self._late_touchups.append(frame)
        else:
            self._touch_up(dst_parent, dst_name, frame)

    def _publish_shelters(self) -> None:
        """After an abort: the shelters take their real names with what
        they hold (every file in them complete), as rsync's dirs would
        have them."""
        for path, shelter in list(self._shelters.items()):
            try:
                parent = self._open_dest_dir(path[:-1])
            except OSError:
                continue
            try:
                os.rename(shelter, path[-1], src_dir_fd=parent, dst_dir_fd=parent)
            except OSError:
                pass
            finally:
                self._close_dir(parent)
        self._shelters.clear()

    def _set_dir_meta(self, src_meta: SrcMeta, dst_st: os.stat_result | None, dst_parent: int,
                      dst_name: bytes, rel: bytes, created: bool, frame: _DirFrame) -> str:
        """The dir's attributes as rsync's generator sets them when it
        enters the dir (a non-root user's dir gets u+rwx while it is
        filled).  Returns the itemize letters."""
        mode = frame.mode
        gen_meta = self._acl_blind(src_meta, dst_parent, dst_name, rel)
        tweak = not self.am_root and not self._solo and (mode & 0o700) != 0o700
        have = self._dest_xattrs(dst_parent, dst_name) if tweak else None
        if have is not None and have != {n: v for n, v in src_meta.xattrs.items()
                                         if receiver_keeps(n, False)}:
            # rsync's generator sets the attributes, gives the dir u+rwx, and
            # only then its receiver writes the xattrs and sets the
            # attributes again (which takes the u+rwx away).
            letters = apply_meta(self.meta, replace(gen_meta, xattrs=have),
                                 None if created else dst_st, dirfd=dst_parent, name=dst_name,
                                 exact_time=False, is_new=created, path=self._drel(rel))
            self._tweak_dir(dst_parent, dst_name, mode, rel)
            frame.receiver_pass = (src_meta, rel)
            return _column(self._seen_acl(letters, src_meta, gen_meta), "x", True)
        letters = apply_meta(self.meta, gen_meta, None if created else dst_st, dirfd=dst_parent,
                             name=dst_name, exact_time=False, is_new=created, path=self._drel(rel))
        if tweak:
            self._tweak_dir(dst_parent, dst_name, mode, rel)
        return self._seen_acl(letters, src_meta, gen_meta)

    def _fill_dir(self, src_parent: int, name: bytes, dst_parent: int, dst_name: bytes,
                  rel: bytes, dst_path: tuple[bytes, ...], source: _Source,
                  frame: _DirFrame, more: tuple[_Layer, ...] = ()) -> None:
        """The dir's contents: deletions, then its entries."""
        layers, src_fds = self._open_layers(src_parent, name, rel, source, more)
        if not layers:
            return
        try:
            try:
                # (DST itself, as ".", is not looked up again: a mode
                # without u+x, already set, would forbid that, not rsync's
                # work by name in it)
                dst_fd = _VIRTUAL if frame.virtual else os.dup(dst_parent) \
                    if dst_name == b"." else os.open(dst_name, _PATH_FLAGS, dir_fd=dst_parent)
            except OSError as exc:
                self._fail(f"rsync: [generator] opendir {self._full(rel)} failed: "
                           f"{_strerror(exc)}")
                return
            try:
                self._dir_contents(layers, dst_parent, dst_name, dst_fd, rel, dst_path, frame)
                if self._pending:  # before the dir's fd closes and its mtime is set
                    self._complete_pending(dst_fd)
            except BaseException as exc:
                self._unwind(exc)  # (while the dirs' fds are open)
                raise
            finally:
                self._close_dir(dst_fd)
        finally:
            for fd in src_fds:
                os.close(fd)

    def _open_layers(self, src_parent: int, name: bytes, rel: bytes, source: _Source,
                     more: tuple[_Layer, ...], quiet: bool = False,
                     ) -> tuple[list[tuple[int, _Source, list | None]], list[int]]:
        """The sources' dirs whose contents make up a dir of the merged list,
        opened to be listed: [(fd, source, None)]; a SRC argument's own
        entry at the top (a top _Layer) comes as [(its dir's fd, source,
        [(name, lstat)])].  Also the fds opened here, to close."""
        layers: list[tuple[int, _Source, list | None]] = []
        fds: list[int] = []
        for layer in (_Layer(src_parent, source, name, None), *more):
            if layer.top:
                layers.append((layer.parent, layer.source, [(layer.name, layer.st)]))
                continue
            if rel in layer.source.unlistable:
                continue  # (reported by the census)
            try:
                fd = _open_listable(name, layer.parent)
            except OSError as exc:  # it could be listed a moment ago
                if not quiet:
                    self._scan_failed(f'rsync: [sender] opendir '
                                      f'"{layer.source.opendir_shown(rel)}" '
                                      f"failed: {_strerror(exc)}")
                continue
            fds.append(fd)
            layers.append((fd, layer.source, None))
        return layers, fds

    def _merged_dir(self, layers: list[tuple[int, _Source, list | None]], rel: bytes,
                    quiet: bool = False) -> tuple[list[tuple[bytes, os.stat_result]],
                                                  dict[bytes, tuple[int, _Source,
                                                                    tuple[_Layer, ...]]]]:
        """A dir's entries from several sources, merged as in the census
        (filelist.py): sorted (name, lstat) pairs, and for each name the
        source dir's fd, the source, and the other sources' dirs that
        merge into it."""
        merged, _ = merge_listings([
            ((fd, source), fixed if fixed is not None else
             self._read_source_dir(fd, rel, source, quiet=quiet))
            for fd, source, fixed in sorted(layers, key=lambda layer: layer[1].index)])
        return ([(entry.name, entry.st) for entry in merged],
                {entry.name: (*entry.layer, _more_layers(entry)) for entry in merged})

    def _skip_contents(self, src_parent: int, name: bytes, st: os.stat_result, rel: bytes,
                       dst_path: tuple[bytes, ...], source: _Source,
                       more: tuple[_Layer, ...] = ()) -> None:
        """rsync's "*** Skipping any contents from this failed directory ***":
        nothing below the dir is written, but each hard-linked file below it
        is a skipped member of its group (rsync's handle_skipped_hlink(): if
        it was the one to be written, an earlier waiting member is written
        instead)."""
        self.err(_SKIP_DIR)
        self._done_entry(st)
        layers, fds = self._open_layers(src_parent, name, rel, source, more, quiet=True)
        try:
            entries, origin = self._listing(layers, rel, quiet=True)
            dirs = []
            for child, child_st in entries:
                child_rel = _join(rel, child)
                if stat.S_ISDIR(child_st.st_mode):
                    dirs.append((child, child_st))
                    continue
                self._take_entry()
                self._done_entry(child_st)
                group = (self._groups.get((child_st.st_dev, child_st.st_ino))
                         if stat.S_ISREG(child_st.st_mode) and child_st.st_nlink > 1 else None)
                if group is not None:
                    child_source = origin[child][1] if origin else layers[0][1]
                    index = len(group.members)
                    group.members.append(_Member(child_rel, dst_path + (child,),
                                                 child_source.sender_path(child_rel), index - 1,
                                                 first=index == 0,
                                                 last=child_rel == group.last))
                    self._skipped_hard_link(group, index, None)
            for child, child_st in dirs:
                fd, child_source, child_more = origin[child] if origin else (*layers[0][:2], ())
                self._take_entry()
                self._skip_contents_quietly(fd, child, child_st, _join(rel, child),
                                            dst_path + (child,), child_source, child_more)
        finally:
            for fd in fds:
                os.close(fd)

    def _listing(self, layers: list[tuple[int, _Source, list | None]], rel: bytes,
                 quiet: bool = False,
                 ) -> tuple[list[tuple[bytes, os.stat_result]], dict[bytes, tuple] | None]:
        """A dir's entries: from one source dir as _read_source_dir lists
        it (origin None: each comes from there), or merged (_merged_dir)."""
        if not layers:
            return [], None
        if len(layers) == 1 and layers[0][2] is None:
            return self._read_source_dir(layers[0][0], rel, layers[0][1], quiet=quiet), None
        return self._merged_dir(layers, rel, quiet)

    def _skip_contents_quietly(self, src_parent: int, name: bytes, st: os.stat_result,
                               rel: bytes, dst_path: tuple[bytes, ...], source: _Source,
                               more: tuple[_Layer, ...] = ()) -> None:
        """A subdir of a skipped dir: as above, without rsync's line."""
        err, self.err = self.err, lambda line: None
        try:
            self._skip_contents(src_parent, name, st, rel, dst_path, source, more)
        finally:
            self.err = err

    def _tweak_dir(self, dst_parent: int, dst_name: bytes, mode: int, rel: bytes) -> None:
        """rsync gives a non-root user u+rwx on a dir while filling it."""
        try:
            _chmod_at(dst_parent, dst_name, mode | 0o700)
        except OSError as exc:
            self._fail(f"rsync: [generator] failed to modify permissions on "
                       f"{self._full(rel)}: {_strerror(exc)}")

    def _acl_blind(self, src_meta: SrcMeta, dirfd: int, name: bytes, rel: bytes) -> SrcMeta:
        """A non-root rsync reads the ACLs of an existing destination entry
        below the top level through an open of it: when it cannot read the
        entry, it leaves its ACLs as they are.  Returns the attributes to
        apply."""
        if self.am_root or b"/" not in rel:
            return src_meta
        try:
            os.close(os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                             dir_fd=dirfd))
            return src_meta
        except PermissionError:
            pass
        except OSError:
            return src_meta
        node = Node(fd=None, dirfd=dirfd, name=name, is_link=False)
        try:
            backend = get_backend()
            return replace(src_meta, acl_access=backend.read(node, ACCESS),
                           acl_default=backend.read(node, DEFAULT)
                           if stat.S_ISDIR(src_meta.mode) else None)
        except OSError:
            return src_meta
        finally:
            node.close()

    def _seen_acl(self, letters: str, src_meta: SrcMeta, gen_meta: SrcMeta) -> str:
        """An entry's letters when _acl_blind left its ACLs alone: rsync's
        generator still compares the ACLs it read by path (no read
        permission needed) and shows ``a`` when they differ."""
        if gen_meta is src_meta or self.on_item is None:
            return letters
        differ = access_differs(src_meta.acl_access, gen_meta.acl_access) or (
            stat.S_ISDIR(src_meta.mode) and src_meta.acl_default != gen_meta.acl_default)
        return _column(letters, "a", differ)

    def _dest_xattrs(self, dirfd: int, name: bytes) -> dict[bytes, bytes] | None:
        """The user.* xattrs of a destination dir, None if unreadable."""
        node = Node(fd=None, dirfd=dirfd, name=name, is_link=False)
        try:
            names = self.meta.list_xattr_names(node, node.lstat())
            return read_xattrs(node, names, lambda n: receiver_keeps(n, False))
        except OSError:
            return None
        finally:
            node.close()

    def _receiver_pass(self, dst_parent: int, dst_name: bytes, frame: _DirFrame) -> None:
        """rsync's receiver writing a dir's xattrs and setting its attributes
        again (which takes the generator's u+rwx away)."""
        if frame.receiver_pass is None or self.dry_run:
            return
        src_meta, rel = frame.receiver_pass
        frame.receiver_pass = None
        apply_meta(self.meta, replace(src_meta, mode=src_meta.mode | 0o700), None,
                   dirfd=dst_parent, name=dst_name, exact_time=False, is_new=False, path=self._drel(rel))
        try:
            _chmod_at(dst_parent, dst_name, frame.mode)
        except OSError as exc:
            self._fail(f"rsync: [receiver] failed to set permissions on {self._full(rel)}: "
                       f"{_strerror(exc)}")

    def _touch_up(self, dst_parent: int, dst_name: bytes, frame: _DirFrame) -> None:
        """rsync's touch_up_dirs(): a non-root user's dir without u+w gets its
        mode back; the mtime, changed by the contents, is set again."""
        if self.dry_run:
            return
        self._receiver_pass(dst_parent, dst_name, frame)
        if frame.shut_out:
            return
        if not self.am_root and not frame.mode & stat.S_IWUSR:
            try:
                _chmod_at(dst_parent, dst_name, frame.mode)
            except OSError:
                pass
        st, _ = _lstat_at(dst_parent, dst_name)
        if st is not None and st.st_mtime_ns // 1_000_000_000 != frame.mtime_ns // 1_000_000_000:
            try:
                os.utime(dst_name, ns=(st.st_atime_ns, frame.mtime_ns), dir_fd=dst_parent,
                         follow_symlinks=False)
                faults.mutated("utime")
            except OSError:
                pass

    def _dir_contents(self, layers: list[tuple[int, _Source, list | None]], dst_parent: int,
                      dst_name: bytes, dst_fd: int, rel: bytes, dst_path: tuple[bytes, ...],
                      frame: _DirFrame) -> None:
        """``layers``: the source dirs whose entries make up this dir's
        list (see _open_layers); mostly one."""
        src_fd, source, _ = layers[0]
        origin = None  # (merged: each entry's source dir, see _merged_dir)
        if len(layers) > 1 or layers[0][2] is not None:
            entries, origin = self._merged_dir(layers, rel)
            precheck = None
        else:
            precheck = None if frame.fresh else self._precheck
            names = None
            if precheck is not None and dst_fd != _VIRTUAL:
                try:
                    names = precheck.share(rel, src_fd, dst_fd)
                except OSError:
                    pass  # (the listing fails again below, and is reported there)
            entries = self._read_source_dir(src_fd, rel, source, precheck=precheck, names=names)
        changes = faults.changes  # (see _recheck)
        dst_stats = None
        if frame.fresh and not self._solo_unreadable(frame):
            # Nothing to delete in a dir this run made: only the warning.  A
            # file before it still with the writer may yet turn out to be
            # unreadable (see _complete_write): then it waits its turn.
            if self.delete and not frame.virtual:
                if self._writer is not None and self._pending:
                    self._pending.append(_DeleteCheck())
                    self._bound_pending()
                else:
                    self._no_deletion()
        elif self.delete:
            dst_stats = self._delete_extraneous(dst_parent, dst_name, rel,
                                                {name for name, _ in entries}, frame.virtual,
                                                {name for name, st in entries
                                                 if st.__class__ is _InSync})
        dirs = []
        # With a receiver pass to come for this dir, its transfers wait for
        # it: rsync's receiver handles the dir before its files, while the
        # generator (creating symlinks, fixing attributes) runs ahead.
        deferred: list[tuple] | None = [] if frame.receiver_pass is not None else None
        self._deferred = deferred
        later: list[Callable[[], None]] = []
        self._receiver_later = later
        self._dst_stats, self._fresh = dst_stats, frame.fresh
        self._sheltered = frame.sheltered
        # A new single-linked small file of a dir this run made goes
        # straight to the writer (as _entry, _file and _transfer_file would
        # send it, in fewer steps: most files of an initial copy are such).
        writer = self._writer if frame.fresh and deferred is None else None
        fd, src, more = src_fd, source, ()
        try:
            for name, st in entries:
                if origin is not None:
                    fd, src, more = origin[name]
                if st.__class__ is _InSync and faults.changes != changes:
                    st = self._recheck(src_fd, dst_fd, name, _join(rel, name), source, st)
                    if st is None:
                        continue
                if st.__class__ is _InSync:
                    # Nothing to do: _file would change nothing.
                    if self.cancel_event.is_set():
                        raise Cancelled()
                    self._take_entry()
                    self._done(st.size)
                elif stat.S_ISDIR(st.st_mode):
                    dirs.append((name, st, fd, src, more))
                elif writer is not None and st.st_nlink == 1 and st.st_size < _BEHIND_MIN and \
                        stat.S_ISREG(st.st_mode) and self._writer_takes(st.st_size, dst_fd):
                    if self.cancel_event.is_set():
                        raise Cancelled()
                    child = _join(rel, name)
                    if child not in src.dropped:
                        self._take_entry()
                        self.stats.current = child
                        self._queue_write(fd, name, st, dst_fd, dst_path + (name,), child,
                                          src, frame.sheltered)
                        self._done(st.st_size)
                else:
                    self._entry(fd, name, st, dst_fd, name, _join(rel, name),
                                dst_path + (name,), src, frame)
        finally:
            self._deferred = self._receiver_later = None
            self._dst_stats, self._fresh = None, False
            self._sheltered = False
            if precheck is not None:
                precheck.end_dir(rel)
        if frame.receiver_pass is not None:
            self._receiver_pass(dst_parent, dst_name, frame)
        for receiver_pass in later:
            receiver_pass()
        for args in deferred or ():
            self._transfer_file(*args)
        for name, st, fd, src, more in dirs:
            self._entry(fd, name, st, dst_fd, name, _join(rel, name), dst_path + (name,), src,
                        None, more)

    def _solo_unreadable(self, frame: _DirFrame) -> bool:
        """A dir that is DST itself, made by this run for a non-root user
        whose mode denies u+r: rsync's delete pass opendir()s every dir,
        even a new one, and fails there (only this one gets no u+rwx while
        it is filled)."""
        return bool(self._solo) and not self.am_root and not frame.mode & stat.S_IRUSR

    def _read_source_dir(self, src_fd: int, rel: bytes, source: _Source,
                         quiet: bool = False, precheck: Precheck | None = None,
                         names: list[bytes] | None = None,
                         ) -> list[tuple[bytes, os.stat_result | _InSync]]:
        """The sorted, filtered listing of one source dir, as the census saw
        it (entries it left out stay out).  A file the precheck found in
        sync comes as an _InSync, not lstat-ed again.  ``names``: the dir's
        names, sorted, if they were just read."""
        entries = []
        if names is None:
            try:
                names = sorted(_list_names(src_fd))
            except OSError as exc:
                if not quiet:
                    self._scan_failed(f'rsync: [sender] opendir "{source.opendir_shown(rel)}" '
                                      f"failed: {_strerror(exc)}")
                return entries
        for name in names:
            child = _join(rel, name)
            if child in source.dropped:
                continue
            if precheck is not None:
                verdict = precheck.verdict(rel, name)
                if verdict is not None:
                    entries.append((name, _InSync(*verdict)))
                    continue
            try:
                st = os.stat(name, dir_fd=src_fd, follow_symlinks=False)
            except FileNotFoundError:
                continue  # gone since the census
            except OSError as exc:
                if not quiet:
                    self._lstat_failed(source, child, exc)
                continue
            if self._made is not None:
                if (st.st_dev, st.st_ino) in self._made:
                    continue  # made by this run inside the source: not in rsync's list
                st = self._frozen.get((st.st_dev, st.st_ino), st)
            if not self.rules.excluded(child, stat.S_ISDIR(st.st_mode)):
                entries.append((name, st))
        return entries

    def _recheck(self, src_fd: int, dst_fd: int, name: bytes, rel: bytes, source: _Source,
                 seen: _InSync) -> os.stat_result | _InSync | None:
        """A file the precheck found in sync, after the walk changed
        something in its dir: still in sync if the destination file is
        the one the worker saw; else the source's lstat (None: gone)."""
        dst_st, _ = _lstat_at(dst_fd, name)
        if dst_st is not None and (dst_st.st_ino, dst_st.st_ctime_ns) == (seen.ino,
                                                                          seen.ctime_ns):
            return seen
        try:
            return os.stat(name, dir_fd=src_fd, follow_symlinks=False)
        except FileNotFoundError:
            return None  # gone since the census
        except OSError as exc:
            self._lstat_failed(source, rel, exc)
            return None

    def _lstat_failed(self, source: _Source, rel: bytes, exc: OSError) -> None:
        """rsync's sender could not lstat a source entry."""
        self._scan_failed(f'rsync: [sender] readlink_stat("{_abs(source.sender_path(rel))}") '
                          f"failed: {_strerror(exc)}")

    # -- deletion ---------------------------------------------------------------
    def _dest_listing(self, dirfd: int, name: bytes, rel: bytes,
                      in_sync: set[bytes] | None = None,
                      ) -> tuple[list[tuple[bytes, os.stat_result]], bool]:
        """rsync's get_dirlist() on the receiving side: a destination dir's
        entries with their lstat, excluded ones left out, in the reverse of
        rsync's order (its f_name_cmp(): the non-dirs by name, then the
        dirs), and whether there were excluded ones (rsync's
        non_perishable_cnt).  They are read in the order the dir gives them,
        which is the order rsync reports those it cannot lstat in.
        It opendir()s the dir (read permission is enough); a dir it cannot
        open or an entry it cannot lstat is reported and, as in rsync's
        generator, stops later deletions.  Files the precheck found in sync
        (``in_sync``) are left out: they stay, and were just read."""
        listing: list[tuple[bytes, os.stat_result]] = []
        protected = False
        try:
            fd = os.open(name, _LIST_FLAGS | os.O_NOFOLLOW, dir_fd=dirfd)
        except OSError as exc:
            self._scan_failed(f"rsync: [generator] opendir {self._full(rel)} failed: "
                              f"{_strerror(exc)}")
            return listing, protected
        try:
            names = _list_names(fd)
            if in_sync:
                names = [child for child in names if child not in in_sync]
            for child in names:
                child_rel = _join(rel, child)
                st, err = _lstat_at(fd, child)
                if st is None:
                    if err == errno.ENOENT:
                        continue
                    if self.rules.excluded(child_rel, False) or \
                            self.rules.excluded(child_rel, True):
                        protected = True  # there, and excluded: it keeps the dir
                    else:
                        self._scan_failed(f"rsync: [generator] readlink_stat("
                                          f"{self._full(child_rel)}) failed: "
                                          f"{os.strerror(err)} ({err})")
                    continue
                if self.rules.excluded(child_rel, stat.S_ISDIR(st.st_mode)):
                    protected = True
                else:
                    listing.append((child, st))
            listing.sort(key=lambda entry: (stat.S_ISDIR(entry[1].st_mode), entry[0]),
                         reverse=True)
            return listing, protected
        finally:
            os.close(fd)

    def _delete_extraneous(self, dst_parent: int, dst_name: bytes, rel: bytes,
                           keep: set[bytes] | None, virtual: bool = False,
                           in_sync: set[bytes] | None = None,
                           ) -> dict[bytes, os.stat_result] | None:
        """rsync's delete_in_dir(): remove what the sender's list lacks (a
        dry run's rsync does not look into a dir it would have created).
        Returns the lstat of the entries kept (None: the dir was not
        listed), which the dir's files then need not take again."""
        if virtual or self._no_deletion() or keep is None:
            return None
        listing, _ = self._dest_listing(dst_parent, dst_name, rel, in_sync)
        kept = {}
        doomed = []
        for name, st in listing:
            if name in keep:
                kept[name] = st
            else:
                doomed.append((name, st))
        if not doomed:
            return kept
        try:
            fd = os.open(dst_name, _PATH_FLAGS, dir_fd=dst_parent)
        except OSError:
            return kept
        try:
            for name, st in doomed:
                self._delete(fd, name, st, _join(rel, name), recurse=True)
        finally:
            os.close(fd)
        return kept

    def _no_deletion(self) -> bool:
        """rsync deletes nothing once its sender could not read something,
        and says so once."""
        if not (self.scan_error or self.meta.src_io_error):
            return False
        if not self._warned_no_delete:
            self.out("IO error encountered -- skipping file deletion")
            self._warned_no_delete = True
        return True

    def _delete(self, dirfd: int, name: bytes, st: os.stat_result, rel: bytes, recurse: bool,
                count: bool = True, contents_done: bool = False, own_fix: bool = True) -> bool:
        """rsync's delete_item(): delete one destination entry (a dir with
        its unprotected contents if ``recurse``, else only if empty;
        ``contents_done``: they were dealt with already; ``own_fix``: rsync's
        DEL_NO_UID_WRITE applies).  Returns True when it is gone."""
        if self.cancel_event.is_set():
            raise Cancelled()
        if not contents_done and own_fix:
            self._allow_delete(dirfd, name, st)
        if self.dry_run:
            if stat.S_ISDIR(st.st_mode) and not contents_done and \
                    not self._delete_dir_contents(dirfd, name, rel, recurse):
                return False
        elif stat.S_ISDIR(st.st_mode):
            if not contents_done and not self._delete_dir_contents(dirfd, name, rel, recurse):
                return False
            try:
                os.rmdir(name, dir_fd=dirfd)
                faults.mutated("rmdir")
            except FileNotFoundError:
                return True
            except OSError as exc:
                if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
                    self.out(f"cannot delete non-empty directory: {os.fsdecode(rel)}")
                else:
                    self._fail(f"rsync: [generator] delete_file: rmdir({os.fsdecode(rel)}) failed: "
                               f"{_strerror(exc)}")
                return False
        else:
            try:
                os.unlink(name, dir_fd=dirfd)
                faults.mutated("unlink")
            except FileNotFoundError:
                return True
            except OSError as exc:
                self._fail(f"rsync: [generator] delete_file: unlink({os.fsdecode(rel)}) failed: "
                           f"{_strerror(exc)}")
                return False
        if count:
            # (an entry removed to make way for another type is not itemized)
            self.stats.files_deleted += 1
            self._item("*deleting", rel, is_dir=stat.S_ISDIR(st.st_mode))
        return True

    def _allow_delete(self, dirfd: int, name: bytes, st: os.stat_result) -> None:
        """rsync's DEL_NO_UID_WRITE: a non-root user's own entry without u+w
        gets it first."""
        if not self.am_root and not self.dry_run and not st.st_mode & stat.S_IWUSR \
                and st.st_uid == self.uid:
            try:
                _chmod_at(dirfd, name, stat.S_IMODE(st.st_mode) | stat.S_IWUSR)
            except OSError:
                pass

    def _delete_dir_contents(self, dirfd: int, name: bytes, rel: bytes, recurse: bool) -> bool:
        """rsync's delete_dir_contents(): the dir's listing without excluded
        entries (an excluded one keeps the dir); with ``recurse`` each is
        deleted (a dir's contents first, then the dir), else any makes the
        dir non-empty.  Prints rsync's notice and returns False when
        something stays (for a nested dir rsync then also fails its rmdir
        and prints the notice again)."""
        listing, protected = self._dest_listing(dirfd, name, rel)
        ok = not protected
        if listing and not recurse:
            ok = False
        elif listing:
            try:
                fd = os.open(name, _PATH_FLAGS, dir_fd=dirfd)
            except OSError:
                return ok
            try:
                for child, child_st in listing:
                    child_rel = _join(rel, child)
                    self._allow_delete(fd, child, child_st)
                    if stat.S_ISDIR(child_st.st_mode) and \
                            not self._delete_dir_contents(fd, child, child_rel, True):
                        ok = False
                    if not self._delete(fd, child, child_st, child_rel, recurse=True,
                                        contents_done=True):
                        ok = False
            finally:
                os.close(fd)
        if not ok:
            self.out(f"cannot delete non-empty directory: {os.fsdecode(rel)}")
        return ok

    def _make_way(self, dirfd: int, name: bytes, dst_st: os.stat_result, new_kind: int,
                  rel: bytes, own_fix: bool = True) -> bool:
        """rsync's delete_item(..., DEL_FOR_*): remove a destination entry of
        another type so ``new_kind`` can take its place (a dir with its
        contents only with --delete)."""
        if self._delete(dirfd, name, dst_st, rel, recurse=self.delete, count=False,
                        own_fix=own_fix):
            return True
        self._fail(f"could not make way for new {_TYPE_WORDS[new_kind]}: {os.fsdecode(rel)}")
        return False

    # -- regular files ------------------------------------------------------------
    def _file(self, src_parent: int, name: bytes, st: os.stat_result, dst_parent: int,
              dst_name: bytes, rel: bytes, dst_path: tuple[bytes, ...], source: _Source,
              frame: _DirFrame | None) -> None:
        group = self._groups.get((st.st_dev, st.st_ino)) if st.st_nlink > 1 else None
        if group is None and self._fresh:
            dst_st, stat_errno = None, errno.ENOENT
        else:
            # The delete pass's lstat, unless another name shares the inode
            # (an entry before this one may have changed its attributes).
            dst_st = self._dst_stats.pop(dst_name, None) if self._dst_stats else None
            stat_errno = 0
            if dst_st is None or group is not None or dst_st.st_nlink > 1:
                dst_st, stat_errno = _lstat_at(dst_parent, dst_name)
        index = -1
        if group is not None:
            index = len(group.members)
            group.members.append(_Member(rel, dst_path, source.sender_path(rel), index - 1,
                                         first=index == 0, last=rel == group.last,
                                         dir_mtime_ns=frame.mtime_ns if frame else -1))
            if index and self._hard_link_check(group, index, dst_parent, dst_name, dst_st,
                                               frame):
                return
        if dst_st is not None and not stat.S_ISREG(dst_st.st_mode):
            if not self._make_way(dst_parent, dst_name, dst_st, stat.S_IFREG, self._drel(rel)):
                if group is not None and frame is not None:
                    frame.waiting_links += 1  # it is tried again when a member is done
                return
            dst_st, stat_errno = None, errno.ENOENT
        basis_level = 0
        if self._basis is not None and (dst_st is not None or stat_errno == errno.ENOENT):
            basis_level = self._link_dest_file(src_parent, name, st, dst_parent, dst_name, rel,
                                               dst_path, source, group, index, dst_st)
            if basis_level < 0:
                return
        if dst_st is None and group is not None and not group.members[index].last and \
                not basis_level:
            # Written later as a link to the member that gets written.
            if frame is not None:
                frame.waiting_links += 1
            return
        if dst_st is None and stat_errno != errno.ENOENT:
            self._fail(f"rsync: [generator] recv_generator: failed to stat {self._full(rel)}: "
                       f"{os.strerror(stat_errno)} ({stat_errno})")
            return
        self._transfer_file(src_parent, name, st, dst_parent, dst_name, rel, dst_path, source,
                            group, index, dst_st, direct=self._sheltered)

    def _transfer_file(self, src_parent: int, name: bytes, st: os.stat_result, dst_parent: int,
                       dst_name: bytes, rel: bytes, dst_path: tuple[bytes, ...], source: _Source,
                       group: _LinkGroup | None, index: int,
                       dst_st: os.stat_result | None, deferred: bool = False,
                       direct: bool = False) -> None:
        """A regular file whose destination is missing or a regular file:
        fix its attributes in place if identical, else write it anew.
        ``deferred``: its turn is now (see _dir_contents and _complete_write);
        ``direct``: its dir is in a shelter (see _dir)."""
        direct = direct and dst_st is None
        if self._writer is not None and not deferred and group is None and dst_st is None and \
                self._fresh and self._deferred is None and st.st_size < _BEHIND_MIN and \
                self._writer_takes(st.st_size, dst_parent):
            # (no itemizing with a writer: nothing to print before it)
            self._queue_write(src_parent, name, st, dst_parent, dst_path, rel, source, direct)
            return
        try:
            src_fd, open_error = _open_file(name, src_parent), None
        except OSError as exc:
            src_fd, open_error = -1, exc
        if open_error is not None and open_error.errno == errno.ENOENT:
            self._source_open_failed(open_error, source.sender_path(rel))  # vanished
            if group is not None:
                self._sent(group, index, open_error)
            return
        if isinstance(open_error, NotRegularFile):  # as the walk reports one it meets
            self.out(f'skipping non-regular file "{os.fsdecode(rel)}"')
            self.stats.files_skipped += 1
            if group is not None:
                self._sent(group, index, open_error)
            return
        src_meta = self._src_meta(st, src_parent, name, rel, source,
                                  fd=src_fd if src_fd >= 0 else None)
        if src_meta is None:
            if src_fd >= 0:
                os.close(src_fd)
            return
        if group is not None:
            group.meta, group.size = src_meta, st.st_size
        try:
            same, dst_fd = False, -1
            if dst_st is not None and dst_st.st_size == st.st_size:
                same, dst_fd = self._same_as_dest(src_fd, dst_parent, dst_name, st.st_size)
            if same:
                # -c: same size and checksum (an unreadable file's checksum
                # is all zeros, on either side): fix the attributes in place.
                try:
                    letters = self._update_in_place(src_meta, dst_parent, dst_name, rel, dst_fd)
                finally:
                    if dst_fd >= 0:
                        os.close(dst_fd)
                if group is not None and "x" in letters:
                    group.xattrs_late = True
                if letters != UNCHANGED:
                    self._item(".f.." + letters, rel)
            elif self._deferred is not None and not deferred:
                # The receiver's turn comes later (see _dir_contents).
                self._deferred.append((src_parent, name, st, dst_parent, dst_name, rel,
                                       dst_path, source, group, index, dst_st, True))
                return
            elif src_fd < 0 and not self.dry_run:  # (a dry run's sender opens nothing)
                self._source_open_failed(open_error, source.sender_path(rel))
                if group is not None:
                    self._sent(group, index, open_error)
                return
            else:
                # rsync's sender itemizes what it sent, whatever the
                # receiver then makes of it (a failed mkstemp, say).
                self._item(self._transfer_code(src_meta, st.st_size, dst_st, dst_parent,
                                               dst_name, rel), rel)
                if not self._write_new(src_fd, src_meta, dst_parent, dst_name, rel,
                                       source.sender_path(rel), size=st.st_size, direct=direct,
                                       behind=group is None and st.st_size >= _BEHIND_MIN
                                       and self._made is None and self.on_item is None):
                    if group is not None:
                        # Sent, but the receiver failed it: rsync's later
                        # members wait for it, and wait in vain.
                        group.members[index].sent = True
                    return
                if group is not None:
                    self._sent(group, index, None)
                    return
        finally:
            if src_fd >= 0:
                os.close(src_fd)
        if group is not None:
            self._finish_hard_link(group, index)

    def _same_as_dest(self, src_fd: int, dst_parent: int, dst_name: bytes,
                      size: int) -> tuple[bool, int]:
        """-c for a destination file of the source's size: whether both hold
        the same ``size`` bytes, and when they do, the destination's open fd
        (-1 if it could not be opened: then both sides were unreadable)."""
        try:
            dst_fd = _open_file(dst_name, dst_parent)
        except OSError:
            return src_fd < 0, -1
        same = False
        try:
            if src_fd < 0:
                return False, -1
            same = same_size_content(src_fd, dst_fd, size)
            if same is None:  # a side shrank since its lstat: as the files are now
                try:
                    same = same_content(src_fd, dst_fd)
                finally:
                    os.lseek(src_fd, 0, os.SEEK_SET)
            return same, dst_fd if same else -1
        finally:
            if not same:
                os.close(dst_fd)

    def _update_in_place(self, src_meta: SrcMeta, dst_parent: int, dst_name: bytes,
                         rel: bytes, dst_fd: int = -1) -> str:
        """Fix an identical file's attributes; returns the itemize letters.
        With its open fd (it is readable, so rsync reads its ACLs: see
        _acl_blind) they are read and set through it."""
        gen_meta = src_meta if dst_fd >= 0 else self._acl_blind(src_meta, dst_parent,
                                                                  dst_name, rel)
        if self.dry_run:
            letters = self._letters_of(gen_meta, None, dst_parent, dst_name, rel)
        else:
            letters = apply_meta(self.meta, gen_meta, None, dirfd=dst_parent, name=dst_name,
                                 fd=dst_fd if dst_fd >= 0 else None, exact_time=True,
                                 is_new=False, path=self._drel(rel), later=self._receiver_later)
        return self._seen_acl(letters, src_meta, gen_meta)

    def _transfer_code(self, src_meta: SrcMeta, size: int, dst_st: os.stat_result | None,
                       dst_parent: int, dst_name: bytes, rel: bytes) -> str | None:
        """The itemize code of a transfer, from the file it replaces (None
        when not itemizing).  With -c a replaced regular file always shows
        ``c``; ``s`` when the sizes differ.  rsync's generator itemizes the
        file it replaces whether or not -i asks (protocol >= 29): it reads
        its ACLs and xattrs, and says so when it cannot, either way."""
        if dst_st is not None and stat.S_ISREG(dst_st.st_mode):
            gen_meta = self._acl_blind(src_meta, dst_parent, dst_name, rel)
            letters = itemize_meta(self.meta, gen_meta, dst_st, dirfd=dst_parent,
                                   name=dst_name, path=self._drel(rel))
            if self.on_item is None:
                return None
            resized = "." if dst_st.st_size == size else "s"
            return ">fc" + resized + self._seen_acl(letters, src_meta, gen_meta)
        if self.on_item is None:
            return None
        if dst_st is None and rel in self._basis_codes:
            return self._basis_codes.pop(rel)  # (against DIR's file: see _link_dest_file)
        return ">f" + NEW_COLUMNS

    def _write_new(self, src_fd: int, src_meta: SrcMeta, dst_parent: int, dst_name: bytes,
                   rel: bytes, src_path: bytes | None = None, *, size: int,
                   behind: bool = False, attempts: tuple[int, ...] = (1, 2),
                   direct: bool = False) -> bool:
        """Copy to a temp file, give it its attributes, rename it over the
        target.  On any failure the temp file is removed.

        The copy takes the size the source had when it was opened, as
        rsync's sender maps it.  A source caught changing while it was read
        (it ended early: rsync's "read errors mapping", exit 23; or its size,
        mtime or ctime moved during the copy) is copied once more, as
        rsync's receiver discards a file that fails its verification and
        redoes it; caught again, the destination keeps its old file and the
        run ends in 23 ("failed verification -- update discarded").  So a
        copy of a file caught changing never gets a real name.  A write
        error ends the run (exit 11), as in rsync.

        ``behind``: the data may be copied while the walk goes on (see
        _copy_behind); True then means "under way".  ``direct``: the file
        is new in a shelter (see _dir): it is written under its own name,
        which is as good as a temp file's there."""
        if self.dry_run:  # counted as rsync -n counts it
            self.stats.files_transferred += 1
            self.stats.bytes_done += size
            return True
        for attempt in attempts:
            try:
                tmp_fd, tmp = open_temp(dst_parent, dst_name, src_meta.mode & 0o7777, direct)
                self._note_temp(tmp)
            except OSError as exc:
                tmp = os.fsencode(exc.filename) if exc.filename is not None and not direct \
                    else temp_name(dst_name)
                self._fail(f"rsync: [receiver] mkstemp {self._full(_sibling(rel, tmp))} "
                           f"failed: {_strerror(exc)}")
                return False
            read_error: OSError | None = None
            try:
                before = os.fstat(src_fd)
                if behind and attempt == 1 and _reserve(
                        tmp_fd, before.st_size, self.am_root, self._pending_bytes()):
                    self._copy_behind(_CopyJob(os.dup(src_fd), tmp_fd, tmp, before, src_meta,
                                               dst_parent, dst_name, rel, src_path))
                    return True
                try:
                    copied = copy_data(src_fd, tmp_fd, before.st_size, self._check_cancel)
                except WriteError as exc:
                    raise self._write_failed(exc, rel) from None
                except ReadError as exc:
                    read_error, copied = exc, -1
            except BaseException:
                os.close(tmp_fd)
                unlink_quietly(dst_parent, tmp)
                raise
            done = self._finish_write(src_fd, tmp_fd, tmp, before, copied, read_error, src_meta,
                                      dst_parent, dst_name, rel, src_path, attempt)
            if done is not None:
                return done
            os.lseek(src_fd, 0, os.SEEK_SET)
        return False

    def _write_failed(self, exc: OSError, rel: bytes) -> Fatal:
        return Fatal(11, f'rsync: [receiver] write failed on '
                         f'"{_abs(self._dest_abs(self._drel(rel)))}": {_strerror(exc)}',
                     "rsync error: error in file IO (code 11)",
                     # rsync's sender, writing to the receiver that died
                     "rsync: [sender] write error: Broken pipe (32)")

    def _finish_write(self, src_fd: int, tmp_fd: int, tmp: bytes, before: os.stat_result,
                      copied: int, read_error: OSError | None, src_meta: SrcMeta,
                      dst_parent: int, dst_name: bytes, rel: bytes, src_path: bytes | None,
                      attempt: int) -> bool | None:
        """A copied temp file: if the source stayed intact, its attributes
        and its real name (True); else it is removed and the failure told
        (False after the second attempt, None: copy it again).  Closes
        ``tmp_fd``."""
        try:
            intact = _intact(copied, before, os.fstat(src_fd))
            if intact:
                # (rsync's receiver sets the temp file's ACL through its open fd)
                apply_meta(self.meta, src_meta, None, dirfd=dst_parent, name=tmp, fd=tmp_fd,
                           exact_time=True, is_new=True,
                           path=lambda: _sibling(rel, temp_name(tmp) if tmp == dst_name else tmp))
                if not self._put_in_place(tmp, dst_parent, dst_name, rel):
                    os.close(tmp_fd)
                    return False
        except BaseException:
            os.close(tmp_fd)
            unlink_quietly(dst_parent, tmp)
            raise
        os.close(tmp_fd)
        if intact:
            self.stats.files_transferred += 1
            self.stats.bytes_done += copied
            return True
        unlink_quietly(dst_parent, tmp)
        if copied < before.st_size:
            code = read_error.errno if read_error is not None else errno.ENODATA
            shown = _abs(src_path if src_path is not None else rel)
            self._fail(f'rsync: [sender] read errors mapping "{shown}": '
                       f"{os.strerror(code)} ({code})")
        if attempt == 2:
            self._fail(f"ERROR: {os.fsdecode(self._drel(rel))} failed verification -- "
                       f"update discarded.")
            return False
        return None

    def _put_in_place(self, tmp: bytes, dst_parent: int, dst_name: bytes, rel: bytes) -> bool:
        """A finished temp file takes its real name (the writer process
        leaves that to the walk: _complete_write).  When the rename is
        refused (an immutable file, a sticky dir's entry of another
        owner) the temp file is removed and the run goes on, as rsync's
        finish_transfer() does: False."""
        if tmp != dst_name:  # (else written in a shelter under its own name)
            try:
                os.rename(tmp, dst_name, src_dir_fd=dst_parent, dst_dir_fd=dst_parent)
            except OSError as exc:
                self._fail(f"rsync: [receiver] rename {self._full(_sibling(rel, tmp))} -> "
                           f'"{os.fsdecode(self._drel(rel))}": {_strerror(exc)}')
                unlink_quietly(dst_parent, tmp)
                return False
            faults.mutated("rename")
        self._made_here(dst_parent, dst_name)
        return True

    # -- the writer process (writer.py) ------------------------------------------------
    # New small files of the dirs this run made go to the writer in
    # batches; each batch is a pending item like a copy behind the walk,
    # completed in order: its lines printed, its temp files renamed.  A
    # dir's touch-up then waits in the same queue (a _TouchUp).  Free space
    # for twice what is under way is checked every so often: near a full
    # disk the walk writes itself, in order, as rsync would.
    def _writer_busy(self) -> bool:
        """Whether the writer has enough to do (the walk then writes the
        file itself rather than wait: both cores stay busy), or is gone."""
        return len(self._writer.unanswered) >= _BUSY or self._writer.sock is None

    def _writer_takes(self, size: int, dir_fd: int) -> bool:
        """Whether the writer takes a new file of ``size`` bytes for
        ``dir_fd``: not when busy, nor near a full disk."""
        if self._writer_busy():
            return False
        writer = self._writer
        if writer.budget < size or writer.checked >= 4 * BATCH:
            try:
                fs = os.fstatvfs(dir_fd)
            except OSError:
                return False
            writer.checked = 0
            writer.budget = fs.f_bavail * fs.f_frsize - 2 * self._pending_bytes() - _ROOM
            if fs.f_favail < 4 * BATCH * IN_FLIGHT + 1024:
                writer.budget = -1
            if writer.budget < size:
                self._complete_pending()  # (and so rsync's order from here on)
                return False
        writer.budget -= size
        writer.checked += 1
        return True

    def _queue_write(self, src_parent: int, name: bytes, st: os.stat_result, dst_parent: int,
                     dst_path: tuple[bytes, ...], rel: bytes, source: _Source,
                     direct: bool) -> None:
        """The writer opens the source file and reads its attributes itself
        (the walk's share of a file is then little more than its lstat)."""
        batch, dst_name = self._batch, dst_path[-1]
        # (by path: the fd of the next dir may have the number this one had)
        if batch is None or batch.key != dst_path[:-1] or batch.source is not source or \
                self._pending[-1] is not batch:
            self._send_batch()
            self._bound_pending()
            src_dir = os.dup(src_parent)
            try:
                batch = self._batch = Batch(src_dir, os.dup(dst_parent), dst_path[:-1], source)
            except BaseException:
                os.close(src_dir)
                raise
            self._pending.append(batch)
        writer, src_path, size = self._writer, source.sender_path(rel), st.st_size
        batch.jobs.append(((st, dst_path), (
            writer.number(), name, dst_name, rel, src_path, size,
            (st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns, st.st_dev), direct)))
        batch.size += 64 + len(name) + len(dst_name) + len(rel) + len(src_path)
        writer.pending_bytes += size
        if len(batch.jobs) == BATCH or batch.size >= BATCH_BYTES or not writer.unanswered:
            self._send_batch()  # (full, or the writer is idle)

    def _bound_pending(self) -> None:
        """Each pending item holds an fd or more: past _MAX_PENDING items
        (a slow writer, and many dirs with nothing for it) the oldest are
        completed."""
        if len(self._pending) > _MAX_PENDING and not self._completing:
            self._complete_pending(keep=_MAX_PENDING // 2)

    def _send_batch(self) -> None:
        """Hand the batch being filled to the writer; wait for earlier ones
        while too many are under way."""
        batch, self._batch = self._batch, None
        if batch is None or batch.sent:
            return
        self._writer.send(batch)
        while len(self._writer.unanswered) > IN_FLIGHT and not self._completing:
            self._complete_pending(until=len(self._writer.unanswered) - IN_FLIGHT)

    def _complete_batch(self, batch: Batch) -> None:
        if not batch.sent:
            if self._batch is batch:
                self._batch = None
            self._writer.send(batch)
        self._writer.wait(batch)
        if batch.answers is None:  # (the writer is gone: the walk writes them)
            self._remove_orphans(batch, 0)
        answers = batch.answers or [None] * len(batch.jobs)
        done = 0
        try:
            for job, answer in zip(batch.jobs, answers, strict=True):
                done += 1
                self._complete_write(batch, job, answer)
        finally:
            self._drop_batch(batch, done)

    def _complete_write(self, batch: Batch, job: tuple, answer: tuple | None) -> None:
        """One file the writer wrote: its lines and flags, then its name.
        One it did not write (it left it to the walk, or it is gone) the
        walk transfers now, in its turn."""
        (st, dst_path), (_, name, dst_name, rel, _, size, _, direct) = job
        dir_fd = batch.dir_fd
        self._writer.pending_bytes -= size
        if answer is None or answer[0] == SKIPPED:  # left to the walk (or the writer is gone)
            self._transfer_file(batch.src_dir, name, st, dir_fd, dst_name, rel, dst_path,
                                batch.source, None, -1, None, deferred=True, direct=direct)
            return
        kind, tmp, lines, flags, copied, fatal = answer
        for stream, line in lines:
            (self.out if stream == 1 else self.err)(line)
        if flags & 1:
            self.partial = True
        if flags & 2:
            self.meta.had_error = True
        if kind == FATAL:
            raise Fatal(fatal[0], *fatal[1])
        if kind == OK:
            try:
                placed = self._put_in_place(tmp, dir_fd, dst_name, rel)
            except BaseException:
                unlink_quietly(dir_fd, tmp)
                raise
            if placed:
                self.stats.files_transferred += 1
                self.stats.bytes_done += copied

    def _drop_batch(self, batch: Batch, completed: int = 0) -> None:
        """Close a batch's fds and remove the temp files of the jobs not
        completed (after an abort: once the writer has answered)."""
        if batch.sent and self._writer is not None:
            self._writer.wait(batch)
        if batch.answers is None:
            self._remove_orphans(batch, completed)
        elif completed < len(batch.jobs):
            for answer in batch.answers[completed:]:
                if answer[0] == OK:
                    unlink_quietly(batch.dir_fd, answer[1])
        if self._writer is not None:
            self._writer.pending_bytes -= sum(message[5] for _, message in batch.jobs[completed:])
        os.close(batch.src_dir)
        os.close(batch.dir_fd)
        batch.jobs = []

    def _remove_orphans(self, batch: Batch, start: int) -> None:
        """The files the writer made for the jobs of a batch it never
        answered (it died), from job ``start`` on: whole or not, the walk
        writes them again.  In a shelter a file has its own name (which
        nothing else there holds), noted or not: it may have died between
        making and noting it."""
        if batch.sent and self._writer is not None:
            for _, message in batch.jobs[start:]:
                orphan = message[2] if message[7] else self._writer.temp_of(message[0])
                if orphan is not None:
                    unlink_quietly(batch.dir_fd, orphan)

    # -- copies behind the walk ------------------------------------------------------
    # A big file's data is copied by a thread (copy_file_range releases the
    # GIL) while the walk goes on; the rest of its transfer (the checks,
    # attributes, rename, counts and any message) is done in the walk's
    # thread, in the order the files came: when the copy is done, before
    # any message is printed, and at the end of the file's dir (before the
    # dir's fd closes and its mtime is set).  On an abort (signal, fatal
    # error) the copies are awaited and their temp files removed.
    def _pending_bytes(self) -> int:
        """Bytes of the files still being written behind the walk."""
        writer = self._writer.pending_bytes if self._writer is not None else 0
        return writer + sum(job.before.st_size for job in self._pending
                            if isinstance(job, _CopyJob))

    def _copy_behind(self, job: _CopyJob) -> None:
        try:
            self._send_batch()  # (it comes before this one)
        except BaseException:
            os.close(job.src_fd)
            os.close(job.tmp_fd)
            unlink_quietly(job.dst_parent, job.tmp)
            raise
        if self._copier is None:
            self._copier = _Copier(self._check_cancel)
        self._pending.append(job)
        self._copier.jobs.put(job)

    def _complete_pending(self, dir_fd: int | None = None, ready_only: bool = False,
                          until: int = 0, keep: int = 0) -> None:
        """Complete copies in order: all of them; with ``dir_fd`` until none
        into that dir is left; with ``ready_only`` those already copied;
        with ``until`` until that many writer batches are; with ``keep``
        until that many items are left."""
        if self._completing:
            return
        self._completing = True
        try:
            while self._pending:
                job = self._pending[0]
                if ready_only and not job.done.is_set():
                    return
                if dir_fd is not None and all(j.dst_parent != dir_fd for j in self._pending):
                    return
                if keep and len(self._pending) <= keep:
                    return
                self._pending.pop(0)
                try:
                    self._complete(job)
                except Fatal as fatal:  # (what comes after it never happens)
                    fatal.settled = True
                    self._abort_pending()
                    raise
                if until and isinstance(job, Batch):
                    until -= 1
                    if not until:
                        return
        finally:
            self._completing = False

    def _complete(self, job: _CopyJob | Batch | _TouchUp | _DeleteCheck) -> None:
        if isinstance(job, Batch):
            self._complete_batch(job)
            return
        if isinstance(job, _TouchUp):
            try:
                self._dir_done(job.dir_fd, job.name, job.frame)
            finally:
                os.close(job.dir_fd)
            return
        if isinstance(job, _DeleteCheck):
            self._no_deletion()
            return
        job.done.wait()
        try:
            read_error, copied = None, job.copied
            if isinstance(job.error, ReadError):
                read_error, copied = job.error, -1
            elif job.error is not None:
                os.close(job.tmp_fd)
                unlink_quietly(job.dst_parent, job.tmp)
                if isinstance(job.error, WriteError):
                    raise self._write_failed(job.error, job.rel)
                raise job.error
            done = self._finish_write(job.src_fd, job.tmp_fd, job.tmp, job.before, copied,
                                      read_error, job.src_meta, job.dst_parent, job.dst_name,
                                      job.rel, job.src_path, 1)
            if done is None:
                os.lseek(job.src_fd, 0, os.SEEK_SET)
                self._write_new(job.src_fd, job.src_meta, job.dst_parent, job.dst_name,
                                job.rel, job.src_path, size=job.before.st_size, attempts=(2,))
        finally:
            os.close(job.src_fd)

    def _unwind(self, exc: BaseException) -> None:
        """The walk ends on ``exc``.  A fatal error in the walk's own turn
        comes, in rsync's order, after the files still under way: they are
        completed first (if one of them failed fatally, that error is
        raised instead).  Anything else (a signal) stops them."""
        if isinstance(exc, Fatal) and not exc.settled:
            exc.settled = True
            try:
                self._complete_pending()
            except Fatal as earlier:  # (settled: the rest is dropped)
                raise earlier from None
            except (OSError, Cancelled):
                pass
        self._abort_pending()

    def _abort_pending(self) -> None:
        """After an abort: stop the copies, remove their temp files."""
        if self._pending and self._copier is not None:
            self._copier.abort.set()  # (no copy is queued after an abort)
        if self._pending and self._writer is not None:
            self._writer.abort()
        self._batch = None
        while self._pending:
            job = self._pending.pop(0)
            if isinstance(job, Batch):
                self._drop_batch(job)
                continue
            if isinstance(job, _TouchUp):
                os.close(job.dir_fd)
                continue
            if isinstance(job, _DeleteCheck):
                continue
            job.done.wait()
            os.close(job.src_fd)
            os.close(job.tmp_fd)
            unlink_quietly(job.dst_parent, job.tmp)
        self._publish_shelters()

    def _check_cancel(self) -> None:
        if self.cancel_event.is_set():
            raise Cancelled()

    # -- hard links (rsync hlink.c) ------------------------------------------------
    @staticmethod
    def _check_prior(group: _LinkGroup, index: int) -> int:
        """The member before ``index`` in its chain, past skipped ones."""
        member = group.members[index]
        prev = member.prev
        while prev >= 0 and group.members[prev].skip:
            prev = group.members[prev].prev
        member.prev = prev
        return prev

    def _hard_link_check(self, group: _LinkGroup, index: int, dst_parent: int,
                         dst_name: bytes, dst_st: os.stat_result | None,
                         frame: _DirFrame | None) -> bool:
        """rsync's hard_link_check(): True when the member was handled (linked
        to the group's FIRST, or that failed); False to sync it on its own."""
        prev = self._check_prior(group, index)
        if prev < 0:
            return False
        previous = group.members[prev]
        if not previous.done:
            if not previous.sent:
                return False
            # The previous member is being transferred: wait in its chain,
            # to be linked when it is done.
            member = group.members[index]
            member.prev, previous.prev, member.sent = previous.prev, index, True
            if frame is not None:
                frame.waiting_links += 1
            return True
        if not group.members[prev].first:
            prev = self._check_prior(group, prev)
            group.members[index].prev = prev
        self._maybe_hard_link(group, index, prev, dst_parent, dst_name, dst_st, at_turn=True)
        return True

    def _finish_hard_link(self, group: _LinkGroup, index: int) -> None:
        """rsync's finish_hard_link(): the member is written; it becomes the
        FIRST and every member before it in the chain is linked to it."""
        member = group.members[index]
        member.first = member.done = True
        prev, member.prev = member.prev, -1
        while prev >= 0:
            current, other = prev, group.members[prev]
            other.first, other.done = False, True
            prev, other.prev = other.prev, index
            try:
                parent = self._open_dest_dir(other.dst_path[:-1])
            except OSError as exc:
                self._fail(f"rsync: [generator] stat {self._full(other.rel)} failed: "
                           f"{_strerror(exc)}")
                continue
            try:
                dst_st, _ = _lstat_at(parent, other.dst_path[-1])
                self._maybe_hard_link(group, current, index, parent, other.dst_path[-1], dst_st)
            finally:
                self._close_dir(parent)

    def _skipped_hard_link(self, group: _LinkGroup, index: int, exc: OSError | None) -> None:
        """rsync's handle_skipped_hlink(): the member could not be sent.  If
        it was the last, the member before it that waits becomes the last
        and is synced now (it reads the same inode, so it mostly fails the
        same way, and so on down the chain)."""
        while True:
            member = group.members[index]
            member.skip = True
            if not member.last:
                return
            prev = self._check_prior(group, index)
            if prev < 0 or group.members[prev].done or group.members[prev].sent:
                return
            index = prev
            member = group.members[index]
            member.last = True
            if self._dest_stat_failed(member):
                return
            try:
                fd = _open_file(member.src_shown, None)
            except OSError as again:
                self._source_open_failed(again, member.src_shown)
                continue
            try:
                self._write_retry(group, index, fd)
            finally:
                os.close(fd)
            return

    def _dest_stat_failed(self, member: _Member) -> bool:
        """rsync's recv_generator for a waiting member synced after all: a
        name it cannot lstat (its dir shut to us: EACCES) is its "failed to
        stat" line, and nothing is sent.  True then."""
        try:
            parent = self._open_dest_dir(member.dst_path[:-1])
        except OSError:
            return False  # (_write_retry gives up on it)
        try:
            st, err = _lstat_at(parent, member.dst_path[-1])
        finally:
            self._close_dir(parent)
        if st is None and err != errno.ENOENT:
            self._fail(f"rsync: [generator] recv_generator: failed to stat "
                       f"{self._full(member.rel)}: {os.strerror(err)} ({err})")
            return True
        return False

    def _write_retry(self, group: _LinkGroup, index: int, src_fd: int) -> None:
        """Write a waiting member from its own source path (see above)."""
        member = group.members[index]
        st = os.fstat(src_fd)
        parent_path, _, name = member.src_shown.rpartition(b"/")
        try:
            src_parent = os.open(parent_path or b".", _PATH_FOLLOW)
        except OSError:
            return
        try:
            src_meta = read_src_meta(st, fd=src_fd, dirfd=src_parent, name=name, ctx=self.meta,
                                     path=os.path.abspath(member.src_shown))
        finally:
            os.close(src_parent)
        if src_meta is None:
            return
        group.meta, group.size = src_meta, st.st_size
        try:
            dst_parent = self._open_dest_dir(member.dst_path[:-1])
        except OSError:
            return
        try:
            dst_name = member.dst_path[-1]
            dst_st, _ = _lstat_at(dst_parent, dst_name)
            if dst_st is not None and not stat.S_ISREG(dst_st.st_mode) and \
                    not self._make_way(dst_parent, dst_name, dst_st, stat.S_IFREG, member.rel):
                return
            self._item(self._transfer_code(src_meta, st.st_size, dst_st, dst_parent, dst_name,
                                           member.rel), member.rel)
            if self._write_new(src_fd, src_meta, dst_parent, dst_name, member.rel,
                               member.src_shown, size=st.st_size):
                self._finish_hard_link(group, index)
        finally:
            self._close_dir(dst_parent)

    def _maybe_hard_link(self, group: _LinkGroup, index: int, target: int, dst_parent: int,
                         dst_name: bytes, dst_st: os.stat_result | None,
                         at_turn: bool = False) -> None:
        """rsync's maybe_hard_link(): make member ``index`` (``dst_name`` in
        ``dst_parent``) a link to member ``target``.  ``at_turn``: from
        hard_link_check(), when the member's own turn comes."""
        member, leader = group.members[index], group.members[target]
        try:
            leader_dir = self._open_dest_dir(leader.dst_path[:-1])
        except OSError as exc:
            self._fail(f"rsync: [generator] stat {self._full(leader.rel)} failed: "
                       f"{_strerror(exc)}")
            return
        try:
            leader_st, err = _lstat_at(leader_dir, leader.dst_path[-1])
            if leader_st is None:
                # (rsync's dry run links to DIR's file it "linked" the leader to)
                leader_st = self._dry_linked.get(leader.rel)
            if leader_dir == _VIRTUAL and group.symlinks:
                err = self._lookup_errno(leader.dst_path)
            # (a dry run's leader it would have made is not there: rsync's
            # hard_link_check() takes that as it is -- a zeroed stat --,
            # unless its path runs into a file: ENOTDIR)
            if leader_st is None and not (self.dry_run and err == errno.ENOENT):
                self._fail(f"rsync: [generator] stat {self._full(leader.rel)} failed: "
                           f"{os.strerror(err)} ({err})")
                return
            # (a dry run's leader that would have been written is not there)
            if leader_st is not None:
                if dst_st is not None and (dst_st.st_dev, dst_st.st_ino) == \
                        (leader_st.st_dev, leader_st.st_ino):
                    member.done = True
                    code = self._link_code(group, dst_st, dst_parent, dst_name, member.rel,
                                           linked=False)
                    if code is not None and not code.endswith(UNCHANGED):
                        self._item(code, member.rel, target=group.target)
                    return
            code = self._link_code(group, dst_st, dst_parent, dst_name, member.rel,
                                   linked=True)
            if at_turn and dst_st is None and leader_st is not None and \
                    self._basis_has(member.dst_path, leader_st):
                code = None  # rsync's hard_link_check(): "we don't output this as a change"
            replaced_dir = dst_st is not None and stat.S_ISDIR(dst_st.st_mode)
            if replaced_dir:
                if not self._make_way(dst_parent, dst_name, dst_st, stat.S_IFREG, member.rel,
                                      own_fix=False):
                    return
                dst_st = None
            if not self._atomic_create(
                    dst_parent, dst_name, dst_st, member.rel, "link",
                    lambda name: os.link(leader.dst_path[-1], name, src_dir_fd=leader_dir,
                                         dst_dir_fd=dst_parent, follow_symlinks=False),
                    f"=> {os.fsdecode(leader.rel)}"):
                return
            member.done = True
            if not at_turn and member.dir_mtime_ns >= 0:
                self._retouch[member.dst_path[:-1]] = member.dir_mtime_ns
            self._item(code, member.rel, link=leader.rel)
            if replaced_dir and not self.dry_run and not group.symlinks:
                # rsync then reads the default ACL of what it takes for the
                # old dir, now a file: libacl refuses that with EACCES.
                self._fail(f"rsync: [generator] get_acl: sys_acl_get_file("
                           f"{os.fsdecode(member.rel)}, ACL_TYPE_DEFAULT): Permission denied (13)")
        finally:
            self._close_dir(leader_dir)

    def _link_code(self, group: _LinkGroup, dst_st: os.stat_result | None, dst_parent: int,
                   dst_name: bytes, rel: bytes, *, linked: bool) -> str | None:
        """The itemize code of a member made a link (``linked``) or found
        linked already, from what its name held before (None when not
        itemizing).  rsync's generator itemizes such a member whether or not
        -i asks (protocol >= 29): it reads the entry's ACLs and xattrs, and
        says so when it cannot, either way.  It reads the old entry in a dry
        run and when found linked; a new link only once it is made (it is
        the leader's inode then, with the source's attributes)."""
        if group.meta is None:
            return None
        if dst_st is None:
            return None if self.on_item is None else ("hL" if group.symlinks else "hf") + NEW_COLUMNS
        src_meta = self._acl_blind(group.meta, dst_parent, dst_name, rel)
        kind = stat.S_IFMT(dst_st.st_mode)
        if (linked and not self.dry_run) or \
                kind not in (stat.S_IFREG, stat.S_IFDIR, stat.S_IFLNK):
            # (nor does it read a special file's or device's, without -D)
            letters = stat_letters(self.meta, src_meta, dst_st)
        else:
            letters = itemize_meta(self.meta, src_meta, dst_st, dirfd=dst_parent, name=dst_name,
                                   path=self._drel(rel))
        if self.on_item is None:
            return None
        resized = "." if dst_st.st_size == group.size or group.symlinks else "s"
        if group.symlinks:
            # No ACL for a symlink; its xattrs, as the leader has them
            # (those of a new leader come later: see _symlink).
            if not self.dry_run:
                late = group.xattrs_late if kind in (stat.S_IFREG, stat.S_IFDIR, stat.S_IFLNK) \
                    else self._keeps_xattrs(src_meta)
                letters = _column(letters, "x", late)
            return "hL." + resized + letters
        if kind not in (stat.S_IFREG, stat.S_IFDIR):
            # rsync reads no ACL for a symlink, special file or device (by
            # the type the name had, even once the link is there) ...
            letters = _column(letters, "a", src_meta.acl_access is not None)
        if kind not in (stat.S_IFREG, stat.S_IFDIR, stat.S_IFLNK):
            # ... nor, without -D, a special file's or device's xattrs
            letters = _column(letters, "x", self._keeps_xattrs(src_meta))
        elif linked and not self.dry_run:
            # The rest it reads once the link is made: the leader's, which
            # are the source's -- but over an old dir, get_acl() also asks
            # the new file for a default ACL, fails (the EACCES of
            # _maybe_hard_link) and leaves no ACL to compare: 'a'.
            if kind != stat.S_IFLNK:
                letters = _column(letters, "a", kind == stat.S_IFDIR)
            letters = _column(letters, "x", False)
        elif not self.dry_run and group.xattrs_late:
            # Found linked already: the leader's xattrs, fixed in place,
            # wait for rsync's receiver, which lags behind the generator.
            letters = _column(letters, "x", True)
        if kind == stat.S_IFREG:  # (an ACL _acl_blind left alone is still compared)
            letters = self._seen_acl(letters, group.meta, src_meta)
        return "hf." + resized + letters

    def _open_dest_dir(self, parts: tuple[bytes, ...]) -> int:
        """Open a destination dir by its path below the root, one component
        at a time and never following a symlink (in a dry run, _VIRTUAL for
        a dir it would have created)."""
        if self._virtual and any(parts[:i] in self._virtual for i in range(len(parts) + 1)):
            return _VIRTUAL
        fd = self._root_fd
        for i, part in enumerate(parts):
            if self._shelters:
                part = self._shelters.get(parts[:i + 1], part)
            try:
                next_fd = os.open(part, _PATH_FLAGS, dir_fd=fd)
            finally:
                self._close_dir(fd)
            fd = next_fd
        return fd

    def _lookup_errno(self, parts: tuple[bytes, ...]) -> int:
        """The errno of rsync's lstat of a destination path that a dry run
        would have made: ENOENT, or what an entry of another type in its
        way gives.  rsync 3.5.0's lookup follows symlinks on the way (so
        does this one, which only reads) and says ENOTDIR when the name's
        own dir is not one, ELOOP when one further up is not."""
        path = self._dest_abs(b"/".join(parts))
        try:
            os.lstat(path)
        except OSError as exc:
            if exc.errno == errno.ENOTDIR:
                try:
                    os.stat(os.path.dirname(path))
                except OSError:
                    return errno.ELOOP
            return exc.errno or errno.ENOENT
        return errno.ENOENT

    def _close_dir(self, fd: int) -> None:
        """Close a dir fd from _open_dest_dir (not the root's, nor _VIRTUAL)."""
        if fd != self._root_fd and fd != _VIRTUAL:
            os.close(fd)

    # -- symlinks -------------------------------------------------------------------
    def _symlink(self, src_parent: int, name: bytes, st: os.stat_result, dst_parent: int,
                 dst_name: bytes, rel: bytes, dst_path: tuple[bytes, ...], source: _Source,
                 frame: _DirFrame | None) -> None:
        """rsync's recv_generator for a symlink.  Symlinks that share an
        inode are a hard-link group as files are (Linux can link them): the
        first one made, or found in place, is the one the others link to."""
        try:
            target = os.readlink(name, dir_fd=src_parent)
        except OSError as exc:
            self._source_open_failed(exc, source.sender_path(rel))
            return
        src_meta = self._src_meta(st, src_parent, name, rel, source)
        if src_meta is None:
            return
        group = self._groups.get((st.st_dev, st.st_ino)) if st.st_nlink > 1 else None
        dst_st = None if self._fresh and group is None else _lstat_at(dst_parent, dst_name)[0]
        if group is not None:
            index = len(group.members)
            group.members.append(_Member(rel, dst_path, source.sender_path(rel), index - 1,
                                         first=index == 0, last=rel == group.last,
                                         dir_mtime_ns=frame.mtime_ns if frame else -1))
            group.meta, group.size, group.target = src_meta, st.st_size, target
            if index and self._hard_link_check(group, index, dst_parent, dst_name, dst_st,
                                               frame):
                return
        letters = self._make_symlink(target, src_meta, dst_parent, dst_name, dst_st, rel)
        if letters is not None and group is not None:
            # The leader's xattrs come with rsync's receiver, which lags
            # behind its generator: the links made meanwhile itemize them.
            group.xattrs_late = self._keeps_xattrs(src_meta) if letters == NEW \
                else letters[6] == "x"
            self._finish_hard_link(group, index)

    def _make_symlink(self, target: bytes, src_meta: SrcMeta, dst_parent: int,
                      dst_name: bytes, dst_st: os.stat_result | None, rel: bytes) -> str | None:
        """A symlink in place: found with its target (its attributes fixed)
        or made.  Returns its itemize letters (NEW: made), or None when it
        could not be made."""
        code = "cL" + NEW_COLUMNS
        if dst_st is None and self._basis is not None:
            linked, code = self._link_dest_symlink(src_meta, target, dst_parent, dst_name, rel)
            if linked:
                return UNCHANGED  # (DIR's identical symlink, hard-linked)
        if dst_st is not None and stat.S_ISLNK(dst_st.st_mode):
            try:
                same = os.readlink(dst_name, dir_fd=dst_parent) == target
            except OSError:
                same = False
            if same:
                letters = self._letters_of(src_meta, dst_st, dst_parent, dst_name, rel) \
                    if self.dry_run else apply_meta(
                        self.meta, src_meta, dst_st, dirfd=dst_parent, name=dst_name,
                        exact_time=False, is_new=False, path=self._drel(rel))
                if letters != UNCHANGED:
                    self._item(".L.." + letters, rel, target=target)
                return letters
            if self.on_item is not None:
                letters = self._letters_of(src_meta, dst_st, dst_parent, dst_name, rel)
                if not self.dry_run:
                    # rsync reads the xattrs of the new symlink, which has none yet
                    letters = _column(letters, "x", self._keeps_xattrs(src_meta))
                code = "cLc." + letters
        if dst_st is not None and stat.S_ISDIR(dst_st.st_mode):
            # (rsync's atomic_create(): without DEL_NO_UID_WRITE)
            if not self._make_way(dst_parent, dst_name, dst_st, stat.S_IFLNK, self._drel(rel),
                                  own_fix=False):
                return None
            dst_st = None
        if not self._atomic_create(dst_parent, dst_name, dst_st, rel, "symlink",
                                   lambda name: os.symlink(target, name, dir_fd=dst_parent),
                                   f'-> "{os.fsdecode(target)}"'):
            return None
        self._item(code, rel, target=target)
        if self.dry_run:
            return NEW
        self._made_here(dst_parent, dst_name)
        apply_meta(self.meta, src_meta, None, dirfd=dst_parent, name=dst_name,
                   exact_time=False, is_new=True, path=self._drel(rel))
        return NEW

    def _atomic_create(self, dst_parent: int, dst_name: bytes, dst_st: os.stat_result | None,
                       rel: bytes, verb: str, make: Callable[[bytes], None], shown: str) -> bool:
        """rsync's atomic_create(): make the link or symlink under its own
        name when nothing is there, else under a temp name renamed over the
        old entry.  Failures are rsync's lines; returns whether it worked."""
        if self.dry_run:
            return True
        create = dst_name if dst_st is None else self._link_temp(dst_parent, dst_name)
        created_rel = _join(rel.rpartition(b"/")[0], create)
        try:
            make(create)
            faults.mutated(verb)
        except OSError as exc:
            self._fail(f"rsync: [generator] {verb} {self._full(created_rel)} {shown} failed: "
                       f"{_strerror(exc)}")
            return False
        if create != dst_name:
            try:
                os.rename(create, dst_name, src_dir_fd=dst_parent, dst_dir_fd=dst_parent)
                faults.mutated("rename")
            except OSError as exc:
                unlink_quietly(dst_parent, create)
                self._note_stuck_temp(dst_parent, dst_name, create)
                # (sic: rsync quotes full_fname()'s quoted name again)
                self._fail(f"rsync: [generator] rename {self._full(created_rel)} -> "
                           f'"{self._full(rel)}" failed: {_strerror(exc)}')
                return False
        return True

    def _link_temp(self, dirfd: int, name: bytes) -> bytes:
        """The temp name of a link or symlink made to replace ``name``.
        rsync's (get_tmpname's unique one) is the same again in one run:
        when an earlier one could not be removed (an append-only dir), the
        next try meets it (EEXIST)."""
        if self._stuck_temps:
            st = os.fstat(dirfd)
            stuck = self._stuck_temps.get((st.st_dev, st.st_ino, name))
            if stuck is not None:
                return stuck
        return temp_name(name)

    def _note_stuck_temp(self, dirfd: int, name: bytes, tmp: bytes) -> None:
        if _lstat_at(dirfd, tmp)[0] is not None:
            st = os.fstat(dirfd)
            self._stuck_temps[(st.st_dev, st.st_ino, name)] = tmp

    # -- --link-dest (linkdest.py) ----------------------------------------------------
    def _basis_letters(self, src_meta: SrcMeta, dirfd: int, name: bytes, st: os.stat_result,
                       rel: bytes, path: bytes) -> str:
        """The attribute columns of DIR's entry (at ``path``) against the
        source's (rsync's unchanged_attrs() is these all unchanged)."""
        letters = itemize_meta(self.meta, self._acl_blind(src_meta, dirfd, name, rel), st,
                               dirfd=dirfd, name=name, path=path)
        if not self.am_root and letters[-1] == "." and self._keeps_xattrs(src_meta) and \
                not _xattrs_readable(path):
            # (rsync takes xattrs it could not read for none: they differ)
            letters = _column(letters, "x", True)
        return letters

    def _find_basis(self, kind: int, src_meta: SrcMeta, dst_path: tuple[bytes, ...], rel: bytes,
                    same_content: Callable[[int, bytes, os.stat_result, bytes], bool]
                    ) -> tuple[Basis | None, str]:
        """DIR's best match for an entry, and its attribute columns."""
        letters: dict[tuple[int, int], str] = {}

        def unchanged(dirfd: int, name: bytes, st: os.stat_result, path: bytes) -> bool:
            key = (st.st_dev, st.st_ino)
            letters[key] = self._basis_letters(src_meta, dirfd, name, st, rel, path)
            return letters[key] == UNCHANGED

        basis = self._basis.find(dst_path, kind, same_content, unchanged)
        if basis is None:
            return None, UNCHANGED
        key = (basis.st.st_dev, basis.st.st_ino)
        if key not in letters:  # (a level-1 match: not compared yet)
            letters[key] = self._basis_letters(src_meta, basis.dirfd, basis.name, basis.st, rel,
                                               basis.path)
        return basis, letters[key]

    def _check_basis_dirs(self) -> None:
        """rsync's warnings for a DIR not there, once in DST's parent or DST."""
        for line in check_basis_dirs(self._basis.dirs) if self._basis is not None else ():
            self.err(line)

    def _basis_has(self, dst_path: tuple[bytes, ...], st: os.stat_result) -> bool:
        """Whether a DIR holds ``st``'s inode at ``dst_path``."""
        for base in self._basis.dirs if self._basis is not None else ():
            try:
                found = os.lstat(os.path.join(base, *dst_path))
            except OSError:
                continue
            if (found.st_dev, found.st_ino) == (st.st_dev, st.st_ino):
                return True
        return False

    def _basis_dir_has_xattrs(self, src_meta: SrcMeta, dst_path: tuple[bytes, ...],
                              rel: bytes) -> bool:
        """Whether a dir in DIR has the new dir's xattrs already: then rsync's
        generator, itemizing the new dir against it (try_dests_non()),
        leaves its receiver nothing to set."""
        if self._basis is None:
            return False
        basis, letters = self._find_basis(stat.S_IFDIR, src_meta, dst_path, rel,
                                          lambda *_: True)
        return basis is not None and letters[ITEMIZE_ATTRS.index("x")] == "."

    def _new_dir_code(self, src_meta: SrcMeta, dst_path: tuple[bytes, ...], rel: bytes
                      ) -> str | None:
        """The itemize code of a new dir: with a dir in DIR, its changes
        against that one, nothing if none (rsync's try_dests_non())."""
        if self._basis is None:
            return "cd" + NEW_COLUMNS
        basis, letters = self._find_basis(stat.S_IFDIR, src_meta, dst_path, rel,
                                          lambda *_: True)
        if basis is None:
            self._basis_dir = None
            return "cd" + NEW_COLUMNS
        self._basis_dir = (rel, basis.path if dst_path else os.path.join(basis.path, b"."))
        if not dst_path and not self.dry_run:
            self._copy_basis_xattrs(rel, 0o700)  # (DST is made already, readable)
        return None if basis.level == 3 else "cd.." + letters

    def _copy_basis_xattrs(self, rel: bytes, mode: int) -> None:
        """Once a new dir is made (or a dry run would have made it): rsync
        3.5.0 copies the xattrs of DIR's dir onto each new dir
        (gen_entry_copy_xattrs(), the source's are set after): it opens the
        new dir's parent below its cwd, then the dir for reading.  That
        fails (exit 23) for a non-root user's new dir without u+r, and in a
        dry run, which has not made it -- its cwd then DST, or where it was
        started when it could not enter a missing DST; then it opens DIR's
        dir for reading."""
        if self._basis_dir is None or rel != self._basis_dir[0]:
            return  # (no dir in DIR)
        basis_path, self._basis_dir = self._basis_dir[1], None
        path = self._drel(rel)
        shown = os.fsdecode(self._dest_abs(path))
        failure = self._new_dir_unopenable(path, shown, mode)
        if failure is None:
            try:
                os.close(os.open(basis_path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC))
                return
            except OSError as exc:  # (as nobody, a dir of DIR without u+r)
                failure = f'secure open of basis "{os.fsdecode(basis_path)}" failed: ' \
                          f"{_strerror(exc)}"
        self._fail(f"rsync: [generator] gen_entry_copy_xattrs: {failure}")

    def _new_dir_unopenable(self, path: bytes, shown: str, mode: int) -> str | None:
        """Why rsync cannot open the new dir to copy xattrs onto (see above)."""
        if not self.dry_run:
            if not self.am_root and not mode & stat.S_IRUSR:
                return f'openat("{shown}") failed: Permission denied (13)'
            return None
        base = os.getcwdb() if self._root_new else self._curr_dir
        if not os.path.isdir(os.path.join(base, path.rpartition(b"/")[0])):
            return f'secure open of "{shown}" failed: No such file or directory (2)'
        if not os.path.isdir(os.path.join(base, path)):
            return f'openat("{shown}") failed: No such file or directory (2)'
        if not os.access(os.path.join(base, path), os.R_OK):
            return f'openat("{shown}") failed: Permission denied (13)'
        return None

    def _link_dest_file(self, src_parent: int, name: bytes, st: os.stat_result,
                        dst_parent: int, dst_name: bytes, rel: bytes,
                        dst_path: tuple[bytes, ...], source: _Source,
                        group: _LinkGroup | None, index: int,
                        dst_st: os.stat_result | None) -> int:
        """rsync's try_dests_reg() for a regular file (``dst_st``: the
        destination file, or None).  Returns -1 when the file is done here
        (hard-linked to DIR's identical file, or copied: DIR's file is
        never changed), else the match level, 1 when DIR's file is the
        basis the transfer that follows is itemized against."""
        try:
            src_fd = _open_file(name, src_parent)
        except FileNotFoundError:
            return 0  # (vanished: the transfer reports it)
        except OSError:
            src_fd = -1  # (unreadable: its checksum is all zeros)
        try:
            src_meta = self._src_meta(st, src_parent, name, rel, source,
                                      fd=src_fd if src_fd >= 0 else None)
            if src_meta is None:
                return -1  # (unreadable attributes: the sender left it out)

            def same_content(dirfd: int, entry: bytes, basis_st: os.stat_result, _: bytes) -> bool:
                # -c: the same size and checksum; an unreadable file's
                # checksum is all zeros, on either side
                if basis_st.st_size != st.st_size:
                    return False
                try:
                    fd = _open_file(entry, dirfd)
                except OSError:
                    return src_fd < 0
                try:
                    return src_fd >= 0 and bool(
                        same_size_content(src_fd, fd, st.st_size, self._check_cancel))
                finally:
                    os.close(fd)

            basis, letters = self._find_basis(stat.S_IFREG, src_meta, dst_path, rel, same_content)
            if basis is None:
                return 0
            if basis.level == 3:
                if dst_st is not None:  # find_exact_for_existing
                    if (dst_st.st_dev, dst_st.st_ino) == (basis.st.st_dev, basis.st.st_ino):
                        return 0
                    if not self.dry_run:
                        try:
                            os.unlink(dst_name, dir_fd=dst_parent)
                        except FileNotFoundError:
                            pass
                        except OSError:
                            return 0
                if self._link_basis(basis, dst_parent, dst_name) is None:
                    if group is not None:
                        group.meta, group.size = src_meta, st.st_size
                        if self.dry_run:
                            self._dry_linked[rel] = basis.st
                        self._finish_hard_link(group, index)
                    return -1
                # rsync's try_a_copy: the link failed
            elif dst_st is not None:
                return 0
            elif basis.level == 1:
                if self.on_item is not None:
                    resized = "." if basis.st.st_size == st.st_size else "s"
                    self._basis_codes[rel] = ">fc" + resized + letters
                return 1
            if src_fd < 0 and not self.dry_run:
                # (DIR's file is as unreadable: rsync's copy_file() fails,
                # and the transfer that follows fails too)
                self._basis_unreadable(basis)
                return 0
            if letters != UNCHANGED:  # (a copy for a refused link changes nothing to tell)
                self._item("cf.." + letters, rel)
            if self._write_new(src_fd, src_meta, dst_parent, dst_name, rel,
                               source.sender_path(rel), size=st.st_size):
                # (a local copy: rsync's sender transferred nothing)
                self.stats.files_transferred -= 1
                self.stats.bytes_done -= st.st_size
                if group is not None:
                    group.meta, group.size = src_meta, st.st_size
                    if self.dry_run:  # (rsync's hard_link_check(): a zeroed stat)
                        self._dry_linked[rel] = os.stat_result((0,) * 10)
                    self._finish_hard_link(group, index)
            return -1
        finally:
            if src_fd >= 0:
                os.close(src_fd)

    def _basis_unreadable(self, basis: Basis) -> None:
        """rsync's copy_file() from DIR's file, which cannot be opened."""
        try:
            os.close(_open_file(basis.name, basis.dirfd))
        except OSError as exc:
            self._fail(f'rsync: [generator] open "{os.fsdecode(basis.path)}": {_strerror(exc)}')

    def _link_basis(self, basis: Basis, dst_parent: int, dst_name: bytes) -> OSError | None:
        """Hard-link DIR's entry in (rsync's hard_link_one()); the failure,
        if it failed."""
        if self.dry_run:
            return None
        try:
            os.link(basis.name, dst_name, src_dir_fd=basis.dirfd, dst_dir_fd=dst_parent,
                    follow_symlinks=False)
        except OSError as exc:
            return exc
        faults.mutated("link")
        self._made_here(dst_parent, dst_name)
        return None

    def _link_dest_symlink(self, src_meta: SrcMeta, target: bytes, dst_parent: int,
                           dst_name: bytes, rel: bytes) -> tuple[bool, str | None]:
        """rsync's try_dests_non() for a new symlink: (True, None) when DIR's
        identical symlink was hard-linked, else (False, the itemize code of
        the symlink to make: against DIR's symlink, if there is one; None,
        silent, when the link to an identical one was refused)."""
        def same_target(dirfd: int, name: bytes, _st: os.stat_result, _path: bytes) -> bool:
            try:
                return os.readlink(name, dir_fd=dirfd) == target
            except OSError:
                return False

        dst_path = tuple(self._drel(rel).split(b"/"))
        basis, letters = self._find_basis(stat.S_IFLNK, src_meta, dst_path, rel, same_target)
        if basis is None:
            return False, "cL" + NEW_COLUMNS
        if basis.level == 3:
            # (a link refused, as to nobody a symlink not its own: rsync
            # makes the symlink instead, and says nothing)
            return self._link_basis(basis, dst_parent, dst_name) is None, None
        return False, "cLc." + letters

    # -- itemizing (-i) ----------------------------------------------------------------
    def _item(self, code: str | None, rel: bytes, *, is_dir: bool = False,
              target: bytes | None = None, link: bytes | None = None) -> None:
        """An itemized change.  A deletion is one of rsync's generator's
        messages, out at once; any other is data to its sender, held
        until the generator flushes (_take_entry)."""
        if self.on_item is not None and code is not None:
            if code[0] in ".hc" and code.endswith(_NO_CHANGE):
                code = code[:2] + " " * 9  # rsync's log.c: a change of nothing in particular
            change = ItemChange(code, rel + b"/" if is_dir else rel, target, link)
            if change.deleted:
                self.on_item(change)
            else:
                self._held.append(lambda: self.on_item(change))

    def _take_entry(self) -> None:
        """The generator takes the file list's next entry.  After the
        first, and then after the first at or past each 200th, it flushes
        its output, messages before data (generate_files() calls
        maybe_flush_socket(), which without --timeout always flushes): the
        item lines held so far go out after the messages already out."""
        if self.stats.entries_listed > self._next_flush:
            self._next_flush += _FLUSH_EVERY
            self._flush()
        self.stats.entries_listed += 1

    def _flush(self) -> None:
        """The held item lines (and progress samples) go out."""
        while self._held:
            held, self._held = self._held, []
            for emit in held:
                emit()

    def _keeps_xattrs(self, src_meta: SrcMeta) -> bool:
        """Whether the source entry has xattrs this receiver would set."""
        return any(receiver_keeps(n, self.am_root) for n in src_meta.xattrs)

    def _letters_of(self, src_meta: SrcMeta, dst_st: os.stat_result | None, dirfd: int,
                    name: bytes, rel: bytes) -> str:
        """The attribute columns of an existing destination entry against
        ``src_meta``, changing nothing ("......." when not itemizing; a dry
        run reads the entry anyway, as rsync's does, failures reported
        with its path below DST, as apply_meta reports them)."""
        if self.on_item is None and not self.dry_run:
            return UNCHANGED
        return itemize_meta(self.meta, src_meta, dst_st, dirfd=dirfd, name=name,
                            path=self._drel(rel))

    # -- errors -----------------------------------------------------------------------
    def _drel(self, rel: bytes) -> bytes:
        """The destination name of an entry: its name below the transfer
        root, except for a single item written onto a new name (rsync's
        solo_file), which the receiver knows by DST's last component."""
        if self._solo and rel == self._solo[0]:
            return self._solo[1]
        return rel

    def _full(self, rel: bytes) -> str:
        """rsync's full_fname(): the quoted path below the receiver's cwd."""
        return '"%s"' % os.fsdecode(self._curr_dir.rstrip(b"/") + b"/" + self._drel(rel))

    def _fail(self, line: str) -> None:
        self.err(line)
        self.partial = True

    def _scan_failed(self, line: str) -> None:
        self._fail(line)
        self.scan_error = True

    def _source_open_failed(self, exc: OSError, shown: bytes) -> None:
        path = _abs(shown)
        if exc.errno == errno.ENOENT:
            self.err(f'file has vanished: "{path}"')
            self.vanished = True
        else:
            self._fail(f'rsync: [sender] send_files failed to open "{path}": {_strerror(exc)}')

    def _dest_abs(self, rel: bytes) -> bytes:
        return os.path.join(self._curr_dir, rel)


@dataclass
class _CopyJob:
    """A copy behind the walk (TreeSync._copy_behind)."""

    src_fd: int            # its own dup of the source fd
    tmp_fd: int
    tmp: bytes
    before: os.stat_result
    src_meta: SrcMeta
    dst_parent: int
    dst_name: bytes
    rel: bytes
    src_path: bytes | None
    copied: int = -1
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)


class _TouchUp:
    """A dir's touch-up waiting in the pending queue for the writer's
    files in it (the queue's items complete in order)."""

    __slots__ = ("dir_fd", "name", "frame")
    dst_parent = -1  # (tied to no fd of the walk: it has its own)
    done = threading.Event()  # (always set: it can run at once)
    done.set()

    def __init__(self, dir_fd: int, name: bytes, frame: _DirFrame) -> None:
        self.dir_fd = dir_fd
        self.name = name
        self.frame = frame


class _DeleteCheck:
    """The delete pass of a dir this run made, waiting in the pending
    queue: it has nothing to delete, only rsync's warning to give if the
    sender could not read something -- which the files before it, still
    with the writer, may yet show."""

    __slots__ = ()
    dst_parent = -1
    done = _TouchUp.done  # (always set: it can run at once)


class _Copier:
    """The thread that copies the data of the jobs, one after another.
    ``abort`` stops the copy under way and fails the jobs still queued
    (an abort then need not wait for them)."""

    def __init__(self, check: Callable[[], None]) -> None:
        self.jobs: queue.SimpleQueue[_CopyJob | None] = queue.SimpleQueue()
        self.abort = threading.Event()
        self.thread = threading.Thread(target=self._loop, args=(check,),
                                       name="syncengine-copy", daemon=True)
        self.thread.start()

    def _loop(self, check: Callable[[], None]) -> None:
        def checked() -> None:
            if self.abort.is_set():
                raise Cancelled()
            check()
        while (job := self.jobs.get()) is not None:
            try:
                checked()
                job.copied = copy_data(job.src_fd, job.tmp_fd, job.before.st_size, checked)
            except BaseException as exc:  # handed to the walk's thread
                job.error = exc
            job.done.set()

    def stop(self) -> None:
        self.jobs.put(None)
        self.thread.join()


class _SenderReport:
    """The census's lines in rsync's sender's order: by SRC argument, then
    by place in that argument's walk (_Census.at).  Those of the sources up
    to ``open`` go out at once (what comes before them is out, and they
    come in order: a failed SRC, or a SRC/ walked alone); the others are
    held until ``close``."""

    def __init__(self, out: Callable[[str], None]) -> None:
        self.out = out
        self.place: tuple = (0, ())
        self.open = -1
        self.held: list[tuple[tuple, int, str]] = []

    def append_line(self, line: str) -> None:
        if self.place[0] <= self.open:
            self.out(line)
        else:
            self.held.append((self.place, len(self.held), line))

    def open_through(self, index: int) -> None:
        """Lines of the sources up to ``index`` go out: the held ones now."""
        self.open = index
        held = sorted(self.held)
        self.held = [line for line in held if line[0][0] > index]
        for place, _, line in held:
            if place[0] <= index:
                self.out(line)

    def close(self) -> None:
        self.open_through(sys.maxsize)


class _Census:
    """Pass 1, rsync's sender building the file list for one source: count
    it, report what cannot be read (and leave it out), and find the last
    member of each hard-link group in the order the walk will take.
    TreeSync._census merges the sources' lists (filelist.py)."""

    def __init__(self, run: TreeSync, source: _Source) -> None:
        self.run_ = run
        self.source = source
        # As root nothing keeps attributes from being read; otherwise they
        # are read here once to find entries the sender must leave out.
        self.check_meta = not run.am_root
        # Open while the census runs: the SRC/ dir itself, or the dir that
        # holds a SRC argument's entry.
        self.fd = -1

    @staticmethod
    def walk_key(rel: bytes) -> tuple:
        """Where a non-dir comes in the walk (in each dir the non-dirs by
        name, then each subdir with its subtree), which the census, going
        in rsync's sender's order, does not follow.  (A path is in the
        merged list once, whichever source it comes from.)"""
        *dirs, name = rel.split(b"/")
        return (*((1, part) for part in dirs), (0, name))

    def at(self, place: tuple) -> None:
        """Where the census is in rsync's sender's walk of this source, for
        what it reports (_SenderReport): a dir's place is the path of
        ``(2, i)`` steps to it, ``i`` the subdir's place in its dir's
        listing; what the sender meets reading entry ``i`` of the dir is at
        ``place + ((1, i),)``.  (A walk of one source's subtree (_walk)
        reports in order: at its dir's place.)"""
        self.run_._sender_report.place = (self.source.index, place)

    def top(self) -> bool:
        """Look up the source's own entry; whether it is in the list."""
        source, run = self.source, self.run_
        self.at(())
        if source.contents_form:
            try:
                self.fd = os.open(source.arg, _PATH_FOLLOW)
            except OSError as exc:
                self._top_failed("change_dir", exc)
                return False
            try:  # rsync's sender chdir()s into SRC/
                os.close(os.open(b".", os.O_PATH | os.O_CLOEXEC, dir_fd=self.fd))
            except OSError as exc:
                self._top_failed("change_dir", exc)
                return False
            source.st = os.fstat(self.fd)
            return self._keep(source.st, self.fd, b".", b".")
        try:  # rsync's sender chdir()s into the dir that holds SRC
            self.fd = os.open(source.parent, _PATH_FOLLOW)
            os.close(os.open(b".", os.O_PATH | os.O_CLOEXEC, dir_fd=self.fd))
        except OSError as exc:
            self._top_failed("change_dir", exc, source.parent)
            return False
        try:
            source.st = os.stat(source.name, dir_fd=self.fd, follow_symlinks=False)
        except OSError as exc:
            self._top_failed("link_stat", exc)
            return False
        if run.rules.excluded(source.rel, stat.S_ISDIR(source.st.st_mode)):
            return False
        return self._keep(source.st, self.fd, source.name, source.rel)

    def list_root(self) -> None:
        """The whole list of a SRC/ whose contents merge with no other's."""
        self.at(())
        self._list(lambda: os.open(b".", _LIST_FLAGS, dir_fd=self.fd), b".")

    def root_entries(self) -> tuple[int, list[tuple[bytes, os.stat_result]], dict[bytes, int]]:
        """A SRC/'s top listing, to merge with others': (its fd, entries,
        each one's place in the listing)."""
        self.at(())
        try:
            fd = os.open(b".", _LIST_FLAGS, dir_fd=self.fd)
        except OSError as exc:
            self._unlistable(b".", exc)
            return -1, [], {}
        return fd, *self._entries(fd, b".", ())

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def _top_failed(self, verb: str, exc: OSError, path: bytes | None = None) -> None:
        source, run = self.source, self.run_
        source.st = None
        run._fail(f'rsync: [sender] {verb} "{_abs(path or source.arg)}" failed: '
                  f"{_strerror(exc)}")
        # rsync's send_file_list(): a SRC/ (or a SRC's dir) it cannot chdir
        # into stops every deletion; a missing SRC (link_stat, ENOENT) does
        # not.
        if verb == "change_dir" or exc.errno != errno.ENOENT:
            run.scan_error = True

    def _keep(self, st: os.stat_result, dirfd: int, name: bytes, rel: bytes) -> bool:
        """Whether the sender keeps the entry: its attributes can be read."""
        if self.check_meta and read_src_meta(st, fd=None, dirfd=dirfd, name=name,
                                             ctx=self.run_.meta,
                                             path=lambda: self.source.meta_path(rel)) is None:
            self.source.dropped.add(rel)
            self.run_.scan_error = True
            return False
        return True

    def _count(self, rel: bytes, st: os.stat_result) -> None:
        self.source.entries += 1
        if not stat.S_ISDIR(st.st_mode):
            # rsync's total size: every non-dir's st_size (a symlink's is
            # the length of its target).
            self.source.size += st.st_size
        if stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode):  # (-H links symlinks too)
            if st.st_nlink > 1:
                key = (st.st_dev, st.st_ino)
                group = self.run_._groups.get(key)
                place = self.walk_key(rel)
                if group is None:
                    self.run_._groups[key] = _LinkGroup(rel, place)
                elif place > group.last_key:
                    group.last, group.last_key = rel, place

    def _unlistable(self, rel: bytes, exc: OSError) -> None:
        self.source.unlistable.add(rel)
        self.run_._scan_failed(f'rsync: [sender] opendir "{self.source.opendir_shown(rel)}" '
                               f"failed: {_strerror(exc)}")

    def _list(self, opener: Callable[[], int], rel: bytes) -> None:
        try:
            fd = opener()
        except OSError as exc:
            self._unlistable(rel, exc)
            return
        self._walk(fd, rel)

    def _entries(self, fd: int, rel: bytes, place: tuple,
                 ) -> tuple[list[tuple[bytes, os.stat_result]], dict[bytes, int]]:
        """One dir's listing as _walk sees it, to merge with other sources'
        (it counts nothing), and each entry's place in it (see at)."""
        rules = self.run_.rules
        if self.run_.cancel_event.is_set():
            raise Cancelled()
        try:
            names = _list_names(fd)
        except OSError as exc:
            self._unlistable(rel, exc)
            return [], {}
        entries = []
        for i, name in enumerate(names):
            self.at((*place, (1, i)))
            child = _join(rel, name)
            try:
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                continue
            except OSError as exc:
                if not (rules.excluded(child, False) or rules.excluded(child, True)):
                    self.source.dropped.add(child)
                    self.run_._lstat_failed(self.source, child, exc)
                continue
            if rules.excluded(child, stat.S_ISDIR(st.st_mode)) or \
                    self.check_meta and not self._keep(st, fd, name, child):
                continue
            entries.append((name, st))
        return entries, {name: i for i, name in enumerate(names)}

    def _walk(self, fd: int, rel: bytes) -> None:
        """One directory's listing as rsync's sender reads it
        (send_directory()): its entries in the order the directory gives
        them, then each subdir with its subtree in that order, so that what
        cannot be read is reported in rsync's order.  Closing each fd
        before descending keeps the walk to one open fd per level."""
        rules = self.run_.rules
        subdirs = []
        try:
            if self.run_.cancel_event.is_set():  # a signal while the list is built
                raise Cancelled()
            try:
                names = _list_names(fd)
            except OSError as exc:
                self._unlistable(rel, exc)
                return
            # (the hot loop of the census: no calls it can do without)
            excluded = rules.excluded if rules else None
            keep = self._keep if self.check_meta else None
            prefix = _join(rel, b"")
            files = size = 0
            lstat, is_dir_mode, is_reg_mode = os.stat, stat.S_ISDIR, stat.S_ISREG
            for name in names:
                try:
                    st = lstat(name, dir_fd=fd, follow_symlinks=False)
                except FileNotFoundError:
                    continue
                except OSError as exc:
                    # rsync reports it unless a rule would exclude it either way.
                    child = prefix + name
                    if not (rules.excluded(child, False) or rules.excluded(child, True)):
                        self.source.dropped.add(child)
                        self.run_._lstat_failed(self.source, child, exc)
                    continue
                is_dir = is_dir_mode(st.st_mode)
                if excluded is not None and excluded(prefix + name, is_dir) or \
                        keep is not None and not keep(st, fd, name, prefix + name):
                    continue
                if is_dir:
                    subdirs.append((name, st))
                elif st.st_nlink > 1 or not is_reg_mode(st.st_mode):
                    self._count(prefix + name, st)
                else:  # (_count, for the common case)
                    files += 1
                    size += st.st_size
            self.source.entries += files
            self.source.size += size
            for name, st in subdirs:
                child = _join(rel, name)
                self._count(child, st)
                self._list(lambda name=name: _open_listable(name, fd), child)
        finally:
            os.close(fd)


def run_sync(sources: Sequence[bytes | str], dest: bytes | str, *, delete: bool = True,
             excludes: Sequence[str | bytes] = (), out: Callable[[str], None] = print,
             err: Callable[[str], None] = print,
             on_item: Callable[[ItemChange], None] | None = None, dry_run: bool = False,
             link_dest: Sequence[bytes | str] = ()) -> int:
    """Convenience: one run with rsync's exclude list; returns the exit code."""
    return TreeSync(sources, dest, delete=delete, rules=FilterRules.from_excludes(excludes),
                    out=out, err=err, on_item=on_item, dry_run=dry_run,
                    link_dest=link_dest).run()
