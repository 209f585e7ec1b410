"""The portal's SQL store: atomic single-use redemption under concurrency, on both databases."""

from __future__ import annotations

import multiprocessing
import threading
from datetime import timedelta
from typing import Any

import pytest

from guestgate.portal.store import GuestStore, Outcome, RedeemResult, Redemption, open_store
from tests.utils.portal import World

RACERS = 50


def _attempt(world: World, ip: str, code: str = "ABC234") -> Redemption:
    return Redemption(site_id=world.site_id, instance_id=world.instance_id, code=code, ip=ip, mac=None)


def test_fifty_threads_redeeming_one_code_make_exactly_one_session(world: World, db_url: str) -> None:
    world.coupon("ABC234")
    now = world.clock()
    stores: list[GuestStore] = [open_store(db_url, pg_pool_size=1) for _ in range(RACERS)]
    barrier = threading.Barrier(RACERS)
    results: list[RedeemResult] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def race(index: int) -> None:
        try:
            barrier.wait()
            result = stores[index].redeem(_attempt(world, f"10.0.1.{index + 10}"), now)
            with lock:
                results.append(result)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=race, args=(i,)) for i in range(RACERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for store in stores:
        store.close()
    assert errors == []
    outcomes = sorted(r.outcome.value for r in results)
    assert outcomes.count("success") == 1
    assert outcomes.count("used") == RACERS - 1
    assert len(world.sessions()) == 1
    assert len(world.audit("guest.signin_failed")) == RACERS - 1


def _process_race(
    db_url: str, site_id: str, instance_id: str, index: int, now_ts: float, barrier: Any, results: Any
) -> None:
    from datetime import UTC, datetime

    store = open_store(db_url, pg_pool_size=1)
    attempt = Redemption(
        site_id=site_id, instance_id=instance_id, code="ABC234", ip=f"10.0.1.{index + 10}", mac=None
    )
    barrier.wait()
    results.put(store.redeem(attempt, datetime.fromtimestamp(now_ts, UTC)).outcome.value)
    store.close()


def test_fifty_processes_redeeming_one_code_make_exactly_one_session(world: World, db_url: str) -> None:
    world.coupon("ABC234")
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(RACERS)
    results = context.Queue()
    processes = [
        context.Process(
            target=_process_race,
            args=(db_url, world.site_id, world.instance_id, i, world.clock().timestamp(), barrier, results),
        )
        for i in range(RACERS)
    ]
    for process in processes:
        process.start()
    outcomes = [results.get(timeout=60) for _ in range(RACERS)]
    for process in processes:
        process.join(timeout=60)
    assert outcomes.count("success") == 1
    assert outcomes.count("used") == RACERS - 1
    assert len(world.sessions()) == 1


def test_one_guest_racing_two_codes_spends_only_one(world: World, db_url: str) -> None:
    world.coupon("ABC234")
    world.coupon("XYZ234")
    now = world.clock()
    stores = [open_store(db_url, pg_pool_size=1) for _ in range(2)]
    barrier = threading.Barrier(2)
    results: list[RedeemResult] = []

    def race(index: int, code: str) -> None:
        barrier.wait()
        results.append(stores[index].redeem(_attempt(world, "10.0.1.10", code), now))

    threads = [threading.Thread(target=race, args=(i, c)) for i, c in enumerate(("ABC234", "XYZ234"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for store in stores:
        store.close()
    assert sorted(r.outcome.value for r in results) == ["already_active", "success"]
    assert len(world.sessions()) == 1


def test_a_coupon_written_by_the_orm_expires_to_the_microsecond(world: World, db_url: str) -> None:
    world.coupon("ABC234", minutes=1)
    store = open_store(db_url)
    try:
        expires = world.clock() + timedelta(minutes=1)
        late = store.redeem(_attempt(world, "10.0.1.10"), expires)
        early = store.redeem(_attempt(world, "10.0.1.10"), expires - timedelta(microseconds=1))
    finally:
        store.close()
    assert late.outcome is Outcome.EXPIRED
    assert early.outcome is Outcome.SUCCESS


def test_a_session_of_another_device_behind_the_same_address_is_not_the_guests(
    world: World, db_url: str
) -> None:
    world.coupon("ABC234")
    world.coupon("XYZ234")
    store = open_store(db_url)
    now = world.clock()
    try:
        first = Redemption(world.site_id, world.instance_id, "ABC234", "10.0.1.10", "AA:AA:AA:AA:AA:AA")
        second = Redemption(world.site_id, world.instance_id, "XYZ234", "10.0.1.10", "BB:BB:BB:BB:BB:BB")
        assert store.redeem(first, now).outcome is Outcome.SUCCESS
        assert store.redeem(second, now).outcome is Outcome.SUCCESS
        found = store.active_session(world.site_id, "10.0.1.10", "BB:BB:BB:BB:BB:BB", now)
        assert found is not None and found.mac == "BB:BB:BB:BB:BB:BB"
    finally:
        store.close()


def test_the_store_reconnects_after_close(world: World, db_url: str) -> None:
    store = open_store(db_url)
    assert store.site_networks(world.site_id) is not None
    store.close()
    assert store.instance(world.instance_id) is not None
    store.close()


def test_an_in_memory_or_foreign_database_is_refused() -> None:
    with pytest.raises(ValueError, match="SQLite file"):
        open_store("sqlite://")
    with pytest.raises(ValueError, match="mysql"):
        open_store("mysql://user@host/db")
