"""Shared fixtures for the test suite.

Tests that need the real rsync binary use either the ``rsync_required``
fixture (it returns rsync's path) or the marker::

    @pytest.mark.rsync          # or: pytestmark = pytest.mark.rsync
    def test_something(): ...

Both skip the test when ``rsync`` is not on PATH, unless the environment has
``SYNCENGINE_REQUIRE_RSYNC=1`` (CI sets it): then the test FAILS with a
clear message, so a machine without rsync cannot pass by skipping.  That is
the system's rsync, whatever its version: the rsync engine runs it.

The oracle of the equivalence tests is another matter: ``run_rsync`` runs
the reference rsync, Debian 13's build of rsync 3.5.0 (``tests/reference.py``
says how it is found; the run's header names it with its sha256).
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

REQUIRE_RSYNC_ENV = "SYNCENGINE_REQUIRE_RSYNC"

# ``@requires_rsync`` reads better in some files than ``@pytest.mark.rsync``;
# both mean the same.
requires_rsync = pytest.mark.rsync


def rsync_path_or_skip() -> str:
    """rsync's path; skip without it, or fail when SYNCENGINE_REQUIRE_RSYNC=1."""
    path = shutil.which("rsync")
    if path is None:
        if os.environ.get(REQUIRE_RSYNC_ENV) == "1":
            pytest.fail(f"rsync is not on PATH, and {REQUIRE_RSYNC_ENV}=1 says tests that "
                        "need it must run: install rsync (apt-get install rsync)",
                        pytrace=False)
        pytest.skip(f"rsync is not on PATH (set {REQUIRE_RSYNC_ENV}=1 to fail instead)")
    return path


@pytest.fixture
def rsync_required() -> str:
    """The path of the real rsync (see the module docstring)."""
    return rsync_path_or_skip()


def pytest_report_header(config: pytest.Config) -> list[str]:
    from tests.reference import Reference, find_reference
    found = find_reference()
    system = shutil.which("rsync")
    version = "none"
    if system:
        proc = subprocess.run([system, "--version"], capture_output=True, text=True)
        version = f"{system}: {(proc.stdout.splitlines() or ['?'])[0].strip()}"
    from tests.equivalence.conftest import header
    return [found.describe() if isinstance(found, Reference) else f"reference rsync: none: {found}",
            f"system rsync (the rsync engine's): {version}", header(),
            "fast part (-m 'not slow'): the samples of the sampled families are drawn with "
            "that seed too"]


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("rsync") is not None:
        rsync_path_or_skip()


# -- the fast part: `pytest -m "not slow"` ----------------------------------------------
#
# ``@pytest.mark.sampled(k)`` on a parametrized test, a class or a module
# (pytestmark), or ``sampled(k, "name")`` on several tests of one module
# (one group per name): of the tests it covers, the fast part runs ``k``,
# drawn afresh each run from the run's seed (the header names it; the same
# seed draws the same tests), and marks the others slow.  The full run runs
# them all.  For tests that each cost a process or a run against rsync:
# families (one rule on many inputs) and files full of them.

def _sample_group(item: pytest.Item) -> tuple[tuple[str, ...], int] | None:
    """(the group's key, k) of the closest ``sampled`` marker, or None."""
    for node, mark in item.iter_markers_with_node("sampled"):
        if len(mark.args) > 1:
            key: tuple[str, ...] = (item.path.as_posix(), mark.args[1])
        elif node is item:   # (on the function: its parameter sets)
            key = (item.path.as_posix(), getattr(item, "originalname", item.name))
        else:
            key = (node.nodeid,)
        return key, int(mark.args[0])
    return None


@pytest.hookimpl(tryfirst=True)   # (before -m deselects by marker)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    from tests.equivalence.conftest import SEED
    groups: dict[tuple[tuple[str, ...], int], list[pytest.Item]] = {}
    for item in items:
        found = _sample_group(item)
        if found is not None and item.get_closest_marker("slow") is None:
            groups.setdefault(found, []).append(item)
    for (key, k), members in groups.items():
        drawn = random.Random(f"{SEED}:{key}").sample(members, min(k, len(members)))
        for item in members:
            if item not in drawn:
                item.add_marker(pytest.mark.slow)


# -- helpers used by several test files ------------------------------------------------

def run_rsync(*args: str | bytes | os.PathLike, timeout: float = 60,
              cwd: str | os.PathLike | None = None) -> subprocess.CompletedProcess:
    """Run the reference rsync directly (the oracle), in its own session so
    that a timeout can kill its helper processes too."""
    from tests.reference import reference_rsync
    argv = [reference_rsync(), *args]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            cwd=cwd, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def tree_sync(src, dst, **kw):
    """The native engine's TreeSync for ``src/`` into ``dst`` with --delete
    and no excludes, and the list its stdout and stderr lines go to."""
    from syncengine.treesync.filters import FilterRules
    from syncengine.treesync.sync import TreeSync
    lines: list[str] = []
    tree = TreeSync([f"{src}/"], str(dst), delete=True, rules=FilterRules.from_excludes(()),
                    out=lines.append, err=lines.append, **kw)
    return tree, lines


SEED_FLAGS = ("-rlptgocAXH", "--info=progress2", "--no-inc-recursive")


@pytest.fixture(scope="session")
def nobody_base():
    """The directory for unprivileged runs (nobody can reach it), or a skip
    with the precise reason (tests/equivalence/unprivileged.py)."""
    from tests.equivalence import unprivileged
    try:
        env = unprivileged.nobody_env()
    except RuntimeError as exc:
        pytest.skip(f"cannot run as nobody: {exc}")
    yield env.base
    unprivileged.cleanup()


@pytest.fixture
def throttled_rsync(tmp_path_factory: pytest.TempPathFactory, rsync_required: str):
    """Return a factory ``make(kbps) -> path`` of a wrapper that execs the
    real rsync with ``--bwlimit``: a real rsync run slow enough to watch its
    progress or cancel it, whatever the machine's speed."""
    bindir = tmp_path_factory.mktemp("bin")

    def make(kbps: int) -> str:
        wrapper = bindir / f"rsync-bwlimit-{kbps}"
        wrapper.write_text(f'#!/bin/sh\nexec "{rsync_required}" --bwlimit={kbps} "$@"\n')
        wrapper.chmod(0o755)
        return str(wrapper)

    return make


class RecordingEffects:
    """An Effects that remembers what the facade asked of it."""

    def __init__(self, version: str | None = None, log: list | None = None) -> None:
        self.version = version
        self.set_versions: list[str] = []
        self.log = log if log is not None else []

    def get_data_version(self) -> str | None:
        self.log.append("get_data_version")
        return self.version

    def set_data_version(self, version: str) -> None:
        self.log.append(("set_data_version", version))
        self.set_versions.append(version)


@pytest.fixture
def layout_dirs(tmp_path: Path):
    """(volumes_root, backup_root): two fresh, existing directories."""
    volumes = tmp_path / "volumes"
    backup = tmp_path / "backup"
    volumes.mkdir()
    backup.mkdir()
    return volumes, backup


def env_without_rsync(tmp_path: Path) -> dict[str, str]:
    """An environment whose PATH finds python (and syncengine) but no rsync."""
    bindir = tmp_path / "no-rsync-bin"
    bindir.mkdir(exist_ok=True)
    for name in ("python", "python3"):
        link = bindir / name
        if not link.exists():
            link.symlink_to(sys.executable)
    env = dict(os.environ)
    env["PATH"] = str(bindir)
    env.pop("SYNCENGINE_ENGINE", None)
    return env


@pytest.fixture
def immutable_file():
    """Make a file immutable (chattr +i) so that even root's rsync fails to
    replace it; undone at teardown."""
    made = []

    def make(path: Path) -> None:
        if shutil.which("chattr") is None:
            pytest.skip("chattr is not installed")
        if subprocess.run(["chattr", "+i", "--", str(path)], capture_output=True).returncode:
            pytest.skip("this filesystem or container does not allow chattr +i")
        made.append(path)

    yield make
    for path in made:
        subprocess.run(["chattr", "-i", "--", str(path)], capture_output=True)


# -- the sample volumes of the README's quick start -------------------------------------

SAMPLE_VOLUMES = Path(__file__).resolve().parent.parent / "fixtures" / "volumes"
PAST_NS = 1_600_000_000_123_456_789  # see rsync-semantics §10: no "now" times in compared trees


def copy_sample_volumes(vols: Path, backup_root: Path) -> tuple[Path, Path]:
    """A copy of fixtures/volumes at ``vols`` with every time moved into the
    past, and an empty backup root."""
    shutil.copytree(SAMPLE_VOLUMES, vols, symlinks=True)
    for dirpath, dirnames, filenames in os.walk(vols, topdown=False):
        for name in filenames + dirnames:
            os.utime(os.path.join(dirpath, name), ns=(PAST_NS, PAST_NS), follow_symlinks=False)
        os.utime(dirpath, ns=(PAST_NS, PAST_NS))
    backup_root.mkdir()
    return vols, backup_root


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No SYNCENGINE_* defaults from the caller's environment."""
    for name in ("SYNCENGINE_ENGINE", "SYNCENGINE_VOLUMES_ROOT", "SYNCENGINE_BACKUP_ROOT"):
        monkeypatch.delenv(name, raising=False)
