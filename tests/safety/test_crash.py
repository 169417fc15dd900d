"""Crash safety: the native engine killed at any point leaves a destination
that is sane, and the next run finishes the job exactly as rsync would.

Two ways to crash it:

- the crash hook (``syncengine/treesync/faults.py``): the engine exits
  (``os._exit(137)``, no cleanup) right after its N-th filesystem
  mutation.  Every N of the scenarios below is tried, in a forked child
  (cheap), and a few through the real command line with the environment
  variable ``SYNCENGINE_CRASH_AFTER``;
- real SIGKILLs of ``python -m syncengine rsync ...`` at random moments.

After each crash (see ``helpers.check_crash_state``): every path holds its
old content or its new one, never a mix; a file with new content has its
new attributes too; files and symlinks replaced by files or symlinks are
never missing (rename); the only other entries are temp names
``.<name>.XXXXXX``.  Then a rerun converges to exactly the tree real rsync
makes from the starting state (its ``--delete`` removes the temp files,
as rsync's would), and the run after that changes nothing: no mutation,
no ctime moved.  The source is never modified.

SIGTERM and SIGINT: the temp file is removed and the exit code is 20 with
rsync's line, as with rsync.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import time
from pathlib import Path

import pytest

from fixtures.treespec import build_tree
from syncengine.fsutil import atomic_write_text
from tests.snapshot import diff_snapshots, snapshot

from .helpers import (
    check_crash_state,
    copy_tree,
    count_mutations,
    ctimes,
    is_temp,
    lines,
    mutate_tree,
    native,
    native_forked,
    random_tree,
    rsync_tree,
    standin,
    standin_popen,
    t,
)

pytestmark = pytest.mark.rsync

ACL = "u::rw-,u:1234:r--,g::r--,m::r--,o::---"

SOURCE = [
    {"path": ".", "mode": 0o755, "mtime_ns": t(1)},
    {"path": "a.txt", "content": "alpha\n", "mode": 0o644, "mtime_ns": t(2),
     "xattrs": {"user.k": "v"}},
    {"path": "b.bin", "size": 70_000, "seed": 1, "mode": 0o600, "mtime_ns": t(3)},
    {"path": "big.bin", "size": 300_000, "seed": 2, "mode": 0o640, "mtime_ns": t(4)},
    {"path": "owned", "content": "owned by 1234\n", "uid": 1234, "gid": 5678, "mode": 0o4755,
     "mtime_ns": t(5)},
    {"path": "acl.txt", "content": "with an ACL\n", "mode": 0o644, "acl": ACL, "mtime_ns": t(6)},
    {"path": "link", "target": "a.txt", "mtime_ns": t(7)},
    {"path": "hard1", "content": "shared inode\n", "mode": 0o644, "mtime_ns": t(8)},
    {"path": "d/hard2", "link": "hard1"},
    {"path": "d/e.txt", "content": "eee\n", "mtime_ns": t(9)},
    {"path": "d/sub/f.txt", "size": 5000, "seed": 3, "mtime_ns": t(10)},
    {"path": "d/sub", "type": "dir", "mode": 0o750, "mtime_ns": t(11)},
    {"path": "d", "type": "dir", "mode": 0o2775, "default_acl": "u::rwx,g::r-x,o::---",
     "mtime_ns": t(12)},
    {"path": "swap_f2d/inner", "content": "now a dir\n", "mtime_ns": t(13)},
    {"path": "swap_f2d", "type": "dir", "mtime_ns": t(14)},
    {"path": "swap_d2f", "content": "now a file\n", "mtime_ns": t(15)},
    {"path": "swap_l2f", "content": "was a symlink\n", "mtime_ns": t(16)},
    {"path": "swap_f2l", "target": "a.txt", "mtime_ns": t(17)},
    {"path": "swap_d2l", "target": "d", "mtime_ns": t(18)},
    {"path": "swap_l2d/x", "content": "x\n", "mtime_ns": t(19)},
    {"path": "swap_l2d", "type": "dir", "mtime_ns": t(20)},
]

# An older copy of SOURCE: changed contents (same and other sizes), changed
# attributes only, a changed symlink, unlinked hard links, extra entries to
# delete (nested), and every type swap.
OLD_COPY = [
    {"path": ".", "mode": 0o700, "mtime_ns": t(30)},
    {"path": "a.txt", "content": "alpha, the old one\n", "mode": 0o600, "mtime_ns": t(31)},
    {"path": "b.bin", "size": 70_000, "seed": 9, "mode": 0o600, "mtime_ns": t(3)},
    {"path": "big.bin", "size": 300_000, "seed": 2, "mode": 0o600, "mtime_ns": t(32),
     "xattrs": {"user.stale": "1"}},
    {"path": "owned", "content": "owned by 1234\n", "mode": 0o755, "mtime_ns": t(5)},
    {"path": "acl.txt", "content": "with an ACL\n", "mode": 0o644, "mtime_ns": t(6)},
    {"path": "link", "target": "elsewhere", "mtime_ns": t(33)},
    {"path": "hard1", "content": "shared inode\n", "mode": 0o644, "mtime_ns": t(8)},
    {"path": "d/hard2", "content": "not linked yet\n", "mtime_ns": t(34)},
    {"path": "d/e.txt", "content": "eee\n", "mtime_ns": t(9)},
    {"path": "d/old.txt", "content": "to be deleted\n", "mtime_ns": t(35)},
    {"path": "d", "type": "dir", "mode": 0o755, "mtime_ns": t(36)},
    {"path": "gone/x/y/z.txt", "content": "deep\n", "mtime_ns": t(37)},
    {"path": "gone/x/w", "target": "../../a.txt", "mtime_ns": t(38)},
    {"path": "gone.txt", "content": "bye\n", "mtime_ns": t(39)},
    {"path": "swap_f2d", "content": "a file for now\n", "mtime_ns": t(40)},
    {"path": "swap_d2f/c1", "content": "1\n", "mtime_ns": t(41)},
    {"path": "swap_d2f/sub/c2", "content": "2\n", "mtime_ns": t(42)},
    {"path": "swap_l2f", "target": "a.txt", "mtime_ns": t(43)},
    {"path": "swap_f2l", "content": "a file for now\n", "mtime_ns": t(44)},
    {"path": "swap_d2l/c", "content": "c\n", "mtime_ns": t(45)},
    {"path": "swap_l2d", "target": "nowhere", "mtime_ns": t(46)},
]

SCENARIOS = {
    "initial-copy": None,      # DST does not exist yet
    "update-delete-swap": OLD_COPY,
}


class Scenario:
    """A built work dir: ``src`` and the starting ``dst`` (kept in
    ``template``), and what rsync makes of it."""

    def __init__(self, base: Path, dst_spec) -> None:
        self.base = base
        self.src = base / "src"
        self.template = base / "template"
        self.dst = base / "dst"
        build_tree(self.src, SOURCE)
        if dst_spec is not None:
            build_tree(self.template, dst_spec)
        self.src_before = snapshot(self.src)
        self.reset()
        self.old = snapshot(self.dst) if self.dst.exists() else {}
        proc = rsync_tree(f"{self.src}/", str(self.dst))
        assert proc.returncode == 0, proc.stderr
        self.rsync_result = snapshot(self.dst)
        self.reset()

    def reset(self) -> None:
        if self.dst.exists():
            shutil.rmtree(self.dst)
        if self.template.exists():
            copy_tree(self.template, self.dst)

    def args(self) -> tuple[list[bytes], bytes]:
        return [os.fsencode(self.src) + b"/"], os.fsencode(self.dst)


@pytest.fixture(scope="module", params=sorted(SCENARIOS))
def scenario(request, tmp_path_factory) -> Scenario:
    return Scenario(tmp_path_factory.mktemp(request.param), SCENARIOS[request.param])


def converge_and_settle(sc: Scenario, context: str) -> None:
    """Rerun after a crash: the tree rsync makes from the starting state,
    and what rsync itself does from the crashed state (its exit code and
    lines too); then a run that changes nothing."""
    sources, dest = sc.args()
    oracle = sc.base / "oracle"
    if sc.dst.exists():
        copy_tree(sc.dst, oracle)
    elif oracle.exists():
        shutil.rmtree(oracle)
    real = rsync_tree(f"{sc.src}/", str(oracle))
    code, out, err = native(sources, dest)
    where = f"{context}: rerun exit {code} {err}, rsync from the crashed state exit " \
            f"{real.returncode} {real.stderr!r}"
    assert code == real.returncode, where
    assert sorted(err) == sorted(lines(real.stderr, (str(oracle), str(sc.dst)))), where
    diff = diff_snapshots(sc.rsync_result, snapshot(sc.dst))
    assert not diff, f"{where}\nthe rerun differs from rsync's tree:\n" + "\n".join(diff[:30])
    assert diff_snapshots(snapshot(oracle), snapshot(sc.dst)) == [], where
    before = ctimes(sc.dst)
    code, mutations = count_mutations(sources, dest)
    assert mutations == 0, f"{context}: the run after the rerun changed things"
    assert ctimes(sc.dst) == before, f"{context}: ctimes moved on a run that had nothing to do"


@pytest.mark.slow
def test_every_crash_point_leaves_old_or_new_and_converges(scenario):
    sc = scenario
    sources, dest = sc.args()
    code, total = count_mutations(sources, dest)
    assert code == 0 and total > 20, (code, total)
    assert diff_snapshots(sc.rsync_result, snapshot(sc.dst)) == []
    tried = 0
    for n in range(1, total + 1):
        sc.reset()
        status = native_forked(sources, dest, crash_after=n)
        assert status == 137, f"crash point {n} of {total}: the child exited {status}"
        crashed = snapshot(sc.dst) if sc.dst.exists() else {}
        problems = check_crash_state(sc.old, sc.rsync_result, crashed)
        assert not problems, f"crash after mutation {n} of {total}:\n" + "\n".join(problems)
        converge_and_settle(sc, f"crash after mutation {n} of {total}")
        tried += 1
    # The last crash point is the last mutation: a run one further finishes.
    sc.reset()
    assert native_forked(sources, dest, crash_after=total + 1) == 0
    assert snapshot(sc.src) == sc.src_before, "the source changed"
    assert tried == total


@pytest.mark.slow
def test_crash_hook_through_the_command_line(scenario):
    """SYNCENGINE_CRASH_AFTER reaches the stand-in: it dies with 137 and
    leaves a temp file behind (no cleanup ran), and a rerun converges."""
    sc = scenario
    sources, dest = sc.args()
    sc.reset()
    _, total = count_mutations(sources, dest)
    sc.reset()
    # The first mutation that leaves a temp file (the root's mkdir and
    # attributes come first).
    first_temp = next(n for n in range(1, total) if _temp_after(sc, n))
    sc.reset()
    proc = standin("-rlptgocAXH", "--delete", f"{sc.src}/", str(sc.dst),
                   env={"SYNCENGINE_CRASH_AFTER": str(first_temp)})
    assert proc.returncode == 137, proc.stderr
    crashed = snapshot(sc.dst)
    leftovers = [rel for rel in crashed if is_temp(rel)]
    assert len(leftovers) == 1, leftovers
    assert not check_crash_state(sc.old, sc.rsync_result, crashed)
    converge_and_settle(sc, "after the command line's crash")
    assert not any(is_temp(rel) for rel in snapshot(sc.dst))


def _temp_after(sc: Scenario, n: int) -> bool:
    sc.reset()
    sources, dest = sc.args()
    native_forked(sources, dest, crash_after=n)
    return sc.dst.exists() and any(is_temp(rel) for rel in snapshot(sc.dst))


# -- real SIGKILLs ------------------------------------------------------------------------------

@pytest.mark.slow
def test_sigkill_at_random_moments(tmp_path):
    """A larger tree (files of 4 MB among a thousand small entries, updates,
    deletions, type swaps) synced by the stand-in, killed with SIGKILL at
    random moments of its run."""
    seed = int(os.environ.get("SYNCENGINE_SAFETY_SEED") or random.randrange(1 << 30))
    rng = random.Random(seed)
    build_tree(tmp_path, random_tree(rng, "src", 900, big_files=3))
    copy_tree(tmp_path / "src", tmp_path / "template")
    mutate_tree(rng, tmp_path / "template", 200, 1)
    src_before = snapshot(tmp_path / "src")
    old = snapshot(tmp_path / "template")
    copy_tree(tmp_path / "template", tmp_path / "dst")
    real = rsync_tree(f"{tmp_path}/src/", str(tmp_path / "dst"))
    expected = snapshot(tmp_path / "dst")

    argv = ["-rlptgocAXH", "--delete", "--no-inc-recursive", f"{tmp_path}/src/",
            str(tmp_path / "dst")]
    copy_tree(tmp_path / "template", tmp_path / "dst")
    started = time.monotonic()
    proc = standin(*argv)
    duration = time.monotonic() - started
    assert proc.returncode == real.returncode, proc.stderr

    kills = _kill_at_random_moments(
        rng, f"seed {seed}", argv, _window(0.1, duration), old, _Plain(tmp_path, expected),
        prepare=lambda: copy_tree(tmp_path / "template", tmp_path / "dst"))
    assert kills >= 3, "most runs should still be running when killed"
    assert snapshot(tmp_path / "src") == src_before, "the source changed"


@pytest.mark.slow
def test_sigkill_during_an_initial_copy(tmp_path):
    """The same, into a new destination: its small files are written by the
    writer process (treesync/writer.py), which dies with the run.  Every
    file is absent or complete; the only other entries are temp files (a
    few dozen at most) and new dirs still under a temp name (files in them
    have no real path yet); a re-run converges."""
    seed = int(os.environ.get("SYNCENGINE_SAFETY_SEED") or random.randrange(1 << 30))
    rng = random.Random(seed)
    build_tree(tmp_path, random_tree(rng, "src", 1500, big_files=2))
    real = rsync_tree(f"{tmp_path}/src/", str(tmp_path / "dst"))
    expected = snapshot(tmp_path / "dst")
    shutil.rmtree(tmp_path / "dst")
    argv = ["-rlptgocAXH", "--delete", "--no-inc-recursive", f"{tmp_path}/src/",
            str(tmp_path / "dst")]
    started = time.monotonic()
    proc = standin(*argv)
    duration = time.monotonic() - started
    assert proc.returncode == real.returncode, proc.stderr
    kills = _kill_at_random_moments(
        rng, f"seed {seed}", argv, _window(0.05, duration), {}, _Plain(tmp_path, expected),
        prepare=lambda: shutil.rmtree(tmp_path / "dst"), most_temps=100, shelters=True)
    assert kills >= 3, "most runs should still be running when killed"


def _window(start: float, duration: float) -> tuple[float, float]:
    """When to kill a run that took ``duration`` once: in the first 60% of
    its time after ``start`` (on this VM the same run takes from 0.16 to
    0.31 s: a faster one would often end before the kill)."""
    return start, max(start + 0.01, start + (duration - start) * 0.6)


def _kill_at_random_moments(rng: random.Random, seed: str, argv: list[str],
                            window: tuple[float, float], old: dict, sc: _Plain, *,
                            prepare, most_temps: int | None = None,
                            shelters: bool = False) -> int:
    """Six runs of the stand-in, each set up by ``prepare()`` and SIGKILLed
    at a random moment of ``window``: each leaves what a crash may leave
    (check_crash_state, at most ``most_temps`` temp files), and a re-run
    converges.  Returns how many were still running when killed."""
    kills = 0
    for _ in range(6):
        prepare()
        delay = rng.uniform(*window)
        child = standin_popen(*argv)
        time.sleep(delay)
        child.send_signal(signal.SIGKILL)
        child.communicate()
        kills += child.returncode == -signal.SIGKILL
        context = f"SIGKILL after {delay:.3f} s of {window[1]:.3f} s ({seed})"
        crashed = snapshot(sc.dst) if sc.dst.exists() else {}
        problems = check_crash_state(old, sc.rsync_result, crashed, shelters)
        assert not problems, context + ":\n" + "\n".join(problems[:30])
        if most_temps is not None:
            assert sum(is_temp(rel) for rel in crashed) <= most_temps, context
        converge_and_settle(sc, context)
    return kills


class _Plain:
    """The bits of Scenario that converge_and_settle needs."""

    def __init__(self, base: Path, expected: dict) -> None:
        self.base, self.src, self.dst, self.rsync_result = base, base / "src", base / "dst", expected

    def args(self) -> tuple[list[bytes], bytes]:
        return [os.fsencode(self.src) + b"/"], os.fsencode(self.dst)


# -- the facade's own file ----------------------------------------------------------------------

def test_data_version_crash_between_write_and_rename_keeps_the_old_file(tmp_path):
    """atomic_write_text killed after its data is written and synced but
    before the rename: the old dataVersion.txt is intact and the only
    leftover is its temp file."""
    target = tmp_path / "dataVersion.txt"
    target.write_text("1.0.0")
    pid = os.fork()
    if pid == 0:
        try:
            def die(*_args, **_kwargs):
                os._exit(137)
            os.replace = die  # the rename is the crash point (this child only)
            atomic_write_text(target, "2.0.0")
        finally:
            os._exit(3)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 137
    assert target.read_text() == "1.0.0"
    leftovers = sorted(p.name for p in tmp_path.iterdir() if p.name != "dataVersion.txt")
    assert len(leftovers) == 1 and leftovers[0].startswith(".dataVersion.txt.")
    assert (tmp_path / leftovers[0]).read_text() == "2.0.0"  # the data was complete
    atomic_write_text(target, "2.0.0")
    assert target.read_text() == "2.0.0"


# -- SIGTERM / SIGINT ---------------------------------------------------------------------------

@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
@pytest.mark.sampled(1, "stop signals")
def test_sigterm_and_sigint_remove_the_temp_file_and_exit_20_like_rsync(tmp_path, signum):
    src = tmp_path / "src"
    build_tree(src, [{"path": "a", "content": "small\n", "mtime_ns": t(1)},
                     {"path": "big", "size": 3_000_000, "seed": 1, "mtime_ns": t(2)},
                     {"path": ".", "mtime_ns": t(3)}])
    # rsync, slowed down so that the signal lands while it writes "big".
    real = _signal_rsync(tmp_path, signum)
    # The stand-in stalls right after the mutation that creates big's temp
    # file (counted on a probe run), and is signalled then.
    ours_dst = tmp_path / "ours"
    n = _first_mutation_with_temp_of(src, ours_dst, b"big")
    child = standin_popen("-rlptgocAXH", "--delete", f"{src}/", str(ours_dst),
                          env={"SYNCENGINE_STALL_AFTER": str(n),
                               "SYNCENGINE_STALL_SECONDS": "1.5"})
    deadline = time.monotonic() + 20
    while not any(p.name.startswith(".big.") for p in _entries(ours_dst)):
        assert time.monotonic() < deadline and child.poll() is None, "no temp file appeared"
        time.sleep(0.01)
    child.send_signal(signum)
    out, err = child.communicate(timeout=30)
    assert child.returncode == 20 == real.returncode
    assert sorted(p.name for p in _entries(ours_dst)) == ["a"], "the temp file must be removed"
    assert sorted(real.remaining) == ["a"]
    ours_lines = lines(err)
    assert ours_lines == ["rsync error: received SIGINT, SIGTERM, or SIGHUP (code 20)"]
    assert ours_lines[0] in real.lines
    assert out == b""


def _entries(path: Path) -> list[Path]:
    try:
        return list(path.iterdir())
    except FileNotFoundError:
        return []


def _first_mutation_with_temp_of(src: Path, dst: Path, name: bytes, premade: bool = False) -> int:
    """The first crash point at which a temp file of ``name`` exists (the
    one right after its creation): the engine's mutations, counted on a
    probe copy.  ``premade``: DST exists before the run (as the facade
    makes it)."""
    for n in range(1, 30):
        if dst.exists():
            shutil.rmtree(dst)
        if premade:
            dst.mkdir()
        native_forked([os.fsencode(src) + b"/"], os.fsencode(dst), crash_after=n)
        if any(p.name.startswith("." + name.decode() + ".") for p in _entries(dst)):
            shutil.rmtree(dst)
            return n
    raise AssertionError("no mutation leaves a temp file of " + name.decode())


class _SignalledRsync:
    def __init__(self, returncode: int, err: bytes, remaining: list[str]) -> None:
        self.returncode = returncode
        self.lines = lines(err)
        self.remaining = remaining


def _signal_rsync(tmp_path: Path, signum: int) -> _SignalledRsync:
    import subprocess

    from tests.reference import reference_rsync
    dst = tmp_path / "real"
    proc = subprocess.Popen([reference_rsync(), "-rlptgocAXH", "--delete", "--no-inc-recursive",
                             "--bwlimit=2000", f"{tmp_path}/src/", str(dst)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 20
    while not any(p.name.startswith(".big.") for p in _entries(dst)):
        assert time.monotonic() < deadline and proc.poll() is None, "rsync wrote no temp file"
        time.sleep(0.01)
    time.sleep(0.1)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=30)
    return _SignalledRsync(proc.returncode, err, [p.name for p in _entries(dst)])


@pytest.mark.parametrize("command", ["sync", "backup"])
@pytest.mark.sampled(1, "stop signals")
def test_sigterm_stops_the_friendly_commands_cleanly(tmp_path, command):
    """``syncengine sync`` and ``backup`` (native engine) take SIGTERM as
    Ctrl-C: the engine is cancelled, its temp file removed, one line, exit
    20 -- and the facade's post_backup would still run (it is in a finally)."""
    import subprocess
    import sys
    vols, bk = tmp_path / "vols", tmp_path / "bk"
    # (times in the past: the count of mutations must not depend on the clock)
    build_tree(vols / "main", [{"path": "a", "content": "small\n", "mtime_ns": t(1)},
                               {"path": "big", "size": 3_000_000, "seed": 1, "mtime_ns": t(2)},
                               {"path": ".", "mtime_ns": t(3)}])
    bk.mkdir()
    dst = bk / "volumes" / "main" if command == "backup" else bk / "main"
    argv = (["backup", "--volumes-root", str(vols), "--backup-root", str(bk)] if command == "backup"
            else ["sync", f"{vols}/main/", str(dst)])
    n = _first_mutation_with_temp_of(vols / "main", tmp_path / "probe", b"big",
                                     premade=command == "backup")
    env = dict(os.environ, SYNCENGINE_STALL_AFTER=str(n), SYNCENGINE_STALL_SECONDS="1.5")
    child = subprocess.Popen([sys.executable, "-m", "syncengine", *argv, "--engine", "python"],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 20
    while not any(p.name.startswith(".big.") for p in _entries(dst)):
        assert time.monotonic() < deadline and child.poll() is None, "no temp file appeared"
        time.sleep(0.01)
    child.send_signal(signal.SIGTERM)
    out, err = child.communicate(timeout=30)
    assert child.returncode == 20
    assert err.splitlines() == ["syncengine: error: interrupted"]
    # The signal came right after big's temp file was made: it is gone, and
    # so is big (the copy stops at its first chunk).
    assert sorted(p.name for p in _entries(dst)) == ["a"], "the temp file must be removed"


def test_a_signal_while_the_file_list_is_built_stops_before_any_write(tmp_path):
    """Cancelled during the census (a big tree's first phase): exit 20 with
    rsync's line, and the destination is not even created."""
    import threading

    from syncengine.treesync.filters import FilterRules
    from syncengine.treesync.sync import TreeSync
    build_tree(tmp_path / "src", [{"path": f"d{i}/f", "content": "x"} for i in range(20)])
    cancelled = threading.Event()
    cancelled.set()
    err: list[str] = []
    code = TreeSync([f"{tmp_path}/src/"], str(tmp_path / "dst"), delete=True,
                    rules=FilterRules.from_excludes(()), out=err.append, err=err.append,
                    cancel=cancelled).run()
    assert (code, err) == (20, ["rsync error: received SIGINT, SIGTERM, or SIGHUP (code 20)"])
    assert not (tmp_path / "dst").exists()
