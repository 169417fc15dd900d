"""rsync's ``--exclude`` rules: ``wildmatch()`` and first-match-wins rule lists.

Spec: shared/spec/rsync-semantics.md §1-§2 (rsync 3.5.0: lib/wildmatch.c,
exclude.c).  Pure functions of names, no I/O.

Linux names are bytes, and rsync matches them byte by byte (``?`` is one
byte, classes compare unsigned bytes, ``[:alpha:]`` is ASCII).  So every
pattern and path is matched as bytes: ``str`` input is encoded with
``os.fsencode``, which restores the undecodable bytes that ``os.fsdecode``
carried as surrogate escapes.  ``bytes`` input is accepted as is.

Each rule is compiled once.  Literal names, ``*.ext`` and ``name*`` rules are
plain ``bytes`` comparisons; everything else becomes one regular expression
that gives the same answers as rsync's backtracking matcher (see
``_wild_regex`` for why that holds, and why it never backtracks
exponentially).
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

__all__ = ["MAX_PATTERN_LEN", "FilterRule", "FilterRules", "wildmatch"]

Name = str | bytes

# rsync drops (with a message, exit 0) a rule whose pattern is this long.
MAX_PATTERN_LEN = 4096

_SLASH = ord("/")


def _fsbytes(name: Name) -> bytes:
    if isinstance(name, bytes):
        return name
    try:
        return os.fsencode(name)
    except UnicodeEncodeError:
        # A surrogate that os.fsdecode never makes: still match, never raise.
        return name.encode("utf-8", "surrogatepass")


# ---------------------------------------------------------------------------
# wildmatch


class _NeverMatches(Exception):
    """The pattern is malformed where rsync aborts: it can match nothing."""


# Character classes as glibc defines them for bytes in the C and C.UTF-8
# locales: ASCII only, bytes >= 0x80 are in no class.
def _ascii(pred: Callable[[str], bool]) -> frozenset[int]:
    return frozenset(b for b in range(128) if pred(chr(b)))


_CLASSES: dict[bytes, frozenset[int]] = {
    b"alnum": _ascii(str.isalnum),
    b"alpha": _ascii(str.isalpha),
    b"blank": frozenset(b" \t"),
    b"cntrl": frozenset([*range(32), 127]),
    b"digit": _ascii(str.isdigit),
    b"graph": frozenset(range(33, 127)),
    b"lower": _ascii(str.islower),
    b"print": frozenset(range(32, 127)),
    b"punct": frozenset(b for b in range(33, 127) if not chr(b).isalnum()),
    b"space": frozenset(b" \t\n\v\f\r"),
    b"upper": _ascii(str.isupper),
    b"xdigit": frozenset(b"0123456789abcdefABCDEF"),
}

_STAR = "*"  # token: any run of non-slash bytes
_STAR2 = "**"  # token: any run of bytes
_ANY_BYTE = b"[^/]"


def _byte_set_regex(members: Iterable[int]) -> bytes:
    """A regex matching exactly one byte from ``members`` (never '/')."""
    values = sorted(set(members) - {_SLASH})
    if not values:
        return b"(?!)"
    ranges: list[bytes] = []
    start = prev = values[0]
    for v in [*values[1:], -2]:
        if v != prev + 1:
            ranges.append(
                b"\\x%02x" % start if start == prev else b"\\x%02x-\\x%02x" % (start, prev)
            )
            start = v
        prev = v
    return b"[" + b"".join(ranges) + b"]"


def _parse_class(p: bytes, i: int) -> tuple[bytes, int]:
    """Parse the ``[...]`` starting at ``p[i]``; return (regex, index after it).

    Mirrors rsync's reading: the first member may be ']'; '-' makes a range
    only between two members and before a non-']'; '\\' escapes; a
    "[:name:]" that does not end in ":]" is a plain '['; an unknown class
    name, a trailing '\\' or a missing ']' make the whole pattern fail.
    """
    n = len(p)

    def at(k: int) -> int:
        return p[k] if k < n else 0

    i += 1
    negate = at(i) in b"!^"
    if negate:
        i += 1
    members: set[int] = set()
    prev = 0  # the previous single member; 0 after a range or a class
    c = at(i)
    while True:
        if not c:
            raise _NeverMatches
        if c == ord("\\"):
            i += 1
            c = at(i)
            if not c:
                raise _NeverMatches
            members.add(c)
        elif c == ord("-") and prev and at(i + 1) and at(i + 1) != ord("]"):
            i += 1
            c = at(i)
            if c == ord("\\"):
                i += 1
                c = at(i)
                if not c:
                    raise _NeverMatches
            members.update(range(prev, c + 1))
            c = 0
        elif c == ord("[") and at(i + 1) == ord(":"):
            close = p.find(b"]", i + 2)
            if close < 0:
                raise _NeverMatches
            if close == i + 2 or p[close - 1] != ord(":"):
                members.add(c)  # not a class name: a literal '[', go on at ':'
            else:
                name = p[i + 2 : close - 1]
                if name not in _CLASSES:
                    raise _NeverMatches
                members |= _CLASSES[name]
                c = 0
                i = close
        else:
            members.add(c)
        prev = c
        i += 1
        c = at(i)
        if c == ord("]"):
            break
    if negate:
        members = set(range(256)) - members
    return _byte_set_regex(members), i + 1


def _tokenize(p: bytes) -> list[bytes | str]:
    """Split a pattern into one-byte regexes and the _STAR/_STAR2 tokens."""
    tokens: list[bytes | str] = []
    i, n = 0, len(p)
    while i < n:
        c = p[i]
        if c == ord("*"):
            j = i + 1
            while j < n and p[j] == ord("*"):
                j += 1
            tokens.append(_STAR2 if j - i > 1 else _STAR)
            i = j
        elif c == ord("?"):
            tokens.append(_ANY_BYTE)
            i += 1
        elif c == ord("["):
            regex, i = _parse_class(p, i)
            tokens.append(regex)
        elif c == ord("\\"):
            if i + 1 == n:
                raise _NeverMatches  # rsync compares the text with NUL
            tokens.append(re.escape(p[i + 1 : i + 2]))
            i += 2
        else:
            tokens.append(re.escape(p[i : i + 1]))
            i += 1
    return tokens


def _split(tokens: list[bytes | str], sep: str) -> list[list[bytes | str]]:
    parts: list[list[bytes | str]] = [[]]
    for t in tokens:
        if t is sep:
            parts.append([])
        else:
            parts[-1].append(t)
    return parts


def _run_regex(run: list[bytes | str], last: bool) -> bytes:
    """Regex for a stretch of the pattern with no '**' in it.

    Its pieces between single '*'s have a fixed length and never match '/',
    so placing each one as far left as it goes is never worse than any other
    placement (the gaps stay slash-free and the rest keeps the most room).
    The atomic groups commit to that placement, which keeps the match
    linear instead of exponential.  Only the final piece of the whole
    pattern is different: it must end at the end of the text.
    """
    segments = [b"".join(seg) for seg in _split(run, _STAR)]  # type: ignore[arg-type]
    out = segments[0]
    for j, seg in enumerate(segments[1:], 1):
        if last and j == len(segments) - 1:
            out += b"[^/]*" + seg
        else:
            out += b"(?>[^/]*?" + seg + b")"
    return out + b"\\Z" if last else out


@functools.lru_cache(maxsize=1024)
def _wild_regex(pattern: bytes) -> re.Pattern[bytes] | None:
    """Compile a wildmatch pattern to a regex for ``.match()``; None: never.

    rsync's matcher backtracks, pruned by its abort codes.  The pruning
    never changes an answer, so the answer is the plain one: does some
    assignment of the wildcards cover the text.  Between two '**' the
    leftmost placement of a stretch is the best one (it ends soonest and
    whatever follows a '**' only needs room), so those are atomic too, and
    only the '**' before the last stretch backtracks.
    """
    try:
        tokens = _tokenize(pattern)
    except _NeverMatches:
        return None
    runs = _split(tokens, _STAR2)
    last = len(runs) - 1
    parts = []
    for k, run in enumerate(runs):
        body = _run_regex(run, k == last)
        if k == 0:
            parts.append(body)
        elif k < last:
            parts.append(b"(?>.*?" + body + b")")
        else:
            parts.append(b".*" + body)
    return re.compile(b"".join(parts), re.DOTALL)


def wildmatch(pattern: Name, text: Name) -> bool:
    """rsync's ``wildmatch(pattern, text)`` with no flags.

    ``?`` is any byte but '/', ``*`` a run of them, ``**`` any run at all;
    ``[...]`` classes (``!``/``^``, ranges, ``[:name:]``, leading ``]``) never
    match '/'; ``\\`` escapes; case-sensitive.  A malformed pattern matches
    nothing.
    """
    regex = _wild_regex(_fsbytes(pattern))
    return regex is not None and regex.match(_fsbytes(text)) is not None


# ---------------------------------------------------------------------------
# Rules

# How a compiled rule tests a name (see FilterRule._compile).
_NEVER = 0  # matches nothing
_BASE_EQ = 1  # basename == arg
_BASE_SUFFIX = 2  # basename.endswith(arg)
_BASE_PREFIX = 3  # basename.startswith(arg)
_BASE_WILD = 4  # arg(basename) is not None
_PATH_EQ = 5  # path == arg
_PATH_TAIL = 6  # path == arg[0] or path.endswith(arg[1])
_PATH_WILD = 7  # arg(path, is_dir)

_WILD_CHARS = re.compile(rb"[*?\[]")
_SPECIAL_CHARS = re.compile(rb"[*?\[\\]")


def _tail(path: bytes, count: int) -> bytes | None:
    """The last ``count`` components of ``path``, None if it has fewer."""
    end = len(path)
    for _ in range(count - 1):
        end = path.rfind(b"/", 0, end)
        if end < 0:
            return None
    return path[path.rfind(b"/", 0, end) + 1 :]


def _tail_matcher(regex: re.Pattern[bytes], count: int) -> Callable[[bytes, bool], bool]:
    match = regex.match

    def test(path: bytes, is_dir: bool) -> bool:
        tail = _tail(path, count)
        return tail is not None and match(tail) is not None

    return test


def _path_matcher(
    find: Callable[[bytes], re.Match[bytes] | None], lead: bytes, dir_suffix: bool
) -> Callable[[bytes, bool], bool]:
    def test(path: bytes, is_dir: bool) -> bool:
        return find(lead + path + b"/" if dir_suffix and is_dir else lead + path) is not None

    return test


class FilterRule:
    """One ``--exclude`` rule: a pattern and whether it includes or excludes."""

    __slots__ = ("_arg", "_kind", "dir_only", "include", "pattern")

    def __init__(self, pattern: Name, include: bool = False) -> None:
        raw = _fsbytes(pattern)
        if not raw:
            raise ValueError("empty filter pattern")
        self.pattern: str = os.fsdecode(raw)
        self.include = include
        # "foo/" matches directories only (a lone "/" is a pattern, though).
        self.dir_only = len(raw) > 1 and raw.endswith(b"/")
        self._kind, self._arg = self._compile(raw[:-1] if self.dir_only else raw)

    @staticmethod
    def _compile(pat: bytes) -> tuple[int, Any]:
        anchored = pat.startswith(b"/")
        has_slash = b"/" in pat
        if not _WILD_CHARS.search(pat):
            # No wildcards: '\' is an ordinary byte here.
            if anchored:
                return _PATH_EQ, pat[1:]
            if not has_slash:
                return _BASE_EQ, pat
            return _PATH_TAIL, (pat, b"/" + pat)

        # rsync looks for "**" in the raw pattern, escapes and all.
        star2 = b"**" in pat
        if not has_slash and not star2:
            if pat == b"*":
                return _BASE_PREFIX, b""  # every name
            if pat.startswith(b"*") and not _SPECIAL_CHARS.search(pat[1:]):
                return _BASE_SUFFIX, pat[1:]
            if pat.endswith(b"*") and not _SPECIAL_CHARS.search(pat[:-1]):
                return _BASE_PREFIX, pat[:-1]
            regex = _wild_regex(pat)
            return (_NEVER, None) if regex is None else (_BASE_WILD, regex.match)

        regex = _wild_regex(pat[1:] if anchored else pat)
        if regex is None:
            return _NEVER, None
        # "**/x" also matches a top-level x; "x/***" also the dir x itself.
        lead = b"/" if pat.startswith(b"**") else b""
        dir_suffix = star2 and pat.endswith(b"***")
        if not anchored and not star2:
            # "a/b*" matches the last two components exactly.
            return _PATH_WILD, _tail_matcher(regex, pat.count(b"/") + 1)
        if not anchored and not lead:
            # "a/**/b" may start at the top or after any '/'.
            regex = re.compile(rb"(?<![^/])(?:" + regex.pattern + rb")", re.DOTALL)
            return _PATH_WILD, _path_matcher(regex.search, lead, dir_suffix)
        return _PATH_WILD, _path_matcher(regex.match, lead, dir_suffix)

    def matches(self, path: Name, is_dir: bool) -> bool:
        """Whether this rule's pattern matches ``path`` (relative, '/'-separated)."""
        p = _fsbytes(path)
        if not p or (self.dir_only and not is_dir):
            return False
        return _test(self._kind, self._arg, p, p[p.rfind(b"/") + 1 :], is_dir)

    def __str__(self) -> str:
        return ("+ " if self.include else "- ") + self.pattern

    def __repr__(self) -> str:
        return f"FilterRule({self.pattern!r}, include={self.include})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FilterRule):
            return NotImplemented
        return (self.pattern, self.include) == (other.pattern, other.include)

    def __hash__(self) -> int:
        return hash((self.pattern, self.include))


def _test(kind: int, arg: Any, path: bytes, base: bytes, is_dir: bool) -> bool:
    if kind == _BASE_EQ:
        return base == arg
    if kind == _BASE_SUFFIX:
        return base.endswith(arg)
    if kind == _BASE_PREFIX:
        return base.startswith(arg)
    if kind == _BASE_WILD:
        return arg(base) is not None
    if kind == _PATH_EQ:
        return path == arg
    if kind == _PATH_TAIL:
        return path == arg[0] or path.endswith(arg[1])
    if kind == _PATH_WILD:
        return arg(path, is_dir)
    return False


class FilterRules:
    """An ordered rule list; the first rule that matches a name decides.

    A name that matches no rule is included.  ``excluded()`` judges one name;
    the walker must prune excluded directories, so nothing below one can be
    re-included.
    """

    __slots__ = ("_compiled", "rules", "warnings")

    def __init__(self, rules: Iterable[FilterRule] = (), warnings: Iterable[str] = ()) -> None:
        self.rules: tuple[FilterRule, ...] = tuple(rules)
        # Messages rsync prints to stderr for this list while going on (exit 0).
        self.warnings: tuple[str, ...] = tuple(warnings)
        self._compiled = tuple((r._kind, r._arg, r.dir_only, r.include) for r in self.rules)

    @classmethod
    def from_excludes(cls, patterns: Sequence[Name]) -> FilterRules:
        """Rules from repeated ``--exclude=ARG`` options, in order.

        ``- X`` excludes X and ``+ X`` includes X (exactly one space; a
        second one belongs to the pattern); ``!`` alone clears the rules so
        far; ``""`` is ignored.  ``- `` or ``+ `` with nothing after it
        raises ``ValueError`` with rsync's message.
        """
        if isinstance(patterns, (str, bytes)):
            raise TypeError("from_excludes() takes a sequence of patterns, not one string")
        rules: list[FilterRule] = []
        warnings: list[str] = []
        for arg in patterns:
            raw = _fsbytes(arg)
            if not raw:
                continue
            if raw == b"!":
                rules.clear()
                continue
            include = raw.startswith(b"+ ")
            pattern = raw[2:] if include or raw.startswith(b"- ") else raw
            if not pattern:
                raise ValueError(f"unexpected end of filter rule: {os.fsdecode(raw)}")
            if len(pattern) >= MAX_PATTERN_LEN:
                warnings.append(f"discarding over-long filter: {os.fsdecode(pattern)}")
                continue
            rules.append(FilterRule(pattern, include))
        return cls(rules, warnings)

    def excluded(self, path: Name, is_dir: bool) -> bool:
        """Whether ``path`` is excluded.

        ``path`` is relative to the transfer root, '/'-separated, without a
        leading slash (``src/a`` for ``rsync src dst``, ``a`` for ``src/``).
        ``is_dir`` comes from lstat: a symlink to a dir is not a dir.  The
        root itself (``""`` or ``"."``) is never excluded.
        """
        if not self._compiled:
            return False
        p = path if isinstance(path, bytes) else _fsbytes(path)
        if not p or p == b".":
            return False
        base = p[p.rfind(b"/") + 1 :]
        # Inlined dispatch: this loop is the hot path of a tree walk.
        for kind, arg, dir_only, include in self._compiled:
            if dir_only and not is_dir:
                continue
            if kind == _BASE_EQ:
                hit = base == arg
            elif kind == _BASE_SUFFIX:
                hit = base.endswith(arg)
            elif kind == _BASE_PREFIX:
                hit = base.startswith(arg)
            else:
                hit = _test(kind, arg, p, base, is_dir)
            if hit:
                return not include
        return False

    def __iter__(self) -> Iterator[FilterRule]:
        return iter(self.rules)

    def __len__(self) -> int:
        return len(self.rules)

    def __bool__(self) -> bool:
        return bool(self.rules)

    def __repr__(self) -> str:
        return f"FilterRules({list(self.rules)!r})"
