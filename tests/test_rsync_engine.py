"""The rsync engine: argv builder, progress2 parser (unit cases and real
rsync output captured here), job progress/cancel, missing or broken rsync,
and engine selection."""

from __future__ import annotations

import itertools
import os
import re
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fixtures.treespec import build_tree, load_spec
from syncengine import SyncError, SyncOptions, get_engine, resolve_engine_name, start_sync, sync
from syncengine.engines.native import NativeEngine
from syncengine.engines.rsync import (
    Progress2Parser,
    RsyncEngine,
    build_argv,
    parse_progress2,
    rsync_version,
    version_tuple,
)
from tests.conftest import SEED_FLAGS, env_without_rsync
from tests.snapshot import assert_same_tree

FLAGS = list(SEED_FLAGS)


# -- the argv builder ------------------------------------------------------------------

@pytest.mark.parametrize("options, expected", [
    (SyncOptions(),
     ["rsync", "--delete", *FLAGS, "/src/", "/dst/"]),
    (SyncOptions(delete=False),
     ["rsync", *FLAGS, "/src/", "/dst/"]),
    (SyncOptions(exclude=("*.tmp", "cache/")),
     ["rsync", "--delete", "--exclude=*.tmp", "--exclude=cache/", *FLAGS, "/src/", "/dst/"]),
    (SyncOptions(delete=False, exclude=("b", "a", "b")),  # order and repeats kept
     ["rsync", "--exclude=b", "--exclude=a", "--exclude=b", *FLAGS, "/src/", "/dst/"]),
    (SyncOptions(exclude=("it's a $(trap); rm -rf *", "-x", " lead")),  # no shell, no quoting
     ["rsync", "--delete", "--exclude=it's a $(trap); rm -rf *", "--exclude=-x",
      "--exclude= lead", *FLAGS, "/src/", "/dst/"]),
])
def test_argv_is_exactly_the_seeds(options, expected):
    assert build_argv("/src/", "/dst/", options) == expected


def test_argv_keeps_paths_verbatim_and_uses_the_given_binary():
    argv = build_argv("/data/main", "/backup/with space/", SyncOptions(), rsync="/opt/bin/rsync")
    assert argv == ["/opt/bin/rsync", "--delete", *FLAGS, "/data/main", "/backup/with space/"]


def test_the_engine_runs_the_built_argv(tmp_path, rsync_required):
    """What the engine actually executes (seen by a recording stand-in)."""
    record = tmp_path / "argv.txt"
    fake = tmp_path / "fake-rsync"
    fake.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > "{record}"\n')
    fake.chmod(0o755)
    opts = SyncOptions(exclude=("*.log",))
    RsyncEngine(rsync=str(fake)).start("/a b/", "/c/", opts).wait()
    assert record.read_text().splitlines() == build_argv("/a b/", "/c/", opts)[1:]


# -- parse_progress2: unit cases --------------------------------------------------------

@pytest.mark.parametrize("record, fields", [
    (b"      5,000,000  99%  592.14MB/s    0:00:00 (xfr#1, to-chk=900/932)",
     (5_000_000, 99.0, 1, 900, 932)),
    (b"         32,768   0%    0.00kB/s    0:00:00  ",  # the opening record, no counts
     (32_768, 0.0, 0, None, None)),
    (b"              0 100%    0.00kB/s    0:00:00 (xfr#0, to-chk=0/0)",
     (0, 100.0, 0, 0, 0)),
    (b" 12,345,678,901  45%    1.23GB/s    1:02:03 (xfr#1234, to-chk=5/99999)",
     (12_345_678_901, 45.0, 1234, 5, 99999)),
    (b"        123,456  10%  999.99kB/s  123:00:00 (xfr#3, ir-chk=10/20)",
     (123_456, 10.0, 3, 10, 20)),
    (b"      1.234.567  12%    1,23MB/s    0:00:01 (xfr#3, to-chk=4/10)",  # comma-decimal locale
     (1_234_567, 12.0, 3, 4, 10)),
])
def test_progress_records_parse(record, fields):
    sample = parse_progress2(record)
    assert sample is not None
    got = (sample.bytes_done, sample.percent, sample.files_transferred, sample.to_check,
           sample.total_entries)
    assert got == fields


@pytest.mark.parametrize("record", [
    b"",
    b"skipping non-regular file \"special/pipe\"",
    b"deleting old/file.txt",
    b"rsync: [sender] change_dir \"/nope\" failed: No such file or directory (2)",
    b"99% done",
    b"   1,000  50%",  # truncated record
    b"10 50% 1.00kB/s 0:00:00 extra words",
])
def test_other_lines_are_not_progress(record):
    assert parse_progress2(record) is None


def test_the_seeds_regex_bug_is_gone():
    # The seed's /$([0-9.]+)%/ anchors at the end *before* the number, so it
    # never matched; percentages must come out.
    sample = parse_progress2(b"        100,000  37%   10.00MB/s    0:00:00 (xfr#1, to-chk=1/3)")
    assert sample is not None and sample.percent == 37.0


def _feed_all(chunks) -> list[tuple[object, bytes]]:
    parser = Progress2Parser()
    out = []
    for chunk in chunks:
        out.extend(parser.feed(chunk))
    out.extend(parser.flush())
    return out


def test_a_record_is_only_emitted_once_complete():
    parser = Progress2Parser()
    assert list(parser.feed(b"\r      1,000  10%    1.00kB/s    0:00:0")) == []
    got = list(parser.feed(b"1 (xfr#1, to-chk=1/2)\r   2,0"))
    assert [(s.bytes_done, s.percent, s.to_check) for s, _ in got] == [(1000, 10.0, 1)]
    got = list(parser.feed(b"00  20%    1.00kB/s    0:00:00 (xfr#2, to-chk=0/2)\n"))
    assert [(s.bytes_done, s.files_transferred) for s, _ in got] == [(2000, 2)]
    assert list(parser.flush()) == []


def test_an_unterminated_last_record_comes_out_on_flush():
    parser = Progress2Parser()
    assert list(parser.feed(b"      5  50%    0.00kB/s    0:00:00 (xfr#1, to-chk=0/1)")) == []
    (sample, record), = parser.flush()
    assert sample.bytes_done == 5 and record.endswith(b"to-chk=0/1)")


def test_message_lines_pass_through_as_records():
    got = _feed_all([b"deleting x\n      5 100%    0.00kB/s    0:00:00 (xfr#1, to-chk=0/1)\r",
                     b"skipping non-regular file \"p\"\n"])
    assert [(s is not None, r) for s, r in got] == [
        (False, b"deleting x"),
        (True, b"      5 100%    0.00kB/s    0:00:00 (xfr#1, to-chk=0/1)"),
        (False, b'skipping non-regular file "p"'),
    ]


# -- real rsync output, captured here ------------------------------------------------------

def _tree_facts(root: Path) -> dict:
    """Independent counts for the progress stream: entries (root included),
    regular-file inodes and their bytes (a hard-linked inode counts once)."""
    entries, inodes, size = 0, set(), 0
    for dirpath, dirnames, filenames in os.walk(root):
        entries += 1  # the directory itself
        for name in dirnames + filenames:
            st = os.lstat(os.path.join(dirpath, name))
            if stat.S_ISDIR(st.st_mode):
                continue  # counted when walked
            entries += 1
            if stat.S_ISREG(st.st_mode) and (st.st_dev, st.st_ino) not in inodes:
                inodes.add((st.st_dev, st.st_ino))
                size += st.st_size
    return {"entries": entries, "files": len(inodes), "bytes": size}


@pytest.fixture(scope="module")
def captured_progress(tmp_path_factory):
    """The system rsync's exact stdout for a few-MB generated tree (the engine
    parses whatever rsync the system has)."""
    from tests.conftest import rsync_path_or_skip
    rsync = rsync_path_or_skip()
    root = tmp_path_factory.mktemp("progress")
    spec = [{"path": f"big/f{i:02}.bin", "size": 250_000 + i, "seed": i} for i in range(16)]
    spec += [{"path": f"small/s{i:03}.txt", "content": f"small {i}\n" * (i + 1)} for i in range(60)]
    spec += [{"path": "small/deep/er/leaf", "content": "leaf"},
             {"path": "empty-dir", "type": "dir"},
             {"path": "link", "target": "big/f00.bin"},
             {"path": "dangling", "target": "missing"},
             {"path": "small/hard-copy", "link": "big/f03.bin"}]
    build_tree(root / "src", spec)
    proc = subprocess.run([rsync, *FLAGS, f"{root}/src/", f"{root}/dst/"], capture_output=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout, _tree_facts(root / "src")


def test_real_rsync_stream_parses_completely(captured_progress):
    stream, facts = captured_progress
    assert facts["bytes"] > 4_000_000  # "a few MB"
    records = _feed_all([stream])
    # Records are exactly the \r / \n separated, non-blank pieces of stream.
    expected = [piece for piece in stream.replace(b"\n", b"\r").split(b"\r") if piece.strip()]
    assert [r for _, r in records] == expected
    # Without -v, rsync writes nothing but progress records to stdout.
    unparsed = [r for s, r in records if s is None]
    assert unparsed == []
    samples = [s for s, _ in records]
    assert len(samples) >= 2
    final = samples[-1]
    assert final.files_transferred == facts["files"]
    assert final.total_entries == facts["entries"]
    assert final.to_check == 0
    assert final.bytes_done == facts["bytes"]
    for before, after in itertools.pairwise(samples):
        assert after.percent >= before.percent
        assert after.bytes_done >= before.bytes_done
        assert after.files_transferred >= before.files_transferred


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_real_stream_split_anywhere_gives_the_same_records(captured_progress, data):
    stream, _ = captured_progress
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=40)))
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    whole = _feed_all([stream])
    assert _feed_all(chunks) == whole


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_real_stream_fed_byte_by_byte_around_a_random_region(captured_progress, data):
    stream, _ = captured_progress
    start = data.draw(st.integers(0, len(stream)))
    end = data.draw(st.integers(start, min(len(stream), start + 200)))
    chunks = [stream[:start], *(stream[i:i + 1] for i in range(start, end)), stream[end:]]
    assert _feed_all(chunks) == _feed_all([stream])


# -- jobs: result, progress, cancel ---------------------------------------------------------

@pytest.mark.rsync
def test_sync_result_counts_match_the_tree(tmp_path):
    # Times in the past: rsync keeps a same-second destination time for
    # dirs and symlinks (rsync-semantics §10), which "now" would hit.
    t = 1_600_000_000_123_456_789
    spec = [{"path": ".", "mtime_ns": t}, {"path": "d", "type": "dir", "mtime_ns": t + 1}]
    spec += [{"path": f"d/f{i}", "size": 10_000, "seed": i, "mtime_ns": t + 2} for i in range(5)]
    spec += [{"path": "l", "target": "d/f0", "mtime_ns": t + 3}, {"path": "d/h", "link": "d/f1"}]
    build_tree(tmp_path / "src", spec)
    result = sync(f"{tmp_path}/src/", f"{tmp_path}/dst", engine="rsync")
    assert (result.engine, result.exit_code, result.ok) == ("rsync", 0, True)
    assert result.files_transferred == 5
    assert result.bytes_transferred == 50_000
    assert (result.src, result.dst) == (f"{tmp_path}/src/", f"{tmp_path}/dst")
    assert_same_tree(tmp_path / "src", tmp_path / "dst")
    # Second run: nothing to transfer.
    again = sync(f"{tmp_path}/src/", f"{tmp_path}/dst", engine="rsync")
    assert again.files_transferred == 0


@pytest.mark.sampled(1, "slow runs")
def test_progress_is_monotonic_reaches_100_and_reports_samples(tmp_path, throttled_rsync):
    build_tree(tmp_path / "src", [{"path": "big", "size": 1_500_000, "seed": 1},
                                  {"path": "small", "content": "x"}])
    samples = []
    job = RsyncEngine(rsync=throttled_rsync(1000)).start(
        f"{tmp_path}/src/", f"{tmp_path}/dst", SyncOptions(), on_progress=samples.append)
    assert job.progress() < 100.0
    seen = []
    while not job.done():
        seen.append(job.progress())
        time.sleep(0.02)
    result = job.wait()
    seen.append(job.progress())
    assert result.exit_code == 0
    assert seen == sorted(seen), "progress() went backwards"
    assert any(0.0 < p < 100.0 for p in seen), "no intermediate progress was visible"
    assert seen[-1] == 100.0
    assert [s.bytes_done for s in samples] == sorted(s.bytes_done for s in samples)
    assert samples[-1].bytes_done == 1_500_001


@pytest.mark.sampled(1, "slow runs")
def test_cancel_stops_a_running_rsync_with_exit_20(tmp_path, throttled_rsync):
    build_tree(tmp_path / "src", [{"path": "big", "size": 3_000_000, "seed": 2}])
    started = threading.Event()
    job = RsyncEngine(rsync=throttled_rsync(300)).start(
        f"{tmp_path}/src/", f"{tmp_path}/dst", SyncOptions(),
        on_progress=lambda sample: started.set())
    assert started.wait(10), "rsync never reported progress"
    assert not job.done()
    t0 = time.monotonic()
    job.cancel()
    with pytest.raises(SyncError) as info:
        job.wait(timeout=10)
    assert time.monotonic() - t0 < 5
    assert info.value.exit_code == 20
    assert job.cancelled
    # The half-copied file never appears under its real name.
    assert not (tmp_path / "dst" / "big").exists()
    # Every rsync process of the job (its helpers too) has stopped running.
    deadline = time.monotonic() + 5
    while _running_in_group(job.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _running_in_group(job.pid) == []


def _running_in_group(pgid: int) -> list[int]:
    """Pids in process group ``pgid`` that are not zombies (a zombie whose
    parent exited waits for PID 1 to reap it, which some containers never do)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != b"Z":
            pids.append(int(entry))
    return pids


@pytest.mark.rsync
def test_start_sync_returns_at_once_with_an_id(tmp_path, throttled_rsync):
    build_tree(tmp_path / "src", [{"path": "f", "size": 400_000, "seed": 3}])
    t0 = time.monotonic()
    jobs = [start_sync(f"{tmp_path}/src/", f"{tmp_path}/dst{i}", engine="rsync") for i in range(2)]
    assert time.monotonic() - t0 < 2
    assert jobs[0].id != jobs[1].id and all(isinstance(j.id, str) and j.id for j in jobs)
    assert [j.wait().exit_code for j in jobs] == [0, 0]


@pytest.mark.rsync
def test_a_real_rsync_failure_raises_syncerror_with_rsyncs_code_and_stderr(tmp_path):
    with pytest.raises(SyncError) as info:
        sync(f"{tmp_path}/missing/", f"{tmp_path}/dst", engine="rsync")
    assert info.value.exit_code == 23
    assert "change_dir" in info.value.stderr
    assert "exit code 23" in str(info.value)
    assert info.value.result is not None and info.value.result.exit_code == 23


# -- rsync missing or broken ------------------------------------------------------------------

def _script(tmp_path: Path, name: str, body: str) -> str:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)


def test_an_rsync_path_that_does_not_exist_is_a_clear_syncerror(tmp_path):
    engine = RsyncEngine(rsync="/nonexistent/rsync")
    assert engine.available() is False
    assert engine.version() is None
    with pytest.raises(SyncError, match="/nonexistent/rsync") as info:
        engine.start(str(tmp_path), str(tmp_path / "dst"))
    assert info.value.exit_code != 0
    assert not (tmp_path / "dst").exists()


def test_no_rsync_on_path_is_a_clear_syncerror(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    assert RsyncEngine().available() is False
    # (SRC and DST side by side: the library refuses a DST inside SRC)
    with pytest.raises(SyncError, match="rsync is not installed"):
        sync(str(tmp_path / "src"), str(tmp_path / "dst"), engine="rsync")
    with pytest.raises(SyncError, match="rsync is not installed"):
        RsyncEngine().start(str(tmp_path / "src"), str(tmp_path / "dst"))


def test_a_non_executable_rsync_is_a_clear_syncerror(tmp_path):
    path = tmp_path / "rsync"
    path.write_text("not a program")
    path.chmod(0o644)
    assert RsyncEngine(rsync=str(path)).available() is False
    with pytest.raises(SyncError, match="cannot run"):
        RsyncEngine(rsync=str(path)).start(str(tmp_path), str(tmp_path / "dst"))


def test_a_broken_rsync_fails_with_its_code_and_stderr(tmp_path):
    broken = _script(tmp_path, "rsync", 'echo "rsync: fatal: libfoo.so missing" >&2\nexit 12\n')
    engine = RsyncEngine(rsync=broken)
    assert engine.available() is False  # does not answer --version
    with pytest.raises(SyncError) as info:
        engine.start(str(tmp_path), str(tmp_path / "dst")).wait()
    assert info.value.exit_code == 12
    assert "libfoo.so missing" in info.value.stderr
    assert "libfoo.so missing" in str(info.value)


def test_an_rsync_older_than_3_1_is_refused_in_one_line(tmp_path, no_engine_env, monkeypatch):
    """rsync 3.0.9 rejects --info=progress2: the engine says so before running it,
    and auto falls back to the native engine."""
    marker = tmp_path / "ran"
    old = _script(tmp_path, "rsync",
                  'if [ "$1" = --version ]; then echo "rsync  version 3.0.9  protocol version 30"; '
                  f'exit 0; fi\ntouch {marker}\nexit 1\n')
    engine = RsyncEngine(rsync=old)
    assert engine.available() is False
    reason = engine.unusable_reason()
    assert reason is not None and "\n" not in reason
    assert "rsync 3.0.9" in reason and "3.1.0 or newer" in reason
    with pytest.raises(SyncError, match="3.1.0 or newer") as info:
        engine.start(str(tmp_path), str(tmp_path / "dst"))
    assert info.value.exit_code == 127 and not marker.exists()
    monkeypatch.setenv("PATH", str(tmp_path))
    assert resolve_engine_name("auto") == "python"


@pytest.mark.parametrize("text, expected", [
    ("3.5.0", (3, 5, 0)), ("3.2.7", (3, 2, 7)), ("3.1.0pre1", (3, 1, 0)), ("3.0.9", (3, 0, 9)),
    ("3.4.1dev", (3, 4, 1)),
])
def test_version_tuple_reads_rsyncs_version_strings(text, expected):
    assert version_tuple(text) == expected


def test_exit_24_is_a_warning_on_the_result_not_an_error(tmp_path):
    vanished = _script(tmp_path, "rsync",
                       'echo "file has vanished: \\"/src/x\\"" >&2\nexit 24\n')
    result = RsyncEngine(rsync=vanished).start(str(tmp_path), str(tmp_path / "dst")).wait()
    assert result.exit_code == 24
    assert result.ok
    assert any("vanished" in w for w in result.warnings)


def test_rsync_killed_by_a_signal_is_an_error(tmp_path):
    killed = _script(tmp_path, "rsync", "kill -KILL $$\n")
    with pytest.raises(SyncError) as info:
        RsyncEngine(rsync=killed).start(str(tmp_path), str(tmp_path / "dst")).wait()
    assert info.value.exit_code == 128 + 9


@pytest.mark.rsync
def test_version_is_rsyncs(rsync_required):
    out = subprocess.run([rsync_required, "--version"], capture_output=True, text=True).stdout
    version = RsyncEngine().version()
    assert version is not None and re.fullmatch(r"\d+\.\d+\.\d+\S*", version)
    assert f"version {version}" in " ".join(out.split()[:4])
    assert rsync_version(rsync_required) == version


# -- engine selection ---------------------------------------------------------------------------

@pytest.fixture
def no_engine_env(monkeypatch):
    monkeypatch.delenv("SYNCENGINE_ENGINE", raising=False)


@pytest.mark.rsync
def test_auto_picks_rsync_when_it_is_on_path(no_engine_env):
    assert resolve_engine_name("auto") == "rsync"
    assert resolve_engine_name(None) == "rsync"
    assert isinstance(get_engine(None), RsyncEngine)


def test_auto_picks_the_native_engine_without_rsync(no_engine_env, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert resolve_engine_name("auto") == "python"
    assert resolve_engine_name(None) == "python"


def test_auto_skips_an_rsync_that_does_not_answer_version(no_engine_env, monkeypatch, tmp_path):
    _script(tmp_path, "rsync", "exit 1\n")
    monkeypatch.setenv("PATH", str(tmp_path))
    assert resolve_engine_name("auto") == "python"


@pytest.mark.parametrize("env, arg, expected", [
    ("python", None, "python"),
    ("rsync", None, "rsync"),
    ("python", "rsync", "rsync"),   # an explicit choice beats the environment
    ("rsync", "python", "python"),
    ("", None, None),               # empty means unset: auto
])
def test_syncengine_engine_env_sets_the_default(monkeypatch, env, arg, expected):
    monkeypatch.setenv("SYNCENGINE_ENGINE", env)
    if expected is None:
        expected = resolve_engine_name("auto")
    assert resolve_engine_name(arg) == expected


@pytest.mark.parametrize("name", ["rsnyc", "native", "RSYNC", "fast"])
def test_unknown_engine_is_a_valueerror(monkeypatch, name):
    monkeypatch.delenv("SYNCENGINE_ENGINE", raising=False)
    with pytest.raises(ValueError, match="unknown engine"):
        resolve_engine_name(name)
    with pytest.raises(ValueError, match="unknown engine"):
        sync("/tmp", "/tmp/x", engine=name)
    monkeypatch.setenv("SYNCENGINE_ENGINE", name)
    with pytest.raises(ValueError, match="unknown engine"):
        resolve_engine_name(None)


def test_the_python_engine_works_or_refuses_clearly(tmp_path):
    """Written for both states of the native engine: while it is not
    available, asking for it is a clear SyncError; once it is, it must
    produce rsync's tree for a basic spec."""
    build_tree(tmp_path / "src", load_spec("basic"))
    if not NativeEngine().available():
        with pytest.raises(SyncError, match="not available"):
            sync(f"{tmp_path}/src/", f"{tmp_path}/dst", engine="python")
        assert not (tmp_path / "dst").exists()
        return
    result = sync(f"{tmp_path}/src/", f"{tmp_path}/dst", engine="python")
    assert (result.engine, result.exit_code) == ("python", 0)
    assert_same_tree(tmp_path / "src", tmp_path / "dst")


# -- the conftest's rsync gate itself ----------------------------------------------------------

@pytest.mark.parametrize("require, outcome", [("", "skipped"), ("1", "error")])
@pytest.mark.sampled(1, "slow runs")
def test_rsync_marker_skips_or_fails_without_rsync(tmp_path, require, outcome):
    test_file = tmp_path / "test_gate.py"
    test_file.write_text("import pytest\n\n"
                         "@pytest.mark.rsync\ndef test_marked():\n    pass\n\n"
                         "def test_fixture(rsync_required):\n    pass\n")
    env = env_without_rsync(tmp_path)
    env["SYNCENGINE_REQUIRE_RSYNC"] = require
    env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "tests.conftest", "-q", "-rA",
                           "-p", "no:cacheprovider", str(test_file)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    out = proc.stdout + proc.stderr
    if outcome == "skipped":
        assert proc.returncode == 0, out
        assert "2 skipped" in out
    else:
        assert proc.returncode == 1, out
        assert "2 error" in out
        assert "SYNCENGINE_REQUIRE_RSYNC=1" in out


@pytest.mark.rsync
@pytest.mark.sampled(1, "slow runs")
def test_a_failing_progress_callback_stops_rsync_and_surfaces(tmp_path, throttled_rsync):
    # At 300 kB/s this rsync would run for 10 s; the job must not leave it
    # running (nobody reads its output any more) once it has failed.
    build_tree(tmp_path / "src", [{"path": "big", "size": 3_000_000, "seed": 4}])

    def explode(sample):
        raise RuntimeError("display broke")

    job = RsyncEngine(rsync=throttled_rsync(300)).start(
        f"{tmp_path}/src/", f"{tmp_path}/dst", SyncOptions(), on_progress=explode)
    with pytest.raises(RuntimeError, match="display broke"):
        job.wait(timeout=10)
    deadline = time.monotonic() + 2
    while _running_in_group(job.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _running_in_group(job.pid) == [], "rsync was left running"
    assert not (tmp_path / "dst" / "big").exists()


@pytest.mark.rsync
def test_skipped_specials_are_counted_from_rsyncs_messages(tmp_path):
    t = 1_600_000_000_000_000_000
    build_tree(tmp_path / "src", [{"path": ".", "mtime_ns": t},
                                  {"path": "f", "content": "x", "mtime_ns": t},
                                  {"path": "pipe", "type": "fifo", "mtime_ns": t},
                                  {"path": "sock", "type": "socket", "mtime_ns": t}])
    result = sync(f"{tmp_path}/src/", f"{tmp_path}/dst", engine="rsync")
    assert result.exit_code == 0
    assert result.files_skipped == 2
    assert sorted(m for m in result.messages if "skipping" in m) == [
        'skipping non-regular file "pipe"', 'skipping non-regular file "sock"']
    assert sorted(os.listdir(tmp_path / "dst")) == ["f"]


@pytest.mark.rsync
def test_sync_takes_a_partial_options_mapping(tmp_path):
    build_tree(tmp_path / "src", [{"path": "a.txt", "content": "a"},
                                  {"path": "b.tmp", "content": "b"}])
    (tmp_path / "dst").mkdir()
    (tmp_path / "dst" / "old").write_text("kept: delete is off")
    sync(f"{tmp_path}/src/", f"{tmp_path}/dst", {"exclude": ["*.tmp"], "delete": False},
         engine="rsync")
    assert sorted(os.listdir(tmp_path / "dst")) == ["a.txt", "old"]
    sync(f"{tmp_path}/src/", f"{tmp_path}/dst", {"exclude": ["*.tmp"]}, engine="rsync")
    assert sorted(os.listdir(tmp_path / "dst")) == ["a.txt"]  # delete defaults to True
