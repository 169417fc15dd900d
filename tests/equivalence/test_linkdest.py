"""``--link-dest=DIR`` against the reference rsync, case by case (the random
suite draws link-dest runs too: strategies.py).  Each case runs as root and
as nobody, itemized and not, for real and as a dry run; ``harness.check``
compares the whole work dir (hard-link grouping included: which files of
DST share an inode with DIR's), the exit codes and the lines, and asserts
that DIR (outside ``changing``) is left as it was.  Where it matters the
expected outcome is stated from rsync's rule too (generator.c
try_dests_reg() / try_dests_non()).
"""

from __future__ import annotations

import os

import pytest

from tests.snapshot import diff_snapshots

from .harness import Case, check, run_both

# Each test runs both engines against the reference rsync: the fast part (-m "not
# slow") runs a sample (tests/conftest.py), the full run all of them.
pytestmark = [pytest.mark.rsync, pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
              pytest.mark.sampled(12)]

T = 1_600_000_000_000_000_000
NB = {"uid": 65534, "gid": 65534}


def entries(top: str, owner: dict, *, perturb: dict[str, dict] = (), drop=()) -> list[dict]:
    """A small tree under ``top``; ``perturb`` overrides some entries' keys,
    ``drop`` leaves some out (DIR: a perturbed copy of the source)."""
    perturb = dict(perturb)
    tree = [
        {"path": "", "type": "dir", "mode": 0o755, "mtime_ns": T},
        {"path": "same", "content": b"same\n", "mode": 0o644, "mtime_ns": T + 1},
        {"path": "mode", "content": b"mode\n", "mode": 0o644, "mtime_ns": T + 1},
        {"path": "mtime", "content": b"mtime\n", "mode": 0o644, "mtime_ns": T + 1},
        {"path": "nsec", "content": b"nsec\n", "mode": 0o644, "mtime_ns": T + 1},
        {"path": "content", "content": b"content\n", "mode": 0o644, "mtime_ns": T + 1},
        {"path": "resized", "content": b"resized\n", "mode": 0o644, "mtime_ns": T + 1},
        {"path": "xattr", "content": b"x\n", "mode": 0o644, "mtime_ns": T + 1},
        {"path": "acl", "content": b"acl\n", "mode": 0o644, "mtime_ns": T + 1},
        {"path": "missing", "content": b"m\n", "mode": 0o644, "mtime_ns": T + 1},
        {"path": "typed", "content": b"t\n", "mode": 0o644, "mtime_ns": T + 1},
        {"path": "dirtyped", "content": b"d\n", "mode": 0o644, "mtime_ns": T + 1},
        {"path": "empty", "content": b"", "mode": 0o600, "mtime_ns": T + 2},
        {"path": "sl", "type": "symlink", "target": "same", "mtime_ns": T + 3},
        {"path": "sl_target", "type": "symlink", "target": "same", "mtime_ns": T + 3},
        {"path": "sl_mtime", "type": "symlink", "target": "same", "mtime_ns": T + 3},
        {"path": "sub", "type": "dir", "mode": 0o755, "mtime_ns": T + 4},
        {"path": "sub/deep", "content": b"deep\n", "mode": 0o640, "mtime_ns": T + 5},
        {"path": "subperm", "type": "dir", "mode": 0o755, "mtime_ns": T + 4},
        {"path": "subperm/f", "content": b"f\n", "mode": 0o644, "mtime_ns": T + 5},
        {"path": "subx", "type": "dir", "mode": 0o755, "mtime_ns": T + 4},
    ]
    out = []
    for entry in tree:
        name = entry["path"]
        if name in drop:
            continue
        entry = {**entry, **owner, **perturb.get(name, {})}
        entry["path"] = f"{top}/{name}".rstrip("/")
        if entry.get("type") == "symlink":
            entry.pop("mode", None)
        out.append(entry)
    return out


# DIR: the source with some entries changed (the keys each one differs in)
PERTURB = {
    "mode": {"mode": 0o600},
    "mtime": {"mtime_ns": T + 99 * 10**9},
    "nsec": {"mtime_ns": T + 99},  # the same second: rsync links it (whole seconds)
    "content": {"content": b"CONTENT\n"},
    "resized": {"content": b"longer content\n"},
    "xattr": {"xattrs": {"user.k": b"v"}},
    "acl": {"acl": "u::rw-,u:1234:r--,g::r--,m::r--,o::r--"},
    "typed": {"type": "symlink", "target": "same", "content": None, "mode": None},
    "dirtyped": {"type": "dir", "content": None, "mode": 0o755},
    "sl_target": {"target": "elsewhere"},
    "sl_mtime": {"mtime_ns": T + 77 * 10**9},
    "subperm": {"mode": 0o700},
    "subx": {"xattrs": {"user.k": b"v"}},
}


def clean(spec: list[dict]) -> list[dict]:
    return [{k: v for k, v in e.items() if v is not None} for e in spec]


def ld_case(*extra, nobody=False, itemize=True, dry_run=False, dest=b"dst",
            link_dest=(b"prev",), src_owner=None, prev_owner=None, drop=("missing",),
            perturb=PERTURB, **kw) -> Case:
    owner = NB if nobody else {}
    spec = clean([{"path": ".", "mode": 0o755, "mtime_ns": T, **owner},
                  *entries("src", src_owner if src_owner is not None else owner),
                  *entries("prev", prev_owner if prev_owner is not None else owner,
                           perturb=perturb, drop=drop),
                  *extra])
    return Case(spec=spec, sources=[b"src/"], dest=dest, link_dest=tuple(link_dest),
                unprivileged=nobody, itemize=itemize, dry_run=dry_run, **kw)


def inode_shared(rs, path: bytes) -> bool:
    """Whether DST's ``path`` shares its inode with DIR's (rsync's tree)."""
    return b"prev/" + path in rs.snap[b"dst/" + path].get("links", ())


WHO = [pytest.param(False, id="root"), pytest.param(True, id="nobody")]


@pytest.fixture
def base(tmp_path, request):
    """The work dir's parent: one nobody can reach for a run as nobody."""
    return lambda nobody: request.getfixturevalue("nobody_base") if nobody else tmp_path


@pytest.mark.parametrize("nobody", WHO)
@pytest.mark.parametrize("itemize, dry_run", [(True, False), (False, False), (True, True)],
                         ids=["itemized", "quiet", "dry-run"])
def test_perturbed_dir(base, nobody, itemize, dry_run):
    """DIR a perturbed copy of the source: only the identical files and
    symlinks are linked; the rest is copied or made, never changed in DIR."""
    rs, nat = check(ld_case(nobody=nobody, itemize=itemize, dry_run=dry_run), base(nobody))
    if dry_run:
        return
    assert nat.code == 0, nat.err
    for name in (b"same", b"nsec", b"empty", b"sl", b"sub/deep", b"subperm/f"):
        assert inode_shared(rs, name), name
    for name in (b"mode", b"mtime", b"content", b"resized", b"xattr", b"acl", b"missing",
                 b"typed", b"dirtyped", b"sl_target", b"sl_mtime"):
        assert not inode_shared(rs, name), name


@pytest.mark.parametrize("nobody", WHO)
def test_owner_differs(base, nobody):
    """DIR's files owned by someone else: root copies them (o/g differ);
    nobody cannot set the owner, so only the group counts for it -- and
    the kernel may refuse it a link to a file it does not own."""
    other = {"uid": 1234, "gid": 1234}
    check(ld_case(nobody=nobody, prev_owner=other, perturb={}, drop=()), base(nobody))


@pytest.mark.parametrize("nobody", WHO)
def test_existing_destination(base, nobody):
    """DST already holds files: an exact DIR match replaces even an
    identical one by a link (rsync's find_exact_for_existing); a DIR file
    that is not exact leaves DST's as the transfer makes it."""
    owner = NB if nobody else {}
    extra = [{"path": "dst", "type": "dir", "mode": 0o755, "mtime_ns": T, **owner},
             {"path": "dst/same", "content": b"same\n", "mode": 0o644, "mtime_ns": T + 1, **owner},
             {"path": "dst/mode", "content": b"other\n", "mode": 0o644, "mtime_ns": T + 1, **owner},
             {"path": "dst/content", "content": b"content\n", "mode": 0o600, "mtime_ns": T,
              **owner},
             {"path": "dst/sub", "type": "dir", "mode": 0o700, "mtime_ns": T, **owner},
             {"path": "dst/sl", "type": "symlink", "target": "x", "mtime_ns": T, **owner}]
    rs, nat = check(ld_case(*extra, nobody=nobody), base(nobody))
    assert inode_shared(rs, b"same")


@pytest.mark.parametrize("nobody", WHO)
@pytest.mark.parametrize("dry_run", [False, True], ids=["real", "dry-run"])
def test_hard_link_groups(base, nobody, dry_run):
    """-H: a group whose members match DIR's files or not.  A member found
    exact in DIR is linked at once, the rest of the group to it; a member
    with nothing in DIR waits for the last, as without --link-dest."""
    owner = NB if nobody else {}

    def f(path, content, **kw):
        return {"path": path, "content": content, "mode": 0o644, "mtime_ns": T + 1, **owner, **kw}

    extra = [f("src/a1", b"a"), {"path": "src/a2", "link": "src/a1"},
             {"path": "src/a3", "link": "src/a1"},
             f("prev/a1", b"a"), f("prev/a2", b"a"),                       # exact, apart
             f("src/b1", b"b"), {"path": "src/b2", "link": "src/b1"},
             f("prev/b1", b"b", mode=0o600), f("prev/b2", b"b"),           # first differs
             f("src/c1", b"c"), {"path": "src/c2", "link": "src/c1"},
             f("prev/c2", b"c"),                                           # first missing
             f("src/e1", b"e"), {"path": "src/e2", "link": "src/e1"},
             f("prev/e1", b"e"), {"path": "prev/e2", "link": "prev/e1"},   # a group there too
             f("src/g1", b"g"), {"path": "src/g2", "link": "src/g1"},
             f("prev/g1", b"G"), f("prev/g2", b"g", mode=0o600)]           # none exact
    check(ld_case(*extra, nobody=nobody, dry_run=dry_run), base(nobody))


def test_excluded_and_extraneous(tmp_path):
    """An excluded source file is not looked up in DIR; DIR's extra files
    and excluded ones are not brought into DST."""
    extra = [{"path": "prev/extra", "content": b"e\n", "mtime_ns": T},
             {"path": "src/skip.tmp", "content": b"s\n", "mtime_ns": T},
             {"path": "prev/skip.tmp", "content": b"s\n", "mtime_ns": T}]
    check(ld_case(*extra, excludes=[b"*.tmp"]), tmp_path)


def test_new_destination_and_relative_dir(tmp_path):
    """A relative DIR is taken below DST (rsync: DST/DIR, cleaned
    lexically), also when the run creates DST.  (Not as a dry run: rsync
    3.5.0 then resolves it against a cwd it could not enter.)"""
    out = {"path": "out", "type": "dir", "mode": 0o755, "mtime_ns": T}
    rs, _ = check(ld_case(out, dest=b"out/dst/", link_dest=(b"../../prev",), relative=True,
                          changing=(b"out",)), tmp_path)
    assert b"prev/same" in rs.snap[b"out/dst/same"].get("links", ())


def test_several_dirs(tmp_path):
    """Several DIRs: each entry takes the best match, the first of the
    best in order (rsync's try_dests_*: exact beats same content beats
    same type)."""
    # (subx as in prev: rsync 3.5.0's try_dests_non() keeps the first
    # DIR's xattrs for the next DIR's dir -- see README, Known differences)
    extra = clean([*entries("prev2", {}, perturb={"mode": {}, "content": {"mode": 0o600},
                                                  "same": {"mtime_ns": T + 5 * 10**9},
                                                  "subx": PERTURB["subx"]})])
    rs, nat = check(ld_case(*extra, link_dest=(b"prev", b"prev2")), tmp_path)
    assert b"prev2/mode" in rs.snap[b"dst/mode"].get("links", ())
    assert inode_shared(rs, b"same")


@pytest.mark.parametrize("what", [b"nonexistent", b"prev/same"], ids=["missing", "a-file"])
def test_dir_not_there(tmp_path, what):
    """A DIR that is not there or not a dir: rsync warns and copies."""
    rs, nat = check(ld_case(link_dest=(what,)), tmp_path)
    assert rs.code == 0 and any("--link-dest arg" in line for line in rs.err), rs.err


def dry_run_case(sources: bytes, dest: bytes, existing: bool) -> Case:
    top = [{"path": "prev", "type": "dir", "mode": 0o755, "mtime_ns": T}]
    if existing:
        top.append({"path": "dst", "type": "dir", "mode": 0o755, "mtime_ns": T})
    spec = clean([{"path": ".", "mode": 0o755, "mtime_ns": T}, *top, *entries("src", {}),
                  *entries("prev/src" if sources == b"src" else "prev", {}, perturb=PERTURB)])
    return Case(spec=spec, sources=[sources], dest=dest, link_dest=(b"prev",), relative=True,
                itemize=True, dry_run=True)


@pytest.mark.parametrize("sources, dest, existing", [
    (b"src/", b"dst", False), (b"src/", b"dst", True), (b"src", b"dst", True),
    (b"src", b"dst/", True)])
def test_dry_run_of_new_dirs_found_in_dir(tmp_path, sources, dest, existing):
    """A dry run: rsync 3.5.0 copies the xattrs of DIR's dir onto each new
    dir it does not make, and fails (exit 23), by the path below its cwd:
    DST, or where it was started when it could not enter a missing DST."""
    check(dry_run_case(sources, dest, existing), tmp_path)


@pytest.mark.parametrize("dest", [b"dst", b"dst/"])
def test_rsync_dry_run_writes_dir_xattrs_into_the_source(tmp_path, dest):
    """Known difference: rsync 3.5.0's dry run of SRC (no slash) into a
    missing DST looks for the new dirs below where it was started -- it
    finds the source's own, and copies DIR's dirs' xattrs onto them.  The
    native engine changes nothing, and prints what rsync prints."""
    rs, nat, before_a, before_b = run_both(dry_run_case(b"src", dest, False),
                                           os.fsencode(tmp_path))
    assert before_a[b"src/subx"]["xattrs"] == {}
    assert rs.snap[b"src/subx"]["xattrs"] == {"user.k": b"v"}       # rsync's damage
    assert diff_snapshots(before_b, nat.snap) == []                  # the native engine's
    assert (nat.code, nat.lines()) == (rs.code, rs.lines()) == (0, nat.lines())


def test_unreadable_files_as_nobody(base):
    """As nobody: an unreadable file's checksum is all zeros on either side,
    so an unreadable source file matches an unreadable DIR file of its size.
    Its own such file is linked; root's cannot be (the kernel refuses
    nobody a link to a file it may not write), and rsync's copy from DIR
    fails with its "open" line; one side readable is no match (a basis)."""
    def f(path, mode, uid=65534, content=b"1234\n"):
        return {"path": path, "content": content, "mode": mode, "mtime_ns": T, "uid": uid,
                "gid": 65534}
    spec = [{"path": ".", "mode": 0o755, "mtime_ns": T, **NB},
            {"path": "src", "type": "dir", "mode": 0o755, "mtime_ns": T, **NB},
            {"path": "prev", "type": "dir", "mode": 0o755, "mtime_ns": T, **NB}]
    for name, src_mode, prev_mode, uid in [("mine", 0o000, 0o000, 65534),
                                           ("roots", 0o600, 0o600, 0),
                                           ("empty", 0o600, 0o600, 0),
                                           ("src_ok", 0o644, 0o600, 0),
                                           ("prev_ok", 0o600, 0o644, 0)]:
        content = b"" if name == "empty" else b"1234\n"
        spec += [f(f"src/{name}", src_mode, uid, content), f(f"prev/{name}", prev_mode, uid, content)]
    rs, nat = check(Case(spec=spec, sources=[b"src/"], dest=b"dst", link_dest=(b"prev",),
                         unprivileged=True, itemize=True), base(True))
    assert inode_shared(rs, b"mine")
    assert any('[generator] open "<W>/prev/roots"' in line for line in rs.err), rs.err


@pytest.mark.parametrize("owner", [65534, 0], ids=["own", "roots"])
def test_symlink_nobody_may_not_link(base, owner):
    """As nobody, a symlink identical to DIR's but not its own: the kernel
    refuses the link, and rsync makes the symlink anew without a word."""
    def sl(path):
        return {"path": path, "type": "symlink", "target": "t", "mtime_ns": T, "uid": owner,
                "gid": 65534}
    spec = [{"path": ".", "mode": 0o755, "mtime_ns": T, **NB},
            {"path": "src", "type": "dir", "mode": 0o755, "mtime_ns": T, **NB},
            {"path": "prev", "type": "dir", "mode": 0o755, "mtime_ns": T, **NB},
            sl("src/l"), sl("prev/l")]
    rs, nat = check(Case(spec=spec, sources=[b"src/"], dest=b"dst", link_dest=(b"prev",),
                         unprivileged=True, itemize=True), base(True))
    assert inode_shared(rs, b"l") == (owner == 65534)


@pytest.mark.parametrize("dry_run", [False, True], ids=["real", "dry-run"])
def test_new_dirs_without_read_permission_as_nobody(base, dry_run):
    """As nobody, rsync 3.5.0 opens each new dir found in DIR for reading
    to copy DIR's xattrs onto it, before it gives the dir u+rwx: a mode
    without u+r fails that (exit 23), at any depth."""
    spec = [{"path": ".", "mode": 0o755, "mtime_ns": T, **NB}]
    for top in ("src", "prev"):
        spec.append({"path": top, "type": "dir", "mode": 0o755, "mtime_ns": T, **NB})
        for mode in (0o000, 0o100, 0o300, 0o400, 0o500, 0o700):
            spec.append({"path": f"{top}/d{mode:o}", "type": "dir", "mode": mode, "mtime_ns": T,
                         **NB})
        spec += [{"path": f"{top}/sub", "type": "dir", "mode": 0o755, "mtime_ns": T, **NB},
                 {"path": f"{top}/sub/deep", "type": "dir", "mode": 0o200, "mtime_ns": T, **NB}]
    rs, _ = check(Case(spec=spec, sources=[b"src/"], dest=b"dst", link_dest=(b"prev",),
                       unprivileged=True, itemize=True, dry_run=dry_run), base(True))
    assert rs.code == 23


def test_new_dir_that_cannot_be_made_as_nobody(base):
    """rsync copies DIR's dir's xattrs only onto a dir it made: where the
    mkdir fails (DST not writable) it says so, and nothing about xattrs."""
    spec = [{"path": ".", "mode": 0o755, "mtime_ns": T, **NB},
            {"path": "src", "type": "dir", "mode": 0o000, "mtime_ns": T, **NB},
            {"path": "prev", "type": "dir", "mode": 0o755, "mtime_ns": T, **NB},
            {"path": "prev/src", "type": "dir", "mode": 0o000, "mtime_ns": T, **NB},
            {"path": "dst", "type": "dir", "mode": 0o555, "mtime_ns": T, **NB}]
    rs, _ = check(Case(spec=spec, sources=[b"src"], dest=b"dst", link_dest=(b"prev",),
                       unprivileged=True, itemize=True), base(True))
    assert any("mkdir" in line for line in rs.err), rs.err


@pytest.mark.parametrize("itemize", [True, False], ids=["itemized", "quiet"])
def test_unreadable_dir_entries_as_nobody(base, itemize):
    """As nobody, DIR's entries it may not read: their xattrs cannot be
    read (rsync's get_xattr_data line, with DIR's path; they count as
    none), and a dir of DIR cannot be opened to copy its xattrs from
    ("secure open of basis")."""
    def e(path, **kw):
        return {"path": path, "mtime_ns": T, **NB, **kw}
    spec = [e("."), e("src", type="dir", mode=0o755), e("prev", type="dir", mode=0o755)]
    for top, mode in (("src", 0o755), ("prev", 0o300)):
        spec += [e(f"{top}/d", type="dir", mode=mode, xattrs={"user.k": b"v"}),
                 e(f"{top}/e", type="dir", mode=mode),
                 e(f"{top}/f", content=b"", mode=0o644 if top == "src" else 0o200,
                   xattrs={"user.k": b"v"})]
    check(Case(spec=spec, sources=[b"src/"], dest=b"dst", link_dest=(b"prev",),
               unprivileged=True, itemize=itemize), base(True))


@pytest.mark.parametrize("dry_run", [False, True], ids=["real", "dry-run"])
def test_new_dst_whose_dir_cannot_be_read_as_nobody(base, dry_run):
    """DST made by the run, and DIR itself unreadable to nobody: rsync
    cannot open DIR to copy its xattrs onto DST ("secure open of basis")."""
    spec = [{"path": ".", "mode": 0o755, "mtime_ns": T, **NB},
            {"path": "src", "type": "dir", "mode": 0o300, "mtime_ns": T, **NB},
            {"path": "prev", "type": "dir", "mode": 0o300, "mtime_ns": T, **NB}]
    check(Case(spec=spec, sources=[b"src/"], dest=b"dst/", link_dest=(b"prev",),
               unprivileged=True, itemize=True, dry_run=dry_run), base(True))


def test_refused_link_is_a_quiet_copy_as_nobody(base):
    """As nobody, DIR's identical file that is root's but readable: the
    kernel refuses the link, rsync copies it from DIR and, as nothing
    differs, says nothing (not even with -i)."""
    def f(path, uid):
        return {"path": path, "content": b"same\n", "mode": 0o644, "mtime_ns": T, "uid": uid,
                "gid": 65534}
    spec = [{"path": ".", "mode": 0o755, "mtime_ns": T, **NB},
            {"path": "src", "type": "dir", "mode": 0o755, "mtime_ns": T, **NB},
            {"path": "prev", "type": "dir", "mode": 0o755, "mtime_ns": T, **NB},
            f("src/roots", 0), f("prev/roots", 0)]
    rs, _ = check(Case(spec=spec, sources=[b"src/"], dest=b"dst", link_dest=(b"prev",),
                       unprivileged=True, itemize=True), base(True))
    assert not inode_shared(rs, b"roots")


def test_a_new_dir_that_cannot_be_made_with_dirs_xattrs_in_dir(tmp_path):
    """mkdir refused (an immutable DST): rsync's receiver comes to set the
    new dir's xattrs only when they differ from those of DIR's dir, which
    its generator itemized it against (try_dests_non()); the native engine
    said the receiver's stat failed whatever DIR held."""
    for basis_xattrs in ({"trusted.t": b""}, {"trusted.t": b"other"}):
        check(Case(spec=[{"path": ".", "mode": 0o755, "mtime_ns": T},
                         {"path": "src", "type": "dir", "mode": 0o755, "mtime_ns": T,
                          "xattrs": {"trusted.t": b""}},
                         {"path": "dst", "type": "dir", "mode": 0o755, "mtime_ns": T,
                          "flags": "i"},
                         {"path": "prev", "type": "dir", "mode": 0o755, "mtime_ns": T},
                         {"path": "prev/src", "type": "dir", "mode": 0o755, "mtime_ns": T,
                          "xattrs": basis_xattrs}],
                   sources=[b"src"], dest=b"dst", link_dest=(b"prev",)), tmp_path)


@pytest.mark.parametrize("flags", ["i", "a"], ids=["immutable", "append-only"])
@pytest.mark.parametrize("match", ["exact", "mode"])
@pytest.mark.parametrize("itemize", [True, False], ids=["itemized", "quiet"])
def test_refused_local_copy_is_sent_after_all(tmp_path, flags, match, itemize):
    """A DST that refuses new files: rsync's generator copies DIR's match
    locally when it differs in an attribute or its link is refused
    (try_dests_reg() -> copy_altdest_file(), into its own temp file).  An
    immutable DST refuses that mkstemp, an append-only one the rename (but
    not a link); the generator says so, itemizes nothing and the file is
    then sent as if DIR held nothing, failing again in the receiver.  In
    a -H group that member then waits for the last, as any unmatched one."""
    def f(path, content, **kw):
        return {"path": path, "content": content, "mode": 0o644, "mtime_ns": T + 1, **kw}

    differs = {"mode": 0o600} if match == "mode" else {}
    spec = [{"path": ".", "mode": 0o755, "mtime_ns": T},
            {"path": "src", "type": "dir", "mode": 0o755, "mtime_ns": T},
            {"path": "prev", "type": "dir", "mode": 0o755, "mtime_ns": T},
            {"path": "dst", "type": "dir", "mode": 0o755, "mtime_ns": T, "flags": flags},
            f("src/a", b"a"), f("prev/a", b"a", **differs),
            f("src/h1", b"h"), {"path": "src/h2", "link": "src/h1"},
            f("prev/h1", b"h", **differs),                              # the first matches
            f("src/k1", b"k"), {"path": "src/k2", "link": "src/k1"},
            f("prev/k2", b"k", **differs),                              # the last matches
            f("src/z", b"z")]
    rs, nat = check(Case(spec=spec, sources=[b"src/"], dest=b"dst", delete=False,
                         link_dest=(b"prev",), itemize=itemize), tmp_path)
    if flags == "a" and match == "exact":
        return  # (an append-only dir takes the links)
    call = "mkstemp" if flags == "i" else "rename"
    for name in ("a", "h1", "k2"):
        generator = [x for x in nat.err if x.startswith(f"rsync: [generator] {call} ")
                     and f"/.{name}." in x]
        assert len(generator) == 1, (name, nat.err)


def test_refused_local_copy_as_nobody(base):
    """As nobody, a dir of DST that is root's (mode 755): the generator's
    local copy of DIR's match fails (EACCES), then the receiver's."""
    def d(path, **kw):
        return {"path": path, "type": "dir", "mode": 0o755, "mtime_ns": T, **NB, **kw}

    spec = [d("."), d("src"), d("src/sub"), d("dst"), d("dst/sub", uid=0, gid=0), d("prev"),
            d("prev/sub"),
            {"path": "src/sub/a", "content": b"a", "mode": 0o644, "mtime_ns": T, **NB},
            {"path": "prev/sub/a", "content": b"a", "mode": 0o600, "mtime_ns": T, **NB}]
    rs, nat = check(Case(spec=spec, sources=[b"src/"], dest=b"dst", delete=False,
                         link_dest=(b"prev",), unprivileged=True, itemize=True), base(True))
    assert any(x.startswith("rsync: [generator] mkstemp ") for x in nat.err), nat.err
