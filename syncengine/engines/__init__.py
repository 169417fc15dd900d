"""Engine selection and the blocking/non-blocking sync entry points."""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence

from ..options import OptionsLike, SyncOptions, merge_options
from ..treesync.linkdest import MAX_BASIS_DIRS
from .base import Engine, ItemCallback, ProgressCallback, SyncJob, SyncResult

__all__ = ["ENGINE_NAMES", "check_arguments", "check_source_kind", "get_engine", "link_dest_dirs",
           "resolve_engine_name", "start_sync", "sync"]

ENGINE_NAMES = ("auto", "rsync", "python")


def _native_engine() -> Engine:
    from .native import NativeEngine  # imported lazily: the rsync path never needs it
    return NativeEngine()


def resolve_engine_name(engine: str | None = None) -> str:
    """The engine that `engine` (or $SYNCENGINE_ENGINE, or "auto") means here:
    "rsync" when rsync is installed and answers --version, else "python"."""
    name = engine or os.environ.get("SYNCENGINE_ENGINE") or "auto"
    if name not in ENGINE_NAMES:
        raise ValueError(f"unknown engine {name!r} (choose from {', '.join(ENGINE_NAMES)})")
    if name == "auto":
        from .rsync import RsyncEngine
        return "rsync" if RsyncEngine().available() else "python"
    return name


def get_engine(engine: str | None = None) -> Engine:
    name = resolve_engine_name(engine)
    if name == "rsync":
        from .rsync import RsyncEngine
        return RsyncEngine()
    return _native_engine()


_SPECIAL = {stat.S_IFIFO: "fifo", stat.S_IFSOCK: "socket", stat.S_IFCHR: "character device",
            stat.S_IFBLK: "block device"}


def check_arguments(src: str | bytes, dst: str | bytes, options: SyncOptions) -> None:
    """Refuse bad input before anything runs, with a one-line ValueError:
    an empty path or one with a NUL byte, an exclude rule rsync rejects, a
    source that is a device, fifo or socket, and a directory source that
    is the destination, contains it or lies inside it (rsync would copy a
    tree into itself, or delete its own source with --delete).  A source
    that does not exist is left to the engine: rsync's exit 23."""
    for what, path in (("SRC", src), ("DST", dst)):
        if not path:
            raise ValueError(f"{what} must not be empty")
        if "\0" in os.fsdecode(path):
            raise ValueError(f"{what} must not contain a NUL byte: {os.fsdecode(path)!r}")
    from ..treesync.filters import FilterRules
    for pattern in options.exclude:
        try:
            FilterRules.from_excludes([pattern])
        except ValueError as exc:
            raise ValueError(f"bad exclude rule {os.fsdecode(pattern)!r}: {exc}") from None
    shown_src, shown_dst = os.fsdecode(src), os.fsdecode(dst)
    st = check_source_kind(src)
    if st is None or not stat.S_ISDIR(st.st_mode):
        return
    real_src, real_dst = os.path.realpath(shown_src), os.path.realpath(shown_dst)
    if real_src == real_dst:
        raise ValueError(f"source {shown_src} and destination {shown_dst} are the same directory")
    if real_dst.startswith(real_src.rstrip("/") + "/"):
        raise ValueError(f"destination {shown_dst} is inside source {shown_src}")
    if real_src.startswith(real_dst.rstrip("/") + "/"):
        raise ValueError(f"source {shown_src} is inside destination {shown_dst}")


def check_source_kind(src: str | bytes) -> os.stat_result | None:
    """A source that is a device, fifo or socket is refused (ValueError):
    rsync without -D would skip it and copy nothing.  Returns its stat
    (followed with a trailing slash), None if it cannot be had."""
    try:
        st = os.stat(src) if os.fsdecode(src).endswith("/") else os.lstat(src)
    except (OSError, ValueError):
        return None
    kind = _SPECIAL.get(stat.S_IFMT(st.st_mode))
    if kind is not None:
        raise ValueError(f"source {os.fsdecode(src)} is a {kind}: only files, directories and "
                         "symlinks are copied")
    return st


LinkDest = str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None


def link_dest_dirs(link_dest: LinkDest) -> tuple[str, ...]:
    """``link_dest`` as the tuple of DIRs (rsync takes up to 20
    ``--link-dest`` args; a relative DIR is taken below DST).  A bad one
    raises a one-line ValueError."""
    if link_dest is None:
        return ()
    if isinstance(link_dest, (str, bytes, os.PathLike)):
        dirs = [link_dest]
    elif isinstance(link_dest, (list, tuple)):
        dirs = list(link_dest)
    else:
        raise ValueError(f"link_dest must be a path or a list of paths, "
                         f"not {type(link_dest).__name__}")
    out = []
    for path in dirs:
        if not isinstance(path, (str, bytes, os.PathLike)):
            raise ValueError(f"link_dest must be a path, not {type(path).__name__}")
        text = os.fsdecode(os.fspath(path))
        if not text:
            raise ValueError("link_dest must not be empty")
        if "\0" in text:
            raise ValueError(f"link_dest must not contain a NUL byte: {text!r}")
        out.append(text)
    if len(out) > MAX_BASIS_DIRS:
        raise ValueError(f"at most {MAX_BASIS_DIRS} link_dest dirs may be given, not {len(out)}")
    return tuple(out)


def start_sync(src: str | os.PathLike[str], dst: str | os.PathLike[str], options: OptionsLike = None, *,
               engine: str | None = None, on_progress: ProgressCallback | None = None,
               on_item: ItemCallback | None = None, dry_run: bool = False,
               link_dest: LinkDest = None) -> SyncJob:
    """Start syncing SRC to DST (rsync argument semantics) and return the job.
    ``on_item`` receives each itemized change (rsync's ``-i``); ``dry_run``
    (rsync's ``-n``) changes nothing and reports what a run would do;
    ``link_dest`` (rsync's ``--link-dest=DIR``, a path or a list of up to
    20): a new file identical to the one at its path in DIR -- content and
    every attribute -- is hard-linked to it, never written into.
    Bad input raises ValueError before anything runs (see check_arguments)."""
    opts = options if isinstance(options, SyncOptions) else merge_options(options)
    src, dst = os.fspath(src), os.fspath(dst)
    dirs = link_dest_dirs(link_dest)
    chosen = get_engine(engine)
    check_arguments(src, dst, opts)
    if dirs:
        return chosen.start(src, dst, opts, on_progress=on_progress, on_item=on_item,
                            dry_run=dry_run, link_dest=dirs)
    return chosen.start(src, dst, opts, on_progress=on_progress, on_item=on_item,
                        dry_run=dry_run)


def sync(src: str | os.PathLike[str], dst: str | os.PathLike[str], options: OptionsLike = None, *,
         engine: str | None = None, on_progress: ProgressCallback | None = None,
         on_item: ItemCallback | None = None, dry_run: bool = False,
         link_dest: LinkDest = None) -> SyncResult:
    """Sync SRC to DST and block until done.  Raises SyncError on failure
    (any non-zero exit but 24, which is a warning on the result)."""
    return start_sync(src, dst, options, engine=engine, on_progress=on_progress,
                      on_item=on_item, dry_run=dry_run, link_dest=link_dest).wait()
