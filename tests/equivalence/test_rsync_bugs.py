"""Where rsync itself is wrong: the project's rule and its cases.

Where rsync 3.5.0 loses or corrupts data or metadata, the native engine
produces the source's state instead, and the README's "Known differences"
lists the case.  Each test here runs both engines on the case, asserts that
the native result equals the source, and pins what rsync does: a future
rsync that fixes the bug makes its test fail, and the entry can go.

The random suite meets the ACL case and the --link-dest symlink case too;
the harness accepts exactly those differences there
(``harness.rsync_lost_group_obj``, ``harness.rsync_lost_link_dest_xattrs``)
and nothing else.
"""

from __future__ import annotations

import os
import stat
import subprocess

import pytest

from .harness import RSYNC_FLAGS, Case, check, rsync_binary, source_path

pytestmark = [pytest.mark.rsync, pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]

T = 1_600_000_000_000_000_000
ROOT = {"path": ".", "mode": 0o755, "mtime_ns": T}
# group:: equal to the mask: rsync does not send group::, and takes it from
# the mode, which its change_sacl_perms() has just masked off.
ACL = "u::rwx,u:1234:rwx,g::rwx,g:2345:r-x,m::rwx,o::rwx"
FILE_ACL = "u::rwx,u:1234:rwx,g::r-x,m::r-x,o::r-x"


def d(path, **kw):
    return {"path": path, "type": "dir", "mode": 0o755, "mtime_ns": T, **kw}


def f(path, content=b"x\n", **kw):
    return {"path": path, "content": content, "mode": 0o644, "mtime_ns": T, **kw}


NB = {"uid": 65534, "gid": 65534}


def acl_case(*entries, **kw) -> Case:
    root = {**ROOT, **NB} if kw.get("unprivileged") else ROOT
    src = kw.pop("src", b"src/")
    return Case(spec=[root, *entries], sources=list(src) if isinstance(src, tuple) else [src],
                dest=b"dst", itemize=True, **kw)


def _group_lost(acl: tuple[str, ...]) -> tuple[str, ...]:
    return tuple("g::---" if e.startswith("g::") else e for e in acl)


@pytest.mark.parametrize("entries, dst", [
    # a dir whose sticky bit comes on
    ([d("src"), d("src/t", mode=0o1777, acl=ACL)], [d("dst"), d("dst/t", mode=0o755)]),
    # DST itself (SRC/ onto it), and a DST the run makes (mkdir 0777 first)
    ([d("src", mode=0o1777, acl=ACL)], [d("dst", mode=0o775)]),
    ([d("src", mode=0o1777, acl=ACL), f("src/f")], []),
    ([d("src", mode=0o1777, acl=ACL, **NB), f("src/f", **NB)], "nobody"),
    # ... with several sources, the first SRC/ giving DST its attributes
    ([d("src", mode=0o1777, acl=ACL), d("src2", mode=0o1777, acl=ACL), f("src2/f")],
     "several"),
    # a file whose setuid bit goes off
    ([d("src"), f("src/t", mode=0o755, acl=FILE_ACL)], [d("dst"), f("dst/t", mode=0o4755)]),
    # ... or its setgid bit, under SRC without a slash
    ([d("src"), f("src/t", mode=0o755, acl=FILE_ACL)], [d("dst"), d("dst/src"),
                                                       f("dst/src/t", mode=0o2755)]),
], ids=["sticky-dir", "sticky-dst", "sticky-new-dst", "sticky-new-dst-as-nobody",
         "sticky-new-dst-of-several", "setuid-file", "setgid-file-in-src"])
def test_acl_group_equal_to_mask_is_kept(request, tmp_path, entries, dst):
    """rsync 3.5.0 writes ``group::---`` over an entry whose sticky bit
    comes on (a dir) or whose setuid/setgid goes off (a file) when the
    source's ``group::`` equals its mask: the owning group loses its
    permissions.  The native engine writes the source's ACL; everything
    else (lines, exit code, the rest of the tree) is rsync's.  (A DST the
    run makes for SRC/'s contents is such a dir: it is made 0777 first.)"""
    nobody, several = dst == "nobody", dst == "several"
    dst = [] if nobody or several else dst
    src = b"src" if any(e["path"].startswith("dst/src") for e in dst) else b"src/"
    if several:
        src = (b"src", b"src2/")
    case = acl_case(*entries, *dst, src=src, unprivileged=nobody)
    rs, nat = check(case, request.getfixturevalue("nobody_base") if nobody else tmp_path)
    assert len(rs.lost) == 1, rs.lost
    (path, rsync_record), = rs.lost.items()
    source_acl = nat.snap[source_path(case, path)]["acl"]
    assert nat.snap[path]["acl"] == source_acl
    assert rsync_record["acl"] == _group_lost(source_acl) != source_acl


def test_acl_of_a_new_sticky_dir_is_right_in_both(tmp_path):
    """A new dir gets its sticky bit from mkdir: no transition, and rsync
    keeps ``group::`` too (the case as the issue first reported it)."""
    rs, nat = check(acl_case(d("src"), d("src/t", mode=0o1777, acl=ACL), d("dst")), tmp_path)
    assert not rs.lost
    assert nat.snap[b"dst/t"]["acl"] == nat.snap[b"src/t"]["acl"]


# -- limits rsync has and the native engine has not -------------------------------------------

def _make_chain(top: bytes, names: list[bytes]) -> None:
    """A dir ``top`` holding a chain of dirs ``names`` and a file ``f`` at
    the bottom, made through dir fds (the whole path may exceed PATH_MAX)."""
    os.mkdir(top)
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for name in names:
            os.mkdir(name, dir_fd=fd)
            deeper = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = deeper
        leaf = os.open(b"f", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
        os.write(leaf, b"bottom\n")
        os.close(leaf)
    finally:
        os.close(fd)


def _chain(top: bytes) -> tuple[list[bytes], bytes | None]:
    """The chain of single dirs below ``top`` and the content of the file
    at its bottom (None: there is none), read through dir fds."""
    names, content = [], None
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    try:
        while True:
            entries = os.listdir(fd)
            if b"f" in [os.fsencode(e) for e in entries]:
                leaf = os.open(b"f", os.O_RDONLY, dir_fd=fd)
                content = os.read(leaf, 100)
                os.close(leaf)
            dirs = [os.fsencode(e) for e in entries
                    if stat.S_ISDIR(os.stat(e, dir_fd=fd, follow_symlinks=False).st_mode)]
            if not dirs:
                return names, content
            names.append(dirs[0])
            deeper = os.open(dirs[0], os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = deeper
    finally:
        os.close(fd)


def _both(tmp_path, names: list[bytes]):
    from syncengine.treesync.sync import run_sync
    work = os.fsencode(tmp_path)
    for side in (b"a", b"b"):
        os.mkdir(work + b"/" + side)
        _make_chain(work + b"/" + side + b"/src", names)
    rsync = subprocess.run([rsync_binary(), *RSYNC_FLAGS, "--delete", "--no-inc-recursive",
                            "src/", "dst"], cwd=work + b"/a", capture_output=True)
    out: list[str] = []
    err: list[str] = []
    old = os.getcwd()
    os.chdir(work + b"/b")
    try:
        code = run_sync([b"src/"], b"dst", delete=True, excludes=[], out=out.append,
                        err=err.append)
    finally:
        os.chdir(old)
    return rsync, (code, out, err), work


def test_paths_longer_than_4096_bytes_are_copied(tmp_path):
    """rsync's sender refuses a name longer than its MAXPATHLEN ("filename
    overflows max-path len", exit 23) and leaves out everything below; the
    native engine works through dir fds and copies the whole tree."""
    names = [b"n" * 250] * 18  # 18 x 251 bytes: past 4096
    rsync, (code, out, err), work = _both(tmp_path, names)
    assert code == 0 and not err
    assert _chain(work + b"/b/dst") == (names, b"bottom\n")
    assert rsync.returncode == 23
    assert b"filename overflows max-path len" in rsync.stderr
    copied, content = _chain(work + b"/a/dst")
    assert len(copied) < len(names) and content is None


@pytest.mark.slow   # (over 1023 levels, both engines, rsync's run: about 10 s)
def test_more_than_1023_levels_are_copied(tmp_path):
    """rsync's sender cannot list a dir 1024 levels down ("opendir ...
    failed: Cannot allocate memory", exit 23): its contents are missing.
    The native engine copies every level."""
    names = [b"d"] * 1100
    rsync, (code, out, err), work = _both(tmp_path, names)
    assert code == 0 and not err
    assert _chain(work + b"/b/dst") == (names, b"bottom\n")
    assert rsync.returncode == 23
    assert b"Cannot allocate memory (12)" in rsync.stderr
    copied, content = _chain(work + b"/a/dst")
    assert len(copied) == 1024 and content is None


# -- --link-dest: a symlink matched in content only loses its xattrs ----------------------------

@pytest.mark.parametrize("names", [{"trusted.t": b""}, {"trusted.a": b"1", "trusted.b": b"two"}])
def test_link_dest_symlink_matched_in_content_keeps_its_xattrs(tmp_path, names):
    """With --link-dest, a symlink whose DIR counterpart has the same
    target and the same xattrs but another mtime (level 2: made anew, not
    linked) comes out of rsync 3.5.0 without any xattr: rsync compares the
    source's xattrs against DIR's, finds nothing to set, and the new
    symlink has none.  A file or dir in the same place keeps them.  The
    native engine gives the symlink the source's xattrs."""
    later = T + 10 ** 9
    case = Case(spec=[ROOT, d("src"), f("src/f", xattrs=names, mtime_ns=later),
                      {"path": "src/l", "type": "symlink", "target": b"f", "mtime_ns": later,
                       "xattrs": names},
                      d("src/d", xattrs=names, mtime_ns=later),
                      d("prev"), f("prev/f", xattrs=names),
                      {"path": "prev/l", "type": "symlink", "target": b"f", "mtime_ns": T,
                       "xattrs": names},
                      d("prev/d", xattrs=names)],
                sources=[b"src/"], dest=b"dst", link_dest=(b"prev",), itemize=True)
    rs, nat = check(case, tmp_path)
    assert list(rs.lost) == [b"dst/l"]
    assert rs.lost[b"dst/l"]["xattrs"] == {}                    # rsync's result
    assert nat.snap[b"dst/l"]["xattrs"] == nat.snap[b"src/l"]["xattrs"] == names
    for kept in (b"dst/f", b"dst/d"):                            # (rsync keeps theirs)
        assert nat.snap[kept]["xattrs"] == nat.snap[b"src" + kept[3:]]["xattrs"]


CAPABILITY = b"\x01\x00\x00\x02\x00\x20\x00\x00" + b"\x00" * 12  # cap_net_raw+ep


@pytest.mark.parametrize("gid", [1, 0])
def test_link_dest_local_copy_keeps_its_capability(tmp_path, gid):
    """With --link-dest, a file whose DIR counterpart has the same content
    and xattrs but another mtime is copied locally from DIR ("cf"); when
    its group is not root's, rsync 3.5.0 then chgrps the copy, which
    clears its ``security.capability``, and never sets it again: the
    copy loses it (with group 0 no chown happens, and it keeps it).  The
    native engine keeps the source's capability either way."""
    later = T + 10 ** 9
    cap = {"security.capability": CAPABILITY}
    case = Case(spec=[ROOT, d("src"), f("src/f", b"", gid=gid, xattrs=cap, mtime_ns=later),
                      d("prev"), f("prev/f", b"", gid=gid, xattrs=cap)],
                sources=[b"src/"], dest=b"dst", link_dest=(b"prev",), itemize=True)
    rs, nat = check(case, tmp_path)
    assert nat.snap[b"dst/f"]["xattrs"] == nat.snap[b"src/f"]["xattrs"] == cap
    if gid:
        assert list(rs.lost) == [b"dst/f"]
        assert rs.lost[b"dst/f"]["xattrs"] == {}                 # rsync's result
    else:
        assert not rs.lost
