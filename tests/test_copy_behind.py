"""Big files copied behind the walk (TreeSync._copy_behind): the result is
the same, dirs still get their mtime after the renames, and an abort
leaves no temp file."""

from __future__ import annotations

import os
import threading

from syncengine.treesync import sync as sync_module
from syncengine.treesync.filters import FilterRules
from tests.snapshot import snapshot

BIG = sync_module._BEHIND_MIN + 12345
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


def tree_sync(src, dst, **kw):
    lines = []
    tree = sync_module.TreeSync([f"{src}/"], str(dst), delete=True,
                                rules=FilterRules.from_excludes(()),
                                out=lines.append, err=lines.append, **kw)
    return tree, lines


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


def test_an_abort_does_not_wait_for_the_queued_copies(tmp_path, monkeypatch):
    """A fatal error while big copies are queued stops them at once (each
    copy checks between chunks) and removes their temp files."""
    import time
    src, dst = tmp_path / "src", tmp_path / "dst"
    make_tree(src)

    real_copy = sync_module.copy_data

    def slow_copy(src_fd, dst_fd, size, check=None):
        if size < sync_module._BEHIND_MIN:
            return real_copy(src_fd, dst_fd, size, check)
        for _ in range(200):  # 10 s, unless stopped
            if check is not None:
                check()
            time.sleep(0.05)
        return size
    monkeypatch.setattr(sync_module, "copy_data", slow_copy)
    tree, lines = tree_sync(src, dst)
    original = tree._dir

    def fatal_in_sub(src_parent, name, *args, **kw):
        if name == b"deeper":
            raise sync_module.Fatal(11, "boom")
        return original(src_parent, name, *args, **kw)
    monkeypatch.setattr(tree, "_dir", fatal_in_sub)
    started = time.monotonic()
    assert tree.run() == 11
    assert time.monotonic() - started < 5  # six queued copies would take 60 s
    assert not [p for p in dst.rglob(".*")]
