"""``--delete``: rsync's ``delete_in_dir()``, ``delete_item()`` and
``delete_dir_contents()`` on the receiving side.

A dir's destination entries that the sender's list lacks are deleted
before its contents are synced (delete-during), in reverse f_name_cmp order;
excluded entries are kept and keep their dir.  Nothing is deleted once the
sender could not read something ("IO error encountered -- skipping file
deletion").  An entry of another type in the way of a new one is removed
here too (``_make_way``).
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Container
from typing import TYPE_CHECKING

from .. import messages as msg
from . import faults
from .fs import LIST_FLAGS, PATH_FLAGS, chmod_at, lstat_at, streamed_names
from .model import KEPT_STATS, Cancelled, join_rel

if TYPE_CHECKING:
    from .sync import TreeSync
    pass



class Deletion:
    """Deleting what the source lacks, and making way for another type."""

    def _dest_listing(self: TreeSync, dirfd: int, name: bytes, rel: bytes,
                      in_sync: Container[bytes] | None = None,
                      keep: Container[bytes] | None = None,
                      kept: dict[bytes, os.stat_result] | None = None,
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
        (``in_sync``) are left out: they stay, and were just read.  So are
        the names in ``keep``: the first of them go into ``kept`` with their
        lstat (a wide dir's lstats are not all held)."""
        listing: list[tuple[bytes, os.stat_result]] = []
        protected = False
        try:
            fd = os.open(name, LIST_FLAGS | os.O_NOFOLLOW, dir_fd=dirfd)
        except OSError as exc:
            self._scan_failed(msg.generator_opendir_failed(self._full(rel), exc))
            return listing, protected
        if not in_sync:
            in_sync = None  # (asked once: a wide dir's answers it in Python)
        try:
            for child in streamed_names(fd):  # (a wide dir's names are not held)
                if in_sync is not None and child in in_sync:
                    continue
                child_rel = join_rel(rel, child)
                st, err = lstat_at(fd, child)
                if st is None:
                    if err == errno.ENOENT:
                        continue
                    if self.rules.excluded(child_rel, False) or \
                            self.rules.excluded(child_rel, True):
                        protected = True  # there, and excluded: it keeps the dir
                    else:
                        self._scan_failed(msg.generator_readlink_stat_failed(
                            self._full(child_rel), err))
                    continue
                if self.rules.excluded(child_rel, stat.S_ISDIR(st.st_mode)):
                    protected = True
                elif keep is not None and child in keep:
                    if kept is not None and len(kept) < KEPT_STATS:
                        kept[child] = st
                else:
                    listing.append((child, st))
            listing.sort(key=lambda entry: (stat.S_ISDIR(entry[1].st_mode), entry[0]),
                         reverse=True)
            return listing, protected
        finally:
            os.close(fd)

    def _delete_extraneous(self: TreeSync, dst_parent: int, dst_name: bytes, rel: bytes,
                           keep: Container[bytes] | None, virtual: bool = False,
                           in_sync: Container[bytes] | None = None,
                           ) -> dict[bytes, os.stat_result] | None:
        """rsync's delete_in_dir(): remove what the sender's list lacks (a
        dry run's rsync does not look into a dir it would have created).
        Returns the lstat of the entries kept (None: the dir was not
        listed), which the dir's files then need not take again."""
        if virtual or self._no_deletion() or keep is None:
            return None
        kept: dict[bytes, os.stat_result] = {}
        doomed, _ = self._dest_listing(dst_parent, dst_name, rel, in_sync, keep, kept)
        if not doomed:
            return kept
        try:
            fd = os.open(dst_name, PATH_FLAGS, dir_fd=dst_parent)
        except OSError:
            return kept
        try:
            for name, st in doomed:
                self._delete(fd, name, st, join_rel(rel, name), recurse=True)
        finally:
            os.close(fd)
        return kept

    def _no_deletion(self: TreeSync) -> bool:
        """rsync deletes nothing once its sender could not read something,
        and says so once."""
        if not (self.scan_error or self.meta.src_io_error):
            return False
        if not self._warned_no_delete:
            self.out(msg.NO_DELETION)
            self._warned_no_delete = True
        return True

    def _delete(self: TreeSync, dirfd: int, name: bytes, st: os.stat_result, rel: bytes, recurse: bool,
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
                    self.out(msg.cannot_delete_non_empty(rel))
                else:
                    self._fail(msg.delete_failed("rmdir", rel, exc))
                return False
        else:
            try:
                os.unlink(name, dir_fd=dirfd)
                faults.mutated("unlink")
            except FileNotFoundError:
                return True
            except OSError as exc:
                self._fail(msg.delete_failed("unlink", rel, exc))
                return False
        if count:
            # (an entry removed to make way for another type is not itemized)
            self.stats.files_deleted += 1
            self._item("*deleting", rel, is_dir=stat.S_ISDIR(st.st_mode))
        return True

    def _allow_delete(self: TreeSync, dirfd: int, name: bytes, st: os.stat_result) -> None:
        """rsync's DEL_NO_UID_WRITE: a non-root user's own entry without u+w
        gets it first."""
        if not self.am_root and not self.dry_run and not st.st_mode & stat.S_IWUSR \
                and st.st_uid == self.uid:
            try:
                chmod_at(dirfd, name, stat.S_IMODE(st.st_mode) | stat.S_IWUSR)
            except OSError:
                pass

    def _delete_dir_contents(self: TreeSync, dirfd: int, name: bytes, rel: bytes, recurse: bool) -> bool:
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
                fd = os.open(name, PATH_FLAGS, dir_fd=dirfd)
            except OSError:
                return ok
            try:
                for child, child_st in listing:
                    child_rel = join_rel(rel, child)
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
            self.out(msg.cannot_delete_non_empty(rel))
        return ok

    def _make_way(self: TreeSync, dirfd: int, name: bytes, dst_st: os.stat_result, new_kind: int,
                  rel: bytes, own_fix: bool = True) -> bool:
        """rsync's delete_item(..., DEL_FOR_*): remove a destination entry of
        another type so ``new_kind`` can take its place (a dir with its
        contents only with --delete)."""
        if self._delete(dirfd, name, dst_st, rel, recurse=self.delete, count=False,
                        own_fix=own_fix):
            return True
        self._fail(msg.could_not_make_way(new_kind, rel))
        return False
