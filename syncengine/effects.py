"""Effects: how the facade reads and records a service's data version."""

from __future__ import annotations

import os
from collections.abc import Awaitable
from pathlib import Path
from typing import Protocol, runtime_checkable

from .fsutil import atomic_write_text, read_version_file

__all__ = ["Effects", "FileEffects"]


@runtime_checkable
class Effects(Protocol):
    """What the facade needs from its host."""

    # Either may be a coroutine function: the facade awaits what it returns.
    def get_data_version(self) -> str | None | Awaitable[str | None]: ...

    def set_data_version(self, version: str) -> None | Awaitable[None]: ...


class FileEffects:
    """Effects backed by a file: the data version lives in ``path`` (for the
    CLI: ``<volumes_root>/dataVersion.txt`` unless told otherwise)."""

    def __init__(self, path: str | os.PathLike[str], version: str | None = None) -> None:
        self.path = Path(path)
        self._override = version

    def get_data_version(self) -> str | None:
        if self._override is not None:
            return self._override
        return read_version_file(self.path)  # (a link, fifo or device: DataVersionError)

    def set_data_version(self, version: str) -> None:
        atomic_write_text(self.path, f"{version}\n")  # (read back with or without it)
