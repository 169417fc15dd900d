"""A source dir's listing for the walk, flat in memory however wide the dir
(listing.py builds it).

rsync keeps about 100 bytes per file list entry.  An ``os.stat_result``
takes some 600 (the object and its ints), so a listing holding one per
entry grew a run by over 100 MB in a dir of 200,000 files.  A
:class:`PackedListing` holds the first ``HELD`` entries of a dir as they
come; past that, all of them packed in arrays: the fields of its lstat the
walk reads (type and mode, size, mtime and inode: 26 bytes; owner, group,
link count and device as well where they differ from the dir's other
entries), or the precheck's verdict.  Iterating gives back ``(name,
lstat)`` pairs as the list of pairs it replaces did -- the lstat taken when
the dir was listed, as rsync's file list has it, not when the walk gets to
the entry.  What the delete pass asks of it (is a name in the list, is it a
file found in sync) is a binary search in the sorted names.
"""

from __future__ import annotations

import os
from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterator
from itertools import repeat

__all__ = ["HELD", "PackedListing", "names_of", "packed_verdict", "unpacked_verdict"]

HELD = 256  # entries held as they come, before a dir's listing is packed

_U64 = (1 << 64) - 1
_I64 = _U64 >> 1
_BILLION = 1_000_000_000


def _signed(value: int) -> int:
    """An unsigned 64-bit number (an inode, a device) as a signed one."""
    return value - (1 << 64) if value > _I64 else value


def packed_verdict(verdict: tuple[int, int, int]) -> tuple[int, int, int]:
    """(size, inode, ctime) as three signed 64-bit ints (an inode number
    may take all 64 bits)."""
    size, ino, ctime_ns = verdict
    return size, _signed(ino), ctime_ns


def unpacked_verdict(packed: array, i: int) -> tuple[int, int, int]:
    """The verdict at ``packed[i:i + 3]``."""
    return packed[i], packed[i + 1] & _U64, packed[i + 2]


class PackedListing:
    """The sorted, filtered entries of one source dir: ``add()`` them in
    order, each with its lstat or, for a file the precheck found in sync,
    its verdict (size, inode, ctime), which comes back as ``in_sync(*verdict)``."""

    __slots__ = ("names", "_count", "_held", "_in_sync", "_synced", "_modes", "_big", "_columns",
                 "_unsettled")

    def __init__(self, in_sync: Callable[[int, int, int], object],
                 names: list[bytes] | None = None) -> None:
        """``names``: the list the names come from, in order (a dir's names,
        sorted), which the listing takes over: it keeps those added, at
        the front (a wide dir's names are not listed twice)."""
        self.names: list[bytes] = names if names is not None else []
        self._count = 0
        self._in_sync = in_sync
        self._synced = 0  # (files found in sync)
        self._held: list[object] | None = []  # (lstat or in_sync record, while few)
        # Packed, past HELD entries: the mode (0: a verdict), then size,
        # mtime (a verdict: ctime) and inode, then owner, group, link count
        # and device, mostly one value for all.
        self._modes = array("H")
        self._big = array("q")
        self._columns = (_Column("I"), _Column("I"), _Column("I"), _Column("q"))
        self._unsettled = 0  # (verdicts packed but not yet in the columns: _settle)

    def add(self, name: bytes, st: os.stat_result | tuple[int, int, int]) -> None:
        held, count = self._held, self._count
        if held is None and st.__class__ is tuple:
            # (a wide dir's re-run: its files found in sync, in fewer steps;
            # the columns take their rows later, all at once: _settle)
            size, ino, ctime_ns = st  # type: ignore[misc]
            self._modes.append(0)
            self._big.extend((size, ctime_ns, ino if ino <= _I64 else ino - (1 << 64)))
            self._unsettled += 1
            self._synced += 1
        elif held is not None and count < HELD and st.__class__ is os.stat_result:
            held.append(st)  # (a small dir's entry)
        else:
            if held is not None and len(held) >= HELD:
                for record in held:
                    self._pack(record)
                held = self._held = None
            verdict = not isinstance(st, os.stat_result)  # (a stat_result is a tuple too)
            self._synced += verdict
            if held is None:
                self._pack(st)
            else:
                held.append(self._in_sync(*st) if verdict else st)
        names = self.names
        if count < len(names):
            names[count] = name
        else:
            names.append(name)
        self._count = count + 1

    def _done(self) -> None:
        """The names not added leave the list taken over."""
        if self._count < len(self.names):
            del self.names[self._count:]

    def _settle(self) -> None:
        """The columns' rows for the verdicts packed since they last took
        any (a verdict keeps a column's one value, or repeats it)."""
        count, self._unsettled = self._unsettled, 0
        for column in self._columns:
            if column.values is None:
                column.count += count
            else:
                column.values.extend(array(column.typecode, (column.value,)) * count)

    def _pack(self, record: object) -> None:
        if self._unsettled:
            self._settle()
        uids, gids, nlinks, devs = self._columns
        if isinstance(record, os.stat_result):
            ino, dev = record.st_ino, record.st_dev
            self._modes.append(record.st_mode)
            self._big.extend((record.st_size, record.st_mtime_ns,
                              ino if ino <= _I64 else ino - (1 << 64)))
            uids.append(record.st_uid)
            gids.append(record.st_gid)
            nlinks.append(record.st_nlink)
            devs.append(dev if dev <= _I64 else dev - (1 << 64))
            return
        if not isinstance(record, tuple):  # (an in_sync record, while held)
            record = (record.size, record.ino, record.ctime_ns)  # type: ignore[attr-defined]
        size, ino, ctime_ns = packed_verdict(record)
        self._modes.append(0)
        self._big.extend((size, ctime_ns, ino))
        for column in self._columns:  # (a verdict keeps one value for all)
            if column.values is None:
                column.count += 1
            else:
                column.values.append(column.value)

    def __iter__(self) -> Iterator[tuple[bytes, object]]:
        self._done()
        if self._held is not None:
            return zip(self.names, self._held, strict=True)
        return self._unpacked()

    def _unpacked(self) -> Iterator[tuple[bytes, object]]:
        # (the hot loop of a wide dir: each column read as a whole)
        if self._unsettled:
            self._settle()
        big, in_sync, stat_result = self._big, self._in_sync, os.stat_result
        columns = [repeat(column.value) if column.values is None else column.values
                   for column in self._columns]
        # (strict=False: a repeat() has no end)
        for i, (name, mode, uid, gid, nlink, dev) in enumerate(zip(self.names, self._modes,
                                                                     *columns, strict=False)):
            size, mtime_ns, ino = big[3 * i], big[3 * i + 1], big[3 * i + 2] & _U64
            if not mode:
                yield name, in_sync(size, ino, mtime_ns)
                continue
            # (what the walk never reads of a source entry's lstat is 0)
            sec = mtime_ns // _BILLION
            yield name, stat_result((mode, ino, dev & _U64, nlink, uid, gid, size, 0, sec, 0, 0.0,
                                     sec + (mtime_ns - sec * _BILLION) * 1e-9, 0.0,
                                     0, mtime_ns, 0, 0, 0, 0))

    def __len__(self) -> int:
        return self._count

    def __contains__(self, name: bytes) -> bool:
        return self._index(name) >= 0

    def in_sync_names(self) -> _InSyncNames | None:
        """The names of the files found in sync (None: there are none)."""
        return _InSyncNames(self) if self._synced else None

    @property
    def packed(self) -> bool:
        """Whether its entries are packed (a dir of more than HELD)."""
        return self._held is None

    def _index(self, name: bytes) -> int:
        names, count = self.names, self._count
        i = bisect_left(names, name, 0, count)
        return i if i < count and names[i] == name else -1


class _Column:
    """One field of packed entries: one value while all have it (a dir's
    entries mostly share their owner, group, link count and device), an
    array once they differ."""

    __slots__ = ("typecode", "value", "count", "values")

    def __init__(self, typecode: str) -> None:
        self.typecode = typecode
        self.value = 0
        self.count = 0
        self.values: array | None = None

    def append(self, value: int) -> None:
        if self.values is not None:
            self.values.append(value)
        elif value == self.value or not self.count:
            self.value = value
            self.count += 1
        else:
            self.values = array(self.typecode, (self.value,)) * self.count
            self.values.append(value)


class _InSyncNames:
    """``name in it``: whether the name is that of a file found in sync."""

    __slots__ = ("_listing",)

    def __init__(self, listing: PackedListing) -> None:
        self._listing = listing

    def __contains__(self, name: bytes) -> bool:
        # (the delete pass asks about each destination name: one call)
        listing = self._listing
        names, count = listing.names, listing._count
        i = bisect_left(names, name, 0, count)
        if i == count or names[i] != name:
            return False
        held = listing._held
        return held[i].__class__ is listing._in_sync if held is not None else not listing._modes[i]

    def __bool__(self) -> bool:
        return True


def names_of(entries: PackedListing | list[tuple[bytes, object]],
             in_sync_type: type) -> tuple[object, object]:
    """The delete pass's view of a dir's entries: what is in the list, and
    what of it the precheck found in sync (both support ``in``; None: no
    file was).  A packed listing answers by a search in its sorted names;
    a list, or a listing still held, as sets (the delete pass asks about
    every destination name: a set answers far faster)."""
    if isinstance(entries, PackedListing) and entries.packed:
        return entries, entries.in_sync_names()
    synced = {name for name, st in entries if st.__class__ is in_sync_type}
    return {name for name, _ in entries}, synced or None
