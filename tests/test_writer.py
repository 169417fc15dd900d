"""The writer process of an initial copy (treesync/writer.py): the files it
writes end up exactly as rsync leaves them, its messages and failures come
out in rsync's order, and an abort or its death loses nothing."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import struct
import threading

import pytest

from syncengine.treesync import files as files_module
from syncengine.treesync import model as model_module
from syncengine.treesync import pending as pending_module
from syncengine.treesync import sync as sync_module
from syncengine.treesync import writer as writer_module
from syncengine.treesync.model import Tuning
from syncengine.treesync.transfer import WriteError
from syncengine.treesync.xattrs import Node
from tests.conftest import run_rsync, tree_sync
from tests.snapshot import snapshot

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the writer runs for root only")

PAST = 1_600_000_000_123_456_789


def make_tree(root, dirs=4, files=40):
    root.mkdir()
    for d in range(dirs):
        sub = root / f"d{d}"
        sub.mkdir()
        for i in range(files):
            p = sub / f"f{i:03d}"
            p.write_bytes(bytes([i % 251]) * (i * 37 % 5000))
            os.chmod(p, 0o600 + (i % 3) * 0o40)
            if i % 7 == 0:
                os.setxattr(p, b"user.k", b"v%d" % i)
            if i % 11 == 0:
                os.chown(p, 1000 + i % 3, 2000 + i % 5)
            os.utime(p, ns=(PAST, PAST + i * 1001))
        os.symlink(f"f{files - 1:03d}", sub / "link")
        os.link(sub / "f001", sub / "hard")
        os.utime(sub, ns=(PAST, PAST + d))
    (root / "big").write_bytes(b"B" * (model_module.BEHIND_MIN + 5))
    os.utime(root, ns=(PAST, PAST))


@pytest.fixture
def sent(monkeypatch):
    """How many files the runs handed to a writer."""
    counted = []
    original = writer_module.Writer.send

    def counting(self, batch):
        counted.append(len(batch.jobs))
        return original(self, batch)
    monkeypatch.setattr(writer_module.Writer, "send", counting)
    return counted


def no_link_times(root):
    """The tree without the mtimes of symlinks (rsync makes them anew)."""
    return {path: {k: v for k, v in record.items()
                   if record["type"] != "symlink" or k != "mtime_ns"}
            for path, record in snapshot(root).items()}


def files(root):
    """The tree without the mtimes of dirs (a dir the run did not finish
    keeps the time its last change was made)."""
    return {path: {k: v for k, v in record.items()
                   if record["type"] not in ("dir", "symlink") or k != "mtime_ns"}
            for path, record in snapshot(root).items()}


def same_names(lines):
    """Lines with the destination called DST and temp names made alike."""
    return [re.sub(r"(\.f\d+\.)[A-Za-z0-9]{6}", r"\1XXXXXX",
                   re.sub(r"/(dst|ref)/", "/DST/", line)) for line in lines]


def serial(monkeypatch, src, dst, **kw):
    """The same run without a writer."""
    tree, lines = tree_sync(src, dst, tuning=Tuning(writer=False), **kw)
    return tree.run(), lines


@pytest.mark.rsync
def test_an_initial_copy_with_the_writer_is_rsyncs(tmp_path, sent):
    src, dst, ref = tmp_path / "src", tmp_path / "dst", tmp_path / "ref"
    make_tree(src)
    fds = sorted(os.listdir("/proc/self/fd"))
    tree, lines = tree_sync(src, dst)
    assert tree.run() == 0 and lines == []
    assert sorted(os.listdir("/proc/self/fd")) == fds  # (no fd left open)
    with pytest.raises(ChildProcessError):  # (the writer reaped)
        os.waitpid(-1, os.WNOHANG)
    assert sum(sent) >= 40  # (the walk writes the rest while the writer is busy)
    assert run_rsync("-rlptgocAXH", "--delete", f"{src}/", str(ref)).returncode == 0
    assert no_link_times(dst) == no_link_times(ref)  # dir mtimes to the ns included
    assert tree.stats.files_transferred == 4 * 40 + 1  # (hard links are not transfers)
    assert not [p for p in dst.rglob(".*")]


def posix_acl(uid: int) -> bytes:
    """A raw access ACL: u::rw-, u:<uid>:r--, g::r--, m::r--, o::---."""
    entries = [(0x01, 6, 0xFFFFFFFF), (0x02, 4, uid), (0x04, 4, 0xFFFFFFFF),
               (0x10, 4, 0xFFFFFFFF), (0x20, 0, 0xFFFFFFFF)]
    return struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *e) for e in entries)


@pytest.mark.rsync
def test_files_with_acls_and_xattrs_go_to_the_writer_too(tmp_path, monkeypatch, sent):
    """The writer reads each file's attributes itself: ACLs and xattrs
    end up as rsync leaves them."""
    src, dst, ref = tmp_path / "src", tmp_path / "dst", tmp_path / "ref"
    make_tree(src, dirs=2)
    for i in range(0, 40, 5):
        os.setxattr(src / "d1" / f"f{i:03d}", "system.posix_acl_access", posix_acl(1000 + i))
        os.setxattr(src / "d1" / f"f{i:03d}", "user.big", bytes(range(256)) * 7)
    os.utime(src / "d1", ns=(PAST, PAST))
    monkeypatch.setattr(sync_module.TreeSync, "_writer_busy", lambda self: False)
    tree, lines = tree_sync(src, dst)
    assert tree.run() == 0 and lines == []
    assert sum(sent) == 2 * 40 - 2  # (all but the hard-linked f001s)
    assert run_rsync("-rlptgocAXH", "--delete", f"{src}/", str(ref)).returncode == 0
    assert no_link_times(dst) == no_link_times(ref)
    assert snapshot(dst)[b"d1/f005"]["acl"] is not None


def test_its_failures_come_out_as_without_it(tmp_path, monkeypatch, sent):
    """Failed mkstemps and a failed utime in the writer: the same lines, in
    the same order, the same exit code and the same tree as the walk
    writing every file itself."""
    src = tmp_path / "src"
    make_tree(src, dirs=3)
    real_open_temp = files_module.open_temp
    real_utime = os.utime

    where = tmp_path / "failed-in"  # the pids the failures happened in

    def failed() -> None:
        with open(where, "a") as f:
            f.write(f"{os.getpid()}\n")

    def open_temp(dirfd, name, mode, direct=False):
        if name in (b"f005", b"f023"):
            failed()  # (as os.open fails: on the temp file's name)
            raise PermissionError(13, "Permission denied", files_module.temp_name(name))
        return real_open_temp(dirfd, name, mode, direct)

    def utime(target, *args, ns=None, **kwargs):
        if ns is not None and ns[1] == PAST + 17 * 1001:
            failed()
            raise PermissionError(1, "Operation not permitted")
        return real_utime(target, *args, ns=ns, **kwargs)
    for module in (files_module, pending_module):  # (the walk's and the writer's)
        monkeypatch.setattr(module, "open_temp", open_temp)
    monkeypatch.setattr(os, "utime", utime)  # (by fd or by name)
    tree, lines = tree_sync(src, tmp_path / "dst")
    code = tree.run()
    assert sum(sent) > 20
    assert set(where.read_text().split()) - {str(os.getpid())}  # (some in the writer)
    ref_code, ref_lines = serial(monkeypatch, src, tmp_path / "ref")
    assert (code, same_names(lines)) == (ref_code, same_names(ref_lines))
    assert code == 23 and len(lines) == 3 * 3 + 1  # two mkstemps and a utime a dir

    def kept(root):  # (f017 keeps the time it was made)
        return {path: {k: v for k, v in record.items()
                       if not (path.endswith(b"/f017") and k == "mtime_ns")}
                for path, record in files(root).items()}
    assert kept(tmp_path / "dst") == kept(tmp_path / "ref")
    assert not [p for p in (tmp_path / "dst").rglob(".f*")]


def test_a_file_the_writer_cannot_open_or_read_is_left_to_the_walk(tmp_path, monkeypatch,
                                                                    sent):
    """The writer opens the files and reads their attributes itself: one
    it cannot open, or whose xattrs it cannot read, the walk transfers in
    its turn, and a file gone by then is reported as vanished where rsync
    reports it: the same lines, exit code and tree as without a writer."""
    src = tmp_path / "src"
    make_tree(src, dirs=2)
    run_pid = os.getpid()
    real_open, real_read = files_module.open_file, pending_module.read_src_meta
    where = tmp_path / "failed-in"

    def failed(name: bytes) -> None:
        with open(where, "a") as f:
            f.write(f"{os.getpid()} {os.fsdecode(name)}\n")

    def open_file(name, dir_fd):
        if name == b"f004" and os.getpid() != run_pid:
            failed(name)
            raise PermissionError(13, "Permission denied")
        if name == b"f031":  # (gone after the walk's lstat, before the open)
            failed(name)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name, dir_fd=dir_fd)
        return real_open(name, dir_fd)

    def read_src_meta(st, *, name, **kw):
        if name == b"f014" and os.getpid() != run_pid:  # (f014 has an xattr)
            failed(name)
            return None
        return real_read(st, name=name, **kw)
    for module in (files_module, pending_module):
        monkeypatch.setattr(module, "open_file", open_file)
    monkeypatch.setattr(pending_module, "read_src_meta", read_src_meta)  # (the writer's)
    # (every file it may take goes to the writer: none is written by the walk first)
    monkeypatch.setattr(sync_module.TreeSync, "_writer_busy", lambda self: False)
    tree, lines = tree_sync(src, tmp_path / "dst")
    code = tree.run()
    failures = [line.split() for line in where.read_text().splitlines()]
    assert sorted(name for pid, name in failures if int(pid) != run_pid) == [
        "f004", "f004", "f014", "f014", "f031", "f031"]  # (in the writer, both dirs)
    for d in ("d0", "d1"):
        (src / d / "f031").write_bytes(b"back")  # (for the run without a writer)
    ref_code, ref_lines = serial(monkeypatch, src, tmp_path / "ref")
    assert (code, same_names(lines)) == (ref_code, same_names(ref_lines))
    assert code == 24 and len(lines) == 3  # two vanished files and rsync's last line
    assert all("f031" in line for line in lines[:2])
    assert files(tmp_path / "dst") == files(tmp_path / "ref")
    assert (tmp_path / "dst" / "d1" / "f004").read_bytes() == (src / "d1" / "f004").read_bytes()
    assert os.getxattr(tmp_path / "dst" / "d1" / "f014", "user.k") == b"v14"


def test_an_unreadable_source_file_stops_deletion_where_it_would_without_it(
        tmp_path, monkeypatch, sent):
    """A file the writer cannot read the xattrs of is read again by the
    walk in its turn, which reports it; rsync's "IO error encountered --
    skipping file deletion" then comes at the next dir's delete pass, as
    in the run without a writer -- not later, not never."""
    src = tmp_path / "src"
    make_tree(src, dirs=3)
    for d in ("d1", "d2"):
        (src / d / "sub").mkdir()
        (src / d / "sub" / "x").write_bytes(b"x")
        os.utime(src / d, ns=(PAST, PAST))
    real = Node.listxattr

    def listxattr(node):  # (f035 of the last dir, then its sub: the run's last delete pass)
        if node.name == b"f035" and os.readlink(f"/proc/self/fd/{node.dirfd}").endswith("/d2"):
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return real(node)
    monkeypatch.setattr(Node, "listxattr", listxattr)
    monkeypatch.setattr(sync_module.TreeSync, "_writer_busy", lambda self: False)
    tree, lines = tree_sync(src, tmp_path / "dst")
    code = tree.run()
    ref_code, ref_lines = serial(monkeypatch, src, tmp_path / "ref")
    assert (code, same_names(lines)) == (ref_code, same_names(ref_lines))
    assert code == 23 and "f035" in lines[0]
    assert lines[1] == "IO error encountered -- skipping file deletion"
    assert files(tmp_path / "dst") == files(tmp_path / "ref")


def test_a_fatal_write_error_in_the_writer(tmp_path, monkeypatch, sent):
    """A write error (no space, an I/O error) in the writer ends the run as
    it would without it: same lines, same exit code, the files before it
    in place and no temp file left.  (Entries the walk made meanwhile
    after it stay: a known difference, see writer.py.)"""
    src = tmp_path / "src"
    make_tree(src, dirs=3)
    real_copy = files_module.copy_data

    def copy_data(src_fd, dst_fd, size, check=None):
        if size == 29 * 37:  # f029 of the second dir holds the 1073 bytes
            where = os.readlink(f"/proc/self/fd/{dst_fd}").split("/")[-2]
            if where == "d1" or where.startswith(".d1."):  # (or its shelter)
                raise WriteError(28, "No space left on device")
        return real_copy(src_fd, dst_fd, size, check)
    for module in (files_module, pending_module):
        monkeypatch.setattr(module, "copy_data", copy_data)
    tree, lines = tree_sync(src, tmp_path / "dst")
    code = tree.run()
    ref_code, ref_lines = serial(monkeypatch, src, tmp_path / "ref")
    assert (code, same_names(lines)) == (ref_code, same_names(ref_lines))
    assert code == 11
    before = {path: record for path, record in files(tmp_path / "ref").items()
              if path.startswith(b"d0/") or path < b"d1/f029"}
    assert {path: files(tmp_path / "dst")[path] for path in before} == before
    assert not (tmp_path / "dst" / "d1" / "f029").exists()
    assert not [p for p in (tmp_path / "dst").rglob(".*")]  # (no temp file, no shelter)


def test_a_fatal_error_of_the_walk_completes_the_files_before_it(tmp_path, monkeypatch,
                                                                  sent):
    src = tmp_path / "src"
    make_tree(src)
    original = sync_module.TreeSync._dir

    def fatal_in_d3(self, src_parent, name, *args, **kw):
        if name == b"d3":
            raise sync_module.Fatal(11, "boom")
        return original(self, src_parent, name, *args, **kw)
    monkeypatch.setattr(sync_module.TreeSync, "_dir", fatal_in_d3)
    tree, lines = tree_sync(src, tmp_path / "dst")
    assert tree.run() == 11
    # The writer had files in flight (more than one batch; on a busy machine
    # the walk writes what the lagging writer declines, so not all of them).
    assert sum(sent) > 20
    assert serial(monkeypatch, src, tmp_path / "ref") == (11, lines)
    assert files(tmp_path / "dst") == files(tmp_path / "ref")
    # all written before d3 (but f001: as the first of a hard-link group whose
    # last member is written, it waits to be linked at the end of the run)
    assert set(os.listdir(tmp_path / "dst" / "d2")) == set(os.listdir(src / "d2")) - {"f001"}


def test_a_cancel_leaves_no_temp_file(tmp_path, monkeypatch, sent):
    src, dst = tmp_path / "src", tmp_path / "dst"
    make_tree(src, dirs=6)
    cancel = threading.Event()
    original = sync_module.TreeSync._queue_write
    queued = []

    def queue_write(self, *args):
        queued.append(1)
        # Early: on a busy machine the walk writes many files itself (the
        # writer declines them while it lags), so a late count may never come.
        if len(queued) == 20:
            cancel.set()  # (a signal, as the stand-in takes it)
        return original(self, *args)
    monkeypatch.setattr(sync_module.TreeSync, "_queue_write", queue_write)
    tree, lines = tree_sync(src, dst, cancel=cancel)
    assert tree.run() == 20
    assert sent
    assert lines == ["rsync error: received SIGINT, SIGTERM, or SIGHUP (code 20)"]
    assert not [p for p in dst.rglob(".*")]


@pytest.mark.parametrize("when", ["between files", "in a file"])
def test_if_the_writer_dies_the_walk_writes_its_files(tmp_path, monkeypatch, sent, when):
    """The writer killed before its 30th file, or while it copies it (its
    temp file made): the walk writes what it had, removes the temp file it
    left, and touches nothing else (names like temp names included)."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    make_tree(src)
    for d in ("d0", "d1"):
        for name in (".f002", ".f002.backup", ".f002.Ab3xYz", "f002.backup"):
            (src / d / name).write_bytes(name.encode())
        os.utime(src / d, ns=(PAST, PAST))
    run_pid = os.getpid()
    calls = []
    target = "_write_quick" if when == "between files" else "copy_data"
    module = sync_module.TreeSync if target == "_write_quick" else pending_module
    original = getattr(module, target)

    def dying(*args, **kw):
        if os.getpid() != run_pid:
            calls.append(1)
            if len(calls) == 30:
                os._exit(9)
        return original(*args, **kw)
    monkeypatch.setattr(module, target, dying)
    if target == "copy_data":  # (the writer's _write_new copies with the walk's)
        monkeypatch.setattr(files_module, target, dying)
    deaths = []
    gone = writer_module.Writer._gone
    monkeypatch.setattr(writer_module.Writer, "_gone",
                        lambda self: deaths.append(self.sock is not None) or gone(self))
    tree, lines = tree_sync(src, dst)
    assert tree.run() == 0 and lines == []
    assert sum(sent) > 30 and deaths == [True]  # (the run saw it die)
    assert no_link_times(dst) == no_link_times(src)
    assert not [p for p in dst.rglob(".*") if not p.name.startswith(".f002")]


def test_near_a_full_disk_the_walk_writes_in_order_itself(tmp_path, monkeypatch, sent):
    src, dst = tmp_path / "src", tmp_path / "dst"
    make_tree(src, dirs=2)
    real = os.fstatvfs

    class Full:
        def __init__(self, fs):
            self.f_frsize, self.f_favail = fs.f_frsize, fs.f_favail
            self.f_bavail = (200 << 20) // fs.f_frsize  # less than the room kept free
    monkeypatch.setattr(os, "fstatvfs", lambda fd: Full(real(fd)))
    tree, lines = tree_sync(src, dst)
    assert tree.run() == 0 and lines == []
    assert sent == []
    assert no_link_times(dst) == no_link_times(src)


@pytest.mark.parametrize("why", ["dry run", "itemize", "not empty", "crash hook", "one cpu"])
def test_no_writer_where_it_could_change_what_rsync_does(tmp_path, monkeypatch, sent, why):
    from syncengine.treesync import faults
    src, dst = tmp_path / "src", tmp_path / "dst"
    make_tree(src, dirs=1)
    kw = {}
    if why == "dry run":
        kw["dry_run"] = True
    elif why == "itemize":
        kw["on_item"] = lambda item: None
    elif why == "not empty":
        dst.mkdir()
        (dst / "old").write_bytes(b"x")
    elif why == "one cpu":
        monkeypatch.setattr(pending_module, "usable_cpus", lambda: 1)
    else:
        faults.arm(0)  # counting, never crashing
    try:
        tree, lines = tree_sync(src, dst, **kw)
        assert tree.run() == 0
    finally:
        faults.arm(-1)
    assert sent == []


# -- shelters: a new dir is filled under a temp name (see TreeSync._dir) ------------------
TEMP_NAME = re.compile(rb"^\..+\.[A-Za-z0-9]{6}$")


def test_a_new_dir_is_filled_under_a_temp_name_and_named_when_complete(tmp_path, monkeypatch,
                                                                         sent):
    """Each new dir below DST is made as ``.NAME.XXXXXX``; its files go in
    under their own names (no temp file each), and it takes its name only
    once everything in it is complete.  The result is rsync's."""
    src, dst, ref = tmp_path / "src", tmp_path / "dst", tmp_path / "ref"
    make_tree(src)
    (src / "d1" / "deeper").mkdir()
    (src / "d1" / "deeper" / "g").write_bytes(b"deep\n")
    for path in ("d1/deeper/g", "d1/deeper", "d1"):
        os.utime(src / path, ns=(PAST, PAST + 1))
    named = []
    original = sync_module.TreeSync._dir_done

    def dir_done(self, dst_parent, dst_name, frame):
        if frame.shelter is not None:
            real = dst.joinpath(*[os.fsdecode(p) for p in frame.dst_path])
            shelter = real.parent / os.fsdecode(frame.shelter)
            assert not real.exists() and shelter.is_dir()
            source = src.joinpath(*[os.fsdecode(p) for p in frame.dst_path])
            def whole(root):  # (not the links: f001, linked to hard, comes at the end)
                return {path: {k: v for k, v in record.items() if k != "links"}
                        for path, record in files(root).items() if path != b"."}
            have, want = whole(shelter), whole(source)
            assert {path: want[path] for path in have} == have  # (each file whole)
            assert set(want) - set(have) == {b"f001"}
            named.append(real.name)
        return original(self, dst_parent, dst_name, frame)
    made = []
    real_open_temp = files_module.open_temp

    def open_temp(dirfd, name, mode, direct=False):
        made.append((os.readlink(f"/proc/self/fd/{dirfd}"), name, direct))
        return real_open_temp(dirfd, name, mode, direct)
    monkeypatch.setattr(sync_module.TreeSync, "_dir_done", dir_done)
    for module in (files_module, pending_module):  # (the walk's and the writer's)
        monkeypatch.setattr(module, "open_temp", open_temp)
    tree, lines = tree_sync(src, dst)
    assert tree.run() == 0 and lines == []
    assert sum(sent) > 40
    assert sorted(named) == ["d0", "d1", "d2", "d3"]  # (deeper is inside d1's)
    # the walk's own files in there too (the writer's open_temp is its own)
    assert made and all(
        direct == any(TEMP_NAME.match(os.fsencode(part)) for part in where.split("/"))
        for where, _, direct in made)
    assert run_rsync("-rlptgocAXH", "--delete", f"{src}/", str(ref)).returncode == 0
    assert no_link_times(dst) == no_link_times(ref)
    assert not [p for p in dst.rglob(".*")]


def _standin(src, dst):
    import subprocess
    import sys
    return subprocess.Popen([sys.executable, "-m", "syncengine", "rsync", "-rlptgocAXH",
                             "--delete", f"{src}/", str(dst)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _stop_in_a_shelter(proc, dst, signum):
    """Signal the run once a shelter is in DST (and so files in it)."""
    import time
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and proc.poll() is None:
        with contextlib.suppress(OSError):
            shelters = [e for e in os.scandir(dst) if TEMP_NAME.match(os.fsencode(e.name))]
            if shelters and any(os.scandir(shelters[0].path)):
                break
        time.sleep(0.0005)
    assert proc.poll() is None, "the run ended before a shelter was seen"
    os.kill(proc.pid, signum)
    proc.wait(timeout=60)


def _real_files_complete(src, dst):
    """Every file under a real path (no temp name on the way) is whole."""
    checked = 0
    for root, dirs, names in os.walk(dst):
        dirs[:] = [d for d in dirs if not TEMP_NAME.match(os.fsencode(d))]
        for name in names:
            if TEMP_NAME.match(os.fsencode(name)):
                continue
            path = os.path.join(root, name)
            if os.path.islink(path):
                continue
            with open(path, "rb") as mine, open(os.path.join(src, os.path.relpath(path, dst)),
                                                "rb") as theirs:
                assert mine.read() == theirs.read(), path
            checked += 1
    return checked


@pytest.mark.slow
@pytest.mark.parametrize("signum", ["SIGKILL", "SIGTERM"])
def test_a_run_stopped_in_a_shelter_leaves_only_whole_files_under_real_names(tmp_path,
                                                                            signum):
    """Killed (SIGKILL) while a shelter fills, the run leaves it under its
    temp name, every file under a real name whole; stopped (SIGTERM), it
    gives the shelters their names first (as rsync's dirs would be, with
    what they hold: whole files), ending with 20.  A re-run makes rsync's
    tree either way."""
    import signal
    src, dst, ref = tmp_path / "src", tmp_path / "dst", tmp_path / "ref"
    make_tree(src, dirs=40, files=150)
    # A stop that lands before the walk completed any file (the writer's
    # files under way are removed, as temp files are) leaves no file under
    # a real name, rightly; the stop is made again then, until one lands
    # later (the SIGTERM case is about the files a shelter takes along).
    for _ in range(5):
        shutil.rmtree(dst, ignore_errors=True)
        proc = _standin(src, dst)
        _stop_in_a_shelter(proc, dst, getattr(signal, signum))
        whole = _real_files_complete(src, dst)
        left = [p.name for p in dst.iterdir() if TEMP_NAME.match(os.fsencode(p.name))]
        if signum == "SIGTERM":
            assert proc.returncode == 20 and left == []
        else:
            assert proc.returncode == -signal.SIGKILL and left
        if whole or signum == "SIGKILL":
            break
    assert whole > 0 or signum == "SIGKILL"
    again = _standin(src, dst)
    assert again.wait(timeout=120) == 0, again.stderr.read()
    assert run_rsync("-rlptgocAXH", "--delete", f"{src}/", str(ref)).returncode == 0
    assert no_link_times(dst) == no_link_times(ref)
    assert not [p for p in dst.rglob(".*")]


def test_a_writer_that_dies_before_it_notes_a_file_in_a_shelter(tmp_path, monkeypatch, sent):
    """Killed right after it made a file in a shelter (under the file's own
    name) and before noting it: the walk still writes that file whole."""
    src, dst, ref = tmp_path / "src", tmp_path / "dst", tmp_path / "ref"
    make_tree(src)
    run_pid = os.getpid()
    calls = []
    real = files_module.open_temp

    def dying(*args, **kw):
        made = real(*args, **kw)
        if os.getpid() != run_pid:
            calls.append(1)
            if len(calls) == 30:
                os._exit(9)
        return made
    for module in (files_module, pending_module):
        monkeypatch.setattr(module, "open_temp", dying)
    tree, lines = tree_sync(src, dst)
    assert tree.run() == 0 and lines == []
    assert run_rsync("-rlptgocAXH", "--delete", f"{src}/", str(ref)).returncode == 0
    assert no_link_times(dst) == no_link_times(ref)


def test_sources_that_share_a_dir_fill_it_one_after_the_other(tmp_path, sent):
    """Two sources with a dir of the same name: the first one's shelter is
    complete and named before the second goes into the dir."""
    import subprocess
    import sys
    for side in ("ours", "real"):
        (tmp_path / side).mkdir()
        for source in ("a", "b"):
            make_tree(tmp_path / side / source, dirs=2, files=30)
            os.utime(tmp_path / side / source / "big", ns=(PAST, PAST))
            os.utime(tmp_path / side / source, ns=(PAST, PAST))
    argv = ["-rlptgocAXH", "--delete", "a/", "b/", "out"]
    ours = subprocess.run([sys.executable, "-m", "syncengine", "rsync", *argv],
                          cwd=tmp_path / "ours", capture_output=True, check=False)
    real = run_rsync(*argv, cwd=tmp_path / "real")
    assert (ours.returncode, ours.stderr) == (real.returncode, real.stderr) == (0, b"")
    assert no_link_times(tmp_path / "ours" / "out") == no_link_times(tmp_path / "real" / "out")
