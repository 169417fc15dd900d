"""The ``syncengine`` command, through click's CliRunner and as a real
subprocess (the console script and ``python -m syncengine``)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from syncengine.cli.app import app
from tests.conftest import copy_sample_volumes, env_without_rsync, run_rsync
from tests.snapshot import assert_same_tree, snapshot

REPO = Path(__file__).resolve().parent.parent


# -- helpers --------------------------------------------------------------------------------

# Most tests here start the command as a process: the fast part (-m "not
# slow") runs a sample of them (tests/conftest.py).
pytestmark = [pytest.mark.usefixtures("clean_env"), pytest.mark.sampled(12)]


@pytest.fixture
def sample(tmp_path):
    """A copy of fixtures/volumes (times moved into the past) and an empty
    backup root."""
    vols, bk = tmp_path / "volumes", tmp_path / "backup"
    return copy_sample_volumes(vols, bk)


def _regular_files(root: Path) -> int:
    return sum(1 for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def invoke(*args: str, env: dict | None = None):
    """CliRunner run; an unexpected exception propagates (no silent traceback)."""
    return CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)


def console_script() -> str:
    path = shutil.which("syncengine")
    if path is None:
        pytest.fail("the syncengine console script is not on PATH: run `pip install -e .`")
    return path


def run(*args: str, how: str = "script", env: dict | None = None) -> subprocess.CompletedProcess:
    argv = ([console_script()] if how == "script" else [sys.executable, "-m", "syncengine"])
    return subprocess.run([*argv, *args], capture_output=True, text=True, env=env, timeout=60)


def json_summary(stdout: str) -> dict:
    """--json writes JSON lines (progress, sync and error events); the
    summary is always the last one."""
    events = [json.loads(line) for line in stdout.splitlines()]
    assert events and events[-1]["event"] == "summary"
    assert all(event["event"] != "summary" for event in events[:-1])
    return events[-1]


def one_error_line(stderr: str) -> str:
    """The stderr of a refused command: exactly one line, no traceback."""
    assert "Traceback" not in stderr
    lines = stderr.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got:\n{stderr}"
    assert lines[0].startswith("syncengine: error: ")
    return lines[0]


def _direct(src: str, dst: str, *extra: str) -> None:
    os.makedirs(dst, exist_ok=True)
    proc = run_rsync("--delete", *extra, "-rlptgocAXH", src, dst)
    assert proc.returncode == 0, proc.stderr


# -- backup ---------------------------------------------------------------------------------

@pytest.mark.rsync
def test_backup_of_the_sample_volumes_equals_a_direct_rsync(sample, tmp_path):
    vols, bk = sample
    result = invoke("backup", "--volumes-root", str(vols), "--backup-root", str(bk),
                    "--data-version", "1.4.2")
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert result.stderr.startswith("backup: 2 sync(s), ")
    assert sorted(os.listdir(bk / "volumes")) == ["config", "main"]
    assert (bk / "dataVersion.txt").read_text() == "1.4.2\n"
    for name in ("config", "main"):
        _direct(f"{vols}/{name}/", f"{tmp_path}/direct/{name}/")
        assert_same_tree(bk / "volumes" / name, tmp_path / "direct" / name)
        assert_same_tree(bk / "volumes" / name, vols / name)
    assert os.readlink(bk / "volumes" / "main" / "latest") == os.readlink(vols / "main" / "latest")


@pytest.mark.rsync
def test_backup_named_volumes_with_exclude_and_no_delete(sample):
    vols, bk = sample
    result = invoke("backup", "config", "--volumes-root", str(vols), "--backup-root", str(bk),
                    "--exclude", "*.tmp", "--exclude", "index.json")
    assert result.exit_code == 0, result.output
    assert sorted(os.listdir(bk / "volumes")) == ["config"]
    assert sorted(os.listdir(bk / "volumes" / "config" / "cache")) == []
    assert not (bk / "dataVersion.txt").exists()  # no --data-version, no file

    (bk / "volumes" / "config" / "old-only-in-backup").write_text("x")
    result = invoke("backup", "config", "--volumes-root", str(vols), "--backup-root", str(bk),
                    "--no-delete")
    assert result.exit_code == 0
    assert (bk / "volumes" / "config" / "old-only-in-backup").exists()
    assert (bk / "volumes" / "config" / "cache" / "session.tmp").exists()  # no exclude now
    result = invoke("backup", "config", "--volumes-root", str(vols), "--backup-root", str(bk))
    assert result.exit_code == 0
    assert not (bk / "volumes" / "config" / "old-only-in-backup").exists()  # --delete default


@pytest.mark.rsync
def test_roots_come_from_the_environment(sample):
    vols, bk = sample
    result = invoke("backup", "main", env={"SYNCENGINE_VOLUMES_ROOT": str(vols),
                                           "SYNCENGINE_BACKUP_ROOT": str(bk)})
    assert result.exit_code == 0, result.output
    assert_same_tree(bk / "volumes" / "main", vols / "main")


# -- restore --------------------------------------------------------------------------------

@pytest.mark.rsync
def test_restore_brings_every_volume_back_and_prints_the_data_version(sample):
    vols, bk = sample
    original = {name: snapshot(vols / name) for name in ("main", "config")}
    assert invoke("backup", "--volumes-root", str(vols), "--backup-root", str(bk),
                  "--data-version", "7.0.1").exit_code == 0
    shutil.rmtree(vols / "main")
    (vols / "config" / "app.conf").write_text("changed")
    (vols / "config" / "new-file").write_text("not in the backup")

    result = invoke("restore", "--volumes-root", str(vols), "--backup-root", str(bk))
    assert result.exit_code == 0, result.output
    assert result.stdout == "data version: 7.0.1\n"
    assert result.stderr.startswith("restore: 2 sync(s), ")
    for name in ("main", "config"):
        assert_same_tree(vols / name, original[name])


@pytest.mark.rsync
def test_restore_of_one_volume_without_a_data_version(sample):
    vols, bk = sample
    assert invoke("backup", "--volumes-root", str(vols), "--backup-root", str(bk)).exit_code == 0
    (vols / "main" / "hello.txt").write_text("changed")
    (vols / "config" / "app.conf").write_text("changed too")
    result = invoke("restore", "main", "--volumes-root", str(vols), "--backup-root", str(bk))
    assert result.exit_code == 0, result.output
    assert result.stdout == "data version: (none)\n"
    assert (vols / "main" / "hello.txt").read_text() != "changed"
    assert (vols / "config" / "app.conf").read_text() == "changed too"  # not named: untouched


# -- sync -----------------------------------------------------------------------------------

@pytest.mark.rsync
def test_sync_one_tree_equals_a_direct_rsync(sample, tmp_path):
    vols, _ = sample
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "stray").write_text("deleted by --delete")
    result = invoke("sync", f"{vols}/config/", str(tmp_path / "out"), "--exclude", "cache/")
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith("sync: 1 sync(s), ")
    _direct(f"{vols}/config/", str(tmp_path / "direct"), "--exclude=cache/")
    assert_same_tree(tmp_path / "out", tmp_path / "direct")
    assert not (tmp_path / "out" / "stray").exists()


@pytest.mark.rsync
def test_sync_without_trailing_slash_copies_the_directory_itself(sample, tmp_path):
    vols, _ = sample
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep").write_text("kept by --no-delete")
    result = invoke("sync", f"{vols}/main", str(tmp_path / "out"), "--no-delete")
    assert result.exit_code == 0, result.output
    assert sorted(os.listdir(tmp_path / "out")) == ["keep", "main"]
    assert_same_tree(tmp_path / "out" / "main", vols / "main")


@pytest.mark.rsync
def test_sync_to_a_relative_path_starting_with_a_dash(sample, tmp_path, monkeypatch):
    vols, _ = sample
    monkeypatch.chdir(tmp_path)
    result = invoke("sync", "--", f"{vols}/main/", "-out")
    assert result.exit_code == 0, result.output
    assert_same_tree(tmp_path / "-out", vols / "main")


# -- engines --------------------------------------------------------------------------------

def test_engines_reports_rsync_and_auto(rsync_required):
    version_line = subprocess.run([rsync_required, "--version"], capture_output=True,
                                  text=True).stdout.splitlines()[0]
    result = invoke("engines", "--json")
    assert result.exit_code == 0
    info = json.loads(result.stdout)
    assert info["rsync"]["available"] is True
    assert info["rsync"]["path"] == rsync_required
    assert f"version {info['rsync']['version']} " in " ".join(version_line.split()) + " "
    assert info["auto"] == "rsync"
    assert isinstance(info["python"]["available"], bool)

    text = invoke("engines")
    assert text.exit_code == 0
    assert "auto picks: rsync" in text.stdout
    assert info["rsync"]["version"] in text.stdout


def test_engines_without_rsync_as_a_subprocess(tmp_path):
    proc = run("engines", "--json", how="module", env=env_without_rsync(tmp_path))
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["rsync"]["available"] is False
    assert info["auto"] == "python"


def test_engines_says_why_an_old_rsync_is_not_used(tmp_path):
    env = env_without_rsync(tmp_path)
    old = tmp_path / "no-rsync-bin" / "rsync"
    old.write_text('#!/bin/sh\necho "rsync  version 3.0.9  protocol version 30"\n')
    old.chmod(0o755)
    info = json.loads(run("engines", "--json", how="module", env=env).stdout)
    assert info["rsync"]["available"] is False and info["auto"] == "python"
    assert "rsync 3.0.9" in info["rsync"]["reason"] and "3.1.0 or newer" in info["rsync"]["reason"]
    text = run("engines", how="module", env=env).stdout
    assert f"rsync:  not available ({info['rsync']['reason']})" in text.splitlines()


def test_engine_env_sets_the_default(monkeypatch):
    monkeypatch.setenv("SYNCENGINE_ENGINE", "python")
    info = json.loads(invoke("engines", "--json").stdout)
    assert info["default"] == "python"


# -- --json and progress --------------------------------------------------------------------

@pytest.mark.rsync
def test_backup_json_summary(sample):
    vols, bk = sample
    result = invoke("backup", "--volumes-root", str(vols), "--backup-root", str(bk),
                    "--data-version", "3", "--json")
    assert result.exit_code == 0
    assert result.stderr == ""
    summary = json_summary(result.stdout)
    assert summary["event"] == "summary" and summary["command"] == "backup"
    assert summary["exit_code"] == 0
    assert summary["volumes"] == ["config", "main"]
    assert summary["data_version"] == "3"
    assert summary["files_transferred"] == _regular_files(vols)
    assert [s["dst"] for s in summary["syncs"]] == [f"{bk}/volumes/config/", f"{bk}/volumes/main/"]
    assert all(s["engine"] == "rsync" and s["exit_code"] == 0 for s in summary["syncs"])


@pytest.mark.rsync
def test_restore_and_sync_json_summaries(sample, tmp_path):
    vols, bk = sample
    invoke("backup", "--volumes-root", str(vols), "--backup-root", str(bk), "--data-version", "9")
    restore = json_summary(invoke("restore", "--volumes-root", str(vols), "--backup-root", str(bk),
                                  "--json").stdout)
    assert (restore["command"], restore["data_version"], restore["exit_code"]) == ("restore", "9", 0)
    sync = json_summary(invoke("sync", f"{vols}/main/", str(tmp_path / "o"), "--json").stdout)
    assert (sync["command"], sync["exit_code"]) == ("sync", 0)
    assert sync["files_transferred"] == _regular_files(vols / "main")


def test_a_refused_command_with_json_still_writes_a_summary(sample):
    vols, bk = sample
    result = invoke("backup", "nope", "--volumes-root", str(vols), "--backup-root", str(bk), "--json")
    assert result.exit_code == 2
    assert "nope" in one_error_line(result.stderr)
    summary = json.loads(result.stdout)
    assert summary["exit_code"] == 2 and "nope" in summary["error"]


@pytest.mark.rsync
def test_progress_display_only_when_asked_or_on_a_terminal(sample, tmp_path):
    vols, _ = sample
    quiet = invoke("sync", f"{vols}/main/", str(tmp_path / "a"))
    assert "\r" not in quiet.stderr  # CliRunner's stderr is not a terminal
    shown = invoke("sync", f"{vols}/main/", str(tmp_path / "b"), "--progress")
    assert shown.exit_code == 0
    progress, _, summary = shown.stderr.rpartition("\r")
    assert "%" in progress and "files" in progress
    assert summary.startswith("sync: 1 sync(s)")


# -- exit codes ------------------------------------------------------------------------------

@pytest.mark.rsync
def test_a_failed_sync_exits_with_rsyncs_code(sample, tmp_path, immutable_file):
    vols, _ = sample
    out = tmp_path / "out"
    out.mkdir()
    (out / "hello.txt").write_text("old")
    immutable_file(out / "hello.txt")
    result = invoke("sync", f"{vols}/main/", str(out))
    assert result.exit_code == 23
    assert "Operation not permitted" in result.stderr  # rsync's own message is shown
    assert "Traceback" not in result.stderr
    as_json = invoke("sync", f"{vols}/main/", str(out), "--json")
    assert as_json.exit_code == 23
    summary = json_summary(as_json.stdout)
    assert summary["exit_code"] == 23 and summary["syncs"][0]["exit_code"] == 23
    assert any("Operation not permitted" in e for e in summary["syncs"][0]["errors"])


@pytest.mark.rsync
def test_a_failed_backup_exits_with_rsyncs_code_and_one_line(sample, immutable_file):
    vols, bk = sample
    (bk / "volumes" / "main").mkdir(parents=True)
    (bk / "volumes" / "main" / "hello.txt").write_text("old")
    immutable_file(bk / "volumes" / "main" / "hello.txt")
    result = invoke("backup", "main", "--volumes-root", str(vols), "--backup-root", str(bk))
    assert result.exit_code == 23
    line = one_error_line(result.stderr)
    assert "exit code 23" in line and "Operation not permitted" in line
    as_json = invoke("backup", "main", "--volumes-root", str(vols), "--backup-root", str(bk),
                     "--json")
    assert as_json.exit_code == 23
    assert json_summary(as_json.stdout)["exit_code"] == 23


def test_missing_rsync_is_one_clear_line(sample, tmp_path):
    vols, _ = sample
    proc = run("sync", "--engine", "rsync", f"{vols}/main/", str(tmp_path / "o"), how="module",
               env=env_without_rsync(tmp_path))
    assert proc.returncode not in (0, 2)
    assert "rsync is not installed" in one_error_line(proc.stderr)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("args, env", [
    (["backup", "--bogus"], {}),
    (["backup", "main"], {}),  # --volumes-root and --backup-root missing
    (["sync", "only-src"], {}),
    (["sync", "a", "b", "--engine", "turbo"], {}),
    (["sync", "a", "b"], {"SYNCENGINE_ENGINE": "turbo"}),
    (["frobnicate"], {}),
])
def test_usage_errors_exit_2(args, env, tmp_path):
    result = invoke(*args, env=env)
    assert result.exit_code == 2
    assert result.stderr.startswith("syncengine: error: ") and len(result.stderr.splitlines()) == 1
    assert result.stdout == ""


# -- every bad input: one line, exit 2, nothing changed ------------------------------------

def _file(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    path.write_text("a file, not a directory\n")


BAD_INPUTS = {
    # name: (setup(tmp, vols, bk) or None, args(tmp, vols, bk), message fragment)
    "backup-unknown-volume": (None, lambda t, v, b: ["backup", "nope", "-V", v, "-B", b],
                              "unknown volume 'nope'"),
    "restore-unknown-volume": (None, lambda t, v, b: ["restore", "nope", "-V", v, "-B", b],
                               "unknown volume 'nope'"),
    "backup-dotdot": (None, lambda t, v, b: ["backup", "../x", "-V", v, "-B", b], "'../x'"),
    "restore-dotdot": (None, lambda t, v, b: ["restore", "../x", "-V", v, "-B", b], "'../x'"),
    "backup-slash-name": (None, lambda t, v, b: ["backup", "main/notes", "-V", v, "-B", b],
                          "'main/notes'"),
    "backup-empty-name": (None, lambda t, v, b: ["backup", "", "-V", v, "-B", b],
                          "invalid volume name ''"),
    "backup-missing-volumes-root": (None, lambda t, v, b: ["backup", "-V", f"{t}/nope", "-B", b],
                                    "volumes root"),
    "backup-missing-backup-root": (None, lambda t, v, b: ["backup", "-V", v, "-B", f"{t}/nope"],
                                   "backup root"),
    "restore-missing-volumes-root": (None, lambda t, v, b: ["restore", "-V", f"{t}/nope", "-B", b],
                                     "volumes root"),
    "restore-missing-backup-root": (None, lambda t, v, b: ["restore", "-V", v, "-B", f"{t}/nope"],
                                    "backup root"),
    "restore-empty-backup": (lambda t, v, b: (t / "empty").mkdir(),
                             lambda t, v, b: ["restore", "-V", v, "-B", f"{t}/empty"],
                             "does not exist"),
    "same-roots": (None, lambda t, v, b: ["backup", "-V", v, "-B", v], "contain one another"),
    "backup-root-is-a-file": (lambda t, v, b: _file(t / "afile"),
                              lambda t, v, b: ["backup", "-V", v, "-B", f"{t}/afile"],
                              "not a directory"),
    "backup-destination-is-a-file": (lambda t, v, b: _file(b / "volumes" / "main"),
                                     lambda t, v, b: ["backup", "-V", v, "-B", b],
                                     "not a directory"),
    "backup-volumes-dir-is-a-file": (lambda t, v, b: (shutil.rmtree(b / "volumes"),
                                                      _file(b / "volumes")),
                                     lambda t, v, b: ["backup", "main", "-V", v, "-B", b],
                                     "not a directory"),
    "restore-destination-is-a-file": (lambda t, v, b: _file(v / "config"),
                                      lambda t, v, b: ["restore", "config", "-V", v, "-B", b],
                                      "not a directory"),
    "sync-destination-is-a-file": (lambda t, v, b: _file(t / "afile"),
                                   lambda t, v, b: ["sync", f"{v}/main/", f"{t}/afile"],
                                   "not a directory"),
    "sync-empty-src": (None, lambda t, v, b: ["sync", "", f"{t}/out"], "must not be empty"),
    "sync-empty-dst": (None, lambda t, v, b: ["sync", f"{v}/main/", ""], "must not be empty"),
    "sync-missing-src": (None, lambda t, v, b: ["sync", f"{t}/nope/", f"{t}/out"],
                         "does not exist"),
    "sync-missing-dst-parent": (None, lambda t, v, b: ["sync", f"{v}/main/", f"{t}/no/such/out"],
                                "does not exist"),
}


@pytest.fixture
def with_backup(sample):
    """Sample volumes plus a backup of them made by rsync directly."""
    vols, bk = sample
    for name in ("main", "config"):
        shutil.copytree(vols / name, bk / "volumes" / name, symlinks=True)
    (bk / "dataVersion.txt").write_text("1")
    return vols, bk


def _long_options(args: list[str]) -> list[str]:
    # -V/-B above are shorthand for this table only; the CLI has long options.
    return [{"-V": "--volumes-root", "-B": "--backup-root"}.get(a, a) for a in args]


# Every case through CliRunner and the console script; `python -m` shares
# all of their code after start-up, so a few cases suffice there.
BAD_INPUT_RUNS = ([(case, how) for case in sorted(BAD_INPUTS) for how in ("clirunner", "script")]
                  + [(case, "module") for case in ("backup-dotdot", "restore-destination-is-a-file",
                                                    "sync-empty-src")])


@pytest.mark.parametrize("case, how", BAD_INPUT_RUNS)
@pytest.mark.sampled(4)
def test_bad_input_is_one_line_exit_2_and_changes_nothing(case, how, with_backup, tmp_path,
                                                          monkeypatch):
    vols, bk = with_backup
    setup, make_args, fragment = BAD_INPUTS[case]
    if setup is not None:
        setup(tmp_path, vols, bk)
    args = _long_options([str(a) for a in make_args(tmp_path, vols, bk)])
    monkeypatch.chdir(tmp_path)
    before = snapshot(tmp_path)
    if how == "clirunner":
        result = invoke(*args)
        code, stdout, stderr = result.exit_code, result.stdout, result.stderr
    else:
        proc = run(*args, how=how)
        code, stdout, stderr = proc.returncode, proc.stdout, proc.stderr
    assert code == 2, stderr
    assert fragment in one_error_line(stderr)
    assert stdout == ""
    assert_same_tree(before, snapshot(tmp_path))


# -- as a subprocess ---------------------------------------------------------------------------

@pytest.mark.rsync
@pytest.mark.parametrize("how", ["script", "module"])
@pytest.mark.sampled(1)
def test_backup_and_restore_as_a_subprocess(how, sample):
    vols, bk = sample
    original = snapshot(vols / "main")
    proc = run("backup", "--volumes-root", str(vols), "--backup-root", str(bk),
               "--data-version", "2.0", how=how)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.startswith("backup: 2 sync(s), ") and proc.stdout == ""
    assert_same_tree(bk / "volumes" / "main", original)
    shutil.rmtree(vols / "main")
    proc = run("restore", "main", "--volumes-root", str(vols), "--backup-root", str(bk), how=how)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "data version: 2.0\n"
    assert_same_tree(vols / "main", original)


@pytest.mark.parametrize("how", ["script", "module"])
@pytest.mark.sampled(1)
def test_version_and_help_as_a_subprocess(how):
    proc = run("--version", how=how)
    assert proc.returncode == 0 and "syncengine" in proc.stdout
    proc = run("--help", how=how)
    assert proc.returncode == 0
    for command in ("backup", "restore", "sync", "engines"):
        assert command in proc.stdout


# -- packaging ---------------------------------------------------------------------------------

@pytest.mark.slow
def test_the_wheel_installs_syncengine_cli_and_no_top_level_cli(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(REPO, src, symlinks=True, ignore=shutil.ignore_patterns(
        ".git", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", ".hypothesis"))
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "-q",
                           "-w", str(tmp_path / "wheels")],
                          cwd=src, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    wheel, = (tmp_path / "wheels").glob("syncengine_backups-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        top_level = next(n for n in names if n.endswith(".dist-info/top_level.txt"))
        tops = zf.read(top_level).decode().split()
        entry_points = zf.read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    roots = {name.split("/")[0] for name in names}
    assert "cli" not in roots, "the wheel installs a top-level 'cli' package"
    assert tops == ["syncengine"]
    assert "syncengine/cli/__init__.py" in names and "syncengine/cli/app.py" in names
    assert "syncengine/__main__.py" in names
    assert "syncengine = syncengine.__main__:main" in entry_points


def test_a_stand_in_run_imports_none_of_what_it_does_without(tmp_path):
    """A run without JSON or copies behind the walk loads none of the
    modules whose C parts it uses directly (``queue``, ``locale``,
    ``base64``), nor click: each costs a ms or more of a start that small
    runs are mostly made of."""
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    (src / "d" / "f").write_bytes(b"data")
    probe = ("import os, runpy, sys; sys.argv = ['syncengine', 'rsync', '-rlptgocAXH', "
             f"'--delete', {str(src) + '/'!r}, {str(tmp_path / 'dst')!r}]\n"
             "before, real_exit = set(sys.modules), os._exit\n"
             "def report(code):  # (each process ends at once: os._exit)\n"
             "    print(code, *sorted({'queue', 'locale', 'base64', 'click'}\n"
             "                        & (set(sys.modules) - before)), flush=True)\n"
             "    real_exit(code)\n"
             "os._exit = report\n"
             "runpy.run_module('syncengine', run_name='__main__')")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    # (a line from each process: the run's forked helpers end through os._exit too)
    assert set(proc.stdout.splitlines()) == {"0"}, proc.stdout + proc.stderr
    assert (tmp_path / "dst" / "d" / "f").read_bytes() == b"data"


def test_the_rsync_stand_in_starts_without_click_or_the_facade(tmp_path):
    """Scripts call ``syncengine rsync`` in place of rsync, often: its start
    must not pay for click or the facade's imports."""
    probe = ("import os, runpy, sys; sys.argv = ['syncengine', 'rsync', '-rlptgocAXH', "
             f"{str(tmp_path / 'missing')!r}, {str(tmp_path / 'dst')!r}]\n"
             "def report(code):  # (it ends the process at once: os._exit)\n"
             "    print(code, 'click' in sys.modules, 'syncengine.backups' in sys.modules)\n"
             "    sys.exit(code)\n"
             "os._exit = report\n"
             "runpy.run_module('syncengine', run_name='__main__')")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert proc.stdout.split() == ["23", "False", "False"], proc.stderr
