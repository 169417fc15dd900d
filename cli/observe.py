"""The facade as the command line runs it: each sync announced to the
output, and (``--verify``) each destination compared with its source right
after its sync, while the pre hook's effect (a stopped service) still
holds."""

from __future__ import annotations

import os
from collections.abc import Iterable

from .. import SyncError, SyncOptions, SyncResult
from ..backups import BackupSync, SyncObserver
from ..snapshots import Decision, Snapshot
from ..verify import iter_differences
from .output import Output

__all__ = ["CliObserver", "run_verify"]


def run_verify(output: Output, src: str, dst: str, options: SyncOptions, *,
               index: int | None = None, ignore: Iterable[str] = ()) -> int:
    """Compare DST with SRC as the sync left it; each difference is an
    error line.  Returns how many there are."""
    ignore = set(ignore)
    if not options.delete:
        ignore.add("extra")  # without --delete, DST may keep more
    if os.geteuid() != 0:
        ignore.add("uid")    # rsync -o sets owners only as root
    found = 0
    for diff in iter_differences(src, dst, options.exclude, ignore=ignore,
                                 on_progress=output.verify_progress):
        found += 1
        output.difference(diff, as_error=True, index=index, src=src, dst=dst)
    output.bar.clear()
    return found


class CliObserver(SyncObserver):
    """Reports each sync of a backup or restore to an :class:`Output` and,
    with ``verify``, compares each destination with its source."""

    def __init__(self, output: Output, verify: bool = False, labels: list[str] | None = None) -> None:
        self.output = output
        self.verify = verify
        self.labels = labels or []
        self.mismatches = 0  # differences found by --verify
        self.snapshot_id: str | None = None  # the snapshot a backup completed

    def sync_started(self, index: int, total: int, sync: BackupSync, src: str, dst: str,
                     options: SyncOptions) -> None:
        label = self.labels[index - 1] if index <= len(self.labels) else ""
        self.output.sync_start(index, total, src, dst, label)

    def sync_finished(self, index: int, sync: BackupSync, src: str, dst: str,
                      options: SyncOptions, result: SyncResult) -> None:
        self.output.sync_end(index, result)
        if self.verify:
            self.mismatches += run_verify(self.output, src, dst, options, index=index)

    def sync_failed(self, index: int, sync: BackupSync, error: SyncError) -> None:
        self.output.sync_failed(index, error)

    def hook_skipped(self, hook: str) -> None:
        self.output.note(f"syncengine: dry run: the {hook} hook is not run")
        self.output.emit({"event": "hook", "hook": hook, "skipped": True})

    def snapshot_started(self, snapshot_id: str, base: str | None) -> None:
        base_text = f"linking against {base}" if base else "the first snapshot"
        if snapshot_id:
            self.output.note(f"syncengine: building snapshot {snapshot_id} ({base_text})")
        else:
            self.output.note("syncengine: dry run: comparing with "
                             + (f"the latest snapshot, {base}" if base else "no snapshot (none yet)"))
        self.output.emit({"event": "snapshot_start", "id": snapshot_id or None, "base": base,
                          "dry_run": not snapshot_id})

    def snapshot_committed(self, snapshot: Snapshot) -> None:
        self.snapshot_id = snapshot.id
        self.output.note(f"syncengine: snapshot {snapshot.id} complete")
        self.output.emit({"event": "snapshot_end", "id": snapshot.id, "path": snapshot.path})

    def snapshot_pruned(self, decision: Decision) -> None:
        self.output.note(f"syncengine: pruning snapshot {decision.id}")
        self.output.emit({"event": "prune", "id": decision.id, "action": "delete",
                          "reason": None})
