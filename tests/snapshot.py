"""Exact, comparable snapshots of file trees: the oracle of the equivalence suite.

``snapshot(root)`` maps each relative bytes path (the root is ``b"."``) to a
record of what ``rsync -rlptgocAXH`` promises to preserve, read with lstat
and the l* xattr calls, never following a symlink:

- ``type``: file, dir, symlink, fifo, socket, chardev, blockdev
- ``mode``: permission bits incl. suid/sgid/sticky (not for symlinks)
- ``uid``, ``gid``, ``mtime_ns`` (every type, symlinks and dirs included)
- files: ``size``, ``sha256``; symlinks: ``target`` (bytes);
  devices: ``rdev`` as (major, minor)
- ``xattrs``: {name: value} of every namespace but ``system.*``
- ``acl``, ``default_acl``: None, or the POSIX ACL decoded from the raw
  ``system.posix_acl_*`` xattr into a tuple of short-text entries in kernel
  order, e.g. ``("u::rw-", "u:1234:r--", "g::r--", "m::r--", "o::---")``
  (no pylibacl needed)
- ``links`` (non-dirs): the sorted paths of every entry in the tree sharing
  this inode, the entry itself included; a partition, not inode numbers,
  so trees on different filesystems compare equal.

Only as non-root: an unreadable file gets ``sha256 = "<unreadable>"``, an
unreadable dir ``unreadable = True`` (and no children).

Not recorded: atime, ctime, inode numbers, link counts, dir sizes.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import struct
from collections.abc import Iterable
from pathlib import Path

__all__ = ["snapshot", "diff_snapshots", "assert_same_tree", "decode_acl", "ATTRS"]

ATTRS = ("type", "mode", "uid", "gid", "mtime_ns", "size", "sha256", "target",
         "rdev", "xattrs", "acl", "default_acl", "links")

_TYPES = {stat.S_IFREG: "file", stat.S_IFDIR: "dir", stat.S_IFLNK: "symlink",
          stat.S_IFIFO: "fifo", stat.S_IFSOCK: "socket",
          stat.S_IFCHR: "chardev", stat.S_IFBLK: "blockdev"}
_ACL_ACCESS = "system.posix_acl_access"
_ACL_DEFAULT = "system.posix_acl_default"
# ACL xattr tags (linux/posix_acl_xattr.h) -> short text prefix, and whether
# the entry names an id.
_ACL_TAGS = {0x01: ("u", False), 0x02: ("u", True), 0x04: ("g", False),
             0x08: ("g", True), 0x10: ("m", False), 0x20: ("o", False)}
_NO_XATTRS = {errno.ENOTSUP, errno.ENODATA}


def decode_acl(raw: bytes) -> tuple[str, ...]:
    """Decode a ``system.posix_acl_*`` xattr (version 2, little-endian
    entries of tag u16, perm u16, id u32) to sorted short-text entries."""
    if len(raw) < 4 or (len(raw) - 4) % 8 or struct.unpack_from("<I", raw)[0] != 2:
        return (f"invalid:{raw.hex()}",)
    out = []
    for tag, perm, ident in sorted(struct.iter_unpack("<HHI", raw[4:]),
                                   key=lambda e: (e[0], e[2])):
        prefix, named = _ACL_TAGS.get(tag, (f"tag{tag:#x}", True))
        rwx = "".join(c if perm & bit else "-" for c, bit in (("r", 4), ("w", 2), ("x", 1)))
        if perm & ~7:
            rwx += f"+{perm & ~7:#x}"
        out.append(f"{prefix}:{ident if named else ''}:{rwx}")
    return tuple(out)


def _xattrs(path: bytes, want_x: bool, want_acl: bool, rec: dict) -> None:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError as e:
        if e.errno not in _NO_XATTRS:
            raise
        names = []
    if want_x:
        rec["xattrs"] = {n: os.getxattr(path, n, follow_symlinks=False)
                         for n in sorted(names) if not n.startswith("system.")}
    if want_acl:
        for key, name in (("acl", _ACL_ACCESS), ("default_acl", _ACL_DEFAULT)):
            rec[key] = (decode_acl(os.getxattr(path, name, follow_symlinks=False))
                        if name in names else None)


def _sha256(path: bytes) -> str:
    try:
        with open(path, "rb", buffering=0) as f:
            return hashlib.file_digest(f, "sha256").hexdigest()
    except PermissionError:  # only as non-root; recorded, not fatal
        return "<unreadable>"


def snapshot(root: Path | str | bytes, *, ignore: Iterable[str] = (),
             root_mtime: bool = True) -> dict[bytes, dict]:
    """Snapshot the tree at ``root``; ``ignore`` drops attribute names (see
    ATTRS), ``root_mtime=False`` drops the root's mtime only."""
    ignore = frozenset(ignore)
    if ignore - set(ATTRS):
        raise ValueError(f"unknown attributes to ignore: {sorted(ignore - set(ATTRS))}")
    want_x = "xattrs" not in ignore
    want_acl = not {"acl", "default_acl"} <= ignore
    want_sha = "sha256" not in ignore
    want_links = "links" not in ignore
    root = os.fsencode(root)
    snap: dict[bytes, dict] = {}
    inodes: dict[tuple[int, int], list[bytes]] = {}
    stack = [b"."]
    while stack:
        rel = stack.pop()
        path = root if rel == b"." else root + b"/" + rel
        st = os.lstat(path)
        kind = _TYPES[stat.S_IFMT(st.st_mode)]
        rec = {"type": kind, "uid": st.st_uid, "gid": st.st_gid, "mtime_ns": st.st_mtime_ns}
        if kind != "symlink":
            rec["mode"] = stat.S_IMODE(st.st_mode)
        if kind == "file":
            rec["size"] = st.st_size
            if want_sha:
                rec["sha256"] = _sha256(path)
        elif kind == "symlink":
            rec["target"] = os.readlink(path)
        elif kind in ("chardev", "blockdev"):
            rec["rdev"] = (os.major(st.st_rdev), os.minor(st.st_rdev))
        if want_x or want_acl:
            _xattrs(path, want_x, want_acl, rec)
        if kind == "dir":
            prefix = b"" if rel == b"." else rel + b"/"
            try:
                stack.extend(prefix + name for name in os.listdir(path))
            except PermissionError:  # only as non-root; recorded, not fatal
                rec["unreadable"] = True
        elif want_links:
            inodes.setdefault((st.st_dev, st.st_ino), []).append(rel)
        snap[rel] = rec
    for group in inodes.values():
        links = tuple(sorted(group))
        for rel in group:
            snap[rel]["links"] = links
    if ignore:
        for rec in snap.values():
            for name in ignore & rec.keys():
                del rec[name]
    if not root_mtime:
        snap[b"."].pop("mtime_ns", None)
    return dict(sorted(snap.items()))


def _show_path(path: bytes) -> str:
    return path.decode("utf-8", "backslashreplace")


def _show(attr: str, value) -> str:
    if value is None:
        return "(absent)"
    if attr == "mode":
        return f"{value:#o}"
    if attr in ("acl", "default_acl"):
        return ",".join(value)
    if attr == "links":
        return "{" + ", ".join(map(_show_path, value)) + "}"
    return repr(value)


def _attr_order(attr: str) -> tuple[int, str]:
    return (ATTRS.index(attr) if attr in ATTRS else len(ATTRS), attr)


def diff_snapshots(a: dict[bytes, dict], b: dict[bytes, dict]) -> list[str]:
    """One readable line per difference (``path: attr A != B``); [] if equal."""
    out = []
    for path in sorted(a.keys() | b.keys()):
        shown = _show_path(path)
        ra, rb = a.get(path), b.get(path)
        if ra is None or rb is None:
            which, rec = ("b", rb) if ra is None else ("a", ra)
            out.append(f"{shown}: only in {which} ({rec['type']})")
            continue
        if ra == rb:
            continue
        for attr in sorted(ra.keys() | rb.keys(), key=_attr_order):
            va, vb = ra.get(attr), rb.get(attr)
            if va == vb:
                continue
            if attr == "xattrs" and va is not None and vb is not None:
                for name in sorted(va.keys() | vb.keys()):
                    if va.get(name) != vb.get(name):
                        out.append(f"{shown}: xattr {name} {_show('', va.get(name))} "
                                   f"!= {_show('', vb.get(name))}")
            elif attr == "mtime_ns" and va is not None and vb is not None:
                out.append(f"{shown}: mtime_ns {va} != {vb} ({vb - va:+d} ns)")
            else:
                out.append(f"{shown}: {attr} {_show(attr, va)} != {_show(attr, vb)}")
    return out


def assert_same_tree(a_root, b_root, *, max_lines: int = 50, **snapshot_kw) -> None:
    """Fail with the diff lines unless both trees snapshot the same. Either
    argument may also be a snapshot dict already taken."""
    a = a_root if isinstance(a_root, dict) else snapshot(a_root, **snapshot_kw)
    b = b_root if isinstance(b_root, dict) else snapshot(b_root, **snapshot_kw)
    diff = diff_snapshots(a, b)
    if diff:
        more = f"\n... and {len(diff) - max_lines} more" if len(diff) > max_lines else ""
        names = [("<snapshot>" if isinstance(x, dict) else os.fsdecode(x)) for x in (a_root, b_root)]
        raise AssertionError(f"trees differ ({len(diff)} differences; a={names[0]}, b={names[1]}):\n"
                             + "\n".join(diff[:max_lines]) + more)
