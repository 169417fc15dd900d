"""rsync's fixed words and path forms in messages.
"""

from __future__ import annotations

import os
import stat
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    pass



# rsync's words for an entry type in "could not make way for new ...".
TYPE_WORDS = {stat.S_IFREG: "regular file", stat.S_IFDIR: "directory", stat.S_IFLNK: "symlink"}
SKIP_DIR = "*** Skipping any contents from this failed directory ***"
# Lines of rsync's sender while it sends files (see TreeSync.err).
SENDER_LINES = ("rsync: [sender] ", "file has vanished: ")
# Error lines of rsync's generator and receiver (see TreeSync.__init__).
SERVER_SIDE = ("rsync: [generator]", "rsync: [receiver]", "rsync: [Receiver]",
                "could not make way for new ", SKIP_DIR)
# The final line rsync prints for a fatal exit code.
EXIT_LINES = {1: "syntax or usage error", 3: "errors selecting input/output files, dirs",
               11: "error in file IO"}




def strerror(exc: OSError) -> str:
    return f"{os.strerror(exc.errno)} ({exc.errno})" if exc.errno else str(exc)


def sender_abs(path: bytes) -> str:
    """A path as rsync's sender messages show it: absolute, as str."""
    return os.fsdecode(os.path.abspath(path))


def full_fname(path: bytes) -> str:
    """rsync's full_fname() of a path from the command line, as str: a
    relative one joined to the cwd as it was given (slashes and dots
    kept)."""
    if path.startswith(b"/"):
        return os.fsdecode(path)
    return os.fsdecode(os.getcwdb().rstrip(b"/") + b"/" + path)
