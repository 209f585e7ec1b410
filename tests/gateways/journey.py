"""Driving the whole app as a guest (portal) and as an operator (API) in the gateway tests."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from contextlib import contextmanager

from fastapi.testclient import TestClient
from httpx2 import Response

from guestgate.app import create_app
from guestgate.runtime import Runtime

GUEST_IP = "10.0.0.23"
_TOKEN = re.compile(r'name="t" value="([^"]+)"')
_REFRESH = re.compile(r'<meta http-equiv="refresh" content="(\d+);url=([^"]+)">')


@contextmanager
def app_client(runtime: Runtime, ip: str = GUEST_IP) -> Iterator[TestClient]:
    """The whole app (portal with the real gateway notifier, API, agent API), called from `ip`."""
    with TestClient(create_app(runtime=runtime), client=(ip, 40000), raise_server_exceptions=False) as client:
        yield client


def sign_in(client: TestClient, site_id: str, code: str) -> Response:
    """Open the portal entry of the site and send the coupon form."""
    entry = client.get("/guest/entry", params={"site": site_id})
    assert entry.status_code == 200, entry.text
    found = _TOKEN.search(entry.text)
    assert found is not None, entry.text
    return client.post("/guest/signin", data={"t": found.group(1), "code": code, "accept": "yes"})


def refresh_of(page: str) -> tuple[int, str] | None:
    """The (seconds, URL) of a page's meta refresh, if it has one."""
    found = _REFRESH.search(page)
    if found is None:
        return None
    return int(found.group(1)), html.unescape(found.group(2))


def text_of(response: Response) -> str:
    """The page's text with HTML entities decoded."""
    return html.unescape(response.text)
