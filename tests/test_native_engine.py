"""The native engine behind the engine layer: selection, results, progress,
cancellation, vanished files and streaming memory."""

from __future__ import annotations

import os
import subprocess
import sys
import tracemalloc

import pytest

import syncengine
from syncengine import SyncError, SyncOptions
from syncengine.engines import resolve_engine_name
from syncengine.engines.native import NativeEngine
from tests.snapshot import snapshot


def make_files(root, count, size=100, per_dir=None):
    root.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        d = root if per_dir is None else root / f"d{i // per_dir:04d}"
        d.mkdir(exist_ok=True)
        (d / f"f{i:06d}").write_bytes(bytes([i % 251]) * size)


@pytest.fixture
def no_rsync_path(tmp_path, monkeypatch):
    """A PATH on which rsync cannot be found (python and coreutils can)."""
    bindir = tmp_path / "bin-without-rsync"
    bindir.mkdir()
    monkeypatch.setenv("PATH", str(bindir))
    monkeypatch.delenv("SYNCENGINE_ENGINE", raising=False)
    return bindir


def test_auto_falls_back_to_native_without_rsync(tmp_path, no_rsync_path):
    src = tmp_path / "src"
    make_files(src, 5)
    assert resolve_engine_name("auto") == "python"
    result = syncengine.sync(f"{src}/", tmp_path / "dst")
    assert result.engine == "python" and result.exit_code == 0
    assert sorted(os.listdir(tmp_path / "dst")) == sorted(os.listdir(src))


def test_engines_command_without_rsync(no_rsync_path):
    env = dict(os.environ)
    proc = subprocess.run([sys.executable, "-m", "syncengine", "engines", "--json"],
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert '"auto": "python"' in proc.stdout and '"available": false' in proc.stdout


def test_result_counts(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    make_files(src, 10, size=1000)
    (dst).mkdir()
    (dst / "stale1").write_bytes(b"x")
    (dst / "stale2").mkdir()
    result = syncengine.sync(f"{src}/", dst, engine="python")
    assert result.files_transferred == 10
    assert result.bytes_transferred == 10 * 1000
    assert result.bytes_total == 10 * 1000
    assert result.files_deleted == 2
    again = syncengine.sync(f"{src}/", dst, engine="python")
    assert (again.files_transferred, again.files_deleted, again.bytes_transferred) == (0, 0, 0)


def test_progress_is_monotonic_and_ends_at_100(tmp_path):
    src = tmp_path / "src"
    make_files(src, 300, size=3000, per_dir=30)
    samples = []
    job = syncengine.start_sync(f"{src}/", tmp_path / "dst", engine="python",
                                on_progress=lambda p: samples.append(p.percent))
    polled = []
    while not job.done():
        polled.append(job.progress())
    job.wait()
    polled.append(job.progress())
    assert samples and all(0 <= p <= 100 for p in samples)
    assert samples[-1] == pytest.approx(100.0)
    assert polled == sorted(polled)
    assert polled[-1] == 100.0


def test_cancel_stops_with_exit_20_and_leaves_no_temp_files(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    make_files(src, 400, size=2000, per_dir=50)
    calls = []

    def on_progress(sample):
        calls.append(sample)
        if len(calls) == 25:
            job.cancel()

    job = NativeEngine().start(f"{src}/", str(dst), SyncOptions(), on_progress=on_progress)
    with pytest.raises(SyncError) as info:
        job.wait(timeout=60)
    assert info.value.exit_code == 20
    written = [p for p in dst.rglob("*") if p.is_file()]
    assert 0 < len(written) < 400
    assert not [p for p in written if p.name.startswith(".")]
    # A run after the cancelled one converges.
    syncengine.sync(f"{src}/", dst, engine="python")
    assert len([p for p in dst.rglob("*") if p.is_file()]) == 400


def test_vanished_source_file_is_a_warning_with_exit_24(tmp_path, monkeypatch):
    # (the file must vanish before its copy: the writer process could copy
    # it ahead of the progress record that removes it)
    monkeypatch.setenv("SYNCENGINE_WRITER", "0")
    src, dst = tmp_path / "src", tmp_path / "dst"
    make_files(src, 20)
    doomed = src / "f000015"

    def on_progress(sample):
        if doomed.exists() and sample.files_transferred == 3:
            doomed.unlink()

    result = syncengine.sync(f"{src}/", dst, engine="python", on_progress=on_progress)
    assert result.exit_code == 24
    assert any("file has vanished" in line and "f000015" in line for line in result.warnings)
    assert not (dst / "f000015").exists()
    assert len(os.listdir(dst)) == 19


def test_source_is_never_modified(tmp_path):
    src = tmp_path / "src"
    make_files(src, 30, per_dir=10)
    os.symlink("d0000/f000001", src / "link")
    os.link(src / "d0000" / "f000002", src / "hard")
    before = snapshot(src)
    dst = tmp_path / "dst"
    dst.mkdir()
    (dst / "junk").write_text("x")
    syncengine.sync(f"{src}/", dst, engine="python")
    syncengine.sync(str(src), dst, engine="python")
    assert snapshot(src) == before


@pytest.mark.slow
def test_walk_streams_instead_of_holding_the_tree(tmp_path):
    """Python-side memory stays far below what per-entry records for the
    whole tree would take."""
    src = tmp_path / "src"
    entries = 40_000
    make_files(src, entries, size=0, per_dir=100)
    tracemalloc.start()
    try:
        syncengine.sync(f"{src}/", tmp_path / "dst", engine="python")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Holding even a name and a stat result per entry would exceed 10 MB.
    assert peak < 4 * 1024 * 1024, f"peak traced memory {peak / 2**20:.1f} MiB"
