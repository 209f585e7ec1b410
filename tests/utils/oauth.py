"""OAuth2 sign-in test helpers: a recording notifier and the steps of a sign-in.

The fixtures built on them are in tests/portal/oauth/conftest.py.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from html import unescape
from typing import Any

from starlette.testclient import TestClient

from guestgate.portal.store import GuestSession
from tests.utils.portal import World, fresh_token

CALLBACK = "http://testserver/guest/oauth/callback"
CHROME_ANDROID = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Mobile Safari/537.36"
)
IOS_CAPTIVE_SHEET = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148"


class RecordingNotifier:
    """A gateway that records what the portal asks of it."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    async def allow(self, session: GuestSession) -> bool:
        self.calls.append(("allow", session.site_id, session.ip, session.id))
        return True

    async def open_auth_window(self, site_id: str, ip: str, seconds: int) -> None:
        self.calls.append(("open_auth_window", site_id, ip, seconds))

    async def pending(self, session: GuestSession) -> bool:
        return False


IntegrationFactory = Callable[..., str]


def press_button(client: TestClient, world: World, *, accept: bool = True, **headers: str) -> Any:
    """Open the portal and press "Sign in with ..." (terms accepted unless `accept` is False)."""
    form = {"t": fresh_token(client, world)}
    if accept:
        form["accept"] = "yes"
    return client.post("/guest/oauth/start", data=form, headers=headers)


def provider_url(html: str) -> str:
    """Where the redirect page sends the guest (its meta refresh)."""
    match = re.search(r'<meta http-equiv="refresh" content="0;url=([^"]+)">', html)
    assert match, html
    return unescape(match.group(1))


def callback(client: TestClient, params: dict[str, str]) -> Any:
    """The provider sends the guest back to the one callback URL."""
    return client.get("/guest/oauth/callback", params=params)
