"""HTTP behaviour of /captive/notification-groups [extension] and the webhook targets for delivery."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from guestgate.notifications import service
from guestgate.notifications.models import NotificationGroup
from guestgate.runtime import Runtime
from guestgate.schedules.models import CouponSchedule
from guestgate.security import SCOPE_ISSUE, SCOPE_READ
from tests.utils.settings import TokenFactory

URL = "/captive/notification-groups"
SECRET = "webhook-signing-secret-0123456789"
OTHER_SECRET = "another-signing-secret-abcdefghij"
HOOK = "https://hooks.example.com/guestgate"
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
GROUP_ID = re.compile(r"^ng_[0-9a-f]{12}$")


def group_body(**overrides: Any) -> dict[str, Any]:
    return {
        "name": "Front desk",
        "emails": ["desk@example.com", "manager@example.org"],
        "webhooks": [{"url": HOOK, "secret": SECRET}],
        **overrides,
    }


def create(client: TestClient, headers: dict[str, str], body: dict[str, Any] | None = None) -> dict[str, Any]:
    response = client.post(URL, json=group_body() if body is None else body, headers=headers)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def assert_error(response: Any, status: int, error_type: str, code: str, message: str) -> None:
    assert response.status_code == status, response.text
    assert response.json() == {
        "type": error_type,
        "code": code,
        "message": message,
        "doc_url": f"http://testserver/errors/{code}",
    }


def assert_invalid(response: Any, message: str) -> None:
    assert_error(response, 400, "invalid_request_error", "parameter_invalid", message)


def targets(runtime: Runtime, group_id: str) -> list[tuple[str, str]]:
    with runtime.sessions() as session:
        group = session.get(NotificationGroup, group_id)
        assert group is not None
        return service.webhook_targets(group, box=runtime.box)


# --- shapes and the write-only secret -----------------------------------------------------------


def test_create_returns_the_group_with_an_ng_id_and_no_secret(
    client: TestClient, headers: dict[str, str]
) -> None:
    response = client.post(URL, json=group_body(), headers=headers)
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"id", "name", "emails", "webhooks", "created_at"}
    assert GROUP_ID.match(body["id"])
    assert body["name"] == "Front desk"
    assert body["emails"] == ["desk@example.com", "manager@example.org"]
    assert body["webhooks"] == [{"url": HOOK, "secret_set": True}]
    assert TIMESTAMP.match(body["created_at"])
    assert SECRET not in response.text


def test_group_ids_are_distinct(client: TestClient, headers: dict[str, str]) -> None:
    ids = {create(client, headers)["id"] for _ in range(5)}
    assert len(ids) == 5


def test_create_without_lists_makes_an_empty_group(client: TestClient, headers: dict[str, str]) -> None:
    body = create(client, headers, {"name": "Nobody"})
    assert (body["emails"], body["webhooks"]) == ([], [])


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(group_body(webhooks=[]), id="emails-only"),
        pytest.param(group_body(emails=[]), id="webhooks-only"),
        pytest.param(group_body(emails=None, webhooks=None), id="nulls"),
    ],
)
def test_either_list_may_be_empty(client: TestClient, headers: dict[str, str], body: dict[str, Any]) -> None:
    created = create(client, headers, body)
    assert created["emails"] == (body["emails"] or [])
    assert [hook["url"] for hook in created["webhooks"]] == [hook["url"] for hook in body["webhooks"] or []]


def test_webhook_secret_is_sealed_at_rest_and_opens_for_delivery(
    client: TestClient, headers: dict[str, str], runtime: Runtime
) -> None:
    group_id = create(client, headers)["id"]
    with runtime.sessions() as session:
        group = session.get(NotificationGroup, group_id)
        assert group is not None
        sealed = group.webhooks[0]["secret_sealed"]
        assert set(group.webhooks[0]) == {"url", "secret_sealed"}
    assert SECRET not in sealed
    assert runtime.box.open(sealed) == SECRET
    assert targets(runtime, group_id) == [(HOOK, SECRET)]


def test_secret_is_never_returned_by_any_endpoint(client: TestClient, headers: dict[str, str]) -> None:
    created = client.post(URL, json=group_body(), headers=headers)
    group_id = created.json()["id"]
    responses = [
        created,
        client.get(URL, headers=headers),
        client.get(f"{URL}/{group_id}", headers=headers),
        client.put(f"{URL}/{group_id}", json=group_body(), headers=headers),
    ]
    for response in responses:
        assert response.status_code in (200, 201)
        assert SECRET not in response.text
        assert "secret_sealed" not in response.text


def test_get_returns_the_same_representation(client: TestClient, headers: dict[str, str]) -> None:
    created = create(client, headers)
    response = client.get(f"{URL}/{created['id']}", headers=headers)
    assert response.status_code == 200
    assert response.json() == created


def test_list_returns_own_org_groups_newest_first(
    client: TestClient, headers: dict[str, str], auth: TokenFactory
) -> None:
    first = create(client, headers)
    second = create(client, headers)
    create(client, auth(org="org-b"))
    response = client.get(URL, headers=headers)
    assert response.status_code == 200
    assert [group["id"] for group in response.json()] == [second["id"], first["id"]]


def test_list_pages_with_limit(client: TestClient, headers: dict[str, str]) -> None:
    create(client, headers)
    second = create(client, headers)
    response = client.get(URL, params={"limit": 1}, headers=headers)
    assert [group["id"] for group in response.json()] == [second["id"]]
    assert response.headers["Link"].endswith('rel="next"')


# --- update -------------------------------------------------------------------------------------


def test_put_replaces_name_emails_and_webhooks(
    client: TestClient, headers: dict[str, str], runtime: Runtime
) -> None:
    group_id = create(client, headers)["id"]
    new_hook = "http://night.example.com:8080/hook?x=1"
    body = {
        "name": "Night shift",
        "emails": ["night@example.com"],
        "webhooks": [{"url": new_hook, "secret": OTHER_SECRET}],
    }
    response = client.put(f"{URL}/{group_id}", json=body, headers=headers)
    assert response.status_code == 200
    result = response.json()
    assert result["id"] == group_id
    assert result["name"] == "Night shift"
    assert result["emails"] == ["night@example.com"]
    assert result["webhooks"] == [{"url": new_hook, "secret_set": True}]
    assert targets(runtime, group_id) == [(new_hook, OTHER_SECRET)]


def test_put_without_secret_keeps_the_stored_secret_of_that_url(
    client: TestClient, headers: dict[str, str], runtime: Runtime
) -> None:
    group_id = create(client, headers)["id"]
    second = "https://second.example.com/hook"
    body = group_body(webhooks=[{"url": second, "secret": OTHER_SECRET}, {"url": HOOK}])
    response = client.put(f"{URL}/{group_id}", json=body, headers=headers)
    assert response.status_code == 200, response.text
    assert targets(runtime, group_id) == [(second, OTHER_SECRET), (HOOK, SECRET)]


def test_put_with_secret_replaces_the_stored_secret(
    client: TestClient, headers: dict[str, str], runtime: Runtime
) -> None:
    group_id = create(client, headers)["id"]
    body = group_body(webhooks=[{"url": HOOK, "secret": OTHER_SECRET}])
    assert client.put(f"{URL}/{group_id}", json=body, headers=headers).status_code == 200
    assert targets(runtime, group_id) == [(HOOK, OTHER_SECRET)]


def test_put_without_secret_for_a_new_url_is_rejected(client: TestClient, headers: dict[str, str]) -> None:
    group_id = create(client, headers)["id"]
    body = group_body(webhooks=[{"url": HOOK}, {"url": "https://new.example.com/"}])
    response = client.put(f"{URL}/{group_id}", json=body, headers=headers)
    assert_error(
        response,
        400,
        "invalid_request_error",
        "parameter_missing",
        "The 'webhooks[1].secret' parameter is required for this request: "
        "a stored secret is only used for the URL it was given with.",
    )


def test_put_without_secret_for_a_removed_then_readded_url_is_rejected(
    client: TestClient, headers: dict[str, str]
) -> None:
    group_id = create(client, headers)["id"]
    assert client.put(f"{URL}/{group_id}", json=group_body(webhooks=[]), headers=headers).status_code == 200
    response = client.put(f"{URL}/{group_id}", json=group_body(webhooks=[{"url": HOOK}]), headers=headers)
    assert response.status_code == 400
    assert response.json()["message"] == (
        "The 'webhooks[0].secret' parameter is required for this request: "
        "a stored secret is only used for the URL it was given with."
    )


def test_put_keeps_omitted_lists_and_clears_empty_ones(
    client: TestClient, headers: dict[str, str], runtime: Runtime
) -> None:
    group_id = create(client, headers)["id"]
    kept = client.put(f"{URL}/{group_id}", json={"name": "Renamed"}, headers=headers).json()
    assert kept["name"] == "Renamed"
    assert kept["emails"] == ["desk@example.com", "manager@example.org"]
    assert kept["webhooks"] == [{"url": HOOK, "secret_set": True}]
    cleared = client.put(
        f"{URL}/{group_id}", json={"name": "Renamed", "emails": [], "webhooks": []}, headers=headers
    ).json()
    assert (cleared["emails"], cleared["webhooks"]) == ([], [])
    assert targets(runtime, group_id) == []


def test_failed_put_changes_nothing(client: TestClient, headers: dict[str, str], runtime: Runtime) -> None:
    created = create(client, headers)
    body = group_body(name="Changed", webhooks=[{"url": "https://new.example.com/"}])
    assert client.put(f"{URL}/{created['id']}", json=body, headers=headers).status_code == 400
    assert client.get(f"{URL}/{created['id']}", headers=headers).json() == created
    assert targets(runtime, created["id"]) == [(HOOK, SECRET)]


# --- validation ----------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["post", "put"])
def test_name_is_required(client: TestClient, headers: dict[str, str], method: str) -> None:
    url = URL if method == "post" else f"{URL}/{create(client, headers)['id']}"
    body = group_body()
    del body["name"]
    response = client.request(method, url, json=body, headers=headers)
    assert_error(
        response,
        400,
        "invalid_request_error",
        "parameter_missing",
        "The 'name' parameter is required for this request.",
    )


def test_create_without_a_webhook_secret_is_rejected(client: TestClient, headers: dict[str, str]) -> None:
    response = client.post(URL, json=group_body(webhooks=[{"url": HOOK}]), headers=headers)
    assert_error(
        response,
        400,
        "invalid_request_error",
        "parameter_missing",
        "The 'webhooks[0].secret' parameter is required for this request: "
        "a stored secret is only used for the URL it was given with.",
    )


def test_webhook_without_url_is_rejected(client: TestClient, headers: dict[str, str]) -> None:
    response = client.post(URL, json=group_body(webhooks=[{"secret": SECRET}]), headers=headers)
    assert_error(
        response,
        400,
        "invalid_request_error",
        "parameter_missing",
        "The 'webhooks[0].url' parameter is required for this request.",
    )


@pytest.mark.parametrize(
    "address",
    [
        "desk@example.com",
        "first.last+tag@mail.example.co.uk",
        "o'brien@example.ie",
        "UPPER@EXAMPLE.COM",
        "a@b-c.io",
        "x" * 64 + "@example.com",
    ],
)
def test_valid_email_addresses_are_accepted(
    client: TestClient, headers: dict[str, str], address: str
) -> None:
    assert create(client, headers, group_body(emails=[address]))["emails"] == [address]


def test_email_addresses_are_trimmed(client: TestClient, headers: dict[str, str]) -> None:
    assert create(client, headers, group_body(emails=["  desk@example.com "]))["emails"] == [
        "desk@example.com"
    ]


@pytest.mark.parametrize(
    "address",
    [
        "",
        "plain",
        "@example.com",
        "desk@",
        "desk@example",
        "desk@example.c",
        "desk@@example.com",
        "desk@exa mple.com",
        "de sk@example.com",
        "desk.@example.com",
        ".desk@example.com",
        "de..sk@example.com",
        "desk@-example.com",
        "desk@example-.com",
        "desk@example..com",
        "desk@example.com\nBcc: victim@example.com",
        "desk@exam\rple.com",
        '"quoted"@example.com',
        "desk@[10.0.0.1]",
        "x" * 65 + "@example.com",
        "desk@" + "a" * 64 + ".com",
        "desk@" + ("a" * 60 + ".") * 5 + "com",
    ],
)
def test_invalid_email_addresses_are_rejected(
    client: TestClient, headers: dict[str, str], address: str
) -> None:
    response = client.post(URL, json=group_body(emails=["ok@example.com", address]), headers=headers)
    assert_invalid(response, "The 'emails[1]' parameter must be a valid e-mail address.")


def test_fifty_email_addresses_are_accepted(client: TestClient, headers: dict[str, str]) -> None:
    emails = [f"guest{i}@example.com" for i in range(50)]
    assert create(client, headers, group_body(emails=emails))["emails"] == emails


def test_more_than_fifty_email_addresses_are_rejected(client: TestClient, headers: dict[str, str]) -> None:
    emails = [f"guest{i}@example.com" for i in range(51)]
    response = client.post(URL, json=group_body(emails=emails), headers=headers)
    assert_invalid(response, "The 'emails' parameter must list at most 50 addresses.")


def test_duplicate_email_addresses_are_rejected(client: TestClient, headers: dict[str, str]) -> None:
    response = client.post(
        URL, json=group_body(emails=["desk@example.com", "Desk@Example.com"]), headers=headers
    )
    assert_invalid(response, "The 'emails' parameter lists 'Desk@Example.com' more than once.")


@pytest.mark.parametrize(
    ("emails", "message"),
    [
        ("desk@example.com", "The 'emails' parameter must be an array."),
        ([42], "The 'emails[0]' parameter must be a string."),
    ],
)
def test_emails_of_the_wrong_type_are_rejected(
    client: TestClient, headers: dict[str, str], emails: object, message: str
) -> None:
    assert_invalid(client.post(URL, json=group_body(emails=emails), headers=headers), message)


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.example.com/guestgate",
        "http://93.184.215.14:8080/hook?x=1",
        "https://[2606:4700::1111]/hook",
        "HTTPS://EXAMPLE.COM/",
    ],
)
def test_valid_webhook_urls_are_accepted(client: TestClient, headers: dict[str, str], url: str) -> None:
    created = create(client, headers, group_body(webhooks=[{"url": url, "secret": SECRET}]))
    assert created["webhooks"] == [{"url": url, "secret_set": True}]


@pytest.mark.parametrize(
    "url",
    [
        "",
        "hooks.example.com/guestgate",
        "/relative/path",
        "ftp://example.com/hook",
        "javascript:alert(1)",
        "file:///etc/passwd",
        "https://",
        "https:///path",
        "https://example.com:99999/",
        "https://example.com:port/",
        "https://exa mple.com/",
        "https://example.com/\nX-Injected: 1",
        "https://[::1/hook",
    ],
)
def test_invalid_webhook_urls_are_rejected(client: TestClient, headers: dict[str, str], url: str) -> None:
    response = client.post(URL, json=group_body(webhooks=[{"url": url, "secret": SECRET}]), headers=headers)
    assert_invalid(response, "The 'webhooks[0].url' parameter must be an absolute http or https URL.")


def test_webhook_url_with_credentials_is_rejected(client: TestClient, headers: dict[str, str]) -> None:
    body = group_body(webhooks=[{"url": "https://user:pw@example.com/hook", "secret": SECRET}])
    response = client.post(URL, json=body, headers=headers)
    assert_invalid(
        response,
        "The 'webhooks[0].url' parameter must not contain credentials (sign with the 'secret' instead).",
    )


def test_webhook_url_longer_than_2000_characters_is_rejected(
    client: TestClient, headers: dict[str, str]
) -> None:
    url = "https://example.com/" + "a" * 1981
    response = client.post(URL, json=group_body(webhooks=[{"url": url, "secret": SECRET}]), headers=headers)
    assert_invalid(response, "The 'webhooks[0].url' parameter must be at most 2000 characters.")
    accepted = create(client, headers, group_body(webhooks=[{"url": url[:-1], "secret": SECRET}]))
    assert accepted["webhooks"][0]["url"] == url[:-1]


def test_duplicate_webhook_urls_are_rejected(client: TestClient, headers: dict[str, str]) -> None:
    hooks = [{"url": HOOK, "secret": SECRET}, {"url": HOOK, "secret": OTHER_SECRET}]
    response = client.post(URL, json=group_body(webhooks=hooks), headers=headers)
    assert_invalid(response, f"The 'webhooks' parameter lists the URL '{HOOK}' more than once.")


def test_twenty_webhooks_are_accepted_and_twenty_one_rejected(
    client: TestClient, headers: dict[str, str]
) -> None:
    hooks = [{"url": f"https://example.com/{i}", "secret": SECRET} for i in range(21)]
    assert len(create(client, headers, group_body(webhooks=hooks[:20]))["webhooks"]) == 20
    response = client.post(URL, json=group_body(webhooks=hooks), headers=headers)
    assert_invalid(response, "The 'webhooks' parameter must list at most 20 webhooks.")


@pytest.mark.parametrize(
    ("secret", "message"),
    [
        ("x" * 15, "The 'webhooks[0].secret' parameter must be at least 16 characters."),
        ("", "The 'webhooks[0].secret' parameter must be at least 16 characters."),
        ("x" * 513, "The 'webhooks[0].secret' parameter must be at most 512 characters."),
        (1234567890123456, "The 'webhooks[0].secret' parameter must be a string."),
    ],
)
def test_invalid_webhook_secrets_are_rejected(
    client: TestClient, headers: dict[str, str], secret: object, message: str
) -> None:
    response = client.post(URL, json=group_body(webhooks=[{"url": HOOK, "secret": secret}]), headers=headers)
    assert_invalid(response, message)


@pytest.mark.parametrize("secret", ["x" * 16, "y" * 512])
def test_webhook_secrets_at_the_length_bounds_are_accepted(
    client: TestClient, headers: dict[str, str], runtime: Runtime, secret: str
) -> None:
    group_id = create(client, headers, group_body(webhooks=[{"url": HOOK, "secret": secret}]))["id"]
    assert targets(runtime, group_id) == [(HOOK, secret)]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (group_body(name="  "), "The 'name' parameter must not be empty."),
        (group_body(name="n" * 201), "The 'name' parameter must be at most 200 characters."),
        (group_body(webhooks={"url": HOOK}), "The 'webhooks' parameter must be an array."),
        (group_body(webhooks=["https://example.com/"]), "The 'webhooks[0]' parameter must be an object."),
    ],
)
def test_other_invalid_values_are_rejected(
    client: TestClient, headers: dict[str, str], body: dict[str, Any], message: str
) -> None:
    assert_invalid(client.post(URL, json=body, headers=headers), message)


# --- auth, scopes, tenancy ----------------------------------------------------------------------

OPERATIONS = [
    ("get", URL),
    ("post", URL),
    ("get", f"{URL}/{{id}}"),
    ("put", f"{URL}/{{id}}"),
    ("delete", f"{URL}/{{id}}"),
]


@pytest.mark.parametrize(("method", "path"), OPERATIONS)
def test_every_operation_needs_a_token(
    client: TestClient, headers: dict[str, str], method: str, path: str
) -> None:
    group_id = create(client, headers)["id"]
    response = client.request(method, path.format(id=group_id), json=group_body())
    assert_error(response, 401, "authentication_error", "token_missing", "No bearer token was supplied.")


@pytest.mark.parametrize(("method", "path"), [op for op in OPERATIONS if op[0] != "get"])
def test_mutations_need_the_write_scope(
    client: TestClient, headers: dict[str, str], auth: TokenFactory, method: str, path: str
) -> None:
    group = create(client, headers)
    reader = auth(scopes=(SCOPE_READ, SCOPE_ISSUE))
    response = client.request(method, path.format(id=group["id"]), json=group_body(name="X"), headers=reader)
    assert_error(
        response,
        403,
        "permission_error",
        "insufficient_scope",
        "This request needs the 'captive:write' scope.",
    )
    assert client.get(f"{URL}/{group['id']}", headers=headers).json() == group


@pytest.mark.parametrize(("method", "path"), [op for op in OPERATIONS if op[0] == "get"])
def test_reads_need_the_read_scope(
    client: TestClient, headers: dict[str, str], auth: TokenFactory, method: str, path: str
) -> None:
    group_id = create(client, headers)["id"]
    response = client.request(method, path.format(id=group_id), headers=auth(scopes=(SCOPE_ISSUE,)))
    assert_error(
        response,
        403,
        "permission_error",
        "insufficient_scope",
        "This request needs the 'captive:read' scope.",
    )


def test_reads_are_allowed_with_the_read_scope_only(
    client: TestClient, headers: dict[str, str], auth: TokenFactory
) -> None:
    group_id = create(client, headers)["id"]
    reader = auth(scopes=(SCOPE_READ,))
    assert client.get(URL, headers=reader).status_code == 200
    assert client.get(f"{URL}/{group_id}", headers=reader).status_code == 200


@pytest.mark.parametrize("method", ["get", "put", "delete"])
@pytest.mark.parametrize(
    "which",
    ["unknown", "other-org", "uuid", "uppercase", "too-short", "too-long", "no-prefix"],
)
def test_unknown_malformed_or_other_orgs_group_is_not_found(
    client: TestClient, headers: dict[str, str], auth: TokenFactory, method: str, which: str
) -> None:
    mine = create(client, headers)["id"]
    while which == "uppercase" and mine[3:].isdigit():  # an all-digit id has no upper case
        mine = create(client, headers)["id"]
    group_id = {
        "unknown": "ng_0123456789ab",
        "other-org": create(client, auth(org="org-b"))["id"],
        "uuid": "9a7f1b2c-3d4e-5f6a-7b8c-9d0e1f2a3b4c",
        "uppercase": mine.upper().replace("NG_", "ng_"),
        "too-short": mine[:-1],
        "too-long": mine + "0",
        "no-prefix": mine[3:],
    }[which]
    response = client.request(method, f"{URL}/{group_id}", json=group_body(), headers=headers)
    assert_error(
        response, 404, "not_found_error", "resource_not_found", f"No such notification group: '{group_id}'."
    )


def test_other_orgs_group_is_left_untouched(
    client: TestClient, headers: dict[str, str], auth: TokenFactory
) -> None:
    other = auth(org="org-b")
    group = create(client, other)
    client.put(f"{URL}/{group['id']}", json=group_body(name="Hijacked"), headers=headers)
    client.delete(f"{URL}/{group['id']}", headers=headers)
    assert client.get(f"{URL}/{group['id']}", headers=other).json() == group


# --- deletion and schedules ----------------------------------------------------------------------


def add_schedule(
    client: TestClient, headers: dict[str, str], runtime: Runtime, group_id: str, name: str
) -> str:
    # Inserted directly: this test is about the group's delete guard, not the schedules API.
    instance = client.post(
        "/captive/instances",
        json={"name": "Lobby", "strategy": "coupon", "session_ttl": 3600},
        headers=headers,
    )
    assert instance.status_code == 201, instance.text
    with runtime.sessions() as session:
        schedule = CouponSchedule(
            org_id="org-a",
            instance_id=instance.json()["id"],
            name=name,
            count=10,
            recurrence_type="daily",
            valid_for_in_minutes=60,
            timezone="UTC",
            notification_group_id=group_id,
        )
        session.add(schedule)
        session.commit()
        return schedule.id


def test_delete_removes_the_group(client: TestClient, headers: dict[str, str]) -> None:
    group_id = create(client, headers)["id"]
    response = client.delete(f"{URL}/{group_id}", headers=headers)
    assert response.status_code == 204
    assert response.content == b""
    assert client.get(f"{URL}/{group_id}", headers=headers).status_code == 404
    assert client.get(URL, headers=headers).json() == []


def test_delete_is_refused_while_a_schedule_uses_the_group(
    client: TestClient, headers: dict[str, str], runtime: Runtime
) -> None:
    group_id = create(client, headers)["id"]
    schedule_id = add_schedule(client, headers, runtime, group_id, "Daily passes")
    response = client.delete(f"{URL}/{group_id}", headers=headers)
    assert_error(
        response,
        409,
        "conflict_error",
        "resource_in_use",
        f"The notification group is used by coupon schedule 'Daily passes' ({schedule_id}); "
        "change or delete them first.",
    )
    assert client.get(f"{URL}/{group_id}", headers=headers).status_code == 200


def test_delete_succeeds_once_no_schedule_uses_the_group(
    client: TestClient, headers: dict[str, str], runtime: Runtime
) -> None:
    group_id = create(client, headers)["id"]
    schedule_id = add_schedule(client, headers, runtime, group_id, "Daily passes")
    with runtime.sessions() as session:
        session.delete(session.get(CouponSchedule, schedule_id))
        session.commit()
    assert client.delete(f"{URL}/{group_id}", headers=headers).status_code == 204


# --- OpenAPI -------------------------------------------------------------------------------------


def test_openapi_documents_the_operations(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    operations = {
        (method, path): op
        for path, item in document["paths"].items()
        if path.startswith(URL)
        for method, op in item.items()
    }
    assert {key: op["operationId"] for key, op in operations.items()} == {
        ("get", URL): "listNotificationGroups",
        ("post", URL): "createNotificationGroup",
        ("get", f"{URL}/{{groupId}}"): "getNotificationGroup",
        ("put", f"{URL}/{{groupId}}"): "updateNotificationGroup",
        ("delete", f"{URL}/{{groupId}}"): "deleteNotificationGroup",
    }
    assert all(op["tags"] == ["Notification Groups"] for op in operations.values())
    secret = document["components"]["schemas"]["WebhookIn"]["properties"]["secret"]
    assert any(branch.get("writeOnly") is True for branch in secret["anyOf"])
