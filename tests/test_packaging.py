"""The package as a Python user or packager meets it: the declared
dependencies are what the code imports, and the built wheel is typed
(py.typed, an annotated public API that mypy --strict accepts)."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from syncengine import ItemChange

REPO = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
# What ships: the library and the CLI (installed as syncengine.cli).
SHIPPED = [REPO / "syncengine", REPO / "cli"]


def _dist_name(requirement: str) -> str:
    """'click>=8.2' -> 'click' (PEP 503 normalized)."""
    name = re.match(r"[A-Za-z0-9._-]+", requirement)
    assert name is not None, requirement
    return re.sub(r"[-_.]+", "-", name.group(0)).lower()


def _imported_top_modules(roots: list[Path]) -> set[str]:
    """Every top-level module an ``import`` in the shipped code names
    (relative imports excluded)."""
    found: set[str] = set()
    for root in roots:
        for path in root.rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_bytes(), str(path))):
                if isinstance(node, ast.Import):
                    found.update(alias.name.split(".")[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    found.add(node.module.split(".")[0])
    return found


def _third_party(modules: set[str]) -> dict[str, set[str]]:
    """The modules of ``modules`` that are neither the standard library's
    nor ours, each with the distributions that provide it."""
    provided_by = importlib.metadata.packages_distributions()
    ours = {"syncengine"}
    return {m: {_dist_name(d) for d in provided_by.get(m, [])}
            for m in modules
            if m not in sys.stdlib_module_names and not m.startswith("_") and m not in ours}


def test_every_declared_runtime_dependency_is_imported_by_the_shipped_code():
    declared = {_dist_name(r) for r in PROJECT["dependencies"]}
    declared |= {_dist_name(r) for r in PROJECT["optional-dependencies"]["acl"]}
    imported = set().union(*_third_party(_imported_top_modules(SHIPPED)).values())
    unused = declared - imported
    assert not unused, f"declared but never imported: {sorted(unused)}"


def test_every_third_party_import_of_the_shipped_code_is_declared():
    declared = {_dist_name(r) for r in PROJECT["dependencies"]}
    declared |= {_dist_name(r) for extra in PROJECT["optional-dependencies"].values()
                 for r in extra}
    for module, dists in _third_party(_imported_top_modules(SHIPPED)).items():
        assert dists & declared, f"{module} is imported but no declared dependency provides it"


def test_the_library_never_imports_click():
    assert "click" not in _imported_top_modules([REPO / "syncengine"])


def test_the_checks_see_an_undeclared_and_an_unused_dependency(tmp_path):
    """The two checks above can fail: a module importing a package nobody
    declared, and a declared one (click) that the library alone lacks."""
    (tmp_path / "m.py").write_text("import hypothesis\nimport os\nfrom . import x\n")
    assert _third_party(_imported_top_modules([tmp_path])) == {"hypothesis": {"hypothesis"}}
    library_only = set().union(*_third_party(_imported_top_modules([REPO / "syncengine"])).values())
    assert "click" not in library_only


def test_an_item_change_prints_as_rsyncs_line():
    # rsync(1) --itemize-changes: "%i %n%L", the code padded to 11 columns.
    assert str(ItemChange(">f+++++++++", b"new.txt")) == ">f+++++++++ new.txt"
    assert str(ItemChange("*deleting", b"old/")) == "*deleting   old/"
    assert str(ItemChange("cL+++++++++", b"latest", symlink_target=b"new.txt")) \
        == "cL+++++++++ latest -> new.txt"
    assert str(ItemChange("hf+++++++++", b"b", hardlink_to=b"a")) == "hf+++++++++ b => a"


# A user's module using the public API the way the README does; under
# --strict every name must resolve to a typed definition.
USER_CODE = '''
import syncengine
from syncengine import (Backups, BackupSync, Difference, FileEffects, ItemChange, Layout,
                        SyncError, SyncJob, SyncOptions, SyncResult, verify_trees)
from syncengine.config import load_config


def run(src: str, dst: str) -> int:
    items: list[ItemChange] = []
    result: SyncResult = syncengine.sync(src, dst, {"exclude": ["*.log"]}, on_item=items.append)
    job: SyncJob = syncengine.start_sync(src, dst, SyncOptions(exclude=("*.tmp",)), engine="python")
    percent: float = job.progress()
    try:
        job.wait()
    except SyncError as exc:
        return exc.exit_code
    layout = Layout(volumes_root="/srv/volumes", backup_root="/mnt/backup")
    backups = (Backups.of_volumes("main", layout=layout)
               .add_sync(BackupSync(data_path="/srv/volumes/db/", backup_path="/mnt/backup/db/"))
               .set_options({"exclude": ["*.tmp"]}))
    done: list[SyncResult] = backups.create_backup(FileEffects("/tmp/v"), dry_run=True)
    differences: list[Difference] = verify_trees(src, dst, ["*.tmp"])
    loaded, _config = load_config("svc.toml")
    line: str = str(items[0]) + items[0].line()
    return result.bytes_transferred + len(done) + len(differences) + int(percent) + len(line) \\
        + len(loaded.create_backup(FileEffects("/tmp/v")))
'''


@pytest.mark.slow
def test_the_built_wheel_is_typed_for_mypy_strict(tmp_path):
    """Built as pip builds it, unpacked where mypy treats it as installed
    (a PYTHONPATH entry needs py.typed just like site-packages)."""
    if shutil.which("mypy") is None and not _has_module("mypy"):
        pytest.skip("mypy is not installed (pip install -e '.[lint]')")
    # A copy of what the build reads: the build's own files stay out of the checkout.
    source = tmp_path / "source"
    skip = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for name in ("syncengine", "cli"):
        shutil.copytree(REPO / name, source / name, ignore=skip)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels),
                    str(source)], check=True, capture_output=True)
    (wheel,) = wheels.glob("*.whl")
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        assert "syncengine/py.typed" in archive.namelist()
        archive.extractall(site)
    (tmp_path / "user").mkdir()
    (tmp_path / "user" / "app.py").write_text(USER_CODE)
    checked = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "app.py"],
        cwd=tmp_path / "user", capture_output=True, text=True,
        env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"})
    assert checked.returncode == 0, checked.stdout + checked.stderr


def _has_module(name: str) -> bool:
    import importlib.util
    return importlib.util.find_spec(name) is not None
