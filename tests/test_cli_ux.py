"""The command line's experience: verify, --verify, JSON lines, the progress
line, -q, help texts and shell completion (CliRunner and subprocess)."""

from __future__ import annotations

import base64
import io
import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from fixtures.treespec import build_tree
from syncengine import Progress
from syncengine.cli.app import app
from syncengine.cli.display import ProgressDisplay
from syncengine.cli.guard import os_error_line
from syncengine.cli.output import Output
from tests.conftest import PAST_NS, copy_sample_volumes

REPO = Path(__file__).resolve().parent.parent
COMMANDS = ["backup", "restore", "sync", "verify", "engines", "rsync"]


# Most tests here start the command as a process: the fast part (-m "not
# slow") runs a sample of them (tests/conftest.py).
pytestmark = [pytest.mark.usefixtures("clean_env"), pytest.mark.sampled(8)]


@pytest.fixture
def sample(tmp_path):
    """fixtures/volumes with its times in the past, and an empty backup root."""
    vols, bk = tmp_path / "volumes", tmp_path / "backup"
    return copy_sample_volumes(vols, bk)


def invoke(*args: str, env: dict | None = None, **kw):
    return CliRunner().invoke(app, list(args), env=env, catch_exceptions=False, **kw)


def run(*args: str | bytes, env: dict | None = None, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "syncengine", *args], capture_output=True,
                          env=env, timeout=60, **kw)


def events(stdout: str | bytes) -> list[dict]:
    """Every stdout line is one JSON object; the last is the summary."""
    if isinstance(stdout, bytes):
        stdout = stdout.decode("utf-8")  # strict: the stream is valid UTF-8
    parsed = [json.loads(line) for line in stdout.splitlines()]
    assert parsed and parsed[-1]["event"] == "summary"
    return parsed


def error_lines(stderr: str) -> list[str]:
    assert "Traceback" not in stderr
    return [line for line in stderr.splitlines() if line.startswith("syncengine: ")]


# -- verify ----------------------------------------------------------------------------------

@pytest.fixture
def pair(sample, tmp_path):
    """A volume and an exact copy of it (made by the native engine)."""
    vols, _ = sample
    copy = tmp_path / "copy"
    assert invoke("sync", f"{vols}/main/", str(copy), "--engine", "python", "-q").exit_code == 0
    return vols / "main", copy


def test_verify_identical_trees_exits_0(pair):
    src, copy = pair
    result = invoke("verify", f"{src}/", str(copy))
    assert result.exit_code == 0
    assert result.stdout == ""
    assert re.fullmatch(r"verify: identical \(7 entries, 214 B compared in \d+\.\d\d s\)\n",
                        result.stderr)


def test_verify_prints_each_difference_on_one_line_and_exits_1(pair):
    src, copy = pair
    os.chmod(copy / "hello.txt", 0o600)
    (copy / "notes" / "ideas.md").unlink()
    os.utime(copy / "notes", ns=(PAST_NS, PAST_NS))
    proc = run("verify", f"{src}/", str(copy), text=True)
    assert proc.returncode == 1
    assert proc.stdout.splitlines() == ["hello.txt: mode differs: SRC 0644, DST 0600",
                                        "notes/ideas.md: only in SRC (file)"]
    assert proc.stderr.startswith("verify: 2 difference(s) (")
    # --exclude and --ignore take them out again; -q prints nothing at all.
    result = invoke("verify", f"{src}/", str(copy), "--exclude", "ideas.md", "--ignore", "mode")
    assert result.exit_code == 0
    quiet = invoke("verify", f"{src}/", str(copy), "-q")
    assert (quiet.exit_code, quiet.stdout, quiet.stderr) == (1, "", "")
    shown = invoke("verify", f"{src}/", str(copy), "--progress")
    bar, _, summary = shown.stderr.rpartition("\r")
    assert re.search(r"verify  \d+ entries  .* compared  \d+ differences", bar)
    assert summary.startswith("verify: 2 difference(s)")


def test_verify_json_carries_names_that_are_not_utf8(tmp_path):
    src, dst = os.fsencode(tmp_path / "src"), os.fsencode(tmp_path / "dst")
    build_tree(src, [{"path": ".", "mtime_ns": PAST_NS},
                     {"path": b"caf\xe9", "content": "x", "mtime_ns": PAST_NS}])
    build_tree(dst, [{"path": ".", "mtime_ns": PAST_NS}])
    proc = run("verify", src + b"/", dst, "--json")
    assert proc.returncode == 1
    stream = events(proc.stdout)
    assert {e["event"] for e in stream} <= {"progress", "difference", "summary"}
    (diff,) = [e for e in stream if e["event"] == "difference"]
    summary = stream[-1]
    assert diff["event"] == "difference" and diff["attribute"] == "missing"
    assert base64.b64decode(diff["path_b64"]) == b"caf\xe9"
    assert diff["path"] == "caf\ufffd" and diff["message"] == "caf\\xe9: only in SRC (file)"
    assert summary == {"event": "summary", "command": "verify", "exit_code": 1,
                       "differences": 1, "entries": 1, "bytes_compared": 0,
                       "duration": summary["duration"]}


def test_verify_bad_input_is_one_line_naming_the_path_and_the_cause(tmp_path):
    result = invoke("verify", f"{tmp_path}/nope/", str(tmp_path), "--json")
    assert result.exit_code == 2
    assert error_lines(result.stderr) == [
        f"syncengine: error: source {tmp_path}/nope/: No such file or directory"]
    assert events(result.stdout)[-1]["exit_code"] == 2
    assert os_error_line(PermissionError(13, "Permission denied", "/x/y")) == "/x/y: Permission denied"


@pytest.mark.rsync
def test_backup_verify_reports_a_mismatch_after_finishing_and_exits_1(sample):
    vols, bk = sample
    args = ["backup", "--volumes-root", str(vols), "--backup-root", str(bk), "--engine", "rsync"]
    result = invoke(*args, "--verify")
    assert result.exit_code == 0, result.output
    assert json.loads(invoke(*args, "--verify", "--json").stdout.splitlines()[-1])[
        "differences"] == 0
    # rsync leaves a directory whose mtime is off by less than a second
    # (rsync-semantics §10): a real mismatch after a successful sync.
    notes = bk / "volumes" / "main" / "notes"
    os.utime(notes, ns=(PAST_NS, PAST_NS + 100))
    result = invoke(*args, "--verify")
    assert result.exit_code == 1
    assert error_lines(result.stderr) == [
        f"syncengine: verify: {bk}/volumes/main/: notes: mtime differs: "
        "SRC 2020-09-13T12:26:40.123456789Z, DST 2020-09-13T12:26:40.123456889Z (DST +100 ns)",
        "syncengine: error: verify found 1 difference(s) between a copy and its source"]
    assert "backup: 2 sync(s)" in result.stderr  # it finished every volume
    as_json = events(invoke(*args, "--verify", "--json").stdout)
    assert [e["event"] for e in as_json].count("sync_end") == 2
    diff = next(e for e in as_json if e["event"] == "difference")
    assert (diff["path"], diff["attribute"], diff["index"]) == ("notes", "mtime", 2)
    assert as_json[-1]["exit_code"] == 1 and as_json[-1]["differences"] == 1


def test_sync_and_restore_verify_clean_copies(sample, tmp_path):
    vols, bk = sample
    result = invoke("sync", f"{vols}/main/", str(tmp_path / "o"), "--engine", "python",
                    "--verify", "--json")
    assert result.exit_code == 0
    assert events(result.stdout)[-1]["differences"] == 0
    roots = ["--volumes-root", str(vols), "--backup-root", str(bk), "--engine", "python"]
    assert invoke("backup", *roots).exit_code == 0
    original = (vols / "main" / "hello.txt").read_text()
    (vols / "main" / "hello.txt").write_text("changed")
    result = invoke("restore", *roots, "--verify")
    assert result.exit_code == 0, result.output
    assert (vols / "main" / "hello.txt").read_text() == original


# -- JSON lines ------------------------------------------------------------------------------

def test_sync_json_lines_carry_non_utf8_names_losslessly(tmp_path):
    src = os.fsencode(tmp_path) + b"/d\xe9p\xf4t"
    build_tree(src, [{"path": ".", "mtime_ns": PAST_NS},
                     {"path": b"na\xefve.bin", "size": 300_000, "seed": 1, "mtime_ns": PAST_NS},
                     {"path": "plain.txt", "content": "x", "mtime_ns": PAST_NS}])
    proc = run("sync", src + b"/", os.fsencode(tmp_path) + b"/out", "--engine", "python",
               "--json")
    assert proc.returncode == 0, proc.stderr
    stream = events(proc.stdout)
    kinds = [e["event"] for e in stream]
    assert kinds[0] == "sync_start" and kinds[-2:] == ["sync_end", "summary"]
    assert set(kinds) <= {"sync_start", "progress", "sync_end", "summary"}
    start = stream[0]
    assert base64.b64decode(start["src_b64"]) == src + b"/"
    assert start["src"] == os.fsencode(src + b"/").decode("utf-8", "replace")
    assert "dst_b64" not in start  # a valid UTF-8 name needs no second field
    for progress in (e for e in stream if e["event"] == "progress"):
        assert 0 <= progress["percent"] <= 100 and progress["bytes_total"] == 300_001
        if "current_b64" in progress:
            assert base64.b64decode(progress["current_b64"]) == b"na\xefve.bin"
    summary = stream[-1]
    assert summary["exit_code"] == 0 and summary["command"] == "sync"
    assert (summary["files_transferred"], summary["bytes_transferred"]) == (2, 300_001)
    assert summary["files_deleted"] == 0 and summary["duration"] > 0
    assert base64.b64decode(summary["syncs"][0]["src_b64"]) == src + b"/"


def test_engine_errors_are_error_events(tmp_path, sample):
    vols, _ = sample
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "rsync").write_text(
        '#!/bin/sh\n[ "$1" = --version ] && { echo "rsync  version 3.5.0"; exit 0; }\n'
        'echo "rsync: [sender] read errors mapping \\"x\\": Input/output error (5)" >&2\n'
        'exit 23\n')
    (bindir / "rsync").chmod(0o755)
    result = invoke("sync", f"{vols}/main/", str(tmp_path / "o"), "--engine", "rsync", "--json",
                    env={"PATH": f"{bindir}:{os.environ['PATH']}"})
    assert result.exit_code == 23
    stream = events(result.stdout)
    errors = [e for e in stream if e["event"] == "error"]
    assert [e["message"] for e in errors] == [
        'rsync: [sender] read errors mapping "x": Input/output error (5)']
    assert stream[-1]["exit_code"] == 23


def test_progress_events_are_throttled(capsys):
    output = Output("sync", json_out=True, progress=False)
    sample = Progress(bytes_done=10, bytes_total=100, percent=10.0, current="f")
    for _ in range(500):
        output.progress(sample)
    time.sleep(0.12)
    output.progress(sample)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and all(json.loads(line)["event"] == "progress" for line in lines)
    bar = io.StringIO()
    display = ProgressDisplay(bar, enabled=True)
    for i in range(500):
        display.draw(f"line {i}")
    assert bar.getvalue().count("\r") == 1


def test_engines_json_is_a_summary():
    info = events(invoke("engines", "--json").stdout)[-1]
    assert info["command"] == "engines" and info["exit_code"] == 0
    assert info["auto"] in ("rsync", "python")


# -- progress and -q -------------------------------------------------------------------------

def test_progress_line_only_when_asked_and_q_silences_everything_but_errors(sample, tmp_path):
    vols, bk = sample
    src = f"{vols}/main/"
    shown = invoke("sync", src, str(tmp_path / "a"), "--engine", "python", "--progress")
    assert shown.exit_code == 0
    bar, _, summary = shown.stderr.rpartition("\r")
    assert re.search(r"\[[#-]{20}\] +\d+\.\d%  .*/s  ETA [\d:?]+  \d+ files", bar)
    assert summary.startswith("sync: 1 sync(s)")
    plain = invoke("sync", src, str(tmp_path / "b"), "--engine", "python")
    assert "\r" not in plain.stderr and plain.stderr.startswith("sync: 1 sync(s)")
    quiet = invoke("sync", src, str(tmp_path / "c"), "--engine", "python", "--progress", "-q")
    assert (quiet.exit_code, quiet.stdout, quiet.stderr) == (0, "", "")
    assert (tmp_path / "c" / "hello.txt").exists()
    roots = ["--volumes-root", str(vols), "--backup-root", str(bk), "--engine", "python", "-q"]
    assert invoke("backup", *roots, "--data-version", "1").output == ""
    restored = invoke("restore", *roots)
    assert (restored.exit_code, restored.output) == (0, "")   # not even the data version
    failed = invoke("sync", f"{tmp_path}/nope/", str(tmp_path / "d"), "-q")
    assert failed.exit_code == 2
    assert error_lines(failed.stderr) == [f"syncengine: error: source {tmp_path}/nope/ does not exist"]


def _stderr_on_a_terminal(*args: str) -> str:
    """Run syncengine with its stderr on a pseudo-terminal; what it wrote there."""
    master, slave = pty.openpty()
    env = dict(os.environ, COLUMNS="200")
    proc = subprocess.Popen([sys.executable, "-m", "syncengine", *args], stdout=subprocess.PIPE,
                            stderr=slave, env=env)
    os.close(slave)
    chunks = []
    while True:
        ready, _, _ = select.select([master], [], [], 30)
        if not ready:
            break
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert proc.wait(timeout=30) == 0
    return b"".join(chunks).decode()


def test_the_progress_line_appears_on_a_terminal_by_itself(sample, tmp_path):
    vols, _ = sample
    text = _stderr_on_a_terminal("sync", f"{vols}/main/", str(tmp_path / "a"), "--engine", "python")
    assert "\r" in text and "ETA" in text and "%" in text
    text = _stderr_on_a_terminal("sync", f"{vols}/main/", str(tmp_path / "b"), "--engine", "python",
                                 "--no-progress")
    assert "\r" not in text.replace("\r\n", "\n") and text.startswith("sync: 1 sync(s)")


# -- help and completion ---------------------------------------------------------------------

@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_every_help_has_a_description_and_an_example(command):
    args = [command, "--help"] if command else ["--help"]
    result = invoke(*args)
    assert result.exit_code == 0
    text = result.stdout
    description = text.split("\n\n")[1]
    assert len(" ".join(description.split())) > 80       # one real paragraph
    assert re.search(r"^  Examples?:\n    syncengine " + (command or ""), text, re.M)


def test_rsync_help_is_help_but_everything_else_passes_through(tmp_path):
    proc = run("rsync", "--help", text=True)
    assert proc.returncode == 0 and "Usage: syncengine rsync [RSYNC-OPTION]... SRC... DST" in proc.stdout
    assert "Example" in proc.stdout
    # After "--" it is a file name, as for rsync: no help, the stand-in runs.
    proc = run("rsync", "-rlptgocAXH", "--", "--help", str(tmp_path / "dst"), text=True,
               cwd=tmp_path)
    assert proc.returncode == 23 and "Usage" not in proc.stdout
    assert 'link_stat "' in proc.stderr and '--help" failed: No such file or directory' in proc.stderr


def test_bash_completion_through_click(sample):
    vols, _ = sample
    script = subprocess.run(["syncengine"], env=dict(os.environ, _SYNCENGINE_COMPLETE="bash_source"),
                            capture_output=True, text=True, timeout=60)
    assert script.returncode == 0
    assert "complete -o nosort -F _syncengine_completion syncengine" in script.stdout
    # The script, sourced in bash, completes commands, option values and volumes.
    probe = ('eval "$(_SYNCENGINE_COMPLETE=bash_source syncengine)"\n'
             'complete_words() { COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMPREPLY=();'
             ' _syncengine_completion syncengine; echo "${COMPREPLY[*]}"; }\n'
             'complete_words syncengine ve\n'
             'complete_words syncengine verify --ignore ex\n'
             f'complete_words syncengine backup --volumes-root {vols} m\n')
    proc = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, timeout=60)
    assert proc.stdout.splitlines() == ["verify", "extra", "main"], proc.stderr


# -- interruptions ----------------------------------------------------------------------------

def test_ctrl_c_stops_the_sync_and_is_one_line(tmp_path, throttled_rsync):
    build_tree(tmp_path / "src", [{"path": "big", "size": 4_000_000, "seed": 3}])
    bindir = tmp_path / "bin"
    bindir.mkdir()
    os.symlink(throttled_rsync(200), bindir / "rsync")   # 4 MB at 200 kB/s: 20 s
    env = dict(os.environ, PATH=f"{bindir}:{os.environ['PATH']}")
    proc = subprocess.Popen([sys.executable, "-m", "syncengine", "sync", f"{tmp_path}/src/",
                             str(tmp_path / "dst"), "--engine", "rsync", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    assert json.loads(proc.stdout.readline())["event"] == "sync_start"
    time.sleep(0.3)
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert time.monotonic() - started < 10      # rsync was stopped, not waited for
    assert proc.returncode == 20
    assert error_lines(err) == ["syncengine: error: interrupted"]
    assert json.loads(out.splitlines()[-1])["exit_code"] == 20


def test_a_closed_pipe_is_not_a_traceback(tmp_path):
    build_tree(tmp_path / "src", [{"path": f"a-rather-long-file-name-{i:05d}", "content": ""}
                                  for i in range(3000)])
    (tmp_path / "dst").mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "syncengine", "verify", f"{tmp_path}/src/",
                             str(tmp_path / "dst"), "--ignore", "mtime"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().endswith(": only in SRC (file)\n")
    proc.stdout.close()       # as `| head -1` does
    err = proc.stderr.read()
    assert proc.wait(timeout=30) == 1
    assert "Traceback" not in err and "Exception" not in err
