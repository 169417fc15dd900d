"""Nothing escapes the destination.

Every destination operation of the native engine goes through directory
file descriptors opened with O_NOFOLLOW (chmod, chown, utime, xattrs and
ACLs included: on the entry's own fd, or relative to its parent's fd with
the no-follow form of the call).  Only the destination root given on the
command line is resolved as rsync resolves it (a root that is a symlink to
a dir is followed, once, at the start).

- Symlinks planted in the destination where the source has dirs and files,
  pointing outside: replaced as rsync replaces them; nothing outside
  changes (not even a ctime).
- A separate process keeps swapping a destination dir (and a file in it)
  with a symlink to an outside dir (file) while syncs run, for about two
  seconds: nothing outside is ever created, changed or deleted, and the
  engine never crashes.  The same for the facade's restore direction.
- The source is never modified.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fixtures.treespec import build_tree
from syncengine import Backups, Layout
from tests.snapshot import diff_snapshots, snapshot

from .helpers import ctimes, lines, native, rsync_tree, standin, t

pytestmark = pytest.mark.rsync

SWAP_SECONDS = float(os.environ.get("SYNCENGINE_SWAP_SECONDS", 2.0))

OUTSIDE = [
    {"path": ".", "mode": 0o755, "mtime_ns": t(1)},
    {"path": "dir/f1", "content": "outside f1\n", "mode": 0o600, "mtime_ns": t(2)},
    {"path": "dir/sub/f2", "content": "outside f2\n", "mtime_ns": t(3)},
    {"path": "dir/extra", "content": "only outside\n", "mtime_ns": t(4)},
    {"path": "dir/sub", "type": "dir", "mtime_ns": t(7)},
    {"path": "dir", "type": "dir", "mode": 0o700, "mtime_ns": t(5)},
    {"path": "file", "content": "an outside file\n", "mode": 0o600, "mtime_ns": t(6)},
]

SOURCE = [
    {"path": ".", "mode": 0o755, "mtime_ns": t(10)},
    {"path": "d/f1", "content": "source f1, longer than outside\n", "mode": 0o644,
     "mtime_ns": t(11), "xattrs": {"user.k": "v"}},
    {"path": "d/sub/f2", "content": "source f2\n", "mode": 0o640, "mtime_ns": t(12),
     "acl": "u::rw-,u:1234:r--,g::r--,m::r--,o::---"},
    {"path": "d/sub", "type": "dir", "mode": 0o755, "mtime_ns": t(13)},
    {"path": "d", "type": "dir", "mode": 0o2755, "mtime_ns": t(14)},
    {"path": "file", "content": "source file\n", "mode": 0o644, "mtime_ns": t(15),
     "uid": 1234, "gid": 5678},
    {"path": "same", "content": "an outside file\n", "mode": 0o644, "mtime_ns": t(16)},
    {"path": "e/g", "content": "g\n", "mtime_ns": t(17)},
    {"path": "e", "type": "dir", "mtime_ns": t(18)},
    {"path": "l", "target": "d/f1", "mtime_ns": t(19)},
]

# The destination, planted with symlinks to the outside where the source
# has dirs and files, and extra ones to delete.
PLANTED = [
    {"path": ".", "mode": 0o755, "mtime_ns": t(20)},
    {"path": "d", "target": "../outside/dir", "mtime_ns": t(21)},
    {"path": "file", "target": "../outside/file", "mtime_ns": t(22)},
    {"path": "same", "target": "../outside/file", "mtime_ns": t(23)},
    {"path": "e/g", "target": "../../outside/file", "mtime_ns": t(24)},
    {"path": "e/h", "target": "../../outside/dir", "mtime_ns": t(25)},
    {"path": "e", "type": "dir", "mtime_ns": t(26)},
    {"path": "l/x", "target": "/", "mtime_ns": t(27)},   # a dir where a symlink goes
    {"path": "junk", "target": "outside/dir/sub", "mtime_ns": t(28)},
]


def _work(base: Path, dst_spec) -> Path:
    build_tree(base / "outside", OUTSIDE)
    build_tree(base / "src", SOURCE)
    build_tree(base / "dst", dst_spec)
    return base


@pytest.mark.parametrize("how", ["library", "stand-in"])
def test_planted_symlinks_are_replaced_not_followed(tmp_path, how):
    real, ours = _work(tmp_path / "real", PLANTED), _work(tmp_path / "ours", PLANTED)
    outside = snapshot(ours / "outside"), ctimes(ours / "outside")
    src = snapshot(ours / "src"), ctimes(ours / "src")
    r = rsync_tree(f"{real}/src/", f"{real}/dst")
    if how == "library":
        code, out, err = native([f"{ours}/src/"], f"{ours}/dst")
    else:
        proc = standin("-rlptgocAXH", "--delete", f"{ours}/src/", f"{ours}/dst")
        code, out, err = proc.returncode, lines(proc.stdout), lines(proc.stderr)
    assert code == r.returncode == 0, err
    assert sorted(out) == sorted(lines(r.stdout, (str(real), str(ours))))
    assert diff_snapshots(snapshot(real / "dst"), snapshot(ours / "dst")) == []
    assert (snapshot(ours / "outside"), ctimes(ours / "outside")) == outside, \
        "something outside the destination changed"
    assert (snapshot(ours / "src"), ctimes(ours / "src")) == src, "the source changed"
    # rsync did not escape either (the oracle's own sanity).
    assert diff_snapshots(snapshot(real / "outside"), outside[0]) == []


def test_facade_restore_with_planted_symlinks(tmp_path):
    """The restore direction: the backup is the source, the volume the
    destination, planted with symlinks to the outside."""
    build_tree(tmp_path / "outside", OUTSIDE)
    build_tree(tmp_path / "bk" / "volumes" / "main", SOURCE)
    build_tree(tmp_path / "vols" / "main", PLANTED)
    outside = snapshot(tmp_path / "outside"), ctimes(tmp_path / "outside")
    backup = snapshot(tmp_path / "bk"), ctimes(tmp_path / "bk")
    layout = Layout(volumes_root=str(tmp_path / "vols"), backup_root=str(tmp_path / "bk"))
    results = Backups.of_volumes("main", layout=layout, engine="python").restore_backup(_Effects())
    assert [r.exit_code for r in results] == [0]
    assert (snapshot(tmp_path / "outside"), ctimes(tmp_path / "outside")) == outside
    assert (snapshot(tmp_path / "bk"), ctimes(tmp_path / "bk")) == backup, "the backup changed"
    assert diff_snapshots(snapshot(tmp_path / "bk" / "volumes" / "main"),
                          snapshot(tmp_path / "vols" / "main")) == []


class _Effects:
    def get_data_version(self):
        return None

    def set_data_version(self, version):
        pass


# -- a racing attacker ---------------------------------------------------------------------------

# The swapper: a separate process that, until its stdin closes, moves the
# destination dir aside, puts a symlink to the outside dir in its place,
# then puts the dir back; and does the same to a file inside the dir.
# When the sync got in the way (it recreated the dir meanwhile, say), the
# leftover is cleared and the dance goes on.
_SWAPPER = r'''
import os, shutil, sys, select, time
dirpath, outdir, filepath, outfile, aside = [a.encode() for a in sys.argv[1:6]]
swaps = 0
def clear(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            os.unlink(path)
        except OSError:
            pass
while not select.select([sys.stdin], [], [], 0)[0]:
    for real, target, spare in ((dirpath, outdir, aside + b"-d"), (filepath, outfile, aside + b"-f")):
        if os.path.islink(dirpath):
            os.unlink(dirpath)  # never act through a symlink of our own
        clear(spare)
        try:
            os.rename(real, spare)
        except OSError:
            continue
        try:
            os.symlink(target, real)
            swaps += 1
            time.sleep(0.0005)
            os.unlink(real)
        except OSError:
            pass
        try:
            os.rename(spare, real)
        except OSError:
            pass
print(swaps)
'''


def _start_swapper(dst_dir: Path, outside: Path) -> subprocess.Popen:
    aside = dst_dir.parent / ".swap-aside"
    return subprocess.Popen([sys.executable, "-c", _SWAPPER, str(dst_dir), str(outside / "dir"),
                             str(dst_dir / "f1"), str(outside / "file"), str(aside)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def _stop_swapper(proc: subprocess.Popen) -> int:
    out, _ = proc.communicate(input="stop\n", timeout=30)
    return int(out.strip() or 0)


def _mutate_source(rng: random.Random, root: Path) -> None:
    """Give the next sync work inside the swapped dir: new contents,
    modes, times, xattrs, files to create and delete."""
    d = root / "d"
    for name in ("f1", "sub/f2", f"n{rng.randrange(4)}"):
        path = d / name
        what = rng.randrange(5)
        if what == 0 and path.exists():
            path.unlink()
        elif what == 1 or not path.exists():
            path.write_bytes(rng.randbytes(rng.choice([10, 3000])))
        elif what == 2:
            os.chmod(path, rng.choice([0o600, 0o644, 0o755]))
        elif what == 3:
            os.utime(path, ns=(t(rng.randrange(100)),) * 2)
        else:
            os.setxattr(path, "user.n", str(rng.randrange(1000)).encode())
    os.chmod(d, rng.choice([0o755, 0o700, 0o2755]))
    # Dir times in the past, in whole seconds of their own (rsync-semantics §10).
    os.utime(d / "sub", ns=(t(200 + rng.randrange(100)),) * 2)
    os.utime(d, ns=(t(rng.randrange(100)),) * 2)


def _race(run, src_root: Path, dst_dir: Path, outside: Path, seed: int) -> tuple[int, int, set]:
    """Syncs (``run()`` -> exit code) while the swapper races them for
    SWAP_SECONDS; after each, the outside and the source are unchanged."""
    rng = random.Random(seed)
    before = snapshot(outside), ctimes(outside)
    swapper = _start_swapper(dst_dir, outside)
    runs, codes = 0, set()
    try:
        deadline = time.monotonic() + SWAP_SECONDS
        while time.monotonic() < deadline:
            _mutate_source(rng, src_root)
            source = snapshot(src_root), ctimes(src_root)
            codes.add(run())
            runs += 1
            assert (snapshot(src_root), ctimes(src_root)) == source, "the source changed"
            assert (snapshot(outside), ctimes(outside)) == before, \
                f"something outside changed during run {runs} (seed {seed})"
    finally:
        swaps = _stop_swapper(swapper)
    assert (snapshot(outside), ctimes(outside)) == before
    return runs, swaps, codes


def _settle(dst_dir: Path) -> None:
    """What the attacker may have left: its symlink, its moved-aside dir."""
    if os.path.islink(dst_dir):
        os.unlink(dst_dir)


@pytest.mark.slow
def test_a_dir_swapped_with_a_symlink_during_syncs(tmp_path):
    seed = int(os.environ.get("SYNCENGINE_SAFETY_SEED") or random.randrange(1 << 30))
    build_tree(tmp_path / "outside", OUTSIDE)
    build_tree(tmp_path / "src", SOURCE)
    dst = tmp_path / "dst"
    assert native([f"{tmp_path}/src/"], str(dst))[0] == 0

    def run() -> int:
        code, _, err = native([f"{tmp_path}/src/"], str(dst), excludes=(".swap-aside*",))
        assert code in (0, 23, 24), err
        return code

    runs, swaps, codes = _race(run, tmp_path / "src", dst / "d", tmp_path / "outside", seed)
    print(f"\n{runs} syncs, {swaps} swaps, exit codes {sorted(codes)}")
    assert runs >= 10 and swaps >= 100, (runs, swaps)
    # Once the attacker is gone, a run repairs whatever the race left.
    _settle(dst / "d")
    code, _, err = native([f"{tmp_path}/src/"], str(dst))
    assert code == 0, err
    real = tmp_path / "real"
    assert rsync_tree(f"{tmp_path}/src/", str(real)).returncode == 0
    assert diff_snapshots(snapshot(real), snapshot(dst)) == []


@pytest.mark.slow
def test_facade_restore_while_a_dir_is_swapped(tmp_path):
    seed = int(os.environ.get("SYNCENGINE_SAFETY_SEED") or random.randrange(1 << 30))
    build_tree(tmp_path / "outside", OUTSIDE)
    backup = tmp_path / "bk" / "volumes" / "main"
    build_tree(backup, SOURCE)
    layout = Layout(volumes_root=str(tmp_path / "vols"), backup_root=str(tmp_path / "bk"))
    (tmp_path / "vols").mkdir()
    backups = Backups.of_volumes("main", layout=layout, engine="python") \
        .set_restore_options({"exclude": [".swap-aside*"]})
    backups.restore_backup(_Effects())

    def run() -> int:
        try:
            return backups.restore_backup(_Effects())[0].exit_code
        except Exception as exc:  # a SyncError (23) is fine; nothing else is
            from syncengine import SyncError
            assert isinstance(exc, SyncError) and exc.exit_code in (23, 24), repr(exc)
            return exc.exit_code

    runs, swaps, codes = _race(run, backup, tmp_path / "vols" / "main" / "d",
                               tmp_path / "outside", seed)
    print(f"\n{runs} restores, {swaps} swaps, exit codes {sorted(codes)}")
    assert runs >= 10 and swaps >= 100, (runs, swaps)
    _settle(tmp_path / "vols" / "main" / "d")
    assert backups.restore_backup(_Effects())[0].exit_code == 0
    assert diff_snapshots(snapshot(backup), snapshot(tmp_path / "vols" / "main"),) == []
