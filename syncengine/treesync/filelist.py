"""Several sources, one file list: how rsync merges the entries its SRC
arguments contribute to the same destination dir.

rsync sends one list for all its sources, sorts it and drops the names that
come twice (flist.c, ``clean_flist()``): of entries with the same path the
first one wins -- except that a dir beats a non-dir whatever their order,
since a dir may have contents in the list.  Of two dirs the first one keeps
its attributes, and the contents of both stay in the list, so they merge.
"First" is the order of the SRC arguments (rsync's sort is stable).

DST's own entry ``.`` is a dir like any other: with several ``SRC/``
arguments the first one's attributes go onto DST, and ``--delete`` spares
every name that any source has there.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from typing import Generic, TypeVar

__all__ = ["Merged", "merge_listings"]

L = TypeVar("L")  # what a listing comes from (a layer: its source, its fd ...)


class Merged(Generic[L]):
    """One name of the merged list: the winning entry, where it comes from,
    and the other layers' dirs of that name, whose contents merge in."""

    __slots__ = ("name", "st", "layer", "more")

    def __init__(self, name: bytes, st: os.stat_result, layer: L,
                 more: list[tuple[L, os.stat_result]]) -> None:
        self.name = name
        self.st = st
        self.layer = layer
        self.more = more   # [(layer, st)] of the other dirs with this name

    def __repr__(self) -> str:
        return f"Merged({self.name!r}, {self.layer!r}, more={[m[0] for m in self.more]!r})"


def merge_listings(listings: Sequence[tuple[L, Sequence[tuple[bytes, os.stat_result]]]],
                   ) -> tuple[list[Merged[L]], list[tuple[L, bytes, os.stat_result]]]:
    """Merge each layer's listing of a dir (``(name, lstat)`` pairs, any
    order), layers in the order of the SRC arguments.  Returns the merged
    entries sorted bytewise by name, and the entries dropped as duplicates
    (``(layer, name, lstat)``; a dir merged into another one is among them:
    its own entry is dropped, not its contents)."""
    by_name: dict[bytes, list[tuple[L, os.stat_result]]] = {}
    for layer, entries in listings:
        for name, st in entries:
            by_name.setdefault(name, []).append((layer, st))
    merged: list[Merged[L]] = []
    dropped: list[tuple[L, bytes, os.stat_result]] = []
    for name in sorted(by_name):
        candidates = by_name[name]
        dirs = [i for i, (_, st) in enumerate(candidates) if stat.S_ISDIR(st.st_mode)]
        win = dirs[0] if dirs else 0
        layer, st = candidates[win]
        merged.append(Merged(name, st, layer, [candidates[i] for i in dirs[1:]]))
        dropped += [(layer, name, st) for i, (layer, st) in enumerate(candidates) if i != win]
    return merged, dropped
