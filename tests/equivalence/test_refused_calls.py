"""Destination calls the filesystem refuses (issue 14, item 3).

An immutable (``chattr +i``) or append-only (``+a``) file or dir in DST, or,
as a user other than root, root's entries in root's sticky dir: rename,
unlink, rmdir, mkdir, mkstemp, symlink, link, chown, chmod, utime, xattrs
and ACLs on them fail with EPERM.  rsync prints its line for each, goes on
with the rest, removes its temp file where it can (in an append-only dir it
cannot, and says nothing), touches up the dirs' times and exits 23.  The
native engine must do the same: never a traceback.  Every case runs both
engines (``harness.check``): lines, exit code and the whole tree, leftover
temp files included.
"""

from __future__ import annotations

import os

import pytest

from .harness import Case, check

# Each test runs both engines against the reference rsync: the fast part (-m "not
# slow") runs a sample (tests/conftest.py), the full run all of them.
pytestmark = [pytest.mark.rsync, pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
              pytest.mark.sampled(8)]

T = 1_600_000_000_000_000_000
LATER = T + 10 ** 10
NB = {"uid": 65534, "gid": 65534}
BIG = 2 << 20  # copied behind the walk (sync.py's _BEHIND_MIN is 1 MiB)


def d(path, **kw):
    return {"path": path, "type": "dir", "mode": 0o755, "mtime_ns": T, **kw}


def f(path, content=b"data\n", **kw):
    return {"path": path, "content": content, "mode": 0o644, "mtime_ns": T + 3, **kw}


def ln(path, target, **kw):
    return {"path": path, "type": "symlink", "target": target, "mtime_ns": T + 5, **kw}


def case(*entries, nobody=False, **kw) -> Case:
    root = {"path": ".", "mode": 0o755, "mtime_ns": T, **(NB if nobody else {})}
    return Case(spec=[root, *entries], sources=[kw.pop("src", b"src/")],
                dest=kw.pop("dest", b"dst"), unprivileged=nobody, **kw)


@pytest.fixture
def base(tmp_path):
    return tmp_path


def _refused(rs, nat, *words):
    assert nat.code == rs.code == 23
    for word in words:
        assert any(word in line for line in nat.err), (word, nat.err)


@pytest.mark.parametrize("flags", ["i", "a"])
@pytest.mark.parametrize("itemize", [True, False])
def test_rename_over_a_protected_file_goes_on(base, flags, itemize):
    """The issue's case: the temp file is written, its rename refused;
    rsync's line, the temp file removed, the next file copied and DST's
    mtime put back."""
    rs, nat = check(case(d("src"), f("src/a"), f("src/f", b"new\n"), f("src/z"),
                         d("dst", mtime_ns=LATER), f("dst/f", b"old\n", flags=flags),
                         itemize=itemize), base)
    _refused(rs, nat, 'rename "')
    assert (base / "b" / "dst" / "z").exists()
    assert sorted(os.listdir(base / "b" / "dst")) == ["a", "f", "z"]


def test_rename_refused_behind_the_walk(base):
    """A big file is copied behind the walk (a thread): its rename is
    refused in the walk's turn."""
    check(case(d("src"), f("src/big", b"x" * BIG), f("src/z"), d("dst", mtime_ns=LATER),
               f("dst/big", flags="i")), base)


@pytest.mark.parametrize("flags", ["i", "a"])
def test_protected_dst_in_an_initial_copy(base, flags):
    """An empty DST that is immutable (nothing can be made in it) or
    append-only (files can be made, not renamed: the temp files stay; an
    initial copy's writer and its temp-named dirs must not be used)."""
    files = [f(f"src/f{i}") for i in range(6)]
    check(case(d("src", mode=0o700), *files, d("src/sub"), f("src/sub/q"),
               f("src/big", b"y" * BIG), d("dst", flags=flags, mtime_ns=LATER)), base)


@pytest.mark.parametrize("flags", ["i", "a"])
def test_protected_dir_holding_entries(base, flags):
    """New files, symlinks, dirs and hard links in it, replaced and
    extraneous entries, a changed file."""
    check(case(d("src"), d("src/sub"), f("src/sub/a", b"new\n"), f("src/sub/b"),
               ln("src/sub/l", "new"), ln("src/sub/m", "t"), d("src/sub/dd"), f("src/sub/dd/q"),
               {"path": "src/sub/h", "link": "src/sub/b"},
               d("dst"), d("dst/sub", flags=flags, mtime_ns=LATER), f("dst/sub/a", b"old\n"),
               ln("dst/sub/l", "old"), f("dst/sub/x"), d("dst/sub/y"), itemize=True), base)


@pytest.mark.parametrize("flags", ["i", "a"])
def test_protected_entries_whose_attributes_differ(base, flags):
    """chown, chmod, utime, xattrs and ACLs of a file and a dir refused."""
    acl = "u::rwx,u:1234:r-x,g::r-x,m::r-x,o::---"
    check(case(d("src"), d("src/sub", mode=0o700, uid=1, gid=1, xattrs={"user.a": b"1"},
                           acl=acl, default_acl="u::rwx,g::r-x,o::---"),
               f("src/f", mode=0o600, uid=1, xattrs={"user.a": b"1"}, acl=acl),
               d("dst"), d("dst/sub", flags=flags, mtime_ns=LATER), f("dst/f", flags=flags),
               itemize=True), base)


def test_protected_entries_in_the_way_of_other_types(base):
    """A file where a dir belongs, a dir where a file belongs, a file where
    a symlink belongs: "could not make way", with and without --delete."""
    for delete in (True, False):
        check(case(d("src"), d("src/x"), f("src/x/q"), ln("src/y", "t"), f("src/w"), d("dst"),
                   f("dst/x", flags="i"), f("dst/y", flags="a"), d("dst/w", flags="i"),
                   f("dst/w/q"), delete=delete, itemize=True), base)


def test_hard_links_to_protected_files(base):
    """link(2) to an immutable or append-only inode is refused."""
    check(case(d("src"), f("src/a"), {"path": "src/b", "link": "src/a"}, f("src/c", b"c\n"),
               {"path": "src/d", "link": "src/c"}, d("dst"), f("dst/a", flags="i"),
               f("dst/d", b"c\n", flags="a"), itemize=True), base)


def test_dry_run_over_protected_entries(base):
    check(case(d("src"), f("src/a", b"new\n"), d("dst"), f("dst/a", flags="i"),
               f("dst/x", flags="i"), d("dst/y", flags="a"), itemize=True, dry_run=True), base)


# -- as nobody: root's entries in root's sticky dir ---------------------------------------------

@pytest.fixture
def nobody(nobody_base):
    return nobody_base


def test_nobody_cannot_rename_over_roots_file_in_a_sticky_dir(nobody):
    """The issue's other case: /tmp-like DST (root's, 1777), a root-owned
    file in it to be replaced."""
    rs, nat = check(case(d("src", **NB), f("src/a", **NB), f("src/f", b"new\n", **NB),
                         f("src/z", **NB), d("dst", mode=0o1777, mtime_ns=LATER),
                         f("dst/f", b"old\n", mode=0o666), itemize=True, nobody=True), nobody)
    _refused(rs, nat, 'rename "')


def test_nobody_and_roots_entries_in_a_sticky_dir(nobody):
    """Extraneous root-owned files, symlinks and dirs, one to be replaced
    by a symlink, one by a dir; a root-owned sticky subdir of DST."""
    check(case(d("src", **NB), f("src/a", **NB), ln("src/l", "new", **NB), d("src/x", **NB),
               f("src/x/q", **NB), d("src/w", mode=0o1777), d("dst", mode=0o1777),
               f("dst/old"), ln("dst/gone", "t"), d("dst/y"), ln("dst/l", "old"),
               f("dst/x", mode=0o666), d("dst/w", mode=0o1777), f("dst/w/q"),
               f("dst/w/r", mode=0o666), itemize=True, nobody=True), nobody)


@pytest.mark.parametrize("entries, src, dest", [
    # DST to be made in an immutable dir: rsync's mkdir line, exit 11
    ([f("src/a"), f("src/b"), d("p", flags="i")], b"src/", b"p/dst"),
    # one file onto a new name there: mkstemp refused
    ([f("src/a"), d("p", flags="i")], b"src/a", b"p/dst"),
    # ... onto an old file in an append-only dir: rename refused
    ([f("src/a", b"new\n"), d("p", flags="a"), f("p/dst")], b"src/a", b"p/dst"),
], ids=["mkdir-dst", "solo-mkstemp", "solo-rename"])
def test_protected_parent_of_dst(base, entries, src, dest):
    check(case(d("src"), *entries, src=src, dest=dest, changing=(b"p",)), base)


# -- as nobody: dirs that shut their owner out ----------------------------------------------

def test_nobody_touch_up_cannot_pass_a_dir_that_shuts_its_owner_out(nobody):
    """rsync's touch_up_dirs() goes parents first: a dir whose mode, put
    back at the end, has neither u+w nor u+x (root's source dir, mode
    045, say) shuts nobody out before the times of the dirs below it are
    fixed, so theirs stay as the run left them.  The native engine fixed
    them (it touches a dir up when its contents are done)."""
    check(case(d("src", **NB), d("src/p", mode=0o045), d("src/p/q", **NB),
               d("src/p/q/r", **NB), f("src/p/q/r/f", **NB), f("src/p/g", **NB),
               nobody=True), nobody)
    check(case(d("src", mode=0o1037), d("src/q", **NB), f("src/q/f", **NB), f("src/g", **NB),
               src=b"src", nobody=True), nobody)


def test_nobody_waiting_member_in_a_dir_it_cannot_search(nobody):
    """A hard-linked file waits for its group's last member, which is in a
    dir that cannot be made; synced after all, its name cannot be looked
    up (DST's mode 005 shuts nobody out): rsync's "failed to stat" line,
    nothing sent."""
    check(case(d("src", mode=0o005), d("src/a", **NB), f("src/c", b"", mode=0o640, gid=65534),
               ln("src/dir", "a", **NB), f("src/b", b"", **NB),
               {"path": "src/a/a", "link": "src/c"}, delete=False, nobody=True), nobody)


@pytest.mark.parametrize("flags", ["i", "a"])
@pytest.mark.parametrize("kind", ["file", "dir", "root"])
def test_refused_xattrs_include_the_unchanged_short_ones(base, flags, kind):
    """Once an entry's xattrs differ, rsync's receiver sets every value up
    to 32 bytes long (sent whole), the ones the entry has already too, and
    only the longer ones (sent as a checksum) that differ: on a protected
    entry each of those is refused, with its line."""
    same = {"user.a": b"", "user.s": b"s" * 32, "user.long": b"L" * 33}
    want = {**same, "user.x": b"new"}
    if kind == "file":
        entries = (d("src"), f("src/f", xattrs=want), d("dst"), f("dst/f", xattrs=same, flags=flags))
    elif kind == "dir":
        entries = (d("src"), d("src/e", xattrs=want), d("dst"), d("dst/e", xattrs=same, flags=flags))
    else:  # (DST itself, as several sources' "." make it)
        entries = (d("src", xattrs=want), d("src2", xattrs=want), d("dst", xattrs=same, flags=flags))
    rs, nat = check(case(*entries, src=b"src/"), base)
    _refused(rs, nat, '"user.a"', '"user.s"', '"user.x"')
    assert not any('"user.long"' in line for line in rs.err + nat.err)


@pytest.mark.parametrize("flags", ["i", "a"])
def test_refused_removals_come_in_the_entrys_own_order(base, flags):
    """rsync removes the names the source lacks in the order the entry
    lists them (listxattr's: here the order they were set in), not by
    name."""
    rs, nat = check(case(d("src"), f("src/f", xattrs={"user.x": b"1"}), d("dst"),
                         f("dst/f", xattrs={"user.z": b"1", "user.m": b"1", "user.a": b"1"},
                           flags=flags)), base)
    _refused(rs, nat, '"user.z"', '"user.m"', '"user.a"')
