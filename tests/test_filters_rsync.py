"""Differential tests: our --exclude rules against the real rsync.

For random trees (nasty names included) and random rule lists, the names
rsync would send (``rsync -r --dry-run --out-format=%n --exclude=… SRC
DEST``) must be the names our rules let through a top-down walk that
prunes excluded directories, for both SRC=src/ and SRC=src.  Lists rsync
refuses must raise ValueError with rsync's message.

Skipped without rsync on PATH, unless SYNCENGINE_REQUIRE_RSYNC=1 (then they
fail).  SYNCENGINE_FILTER_EXAMPLES sets the number of random examples.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from syncengine.treesync.filters import MAX_PATTERN_LEN, FilterRules
from tests.reference import reference_rsync

from .test_filters import SPEC_DIRS, SPEC_FILES, SPEC_TABLE

pytestmark = pytest.mark.rsync

RSYNC_TIMEOUT = 30  # seconds, per run
EXAMPLES = int(os.environ.get("SYNCENGINE_FILTER_EXAMPLES", 500))

# A tree is {name: None for an empty file, or a subtree for a dir}.
Tree = dict[bytes, "Tree | None"]


@pytest.fixture(scope="module")
def rsync() -> str:
    return reference_rsync()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("filters-rsync")


# ---------------------------------------------------------------------------
# Running rsync and reading its list

# With -8 rsync prints bytes >= 0x80 as they are, but still writes control
# bytes, and a backslash that starts "\#ddd", as "\#ooo" (octal).
_ESCAPE = re.compile(rb"\\#([0-7]{3})")


def _unescape(line: bytes) -> bytes:
    return _ESCAPE.sub(lambda m: bytes([int(m.group(1), 8)]), line)


def start_rsync(
    rsync: str, cwd: Path, src: bytes, excludes: list[bytes]
) -> subprocess.Popen[bytes]:
    """Start rsync's dry run of ``SRC`` with these ``--exclude`` arguments."""
    argv = [os.fsencode(rsync), b"-r", b"-8", b"--dry-run", b"--out-format=%n"]
    argv += [b"--exclude=" + rule for rule in excludes]
    argv += [src, b"dest-never-created/"]
    return subprocess.Popen(
        argv,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "LC_ALL": "C"},
        start_new_session=True,  # so a hung run's helpers can all be killed
    )


def finish_rsync(proc: subprocess.Popen[bytes]) -> tuple[int, set[bytes], bytes]:
    """Wait for rsync; return (exit code, names sent with dirs as b"x/", stderr).

    The root "./" of a SRC=src/ transfer is left out: it is never filtered.
    """
    try:
        out, err = proc.communicate(timeout=RSYNC_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    sent = {_unescape(line) for line in out.split(b"\n") if line and line != b"./"}
    return proc.returncode, sent, err


def run_rsync(
    rsync: str, cwd: Path, src: bytes, excludes: list[bytes]
) -> tuple[int, set[bytes], bytes]:
    return finish_rsync(start_rsync(rsync, cwd, src, excludes))


def our_sent(rules: FilterRules, tree: Tree, src: bytes) -> set[bytes]:
    """The names a top-down walk lets through, pruning excluded dirs."""
    sent: set[bytes] = set()

    def visit(prefix: bytes, children: Tree) -> None:
        for name, sub in children.items():
            path = prefix + name
            is_dir = sub is not None
            if rules.excluded(os.fsdecode(path), is_dir):  # str, as os.listdir gives
                continue
            sent.add(path + b"/" if is_dir else path)
            if sub is not None:
                visit(path + b"/", sub)

    visit(b"", {b"src": tree} if src == b"src" else tree)
    return sent


def build_tree(root: Path, tree: Tree) -> None:
    if os.path.lexists(root):
        shutil.rmtree(root)
    os.mkdir(root)

    def make(dir_path: bytes, children: Tree) -> None:
        for name, sub in children.items():
            path = os.path.join(dir_path, name)
            if sub is None:
                with open(path, "wb"):
                    pass
            else:
                os.mkdir(path)
                make(path, sub)

    make(os.fsencode(root), tree)


def check_against_rsync(rsync: str, workdir: Path, tree: Tree, excludes: list[bytes]) -> None:
    build_tree(workdir / "src", tree)
    try:
        rules = FilterRules.from_excludes([os.fsdecode(rule) for rule in excludes])
    except ValueError as error:
        code, sent, err = run_rsync(rsync, workdir, b"src/", excludes)
        assert code == 1, (excludes, err)
        assert err.split(b"\n")[0] == os.fsencode(str(error))
        return
    # Both forms at once: the machine has two cores.
    runs = {src: start_rsync(rsync, workdir, src, excludes) for src in (b"src/", b"src")}
    try:
        for src, proc in runs.items():
            code, sent, err = finish_rsync(proc)
            assert (code, err) == (0, b""), (src, excludes)
            assert our_sent(rules, tree, src) == sent, (src, excludes)
    finally:
        for proc in runs.values():
            if proc.poll() is None:  # left behind by a failure above
                os.killpg(proc.pid, signal.SIGKILL)
                proc.communicate()


# ---------------------------------------------------------------------------
# Random trees and rule lists

NAMES = [
    b"a", b"b", b"foo", b"src", b"x.o", b".hid", b"f*o", b"*", b"?", b"[", b"[ab]", b"]",
    b"\\", b"f\\o", b"a b", b"-x", b"+ x", b"- x", b"!", b"!x", b"x ", b" x", b"\xff",
    b"caf\xe9", b"\xc3\xa9", b"n\nl", b"\\#123", b"**", b"A1",
]  # fmt: skip

trees: st.SearchStrategy[Tree] = st.dictionaries(
    st.sampled_from(NAMES),
    st.recursive(
        st.none(),
        lambda children: st.dictionaries(st.sampled_from(NAMES), children, max_size=4),
        max_leaves=10,
    ),
    min_size=1,
    max_size=5,
)

# Wildcard forms for one path component of a pattern.
WILD_PIECES = [
    b"*", b"**", b"***", b"?", b"??", b"*.o", b"f*", b"*o*", b"f?o", b"[a-c]", b"[!a]*",
    b"[^-]", b"[]a]", b"[[:alpha:]]*", b"[[:punct:]]", b"[[:space:]]*", b"[[:bogus:]]",
    b"[\\]]", b"[*?]", b"\\*", b"\\\\", b"\\", b"[", b"[a-", b"*[", b"\\#*",
    b"[\x80-\xff]*", b"?\xa9",
]  # fmt: skip


def _escape_wild(name: bytes) -> bytes:
    return re.sub(rb"([*?\[\\])", rb"\\\1", name)


def _paths(tree: Tree, prefix: tuple[bytes, ...] = ()) -> Iterator[tuple[bytes, ...]]:
    for name, sub in tree.items():
        yield (*prefix, name)
        if sub is not None:
            yield from _paths(sub, (*prefix, name))


@st.composite
def components(draw: st.DrawFn, name: bytes) -> bytes:
    """A pattern component meant for ``name``: as is (its own wildcards
    live), escaped, or a wildcard form that may or may not fit it."""
    form = draw(st.integers(0, 6))
    if form == 0:
        return name
    if form == 1:
        return _escape_wild(name)
    if form == 2:
        return b"?" * len(name)
    if form == 3:
        return name[:1] + b"*"
    if form == 4:
        return b"*" + name[-1:]
    return draw(st.sampled_from(WILD_PIECES))


@st.composite
def rules(draw: st.DrawFn, paths: list[tuple[bytes, ...]]) -> bytes:
    """One --exclude argument; most aim at a path of the tree."""
    form = draw(st.integers(0, 39))
    if form == 0:
        return b"!"
    if form == 1:
        return b""
    if form == 2:
        return draw(st.sampled_from([b"- ", b"+ "]))  # rsync refuses these
    prefix = draw(st.sampled_from([b"", b"", b"- ", b"+ ", b"+ "]))
    path = draw(st.sampled_from(paths))
    if draw(st.booleans()):
        path = (b"src", *path)  # names as a SRC=src transfer sees them
    # Up to three consecutive components, from the top, the middle or the end.
    start = draw(st.integers(0, len(path) - 1))
    path = path[start : draw(st.integers(start + 1, min(len(path), start + 3)))]
    anchor = draw(st.sampled_from([b"", b"", b"/", b"**/", b"/**/"]))
    body = draw(components(path[0]))
    for name in path[1:]:
        body += draw(st.sampled_from([b"/", b"/", b"/", b"/**/", b"**"])) + draw(components(name))
    suffix = draw(st.sampled_from([b"", b"", b"", b"/", b"/***", b"/**", b"/*", b"/***/"]))
    return prefix + anchor + body + suffix


@st.composite
def cases(draw: st.DrawFn) -> tuple[Tree, list[bytes]]:
    tree = draw(trees)
    paths = [*_paths(tree), *[(name,) for name in NAMES]]
    return tree, draw(st.lists(rules(paths), min_size=1, max_size=4))


@pytest.mark.slow
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(case=cases())
@example(case=({b"src": {b"f": None}, b"foo": None}, [b"/src/**"]))
@example(case=({b"d": {b"file": None, b"x": None}}, [b"+ d/", b"+ d/file", b"- *"]))
@example(case=({b"a": None, b"a b": None}, [b"a", b"!", b"+ a", b"-  b", b"- "]))
@example(case=({b"\xff": {b"caf\xe9": None}}, [b"[[:alpha:]]*", b"?", b"\xff/\\caf*"]))
def test_rules_agree_with_rsync(rsync: str, workdir: Path, case: tuple[Tree, list[bytes]]) -> None:
    check_against_rsync(rsync, workdir, *case)


# ---------------------------------------------------------------------------
# Fixed cases


def _spec_tree() -> Tree:
    tree: Tree = {}
    for path, is_dir in [(d, True) for d in SPEC_DIRS] + [(f, False) for f in SPEC_FILES]:
        node = tree
        *parents, leaf = path.encode().split(b"/")
        for part in parents:
            node = node[part]  # type: ignore[assignment]
        node[leaf] = {} if is_dir else None
    return tree


def _all_names(tree: Tree, prefix: bytes = b"") -> Iterator[bytes]:
    for name, sub in tree.items():
        yield prefix + name + (b"/" if sub is not None else b"")
        if sub is not None:
            yield from _all_names(sub, prefix + name + b"/")


@pytest.mark.parametrize(("pattern", "with_slash", "without_slash"), SPEC_TABLE)
@pytest.mark.sampled(5)
def test_spec_table_against_rsync(
    rsync: str, workdir: Path, pattern: str, with_slash: set[str], without_slash: set[str]
) -> None:
    tree = _spec_tree()
    build_tree(workdir / "src", tree)
    rules = FilterRules.from_excludes([pattern])
    for src, excluded in ((b"src/", with_slash), (b"src", without_slash)):
        code, sent, err = run_rsync(rsync, workdir, src, [pattern.encode()])
        assert (code, err) == (0, b"")
        # rsync sends what our walk lets through, which is what the table leaves.
        assert our_sent(rules, tree, src) == sent
        tops = {name.encode() for name in excluded}
        everything = _all_names({b"src": tree} if src == b"src" else tree)
        assert sent == {
            name
            for name in everything
            if not any(name.rstrip(b"/") == top or name.startswith(top + b"/") for top in tops)
        }


@pytest.mark.parametrize("arg", [b"- ", b"+ "])
def test_refused_rule_matches_rsyncs_message(rsync: str, workdir: Path, arg: bytes) -> None:
    build_tree(workdir / "src", {b"a": None})
    code, _, err = run_rsync(rsync, workdir, b"src/", [b"a", arg])
    assert code == 1
    with pytest.raises(ValueError) as info:
        FilterRules.from_excludes(["a", os.fsdecode(arg)])
    assert err.split(b"\n")[0] == os.fsencode(str(info.value))


def test_over_long_rule_is_dropped_like_rsync(rsync: str, workdir: Path) -> None:
    tree: Tree = {b"a": None, b"b": None}
    long = b"a" * MAX_PATTERN_LEN
    build_tree(workdir / "src", tree)
    code, sent, err = run_rsync(rsync, workdir, b"src/", [long, b"b"])
    rules = FilterRules.from_excludes([os.fsdecode(long), "b"])
    assert (code, sent) == (0, our_sent(rules, tree, b"src/")) == (0, {b"a"})
    assert err.split(b"\n")[0] == os.fsencode(rules.warnings[0])
