"""Small filesystem helpers shared by the facade and the CLI."""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from pathlib import Path

__all__ = ["MAX_VERSION_BYTES", "DataVersionError", "atomic_write_text", "read_version_file"]

MAX_VERSION_BYTES = 4096  # a data version is a short string, not a file's worth

_KINDS = {stat.S_IFLNK: "a symlink", stat.S_IFDIR: "a directory", stat.S_IFIFO: "a fifo",
          stat.S_IFSOCK: "a socket", stat.S_IFCHR: "a character device",
          stat.S_IFBLK: "a block device"}


class DataVersionError(ValueError):
    """A data version file that is not a small regular text file."""


def read_version_file(path: str | os.PathLike) -> str | None:
    """The data version in ``path`` (stripped; None when the file is
    missing or blank).  Anything but a regular file of at most
    MAX_VERSION_BYTES of UTF-8 is a DataVersionError: a symlink is not
    followed (it could point at a secret), and a fifo or device is never
    opened (it could block, or never end)."""
    shown = os.fsdecode(path)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise DataVersionError(f"{shown}: cannot read the data version: "
                               f"{os.strerror(exc.errno or errno.EIO)}") from None
    if not stat.S_ISREG(st.st_mode):
        kind = _KINDS.get(stat.S_IFMT(st.st_mode), "not a regular file")
        raise DataVersionError(f"{shown}: the data version file is {kind}, not a regular file")
    try:
        # O_NOFOLLOW|O_NONBLOCK: whatever was swapped in since the lstat
        # neither leads elsewhere nor blocks; fstat says what was opened.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise DataVersionError(f"{shown}: cannot read the data version: "
                               f"{os.strerror(exc.errno or errno.EIO)}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise DataVersionError(f"{shown}: the data version file is not a regular file")
        data = os.read(fd, MAX_VERSION_BYTES + 1)
    except OSError as exc:
        raise DataVersionError(f"{shown}: cannot read the data version: "
                               f"{os.strerror(exc.errno or errno.EIO)}") from None
    finally:
        os.close(fd)
    if len(data) > MAX_VERSION_BYTES:
        raise DataVersionError(f"{shown}: the data version file is larger than "
                               f"{MAX_VERSION_BYTES} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise DataVersionError(f"{shown}: the data version file is not UTF-8 text") from None
    return text.strip() or None


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` so that a reader (or a crash) sees either
    the old file or the whole new one: temp file in the same dir (O_EXCL),
    its mode set through its fd, fsync, rename (which replaces a symlink
    at ``path`` rather than following it), then an fsync of the dir so the
    rename itself survives a power cut."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fchmod(f.fileno(), 0o644)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    try:
        dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)
