"""API documentation: OpenAPI document, Swagger UI and ReDoc served without external resources."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient


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
    assert doc["info"]["title"] == "Altostrat Captive Portal API"
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
