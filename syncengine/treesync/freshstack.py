"""A wide dir's per-entry loops run in a fresh piece of the frame stack.

CPython 3.11 to 3.13 keep a thread's frames in 16 KiB chunks and free a
chunk as soon as the first frame in it returns (CPython issue gh-142183;
3.14 keeps one).  A loop whose calls cross a chunk's end then maps and
unmaps a chunk at every call: some 7 us each instead of 0.1 us.  Where
that happens depends on how deep the loop runs -- here, how deep in the
tree a dir is: a dir of 3,000 files at depth 8 or 9 cost 3,600 and 8,900
chunks (one to three a file), at other depths none.

:func:`on_fresh_stack` calls a function in a frame too big to share a
chunk with another (an evaluation stack of some 16 KiB it never uses), so
that the interpreter starts a chunk of 32 KiB for it, with 16 KiB to spare
for what it calls: a dir's loop over its entries runs there, its calls
crossing no chunk's end.  The chunk is freed when the dir is done.  That
costs about what two crossings do (~17 us), so only a dir of WIDE entries
or more takes one; a tree of small dirs still pays for the crossings at
its unlucky depths (taking a chunk for every dir made the `corpus` re-run
15% slower; a walk at one depth for every dir would end them).  On
Pythons without the issue it costs a 16 KiB frame a wide dir.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

__all__ = ["WIDE", "on_fresh_stack"]

T = TypeVar("T")

# Entries from which a dir's loop runs in a chunk of its own (a smaller one
# calls its entries in place: no frame added between).
WIDE = 64

# Slots of 8 bytes: above 16 KiB, so that the frame never fits in what is
# left of a chunk (16 KiB at most in CPython's own chunks, less than that
# in one of these), and below 3,000 (24 KiB: the interpreter's chunk then
# is 32 KiB, with its 8,000-byte margin).
_SLOTS = 2_060


def _call(call: Callable[..., T], *args: object) -> T:
    return call(*args)


# The frame's size is its locals and its evaluation stack: a stack declared
# this deep (it never holds more than a few) makes the frame big without
# slots to clear at each call.
_call.__code__ = _call.__code__.replace(co_stacksize=_SLOTS)


def on_fresh_stack(call: Callable[..., T], *args: object) -> T:
    """``call(*args)``, in a chunk of the frame stack of its own."""
    return _call(call, *args)
