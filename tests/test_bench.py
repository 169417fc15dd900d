"""The benchmark runs (a CI-sized run checks that it works; it times nothing)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


@pytest.mark.slow
@pytest.mark.rsync
def test_engine_bench_quick_run_reports_every_scenario(tmp_path):
    proc = subprocess.run([sys.executable, str(BENCH / "bench_engines.py"), "--quick",
                           "--work", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = {m[1]: m[2] for m in re.finditer(r"^\| ([^|]+?) \|(.*)\|$", proc.stdout, re.M)}
    for scenario in ("initial copy", "nothing changed", "1% changed (same size and mtime)",
                     "10% deleted"):
        assert scenario in rows, proc.stdout
        cells = [c.strip() for c in rows[scenario].split("|")]
        assert re.fullmatch(r"\d+\.\d{3} s", cells[0]) and re.fullmatch(r"\d+\.\d{3} s", cells[1])
        assert re.fullmatch(r"\d+\.\d\d", cells[-1])  # the native / rsync ratio
    # peak RSS of an initial copy and of a re-run
    assert re.search(r"^\| native \| \d+\.\d \| \d+\.\d \|$", proc.stdout, re.M)
    assert re.search(r"^\| rsync \| \d+\.\d \| \d+\.\d \|$", proc.stdout, re.M)
    assert not list(tmp_path.iterdir()), "the bench leaves its scratch dir behind"


def test_filter_bench_runs():
    proc = subprocess.run([sys.executable, str(BENCH / "bench_filters.py")], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"100,?000", proc.stdout)
