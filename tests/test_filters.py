"""Tests for syncengine.treesync.filters: wildmatch and --exclude rule lists.

No rsync needed here (see test_filters_rsync.py for the differential test).
Three oracles:
- rsync's own wildmatch table (shared/conformance/wildtest.txt);
- the spec's §2 example table, for both SRC=src/ and SRC=src;
- a step-by-step model of rsync's matcher (``Reference`` below), which the
  compiled matcher must agree with on random patterns and names.
"""

from __future__ import annotations

import os
import string
import time
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syncengine.treesync.filters import MAX_PATTERN_LEN, FilterRule, FilterRules, wildmatch

WILDTEST = Path(__file__).resolve().parents[2] / "shared/conformance/wildtest.txt"


# ---------------------------------------------------------------------------
# rsync's wildtest.txt


def _wildtest_fields(line: bytes) -> tuple[bytes, bytes, bytes, bytes]:
    """Split one wildtest.txt line as wildtest.c does.

    Two 0/1 flags, then text and pattern, separated by spaces or tabs; a
    string may be quoted with ', " or `.
    """
    fields: list[bytes] = []
    i = 0
    while len(fields) < 4:
        while line[i : i + 1] in (b" ", b"\t"):
            i += 1
        if len(fields) >= 2 and line[i : i + 1] in (b"'", b'"', b"`"):
            end = line.index(line[i : i + 1], i + 1)
            fields.append(line[i + 1 : end])
            i = end + 1
        else:
            end = i
            while end < len(line) and line[end] not in b" \t":
                end += 1
            fields.append(line[i:end])
            i = end
    flag, fnmatch_flag, text, pattern = fields
    return flag, fnmatch_flag, text, pattern


def _wildtest_cases() -> list[tuple[int, bool, bytes, bytes]]:
    """(line number, expected, text, pattern); bytes, as a line may not be UTF-8."""
    cases = []
    for lineno, line in enumerate(WILDTEST.read_bytes().split(b"\n"), 1):
        if not line or line.startswith(b"#"):
            continue
        flag, _, text, pattern = _wildtest_fields(line)
        assert flag in (b"0", b"1"), lineno
        cases.append((lineno, flag == b"1", text, pattern))
    return cases


@pytest.mark.skipif(not WILDTEST.exists(), reason=f"{WILDTEST} is absent")
def test_wildtest_table() -> None:
    cases = _wildtest_cases()
    assert len(cases) > 100
    failures = [
        (lineno, text, pattern, expected)
        for lineno, expected, text, pattern in cases
        if wildmatch(os.fsdecode(pattern), os.fsdecode(text)) != expected
    ]
    assert failures == []


@pytest.mark.skipif(not WILDTEST.exists(), reason=f"{WILDTEST} is absent")
def test_wildtest_table_bytes_and_reference() -> None:
    for lineno, expected, text, pattern in _wildtest_cases():
        assert wildmatch(pattern, text) == expected, lineno
        assert Reference.wildmatch(pattern, text) == expected, lineno


@pytest.mark.parametrize(
    ("pattern", "text", "expected"),
    [
        ("f?o", "f/o", False),
        ("f[/]o", "f/o", False),
        ("f[!x]o", "f/o", False),
        ("a*", "a/b", False),
        ("a**", "a/b", True),
        ("a***", "a/b", True),
        ("*.[ch]", "x.c", True),
        ("[[:alpha:]]", "é", False),  # two bytes, and not ASCII
        ("??", "é", True),
        ("?", os.fsdecode(b"\xff"), True),
        ("[\xff]", os.fsdecode(b"\xc3\xbf"), False),
        ("[z-a]", "a", False),
        ("[a-", "a", False),
        ("a\\", "a\\", False),
        ("[[:nope:]]*", "x", False),
        ("", "", True),
    ],
)
def test_wildmatch_fine_points(pattern: str, text: str, expected: bool) -> None:
    assert wildmatch(pattern, text) == expected


def test_wildmatch_is_not_exponential() -> None:
    text = "a" * 4000
    start = time.perf_counter()
    assert not wildmatch("*a" * 12 + "b", text)
    assert not wildmatch("**a" * 12 + "b", text)
    assert not wildmatch("**a*a**a*a**b*", text)
    assert wildmatch("*a" * 12, text)
    assert not FilterRule("a/**a*a*b").matches("a/" * 2000 + "a", False)
    assert not FilterRule("x*/**/a*a*a*b").matches("xa/" * 1300 + "a", False)
    assert time.perf_counter() - start < 2


# ---------------------------------------------------------------------------
# Parsing --exclude arguments


def _listed(rules: FilterRules) -> list[str]:
    return [str(rule) for rule in rules]


def test_prefixes_need_exactly_one_space() -> None:
    rules = FilterRules.from_excludes(["- a", "+ b", "-c", "+d", "-  e", "+  f", "x"])
    assert _listed(rules) == ["- a", "+ b", "- -c", "- +d", "-  e", "+  f", "- x"]


def test_lone_bang_clears_and_bang_names_are_literal() -> None:
    rules = FilterRules.from_excludes(["a", "+ b", "!", "!x", "- !", "! ", "c"])
    assert _listed(rules) == ["- !x", "- !", "- ! ", "- c"]
    assert not FilterRules.from_excludes(["a", "!"])


def test_empty_argument_is_ignored() -> None:
    assert _listed(FilterRules.from_excludes(["", "a", ""])) == ["- a"]


@pytest.mark.parametrize("arg", ["- ", "+ "])
def test_prefix_without_pattern_is_an_error(arg: str) -> None:
    with pytest.raises(ValueError) as info:
        FilterRules.from_excludes(["a", arg, "b"])
    assert str(info.value) == f"unexpected end of filter rule: {arg}"


def test_over_long_pattern_is_dropped_with_rsyncs_message() -> None:
    long = "a" * MAX_PATTERN_LEN
    rules = FilterRules.from_excludes([long, "b", "- " + "c" * (MAX_PATTERN_LEN - 1)])
    assert _listed(rules) == ["- b", "- " + "c" * (MAX_PATTERN_LEN - 1)]
    assert rules.warnings == (f"discarding over-long filter: {long}",)


def test_trailing_spaces_count() -> None:
    rules = FilterRules.from_excludes(["foo "])
    assert rules.excluded("foo ", False)
    assert not rules.excluded("foo", False)


def test_first_match_wins() -> None:
    assert not FilterRules.from_excludes(["+ foo", "foo"]).excluded("foo", False)
    assert FilterRules.from_excludes(["foo", "+foo"]).excluded("foo", False)
    assert FilterRules.from_excludes(["+ *.c", "*"]).excluded("a.o", False)
    assert not FilterRules.from_excludes(["+ *.c", "*"]).excluded("a.c", False)
    assert not FilterRules.from_excludes(["+ a"]).excluded("b", False)


def test_root_is_never_excluded() -> None:
    rules = FilterRules.from_excludes(["*", ".", "/**"])
    assert not rules.excluded(".", True)
    assert not rules.excluded("", True)


def test_dir_only_rules_skip_non_dirs() -> None:
    rules = FilterRules.from_excludes(["d/", "+ x/***/", "x/***"])
    assert rules.excluded("a/d", True)
    assert not rules.excluded("a/d", False)
    assert not rules.excluded("x", True)  # "+ x/***/" comes first
    assert not rules.excluded("x", False)  # "x/***" needs a dir to match "x"
    assert rules.excluded("x/f", False)


def test_lone_slash_patterns_match_nothing() -> None:
    rules = FilterRules.from_excludes(["/", "//"])
    assert not rules.excluded("a", True)
    assert not rules.excluded("a/b", False)


def test_undecodable_names_never_raise() -> None:
    name = os.fsdecode(b"caf\xe9/\xff\xfe.o")
    rules = FilterRules.from_excludes([os.fsdecode(b"*\xfe.o"), "[[:alpha:]]", "?"])
    assert rules.excluded(name, False)
    assert rules.excluded(os.fsencode(name), False)
    assert not FilterRules.from_excludes(["[[:alpha:]]"]).excluded(os.fsdecode(b"\xe9"), False)
    assert FilterRules.from_excludes(["?"]).excluded(os.fsdecode(b"\xe9"), False)
    assert not FilterRules.from_excludes(["?"]).excluded("é", False)  # two bytes
    # A surrogate os.fsdecode never produces still does not raise.
    assert not rules.excluded("\ud800x", False)
    assert FilterRules.from_excludes(["\ud800*"]).excluded("\ud800x", False)


def test_rule_objects() -> None:
    rule = FilterRule("cache/", include=True)
    assert (rule.pattern, rule.include, rule.dir_only) == ("cache/", True, True)
    assert rule.matches("a/cache", True) and not rule.matches("a/cache", False)
    assert rule == FilterRule("cache/", True) and rule != FilterRule("cache/")
    assert str(rule) == "+ cache/" and "cache/" in repr(FilterRules([rule]))
    with pytest.raises(ValueError):
        FilterRule("")


# ---------------------------------------------------------------------------
# The spec's §2 example table

SPEC_DIRS = ["bar", "bar/baz", "bar/baz/foo", "sub", "deep", "deep/x", "deep/x/y", "cache",
             "cache/sub", "other", "other/cache", "src"]  # fmt: skip
SPEC_FILES = ["foo", "a.o", "f*o", "f\\o", "fxo", "foo ", ".hidden", "!", "!x", "+ foo", "-foo",
              "bar/foo", "bar/baz/foo/x", "sub/a.o", "sub/foo", "deep/x/y/z.txt", "cache/file",
              "cache/sub/f", "other/cache/f", "src/f"]  # fmt: skip


def spec_tree(top: str) -> dict[str, bool]:
    """name -> is_dir, as the transfer sees it (``top`` is "" or "src/")."""
    tree = {top + name: True for name in SPEC_DIRS}
    tree.update({top + name: False for name in SPEC_FILES})
    if top:
        tree[top.rstrip("/")] = True
    return tree


def excluded_tops(rules: FilterRules, tree: dict[str, bool]) -> set[str]:
    """Walk ``tree`` top-down with pruning; return the names that were excluded."""
    excluded: set[str] = set()
    for name in sorted(tree, key=lambda n: n.count("/")):
        if not any(name.startswith(top + "/") for top in excluded) and rules.excluded(
            name, tree[name]
        ):
            excluded.add(name)
    return excluded


ALL_FOOS = {"foo", "bar/foo", "sub/foo", "bar/baz/foo"}
SRC_TOP = {"src/" + n for n in [*SPEC_FILES, *SPEC_DIRS] if "/" not in n}

# pattern, excluded with SRC=src/, excluded with SRC=src (names start "src/")
SPEC_TABLE: list[tuple[str, set[str], set[str]]] = [
    ("foo", ALL_FOOS, {"src/" + n for n in ALL_FOOS}),
    ("/foo", {"foo"}, set()),
    ("foo/", {"bar/baz/foo"}, {"src/bar/baz/foo"}),
    ("/foo/", set(), set()),
    ("baz/foo", {"bar/baz/foo"}, {"src/bar/baz/foo"}),
    ("b*/foo", {"bar/foo", "bar/baz/foo"}, {"src/bar/foo", "src/bar/baz/foo"}),
    ("/*/foo", {"bar/foo", "sub/foo"}, {"src/foo"}),
    ("*/f", {"cache/sub/f", "other/cache/f", "src/f"},
     {"src/cache/sub/f", "src/other/cache/f", "src/src/f"}),
    ("/*.o", {"a.o"}, set()),
    ("f\\*o", {"f*o"}, {"src/f*o"}),
    ("f\\o", {"f\\o"}, {"src/f\\o"}),
    ("f\\\\o", set(), set()),
    ("f\\o*", ALL_FOOS | {"foo "}, {"src/" + n for n in ALL_FOOS | {"foo "}}),
    ("[[:punct:]]*", {"!", "!x", "+ foo", "-foo", ".hidden"},
     {"src/!", "src/!x", "src/+ foo", "src/-foo", "src/.hidden"}),
    ("deep/**/z.txt", {"deep/x/y/z.txt"}, {"src/deep/x/y/z.txt"}),
    ("deep/**/x", set(), set()),
    ("x/**", {"deep/x/y"}, {"src/deep/x/y"}),
    ("/x/**", set(), set()),
    ("cache/***", {"cache", "other/cache"}, {"src/cache", "src/other/cache"}),
    ("cache/**", {"cache/file", "cache/sub", "other/cache/f"},
     {"src/cache/file", "src/cache/sub", "src/other/cache/f"}),
    ("cache/*", {"cache/file", "cache/sub", "other/cache/f"},
     {"src/cache/file", "src/cache/sub", "src/other/cache/f"}),
    ("/cache/*", {"cache/file", "cache/sub"}, set()),
    ("/**/foo", ALL_FOOS - {"foo"}, {"src/" + n for n in ALL_FOOS}),
    ("**/foo", ALL_FOOS, {"src/" + n for n in ALL_FOOS}),
    ("?", {"!", "deep/x", "cache/sub/f", "other/cache/f", "src/f", "bar/baz/foo/x"},
     {"src/!", "src/deep/x", "src/cache/sub/f", "src/other/cache/f", "src/src/f",
      "src/bar/baz/foo/x"}),
    # §1: the top dir of a SRC=src transfer is itself filtered.
    ("src", {"src"}, {"src"}),
    ("src/", {"src"}, {"src"}),
    ("/src", {"src"}, {"src"}),
    ("*", {n for n in [*SPEC_FILES, *SPEC_DIRS] if "/" not in n}, {"src"}),
    ("src/***", {"src"}, {"src"}),
    ("/src/**", {"src/f"}, SRC_TOP),
    ("src/foo", set(), {"src/foo"}),
    ("/src/foo", set(), {"src/foo"}),
    ("/bar/foo", {"bar/foo"}, set()),
    ("/src/bar/foo", set(), {"src/bar/foo"}),
]  # fmt: skip


@pytest.mark.parametrize(("pattern", "with_slash", "without_slash"), SPEC_TABLE)
def test_spec_table(pattern: str, with_slash: set[str], without_slash: set[str]) -> None:
    rules = FilterRules.from_excludes([pattern])
    assert excluded_tops(rules, spec_tree("")) == with_slash
    assert excluded_tops(rules, spec_tree("src/")) == without_slash


@pytest.mark.parametrize(
    ("rules", "kept"),
    [
        (["- dir/", "+ dir/file"], {"top"}),
        (["+ dir/", "+ dir/file", "- *"], {"dir", "dir/file"}),
    ],
)
def test_excluded_dir_cannot_be_reincluded(rules: list[str], kept: set[str]) -> None:
    tree = {"dir": True, "dir/file": False, "dir/other": False, "top": False}
    excluded = excluded_tops(FilterRules.from_excludes(rules), dict(tree))
    survivors = {n for n in tree if not any(n == e or n.startswith(e + "/") for e in excluded)}
    assert survivors == kept


# ---------------------------------------------------------------------------
# A step-by-step model of rsync's matcher, abort codes and all.  It is slow
# and literal on purpose: the compiled matcher must give the same answers.


class Reference:
    TRUE, FALSE, ABORT_ALL, ABORT_TO_STARSTAR = 1, 0, -1, -2
    CLASSES: ClassVar[dict[bytes, Callable[[int], bool]]] = {
        b"alnum": lambda c: bytes([c]).isalnum(),
        b"alpha": lambda c: bytes([c]).isalpha(),
        b"blank": lambda c: c in b" \t",
        b"cntrl": lambda c: c < 32 or c == 127,
        b"digit": lambda c: bytes([c]).isdigit(),
        b"graph": lambda c: 33 <= c <= 126,
        b"lower": lambda c: bytes([c]).islower(),
        b"print": lambda c: 32 <= c <= 126,
        b"punct": lambda c: c < 128 and chr(c) in string.punctuation,
        b"space": lambda c: c in b" \t\n\r\x0b\x0c",
        b"upper": lambda c: bytes([c]).isupper(),
        b"xdigit": lambda c: c < 128 and chr(c) in string.hexdigits,
    }

    @classmethod
    def dowild(cls, p: bytes, t: bytes) -> int:
        def pat(k: int) -> int:
            return p[k] if k < len(p) else 0

        pi = ti = 0
        while pi < len(p):
            pc = p[pi]
            if ti >= len(t) and pc != ord("*"):
                return cls.ABORT_ALL
            tc = t[ti] if ti < len(t) else 0
            if pc == ord("?"):
                if tc == ord("/"):
                    return cls.FALSE
            elif pc == ord("*"):
                special = pat(pi + 1) == ord("*")
                while pat(pi) == ord("*"):
                    pi += 1
                if pi == len(p):
                    return cls.TRUE if special or b"/" not in t[ti:] else cls.FALSE
                for k in range(ti, len(t)):
                    matched = cls.dowild(p[pi:], t[k:])
                    if matched != cls.FALSE:
                        if not special or matched != cls.ABORT_TO_STARSTAR:
                            return matched
                    elif not special and t[k] == ord("/"):
                        return cls.ABORT_TO_STARSTAR
                return cls.ABORT_ALL
            elif pc == ord("["):
                pi += 1
                negated = pat(pi) in b"!^"
                if negated:
                    pi += 1
                pc, prev, matched = pat(pi), 0, False
                while True:
                    if not pc:
                        return cls.ABORT_ALL
                    if pc == ord("\\"):
                        pi += 1
                        pc = pat(pi)
                        if not pc:
                            return cls.ABORT_ALL
                        matched |= tc == pc
                    elif pc == ord("-") and prev and pat(pi + 1) and pat(pi + 1) != ord("]"):
                        pi += 1
                        pc = pat(pi)
                        if pc == ord("\\"):
                            pi += 1
                            pc = pat(pi)
                            if not pc:
                                return cls.ABORT_ALL
                        matched |= prev <= tc <= pc
                        pc = 0
                    elif pc == ord("[") and pat(pi + 1) == ord(":"):
                        start = pi = pi + 2
                        while pat(pi) and pat(pi) != ord("]"):
                            pi += 1
                        if not pat(pi):
                            return cls.ABORT_ALL
                        if pi - start - 1 < 0 or p[pi - 1] != ord(":"):
                            pi = start - 2
                            matched |= tc == pc
                        else:
                            test = cls.CLASSES.get(p[start : pi - 1])
                            if test is None:
                                return cls.ABORT_ALL
                            matched |= test(tc)
                            pc = 0
                    else:
                        matched |= tc == pc
                    prev = pc
                    pi += 1
                    pc = pat(pi)
                    if pc == ord("]"):
                        break
                if matched == negated or tc == ord("/"):
                    return cls.FALSE
            else:
                if pc == ord("\\"):
                    pi += 1
                    pc = pat(pi)
                if tc != pc:
                    return cls.FALSE
            pi += 1
            ti += 1
        return cls.TRUE if ti >= len(t) else cls.FALSE

    @classmethod
    def wildmatch(cls, p: bytes, t: bytes) -> bool:
        return cls.dowild(p, t) == cls.TRUE

    @classmethod
    def match_at_slashes(cls, p: bytes, t: bytes) -> bool:
        """wildmatch_array(where < 0): at the start, or after any '/'."""
        matched = cls.dowild(p, t)
        if matched not in (cls.TRUE, cls.ABORT_ALL):
            for k, c in enumerate(t):
                if c == ord("/"):
                    matched = cls.dowild(p, t[k + 1 :])
                    if matched not in (cls.FALSE, cls.ABORT_TO_STARSTAR):
                        break
        return matched == cls.TRUE

    @classmethod
    def rule_matches(cls, pattern: bytes, name: bytes, is_dir: bool) -> bool:
        """add_rule() + rule_matches() for a plain --exclude pattern."""
        dir_only = len(pattern) > 1 and pattern.endswith(b"/")
        if dir_only:
            pattern = pattern[:-1]
        slashes = pattern.count(b"/")
        wild = any(c in pattern for c in b"*?[")
        wild2 = wild and b"**" in pattern
        wild2_prefix = wild2 and pattern.startswith(b"**")
        wild3_suffix = wild2 and pattern.endswith(b"***")
        if not name:
            return False
        if not slashes and not wild2:
            name = name.rpartition(b"/")[2]
        text = (b"/" if wild2_prefix else b"") + name
        if is_dir:
            if wild3_suffix:
                text += b"/"
        elif dir_only:
            return False
        anchored = pattern.startswith(b"/")
        if anchored:
            pattern = pattern[1:]
        if not anchored and slashes and not wild2:
            parts = text.split(b"/")
            if len(parts) < slashes + 1:
                return False
            text = b"/".join(parts[-(slashes + 1) :])
            return cls.wildmatch(pattern, text) if wild else text == pattern
        if not anchored and not wild2_prefix and wild2:
            return cls.match_at_slashes(pattern, text)
        return cls.wildmatch(pattern, text) if wild else text == pattern


# Small alphabets that hit every branch of the matcher.
PATTERN_PIECES = ["a", "b", "/", "*", "**", "***", "?", "[", "]", "!", "^", "-", "\\", ":",
                  "[:alpha:]", "[:digit:]", "[:bogus:]", "[!", "[a-", "-]", "\xe9"]  # fmt: skip
TEXT_PIECES = ["a", "b", "/", "-", "]", "[", "\\", "!", ":", "1", "*", "\xe9", "\xff"]

patterns = st.lists(st.sampled_from(PATTERN_PIECES), max_size=8).map(
    lambda xs: "".join(xs).encode("latin-1")
)
texts = st.lists(st.sampled_from(TEXT_PIECES), max_size=10).map(
    lambda xs: "".join(xs).encode("latin-1")
)
names = st.lists(
    st.sampled_from(["a", "b", "ab", "-", "*", "[", "\\", "\xe9"]), min_size=1, max_size=4
).map(lambda parts: "/".join(parts).encode("latin-1"))


@pytest.mark.slow
@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(patterns, texts)
def test_wildmatch_agrees_with_reference(pattern: bytes, text: bytes) -> None:
    assert wildmatch(pattern, text) == Reference.wildmatch(pattern, text)


@pytest.mark.slow
@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(patterns.filter(bool), names, st.booleans())
def test_rules_agree_with_reference(pattern: bytes, name: bytes, is_dir: bool) -> None:
    expected = Reference.rule_matches(pattern, name, is_dir)
    assert FilterRule(pattern).matches(name, is_dir) == expected
    assert FilterRules([FilterRule(pattern)]).excluded(name, is_dir) == expected
    assert FilterRules([FilterRule(pattern)]).excluded(os.fsdecode(name), is_dir) == expected
