"""Times people read: the zone rule, abbreviations across DST changes, lengths of time in words."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from guestgate import local_time


def test_the_first_known_zone_wins_and_utc_is_the_fallback() -> None:
    assert str(local_time.zone("Australia/Sydney", "Europe/Paris")) == "Australia/Sydney"
    assert str(local_time.zone(None, "Europe/Paris")) == "Europe/Paris"
    assert str(local_time.zone("", "Not/AZone", "Europe/Paris")) == "Europe/Paris"
    assert local_time.zone() is UTC
    assert local_time.zone("Not/AZone") is UTC
    assert local_time.zone("../../etc/passwd") is UTC


@pytest.mark.parametrize(
    ("moment", "shown"),
    [
        # Sydney, first Sunday of April 2026: 03:00 AEDT becomes 02:00 AEST; 02:30 happens twice.
        (datetime(2026, 4, 4, 15, 30, tzinfo=UTC), "2026-04-05 02:30 AEDT"),
        (datetime(2026, 4, 4, 16, 30, tzinfo=UTC), "2026-04-05 02:30 AEST"),
        # First Sunday of October 2026: 02:00 AEST becomes 03:00 AEDT; 02:30 never happens.
        (datetime(2026, 10, 3, 15, 59, tzinfo=UTC), "2026-10-04 01:59 AEST"),
        (datetime(2026, 10, 3, 16, 0, tzinfo=UTC), "2026-10-04 03:00 AEDT"),
    ],
)
def test_sydney_times_carry_the_abbreviation_of_the_moment(moment: datetime, shown: str) -> None:
    assert local_time.date_time(moment, local_time.zone("Australia/Sydney")) == shown


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("UTC", "UTC"),
        ("Europe/Berlin", "CET"),
        ("America/New_York", "EST"),
        ("Asia/Kolkata", "IST"),
        ("Asia/Dubai", "UTC+04"),  # no letter abbreviation: the offset
        ("America/St_Johns", "NST"),
        ("Asia/Kathmandu", "UTC+05:45"),
    ],
)
def test_zones_without_a_letter_abbreviation_show_their_offset(name: str, shown: str) -> None:
    assert local_time.abbreviation(datetime(2026, 1, 15, 12, tzinfo=UTC), local_time.zone(name)) == shown


def test_naive_datetimes_are_read_as_utc() -> None:
    assert local_time.date_time(datetime(2026, 1, 15, 12), UTC) == "2026-01-15 12:00 UTC"


def test_a_clock_time_names_the_day_only_when_it_is_not_today() -> None:
    sydney = local_time.zone("Australia/Sydney")
    now = datetime(2026, 4, 4, 12, tzinfo=UTC)  # 23:00 AEDT on 4 April
    assert local_time.clock(now + timedelta(minutes=30), sydney, now=now) == "23:30 AEDT"
    assert local_time.clock(now + timedelta(hours=2), sydney, now=now) == "2026-04-05 01:00 AEDT"


@pytest.mark.parametrize(
    ("seconds", "language", "words"),
    [
        (0, "en", "less than a minute"),
        (59, "en", "less than a minute"),
        (60, "en", "1 minute"),
        (3600, "en", "1 hour"),
        (9000, "en", "2 hours and 30 minutes"),
        (90061, "en", "1 day, 1 hour and 1 minute"),
        (172800, "en", "2 days"),
        (9000, "de", "2 Stunden und 30 Minuten"),
        (3660, "de", "1 Stunde und 1 Minute"),
        (90000, "es", "1 día y 1 hora"),
        (7200, "fr", "2 heures"),
        (30, "fr", "moins d'une minute"),
        (86460, "pt", "1 dia e 1 minuto"),
        (120, "xx", "2 minutes"),
    ],
)
def test_lengths_of_time_in_words(seconds: int, language: str, words: str) -> None:
    assert local_time.duration_words(seconds, language) == words


def test_round_up_counts_a_started_minute() -> None:
    assert local_time.duration_words(61, "en", round_up=True) == "2 minutes"
