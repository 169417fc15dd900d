"""Where the transfer goes: DST and the top of the list (rsync's
``get_local_name()`` and the start of ``do_recv()``).

DST may exist (a dir, or a file for a single item), be created (one trailing
slash, or several items) or name a single item's new name; rsync's fatal
lines for each case are here.  Then the tops of the merged list are sent
into it, and at the end of the run the dirs whose touch-up waited for hard
links are touched up (``_finish``).  The re-run look-ahead (precheck.py) is
started here too: it needs to know DST before the walk.
"""

from __future__ import annotations

import os
import stat
from typing import TYPE_CHECKING

from .. import messages as msg
from ..messages import full_fname, sender_abs
from . import faults
from .filelist import merge_listings
from .freshstack import descend
from .fs import PATH_FOLLOW, VIRTUAL, usable_cpus
from .model import DirFrame, Fatal, Layer, Source, more_layers

if TYPE_CHECKING:
    from .sync import TreeSync
    pass



class TransferRoot:
    """DST, the tops of the list, and the end of the run."""

    def _dest_lopped(self: TreeSync) -> bytes:
        """DST as rsync's get_local_name() names the dir it creates: one
        trailing slash lopped off, then the others trimmed by do_mkdir()
        (trim_trailing_slashes(), in place), which a dry run's returns
        before: ``dst//`` is ``dst``, with -n ``dst/``."""
        path = self.dest[:-1] if self.dest.endswith(b"/") else self.dest
        while not self.dry_run and len(path) > 1 and path.endswith(b"/"):
            path = path[:-1]
        return path

    def _transfer(self: TreeSync) -> None:
        sources = [s for s in self.sources if s.entries]
        total = self.stats.entries_total  # (rsync's file_total: duplicates too)
        try:
            dst_st = os.stat(self.dest)  # the root may be a symlink to a dir: followed
        except FileNotFoundError:
            dst_st = None
        except OSError as exc:
            raise Fatal(3, msg.cannot_stat_destination(full_fname(self.dest), exc)) from exc
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
                raise Fatal(3, msg.DEST_NOT_A_DIR)
            if stat.S_ISDIR(sources[0].st.st_mode):
                raise Fatal(3, msg.DIR_OVER_NON_DIR)
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
                parent_fd = os.open(parent or b".", PATH_FOLLOW)
                os.close(os.open(b".", os.O_PATH | os.O_CLOEXEC, dir_fd=parent_fd))
            except OSError as exc:
                raise Fatal(3, msg.change_dir_failed("change_dir#3", full_fname(parent or b"."),
                                                     exc)) from exc
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

    def _start_precheck(self: TreeSync) -> None:
        """On a re-run (DST a non-empty dir) of one source dir, let two
        workers find the files already in sync while the census and the
        walk go on (precheck.py); on one CPU the walk is the only one."""
        if len(self.sources) != 1 or self._made is not None or not self.tuning.precheck:
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
            # (on one CPU no worker: the walk judges every file itself, in
            # the precheck's few calls rather than in _file's many)
            self._precheck = Precheck(src_dir, dst_dir, source.rel, self.rules.excluded,
                                      self.cancel_event, self.tuning.acl_backend,
                                      workers=usable_cpus() >= 2)
        except OSError:
            pass  # (no pipe or process to spare: the walk does it all itself)

    def _mkdir_dest(self: TreeSync) -> None:
        self._root_new = True
        if not self.dry_run:
            try:
                os.mkdir(self.dest, 0o777)
                faults.mutated("mkdir")
            except OSError as exc:
                raise Fatal(11, msg.mkdir_dest_failed(full_fname(self._dest_lopped()), exc)) from exc
            self._made_here(None, self.dest)
        if self.on_item is not None:
            self.out(msg.created_directory(self._dest_lopped()))

    def _guard_dest_in_a_source(self: TreeSync) -> None:
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

    def _made_here(self: TreeSync, dirfd: int | None, name: bytes) -> None:
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

    def _into_dir(self: TreeSync, sources: list[Source], how: str, shown: bytes) -> None:
        """Into DST, an existing dir or one just made (``how``: rsync's
        change_dir#1 or #2; ``shown``: DST as its failure shows it)."""
        if self.dry_run and self._root_new:
            root_fd = VIRTUAL
            self._virtual.add(())
        else:
            try:
                root_fd = os.open(self.dest, PATH_FOLLOW)
            except OSError as exc:
                raise Fatal(3, msg.change_dir_failed(how, full_fname(shown), exc)) from exc
        try:
            try:  # rsync chdir()s into DST: that needs search permission
                if root_fd != VIRTUAL:
                    os.close(os.open(b".", os.O_PATH | os.O_CLOEXEC, dir_fd=root_fd))
            except OSError as exc:
                raise Fatal(3, msg.change_dir_failed(how, full_fname(shown), exc)) from exc
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
            if root_fd != VIRTUAL:
                os.close(root_fd)

    def _send_top(self: TreeSync, source: Source, dst_parent: int, dst_name: bytes) -> None:
        src_parent = os.open(source.parent, PATH_FOLLOW)
        try:
            self._entry(src_parent, source.name, source.st, dst_parent, dst_name, source.rel,
                        (dst_name,), source)
        finally:
            os.close(src_parent)

    def _send_tops(self: TreeSync, sources: list[Source], dst_fd: int) -> None:
        """The merged list into DST: with a SRC/ among the sources, DST is
        its "." (the first SRC/'s attributes), whose entries are the SRC/s'
        contents and the other SRC arguments; otherwise just those."""
        fds = []
        try:
            roots, tops = [], []
            for source in sources:
                try:
                    fd = os.open(source.arg if source.contents_form else source.parent,
                                 PATH_FOLLOW)
                except OSError as exc:  # gone since the census
                    self._scan_failed(msg.sender_failed("change_dir", sender_abs(source.arg), exc))
                    continue
                fds.append(fd)
                if source.contents_form:
                    roots.append(Layer(fd, source, b".", source.st))
                else:
                    tops.append(Layer(fd, source, source.name, source.st, top=True))
            if roots:
                root = roots[0]
                self._take_entry()
                descend(self._dir(root.parent, b".", root.st, dst_fd, b".", b".", (),
                                  root.source, (*roots[1:], *tops)))
                return
            merged, _ = merge_listings([((layer.parent, layer.source), [(layer.name, layer.st)])
                                        for layer in tops])
            # (in rsync's order: the files, then each dir with its contents)
            for entry in sorted(merged, key=lambda entry: stat.S_ISDIR(entry.st.st_mode)):
                (parent, source), name = entry.layer, entry.name
                self._entry(parent, name, entry.st, dst_fd, name, name, (name,), source, None,
                            more_layers(entry))
        finally:
            for fd in fds:
                os.close(fd)

    def _finish(self: TreeSync) -> None:
        """rsync's end of run: dirs whose touch-up waited for hard links."""
        self._complete_pending()
        self._flush()  # (the generator's end of the list: it waits for the receiver)
        self._finish_transfers()
        for frame in self._late_touchups:
            self._retouch.pop(frame.dst_path, None)
        # (a dir a link could go into has u+w: its mode needs no putting back)
        again = [DirFrame(path, 0o700, mtime_ns) for path, mtime_ns in self._retouch.items()]
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
