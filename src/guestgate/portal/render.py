"""Server-rendered guest pages: Jinja2 with autoescaping, the stylesheet inlined, no scripts.

Everything a page needs comes from guestgate itself (images through same-origin signed asset
URLs), so a walled garden of one host is enough, and the Content-Security-Policy says so.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import structlog
from jinja2 import Environment, FileSystemLoader, Template, select_autoescape
from markupsafe import Markup, escape

from guestgate.instances.urls import asset_url
from guestgate.portal import theme
from guestgate.portal.i18n import Translator
from guestgate.portal.store import InstanceInfo
from guestgate.security import UrlSigner

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"
# Skeletons kept per renderer: one per template, language, instance and set of filled slots.
_SKELETONS_MAX = 512
# Stand-ins for slot values while a skeleton is rendered: escaping leaves them as they are.
_MARK = "\x1e{index}:{salt}\x1f"
_MARKS = re.compile("\x1e(\\d+):([ab])\x1f")

log = structlog.get_logger(__name__)


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
        self._templates: dict[str, Template] = {}
        # key -> (static pieces, slot name between each two pieces), or None: not fillable.
        self._skeletons: dict[Hashable, tuple[tuple[str, ...], tuple[str, ...]] | None] = {}

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
        html = self._template(template).render(
            **self._frame(t, title, instance, base), **self._urls(instance, now), nonce=nonce, **context
        )
        return Page(html.encode(), nonce)

    def render_filled(
        self,
        template: str,
        *,
        t: Translator,
        title: str,
        instance: InstanceInfo | None,
        now: datetime,
        base: str = "/guest",
        slots: Mapping[str, str | None],
        **context: Hashable,
    ) -> Page:
        """The page `render` would make, from a cached skeleton of this page with `slots` filled in.

        The sign-in success page is rendered at every sign-in; Jinja2 would spend more time on
        it than the redemption takes. A skeleton is the template rendered once with markers for
        the `slots` (text the template only prints, or tests for being set: for example a URL
        or a time) and the real `context` (the page's shape: flags, numbers, titles; part of
        the cache key). Filling it escapes each slot value just as the template's autoescape
        would. A template that does anything else with a slot value (compares it, filters it)
        gets no skeleton and is rendered in full, every time.
        """
        nonce = secrets.token_urlsafe(16)
        values: dict[str, str | None] = {**slots, **self._urls(instance, now), "nonce": nonce}
        # A slot's text is filled in later, but whether it is set (or None, or empty) shapes the page.
        shape = tuple(sorted((name, _presence(value)) for name, value in values.items()))
        key = (
            template,
            t.locale,
            title,
            base,
            _instance_key(instance),
            shape,
            tuple(sorted(context.items())),
        )
        if key not in self._skeletons:
            if len(self._skeletons) >= _SKELETONS_MAX:
                self._skeletons.clear()
            self._skeletons[key] = self._skeleton(template, t, title, instance, base, values, context)
        skeleton = self._skeletons[key]
        if skeleton is None:
            full = {**context, **slots}
            return self.render(template, t=t, title=title, instance=instance, now=now, base=base, **full)
        pieces, order = skeleton
        out = [pieces[0]]
        for name, piece in zip(order, pieces[1:], strict=True):
            out.append(escape(values[name]))
            out.append(piece)
        return Page("".join(out).encode(), nonce)

    def _skeleton(
        self,
        template: str,
        t: Translator,
        title: str,
        instance: InstanceInfo | None,
        base: str,
        values: Mapping[str, str | None],
        context: Mapping[str, Hashable],
    ) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
        names = [name for name, value in values.items() if value]
        rendered: list[tuple[tuple[str, ...], tuple[str, ...]]] = []
        # Rendered twice with different markers: a template that does more with a slot than
        # print it gives different pieces, and is then not filled but rendered in full.
        for salt in ("a", "b"):
            marked = {
                name: _MARK.format(index=names.index(name), salt=salt) if value else value
                for name, value in values.items()
            }
            html = self._template(template).render(
                **self._frame(t, title, instance, base), **marked, **context
            )
            parts = _MARKS.split(html)
            pieces = tuple(parts[0::3])
            order = tuple(names[int(index)] for index in parts[1::3])
            if any(found != salt for found in parts[2::3]):
                return None
            rendered.append((pieces, order))
        if rendered[0] != rendered[1]:
            log.warning("portal.page_not_fillable", template=template)
            return None
        return rendered[0]

    def _frame(self, t: Translator, title: str, instance: InstanceInfo | None, base: str) -> dict[str, Any]:
        """What every page's layout takes: language, title, brand, its stylesheet, the portal's path."""
        style = self._style(theme.palette_key(instance.theme if instance else None))
        return {"t": t, "title": title, "brand": instance, "style": style, "base": base}

    def _template(self, name: str) -> Template:
        compiled = self._templates.get(name)
        if compiled is None:
            compiled = self._templates[name] = self._env.get_template(name)
        return compiled

    def _urls(self, instance: InstanceInfo | None, now: datetime) -> dict[str, str | None]:
        """The signed URLs of the instance's logo and icon (same-origin, valid for a day or more)."""
        logo_url = icon_url = None
        if instance is not None and instance.logo is not None:
            logo_url = asset_url(instance.logo.id, signer=self._signer, public_url="", now=now)
        if instance is not None and instance.icon is not None:
            icon_url = asset_url(instance.icon.id, signer=self._signer, public_url="", now=now)
        return {"logo_url": logo_url, "icon_url": icon_url}


def _presence(value: str | None) -> str:
    if value is None:
        return "none"
    return "set" if value else "empty"


def _instance_key(instance: InstanceInfo | None) -> Hashable:
    """Everything about the instance a page may show, as a cache key."""
    if instance is None:
        return None
    return tuple(
        (f.name, tuple(sorted(value.items())) if isinstance(value, dict) else value)
        for f in fields(instance)
        for value in (getattr(instance, f.name),)
    )
