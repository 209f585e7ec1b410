"""How times read to people: the local zone, its abbreviation, and lengths of time in words.

The API speaks UTC (RFC 3339 with `Z`). What people read - printed cards, the CSV's
`valid_until`, the batch e-mail, the printable page of a signed link, the portal's status page -
is in local time with the zone's abbreviation (`2026-12-02 21:11 AEDT`). The zone, first that
applies:

1. the schedule's `timezone`, for a schedule's batches and its signed link;
2. the instance's `timezone` (extension), for everything else: batches made with
   `POST .../coupons`, batches whose schedule was deleted, the portal's status page;
3. UTC.

A zone without a letter abbreviation shows its offset (`UTC+04`).
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

# (singular, plural) of day, hour, minute; the word joining the last two parts; under a minute.
_WORDS: dict[str, tuple[tuple[str, str], tuple[str, str], tuple[str, str], str, str]] = {
    "en": (("day", "days"), ("hour", "hours"), ("minute", "minutes"), "and", "less than a minute"),
    "es": (("día", "días"), ("hora", "horas"), ("minuto", "minutos"), "y", "menos de un minuto"),
    "fr": (("jour", "jours"), ("heure", "heures"), ("minute", "minutes"), "et", "moins d'une minute"),
    "de": (("Tag", "Tage"), ("Stunde", "Stunden"), ("Minute", "Minuten"), "und", "weniger als eine Minute"),
    "pt": (("dia", "dias"), ("hora", "horas"), ("minuto", "minutos"), "e", "menos de um minuto"),
}


@lru_cache(maxsize=256)
def _zone(name: str) -> tzinfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def zone(*names: str | None) -> tzinfo:
    """The first of `names` that is a known IANA zone (schedule's, then instance's), else UTC."""
    for name in names:
        if name:
            found = _zone(name)
            if found is not None:
                return found
    return UTC


def abbreviation(moment: datetime, where: tzinfo) -> str:
    """The zone's abbreviation at `moment` (`AEDT`, `CET`), or its offset (`UTC+04`, `UTC-03:30`)."""
    name = _aware(moment).astimezone(where).tzname() or "UTC"
    if name[:1] in "+-":
        sign, digits = name[0], name[1:]
        return f"UTC{sign}{digits[:2]}:{digits[2:]}" if len(digits) == 4 else f"UTC{sign}{digits}"
    return name


def date_time(moment: datetime, where: tzinfo) -> str:
    """`2026-12-02 21:11 AEDT`: the local date and time of `moment` with the zone."""
    local = _aware(moment).astimezone(where)
    return f"{local:%Y-%m-%d %H:%M} {abbreviation(moment, where)}"


def clock(moment: datetime, where: tzinfo, *, now: datetime) -> str:
    """`21:11 AEDT` when `moment` is on the local day of `now`, else the date too."""
    local = _aware(moment).astimezone(where)
    if local.date() == _aware(now).astimezone(where).date():
        return f"{local:%H:%M} {abbreviation(moment, where)}"
    return date_time(moment, where)


def local_date(moment: datetime, where: tzinfo) -> str:
    """`2026-12-02`, the local date of `moment`."""
    return f"{_aware(moment).astimezone(where):%Y-%m-%d}"


def duration_words(seconds: float, language: str, *, round_up: bool = False) -> str:
    """A length of time in words: `1 day, 2 hours and 5 minutes`, `3 Stunden und 1 Minute`."""
    day, hour, minute, conjunction, under_a_minute = _WORDS.get(language, _WORDS["en"])
    total = int(seconds)
    minutes = -(-total // 60) if round_up else total // 60
    if minutes < 1:
        return under_a_minute
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    parts = [
        f"{value} {names[0] if value == 1 else names[1]}"
        for value, names in ((days, day), (hours, hour), (mins, minute))
        if value
    ]
    if len(parts) == 1:
        return parts[0]
    return f"{', '.join(parts[:-1])} {conjunction} {parts[-1]}"


def _aware(moment: datetime) -> datetime:
    # SQLite hands back naive UTC datetimes when read outside the UTCDateTime column type.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
