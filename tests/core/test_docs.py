"""API documentation: OpenAPI document, Swagger UI and ReDoc served without external resources."""

from __future__ import annotations

import json
import re

from fastapi.testclient import TestClient

from guestgate.errors import ERROR_CODES, kind_of
from tests.conftest import TokenFactory


def test_docs_pages_use_only_local_assets(client: TestClient) -> None:
    for path in ("/docs", "/redoc"):
        page = client.get(path)
        assert page.status_code == 200
        urls = re.findall(r"""(?:src|href)=["']([^"']+)["']|url: ?["']([^"']+)["']""", page.text)
        for found in (u for pair in urls for u in pair if u):
            assert found.startswith("/"), f"{path} loads {found} from elsewhere"
            assert client.get(found).status_code == 200, found


def test_openapi_document_describes_the_contract(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    assert doc["info"]["title"] == "guestgate \u2014 Altostrat Captive Portal API compatible"
    assert doc["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    operations = [op for item in doc["paths"].values() for op in item.values()]
    ids = {op["operationId"] for op in operations}
    assert {
        "listInstances",
        "createInstance",
        "updateCouponSchedule",
        "runCouponSchedule",
        "getPublicCoupons",
        "listSiteUsers",
        "disconnectSiteUser",
        "createWalledGardenEntry",
    } <= ids
    for op in operations:
        assert "422" not in op["responses"]
        if op["operationId"] == "getPublicCoupons":  # a browser gets its errors as a page
            content = op["responses"]["400"]["content"]
            assert content["application/json"] == {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}
            assert set(content) == {"application/json", "text/html"}
        else:
            assert op["responses"]["400"] == {"$ref": "#/components/responses/BadRequest"}
        assert op.get("summary") and op.get("description"), op["operationId"]
    put = doc["paths"]["/captive/instances/{instanceId}/coupon-schedules/{scheduleId}"]["put"]
    assert put["summary"] == "Update a coupon schedule"
    assert put["description"] == "Updates the configuration of an existing coupon schedule."
    assert put["responses"]["200"]["description"] == "The coupon schedule was updated successfully."
    public = doc["paths"]["/captive/coupons"]["get"]
    assert public["security"] == [] and "401" not in public["responses"]


def test_every_error_code_has_one_true_example_under_its_status(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    assert "docs.altostrat.io" not in json.dumps(doc)
    seen: dict[str, str] = {}
    for response in doc["components"]["responses"].values():
        examples = response["content"]["application/json"]["examples"]
        for code, example in examples.items():
            body = example["value"]
            assert body["code"] == code and code not in seen
            seen[code] = body["message"]
            owner, _ = ERROR_CODES[code]
            assert body["type"] == kind_of(owner).type
            assert body["doc_url"] == f"http://testserver/errors/{code}"
            assert client.get(body["doc_url"].removeprefix("http://testserver")).status_code == 200
    assert set(seen) == set(ERROR_CODES)
    statuses = {
        code: status
        for status, ref in (("401", "Unauthorized"), ("404", "NotFound"), ("409", "Conflict"))
        for code in doc["components"]["responses"][ref]["content"]["application/json"]["examples"]
    }
    assert statuses["token_expired"] == "401" and statuses["route_not_found"] == "404"
    assert statuses["subnet_in_use"] == "409"


def test_error_examples_are_what_the_server_answers(client: TestClient, auth: TokenFactory) -> None:
    doc = client.get("/openapi.json").json()
    examples = {
        code: example["value"]
        for response in doc["components"]["responses"].values()
        for code, example in response["content"]["application/json"]["examples"].items()
    }
    bearer = auth()["Authorization"]
    answered = [
        client.get("/captive/instances"),
        client.get("/captive/instances", headers={"Authorization": f"Bearer {bearer}"}),
        client.get("/captive/instance", headers={"Authorization": bearer}),
        client.patch("/captive/instances", headers={"Authorization": bearer}),
        client.post("/captive/instances", headers={"Authorization": bearer}, json={"strategy": "coupon"}),
        client.get("/captive/instances/7c9e6679-7425-40de-944b-e07fc1f90ae7", headers={"Authorization": bearer}),
    ]
    for response in answered:
        body = response.json()
        if body["code"] == "token_invalid":
            assert body["message"] == examples["token_invalid"]["message"]
        else:
            assert body == examples[body["code"]], body
    assert {r.json()["code"] for r in answered} == {
        "token_missing",
        "token_invalid",
        "route_not_found",
        "method_not_allowed",
        "parameter_missing",
        "resource_not_found",
    }


def test_authorize_and_the_instance_put_tell_how_to_use_them(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    assert "paste the token alone" in doc["components"]["securitySchemes"]["bearerAuth"]["description"]
    put = doc["paths"]["/captive/instances/{instanceId}"]["put"]
    assert "**PUT semantics.**" in put["description"]
    assert "leave `sites` out to keep the instance's sites" in put["description"]
    examples = put["requestBody"]["content"]["application/json"]["examples"]
    first = next(iter(examples.values()))["value"]
    assert "sites" not in first and {"name", "strategy", "session_ttl"} <= set(first)
    create = doc["paths"]["/captive/instances"]["post"]["requestBody"]["content"]["application/json"]
    assert all("sites" not in e["value"] for e in create["examples"].values())
