"""Big files copied behind the walk (TreeSync._copy_behind): the result is
the same, dirs still get their mtime after the renames, and an abort
leaves no temp file."""

from __future__ import annotations

import os
import threading

from syncengine.treesync import files as files_module
from syncengine.treesync import model as model_module
from syncengine.treesync import pending as pending_module
from syncengine.treesync import sync as sync_module
from syncengine.treesync.transfer import WriteError
from tests.conftest import tree_sync
from tests.snapshot import snapshot

BIG = model_module.BEHIND_MIN + 12345
PAST = 1_600_000_000_123_456_789


def make_tree(root):
    for d in ("", "sub", "sub/deeper"):
        (root / d).mkdir(parents=True, exist_ok=True)
        for i in range(3):
            big = root / d / f"a_big{i}"
            big.write_bytes(bytes([i + 1]) * BIG)
            os.setxattr(big, b"user.n", b"%d" % i)
            os.chmod(big, 0o640)
            os.utime(big, ns=(PAST, PAST + i))
            small = root / d / f"small{i}"
            small.write_bytes(b"s" * (i + 10))
    for d in ("sub/deeper", "sub", ""):
        os.utime(root / d, ns=(PAST, PAST))


def test_big_files_are_copied_with_their_attributes_and_dir_mtimes(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    make_tree(src)
    tree, lines = tree_sync(src, dst)
    assert tree.run() == 0 and lines == []
    assert tree.stats.files_transferred == 18
    assert snapshot(dst) == snapshot(src)
    again, lines = tree_sync(src, dst)
    assert again.run() == 0 and lines == [] and again.stats.files_transferred == 0


def test_a_cancel_while_big_copies_are_pending_leaves_no_temp_file(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    make_tree(src)
    cancel = threading.Event()
    tree, lines = tree_sync(src, dst, cancel=cancel, on_progress=lambda stats: cancel.set())
    assert tree.run() == 20
    assert lines == ["rsync error: received SIGINT, SIGTERM, or SIGHUP (code 20)"]
    left = [p for p in dst.rglob("*")]
    assert not [p for p in left if p.name.startswith(".")]
    assert threading.active_count() == 1 or all(
        t.name != "syncengine-copy" for t in threading.enumerate())


def test_a_failed_copy_stops_the_copies_queued_after_it(tmp_path, monkeypatch):
    """A big file's copy fails fatally (no space): the copies queued after
    it stop at once (each checks between chunks) and leave no temp file."""
    import time
    src, dst = tmp_path / "src", tmp_path / "dst"
    make_tree(src)
    real_copy = pending_module.copy_data
    copies = []

    def copy(src_fd, dst_fd, size, check=None):
        if size < model_module.BEHIND_MIN:
            return real_copy(src_fd, dst_fd, size, check)
        copies.append(size)
        if len(copies) == 1:
            raise WriteError(28, "No space left on device")
        for _ in range(200):  # 10 s, unless stopped
            if check is not None:
                check()
            time.sleep(0.05)
        return size
    for module in (files_module, pending_module):
        monkeypatch.setattr(module, "copy_data", copy)
    tree, lines = tree_sync(src, dst)
    started = time.monotonic()
    assert tree.run() == 11
    assert time.monotonic() - started < 5
    assert lines[0].startswith('rsync: [receiver] write failed on "') and "a_big0" in lines[0]
    assert not [p for p in dst.rglob(".*")]


def test_a_fatal_error_completes_the_copies_before_it(tmp_path, monkeypatch):
    """A fatal error in the walk's own turn: the big files before it in
    rsync's order are written (their copies completed), as rsync would
    have written them before it got there."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    make_tree(src)
    tree, lines = tree_sync(src, dst)
    original = tree._dir

    def fatal_in_deeper(src_parent, name, *args, **kw):
        if name == b"deeper":
            raise sync_module.Fatal(11, "boom")
        return original(src_parent, name, *args, **kw)
    monkeypatch.setattr(tree, "_dir", fatal_in_deeper)
    assert tree.run() == 11
    for d in ("", "sub"):
        for i in range(3):
            assert (dst / d / f"a_big{i}").read_bytes() == bytes([i + 1]) * BIG
    assert not [p for p in dst.rglob(".*")]
