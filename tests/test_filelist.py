"""filelist.merge_listings: rsync's clean_flist() rules, from first
principles (tests/equivalence/test_explicit.py checks them against rsync)."""

from __future__ import annotations

import os
import stat

from syncengine.treesync.filelist import merge_listings


def st(kind: int, size: int = 0) -> os.stat_result:
    return os.stat_result((kind | 0o644, 0, 0, 1, 0, 0, size, 0, 0, 0))


FILE, DIR, LINK = stat.S_IFREG, stat.S_IFDIR, stat.S_IFLNK


def test_the_first_entry_of_a_name_wins_and_the_rest_are_dropped():
    first, second = st(FILE, 1), st(FILE, 2)
    merged, dropped = merge_listings([("one", [(b"b", first), (b"a", st(LINK))]),
                                      ("two", [(b"b", second), (b"c", st(FILE))])])
    assert [(m.name, m.layer) for m in merged] == [(b"a", "one"), (b"b", "one"), (b"c", "two")]
    assert merged[1].st is first and not merged[1].more
    assert dropped == [("two", b"b", second)]


def test_a_dir_beats_a_non_dir_in_either_order():
    for kinds, winner in (((FILE, DIR), "two"), ((DIR, LINK), "one")):
        merged, dropped = merge_listings([("one", [(b"x", st(kinds[0]))]),
                                          ("two", [(b"x", st(kinds[1]))])])
        assert merged[0].layer == winner and stat.S_ISDIR(merged[0].st.st_mode)
        assert [layer for layer, *_ in dropped] == [{"one": "two", "two": "one"}[winner]]


def test_dirs_of_one_name_merge_into_the_first():
    dirs = [st(DIR) for _ in range(3)]
    merged, dropped = merge_listings([("one", [(b"d", st(FILE))]), ("two", [(b"d", dirs[0])]),
                                      ("three", [(b"d", dirs[1])]), ("four", [(b"d", dirs[2])])])
    (entry,) = merged
    assert (entry.layer, entry.st) == ("two", dirs[0])
    assert entry.more == [("three", dirs[1]), ("four", dirs[2])]
    assert [layer for layer, *_ in dropped] == ["one", "three", "four"]
