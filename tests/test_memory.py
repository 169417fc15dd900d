"""Memory stays flat in width as in depth (issue 18).

The stand-in (``python -m syncengine rsync``) copies a dir of N entries and
one of 4N, and copies each again (nothing changed); the growth of the peak
RSS between the two, per entry, must be small: rsync keeps about 100 bytes
per file list entry, and a run of 1,000,000 entries has to stay within
64 MiB, some 24 of which are Python's own.  (Holding an ``os.stat_result``
per entry of a dir, as the walk once did, takes some 700 bytes an entry.)

Peak RSS is the ``ru_maxrss`` of the run's processes (the largest of
them: the walk, or a helper it forked), read by a wrapper process.  The
trees are made on tmpfs where there is one (/dev/shm): memory does not
depend on the filesystem, and a disk makes the 100,000 files of a test
slowly.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from syncengine.treesync import packed
from syncengine.treesync.packed import PackedListing
from syncengine.treesync.precheck import _Verdicts

ARGS = ["-rlptgocAXH", "--delete"]
N = 10_000
# Bytes per entry the peak may grow by.  In one wide dir the walk holds the
# dir's names (some 50 bytes each: rsync holds them too) and the packed
# fields of each lstat (26), with the slack of growing lists and arrays;
# an lstat kept per entry, as the walk once did, costs some 700.  In a tree
# of dirs of 100 nothing is held per entry: 64 MiB for 1,000,000 entries
# leaves some 40 bytes each beside Python's own ~20 MiB.
WIDE_BOUND = 160
TREE_BOUND = 40

_WRAPPER = ("import resource, subprocess, sys\n"
            "code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode\n"
            "print(code, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n")


@pytest.fixture
def scratch(tmp_path):
    """A scratch dir, on tmpfs if there is one."""
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        yield tmp_path
        return
    where = Path(tempfile.mkdtemp(prefix="syncengine-memory-", dir=shm))
    try:
        yield where
    finally:
        shutil.rmtree(where)


def _peak_kib(src: Path, dst: Path) -> int:
    """Peak RSS (KiB) of one run of the stand-in."""
    argv = [sys.executable, "-m", "syncengine", "rsync", *ARGS, f"{src}/", str(dst)]
    out = subprocess.run([sys.executable, "-c", _WRAPPER, *argv], capture_output=True,
                         text=True, check=True).stdout.split()
    assert out[0] == "0", out
    return int(out[1])


def _empty_files(root: Path, count: int, per_dir: int | None = None) -> None:
    """``count`` empty files: all in ``root``, or ``per_dir`` to a subdir."""
    root.mkdir()
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for i in range(count):
            where = fd
            if per_dir is not None:
                sub = b"d%05d" % (i // per_dir)
                if i % per_dir == 0:
                    os.mkdir(sub, dir_fd=fd)
                where = os.open(sub, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            try:
                os.close(os.open(b"f%07d" % i, os.O_CREAT | os.O_WRONLY, 0o644, dir_fd=where))
            finally:
                if where != fd:
                    os.close(where)
    finally:
        os.close(fd)


def _growth_per_entry(tmp_path: Path, per_dir: int | None) -> dict[str, float]:
    """Bytes per entry by which the peak RSS of an initial copy and of a
    re-run grows from N to 4N entries."""
    peaks: dict[int, tuple[int, int]] = {}
    for count in (N, 4 * N):
        src, dst = tmp_path / f"src{count}", tmp_path / f"dst{count}"
        _empty_files(src, count, per_dir)
        initial = _peak_kib(src, dst)
        rerun = _peak_kib(src, dst)
        assert sorted(os.listdir(dst)) == sorted(os.listdir(src))
        peaks[count] = (initial, rerun)
    return {what: (peaks[4 * N][i] - peaks[N][i]) * 1024 / (3 * N)
            for i, what in enumerate(("initial copy", "re-run"))}


@pytest.mark.slow
def test_a_wide_dir_costs_little_per_entry(scratch):
    """One dir of N, then 4N empty files: a dir's entries are not held
    with their lstat (the walk, the census, the precheck, the delete pass)."""
    growth = _growth_per_entry(scratch, None)
    print(f"peak RSS growth per entry, one wide dir: {growth}")
    assert all(per_entry <= WIDE_BOUND for per_entry in growth.values()), growth


@pytest.mark.slow
def test_a_big_tree_costs_little_per_entry(scratch):
    """N, then 4N empty files, 100 to a dir (the bench's scaling tree):
    nothing per entry is kept for the whole run."""
    growth = _growth_per_entry(scratch, 100)
    print(f"peak RSS growth per entry, dirs of 100: {growth}")
    assert all(per_entry <= TREE_BOUND for per_entry in growth.values()), growth


@pytest.mark.parametrize("seed", range(6))
def test_a_packed_listing_of_verdicts_and_lstats_gives_back_the_held_ones(monkeypatch, seed):
    """Runs of verdicts (a re-run's files in sync, whose columns are filled
    in later) between lstats whose owner, group, link count and device
    vary or not: packed, the listing gives back what the same listing
    held whole does."""
    rng = random.Random(seed)

    class InSync(tuple):
        def __new__(cls, *verdict):
            return super().__new__(cls, verdict)

    names = sorted({b"%08d" % rng.randrange(10**8) for _ in range(300)})
    varied = rng.sample(["uid", "gid", "nlink", "dev"], 1 + rng.randrange(4))
    added = []
    for name in names:
        if rng.random() < 0.7:
            added.append((name, (rng.randrange(1 << 40), rng.randrange(1 << 64),
                                 rng.randrange(1 << 62))))
            continue
        ino = rng.randrange(1 << 64)
        field = {key: rng.randrange(1, 5) if key in varied else 7
                 for key in ("uid", "gid", "nlink", "dev")}
        mtime_ns = rng.randrange(1 << 61)
        added.append((name, os.stat_result((
            0o100644, ino, field["dev"], field["nlink"], field["uid"], field["gid"],
            rng.randrange(1 << 40), 0, mtime_ns // 10**9, 0, 0.0, mtime_ns / 1e9, 0.0,
            0, mtime_ns, 0, 0, 0, 0))))
    fields = ("st_mode", "st_ino", "st_dev", "st_nlink", "st_uid", "st_gid", "st_size",
              "st_mtime_ns")
    listings = []
    # packed from the start, packed from the 37th entry on, held whole
    for held in (0, 37, len(names)):
        monkeypatch.setattr(packed, "HELD", held)
        entries = PackedListing(InSync, list(names))
        for name, st in added:
            entries.add(name, st)
        assert entries.packed == (held < len(names))
        listings.append([(name, tuple(st) if st.__class__ is InSync
                          else tuple(getattr(st, f) for f in fields)) for name, st in entries])
        in_sync = entries.in_sync_names()
        assert in_sync is not None
        assert [name in in_sync for name in names] == [
            not isinstance(st, os.stat_result) for _, st in added]
    assert listings[0] == listings[2] and listings[1] == listings[2]
    assert len(listings[2]) == len(names)


@pytest.mark.parametrize("held", [0, 1, 256])
@pytest.mark.parametrize("ino", [1, (1 << 63) - 1, 1 << 63, (1 << 64) - 1])
def test_a_listing_gives_back_what_it_was_given(monkeypatch, ino, held):
    """Packed or not, a dir's listing gives back each entry's lstat as it
    was listed (every field the walk reads) and each verdict whole (inode
    and device numbers take all 64 bits on some filesystems)."""
    monkeypatch.setattr(packed, "HELD", held)

    class InSync(tuple):
        def __new__(cls, *verdict):
            return super().__new__(cls, verdict)

    fields = ("st_mode", "st_ino", "st_dev", "st_nlink", "st_uid", "st_gid", "st_size",
              "st_mtime_ns", "st_mtime")
    stats = [os.lstat("/"), os.lstat(sys.executable),
             os.stat_result((0o100644, ino, ino, 2, 65534, 4_294_967_294, 1 << 40, 0, -2, 0,
                             0.0, -1.5, 0.0, 0, -1_500_000_000, 0, 0, 0, 0))]
    names = [b"a", b"b", b"c", b"cc", b"d", b"e"]  # (the dir's, of which "cc" and "e" are left out)
    entries = PackedListing(InSync, names)
    for name, added in zip(names, [stats[0], (7, ino, 1_700_000_000_123_456_789), stats[1],
                                   None, stats[2], None], strict=True):
        if added is not None:
            entries.add(name, added)
    got = list(entries)
    assert [name for name, _ in got] == [b"a", b"b", b"c", b"d"]
    assert got[1][1] == InSync(7, ino, 1_700_000_000_123_456_789)
    for (_, st), listed in zip([got[0], got[2], got[3]], stats, strict=True):
        assert [getattr(st, f) for f in fields] == [getattr(listed, f) for f in fields]
        assert st[8] == listed[8]  # (the mtime in whole seconds)
    in_sync = entries.in_sync_names()
    assert in_sync is not None and b"b" in in_sync and b"a" not in in_sync
    assert b"a" in entries and b"c" not in in_sync and b"e" not in entries
    assert b"cc" not in entries and len(entries) == 4
    # The delete pass's view of it (sets while held, searches once packed):
    # the same answers either way.
    keep, synced = packed.names_of(entries, InSync)
    asked = [b"a", b"b", b"c", b"cc", b"d", b"e", b"f"]
    assert [name in keep for name in asked] == [True] * 3 + [False, True, False, False]
    assert [name in synced for name in asked] == [False, True] + [False] * 5
    assert entries.packed == (held <= 4)
    unsynced = PackedListing(InSync, [b"x"])
    unsynced.add(b"x", stats[0])
    assert packed.names_of(unsynced, InSync)[1] is None

    verdicts = _Verdicts([b"a", b"b"])
    verdicts.set(1, (7, ino, -1))
    assert (verdicts.get(b"a"), verdicts.get(b"b")) == (None, (7, ino, -1))
    verdicts.set(0, -1)
    assert verdicts.get(b"a") == -1
    # Kept from the back, as the walk takes its share; a file a claims race
    # skipped reads as not judged, and a file judged twice keeps the last.
    verdicts = _Verdicts([b"a", b"b", b"c", b"d"])
    verdicts.set(3, -1)
    verdicts.set(1, (1, ino, 5))
    assert [verdicts.get(name) for name in (b"a", b"b", b"c", b"d", b"e", b"")] == \
        [None, (1, ino, 5), None, -1, None, None]
    verdicts.set(2, (2, 3, 4))
    verdicts.set(3, (5, 6, 7))
    assert [verdicts.get(name) for name in (b"b", b"c", b"d")] == [(1, ino, 5), (2, 3, 4), (5, 6, 7)]
