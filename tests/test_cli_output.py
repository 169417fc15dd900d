"""Output a person reads: one line per usage error, a header per sync
before its -i lines, skipped special files counted, the progress line
whole on a pipe, help that fits the command."""

from __future__ import annotations

import io
import os
import re
import socket
import subprocess
import sys

import pytest
from click.testing import CliRunner

from syncengine.cli.app import app
from syncengine.cli.display import ProgressDisplay
from tests.conftest import copy_sample_volumes

# Most tests here start the command as a process: the fast part (-m "not
# slow") runs a sample of them (tests/conftest.py).
pytestmark = pytest.mark.sampled(6)

ITEM_LINE = re.compile(r"^(?:[<>ch.][fdLDS][.+ cstpoguax?]{9}|\*deleting  ) \S")


def run(*args: str, **kw: object) -> subprocess.CompletedProcess[str]:
    """The installed entry point, as a shell runs it."""
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    return subprocess.run([sys.executable, "-m", "syncengine", *args], capture_output=True,
                          text=True, timeout=120, env=env, **kw)  # type: ignore[call-overload]


@pytest.fixture
def sample(tmp_path):
    return copy_sample_volumes(tmp_path / "volumes", tmp_path / "backup")


# -- usage errors ------------------------------------------------------------------------------

USAGE_ERRORS = [
    (["verify", "a", "b", "--ignore", "colour"], "Invalid value for '--ignore'"),
    (["sync"], "Missing argument 'SRC'"),
    (["bogus"], "No such command 'bogus'"),
    (["sync", "--nope", "a", "b"], "No such option '--nope'"),
    (["backup", "--backup-root", "/nonexistent"], "Missing option '--volumes-root'"),
    (["sync", "--engine", "perl", "a", "b"], "Invalid value for '--engine'"),
]


@pytest.mark.parametrize(("argv", "fragment"), USAGE_ERRORS, ids=[" ".join(a) for a, _ in USAGE_ERRORS])
def test_a_usage_error_is_one_line_and_exit_2(argv, fragment, tmp_path):
    proc = run(*argv, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stdout == ""
    (line,) = proc.stderr.splitlines()
    assert line.startswith("syncengine: error: ") and fragment in line
    command = "syncengine" if argv[0] == "bogus" else f"syncengine {argv[0]}"
    assert line.endswith(f" (see '{command} --help')")


def test_help_and_version_still_exit_0():
    assert run("sync", "--help").returncode == 0
    version = run("--version")
    assert version.returncode == 0 and version.stdout.startswith("syncengine, version ")
    bare = run()  # no command: the help, as click gives it, exit 2
    assert bare.returncode == 2 and bare.stderr.startswith("Usage: syncengine")


# -- -i with several syncs ----------------------------------------------------------------------

def test_itemized_lines_of_several_volumes_follow_a_header_each(sample):
    vols, bk = sample
    result = CliRunner().invoke(app, ["backup", "--volumes-root", str(vols), "--backup-root", str(bk),
                                      "--engine", "python", "-n", "-i"], catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    headers = [line for line in lines if not ITEM_LINE.match(line)]
    names = sorted(p.name for p in vols.iterdir() if p.is_dir())
    assert [h.split(":")[0] for h in headers] == [f"[{i}/2] {n}" for i, n in enumerate(names, 1)]
    for header, name in zip(headers, names, strict=True):
        assert header.endswith(f"{vols}/{name}/ -> {bk}/volumes/{name}/")
    # Each volume's lines come after its header: its root first (rsync's "./").
    for header in headers:
        assert lines[lines.index(header) + 1].endswith(" ./")
    main_items = lines[lines.index(headers[names.index("main")]) + 1:]
    assert any(line.endswith(" hello.txt") for line in main_items)


def test_one_sync_has_no_header(sample, tmp_path):
    vols, _ = sample
    result = CliRunner().invoke(app, ["sync", f"{vols}/main/", str(tmp_path / "copy"), "-n", "-i",
                                      "--engine", "python"], catch_exceptions=False)
    assert result.exit_code == 0
    assert result.stdout and all(ITEM_LINE.match(line) for line in result.stdout.splitlines())


# -- skipped special files -------------------------------------------------------------------

@pytest.fixture
def with_specials(tmp_path):
    src = tmp_path / "vols" / "main"
    src.mkdir(parents=True)
    (src / "file").write_text("data\n")
    os.mkfifo(src / "pipe")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(src / "sock"))
    return src


@pytest.mark.parametrize("engine", ["python", pytest.param("rsync", marks=pytest.mark.rsync)])
def test_the_summary_counts_skipped_special_files(with_specials, tmp_path, engine):
    src = with_specials
    synced = run("sync", f"{src}/", str(tmp_path / "copy"), "--engine", engine)
    assert synced.returncode == 0, synced.stderr
    assert synced.stderr.splitlines()[-1].startswith(
        "sync: 1 sync(s), 1 file(s) transferred, 2 special file(s) skipped, ")
    (tmp_path / "bk").mkdir()
    backed = run("backup", "--volumes-root", str(src.parent), "--backup-root", str(tmp_path / "bk"),
                 "--engine", engine)
    assert backed.returncode == 0, backed.stderr
    assert "1 file(s) transferred, 2 special file(s) skipped, " in backed.stderr.splitlines()[-1]
    plain = run("sync", f"{src}/file", str(tmp_path / "one"), "--engine", engine)
    assert "skipped" not in plain.stderr


# -- the progress line ---------------------------------------------------------------------------

def test_the_progress_line_is_whole_when_not_on_a_terminal(monkeypatch):
    monkeypatch.setenv("COLUMNS", "40")  # a terminal's width: no business of a pipe
    stream = io.StringIO()
    fixed, tail = "x" * 120, "some/dir/" + "n" * 100
    ProgressDisplay(stream, enabled=True).draw(fixed, tail, force=True)
    assert stream.getvalue() == f"\r{fixed}  {tail}"


def test_progress_to_a_pipe_shows_the_whole_current_name(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    name = "a-long-file-name-" + "x" * 120 + ".bin"
    (src / name).write_bytes(b"\0" * 200_000)
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    proc = subprocess.run([sys.executable, "-m", "syncengine", "sync", f"{src}/", str(tmp_path / "dst"),
                           "--engine", "python", "--progress"], capture_output=True, env=env, timeout=120)
    assert proc.returncode == 0
    drawn = [part for part in proc.stderr.decode().split("\r") if "ETA" in part]  # (\r kept: bytes)
    assert drawn and all(len(part.rstrip()) > 100 for part in drawn)
    assert any(part.rstrip().endswith(name) for part in drawn), drawn


# -- help -----------------------------------------------------------------------------------------

def test_sync_help_says_nothing_of_hooks_or_data_versions():
    sync_help = run("sync", "--help").stdout.lower()
    assert "hook" not in sync_help and "data version" not in sync_help
    backup_help = " ".join(run("backup", "--help").stdout.lower().split())
    assert "hooks do not run and no data version is written" in backup_help
