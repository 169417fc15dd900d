"""Regular files: rsync's ``recv_generator()`` for a file, then its
receiver's ``receive_data()`` / ``finish_transfer()``.

With ``-c`` a destination file of the same size and checksum keeps its data
and gets its attributes fixed in place; anything else is written to a temp
file in the same dir, given its attributes and renamed over the target
(never written in place).  A source caught changing while it is read is
copied once more, then discarded (exit 23), as rsync's receiver does.  New
small files of an initial copy may go to the writer process, big ones are
copied behind the walk (pending.py).
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from typing import TYPE_CHECKING

from .. import messages as msg
from ..itemize import NEW_COLUMNS
from ..messages import sender_abs
from . import faults
from .fs import NotRegularFile, lstat_at, open_file, reserve_space
from .meta import (
    UNCHANGED,
    SrcMeta,
    apply_meta,
    itemize_meta,
)
from .model import BEHIND_MIN, DirFrame, Fatal, LinkGroup, Member, Source, copied_intact, sibling
from .pending import CopyJob
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

if TYPE_CHECKING:
    from .sync import TreeSync
    pass



class FileTransfer:
    """One regular file: compare, fix in place, or write anew."""

    def _file(self: TreeSync, src_parent: int, name: bytes, st: os.stat_result, dst_parent: int,
              dst_name: bytes, rel: bytes, dst_path: tuple[bytes, ...], source: Source,
              frame: DirFrame | None) -> None:
        group = self._groups.get((st.st_dev, st.st_ino)) if st.st_nlink > 1 else None
        if group is None and frame is not None and frame.fresh:
            dst_st, stat_errno = None, errno.ENOENT
        else:
            # The delete pass's lstat, unless another name shares the inode
            # (an entry before this one may have changed its attributes).
            dst_st = frame.dst_stats.pop(dst_name, None) if frame and frame.dst_stats else None
            stat_errno = 0
            if dst_st is None or group is not None or dst_st.st_nlink > 1:
                dst_st, stat_errno = lstat_at(dst_parent, dst_name)
        index = -1
        if group is not None:
            index = len(group.members)
            group.members.append(Member(rel, dst_path, source.sender_path(rel), index - 1,
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
            self._fail(msg.failed_to_stat(self._full(rel), stat_errno))
            return
        self._transfer_file(src_parent, name, st, dst_parent, dst_name, rel, dst_path, source,
                            group, index, dst_st, frame=frame,
                            direct=frame is not None and frame.sheltered)

    def _transfer_file(self: TreeSync, src_parent: int, name: bytes, st: os.stat_result, dst_parent: int,
                       dst_name: bytes, rel: bytes, dst_path: tuple[bytes, ...], source: Source,
                       group: LinkGroup | None, index: int,
                       dst_st: os.stat_result | None, deferred: bool = False,
                       direct: bool = False, frame: DirFrame | None = None) -> None:
        """A regular file whose destination is missing or a regular file:
        fix its attributes in place if identical, else write it anew.
        ``deferred``: its turn is now (see _dir_contents and _complete_write);
        ``direct``: its dir is in a shelter (see _dir); ``frame``: its dir,
        while the dir's entries are walked."""
        direct = direct and dst_st is None
        if self._writer is not None and not deferred and group is None and dst_st is None and \
                frame is not None and frame.fresh and frame.deferred is None and \
                st.st_size < BEHIND_MIN and \
                self._writer_takes(st.st_size, dst_parent):
            # (no itemizing with a writer: nothing to print before it)
            self._queue_write(src_parent, name, st, dst_parent, dst_path, rel, source, direct)
            return
        try:
            src_fd, open_error = open_file(name, src_parent), None
        except OSError as exc:
            src_fd, open_error = -1, exc
        if open_error is not None and open_error.errno == errno.ENOENT:
            self._source_open_failed(open_error, source.sender_path(rel))  # vanished
            if group is not None:
                self._sent(group, index, open_error)
            return
        if isinstance(open_error, NotRegularFile):  # as the walk reports one it meets
            self.out(msg.skipping_non_regular(rel))
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
                    letters = self._update_in_place(src_meta, dst_parent, dst_name, rel, dst_fd,
                                                    frame.receiver_later if frame else None)
                finally:
                    if dst_fd >= 0:
                        os.close(dst_fd)
                if group is not None and "x" in letters:
                    group.xattrs_late = True
                if letters != UNCHANGED:
                    self._item(".f.." + letters, rel)
            elif frame is not None and frame.deferred is not None and not deferred:
                # The receiver's turn comes later (see _dir_contents).
                frame.deferred.append((src_parent, name, st, dst_parent, dst_name, rel,
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
                                       behind=group is None and st.st_size >= BEHIND_MIN
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

    def _same_as_dest(self: TreeSync, src_fd: int, dst_parent: int, dst_name: bytes,
                      size: int) -> tuple[bool, int]:
        """-c for a destination file of the source's size: whether both hold
        the same ``size`` bytes, and when they do, the destination's open fd
        (-1 if it could not be opened: then both sides were unreadable)."""
        try:
            dst_fd = open_file(dst_name, dst_parent)
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

    def _update_in_place(self: TreeSync, src_meta: SrcMeta, dst_parent: int, dst_name: bytes,
                         rel: bytes, dst_fd: int = -1,
                         later: list[Callable[[], None]] | None = None) -> str:
        """Fix an identical file's attributes; returns the itemize letters.
        With its open fd (it is readable, so rsync reads its ACLs: see
        _acl_blind) they are read and set through it.  ``later``: where
        its dir's receiver passes wait (DirFrame.receiver_later)."""
        gen_meta = src_meta if dst_fd >= 0 else self._acl_blind(src_meta, dst_parent,
                                                                  dst_name, rel)
        if self.dry_run:
            letters = self._letters_of(gen_meta, None, dst_parent, dst_name, rel)
        else:
            letters = apply_meta(self.meta, gen_meta, None, dirfd=dst_parent, name=dst_name,
                                 fd=dst_fd if dst_fd >= 0 else None, exact_time=True,
                                 is_new=False, path=self._drel(rel), later=later)
        return self._seen_acl(letters, src_meta, gen_meta)

    def _transfer_code(self: TreeSync, src_meta: SrcMeta, size: int, dst_st: os.stat_result | None,
                       dst_parent: int, dst_name: bytes, rel: bytes) -> str | None:
        """The itemize code of a transfer, from the file it replaces (None
        when not itemizing).  With -c a replaced regular file always shows
        ``c``; ``s`` when the sizes differ.  rsync's generator itemizes the
        file it replaces whether or not -i asks (protocol >= 29): it reads
        its ACLs and xattrs, and says so when it cannot, either way."""
        if dst_st is not None and stat.S_ISREG(dst_st.st_mode):
            gen_meta = self._acl_blind(src_meta, dst_parent, dst_name, rel)
            letters = itemize_meta(self.meta, gen_meta, dst_st, dirfd=dst_parent,
                                   name=dst_name, path=self._drel(rel), transfer=True)
            if self.on_item is None:
                return None
            resized = "." if dst_st.st_size == size else "s"
            return ">fc" + resized + self._seen_acl(letters, src_meta, gen_meta)
        if self.on_item is None:
            return None
        if dst_st is None and rel in self._basis_codes:
            return self._basis_codes.pop(rel)  # (against DIR's file: see _link_dest_file)
        return ">f" + NEW_COLUMNS

    def _write_new(self: TreeSync, src_fd: int, src_meta: SrcMeta, dst_parent: int, dst_name: bytes,
                   rel: bytes, src_path: bytes | None = None, *, size: int,
                   behind: bool = False, attempts: tuple[int, ...] = (1, 2),
                   direct: bool = False, role: str = "receiver") -> bool:
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
        which is as good as a temp file's there.  ``role``: who rsync says
        failed to make or rename the temp file (the generator, copying a
        --link-dest match locally)."""
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
                self._fail(msg.mkstemp_failed(self._full(sibling(rel, tmp)), exc, role))
                return False
            read_error: OSError | None = None
            try:
                before = os.fstat(src_fd)
                if behind and attempt == 1 and reserve_space(
                        tmp_fd, before.st_size, self.am_root, self._pending_bytes()):
                    self._copy_behind(CopyJob(os.dup(src_fd), tmp_fd, tmp, before, src_meta,
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
                                      dst_parent, dst_name, rel, src_path, attempt, role)
            if done is not None:
                return done
            os.lseek(src_fd, 0, os.SEEK_SET)
        return False

    def _write_failed(self: TreeSync, exc: OSError, rel: bytes) -> Fatal:
        return Fatal(11, msg.write_failed(sender_abs(self._dest_abs(self._drel(rel))), exc),
                     msg.exit_line(11),
                     msg.SENDER_BROKEN_PIPE)  # (rsync's sender, writing to the receiver that died)

    def _finish_write(self: TreeSync, src_fd: int, tmp_fd: int, tmp: bytes, before: os.stat_result,
                      copied: int, read_error: OSError | None, src_meta: SrcMeta,
                      dst_parent: int, dst_name: bytes, rel: bytes, src_path: bytes | None,
                      attempt: int, role: str = "receiver") -> bool | None:
        """A copied temp file: if the source stayed intact, its attributes
        and its real name (True); else it is removed and the failure told
        (False after the second attempt, None: copy it again).  Closes
        ``tmp_fd``."""
        try:
            intact = copied_intact(copied, before, os.fstat(src_fd))
            if intact:
                # (rsync's receiver sets the temp file's ACL through its open fd)
                apply_meta(self.meta, src_meta, None, dirfd=dst_parent, name=tmp, fd=tmp_fd,
                           exact_time=True, is_new=True,
                           path=lambda: sibling(rel, temp_name(tmp) if tmp == dst_name else tmp))
                if not self._put_in_place(tmp, dst_parent, dst_name, rel, role):
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
            shown = sender_abs(src_path if src_path is not None else rel)
            self._fail(msg.read_errors_mapping(shown, code))
        if attempt == 2:
            self._fail(msg.failed_verification(self._drel(rel)))
            return False
        return None

    def _put_in_place(self: TreeSync, tmp: bytes, dst_parent: int, dst_name: bytes, rel: bytes,
                      role: str = "receiver") -> bool:
        """A finished temp file takes its real name (the writer process
        leaves that to the walk: _complete_write).  When the rename is
        refused (an immutable file, a sticky dir's entry of another
        owner) the temp file is removed and the run goes on, as rsync's
        finish_transfer() does: False."""
        if tmp != dst_name:  # (else written in a shelter under its own name)
            try:
                os.rename(tmp, dst_name, src_dir_fd=dst_parent, dst_dir_fd=dst_parent)
            except OSError as exc:
                self._fail(msg.finish_rename_failed(self._full(sibling(rel, tmp)), self._drel(rel),
                                                    exc, role))
                unlink_quietly(dst_parent, tmp)
                return False
            faults.mutated("rename")
        self._made_here(dst_parent, dst_name)
        return True
