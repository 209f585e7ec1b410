"""Every error, ours and the framework's, has the contract's body and status."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from guestgate.errors import ERROR_CODES


def assert_error(response, status: int, error_type: str, code: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"type", "code", "message", "doc_url"}
    assert body["type"] == error_type
    assert body["code"] == code
    assert body["doc_url"] == f"http://testserver/errors/{code}"
    return body  # type: ignore[no-any-return]


def test_unknown_route_is_404_route_not_found(client: TestClient) -> None:
    assert_error(client.get("/no/such/path"), 404, "not_found_error", "route_not_found")


def test_wrong_method_is_405(client: TestClient) -> None:
    assert_error(client.delete("/healthz"), 405, "invalid_request_error", "method_not_allowed")


def test_wrong_method_on_operator_route_is_405(client: TestClient, headers: dict[str, str]) -> None:
    assert_error(
        client.patch("/captive/instances", headers=headers),
        405,
        "invalid_request_error",
        "method_not_allowed",
    )


def test_malformed_json_is_400_invalid_json(client: TestClient, headers: dict[str, str]) -> None:
    response = client.post(
        "/captive/instances", headers={**headers, "Content-Type": "application/json"}, content=b'{"name": '
    )
    assert_error(response, 400, "invalid_request_error", "invalid_json")


def test_json_array_body_is_400_naming_the_body(client: TestClient, headers: dict[str, str]) -> None:
    body = assert_error(
        client.post("/captive/instances", headers=headers, json=[1, 2]),
        400,
        "invalid_request_error",
        "parameter_invalid",
    )
    assert body["message"] == "The request body must be a JSON object."


def test_validation_is_400_never_422(client: TestClient, headers: dict[str, str]) -> None:
    body = assert_error(
        client.post("/captive/instances", headers=headers, json={}),
        400,
        "invalid_request_error",
        "parameter_missing",
    )
    assert body["message"] == "The 'name' parameter is required for this request."


def test_crash_is_500_without_internals(
    client: TestClient, headers: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from guestgate.instances import service

    def explode(**_kwargs: object) -> None:
        raise RuntimeError("password=hunter2 at /srv/secret.py line 3")

    monkeypatch.setattr(service, "list_instances", explode)
    body = assert_error(client.get("/captive/instances", headers=headers), 500, "api_error", "internal_error")
    assert "hunter2" not in body["message"] and "secret.py" not in body["message"]


def test_oversized_body_is_413(client: TestClient, headers: dict[str, str]) -> None:
    limit = client.app.state.runtime.settings.max_body_bytes  # type: ignore[attr-defined]
    response = client.post(
        "/captive/instances",
        headers={**headers, "Content-Type": "application/json"},
        content=b"{" + b" " * limit + b"}",
    )
    assert_error(response, 413, "invalid_request_error", "request_too_large")


@pytest.mark.parametrize("code", sorted(ERROR_CODES))
def test_every_error_code_has_a_page(client: TestClient, code: str) -> None:
    response = client.get(f"/errors/{code}")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert code in response.text


def test_unknown_error_code_page_is_404(client: TestClient) -> None:
    assert_error(client.get("/errors/nope"), 404, "not_found_error", "resource_not_found")
