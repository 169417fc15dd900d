"""syncengine.verify: a copy made by the real rsync verifies clean; each
single change to it (one attribute at a time) is reported, exactly once,
with both values."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

import syncengine.verify as verify_module
from fixtures.treespec import build_tree, load_spec
from syncengine.cli.app import app
from syncengine.treesync.acl import Acl
from syncengine.verify import (
    IGNORABLE,
    Difference,
    VerifyError,
    VerifyStats,
    display_name,
    iter_differences,
    verify_trees,
)
from tests.conftest import run_rsync

pytestmark = pytest.mark.rsync

T0 = 1_600_000_000_123_456_789
ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="changing owners needs root")

SPEC = [
    {"path": ".", "mode": 0o755, "mtime_ns": T0},
    {"path": "a.txt", "content": "alpha\n", "mode": 0o644, "mtime_ns": T0 + 1,
     "xattrs": {"user.note": "a"}},
    {"path": "sub", "type": "dir", "mode": 0o750, "mtime_ns": T0 + 2,
     "default_acl": "u::rwx,u:4242:r-x,g::r-x,m::r-x,o::---"},
    {"path": "sub/b.txt", "content": "beta\n", "mode": 0o640, "mtime_ns": T0 + 3},
    {"path": "sub/b-again.txt", "link": "sub/b.txt"},
    {"path": "sub/acl.txt", "content": "acl'd\n", "mode": 0o640, "mtime_ns": T0 + 4,
     "acl": "u::rw-,u:4242:r--,g::r--,m::r--,o::---"},
    {"path": "link", "target": "a.txt", "mtime_ns": T0 + 5},
    {"path": b"caf\xe9", "content": "a name that is not UTF-8\n", "mode": 0o644,
     "mtime_ns": T0 + 6},
]


def rsync_copy(src: Path, dst: Path, *args: str, slash: bool = True) -> None:
    proc = run_rsync("-rlptgocAXH", "--delete", *args, f"{src}/" if slash else str(src), str(dst))
    assert proc.returncode == 0, proc.stderr


@pytest.fixture
def copied(tmp_path):
    """(src, dst): the SPEC tree and a copy of it made by the real rsync."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    build_tree(src, SPEC)
    rsync_copy(src, dst)
    return src, dst


class kept_mtime:
    """Restore these paths' mtimes after a change inside them (adding or
    removing an entry changes its directory's mtime)."""

    def __init__(self, *paths: Path) -> None:
        self.paths = paths

    def __enter__(self):
        self.saved = [os.lstat(p).st_mtime_ns for p in self.paths]

    def __exit__(self, *exc):
        for path, mtime in zip(self.paths, self.saved, strict=True):
            os.utime(path, ns=(mtime, mtime), follow_symlinks=False)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def set_acl(path: Path, text: str, default: bool = False) -> None:
    name = "system.posix_acl_default" if default else "system.posix_acl_access"
    os.setxattr(path, name, Acl.from_text(text).to_xattr())


# -- a clean copy --------------------------------------------------------------------------

def test_an_rsync_copy_has_no_differences(copied):
    src, dst = copied
    assert verify_trees(f"{src}/", dst) == []
    assert verify_trees(os.fsencode(f"{src}/"), os.fsencode(dst)) == []  # bytes paths too


@needs_root
def test_the_kitchen_sink_copied_by_rsync_has_no_differences(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    build_tree(src, load_spec("kitchen_sink"))
    rsync_copy(src, dst)
    assert verify_trees(f"{src}/", dst) == []
    stats = VerifyStats()
    assert list(iter_differences(f"{src}/", dst, stats=stats)) == []
    assert stats.entries > 30 and stats.bytes_compared > 70_000


# -- one change at a time --------------------------------------------------------------------

def _chmod(src, dst):
    os.chmod(dst / "a.txt", 0o600)
    return [Difference(b"a.txt", "mode", 0o644, 0o600)]


def _chown_uid(src, dst):
    os.chown(dst / "a.txt", 4243, -1)
    return [Difference(b"a.txt", "uid", os.lstat(src / "a.txt").st_uid, 4243)]


def _chown_gid(src, dst):
    os.chown(dst / "link", -1, 4244, follow_symlinks=False)  # a symlink's owner counts too
    return [Difference(b"link", "gid", os.lstat(src / "link").st_gid, 4244)]


def _mtime_one_ns(src, dst):
    os.utime(dst / "sub" / "acl.txt", ns=(T0, T0 + 4 + 1))
    return [Difference(b"sub/acl.txt", "mtime", T0 + 4, T0 + 5)]


def _content_same_size(src, dst):
    with kept_mtime(dst / "a.txt"):
        (dst / "a.txt").write_text("ALPHA\n")
    return [Difference(b"a.txt", "content", sha(src / "a.txt"), sha(dst / "a.txt"))]


def _size(src, dst):
    with kept_mtime(dst / "a.txt"):
        (dst / "a.txt").write_text("alpha!\n")
    return [Difference(b"a.txt", "size", 6, 7)]


def _symlink_target(src, dst):
    with kept_mtime(dst):
        os.unlink(dst / "link")
        os.symlink("sub/b.txt", dst / "link")
        os.utime(dst / "link", ns=(T0, T0 + 5), follow_symlinks=False)
    return [Difference(b"link", "target", b"a.txt", b"sub/b.txt")]


def _xattr_value(src, dst):
    os.setxattr(dst / "a.txt", "user.note", b"changed")
    return [Difference(b"a.txt", "xattr", b"a", b"changed", name=b"user.note")]


def _xattr_added(src, dst):
    os.setxattr(dst / "sub" / "acl.txt", "user.new", b"\xff\x00")
    return [Difference(b"sub/acl.txt", "xattr", None, b"\xff\x00", name=b"user.new")]


def _acl(src, dst):
    set_acl(dst / "sub" / "acl.txt", "u::rw-,u:4243:r--,g::r--,m::r--,o::---")
    return [Difference(b"sub/acl.txt", "acl", "u::rw-,u:4242:r--,g::r--,m::r--,o::---",
                       "u::rw-,u:4243:r--,g::r--,m::r--,o::---")]


def _default_acl(src, dst):
    set_acl(dst / "sub", "u::rwx,u:4242:rwx,g::r-x,m::rwx,o::---", default=True)
    return [Difference(b"sub", "default_acl", "u::rwx,u:4242:r-x,g::r-x,m::r-x,o::---",
                       "u::rwx,u:4242:rwx,g::r-x,m::rwx,o::---")]


def _default_acl_removed(src, dst):
    os.removexattr(dst / "sub", "system.posix_acl_default")
    return [Difference(b"sub", "default_acl", "u::rwx,u:4242:r-x,g::r-x,m::r-x,o::---", None)]


def _hard_link_split(src, dst):
    with kept_mtime(dst / "sub"):
        shutil.copy2(dst / "sub" / "b.txt", dst / "sub" / "tmp")
        # Made under sub's default ACL: drop what it inherited from it.
        os.removexattr(dst / "sub" / "tmp", "system.posix_acl_access")
        shutil.copystat(dst / "sub" / "b.txt", dst / "sub" / "tmp")
        os.replace(dst / "sub" / "tmp", dst / "sub" / "b.txt")
    # The walk meets b-again.txt first: b.txt is linked to it in SRC only.
    return [Difference(b"sub/b.txt", "links", b"sub/b-again.txt", None)]


def _extra_entry(src, dst):
    with kept_mtime(dst / "sub"):
        (dst / "sub" / "new").mkdir()
        (dst / "sub" / "new" / "inside").write_text("not reported: below an extra dir")
    return [Difference(b"sub/new", "extra", None, "dir")]


def _missing_entry(src, dst):
    with kept_mtime(dst):
        (dst / "a.txt").unlink()
    return [Difference(b"a.txt", "missing", "file", None)]


def _type_change(src, dst):
    with kept_mtime(dst):
        (dst / "link").unlink()
        (dst / "link").write_text("a file now")
        os.utime(dst / "link", ns=(T0, T0 + 5))
    return [Difference(b"link", "type", "symlink", "file")]


def _dir_replaced_by_symlink(src, dst):
    with kept_mtime(dst):
        os.rename(dst / "sub", dst.parent / "elsewhere")
        os.symlink(dst.parent / "elsewhere", dst / "sub")
    return [Difference(b"sub", "type", "dir", "symlink")]  # never followed


def _non_utf8_name_missing(src, dst):
    with kept_mtime(dst):
        os.unlink(os.fsencode(dst) + b"/caf\xe9")
    return [Difference(b"caf\xe9", "missing", "file", None)]


def _root_mode(src, dst):
    os.chmod(dst, 0o700)
    return [Difference(b".", "mode", 0o755, 0o700)]


MUTATIONS = {f.__name__.lstrip("_"): f for f in (
    _chmod, _chown_uid, _chown_gid, _mtime_one_ns, _content_same_size, _size, _symlink_target,
    _xattr_value, _xattr_added, _acl, _default_acl, _default_acl_removed, _hard_link_split,
    _extra_entry, _missing_entry, _type_change, _dir_replaced_by_symlink,
    _non_utf8_name_missing, _root_mode)}


@pytest.mark.parametrize("name", sorted(MUTATIONS))
def test_each_kind_of_difference_is_found(name, copied):
    if name.startswith("chown") and not ROOT:
        pytest.skip("changing owners needs root")
    src, dst = copied
    expected = MUTATIONS[name](src, dst)
    found = verify_trees(f"{src}/", dst)
    assert found == expected
    for diff in found:
        line = str(diff)
        assert "\n" not in line and line.startswith(display_name(diff.path) + ": ")
        event = json.loads(json.dumps(diff.as_dict()))
        assert event["event"] == "difference" and event["attribute"] == diff.attribute


def test_lines_are_readable(copied):
    src, dst = copied
    expected = {
        "chmod": "a.txt: mode differs: SRC 0644, DST 0600",
        "mtime_one_ns": "sub/acl.txt: mtime differs: SRC 2020-09-13T12:26:40.123456793Z, "
                        "DST 2020-09-13T12:26:40.123456794Z (DST +1 ns)",
        "symlink_target": "link: symlink target differs: SRC -> 'a.txt', DST -> 'sub/b.txt'",
        "xattr_added": "sub/acl.txt: xattr user.new differs: SRC (absent), DST 0xff00 (2 bytes)",
        "non_utf8_name_missing": "caf\\xe9: only in SRC (file)",
        "hard_link_split": "sub/b.txt: hard links differ: SRC same file as sub/b-again.txt, "
                           "DST not linked to an earlier entry",
    }
    for name in expected:
        MUTATIONS[name](src, dst)
    lines = [str(d) for d in verify_trees(f"{src}/", dst)]
    assert sorted(lines) == sorted(expected.values())


def test_a_name_that_is_not_utf8_is_carried_losslessly_in_json():
    diff = Difference(b"dir/caf\xe9\n", "target", b"t\xff", b"t")
    event = diff.as_dict()
    assert base64.b64decode(event["path_b64"]) == b"dir/caf\xe9\n"
    assert event["path"] == "dir/caf\ufffd\n"
    assert base64.b64decode(event["src_b64"]) == b"t\xff" and event["dst"] == "t"
    assert "dst_b64" not in event  # only beside text that is not valid UTF-8
    assert str(diff).startswith("dir/caf\\xe9\\x0a: ")  # and one line, escaped readably
    json.dumps(event)  # no lone surrogates: encodable as it is


# -- what rsync's command line means --------------------------------------------------------

def test_without_trailing_slash_src_is_compared_with_dst_slash_its_name(copied, tmp_path):
    src, _ = copied
    into = tmp_path / "into"
    rsync_copy(src, into, slash=False)
    assert verify_trees(src, into) == []
    os.chmod(into / "src" / "a.txt", 0o600)
    assert verify_trees(src, into) == [Difference(b"src/a.txt", "mode", 0o644, 0o600)]
    # The other form of the command compares other trees.
    assert verify_trees(f"{src}/", into)[0].attribute in ("missing", "extra", "mode", "mtime")


def test_a_single_file(copied):
    src, dst = copied
    assert verify_trees(src / "a.txt", dst / "a.txt") == []
    assert verify_trees(src / "a.txt", dst) == []  # DST is a dir: DST/a.txt
    os.chmod(dst / "a.txt", 0o600)
    assert verify_trees(src / "a.txt", dst) == [Difference(b"a.txt", "mode", 0o644, 0o600)]


def test_a_missing_destination_is_one_difference(copied, tmp_path):
    src, _ = copied
    assert verify_trees(f"{src}/", tmp_path / "nope") == [Difference(b".", "missing", "dir", None)]
    assert verify_trees(src, tmp_path / "nope") == [Difference(b"src", "missing", "dir", None)]


def test_a_destination_root_that_links_to_a_dir_is_followed(copied, tmp_path):
    src, dst = copied
    os.symlink(dst, tmp_path / "via-link")
    assert verify_trees(f"{src}/", tmp_path / "via-link") == []


def test_excludes_as_rsync_applies_them(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    build_tree(src, SPEC + [
        {"path": "cache/x", "content": "cached", "mtime_ns": T0},
        {"path": "cache", "type": "dir", "mtime_ns": T0},
        {"path": "sub/keep.tmp", "content": "kept by + rule", "mtime_ns": T0},
        {"path": "sub/drop.tmp", "content": "excluded", "mtime_ns": T0},
        {"path": "sub", "type": "dir", "mode": 0o750, "mtime_ns": T0 + 2}])
    excludes = ["cache/", "+ keep.tmp", "*.tmp"]
    rsync_copy(src, dst, *(f"--exclude={p}" for p in excludes))
    # Excluded DST entries are protected from --delete, so they may differ.
    with kept_mtime(dst, dst / "sub"):
        (dst / "junk.tmp").write_text("protected in DST")
        (dst / "cache").mkdir()
        (dst / "cache" / "x").write_text("CACHED")  # same size, other content
        os.utime(dst / "cache" / "x", ns=(T0, T0))
        os.utime(dst / "cache", ns=(T0, T0))
    assert verify_trees(f"{src}/", dst, excludes) == []
    assert sorted((d.path, d.attribute) for d in verify_trees(f"{src}/", dst)) == [
        (b"cache/x", "content"), (b"junk.tmp", "extra"), (b"sub/drop.tmp", "missing")]
    # Anchored rules name the path from the transfer root: "src/..." without a slash.
    into = tmp_path / "into"
    rsync_copy(src, into, "--exclude=/src/cache/", "--exclude=*.tmp", slash=False)
    assert verify_trees(src, into, ["/src/cache/", "*.tmp"]) == []
    assert verify_trees(src, into, ["/cache/", "*.tmp"]) == [
        Difference(b"src/cache", "missing", "dir", None)]
    # An excluded top directory: rsync sends nothing, so there is nothing to compare.
    assert verify_trees(src, tmp_path / "nothing-here", ["src"]) == []


def test_special_files_are_skipped_like_rsync_without_D(copied):
    src, dst = copied
    with kept_mtime(src):
        os.mkfifo(src / "pipe")
    with kept_mtime(dst):
        (dst / "pipe").write_text("rsync leaves a same-named DST entry alone")
        os.mkfifo(dst / "dst-only-fifo")
    assert verify_trees(f"{src}/", dst) == [Difference(b"dst-only-fifo", "extra", None, "fifo")]


def test_ignore(copied):
    src, dst = copied
    os.chmod(dst / "a.txt", 0o600)
    with kept_mtime(dst):
        (dst / "extra").write_text("x")
    assert verify_trees(f"{src}/", dst, ignore=["mode", "extra"]) == []
    with pytest.raises(VerifyError, match="cannot ignore colour"):
        verify_trees(f"{src}/", dst, ignore=["colour"])


def test_bad_input(tmp_path):
    with pytest.raises(VerifyError, match="No such file or directory"):
        verify_trees(f"{tmp_path}/nope/", tmp_path)
    with pytest.raises(VerifyError, match="(?i)not a directory"):
        (tmp_path / "f").write_text("x")
        verify_trees(f"{tmp_path}/f/", tmp_path)
    with pytest.raises(ValueError, match="unexpected end of filter rule"):
        verify_trees(f"{tmp_path}/", tmp_path, ["- "])


def test_the_walk_streams(tmp_path):
    """The first difference comes before the rest of the tree is read."""
    src = tmp_path / "src"
    build_tree(src, [{"path": f"d{i:02d}/f{j}", "content": "x", "mtime_ns": T0}
                     for i in range(40) for j in range(25)]
               + [{"path": f"d{i:02d}", "type": "dir", "mtime_ns": T0} for i in range(40)]
               + [{"path": ".", "mtime_ns": T0}])
    dst = tmp_path / "dst"
    rsync_copy(src, dst)
    os.chmod(dst / "d00" / "f0", 0o600)
    os.chmod(dst / "d39" / "f9", 0o600)
    stats = VerifyStats()
    walk = iter_differences(f"{src}/", dst, stats=stats)
    assert next(walk).path == b"d00/f0"
    assert stats.entries < 10
    assert [d.path for d in walk] == [b"d39/f9"]
    assert stats.entries == 1 + 40 + 40 * 25


def test_an_unreadable_directory_is_reported_and_the_walk_goes_on(copied, monkeypatch):
    """Root reads everything, so the failure is injected: opening sub in
    DST fails as it would without permission."""
    import errno

    import syncengine.verify as verify

    src, dst = copied
    real_open_dir = verify._Entry.open_dir

    def open_dir(entry):
        if entry.name == b"sub" and entry.dirfd != -1 and os.path.samestat(
                os.fstat(entry.dirfd), os.stat(dst)):
            raise PermissionError(errno.EACCES, "Permission denied")
        return real_open_dir(entry)

    monkeypatch.setattr(verify._Entry, "open_dir", open_dir)
    os.chmod(dst / "a.txt", 0o600)
    found = verify_trees(f"{src}/", dst)
    assert found == [Difference(b"a.txt", "mode", 0o644, 0o600),
                     Difference(b"sub", "error", None, "Permission denied")]
    assert str(found[1]) == "sub: cannot read in DST: Permission denied"


def test_ignore_size(copied):
    """Every attribute a difference names can be ignored: ``size`` alone
    leaves the content to tell the files apart; with ``content`` too,
    nothing is compared."""
    src, dst = copied
    with kept_mtime(dst / "a.txt"):
        (dst / "a.txt").write_bytes((src / "a.txt").read_bytes() + b"more")
    (found,) = verify_trees(f"{src}/", dst)
    assert (found.path, found.attribute) == (b"a.txt", "size")
    (found,) = verify_trees(f"{src}/", dst, ignore=["size"])
    assert (found.path, found.attribute) == (b"a.txt", "content")
    assert verify_trees(f"{src}/", dst, ignore=["size", "content"]) == []
    result = CliRunner().invoke(app, ["verify", f"{src}/", str(dst), "--ignore", "size"])
    assert result.exit_code == 1 and "a.txt: content differs" in result.output


def test_every_compared_attribute_can_be_ignored():
    # (type is what an entry is; default_acl goes with "acl")
    assert set(verify_module._LABELS) - {"type", "default_acl"} <= set(IGNORABLE)
