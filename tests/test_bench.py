"""The benchmark runs (a CI-sized run checks that it works; it times nothing)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


SHAPES = ("bench", "mixed", "wide", "deep", "big", "corpus")
SCENARIOS = ("initial copy", "nothing changed", "1% changed (same size and mtime)", "10% deleted")
SECONDS = r"\d+\.\d{3} s"


@pytest.mark.slow
@pytest.mark.rsync
def test_engine_bench_quick_run_reports_every_shape_and_scenario(tmp_path):
    proc = subprocess.run([sys.executable, str(BENCH / "bench_engines.py"), "--quick",
                           "--work", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = {(m[1], m[2]): [c.strip() for c in m[3].split("|")]
            for m in re.finditer(r"^\| (\w+) \| ([^|]+?) \|(.*)\|$", proc.stdout, re.M)}
    for shape in SHAPES:
        for scenario in SCENARIOS:
            native, rsync, cp, vs_rsync, vs_cp = rows[shape, scenario]
            assert re.fullmatch(SECONDS, native) and re.fullmatch(SECONDS, rsync), proc.stdout
            assert re.fullmatch(r"\d+\.\d\d", vs_rsync)
            # cp -a only copies: it is timed, and compared, for the initial copy alone
            timed_cp = scenario == "initial copy"
            assert bool(re.fullmatch(SECONDS, cp)) == timed_cp
            assert bool(re.fullmatch(r"\d+\.\d\d", vs_cp)) == timed_cp
        # peak RSS of an initial copy and a re-run, for each engine
        assert re.search(rf"^\| {shape} \| \d+\.\d \| \d+\.\d \| \d+\.\d \| \d+\.\d \|$",
                         proc.stdout, re.M), proc.stdout
    assert not list(tmp_path.iterdir()), "the bench leaves its scratch dir behind"


@pytest.mark.slow
@pytest.mark.rsync
def test_engine_bench_scaling_and_one_cpu(tmp_path):
    proc = subprocess.run([sys.executable, str(BENCH / "bench_engines.py"), "--quick", "--one-cpu",
                           "--shapes", "wide", "--only", "initial", "--no-memory",
                           "--scaling", "500,1000", "--work", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "pinned to CPU 0" in proc.stdout
    assert re.search(rf"^\| wide \| initial copy \| {SECONDS} \| {SECONDS} \| {SECONDS} \|",
                     proc.stdout, re.M)
    for n in ("500", "1,000"):
        for who in ("native", "rsync"):
            assert re.search(rf"^\| {n} \| {who} \| \d+\.\d \| \d+\.\d \| \d+\.\d \| \d+\.\d \|$",
                             proc.stdout, re.M), proc.stdout


@pytest.mark.slow   # (the bench itself: a few seconds)
def test_filter_bench_runs():
    proc = subprocess.run([sys.executable, str(BENCH / "bench_filters.py")], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"100,?000", proc.stdout)
