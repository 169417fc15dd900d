"""Safety, round two: a backup that cannot destroy itself (issue 15).

Each test runs real processes: a backup of an unmounted (empty) volume, two
runs at once on one backup root, a planted dataVersion.txt, FIFOs swapped in
for source files, SIGKILL and Ctrl-C of a run that drives rsync, Ctrl-C
while the command starts, nothing to do, and volumes that are symlinks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fixtures.treespec import build_tree

from .helpers import t


def syncengine(*argv: str, env: dict[str, str] | None = None, timeout: float = 60
               ) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "syncengine", *argv], capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, timeout=timeout)


def syncengine_popen(*argv: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "syncengine", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})},
                            start_new_session=True)


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip()]


def processes_with(marker: str) -> list[int]:
    """Live processes (not zombies) whose command line mentions ``marker``,
    but for syncengine itself: the rsync processes a run started."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker.encode() in cmdline and b"syncengine" not in cmdline and state != "Z":
            found.append(int(entry))
    return found


def wait_until(check, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


@pytest.fixture
def roots(tmp_path):
    """A volumes root with two volumes and an empty backup root."""
    build_tree(tmp_path / "volumes", [
        {"path": "main/a", "content": "alpha", "mtime_ns": t(1)},
        {"path": "main/sub/b", "content": "beta", "mtime_ns": t(2)},
        {"path": "logs/l", "content": "log", "mtime_ns": t(3)},
    ])
    (tmp_path / "backup").mkdir()
    return tmp_path / "volumes", tmp_path / "backup"


def roots_args(roots) -> list[str]:
    return ["--volumes-root", str(roots[0]), "--backup-root", str(roots[1])]


# -- 5. rsync dies with syncengine ------------------------------------------------------------

@pytest.fixture
def slow_rsync_path(tmp_path, throttled_rsync):
    """A PATH whose rsync copies at 100 kB/s."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    os.symlink(throttled_rsync(100), bindir / "rsync")
    return f"{bindir}:{os.environ['PATH']}"


def test_sigkill_of_a_backup_kills_every_rsync_process(roots, slow_rsync_path):
    build_tree(roots[0] / "main", [{"path": "big", "size": 3_000_000, "seed": 5}])
    proc = syncengine_popen("backup", "main", *roots_args(roots), "--engine", "rsync",
                            env={"PATH": slow_rsync_path})
    marker = str(roots[0])
    assert wait_until(lambda: len(processes_with(marker)) >= 3, 20), "rsync never started"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    survivors = processes_with(marker)
    if not wait_until(lambda: not processes_with(marker), 10):
        for pid in processes_with(marker):
            os.kill(pid, signal.SIGKILL)
        pytest.fail(f"rsync processes outlived syncengine: {survivors}")
    # rsync's own cleanup ran (SIGTERM, not SIGKILL): no temp file is left.
    assert wait_until(lambda: not [p for p in (roots[1] / "volumes" / "main").iterdir()
                                   if p.name.startswith(".big.")], 5)


@pytest.mark.parametrize("delay", [0.0, 0.002, 0.01, 0.05, 0.3])
def test_ctrl_c_at_any_moment_of_an_rsync_sync_stops_rsync(tmp_path, slow_rsync_path, delay):
    build_tree(tmp_path / "src", [{"path": "big", "size": 3_000_000, "seed": 3}])
    proc = syncengine_popen("sync", f"{tmp_path}/src/", str(tmp_path / "dst"), "--engine",
                            "rsync", "--json", env={"PATH": slow_rsync_path})
    assert json.loads(proc.stdout.readline())["event"] == "sync_start"
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 20, err
    assert error_lines(err) == ["syncengine: error: interrupted"]
    assert json.loads(out.splitlines()[-1])["exit_code"] == 20
    marker = str(tmp_path / "src")
    if not wait_until(lambda: not processes_with(marker), 10):
        for pid in processes_with(marker):
            os.kill(pid, signal.SIGKILL)
        pytest.fail("rsync ran on after syncengine said 'interrupted'")


# -- 6. a signal while the command starts ---------------------------------------------------------

def _python_start_time() -> float:
    """How long this machine takes to start Python and exit (the slowest
    of three): before that a signal may find no Python code to handle it."""
    times = []
    for _ in range(3):
        started = time.monotonic()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        times.append(time.monotonic() - started)
    return max(times)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_while_the_command_starts_is_the_interrupted_line_and_exit_20(
        tmp_path, slow_rsync_path, signum):
    build_tree(tmp_path / "src", [{"path": "big", "size": 2_000_000, "seed": 3}])
    python_up = _python_start_time()
    outcomes = []
    for after in (0.03, 0.06, 0.1, 0.15, 0.2, 0.3):   # while Python imports click and the facade
        proc = syncengine_popen("sync", f"{tmp_path}/src/", str(tmp_path / "dst"), "--engine",
                                "rsync", env={"PATH": slow_rsync_path})
        time.sleep(python_up + after)
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=30)
        outcomes.append((after, proc.returncode, err))
    for after, code, err in outcomes:
        assert (code, error_lines(err)) == (20, ["syncengine: error: interrupted"]), \
            f"signal {python_up + after:.2f} s after the start: exit {code}, stderr {err!r}"
    assert wait_until(lambda: not processes_with(str(tmp_path / "src")), 10)


def test_a_signal_while_the_json_command_starts_still_ends_with_a_summary(tmp_path,
                                                                          slow_rsync_path):
    build_tree(tmp_path / "src", [{"path": "big", "size": 2_000_000, "seed": 3}])
    proc = syncengine_popen("sync", "--json", f"{tmp_path}/src/", str(tmp_path / "dst"),
                            "--engine", "rsync", env={"PATH": slow_rsync_path})
    time.sleep(_python_start_time() + 0.03)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert (proc.returncode, error_lines(err)) == (20, ["syncengine: error: interrupted"])
    assert json.loads(out.splitlines()[-1])["exit_code"] == 20
