"""The attribute layer (treesync.meta/xattrs/acl) against the real rsync.

Differential cases: a source entry and a destination entry with other
attributes are built twice; ``rsync -rlptgocAXH -i`` runs on one copy, our
``apply_meta`` (through a walker-free harness that does what the walker
does for one entry) on the other.  Compared: lstat (mode, owner, group,
mtime to the ns), every xattr but system.*, ``getfacl`` and the raw ACL
xattrs, the itemize columns "tpoguax", rsync's error lines (paths and temp
names normalised) and exit code 23 vs ``ctx.had_error``.  Then a second
``apply_meta`` must find nothing to do and leave the ctime alone.

Each case runs with both ACL backends (pylibacl and raw xattrs) and with
and without an open fd.  Non-root cases drop to nobody (rsync via setpriv,
our harness in a forked child); filesystem-without-xattrs cases use a
ramfs mount; chown failures use a user namespace mapping only root.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import re
import secrets
import shutil
import signal
import stat
import subprocess
import tempfile
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syncengine import messages
from syncengine.treesync import acl as aclmod
from syncengine.treesync import meta as metamod
from syncengine.treesync.acl import Acl
from syncengine.treesync.meta import (
    NEW,
    UNCHANGED,
    MetaContext,
    SrcMeta,
    apply_meta,
    itemize_meta,
    read_src_meta,
)
from syncengine.treesync.xattrs import Node

from .reference import reference_rsync

NS = 1_000_000_000
T0 = 1_600_000_000 * NS + 123_456_789      # 2020-09-13, well in the past
NOBODY = 65534
UNNAMED = 12345                             # an id with no passwd/group entry
IS_ROOT = os.geteuid() == 0

try:
    import posix1e  # noqa: F401
    BACKENDS = ["libacl", "raw"]
except ImportError:  # pragma: no cover - CI installs pylibacl
    BACKENDS = ["raw"]

needs_root = pytest.mark.skipif(not IS_ROOT, reason="builds entries with other owners")
needs_acl_tools = pytest.mark.skipif(shutil.which("setfacl") is None or shutil.which("getfacl") is None,
                                     reason="acl tools (setfacl/getfacl) not installed")


# -- entry specs and building ---------------------------------------------------------

@dataclass
class E:
    """One entry: ``acl``/``dacl`` are setfacl texts; the final chmod(mode)
    then sets owner, mask and other bits (and setuid/setgid/sticky)."""

    kind: str = "file"
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    mtime_ns: int = T0
    xattrs: dict = field(default_factory=dict)
    acl: str | None = None
    dacl: str | None = None
    data: bytes = b"same content\n"
    target: bytes = b"some/target"


def build(path: Path, e: E) -> None:
    if e.kind == "file":
        path.write_bytes(e.data)
    elif e.kind == "dir":
        path.mkdir()
    else:
        os.symlink(e.target, path)
    os.chown(path, e.uid, e.gid, follow_symlinks=False)
    if e.kind != "symlink":
        if e.acl:
            subprocess.run(["setfacl", "--set", e.acl, str(path)], check=True)
        if e.dacl:
            subprocess.run(["setfacl", "-d", "--set", e.dacl, str(path)], check=True)
        os.chmod(path, e.mode)
    for name, value in e.xattrs.items():
        os.setxattr(path, name, value, follow_symlinks=False)
    os.utime(path, ns=(e.mtime_ns, e.mtime_ns), follow_symlinks=False)


def snap(path: Path) -> dict:
    st_ = os.lstat(path)
    out = {"mode": oct(st_.st_mode), "uid": st_.st_uid, "gid": st_.st_gid, "mtime_ns": st_.st_mtime_ns}
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError as e:
        if e.errno != errno.ENOTSUP:
            raise
        names = []  # a filesystem without xattrs
    out["xattrs"] = {n: os.getxattr(path, n, follow_symlinks=False)
                     for n in sorted(names) if not n.startswith("system.")}
    out["acl_xattrs"] = {n: os.getxattr(path, n, follow_symlinks=False)
                         for n in sorted(names) if n.startswith("system.posix_acl")}
    if not stat.S_ISLNK(st_.st_mode):
        out["getfacl"] = subprocess.run(["getfacl", "-n", "-c", "-p", str(path)],
                                        capture_output=True, text=True, check=True).stdout
    return out


# -- the two sides ----------------------------------------------------------------------

def run_rsync(src_root: Path, dst_root: Path, *, user: bool = False, groups=(),
              userns: bool = False) -> tuple[int, str, list[str]]:
    argv = [reference_rsync(), "-rlptgocAXH", "-i", f"{src_root}/", f"{dst_root}/"]
    if user:
        argv = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}",
                f"--groups={','.join(map(str, groups))}" if groups else "--clear-groups", *argv]
    if userns:
        argv = ["unshare", "-U", "--map-root-user", *argv]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    return proc.returncode, out.decode("ascii", "replace"), err.decode("ascii", "replace").splitlines()


def rsync_letters(stdout: str, rel: str) -> str:
    for line in stdout.splitlines():
        item, _, name = line.partition(" ")
        name = name.split(" -> ")[0]
        if len(item) == 11 and name.rstrip("/") == rel:
            return item[4:11]
    return UNCHANGED


def native_entry(src_root: bytes, dst_root: bytes, rel: bytes, *, use_fd: bool,
                 backend: str) -> dict:
    """What the walker does for one entry, with our layer: create it if
    missing, transfer a file whose content differs (itemized against the
    old file first), else fix its attributes in place."""
    parent, name = rel.rsplit(b"/", 1)
    sd = os.open(os.path.join(src_root, parent), os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    dd = os.open(os.path.join(dst_root, parent), os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    ctx = MetaContext(dest_root=dst_root, acl_backend=backend)
    fds = []

    def opened(dirfd, entry, kind):
        if not use_fd or kind == stat.S_IFLNK:
            return None
        flags = os.O_RDONLY | os.O_NOFOLLOW | (os.O_DIRECTORY if kind == stat.S_IFDIR else 0)
        try:
            fds.append(os.open(entry, flags, dir_fd=dirfd))
        except OSError:
            return None  # e.g. mode 000 as non-root: the harness goes by name
        return fds[-1]

    def content(dirfd):
        with open(os.open(name, os.O_RDONLY, dir_fd=dirfd), "rb") as f:
            return f.read()

    try:
        st_ = os.stat(name, dir_fd=sd, follow_symlinks=False)
        kind = stat.S_IFMT(st_.st_mode)
        src = read_src_meta(st_, fd=opened(sd, name, kind), dirfd=sd, name=name, ctx=ctx)
        assert src is not None, ctx.messages
        try:
            dst_st = os.stat(name, dir_fd=dd, follow_symlinks=False)
        except FileNotFoundError:
            dst_st = None
        if kind == stat.S_IFREG and (dst_st is None or content(sd) != content(dd)):
            letters = NEW if dst_st is None else itemize_meta(ctx, src, dst_st, dirfd=dd, name=name)
            tmp = b".%s.%s" % (name, secrets.token_hex(3).encode())
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
                         (st_.st_mode | 0o200) & 0o700, dir_fd=dd)
            fds.append(fd)
            os.write(fd, content(sd))
            assert apply_meta(ctx, src, None, dirfd=dd, name=tmp, fd=fd if use_fd else None,
                              exact_time=True, is_new=True, path=parent + b"/" + tmp) == NEW
            os.rename(tmp, name, src_dir_fd=dd, dst_dir_fd=dd)
        elif dst_st is not None:
            letters = apply_meta(ctx, src, dst_st, dirfd=dd, name=name, fd=opened(dd, name, kind),
                                 exact_time=kind == stat.S_IFREG, is_new=False, path=rel)
        elif kind == stat.S_IFDIR:
            os.mkdir(name, 0o700, dir_fd=dd)
            letters = apply_meta(ctx, src, None, dirfd=dd, name=name, fd=opened(dd, name, kind),
                                 exact_time=False, is_new=True, path=rel)
        else:
            os.symlink(os.readlink(name, dir_fd=sd), name, dir_fd=dd)
            letters = apply_meta(ctx, src, None, dirfd=dd, name=name, exact_time=False,
                                 is_new=True, path=rel)
        return {"letters": letters, "messages": ctx.messages, "had_error": ctx.had_error}
    finally:
        for fd in fds:
            os.close(fd)
        os.close(sd)
        os.close(dd)


def _in_child(fn, setup) -> dict:
    """Run ``fn()`` in a forked child after ``setup()`` (drop privileges,
    enter a user namespace); its result comes back as JSON."""
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 0
        try:
            os.close(rfd)
            setup()
            payload = json.dumps(fn()).encode()
        except BaseException:
            payload = json.dumps({"crash": traceback.format_exc()}).encode()
            code = 1
        with os.fdopen(wfd, "wb") as w:
            w.write(payload)
        os._exit(code)
    os.close(wfd)
    with os.fdopen(rfd, "rb") as r:
        data = r.read()
    os.waitpid(pid, 0)
    result = json.loads(data)
    assert "crash" not in result, result.get("crash")
    return result


def _become_nobody(groups):
    def setup():
        os.setgroups(list(groups))
        os.setgid(NOBODY)
        os.setuid(NOBODY)
    return setup


def _enter_userns():
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(0x10000000) != 0:  # CLONE_NEWUSER
        raise OSError(ctypes.get_errno(), "unshare")
    for fname, text in (("setgroups", "deny"), ("uid_map", "0 0 1"), ("gid_map", "0 0 1")):
        with open(f"/proc/self/{fname}", "w") as f:
            f.write(text)


# -- the differential check ----------------------------------------------------------------

@dataclass
class Case:
    id: str
    src: E
    dst: E | None               # None: the destination entry does not exist yet
    parent_dacl: str | None = None
    user: bool = False          # receiver runs as nobody
    groups: tuple = ()
    userns: bool = False        # receiver is root of a user namespace mapping only root
    acl: bool = False           # exercise both ACL backends and fd/no-fd


def _norm(lines: list[str], roots) -> list[str]:
    out = []
    for line in lines:
        if line.startswith("rsync error:"):
            continue
        for root in roots:
            line = line.replace(os.fsdecode(root), "DST")
        out.append(re.sub(r"/\.([^/\"]+)\.[A-Za-z0-9]{6}\b", r"/.\1.XXXXXX", line))
    return sorted(out)


def _prepare(base: Path, case: Case, tag: str, *, dest_fs: Path | None = None) -> tuple[Path, Path]:
    src_root = base / f"src-{tag}"
    dst_root = (dest_fs or base) / f"dst-{tag}"
    for root, spec in ((src_root, case.src), (dst_root, case.dst)):
        root.mkdir()
        sub = root / "sub"
        sub.mkdir()
        if case.parent_dacl:
            subprocess.run(["setfacl", "-d", "--set", case.parent_dacl, str(sub)], check=True)
        if spec is not None:
            build(sub / "e", spec)
        if case.user:
            for p in (root, sub):
                os.chown(p, NOBODY, NOBODY)
        for p in (sub, root):
            os.utime(p, ns=(T0, T0))
    return src_root, dst_root


def check_case(base: Path, case: Case, *, dest_fs: Path | None = None) -> None:
    rel = "sub/e"
    src_root, dst_root = _prepare(base, case, "rsync", dest_fs=dest_fs)
    rc, out, err = run_rsync(src_root, dst_root, user=case.user, groups=case.groups,
                             userns=case.userns)
    assert rc in (0, 23), (rc, err)
    expected = snap(dst_root / rel)
    want_letters = rsync_letters(out, rel)
    want_messages = _norm(err, [dst_root])
    # rsync once more: usually nothing left to do, but not always (see the
    # group-is-mask cases).
    rc2, out2, err2 = run_rsync(src_root, dst_root, user=case.user, groups=case.groups,
                                userns=case.userns)
    expected2 = snap(dst_root / rel)
    want_letters2 = rsync_letters(out2, rel)

    combos = [(b, fd) for b in BACKENDS for fd in (True, False)] if case.acl \
        else [(BACKENDS[0], True), (BACKENDS[-1], False)]
    for i, (backend, use_fd) in enumerate(combos):
        label = f"{case.id} backend={backend} fd={use_fd}"
        src_n, dst_n = _prepare(base, case, f"native{i}", dest_fs=dest_fs)
        shutil.rmtree(src_n)
        src_n = src_root  # one source serves both sides

        def run(src_n=src_n, dst_n=dst_n, use_fd=use_fd, backend=backend):
            fn = lambda: native_entry(bytes(src_n), bytes(dst_n), rel.encode(),  # noqa: E731
                                      use_fd=use_fd, backend=backend)
            if case.user:
                return _in_child(fn, _become_nobody(case.groups))
            if case.userns:
                return _in_child(fn, _enter_userns)
            return fn()

        got = run()
        assert snap(dst_n / rel) == expected, label
        assert got["letters"] == want_letters, label
        assert _norm(got["messages"], [dst_n]) == want_messages, label
        assert got["had_error"] == (rc == 23), label

        before = os.lstat(dst_n / rel)
        got2 = run()
        assert snap(dst_n / rel) == expected2, label
        assert got2["letters"] == want_letters2, label
        assert _norm(got2["messages"], [dst_n]) == _norm(err2, [dst_root]), label
        if want_letters2 == UNCHANGED and rc2 == 0:
            # Nothing to do: no change at all, not even the ctime.
            assert got2 == {"letters": UNCHANGED, "messages": [], "had_error": False}, label
            assert os.lstat(dst_n / rel).st_ctime_ns == before.st_ctime_ns, label


@pytest.fixture(scope="module")
def base_dir():
    # Not pytest's tmp_path: nobody must be able to reach it.
    path = Path(tempfile.mkdtemp(prefix="syncengine-meta-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def base(base_dir, request):
    path = base_dir / re.sub(r"[^A-Za-z0-9_.-]", "_", request.node.name)
    path.mkdir()
    path.chmod(0o755)
    return path


ACL_R = "u::rw-,u:1:r--,g::r--,m::r--,o::r--"
ACL_RW = "u::rw-,u:1:rw-,g::r--,m::rw-,o::r--"
ACL_OTHER = "u::rw-,u:2:rw-,g::r--,g:3:r--,m::rw-,o::r--"
DACL = "u::rwx,u:2:r-x,g::r-x,m::r-x,o::r-x"
DACL_RW = "u::rwx,u:2:rwx,g::r-x,g:100:rwx,m::rwx,o::---"
XA = {"user.a": b"1", "user.empty": b"", "user.bin": b"\x00\xff\n\x01",
      "trusted.t": b"t", "security.s": b"s", "user.rsync.%stat": b"private"}
XD = {"user.extra": b"1", "trusted.extra": b"2", "user.bin": b"\x00", "user.rsync.%foo": b"3"}

ROOT_CASES = [
    Case("mode", E(mode=0o600), E(mode=0o644)),
    Case("mtime", E(), E(mtime_ns=T0 + 5 * NS)),
    Case("file-same-second-ns", E(mtime_ns=T0), E(mtime_ns=T0 - 100)),   # exact time: set
    Case("dir-same-second-ns", E("dir", mode=0o755), E("dir", mode=0o755, mtime_ns=T0 - 100)),
    Case("symlink-same-second-ns", E("symlink"), E("symlink", mtime_ns=T0 + 100)),
    Case("symlink-time", E("symlink"), E("symlink", mtime_ns=T0 - 3 * NS)),
    Case("uid-named", E(uid=1), E()),
    Case("gid-named", E(gid=1), E()),
    Case("ids-unnamed", E(uid=UNNAMED, gid=UNNAMED + 1), E(uid=1, gid=1)),
    Case("suid-sgid", E(mode=0o6755), E(mode=0o755)),
    Case("chown-clears-suid", E(mode=0o4755, uid=1), E(mode=0o4755)),
    Case("sticky-dir", E("dir", mode=0o1777), E("dir", mode=0o777)),
    Case("sgid-dir", E("dir", mode=0o2775), E("dir", mode=0o755)),
    Case("file-000", E(mode=0), E(mode=0o644)),
    Case("dir-000", E("dir", mode=0), E("dir", mode=0o755)),
    Case("xattrs", E(xattrs=XA), E(xattrs=XD)),
    Case("xattrs-only-private-differs", E(xattrs={"user.rsync.%stat": b"1"}),
         E(xattrs={"user.rsync.%foo": b"2"})),
    Case("xattrs-dir", E("dir", mode=0o755, xattrs={"user.a": b"1", "trusted.b": b""}),
         E("dir", mode=0o755, xattrs={"user.c": b"3"})),
    Case("symlink-owner", E("symlink", uid=1, gid=UNNAMED), E("symlink")),
    Case("symlink-xattrs", E("symlink", xattrs={"trusted.l": b"1", "trusted.e": b""}),
         E("symlink", xattrs={"trusted.old": b"2"})),
    Case("new-symlink", E("symlink", uid=1, gid=2, xattrs={"trusted.x": b"y"}), None),
    Case("new-file-all", E(mode=0o4750, uid=1, gid=UNNAMED, xattrs=XA), None),
    # ACLs
    Case("acl-add", E(acl=ACL_R), E(), acl=True),
    Case("acl-change-named", E(acl=ACL_RW, mode=0o664), E(acl=ACL_OTHER, mode=0o664), acl=True),
    Case("acl-group-vs-mask", E(acl="u::rw-,u:1:rw-,g::rw-,m::r--,o::r--"),
         E(acl="u::rw-,u:1:rw-,g::r--,m::r--,o::r--"), acl=True),
    Case("acl-mask-change-is-p", E(acl=ACL_RW, mode=0o644), E(acl=ACL_RW, mode=0o664), acl=True),
    Case("acl-remove", E(mode=0o640), E(acl=ACL_RW, mode=0o664), acl=True),
    Case("acl-mask-without-named", E(acl="u::rw-,g::rw-,m::r--,o::r--"), E(), acl=True),
    Case("acl-and-rwx", E(acl=ACL_RW, mode=0o640), E(mode=0o777), acl=True),
    Case("acl-and-suid", E(mode=0o4644), E(acl=ACL_R, mode=0o644), acl=True),
    # (setuid going off under an ACL whose group:: equals its mask: rsync
    # loses group::, the native engine keeps it: test_rsync_bugs.py)
    Case("dir-acl-sticky", E("dir", mode=0o1770, acl="u::rwx,u:1:rwx,g::r-x,m::rwx,o::---"),
         E("dir", mode=0o755), acl=True),
    # rsync writes group:: from the mode with group/other masked off here
    # and the final chmod never restores it: group::--- survives.
    Case("dir-acl-sticky-group-is-mask", E("dir", mode=0o1775, acl=DACL), E("dir", mode=0o755),
         acl=True),
    Case("acl-sgid-going-off-group-is-mask", E(acl=ACL_RW, mode=0o664), E(mode=0o2755), acl=True),
    Case("acl-suid-going-off-chown-first", E(acl=ACL_R, mode=0o644, uid=1), E(mode=0o4755),
         acl=True),
    Case("default-add", E("dir", mode=0o755, dacl=DACL), E("dir", mode=0o755), acl=True),
    Case("default-change", E("dir", mode=0o755, dacl=DACL), E("dir", mode=0o755, dacl=DACL_RW),
         acl=True),
    Case("default-remove", E("dir", mode=0o755),
         E("dir", mode=0o755, acl="u::rwx,u:1:r-x,g::r-x,m::r-x,o::r-x", dacl=DACL), acl=True),
    Case("default-base-only", E("dir", mode=0o755, dacl="u::rwx,g::r--,o::---"),
         E("dir", mode=0o755), acl=True),
    Case("default-and-mode", E("dir", mode=0o700, dacl=DACL), E("dir", mode=0o755), acl=True),
    Case("access-and-default", E("dir", mode=0o770, acl="u::rwx,g:2:rwx,g::r-x,m::rwx,o::---",
                                 dacl=DACL),
         E("dir", mode=0o755, acl="u::rwx,u:5:r-x,g::r-x,m::r-x,o::r-x", dacl=DACL_RW), acl=True),
    Case("new-file-under-default", E(mode=0o640), None, parent_dacl=DACL_RW, acl=True),
    Case("new-file-acl-under-default", E(acl=ACL_R), None, parent_dacl=DACL_RW, acl=True),
    Case("new-dir-under-default", E("dir", mode=0o750), None, parent_dacl=DACL_RW, acl=True),
    Case("new-dir-default-under-default", E("dir", mode=0o755, dacl=DACL), None,
         parent_dacl=DACL_RW, acl=True),
    # content differs: a transfer, itemized against the old file
    Case("transfer-attrs", E(mode=0o4750, uid=1, gid=UNNAMED, xattrs=XA, acl=ACL_RW),
         E(mode=0o644, data=b"other content\n", mtime_ns=T0 - NS, xattrs=XD), acl=True),
    Case("transfer-acl-rwx", E(acl=ACL_R, mode=0o640), E(data=b"other"), acl=True),
    Case("transfer-chown-suid", E(mode=0o4755, uid=1), E(mode=0o4755, data=b"x"), acl=True),
    Case("transfer-same-meta", E(xattrs={"user.a": b"1"}, acl=ACL_R),
         E(xattrs={"user.a": b"1"}, acl=ACL_R, data=b"different"), acl=True),
    Case("everything", E(mode=0o6750, uid=UNNAMED, gid=1, xattrs=XA, acl=ACL_RW),
         E(mode=0o604, uid=1, gid=UNNAMED, mtime_ns=T0 + NS, xattrs=XD, acl=ACL_OTHER), acl=True),
    Case("no-change", E(xattrs={"user.a": b"1"}, acl=ACL_R), E(xattrs={"user.a": b"1"}, acl=ACL_R),
         acl=True),
]

NONROOT_CASES = [
    Case("owner-ignored-group-not-member", E(uid=0, gid=0), E(uid=NOBODY, gid=NOBODY), user=True),
    Case("group-member", E(uid=0, gid=100), E(uid=NOBODY, gid=NOBODY), user=True, groups=(100,)),
    Case("group-member-not-that-one", E(gid=1), E(uid=NOBODY, gid=NOBODY), user=True,
         groups=(100,)),
    Case("xattrs-user-only", E(uid=NOBODY, xattrs={"user.a": b"1", "trusted.s": b"2",
                                                   "security.z": b"3"}),
         E(uid=NOBODY, xattrs={"user.x": b"1", "trusted.t": b"2", "security.q": b"4"}), user=True),
    Case("times-eperm", E(uid=NOBODY), E(uid=0, mtime_ns=T0 + 7 * NS), user=True),
    Case("symlink-times-eperm", E("symlink", uid=NOBODY), E("symlink", mtime_ns=T0 + 7 * NS),
         user=True),
    Case("xattrs-eperm", E(uid=NOBODY, xattrs={"user.a": b"1"}),
         E(uid=0, xattrs={"user.x": b"2"}), user=True),
    Case("xattrs-world-writable", E(uid=NOBODY, mode=0o666, xattrs={"user.a": b"1"}),
         E(uid=0, mode=0o666, xattrs={"user.x": b"2"}), user=True),
    Case("acl-and-mode-eperm", E(uid=NOBODY, acl=ACL_R, mode=0o640), E(uid=0), user=True, acl=True),
    Case("default-delete-eperm", E("dir", uid=NOBODY, mode=0o777),
         E("dir", uid=0, mode=0o777, dacl=DACL), user=True, acl=True),
    Case("own-acls", E("dir", uid=NOBODY, mode=0o750, acl="u::rwx,u:1:r-x,g::r-x,m::r-x,o::---",
                       dacl=DACL),
         E("dir", uid=NOBODY, gid=NOBODY), user=True, acl=True),
    Case("new-file-under-default", E(uid=NOBODY, gid=NOBODY, mode=0o640, xattrs={"user.n": b""}),
         None, parent_dacl=DACL_RW, user=True, acl=True),
]


@pytest.mark.rsync
@needs_root
@needs_acl_tools
@pytest.mark.parametrize("case", ROOT_CASES, ids=lambda c: c.id)
@pytest.mark.sampled(4)
def test_like_rsync_as_root(base, case):
    check_case(base, case)


@pytest.mark.rsync
@needs_root
@needs_acl_tools
@pytest.mark.skipif(shutil.which("setpriv") is None, reason="setpriv not installed")
@pytest.mark.parametrize("case", NONROOT_CASES, ids=lambda c: c.id)
@pytest.mark.sampled(1)
def test_like_rsync_as_nobody(base, case):
    check_case(base, case)


USERNS_CASES = [
    Case("chown-fails", E(uid=7, mtime_ns=T0 + NS, mode=0o640), E(), userns=True),
    Case("chgrp-fails", E(gid=7, mode=0o604), E(), userns=True),
    Case("symlink-chown-fails", E("symlink", uid=7), E("symlink", mtime_ns=T0 + NS), userns=True),
    # the receiver's xattr pass tries the chown again: two messages
    Case("chown-fails-with-xattrs", E(uid=7, mode=0o644, xattrs={"user.a": b"1"}),
         E(xattrs={"trusted.t": b"hidden in the namespace"}), userns=True),
]


@pytest.mark.rsync
@needs_root
@needs_acl_tools
@pytest.mark.parametrize("case", USERNS_CASES, ids=lambda c: c.id)
@pytest.mark.sampled(1)
def test_like_rsync_chown_failures(base, case):
    if subprocess.run(["unshare", "-U", "--map-root-user", "true"], capture_output=True).returncode:
        pytest.skip("no user namespaces here")
    check_case(base, case)


# -- a destination filesystem without xattrs or ACLs (ramfs) ---------------------------------

@pytest.fixture(scope="module")
def ramfs(base_dir):
    mnt = base_dir / "ramfs"
    mnt.mkdir()
    if not IS_ROOT or subprocess.run(["mount", "-t", "ramfs", "syncengine-test", str(mnt)],
                                     capture_output=True).returncode:
        pytest.skip("cannot mount a ramfs here")
    os.chmod(mnt, 0o755)
    yield mnt
    subprocess.run(["umount", str(mnt)], check=False)


NOXATTR_CASES = [
    Case("file-in-place", E(xattrs={"user.a": b"1"}, acl=ACL_R, mode=0o640), E(), acl=True),
    Case("file-new", E(xattrs={"user.a": b"1", "trusted.b": b"2"}, acl=ACL_R), None, acl=True),
    Case("dir-access-default", E("dir", mode=0o750, acl="u::rwx,u:1:r-x,g::r-x,m::r-x,o::---",
                                 dacl=DACL, xattrs={"user.d": b"1"}), E("dir"), acl=True),
    Case("dir-default-only", E("dir", mode=0o755, dacl=DACL), E("dir", mode=0o700), acl=True),
    Case("dir-new", E("dir", mode=0o750, acl="u::rwx,u:1:r-x,g::r-x,m::r-x,o::---",
                      dacl=DACL, xattrs={"user.d": b"1"}), None, acl=True),
    Case("file-transfer", E(xattrs={"user.a": b"1"}, acl=ACL_R, uid=1),
         E(data=b"old content"), acl=True),
    Case("symlink", E("symlink", xattrs={"trusted.l": b"1"}), E("symlink", mtime_ns=T0 + NS)),
    Case("plain", E(mode=0o600, uid=1), E()),
]


@pytest.mark.rsync
@needs_acl_tools
@pytest.mark.parametrize("case", NOXATTR_CASES, ids=lambda c: c.id)
@pytest.mark.sampled(1)
def test_like_rsync_without_xattr_support(base, ramfs, case):
    dest = ramfs / base.name
    dest.mkdir()
    check_case(base, case, dest_fs=dest)


# -- unit tests ----------------------------------------------------------------------------------

_tags = st.sampled_from([aclmod.USER, aclmod.GROUP])


@st.composite
def acls(draw, default=False):
    named = draw(st.lists(st.tuples(_tags, st.integers(0, 70000), st.integers(0, 7)),
                          max_size=5, unique_by=lambda e: e[:2]))
    base_ = [(aclmod.USER_OBJ, -1, draw(st.integers(0, 7))),
             (aclmod.GROUP_OBJ, -1, draw(st.integers(0, 7))),
             (aclmod.OTHER, -1, draw(st.integers(0, 7)))]
    if named or draw(st.booleans()):
        base_.append((aclmod.MASK, -1, draw(st.integers(0, 7))))
    return Acl.of(base_ + named)


@given(acls())
def test_acl_xattr_and_text_round_trip(a):
    assert Acl.from_xattr(a.to_xattr()) == a
    assert Acl.from_text(a.text()) == a


def test_acl_xattr_format():
    a = Acl.from_text("u::rw-,u:1000:r--,g::r--,m::r--,o::---")
    assert a.to_xattr() == bytes.fromhex(
        "02000000" "01000600ffffffff" "02000400e8030000" "04000400ffffffff"
        "10000400ffffffff" "20000000ffffffff")
    with pytest.raises(ValueError):
        Acl.from_xattr(b"\x01\x00\x00\x00")


@needs_root
@pytest.mark.skipif(len(BACKENDS) < 2, reason="pylibacl not installed")
@settings(max_examples=40, deadline=None)
@given(access=acls(), default=acls())
def test_backends_agree(access, default):
    with tempfile.TemporaryDirectory(dir="/tmp") as d:
        fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
        parent = os.open("/tmp", os.O_RDONLY | os.O_DIRECTORY)
        try:
            node = Node(fd=fd, dirfd=parent, name=os.path.basename(d).encode(), is_link=False)
            for writer_name, reader_name in (("raw", "libacl"), ("libacl", "raw")):
                writer, reader = aclmod.acl_backend(writer_name), aclmod.acl_backend(reader_name)
                writer.write(node, aclmod.ACCESS, access)
                writer.write(node, aclmod.DEFAULT, default)
                got_access = reader.read(node, aclmod.ACCESS)
                assert got_access == (None if access.is_minimal() else access)
                assert reader.read(node, aclmod.DEFAULT) == default
                reader.delete_default(node)
                assert reader.read(node, aclmod.DEFAULT) is None
        finally:
            os.close(fd)
            os.close(parent)


@needs_root
@needs_acl_tools
@pytest.mark.parametrize("backend", BACKENDS)
def test_no_change_makes_no_mutating_call(base, backend, monkeypatch):
    """When everything matches, not one call that could change anything."""
    spec = E("dir", mode=0o2750, uid=1, gid=UNNAMED, xattrs={"user.a": b"", "trusted.b": b"x"},
             acl="u::rwx,u:1:r-x,g::r-x,m::r-x,o::---", dacl=DACL)
    build(base / "s", spec)
    build(base / "d", spec)
    ctx = MetaContext(acl_backend=backend)
    for name in ("chown", "utime", "chmod", "setxattr", "removexattr"):
        monkeypatch.setattr(Node, name, lambda *a, _n=name, **k: pytest.fail(f"{_n} called"))
    for name in ("write", "delete_default"):
        monkeypatch.setattr(type(ctx.acl), name,
                            lambda *a, _n=name, **k: pytest.fail(f"ACL {_n} called"))
    dirfd = os.open(base, os.O_RDONLY | os.O_DIRECTORY)
    try:
        src = read_src_meta(os.lstat(base / "s"), fd=None, dirfd=dirfd, name=b"s", ctx=ctx)
        assert src.xattrs == {b"user.a": b"", b"trusted.b": b"x"}
        assert src.acl_access.text() == "u::rwx,u:1:r-x,g::r-x,m::r-x,o::---"
        before = os.lstat(base / "d")
        for exact in (False, True):
            assert apply_meta(ctx, src, None, dirfd=dirfd, name=b"d", exact_time=exact,
                              is_new=False) == UNCHANGED
        assert itemize_meta(ctx, src, dirfd=dirfd, name=b"d") == UNCHANGED
        assert os.lstat(base / "d").st_ctime_ns == before.st_ctime_ns
        assert not ctx.had_error and ctx.messages == []
    finally:
        os.close(dirfd)


@needs_root
def test_itemize_meta_is_read_only_and_new_is_plus(base):
    build(base / "s", E(mode=0o600, uid=1, xattrs={"user.a": b"1"}))
    build(base / "d", E(mtime_ns=T0 + NS))
    dirfd = os.open(base, os.O_RDONLY | os.O_DIRECTORY)
    try:
        ctx = MetaContext()
        src = read_src_meta(os.lstat(base / "s"), fd=None, dirfd=dirfd, name=b"s", ctx=ctx)
        before = snap(base / "d")
        assert itemize_meta(ctx, src, dirfd=dirfd, name=b"d") == "tpo...x"
        assert snap(base / "d") == before
        assert apply_meta(ctx, src, None, dirfd=dirfd, name=b"d", exact_time=True,
                          is_new=True) == NEW
        assert snap(base / "d") == snap(base / "s")
    finally:
        os.close(dirfd)


def test_missing_entry_is_reported_like_rsync(tmp_path):
    dirfd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        ctx = MetaContext(dest_root=b"/abs/dst/")
        src = SrcMeta(stat.S_IFREG | 0o644, 0, 0, T0)
        assert apply_meta(ctx, src, None, dirfd=dirfd, name=b"gone", exact_time=False,
                          is_new=False, path=b"sub/gone") == UNCHANGED
        assert ctx.messages == ['rsync: [generator] stat "/abs/dst/sub/gone" failed: '
                                'No such file or directory (2)']
        assert ctx.had_error
    finally:
        os.close(dirfd)


@pytest.mark.skipif(IS_ROOT is False, reason="needs a file another user cannot read")
def test_unreadable_source_xattr_is_a_sender_error(base):
    build(base / "f", E(mode=0, xattrs={"user.a": b"1"}))  # root's, unreadable for nobody

    def read():
        dirfd = os.open(base, os.O_RDONLY | os.O_DIRECTORY)
        ctx = MetaContext()
        got = read_src_meta(os.lstat(base / "f"), fd=None, dirfd=dirfd, name=b"f", ctx=ctx,
                            path=b"/abs/src/./f")
        return {"meta": got is None, "messages": ctx.messages, "io": ctx.src_io_error}

    got = _in_child(read, _become_nobody(()))
    assert got == {"meta": True, "io": True, "messages": [
        'rsync: [sender] get_xattr_data: lgetxattr("/abs/src/./f","user.a",0) failed: '
        'Permission denied (13)']}


def test_rsync_escape_without_a_charset():
    """rsync's generator and receiver escape their lines without iconv."""
    def rsync_escape(line):
        return messages.rsync_escape(line, None)
    assert rsync_escape('a "x\ny\tz\x7f"') == 'a "x\\#012y\tz\\#177"'
    assert rsync_escape("caf\u00e9") == "caf\\#303\\#251"
    assert rsync_escape(os.fsdecode(b"\xff")) == "\\#377"
    assert rsync_escape("a\\#123b\\#12") == "a\\#134#123b\\#12"


def test_filesystem_without_listxattr_is_remembered(tmp_path, monkeypatch):
    """A filesystem whose listxattr says ENOTSUP (FUSE, NFS without xattrs)
    costs one call, not one per entry.  (ramfs just lists nothing.)"""
    calls = []

    def listxattr(self):
        calls.append(self.name)
        raise OSError(errno.ENOTSUP, "not supported")

    monkeypatch.setattr(Node, "listxattr", listxattr)
    (tmp_path / "a").write_bytes(b"")
    (tmp_path / "b").write_bytes(b"")
    dirfd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        ctx = MetaContext()
        for name in (b"a", b"b"):
            src = read_src_meta(os.lstat(tmp_path / os.fsdecode(name)), fd=None, dirfd=dirfd,
                                name=name, ctx=ctx)
            assert src.xattrs == {} and src.acl_access is None
        assert calls == [b"a"] and not ctx.had_error
    finally:
        os.close(dirfd)


def test_a_run_names_its_acl_backend():
    assert aclmod.acl_backend("raw").name == "raw"
    assert MetaContext(acl_backend="raw").acl.name == "raw"
    assert MetaContext().acl.name == ("libacl" if "libacl" in BACKENDS else "raw")
    with pytest.raises(ValueError):
        aclmod.acl_backend("nope")
    assert metamod.ITEMIZE_ATTRS == "tpoguax"
    assert errno.ENOTSUP in metamod.NO_XATTR_ERRNOS
