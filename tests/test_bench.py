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
        # peak RSS of an initial copy and a re-run, for each engine, and their processes
        assert re.search(rf"^\| {shape} \| \d+\.\d \| \d+\.\d \| \d+\.\d \| \d+\.\d \| "
                         rf"[1-9]\d*, [1-9]\d* \| [1-9]\d*, [1-9]\d* \|$", proc.stdout, re.M), proc.stdout
    assert not list(tmp_path.iterdir()), "the bench leaves its scratch dir behind"


@pytest.mark.slow
@pytest.mark.rsync
def test_engine_bench_scaling_and_one_cpu(tmp_path):
    proc = subprocess.run([sys.executable, str(BENCH / "bench_engines.py"), "--quick", "--one-cpu",
                           "--shapes", "wide", "--only", "initial", "--scaling", "500,1000",
                           "--work", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "pinned to CPU 0" in proc.stdout
    assert re.search(rf"^\| wide \| initial copy \| {SECONDS} \| {SECONDS} \| {SECONDS} \|",
                     proc.stdout, re.M)
    # on one CPU the native engine starts no helper process (initial copy, re-run)
    assert re.search(r"^\| wide \| [\d.]+ \| [\d.]+ \| [\d.]+ \| [\d.]+ \| 1, 1 \| \d+, \d+ \|$",
                     proc.stdout, re.M), proc.stdout
    per_entry, times, mib = r"\d+\.\d", r"\d+\.\d\d", r"\d+\.\d"
    for n in ("500", "1,000"):
        for who in ("native", "rsync"):
            versus = rf"{times} \| {times}" if who == "native" else r" \| "
            # per entry: initial, re-run; native / rsync; growth against 500 entries; peak RSS
            growth = r"1\.00 \| 1\.00" if n == "500" else rf"{times} \| {times}"
            assert re.search(rf"^\| {n} \| {who} \| {per_entry} \| {per_entry} \| {versus} \| "
                             rf"{growth} \| {mib} \| {mib} \|$", proc.stdout, re.M), proc.stdout
    assert re.search(r"^The fixed cost in each figure \(an empty tree: initial copy, re-run\): "
                     r"native \d+\.\d{3} s, \d+\.\d{3} s; rsync \d+\.\d{3} s, \d+\.\d{3} s\.$",
                     proc.stdout, re.M), proc.stdout
    assert not list(tmp_path.iterdir()), "the bench leaves its scratch dir behind"


@pytest.mark.slow
@pytest.mark.rsync
def test_engine_bench_snapshot_of_an_unchanged_tree_adds_only_dirs(tmp_path):
    proc = subprocess.run([sys.executable, str(BENCH / "bench_engines.py"), "--quick", "--snapshots",
                           "--shapes", "bench,mixed", "--only", "unchanged", "--no-memory",
                           "--work", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = {(m[1], m[2]): m.groups()[2:] for m in re.finditer(
        rf"^\| (\w+) \| (native, backup --snapshot|native, syncengine rsync|rsync) \| ({SECONDS}) "
        r"\| (\d+\.\d\d) \| (\d+) \| (\d+) \| (\d+\.\d) \| (\d+\.\d) \|$", proc.stdout, re.M)}
    for shape in ("bench", "mixed"):
        assert (shape, "nothing changed") in {(m[1], m[2]) for m in re.finditer(
            r"^\| (\w+) \| ([^|]+?) \|", proc.stdout, re.M)}
        by_rsync = rows[shape, "rsync"]
        assert by_rsync[1] == "1.00"
        for who in ("native, backup --snapshot", "native, syncengine rsync"):
            seconds, ratio, dirs, others, data, allocated = rows[shape, who]
            # every file of the unchanged tree is a hard link to the previous snapshot's
            assert (others, data) == ("0", "0.0"), proc.stdout
            # and every dir is new: the tree's (as rsync's), plus <ID>/ and volumes/
            # for a snapshot made by backup --snapshot
            made_by_backup = who == "native, backup --snapshot"
            assert int(dirs) == int(by_rsync[2]) + (2 if made_by_backup else 0), proc.stdout
        assert (by_rsync[3], by_rsync[4]) == ("0", "0.0") and int(by_rsync[2]) > 1
    assert not list(tmp_path.iterdir()), "the bench leaves its scratch dir behind"


@pytest.mark.slow   # (the bench itself: a few seconds)
def test_filter_bench_runs():
    proc = subprocess.run([sys.executable, str(BENCH / "bench_filters.py")], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"100,?000", proc.stdout)
