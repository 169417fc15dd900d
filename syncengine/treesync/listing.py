"""A source dir's listing as the walk needs it: sorted, filtered, as the
census saw it (entries it left out stay out), merged across several
sources' dirs of the same path (filelist.py), and, for a dir the generator
skips ("*** Skipping any contents from this failed directory ***"), its
hard-linked members marked skipped.
"""

from __future__ import annotations

import os
import stat
from typing import TYPE_CHECKING

from .. import messages as msg
from ..messages import sender_abs
from .filelist import merge_listings
from .fs import list_names, lstat_at, open_listable
from .model import InSync, Layer, Member, Source, join_rel, more_layers
from .packed import PackedListing

if TYPE_CHECKING:
    from .precheck import Precheck
    from .sync import TreeSync



class SourceListing:
    """The source side of the walk: listing a dir, or skipping one."""

    def _open_layers(self: TreeSync, src_parent: int, name: bytes, rel: bytes, source: Source,
                     more: tuple[Layer, ...], quiet: bool = False, opened: int | None = None,
                     ) -> tuple[list[tuple[int, Source, list | None]], list[int]]:
        """The sources' dirs whose contents make up a dir of the merged list,
        opened to be listed: [(fd, source, None)]; a SRC argument's own
        entry at the top (a top Layer) comes as [(its dir's fd, source,
        [(name, lstat)])].  Also the fds opened here, to close (not
        ``opened``: the first source's dir, opened by the caller)."""
        layers: list[tuple[int, Source, list | None]] = []
        fds: list[int] = []
        if opened is not None:
            layers.append((opened, source, None))
        for layer in (Layer(src_parent, source, name, None), *more)[opened is not None:]:
            if layer.top:
                layers.append((layer.parent, layer.source, [(layer.name, layer.st)]))
                continue
            if rel in layer.source.unlistable:
                continue  # (reported by the census)
            try:
                fd = open_listable(name, layer.parent)
            except OSError as exc:  # it could be listed a moment ago
                if not quiet:
                    self._scan_failed(msg.sender_failed("opendir", layer.source.opendir_shown(rel),
                                                        exc))
                continue
            fds.append(fd)
            layers.append((fd, layer.source, None))
        return layers, fds

    def _merged_dir(self: TreeSync, layers: list[tuple[int, Source, list | None]], rel: bytes,
                    quiet: bool = False) -> tuple[list[tuple[bytes, os.stat_result]],
                                                  dict[bytes, tuple[int, Source,
                                                                    tuple[Layer, ...]]]]:
        """A dir's entries from several sources, merged as in the census
        (filelist.py): sorted (name, lstat) pairs, and for each name the
        source dir's fd, the source, and the other sources' dirs that
        merge into it."""
        merged, _ = merge_listings([
            ((fd, source), fixed if fixed is not None else
             self._read_source_dir(fd, rel, source, quiet=quiet))
            for fd, source, fixed in sorted(layers, key=lambda layer: layer[1].index)])
        return ([(entry.name, entry.st) for entry in merged],
                {entry.name: (*entry.layer, more_layers(entry)) for entry in merged})

    def _skip_contents(self: TreeSync, src_parent: int, name: bytes, st: os.stat_result, rel: bytes,
                       dst_path: tuple[bytes, ...], source: Source,
                       more: tuple[Layer, ...] = (), announce: bool = True) -> None:
        """rsync's "*** Skipping any contents from this failed directory ***":
        nothing below the dir is written, but each hard-linked file or
        symlink below it is a skipped member of its group (rsync's
        handle_skipped_hlink(): if it was the one to be written, an earlier
        waiting member is written instead, and its lines are printed).
        ``announce``: print that line (not for a subdir of a skipped dir)."""
        if announce:
            self.err(msg.SKIP_DIR)
        self._done_entry(st)
        layers, fds = self._open_layers(src_parent, name, rel, source, more, quiet=True)
        try:
            entries, origin = self._listing(layers, rel, quiet=True)
            dirs = []
            for child, child_st in entries:
                child_rel = join_rel(rel, child)
                if stat.S_ISDIR(child_st.st_mode):
                    dirs.append((child, child_st))
                    continue
                self._take_entry()
                self._done_entry(child_st)
                group = (self._groups.get((child_st.st_dev, child_st.st_ino))
                         if (stat.S_ISREG(child_st.st_mode) or stat.S_ISLNK(child_st.st_mode))
                         and child_st.st_nlink > 1 else None)
                if group is not None:
                    child_source = origin[child][1] if origin else layers[0][1]
                    index = len(group.members)
                    group.members.append(Member(child_rel, dst_path + (child,),
                                                 child_source.sender_path(child_rel), index - 1,
                                                 first=index == 0,
                                                 last=child_rel == group.last))
                    self._skipped_hard_link(group, index, None)
            for child, child_st in dirs:
                fd, child_source, child_more = origin[child] if origin else (*layers[0][:2], ())
                self._take_entry()
                self._skip_contents(fd, child, child_st, join_rel(rel, child),
                                    dst_path + (child,), child_source, child_more, announce=False)
        finally:
            for fd in fds:
                os.close(fd)

    def _listing(self: TreeSync, layers: list[tuple[int, Source, list | None]], rel: bytes,
                 quiet: bool = False,
                 ) -> tuple[list[tuple[bytes, os.stat_result]], dict[bytes, tuple] | None]:
        """A dir's entries: from one source dir as _read_source_dir lists
        it (origin None: each comes from there), or merged (_merged_dir)."""
        if not layers:
            return [], None
        if len(layers) == 1 and layers[0][2] is None:
            return self._read_source_dir(layers[0][0], rel, layers[0][1], quiet=quiet), None
        return self._merged_dir(layers, rel, quiet)

    def _read_source_dir(self: TreeSync, src_fd: int, rel: bytes, source: Source,
                         quiet: bool = False, precheck: Precheck | None = None,
                         names: list[bytes] | None = None,
                         ) -> PackedListing:
        """The sorted, filtered listing of one source dir, as the census saw
        it (entries it left out stay out).  A file the precheck found in
        sync comes as an InSync, not lstat-ed again.  ``names``: the dir's
        names, sorted, if they were just read.  (A wide dir's lstats are
        kept packed: packed.py.)"""
        if names is None:
            try:
                names = list_names(src_fd)
            except OSError as exc:
                if not quiet:
                    self._scan_failed(msg.sender_failed("opendir", source.opendir_shown(rel), exc))
                return PackedListing(InSync)
            names.sort()
        entries = PackedListing(InSync, names)  # (it takes the list over)
        dropped = source.dropped
        for name in names:
            if dropped and join_rel(rel, name) in dropped:
                continue
            if precheck is not None:
                verdict = precheck.verdict(rel, name)
                if verdict is not None:
                    entries.add(name, verdict)
                    continue
            try:
                st = os.stat(name, dir_fd=src_fd, follow_symlinks=False)
            except FileNotFoundError:
                continue  # gone since the census
            except OSError as exc:
                if not quiet:
                    self._lstat_failed(source, join_rel(rel, name), exc)
                continue
            if self._made is not None:
                if (st.st_dev, st.st_ino) in self._made:
                    continue  # made by this run inside the source: not in rsync's list
                st = self._frozen.get((st.st_dev, st.st_ino), st)
            if not self.rules.excluded(join_rel(rel, name), stat.S_ISDIR(st.st_mode)):
                entries.add(name, st)
        return entries

    def _recheck(self: TreeSync, src_fd: int, dst_fd: int, name: bytes, rel: bytes, source: Source,
                 seen: InSync) -> os.stat_result | InSync | None:
        """A file the precheck found in sync, after the walk changed
        something in its dir: still in sync if the destination file is
        the one the worker saw; else the source's lstat (None: gone)."""
        dst_st, _ = lstat_at(dst_fd, name)
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

    def _lstat_failed(self: TreeSync, source: Source, rel: bytes, exc: OSError) -> None:
        """rsync's sender could not lstat a source entry."""
        self._scan_failed(msg.readlink_stat_failed(sender_abs(source.sender_path(rel)), exc))
