"""``syncengine rsync ARGV``: the seed's rsync command line on the native
engine, compared with what the real rsync says and does."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from syncengine.standin import UsageError, parse_argv
from tests.conftest import run_rsync
from tests.reference import reference_rsync
from tests.snapshot import assert_same_tree

SEED_FLAGS = ["-rlptgocAXH", "--info=progress2", "--no-inc-recursive"]
SUFFIX = re.compile(r" at \S+\(\d+\) \[\w+=[\d.]+\]$")


def standin(*argv: str | bytes, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "syncengine", "rsync", *argv],
                          capture_output=True, cwd=cwd, timeout=120)


def normalized(stderr: bytes) -> list[str]:
    return [SUFFIX.sub("", line) for line in stderr.decode().splitlines()]


@pytest.mark.parametrize("argv", [
    ["-rlptgocAXH", "a", "b"],
    ["-r", "-l", "-p", "-t", "-g", "-o", "-c", "-A", "-X", "-H", "a", "b"],
    ["-rlpt", "-gocAXH", "a", "b"],
    ["-HXAcogtplr", "a", "b"],
])
def test_flag_letters_may_be_grouped_any_way(argv):
    args = parse_argv(argv)
    assert args.sources == ["a"] and args.dest == "b"
    assert args.letters == set("rlptgocAXH")


def test_seed_argv_is_understood():
    args = parse_argv(["--delete", "--exclude=*.tmp", "--exclude", "cache/", *SEED_FLAGS,
                       "src/", "dst/"])
    assert args.delete and args.progress2
    assert args.excludes == ["*.tmp", "cache/"]
    assert (args.sources, args.dest) == (["src/"], "dst/")


def test_several_sources():
    args = parse_argv(["-rlptgocAXH", "a", "b", "c", "dest"])
    assert args.sources == ["a", "b", "c"] and args.dest == "dest"


@pytest.mark.rsync
def test_several_sources_run_as_rsync_runs_them(tmp_path):
    """`syncengine rsync --delete src/ src2/ dst/` against rsync: one
    merged list (the first source wins a clash, --delete spares the names
    of both), and progress2's last record counts the list as rsync does,
    dropped duplicates too (issue 14)."""
    for side in ("real", "ours"):
        root = tmp_path / side
        for src, sizes in (("src", (1000, 0, 700)), ("src2", (3000, 500, 900))):
            (root / src / "d").mkdir(parents=True)
            for name, size in zip(("a", "b", "d/x"), sizes, strict=True):
                if size:
                    (root / src / name).write_bytes(bytes([len(src)]) * size)
            for p in ("a", "b", "d/x", "d", "."):
                if (root / src / p).exists():
                    os.utime(root / src / p, ns=(PAST, PAST))
        (root / "dst").mkdir()
        (root / "dst" / "old").write_bytes(b"old")
        os.utime(root / "dst", ns=(PAST, PAST))
    argv = ["--delete", *SEED_FLAGS, "src/", "src2/", "dst/"]
    real = run_rsync(*argv, cwd=tmp_path / "real")
    ours = standin(*argv, cwd=tmp_path / "ours")
    assert (ours.returncode, normalized(ours.stderr)) == (real.returncode, normalized(real.stderr))
    last = {side: proc.stdout.decode().rstrip("\n").split("\r")[-1]
            for side, proc in (("real", real), ("ours", ours))}
    counts = {side: re.search(r"(\d[\d,]*)\s+(\d+)%.*\((xfr#\d+, to-chk=\d+/\d+)\)",
                              text).groups() for side, text in last.items()}
    assert counts["ours"] == counts["real"]
    assert_same_tree(tmp_path / "real" / "dst", tmp_path / "ours" / "dst", root_mtime=False)
    assert (tmp_path / "ours" / "dst" / "a").read_bytes() == b"\x03" * 1000


@pytest.mark.parametrize("argv, message", [
    (["--foo", "-rlptgocAXH", "a", "b"], "rsync: --foo: unknown option"),
    (["-rlptgocAXHZ", "a", "b"], "rsync: -rlptgocAXHZ: unknown option"),
    (["--compress-level=3", "-rlptgocAXH", "a", "b"], "rsync: --compress-level: unknown option"),
    (["-rlptgocAXH", "--exclude"], "rsync: --exclude: missing argument"),
    (["--delete", "-lptgocAXH", "a", "b"],
     "rsync: --delete does not work without --recursive (-r) or --dirs (-d)."),
])
def test_refused_like_rsync(argv, message):
    with pytest.raises(UsageError) as info:
        parse_argv(argv)
    assert str(info.value) == message


@pytest.mark.parametrize("argv", [
    ["-rlptgoc", "a", "b"],          # a subset would need other semantics
    ["-rlptgocAXH", "a"],            # listing mode
    ["-rlptgocAXH", "host:src", "b"],
])
def test_what_the_native_engine_cannot_honour_is_refused(argv):
    with pytest.raises(UsageError):
        parse_argv(argv)


@pytest.mark.rsync
@pytest.mark.parametrize("argv", [
    ["--bogus", "-rlptgocAXH", "SRC", "DST"],
    ["-rlptgocAXHq9", "SRC", "DST"],
    ["-rlptgocAXH", "--exclude=- ", "SRC", "DST"],
    ["-rlptgocAXH", "--exclude=+ ", "SRC", "DST"],
])
@pytest.mark.sampled(2)
def test_usage_errors_match_rsync(tmp_path, argv):
    (tmp_path / "SRC").mkdir()
    real = run_rsync(*argv, cwd=tmp_path)
    ours = standin(*argv, cwd=tmp_path)
    assert ours.returncode == real.returncode == 1
    assert normalized(ours.stderr)[0] == normalized(real.stderr)[0]
    assert not (tmp_path / "DST").exists()


@pytest.mark.rsync
@pytest.mark.parametrize("src, dst, pre", [
    ("src/", "dst", None),
    ("src", "dst", None),
    ("src/", "dst/", "dir"),
    ("nope", "dst", None),
    ("nope/", "dst", None),
    ("src/", "miss/p/d", None),
    ("src/f", "miss/x", None),
    ("src", "file", "file"),
])
@pytest.mark.sampled(2)
def test_runs_and_exit_codes_match_rsync(tmp_path, src, dst, pre):
    for side in ("real", "ours"):
        root = tmp_path / side
        (root / "src" / "sub").mkdir(parents=True)
        (root / "src" / "f").write_bytes(b"payload\n")
        (root / "src" / "sub" / "g").write_bytes(b"x" * 5000)
        os.symlink("f", root / "src" / "link")
        for p in ("src/f", "src/sub/g", "src/link", "src/sub", "src"):
            os.utime(root / p, ns=(1_600_000_000_123_456_789,) * 2, follow_symlinks=False)
        if pre == "dir":
            (root / "dst").mkdir()
            (root / "dst" / "extra").write_bytes(b"to be deleted")
        elif pre == "file":
            (root / "file").write_bytes(b"a file")
            os.utime(root / "file", ns=(1_500_000_000_000_000_000,) * 2)
    argv = ["--delete", "--exclude=*.tmp", *SEED_FLAGS, src, dst]
    real = run_rsync(*argv, cwd=tmp_path / "real")
    ours = standin(*argv, cwd=tmp_path / "ours")
    assert ours.returncode == real.returncode, ours.stderr
    real_err = [line.replace(str(tmp_path / "real"), "ROOT") for line in normalized(real.stderr)]
    ours_err = [line.replace(str(tmp_path / "ours"), "ROOT") for line in normalized(ours.stderr)]
    assert ours_err == real_err
    # A destination dir made by the run has "now" as its time on both sides.
    made_now = {"dst", "miss"} - {pre}
    for name in sorted(os.listdir(tmp_path / "real")):
        assert_same_tree(tmp_path / "real" / name, tmp_path / "ours" / name,
                         root_mtime=name not in made_now)
    assert sorted(os.listdir(tmp_path / "real")) == sorted(os.listdir(tmp_path / "ours"))


@pytest.mark.rsync
def test_progress2_final_record_counts_match_rsync(tmp_path):
    for side in ("real", "ours"):
        src = tmp_path / side / "src"
        (src / "d").mkdir(parents=True)
        for i in range(5):
            (src / f"f{i}").write_bytes(os.urandom(1000 * (i + 1)))
        os.symlink("f0", src / "l")
    final = {}
    for side, run in (("real", run_rsync), ("ours", standin)):
        proc = run(*SEED_FLAGS, "src/", "dst", cwd=tmp_path / side)
        assert proc.returncode == 0
        text = proc.stdout.decode()
        assert text.endswith("\n") and "\r" in text
        last = text.rstrip("\n").split("\r")[-1]
        final[side] = re.search(r"(\d[\d,]*)\s+(\d+)%.*\((xfr#\d+, to-chk=\d+/\d+)\)", last).groups()
    assert final["ours"] == final["real"]


PAST = 1_600_000_000_123_456_789


def _with_a_closed(stream: str, argv: list[str], cwd) -> subprocess.Popen:
    """Run ``argv`` with its stdout or stderr a pipe nobody reads (as in
    ``| head``); returns it ended."""
    pipe = {stream: subprocess.PIPE}
    rest = {name: subprocess.DEVNULL for name in ("stdout", "stderr") if name != stream}
    proc = subprocess.Popen(argv, cwd=cwd, **pipe, **rest)
    getattr(proc, stream).close()
    proc.wait(timeout=120)
    return proc


@pytest.mark.rsync
@pytest.mark.parametrize("stream, sources", [
    ("stdout", ["src/"]),              # rsync goes on, its output lost
    ("stderr", ["missing", "src/"]),   # rsync ends at its first message: 13
])
@pytest.mark.sampled(1)
def test_a_reader_that_goes_away_is_met_as_rsync_meets_it(tmp_path, stream, sources):
    for side in ("real", "ours"):
        (tmp_path / side / "src" / "sub").mkdir(parents=True)
        for i in range(300):
            (tmp_path / side / "src" / "sub" / f"f{i:03d}").write_bytes(b"x" * i)
            os.utime(tmp_path / side / "src" / "sub" / f"f{i:03d}", ns=(PAST, PAST))
        os.utime(tmp_path / side / "src" / "sub", ns=(PAST, PAST))
    argv = ["-v", "--delete", *SEED_FLAGS, *sources, "dst"]
    real = _with_a_closed(stream, [reference_rsync(), *argv], tmp_path / "real")
    ours = _with_a_closed(stream, [sys.executable, "-m", "syncengine", "rsync", *argv],
                          tmp_path / "ours")
    assert ours.returncode == real.returncode == (0 if stream == "stdout" else 13)
    assert os.path.exists(tmp_path / "real" / "dst") == os.path.exists(tmp_path / "ours" / "dst")
    if stream == "stdout":
        assert_same_tree(tmp_path / "real" / "dst", tmp_path / "ours" / "dst", root_mtime=False)


# One run of progress records ("\r"-led, none ended), as what they say last.
_RECORDS = re.compile(r"(?:\r *[\d,]+ +\d+% +[\d.]+[kMG]B/s +\d+:\d\d:\d\d(?: \(xfr#\d+, "
                      r"to-chk=\d+/\d+\))? *)+")


def _screen(stdout: bytes, root) -> list[str]:
    """stdout as lines, each run of progress records shown by its last
    record's counts (the rates and times vary), and -v's closing lines as
    far as they are the same for a native sync (no protocol bytes)."""
    def records(match: re.Match) -> str:
        counts = re.findall(r"\(xfr#\d+, to-chk=\d+/\d+\)", match.group(0))
        return "<progress%s>" % (" " + counts[-1] if counts else "")
    text = _RECORDS.sub(records, stdout.decode()).replace(str(root), "ROOT")
    lines = text.split("\n")
    return [re.sub(r"speedup is [\d,.]+", "speedup is S", line) for line in lines
            if not line.startswith("sent ")]


@pytest.mark.rsync
@pytest.mark.parametrize("dry_run", [False, True], ids=["real", "dry-run"])
@pytest.mark.parametrize("progress", [False, True], ids=["", "progress2"])
@pytest.mark.parametrize("letters", ["-i", "-v", "-iv", ""])
@pytest.mark.sampled(2)
def test_what_is_printed_is_rsyncs_line_for_line(tmp_path, letters, progress, dry_run):
    """-i, -v and --info=progress2 together print what rsync prints, in its
    order: a dir's deletions before its own line, a progress record after
    the line of the file it counts and ended by a newline before the next
    line, to-chk counting the list's entries still to come."""
    for side in ("real", "ours"):
        root = tmp_path / side
        (root / "src" / "d").mkdir(parents=True)
        (root / "src" / "a").write_bytes(b"aaa\n")
        (root / "src" / "d" / "b").write_bytes(b"b" * 3000)
        (root / "src" / "d" / "c").write_bytes(b"c")
        os.symlink("a", root / "src" / "l")
        os.symlink("t" * 4095, root / "src" / "long")  # (its line is cut)
        (root / "dst" / "d" / "old").mkdir(parents=True)
        (root / "dst" / "x").write_bytes(b"x")
        (root / "dst" / "d" / "c").write_bytes(b"C")
        for p in ("src/a", "src/d/b", "src/d", "src", "dst/d", "dst", "dst/d/c", "src/d/c"):
            os.utime(root / p, ns=(PAST, PAST + (p.startswith("src") and 10**9)))
    argv = [*([letters] if letters else []), *(["--info=progress2"] if progress else []),
            *(["-n"] if dry_run else []), "--delete", "-rlptgocAXH", "--no-inc-recursive",
            "src/", "dst"]
    real = run_rsync(*argv, cwd=tmp_path / "real")
    ours = standin(*argv, cwd=tmp_path / "ours")
    assert ours.returncode == real.returncode == 0, ours.stderr
    screen, want = _screen(ours.stdout, tmp_path / "ours"), _screen(real.stdout, tmp_path / "real")
    # (rsync's record at the end of a file is now and then missing: only
    # its first one, without counts, is there)
    want = [mine if line == "<progress>" and mine.startswith("<progress ") else line
            for mine, line in zip(screen, want, strict=False)] + want[len(screen):]
    assert screen == want
    assert ours.stderr == real.stderr == b""
