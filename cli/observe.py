"""The facade as the command line runs it: each sync announced to the
output, and (``--verify``) each destination compared with its source right
after its sync, while the pre hook's effect (a stopped service) still
holds."""

from __future__ import annotations

import os
from collections.abc import Iterable

from .. import Backups, SyncError, SyncOptions, SyncResult
from ..verify import iter_differences
from .output import Output

__all__ = ["ObservedBackups", "run_verify"]


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


class ObservedBackups(Backups):
    """A Backups whose syncs report to an :class:`Output`.  Set ``output``
    (and ``verify``) before running it."""

    output: Output
    verify: bool = False
    labels: list[str] | None = None

    def __init__(self, *args, **kw) -> None:
        super().__init__(*args, **kw)
        self.mismatches = 0  # differences found by --verify

    async def _run_plan(self, plan: list[tuple[str, str, SyncOptions]], on_progress
                        ) -> list[SyncResult]:
        # One sync at a time through the facade's own loop, so its
        # behaviour (directory creation, engine selection) stays its own.
        results: list[SyncResult] = []
        for index, (src, dst, options) in enumerate(plan, 1):
            label = self.labels[index - 1] if self.labels and index <= len(self.labels) else ""
            self.output.sync_start(index, len(plan), src, dst, label)
            try:
                results += await super()._run_plan([(src, dst, options)], on_progress)
            except SyncError as exc:
                self.output.sync_failed(index, exc)
                raise
            self.output.sync_end(index, results[-1])
            if self.verify:
                self.mismatches += run_verify(self.output, src, dst, options, index=index)
        return results
