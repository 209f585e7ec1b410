"""Org A's token against org B's real ids, on every operation with a path id: 404, and B unchanged.

The matrix is built from the app's own OpenAPI document: an operation with a path id that the
table below does not know fails the test, so a new endpoint cannot skip the check.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
from fastapi.testclient import TestClient

from guestgate.runtime import Runtime
from tests.core.test_errors import assert_error
from tests.utils.hostile import Tenant, audit_rows_of, dump_database, local, picture

Body = Callable[[Tenant], dict[str, Any] | None]


def _instance(a: Tenant) -> dict[str, Any]:
    return {"name": "Hijacked", "strategy": "coupon", "session_ttl": 3600, "sites": []}


def _schedule(a: Tenant) -> dict[str, Any]:
    return {
        "name": "Hijacked",
        "count": 5,
        "recurrence_type": "daily",
        "valid_for_in_minutes": 60,
        "timezone": "UTC",
        "notification_group_id": a.ids["groupId"],
    }


def _integration(a: Tenant) -> dict[str, Any]:
    return {"name": "Hijacked", "type": "github", "config": {"client_id": "x", "client_secret": "y"}}


def _nothing(a: Tenant) -> None:
    return None


# operationId -> a body that org A could legitimately send for its own resource. A valid body
# matters: an invalid one would be refused with 400 before the tenancy check is ever reached.
OPERATIONS: dict[str, Body] = {
    "getInstance": _nothing,
    "updateInstance": _instance,
    "deleteInstance": _nothing,
    "uploadInstanceImage": _nothing,  # multipart, see _call
    "getAuthIntegration": _nothing,
    "updateAuthIntegration": _integration,
    "deleteAuthIntegration": _nothing,
    "listCoupons": _nothing,
    "createCoupons": lambda a: {"minutes_valid": 60, "count": 2},
    "listCouponSchedules": _nothing,
    "createCouponSchedule": _schedule,
    "getCouponSchedule": _nothing,
    "updateCouponSchedule": _schedule,
    "deleteCouponSchedule": _nothing,
    "generateCouponScheduleUrl": _nothing,
    "runCouponSchedule": _nothing,
    "revokeCouponScheduleUrls": _nothing,
    "listCouponBatches": _nothing,
    "getCouponBatch": _nothing,
    "generateCouponBatchUrl": _nothing,
    "revokeCouponBatchUrls": _nothing,
    "listWalledGardenEntries": _nothing,
    "createWalledGardenEntry": lambda a: {"name": "Hijacked", "ip_address": "198.51.100.0/24"},
    "getWalledGardenEntry": _nothing,
    "updateWalledGardenEntry": lambda a: {"name": "Hijacked", "ip_address": "198.51.100.0/24"},
    "deleteWalledGardenEntry": _nothing,
    "listSiteUsers": _nothing,
    "disconnectSiteUser": _nothing,
    "getSite": _nothing,
    "updateSite": lambda a: {"name": "Hijacked", "subnets": ["172.16.0.0/16"]},
    "deleteSite": _nothing,
    "rotateSiteAgentKey": _nothing,
    "getNotificationGroup": _nothing,
    "updateNotificationGroup": lambda a: {"name": "Hijacked", "emails": ["evil@example.com"], "webhooks": []},
    "deleteNotificationGroup": _nothing,
    "revokeApiToken": _nothing,
}
# Signed URLs carry their own authority: another org's id under a valid signature is a forgery.
SIGNED_OPERATIONS = {"getAsset"}
# Path parameters that are not ids.
NOT_IDS = {"type": "logo"}
PARAM = re.compile(r"{(\w+)}")


def path_operations(client: TestClient) -> list[tuple[str, str, str]]:
    """(operationId, method, path) of every operation whose path has a parameter."""
    document = client.get("/openapi.json").json()
    found = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in ("get", "post", "put", "delete", "patch") and "{" in path:
                found.append((operation["operationId"], method.upper(), path))
    return found


def fill(path: str, *tenants: Tenant) -> str:
    """The path with each id parameter taken from the corresponding tenant (the last one repeats)."""
    names = [name for name in PARAM.findall(path) if name not in NOT_IDS]
    values: dict[str, str] = dict(NOT_IDS)
    for index, name in enumerate(names):
        owner = tenants[min(index, len(tenants) - 1)]
        values[name] = owner.ids[name]
    return path.format(**values)


def _call(client: TestClient, method: str, path: str, operation: str, a: Tenant) -> Any:
    if operation == "uploadInstanceImage":
        files = {"file": ("logo.png", picture((240, 120)), "image/png")}
        return client.post(path, headers=a.headers, files=files)
    return client.request(method, path, headers=a.headers, json=OPERATIONS[operation](a))


def test_the_matrix_covers_every_operation_with_a_path_id(client: TestClient) -> None:
    seen = {operation for operation, _, _ in path_operations(client)}
    assert seen == set(OPERATIONS) | SIGNED_OPERATIONS, (
        f"not in the tenancy matrix: {sorted(seen - set(OPERATIONS) - SIGNED_OPERATIONS)}; "
        f"gone from the API: {sorted(set(OPERATIONS) | SIGNED_OPERATIONS - seen)}"
    )


def test_org_a_gets_404_on_every_id_of_org_b_and_b_is_unchanged(
    client: TestClient, runtime: Runtime, org_a: Tenant, org_b: Tenant
) -> None:
    before = dump_database(runtime)
    audit_before = audit_rows_of(runtime, org_b.org)
    tried: list[str] = []
    for operation, method, path in path_operations(client):
        if operation in SIGNED_OPERATIONS:
            continue
        ids = [name for name in PARAM.findall(path) if name not in NOT_IDS]
        # B's ids everywhere, then each mix of A's parent with B's child and B's parent with A's child.
        shapes: list[tuple[Tenant, ...]] = [(org_b,)]
        if len(ids) == 2:
            shapes += [(org_a, org_b), (org_b, org_a)]
        for shape in shapes:
            url = fill(path, *shape)
            response = _call(client, method, url, operation, org_a)
            assert response.status_code == 404, f"{method} {url} ({operation}): {response.text}"
            assert_error(response, 404, "not_found_error", "resource_not_found")
            tried.append(f"{method} {url}")
    assert len(tried) >= len(OPERATIONS)
    assert dump_database(runtime) == before, "org A changed org B's data (or its own through B's ids)"
    assert audit_rows_of(runtime, org_b.org) == audit_before


@pytest.mark.parametrize(
    ("path", "b_key"),
    [
        ("/captive/instances", "instanceId"),
        ("/captive/auth-integrations", "authIntegrationId"),
        ("/captive/sites", "siteId"),
        ("/captive/notification-groups", "groupId"),
    ],
)
def test_top_level_lists_show_org_a_none_of_org_b(
    client: TestClient, org_a: Tenant, org_b: Tenant, path: str, b_key: str
) -> None:
    mine = client.get(path, headers=org_a.headers)
    assert mine.status_code == 200
    listed = {item["id"] for item in mine.json()}
    assert org_a.ids[b_key] in listed
    assert org_b.ids[b_key] not in listed
    assert org_b.org not in mine.text and "org-b" not in mine.text
    theirs = client.get(path, headers=org_b.headers).json()
    assert org_b.ids[b_key] in {item["id"] for item in theirs}


def test_a_cursor_from_org_b_shows_org_a_nothing_of_b(
    client: TestClient, org_a: Tenant, org_b: Tenant
) -> None:
    page = client.get("/captive/instances?limit=1", headers=org_b.headers)
    link = page.headers.get("link", "")
    assert 'rel="next"' in link, "org B has two instances, so a page of one has a next link"
    cursor = dict(parse_qsl(urlsplit(link.split(";")[0].strip("<>")).query))["cursor"]
    response = client.get(
        f"/captive/instances?{urlencode({'limit': 1, 'cursor': cursor})}", headers=org_a.headers
    )
    assert response.status_code in (200, 400), response.text
    if response.status_code == 200:
        assert not {item["id"] for item in response.json()} & {
            org_b.ids["instanceId"],
            org_b.ids["oauthInstanceId"],
        }


def _with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query.update(changes)
    return f"{parts.path}?{urlencode(query)}"


def test_org_a_signatures_do_not_open_org_b_urls(client: TestClient, org_a: Tenant, org_b: Tenant) -> None:
    # Each of B's public URLs still works as issued ...
    assert client.get(local(org_b.urls["logo"])).status_code == 200
    assert client.get(local(org_b.urls["coupons"])).status_code == 200
    assert client.get(local(org_b.urls["preview"])).status_code == 200
    # ... but A's valid signature with B's id in it is a forgery.
    a_logo = urlsplit(org_a.urls["logo"])
    forged_asset = f"/captive/assets/{org_b.ids['assetId']}?{a_logo.query}"
    assert_error(client.get(forged_asset), 403, "permission_error", "signature_invalid")
    forged_coupons = _with_query(org_a.urls["coupons"], sid=org_b.ids["scheduleId"])
    assert_error(client.get(forged_coupons), 403, "permission_error", "signature_invalid")
    assert client.get(local(org_b.urls["batch"])).status_code == 200
    forged_batch = _with_query(org_a.urls["batch"], batch=org_b.ids["batchId"])
    assert_error(client.get(forged_batch), 403, "permission_error", "signature_invalid")
    a_preview = urlsplit(org_a.urls["preview"])
    forged_preview = f"/guest/preview/{org_b.ids['instanceId']}?{a_preview.query}"
    response = client.get(forged_preview)
    assert response.status_code == 403
    assert "org-b" not in response.text
    a_test = urlsplit(org_a.urls["test"])
    forged_test = f"/guest/oauth/test/{org_b.ids['authIntegrationId']}?{a_test.query}"
    response = client.get(forged_test, follow_redirects=False)
    assert response.status_code == 403
    assert "location" not in response.headers
