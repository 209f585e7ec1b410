"""The printable page of a signed coupon link, and which answer a client asked for.

The page is server-rendered in the instance's language and theme: its codes as cut-out cards with
their validity in local time, "Print" and "Download PDF/CSV" buttons, and a link to the next page
when there are more codes than one page holds. Everything comes from guestgate itself (the logo
through a same-origin signed asset URL); the Content-Security-Policy allows nothing else, and the
one inline script (the Print button) and stylesheet carry a nonce. Without scripts the button
stays hidden and the browser's own Print command does the same.

Content negotiation: `format=` decides when given. Without it the answer is the page only when
`Accept` names `text/html` (or `application/xhtml+xml`) with a higher quality than
`application/json`; `*/*`, no `Accept` (curl, Altostrat clients) and `application/json` get JSON.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, Template, select_autoescape
from markupsafe import Markup

from guestgate import local_time
from guestgate.coupon_links.service import LinkContents
from guestgate.coupons import export
from guestgate.coupons.words import MESSAGES, Words
from guestgate.errors import GuestgateError
from guestgate.portal import theme
from guestgate.portal.i18n import DEFAULT_LOCALE

TEMPLATES = Path(__file__).parent / "templates"
_HTML_TYPES = ("text/html", "application/xhtml+xml")
# Accept headers longer than this are not parsed (no browser sends that much).
_MAX_ACCEPT = 1024


@dataclass(frozen=True)
class Rendered:
    """A rendered page and the headers it must be sent with."""

    body: bytes
    nonce: str

    def headers(self) -> dict[str, str]:
        """No cache (the codes are bearer secrets), a strict CSP, no referrer (the URL is the key)."""
        return {
            "Cache-Control": "no-store",
            "Content-Security-Policy": (
                f"default-src 'none'; style-src 'nonce-{self.nonce}'; script-src 'nonce-{self.nonce}'; "
                "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
            ),
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            "Vary": "Accept",
        }


def wants_html(accept: str | None) -> bool:
    """True when `Accept` prefers an HTML page to JSON (see the module docstring)."""
    if not accept or len(accept) > _MAX_ACCEPT:
        return False
    html_q = json_q = 0.0
    for item in accept.split(","):
        media, _, params = item.partition(";")
        media = media.strip().lower()
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = max(0.0, min(1.0, float(value)))
                except ValueError:
                    quality = 0.0
        if media in _HTML_TYPES:
            html_q = max(html_q, quality)
        elif media == "application/json":
            json_q = max(json_q, quality)
    return html_q > 0 and html_q > json_q


@dataclass(frozen=True)
class PageLinks:
    """The page's own URLs: its downloads, the next page, the logo (all same-origin)."""

    pdf_url: str
    csv_url: str
    next_url: str | None
    logo_url: str | None
    expires_at: datetime


def render_page(contents: LinkContents, links: PageLinks, *, now: datetime) -> Rendered:
    """The printable page of one page of a link's valid coupons."""
    words = Words(contents.branding.locale)
    zone = contents.zone
    coupons = contents.page.items
    facts: list[tuple[str, str]] = []
    if contents.schedule is not None:
        facts.append((words("schedule"), contents.schedule.name))
    if contents.batch is not None:
        batch = contents.batch
        facts.append((words("generated_at"), local_time.date_time(batch.ran_at, zone)))
        facts.append((words("valid_for"), words.duration(batch.valid_for_in_minutes)))
        ends = batch.ran_at + timedelta(minutes=batch.valid_for_in_minutes)
        facts.append((words("redeemable_until"), local_time.date_time(ends, zone)))
    name = contents.branding.name or words("default_name")
    context: dict[str, Any] = {
        "heading": words.counted("codes", len(coupons)),
        "facts": facts,
        "times_in": words("times_in", zone=_zone_name(zone, now)),
        "actions_label": words("actions"),
        "print_label": words("print"),
        "pdf_label": words("download_pdf"),
        "csv_label": words("download_csv"),
        "print_hint": words("print_hint"),
        "pdf_url": links.pdf_url,
        "csv_url": links.csv_url,
        "codes": [
            {
                "code": coupon.code,
                "until": words("card_valid_until", time=local_time.date_time(coupon.expires_at, zone)),
                "plan": export.plan_line(coupon, words),
            }
            for coupon in coupons
        ],
        "card_network": words("card_network", name=contents.branding.network_name or ""),
        "none_left": words("none_left"),
        "next_url": links.next_url,
        "more_codes": words("more_codes"),
        "next_label": words("next_page"),
        "private": words("page_private", time=local_time.date_time(links.expires_at, zone)),
    }
    return _render(
        "coupons.html",
        words=words,
        title=words("document_title", name=name),
        brand_name=name,
        network_name=contents.branding.network_name,
        colours=contents.branding.colours,
        logo_url=links.logo_url,
        **context,
    )


# A query parameter missing or malformed is a link cut short or edited: the front desk's remedy is
# the same as for a bad signature (open it again from the e-mail, or ask for a new one).
_SAME_WORDS = {"parameter_missing": "signature_invalid", "parameter_invalid": "signature_invalid"}


def render_error(
    error: GuestgateError, *, locale: str | None = None, colours: dict[str, str] | None = None
) -> Rendered:
    """The page of a link that cannot be shown, in words a front desk can act on."""
    words = Words(locale)
    key = f"err_{_SAME_WORDS.get(error.code, error.code)}"
    message = words(key) if key in MESSAGES[DEFAULT_LOCALE] else words("err_other")
    return _render(
        "error.html",
        words=words,
        title=words("error_title"),
        brand_name=words("default_name"),
        network_name=None,
        colours=colours or theme.colours(None),
        logo_url=None,
        heading=words("error_title"),
        message=message,
        code=error.code,
    )


def _render(
    template: str,
    *,
    words: Words,
    title: str,
    brand_name: str,
    network_name: str | None,
    colours: dict[str, str],
    logo_url: str | None,
    **context: Any,
) -> Rendered:
    nonce = secrets.token_urlsafe(16)
    html = _template(template).render(
        lang=words.language,
        title=title,
        brand_name=brand_name,
        network_name=network_name,
        network_label=words("network"),
        logo_url=logo_url,
        style=_stylesheet(theme.palette_key(colours)),
        nonce=nonce,
        **context,
    )
    return Rendered(html.encode(), nonce)


@lru_cache(maxsize=1)
def _environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )


@lru_cache(maxsize=8)
def _template(name: str) -> Template:
    return _environment().get_template(name)


@lru_cache(maxsize=1)
def _css() -> str:
    return (TEMPLATES / "page.css").read_text()


@lru_cache(maxsize=256)
def _stylesheet(key: tuple[tuple[str, str], ...]) -> Markup:
    # The colours are validated `#hex` values (theme.colours) and the rules are our own file.
    variables = "".join(f"--{name}:{value};" for name, value in theme.palette_of(key).items())
    return Markup(f":root{{{variables}}}\n{_css()}")  # noqa: S704


def _zone_name(zone: Any, now: datetime) -> str:
    key = getattr(zone, "key", None)
    abbreviation = local_time.abbreviation(now, zone)
    return f"{key} ({abbreviation})" if key and key != abbreviation else abbreviation
