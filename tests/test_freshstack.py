"""The walks run every dir's loop at one depth of the frame stack, in a
chunk of it of their own (freshstack.py): on CPython 3.11-3.13 a loop
whose calls cross a chunk's end maps and unmaps one at every call
(gh-142183), so how fast a dir was copied depended on how deep in the
tree it was."""

from __future__ import annotations

import gc
import os
import resource
import sys
import threading
import weakref

import pytest

from syncengine.treesync import freshstack
from syncengine.treesync import precheck as precheck_module
from tests.conftest import tree_sync

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


def _minor_faults() -> int:
    return resource.getrusage(resource.RUSAGE_THREAD).ru_minflt


def _in_a_thread(measure) -> None:
    thread = threading.Thread(target=measure)  # (a thread's stack starts empty)
    thread.start()
    thread.join()


def _faults_by_depth(fresh: bool) -> dict[int, int]:
    """Minor page faults of CALLS rounds of the loop, run below each depth
    of recursion (a fresh chunk touches new pages: one a call, thrashing)."""
    faults: dict[int, int] = {}

    def measure() -> None:
        for depth in range(DEPTHS):
            before = _minor_faults()
            _at(depth, (lambda: freshstack.on_fresh_stack(_loop, CALLS)) if fresh
                else (lambda: _loop(CALLS)))
            faults[depth] = _minor_faults() - before
    _in_a_thread(measure)
    return faults


def test_a_loop_on_a_fresh_stack_crosses_no_chunk_end_at_any_depth():
    plain, fresh = _faults_by_depth(False), _faults_by_depth(True)
    thrashing = [depth for depth, count in plain.items() if count >= CALLS]
    if (3, 11) <= sys.version_info[:2] <= (3, 12):  # (3.13 has the fix in its later releases)
        assert thrashing, "the loop in place never crossed a chunk's end: the test sees nothing"
    assert max(fresh.values()) < CALLS // 10, (
        {depth: count for depth, count in fresh.items() if count >= CALLS // 10}, thrashing)


class Boom(Exception):
    pass


def _steps_faults() -> dict[int, int]:
    """The loop run by a step and by the step it yields (as a dir's and
    its subdir's), under descend called below each depth of recursion."""
    faults: dict[int, int] = {}

    def step(depth: int, below: bool):
        before = _minor_faults()
        _loop(CALLS)
        faults[depth] = max(faults.get(depth, 0), _minor_faults() - before)
        if below:
            yield step(depth, False)

    def measure() -> None:
        for depth in range(DEPTHS):
            _at(depth, lambda depth=depth: freshstack.descend(step(depth, True)))
    _in_a_thread(measure)
    return faults


def test_steps_run_their_loops_crossing_no_chunk_end_at_any_depth():
    faults = _steps_faults()
    assert sorted(faults) == list(range(DEPTHS))
    assert max(faults.values()) < CALLS // 10, {
        depth: count for depth, count in faults.items() if count >= CALLS // 10}


def test_a_walk_that_fails_holds_none_of_its_steps_once_the_error_is_handled():
    """Without a gc: the error's traceback must not keep the steps' frames
    (and what they hold: a run's fds, listings) alive."""
    class Held:
        pass
    held = []

    def step(depth: int):
        mine = Held()
        held.append(weakref.ref(mine))
        if depth == 3:
            raise Boom("deep")
        yield step(depth + 1)
    gc.disable()
    try:
        try:
            freshstack.descend(step(0))
        except Boom:
            pass
        assert len(held) == 4
        assert [ref() for ref in held] == [None] * 4
    finally:
        gc.enable()


# A tree of steps: each node is (name, what it does, children); what it does
# is "ok", "raise" (after its children) or "catch" (what a child raises).
TREE = ("top", "ok", [
    ("a", "ok", [("a1", "ok", []), ("a2", "raise", [])]),
    ("b", "catch", [("b1", "ok", [("b11", "raise", [])]), ("b2", "ok", [])]),
    ("c", "ok", [("c1", "ok", []), ("c2", "ok", [])]),
])


def _called(node, log: list[str]) -> None:
    """The reference: the tree walked by recursive calls."""
    name, does, children = node
    log.append("enter " + name)
    try:
        for child in children:
            try:
                _called(child, log)
            except Boom as exc:
                if does != "catch":
                    raise
                log.append(f"{name} caught {exc}")
        if does == "raise":
            raise Boom(name)
    finally:
        log.append("leave " + name)


def _stepped(node, log: list[str]):
    """The same walk as steps."""
    name, does, children = node
    log.append("enter " + name)
    try:
        for child in children:
            try:
                yield _stepped(child, log)
            except Boom as exc:
                if does != "catch":
                    raise
                log.append(f"{name} caught {exc}")
        if does == "raise":
            raise Boom(name)
    finally:
        log.append("leave " + name)


@pytest.mark.parametrize("tree", [TREE, TREE[2][1], TREE[2][2], ("solo", "raise", []),
                                  ("solo", "ok", [])], ids=["tree", "a", "b", "raises", "leaf"])
def test_steps_run_as_the_recursive_calls_they_stand_for(tree):
    called: list[str] = []
    stepped: list[str] = []
    outcomes = []
    for run in (lambda: _called(tree, called), lambda: freshstack.descend(_stepped(tree, stepped))):
        try:
            run()
            outcomes.append(None)
        except Boom as exc:
            outcomes.append(str(exc))
    assert stepped == called
    assert outcomes[0] == outcomes[1]
    assert len(called) >= 2


def test_a_step_yielding_what_is_no_step_ends_the_walk_and_closes_every_step():
    log: list[str] = []

    def step(name: str, below):
        try:
            yield below
        finally:
            log.append("closed " + name)
    with pytest.raises(TypeError):
        freshstack.descend(step("top", step("mid", 42)))
    assert log == ["closed mid", "closed top"]


def _deep_tree(root, depth: int) -> None:
    path = root
    for level in range(depth):
        path = path / f"d{level}"
        path.mkdir(parents=True)
        for i in range(3):
            (path / f"f{i}").write_bytes(b"x" * (level + i))


@pytest.fixture
def descents(monkeypatch) -> list[str]:
    """The first step's function of each walk descend runs from now on."""
    started: list[str] = []
    original = freshstack.on_fresh_stack

    def recording(call, *args):
        started.append(args[0].__qualname__)
        return original(call, *args)
    monkeypatch.setattr(freshstack, "on_fresh_stack", recording)
    return started


def test_the_census_and_the_walk_descend_once_a_run_whatever_the_depth(tmp_path, descents):
    src, dst = tmp_path / "src", tmp_path / "dst"
    _deep_tree(src, 40)
    for _ in range(2):  # an initial copy, then a re-run
        tree, lines = tree_sync(src, dst)
        assert tree.run() == 0, lines
        assert sorted(descents) == ["Census._listed", "DirWalk._dir"]
        descents.clear()
    deepest = "/".join(f"d{level}" for level in range(40))
    assert (dst / deepest / "f2").read_bytes() == b"x" * 41


def test_the_precheck_worker_descends_once_a_subtree(tmp_path, descents):
    src = tmp_path / "src"
    _deep_tree(src, 40)
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    worker = precheck_module._Worker(0, precheck_module._Claims(), lambda rel, is_dir: False,
                                     write_fd)
    src_fd = os.open(src, os.O_RDONLY | os.O_DIRECTORY)
    dst_fd = os.open(src, os.O_PATH | os.O_DIRECTORY)  # (its own copy: all in sync)
    sent = []
    worker._send = lambda rel, verdicts, last: sent.append((rel, last))
    try:
        worker.walk(src_fd, dst_fd, b".")
    finally:
        os.close(src_fd)
        os.close(dst_fd)
        os.close(write_fd)
        os.close(read_fd)
    assert descents == ["_Worker._dir"]
    # every dir's files were compared, parents first (the walk's order)
    assert [rel for rel, last in sent if last] == [b"."] + [
        b"/".join(b"d%d" % level for level in range(depth + 1)) for depth in range(40)]
