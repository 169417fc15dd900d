"""The walks run at one depth of the frame stack, in a piece of it of their own.

CPython 3.11 to 3.13 keep a thread's frames in 16 KiB chunks and free a
chunk as soon as the first frame in it returns (CPython issue gh-142183;
3.14 keeps one).  A loop whose calls cross a chunk's end then maps and
unmaps a chunk at every call: some 7 us each instead of 0.1 us.  Where
that happens depends on how deep the loop runs, and in a recursive walk
that is how deep in the tree a dir is: a dir of 3,000 files at depth 8 or
9 cost 3,600 and 8,900 chunks (one to three a file), at other depths none;
a copy of Python's library (9,000 dirs, most of them small) 40,000.

So a walk is written as generators, a dir's step yielding the steps of
its subdirs, and :func:`descend` runs them: a generator keeps its frame in
itself, so every dir's loop calls from the same place of the stack, that
of ``descend``.  ``descend`` runs in a frame too big to share a chunk with
another (an evaluation stack of some 16 KiB it never uses): the
interpreter starts a chunk of 32 KiB for it, with 16 KiB to spare for what
the loops call, crossing no chunk's end.  That costs one chunk (~17 us) a
walk (a census of sources merged: one a subtree only one of them has); on
Pythons without the issue, a 16 KiB frame.  What still recurses is off the
common paths: deleting a destination-only subtree, a dir whose contents
are skipped, the merged part of a census.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any, TypeVar

__all__ = ["Steps", "descend", "on_fresh_stack"]

T = TypeVar("T")

# A step of a walk (a dir's): a generator that yields the steps below it,
# each to be run to its end before it goes on, as a recursive call would.
Steps = Generator[Any, None, None]

# Slots of 8 bytes: above 16 KiB, so that the frame never fits in what is
# left of a chunk (16 KiB at most in CPython's own chunks, less than that
# in one of these), and below 3,000 (24 KiB: the interpreter's chunk then
# is 32 KiB, with its 8,000-byte margin).
_SLOTS = 2_060


def on_fresh_stack(call: Callable[..., T], *args: object) -> T:
    """``call(*args)``, in a chunk of the frame stack of its own."""
    return call(*args)


# The frame's size is its locals and its evaluation stack: a stack declared
# this deep (it never holds more than a few) makes the frame big without
# slots to clear at each call.
on_fresh_stack.__code__ = on_fresh_stack.__code__.replace(co_stacksize=_SLOTS)


def descend(steps: Steps) -> None:
    """Run ``steps`` and every step it yields, depth first, as if each
    were called where it is yielded: an exception a step raises is raised
    in the step that yielded it, at its ``yield``."""
    on_fresh_stack(_run_steps, steps)


def _run_steps(steps: Steps) -> None:
    stack = [steps]
    raised: BaseException | None = None
    while stack:
        try:
            below = next(stack[-1]) if raised is None else stack[-1].throw(raised)
        except StopIteration:
            stack.pop()
            raised = None
            continue
        except BaseException as exc:
            stack.pop()
            if not stack:
                # (not held here: its traceback holds this frame, which
                # would keep every step's frame alive until a gc)
                raised = None
                raise
            raised = exc
            continue
        raised = None
        stack.append(below)
