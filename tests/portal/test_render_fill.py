"""The success page filled into a cached skeleton is byte for byte the page Jinja2 renders."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest
from jinja2 import ChoiceLoader, DictLoader

from guestgate.config import Settings
from guestgate.portal.i18n import Translator
from guestgate.portal.render import Renderer
from guestgate.portal.store import ImageRef, InstanceInfo
from guestgate.security import UrlSigner

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
PLAIN = InstanceInfo(
    id="11111111-1111-1111-1111-111111111111",
    org_id="org-a",
    name="Lobby Wi-Fi",
    strategy="coupon",
    session_ttl=3600,
    theme={},
    terms_text="Be nice.",
    locale="en",
)
BRANDED = InstanceInfo(
    id="22222222-2222-2222-2222-222222222222",
    org_id="org-a",
    name='Café <script>alert("x")</script> & Co',
    strategy="coupon",
    session_ttl=7200,
    theme={"accent_color": "#123456", "background_color": "#000000"},
    terms_text=None,
    locale="fr",
    logo=ImageRef(id="33333333-3333-3333-3333-333333333333", width=320, height=80),
    icon=ImageRef(id="44444444-4444-4444-4444-444444444444", width=64, height=64),
)


@pytest.fixture
def renderer(settings: Settings) -> Renderer:
    return Renderer(signer=UrlSigner(settings))


def slots(**changes: str | None) -> dict[str, str | None]:
    values: dict[str, str | None] = {
        "remaining": "59 min",
        "ends_at": "13:00",
        "expires_iso": "2026-05-01T13:00:00Z",
        "orig": "http://example.com/a?b=1&c=<2>",
        "status_url": "/guest/status?t=abc_DEF-123",
        "refresh_url": None,
    }
    values.update(changes)
    return values


def without_nonce(html: bytes) -> str:
    return re.sub(r'nonce="[^"]*"', 'nonce=""', html.decode())


def both(
    renderer: Renderer, instance: InstanceInfo, locale: str, values: dict[str, str | None], **context: Any
) -> tuple[str, str]:
    t = Translator(locale)
    common: dict[str, Any] = {
        "t": t,
        "title": t("success_title"),
        "instance": instance,
        "now": NOW,
        "base": "/guest",
    }
    filled = renderer.render_filled("session.html", slots=values, **common, **context)
    full = renderer.render("session.html", **common, **values, **context)
    return without_nonce(filled.body), without_nonce(full.body)


@pytest.mark.parametrize("instance", [PLAIN, BRANDED], ids=["plain", "branded"])
@pytest.mark.parametrize("locale", ["en", "es", "fr", "de", "pt"])
@pytest.mark.parametrize(
    "values",
    [
        slots(),
        slots(orig=None),
        slots(status_url=None),
        slots(orig="", status_url=""),
        slots(orig='http://x.test/"><script>alert(1)</script>', remaining="1 h 5 min"),
    ],
    ids=["all", "no-orig", "no-status", "empty", "hostile"],
)
def test_the_filled_success_page_equals_the_rendered_one(
    renderer: Renderer, instance: InstanceInfo, locale: str, values: dict[str, str | None]
) -> None:
    filled, full = both(renderer, instance, locale, values, session=True, activating=False, refresh_seconds=3)
    assert filled == full
    assert "\x1e" not in filled


def test_the_activating_page_is_filled_like_it_is_rendered(renderer: Renderer) -> None:
    values = slots(refresh_url="/guest/status?t=xyz&site=1")
    filled, full = both(renderer, PLAIN, "en", values, session=True, activating=True, refresh_seconds=3)
    assert filled == full
    assert 'http-equiv="refresh"' in filled


def test_one_skeleton_serves_different_guests_with_their_own_values(renderer: Renderer) -> None:
    for minute in range(3):
        values = slots(
            remaining=f"{59 - minute} min",
            ends_at=f"13:0{minute}",
            status_url=f"/guest/status?t=token{minute}",
            orig=f"http://example.com/{minute}",
        )
        filled, full = both(
            renderer, BRANDED, "en", values, session=True, activating=False, refresh_seconds=3
        )
        assert filled == full
        assert f"token{minute}" in filled and f"13:0{minute}" in filled
    assert len(renderer._skeletons) == 1


def test_the_page_carries_the_nonce_of_its_header(renderer: Renderer) -> None:
    t = Translator("en")
    page = renderer.render_filled(
        "session.html", t=t, title="x", instance=PLAIN, now=NOW, slots=slots(), session=True, activating=False
    )
    assert f'nonce="{page.nonce}"'.encode() in page.body
    assert f"'nonce-{page.nonce}'" in page.headers()["content-security-policy"]


def test_a_template_that_filters_a_slot_is_rendered_in_full(renderer: Renderer) -> None:
    renderer._env.loader = ChoiceLoader(
        [DictLoader({"shout.html": "<p>{{ orig|upper }}</p><p>{{ remaining }}</p>"}), renderer._env.loader]  # type: ignore[list-item]
    )
    t = Translator("en")
    for orig in ("http://a.test/x", "http://b.test/y"):
        page = renderer.render_filled(
            "shout.html", t=t, title="x", instance=None, now=NOW, slots={"orig": orig, "remaining": "5 min"}
        )
        assert page.body.decode() == f"<p>{orig.upper()}</p><p>5 min</p>"
