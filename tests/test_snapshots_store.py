"""Snapshot IDs and the snapshot store: begin / commit / abandon, listing,
leftovers of killed runs, deletion, and what is never followed."""

from __future__ import annotations

import datetime
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from syncengine.snapshots import (
    Snapshot,
    SnapshotBusy,
    SnapshotError,
    begin_snapshot,
    delete_snapshot,
    find_snapshot,
    format_id,
    fsops,
    id_sort_key,
    latest_snapshot,
    list_snapshots,
    parse_id,
    remove_leftovers,
)

UTC = datetime.UTC
T0 = datetime.datetime(2026, 12, 6, 15, 17, 0, 250000, tzinfo=UTC)
REPO = Path(__file__).resolve().parent.parent


def at(when: datetime.datetime):
    return lambda: when


def snapdir(root: Path) -> Path:
    return root / "snapshots"


def names(root: Path) -> list[str]:
    return sorted(os.listdir(snapdir(root)))


def make_snapshot(root: Path, when=T0, files: dict[str, bytes] | None = None) -> Snapshot:
    build = begin_snapshot(root, now=at(when))
    vol = Path(build.volume_path("main"))
    vol.mkdir()
    for name, data in (files or {"f": b"data"}).items():
        (vol / name).write_bytes(data)
    return build.commit()


# -- IDs -------------------------------------------------------------------------

def test_id_is_a_utc_second_without_colons():
    local = T0.astimezone(datetime.timezone(datetime.timedelta(hours=-5)))
    assert format_id(local) == "2026-12-06T151700Z"
    assert format_id(T0, 2) == "2026-12-06T151700Z-2"
    assert parse_id("2026-12-06T151700Z-2").seq == 2
    assert parse_id("2026-12-06T151700Z").time == T0.replace(microsecond=0)


@pytest.mark.parametrize("text", [
    "2026-12-06T151700Z-1", "2026-12-06T151700Z-0", "2026-12-06T151700Z-02",
    "2026-13-06T151700Z", "2026-02-30T151700Z", "2026-12-06T156000Z", "2026-12-06T15:17:00Z",
    "2026-12-06T151700", ".partial-2026-12-06T151700Z", "2026-12-06T151700Z-2x", "",
    "2026-12-06T151700Z\n"])
def test_non_ids_are_refused(text):
    assert parse_id(text) is None


@given(st.datetimes(min_value=datetime.datetime(1970, 1, 1),
                    max_value=datetime.datetime(9999, 1, 1), timezones=st.just(UTC)),
       st.integers(1, 10_000))
def test_ids_round_trip(when, seq):
    text = format_id(when, seq)
    parsed = parse_id(text)
    assert parsed is not None and str(parsed) == text
    assert parsed.time == when.replace(microsecond=0) and parsed.seq == seq


@given(st.lists(st.tuples(st.datetimes(min_value=datetime.datetime(2000, 1, 1),
                                       max_value=datetime.datetime(2100, 1, 1),
                                       timezones=st.just(UTC)),
                          st.integers(1, 9)), min_size=2, max_size=10))
def test_id_order_is_time_then_suffix_and_matches_string_order_up_to_nine(items):
    ids = [format_id(when, seq) for when, seq in items]
    by_key = sorted(ids, key=id_sort_key)
    assert by_key == sorted(ids)
    assert [(p.time, p.seq) for p in map(parse_id, by_key)] == sorted(
        (when.replace(microsecond=0), seq) for when, seq in items)


def test_suffix_ten_sorts_after_nine_by_key():
    assert id_sort_key(format_id(T0, 10)) > id_sort_key(format_id(T0, 9))


# -- begin / commit / abandon ---------------------------------------------------------

def test_build_layout_commit_and_listing(tmp_path):
    build = begin_snapshot(tmp_path, now=at(T0))
    assert build.id == "2026-12-06T151700Z" and build.base is None
    assert build.path == f"{tmp_path}/snapshots/.partial-2026-12-06T151700Z"
    assert build.volume_path("main") == f"{build.path}/volumes/main/"
    assert build.path_for("volumes/db/") == f"{build.path}/volumes/db/"
    assert build.data_version_path == f"{build.path}/dataVersion.txt"
    assert os.path.isdir(build.volumes_dir)
    assert list_snapshots(tmp_path) == [] and latest_snapshot(tmp_path) is None
    os.mkdir(build.volume_path("main"))
    Path(build.volume_path("main"), "f").write_text("x")
    build.write_data_version("1.4.2")
    snap = build.commit()
    assert snap == Snapshot(str(tmp_path), "2026-12-06T151700Z")
    assert names(tmp_path) == ["2026-12-06T151700Z"]
    assert Path(snap.volume_path("main"), "f").read_text() == "x"
    assert snap.data_version() == "1.4.2"
    assert snap.time == T0.replace(microsecond=0)
    assert list_snapshots(tmp_path) == [snap] and latest_snapshot(tmp_path) == snap


def test_mirror_paths_map_into_the_build_and_its_base(tmp_path):
    base = make_snapshot(tmp_path, T0)
    build = begin_snapshot(tmp_path, now=at(T0))
    mirror = f"{tmp_path}/volumes/main/"           # a BackupSync's backup_path
    assert build.path_for(mirror) == build.volume_path("main")
    assert build.path_for("volumes/main") == build.path + "/volumes/main"
    assert build.path_for(f"{tmp_path}/db/x/") == build.path + "/db/x/"
    assert build.link_dest_for(mirror) == base.volume_path("main")
    assert base.path_for(mirror) == base.volume_path("main")
    assert build.link_dest_for(f"{tmp_path}/db/") is None
    for bad in ("/elsewhere/volumes/main/", f"{tmp_path}/snapshots/x/", "snapshots/x",
                "../up", "", str(tmp_path), "volumes/../../x"):
        with pytest.raises(ValueError):
            build.path_for(bad)
    with pytest.raises(ValueError, match="invalid volume name"):
        build.volume_path("a/b")
    build.abandon()


def test_snapshots_are_refused_where_hard_links_do_not_work(tmp_path, monkeypatch):
    from syncengine.snapshots import store
    monkeypatch.setattr(store, "hard_link_problem",
                        lambda root: f"hard links do not work in {root}: Operation not permitted")
    with pytest.raises(SnapshotError, match="^cannot keep snapshots: hard links do not work in "):
        begin_snapshot(tmp_path)
    assert os.listdir(tmp_path) == []


def test_no_data_version_no_file(tmp_path):
    build = begin_snapshot(tmp_path, now=at(T0))
    build.write_data_version(None)
    build.write_data_version("")
    snap = build.commit()
    assert snap.data_version() is None
    assert os.listdir(snap.path) == ["volumes"]


def test_a_commit_that_cannot_rename_is_one_line_and_leaves_nothing_listed(tmp_path, monkeypatch):
    def refused(*args):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(fsops, "rename_noreplace", refused)
    with pytest.raises(SnapshotError, match="^cannot complete snapshot .*: Permission denied$"):
        with begin_snapshot(tmp_path, now=at(T0)) as build:
            build.commit()
    assert list_snapshots(tmp_path) == [] and names(tmp_path) == []


def test_a_committed_build_is_never_written_again(tmp_path):
    build = begin_snapshot(tmp_path, now=at(T0))
    build.commit()
    with pytest.raises(SnapshotError):
        build.write_data_version("2")
    with pytest.raises(SnapshotError):
        build.commit()
    build.abandon()  # a no-op: the snapshot stays
    assert names(tmp_path) == ["2026-12-06T151700Z"]


def test_next_run_links_against_the_newest_complete_snapshot(tmp_path):
    first = make_snapshot(tmp_path, T0)
    second = make_snapshot(tmp_path, T0 + datetime.timedelta(hours=1))
    failed = begin_snapshot(tmp_path, now=at(T0 + datetime.timedelta(hours=2)))
    os.mkdir(failed.volume_path("main"))
    build = begin_snapshot(tmp_path, now=at(T0 + datetime.timedelta(hours=3)))
    assert build.base == second != first
    assert build.link_dest("main") == second.volume_path("main")
    assert build.link_dest("other") is None  # the base lacks it: no --link-dest
    failed.abandon()
    build.abandon()


def test_two_runs_in_one_second_get_distinct_sortable_ids(tmp_path):
    a = begin_snapshot(tmp_path, now=at(T0))
    b = begin_snapshot(tmp_path, now=at(T0))
    c = begin_snapshot(tmp_path, now=at(T0))
    assert (a.id, b.id, c.id) == ("2026-12-06T151700Z", "2026-12-06T151700Z-2",
                                  "2026-12-06T151700Z-3")
    ids = [c.commit().id, a.commit().id, b.commit().id]  # any commit order
    assert [s.id for s in list_snapshots(tmp_path)] == sorted(ids, key=id_sort_key)
    assert sorted(ids, key=id_sort_key) == [a.id, b.id, c.id]


def test_ids_only_grow_even_when_the_clock_goes_back(tmp_path):
    late = make_snapshot(tmp_path, T0 + datetime.timedelta(days=1))
    build = begin_snapshot(tmp_path, now=at(T0))
    assert id_sort_key(build.id) > id_sort_key(late.id)
    assert build.commit() == latest_snapshot(tmp_path)


def test_commit_takes_the_next_id_when_its_name_was_taken(tmp_path):
    build = begin_snapshot(tmp_path, now=at(T0))
    (snapdir(tmp_path) / build.id).mkdir()          # not by our protocol: empty
    (snapdir(tmp_path) / build.id / "keep").write_text("theirs")
    snap = build.commit()
    assert snap.id == "2026-12-06T151700Z-2"
    assert (snapdir(tmp_path) / "2026-12-06T151700Z" / "keep").read_text() == "theirs"


def test_commit_never_replaces_an_empty_directory_either(tmp_path, monkeypatch):
    # The fallback without renameat2 must not rename over an empty dir
    # (which a plain rename(2) would do).
    monkeypatch.setattr(fsops, "_libc", object())
    build = begin_snapshot(tmp_path, now=at(T0))
    (snapdir(tmp_path) / build.id).mkdir()
    assert build.commit().id == "2026-12-06T151700Z-2"


def test_context_manager_abandons_on_error(tmp_path):
    with pytest.raises(RuntimeError):
        with begin_snapshot(tmp_path, now=at(T0)) as build:
            os.mkdir(build.volume_path("main"))
            raise RuntimeError("a sync failed")
    assert names(tmp_path) == []
    assert list_snapshots(tmp_path) == []


def test_abandon_removes_the_build(tmp_path):
    build = begin_snapshot(tmp_path, now=at(T0))
    os.makedirs(build.volume_path("main") + "a/b")
    build.abandon()
    assert names(tmp_path) == []


def test_a_live_run_is_left_alone(tmp_path):
    live = begin_snapshot(tmp_path, now=at(T0))
    other = begin_snapshot(tmp_path, now=at(T0))
    assert remove_leftovers(tmp_path) == 0
    assert os.path.isdir(live.path) and os.path.isdir(other.path)
    live.abandon()
    other.abandon()


def _run_child(code: str, root: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), str(root)],
                          env=env, capture_output=True, text=True, timeout=60)


def test_a_killed_run_is_never_listed_and_the_next_run_removes_it(tmp_path):
    done = make_snapshot(tmp_path, T0)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious").write_text("keep me")
    proc = _run_child("""
        import os, signal, sys
        from syncengine.snapshots import begin_snapshot
        b = begin_snapshot(sys.argv[1])
        os.makedirs(b.volume_path("main") + "d")
        open(b.volume_path("main") + "d/f", "w").write("half")
        os.symlink(sys.argv[1] + "/outside", b.volume_path("main") + "escape")
        os.symlink(sys.argv[1] + "/outside/precious", b.volume_path("main") + "d/file-link")
        print(b.id, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """, tmp_path)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    partial = ".partial-" + proc.stdout.strip()
    assert partial in names(tmp_path)
    assert list_snapshots(tmp_path) == [done] and latest_snapshot(tmp_path) == done
    build = begin_snapshot(tmp_path)
    assert build.base == done
    # The dead run's files are gone (its ID may be taken again: it was never used).
    assert names(tmp_path) == sorted([done.id, ".partial-" + build.id])
    assert os.listdir(build.volumes_dir) == []
    assert (outside / "precious").read_text() == "keep me"   # symlinks not followed
    build.abandon()


def test_processes_racing_in_one_second_get_distinct_ids(tmp_path):
    code = """
        import datetime, sys
        from syncengine.snapshots import begin_snapshot
        when = datetime.datetime(2026, 12, 6, 15, 17, tzinfo=datetime.timezone.utc)
        ids = []
        for _ in range(5):
            b = begin_snapshot(sys.argv[1], now=lambda: when)
            ids.append(b.commit().id)
        print(" ".join(ids))
    """
    env = dict(os.environ, PYTHONPATH=str(REPO))
    procs = [subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), str(tmp_path)],
                              env=env, stdout=subprocess.PIPE, text=True) for _ in range(4)]
    ids = [i for p in procs for i in p.communicate(timeout=60)[0].split()]
    assert all(p.returncode == 0 for p in procs)
    assert len(ids) == 20 and len(set(ids)) == 20
    assert [s.id for s in list_snapshots(tmp_path)] == sorted(ids, key=id_sort_key)
    assert names(tmp_path) == sorted(ids)


# -- what is not followed, bad roots ------------------------------------------------

def test_a_symlinked_snapshots_dir_is_refused_not_followed(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    root = tmp_path / "root"
    root.mkdir()
    (root / "snapshots").symlink_to(elsewhere)
    with pytest.raises(SnapshotError, match="not a directory"):
        begin_snapshot(root)
    with pytest.raises(SnapshotError, match="not a directory"):
        list_snapshots(root)
    assert os.listdir(elsewhere) == []


def test_a_missing_backup_root_is_one_clear_error(tmp_path):
    with pytest.raises(SnapshotError, match="does not exist"):
        begin_snapshot(tmp_path / "nope")
    assert list_snapshots(tmp_path / "nope") == []


def test_only_real_directories_named_as_ids_are_snapshots(tmp_path):
    snap = make_snapshot(tmp_path, T0)
    sd = snapdir(tmp_path)
    (sd / "2027-01-01T000000Z").symlink_to(snap.path)     # a symlink: not one
    (sd / "2027-01-02T000000Z").write_text("a file")      # a file: not one
    (sd / "notes").mkdir()
    assert list_snapshots(tmp_path) == [snap]
    with pytest.raises(SnapshotError, match="no snapshot"):
        find_snapshot(tmp_path, "2027-01-01T000000Z")
    assert find_snapshot(tmp_path, snap.id) == snap


# -- deletion --------------------------------------------------------------------

def test_delete_removes_the_tree_without_following_symlinks(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious").write_text("keep me")
    snap = make_snapshot(tmp_path, T0)
    vol = Path(snap.volume_path("main"))
    (vol / "escape").symlink_to(outside)
    (vol / "deep").mkdir()
    (vol / "deep" / "ro").mkdir()
    (vol / "deep" / "ro" / "f").write_text("x")
    os.chmod(vol / "deep" / "ro", 0o500)
    os.chmod(vol / "deep", 0o000)
    delete_snapshot(snap)
    assert names(tmp_path) == []
    assert (outside / "precious").read_text() == "keep me"


def test_delete_of_a_very_deep_tree(tmp_path):
    snap = make_snapshot(tmp_path, T0)
    fd = os.open(snap.volume_path("main"), os.O_RDONLY | os.O_DIRECTORY)
    for _ in range(1500):  # deeper than Python's recursion limit
        os.mkdir("d", dir_fd=fd)
        new = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = new
    os.close(fd)
    delete_snapshot(snap)
    assert names(tmp_path) == []


def test_a_killed_delete_is_not_listed_and_is_removed_later(tmp_path):
    keep = make_snapshot(tmp_path, T0)
    gone = make_snapshot(tmp_path, T0 + datetime.timedelta(days=1))
    # What a prune killed after its rename leaves: a .deleting- dir nobody locks.
    os.rename(gone.path, snapdir(tmp_path) / f".deleting-{gone.id}.0123abcd")
    assert list_snapshots(tmp_path) == [keep]
    assert remove_leftovers(tmp_path) == 1
    assert names(tmp_path) == [keep.id]


def test_a_prune_killed_mid_delete_never_leaves_a_listed_half_snapshot(tmp_path):
    keep = make_snapshot(tmp_path, T0)
    gone = make_snapshot(tmp_path, T0 + datetime.timedelta(days=1), {"a": b"1", "b": b"2"})
    proc = _run_child(f"""
        import os, signal, sys
        from syncengine.snapshots import Snapshot, delete_snapshot, fsops
        real = os.unlink
        def unlink_then_die(*args, **kwargs):   # killed after the first file
            real(*args, **kwargs)
            os.kill(os.getpid(), signal.SIGKILL)
        os.unlink = unlink_then_die
        delete_snapshot(Snapshot(sys.argv[1], {gone.id!r}))
    """, tmp_path)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    left = [n for n in names(tmp_path) if n.startswith(".deleting-")]
    assert len(left) == 1 and left[0].startswith(f".deleting-{gone.id}.")
    assert len(os.listdir(snapdir(tmp_path) / left[0] / "volumes" / "main")) == 1  # half gone
    assert list_snapshots(tmp_path) == [keep]
    assert remove_leftovers(tmp_path) == 1
    assert names(tmp_path) == [keep.id]


def test_a_delete_in_progress_is_left_to_its_owner(tmp_path):
    make_snapshot(tmp_path, T0)
    gone = snapdir(tmp_path) / ".deleting-2026-12-06T151700Z.0123abcd"
    os.rename(snapdir(tmp_path) / "2026-12-06T151700Z", gone)
    fd = os.open(gone, os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert fsops.try_lock(fd) is True
        assert remove_leftovers(tmp_path) == 0
        assert gone.is_dir()
    finally:
        os.close(fd)
    assert remove_leftovers(tmp_path) == 1


def test_the_base_of_a_running_build_is_not_deleted(tmp_path):
    base = make_snapshot(tmp_path, T0)
    build = begin_snapshot(tmp_path, now=at(T0 + datetime.timedelta(hours=1)))
    assert build.base == base
    newer = make_snapshot(tmp_path, T0 + datetime.timedelta(hours=2))  # another run's
    with pytest.raises(SnapshotBusy, match="is in use"):
        delete_snapshot(base)
    assert list_snapshots(tmp_path) == [base, newer]
    build.abandon()                                  # the lock goes with the build
    delete_snapshot(base)
    assert list_snapshots(tmp_path) == [newer]


def test_a_delete_that_cannot_finish_is_one_line_and_unlisted(tmp_path, monkeypatch):
    snap = make_snapshot(tmp_path, T0)

    def busy(*args):
        raise OSError(16, "Device or resource busy")

    monkeypatch.setattr(fsops, "remove_tree", busy)
    message = r"no longer listed, but removing .*/\.deleting-.*: Device or resource busy"
    with pytest.raises(SnapshotError, match=message + r" \(the next run retries\)$"):
        delete_snapshot(snap)
    assert list_snapshots(tmp_path) == []
    monkeypatch.undo()
    assert remove_leftovers(tmp_path) == 1 and names(tmp_path) == []


def test_the_clock_must_be_timezone_aware(tmp_path):
    with pytest.raises(ValueError, match="timezone-aware"):
        begin_snapshot(tmp_path, now=lambda: datetime.datetime(2026, 1, 1))


def test_deleting_a_snapshot_that_is_not_there(tmp_path):
    snap = make_snapshot(tmp_path, T0)
    delete_snapshot(snap)
    with pytest.raises(SnapshotError, match="no snapshot"):
        delete_snapshot(snap)


NOBODY = 65534


def _as_nobody(fn) -> int:
    """Run ``fn`` in a forked child that dropped to nobody; its exit status."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            os.setgroups([])
            os.setresgid(NOBODY, NOBODY, NOBODY)
            os.setresuid(NOBODY, NOBODY, NOBODY)
            fn()
            code = 0
        except BaseException as e:  # report, never return into pytest
            os.write(2, f"{type(e).__name__}: {e}\n".encode())
        finally:
            os._exit(code)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to become nobody")
def test_an_unprivileged_owner_deletes_its_read_only_directories():
    import shutil
    import tempfile
    base = Path(tempfile.mkdtemp(prefix="snapshots-nobody-"))
    try:
        os.chmod(base, 0o755)
        root = base / "backup"
        root.mkdir()
        snap = make_snapshot(root, T0)
        vol = Path(snap.volume_path("main"))
        (vol / "ro" / "sub").mkdir(parents=True)
        (vol / "ro" / "sub" / "f").write_text("x")
        (vol / "closed").mkdir()
        (vol / "closed" / "g").write_text("y")
        for path in [root, *root.rglob("*")]:
            os.chown(path, NOBODY, NOBODY, follow_symlinks=False)
        os.chmod(vol / "ro" / "sub", 0o500)   # rsync keeps the source's modes
        os.chmod(vol / "ro", 0o555)
        os.chmod(vol / "closed", 0o000)
        assert _as_nobody(lambda: delete_snapshot(snap)) == 0
        assert os.listdir(root / "snapshots") == []
    finally:
        shutil.rmtree(base, ignore_errors=True)


# -- a random life of a backup root ------------------------------------------------


class BackupRootLife(RuleBasedStateMachine):
    """Runs begin, commit, fail, die (a killed run: its fds closed, nothing
    cleaned) and deletions in any order, with a clock that may stand
    still or go back; the listing is always exactly the committed
    snapshots not deleted, and nothing else stays behind for long."""

    def __init__(self) -> None:
        super().__init__()
        import tempfile
        self.root = Path(tempfile.mkdtemp(prefix="snapshots-life-"))
        self.clock = T0
        self.live: list = []
        self.complete: list[str] = []
        self.dead = 0

    def teardown(self) -> None:
        import shutil
        for build in self.live:
            build.abandon()
        shutil.rmtree(self.root)

    @rule(step=st.sampled_from([0, 0, 1, 3600, -7200]))
    def tick(self, step):
        self.clock += datetime.timedelta(seconds=step)

    @rule()
    def begin(self):
        before = [parse_id(n) for n in self.complete] + [parse_id(b.id) for b in self.live]
        build = begin_snapshot(self.root, now=at(self.clock))
        assert all(parse_id(build.id) > other for other in before)
        expected_base = max(self.complete, key=id_sort_key) if self.complete else None
        assert (build.base.id if build.base else None) == expected_base
        self.dead = 0                       # begin removed what dead runs left
        self.live.append(build)

    @precondition(lambda self: self.live)
    @rule(i=st.integers(0, 9))
    def commit(self, i):
        build = self.live.pop(i % len(self.live))
        os.mkdir(build.volume_path("main"))
        self.complete.append(build.commit().id)

    @precondition(lambda self: self.live)
    @rule(i=st.integers(0, 9), killed=st.booleans())
    def fail(self, i, killed):
        build = self.live.pop(i % len(self.live))
        if killed:
            build._close()                  # what a SIGKILL leaves: an unlocked partial
            self.dead += 1
        else:
            build.abandon()

    @precondition(lambda self: self.complete)
    @rule(i=st.integers(0, 9))
    def delete(self, i):
        victim = self.complete[i % len(self.complete)]
        bases = {b.base.id for b in self.live if b.base is not None}
        if victim in bases:
            with pytest.raises(SnapshotBusy):
                delete_snapshot(Snapshot(str(self.root), victim))
        else:
            delete_snapshot(Snapshot(str(self.root), victim))
            self.complete.remove(victim)

    @invariant()
    def listing_is_the_committed_snapshots(self):
        assert [s.id for s in list_snapshots(self.root)] == sorted(self.complete, key=id_sort_key)
        if not (self.root / "snapshots").exists():
            return
        on_disk = os.listdir(self.root / "snapshots")
        partials = [n for n in on_disk if n.startswith(".partial-")]
        assert len(partials) == len(self.live) + self.dead
        assert not [n for n in on_disk if n.startswith(".deleting-")]


# A random life (60 of them): a slow test, like the full random equivalence runs.
TestBackupRootLife = pytest.mark.slow(BackupRootLife.TestCase)
TestBackupRootLife.settings = settings(max_examples=60, stateful_step_count=25, deadline=None)
