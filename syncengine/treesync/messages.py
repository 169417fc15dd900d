"""Message lines as rsync prints them.

rsync passes every message through ``rwrite()`` (log.c).  Names are raw
bytes there, and it makes them safe for a terminal:

- with a character set from the locale (``nl_langinfo(CODESET)``, checked
  with ``iconv``), each byte that is not part of a valid character becomes
  ``\\#ooo`` (three octal digits); of the valid text, control characters
  below space other than tab become ``\\#ooo`` (``filtered_fwrite`` without
  ``isprint``).  So in a UTF-8 locale ``café`` prints as is and
  ``caf\\xe9`` as ``caf\\#351``; in the C locale (ASCII) both are escaped.
- without one, every byte that is not printable ASCII (tab excepted) is
  escaped.
- A backslash that starts ``\\#`` and three digits becomes ``\\#134``, so
  the output stays unambiguous.

:func:`rsync_escape` does the same for a line the engine built as ``str``
(names carried with ``os.fsdecode``'s surrogate escapes).
"""

from __future__ import annotations

import codecs
import locale
import os
import re

__all__ = ["locale_codec", "rsync_escape", "unescape"]


def locale_codec() -> str | None:
    try:
        return codecs.lookup(locale.nl_langinfo(locale.CODESET)).name
    except (AttributeError, LookupError, ValueError):
        return None


def _filtered(run: bytes, out: bytearray) -> None:
    """filtered_fwrite(use_isprint=0) over a run of valid characters."""
    n = len(run)
    for i, b in enumerate(run):
        if (b == 0x5C and i < n - 4 and run[i + 1] == 0x23 and run[i + 2:i + 5].isdigit()) \
                or (b < 0x20 and b != 0x09):
            out += b"\\#%03o" % b
        else:
            out.append(b)


_UTF8_MIN = {2: 0x80, 3: 0x800, 4: 0x10000, 5: 0x200000, 6: 0x4000000}


# A lead byte's range and the length of the sequence it starts.
_UTF8_LEADS = ((2, 0xC0, 0xDF), (3, 0xE0, 0xEF), (4, 0xF0, 0xF7), (5, 0xF8, 0xFB), (6, 0xFC, 0xFD))


def _utf8_char_len(raw: bytes, i: int) -> int:
    """Length of the character at ``raw[i]`` as glibc's UTF-8 iconv accepts
    it (the old 5- and 6-byte forms and values above U+10FFFF included;
    overlong forms and surrogates refused), 0 if invalid."""
    lead = raw[i]
    if lead < 0x80:
        return 1
    size = next((n for n, low, high in _UTF8_LEADS if low <= lead <= high), 0)
    if not size:
        return 0
    tail = raw[i + 1:i + size]
    if len(tail) != size - 1 or any(not 0x80 <= c <= 0xBF for c in tail):
        return 0
    value = lead & (0x7F >> size)
    for c in tail:
        value = (value << 6) | (c & 0x3F)
    if value < _UTF8_MIN[size] or 0xD800 <= value <= 0xDFFF:
        return 0
    return size


def _char_len(raw: bytes, i: int, codec: str) -> int:
    if codec == "utf-8":
        return _utf8_char_len(raw, i)
    for size in range(1, 7):
        try:
            raw[i:i + size].decode(codec)
            return size
        except UnicodeDecodeError as exc:
            if exc.reason not in ("unexpected end of data", "incomplete multibyte sequence"):
                return 0
    return 0


def rsync_escape(line: str, codec: str | None = "locale") -> str:
    """``line`` as rsync would print it (see the module doc), as ``str``
    with ``os.fsdecode``'s surrogate escapes for bytes that stay raw.
    ``codec``: the locale's character set by default; None for rsync's
    path without iconv."""
    if codec == "locale":
        codec = locale_codec()
    raw = os.fsencode(line)
    out = bytearray()
    if codec is None:
        for i, b in enumerate(raw):
            if b == 0x5C and i < len(raw) - 4 and raw[i + 1] == 0x23 \
                    and raw[i + 2:i + 5].isdigit():
                out += b"\\#134"
            elif (b < 0x20 and b != 0x09) or b >= 0x7F:
                out += b"\\#%03o" % b
            else:
                out.append(b)
        return os.fsdecode(bytes(out))
    start = pos = 0
    while pos < len(raw):
        size = _char_len(raw, pos, codec)
        if size:
            pos += size
            continue
        # iconv stops at a bad byte: the text so far is written, the byte
        # escaped, and conversion goes on after it.
        _filtered(raw[start:pos], out)
        out += b"\\#%03o" % raw[pos]
        start = pos = pos + 1
    _filtered(raw[start:], out)
    return os.fsdecode(bytes(out))


_OCTAL = re.compile(rb"\\#([0-7]{3})")


def unescape(line: str) -> str:
    """The raw line behind an escaped one: every ``\\#ooo`` back to its
    byte.  Escaping is injective (a literal ``\\#ddd`` has its backslash
    escaped), so ``rsync_escape(unescape(x))`` re-escapes a line that was
    escaped for another locale, and leaves a correctly escaped one as is."""
    return os.fsdecode(_OCTAL.sub(lambda m: bytes([int(m.group(1), 8) & 0xFF]),
                                  os.fsencode(line)))
