"""syncengine: back up and restore data volumes with rsync's exact semantics,
with or without rsync installed."""

from .backups import Backups, BackupSync, Layout, SyncObserver
from .effects import Effects, FileEffects
from .engines import get_engine, resolve_engine_name, start_sync, sync
from .engines.base import Progress, SyncError, SyncJob, SyncResult
from .options import SyncOptions, merge_options

__all__ = [
    "Backups",
    "BackupSync",
    "Effects",
    "FileEffects",
    "Layout",
    "Progress",
    "SyncError",
    "SyncJob",
    "SyncObserver",
    "SyncOptions",
    "SyncResult",
    "get_engine",
    "merge_options",
    "resolve_engine_name",
    "start_sync",
    "sync",
]

__version__ = "0.1.0"
