"""``--link-dest=DIR`` in the walk (rsync's ``try_dests_reg()`` and
``try_dests_non()``); finding DIR's match for an entry is linkdest.py's.

A new file identical to DIR's (content, with -c by checksum, and every
preserved attribute) is hard-linked from DIR; a match in content only is
copied locally; a file match of the same type is the basis its transfer is
itemized against.  DIR's entries are never changed.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from typing import TYPE_CHECKING

from .. import messages as msg
from ..itemize import NEW_COLUMNS
from . import faults
from .fs import open_file, xattrs_readable
from .linkdest import Basis, check_basis_dirs
from .meta import (
    ITEMIZE_ATTRS,
    UNCHANGED,
    SrcMeta,
    itemize_meta,
)
from .model import LinkGroup, Source, set_column
from .transfer import (
    same_size_content,
)

if TYPE_CHECKING:
    from .sync import TreeSync
    pass



class LinkDestRun:
    """--link-dest: link, copy or itemize against DIR's entry."""

    def _basis_letters(self: TreeSync, src_meta: SrcMeta, dirfd: int, name: bytes, st: os.stat_result,
                       rel: bytes, path: bytes) -> str:
        """The attribute columns of DIR's entry (at ``path``) against the
        source's (rsync's unchanged_attrs() is these all unchanged)."""
        letters = itemize_meta(self.meta, self._acl_blind(src_meta, dirfd, name, rel), st,
                               dirfd=dirfd, name=name, path=path)
        if not self.am_root and letters[-1] == "." and self._keeps_xattrs(src_meta) and \
                not xattrs_readable(path):
            # (rsync takes xattrs it could not read for none: they differ)
            letters = set_column(letters, "x", True)
        return letters

    def _find_basis(self: TreeSync, kind: int, src_meta: SrcMeta, dst_path: tuple[bytes, ...], rel: bytes,
                    same_content: Callable[[int, bytes, os.stat_result, bytes], bool]
                    ) -> tuple[Basis | None, str]:
        """DIR's best match for an entry, and its attribute columns."""
        letters: dict[tuple[int, int], str] = {}

        def unchanged(dirfd: int, name: bytes, st: os.stat_result, path: bytes) -> bool:
            key = (st.st_dev, st.st_ino)
            letters[key] = self._basis_letters(src_meta, dirfd, name, st, rel, path)
            return letters[key] == UNCHANGED

        basis = self._basis.find(dst_path, kind, same_content, unchanged)
        if basis is None:
            return None, UNCHANGED
        key = (basis.st.st_dev, basis.st.st_ino)
        if key not in letters:  # (a level-1 match: not compared yet)
            letters[key] = self._basis_letters(src_meta, basis.dirfd, basis.name, basis.st, rel,
                                               basis.path)
        return basis, letters[key]

    def _check_basis_dirs(self: TreeSync) -> None:
        """rsync's warnings for a DIR not there, once in DST's parent or DST."""
        for line in check_basis_dirs(self._basis.dirs) if self._basis is not None else ():
            self.err(line)

    def _basis_has(self: TreeSync, dst_path: tuple[bytes, ...], st: os.stat_result) -> bool:
        """Whether a DIR holds ``st``'s inode at ``dst_path``."""
        for base in self._basis.dirs if self._basis is not None else ():
            try:
                found = os.lstat(os.path.join(base, *dst_path))
            except OSError:
                continue
            if (found.st_dev, found.st_ino) == (st.st_dev, st.st_ino):
                return True
        return False

    def _basis_dir_has_xattrs(self: TreeSync, src_meta: SrcMeta, dst_path: tuple[bytes, ...],
                              rel: bytes) -> bool:
        """Whether a dir in DIR has the new dir's xattrs already: then rsync's
        generator, itemizing the new dir against it (try_dests_non()),
        leaves its receiver nothing to set."""
        if self._basis is None:
            return False
        basis, letters = self._find_basis(stat.S_IFDIR, src_meta, dst_path, rel,
                                          lambda *_: True)
        return basis is not None and letters[ITEMIZE_ATTRS.index("x")] == "."

    def _new_dir_code(self: TreeSync, src_meta: SrcMeta, dst_path: tuple[bytes, ...], rel: bytes
                      ) -> str | None:
        """The itemize code of a new dir: with a dir in DIR, its changes
        against that one, nothing if none (rsync's try_dests_non())."""
        if self._basis is None:
            return "cd" + NEW_COLUMNS
        basis, letters = self._find_basis(stat.S_IFDIR, src_meta, dst_path, rel,
                                          lambda *_: True)
        if basis is None:
            self._basis_dir = None
            return "cd" + NEW_COLUMNS
        self._basis_dir = (rel, basis.path if dst_path else os.path.join(basis.path, b"."))
        if not dst_path and not self.dry_run:
            self._copy_basis_xattrs(rel, 0o700)  # (DST is made already, readable)
        return None if basis.level == 3 else "cd.." + letters

    def _copy_basis_xattrs(self: TreeSync, rel: bytes, mode: int) -> None:
        """Once a new dir is made (or a dry run would have made it): rsync
        3.5.0 copies the xattrs of DIR's dir onto each new dir
        (gen_entry_copy_xattrs(), the source's are set after): it opens the
        new dir's parent below its cwd, then the dir for reading.  That
        fails (exit 23) for a non-root user's new dir without u+r, and in a
        dry run, which has not made it -- its cwd then DST, or where it was
        started when it could not enter a missing DST; then it opens DIR's
        dir for reading."""
        if self._basis_dir is None or rel != self._basis_dir[0]:
            return  # (no dir in DIR)
        basis_path, self._basis_dir = self._basis_dir[1], None
        path = self._drel(rel)
        shown = os.fsdecode(self._dest_abs(path))
        failure = self._new_dir_unopenable(path, shown, mode)
        if failure is None:
            try:
                os.close(os.open(basis_path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC))
                return
            except OSError as exc:  # (as nobody, a dir of DIR without u+r)
                failure = msg.secure_open_basis_failed(basis_path, exc)
        self._fail(msg.copy_xattrs_failed(failure))

    def _new_dir_unopenable(self: TreeSync, path: bytes, shown: str, mode: int) -> str | None:
        """Why rsync cannot open the new dir to copy xattrs onto (see above)."""
        if not self.dry_run:
            if not self.am_root and not mode & stat.S_IRUSR:
                return msg.openat_failed(shown, errno.EACCES)
            return None
        base = os.getcwdb() if self._root_new else self._curr_dir
        if not os.path.isdir(os.path.join(base, path.rpartition(b"/")[0])):
            return msg.secure_open_failed(shown, errno.ENOENT)
        if not os.path.isdir(os.path.join(base, path)):
            return msg.openat_failed(shown, errno.ENOENT)
        if not os.access(os.path.join(base, path), os.R_OK):
            return msg.openat_failed(shown, errno.EACCES)
        return None

    def _link_dest_file(self: TreeSync, src_parent: int, name: bytes, st: os.stat_result,
                        dst_parent: int, dst_name: bytes, rel: bytes,
                        dst_path: tuple[bytes, ...], source: Source,
                        group: LinkGroup | None, index: int,
                        dst_st: os.stat_result | None) -> int:
        """rsync's try_dests_reg() for a regular file (``dst_st``: the
        destination file, or None).  Returns -1 when the file is done here
        (hard-linked to DIR's identical file, or copied: DIR's file is
        never changed), else the match level, 1 when DIR's file is the
        basis the transfer that follows is itemized against."""
        try:
            src_fd = open_file(name, src_parent)
        except FileNotFoundError:
            return 0  # (vanished: the transfer reports it)
        except OSError:
            src_fd = -1  # (unreadable: its checksum is all zeros)
        try:
            src_meta = self._src_meta(st, src_parent, name, rel, source,
                                      fd=src_fd if src_fd >= 0 else None)
            if src_meta is None:
                return -1  # (unreadable attributes: the sender left it out)

            def same_content(dirfd: int, entry: bytes, basis_st: os.stat_result, _: bytes) -> bool:
                # -c: the same size and checksum; an unreadable file's
                # checksum is all zeros, on either side
                if basis_st.st_size != st.st_size:
                    return False
                try:
                    fd = open_file(entry, dirfd)
                except OSError:
                    return src_fd < 0
                try:
                    return src_fd >= 0 and bool(
                        same_size_content(src_fd, fd, st.st_size, self._check_cancel))
                finally:
                    os.close(fd)

            basis, letters = self._find_basis(stat.S_IFREG, src_meta, dst_path, rel, same_content)
            if basis is None:
                return 0
            if basis.level == 3:
                if dst_st is not None:  # find_exact_for_existing
                    if (dst_st.st_dev, dst_st.st_ino) == (basis.st.st_dev, basis.st.st_ino):
                        return 0
                    if not self.dry_run:
                        try:
                            os.unlink(dst_name, dir_fd=dst_parent)
                        except FileNotFoundError:
                            pass
                        except OSError:
                            return 0
                if self._link_basis(basis, dst_parent, dst_name) is None:
                    if group is not None:
                        group.meta, group.size = src_meta, st.st_size
                        if self.dry_run:
                            self._dry_linked[rel] = basis.st
                        self._finish_hard_link(group, index)
                    return -1
                # rsync's try_a_copy: the link failed
            elif dst_st is not None:
                return 0
            elif basis.level == 1:
                if self.on_item is not None:
                    resized = "." if basis.st.st_size == st.st_size else "s"
                    self._basis_codes[rel] = ">fc" + resized + letters
                return 1
            if src_fd < 0 and not self.dry_run:
                # (DIR's file is as unreadable: rsync's copy_file() fails,
                # and the transfer that follows fails too)
                self._basis_unreadable(basis)
                return 0
            if not self._write_new(src_fd, src_meta, dst_parent, dst_name, rel,
                                   source.sender_path(rel), size=st.st_size, role="generator"):
                # rsync's copy_altdest_file() failed (its generator's mkstemp
                # or rename, said so): the file is transferred as if DIR
                # had no match
                return 0
            # (a local copy: rsync's sender transferred nothing)
            self.stats.files_transferred -= 1
            self.stats.bytes_done -= st.st_size
            if letters != UNCHANGED:  # (a copy for a refused link changes nothing to tell)
                self._item("cf.." + letters, rel)
            if group is not None:
                group.meta, group.size = src_meta, st.st_size
                if self.dry_run:  # (rsync's hard_link_check(): a zeroed stat)
                    self._dry_linked[rel] = os.stat_result((0,) * 10)
                self._finish_hard_link(group, index)
            return -1
        finally:
            if src_fd >= 0:
                os.close(src_fd)

    def _basis_unreadable(self: TreeSync, basis: Basis) -> None:
        """rsync's copy_file() from DIR's file, which cannot be opened."""
        try:
            os.close(open_file(basis.name, basis.dirfd))
        except OSError as exc:
            self._fail(msg.basis_open_failed(basis.path, exc))

    def _link_basis(self: TreeSync, basis: Basis, dst_parent: int, dst_name: bytes) -> OSError | None:
        """Hard-link DIR's entry in (rsync's hard_link_one()); the failure,
        if it failed."""
        if self.dry_run:
            return None
        try:
            os.link(basis.name, dst_name, src_dir_fd=basis.dirfd, dst_dir_fd=dst_parent,
                    follow_symlinks=False)
        except OSError as exc:
            return exc
        faults.mutated("link")
        self._made_here(dst_parent, dst_name)
        return None

    def _link_dest_symlink(self: TreeSync, src_meta: SrcMeta, target: bytes, dst_parent: int,
                           dst_name: bytes, rel: bytes) -> tuple[bool, str | None]:
        """rsync's try_dests_non() for a new symlink: (True, None) when DIR's
        identical symlink was hard-linked, else (False, the itemize code of
        the symlink to make: against DIR's symlink, if there is one; None,
        silent, when the link to an identical one was refused)."""
        def same_target(dirfd: int, name: bytes, _st: os.stat_result, _path: bytes) -> bool:
            try:
                return os.readlink(name, dir_fd=dirfd) == target
            except OSError:
                return False

        dst_path = tuple(self._drel(rel).split(b"/"))
        basis, letters = self._find_basis(stat.S_IFLNK, src_meta, dst_path, rel, same_target)
        if basis is None:
            return False, "cL" + NEW_COLUMNS
        if basis.level == 3:
            # (a link refused, as to nobody a symlink not its own: rsync
            # makes the symlink instead, and says nothing)
            return self._link_basis(basis, dst_parent, dst_name) is None, None
        return False, "cLc." + letters
