"""Run one case through the real rsync and through the native engine, on two
identical copies of a work directory, and compare everything.

A :class:`Case` is a whole work directory (a ``fixtures.treespec`` spec whose
paths start with ``src/``, ``dst/``, ``outside/`` ...), the command line's
SRC and DST arguments (relative to the work dir), ``--delete`` and the
``--exclude`` list.  :func:`check` builds the work dir twice, runs::

    rsync -rlptgocAXH [--delete] [--exclude=P]... --no-inc-recursive SRC... DST

on copy ``a`` and :func:`syncengine.treesync.sync.run_sync` on copy ``b``,
and asserts that

- both builds were identical to start with (the builder is deterministic);
- the exit codes are equal;
- the stdout and stderr lines are equal as multisets, after removing rsync's
  `` at FILE(LINE) [role=VER]`` suffix and the work dir's path (rsync's
  three processes interleave their lines, so the order is not compared);
- the work dirs snapshot the same: every attribute of ``tests.snapshot``
  including hard-link grouping, ACLs and xattrs; a time set by the run
  itself ("now": a dir whose entries changed) is compared as ``RECENT`` (0),
  since generated trees only hold times in the past;
- nothing outside the paths the run may change (``Case.changing``) moved:
  the sources and the ``outside`` canary are unchanged in both copies.

rsync 3.5.0 can deadlock with ``-H`` (rsync-semantics §11): rsync runs in its
own session with a timeout and its whole process group is killed when it
expires.  A hang is accepted only with the known bug's signature (``could
not make way``); the native engine must then finish with exit 23 and print
the messages rsync printed before it hung.  Likewise rsync 3.5.0 sometimes
aborts with "Invalid packet at end of run" (exit 2) when hard-linked files
cannot be read; then too only its earlier lines are required.

With ``Case.unprivileged`` both engines run as nobody (65534:65534, no
supplementary groups) through ``setpriv``: rsync directly, the native engine
in a Python that nobody can read (see :mod:`.unprivileged`).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from fixtures.treespec import build_tree
from syncengine.treesync.messages import rsync_escape
from tests.snapshot import diff_snapshots, snapshot
from tests.reference import reference_rsync

__all__ = ["Case", "Outcome", "check", "normalize_line", "run_both", "rsync_binary",
           "RSYNC_FLAGS", "RSYNC_TIMEOUT"]

RSYNC_FLAGS = (b"-rlptgocAXH",)
# Small trees take rsync well under a second; a run this long is the §11 hang.
RSYNC_TIMEOUT = float(os.environ.get("SYNCENGINE_EQUIV_RSYNC_TIMEOUT", 8))
NOBODY = 65534

_SUFFIX = re.compile(r" at [\w./-]+\(\d+\) \[[A-Za-z]+=[\w.]+\]$")
# Temp names are random (mkstemp) or pid-based: "/.name.XXXXXX" in the
# lines that name one.
_TEMP_NAME = re.compile(r'(^rsync: \[\w+\] (?:mkstemp|symlink|link|rename) "[^"]*/\.[^"/]*\.)'
                        r'[A-Za-z0-9]{1,6}"')
# rsync 3.5.0 aborting on its own protocol (hard-linked files it cannot read).
_PROTOCOL_BUG = "Invalid packet at end of run"
_PROTOCOL_NOISE = (_PROTOCOL_BUG, "rsync error: protocol incompatibility",
                   "rsync error: received SIGUSR1")
# rsync's lines for the §11 hang: the run never gets to its final lines.
_HANG_SIGNATURE = "could not make way for new "


@dataclass
class Case:
    """One command over one work directory (see the module docstring)."""

    spec: list[dict[str, Any]]
    sources: list[bytes]
    dest: bytes
    delete: bool = True
    excludes: list[bytes] = field(default_factory=list)
    # Top-level names of the work dir that the run may change.
    changing: tuple[bytes, ...] = (b"dst",)
    # Give rsync and the native engine paths relative to the work dir (run
    # from it) instead of absolute ones.
    relative: bool = False
    unprivileged: bool = False
    # The native engine's ACL backend: None = its default (pylibacl when
    # importable), "raw" = the kernel's system.posix_acl_* xattrs.  Runs as
    # nobody always use "raw".
    acl_backend: str | None = None
    # rsync's -i (itemized changes, compared with the other stdout lines)
    # and -n (a dry run: nothing may change).
    itemize: bool = False
    dry_run: bool = False
    # --link-dest=DIR for each (work-dir paths, given absolute; one
    # starting with "../" is given as is: rsync takes it below DST)
    link_dest: tuple[bytes, ...] = ()

    def argv_tail(self, workdir: bytes) -> list[bytes]:
        """Options, SRC... and DST as rsync gets them."""
        args = [*RSYNC_FLAGS]
        if self.delete:
            args.append(b"--delete")
        args += [b"--exclude=" + p for p in self.excludes]
        args += [b"--link-dest=" + p for p in self.link_dest_args(workdir)]
        args.append(b"--no-inc-recursive")
        if self.itemize:
            args.append(b"-i")
        if self.dry_run:
            args.append(b"-n")
        args += [self.path(workdir, p) for p in [*self.sources, self.dest]]
        return args

    def link_dest_args(self, workdir: bytes) -> list[bytes]:
        return [p if p.startswith(b"../") else workdir + b"/" + p for p in self.link_dest]

    def path(self, workdir: bytes, rel: bytes) -> bytes:
        return rel if self.relative else workdir + b"/" + rel


@dataclass
class Outcome:
    code: int | None            # None: rsync hung and was killed
    out: list[str]
    err: list[str]
    snap: dict[bytes, dict] = field(default_factory=dict)

    def lines(self) -> tuple[list[str], list[str]]:
        return sorted(self.out), sorted(self.err)


def rsync_binary() -> str:
    """The oracle: the reference rsync (tests/reference.py)."""
    return reference_rsync()


def normalize_line(line: str, workdir: str) -> str:
    """A message line without rsync's source-location suffix, with the work
    dir's path replaced by ``<W>``."""
    line = _SUFFIX.sub("", line).replace(workdir, "<W>")
    return _TEMP_NAME.sub(r'\1<TMP>"', line)


def _split_lines(data: bytes, workdir: str) -> list[str]:
    return [normalize_line(os.fsdecode(line), workdir)
            for line in data.split(b"\n") if line.strip(b"\r")]


def _run_in_session(argv: list[bytes], cwd: bytes, timeout: float,
                    preexec_user: bool = False) -> tuple[int | None, bytes, bytes]:
    """Run argv in its own session; on timeout kill its process group."""
    if preexec_user:
        argv = [b"setpriv", b"--reuid=%d" % NOBODY, b"--regid=%d" % NOBODY,
                b"--clear-groups", b"--", *argv]
    proc = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
        return proc.returncode, out, err
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        return None, out, err


def run_rsync(case: Case, workdir: bytes) -> Outcome:
    argv = [os.fsencode(rsync_binary()), *case.argv_tail(workdir)]
    code, out, err = _run_in_session(argv, workdir, RSYNC_TIMEOUT, case.unprivileged)
    wd = os.fsdecode(workdir)
    return Outcome(code, _split_lines(out, wd), _split_lines(err, wd))


@contextlib.contextmanager
def _cwd(path: bytes):
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def run_native(case: Case, workdir: bytes) -> Outcome:
    sources = [case.path(workdir, s) for s in case.sources]
    dest = case.path(workdir, case.dest)
    wd = os.fsdecode(workdir)
    if case.unprivileged:
        from .unprivileged import run_native_as_nobody
        code, out, err = run_native_as_nobody(sources, dest, case.delete, case.excludes, workdir,
                                              case.itemize, case.dry_run,
                                              case.link_dest_args(workdir))
        return Outcome(code, [normalize_line(x, wd) for x in out],
                       [normalize_line(x, wd) for x in err])
    from syncengine.treesync import acl
    from syncengine.treesync.sync import run_sync
    out: list[str] = []
    err: list[str] = []
    acl.set_backend(case.acl_backend)
    # run_sync raises the recursion limit for deep trees; hypothesis warns
    # when a test leaves it changed, so it is raised and put back here.
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 20_000))
    try:
        with _cwd(workdir):
            code = run_sync(sources, dest, delete=case.delete, excludes=list(case.excludes),
                            out=out.append, err=err.append, dry_run=case.dry_run,
                            on_item=(lambda item: out.append(rsync_escape(item.line())))
                            if case.itemize else None,
                            link_dest=case.link_dest_args(workdir))
    finally:
        sys.setrecursionlimit(limit)
        acl.set_backend(None)
    return Outcome(code, [normalize_line(x, wd) for x in out], [normalize_line(x, wd) for x in err])


# A time the run itself set ("now"): generated trees only hold older times.
RECENT = 0


def _recent(snap: dict[bytes, dict], since_ns: int) -> dict[bytes, dict]:
    """Times the run itself set compare as ``RECENT``."""
    for rec in snap.values():
        if rec.get("mtime_ns", 0) >= since_ns:
            rec["mtime_ns"] = RECENT
    return snap


def _top(path: bytes) -> bytes:
    return path.split(b"/", 1)[0]


def _unchanged_outside(before: dict, after: dict, changing: tuple[bytes, ...]) -> list[str]:
    keep_b = {p: r for p, r in before.items() if p != b"." and _top(p) not in changing}
    keep_a = {p: r for p, r in after.items() if p != b"." and _top(p) not in changing}
    # A hard-link group may include changed paths: compare only the part
    # outside, which must not have gained or lost members.
    for snap in (keep_b, keep_a):
        for rec in snap.values():
            if "links" in rec:
                rec["links"] = tuple(p for p in rec["links"] if _top(p) not in changing)
    return diff_snapshots(keep_b, keep_a)


def _build(root: bytes, spec: list[dict[str, Any]]) -> None:
    build_tree(root, spec)
    if not any(e["path"] in (".", b".") for e in spec):
        os.chmod(root, 0o755)


def run_both(case: Case, base: bytes) -> tuple[Outcome, Outcome, dict, dict]:
    """Build, run, snapshot; returns (rsync, native, before_a, before_b)."""
    a, b = base + b"/a", base + b"/b"
    for root in (a, b):
        if os.path.lexists(root):
            shutil.rmtree(root)
        _build(root, case.spec)
    before_a, before_b = snapshot(a), snapshot(b)
    since = time.time_ns() - 1_000_000_000
    rs = run_rsync(case, a)
    nat = run_native(case, b)
    rs.snap = _recent(snapshot(a), since)
    nat.snap = _recent(snapshot(b), since)
    return rs, nat, before_a, before_b


def _describe(case: Case, rs: Outcome, nat: Outcome) -> str:
    argv = b" ".join([b"rsync", *case.argv_tail(b"<W>")]).decode("utf-8", "backslashreplace")
    who = " (as nobody)" if case.unprivileged else ""
    if case.acl_backend:
        who += f" (native ACLs: {case.acl_backend})"
    return (f"command{who}: {argv}\n"
            f"rsync:  exit {rs.code}\n  stdout {rs.out}\n  stderr {rs.err}\n"
            f"native: exit {nat.code}\n  stdout {nat.out}\n  stderr {nat.err}")


def check(case: Case, base: bytes | str | Path) -> tuple[Outcome, Outcome]:
    """Run ``case`` through both engines under ``base`` and assert equivalence."""
    base = os.fsencode(base)
    rs, nat, before_a, before_b = run_both(case, base)
    where = _describe(case, rs, nat)
    diff = diff_snapshots(before_a, before_b)
    assert not diff, "the two builds differ before any run:\n" + "\n".join(diff)

    for name, before, after in (("rsync", before_a, rs.snap), ("native", before_b, nat.snap)):
        moved = _unchanged_outside(before, after, case.changing)
        assert not moved, (f"{name} changed paths outside {case.changing} (sources or canary):\n"
                           + "\n".join(moved) + "\n" + where)

    if case.dry_run:
        for name, before, after in (("rsync", before_a, rs.snap), ("native", before_b, nat.snap)):
            changed = diff_snapshots(before, after)
            assert not changed, f"{name}'s dry run changed:\n" + "\n".join(changed) + "\n" + where

    if any(line.startswith(_PROTOCOL_BUG) for line in rs.err):
        # rsync 3.5.0 breaks its own protocol when -H members cannot be
        # read (it aborts with exit 2): only what it printed before counts.
        assert nat.code == 23, f"native must finish with exit 23\n{where}"
        printed = [x for x in rs.out + rs.err if not x.startswith(_PROTOCOL_NOISE)]
        missing = [x for x in printed if x not in nat.out + nat.err]
        assert not missing, f"native lacks rsync's lines {missing}\n{where}"
        return rs, nat

    if rs.code is None:
        # rsync hung (killed at the timeout): only the §11 deadlock is known.
        assert any(_HANG_SIGNATURE in line for line in rs.err), (
            f"rsync hung without the known -H deadlock's signature\n{where}")
        assert nat.code == 23, f"native must finish the §11 case with exit 23\n{where}"
        missing = [x for x in rs.out + rs.err if x not in nat.out + nat.err]
        assert not missing, f"native lacks rsync's lines {missing}\n{where}"
        return rs, nat

    if case.dry_run and not any(_top(os.fsencode(e["path"])) == _top(case.dest) for e in case.spec):
        # rsync 3.5.0 cannot chdir into a destination a dry run did not
        # create, and stats a waiting hard-link member below its own cwd:
        # it finds the source file, the very inode of its leader, and
        # prints the line of a link already in place.  The native engine
        # prints what the real run would.
        rs.out = [re.sub(r"^hf {9}(?= )", "hf" + "+" * 9, line) for line in rs.out]
    diff = diff_snapshots(rs.snap, nat.snap)
    assert not diff, ("destination trees differ (a = rsync, b = native; mtime_ns 0 = set "
                      "by the run, i.e. now):\n"
                      + "\n".join(diff[:60]) + "\n" + where)
    assert rs.code == nat.code, f"exit codes differ\n{where}"
    assert rs.lines() == nat.lines(), f"messages differ\n{where}"
    return rs, nat
