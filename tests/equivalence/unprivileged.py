"""Run the native engine as nobody (65534:65534, no supplementary groups).

The test process is root, and its Python may live where nobody cannot read
(pyenv under ``/root``, mode 0700: the case on the machine this was written
on).  So the native engine runs in a child process under ``setpriv`` with
the first interpreter nobody can execute (``sys.executable`` if it can,
else a system ``python3`` >= 3.11), on a private copy of the ``syncengine``
package in a temporary directory that nobody can read: nothing of the
machine's permissions is changed, and the directory is removed at the end
of the session.  Where nobody can run no Python at all, the engine runs in
a forked child of the test process that drops to nobody (setgroups,
setresgid, setresuid) after everything it needs is imported.  A system Python usually
lacks pylibacl; either way these runs use the engine's ACL path through the
kernel's ``system.posix_acl_*`` attributes (``Tuning(acl_backend="raw")``).

:func:`nobody_base` is called once per session (see ``conftest.py``); if no
usable interpreter exists the unprivileged tests skip with the reason.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

__all__ = ["NobodyEnv", "nobody_env", "run_native_as_nobody", "cleanup"]

NOBODY = 65534
_SETPRIV = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--"]

_RUNNER = r'''
import json, os, sys
req = json.load(sys.stdin)
sys.path.insert(0, req["pkgroot"])
from syncengine.messages import rsync_escape
from syncengine.treesync.model import Tuning
from syncengine.treesync.sync import run_sync
out, err = [], []
code = run_sync([bytes.fromhex(s) for s in req["sources"]], bytes.fromhex(req["dest"]),
                delete=req["delete"], excludes=[bytes.fromhex(p) for p in req["excludes"]],
                out=out.append, err=err.append, dry_run=req["dry_run"],
                on_item=(lambda item: out.append(rsync_escape(item.line())))
                if req["itemize"] else None,
                link_dest=[bytes.fromhex(p) for p in req.get("link_dest", ())],
                tuning=Tuning(acl_backend="raw"))
json.dump({"code": code, "out": out, "err": err}, sys.stdout)
'''


class NobodyEnv:
    def __init__(self, base: str, python: str | None, pkgroot: str, runner: str) -> None:
        self.base = base          # work dirs for unprivileged cases go here (mode 0755)
        self.python = python      # None: run the engine in a forked child instead
        self.pkgroot = pkgroot
        self.runner = runner


_env: NobodyEnv | None = None
_skip_reason: str | None = None


def _runs_as_nobody(python: str) -> bool:
    try:
        proc = subprocess.run([*_SETPRIV, python, "-s", "-E", "-c",
                               "import sys; assert sys.version_info >= (3, 11)"],
                              capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


def nobody_env() -> NobodyEnv:
    """The session's environment for unprivileged runs (created on first
    use); raises RuntimeError with the reason when there can be none."""
    global _env, _skip_reason
    if _env is not None:
        return _env
    if _skip_reason is not None:
        raise RuntimeError(_skip_reason)
    if os.geteuid() != 0:
        _skip_reason = "unprivileged runs switch to nobody, which needs root"
    elif shutil.which("setpriv") is None:
        _skip_reason = "setpriv (util-linux) is not installed"
    python = None
    if _skip_reason is None:
        candidates = [sys.executable, "/usr/bin/python3", "/usr/local/bin/python3",
                      shutil.which("python3") or ""]
        # None: no interpreter nobody may run; the engine then runs in a
        # forked child of this process that drops to nobody (see below).
        python = next((c for c in dict.fromkeys(candidates) if c and _runs_as_nobody(c)), None)
    if _skip_reason is not None:
        raise RuntimeError(_skip_reason)
    base = tempfile.mkdtemp(prefix="syncengine-nobody-")
    os.chmod(base, 0o755)
    pkgroot = os.path.join(base, "pkg")
    package = Path(__import__("syncengine").__file__).parent
    shutil.copytree(package, os.path.join(pkgroot, "syncengine"),
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    runner = os.path.join(base, "runner.py")
    Path(runner).write_text(_RUNNER)
    for root, dirs, files in os.walk(base):
        for d in dirs:
            os.chmod(os.path.join(root, d), 0o755)
        for f in files:
            os.chmod(os.path.join(root, f), 0o644)
    work = os.path.join(base, "work")
    os.mkdir(work, 0o755)
    os.chmod(work, 0o755)
    _env = NobodyEnv(work, python, pkgroot, runner)
    return _env


def cleanup() -> None:
    global _env
    if _env is not None:
        from fixtures.treespec import clear_flags
        clear_flags(os.path.dirname(_env.base))  # (a case's chattr +i/+a)
        shutil.rmtree(os.path.dirname(_env.base), ignore_errors=True)
        _env = None


def _run_forked(sources: list[bytes], dest: bytes, delete: bool, excludes: list[bytes],
                cwd: bytes, itemize: bool, dry_run: bool,
                link_dest: list[bytes]) -> tuple[int, list[str], list[str]]:
    """The engine in a child of this (root) process that drops to nobody:
    for machines where nobody cannot run any Python (an interpreter under
    /root only).  Everything it needs is imported before the fork."""
    from syncengine.messages import rsync_escape
    from syncengine.treesync.model import Tuning
    from syncengine.treesync.sync import run_sync
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        code = 70
        try:
            os.close(read_end)
            os.setgroups([])
            os.setresgid(NOBODY, NOBODY, NOBODY)
            os.setresuid(NOBODY, NOBODY, NOBODY)
            os.chdir(cwd)
            out: list[str] = []
            err: list[str] = []
            rc = run_sync(sources, dest, delete=delete, excludes=excludes,
                          out=out.append, err=err.append, dry_run=dry_run,
                          on_item=(lambda item: out.append(rsync_escape(item.line())))
                          if itemize else None, link_dest=link_dest,
                          tuning=Tuning(acl_backend="raw"))
            os.write(write_end, json.dumps({"code": rc, "out": out, "err": err}).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    chunks = []
    while chunk := os.read(read_end, 1 << 16):
        chunks.append(chunk)
    os.close(read_end)
    _, status = os.waitpid(pid, 0)
    if status != 0 or not chunks:
        raise AssertionError(f"the native engine failed as nobody (forked, status {status})")
    result = json.loads(b"".join(chunks))
    return result["code"], result["out"], result["err"]


def run_native_as_nobody(sources: list[bytes], dest: bytes, delete: bool, excludes: list[bytes],
                         cwd: bytes, itemize: bool = False, dry_run: bool = False,
                         link_dest: list[bytes] = ()) -> tuple[int, list[str], list[str]]:
    env = nobody_env()
    if env.python is None:
        return _run_forked(sources, dest, delete, excludes, cwd, itemize, dry_run,
                           list(link_dest))
    request = {"pkgroot": env.pkgroot, "sources": [s.hex() for s in sources],
               "dest": dest.hex(), "delete": delete, "excludes": [p.hex() for p in excludes],
               "itemize": itemize, "dry_run": dry_run,
               "link_dest": [p.hex() for p in link_dest]}
    proc = subprocess.run([*_SETPRIV, env.python, "-s", "-E", env.runner],
                          input=json.dumps(request).encode(), capture_output=True, cwd=cwd,
                          timeout=120,
                          # (the locale as rsync gets it: it decides how names are escaped)
                          env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"))
    if proc.returncode != 0:
        raise AssertionError("the native engine crashed as nobody:\n"
                             + proc.stderr.decode(errors="replace"))
    result = json.loads(proc.stdout)
    return result["code"], result["out"], result["err"]
