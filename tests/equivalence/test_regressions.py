"""Divergences the equivalence suite found, each kept as its minimal case.

Every test builds a small work dir from a ``fixtures.treespec`` spec and
runs it through ``harness.check`` (real rsync on one copy, the native
engine on the other; trees, exit codes and messages must agree).  Each
docstring says what diverged and where it was fixed.
"""

from __future__ import annotations

import os
import subprocess

import pytest

from syncengine.treesync.messages import rsync_escape

from .harness import Case, check, rsync_binary

pytestmark = [pytest.mark.rsync, pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]

T = 1_600_000_000_000_000_000   # a time in the past (ns)
ROOT = {"path": ".", "mode": 0o755, "mtime_ns": T}


def d(path, **kw):
    return {"path": path, "type": "dir", "mode": 0o755, "mtime_ns": T, **kw}


def f(path, content=b"", **kw):
    return {"path": path, "content": content, "mode": 0o644, "mtime_ns": T, **kw}


def fifo(path, **kw):
    return {"path": path, "type": "fifo", "mode": 0o644, "mtime_ns": T, **kw}


def case(*entries, src=b"src/", dest=b"dst", **kw) -> Case:
    return Case(spec=[ROOT, *entries], sources=[src] if isinstance(src, bytes) else src,
                dest=dest, **kw)


@pytest.fixture
def base(tmp_path):
    return tmp_path


@pytest.fixture
def nobody(nobody_base):
    return nobody_base


# -- messages ---------------------------------------------------------------------------------

ODD_NAMES = [b"new\nline", b"caf\xe9", b"uni\xc3\xa9", b"b\\#012", b"tab\tx", b"a\x1bb",
             b"\xf4\x90\x80\x80", b"\xed\xa0\x80", b"\xe2\x82a"]


def test_names_in_messages_are_escaped_like_rsync(base):
    """Names in messages were printed raw.  rsync escapes control bytes and
    bytes that are not valid in the locale's charset as ``\\#ooo`` and a
    backslash starting ``\\#ddd`` as ``\\#134`` (log.c rwrite); fixed in
    sync.py through messages.rsync_escape."""
    check(case(d("src"), *[fifo(b"src/" + n) for n in ODD_NAMES]), base)


@pytest.mark.parametrize("lc_all, codec", [("C.UTF-8", "utf-8"), ("C", "ascii")])
def test_rsync_escape_follows_the_locale(tmp_path, lc_all, codec):
    """rsync_escape against rsync's own output in a UTF-8 and the C locale."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ODD_NAMES:
        os.mkfifo(os.fsencode(src) + b"/" + name)
    proc = subprocess.run([rsync_binary(), "-r", f"{src}/", str(tmp_path / "dst")],
                          capture_output=True, env=dict(os.environ, LC_ALL=lc_all))
    got = sorted(os.fsdecode(line) for line in proc.stdout.splitlines())
    want = sorted(rsync_escape('skipping non-regular file "%s"' % os.fsdecode(n), codec)
                  for n in ODD_NAMES)
    assert got == want
