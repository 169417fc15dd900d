"""Dry runs and itemized changes outside the walker: the ItemChange type,
both engines through ``sync()``, the facade, the ``syncengine`` commands
(CliRunner and subprocess) and ``syncengine rsync -n/-i/-v`` next to the
real rsync.  (The walker's lines are checked against rsync's in
tests/equivalence.)"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from fixtures.treespec import build_tree
from syncengine import Backups, FileEffects, Layout, sync
from syncengine.cli.app import app
from syncengine.itemize import ItemChange, parse_line
from syncengine.messages import rsync_escape
from syncengine.standin import UsageError, parse_argv
from tests.conftest import PAST_NS, copy_sample_volumes, run_rsync
from tests.snapshot import snapshot

pytestmark = pytest.mark.usefixtures("clean_env")

FLAGS = ["-rlptgocAXH", "--delete", "--no-inc-recursive"]


@pytest.fixture
def trees(tmp_path):
    """A source and a destination that differ in every way -i can show."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    build_tree(src, [{"path": ".", "mtime_ns": PAST_NS},
                     {"path": "new.txt", "content": "new", "mtime_ns": PAST_NS},
                     {"path": "changed.txt", "content": "after", "mtime_ns": PAST_NS},
                     {"path": "mode.txt", "content": "m", "mode": 0o600, "mtime_ns": PAST_NS},
                     {"path": "link", "target": "new.txt", "mtime_ns": PAST_NS},
                     {"path": "sub", "type": "dir", "mtime_ns": PAST_NS},
                     {"path": "sub/deep.bin", "size": 5000, "seed": 3, "mtime_ns": PAST_NS},
                     {"path": b"caf\xe9", "content": "latin-1 name", "mtime_ns": PAST_NS}])
    build_tree(dst, [{"path": ".", "mtime_ns": PAST_NS},
                     {"path": "changed.txt", "content": "befor", "mtime_ns": PAST_NS},
                     {"path": "mode.txt", "content": "m", "mode": 0o644, "mtime_ns": PAST_NS},
                     {"path": "old", "type": "dir", "mtime_ns": PAST_NS},
                     {"path": "old/gone.txt", "content": "x", "mtime_ns": PAST_NS}])
    return src, dst


def rsync_lines(src: Path, dst: Path, *extra: str) -> set[str]:
    proc = run_rsync(*FLAGS, *extra, f"{src}/", str(dst))
    assert proc.returncode == 0, proc.stderr
    return set(os.fsdecode(proc.stdout).splitlines())


# -- ItemChange ----------------------------------------------------------------------------

def test_item_lines_and_what_v_prints():
    new = ItemChange(">f+++++++++", b"a/b")
    assert new.line() == ">f+++++++++ a/b" and new.created and not new.deleted
    assert new.verbose_line() == "a/b"
    gone = ItemChange("*deleting", b"old/")
    assert gone.line() == "*deleting   old/" and gone.deleted
    assert gone.verbose_line() == "deleting old/"
    link = ItemChange("cL+++++++++", b"l", symlink_target=b"t")
    assert link.line() == "cL+++++++++ l -> t" and link.verbose_line() == "l -> t"
    hard = ItemChange("hf+++++++++", b"b", hardlink_to=b"a")
    assert hard.line() == "hf+++++++++ b => a"
    # -v names what was transferred, created, linked, and dirs whose
    # attributes changed; not a file whose attributes alone changed
    assert ItemChange(".f..t......", b"f").verbose_line() is None
    assert ItemChange(".d..t......", b"d/").verbose_line() == "d/"


def test_item_json_carries_names_that_are_not_utf8():
    item = ItemChange("cL+++++++++", b"caf\xe9", symlink_target=b"ok")
    data = item.as_dict()
    assert data["code"] == "cL+++++++++" and data["path"] == "caf\ufffd"
    assert base64.b64decode(data["path_b64"]) == b"caf\xe9"
    assert data["symlink_target"] == "ok" and "symlink_target_b64" not in data
    assert "hardlink_to" not in data


@pytest.mark.parametrize("line", [
    b">f+++++++++ new file", b".d..t...... dir/", b"*deleting   x/y", b"cLc.t...... l -> to",
    b"hf          b => a", b"hf+++++++++ d/b => a", b".f...p..... m", b">fcst.....x f"])
def test_parse_line_round_trips(line):
    item = parse_line(line)
    assert item is not None and item.line().encode() == line


@pytest.mark.parametrize("line", [b"created directory dst", b'skipping non-regular file "f"',
                                  b"cannot delete non-empty directory: d", b"sending incremental file list"])
def test_other_stdout_lines_are_not_items(line):
    assert parse_line(line) is None


# -- engines -------------------------------------------------------------------------------

@pytest.mark.rsync
@pytest.mark.parametrize("dry_run", [True, False])
def test_both_engines_report_rsyncs_changes(trees, tmp_path, dry_run):
    src, dst = trees
    copies = {}
    for engine in ("rsync", "python"):
        copies[engine] = tmp_path / f"dst-{engine}"
        shutil.copytree(dst, copies[engine], symlinks=True)
        os.utime(copies[engine], ns=(PAST_NS, PAST_NS))
    oracle = tmp_path / "dst-oracle"
    shutil.copytree(dst, oracle, symlinks=True)
    os.utime(oracle, ns=(PAST_NS, PAST_NS))
    expected = rsync_lines(src, oracle, "-i", *(["-n"] if dry_run else []))
    for engine, where in copies.items():
        before = snapshot(where)
        items: list[ItemChange] = []
        result = sync(f"{src}/", str(where), engine=engine, on_item=items.append, dry_run=dry_run)
        assert result.dry_run is dry_run and result.exit_code == 0
        assert {rsync_escape(i.line()) for i in items} == expected, engine
        if dry_run:
            assert snapshot(where) == before, f"{engine}'s dry run changed the destination"
            assert result.files_transferred == 4  # what a real run would transfer
        assert {i.path for i in items if i.deleted} == {b"old/gone.txt", b"old/"}
        assert any(i.path == b"caf\xe9" for i in items)  # raw bytes, unescaped


# -- the facade ------------------------------------------------------------------------------

def test_facade_dry_run_runs_no_hook_and_writes_nothing(tmp_path):
    vols, bk = copy_sample_volumes(tmp_path / "volumes", tmp_path / "backup")
    backups = Backups.of_volumes("main", layout=Layout(str(vols), str(bk)))
    ran = []
    backups.set_pre_backup(lambda e: ran.append("pre")).set_post_backup(lambda e: ran.append("post"))

    class Watch:
        skipped: list = []

        def sync_started(self, *a): pass
        def sync_finished(self, *a): pass
        def sync_failed(self, *a): pass
        def hook_skipped(self, hook): self.skipped.append(hook)

    watch = Watch()
    before = snapshot(tmp_path)
    items: list[ItemChange] = []
    results = backups.create_backup(FileEffects(str(tmp_path / "unused"), version="9"),
                                    observer=watch, on_item=items.append, dry_run=True)
    assert snapshot(tmp_path) == before  # no backup dir, no dataVersion.txt
    assert ran == [] and watch.skipped == ["pre_backup", "post_backup"]
    assert results[0].dry_run and results[0].files_transferred > 0
    assert ItemChange("cd+++++++++", b"./") in items
    assert sum(1 for i in items if i.code == ">f+++++++++") == results[0].files_transferred


# -- the commands ----------------------------------------------------------------------------

def invoke(*args: str):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


@pytest.mark.rsync
@pytest.mark.parametrize("engine", ["python", "rsync"])
def test_sync_n_i_prints_rsyncs_lines_and_changes_nothing(trees, tmp_path, engine):
    src, dst = trees
    oracle = tmp_path / "oracle"
    shutil.copytree(dst, oracle, symlinks=True)
    os.utime(oracle, ns=(PAST_NS, PAST_NS))
    expected = rsync_lines(src, oracle, "-i", "-n")
    before = snapshot(dst)
    result = invoke("sync", "-n", "-i", f"{src}/", str(dst), "--engine", engine)
    assert result.exit_code == 0, result.output
    assert snapshot(dst) == before
    printed = {line for line in result.stdout.splitlines()}
    assert printed == expected
    assert "(dry run, nothing changed)" in result.stderr and "would be transferred" in result.stderr


def test_sync_json_itemize_events(trees):
    src, dst = trees
    proc = subprocess.run([sys.executable, "-m", "syncengine", "sync", "-i", "--json",
                           "--engine", "python", f"{src}/", str(dst)], capture_output=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    stream = [json.loads(line) for line in proc.stdout.decode("utf-8").splitlines()]
    items = [e for e in stream if e["event"] == "itemize"]
    by_path = {base64.b64decode(e["path_b64"]) if "path_b64" in e else e["path"].encode(): e
               for e in items}
    assert by_path[b"new.txt"]["code"] == ">f+++++++++"
    assert by_path[b"changed.txt"]["code"] == ">fc........"  # same size and mtime: -c found it
    assert by_path[b"mode.txt"]["code"] == ".f...p....."
    assert by_path[b"link"] == {"event": "itemize", "index": 1, "code": "cL+++++++++",
                                "path": "link", "symlink_target": "new.txt"}
    assert by_path[b"old/"]["code"] == "*deleting"
    assert b"caf\xe9" in by_path and items[0]["index"] == 1
    assert stream[-1]["event"] == "summary" and stream[-1]["files_deleted"] == 2
    assert (dst / "new.txt").read_text() == "new"  # not a dry run: it happened


def test_backup_dry_run_with_config_hooks(tmp_path):
    vols, bk = copy_sample_volumes(tmp_path / "volumes", tmp_path / "backup")
    marker = tmp_path / "hook-ran"
    config = tmp_path / "c.toml"
    config.write_text(f'volumes = ["main"]\ndata_version = "2.0"\n'
                      f'[layout]\nvolumes_root = "{vols}"\nbackup_root = "{bk}"\n'
                      f'[hooks]\npre_backup = "touch {marker}"\npost_backup = "touch {marker}"\n')
    before = snapshot(tmp_path)
    result = invoke("backup", "--config", str(config), "--dry-run", "--itemize-changes")
    assert result.exit_code == 0, result.output
    assert snapshot(tmp_path) == before and not marker.exists()
    assert "syncengine: dry run: the pre_backup hook is not run" in result.stderr
    assert "cd+++++++++ ./" in result.stdout.splitlines()
    real = invoke("backup", "--config", str(config))
    assert real.exit_code == 0 and marker.exists() and (bk / "dataVersion.txt").exists()


def test_restore_dry_run_changes_no_volume(tmp_path):
    vols, bk = copy_sample_volumes(tmp_path / "volumes", tmp_path / "backup")
    assert invoke("backup", "--volumes-root", str(vols), "--backup-root", str(bk)).exit_code == 0
    (vols / "main" / "extra.txt").write_text("only in the volume")
    before = snapshot(vols)
    result = invoke("restore", "-n", "-i", "main", "--volumes-root", str(vols),
                    "--backup-root", str(bk))
    assert result.exit_code == 0, result.output
    assert "*deleting   extra.txt" in result.stdout.splitlines()
    assert snapshot(vols) == before


@pytest.mark.parametrize("command", ["sync", "backup", "restore"])
def test_verify_with_dry_run_is_a_usage_error(command, tmp_path):
    args = {"sync": [str(tmp_path), str(tmp_path / "x")],
            "backup": ["--volumes-root", str(tmp_path), "--backup-root", str(tmp_path)],
            "restore": ["--volumes-root", str(tmp_path), "--backup-root", str(tmp_path)]}
    result = invoke(command, "-n", "--verify", *args[command])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        "syncengine: error: --verify cannot be used with --dry-run (nothing is copied to verify)"]


# -- syncengine rsync -n / -i / -v -------------------------------------------------------------

@pytest.mark.parametrize("argv", [["-rlptgocAXHniv", "a", "b"],
                                  ["-rlptgocAXH", "--dry-run", "--itemize-changes", "--verbose",
                                   "a", "b"],
                                  ["-n", "-i", "-v", "-rlptgocAXH", "a", "b"]])
def test_standin_accepts_n_i_v(argv):
    args = parse_argv(argv)
    assert (args.dry_run, args.itemize, args.verbose) == (True, True, True)
    assert args.letters == set("rlptgocAXH")


@pytest.mark.parametrize("argv", [["-rlptgocAXHii", "a", "b"], ["-rlptgocAXH", "-vv", "a", "b"]])
def test_standin_refuses_doubled_i_and_v(argv):
    with pytest.raises(UsageError, match="not supported"):
        parse_argv(argv)


def standin(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "syncengine", "rsync", *argv],
                          capture_output=True, timeout=60)


@pytest.mark.rsync
@pytest.mark.parametrize("flags", [["-i", "-n"], ["-i"], ["-v", "-n"], ["-v"], ["-vi", "-n"]])
def test_standin_prints_rsyncs_lines(trees, tmp_path, flags):
    """Same stdout as rsync, line for line as a set, but -v's byte counts
    (a local native sync has no protocol to count)."""
    src, dst = trees
    oracle = tmp_path / "oracle"
    shutil.copytree(dst, oracle, symlinks=True)
    os.utime(oracle, ns=(PAST_NS, PAST_NS))
    want = run_rsync(*FLAGS, *flags, f"{src}/", str(oracle))
    before = snapshot(dst)
    got = standin(*FLAGS, *flags, f"{src}/", str(dst))
    assert got.returncode == want.returncode == 0, got.stderr

    def lines(out: bytes) -> set[bytes]:
        return {line for line in out.splitlines() if not line.startswith((b"sent ", b"total size"))}
    assert lines(got.stdout) == lines(want.stdout)
    if "-v" in flags or "-vi" in flags:
        assert got.stdout.splitlines()[-1].endswith(b"(DRY RUN)") == ("-n" in flags)
    if "-n" in flags:
        assert snapshot(dst) == before
    else:
        assert snapshot(dst) == snapshot(oracle)
