"""-i (itemized changes) and -n (dry run), case by case, against the real
rsync: every scenario runs through ``harness.check`` with ``rsync -i`` (so
the itemized lines must be the very lines rsync prints, in its order) both
as a real run and as a dry run (which must change nothing, in either
engine).
The random suite (test_equivalence.py) itemizes half its examples and dry-
runs a quarter of them; these are the cases worth stating on their own, and
some lines are pinned to show what they look like.
"""

from __future__ import annotations

import os

import pytest

from syncengine.itemize import ItemChange, parse_line
from tests.snapshot import diff_snapshots, snapshot

from .harness import check, run_both
from .test_explicit import ROOT, SRC, case, d, f, ln

pytestmark = [pytest.mark.rsync, pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]

T = ROOT["mtime_ns"]

SCENARIOS = {
    "new destination": [*SRC],
    "nothing to do": [*SRC, d("dst", xattrs={"user.top": b"1"}), f("dst/f"), d("dst/sub"),
                      f("dst/sub/g", b"g" * 300), ln("dst/link", "f"), f("dst/empty", b"")],
    "contents and attributes": [
        *SRC, d("dst"), f("dst/f", b"DATA\n"), d("dst/sub", mode=0o700),
        f("dst/sub/g", b"g" * 299, mode=0o600), ln("dst/link", "elsewhere"),
        f("dst/empty", b"", mtime_ns=T + 5_000_000_000, uid=1234)],
    "acl, xattr, owner, group": [
        d("src"), f("src/acl", acl="u::rw-,g::r--,o::r--,m::r--,u:1234:r--"),
        f("src/xa", xattrs={"user.k": b"v"}), f("src/own", uid=1234, gid=4321),
        d("dst"), f("dst/acl"), f("dst/xa", xattrs={"user.other": b"1"}), f("dst/own")],
    "deletions, deep and shallow": [
        *SRC, d("dst"), d("dst/old"), d("dst/old/deeper"), f("dst/old/deeper/x"),
        f("dst/gone"), ln("dst/dangling", "nowhere")],
    "type changes": [
        d("src"), f("src/dir2file"), d("src/file2dir"), f("src/file2dir/inner"),
        ln("src/file2link", "t"), f("src/link2file"), d("src/link2dir"),
        d("dst"), d("dst/dir2file"), d("dst/dir2file/sub"), f("dst/dir2file/sub/a"),
        f("dst/file2dir"), f("dst/file2link"), ln("dst/link2file", "x"), ln("dst/link2dir", "y")],
    "hard links": [
        d("src"), f("src/a", b"A"), {"path": "src/b", "link": "src/a"},
        d("src/z"), {"path": "src/z/c", "link": "src/a"},
        f("src/p", b"P"), {"path": "src/q", "link": "src/p"},
        d("dst"), f("dst/a", b"A"), f("dst/b", b"B"), f("dst/p", b"P"), {"path": "dst/q", "link": "dst/p"}],
    "links over entries with xattrs": [
        d("src"), f("src/c", b"A"), {"path": "src/dir", "link": "src/c"},
        {"path": "src/e", "link": "src/c"},
        d("dst"), f("dst/c", b"A"), f("dst/dir", b"B", xattrs={"user.extra": b"1"}),
        ln("dst/e", "b", xattrs={"trusted.t": b"1"})],
    "links over a symlink and a file, source with an ACL": [
        d("src"), f("src/c", b"A", acl="u::rw-,g::r--,o::r--,m::r--,u:1234:r--"),
        {"path": "src/d", "link": "src/c"}, {"path": "src/e", "link": "src/c"},
        d("dst"), f("dst/c", b"A", acl="u::rw-,g::r--,o::r--,m::r--,u:1234:r--"),
        f("dst/d", b"B"), ln("dst/e", "x")],
    "a link over a fifo with an xattr": [
        d("src"), f("src/b", b"", acl="u::rw-,g::r--,o::r--,m::r--,u:1234:r--"),
        {"path": "src/c", "link": "src/b"},
        d("dst"), f("dst/b", b"", acl="u::rw-,g::r--,o::r--,m::r--,u:1234:r--"),
        {"path": "dst/c", "type": "fifo", "mode": 0o644, "mtime_ns": T,
         "xattrs": {"trusted.t": b""}}],
    "linked members whose xattrs are fixed in place": [
        d("src"), f("src/c", b"A", xattrs={"user.x": b"new"}), {"path": "src/dir", "link": "src/c"},
        d("dst"), f("dst/c", b"A", xattrs={"user.x": b"old"}), {"path": "dst/dir", "link": "dst/c"}],
    "excluded and protected": [
        *SRC, d("dst"), f("dst/keep.tmp"), d("dst/old"), f("dst/old/x.tmp"), f("dst/old/y")],
}


@pytest.mark.parametrize("dry_run", [False, True], ids=["real", "dry-run"])
@pytest.mark.parametrize("name", list(SCENARIOS))
@pytest.mark.sampled(4)
def test_itemized_lines_are_rsyncs(tmp_path, name, dry_run):
    rs, nat = check(case(*SCENARIOS[name], delete=True, excludes=[b"*.tmp"], itemize=True,
                         dry_run=dry_run), tmp_path)
    assert rs.code == nat.code == 0
    if name != "nothing to do":
        assert any(parse_line(line.encode()) for line in nat.out), nat.out


def test_dry_run_into_a_new_destination(tmp_path):
    """Everything is new, nothing is created: not even DST."""
    rs, nat = check(case(*SRC, itemize=True, dry_run=True), tmp_path)
    assert not (tmp_path / "b" / "dst").exists() and not (tmp_path / "a" / "dst").exists()
    assert "created directory dst" in nat.out
    assert {"cd+++++++++ ./", ">f+++++++++ f", "cL+++++++++ link -> f",
            "cd+++++++++ sub/", ">f+++++++++ sub/g"} <= set(nat.out)


def test_pinned_lines(tmp_path):
    """What the common lines look like (the same as rsync's: check())."""
    rs, nat = check(case(*SCENARIOS["type changes"], delete=True, itemize=True), tmp_path)
    lines = set(nat.out)
    assert "*deleting   dir2file/sub/a" in lines          # a replaced dir's contents ...
    assert not any(x.startswith("*deleting   dir2file/") and x.endswith("dir2file/")
                   for x in lines)                         # ... but not the dir itself
    assert ">f+++++++++ dir2file" in lines
    assert "cd+++++++++ file2dir/" in lines
    assert "cL+++++++++ file2link -> t" in lines
    rs, nat = check(case(*SCENARIOS["hard links"], delete=True, itemize=True), tmp_path)
    # a is already right and leads; b (other content, same size and attributes)
    # is replaced by a link without a changed column, z/c is a new link
    assert {"hf          b => a", "hf+++++++++ z/c => a"} <= set(nat.out), nat.out


def test_parse_line_reads_rsyncs_own_lines(tmp_path):
    """The rsync engine parses rsync's -i output: every line of a varied
    real run parses back to the same text."""
    rs, _ = check(case(*SCENARIOS["type changes"], *SCENARIOS["hard links"][1:6],
                       delete=True, itemize=True), tmp_path)
    items = [parse_line(line.encode()) for line in rs.out]
    parsed = [(line, item) for line, item in zip(rs.out, items, strict=True) if item is not None]
    assert len(parsed) >= 8
    for line, item in parsed:
        assert isinstance(item, ItemChange) and item.line() == line


def _many_entries(files: int, dirs: int) -> list:
    """src/ with ``files`` new files and ``dirs`` dirs; dst/ with those dirs
    older and each holding a file to delete."""
    old = T - 10**12
    spec = [d("src"), d("dst", mtime_ns=old), f("dst/x")]
    spec += [f(f"src/f{i:03d}", b"%d\n" % i) for i in range(files)]
    for j in range(dirs):
        spec += [d(f"src/d{j}"), d(f"dst/d{j}", mtime_ns=old), f(f"dst/d{j}/x")]
    return spec


@pytest.mark.parametrize("files", [0, 196, 197, 396])
@pytest.mark.parametrize("dry_run", [False, True], ids=["real", "dry-run"])
@pytest.mark.sampled(2)
def test_deletions_and_item_lines_come_in_rsyncs_order(tmp_path, files, dry_run):
    """rsync's generator sends its item lines to the sender as data and its
    deletions as messages, and flushes after the list's first entry and
    then after every 200th, messages first: a dir's deletions come before
    its own line, and the lines of the entries before a flush before the
    deletions after it.  The native engine printed each line as it went."""
    rs, nat = check(case(*_many_entries(files, 8), itemize=True, dry_run=dry_run), tmp_path)
    assert nat.out.index("*deleting   x") < nat.out.index(".d..t...... ./")


@pytest.mark.parametrize("dry_run", [False, True], ids=["real", "dry-run"])
def test_long_symlink_targets_are_cut_as_rsync_cuts_them(tmp_path, dry_run):
    """rsync formats " -> TARGET" into a buffer of 4096 bytes (log.c's
    log_formatted()): a target longer than 4091 bytes is cut there, in its
    line only.  The native engine printed the whole target."""
    links = [ln(f"src/l{n}", "t" * n) for n in (4089, 4090, 4091, 4092, 4094, 4095)]
    rs, nat = check(case(d("src"), *links, itemize=True, dry_run=dry_run), tmp_path)
    assert f"cL+++++++++ l4095 -> {'t' * 4091}" in nat.out
    if not dry_run:
        assert os.readlink(tmp_path / "b" / "dst" / "l4095") == "t" * 4095


def test_a_line_too_long_for_rsync_does_not_stop_the_native_engine(tmp_path):
    """A symlink whose name (1014 bytes) and cut target (4091) overflow
    rsync's line buffer (5120 bytes, log_formatted()): rsync's sender stops
    the run, exit 13, leaving DST incomplete (README, Known differences).
    The native engine prints the line it can and completes the sync."""
    deep = "src/" + "/".join(["d" * 250] * 4)
    spec = [d("src"), *[d("src/" + "/".join(["d" * 250] * k)) for k in range(1, 5)],
            ln(deep + "/" + "x" * 10, "t" * 4095), f(deep + "/z", b"last\n")]
    rs, nat, *_ = run_both(case(*spec, itemize=True), os.fsencode(tmp_path))
    assert rs.code == 13 and "buffer overflow expanding %L -- exiting" in rs.err
    assert nat.code == 0 and not nat.err
    link = deep[4:] + "/" + "x" * 10
    assert f"cL+++++++++ {link} -> {'t' * 4091}" in nat.out
    src, dst = (snapshot(tmp_path / "b" / top) for top in ("src", "dst"))
    assert diff_snapshots(src, dst) == []
