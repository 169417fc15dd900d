"""How the facade will drive a snapshot (the wiring comes later, in
backups.py): today's Backups, pointed at a build's paths, fills a
snapshot; a failed sync leaves nothing listed; a restore reads from a
complete snapshot's paths.  These tests hold the contract between the
store and the facade (test_snapshots_cli.py runs the wiring itself)."""

from __future__ import annotations

import datetime
import os
from pathlib import Path

import pytest

from syncengine import Backups, BackupSync, FileEffects, Layout, SyncError
from syncengine.snapshots import begin_snapshot, describe_snapshots, latest_snapshot, list_snapshots
from tests.snapshot import assert_same_tree

UTC = datetime.UTC
T0 = datetime.datetime(2026, 12, 6, 15, 17, tzinfo=UTC)


def layout_with(tmp_path: Path) -> Layout:
    volumes, backup = tmp_path / "volumes", tmp_path / "backup"
    (volumes / "main" / "d").mkdir(parents=True)
    (volumes / "main" / "d" / "f").write_text("data")
    (volumes / "logs").mkdir()
    (volumes / "logs" / "l").write_text("log")
    # Times in the past: rsync (and so the native engine) leaves a
    # directory's mtime alone when it matches to the second, which one made
    # this very second would.
    for path in volumes.rglob("*"):
        os.utime(path, (1_700_000_000, 1_700_000_000))
    backup.mkdir()
    return Layout(str(volumes), str(backup))


def snapshot_backup(layout: Layout, effects, when: datetime.datetime, *, fail: bool = False):
    """What ``backup --snapshot`` will do: every sync into the build, the
    data version into it, commit only when all succeeded."""
    with begin_snapshot(layout.backup_root, now=lambda: when) as build:
        syncs = [BackupSync(layout.volume_path(v), build.path_for(layout.volume_backup_path(v)))
                 for v in ("main", "logs")]
        if fail:
            syncs.append(BackupSync(f"{layout.volumes_root}/missing/",
                                    build.path_for("volumes/x/")))
        Backups.of_syncs(*syncs, layout=layout, engine="python").create_backup(effects)
        build.write_data_version(effects.get_data_version())
        return build.commit()


def test_a_facade_backup_fills_a_snapshot_and_a_restore_reads_it(tmp_path):
    layout = layout_with(tmp_path)
    effects = FileEffects(tmp_path / "version.txt", version="2.0")
    snap = snapshot_backup(layout, effects, T0)
    assert latest_snapshot(layout.backup_root) == snap and snap.data_version() == "2.0"
    assert_same_tree(layout.volume_path("main"), snap.volume_path("main"))
    assert describe_snapshots(layout.backup_root)[0].entries == 5   # main, d, f, logs, l
    # A restore reads the snapshot's copy of each backup_path.
    target = tmp_path / "restored"
    (target / "main").mkdir(parents=True)
    restore_layout = Layout(str(target), layout.backup_root)
    Backups.of_syncs(BackupSync(str(target / "main") + "/",
                                snap.path_for(layout.volume_backup_path("main"))),
                     layout=restore_layout, engine="python").restore_backup(effects)
    assert_same_tree(layout.volume_path("main"), str(target / "main") + "/")


def test_a_failed_run_is_not_listed(tmp_path):
    layout = layout_with(tmp_path)
    effects = FileEffects(tmp_path / "version.txt", version="2.0")
    first = snapshot_backup(layout, effects, T0)
    with pytest.raises(SyncError):
        snapshot_backup(layout, effects, T0 + datetime.timedelta(hours=1), fail=True)
    assert list_snapshots(layout.backup_root) == [first]
    assert sorted(os.listdir(Path(layout.backup_root) / "snapshots")) == [first.id]
