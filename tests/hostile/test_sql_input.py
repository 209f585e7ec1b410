"""SQL-looking and awkward strings in every string field, query and path parameter: never a 500.

Each value is either stored and returned verbatim, or refused with 400 and the contract's body.
The fields come from the OpenAPI request bodies, so a new field is covered without a change here.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from guestgate.app import create_app
from guestgate.runtime import Runtime
from tests.utils.bodies import stable
from tests.utils.hostile import Tenant, build_tenant
from tests.utils.settings import TokenFactory

NASTY = [
    "' OR 1=1 --",
    "'; DROP TABLE instances; --",
    '" OR ""="',
    "1; SELECT pg_sleep(5) --",
    "') UNION SELECT id, org_id FROM instances --",
    "%' OR name LIKE '%",
    "_%\\",
    "$1 :name %(name)s %s ?",
    "\x00",
    "abc\x00def",
    "\\x00 \\' \\\\",
    "\u202eevil\u202c",
    "\u200b\ufeff",
    "😀👩‍👩‍👧‍👦" * 50,
    "\U0001d54f" * 5000,
    "é" * 70000,
    "\r\nX-Injected: 1",
    " ",
]
# A lone surrogate cannot be encoded as UTF-8; JSON can still carry it as an escape.
LONE_SURROGATE = "\\ud800"
ERROR_KEYS = {"type", "code", "message", "doc_url"}


def base_bodies(a: Tenant) -> dict[str, tuple[str, str, dict[str, Any]]]:
    """operationId -> (method, path, a valid body) for every operation that takes a JSON body."""
    instance = {"name": "Lobby", "strategy": "coupon", "session_ttl": 3600}
    schedule = {
        "name": "Daily",
        "count": 2,
        "recurrence_type": "daily",
        "valid_for_in_minutes": 60,
        "timezone": "UTC",
        "time_of_day": "08:00",
        "notification_group_id": a.ids["groupId"],
    }
    integration = {
        "name": "IdP",
        "type": "azure",
        "config": {"client_id": "c", "client_secret": "s", "tenant": "common"},
    }
    entry = {"name": "IdP", "ip_address": "198.51.100.0/24", "type": "captive-auth"}
    site = {
        "name": "HQ",
        "subnets": ["10.99.0.0/16"],
        "gateway": {
            "driver": "routeros",
            "host": "router.example.com",
            "username": "admin",
            "password": "pw",
            "ca_pem": None,
            "pinned_sha256": None,
        },
    }
    group = {
        "name": "Desk",
        "emails": ["a@example.com"],
        "webhooks": [{"url": "https://example.com/h", "secret": "s" * 16}],
    }
    update_instance = {
        **instance,
        "terms_text": "Terms",
        "locale": "en",
        "theme": {"accent_color": "#0396d5"},
        "sites": [{"id": a.ids["siteId"], "subnets": ["10.10.1.0/24"]}],
    }
    i, s = a.ids["instanceId"], a.ids["scheduleId"]
    return {
        "createApiToken": ("POST", "/captive/api-tokens", {"name": "Export", "scopes": ["captive:read"]}),
        "createInstance": ("POST", "/captive/instances", instance),
        "updateInstance": ("PUT", f"/captive/instances/{i}", update_instance),
        "createAuthIntegration": ("POST", "/captive/auth-integrations", integration),
        "updateAuthIntegration": (
            "PUT",
            f"/captive/auth-integrations/{a.ids['authIntegrationId']}",
            integration,
        ),
        "createCoupons": ("POST", f"/captive/instances/{i}/coupons", {"minutes_valid": 60, "count": 1}),
        "createCouponSchedule": ("POST", f"/captive/instances/{i}/coupon-schedules", schedule),
        "updateCouponSchedule": ("PUT", f"/captive/instances/{i}/coupon-schedules/{s}", schedule),
        "createWalledGardenEntry": ("POST", f"/captive/walled-garden/{a.ids['siteId']}", entry),
        "updateWalledGardenEntry": (
            "PUT",
            f"/captive/walled-garden/{a.ids['siteId']}/{a.ids['walledGardenEntryId']}",
            entry,
        ),
        "createSite": ("POST", "/captive/sites", site),
        "updateSite": ("PUT", f"/captive/sites/{a.ids['siteId']}", {**site, "subnets": ["10.10.0.0/16"]}),
        "createNotificationGroup": ("POST", "/captive/notification-groups", group),
        "updateNotificationGroup": ("PUT", f"/captive/notification-groups/{a.ids['groupId']}", group),
    }


def string_paths(document: dict[str, Any], schema: dict[str, Any]) -> list[tuple[str | int, ...]]:
    """JSON paths of every string in a request schema (arrays as their first item)."""
    schemas = document["components"]["schemas"]
    found: list[tuple[str | int, ...]] = []

    def walk(node: dict[str, Any], path: tuple[str | int, ...]) -> None:
        if "$ref" in node:
            walk(schemas[node["$ref"].rsplit("/", 1)[1]], path)
            return
        for key in ("anyOf", "oneOf", "allOf"):
            for sub in node.get(key, []):
                walk(sub, path)
        if node.get("type") == "string" and path not in found:
            found.append(path)
        for name, sub in node.get("properties", {}).items():
            walk(sub, (*path, name))
        if node.get("type") == "array":
            walk(node.get("items", {}), (*path, 0))

    walk(schema, ())
    return found


def put_at(body: Any, path: tuple[str | int, ...], value: Any) -> Any:
    body = copy.deepcopy(body)
    node = body
    for step in path[:-1]:
        if isinstance(step, int):
            while len(node) <= step:
                node.append({})
        elif not isinstance(node.get(step), (dict, list)):
            node[step] = [] if isinstance(path[path.index(step) + 1], int) else {}
        node = node[step]
    last = path[-1]
    if isinstance(last, int):
        if len(node) <= last:
            node.append(value)
        else:
            node[last] = value
    else:
        node[last] = value
    return body


def get_at(body: Any, path: tuple[str | int, ...]) -> Any:
    node = body
    for step in path:
        if isinstance(step, int):
            if not isinstance(node, list) or len(node) <= step:
                return None
        elif not isinstance(node, dict) or step not in node:
            return None
        node = node[step]
    return node


def check(response: Any, where: str) -> None:
    assert response.status_code < 500, f"{where}: {response.status_code} {response.text[:300]}"
    if response.status_code >= 400 and response.headers.get("content-type", "").startswith(
        "application/json"
    ):
        assert set(response.json()) == ERROR_KEYS, where


@pytest.fixture
def tenant(client: TestClient, auth: TokenFactory, runtime: Runtime) -> Tenant:
    return build_tenant(client, auth, runtime, "org-a", 10)


def test_every_string_field_stores_nasty_values_verbatim_or_refuses_them(
    client: TestClient, tenant: Tenant
) -> None:
    document = client.get("/openapi.json").json()
    operations = {
        op["operationId"]: op
        for item in document["paths"].values()
        for op in item.values()
        if "application/json" in op.get("requestBody", {}).get("content", {})
    }
    bodies = base_bodies(tenant)
    assert set(operations) == set(bodies), (
        f"JSON operations without a base body: {set(operations) ^ set(bodies)}"
    )
    stored = refused = 0
    for operation_id, (method, path, body) in bodies.items():
        schema = operations[operation_id]["requestBody"]["content"]["application/json"]["schema"]
        first = client.request(method, path, headers=tenant.headers, json=body)
        assert first.status_code in (200, 201), (operation_id, first.text)
        if first.status_code == 201 and isinstance(first.json(), dict):
            assert client.delete(f"{path}/{first.json()['id']}", headers=tenant.headers).status_code == 204
        for field in string_paths(document, schema):
            for value in NASTY:
                where = f"{method} {path} {field!r}={value[:30]!r}"
                response = client.request(
                    method, path, headers=tenant.headers, json=put_at(body, field, value)
                )
                check(response, where)
                if response.status_code == 201 and isinstance(response.json(), dict):
                    # Unique names and addresses: the next value must not collide with this one.
                    removed = client.delete(f"{path}/{response.json()['id']}", headers=tenant.headers)
                    assert removed.status_code == 204, removed.text
                if response.status_code in (200, 201):
                    stored += 1
                    echoed = get_at(response.json(), field) if isinstance(response.json(), dict) else None
                    if echoed is not None and field[-1] not in ("ip_address",):
                        # Names lose outer whitespace by design (schemas.Name); nothing else changes.
                        assert echoed in (value, value.strip()), f"{where}: came back as {echoed!r}"
                else:
                    assert response.status_code == 400, where
                    refused += 1
            raw = json.dumps(put_at(body, field, "@@S@@")).replace("@@S@@", LONE_SURROGATE)
            response = client.request(
                method, path, headers={**tenant.headers, "content-type": "application/json"}, content=raw
            )
            check(response, f"{method} {path} {field!r}=<lone surrogate>")
            assert response.status_code in (200, 201, 400), response.text
            if response.status_code == 201 and isinstance(response.json(), dict):
                client.delete(f"{path}/{response.json()['id']}", headers=tenant.headers)
    assert stored > 50 and refused > 50, (stored, refused)


def test_stored_names_read_back_verbatim(client: TestClient, tenant: Tenant) -> None:
    for value in NASTY:
        created = client.post(
            "/captive/instances",
            headers=tenant.headers,
            json={"name": value, "strategy": "coupon", "session_ttl": 3600},
        )
        check(created, repr(value[:20]))
        if created.status_code == 201:
            again = client.get(f"/captive/instances/{created.json()['id']}", headers=tenant.headers)
            assert again.json()["name"] == value.strip()
            listed = client.get("/captive/instances?limit=1000", headers=tenant.headers).json()
            assert value.strip() in {item["name"] for item in listed}


def test_every_query_and_path_parameter_survives_nasty_values(client: TestClient, tenant: Tenant) -> None:
    document = client.get("/openapi.json").json()
    tried = 0
    for template, item in document["paths"].items():
        for method, operation in item.items():
            params = operation.get("parameters", [])
            names = re.findall(r"{(\w+)}", template)
            real = template.format(**{n: tenant.ids.get(n, "logo") for n in names})
            for param in params:
                for value in NASTY[:14]:
                    if param["in"] == "query":
                        url = f"{real}?{param['name']}={quote(value)}"
                    elif param["in"] == "path":
                        values = {n: tenant.ids.get(n, "logo") for n in names}
                        values[param["name"]] = quote(value, safe="")
                        url = template.format(**values)
                    else:
                        continue
                    response = client.request(method.upper(), url, headers=tenant.headers)
                    check(response, f"{method.upper()} {url[:120]}")
                    assert response.status_code in (200, 201, 202, 204, 400, 403, 404, 405, 409), url
                    tried += 1
    assert tried > 300


def test_the_guest_portal_survives_nasty_values(runtime: Runtime, tenant: Tenant) -> None:
    app = create_app(runtime=runtime)
    with TestClient(app, client=("10.10.1.77", 40000), raise_server_exceptions=False) as guest:
        entry = guest.get("/guest/entry", params={"site": tenant.ids["siteId"]})
        assert entry.status_code == 200
        token = re.search(r'name="t" value="([^"]*)"', entry.text)
        assert token
        for value in [*NASTY[:14], "\U0001d54f" * 500, "\r\nX-Injected: 1"]:
            for response in (
                guest.get("/guest/entry", params={"site": value}),
                guest.get(
                    "/guest/entry", params={"site": tenant.ids["siteId"], "orig": value, "code": value}
                ),
                guest.get("/guest/status", params={"t": value}),
                guest.get("/guest/capport", params={"site": value}),
                guest.get(
                    f"/guest/preview/{quote(value, safe='')}", params={"expires": "1", "signature": value}
                ),
                guest.post("/guest/signin", data={"t": token.group(1), "code": value, "accept": "yes"}),
                guest.post("/guest/signin", data={"t": value, "code": "ABCDEF"}),
                guest.get("/guest/oauth/callback", params={"state": value, "code": value}),
            ):
                assert response.status_code < 500, (value[:20], response.url, response.text[:300])


def test_raw_nul_and_surrogate_bytes_in_a_json_body_are_400_not_stored(
    client: TestClient, tenant: Tenant
) -> None:
    # Not escaped: the bytes themselves. Neither is JSON (a control character in a string, and
    # CESU-8 surrogate bytes are not UTF-8), so the body is refused before any field is read.
    before = stable(client.get("/captive/instances", headers=tenant.headers).json())
    for name in (b"a\x00b", b"a\xed\xa0\x80b"):
        raw = b'{"name": "' + name + b'", "strategy": "coupon", "session_ttl": 3600}'
        response = client.post(
            "/captive/instances", headers={**tenant.headers, "content-type": "application/json"}, content=raw
        )
        assert response.status_code == 400, response.text
        assert response.json()["type"] == "invalid_request_error"
    assert stable(client.get("/captive/instances", headers=tenant.headers).json()) == before
