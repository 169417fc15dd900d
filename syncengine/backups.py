"""The Backups facade: a port of the service SDK's fluent ``Backups`` class.

Differences from the TypeScript seed, all deliberate fixes:
- restores merge the *restore* options (the seed used the backup ones);
- every hook is awaited, in order (the seed forgot the restore hooks);
- post_backup runs even when a sync fails, so a service stopped by
  pre_backup is restarted; the error is raised after it;
- paths are validated (the seed relied on template-literal types), and
  dataVersion.txt is written atomically.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import os
import posixpath
import threading
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from .effects import Effects
from .engines import check_arguments, start_sync
from .engines.base import ItemCallback, ProgressCallback, SyncError, SyncResult
from .fsutil import atomic_write_text, read_version_file
from .options import OptionsLike, SyncOptions, merge_options, normalize_partial
from .rootlock import root_lock
from .snapshots import (
                        RetentionPolicy,
                        Snapshot,
                        SnapshotBuild,
                        SnapshotError,
                        SnapshotInfo,
                        begin_snapshot,
                        describe_snapshots,
                        find_snapshot,
                        hard_link_problem,
                        latest_snapshot,
                        prune_snapshots,
)
from .snapshots.retention import Decision

__all__ = ["Backups", "BackupSync", "EmptySourceError", "Hook", "Layout", "SyncObserver",
           "DATA_VERSION_FILE", "LATEST", "resolve_snapshot"]

LATEST = "latest"   # restore_backup(snapshot=LATEST): the newest complete snapshot

_T = TypeVar("_T")

DATA_VERSION_FILE = "dataVersion.txt"

Hook = Callable[[Any], "Awaitable[Any] | Any"]
# One sync of a plan: the BackupSync, and the source, destination and
# options of this direction.
_Step = tuple["BackupSync", str, str, SyncOptions]
# Where each sync's copy was before this run (the empty-source check reads it).
_Previous = Callable[["BackupSync"], str]


async def _noop(effects: Any) -> None:
    return None


def _clean_abs(path: str, what: str) -> str:
    """Validate an absolute path and return its normalised form (the caller
    keeps the original, whose trailing slash means something to rsync)."""
    if not isinstance(path, str) or not path:
        raise ValueError(f"{what} must be a non-empty path")
    if "\0" in path:
        raise ValueError(f"{what} must not contain a NUL byte: {path!r}")
    if not path.startswith("/"):
        raise ValueError(f"{what} must be an absolute path: {path!r}")
    if ".." in path.split("/"):
        raise ValueError(f"{what} must not contain '..': {path!r}")
    return posixpath.normpath(path)


def _strictly_under(path: str, root: str) -> bool:
    return path != root and posixpath.commonpath([path, root]) == root


class EmptySourceError(SyncError):
    """A sync whose source directory is empty while its destination is not:
    what an unmounted volume looks like (its mount point is an empty dir),
    which --delete would turn into an empty copy."""


def _has_entries(path: str) -> bool | None:
    """Whether a directory holds anything (None: it cannot be listed, or is
    not a directory: the engine will say why)."""
    try:
        with os.scandir(path) as entries:
            return next(entries, None) is not None
    except OSError:
        return None


@dataclass(frozen=True)
class Layout:
    """Where volumes live and where their backups go."""

    volumes_root: str = "/media/startos/volumes"
    backup_root: str = "/media/startos/backup"

    def __post_init__(self) -> None:
        object.__setattr__(self, "volumes_root", _clean_abs(os.fspath(self.volumes_root), "volumes_root"))
        object.__setattr__(self, "backup_root", _clean_abs(os.fspath(self.backup_root), "backup_root"))
        if (self.volumes_root == self.backup_root
                or _strictly_under(self.volumes_root, self.backup_root)
                or _strictly_under(self.backup_root, self.volumes_root)):
            raise ValueError(f"volumes_root {self.volumes_root!r} and backup_root "
                             f"{self.backup_root!r} must not contain one another")

    def volume_path(self, volume: str) -> str:
        return f"{self.volumes_root.rstrip('/')}/{check_volume_name(volume)}/"

    def volume_backup_path(self, volume: str) -> str:
        return f"{self.backup_root.rstrip('/')}/volumes/{check_volume_name(volume)}/"

    @property
    def data_version_path(self) -> str:
        return posixpath.join(self.backup_root, DATA_VERSION_FILE)


def check_volume_name(name: str) -> str:
    """A volume name is one plain path component."""
    if not isinstance(name, str):
        raise ValueError(f"volume name must be a string, not {type(name).__name__}")
    if name in ("", ".", "..") or "/" in name or "\0" in name:
        raise ValueError(f"invalid volume name {name!r}: must be one plain path component "
                         "(not empty, '.', '..', and without '/' or NUL)")
    return name


@dataclass(frozen=True)
class BackupSync:
    """One data path and where its backup goes, with per-sync options."""

    data_path: str
    backup_path: str
    options: OptionsLike = None
    backup_options: OptionsLike = None
    restore_options: OptionsLike = None
    name: str | None = None        # shown in messages (a volume's name)

    def __post_init__(self) -> None:
        for name in ("options", "backup_options", "restore_options"):
            normalize_partial(getattr(self, name))  # fail early on bad options

    def check(self, layout: Layout) -> None:
        data = _clean_abs(os.fspath(self.data_path), "data_path")
        backup = _clean_abs(os.fspath(self.backup_path), "backup_path")
        if not _strictly_under(data, layout.volumes_root):
            raise ValueError(f"data_path {self.data_path!r} must be inside volumes_root "
                             f"{layout.volumes_root!r}")
        if not _strictly_under(backup, layout.backup_root):
            raise ValueError(f"backup_path {self.backup_path!r} must be inside backup_root "
                             f"{layout.backup_root!r}")


class SyncObserver:
    """Watches a backup or restore sync by sync (subclass and override what
    you need).  ``index`` counts from 1; ``sync`` is the BackupSync and
    ``src``/``dst``/``options`` what this direction runs."""

    def sync_started(self, index: int, total: int, sync: BackupSync, src: str, dst: str,
                     options: SyncOptions) -> None:
        pass

    def sync_finished(self, index: int, sync: BackupSync, src: str, dst: str,
                      options: SyncOptions, result: SyncResult) -> None:
        pass

    def sync_failed(self, index: int, sync: BackupSync, error: SyncError) -> None:
        pass

    def hook_skipped(self, hook: str) -> None:
        """A dry run does not run hook ``hook`` ("pre_backup", ...)."""

    def snapshot_started(self, snapshot_id: str, base: str | None) -> None:
        """A snapshot backup builds snapshot ``snapshot_id`` (its final ID
        may grow a suffix), linking against ``base`` (None: the first);
        a dry run is told the would-be base, with ``snapshot_id`` "" ."""

    def snapshot_committed(self, snapshot: Snapshot) -> None:
        """Every sync succeeded: the snapshot is complete and listed."""

    def snapshot_pruned(self, decision: Decision) -> None:
        """After a snapshot backup, the retention policy deletes (or, when
        the snapshot is in use, keeps) this one."""


class Backups:
    """Back up and restore a service's volumes (fluent: setters return self)."""

    def __init__(self, *, layout: Layout | None = None, engine: str | None = None,
                 options: OptionsLike = None, allow_empty_source: bool = False,
                 snapshots: bool = False, retention: RetentionPolicy | None = None,
                 allow_full_copies: bool = False) -> None:
        self.layout = layout or Layout()
        self.engine = engine
        self.allow_empty_source = allow_empty_source
        self.snapshots = snapshots
        self.retention = retention
        self.allow_full_copies = allow_full_copies
        self._options = normalize_partial(options)
        self._backup_options: dict[str, Any] = {}
        self._restore_options: dict[str, Any] = {}
        self.syncs: list[BackupSync] = []
        self._pre_backup: Hook = _noop
        self._post_backup: Hook = _noop
        self._pre_restore: Hook = _noop
        self._post_restore: Hook = _noop

    # -- construction ------------------------------------------------------
    @classmethod
    def of_volumes(cls, *volumes: str, layout: Layout | None = None,
                   engine: str | None = None) -> Backups:
        backups = cls(layout=layout, engine=engine)
        for volume in volumes:
            backups.add_volume(volume)
        return backups

    @classmethod
    def of_syncs(cls, *syncs: BackupSync, layout: Layout | None = None,
                 engine: str | None = None) -> Backups:
        backups = cls(layout=layout, engine=engine)
        for item in syncs:
            backups.add_sync(item)
        return backups

    @classmethod
    def with_options(cls, options: OptionsLike = None, *, layout: Layout | None = None,
                     engine: str | None = None) -> Backups:
        return cls(layout=layout, engine=engine, options=options)

    def set_options(self, options: OptionsLike = None) -> Backups:
        self._options.update(normalize_partial(options))
        return self

    def set_backup_options(self, options: OptionsLike = None) -> Backups:
        self._backup_options.update(normalize_partial(options))
        return self

    def set_restore_options(self, options: OptionsLike = None) -> Backups:
        self._restore_options.update(normalize_partial(options))
        return self

    def set_allow_empty_source(self, allow: bool = True) -> Backups:
        """Let an empty source directory replace a copy that is not empty
        (refused by default: see _check_empty_sources)."""
        self.allow_empty_source = bool(allow)
        return self

    def set_snapshots(self, enabled: bool = True, *, retention: RetentionPolicy | None = None,
                      allow_full_copies: bool = False) -> Backups:
        """Back up into a new snapshot each time (``BACKUP_ROOT/snapshots/<ID>/``)
        instead of the mirror; after a successful backup, delete the
        snapshots ``retention`` does not keep.  Where hard links do not
        work a snapshot backup is refused unless ``allow_full_copies``."""
        if retention is not None and not isinstance(retention, RetentionPolicy):
            raise ValueError(f"retention must be a RetentionPolicy, not {type(retention).__name__}")
        self.snapshots = bool(enabled)
        self.retention = retention
        self.allow_full_copies = bool(allow_full_copies)
        return self

    def set_pre_backup(self, fn: Hook) -> Backups:
        self._pre_backup = _check_hook(fn)
        return self

    def set_post_backup(self, fn: Hook) -> Backups:
        self._post_backup = _check_hook(fn)
        return self

    def set_pre_restore(self, fn: Hook) -> Backups:
        self._pre_restore = _check_hook(fn)
        return self

    def set_post_restore(self, fn: Hook) -> Backups:
        self._post_restore = _check_hook(fn)
        return self

    def add_volume(self, volume: str, *, options: OptionsLike = None,
                   backup_options: OptionsLike = None,
                   restore_options: OptionsLike = None) -> Backups:
        return self.add_sync(BackupSync(
            data_path=self.layout.volume_path(volume),
            backup_path=self.layout.volume_backup_path(volume),
            options=options, backup_options=backup_options, restore_options=restore_options,
            name=volume))

    def add_sync(self, sync: BackupSync) -> Backups:
        if not isinstance(sync, BackupSync):
            raise ValueError(f"add_sync takes a BackupSync, not {type(sync).__name__}")
        sync.check(self.layout)
        self.syncs.append(sync)
        return self

    # -- the merged options --------------------------------------------------
    def backup_options_for(self, sync: BackupSync) -> SyncOptions:
        return merge_options(self._options, self._backup_options, sync.options, sync.backup_options)

    def restore_options_for(self, sync: BackupSync) -> SyncOptions:
        return merge_options(self._options, self._restore_options, sync.options, sync.restore_options)

    # -- running -----------------------------------------------------------
    def create_backup(self, effects: Effects, *, on_progress: ProgressCallback | None = None,
                      observer: SyncObserver | None = None, on_item: ItemCallback | None = None,
                      dry_run: bool = False) -> list[SyncResult]:
        """pre_backup; each sync data -> backup; dataVersion.txt; post_backup
        (which also runs when a sync fails, before the error is raised).

        ``on_item`` receives each sync's itemized changes (rsync's ``-i``).
        ``dry_run`` (rsync's ``-n``) changes nothing: the syncs only report
        what they would do, and neither the hooks nor the data version
        run (``observer.hook_skipped`` is told).

        With snapshots on (:meth:`set_snapshots`) the syncs fill a new
        snapshot, committed (listed) only when all of them succeeded, with
        its own dataVersion.txt; then the retention policy prunes.  A dry
        run of a snapshot backup compares against the newest snapshot (the
        would-be link base) and creates nothing."""
        return _run_blocking(self.acreate_backup(effects, on_progress=on_progress,
                                                 observer=observer, on_item=on_item,
                                                 dry_run=dry_run))

    def restore_backup(self, effects: Effects, *, on_progress: ProgressCallback | None = None,
                       observer: SyncObserver | None = None, on_item: ItemCallback | None = None,
                       dry_run: bool = False, snapshot: str | None = None) -> list[SyncResult]:
        """pre_restore; each sync backup -> data; set_data_version; post_restore
        (``on_item`` and ``dry_run`` as for create_backup).  ``snapshot``
        (an ID, or ``"latest"``) restores from that complete snapshot, and
        its data version, instead of the mirror; the snapshot is only read.
        With snapshots on (:meth:`set_snapshots`) the default is the latest."""
        return _run_blocking(self.arestore_backup(effects, on_progress=on_progress,
                                                  observer=observer, on_item=on_item,
                                                  dry_run=dry_run, snapshot=snapshot))

    def init(self, effects: Effects, kind: str | None) -> list[SyncResult]:
        """The init script: restores when ``kind == "restore"``."""
        return self.restore_backup(effects) if kind == "restore" else []

    # -- snapshots -----------------------------------------------------------
    def list_snapshots(self) -> list[SnapshotInfo]:
        """The complete snapshots of the backup root, oldest first, with
        their time, data version, entries and unshared bytes."""
        return describe_snapshots(self.layout.backup_root)

    def prune_snapshots(self, policy: RetentionPolicy | None = None, *, dry_run: bool = False,
                        on_delete: Callable[[Decision], None] | None = None) -> list[Decision]:
        """Delete the snapshots ``policy`` (default: this facade's
        retention) does not keep, holding the backup root's lock (so not
        while a backup or restore runs there); ``dry_run`` only decides.
        The newest snapshot is always kept.  Decisions come oldest first."""
        policy = policy or self.retention
        if policy is None:
            raise ValueError("no retention policy: give one (or set_snapshots(retention=...))")
        with root_lock(self.layout.backup_root, "prune", dry_run=dry_run):
            return prune_snapshots(self.layout.backup_root, policy, dry_run=dry_run,
                                   on_delete=on_delete)

    async def acreate_backup(self, effects: Effects, *, on_progress: ProgressCallback | None = None,
                             observer: SyncObserver | None = None,
                             on_item: ItemCallback | None = None,
                             dry_run: bool = False) -> list[SyncResult]:
        run = _Run(observer or SyncObserver(), on_progress, on_item, dry_run)
        with root_lock(self.layout.backup_root, "backup", dry_run=dry_run):
            if not self.snapshots:
                plan = [(item, item.data_path, item.backup_path, self.backup_options_for(item))
                        for item in self.syncs]
                self._check_plan(plan, self.layout.backup_root, "back up")
                return await self._backup(plan, effects, run, self.layout.data_version_path)
            if dry_run:
                return await self._dry_run_snapshot(effects, run)
            return await self._backup_snapshot(effects, run)

    async def _backup(self, plan: list[_Step], effects: Effects, run: _Run,
                      version_path: str | None) -> list[SyncResult]:
        """pre_backup, the syncs, the data version (to ``version_path``),
        post_backup (also when a sync failed)."""
        await self._hook("pre_backup", self._pre_backup, effects, run)
        try:
            results = await self._run_plan(plan, run)
            if not run.dry_run and version_path is not None:
                version = await _resolve(effects.get_data_version())
                if version:
                    atomic_write_text(version_path, f"{version}\n")
        finally:
            await self._hook("post_backup", self._post_backup, effects, run)
        return results

    async def _backup_snapshot(self, effects: Effects, run: _Run) -> list[SyncResult]:
        """A backup into a new snapshot: built aside (after the hard-link
        probe, before any hook), committed when every sync succeeded and
        before post_backup, abandoned (removed) otherwise; then pruned by
        the retention policy.  The caller holds the root lock, which keeps
        a prune or another backup out meanwhile."""
        if not os.path.isdir(self.layout.backup_root):  # (as _check_plan says it)
            raise SyncError(f"destination root {self.layout.backup_root} does not exist or is "
                            "not a directory", exit_code=3)
        if not self.allow_full_copies:
            problem = hard_link_problem(self.layout.backup_root)
            if problem is not None:
                raise SnapshotError(f"cannot keep snapshots: {problem} (every snapshot would be "
                                    "a full copy: accept that with --allow-full-copies, "
                                    "allow_full_copies)")
        with begin_snapshot(self.layout.backup_root, check_hard_links=False) as build:
            plan = [(item, item.data_path, build.path_for(item.backup_path),
                     self.backup_options_for(item)) for item in self.syncs]
            self._check_plan(plan, build.path, "back up", previous=_base_copy(build))
            run.observer.snapshot_started(build.id, build.base.id if build.base else None)
            await self._hook("pre_backup", self._pre_backup, effects, run)
            try:
                results = await self._run_plan(plan, run, build)
                build.write_data_version(_version_text(await _resolve(effects.get_data_version())))
                partial = build.path
                snapshot = build.commit()
                run.observer.snapshot_committed(snapshot)
                results = [_moved(result, partial, snapshot.path) for result in results]
            finally:
                await self._hook("post_backup", self._post_backup, effects, run)
        if self.retention is not None:
            prune_snapshots(self.layout.backup_root, self.retention,
                            on_delete=run.observer.snapshot_pruned)
        return results

    async def _dry_run_snapshot(self, effects: Effects, run: _Run) -> list[SyncResult]:
        """What a snapshot backup would copy: a dry run against the newest
        snapshot (what the new one would link against), creating nothing."""
        base = latest_snapshot(self.layout.backup_root)
        run.observer.snapshot_started("", base.id if base else None)
        plan = [(item, item.data_path, _would_be_copy(self.layout, base, item.backup_path),
                 self.backup_options_for(item)) for item in self.syncs]
        self._check_plan(plan, self.layout.backup_root, "back up")
        return await self._backup(plan, effects, run, None)

    async def arestore_backup(self, effects: Effects, *, on_progress: ProgressCallback | None = None,
                              observer: SyncObserver | None = None,
                              on_item: ItemCallback | None = None,
                              dry_run: bool = False,
                              snapshot: str | None = None) -> list[SyncResult]:
        if snapshot is None and self.snapshots:
            snapshot = LATEST  # (the backups are snapshots: the mirror is not there)
        with root_lock(self.layout.backup_root, "restore", dry_run=dry_run):
            source = (resolve_snapshot(self.layout.backup_root, snapshot)
                      if snapshot is not None else None)
            plan = [(item, item.backup_path if source is None else source.path_for(item.backup_path),
                     item.data_path, self.restore_options_for(item)) for item in self.syncs]
            self._check_plan(plan, self.layout.volumes_root, "restore")
            # (a bad file is refused before any hook)
            version = (read_data_version(self.layout) if source is None
                       else read_version_file(source.data_version_path))
            run = _Run(observer or SyncObserver(), on_progress, on_item, dry_run)
            await self._hook("pre_restore", self._pre_restore, effects, run)
            results = await self._run_plan(plan, run)
            if version is not None and not dry_run:
                await _resolve(effects.set_data_version(version))
            await self._hook("post_restore", self._post_restore, effects, run)
        return results

    @staticmethod
    async def _hook(name: str, fn: Hook, effects: Effects, run: _Run) -> None:
        if run.dry_run:
            if fn is not _noop:
                run.observer.hook_skipped(name)
            return
        await _call_hook(fn, effects)

    async def ainit(self, effects: Effects, kind: str | None) -> list[SyncResult]:
        return await self.arestore_backup(effects) if kind == "restore" else []

    def _check_plan(self, plan: list[_Step], dst_root: str, verb: str, *,
                    previous: _Previous | None = None, empty_check: bool = True) -> None:
        """Refuse before any hook or sync runs, so bad input changes nothing:
        there must be something to do, every source must be a directory,
        the destination root must exist and be writable, exclude rules
        must parse, no tree may hold another, no file may stand where a
        destination directory goes (else makedirs would fail half-way,
        after the pre hook), and no empty source may replace a copy that
        is not empty (see _check_empty_sources; ``previous`` says where
        each sync's copy was, when not at its destination: a snapshot
        backup compares with the newest snapshot)."""
        if not plan:
            raise ValueError(f"nothing to {verb}: no volume or sync was added")
        if not os.path.isdir(dst_root):
            raise SyncError(f"destination root {dst_root} does not exist or is not a directory",
                            exit_code=3)
        if not os.access(dst_root, os.W_OK | os.X_OK):
            raise SyncError(f"destination root {dst_root} is not writable", exit_code=3)
        for _item, src, dst, opts in plan:
            if not os.path.isdir(src):
                what = "does not exist" if not os.path.lexists(src) else "is not a directory"
                raise SyncError(f"source {src} {what}", exit_code=23)
            check_arguments(src, dst, opts)  # bad exclude rules, overlapping trees
            path = posixpath.normpath(dst)
            while _strictly_under(path, dst_root):
                if os.path.lexists(path) and not os.path.isdir(path):
                    raise SyncError(f"destination {path} exists and is not a directory",
                                    exit_code=3)
                path = posixpath.dirname(path)
        if empty_check and not self.allow_empty_source:
            self._check_empty_sources(plan, verb, previous)

    @staticmethod
    def _check_empty_sources(plan: list[_Step], verb: str,
                             previous: _Previous | None = None) -> None:
        """An empty source dir with a destination that is not empty is what
        an unmounted volume looks like (its mount point is an empty dir):
        with --delete the copy would be wiped.  Refused unless
        allow_empty_source says the volume really was emptied."""
        for item, src, dst, _opts in plan:
            if previous is not None:
                dst = previous(item)
            if _has_entries(src) is False and _has_entries(dst):
                what = f"volume {item.name!r}" if item.name else f"sync {item.data_path}"
                raise EmptySourceError(
                    f"refusing to {verb} {what}: its source {src} is empty but {dst} is not "
                    "(is the volume mounted?); if it really was emptied, allow it with "
                    "--allow-empty-source (allow_empty_source)", exit_code=3)

    async def _run_plan(self, plan: list[_Step], run: _Run,
                        build: SnapshotBuild | None = None) -> list[SyncResult]:
        results = []
        observer = run.observer
        for index, (item, src, dst, options) in enumerate(plan, 1):
            observer.sync_started(index, len(plan), item, src, dst, options)
            try:
                if not run.dry_run:
                    os.makedirs(dst, exist_ok=True)  # as the seed does before each rsync
                # A snapshot links what is unchanged to the newest one's copy.
                link_dest = _link_dest_for(build, item) if build is not None else None
                job = start_sync(src, dst, options, engine=self.engine,
                                 on_progress=run.on_progress, on_item=run.on_item,
                                 dry_run=run.dry_run, link_dest=link_dest)
                try:
                    result = await asyncio.to_thread(job.wait)
                except asyncio.CancelledError:
                    # Ctrl-C (or the caller's cancel): stop the engine too,
                    # which removes its temp file; else it would run on.
                    job.cancel()
                    raise
            except SyncError as exc:
                observer.sync_failed(index, item, exc)
                raise
            results.append(result)
            observer.sync_finished(index, item, src, dst, options, result)
        return results


@dataclass(frozen=True)
class _Run:
    """How one create_backup/restore_backup call runs its syncs."""

    observer: SyncObserver
    on_progress: ProgressCallback | None
    on_item: ItemCallback | None
    dry_run: bool


def resolve_snapshot(backup_root: str, snapshot_id: str) -> Snapshot:
    """The complete snapshot ``snapshot_id`` of ``backup_root``, or the
    newest for ``"latest"`` (SnapshotError, one line, when there is none)."""
    if snapshot_id == LATEST:
        latest = latest_snapshot(backup_root)
        if latest is None:
            raise SnapshotError(f"no complete snapshot in {backup_root}/snapshots to restore "
                                "from (make one with backup --snapshot)")
        return latest
    return find_snapshot(backup_root, snapshot_id)


def _base_copy(build: SnapshotBuild) -> _Previous:
    """Where a sync's copy is in the build's base (the newest complete
    snapshot), or in the build itself (empty) when there is no base."""
    def previous(item: BackupSync) -> str:
        base = _link_dest_for(build, item)
        return base if base is not None else build.path_for(item.backup_path)
    return previous


def _link_dest_for(build: SnapshotBuild, item: BackupSync) -> str | None:
    """The link base of ``item``'s sync into ``build``: its copy in the
    newest complete snapshot (None: the first snapshot, or a new sync)."""
    return build.link_dest_for(item.backup_path)


def _would_be_copy(layout: Layout, base: Snapshot | None, backup_path: str) -> str:
    """A dry run's destination: the copy in ``base``, or (no snapshot yet)
    a path that does not exist, so every entry shows as new."""
    if base is not None:
        return base.path_for(backup_path)
    rel = posixpath.relpath(posixpath.normpath(backup_path), layout.backup_root)
    return posixpath.join(layout.backup_root, "snapshots", ".dry-run", rel) + "/"


def _moved(result: SyncResult, old: str, new: str) -> SyncResult:
    """``result`` with its destination where the commit renamed it."""
    if result.dst.startswith(old + "/"):
        return dataclasses.replace(result, dst=new + result.dst[len(old):])
    return result


def _version_text(version: Any) -> str | None:
    return f"{version}\n" if version else None


def read_data_version(layout: Layout) -> str | None:
    """The backup's data version: a regular file of a few bytes, read
    without following a link or blocking (DataVersionError otherwise)."""
    return read_version_file(layout.data_version_path)


def _check_hook(fn: Hook) -> Hook:
    if not callable(fn):
        raise ValueError(f"a hook must be callable, not {type(fn).__name__}")
    return fn


async def _resolve(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


async def _call_hook(fn: Hook, effects: Any) -> None:
    await _resolve(fn(effects))


def _run_blocking(coro: Coroutine[Any, Any, _T]) -> _T:
    """Run a coroutine to completion from synchronous code, also when the
    calling thread already runs an event loop (then in a helper thread)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    outcome: dict[str, Any] = {}

    def runner() -> None:
        try:
            outcome["value"] = asyncio.run(coro)
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=runner)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return cast(_T, outcome["value"])
