"""Pass 2, the walk: rsync's generator over the merged list, dir by dir.

In each dir the non-dirs come sorted bytewise, then each subdir with its
subtree (rsync's f_name_cmp order).  A dir gets its attributes when it is
entered (``_dir``: a non-root user's dir gets u+rwx while it is filled),
then its extraneous entries are deleted (deletion.py, delete-during,
reverse order), then its contents are synced (``_dir_contents``); its mtime
is put back (and, for a non-root user, its mode) once the contents are
done, as rsync's final ``touch_up_dirs()`` does.  A new dir of an initial
copy is made under a temp name (a shelter) and renamed once complete.

A dir's steps are generators that yield its subdirs' steps (freshstack.py:
every dir's loop then runs at one depth of the frame stack).

What is known about the dir being filled lives in its ``DirFrame``
(model.py); each entry goes to files.py, symlinks.py or back here.
"""

from __future__ import annotations

import errno
import os
import stat
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from .. import messages as msg
from . import faults
from .freshstack import Steps, descend
from .fs import PATH_FLAGS, VIRTUAL, chmod_at, exact_names, lstat_at, open_listable
from .meta import (
    UNCHANGED,
    SrcMeta,
    apply_meta,
    read_src_meta,
)
from .model import (
    BEHIND_MIN,
    PROGRESS_INTERVAL,
    Cancelled,
    DirFrame,
    InSync,
    Layer,
    Source,
    join_rel,
    set_column,
    sibling,
)
from .packed import names_of
from .pending import DeleteCheck, TouchUp
from .transfer import (
    temp_name,
)
from .xattrs import receiver_keeps

if TYPE_CHECKING:
    from .sync import TreeSync
    pass



class DirWalk:
    """The walk: one entry, one dir and its contents, the touch-up."""

    def _entry(self: TreeSync, src_parent: int, name: bytes, st: os.stat_result, dst_parent: int,
               dst_name: bytes, rel: bytes, dst_path: tuple[bytes, ...], source: Source,
               frame: DirFrame | None = None, more: tuple[Layer, ...] = ()) -> None:
        if not self._entering(rel, source):
            return
        kind = stat.S_IFMT(st.st_mode)
        if kind == stat.S_IFDIR:
            descend(self._dir(src_parent, name, st, dst_parent, dst_name, rel, dst_path, source,
                              more))
            return
        if kind == stat.S_IFREG:
            self._file(src_parent, name, st, dst_parent, dst_name, rel, dst_path, source, frame)
        elif kind == stat.S_IFLNK:
            self._symlink(src_parent, name, st, dst_parent, dst_name, rel, dst_path, source, frame)
        else:
            self.out(msg.skipping_non_regular(rel))
            self.stats.files_skipped += 1
        self._done_entry(st)

    def _entering(self: TreeSync, rel: bytes, source: Source) -> bool:
        """An entry's turn; False if the sender left it out."""
        if self.cancel_event.is_set():
            raise Cancelled()
        if rel in source.dropped:
            return False
        self._take_entry()
        self.stats.current = rel
        return True

    def _done_entry(self: TreeSync, st: os.stat_result) -> None:
        self._done(0 if stat.S_ISDIR(st.st_mode) else st.st_size)

    def _done(self: TreeSync, size: int) -> None:
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
            # otherwise one every PROGRESS_INTERVAL, and a last one (_run).
            if stats.files_transferred != self._progress_xfr:
                self._progress_xfr = stats.files_transferred
            elif time.monotonic() < self._progress_next:
                return
            self._progress_next = time.monotonic() + PROGRESS_INTERVAL
            if self._held:  # (after the item lines before it, as it is now)
                sample = replace(stats)
                self._held.append(lambda: self.on_progress(sample))
            else:
                self.on_progress(stats)

    def _src_meta(self: TreeSync, st: os.stat_result, src_parent: int, name: bytes, rel: bytes,
                  source: Source, fd: int | None = None) -> SrcMeta | None:
        return read_src_meta(st, fd=fd, dirfd=src_parent, name=name, ctx=self.meta,
                             path=lambda: source.meta_path(rel))

    # -- directories ----------------------------------------------------------
    def _dir(self: TreeSync, src_parent: int, name: bytes, st: os.stat_result, dst_parent: int,
             dst_name: bytes, rel: bytes, dst_path: tuple[bytes, ...], source: Source,
             more: tuple[Layer, ...] = ()) -> Steps:
        """rsync's recv_generator for a dir, then its contents (with those
        of the other sources' dirs ``more``), then the touch-up: a step
        (yielding its subdirs' steps, see descend)."""
        # The dir is opened once, for its xattrs and its listing (by its fd
        # they cost a tenth of what a path through /proc/self/fd does).
        listing_fd = self._open_own_listing(src_parent, name, rel, source)
        try:
            yield from self._dir_opened(src_parent, name, st, dst_parent, dst_name, rel,
                                        dst_path, source, more, listing_fd)
        finally:
            if listing_fd is not None:
                os.close(listing_fd)

    def _open_own_listing(self: TreeSync, src_parent: int, name: bytes, rel: bytes,
                          source: Source) -> int | None:
        """The source dir opened to be listed, or None if that fails (its
        attributes are then read by name, and _open_layers tries again and
        reports what fails, in its turn)."""
        if rel in source.unlistable:
            return None
        try:
            return open_listable(name, src_parent)
        except OSError:
            return None

    def _dir_opened(self: TreeSync, src_parent: int, name: bytes, st: os.stat_result,
                    dst_parent: int, dst_name: bytes, rel: bytes, dst_path: tuple[bytes, ...],
                    source: Source, more: tuple[Layer, ...], listing_fd: int | None) -> Steps:
        src_meta = self._src_meta(st, src_parent, name, rel, source, fd=listing_fd)
        if src_meta is None:  # unreadable attributes: the sender left it out
            self._done_entry(st)
            return
        dst_st, _ = lstat_at(dst_parent, dst_name)
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
                self._fail(msg.mkdir_failed(self._full(rel), exc))
                if self._keeps_xattrs(src_meta) and not self._basis_dir_has_xattrs(
                        src_meta, dst_path, rel):
                    # rsync's receiver still comes to set the new dir's xattrs
                    self._fail(msg.receiver_stat_failed(self._full(rel), errno.ENOENT))
                self._skip_contents(src_parent, name, st, rel, dst_path, source, more)
                return
        mode = stat.S_IMODE(st.st_mode)
        if created and self._basis is not None:
            self._copy_basis_xattrs(rel, mode)
        # DST made by this run, or found empty by an initial copy (the
        # writer's start), is as new as a dir made here: nothing in it to
        # look up or delete.  (rsync's delete pass still opens DST, which
        # can fail only for a user without the permission: _solo_unreadable.)
        fresh = created or (not dst_path and self.am_root and
                            (self._root_new or self._writer is not None))
        frame = DirFrame(dst_path, mode, st.st_mtime_ns, virtual=created and self.dry_run,
                          fresh=fresh, shelter=shelter,
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
                yield from self._fill_dir(src_parent, name, dst_parent, dst_name, rel, dst_path,
                                          source, frame, more, listing_fd)
            finally:
                self._shut_dirs -= shuts
        if self._writer is not None and self._pending and not self.dry_run:
            self._send_batch()  # (after the files the writer has for it)
            self._pending.append(TouchUp(os.dup(dst_parent), dst_name, frame))
            self._bound_pending()
        else:
            self._dir_done(dst_parent, dst_name, frame)
        self._done_entry(st)

    def _in_shelter(self: TreeSync, dst_path: tuple[bytes, ...]) -> bool:
        """Whether a destination path lies inside a shelter not yet in place."""
        return bool(self._shelters) and any(dst_path[:i] in self._shelters
                                            for i in range(1, len(dst_path)))

    def _dir_done(self: TreeSync, dst_parent: int, dst_name: bytes, frame: DirFrame) -> None:
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
                self._fail(msg.finish_rename_failed(self._full(sibling(rel, frame.shelter)), rel,
                                                    exc))
            del self._shelters[frame.dst_path]
            frame.shelter = None
        if frame.waiting_links:
            self._late_touchups.append(frame)
        else:
            self._touch_up(dst_parent, dst_name, frame)

    def _publish_shelters(self: TreeSync) -> None:
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

    def _set_dir_meta(self: TreeSync, src_meta: SrcMeta, dst_st: os.stat_result | None, dst_parent: int,
                      dst_name: bytes, rel: bytes, created: bool, frame: DirFrame) -> str:
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
            return set_column(self._seen_acl(letters, src_meta, gen_meta), "x", True)
        letters = apply_meta(self.meta, gen_meta, None if created else dst_st, dirfd=dst_parent,
                             name=dst_name, exact_time=False, is_new=created, path=self._drel(rel))
        if tweak:
            self._tweak_dir(dst_parent, dst_name, mode, rel)
        return self._seen_acl(letters, src_meta, gen_meta)

    def _fill_dir(self: TreeSync, src_parent: int, name: bytes, dst_parent: int, dst_name: bytes,
                  rel: bytes, dst_path: tuple[bytes, ...], source: Source,
                  frame: DirFrame, more: tuple[Layer, ...] = (),
                  listing_fd: int | None = None) -> Steps:
        """The dir's contents: deletions, then its entries (``listing_fd``:
        the source dir, opened already; it stays the caller's to close)."""
        layers, src_fds = self._open_layers(src_parent, name, rel, source, more,
                                            opened=listing_fd)
        if not layers:
            return
        try:
            try:
                # (DST itself, as ".", is not looked up again: a mode
                # without u+x, already set, would forbid that, not rsync's
                # work by name in it)
                dst_fd = VIRTUAL if frame.virtual else os.dup(dst_parent) \
                    if dst_name == b"." else os.open(dst_name, PATH_FLAGS, dir_fd=dst_parent)
            except OSError as exc:
                self._fail(msg.generator_opendir_failed(self._full(rel), exc))
                return
            try:
                yield from self._dir_contents(layers, dst_parent, dst_name, dst_fd, rel,
                                              dst_path, frame)
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

    def _tweak_dir(self: TreeSync, dst_parent: int, dst_name: bytes, mode: int, rel: bytes) -> None:
        """rsync gives a non-root user u+rwx on a dir while filling it."""
        try:
            chmod_at(dst_parent, dst_name, mode | 0o700)
        except OSError as exc:
            self._fail(msg.modify_permissions_failed(self._full(rel), exc))

    def _receiver_pass(self: TreeSync, dst_parent: int, dst_name: bytes, frame: DirFrame) -> None:
        """rsync's receiver writing a dir's xattrs and setting its attributes
        again (which takes the generator's u+rwx away)."""
        if frame.receiver_pass is None or self.dry_run:
            return
        src_meta, rel = frame.receiver_pass
        frame.receiver_pass = None
        apply_meta(self.meta, replace(src_meta, mode=src_meta.mode | 0o700), None,
                   dirfd=dst_parent, name=dst_name, exact_time=False, is_new=False, path=self._drel(rel))
        try:
            chmod_at(dst_parent, dst_name, frame.mode)
        except OSError as exc:
            self._fail(msg.attr_call_failed("receiver", msg.set_permissions_call(self._full(rel)),
                                            exc.errno or 0))

    def _touch_up(self: TreeSync, dst_parent: int, dst_name: bytes, frame: DirFrame) -> None:
        """rsync's touch_up_dirs(): a non-root user's dir without u+w gets its
        mode back; the mtime, changed by the contents, is set again."""
        if self.dry_run:
            return
        self._receiver_pass(dst_parent, dst_name, frame)
        if frame.shut_out:
            return
        if not self.am_root and not frame.mode & stat.S_IWUSR:
            try:
                chmod_at(dst_parent, dst_name, frame.mode)
            except OSError:
                pass
        st, _ = lstat_at(dst_parent, dst_name)
        if st is not None and st.st_mtime_ns // 1_000_000_000 != frame.mtime_ns // 1_000_000_000:
            try:
                os.utime(dst_name, ns=(st.st_atime_ns, frame.mtime_ns), dir_fd=dst_parent,
                         follow_symlinks=False)
                faults.mutated("utime")
            except OSError:
                pass

    def _dir_contents(self: TreeSync, layers: list[tuple[int, Source, list | None]], dst_parent: int,
                      dst_name: bytes, dst_fd: int, rel: bytes, dst_path: tuple[bytes, ...],
                      frame: DirFrame) -> Steps:
        """``layers``: the source dirs whose entries make up this dir's
        list (see _open_layers); mostly one.  Its subdirs come last, once
        its listing is let go (a deep tree holds no level's)."""
        for name, st, fd, src, more in self._dir_entries(layers, dst_parent, dst_name, dst_fd,
                                                         rel, dst_path, frame):
            child = join_rel(rel, name)
            if self._entering(child, src):
                yield self._dir(fd, name, st, dst_fd, name, child, dst_path + (name,), src, more)

    def _dir_entries(self: TreeSync, layers: list[tuple[int, Source, list | None]], dst_parent: int,
                     dst_name: bytes, dst_fd: int, rel: bytes, dst_path: tuple[bytes, ...],
                     frame: DirFrame) -> list[tuple]:
        """A dir's deletions and its entries but its subdirs, which it
        returns (name, lstat, source dir's fd, source, layers below)."""
        src_fd, source, _ = layers[0]
        origin = None  # (merged: each entry's source dir, see _merged_dir)
        if len(layers) > 1 or layers[0][2] is not None:
            entries, origin = self._merged_dir(layers, rel)
            precheck = None
        else:
            precheck = None if frame.fresh else self._precheck
            names = None
            if precheck is not None and dst_fd != VIRTUAL:
                try:
                    names = precheck.share(rel, src_fd, dst_fd)
                except OSError:
                    pass  # (the listing fails again below, and is reported there)
            entries = self._read_source_dir(src_fd, rel, source, precheck=precheck, names=names)
        changes = faults.changes  # (see _recheck)
        if frame.fresh and not self._solo_unreadable(frame):
            # Nothing to delete in a dir this run made: only the warning.  A
            # file before it still with the writer may yet turn out to be
            # unreadable (see _complete_write): then it waits its turn.
            if self.delete and not frame.virtual:
                if self._writer is not None and self._pending:
                    self._pending.append(DeleteCheck())
                    self._bound_pending()
                else:
                    self._no_deletion()
        elif self.delete:
            keep, in_sync = names_of(entries, InSync)
            frame.dst_stats = self._delete_extraneous(dst_parent, dst_name, rel, keep,
                                                      frame.virtual, in_sync)
        dirs = []
        # With a receiver pass to come for this dir, its transfers wait for
        # it: rsync's receiver handles the dir before its files, while the
        # generator (creating symlinks, fixing attributes) runs ahead.
        deferred: list[tuple] | None = [] if frame.receiver_pass is not None else None
        later: list[Callable[[], None]] = []
        frame.deferred, frame.receiver_later = deferred, later
        # A new single-linked small file of a dir this run made goes
        # straight to the writer (as _entry, _file and _transfer_file would
        # send it, in fewer steps: most files of an initial copy are such).
        writer = self._writer if frame.fresh and deferred is None else None
        fd, src, more = src_fd, source, ()
        # Where names are exact bytes, what the walk changes under one name
        # (a transfer, a deletion) reaches no file found in sync under
        # another: no lstat again (exact_names; None: not asked yet).
        exact: bool | None = None
        try:
            for name, st in entries:
                if origin is not None:
                    fd, src, more = origin[name]
                if st.__class__ is InSync and faults.changes != changes:
                    if exact is None:
                        exact = exact_names(dst_fd, self._mounts)
                    if not exact:
                        st = self._recheck(src_fd, dst_fd, name, join_rel(rel, name), source,
                                           st)
                        if st is None:
                            continue
                if st.__class__ is InSync:
                    # Nothing to do: _file would change nothing.
                    if self.cancel_event.is_set():
                        raise Cancelled()
                    self._take_entry()
                    self._done(st.size)
                elif stat.S_ISDIR(st.st_mode):
                    dirs.append((name, st, fd, src, more))
                elif writer is not None and st.st_nlink == 1 and st.st_size < BEHIND_MIN and \
                        stat.S_ISREG(st.st_mode) and self._writer_takes(st.st_size, dst_fd):
                    if self.cancel_event.is_set():
                        raise Cancelled()
                    child = join_rel(rel, name)
                    if child not in src.dropped:
                        self._take_entry()
                        self.stats.current = child
                        self._queue_write(fd, name, st, dst_fd, dst_path + (name,), child,
                                          src, frame.sheltered)
                        self._done(st.st_size)
                else:
                    self._entry(fd, name, st, dst_fd, name, join_rel(rel, name),
                                dst_path + (name,), src, frame)
        finally:
            frame.dst_stats = frame.deferred = frame.receiver_later = None
            if precheck is not None:
                precheck.end_dir(rel)
        if frame.receiver_pass is not None:
            self._receiver_pass(dst_parent, dst_name, frame)
        for receiver_pass in later:
            receiver_pass()
        for args in deferred or ():
            self._transfer_file(*args)
        return dirs

    def _solo_unreadable(self: TreeSync, frame: DirFrame) -> bool:
        """A dir that is DST itself, made by this run for a non-root user
        whose mode denies u+r: rsync's delete pass opendir()s every dir,
        even a new one, and fails there (only this one gets no u+rwx while
        it is filled)."""
        return bool(self._solo) and not self.am_root and not frame.mode & stat.S_IRUSR
