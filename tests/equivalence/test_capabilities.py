"""File capabilities and owner changes (issue 14, item 4).

A chown takes ``security.capability`` off a file (the kernel's killpriv).
rsync's generator changes the owner, its itemize then reads the xattrs
(``x``), and its receiver puts the capability back: ``.f....og..x ping``.
A restored ``ping`` must keep working, so the native engine must do the
same.
"""

from __future__ import annotations

import os
import struct

import pytest

from .harness import Case, check

pytestmark = [pytest.mark.rsync, pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]

T = 1_600_000_000_000_000_000
CAP = "security.capability"
NET_RAW = struct.pack("<5I", 0x02000001, 1 << 13, 0, 0, 0)      # cap_net_raw+ep
BIND = struct.pack("<5I", 0x02000000, 1 << 10, 0, 0, 0)         # cap_net_bind_service+p


def d(path, **kw):
    return {"path": path, "type": "dir", "mode": 0o755, "mtime_ns": T, **kw}


def f(path, content=b"\x7fELF ping\n", **kw):
    return {"path": path, "content": content, "mode": 0o755, "mtime_ns": T, **kw}


def case(*entries, **kw) -> Case:
    return Case(spec=[{"path": ".", "mode": 0o755, "mtime_ns": T}, *entries],
                sources=[b"src/"], dest=b"dst", **kw)


@pytest.mark.parametrize("itemize", [True, False])
@pytest.mark.parametrize("dst_attrs", [
    {"uid": 1234}, {"gid": 1234}, {"uid": 1, "gid": 1}, {"uid": 1234, "mode": 0o4755},
], ids=["owner", "group", "both", "owner-setuid"])
def test_capability_survives_an_owner_change(tmp_path, itemize, dst_attrs):
    src_attrs = {"mode": dst_attrs.get("mode", 0o755)}
    rs, nat = check(case(d("src"), f("src/ping", xattrs={CAP: NET_RAW}, **src_attrs), d("dst"),
                         f("dst/ping", xattrs={CAP: NET_RAW}, **dst_attrs), itemize=itemize),
                    tmp_path)
    assert nat.snap[b"dst/ping"]["xattrs"] == {CAP: NET_RAW}
    if itemize:
        assert any(line.endswith(" ping") and line[10] == "x" for line in nat.out), nat.out


def test_capability_of_hard_linked_files(tmp_path):
    check(case(d("src"), f("src/ping", xattrs={CAP: NET_RAW}), {"path": "src/ping6",
                                                               "link": "src/ping"},
               d("dst"), f("dst/ping", uid=1234, xattrs={CAP: NET_RAW}),
               {"path": "dst/ping6", "link": "dst/ping"}, itemize=True), tmp_path)


def test_other_capability_and_dry_run(tmp_path):
    for dry_run in (False, True):
        check(case(d("src"), f("src/ping", xattrs={CAP: NET_RAW}),
                   f("src/bind", xattrs={CAP: BIND}), d("dst"),
                   f("dst/ping", uid=1234, xattrs={CAP: BIND}),
                   f("dst/bind", gid=1234, xattrs={CAP: BIND}), itemize=True, dry_run=dry_run),
              tmp_path)
