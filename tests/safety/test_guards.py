"""Safety, round two: a backup that cannot destroy itself (issue 15).

Each test runs real processes: a backup of an unmounted (empty) volume, two
runs at once on one backup root, a planted dataVersion.txt, FIFOs swapped in
for source files, SIGKILL and Ctrl-C of a run that drives rsync, Ctrl-C
while the command starts, nothing to do, and volumes that are symlinks."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import resource
import select
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path

import pytest

from fixtures.treespec import build_tree
from syncengine import Backups, FileEffects, Layout, SyncError
from syncengine.backups import EmptySourceError
from syncengine.rootlock import BackupRootBusy
from syncengine.treesync import faults
from tests.conftest import RecordingEffects
from tests.reference import reference_rsync
from tests.snapshot import diff_snapshots, snapshot

from .helpers import t

# Nearly every test here starts real commands and processes: the fast part
# (-m "not slow") runs a sample of them (tests/conftest.py).
pytestmark = pytest.mark.sampled(5)


def syncengine(*argv: str, env: dict[str, str] | None = None, timeout: float = 60
               ) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "syncengine", *argv], capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, timeout=timeout,
                          preexec_fn=_limit_memory)


def _limit_memory(above: int = 0) -> None:
    """A run that reads without end (/dev/zero) fails in the child, not the
    machine: 2 GiB more than ``above`` (the bytes mapped already)."""
    limit = above + (2 << 30)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _address_space() -> int:
    """This process's virtual memory size (bytes)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmSize in /proc/self/status")


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
        if marker.encode() in cmdline and b"-m\0syncengine\0" not in cmdline and state != "Z":
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


def back_up(roots, *volumes: str) -> None:
    """A backup (of every volume of ``roots`` unless named) made by the
    library in this process: the setup of a test whose subject is the run
    after it, without a command's start-up to pay for."""
    layout = Layout(volumes_root=str(roots[0]), backup_root=str(roots[1]))
    Backups.of_volumes(*(volumes or sorted(os.listdir(roots[0]))), layout=layout) \
        .create_backup(RecordingEffects())


def in_a_child(call, timeout: float = 20):
    """``call()`` in a forked child whose memory is capped: what it returns
    (through JSON).  What the test guards against may block or read without
    end; the child is killed when it does not answer within ``timeout``."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        status = 70
        try:
            os.close(read_end)
            _limit_memory(above=_address_space())
            os.write(write_end, json.dumps(call()).encode())
            status = 0
        except BaseException:
            traceback.print_exc()  # (to the test's captured stderr)
        finally:
            os._exit(status)
    os.close(write_end)
    chunks = []
    try:
        deadline = time.monotonic() + timeout
        while select.select([read_end], [], [], max(0.0, deadline - time.monotonic()))[0]:
            chunk = os.read(read_end, 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
        else:
            os.kill(pid, signal.SIGKILL)
            pytest.fail(f"the child did not finish within {timeout} s")
    finally:
        os.close(read_end)
        _, status = os.waitpid(pid, 0)
    assert status == 0 and chunks, \
        f"the child failed (exit {os.waitstatus_to_exitcode(status)}: see its stderr)"
    return json.loads(b"".join(chunks))


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


# Right at the job's start (before rsync exists), while rsync starts, and
# once rsync's processes run.
@pytest.mark.parametrize("moment", [0.0, 0.02, "rsync runs"])
def test_ctrl_c_at_any_moment_of_an_rsync_sync_stops_rsync(tmp_path, slow_rsync_path, moment):
    build_tree(tmp_path / "src", [{"path": "big", "size": 3_000_000, "seed": 3}])
    marker = str(tmp_path / "src")
    proc = syncengine_popen("sync", f"{tmp_path}/src/", str(tmp_path / "dst"), "--engine",
                            "rsync", "--json", env={"PATH": slow_rsync_path})
    assert json.loads(proc.stdout.readline())["event"] == "sync_start"
    if moment == "rsync runs":
        assert wait_until(lambda: len(processes_with(marker)) >= 3, 20), "rsync never started"
    else:
        time.sleep(moment)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 20, err
    assert error_lines(err) == ["syncengine: error: interrupted"]
    assert json.loads(out.splitlines()[-1])["exit_code"] == 20
    if not wait_until(lambda: not processes_with(marker), 10):
        for pid in processes_with(marker):
            os.kill(pid, signal.SIGKILL)
        pytest.fail("rsync ran on after syncengine said 'interrupted'")


# -- 6. a signal while the command starts ---------------------------------------------------------

@functools.cache
def _python_start_time() -> float:
    """How long this machine takes to start Python and exit (the slowest
    of three, measured once): before that a signal may find no Python code
    to handle it."""
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
    for after in (0.03, 0.1, 0.2):   # while Python imports click and the facade
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


# -- 1. an empty source (an unmounted volume) never wipes its copy ------------------------------

def _unmount(volume: Path) -> None:
    """What an unmounted volume looks like: its mount point, an empty dir."""
    os.rename(volume, volume.with_name(volume.name + ".away"))
    volume.mkdir()


def _config_with_marker_hooks(tmp_path: Path, roots, **extra: str) -> Path:
    """A config file whose every hook appends its name to tmp_path/hooks."""
    hooks = "\n".join(f'{name} = "echo {name} >> {tmp_path}/hooks"'
                      for name in ("pre_backup", "post_backup", "pre_restore", "post_restore"))
    lines = [f"{key} = {value}" for key, value in extra.items()]
    config = tmp_path / "c.toml"
    config.write_text("\n".join(lines) + f'\n[layout]\nvolumes_root = "{roots[0]}"\n'
                      f'backup_root = "{roots[1]}"\n[hooks]\n{hooks}\n')
    return config


@pytest.mark.parametrize("engine", ["python", "rsync"])
def test_a_backup_of_an_unmounted_volume_is_refused_and_deletes_nothing(
        tmp_path, roots, engine, rsync_required):
    config = _config_with_marker_hooks(tmp_path, roots)
    back_up(roots)
    _unmount(roots[0] / "main")
    before = snapshot(roots[1])
    proc = syncengine("backup", "--config", str(config), "--engine", engine)
    assert proc.returncode != 0
    [line] = error_lines(proc.stderr)
    assert line.startswith("syncengine: error: refusing to back up volume 'main': ")
    assert f"{roots[0]}/main/" in line and f"{roots[1]}/volumes/main/" in line
    assert "--allow-empty-source" in line
    assert diff_snapshots(before, snapshot(roots[1])) == [], "the backup changed"
    assert not (tmp_path / "hooks").exists(), "a hook ran"
    # An emptied volume goes through when the user says so.
    proc = syncengine("backup", "--config", str(config), "--engine", engine,
                      "--allow-empty-source")
    assert proc.returncode == 0, proc.stderr
    assert list((roots[1] / "volumes" / "main").iterdir()) == []


def test_a_restore_from_an_empty_backup_copy_is_refused(tmp_path, roots):
    back_up(roots)
    _unmount(roots[1] / "volumes" / "logs")
    before = snapshot(roots[0])
    proc = syncengine("restore", "logs", *roots_args(roots))
    assert proc.returncode != 0
    [line] = error_lines(proc.stderr)
    assert line.startswith("syncengine: error: refusing to restore volume 'logs': ")
    assert f"{roots[1]}/volumes/logs/" in line and f"{roots[0]}/logs/" in line
    assert diff_snapshots(before, snapshot(roots[0])) == []
    assert syncengine("restore", "logs", *roots_args(roots),
                      "--allow-empty-source").returncode == 0
    assert list((roots[0] / "logs").iterdir()) == []


def test_the_library_and_the_config_file_refuse_an_empty_source_unless_allowed(tmp_path, roots):
    layout = Layout(volumes_root=str(roots[0]), backup_root=str(roots[1]))
    Backups.of_volumes("main", layout=layout).create_backup(RecordingEffects())
    _unmount(roots[0] / "main")
    hooks: list[str] = []
    backups = Backups.of_volumes("main", layout=layout).set_pre_backup(
        lambda effects: hooks.append("pre_backup"))
    with pytest.raises(EmptySourceError, match="volume 'main'"):
        backups.create_backup(RecordingEffects())
    assert hooks == [] and (roots[1] / "volumes" / "main" / "a").exists()
    backups.set_allow_empty_source().create_backup(RecordingEffects())
    assert hooks == ["pre_backup"] and not (roots[1] / "volumes" / "main" / "a").exists()
    # The config file's key, and the refusal it turns off.
    (roots[0] / "main" / "a").write_text("back")
    Backups.of_volumes("main", layout=layout).create_backup(RecordingEffects())
    (roots[0] / "main" / "a").unlink()
    config = _config_with_marker_hooks(tmp_path, roots)
    assert syncengine("backup", "main", "--config", str(config)).returncode != 0
    config = _config_with_marker_hooks(tmp_path, roots, allow_empty_source="true")
    assert syncengine("backup", "main", "--config", str(config)).returncode == 0
    assert list((roots[1] / "volumes" / "main").iterdir()) == []


# -- 2. one run at a time per backup root -----------------------------------------------------------

def test_a_second_run_on_a_busy_backup_root_fails_at_once_and_a_killed_run_never_blocks(
        tmp_path, roots):
    hooks = (f'[hooks]\npre_backup = "touch {tmp_path}/started; sleep 60"\n')
    config = tmp_path / "c.toml"
    config.write_text(f'volumes = ["main"]\n[layout]\nvolumes_root = "{roots[0]}"\n'
                      f'backup_root = "{roots[1]}"\n{hooks}')
    back_up(roots, "main")
    first = syncengine_popen("backup", "--config", str(config))
    try:
        assert wait_until(lambda: (tmp_path / "started").exists(), 20), "the first run stalled"
        for argv in (["backup", "logs"], ["restore", "main"], ["backup", "-n", "logs"]):
            started = time.monotonic()
            proc = syncengine(*argv, *roots_args(roots), timeout=30)
            assert time.monotonic() - started < 10, "the second run waited"
            assert proc.returncode != 0, argv
            [line] = error_lines(proc.stderr)
            assert line.startswith(f"syncengine: error: backup root {roots[1]} is in use by "
                                   f"another run (pid {first.pid}: ")
            assert "syncengine backup --config" in line and "running since " in line
        assert not (roots[1] / "volumes" / "logs").exists()
    finally:
        os.killpg(first.pid, signal.SIGKILL)   # the run and its hook: no cleanup at all
        first.wait()
    proc = syncengine("backup", *roots_args(roots))
    assert proc.returncode == 0, proc.stderr
    assert (roots[1] / "volumes" / "logs" / "l").read_text() == "log"


def test_the_library_holds_the_lock_across_the_hooks_and_the_syncs(roots):
    layout = Layout(volumes_root=str(roots[0]), backup_root=str(roots[1]))
    inner: list[BaseException] = []

    def second_run(effects) -> None:
        for run in (lambda: Backups.of_volumes("logs", layout=layout).create_backup(effects),
                    lambda: Backups.of_volumes("main", layout=layout).restore_backup(effects)):
            try:
                run()
            except BackupRootBusy as exc:
                inner.append(exc)

    backups = Backups.of_volumes("main", layout=layout).set_post_backup(second_run)
    backups.create_backup(RecordingEffects())
    assert len(inner) == 2 and all(f"pid {os.getpid()}" in str(e) for e in inner)
    assert not (roots[1] / "volumes" / "logs").exists()
    # Held no longer: the next run goes ahead, and no file was left in the root.
    Backups.of_volumes("logs", layout=layout).create_backup(RecordingEffects())
    assert sorted(p.name for p in roots[1].iterdir()) == ["volumes"]


# -- 3. dataVersion.txt is a small regular file, or an error --------------------------------------

def _plant(path: Path, kind: str, secret: Path) -> None:
    if kind == "symlink to a secret":
        os.symlink(secret, path)
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "symlink to /dev/zero":
        os.symlink("/dev/zero", path)
    elif kind == "a huge file":
        with open(path, "wb") as f:
            f.truncate(1 << 30)
    elif kind == "a directory":
        path.mkdir()


PLANTED = ["symlink to a secret", "fifo", "symlink to /dev/zero", "a huge file", "a directory"]


@pytest.mark.parametrize("kind", PLANTED)
def test_a_planted_data_version_file_is_one_error_line_before_anything_runs(
        tmp_path, roots, kind):
    secret = tmp_path / "secret"
    secret.write_text("TOP-SECRET-PASSWORD")
    back_up(roots)
    _plant(roots[1] / "dataVersion.txt", kind, secret)
    (roots[0] / "main" / "a").write_text("changed since the backup")
    before = snapshot(roots[0])
    config = _config_with_marker_hooks(tmp_path, roots)
    proc = syncengine("restore", "--config", str(config), timeout=20)
    assert proc.returncode != 0
    [line] = error_lines(proc.stderr)
    assert line.startswith(f"syncengine: error: {roots[1]}/dataVersion.txt: ")
    assert "TOP-SECRET" not in proc.stdout + proc.stderr
    assert diff_snapshots(before, snapshot(roots[0])) == [] and not (tmp_path / "hooks").exists()


def _library_restore(layout: Layout) -> dict[str, object]:
    """What a restore and FileEffects make of dataVersion.txt: the value or
    the error, and what the effects were handed."""
    effects = RecordingEffects()
    outcome: dict[str, object] = {}
    for what, call in (("restore", lambda: Backups.of_volumes("main", layout=layout)
                                   .restore_backup(effects)),
                       ("file_effects", lambda: FileEffects(layout.data_version_path)
                                        .get_data_version())):
        try:
            outcome[what] = repr(call())
        except ValueError as exc:
            outcome[what] = type(exc).__name__ + ": " + str(exc)
    outcome["set_versions"] = effects.set_versions
    return outcome


@pytest.mark.parametrize("kind", PLANTED)
def test_the_library_never_hands_a_planted_data_version_on(tmp_path, roots, kind):
    secret = tmp_path / "secret"
    secret.write_text("TOP-SECRET-PASSWORD")
    layout = Layout(volumes_root=str(roots[0]), backup_root=str(roots[1]))
    Backups.of_volumes("main", layout=layout).create_backup(RecordingEffects("1.0"))
    os.unlink(roots[1] / "dataVersion.txt")
    _plant(roots[1] / "dataVersion.txt", kind, secret)
    # In a process of its own: what this guards against blocks or eats memory.
    outcome = in_a_child(lambda: _library_restore(layout))
    assert outcome["set_versions"] == []
    for what in ("restore", "file_effects"):
        assert outcome[what].startswith(f"DataVersionError: {roots[1]}/dataVersion.txt: ")
    assert "TOP-SECRET" not in json.dumps(outcome)


def test_a_regular_data_version_file_still_reads(tmp_path, roots):
    layout = Layout(volumes_root=str(roots[0]), backup_root=str(roots[1]))
    Backups.of_volumes("main", layout=layout).create_backup(RecordingEffects("2.5.1"))
    effects = RecordingEffects()
    Backups.of_volumes("main", layout=layout).restore_backup(effects)
    assert effects.set_versions == ["2.5.1"]


# -- 7. nothing to do is an error ---------------------------------------------------------------------

def test_a_backup_of_an_empty_volumes_root_is_an_error_and_writes_nothing(tmp_path):
    (tmp_path / "volumes").mkdir()
    (tmp_path / "backup").mkdir()
    proc = syncengine("backup", "--volumes-root", str(tmp_path / "volumes"), "--backup-root",
                      str(tmp_path / "backup"), "--data-version", "1.0")
    assert proc.returncode != 0
    [line] = error_lines(proc.stderr)
    assert line.startswith("syncengine: error: no volumes in volumes root ")
    assert list((tmp_path / "backup").iterdir()) == []


def test_a_restore_from_a_backup_without_volumes_is_an_error(tmp_path, roots):
    (roots[1] / "volumes").mkdir()
    before = snapshot(roots[0])
    proc = syncengine("restore", *roots_args(roots))
    assert proc.returncode != 0
    [line] = error_lines(proc.stderr)
    assert line.startswith("syncengine: error: no volumes in backup volumes directory ")
    assert diff_snapshots(before, snapshot(roots[0])) == []


def test_the_library_refuses_a_backup_or_restore_of_nothing(roots):
    layout = Layout(volumes_root=str(roots[0]), backup_root=str(roots[1]))
    with pytest.raises(ValueError, match="nothing to back up"):
        Backups(layout=layout).create_backup(RecordingEffects("1.0"))
    with pytest.raises(ValueError, match="nothing to restore"):
        Backups(layout=layout).restore_backup(RecordingEffects())
    assert list(roots[1].iterdir()) == []


# -- 8. a volume that is a symlink is named, not skipped silently -------------------------------------

def test_a_symlink_among_the_volumes_is_skipped_with_one_warning_each(tmp_path, roots):
    build_tree(tmp_path / "elsewhere", [{"path": "private", "content": "not a volume"}])
    os.symlink(tmp_path / "elsewhere", roots[0] / "link1")
    os.symlink("main", roots[0] / "link2")
    proc = syncengine("backup", *roots_args(roots))
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in error_lines(proc.stderr) if "warning" in line]
    assert warnings == [f"syncengine: warning: skipping {roots[0]}/{name}: a symlink is not "
                        "a volume (name the volume to follow it)" for name in ("link1", "link2")]
    assert sorted(p.name for p in (roots[1] / "volumes").iterdir()) == ["logs", "main"]
    # A restore says the same of a symlink in the backup.
    os.symlink(tmp_path / "elsewhere", roots[1] / "volumes" / "link3")
    proc = syncengine("restore", *roots_args(roots))
    assert proc.returncode == 0, proc.stderr
    assert f"syncengine: warning: skipping {roots[1]}/volumes/link3: a symlink" in proc.stderr
    assert not (roots[0] / "link3").exists()


# -- 4. a fifo swapped in for a source file never blocks a run ------------------------------------

def _swap_for_fifos(paths: list[Path]) -> None:
    for path in paths:
        fifo = path.with_name(f".fifo-{path.name}")
        os.mkfifo(fifo)
        os.rename(fifo, path)


def test_fifos_swapped_in_after_the_walk_are_skipped_not_waited_for(tmp_path):
    names = [f"f{i:02d}" for i in range(20)]
    build_tree(tmp_path / "src", [{"path": name, "content": name} for name in names])
    # The engine stalls after its second change to the destination (the
    # file list is built by then, few files or none are copied); once the
    # destination shows, the run is held still while every file becomes a
    # fifo.
    proc = syncengine_popen("rsync", "-rlptgocAXH", "--delete", f"{tmp_path}/src/",
                            str(tmp_path / "dst"),
                            env={"SYNCENGINE_STALL_AFTER": "2", "SYNCENGINE_STALL_SECONDS": "0.5"})
    assert wait_until(lambda: (tmp_path / "dst").exists(), 20)
    os.kill(proc.pid, signal.SIGSTOP)
    _swap_for_fifos([tmp_path / "src" / name for name in names])
    os.kill(proc.pid, signal.SIGCONT)
    try:
        out, err = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail("the run blocked opening a fifo")
    assert proc.returncode == 0, err
    # Each file was copied before the swap, or is reported as rsync reports
    # a fifo it lists.
    copied = sorted(p.name for p in (tmp_path / "dst").iterdir())
    assert out.splitlines() == [f'skipping non-regular file "{name}"'
                                for name in sorted(set(names) - set(copied))]
    assert len(copied) < len(names) / 2


def test_rsync_itself_blocks_on_a_fifo_swapped_in_for_a_source_file(tmp_path):
    """What rsync does (the Known difference): its sender, slowed so that
    "a_big" takes about half a second, opens "b" after it without
    O_NONBLOCK and waits there for a writer that never comes."""
    build_tree(tmp_path / "src", [{"path": "a_big", "size": 80_000, "seed": 1},
                                  {"path": "b", "content": "small"}])
    proc = subprocess.Popen([reference_rsync(), "-rlptgocAXH", "--delete", "--bwlimit=150",
                             f"{tmp_path}/src/", str(tmp_path / "dst")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        # "b" is listed, and "a_big" is on its way (its temp file shows): "b" is
        # opened next.
        assert wait_until(lambda: (tmp_path / "dst").exists() and any(
            p.name.startswith(".a_big.") for p in (tmp_path / "dst").iterdir()), 15)
        _swap_for_fifos([tmp_path / "src" / "b"])
        marker = str(tmp_path / "src")

        def blocked_in_a_fifo_open() -> bool:
            for pid in processes_with(marker):
                with contextlib.suppress(OSError):
                    if Path(f"/proc/{pid}/wchan").read_text() == "wait_for_partner":
                        return True
            return False
        assert wait_until(blocked_in_a_fifo_open, 15), "rsync did not block on the fifo"
        assert proc.poll() is None
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()


SWAPPER = """
import os, sys, time
root, stop = sys.argv[1], sys.argv[2]
names = sorted(os.listdir(root))
while not os.path.exists(stop):
    for name in names:                      # every file a fifo for a while...
        os.mkfifo(os.path.join(root, ".swap"))
        os.rename(os.path.join(root, ".swap"), os.path.join(root, name))
    time.sleep(0.02)
    for name in names:                      # ...and a file again
        with open(os.path.join(root, ".swap"), "w") as f:
            f.write(name)
        os.rename(os.path.join(root, ".swap"), os.path.join(root, name))
    time.sleep(0.02)
"""


def test_a_process_swapping_fifos_for_source_files_never_hangs_a_backup(tmp_path, roots):
    names = [f"f{i:02d}" for i in range(40)]
    build_tree(roots[0] / "swapped", [{"path": name, "content": name} for name in names])
    stop = tmp_path / "stop"
    swapper = subprocess.Popen([sys.executable, "-c", SWAPPER, str(roots[0] / "swapped"),
                                str(stop)])

    def backup(backup_root: Path) -> tuple[int, str]:
        layout = Layout(volumes_root=str(roots[0]), backup_root=str(backup_root))
        # A short pause after the run's listing (its second change to the
        # destination), as a slow disk would make: the swapper's chance to
        # turn files it listed into fifos before it opens them.
        faults.arm(2, stall=0.03)
        try:
            Backups.of_volumes("swapped", layout=layout, engine="python") \
                .create_backup(RecordingEffects())
        except SyncError as exc:
            return exc.exit_code, exc.stderr
        return 0, ""

    try:
        # Each backup a process of its own (forked: cheap enough for many
        # tries), into a new backup root (so that it opens every file it
        # listed, any of which may be a fifo by then).  Without the fix, most
        # runs hang.
        for run in range(8):
            backup_root = tmp_path / f"backup{run}"
            backup_root.mkdir()
            code, stderr = in_a_child(functools.partial(backup, backup_root), timeout=20)
            # (24: the swapper's ".swap" was listed, then gone)
            assert code in (0, 24), stderr
        assert swapper.poll() is None, "the swapper stopped"
    finally:
        stop.touch()
        swapper.wait(timeout=30)
