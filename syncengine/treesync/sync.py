"""The walk: make DST what ``rsync -rlptgocAXH [--delete] [--exclude=P]...
--no-inc-recursive SRC... DST`` would make it.

Two passes over the source, both streaming directory by directory:

1. ``Census`` is rsync's sender building its file list: it counts entries
   and bytes (progress totals, the single-item rule), reports what cannot
   be read (unlistable dirs, entries whose attributes cannot be read: those
   are left out), and notes for each hard-link group which member comes
   last.  With ``--no-inc-recursive`` any such error suppresses every
   deletion, so it must be known before the first one.  Several sources
   make one list: their entries for the same path are merged as rsync
   merges them (filelist.py), in both passes; what cannot be read is
   reported as rsync's sender reports it, one SRC's whole tree after the
   other's (SenderReport).
2. ``TreeSync`` is rsync's generator and receiver: it walks source and
   destination side by side in rsync's order (in each dir the non-dirs
   sorted bytewise, then each subdir with its subtree).  A dir gets its
   attributes when it is entered, then its extraneous entries are deleted
   (delete-during, reverse order), then its contents are synced; its mtime
   is put back (and, for a non-root user, its mode) once the contents are
   done, as rsync's final touch-up pass does.

Every destination operation is relative to a directory fd opened with
O_NOFOLLOW, so a symlink swapped into the destination cannot redirect it.
Only hard-link bookkeeping (``LinkGroup``, a model of rsync's hlink.c) and
the entries that failed are remembered; nothing else about the tree is
held in memory.

rsync's rules for a user other than root are kept too: ``-o`` is ignored,
``-g`` only to groups the user is in (meta.py); a dir whose mode lacks some
of ``u+rwx`` is given them while its contents are written and gets its mode
back at the end only if it lacks ``u+w``; an entry to delete that is ours
but lacks ``u+w`` gets it first.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from .. import messages as msg
from ..itemize import ItemChange
from ..messages import SENDER_LINES, SERVER_SIDE, locale_codec, rsync_escape
from .attrs import DestAttrs
from .basis import LinkDestRun
from .census import CensusPass
from .deletion import Deletion
from .dirs import DirWalk
from .files import FileTransfer
from .filters import FilterRules
from .hardlinks import HardLinks
from .linkdest import BasisDirs, resolve_basis_dirs
from .listing import SourceListing
from .meta import MetaContext
from .model import RECURSION_LIMIT, Cancelled, DirFrame, Fatal, LinkGroup, Stats, Tuning, parse_source
from .pending import Copier, CopyJob, DeleteCheck, PendingWork, TouchUp
from .report import Reporting
from .roots import TransferRoot
from .symlinks import Symlinks
from .writer import Batch, Writer

if TYPE_CHECKING:
    from .precheck import Precheck

__all__ = ["Cancelled", "Fatal", "Stats", "TreeSync", "read_excludes", "run_sync"]


class TreeSync(CensusPass, TransferRoot, DirWalk, SourceListing, DestAttrs, Deletion,
               FileTransfer, PendingWork, HardLinks, Symlinks, LinkDestRun, Reporting):
    """One run.  ``out`` gets rsync's stdout lines, ``err`` its stderr lines."""

    def __init__(self, sources: Sequence[bytes | str], dest: bytes | str, *, delete: bool,
                 rules: FilterRules, out: Callable[[str], None], err: Callable[[str], None],
                 on_progress: Callable[[Stats], None] | None = None,
                 cancel: threading.Event | None = None,
                 on_item: Callable[[ItemChange], None] | None = None,
                 dry_run: bool = False, link_dest: Sequence[bytes | str] = (),
                 tuning: Tuning = Tuning()) -> None:
        self.sources = [replace(parse_source(os.fsencode(s)), index=i)
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
            line, None if line.startswith(SERVER_SIDE) else codec))
        self.on_progress = on_progress
        # -i: each change as an ItemChange; -n: nothing is changed, the
        # changes are only reported (dirs it would create are VIRTUAL).
        self.on_item = on_item
        self.dry_run = dry_run
        self.tuning = tuning
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
        # (late-bound: the census and the writer process redirect self.err)
        self.meta = MetaContext(errors=lambda line: self.err(line), acl_backend=tuning.acl_backend)
        self.am_root = self.meta.am_root
        self.uid = os.geteuid()
        self.partial = False         # rsync's io_error: ends in exit 23
        self.scan_error = False      # the sender could not read something: no deletions
        self.vanished = False
        self._warned_no_delete: bool = False
        self._groups: dict[tuple[int, int], LinkGroup] = {}  # -H, from the census on
        # Entries of several sources that name the same path: all but one
        # are dropped from the list (filelist.py); their count and bytes.
        self._dups: int = 0
        self._dup_bytes: int = 0
        self._late_touchups: list[DirFrame] = []
        # dirs a link went into after their touch-up (rsync's touch-up of
        # every dir comes at the very end): path -> source mtime
        self._retouch: dict[tuple[bytes, ...], int] = {}
        self._mounts: dict[int, bytes] = {}  # (device -> filesystem type: fs.exact_names)
        # transferred -H members, and their failures (see _sent)
        self._finishing: list[tuple[LinkGroup, int, OSError | None]] = []
        self._root_fd = -1
        self._curr_dir = b""         # rsync's cwd on the receiving side (messages)
        # rsync's solo_file, one item onto a new name: (its rel, DST's name)
        self._solo: tuple[bytes, bytes] | None = None
        # When DST lies inside a source: what this run made there, which the
        # walk must not take for source entries, and the dirs from that
        # source down to DST as the census saw them (see _read_source_dir).
        self._made: set[tuple[int, int]] | None = None
        self._frozen: dict[tuple[int, int], os.stat_result] = {}
        self._progress_xfr: int = 0
        self._progress_next: float = 0.0
        self._shut_dirs = 0      # dirs being filled that rsync's touch-up shuts (see _dir)
        # Shelters not yet in place: their paths, and the names they have.
        self._shelters: dict[tuple[bytes, ...], bytes] = {}
        # Temp names of links that could not be renamed nor removed (see
        # _link_temp): (dir's dev, ino, name) -> temp name.
        self._stuck_temps: dict[tuple[int, int, bytes], bytes] = {}
        self._precheck: Precheck | None = None  # a re-run's look-ahead (precheck.py)
        self._copier: Copier | None = None     # copies behind the walk (_copy_behind)
        # in the walk's order: copies behind it, batches of the writer
        # process (writer.py), and dir touch-ups waiting for those
        self._pending: list[CopyJob | Batch | TouchUp | DeleteCheck] = []
        self._writer: Writer | None = None      # an initial copy's writer process
        self._batch: Batch | None = None        # the batch being filled
        self._completing: bool = False

    def err(self, line: str) -> None:
        """A stderr line.  One of rsync's sender while item lines are held
        comes after them, as the sender prints it after the lines it read
        before (the error of a file it sends comes after the progress of
        the one before: see _flush)."""
        if self._held and line.startswith(SENDER_LINES):
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
        # The walks do not recurse (freshstack.descend), but deleting a
        # destination-only subtree, skipping a dir's contents and merging
        # sources' dirs do, a few frames a level; rsync goes as deep as a
        # path fits in 4096 bytes (2048 levels).  Raised for good, not put
        # back: another run may be going on in another thread.
        if sys.getrecursionlimit() < RECURSION_LIMIT:
            sys.setrecursionlimit(RECURSION_LIMIT)
        try:
            return self._run()
        except Fatal as fatal:
            for line in fatal.lines:
                self.err(line)
            if not any(msg.is_exit_line(line) for line in fatal.lines):
                self.err(msg.exit_line(fatal.exit_code))
            return fatal.exit_code
        except Cancelled:
            self.err(msg.exit_line(20))
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

    def _exit_code(self) -> int:
        if self.partial or self.meta.had_error:
            self.err(msg.exit_line(23))
            return 23
        if self.vanished:
            self.err(msg.exit_line(24))
            return 24
        return 0



def run_sync(sources: Sequence[bytes | str], dest: bytes | str, *, delete: bool = True,
             excludes: Sequence[str | bytes] = (), out: Callable[[str], None] = print,
             err: Callable[[str], None] = print,
             on_item: Callable[[ItemChange], None] | None = None, dry_run: bool = False,
             link_dest: Sequence[bytes | str] = (), tuning: Tuning = Tuning()) -> int:
    """Convenience: one run with rsync's exclude list; returns the exit code."""
    rules = read_excludes(excludes, err)
    if rules is None:
        return 1
    return TreeSync(sources, dest, delete=delete, rules=rules, out=out, err=err, on_item=on_item,
                    dry_run=dry_run, link_dest=link_dest, tuning=tuning).run()


def read_excludes(excludes: Sequence[str | bytes], err: Callable[[str], None]) -> FilterRules | None:
    """rsync's exclude list, its warnings said; None (said, as rsync says
    it before its exit 1) when a rule cannot be parsed."""
    try:
        rules = FilterRules.from_excludes(excludes)
    except ValueError as exc:
        err(str(exc))
        err(msg.exit_line(1))
        return None
    for warning in rules.warnings:
        err(warning)
    return rules
