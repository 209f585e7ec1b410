"""Access plans at sign-in, on both databases: devices at once, sign-ins in total, validity from
first use, the session's limits, and the words of a refusal."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from guestgate.coupons.models import Coupon
from guestgate.portal.store import (
    GuestStore,
    Outcome,
    RedeemResult,
    Redemption,
    open_store,
)
from guestgate.site_users.models import SiteUser
from tests.utils.portal import ClientFactory, World, fresh_token, sign_in

DEVICES = 3
LIMITS = {"download_kbps": 10_000, "upload_kbps": 2_000, "data_limit_mb": 1_000}


def _attempt(world: World, ip: str, code: str = "ABC234", mac: str | None = None) -> Redemption:
    return Redemption(site_id=world.site_id, instance_id=world.instance_id, code=code, ip=ip, mac=mac)


def _race(db_url: str, attempts: list[Redemption], now: datetime) -> list[RedeemResult]:
    """Every attempt at once, each from its own thread with its own store (own connection)."""
    stores: list[GuestStore] = [open_store(db_url, pg_pool_size=1) for _ in attempts]
    barrier = threading.Barrier(len(attempts))
    results: list[RedeemResult] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def run(index: int) -> None:
        try:
            barrier.wait()
            result = stores[index].redeem(attempts[index], now)
            with lock:
                results.append(result)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(attempts))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for store in stores:
        store.close()
    assert errors == []
    return results


@pytest.mark.parametrize("uses", [0, DEVICES])
def test_n_plus_one_devices_racing_on_an_n_device_code_exactly_n_win(
    world: World, db_url: str, uses: int
) -> None:
    """Fresh (the conditional UPDATE alone) and with its devices freed after as many uses (the
    counted path: locked row, sessions counted after the lock)."""
    coupon_id = world.coupon("ABC234", max_devices=DEVICES, max_uses=None, **LIMITS)
    with world.runtime.sessions() as session:
        session.execute(update(Coupon).where(Coupon.id == coupon_id).values(uses=uses))
        session.commit()
    now = world.clock()
    results = _race(db_url, [_attempt(world, f"10.0.1.{i + 10}") for i in range(DEVICES + 1)], now)
    outcomes = sorted(r.outcome.value for r in results)
    assert outcomes == ["in_use"] + ["success"] * DEVICES
    [refused] = [r for r in results if r.outcome is Outcome.IN_USE]
    assert refused.allowed == DEVICES and refused.session is None
    sessions = world.sessions()
    assert len(sessions) == DEVICES and {s.coupon_id for s in sessions} == {coupon_id}
    assert world.coupon_row(coupon_id).uses == uses + DEVICES
    [failure] = world.audit("guest.signin_failed")
    assert failure.detail["reason"] == "in_use"


def test_n_plus_one_async_sign_ins_on_an_n_device_code_exactly_n_win(world: World, db_url: str) -> None:
    """The sign-in path's own way in (`redeem_async`): on PostgreSQL, concurrent async connections."""
    world.coupon("ABC234", max_devices=DEVICES, max_uses=DEVICES + 1)
    now = world.clock()
    store = open_store(db_url, pg_pool_size=DEVICES + 1)

    async def all_at_once() -> list[RedeemResult]:
        attempts = [_attempt(world, f"10.0.2.{i + 10}") for i in range(DEVICES + 1)]
        return list(await asyncio.gather(*(store.redeem_async(a, now) for a in attempts)))

    try:
        results = asyncio.run(all_at_once())
    finally:
        store.close()
    assert sorted(r.outcome.value for r in results) == ["in_use"] + ["success"] * DEVICES
    assert len(world.sessions()) == DEVICES


def test_a_device_freed_by_an_ended_session_can_be_taken_until_the_uses_run_out(
    world: World, db_url: str
) -> None:
    coupon_id = world.coupon("ABC234", max_devices=2, max_uses=3)
    store = open_store(db_url)
    now = world.clock()
    try:
        assert store.redeem(_attempt(world, "10.0.3.1"), now).outcome is Outcome.SUCCESS
        assert store.redeem(_attempt(world, "10.0.3.2"), now).outcome is Outcome.SUCCESS
        full = store.redeem(_attempt(world, "10.0.3.3"), now)
        assert (full.outcome, full.allowed) == (Outcome.IN_USE, 2)
        # One guest leaves: its device is free again, and the third sign-in is the code's last.
        with world.runtime.sessions() as session:
            session.execute(
                update(SiteUser).where(SiteUser.ip_address == "10.0.3.1").values(status="disconnected")
            )
            session.commit()
        assert store.redeem(_attempt(world, "10.0.3.3"), now).outcome is Outcome.SUCCESS
        with world.runtime.sessions() as session:
            session.execute(
                update(SiteUser).where(SiteUser.ip_address == "10.0.3.2").values(status="disconnected")
            )
            session.commit()
        spent = store.redeem(_attempt(world, "10.0.3.4"), now)
        assert (spent.outcome, spent.allowed) == (Outcome.USED, 3)
    finally:
        store.close()
    assert world.coupon_row(coupon_id).uses == 3


def test_an_expired_session_frees_its_device(world: World, db_url: str) -> None:
    world.coupon("ABC234", minutes=600, max_devices=1, max_uses=None)
    store = open_store(db_url)
    now = world.clock()
    try:
        assert store.redeem(_attempt(world, "10.0.4.1"), now).outcome is Outcome.SUCCESS
        assert store.redeem(_attempt(world, "10.0.4.2"), now).outcome is Outcome.IN_USE
        later = now + timedelta(seconds=3601)  # the instance's session_ttl is 3600
        assert store.redeem(_attempt(world, "10.0.4.2"), later).outcome is Outcome.SUCCESS
    finally:
        store.close()


def test_a_guest_signing_in_again_while_signed_in_spends_neither_a_use_nor_a_device(
    world: World, db_url: str
) -> None:
    coupon_id = world.coupon("ABC234", max_devices=2, max_uses=2)
    store = open_store(db_url)
    now = world.clock()
    try:
        first = store.redeem(_attempt(world, "10.0.5.1", mac="aa:bb:cc:dd:ee:01"), now)
        again = store.redeem(_attempt(world, "10.0.5.1", mac="aa:bb:cc:dd:ee:01"), now + timedelta(minutes=5))
        assert first.outcome is Outcome.SUCCESS and again.outcome is Outcome.ALREADY_ACTIVE
        assert again.session is not None and first.session is not None
        assert again.session.id == first.session.id
        assert world.coupon_row(coupon_id).uses == 1
        # The second device still has its place.
        assert store.redeem(_attempt(world, "10.0.5.2"), now).outcome is Outcome.SUCCESS
    finally:
        store.close()


def test_max_uses_counts_sign_ins_over_the_codes_life(world: World, db_url: str) -> None:
    coupon_id = world.coupon("ABC234", minutes=600, max_devices=1, max_uses=2)
    store = open_store(db_url)
    now = world.clock()
    try:
        assert store.redeem(_attempt(world, "10.0.6.1"), now).outcome is Outcome.SUCCESS
        later = now + timedelta(seconds=3601)
        assert store.redeem(_attempt(world, "10.0.6.1"), later).outcome is Outcome.SUCCESS
        result = store.redeem(_attempt(world, "10.0.6.1"), later + timedelta(seconds=3601))
        assert (result.outcome, result.allowed) == (Outcome.USED, 2)
    finally:
        store.close()
    row = world.coupon_row(coupon_id)
    assert row.uses == 2
    # `redeemed_at` is the first use.
    assert row.redeemed_at == now


def test_the_session_copies_the_codes_limits(world: World, db_url: str) -> None:
    world.coupon("ABC234", **LIMITS)
    store = open_store(db_url)
    try:
        result = store.redeem(_attempt(world, "10.0.7.1"), world.clock())
        assert result.session is not None
        assert (result.session.download_kbps, result.session.upload_kbps, result.session.data_limit_mb) == (
            10_000,
            2_000,
            1_000,
        )
        again = store.redeem(_attempt(world, "10.0.7.1"), world.clock())
        assert again.session is not None and again.session.data_limit_mb == 1_000
    finally:
        store.close()
    [row] = world.sessions()
    assert (row.download_kbps, row.upload_kbps, row.data_limit_mb) == (10_000, 2_000, 1_000)


def test_validity_from_first_use_starts_the_codes_time_at_its_first_sign_in(
    world: World, db_url: str
) -> None:
    # Made two minutes ago, valid for 60: 62 minutes from creation to expiry.
    coupon_id = world.coupon("ABC234", minutes=60, max_devices=2, max_uses=None, validity_from="first_use")
    made = world.coupon_row(coupon_id)
    validity = made.expires_at - made.created_at
    store = open_store(db_url)
    first = world.clock() + timedelta(minutes=30)
    try:
        assert store.redeem(_attempt(world, "10.0.8.1"), first).outcome is Outcome.SUCCESS
        assert world.coupon_row(coupon_id).expires_at == first + validity
        # A later use does not move it again.
        second = first + timedelta(minutes=40)
        assert store.redeem(_attempt(world, "10.0.8.2"), second).outcome is Outcome.SUCCESS
        assert world.coupon_row(coupon_id).expires_at == first + validity
        # Past the creation expiry, still valid: its time runs from the first use.
        assert second > made.expires_at
        assert store.redeem(_attempt(world, "10.0.8.3"), first + validity).outcome is Outcome.EXPIRED
    finally:
        store.close()


def test_an_unused_first_use_code_still_expires_at_its_creation_expiry(world: World, db_url: str) -> None:
    coupon_id = world.coupon("ABC234", minutes=60, validity_from="first_use")
    expiry = world.coupon_row(coupon_id).expires_at
    store = open_store(db_url)
    try:
        assert store.redeem(_attempt(world, "10.0.9.1"), expiry).outcome is Outcome.EXPIRED
    finally:
        store.close()
    assert world.coupon_row(coupon_id).uses == 0


def test_a_creation_validity_code_keeps_its_expiry(world: World, db_url: str) -> None:
    coupon_id = world.coupon("ABC234", max_devices=2, max_uses=2)
    expiry = world.coupon_row(coupon_id).expires_at
    store = open_store(db_url)
    try:
        assert store.redeem(_attempt(world, "10.0.9.2"), world.clock()).outcome is Outcome.SUCCESS
    finally:
        store.close()
    assert world.coupon_row(coupon_id).expires_at == expiry.astimezone(UTC)


def test_the_portal_says_a_code_is_in_use_on_its_devices(world: World, guest: ClientFactory) -> None:
    world.coupon("ABC234", max_devices=2, max_uses=None)
    for ip in ("10.0.1.11", "10.0.1.12"):
        client = guest(ip)
        assert sign_in(client, fresh_token(client, world), "ABC234").status_code == 200
    third = guest("10.0.1.13")
    response = sign_in(third, fresh_token(third, world), "ABC234")
    assert response.status_code == 409
    assert "This code is already in use on 2 devices" in response.text


def test_the_portal_says_so_in_the_guests_language(world: World, guest: ClientFactory) -> None:
    world.coupon("ABC234", max_devices=2, max_uses=None)
    for ip in ("10.0.1.21", "10.0.1.22"):
        client = guest(ip)
        sign_in(client, fresh_token(client, world), "ABC234")
    third = guest("10.0.1.23")
    third.headers["accept-language"] = "de"
    response = sign_in(third, fresh_token(third, world), "ABC234")
    assert response.status_code == 409
    assert "Dieser Code wird bereits auf 2 Geräten verwendet" in response.text


def test_a_single_device_code_in_use_elsewhere_says_another_device(
    world: World, guest: ClientFactory
) -> None:
    world.coupon("ABC234", max_devices=1, max_uses=5)
    first = guest("10.0.1.31")
    sign_in(first, fresh_token(first, world), "ABC234")
    second = guest("10.0.1.32")
    response = sign_in(second, fresh_token(second, world), "ABC234")
    assert response.status_code == 409
    assert "This code is already in use on another device" in response.text


def test_a_used_up_code_says_how_many_sign_ins_it_had(world: World, guest: ClientFactory) -> None:
    coupon_id = world.coupon("ABC234", max_devices=1, max_uses=3)
    with world.runtime.sessions() as session:
        session.execute(
            update(Coupon).where(Coupon.id == coupon_id).values(uses=3, redeemed_at=world.clock())
        )
        session.commit()
    client = guest("10.0.1.41")
    response = sign_in(client, fresh_token(client, world), "ABC234")
    assert response.status_code == 409
    assert "This code has been used 3 times, as many as it allows" in response.text


def test_a_single_use_code_keeps_its_words(world: World, guest: ClientFactory) -> None:
    world.coupon("ABC234", redeemed=True)
    client = guest("10.0.1.51")
    response = sign_in(client, fresh_token(client, world), "ABC234")
    assert response.status_code == 409
    assert "Each code works only once" in response.text
