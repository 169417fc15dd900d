"""Bad input, table-driven, over the library API, every CLI command and the
rsync stand-in: each case gets one clear line and the right exit code (or
exception), changes nothing on disk (a snapshot with ctimes, before and
after), and no traceback reaches the user.

tests/test_cli.py already covers much of the CLI (unknown volumes, '..',
'a/b' and '' as volume names, missing or file roots, a destination that is
a file, empty and missing SRC/DST, click's usage errors); tests/test_backups.py
the facade's path and name checks.  This file adds what they do not.

What rsync does, and so what the stand-in does (checked against rsync
below): a destination inside the source is copied into once per run (the
list is built before anything is written, so the copy does not recurse; a
second run nests one level deeper); SRC equal to DST changes nothing; a
source inside the destination with --delete deletes the source itself
("file has vanished", exit 24); a fifo source is skipped; an empty SRC or
DST is a usage error (exit 1).  The friendlier ``sync`` command and the
library's ``sync()``/``start_sync()`` refuse overlapping trees, special
files and bad exclude rules up front (ValueError; exit 2 on the command
line); ``backup`` and ``restore`` refuse bad rules and unwritable roots
before any hook runs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import syncengine
from fixtures.treespec import build_tree
from syncengine import Backups, Layout, SyncError
from syncengine.cli.app import app
from tests.snapshot import diff_snapshots, snapshot

from .helpers import ctimes, lines, standin, t

TREE = [
    {"path": ".", "mode": 0o755, "mtime_ns": t(1)},
    {"path": "src/a", "content": "a\n", "mtime_ns": t(2)},
    {"path": "src/sub/b", "content": "b\n", "mtime_ns": t(3)},
    {"path": "src/sub", "type": "dir", "mtime_ns": t(4)},
    {"path": "src", "type": "dir", "mtime_ns": t(5)},
    {"path": "vols/main/data", "content": "volume data\n", "mtime_ns": t(6)},
    {"path": "vols/main", "type": "dir", "mtime_ns": t(7)},
    {"path": "vols", "type": "dir", "mtime_ns": t(8)},
    {"path": "bk/volumes/main/data", "content": "backed up\n", "mtime_ns": t(9)},
    {"path": "bk/volumes/main", "type": "dir", "mtime_ns": t(10)},
    {"path": "bk/volumes", "type": "dir", "mtime_ns": t(11)},
    {"path": "bk", "type": "dir", "mtime_ns": t(12)},
    {"path": "afile", "content": "a file\n", "mtime_ns": t(13)},
    {"path": "fifo", "type": "fifo", "mtime_ns": t(14)},
]


@pytest.fixture
def work(tmp_path, monkeypatch):
    build_tree(tmp_path, TREE)
    monkeypatch.chdir(tmp_path)
    for name in ("SYNCENGINE_ENGINE", "SYNCENGINE_VOLUMES_ROOT", "SYNCENGINE_BACKUP_ROOT"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


@pytest.fixture
def readonly(tmp_path):
    """A read-only filesystem (tmpfs mounted ro) holding an empty dir
    ``ro/inner``: even root cannot write there."""
    target = tmp_path / "ro"
    target.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(target)],
                          capture_output=True, text=True)
    if proc.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    (target / "inner").mkdir()
    os.utime(target / "inner", ns=(t(20), t(20)))
    subprocess.run(["mount", "-o", "remount,ro", str(target)], check=True)
    yield target
    subprocess.run(["umount", str(target)], capture_output=True)


def state(root: Path) -> tuple:
    return snapshot(root), ctimes(root)


def assert_unchanged(before: tuple, root: Path) -> None:
    after = state(root)
    assert diff_snapshots(before[0], after[0]) == [], "bad input changed the disk"
    assert before[1] == after[1], "bad input touched something (a ctime moved)"


# -- the library -------------------------------------------------------------------------------

ENGINES = ["python", pytest.param("rsync", marks=pytest.mark.rsync)]

# name: (call(work) -> None, the exception, its exit code or None, a fragment of its message)
LIBRARY = {
    "empty-src": (lambda w: syncengine.sync("", "out"), ValueError, None, "SRC must not be empty"),
    "empty-dst": (lambda w: syncengine.sync("src/", ""), ValueError, None,
                  "DST must not be empty"),
    "nul-in-src": (lambda w: syncengine.sync("sr\0c/", "out"), ValueError, None, "NUL"),
    "nul-in-dst": (lambda w: syncengine.sync("src/", "o\0ut"), ValueError, None, "NUL"),
    "fifo-source": (lambda w: syncengine.sync("fifo", "out"), ValueError, None, "is a fifo"),
    "dst-inside-src": (lambda w: syncengine.sync("src/", "src/copy"), ValueError, None,
                       "destination src/copy is inside source src/"),
    "dst-inside-src-no-slash": (lambda w: syncengine.sync("src", "src/sub"), ValueError, None,
                                "is inside source"),
    "src-inside-dst": (lambda w: syncengine.sync("src/sub/", "src"), ValueError, None,
                       "source src/sub/ is inside destination src"),
    "src-equals-dst": (lambda w: syncengine.sync("src/", "src"), ValueError, None,
                       "are the same directory"),
    "src-equals-dst-by-another-path": (lambda w: syncengine.sync("src/", f"{w}/src/sub/.."),
                                       ValueError, None, "are the same directory"),
    "broken-exclude-minus": (lambda w: syncengine.sync("src/", "out", {"exclude": ["- "]}),
                             ValueError, None, "bad exclude rule '- ': unexpected end of filter"),
    "broken-exclude-plus": (lambda w: syncengine.sync("src/", "out", {"exclude": ["x", "+ "]}),
                            ValueError, None, "bad exclude rule '+ '"),
    "unknown-option-key": (lambda w: syncengine.sync("src/", "out", {"exclud": ["x"]}),
                           ValueError, None, "exclud"),
    "missing-source": (lambda w: syncengine.sync("nope/", "out"), SyncError, 23,
                       "No such file or directory"),
    "destination-is-a-file": (lambda w: syncengine.sync("src/", "afile"), SyncError, 3,
                               "afile"),
}


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("case", sorted(LIBRARY))
def test_library_sync_refuses_bad_input(work, case, engine, monkeypatch):
    """The same exception and exit code with either engine; the message is
    one line; nothing changes."""
    monkeypatch.setenv("SYNCENGINE_ENGINE", engine)
    call, exc_type, code, fragment = LIBRARY[case]
    before = state(work)
    with pytest.raises(exc_type) as info:
        call(work)
    message = str(info.value)
    assert fragment in message
    assert "\n" not in message, "one line"
    if code is not None:
        assert info.value.exit_code == code
    assert_unchanged(before, work)


def test_library_relative_paths_are_relative_to_the_working_dir(work):
    result = syncengine.sync("src/", "out", engine="python")
    assert result.exit_code == 0
    assert diff_snapshots(snapshot(work / "src"), snapshot(work / "out")) == []


@pytest.mark.parametrize("case", ["bad-exclude", "backup-root-read-only", "volumes-root-read-only"])
def test_facade_refuses_before_any_hook(work, readonly, case):
    """Backups refuses bad options and unwritable destination roots before
    its pre hook runs, so nothing is stopped and nothing changes."""
    ran = []
    if case == "bad-exclude":
        layout = Layout(volumes_root=str(work / "vols"), backup_root=str(work / "bk"))
        backups = Backups.of_volumes("main", layout=layout, engine="python") \
            .set_options({"exclude": ["- "]})
        run, exc_type = backups.create_backup, ValueError
    elif case == "backup-root-read-only":
        layout = Layout(volumes_root=str(work / "vols"), backup_root=str(readonly / "inner"))
        backups = Backups.of_volumes("main", layout=layout, engine="python")
        run, exc_type = backups.create_backup, SyncError
    else:
        layout = Layout(volumes_root=str(readonly / "inner"), backup_root=str(work / "bk"))
        backups = Backups.of_volumes("main", layout=layout, engine="python")
        run, exc_type = backups.restore_backup, SyncError
    backups.set_pre_backup(lambda e: ran.append("pre")).set_pre_restore(lambda e: ran.append("pre"))
    before = state(work)
    with pytest.raises(exc_type) as info:
        run(_Effects())
    assert ran == [], "the pre hook must not run"
    assert "\n" not in str(info.value)
    if exc_type is SyncError:
        assert info.value.exit_code == 3 and "is not writable" in str(info.value)
    else:
        assert "bad exclude rule '- '" in str(info.value)
    assert_unchanged(before, work)


class _Effects:
    def get_data_version(self):
        return "1"

    def set_data_version(self, version):
        pass


# -- the command line ----------------------------------------------------------------------------

# name: (argv, a fragment of the one error line); every one exits 2.  (A NUL
# cannot reach a real command line, but a volume name with one is checked
# through CliRunner, for scripts that build argv lists.)
CLI = {
    "sync-fifo-source": (["sync", "fifo", "out"], "source fifo is a fifo"),
    "sync-dst-inside-src": (["sync", "src/", "src/copy"], "destination src/copy is inside source src/"),
    "sync-src-inside-dst": (["sync", "src/sub/", "src/"], "source src/sub/ is inside destination src/"),
    "sync-src-equals-dst": (["sync", "src/", "src/"], "are the same directory"),
    "sync-src-equals-dst-no-slash": (["sync", "src", "src"], "are the same directory"),
    "sync-broken-exclude": (["sync", "src/", "out", "--exclude", "- "],
                            "bad exclude rule '- ': unexpected end of filter rule"),
    "sync-broken-exclude-plus": (["sync", "src/", "out", "--exclude=+ "], "bad exclude rule '+ '"),
    "sync-dst-read-only": (["sync", "src/", "ro/inner"], "destination ro/inner is not writable"),
    "sync-dst-parent-read-only": (["sync", "src/", "ro/inner/new"],
                                  "destination's parent directory ro/inner is not writable"),
    "backup-broken-exclude": (["backup", "--volumes-root", "vols", "--backup-root", "bk",
                               "--exclude", "- "], "bad exclude rule '- '"),
    "backup-root-read-only": (["backup", "--volumes-root", "vols", "--backup-root", "ro/inner"],
                              "backup root"),
    "backup-volume-with-nul": (["backup", "ma\0in", "--volumes-root", "vols", "--backup-root", "bk"],
                               "invalid volume name"),
    "restore-broken-exclude": (["restore", "--volumes-root", "vols", "--backup-root", "bk",
                                "--exclude=+ "], "bad exclude rule '+ '"),
    "restore-volumes-root-read-only": (["restore", "--volumes-root", "ro/inner", "--backup-root",
                                        "bk"], "volumes root"),
    "restore-volume-with-nul": (["restore", "ma\0in", "--volumes-root", "vols", "--backup-root",
                                 "bk"], "invalid volume name"),
    "verify-broken-exclude": (["verify", "src/", "out", "--exclude=- "],
                              "unexpected end of filter rule"),
    "verify-fifo-source": (["verify", "fifo", "out"], "fifo"),
}

# Options click itself refuses: its usage message, exit 2.
CLICK_USAGE = [["sync", "src/", "out", "--bogus"], ["restore", "--bogus"], ["verify", "--bogus"],
               ["engines", "--bogus"], ["sync", "src/", "out", "--engine", "turbo"],
               ["backup", "--volumes-root"]]

# Cases that also run through the console script, in a real process.
AS_PROCESS = ["sync-dst-inside-src", "sync-broken-exclude", "sync-dst-read-only",
              "backup-root-read-only", "verify-fifo-source"]


def _needs_readonly(argv) -> bool:
    return any(str(a).startswith("ro/") for a in argv)


@pytest.mark.parametrize("case", sorted(CLI))
def test_cli_refuses_bad_input_with_one_line(work, case, request):
    argv, fragment = CLI[case]
    if _needs_readonly(argv):
        request.getfixturevalue("readonly")
    before = state(work)
    result = CliRunner().invoke(app, argv, catch_exceptions=False)
    assert result.exit_code == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [result.stderr.splitlines()[0]], "one line"
    assert result.stderr.startswith("syncengine: error: ") and fragment in result.stderr
    assert result.stdout == ""
    assert_unchanged(before, work)


@pytest.mark.parametrize("case", AS_PROCESS)
@pytest.mark.sampled(1)
def test_cli_refuses_bad_input_as_a_process(work, case, request):
    argv, fragment = CLI[case]
    if _needs_readonly(argv):
        request.getfixturevalue("readonly")
    before = state(work)
    proc = subprocess.run([sys.executable, "-m", "syncengine", *argv], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2
    assert len(proc.stderr.splitlines()) == 1, proc.stderr
    assert proc.stderr.startswith("syncengine: error: ") and fragment in proc.stderr
    assert proc.stdout == ""
    assert_unchanged(before, work)


@pytest.mark.parametrize("argv", CLICK_USAGE, ids=lambda a: "-".join(a))
def test_cli_usage_errors_are_one_line_and_exit_2(work, argv):
    before = state(work)
    result = CliRunner().invoke(app, argv, catch_exceptions=False)
    assert result.exit_code == 2
    assert "Traceback" not in result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith("syncengine: error: ")
    assert_unchanged(before, work)


def test_cli_relative_paths_work(work):
    result = CliRunner().invoke(app, ["sync", "src/", "out", "--engine", "python", "-q"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    assert diff_snapshots(snapshot(work / "src"), snapshot(work / "out")) == []


def test_restore_of_a_backup_without_a_data_version_is_not_an_error(work):
    """A backup without dataVersion.txt restores, and says so."""
    result = CliRunner().invoke(app, ["restore", "--volumes-root", "vols", "--backup-root", "bk",
                                      "--engine", "python"], catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    assert "data version: (none)" in result.stdout
    assert (work / "vols" / "main" / "data").read_text() == "backed up\n"


# -- the rsync stand-in, against rsync ----------------------------------------------------------

# name: (argv after the flags, a setup run before, the exit code rsync gives)
STANDIN = {
    "dst-inside-src": (["src/", "src/copy"], None, 0),
    "dst-inside-src-second-run": (["src/", "src/copy"], ["src/", "src/copy"], 0),
    "dst-inside-src-exists-empty": (["src/", "src/copy"], "mkdir", 0),
    "dst-inside-src-no-slash": (["src", "src/copy"], None, 0),
    "src-equals-dst": (["src/", "src/"], None, 0),
    "src-equals-parent-form": (["src", "."], None, 0),
    "src-inside-dst-deletes-the-source": (["src/sub/", "src/"], None, 24),
    "fifo-source": (["fifo", "out"], None, 0),
    "empty-source": (["", "out"], None, 1),
    "empty-destination": (["src/", ""], None, 1),
    "relative-paths": (["src/", "out"], None, 0),
}


@pytest.mark.rsync
@pytest.mark.parametrize("case", sorted(STANDIN))
@pytest.mark.sampled(2)
def test_standin_does_what_rsync_does(tmp_path, case):
    """Both on identical work dirs: the same exit code, lines and tree
    (the stand-in is rsync's drop-in, so it copies rsync even where rsync
    is harsh, as when --delete removes the source it reads)."""
    from tests.conftest import run_rsync
    tail, setup, code = STANDIN[case]
    results = {}
    for who in ("rsync", "ours"):
        root = tmp_path / who
        build_tree(root, [e for e in TREE if e["path"] != "fifo"] + [
            {"path": "fifo", "type": "fifo", "mtime_ns": t(14)}])
        argv = ["-rlptgocAXH", "--delete", "--no-inc-recursive"]
        if setup == "mkdir":
            (root / "src" / "copy").mkdir()
            os.utime(root / "src" / "copy", ns=(t(15), t(15)))
            os.utime(root / "src", ns=(t(5), t(5)))
        elif setup is not None:
            run = run_rsync if who == "rsync" else standin
            assert run(*argv, *setup, cwd=root).returncode == 0
        run = run_rsync if who == "rsync" else standin
        proc = run(*argv, *tail, cwd=root)
        results[who] = (proc.returncode, lines(proc.stdout),
                        lines(proc.stderr, (str(root), "ROOT")), _settled(snapshot(root)))
    assert results["ours"][:3] == results["rsync"][:3]
    assert results["ours"][0] == code
    assert diff_snapshots(results["rsync"][3], results["ours"][3]) == []
    if case == "src-inside-dst-deletes-the-source":
        assert not (tmp_path / "ours" / "src" / "sub").exists()  # as rsync does


def _settled(snap: dict) -> dict:
    """Dir times the run itself set ("now") compare as 0."""
    import time
    now = time.time_ns() - 120 * 1_000_000_000
    for rec in snap.values():
        if rec["mtime_ns"] > now:
            rec["mtime_ns"] = 0
    return snap
