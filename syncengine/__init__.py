"""syncengine: back up and restore data volumes with rsync's exact semantics,
with or without rsync installed."""

TYPE_CHECKING = False  # (not typing's: `syncengine` starts before typing is imported)
if TYPE_CHECKING:
    from .backups import Backups, BackupSync, Layout, SyncObserver
    from .effects import Effects, FileEffects
    from .engines import get_engine, resolve_engine_name, start_sync, sync
    from .engines.base import Progress, SyncError, SyncJob, SyncResult
    from .itemize import ItemChange
    from .options import SyncOptions, merge_options
    from .verify import Difference, verify_trees

# The public names are imported on first use (PEP 562), so that
# ``syncengine rsync`` and the native engine do not pay for the facade's
# imports (asyncio and more) at every start.
_LAZY = {
    "Backups": "backups", "BackupSync": "backups", "Layout": "backups", "SyncObserver": "backups",
    "Effects": "effects", "FileEffects": "effects",
    "get_engine": "engines", "resolve_engine_name": "engines", "start_sync": "engines",
    "sync": "engines",
    "Progress": "engines.base", "SyncError": "engines.base", "SyncJob": "engines.base",
    "SyncResult": "engines.base",
    "SyncOptions": "options", "merge_options": "options",
    "ItemChange": "itemize",
    "Difference": "verify", "verify_trees": "verify",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "Backups",
    "BackupSync",
    "Difference",
    "Effects",
    "FileEffects",
    "ItemChange",
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
    "verify_trees",
]

__version__ = "0.1.0"
