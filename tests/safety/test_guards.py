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
