"""Engine selection and the blocking/non-blocking sync entry points."""

from __future__ import annotations

import os

from ..options import OptionsLike, SyncOptions, merge_options
from .base import Engine, ProgressCallback, SyncJob, SyncResult

__all__ = ["ENGINE_NAMES", "get_engine", "resolve_engine_name", "start_sync", "sync"]

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


def start_sync(src: str | os.PathLike, dst: str | os.PathLike, options: OptionsLike = None, *,
               engine: str | None = None, on_progress: ProgressCallback | None = None) -> SyncJob:
    """Start syncing SRC to DST (rsync argument semantics) and return the job."""
    opts = options if isinstance(options, SyncOptions) else merge_options(options)
    return get_engine(engine).start(os.fspath(src), os.fspath(dst), opts, on_progress=on_progress)


def sync(src: str | os.PathLike, dst: str | os.PathLike, options: OptionsLike = None, *,
         engine: str | None = None, on_progress: ProgressCallback | None = None) -> SyncResult:
    """Sync SRC to DST and block until done.  Raises SyncError on failure
    (any non-zero exit but 24, which is a warning on the result)."""
    return start_sync(src, dst, options, engine=engine, on_progress=on_progress).wait()
