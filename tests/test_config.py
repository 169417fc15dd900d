"""Config files: parsing and validation (syncengine.config), and
``syncengine backup|restore --config FILE`` with hooks as shell commands."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from syncengine import SyncOptions
from syncengine.cli.app import app
from syncengine.config import ConfigError, HookError, ShellHook, load_config, read_config
from tests.conftest import copy_sample_volumes
from tests.snapshot import assert_same_tree

REPO = Path(__file__).resolve().parent.parent


pytestmark = pytest.mark.usefixtures("clean_env")


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture
def roots(tmp_path):
    """Sample volumes (times in the past) and an empty backup root."""
    vols, bk = tmp_path / "vols", tmp_path / "bk"
    return copy_sample_volumes(vols, bk)


def invoke(*args: str, env: dict | None = None):
    return CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)


def one_error_line(stderr: str) -> str:
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if line.startswith("syncengine: error: ")]
    assert len(lines) == 1, stderr
    return lines[0]


# -- the library -------------------------------------------------------------------------------

FULL = """
engine = "python"
data_version = "1.4.2"
volumes = ["main", { name = "config", options = { exclude = ["cache/"] }, restore_options = { delete = false } }]

[layout]
volumes_root = "vols"            # relative: from this file's directory
backup_root = "/abs/backup"

[options]
exclude = ["*.tmp"]

[backup_options]
exclude = ["*.tmp", "*.log"]

[restore_options]
delete = false

[hooks]
pre_backup = "echo stop"
post_backup = "echo start"

[[syncs]]
name = "db"
data_path = "main/db/"
backup_path = "db/"
options = { exclude = ["*.lock"] }
backup_options = { delete = false }

[[syncs]]
data_path = "/abs/elsewhere/x"   # outside the volumes root: refused when built
backup_path = "x/"
"""


def test_a_full_file_is_read(tmp_path):
    config = read_config(write(tmp_path / "c.toml", FULL))
    assert (config.engine, config.data_version) == ("python", "1.4.2")
    assert config.volumes_root == str(tmp_path / "vols")
    assert config.backup_root == "/abs/backup"
    assert config.options == {"exclude": ("*.tmp",)}
    assert config.restore_options == {"delete": False}
    assert config.hooks == {"pre_backup": "echo stop", "post_backup": "echo start"}
    assert [(e.kind, e.name) for e in config.entries] == [
        ("volume", "main"), ("volume", "config"), ("sync", "db"), ("sync", None)]
    assert config.names() == ["main", "config", "db"]
    assert [e.name for e in config.select(["db", "main"])] == ["db", "main"]


def test_the_facade_it_builds_layers_options_like_the_seed(tmp_path):
    config = read_config(write(tmp_path / "c.toml", FULL))
    backups = config.build(entries=config.select(["main", "config", "db"]))
    assert backups.engine == "python"
    assert [(s.data_path, s.backup_path) for s in backups.syncs] == [
        (f"{tmp_path}/vols/main/", "/abs/backup/volumes/main/"),
        (f"{tmp_path}/vols/config/", "/abs/backup/volumes/config/"),
        (f"{tmp_path}/vols/main/db/", "/abs/backup/db/")]   # relative paths: under the roots
    main, conf, db = backups.syncs
    # backup = options < backup_options < sync.options < sync.backup_options
    assert backups.backup_options_for(main) == SyncOptions(True, ("*.tmp", "*.log"))
    assert backups.backup_options_for(conf) == SyncOptions(True, ("cache/",))
    assert backups.backup_options_for(db) == SyncOptions(False, ("*.lock",))
    # restore = options < restore_options < sync.options < sync.restore_options
    assert backups.restore_options_for(main) == SyncOptions(False, ("*.tmp",))
    assert backups.restore_options_for(conf) == SyncOptions(False, ("cache/",))
    assert backups.restore_options_for(db) == SyncOptions(False, ("*.lock",))
    # An override (the command line's flags) is above every layer.
    over = config.build(entries=config.select(["db"]), override={"exclude": ["x"]},
                        volumes_root="/other/vols", backup_root="/other/bk")
    assert over.syncs[0].data_path == "/other/vols/main/db/"
    assert over.backup_options_for(over.syncs[0]) == SyncOptions(False, ("x",))
    assert over.restore_options_for(over.syncs[0]) == SyncOptions(False, ("x",))


def test_load_config_names_the_entry_a_path_check_refuses(tmp_path):
    path = write(tmp_path / "c.toml", FULL)
    with pytest.raises(ConfigError) as info:
        load_config(path)  # every entry, the one outside the volumes root included
    assert str(info.value).startswith(f"{path}: syncs[1]: data_path '/abs/elsewhere/x' must be "
                                      "inside volumes_root")


def test_hooks_are_shell_commands_that_must_succeed(tmp_path):
    lines, logged = [], []
    hook = ShellHook("pre_backup", "echo \"$SYNCENGINE_HOOK in $PWD\"; echo oops >&2",
                     cwd=str(tmp_path), log=lambda h, c: logged.append((h, c)), output=lines.append)
    hook(None)
    assert logged == [("pre_backup", hook.command)]
    assert lines == [f"pre_backup in {tmp_path}\n", "oops\n"]
    failing = ShellHook("post_restore", "exit 3", output=lines.append, log=lambda h, c: None)
    with pytest.raises(HookError, match=r"^post_restore hook failed with exit status 3: exit 3$"):
        failing(None)


BAD = {
    "bad-toml": ("volumes = [\"main\"\n", "invalid TOML: "),
    "unknown-top-key": ("volume = [\"main\"]\n", "volume: unknown key (known: engine, "),
    "unknown-volume-key": ("volumes = [\"a\", { name = \"b\", optons = {} }]\n",
                           "volumes[1].optons: unknown key (known: name, options, "),
    "unknown-option": ("[backup_options]\nexlude = []\n",
                       "backup_options.exlude: unknown key (known: delete, exclude)"),
    "delete-not-bool": ("[options]\ndelete = \"no\"\n",
                        "options.delete: must be true or false, not a string"),
    "exclude-a-string": ("[options]\nexclude = \"*.tmp\"\n",
                         "options.exclude: must be an array of patterns, not a string"),
    "exclude-not-strings": ("[options]\nexclude = [1]\n",
                            "options.exclude[0]: must be a string, not an integer"),
    "unknown-engine": ("engine = \"turbo\"\n", "engine: unknown engine 'turbo'"),
    "unknown-hook": ("[hooks]\nbefore = \"true\"\n", "hooks.before: unknown key"),
    "hook-not-a-string": ("[hooks]\npre_backup = [\"true\"]\n",
                          "hooks.pre_backup: must be a shell command, not an array"),
    "volume-name": ("volumes = [\"../x\"]\n", "volumes[0].name: invalid volume name '../x'"),
    "duplicate-name": ("volumes = [\"a\"]\n[[syncs]]\nname = \"a\"\ndata_path = \"a/\"\n"
                       "backup_path = \"a/\"\n", "syncs[0]: the name 'a' is already used by volumes[0]"),
    "sync-without-path": ("[[syncs]]\ndata_path = \"a/\"\n", "syncs[0]: missing key 'backup_path'"),
    "key-after-a-table": ("[hooks]\npre_backup = \"true\"\nvolumes = [\"a\"]\n",
                          "write it before the first [table]"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_files_are_one_line_naming_the_file_and_the_key(case, tmp_path):
    text, fragment = BAD[case]
    path = write(tmp_path / "bad.toml", text)
    with pytest.raises(ConfigError) as info:
        read_config(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and fragment in message
    assert "\n" not in message


def test_a_missing_file(tmp_path):
    with pytest.raises(ConfigError, match=r"nope.toml: cannot read: No such file or directory$"):
        read_config(tmp_path / "nope.toml")


# -- the command line --------------------------------------------------------------------------

HOOKS = """
[hooks]
pre_backup = "echo pre_backup $SYNCENGINE_HOOK $(test -e {bk}/volumes/main/hello.txt && echo copied || echo empty) >> {log}"
post_backup = "echo post_backup $(test -e {bk}/volumes/main/hello.txt && echo copied || echo empty) >> {log}"
pre_restore = "echo pre_restore >> {log}"
post_restore = "echo post_restore $(cat {vols}/main/hello.txt | head -c 5) >> {log}"
"""  # noqa: E501


@pytest.mark.rsync
def test_backup_and_restore_with_a_config_file_run_hooks_in_order(roots, tmp_path):
    vols, bk = roots
    log = tmp_path / "hooks.log"
    config = write(tmp_path / "svc.toml", f"""
data_version = "5.1"
volumes = ["main"]
[layout]
volumes_root = "{vols.name}"
backup_root = "{bk}"
[backup_options]
exclude = ["ideas.md"]
""" + HOOKS.format(bk=bk, log=log, vols=vols))
    result = invoke("backup", "--config", str(config))
    assert result.exit_code == 0, result.output
    assert log.read_text() == "pre_backup pre_backup empty\npost_backup copied\n"
    assert (bk / "dataVersion.txt").read_text() == "5.1\n"
    assert sorted(os.listdir(bk / "volumes")) == ["main"]
    assert not (bk / "volumes" / "main" / "notes" / "ideas.md").exists()
    err = result.stderr.splitlines()
    assert err[0] == f"syncengine: running pre_backup hook: {HOOKS.split(chr(34))[1].format(bk=bk, log=log)}"
    assert err[1].startswith("syncengine: running post_backup hook: echo post_backup")
    assert err[2].startswith("backup: 1 sync(s), ")

    (vols / "main" / "hello.txt").write_text("changed")
    log.unlink()
    result = invoke("restore", "--config", str(config))
    assert result.exit_code == 0, result.output
    assert result.stdout == "data version: 5.1\n"
    assert log.read_text() == "pre_restore\npost_restore Hello\n"   # restored before post_restore


def test_a_failing_pre_hook_aborts_before_any_sync(roots, tmp_path):
    vols, bk = roots
    log = tmp_path / "log"
    config = write(tmp_path / "c.toml", f"""
[layout]
volumes_root = "{vols}"
backup_root = "{bk}"
[hooks]
pre_backup = "echo cannot stop the service >&2; exit 4"
post_backup = "echo post >> {log}"
""")
    result = invoke("backup", "--config", str(config), "--engine", "python", "--json")
    assert result.exit_code == 1
    assert one_error_line(result.stderr) == (
        "syncengine: error: pre_backup hook failed with exit status 4: "
        "echo cannot stop the service >&2; exit 4")
    assert "cannot stop the service" in result.stderr  # the hook's own output, on stderr
    assert os.listdir(bk) == [] and not log.exists()
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert [e["event"] for e in events] == ["hook", "summary"]
    assert events[-1]["exit_code"] == 1 and "pre_backup hook failed" in events[-1]["error"]


@pytest.fixture
def failing_rsync(tmp_path):
    """A PATH whose rsync answers --version but fails every transfer with 23."""
    bindir = tmp_path / "fakebin"
    bindir.mkdir()
    fake = bindir / "rsync"
    fake.write_text('#!/bin/sh\nif [ "$1" = --version ]; then\n'
                    '  echo "rsync  version 3.5.0  protocol version 32"; exit 0\nfi\n'
                    'echo "rsync: [receiver] simulated failure (5)" >&2\n'
                    'echo "rsync error: some files/attrs were not transferred (code 23)" >&2\n'
                    'exit 23\n')
    fake.chmod(0o755)
    return dict(os.environ, PATH=f"{bindir}:{os.environ['PATH']}")


def test_post_backup_runs_when_a_sync_fails(roots, tmp_path, failing_rsync):
    vols, bk = roots
    log = tmp_path / "log"
    config = write(tmp_path / "c.toml", f"""
engine = "rsync"
volumes = ["main", "config"]
[layout]
volumes_root = "{vols}"
backup_root = "{bk}"
[hooks]
pre_backup = "echo pre >> {log}"
post_backup = "echo post >> {log}"
""")
    proc = subprocess.run([sys.executable, "-m", "syncengine", "backup", "--config", str(config)],
                          capture_output=True, text=True, env=failing_rsync, timeout=60)
    assert proc.returncode == 23, proc.stderr
    assert log.read_text() == "pre\npost\n"
    assert "simulated failure" in one_error_line(proc.stderr)

    # A post_backup that fails too: both errors, and the sync's exit code.
    config.write_text(config.read_text().replace(f"echo post >> {log}", "exit 5"))
    result = invoke("backup", "--config", str(config), "--json",
                    env={"PATH": failing_rsync["PATH"]})
    assert result.exit_code == 23
    errors = [line for line in result.stderr.splitlines() if line.startswith("syncengine: error:")]
    assert len(errors) == 2 and "simulated failure" in errors[0]
    assert errors[1] == "syncengine: error: post_backup hook failed with exit status 5: exit 5"
    assert json.loads(result.stdout.splitlines()[-1])["exit_code"] == 23


def test_flags_override_the_config_and_the_config_overrides_the_environment(roots, tmp_path):
    vols, bk = roots
    other = tmp_path / "other-bk"
    other.mkdir()
    config = write(tmp_path / "c.toml", f"""
engine = "python"
[layout]
volumes_root = "{vols}"
backup_root = "{tmp_path}/does-not-exist"
[options]
exclude = ["notes/"]
""")
    env = {"SYNCENGINE_BACKUP_ROOT": str(tmp_path / "also-missing"),
           "SYNCENGINE_ENGINE": "rsync"}
    # The config's backup root wins over the environment's...
    result = invoke("backup", "main", "--config", str(config), env=env)
    assert result.exit_code == 2
    assert "backup root" in one_error_line(result.stderr) and "does-not-exist" in result.stderr
    # ...and --backup-root and --exclude win over the config.
    result = invoke("backup", "main", "--config", str(config), "--backup-root", str(other),
                    "--exclude", "*.csv", "--json", env=env)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.splitlines()[-1])
    assert summary["syncs"][0]["engine"] == "python"  # the config's engine, not the env's
    assert (other / "volumes" / "main" / "notes" / "todo.txt").exists()  # config exclude replaced
    assert not (other / "volumes" / "main" / "inventory.csv").exists()
    # --engine on the command line wins over the config.
    result = invoke("backup", "main", "--config", str(config), "--backup-root", str(other),
                    "--engine", "rsync", "--json", "--no-delete")
    assert json.loads(result.stdout.splitlines()[-1])["syncs"][0]["engine"] == "rsync"


def test_custom_syncs_and_selection_by_name(roots, tmp_path):
    vols, bk = roots
    config = write(tmp_path / "c.toml", f"""
engine = "python"
[layout]
volumes_root = "{vols}"
backup_root = "{bk}"
[[syncs]]
name = "notes"
data_path = "main/notes/"
backup_path = "notes-copy/"
[[syncs]]
name = "config"
data_path = "config"
backup_path = "whole/"
""")
    result = invoke("backup", "notes", "--config", str(config))
    assert result.exit_code == 0, result.output
    assert sorted(os.listdir(bk)) == ["notes-copy"]
    assert_same_tree(bk / "notes-copy", vols / "main" / "notes")
    result = invoke("backup", "--config", str(config))
    assert result.exit_code == 0
    assert_same_tree(bk / "whole" / "config", vols / "config")  # no slash: the dir itself
    result = invoke("backup", "nope", "--config", str(config))
    assert result.exit_code == 2
    assert "no volume or sync named 'nope' (named in the file: notes, config)" in \
        one_error_line(result.stderr)


def test_a_config_without_entries_backs_up_every_volume(roots, tmp_path):
    vols, bk = roots
    config = write(tmp_path / "c.toml", f'engine = "python"\n[layout]\nvolumes_root = "{vols}"\n'
                                        f'backup_root = "{bk}"\n')
    result = invoke("backup", "--config", str(config), "-q")
    assert result.exit_code == 0 and result.output == ""
    assert sorted(os.listdir(bk / "volumes")) == ["config", "main"]


@pytest.mark.parametrize("how", ["clirunner", "subprocess"])
def test_bad_config_files_exit_2_with_one_line(how, tmp_path):
    bad = write(tmp_path / "bad.toml", "[options]\ndelete = 1\n")
    args = ["backup", "--config", str(bad), "--volumes-root", str(tmp_path), "--backup-root", "/x"]
    if how == "clirunner":
        result = invoke(*args)
        code, stdout, stderr = result.exit_code, result.stdout, result.stderr
    else:
        proc = subprocess.run([sys.executable, "-m", "syncengine", *args], capture_output=True,
                              text=True, timeout=60)
        code, stdout, stderr = proc.returncode, proc.stdout, proc.stderr
    assert code == 2 and stdout == ""
    assert stderr == (f"syncengine: error: {bad}: options.delete: must be true or false, "
                      "not an integer\n")
    missing = invoke("restore", "--config", str(tmp_path / "missing.toml"))
    assert missing.exit_code == 2
    assert one_error_line(missing.stderr).endswith(
        "missing.toml: cannot read: No such file or directory")


def test_roots_are_required_from_somewhere(tmp_path):
    config = write(tmp_path / "c.toml", "volumes = [\"main\"]\n")
    result = invoke("backup", "--config", str(config))
    assert result.exit_code == 2
    assert "Missing option '--volumes-root' (or SYNCENGINE_VOLUMES_ROOT, or " \
           "layout.volumes_root in a --config file)" in result.stderr


def test_the_readme_example_is_a_valid_config(tmp_path):
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("### Config file"):]
    example = section[section.index("```toml\n") + 8:section.index("\n```", section.index("```toml"))]
    config = read_config(write(tmp_path / "svc.toml", example))
    assert config.names() == ["main", "config", "logs", "db"]
    assert set(config.hooks) == {"pre_backup", "post_backup", "pre_restore", "post_restore"}
    backups = config.build()
    assert [s.backup_path for s in backups.syncs][-1] == "/mnt/backup/myservice/db/"
    assert backups.backup_options_for(backups.syncs[-1]) == SyncOptions(False, ("*.lock",))
