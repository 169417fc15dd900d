"""Per-entry loops run in a fresh piece of the interpreter's frame stack.

CPython 3.11 to 3.13 keep a thread's frames in 16 KiB chunks and free a
chunk as soon as the first frame in it returns (CPython issue gh-142183,
fixed in 3.14).  A loop whose calls cross a chunk's end then maps and
unmaps a chunk at every call: some 7 us each instead of 0.1 us.  Where
that happens depends on how deep the loop runs -- here, how deep in the
tree a dir is -- so a tree with its files at the wrong depth was copied
several times slower, one call per entry.  (The `corpus` shape: some
50,000 such calls in an initial copy.)

:func:`on_fresh_stack` calls a function in a frame too big to share a
chunk with another (some 16 KiB of locals it never uses), so that the
interpreter starts a chunk of 32 KiB for it, with 16 KiB to spare for
what it calls: a dir's loop over its entries runs there, its calls never
crossing a chunk's end.  The chunk is freed when the dir is done.  That
costs about what one crossing does, so only a dir of WIDE entries or
more takes one: in a tree of small dirs, one a dir
cost more than it saved (the `corpus` re-run: 15% slower).  On Pythons
without the issue it costs a 16 KiB frame a wide dir.
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
_SOURCE = ("def on_fresh_stack(call, *args):\n"
           "    if 0:  # (never run: the names make the frame big)\n"
           "        " + " = ".join(f"_{i}" for i in range(_SLOTS)) + " = None\n"
           "    return call(*args)\n")
_namespace: dict = {}
exec(compile(_SOURCE, __name__, "exec"), _namespace)  # noqa: S102 (fixed source, above)
_on_fresh_stack = _namespace["on_fresh_stack"]


def on_fresh_stack(call: Callable[..., T], *args: object) -> T:
    """``call(*args)``, in a chunk of the frame stack of its own."""
    return _on_fresh_stack(call, *args)

