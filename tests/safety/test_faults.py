"""Faults, each compared with what real rsync does in the same situation.

- Disk full (a 2 MiB tmpfs): exit 11 and rsync's three lines, the temp file
  removed, no partial file under a real name (an old file stays whole).
- Unreadable source files and dirs, as nobody: exit 23, everything else
  copied, deletion suppressed after a source dir could not be read, rsync's
  messages (the equivalence harness, which runs both as nobody).
- Source files that vanish, shrink, grow or change while the run is on:
  rsync's exit codes and lines where its behaviour is deterministic; never
  a crash, never a copy that mixes two versions under a real name (see the
  decision in ``TreeSync._write_new`` and the README's Guarantees).
- Destinations that refuse attributes: ramfs (no xattrs, no ACLs) and a
  root without CAP_CHOWN: the data arrives, the failures are rsync's lines,
  exit 23.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from fixtures.treespec import build_tree
from syncengine import SyncError
from syncengine.treesync.filters import FilterRules
from syncengine.treesync.sync import TreeSync
from tests.reference import reference_rsync
from tests.snapshot import diff_snapshots, snapshot

from .helpers import FLAGS, is_temp, lines, standin, t

# Each test races a real run (timed changes, throttled rsync): the fast part
# (-m "not slow") runs a sample of them (tests/conftest.py).
pytestmark = [pytest.mark.rsync, pytest.mark.sampled(2)]


@pytest.fixture
def mount(tmp_path):
    """``mount(fstype, options) -> Path``: a fresh mount, unmounted at
    teardown (skips where this process may not mount)."""
    mounted: list[Path] = []

    def make(fstype: str, options: str = "") -> Path:
        target = tmp_path / f"mnt{len(mounted)}"
        target.mkdir()
        proc = subprocess.run(["mount", "-t", fstype, *(["-o", options] if options else []),
                               fstype, str(target)], capture_output=True, text=True)
        if proc.returncode:
            pytest.skip(f"cannot mount {fstype} here: {proc.stderr.strip()}")
        mounted.append(target)
        return target

    yield make
    for target in reversed(mounted):
        subprocess.run(["umount", str(target)], capture_output=True)


def _tree_without_root_mtime(path: Path) -> dict:
    return snapshot(path, root_mtime=False)


# -- disk full ---------------------------------------------------------------------------------

DISK_FULL_SOURCE = [
    {"path": ".", "mode": 0o755, "mtime_ns": t(1)},
    {"path": "a", "content": "small, copied before the disk fills\n", "mtime_ns": t(2)},
    {"path": "big", "size": 3_000_000, "seed": 1, "mtime_ns": t(3)},
    {"path": "zz", "content": "never reached: the run aborts\n", "mtime_ns": t(4)},
]


@pytest.mark.parametrize("old_big", [False, True], ids=["new-file", "update"])
def test_disk_full_is_exit_11_with_rsyncs_lines_and_no_partial_file(tmp_path, mount, old_big):
    mnt = mount("tmpfs", "size=2m")
    build_tree(tmp_path / "src", DISK_FULL_SOURCE)
    results = {}
    for who in ("rsync", "native"):
        dst = mnt / "dst"
        if old_big:
            build_tree(dst, [{"path": "big", "content": "the old big, small\n", "mtime_ns": t(9)}])
        argv = [*FLAGS, "--delete", f"{tmp_path}/src/", str(dst)]
        if who == "rsync":
            proc = subprocess.run([reference_rsync(), *argv], capture_output=True, timeout=60)
        else:
            proc = standin(*argv)
        snap = _tree_without_root_mtime(dst)
        results[who] = (proc.returncode, lines(proc.stdout), sorted(lines(proc.stderr)), snap)
        shutil.rmtree(dst)  # the same free space for the next one
    code, out, err, snap = results["native"]
    assert code == 11
    assert err == sorted([
        f'rsync: [receiver] write failed on "{mnt}/dst/big": No space left on device (28)',
        "rsync error: error in file IO (code 11)",
        "rsync: [sender] write error: Broken pipe (32)"])
    assert results["rsync"][:3] == (code, out, err)
    assert diff_snapshots(results["rsync"][3], snap) == []
    assert not any(is_temp(rel) for rel in snap), "the temp file must be removed"
    assert b"zz" not in snap, "the run stops at the first write error"
    if old_big:
        assert snap[b"big"]["size"] == len("the old big, small\n"), "the old file stays whole"
    else:
        assert b"big" not in snap


def test_disk_full_through_the_library_raises_sync_error_11(tmp_path, mount):
    import syncengine
    mnt = mount("tmpfs", "size=2m")
    build_tree(tmp_path / "src", DISK_FULL_SOURCE)
    with pytest.raises(SyncError) as info:
        syncengine.sync(f"{tmp_path}/src/", str(mnt / "dst"), engine="python")
    assert info.value.exit_code == 11
    assert "No space left on device" in str(info.value)
    assert sorted(os.listdir(mnt / "dst")) == ["a"]


# -- unreadable source, as nobody ------------------------------------------------------------------

NB = {"uid": 65534, "gid": 65534}


def _nb(path, **kw):
    kind = {"type": "dir", "mode": 0o755} if kw.pop("dir", False) else \
        {"content": f"{path}\n", "mode": 0o644}
    return {"path": path, "mtime_ns": t(5), **NB, **kind, **kw}


def test_unreadable_source_dir_and_file_as_nobody(nobody_base):
    """An unreadable dir and an unreadable file among readable ones:
    rsync's lines, exit 23, everything readable copied, and no deletion
    anywhere (the dir could not be listed: rsync's IO error rule)."""
    from tests.equivalence.harness import Case, check
    spec = [{"path": ".", "mode": 0o755, "mtime_ns": t(1), **NB},
            _nb("src", dir=True),
            _nb("src/ok"), _nb("src/secret", mode=0o000, uid=0),
            _nb("src/closed", dir=True, mode=0o000, uid=0), _nb("src/closed/inside"),
            _nb("src/open", dir=True), _nb("src/open/deep"),
            _nb("dst", dir=True), _nb("dst/junk"), _nb("dst/open", dir=True),
            _nb("dst/open/stale")]
    rs, nat = check(Case(spec=spec, sources=[b"src/"], dest=b"dst", unprivileged=True),
                    nobody_base)
    assert nat.code == 23
    assert 'rsync: [sender] opendir "<W>/src/closed" failed: Permission denied (13)' in nat.err
    assert 'rsync: [sender] send_files failed to open "<W>/src/secret": Permission denied (13)' \
        in nat.err
    assert nat.out == ["IO error encountered -- skipping file deletion"]
    snap = nat.snap
    for copied in (b"dst/ok", b"dst/open/deep"):
        assert snap[copied]["sha256"] == snap[b"src/" + copied[4:]]["sha256"]
    assert b"dst/junk" in snap and b"dst/open/stale" in snap, "deletion must be suppressed"
    assert b"dst/secret" not in snap
    assert snap[b"dst/closed"]["type"] == "dir" and b"dst/closed/inside" not in snap


def test_unreadable_file_alone_still_lets_deletion_run(nobody_base):
    from tests.equivalence.harness import Case, check
    spec = [{"path": ".", "mode": 0o755, "mtime_ns": t(1), **NB},
            _nb("src", dir=True), _nb("src/ok"), _nb("src/secret", mode=0o000, uid=0),
            _nb("dst", dir=True), _nb("dst/junk")]
    rs, nat = check(Case(spec=spec, sources=[b"src/"], dest=b"dst", unprivileged=True),
                    nobody_base)
    assert nat.code == 23 and nat.out == []
    assert b"dst/junk" not in nat.snap and b"dst/ok" in nat.snap


# -- the source changing during the run ----------------------------------------------------------

CHANGING_SOURCE = [
    {"path": ".", "mode": 0o755, "mtime_ns": t(1)},
    {"path": "a", "size": 3_000_000, "seed": 1, "mtime_ns": t(2)},
    {"path": "b", "content": "b stays\n", "mtime_ns": t(3)},
    {"path": "z", "size": 3_000_000, "seed": 2, "mtime_ns": t(4)},
]


def _rsync_while(tmp_path: Path, change) -> tuple[int, list[str], Path]:
    """Real rsync, slowed to 2 MB/s so that "a" takes about 1.5 s: ``change``
    runs 0.5 s into the run, after the file list was built and before "z"
    is opened."""
    src, dst = tmp_path / "rsync-src", tmp_path / "rsync-dst"
    build_tree(src, CHANGING_SOURCE)
    proc = subprocess.Popen([reference_rsync(), *FLAGS, "--delete", "--bwlimit=2000",
                             f"{src}/", str(dst)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(0.5)
    assert proc.poll() is None
    change(src)
    out, err = proc.communicate(timeout=60)
    return proc.returncode, sorted(lines(out) + lines(err, (str(src), "<SRC>"))), dst


def _native_while(tmp_path: Path, change) -> tuple[int, list[str], Path]:
    """The native engine in this process: ``change`` runs when the walk has
    done "a" (the progress callback), before "z" is opened."""
    src, dst = tmp_path / "native-src", tmp_path / "native-dst"
    build_tree(src, CHANGING_SOURCE)
    out: list[str] = []
    done = []

    def progress(stats) -> None:
        if stats.current == b"a" and not done:
            done.append(1)
            change(src)

    code = TreeSync([f"{src}/"], str(dst), delete=True, rules=FilterRules.from_excludes(()),
                    out=out.append, err=out.append, on_progress=progress).run()
    return code, sorted(lines("\n".join(out).encode(), (str(src), "<SRC>"))), dst


def _vanish(src: Path) -> None:
    (src / "z").unlink()


def _shrink(src: Path) -> None:
    os.truncate(src / "z", 1000)


def _grow(src: Path) -> None:
    with open(src / "z", "ab") as f:
        f.write(b"more" * 1000)


@pytest.mark.parametrize("change, code, expected", [
    (_vanish, 24, ['file has vanished: "<SRC>/z"',
                   "rsync warning: some files vanished before they could be transferred "
                   "(code 24)"]),
    (_shrink, 0, []),
    (_grow, 0, []),
], ids=["vanished", "shrunk-before-open", "grown-before-open"])
def test_a_source_file_changed_between_listing_and_copy(tmp_path, change, code, expected):
    """Changes after the file list was built and before the file is read:
    the same exit code, lines and tree as rsync (which reads what the file
    holds when it opens it)."""
    r_code, r_lines, r_dst = _rsync_while(tmp_path, change)
    n_code, n_lines, n_dst = _native_while(tmp_path, change)
    assert (n_code, n_lines) == (r_code, r_lines) == (code, sorted(expected))
    assert diff_snapshots(snapshot(r_dst), snapshot(n_dst)) == []
    if change is not _vanish:
        assert (n_dst / "z").read_bytes() == (tmp_path / "native-src" / "z").read_bytes()


def test_a_file_that_shrinks_while_read_is_redone_like_rsync(tmp_path, monkeypatch):
    """rsync (slowed down, the file truncated while it is sent) prints "read
    errors mapping", discards that copy, sends the file again (its redo
    phase) and ends with 23; so does the native engine (the shrink injected
    between its open and its read)."""
    src = tmp_path / "rsync-src"
    build_tree(src, CHANGING_SOURCE)
    proc = subprocess.Popen([reference_rsync(), *FLAGS, "--delete", "--bwlimit=2000",
                             f"{src}/", str(tmp_path / "rsync-dst")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(2.0)  # "a" is done after 1.5 s: "z" is being sent
    os.truncate(src / "z", 1000)
    out, err = proc.communicate(timeout=60)
    r_lines = sorted(lines(out) + lines(err, (str(src), "<SRC>")))

    nsrc = tmp_path / "native-src"
    build_tree(nsrc, CHANGING_SOURCE)
    _inject(monkeypatch, nsrc / "z", lambda path: os.truncate(path, 1000), times=1)
    n_code, n_lines = _run(nsrc, tmp_path / "native-dst")
    assert (n_code, n_lines) == (proc.returncode, r_lines) == (23, sorted([
        'rsync: [sender] read errors mapping "<SRC>/z": No data available (61)',
        "rsync error: some files/attrs were not transferred (see previous errors) (code 23)"]))
    # Both end with the file as it is now, complete, under its name.
    for side in ("rsync", "native"):
        assert (tmp_path / f"{side}-dst" / "z").read_bytes() == (nsrc / "z").read_bytes()
        assert not any(is_temp(os.fsencode(p.name)) for p in (tmp_path / f"{side}-dst").iterdir())


def test_a_file_rewritten_while_read_never_gets_a_mixed_copy(tmp_path, monkeypatch):
    """A 9 MB file rewritten (same size) between two chunks of the copy:
    rsync would keep the mix of old and new it read; the native engine sees
    the mtime move, discards that copy and makes a consistent one."""
    src = tmp_path / "src"
    build_tree(src, [{"path": "big", "size": 9_000_000, "seed": 1, "mtime_ns": t(1)}])
    new = os.urandom(9_000_000)

    def rewrite(path: Path) -> None:
        with open(path, "r+b") as f:
            f.write(new)

    _inject(monkeypatch, src / "big", rewrite, times=1, after_calls=1)
    code, out = _run(src, tmp_path / "dst")
    assert (code, out) == (0, [])
    assert (tmp_path / "dst" / "big").read_bytes() == new


def test_a_file_that_keeps_changing_keeps_the_old_copy(tmp_path, monkeypatch):
    """Caught changing on both tries: the destination keeps its old file
    (no temp file, no mix), exit 23 with rsync's "failed verification"."""
    src = tmp_path / "src"
    build_tree(src, [{"path": "f", "size": 100_000, "seed": 1, "mtime_ns": t(1)}])
    build_tree(tmp_path / "dst", [{"path": "f", "content": "old\n", "mtime_ns": t(2)}])

    def touch(path: Path) -> None:
        with open(path, "ab") as f:
            f.write(b"+")

    _inject(monkeypatch, src / "f", touch, times=2)
    code, out = _run(src, tmp_path / "dst")
    assert code == 23
    assert out == sorted(["ERROR: f failed verification -- update discarded.",
                          "rsync error: some files/attrs were not transferred (see previous "
                          "errors) (code 23)"])
    assert os.listdir(tmp_path / "dst") == ["f"]
    assert (tmp_path / "dst" / "f").read_bytes() == b"old\n"


def _inject(monkeypatch, path: Path, change, times: int, after_calls: int = 0) -> None:
    """Change ``path`` from inside the copy: before the ``after_calls``-th
    copy_file_range call on it (0: before the first read), ``times`` times
    (once per copy attempt)."""
    ino = path.stat().st_ino
    real = os.copy_file_range
    state = {"calls": 0, "left": times}
    lock = threading.Lock()

    def copy_file_range(src_fd, dst_fd, count, *args):
        with lock:
            if os.fstat(src_fd).st_ino == ino:
                if os.lseek(src_fd, 0, os.SEEK_CUR) == 0:
                    state["calls"] = 0
                if state["calls"] == after_calls and state["left"]:
                    state["left"] -= 1
                    change(path)
                state["calls"] += 1
        return real(src_fd, dst_fd, count, *args)

    monkeypatch.setattr(os, "copy_file_range", copy_file_range)


def _run(src: Path, dst: Path) -> tuple[int, list[str]]:
    out: list[str] = []
    code = TreeSync([f"{src}/"], str(dst), delete=True, rules=FilterRules.from_excludes(()),
                    out=out.append, err=out.append).run()
    return code, sorted(lines("\n".join(out).encode(), (str(src), "<SRC>")))


# -- destinations that refuse attributes ------------------------------------------------------------

REFUSED_SOURCE = [
    {"path": ".", "mode": 0o755, "mtime_ns": t(1)},
    {"path": "f", "content": "hello\n", "mode": 0o640, "mtime_ns": t(2),
     "xattrs": {"user.a": "1", "trusted.t": "2"}, "acl": "u::rw-,u:1234:r--,g::r--,m::r--,o::---"},
    {"path": "d/g", "content": "owned\n", "uid": 1234, "gid": 5678, "mtime_ns": t(3)},
    {"path": "d", "type": "dir", "mode": 0o2755, "default_acl": "u::rwx,u:1234:r-x,g::r-x,o::---",
     "mtime_ns": t(4)},
    {"path": "l", "target": "f", "mtime_ns": t(5)},
]


def _compare_on(tmp_path: Path, where: Path, prefix: list[str] = ()) -> tuple[int, list[str], dict]:
    build_tree(tmp_path / "src", REFUSED_SOURCE)
    results = {}
    for who in ("rsync", "native"):
        started = time.time_ns() - 1_000_000_000
        dst = where / "dst"
        argv = [*FLAGS, "--delete", f"{tmp_path}/src/", str(dst)]
        if who == "rsync":
            proc = subprocess.run([*prefix, reference_rsync(), *argv], capture_output=True,
                                  timeout=60)
        else:
            proc = subprocess.run([*prefix, *_standin_argv(), *argv], capture_output=True,
                                  timeout=60)
        results[who] = (proc.returncode, sorted(_untemp(lines(proc.stdout + proc.stderr))),
                        _recent(snapshot(dst, root_mtime=False), started))
        shutil.rmtree(dst)
    assert results["native"][:2] == results["rsync"][:2]
    assert diff_snapshots(results["rsync"][2], results["native"][2]) == []
    return results["native"]


def _recent(snap: dict, since_ns: int) -> dict:
    """Times the run itself left ("now": a failed chown ends rsync's
    attribute pass before the mtime) compare as 0."""
    for rec in snap.values():
        if rec.get("mtime_ns", 0) >= since_ns:
            rec["mtime_ns"] = 0
    return snap


def _standin_argv() -> list[str]:
    import sys
    return [sys.executable, "-m", "syncengine", "rsync"]


def _untemp(found: list[str]) -> list[str]:
    import re
    return [re.sub(r"/\.([^/\"]+)\.[A-Za-z0-9]{6}", r"/.\1.TEMP", re.sub(
        r"\(\.([^/\"]+)\.[A-Za-z0-9]{6},", r"(.\1.TEMP,", line)) for line in found]


def test_a_destination_without_xattrs_or_acls_gets_the_data(tmp_path, mount):
    code, found, snap = _compare_on(tmp_path, mount("ramfs"))
    assert code == 23
    assert any("fsetxattr" in line and "Operation not supported (95)" in line for line in found)
    assert any("set_acl: xacl_set(d, ACL_TYPE_DEFAULT): Operation not supported (95)" in line
               for line in found)
    assert snap[b"f"]["sha256"] == snapshot(tmp_path / "src")[b"f"]["sha256"]
    assert snap[b"d/g"]["size"] == len("owned\n") and snap[b"l"]["target"] == b"f"


def test_a_destination_that_refuses_ownership_gets_the_data(tmp_path):
    """Root without CAP_CHOWN (as on a filesystem that refuses chown)."""
    if shutil.which("setpriv") is None or os.geteuid() != 0:
        pytest.skip("needs root and setpriv")
    code, found, snap = _compare_on(tmp_path, tmp_path, ["setpriv", "--bounding-set=-chown"])
    assert code == 23
    assert [line for line in found if "chown" in line] == [
        f'rsync: [receiver] chown "{tmp_path}/dst/d/.g.TEMP" failed: Operation not permitted (1)']
    assert snap[b"d/g"]["uid"] == 0 and snap[b"d/g"]["sha256"] == \
        snapshot(tmp_path / "src")[b"d/g"]["sha256"]
