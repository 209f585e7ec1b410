"""When something breaks underneath, the guest still gets a page: 503 to retry, 500 otherwise."""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import Any

from guestgate.portal.routes import build
from guestgate.portal.store import AsyncGuestStore, RedeemResult, Redemption, open_store
from guestgate.portal.throttle import MemoryCounters
from tests.utils.portal import ClientFactory, World, fresh_token, sign_in


class FailingRedeem:
    """A real store whose redemption raises `error`."""

    def __init__(self, inner: AsyncGuestStore, error: Exception) -> None:
        self._inner = inner
        self._error = error

    def redeem(self, attempt: Redemption, now: datetime) -> RedeemResult:
        raise self._error

    async def redeem_async(self, attempt: Redemption, now: datetime) -> RedeemResult:
        raise self._error

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def _client(world: World, guest: ClientFactory, db_url: str, error: Exception) -> Any:
    store = FailingRedeem(open_store(db_url), error)
    portal = build(world.runtime, store=store, counters=MemoryCounters(), clock=world.clock)
    return guest(portal=portal)


def test_a_busy_database_is_a_503_page_to_retry(world: World, guest: ClientFactory, db_url: str) -> None:
    client = _client(world, guest, db_url, sqlite3.OperationalError("database is locked"))
    world.coupon("ABC234")
    response = sign_in(client, fresh_token(client, world), "ABC234")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert "The service is busy." in response.text
    assert "database is locked" not in response.text


def test_an_unexpected_error_is_a_500_page_without_internals(
    world: World, guest: ClientFactory, db_url: str
) -> None:
    client = _client(world, guest, db_url, RuntimeError("secret internals"))
    world.coupon("ABC234")
    response = sign_in(client, fresh_token(client, world), "ABC234")
    assert response.status_code == 500
    assert "text/html" in response.headers["content-type"]
    assert "Something went wrong on our side." in response.text
    assert "secret internals" not in response.text
