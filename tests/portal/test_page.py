"""The sign-in page: theme, terms as text, language, size, accessibility, nothing external."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient as AppClient
from starlette.testclient import TestClient

from guestgate.instances.schemas import MAX_TERMS_CHARS
from tests.utils.portal import TERMS, ClientFactory, PortalFactory, World, add_image, enter

THEME = {
    "accent_text": "#101010",
    "accent_color": "#ffcc00",
    "text_color": "#222222",
    "secondary_text_color": "#555555",
    "background_color": "#eef2f7",
    "border_color": "#c0c0c0",
    "box_color": "#fafafa",
}


@pytest.fixture
def client(guest: ClientFactory) -> TestClient:
    return guest()


def page(client: TestClient, world: World, **headers: str) -> str:
    response = client.get("/guest/entry", params={"site": world.site_id}, headers=headers)
    assert response.status_code == 200, response.text
    return response.text


def test_the_page_carries_all_seven_theme_colours(world: World, client: TestClient) -> None:
    world.update_instance(theme=THEME)
    html = page(client, world)
    for colour in THEME.values():
        assert colour in html


def test_a_malformed_colour_in_the_database_falls_back_to_the_default(
    world: World, client: TestClient
) -> None:
    world.update_instance(theme={**THEME, "accent_color": "red;background:url(//evil.example/x)"})
    html = page(client, world)
    assert "evil.example" not in html
    assert "--accent:#0396d5;" in html


def test_terms_and_instance_name_are_shown_as_text(world: World, client: TestClient) -> None:
    world.update_instance(name='Cafe <img src=x onerror="alert(1)">')
    html = page(client, world)
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<img src=x" not in html
    assert "Cafe &lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in html
    assert TERMS.split("<")[0] in html


def test_terms_acceptance_is_a_required_labelled_checkbox(world: World, client: TestClient) -> None:
    html = page(client, world)
    assert re.search(r'<label class="check"><input type="checkbox" name="accept" value="yes" required>', html)
    assert "I accept the terms and conditions" in html


def test_the_code_field_has_a_label_and_a_hint(world: World, client: TestClient) -> None:
    html = page(client, world)
    assert '<label for="code">Access code</label>' in html
    assert 'id="code" name="code"' in html
    assert 'aria-describedby="code-hint"' in html
    assert 'id="code-hint"' in html


def test_focus_order_follows_the_reading_order(world: World, client: TestClient) -> None:
    html = page(client, world)
    order = [html.index(marker) for marker in ('id="code"', 'class="terms-text"', 'name="accept"', "<button")]
    assert order == sorted(order)
    assert "tabindex" not in html.replace('tabindex="0"', "")


def test_the_default_theme_text_is_readable(world: World, client: TestClient) -> None:
    from guestgate.portal.theme import contrast, palette

    colours = palette(None)
    assert contrast(colours["text-readable"], colours["box"]) >= 4.5
    assert contrast(colours["secondary-readable"], colours["box"]) >= 4.5
    assert contrast(colours["link-readable"], colours["box"]) >= 4.5
    assert contrast(colours["accent-text-readable"], colours["accent"]) >= 3.0


def test_the_page_is_small(world: World, client: TestClient) -> None:
    assert len(page(client, world).encode()) < 50 * 1024


def test_the_page_with_the_longest_terms_is_still_under_50_kb(world: World, client: TestClient) -> None:
    world.update_instance(terms_text=("Guests agree to behave. " * 1000)[:MAX_TERMS_CHARS])
    assert len(page(client, world).encode()) < 50 * 1024


def test_the_page_loads_nothing_from_elsewhere(world: World, client: TestClient) -> None:
    add_image(world.runtime, world.instance_id, "logo", 240, 80)
    add_image(world.runtime, world.instance_id, "icon", 64, 64)
    html = page(client, world)
    resources = re.findall(r'(?:src|href|action)="([^"]*)"', html)
    assert resources
    for url in resources:
        assert url.startswith("/"), url
        assert not url.startswith("//"), url
    assert "<script" not in html
    assert "url(" not in html
    assert "@import" not in html


def test_the_content_security_policy_forbids_external_resources(world: World, client: TestClient) -> None:
    response = enter(client, world.site_id)
    policy = response.headers["content-security-policy"]
    assert "default-src 'none'" in policy
    assert "img-src 'self'" in policy
    assert "form-action 'self'" in policy
    nonce = re.search(r"'nonce-([^']+)'", policy)
    assert nonce and f'<style nonce="{nonce.group(1)}">' in response.text
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-content-type-options"] == "nosniff"


def test_logo_and_icon_are_served_through_signed_same_origin_asset_urls(
    world: World, client: TestClient
) -> None:
    logo = add_image(world.runtime, world.instance_id, "logo", 240, 80)
    icon = add_image(world.runtime, world.instance_id, "icon", 64, 64)
    html = page(client, world)
    logo_url = re.search(
        rf'<img class="logo" src="(/captive/assets/{logo}\?[^"]+)" alt="Lobby Wi-Fi" width="240" height="80">',
        html,
    )
    icon_url = re.search(rf'<link rel="icon" href="(/captive/assets/{icon}\?[^"]+)">', html)
    assert logo_url and icon_url
    query = parse_qs(urlsplit(logo_url.group(1).replace("&amp;", "&")).query)
    signer = world.runtime.signer
    assert signer.check(query["signature"][0], "asset", logo, query["expires"][0])


def test_the_icon_stands_in_for_a_missing_logo(world: World, client: TestClient) -> None:
    icon = add_image(world.runtime, world.instance_id, "icon", 64, 64)
    html = page(client, world)
    assert f'<img class="icon" src="/captive/assets/{icon}?' in html


@pytest.mark.parametrize(
    ("accept_language", "instance_locale", "lang", "phrase"),
    [
        (None, "en", "en", "Access code"),
        (None, "es", "es", "Código de acceso"),
        (None, "pt-BR", "pt", "Código de acesso"),
        ("fr-CA,fr;q=0.9,en;q=0.5", "en", "fr", "Code d&#39;accès"),
        ("de", "es", "de", "Zugangscode"),
        ("ja,zh;q=0.8", "fr", "fr", "Code d&#39;accès"),
        ("en;q=0.2,pt;q=0.9", "de", "pt", "Código de acesso"),
        ("xx", "xx", "en", "Access code"),
    ],
)
def test_the_language_comes_from_the_browser_then_the_instance(
    world: World,
    client: TestClient,
    accept_language: str | None,
    instance_locale: str,
    lang: str,
    phrase: str,
) -> None:
    world.update_instance(locale=instance_locale)
    headers = {"Accept-Language": accept_language} if accept_language else {}
    html = page(client, world, **headers)
    assert f'<html lang="{lang}">' in html
    assert phrase in html


def test_the_portal_is_mounted_in_the_application(world: World, runtime: object) -> None:
    from guestgate.app import create_app

    with AppClient(create_app(runtime=runtime), client=("10.0.1.5", 1234)) as app_client:  # type: ignore[arg-type]
        response = app_client.get("/guest/entry", params={"site": world.site_id})
        assert response.status_code == 200
        assert "Lobby Wi-Fi" in response.text
        css = app_client.get("/guest/static/portal.css")
        assert css.status_code == 200 and "font" in css.text
        missing = app_client.get("/guest/nowhere")
        assert missing.status_code == 404 and "text/html" in missing.headers["content-type"]


def test_preview_renders_the_real_page_with_a_form_that_cannot_be_sent(
    world: World, client: TestClient
) -> None:
    from guestgate.instances.urls import preview_url

    world.update_instance(theme=THEME)
    url = preview_url(world.instance_id, signer=world.runtime.signer, public_url="", now=world.clock())
    response = client.get(url)
    assert response.status_code == 200
    html = response.text
    for colour in THEME.values():
        assert colour in html
    assert "Preview: this is the page guests see." in html
    assert "<fieldset disabled>" in html
    assert 'name="t" value=""' in html


def test_a_preview_cannot_redeem(world: World, client: TestClient) -> None:
    from guestgate.instances.urls import preview_url

    world.coupon("ABC234")
    url = preview_url(world.instance_id, signer=world.runtime.signer, public_url="", now=world.clock())
    client.get(url)
    response = client.post("/guest/signin", data={"t": "", "code": "ABC234", "accept": "yes"})
    assert response.status_code == 400
    assert world.count_rows() == (0, 0)


@pytest.mark.parametrize("change", ["signature", "expires", "instance", "expired"])
def test_a_bad_preview_link_is_a_403_page(world: World, client: TestClient, change: str) -> None:
    from guestgate.instances.urls import preview_url

    now = world.clock()
    url = preview_url(world.instance_id, signer=world.runtime.signer, public_url="", now=now)
    path, _, query = url.partition("?")
    params = {k: v[0] for k, v in parse_qs(query).items()}
    if change == "signature":
        params["signature"] = "0" * 64
    elif change == "expires":
        params["expires"] = str(int(params["expires"]) + 1)
    elif change == "instance":
        path = path.replace(world.instance_id, "00000000-0000-4000-8000-000000000000")
    else:
        world.clock.advance(3601)
    response = client.get(path, params=params)
    assert response.status_code == 403
    assert "This preview link is invalid or has expired." in response.text


def test_a_preview_of_a_deleted_instance_is_a_404_page(
    world: World, make_portal: PortalFactory, guest: ClientFactory
) -> None:
    from guestgate.instances.urls import preview_url

    missing = "00000000-0000-4000-8000-000000000000"
    url = preview_url(missing, signer=world.runtime.signer, public_url="", now=world.clock())
    assert guest().get(url).status_code == 404
