"""The native engine: drives the pure-Python tree syncer (treesync)."""

from __future__ import annotations

from ..options import SyncOptions
from .base import ProgressCallback, SyncError, SyncJob

__all__ = ["NativeEngine"]


class NativeEngine:
    name = "python"

    def available(self) -> bool:
        return False

    def start(self, src: str, dst: str, options: SyncOptions = SyncOptions(), *,
              on_progress: ProgressCallback | None = None) -> SyncJob:
        raise SyncError("the native (python) engine is not available yet; install rsync "
                        "or use engine='rsync'", exit_code=1)
