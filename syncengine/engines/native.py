"""The native engine: runs the pure-Python tree syncer (treesync) in a
thread, with rsync's exit codes and messages."""

from __future__ import annotations

import os
import time

from ..options import SyncOptions
from .base import ItemCallback, Progress, ProgressCallback, SyncJob, SyncResult

__all__ = ["NativeEngine", "NativeJob"]


class NativeEngine:
    name = "python"

    def available(self) -> bool:
        return True

    def start(self, src: str | list[str], dst: str, options: SyncOptions = SyncOptions(), *,
              on_progress: ProgressCallback | None = None, on_item: ItemCallback | None = None,
              dry_run: bool = False, link_dest: tuple[str, ...] = (), out=None,
              err=None) -> SyncJob:
        sources = [src] if isinstance(src, (str, bytes, os.PathLike)) else list(src)
        return NativeJob(sources, dst, options, on_progress, out, err, on_item=on_item,
                         dry_run=dry_run, link_dest=link_dest)._launch()


class NativeJob(SyncJob):
    def __init__(self, sources: list, dst, options: SyncOptions,
                 on_progress: ProgressCallback | None, out=None, err=None, *,
                 on_item: ItemCallback | None = None, dry_run: bool = False,
                 link_dest: tuple[str, ...] = ()) -> None:
        super().__init__(on_progress)
        self._on_item, self._dry_run = on_item, dry_run
        self._link_dest = tuple(link_dest)
        self._sources = [os.fspath(s) for s in sources]
        self._dst = os.fspath(dst)
        self._options = options
        self._out_sink, self._err_sink = out, err
        self._messages: list[str] = []
        self._errors: list[str] = []

    def _out(self, line: str) -> None:
        self._messages.append(line)
        if self._out_sink is not None:
            self._out_sink(line)

    def _err(self, line: str) -> None:
        self._errors.append(line)
        if self._err_sink is not None:
            self._err_sink(line)

    def _run(self) -> SyncResult:
        from ..environment import tuning_from_environment
        from ..treesync.sync import TreeSync, read_excludes

        src_text = " ".join(os.fsdecode(s) for s in self._sources)
        rules = read_excludes(self._options.exclude, self._err)
        if rules is None:
            return self._make_result(src_text, 1, None)
        tree = TreeSync(self._sources, self._dst, delete=self._options.delete, rules=rules,
                        out=self._out, err=self._err, on_progress=self._on_stats,
                        cancel=self._cancelled, on_item=self._on_item, dry_run=self._dry_run,
                        link_dest=self._link_dest, tuning=tuning_from_environment())
        return self._make_result(src_text, tree.run(), tree.stats)

    def _on_stats(self, stats) -> None:
        if stats.bytes_total:
            percent = 100.0 * stats.bytes_seen / stats.bytes_total
        else:
            percent = 100.0 * stats.entries_done / max(stats.entries_total, 1)
        self._report(Progress(
            bytes_done=stats.bytes_done, bytes_total=stats.bytes_total, percent=percent,
            files_transferred=stats.files_transferred,
            to_check=stats.entries_total - stats.entries_listed, total_entries=stats.entries_total,
            current=os.fsdecode(stats.current)))

    def _make_result(self, src_text: str, exit_code: int, stats) -> SyncResult:
        return SyncResult(
            engine="python", src=src_text, dst=self._dst, exit_code=exit_code,
            files_transferred=stats.files_transferred if stats else 0,
            files_deleted=stats.files_deleted if stats else 0,
            files_skipped=stats.files_skipped if stats else 0,
            bytes_transferred=stats.bytes_done if stats else 0,
            bytes_total=stats.bytes_total if stats else 0,
            errors=tuple(self._errors), messages=tuple(self._messages),
            duration=time.monotonic() - self._started, dry_run=self._dry_run)
