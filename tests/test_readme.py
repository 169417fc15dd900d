"""The README's examples run: every fenced ``python`` and ``sh`` block is
executed against scratch directories (its example paths replaced by
them), and what it prints or makes is checked.  A block that cannot run
here says why in an HTML comment right before it
(``<!-- not-run: reason -->``); its TOML example is read as a config file."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from syncengine import verify_trees
from syncengine.config import read_config
from syncengine.snapshots import RetentionPolicy, list_snapshots

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
# An itemized line: rsync's 11-character code (or *deleting), a space, the name.
ITEM_LINE = re.compile(r"^(?:[<>ch.][fdLDS][.+ cstpoguax?]{9}|\*deleting  ) \S")


@dataclass(frozen=True)
class Block:
    lang: str
    line: int          # where its fence is (1-based)
    text: str
    not_run: str | None

    def __str__(self) -> str:
        return f"README.md:{self.line} ({self.lang})"


def readme_blocks(text: str) -> list[Block]:
    blocks = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        fence = re.fullmatch(r"```(\w+)", lines[i])
        if fence is None:
            i += 1
            continue
        end = lines.index("```", i + 1)
        before = lines[i - 1] if i else ""
        marker = re.fullmatch(r"<!-- not-run: (.+?) -->", before)
        blocks.append(Block(fence.group(1), i + 1, "\n".join(lines[i + 1:end]) + "\n",
                            marker.group(1) if marker else None))
        i = end + 1
    return blocks


BLOCKS = readme_blocks(README.read_text())


def runnable(lang: str) -> list[Block]:
    return [b for b in BLOCKS if b.lang == lang and b.not_run is None]


def substituted(text: str, scratch: Path) -> str:
    """The README's example paths, moved under ``scratch``."""
    for example, here in (("/media/startos", "startos"), ("/srv/data", "srv/data"),
                          ("/mnt/copy", "mnt/copy"), ("/tmp/syncengine-demo", "demo"),
                          ("/srv/myservice", "srv/myservice"), ("/mnt/backup", "mnt/backup")):
        text = text.replace(example, str(scratch / here))
    return text


def test_the_readme_has_examples_to_run_and_few_exceptions():
    assert len(runnable("python")) >= 2 and len(runnable("sh")) >= 1
    not_run = [b for b in BLOCKS if b.not_run is not None]
    assert len(not_run) <= 3, [str(b) for b in not_run]
    # Only the two executable kinds may be marked: a marker elsewhere is a typo.
    assert all(b.lang in ("python", "sh") for b in not_run)


def _python_session(scratch: Path) -> subprocess.CompletedProcess[str]:
    """All python blocks in order, in one interpreter (later blocks use
    earlier ones' names, as a reader's session would); a marker line
    before each block's output."""
    parts = []
    for index, block in enumerate(runnable("python")):
        parts.append(f"print('@@ block {index}', flush=True)\n")
        parts.append(substituted(block.text, scratch))
    script = scratch / "readme_session.py"
    script.write_text("".join(parts))
    return subprocess.run([sys.executable, str(script)], cwd=scratch, capture_output=True,
                          text=True, timeout=300)


def _outputs(stdout: str) -> list[list[str]]:
    chunks = re.split(r"^@@ block \d+\n", stdout, flags=re.M)
    return [chunk.splitlines() for chunk in chunks[1:]]


@pytest.mark.sampled(1, "examples")
def test_the_python_examples_run_and_print_what_they_say(tmp_path):
    vols = tmp_path / "startos" / "volumes"
    shutil.copytree(REPO / "fixtures" / "volumes", vols, symlinks=True)
    (tmp_path / "startos" / "backup").mkdir()   # the backup drive, mounted
    data = tmp_path / "srv" / "data"
    (data / "sub").mkdir(parents=True)
    (data / "a.txt").write_bytes(b"a" * 1000)
    (data / "b.txt").write_bytes(b"b" * 40)
    (data / "sub" / "c.txt").write_bytes(b"c\n")
    (data / "debug.log").write_text("excluded\n")
    (tmp_path / "mnt" / "copy").mkdir(parents=True)   # (rsync makes only DST's last component)
    (tmp_path / "mnt" / "backup").mkdir()              # the snapshots' backup root

    run = _python_session(tmp_path)
    assert run.returncode == 0, run.stderr
    facade, one_tree, linked, versioned = _outputs(run.stdout)

    # link_dest: what /mnt/copy/data holds identical is a hard link to it.
    assert linked == []
    copy = tmp_path / "mnt" / "copy"
    assert (copy / "2024-05-02" / "a.txt").stat().st_ino == (copy / "data" / "a.txt").stat().st_ino
    assert (copy / "2024-05-02" / "debug.log").stat().st_nlink == 1   # not in DIR: copied

    # The facade: the hooks around the backup, the volumes copied both ways.
    assert facade == ["stopping the service", "starting the service"]
    backup = tmp_path / "startos" / "backup"
    assert (backup / "volumes" / "main" / "hello.txt").read_bytes() \
        == (vols / "main" / "hello.txt").read_bytes()
    assert not (backup / "volumes" / "config" / "cache").exists()   # excluded: "cache/"
    assert (backup / "dataVersion.txt").read_text() == "1.4.2\n"
    assert (tmp_path / "startos" / "dataVersion.txt").read_text() == "1.4.2\n"

    # One tree: the counts (3 files, 1042 bytes: debug.log excluded) ...
    assert one_tree[0] == "0 3 1042"
    assert (tmp_path / "mnt" / "copy" / "other" / "sub" / "c.txt").exists()
    # ... then the dry run's rsync lines, a new destination changed nowhere ...
    items = one_tree[1:-1]
    assert all(ITEM_LINE.match(line) for line in one_tree[1:]), one_tree
    assert ">f+++++++++ a.txt" in items and ">f+++++++++ sub/c.txt" in items
    assert not (tmp_path / "mnt" / "copy" / "new").exists()
    # ... and the backup's dry run: the one new file, not copied.
    assert one_tree[-1] == ">f+++++++++ new.txt"
    assert not (backup / "volumes" / "main" / "new.txt").exists()

    # Snapshots: three backups, pruned to the two newest after each, each
    # with its data version; the listing is oldest first; a snapshot is a
    # whole copy of the volume; the dry-run prune deleted nothing.
    snapshots = list_snapshots(tmp_path / "mnt" / "backup")
    assert [line.split() for line in versioned] == [[s.id, "1.4.2"] for s in snapshots]
    assert len(snapshots) == 2
    for snap in snapshots:
        # (The session wrote into main/ this very second: a directory time
        # that matches to the second is one rsync leaves alone, so main's
        # own mtime may differ below the second.)
        assert [d for d in verify_trees(f"{vols}/main/", snap.volume_path("main"))
                if not (d.path == b"." and d.attribute == "mtime"
                        and abs(d.src - d.dst) < 1_000_000_000)] == []


@pytest.mark.parametrize("block", runnable("sh"), ids=str)
@pytest.mark.sampled(1, "examples")
def test_the_shell_examples_run(block, tmp_path):
    # A step that installs the package is already done here.
    command = re.sub(r"pip install [^&\n]*&& ", "", substituted(block.text, tmp_path))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    run = subprocess.run(["bash", "-eo", "pipefail", "-c", command], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    if "backup --snapshot" in block.text:
        _check_the_snapshot_session(run.stdout, tmp_path)
    elif "syncengine backup" in block.text:
        # The quick start: the sample volumes copied (*.tmp left out), the
        # listing printed, the data version last.
        demo = tmp_path / "demo"
        listed = run.stdout.splitlines()
        assert str(demo / "volumes" / "main" / "hello.txt") in listed
        assert not [line for line in listed if line.endswith(".tmp")]
        assert listed[-1] == "1.0.0"
        assert (demo / "volumes" / "config" / "app.conf").read_bytes() \
            == (REPO / "fixtures" / "volumes" / "config" / "app.conf").read_bytes()


def _check_the_snapshot_session(stdout: str, scratch: Path) -> None:
    """Two snapshots listed (oldest first, their data versions), the newest
    restored, the older one pruned, one left."""
    lines = stdout.splitlines()
    assert len(lines) == 5, lines
    first, second = (line.split()[0] for line in lines[:2])
    assert first < second and "version 1.0" in lines[0] and "version 1.1" in lines[1]
    assert lines[2:4] == [f"delete {first}", f"keep {second} (last #1)"]
    assert lines[4].split()[0] == second
    assert verify_trees(f"{REPO}/fixtures/volumes/main/",
                        f"{scratch}/demo/restored/main/") == []


def test_the_toml_examples_are_valid_configs(tmp_path):
    toml, snapshots = [b for b in BLOCKS if b.lang == "toml"]
    path = tmp_path / "snapshots.toml"
    path.write_text(snapshots.text)
    config = read_config(path)
    assert config.snapshots and config.retention == RetentionPolicy(last=3, daily=7, weekly=4,
                                                                    monthly=12)
    path = tmp_path / "svc.toml"
    path.write_text(substituted(toml.text, tmp_path))
    config = read_config(path)
    assert config.names() == ["main", "config", "logs", "db"]
    assert config.engine == "auto" and config.data_version == "1.4.2"
    assert config.volumes_root == str(tmp_path / "srv" / "myservice" / "volumes")

