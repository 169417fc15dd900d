"""Snapshot IDs: a UTC time without colons, ``2026-12-06T151700Z``, and
``-2``, ``-3``, ... when runs share a second.

The ID is the snapshot's start time (the time retention rules look at) and
its name on disk.  :func:`id_sort_key` orders IDs by time and then by
suffix; plain string order agrees with it up to ``-9`` (``…Z`` sorts
before ``…Z-2``), which more than nine runs in one second would break.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass

__all__ = ["SnapshotId", "format_id", "parse_id", "is_snapshot_id", "id_sort_key"]

_TIME_FORMAT = "%Y-%m-%dT%H%M%SZ"
_ID = re.compile(r"(\d{4}-\d{2}-\d{2}T\d{6}Z)(?:-([2-9]|[1-9]\d+))?")


@dataclass(frozen=True, order=True)
class SnapshotId:
    """A parsed ID; ordering is creation order (time, then suffix)."""

    time: datetime.datetime   # UTC, whole seconds
    seq: int = 1              # 1: no suffix; n >= 2: "-n"

    def __str__(self) -> str:
        text = self.time.strftime(_TIME_FORMAT)
        return text if self.seq == 1 else f"{text}-{self.seq}"


def format_id(when: datetime.datetime, seq: int = 1) -> str:
    """The ID of a snapshot started at ``when`` (made UTC, truncated to the
    second), the ``seq``-th of its second."""
    if seq < 1:
        raise ValueError(f"seq must be at least 1, not {seq}")
    return str(SnapshotId(_utc_second(when), seq))


def parse_id(text: str) -> SnapshotId | None:
    """The SnapshotId of ``text``, None when it is not exactly an ID in its
    canonical form (so every ID has one spelling)."""
    match = _ID.fullmatch(text)
    if match is None:
        return None
    try:
        when = datetime.datetime.strptime(match[1], _TIME_FORMAT)
    except ValueError:  # a 13th month, a 61st second...
        return None
    parsed = SnapshotId(when.replace(tzinfo=datetime.UTC), int(match[2] or 1))
    return parsed if str(parsed) == text else None


def is_snapshot_id(text: str) -> bool:
    return parse_id(text) is not None


def id_sort_key(text: str) -> SnapshotId:
    parsed = parse_id(text)
    if parsed is None:
        raise ValueError(f"not a snapshot ID: {text!r}")
    return parsed


def _utc_second(when: datetime.datetime) -> datetime.datetime:
    if when.tzinfo is None:
        raise ValueError("a snapshot time must be timezone-aware")
    return when.astimezone(datetime.UTC).replace(microsecond=0)
