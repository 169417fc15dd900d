"""What the run says: itemized changes (-i), rsync's generator's
flushing of them, and error lines with the names rsync gives them.
"""

from __future__ import annotations

import errno
import os
from typing import TYPE_CHECKING

from .. import messages as msg
from ..itemize import ItemChange
from ..messages import sender_abs
from .model import FLUSH_EVERY, NO_CHANGE

if TYPE_CHECKING:
    from .sync import TreeSync
    pass



class Reporting:
    """Item lines and error lines, in rsync's order and words."""

    def _item(self: TreeSync, code: str | None, rel: bytes, *, is_dir: bool = False,
              target: bytes | None = None, link: bytes | None = None) -> None:
        """An itemized change.  A deletion is one of rsync's generator's
        messages, out at once; any other is data to its sender, held
        until the generator flushes (_take_entry)."""
        if self.on_item is not None and code is not None:
            if code[0] in ".hc" and code.endswith(NO_CHANGE):
                code = code[:2] + " " * 9  # rsync's log.c: a change of nothing in particular
            change = ItemChange(code, rel + b"/" if is_dir else rel, target, link)
            if change.deleted:
                self.on_item(change)
            else:
                self._held.append(lambda: self.on_item(change))

    def _take_entry(self: TreeSync) -> None:
        """The generator takes the file list's next entry.  After the
        first, and then after the first at or past each 200th, it flushes
        its output, messages before data (generate_files() calls
        maybe_flush_socket(), which without --timeout always flushes): the
        item lines held so far go out after the messages already out."""
        if self.stats.entries_listed > self._next_flush:
            self._next_flush += FLUSH_EVERY
            self._flush()
        self.stats.entries_listed += 1

    def _flush(self: TreeSync) -> None:
        """The held item lines (and progress samples) go out."""
        while self._held:
            held, self._held = self._held, []
            for emit in held:
                emit()

    # -- errors -----------------------------------------------------------------------
    def _drel(self: TreeSync, rel: bytes) -> bytes:
        """The destination name of an entry: its name below the transfer
        root, except for a single item written onto a new name (rsync's
        solo_file), which the receiver knows by DST's last component."""
        if self._solo and rel == self._solo[0]:
            return self._solo[1]
        return rel

    def _full(self: TreeSync, rel: bytes) -> str:
        """rsync's full_fname(): the quoted path below the receiver's cwd."""
        return '"%s"' % os.fsdecode(self._curr_dir.rstrip(b"/") + b"/" + self._drel(rel))

    def _fail(self: TreeSync, line: str) -> None:
        self.err(line)
        self.partial = True

    def _scan_failed(self: TreeSync, line: str) -> None:
        self._fail(line)
        self.scan_error = True

    def _source_open_failed(self: TreeSync, exc: OSError, shown: bytes) -> None:
        path = sender_abs(shown)
        if exc.errno == errno.ENOENT:
            self.err(msg.vanished(path))
            self.vanished = True
        else:
            self._fail(msg.send_files_failed(path, exc))

    def _dest_abs(self: TreeSync, rel: bytes) -> bytes:
        return os.path.join(self._curr_dir, rel)
