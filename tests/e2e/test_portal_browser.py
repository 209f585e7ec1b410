"""The guest portal in Chromium at a phone's size: the coupon journey, OAuth2 through a real OpenID
provider (Google's, Microsoft's and a generic `oidc` issuer's code paths), the integration test URL,
and screenshots.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from PIL import Image
from playwright.sync_api import Page, expect

from guestgate.auth_integrations.service import signed_test_url
from guestgate.db import utcnow
from tests.utils.browser import PhoneFactory, Server

pytestmark = pytest.mark.browser

IOS_CAPTIVE_SHEET = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148"
OCEAN = {
    "accent_text": "#FFFFFF",
    "accent_color": "#0369a1",
    "text_color": "#1f2937",
    "secondary_text_color": "#4b5563",
    "background_color": "#e0f2fe",
    "border_color": "#bae6fd",
    "box_color": "#ffffff",
}
NIGHT = {
    "accent_text": "#111111",
    "accent_color": "#fbbf24",
    "text_color": "#f3f4f6",
    "secondary_text_color": "#d1d5db",
    "background_color": "#111827",
    "border_color": "#374151",
    "box_color": "#1f2937",
}
# Only the two servers on loopback: the page must need nothing else.
OFF_LOOPBACK = re.compile(r"^https?://(?!127\.0\.0\.1[:/])")


def open_page(phone: PhoneFactory, **options: str) -> Page:
    context = phone(**options)
    context.route(OFF_LOOPBACK, lambda route: route.abort())
    return context.pages[0] if context.pages else context.new_page()


def sign_in_at_provider(page: Page, login: str) -> None:
    """oidc-provider's development login and consent pages."""
    page.locator('input[name="login"]').fill(login)
    page.locator('input[name="password"]').fill("any password will do")
    page.get_by_role("button", name="Sign-in").click()
    page.get_by_role("button", name="Continue").click()


def test_the_coupon_journey(server: Server, phone: PhoneFactory) -> None:
    site_id, instance_id = server.site(theme=OCEAN)
    server.coupon(instance_id, "KT7P9X")
    page = open_page(phone)
    page.goto(server.entry_url(site_id))
    expect(page.get_by_role("heading", level=1)).to_have_text("Harbour Café Wi-Fi")
    expect(page.get_by_text("Be kind to other guests.")).to_be_visible()

    page.get_by_label("Access code").fill("zzz999")
    page.get_by_label("I accept the terms and conditions").check()
    page.get_by_role("button", name="Connect").click()
    expect(page.get_by_role("alert")).to_have_text(
        "We don't recognise that code. Please check it and try again."
    )
    expect(page.get_by_label("Access code")).to_have_attribute("aria-invalid", "true")
    assert server.sessions(site_id) == []

    page.get_by_label("Access code").fill("kt7p-9x")
    expect(page.get_by_label("I accept the terms and conditions")).to_be_checked()
    page.get_by_role("button", name="Connect").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("You're connected")
    expect(page.get_by_text("Time remaining")).to_be_visible()
    expect(page.locator(".remaining strong")).to_have_text(re.compile(r"^(2 hours|1 hour and 59 minutes)$"))
    [session] = server.sessions(site_id)
    assert session.strategy == "coupon" and session.ip_address == "127.0.0.1"

    # Coming back shows the session, not a second sign-in.
    page.goto(server.entry_url(site_id))
    expect(page.get_by_role("heading", level=1)).to_have_text("Your connection")


def test_terms_must_be_ticked_before_the_code_is_sent(server: Server, phone: PhoneFactory) -> None:
    site_id, instance_id = server.site()
    server.coupon(instance_id, "KT7P9X")
    page = open_page(phone)
    page.goto(server.entry_url(site_id))
    page.get_by_label("Access code").fill("KT7P9X")
    page.get_by_role("button", name="Connect").click()
    # The browser itself holds the form back: the checkbox is required.
    expect(page.get_by_label("I accept the terms and conditions")).to_have_js_property(
        "validity.valueMissing", True
    )
    assert server.sessions(site_id) == []


@pytest.mark.parametrize(
    ("kind", "tenant", "button", "login", "email"),
    [
        ("google", None, "Sign in with Google", "ada.lovelace@example.org", "ada.lovelace@example.org"),
        # Microsoft's multi-tenant discovery: the issuer is a {tenantid} template, the token carries tid.
        ("azure", "common", "Sign in with Microsoft", "grace.hopper", "grace.hopper@example.org"),
        # [extension] Any OpenID Connect issuer: discovered, reached through the outbound policy.
        ("oidc", None, "Sign in with OpenID Connect", "alan.turing@example.org", "alan.turing@example.org"),
    ],
)
def test_the_oauth2_journey_through_a_real_openid_provider(
    server: Server,
    phone: PhoneFactory,
    screenshots: Path,
    kind: str,
    tenant: str | None,
    button: str,
    login: str,
    email: str,
) -> None:
    integration_id = server.integration(kind, tenant=tenant)
    site_id, _ = server.site(strategy="oauth2", integration_id=integration_id, theme=NIGHT)
    page = open_page(phone)
    page.goto(server.entry_url(site_id))
    page.get_by_label("I accept the terms and conditions").check()
    page.screenshot(path=str(screenshots / f"oauth-{kind}-en.png"), full_page=True)
    page.get_by_role("button", name=button).click()

    # The redirect page moves on by itself to the provider's login.
    expect(page.locator('input[name="login"]')).to_be_visible()
    assert page.url.startswith(server.base.rsplit(":", 1)[0])  # still loopback, on the provider's port
    assert server.sessions(site_id) == []
    sign_in_at_provider(page, login)

    expect(page.get_by_role("heading", level=1)).to_have_text("You're connected")
    assert page.url.startswith(f"{server.base}/guest/oauth/callback?")
    [session] = server.sessions(site_id)
    assert session.strategy == "oauth2"
    assert session.identity is not None
    assert session.identity["provider"] == kind
    assert session.identity["subject"] == login
    assert session.identity["email"] == email
    assert session.identity["name"]


def test_cancelling_at_the_provider_shows_a_clear_page(server: Server, phone: PhoneFactory) -> None:
    integration_id = server.integration("google")
    site_id, _ = server.site(strategy="oauth2", integration_id=integration_id)
    page = open_page(phone)
    page.goto(server.entry_url(site_id))
    page.get_by_label("I accept the terms and conditions").check()
    page.get_by_role("button", name="Sign in with Google").click()
    page.get_by_role("link", name="[ Cancel ]").click()
    expect(page.get_by_role("alert")).to_have_text(
        "Sign-in was cancelled. You can start again whenever you like."
    )
    page.get_by_role("link", name="Start again").click()
    expect(page.get_by_role("button", name="Sign in with Google")).to_be_visible()
    assert server.sessions(site_id) == []


def test_reloading_the_callback_does_not_sign_in_twice(server: Server, phone: PhoneFactory) -> None:
    integration_id = server.integration("google")
    site_id, _ = server.site(strategy="oauth2", integration_id=integration_id)
    page = open_page(phone)
    page.goto(server.entry_url(site_id))
    page.get_by_label("I accept the terms and conditions").check()
    page.get_by_role("button", name="Sign in with Google").click()
    sign_in_at_provider(page, "ada@example.org")
    expect(page.get_by_role("heading", level=1)).to_have_text("You're connected")
    page.reload()
    expect(page.get_by_role("alert")).to_have_text("This sign-in could not be verified. Please start again.")
    assert len(server.sessions(site_id)) == 1


@pytest.mark.parametrize("kind", ["google", "oidc"])
def test_the_integration_test_url_shows_the_identity_and_creates_nothing(
    server: Server, phone: PhoneFactory, kind: str
) -> None:
    integration_id = server.integration(kind)
    url = signed_test_url(integration_id, signer=server.runtime.signer, public_url=server.base, now=utcnow())
    page = open_page(phone)
    page.goto(url)
    sign_in_at_provider(page, "tester@example.org")
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign-in test")
    expect(page.locator("dl.identity")).to_contain_text("tester@example.org")
    expect(page.get_by_text("no session was created")).to_be_visible()


def test_google_inside_the_ios_captive_sheet_points_to_safari(
    server: Server, phone: PhoneFactory, screenshots: Path
) -> None:
    integration_id = server.integration("google")
    site_id, _ = server.site(strategy="oauth2", integration_id=integration_id, theme=OCEAN)
    page = open_page(phone, user_agent=IOS_CAPTIVE_SHEET)
    page.goto(server.entry_url(site_id))
    expect(page.get_by_role("heading", name="Continue in your browser")).to_be_visible()
    expect(page.get_by_label("Address to open")).to_have_value(server.entry_url(site_id))
    expect(page.get_by_role("button", name="Sign in with Google")).to_have_count(0)
    page.screenshot(path=str(screenshots / "oauth-captive-assistant-en.png"), full_page=True)


@pytest.mark.parametrize(("theme_name", "theme"), [("ocean", OCEAN), ("night", NIGHT)])
@pytest.mark.parametrize(("locale", "heading"), [("en-GB", "Access code"), ("fr-FR", "Code d'accès")])
def test_screenshots_of_the_page_in_two_themes_and_two_locales(
    server: Server,
    phone: PhoneFactory,
    screenshots: Path,
    theme_name: str,
    theme: dict[str, str],
    locale: str,
    heading: str,
) -> None:
    site_id, _ = server.site(theme=theme)
    page = open_page(phone, locale=locale)
    page.goto(server.entry_url(site_id))
    expect(page.get_by_label(heading)).to_be_visible()
    path = screenshots / f"signin-{theme_name}-{locale.split('-', maxsplit=1)[0]}.png"
    page.screenshot(path=str(path), full_page=True)
    with Image.open(path) as image:
        assert image.width == 390 * 2
        # The page's background is the theme's, seen in the top-left corner.
        red, green, blue = image.convert("RGB").getpixel((2, 2))
        expected = theme["background_color"]
        assert (red, green, blue) == tuple(int(expected[i : i + 2], 16) for i in (1, 3, 5))


def test_a_locked_out_guest_sees_the_venue_and_when_to_retry_even_reopening_the_page(
    server: Server, phone: PhoneFactory, screenshots: Path
) -> None:
    site_id, _ = server.site(terms=None)
    page = open_page(phone)
    page.goto(server.entry_url(site_id))
    for guess in ("ZZZ992", "ZZZ993", "ZZZ994", "ZZZ995", "ZZZ996"):
        page.get_by_label("Access code").fill(guess)
        page.get_by_role("button", name="Connect").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Harbour Café Wi-Fi")
    expect(page.get_by_role("heading", level=2)).to_have_text("Too many attempts")
    expect(page.get_by_role("alert")).to_have_text(
        "Too many wrong codes were entered from this device. Please try again in 1 min."
    )
    page.screenshot(path=str(screenshots / "locked-out-en.png"), full_page=True)
    # Opening the portal again while locked out says so, instead of a form that cannot work.
    page.goto(server.entry_url(site_id))
    expect(page.get_by_role("heading", level=2)).to_have_text("Too many attempts")
    expect(page.get_by_label("Access code")).to_have_count(0)
    expect(page.get_by_role("link", name="Start again")).to_have_attribute(
        "href", f"/guest/entry?site={site_id}"
    )


def test_the_api_docs_render_under_their_content_security_policy_and_refuse_framing(
    server: Server, phone: PhoneFactory
) -> None:
    page = open_page(phone)
    refused: list[str] = []
    page.on(
        "console",
        lambda message: refused.append(message.text) if "Content Security Policy" in message.text else None,
    )
    page.goto(f"{server.base}/docs")
    # Swagger UI's script ran: the operations are listed, under the policy.
    expect(page.locator(".opblock-summary-path").first).to_be_visible()
    assert page.locator(".opblock-summary-path").count() > 20
    page.goto(f"{server.base}/redoc")
    # ReDoc's script ran: the spec is rendered (its menu is folded away at a phone's width).
    expect(page.get_by_role("heading", level=1)).to_contain_text("Altostrat Captive Portal API")
    assert page.locator("[role=menuitem]").count() > 5
    # Nothing of their own was refused; what was is another host's (ReDoc's badge from its CDN).
    offsite = [text for text in refused if re.search(r"'https?://(?!127\.0\.0\.1)", text)]
    assert refused == offsite, refused
    refused.clear()
    # Another page may not frame them.
    page.set_content(f'<iframe id="docs" src="{server.base}/docs"></iframe>')
    page.wait_for_timeout(1000)
    expect(page.frame_locator("#docs").locator(".opblock-summary-path")).to_have_count(0)
    assert any("frame-ancestors" in text for text in refused), refused
