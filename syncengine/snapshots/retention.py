"""Which snapshots to keep: the rules of ``borg prune`` (borg 1.4), in UTC.

The rules are applied in this order: ``last``, ``hourly``, ``daily``,
``weekly``, ``monthly``, ``yearly``.  Each walks the snapshots newest first
and looks at the newest snapshot of each period (an hour, a day, an ISO
week from Monday, a month, a year, by the snapshot's UTC start time; for
``last`` every snapshot is its own period):

- a period whose newest snapshot an earlier rule already keeps is passed
  over and does not count (borg: "backups selected by previous rules do
  not count towards those of later rules");
- otherwise that snapshot is kept, until the rule has kept N;
- a rule that ran out of snapshots before keeping N also keeps the oldest
  snapshot (borg's ``[oldest]`` rule: the first snapshot ages on until a
  newer one can take its place);
- 0 turns a rule off.  (borg takes a negative N as "no limit", but then
  skips the [oldest] rule, so that -1 could keep less than 1 would: we
  refuse negative numbers; a large N does the same job);
- periods without snapshots do not count: ``daily = 7`` keeps the newest of
  each of the 7 most recent days that have snapshots.

Two deviations, both on the safe side: ``last`` counts snapshots, not
seconds (borg's ``--keep-last`` is ``--keep-secondly``; two of our
snapshots can share a second), and the newest snapshot is always kept.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime

from .ids import SnapshotId, parse_id

__all__ = ["RULES", "RetentionPolicy", "RetentionError", "Decision", "plan_retention",
           "policy_from_table"]

# name -> the period of a UTC start time (None: every snapshot its own).
_PERIODS: dict[str, Callable[[datetime], object] | None] = {
    "last": None,
    "hourly": lambda t: (t.year, t.month, t.day, t.hour),
    "daily": lambda t: (t.year, t.month, t.day),
    "weekly": lambda t: t.isocalendar()[:2],      # borg's %G-%V: ISO year and week
    "monthly": lambda t: (t.year, t.month),
    "yearly": lambda t: t.year,
}
RULES = tuple(_PERIODS)


class RetentionError(ValueError):
    """A bad retention setting; ``key`` names it (``keep_daily``)."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}" if key else problem)
        self.key = key


@dataclass(frozen=True)
class RetentionPolicy:
    """How many snapshots each rule keeps (0: the rule is off)."""

    last: int = 0
    hourly: int = 0
    daily: int = 0
    weekly: int = 0
    monthly: int = 0
    yearly: int = 0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise RetentionError(f"keep_{f.name}",
                                     f"must be an integer, not {type(value).__name__}")
            if value < 0:
                raise RetentionError(f"keep_{f.name}", f"must be 0 or more, not {value}")
        if not any(getattr(self, name) for name in RULES):
            raise RetentionError("", "the policy keeps nothing: give at least one of "
                                     + ", ".join(f"keep_{n}" for n in RULES) + " a non-zero value")


@dataclass(frozen=True)
class Decision:
    """What the policy says of one snapshot: ``reason`` is None to delete
    it, else why it stays: ``"daily #3"`` (the rule and its count),
    ``"daily[oldest]"``, or ``"newest"``."""

    id: str
    reason: str | None

    @property
    def keep(self) -> bool:
        return self.reason is not None


def plan_retention(snapshot_ids: Sequence[str], policy: RetentionPolicy) -> list[Decision]:
    """A Decision for each ID (any order in, oldest first out)."""
    parsed: dict[str, SnapshotId] = {}
    for text in snapshot_ids:
        p = parse_id(text)
        if p is None:
            raise ValueError(f"not a snapshot ID: {text!r}")
        parsed[text] = p
    newest_first = sorted(parsed, key=parsed.__getitem__, reverse=True)
    reasons: dict[str, str] = {}
    for rule in RULES:
        n = getattr(policy, rule)
        if n:
            _apply_rule(rule, n, newest_first, parsed, reasons)
    if newest_first and newest_first[0] not in reasons:
        reasons[newest_first[0]] = "newest"
    return [Decision(i, reasons.get(i)) for i in reversed(newest_first)]


def _apply_rule(rule: str, n: int, newest_first: list[str], parsed: dict[str, SnapshotId],
                reasons: dict[str, str]) -> None:
    period_of = _PERIODS[rule]
    kept = 0
    last_period = object()
    for snap_id in newest_first:
        period = snap_id if period_of is None else period_of(parsed[snap_id].time)
        if period == last_period:
            continue
        last_period = period
        if snap_id not in reasons:
            kept += 1
            reasons[snap_id] = f"{rule} #{kept}"
            if kept == n:
                return
    oldest = newest_first[-1] if newest_first else None
    if oldest is not None and kept < n and oldest not in reasons:
        reasons[oldest] = f"{rule}[oldest]"


def policy_from_table(table: Mapping[str, object], *,
                      other_keys: Collection[str] = ()) -> RetentionPolicy | None:
    """The policy of a config's ``[snapshots]`` table: ``keep_last``,
    ``keep_hourly``, ``keep_daily``, ``keep_weekly``, ``keep_monthly``,
    ``keep_yearly`` (integers); None when it names none of them (no
    retention configured).  ``other_keys`` are keys the caller reads
    itself.  A bad key or value is a RetentionError naming it in one line."""
    if not isinstance(table, Mapping):
        raise RetentionError("", f"must be a table, not {_kind(table)}")
    known = [f"keep_{rule}" for rule in RULES]
    values = {}
    for key, value in table.items():
        if key in other_keys:
            continue
        if key not in known:
            names = ", ".join([*known, *other_keys])
            raise RetentionError(str(key), f"unknown key (known: {names})")
        if isinstance(value, bool) or not isinstance(value, int):
            raise RetentionError(key, f"must be an integer, not {_kind(value)}")
        values[key[len("keep_"):]] = value
    return RetentionPolicy(**values) if values else None


def _kind(value: object) -> str:
    names = {str: "a string", float: "a float", list: "an array", dict: "a table",
             bool: "a boolean"}
    return names.get(type(value), type(value).__name__)
