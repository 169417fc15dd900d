"""Pass 1, rsync's sender building its file list (flist.c ``send_file_list()``).

``Census`` walks one SRC argument in rsync's sender's order: it counts
entries and bytes (progress totals, the single-item rule), reports what
cannot be read (unlistable dirs, entries whose attributes cannot be read:
those are left out of the list) and notes, for each hard-link group, which
member comes last in the walk.  With ``--no-inc-recursive`` any such error
suppresses every deletion, so it must be known before the first one.

``CensusPass`` runs a census per SRC and merges the lists of several
sources as rsync merges them (filelist.py); what they cannot read is
reported in rsync's order, one SRC's whole tree after the other's
(``SenderReport``).
"""

from __future__ import annotations

import errno
import os
import stat
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from .. import messages as msg
from ..messages import sender_abs
from .filelist import merge_listings
from .freshstack import Steps, descend
from .fs import LIST_FLAGS, PATH_FOLLOW, list_names, open_listable
from .meta import (
    read_src_meta,
)
from .model import Cancelled, LinkGroup, Source, join_rel

if TYPE_CHECKING:
    from .sync import TreeSync
    pass



class CensusPass:
    """The run's first pass: the file list of every source, merged."""

    def _census(self: TreeSync) -> None:
        """rsync's sender building one file list from every source: each
        source's entries counted (Census), those of several sources for
        the same path merged as rsync merges them (filelist.py)."""
        # rsync's sender lists one SRC argument's whole tree after the
        # other, reporting as it goes (send_file_list()): what the merged
        # census finds is put in that order (SenderReport).
        err = self.err
        report = self._sender_report = SenderReport(err)
        censuses = [Census(self, source) for source in self.sources]
        if len(censuses) > 1:
            self.err = report.append_line
        try:
            tops: list[Census] = []
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

    def _census_merged(self: TreeSync, listings: list[tuple[Census, int, list, tuple, dict]],
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
            entry.layer[0]._count(join_rel(rel, entry.name), entry.st)
        for entry in merged:
            if not stat.S_ISDIR(entry.st.st_mode):
                continue
            child = join_rel(rel, entry.name)
            (census, parent), name = entry.layer, entry.name
            if not entry.more:
                census.at(places[census, name])
                census._list(lambda name=name, parent=parent: open_listable(name, parent), child)
                continue
            inner = []
            try:
                for census, parent in [entry.layer, *(layer for layer, _ in entry.more)]:
                    place = places[census, name]
                    census.at(place)
                    try:
                        fd = open_listable(name, parent)
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



class SenderReport:
    """The census's lines in rsync's sender's order: by SRC argument, then
    by place in that argument's walk (Census.at).  Those of the sources up
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


class Census:
    """Pass 1, rsync's sender building the file list for one source: count
    it, report what cannot be read (and leave it out), and find the last
    member of each hard-link group in the order the walk will take.
    TreeSync._census merges the sources' lists (filelist.py)."""

    def __init__(self, run: TreeSync, source: Source) -> None:
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
        what it reports (SenderReport): a dir's place is the path of
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
                self.fd = os.open(source.arg, PATH_FOLLOW)
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
            self.fd = os.open(source.parent, PATH_FOLLOW)
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
        self._list(lambda: os.open(b".", LIST_FLAGS, dir_fd=self.fd), b".")

    def root_entries(self) -> tuple[int, list[tuple[bytes, os.stat_result]], dict[bytes, int]]:
        """A SRC/'s top listing, to merge with others': (its fd, entries,
        each one's place in the listing)."""
        self.at(())
        try:
            fd = os.open(b".", LIST_FLAGS, dir_fd=self.fd)
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
        run._fail(msg.sender_failed(verb, sender_abs(path or source.arg), exc))
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
                    self.run_._groups[key] = LinkGroup(rel, place)
                elif place > group.last_key:
                    group.last, group.last_key = rel, place

    def _unlistable(self, rel: bytes, exc: OSError) -> None:
        self.source.unlistable.add(rel)
        self.run_._scan_failed(msg.sender_failed("opendir", self.source.opendir_shown(rel), exc))

    def _list(self, opener: Callable[[], int], rel: bytes) -> None:
        """The subtree of the dir ``opener`` opens (see descend)."""
        descend(self._listed(opener, rel))

    def _listed(self, opener: Callable[[], int], rel: bytes) -> Steps:
        try:
            fd = opener()
        except OSError as exc:
            self._unlistable(rel, exc)
            return
        yield from self._walk(fd, rel)

    def _entries(self, fd: int, rel: bytes, place: tuple,
                 ) -> tuple[list[tuple[bytes, os.stat_result]], dict[bytes, int]]:
        """One dir's listing as _walk sees it, to merge with other sources'
        (it counts nothing), and each entry's place in it (see at)."""
        rules = self.run_.rules
        if self.run_.cancel_event.is_set():
            raise Cancelled()
        try:
            names = list_names(fd)
        except OSError as exc:
            self._unlistable(rel, exc)
            return [], {}
        entries = []
        for i, name in enumerate(names):
            self.at((*place, (1, i)))
            child = join_rel(rel, name)
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

    def _walk(self, fd: int, rel: bytes) -> Steps:
        """One directory's listing as rsync's sender reads it
        (send_directory()): its entries in the order the directory gives
        them, then each subdir with its subtree in that order (the steps it
        yields), so that what cannot be read is reported in rsync's order.
        Each level holds one fd, its dir's, while its subdirs are walked."""
        try:
            if self.run_.cancel_event.is_set():  # a signal while the list is built
                raise Cancelled()
            try:
                names = list_names(fd)
            except OSError as exc:
                self._unlistable(rel, exc)
                return
            subdirs = self._scan(fd, rel, names)
            del names  # (not held through the subtree)
            for name, st in subdirs:
                child = join_rel(rel, name)
                self._count(child, st)
                yield self._listed(lambda name=name: open_listable(name, fd), child)
        finally:
            os.close(fd)

    def _scan(self, fd: int, rel: bytes, names: list[bytes],
              ) -> list[tuple[bytes, os.stat_result]]:
        """A dir's entries counted; returns its subdirs (name, lstat)."""
        rules = self.run_.rules
        subdirs: list[tuple[bytes, os.stat_result]] = []
        # (the hot loop of the census: no calls it can do without)
        excluded = rules.excluded if rules else None
        keep = self._keep if self.check_meta else None
        prefix = join_rel(rel, b"")
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
        return subdirs
