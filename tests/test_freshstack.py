"""A wide dir's loops run in a chunk of the frame stack of their own
(freshstack.py): on CPython 3.11-3.13 a loop whose calls cross a chunk's
end maps and unmaps one at every call (gh-142183), so how fast a dir was
copied depended on how deep in the tree it was."""

from __future__ import annotations

import os
import resource
import sys
import threading

from syncengine.treesync import freshstack
from syncengine.treesync import precheck as precheck_module
from syncengine.treesync import sync as sync_module
from syncengine.treesync.filters import FilterRules

CALLS = 2_000
DEPTHS = 300  # frames of _at below the loop: some 30 KiB, two chunks' ends and more


def _leaf(a: int, b: int) -> int:
    return a + b


def _loop(count: int) -> int:
    total = 0
    for i in range(count):
        total += _leaf(i, 1) + _leaf(1, i)
    return total


def _at(depth: int, run) -> int:
    return run() if depth == 0 else _at(depth - 1, run)


def _faults_by_depth(fresh: bool) -> dict[int, int]:
    """Minor page faults of CALLS rounds of the loop, run below each depth
    of recursion (a fresh chunk touches new pages: one a call, thrashing)."""
    faults: dict[int, int] = {}

    def measure() -> None:
        for depth in range(DEPTHS):
            before = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
            _at(depth, (lambda: freshstack.on_fresh_stack(_loop, CALLS)) if fresh
                else (lambda: _loop(CALLS)))
            faults[depth] = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - before
    thread = threading.Thread(target=measure)  # (a thread's stack starts empty)
    thread.start()
    thread.join()
    return faults


def test_a_loop_on_a_fresh_stack_crosses_no_chunk_end_at_any_depth():
    plain, fresh = _faults_by_depth(False), _faults_by_depth(True)
    thrashing = [depth for depth, count in plain.items() if count >= CALLS]
    if (3, 11) <= sys.version_info[:2] <= (3, 12):  # (3.13 has the fix in its later releases)
        assert thrashing, "the loop in place never crossed a chunk's end: the test sees nothing"
    assert max(fresh.values()) < CALLS // 10, (
        {depth: count for depth, count in fresh.items() if count >= CALLS // 10}, thrashing)


def _wide_tree(root) -> None:
    (root / "wide").mkdir(parents=True)
    (root / "small").mkdir()
    for i in range(freshstack.WIDE):
        (root / "wide" / f"f{i:03d}").write_bytes(b"x" * i)
    for i in range(3):
        (root / "small" / f"f{i}").write_bytes(b"y")


def test_the_walk_and_the_census_run_a_wide_dirs_loop_on_a_fresh_stack(tmp_path, monkeypatch):
    src, dst = tmp_path / "src", tmp_path / "dst"
    _wide_tree(src)
    fresh: list[tuple[str, bytes]] = []
    original = freshstack._call

    def recording(call, *args):
        rel = args[4] if call.__name__ == "_dir_entries" else args[1]  # (see their signatures)
        fresh.append((call.__name__, rel))
        return original(call, *args)
    monkeypatch.setattr(freshstack, "_call", recording)
    for _ in range(2):  # an initial copy, then a re-run (the precheck's share)
        lines: list[str] = []
        tree = sync_module.TreeSync([f"{src}/"], str(dst), delete=True,
                                    rules=FilterRules.from_excludes(()), out=lines.append,
                                    err=lines.append)
        assert tree.run() == 0, lines
        assert sorted(fresh) == [("_dir_entries", b"wide"), ("_scan", b"wide")]
        fresh.clear()
    assert sorted(os.listdir(dst / "wide")) == sorted(os.listdir(src / "wide"))


def test_the_precheck_worker_compares_a_wide_dirs_files_on_a_fresh_stack(tmp_path, monkeypatch):
    src = tmp_path / "src"
    _wide_tree(src)
    fresh: list[str] = []
    original = freshstack._call

    def recording(call, *args):
        fresh.append(args[2])
        return original(call, *args)
    monkeypatch.setattr(freshstack, "_call", recording)
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    worker = precheck_module._Worker(0, precheck_module._Claims(), lambda rel, is_dir: False,
                                     write_fd)
    src_fd = os.open(src, os.O_RDONLY | os.O_DIRECTORY)
    dst_fd = os.open(src, os.O_PATH | os.O_DIRECTORY)  # (its own copy: all in sync)
    try:
        worker.walk(src_fd, dst_fd, b".")
        worker.flush(wait=False)
    finally:
        os.close(src_fd)
        os.close(dst_fd)
        os.close(write_fd)
        os.close(read_fd)
    assert fresh == [b"wide"]
