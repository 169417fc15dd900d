"""The re-run look-ahead (treesync/precheck.py): in-sync files are skipped,
everything else is handled as without it, and its workers never outlive
the run."""

from __future__ import annotations

import os

import pytest

from syncengine.treesync import precheck as precheck_module
from syncengine.treesync import roots as roots_module
from syncengine.treesync import sync as sync_module
from syncengine.treesync.filters import FilterRules
from syncengine.treesync.model import Tuning
from syncengine.treesync.precheck import Precheck
from tests.snapshot import snapshot


def make_tree(root, dirs=3, files=20):
    for d in range(dirs):
        sub = root / f"d{d}"
        sub.mkdir(parents=True)
        for i in range(files):
            p = sub / f"f{i:03d}"
            p.write_bytes(bytes([i]) * (100 + i))
            os.utime(p, ns=(1_600_000_000_000_000_000, 1_600_000_000_000_000_000 + i))
    (root / "top").write_bytes(b"x" * 5000)
    os.setxattr(root / "d0" / "f001", b"user.k", b"v")


def run(src, dst, monkeypatch=None, counts=None, tuning=Tuning()):
    """One run; with ``counts``, how many files the precheck found in sync
    (True) or not (False)."""
    lines = []
    tree = sync_module.TreeSync([f"{src}/"], str(dst), delete=True,
                                rules=FilterRules.from_excludes(()),
                                out=lines.append, err=lines.append, tuning=tuning)
    if counts is not None:
        original = Precheck.verdict

        def counting(self, rel, name):
            result = original(self, rel, name)
            if (src / os.fsdecode(rel) / os.fsdecode(name)).is_file():
                counts[result is not None] = counts.get(result is not None, 0) + 1
            return result
        monkeypatch.setattr(Precheck, "verdict", counting)
    return tree.run(), lines


def _share(check, src, dst, rel=b"."):
    """The walk's side of one dir (as dirs.py asks for it): its share of
    the dir's files; returns the dir's names."""
    src_fd = os.open(src / os.fsdecode(rel), os.O_RDONLY | os.O_DIRECTORY)
    dst_fd = os.open(dst / os.fsdecode(rel), os.O_PATH | os.O_DIRECTORY)
    try:
        return check.share(rel, src_fd, dst_fd)
    finally:
        os.close(src_fd)
        os.close(dst_fd)


def test_verdicts_name_only_files_in_sync(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    make_tree(src)
    assert run(src, dst)[0] == 0
    (dst / "d1" / "f002").write_bytes(b"\x07" * 102)   # same size, other bytes
    os.utime(dst / "d1" / "f002", ns=(1_600_000_000_000_000_000,) * 2)
    os.utime(dst / "d1" / "f003", ns=(1_600_000_000_000_000_000,) * 2)  # other mtime
    os.chmod(dst / "d2" / "f004", 0o600)
    os.removexattr(dst / "d0" / "f001", b"user.k")
    import threading
    check = Precheck(os.fsencode(src), os.fsencode(dst), b".", lambda rel, is_dir: False,
                     threading.Event())
    try:
        got = {}
        for rel in (b".", b"d0", b"d1", b"d2"):
            names = [os.fsencode(n) for n in sorted(os.listdir(src / os.fsdecode(rel)))]
            got[rel] = {n for n in names if (src / os.fsdecode(rel) / os.fsdecode(n)).is_file()
                        and check.verdict(rel, n) is not None}
            check.end_dir(rel)
    finally:
        check.close()
    assert set(got[b"."]) == {b"top"}
    assert b"f001" not in got[b"d0"] and len(got[b"d0"]) == 19
    assert b"f002" not in got[b"d1"] and b"f003" not in got[b"d1"] and len(got[b"d1"]) == 18
    assert b"f004" not in got[b"d2"] and len(got[b"d2"]) == 19


def test_rerun_fixes_what_differs_and_skips_the_rest(tmp_path, monkeypatch):
    src, dst, ref = tmp_path / "src", tmp_path / "dst", tmp_path / "ref"
    make_tree(src)
    run(src, dst)
    run(src, ref)
    for root in (dst, ref):
        (root / "d1" / "f002").write_bytes(b"\x07" * 102)
        os.utime(root / "d1" / "f002", ns=(1_600_000_000_000_000_000, 1_600_000_000_000_000_002))
        os.chmod(root / "d2" / "f004", 0o600)
        (root / "d2" / "extra").write_bytes(b"gone")
    counts: dict = {}
    code, lines = run(src, dst, monkeypatch, counts=counts)
    assert code == 0 and lines == []
    assert counts == {True: 59, False: 2}  # all but d1/f002 and d2/f004
    assert run(src, ref, tuning=Tuning(precheck=False)) == (0, [])
    def files(root):  # (dir mtimes are compared in whole seconds: they may differ)
        return {k: v for k, v in snapshot(root).items() if v["type"] != "dir"}
    assert files(dst) == files(ref)
    assert snapshot(dst)[b"d1/f002"]["sha256"] == snapshot(src)[b"d1/f002"]["sha256"]


def test_workers_are_reaped(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    make_tree(src)
    run(src, dst)
    before = set(os.listdir("/proc/self/task"))
    run(src, dst)
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)
    assert set(os.listdir("/proc/self/task")) == before


def test_a_fifo_in_the_destination_does_not_block_the_workers(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    make_tree(src)
    run(src, dst)
    (dst / "d1" / "f005").unlink()
    os.mkfifo(dst / "d1" / "f005")
    assert run(src, dst)[0] == 0
    assert (dst / "d1" / "f005").read_bytes() == (src / "d1" / "f005").read_bytes()


def test_same_size_content_buffers_are_per_thread(tmp_path):
    """Two runs in two threads must not share read buffers: each thread's
    comparison sees only its own files (a shared buffer could make two
    different files compare equal)."""
    import threading

    from syncengine.treesync.transfer import same_size_content
    size = 3 << 20
    pairs = {}
    for name, same in (("same", True), ("differ", False)):
        a, b = tmp_path / f"{name}-a", tmp_path / f"{name}-b"
        data = os.urandom(size)
        a.write_bytes(data)
        b.write_bytes(data if same else data[:-1] + bytes([data[-1] ^ 1]))
        pairs[name] = (a, b, same)
    wrong = []

    def compare(name):
        a, b, same = pairs[name]
        fa, fb = os.open(a, os.O_RDONLY), os.open(b, os.O_RDONLY)
        try:
            for _ in range(30):
                if same_size_content(fa, fb, size) is not same:
                    wrong.append(name)
        finally:
            os.close(fa)
            os.close(fb)
    threads = [threading.Thread(target=compare, args=(n,)) for n in pairs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wrong == []


def test_files_with_two_names_in_the_destination_are_left_to_the_walk(tmp_path):
    """Two destination names of one inode: fixing the first in place
    changes the second, so the second must be looked at when its turn
    comes (as rsync does), not taken as in sync from before.  rsync leaves
    both names 0644: b's mode is set last, on the shared inode."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    dst.mkdir()
    for name, mode in (("a", 0o600), ("b", 0o644)):
        (src / name).write_bytes(b"same")
        os.chmod(src / name, mode)
        os.utime(src / name, ns=(1_600_000_000_000_000_000,) * 2)
    (dst / "a").write_bytes(b"same")
    os.link(dst / "a", dst / "b")
    os.chmod(dst / "a", 0o644)
    os.utime(dst / "a", ns=(1_600_000_000_000_000_000,) * 2)
    assert run(src, dst) == (0, [])
    assert os.stat(dst / "b").st_mode & 0o7777 == 0o644
    assert os.stat(dst / "a").st_ino == os.stat(dst / "b").st_ino


def test_every_file_gets_one_verdict_from_the_worker_or_the_walk(tmp_path):
    """Claims split each dir between the forked worker and the walk's own
    share; together they judge every file, big or small, wherever they
    meet."""
    import threading
    src, dst = tmp_path / "src", tmp_path / "dst"
    make_tree(src, dirs=4, files=37)
    for i in range(3):
        (src / "d2" / f"big{i}").write_bytes(os.urandom(3 << 20))
    assert run(src, dst)[0] == 0
    check = Precheck(os.fsencode(src), os.fsencode(dst), b".", lambda rel, is_dir: False,
                     threading.Event())
    try:
        for rel in (b".", b"d0", b"d1", b"d2", b"d3"):
            _share(check, src, dst, rel)
            names = sorted(os.fsencode(n) for n in os.listdir(src / os.fsdecode(rel)))
            for name in names:
                path = src / os.fsdecode(rel) / os.fsdecode(name)
                if path.is_file():
                    assert check.verdict(rel, name)[0] == path.stat().st_size, (rel, name)
            check.end_dir(rel)
    finally:
        check.close()


def test_the_walk_reads_the_workers_pipe_while_it_compares_its_share(tmp_path, monkeypatch):
    """In a wide dir the forked worker sends verdicts faster than the walk
    asks for them: unless the walk reads them while it compares its own
    share, the worker waits on a full pipe and the walk compares nearly
    the whole dir alone.  (A pipe of one page, and a slow walk: the worker
    must still judge most files.)"""
    import threading
    import time
    monkeypatch.setattr(precheck_module, "_PIPE_SIZE", 4096)
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    for i in range(2000):
        (src / f"f{i:05d}").write_bytes(b"x" * (i % 7))
    assert run(src, dst)[0] == 0
    check = Precheck(os.fsencode(src), os.fsencode(dst), b".", lambda rel, is_dir: False,
                     threading.Event())
    own_check = check.helper.check

    def slow_check(*args):
        time.sleep(0.0005)
        return own_check(*args)
    check.helper.check = slow_check  # (the walk's side only: the worker is forked)
    try:
        names = _share(check, src, dst)
        own = check.own[b"."]
        by_walk = sum(own.get(name) is not None for name in names)
        assert all(check.verdict(b".", name) is not None for name in names)
        assert by_walk < len(names) // 2, by_walk
    finally:
        check.close()


def test_the_worker_goes_on_while_the_walk_reads_nothing(tmp_path, monkeypatch):
    """The walk reads the worker's pipe only from its share of a dir on
    (before that comes the census of the whole tree): a worker that waited
    on a full pipe meanwhile left the walk most of a wide dir.  It queues
    its verdicts instead, and judges the whole dir before the walk reads a
    byte (a pipe of one page)."""
    import threading
    import time
    monkeypatch.setattr(precheck_module, "_PIPE_SIZE", 4096)
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    files = 2000
    for i in range(files):
        (src / f"f{i:05d}").write_bytes(b"x" * (i % 7))
    assert run(src, dst)[0] == 0
    check = Precheck(os.fsencode(src), os.fsencode(dst), b".", lambda rel, is_dir: False,
                     threading.Event())
    try:
        claims = check.helper.claims
        slot = claims.enter(b".", files)  # (the worker's slot: set up by it, or now)
        deadline = time.monotonic() + 10
        while claims.words[slot + 1] < files and time.monotonic() < deadline:
            time.sleep(0.01)
        assert claims.words[slot + 1] == files  # the worker took every file
        names = _share(check, src, dst)
        own = check.own.get(b".")  # (none when the worker's end of the dir was read first)
        assert own is None or not any(own.get(name) is not None for name in names)
        assert all(check.verdict(b".", name) is not None for name in names)
    finally:
        check.close()


def _tricky_tree(src):
    """Dirs whose names sort differently as bytes and as paths ("a" and
    "a.b", "a/x" between them), each with a few files."""
    for rel in ("a", "a/x", "a/x/y", "a.b", "a-b", "a0", "b", "b/a", "b/a.b", "b/a/c"):
        (src / rel).mkdir(parents=True)
        for i in range(3):
            (src / rel / f"f{i}").write_bytes(b"%d" % i)


def test_the_worker_goes_through_dirs_in_the_walks_order(tmp_path, monkeypatch):
    """The worker's verdicts come dir by dir in the order the walk asks for
    them -- the order of the paths' parts (_place) -- so that a batch for a
    dir before the walk's is one the walk no longer needs."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    _tricky_tree(src)
    assert run(src, dst)[0] == 0
    shared = []
    original = Precheck.share

    def recording(self, rel, src_fd, dst_fd):
        shared.append(rel)
        return original(self, rel, src_fd, dst_fd)
    monkeypatch.setattr(Precheck, "share", recording)
    assert run(src, dst)[0] == 0
    read_fd, write_fd = os.pipe()
    worker = precheck_module._Worker(0, precheck_module._Claims(), lambda rel, is_dir: False,
                                     write_fd)
    src_fd = os.open(src, os.O_RDONLY | os.O_DIRECTORY)
    dst_fd = os.open(dst, os.O_PATH | os.O_DIRECTORY)
    try:
        worker.walk(src_fd, dst_fd, b".")
    finally:
        os.close(src_fd)
        os.close(dst_fd)
        os.close(write_fd)
    with os.fdopen(read_fd, "rb") as pipe:
        stream = pipe.read()
    ended = []
    head = precheck_module._HEAD
    while stream:
        size, done, length = head.unpack_from(stream)
        if done:
            ended.append(stream[head.size:head.size + length])
        stream = stream[head.size + size:]
    assert ended == shared
    assert shared == sorted(shared, key=precheck_module._place)
    assert shared.index(b"a/x/y") < shared.index(b"a-b") < shared.index(b"a.b")


def test_a_dir_the_worker_has_judged_is_not_compared_again(tmp_path, monkeypatch):
    """The claims table is small: by the time the walk gets to a dir the
    worker judged long before, the dir's slot may hold another dir's
    claims, and the walk compared the whole dir again.  It first looks
    for the dir's end among the worker's verdicts.  (One slot for every
    dir; the worker has finished before the walk starts.)"""
    import threading
    monkeypatch.setattr(precheck_module._Claims, "_SLOTS", 1)
    src, dst = tmp_path / "src", tmp_path / "dst"
    make_tree(src, dirs=20, files=10)
    assert run(src, dst)[0] == 0
    check = Precheck(os.fsencode(src), os.fsencode(dst), b".", lambda rel, is_dir: False,
                     threading.Event())
    compared = []
    own_check = check.helper.check
    check.helper.check = lambda *args: compared.append(args[2]) or own_check(*args)
    try:
        assert os.waitpid(check.pids[0], 0)[1] == 0  # (its verdicts fit in the pipe)
        for rel in [b"."] + sorted(b"d%d" % d for d in range(20)):  # (the walk's order)
            names = _share(check, src, dst, rel)
            assert names == sorted(os.fsencode(n) for n in os.listdir(src / os.fsdecode(rel)))
            for name in names:
                if (src / os.fsdecode(rel) / os.fsdecode(name)).is_file():
                    assert check.verdict(rel, name) is not None, (rel, name)
            check.end_dir(rel)
        assert compared == []
    finally:
        check.close()


def _with_a_worker_that_sent(src, dst, stream_file):
    """A Precheck whose worker has sent what a worker walking the whole
    tree sends (walked here, before: its stream read at once)."""
    import threading
    fd = os.open(stream_file, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    src_fd = os.open(src, os.O_RDONLY | os.O_DIRECTORY)
    dst_fd = os.open(dst, os.O_PATH | os.O_DIRECTORY)
    try:
        precheck_module._Worker(0, precheck_module._Claims(), lambda rel, is_dir: False,
                                fd).walk(src_fd, dst_fd, b".")
        stream = os.pread(fd, os.fstat(fd).st_size, 0)
    finally:
        for each in (fd, src_fd, dst_fd):
            os.close(each)
    check = Precheck(os.fsencode(src), os.fsencode(dst), b".", lambda rel, is_dir: False,
                     threading.Event(), workers=False)
    check.fds.append(-1)
    check.buffers.append(bytearray(stream))
    check.dirs.append({})
    return check


def test_verdicts_for_dirs_the_walk_has_passed_are_dropped(tmp_path):
    """The walk is in d3; the worker's verdicts on the dirs before it (the
    walk judged those itself) are read and dropped, not kept; d3's are
    the walk's."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    make_tree(src, dirs=6, files=10)
    assert run(src, dst)[0] == 0
    check = _with_a_worker_that_sent(src, dst, tmp_path / "stream")
    try:
        names = _share(check, src, dst, b"d3")
        assert b"d3" not in check.own  # (the worker's end of d3 was there: no share)
        assert all(check.verdict(b"d3", name) is not None for name in names)
        assert set(check.dirs[0]) == {b"d3"}
    finally:
        check.close()


@pytest.mark.parametrize("unpacked", [False, True], ids=["packed", "unpacked"])
def test_a_dir_the_worker_left_out_is_shared_by_the_walk(tmp_path, unpacked):
    """A worker that could not open a dir says so with the dir's end; that
    end is no verdict on its files: the walk compares them itself (whether
    the walk has unpacked that end already or not)."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    make_tree(src, dirs=3, files=10)
    assert run(src, dst)[0] == 0
    os.rename(dst / "d1", tmp_path / "d1")  # (gone while the worker walks)
    check = _with_a_worker_that_sent(src, dst, tmp_path / "stream")
    os.rename(tmp_path / "d1", dst / "d1")
    try:
        for rel in (b".", b"d0", b"d1"):
            if unpacked and rel == b"d1":
                while b"d1" not in check.dirs[0]:
                    assert check._unpack(0) is not None
            names = _share(check, src, dst, rel)
            by_walk = check.own.get(rel)
            for name in names:
                if (src / os.fsdecode(rel) / os.fsdecode(name)).is_file():
                    assert check.verdict(rel, name) is not None, (rel, name)
            check.end_dir(rel)
        assert by_walk is not None and all(by_walk.get(name) is not None for name in names)
    finally:
        check.close()


def test_claims_cover_every_index_once_when_taken_in_turns():
    import random

    from syncengine.treesync.precheck import _Claims
    rng = random.Random(5)
    for files in (0, 1, 2, 7, 64):
        claims = _Claims()
        slot = claims.enter(b"d%d" % files, files)
        assert claims.enter(b"d%d" % files, files) == slot  # the second worker joins it
        taken = []
        active = [0, 1]
        while active:
            worker = rng.choice(active)
            index = claims.take(slot, worker)
            if index < 0:
                active.remove(worker)
            else:
                taken.append(index)
        assert sorted(taken) == list(range(files))


def test_claims_taken_at_once_by_two_processes_end_only_where_they_meet():
    """Two processes take from one slot as fast as they can: the forked one
    is told the dir is done only once the pointers have met -- when it is,
    nothing is left to take.  (struct.pack_into zeroed a pointer's bytes
    before writing them: the front worker read a back of 0 and gave up
    after a few thousand of 300,000 files, every time, and the walk
    compared the rest alone.)"""
    from syncengine.treesync.precheck import _Claims
    files = 300_000
    claims = _Claims()
    slot = claims.enter(b"wide", files)
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the forked worker's side
        code = 1
        try:
            os.close(read_fd)
            count = 0
            while claims.take(slot, 0) >= 0:
                count += 1
            os.write(write_fd, b"%d %d" % (count, claims.take(slot, 0)))
            code = 0
        finally:
            os._exit(code)
    os.close(write_fd)
    assert claims.enter(b"wide", files) == slot
    count = 0
    while claims.take(slot, 1) >= 0:
        count += 1
    with os.fdopen(read_fd, "rb") as pipe:
        forked_count, taken_after_the_end = map(int, pipe.read().split())
    assert os.waitpid(pid, 0)[1] == 0
    assert taken_after_the_end == -1
    # (where they meet, both may take the same file: never a file neither took)
    assert files <= forked_count + count <= files + 2


def test_an_index_past_the_list_is_ignored(tmp_path):
    """Two dirs in one slot, or listings that differ, can hand out an index
    past a worker's list: it ends that worker's share of the dir (no
    crash, no verdict made up)."""
    from syncengine.treesync import precheck as precheck_module

    class Stale(precheck_module._Claims):
        def take(self, offset, worker):  # (set up meanwhile for a dir of 50 files)
            return 49
    src, dst = tmp_path / "src", tmp_path / "dst"
    make_tree(src, dirs=1, files=3)
    assert run(src, dst)[0] == 0
    walk_side = precheck_module._Worker(1, Stale(), lambda rel, is_dir: False, -1)
    src_fd = os.open(src / "d0", os.O_RDONLY | os.O_DIRECTORY)
    dst_fd = os.open(dst / "d0", os.O_PATH | os.O_DIRECTORY)
    try:
        verdicts, names = walk_side.share(src_fd, dst_fd, b"d0", lambda: None)
    finally:
        os.close(src_fd)
        os.close(dst_fd)
    assert names == [b"f000", b"f001", b"f002"]
    assert [verdicts.get(name) for name in names] == [None, None, None]


def test_stalled_workers_are_given_up_on(tmp_path, monkeypatch):
    """A worker that says nothing for _STALL seconds is killed, and the
    walk does everything itself."""
    import threading
    import time

    from syncengine.treesync import precheck as precheck_module
    src, dst = tmp_path / "src", tmp_path / "dst"
    make_tree(src, dirs=1, files=3)
    assert run(src, dst)[0] == 0
    monkeypatch.setattr(precheck_module, "_STALL", 0.3)
    run_pid = os.getpid()
    original = precheck_module._Worker.check

    def stuck(self, *args):  # (in the forked worker only)
        if os.getpid() != run_pid:
            time.sleep(30)
        return original(self, *args)
    monkeypatch.setattr(precheck_module._Worker, "check", stuck)
    started = time.monotonic()
    check = Precheck(os.fsencode(src), os.fsencode(dst), b".", lambda rel, is_dir: False,
                     threading.Event())
    try:
        assert check.verdict(b"d0", b"f000") is None
        assert time.monotonic() - started < 5
        assert check.pids == []  # killed and reaped
        assert check.verdict(b"d0", b"f001") is None
    finally:
        check.close()
    assert run(src, dst) == (0, [])


def test_a_long_compare_keeps_the_workers_alive(tmp_path, monkeypatch):
    """While a worker compares a big file it sends heartbeats: the walk
    waits for its verdict however long the file takes."""
    import threading
    import time

    from syncengine.treesync import precheck as precheck_module
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    (src / "big").write_bytes(os.urandom(1 << 20))
    assert run(src, dst)[0] == 0
    monkeypatch.setattr(precheck_module, "_STALL", 0.3)
    monkeypatch.setattr(precheck_module, "_HEARTBEAT", 0.05)

    def slow_compare(fd_a, fd_b, size, tick):
        for _ in range(20):  # a second of work, heartbeat by heartbeat
            time.sleep(0.05)
            tick()
        return True
    monkeypatch.setattr(precheck_module, "same_size_content", slow_compare)
    check = Precheck(os.fsencode(src), os.fsencode(dst), b".", lambda rel, is_dir: False,
                     threading.Event())
    try:
        assert check.verdict(b".", b"big")[0] == 1 << 20
    finally:
        check.close()


def test_with_one_cpu_no_worker_is_forked_and_the_walk_judges_every_file(tmp_path,
                                                                        monkeypatch):
    """On one CPU a worker would only take turns with the walk: none is
    forked, and the walk judges every file itself, in the precheck's few
    calls (its own share is then the whole dir) rather than _file's many."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    make_tree(src)
    assert run(src, dst)[0] == 0
    forked = []
    original_start = Precheck._start

    def start(self, *args):
        forked.append(args)
        return original_start(self, *args)
    monkeypatch.setattr(Precheck, "_start", start)
    monkeypatch.setattr(roots_module, "usable_cpus", lambda: 1)
    counts = {}
    assert run(src, dst, monkeypatch, counts) == (0, [])
    assert forked == []
    assert counts == {True: 3 * 20 + 1}  # (make_tree's files, all found in sync)
    monkeypatch.setattr(roots_module, "usable_cpus", lambda: 2)
    assert run(src, dst) == (0, [])
    assert len(forked) == 1  # with two CPUs it is forked


def test_a_file_changed_through_another_name_is_looked_at_again(tmp_path, monkeypatch):
    """On a filesystem that folds case the walk can change a file found in
    sync through another name of its dir (README and readme).  Once the
    walk has changed something in a dir, each file found in sync there is
    lstat-ed again and handled if it is no longer the file the worker saw.
    (The other name is played by a chmod made while the walk writes a; the
    folding filesystem by exact_names saying no.)"""
    from syncengine.treesync import dirs as dirs_module
    from syncengine.treesync import faults
    monkeypatch.setattr(dirs_module, "exact_names", lambda dir_fd, mounts: False)
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    for name in ("a", "b"):
        (src / name).write_bytes(b"same")
        os.chmod(src / name, 0o644)
        os.utime(src / name, ns=(1_600_000_000_000_000_000,) * 2)
    assert run(src, dst)[0] == 0
    (dst / "a").write_bytes(b"diff")  # (same size and mtime: only -c finds it)
    os.utime(dst / "a", ns=(1_600_000_000_000_000_000,) * 2)
    original = sync_module.TreeSync._file

    def file(self, src_parent, name, *args, **kw):
        original(self, src_parent, name, *args, **kw)
        if name == b"a":  # b changed through "another name", after its verdict
            os.chmod(dst / "b", 0o600)
            faults.mutated("chmod")
    monkeypatch.setattr(sync_module.TreeSync, "_file", file)
    assert run(src, dst) == (0, [])
    assert (dst / "a").read_bytes() == b"same"
    assert os.stat(dst / "b").st_mode & 0o7777 == 0o644


def test_where_names_are_exact_a_change_to_one_name_looks_at_no_other(tmp_path,
                                                                      monkeypatch):
    """Where names are exact bytes (no case folding), a transfer to one
    name cannot reach another file found in sync: after it, the walk takes
    the other verdicts as they are, with no lstat again (a wide dir's 1%
    changed re-run lstat-ed every file after the first change); where they
    may fold, it looks again."""
    from syncengine.treesync import dirs as dirs_module
    from syncengine.treesync import fs as fs_module
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    for name in ("a", "b", "c"):
        (src / name).write_bytes(b"same")
        os.utime(src / name, ns=(1_600_000_000_000_000_000,) * 2)
    assert run(src, dst)[0] == 0
    for exact, looked_again in ((True, 0), (False, 2)):
        (dst / "a").write_bytes(b"diff")  # (same size and mtime: only -c finds it)
        os.utime(dst / "a", ns=(1_600_000_000_000_000_000,) * 2)
        monkeypatch.setattr(dirs_module, "exact_names",
                            lambda dir_fd, mounts, exact=exact: exact)
        rechecks = []
        original = sync_module.TreeSync._recheck

        def recheck(self, *args, original=original, rechecks=rechecks):
            rechecks.append(args[2])
            return original(self, *args)
        monkeypatch.setattr(sync_module.TreeSync, "_recheck", recheck)
        counts = {}
        assert run(src, dst, monkeypatch, counts) == (0, [])
        assert counts == {True: 2, False: 1}
        assert len(rechecks) == looked_again, rechecks
        assert (dst / "a").read_bytes() == b"same"
    fd = os.open(tmp_path, os.O_PATH | os.O_DIRECTORY)
    try:
        on_this_fs = fs_module._fs_type(os.fstat(fd).st_dev, {})
        assert fs_module.exact_names(fd, {}) == (on_this_fs in fs_module._EXACT_FS)
        monkeypatch.setattr(fs_module, "_fs_type", lambda dev, mounts: b"vfat")
        assert not fs_module.exact_names(fd, {})  # (it folds case)
        monkeypatch.setattr(fs_module, "_fs_type", lambda dev, mounts: b"ext4")
        monkeypatch.setattr(fs_module, "_dir_flags", lambda path, dir_fd=None: 0x40000000)
        assert not fs_module.exact_names(fd, {})  # (chattr +F)
        monkeypatch.setattr(fs_module, "_dir_flags", lambda path, dir_fd=None: 0)
        assert fs_module.exact_names(fd, {})
    finally:
        os.close(fd)


def test_a_dir_the_worker_left_out_gets_no_verdicts(tmp_path):
    """The worker could not open a dir: it says so, and the walk asks
    nothing of it or below it (rather than read everything to the end)."""
    import threading
    check = Precheck(os.fsencode(tmp_path), os.fsencode(tmp_path), b".",
                     lambda rel, is_dir: False, threading.Event())
    try:
        check.skipped = {b"a/b"}
        assert check._skipped(b"a/b") and check._skipped(b"a/b/c/d")
        assert not check._skipped(b"a") and not check._skipped(b"a/bc")
    finally:
        check.close()
