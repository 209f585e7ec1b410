"""Issue 14: the same signed URL answers API clients with Altostrat's JSON and browsers with a
printable page (content negotiation, or `format=html`), in the instance's theme, language and time."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import pytest
import time_machine
from fastapi.testclient import TestClient

from guestgate.coupon_links.page import wants_html
from tests.schedules import time_travel_proof
from tests.utils.settings import TokenFactory

NOW = datetime(2026, 10, 3, 14, 30, tzinfo=UTC)  # 00:30 AEST on 4 October, the day Sydney goes to AEDT
CHROME = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"
BASE = {"name": "Harbour Café", "strategy": "coupon", "session_ttl": 3600}


@pytest.mark.parametrize(
    ("accept", "html"),
    [
        (None, False),  # curl without -H, many HTTP libraries
        ("*/*", False),  # curl, httpx, requests
        ("application/json", False),  # an Altostrat client
        ("application/json, text/plain, */*", False),  # axios
        ("application/json;q=0.9, text/html;q=0.8", False),
        ("text/html, application/json", False),  # a tie goes to JSON
        ("text/html;q=0", False),
        ("text/html;q=bogus", False),
        (CHROME, True),  # Chromium
        ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", True),  # Firefox, Safari
        ("application/xhtml+xml", True),
        ("text/html;q=0.9, application/json;q=0.5", True),
        ("TEXT/HTML", True),
        ("text/html" + ", x" * 600, False),  # absurdly long: not parsed
    ],
)
def test_only_a_browser_that_prefers_html_gets_the_page(accept: str | None, html: bool) -> None:
    assert wants_html(accept) is html


@pytest.fixture
def auth(auth: TokenFactory) -> TokenFactory:
    return time_travel_proof(auth)


@pytest.fixture
def made(client: TestClient, auth: TokenFactory) -> dict[str, Any]:
    """A Sydney instance in French with a network name and a batch of 12 coupons valid 10 hours."""
    headers = auth()
    with time_machine.travel(NOW, tick=False):
        instance = client.post("/captive/instances", headers=headers, json=BASE).json()
        extra = {
            "network_name": "Harbour-Guest",
            "timezone": "Australia/Sydney",
            "locale": "fr",
            "theme": {"accent_color": "#7a3e9d"},
        }
        assert (
            client.put(
                f"/captive/instances/{instance['id']}", headers=headers, json={**BASE, **extra}
            ).status_code
            == 200
        )
        response = client.post(
            f"/captive/instances/{instance['id']}/coupons",
            headers=headers,
            json={"count": 12, "minutes_valid": 600},
        )
    assert response.status_code == 201
    link = re.findall(r'<([^>]+)>; rel="alternate"; type="application/json"', response.headers["link"])[0]
    parts = urlsplit(link)
    return {"url": f"{parts.path}?{parts.query}", "codes": sorted(c["code"] for c in response.json())}


def get(client: TestClient, url: str, **headers: str) -> Any:
    with time_machine.travel(NOW, tick=False):
        return client.get(url, headers=headers)


@pytest.mark.parametrize("accept", ["*/*", "application/json", "application/json, text/plain, */*"])
def test_api_clients_get_altostrats_json_from_the_same_url(
    client: TestClient, made: dict[str, Any], accept: str
) -> None:
    response = get(client, made["url"], accept=accept)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["vary"] == "Accept"
    assert sorted(c["code"] for c in response.json()) == made["codes"]
    assert all(c["expires_at"] == "2026-10-04T00:30:00Z" for c in response.json())  # UTC stays in the API


def test_a_browser_gets_the_printable_page(client: TestClient, made: dict[str, Any]) -> None:
    response = get(client, made["url"], accept=CHROME)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-content-type-options"] == "nosniff"
    csp = response.headers["content-security-policy"]
    nonce = re.search(r"script-src 'nonce-([^']+)'", csp)
    assert nonce is not None
    assert csp.startswith("default-src 'none'; ") and "frame-ancestors 'none'" in csp
    page = response.text
    # Nothing from anywhere else: no absolute URL at all, every script and style carries the nonce.
    assert "http://" not in page and "https://" not in page and "//" not in page.replace("<!doctype", "")
    assert page.count("<script") == page.count(f'<script nonce="{nonce.group(1)}">') == 1
    assert page.count("<style") == page.count(f'<style nonce="{nonce.group(1)}">') == 1
    assert '<html lang="fr">' in page
    assert "--accent:#7a3e9d;" in page
    assert all(code in page for code in made["codes"])
    # Local time: made at 00:30 AEST, redeemable until 11:30 AEDT (the clocks went forward at 02:00).
    assert "2026-10-04 00:30 AEST" in page and "Valable jusqu&#39;au 2026-10-04 11:30 AEDT" in page
    assert "Réseau : Harbour-Guest" in page and "12 codes valables" in page
    assert 'id="print"' in page and "Télécharger le PDF" in page and "Télécharger le CSV" in page


def test_format_decides_over_accept(client: TestClient, made: dict[str, Any]) -> None:
    as_json = get(client, made["url"] + "&format=json", accept=CHROME)
    assert as_json.headers["content-type"] == "application/json"
    as_page = get(client, made["url"] + "&format=html", accept="application/json")
    assert as_page.headers["content-type"] == "text/html; charset=utf-8"


def test_the_pages_buttons_download_the_same_codes(client: TestClient, made: dict[str, Any]) -> None:
    page = get(client, made["url"] + "&format=html").text
    pdf = re.search(r'href="([^"]+format=pdf[^"]*)"', page)
    csv_link = re.search(r'href="([^"]+format=csv[^"]*)"', page)
    assert pdf and csv_link
    for link, media in ((pdf, "application/pdf"), (csv_link, "text/csv; charset=utf-8")):
        response = get(client, link.group(1).replace("&amp;", "&"))
        assert response.status_code == 200 and response.headers["content-type"] == media
    rows = get(client, csv_link.group(1).replace("&amp;", "&")).text.splitlines()
    assert sorted(row.split(",")[0] for row in rows[1:]) == made["codes"]
    assert rows[1].endswith(",2026-10-04 11:30 AEDT,1,1,,,,creation")


def test_an_expired_link_in_a_browser_is_a_page_and_in_curl_json(
    client: TestClient, made: dict[str, Any]
) -> None:
    later = datetime(2026, 10, 5, tzinfo=UTC)
    with time_machine.travel(later, tick=False):
        page = client.get(made["url"], headers={"accept": CHROME})
        api = client.get(made["url"])
    assert page.status_code == api.status_code == 403
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert "url_expired" in page.text and "<h1>" in page.text
    assert api.json()["code"] == "url_expired"


@pytest.mark.parametrize(
    ("cut", "code"),
    [
        (r"&signature=[0-9a-f]+", "parameter_missing"),  # a mail client wrapped the line there
        (r"expires=\d+&", "parameter_missing"),
        (r"(?<=expires=)\d+", "parameter_invalid"),
    ],
    ids=["signature_cut", "expires_cut", "expires_mangled"],
)
def test_a_cut_or_mangled_link_in_a_browser_is_a_page_and_in_curl_json(
    client: TestClient, made: dict[str, Any], cut: str, code: str
) -> None:
    mangled = re.sub(cut, "x" if code == "parameter_invalid" else "", made["url"], count=1)
    assert mangled != made["url"]
    page = get(client, mangled, accept=CHROME)
    api = get(client, mangled)
    assert page.status_code == api.status_code == 400
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert code in page.text and "<h1>" in page.text and "incomplete or was changed" in page.text
    assert api.json()["code"] == code
    pdf = get(client, f"{mangled}&format=pdf", accept=CHROME)  # a download keeps the API's error
    assert pdf.headers["content-type"] == "application/json" and pdf.json()["code"] == code
