"""``-H``: a model of rsync's hlink.c without incremental recursion.

Members of a group (one source inode) come in the walk's order; the first
is FIRST and the census knows the last.  A member whose previous member is
done is linked to the group's FIRST; otherwise it is synced on its own,
except that a missing one that is not the last waits.  A member that gets
written (or is found identical) becomes FIRST and links every member
before it in the chain to itself (``finish_hard_link()``); one that could
not be sent passes the job down its chain (``handle_skipped_hlink()``).
Destination dirs are opened again by path here, one component at a time,
never following a symlink.
"""

from __future__ import annotations

import errno
import os
import stat
from typing import TYPE_CHECKING

from .. import messages as msg
from ..itemize import NEW_COLUMNS
from .fs import PATH_FLAGS, PATH_FOLLOW, VIRTUAL, lstat_at, open_file
from .meta import (
    UNCHANGED,
    itemize_meta,
    read_src_meta,
    stat_letters,
)
from .model import DirFrame, LinkGroup, set_column

if TYPE_CHECKING:
    from .sync import TreeSync
    pass



class HardLinks:
    """Hard-link groups: waiting, linking, and skipped members."""

    def _sent(self: TreeSync, group: LinkGroup, index: int, failure: OSError | None) -> None:
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

    def _finish_transfers(self: TreeSync) -> None:
        """The transferred hard-link members are done (their waiting members
        are linked to them) or were not sent (rsync's handle_skipped_hlink)."""
        while self._finishing:
            group, index, failure = self._finishing.pop(0)
            if failure is None:
                # (the receiver had it after the sender's line for it)
                self._flush()
                self._finish_hard_link(group, index)
            else:
                self._skipped_hard_link(group, index, failure)

    @staticmethod
    def _check_prior(group: LinkGroup, index: int) -> int:
        """The member before ``index`` in its chain, past skipped ones."""
        member = group.members[index]
        prev = member.prev
        while prev >= 0 and group.members[prev].skip:
            prev = group.members[prev].prev
        member.prev = prev
        return prev

    def _hard_link_check(self: TreeSync, group: LinkGroup, index: int, dst_parent: int,
                         dst_name: bytes, dst_st: os.stat_result | None,
                         frame: DirFrame | None) -> bool:
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

    def _finish_hard_link(self: TreeSync, group: LinkGroup, index: int) -> None:
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
                self._fail(msg.generator_stat_failed(self._full(other.rel), exc))
                continue
            try:
                dst_st, _ = lstat_at(parent, other.dst_path[-1])
                self._maybe_hard_link(group, current, index, parent, other.dst_path[-1], dst_st)
            finally:
                self._close_dir(parent)

    def _skipped_hard_link(self: TreeSync, group: LinkGroup, index: int, exc: OSError | None) -> None:
        """rsync's handle_skipped_hlink(): the member could not be sent.  If
        it was the last, the member before it that waits becomes the last
        and goes through recv_generator() again: linked to a done member
        before it in the chain (hard_link_check(), so a link that failed at
        its turn fails again), else synced now (it reads the same inode, so
        it mostly fails the same way, and so on down the chain).  A symlink
        is made again from what the file list holds: its failure ends the
        chain."""
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
            if self._generated_again(group, index):
                return
            if group.symlinks:
                self._symlink_retry(group, index)
                return
            try:
                fd = open_file(member.src_shown, None)
            except OSError as again:
                self._source_open_failed(again, member.src_shown)
                continue
            try:
                self._write_retry(group, index, fd)
            finally:
                os.close(fd)
            return

    def _generated_again(self: TreeSync, group: LinkGroup, index: int) -> bool:
        """rsync's recv_generator() for a waiting member handed the turn, up
        to where it would be sent: a name it cannot lstat (its dir shut to
        us: EACCES) is its "failed to stat" line; a member with a done one
        before it is linked (or fails to be) by hard_link_check().  True
        when that handled it."""
        member = group.members[index]
        try:
            parent = self._open_dest_dir(member.dst_path[:-1])
        except OSError:
            return False  # (_write_retry gives up on it)
        try:
            st, err = lstat_at(parent, member.dst_path[-1])
            if st is None and err != errno.ENOENT:
                self._fail(msg.failed_to_stat(self._full(member.rel), err))
                return True
            return index > 0 and self._hard_link_check(group, index, parent, member.dst_path[-1],
                                                       st, None)
        finally:
            self._close_dir(parent)

    def _write_retry(self: TreeSync, group: LinkGroup, index: int, src_fd: int) -> None:
        """Write a waiting member from its own source path (see above)."""
        member = group.members[index]
        st = os.fstat(src_fd)
        parent_path, _, name = member.src_shown.rpartition(b"/")
        try:
            src_parent = os.open(parent_path or b".", PATH_FOLLOW)
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
            dst_st, _ = lstat_at(dst_parent, dst_name)
            if dst_st is not None and not stat.S_ISREG(dst_st.st_mode) and \
                    not self._make_way(dst_parent, dst_name, dst_st, stat.S_IFREG, member.rel):
                return
            self._item(self._transfer_code(src_meta, st.st_size, dst_st, dst_parent, dst_name,
                                           member.rel), member.rel)
            if self._write_new(src_fd, src_meta, dst_parent, dst_name, member.rel,
                               member.src_shown, size=st.st_size):
                self._sent(group, index, None)
        finally:
            self._close_dir(dst_parent)

    def _symlink_retry(self: TreeSync, group: LinkGroup, index: int) -> None:
        """Make a waiting symlink member after all (see above): its
        symlink, or the line of its failure once more."""
        member = group.members[index]
        try:
            dst_parent = self._open_dest_dir(member.dst_path[:-1])
        except OSError:
            return
        try:
            dst_name = member.dst_path[-1]
            dst_st, _ = lstat_at(dst_parent, dst_name)
            if self._make_symlink(group.target, group.meta, dst_parent, dst_name, dst_st,
                                  member.rel) is not None:
                self._finish_hard_link(group, index)
        finally:
            self._close_dir(dst_parent)

    def _maybe_hard_link(self: TreeSync, group: LinkGroup, index: int, target: int, dst_parent: int,
                         dst_name: bytes, dst_st: os.stat_result | None,
                         at_turn: bool = False) -> None:
        """rsync's maybe_hard_link(): make member ``index`` (``dst_name`` in
        ``dst_parent``) a link to member ``target``.  ``at_turn``: from
        hard_link_check(), when the member's own turn comes."""
        member, leader = group.members[index], group.members[target]
        try:
            leader_dir = self._open_dest_dir(leader.dst_path[:-1])
        except OSError as exc:
            self._fail(msg.generator_stat_failed(self._full(leader.rel), exc))
            return
        try:
            leader_st, err = lstat_at(leader_dir, leader.dst_path[-1])
            if leader_st is None:
                # (rsync's dry run links to DIR's file it "linked" the leader to)
                leader_st = self._dry_linked.get(leader.rel)
            if leader_dir == VIRTUAL and group.symlinks:
                err = self._lookup_errno(leader.dst_path)
            # (a dry run's leader it would have made is not there: rsync's
            # hard_link_check() takes that as it is -- a zeroed stat --,
            # unless its path runs into a file: ENOTDIR)
            if leader_st is None and not (self.dry_run and err == errno.ENOENT):
                self._fail(msg.generator_stat_failed(self._full(leader.rel), err))
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
                self._fail(msg.default_acl_refused(member.rel))
        finally:
            self._close_dir(leader_dir)

    def _link_code(self: TreeSync, group: LinkGroup, dst_st: os.stat_result | None, dst_parent: int,
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
                letters = set_column(letters, "x", late)
            return "hL." + resized + letters
        if kind not in (stat.S_IFREG, stat.S_IFDIR):
            # rsync reads no ACL for a symlink, special file or device (by
            # the type the name had, even once the link is there) ...
            letters = set_column(letters, "a", src_meta.acl_access is not None)
        if kind not in (stat.S_IFREG, stat.S_IFDIR, stat.S_IFLNK):
            # ... nor, without -D, a special file's or device's xattrs
            letters = set_column(letters, "x", self._keeps_xattrs(src_meta))
        elif linked and not self.dry_run:
            # The rest it reads once the link is made: the leader's, which
            # are the source's -- but over an old dir, get_acl() also asks
            # the new file for a default ACL, fails (the EACCES of
            # _maybe_hard_link) and leaves no ACL to compare: 'a'.
            if kind != stat.S_IFLNK:
                letters = set_column(letters, "a", kind == stat.S_IFDIR)
            letters = set_column(letters, "x", False)
        elif not self.dry_run and group.xattrs_late:
            # Found linked already: the leader's xattrs, fixed in place,
            # wait for rsync's receiver, which lags behind the generator.
            letters = set_column(letters, "x", True)
        if kind == stat.S_IFREG:  # (an ACL _acl_blind left alone is still compared)
            letters = self._seen_acl(letters, group.meta, src_meta)
        return "hf." + resized + letters

    def _open_dest_dir(self: TreeSync, parts: tuple[bytes, ...]) -> int:
        """Open a destination dir by its path below the root, one component
        at a time and never following a symlink (in a dry run, VIRTUAL for
        a dir it would have created)."""
        if self._virtual and any(parts[:i] in self._virtual for i in range(len(parts) + 1)):
            return VIRTUAL
        fd = self._root_fd
        for i, part in enumerate(parts):
            if self._shelters:
                part = self._shelters.get(parts[:i + 1], part)
            try:
                next_fd = os.open(part, PATH_FLAGS, dir_fd=fd)
            finally:
                self._close_dir(fd)
            fd = next_fd
        return fd

    def _lookup_errno(self: TreeSync, parts: tuple[bytes, ...]) -> int:
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

    def _close_dir(self: TreeSync, fd: int) -> None:
        """Close a dir fd from _open_dest_dir (not the root's, nor VIRTUAL)."""
        if fd != self._root_fd and fd != VIRTUAL:
            os.close(fd)
