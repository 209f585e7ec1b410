"""`next_run_at` and `slots_between`: local times, day rules, month ends and every DST case (no DB)."""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from guestgate.schedules.recurrence import next_run_at, resolve_local, slots_between
from tests.schedules import utc


def nxt(
    after: datetime,
    *,
    kind: str = "daily",
    dow: int | None = None,
    dom: int | None = None,
    at: str = "00:00",
    tz: str = "UTC",
) -> datetime:
    return next_run_at(
        recurrence_type=kind, day_of_week=dow, day_of_month=dom, time_of_day=at, timezone=tz, after=after
    )


# (case, after, rule, expected)
CASES = [
    # --- ordinary days --------------------------------------------------------------------
    ("daily_later_today", utc(2025, 6, 1, 0), {"at": "09:00", "tz": "America/New_York"}, utc(2025, 6, 1, 13)),
    (
        "daily_already_past_today",
        utc(2025, 6, 1, 14),
        {"at": "09:00", "tz": "America/New_York"},
        utc(2025, 6, 2, 13),
    ),
    (
        "daily_after_equal_to_slot_gives_next",
        utc(2025, 6, 1, 13),
        {"at": "09:00", "tz": "America/New_York"},
        utc(2025, 6, 2, 13),
    ),
    (
        "daily_one_microsecond_before_slot",
        utc(2025, 6, 1, 12, 59, 59) + timedelta(microseconds=999_999),
        {"at": "09:00", "tz": "America/New_York"},
        utc(2025, 6, 1, 13),
    ),
    ("daily_midnight_default", utc(2025, 6, 1, 0), {}, utc(2025, 6, 2, 0)),
    ("daily_half_hour_zone", utc(2025, 1, 1, 0), {"tz": "Asia/Kolkata"}, utc(2025, 1, 1, 18, 30)),
    ("daily_23_59", utc(2025, 1, 1, 0), {"at": "23:59"}, utc(2025, 1, 1, 23, 59)),
    (
        "local_date_ahead_of_utc_date",
        utc(2025, 6, 1, 20),
        {"at": "07:00", "tz": "Australia/Sydney"},
        utc(2025, 6, 1, 21),
    ),
    (
        "local_date_behind_utc_date",
        utc(2025, 6, 2, 1),
        {"at": "20:00", "tz": "America/Los_Angeles"},
        utc(2025, 6, 2, 3),
    ),
    # --- crossing the year end ---------------------------------------------------------------
    ("daily_crosses_year_end", utc(2025, 12, 31, 23, 59), {"tz": "Europe/London"}, utc(2026, 1, 1, 0)),
    (
        "daily_crosses_year_end_in_sydney",
        utc(2025, 12, 31, 13, 30),
        {"at": "00:30", "tz": "Australia/Sydney"},
        utc(2025, 12, 31, 13, 30) + timedelta(days=1),
    ),
    (
        "weekly_crosses_year_end",
        utc(2025, 12, 31, 12),
        {"kind": "weekly", "dow": 4, "at": "09:00"},
        utc(2026, 1, 1, 9),
    ),
    (
        "monthly_crosses_year_end",
        utc(2025, 12, 20),
        {"kind": "monthly", "dom": 15, "at": "09:00"},
        utc(2026, 1, 15, 9),
    ),
    # --- weekly: 0=Sunday .. 6=Saturday -------------------------------------------------------
    ("weekly_sunday_is_0", utc(2025, 1, 1), {"kind": "weekly", "dow": 0, "at": "09:00"}, utc(2025, 1, 5, 9)),
    ("weekly_monday_is_1", utc(2025, 1, 1), {"kind": "weekly", "dow": 1, "at": "09:00"}, utc(2025, 1, 6, 9)),
    (
        "weekly_saturday_is_6",
        utc(2025, 1, 1),
        {"kind": "weekly", "dow": 6, "at": "09:00"},
        utc(2025, 1, 4, 9),
    ),
    (
        "weekly_same_day_before_time",
        utc(2025, 1, 5, 8),
        {"kind": "weekly", "dow": 0, "at": "09:00"},
        utc(2025, 1, 5, 9),
    ),
    (
        "weekly_same_day_at_time_gives_next_week",
        utc(2025, 1, 5, 9),
        {"kind": "weekly", "dow": 0, "at": "09:00"},
        utc(2025, 1, 12, 9),
    ),
    (
        "weekly_day_is_local_not_utc",
        utc(2025, 6, 7, 15),
        {"kind": "weekly", "dow": 0, "at": "08:00", "tz": "Australia/Sydney"},
        utc(2025, 6, 7, 22),
    ),
    (
        "weekly_saturday_evening_new_york_is_sunday_utc",
        utc(2025, 6, 1),
        {"kind": "weekly", "dow": 6, "at": "23:30", "tz": "America/New_York"},
        utc(2025, 6, 1, 3, 30),
    ),
    # --- monthly and month ends -------------------------------------------------------------
    (
        "monthly_15th",
        utc(2025, 6, 1),
        {"kind": "monthly", "dom": 15, "at": "08:00", "tz": "Europe/London"},
        utc(2025, 6, 15, 7),
    ),
    (
        "monthly_31_in_february_leap_year",
        utc(2028, 2, 1),
        {"kind": "monthly", "dom": 31, "at": "09:00"},
        utc(2028, 2, 29, 9),
    ),
    (
        "monthly_31_in_february_common_year",
        utc(2027, 2, 1),
        {"kind": "monthly", "dom": 31, "at": "09:00"},
        utc(2027, 2, 28, 9),
    ),
    (
        "monthly_30_in_february_leap_year",
        utc(2028, 2, 1),
        {"kind": "monthly", "dom": 30, "at": "09:00"},
        utc(2028, 2, 29, 9),
    ),
    (
        "monthly_29_on_leap_day",
        utc(2028, 2, 28),
        {"kind": "monthly", "dom": 29, "at": "09:00"},
        utc(2028, 2, 29, 9),
    ),
    (
        "monthly_29_in_common_february",
        utc(2027, 2, 1),
        {"kind": "monthly", "dom": 29, "at": "09:00"},
        utc(2027, 2, 28, 9),
    ),
    (
        "monthly_31_after_jan_31_slot",
        utc(2028, 1, 31, 9),
        {"kind": "monthly", "dom": 31, "at": "09:00"},
        utc(2028, 2, 29, 9),
    ),
    (
        "monthly_31_after_leap_day_slot",
        utc(2028, 2, 29, 9),
        {"kind": "monthly", "dom": 31, "at": "09:00"},
        utc(2028, 3, 31, 9),
    ),
    (
        "monthly_31_in_april",
        utc(2025, 4, 1),
        {"kind": "monthly", "dom": 31, "at": "09:00"},
        utc(2025, 4, 30, 9),
    ),
    (
        "monthly_31_after_april_30_slot",
        utc(2025, 4, 30, 9),
        {"kind": "monthly", "dom": 31, "at": "09:00"},
        utc(2025, 5, 31, 9),
    ),
    (
        "monthly_1st_local_in_sydney",
        utc(2025, 6, 30, 13),
        {"kind": "monthly", "dom": 1, "at": "00:00", "tz": "Australia/Sydney"},
        utc(2025, 6, 30, 14),
    ),
    (
        "monthly_leap_day_in_sydney",
        utc(2028, 2, 1),
        {"kind": "monthly", "dom": 31, "at": "10:00", "tz": "Australia/Sydney"},
        utc(2028, 2, 28, 23),
    ),
    # --- America/New_York: spring forward 2025-03-09 02:00 EST -> 03:00 EDT ------------------
    (
        "ny_gap_runs_at_end_of_gap",
        utc(2025, 3, 8, 12),
        {"at": "02:30", "tz": "America/New_York"},
        utc(2025, 3, 9, 7),
    ),
    (
        "ny_gap_start_runs_at_end_of_gap",
        utc(2025, 3, 8, 12),
        {"at": "02:00", "tz": "America/New_York"},
        utc(2025, 3, 9, 7),
    ),
    (
        "ny_gap_last_minute",
        utc(2025, 3, 8, 12),
        {"at": "02:59", "tz": "America/New_York"},
        utc(2025, 3, 9, 7),
    ),
    (
        "ny_first_valid_after_gap",
        utc(2025, 3, 8, 12),
        {"at": "03:00", "tz": "America/New_York"},
        utc(2025, 3, 9, 7),
    ),
    (
        "ny_day_after_gap_is_normal",
        utc(2025, 3, 9, 7),
        {"at": "02:30", "tz": "America/New_York"},
        utc(2025, 3, 10, 6, 30),
    ),
    (
        "ny_before_gap_unaffected",
        utc(2025, 3, 8, 12),
        {"at": "01:30", "tz": "America/New_York"},
        utc(2025, 3, 9, 6, 30),
    ),
    (
        "ny_weekly_sunday_in_gap",
        utc(2025, 3, 3),
        {"kind": "weekly", "dow": 0, "at": "02:15", "tz": "America/New_York"},
        utc(2025, 3, 9, 7),
    ),
    # --- America/New_York: fall back 2025-11-02 02:00 EDT -> 01:00 EST -----------------------
    (
        "ny_fold_runs_at_first_occurrence",
        utc(2025, 11, 1, 12),
        {"at": "01:30", "tz": "America/New_York"},
        utc(2025, 11, 2, 5, 30),
    ),
    (
        "ny_fold_does_not_run_twice",
        utc(2025, 11, 2, 5, 30),
        {"at": "01:30", "tz": "America/New_York"},
        utc(2025, 11, 3, 6, 30),
    ),
    (
        "ny_fold_between_occurrences",
        utc(2025, 11, 2, 6),
        {"at": "01:30", "tz": "America/New_York"},
        utc(2025, 11, 3, 6, 30),
    ),
    ("ny_fold_start", utc(2025, 11, 1, 12), {"at": "01:00", "tz": "America/New_York"}, utc(2025, 11, 2, 5)),
    ("ny_after_fold", utc(2025, 11, 1, 12), {"at": "02:00", "tz": "America/New_York"}, utc(2025, 11, 2, 7)),
    # --- Australia/Sydney: DST starts first Sunday of October (2025-10-05 02:00 -> 03:00) ----
    (
        "sydney_gap_runs_at_end_of_gap",
        utc(2025, 10, 4),
        {"at": "02:30", "tz": "Australia/Sydney"},
        utc(2025, 10, 4, 16),
    ),
    (
        "sydney_day_before_gap",
        utc(2025, 10, 3),
        {"at": "02:30", "tz": "Australia/Sydney"},
        utc(2025, 10, 3, 16, 30),
    ),
    (
        "sydney_day_after_gap",
        utc(2025, 10, 4, 16),
        {"at": "02:30", "tz": "Australia/Sydney"},
        utc(2025, 10, 5, 15, 30),
    ),
    (
        "sydney_weekly_sunday_across_dst_start",
        utc(2025, 9, 28),
        {"kind": "weekly", "dow": 0, "at": "08:00", "tz": "Australia/Sydney"},
        utc(2025, 10, 4, 21),
    ),
    # --- Australia/Sydney: DST ends first Sunday of April (2025-04-06 03:00 -> 02:00) -------
    (
        "sydney_fold_runs_at_first_occurrence",
        utc(2025, 4, 5),
        {"at": "02:30", "tz": "Australia/Sydney"},
        utc(2025, 4, 5, 15, 30),
    ),
    (
        "sydney_fold_does_not_run_twice",
        utc(2025, 4, 5, 15, 30),
        {"at": "02:30", "tz": "Australia/Sydney"},
        utc(2025, 4, 6, 16, 30),
    ),
    (
        "sydney_weekly_sunday_across_dst_end",
        utc(2025, 3, 31),
        {"kind": "weekly", "dow": 0, "at": "08:00", "tz": "Australia/Sydney"},
        utc(2025, 4, 5, 22),
    ),
    (
        "sydney_monthly_on_dst_end_day",
        utc(2025, 3, 10),
        {"kind": "monthly", "dom": 6, "at": "02:30", "tz": "Australia/Sydney"},
        utc(2025, 4, 5, 15, 30),
    ),
    # --- Europe/London: 2025-03-30 01:00 GMT -> 02:00 BST, 2025-10-26 02:00 BST -> 01:00 GMT -
    (
        "london_gap_runs_at_end_of_gap",
        utc(2025, 3, 29, 2),
        {"at": "01:30", "tz": "Europe/London"},
        utc(2025, 3, 30, 1),
    ),
    (
        "london_fold_runs_at_first_occurrence",
        utc(2025, 10, 25, 2),
        {"at": "01:30", "tz": "Europe/London"},
        utc(2025, 10, 26, 0, 30),
    ),
    (
        "london_fold_does_not_run_twice",
        utc(2025, 10, 26, 0, 30),
        {"at": "01:30", "tz": "Europe/London"},
        utc(2025, 10, 27, 1, 30),
    ),
    ("london_summer", utc(2025, 7, 1), {"at": "09:00", "tz": "Europe/London"}, utc(2025, 7, 1, 8)),
    # --- unusual zones ----------------------------------------------------------------------
    # Lord Howe Island moves its clocks by 30 minutes (2025-10-05 02:00 -> 02:30).
    (
        "lord_howe_half_hour_gap",
        utc(2025, 10, 4),
        {"at": "02:15", "tz": "Australia/Lord_Howe"},
        utc(2025, 10, 4, 15, 30),
    ),
    # Chile springs forward at midnight (2025-09-07 00:00 -> 01:00): midnight does not exist.
    ("santiago_missing_midnight", utc(2025, 9, 6, 12), {"tz": "America/Santiago"}, utc(2025, 9, 7, 4)),
    # Samoa skipped all of 2011-12-30 when it crossed the date line.
    ("apia_skipped_day", utc(2011, 12, 29, 20), {"at": "10:00", "tz": "Pacific/Apia"}, utc(2011, 12, 30, 10)),
    (
        "apia_skipped_friday_runs_saturday_midnight",
        utc(2011, 12, 29, 11),
        {"kind": "weekly", "dow": 5, "tz": "Pacific/Apia"},
        utc(2011, 12, 30, 10),
    ),
    (
        "apia_day_after_skip",
        utc(2011, 12, 30, 10),
        {"at": "10:00", "tz": "Pacific/Apia"},
        utc(2011, 12, 30, 20),
    ),
]


@pytest.mark.parametrize(("after", "rule", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_next_run_at(after: datetime, rule: dict[str, object], expected: datetime) -> None:
    result = nxt(after, **rule)  # type: ignore[arg-type]
    assert result == expected
    assert result.tzinfo is UTC


def test_next_run_at_accepts_after_in_any_offset() -> None:
    after = datetime(2025, 6, 1, 10, tzinfo=ZoneInfo("Australia/Sydney"))
    assert nxt(after, at="09:00", tz="America/New_York") == utc(2025, 6, 1, 13)


def test_next_run_at_rejects_naive_after() -> None:
    with pytest.raises(ValueError, match="aware"):
        nxt(datetime(2025, 1, 1))


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"kind": "weekly"}, "day_of_week"),
        ({"kind": "weekly", "dow": 7}, "day_of_week"),
        ({"kind": "monthly"}, "day_of_month"),
        ({"kind": "monthly", "dom": 0}, "day_of_month"),
        ({"kind": "yearly"}, "recurrence_type"),
        ({"at": "24:00"}, "hour must be"),
        ({"at": "9:00"}, "HH:MM"),
        ({"at": "09-00"}, "HH:MM"),
    ],
)
def test_next_run_at_rejects_rules_that_are_not_rules(rule: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        nxt(utc(2025, 1, 1), **rule)  # type: ignore[arg-type]


def test_daily_ignores_day_fields() -> None:
    assert nxt(utc(2025, 1, 1), dow=3, dom=20, at="09:00") == utc(2025, 1, 1, 9)


def test_resolve_local_gap_and_fold() -> None:
    ny = ZoneInfo("America/New_York")
    assert resolve_local(datetime(2025, 3, 9, 2, 30), ny) == utc(2025, 3, 9, 7)
    assert resolve_local(datetime(2025, 11, 2, 1, 30), ny) == utc(2025, 11, 2, 5, 30)
    assert resolve_local(datetime(2025, 7, 4, 12, 0), ny) == utc(2025, 7, 4, 16)


# --- slots_between (for the runner's catch-up) ------------------------------------------------


def between(after: datetime, until: datetime, limit: int | None = None, **rule: object) -> list[datetime]:
    return slots_between(
        recurrence_type=str(rule.get("kind", "daily")),
        day_of_week=rule.get("dow"),  # type: ignore[arg-type]
        day_of_month=rule.get("dom"),  # type: ignore[arg-type]
        time_of_day=str(rule.get("at", "00:00")),
        timezone=str(rule.get("tz", "UTC")),
        after=after,
        until=until,
        limit=limit,
    )


def test_slots_between_lists_missed_slots_across_spring_forward() -> None:
    slots = between(utc(2025, 3, 7, 12), utc(2025, 3, 11, 6), at="02:30", tz="America/New_York")
    assert slots == [utc(2025, 3, 8, 7, 30), utc(2025, 3, 9, 7), utc(2025, 3, 10, 6, 30)]


def test_slots_between_includes_until_and_excludes_after() -> None:
    slots = between(utc(2025, 1, 1, 9), utc(2025, 1, 3, 9), at="09:00")
    assert slots == [utc(2025, 1, 2, 9), utc(2025, 1, 3, 9)]


def test_slots_between_fold_day_has_one_slot() -> None:
    slots = between(utc(2025, 11, 1, 12), utc(2025, 11, 3, 12), at="01:30", tz="America/New_York")
    assert slots == [utc(2025, 11, 2, 5, 30), utc(2025, 11, 3, 6, 30)]


def test_slots_between_a_skipped_day_and_the_next_day_at_midnight_are_one_slot() -> None:
    # Samoa skipped 2011-12-30: its midnight slot runs when the gap ends, Saturday 00:00, which
    # is Saturday's own midnight slot. One instant is one slot (the runner keys batches by it).
    slots = between(utc(2011, 12, 30, 9, 59), utc(2011, 12, 31, 10), tz="Pacific/Apia")
    assert slots == [utc(2011, 12, 30, 10), utc(2011, 12, 31, 10)]


def test_slots_between_limit_keeps_the_oldest() -> None:
    slots = between(utc(2025, 1, 1), utc(2026, 1, 1), limit=2, kind="monthly", dom=31, at="12:00")
    assert slots == [utc(2025, 1, 31, 12), utc(2025, 2, 28, 12)]


def test_slots_between_empty_when_nothing_is_due() -> None:
    assert between(utc(2025, 1, 1, 9), utc(2025, 1, 2, 8, 59), at="09:00") == []
    assert between(utc(2025, 1, 2), utc(2025, 1, 1), at="09:00") == []


def test_slots_between_a_year_of_weekly_slots() -> None:
    slots = between(
        utc(2024, 12, 31), utc(2025, 12, 31), kind="weekly", dow=0, at="08:00", tz="Europe/London"
    )
    assert len(slots) == 52
    london = ZoneInfo("Europe/London")
    assert all(s.astimezone(london).isoweekday() == 7 for s in slots)
    assert all(s.astimezone(london).time() == time(8, 0) for s in slots)


# --- property test against an independent reference --------------------------------------------

ZONES = [
    "UTC",
    "America/New_York",
    "Australia/Sydney",
    "Europe/London",
    "Europe/Dublin",
    "Australia/Lord_Howe",
    "America/Santiago",
    "America/St_Johns",
    "Asia/Kolkata",
    "Pacific/Chatham",
    "Pacific/Apia",
    "America/Havana",
]


def matches(day: date, kind: str, dow: int | None, dom: int | None) -> bool:
    """Whether a local date is one the rule runs on (written independently of the module)."""
    if kind == "daily":
        return True
    if kind == "weekly":
        return day.strftime("%w") == str(dow)  # %w: 0 = Sunday
    assert dom is not None
    return day.day == min(dom, calendar.monthrange(day.year, day.month)[1])


def occurrences(wall: datetime, zone: ZoneInfo) -> list[datetime]:
    """Every UTC instant whose local wall time is `wall`, found by trying every nearby offset."""
    probe = wall.replace(tzinfo=UTC)
    offsets = {
        offset
        for hours in range(-48, 49, 2)
        if (offset := (probe + timedelta(hours=hours)).astimezone(zone).utcoffset()) is not None
    }
    found = set()
    for offset in offsets:
        candidate = probe - offset
        if candidate.astimezone(zone).replace(tzinfo=None) == wall:
            found.add(candidate)
    return sorted(found)


MIN_AFTER = datetime(2005, 1, 1, tzinfo=UTC)
MAX_AFTER = datetime(2040, 1, 1, tzinfo=UTC)


@cache
def transitions(tz: str) -> tuple[datetime, ...]:
    """The instants the zone's UTC offset changes between 2005 and 2040 (found by scanning)."""
    zone = ZoneInfo(tz)
    found: list[datetime] = []
    step = timedelta(hours=6)
    moment = MIN_AFTER
    offset = moment.astimezone(zone).utcoffset()
    while moment < MAX_AFTER:
        later = moment + step
        later_offset = later.astimezone(zone).utcoffset()
        if later_offset != offset:
            lo, hi = int(moment.timestamp()), int(later.timestamp())
            while lo < hi:
                mid = (lo + hi) // 2
                if datetime.fromtimestamp(mid, zone).utcoffset() == later_offset:
                    hi = mid
                else:
                    lo = mid + 1
            found.append(datetime.fromtimestamp(lo, UTC))
        moment, offset = later, later_offset
    return tuple(found)


@st.composite
def cases(draw: st.DrawFn) -> tuple[dict[str, Any], datetime]:
    """A rule and an `after`; half of them aimed at a DST change, its gap or fold, of the zone."""
    tz = draw(st.sampled_from(ZONES))
    zone = ZoneInfo(tz)
    kind = draw(st.sampled_from(["daily", "weekly", "monthly"]))
    changes = transitions(tz)
    aimed = draw(st.booleans())
    if changes and aimed:
        change = draw(st.sampled_from(changes))
        wall = (change - timedelta(seconds=1)).astimezone(zone) + timedelta(seconds=1)
        at = wall + timedelta(minutes=15 * draw(st.integers(-8, 8)))
        after = change + timedelta(minutes=draw(st.integers(-3 * 1440, 1440)))
        dow = draw(st.sampled_from([int(at.strftime("%w")), draw(st.integers(0, 6))]))
        dom = draw(st.sampled_from([at.day, draw(st.integers(1, 31))]))
        hour, minute = at.hour, at.minute
    else:
        after = draw(
            st.datetimes(
                min_value=datetime(2005, 1, 1), max_value=datetime(2040, 1, 1), timezones=st.just(UTC)
            )
        )
        dow, dom = draw(st.integers(0, 6)), draw(st.integers(1, 31))
        hour, minute = draw(st.integers(0, 23)), draw(st.sampled_from([0, 1, 15, 30, 45, 59]))
    rule = {
        "kind": kind,
        "dow": dow if kind == "weekly" else None,
        "dom": dom if kind == "monthly" else None,
        "at": f"{hour:02d}:{minute:02d}",
        "tz": tz,
    }
    return rule, after


def test_transition_scan_finds_the_known_changes() -> None:
    changes = [t for t in transitions("America/New_York") if t.year == 2025]
    assert changes == [utc(2025, 3, 9, 7), utc(2025, 11, 2, 6)]


@settings(max_examples=1000, deadline=None)
@given(case=cases())
def test_next_run_at_properties(case: tuple[dict[str, Any], datetime]) -> None:
    rule, after = case
    kind, dow, dom = str(rule["kind"]), rule["dow"], rule["dom"]
    zone = ZoneInfo(str(rule["tz"]))
    hour, minute = (int(p) for p in str(rule["at"]).split(":"))
    result = nxt(after, **rule)

    assert result > after
    local = result.astimezone(zone)
    first = after.astimezone(zone).date() - timedelta(days=2)
    days = [first + timedelta(days=i) for i in range((local.date() - first).days + 2)]
    slot_days = [d for d in days if matches(d, kind, dow, dom)]

    wall = local.replace(tzinfo=None)
    plain = (
        (local.hour, local.minute, local.second) == (hour, minute, 0)
        and matches(local.date(), kind, dow, dom)
        and result == occurrences(wall, zone)[0]
    )
    if not plain:
        # Otherwise it must be a slot whose wall time a DST gap skipped, run the instant the gap
        # ends (Samoa's skipped Friday 2011-12-30 ran at Saturday 00:00, the same wall time).
        before = (result - timedelta(seconds=1)).astimezone(zone).replace(tzinfo=None)
        skipped = [
            d
            for d in slot_days
            if before < datetime.combine(d, time(hour, minute)) <= wall
            and not occurrences(datetime.combine(d, time(hour, minute)), zone)
        ]
        assert skipped, f"{result} is neither the first {rule['at']} of a slot day nor the end of a DST gap"

    # No slot that really occurs lies strictly between `after` and the result.
    for day in slot_days:
        real = occurrences(datetime.combine(day, time(hour, minute)), zone)
        if real:
            assert not after < real[0] < result, f"skipped the slot {real[0]}"


@settings(max_examples=300, deadline=None)
@given(case=cases())
def test_consecutive_slots_increase_and_match_slots_between(case: tuple[dict[str, Any], datetime]) -> None:
    rule, after = case
    first = nxt(after, **rule)
    second = nxt(first, **rule)
    assert second > first
    assert between(after, second, **rule) == [first, second]
