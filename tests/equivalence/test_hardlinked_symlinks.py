"""Symlinks that share an inode, with -H (issue 14, item 5).

Linux links symlinks themselves, and rsync's -H keeps such a group one
inode: the first member it makes (or finds with the right target) is the
one the others link to (``hL          s2 => s1``, ``hL+++++++++ d/s3 =>
s1``), in any dir, whatever the other members' names held before.  Each
case runs both engines and compares lines, exit code and the trees (whose
snapshots record hard-link groups).
"""

from __future__ import annotations

import os

import pytest

from .harness import Case, check

pytestmark = [pytest.mark.rsync, pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]

T = 1_600_000_000_000_000_000


def d(path, **kw):
    return {"path": path, "type": "dir", "mode": 0o755, "mtime_ns": T, **kw}


def f(path, content=b"x\n", **kw):
    return {"path": path, "content": content, "mode": 0o644, "mtime_ns": T, **kw}


def ln(path, target=b"target", **kw):
    return {"path": path, "type": "symlink", "target": target, "mtime_ns": T + 5, **kw}


def h(path, link):
    return {"path": path, "link": link}


GROUP = [d("src"), ln("src/s1", uid=1, xattrs={"trusted.t": b"1"}), h("src/s2", "src/s1"),
         d("src/d"), h("src/d/s3", "src/s1")]


def case(*entries, **kw) -> Case:
    return Case(spec=[{"path": ".", "mode": 0o755, "mtime_ns": T}, *entries],
                sources=[kw.pop("src", b"src/")], dest=b"dst", itemize=kw.pop("itemize", True),
                **kw)


@pytest.mark.parametrize("dst", [
    [],
    [d("dst")],
    [d("dst"), ln("dst/s1")],
    [d("dst"), ln("dst/s2", b"other"), d("dst/d"), ln("dst/d/s3")],
    [d("dst"), ln("dst/s1", uid=1), h("dst/s2", "dst/s1"), d("dst/d"), h("dst/d/s3", "dst/s1")],
    [d("dst"), ln("dst/s1", b"other"), h("dst/s2", "dst/s1")],
    [d("dst"), ln("dst/s1", uid=5), h("dst/s2", "dst/s1")],
    [d("dst"), f("dst/s2", mode=0o600, uid=2, mtime_ns=T + 10 ** 9), d("dst/d"),
     d("dst/d/s3", mode=0o700), f("dst/d/s3/x")],
], ids=["missing", "empty", "first-there", "others-there", "in-place", "wrong-target",
        "other-owner", "other-types"])
@pytest.mark.parametrize("mode", ["run", "dry-run", "no-delete"])
@pytest.mark.sampled(4)
def test_symlinks_sharing_an_inode_stay_one(tmp_path, dst, mode):
    rs, nat = check(case(*GROUP, *dst, dry_run=mode == "dry-run", delete=mode != "no-delete"),
                    tmp_path)
    if mode == "run" and dst != [d("dst"), f("dst/s2", mode=0o600, uid=2, mtime_ns=T + 10 ** 9),
                                 d("dst/d"), d("dst/d/s3", mode=0o700), f("dst/d/s3/x")]:
        assert nat.snap[b"dst/s1"]["links"] == (b"dst/d/s3", b"dst/s1", b"dst/s2")


def test_excluded_first_member_and_src_without_slash(tmp_path):
    check(case(*GROUP, d("dst"), excludes=[b"s1"]), tmp_path)
    check(case(*GROUP, d("dst"), d("dst/src"), ln("dst/src/s2"), src=b"src"), tmp_path)


def test_a_member_that_cannot_be_made(tmp_path):
    """The first member cannot be made (its dir is immutable; or its
    replacement cannot be renamed in an append-only DST): the next one is
    made on its own, and the others, the failed one too, are linked to it."""
    check(case(d("src"), d("src/a"), ln("src/a/s1"), h("src/b", "src/a/s1"),
               h("src/c", "src/a/s1"), d("dst"), d("dst/a", flags="i")), tmp_path)
    check(case(d("src"), ln("src/a"), d("src/b"), h("src/b/s", "src/a"), h("src/c", "src/a"),
               d("dst", flags="a"), ln("dst/a", b"x")), tmp_path)


@pytest.mark.parametrize("leader, in_the_way", [
    ("t/c", [f("dst/t")]),                                   # its dir is a file: ENOTDIR
    ("t/a/c", [f("dst/t")]),                                 # one further up: ELOOP
    ("x/t/a/c", [d("dst/x"), f("dst/x/t")]),
    ("c/a/c", [ln("dst/c", b"."), {"path": "dst/a", "type": "fifo", "mtime_ns": T}]),
], ids=["parent", "grandparent", "deeper", "through-a-symlink"])
@pytest.mark.sampled(1)
def test_dry_run_leader_below_an_entry_in_the_way(tmp_path, leader, in_the_way):
    """A dry run: the group's first member would be made in a dir that is
    another type's entry in DST.  rsync's hard_link_check() looks the
    leader up all the same (following symlinks on the way) and reports
    what the lookup meets: rsync 3.5.0 says ENOTDIR when the leader's own
    dir is in the way, ELOOP when one further up is; only ENOENT is
    forgiven in a dry run."""
    dirs = [d("src/" + "/".join(leader.split("/")[:i])) for i in range(1, leader.count("/") + 1)]
    for itemize in (True, False):
        check(case(d("src"), *dirs, ln("src/" + leader), d("src/zz"),
                   h("src/zz/m", "src/" + leader), d("dst"), *in_the_way, dry_run=True,
                   itemize=itemize), tmp_path)


ACL = {"acl": "u::---,g::r-x,o::---,m::---,u:1234:---", "default_acl": "u::---,g::---,o::---"}


@pytest.mark.parametrize("kind", ["symlink", "file"])
@pytest.mark.parametrize("dst", [
    [d("dst", flags="i")],
    [d("dst", flags="i", **ACL)],
    [d("dst"), f("dst/b", b"old\n", flags="i"), f("dst/d", b"blocker\n", flags="i")],
    [d("dst", flags="a"), f("dst/b", b"old\n"), f("dst/d", b"blocker\n")],
    [d("dst"), d("dst/b", flags="i"), f("dst/b/x"), f("dst/d", b"blocker\n", flags="i")],
    [d("dst", flags="i"), ln("dst/b", b"y")],
], ids=["immutable", "immutable-acl", "immutable-entries", "append-only", "nonempty-dir",
        "wrong-symlink"])
@pytest.mark.parametrize("layout", [("b", "d/a"), ("b", "c", "d/a"), ("b", "d/e/a")],
                         ids=["two", "three", "nested"])
@pytest.mark.sampled(4)
def test_last_member_in_a_failed_dir(tmp_path, kind, dst, layout):
    """The group's last member is in a dir rsync could not make (or make
    way for); the members before it could not be made either, or wait.
    rsync's handle_skipped_hlink() runs recv_generator() once more for the
    member before the skipped last one: a symlink is tried again (its
    failure printed a second time), a waiting file sent.  Lines are
    printed for it also when the last member is in a subdir of the failed
    dir.  (The issue's case: a symlink ``a/a -> a`` and ``b`` linked to it,
    in an immutable DST with ACLs.)"""
    *firsts, last = layout
    make = (lambda p: ln(p, b"x")) if kind == "symlink" else f
    dirs = [d("src/" + "/".join(last.split("/")[:i])) for i in range(1, last.count("/") + 1)]
    for itemize in (True, False):
        check(case(d("src"), *dirs, make("src/" + last),
                   *(h("src/" + name, "src/" + last) for name in firsts), *dst,
                   delete=False, itemize=itemize, acl_backend="raw"), tmp_path)
