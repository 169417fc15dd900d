"""``link_dest`` through the public API (``syncengine.sync``), on both
engines: which files of the new tree share an inode with the older one, and
that the older one is never written to.  (Equivalence with the reference
rsync, case by case: tests/equivalence/test_linkdest.py.)"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import syncengine
from syncengine.engines import link_dest_dirs
from syncengine.engines.rsync import build_argv
from syncengine.options import SyncOptions
from syncengine.standin import UsageError, parse_argv

ENGINES = ["python", pytest.param("rsync", marks=pytest.mark.rsync)]
T = 1_600_000_000


def write(path, content: bytes, mode=0o644, mtime=T):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    os.chmod(path, mode)
    os.utime(path, (mtime, mtime))


@pytest.fixture
def tree(tmp_path):
    src = tmp_path / "src"
    write(src / "a", b"alpha\n")
    write(src / "sub/b", b"beta\n", 0o600)
    write(src / "c", b"gamma\n")
    (src / "sl").symlink_to("a")
    os.utime(src / "sl", (T, T), follow_symlinks=False)
    os.link(src / "a", src / "a2")
    return tmp_path


def inode(path):
    return os.lstat(path).st_ino


def everything(root):
    """path -> (inode, mode, mtime_ns, content or target) of every entry."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            body = os.readlink(p) if os.path.islink(p) else \
                None if os.path.isdir(p) else open(p, "rb").read()
            out[os.path.relpath(p, root)] = (st.st_ino, st.st_mode, st.st_mtime_ns, body)
    return out


@pytest.mark.parametrize("engine", ENGINES)
def test_unchanged_files_are_linked_changed_ones_copied(tree, engine):
    syncengine.sync(f"{tree}/src/", tree / "snap1", engine=engine)
    write(tree / "src/c", b"GAMMA\n")                       # content
    os.chmod(tree / "src/sub/b", 0o640)                     # mode only
    before = everything(tree / "snap1")
    result = syncengine.sync(f"{tree}/src/", tree / "snap2", engine=engine,
                             link_dest=tree / "snap1")
    assert result.exit_code == 0
    s1, s2 = tree / "snap1", tree / "snap2"
    for name in ("a", "a2", "sl"):
        assert inode(s2 / name) == inode(s1 / name), name
    for name in ("c", "sub/b"):
        assert inode(s2 / name) != inode(s1 / name), name
    assert (s2 / "c").read_bytes() == b"GAMMA\n"
    assert os.stat(s2 / "sub/b").st_mode & 0o777 == 0o640
    assert inode(s2 / "sub") != inode(s1 / "sub")           # dirs are made, not linked
    assert everything(s1) == before                         # the older snapshot: untouched


@pytest.mark.parametrize("engine", ENGINES)
def test_a_file_changed_in_place_is_never_written_into_the_snapshot(tree, engine):
    """Same size and mtime, other bytes: -c sees it; the snapshot's file,
    which is the same inode as in every earlier snapshot, keeps its bytes."""
    syncengine.sync(f"{tree}/src/", tree / "snap1", engine=engine)
    with open(tree / "src/a", "r+b") as fh:
        fh.write(b"ALPHA")
    os.utime(tree / "src/a", (T, T))
    before = everything(tree / "snap1")
    syncengine.sync(f"{tree}/src/", tree / "snap2", engine=engine, link_dest=tree / "snap1")
    assert (tree / "snap2/a").read_bytes() == b"ALPHA\n"
    assert (tree / "snap2/a2").read_bytes() == b"ALPHA\n"
    assert inode(tree / "snap2/a") == inode(tree / "snap2/a2") != inode(tree / "snap1/a")
    assert everything(tree / "snap1") == before


@pytest.mark.parametrize("engine", ENGINES)
def test_relative_dir_is_taken_below_dst(tree, engine):
    syncengine.sync(f"{tree}/src/", tree / "snap1", engine=engine)
    syncengine.sync(f"{tree}/src/", tree / "snap2", engine=engine, link_dest="../snap1")
    assert inode(tree / "snap2/sub/b") == inode(tree / "snap1/sub/b")


@pytest.mark.parametrize("engine", ENGINES)
def test_several_dirs_first_exact_match_wins(tree, engine):
    syncengine.sync(f"{tree}/src/", tree / "snap1", engine=engine)
    syncengine.sync(f"{tree}/src/", tree / "snap2", engine=engine)
    os.chmod(tree / "snap1/c", 0o600)     # not exact in snap1, exact in snap2
    syncengine.sync(f"{tree}/src/", tree / "snap3", engine=engine,
                    link_dest=[tree / "snap1", tree / "snap2"])
    assert inode(tree / "snap3/c") == inode(tree / "snap2/c")
    assert inode(tree / "snap3/a") == inode(tree / "snap1/a")


@pytest.mark.parametrize("engine", ENGINES)
def test_missing_dir_is_a_warning(tree, engine):
    result = syncengine.sync(f"{tree}/src/", tree / "snap", engine=engine,
                             link_dest=tree / "nonexistent")
    assert result.exit_code == 0
    assert f"--link-dest arg does not exist: {tree}/nonexistent" in result.errors
    assert (tree / "snap/a").read_bytes() == b"alpha\n"


@pytest.mark.parametrize("bad, why", [
    ("", "must not be empty"),
    ("a\0b", "NUL"),
    ([f"d{i}" for i in range(21)], "at most 20"),
    (3, "must be a path"),
])
def test_bad_link_dest_is_refused_before_anything_runs(tree, bad, why):
    with pytest.raises(ValueError, match=why):
        syncengine.sync(f"{tree}/src/", tree / "snap", link_dest=bad)
    assert not (tree / "snap").exists()


def test_link_dest_dirs():
    assert link_dest_dirs(None) == ()
    assert link_dest_dirs("x") == ("x",)
    assert link_dest_dirs(["x", b"y"]) == ("x", "y")


def test_rsync_argv_passes_each_dir_and_never_inplace():
    argv = build_argv("s/", "d", SyncOptions(), link_dest=("/p1", "../p2"))
    assert argv[argv.index("-rlptgocAXH") - 2:argv.index("-rlptgocAXH")] == \
        ["--link-dest=/p1", "--link-dest=../p2"]
    assert not any(a.startswith("--inplace") for a in argv)


def test_standin_parses_both_forms():
    args = parse_argv(["-rlptgocAXH", "--link-dest=/a", "--link-dest", "b", "s/", "d"])
    assert args.link_dest == ["/a", "b"] and args.sources == ["s/"] and args.dest == "d"
    with pytest.raises(UsageError, match="--link-dest: missing argument"):
        parse_argv(["-rlptgocAXH", "s/", "d", "--link-dest"])
    with pytest.raises(UsageError, match="at most 20 --link-dest args"):
        parse_argv(["-rlptgocAXH", *[f"--link-dest=d{i}" for i in range(21)], "s/", "d"])


def test_standin_links(tree):
    syncengine.sync(f"{tree}/src/", tree / "snap1", engine="python")
    proc = subprocess.run([sys.executable, "-m", "syncengine", "rsync", "-rlptgocAXH", "-i",
                           "--link-dest", "../snap1", f"{tree}/src/", f"{tree}/snap2"],
                          capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert inode(tree / "snap2/a") == inode(tree / "snap1/a")
    # (identical entries are linked silently: only the new dir DST is told)
    assert proc.stdout.decode().splitlines() == [f"created directory {tree}/snap2"]
