"""The Backups facade: construction, validation, hooks, data version, and
whole backups/restores through the real rsync compared attribute by
attribute with a direct rsync of the same tree.

Most facade tests replace the engine with a recorder (``fake_engine``), so
they check the facade's own behaviour: what it syncs, in which order, with
which options, and what happens around a failing sync.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import pytest

import syncengine.backups as backups_module
import syncengine.fsutil as fsutil_module
from fixtures.treespec import build_tree, load_spec
from syncengine import Backups, BackupSync, FileEffects, Layout, SyncError, SyncObserver, SyncOptions, SyncResult
from syncengine.backups import read_data_version
from tests.conftest import RecordingEffects, run_rsync
from tests.snapshot import assert_same_tree, diff_snapshots, snapshot

# -- a recording engine ------------------------------------------------------------

class _FakeJob:
    def __init__(self, result: SyncResult | None, error: SyncError | None) -> None:
        self._result, self._error = result, error

    def wait(self) -> SyncResult:
        if self._error is not None:
            raise self._error
        return self._result


class FakeEngine:
    """Stands in for ``start_sync`` inside the facade; logs every call into
    the shared ``log`` and can fail the sync whose source contains
    ``fail_on``."""

    def __init__(self, log: list) -> None:
        self.log = log
        self.calls: list[dict] = []
        self.fail_on: str | None = None

    def __call__(self, src, dst, options, *, engine=None, on_progress=None, on_item=None,
                 dry_run=False, link_dest=None):
        self.calls.append({"src": src, "dst": dst, "options": options, "engine": engine,
                           "dst_existed": os.path.isdir(dst), "on_item": on_item,
                           "dry_run": dry_run, "link_dest": link_dest})
        self.log.append(("sync", src, dst))
        if self.fail_on is not None and self.fail_on in src:
            result = SyncResult(engine="fake", src=src, dst=dst, exit_code=23,
                                errors=("rsync: something went wrong",))
            return _FakeJob(None, SyncError.from_result(result))
        return _FakeJob(SyncResult(engine="fake", src=src, dst=dst, exit_code=0), None)


@pytest.fixture
def log() -> list:
    return []


@pytest.fixture
def fake_engine(monkeypatch, log) -> FakeEngine:
    engine = FakeEngine(log)
    monkeypatch.setattr(backups_module, "start_sync", engine)
    return engine


@pytest.fixture
def layout(layout_dirs) -> Layout:
    volumes, backup = layout_dirs
    for name in ("main", "config"):
        (volumes / name).mkdir()
    return Layout(volumes_root=str(volumes), backup_root=str(backup))


def _hooks(backups: Backups, log: list, *, asynchronous: dict[str, bool]) -> Backups:
    """Install the four hooks; async ones yield to the loop before logging
    their end, so an un-awaited hook would be visible in the log."""
    def make(name):
        if asynchronous[name]:
            async def hook(effects):
                log.append(f"{name}:start")
                await asyncio.sleep(0.01)
                log.append(f"{name}:end")
        else:
            def hook(effects):
                log.append(f"{name}:start")
                log.append(f"{name}:end")
        return hook

    return (backups.set_pre_backup(make("pre_backup")).set_post_backup(make("post_backup"))
            .set_pre_restore(make("pre_restore")).set_post_restore(make("post_restore")))


HOOK_KINDS = [
    {"pre_backup": False, "post_backup": False, "pre_restore": False, "post_restore": False},
    {"pre_backup": True, "post_backup": True, "pre_restore": True, "post_restore": True},
    {"pre_backup": True, "post_backup": False, "pre_restore": False, "post_restore": True},
]


# -- construction ------------------------------------------------------------------

def test_of_volumes_maps_volumes_to_backup_paths_with_the_default_layout():
    backups = Backups.of_volumes("main", "config")
    assert [(s.data_path, s.backup_path) for s in backups.syncs] == [
        ("/media/startos/volumes/main/", "/media/startos/backup/volumes/main/"),
        ("/media/startos/volumes/config/", "/media/startos/backup/volumes/config/"),
    ]


def test_every_setter_returns_the_instance():
    backups = Backups.of_volumes("main")
    noop = lambda effects: None  # noqa: E731
    sync = BackupSync(data_path="/media/startos/volumes/main/x",
                      backup_path="/media/startos/backup/x")
    chained = [
        backups.set_options({}), backups.set_backup_options({}), backups.set_restore_options({}),
        backups.set_pre_backup(noop), backups.set_post_backup(noop),
        backups.set_pre_restore(noop), backups.set_post_restore(noop),
        backups.add_volume("logs"), backups.add_sync(sync),
    ]
    assert all(x is backups for x in chained)
    assert [s.data_path for s in backups.syncs] == [
        "/media/startos/volumes/main/", "/media/startos/volumes/logs/",
        "/media/startos/volumes/main/x"]


def test_of_syncs_keeps_order_and_options():
    layout = Layout(volumes_root="/v", backup_root="/b")
    a = BackupSync(data_path="/v/main/data", backup_path="/b/data", options={"exclude": ["x"]})
    b = BackupSync(data_path="/v/main/conf/", backup_path="/b/conf/")
    backups = Backups.of_syncs(a, b, layout=layout, engine="rsync")
    assert backups.syncs == [a, b]
    assert backups.engine == "rsync"
    assert backups.backup_options_for(a) == SyncOptions(exclude=("x",))


def test_a_hook_must_be_callable():
    with pytest.raises(ValueError, match="callable"):
        Backups.of_volumes("main").set_pre_backup("not a function")  # type: ignore[arg-type]


def test_add_sync_takes_only_backupsync():
    with pytest.raises(ValueError, match="BackupSync"):
        Backups.of_volumes().add_sync({"data_path": "/media/startos/volumes/a/",  # type: ignore
                                       "backup_path": "/media/startos/backup/a/"})


# -- validation --------------------------------------------------------------------

@pytest.mark.parametrize("name", ["..", ".", "a/b", "", "a\0b", "../x", "/abs"])
def test_volume_names_must_be_one_plain_component(name):
    with pytest.raises(ValueError, match="volume name"):
        Backups.of_volumes(name)
    with pytest.raises(ValueError, match="volume name"):
        Backups.of_volumes().add_volume(name)


def test_volume_name_must_be_a_string():
    with pytest.raises(ValueError, match="volume name"):
        Backups.of_volumes(b"main")  # type: ignore[arg-type]


LAYOUT = Layout(volumes_root="/srv/volumes", backup_root="/srv/backup")


@pytest.mark.parametrize("data_path, backup_path, fragment", [
    ("/srv/other/main/", "/srv/backup/main/", "data_path .* inside volumes_root"),
    ("/srv/volumes2/main/", "/srv/backup/main/", "data_path .* inside volumes_root"),  # prefix trick
    ("/srv/volumes", "/srv/backup/main/", "data_path .* inside volumes_root"),  # the root itself
    ("/srv/volumes/", "/srv/backup/main/", "data_path .* inside volumes_root"),
    ("/srv/volumes/../etc/", "/srv/backup/main/", r"'\.\.'"),
    ("/srv/volumes/main/../../etc", "/srv/backup/main/", r"'\.\.'"),
    ("srv/volumes/main/", "/srv/backup/main/", "absolute"),
    ("main/", "/srv/backup/main/", "absolute"),
    ("", "/srv/backup/main/", "non-empty"),
    ("/srv/volumes/ma\0in/", "/srv/backup/main/", "NUL"),
    ("/srv/volumes/main/", "/srv/elsewhere/main/", "backup_path .* inside backup_root"),
    ("/srv/volumes/main/", "/srv/backup", "backup_path .* inside backup_root"),
    ("/srv/volumes/main/", "/srv/backup-old/main/", "backup_path .* inside backup_root"),
    ("/srv/volumes/main/", "/srv/backup/../volumes/main/", r"'\.\.'"),
    ("/srv/volumes/main/", "backup/main/", "absolute"),
    ("/srv/volumes/main/", "", "non-empty"),
    ("/srv/volumes/main/", "/srv/backup/\0", "NUL"),
])
def test_backupsync_paths_are_checked_against_the_layout(data_path, backup_path, fragment):
    sync = BackupSync(data_path=data_path, backup_path=backup_path)
    with pytest.raises(ValueError, match=fragment):
        Backups.of_syncs(sync, layout=LAYOUT)
    with pytest.raises(ValueError, match=fragment):
        Backups(layout=LAYOUT).add_sync(sync)


def test_valid_backupsync_paths_are_accepted_unchanged():
    # A trailing slash means something to rsync: it must be kept as given.
    sync = BackupSync(data_path="/srv/volumes/main/sub", backup_path="/srv/backup/x/y/")
    backups = Backups.of_syncs(sync, layout=LAYOUT)
    assert backups.syncs[0].data_path == "/srv/volumes/main/sub"
    assert backups.syncs[0].backup_path == "/srv/backup/x/y/"


@pytest.mark.parametrize("kwargs, fragment", [
    ({"volumes_root": "relative/volumes"}, "volumes_root must be an absolute path"),
    ({"backup_root": "backup"}, "backup_root must be an absolute path"),
    ({"volumes_root": "/a/../b"}, r"'\.\.'"),
    ({"volumes_root": ""}, "non-empty"),
    ({"volumes_root": "/same", "backup_root": "/same/"}, "must not contain one another"),
    ({"volumes_root": "/data", "backup_root": "/data/backup"}, "must not contain one another"),
    ({"volumes_root": "/backup/volumes", "backup_root": "/backup"}, "must not contain one another"),
])
def test_layout_roots_are_validated(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        Layout(**kwargs)


def test_layout_accepts_pathlike_roots(tmp_path):
    layout = Layout(volumes_root=tmp_path / "v", backup_root=tmp_path / "b")
    assert layout.volume_path("main") == f"{tmp_path}/v/main/"
    assert layout.volume_backup_path("main") == f"{tmp_path}/b/volumes/main/"
    assert layout.data_version_path == f"{tmp_path}/b/dataVersion.txt"


# -- hooks and order (recording engine) ----------------------------------------------

@pytest.mark.parametrize("kinds", HOOK_KINDS, ids=["sync-hooks", "async-hooks", "mixed-hooks"])
def test_create_backup_runs_hooks_syncs_and_version_in_order(kinds, layout, fake_engine, log):
    backups = _hooks(Backups.of_volumes("main", "config", layout=layout), log, asynchronous=kinds)
    effects = RecordingEffects("1.0.0", log)
    backups.create_backup(effects)
    vols, bk = layout.volumes_root, layout.backup_root
    assert log == [
        "pre_backup:start", "pre_backup:end",
        ("sync", f"{vols}/main/", f"{bk}/volumes/main/"),
        ("sync", f"{vols}/config/", f"{bk}/volumes/config/"),
        "get_data_version",
        "post_backup:start", "post_backup:end",
    ]
    # The destination directory exists before each sync starts (as the seed's mkdir).
    assert all(call["dst_existed"] for call in fake_engine.calls)
    assert effects.set_versions == []


@pytest.mark.parametrize("kinds", HOOK_KINDS, ids=["sync-hooks", "async-hooks", "mixed-hooks"])
def test_restore_backup_awaits_every_hook_in_order(kinds, layout, fake_engine, log):
    # Seed bug: pre_restore and post_restore were not awaited.
    os.makedirs(layout.volume_backup_path("main"))
    os.makedirs(layout.volume_backup_path("config"))
    Path(layout.data_version_path).write_text("3.1")
    backups = _hooks(Backups.of_volumes("main", "config", layout=layout), log, asynchronous=kinds)
    effects = RecordingEffects(None, log)
    backups.restore_backup(effects)
    vols, bk = layout.volumes_root, layout.backup_root
    assert log == [
        "pre_restore:start", "pre_restore:end",
        ("sync", f"{bk}/volumes/main/", f"{vols}/main/"),
        ("sync", f"{bk}/volumes/config/", f"{vols}/config/"),
        ("set_data_version", "3.1"),
        "post_restore:start", "post_restore:end",
    ]


def test_a_hook_returning_any_awaitable_is_awaited(layout, fake_engine, log):
    class Later:
        def __await__(self):
            yield from asyncio.sleep(0.01).__await__()
            log.append("awaited")

    backups = Backups.of_volumes("main", layout=layout).set_pre_backup(lambda effects: Later())
    backups.create_backup(RecordingEffects(None, log))
    assert log.index("awaited") < log.index(("sync", f"{layout.volumes_root}/main/",
                                             f"{layout.backup_root}/volumes/main/"))


def test_hooks_receive_the_effects(layout, fake_engine):
    seen = []
    effects = RecordingEffects("1")
    os.makedirs(layout.volume_backup_path("main"))
    backups = (Backups.of_volumes("main", layout=layout)
               .set_pre_backup(seen.append).set_post_backup(seen.append)
               .set_pre_restore(seen.append).set_post_restore(seen.append))
    backups.create_backup(effects)
    backups.restore_backup(effects)
    assert len(seen) == 4 and all(x is effects for x in seen)


def test_restore_uses_restore_options_and_backup_uses_backup_options(layout, fake_engine):
    os.makedirs(layout.volume_backup_path("main"))
    backups = (Backups.with_options({"exclude": ["*.common"]}, layout=layout)
               .set_backup_options({"exclude": ["*.backup-only"]})
               .set_restore_options({"delete": False})
               .add_volume("main"))
    backups.create_backup(RecordingEffects())
    backups.restore_backup(RecordingEffects())
    backup_call, restore_call = fake_engine.calls
    assert backup_call["options"] == SyncOptions(delete=True, exclude=("*.backup-only",))
    assert restore_call["options"] == SyncOptions(delete=False, exclude=("*.common",))


def test_the_facade_engine_is_passed_to_every_sync(layout, fake_engine):
    Backups.of_volumes("main", "config", layout=layout, engine="rsync").create_backup(
        RecordingEffects())
    assert [c["engine"] for c in fake_engine.calls] == ["rsync", "rsync"]
    # (a mirror backup links against nothing: only snapshots have a base)
    assert [c["link_dest"] for c in fake_engine.calls] == [None, None]


# -- failures -------------------------------------------------------------------------

def test_post_backup_runs_after_a_failed_sync_then_the_error_is_raised(layout, fake_engine, log):
    fake_engine.fail_on = "/main/"
    backups = _hooks(Backups.of_volumes("main", "config", layout=layout), log,
                     asynchronous={k: True for k in HOOK_KINDS[0]})
    with pytest.raises(SyncError) as info:
        backups.create_backup(RecordingEffects("9.9", log))
    assert info.value.exit_code == 23
    assert "something went wrong" in str(info.value)
    vols, bk = layout.volumes_root, layout.backup_root
    # The failing sync stops the run: no later sync, no data version, but
    # post_backup (which restarts the service) has run to its end.
    assert log == ["pre_backup:start", "pre_backup:end",
                   ("sync", f"{vols}/main/", f"{bk}/volumes/main/"),
                   "post_backup:start", "post_backup:end"]
    assert not os.path.exists(layout.data_version_path)


def test_post_restore_runs_only_on_success(layout, fake_engine, log):
    for name in ("main", "config"):
        os.makedirs(layout.volume_backup_path(name))
    Path(layout.data_version_path).write_text("2.0")
    fake_engine.fail_on = "/config/"
    backups = _hooks(Backups.of_volumes("main", "config", layout=layout), log,
                     asynchronous={k: False for k in HOOK_KINDS[0]})
    effects = RecordingEffects(None, log)
    with pytest.raises(SyncError):
        backups.restore_backup(effects)
    assert "post_restore:start" not in log
    assert effects.set_versions == []  # a failed restore records no version
    assert log[-1] == ("sync", f"{layout.backup_root}/volumes/config/",
                       f"{layout.volumes_root}/config/")


def test_a_missing_source_is_refused_before_any_hook_runs(layout, fake_engine, log):
    backups = _hooks(Backups.of_volumes("main", "absent", layout=layout), log,
                     asynchronous={k: False for k in HOOK_KINDS[0]})
    with pytest.raises(SyncError, match="absent"):
        backups.create_backup(RecordingEffects("1", log))
    assert log == []
    assert os.listdir(layout.backup_root) == []


def test_a_missing_backup_root_is_refused_before_any_hook_runs(tmp_path, fake_engine, log):
    (tmp_path / "v" / "main").mkdir(parents=True)
    layout = Layout(volumes_root=str(tmp_path / "v"), backup_root=str(tmp_path / "b"))
    backups = _hooks(Backups.of_volumes("main", layout=layout), log,
                     asynchronous={k: False for k in HOOK_KINDS[0]})
    with pytest.raises(SyncError, match="does not exist"):
        backups.create_backup(RecordingEffects("1", log))
    assert log == [] and not (tmp_path / "b").exists()


@pytest.mark.parametrize("blocker", ["volumes", "volumes/main"])
def test_a_file_where_a_destination_dir_goes_is_refused_before_any_hook(
        layout, fake_engine, log, blocker):
    blocked = Path(layout.backup_root, blocker)
    blocked.parent.mkdir(parents=True, exist_ok=True)
    blocked.write_text("not a directory")
    backups = _hooks(Backups.of_volumes("config", "main", layout=layout), log,
                     asynchronous={k: False for k in HOOK_KINDS[0]})
    with pytest.raises(SyncError, match="not a directory") as info:
        backups.create_backup(RecordingEffects("1", log))
    assert info.value.exit_code == 3
    assert log == []  # no hook ran, no sync ran (not even the unblocked first one)
    assert blocked.read_text() == "not a directory"


def test_restore_refuses_a_volume_missing_from_the_backup(layout, fake_engine, log):
    os.makedirs(layout.volume_backup_path("main"))
    backups = _hooks(Backups.of_volumes("main", "config", layout=layout), log,
                     asynchronous={k: False for k in HOOK_KINDS[0]})
    with pytest.raises(SyncError, match="config"):
        backups.restore_backup(RecordingEffects(None, log))
    assert log == []


# -- data version -------------------------------------------------------------------

def test_data_version_is_written_into_the_backup_root(layout, fake_engine):
    Backups.of_volumes("main", layout=layout).create_backup(RecordingEffects("1.2.3:0"))
    assert Path(layout.backup_root, "dataVersion.txt").read_text(encoding="utf-8") == "1.2.3:0\n"
    # Atomic write: no temporary file is left beside it.
    assert sorted(os.listdir(layout.backup_root)) == ["dataVersion.txt", "volumes"]


@pytest.mark.parametrize("version", [None, ""])
def test_no_data_version_means_no_file(layout, fake_engine, version):
    Backups.of_volumes("main", layout=layout).create_backup(RecordingEffects(version))
    assert not os.path.exists(layout.data_version_path)


def test_an_async_get_data_version_is_awaited(layout, fake_engine):
    class AsyncEffects:
        async def get_data_version(self):
            await asyncio.sleep(0)
            return "async-1"

        async def set_data_version(self, version):
            await asyncio.sleep(0)
            self.got = version

    effects = AsyncEffects()
    backups = Backups.of_volumes("main", layout=layout)
    backups.create_backup(effects)
    assert Path(layout.data_version_path).read_text() == "async-1\n"
    backups.restore_backup(effects)
    assert effects.got == "async-1"


def test_data_version_replacement_is_atomic(layout, fake_engine, monkeypatch, log):
    """If the final rename fails, the old version file is untouched and no
    temporary file is left; post_backup still runs and the error surfaces."""
    Path(layout.data_version_path).write_text("old")

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fsutil_module.os, "replace", broken_replace)
    backups = Backups.of_volumes("main", layout=layout).set_post_backup(
        lambda effects: log.append("post_backup"))
    with pytest.raises(OSError, match="No space"):
        backups.create_backup(RecordingEffects("new"))
    assert Path(layout.data_version_path).read_text() == "old"  # (untouched)
    assert sorted(os.listdir(layout.backup_root)) == ["dataVersion.txt", "volumes"]
    assert log[-1] == "post_backup"


def test_restore_without_a_version_file_sets_none(layout, fake_engine):
    os.makedirs(layout.volume_backup_path("main"))
    effects = RecordingEffects("unchanged")
    Backups.of_volumes("main", layout=layout).restore_backup(effects)
    assert effects.set_versions == []


def test_file_effects_round_trip(tmp_path):
    path = tmp_path / "dataVersion.txt"
    effects = FileEffects(path)
    assert effects.get_data_version() is None
    effects.set_data_version("4.5.6")
    assert path.read_text() == "4.5.6\n"  # a text file: a line ends with a newline
    assert FileEffects(path).get_data_version() == "4.5.6"
    path.write_text("4.5.7")  # as older versions wrote it
    assert FileEffects(path).get_data_version() == "4.5.7"
    assert FileEffects(path, version="override").get_data_version() == "override"


# -- init(kind) ---------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["install", "update", "container", None, "Restore"])
def test_init_does_nothing_unless_kind_is_restore(kind, layout, fake_engine, log):
    os.makedirs(layout.volume_backup_path("main"))
    backups = _hooks(Backups.of_volumes("main", layout=layout), log,
                     asynchronous={k: False for k in HOOK_KINDS[0]})
    assert backups.init(RecordingEffects(None, log), kind) == []
    assert log == []


def test_init_restore_restores(layout, fake_engine, log):
    os.makedirs(layout.volume_backup_path("main"))
    Path(layout.data_version_path).write_text("7")
    effects = RecordingEffects(None, log)
    results = Backups.of_volumes("main", layout=layout).init(effects, "restore")
    assert len(results) == 1
    assert [c["src"] for c in fake_engine.calls] == [layout.volume_backup_path("main")]
    assert effects.set_versions == ["7"]


def test_the_async_api_and_the_blocking_api_inside_a_running_loop(layout, fake_engine, log):
    os.makedirs(layout.volume_backup_path("main"))
    backups = Backups.of_volumes("main", layout=layout)

    async def main():
        await backups.acreate_backup(RecordingEffects("a"))
        await backups.ainit(RecordingEffects(), "restore")
        # The blocking API still works when called from async code.
        backups.create_backup(RecordingEffects("b"))

    asyncio.run(main())
    assert [c["src"] for c in fake_engine.calls] == [
        layout.volume_path("main"), layout.volume_backup_path("main"), layout.volume_path("main")]
    assert Path(layout.data_version_path).read_text() == "b\n"


# -- through the real rsync, compared with a direct rsync ------------------------------

KITCHEN = "kitchen_sink"
SPECIALS = {"fifo", "socket", "chardev", "blockdev"}


def _without_specials(snap: dict) -> dict:
    """rsync without -D skips devices, fifos and sockets."""
    return {path: rec for path, rec in snap.items() if rec["type"] not in SPECIALS}


def _direct_rsync(src: str, dst: str, *extra: str) -> None:
    """What the seed runs, by hand: mkdir -p DST, then rsync."""
    os.makedirs(dst, exist_ok=True)
    proc = run_rsync("--delete", *extra, "-rlptgocAXH", src, dst)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")


def _mutate(root: str) -> None:
    """Change a restored-into volume in every way a restore must undo; the
    same function runs on both trees that are compared."""
    root = Path(root)
    (root / "hello.txt").write_text("changed content, same name\n")
    os.chmod(root / "blob.bin", 0o777)
    os.chown(root / "owners" / "named", 4242, 4242)
    os.utime(root / "deep" / "1" / "2" / "3" / "leaf.txt", ns=(1, 1))
    os.setxattr(root / "xattr" / "file", "user.extra", b"stray")
    os.removexattr(root / "xattr" / "file", "user.text")
    os.unlink(root / "hard" / "b")
    with open(root / "hard" / "b", "w") as f:  # break the hard link
        f.write("linked three times\n")
    os.unlink(root / "links" / "to-file")
    os.symlink("elsewhere", root / "links" / "to-file")
    shutil.rmtree(root / "names")
    (root / "extra-dir").mkdir()
    (root / "extra-dir" / "new.txt").write_text("not in the backup\n")
    (root / "extra.tmp").write_text("not in the backup\n")
    os.removexattr(root / "acl" / "file", "system.posix_acl_access")  # = setfacl -b


@pytest.mark.rsync
@pytest.mark.skipif(os.geteuid() != 0, reason="kitchen_sink needs root (owners, trusted.*, devices)")
def test_backup_and_restore_match_a_direct_rsync_attribute_by_attribute(tmp_path):
    vols, bk, direct = tmp_path / "volumes", tmp_path / "backup", tmp_path / "direct"
    bk.mkdir()
    build_tree(vols / "main", load_spec(KITCHEN))
    build_tree(vols / "config", load_spec("basic"))
    source_snaps = {name: snapshot(vols / name) for name in ("main", "config")}
    layout = Layout(volumes_root=str(vols), backup_root=str(bk))
    backups = Backups.of_volumes("main", "config", layout=layout, engine="rsync")

    results = backups.create_backup(RecordingEffects("5.0.1"))
    assert [r.exit_code for r in results] == [0, 0]
    assert [r.engine for r in results] == ["rsync", "rsync"]
    assert (bk / "dataVersion.txt").read_text() == "5.0.1\n"

    for name in ("main", "config"):
        _direct_rsync(f"{vols}/{name}/", f"{direct}/backup/{name}/")
        backed_up = snapshot(bk / "volumes" / name)
        # Same as rsync itself: content, mode, owner, group, ns mtime,
        # symlinks, hard links, xattrs, ACLs, the root's own attributes.
        assert_same_tree(backed_up, snapshot(direct / "backup" / name))
        # And not vacuously: the backup is the source tree minus specials.
        assert diff_snapshots(_without_specials(source_snaps[name]), backed_up) == []

    main_backup = snapshot(bk / "volumes" / "main")
    # The spec's features really travelled (guards against a thin fixture).
    assert main_backup[b"hard/a"]["links"] == (b"deep/1/2/3/c", b"hard/a", b"hard/b")
    assert main_backup[b"acl/file"]["acl"] is not None
    assert main_backup[b"acl/dir"]["default_acl"] is not None
    assert main_backup[b"xattr/file"]["xattrs"]["trusted.secret"] == b"t"
    assert main_backup[b"links/odd-\xfe"]["target"] == b"\xff\xfe target"
    assert main_backup[b"owners/unnamed"]["uid"] == 54321
    assert main_backup[b"hello.txt"]["mtime_ns"] == 1_600_000_001_123_456_789

    # Restore into a changed volume; the oracle restores an identically
    # changed copy with rsync directly.
    shutil.rmtree(vols / "config")
    build_tree(direct / "restore" / "main", load_spec(KITCHEN))
    for root in (vols / "main", direct / "restore" / "main"):
        _mutate(str(root))
    effects = RecordingEffects()
    results = backups.restore_backup(effects)
    assert [r.exit_code for r in results] == [0, 0]
    assert effects.set_versions == ["5.0.1"]
    _direct_rsync(f"{bk}/volumes/main/", f"{direct}/restore/main/")
    _direct_rsync(f"{bk}/volumes/config/", f"{direct}/restore/config/")
    for name in ("main", "config"):
        restored = snapshot(vols / name)
        assert_same_tree(restored, snapshot(direct / "restore" / name))
        assert diff_snapshots(_without_specials(source_snaps[name]),
                              _without_specials(restored)) == []


@pytest.mark.rsync
def test_restore_applies_restore_options_not_backup_options_through_rsync(tmp_path):
    vols, bk = tmp_path / "volumes", tmp_path / "backup"
    bk.mkdir()
    build_tree(vols / "main", [{"path": "a.txt", "content": "a"},
                               {"path": "b.log", "content": "b"},
                               {"path": "c.tmp", "content": "c"}])
    layout = Layout(volumes_root=str(vols), backup_root=str(bk))
    backups = (Backups.of_volumes("main", layout=layout, engine="rsync")
               .set_backup_options({"exclude": ["*.log"]})
               .set_restore_options({"exclude": ["*.tmp"]}))
    backups.create_backup(RecordingEffects())
    assert sorted(os.listdir(bk / "volumes" / "main")) == ["a.txt", "c.tmp"]

    shutil.rmtree(vols / "main")
    (vols / "main").mkdir()
    (vols / "main" / "x.log").write_text("not protected on restore: deleted")
    (vols / "main" / "y.tmp").write_text("protected by the restore exclude: kept")
    backups.restore_backup(RecordingEffects())
    # With the seed's bug (backup options on restore) this would be
    # a.txt, c.tmp, x.log.
    assert sorted(os.listdir(vols / "main")) == ["a.txt", "y.tmp"]


@pytest.mark.rsync
def test_a_real_rsync_failure_still_runs_post_backup_then_raises(tmp_path, log, immutable_file):
    vols, bk = tmp_path / "volumes", tmp_path / "backup"
    for name in ("main", "config"):
        (vols / name).mkdir(parents=True)
        (vols / name / "f").write_text("new")
    (bk / "volumes" / "main").mkdir(parents=True)
    (bk / "volumes" / "main" / "f").write_text("old backup")
    immutable_file(bk / "volumes" / "main" / "f")
    layout = Layout(volumes_root=str(vols), backup_root=str(bk))
    backups = (Backups.of_volumes("main", "config", layout=layout, engine="rsync")
               .set_pre_backup(lambda effects: log.append("pre_backup"))
               .set_post_backup(lambda effects: log.append("post_backup")))
    with pytest.raises(SyncError) as info:
        backups.create_backup(RecordingEffects("1"))
    assert info.value.exit_code == 23  # rsync's own code for a partial transfer
    assert "Operation not permitted" in info.value.stderr
    assert log == ["pre_backup", "post_backup"]
    assert not (bk / "dataVersion.txt").exists()
    assert not (bk / "volumes" / "config").exists()  # the run stopped at the failure


@pytest.mark.rsync
def test_progress_of_a_backup_reaches_the_callback(tmp_path):
    vols, bk = tmp_path / "volumes", tmp_path / "backup"
    build_tree(vols / "main", [{"path": "a", "size": 200_000, "seed": 1},
                               {"path": "b", "size": 100_000, "seed": 2}])
    build_tree(vols / "logs", [{"path": "c", "size": 50_000, "seed": 3}])
    bk.mkdir()
    samples = []
    backups = Backups.of_volumes("main", "logs", layout=Layout(volumes_root=str(vols),
                                                               backup_root=str(bk)),
                                 engine="rsync")
    results = backups.create_backup(RecordingEffects(), on_progress=samples.append)
    assert [r.bytes_transferred for r in results] == [300_000, 50_000]
    assert [r.files_transferred for r in results] == [2, 1]
    # Each sync reports its own samples; the last of each run is complete.
    finals = [s for s in samples if s.to_check == 0]
    assert {s.bytes_done for s in finals} == {300_000, 50_000}


class RecordingObserver(SyncObserver):
    def __init__(self, log):
        self.log = log

    def sync_started(self, index, total, sync, src, dst, options):
        self.log.append(("started", index, total, src, dst, options.exclude))

    def sync_finished(self, index, sync, src, dst, options, result):
        self.log.append(("finished", index, result.exit_code))

    def sync_failed(self, index, sync, error):
        self.log.append(("failed", index, error.exit_code))


def test_an_observer_sees_each_sync_in_both_directions(layout, fake_engine, log):
    backups = (Backups.of_volumes("main", "config", layout=layout)
               .set_backup_options({"exclude": ["b"]}).set_restore_options({"exclude": ["r"]}))
    vols, bk = layout.volumes_root, layout.backup_root
    events = []
    backups.create_backup(RecordingEffects(None, log), observer=RecordingObserver(events))
    assert events == [("started", 1, 2, f"{vols}/main/", f"{bk}/volumes/main/", ("b",)),
                      ("finished", 1, 0),
                      ("started", 2, 2, f"{vols}/config/", f"{bk}/volumes/config/", ("b",)),
                      ("finished", 2, 0)]
    events.clear()
    backups.restore_backup(RecordingEffects(None, log), observer=RecordingObserver(events))
    assert [e[:5] for e in events if e[0] == "started"] == [
        ("started", 1, 2, f"{bk}/volumes/main/", f"{vols}/main/"),
        ("started", 2, 2, f"{bk}/volumes/config/", f"{vols}/config/")]
    assert {e[5] for e in events if e[0] == "started"} == {("r",)}


def test_an_observer_hears_of_a_failed_sync(layout, fake_engine, log):
    fake_engine.fail_on = "/config/"
    events = []
    with pytest.raises(SyncError):
        Backups.of_volumes("main", "config", layout=layout).create_backup(
            RecordingEffects(None, log), observer=RecordingObserver(events))
    assert [e[0] for e in events] == ["started", "finished", "started", "failed"]
    assert events[-1] == ("failed", 2, 23)


@pytest.mark.parametrize("text", ["2.0.1\n", "2.0.1"])
def test_a_backups_data_version_reads_with_or_without_its_newline(layout, text):
    """Backups made before the newline was written have none."""
    os.makedirs(layout.backup_root, exist_ok=True)
    Path(layout.data_version_path).write_text(text, encoding="utf-8")
    assert read_data_version(layout) == "2.0.1"
