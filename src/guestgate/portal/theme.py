"""The instance's colours on the page, kept readable.

Colours come from the database but end up inside a `<style>` block, so each is checked
again here: anything but `#RGB`/`#RRGGBB` falls back to the default. The operator's colours
are used as given for surfaces; text colours that would be too faint against their
background (WCAG AA: 4.5:1, 3:1 for the large button text) are darkened or lightened just
enough to be read.
"""

from __future__ import annotations

import re
from functools import lru_cache

from guestgate.instances.schemas import DEFAULT_THEME

_HEX = re.compile(r"#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})")
TEXT_CONTRAST = 4.5
LARGE_TEXT_CONTRAST = 3.0


def colours(theme: dict[str, str] | None) -> dict[str, str]:
    """The seven theme colours, each valid (defaults for missing or malformed ones)."""
    given = theme or {}
    return {
        name: given[name] if isinstance(given.get(name), str) and _HEX.fullmatch(given[name]) else default
        for name, default in DEFAULT_THEME.items()
    }


def _rgb(colour: str) -> tuple[float, float, float]:
    digits = colour[1:]
    if len(digits) == 3:
        digits = "".join(ch * 2 for ch in digits)
    return (int(digits[0:2], 16) / 255, int(digits[2:4], 16) / 255, int(digits[4:6], 16) / 255)


def _hex(rgb: tuple[float, float, float]) -> str:
    return "#" + "".join(f"{round(max(0.0, min(1.0, c)) * 255):02x}" for c in rgb)


def _luminance(rgb: tuple[float, float, float]) -> float:
    def channel(c: float) -> float:
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(first: str, second: str) -> float:
    """The WCAG contrast ratio of two colours (1 to 21)."""
    a, b = _luminance(_rgb(first)), _luminance(_rgb(second))
    light, dark = max(a, b), min(a, b)
    return (light + 0.05) / (dark + 0.05)


def readable(foreground: str, background: str, minimum: float = TEXT_CONTRAST) -> str:
    """`foreground`, or the nearest shade of it towards black or white that meets `minimum`."""
    if contrast(foreground, background) >= minimum:
        return foreground
    fg = _rgb(foreground)
    target = (0.0, 0.0, 0.0) if _luminance(_rgb(background)) > 0.18 else (1.0, 1.0, 1.0)
    for step in range(1, 21):
        mix = step / 20
        shade = _hex(
            (
                fg[0] + (target[0] - fg[0]) * mix,
                fg[1] + (target[1] - fg[1]) * mix,
                fg[2] + (target[2] - fg[2]) * mix,
            )
        )
        if contrast(shade, background) >= minimum:
            return shade
    return _hex(target)


def palette(theme: dict[str, str] | None) -> dict[str, str]:
    """CSS custom properties: the seven colours as given plus readable text colours."""
    return palette_of(palette_key(theme))


def palette_key(theme: dict[str, str] | None) -> tuple[tuple[str, str], ...]:
    """A hashable form of a theme's (validated) colours."""
    return tuple(sorted(colours(theme).items()))


def palette_of(key: tuple[tuple[str, str], ...]) -> dict[str, str]:
    """The palette of a theme given by `palette_key`."""
    return dict(_palette(key))


@lru_cache(maxsize=256)
def _palette(items: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    # Every page render needs this and themes rarely change: the contrast maths runs once per theme.
    c = dict(items)
    return tuple(
        {
            "accent-text": c["accent_text"],
            "accent": c["accent_color"],
            "text": c["text_color"],
            "secondary": c["secondary_text_color"],
            "background": c["background_color"],
            "border": c["border_color"],
            "box": c["box_color"],
            "text-readable": readable(c["text_color"], c["box_color"]),
            "secondary-readable": readable(c["secondary_text_color"], c["box_color"]),
            "accent-text-readable": readable(c["accent_text"], c["accent_color"], LARGE_TEXT_CONTRAST),
            "link-readable": readable(c["accent_color"], c["box_color"]),
        }.items()
    )
