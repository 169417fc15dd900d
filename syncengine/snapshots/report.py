"""What ``snapshots list``, ``snapshots prune`` and ``snapshots diff`` show.

- :func:`describe_snapshots`: each complete snapshot with its time, data
  version, entries and the bytes it does not share with the one before;
- :func:`prune_snapshots`: apply a retention policy (or only plan it);
- :func:`iter_snapshot_changes`: what changed from one snapshot to
  another, as rsync's ``-i`` lines (the comparison is verify's).
"""

from __future__ import annotations

import datetime
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from ..itemize import NEW_COLUMNS, ItemChange
from . import fsops
from .retention import Decision, RetentionPolicy, plan_retention
from .store import Snapshot, SnapshotBusy, SnapshotError, delete_snapshot, list_snapshots, remove_leftovers

__all__ = ["SnapshotInfo", "describe_snapshots", "prune_snapshots", "iter_snapshot_changes"]


# -- list --------------------------------------------------------------------------

@dataclass(frozen=True)
class SnapshotInfo:
    """One line of ``snapshots list``.

    ``entries``: everything below ``volumes/`` (files, dirs, symlinks...).
    ``unshared_bytes``: the sizes of its regular files that are not hard
    links into the snapshot before it (each inode once): what it added.
    ``unshared_disk_bytes``: the space its own inodes take (st_blocks),
    directories included (they are never shared): what ``du`` would add.
    """

    id: str
    time: datetime.datetime
    data_version: str | None
    entries: int
    unshared_bytes: int
    unshared_disk_bytes: int

    @property
    def time_text(self) -> str:
        return self.time.strftime("%Y-%m-%d %H:%M:%S UTC")

    def line(self) -> str:
        entries = f"{self.entries} entr{'y' if self.entries == 1 else 'ies'}"
        return (f"{self.id}  {self.time_text}  version {self.data_version or '-'}  "
                f"{entries}  {self.unshared_bytes} bytes unshared")

    def as_dict(self) -> dict:
        return {"id": self.id, "time": self.time.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "data_version": self.data_version, "entries": self.entries,
                "unshared_bytes": self.unshared_bytes,
                "unshared_disk_bytes": self.unshared_disk_bytes}


def describe_snapshots(backup_root: str | os.PathLike) -> list[SnapshotInfo]:
    """Every complete snapshot, oldest first, with its counts (one walk of
    each snapshot; only inodes with more than one link are remembered)."""
    infos = []
    previous: set[tuple[int, int]] = set()
    for snap in list_snapshots(backup_root):
        info, previous = _describe(snap, previous)
        infos.append(info)
    return infos


def _describe(snap: Snapshot, previous: set[tuple[int, int]]
              ) -> tuple[SnapshotInfo, set[tuple[int, int]]]:
    linked: set[tuple[int, int]] = set()
    entries = unshared = disk = 0
    try:
        fd = fsops.open_dir_at(None, snap.volumes_dir)
    except FileNotFoundError:
        fd = None
    except OSError as e:
        raise SnapshotError(f"cannot read snapshot {snap.id}: {e.strerror}") from None
    if fd is not None:
        try:
            for st in fsops.walk_tree(fd):
                entries += 1
                if stat.S_ISDIR(st.st_mode):
                    disk += st.st_blocks * 512
                    continue
                key = (st.st_dev, st.st_ino)
                if st.st_nlink > 1:
                    if key in linked:
                        continue  # another name of an inode already counted
                    linked.add(key)
                    if key in previous:
                        continue
                disk += st.st_blocks * 512
                if stat.S_ISREG(st.st_mode):
                    unshared += st.st_size
        except OSError as e:
            raise SnapshotError(f"cannot read snapshot {snap.id}: {e.strerror}") from None
        finally:
            os.close(fd)
    info = SnapshotInfo(snap.id, snap.time, snap.data_version(), entries, unshared, disk)
    return info, linked


# -- prune -------------------------------------------------------------------------

def prune_snapshots(backup_root: str | os.PathLike, policy: RetentionPolicy, *,
                    dry_run: bool = False,
                    on_delete: Callable[[Decision], None] | None = None) -> list[Decision]:
    """Delete the complete snapshots ``policy`` does not keep (oldest
    first; ``on_delete`` is told before each), and what dead runs left.
    A snapshot in use (a running backup links against it) stays: its
    decision comes back with the reason ``"in use"``.  ``dry_run`` only
    returns the decisions.  Decisions come oldest first."""
    decisions = plan_retention([s.id for s in list_snapshots(backup_root)], policy)
    if dry_run:
        return decisions
    remove_leftovers(backup_root)
    root = os.fspath(backup_root)
    out = []
    for decision in decisions:
        if not decision.keep:
            if on_delete is not None:
                on_delete(decision)
            try:
                delete_snapshot(Snapshot(root, decision.id))
            except SnapshotBusy:
                decision = Decision(decision.id, "in use")
        out.append(decision)
    return out


# -- diff --------------------------------------------------------------------------

# verify's attribute -> rsync's itemize column (YXcstpoguax).
_COLUMNS = {"content": 2, "target": 2, "size": 3, "mtime": 4, "mode": 5, "uid": 6, "gid": 7,
            "acl": 9, "default_acl": 9, "xattr": 10}
_TYPE_LETTERS = {"file": "f", "dir": "d", "symlink": "L", "fifo": "S", "socket": "S",
                 "chardev": "D", "blockdev": "D"}


def iter_snapshot_changes(old: Snapshot, new: Snapshot) -> Iterator[ItemChange]:
    """What changed from ``old`` to ``new``, below ``volumes/``, as the
    lines ``rsync -rlptgocAXH --delete -n -i NEW/volumes/ OLD/volumes/``
    prints (the same set of lines; the order is the walk's): ``>f+++…`` for
    a new file, ``*deleting`` for a removed entry, ``.f..t......`` for a
    changed mtime, ``hf`` for a new hard link.  The comparison is
    :func:`syncengine.verify.iter_differences` (SRC = new, DST = old).

    One liberty: of a hard-link group, rsync transfers one name and links
    the others to it, choosing by its file-list order and by which name
    is up to date already (hlink.c); we name the first in sorted order."""
    from ..verify import VerifyError, iter_differences  # heavier imports than ours

    group: list = []
    leaders = _LinkLeaders(new)
    try:
        for diff in iter_differences(new.volumes_dir + "/", old.volumes_dir + "/"):
            if group and group[0].path != diff.path:
                yield from _changes_of(group, old, new, leaders)
                group = []
            group.append(diff)
        if group:
            yield from _changes_of(group, old, new, leaders)
    except (OSError, VerifyError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise SnapshotError(f"cannot compare snapshots {old.id} and {new.id}: {reason}") from None


class _LinkLeaders:
    """The first name (sorted, depth first) of each inode with several
    links in a snapshot: the name itemized as transferred, the others as
    ``hf… NAME => FIRST``.  Read on first need only (a new file with more
    than one link is rare); it then holds every such inode of the tree."""

    def __init__(self, snap: Snapshot) -> None:
        self.snap = snap
        self._first: dict[tuple[int, int], bytes] | None = None

    def leader(self, path: bytes, st: os.stat_result) -> bytes:
        if st.st_nlink < 2:
            return path
        if self._first is None:
            self._first = {}
            for rel, entry in _subtree(self.snap, b"."):
                if not stat.S_ISDIR(entry.st_mode) and entry.st_nlink > 1:
                    self._first.setdefault((entry.st_dev, entry.st_ino), rel)
        return self._first.get((st.st_dev, st.st_ino), path)


def _changes_of(diffs: list, old: Snapshot, new: Snapshot, leaders: _LinkLeaders
                ) -> Iterator[ItemChange]:
    """The itemize lines of one entry's differences."""
    path = diffs[0].path
    by_attr = {d.attribute: d for d in diffs if d.attribute != "xattr"}
    if "error" in by_attr:
        raise SnapshotError(f"cannot compare snapshots {old.id} and {new.id}: {diffs[0]}")
    if "extra" in by_attr:
        yield from _deleted(old, path)
        return
    if "missing" in by_attr:
        yield from _created(new, path, leaders)
        return
    if "type" in by_attr:
        # rsync itemizes the removal of what was below a replaced entry,
        # not of the entry itself.
        yield from _deleted(old, path, include_top=False)
        yield from _created(new, path, leaders)
        return
    kind = _kind(os.lstat(_abs(new, path)))
    links = by_attr.get("links")
    if links is not None and links.src is not None:
        yield ItemChange("h" + _TYPE_LETTERS[kind] + " " * 9, _name(path, kind),
                         hardlink_to=links.src)
        return
    columns = ["."] * 9
    for d in diffs:
        col = _COLUMNS.get(d.attribute)
        if col is not None:
            columns[col - 2] = "cstpoguax"[col - 2]
    if "size" in by_attr:
        columns[0] = "c"  # -c: a new size is a new checksum too
    if columns == ["."] * 9:
        return  # only a hard link given up: nothing rsync itemizes
    changed_data = "content" in by_attr or "size" in by_attr
    first = ">" if kind == "file" and changed_data else "c" if "target" in by_attr else "."
    target = _target(new, path) if kind == "symlink" else None
    yield ItemChange(first + _TYPE_LETTERS[kind] + "".join(columns), _name(path, kind), target)


def _abs(snap: Snapshot, path: bytes) -> bytes:
    base = os.fsencode(snap.volumes_dir)
    return base if path == b"." else base + b"/" + path


def _kind(st: os.stat_result) -> str:
    mode = st.st_mode
    return ("dir" if stat.S_ISDIR(mode) else "symlink" if stat.S_ISLNK(mode)
            else "file" if stat.S_ISREG(mode) else "fifo")


def _name(path: bytes, kind: str) -> bytes:
    if kind != "dir":
        return path
    return b"./" if path == b"." else path + b"/"


def _target(snap: Snapshot, path: bytes) -> bytes:
    return os.readlink(_abs(snap, path))


def _subtree(snap: Snapshot, path: bytes) -> Iterator[tuple[bytes, os.stat_result]]:
    """(path, lstat) of ``path`` and everything below it, parents first,
    names in sorted order (as rsync's file list has them)."""
    stack = [path]
    while stack:
        rel = stack.pop()
        st = os.lstat(_abs(snap, rel))
        yield rel, st
        if stat.S_ISDIR(st.st_mode):
            children = sorted(os.listdir(_abs(snap, rel)), reverse=True)
            stack.extend(rel + b"/" + c if rel != b"." else c for c in children)


def _created(snap: Snapshot, path: bytes, leaders: _LinkLeaders) -> Iterator[ItemChange]:
    for rel, st in _subtree(snap, path):
        kind = _kind(st)
        leader = rel if kind == "dir" else leaders.leader(rel, st)
        if leader != rel:
            yield ItemChange("h" + _TYPE_LETTERS[kind] + NEW_COLUMNS, rel, hardlink_to=leader)
            continue
        first = ">" if kind == "file" else "c"
        target = _target(snap, rel) if kind == "symlink" else None
        yield ItemChange(first + _TYPE_LETTERS[kind] + NEW_COLUMNS, _name(rel, kind), target)


def _deleted(snap: Snapshot, path: bytes, include_top: bool = True) -> Iterator[ItemChange]:
    # rsync deletes a directory's contents before it: children first.
    for rel, st in reversed(list(_subtree(snap, path))):
        if include_top or rel != path:
            yield ItemChange("*deleting", _name(rel, _kind(st)))
