"""Snapshots on disk.

::

    BACKUP_ROOT/snapshots/
      2026-12-06T151700Z/            a complete snapshot: never written again
        dataVersion.txt
        volumes/<name>/
      2026-12-06T151700Z-2/          a second run in the same second
      .partial-2026-12-07T030000Z/   a run in progress (or killed)
      .deleting-…                    a snapshot being removed

A run calls :func:`begin_snapshot`, syncs into the build's paths (with
``--link-dest`` at :meth:`SnapshotBuild.link_dest`), then
:meth:`SnapshotBuild.commit` (which renames the build into place) or
:meth:`SnapshotBuild.abandon`.  Only names that are exactly an ID are
snapshots, so a failed or killed run is never listed nor used as a base.

Who may touch what is settled with flock(2): every temporary directory
is locked by its owner for its lifetime, so a leftover whose lock can be
taken belongs to a dead run (the kernel drops a lock with its process);
a build share-locks its link base, so a prune leaves that one alone; and
every rename in ``snapshots/`` happens under a lock on ``snapshots/``
itself, held for a moment.  IDs only grow: a new one is later than every
ID there, complete or in progress.  Where the filesystem cannot lock,
leftovers are left in place (they could be a live run's).
"""

from __future__ import annotations

import datetime
import errno
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from ..fsutil import atomic_write_text
from . import fsops
from .ids import SnapshotId, parse_id
from .probe import hard_link_problem

__all__ = ["SNAPSHOTS_DIR", "VOLUMES_DIR", "DATA_VERSION_FILE", "SnapshotError", "SnapshotBusy",
           "Snapshot", "SnapshotBuild", "begin_snapshot", "list_snapshots", "latest_snapshot",
           "find_snapshot", "delete_snapshot", "remove_leftovers"]

SNAPSHOTS_DIR = "snapshots"
VOLUMES_DIR = "volumes"
DATA_VERSION_FILE = "dataVersion.txt"      # as in the mirror layout (backups.py)
PARTIAL_PREFIX = ".partial-"
DELETING_PREFIX = ".deleting-"


class SnapshotError(Exception):
    """A snapshot operation that cannot be done: one line, for the user."""


class SnapshotBusy(SnapshotError):
    """The snapshot is in use: a running backup links against it, or
    another process is deleting it."""


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _relocate(backup_root: str, base: str, path: str) -> str:
    """Where ``path`` of the mirror layout goes below ``base`` (a snapshot
    of ``backup_root``): ``path`` is relative to the backup root, or an
    absolute path strictly inside it (a BackupSync's backup_path).  A
    trailing slash is kept (rsync reads it)."""
    if not isinstance(path, str) or "\0" in path:
        raise ValueError(f"not a usable path: {path!r}")
    rel = path
    if path.startswith("/"):
        root = os.path.normpath(backup_root)
        norm = os.path.normpath(path)
        if not norm.startswith(root.rstrip("/") + "/"):
            raise ValueError(f"{path!r} is not inside the backup root {backup_root!r}")
        rel = norm[len(root.rstrip("/")) + 1:] + ("/" if path.endswith("/") else "")
    parts = [p for p in rel.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise ValueError(f"not a path below the backup root: {path!r}")
    if parts[0] == SNAPSHOTS_DIR:
        raise ValueError(f"{path!r} is inside {SNAPSHOTS_DIR}/: a snapshot cannot hold snapshots")
    return "/".join([base, *parts]) + ("/" if rel.endswith("/") else "")


def _volume_rel(name: str) -> str:
    if name in ("", ".", "..") or "/" in name or "\0" in name:
        raise ValueError(f"invalid volume name {name!r}: must be one plain path component")
    return f"{VOLUMES_DIR}/{name}/"


class _Layout:
    """The paths below a snapshot's dir (``path``): its volumes, and where a
    path of the mirror layout goes in it."""

    backup_root: str

    @property
    def path(self) -> str:
        raise NotImplementedError

    @property
    def volumes_dir(self) -> str:
        return f"{self.path}/{VOLUMES_DIR}"

    def volume_path(self, name: str) -> str:
        """``…/volumes/<name>/`` (with the slash: its contents, for rsync)."""
        return self.path_for(_volume_rel(name))

    def path_for(self, path: str) -> str:
        """Where ``path`` of the mirror layout (relative to the backup root,
        or absolute inside it: a BackupSync's backup_path) is in this
        snapshot: what a restore reads, or where a backup's sync writes."""
        return _relocate(self.backup_root, self.path, path)


@dataclass(frozen=True)
class Snapshot(_Layout):
    """A complete snapshot of ``backup_root``."""

    backup_root: str
    id: str

    @property
    def parsed_id(self) -> SnapshotId:
        parsed = parse_id(self.id)
        assert parsed is not None
        return parsed

    @property
    def time(self) -> datetime.datetime:
        """When its run started (UTC, whole seconds)."""
        return self.parsed_id.time

    @property
    def path(self) -> str:
        return f"{self.backup_root.rstrip('/')}/{SNAPSHOTS_DIR}/{self.id}"

    @property
    def data_version_path(self) -> str:
        return f"{self.path}/{DATA_VERSION_FILE}"

    def data_version(self) -> str | None:
        """The recorded data version, None when there is none (never
        follows a symlink)."""
        try:
            fd = os.open(self.data_version_path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except (FileNotFoundError, OSError):
            return None
        with open(fd, encoding="utf-8", errors="replace") as f:
            text = f.read(4096).strip()
        return text or None


# -- reading -----------------------------------------------------------------------

def _snapshots_path(backup_root: str | os.PathLike) -> str:
    return os.path.join(os.fspath(backup_root), SNAPSHOTS_DIR)


def _open_snapshots(backup_root: str | os.PathLike, *, create: bool) -> int | None:
    """An fd of ``BACKUP_ROOT/snapshots`` (made when ``create``), None when
    it does not exist; a symlink or file there is an error, not followed."""
    path = _snapshots_path(backup_root)
    if create:
        try:
            os.mkdir(path)
        except FileExistsError:
            pass
        except FileNotFoundError:
            raise SnapshotError(f"backup root {os.fspath(backup_root)} does not exist") from None
        except OSError as e:
            raise SnapshotError(f"cannot create {path}: {e.strerror}") from None
    try:
        return fsops.open_dir_at(None, path)
    except FileNotFoundError:
        if create:
            raise SnapshotError(f"{path} vanished") from None
        return None
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.ENOTDIR):
            raise SnapshotError(f"{path} is not a directory (a symlink is not followed)") from None
        raise SnapshotError(f"cannot open {path}: {e.strerror}") from None


def _entries(dir_fd: int) -> dict[str, bool]:
    """{name: is a real directory} of ``snapshots/``."""
    out = {}
    with os.scandir(dir_fd) as it:
        for entry in it:
            try:
                out[entry.name] = entry.is_dir(follow_symlinks=False)
            except OSError:
                continue
    return out


def _complete_ids(entries: dict[str, bool]) -> list[SnapshotId]:
    return sorted(p for name, is_dir in entries.items()
                  if is_dir and (p := parse_id(name)) is not None)


def list_snapshots(backup_root: str | os.PathLike) -> list[Snapshot]:
    """The complete snapshots, oldest first."""
    fd = _open_snapshots(backup_root, create=False)
    if fd is None:
        return []
    try:
        ids = _complete_ids(_entries(fd))
    finally:
        os.close(fd)
    root = os.fspath(backup_root)
    return [Snapshot(root, str(i)) for i in ids]


def latest_snapshot(backup_root: str | os.PathLike) -> Snapshot | None:
    """The newest complete snapshot: the link base of the next run."""
    snapshots = list_snapshots(backup_root)
    return snapshots[-1] if snapshots else None


def find_snapshot(backup_root: str | os.PathLike, snapshot_id: str) -> Snapshot:
    """The complete snapshot ``snapshot_id``; SnapshotError naming what
    there is when it is not one."""
    snapshots = list_snapshots(backup_root)
    for snap in snapshots:
        if snap.id == snapshot_id:
            return snap
    have = ", ".join(s.id for s in snapshots[-5:]) or "none"
    more = " …" if len(snapshots) > 5 else ""
    raise SnapshotError(f"no snapshot {snapshot_id!r} in {_snapshots_path(backup_root)} "
                        f"(complete snapshots: {more}{have})")


# -- leftovers and deletion --------------------------------------------------------

def _claim(sfd: int, name: str, *, unlocked_ok: bool = False) -> tuple[int, str] | None:
    """Under the ``snapshots/`` lock: take the lock of the directory
    ``name`` and rename it to a fresh ``.deleting-`` name; None when
    another process holds a lock on it (its owner runs, or a backup links
    against it), or it changed under us, or (unless ``unlocked_ok``) the
    filesystem cannot lock.  Returns (its fd, new name): the caller
    removes it, holding the lock, after releasing ``snapshots/``."""
    try:
        fd = fsops.open_dir_at(sfd, name)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        now = os.stat(name, dir_fd=sfd, follow_symlinks=False)
        held = fsops.try_lock(fd)
        if held is False or (held is None and not unlocked_ok) \
                or (st.st_dev, st.st_ino) != (now.st_dev, now.st_ino):
            os.close(fd)
            return None
        base = name[len(DELETING_PREFIX):] if name.startswith(DELETING_PREFIX) else name.lstrip(".")
        new = f"{DELETING_PREFIX}{base.split('.')[0]}.{secrets.token_hex(4)}"
        os.rename(name, new, src_dir_fd=sfd, dst_dir_fd=sfd)
    except BaseException:
        os.close(fd)
        raise
    return fd, new


def _remove_claimed(sfd: int, claimed: list[tuple[int, str]], *, strict: bool = True) -> None:
    """Remove claimed directories; unless ``strict``, one that cannot be
    removed (a mount point below it, say) stays for a later try."""
    try:
        for _fd, name in claimed:
            try:
                fsops.remove_tree(sfd, name)
            except OSError:
                if strict:
                    raise
    finally:
        for fd, _name in claimed:
            os.close(fd)


def _claim_leftovers(sfd: int) -> list[tuple[int, str]]:
    claimed = []
    for name, is_dir in _entries(sfd).items():
        if is_dir and name.startswith((PARTIAL_PREFIX, DELETING_PREFIX)):
            got = _claim(sfd, name)
            if got is not None:
                claimed.append(got)
    return claimed


def remove_leftovers(backup_root: str | os.PathLike) -> int:
    """Remove what killed runs and prunes left (``.partial-*``,
    ``.deleting-*`` no live process holds); return how many.  Where the
    filesystem cannot lock, nothing is removed (a live run's could be)."""
    sfd = _open_snapshots(backup_root, create=False)
    if sfd is None:
        return 0
    try:
        with fsops.locked(sfd) as can_lock:
            claimed = _claim_leftovers(sfd) if can_lock else []
        _remove_claimed(sfd, claimed)
        return len(claimed)
    finally:
        os.close(sfd)


def delete_snapshot(snapshot: Snapshot) -> None:
    """Delete a complete snapshot: renamed out of the listing first (one
    atomic step, made durable), then removed; a killed delete leaves a
    ``.deleting-`` directory the next run removes, never a half snapshot
    listed as complete."""
    sfd = _open_snapshots(snapshot.backup_root, create=False)
    if sfd is None:
        raise SnapshotError(f"no snapshot {snapshot.id!r}: {_snapshots_path(snapshot.backup_root)} "
                            "does not exist")
    try:
        with fsops.locked(sfd):
            if not _entries(sfd).get(snapshot.id):
                raise SnapshotError(f"no snapshot {snapshot.id!r} in "
                                    f"{_snapshots_path(snapshot.backup_root)}")
            claimed = _claim(sfd, snapshot.id, unlocked_ok=True)
            if claimed is None:
                raise SnapshotBusy(f"snapshot {snapshot.id} is in use (a running backup links "
                                   "against it, or another process deletes it)")
        fsops.fsync_dir(sfd)
        try:
            _remove_claimed(sfd, [claimed])
        except OSError as e:
            raise SnapshotError(f"snapshot {snapshot.id} is no longer listed, but removing "
                                f"{_snapshots_path(snapshot.backup_root)}/{claimed[1]} failed: "
                                f"{e.strerror or e} (the next run retries)") from None
    finally:
        os.close(sfd)


# -- building ----------------------------------------------------------------------

def _next_id(entries: dict[str, bool], now: datetime.datetime) -> SnapshotId:
    """An ID later than every snapshot there, complete or in progress: the
    second of ``now``, or the newest's second with the next suffix (also
    when the clock went back)."""
    taken = [p for name in entries
             if (p := parse_id(name[len(PARTIAL_PREFIX):] if name.startswith(PARTIAL_PREFIX)
                               else name)) is not None]
    if now.tzinfo is None:
        raise ValueError("the snapshot clock must give timezone-aware times")
    second = now.astimezone(datetime.UTC).replace(microsecond=0)
    newest = max(taken, default=None)
    if newest is None or second > newest.time:
        return SnapshotId(second, 1)
    return SnapshotId(newest.time, newest.seq + 1)


@dataclass
class SnapshotBuild(_Layout):
    """A snapshot being built under ``.partial-<ID>``: sync into
    :meth:`volume_path` (or :meth:`path_for`), linking against
    :meth:`link_dest`; then :meth:`commit` or :meth:`abandon`.  As a
    context manager it abandons unless committed."""

    backup_root: str
    id: str
    base: Snapshot | None                  # the link base: newest complete at begin
    _sfd: int = field(repr=False)
    _fd: int = field(repr=False)           # the build's dir, locked while we live
    _base_fd: int | None = field(default=None, repr=False)  # the base, share-locked
    _done: bool = field(default=False, repr=False)

    @property
    def path(self) -> str:
        return f"{self.backup_root.rstrip('/')}/{SNAPSHOTS_DIR}/{PARTIAL_PREFIX}{self.id}"

    @property
    def data_version_path(self) -> str:
        return f"{self.path}/{DATA_VERSION_FILE}"

    def link_dest(self, name: str) -> str | None:
        """The base snapshot's copy of volume ``name`` (absolute, for
        ``--link-dest``), None without a base or when the base lacks it
        (rsync warns about a missing --link-dest dir)."""
        return self.link_dest_for(_volume_rel(name))

    def link_dest_for(self, path: str) -> str | None:
        """The base snapshot's copy of ``path`` (as for :meth:`path_for`),
        None without a base or when the base has no such directory."""
        if self.base is None:
            return None
        in_base = self.base.path_for(path)
        try:
            fd = fsops.open_dir_at(None, in_base)
        except OSError:
            return None
        os.close(fd)
        return in_base

    def write_data_version(self, version: str | None) -> None:
        """Record the data version in the build (atomically); nothing for
        None or "" (as the mirror layout's backup does)."""
        self._check_open()
        if version:
            atomic_write_text(self.data_version_path, str(version))

    def commit(self) -> Snapshot:
        """Flush the build to disk and rename it into place under its ID
        (the next free one, should another process have taken it); from
        then on it is listed, used as a base, and never written again."""
        self._check_open()
        try:
            fsops.sync_filesystem(self._fd)
            with fsops.locked(self._sfd):
                final = parse_id(self.id)
                assert final is not None  # (begin_snapshot made it)
                while True:
                    try:
                        fsops.rename_noreplace(self._sfd, PARTIAL_PREFIX + self.id, str(final))
                        break
                    except FileExistsError:
                        final = _next_id(_entries(self._sfd), final.time)
        except OSError as e:
            raise SnapshotError(f"cannot complete snapshot {self.id} in "
                                f"{_snapshots_path(self.backup_root)}: {e.strerror or e}") from None
        fsops.fsync_dir(self._sfd)
        self._close()
        return Snapshot(self.backup_root, str(final))

    def abandon(self) -> None:
        """Remove the build (a no-op once committed or abandoned)."""
        if self._done:
            return
        try:
            with fsops.locked(self._sfd):
                new = f"{DELETING_PREFIX}{self.id}.{secrets.token_hex(4)}"
                os.rename(PARTIAL_PREFIX + self.id, new, src_dir_fd=self._sfd,
                          dst_dir_fd=self._sfd)
            fsops.remove_tree(self._sfd, new)
        finally:
            self._close()

    def _check_open(self) -> None:
        if self._done:
            raise SnapshotError(f"snapshot build {self.id} is already committed or abandoned")

    def _close(self) -> None:
        if not self._done:
            self._done = True
            for fd in (self._fd, self._sfd, self._base_fd):
                if fd is not None:
                    os.close(fd)

    def __enter__(self) -> SnapshotBuild:
        return self

    def __exit__(self, *exc) -> None:
        self.abandon()


def begin_snapshot(backup_root: str | os.PathLike, *,
                   now: Callable[[], datetime.datetime] = _utcnow,
                   check_hard_links: bool = True) -> SnapshotBuild:
    """Start a snapshot of ``backup_root``: refuse (SnapshotError, one
    line) where hard links do not work, remove dead runs' leftovers, take
    the next ID and make ``snapshots/.partial-<ID>/volumes/``."""
    root = os.fspath(backup_root)
    if check_hard_links and os.path.isdir(root):
        problem = hard_link_problem(root)
        if problem is not None:
            raise SnapshotError(f"cannot keep snapshots: {problem}")
    sfd = _open_snapshots(root, create=True)
    assert sfd is not None  # (create=True makes it, or raises)
    fd = base_fd = None
    try:
        with fsops.locked(sfd) as can_lock:
            claimed = _claim_leftovers(sfd) if can_lock else []
            entries = _entries(sfd)
            base_ids = _complete_ids(entries)
            if base_ids:
                # Share-locked while we link against it: a prune leaves it.
                base_fd = fsops.open_dir_at(sfd, str(base_ids[-1]))
                fsops.try_lock(base_fd, shared=True)
            sid = _next_id(entries, now())
            while True:
                try:
                    os.mkdir(PARTIAL_PREFIX + str(sid), dir_fd=sfd)
                    break
                except FileExistsError:
                    sid = SnapshotId(sid.time, sid.seq + 1)
            fd = fsops.open_dir_at(sfd, PARTIAL_PREFIX + str(sid))
            fsops.try_lock(fd)
        os.mkdir(VOLUMES_DIR, dir_fd=fd)
        _remove_claimed(sfd, claimed, strict=False)  # housekeeping: never fails a backup
    except BaseException as e:
        for open_fd in (fd, base_fd, sfd):
            if open_fd is not None:
                os.close(open_fd)
        if isinstance(e, OSError):
            raise SnapshotError(f"cannot start a snapshot in {_snapshots_path(root)}: "
                                f"{e.strerror or e}") from None
        raise
    base = Snapshot(root, str(base_ids[-1])) if base_ids else None
    return SnapshotBuild(root, str(sid), base, sfd, fd, base_fd)
