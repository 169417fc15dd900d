"""``--link-dest=DIR``: the basis dirs a new destination entry is looked up
in (rsync's ``basis_dir[]``), and rsync 3.5.0's match levels
(generator.c ``try_dests_reg()`` / ``try_dests_non()``).

For each entry the dirs are tried in order; the best match wins:

1. DIR holds an entry of the same type (for a file: a basis to compare
   the itemized change against; for a symlink or dir: the same);
2. ... with the same content (``quick_check_ok()``: with ``-c`` the same
   size and checksum; a symlink's target; any dir);
3. ... and every attribute ``-rlptgocAXH`` preserves (``unchanged_attrs()``:
   mtime, mode, owner as root, group, ACLs, xattrs): it is hard-linked
   (a file or symlink; a dir is made, silently).

rsync never changes an entry of DIR: an entry matching at level 2 is
copied (a file) or made anew (a symlink or dir), then given its attributes.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = ["MAX_BASIS_DIRS", "Basis", "BasisDirs", "resolve_basis_dirs", "check_basis_dirs"]

# rsync's MAX_BASIS_DIRS
MAX_BASIS_DIRS = 20

_DIR_FLAGS = os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC


def resolve_basis_dirs(dirs: Sequence[bytes | str], dest: bytes | str) -> list[bytes]:
    """Each DIR as rsync's receiver uses it: a relative one is taken below
    DST, and the path is cleaned lexically (rsync's clean_fname(): "..")
    and made absolute."""
    dest = os.fsencode(dest)
    base = os.path.join(os.getcwdb(), dest)
    return [os.path.normpath(os.path.join(base, os.fsencode(d))) for d in dirs]


def check_basis_dirs(dirs: Sequence[bytes]) -> list[str]:
    """rsync's warnings (stderr, exit status untouched) for a DIR that is
    not there or not a dir."""
    lines = []
    for path in dirs:
        try:
            is_dir = stat.S_ISDIR(os.stat(path).st_mode)
        except OSError:
            lines.append(f"--link-dest arg does not exist: {os.fsdecode(path)}")
            continue
        if not is_dir:
            lines.append(f"--link-dest arg is not a dir: {os.fsdecode(path)}")
    return lines


@dataclass
class Basis:
    """The best match for one entry: ``name`` in ``dirfd`` (an O_PATH fd
    owned by BasisDirs, valid until the next lookup in another dir)."""

    level: int
    dirfd: int
    name: bytes
    st: os.stat_result
    base: bytes                   # the DIR it is in
    dst_path: tuple[bytes, ...]   # its path below DIR (and DST)

    @property
    def path(self) -> bytes:
        """Its absolute path (for messages)."""
        return os.path.join(self.base, *self.dst_path)


class BasisDirs:
    """The basis dirs, with the parent dir of the entry last looked up open
    in each (entries of one dir come together in the walk)."""

    def __init__(self, dirs: Sequence[bytes]) -> None:
        self.dirs = list(dirs)
        self._parent: tuple[bytes, ...] | None = None
        self._fds: list[int] = []
        self._roots: list[tuple[int, bytes]] | None = None

    def close(self) -> None:
        for fd in self._fds:
            if fd >= 0:
                os.close(fd)
        self._fds, self._parent = [], None

    def close_all(self) -> None:
        self.close()
        for fd, _ in self._roots or ():
            if fd >= 0:
                os.close(fd)
        self._roots = None

    def _parents(self, parent: tuple[bytes, ...]) -> list[int]:
        if parent != self._parent:
            self.close()
            for base in self.dirs:
                try:
                    self._fds.append(os.open(os.path.join(base, *parent) if parent else base,
                                             _DIR_FLAGS))
                except OSError:
                    self._fds.append(-1)
            self._parent = parent
        return self._fds

    def _slots(self, dst_path: tuple[bytes, ...]) -> list[tuple[int, bytes]]:
        """Where each DIR holds the entry: (its parent dir's fd, its name);
        for DST itself, each DIR itself."""
        if dst_path:
            return [(fd, dst_path[-1]) for fd in self._parents(dst_path[:-1])]
        if self._roots is None:
            self._roots = []
            for base in self.dirs:
                parent, name = os.path.split(base)
                try:
                    self._roots.append((os.open(parent, _DIR_FLAGS), name))
                except OSError:
                    self._roots.append((-1, name))
        return self._roots

    def find(self, dst_path: tuple[bytes, ...], kind: int,
             same_content: Callable[[int, bytes, os.stat_result, bytes], bool],
             unchanged: Callable[[int, bytes, os.stat_result, bytes], bool]) -> Basis | None:
        """The best match for the entry at ``dst_path`` (below DST) of type
        ``kind`` (S_IFREG, S_IFLNK or S_IFDIR), or None.  ``same_content``
        and ``unchanged`` judge a candidate (dirfd, name, lstat, its path)."""
        slots = self._slots(dst_path)
        best, level = -1, 0
        stats: dict[int, os.stat_result] = {}
        for j, (fd, name) in enumerate(slots):
            if fd < 0:
                continue
            try:
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except OSError:
                continue
            if stat.S_IFMT(st.st_mode) != kind:
                continue
            stats[j] = st
            if level < 1:
                best, level = j, 1
            path = os.path.join(self.dirs[j], *dst_path)
            if not same_content(fd, name, st, path):
                continue
            if level < 2:
                best, level = j, 2
            if unchanged(fd, name, st, path):
                best, level = j, 3
                break
        if not level:
            return None
        fd, name = slots[best]
        return Basis(level, fd, name, stats[best], self.dirs[best], dst_path)
