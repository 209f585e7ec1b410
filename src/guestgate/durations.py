"""Lengths of time as people type them on a command line: `3600`, `90m`, `12h`, `30d`, `1h30m`."""

from __future__ import annotations

import re

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_PART = re.compile(r"(\d{1,9})([smhdw])")
# Long enough for any sane token; short enough that no date computed from it overflows.
MAX_SECONDS = 3650 * 86400


class DurationError(ValueError):
    """The text is not a duration; the message says what is accepted."""


def parse_duration(text: str, *, minimum: int = 0) -> int:
    """Seconds of `text`: plain seconds, or numbers with s, m, h, d or w (`30d`, `1h30m`)."""
    raw = text.strip().lower()
    if raw.isdigit() and len(raw) <= 12:
        seconds = int(raw)
    else:
        parts = _PART.findall(raw)
        if not parts or "".join(n + u for n, u in parts) != raw:
            raise DurationError(
                f"'{text}' is not a duration: give seconds (3600) or a number with s, m, h, d or w "
                "(90m, 12h, 30d, 1h30m)"
            )
        seconds = sum(int(number) * UNITS[unit] for number, unit in parts)
    if seconds < minimum:
        raise DurationError(f"'{text}' is shorter than the minimum of {format_duration(minimum)}")
    if seconds > MAX_SECONDS:
        raise DurationError(f"'{text}' is longer than the maximum of {MAX_SECONDS // 86400}d")
    return seconds


def format_duration(seconds: int) -> str:
    """`2592000` -> `30d`, `5400` -> `1h 30m`, `59` -> `59s` (the two largest units)."""
    if seconds < 60:
        return f"{seconds}s"
    parts: list[str] = []
    rest = seconds
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        count, rest = divmod(rest, size)
        if count:
            parts.append(f"{count}{unit}")
    return " ".join(parts[:2])
