"""Server-rendered guest pages: Jinja2 with autoescaping, the stylesheet inlined, no scripts.

Everything a page needs comes from guestgate itself (images through same-origin signed asset
URLs), so a walled garden of one host is enough, and the Content-Security-Policy says so.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from guestgate.instances.urls import asset_url
from guestgate.portal import theme
from guestgate.portal.i18n import Translator
from guestgate.portal.store import InstanceInfo
from guestgate.security import UrlSigner

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"


@dataclass(frozen=True)
class Page:
    """A rendered page and the nonce its inline stylesheet carries."""

    body: bytes
    nonce: str

    def headers(self) -> dict[str, str]:
        """Headers every guest page is sent with."""
        return {
            "content-type": "text/html; charset=utf-8",
            "cache-control": "no-store",
            "content-security-policy": (
                f"default-src 'none'; style-src 'nonce-{self.nonce}'; img-src 'self'; "
                "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
            ),
            "x-content-type-options": "nosniff",
            # Status links carry a token in the query string: never leak it to the next site.
            "referrer-policy": "no-referrer",
        }


class Renderer:
    """Renders the guest page templates with an instance's theme and a language."""

    def __init__(self, *, signer: UrlSigner) -> None:
        self._signer = signer
        self._env = Environment(
            loader=FileSystemLoader(TEMPLATES),
            autoescape=select_autoescape(default=True, default_for_string=True),
            trim_blocks=True,
            lstrip_blocks=True,
            auto_reload=False,
        )
        self._css = (STATIC / "portal.css").read_text()
        self._style = lru_cache(maxsize=256)(self._stylesheet)

    def _stylesheet(self, key: tuple[tuple[str, str], ...]) -> Markup:
        """The page's stylesheet for one theme: its colours as custom properties, then the rules."""
        # Colours are validated `#hex` values and the rules are our own file: nothing to escape.
        variables = "".join(f"--{name}:{value};" for name, value in theme.palette_of(key).items())
        return Markup(f":root{{{variables}}}\n{self._css}")  # noqa: S704

    def render(
        self,
        template: str,
        *,
        t: Translator,
        title: str,
        instance: InstanceInfo | None,
        now: datetime,
        base: str = "/guest",
        **context: Any,
    ) -> Page:
        """The page `template` for `instance` (or the default theme) in `t`'s language."""
        nonce = secrets.token_urlsafe(16)
        logo_url = icon_url = None
        if instance is not None and instance.logo is not None:
            logo_url = asset_url(instance.logo.id, signer=self._signer, public_url="", now=now)
        if instance is not None and instance.icon is not None:
            icon_url = asset_url(instance.icon.id, signer=self._signer, public_url="", now=now)
        html = self._env.get_template(template).render(
            t=t,
            title=title,
            brand=instance,
            style=self._style(theme.palette_key(instance.theme if instance else None)),
            nonce=nonce,
            logo_url=logo_url,
            icon_url=icon_url,
            base=base,
            **context,
        )
        return Page(html.encode(), nonce)
