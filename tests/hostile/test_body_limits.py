"""The body limit setting (GUESTGATE_MAX_BODY_BYTES) on a real server: 413 with the error body.

JSON endpoints, the image upload and the portal's form posts; announced by Content-Length or
streamed chunked without one. Nothing is created by a refused request.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from guestgate.app import create_app
from guestgate.instances.models import Image, Instance
from guestgate.runtime import Runtime
from guestgate.security import ALL_SCOPES, mint_token
from tests.utils.hostile import LiveServer, picture
from tests.utils.settings import make_settings

LIMIT = 4096  # below the portal's own 8 KB form cap, so the setting is what decides
FORM = "application/x-www-form-urlencoded"


@pytest.fixture
def server(db_url: str, tmp_path: Path) -> Iterator[tuple[LiveServer, Runtime, dict[str, str]]]:
    runtime = Runtime.build(make_settings(db_url, tmp_path / "var", max_body_bytes=LIMIT))
    token = mint_token(runtime.settings, org="org-a", subject="tester", scopes=ALL_SCOPES, ttl_seconds=600)
    with LiveServer(create_app(runtime=runtime)) as live:
        yield live, runtime, {"Authorization": f"Bearer {token}"}


def send(
    live: LiveServer, method: str, path: str, body: bytes, headers: dict[str, str], *, chunked: bool
) -> tuple[int, dict[str, str], bytes]:
    """One request on a fresh connection; chunked bodies go in 1 KB chunks with no Content-Length."""
    connection = http.client.HTTPConnection("127.0.0.1", live.port, timeout=20)
    try:
        if chunked:
            pieces = (body[i : i + 1024] for i in range(0, len(body), 1024))
            connection.request(method, path, body=pieces, headers=headers, encode_chunked=True)
        else:
            connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def assert_413_json(status: int, headers: dict[str, str], body: bytes) -> None:
    assert status == 413, body
    assert headers["content-type"].startswith("application/json")
    error = json.loads(body)
    assert error == {
        "type": "invalid_request_error",
        "code": "request_too_large",
        "message": f"The request body is larger than {LIMIT} bytes.",
        "doc_url": "http://testserver/errors/request_too_large",
    }


def multipart(data: bytes, boundary: str = "hostileboundary") -> tuple[bytes, str]:
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="logo.png"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


def counts(runtime: Runtime) -> tuple[int, int]:
    with runtime.sessions() as session:
        return (
            session.scalar(select(func.count()).select_from(Instance)) or 0,
            session.scalar(select(func.count()).select_from(Image)) or 0,
        )


def instance_body(size: int) -> bytes:
    """A valid InstanceCreate padded with an ignored field to `size` bytes."""
    base = {"name": "Lobby", "strategy": "coupon", "session_ttl": 3600, "pad": ""}
    raw = json.dumps(base).encode()
    base["pad"] = "x" * (size - len(raw))
    out = json.dumps(base).encode()
    assert len(out) == size
    return out


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_json_bodies_over_the_limit_are_413_and_create_nothing(
    server: tuple[LiveServer, Runtime, dict[str, str]], chunked: bool
) -> None:
    live, runtime, auth = server
    headers = {**auth, "Content-Type": "application/json"}
    status, _, body = send(live, "POST", "/captive/instances", instance_body(LIMIT), headers, chunked=chunked)
    assert status == 201, body  # exactly the limit is accepted
    before = counts(runtime)
    for size in (LIMIT + 1, 4 * LIMIT, 64 * LIMIT):
        assert_413_json(
            *send(live, "POST", "/captive/instances", instance_body(size), headers, chunked=chunked)
        )
        assert_413_json(
            *send(
                live,
                "PUT",
                "/captive/sites/00000000-0000-4000-8000-000000000000",
                instance_body(size),
                headers,
                chunked=chunked,
            )
        )
    assert counts(runtime) == before


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_uploads_over_the_limit_are_413_and_store_nothing(
    server: tuple[LiveServer, Runtime, dict[str, str]], chunked: bool
) -> None:
    live, runtime, auth = server
    headers = {**auth, "Content-Type": "application/json"}
    status, _, created = send(live, "POST", "/captive/instances", instance_body(200), headers, chunked=False)
    assert status == 201
    url = f"/captive/instances/{json.loads(created)['id']}/images/logo"
    small, content_type = multipart(picture((240, 120), "PNG"))
    assert len(small) < LIMIT
    status, _, body = send(live, "POST", url, small, {**auth, "Content-Type": content_type}, chunked=chunked)
    assert status == 202, body
    before = counts(runtime)
    big, content_type = multipart(picture((240, 120), "PNG") + b"\x00" * (2 * LIMIT))
    assert_413_json(*send(live, "POST", url, big, {**auth, "Content-Type": content_type}, chunked=chunked))
    assert counts(runtime) == before


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize("path", ["/guest/signin", "/guest/oauth/start"])
def test_portal_form_posts_over_the_limit_are_413_pages(
    server: tuple[LiveServer, Runtime, dict[str, str]], chunked: bool, path: str
) -> None:
    live, _, _ = server
    under = b"t=" + b"a" * 100
    status, _, body = send(live, "POST", path, under, {"Content-Type": FORM}, chunked=chunked)
    assert status in (400, 403), body  # an unknown token: read, understood, refused
    for size in (LIMIT + 1, 2 * LIMIT, 16 * LIMIT):
        form = b"t=" + b"a" * (size - 2)
        status, headers, body = send(live, "POST", path, form, {"Content-Type": FORM}, chunked=chunked)
        assert status == 413, (size, body[:200])
        assert headers["content-type"] == "text/html; charset=utf-8"
        assert b"The form sent was too large." in body


def test_a_lying_content_length_smaller_than_the_body_is_not_a_bypass(
    server: tuple[LiveServer, Runtime, dict[str, str]],
) -> None:
    live, runtime, auth = server
    before = counts(runtime)
    # The server reads Content-Length bytes (half a JSON document); the rest is not more body.
    body: Any = instance_body(8 * LIMIT)
    status, _, answer = send(
        live,
        "POST",
        "/captive/instances",
        body,
        {**auth, "Content-Type": "application/json", "Content-Length": "100"},
        chunked=False,
    )
    # Either the app's invalid_json or the HTTP server's refusal of the trailing bytes: never a 201.
    assert status == 400, answer
    assert counts(runtime) == before
