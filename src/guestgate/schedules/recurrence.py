"""When a coupon schedule runs: its slots, as UTC instants, from a local rule.

A rule is a local wall-clock time (`time_of_day`, "HH:MM") in an IANA time zone on every day,
on one day of the week (0=Sunday..6=Saturday) or on one day of the month (a month without that
day runs on its last day). Daylight saving time:

- a wall time skipped by a spring-forward runs at the first valid instant after the gap
  (02:30 in America/New_York on the spring-forward day runs at 03:00 local, 07:00Z);
- a wall time repeated by a fall-back runs once, at its first occurrence (fold=0).

Everything here is pure: aware UTC datetimes in, aware UTC datetimes out.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

RecurrenceType = Literal["daily", "weekly", "monthly"]
RECURRENCE_TYPES: tuple[RecurrenceType, ...] = ("daily", "weekly", "monthly")
# A slot moved by a DST gap can land on a later local date than its own (Pacific/Apia skipped
# all of 2011-12-30), so the search starts a little before the local date of `after`: two
# cheap iterations instead of reasoning about every zone's edge cases.
_LOOKBACK = timedelta(days=2)


@dataclass(frozen=True)
class Rule:
    """A validated recurrence: which local dates, at which local time, in which zone."""

    recurrence_type: RecurrenceType
    day_of_week: int | None
    day_of_month: int | None
    at: time
    zone: ZoneInfo

    @classmethod
    def of(
        cls,
        *,
        recurrence_type: str,
        day_of_week: int | None,
        day_of_month: int | None,
        time_of_day: str,
        timezone: str,
    ) -> Rule:
        """Parse and check the fields of a schedule; ValueError if they do not form a rule."""
        if recurrence_type == "daily":
            return cls("daily", None, None, parse_time_of_day(time_of_day), ZoneInfo(timezone))
        if recurrence_type == "weekly":
            if day_of_week is None or not 0 <= day_of_week <= 6:
                raise ValueError(f"weekly needs day_of_week 0..6, got {day_of_week!r}")
            return cls("weekly", day_of_week, None, parse_time_of_day(time_of_day), ZoneInfo(timezone))
        if recurrence_type == "monthly":
            if day_of_month is None or not 1 <= day_of_month <= 31:
                raise ValueError(f"monthly needs day_of_month 1..31, got {day_of_month!r}")
            return cls("monthly", None, day_of_month, parse_time_of_day(time_of_day), ZoneInfo(timezone))
        raise ValueError(f"unknown recurrence_type {recurrence_type!r}")

    def dates_from(self, start: date) -> Iterator[date]:
        """Every local date on or after `start` the rule runs on, in order."""
        if self.recurrence_type == "daily":
            day = start
            while True:
                yield day
                day += timedelta(days=1)
        elif self.recurrence_type == "weekly":
            assert self.day_of_week is not None
            # isoweekday: Monday=1..Sunday=7, so `% 7` gives the contract's Sunday=0..Saturday=6.
            day = start + timedelta(days=(self.day_of_week - start.isoweekday() % 7) % 7)
            while True:
                yield day
                day += timedelta(days=7)
        else:
            assert self.day_of_month is not None
            year, month = start.year, start.month
            while True:
                last = calendar.monthrange(year, month)[1]
                day = date(year, month, min(self.day_of_month, last))
                if day >= start:
                    yield day
                year, month = (year + 1, 1) if month == 12 else (year, month + 1)

    def slot_on(self, day: date) -> datetime:
        """The UTC instant of this rule's local time on `day` (DST gaps and folds resolved)."""
        return resolve_local(datetime.combine(day, self.at), self.zone)

    def slots_after(self, after: datetime) -> Iterator[datetime]:
        """Every slot strictly after `after` (aware), in order, each instant once, forever."""
        _check_aware(after)
        start = after.astimezone(self.zone).date() - _LOOKBACK
        last = after
        for day in self.dates_from(start):
            slot = self.slot_on(day)
            # A day a DST gap (or a skipped date: Samoa's 2011-12-30) swallowed whole runs at the end
            # of the gap, which can be the next day's slot itself: one instant is one slot.
            if slot > last:
                yield slot
                last = slot


def parse_time_of_day(value: str) -> time:
    """`"HH:MM"` (24-hour, 00:00..23:59) as a time; ValueError otherwise."""
    hours, sep, minutes = value.partition(":")
    if not (sep and len(hours) == 2 and len(minutes) == 2 and hours.isdigit() and minutes.isdigit()):
        raise ValueError(f"time_of_day must be HH:MM, got {value!r}")
    return time(int(hours), int(minutes))


def resolve_local(wall: datetime, zone: ZoneInfo) -> datetime:
    """The UTC instant of a naive local wall time: its first occurrence, or the end of its DST gap."""
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if first.astimezone(zone).replace(tzinfo=None) == wall:
        return first
    # In a gap fold=0 reads the wall time with the offset before the change and fold=1 with the
    # offset after it; the change itself lies between the two readings.
    before = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    lo, hi = min(before, first), max(before, first)
    lo_s, hi_s = int(lo.timestamp()), int(hi.timestamp())
    # Smallest whole second whose wall time is at or past `wall`: the first instant after the gap.
    while lo_s < hi_s:
        mid = (lo_s + hi_s) // 2
        if datetime.fromtimestamp(mid, zone).replace(tzinfo=None) >= wall:
            hi_s = mid
        else:
            lo_s = mid + 1
    return datetime.fromtimestamp(lo_s, UTC)


def next_run_at(
    *,
    recurrence_type: str,
    day_of_week: int | None,
    day_of_month: int | None,
    time_of_day: str,
    timezone: str,
    after: datetime,
) -> datetime:
    """The first slot of the rule strictly after `after` (aware), in UTC."""
    rule = Rule.of(
        recurrence_type=recurrence_type,
        day_of_week=day_of_week,
        day_of_month=day_of_month,
        time_of_day=time_of_day,
        timezone=timezone,
    )
    return next(rule.slots_after(after))


def slots_between(
    *,
    recurrence_type: str,
    day_of_week: int | None,
    day_of_month: int | None,
    time_of_day: str,
    timezone: str,
    after: datetime,
    until: datetime,
    limit: int | None = None,
) -> list[datetime]:
    """The slots in (`after`, `until`], oldest first, at most `limit` of them.

    The runner uses it to see which slots were missed: it coalesces them into one catch-up run
    and then continues from `next_run_at(after=now)`.
    """
    _check_aware(until)
    rule = Rule.of(
        recurrence_type=recurrence_type,
        day_of_week=day_of_week,
        day_of_month=day_of_month,
        time_of_day=time_of_day,
        timezone=timezone,
    )
    found: list[datetime] = []
    for slot in rule.slots_after(after):
        if slot > until or (limit is not None and len(found) >= limit):
            break
        found.append(slot)
    return found


def _check_aware(moment: datetime) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("recurrence needs aware datetimes")
