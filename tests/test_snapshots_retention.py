"""Retention: borg prune's rules (borg 1.4's documented semantics), in UTC.

Expected results come from the documented rules, computed here by hand or
from first principles (grouping by calendar period), never from the
implementation under test."""

from __future__ import annotations

import datetime
from collections import defaultdict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syncengine.snapshots import (
    RULES,
    RetentionError,
    RetentionPolicy,
    format_id,
    parse_id,
    plan_retention,
    policy_from_table,
)

UTC = datetime.UTC


def ids_at(*stamps: str) -> list[str]:
    """IDs for "YYYY-MM-DD HH:MM[:SS]" stamps (a suffix for a repeated second)."""
    out: list[str] = []
    for stamp in stamps:
        fmt = "%Y-%m-%d %H:%M:%S" if stamp.count(":") == 2 else "%Y-%m-%d %H:%M"
        when = datetime.datetime.strptime(stamp, fmt).replace(tzinfo=UTC)
        seq = 1
        while format_id(when, seq) in out:
            seq += 1
        out.append(format_id(when, seq))
    return out


def kept(ids, **policy) -> set[str]:
    return {d.id for d in plan_retention(ids, RetentionPolicy(**policy)) if d.keep}


def reasons(ids, **policy) -> dict[str, str | None]:
    return {d.id: d.reason for d in plan_retention(ids, RetentionPolicy(**policy))}


# -- hand-computed examples ------------------------------------------------------------

def test_keep_daily_counts_days_with_snapshots_only():
    # "--keep-daily 7 means to keep the latest backup on each day, up to 7
    # most recent days with backups (days without backups do not count)".
    ids = ids_at("2026-01-01 10:00", "2026-01-01 22:00", "2026-01-03 09:00",
                 "2026-01-07 08:00", "2026-01-07 20:00", "2026-01-08 01:00")
    assert kept(ids, daily=3) == {ids[5], ids[4], ids[2]}
    assert reasons(ids, daily=3)[ids[2]] == "daily #3"


def test_earlier_rules_keep_and_later_rules_do_not_count_them():
    # Daily snapshots at noon, Mon 2026-03-02 .. Sun 2026-03-15 (two ISO weeks).
    days = [f"2026-03-{d:02d} 12:00" for d in range(2, 16)]
    ids = ids_at(*days)
    # daily=3 keeps 15th, 14th, 13th.  weekly=2: the week of the 15th (ISO
    # week 11) has its newest (the 15th) kept already -> passed over, not
    # counted; week 10's newest is the 8th (Sunday) -> weekly #1; no more
    # weeks -> weekly reached 1 of 2 -> the oldest (the 2nd) is kept too.
    r = reasons(ids, daily=3, weekly=2)
    assert {i for i, why in r.items() if why} == {ids[13], ids[12], ids[11], ids[6], ids[0]}
    assert r[ids[6]] == "weekly #1" and r[ids[0]] == "weekly[oldest]"


def test_monthly_and_yearly_take_the_last_snapshot_of_each_period():
    ids = ids_at("2025-11-30 23:59", "2025-12-01 00:00", "2025-12-31 23:59",
                 "2026-01-01 00:00", "2026-01-15 12:00", "2026-02-01 00:00")
    assert kept(ids, monthly=3) == {ids[5], ids[4], ids[2]}
    assert kept(ids, yearly=2) == {ids[5], ids[2]}
    assert kept(ids, yearly=5) == {ids[5], ids[2], ids[0]}  # [oldest]: 2 years < 5


def test_weeks_are_iso_weeks_from_monday_in_utc():
    # Sunday 2026-01-04 23:59 and Monday 2026-01-05 00:00 are different weeks;
    # 2025-12-29 (Monday) is in ISO week 2026-W01 with 2026-01-04.
    ids = ids_at("2025-12-28 12:00", "2025-12-29 00:00", "2026-01-04 23:59", "2026-01-05 00:00")
    assert kept(ids, weekly=2) == {ids[3], ids[2]}
    assert kept(ids, weekly=3) == {ids[3], ids[2], ids[0]}


def test_hourly_and_keep_last():
    ids = ids_at("2026-05-01 10:00", "2026-05-01 10:30", "2026-05-01 11:05",
                 "2026-05-01 11:10", "2026-05-01 11:10:00", "2026-05-01 13:00")
    assert ids[4].endswith("Z-2")
    assert kept(ids, last=2) == {ids[5], ids[4]}  # snapshots, not seconds
    assert kept(ids, hourly=2) == {ids[5], ids[4]}
    assert kept(ids, hourly=3) == {ids[5], ids[4], ids[1]}
    # last=1 keeps 13:00; hourly=2 passes over 13h (covered), keeps 11h's and 10h's.
    assert kept(ids, last=1, hourly=2) == {ids[5], ids[4], ids[1]}


def test_negative_counts_are_refused():
    # borg reads -1 as "no limit" but then skips its [oldest] rule, so that
    # yearly=-1 could keep less than yearly=1: refused here.
    with pytest.raises(RetentionError, match="keep_daily: must be 0 or more, not -1"):
        RetentionPolicy(daily=-1)


def test_one_snapshot_and_none():
    ids = ids_at("2026-01-01 08:00")
    assert reasons(ids, monthly=1) == {ids[0]: "monthly #1"}
    assert plan_retention([], RetentionPolicy(last=1)) == []


def test_decisions_come_oldest_first():
    ids = ids_at("2026-01-03 08:00", "2026-01-01 08:00", "2026-01-02 08:00")
    assert [d.id for d in plan_retention(ids, RetentionPolicy(last=1))] == sorted(ids)


# -- invariants on generated snapshot lists --------------------------------------------

_times = st.lists(
    st.datetimes(min_value=datetime.datetime(2025, 12, 20),
                 max_value=datetime.datetime(2026, 3, 10),
                 timezones=st.just(UTC)),
    min_size=0, max_size=40)
_counts = st.integers(min_value=0, max_value=6)


@st.composite
def snapshot_ids(draw, clustered: bool = True):
    times = draw(_times)
    if clustered and times:  # many in one hour / second, as real runs are
        extra = draw(st.lists(st.sampled_from(times), max_size=10))
        times = times + [t + datetime.timedelta(seconds=draw(st.integers(0, 90))) for t in extra]
    out: list[str] = []
    for when in times:
        seq = 1
        while format_id(when, seq) in out:
            seq += 1
        out.append(format_id(when, seq))
    return out


@st.composite
def policies(draw):
    try:
        return draw(st.builds(RetentionPolicy, last=_counts, hourly=_counts, daily=_counts,
                              weekly=_counts, monthly=_counts, yearly=_counts))
    except RetentionError:
        return RetentionPolicy(last=1)


def newest_first(ids):
    return sorted(ids, key=lambda i: parse_id(i), reverse=True)


@pytest.mark.sampled(1, "properties")
@settings(max_examples=300, deadline=None)
@given(snapshot_ids(), policies())
def test_the_newest_is_always_kept(ids, policy):
    decisions = plan_retention(ids, policy)
    if ids:
        assert decisions[-1].id == newest_first(ids)[0] and decisions[-1].keep
    assert sorted(d.id for d in decisions) == sorted(ids)


@pytest.mark.sampled(1, "properties")
@settings(max_examples=200, deadline=None)
@given(snapshot_ids(), st.integers(1, 10))
def test_keep_last_keeps_exactly_the_n_newest(ids, n):
    assert kept(ids, last=n) == set(newest_first(ids)[:n])


_PERIOD_OF = {
    "hourly": lambda t: (t.date(), t.hour),
    "daily": lambda t: t.date(),
    "weekly": lambda t: t.isocalendar()[:2],
    "monthly": lambda t: (t.year, t.month),
    "yearly": lambda t: t.year,
}


@pytest.mark.sampled(1, "properties")
@settings(max_examples=300, deadline=None)
@given(snapshot_ids(), st.sampled_from(sorted(_PERIOD_OF)), st.integers(1, 8))
def test_one_periodic_rule_keeps_the_newest_of_the_n_latest_periods(ids, rule, n):
    """Alone, a rule keeps the newest snapshot of each of the N most recent
    periods that have snapshots, and (borg's [oldest] rule) the oldest
    snapshot when there are fewer than N such periods; nothing else."""
    by_period = defaultdict(list)
    for i in ids:
        by_period[_PERIOD_OF[rule](parse_id(i).time)].append(i)
    latest_periods = sorted(by_period, reverse=True)[:n]
    expected = {newest_first(by_period[p])[0] for p in latest_periods}
    if ids and len(by_period) < n:
        expected.add(newest_first(ids)[-1])
    assert kept(ids, **{rule: n}) == expected
    # At most one per period, but for that oldest one.
    per_period = defaultdict(int)
    for d in plan_retention(ids, RetentionPolicy(**{rule: n})):
        if d.reason and "[oldest]" not in d.reason and d.reason != "newest":
            per_period[_PERIOD_OF[rule](parse_id(d.id).time)] += 1
    assert all(count == 1 for count in per_period.values())


@pytest.mark.sampled(1, "properties")
@settings(max_examples=300, deadline=None)
@given(snapshot_ids(), policies())
def test_pruning_is_idempotent(ids, policy):
    once = kept(ids, **vars(policy))
    assert kept(sorted(once), **vars(policy)) == once


@pytest.mark.sampled(1, "properties")
@settings(max_examples=300, deadline=None)
@given(snapshot_ids(), policies(), policies())
def test_a_stricter_policy_never_keeps_more(ids, a, b):
    strict = {r: min(getattr(a, r), getattr(b, r)) for r in RULES}
    lax = {r: max(getattr(a, r), getattr(b, r)) for r in RULES}
    if any(strict.values()):
        assert kept(ids, **strict) <= kept(ids, **lax)


# -- policies and the [snapshots] table ------------------------------------------------

def test_policy_from_table():
    assert policy_from_table({"keep_last": 3, "keep_daily": 7}) == RetentionPolicy(last=3, daily=7)
    assert policy_from_table({"keep_yearly": 2}) == RetentionPolicy(yearly=2)
    assert policy_from_table({}) is None                   # no retention configured
    assert policy_from_table({"enabled": True, "keep_last": 1},
                             other_keys=("enabled",)) == RetentionPolicy(last=1)
    with pytest.raises(RetentionError, match=r"^x: unknown key \(known: keep_last, .*, enabled\)$"):
        policy_from_table({"x": 1}, other_keys=("enabled",))
    with pytest.raises(RetentionError, match="must be a table, not an array"):
        policy_from_table([1])


@pytest.mark.parametrize("table, message", [
    ({"keep_daly": 7}, "keep_daly: unknown key (known: keep_last, keep_hourly, keep_daily, "
                       "keep_weekly, keep_monthly, keep_yearly)"),
    ({"keep_daily": "7"}, "keep_daily: must be an integer, not a string"),
    ({"keep_daily": 7.0}, "keep_daily: must be an integer, not a float"),
    ({"keep_daily": True}, "keep_daily: must be an integer, not a boolean"),
    ({"keep_daily": [7]}, "keep_daily: must be an integer, not an array"),
    ({"keep_last": 0}, "the policy keeps nothing"),
    ({"keep_weekly": -1}, "keep_weekly: must be 0 or more, not -1"),
])
def test_bad_tables_are_one_line_errors_naming_the_key(table, message):
    with pytest.raises(RetentionError) as info:
        policy_from_table(table)
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


def test_policy_refuses_non_integers():
    with pytest.raises(RetentionError, match="keep_daily: must be an integer"):
        RetentionPolicy(daily=1.5)
    with pytest.raises(ValueError, match="not a snapshot ID"):
        plan_retention(["latest"], RetentionPolicy(last=1))
