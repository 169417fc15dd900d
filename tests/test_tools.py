"""tools/lint and tools/test-interpreters, the scripts CI calls: each
fails when it should."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _lint_copy(tmp_path: Path) -> Path:
    """What tools/lint reads, copied: the findings planted stay out of the checkout."""
    copy = tmp_path / "repo"
    skip = shutil.ignore_patterns("__pycache__")
    for name in ("syncengine", "cli", "tools", "tests", "fixtures", "bench"):
        shutil.copytree(REPO / name, copy / name, ignore=skip)
    shutil.copy(REPO / "pyproject.toml", copy / "pyproject.toml")
    return copy


@pytest.mark.slow
@pytest.mark.skipif(not (importlib.util.find_spec("ruff") and importlib.util.find_spec("mypy")),
                    reason="ruff and mypy are not installed (pip install -e '.[lint]')")
@pytest.mark.parametrize(("path", "planted", "finding"), [
    # an unannotated function in a public module: mypy --strict there
    ("syncengine/options.py", "\n\ndef helper(x):\n    return x\n", "options.py:"),
    # a type error in the CLI (checked as syncengine.cli, its installed name)
    ("cli/display.py", "\n\nWIDTH: int = 'wide'\n", "cli/display.py:"),
    # an unused import: ruff
    ("syncengine/treesync/filters.py", "\nimport json\n", "F401"),
])
def test_lint_fails_on_a_finding_and_names_it(tmp_path, path, planted, finding):
    copy = _lint_copy(tmp_path)
    clean = subprocess.run([str(copy / "tools" / "lint")], capture_output=True, text=True, timeout=300)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    with open(copy / path, "a") as f:
        f.write(planted)
    found = subprocess.run([str(copy / "tools" / "lint")], capture_output=True, text=True, timeout=300)
    assert found.returncode != 0
    assert finding in found.stdout


@pytest.mark.parametrize("optional, code", [("", 1), ("1", 0)])
def test_test_interpreters_skips_a_missing_python_with_a_line(optional, code):
    proc = subprocess.run([str(REPO / "tools" / "test-interpreters")], capture_output=True, text=True,
                          timeout=60, env={"PATH": "/usr/bin:/bin", "SYNCENGINE_INTERPRETERS": "3.99 2.1",
                                           "PYENV_ROOT": "/nonexistent", "HOME": "/nonexistent",
                                           "SYNCENGINE_INTERPRETERS_OPTIONAL": optional})
    assert proc.stdout.splitlines() == ["test-interpreters: python3.99: not installed, skipped",
                                        "test-interpreters: python2.1: not installed, skipped"]
    assert proc.returncode == code and "none of 3.99 2.1 is installed" in proc.stderr
