"""Symlinks (rsync's recv_generator for a symlink, and ``atomic_create()``).

A symlink with the source's target is kept (its attributes fixed), any
other entry is replaced: made under a temp name and renamed over it.
Symlinks that share an inode are a hard-link group as files are.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from typing import TYPE_CHECKING

from .. import messages as msg
from ..itemize import NEW_COLUMNS
from . import faults
from .fs import lstat_at
from .meta import (
    NEW,
    UNCHANGED,
    SrcMeta,
    apply_meta,
)
from .model import DirFrame, Member, Source, join_rel, set_column
from .transfer import (
    temp_name,
    unlink_quietly,
)

if TYPE_CHECKING:
    from .sync import TreeSync
    pass



class Symlinks:
    """Symlinks, and rsync's atomic_create() for links and symlinks."""

    def _symlink(self: TreeSync, src_parent: int, name: bytes, st: os.stat_result, dst_parent: int,
                 dst_name: bytes, rel: bytes, dst_path: tuple[bytes, ...], source: Source,
                 frame: DirFrame | None) -> None:
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
        fresh = frame is not None and frame.fresh
        dst_st = None if fresh and group is None else lstat_at(dst_parent, dst_name)[0]
        if group is not None:
            index = len(group.members)
            group.members.append(Member(rel, dst_path, source.sender_path(rel), index - 1,
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

    def _make_symlink(self: TreeSync, target: bytes, src_meta: SrcMeta, dst_parent: int,
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
                    letters = set_column(letters, "x", self._keeps_xattrs(src_meta))
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

    def _atomic_create(self: TreeSync, dst_parent: int, dst_name: bytes, dst_st: os.stat_result | None,
                       rel: bytes, verb: str, make: Callable[[bytes], None], shown: str) -> bool:
        """rsync's atomic_create(): make the link or symlink under its own
        name when nothing is there, else under a temp name renamed over the
        old entry.  Failures are rsync's lines; returns whether it worked."""
        if self.dry_run:
            return True
        create = dst_name if dst_st is None else self._link_temp(dst_parent, dst_name)
        created_rel = join_rel(rel.rpartition(b"/")[0], create)
        try:
            make(create)
            faults.mutated(verb)
        except OSError as exc:
            self._fail(msg.create_failed(verb, self._full(created_rel), shown, exc))
            return False
        if create != dst_name:
            try:
                os.rename(create, dst_name, src_dir_fd=dst_parent, dst_dir_fd=dst_parent)
                faults.mutated("rename")
            except OSError as exc:
                unlink_quietly(dst_parent, create)
                self._note_stuck_temp(dst_parent, dst_name, create)
                self._fail(msg.generator_rename_failed(self._full(created_rel), self._full(rel), exc))
                return False
        return True

    def _link_temp(self: TreeSync, dirfd: int, name: bytes) -> bytes:
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

    def _note_stuck_temp(self: TreeSync, dirfd: int, name: bytes, tmp: bytes) -> None:
        if lstat_at(dirfd, tmp)[0] is not None:
            st = os.fstat(dirfd)
            self._stuck_temps[(st.st_dev, st.st_ino, name)] = tmp
