"""Can this backup root hold snapshots?  Unchanged files of a snapshot are
hard links to the previous one's; where hard links do not work (FAT,
exFAT, some network shares) every snapshot would be a full copy, so
snapshots are refused there with a one-line reason."""

from __future__ import annotations

import os
import tempfile

__all__ = ["hard_link_problem", "probe_hard_links"]

_PROBED: dict[int, str | None] = {}


def probe_hard_links(backup_root: str | os.PathLike) -> str | None:
    """Make a file and a hard link to it in a temporary directory under
    ``backup_root`` and remove them again.  None when hard links work,
    else the reason, one line."""
    root = os.fspath(backup_root)
    try:
        tmp = tempfile.mkdtemp(prefix=".syncengine-probe-", dir=root)
    except OSError as e:
        return f"cannot create a probe directory in {root}: {e.strerror or e}"
    try:
        dir_fd = os.open(tmp, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as e:
        os.rmdir(tmp)
        return f"cannot open a probe directory in {root}: {e.strerror or e}"
    try:
        try:
            os.close(os.open("file", os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600,
                             dir_fd=dir_fd))
            os.link("file", "link", src_dir_fd=dir_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
            a = os.stat("file", dir_fd=dir_fd, follow_symlinks=False)
            b = os.stat("link", dir_fd=dir_fd, follow_symlinks=False)
        except OSError as e:
            return f"hard links do not work in {root}: {e.strerror or e}"
        if (a.st_dev, a.st_ino) != (b.st_dev, b.st_ino) or a.st_nlink < 2:
            return f"hard links do not work in {root}: a link made there is a copy"
        return None
    finally:
        for name in ("link", "file"):
            try:
                os.unlink(name, dir_fd=dir_fd)
            except FileNotFoundError:
                pass
        os.close(dir_fd)
        os.rmdir(tmp)


def hard_link_problem(backup_root: str | os.PathLike) -> str | None:
    """:func:`probe_hard_links`, once per filesystem (a process may look at
    one backup root many times)."""
    try:
        dev = os.stat(backup_root).st_dev
    except OSError as e:
        return f"cannot read the backup root {os.fspath(backup_root)}: {e.strerror or e}"
    if dev in _PROBED:
        return _PROBED[dev]
    problem = probe_hard_links(backup_root)
    if problem is None or problem.startswith("hard links do not work"):
        _PROBED[dev] = problem  # a property of the filesystem; not so a full disk
    return problem
