"""The run's types: the sources, the per-directory frame, hard-link
groups and members, the progress counters, the exceptions that end a run,
and the tuning constants of the walk.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..messages import sender_abs
from .filelist import Merged
from .meta import (
    ITEMIZE_ATTRS,
    SrcMeta,
)

if TYPE_CHECKING:
    pass



RECURSION_LIMIT = 6 * 2048 + 1000
PROGRESS_INTERVAL = 0.05  # seconds between progress samples without a transfer
BEHIND_MIN = 1 << 20      # files this big are copied while the walk goes on
WRITER_BUSY = 3                  # writer batches under way that keep it busy (see _writer_busy)
MAX_PENDING = 256         # items in the pending queue (each holds an fd or more)
ROOM = 256 << 20          # free space beyond that which needs no reservation (reserve_space)
NO_CHANGE = "." * 9
# A dir's delete pass hands its files at most this many destination lstats
# (the rest are taken again at their turn: a wide dir's are not all held).
KEPT_STATS = 1 << 10
FLUSH_EVERY = 200  # entries between the flushes of rsync's generator (its loopchk_limit)



class Cancelled(Exception):
    """Raised inside the walk when the job was cancelled."""


class Fatal(Exception):
    """An error that ends the run at once (rsync's exit_cleanup)."""

    def __init__(self, exit_code: int, *lines: str) -> None:
        super().__init__(lines[0] if lines else "")
        self.exit_code = exit_code
        self.lines = lines
        self.settled = False  # the files under way before it are dealt with (_unwind)


@dataclass(frozen=True)
class Tuning:
    """The run's knobs, decided by whoever starts it (read from the
    environment at the process's edge: syncengine/environment.py)."""

    precheck: bool = True            # a re-run's look-ahead workers (precheck.py)
    writer: bool = True              # an initial copy's writer process (writer.py)
    acl_backend: str | None = None   # "raw", "libacl"; None: libacl if importable (acl.py)


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


def join_rel(rel: bytes, name: bytes) -> bytes:
    return rel + b"/" + name if rel and rel != b"." else name


def copied_intact(copied: int, before: os.stat_result, after: os.stat_result) -> bool:
    """Whether a source was copied whole and did not change meanwhile (its
    fstat before and after the copy)."""
    return copied == before.st_size and (
        after.st_size, after.st_mtime_ns, after.st_ctime_ns) == (
        before.st_size, before.st_mtime_ns, before.st_ctime_ns)


def sibling(rel: bytes, name: bytes) -> bytes:
    """The path of ``name`` in the dir of ``rel`` (a temp file's, say)."""
    return join_rel(rel.rpartition(b"/")[0], name)


def set_column(letters: str, letter: str, on: bool) -> str:
    """Itemize letters ("tpoguax") with one column set to ``letter`` or "."."""
    i = ITEMIZE_ATTRS.index(letter)
    return letters[:i] + (letter if on else ".") + letters[i + 1:]


@dataclass
class Source:
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
        shown = sender_abs(self.sender_path(rel))
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


def parse_source(arg: bytes) -> Source:
    if arg.endswith(b"/") or arg == b"." or arg.endswith(b"/."):
        return Source(arg, arg, b".", b".")
    parent, name = os.path.split(arg)
    return Source(arg, parent or b".", name, name)


@dataclass(frozen=True)
class Layer:
    """Another source's part in an entry of the merged file list (see
    filelist.py): a dir of the same path, whose contents merge with the
    winner's; or, at the top, a SRC argument's own entry (``top``), which
    goes into the listing of DST's "." (the first SRC/)."""

    parent: int            # fd of the source dir that holds it
    source: Source
    name: bytes
    st: os.stat_result | None
    top: bool = False


def more_layers(entry: Merged) -> tuple[Layer, ...]:
    """The dirs that merge into a merged entry (layers: (dir fd, source))."""
    return tuple(Layer(parent, source, entry.name, st) for (parent, source), st in entry.more)


@dataclass
class Member:
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


class InSync:
    """In a dir's listing, a file the precheck found in sync (no lstat):
    its size, and the destination file's inode and ctime then."""

    __slots__ = ("size", "ino", "ctime_ns")

    def __init__(self, size: int, ino: int, ctime_ns: int) -> None:
        self.size = size
        self.ino = ino
        self.ctime_ns = ctime_ns


@dataclass
class LinkGroup:
    """-H bookkeeping for one source inode, a model of rsync's hlink.c
    without incremental recursion.  Members come in the walk's order; the
    first is FIRST and the census knows the last.  A member whose previous
    member is done is linked to the group's FIRST; otherwise it is synced
    on its own, except that a missing one that is not the last waits.  A
    member that gets written (or found identical) becomes FIRST and links
    every member before it in the chain to itself."""

    last: bytes                           # rel of the last member (census)
    last_key: tuple = ()                  # its place in the walk (Census.walk_key)
    members: list[Member] = field(default_factory=list)
    meta: SrcMeta | None = None           # the source's attributes, once read (-i)
    size: int = 0                         # and its size
    xattrs_late: bool = False             # the leader's xattrs were fixed in place
                                          # (symlinks: they come later, see _symlink)
    target: bytes | None = None           # a group of symlinks: their target

    @property
    def symlinks(self) -> bool:
        return self.target is not None


@dataclass
class DirFrame:
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
    # While its entries are walked (_dir_entries; None before and after):
    # its destination entries as its delete pass lstat-ed them (each taken
    # once, at its turn), the transfers that wait for its receiver pass,
    # and the xattr passes of files fixed in place, which rsync's receiver
    # makes after its generator is done with the dir's files (it matters
    # when two names share an inode).
    dst_stats: dict[bytes, os.stat_result] | None = None
    deferred: list[tuple] | None = None
    receiver_later: list[Callable[[], None]] | None = None
