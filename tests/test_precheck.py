"""The re-run look-ahead (treesync/precheck.py): in-sync files are skipped,
everything else is handled as without it, and its workers never outlive
the run."""

from __future__ import annotations

import os

import pytest

from syncengine.treesync import sync as sync_module
from syncengine.treesync.filters import FilterRules
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


def run(src, dst, monkeypatch=None, counts=None):
    lines = []
    tree = sync_module.TreeSync([f"{src}/"], str(dst), delete=True,
                                rules=FilterRules.from_excludes(()),
                                out=lines.append, err=lines.append)
    if counts is not None:
        original = tree._in_sync

        def counting(*args):
            result = original(*args)
            counts[result] = counts.get(result, 0) + 1
            return result
        tree._in_sync = counting
    return tree.run(), lines


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


def test_rerun_fixes_what_differs_and_skips_the_rest(tmp_path):
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
    code, lines = run(src, dst, counts=counts)
    assert code == 0 and lines == []
    assert counts.get(True, 0) >= 55
    os.environ["SYNCENGINE_PRECHECK"] = "0"
    try:
        assert run(src, ref) == (0, [])
    finally:
        del os.environ["SYNCENGINE_PRECHECK"]
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
