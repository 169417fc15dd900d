"""The equivalence suite as nobody (65534:65534, no supplementary groups),
and rsync's rules for a user other than root, stated one by one.

Both engines run under ``setpriv`` (see ``unprivileged.py``): rsync
directly, the native engine in a Python that nobody may execute, usually
the system's, without pylibacl, so these runs also cover the engine's ACL
path through the kernel's ``system.posix_acl_*`` attributes.  The trees are
built as root, so their owners, groups and modes are whatever the test
wants.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from hypothesis import given, note, seed, settings

from . import unprivileged
from .conftest import PROFILE, SEED
from .harness import Case, check
from .strategies import cases

pytestmark = [pytest.mark.rsync, pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]

NB = {"uid": 65534, "gid": 65534}
T = 1_600_000_000_000_000_000


def d(path, **kw):
    return {"path": path, "type": "dir", "mode": 0o755, "mtime_ns": T, **NB, **kw}


def f(path, content=b"data\n", **kw):
    return {"path": path, "content": content, "mode": 0o644, "mtime_ns": T + 3, **NB, **kw}


def nb_case(*entries, **kw) -> Case:
    root = {"path": ".", "mode": 0o755, "mtime_ns": T, **NB}
    return Case(spec=[root, *entries], sources=[kw.pop("src", b"src/")],
                dest=kw.pop("dest", b"dst"), unprivileged=True, **kw)


@pytest.mark.slow
@seed(SEED)
@settings(PROFILE, max_examples=max(20, PROFILE.max_examples // 3))
@given(case=cases(nobody=True))
def test_equivalence_as_nobody(case, nobody_base):
    note(f"run seed {SEED}: rerun with SYNCENGINE_EQUIV_SEED={SEED}")
    check(case, nobody_base)


def test_the_runner_is_really_nobody(nobody_base):
    """The native side runs as 65534:65534 without supplementary groups."""
    env = unprivileged.nobody_env()
    proc = subprocess.run([*unprivileged._SETPRIV, env.python, "-s", "-E", "-c",
                           "import json, os; print(json.dumps([os.getuid(), os.geteuid(), "
                           "os.getgid(), os.getgroups()]))"], capture_output=True, check=True)
    assert json.loads(proc.stdout) == [65534, 65534, 65534, []]


def test_owner_is_not_kept_and_group_only_to_own_groups(nobody_base):
    """-o is ignored; -g sets only a group the user is in (else the new file
    keeps the default group); no message, exit 0."""
    rs, nat = check(nb_case(d("src"), f("src/root_owned", uid=0, gid=0),
                            f("src/other_group", gid=4321), f("src/own_group")), nobody_base)
    assert nat.code == 0 and not nat.err
    snap = nat.snap
    assert {snap[b"dst/" + n]["uid"] for n in (b"root_owned", b"other_group", b"own_group")} \
        == {65534}
    assert snap[b"dst/other_group"]["gid"] == 65534


def test_only_user_xattrs_are_kept(nobody_base):
    """A non-root receiver sets and removes only user.* names and leaves
    the others alone."""
    rs, nat = check(nb_case(d("src"), f("src/x", xattrs={"user.a": b"1", "trusted.t": b"2"}),
                            d("dst"), f("dst/x", xattrs={"user.old": b"", "trusted.keep": b"k"})),
                    nobody_base)
    assert nat.snap[b"dst/x"]["xattrs"] == {"trusted.keep": b"k", "user.a": b"1"}


def test_acls_through_the_kernel_attributes(nobody_base):
    """Access and default ACLs, written by the native engine without
    pylibacl when the interpreter lacks it."""
    check(nb_case(d("src", default_acl="u::rwx,u:1234:r-x,g::r-x,m::r-x,o::---"),
                  f("src/f", acl="u::rw-,u:1234:r--,g::r--,m::r--,o::---"),
                  d("src/sub", acl="u::rwx,g:4321:rwx,g::r-x,m::rwx,o::r-x"),
                  d("dst"), f("dst/f", acl="u::rw-,u:1:rw-,g::r--,m::rw-,o::---")), nobody_base)


def test_unreadable_file_fails_to_send_and_deletion_still_runs(nobody_base):
    """An unreadable file: "send_files failed to open", exit 23, and
    deletion runs (unlike an unreadable dir)."""
    rs, nat = check(nb_case(d("src"), f("src/secret", mode=0o000, uid=0), d("dst"),
                            f("dst/junk")), nobody_base)
    assert nat.code == 23
    assert not os.path.exists(os.path.join(nobody_base, "b", "dst", "junk"))
