"""What a non-root rsync can see of a destination entry's attributes.

rsync reads the ACLs of an existing destination entry below the top level
through an open of it; when it cannot open it, it leaves its ACLs as they
are but still compares them by path for ``-i`` (``_acl_blind`` /
``_seen_acl``).  Setting attributes is meta.py's (``apply_meta``); ACL
storage is acl.py's, xattrs xattrs.py's.
"""

from __future__ import annotations

import os
import stat
from dataclasses import replace
from typing import TYPE_CHECKING

from .acl import ACCESS, DEFAULT, access_differs
from .meta import (
    UNCHANGED,
    SrcMeta,
    itemize_meta,
)
from .model import set_column
from .xattrs import Node, read_xattrs, receiver_keeps

if TYPE_CHECKING:
    from .sync import TreeSync
    pass



class DestAttrs:
    """The attributes the generator reads and itemizes, as rsync sees them."""

    def _acl_blind(self: TreeSync, src_meta: SrcMeta, dirfd: int, name: bytes, rel: bytes) -> SrcMeta:
        """A non-root rsync reads the ACLs of an existing destination entry
        below the top level through an open of it: when it cannot read the
        entry, it leaves its ACLs as they are.  Returns the attributes to
        apply."""
        if self.am_root or b"/" not in rel:
            return src_meta
        try:
            os.close(os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                             dir_fd=dirfd))
            return src_meta
        except PermissionError:
            pass
        except OSError:
            return src_meta
        node = Node(fd=None, dirfd=dirfd, name=name, is_link=False)
        try:
            backend = self.meta.acl
            return replace(src_meta, acl_access=backend.read(node, ACCESS),
                           acl_default=backend.read(node, DEFAULT)
                           if stat.S_ISDIR(src_meta.mode) else None)
        except OSError:
            return src_meta
        finally:
            node.close()

    def _seen_acl(self: TreeSync, letters: str, src_meta: SrcMeta, gen_meta: SrcMeta) -> str:
        """An entry's letters when _acl_blind left its ACLs alone: rsync's
        generator still compares the ACLs it read by path (no read
        permission needed) and shows ``a`` when they differ."""
        if gen_meta is src_meta or self.on_item is None:
            return letters
        differ = access_differs(src_meta.acl_access, gen_meta.acl_access) or (
            stat.S_ISDIR(src_meta.mode) and src_meta.acl_default != gen_meta.acl_default)
        return set_column(letters, "a", differ)

    def _dest_xattrs(self: TreeSync, dirfd: int, name: bytes) -> dict[bytes, bytes] | None:
        """The user.* xattrs of a destination dir, None if unreadable."""
        node = Node(fd=None, dirfd=dirfd, name=name, is_link=False)
        try:
            names = self.meta.list_xattr_names(node, node.lstat())
            return read_xattrs(node, names, lambda n: receiver_keeps(n, False))
        except OSError:
            return None
        finally:
            node.close()

    def _keeps_xattrs(self: TreeSync, src_meta: SrcMeta) -> bool:
        """Whether the source entry has xattrs this receiver would set."""
        return any(receiver_keeps(n, self.am_root) for n in src_meta.xattrs)

    def _letters_of(self: TreeSync, src_meta: SrcMeta, dst_st: os.stat_result | None, dirfd: int,
                    name: bytes, rel: bytes) -> str:
        """The attribute columns of an existing destination entry against
        ``src_meta``, changing nothing ("......." when not itemizing; a dry
        run reads the entry anyway, as rsync's does, failures reported
        with its path below DST, as apply_meta reports them)."""
        if self.on_item is None and not self.dry_run:
            return UNCHANGED
        return itemize_meta(self.meta, src_meta, dst_st, dirfd=dirfd, name=name,
                            path=self._drel(rel))
