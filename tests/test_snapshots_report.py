"""snapshots list / prune / diff, and the hard-link probe, on snapshots built
with the reference rsync's --link-dest (the oracle for the diff lines too)."""

from __future__ import annotations

import datetime
import errno
import os
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syncengine.snapshots import (
    RetentionPolicy,
    Snapshot,
    begin_snapshot,
    describe_snapshots,
    hard_link_problem,
    iter_snapshot_changes,
    list_snapshots,
    probe_hard_links,
    prune_snapshots,
)
from syncengine.snapshots import probe as probe_module
from tests.reference import reference_rsync

UTC = datetime.UTC
T0 = datetime.datetime(2026, 12, 6, 15, 17, tzinfo=UTC)
FLAGS = "-rlptgocAXH"


def rsync(*args: str) -> str:
    proc = subprocess.run([reference_rsync(), *args], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def snapshot_of(root: Path, src: Path, when: datetime.datetime, version: str | None = None
                ) -> Snapshot:
    """A snapshot of ``src`` as volume "main", made by the reference rsync
    with --link-dest against the newest snapshot."""
    build = begin_snapshot(root, now=lambda: when)
    link = build.link_dest("main")
    rsync(FLAGS, "--delete", *([f"--link-dest={link}"] if link else []), f"{src}/",
          build.volume_path("main"))
    if version:
        build.write_data_version(version)
    return build.commit()


def entries_below(path: Path) -> int:
    return sum(len(dirs) + len(files) for _top, dirs, files in os.walk(path))


# -- list ---------------------------------------------------------------------------

def test_list_counts_entries_and_the_bytes_each_snapshot_adds(tmp_path):
    src = tmp_path / "src"
    (src / "d" / "e").mkdir(parents=True)
    (src / "a").write_bytes(b"a" * 1000)
    (src / "d" / "b").write_bytes(b"b" * 300)
    os.link(src / "d" / "b", src / "d" / "b2")            # one inode, counted once
    (src / "d" / "e" / "c").write_bytes(b"c" * 50)
    (src / "l").symlink_to("a")
    root = tmp_path / "backup"
    root.mkdir()
    first = snapshot_of(root, src, T0, "1.0")
    second = snapshot_of(root, src, T0 + datetime.timedelta(hours=1), "1.0")  # unchanged
    (src / "d" / "e" / "c").write_bytes(b"C" * 4321)                          # one change
    third = snapshot_of(root, src, T0 + datetime.timedelta(hours=2))
    infos = describe_snapshots(root)
    assert [i.id for i in infos] == [first.id, second.id, third.id]
    # Entries: what is below src, plus the volume's own directory.
    assert [i.entries for i in infos] == [entries_below(src) + 1] * 3
    assert [i.unshared_bytes for i in infos] == [1000 + 300 + 50, 0, 4321]
    assert [i.data_version for i in infos] == ["1.0", "1.0", None]
    # On disk, an unchanged snapshot costs its directories: they cannot be shared.
    dirs = [p for p in Path(second.volumes_dir).rglob("*") if p.is_dir() and not p.is_symlink()]
    assert infos[1].unshared_disk_bytes == sum(p.lstat().st_blocks * 512 for p in dirs)
    assert infos[0].as_dict() == {
        "id": first.id, "time": "2026-12-06T15:17:00Z", "data_version": "1.0",
        "entries": infos[0].entries, "unshared_bytes": 1350,
        "unshared_disk_bytes": infos[0].unshared_disk_bytes}
    assert infos[0].line() == (f"{first.id}  2026-12-06 15:17:00 UTC  version 1.0  "
                               f"{infos[0].entries} entries  1350 bytes unshared")
    # a, d, d/b, d/b2, d/e, d/e/c, l and the volume itself:
    assert infos[2].line().endswith("  version -  8 entries  4321 bytes unshared")


def test_list_of_a_root_without_snapshots(tmp_path):
    assert describe_snapshots(tmp_path) == []


# -- prune --------------------------------------------------------------------------

def test_prune_deletes_what_the_policy_does_not_keep(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("x")
    root = tmp_path / "backup"
    root.mkdir()
    snaps = [snapshot_of(root, src, T0 + datetime.timedelta(hours=h)) for h in range(5)]
    dead = root / "snapshots" / ".partial-2020-01-01T000000Z"   # a dead run's
    dead.mkdir()
    policy = RetentionPolicy(last=2)

    planned = prune_snapshots(root, policy, dry_run=True)
    assert [(d.id, d.keep) for d in planned] == [(s.id, i >= 3) for i, s in enumerate(snaps)]
    assert list_snapshots(root) == snaps and dead.exists()        # -n changes nothing

    told = []
    prune_snapshots(root, policy, on_delete=told.append)
    assert [d.id for d in told] == [s.id for s in snaps[:3]]
    assert list_snapshots(root) == snaps[3:]
    assert sorted(os.listdir(root / "snapshots")) == [s.id for s in snaps[3:]]
    # What is left still holds its data (the deleted ones shared its inodes).
    assert Path(snaps[4].volume_path("main"), "f").read_text() == "x"


def test_prune_leaves_a_snapshot_a_running_backup_links_against(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    root = tmp_path / "backup"
    root.mkdir()
    snaps = [snapshot_of(root, src, T0 + datetime.timedelta(hours=h)) for h in range(2)]
    build = begin_snapshot(root, now=lambda: T0 + datetime.timedelta(hours=2))
    late = snapshot_of(root, src, T0 + datetime.timedelta(hours=3))   # a concurrent run
    decisions = prune_snapshots(root, RetentionPolicy(last=1))
    assert [(d.id, d.reason) for d in decisions] == [
        (snaps[0].id, None), (snaps[1].id, "in use"), (late.id, "last #1")]
    assert list_snapshots(root) == [snaps[1], late]
    build.abandon()


# -- diff ---------------------------------------------------------------------------

def rsync_lines(old: Snapshot, new: Snapshot) -> set[str]:
    out = rsync(FLAGS, "--delete", "-n", "-i", new.volumes_dir + "/", old.volumes_dir + "/")
    return {line for line in out.splitlines() if line}


def our_lines(old: Snapshot, new: Snapshot) -> list[str]:
    return [c.line() for c in iter_snapshot_changes(old, new)]


def test_diff_itemizes_as_rsync_does(tmp_path):
    old_src, new_src = tmp_path / "old", tmp_path / "new"
    for top in (old_src, new_src):
        (top / "d").mkdir(parents=True)
    (new_src / "samesize").write_text("aaaa")
    (old_src / "samesize").write_text("bbbb")
    (new_src / "size").write_text("longer")
    (old_src / "size").write_text("s")
    (new_src / "t").write_text("x")
    (old_src / "t").write_text("x")
    (new_src / "p").write_text("x")
    (old_src / "p").write_text("x")
    os.chmod(old_src / "p", 0o600)
    (new_src / "l").symlink_to("a")
    (old_src / "l").symlink_to("b")
    (new_src / "d" / "new").write_text("n")
    (old_src / "gone" / "sub").mkdir(parents=True)
    (old_src / "gone" / "sub" / "f").write_text("g")
    (new_src / "h1").write_text("h")
    os.link(new_src / "h1", new_src / "h2")
    (old_src / "h1").write_text("h")
    (old_src / "h2").write_text("h")
    for top in (old_src, new_src):
        for p in sorted(top.rglob("*"), reverse=True) + [top]:
            stamp = 1_700_000_000 if p.name != "t" or top == new_src else 1_600_000_000
            os.utime(p, (stamp, stamp), follow_symlinks=False)
    root = tmp_path / "backup"
    root.mkdir()
    old = snapshot_of(root, old_src, T0)
    new_build = begin_snapshot(root, now=lambda: T0 + datetime.timedelta(hours=1))
    rsync(FLAGS, "--delete", f"{new_src}/", new_build.volume_path("main"))  # no link-dest
    new = new_build.commit()
    os.utime(old.volumes_dir, (1, 1))
    os.utime(new.volumes_dir, (1, 1))
    ours = our_lines(old, new)
    assert len(ours) == len(set(ours))
    assert set(ours) == rsync_lines(old, new)
    assert "hf          main/h2 => main/h1" in ours
    assert ">fcs....... main/size" in ours


_NAMES = ["a", "b", "c"]
_STAMPS = st.sampled_from([1_600_000_000, 1_700_000_000])


def _tree(depth: int):
    leaf = st.one_of(
        st.tuples(st.just("file"), st.sampled_from([b"", b"x", b"yy", b"zz"]),
                  st.sampled_from([0o644, 0o600]), st.sampled_from([1_600_000_000, 1_700_000_000])),
        st.tuples(st.just("link"), st.sampled_from(["a", "b"]), st.just(0),
                  st.sampled_from([1_600_000_000, 1_700_000_000])))
    if depth == 0:
        return leaf
    node = st.tuples(st.just("dir"), st.dictionaries(st.sampled_from(_NAMES), _tree(depth - 1),
                                                     max_size=3),
                     st.sampled_from([0o755, 0o700]), _STAMPS)
    return leaf | node


def _build(path: Path, spec) -> None:
    kind, body, mode, stamp = spec
    if kind == "file":
        path.write_bytes(body)
        os.chmod(path, mode)
    elif kind == "link":
        path.symlink_to(body)
    else:
        path.mkdir()
        for name, child in body.items():
            _build(path / name, child)
        os.chmod(path, mode)
    os.utime(path, (stamp, stamp), follow_symlinks=False)


def _link(top: Path, pairs: list[tuple[int, int]]) -> None:
    """Make file j a hard link to file i, for each (i, j) (indices into the
    tree's files, sorted)."""
    files = sorted(p for p in top.rglob("*") if p.is_file() and not p.is_symlink())
    for i, j in pairs:
        if files and i % len(files) != j % len(files):
            target, link = files[i % len(files)], files[j % len(files)]
            parent_times = os.stat(link.parent)
            link.unlink()
            os.link(target, link)
            os.utime(link.parent, ns=(parent_times.st_atime_ns, parent_times.st_mtime_ns))


_pairs = st.lists(st.tuples(st.integers(0, 20), st.integers(0, 20)), max_size=3)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(st.sampled_from(_NAMES), _tree(2), max_size=3), _pairs,
       st.dictionaries(st.sampled_from(_NAMES), _tree(2), max_size=3), _pairs)
@pytest.mark.slow   # (40 random tree pairs, each against rsync)
def test_diff_lines_are_rsyncs_on_generated_trees(tmp_path_factory, old_tree, old_links,
                                                  new_tree, new_links):
    work = tmp_path_factory.mktemp("diff")
    root = work / "backup"
    root.mkdir()
    snaps = []
    for i, (tree, links) in enumerate(((old_tree, old_links), (new_tree, new_links))):
        build = begin_snapshot(root, now=lambda i=i: T0 + datetime.timedelta(hours=i))
        top = Path(build.volume_path("main").rstrip("/"))
        _build(top, ("dir", tree, 0o755, 1_700_000_000))
        _link(top, links)
        os.utime(top, (1_700_000_000, 1_700_000_000))
        os.utime(build.volumes_dir, (1, 1))
        snaps.append(build.commit())
    old, new = snaps
    ours = our_lines(old, new)
    assert len(ours) == len(set(ours))
    # rsync -H transfers one name of a hard-link group and links the others
    # to it, choosing by its file-list order and by which name is up to
    # date already (hlink.c); we do not reproduce that choice (see
    # iter_snapshot_changes): the lines of grouped names are compared
    # apart, the rest exactly.
    grouped = _linked_names(Path(new.volumes_dir))
    theirs = rsync_lines(old, new)
    assert _drop(ours, grouped) == _drop(theirs, grouped)
    assert {_name_of(line) for line in ours if line[0] == "h"} <= grouped


def _linked_names(top: Path) -> set[str]:
    by_inode: dict[int, list[str]] = {}
    for p in top.rglob("*"):
        if p.is_file() and not p.is_symlink():
            by_inode.setdefault(p.stat().st_ino, []).append(str(p.relative_to(top)))
    return {name for names in by_inode.values() if len(names) > 1 for name in names}


def _name_of(line: str) -> str:
    return line[12:].split(" => ")[0]


def _drop(lines, names: set[str]) -> set[str]:
    return {line for line in lines if _name_of(line) not in names}


def test_diff_of_a_damaged_snapshot_is_one_line(tmp_path):
    import shutil

    from syncengine.snapshots import SnapshotError
    root = tmp_path / "backup"
    root.mkdir()
    src = tmp_path / "src"
    src.mkdir()
    old = snapshot_of(root, src, T0)
    new = snapshot_of(root, src, T0 + datetime.timedelta(hours=1))
    shutil.rmtree(new.volumes_dir)
    with pytest.raises(SnapshotError, match=f"^cannot compare snapshots {old.id} and {new.id}: "):
        list(iter_snapshot_changes(old, new))


# -- the hard-link probe --------------------------------------------------------------

def test_probe_says_hard_links_work_here_and_leaves_nothing(tmp_path):
    assert probe_hard_links(tmp_path) is None
    assert os.listdir(tmp_path) == []


def test_probe_gives_one_line_when_links_fail(tmp_path, monkeypatch):
    def no_links(*args, **kwargs):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(probe_module.os, "link", no_links)
    reason = probe_hard_links(tmp_path)
    assert reason == f"hard links do not work in {tmp_path}: Operation not permitted"
    assert os.listdir(tmp_path) == []


def test_probe_of_a_root_that_cannot_be_written(tmp_path):
    reason = probe_hard_links(tmp_path / "missing")
    assert reason is not None and "\n" not in reason and str(tmp_path / "missing") in reason


def test_probe_runs_once_per_filesystem(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(probe_module, "_PROBED", {})
    monkeypatch.setattr(probe_module, "probe_hard_links",
                        lambda root: calls.append(root) or None)
    (tmp_path / "a").mkdir()
    assert hard_link_problem(tmp_path) is None
    assert hard_link_problem(tmp_path / "a") is None
    assert len(calls) == 1
