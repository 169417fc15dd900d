"""Itemized changes: what a sync did (or, in a dry run, would do) to each
destination entry, as rsync's ``-i/--itemize-changes`` prints it.

A line is ``%i %n%L``: an 11-character code, the name below the transfer
root (a dir's ends with ``/``) and, for a symlink, `` -> TARGET``, for a
hard link, `` => OTHER``::

    >f+++++++++ new-file            cd+++++++++ new-dir/
    >fc.t...... rewritten           .d..t...... dir-whose-mtime-changed/
    .f...p..... chmod-only          cL+++++++++ link -> target
    hf+++++++++ b => a              *deleting   gone

The code is ``YXcstpoguax``: Y is ``>`` (a file received), ``c`` (a local
change or creation), ``h`` (a hard link), ``.`` (attributes only) or ``*``
(a message: ``*deleting``); X the type (f, d, L, D, S); then one column per
attribute, its letter when it changed, ``.`` when not, ``+`` for a new entry.

Both engines produce :class:`ItemChange` objects: the native engine builds
them as it walks, the rsync engine parses rsync's lines (:func:`parse_line`).
"""

from __future__ import annotations

import binascii
import re
from dataclasses import dataclass

__all__ = ["ItemChange", "parse_line", "NEW_COLUMNS"]

NEW_COLUMNS = "+++++++++"
# rsync's log_formatted() (log.c) fills %n and %L into buffers of MAXPATHLEN
# bytes: a dir's "/" is added only while it fits, and " -> TARGET" or
# " => NAME" is cut to what fits.
_MAXPATHLEN = 4096
_DELETING = "*deleting"
_CODE = re.compile(rb"^(?:([<>ch.][fdLDS][.+ cstpoguaxnb?]{9})|(\*deleting)  ) (.*)$", re.S)


@dataclass(frozen=True)
class ItemChange:
    """One itemized change.  ``path``, ``symlink_target`` and ``hardlink_to``
    are raw bytes (names need not be UTF-8)."""

    code: str                          # ">f+++++++++", ".d..t......", "*deleting"
    path: bytes                        # below the transfer root; a dir's ends in "/"
    symlink_target: bytes | None = None
    hardlink_to: bytes | None = None

    @property
    def deleted(self) -> bool:
        return self.code == _DELETING

    @property
    def created(self) -> bool:
        return self.code.endswith(NEW_COLUMNS)

    def line(self) -> str:
        """rsync's ``%i %n%L`` line (unescaped: names through os.fsdecode)."""
        return f"{self.code:<11} {self.name_text()}"

    def __str__(self) -> str:
        """The rsync line, so that ``on_item=print`` prints what ``-i`` does."""
        return self.line()

    def name_text(self) -> str:
        """rsync's ``%n%L``: what ``-v`` prints for the entry (each part
        cut to rsync's buffer: a symlink's target to 4091 bytes)."""
        path = self.path
        if path.endswith(b"/") and len(path) >= _MAXPATHLEN:
            path = path[:-1]  # (strlcat() has no room for the slash)
        if self.hardlink_to is not None:
            path += (b" => " + self.hardlink_to)[:_MAXPATHLEN - 1]
        elif self.symlink_target is not None:
            path += (b" -> " + self.symlink_target)[:_MAXPATHLEN - 1]
        return path.decode("utf-8", "surrogateescape")

    def verbose_line(self) -> str | None:
        """What ``-v`` (without ``-i``) prints for it, None for nothing:
        the name of what was transferred, created or linked, of a dir whose
        attributes changed, and ``deleting NAME``."""
        if self.deleted:
            return "deleting " + self.name_text()
        if self.code[0] in ">ch" or self.code[1] == "d":
            return self.name_text()
        return None

    def as_dict(self) -> dict[str, str]:
        """JSON-ready: text fields, with a base64 twin for names that are
        not UTF-8."""
        out: dict[str, str] = {"code": self.code}
        for key, raw in (("path", self.path), ("symlink_target", self.symlink_target),
                         ("hardlink_to", self.hardlink_to)):
            if raw is None:
                continue
            out[key] = raw.decode("utf-8", "replace")
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                out[key + "_b64"] = binascii.b2a_base64(raw, newline=False).decode("ascii")
        return out


def parse_line(line: bytes) -> ItemChange | None:
    """An rsync ``-i`` output line (raw, without its newline, rsync's
    ``\\#ooo`` escapes undone) as an ItemChange; None for any other line.
    A name holding " -> " or " => " itself is split at the first one: rsync's
    line does not tell them apart."""
    match = _CODE.match(line)
    if match is None:
        return None
    code = (match[1] or match[2]).decode("ascii")
    rest = match[3]
    target = link = None
    if code[0] == "h" and b" => " in rest:
        rest, _, link = rest.partition(b" => ")
    elif code[1:2] == "L" and b" -> " in rest:
        rest, _, target = rest.partition(b" -> ")
    return ItemChange(code, rest, target, link)
