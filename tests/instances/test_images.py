"""Logo and icon uploads: decoded, sized, re-encoded; served back through signed, expiring URLs."""

from __future__ import annotations

import io
from typing import Any
from urllib.parse import urlparse

import pytest
import time_machine
from fastapi.testclient import TestClient
from PIL import Image

from guestgate.security import SCOPE_READ
from tests.core.test_errors import assert_error
from tests.utils.settings import TokenFactory

CREATE = {"name": "Lobby", "strategy": "coupon", "session_ttl": 3600}


def picture(size: tuple[int, int], fmt: str = "PNG", mode: str = "RGB") -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, color=(3, 150, 213) if mode == "RGB" else 1).save(out, fmt)
    return out.getvalue()


@pytest.fixture
def instance(client: TestClient, headers: dict[str, str]) -> dict[str, Any]:
    return client.post("/captive/instances", headers=headers, json=CREATE).json()  # type: ignore[no-any-return]


def upload(
    client: TestClient,
    headers: dict[str, str],
    instance_id: str,
    kind: str,
    data: bytes,
    name: str = "logo.png",
    content_type: str = "image/png",
) -> Any:
    return client.post(
        f"/captive/instances/{instance_id}/images/{kind}",
        headers=headers,
        files={"file": (name, data, content_type)},
    )


@pytest.mark.parametrize(
    ("fmt", "content_type"),
    [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("WEBP", "image/webp"), ("GIF", "image/gif")],
)
def test_logo_upload_is_202_and_served_back(
    client: TestClient, headers: dict[str, str], instance: dict[str, Any], fmt: str, content_type: str
) -> None:
    response = upload(client, headers, instance["id"], "logo", picture((240, 120), fmt))
    assert response.status_code == 202, response.text
    logo = response.json()["theme"]["logo"]
    assert logo.startswith("http://testserver/captive/assets/")
    url = urlparse(logo)
    served = client.get(f"{url.path}?{url.query}")  # no bearer token needed
    assert served.status_code == 200
    assert served.headers["content-type"] == content_type
    assert served.headers["cache-control"].startswith("private, max-age=")
    assert Image.open(io.BytesIO(served.content)).size == (240, 120)
    assert (
        client.get(f"/captive/instances/{instance['id']}", headers=headers).json()["theme"]["logo"]
        is not None
    )


def test_icon_must_be_square_and_at_least_32(
    client: TestClient, headers: dict[str, str], instance: dict[str, Any]
) -> None:
    assert upload(client, headers, instance["id"], "icon", picture((64, 64))).status_code == 202
    for size, words in (((64, 32), "square"), ((31, 31), "at least 32x32")):
        error = assert_error(
            upload(client, headers, instance["id"], "icon", picture(size)),
            400,
            "invalid_request_error",
            "file_invalid",
        )
        assert words in error["message"]


def test_logo_minimum_size(client: TestClient, headers: dict[str, str], instance: dict[str, Any]) -> None:
    assert upload(client, headers, instance["id"], "logo", picture((120, 80))).status_code == 202
    error = assert_error(
        upload(client, headers, instance["id"], "logo", picture((119, 80))),
        400,
        "invalid_request_error",
        "file_invalid",
    )
    assert "120x80" in error["message"]


@pytest.mark.parametrize(
    ("data", "name", "content_type"),
    [
        (
            b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>",
            "logo.svg",
            "image/svg+xml",
        ),
        (b"GIF89a<script>alert(1)</script>", "logo.gif", "image/gif"),
        (b"%PDF-1.4 not an image", "logo.png", "image/png"),
        (b"", "empty.png", "image/png"),
    ],
)
def test_files_that_are_not_images_are_refused(
    client: TestClient,
    headers: dict[str, str],
    instance: dict[str, Any],
    data: bytes,
    name: str,
    content_type: str,
) -> None:
    response = upload(client, headers, instance["id"], "logo", data, name, content_type)
    assert_error(response, 400, "invalid_request_error", "file_invalid")


def test_decompression_bomb_is_refused_before_decoding(
    client: TestClient, headers: dict[str, str], instance: dict[str, Any]
) -> None:
    bomb = picture((20_000, 20_000), "PNG", mode="1")
    assert len(bomb) < 2 * 1024 * 1024
    error = assert_error(
        upload(client, headers, instance["id"], "logo", bomb), 400, "invalid_request_error", "file_invalid"
    )
    assert "pixels" in error["message"]


def test_file_over_2_mib_is_refused(
    client: TestClient, headers: dict[str, str], instance: dict[str, Any]
) -> None:
    big = picture((240, 120)) + b"\0" * (2 * 1024 * 1024)
    assert_error(
        upload(client, headers, instance["id"], "logo", big), 400, "invalid_request_error", "file_invalid"
    )


def test_polyglot_trailing_payload_is_not_served(
    client: TestClient, headers: dict[str, str], instance: dict[str, Any]
) -> None:
    payload = b"<html><script>alert(document.cookie)</script></html>"
    response = upload(client, headers, instance["id"], "logo", picture((240, 120)) + payload)
    assert response.status_code == 202
    url = urlparse(response.json()["theme"]["logo"])
    assert payload not in client.get(f"{url.path}?{url.query}").content


def test_missing_file_and_bad_type(
    client: TestClient, headers: dict[str, str], instance: dict[str, Any]
) -> None:
    missing = client.post(
        f"/captive/instances/{instance['id']}/images/logo", headers=headers, data={"x": "1"}
    )
    error = assert_error(missing, 400, "invalid_request_error", "parameter_missing")
    assert error["message"] == "The 'file' parameter is required for this request."
    bad_type = upload(client, headers, instance["id"], "banner", picture((240, 120)))
    assert_error(bad_type, 400, "invalid_request_error", "parameter_invalid")


def test_upload_needs_write_scope_and_own_instance(
    client: TestClient, auth: TokenFactory, instance: dict[str, Any]
) -> None:
    response = upload(client, auth(scopes=(SCOPE_READ,)), instance["id"], "logo", picture((240, 120)))
    assert_error(response, 403, "permission_error", "insufficient_scope")
    response = upload(client, auth(org="org-b"), instance["id"], "logo", picture((240, 120)))
    assert_error(response, 404, "not_found_error", "resource_not_found")


def test_tampered_and_expired_asset_urls_are_403(
    client: TestClient, headers: dict[str, str], instance: dict[str, Any]
) -> None:
    logo = upload(client, headers, instance["id"], "logo", picture((240, 120))).json()["theme"]["logo"]
    url = urlparse(logo)
    tampered = url.query.replace("signature=", "signature=0")
    assert_error(client.get(f"{url.path}?{tampered}"), 403, "permission_error", "signature_invalid")
    with time_machine.travel("2100-01-01T00:00:00Z"):
        assert_error(client.get(f"{url.path}?{url.query}"), 403, "permission_error", "url_expired")
    assert_error(client.get(url.path), 400, "invalid_request_error", "parameter_missing")
