"""Shared pieces of the safety tests: running the engine (in-process, in a
forked child, as the ``syncengine rsync`` stand-in), the real rsync, and the
checks that say a destination is sane after a crash."""

from __future__ import annotations

import os
import random
import re
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.conftest import run_rsync
from tests.snapshot import snapshot

FLAGS = ("-rlptgocAXH", "--no-inc-recursive")
# The engine's temp names: ".<name>.XXXXXX" (rsync's mkstemp pattern).
TEMP_NAME = re.compile(rb"^\..+\.[A-Za-z0-9]{6}$")
PAST = 1_600_000_000_000_000_000


def t(second: int) -> int:
    """A time in the past, one whole second per step (rsync compares dir
    times in whole seconds: distinct seconds keep every comparison exact)."""
    return PAST + second * 1_000_000_000 + 123_456_789


def is_temp(rel: bytes) -> bool:
    return TEMP_NAME.match(rel.rsplit(b"/", 1)[-1]) is not None


def in_shelter(rel: bytes) -> bool:
    """Whether the path lies in a dir that has a temp name (an initial
    copy's new dir while it is filled: TreeSync._dir's shelter)."""
    return any(TEMP_NAME.match(part) for part in rel.split(b"/")[:-1])


# -- running ---------------------------------------------------------------------------

def native(sources: list[bytes | str], dest: bytes | str, *, delete: bool = True,
           excludes: tuple[str, ...] = ()) -> tuple[int, list[str], list[str]]:
    """The native engine in this process: (exit code, stdout lines, stderr lines)."""
    from syncengine.treesync.sync import run_sync
    out: list[str] = []
    err: list[str] = []
    code = run_sync(sources, dest, delete=delete, excludes=list(excludes),
                    out=out.append, err=err.append)
    return code, out, err


def native_forked(sources: list[bytes | str], dest: bytes | str, *, crash_after: int,
                  delete: bool = True) -> int:
    """The native engine in a forked child whose crash hook is armed: the
    child's exit status (137 when it crashed)."""
    pid = os.fork()
    if pid == 0:  # the child never returns
        code = 70
        try:
            from syncengine.treesync import faults
            faults.arm(crash_after)
            code = native(sources, dest, delete=delete)[0]
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def count_mutations(sources: list[bytes | str], dest: bytes | str, **kw) -> tuple[int, int]:
    """Run the engine in this process counting its mutations: (exit, count)."""
    from syncengine.treesync import faults
    faults.arm(0)
    try:
        code = native(sources, dest, **kw)[0]
        return code, faults.count()
    finally:
        faults.arm(-1)


def standin(*argv: str | bytes, env: dict[str, str] | None = None, cwd=None,
            timeout: float = 60) -> subprocess.CompletedProcess:
    """``python -m syncengine rsync ARGV`` as a subprocess."""
    full_env = dict(os.environ)
    for name in ("SYNCENGINE_CRASH_AFTER", "SYNCENGINE_STALL_AFTER", "SYNCENGINE_STALL_SECONDS"):
        full_env.pop(name, None)
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "syncengine", "rsync", *argv],
                          capture_output=True, cwd=cwd, env=full_env, timeout=timeout)


def standin_popen(*argv: str | bytes, env: dict[str, str] | None = None,
                  cwd=None) -> subprocess.Popen:
    full_env = dict(os.environ)
    for name in ("SYNCENGINE_CRASH_AFTER", "SYNCENGINE_STALL_AFTER", "SYNCENGINE_STALL_SECONDS"):
        full_env.pop(name, None)
    full_env.update(env or {})
    return subprocess.Popen([sys.executable, "-m", "syncengine", "rsync", *argv], cwd=cwd,
                            env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def rsync_tree(src: bytes | str, dst: bytes | str, *extra: str) -> subprocess.CompletedProcess:
    return run_rsync(*FLAGS, "--delete", *extra, src, dst)


def strip_suffix(lines: list[str]) -> list[str]:
    """rsync's lines without `` at FILE(LINE) [role=VER]``."""
    return [re.sub(r" at [\w./-]+\(\d+\) \[[A-Za-z]+=[\w.]+\]$", "", line) for line in lines]


def lines(data: bytes, *replace: tuple[str, str]) -> list[str]:
    out = []
    for line in strip_suffix(os.fsdecode(data).splitlines()):
        for old, new in replace:
            line = line.replace(old, new)
        out.append(line)
    return out


# -- looking -----------------------------------------------------------------------------

def ctimes(root: bytes | str) -> dict[bytes, tuple[int, int]]:
    """(inode, ctime) of every entry: unchanged means untouched."""
    root = os.fsencode(root)
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [b"."] + dirnames + filenames:
            path = dirpath if name == b"." else os.path.join(dirpath, name)
            st = os.lstat(path)
            out[os.path.relpath(path, root)] = (st.st_ino, st.st_ctime_ns)
    return out


def copy_tree(src: str | Path, dst: str | Path) -> None:
    """An exact copy (hard links, xattrs, ACLs, times) made with cp -a."""
    if os.path.lexists(dst):
        shutil.rmtree(dst)
    subprocess.run(["cp", "-a", "--", str(src), str(dst)], check=True)


def without(rec: dict, *keys: str) -> dict:
    return {k: v for k, v in rec.items() if k not in keys}


def check_crash_state(old: dict[bytes, dict], new: dict[bytes, dict],
                      crashed: dict[bytes, dict], shelters: bool = False) -> list[str]:
    """What may be found in a destination after a crash: each path holds
    its old content or its new content, never anything else; a file that
    has its new content has all its new attributes (it was renamed into
    place complete); a file or symlink that exists before and after is
    never missing (it is replaced by a rename); and the only other entries
    are the engine's temp files, and (``shelters``: an initial copy) new
    dirs still under a temp name with whatever is in them (no path in
    there is a real one).  Returns the violations."""
    problems = []
    for rel, rec in crashed.items():
        if rel not in old and rel not in new:
            if shelters and in_shelter(rel):
                continue
            if not is_temp(rel):
                problems.append(f"{rel!r}: neither old nor new, and not a temp name")
            elif rec["type"] not in ("file", "symlink") + (("dir",) if shelters else ()):
                problems.append(f"{rel!r}: a temp name that is a {rec['type']}")
            continue
        choices = [r for r in (old.get(rel), new.get(rel)) if r is not None]
        if rec["type"] not in {r["type"] for r in choices}:
            problems.append(f"{rel!r}: type {rec['type']}, expected one of "
                            f"{sorted({r['type'] for r in choices})}")
            continue
        if rec["type"] == "file":
            if rec["sha256"] not in {r.get("sha256") for r in choices}:
                problems.append(f"{rel!r}: content is neither the old nor the new (a mix)")
            elif rel in new and new[rel]["type"] == "file" and rec["sha256"] == new[rel]["sha256"] \
                    and (rel not in old or old[rel].get("sha256") != rec["sha256"]):
                # Renamed into place: complete with its attributes.
                if without(rec, "links") != without(new[rel], "links"):
                    problems.append(f"{rel!r}: new content without all of its new attributes: "
                                    f"{without(rec, 'links')} != {without(new[rel], 'links')}")
        elif rec["type"] == "symlink":
            if rec["target"] not in {r.get("target") for r in choices}:
                problems.append(f"{rel!r}: symlink target is neither old nor new")
    for rel in old.keys() & new.keys():
        kinds = (old[rel]["type"], new[rel]["type"])
        # A file or symlink replaced by a file or symlink goes through a
        # rename (rsync deletes first only to put a file where a symlink or
        # dir was); a dir that stays a dir is never removed.
        atomic = kinds in (("file", "file"), ("file", "symlink"), ("symlink", "symlink"),
                           ("dir", "dir"))
        if atomic and rel not in crashed:
            problems.append(f"{rel!r}: missing after the crash ({kinds[0]} -> {kinds[1]})")
    return problems


# -- generated trees -----------------------------------------------------------------------

def random_tree(rng: random.Random, prefix: str, entries: int, *,
                big_files: int = 0) -> list[dict[str, Any]]:
    """A tree spec of about ``entries`` entries: nested dirs, small files
    (some with xattrs, modes, owners), symlinks, hard links."""
    spec: list[dict[str, Any]] = [{"path": prefix, "type": "dir", "mode": 0o755, "mtime_ns": t(1)}]
    dirs = [prefix]
    files: list[str] = []
    for i in range(entries):
        parent = rng.choice(dirs)
        kind = rng.random()
        path = f"{parent}/e{i:05d}"
        if kind < 0.12 or len(dirs) < 3:
            spec.append({"path": path, "type": "dir", "mode": rng.choice([0o755, 0o750, 0o700]),
                         "mtime_ns": t(rng.randrange(2, 10_000))})
            dirs.append(path)
        elif kind < 0.2:
            spec.append({"path": path, "type": "symlink",
                         "target": rng.choice(["e00001", "../x", "nowhere", "a/b/c"]),
                         "mtime_ns": t(rng.randrange(2, 10_000))})
        elif kind < 0.25 and files:
            spec.append({"path": path, "link": rng.choice(files)})
        else:
            entry: dict[str, Any] = {"path": path, "size": rng.choice([0, 10, 100, 3000, 70_000]),
                                     "seed": rng.randrange(1 << 30),
                                     "mode": rng.choice([0o644, 0o600, 0o755, 0o4755, 0o640]),
                                     "mtime_ns": t(rng.randrange(2, 10_000))}
            if rng.random() < 0.1:
                entry["xattrs"] = {"user.tag": str(rng.randrange(100))}
            if rng.random() < 0.1:
                entry["uid"], entry["gid"] = 1234, 5678
            spec.append(entry)
            files.append(path)
    for i in range(big_files):
        spec.append({"path": f"{prefix}/big{i}.bin", "size": 4_000_000, "seed": rng.randrange(1 << 30),
                     "mode": 0o644, "mtime_ns": t(3)})
    return spec


def mutate_tree(rng: random.Random, root: Path, changes: int, round_no: int) -> None:
    """Change a live tree at random: rewrite, grow, shrink, delete, add,
    chmod, retime, swap types, add hard links and symlinks."""
    root = Path(root)
    entries = sorted(root.rglob("*"))
    for _ in range(changes):
        if not entries:
            (root / f"n{round_no}").write_bytes(b"fresh")
            continue
        victim = rng.choice(entries)
        what = rng.random()
        try:
            st = victim.lstat()
            if what < 0.25 and stat.S_ISREG(st.st_mode):
                victim.write_bytes(rng.randbytes(rng.choice([0, 5, 500, 9000])))
            elif what < 0.35:
                if victim.is_dir() and not victim.is_symlink():
                    shutil.rmtree(victim)
                else:
                    victim.unlink()
            elif what < 0.5:
                parent = victim if victim.is_dir() and not victim.is_symlink() else victim.parent
                (parent / f"n{round_no}_{rng.randrange(1 << 20)}").write_bytes(rng.randbytes(300))
            elif what < 0.6 and not stat.S_ISLNK(st.st_mode):
                os.chmod(victim, rng.choice([0o644, 0o600, 0o755, 0o700]))
            elif what < 0.7:
                os.utime(victim, ns=(t(rng.randrange(2, 10_000)),) * 2, follow_symlinks=False)
            elif what < 0.8 and stat.S_ISREG(st.st_mode) and st.st_nlink == 1:
                # (not a hard-linked file: where a dir stands in the way of a
                # hard-link member, the native engine does not yet print all
                # of rsync 3.5's get_acl lines; the trees are the same)
                victim.unlink()
                victim.mkdir()
                (victim / "inner").write_bytes(b"was a file")
            elif what < 0.85:
                parent = victim if victim.is_dir() and not victim.is_symlink() else victim.parent
                os.symlink(rng.choice(["x", "../y", "z/w"]), parent / f"s{round_no}_{rng.randrange(1 << 20)}")
            elif what < 0.9 and stat.S_ISREG(st.st_mode):
                os.link(victim, victim.parent / f"h{round_no}_{rng.randrange(1 << 20)}")
            elif stat.S_ISREG(st.st_mode):
                os.setxattr(victim, "user.round", str(round_no).encode())
        except (FileNotFoundError, FileExistsError, NotADirectoryError):
            pass
    # Times the changes left ("now") go into the past, each in a second of
    # its own: rsync keeps a dir's or symlink's time when it is in the same
    # second as the source's (rsync-semantics §10), which would make the
    # result depend on when a run happens.
    recent = time.time_ns() - 60 * 1_000_000_000
    for path in sorted(root.rglob("*"), key=lambda p: -len(p.parts)) + [root]:
        st = path.lstat()
        if st.st_mtime_ns > recent:
            os.utime(path, ns=(t(rng.randrange(10_000, 20_000)),) * 2, follow_symlinks=False)


__all__ = ["FLAGS", "PAST", "TEMP_NAME", "check_crash_state", "copy_tree", "count_mutations",
           "ctimes", "is_temp", "lines", "mutate_tree", "native", "native_forked", "random_tree",
           "rsync_tree", "snapshot", "standin", "standin_popen", "strip_suffix", "t", "without"]
