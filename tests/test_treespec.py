"""fixtures.treespec builds exactly what a spec says; tests.snapshot sees
every difference that matters; real rsync reproduces a built tree exactly.

Builder checks use independent oracles (os.lstat, getfacl, getfattr), not
the snapshot code.
"""

from __future__ import annotations

import copy
import os
import shutil
import stat
import subprocess

import pytest

from fixtures.treespec import build_tree, generated_content, load_spec, spec_names
from tests.conftest import rsync_path_or_skip as require_rsync
from tests.conftest import run_rsync
from tests.snapshot import assert_same_tree, diff_snapshots, snapshot

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (owners, trusted.*, devices)")
_TYPE_BITS = {"file": stat.S_IFREG, "dir": stat.S_IFDIR, "symlink": stat.S_IFLNK,
              "fifo": stat.S_IFIFO, "socket": stat.S_IFSOCK, "chardev": stat.S_IFCHR}
SPECIALS = {"fifo", "socket", "chardev", "blockdev"}


# -- helpers ------------------------------------------------------------------

def _b(value) -> bytes:
    return value.encode() if isinstance(value, str) else bytes(value)


def _full(root, path) -> bytes:
    rel = _b(path)
    return os.fsencode(root) if rel == b"." else os.fsencode(root) + b"/" + rel


_LONG = {"u": "user", "g": "group", "m": "mask", "o": "other"}


def _long_acl(text: str) -> list[str]:
    out = []
    for item in text.split(","):
        tag, qual, perm = item.split(":")
        out.append(f"{_LONG.get(tag, tag)}:{qual}:{perm}")
    return sorted(out)


def getfacl(path: bytes, default: bool = False) -> list[str]:
    res = subprocess.run(["getfacl", "-cnpE", "-d" if default else "-a", "--", path],
                         capture_output=True, check=True)
    return sorted(line for line in res.stdout.decode(errors="surrogateescape").splitlines() if line)


def getfattr(path: bytes) -> dict[str, bytes]:
    """Every xattr but system.*, from the getfattr command (hex-encoded)."""
    res = subprocess.run(["getfattr", "-h", "-d", "-m", "-", "-e", "hex", "--absolute-names", "--", path],
                         capture_output=True, check=True)
    out = {}
    for line in res.stdout.decode(errors="surrogateescape").splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, value = line.partition("=")
        if not name.startswith("system."):
            out[name] = bytes.fromhex(value[2:]) if value else b""
    return out


# -- the builder --------------------------------------------------------------

def test_specs_load():
    assert {"kitchen_sink", "basic"} <= set(spec_names())
    sink = load_spec("kitchen_sink")
    assert load_spec("kitchen_sink") == sink and load_spec("kitchen_sink") is not sink
    with pytest.raises(FileNotFoundError):
        load_spec("no_such_spec")


def test_kitchen_sink_covers_every_feature():
    spec = load_spec("kitchen_sink")
    types = {e.get("type", "symlink" if "target" in e else "file") for e in spec if "link" not in e}
    assert {"file", "dir", "symlink", "fifo", "socket", "chardev"} <= types
    keys = set().union(*spec)
    assert {"content", "size", "seed", "target", "link", "mode", "uid", "gid", "mtime_ns",
            "xattrs", "acl", "default_acl", "rdev"} <= keys
    modes = [e["mode"] for e in spec if "mode" in e]
    assert 0 in modes and any(m & stat.S_ISUID for m in modes)
    assert any(m & stat.S_ISGID for m in modes) and any(m & stat.S_ISVTX for m in modes)
    assert any(isinstance(e["path"], bytes) for e in spec)
    xnames = {n for e in spec for n in e.get("xattrs", {})}
    assert any(n.startswith("user.") for n in xnames) and any(n.startswith("trusted.") for n in xnames)
    assert any(v == b"" for e in spec for v in e.get("xattrs", {}).values())


@needs_root
def test_kitchen_sink_builds_exactly(tmp_path):
    root = tmp_path / "tree"
    spec = load_spec("kitchen_sink")
    build_tree(root, spec)
    heads = {_b(e["path"]): e for e in spec if "link" not in e}
    for entry in spec:
        path = _full(root, entry["path"])
        st = os.lstat(path)
        if "link" in entry:
            assert os.path.samestat(st, os.lstat(_full(root, entry["link"]))), path
            entry = heads[_b(entry["link"])]
        kind = "dir" if _b(entry["path"]) == b"." else entry.get(
            "type", "symlink" if "target" in entry else "file")
        assert stat.S_IFMT(st.st_mode) == _TYPE_BITS[kind], path
        if "mode" in entry and kind != "symlink":
            assert stat.S_IMODE(st.st_mode) == entry["mode"], (path, oct(st.st_mode))
        for key in ("uid", "gid", "mtime_ns"):
            if key in entry:
                assert getattr(os.lstat(path), f"st_{key}") == entry[key], (path, key)
        if kind == "file":
            with open(path, "rb") as f:
                data = f.read()
            want = (generated_content(entry["size"], entry["seed"]) if "size" in entry
                    else _b(entry.get("content", b"")))
            assert data == want, path
        if kind == "symlink":
            assert os.readlink(path) == _b(entry["target"]), path
        if kind == "chardev":
            assert [os.major(st.st_rdev), os.minor(st.st_rdev)] == entry["rdev"]
        assert getfattr(path) == {k: _b(v) for k, v in entry.get("xattrs", {}).items()}, path
        if kind == "symlink":
            continue  # getfacl would follow it; symlinks carry no ACL on Linux
        if "acl" in entry:
            assert getfacl(path) == _long_acl(entry["acl"]), path
        else:
            assert len(getfacl(path)) == 3, path  # mode only: user::, group::, other::
        assert getfacl(path, default=True) == (_long_acl(entry["default_acl"])
                                               if "default_acl" in entry else []), path


def test_basic_spec_builds_without_root(tmp_path):
    build_tree(tmp_path / "t", load_spec("basic"))
    st_b, st_again = os.lstat(tmp_path / "t/sub/b.txt"), os.lstat(tmp_path / "t/sub/b-again.txt")
    assert os.path.samestat(st_b, st_again) and stat.S_IMODE(st_b.st_mode) == 0o600
    assert os.lstat(tmp_path / "t/link").st_mtime_ns == 1600000005500000000
    assert os.lstat(tmp_path / "t").st_mtime_ns == 1600000000000000000
    assert os.getxattr(tmp_path / "t/sub/b.txt", "user.note") == b"b"


@pytest.mark.skipif(shutil.which("setfacl") is None, reason="setfacl not installed")
def test_acls_via_setfacl_without_pylibacl(tmp_path, monkeypatch):
    import fixtures.treespec as treespec
    monkeypatch.setattr(treespec, "posix1e", None)
    acl, default = "u::rw-,u:1234:r--,g::r--,m::r--,o::---", "u::rwx,g::r-x,g:1234:rwx,m::rwx,o::---"
    build_tree(tmp_path, [{"path": "f", "acl": acl}, {"path": "d", "type": "dir", "default_acl": default},
                          {"path": "-d2", "type": "dir", "acl": "u::rwx,g::r-x,g:1:r--,o::---"}])
    assert getfacl(_full(tmp_path, "f")) == _long_acl(acl)
    assert getfacl(_full(tmp_path, "d"), default=True) == _long_acl(default)
    assert "mask::r-x" in getfacl(_full(tmp_path, "-d2"))  # mask computed, as with pylibacl


@pytest.mark.parametrize("entry, error", [
    ({"path": "/abs"}, "relative"),
    ({"path": "a/../b"}, "relative"),
    ({"path": "f", "colour": "red"}, "unknown keys"),
    ({"path": "f", "type": "door"}, "unknown type"),
    ({"path": "f", "link": "g", "mode": 0o600}, "hard link"),
])
def test_bad_specs_are_refused(tmp_path, entry, error):
    with pytest.raises(ValueError, match=error):
        build_tree(tmp_path, [entry])


# -- the snapshot -------------------------------------------------------------

@needs_root
def test_snapshot_agrees_with_getfacl_and_getfattr(tmp_path):
    build_tree(tmp_path, load_spec("kitchen_sink"))
    snap = snapshot(tmp_path)
    assert snap[b"."]["mode"] == 0o751 and snap[b"links/odd-\xfe"]["target"] == b"\xff\xfe target"
    assert snap[b"hard/b"]["links"] == (b"deep/1/2/3/c", b"hard/a", b"hard/b")
    assert snap[b"hello.txt"]["links"] == (b"hello.txt",)
    assert snap[b"special/null"]["rdev"] == (1, 3)
    for rel, rec in snap.items():
        path = _full(tmp_path, rel)
        assert rec["xattrs"] == getfattr(path), rel
        if rec["type"] == "symlink":
            assert rec["acl"] is None and rec["default_acl"] is None
            continue
        if rec["acl"] is not None:
            assert _long_acl(",".join(rec["acl"])) == getfacl(path), rel
        want_default = _long_acl(",".join(rec["default_acl"])) if rec["default_acl"] else []
        assert want_default == getfacl(path, default=True), rel


T = 1_600_000_000_000_000_000
BASE = [
    {"path": ".", "mode": 0o755, "mtime_ns": T},
    {"path": "d", "type": "dir", "mode": 0o750, "mtime_ns": T + 1,
     "default_acl": "u::rwx,g::r-x,o::---"},
    {"path": "d/f", "content": "data\n", "mode": 0o640, "uid": 0, "gid": 0, "mtime_ns": T + 2,
     "xattrs": {"user.k": b"v"}, "acl": "u::rw-,u:1234:r--,g::r--,m::r--,o::---"},
    {"path": "d/g", "link": "d/f"},
    {"path": "h", "content": "other\n", "mode": 0o644, "mtime_ns": T + 3},
    {"path": "h2", "content": "other\n", "mode": 0o644, "mtime_ns": T + 3},
    {"path": "s", "target": "d/f", "mtime_ns": T + 4},
]


def _mutate(path, **changes):
    """A spec edit: set keys (None deletes the key) on the entry at path;
    an entry that does not exist is added."""
    def edit(spec):
        for entry in spec:
            if entry["path"] == path:
                for key, value in changes.items():
                    if value is None:
                        entry.pop(key, None)
                    else:
                        entry[key] = value
                return
        spec.append({"path": path, **changes})
    return edit


def _drop(path):
    def edit(spec):
        spec[:] = [e for e in spec if e["path"] != path]
    return edit


def _copy_of_link(spec):
    """d/g: an identical, separate file instead of a hard link to d/f."""
    head = next(e for e in spec if e["path"] == "d/f")
    spec[:] = [e for e in spec if e["path"] != "d/g"] + [{**copy.deepcopy(head), "path": "d/g"}]


MUTATIONS = {
    "mode": (_mutate("d/f", mode=0o600), "d/f: mode 0o640 != 0o600"),
    "suid": (_mutate("h", mode=0o4644), "h: mode 0o644 != 0o4644"),
    "dir mode": (_mutate("d", mode=0o700), "d: mode"),
    "uid": (_mutate("d/f", uid=1), "d/f: uid 0 != 1"),
    "gid": (_mutate("d/f", gid=54321), "d/f: gid 0 != 54321"),
    "file mtime 1ns": (_mutate("d/f", mtime_ns=T + 3), "d/f: mtime_ns"),
    "dir mtime 1ns": (_mutate("d", mtime_ns=T + 2), "d: mtime_ns"),
    "symlink mtime 1ns": (_mutate("s", mtime_ns=T + 5), "s: mtime_ns"),
    "root mtime 1ns": (_mutate(".", mtime_ns=T + 1), ".: mtime_ns"),
    "content, same size": (_mutate("h", content="othex\n"), "h: sha256"),
    "content, other size": (_mutate("h", content="other!\n"), "h: size 6 != 7"),
    "symlink target": (_mutate("s", target="h"), "s: target b'd/f' != b'h'"),
    "xattr value": (_mutate("d/f", xattrs={"user.k": b"w"}), "d/f: xattr user.k b'v' != b'w'"),
    "extra xattr": (_mutate("h", xattrs={"user.new": b""}), "h: xattr user.new (absent) != b''"),
    "trusted xattr on symlink": (_mutate("s", xattrs={"trusted.t": b"1"}), "s: xattr trusted.t"),
    "ACL entry": (_mutate("d/f", acl="u::rw-,u:1235:r--,g::r--,m::r--,o::---"), "d/f: acl"),
    "ACL removed": (_mutate("d/f", acl=None), "d/f: acl u::rw-,u:1234:r--,g::r--,m::r--,o::--- != (absent)"),
    "ACL added": (_mutate("h", acl="u::rw-,g::r--,g:1:rw-,m::rw-,o::r--", mode=0o664), "h: acl"),
    "default ACL": (_mutate("d", default_acl="u::rwx,g::rwx,o::---"), "d: default_acl"),
    "default ACL removed": (_mutate("d", default_acl=None), "d: default_acl"),
    "hard link broken": (_copy_of_link, "d/f: links {d/f, d/g} != {d/f}"),
    "hard link made": (_mutate("h2", link="h", content=None, mode=None, mtime_ns=None),
                       "h2: links {h2} != {h, h2}"),
    "type file->fifo": (_mutate("h2", type="fifo", content=None), "h2: type 'file' != 'fifo'"),
    "type symlink->file": (_mutate("s", target=None, content="d/f"), "s: type 'symlink' != 'file'"),
    "extra entry": (_mutate("d/new", content=""), "d/new: only in b (file)"),
    "missing entry": (_drop("h2"), "h2: only in a (file)"),
}


@pytest.fixture
def base_snapshot(tmp_path_factory):
    root = tmp_path_factory.mktemp("base")
    build_tree(root, BASE)
    return snapshot(root)


@needs_root
def test_same_spec_same_snapshot(tmp_path, base_snapshot):
    build_tree(tmp_path, BASE)
    assert diff_snapshots(base_snapshot, snapshot(tmp_path)) == []
    assert_same_tree(base_snapshot, tmp_path)


@needs_root
@pytest.mark.parametrize("name", MUTATIONS)
def test_snapshot_sees_each_change(tmp_path, base_snapshot, name):
    edit, expected = MUTATIONS[name]
    spec = copy.deepcopy(BASE)
    edit(spec)
    build_tree(tmp_path, spec)
    diff = diff_snapshots(base_snapshot, snapshot(tmp_path))
    assert any(line.startswith(expected) for line in diff), diff
    with pytest.raises(AssertionError, match="trees differ"):
        assert_same_tree(base_snapshot, tmp_path)


@needs_root
def test_ignore_and_root_mtime(tmp_path, base_snapshot):
    spec = copy.deepcopy(BASE)
    _mutate(".", mtime_ns=T + 99)(spec)
    _mutate("d/f", uid=1)(spec)
    build_tree(tmp_path, spec)
    assert len(diff_snapshots(base_snapshot, snapshot(tmp_path))) == 3  # ., d/f and d/g
    a_root = tmp_path.parent / "again"
    build_tree(a_root, BASE)
    assert_same_tree(a_root, tmp_path, ignore={"uid"}, root_mtime=False)
    assert "mtime_ns" not in snapshot(tmp_path, root_mtime=False)[b"."]
    assert "mtime_ns" in snapshot(tmp_path, root_mtime=False)[b"d"]
    assert all("sha256" not in r for r in snapshot(tmp_path, ignore={"sha256"}).values())
    with pytest.raises(ValueError, match="unknown"):
        snapshot(tmp_path, ignore={"colour"})


def test_diff_is_readable_for_odd_names():
    rec = {"type": "file", "mode": 0o644}
    a = {b".": {"type": "dir"}, b"caf\xe9": rec, b"same": rec}
    b = {b".": {"type": "dir"}, b"caf\xe9": {**rec, "mode": 0o4755}, b"same": rec, b"new\nline": rec}
    assert diff_snapshots(a, b) == ["caf\\xe9: mode 0o644 != 0o4755", "new\nline: only in b (file)"]
    assert diff_snapshots(a, a) == []


# -- real rsync ---------------------------------------------------------------

@needs_root
@pytest.mark.rsync
def test_rsync_copy_has_identical_snapshot(tmp_path):
    require_rsync()
    src, dst = tmp_path / "src", tmp_path / "dst"
    build_tree(src, load_spec("kitchen_sink"))
    dst.mkdir()
    res = run_rsync("-rlptgocAXH", f"{src}/", f"{dst}/")
    assert res.returncode == 0, res.stderr.decode(errors="replace")
    expected = {p: r for p, r in snapshot(src).items() if r["type"] not in SPECIALS}
    skipped = sorted(p for p in snapshot(src) if p not in expected)
    assert skipped == [b"special/null", b"special/pipe", b"special/sock"]
    for p in skipped:
        assert b'skipping non-regular file "%s"' % p in res.stdout
    assert_same_tree(expected, dst)


@pytest.mark.skipif(os.geteuid() != 0, reason="inode flags need root (CAP_LINUX_IMMUTABLE)")
def test_inode_flags_are_set_last_and_cleared(tmp_path):
    """``flags`` makes entries immutable or append-only after everything
    else (times included); clear_flags lets the tree be removed."""
    from fixtures.treespec import clear_flags
    root = tmp_path / "t"
    build_tree(root, [{"path": "d", "type": "dir", "mode": 0o700, "mtime_ns": 10**18,
                       "flags": "i"},
                      {"path": "d/f", "content": b"x", "flags": "a"},
                      {"path": "g", "content": b"y", "flags": "ia"},
                      {"path": "l", "target": "g"}])
    assert os.stat(root / "d").st_mtime_ns == 10**18
    if shutil.which("lsattr"):  # (e2fsprogs: what chattr(1) would show)
        lsattr = subprocess.run(["lsattr", "-d", root / "d", root / "d" / "f", root / "g"],
                                capture_output=True, text=True, check=True)
        flags = [line.split()[0] for line in lsattr.stdout.splitlines()]
        assert ["i" in flags[0], "a" in flags[0]] == [True, False]
        assert ["i" in flags[1], "a" in flags[1]] == [False, True]
        assert ["i" in flags[2], "a" in flags[2]] == [True, True]
    with pytest.raises(PermissionError):
        os.unlink(root / "g")
    clear_flags(root)
    shutil.rmtree(root)
