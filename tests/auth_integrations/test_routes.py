"""HTTP behaviour of /captive/auth-integrations (contract #7-#11)."""

from __future__ import annotations

import copy
import re
import time
import uuid
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient

from guestgate.auth_integrations.models import AuthIntegration
from guestgate.runtime import Runtime
from guestgate.security import SCOPE_ISSUE, SCOPE_READ
from tests.utils.settings import TokenFactory

URL = "/captive/auth-integrations"
SECRET = "s3cr3t-Value-never-to-be-returned"
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


def azure_body(**config: Any) -> dict[str, Any]:
    return {
        "name": "Staff Azure AD",
        "type": "azure",
        "config": {"client_id": "azure-app-id", "client_secret": SECRET, "tenant": "organizations", **config},
    }


def github_body(**config: Any) -> dict[str, Any]:
    return {
        "name": "GitHub",
        "type": "github",
        "config": {"client_id": "gh-client", "client_secret": SECRET, **config},
    }


def create(client: TestClient, headers: dict[str, str], body: dict[str, Any] | None = None) -> dict[str, Any]:
    response = client.post(URL, json=body or azure_body(), headers=headers)
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


def stored_secret(runtime: Runtime, integration_id: str) -> str:
    with runtime.sessions() as session:
        row = session.get(AuthIntegration, integration_id)
        assert row is not None
        return row.client_secret_sealed


def without(body: dict[str, Any], path: str) -> dict[str, Any]:
    """A copy of `body` with the dotted `path` removed."""
    result = copy.deepcopy(body)
    *parents, leaf = path.split(".")
    target = result
    for part in parents:
        target = target[part]
    del target[leaf]
    return result


# --- shapes -------------------------------------------------------------------------------------


def test_create_azure_integration_returns_the_resource_without_secret(
    client: TestClient, headers: dict[str, str]
) -> None:
    response = client.post(URL, json=azure_body(), headers=headers)
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"id", "name", "type", "config", "test_url", "created_at"}
    assert str(uuid.UUID(body["id"])) == body["id"]
    assert body["name"] == "Staff Azure AD"
    assert body["type"] == "azure"
    assert body["config"] == {"client_id": "azure-app-id", "tenant": "organizations"}
    assert TIMESTAMP.match(body["created_at"])
    assert SECRET not in response.text


@pytest.mark.parametrize("kind", ["github", "google"])
def test_create_non_azure_integration_has_null_tenant(
    client: TestClient, headers: dict[str, str], kind: str
) -> None:
    body = create(client, headers, {**github_body(), "type": kind})
    assert body["type"] == kind
    assert body["config"] == {"client_id": "gh-client", "tenant": None}


def test_create_strips_surrounding_whitespace_from_name_client_id_and_secret(
    client: TestClient, headers: dict[str, str], runtime: Runtime
) -> None:
    body = create(
        client,
        headers,
        {**github_body(client_id="  gh-client \n", client_secret=f"  {SECRET}\n"), "name": "  GitHub  "},
    )
    assert body["name"] == "GitHub"
    assert body["config"]["client_id"] == "gh-client"
    assert runtime.box.open(stored_secret(runtime, body["id"])) == SECRET


def test_get_returns_the_same_representation(client: TestClient, headers: dict[str, str]) -> None:
    created = create(client, headers)
    response = client.get(f"{URL}/{created['id']}", headers=headers)
    assert response.status_code == 200
    fetched = response.json()
    assert {k: v for k, v in fetched.items() if k != "test_url"} == {
        k: v for k, v in created.items() if k != "test_url"
    }


def test_list_returns_own_org_integrations_newest_first(
    client: TestClient, headers: dict[str, str], auth: TokenFactory
) -> None:
    first = create(client, headers, github_body())
    second = create(client, headers, azure_body())
    create(client, auth(org="org-b"), github_body())
    response = client.get(URL, headers=headers)
    assert response.status_code == 200
    assert [item["id"] for item in response.json()] == [second["id"], first["id"]]
    assert "Link" not in response.headers


def test_list_pages_with_limit_and_link_header(client: TestClient, headers: dict[str, str]) -> None:
    first = create(client, headers, github_body())
    second = create(client, headers, github_body())
    response = client.get(URL, params={"limit": 1}, headers=headers)
    assert [item["id"] for item in response.json()] == [second["id"]]
    link = response.headers["Link"]
    next_url = re.fullmatch(r'<([^>]+)>; rel="next"', link)
    assert next_url is not None
    follow = client.get(next_url.group(1).removeprefix("http://testserver"), headers=headers)
    assert [item["id"] for item in follow.json()] == [first["id"]]
    assert "Link" not in follow.headers


# --- the write-only secret ---------------------------------------------------------------------


def test_client_secret_is_never_returned_by_any_endpoint(client: TestClient, headers: dict[str, str]) -> None:
    created = client.post(URL, json=azure_body(), headers=headers)
    integration_id = created.json()["id"]
    responses = [
        created,
        client.get(URL, headers=headers),
        client.get(f"{URL}/{integration_id}", headers=headers),
        client.put(f"{URL}/{integration_id}", json=azure_body(), headers=headers),
        client.put(f"{URL}/{integration_id}", json=azure_body(client_secret=None), headers=headers),
    ]
    for response in responses:
        assert response.status_code in (200, 201)
        assert SECRET not in response.text
        assert "client_secret" not in response.text


def test_client_secret_is_stored_sealed_and_opens_to_the_plaintext(
    client: TestClient, headers: dict[str, str], runtime: Runtime
) -> None:
    integration_id = create(client, headers)["id"]
    sealed = stored_secret(runtime, integration_id)
    assert SECRET not in sealed
    assert runtime.box.open(sealed) == SECRET


def test_put_without_client_secret_keeps_the_stored_one(
    client: TestClient, headers: dict[str, str], runtime: Runtime
) -> None:
    integration_id = create(client, headers)["id"]
    body = without(azure_body(tenant="common"), "config.client_secret")
    body["name"] = "Renamed"
    response = client.put(f"{URL}/{integration_id}", json=body, headers=headers)
    assert response.status_code == 200
    assert response.json()["name"] == "Renamed"
    assert response.json()["config"] == {"client_id": "azure-app-id", "tenant": "common"}
    assert runtime.box.open(stored_secret(runtime, integration_id)) == SECRET


def test_put_with_null_client_secret_keeps_the_stored_one(
    client: TestClient, headers: dict[str, str], runtime: Runtime
) -> None:
    integration_id = create(client, headers)["id"]
    response = client.put(f"{URL}/{integration_id}", json=azure_body(client_secret=None), headers=headers)
    assert response.status_code == 200
    assert runtime.box.open(stored_secret(runtime, integration_id)) == SECRET


def test_put_with_client_secret_replaces_the_stored_one(
    client: TestClient, headers: dict[str, str], runtime: Runtime
) -> None:
    integration_id = create(client, headers)["id"]
    response = client.put(
        f"{URL}/{integration_id}", json=azure_body(client_secret="a-new-secret"), headers=headers
    )
    assert response.status_code == 200
    assert "a-new-secret" not in response.text
    assert runtime.box.open(stored_secret(runtime, integration_id)) == "a-new-secret"


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({**github_body(client_secret=None)}, id="type-changes"),
        pytest.param(azure_body(client_secret=None, client_id="another-app"), id="client-id-changes"),
    ],
)
def test_put_without_client_secret_is_rejected_when_the_oauth_client_changes(
    client: TestClient, headers: dict[str, str], runtime: Runtime, body: dict[str, Any]
) -> None:
    integration_id = create(client, headers)["id"]
    response = client.put(f"{URL}/{integration_id}", json=body, headers=headers)
    assert_error(
        response,
        400,
        "invalid_request_error",
        "parameter_missing",
        "The 'config.client_secret' parameter is required for this request.",
    )
    fetched = client.get(f"{URL}/{integration_id}", headers=headers).json()
    assert fetched["type"] == "azure"
    assert fetched["config"]["client_id"] == "azure-app-id"


def test_put_can_change_type_with_a_new_secret(client: TestClient, headers: dict[str, str]) -> None:
    integration_id = create(client, headers)["id"]
    response = client.put(f"{URL}/{integration_id}", json=github_body(), headers=headers)
    assert response.status_code == 200
    assert response.json()["type"] == "github"
    assert response.json()["config"] == {"client_id": "gh-client", "tenant": None}


# --- test_url ------------------------------------------------------------------------------------


def test_test_url_is_a_signed_one_hour_url_for_the_integration(
    client: TestClient, headers: dict[str, str], runtime: Runtime
) -> None:
    integration_id = create(client, headers)["id"]
    before = int(time.time())
    test_url = client.get(f"{URL}/{integration_id}", headers=headers).json()["test_url"]
    after = int(time.time())
    parts = urlsplit(test_url)
    assert f"{parts.scheme}://{parts.netloc}" == "http://testserver"
    assert parts.path == f"/guest/oauth/test/{integration_id}"
    query = parse_qs(parts.query)
    assert set(query) == {"expires", "signature"}
    expires = int(query["expires"][0])
    assert before + 3600 <= expires <= after + 3600
    signature = query["signature"][0]
    assert re.fullmatch(r"[0-9a-f]{64}", signature)
    assert runtime.signer.check(signature, "oauth-test", integration_id, str(expires))
    assert not runtime.signer.check(signature, "preview", integration_id, str(expires))


# --- validation ----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["name", "type", "config", "config.client_id", "config.client_secret"])
def test_create_without_a_required_field_is_rejected(
    client: TestClient, headers: dict[str, str], path: str
) -> None:
    response = client.post(URL, json=without(azure_body(), path), headers=headers)
    assert_error(
        response,
        400,
        "invalid_request_error",
        "parameter_missing",
        f"The '{path}' parameter is required for this request.",
    )


@pytest.mark.parametrize("path", ["name", "type", "config", "config.client_id"])
def test_put_without_a_required_field_is_rejected(
    client: TestClient, headers: dict[str, str], path: str
) -> None:
    integration_id = create(client, headers)["id"]
    response = client.put(f"{URL}/{integration_id}", json=without(azure_body(), path), headers=headers)
    assert_error(
        response,
        400,
        "invalid_request_error",
        "parameter_missing",
        f"The '{path}' parameter is required for this request.",
    )


@pytest.mark.parametrize("method", ["post", "put"])
@pytest.mark.parametrize("tenant", [None, "absent"])
def test_azure_without_tenant_is_rejected(
    client: TestClient, headers: dict[str, str], method: str, tenant: str | None
) -> None:
    body = azure_body(tenant=tenant)
    if tenant == "absent":
        body = without(body, "config.tenant")
    url = URL if method == "post" else f"{URL}/{create(client, headers)['id']}"
    response = client.request(method, url, json=body, headers=headers)
    assert_error(
        response,
        400,
        "invalid_request_error",
        "parameter_missing",
        "The 'config.tenant' parameter is required for this request.",
    )


@pytest.mark.parametrize(
    ("tenant", "stored"),
    [
        ("organizations", "organizations"),
        ("common", "common"),
        ("consumers", "consumers"),
        ("Common", "common"),
        ("72f988bf-86f1-41af-91ab-2d7cd011db47", "72f988bf-86f1-41af-91ab-2d7cd011db47"),
        ("72F988BF-86F1-41AF-91AB-2D7CD011DB47", "72f988bf-86f1-41af-91ab-2d7cd011db47"),
        ("contoso.onmicrosoft.com", "contoso.onmicrosoft.com"),
        ("Fabrikam.co.uk", "fabrikam.co.uk"),
        ("my-company.com", "my-company.com"),
    ],
)
def test_azure_accepts_audiences_directory_ids_and_domains(
    client: TestClient, headers: dict[str, str], tenant: str, stored: str
) -> None:
    body = create(client, headers, azure_body(tenant=tenant))
    assert body["config"]["tenant"] == stored


@pytest.mark.parametrize(
    "tenant",
    [
        "",
        "organisation",
        "tenant",
        "72f988bf-86f1-41af-91ab-2d7cd011db4",
        "72f988bf86f141af91ab2d7cd011db47",
        "contoso",
        "contoso..com",
        "-contoso.com",
        "contoso-.com",
        "contoso.c",
        "contoso.123",
        "https://login.microsoftonline.com/common",
        "contoso.com/",
        "con toso.com",
        "a" * 64 + ".com",
    ],
)
def test_azure_rejects_a_malformed_tenant(client: TestClient, headers: dict[str, str], tenant: str) -> None:
    response = client.post(URL, json=azure_body(tenant=tenant), headers=headers)
    assert_error(
        response,
        400,
        "invalid_request_error",
        "parameter_invalid",
        "The 'config.tenant' parameter must be 'organizations', 'common', 'consumers', a directory "
        "(tenant) id or a verified domain name such as 'contoso.onmicrosoft.com'.",
    )


@pytest.mark.parametrize("kind", ["github", "google"])
def test_tenant_is_rejected_for_non_azure_types(
    client: TestClient, headers: dict[str, str], kind: str
) -> None:
    body = {**github_body(tenant="common"), "type": kind}
    response = client.post(URL, json=body, headers=headers)
    assert_error(
        response,
        400,
        "invalid_request_error",
        "parameter_invalid",
        "The 'config.tenant' parameter must be null unless 'type' is 'azure'.",
    )


@pytest.mark.parametrize("kind", ["okta", "Azure", "", None, 1])
def test_unknown_type_is_rejected(client: TestClient, headers: dict[str, str], kind: object) -> None:
    response = client.post(URL, json={**azure_body(), "type": kind}, headers=headers)
    assert_error(
        response,
        400,
        "invalid_request_error",
        "parameter_invalid",
        "The 'type' parameter must be one of 'azure', 'github', 'google' or 'oidc'.",
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({**azure_body(), "name": "   "}, "The 'name' parameter must not be empty."),
        ({**azure_body(), "name": "n" * 201}, "The 'name' parameter must be at most 200 characters."),
        (azure_body(client_id=" "), "The 'config.client_id' parameter must not be empty."),
        (azure_body(client_id="c" * 501), "The 'config.client_id' parameter must be at most 500 characters."),
        (azure_body(client_id=42), "The 'config.client_id' parameter must be a string."),
        (azure_body(client_secret=""), "The 'config.client_secret' parameter must not be empty."),
        (
            azure_body(client_secret="x" * 2001),
            "The 'config.client_secret' parameter must be at most 2000 characters.",
        ),
        (azure_body(client_secret=["x"]), "The 'config.client_secret' parameter must be a string."),
        (azure_body(tenant=7), "The 'config.tenant' parameter must be a string."),
        ({**azure_body(), "config": "client_id=x"}, "The 'config' parameter must be an object."),
    ],
)
def test_create_rejects_invalid_values(
    client: TestClient, headers: dict[str, str], body: dict[str, Any], message: str
) -> None:
    response = client.post(URL, json=body, headers=headers)
    assert_error(response, 400, "invalid_request_error", "parameter_invalid", message)


def test_put_rejects_an_empty_client_secret(client: TestClient, headers: dict[str, str]) -> None:
    integration_id = create(client, headers)["id"]
    response = client.put(f"{URL}/{integration_id}", json=azure_body(client_secret=" "), headers=headers)
    assert_error(
        response,
        400,
        "invalid_request_error",
        "parameter_invalid",
        "The 'config.client_secret' parameter must not be empty.",
    )


def test_create_ignores_unknown_fields(client: TestClient, headers: dict[str, str]) -> None:
    body = azure_body(extra="x")
    body["test_url"] = "http://evil.example/"
    created = create(client, headers, body)
    assert created["test_url"].startswith("http://testserver/guest/oauth/test/")


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
    integration_id = create(client, headers)["id"]
    response = client.request(method, path.format(id=integration_id), json=azure_body())
    assert_error(response, 401, "authentication_error", "token_missing", "No bearer token was supplied.")


@pytest.mark.parametrize(("method", "path"), [op for op in OPERATIONS if op[0] != "get"])
def test_mutations_need_the_write_scope(
    client: TestClient, headers: dict[str, str], auth: TokenFactory, method: str, path: str
) -> None:
    integration_id = create(client, headers)["id"]
    reader = auth(scopes=(SCOPE_READ, SCOPE_ISSUE))
    response = client.request(method, path.format(id=integration_id), json=azure_body(), headers=reader)
    assert_error(
        response,
        403,
        "permission_error",
        "insufficient_scope",
        "This request needs the 'captive:write' scope.",
    )
    assert client.get(f"{URL}/{integration_id}", headers=headers).status_code == 200


@pytest.mark.parametrize(("method", "path"), [op for op in OPERATIONS if op[0] == "get"])
def test_reads_need_the_read_scope(
    client: TestClient, headers: dict[str, str], auth: TokenFactory, method: str, path: str
) -> None:
    integration_id = create(client, headers)["id"]
    issuer = auth(scopes=(SCOPE_ISSUE,))
    response = client.request(method, path.format(id=integration_id), headers=issuer)
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
    integration_id = create(client, headers)["id"]
    reader = auth(scopes=(SCOPE_READ,))
    assert client.get(URL, headers=reader).status_code == 200
    assert client.get(f"{URL}/{integration_id}", headers=reader).status_code == 200


@pytest.mark.parametrize("method", ["get", "put", "delete"])
@pytest.mark.parametrize("which", ["unknown", "not-a-uuid", "other-org"])
def test_unknown_or_other_orgs_integration_is_not_found(
    client: TestClient, headers: dict[str, str], auth: TokenFactory, method: str, which: str
) -> None:
    if which == "other-org":
        integration_id = create(client, auth(org="org-b"))["id"]
    elif which == "unknown":
        integration_id = str(uuid.uuid4())
    else:
        integration_id = "not-a-uuid"
    response = client.request(method, f"{URL}/{integration_id}", json=azure_body(), headers=headers)
    assert_error(
        response,
        404,
        "not_found_error",
        "resource_not_found",
        f"No such auth integration: '{integration_id}'.",
    )


def test_other_orgs_integration_is_left_untouched_by_put_and_delete(
    client: TestClient, headers: dict[str, str], auth: TokenFactory
) -> None:
    other = auth(org="org-b")
    integration_id = create(client, other)["id"]
    client.put(f"{URL}/{integration_id}", json={**azure_body(), "name": "Hijacked"}, headers=headers)
    client.delete(f"{URL}/{integration_id}", headers=headers)
    response = client.get(f"{URL}/{integration_id}", headers=other)
    assert response.status_code == 200
    assert response.json()["name"] == "Staff Azure AD"


# --- deletion and instances ----------------------------------------------------------------------


def create_oauth_instance(
    client: TestClient, headers: dict[str, str], integration_id: str, name: str = "Lobby"
) -> dict[str, Any]:
    response = client.post(
        "/captive/instances",
        json={"name": name, "strategy": "oauth2", "session_ttl": 3600, "auth_integration_id": integration_id},
        headers=headers,
    )
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def test_delete_removes_the_integration(client: TestClient, headers: dict[str, str]) -> None:
    integration_id = create(client, headers)["id"]
    response = client.delete(f"{URL}/{integration_id}", headers=headers)
    assert response.status_code == 204
    assert response.content == b""
    assert client.get(f"{URL}/{integration_id}", headers=headers).status_code == 404
    assert client.get(URL, headers=headers).json() == []


def test_delete_is_refused_while_an_instance_uses_it(client: TestClient, headers: dict[str, str]) -> None:
    integration_id = create(client, headers)["id"]
    instance = create_oauth_instance(client, headers, integration_id)
    response = client.delete(f"{URL}/{integration_id}", headers=headers)
    assert_error(
        response,
        409,
        "conflict_error",
        "resource_in_use",
        f"The auth integration is used by instance 'Lobby' ({instance['id']}); change or delete them first.",
    )
    assert client.get(f"{URL}/{integration_id}", headers=headers).status_code == 200


def test_delete_conflict_names_every_instance_using_it(client: TestClient, headers: dict[str, str]) -> None:
    integration_id = create(client, headers)["id"]
    first = create_oauth_instance(client, headers, integration_id, "Lobby")
    second = create_oauth_instance(client, headers, integration_id, "Pool")
    response = client.delete(f"{URL}/{integration_id}", headers=headers)
    assert response.status_code == 409
    assert response.json()["message"] == (
        f"The auth integration is used by instances 'Lobby' ({first['id']}), 'Pool' ({second['id']}); "
        "change or delete them first."
    )


def test_delete_succeeds_once_the_instance_no_longer_uses_it(
    client: TestClient, headers: dict[str, str]
) -> None:
    integration_id = create(client, headers)["id"]
    instance = create_oauth_instance(client, headers, integration_id)
    switched = client.put(
        f"/captive/instances/{instance['id']}",
        json={"name": "Lobby", "strategy": "coupon", "session_ttl": 3600},
        headers=headers,
    )
    assert switched.status_code == 200, switched.text
    assert client.delete(f"{URL}/{integration_id}", headers=headers).status_code == 204


def test_instance_cannot_use_another_orgs_integration(
    client: TestClient, headers: dict[str, str], auth: TokenFactory
) -> None:
    integration_id = create(client, auth(org="org-b"))["id"]
    response = client.post(
        "/captive/instances",
        json={
            "name": "Lobby",
            "strategy": "oauth2",
            "session_ttl": 3600,
            "auth_integration_id": integration_id,
        },
        headers=headers,
    )
    assert_error(
        response,
        400,
        "invalid_request_error",
        "resource_missing",
        f"The 'auth_integration_id' parameter refers to '{integration_id}', which does not exist.",
    )


def test_instance_can_use_its_own_orgs_integration(client: TestClient, headers: dict[str, str]) -> None:
    integration_id = create(client, headers)["id"]
    instance = create_oauth_instance(client, headers, integration_id)
    assert instance["strategy"] == "oauth2"
    assert instance["auth_integration_id"] == integration_id


# --- OpenAPI -------------------------------------------------------------------------------------


def test_openapi_documents_the_operations_and_keeps_the_secret_write_only(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    operations = {
        (method, path): op
        for path, item in document["paths"].items()
        if path.startswith(URL)
        for method, op in item.items()
    }
    assert {(m, p): op["operationId"] for (m, p), op in operations.items()} == {
        ("get", URL): "listAuthIntegrations",
        ("post", URL): "createAuthIntegration",
        ("get", f"{URL}/{{authIntegrationId}}"): "getAuthIntegration",
        ("put", f"{URL}/{{authIntegrationId}}"): "updateAuthIntegration",
        ("delete", f"{URL}/{{authIntegrationId}}"): "deleteAuthIntegration",
    }
    assert all(op["tags"] == ["Auth Integrations"] for op in operations.values())
    assert "409" in operations[("delete", f"{URL}/{{authIntegrationId}}")]["responses"]
    schemas = document["components"]["schemas"]
    # `issuer` is the [extension] of `oidc` integrations: optional, absent from the other types.
    assert set(schemas["Config"]["properties"]) == {"client_id", "tenant", "issuer"}
    assert set(schemas["Config"]["required"]) == {"client_id", "tenant"}
    assert "[extension]" in schemas["Config"]["properties"]["issuer"]["description"]
    assert schemas["ConfigCreate"]["properties"]["client_secret"]["writeOnly"] is True
