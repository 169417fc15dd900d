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
- the stdout lines are equal in order, and so are the stderr lines of each
  of rsync's processes (``stderr_by_process``), after removing rsync's
  `` at FILE(LINE) [role=VER]`` suffix and the work dir's path.  Every
  stdout line reaches the terminal through one process, rsync's sender,
  which prints its own lines (transfers) and those the generator sends it
  (item lines as data, deletions and notices as messages) in the order it
  reads them, so their order is rsync's own (but for the "hf" lines of
  links made after a transfer in a list of over 200 entries: the generator
  hears of the transfer when it flushes, as timing has it; the generated
  trees are smaller, and test_itemize's big ones have no links).  stderr
  lines come from the sender, the generator and the receiver each on its
  own, so only the order within one process is compared (and stdout
  against stderr not);
- the work dirs snapshot the same: every attribute of ``tests.snapshot``
  including hard-link grouping, ACLs and xattrs; a time set by the run
  itself ("now": a dir whose entries changed) is compared as ``RECENT`` (0),
  since generated trees only hold times in the past; temp files a run
  could not remove (an append-only dir) are compared as ``.NAME.<TMP>``;
  where rsync loses metadata the native engine keeps (README, known
  differences: only ``rsync_lost_group_obj``), rsync's record is kept in
  ``Outcome.lost`` and the native one, checked against the source, is
  compared instead;
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

from fixtures.treespec import build_tree, clear_flags
from syncengine.messages import rsync_escape
from tests.reference import reference_rsync
from tests.snapshot import diff_snapshots, snapshot

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
    # rsync's records of entries where it lost metadata the native engine
    # kept (see _forgive_rsync_losses): path -> rsync's own record
    lost: dict[bytes, dict] = field(default_factory=dict)

    def lines(self) -> tuple[list[str], dict[str, list[str]]]:
        """What is compared: stdout in order, stderr split by the rsync
        process that writes each line (see :func:`stderr_by_process`)."""
        return self.out, stderr_by_process(self.err)


# Which of rsync's three processes prints a stderr line, by its start.  The
# "[Receiver]" lines come from the receiving side before it forks: the
# process that goes on as the generator.
_PROCESSES = (
    ("sender", ("rsync: [sender] ", "file has vanished: ")),
    ("generator", ("rsync: [generator] ", "rsync: [Receiver] ", "could not make way for new ",
                   "*** Skipping any contents from this failed directory ***",
                   "ERROR: destination must be a directory", "ERROR: cannot overwrite ")),
    ("receiver", ("rsync: [receiver] ",)),
    ("exit", ("rsync error: ", "rsync warning: ")),
)
_VERIFICATION = re.compile(r"^ERROR: .* failed verification -- update (discarded|retained)")


def stderr_by_process(lines: list[str]) -> dict[str, list[str]]:
    """stderr lines grouped by the rsync process that prints them, each
    group in its order.  rsync's sender, generator and receiver write to
    stderr each on its own (the generator and receiver straight, not
    through the sender), so only the order within one process is rsync's
    own; how the groups interleave depends on timing and is not compared.
    "exit" holds the closing ``rsync error:``/``rsync warning:`` lines (a
    process that dies takes the others down, each with its line) and
    "unknown" a line of no known process: those two are compared as
    multisets."""
    groups: dict[str, list[str]] = {}
    for line in lines:
        process = "receiver" if _VERIFICATION.match(line) else next(
            (name for name, starts in _PROCESSES if line.startswith(starts)), "unknown")
        groups.setdefault(process, []).append(line)
    for mixed in ("exit", "unknown"):
        groups.get(mixed, []).sort()
    return groups


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
    from syncengine.treesync.model import Tuning
    from syncengine.treesync.sync import run_sync
    out: list[str] = []
    err: list[str] = []
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
                            link_dest=case.link_dest_args(workdir),
                            tuning=Tuning(acl_backend=case.acl_backend))
    finally:
        sys.setrecursionlimit(limit)
    return Outcome(code, [normalize_line(x, wd) for x in out], [normalize_line(x, wd) for x in err])


# A time the run itself set ("now"): generated trees only hold older times.
RECENT = 0


def _recent(snap: dict[bytes, dict], since_ns: int) -> dict[bytes, dict]:
    """Times the run itself set compare as ``RECENT``."""
    for rec in snap.values():
        if rec.get("mtime_ns", 0) >= since_ns:
            rec["mtime_ns"] = RECENT
    return snap


# A temp file the run could not remove (its dir is append-only): rsync's
# mkstemp names (6 random letters), its symlinks' pid-based ones, the
# native engine's (6 letters for both).
_LEFT_TEMP = re.compile(rb"(^|/)(\.[^/]+\.)(?:[A-Za-z0-9]{6}|[0-9]+)$")


def _name_temps(snap: dict[bytes, dict], before: dict[bytes, dict]) -> dict[bytes, dict]:
    """Temp files the run left behind get one name, ``.NAME.<TMP>``."""
    def name(path: bytes) -> bytes:
        return path if path in before else _LEFT_TEMP.sub(rb"\1\2<TMP>", path)
    for rec in snap.values():
        if "links" in rec:
            rec["links"] = tuple(sorted(name(p) for p in rec["links"]))
    return {name(path): rec for path, rec in snap.items()}


def source_paths(case: Case, dst_path: bytes) -> list[bytes]:
    """The work-dir paths of the source entries that a destination path
    copies, in the order of the SRC arguments (``src/`` onto DST itself,
    ``src`` into ``DST/src``); with several sources the first one that has
    the entry is the one rsync's merged list keeps."""
    dest = case.dest.rstrip(b"/")
    found = []
    for source in case.sources:
        arg = source.rstrip(b"/")
        top = dest if source.endswith(b"/") else dest + b"/" + arg.rpartition(b"/")[2]
        if dst_path == top:
            found.append(arg)
        elif dst_path.startswith(top + b"/"):
            found.append(arg + dst_path[len(top):])
    return found


def source_path(case: Case, dst_path: bytes) -> bytes | None:
    """The first of :func:`source_paths` (None: no source copies it)."""
    found = source_paths(case, dst_path)
    return found[0] if found else None


def rsync_lost_group_obj(before: dict | None, src: dict | None, rsync: dict | None,
                         native: dict | None) -> bool:
    """rsync 3.5.0's ACL loss (README, known differences): over an entry
    whose sticky bit comes on (a dir) or whose setuid/setgid goes off (a
    file), an access ACL whose ``group::`` equals its mask comes out with
    ``group::---``; the native engine keeps the source's ACL.  True when
    that is the one difference between ``rsync``'s and ``native``'s
    records of the entry."""
    if not (before and src and rsync and native) or src.get("acl") is None or \
            native.get("acl") != src["acl"] or rsync.get("acl") is None:
        return False
    if src["type"] == "dir":
        shut = src["mode"] & 0o1000 and not before.get("mode", 0) & 0o1000
    else:
        shut = before.get("mode", 0) & 0o6000 & ~src["mode"]
    group = [e for e in src["acl"] if e.startswith("g::")]
    mask = [e[3:] for e in src["acl"] if e.startswith("m::")]
    lost = tuple("g::---" if e.startswith("g::") else e for e in src["acl"])
    return bool(shut and group and mask and group[0][3:] == mask[0]
                and rsync["acl"] == lost and {**rsync, "acl": native["acl"]} == native)


def rsync_lost_link_dest_xattrs(case: Case, path: bytes, before: dict, src: dict | None,
                                rsync: dict | None, native: dict | None) -> bool:
    """rsync 3.5.0's xattr losses with --link-dest (README, known
    differences), for an entry whose DIR counterpart has the same content
    and the same xattrs but other attributes (a match in content only):
    a new symlink is made without xattrs (rsync compares the source's
    against DIR's, finds nothing to set, and never sets them on it); a
    file copied locally from DIR whose group then changes loses its
    ``security.capability`` (the kernel clears it on chown, and rsync does
    not set it again).  The native engine keeps the source's.  True when
    that is the one difference between ``rsync``'s and ``native``'s
    records of the entry."""
    if not (case.link_dest and src and rsync and native) or not src.get("xattrs") \
            or native.get("xattrs") != src["xattrs"] \
            or {**rsync, "xattrs": native["xattrs"]} != native:
        return False
    missing = set(src["xattrs"]) - set(rsync.get("xattrs") or {})
    if native.get("type") == "symlink":
        lost = not rsync.get("xattrs")
    else:
        lost = native.get("type") == "file" and missing == {"security.capability"} and \
            {n: v for n, v in rsync["xattrs"].items()} == {
                n: v for n, v in src["xattrs"].items() if n != "security.capability"}
    if not lost:
        return False
    rel = path[len(case.dest.rstrip(b"/")) + 1:]
    dirs = [os.path.normpath(os.path.join(case.dest, d)) if d.startswith(b"../") else d
            for d in case.link_dest]  # (as the workdir names them: see link_dest_args)
    counterparts = [before.get(d.rstrip(b"/") + b"/" + rel) for d in dirs]
    return any(c is not None and c.get("type") == src["type"]
               and c.get("target") == src.get("target") and c.get("sha256") == src.get("sha256")
               and c.get("xattrs") == src["xattrs"] for c in counterparts)


def _forgive_rsync_losses(case: Case, before: dict, rs: Outcome, nat: Outcome) -> None:
    """Where rsync loses metadata and the native engine keeps the source's
    (README, known differences), rsync's record takes the native one."""
    made = case.dest.rstrip(b"/")  # (a DST the run makes: mkdir 0777, no sticky bit)
    for path, rec in rs.snap.items():
        # (the first source that has the entry: several sources merge)
        src = next((p for p in source_paths(case, path) if p in nat.snap), None)
        old = before.get(path) or ({"type": "dir", "mode": 0o777} if path == made else None)
        if rec != nat.snap.get(path) and src is not None and (rsync_lost_group_obj(
                old, nat.snap.get(src), rec, nat.snap.get(path)) or rsync_lost_link_dest_xattrs(
                case, path, before, nat.snap.get(src), rec, nat.snap.get(path))):
            rs.lost[path], rs.snap[path] = rec, nat.snap[path]


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
            clear_flags(root)
            shutil.rmtree(root)
    try:
        for root in (a, b):
            _build(root, case.spec)
        before_a, before_b = snapshot(a), snapshot(b)
        since = time.time_ns() - 1_000_000_000
        rs = run_rsync(case, a)
        nat = run_native(case, b)
        rs.snap = _name_temps(_recent(snapshot(a), since), before_a)
        nat.snap = _name_temps(_recent(snapshot(b), since), before_b)
    finally:
        for root in (a, b):  # (immutable entries would outlive the test's tmp dirs)
            if os.path.lexists(root):
                clear_flags(root)
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
    _forgive_rsync_losses(case, before_b, rs, nat)
    diff = diff_snapshots(rs.snap, nat.snap)
    assert not diff, ("destination trees differ (a = rsync, b = native; mtime_ns 0 = set "
                      "by the run, i.e. now):\n"
                      + "\n".join(diff[:60]) + "\n" + where)
    assert rs.code == nat.code, f"exit codes differ\n{where}"
    assert rs.lines() == nat.lines(), f"messages differ\n{where}"
    return rs, nat
