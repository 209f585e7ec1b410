"""Script in every operator text field: on every page it reaches it is text, never markup.

Each field carries its own payload, so a page that renders one raw shows which. The fields are
enumerated from the OpenAPI request bodies: a new string field must be classified below (shown
on pages, refused by validation, or kept out of pages) before this test passes again.
"""

from __future__ import annotations

import email
import io
import re
from email.message import EmailMessage
from email.policy import default as email_policy
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import pytest
from fastapi.testclient import TestClient
from pypdf import PdfReader

from guestgate.app import create_app
from guestgate.db import utcnow
from guestgate.notifications import delivery
from guestgate.runtime import Runtime
from tests.core.test_errors import assert_error
from tests.utils.hostile import local, ok
from tests.utils.settings import TokenFactory


def payload(field: str) -> str:
    if field in SHORT:
        return SHORT[field]
    return f'"><script>alert("{field}")</script><img src=x onerror=alert(1)>\'<b>{field}</b>&amp;'


# Fields with a small length limit get a payload that fits it (a network name is at most 32 bytes).
SHORT = {"Instance.network_name": '"><script>alert(1)</script>'}
# The one script the printable coupon page has (its Print button), allowed by its CSP nonce.
PRINT_SCRIPT = re.compile(
    r'<script nonce="([^"]+)">\n\(function \(\) \{\n  var button = document\.getElementById\("print"\);.*?</script>',
    re.S,
)


# Where each operator string can end up. `pages` are the HTML pages (and the PDF) that show it.
SHOWN = {
    "Instance.name": (
        "signin",
        "signin-error",
        "success",
        "status",
        "preview",
        "oauth-signin",
        "oauth-redirect",
        "locked",
        "email",
        "pdf",
        "coupons-page",
        "batch-page",
    ),
    "Instance.terms_text": ("signin", "signin-error", "preview"),
    "Instance.network_name": ("email", "pdf", "coupons-page", "batch-page"),
    "CouponSchedule.name": ("email", "coupons-page"),
    "AuthIntegration.config.client_id": ("oauth-redirect",),  # inside the provider URL
}
# Formats that cannot carry markup: a payload is refused with 400.
VALIDATED = {
    "Instance.strategy",
    "Instance.auth_integration_id",
    "Instance.locale",
    "Instance.timezone",
    "Instance.sites[].id",
    "Instance.sites[].subnets[]",
    "Instance.theme.accent_color",
    "Instance.theme.accent_text",
    "Instance.theme.background_color",
    "Instance.theme.border_color",
    "Instance.theme.box_color",
    "Instance.theme.secondary_text_color",
    "Instance.theme.text_color",
    "AuthIntegration.type",
    "CouponSchedule.notification_group_id",
    "CouponSchedule.recurrence_type",
    "CouponSchedule.time_of_day",
    "CouponSchedule.timezone",
    # [extension] The access plan's one string: `creation` or `first_use`.
    "Instance.validity_from",
    "CouponSchedule.plan.validity_from",
    "Coupons.plan.validity_from",
    "WalledGardenEntry.ip_address",
    "WalledGardenEntry.hostname",
    "WalledGardenEntry.type",
    "Site.subnets[]",
    "Site.gateway.driver",
    "NotificationGroup.emails[]",
    "NotificationGroup.webhooks[].url",
    "ApiToken.scopes[]",
}
# Stored and returned as JSON only; they still carry payloads below, and no page may show them raw.
NOT_ON_PAGES = {
    "ApiToken.name",
    "AuthIntegration.name",
    "AuthIntegration.config.client_secret",
    "AuthIntegration.config.tenant",
    # A URL checked against the issuer's own discovery document; no page shows it.
    "AuthIntegration.config.issuer",
    "WalledGardenEntry.name",
    "Site.name",
    "Site.gateway.ca_pem",
    "Site.gateway.host",
    "Site.gateway.interface",
    "Site.gateway.netns",
    "Site.gateway.password",
    "Site.gateway.pinned_sha256",
    "Site.gateway.portal_address",
    "Site.gateway.table",
    "Site.gateway.username",
    "NotificationGroup.name",
    "NotificationGroup.webhooks[].secret",
    "InstanceImage.file",
}
RESOURCE = re.compile(r"^(create|update|upload)")


def string_fields(document: dict[str, Any]) -> set[str]:
    """`Resource.path` of every string in every request body of the document."""
    schemas = document["components"]["schemas"]
    found: set[str] = set()

    def walk(schema: dict[str, Any], path: str) -> None:
        if "$ref" in schema:
            walk(schemas[schema["$ref"].rsplit("/", 1)[1]], path)
            return
        for key in ("anyOf", "oneOf", "allOf"):
            for sub in schema.get(key, []):
                walk(sub, path)
        if schema.get("type") == "string":
            found.add(path)
        for name, sub in schema.get("properties", {}).items():
            walk(sub, f"{path}.{name}")
        if schema.get("type") == "array":
            walk(schema.get("items", {}), path + "[]")

    for item in document["paths"].values():
        for operation in item.values():
            for content in operation.get("requestBody", {}).get("content", {}).values():
                resource = RESOURCE.sub("", operation["operationId"])
                walk(content["schema"], resource)
    return found


def test_every_string_field_of_the_api_is_classified(client: TestClient) -> None:
    fields = string_fields(client.get("/openapi.json").json())
    classified = set(SHOWN) | VALIDATED | NOT_ON_PAGES
    assert fields == classified, (
        f"unclassified string fields: {sorted(fields - classified)}; gone: {sorted(classified - fields)}"
    )


class Scan(HTMLParser):
    """Elements, attributes and text of a page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, attrs))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, attrs))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def assert_inert(html: str, where: str) -> Scan:
    """No script element, no event handler, no javascript: URL; returns what the page holds."""
    scan = Scan()
    scan.feed(html)
    scan.close()
    for tag, attrs in scan.elements:
        assert tag not in ("script", "iframe", "object", "embed", "svg", "b"), f"{where}: <{tag}> in the page"
        if tag == "img":
            assert ("src", "x") not in attrs, f"{where}: an injected <img>"
        for name, value in attrs:
            assert not name.startswith("on"), f"{where}: event handler {name}={value!r}"
            if name in ("href", "src", "action", "formaction", "content") and value:
                assert "javascript:" not in value.lower().replace(" ", ""), f"{where}: {name}={value!r}"
    return scan


def shown_as_text(scan: Scan, text: str) -> bool:
    """True if `text` is in the page's text or in an attribute value (as text)."""
    if text in "".join(scan.text):
        return True
    return any(
        value is not None and text in unquote_plus(value) for _, attrs in scan.elements for _, value in attrs
    )


def _set_up(client: TestClient, auth: TokenFactory) -> dict[str, Any]:
    h = auth(org="org-x")
    site = ok(
        client.post(
            "/captive/sites",
            headers=h,
            json={
                "name": payload("Site.name"),
                "subnets": ["10.30.0.0/16"],
                "gateway": {"driver": "none"},
            },
        ),
        201,
    )
    group = ok(
        client.post(
            "/captive/notification-groups",
            headers=h,
            json={"name": payload("NotificationGroup.name"), "emails": ["desk@example.com"], "webhooks": []},
        ),
        201,
    )
    integration = ok(
        client.post(
            "/captive/auth-integrations",
            headers=h,
            json={
                "name": payload("AuthIntegration.name"),
                "type": "github",
                "config": {
                    "client_id": payload("AuthIntegration.config.client_id"),
                    "client_secret": payload("AuthIntegration.config.client_secret"),
                },
            },
        ),
        201,
    )
    base = {"session_ttl": 3600, "name": payload("Instance.name")}
    coupon = ok(client.post("/captive/instances", headers=h, json={**base, "strategy": "coupon"}), 201)
    ok(
        client.put(
            f"/captive/instances/{coupon['id']}",
            headers=h,
            json={
                **base,
                "strategy": "coupon",
                "terms_text": payload("Instance.terms_text"),
                "network_name": payload("Instance.network_name"),
                "sites": [{"id": site["id"], "subnets": ["10.30.1.0/24"]}],
            },
        ),
        200,
    )
    oauth = ok(
        client.post(
            "/captive/instances",
            headers=h,
            json={**base, "strategy": "oauth2", "auth_integration_id": integration["id"]},
        ),
        201,
    )
    oauth = ok(
        client.put(
            f"/captive/instances/{oauth['id']}",
            headers=h,
            json={
                **base,
                "strategy": "oauth2",
                "auth_integration_id": integration["id"],
                "sites": [{"id": site["id"], "subnets": ["10.30.2.0/24"]}],
            },
        ),
        200,
    )
    ok(
        client.post(
            f"/captive/walled-garden/{site['id']}",
            headers=h,
            json={"name": payload("WalledGardenEntry.name"), "ip_address": "192.0.2.1"},
        ),
        201,
    )
    schedule = ok(
        client.post(
            f"/captive/instances/{coupon['id']}/coupon-schedules",
            headers=h,
            json={
                "name": payload("CouponSchedule.name"),
                "count": 2,
                "recurrence_type": "daily",
                "valid_for_in_minutes": 60,
                "timezone": "UTC",
                "notification_group_id": group["id"],
            },
        ),
        201,
    )
    ok(
        client.post(f"/captive/instances/{coupon['id']}/coupon-schedules/{schedule['id']}/run", headers=h),
        200,
    )
    made = client.post(
        f"/captive/instances/{coupon['id']}/coupons", headers=h, json={"minutes_valid": 60, "count": 1}
    )
    codes = ok(made, 201)
    signed = ok(
        client.get(
            f"/captive/instances/{coupon['id']}/coupon-schedules/{schedule['id']}/generate_url", headers=h
        ),
        200,
    )
    return {
        "headers": h,
        "site": site["id"],
        "coupon": coupon,
        "oauth": oauth,
        "code": codes[0]["code"],
        "coupons_url": signed["signed_url"],
        "batch_url": re.findall(r'<([^>]+)>; rel="alternate"; type="application/json"', made.headers["link"])[
            0
        ],
    }


def _token(html: str) -> str:
    found = re.search(r'name="t" value="([^"]*)"', html)
    assert found, html[:500]
    return found.group(1)


def _pages(runtime: Runtime, client: TestClient, world: dict[str, Any]) -> dict[str, str]:
    pages: dict[str, str] = {}
    app = create_app(runtime=runtime)
    with TestClient(app, client=("10.30.1.5", 40000), raise_server_exceptions=False) as guest:
        entry = guest.get("/guest/entry", params={"site": world["site"], "orig": "javascript:alert(1)"})
        assert entry.status_code == 200, entry.text
        pages["signin"] = entry.text
        wrong = guest.post("/guest/signin", data={"t": _token(entry.text), "code": "ZZZZZZ", "accept": "yes"})
        assert wrong.status_code == 400, wrong.text
        pages["signin-error"] = wrong.text
        done = guest.post(
            "/guest/signin", data={"t": _token(entry.text), "code": world["code"], "accept": "yes"}
        )
        assert done.status_code == 200, done.text
        pages["success"] = done.text
        status_link = re.search(r'href="(/guest/status\?t=[^"]+)"', done.text)
        assert status_link, done.text
        status = guest.get(status_link.group(1).replace("&amp;", "&"))
        assert status.status_code == 200
        pages["status"] = status.text
        missing = guest.get(f"/guest/{payload('path')}")
        assert missing.status_code == 404
        pages["not-found"] = missing.text
    with TestClient(app, client=("10.30.1.9", 40000), raise_server_exceptions=False) as stranger:
        token = _token(stranger.get("/guest/entry", params={"site": world["site"]}).text)
        for _ in range(12):
            last = stranger.post("/guest/signin", data={"t": token, "code": "ZZZZZZ", "accept": "yes"})
            if last.status_code == 429:
                break
        assert last.status_code == 429, last.text
        pages["locked"] = last.text
    with TestClient(app, client=("10.30.2.5", 40000), raise_server_exceptions=False) as guest:
        entry = guest.get("/guest/entry", params={"site": world["site"]})
        assert entry.status_code == 200, entry.text
        pages["oauth-signin"] = entry.text
        started = guest.post("/guest/oauth/start", data={"t": _token(entry.text), "accept": "yes"})
        assert started.status_code == 200, started.text
        pages["oauth-redirect"] = started.text
    for name, key in (("coupons-page", "coupons_url"), ("batch-page", "batch_url")):
        shown = client.get(local(world[key]), headers={"Accept": "text/html"})
        assert shown.status_code == 200, shown.text
        assert shown.headers["content-type"] == "text/html; charset=utf-8"
        nonce = shown.headers["content-security-policy"].split("script-src 'nonce-", 1)[1].split("'", 1)[0]
        found = PRINT_SCRIPT.search(shown.text)
        assert found is not None and found.group(1) == nonce, "the page's own script carries the CSP nonce"
        pages[name] = PRINT_SCRIPT.sub("", shown.text, count=1)
    for kind in ("coupon", "oauth"):
        preview = client.get(local(world[kind]["preview_url"]))
        assert preview.status_code == 200
        pages["preview" if kind == "coupon" else "oauth-preview"] = preview.text
    return pages


def _email_html(runtime: Runtime) -> tuple[str, str]:
    delivery.deliver_due_sync(runtime=runtime, now=utcnow())
    files = sorted((runtime.settings.outbox_dir).glob("*.eml"))
    assert files, "the schedule run's e-mail was written to the outbox"
    message = email.message_from_bytes(files[0].read_bytes(), policy=email_policy)
    assert isinstance(message, EmailMessage)
    body = message.get_body(preferencelist=("html",))
    assert body is not None
    return str(message["Subject"]), body.get_content()


def test_script_in_operator_fields_is_text_on_every_page(
    client: TestClient, runtime: Runtime, auth: TokenFactory, tmp_path: Path
) -> None:
    world = _set_up(client, auth)
    pages = _pages(runtime, client, world)
    subject, pages["email"] = _email_html(runtime)
    assert payload("CouponSchedule.name").replace("\n", " ") in subject or "CouponSchedule.name" in subject
    scans = {name: assert_inert(html, name) for name, html in pages.items()}
    for field, where in SHOWN.items():
        for page in where:
            if page == "pdf":
                continue
            assert shown_as_text(scans[page], payload(field)), f"{field} is not shown as text on {page}"
    for field in NOT_ON_PAGES:
        for name, html in pages.items():
            assert f'alert("{field}")</script>' not in html, f"{field} rendered raw on {name}"
    # The printable sheet: the name is drawn as text, and the PDF carries no script or launch action.
    pdf = client.get(local(world["coupons_url"]) + "&format=pdf")
    assert pdf.status_code == 200
    text = "".join(page.extract_text() or "" for page in PdfReader(io.BytesIO(pdf.content)).pages)
    assert 'alert("Instance.name")' in text.replace("\n", "")
    for marker in (b"/JavaScript", b"/JS ", b"/JS(", b"/Launch", b"/OpenAction", b"/EmbeddedFile", b"/AA"):
        assert marker not in pdf.content, marker


@pytest.mark.parametrize(
    "code", [payload("code"), "<script>alert(1)<", "%3Cscript%3E"], ids=["payload", "script", "escaped"]
)
def test_the_error_page_of_an_unknown_code_does_not_reflect_it(client: TestClient, code: str) -> None:
    response = client.get(f"/errors/{code}")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["code"] in ("resource_not_found", "route_not_found")


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("theme", {"theme": {"accent_color": "red;}</style><script>alert(1)</script>"}}),
        ("theme", {"theme": {"background_color": "#fff;background:url(javascript:alert(1))"}}),
        ("locale", {"locale": 'en"><script>alert(1)</script>'}),
        ("locale", {"locale": "en\n<script>"}),
    ],
)
def test_markup_in_validated_instance_fields_is_refused(
    client: TestClient, headers: dict[str, str], path: str, body: dict[str, Any]
) -> None:
    base = {"name": "Lobby", "strategy": "coupon", "session_ttl": 3600}
    created = ok(client.post("/captive/instances", headers=headers, json=base), 201)
    response = client.put(f"/captive/instances/{created['id']}", headers=headers, json={**base, **body})
    assert_error(response, 400, "invalid_request_error", "parameter_invalid")
    assert ok(client.get(f"/captive/instances/{created['id']}", headers=headers), 200)["locale"] == "en"
