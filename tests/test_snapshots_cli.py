"""Snapshots end to end: ``backup --snapshot``, ``restore --snapshot``,
``snapshots list/prune/diff``, the ``[snapshots]`` config table, and the
facade's snapshot methods, with real runs of both engines (the rsync
engine runs the system rsync).  No assertion about hard links: until the
engines take --link-dest a snapshot is a full copy."""

from __future__ import annotations

import fcntl
import json
import os
import random
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from syncengine import Backups, FileEffects, Layout, SyncError, SyncObserver, verify_trees
from syncengine.snapshots import RetentionPolicy, list_snapshots
from tests.conftest import copy_sample_volumes
from tests.test_cli import console_script, json_summary, one_error_line

# Each test runs several commands as processes: the fast part (-m "not
# slow") runs a sample of them (tests/conftest.py).
pytestmark = [pytest.mark.usefixtures("clean_env"), pytest.mark.sampled(3)]

ENGINES = ["python", "rsync"]


@pytest.fixture
def roots(tmp_path: Path) -> tuple[Path, Path]:
    return copy_sample_volumes(tmp_path / "volumes", tmp_path / "backup")


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([console_script(), *args], capture_output=True, text=True,
                          timeout=timeout)


def backup(vols: Path, bk: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return cli("backup", "--snapshot", "--volumes-root", str(vols), "--backup-root", str(bk),
               *extra)


def entries(bk: Path) -> list[str]:
    """Everything in snapshots/, hidden names too."""
    return sorted(os.listdir(bk / "snapshots")) if (bk / "snapshots").exists() else []


def write(path: Path, text: str) -> None:
    """Write a file, its time and its directory's in the past (a time of
    this very second is one rsync, and so the native engine, may leave
    alone on a directory: see test_snapshots_wiring)."""
    path.write_text(text)
    for p in (path, path.parent):
        os.utime(p, (1_600_000_000, 1_600_000_000))


def mutate(vols: Path, step: int) -> None:
    """A change of each kind: a new file, a changed one, a removed one, a
    mode, a new directory (times in the past, as the fixture's)."""
    main = vols / "main"
    (main / f"new-{step}.txt").write_text(f"step {step}\n" * step)
    (main / "hello.txt").write_text(f"hello, step {step}\n")
    for old in main.glob(f"new-{step - 2}.txt"):
        old.unlink()
    os.chmod(main / "hello.txt", 0o600 if step % 2 else 0o644)
    (vols / "config" / f"dir-{step}").mkdir()
    # (Times in the past: see write().)
    for path in [main / f"new-{step}.txt", main / "hello.txt", main, vols / "config",
                 vols / "config" / f"dir-{step}"]:
        os.utime(path, (1_600_000_000 + step, 1_600_000_000 + step))


# -- backup and restore -------------------------------------------------------------

def inodes(top: Path) -> dict[str, tuple[int, int]]:
    """Each non-dir below ``top`` by its path below it: (dev, inode)."""
    found = {}
    for dirpath, _dirs, files in os.walk(top):
        for name in files:
            st = os.lstat(os.path.join(dirpath, name))
            found[os.path.relpath(os.path.join(dirpath, name), top)] = (st.st_dev, st.st_ino)
    return found


@pytest.mark.parametrize("engine", ENGINES)
def test_a_snapshot_hard_links_what_did_not_change_to_the_one_before(engine, roots):
    """--link-dest against the newest complete snapshot: an unchanged file
    (or symlink) is the previous snapshot's inode; a changed one is a new
    file, and the previous snapshot's copy keeps its old content."""
    vols, bk = roots
    first = backup(vols, bk, "--engine", engine, "--json")
    assert first.returncode == 0, first.stderr
    before = json_summary(first.stdout)["snapshot"]
    write(vols / "main" / "hello.txt", "changed since the first snapshot\n")
    second = backup(vols, bk, "--engine", engine, "--json")
    assert second.returncode == 0, second.stderr
    after = json_summary(second.stdout)["snapshot"]
    old, new = (inodes(bk / "snapshots" / i / "volumes") for i in (before, after))
    assert old.keys() == new.keys() and len(old) > 2
    assert new[os.path.join("main", "hello.txt")] != old[os.path.join("main", "hello.txt")]
    assert {p for p in old if old[p] == new[p]} == set(old) - {os.path.join("main", "hello.txt")}
    assert (bk / "snapshots" / before / "volumes" / "main" / "hello.txt").read_text() != \
        "changed since the first snapshot\n"
    for snap in (before, after):
        assert verify_trees(f"{bk}/snapshots/{snap}/volumes/config/", f"{vols}/config/") == []


@pytest.mark.parametrize("engine", ENGINES)
def test_every_snapshot_of_a_sequence_restores_the_tree_backed_up_then(engine, roots, tmp_path):
    vols, bk = roots
    kept: list[tuple[Path, str]] = []  # (a copy of the volumes then, the data version)
    for step in range(1, 5):
        mutate(vols, step)
        run = backup(vols, bk, "--engine", engine, "--data-version", f"1.{step}", "--json")
        assert run.returncode == 0, run.stderr
        summary = json_summary(run.stdout)
        # The summary names the copies where they are once complete.
        assert [r["dst"] for r in summary["syncs"]] == [
            f"{bk}/snapshots/{summary['snapshot']}/volumes/{v}/" for v in ("config", "main")]
        then = tmp_path / f"then-{step}"
        shutil.copytree(vols, then, symlinks=True)
        kept.append((then, summary["snapshot"]))
    # The mirror layout is not written; every run is one complete snapshot.
    assert not (bk / "volumes").exists() and not (bk / "dataVersion.txt").exists()
    ids = [snap_id for _then, snap_id in kept]
    assert [s.id for s in list_snapshots(bk)] == ids == sorted(ids)

    listed = cli("snapshots", "list", "--backup-root", str(bk), "--json")
    events = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [e["id"] for e in events if e["event"] == "snapshot"] == ids
    assert [e["data_version"] for e in events[:-1]] == [f"1.{n}" for n in range(1, 5)]
    text = cli("snapshots", "list", "--backup-root", str(bk)).stdout.splitlines()
    assert [line.split()[0] for line in text] == ids

    for step, (then, snap_id) in enumerate(kept, 1):
        target = tmp_path / f"restored-{step}"
        target.mkdir()
        run = cli("restore", "--snapshot", snap_id, "--engine", engine,
                  "--volumes-root", str(target), "--backup-root", str(bk))
        assert run.returncode == 0, run.stderr
        assert f"data version: 1.{step}" in run.stdout
        for volume in ("main", "config"):
            assert verify_trees(f"{then}/{volume}/", f"{target}/{volume}/") == []
    # Restores only read: the snapshots are as they were.
    for then, snap_id in kept:
        for volume in ("main", "config"):
            assert verify_trees(f"{then}/{volume}/",
                                f"{bk}/snapshots/{snap_id}/volumes/{volume}/") == []


def test_restore_latest_and_its_data_version(roots, tmp_path):
    vols, bk = roots
    for version in ("2.0", "2.1"):
        write(vols / "main" / f"v{version}", version)
        assert backup(vols, bk, "--data-version", version).returncode == 0
    target = tmp_path / "target"
    target.mkdir()
    run = cli("restore", "main", "--snapshot", "latest", "--volumes-root", str(target),
              "--backup-root", str(bk), "--json")
    assert run.returncode == 0, run.stderr
    summary = json_summary(run.stdout)
    assert summary["data_version"] == "2.1" and summary["snapshot"] == list_snapshots(bk)[-1].id
    assert verify_trees(f"{vols}/main/", f"{target}/main/") == []


def test_restore_latest_without_a_snapshot_is_one_line(roots, tmp_path):
    vols, bk = roots
    run = cli("restore", "--snapshot", "latest", "--volumes-root", str(vols),
              "--backup-root", str(bk))
    assert run.returncode != 0
    assert "no complete snapshot" in one_error_line(run.stderr)
    run = cli("restore", "--snapshot", "2020-01-01T000000Z", "--volumes-root", str(vols),
              "--backup-root", str(bk))
    assert run.returncode != 0 and "no snapshot" in one_error_line(run.stderr)


def test_verify_checks_each_snapshot_copy(roots):
    vols, bk = roots
    run = backup(vols, bk, "--verify", "--json")
    assert run.returncode == 0, run.stderr
    assert json_summary(run.stdout)["differences"] == 0


def test_a_dry_run_compares_with_the_latest_snapshot_and_creates_nothing(roots):
    vols, bk = roots
    first = backup(vols, bk, "-n", "-i")            # no snapshot yet: all new
    assert first.returncode == 0, first.stderr
    assert ">f+++++++++ hello.txt" in first.stdout.splitlines()
    assert entries(bk) == []
    assert backup(vols, bk).returncode == 0
    before = entries(bk)
    (vols / "main" / "added.txt").write_text("new\n")
    run = backup(vols, bk, "-n", "-i")
    assert run.returncode == 0, run.stderr
    assert ">f+++++++++ added.txt" in run.stdout.splitlines()
    assert "hello.txt" not in run.stdout
    assert entries(bk) == before


def test_an_empty_source_is_compared_with_the_latest_snapshot(roots):
    vols, bk = roots
    assert backup(vols, bk).returncode == 0
    before = entries(bk)
    shutil.rmtree(vols / "main")
    (vols / "main").mkdir()                         # an unmounted volume
    run = backup(vols, bk)
    assert run.returncode == 3
    assert "is empty but" in one_error_line(run.stderr)
    assert entries(bk) == before                    # nothing half-made left
    assert backup(vols, bk, "--allow-empty-source").returncode == 0
    assert os.listdir(f"{list_snapshots(bk)[-1].path}/volumes/main") == []


# -- prune, diff, help --------------------------------------------------------------

def test_prune_through_the_cli(roots):
    vols, bk = roots
    for n in range(4):
        (vols / "main" / f"n{n}").write_text(str(n))
        assert backup(vols, bk).returncode == 0
    ids = [s.id for s in list_snapshots(bk)]
    dry = cli("snapshots", "prune", "--backup-root", str(bk), "--keep-last", "2", "-n")
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.splitlines() == [f"would delete {ids[0]}", f"would delete {ids[1]}",
                                       f"keep {ids[2]} (last #2)", f"keep {ids[3]} (last #1)"]
    assert [s.id for s in list_snapshots(bk)] == ids
    run = cli("snapshots", "prune", "--backup-root", str(bk), "--keep-last", "2", "--json")
    assert run.returncode == 0, run.stderr
    events = [json.loads(line) for line in run.stdout.splitlines()]
    assert [(e["id"], e["action"]) for e in events[:-1]] == [
        (ids[0], "delete"), (ids[1], "delete"), (ids[2], "keep"), (ids[3], "keep")]
    assert json_summary(run.stdout)["deleted"] == 2
    assert [s.id for s in list_snapshots(bk)] == ids[2:]
    assert entries(bk) == ids[2:]                   # nothing renamed aside is left
    # The newest is never deleted, whatever the rules say.
    cli("snapshots", "prune", "--backup-root", str(bk), "--keep-daily", "0", "--keep-last", "0")
    assert ids[3] in [s.id for s in list_snapshots(bk)]


def test_prune_needs_a_rule_and_refuses_while_the_root_is_locked(roots):
    vols, bk = roots
    assert backup(vols, bk).returncode == 0
    run = cli("snapshots", "prune", "--backup-root", str(bk))
    assert run.returncode == 2 and "--keep" in one_error_line(run.stderr)
    fd = os.open(bk, os.O_RDONLY | os.O_DIRECTORY)   # a backup running on the root
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        run = cli("snapshots", "prune", "--backup-root", str(bk), "--keep-last", "1")
        assert run.returncode == 3 and "in use by another run" in one_error_line(run.stderr)
        run = backup(vols, bk)
        assert run.returncode == 3 and "in use by another run" in one_error_line(run.stderr)
    finally:
        os.close(fd)
    assert len(list_snapshots(bk)) == 1


def test_diff_itemizes_the_changes_between_two_snapshots(roots):
    vols, bk = roots
    assert backup(vols, bk).returncode == 0
    (vols / "main" / "hello.txt").unlink()
    (vols / "main" / "fresh.txt").write_text("fresh\n")
    assert backup(vols, bk).returncode == 0
    first, second = (s.id for s in list_snapshots(bk))
    run = cli("snapshots", "diff", first, "latest", "--backup-root", str(bk))
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert ">f+++++++++ main/fresh.txt" in lines and "*deleting   main/hello.txt" in lines
    assert not [line for line in lines if "config/" in line and not line.endswith("/")]
    as_json = cli("snapshots", "diff", first, second, "--backup-root", str(bk), "--json")
    events = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert {e["path"] for e in events if e["event"] == "itemize"} >= {"main/fresh.txt"}
    assert json_summary(as_json.stdout)["changes"] == len(lines)


def test_snapshots_alone_shows_help_and_each_command_has_an_example():
    run = cli("snapshots")
    assert "list" in run.stderr and "prune" in run.stderr and "diff" in run.stderr
    assert "Traceback" not in run.stderr
    for command in ("list", "prune", "diff"):
        helped = cli("snapshots", command, "--help")
        assert helped.returncode == 0 and "Example" in helped.stdout


def test_store_errors_are_one_line(roots):
    vols, bk = roots
    (bk / "snapshots").write_text("not a directory")
    run = backup(vols, bk)
    assert run.returncode == 3 and "is not a directory" in one_error_line(run.stderr)
    run = cli("snapshots", "list", "--backup-root", str(bk))
    assert run.returncode == 3 and "is not a directory" in one_error_line(run.stderr)


# -- the config file ----------------------------------------------------------------

def test_a_config_snapshots_table_makes_snapshots_and_prunes(roots, tmp_path):
    vols, bk = roots
    config = tmp_path / "svc.toml"
    config.write_text(f'volumes = ["main"]\n[layout]\nvolumes_root = "{vols}"\n'
                      f'backup_root = "{bk}"\n[snapshots]\nkeep_last = 2\n')
    for n in range(3):
        write(vols / "main" / f"c{n}", str(n))
        run = cli("backup", "--config", str(config), "--json")
        assert run.returncode == 0, run.stderr
    assert len(list_snapshots(bk)) == 2 and not (bk / "volumes").exists()
    newest = list_snapshots(bk)[-1]
    assert verify_trees(f"{vols}/main/", newest.volume_path("main")) == []
    dry = cli("snapshots", "prune", "-n", "--config", str(config))
    assert dry.returncode == 0 and dry.stdout.count("keep ") == 2

    config.write_text(config.read_text() + "keep_dayly = 3\n")
    run = cli("backup", "--config", str(config))
    assert run.returncode == 2 and "snapshots.keep_dayly: unknown key" in one_error_line(run.stderr)


# -- the library --------------------------------------------------------------------

class _FailSecond(SyncObserver):
    def sync_finished(self, index, sync, src, dst, options, result) -> None:
        if index == 2:
            raise SyncError("the second sync failed", exit_code=23)


@pytest.mark.parametrize("engine", ENGINES)
def test_the_facade_commits_only_a_run_whose_syncs_all_succeeded(engine, roots, tmp_path):
    vols, bk = roots
    calls: list[str] = []
    backups = (Backups.of_volumes("main", "config", layout=Layout(str(vols), str(bk)),
                                  engine=engine)
               .set_snapshots(retention=RetentionPolicy(last=2))
               .set_post_backup(lambda effects: calls.append("post")))
    effects = FileEffects(str(tmp_path / "dv.txt"), "3.0")
    backups.create_backup(effects)
    with pytest.raises(SyncError):
        backups.create_backup(effects, observer=_FailSecond())
    assert calls == ["post", "post"]                # post_backup ran after the failure too
    assert len(list_snapshots(bk)) == 1
    assert [n for n in entries(bk) if n.startswith(".")] == []   # the build was removed
    backups.set_pre_backup(lambda effects: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        backups.create_backup(effects)
    assert len(list_snapshots(bk)) == 1 and len(entries(bk)) == 1

    backups.set_pre_backup(lambda effects: None)
    for _ in range(2):
        backups.create_backup(effects)
    infos = backups.list_snapshots()
    assert len(infos) == 2 and all(i.data_version == "3.0" for i in infos)  # pruned to 2
    decisions = backups.prune_snapshots(RetentionPolicy(last=1), dry_run=True)
    assert [d.keep for d in decisions] == [False, True]

    target = tmp_path / "target"
    target.mkdir()
    restore = Backups.of_volumes("main", layout=Layout(str(target), str(bk)), engine=engine)
    restored = FileEffects(str(tmp_path / "restored-dv.txt"))
    restore.restore_backup(restored, snapshot=infos[0].id)
    assert verify_trees(f"{vols}/main/", f"{target}/main/") == []
    assert (tmp_path / "restored-dv.txt").read_text().strip() == "3.0"


# -- killed runs --------------------------------------------------------------------

@pytest.mark.parametrize("engine", ENGINES)
def test_a_killed_snapshot_backup_never_leaves_a_listed_half_snapshot(engine, tmp_path):
    """SIGKILL a real ``syncengine backup --snapshot`` at random moments:
    every listed snapshot is a whole copy, and the next run succeeds and
    removes what the killed ones left."""
    vols, bk = tmp_path / "volumes", tmp_path / "backup"
    for d in range(12):
        sub = vols / "main" / f"d{d}"
        sub.mkdir(parents=True)
        for f in range(50):
            (sub / f"f{f}").write_bytes(os.urandom(8192 + 97 * f))
    for path in vols.rglob("*"):
        os.utime(path, (1_600_000_000, 1_600_000_000))
    os.utime(vols / "main", (1_600_000_000, 1_600_000_000))
    bk.mkdir()
    rng = random.Random(1717)
    argv = [console_script(), "backup", "--snapshot", "--engine", engine, "--quiet",
            "--volumes-root", str(vols), "--backup-root", str(bk)]
    cut_short = 0       # kills that left a build behind: the case this test is about
    for _ in range(16):
        proc = subprocess.Popen(argv, start_new_session=True)
        if rng.random() < 0.25:                      # sometimes before or around the start
            time.sleep(rng.uniform(0.0, 0.3))
        else:                                        # mostly inside a build, however fast the machine
            _wait_for_a_build(bk, proc)
            time.sleep(rng.uniform(0.0, 0.05))
        os.kill(proc.pid, signal.SIGKILL)            # syncengine only: its rsync runs on
        proc.wait()
        _wait_for_group_to_end(proc.pid)
        cut_short += any(n.startswith(".partial-") for n in entries(bk))
        for snap in list_snapshots(bk):
            assert verify_trees(f"{vols}/main/", snap.volume_path("main")) == []
        if cut_short >= 3:
            break
    assert cut_short >= 1, "no kill landed during a build: the tree is too small for this machine"
    run = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert [n for n in entries(bk) if n.startswith(".")] == []
    newest = list_snapshots(bk)[-1]
    assert verify_trees(f"{vols}/main/", newest.volume_path("main")) == []


def _wait_for_a_build(root, proc, limit=30.0):
    """Return once a ``.partial-`` build exists under ``root`` (or the run ended)."""
    deadline = time.monotonic() + limit
    while proc.poll() is None and time.monotonic() < deadline:
        if any(n.startswith(".partial-") for n in entries(root)):
            return
        time.sleep(0.002)


def test_restore_with_a_snapshots_config_defaults_to_the_latest(roots, tmp_path):
    vols, bk = roots
    target = tmp_path / "target"
    target.mkdir()
    config = tmp_path / "svc.toml"
    config.write_text(f'data_version = "4.0"\nvolumes = ["main"]\n[layout]\n'
                      f'volumes_root = "{vols}"\nbackup_root = "{bk}"\n[snapshots]\n')
    assert cli("backup", "--config", str(config)).returncode == 0
    run = cli("restore", "--config", str(config), "--volumes-root", str(target))
    assert run.returncode == 0, run.stderr
    assert "data version: 4.0" in run.stdout
    assert verify_trees(f"{vols}/main/", f"{target}/main/") == []


def test_without_hard_links_a_snapshot_is_refused_unless_full_copies_are_accepted(
        roots, monkeypatch):
    """(A filesystem without hard links is simulated: the probe's answer.)"""
    vols, bk = roots
    from syncengine import backups as facade

    monkeypatch.setattr(facade, "hard_link_problem",
                        lambda root: f"hard links do not work in {root}: Operation not permitted")
    layout = Layout(str(vols), str(bk))
    with pytest.raises(Exception, match="--allow-full-copies") as refused:
        Backups.of_volumes("main", layout=layout).set_snapshots().create_backup(
            FileEffects(str(bk / "dv")))
    assert "\n" not in str(refused.value) and entries(bk) == []
    Backups.of_volumes("main", layout=layout).set_snapshots(allow_full_copies=True).create_backup(
        FileEffects(str(bk / "dv")))
    assert len(list_snapshots(bk)) == 1


def _wait_for_group_to_end(pgid: int, timeout: float = 60) -> None:
    """An orphaned rsync ends by itself (its pipe to the killed parent
    breaks, or it finishes); wait for it, killing it only at the timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    os.killpg(pgid, signal.SIGKILL)


def test_snapshot_ids_complete_in_bash(roots):
    vols, bk = roots
    assert backup(vols, bk).returncode == 0
    (snap,) = list_snapshots(bk)
    env = {**os.environ, "COMP_WORDS": f"syncengine restore --backup-root {bk} --snapshot ",
           "COMP_CWORD": "5", "_SYNCENGINE_COMPLETE": "bash_complete"}
    run = subprocess.run([console_script()], env=env, capture_output=True, text=True, timeout=60)
    assert run.stdout.splitlines() == [f"plain,{snap.id}", "plain,latest"]
    env["COMP_WORDS"] = f"syncengine snapshots diff --backup-root {bk} l"
    run = subprocess.run([console_script()], env=env, capture_output=True, text=True, timeout=60)
    assert run.stdout.splitlines() == ["plain,latest"]


def test_a_custom_sync_of_a_config_goes_into_the_snapshot_and_back(roots, tmp_path):
    vols, bk = roots
    config = tmp_path / "svc.toml"
    config.write_text(f'[layout]\nvolumes_root = "{vols}"\nbackup_root = "{bk}"\n'
                      '[snapshots]\n[[syncs]]\nname = "cfg"\ndata_path = "config/"\n'
                      'backup_path = "custom/cfg/"\n')
    run = cli("backup", "--config", str(config), "--json")
    assert run.returncode == 0, run.stderr
    snap = list_snapshots(bk)[-1]
    assert verify_trees(f"{vols}/config/", f"{snap.path}/custom/cfg/") == []
    shutil.rmtree(vols / "config")
    (vols / "config").mkdir()
    (vols / "config" / "stray").write_text("not in the backup\n")
    run = cli("restore", "--config", str(config))
    assert run.returncode == 0, run.stderr
    assert verify_trees(f"{snap.path}/custom/cfg/", f"{vols}/config/") == []
